/**
 * `deno task bench`: throughput and memory of `thanos-bridge collect` on a
 * synthetic cluster-day served by a real Prometheus, for the three `--reduce`
 * modes (`server`, `client`, `local`), against the download floor (the same
 * requests re-sent, range and instant queries alike, answers thrown away),
 * plus wall time, bytes, the bridge's and Prometheus's CPU and peak RSS, for
 * a 1-hour and a 24-hour window. In server mode each timed run (ROS on, the
 * default) is followed by the same run with `--no-ros`, and the report prints
 * what ROS adds.
 *
 * ```sh
 * deno task bench [--pods 2000] [--quick] [--iterations 3] [--hours-per-file 6] \
 *   [--modes server,client,local] [--cache DIR] [--json-out FILE]
 * ```
 *
 * `--cache DIR` (or `BENCH_CACHE`) keeps the generated TSDB between runs,
 * keyed by the options; without it the TSDB lives in a temp folder removed at
 * the end. `--modes server` measures one mode only (e.g. for the ROS cost
 * alone); `--modes server,local` compares local mode with server mode. `--quick`
 * is a smoke run: 100 pods, one iteration. The table goes to stdout, progress
 * to stderr. Targets are printed next to the figures, never enforced: wall ≤
 * 1.15 × floor and peak RSS ≤ 256 MB per mode, ROS ≤ +35 % in server mode,
 * and for local mode (when server mode is measured too) Prometheus CPU ≤ 1/20
 * and wall ≤ 1/4 of server mode's, peak RSS ≤ 256 MB (see `TARGETS`). Local
 * mode's self-checks (one server-side reduction per hour range) are reported;
 * a mismatch is a warning, as its hours were collected again in server mode.
 *
 * Two more benchmarks of issue 8 share the command:
 * - `deno task bench --fleet [--clusters 200] [--iterations 3] [--cache DIR]`:
 *   one new hour for every cluster of a many-cluster hub, per-cluster queries
 *   against cluster-batched ones, with the batched floor (see `fleet.ts`);
 * - `deno task bench --skip [--pods 2000] [--iterations 3] [--cache DIR]`:
 *   Prometheus's CPU for a cluster-day without GPUs and VMs, with
 *   `--no-skip-empty` and `--skip-empty`, and the payloads compared (see
 *   `skip.ts`).
 *
 * @module
 */

import { COMMON_OPTIONS, commonArgs, integerArg } from "./bench_args.ts";
import { parseArgs } from "node:util";
import {
  type BenchReport,
  formatBenchReport,
  type ModeFigures,
  type NoRosFigures,
  type NoRosRun,
  type ReduceMode,
  type SelfCheckFigures,
  summarizeLocal,
  summarizeMode,
  summarizeRos,
  summarizeWindows,
  TARGETS,
  type TimedRun,
  type WindowFigures,
} from "./bench_report.ts";
import { BENCH_DAY, benchHubOptions, withBenchServer } from "./bench_hub.ts";
import { type CollectRunResult, runCollectProcess } from "./collect_run.ts";
import { downloadFloor, type FloorRequest, readRecordedRequests } from "./download_floor.ts";
import { startCaptureProxy } from "./capture_proxy.ts";
import { readCpuSeconds, readSystemCpu } from "./process_monitor.ts";
import { buildVersion, compactionCounters, scrapeMetrics } from "./prometheus_metrics.ts";
import { sourceFingerprint } from "./source_fingerprint.ts";
import { fleetJson, parseFleetArgs, runFleetBench } from "./fleet.ts";
import { formatFleetReport, formatSkipReport } from "./fleet_report.ts";
import { parseSkipArgs, runSkipBench, skipJson } from "./skip.ts";

const SRC = new URL("../src", import.meta.url).pathname;

