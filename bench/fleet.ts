/**
 * `deno task bench --fleet`: steady-state cost of a fleet. A synthetic hub of
 * many small clusters ({@linkcode fleetHubParts}) is served by a real
 * Prometheus; a warm-up run collects one hour for every cluster (it also
 * stores each cluster's size estimate), then every timed run collects the
 * next hour for every cluster from a fresh copy of that state, once with one
 * query per cluster (`--cluster-batch 1`) and once batched (the default). The
 * floor of each mode replays its recorded requests and throws the answers
 * away; the batched floor is the one the 1.15 target is against.
 *
 * ```sh
 * deno task bench --fleet [--clusters 200] [--iterations 3] [--cache DIR] [--json-out FILE]
 * ```
 *
 * @module
 */

import { COMMON_OPTIONS, commonArgs, integerArg } from "./bench_args.ts";
import { parseArgs } from "node:util";
import { BENCH_DAY, withBenchServer } from "./bench_hub.ts";
import { type CollectRunResult, runCollectProcess } from "./collect_run.ts";
import { downloadFloor, readRecordedRequests } from "./download_floor.ts";
import { FLEET_NODES, FLEET_PODS, fleetHubParts } from "./fleet_hub.ts";
import {
  FLEET_TARGETS,
  type FleetMode,
  type FleetModeFigures,
  type FleetReport,
  type FleetRun,
  summarizeFleetMode,
} from "./fleet_report.ts";
import { readCpuSeconds } from "./process_monitor.ts";
import { buildVersion, compactionCounters, scrapeMetrics } from "./prometheus_metrics.ts";
import { sourceFingerprint } from "./source_fingerprint.ts";

const SRC = new URL("../src", import.meta.url).pathname;

/** The hour the warm-up run collects, and the hour every timed run collects. */
export const FLEET_HOURS = { warm: `${BENCH_DAY}T06`, timed: `${BENCH_DAY}T07` } as const;

/** Queries in flight, in both modes (the CLI's default, given explicitly). */
export const FLEET_CONCURRENCY = 4;

/** Command line of the fleet bench. */
export interface FleetOptions {
  readonly clusters: number;
  /** Timed runs of each mode (each followed by its floor). */
  readonly iterations: number;
  /** Hours per OpenMetrics file given to promtool. */
  readonly hoursPerFile: number;
  readonly cacheDir?: string;
  readonly jsonOut?: string;
}

/**
 * Parses the fleet bench's arguments (those after `--fleet`); `env` supplies
 * `BENCH_CACHE`. Throws a `RangeError` or `TypeError` naming the bad argument.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFleetArgs } from "./fleet.ts";
 *
 * assert.deepEqual(parseFleetArgs([], {}), { clusters: 200, iterations: 3, hoursPerFile: 6 });
 * assert.equal(parseFleetArgs(["--clusters", "400"], { BENCH_CACHE: "/c" }).cacheDir, "/c");
 * ```
 */
export function parseFleetArgs(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): FleetOptions {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: { ...COMMON_OPTIONS, clusters: { type: "string" } },
  });
  return {
    clusters: integerArg("clusters", values.clusters, 200, 2, 1000),
    ...commonArgs(values, env, { iterations: 3, hoursPerFile: 6 }),
  };
}

/** `--cluster-batch` of a mode: 1, or undefined for the CLI's default. */
const CLUSTER_BATCH: Readonly<Record<FleetMode, number | undefined>> = {
  "per-cluster": 1,
  batched: undefined,
};
/** The CLI's default `--cluster-batch`. */
const DEFAULT_CLUSTER_BATCH = 100;
const MODES: readonly FleetMode[] = ["per-cluster", "batched"];

/** Where the bench reports. */
export interface FleetIo {
  /** Progress lines (stderr). */
  readonly log: (line: string) => void;
  readonly signal?: AbortSignal;
}

