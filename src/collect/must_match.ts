/**
 * Which queries must come back empty (issue 8, part 4): from the parsed
 * PromQL, a boolean formula over "this selector has no samples" atoms that,
 * when true, proves the query's answer is empty; one cheap instant query
 * that asks a Thanos which clusters have samples of each atom; and the
 * reading of its answer.
 *
 * The analysis is conservative. A formula may say "may be non-empty" for a
 * query that will in fact be empty (that only costs the query), but it never
 * says "must be empty" for a query that could return a series: anything not
 * known for certain to be empty on empty input (`absent`, `vector()`,
 * `scalar()`, `time()`, numbers, `@`, negative offsets, unknown functions) is
 * `never` empty.
 *
 * Atoms are keyed by the selector's text exactly as written (metric name and
 * matchers, including the cluster matcher the rewriter injected, without
 * range or offset), so the same selector in two queries is one atom. Each
 * atom carries the time margin the query reads before its first evaluation
 * time: enclosing subquery ranges and offsets, plus the selector's own range
 * window, or the lookback delta for an instant selector.
 *
 * lezer-promql binds a trailing `offset`/`@` more loosely than Prometheus
 * (`x + y offset 1h` is `(x + y) offset 1h` in its tree, `x + (y offset 1h)`
 * in Prometheus's): an offset then widens the margins of more atoms than
 * needed and an `@` hides more atoms than needed, both on the safe side.
 *
 * Per-cluster use in a cluster-batched query is exact because every
 * aggregation and join of a batched query carries the cluster label: the
 * answer's series of one cluster are computed from that cluster's series only.
 *
 * @module
 */

import type { SyntaxNode } from "@lezer/common";
import {
  childNodes,
  DATE_FUNCTIONS,
  durationLiteralMs,
  exprChildren,
  parsePromql,
} from "./promql_rewrite.ts";
import { isLabelName } from "../model.ts";

/**
 * When a query's answer must be empty: `never` (it may always have series),
 * `absent` (when the selector `atom` has no sample in the query's range
 * extended by `marginSeconds`), `any` (when one of `of` holds), `all` (when
 * each of `of` holds). Built simplified by {@linkcode emptinessOf}: no nested
 * `any` in `any` or `all` in `all`, no `never` inside, no duplicates, at
 * least two members in `any`/`all`, and one margin per atom.
 */
export type Emptiness =
  | { readonly kind: "never" }
  | { readonly kind: "absent"; readonly atom: string; readonly marginSeconds: number }
  | { readonly kind: "any"; readonly of: readonly Emptiness[] }
  | { readonly kind: "all"; readonly of: readonly Emptiness[] };

/** A selector to probe, and how far before the evaluated range its presence matters. */
export interface ProbeAtom {
  /** The selector's text as written in the query, e.g. `kube_node_role{clusterID="c"}`. */
  readonly atom: string;
  /** Seconds before the first evaluation time the query may read (range windows, subqueries, offsets, lookback). */
  readonly marginSeconds: number;
}

/** Options of {@linkcode emptinessOf}. */
export interface EmptinessOptions {
  /** The server's lookback delta for instant selectors, in seconds; default 300 (Prometheus's and Thanos's `--query.lookback-delta`). */
  readonly lookbackDeltaSeconds?: number;
}

/** Which clusters have samples of each probed atom: atom text → cluster ids. */
export type ProbeResult = ReadonlyMap<string, ReadonlySet<string>>;

/**
 * The label the probe query tags each atom's counts with. `count by
 * (<cluster label>)` keeps only the cluster label, so the only name that
 * could collide is the cluster label itself, which is refused. It does not
 * start with `__`: Prometheus reserves such names for internal use, and
 * components along the way (relabelling, Thanos's internal labels) may treat
 * them specially; a plain name needs no such trust.
 */
export const PROBE_LABEL = "thanos_bridge_probe";

const NEVER: Emptiness = Object.freeze({ kind: "never" });

const DEFAULT_LOOKBACK_SECONDS = 300;

