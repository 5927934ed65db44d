/**
 * A tiny, independent re-implementation of the parts of Prometheus 2.42's
 * PromQL evaluation that CMMO's cost queries use, evaluated directly on the
 * synthetic model: instant selectors with the 5-minute lookback, `rate` (the
 * exact `extrapolatedRate` of v2.42), `sum_over_time`, `sum`/`max by`,
 * `* on(…) group_left(…)`, `or`, `label_replace`, `+ scalar` and
 * `clamp_max`. It is the evaluation half of the ground-truth oracle.
 *
 * @module
 */

import {
  type ClusterModel,
  type Hub,
  sampleTimeMs,
  sampleValue,
  type SeriesSpec,
} from "./model.ts";

/** A label set (no empty values; `__name__` only on raw selector results). */
export type Labels = Readonly<Record<string, string>>;

/** One element of an instant vector. */
export interface Sample {
  readonly labels: Labels;
  readonly value: number;
}

/** An instant vector. */
export type Vector = readonly Sample[];

/** A label matcher (`=` or `!=`; an absent label counts as `""`). */
export interface Matcher {
  readonly name: string;
  readonly op: "=" | "!=";
  readonly value: string;
}

/** Prometheus's default lookback delta. */
export const LOOKBACK_MS = 5 * 60_000;

/**
 * `name="value"` matcher.
 *
 * @example
 * ```ts
 * import { eq } from "./promql_eval.ts";
 * eq("resource", "cpu"); // { name: "resource", op: "=", value: "cpu" }
 * ```
 */
export function eq(name: string, value: string): Matcher {
  return { name, op: "=", value };
}

/**
 * `name!="value"` matcher.
 *
 * @example
 * ```ts
 * import { ne } from "./promql_eval.ts";
 * ne("pod", ""); // { name: "pod", op: "!=", value: "" }
 * ```
 */
export function ne(name: string, value: string): Matcher {
  return { name, op: "!=", value };
}

/**
 * Compares strings by UTF-8 byte order (Go's `<`), i.e. by code points.
 *
 * @example
 * ```ts
 * import { compareBytes } from "./promql_eval.ts";
 * compareBytes("\u{1F680}", "\uFFFD") > 0; // true, although UTF-16 says otherwise
 * ```
 */
export function compareBytes(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs === ys) return x < y ? -1 : 1;
    return xs ? 1 : -1;
  }
  return a.length < b.length ? -1 : 1;
}

/** Label names of a set in Prometheus order (byte order). */
function sortedNames(labels: Labels): string[] {
  return Object.keys(labels).sort(compareBytes);
}

/**
 * Prometheus's `labels.Compare`: pairwise by sorted name, then value, then length.
 * This is the order of series in a `query_range` answer.
 *
 * @example
 * ```ts
 * import { compareLabels } from "./promql_eval.ts";
 * compareLabels({ a: "1" }, { a: "2" }) < 0; // true
 * compareLabels({ a: "1", b: "x" }, { a: "1" }) > 0; // true
 * ```
 */
export function compareLabels(a: Labels, b: Labels): number {
  const an = sortedNames(a);
  const bn = sortedNames(b);
  const n = Math.min(an.length, bn.length);
  for (let i = 0; i < n; i++) {
    const x = an[i] ?? "";
    const y = bn[i] ?? "";
    if (x !== y) return compareBytes(x, y);
    const xv = a[x] ?? "";
    const yv = b[y] ?? "";
    if (xv !== yv) return compareBytes(xv, yv);
  }
  return an.length - bn.length;
}

const keyCache = new WeakMap<Labels, string>();

/**
 * A canonical string for a label set, usable as a map key. (Label names are
 * ASCII; the separators are control characters that no label value of the
 * synthetic model contains.)
 *
 * @example
 * ```ts
 * import { labelsKey } from "./promql_eval.ts";
 * labelsKey({ b: "2", a: "1" }) === labelsKey({ a: "1", b: "2" }); // true
 * ```
 */