async function copyDir(from: string, to: string): Promise<void> {
  const out = await new Deno.Command("cp", { args: ["-a", from, to], stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`cp -a ${from} ${to} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * Runs the fleet benchmark and returns its figures. Starts (and always
 * stops) its own Prometheus and removes every folder it made.
 *
 * @example
 * ```ts ignore
 * import { formatFleetReport } from "./fleet_report.ts";
 * import { parseFleetArgs, runFleetBench } from "./fleet.ts";
 * const report = await runFleetBench(parseFleetArgs([], {}), { log: console.error });
 * console.log(formatFleetReport(report));
 * ```
 */
export async function runFleetBench(options: FleetOptions, io: FleetIo): Promise<FleetReport> {
  const { log, signal } = io;
  const loadBefore = Deno.loadavg();
  const sourceBefore = await sourceFingerprint(SRC);
  const parts = fleetHubParts(options.clusters);
  const prepare = {
    hoursPerFile: options.hoursPerFile,
    log,
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
  };
  return await withBenchServer(
    parts,
    prepare,
    "thanos_bridge_bench_fleet_",
    signal,
    async ({ hub, prom, work }) => {
      const { url, pid: promPid } = prom;
      log(
        `Prometheus ${url} (pid ${promPid}) over ${hub.dataDir}, ${hub.clusterIds.length} clusters`,
      );
      const version = buildVersion(await scrapeMetrics(url)) ?? "unknown";
      const promCpu = async () => (await readCpuSeconds(promPid)) ?? NaN;
      let dirCount = 0;
      const warmState = `${work}/warm/state`;

      const collect = async (
        hour: string,
        mode: FleetMode,
        stateFrom: string | undefined,
        recordDir?: string,
      ): Promise<CollectRunResult> => {
        const dir = `${work}/run-${++dirCount}`;
        await Deno.mkdir(dir, { recursive: true });
        if (stateFrom !== undefined) await copyDir(stateFrom, `${dir}/state`);
        const batch = CLUSTER_BATCH[mode];
        try {
          return await runCollectProcess({
            url,
            clusterId: hub.clusterId,
            clusterIds: hub.clusterIds,
            day: BENCH_DAY,
            until: 0,
            hours: { from: hour, to: hour },
            mode: "server",
            stateDir: `${dir}/state`,
            outDir: `${dir}/out`,
            ...(recordDir ? { recordDir } : {}),
            extraArgs: [
              "--concurrency",
              String(FLEET_CONCURRENCY),
              ...(batch === undefined ? [] : ["--cluster-batch", String(batch)]),
            ],
            ...(signal ? { signal } : {}),
          });
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      };

      log(`warm-up: ${FLEET_HOURS.warm} for every cluster, batched (not timed) …`);
      await Deno.mkdir(`${work}/warm`);
      const warm = await runCollectProcess({
        url,
        clusterId: hub.clusterId,
        clusterIds: hub.clusterIds,
        day: BENCH_DAY,
        until: 0,
        hours: { from: FLEET_HOURS.warm, to: FLEET_HOURS.warm },
        mode: "server",
        stateDir: warmState,
        outDir: `${work}/warm/out`,
        extraArgs: ["--concurrency", String(FLEET_CONCURRENCY)],
        ...(signal ? { signal } : {}),
      });
      log(
        `warm-up: ${warm.summary.queries} queries, ${(warm.summary.ms / 1000).toFixed(1)} s, ` +
          `batching ${JSON.stringify({ ...warm.summary.batching, fallbacks: undefined })}`,
      );

      const recorded = new Map<FleetMode, Awaited<ReturnType<typeof readRecordedRequests>>>();
      for (const mode of MODES) {
        const recordDir = `${work}/record-${mode}`;
        log(`[${mode}] recording run of ${FLEET_HOURS.timed} (not timed) …`);
        const rec = await collect(FLEET_HOURS.timed, mode, warmState, recordDir);
        const r = await readRecordedRequests(`${recordDir}/index.jsonl`);
        await Deno.remove(recordDir, { recursive: true });
        recorded.set(mode, r);
        log(
          `[${mode}] recorded ${r.requests.length} distinct requests (${r.duplicates} duplicate ` +
            `lines), ${rec.summary.queries} queries, ${(r.bytes / 1e6).toFixed(1)} MB`,
        );
      }
      const floor = async (mode: FleetMode) => {
        const p0 = await promCpu();
        const f = await downloadFloor(url, recorded.get(mode)!.requests, {
          concurrency: FLEET_CONCURRENCY,
          ...(signal ? { signal } : {}),
        });
        return { ...f, promCpuS: (await promCpu()) - p0 };
      };
      for (const mode of MODES) {
        const f = await floor(mode);
        log(`[${mode}] warm-up floor ${(f.ms / 1000).toFixed(2)} s`);
      }
      const compactionsBefore = (await compactionCounters(url)).compactions;

      const runs = new Map<FleetMode, FleetRun[]>(MODES.map((m) => [m, []]));
      const last = new Map<FleetMode, { run: CollectRunResult; floorBytes: number }>();
      for (let i = 0; i < options.iterations; i++) {
        // Both modes in each iteration, so that both see the same machine state.
        for (const mode of MODES) {
          const p0 = await promCpu();
          const run = await collect(FLEET_HOURS.timed, mode, warmState);
          const promCpuS = (await promCpu()) - p0;
          const f = await floor(mode);
          const previous = last.get(mode)?.run;
          if (
            previous &&
            (previous.rows !== run.rows || previous.summary.queries !== run.summary.queries)
          ) {
            log(
              `[${mode}] WARNING: run ${i + 1} gave ${run.rows} rows / ${run.summary.queries} ` +
                `queries, run ${i} gave ${previous.rows} / ${previous.summary.queries}`,
            );
          }
          last.set(mode, { run, floorBytes: f.bytes });
          runs.get(mode)!.push({
            wallMs: run.summary.ms,
            processMs: run.processMs,
            floorMs: f.ms,
            peakRssBytes: run.usage.peakRssBytes,
            bridgeCpuS: run.usage.cpuSeconds,
            promCpuS,
            floorPromCpuS: f.promCpuS,
          });
          log(
            `[${mode}] ${i + 1}/${options.iterations}: ${run.summary.queries} queries, wall ${
              (run.summary.ms / 1000).toFixed(2)
            } s, floor ${(f.ms / 1000).toFixed(2)} s, peak RSS ${
              (run.usage.peakRssBytes / 1e6).toFixed(1)
            } MB, CPU s: bridge ${run.usage.cpuSeconds.toFixed(1)}, Prometheus ${
              promCpuS.toFixed(1)
            } (floor ${f.promCpuS.toFixed(1)}); load ${Deno.loadavg()[0]!.toFixed(2)}`,
          );
        }
      }

      const modes: FleetModeFigures[] = MODES.map((mode) => {
        const l = last.get(mode);
        if (l === undefined) throw new RangeError("No timed run: iterations must be ≥ 1");
        const s = l.run.summary;
        const r = recorded.get(mode)!;
        return {
          mode,
          clusterBatch: CLUSTER_BATCH[mode] ?? s.batching?.clusterBatch ?? DEFAULT_CLUSTER_BATCH,
          runs: runs.get(mode)!,
          clusters: s.clusters.length,
          hours: 1,
          queries: s.queries,
          bytesDownloaded: s.bytesDownloaded,
          batches: s.batching?.batches ?? 0,
          batched: s.batching?.batched ?? 0,
          skippedQueries: s.batching?.skippedQueries ?? 0,
          fallbacks: s.batching?.fallbacks.length ?? 0,
          rows: l.run.rows,
          floorRequests: r.requests.length,
          floorBytes: l.floorBytes,
        };
      });
      const compactionsAfter = (await compactionCounters(url)).compactions;
      const sourceAfter = await sourceFingerprint(SRC);
      if (sourceAfter !== sourceBefore) log("WARNING: src/ changed during the run");
      return {
        hub: {
          clusters: hub.clusterIds.length,
          gpuClusters: parts.reduce((n, p) => n + (p.gpuPods > 0 ? p.gpuClusters ?? 1 : 0), 0),
          vmClusters: parts.reduce((n, p) => n + (p.vms > 0 ? p.clusters : 0), 0),
          nodesPerCluster: FLEET_NODES,
          podsPerCluster: FLEET_PODS,
          series: hub.series,
          cached: hub.cached,
          prepareMs: hub.prepareMs,
        },
        warmHour: FLEET_HOURS.warm,
        timedHour: FLEET_HOURS.timed,
        warmUp: { queries: warm.summary.queries, wallMs: warm.summary.ms },
        prometheusVersion: version,
        machine: {
          cpus: navigator.hardwareConcurrency,
          memTotalBytes: Deno.systemMemoryInfo().total,
        },
        load: { before: loadBefore, after: Deno.loadavg() },
        iterations: options.iterations,
        concurrency: FLEET_CONCURRENCY,
        modes,
        source: { before: sourceBefore, after: sourceAfter },
        compactionsDuringBench: compactionsAfter - compactionsBefore,
      };
    },
  );
}

/**
 * The JSON written by `--json-out`: the raw figures, the medians and the targets.
 *
 * @example
 * ```ts ignore
 * import { fleetJson } from "./fleet.ts";
 * await Deno.writeTextFile("fleet.json", JSON.stringify(fleetJson(report), null, 2));
 * ```
 */
export function fleetJson(report: FleetReport): Record<string, unknown> {
  return { ...report, targets: FLEET_TARGETS, summary: report.modes.map(summarizeFleetMode) };
}
