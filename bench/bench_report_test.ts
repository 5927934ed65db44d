import assert from "node:assert/strict";
import {
  type BenchReport,
  formatBenchReport,
  median,
  type ModeFigures,
  type NoRosFigures,
  type ReduceMode,
  summarizeLocal,
  summarizeMode,
  summarizeRos,
  summarizeWindows,
  TARGETS,
  type TimedRun,
} from "./bench_report.ts";

function run(wallMs: number, floorMs: number, peakRssBytes = 100e6): TimedRun {
  return {
    wallMs,
    processMs: wallMs + 400,
    floorMs,
    peakRssBytes,
    bridgeCpuS: wallMs / 4000,
    promCpuS: wallMs / 1000,
    floorPromCpuS: floorMs / 1000,
    floorClientCpuS: floorMs / 10_000,
    otherCpuS: 0.5,
    floorOtherCpuS: 0.25,
    stealS: 0,
  };
}

function mode(m: ReduceMode, runs: TimedRun[], rows = 60_000): ModeFigures {
  return {
    mode: m,
    runs,
    queries: 144,
    bytesDownloaded: 3 * 1_048_576,
    floorRequests: 144,
    floorBytes: 3 * 1_048_576,
    rows,
  };
}

Deno.test("median: odd, even, unsorted, single; empty is a RangeError", () => {
  assert.equal(median([5]), 5);
  assert.equal(median([9, 1, 5]), 5);
  assert.equal(median([10, 2, 4, 8]), 6);
  assert.throws(() => median([]), RangeError);
});

Deno.test("summarizeMode takes medians of each figure separately and checks the targets", () => {
  const s = summarizeMode(
    mode("client", [run(30_000, 20_000, 300e6), run(24_000, 21_000, 200e6), run(22_000, 19_000)]),
  );
  assert.equal(s.wallS, 24);
  assert.equal(s.floorS, 20);
  assert.equal(s.ratio, 1.2);
  assert.equal(s.ratioOk, false);
  assert.equal(s.peakRssMb, 200);
  assert.equal(s.rssOk, true);
  assert.equal(s.rowsPerS, 2500);
  assert.equal(s.processS, 24.4);
  assert.equal(s.bridgeCpuS, 6);
});

Deno.test("summarizeMode: the targets are inclusive", () => {
  const atTarget = summarizeMode(
    mode("server", [run(TARGETS.maxRatio * 10_000, 10_000, TARGETS.maxRssMb * 1e6)]),
  );
  assert.equal(atTarget.ratioOk, true);
  assert.equal(atTarget.rssOk, true);
  const over = summarizeMode(mode("server", [run(11_600, 10_000, 256.1e6)]));
  assert.equal(over.ratioOk, false);
  assert.equal(over.rssOk, false);
});

Deno.test("summarizeWindows pairs 1 h with 24 h per mode and skips incomplete modes", () => {
  const w = summarizeWindows([
    { mode: "server", hours: 24, peakRssBytes: [150e6, 160e6, 155e6] },
    { mode: "client", hours: 1, peakRssBytes: [100e6] },
    { mode: "server", hours: 1, peakRssBytes: [100e6, 90e6, 110e6] },
  ]);
  assert.equal(w.length, 1);
  assert.equal(w[0]!.mode, "server");
  assert.equal(w[0]!.rss1hMb, 100);
  assert.equal(w[0]!.rss24hMb, 155);
  assert.equal(w[0]!.growth, 1.55);
  assert.equal(w[0]!.growthOk, false);
  assert.equal(w[0]!.rssOk, true);
});

