import assert from "node:assert/strict";
import { join } from "node:path";
import { BridgeError } from "../model.ts";
import { ClusterLocks } from "./cluster_lock.ts";

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
  });
});

Deno.test("cluster lock: another process holding the lock is 'cluster busy'; its death frees it", async () => {
  await withTemp(async (dir) => {
    // A second process takes the lock exactly as the bridge does, then waits.
    const script = `
      const [dir] = Deno.args;
      const { ClusterLocks } = await import(${
      JSON.stringify(new URL("./cluster_lock.ts", import.meta.url).href)
    });
      await new ClusterLocks(dir).acquire("c1");
      console.log("locked");
      setInterval(() => {}, 1000);
    `;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        "--no-prompt",
        "--allow-read",
        "--allow-write",
        "--allow-sys=hostname",
        script,
        dir,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      const first = await reader.read();
      assert.match(first.value ?? "", /locked/);
      const error = await new ClusterLocks(dir).acquire("c1").then(() => null, (e: unknown) => e);
      assert.ok(error instanceof BridgeError);
      assert.equal(error.code, "cluster_busy");
      assert.match(error.message, new RegExp(`cluster c1 is busy: .*pid ${child.pid}`));
    } finally {
      child.kill("SIGKILL");
      await child.status;
      await reader.cancel().catch(() => {});
    }
    // SIGKILL leaves the file, but not the lock.
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
