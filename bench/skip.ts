/**
 * `deno task bench --skip`: what `--skip-empty` saves Prometheus on a
 * cluster without GPUs and KubeVirt. The bench's 2,000-pod cluster-day, in
 * the shape without VMs (`benchHubOptions(pods, { vms: 0 })`; it never has
 * GPUs), is collected in server mode with `--no-skip-empty` and with
 * `--skip-empty` (the CLI's default, so no flag), alternately, and Prometheus's CPU seconds for each day are
 * read from `/proc/<pid>/stat`. The payloads of the first pair are compared
 * byte for byte (every CSV member of every tar.gz).
 *
 * ```sh
 * deno task bench --skip [--pods 2000] [--iterations 3] [--no-ros] [--cache DIR] [--json-out FILE]
 * ```
 *
 * `--no-ros` collects the cost reports only: CMMO's ROS queries cost
 * Prometheus about as much as the 36 cost queries, and none of them can be
 * skipped on this cluster, so they dilute the reduction.
 *
 * @module
 */

import { COMMON_OPTIONS, commonArgs, integerArg } from "./bench_args.ts";
import { parseArgs } from "node:util";
import { BENCH_DAY, benchHubOptions, withBenchServer } from "./bench_hub.ts";
import { type CollectRunResult, runCollectProcess } from "./collect_run.ts";
import {
  FLEET_TARGETS,
  type SkipReport,
  type SkipRun,
  type SkipSetting,
  summarizeSkip,
} from "./fleet_report.ts";
import { compareMembers, payloadMembers } from "./payload_compare.ts";
import { readCpuSeconds } from "./process_monitor.ts";
import { buildVersion, compactionCounters, scrapeMetrics } from "./prometheus_metrics.ts";
import { sourceFingerprint } from "./source_fingerprint.ts";

const SRC = new URL("../src", import.meta.url).pathname;

/** Command line of the skip bench. */
export interface SkipOptions {
  readonly pods: number;
  /** Pairs of timed runs (without, then with `--skip-empty`). */
  readonly iterations: number;
  readonly hoursPerFile: number;
  /** Collect the ROS reports too (the CLI's default); false: `--no-ros`. */
  readonly ros: boolean;
  readonly cacheDir?: string;
  readonly jsonOut?: string;
}

/**
 * Parses the skip bench's arguments (those after `--skip`); `env` supplies
 * `BENCH_CACHE`. Throws a `RangeError` or `TypeError` naming the bad argument.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSkipArgs } from "./skip.ts";
 *
 * assert.deepEqual(parseSkipArgs([], {}), {
 *   pods: 2000, iterations: 3, hoursPerFile: 6, ros: true,
 * });
 * assert.equal(parseSkipArgs(["--iterations", "5"], {}).iterations, 5);
 * assert.equal(parseSkipArgs(["--no-ros"], {}).ros, false);
 * ```
 */
export function parseSkipArgs(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): SkipOptions {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: {
      ...COMMON_OPTIONS,
      pods: { type: "string" },
      "no-ros": { type: "boolean", default: false },
    },
  });
  const common = commonArgs(values, env, { iterations: 3, hoursPerFile: 6 });
  return {
    pods: integerArg("pods", values.pods, 2000, 1, 100_000),
    iterations: common.iterations,
    hoursPerFile: common.hoursPerFile,
    ros: !(values["no-ros"] ?? false),
    ...(common.cacheDir ? { cacheDir: common.cacheDir } : {}),
    ...(common.jsonOut ? { jsonOut: common.jsonOut } : {}),
  };
}

/** Where the bench reports. */
export interface SkipIo {
  /** Progress lines (stderr). */
  readonly log: (line: string) => void;
  readonly signal?: AbortSignal;
}

/**
 * Runs the skip benchmark and returns its figures. Starts (and always stops)
 * its own Prometheus and removes every folder it made.
 *
 * @example
 * ```ts ignore
 * import { formatSkipReport } from "./fleet_report.ts";
 * import { parseSkipArgs, runSkipBench } from "./skip.ts";
 * const report = await runSkipBench(parseSkipArgs([], {}), { log: console.error });
 * console.log(formatSkipReport(report));
 * ```
 */