Deno.test("formatBenchReport prints each mode's figures with the verdicts next to them", () => {
  const report: BenchReport = {
    hub: {
      pods: 2000,
      nodes: 80,
      pvcs: 300,
      vms: 20,
      series: 41_517,
      day: "2026-11-01",
      cached: true,
      prepareMs: 0,
    },
    machine: { cpus: 2, memTotalBytes: 25e9 },
    prometheusVersion: "2.42.0+ds",
    iterations: 1,
    modes: [mode("server", [run(11_000, 10_000)]), mode("client", [run(13_000, 10_000, 300e6)])],
    windows: [
      { mode: "server", hours: 1, peakRssBytes: [90e6] },
      { mode: "server", hours: 24, peakRssBytes: [100e6] },
    ],
    source: { before: "0123456789abcdef", after: "fedcba9876543210" },
    compactionsDuringBench: 2,
    sampledProcess: { command: "deno run … collect", childProcesses: 0 },
  };
  const text = formatBenchReport(report);
  const lines = text.split("\n");
  const server = lines.find((l) => l.startsWith("server  "))!;
  const client = lines.find((l) => l.startsWith("client  "))!;
  assert.deepEqual(server.split(/\s+/).slice(0, 5), ["server", "11.00", "10.00", "1.100", "ok"]);
  assert.deepEqual(client.split(/\s+/).slice(0, 5), [
    "client",
    "13.00",
    "10.00",
    "1.300",
    "MISSED",
  ]);
  assert.match(client, /300\.0\s+MISSED/);
  assert.match(server, /\b60000\s+5455\b/);
  assert.match(text, /2000 pods, 80 nodes, 300 PVCs, 20 VMs, 41517 series/);
  assert.match(text, /Prometheus 2\.42\.0\+ds/);
  assert.match(text, /^server\s+90\.0\s+100\.0\s+1\.11\s+ok\s+ok$/m);
  assert.match(text, /compactions during the measurements: 2 \(WARNING/);
  assert.match(
    text,
    /WARNING: src\/ changed during the run \(0123456789abcdef → fedcba9876543210\)/,
  );
});

function noRos(wallMs: number[], bytesDownloaded = 2 * 1_048_576, queries = 96): NoRosFigures {
  return {
    mode: "server",
    runs: wallMs.map((w) => ({
      wallMs: w,
      processMs: w + 400,
      peakRssBytes: 80e6,
      bridgeCpuS: w / 5000,
      promCpuS: w / 1250,
    })),
    queries,
    bytesDownloaded,
    rows: 40_000,
  };
}

Deno.test("summarizeRos: medians with and without ROS, overheads, inclusive 35 % target", () => {
  const modes = [
    mode("server", [run(12_000, 10_000), run(14_000, 10_000), run(13_000, 10_000)]),
    mode("client", [run(20_000, 10_000)]),
  ];
  const [s, ...rest] = summarizeRos(modes, [noRos([10_000, 9_000, 11_000])]);
  assert.equal(rest.length, 0, "client mode has no --no-ros runs");
  assert.equal(s!.mode, "server");
  assert.equal(s!.wallS, 13);
  assert.equal(s!.noRosWallS, 10);
  assert.ok(Math.abs(s!.wallOverhead - 0.3) < 1e-12);
  assert.equal(s!.wallOk, true);
  assert.equal(s!.downloadOverhead, 0.5);
  assert.equal(s!.downloadOk, false);
  assert.equal(s!.queryOverhead, 0.5);
  assert.equal(s!.rows, 60_000);
  assert.equal(s!.noRosRows, 40_000);
  assert.equal(s!.noRosPeakRssMb, 80);
  assert.equal(s!.noRosBridgeCpuS, 2);
  const atTarget = summarizeRos(
    [{ ...mode("server", [run(13_500, 10_000)]), bytesDownloaded: 2_700_000 }],
    [noRos([10_000], 2_000_000)],
  )[0]!;
  assert.equal(atTarget.wallOk, true);
  assert.equal(atTarget.downloadOk, true);
  assert.equal(summarizeRos(modes, [noRos([9_000])])[0]!.wallOk, false); // +44 %
  assert.deepEqual(summarizeRos(modes, []), []);
});

Deno.test("formatBenchReport prints the ROS cost next to the 35 % target; none without --no-ros runs", () => {
  const base: BenchReport = {
    hub: {
      pods: 2000,
      nodes: 80,
      pvcs: 300,
      vms: 20,
      series: 41_517,
      day: "2026-11-01",
      cached: false,
      prepareMs: 300_000,
    },
    machine: { cpus: 2, memTotalBytes: 25e9 },
    prometheusVersion: "2.42.0+ds",
    iterations: 2,
    modes: [mode("server", [run(12_000, 10_000), run(14_000, 10_000)])],
    windows: [],
    source: { before: "0123456789abcdef", after: "0123456789abcdef" },
    compactionsDuringBench: 0,
    sampledProcess: { command: "deno run … collect", childProcesses: 0 },
  };
  const without = formatBenchReport(base);
  assert.doesNotMatch(without, /ROS cost/);
  assert.match(without, /^server\s+13\.00\s+10\.00\s+1\.300\s+MISSED/m);

  const text = formatBenchReport({ ...base, noRos: [noRos([10_000, 10_400], 2 * 1_048_576)] });
  assert.match(
    text,
    /^ROS cost, server mode \(medians;.*--no-ros; overhead = ROS \/ no ROS − 1\):$/m,
  );
  assert.match(text, /^figure\s+ROS\s+--no-ros\s+overhead\s+\(≤ \+35 %\)$/m);
  assert.match(text, /^wall s\s+13\.00\s+10\.20\s+\+27\.5 %\s+ok$/m);
  assert.match(text, /^downloaded\s+3\.0 MiB\s+2\.0 MiB\s+\+50\.0 %\s+MISSED$/m);
  assert.match(text, /^queries\s+144\s+96\s+\+50\.0 %$/m);
  assert.match(text, /^rows\s+60000\s+40000\s+\+50\.0 %$/m);
  assert.match(text, /^peak RSS MB\s+100\.0\s+80\.0\s+\+25\.0 %$/m);
  // The existing figures are still there, unchanged.
  assert.match(text, /^server\s+13\.00\s+10\.00\s+1\.300\s+MISSED/m);
  assert.equal(TARGETS.maxRosOverhead, 0.35);
});

/** A run with the given wall time, Prometheus CPU and peak RSS (the rest as `run`). */
function runWith(wallMs: number, promCpuS: number, peakRssBytes: number): TimedRun {
  return { ...run(wallMs, wallMs, peakRssBytes), promCpuS };
}

Deno.test("summarizeLocal: local against server, medians, the three targets inclusive", () => {
  const server = mode("server", [
    runWith(40_000, 80, 150e6),
    runWith(44_000, 100, 160e6),
    runWith(42_000, 90, 155e6),
  ]);
  const local: ModeFigures = {
    ...mode("local", [
      runWith(9_000, 3, 200e6),
      runWith(10_500, 5, 250e6),
      runWith(10_000, 4, 240e6),
    ]),
    queries: 40,
    bytesDownloaded: 30 * 1_048_576,
    selfCheck: { checks: 4, mismatches: 0, serverQueries: 1 },
  };
  const s = summarizeLocal([server, mode("client", [run(50_000, 10_000)]), local])!;
  assert.equal(s.wallS, 10);
  assert.equal(s.serverWallS, 42);
  assert.equal(s.wallRatio, 10 / 42);
  assert.equal(s.wallOk, true);
  assert.equal(s.promCpuS, 4);
  assert.equal(s.serverPromCpuS, 90);
  assert.equal(s.promCpuRatio, 4 / 90);
  assert.equal(s.promCpuOk, true);
  assert.equal(s.peakRssMb, 240);
  assert.equal(s.serverPeakRssMb, 155);
  assert.equal(s.rssOk, true);
  assert.equal(s.queries, 40);
  assert.equal(s.serverQueries, 144);
  assert.equal(s.bytesDownloaded, 30 * 1_048_576);
  assert.deepEqual(s.selfCheck, { checks: 4, mismatches: 0, serverQueries: 1 });

  // Exactly at the targets: pass (1/20 and 1/4 are not exact in binary).
  const at = summarizeLocal([
    mode("server", [runWith(40_000, 100, 100e6)]),
    mode("local", [runWith(10_000, 5, TARGETS.localMaxRssMb * 1e6)]),
  ])!;
  assert.deepEqual([at.wallOk, at.promCpuOk, at.rssOk], [true, true, true]);
  const over = summarizeLocal([
    mode("server", [runWith(40_000, 100, 100e6)]),
    mode("local", [runWith(10_001, 5.01, 256.1e6)]),
  ])!;
  assert.deepEqual([over.wallOk, over.promCpuOk, over.rssOk], [false, false, false]);
  assert.equal(TARGETS.localMaxPromCpuRatio, 0.05);
  assert.equal(TARGETS.localMaxWallRatio, 0.25);
  assert.equal(TARGETS.localMaxRssMb, 256);
});

Deno.test("summarizeLocal: no local mode, undefined; no server mode, no ratios", () => {
  assert.equal(summarizeLocal([mode("server", [run(1_000, 1_000)])]), undefined);
  assert.equal(summarizeLocal([mode("local", [])]), undefined);
  const alone = summarizeLocal([mode("local", [runWith(10_000, 5, 300e6)])])!;
  assert.equal(alone.wallS, 10);
  assert.equal(alone.serverWallS, null);
  assert.equal(alone.wallRatio, null);
  assert.equal(alone.wallOk, null);
  assert.equal(alone.promCpuRatio, null);
  assert.equal(alone.promCpuOk, null);
  assert.equal(alone.rssOk, false);
  assert.equal(alone.selfCheck, null);
});

function localReport(modes: ModeFigures[]): BenchReport {
  return {
    hub: {
      pods: 2000,
      nodes: 80,
      pvcs: 300,
      vms: 20,
      series: 41_517,
      day: "2026-11-01",
      cached: true,
      prepareMs: 0,
    },
    machine: { cpus: 2, memTotalBytes: 25e9 },
    prometheusVersion: "2.42.0+ds",
    iterations: 1,
    modes,
    windows: [
      { mode: "local", hours: 1, peakRssBytes: [100e6] },
      { mode: "local", hours: 24, peakRssBytes: [120e6] },
    ],
    source: { before: "0123456789abcdef", after: "0123456789abcdef" },
    compactionsDuringBench: 0,
    sampledProcess: { command: "deno run … collect", childProcesses: 0 },
  };
}

Deno.test("formatBenchReport prints local mode next to server mode with the three verdicts", () => {
  const local: ModeFigures = {
    ...mode("local", [{ ...runWith(10_000, 6, 300e6), floorMs: 8_000, bridgeCpuS: 9 }]),
    queries: 52,
    bytesDownloaded: 30 * 1_048_576,
    floorRequests: 52,
    floorBytes: 30 * 1_048_576,
    selfCheck: { checks: 4, mismatches: 1, serverQueries: 0 },
  };
  const text = formatBenchReport(
    localReport([mode("server", [runWith(50_000, 100, 150e6)]), local]),
  );
  // The main table has a local row, with the existing floor and RSS verdicts.
  assert.match(
    text,
    /^local\s+10\.00\s+8\.00\s+1\.250\s+MISSED\s+30\.0 MiB\s+52\s+300\.0\s+MISSED/m,
  );
  assert.match(
    text,
    /^Local mode \(--reduce local\) against server mode \(medians; ratio = local \/ server\):$/m,
  );
  assert.match(text, /^figure\s+server\s+local\s+ratio\s+target$/m);
  assert.match(text, /^Prometheus CPU s\s+100\.0\s+6\.0\s+0\.060\s+≤ 1\/20\s+MISSED$/m);
  assert.match(text, /^wall s\s+50\.00\s+10\.00\s+0\.200\s+≤ 1\/4\s+ok$/m);
  assert.match(text, /^peak RSS MB\s+150\.0\s+300\.0\s+2\.000\s+≤ 256 MB\s+MISSED$/m);
  assert.match(text, /^floor s\s+50\.00\s+8\.00\s+0\.160$/m);
  assert.match(text, /^downloaded\s+3\.0 MiB\s+30\.0 MiB\s+10\.000$/m);
  assert.match(text, /^bridge CPU s\s+12\.5\s+9\.0\s+0\.720$/m);
  assert.match(text, /^queries\s+144\s+52\s+0\.361$/m);
  assert.match(text, /^local self-checks: 4 made, 1 mismatch\(es\), 0 .*\(WARNING/m);
  // The window table and the CPU table have their local rows too.
  assert.match(text, /^local\s+100\.0\s+120\.0\s+1\.20\s+ok\s+ok$/m);
  assert.match(text, /^local\s+9\.0\s+6\.0\s+0\.5\s/m);

  const alone = formatBenchReport(localReport([local]));
  assert.match(alone, /^Prometheus CPU s\s+—\s+6\.0\s+—\s+≤ 1\/20\s+—$/m);
  assert.match(alone, /^peak RSS MB\s+—\s+300\.0\s+—\s+≤ 256 MB\s+MISSED$/m);
  assert.match(alone, /server mode was not measured/);
  // Without local mode, no local section.
  assert.doesNotMatch(
    formatBenchReport(localReport([mode("server", [run(1_000, 1_000)])])),
    /Local mode/,
  );
});
