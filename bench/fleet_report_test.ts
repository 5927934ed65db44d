import assert from "node:assert/strict";
import {
  FLEET_TARGETS,
  type FleetModeFigures,
  type FleetReport,
  formatFleetReport,
  formatLoad,
  formatSkipReport,
  type SkipReport,
  type SkipSetting,
  summarizeFleetMode,
  summarizeSkip,
} from "./fleet_report.ts";

const run = (wallMs: number, floorMs: number, peakRssBytes = 150e6) => ({
  wallMs,
  processMs: wallMs + 500,
  floorMs,
  peakRssBytes,
  bridgeCpuS: wallMs / 2000,
  promCpuS: 6,
  floorPromCpuS: 5,
});

function mode(m: Partial<FleetModeFigures> & Pick<FleetModeFigures, "mode">): FleetModeFigures {
  return {
    clusterBatch: m.mode === "batched" ? 100 : 1,
    runs: [run(4000, 3800)],
    clusters: 200,
    hours: 1,
    queries: 100,
    bytesDownloaded: 10 * 1_048_576,
    batches: 2,
    batched: 2,
    skippedQueries: 0,
    fallbacks: 0,
    rows: 10_000,
    floorRequests: 100,
    floorBytes: 10 * 1_048_576,
    ...m,
  };
}

Deno.test("summarizeFleetMode: medians, queries per cluster-hour and the verdicts", () => {
  const s = summarizeFleetMode(mode({
    mode: "batched",
    runs: [run(4400, 4000), run(9000, 4100, 300e6), run(4500, 3000)],
  }));
  assert.equal(s.wallS, 4.5);
  assert.equal(s.floorS, 4);
  assert.equal(s.ratio, 1.125);
  assert.equal(s.ratioOk, true);
  assert.equal(s.queriesPerClusterHour, 0.5);
  assert.equal(s.queriesOk, true);
  assert.equal(s.peakRssMb, 150);
  assert.equal(s.mib, 10);
  const per = summarizeFleetMode(mode({
    mode: "per-cluster",
    queries: 10_000,
    runs: [run(20_000, 10_000, 257e6)],
  }));
  assert.equal(per.queriesPerClusterHour, 50);
  assert.equal(per.queriesOk, false);
  assert.equal(per.ratioOk, false);
  assert.equal(per.rssOk, false);
  // Exactly at the targets passes; two hours halve the queries per cluster-hour.
  const edge = summarizeFleetMode(mode({
    mode: "batched",
    queries: 400,
    hours: 2,
    runs: [run(1150, 1000, FLEET_TARGETS.maxRssMb * 1e6)],
  }));
  assert.equal(edge.queriesPerClusterHour, 1);
  assert.equal(edge.queriesOk && edge.rssOk, true);
  assert.equal(edge.ratioOk, true, `ratio ${edge.ratio}`);
  assert.throws(() => summarizeFleetMode(mode({ mode: "batched", runs: [] })), RangeError);
});

const fleetReport = (modes: FleetModeFigures[]): FleetReport => ({
  hub: {
    clusters: 200,
    gpuClusters: 3,
    vmClusters: 5,
    nodesPerCluster: 3,
    podsPerCluster: 20,
    series: 180_000,
    cached: true,
    prepareMs: 0,
  },
  warmHour: "2026-11-01T06",
  timedHour: "2026-11-01T07",
  warmUp: { queries: 120, wallMs: 9000 },
  prometheusVersion: "2.42.0",
  machine: { cpus: 2, memTotalBytes: 24e9 },
  load: { before: [1.5, 1, 0.5], after: [2, 1.25, 0.75] },
  iterations: 3,
  concurrency: 4,
  modes,
  source: { before: "aaaa", after: "aaaa" },
  compactionsDuringBench: 0,
});