export async function runSkipBench(options: SkipOptions, io: SkipIo): Promise<SkipReport> {
  const { log, signal } = io;
  const loadBefore = Deno.loadavg();
  const sourceBefore = await sourceFingerprint(SRC);
  const hubOptions = benchHubOptions(options.pods, { vms: 0 });
  const prepare = {
    hoursPerFile: options.hoursPerFile,
    log,
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
  };
  return await withBenchServer(
    hubOptions,
    prepare,
    "thanos_bridge_bench_skip_",
    signal,
    async ({ hub, prom, work }) => {
      const { url, pid: promPid } = prom;
      log(`Prometheus ${url} (pid ${promPid}) over ${hub.dataDir}`);
      const version = buildVersion(await scrapeMetrics(url)) ?? "unknown";
      const promCpu = async () => (await readCpuSeconds(promPid)) ?? NaN;
      let dirCount = 0;
      /** One cluster-day; the folder is kept for the payload comparison when `keep` is set. */
      const day = async (skip: boolean, keep: boolean) => {
        const dir = `${work}/run-${++dirCount}`;
        await Deno.mkdir(dir);
        let done = false;
        try {
          const p0 = await promCpu();
          const run = await runCollectProcess({
            url,
            clusterId: hub.clusterId,
            day: BENCH_DAY,
            until: 23,
            mode: "server",
            stateDir: `${dir}/state`,
            outDir: `${dir}/out`,
            ...(options.ros ? {} : { ros: false }),
            // The skip is the CLI's default: only its negation is a flag.
            extraArgs: skip ? [] : ["--no-skip-empty"],
            ...(signal ? { signal } : {}),
          });
          const promCpuS = (await promCpu()) - p0;
          done = true;
          return { run, promCpuS, dir };
        } finally {
          if (!keep || !done) await Deno.remove(dir, { recursive: true });
        }
      };

      log("warm-up day with --no-skip-empty (not timed) …");
      await day(false, false);
      const compactionsBefore = (await compactionCounters(url)).compactions;
      const runs: Record<"noSkip" | "skip", SkipRun[]> = { noSkip: [], skip: [] };
      const last: Partial<Record<"noSkip" | "skip", CollectRunResult>> = {};
      let payloads = { compared: 0, differing: [] as readonly string[] };
      for (let i = 0; i < options.iterations; i++) {
        const pair: { run: CollectRunResult; dir: string }[] = [];
        for (const skip of [false, true]) {
          const key = skip ? "skip" : "noSkip";
          const d = await day(skip, i === 0);
          if (i === 0) pair.push(d);
          last[key] = d.run;
          runs[key].push({
            wallMs: d.run.summary.ms,
            bridgeCpuS: d.run.usage.cpuSeconds,
            promCpuS: d.promCpuS,
            peakRssBytes: d.run.usage.peakRssBytes,
          });
          log(
            `${i + 1}/${options.iterations} ${skip ? "--skip-empty   " : "--no-skip-empty"}: ` +
              `Prometheus CPU ${d.promCpuS.toFixed(1)} s, wall ${
                (d.run.summary.ms / 1000).toFixed(2)
              } s, ${d.run.summary.queries} queries (${
                d.run.summary.batching?.skippedQueries ?? 0
              } skipped), ${(d.run.summary.bytesDownloaded / 1e6).toFixed(1)} MB, bridge CPU ${
                d.run.usage.cpuSeconds.toFixed(1)
              } s; load ${Deno.loadavg()[0]!.toFixed(2)}`,
          );
        }
        if (i === 0) {
          try {
            payloads = compareMembers(
              await payloadMembers(pair[0]!.run.summary),
              await payloadMembers(pair[1]!.run.summary),
            );
            log(
              `payloads: ${payloads.compared} members compared, ${payloads.differing.length} differ`,
            );
          } finally {
            for (const p of pair) await Deno.remove(p.dir, { recursive: true });
          }
        }
      }
      const setting = (skip: boolean): SkipSetting => {
        const key = skip ? "skip" : "noSkip";
        const s = last[key]!.summary;
        return {
          skip,
          runs: runs[key],
          queries: s.queries,
          skippedQueries: s.batching?.skippedQueries ?? 0,
          bytesDownloaded: s.bytesDownloaded,
          rows: last[key]!.rows,
        };
      };
      const compactionsAfter = (await compactionCounters(url)).compactions;
      const sourceAfter = await sourceFingerprint(SRC);
      if (sourceAfter !== sourceBefore) log("WARNING: src/ changed during the run");
      return {
        hub: {
          pods: hubOptions.pods,
          nodes: hubOptions.nodes,
          vms: hubOptions.vms,
          gpuPods: hubOptions.gpuPods,
          series: hub.series,
          day: BENCH_DAY,
          cached: hub.cached,
          ros: options.ros,
        },
        prometheusVersion: version,
        machine: {
          cpus: navigator.hardwareConcurrency,
          memTotalBytes: Deno.systemMemoryInfo().total,
        },
        load: { before: loadBefore, after: Deno.loadavg() },
        iterations: options.iterations,
        noSkip: setting(false),
        skip: setting(true),
        payloads,
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
 * import { skipJson } from "./skip.ts";
 * await Deno.writeTextFile("skip.json", JSON.stringify(skipJson(report), null, 2));
 * ```
 */
export function skipJson(report: SkipReport): Record<string, unknown> {
  return {
    ...report,
    targets: FLEET_TARGETS,
    summary: summarizeSkip(report.noSkip, report.skip),
  };
}
