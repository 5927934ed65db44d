/**
 * The main job: for every cluster, collect the missing closed hours of one
 * day into the state store, then assemble the cumulative day payload and hand
 * it to the sink. One failing cluster never stops the others.
 *
 * @module
 */

import { COST_QUERIES } from "../collect/catalogue.ts";
import { type CollectEvent, collectHours, type RangeQuerier } from "../collect/hour_collector.ts";
import { planQueries } from "../collect/query_plan.ts";
import { REPORT_NAMES, type ReportName } from "../collect/reports.ts";
import type { ResolvedConfig } from "../config.ts";
import type { DirectorySink } from "../deliver/directory_sink.ts";
import { buildDayPayload } from "../package/day_payload.ts";
import { manifestUuid, validateManifest } from "../package/manifest.ts";
import type { HourMeta, StateStore } from "../package/state_store.ts";

/** The bridge's own version, written to `cr_status.source.bridge_version`. */
export const BRIDGE_VERSION = "0.1.0";

/** What happened to one cluster's day payload. */
export type PayloadStatus =
  /** A new payload was written to the sink. */
  | "new"
  /** The sink already holds this exact payload (same uuid): nothing shipped. */
  | "unchanged"
  /** Hours were collected but none had data: nothing to ship. */
  | "no-data"
  /** Hour 00 of the day is not collected yet: nothing to ship. */
  | "none";

/** Summary of one cluster. */
export interface ClusterSummary {
  readonly clusterId: string;
  readonly day: string;
  /** Hours queried and committed by this run. */
  readonly collectedHours: readonly number[];
  /** Hours that failed in this run; they are retried by the next run. */
  readonly failedHours: readonly { hour: number; error: string }[];
  /** A cluster-level error (e.g. a query that cannot be rewritten). */
  readonly error: string | null;
  readonly status: PayloadStatus;
  readonly uuid: string | null;
  /** Hours in the payload (00..lastHour), or 0. */
  readonly hours: number;
  readonly lastHour: number | null;
  readonly rows: Partial<Record<ReportName, number>>;
  readonly bytes: number;
  readonly paths: readonly string[];
}

/** Summary of a whole run. */
export interface CollectSummary {
  readonly day: string;
  readonly lastHour: number;
  readonly mode: "server" | "client";
  readonly clusters: readonly ClusterSummary[];
  /** Queries sent to Thanos (0 when everything came from the state store). */
  readonly queries: number;
  readonly bytesDownloaded: number;
  readonly ms: number;
  /** False when any hour or cluster failed. */
  readonly ok: boolean;
}

/** What the job needs besides the configuration. */
export interface CollectJobDeps {
  readonly client: RangeQuerier;
  readonly store: StateStore;
  readonly sink: DirectorySink;
  readonly now: () => Date;
  /** Query counters of the client, read at the end for the summary. */
  readonly clientStats: () => { queries: number; bytes: number };
  readonly onEvent?: (event: CollectEvent) => void;
}

/**
 * Runs the collect job for every configured cluster, up to `concurrency`
 * clusters in parallel (the Thanos client bounds the queries in flight).
 *
 * @example
 * ```ts ignore
 * import { runCollect } from "./collect_job.ts";
 * const summary = await runCollect(config, deps);
 * if (!summary.ok) Deno.exitCode = 1;
 * ```
 */
export async function runCollect(
  config: ResolvedConfig,
  deps: CollectJobDeps,
): Promise<CollectSummary> {
  const started = performance.now();
  // At most `concurrency` clusters at a time: the client already bounds the queries in flight,
  // and this bounds the partial hours held in memory, which would otherwise grow with the
  // number of clusters.
  const clusters: ClusterSummary[] = new Array(config.clusters.length);
  let next = 0;
  const worker = async () => {
    while (next < config.clusters.length) {
      const i = next++;
      clusters[i] = await collectCluster(config, deps, config.clusters[i]!);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(config.concurrency, config.clusters.length) }, worker),
  );
  const stats = deps.clientStats();
  return {
    day: config.day,
    lastHour: config.lastHour,
    mode: config.reduce,
    clusters,
    queries: stats.queries,
    bytesDownloaded: stats.bytes,
    ms: Math.round(performance.now() - started),
    ok: clusters.every((c) => c.error === null && c.failedHours.length === 0),
  };
}

