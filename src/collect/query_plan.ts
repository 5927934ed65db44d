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
import { rewriteQuery } from "./promql_rewrite.ts";
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
