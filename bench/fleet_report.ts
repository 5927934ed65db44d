/**
 * Figures, medians, targets and printed tables of the fleet benchmark
 * (`deno task bench --fleet`: one new hour for every cluster of a many-cluster
 * hub, per-cluster queries against cluster-batched ones) and of the skip
 * benchmark (`deno task bench --skip`: a cluster-day without GPUs and VMs,
 * with and without `--skip-empty`). Pure: no I/O.
 *
 * @module
 */

import { median } from "./bench_report.ts";

/** Targets of issue 8 (printed next to the figures, never enforced). */
export const FLEET_TARGETS = {
  /** Queries per cluster-hour in batched mode. */
  maxQueriesPerClusterHour: 1,
  /** Batched wall time over the floor of the batched queries. */
  maxRatio: 1.15,
  /** Peak RSS of the bridge, in MB (10^6 bytes). */
  maxRssMb: 256,
  /** Least reduction of Prometheus's CPU for a cluster-day by `--skip-empty`. */
  minPromCpuReduction: 0.35,
} as const;

/** How `collect` was asked to share queries between clusters. */
export type FleetMode = "per-cluster" | "batched";

/** One timed steady-state run (one new hour for every cluster) and the floor right after it. */
export interface FleetRun {
  /** `summary.ms` of `collect`. */
  readonly wallMs: number;
  /** Spawn to exit of the `deno run` process. */
  readonly processMs: number;
  /** The same mode's recorded requests, replayed and discarded. */
  readonly floorMs: number;
  readonly peakRssBytes: number;
  /** CPU seconds of the bridge process. */
  readonly bridgeCpuS: number;
  /** CPU seconds of Prometheus during the run. */
  readonly promCpuS: number;
  /** CPU seconds of Prometheus during the floor. */
  readonly floorPromCpuS: number;
}

/** Figures of one mode over its timed runs (the counts are the last run's). */
export interface FleetModeFigures {
  readonly mode: FleetMode;
  /** `--cluster-batch` given (1 for per-cluster mode, the default otherwise). */
  readonly clusterBatch: number;
  readonly runs: readonly FleetRun[];
  /** Clusters in the run's summary. */
  readonly clusters: number;
  /** Hours collected per cluster per run. */
  readonly hours: number;
  readonly queries: number;
  readonly bytesDownloaded: number;
  /** `batching.batches` and `batching.batched` of the summary (0 when absent). */
  readonly batches: number;
  readonly batched: number;
  readonly skippedQueries: number;
  readonly fallbacks: number;
  readonly rows: number;
  /** Distinct requests the floor replays, and their bytes. */
  readonly floorRequests: number;
  readonly floorBytes: number;
}

/** Medians and verdicts of one fleet mode. */
export interface FleetModeSummary {
  readonly mode: FleetMode;
  readonly queries: number;
  readonly queriesPerClusterHour: number;
  readonly queriesOk: boolean;
  readonly wallS: number;
  readonly processS: number;
  readonly floorS: number;
  /** median wall / median floor of the same mode. */
  readonly ratio: number;
  readonly ratioOk: boolean;
  readonly mib: number;
  readonly bridgeCpuS: number;
  readonly peakRssMb: number;
  readonly rssOk: boolean;
  readonly promCpuS: number;
  readonly floorPromCpuS: number;
}

const MB = 1e6;
const MIB = 1_048_576;

/**
 * Medians of a fleet mode's runs and its verdicts against
 * {@linkcode FLEET_TARGETS}. The query target applies to every mode (the
 * per-cluster mode is expected to miss it: it is the "50 today").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { summarizeFleetMode } from "./fleet_report.ts";
 *
 * const run = (wallMs: number, floorMs: number) => ({
 *   wallMs, processMs: wallMs + 400, floorMs, peakRssBytes: 120e6, bridgeCpuS: 3,
 *   promCpuS: 5, floorPromCpuS: 4,
 * });
 * const s = summarizeFleetMode({
 *   mode: "batched", clusterBatch: 100, runs: [run(4400, 4000), run(5000, 4200), run(4300, 3900)],
 *   clusters: 200, hours: 1, queries: 100, bytesDownloaded: 2 * 1_048_576, batches: 2,
 *   batched: 2, skippedQueries: 0, fallbacks: 0, rows: 9000, floorRequests: 100,
 *   floorBytes: 2 * 1_048_576,
 * });
 * assert.equal(s.queriesPerClusterHour, 0.5);
 * assert.equal(s.ratio, 1.1);
 * assert.equal(s.ratioOk && s.rssOk && s.queriesOk, true);
 * ```
 */
