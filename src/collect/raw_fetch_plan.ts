/**
 * Which raw-sample queries serve which selectors: selectors of one metric that
 * differ only in equality matchers (`=`, `!=`) are fetched once, with the
 * matchers they share, and each is cut out of that answer here.
 *
 * CMMO's cost and ROS queries read the same metric through different
 * selectors, e.g. `kube_pod_container_resource_requests{resource="cpu"}` (cost)
 * and `…{resource="cpu",unit="core",container!=""}` (ROS): the same series,
 * fetched twice without this plan.
 *
 * @module
 */

import {
  canonicalSelector,
  type SelectorMatcher,
  type SelectorNeed,
  type SelectorParts,
} from "./local_eval.ts";
import type { Labels } from "./row_map.ts";

/** Where one selector's series come from. */
export interface ServedSelector {
  /** The key of the query that fetches them. */
  readonly fetch: string;
  /** The selector's matchers that the query does not apply; applied here. */
  readonly filter: readonly SelectorMatcher[];
  /** The query's margin (at least the selector's). */
  readonly marginMs: number;
}

/** One query of a {@linkcode RawFetchPlan}. */
export interface RawFetch {
  readonly key: string;
  readonly marginMs: number;
  readonly parts?: SelectorParts;
}

/** The result of {@linkcode planRawFetches}. */
export interface RawFetchPlan {
  /**
   * One query each: a selector key, its margin, and its metric and matchers
   * when known (a remote read needs them; without them, the key is sent as
   * PromQL).
   */
  readonly fetches: readonly RawFetch[];
  /** Every need, and every hint that one of the queries serves, by key. */
  readonly served: ReadonlyMap<string, ServedSelector>;
}

/** A group of selectors served by one query. */
interface Group {
  readonly metric: string;
  readonly members: SelectorNeed[];
  /** Matchers of every member. */
  common: readonly SelectorMatcher[];
  marginMs: number;
}

const matcherText = (m: SelectorMatcher) => `${m.name}\u0000${m.op}\u0000${m.value}`;

/** Equality matchers with a value: they decide which series a selector can select at all. */
const isEquality = (m: SelectorMatcher) => m.op === "=" && m.value !== "";

/**
 * The matchers that every selector of `all` has, or null when they cannot
 * share a query: a matcher left out must be `=` or `!=` (filtered here
 * exactly), and the shared equality matchers must be all of some member's, so
 * that the query selects no value the members do not already narrow to (cpu
 * and memory variants of one metric stay apart).
 */
function merged(all: readonly SelectorParts[]): readonly SelectorMatcher[] | null {
  const first = all[0]!.matchers;
  const keep = new Set(first.map(matcherText));
  for (const p of all) {
    const own = new Set(p.matchers.map(matcherText));
    for (const t of [...keep]) if (!own.has(t)) keep.delete(t);
  }
  for (const p of all) {
    for (const m of p.matchers) {
      if (!keep.has(matcherText(m)) && m.op !== "=" && m.op !== "!=") return null;
    }
  }
  const shared = first.filter((m) => keep.has(matcherText(m)));
  const sharedEq = shared.filter(isEquality).length;
  if (!all.some((p) => p.matchers.filter(isEquality).length === sharedEq)) return null;
  return shared;
}

/**
 * Plans the raw-sample queries of a set of selectors.
 *
 * Needs without `parts` are fetched as they are. Needs with parts are grouped
 * by metric: a need joins the first group of its metric that it can share a
 * query with (see the module doc); the group's query keeps the matchers all its
 * members share, with the largest margin. A hint is served only if it can join
 * a group of the needs: it may widen that query and raise its margin, but
 * never adds a query (so selectors that are needed only later, e.g. local ROS
 * after its namespace filter passed, come with the first fetch where that is
 * free).
 *
 * @param needs The selectors to fetch.
 * @param hints Selectors to serve where they fit into a query of `needs`.
 * @returns The queries, and where each served selector's series come from.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalSelector } from "./local_eval.ts";
 * import { planRawFetches } from "./raw_fetch_plan.ts";
 *
 * const need = (metric: string, m: [string, "=" | "!=", string][], marginMs: number) => {
 *   const { key, parts } = canonicalSelector(metric, m.map(([name, op, value]) => ({ name, op, value })));
 *   return { key, marginMs, parts };
 * };
 * const cost = need("req", [["resource", "=", "cpu"], ["node", "!=", ""]], 300_000);
 * const ros = need("req", [["resource", "=", "cpu"], ["unit", "=", "core"]], 900_000);
 * const plan = planRawFetches([cost], [ros]);
 * assert.deepEqual(plan.fetches, [{ key: 'req{resource="cpu"}', marginMs: 900_000 }]);
 * assert.deepEqual(plan.served.get(ros.key)?.filter, [{ name: "unit", op: "=", value: "core" }]);
 * ```
 */
