import assert from "node:assert/strict";
import { FLEET_HOURS, fleetJson, parseFleetArgs, runFleetBench } from "./fleet.ts";
import { formatFleetReport } from "./fleet_report.ts";

Deno.test("parseFleetArgs: defaults, BENCH_CACHE, overrides, bad values", () => {
  assert.deepEqual(parseFleetArgs([], {}), { clusters: 200, iterations: 3, hoursPerFile: 6 });
  assert.deepEqual(
    parseFleetArgs(
      ["--clusters", "400", "--iterations", "5", "--cache", "/c", "--json-out", "/tmp/f.json"],
      { BENCH_CACHE: "/env" },
    ),
    { clusters: 400, iterations: 5, hoursPerFile: 6, cacheDir: "/c", jsonOut: "/tmp/f.json" },
  );
  assert.equal(parseFleetArgs([], { BENCH_CACHE: "/env" }).cacheDir, "/env");
  assert.equal(parseFleetArgs([], { BENCH_CACHE: "" }).cacheDir, undefined);
  assert.throws(() => parseFleetArgs(["--clusters", "1"], {}), /--clusters "1"/);
  assert.throws(() => parseFleetArgs(["--clusters", "2e2"], {}), RangeError);
  assert.throws(() => parseFleetArgs(["--iterations", "0"], {}), RangeError);
  assert.throws(() => parseFleetArgs(["--pods", "20"], {}), TypeError);
  assert.equal(FLEET_HOURS.timed > FLEET_HOURS.warm, true);
});

Deno.test({
  name: "runFleetBench on 3 tiny clusters: both modes, floors replay the same bytes, cleaned up",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const privateTmp = await Deno.makeTempDir({ prefix: "fleet_test_tmp_" });
    const savedTmp = Deno.env.get("TMPDIR");
    Deno.env.set("TMPDIR", privateTmp);
    try {
      const lines: string[] = [];
      const report = await runFleetBench(
        { clusters: 3, iterations: 1, hoursPerFile: 24 },
        { log: (l) => lines.push(l) },
      );
      assert.deepEqual(report.modes.map((m) => m.mode), ["per-cluster", "batched"]);
      const [per, batched] = report.modes;
      assert.ok(per && batched);
      for (const m of report.modes) {
        assert.equal(m.clusters, 3);
        assert.equal(m.runs.length, 1);
        assert.equal(m.floorRequests, m.queries, `${m.mode}: the floor replays every query`);
        assert.equal(m.floorBytes, m.bytesDownloaded, `${m.mode}: byte for byte`);
        assert.equal(m.fallbacks, 0);
        assert.ok(m.runs[0]!.wallMs > 0 && m.runs[0]!.floorMs > 0 && m.runs[0]!.promCpuS >= 0);
      }
      assert.equal(per.clusterBatch, 1);
      assert.ok(batched.queries < per.queries, `${batched.queries} < ${per.queries}`);
      assert.ok(batched.batched > 0);
      assert.equal(batched.rows, per.rows, "same hour, same rows in both modes");
      assert.equal(report.hub.clusters, 3);
      assert.equal(report.hub.vmClusters, 1);
      const text = formatFleetReport(report);
      assert.match(text, /^batched\s+\d+\s+\d+\.\d\d\s+(ok|MISSED)\s/m);
      assert.ok(Array.isArray((fleetJson(report) as { summary: unknown[] }).summary));
      assert.deepEqual(
        [...Deno.readDirSync(privateTmp)].map((e) => e.name).filter((n) =>
          n.startsWith("thanos_bridge_bench")
        ),
        [],
        "no temp folders left behind",
      );
    } finally {
      if (savedTmp === undefined) Deno.env.delete("TMPDIR");
      else Deno.env.set("TMPDIR", savedTmp);
      await Deno.remove(privateTmp, { recursive: true });
    }
  },
});