export function summarizeFleetMode(m: FleetModeFigures): FleetModeSummary {
  if (m.runs.length === 0) throw new RangeError(`No timed run of ${m.mode} mode`);
  const wallS = median(m.runs.map((r) => r.wallMs)) / 1000;
  const floorS = median(m.runs.map((r) => r.floorMs)) / 1000;
  const ratio = wallS / floorS;
  const queriesPerClusterHour = m.queries / (m.clusters * m.hours);
  const peakRssMb = median(m.runs.map((r) => r.peakRssBytes)) / MB;
  return {
    mode: m.mode,
    queries: m.queries,
    queriesPerClusterHour,
    queriesOk: queriesPerClusterHour <= FLEET_TARGETS.maxQueriesPerClusterHour,
    wallS,
    processS: median(m.runs.map((r) => r.processMs)) / 1000,
    floorS,
    ratio,
    ratioOk: ratio <= FLEET_TARGETS.maxRatio,
    mib: m.bytesDownloaded / MIB,
    bridgeCpuS: median(m.runs.map((r) => r.bridgeCpuS)),
    peakRssMb,
    rssOk: peakRssMb <= FLEET_TARGETS.maxRssMb,
    promCpuS: median(m.runs.map((r) => r.promCpuS)),
    floorPromCpuS: median(m.runs.map((r) => r.floorPromCpuS)),
  };
}

/** Everything a fleet bench run measured. */
export interface FleetReport {
  readonly hub: {
    readonly clusters: number;
    /** Clusters with GPUs and with VMs. */
    readonly gpuClusters: number;
    readonly vmClusters: number;
    readonly nodesPerCluster: number;
    readonly podsPerCluster: number;
    readonly series: number;
    readonly cached: boolean;
    readonly prepareMs: number;
  };
  /** The hour of the warm-up run and the hour every timed run collects. */
  readonly warmHour: string;
  readonly timedHour: string;
  /** The warm-up run (batched, untimed): queries and wall. */
  readonly warmUp: { readonly queries: number; readonly wallMs: number };
  readonly prometheusVersion: string;
  readonly machine: { readonly cpus: number; readonly memTotalBytes: number };
  /** Load averages (1, 5, 15 min) at the start and at the end. */
  readonly load: { readonly before: readonly number[]; readonly after: readonly number[] };
  readonly iterations: number;
  readonly concurrency: number;
  readonly modes: readonly FleetModeFigures[];
  readonly source: { readonly before: string; readonly after: string };
  readonly compactionsDuringBench: number;
}

/** Fixed-width table: first column left-aligned, the others right-aligned. */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

const ok = (pass: boolean) => (pass ? "ok" : "MISSED");

/** CPU seconds with one decimal; tick rounding can make a difference slightly negative. */
const cpu = (seconds: number) => (Math.abs(seconds) < 0.05 ? 0 : seconds).toFixed(1);

/**
 * Load averages as `1.23 / 0.98 / 0.50`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatLoad } from "./fleet_report.ts";
 *
 * assert.equal(formatLoad([1.234, 0.5, 0]), "1.23 / 0.50 / 0.00");
 * ```
 */
export function formatLoad(load: readonly number[]): string {
  return load.map((n) => n.toFixed(2)).join(" / ");
}

function footer(r: {
  source: { before: string; after: string };
  compactionsDuringBench: number;
}): string[] {
  return [
    r.source.before === r.source.after
      ? `src/ fingerprint ${r.source.before}, unchanged during the run`
      : `WARNING: src/ changed during the run (${r.source.before} → ${r.source.after}): ` +
        "the runs mix two versions",
    `Prometheus compactions during the measurements: ${r.compactionsDuringBench}` +
    (r.compactionsDuringBench === 0 ? "" : " (WARNING: timings are disturbed)"),
  ];
}

