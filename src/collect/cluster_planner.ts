/**
 * Binds the catalogues to one cluster cheaply: the queries are parsed and
 * rewritten once, for a placeholder cluster id, and each cluster's plan is the
 * template with the placeholder's string literal replaced by the cluster's.
 * The result is exactly `planQueries`/`planRosQueries` for that cluster (the
 * rewriter's output depends on the id only through that literal, since no
 * catalogue query mentions the cluster label itself; checked at creation),
 * at a fraction of the cost: a hub run plans every cluster it collects.
 *
 * @module
 */

import type { CollectionParams } from "../package/state_store.ts";
import { COST_QUERIES } from "./catalogue.ts";
import type { CostQuery } from "./catalogue_groups.ts";
import { quotePromqlString } from "./promql_rewrite.ts";
import { collectionParams, type PlannedQuery, planQueries } from "./query_plan.ts";
import { type PlannedRosQuery, planRosQueries, rosPlanFingerprint } from "./ros_plan.ts";

/** One cluster's queries and the parameters its hours are recorded with. */
export interface ClusterQueries {
  readonly queries: readonly PlannedQuery[];
  /** The ROS plan, or null with ROS off. */
  readonly ros: readonly PlannedRosQuery[] | null;
  readonly params: CollectionParams;
}

/** What binds queries to a cluster. */
export interface ClusterPlannerOptions {
  readonly clusterLabel: string;
  readonly rateWindow: string;
  readonly reduce: string;
  readonly ros: boolean;
  /** The cost catalogue (default `COST_QUERIES`). */
  readonly queries?: readonly CostQuery[];
}

/** A cluster id that no real id contains, whose literal is its own text in quotes. */
const PLACEHOLDER = "thanosBridgeClusterPlaceholder7f3a";

/**
 * Returns a function that plans one cluster like `planQueries` +
 * `planRosQueries` + `collectionParams` would.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createClusterPlanner } from "./cluster_planner.ts";
 * import { COST_QUERIES } from "./catalogue.ts";
 * import { planQueries } from "./query_plan.ts";
 *
 * const plan = createClusterPlanner({ clusterLabel: "clusterID", rateWindow: "15m", reduce: "server", ros: false });
 * const c1 = plan("c1");
 * assert.deepEqual(c1.queries, planQueries(COST_QUERIES, { clusterLabel: "clusterID", clusterId: "c1", rateWindow: "15m" }));
 * assert.equal(c1.ros, null);
 * ```
 */
export function createClusterPlanner(
  options: ClusterPlannerOptions,
): (clusterId: string) => ClusterQueries {
  const catalogue = options.queries ?? COST_QUERIES;
  const bind = { clusterLabel: options.clusterLabel, rateWindow: options.rateWindow };
  const cost = planQueries(catalogue, { ...bind, clusterId: PLACEHOLDER });
  const ros = options.ros ? planRosQueries({ ...bind, clusterId: PLACEHOLDER }) : null;
  const literal = quotePromqlString(PLACEHOLDER);
  const texts = [
    ...cost.flatMap((p) => [p.expr, ...p.server.map((s) => s.expr)]),
    ...(ros ?? []).map((p) => p.expr),
  ];
  if (
    catalogue.some((q) => q.expr.includes(PLACEHOLDER)) || texts.some((t) => !t.includes(literal))
  ) {
    throw new Error("cluster planner: the placeholder cannot stand for the cluster id");
  }
  return (clusterId) => {
    // Validates the id exactly as the rewriter does (empty ids, lone surrogates).
    if (typeof clusterId !== "string" || clusterId === "") {
      return direct(options, catalogue, clusterId);
    }
    const id = quotePromqlString(clusterId);
    const swap = (text: string) => text.split(literal).join(id);
    const queries: PlannedQuery[] = cost.map((p) => ({
      query: p.query,
      expr: swap(p.expr),
      server: p.server.map((s) => ({ aggregate: s.aggregate, expr: swap(s.expr) })),
    }));
    const rosPlan = ros?.map((p) => ({ query: p.query, expr: swap(p.expr) })) ?? null;
    return { queries, ros: rosPlan, params: paramsOf(options, queries, rosPlan) };
  };
}

/** The plan made the slow way (also the reference the tests compare with). */
function direct(
  options: ClusterPlannerOptions,
  catalogue: readonly CostQuery[],
  clusterId: string,
): ClusterQueries {
  const bind = { clusterLabel: options.clusterLabel, rateWindow: options.rateWindow, clusterId };
  const queries = planQueries(catalogue, bind);
  const ros = options.ros ? planRosQueries(bind) : null;
  return { queries, ros, params: paramsOf(options, queries, ros) };
}

function paramsOf(
  options: ClusterPlannerOptions,
  queries: readonly PlannedQuery[],
  ros: readonly PlannedRosQuery[] | null,
): CollectionParams {
  const params = collectionParams(queries, options);
  return ros ? { ...params, rosHash: rosPlanFingerprint(ros) } : params;
}