Deno.test("formatFleetReport: one row per mode with the targets, the comparison and warnings", () => {
  const text = formatFleetReport(fleetReport([
    mode({
      mode: "per-cluster",
      queries: 10_000,
      floorRequests: 10_000,
      runs: [run(20_000, 12_000)],
    }),
    mode({ mode: "batched", runs: [run(4000, 3800)], floorBytes: 1 }),
  ]));
  assert.match(text, /^thanos-bridge fleet bench — 200 clusters × 3 nodes × 20 pods/);
  assert.match(text, /load average 1\.50 \/ 1\.00 \/ 0\.50 at the start/);
  assert.match(
    text,
    /^per-cluster\s+10000\s+50\.00\s+MISSED\s+20\.00\s+12\.00\s+1\.667\s+MISSED\s+10\.0\s+10\.0\s+150\.0\s+ok\s/m,
  );
  assert.match(text, /^batched\s+100\s+0\.50\s+ok\s+4\.00\s+3\.80\s+1\.053\s+ok\s/m);
  assert.match(text, /100× fewer queries, wall 0\.20×/);
  assert.match(text, /per-cluster wall \/ batched floor 5\.26/);
  assert.match(text, /^WARNING: batched: the floor replays 100 requests \/ 1 bytes/m);
  assert.doesNotMatch(text, /WARNING: per-cluster/);
  assert.match(text, /unchanged during the run/);
  const changed = formatFleetReport({
    ...fleetReport([mode({ mode: "batched" })]),
    source: { before: "a", after: "b" },
    compactionsDuringBench: 1,
  });
  assert.match(changed, /WARNING: src\/ changed/);
  assert.match(changed, /compactions during the measurements: 1 \(WARNING/);
  assert.doesNotMatch(changed, /fewer queries/);
});

Deno.test("formatLoad", () => {
  assert.equal(formatLoad([3.304, 2.37, 1.85]), "3.30 / 2.37 / 1.85");
});

const setting = (skip: boolean, promCpuS: number[], extra: Partial<SkipSetting> = {}) => ({
  skip,
  runs: promCpuS.map((p) => ({ wallMs: 30_000, bridgeCpuS: 10, promCpuS: p, peakRssBytes: 1e8 })),
  queries: skip ? 1100 : 1200,
  skippedQueries: skip ? 100 : 0,
  bytesDownloaded: 100 * 1_048_576,
  rows: 50_000,
  ...extra,
});

Deno.test("summarizeSkip: reduction of Prometheus's CPU (medians), inclusive target", () => {
  const s = summarizeSkip(setting(false, [30, 20, 25]), setting(true, [12, 15, 14]));
  assert.equal(s.noSkip.promCpuS, 25);
  assert.equal(s.skip.promCpuS, 14);
  assert.ok(Math.abs(s.promCpuReduction - 0.44) < 1e-12);
  assert.equal(s.reductionOk, true);
  assert.equal(s.wallReduction, 0);
  assert.equal(s.downloadReduction, 0);
  const edge = summarizeSkip(setting(false, [20]), setting(true, [13]));
  assert.equal(edge.reductionOk, true, "exactly 35 % passes");
  assert.equal(summarizeSkip(setting(false, [20]), setting(true, [13.1])).reductionOk, false);
  assert.throws(() => summarizeSkip(setting(false, []), setting(true, [1])), RangeError);
});

const skipReport = (payloads: SkipReport["payloads"], skip = setting(true, [10])): SkipReport => ({
  hub: {
    pods: 2000,
    nodes: 80,
    vms: 0,
    gpuPods: 0,
    series: 60_000,
    day: "2026-11-01",
    cached: true,
    ros: false,
  },
  prometheusVersion: "2.42.0",
  machine: { cpus: 2, memTotalBytes: 24e9 },
  load: { before: [1, 1, 1], after: [1, 1, 1] },
  iterations: 1,
  noSkip: setting(false, [20]),
  skip,
  payloads,
  source: { before: "a", after: "a" },
  compactionsDuringBench: 0,
});

Deno.test("formatSkipReport: Prometheus CPU row with the verdict, payload verdict, warnings", () => {
  const text = formatSkipReport(skipReport({ compared: 12, differing: [] }));
  assert.match(text, /^thanos-bridge skip bench — 1 cluster: 2000 pods, 80 nodes, 0 VMs/);
  assert.match(text, /server mode, ROS off \(--no-ros\)/);
  assert.match(text, /^Prometheus CPU s\s+20\.0\s+10\.0\s+50\.0 %\s+ok$/m);
  assert.match(text, /^queries\s+1200\s+1100\s+8\.3 %$/m);
  assert.match(text, /^payloads identical: 12 CSV members compared byte for byte$/m);
  assert.doesNotMatch(text, /skipped no query/);
  const bad = formatSkipReport(
    skipReport(
      { compared: 12, differing: ["c/d/0/x.csv"] },
      setting(true, [19], {
        skippedQueries: 0,
      }),
    ),
  );
  assert.match(bad, /^Prometheus CPU s\s+20\.0\s+19\.0\s+5\.0 %\s+MISSED$/m);
  assert.match(bad, /^PAYLOADS DIFFER: 1 of 12 CSV members: c\/d\/0\/x\.csv$/m);
  assert.match(bad, /WARNING: --skip-empty skipped no query/);
  // Nothing compared is not "identical".
  assert.match(formatSkipReport(skipReport({ compared: 0, differing: [] })), /PAYLOADS DIFFER/);
});
