/**
 * The benchmark's synthetic cluster: one cluster of `pods` pods with nodes,
 * PVCs and VMs in proportion, 26 hours from the evening before the measured
 * day at a 300 s interval, backfilled into a TSDB. The TSDB can be cached in a
 * folder, keyed by the options, so repeated runs skip generation.
 *
 * @module
 */

import type { HubOptions } from "../tools/synth/model.ts";
import { prepareHub, startPrometheus } from "../tools/synth/prometheus.ts";
import { waitForCompactions } from "./prometheus_metrics.ts";

/** The measured UTC day. */
export const BENCH_DAY = "2026-11-01";

/** Bump when the layout or the generator's meaning changes, to invalidate caches. */
const CACHE_FORMAT = 2;

/**
 * Hub options for a benchmark cluster of `pods` regular pods: one node per 25
 * pods (at least 2), one bound PVC per 6.7 pods, one VM per 100 pods (at least
 * 1), no GPUs, no hostile labels, ROS data on (the bench compares collecting
 * with and without `--no-ros`); 26 h from `BENCH_DAY` − 2 h, 300 s interval.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { benchHubOptions } from "./bench_hub.ts";
 *
 * const o = benchHubOptions(2000);
 * assert.deepEqual([o.pods, o.nodes, o.pvcs, o.vms, o.gpuPods], [2000, 80, 300, 20, 0]);
 * assert.equal(o.start.toISOString(), "2026-10-31T22:00:00.000Z");
 * assert.equal(o.ros, true);
 * ```
 */
export function benchHubOptions(pods: number): HubOptions {
  if (!Number.isInteger(pods) || pods < 1 || pods > 100_000) {
    throw new RangeError(`Invalid pods ${pods}: expected an integer in [1, 100000]`);
  }
  return {
    seed: 20261101,
    clusters: 1,
    nodes: Math.max(2, Math.round(pods / 25)),
    pods,
    pvcs: Math.round(pods * 0.15),
    vms: Math.max(1, Math.round(pods / 100)),
    gpuPods: 0,
    gpuClusters: 0,
    start: new Date(Date.parse(`${BENCH_DAY}T00:00:00Z`) - 2 * 3_600_000),
    hours: 26,
    intervalSeconds: 300,
    hostile: false,
    // Explicit (also the generator's default): the key then names it, so a
    // TSDB cached before the bench measured ROS is never reused.
    ros: true,
  };
}

/** Sources whose changes change the generated data. */
const GENERATOR_SOURCES = [
  new URL("../tools/synth/model.ts", import.meta.url),
  new URL("../tools/synth/openmetrics.ts", import.meta.url),
];

/**
 * Cache key of a generated TSDB: SHA-256 (first 16 hex digits) of the hub
 * options, the hours per backfill file, the cache format and the text of the
 * generator's sources (so a changed generator never reuses stale data).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { benchHubKey, benchHubOptions } from "./bench_hub.ts";
 *
 * const a = await benchHubKey(benchHubOptions(2000), 6);
 * assert.match(a, /^[0-9a-f]{16}$/);
 * assert.notEqual(a, await benchHubKey(benchHubOptions(2001), 6));
 * ```
 */
