/**
 * "Skip what cannot match, exactly" (BRIDGE fleet scale): before a batch,
 * one instant probe asks Thanos which of the selectors that decide emptiness
 * have samples for the batch's clusters and hours; a query whose answer must
 * then be empty for every cluster of the batch is not sent, and its empty
 * answer is used. The analysis is `must_match.ts`; this module sends the probe.
 *
 * The probe covers the batch's hours plus each selector's own margin (range
 * windows, subqueries, lookback) plus an hour of slack, so a server with a
 * longer lookback delta than Prometheus's default still cannot make a skipped
 * query non-empty. A selector that was not probed counts as present.
 *
 * @module
 */

import { formatHours } from "./answer_check.ts";
import type { QueryCounter, RangeQuerier, SkipProbe } from "./hour_collector.ts";
import { hourStartSeconds } from "./hour_collector.ts";
import {
  type Emptiness,
  emptinessOf,
  mustBeEmpty,
  presentIn,
  probeAtoms,
  probeQuery,
  readProbeAnswer,
} from "./must_match.ts";

/** What {@linkcode createSkipProbe} needs. */
export interface SkipProbeOptions {
  readonly client: RangeQuerier;
  /** Label carrying the cluster id, e.g. `clusterID`. */
  readonly clusterLabel: string;
  /** Counters increased by the probe's traffic (the run's). */
  readonly counter?: QueryCounter;
}

/** Extra seconds before the batch every selector is probed over (beyond its own margin). */
export const PROBE_SLACK_SECONDS = 3600;

/**
 * A {@linkcode SkipProbe} that sends one instant query per batch and hour
 * range (as a one-point `query_range`, through the same client, limits and
 * counters as every other query). Queries that can never be empty are not
 * looked at; with none left, nothing is sent.
 *
 * @example
 * ```ts ignore
 * import { createSkipProbe } from "./skip_probe.ts";
 * const skipProbe = createSkipProbe({ client, clusterLabel: "clusterID" });
 * const skip = await skipProbe({ queries, clusterIds: ["c1"], day: "2026-11-01", first: 0, last: 5, signal });
 * skip.has("nvidia-gpu-utilization"); // true on a cluster without DCGM series
 * ```
 */
export function createSkipProbe(options: SkipProbeOptions): SkipProbe {
  const { client, clusterLabel, counter } = options;
  const cache = new Map<string, Emptiness>();
  const emptiness = (expr: string) => {
    let e = cache.get(expr);
    if (e === undefined) {
      e = emptinessOf(expr);
      if (cache.size > 1000) cache.clear(); // batches differ by their cluster matcher
      cache.set(expr, e);
    }
    return e;
  };
  return async ({ queries, clusterIds, day, first, last, signal }) => {
    const candidates = queries
      .map((q) => ({ name: q.name, e: emptiness(q.expr) }))
      .filter((c) => c.e.kind !== "never");
    const atoms = probeAtoms(candidates.map((c) => c.e));
    if (atoms.length === 0) return new Set();
    const end = hourStartSeconds(day, last) + 3600;
    const range = end - hourStartSeconds(day, first) + PROBE_SLACK_SECONDS;
    const query = probeQuery(atoms, clusterLabel, range);
    const series: { metric: Record<string, string> }[] = [];
    const hours = formatHours(day, first, last);
    const who = clusterIds.length === 1
      ? clusterIds[0]!
      : `${clusterIds[0]} and ${clusterIds.length - 1} more`;
    await client.queryRange(
      { query, start: end, end, step: 60, id: "skip-probe", clusterId: who, hours },
      (s) => void series.push({ metric: s.metric }),
      signal,
      () => void (series.length = 0),
      counter,
    );
    const found = readProbeAnswer(series, atoms, clusterLabel);
    const present = clusterIds.map((id) => presentIn(found, id));
    return new Set(
      candidates
        .filter((c) => present.every((p) => mustBeEmpty(c.e, p)))
        .map((c) => c.name),
    );
  };
}