/** Last hour of the gap-free run of committed hours starting at 00, capped at `max`. */
export function contiguousLastHour(
  hours: ReadonlyMap<number, unknown>,
  max: number,
): number | null {
  let last: number | null = null;
  for (let h = 0; h <= max && hours.has(h); h++) last = h;
  return last;
}

async function collectCluster(
  config: ResolvedConfig,
  deps: CollectJobDeps,
  clusterId: string,
): Promise<ClusterSummary> {
  const base = {
    clusterId,
    day: config.day,
    collectedHours: [] as number[],
    failedHours: [] as { hour: number; error: string }[],
    error: null as string | null,
    status: "none" as PayloadStatus,
    uuid: null as string | null,
    hours: 0,
    lastHour: null as number | null,
    rows: {} as Partial<Record<ReportName, number>>,
    bytes: 0,
    paths: [] as string[],
  };
  try {
    const plan = planQueries(COST_QUERIES, {
      clusterLabel: config.clusterLabel,
      clusterId,
      rateWindow: config.rateWindow,
    });
    const existing = await deps.store.listHours(clusterId, config.day);
    const wanted: number[] = [];
    for (let h = 0; h <= config.lastHour; h++) {
      if (config.recollect || !existing.has(h)) wanted.push(h);
    }
    if (wanted.length > 0) {
      const result = await collectHours(
        {
          client: deps.client,
          store: deps.store,
          mode: config.reduce,
          batchHours: config.batchHours,
          now: deps.now,
          ...(deps.onEvent ? { onEvent: deps.onEvent } : {}),
        },
        plan,
        clusterId,
        config.day,
        wanted,
      );
      base.collectedHours = result.collected;
      base.failedHours = result.failed;
    }
    const committed = await deps.store.listHours(clusterId, config.day);
    const lastHour = contiguousLastHour(committed, config.lastHour);
    if (lastHour === null) return base;
    base.lastHour = lastHour;
    base.hours = lastHour + 1;
    const included = [...committed.values()].filter((m: HourMeta) => m.hour <= lastHour);
    for (const name of REPORT_NAMES) {
      base.rows[name] = included.reduce((n, m) => n + (m.rows[name] ?? 0), 0);
    }
    if (included.every((m) => m.noData)) {
      base.status = "no-data";
      return base;
    }
    const uuid = manifestUuid(clusterId, config.day, lastHour, REPORT_NAMES);
    base.uuid = uuid;
    const already = await deps.sink.hasUuid(clusterId, config.day, uuid);
    if (already.length > 0) {
      base.status = "unchanged";
      base.paths = already;
      return base;
    }
    const payload = await buildDayPayload({
      store: deps.store,
      clusterId,
      day: config.day,
      lastHour,
      reports: REPORT_NAMES,
      manifestVersion: config.manifestVersion,
      bridgeVersion: BRIDGE_VERSION,
      maxBytes: config.maxBytes,
      spoolDir: `${deps.store.root}/.spool`,
    });
    const problems = validateManifest(JSON.parse(payload.manifest));
    if (problems.length > 0) {
      throw new Error(`built manifest fails koku's rules: ${problems.join("; ")}`);
    }
    base.paths = await deps.sink.deliver(payload);
    base.bytes = payload.parts.reduce((n, p) => n + p.bytes, 0);
    base.status = "new";
    return base;
  } catch (error) {
    base.error = error instanceof Error ? error.message : String(error);
    return base;
  }
}