export function labelsKey(labels: Labels): string {
  let key = keyCache.get(labels);
  if (key === undefined) {
    const names = Object.keys(labels).sort();
    key = "";
    for (const n of names) key += n + "\u0001" + labels[n] + "\u0002";
    keyCache.set(labels, key);
  }
  return key;
}

// Derived label sets are interned by their inputs, so that the same series gets
// the same label object at every step and its labelsKey() is computed only once.
const withoutNameCache = new WeakMap<Labels, Labels>();
const derivedCache = new WeakMap<Labels, Map<string, Labels>>();
const groupCache = new Map<string, Labels>();

function withoutName(labels: Labels): Labels {
  if (labels.__name__ === undefined) return labels;
  let out = withoutNameCache.get(labels);
  if (!out) {
    const copy: Record<string, string> = { ...labels };
    delete copy.__name__;
    out = copy;
    withoutNameCache.set(labels, out);
  }
  return out;
}

/** Returns the interned result of `build()` for (`base`, `variant`). */
function derived(base: Labels, variant: string, build: () => Labels): Labels {
  let perBase = derivedCache.get(base);
  if (!perBase) {
    perBase = new Map();
    derivedCache.set(base, perBase);
  }
  let out = perBase.get(variant);
  if (!out) {
    out = build();
    perBase.set(variant, out);
  }
  return out;
}

function assertUniqueLabelSets(v: Vector, what: string): void {
  const seen = new Set<string>();
  for (const s of v) {
    const key = labelsKey(s.labels);
    if (seen.has(key)) {
      throw new Error(`${what}: vector cannot contain metrics with the same labelset`, {
        cause: { labels: s.labels },
      });
    }
    seen.add(key);
  }
}

interface IndexedSeries {
  readonly spec: SeriesSpec;
  readonly labels: Labels;
}

/**
 * The series of one cluster, grouped by metric name, with the evaluation of
 * selectors at a given evaluation time. The implicit cluster matcher of the
 * bridge is the restriction to this one cluster.
 *
 * @example
 * ```ts
 * import { buildHub, defaultTestHub } from "./model.ts";
 * import { eq, SeriesIndex } from "./promql_eval.ts";
 * const hub = buildHub(defaultTestHub());
 * const ix = new SeriesIndex(hub, hub.clusters[0]!);
 * ix.instant("kube_node_info", [], hub.startMs + 3_600_000).length > 0; // true
 * ```
 */
export class SeriesIndex {
  readonly #byMetric = new Map<string, IndexedSeries[]>();
  readonly #selections = new Map<string, IndexedSeries[]>();
  readonly #instants = new Map<string, Sample[]>();
  readonly #firstMs: number;
  readonly #intervalMs: number;

  /** Indexes the series of `cluster`. */
  constructor(readonly hub: Hub, readonly cluster: ClusterModel) {
    for (const spec of cluster.series) {
      let list = this.#byMetric.get(spec.metric);
      if (!list) {
        list = [];
        this.#byMetric.set(spec.metric, list);
      }
      list.push({ spec, labels: { ...spec.labels, __name__: spec.metric } });
    }
    this.#firstMs = sampleTimeMs(hub, cluster, 0);
    this.#intervalMs = hub.intervalSeconds * 1000;
  }

