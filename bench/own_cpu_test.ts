import assert from "node:assert/strict";
import { formatOwnCpu, measureOwnCpu, median, ownCpuHubOptions } from "./own_cpu.ts";

Deno.test("ownCpuHubOptions and median refuse what they cannot measure", () => {
  assert.throws(() => ownCpuHubOptions(0, 3, 20), RangeError);
  assert.throws(() => ownCpuHubOptions(2, 3, 1.5), RangeError);
  assert.throws(() => median([]), RangeError);
  assert.equal(median([5]), 5);
});

Deno.test({
  name: "measureOwnCpu: 2 tiny clusters, one run, both query modes: figures add up",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cacheDir = await Deno.makeTempDir({ prefix: "own_cpu_test_" });
    try {
      for (const clusterBatch of [1, 2]) {
        const r = await measureOwnCpu({
          clusters: 2,
          nodes: 2,
          pods: 3,
          runs: 1,
          clusterBatch,
          cacheDir,
        });
        assert.equal(r.clusters, 2);
        assert.equal(r.payloads, 2);
        assert.ok(r.queries > 0);
        // Per-cluster queries send one query per cluster and catalogue entry; batched fewer.
        if (clusterBatch === 1) assert.equal(r.queries % 2, 0);
        assert.ok(r.bytes > 0);
        assert.equal(r.all.length, 3);
        assert.ok(r.collect.cpuSeconds > r.startup.cpuSeconds, "collect costs more than start-up");
        assert.ok(r.build.cpuSeconds > 0 && r.build.cpuSeconds < r.collect.cpuSeconds);
        assert.equal(r.cpuMsPerPayload, r.build.cpuSeconds * 1000 / 2);
        const own = r.collect.cpuSeconds - r.startup.cpuSeconds - r.build.cpuSeconds;
        assert.ok(Math.abs(r.cpuMsPerQuery - own * 1000 / r.queries) < 1e-9);
        assert.match(formatOwnCpu(r), /2 clusters × 1 hour/);
      }
    } finally {
      await Deno.remove(cacheDir, { recursive: true });
    }
  },
});
