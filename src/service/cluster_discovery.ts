/**
 * Cluster discovery: one {@linkcode ClusterSource} interface with three
 * sources that can be combined (BRIDGE.md §4) — a static list
 * ({@linkcode staticSource}), the cluster label's values in Thanos
 * (`thanos_discovery.ts`) and ACM `ManagedCluster` objects
 * (`acm_discovery.ts`) — and {@linkcode discoverClusters}, which runs them
 * together, merges their answers by cluster id and applies one include/exclude
 * filter to all of them.
 *
 * A source that fails is reported, never fatal, unless every configured source
 * failed. This module does no I/O of its own.
 *
 * @module
 */

import {
  BridgeError,
  ConfigError,
  type ErrorCode,
  escapeControl,
  isClusterId,
  showValue,
  toBridgeError,
} from "../model.ts";

/** The discovery sources (the `discovery` setting's values). */
export type DiscoveryKind = "static" | "thanos" | "acm";

/** A cluster as one source found it. */
export interface DiscoveredCluster {
  /** The cluster id (the cluster label's value, the `id.k8s.io` claim, or as listed). */
  readonly clusterId: string;
  /** A human name (`cluster` label, `ManagedCluster` name, or as listed). */
  readonly name?: string;
  /** The koku org id, when the source knows one. */
  readonly orgId?: string;
  /** The source that found it (after a merge: the first configured source that did). */
  readonly source: DiscoveryKind;
}

/** A cluster after {@linkcode discoverClusters} merged the sources. */
export interface MergedCluster extends DiscoveredCluster {
  /** Every source that found it, in the configured order. */
  readonly sources: readonly DiscoveryKind[];
}

/** Something a source saw but could not use as a cluster, and why. */
export interface SkippedCluster {
  /** What the source calls it (a `ManagedCluster` name, a label value …), control characters escaped. */
  readonly name: string;
  /** Why it was skipped, e.g. `has no id.k8s.io cluster claim`. */
  readonly reason: string;
  /** The source that saw it (set by {@linkcode discoverClusters}). */
  readonly source?: DiscoveryKind;
}

/** What one source's {@linkcode ClusterSource.discover} returns. */
export interface SourceResult {
  readonly clusters: readonly DiscoveredCluster[];
  readonly skipped: readonly SkippedCluster[];
  /** Problems that did not stop the source, e.g. "cluster names unavailable: …". */
  readonly warnings?: readonly string[];
}

/**
 * One discovery source. `discover` may throw (preferably a
 * {@linkcode BridgeError}); {@linkcode discoverClusters} reports that as the
 * source's error. It must honour `signal`.
 */
export interface ClusterSource {
  readonly kind: DiscoveryKind;
  discover(signal?: AbortSignal): Promise<SourceResult>;
}

/** How one source did, in a {@linkcode DiscoveryResult}. */
export interface SourceReport {
  readonly kind: DiscoveryKind;
  /** Valid clusters it found (before the filter; 0 when it failed). */
  readonly found: number;
  /** Why it failed (control characters escaped); absent when it worked. */
  readonly error?: string;
  /** The failure's stable code; absent when it worked. */
  readonly code?: ErrorCode;
  /** Its warnings, if any. */
  readonly warnings?: readonly string[];
}

/** A cluster left out by the include/exclude filter, and why. */
export interface ExcludedCluster {
  readonly clusterId: string;
  readonly name?: string;
  /** E.g. `matches exclude pattern "test-*"` or `matches no include pattern`. */
  readonly reason: string;
}

/** What {@linkcode discoverClusters} returns. */
export interface DiscoveryResult {
  /** The clusters to work on: merged, valid, filtered; in the order first found. */
  readonly clusters: readonly MergedCluster[];
  /** One report per source, in the configured order. */
  readonly sources: readonly SourceReport[];
  /** What sources saw but could not use (invalid ids, no id claim …). */
  readonly skipped: readonly SkippedCluster[];
  /** What the filter left out. */
  readonly excluded: readonly ExcludedCluster[];
}

/** The include/exclude filter of discovered clusters; see {@linkcode parseGlobFilter}. */
export interface ClusterFilter {
  /** The include patterns as given (empty: every cluster). */
  readonly include: readonly string[];
  /** The exclude patterns as given. */
  readonly exclude: readonly string[];
  /** `null` when the cluster is kept, else why it is left out. */
  check(cluster: { readonly clusterId: string; readonly name?: string | undefined }): string | null;
}

