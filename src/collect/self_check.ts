/**
 * Local mode's self-check, the pure parts: which (query, hour) a batch checks
 * next, how its local answer is compared with the server's, and which
 * clusters the server is not the reference for (a counter-adjusting server,
 * i.e. Thanos, on a cluster whose counters reset in the window).
 *
 * @module
 */

import { formatFloat } from "../package/go_float.ts";
import type { Reduction } from "./catalogue_groups.ts";
import type { RawSeries } from "./local_eval.ts";
import type { Labels } from "./row_map.ts";
import type { Reduced } from "./reduce.ts";
import { compareUtf8 } from "./utf8_compare.ts";

/** One series of one query in one hour, as the collector keeps it. */
export interface CheckedSeries {
  readonly metric: Labels;
  readonly reduced: Reduced | null;
}

/** The hour range a self-check is picked for: its clusters and its UTC day (`YYYY-MM-DD`). */
export interface CheckedRange {
  readonly clusters: readonly string[];
  readonly day: string;
}

/** What picks a range's self-check (see {@linkcode SelfCheckRotation}). */
export interface SelfCheckPicker {
  /** The (query, hour) to check among `names` and the `hours` of `range`; both non-empty. */
  next(
    names: readonly string[],
    hours: readonly number[],
    range: CheckedRange,
  ): { query: string; hour: number };
}

/** FNV-1a (32 bits) of a string's UTF-16 code units. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Picks the self-check of each hour range: check `k` checks query `k mod q`
 * (of the names it is given) at hour `k mod h` of the range, where `k` is the
 * epoch hour (hours since 1970-01-01T00:00Z) of the range's first hour, plus
 * a hash of its sorted cluster ids, plus the number of checks picked for the
 * same range before (plus `start`). Successive ranges (scheduled runs, the
 * batches of a day) and different clusters so check different queries and
 * hours, and the pick depends only on the range: never on which other ranges
 * a run has, or in which order, so a recorded run replays its self-checks for
 * any subset of its clusters.
 *
 * @example
 * ```ts
 * import { SelfCheckRotation } from "./self_check.ts";
 * const rotation = new SelfCheckRotation();
 * const range = { clusters: ["c1"], day: "2026-11-01" };
 * const a = rotation.next(["a", "b"], [0, 1, 2], range);
 * const b = rotation.next(["a", "b"], [0, 1, 2], range); // the other query, the next hour
 * ```
 */
export class SelfCheckRotation implements SelfCheckPicker {
  readonly #start: number;
  readonly #picked = new Map<string, number>();

  /** @param start Added to every `k` (0: the pick depends on the range alone). */
  constructor(start = 0) {
    if (!Number.isSafeInteger(start) || start < 0) {
      throw new RangeError(`Invalid rotation start ${start}: expected a non-negative integer`);
    }
    this.#start = start;
  }

  /** The next (query, hour) among `names` and the `hours` of `range`; both must be non-empty. */
  next(
    names: readonly string[],
    hours: readonly number[],
    range: CheckedRange,
  ): { query: string; hour: number } {
    if (names.length === 0 || hours.length === 0) {
      throw new RangeError("SelfCheckRotation.next: needs at least one query and one hour");
    }
    const dayMs = Date.parse(`${range.day}T00:00:00Z`);
    if (!Number.isFinite(dayMs)) {
      throw new RangeError(`Invalid day ${JSON.stringify(range.day)}: expected YYYY-MM-DD`);
    }
    const clusters = [...range.clusters].sort(compareUtf8).join(",");
    const key = `${range.day} ${hours[0]} ${clusters}`;
    const before = this.#picked.get(key) ?? 0;
    this.#picked.set(key, before + 1);
    const k = this.#start + dayMs / 3_600_000 + hours[0]! + fnv1a(clusters) + before;
    return { query: names[k % names.length]!, hour: hours[k % hours.length]! };
  }
}

/**
 * A label set's identity, independent of key order and of `__name__`: the
 * server's `*_over_time` wrapper drops the metric name that a plain
 * selector's own answer keeps (rows never use it).
 */
function keyOf(metric: Labels): string {
  return JSON.stringify(
    Object.keys(metric).filter((name) => name !== "__name__").sort(compareUtf8).map((
      name,
    ) => [name, metric[name]]),
  );
}

/** A reduced value as the comparison sees it: `%.6f`, and `n` where the server reports it. */
function shown(r: Reduced | null, reduction: Reduction | null): string {
  if (r === null || reduction === null) return "present";
  // In server mode a `sum` has no count (only `sum_over_time` is asked for).
  return reduction === "sum" ? formatFloat(r.value) : `${formatFloat(r.value)} (n=${r.n})`;
}

/**
 * Compares one query's series of one hour, local against server: the same
 * label sets, each with the same value after Go's `%.6f` (and the same number
 * of points where the server reports it; label-only queries compare presence).
 * Returns null when they agree, else the first difference in words.
 *
 * @example
 * ```ts
 * import { compareHourSeries } from "./self_check.ts";
 * const a = [{ metric: { pod: "p" }, reduced: { value: 1.0000001, n: 60 } }];
 * const b = [{ metric: { pod: "p" }, reduced: { value: 1.0000004, n: 60 } }];
 * compareHourSeries(a, b, "sum"); // null: both print 1.000000
 * ```
 */
export function compareHourSeries(
  local: readonly CheckedSeries[],
  server: readonly CheckedSeries[],
  reduction: Reduction | null,
): string | null {
  const index = (list: readonly CheckedSeries[]) => {
    const map = new Map<string, CheckedSeries>();
    for (const s of list) map.set(keyOf(s.metric), s); // rows keep the last: so does this
    return map;
  };
  const mine = index(local);
  const theirs = index(server);
  for (const [key, s] of theirs) {
    const m = mine.get(key);
    if (!m) return `series ${key} is in the server's answer only`;
    const a = shown(m.reduced, reduction);
    const b = shown(s.reduced, reduction);
    if (a !== b) return `series ${key}: local ${a}, server ${b}`;
  }
  for (const key of mine.keys()) {
    if (!theirs.has(key)) return `series ${key} is in the local answer only`;
  }
  return null;
}

/** Raw samples of one selector, and the window a checked hour reads of them. */
export interface CounterWindow {
  readonly series: readonly RawSeries[];
  readonly fromMs: number;
  readonly toMs: number;
}

/**
 * The clusters with a counter reset (a sample lower than the one before) in
 * any of the windows: for those, a counter-adjusting server's `rate()` is not
 * the reference, so the self-check does not compare them.
 *
 * @example
 * ```ts
 * import { counterResetClusters } from "./self_check.ts";
 * const series = [{ metric: { c: "a" }, t: new Float64Array([0, 60e3]), v: new Float64Array([5, 1]) }];
 * counterResetClusters([{ series, fromMs: 0, toMs: 60e3 }], (m) => m.c!); // Set { "a" }
 * ```
 */
export function counterResetClusters(
  windows: readonly CounterWindow[],
  clusterOf: (metric: Labels) => string,
): Set<string> {
  const out = new Set<string>();
  for (const { series, fromMs, toMs } of windows) {
    for (const s of series) {
      let prev = NaN;
      for (let i = 0; i < s.t.length; i++) {
        const t = s.t[i]!;
        if (t < fromMs) continue;
        if (t > toMs) break;
        const v = s.v[i]!;
        if (v < prev) {
          out.add(clusterOf(s.metric));
          break;
        }
        prev = v;
      }
    }
  }
  return out;
}
