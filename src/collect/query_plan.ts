/**
 * Turns catalogue entries into the PromQL actually sent for one cluster: the
 * cluster matcher injected, range windows rewritten (BRIDGE §1), and, for
 * server-side reduction, wrapped in `*_over_time((…)[1h:1m])`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { CollectionParams } from "../package/state_store.ts";
import type { CostQuery } from "./catalogue_groups.ts";
import { carriesLabel, rewriteQuery } from "./promql_rewrite.ts";
import { type ServerAggregate, serverAggregates } from "./reduce.ts";

/** A catalogue query bound to one cluster. */
export interface PlannedQuery {
  /** The catalogue entry. */
  readonly query: CostQuery;
  /** The rewritten expression (cluster matcher, range window). */
  readonly expr: string;
  /** For server-side reduction: one wrapped expression per aggregate needed. */
  readonly server: readonly { readonly aggregate: ServerAggregate; readonly expr: string }[];
}

/** How queries are bound to a cluster. */
export interface PlanOptions {
  /** Label carrying the cluster id, e.g. `clusterID`. */
  readonly clusterLabel: string;
  /** The cluster id to match. */
  readonly clusterId: string;
  /** Range window for rate/irate/increase/*_over_time, e.g. `15m`. */
  readonly rateWindow: string;
}

/**
 * Wraps an expression so that one evaluation at (H+1):00:00 aggregates CMMO's
 * 60 evaluation points H:00:00 … H:59:00 of hour H. The `offset 1s` moves the
 * subquery's evaluation to H:59:59, whose window start (H−1):59:59 is off the
 * minute grid, so Prometheus 2.x (closed start) and 3.x/Thanos (open start)
 * pick exactly H:00 … H:59. Evaluating at whole hours keeps `query_range`'s
 * start and end multiples of the 3600 s step, so a Thanos query-frontend that
 * aligns ranges with the step (`--query-range.align-range-with-step`) cannot
 * shift the window.
 *
 * @example
 * ```ts
 * import { serverExpr } from "./query_plan.ts";
 * serverExpr("up", "sum"); // "sum_over_time((up)[1h:1m] offset 1s)"
 * ```
 */
export function serverExpr(expr: string, aggregate: ServerAggregate): string {
  return `${aggregate}_over_time((${expr.trim()})[1h:1m] offset 1s)`;
}

/**
 * Binds every query to a cluster.
 *
 * @example
 * ```ts
 * import { planQueries } from "./query_plan.ts";
 * import { COST_QUERIES } from "./catalogue.ts";
 * const plan = planQueries(COST_QUERIES, { clusterLabel: "clusterID", clusterId: "c1", rateWindow: "15m" });
 * plan.length; // 36
 * ```
 */
export function planQueries(
  queries: readonly CostQuery[],
  options: PlanOptions,
): PlannedQuery[] {
  return queries.map((query) => {
    const expr = rewriteQuery(query.expr, {
      label: options.clusterLabel,
      value: options.clusterId,
      rangeWindow: options.rateWindow,
    });
    const server = serverAggregates(query.value?.reduction ?? null).map((aggregate) => ({
      aggregate,
      expr: serverExpr(expr, aggregate),
    }));
    return { query, expr, server };
  });
}

/** A catalogue query bound to a batch of clusters. */
export type BatchPlannedQuery = PlannedQuery & {
  /** True if the per-cluster answer has no cluster label: delete it from each series of the
   *  batched answer after routing the series by it, so each cluster gets exactly its own
   *  per-cluster answer. False: the per-cluster answer has it too; keep it. */
  readonly stripClusterLabel: boolean;
};

/** How queries are bound to a batch of clusters. */
export interface BatchPlanOptions {
  /** Label carrying the cluster id, e.g. `clusterID`. */
  readonly clusterLabel: string;
  /** The cluster ids of the batch: at least one, none empty, no duplicates. */
  readonly clusterIds: readonly string[];
  /** Range window for rate/irate/increase/*_over_time, e.g. `15m`. */
  readonly rateWindow: string;
}

