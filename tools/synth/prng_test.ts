import assert from "node:assert/strict";
import { hash01, Prng } from "./prng.ts";

Deno.test("Prng is deterministic per seed and differs across seeds", () => {
  const a = new Prng(123);
  const b = new Prng(123);
  const c = new Prng(124);
  const xs = Array.from({ length: 50 }, () => a.next());
  const ys = Array.from({ length: 50 }, () => b.next());
  const zs = Array.from({ length: 50 }, () => c.next());
  assert.deepEqual(xs, ys);
  assert.notDeepEqual(xs, zs);
  for (const x of xs) assert.ok(x >= 0 && x < 1);
});

Deno.test("Prng helpers stay in range and have the documented shapes", () => {
  const r = new Prng(9);
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const n = r.int(3, 7);
    assert.ok(Number.isInteger(n) && n >= 3 && n <= 7);
    seen.add(n);
  }
  assert.deepEqual([...seen].sort(), [3, 4, 5, 6, 7]);
  assert.match(r.hex(12), /^[0-9a-f]{12}$/);
  assert.match(r.suffix(5), /^[bcdfghjklmnpqrstvwxz2456789]{5}$/);
  assert.match(r.uuid(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const u = r.uint32();
  assert.ok(Number.isInteger(u) && u >= 0 && u < 2 ** 32);
  assert.equal(r.pick(["only"]), "only");
  assert.throws(() => r.pick([]), RangeError);
  assert.throws(() => r.int(5, 4), RangeError);
  assert.throws(() => new Prng(NaN), RangeError);
});

Deno.test("hash01 is a pure function of (salt, index) and spreads values", () => {
  assert.equal(hash01(77, 5), hash01(77, 5));
  assert.notEqual(hash01(77, 5), hash01(77, 6));
  assert.notEqual(hash01(77, 5), hash01(78, 5));
  const buckets = new Array(10).fill(0);
  for (let k = 0; k < 10_000; k++) {
    const v = hash01(4242, k);
    assert.ok(v >= 0 && v < 1);
    buckets[Math.floor(v * 10)]++;
  }
  for (const b of buckets) assert.ok(b > 800 && b < 1200, `bucket count ${b}`);
});