/** Functions that return an empty vector for an empty argument, and which argument that is. */
const PROPAGATING_FUNCTIONS: ReadonlyMap<string, number> = new Map([
  // Range-vector functions.
  ...[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "holt_winters",
    "double_exponential_smoothing",
    "resets",
    "changes",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "mad_over_time",
  ].map((name) => [name, 0] as const),
  ["quantile_over_time", 1],
  // Element-wise instant-vector functions.
  ...[
    "abs",
    "ceil",
    "floor",
    "round",
    "exp",
    "sqrt",
    "ln",
    "log2",
    "log10",
    "sgn",
    "clamp",
    "clamp_min",
    "clamp_max",
    "label_replace",
    "label_join",
    "sort",
    "sort_desc",
    "sort_by_label",
    "sort_by_label_desc",
    "timestamp",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "cos",
    "cosh",
    "sin",
    "sinh",
    "tan",
    "tanh",
    "deg",
    "rad",
    "histogram_count",
    "histogram_sum",
    "histogram_avg",
    "histogram_stddev",
    "histogram_stdvar",
    // Without an argument these read vector(time()): handled by the arity check.
    ...DATE_FUNCTIONS,
  ].map((name) => [name, 0] as const),
  ["histogram_quantile", 1],
  ["histogram_fraction", 2],
]);

/** Aggregation operators; each is empty on an empty input vector (its last argument). */
const AGGREGATIONS: ReadonlySet<string> = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
]);

/** Binary operators that are empty when either operand is (arithmetic, comparison, `and`). */
const EITHER_SIDE: ReadonlySet<string> = new Set([
  "Pow",
  "Mul",
  "Div",
  "Mod",
  "Add",
  "Sub",
  "Atan2",
  "Eql",
  "Neq",
  "Gtr",
  "Gte",
  "Lss",
  "Lte",
  "And",
]);

/**
 * Derives from a PromQL expression the condition under which its answer must
 * be empty, with Prometheus's semantics: a selector is empty when it has no
 * samples; aggregations, subqueries, offsets, parentheses and functions such
 * as `rate`, `*_over_time`, `clamp_*`, `label_replace`, `sort`, `round` are
 * empty when their vector argument is; arithmetic, comparisons and `and` when
 * either side is; `or` when both are; `unless` when its left side is; a
 * scalar side never makes a result empty. `absent`, `absent_over_time`,
 * `vector()`, `scalar()`, `time()`, literals, `@`, negative offsets and
 * anything not listed are `never` empty.
 *
 * Every atom gets the margin its uses need (the largest over its uses in this
 * query): the sum of the enclosing subquery ranges and offsets, plus its own
 * range window, or `lookbackDeltaSeconds` for an instant selector.
 *
 * @param expr The PromQL expression as sent (rewritten, possibly wrapped by `serverExpr`).
 * @param options The lookback delta (default 300 s).
 * @returns The simplified formula.
 * @throws {SyntaxError} If `expr` does not parse.
 * @throws {RangeError} If the lookback delta is negative or not finite.
 *
 * @example
 * ```ts
 * import { emptinessOf } from "./must_match.ts";
 * emptinessOf("avg_over_time(sum(rate(x[5m]))[15m:]) * on(a) group_left y or rate(z[5m] offset 1h)");
 * // { kind: "all", of: [
 * //   { kind: "absent", atom: "z", marginSeconds: 3900 },
 * //   { kind: "any", of: [
 * //     { kind: "absent", atom: "x", marginSeconds: 1200 },
 * //     { kind: "absent", atom: "y", marginSeconds: 300 } ] } ] }
 * emptinessOf("absent(x) or vector(0) * x"); // { kind: "never" }
 * ```
 */
export function emptinessOf(expr: string, options: EmptinessOptions = {}): Emptiness {
  if (typeof expr !== "string") {
    throw new TypeError(`PromQL expression must be a string, got ${typeof expr}`);
  }
  const lookback = options.lookbackDeltaSeconds ?? DEFAULT_LOOKBACK_SECONDS;
  if (!Number.isFinite(lookback) || lookback < 0) {
    throw new RangeError(`lookbackDeltaSeconds must be a finite number ≥ 0, got ${lookback}`);
  }
  const top = parseExpression(expr);
  const raw = walk(expr, top, 0, lookback * 1000);
  const margins = new Map<string, number>();
  collectMargins(raw, margins);
  return simplify(raw, margins);
}

