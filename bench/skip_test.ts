import assert from "node:assert/strict";
import { formatSkipReport } from "./fleet_report.ts";
import { parseSkipArgs, runSkipBench, skipJson } from "./skip.ts";

Deno.test("parseSkipArgs: defaults, BENCH_CACHE, overrides, bad values", () => {
  assert.deepEqual(parseSkipArgs([], {}), {
    pods: 2000,
    iterations: 3,
    hoursPerFile: 6,
    ros: true,
  });
  assert.equal(parseSkipArgs(["--no-ros"], {}).ros, false);
  assert.deepEqual(
    parseSkipArgs(["--pods", "500", "--iterations", "1", "--hours-per-file", "24"], {
      BENCH_CACHE: "/env",
    }),
    { pods: 500, iterations: 1, hoursPerFile: 24, ros: true, cacheDir: "/env" },
  );
  assert.throws(() => parseSkipArgs(["--pods", "0"], {}), /--pods "0"/);
  assert.throws(() => parseSkipArgs(["--hours-per-file", "25"], {}), RangeError);
  assert.throws(() => parseSkipArgs(["--clusters", "3"], {}), TypeError);
});

Deno.test({
  name: "runSkipBench on a tiny cluster without VMs: both settings, payloads compared, cleaned up",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const privateTmp = await Deno.makeTempDir({ prefix: "skip_test_tmp_" });
    const savedTmp = Deno.env.get("TMPDIR");
    Deno.env.set("TMPDIR", privateTmp);
    try {
      const report = await runSkipBench(
        { pods: 3, iterations: 1, hoursPerFile: 24, ros: true },
        { log: () => {} },
      );
      assert.equal(report.hub.vms, 0);
      assert.equal(report.noSkip.skippedQueries, 0, "--no-skip-empty skips nothing");
      // No GPUs, no VMs: the DCGM and KubeVirt queries must be skipped.
      assert.ok(report.skip.skippedQueries > 0, "--skip-empty skips the GPU and VM queries");
      assert.ok(report.skip.queries < report.noSkip.queries);
      assert.ok(
        report.skip.queries <= report.noSkip.queries + 24,
        "at most a probe per batch more",
      );
      assert.equal(report.skip.rows, report.noSkip.rows);
      assert.ok(report.payloads.compared > 0, "CSV members were compared");
      assert.deepEqual(report.payloads.differing, [], "payloads identical with and without skip");
      assert.equal(report.noSkip.runs.length, 1);
      assert.ok(report.noSkip.runs[0]!.promCpuS >= 0);
      assert.match(formatSkipReport(report), /^Prometheus CPU s\s/m);
      assert.ok("summary" in skipJson(report));
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