/**
 * Binds every query to a batch of clusters: one expression per query that
 * selects all of them (`clusterLabel=~"id1|id2|…"`) and keeps them apart
 * (the cluster label in every grouping and `on`; see `rewriteQuery`'s
 * `values`). For one cluster id the queries are exactly
 * {@linkcode planQueries}'s for that id (`clusterLabel="id"`). Batching is a
 * transport detail: hours are recorded with the per-cluster
 * {@linkcode planFingerprint}, never with this plan.
 *
 * @param queries The cost catalogue.
 * @param options Cluster label, the batch's cluster ids and the rate window.
 * @returns One planned query per catalogue entry, same order, each with
 *   `stripClusterLabel`.
 * @throws {TypeError} If a query cannot be split by cluster (the message
 *   names the construct and why), even for one cluster id.
 * @throws {RangeError} On an invalid label, an empty batch, an empty or
 *   duplicate id, or a non-positive rate window.
 *
 * @example
 * ```ts
 * import { planBatchQueries } from "./query_plan.ts";
 * import { COST_QUERIES } from "./catalogue.ts";
 * const plan = planBatchQueries(COST_QUERIES, {
 *   clusterLabel: "clusterID",
 *   clusterIds: ["c1", "c2"],
 *   rateWindow: "15m",
 * });
 * plan[16]!.expr; // "sum by (pod, namespace, node, clusterID) (rate(container_cpu_usage_seconds_total{…, clusterID=~\"c1|c2\"}[15m]))"
 * plan[16]!.stripClusterLabel; // true
 * ```
 */
export function planBatchQueries(
  queries: readonly CostQuery[],
  options: BatchPlanOptions,
): BatchPlannedQuery[] {
  const { clusterLabel, clusterIds, rateWindow } = options;
  const strip = (query: CostQuery) => !carriesLabel(query.expr, clusterLabel);
  if (Array.isArray(clusterIds) && clusterIds.length === 1) {
    const single = { clusterLabel, clusterId: clusterIds[0]!, rateWindow };
    return planQueries(queries, single).map((p) => ({ ...p, stripClusterLabel: strip(p.query) }));
  }
  return queries.map((query) => {
    const expr = rewriteQuery(query.expr, {
      label: clusterLabel,
      values: clusterIds,
      rangeWindow: rateWindow,
    });
    const server = serverAggregates(query.value?.reduction ?? null).map((aggregate) => ({
      aggregate,
      expr: serverExpr(expr, aggregate),
    }));
    return { query, expr, server, stripClusterLabel: strip(query) };
  });
}

/**
 * SHA-256 (lower-case hex) of a plan: the catalogue name, the rewritten
 * expression and every server-side variant (aggregate and expression) of each
 * planned query, in plan order. Pure and stable: the same catalogue, cluster,
 * cluster label and rate window always give the same fingerprint, and any
 * change to an expression sent to Thanos changes it.
 *
 * @example
 * ```ts
 * import { planFingerprint, planQueries } from "./query_plan.ts";
 * import { COST_QUERIES } from "./catalogue.ts";
 * const opts = { clusterLabel: "clusterID", clusterId: "c1", rateWindow: "15m" };
 * planFingerprint(planQueries(COST_QUERIES, opts)).length; // 64
 * ```
 */
export function planFingerprint(plan: readonly PlannedQuery[]): string {
  const canonical = plan.map((p) => [
    p.query.name,
    p.expr,
    p.server.map((s) => [s.aggregate, s.expr]),
  ]);
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex");
}

/**
 * The collection parameters recorded in each hour's `hour.json` and compared
 * by `hourMatches` (state_store.ts): cluster label, rate window, reduce mode
 * and {@linkcode planFingerprint} of the plan.
 *
 * @example
 * ```ts
 * import { collectionParams, planQueries } from "./query_plan.ts";
 * import { COST_QUERIES } from "./catalogue.ts";
 * const opts = { clusterLabel: "clusterID", clusterId: "c1", rateWindow: "15m" };
 * const params = collectionParams(planQueries(COST_QUERIES, opts), { ...opts, reduce: "server" });
 * params.reduce; // "server"
 * ```
 */
export function collectionParams(
  plan: readonly PlannedQuery[],
  options: { readonly clusterLabel: string; readonly rateWindow: string; readonly reduce: string },
): CollectionParams {
  return {
    clusterLabel: options.clusterLabel,
    rateWindow: options.rateWindow,
    reduce: options.reduce,
    queryHash: planFingerprint(plan),
  };
}