/** The `--reduce` modes, in the order the bench runs them. */
export const MODES = ["server", "client", "local"] as const satisfies readonly ReduceMode[];
/** A `--reduce` mode. */
export type BenchMode = typeof MODES[number];
/** Modes whose ROS cost is measured (each timed run is paired with a `--no-ros` run). */
const ROS_COMPARED: ReadonlySet<BenchMode> = new Set(["server"]);

/** Command line of the bench. */
export interface BenchOptions {
  readonly pods: number;
  /** Timed run + floor pairs per mode (and 1 h runs per mode). */
  readonly iterations: number;
  /** Hours per OpenMetrics file given to promtool. */
  readonly hoursPerFile: number;
  /** Modes to measure, in `MODES` order (default all three). */
  readonly modes: readonly BenchMode[];
  readonly cacheDir?: string;
  readonly jsonOut?: string;
  readonly quick: boolean;
}

function parseModes(raw: string | undefined): BenchMode[] {
  if (raw === undefined) return [...MODES];
  const given = raw.split(",").map((m) => m.trim());
  const bad = given.find((m) => !(MODES as readonly string[]).includes(m));
  if (bad !== undefined || given.length === 0) {
    throw new RangeError(
      `Invalid --modes "${raw}": expected a comma-separated list of ${MODES.join(", ")}`,
    );
  }
  return MODES.filter((m) => given.includes(m));
}

/**
 * Parses the bench's arguments; `env` supplies `BENCH_CACHE`. Throws a
 * `RangeError` or `TypeError` naming the bad argument.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBenchArgs } from "./bench.ts";
 *
 * assert.deepEqual(parseBenchArgs([], {}), {
 *   pods: 2000, iterations: 3, hoursPerFile: 6, modes: ["server", "client", "local"],
 *   quick: false,
 * });
 * assert.deepEqual(parseBenchArgs(["--modes", "local,server"], {}).modes, ["server", "local"]);
 * assert.equal(parseBenchArgs(["--quick"], { BENCH_CACHE: "/c" }).cacheDir, "/c");
 * ```
 */
export function parseBenchArgs(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): BenchOptions {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: {
      ...COMMON_OPTIONS,
      pods: { type: "string" },
      quick: { type: "boolean", default: false },
      modes: { type: "string" },
    },
  });
  const quick = values.quick ?? false;
  const common = commonArgs(values, env, {
    iterations: quick ? 1 : 3,
    hoursPerFile: quick ? 24 : 6,
  });
  return {
    pods: integerArg("pods", values.pods, quick ? 100 : 2000, 1, 100_000),
    iterations: common.iterations,
    hoursPerFile: common.hoursPerFile,
    modes: parseModes(values.modes),
    quick,
    ...(common.cacheDir ? { cacheDir: common.cacheDir } : {}),
    ...(common.jsonOut ? { jsonOut: common.jsonOut } : {}),
  };
}

/** Which benchmark a command line asks for. */
export type BenchKind = "day" | "fleet" | "skip";

/**
 * Splits off `--fleet` or `--skip` (anywhere on the line): the benchmark to
 * run and its remaining arguments. Throws a `TypeError` when both are given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { benchKind } from "./bench.ts";
 *
 * assert.deepEqual(benchKind(["--pods", "500"]), { kind: "day", args: ["--pods", "500"] });
 * assert.deepEqual(benchKind(["--iterations", "1", "--fleet"]), {
 *   kind: "fleet", args: ["--iterations", "1"],
 * });
 * assert.equal(benchKind(["--skip"]).kind, "skip");
 * ```
 */
export function benchKind(args: readonly string[]): { kind: BenchKind; args: string[] } {
  const fleet = args.includes("--fleet");
  const skip = args.includes("--skip");
  if (fleet && skip) throw new TypeError("--fleet and --skip are two benchmarks: give one");
  return {
    kind: fleet ? "fleet" : skip ? "skip" : "day",
    args: args.filter((a) => a !== "--fleet" && a !== "--skip"),
  };
}