/**
 * The printed fleet report: the hub, one row per mode with the targets next
 * to the figures, and the batched floor against both modes.
 *
 * @example
 * ```ts ignore
 * import { formatFleetReport } from "./fleet_report.ts";
 * console.log(formatFleetReport(report));
 * ```
 */
export function formatFleetReport(r: FleetReport): string {
  const h = r.hub;
  const out: string[] = [];
  out.push(
    `thanos-bridge fleet bench — ${h.clusters} clusters × ${h.nodesPerCluster} nodes × ` +
      `${h.podsPerCluster} pods (${h.gpuClusters} with GPUs, ${h.vmClusters} with VMs), ` +
      `${h.series} series; TSDB ${
        h.cached ? "from the cache" : `generated in ${(h.prepareMs / 1000).toFixed(0)} s`
      }`,
  );
  out.push(
    `steady state: warm-up collected ${r.warmHour} for every cluster (${r.warmUp.queries} ` +
      `queries, ${(r.warmUp.wallMs / 1000).toFixed(1)} s); each timed run collects ` +
      `${r.timedHour} from a fresh copy of that state; server mode, concurrency ` +
      `${r.concurrency}; medians of ${r.iterations} run(s)`,
  );
  out.push(
    `Prometheus ${r.prometheusVersion} on 127.0.0.1, same machine: ${r.machine.cpus} CPUs, ` +
      `${(r.machine.memTotalBytes / 1e9).toFixed(1)} GB RAM; load average ` +
      `${formatLoad(r.load.before)} at the start, ${formatLoad(r.load.after)} at the end`,
  );
  out.push("");
  const modes = r.modes.map(summarizeFleetMode);
  out.push(
    ...table(
      [
        "mode",
        "queries",
        "q/cluster-h",
        `(≤ ${FLEET_TARGETS.maxQueriesPerClusterHour})`,
        "wall s",
        "floor s",
        "ratio",
        `(≤ ${FLEET_TARGETS.maxRatio})`,
        "MiB",
        "bridge CPU s",
        "peak RSS MB",
        `(≤ ${FLEET_TARGETS.maxRssMb})`,
        "Prom CPU s",
        "floor Prom CPU s",
        "process s",
      ],
      modes.map((m) => [
        m.mode,
        String(m.queries),
        m.queriesPerClusterHour.toFixed(2),
        ok(m.queriesOk),
        m.wallS.toFixed(2),
        m.floorS.toFixed(2),
        m.ratio.toFixed(3),
        ok(m.ratioOk),
        m.mib.toFixed(1),
        cpu(m.bridgeCpuS),
        m.peakRssMb.toFixed(1),
        ok(m.rssOk),
        cpu(m.promCpuS),
        cpu(m.floorPromCpuS),
        m.processS.toFixed(2),
      ]),
    ),
  );
  out.push("");
  const batched = modes.find((m) => m.mode === "batched");
  const perCluster = modes.find((m) => m.mode === "per-cluster");
  if (batched && perCluster) {
    out.push(
      `batched against per-cluster: ${
        (perCluster.queries / batched.queries).toFixed(0)
      }× fewer queries, wall ${(batched.wallS / perCluster.wallS).toFixed(2)}×, ` +
        `Prometheus CPU ${(batched.promCpuS / perCluster.promCpuS).toFixed(2)}×, ` +
        `per-cluster wall / batched floor ${(perCluster.wallS / batched.floorS).toFixed(2)}`,
    );
  }
  for (const m of r.modes) {
    out.push(
      `${m.mode}: --cluster-batch ${m.clusterBatch}, ${m.batches} batch(es), ${m.batched} ` +
        `shared, ${m.skippedQueries} skipped queries, ${m.fallbacks} fallback(s), ${m.rows} rows`,
    );
    if (m.floorRequests !== m.queries || m.floorBytes !== m.bytesDownloaded) {
      out.push(
        `WARNING: ${m.mode}: the floor replays ${m.floorRequests} requests / ${m.floorBytes} ` +
          `bytes, the timed run sent ${m.queries} / ${m.bytesDownloaded}`,
      );
    }
  }
  out.push(
    "wall = summary.ms of collect; floor = the same mode's recorded distinct requests fetched " +
      `at concurrency ${r.concurrency}, bodies read and discarded; the target ratio is the ` +
      "batched mode's.",
  );
  out.push(...footer(r));
  return out.join("\n") + "\n";
}

