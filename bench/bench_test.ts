import assert from "node:assert/strict";
import { benchJson, benchKind, MODES, parseBenchArgs, runBench, selfCheckOf } from "./bench.ts";
import { formatBenchReport } from "./bench_report.ts";

Deno.test("parseBenchArgs: defaults, --quick, BENCH_CACHE, overrides", () => {
  assert.deepEqual(parseBenchArgs([], {}), {
    pods: 2000,
    iterations: 3,
    hoursPerFile: 6,
    modes: ["server", "client", "local"],
    quick: false,
  });
  assert.deepEqual(parseBenchArgs(["--quick"], { BENCH_CACHE: "" }), {
    pods: 100,
    iterations: 1,
    hoursPerFile: 24,
    modes: ["server", "client", "local"],
    quick: true,
  });
  const o = parseBenchArgs(
    ["--pods", "2500", "--iterations", "5", "--cache", "/c", "--json-out", "/tmp/b.json"],
    { BENCH_CACHE: "/env" },
  );
  assert.deepEqual(o, {
    pods: 2500,
    iterations: 5,
    hoursPerFile: 6,
    modes: ["server", "client", "local"],
    quick: false,
    cacheDir: "/c",
    jsonOut: "/tmp/b.json",
  });
  assert.equal(parseBenchArgs([], { BENCH_CACHE: "/env" }).cacheDir, "/env");
  assert.equal(parseBenchArgs(["--quick", "--pods", "300"], {}).pods, 300);
});

Deno.test("parseBenchArgs --modes: a subset, always in the order server, client, local", () => {
  assert.deepEqual(MODES, ["server", "client", "local"]);
  assert.deepEqual(parseBenchArgs(["--modes", "server"], {}).modes, ["server"]);
  assert.deepEqual(parseBenchArgs(["--modes", "client"], {}).modes, ["client"]);
  assert.deepEqual(parseBenchArgs(["--modes", "local"], {}).modes, ["local"]);
  assert.deepEqual(parseBenchArgs(["--modes", "client, server"], {}).modes, ["server", "client"]);
  assert.deepEqual(parseBenchArgs(["--modes", "local,server"], {}).modes, ["server", "local"]);
  assert.deepEqual(parseBenchArgs(["--modes", "local,client,server"], {}).modes, [
    "server",
    "client",
    "local",
  ]);
  assert.throws(() => parseBenchArgs(["--modes", "both"], {}), /--modes "both"/);
  assert.throws(
    () => parseBenchArgs(["--modes", "remote"], {}),
    /expected a comma-separated list of server, client, local/,
  );
  assert.throws(() => parseBenchArgs(["--modes", ""], {}), RangeError);
  assert.throws(() => parseBenchArgs(["--modes", "server,"], {}), RangeError);
});

Deno.test("parseBenchArgs rejects bad numbers and unknown flags", () => {
  assert.throws(() => parseBenchArgs(["--pods", "0"], {}), RangeError);
  assert.throws(() => parseBenchArgs(["--pods", "2k"], {}), /--pods "2k"/);
  assert.throws(() => parseBenchArgs(["--iterations", "0"], {}), RangeError);
  assert.throws(() => parseBenchArgs(["--hours-per-file", "25"], {}), RangeError);
  assert.throws(() => parseBenchArgs(["--until", "3"], {}), TypeError);
});

Deno.test("benchKind: --fleet and --skip pick the benchmark anywhere on the line, not both", () => {
  assert.deepEqual(benchKind([]), { kind: "day", args: [] });
  assert.deepEqual(benchKind(["--quick", "--pods", "3"]), {
    kind: "day",
    args: ["--quick", "--pods", "3"],
  });
  assert.deepEqual(benchKind(["--fleet", "--clusters", "300"]), {
    kind: "fleet",
    args: ["--clusters", "300"],
  });
  assert.deepEqual(benchKind(["--iterations", "1", "--skip"]), {
    kind: "skip",
    args: ["--iterations", "1"],
  });
  assert.throws(() => benchKind(["--fleet", "--skip"]), TypeError);
  // The day bench's parser still refuses them (so they never reach it unnoticed).
  assert.throws(() => parseBenchArgs(["--fleet"], {}), TypeError);
});

Deno.test("selfCheckOf: local mode's self-check counts; undefined without a local section", () => {
  assert.equal(selfCheckOf({ summary: {} }), undefined);
  assert.deepEqual(
    selfCheckOf({
      summary: {
        local: {
          checks: 8,
          mismatches: [{ query: "q", clusters: ["c"] }],
          serverQueries: [{ query: "a", reason: "r" }, { query: "b", reason: "r" }],
        },
      },
    }),
    { checks: 8, mismatches: 1, serverQueries: 2 },
  );
});

function benchTemps(): Set<string> {
  const dir = Deno.env.get("TMPDIR") ?? "/tmp";
  return new Set(
    [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
      n.startsWith("thanos_bridge_bench_")
    ),
  );
}