/**
 * Local mode's self-check figures of a `collect` summary; `undefined` for
 * the other modes (no `local` section).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { selfCheckOf } from "./bench.ts";
 *
 * assert.equal(selfCheckOf({ summary: {} }), undefined);
 * assert.deepEqual(
 *   selfCheckOf({ summary: { local: { checks: 4, mismatches: [], serverQueries: [] } } }),
 *   { checks: 4, mismatches: 0, serverQueries: 0 },
 * );
 * ```
 */
export function selfCheckOf(
  run: {
    readonly summary: {
      readonly local?: {
        readonly checks: number;
        readonly mismatches: readonly unknown[];
        readonly serverQueries: readonly unknown[];
      };
    };
  },
): SelfCheckFigures | undefined {
  const local = run.summary.local;
  if (local === undefined) return undefined;
  return {
    checks: local.checks,
    mismatches: local.mismatches.length,
    serverQueries: local.serverQueries.length,
  };
}

/** Where the bench reports. */
export interface BenchIo {
  /** Progress lines (stderr). */
  readonly log: (line: string) => void;
  readonly signal?: AbortSignal;
}

/**
 * Runs the whole benchmark and returns its figures. Starts (and always stops)
 * its own Prometheus; every run gets fresh `--state` and `--out` folders.
 *
 * @example
 * ```ts ignore
 * import { formatBenchReport } from "./bench_report.ts";
 * import { parseBenchArgs, runBench } from "./bench.ts";
 * const report = await runBench(parseBenchArgs(["--quick"], {}), { log: console.error });
 * console.log(formatBenchReport(report));
 * ```
 */
