/**
 * Binds CMMO's 56 ROS queries (contract §2, groups 10–12) to one cluster of a
 * hub's Thanos: every selector gets the cluster matcher, and range windows
 * shorter than the bridge's rate window are widened to it.
 *
 * Windows: the ROS queries keep their `[15m]` windows and `[15m:]` subqueries
 * (15 minutes is CMMO's ROS interval, contract §3.1). Only windows shorter
 * than the rate window are widened — with the default `15m` that is the
 * `rate(container_cpu_cfs_throttled_seconds_total[5m])` inside the three
 * `cpu-throttle-namespace-*` subqueries: ACM pushes every 300 s, so a 5-minute
 * window holds at most one sample on Prometheus 3 / Thanos (left edge open)
 * and `rate` would be empty.
 *
 * @module
 */

import { parseDuration } from "../model.ts";
import { createHash } from "node:crypto";
import type { RosQuery } from "./catalogue_groups.ts";
import { carriesLabel, rewriteQuery } from "./promql_rewrite.ts";
import { ROS_QUERIES } from "./ros_catalogue.ts";

/** A ROS catalogue query bound to one cluster. */
export interface PlannedRosQuery {
  /** The catalogue entry. */
  readonly query: RosQuery;
  /** The rewritten expression (cluster matcher, short windows widened), sent as an instant query. */
  readonly expr: string;
}

/** How ROS queries are bound to a cluster. */
export interface RosPlanOptions {
  /** Label carrying the cluster id, e.g. `clusterID`. */
  readonly clusterLabel: string;
  /** The cluster id to match. */
  readonly clusterId: string;
  /** The bridge's `--rate-window`, e.g. `15m`: the shortest range window sent. */
  readonly rateWindow: string;
}

/** The ROS interval: no ROS window is ever widened beyond it. */
const ROS_INTERVAL_MS = 15 * 60_000;

/** `rateWindow`, capped at the 15-minute ROS interval. */
function rosMinWindow(rateWindow: string): string {
  let ms: number;
  try {
    ms = parseDuration(rateWindow);
  } catch {
    return rateWindow; // rewriteQuery names the bad value
  }
  return ms > ROS_INTERVAL_MS ? "15m" : rateWindow;
}

/**
 * Binds every ROS query to a cluster, in CMMO's order (filter, 35 container,
 * 20 namespace queries). Every vector selector — also inside subqueries,
 * `label_replace(…)` and both sides of `or` — gets `clusterLabel="clusterId"`;
 * every `rate`-like or `*_over_time` window shorter than `rateWindow` (at
 * most 15m, the ROS interval itself) is widened to it; CMMO's `[15m]` windows
 * and subquery ranges stay as CMMO wrote them, whatever `--rate-window` is.
 *
 * @param options Cluster label, cluster id and rate window.
 * @param queries The ROS catalogue (default {@linkcode ROS_QUERIES}).
 * @returns One planned query per catalogue entry, same order.
 * @throws {RangeError} On an invalid label name, an empty cluster id or a
 *   non-positive rate window (see `rewriteQuery`).
 *
 * @example
 * ```ts
 * import { planRosQueries } from "./ros_plan.ts";
 * const plan = planRosQueries({ clusterLabel: "clusterID", clusterId: "c1", rateWindow: "15m" });
 * plan.length; // 56
 * plan[0]!.expr; // "kube_namespace_labels{…, clusterID=\"c1\"} or kube_namespace_labels{…, clusterID=\"c1\"}"
 * ```
 */
export function planRosQueries(
  options: RosPlanOptions,
  queries: readonly RosQuery[] = ROS_QUERIES,
): PlannedRosQuery[] {
  return queries.map((query) => ({
    query,
    expr: rewriteQuery(query.expr, {
      label: options.clusterLabel,
      value: options.clusterId,
      minRangeWindow: rosMinWindow(options.rateWindow),
    }),
  }));
}

/** A ROS catalogue query bound to a batch of clusters. */
export type BatchPlannedRosQuery = PlannedRosQuery & {
  /** True if the per-cluster answer has no cluster label: delete it from each series of the
   *  batched answer after routing the series by it. False: keep it. */
  readonly stripClusterLabel: boolean;
};

/** How ROS queries are bound to a batch of clusters. */
export interface BatchRosPlanOptions {
  /** Label carrying the cluster id, e.g. `clusterID`. */
  readonly clusterLabel: string;
  /** The cluster ids of the batch: at least one, none empty, no duplicates. */
  readonly clusterIds: readonly string[];
  /** The bridge's `--rate-window`, e.g. `15m`: the shortest range window sent. */
  readonly rateWindow: string;
}

/**
 * Binds every ROS query to a batch of clusters: one expression per query
 * that selects all of them (`clusterLabel=~"id1|id2|…"`) and keeps them
 * apart (the cluster label in every grouping and `on`; see
 * `rewriteQuery`'s `values`), with the same window widening as
 * {@linkcode planRosQueries}. For one cluster id the queries are exactly
 * {@linkcode planRosQueries}'s for that id. Hours are recorded with the
 * per-cluster {@linkcode rosPlanFingerprint}, never with this plan.
 *
 * @param options Cluster label, the batch's cluster ids and the rate window.
 * @param queries The ROS catalogue (default {@linkcode ROS_QUERIES}).
 * @returns One planned query per catalogue entry, same order, each with
 *   `stripClusterLabel`.
 * @throws {TypeError} If a query cannot be split by cluster, even for one id.
 * @throws {RangeError} On an invalid label, an empty batch, an empty or
 *   duplicate id, or a non-positive rate window.
 *
 * @example
 * ```ts
 * import { planBatchRosQueries } from "./ros_plan.ts";
 * const plan = planBatchRosQueries({
 *   clusterLabel: "clusterID",
 *   clusterIds: ["c1", "c2"],
 *   rateWindow: "15m",
 * });
 * plan.length; // 56
 * plan[0]!.stripClusterLabel; // false
 * ```
 */
export function planBatchRosQueries(
  options: BatchRosPlanOptions,
  queries: readonly RosQuery[] = ROS_QUERIES,
): BatchPlannedRosQuery[] {
  const { clusterLabel, clusterIds, rateWindow } = options;
  const strip = (query: RosQuery) => !carriesLabel(query.expr, clusterLabel);
  if (Array.isArray(clusterIds) && clusterIds.length === 1) {
    const single = { clusterLabel, clusterId: clusterIds[0]!, rateWindow };
    return planRosQueries(single, queries).map((p) => ({
      ...p,
      stripClusterLabel: strip(p.query),
    }));
  }
  return queries.map((query) => ({
    query,
    expr: rewriteQuery(query.expr, {
      label: clusterLabel,
      values: clusterIds,
      minRangeWindow: rosMinWindow(rateWindow),
    }),
    stripClusterLabel: strip(query),
  }));
}

/**
 * SHA-256 (lower-case hex) of a ROS plan: the catalogue name and the
 * rewritten expression of each planned query, in plan order. Pure and stable:
 * the same catalogue, cluster, cluster label and rate window always give the
 * same fingerprint, and any change to an expression sent to Thanos changes it.
 *
 * @example
 * ```ts
 * import { planRosQueries, rosPlanFingerprint } from "./ros_plan.ts";
 * const opts = { clusterLabel: "clusterID", clusterId: "c1", rateWindow: "15m" };
 * rosPlanFingerprint(planRosQueries(opts)).length; // 64
 * ```
 */
export function rosPlanFingerprint(plan: readonly PlannedRosQuery[]): string {
  const canonical = plan.map((p) => [p.query.name, p.expr]);
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex");
}
