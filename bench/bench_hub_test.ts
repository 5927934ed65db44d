import assert from "node:assert/strict";
import { BENCH_DAY, benchHubKey, benchHubOptions, prepareBenchHub } from "./bench_hub.ts";

Deno.test("benchHubOptions scales nodes, PVCs and VMs with the pods; 26 h from the evening before", () => {
  const o = benchHubOptions(2000);
  assert.equal(o.clusters, 1);
  assert.equal(o.nodes, 80);
  assert.equal(o.pvcs, 300);
  assert.equal(o.vms, 20);
  assert.equal(o.gpuPods, 0);
  assert.equal(o.hours, 26);
  assert.equal(o.intervalSeconds, 300);
  assert.equal(o.start.getTime(), Date.parse(`${BENCH_DAY}T00:00:00Z`) - 2 * 3_600_000);
  const small = benchHubOptions(3);
  assert.deepEqual([small.nodes, small.pvcs, small.vms], [2, 0, 1]);
  assert.throws(() => benchHubOptions(0), RangeError);
  assert.throws(() => benchHubOptions(2.5), RangeError);
});

Deno.test("benchHubOptions { vms: 0 }: the shape without KubeVirt (and, as always, no GPUs)", () => {
  const o = benchHubOptions(2000, { vms: 0 });
  assert.deepEqual([o.vms, o.gpuPods, o.nodes, o.pvcs], [0, 0, 80, 300]);
  assert.deepEqual({ ...o, vms: 20 }, benchHubOptions(2000));
  assert.throws(() => benchHubOptions(2000, { vms: -1 }), RangeError);
});

Deno.test("benchHubKey keeps the keys of the TSDBs cached before multi-part specs", async () => {
  // The entries of the 500- and 2000-pod bench hubs (format 2, 6 h per file) depend only on
  // the options and the generator's sources: pin the layout with a hand-made equivalent.
  const o = benchHubOptions(500);
  const sources = await Promise.all(
    ["../tools/synth/model.ts", "../tools/synth/openmetrics.ts"].map((p) =>
      Deno.readTextFile(new URL(p, import.meta.url))
    ),
  );
  const canonical = JSON.stringify(
    { format: 2, hoursPerFile: 6, ...o, start: o.start.toISOString(), sources },
    Object.keys({ ...o, format: 0, hoursPerFile: 0, sources: 0 }).sort(),
  );
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical)),
  );
  const expected = Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
  assert.equal(await benchHubKey(o, 6), expected);
  assert.notEqual(await benchHubKey(benchHubOptions(500, { vms: 0 }), 6), expected);
});

Deno.test("benchHubKey is stable and changes with any option or the hours per file", async () => {
  const base = await benchHubKey(benchHubOptions(200), 6);
  assert.equal(await benchHubKey(benchHubOptions(200), 6), base);
  assert.notEqual(await benchHubKey(benchHubOptions(200), 24), base);
  assert.notEqual(await benchHubKey({ ...benchHubOptions(200), seed: 1 }, 6), base);
  assert.notEqual(
    await benchHubKey({ ...benchHubOptions(200), start: new Date("2026-10-30T22:00:00Z") }, 6),
    base,
  );
});

Deno.test({
  name: "prepareBenchHub caches the TSDB by key and reuses it; without a cache it cleans up",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cacheDir = await Deno.makeTempDir({ prefix: "bench_hub_cache_" });
    try {
      const options = benchHubOptions(3);
      const lines: string[] = [];
      const first = await prepareBenchHub(options, {
        cacheDir,
        hoursPerFile: 24,
        log: (l) => lines.push(l),
      });
      assert.equal(first.cached, false);
      assert.ok(first.prepareMs > 0);
      assert.equal(first.settleCompactions, 0);
      assert.match(first.clusterId, /^[0-9a-f-]{36}$/);
      assert.ok(first.series > 0);
      const blocks = [...Deno.readDirSync(first.dataDir)].filter((e) =>
        /^[0-9A-Z]{26}$/.test(e.name)
      );
      assert.ok(blocks.length > 0, "backfilled blocks");
      await first.dispose(); // a cache entry survives dispose
      const entries = [...Deno.readDirSync(cacheDir)].map((e) => e.name);
      assert.deepEqual(entries, [`hub-${await benchHubKey(options, 24)}`], "no temp leftovers");

      const second = await prepareBenchHub(options, { cacheDir, hoursPerFile: 24 });
      assert.equal(second.cached, true);
      assert.equal(second.prepareMs, 0);
      assert.equal(second.dataDir, first.dataDir);
      assert.equal(second.clusterId, first.clusterId);
      assert.deepEqual(second.clusterIds, [first.clusterId]);
      assert.equal(second.series, first.series);
      assert.ok(lines.some((l) => l.includes("cached the TSDB")));

      const temp = await prepareBenchHub(options, { hoursPerFile: 24 });
      assert.equal(temp.cached, false);
      assert.equal(temp.clusterId, first.clusterId);
      assert.ok(Deno.statSync(temp.dataDir).isDirectory);
      await temp.dispose();
      assert.throws(() => Deno.statSync(temp.dataDir), Deno.errors.NotFound);
    } finally {
      await Deno.remove(cacheDir, { recursive: true });
    }
  },
});