/** One pair of timed cluster-days: without and with `--skip-empty`. */
export interface SkipRun {
  readonly wallMs: number;
  readonly bridgeCpuS: number;
  readonly promCpuS: number;
  readonly peakRssBytes: number;
}

/** Figures of one setting over its timed runs (counts from the last run). */
export interface SkipSetting {
  readonly skip: boolean;
  readonly runs: readonly SkipRun[];
  readonly queries: number;
  readonly skippedQueries: number;
  readonly bytesDownloaded: number;
  readonly rows: number;
}

/** Medians of both settings and the reduction. */
export interface SkipSummary {
  readonly noSkip: { wallS: number; promCpuS: number; bridgeCpuS: number; peakRssMb: number };
  readonly skip: { wallS: number; promCpuS: number; bridgeCpuS: number; peakRssMb: number };
  /** 1 − skip / no-skip of Prometheus's CPU seconds (medians). */
  readonly promCpuReduction: number;
  readonly reductionOk: boolean;
  readonly wallReduction: number;
  readonly downloadReduction: number;
}

function settingMedians(s: SkipSetting) {
  return {
    wallS: median(s.runs.map((r) => r.wallMs)) / 1000,
    promCpuS: median(s.runs.map((r) => r.promCpuS)),
    bridgeCpuS: median(s.runs.map((r) => r.bridgeCpuS)),
    peakRssMb: median(s.runs.map((r) => r.peakRssBytes)) / MB,
  };
}

/**
 * Medians of the runs without and with `--skip-empty`, the reductions
 * (1 − with / without) and the verdict against
 * `FLEET_TARGETS.minPromCpuReduction` (inclusive).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { summarizeSkip } from "./fleet_report.ts";
 *
 * const runs = (promCpuS: number) => [{ wallMs: 10_000, bridgeCpuS: 4, promCpuS, peakRssBytes: 1e8 }];
 * const s = summarizeSkip(
 *   { skip: false, runs: runs(20), queries: 100, skippedQueries: 0, bytesDownloaded: 10, rows: 5 },
 *   { skip: true, runs: runs(12), queries: 80, skippedQueries: 20, bytesDownloaded: 9, rows: 5 },
 * );
 * assert.equal(s.promCpuReduction, 0.4);
 * assert.equal(s.reductionOk, true);
 * ```
 */
export function summarizeSkip(noSkip: SkipSetting, skip: SkipSetting): SkipSummary {
  if (noSkip.runs.length === 0 || skip.runs.length === 0) {
    throw new RangeError("summarizeSkip needs timed runs of both settings");
  }
  const a = settingMedians(noSkip);
  const b = settingMedians(skip);
  const promCpuReduction = 1 - b.promCpuS / a.promCpuS;
  return {
    noSkip: a,
    skip: b,
    promCpuReduction,
    // As a product, so that a figure exactly at the target passes despite rounding.
    reductionOk: b.promCpuS <= a.promCpuS * (1 - FLEET_TARGETS.minPromCpuReduction),
    wallReduction: 1 - b.wallS / a.wallS,
    downloadReduction: 1 - skip.bytesDownloaded / noSkip.bytesDownloaded,
  };
}

/** Everything a skip bench run measured. */
export interface SkipReport {
  readonly hub: {
    readonly pods: number;
    readonly nodes: number;
    readonly vms: number;
    readonly gpuPods: number;
    readonly series: number;
    readonly day: string;
    readonly cached: boolean;
    /** Whether the runs collected the ROS reports too. */
    readonly ros: boolean;
  };
  readonly prometheusVersion: string;
  readonly machine: { readonly cpus: number; readonly memTotalBytes: number };
  readonly load: { readonly before: readonly number[]; readonly after: readonly number[] };
  readonly iterations: number;
  readonly noSkip: SkipSetting;
  readonly skip: SkipSetting;
  /** CSV members compared between the two settings' payloads, and those that differ. */
  readonly payloads: { readonly compared: number; readonly differing: readonly string[] };
  readonly source: { readonly before: string; readonly after: string };
  readonly compactionsDuringBench: number;
}