/**
 * True when `emptiness` proves the answer empty, given which atoms have
 * samples (`present(atom)` for the cluster and range in question).
 *
 * @example
 * ```ts
 * import { emptinessOf, mustBeEmpty } from "./must_match.ts";
 * const e = emptinessOf("x * on(a) y or z");
 * mustBeEmpty(e, (atom) => atom === "y"); // true: x and z are absent
 * mustBeEmpty(e, (atom) => atom === "z"); // false
 * ```
 */
export function mustBeEmpty(
  emptiness: Emptiness,
  present: (atomKey: string) => boolean,
): boolean {
  switch (emptiness.kind) {
    case "never":
      return false;
    case "absent":
      return !present(emptiness.atom);
    case "any":
      return emptiness.of.some((e) => mustBeEmpty(e, present));
    case "all":
      return emptiness.of.every((e) => mustBeEmpty(e, present));
  }
}

/**
 * The atoms worth probing for a set of queries: every atom that appears in a
 * simplified formula (atoms that cannot decide anything, such as one `or`-ed
 * with a side that is `never` empty, are already gone), once each, with the
 * largest margin over its uses, in order of first appearance (formulas in the
 * order given, members in their canonical order).
 *
 * @example
 * ```ts
 * import { emptinessOf, probeAtoms } from "./must_match.ts";
 * probeAtoms([emptinessOf("rate(x[5m])"), emptinessOf("x * y or vector(1)")]);
 * // [{ atom: "x", marginSeconds: 300 }]
 * ```
 */
export function probeAtoms(emptinesses: readonly Emptiness[]): ProbeAtom[] {
  const margins = new Map<string, number>();
  for (const e of emptinesses) collectMargins(e, margins);
  return [...margins].map(([atom, marginSeconds]) => ({ atom, marginSeconds }));
}

/**
 * One instant query asking, for each atom, which clusters have any sample of
 * it within `rangeSeconds + marginSeconds` before the evaluation time: atom i
 * (after merging identical selectors, in order of first appearance) becomes
 * `label_replace(count by (<clusterLabel>) (last_over_time(<atom>[<w>s])),
 * "thanos_bridge_probe", "<i>", "", "")`, and the parts are joined with `or`.
 * Evaluate it at the query's last evaluation time, with `rangeSeconds` the
 * span from its first to its last evaluation time (0 for one instant); the
 * window is rounded up to whole seconds.
 *
 * @param atoms The atoms, e.g. from {@linkcode probeAtoms}.
 * @param clusterLabel The label carrying the cluster id, e.g. `clusterID`.
 * @param rangeSeconds Span of the evaluated range, ≥ 0.
 * @returns The PromQL probe.
 * @throws {RangeError} If there are no atoms, the label is not a plain label
 *   name or is the probe label, or a window is not positive and finite.
 * @throws {TypeError} If an atom is not a single vector selector.
 *
 * @example
 * ```ts
 * import { probeQuery } from "./must_match.ts";
 * probeQuery([{ atom: 'x{clusterID="c"}', marginSeconds: 300 }], "clusterID", 3600);
 * // 'label_replace(count by (clusterID) (last_over_time(x{clusterID="c"}[3900s])), "thanos_bridge_probe", "0", "", "")'
 * ```
 */
export function probeQuery(
  atoms: readonly ProbeAtom[],
  clusterLabel: string,
  rangeSeconds: number,
): string {
  checkClusterLabel(clusterLabel);
  if (!Number.isFinite(rangeSeconds) || rangeSeconds < 0) {
    throw new RangeError(`rangeSeconds must be a finite number ≥ 0, got ${rangeSeconds}`);
  }
  const unique = uniqueAtoms(atoms);
  if (unique.length === 0) throw new RangeError("Nothing to probe: no atoms");
  return unique.map(({ atom, marginSeconds }, i) => {
    checkSelector(atom);
    const window = Math.ceil(rangeSeconds + marginSeconds);
    if (!Number.isFinite(window) || window <= 0) {
      throw new RangeError(
        `Probe window for ${atom} must be positive: rangeSeconds ${rangeSeconds} + margin ${marginSeconds}`,
      );
    }
    return `label_replace(count by (${clusterLabel}) (last_over_time(${atom}[${window}s])), ` +
      `"${PROBE_LABEL}", "${i}", "", "")`;
  }).join(" or ");
}