  #select(metric: string, matchers: readonly Matcher[]): IndexedSeries[] {
    const key = JSON.stringify([metric, matchers]);
    let found = this.#selections.get(key);
    if (!found) {
      found = (this.#byMetric.get(metric) ?? []).filter((s) =>
        matchers.every((m) => ((s.labels[m.name] ?? "") === m.value) === (m.op === "="))
      );
      this.#selections.set(key, found);
    }
    return found;
  }

  /**
   * Memoizes a derived vector by name and evaluation time (the shared
   * sub-expressions, e.g. the running-pods join side, repeat across queries).
   * Cached vectors must not be mutated.
   */
  cached(name: string, tMs: number, compute: () => Sample[]): Sample[] {
    const key = `${name}@${tMs}`;
    const memo = this.#instants.get(key);
    if (memo) return memo;
    if (this.#instants.size > 20_000) this.#instants.clear();
    const out = compute();
    this.#instants.set(key, out);
    return out;
  }

  /**
   * The series of `metric` that match `matchers`, each with its label set
   * (including `__name__`), in the model's order (not sorted).
   */
  selectSeries(
    metric: string,
    matchers: readonly Matcher[],
  ): readonly { readonly spec: SeriesSpec; readonly labels: Labels }[] {
    return this.#select(metric, matchers);
  }

  /** Samples of `series` with `fromMs ≤ t ≤ toMs`, in time order. */
  points(series: SeriesSpec, fromMs: number, toMs: number): { t: number; v: number }[] {
    const lo = Math.max(0, Math.ceil((fromMs - this.#firstMs) / this.#intervalMs));
    const hi = Math.min(
      this.cluster.sampleCount - 1,
      Math.floor((toMs - this.#firstMs) / this.#intervalMs),
    );
    const out: { t: number; v: number }[] = [];
    for (let k = lo; k <= hi; k++) {
      const v = sampleValue(this.cluster, series, k);
      if (v !== undefined) out.push({ t: this.#firstMs + k * this.#intervalMs, v });
    }
    return out;
  }

  /** Instant selector at `tMs`: newest sample in `[t − 5m, t]`; labels include `__name__`. */
  instant(metric: string, matchers: readonly Matcher[], tMs: number): Sample[] {
    // Several queries select the same series at the same step; results are never mutated.
    const memoKey = JSON.stringify([metric, matchers, tMs]);
    const memo = this.#instants.get(memoKey);
    if (memo) return memo;
    if (this.#instants.size > 20_000) this.#instants.clear();
    const out: Sample[] = [];
    const hi = Math.min(
      this.cluster.sampleCount - 1,
      Math.floor((tMs - this.#firstMs) / this.#intervalMs),
    );
    const lo = Math.max(0, Math.ceil((tMs - LOOKBACK_MS - this.#firstMs) / this.#intervalMs));
    for (const s of this.#select(metric, matchers)) {
      for (let k = hi; k >= lo; k--) {
        const v = sampleValue(this.cluster, s.spec, k);
        if (v !== undefined) {
          out.push({ labels: s.labels, value: v });
          break;
        }
      }
    }
    this.#instants.set(memoKey, out);
    return out;
  }

  /** `rate(metric{matchers}[range])` at `tMs` (Prometheus 2.42 `extrapolatedRate`). */
  rate(metric: string, matchers: readonly Matcher[], tMs: number, rangeMs: number): Sample[] {
    const out: Sample[] = [];
    for (const s of this.#select(metric, matchers)) {
      const pts = this.points(s.spec, tMs - rangeMs, tMs);
      const v = extrapolatedRate(pts, tMs - rangeMs, tMs, rangeMs / 1000);
      if (v !== undefined) out.push({ labels: withoutName(s.labels), value: v });
    }
    return out;
  }

  /** `sum_over_time(metric{matchers}[range])` at `tMs`. */
  sumOverTime(
    metric: string,
    matchers: readonly Matcher[],
    tMs: number,
    rangeMs: number,
  ): Sample[] {
    const out: Sample[] = [];
    for (const s of this.#select(metric, matchers)) {
      const pts = this.points(s.spec, tMs - rangeMs, tMs);
      if (pts.length === 0) continue;
      let sum = 0;
      for (const p of pts) sum += p.v;
      out.push({ labels: withoutName(s.labels), value: sum });
    }
    return out;
  }
}

/**
 * Prometheus v2.42 `extrapolatedRate` for a float counter (`rate`), operation
 * for operation, so results are bit-identical. Returns `undefined` with fewer
 * than two samples.
 *
 * @example
 * ```ts
 * import { extrapolatedRate } from "./promql_eval.ts";
 * // Samples every 300 s rising by 30 (0.1/s) in a 900 s window.
 * const pts = [{ t: 100_000, v: 10 }, { t: 400_000, v: 40 }, { t: 700_000, v: 70 }];
 * extrapolatedRate(pts, 0, 900_000, 900); // ≈ 0.0844 (extrapolated, zero-point limited)
 * ```
 */
export function extrapolatedRate(
  points: readonly { t: number; v: number }[],
  rangeStartMs: number,
  rangeEndMs: number,
  rangeSeconds: number,
): number | undefined {
  const first = points[0];
  const last = points[points.length - 1];
  if (points.length < 2 || !first || !last) return undefined;
  let resultValue = last.v - first.v;
  let prevValue = first.v;
  for (let i = 1; i < points.length; i++) {
    const cur = points[i];
    if (!cur) continue;
    if (cur.v < prevValue) resultValue += prevValue;
    prevValue = cur.v;
  }
  let durationToStart = (first.t - rangeStartMs) / 1000;
  const durationToEnd = (rangeEndMs - last.t) / 1000;
  const sampledInterval = (last.t - first.t) / 1000;
  const averageDurationBetweenSamples = sampledInterval / (points.length - 1);
  if (resultValue > 0 && first.v >= 0) {
    const durationToZero = sampledInterval * (first.v / resultValue);
    if (durationToZero < durationToStart) durationToStart = durationToZero;
  }
  const extrapolationThreshold = averageDurationBetweenSamples * 1.1;
  let extrapolateToInterval = sampledInterval;
  if (durationToStart < extrapolationThreshold) extrapolateToInterval += durationToStart;
  else extrapolateToInterval += averageDurationBetweenSamples / 2;
  if (durationToEnd < extrapolationThreshold) extrapolateToInterval += durationToEnd;
  else extrapolateToInterval += averageDurationBetweenSamples / 2;
  let factor = extrapolateToInterval / sampledInterval;
  factor /= rangeSeconds;
  return resultValue * factor;
}

/**
 * `sum by (…)` / `max by (…)`: output labels are the present `by` labels only.
 *
 * @example
 * ```ts
 * import { aggregate } from "./promql_eval.ts";
 * const v = [{ labels: { a: "1", b: "x" }, value: 2 }, { labels: { a: "1", b: "y" }, value: 3 }];
 * aggregate("sum", ["a"], v); // [{ labels: { a: "1" }, value: 5 }]
 * ```
 */
export function aggregate(op: "sum" | "max", by: readonly string[], v: Vector): Sample[] {
  const groups = new Map<string, { labels: Labels; value: number }>();
  const byKey = by.join("\u0001");
  for (const s of v) {
    let key = byKey;
    for (const name of by) key += "\u0002" + (s.labels[name] ?? "");
    const g = groups.get(key);
    if (!g) {
      let labels = groupCache.get(key);
      if (!labels) {
        const fresh: Record<string, string> = {};
        for (const name of by) {
          const value = s.labels[name];
          if (value) fresh[name] = value;
        }
        labels = fresh;
        groupCache.set(key, labels);
      }
      groups.set(key, { labels, value: s.value });
    } else if (op === "sum") g.value += s.value;
    else if (g.value < s.value || Number.isNaN(g.value)) g.value = s.value;
  }
  return [...groups.values()];
}

function signature(labels: Labels, on: readonly string[]): string {
  return JSON.stringify(on.map((n) => labels[n] ?? ""));
}

/**
 * `lhs * on(on…) group_left(include…) rhs` with Prometheus's matching rules:
 * the right side must be unique per signature, result labels are the left
 * labels without `__name__`, and each `include` label is copied from the right
 * side (or removed when the right side lacks it).
 *
 * @example
 * ```ts
 * import { mulGroupLeft } from "./promql_eval.ts";
 * const lhs = [{ labels: { __name__: "x", node: "n1" }, value: 4 }];
 * const rhs = [{ labels: { node: "n1", provider_id: "p" }, value: 1 }];
 * mulGroupLeft(lhs, rhs, ["node"], ["provider_id"]);
 * // [{ labels: { node: "n1", provider_id: "p" }, value: 4 }]
 * ```
 */
export function mulGroupLeft(
  lhs: Vector,
  rhs: Vector,
  on: readonly string[],
  include: readonly string[],
): Sample[] {
  const right = new Map<string, Sample>();
  for (const r of rhs) {
    const sig = signature(r.labels, on);
    const dup = right.get(sig);
    if (dup) {
      throw new Error(
        `found duplicate series for the match group ${sig} on the right hand-side of the operation; many-to-many matching not allowed`,
        { cause: { a: r.labels, b: dup.labels } },
      );
    }
    right.set(sig, r);
  }
  const out: Sample[] = [];
  const inserted = new Map<string, Set<string>>();
  for (const l of lhs) {
    const sig = signature(l.labels, on);
    const r = right.get(sig);
    if (!r) continue;
    const base = withoutName(l.labels);
    const variant = JSON.stringify(include.map((name) => [name, r.labels[name] ?? ""]));
    const labels = include.length === 0 ? base : derived(base, variant, () => {
      const out: Record<string, string> = { ...base };
      for (const name of include) {
        const value = r.labels[name];
        if (value) out[name] = value;
        else delete out[name];
      }
      return out;
    });
    const key = labelsKey(labels);
    let set = inserted.get(sig);
    if (!set) {
      set = new Set();
      inserted.set(sig, set);
    } else if (set.has(key)) {
      throw new Error("multiple matches for labels: grouping labels must ensure uniqueness", {
        cause: { labels },
      });
    }
    set.add(key);
    out.push({ labels, value: l.value * r.value });
  }
  return out;
}

/**
 * `lhs or rhs`: all of `lhs`, plus the `rhs` elements whose label set
 * (ignoring `__name__`) does not occur in `lhs`.
 *
 * @example
 * ```ts
 * import { or } from "./promql_eval.ts";
 * or([{ labels: { a: "1" }, value: 1 }], [{ labels: { a: "1" }, value: 9 }, { labels: { a: "2" }, value: 2 }]);
 * // [{ labels: { a: "1" }, value: 1 }, { labels: { a: "2" }, value: 2 }]
 * ```
 */
export function or(lhs: Vector, rhs: Vector): Sample[] {
  const seen = new Set(lhs.map((s) => labelsKey(withoutName(s.labels))));
  return [...lhs, ...rhs.filter((s) => !seen.has(labelsKey(withoutName(s.labels))))];
}

/**
 * `label_replace(v, dst, "$1", src, regex)` for the two regexes CMMO uses,
 * `(.*)` and `(.+)`, with Go RE2 semantics (`.` does not match a newline;
 * the regex is anchored at both ends).
 *
 * @example
 * ```ts
 * import { labelReplace } from "./promql_eval.ts";
 * labelReplace([{ labels: { pod: "p" }, value: 1 }], "exported_pod", "pod", "(.*)");
 * // [{ labels: { pod: "p", exported_pod: "p" }, value: 1 }]
 * ```
 */
export function labelReplace(
  v: Vector,
  dst: string,
  src: string,
  regex: "(.*)" | "(.+)",
): Sample[] {
  const out = v.map((s) => {
    const value = s.labels[src] ?? "";
    const matches = !value.includes("\n") && (regex === "(.*)" || value !== "");
    if (!matches) return s;
    const labels = derived(s.labels, `label_replace\u0001${dst}\u0001${value}`, () => {
      const out: Record<string, string> = { ...s.labels };
      if (value === "") delete out[dst];
      else out[dst] = value;
      return out;
    });
    return { labels, value: s.value };
  });
  assertUniqueLabelSets(out, "label_replace");
  return out;
}

/**
 * `v + scalar` (drops `__name__`).
 *
 * @example
 * ```ts
 * import { addScalar } from "./promql_eval.ts";
 * addScalar([{ labels: { __name__: "x" }, value: 0.5 }], 1); // [{ labels: {}, value: 1.5 }]
 * ```
 */
export function addScalar(v: Vector, scalar: number): Sample[] {
  return v.map((s) => ({ labels: withoutName(s.labels), value: s.value + scalar }));
}

/**
 * `clamp_max(v, max)` (drops `__name__`).
 *
 * @example
 * ```ts
 * import { clampMax } from "./promql_eval.ts";
 * clampMax([{ labels: {}, value: 1.5 }], 1); // [{ labels: {}, value: 1 }]
 * ```
 */
export function clampMax(v: Vector, max: number): Sample[] {
  return v.map((s) => ({ labels: withoutName(s.labels), value: Math.min(max, s.value) }));
}
