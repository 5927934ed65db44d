/**
 * The `thanos` discovery source: the clusters that sent a given metric to
 * Thanos recently, i.e. the distinct values of the cluster label
 * (`/api/v1/label/<label>/values` filtered by `match[]`), with their names
 * from the `cluster` label when Thanos can give them.
 *
 * @module
 */

import { BridgeError, escapeControl, isLabelName } from "../model.ts";
import type { RangeQuery, Series, ThanosClient } from "../thanos/thanos_client.ts";
import type { ClusterSource, DiscoveredCluster, SourceResult } from "./cluster_discovery.ts";

/** What the `thanos` source needs of a {@linkcode ThanosClient}. */
export type ThanosDiscoveryClient = Pick<ThanosClient, "labelValues" | "queryRange">;

/** Options of {@linkcode thanosSource}. */
export interface ThanosSourceOptions {
  /** The Thanos client (its retries, limits, token and TLS apply). */
  readonly client: ThanosDiscoveryClient;
  /** The label that carries the cluster id, e.g. `clusterID`. */
  readonly clusterLabel: string;
  /** A series selector of a metric every cluster sends, e.g. `kube_node_info`. */
  readonly match: string;
  /** How far back a cluster must have sent it, in ms (at least one second). */
  readonly windowMs: number;
  /** The clock, in ms (default `Date.now`); read once per `discover`. */
  readonly now?: () => number;
  /** The label that carries a cluster's name (default `cluster`, as ACM's metrics-collector sets it). */
  readonly nameLabel?: string;
}

/** The `id` of the names query, in messages and recordings. */
export const CLUSTER_NAMES_QUERY_ID = "cluster-discovery-names";

/**
 * The PromQL of the names query: one series per (id, name) pair that sent
 * `match` in the `windowSeconds` before the evaluation time.
 *
 * @example
 * ```ts
 * import { clusterNamesQuery } from "./thanos_discovery.ts";
 * clusterNamesQuery("clusterID", "cluster", "kube_node_info", 86_400);
 * // "group by (clusterID, cluster) (last_over_time(kube_node_info[86400s]))"
 * ```
 */
export function clusterNamesQuery(
  clusterLabel: string,
  nameLabel: string,
  match: string,
  windowSeconds: number,
): string {
  return `group by (${clusterLabel}, ${nameLabel}) (last_over_time(${match}[${windowSeconds}s]))`;
}

/**
 * The `thanos` discovery source. Each `discover` call asks Thanos, for the
 * window `[now − windowMs, now]`:
 *
 * 1. the cluster ids: `GET /api/v1/label/<clusterLabel>/values?match[]=<match>`
 *    ({@linkcode ThanosClient.labelValues}). Its failure is the source's failure.
 * 2. their names, in ONE more call: a `query_range` evaluated at the single
 *    point `now` of {@linkcode clusterNamesQuery}
 *    (`group by (<clusterLabel>, <nameLabel>) (last_over_time(<match>[<window>]))`).
 *    Why this and not the alternatives: one `labelValues("cluster", [match{id="x"}])`
 *    per id is one call per cluster, too many for thousands of clusters; and
 *    `/api/v1/series` returns every matching series with all its labels (one
 *    per node and per restart of a `kube_node_info`-like metric over the whole
 *    window), a body that grows with nodes × churn rather than with clusters,
 *    while the `group by` is reduced inside Thanos to exactly one tiny series
 *    per (id, name) pair and goes through the client's usual retries and limits.
 *    Names are optional: a failure is a warning ("cluster names unavailable …")
 *    and the ids still count. A cluster with several names in the window gets
 *    the first in sort order, with a warning. Not asked when the name label is
 *    the cluster label itself.
 *
 * Ids are returned as Thanos has them; {@linkcode discoverClusters} skips
 * invalid ones. Clusters from this source have no org id.
 *
 * @throws {BridgeError} `config` for a bad label name, selector or window
 *   (at construction).
 *
 * @example
 * ```ts ignore
 * import { ThanosClient } from "../thanos/thanos_client.ts";
 * import { thanosSource } from "./thanos_discovery.ts";
 *
 * const client = new ThanosClient({ url: "http://127.0.0.1:9090" });
 * const source = thanosSource({
 *   client,
 *   clusterLabel: "clusterID",
 *   match: "kube_node_info",
 *   windowMs: 86_400_000,
 * });
 * const { clusters, warnings } = await source.discover();
 * // clusters: [{ clusterId: "16b9a60d-…", name: "prod-eu", source: "thanos" }, …]
 * ```
 */