/**
 * Reads the answer of {@linkcode probeQuery} (its `data.result` series): for
 * every atom (merged as in the probe), the set of cluster ids that have
 * samples of it. Atoms no series names map to an empty set.
 *
 * @param series The answer's series (only `metric` is read).
 * @param atoms The same atoms the probe was built from.
 * @param clusterLabel The same cluster label.
 * @returns Atom text → cluster ids.
 * @throws {Error} If a series lacks the cluster label or the probe label, has
 *   an index that names no atom, carries other labels, or repeats a series;
 *   the message names the series.
 *
 * @example
 * ```ts
 * import { readProbeAnswer } from "./must_match.ts";
 * const atoms = [{ atom: "x", marginSeconds: 300 }, { atom: "y", marginSeconds: 300 }];
 * const r = readProbeAnswer(
 *   [{ metric: { clusterID: "c1", thanos_bridge_probe: "1" } }],
 *   atoms,
 *   "clusterID",
 * );
 * [...r.get("y")!]; // ["c1"]
 * r.get("x")!.size; // 0
 * ```
 */
export function readProbeAnswer(
  series: readonly { readonly metric: Readonly<Record<string, string>> }[],
  atoms: readonly ProbeAtom[],
  clusterLabel: string,
): ProbeResult {
  checkClusterLabel(clusterLabel);
  const unique = uniqueAtoms(atoms);
  const result = new Map<string, Set<string>>(unique.map(({ atom }) => [atom, new Set()]));
  for (const s of series) {
    const metric: Readonly<Record<string, unknown>> | undefined = s?.metric;
    const bad = (why: string) =>
      new Error(`Malformed probe answer: series ${JSON.stringify(metric ?? s)} ${why}`, {
        cause: { series: s },
      });
    if (metric === null || typeof metric !== "object") throw bad("has no metric labels");
    const cluster = metric[clusterLabel];
    if (typeof cluster !== "string" || cluster === "") {
      throw bad(`has no ${clusterLabel} label`);
    }
    const index = metric[PROBE_LABEL];
    if (typeof index !== "string" || !/^(0|[1-9][0-9]{0,8})$/.test(index)) {
      throw bad(`has no valid ${PROBE_LABEL} label`);
    }
    const atom = unique[Number(index)];
    if (atom === undefined) {
      throw bad(`names atom ${index}, but the probe has ${unique.length} atoms`);
    }
    const extra = Object.keys(metric).filter((k) => k !== clusterLabel && k !== PROBE_LABEL);
    if (extra.length > 0) throw bad(`has unexpected labels ${extra.join(", ")}`);
    const clusters = result.get(atom.atom)!;
    if (clusters.has(cluster)) throw bad("is in the answer twice");
    clusters.add(cluster);
  }
  return result;
}

/**
 * The `present` function of {@linkcode mustBeEmpty} for one cluster of a
 * probe's answer. An atom the probe did not ask about counts as present
 * (nothing is skipped on missing evidence).
 *
 * @example
 * ```ts
 * import { emptinessOf, mustBeEmpty, presentIn } from "./must_match.ts";
 * const result = new Map([["x", new Set(["c1"])]]);
 * mustBeEmpty(emptinessOf("sum(x)"), presentIn(result, "c2")); // true
 * mustBeEmpty(emptinessOf("sum(y)"), presentIn(result, "c2")); // false: y was not probed
 * ```
 */
export function presentIn(result: ProbeResult, clusterId: string): (atomKey: string) => boolean {
  return (atomKey) => result.get(atomKey)?.has(clusterId) ?? true;
}

