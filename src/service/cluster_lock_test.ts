import assert from "node:assert/strict";
import { join } from "node:path";
import { BridgeError } from "../model.ts";
import { ClusterLocks, pidAlive } from "./cluster_lock.ts";

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cluster_lock_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("cluster lock: runs of one cluster in one process queue behind each other", async () => {
  await withTemp(async (dir) => {
    const locks = new ClusterLocks(dir);
    const order: string[] = [];
    const first = await locks.acquire("c1");
    const second = locks.acquire("c1").then(async (lease) => {
      order.push("second");
      await lease.release();
    });
    const other = await locks.acquire("c2"); // another cluster does not wait
    order.push("other");
    await other.release();
    await new Promise((r) => setTimeout(r, 20));
    order.push("first-release");
    await first.release();
    await second;
    assert.deepEqual(order, ["other", "first-release", "second"]);
    await assert.rejects(() => Deno.stat(join(dir, "c1", ".lock")), Deno.errors.NotFound);
  });
});

Deno.test("cluster lock: another live process holding the lock file is 'cluster busy'", async () => {
  await withTemp(async (dir) => {
    const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
    try {
      await Deno.mkdir(join(dir, "c1"));
      await Deno.writeTextFile(
        join(dir, "c1", ".lock"),
        JSON.stringify({
          pid: child.pid,
          host: Deno.hostname(),
          startedAt: "2026-11-01T00:00:00Z",
        }),
      );
      const error = await new ClusterLocks(dir).acquire("c1").then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(error instanceof BridgeError);
      assert.equal(error.code, "cluster_busy");
      assert.match(error.message, new RegExp(`cluster c1 is busy: .*pid ${child.pid}`));
    } finally {
      child.kill();
      await child.status;
    }
  });
});

Deno.test("cluster lock: a dead owner's lock is taken over", async () => {
  await withTemp(async (dir) => {
    const child = new Deno.Command("true").spawn();
    await child.status;
    assert.equal(pidAlive(child.pid), false);
    await Deno.mkdir(join(dir, "c1"));
    await Deno.writeTextFile(
      join(dir, "c1", ".lock"),
      JSON.stringify({ pid: child.pid, host: Deno.hostname(), startedAt: "2026-11-01T00:00:00Z" }),
    );
    const lease = await new ClusterLocks(dir).acquire("c1");
    const owner = JSON.parse(await Deno.readTextFile(join(dir, "c1", ".lock")));
    assert.equal(owner.pid, Deno.pid);
    await lease.release();
  });
});

Deno.test("cluster lock: a cancelled wait gives up with 'cancelled'", async () => {
  await withTemp(async (dir) => {
    const locks = new ClusterLocks(dir);
    const first = await locks.acquire("c1");
    const controller = new AbortController();
    const waiting = locks.acquire("c1", controller.signal);
    controller.abort();
    await assert.rejects(
      waiting,
      (e: unknown) => e instanceof BridgeError && e.code === "cancelled",
    );
    await first.release();
    const again = await locks.acquire("c1");
    await again.release();
  });
});
