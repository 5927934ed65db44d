/**
 * The bridge's own CPU per query and per payload (issue 8, part 5).
 *
 * On a synthetic hub of N clusters (3 nodes × 20 pods each by default), with
 * Prometheus as the Thanos stand-in, it runs `collect --reduce server --no-ros`
 * for hour 00 of {@linkcode BENCH_DAY} (the first hour of a day, so that every
 * cluster gets a one-hour payload) as a `deno run` child with the flags of
 * `deno task compile`, and reads the child's CPU seconds from `/proc`:
 *
 * - **start-up**: `collect --help` (Deno's start-up and module loading);
 * - **collect**: a fresh state folder: every query, every hour fragment and
 *   every payload;
 * - **payloads**: in this process, `buildDayPayload` for every cluster of
 *   that state (the same call `collect` makes), timed with `process.cpuUsage`.
 *
 * So CPU per payload = payloads / payload count, and CPU per query ≈
 * (collect − start-up − payloads) / queries. Each figure is the median of
 * `runs` runs. `clusterBatch` passes `--cluster-batch` (1: one query per
 * cluster).
 *
 * Run it: `deno run -A bench/own_cpu.ts --clusters 100 --runs 3 --cache /tmp/own_cpu`
 * (`--cache` keeps the generated TSDB between invocations; `--json` prints
 * the result as JSON; `--prof DIR` adds one `--cpu-prof` collect run).
 *
 * @module
 */

import process from "node:process";
import { RUNTIME_FLAGS } from "../src/cli/runtime_flags.ts";
import { BRIDGE_VERSION } from "../src/model.ts";
import { buildDayPayload } from "../src/package/day_payload.ts";
import { DEFAULT_MANIFEST_VERSION } from "../src/package/manifest.ts";
import { StateStore } from "../src/package/state_store.ts";
import { buildHub, type HubOptions } from "../tools/synth/model.ts";
import { startPrometheus } from "../tools/synth/prometheus.ts";
import { BENCH_DAY, prepareBenchHub } from "./bench_hub.ts";
import { ProcessMonitor } from "./process_monitor.ts";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;