export function thanosSource(options: ThanosSourceOptions): ClusterSource {
  const { client, clusterLabel, match, windowMs } = options;
  const nameLabel = options.nameLabel ?? "cluster";
  const now = options.now ?? Date.now;
  for (const [field, label] of [["clusterLabel", clusterLabel], ["nameLabel", nameLabel]]) {
    if (!isLabelName(label)) {
      throw new BridgeError("config", `${field} ${JSON.stringify(label)} is not a label name`);
    }
  }
  if (typeof match !== "string" || match.trim() === "" || /[\r\n]/.test(match)) {
    throw new BridgeError("config", `discovery match ${JSON.stringify(match)} is not a selector`);
  }
  if (!Number.isFinite(windowMs) || windowMs < 1000) {
    throw new BridgeError("config", `discovery window must be at least 1 s, got ${windowMs} ms`);
  }
  const windowSeconds = Math.ceil(windowMs / 1000);

  return {
    kind: "thanos",
    async discover(signal?: AbortSignal): Promise<SourceResult> {
      const end = Math.floor(now() / 1000);
      const start = end - windowSeconds;
      const ids = await client.labelValues(clusterLabel, [match], start, end, signal);
      const warnings: string[] = [];
      let names = new Map<string, string>();
      if (ids.length > 0 && nameLabel !== clusterLabel) {
        try {
          names = await clusterNames(end, signal, warnings);
        } catch (error) {
          if (signal?.aborted) throw error;
          const message = error instanceof Error ? error.message : String(error);
          warnings.push(`cluster names unavailable (ids still count): ${message}`);
        }
      }
      const clusters: DiscoveredCluster[] = ids.map((id) => {
        const name = names.get(id);
        return { clusterId: id, ...(name !== undefined ? { name } : {}), source: "thanos" };
      });
      return { clusters, skipped: [], ...(warnings.length > 0 ? { warnings } : {}) };
    },
  };

  async function clusterNames(
    at: number,
    signal: AbortSignal | undefined,
    warnings: string[],
  ): Promise<Map<string, string>> {
    const q: RangeQuery = {
      query: clusterNamesQuery(clusterLabel, nameLabel, match, windowSeconds),
      start: at,
      end: at,
      step: 60,
      id: CLUSTER_NAMES_QUERY_ID,
    };
    let found = new Map<string, Set<string>>();
    await client.queryRange(
      q,
      (s: Series) => {
        const id = s.metric[clusterLabel];
        const name = s.metric[nameLabel];
        if (id === undefined || name === undefined || name === "") return;
        let set = found.get(id);
        if (set === undefined) found.set(id, set = new Set());
        set.add(name);
      },
      signal,
      () => {
        found = new Map(); // a retry restarts the answer
      },
    );
    const names = new Map<string, string>();
    const several: string[] = [];
    for (const [id, set] of found) {
      const sorted = [...set].sort();
      names.set(id, sorted[0]!);
      if (sorted.length > 1) several.push(`${id} (${sorted.join(", ")})`);
    }
    if (several.length > 0) {
      const shown = several.slice(0, 5).join("; ") +
        (several.length > 5 ? `; and ${several.length - 5} more` : "");
      warnings.push(
        escapeControl(`clusters with several names in the window, first one used: ${shown}`, false),
      );
    }
    return names;
  }
}
