/**
 * The benchmark's synthetic cluster: one cluster of `pods` pods with nodes,
 * PVCs and VMs in proportion, 26 hours from the evening before the measured
 * day at a 300 s interval, backfilled into a TSDB. The TSDB can be cached in a
 * folder, keyed by the options, so repeated runs skip generation.
 *
 * @module
 */

import { buildHub, type Hub, type HubOptions } from "../tools/synth/model.ts";
import { writeOpenMetrics } from "../tools/synth/openmetrics.ts";
import { backfill, startPrometheus } from "../tools/synth/prometheus.ts";
import { waitForCompactions } from "./prometheus_metrics.ts";

/** The measured UTC day. */
export const BENCH_DAY = "2026-11-01";

/** Bump when the layout or the generator's meaning changes, to invalidate caches. */
const CACHE_FORMAT = 2;

/** Shape overrides of {@linkcode benchHubOptions}. */
export interface BenchHubShape {
  /** KubeVirt VMs (default one per 100 pods, at least 1); 0: a cluster without KubeVirt. */
  readonly vms?: number;
}

/**
 * Hub options for a benchmark cluster of `pods` regular pods: one node per 25
 * pods (at least 2), one bound PVC per 6.7 pods, one VM per 100 pods (at least
 * 1, unless `shape.vms` says otherwise), no GPUs, no hostile labels, ROS data
 * on (the bench compares collecting with and without `--no-ros`); 26 h from
 * `BENCH_DAY` − 2 h, 300 s interval.
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
 * assert.equal(benchHubOptions(2000, { vms: 0 }).vms, 0);
 * ```
 */