/** Options of {@linkcode measureOwnCpu}. */
export interface OwnCpuOptions {
  /** Clusters of the hub (default 100). */
  readonly clusters?: number;
  /** Regular nodes per cluster (default 3). */
  readonly nodes?: number;
  /** Regular pods per cluster (default 20). */
  readonly pods?: number;
  /** Runs of each kind; the medians are reported (default 3). */
  readonly runs?: number;
  /** Cache folder of the generated TSDB (default: a temp folder, removed at the end). */
  readonly cacheDir?: string;
  /** `--cluster-batch` (default: the CLI's default). */
  readonly clusterBatch?: number;
  /** Write one `--cpu-prof` profile of a collect run into this folder. */
  readonly profDir?: string;
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

/** CPU and wall time of one child process. */
export interface ChildRun {
  /** User + system CPU seconds of the child. */
  readonly cpuSeconds: number;
  /** Spawn to exit, in seconds. */
  readonly wallSeconds: number;
}

/** What {@linkcode measureOwnCpu} found; every figure is a median over the runs. */
export interface OwnCpuResult {
  readonly clusters: number;
  readonly runs: number;
  /** Queries one collect run sent. */
  readonly queries: number;
  /** Payloads one collect run delivered. */
  readonly payloads: number;
  /** Answer bytes one collect run downloaded. */
  readonly bytes: number;
  readonly startup: ChildRun;
  readonly collect: ChildRun;
  /** Building every payload in process (wall: the same span). */
  readonly build: ChildRun;
  /** (collect − start-up − build) / queries, in ms. */
  readonly cpuMsPerQuery: number;
  /** (collect − start-up − build) / clusters, in ms: one cluster-hour's queries and fragments. */
  readonly cpuMsPerClusterHour: number;
  /** build / payloads, in ms. */
  readonly cpuMsPerPayload: number;
  /** Every single run, in order, for the record. */
  readonly all: { readonly kind: string; readonly run: ChildRun }[];
}

/**
 * Hub options of the measurement: `clusters` clusters of `nodes` nodes and
 * `pods` pods, 3 PVCs each, no VMs, no GPUs, no ROS data, 26 h from
 * {@linkcode BENCH_DAY} − 2 h.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ownCpuHubOptions } from "./own_cpu.ts";
 *
 * const o = ownCpuHubOptions(100, 3, 20);
 * assert.deepEqual([o.clusters, o.nodes, o.pods, o.gpuPods, o.ros], [100, 3, 20, 0, false]);
 * assert.equal(o.start.toISOString(), "2026-10-31T22:00:00.000Z");
 * ```
 */
export function ownCpuHubOptions(clusters: number, nodes: number, pods: number): HubOptions {
  for (const [name, v] of [["clusters", clusters], ["nodes", nodes], ["pods", pods]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`Invalid ${name} ${v}`);
  }
  return {
    seed: 20261101,
    clusters,
    nodes: Math.max(2, nodes),
    pods,
    pvcs: 3,
    vms: 0,
    gpuPods: 0,
    gpuClusters: 0,
    start: new Date(Date.parse(`${BENCH_DAY}T00:00:00Z`) - 2 * 3_600_000),
    hours: 26,
    intervalSeconds: 300,
    hostile: false,
    ros: false,
  };
}

/**
 * Median of a non-empty list.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { median } from "./own_cpu.ts";
 *
 * assert.equal(median([3, 1, 2]), 2);
 * assert.equal(median([4, 1, 2, 3]), 2.5);
 * ```
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("median of nothing");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function runChild(
  args: string[],
): Promise<{ run: ChildRun; stdout: string; stderr: string; code: number }> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const monitor = new ProcessMonitor(child.pid, { intervalMs: 10 });
  const [out, status] = await Promise.all([child.output(), child.status]);
  const wallSeconds = (performance.now() - started) / 1000;
  const usage = await monitor.stop();
  const decoder = new TextDecoder();
  return {
    run: { cpuSeconds: usage.cpuSeconds, wallSeconds },
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    code: status.code,
  };
}

/** Builds the hour-00 payload of every cluster from `stateDir`, as `collect` does; CPU of this process. */
async function buildPayloads(stateDir: string, ids: readonly string[]): Promise<ChildRun> {
  const store = new StateStore(stateDir);
  const spoolDir = `${stateDir}/own-cpu-spool`;
  const started = performance.now();
  const before = process.cpuUsage();
  for (const clusterId of ids) {
    const payload = await buildDayPayload({
      store,
      clusterId,
      day: BENCH_DAY,
      lastHour: 0,
      manifestVersion: DEFAULT_MANIFEST_VERSION,
      bridgeVersion: BRIDGE_VERSION,
      spoolDir,
    });
    for (const p of payload.parts) await Deno.remove(p.path);
  }
  const used = process.cpuUsage(before);
  return {
    cpuSeconds: (used.user + used.system) / 1e6,
    wallSeconds: (performance.now() - started) / 1000,
  };
}

interface CollectFigures {
  readonly queries: number;
  readonly payloads: number;
  readonly bytes: number;
}

function checkSummary(stdout: string, stderr: string, code: number, want: string): CollectFigures {
  let summary: {
    ok?: boolean;
    queries?: number;
    bytesDownloaded?: number;
    clusters?: { days?: { status?: string }[] }[];
  };
  try {
    summary = JSON.parse(stdout);
  } catch {
    throw new Error(`collect printed no JSON summary (exit ${code}): ${stderr.slice(-2000)}`);
  }
  const statuses = (summary.clusters ?? []).flatMap((c) => (c.days ?? []).map((d) => d.status));
  if (code !== 0 || summary.ok !== true || statuses.some((s) => s !== want)) {
    throw new Error(
      `collect failed (exit ${code}, statuses ${[...new Set(statuses)].join(",")}, ` +
        `want ${want}): ${stderr.slice(-2000)}`,
    );
  }
  return {
    queries: summary.queries ?? 0,
    payloads: statuses.length,
    bytes: summary.bytesDownloaded ?? 0,
  };
}

/**
 * Prepares the hub, starts Prometheus on it and measures the bridge's own CPU
 * per query and per payload (see the module documentation).
 *
 * @example
 * ```ts ignore
 * import { measureOwnCpu } from "./own_cpu.ts";
 * const r = await measureOwnCpu({ clusters: 100, runs: 3, cacheDir: "/tmp/own_cpu" });
 * console.log(r.cpuMsPerQuery, r.cpuMsPerPayload);
 * ```
 */
export async function measureOwnCpu(options: OwnCpuOptions = {}): Promise<OwnCpuResult> {
  const log = options.log ?? (() => {});
  const runs = options.runs ?? 3;
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`Invalid runs ${runs}`);
  const hubOptions = ownCpuHubOptions(
    options.clusters ?? 100,
    options.nodes ?? 3,
    options.pods ?? 20,
  );
  const ids = buildHub(hubOptions).clusters.map((c) => c.id);
  await using hub = await prepareBenchHub(hubOptions, {
    hoursPerFile: 26,
    settle: false,
    log,
    ...(options.cacheDir === undefined ? {} : { cacheDir: options.cacheDir }),
  });
  await using prom = await startPrometheus({ dataDir: hub.dataDir });
  const work = await Deno.makeTempDir({ prefix: "thanos_bridge_own_cpu_" });
  try {
    const collectArgs = (dir: string, extra: string[] = []) => [
      "run",
      ...RUNTIME_FLAGS,
      ...extra,
      MAIN,
      "collect",
      "--thanos-url",
      prom.url,
      "--cluster",
      ids.join(","),
      "--from",
      `${BENCH_DAY}T00`,
      "--to",
      `${BENCH_DAY}T00`,
      "--reduce",
      "server",
      "--no-ros",
      ...(options.clusterBatch === undefined
        ? []
        : ["--cluster-batch", String(options.clusterBatch)]),
      "--state",
      `${dir}/state`,
      "--out",
      `${dir}/out`,
      "--json",
    ];
    const all: { kind: string; run: ChildRun }[] = [];
    let figures: CollectFigures | undefined;
    // One unmeasured run first: Prometheus's caches and the page cache warm up.
    for (let i = -1; i < runs; i++) {
      const dir = `${work}/run-${i + 1}`;
      const startup = await runChild(["run", ...RUNTIME_FLAGS, MAIN, "collect", "--help"]);
      const first = await runChild(collectArgs(dir));
      const f = checkSummary(first.stdout, first.stderr, first.code, "new");
      const build = await buildPayloads(`${dir}/state`, ids);
      await Deno.remove(dir, { recursive: true });
      if (i < 0) continue;
      figures = f;
      all.push(
        { kind: "startup", run: startup.run },
        { kind: "collect", run: first.run },
        { kind: "build", run: build },
      );
      log(
        `run ${i + 1}/${runs}: start-up ${startup.run.cpuSeconds.toFixed(2)} s CPU, ` +
          `collect ${first.run.cpuSeconds.toFixed(2)} s CPU / ${
            first.run.wallSeconds.toFixed(2)
          } s wall, payloads ${build.cpuSeconds.toFixed(3)} s CPU`,
      );
    }
    if (options.profDir !== undefined) {
      await Deno.mkdir(options.profDir, { recursive: true });
      const prof = await runChild(
        collectArgs(`${work}/prof`, ["--cpu-prof", `--cpu-prof-dir=${options.profDir}`]),
      );
      checkSummary(prof.stdout, prof.stderr, prof.code, "new");
    }
    const pick = (kind: string, key: keyof ChildRun) =>
      median(all.filter((r) => r.kind === kind).map((r) => r.run[key]));
    const of = (kind: string): ChildRun => ({
      cpuSeconds: pick(kind, "cpuSeconds"),
      wallSeconds: pick(kind, "wallSeconds"),
    });
    const { queries, payloads, bytes } = figures!;
    const startup = of("startup");
    const collect = of("collect");
    const build = of("build");
    const own = collect.cpuSeconds - startup.cpuSeconds - build.cpuSeconds;
    return {
      clusters: ids.length,
      runs,
      queries,
      payloads,
      bytes,
      startup,
      collect,
      build,
      cpuMsPerQuery: queries > 0 ? own * 1000 / queries : 0,
      cpuMsPerClusterHour: own * 1000 / ids.length,
      cpuMsPerPayload: payloads > 0 ? build.cpuSeconds * 1000 / payloads : 0,
      all,
    };
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/**
 * The result as a few lines of text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatOwnCpu } from "./own_cpu.ts";
 *
 * const run = { cpuSeconds: 1, wallSeconds: 2 };
 * const text = formatOwnCpu({
 *   clusters: 2, runs: 1, queries: 100, payloads: 2, bytes: 1000, startup: run,
 *   collect: run, build: run, cpuMsPerQuery: 0.5, cpuMsPerClusterHour: 25,
 *   cpuMsPerPayload: 3, all: [],
 * });
 * assert.match(text, /0\.500 ms CPU per query/);
 * ```
 */
export function formatOwnCpu(r: OwnCpuResult): string {
  const s = (run: ChildRun) =>
    `${run.cpuSeconds.toFixed(3)} s CPU, ${run.wallSeconds.toFixed(2)} s wall`;
  return [
    `${r.clusters} clusters × 1 hour, server mode, medians of ${r.runs} run(s): ` +
    `${r.queries} queries, ${r.payloads} payloads, ${r.bytes} bytes`,
    `  start-up (collect --help): ${s(r.startup)}`,
    `  collect (fresh state):     ${s(r.collect)}`,
    `  payloads (in process):     ${s(r.build)}`,
    `  ${r.cpuMsPerQuery.toFixed(3)} ms CPU per query, ${
      r.cpuMsPerClusterHour.toFixed(2)
    } ms per cluster-hour, ${r.cpuMsPerPayload.toFixed(2)} ms per payload`,
  ].join("\n");
}

if (import.meta.main) {
  const arg = (name: string): string | undefined => {
    const i = Deno.args.indexOf(`--${name}`);
    return i < 0 ? undefined : Deno.args[i + 1];
  };
  const num = (name: string, fallback: number) => {
    const v = arg(name);
    return v === undefined ? fallback : Number(v);
  };
  const json = Deno.args.includes("--json");
  const result = await measureOwnCpu({
    clusters: num("clusters", 100),
    nodes: num("nodes", 3),
    pods: num("pods", 20),
    runs: num("runs", 3),
    ...(arg("cluster-batch") === undefined ? {} : { clusterBatch: num("cluster-batch", 100) }),
    ...(arg("cache") === undefined ? {} : { cacheDir: arg("cache")! }),
    ...(arg("prof") === undefined ? {} : { profDir: arg("prof")! }),
    log: (line) => console.error(line),
  });
  console.log(json ? JSON.stringify(result, null, 2) : formatOwnCpu(result));
}