/** A glob's regular expression: `*` any run of characters, `?` one character, the rest literal. */
function globRegExp(pattern: string): RegExp {
  let source = "";
  for (const ch of pattern) {
    if (ch === "*") source += "[^]*";
    else if (ch === "?") source += "[^]";
    else source += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`, "u");
}

/**
 * Builds the include/exclude filter of discovery. Patterns are globs (`*` any
 * run of characters, `?` exactly one, everything else literal, case-sensitive)
 * matched against a cluster's id and against its name: a cluster is kept when
 * `include` is empty or one include pattern matches its id or name, and no
 * exclude pattern matches either (exclude wins). Empty patterns are ignored.
 *
 * @param include Patterns of clusters to keep (empty: all).
 * @param exclude Patterns of clusters to leave out.
 * @throws {ConfigError} (field `include` or `exclude`) for a pattern longer
 *   than 256 characters or with control characters.
 *
 * @example
 * ```ts
 * import { parseGlobFilter } from "./cluster_discovery.ts";
 * const filter = parseGlobFilter(["prod-*"], ["*-canary"]);
 * filter.check({ clusterId: "16b9a60d", name: "prod-eu" }); // null: kept
 * filter.check({ clusterId: "5d3c", name: "prod-canary" }); // 'matches exclude pattern "*-canary"'
 * filter.check({ clusterId: "77ab", name: "dev-1" }); // "matches no include pattern"
 * ```
 */
export function parseGlobFilter(
  include: readonly string[],
  exclude: readonly string[],
): ClusterFilter {
  const compile = (field: "include" | "exclude", patterns: readonly string[]) =>
    patterns.map((p) => p.trim()).filter((p) => p !== "").map((p) => {
      // deno-lint-ignore no-control-regex
      if (p.length > 256 || /[\x00-\x1f\x7f]/.test(p)) {
        throw new ConfigError(
          field,
          p,
          "must be a glob pattern of at most 256 printable characters",
        );
      }
      return { pattern: p, re: globRegExp(p) };
    });
  const inc = compile("include", include);
  const exc = compile("exclude", exclude);
  const hits = (re: RegExp, c: { clusterId: string; name?: string | undefined }) =>
    re.test(c.clusterId) || (c.name !== undefined && re.test(c.name));
  return {
    include: inc.map((p) => p.pattern),
    exclude: exc.map((p) => p.pattern),
    check(cluster) {
      const out = exc.find((p) => hits(p.re, cluster));
      if (out) return `matches exclude pattern ${showValue(out.pattern)}`;
      if (inc.length > 0 && !inc.some((p) => hits(p.re, cluster))) {
        return "matches no include pattern";
      }
      return null;
    },
  };
}

/** One entry of the static list: an id, or an id with a name and an org id. */
export type StaticClusterInput = string | {
  readonly clusterId: string;
  readonly name?: string | undefined;
  readonly orgId?: string | undefined;
};

/**
 * The `static` source: the clusters listed in the settings (the config file's
 * `{cluster_id, name?, org_id?}` entries, as `config.ts` resolves them, or bare
 * ids). It never fails; invalid ids are skipped by {@linkcode discoverClusters}.
 *
 * @example
 * ```ts
 * import { staticSource } from "./cluster_discovery.ts";
 * const source = staticSource(["a1", { clusterId: "b2", name: "prod", orgId: "1234567" }]);
 * (await source.discover()).clusters.length; // 2
 * ```
 */
export function staticSource(entries: readonly StaticClusterInput[]): ClusterSource {
  const clusters: DiscoveredCluster[] = entries.map((e) =>
    typeof e === "string" ? { clusterId: e.trim(), source: "static" } : {
      clusterId: e.clusterId.trim(),
      ...(e.name !== undefined ? { name: e.name } : {}),
      ...(e.orgId !== undefined ? { orgId: e.orgId } : {}),
      source: "static",
    }
  );
  return {
    kind: "static",
    discover(signal?: AbortSignal): Promise<SourceResult> {
      if (signal?.aborted) return Promise.reject(signal.reason);
      return Promise.resolve({ clusters, skipped: [] });
    },
  };
}

/** How a name or an org id is shown in a skip reason or a `name` field. */
function shown(text: string, max = 253): string {
  return escapeControl(text.length > max ? text.slice(0, max) + "…" : text, false);
}

/** Whether a name is kept: 1–256 characters, no control characters. */
function usableName(name: string): boolean {
  // deno-lint-ignore no-control-regex
  return name !== "" && name.length <= 256 && !/[\x00-\x1f\x7f-\x9f]/.test(name);
}

/** Whether an org id is usable: 1–64 printable characters (as `config.ts` checks static ones). */
function usableOrgId(orgId: string): boolean {
  // deno-lint-ignore no-control-regex
  return orgId !== "" && orgId.length <= 64 && !/[\x00-\x1f\x7f-\x9f\s]/.test(orgId);
}

/**
 * Runs every source at once and merges what they found.
 *
 * - A source that throws is reported in `sources[i].error` (with its code) and
 *   the others still count; only when every source failed does the call throw
 *   a `discovery_failed` {@linkcode BridgeError} naming each failure. An abort
 *   of `signal` throws a `cancelled` error.
 * - Clusters are merged by id, in the configured order of `sources`: the
 *   first source that has a name (or an org id) for a cluster wins, later ones
 *   only fill gaps. `source` is the first source that found it, `sources` all.
 * - An id that is not a valid cluster id, or an org id that is not 1–64
 *   printable characters, makes the entry skipped (with a reason); a name that
 *   is empty, longer than 256 or has control characters is dropped with a
 *   warning in the source's report.
 * - The filter applies to the merged clusters; what it leaves out is listed in
 *   `excluded`. An empty list of clusters is a valid answer.
 *
 * @param sources The configured sources, in their merge order.
 * @param filter From {@linkcode parseGlobFilter}.
 * @param signal Aborts every source.
 * @throws {BridgeError} `config` without sources, `discovery_failed` when
 *   every source failed, `cancelled` on abort.
 *
 * @example
 * ```ts
 * import { discoverClusters, parseGlobFilter, staticSource } from "./cluster_discovery.ts";
 * const result = await discoverClusters(
 *   [staticSource([{ clusterId: "a1", name: "prod-a" }, "b2", "not valid!"])],
 *   parseGlobFilter([], ["b*"]),
 * );
 * result.clusters.map((c) => c.clusterId); // ["a1"]
 * result.excluded[0]?.clusterId; // "b2"
 * result.skipped[0]?.reason; // "is not a valid cluster id …"
 * ```
 */
export async function discoverClusters(
  sources: readonly ClusterSource[],
  filter: ClusterFilter,
  signal?: AbortSignal,
): Promise<DiscoveryResult> {
  if (sources.length === 0) {
    throw new BridgeError("config", "cluster discovery has no source (set discovery)");
  }
  signal?.throwIfAborted();
  const settled = await Promise.allSettled(
    sources.map(async (s) => await s.discover(signal)),
  );
  if (signal?.aborted) {
    const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
    throw new BridgeError(
      "cancelled",
      escapeControl(`cluster discovery cancelled: ${reason}`, false),
      {
        cause: signal.reason,
      },
    );
  }

  const merged = new Map<string, {
    clusterId: string;
    name?: string;
    orgId?: string;
    source: DiscoveryKind;
    sources: DiscoveryKind[];
  }>();
  const skipped: SkippedCluster[] = [];
  const reports: SourceReport[] = [];
  settled.forEach((outcome, i) => {
    const kind = sources[i]!.kind;
    if (outcome.status === "rejected") {
      const e = toBridgeError(outcome.reason);
      reports.push({ kind, found: 0, error: escapeControl(e.message, false), code: e.code });
      return;
    }
    const warnings = [...(outcome.value.warnings ?? [])].map((w) => escapeControl(w, false));
    for (const s of outcome.value.skipped) {
      skipped.push({ name: shown(s.name), reason: escapeControl(s.reason, false), source: kind });
    }
    const ids = new Set<string>();
    for (const c of outcome.value.clusters) {
      if (!isClusterId(c.clusterId)) {
        skipped.push({
          name: shown(String(c.clusterId)),
          reason: "is not a valid cluster id (1-253 letters, digits, '.', '_', '-', " +
            "starting with a letter or digit)",
          source: kind,
        });
        continue;
      }
      if (c.orgId !== undefined && !usableOrgId(c.orgId)) {
        skipped.push({
          name: shown(c.name ?? c.clusterId),
          reason: `cluster ${c.clusterId} has an org id ${
            showValue(c.orgId)
          } that is not 1-64 printable characters`,
          source: kind,
        });
        continue;
      }
      let name = c.name?.trim();
      if (name !== undefined && !usableName(name)) {
        warnings.push(
          `cluster ${c.clusterId}: name ${
            showValue(name)
          } dropped (empty, too long or control characters)`,
        );
        name = undefined;
      }
      ids.add(c.clusterId);
      const seen = merged.get(c.clusterId);
      if (seen === undefined) {
        merged.set(c.clusterId, {
          clusterId: c.clusterId,
          ...(name !== undefined ? { name } : {}),
          ...(c.orgId !== undefined ? { orgId: c.orgId } : {}),
          source: kind,
          sources: [kind],
        });
        continue;
      }
      if (seen.name === undefined && name !== undefined) seen.name = name;
      if (seen.orgId === undefined && c.orgId !== undefined) seen.orgId = c.orgId;
      if (!seen.sources.includes(kind)) seen.sources.push(kind);
    }
    reports.push({ kind, found: ids.size, ...(warnings.length > 0 ? { warnings } : {}) });
  });

  if (reports.every((r) => r.error !== undefined)) {
    const detail = reports.map((r) => `${r.kind}: ${r.error}`).join("; ");
    throw new BridgeError(
      "discovery_failed",
      `cluster discovery failed: every source failed (${detail})`,
      { cause: reports },
    );
  }

  const clusters: MergedCluster[] = [];
  const excluded: ExcludedCluster[] = [];
  for (const c of merged.values()) {
    const why = filter.check(c);
    if (why === null) clusters.push(c);
    else {
      excluded.push({
        clusterId: c.clusterId,
        ...(c.name !== undefined ? { name: c.name } : {}),
        reason: why,
      });
    }
  }
  return { clusters, sources: reports, skipped, excluded };
}