// ---------------------------------------------------------------------------

function parseExpression(expr: string): SyntaxNode {
  // The queries come from the rewriter, whose literals are checked already.
  const top = exprChildren(parsePromql(expr, { literals: false }).topNode);
  if (top.length !== 1) {
    throw new SyntaxError(`Cannot parse PromQL query ${JSON.stringify(expr)}: not one expression`, {
      cause: { query: expr, position: 0 },
    });
  }
  return top[0]!;
}

/** Emptiness of `node`, whose evaluation times reach `marginMs` before the query's first one. */
function walk(expr: string, node: SyntaxNode, marginMs: number, lookbackMs: number): Emptiness {
  const text = (n: SyntaxNode) => expr.slice(n.from, n.to);
  const inner = (n: SyntaxNode | undefined, extraMs: number): Emptiness =>
    n === undefined ? NEVER : walk(expr, n, marginMs + extraMs, lookbackMs);
  switch (node.name) {
    case "VectorSelector":
      return absent(text(node), marginMs + lookbackMs);
    case "MatrixSelector": {
      const selector = node.getChild("VectorSelector");
      const range = durationMs(expr, node.getChild("DurationExpr"));
      if (selector === null || range === null || range <= 0) return NEVER;
      return absent(text(selector), marginMs + range);
    }
    case "ParenExpr":
    case "UnaryExpr":
      return inner(exprChildren(node)[0], 0);
    case "OffsetExpr": {
      const offset = durationMs(expr, node.getChild("OffsetDurationExpr"));
      // A negative offset reads after the evaluation time: no claim.
      if (offset === null || offset < 0) return NEVER;
      return inner(exprChildren(node)[0], offset);
    }
    case "SubqueryExpr": {
      const range = durationMs(expr, node.getChild("DurationExpr"));
      if (range === null || range <= 0) return NEVER;
      return inner(exprChildren(node)[0], range);
    }
    case "AggregateExpr": {
      const op = node.getChild("AggregateOp");
      const body = node.getChild("FunctionCallBody");
      if (op === null || body === null || !AGGREGATIONS.has(text(op))) return NEVER;
      return inner(exprChildren(body).at(-1), 0);
    }
    case "FunctionCall": {
      const name = node.getChild("FunctionIdentifier");
      const body = node.getChild("FunctionCallBody");
      const index = name === null ? undefined : PROPAGATING_FUNCTIONS.get(text(name));
      if (index === undefined || body === null) return NEVER;
      return inner(exprChildren(body)[index], 0);
    }
    case "BinaryExpr": {
      const sides = exprChildren(node);
      const left = sides[0];
      const right = sides.at(-1);
      const op = left?.nextSibling ?? null;
      if (sides.length !== 2 || op === null) return NEVER;
      if (EITHER_SIDE.has(op.name)) return { kind: "any", of: [inner(left, 0), inner(right, 0)] };
      if (op.name === "Or") return { kind: "all", of: [inner(left, 0), inner(right, 0)] };
      if (op.name === "Unless") return inner(left, 0);
      return NEVER;
    }
    default:
      // Literals, `@` (StepInvariantExpr), `anchored`, `smoothed`: no claim.
      return NEVER;
  }
}

function absent(atom: string, marginMs: number): Emptiness {
  return { kind: "absent", atom, marginSeconds: marginMs / 1000 };
}

/**
 * Milliseconds of a `DurationExpr`/`OffsetDurationExpr` that is one literal,
 * possibly signed; null for anything else (duration arithmetic, `step()`).
 */
function durationMs(expr: string, node: SyntaxNode | null): number | null {
  if (node === null) return null;
  const children = childNodes(node);
  if (children.length === 1 && children[0]!.name === "NumberDurationLiteralInDurationContext") {
    return durationLiteralMs(expr.slice(children[0]!.from, children[0]!.to));
  }
  if (children.length === 2 && children[0]!.name === "UnaryOp") {
    const value = durationMs(expr, children[1]!);
    if (value === null) return null;
    const sign = expr.slice(children[0]!.from, children[0]!.to);
    return sign === "-" ? -value : sign === "+" ? value : null;
  }
  return null;
}