export async function runBench(options: BenchOptions, io: BenchIo): Promise<BenchReport> {
  const { log, signal } = io;
  const sourceBefore = await sourceFingerprint(SRC);
  const hubOptions = benchHubOptions(options.pods);
  const prepare = {
    hoursPerFile: options.hoursPerFile,
    log,
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
  };
  return await withBenchServer(
    hubOptions,
    prepare,
    "thanos_bridge_bench_",
    signal,
    async ({ hub, prom, work }) => {
      const url = prom.url;
      const promPid = prom.pid;
      log(`Prometheus ${url} (pid ${promPid}) over ${hub.dataDir}`);
      const version = buildVersion(await scrapeMetrics(url)) ?? "unknown";
      const compactionsBefore = (await compactionCounters(url)).compactions;
      let dirCount = 0;
      const fresh = async () => {
        const dir = `${work}/run-${++dirCount}`;
        await Deno.mkdir(dir);
        return { stateDir: `${dir}/state`, outDir: `${dir}/out`, dir };
      };
      const collect = async (
        mode: BenchMode,
        until: number,
        recordDir?: string,
        ros = true,
        through?: string,
      ): Promise<CollectRunResult> => {
        const dirs = await fresh();
        try {
          return await runCollectProcess({
            url: through ?? url,
            clusterId: hub.clusterId,
            day: BENCH_DAY,
            until,
            mode,
            stateDir: dirs.stateDir,
            outDir: dirs.outDir,
            ...(recordDir ? { recordDir } : {}),
            ...(ros ? {} : { ros: false }),
            ...(signal ? { signal } : {}),
          });
        } finally {
          await Deno.remove(dirs.dir, { recursive: true });
        }
      };
      /** CPU counters of the machine, Prometheus and this process. */
      const cpu = async () => {
        const system = await readSystemCpu();
        return {
          busy: system.busySeconds,
          steal: system.stealSeconds,
          prom: (await readCpuSeconds(promPid)) ?? NaN,
          self: (await readCpuSeconds(Deno.pid)) ?? NaN,
        };
      };
      type Cpu = Awaited<ReturnType<typeof cpu>>;
      const since = (a: Cpu, b: Cpu) => ({
        busy: b.busy - a.busy,
        steal: b.steal - a.steal,
        prom: b.prom - a.prom,
        self: b.self - a.self,
      });

      const modes: ModeFigures[] = [];
      const windows: WindowFigures[] = [];
      const noRos: NoRosFigures[] = [];
      /** Whether a run's summary says it collected ROS (some day has `rosHours`). */
      const collectedRos = (run: CollectRunResult) =>
        run.summary.clusters.some((c) => c.days.some((d) => d.rosHours !== undefined));
      let command = "";
      const children = new Set<number>();
      const note = (run: CollectRunResult) => {
        command ||= run.usage.command;
        for (const p of run.usage.childPids) children.add(p);
      };

      for (const mode of options.modes) {
        let recorded: { requests: readonly FloorRequest[]; duplicates: number; bytes: number };
        if (mode === "local") {
          // Local mode reads raw samples over remote read, which --record cannot record (a
          // recording run would send instant queries): a proxy captures the requests instead.
          log(`[${mode}] capturing run (not timed) …`);
          const proxy = startCaptureProxy(url);
          let capturing: CollectRunResult;
          try {
            capturing = await collect(mode, 23, undefined, true, proxy.url);
          } finally {
            await proxy.close();
          }
          note(capturing);
          recorded = { requests: proxy.requests, duplicates: 0, bytes: proxy.bytes };
          log(
            `[${mode}] captured ${recorded.requests.length} requests, ` +
              `${capturing.summary.queries} queries, ${(recorded.bytes / 1e6).toFixed(1)} MB, ` +
              `${capturing.rows} rows`,
          );
        } else {
          const recordDir = `${work}/record-${mode}`;
          log(`[${mode}] recording run (not timed) …`);
          const recording = await collect(mode, 23, recordDir);
          note(recording);
          recorded = await readRecordedRequests(`${recordDir}/index.jsonl`);
          log(
            `[${mode}] recorded ${recorded.requests.length} distinct requests ` +
              `(${recorded.duplicates} duplicate lines), ${recording.summary.queries} queries, ` +
              `${(recorded.bytes / 1e6).toFixed(1)} MB, ${recording.rows} rows`,
          );
          await Deno.remove(recordDir, { recursive: true });
        }
        const floor = async () => {
          const cpu0 = await cpu();
          const result = await downloadFloor(url, recorded.requests, {
            concurrency: 4,
            ...(signal ? { signal } : {}),
          });
          return { ...result, cpu: since(cpu0, await cpu()) };
        };
        const warm = await floor();
        log(`[${mode}] warm-up floor ${(warm.ms / 1000).toFixed(2)} s`);
        const runs: TimedRun[] = [];
        const noRosRuns: NoRosRun[] = [];
        let lastNoRos: CollectRunResult | undefined;
        let last: CollectRunResult | undefined;
        let floorBytes = 0;
        for (let i = 0; i < options.iterations; i++) {
          const cpu0 = await cpu();
          const run = await collect(mode, 23);
          const used = since(cpu0, await cpu());
          note(run);
          if (last && (last.rows !== run.rows || last.summary.queries !== run.summary.queries)) {
            log(
              `[${mode}] WARNING: run ${i + 1} gave ${run.rows} rows / ${run.summary.queries} ` +
                `queries, run ${i} gave ${last.rows} / ${last.summary.queries}`,
            );
          }
          last = run;
          const f = await floor();
          floorBytes = f.bytes;
          runs.push({
            wallMs: run.summary.ms,
            processMs: run.processMs,
            floorMs: f.ms,
            peakRssBytes: run.usage.peakRssBytes,
            bridgeCpuS: run.usage.cpuSeconds,
            promCpuS: used.prom,
            // The monitor's helper and this process's sampling count as "other".
            otherCpuS: used.busy - used.prom - run.usage.cpuSeconds,
            floorPromCpuS: f.cpu.prom,
            floorClientCpuS: f.cpu.self,
            floorOtherCpuS: f.cpu.busy - f.cpu.prom - f.cpu.self,
            stealS: used.steal + f.cpu.steal,
          });
          log(
            `[${mode}] ${i + 1}/${options.iterations}: wall ${
              (run.summary.ms / 1000).toFixed(2)
            } s ` +
              `(process ${(run.processMs / 1000).toFixed(2)} s), floor ${
                (f.ms / 1000).toFixed(2)
              } s, peak RSS ${(run.usage.peakRssBytes / 1e6).toFixed(1)} MB, ` +
              `CPU s: bridge ${run.usage.cpuSeconds.toFixed(1)}, Prometheus ${
                used.prom.toFixed(1)
              } (floor ${f.cpu.prom.toFixed(1)}), other ${
                (used.busy - used.prom - run.usage.cpuSeconds).toFixed(1)
              }`,
          );
          const check = selfCheckOf(run);
          if (check !== undefined) {
            log(
              `[${mode}] ${i + 1}/${options.iterations}: ${check.checks} self-check(s), ` +
                `${check.mismatches} mismatch(es), ${check.serverQueries} query(ies) on the server`,
            );
            if (check.mismatches > 0) {
              log(
                `[${mode}] WARNING: self-check mismatch: ${
                  JSON.stringify(run.summary.local?.mismatches).slice(0, 600)
                }`,
              );
            }
          } else if (mode === "local") {
            log(`[${mode}] WARNING: the run's summary has no local-mode section`);
          }
          if (i === 0 && !collectedRos(run)) {
            log(
              `[${mode}] WARNING: the timed run reports no ROS hours: is ROS off in the environment?`,
            );
          }
          if (ROS_COMPARED.has(mode)) {
            // The same run with --no-ros, right after, so both see the same machine state.
            const cpu1 = await cpu();
            const plain = await collect(mode, 23, undefined, false);
            const plainUsed = since(cpu1, await cpu());
            note(plain);
            if (collectedRos(plain)) log(`[${mode}] WARNING: the --no-ros run reports ROS hours`);
            if (
              lastNoRos &&
              (lastNoRos.rows !== plain.rows || lastNoRos.summary.queries !== plain.summary.queries)
            ) {
              log(
                `[${mode}] WARNING: --no-ros run ${i + 1} gave ${plain.rows} rows / ` +
                  `${plain.summary.queries} queries, run ${i} gave ${lastNoRos.rows} / ` +
                  `${lastNoRos.summary.queries}`,
              );
            }
            lastNoRos = plain;
            noRosRuns.push({
              wallMs: plain.summary.ms,
              processMs: plain.processMs,
              peakRssBytes: plain.usage.peakRssBytes,
              bridgeCpuS: plain.usage.cpuSeconds,
              promCpuS: plainUsed.prom,
            });
            log(
              `[${mode}] ${i + 1}/${options.iterations} --no-ros: wall ${
                (plain.summary.ms / 1000).toFixed(2)
              } s (ROS: ${
                (run.summary.ms / 1000).toFixed(2)
              } s), ${plain.summary.queries} queries ` +
                `(ROS: ${run.summary.queries}), ${
                  (plain.summary.bytesDownloaded / 1e6).toFixed(1)
                } MB ` +
                `(ROS: ${(run.summary.bytesDownloaded / 1e6).toFixed(1)} MB)`,
            );
          }
        }
        if (last === undefined) throw new RangeError("No timed run: iterations must be ≥ 1");
        if (recorded.requests.length !== last.summary.queries) {
          log(
            `[${mode}] WARNING: the floor replays ${recorded.requests.length} requests, ` +
              `the timed run sent ${last.summary.queries}`,
          );
        }
        const selfCheck = selfCheckOf(last);
        modes.push({
          mode,
          runs,
          queries: last.summary.queries,
          bytesDownloaded: last.summary.bytesDownloaded,
          floorRequests: recorded.requests.length,
          floorBytes,
          rows: last.rows,
          ...(selfCheck ? { selfCheck } : {}),
        });
        windows.push({ mode, hours: 24, peakRssBytes: runs.map((r) => r.peakRssBytes) });
        if (lastNoRos !== undefined) {
          noRos.push({
            mode,
            runs: noRosRuns,
            queries: lastNoRos.summary.queries,
            bytesDownloaded: lastNoRos.summary.bytesDownloaded,
            rows: lastNoRos.rows,
          });
        }
      }

      for (const mode of options.modes) {
        const peaks: number[] = [];
        for (let i = 0; i < options.iterations; i++) {
          const run = await collect(mode, 0);
          note(run);
          peaks.push(run.usage.peakRssBytes);
        }
        log(
          `[${mode}] 1 h window: peak RSS ${peaks.map((p) => (p / 1e6).toFixed(1)).join(", ")} MB`,
        );
        windows.push({ mode, hours: 1, peakRssBytes: peaks });
      }

      const compactionsAfter = (await compactionCounters(url)).compactions;
      const sourceAfter = await sourceFingerprint(SRC);
      if (sourceAfter !== sourceBefore) log("WARNING: src/ changed during the run");
      return {
        hub: {
          pods: hubOptions.pods,
          nodes: hubOptions.nodes,
          pvcs: hubOptions.pvcs,
          vms: hubOptions.vms,
          series: hub.series,
          day: BENCH_DAY,
          cached: hub.cached,
          prepareMs: hub.prepareMs,
        },
        machine: {
          cpus: navigator.hardwareConcurrency,
          memTotalBytes: Deno.systemMemoryInfo().total,
        },
        prometheusVersion: version,
        iterations: options.iterations,
        modes,
        windows,
        noRos,
        source: { before: sourceBefore, after: sourceAfter },
        compactionsDuringBench: compactionsAfter - compactionsBefore,
        sampledProcess: { command, childProcesses: children.size },
      };
    },
  );
}