Deno.test({
  name: "runBench on a tiny cluster: all three modes, floors replay the same bytes, all cleaned up",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // A private TMPDIR, so that other bench runs on the machine cannot disturb the check below.
    const privateTmp = await Deno.makeTempDir({ prefix: "bench_test_tmp_" });
    const savedTmp = Deno.env.get("TMPDIR");
    Deno.env.set("TMPDIR", privateTmp);
    try {
      await checkTinyBench();
      assert.deepEqual([...benchTemps()], [], "no temp folders left behind");
    } finally {
      if (savedTmp === undefined) Deno.env.delete("TMPDIR");
      else Deno.env.set("TMPDIR", savedTmp);
      await Deno.remove(privateTmp, { recursive: true });
    }
  },
});

async function checkTinyBench(): Promise<void> {
  {
    const lines: string[] = [];
    const report = await runBench(
      {
        pods: 3,
        iterations: 1,
        hoursPerFile: 24,
        modes: ["server", "client", "local"],
        quick: true,
      },
      { log: (l) => lines.push(l) },
    );
    assert.deepEqual(report.modes.map((m) => m.mode), ["server", "client", "local"]);
    const [server, client, local] = report.modes;
    assert.ok(server && client && local);
    for (const m of report.modes) {
      assert.equal(m.runs.length, 1);
      assert.ok(m.rows > 0);
      // The floor fetched exactly what the bridge downloaded, request for request.
      assert.equal(m.floorRequests, m.queries);
      assert.equal(m.floorBytes, m.bytesDownloaded);
      const r = m.runs[0]!;
      assert.ok(r.wallMs > 0 && r.floorMs > 0 && r.processMs > r.wallMs);
      assert.ok(r.peakRssBytes > 20e6);
      assert.ok(r.promCpuS > 0);
    }
    // Same cluster-day, same rows; the server reduces, so it downloads less.
    assert.equal(server.rows, client.rows);
    assert.equal(local.rows, server.rows);
    assert.ok(server.bytesDownloaded < client.bytesDownloaded);
    // Local mode's self-checks all agreed (a mismatch would recollect hours in server mode).
    assert.ok(local.selfCheck && local.selfCheck.checks > 0, JSON.stringify(local.selfCheck));
    assert.equal(local.selfCheck.mismatches, 0);
    assert.equal(server.selfCheck, undefined);
    assert.deepEqual(
      report.windows.map((w) => `${w.mode}/${w.hours}`).sort(),
      ["client/1", "client/24", "local/1", "local/24", "server/1", "server/24"],
    );
    // Server mode is also run with --no-ros: fewer queries, bytes and rows, same for the rest.
    assert.deepEqual(report.noRos?.map((n) => n.mode), ["server"]);
    const plain = report.noRos![0]!;
    assert.equal(plain.runs.length, 1);
    assert.ok(plain.runs[0]!.wallMs > 0 && plain.runs[0]!.peakRssBytes > 20e6);
    assert.ok(plain.queries < server.queries, `${plain.queries} < ${server.queries}`);
    assert.ok(plain.bytesDownloaded < server.bytesDownloaded);
    assert.ok(plain.rows < server.rows);
    assert.ok(!lines.some((l) => l.includes("ROS hours")), lines.join("\n"));
    assert.equal(report.compactionsDuringBench, 0);
    assert.match(report.source.before, /^[0-9a-f]{16}$/);
    assert.equal(report.sampledProcess.childProcesses, 0);
    assert.match(report.sampledProcess.command, /main\.ts collect/);
    assert.equal(report.hub.pods, 3);
    assert.match(report.prometheusVersion, /^\d+\.\d+\.\d+/);

    const text = formatBenchReport(report);
    assert.match(text, /^server\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d{3}\s+(ok|MISSED)\s/m);
    assert.match(text, /^ROS cost, server mode/m);
    assert.match(text, /^wall s\s+\d+\.\d\d\s+\d+\.\d\d\s+[+-]?\d+\.\d %\s+(ok|MISSED)$/m);
    assert.match(text, /^local\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d{3}\s+(ok|MISSED)\s/m);
    assert.match(
      text,
      /^Prometheus CPU s\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d{3}\s+≤ 1\/20\s+(ok|MISSED)$/m,
    );
    const json = benchJson(report) as {
      summary: {
        modes: { ratio: number }[];
        ros: { queryOverhead: number }[];
        local: { wallRatio: number; promCpuOk: boolean; rssOk: boolean } | null;
      };
    };
    assert.equal(json.summary.modes.length, 3);
    assert.ok(json.summary.local && json.summary.local.wallRatio > 0);
    assert.equal(typeof json.summary.local.promCpuOk, "boolean");
    assert.equal(json.summary.ros.length, 1);
    assert.ok(json.summary.ros[0]!.queryOverhead > 0);
    assert.ok(json.summary.modes.every((m) => Number.isFinite(m.ratio) && m.ratio > 0));
  }
}