/** Largest margin of every atom in `e`, into `margins` (first appearance keeps its place). */
function collectMargins(e: Emptiness, margins: Map<string, number>): void {
  switch (e.kind) {
    case "never":
      return;
    case "absent":
      margins.set(e.atom, Math.max(margins.get(e.atom) ?? 0, e.marginSeconds));
      return;
    case "any":
    case "all":
      for (const sub of e.of) collectMargins(sub, margins);
  }
}

/**
 * Simplifies with every atom at its largest margin (a stronger condition than
 * each use needs, so still sound): flattens, drops `never` from `any`, makes
 * `all` with a `never` member `never`, removes duplicates and absorbed members
 * (`any(a, all(a, b))` is `a`, `all(a, any(a, b))` is `a`), unwraps single
 * members, and sorts members by their canonical key.
 */
function simplify(e: Emptiness, margins: ReadonlyMap<string, number>): Emptiness {
  switch (e.kind) {
    case "never":
      return NEVER;
    case "absent":
      return { kind: "absent", atom: e.atom, marginSeconds: margins.get(e.atom)! };
    case "any":
    case "all": {
      const dual = e.kind === "any" ? "all" : "any";
      const members: Emptiness[] = [];
      const keys = new Set<string>();
      const add = (m: Emptiness) => {
        const key = keyOf(m);
        if (!keys.has(key)) {
          keys.add(key);
          members.push(m);
        }
      };
      for (const sub of e.of) {
        const s = simplify(sub, margins);
        if (s.kind === "never") {
          if (e.kind === "all") return NEVER;
          continue;
        }
        if (s.kind === e.kind) s.of.forEach(add);
        else add(s);
      }
      const kept = members.filter((m) =>
        m.kind !== dual || !m.of.some((inner) => keys.has(keyOf(inner)))
      );
      if (kept.length === 0) return NEVER;
      if (kept.length === 1) return kept[0]!;
      // A canonical order, so that the same condition written two ways is one member.
      const sorted = kept.map((m) => [keyOf(m), m] as const)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([, m]) => m);
      return { kind: e.kind, of: sorted };
    }
  }
}

function keyOf(e: Emptiness): string {
  switch (e.kind) {
    case "never":
      return "0";
    case "absent":
      return `A${JSON.stringify(e.atom)}`;
    case "any":
    case "all":
      return `${e.kind}(${e.of.map(keyOf).join(",")})`;
  }
}

/** Identical selectors merged (largest margin), in order of first appearance. */
function uniqueAtoms(atoms: readonly ProbeAtom[]): ProbeAtom[] {
  const margins = new Map<string, number>();
  for (const { atom, marginSeconds } of atoms) {
    if (typeof atom !== "string" || !Number.isFinite(marginSeconds) || marginSeconds < 0) {
      throw new TypeError(
        `Invalid probe atom ${JSON.stringify({ atom, marginSeconds })}: ` +
          `expected a selector and a finite margin ≥ 0`,
      );
    }
    margins.set(atom, Math.max(margins.get(atom) ?? 0, marginSeconds));
  }
  return [...margins].map(([atom, marginSeconds]) => ({ atom, marginSeconds }));
}

function checkSelector(atom: string): void {
  let top: SyntaxNode | null = null;
  try {
    top = parseExpression(atom);
  } catch { /* reported below */ }
  if (top === null || top.name !== "VectorSelector" || top.from !== 0 || top.to !== atom.length) {
    throw new TypeError(`Probe atom ${JSON.stringify(atom)} is not a single vector selector`);
  }
}

function checkClusterLabel(label: string): void {
  if (!isLabelName(label) || label.startsWith("__")) {
    throw new RangeError(
      `Invalid cluster label ${JSON.stringify(label)}: must match ^[a-zA-Z_][a-zA-Z0-9_]*$ ` +
        `and not start with "__"`,
    );
  }
  if (label === PROBE_LABEL) {
    throw new RangeError(`The cluster label cannot be ${PROBE_LABEL}, the probe's own label`);
  }
}