export function benchHubOptions(pods: number, shape: BenchHubShape = {}): HubOptions {
  if (!Number.isInteger(pods) || pods < 1 || pods > 100_000) {
    throw new RangeError(`Invalid pods ${pods}: expected an integer in [1, 100000]`);
  }
  const vms = shape.vms ?? Math.max(1, Math.round(pods / 100));
  if (!Number.isInteger(vms) || vms < 0 || vms > 10_000) {
    throw new RangeError(`Invalid vms ${vms}: expected an integer in [0, 10000]`);
  }
  return {
    seed: 20261101,
    clusters: 1,
    nodes: Math.max(2, Math.round(pods / 25)),
    pods,
    pvcs: Math.round(pods * 0.15),
    vms,
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
 * What a bench TSDB is generated from: the options of one hub, or of several
 * hubs (e.g. a fleet whose clusters differ in shape) whose clusters share one
 * TSDB. The parts must share `start`, `hours` and `intervalSeconds`, and
 * their seeds must give distinct cluster ids.
 */
export type BenchHubSpec = HubOptions | readonly HubOptions[];

function partsOf(spec: BenchHubSpec): readonly HubOptions[] {
  return Array.isArray(spec) ? spec : [spec as HubOptions];
}

/** Canonical JSON of a value: object keys sorted at every level, dates as ISO text. */
function canonicalJson(value: unknown): string {
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/**
 * Cache key of a generated TSDB: SHA-256 (first 16 hex digits) of the hub
 * options (or of every part of a multi-part spec, in order), the hours per
 * backfill file, the cache format and the text of the generator's sources (so
 * a changed generator never reuses stale data). A single `HubOptions` keeps
 * the key it had before multi-part specs existed.
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
export async function benchHubKey(spec: BenchHubSpec, hoursPerFile: number): Promise<string> {
  const sources = await Promise.all(GENERATOR_SOURCES.map((u) => Deno.readTextFile(u)));
  const canonical = Array.isArray(spec)
    ? canonicalJson({ format: CACHE_FORMAT, hoursPerFile, parts: spec, sources })
    : singleCanonical(spec as HubOptions, hoursPerFile, sources);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical));
  return Array.from(new Uint8Array(digest).slice(0, 8), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** The key text of one `HubOptions`, exactly as before multi-part specs (cached TSDBs stay valid). */
function singleCanonical(options: HubOptions, hoursPerFile: number, sources: string[]): string {
  return JSON.stringify({
    format: CACHE_FORMAT,
    hoursPerFile,
    ...options,
    start: options.start.toISOString(),
    sources,
  }, Object.keys({ ...options, format: 0, hoursPerFile: 0, sources: 0 }).sort());
}

/** A prepared benchmark TSDB. */
export interface BenchHub extends AsyncDisposable {
  /** TSDB folder to start Prometheus on. */
  readonly dataDir: string;
  /** The (first) cluster id (label `clusterID`). */
  readonly clusterId: string;
  /** Every cluster id, in generation order (parts in order). */
  readonly clusterIds: readonly string[];
  /** Number of series of all clusters. */
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
  /** Absent in entries cached before multi-cluster hubs: `[clusterId]`. */
  clusterIds?: string[];
  series: number;
  settleCompactions: number;
}

/**
 * Builds every part and merges their clusters into one hub (the parts share
 * the time grid). Throws a `RangeError` for no part, parts on different time
 * grids or a cluster id that two parts share.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { benchHubOptions, mergedHub } from "./bench_hub.ts";
 *
 * const a = { ...benchHubOptions(4), clusters: 2 };
 * const hub = mergedHub([a, { ...a, seed: a.seed + 1 }]);
 * assert.equal(hub.clusters.length, 4);
 * ```
 */
export function mergedHub(parts: readonly HubOptions[]): Hub {
  const hubs = parts.map((p) => buildHub(p));
  const first = hubs[0];
  if (first === undefined) throw new RangeError("A bench hub needs at least one part");
  const ids = new Set<string>();
  for (const h of hubs) {
    if (
      h.startMs !== first.startMs || h.hours !== first.hours ||
      h.intervalSeconds !== first.intervalSeconds
    ) {
      throw new RangeError("The parts of a bench hub must share start, hours and intervalSeconds");
    }
    for (const c of h.clusters) {
      if (ids.has(c.id)) {
        throw new RangeError(
          `Two parts of a bench hub have cluster ${c.id}: give them other seeds`,
        );
      }
      ids.add(c.id);
    }
  }
  return { ...first, clusters: hubs.flatMap((h) => h.clusters) };
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
  spec: BenchHubSpec,
  workDir: string,
  prepare: PrepareBenchHubOptions,
): Promise<HubMeta> {
  const log = prepare.log ?? (() => {});
  const t0 = performance.now();
  for (const o of partsOf(spec)) {
    log(
      `generating ${o.clusters} cluster(s) × ${o.pods} pods, ${o.nodes} nodes, ${o.pvcs} PVCs, ` +
        `${o.vms} VMs, ${o.gpuPods > 0 ? o.gpuClusters ?? 1 : 0} with GPUs × ${o.hours} h, ` +
        `${prepare.hoursPerFile} h per backfill file …`,
    );
  }
  const hub = mergedHub(partsOf(spec));
  const omDir = `${workDir}/openmetrics`;
  const dataDir = `${workDir}/data`;
  const files = await writeOpenMetrics(hub, omDir, { hoursPerFile: prepare.hoursPerFile });
  await backfill(files, dataDir);
  await Deno.remove(omDir, { recursive: true });
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
  return {
    clusterId: cluster.id,
    clusterIds: hub.clusters.map((c) => c.id),
    series: hub.clusters.reduce((n, c) => n + c.series.length, 0),
    settleCompactions,
  };
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
  options: BenchHubSpec,
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
      clusterIds: meta.clusterIds ?? [meta.clusterId],
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

/** What {@linkcode withBenchServer} hands to its body. */
export interface BenchServer {
  readonly hub: BenchHub;
  readonly prom: Awaited<ReturnType<typeof startPrometheus>>;
  /** A temporary work folder, removed afterwards. */
  readonly work: string;
}

/**
 * Prepares a bench hub, serves it with a real Prometheus and gives `fn` a
 * temporary work folder; afterwards Prometheus is stopped (by its PID), the
 * folder removed and the hub disposed, whatever `fn` did.
 *
 * @example
 * ```ts ignore
 * import { benchHubOptions, withBenchServer } from "./bench_hub.ts";
 * const series = await withBenchServer(benchHubOptions(100), { hoursPerFile: 24 }, "x_", undefined,
 *   ({ hub, prom }) => Promise.resolve(`${prom.url}: ${hub.series}`));
 * ```
 */
export async function withBenchServer<T>(
  spec: BenchHubSpec,
  prepare: PrepareBenchHubOptions,
  prefix: string,
  signal: AbortSignal | undefined,
  fn: (server: BenchServer) => Promise<T>,
): Promise<T> {
  const hub = await prepareBenchHub(spec, prepare);
  let work: string | undefined;
  let prom: Awaited<ReturnType<typeof startPrometheus>> | undefined;
  try {
    signal?.throwIfAborted();
    work = await Deno.makeTempDir({ prefix });
    prom = await startPrometheus({ dataDir: hub.dataDir });
    return await fn({ hub, prom, work });
  } finally {
    await prom?.stop();
    if (work !== undefined) await Deno.remove(work, { recursive: true }).catch(() => {});
    await hub.dispose();
  }
}