export function planRawFetches(
  needs: readonly SelectorNeed[],
  hints: readonly SelectorNeed[] = [],
): RawFetchPlan {
  const byKey = new Map<string, SelectorNeed>();
  for (const n of needs) {
    const had = byKey.get(n.key);
    byKey.set(n.key, had && had.marginMs >= n.marginMs ? had : n);
  }
  const opaque: SelectorNeed[] = [];
  const groups: Group[] = [];
  const join = (n: SelectorNeed, create: boolean): boolean => {
    const parts = n.parts;
    if (parts === undefined || parts.metric === null) return false;
    for (const g of groups) {
      if (g.metric !== parts.metric) continue;
      const shared = merged([...g.members.map((m) => m.parts!), parts]);
      if (shared === null) continue;
      g.members.push(n);
      g.common = shared;
      g.marginMs = Math.max(g.marginMs, n.marginMs);
      return true;
    }
    if (!create) return false;
    groups.push({
      metric: parts.metric,
      members: [n],
      common: parts.matchers,
      marginMs: n.marginMs,
    });
    return true;
  };
  for (
    const n of [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  ) {
    if (!join(n, true)) opaque.push(n);
  }
  const served = new Map<string, ServedSelector>();
  const hinted = new Map<string, SelectorNeed>();
  for (const h of hints) {
    const had = hinted.get(h.key);
    hinted.set(h.key, had && had.marginMs >= h.marginMs ? had : h);
  }
  for (const h of hinted.values()) {
    const need = byKey.get(h.key);
    if (need !== undefined) {
      // The same selector: serve it from its own query, with the larger margin.
      const g = groups.find((x) => x.members.includes(need));
      if (g !== undefined) g.marginMs = Math.max(g.marginMs, h.marginMs);
      else byKey.set(h.key, { ...need, marginMs: Math.max(need.marginMs, h.marginMs) });
      continue;
    }
    join(h, false);
  }
  const fetches: RawFetch[] = [];
  for (const n of opaque) {
    const m = byKey.get(n.key)!;
    fetches.push(
      m.parts === undefined
        ? { key: m.key, marginMs: m.marginMs }
        : { key: m.key, marginMs: m.marginMs, parts: m.parts },
    );
    served.set(m.key, { fetch: m.key, filter: [], marginMs: m.marginMs });
  }
  for (const g of groups) {
    const { key, parts } = g.members.length === 1
      ? { key: g.members[0]!.key, parts: g.members[0]!.parts! }
      : canonicalSelector(g.metric, g.common);
    fetches.push({ key, marginMs: g.marginMs, parts });
    const common = new Set(g.common.map(matcherText));
    for (const m of g.members) {
      const filter = m.parts!.matchers.filter((x) => !common.has(matcherText(x)));
      served.set(m.key, { fetch: key, filter, marginMs: g.marginMs });
    }
  }
  return { fetches, served };
}

/**
 * Whether a series' labels pass `=`/`!=` matchers (a missing label is the
 * empty string, as in Prometheus).
 *
 * @param metric The series' labels.
 * @param filter `=` and `!=` matchers.
 * @returns True when every matcher passes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { passesFilter } from "./raw_fetch_plan.ts";
 *
 * assert.equal(passesFilter({ unit: "core" }, [{ name: "unit", op: "=", value: "core" }]), true);
 * assert.equal(passesFilter({}, [{ name: "container", op: "!=", value: "" }]), false);
 * ```
 */
export function passesFilter(metric: Labels, filter: readonly SelectorMatcher[]): boolean {
  for (const m of filter) {
    const v = metric[m.name] ?? "";
    if (m.op === "=") {
      if (v !== m.value) return false;
    } else if (m.op === "!=") {
      if (v === m.value) return false;
    } else {
      throw new RangeError(`passesFilter: only = and != matchers, got ${m.name}${m.op}`);
    }
  }
  return true;
}