/** A fraction as a percentage with one decimal, e.g. `38.2 %`. */
function percent(fraction: number): string {
  const p = fraction * 100;
  return `${(Math.abs(p) < 0.05 ? 0 : p).toFixed(1)} %`;
}

/**
 * The printed skip report: Prometheus's CPU for the day without and with
 * `--skip-empty`, the reduction against the target, wall, download and the
 * payload comparison.
 *
 * @example
 * ```ts ignore
 * import { formatSkipReport } from "./fleet_report.ts";
 * console.log(formatSkipReport(report));
 * ```
 */
export function formatSkipReport(r: SkipReport): string {
  const h = r.hub;
  const s = summarizeSkip(r.noSkip, r.skip);
  const out: string[] = [];
  out.push(
    `thanos-bridge skip bench — 1 cluster: ${h.pods} pods, ${h.nodes} nodes, ${h.vms} VMs, ` +
      `${h.gpuPods} GPU pods, ${h.series} series; day ${h.day}, server mode, ROS ` +
      `${h.ros ? "on" : "off (--no-ros)"}; medians ` +
      `of ${r.iterations} pair(s) of runs; TSDB ${h.cached ? "from the cache" : "generated"}`,
  );
  out.push(
    `Prometheus ${r.prometheusVersion} on 127.0.0.1, same machine: ${r.machine.cpus} CPUs, ` +
      `${(r.machine.memTotalBytes / 1e9).toFixed(1)} GB RAM; load average ` +
      `${formatLoad(r.load.before)} at the start, ${formatLoad(r.load.after)} at the end`,
  );
  out.push("");
  const target = `(≥ ${(FLEET_TARGETS.minPromCpuReduction * 100).toFixed(0)} %)`;
  out.push(
    ...table(["figure", "--no-skip-empty", "--skip-empty", "reduction", target], [
      [
        "Prometheus CPU s",
        cpu(s.noSkip.promCpuS),
        cpu(s.skip.promCpuS),
        percent(s.promCpuReduction),
        ok(s.reductionOk),
      ],
      ["wall s", s.noSkip.wallS.toFixed(2), s.skip.wallS.toFixed(2), percent(s.wallReduction), ""],
      [
        "MiB downloaded",
        (r.noSkip.bytesDownloaded / MIB).toFixed(1),
        (r.skip.bytesDownloaded / MIB).toFixed(1),
        percent(s.downloadReduction),
        "",
      ],
      [
        "queries",
        String(r.noSkip.queries),
        String(r.skip.queries),
        percent(1 - r.skip.queries / r.noSkip.queries),
        "",
      ],
      ["skipped queries", String(r.noSkip.skippedQueries), String(r.skip.skippedQueries), "", ""],
      [
        "bridge CPU s",
        cpu(s.noSkip.bridgeCpuS),
        cpu(s.skip.bridgeCpuS),
        percent(1 - s.skip.bridgeCpuS / s.noSkip.bridgeCpuS),
        "",
      ],
      ["peak RSS MB", s.noSkip.peakRssMb.toFixed(1), s.skip.peakRssMb.toFixed(1), "", ""],
      ["rows", String(r.noSkip.rows), String(r.skip.rows), "", ""],
    ]),
  );
  out.push("");
  out.push(
    r.payloads.differing.length === 0 && r.payloads.compared > 0
      ? `payloads identical: ${r.payloads.compared} CSV members compared byte for byte`
      : `PAYLOADS DIFFER: ${r.payloads.differing.length} of ${r.payloads.compared} CSV ` +
        `members: ${r.payloads.differing.slice(0, 5).join(", ")}`,
  );
  if (r.skip.skippedQueries === 0) {
    out.push("WARNING: --skip-empty skipped no query: is the skip probe wired into collect yet?");
  }
  out.push(...footer(r));
  return out.join("\n") + "\n";
}