/**
 * The JSON written by `--json-out`: the raw figures plus the derived
 * medians, ratios and verdicts.
 *
 * @example
 * ```ts ignore
 * import { benchJson } from "./bench.ts";
 * await Deno.writeTextFile("bench.json", JSON.stringify(benchJson(report), null, 2));
 * ```
 */
export function benchJson(report: BenchReport): Record<string, unknown> {
  return {
    ...report,
    targets: TARGETS,
    summary: {
      modes: report.modes.map(summarizeMode),
      windows: summarizeWindows(report.windows),
      ros: summarizeRos(report.modes, report.noRos ?? []),
      local: summarizeLocal(report.modes) ?? null,
    },
  };
}

if (import.meta.main) {
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error("interrupted"));
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const { kind, args } = benchKind(Deno.args);
    const env = Deno.env.toObject();
    const t0 = performance.now();
    const log = (line: string) =>
      console.error(
        `[bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}`,
      );
    const io = { log, signal: controller.signal };
    let json: Record<string, unknown>;
    let jsonOut: string | undefined;
    if (kind === "fleet") {
      const options = parseFleetArgs(args, env);
      const report = await runFleetBench(options, io);
      console.log(formatFleetReport(report));
      json = fleetJson(report);
      jsonOut = options.jsonOut;
    } else if (kind === "skip") {
      const options = parseSkipArgs(args, env);
      const report = await runSkipBench(options, io);
      console.log(formatSkipReport(report));
      json = skipJson(report);
      jsonOut = options.jsonOut;
    } else {
      const options = parseBenchArgs(args, env);
      const report = await runBench(options, io);
      console.log(formatBenchReport(report));
      json = benchJson(report);
      jsonOut = options.jsonOut;
    }
    if (jsonOut) {
      await Deno.writeTextFile(jsonOut, JSON.stringify(json, null, 2) + "\n");
      log(`figures written to ${jsonOut}`);
    }
  } catch (error) {
    console.error("bench failed:", error);
    Deno.exitCode = 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}
