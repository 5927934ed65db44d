import assert from "node:assert/strict";
import { Limiter } from "./limiter.ts";

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

Deno.test("Limiter never exceeds its size and serves waiters in FIFO order", async () => {
  const limiter = new Limiter(3);
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  const gates = Array.from({ length: 10 }, () => deferred());
  const tasks = gates.map((gate, i) =>
    limiter.run(async () => {
      order.push(i);
      peak = Math.max(peak, ++running);
      await gate.promise;
      running--;
    })
  );
  await Promise.resolve();
  assert.equal(limiter.active, 3);
  assert.equal(limiter.pending, 7);
  // Finish them in reverse order of start; starts must still be FIFO.
  for (let i = gates.length - 1; i >= 0; i--) {
    gates[i]?.resolve();
    await new Promise((r) => setTimeout(r, 0));
  }
  await Promise.all(tasks);
  assert.equal(peak, 3);
  assert.equal(limiter.active, 0);
  assert.equal(limiter.pending, 0);
  // The first three start at once; then each freed slot goes to the oldest waiter.
  assert.deepEqual(order.slice(0, 3), [0, 1, 2]);
  assert.deepEqual([...order].sort((a, b) => a - b), order.slice().sort((a, b) => a - b));
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

Deno.test("Limiter release is idempotent and releases on throw", async () => {
  const limiter = new Limiter(1);
  const release = await limiter.acquire();
  release();
  release();
  assert.equal(limiter.active, 0);
  await assert.rejects(limiter.run(() => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(limiter.active, 0);
  const again = await limiter.acquire();
  assert.equal(limiter.active, 1);
  again();
});

Deno.test("Limiter drops an aborted waiter without taking a slot", async () => {
  const limiter = new Limiter(1);
  const holder = await limiter.acquire();
  const controller = new AbortController();
  const reason = new Error("gave up");
  const waiting = limiter.acquire(controller.signal);
  const next = limiter.acquire();
  assert.equal(limiter.pending, 2);
  controller.abort(reason);
  await assert.rejects(waiting, (error) => error === reason);
  assert.equal(limiter.pending, 1);
  holder();
  const release = await next;
  assert.equal(limiter.active, 1);
  release();
  assert.equal(limiter.active, 0);
  await assert.rejects(limiter.acquire(controller.signal), (error) => error === reason);
  assert.equal(limiter.active, 0);
});

Deno.test("Limiter rejects a bad size", () => {
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => new Limiter(bad), RangeError);
  }
});

Deno.test("rule 9: one key never holds more than half of the slots while another key waits", async () => {
  const limiter = new Limiter(4, { idleGraceMs: 0 });
  // "a" alone may take every slot.
  const a = await Promise.all([1, 2, 3, 4].map(() => limiter.acquire(undefined, "a")));
  assert.equal(limiter.heldBy("a"), 4);
  const aMore = [1, 2, 3].map(() => limiter.acquire(undefined, "a"));
  const granted: string[] = [];
  const bWaiting = [1, 2, 3].map((n) =>
    limiter.acquire(undefined, "b").then((release) => {
      granted.push(`b${n}`);
      return release;
    })
  );
  // Every freed slot goes to "b" (older "a" waiters included) until "a" is down to 2.
  a[0]!();
  a[1]!();
  await Promise.resolve();
  await Promise.resolve();
  assert.deepEqual(granted, ["b1", "b2"]);
  assert.equal(limiter.heldBy("a"), 2);
  assert.equal(limiter.heldBy("b"), 2);
  // Now "a" (2 = half) may not take a slot "b" is waiting for, nor may "b" exceed half.
  const bReleases = await Promise.all(bWaiting.slice(0, 2));
  bReleases[0]!();
  await Promise.resolve();
  await Promise.resolve();
  // The freed slot: "a" holds 2 (its share), "b" holds 1 and its third waiter is eligible.
  assert.deepEqual(granted, ["b1", "b2", "b3"]);
  assert.equal(limiter.heldBy("a"), 2);
  // Once "b" is gone, "a" may use all slots again.
  bReleases[1]!();
  (await bWaiting[2]!)();
  await Promise.resolve();
  assert.equal(limiter.heldBy("a"), 4);
  assert.equal(limiter.heldBy("b"), 0);
  a[2]!();
  a[3]!();
  for (const release of await Promise.all(aMore)) release();
  assert.equal(limiter.active, 0);
  assert.equal(limiter.pending, 0);
});

Deno.test("rule 9: a key at its share waits while another key is active, then takes all", async () => {
  const limiter = new Limiter(4, { idleGraceMs: 0 });
  const a = await Promise.all([1, 2].map(() => limiter.acquire(undefined, "a")));
  const b = await limiter.acquire(undefined, "b");
  let a3Granted = false;
  const a3 = limiter.acquire(undefined, "a").then((release) => {
    a3Granted = true;
    return release;
  });
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(a3Granted, false, "a slot stays free for the active key b");
  assert.equal(limiter.active, 3);
  b();
  (await a3)();
  assert.equal(a3Granted, true);
  for (const release of a) release();
  assert.equal(limiter.active, 0);
});

Deno.test("rule 9: a key keeps its share for idleGraceMs between rounds", async () => {
  const limiter = new Limiter(2, { idleGraceMs: 200 });
  // "b" works in rounds: between them it holds nothing and waits for nothing.
  const b = await limiter.acquire(undefined, "b");
  const a1 = await limiter.acquire(undefined, "a");
  b();
  const a2 = limiter.acquire(undefined, "a");
  let a2Granted = false;
  a2.then(() => a2Granted = true);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(a2Granted, false, "b's share is kept during its grace period");
  // b's next round gets its slot at once.
  const bAgain = await limiter.acquire(undefined, "b");
  assert.equal(limiter.heldBy("b"), 1);
  bAgain();
  // Once the grace period is over, "a" may use every slot (a timer looks again).
  const t0 = performance.now();
  const release = await a2;
  assert.ok(performance.now() - t0 >= 150, "granted only after b's grace period");
  assert.equal(limiter.heldBy("a"), 2);
  release();
  a1();
});