export async function benchHubKey(options: HubOptions, hoursPerFile: number): Promise<string> {
  const sources = await Promise.all(GENERATOR_SOURCES.map((u) => Deno.readTextFile(u)));
  const canonical = JSON.stringify({
    format: CACHE_FORMAT,
    hoursPerFile,
    ...options,
    start: options.start.toISOString(),
    sources,
  }, Object.keys({ ...options, format: 0, hoursPerFile: 0, sources: 0 }).sort());
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical));
  return Array.from(new Uint8Array(digest).slice(0, 8), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** A prepared benchmark TSDB. */
export interface BenchHub extends AsyncDisposable {
  /** TSDB folder to start Prometheus on. */
  readonly dataDir: string;
  /** The cluster id (label `clusterID`). */
  readonly clusterId: string;
  /** Number of series of the cluster. */
  readonly series: number;
  /** True when the TSDB came from the cache. */
  readonly cached: boolean;
  /** Generation + backfill + settling time in ms (0 when cached). */
  readonly prepareMs: number;
  /** Compactions Prometheus ran while settling (0 when cached or not settled). */
  readonly settleCompactions: number;
  /** Removes the TSDB unless it lives in the cache. */
  dispose(): Promise<void>;
}

/** Options of {@linkcode prepareBenchHub}. */
export interface PrepareBenchHubOptions {
  /** Cache folder; without it the TSDB goes to a temp folder removed by `dispose`. */
  readonly cacheDir?: string;
  /** Hours per OpenMetrics file given to promtool (bounds its memory). */
  readonly hoursPerFile: number;
  /**
   * Start Prometheus once after the backfill and wait for its first
   * compaction pass, so that it does not merge blocks during the measurements
   * (default: when `hoursPerFile` < 24, which yields blocks it merges).
   */
  readonly settle?: boolean;
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

interface HubMeta {
  clusterId: string;
  series: number;
  settleCompactions: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function generate(
  options: HubOptions,
  workDir: string,
  prepare: PrepareBenchHubOptions,
): Promise<HubMeta> {
  const log = prepare.log ?? (() => {});
  const t0 = performance.now();
  log(
    `generating ${options.pods} pods, ${options.nodes} nodes, ${options.pvcs} PVCs, ` +
      `${options.vms} VMs × ${options.hours} h, ${prepare.hoursPerFile} h per backfill file …`,
  );
  const { hub, dataDir } = await prepareHub(options, workDir, {
    hoursPerFile: prepare.hoursPerFile,
  });
  const cluster = hub.clusters[0];
  if (cluster === undefined) throw new RangeError("The bench hub has no cluster");
  log(`generated and backfilled in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  let settleCompactions = 0;
  if (prepare.settle ?? prepare.hoursPerFile < 24) {
    const t1 = performance.now();
    log("letting Prometheus compact the backfilled blocks once (about a minute) …");
    const prom = await startPrometheus({ dataDir });
    try {
      settleCompactions = (await waitForCompactions(prom.url)).compactions;
    } finally {
      await prom.stop();
    }
    log(
      `settled: ${settleCompactions} compaction(s) in ${
        ((performance.now() - t1) / 1000).toFixed(1)
      } s`,
    );
  }
  return { clusterId: cluster.id, series: cluster.series.length, settleCompactions };
}

/**
 * Generates and backfills the benchmark hub (or finds it in the cache). A
 * cache entry is built in a temporary sibling folder and renamed into place
 * only when complete, so an interrupted run leaves no half-built entry.
 *
 * @example
 * ```ts ignore
 * import { benchHubOptions, prepareBenchHub } from "./bench_hub.ts";
 * await using hub = await prepareBenchHub(benchHubOptions(200), { hoursPerFile: 24 });
 * console.log(hub.dataDir, hub.clusterId);
 * ```
 */
export async function prepareBenchHub(
  options: HubOptions,
  prepare: PrepareBenchHubOptions,
): Promise<BenchHub> {
  const started = performance.now();
  const make = (dir: string, meta: HubMeta, cached: boolean, temporary: boolean): BenchHub => {
    const dispose = async () => {
      if (temporary) await Deno.remove(dir, { recursive: true }).catch(() => {});
    };
    return {
      dataDir: `${dir}/data`,
      clusterId: meta.clusterId,
      series: meta.series,
      cached,
      prepareMs: cached ? 0 : performance.now() - started,
      settleCompactions: meta.settleCompactions,
      dispose,
      [Symbol.asyncDispose]: dispose,
    };
  };
  if (prepare.cacheDir === undefined) {
    const dir = await Deno.makeTempDir({ prefix: "thanos_bridge_bench_hub_" });
    try {
      return make(dir, await generate(options, dir, prepare), false, true);
    } catch (error) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw error;
    }
  }
  const key = await benchHubKey(options, prepare.hoursPerFile);
  const dir = `${prepare.cacheDir}/hub-${key}`;
  const metaFile = `${dir}/hub.json`;
  if (await exists(metaFile)) {
    const meta = JSON.parse(await Deno.readTextFile(metaFile)) as HubMeta;
    if (typeof meta.clusterId !== "string") {
      throw new TypeError(`${metaFile}: no clusterId; delete ${dir} to rebuild it`);
    }
    prepare.log?.(`using the cached TSDB ${dir}`);
    return make(dir, meta, true, false);
  }
  await Deno.mkdir(prepare.cacheDir, { recursive: true });
  const tmp = `${dir}.tmp-${crypto.randomUUID()}`;
  try {
    const meta = await generate(options, tmp, prepare);
    await Deno.writeTextFile(`${tmp}/hub.json`, JSON.stringify(meta) + "\n");
    await Deno.rename(tmp, dir);
    prepare.log?.(`cached the TSDB in ${dir}`);
    return make(dir, meta, false, false);
  } catch (error) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw error;
  }
}
