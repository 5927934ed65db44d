/**
 * The shipped recording must still answer every query the current catalogue
 * sends (otherwise `deno task demo` breaks): replay it with the demo's flags.
 * If this fails after a query change, re-record with `deno run -A tools/make_demo.ts`.
 */
import assert from "node:assert/strict";
import { type CliIo, main } from "../src/cli/main.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("demo recording replays with no network into three valid day payloads", async () => {
  const task = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks.demo as string;
  const clusters = /--cluster (\S+)/.exec(task)![1]!;
  const dir = await Deno.makeTempDir({ prefix: "demo_test_" });
  try {
    let out = "", err = "";
    const io: CliIo = {
      stdout: (t) => void (out += t),
      stderr: (t) => void (err += t),
      stderrIsTerminal: false,
      env: {},
      now: () => new Date(),
    };
    const code = await main([
      "collect",
      "--replay",
      `${ROOT}demo/recording`,
      "--cluster",
      clusters,
      "--day",
      "2026-11-01",
      "--state",
      `${dir}/state`,
      "--out",
      `${dir}/out`,
      "--json",
    ], io);
    assert.equal(code, 0, err + out);
    const summary = JSON.parse(out);
    assert.equal(summary.clusters.length, 3);
    // Replayed as recorded: one batch for the three clusters, no fallback to per-cluster queries.
    assert.equal(summary.batching.batched, 1, JSON.stringify(summary.batching));
    assert.deepEqual(summary.batching.fallbacks, []);
    for (const c of summary.clusters) {
      assert.equal(c.days.length, 1);
      const [day] = c.days;
      assert.equal(day.status, "new");
      assert.equal(day.hours, 24);
      assert.ok(day.rows.pod > 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
