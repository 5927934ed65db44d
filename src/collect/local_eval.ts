/**
 * A small PromQL evaluator over raw samples (`--reduce local`): it evaluates
 * CMMO's cost and ROS queries at every step of a `query_range` grid with the
 * semantics of Prometheus's engine (`promql/engine.go`, `promql/functions.go`)
 * of either 2.42 (`prometheus2`) or 3.16 (`prometheus3`), so that the answer
 * is the one Prometheus would return for the same samples.
 *
 * The evaluator works node by node over the whole step grid: every node
 * yields series with a `Float64Array` of values and a presence `Uint8Array`
 * over all steps. Signatures, group keys, result label sets and
 * `label_replace` results are computed once per series (or pair of series),
 * lookback and range windows are pointer walks over the sorted timestamps.
 *
 * Supported subset: vector selectors (`=`, `!=`, `=~`, `!~`, positive
 * `offset`), `rate`, `irate`, `increase`, `sum_over_time`, `avg_over_time`,
 * `max_over_time`, `min_over_time`, `count_over_time`, `last_over_time` on
 * matrix selectors, `sum`/`max`/`min`/`avg`/`count` with `by`/`without`,
 * `+ - * /` between vectors (`on`/`ignoring`, `group_left`/`group_right`)
 * and scalars, `and`/`or`/`unless`, unary minus, `label_replace`,
 * `clamp_max`, `clamp_min`, number literals and parentheses, and subqueries
 * `expr[range:]` / `expr[range:step]` (with an optional positive `offset`) as
 * the argument of any of the range functions above. Anything else (`@`,
 * other functions and aggregations, comparisons, `bool`, …) is refused by
 * {@linkcode compileLocal}, with the construct and its offset.
 *
 * Subqueries follow `promql/engine.go` of both versions: the inner
 * expression is evaluated at multiples of the subquery step (absolute
 * alignment; the step is the explicit one or `subqueryStepMs`, the engine's
 * default evaluation interval, 60 s by default), and the function at outer
 * time `t` reads the points in `[t - offset - range, t - offset]` (2.42) or
 * `(t - offset - range, t - offset]` (3.16). Only the inner steps some outer
 * window reads are evaluated, and a subquery repeated in one query (the `or`
 * branches of CMMO's ROS queries) is evaluated once. With this the evaluator
 * covers CMMO's 36 cost queries and 56 ROS queries.
 *
 * Assumptions: raw samples carry no staleness markers; floating point as on
 * amd64 (Go does not fuse multiply-add there; on arm64 it may, which can
 * change the last bit of `rate`). Delayed name removal, type-and-unit labels
 * and start timestamps (3.x feature flags) are off.
 *
 * @module
 */

import type { SyntaxNode } from "@lezer/common";
import { BridgeError } from "../model.ts";
import {
  childNodes,
  durationLiteralMs,
  exprChildren,
  parsePromql,
  quotePromqlString,
  unquotePromql,
} from "./promql_rewrite.ts";
import { keyPart, LabelSet as LSet } from "./label_set.ts";
import type { Labels } from "./row_map.ts";
import { compareUtf8 } from "./utf8_compare.ts";

/** Which Prometheus engine to mirror. */
export type EngineSemantics = "prometheus2" | "prometheus3";

/** Raw samples of one series, as fetched: timestamps in ms, ascending; values as float64. */
export interface RawSeries {
  readonly metric: Labels;
  readonly t: Float64Array;
  readonly v: Float64Array;
  /**
   * The same labels as `metric`, as two parallel arrays: names in UTF-8 byte
   * order, values, none empty. Optional: when given, the evaluator uses (and
   * shares) these arrays instead of reading `metric`, so a store can keep its
   * series' labels without an object per series.
   */
  readonly names?: readonly string[];
  readonly values?: readonly string[];
}

/** One distinct selector a query reads, and how far before an evaluation time it reads samples. */
export interface SelectorNeed {
  /** Canonical selector text, valid PromQL, the same for equal selectors in different queries
   *  (metric name, then matchers sorted by name, op, value; values double-quoted with PromQL escaping),
   *  e.g. `kube_pod_status_phase{clusterID="c1",phase="Running"}`. Used as the fetch query and as the lookup key. */
  readonly key: string;
  /** Max over the selector's uses: the lookback delta for an instant use, the range for `rate(x[15m])` etc. (plus any offset). */
  readonly marginMs: number;
  /**
   * The selector's parts, when known (from {@linkcode compileLocal}): its metric
   * name (null without one) and its matchers as in `key`. With them the raw fetch
   * may serve several selectors of one metric from one query.
   */
  readonly parts?: SelectorParts;
}

/** A selector's metric name and label matchers, sorted and without duplicates as in its key. */
export interface SelectorParts {
  readonly metric: string | null;
  readonly matchers: readonly SelectorMatcher[];
}

/** One label matcher of a selector. */
export interface SelectorMatcher {
  readonly name: string;
  readonly op: "=" | "!=" | "=~" | "!~";
  readonly value: string;
}

/**
 * The canonical selector text of a metric name and matchers: matchers sorted
 * by name, op and value, duplicates dropped, values double-quoted with PromQL
 * escaping. Equal selectors get equal text.
 *
 * @param metric The metric name, or null.
 * @param matchers The label matchers, in any order.
 * @returns The selector and its sorted, deduplicated parts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalSelector } from "./local_eval.ts";
 *
 * const s = canonicalSelector("x", [{ name: "b", op: "=", value: "1" }, { name: "a", op: "!=", value: "" }]);
 * assert.equal(s.key, 'x{a!="",b="1"}');
 * assert.equal(canonicalSelector("x", []).key, "x");
 * ```
 */
export function canonicalSelector(
  metric: string | null,
  matchers: readonly SelectorMatcher[],
): { key: string; parts: SelectorParts } {
  const sorted = [...matchers].sort((a, b) =>
    compareUtf8(a.name, b.name) || compareUtf8(a.op, b.op) || compareUtf8(a.value, b.value)
  );
  const parts: string[] = [];
  const kept: SelectorMatcher[] = [];
  for (const m of sorted) {
    const part = `${m.name}${m.op}${quotePromqlString(m.value)}`;
    if (parts[parts.length - 1] !== part) {
      parts.push(part);
      kept.push(m);
    }
  }
  const key = (metric ?? "") + (parts.length > 0 || metric === null ? `{${parts.join(",")}}` : "");
  return { key, parts: { metric, matchers: kept } };
}

/** A compiled query: its text, the selectors it reads, and a private tree. */
export interface LocalQuery {
  readonly expr: string;
  readonly selectors: readonly SelectorNeed[];
  /** @internal The compiled tree. */
  readonly root: unknown;
}

/** Result of {@linkcode compileLocal}. */
export type LocalCompile =
  | { readonly ok: true; readonly query: LocalQuery }
  | { readonly ok: false; readonly reason: string };

/** The default resolution of subqueries without a step (`x[15m:]`): one minute, Prometheus's
 *  global `evaluation_interval` default and Thanos Query's `--query.default-evaluation-interval`. */
export const DEFAULT_SUBQUERY_STEP_MS = 60_000;

/** Settings of {@linkcode compileLocal}. */
export interface CompileOptions {
  /** The lookback delta: the margin of instant selectors (Prometheus's default is 300 000). */
  readonly lookbackMs: number;
  /**
   * The engine's default subquery resolution, for subqueries without a step
   * (`x[15m:]`); default {@linkcode DEFAULT_SUBQUERY_STEP_MS}. It enters the
   * selectors' margins (one step of alignment slack) and is the default of
   * {@linkcode EvalOptions.subqueryStepMs}.
   */
  readonly subqueryStepMs?: number;
}

/** Step grid and engine settings of {@linkcode evaluateRange}. */
export interface EvalOptions {
  readonly startMs: number;
  readonly endMs: number;
  readonly stepMs: number;
  readonly lookbackMs: number;
  readonly semantics: EngineSemantics;
  /**
   * The engine's default subquery resolution (Prometheus: the global
   * `evaluation_interval`; Thanos Query: `--query.default-evaluation-interval`),
   * used by subqueries without a step. Default: the query's
   * {@linkcode CompileOptions.subqueryStepMs}, i.e. 60 000 unless set there.
   */
  readonly subqueryStepMs?: number;
  /**
   * Where the result arrays come from. Default: a pool of this evaluation
   * alone (its arrays are garbage once the caller drops them). With a pool
   * the caller resets after reading each result, the next evaluations
   * reuse the buffers.
   */
  readonly pool?: SlabPool;
}

/** One result series. */
export interface EvaluatedSeries {
  readonly metric: Labels;
  /** length = number of steps */
  readonly values: Float64Array;
  /** 1 where the series has a point at that step */
  readonly present: Uint8Array;
}

// ---------------------------------------------------------------------------
// Compiled tree

type RangeFn =
  | "rate"
  | "irate"
  | "increase"
  | "sum_over_time"
  | "avg_over_time"
  | "max_over_time"
  | "min_over_time"
  | "count_over_time"
  | "last_over_time";
type AggOp = "sum" | "max" | "min" | "avg" | "count";
type ArithOp = "+" | "-" | "*" | "/";
type SetOp = "and" | "or" | "unless";
type Card = "one-to-one" | "many-to-one" | "one-to-many";

interface Matching {
  readonly on: boolean;
  readonly labels: readonly string[];
}

type VNode =
  | { readonly k: "sel"; readonly key: string; readonly offsetMs: number; readonly text: string }
  | {
    readonly k: "range";
    readonly fn: RangeFn;
    /** The selector key of a matrix selector; "" for a subquery. */
    readonly key: string;
    readonly rangeMs: number;
    readonly offsetMs: number;
    /** Set for a function over a subquery `expr[range:step] offset o`. */
    readonly sub: Subquery | null;
    readonly text: string;
  }
  | {
    readonly k: "agg";
    readonly op: AggOp;
    readonly without: boolean;
    readonly grouping: readonly string[];
    readonly expr: VNode;
  }
  | {
    readonly k: "vv";
    readonly op: ArithOp;
    readonly card: Card;
    readonly matching: Matching;
    readonly include: readonly string[];
    readonly lhs: VNode;
    readonly rhs: VNode;
    readonly text: string;
  }
  | {
    readonly k: "set";
    readonly op: SetOp;
    readonly matching: Matching;
    readonly lhs: VNode;
    readonly rhs: VNode;
  }
  | {
    readonly k: "vs";
    readonly op: ArithOp;
    readonly vec: VNode;
    readonly scalar: SNode;
    readonly scalarLeft: boolean;
  }
  | { readonly k: "neg"; readonly expr: VNode }
  | {
    readonly k: "label_replace";
    readonly expr: VNode;
    readonly dst: string;
    readonly repl: string;
    readonly src: string;
    readonly regex: string;
    readonly re2: TranslatedRegex;
    readonly re3: TranslatedRegex;
    readonly text: string;
  }
  | { readonly k: "clamp"; readonly max: boolean; readonly expr: VNode; readonly param: SNode };

/** The inner part of a subquery; its range and offset are the `range` node's. */
interface Subquery {
  readonly expr: VNode;
  /** The explicit resolution, or null for the engine's default (`subqueryStepMs`). */
  readonly stepMs: number | null;
  /** The subquery's text, which keys the per-evaluation cache of its result. */
  readonly text: string;
}

type SNode =
  | { readonly k: "num"; readonly value: number }
  | { readonly k: "ss"; readonly op: ArithOp; readonly lhs: SNode; readonly rhs: SNode }
  | { readonly k: "sneg"; readonly expr: SNode };

type Root =
  & ({ readonly type: "vector"; readonly node: VNode } | {
    readonly type: "scalar";
    readonly node: SNode;
  })
  & {
    /** The compile-time default subquery resolution (also used for the margins). */
    readonly subqueryStepMs: number;
  };

type Typed =
  | { readonly type: "vector"; readonly node: VNode }
  | { readonly type: "scalar"; readonly node: SNode }
  | { readonly type: "string"; readonly value: string }
  | {
    readonly type: "matrix";
    readonly key: string;
    readonly rangeMs: number;
    readonly offsetMs: number;
    readonly sub: Subquery | null;
    readonly text: string;
  };

class Refusal extends Error {}

const RANGE_FUNCTIONS: ReadonlySet<string> = new Set([
  "rate",
  "irate",
  "increase",
  "sum_over_time",
  "avg_over_time",
  "max_over_time",
  "min_over_time",
  "count_over_time",
  "last_over_time",
]);
const AGG_OPS: ReadonlySet<string> = new Set(["sum", "max", "min", "avg", "count"]);
const ARITH: Readonly<Record<string, ArithOp>> = { Add: "+", Sub: "-", Mul: "*", Div: "/" };
const SETS: Readonly<Record<string, SetOp>> = { And: "and", Or: "or", Unless: "unless" };
const LEGACY_LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const LEGACY_METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * Compiles a PromQL expression for {@linkcode evaluateRange}, or says why it is
 * outside the local evaluator's subset (naming the construct and its offset).
 *
 * Margins: an instant selector needs the lookback delta, a range selector
 * its range (plus any offset); a selector inside a subquery
 * `f(expr[range:step] offset o)` needs its margin inside `expr` plus
 * `range + o` plus one subquery step (`step`, or `subqueryStepMs` without
 * one) of alignment slack, e.g. 5m + 15m + 1m for the `x` of
 * `avg_over_time(sum(rate(x[5m]))[15m:])`.
 *
 * @param expr The query, e.g. as rewritten by `rewriteQuery`.
 * @param options `lookbackMs`: the lookback delta (margin of instant selectors);
 *   `subqueryStepMs`: the default subquery resolution (default 60 000).
 * @returns `{ ok: true, query }` with the selectors to fetch, or `{ ok: false, reason }`.
 *
 * @example
 * ```ts
 * import { compileLocal } from "./local_eval.ts";
 * const c = compileLocal("sum by (pod) (rate(x{a='b'}[15m]))", { lookbackMs: 300_000 });
 * c.ok && c.query.selectors;
 * // [{ key: 'x{a="b"}', marginMs: 900000, parts: { metric: "x", matchers: [{ name: "a", op: "=", value: "b" }] } }]
 * const s = compileLocal("avg_over_time(sum(rate(x[5m]))[15m:])", { lookbackMs: 300_000 });
 * s.ok && s.query.selectors; // [{ key: "x", marginMs: 1260000, parts: { metric: "x", matchers: [] } }]
 * compileLocal("topk(3, x)", { lookbackMs: 300_000 }).ok; // false
 * ```
 */
export function compileLocal(expr: string, options: CompileOptions): LocalCompile {
  const lookbackMs = options.lookbackMs;
  if (!Number.isFinite(lookbackMs) || lookbackMs <= 0) {
    return { ok: false, reason: `lookbackMs must be a positive number, got ${lookbackMs}` };
  }
  const subqueryStepMs = options.subqueryStepMs ?? DEFAULT_SUBQUERY_STEP_MS;
  if (!Number.isSafeInteger(subqueryStepMs) || subqueryStepMs <= 0) {
    return {
      ok: false,
      reason: `subqueryStepMs must be a positive whole number, got ${subqueryStepMs}`,
    };
  }
  let top: SyntaxNode;
  try {
    const children = exprChildren(parsePromql(expr, { literals: false }).topNode);
    if (children.length !== 1) return { ok: false, reason: "not exactly one expression" };
    top = children[0]!;
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
  const margins = new Map<string, number>();
  try {
    const c = new Compiler(expr, lookbackMs, subqueryStepMs, margins);
    const typed = c.compile(top);
    if (typed.type !== "vector" && typed.type !== "scalar") {
      throw new Refusal(`a ${typed.type} result (at 0) is outside the local evaluator's subset`);
    }
    const root: Root = typed.type === "vector"
      ? { type: "vector", node: typed.node, subqueryStepMs }
      : { type: "scalar", node: typed.node, subqueryStepMs };
    const selectors = [...margins].map(([key, marginMs]) => ({
      key,
      marginMs,
      parts: c.parts.get(key)!,
    }));
    return { ok: true, query: { expr, selectors, root } };
  } catch (error) {
    if (error instanceof Refusal) return { ok: false, reason: error.message };
    throw error;
  }
}

class Compiler {
  /** Added to every margin: the reach of the enclosing subqueries. */
  base = 0;
  /** Each selector key's parts. */
  readonly parts = new Map<string, SelectorParts>();

  constructor(
    readonly expr: string,
    readonly lookbackMs: number,
    readonly subqueryStepMs: number,
    readonly margins: Map<string, number>,
  ) {}

  text(n: SyntaxNode): string {
    return this.expr.slice(n.from, n.to);
  }

  refuse(what: string, n: SyntaxNode): never {
    throw new Refusal(`${what} at ${n.from} is outside the local evaluator's subset`);
  }

  invalid(what: string, n: SyntaxNode): never {
    throw new Refusal(`${what} at ${n.from}: Prometheus would reject this query`);
  }

  need(key: string, marginMs: number): void {
    this.margins.set(key, Math.max(this.margins.get(key) ?? 0, this.base + marginMs));
  }

  compile(n: SyntaxNode): Typed {
    switch (n.name) {
      case "ParenExpr": {
        const inner = exprChildren(n);
        if (inner.length !== 1) this.refuse("parenthesised expression", n);
        return this.compile(inner[0]!);
      }
      case "NumberDurationLiteral":
      case "NumberLiteral":
        return { type: "scalar", node: { k: "num", value: this.number(n) } };
      case "StringLiteral":
        return { type: "string", value: this.string(n) };
      case "VectorSelector": {
        const { key } = this.selector(n);
        this.need(key, this.lookbackMs);
        return { type: "vector", node: { k: "sel", key, offsetMs: 0, text: this.text(n) } };
      }
      case "MatrixSelector":
        return this.matrix(n, 0);
      case "OffsetExpr":
        return this.offset(n);
      case "UnaryExpr":
        return this.unary(n);
      case "AggregateExpr":
        return this.aggregate(n);
      case "FunctionCall":
        return this.call(n);
      case "BinaryExpr":
        return this.binary(n);
      case "SubqueryExpr":
        return this.subquery(n, 0);
      case "StepInvariantExpr":
        return this.refuse("@ modifier", n);
      case "AnchoredExpr":
        return this.refuse("anchored modifier", n);
      case "SmoothedExpr":
        return this.refuse("smoothed modifier", n);
      default:
        return this.refuse(`expression ${n.name}`, n);
    }
  }

  number(n: SyntaxNode): number {
    const text = this.text(n);
    const value = goNumberLiteral(text);
    if (value === undefined) this.refuse(`number literal ${JSON.stringify(text)}`, n);
    return value;
  }

  string(n: SyntaxNode): string {
    const value = unquotePromql(this.text(n));
    if (value === null) this.invalid(`string literal ${this.text(n).slice(0, 40)}`, n);
    return value;
  }

  duration(n: SyntaxNode | null, parent: SyntaxNode, what: string): number {
    if (n === null) this.refuse(what, parent);
    const children = childNodes(n);
    if (
      children.length === 2 && children[0]!.name === "UnaryOp" && this.text(children[0]!) === "-"
    ) {
      this.refuse(`negative ${what}`, n);
    }
    if (children.length !== 1 || children[0]!.name !== "NumberDurationLiteralInDurationContext") {
      this.refuse(`${what} ${JSON.stringify(this.text(n))}`, n);
    }
    const literal = this.text(children[0]!);
    const ms = durationLiteralMs(literal);
    if (ms === null || !Number.isSafeInteger(ms)) {
      this.refuse(`${what} ${JSON.stringify(literal)}`, n);
    }
    return ms;
  }

  /** Canonical key of a vector selector. */
  selector(n: SyntaxNode): { key: string } {
    let name: string | null = null;
    const ident = n.getChild("Identifier");
    if (ident !== null) name = this.text(ident);
    const matchers: { name: string; op: string; value: string }[] = [];
    const list = n.getChild("LabelMatchers");
    if (list !== null) {
      for (let m = list.firstChild; m !== null; m = m.nextSibling) {
        if (m.name === "UnquotedLabelMatcher") {
          const ln = m.getChild("LabelName");
          const op = m.getChild("MatchOp");
          const lit = m.getChild("StringLiteral");
          if (ln === null || op === null || lit === null) this.refuse("label matcher", m);
          matchers.push({ name: this.text(ln), op: this.text(op), value: this.string(lit) });
        } else if (m.name === "QuotedLabelMatcher" || m.name === "QuotedLabelName") {
          this.refuse("quoted label name", m);
        }
      }
    }
    // The metric name as a matcher `{__name__="x"}` is the same selector as `x`.
    const nameMatchers = matchers.filter((m) => m.name === "__name__");
    if (name !== null && nameMatchers.length > 0) this.invalid("metric name set twice", n);
    if (name === null) {
      const eq = nameMatchers.filter((m) => m.op === "=" && LEGACY_METRIC.test(m.value));
      if (eq.length === 1) {
        name = eq[0]!.value;
        matchers.splice(matchers.indexOf(eq[0]!), 1);
      }
    }
    for (const m of matchers) {
      if (m.op !== "=" && m.op !== "!=" && m.op !== "=~" && m.op !== "!~") {
        this.refuse(`matcher operator ${m.op}`, n);
      }
    }
    if (name === null && !matchers.some((m) => !emptyMatch(m.op, m.value))) {
      this.invalid("vector selector without a non-empty matcher", n);
    }
    const { key, parts } = canonicalSelector(name, matchers as SelectorMatcher[]);
    this.parts.set(key, parts);
    return { key };
  }

  matrix(n: SyntaxNode, offsetMs: number): Typed {
    const vs = n.getChild("VectorSelector");
    if (vs === null) this.refuse("range selector", n);
    const rangeMs = this.duration(n.getChild("DurationExpr"), n, "range");
    if (rangeMs <= 0) this.invalid("range of zero or less", n);
    const { key } = this.selector(vs);
    this.need(key, rangeMs + offsetMs);
    return { type: "matrix", key, rangeMs, offsetMs, sub: null, text: this.text(n) };
  }

  /** `expr[range:step]` (step optional) with the offset of an enclosing `offset`. */
  subquery(n: SyntaxNode, offsetMs: number): Typed {
    const inner = exprChildren(n);
    if (inner.length !== 1) this.refuse("subquery", n);
    const durations = n.getChildren("DurationExpr");
    if (durations.length < 1 || durations.length > 2) this.refuse("subquery", n);
    const rangeMs = this.duration(durations[0]!, n, "subquery range");
    if (rangeMs <= 0) this.invalid("subquery range of zero or less", n);
    let stepMs: number | null = null;
    if (durations.length === 2) {
      stepMs = this.duration(durations[1]!, n, "subquery step");
      if (stepMs <= 0) this.refuse("subquery step of zero", n);
    }
    const saved = this.base;
    this.base = saved + rangeMs + offsetMs + (stepMs ?? this.subqueryStepMs);
    let arg: Typed;
    try {
      arg = this.compile(inner[0]!);
    } finally {
      this.base = saved;
    }
    if (arg.type !== "vector") this.invalid(`subquery of a ${arg.type}`, n);
    return {
      type: "matrix",
      key: "",
      rangeMs,
      offsetMs,
      sub: { expr: arg.node, stepMs, text: this.text(n) },
      text: this.text(n),
    };
  }

  offset(n: SyntaxNode): Typed {
    const inner = exprChildren(n);
    const offsetMs = this.duration(n.getChild("OffsetDurationExpr"), n, "offset");
    if (offsetMs < 0) this.refuse("negative offset", n);
    if (inner.length !== 1) this.refuse("offset", n);
    const target = inner[0]!;
    if (target.name === "MatrixSelector") return this.matrix(target, offsetMs);
    if (target.name === "SubqueryExpr") return this.subquery(target, offsetMs);
    if (target.name === "VectorSelector") {
      const { key } = this.selector(target);
      this.need(key, this.lookbackMs + offsetMs);
      return { type: "vector", node: { k: "sel", key, offsetMs, text: this.text(n) } };
    }
    return this.refuse("offset on anything but a selector", n);
  }

  unary(n: SyntaxNode): Typed {
    const opNode = n.getChild("UnaryOp");
    const inner = exprChildren(n);
    if (opNode === null || inner.length !== 1) this.refuse("unary expression", n);
    const op = this.text(opNode);
    const arg = this.compile(inner[0]!);
    if (op === "+") {
      if (arg.type === "vector" || arg.type === "scalar") return arg;
      return this.invalid(`unary + on a ${arg.type}`, n);
    }
    if (op !== "-") this.refuse(`unary ${op}`, n);
    // Go's parser folds `-<number>` into the literal.
    if (arg.type === "scalar") {
      if (arg.node.k === "num") {
        return { type: "scalar", node: { k: "num", value: -arg.node.value } };
      }
      return { type: "scalar", node: { k: "sneg", expr: arg.node } };
    }
    if (arg.type === "vector") return { type: "vector", node: { k: "neg", expr: arg.node } };
    return this.invalid(`unary - on a ${arg.type}`, n);
  }

  aggregate(n: SyntaxNode): Typed {
    const opNode = n.getChild("AggregateOp");
    const body = n.getChild("FunctionCallBody");
    if (opNode === null || body === null) this.refuse("aggregation", n);
    const op = this.text(opNode);
    if (!AGG_OPS.has(op)) this.refuse(`aggregation ${op}`, n);
    const args = exprChildren(body);
    if (args.length !== 1) this.invalid(`${op} with ${args.length} arguments`, n);
    const arg = this.compile(args[0]!);
    if (arg.type !== "vector") this.invalid(`${op} over a ${arg.type}`, n);
    let without = false;
    const grouping: string[] = [];
    const modifier = n.getChild("AggregateModifier");
    if (modifier !== null) {
      without = modifier.getChild("Without") !== null;
      const labels = modifier.getChild("GroupingLabels");
      if (labels !== null) grouping.push(...this.groupingLabels(labels));
    }
    const sorted = [...new Set(grouping)].sort(compareUtf8);
    return {
      type: "vector",
      node: { k: "agg", op: op as AggOp, without, grouping: sorted, expr: arg.node },
    };
  }

  groupingLabels(n: SyntaxNode): string[] {
    const out: string[] = [];
    for (let c = n.firstChild; c !== null; c = c.nextSibling) {
      if (c.name === "LabelName") out.push(this.text(c));
      else if (c.name !== "(" && c.name !== ")" && c.name !== ",") {
        this.refuse(`grouping label ${c.name}`, c);
      }
    }
    return out;
  }

  call(n: SyntaxNode): Typed {
    const ident = n.getChild("FunctionIdentifier");
    const body = n.getChild("FunctionCallBody");
    if (ident === null || body === null) this.refuse("function call", n);
    const name = this.text(ident);
    const argNodes = exprChildren(body);
    if (RANGE_FUNCTIONS.has(name)) {
      if (argNodes.length !== 1) this.invalid(`${name} with ${argNodes.length} arguments`, n);
      const arg = this.compile(argNodes[0]!);
      if (arg.type !== "matrix") this.invalid(`${name} of a ${arg.type}`, n);
      return {
        type: "vector",
        node: {
          k: "range",
          fn: name as RangeFn,
          key: arg.key,
          rangeMs: arg.rangeMs,
          offsetMs: arg.offsetMs,
          sub: arg.sub,
          text: this.text(n),
        },
      };
    }
    if (name === "clamp_max" || name === "clamp_min") {
      if (argNodes.length !== 2) this.invalid(`${name} with ${argNodes.length} arguments`, n);
      const v = this.compile(argNodes[0]!);
      const p = this.compile(argNodes[1]!);
      if (v.type !== "vector" || p.type !== "scalar") this.invalid(`${name} argument types`, n);
      return {
        type: "vector",
        node: { k: "clamp", max: name === "clamp_max", expr: v.node, param: p.node },
      };
    }
    if (name === "label_replace") {
      if (argNodes.length !== 5) this.invalid(`label_replace with ${argNodes.length} arguments`, n);
      const v = this.compile(argNodes[0]!);
      if (v.type !== "vector") this.invalid("label_replace of a non-vector", n);
      const strings: string[] = [];
      for (const a of argNodes.slice(1)) {
        const s = this.compile(a);
        if (s.type !== "string") this.invalid("label_replace with a non-string argument", a);
        strings.push(s.value);
      }
      const [dst, repl, src, regex] = strings as [string, string, string, string];
      const re2 = translateGoRegex(regex, false);
      const re3 = translateGoRegex(regex, true);
      for (const t of [re2, re3]) {
        if (!t.ok && !t.invalid) {
          this.refuse(`label_replace regex ${JSON.stringify(regex)} (${t.reason})`, n);
        }
      }
      return {
        type: "vector",
        node: {
          k: "label_replace",
          expr: v.node,
          dst,
          repl,
          src,
          regex,
          re2,
          re3,
          text: this.text(n).slice(0, 200),
        },
      };
    }
    return this.refuse(`function ${name}`, n);
  }

  binary(n: SyntaxNode): Typed {
    const sides = exprChildren(n);
    if (sides.length !== 2) this.refuse("binary expression", n);
    const opNode = sides[0]!.nextSibling;
    if (opNode === null) this.refuse("binary expression", n);
    if (n.getChild("BoolModifier") !== null) this.refuse("bool modifier", n);
    const arith = ARITH[opNode.name];
    const set = SETS[opNode.name];
    if (arith === undefined && set === undefined) {
      this.refuse(`operator ${this.text(opNode)}`, opNode);
    }
    const clause = n.getChild("MatchingModifierClause");
    let on = false;
    let labels: string[] = [];
    let card: Card = "one-to-one";
    let include: string[] = [];
    if (clause !== null) {
      on = clause.getChild("On") !== null;
      const groupLeft = clause.getChild("GroupLeft");
      const groupRight = clause.getChild("GroupRight");
      const lists = clause.getChildren("GroupingLabels");
      if (lists[0] !== undefined) labels = this.groupingLabels(lists[0]);
      if (groupLeft !== null || groupRight !== null) {
        if (set !== undefined) this.invalid(`group modifier on ${set}`, clause);
        card = groupLeft !== null ? "many-to-one" : "one-to-many";
        if (lists[1] !== undefined) include = this.groupingLabels(lists[1]);
        for (const l of include) {
          if (on && labels.includes(l)) this.invalid(`label ${l} in both on and group`, clause);
        }
      }
    }
    const lhs = this.compile(sides[0]!);
    const rhs = this.compile(sides[1]!);
    if (
      lhs.type === "string" || lhs.type === "matrix" || rhs.type === "string" ||
      rhs.type === "matrix"
    ) {
      return this.invalid(`binary ${this.text(opNode)} on a ${lhs.type} and a ${rhs.type}`, n);
    }
    if (set !== undefined) {
      if (lhs.type !== "vector" || rhs.type !== "vector") {
        this.invalid(`set operator ${set} on a scalar`, n);
      }
      return {
        type: "vector",
        node: { k: "set", op: set, matching: { on, labels }, lhs: lhs.node, rhs: rhs.node },
      };
    }
    const op = arith!;
    if (lhs.type === "vector" && rhs.type === "vector") {
      return {
        type: "vector",
        node: {
          k: "vv",
          op,
          card,
          matching: { on, labels },
          include: [...new Set(include)],
          lhs: lhs.node,
          rhs: rhs.node,
          text: this.text(n).slice(0, 200),
        },
      };
    }
    if (clause !== null) this.invalid("vector matching with a scalar operand", clause);
    if (lhs.type === "vector" && rhs.type === "scalar") {
      return {
        type: "vector",
        node: { k: "vs", op, vec: lhs.node, scalar: rhs.node, scalarLeft: false },
      };
    }
    if (lhs.type === "scalar" && rhs.type === "vector") {
      return {
        type: "vector",
        node: { k: "vs", op, vec: rhs.node, scalar: lhs.node, scalarLeft: true },
      };
    }
    const l = lhs as { type: "scalar"; node: SNode };
    const r = rhs as { type: "scalar"; node: SNode };
    return { type: "scalar", node: { k: "ss", op, lhs: l.node, rhs: r.node } };
  }
}

function emptyMatch(op: string, value: string): boolean {
  switch (op) {
    case "=":
      return value === "";
    case "!=":
      return value !== "";
    case "=~": {
      const t = translateGoRegex(value, true);
      return t.ok ? t.re.test("") : false;
    }
    case "!~": {
      const t = translateGoRegex(value, true);
      return t.ok ? !t.re.test("") : false;
    }
  }
  return false;
}

/** A PromQL number literal as Go's parser reads it (`strconv.ParseInt(s, 0, 64)`, else `ParseFloat`). */
function goNumberLiteral(text: string): number | undefined {
  const lower = text.toLowerCase();
  if (/^(\+|-)?inf$/.test(lower) || /^(\+|-)?infinity$/.test(lower)) {
    return lower.startsWith("-") ? -Infinity : Infinity;
  }
  if (lower === "nan") return NaN;
  if (/^0x[0-9a-f]+$/.test(lower)) {
    const n = BigInt(lower);
    return n < 2n ** 63n ? Number(n) : undefined;
  }
  if (/^0[0-7]+$/.test(text)) {
    const n = BigInt("0o" + text.slice(1));
    return n < 2n ** 63n ? Number(n) : undefined;
  }
  if (/^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(text)) return Number(text);
  return undefined;
}

// ---------------------------------------------------------------------------
// Go RE2 → JavaScript RegExp

/** A Go regexp translated to an equivalent fully anchored JS RegExp, or why not. */
type TranslatedRegex =
  | { readonly ok: true; readonly re: RegExp; readonly names: readonly (string | undefined)[] }
  | { readonly ok: false; readonly invalid: boolean; readonly reason: string };

const PUNCT = /^[!-/:-@[-`{-~]$/;

function hexEscape(code: number): string {
  return `\\u{${code.toString(16)}}`;
}

/**
 * Translates the Go (RE2, Perl flags) regexp `src`, anchored as `^(?:src)$`
 * (or `^(?s:src)$` with `dotAll`), to a JS RegExp with the `u` flag that
 * matches the same strings with the same capture groups. Constructs outside
 * a conservative subset (flags, Unicode classes, POSIX classes, `\Q…\E`,
 * octal escapes) are refused; syntax errors Go would report are `invalid`.
 */
function translateGoRegex(src: string, dotAll: boolean): TranslatedRegex {
  const cps = Array.from(src);
  let i = 0;
  let out = "";
  const names: (string | undefined)[] = [undefined];
  let depth = 0;
  let atom = false; // whether the last emitted item can take a repetition
  const unsupported = (reason: string): TranslatedRegex => ({ ok: false, invalid: false, reason });
  const invalid = (reason: string): TranslatedRegex => ({ ok: false, invalid: true, reason });
  const perlClass = (c: string): string | null => {
    switch (c) {
      case "d":
        return "[0-9]";
      case "D":
        return "[^0-9]";
      case "w":
        return "[0-9A-Za-z_]";
      case "W":
        return "[^0-9A-Za-z_]";
      case "s":
        return "[\\t\\n\\f\\r ]";
      case "S":
        return "[^\\t\\n\\f\\r ]";
    }
    return null;
  };
  const simpleEscape: Readonly<Record<string, number>> = {
    a: 7,
    f: 12,
    n: 10,
    r: 13,
    t: 9,
    v: 11,
  };
  /** Reads an escape (after the backslash) that stands for one code point; null if not one. */
  const escapedChar = (): number | null | "invalid" => {
    const c = cps[i];
    if (c === undefined) return "invalid";
    if (PUNCT.test(c)) {
      i++;
      return c.codePointAt(0)!;
    }
    if (simpleEscape[c] !== undefined) {
      i++;
      return simpleEscape[c]!;
    }
    if (c === "x") {
      i++;
      if (cps[i] === "{") {
        let j = i + 1;
        let hex = "";
        while (j < cps.length && cps[j] !== "}") hex += cps[j++];
        if (j >= cps.length || !/^[0-9a-fA-F]{1,8}$/.test(hex)) return "invalid";
        const v = parseInt(hex, 16);
        if (v > 0x10ffff) return "invalid";
        i = j + 1;
        return v;
      }
      const hex = (cps[i] ?? "") + (cps[i + 1] ?? "");
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return "invalid";
      i += 2;
      return parseInt(hex, 16);
    }
    return null;
  };
  while (i < cps.length) {
    const c = cps[i]!;
    if (c === "\\") {
      i++;
      const e = cps[i];
      if (e === undefined) return invalid("trailing backslash");
      const pc = perlClass(e);
      if (pc !== null) {
        i++;
        out += pc;
        atom = true;
        continue;
      }
      if (e === "A" || e === "z") {
        i++;
        out += e === "A" ? "^" : "$";
        atom = false;
        continue;
      }
      if (e === "b" || e === "B") {
        i++;
        out += "\\" + e;
        atom = false;
        continue;
      }
      const ch = escapedChar();
      if (ch === "invalid") return invalid(`bad escape \\${e}`);
      if (ch === null) {
        if ("pPQEC0123456789".includes(e)) return unsupported(`escape \\${e}`);
        return invalid(`invalid escape \\${e}`);
      }
      out += hexEscape(ch);
      atom = true;
      continue;
    }
    if (c === "[") {
      i++;
      let cls = "[";
      if (cps[i] === "^") {
        cls += "^";
        i++;
      }
      let first = true;
      let closed = false;
      while (i < cps.length) {
        const d = cps[i]!;
        if (d === "]" && !first) {
          i++;
          closed = true;
          break;
        }
        first = false;
        if (d === "[" && cps[i + 1] === ":") return unsupported("POSIX class");
        // One class item: a character (maybe a range) or a Perl class.
        let lo: number;
        if (d === "\\") {
          i++;
          const e = cps[i];
          if (e === undefined) return invalid("trailing backslash");
          if (e === "d" || e === "w") {
            i++;
            cls += e === "d" ? "0-9" : "0-9A-Za-z_";
            continue;
          }
          if (e === "s") {
            i++;
            cls += "\\t\\n\\f\\r ";
            continue;
          }
          const ch = escapedChar();
          if (ch === "invalid") return invalid(`bad escape \\${e}`);
          if (ch === null) {
            if ("pPQEDWS0123456789".includes(e)) return unsupported(`escape \\${e} in a class`);
            return invalid(`invalid escape \\${e}`);
          }
          lo = ch;
        } else {
          lo = d.codePointAt(0)!;
          i++;
        }
        if (cps[i] === "-" && cps[i + 1] !== undefined && cps[i + 1] !== "]") {
          i++;
          let hi: number;
          const h = cps[i]!;
          if (h === "\\") {
            i++;
            const ch = escapedChar();
            if (ch === "invalid" || ch === null) return unsupported("escape as range end");
            hi = ch;
          } else if (h === "[") {
            return unsupported("[ as range end");
          } else {
            hi = h.codePointAt(0)!;
            i++;
          }
          if (hi < lo) return invalid("invalid character class range");
          cls += `${hexEscape(lo)}-${hexEscape(hi)}`;
        } else {
          cls += hexEscape(lo);
        }
      }
      if (!closed) return invalid("missing closing ]");
      out += cls + "]";
      atom = true;
      continue;
    }
    if (c === "(") {
      i++;
      if (cps[i] === "?") {
        if (cps[i + 1] === ":") {
          i += 2;
          out += "(?:";
        } else if (cps[i + 1] === "P" && cps[i + 2] === "<" || cps[i + 1] === "<") {
          i += cps[i + 1] === "P" ? 3 : 2;
          let name = "";
          while (i < cps.length && cps[i] !== ">") name += cps[i++];
          if (i >= cps.length || !/^[A-Za-z0-9_]+$/.test(name)) return invalid("bad group name");
          if (names.includes(name)) return invalid("duplicate group name");
          i++;
          names.push(name);
          out += "(";
        } else {
          return unsupported("flags or lookaround group");
        }
      } else {
        names.push(undefined);
        out += "(";
      }
      depth++;
      atom = false;
      continue;
    }
    if (c === ")") {
      if (depth === 0) return invalid("unexpected )");
      depth--;
      i++;
      out += ")";
      atom = true;
      continue;
    }
    if (c === "|") {
      i++;
      out += "|";
      atom = false;
      continue;
    }
    if (c === "*" || c === "+" || c === "?") {
      if (!atom) return invalid("missing argument to repetition operator");
      i++;
      out += c;
      if (cps[i] === "?") {
        i++;
        out += "?";
      }
      if (cps[i] === "*" || cps[i] === "+" || cps[i] === "?") {
        return invalid("invalid nested repetition");
      }
      atom = false;
      continue;
    }
    if (c === "{") {
      let j = i + 1;
      let body = "";
      while (j < cps.length && cps[j] !== "}") body += cps[j++];
      const m = j < cps.length ? /^([0-9]+)(,([0-9]*))?$/.exec(body) : null;
      if (m !== null) {
        if (!atom) return invalid("missing argument to repetition operator");
        const min = Number(m[1]);
        const max = m[3] === undefined ? min : m[3] === "" ? -1 : Number(m[3]);
        if (min > 1000 || max > 1000 || (max >= 0 && max < min)) return invalid("bad repetition");
        i = j + 1;
        out += `{${body}}`;
        if (cps[i] === "?") {
          i++;
          out += "?";
        }
        atom = false;
        continue;
      }
      i++;
      out += hexEscape(0x7b);
      atom = true;
      continue;
    }
    if (c === "^" || c === "$") {
      i++;
      out += c;
      atom = false;
      continue;
    }
    if (c === ".") {
      i++;
      out += dotAll ? "[\\s\\S]" : "[^\\n]";
      atom = true;
      continue;
    }
    i++;
    out += /^[A-Za-z0-9_]$/.test(c) ? c : hexEscape(c.codePointAt(0)!);
    atom = true;
  }
  if (depth !== 0) return invalid("missing closing )");
  try {
    return { ok: true, re: new RegExp(`^(?:${out})$`, "u"), names };
  } catch (error) {
    return unsupported(`not translatable (${error instanceof Error ? error.message : error})`);
  }
}

/** Go's `Regexp.ExpandString` of `template` for a match `m` (as returned by `RegExp.exec`). */
function goExpand(
  template: string,
  m: RegExpExecArray,
  names: readonly (string | undefined)[],
): string {
  let out = "";
  let rest = template;
  for (;;) {
    const at = rest.indexOf("$");
    if (at < 0) break;
    out += rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (rest.startsWith("$")) {
      out += "$";
      rest = rest.slice(1);
      continue;
    }
    const ex = goExtract(rest);
    if (ex === null) {
      out += "$";
      continue;
    }
    rest = ex.rest;
    if (ex.num >= 0) {
      if (ex.num < m.length) out += m[ex.num] ?? "";
    } else {
      const index = names.indexOf(ex.name);
      if (index > 0 && index < m.length) out += m[index] ?? "";
    }
  }
  return out + rest;
}

function goExtract(str: string): { name: string; num: number; rest: string } | null {
  if (str === "") return null;
  let brace = false;
  if (str[0] === "{") {
    brace = true;
    str = str.slice(1);
  }
  let i = 0;
  const cps = Array.from(str);
  let name = "";
  for (; i < cps.length; i++) {
    if (!/^[\p{L}\p{Nd}_]$/u.test(cps[i]!)) break;
    name += cps[i];
  }
  if (i === 0) return null;
  let restIndex = name.length;
  if (brace) {
    if (str[restIndex] !== "}") return null;
    restIndex++;
  }
  let num = 0;
  for (let k = 0; k < name.length; k++) {
    const c = name.charCodeAt(k);
    if (c < 48 || c > 57 || num >= 1e8) {
      num = -1;
      break;
    }
    num = num * 10 + c - 48;
  }
  if (name[0] === "0" && name.length > 1) num = -1;
  return { name, num, rest: str.slice(restIndex) };
}

// ---------------------------------------------------------------------------
// Label sets

function lsetFromLabels(metric: Labels): LSet {
  const names = Object.keys(metric).filter((n) => metric[n] !== "").sort(compareUtf8);
  return new LSet(names, names.map((n) => metric[n]!));
}

function lsetGet(ls: LSet, name: string): string {
  const i = ls.names.indexOf(name);
  return i < 0 ? "" : ls.values[i]!;
}

/** Builder-like edit: drop `del` names, keep only `keep` (if set), then set/delete `set` entries. */
function lsetEdit(
  ls: LSet,
  del: ReadonlySet<string> | null,
  keep: ReadonlySet<string> | null,
  set: ReadonlyMap<string, string> | null,
): LSet {
  const names: string[] = [];
  const values: string[] = [];
  for (let i = 0; i < ls.names.length; i++) {
    const n = ls.names[i]!;
    if (del !== null && del.has(n)) continue;
    if (keep !== null && !keep.has(n)) continue;
    if (set !== null && set.has(n)) continue;
    names.push(n);
    values.push(ls.values[i]!);
  }
  if (set !== null && set.size > 0) {
    for (const [n, v] of set) {
      if (v === "") continue;
      let at = names.length;
      while (at > 0 && compareUtf8(names[at - 1]!, n) > 0) at--;
      names.splice(at, 0, n);
      values.splice(at, 0, v);
    }
  }
  return new LSet(names, values);
}

/** Go's `labels.Compare`. */
function compareLSets(a: LSet, b: LSet): number {
  const n = Math.min(a.names.length, b.names.length);
  for (let i = 0; i < n; i++) {
    const c = compareUtf8(a.names[i]!, b.names[i]!);
    if (c !== 0) return c;
    const d = compareUtf8(a.values[i]!, b.values[i]!);
    if (d !== 0) return d;
  }
  return a.names.length - b.names.length;
}

function lsetString(ls: LSet): string {
  return "{" + ls.names.map((n, i) => `${n}=${JSON.stringify(ls.values[i])}`).join(", ") + "}";
}

function lsetToLabels(ls: LSet): Labels {
  const out: Record<string, string> = {};
  for (let i = 0; i < ls.names.length; i++) out[ls.names[i]!] = ls.values[i]!;
  return out;
}

/** Join signature: the labels `on`, or all but `ignoring` and the metadata labels. */
function signature(ls: LSet, matching: Matching, meta: ReadonlySet<string>): string {
  let key = "";
  for (let i = 0; i < ls.names.length; i++) {
    const n = ls.names[i]!;
    const listed = matching.labels.includes(n);
    if (matching.on ? !listed : listed || meta.has(n)) continue;
    key += keyPart(n, ls.values[i]!);
  }
  return key;
}

// ---------------------------------------------------------------------------
// Evaluation

interface VSeries {
  readonly ls: LSet;
  readonly v: Float64Array;
  readonly p: Uint8Array;
}

interface Ctx {
  readonly n: number;
  /** Step-length arrays for result series, cut from shared slabs. */
  readonly slabs: StepArrays;
  /** Where the slabs come from. */
  readonly pool: SlabPool;
  readonly ts: Float64Array;
  readonly lookbackMs: number;
  readonly v3: boolean;
  readonly meta: ReadonlySet<string>;
  readonly raw: (key: string) => readonly RawSeries[];
  readonly rawCache: Map<string, RawPrepared[]>;
  readonly expr: string;
  /** Default subquery resolution. */
  readonly subqueryStepMs: number;
  /** Subquery results on this grid, by subquery text, range, offset and step (`or` branches repeat them). */
  readonly subCache: Map<string, RawPrepared[]>;
  /** Scratch for the counter resets of the series a range function is reading. */
  readonly resets: number[];
}

/**
 * A raw series as the evaluator reads it: its label set, with its samples.
 * One object per raw series (shared by every selector key that lists it): a
 * raw store's series are such label sets themselves; others are wrapped once
 * ({@linkcode WrappedRaw}).
 */
type RawPrepared = LSet & { readonly t: Float64Array; readonly v: Float64Array };

/** A raw series given as a plain {@linkcode RawSeries}, as a label set with its samples. */
class WrappedRaw extends LSet {
  constructor(
    names: readonly string[],
    values: readonly string[],
    readonly t: Float64Array,
    readonly v: Float64Array,
  ) {
    super(names, values);
  }
}

/**
 * Bytes of one slab of {@linkcode StepArrays} and of a {@linkcode SlabPool}
 * buffer: large enough that the allocator maps each slab on its own, so a
 * released slab goes back to the system at once, and an untouched tail of
 * one costs no memory.
 */
const SLAB_BYTES = 1 << 22;

/** A buffer of a {@linkcode SlabPool}; `dirty` when it was used before and must be zeroed where it is handed out again. */
interface Slab {
  readonly buffer: ArrayBuffer;
  readonly dirty: boolean;
}

/**
 * Buffers for evaluation results that a caller recycles between evaluations
 * (`EvalOptions.pool`): an evaluation draws its result and intermediate
 * arrays from the pool, and after the caller has read the results and let go
 * of them, {@linkcode SlabPool.reset} makes every buffer reusable, and
 * {@linkcode SlabPool.release} frees them all at once. Without a pool, each
 * query's arrays are garbage for the collector, and a day's worth of them
 * (hundreds of MB of external memory) is freed only at full collections.
 *
 * @example
 * ```ts
 * import { compileLocal, evaluateRange, SlabPool } from "./local_eval.ts";
 * const c = compileLocal("sum(x)", { lookbackMs: 300_000 });
 * if (!c.ok) throw new Error(c.reason);
 * const raw = [{ metric: { __name__: "x" }, t: Float64Array.of(0), v: Float64Array.of(2) }];
 * const pool = new SlabPool();
 * for (const endMs of [0, 60_000]) {
 *   const out = evaluateRange(c.query, () => raw, {
 *     startMs: 0, endMs, stepMs: 60_000, lookbackMs: 300_000, semantics: "prometheus3", pool,
 *   });
 *   console.log(out[0]!.values); // read (or copy) the results first…
 *   pool.reset(); // …then recycle: the arrays of `out` are overwritten by the next evaluation
 * }
 * pool.release(); // done: the memory goes back now, not at the next full collection
 * ```
 */
export class SlabPool {
  /** Bytes of each buffer (default 4 MiB; tests use small ones to cross slabs often). */
  readonly slabBytes: number;
  #free: ArrayBuffer[] = [];
  #used: ArrayBuffer[] = [];

  constructor(slabBytes: number = SLAB_BYTES) {
    if (!Number.isSafeInteger(slabBytes) || slabBytes < 8) {
      throw new RangeError(`Bad slab size ${slabBytes}`);
    }
    this.slabBytes = slabBytes;
  }

  /** A buffer of {@linkcode SlabPool.slabBytes} bytes, in use until the next reset. */
  take(): Slab {
    const reused = this.#free.pop();
    const buffer = reused ?? new ArrayBuffer(this.slabBytes);
    this.#used.push(buffer);
    return { buffer, dirty: reused !== undefined };
  }

  /** Every buffer handed out since the last reset is free again: its views must not be used any more. */
  reset(): void {
    for (const b of this.#used) this.#free.push(b);
    this.#used = [];
  }

  /**
   * Frees every buffer now (each is detached: views into it become empty).
   * The pool stays usable and starts again from nothing.
   */
  release(): void {
    for (const b of this.#used) b.transfer(0);
    for (const b of this.#free) b.transfer(0);
    this.#used = [];
    this.#free = [];
  }

  /** Bytes held, in use and free. */
  get bytes(): number {
    return (this.#free.length + this.#used.length) * this.slabBytes;
  }
}

/**
 * Zeroed step-length arrays, handed out as views of shared slabs (buffers
 * of a {@linkcode SlabPool}): a result series costs two small view objects
 * instead of two `ArrayBuffer`s of its own. Thousands of separate small
 * buffers per query node each count as external memory, and their churn
 * drives V8 into frequent full collections. A view is handed out again only
 * after it was given back ({@linkcode StepArrays.reuse}), so writes never
 * overlap.
 *
 * @example Keep copies of results while the evaluation's pool is recycled
 * ```ts
 * import { SlabPool, StepArrays } from "./local_eval.ts";
 * const keep = new StepArrays(48, new SlabPool()); // a pool that is never reset
 * const copy = keep.values();
 * copy.set(new Float64Array(48).fill(1));
 * console.log(copy.length, keep.present().length); // 48 48
 * ```
 */
export class StepArrays {
  readonly #n: number;
  readonly #pool: SlabPool;
  /** Series per slab; 0 when one series' values do not fit into a slab. */
  readonly #per: number;
  #values: Slab | null = null;
  #valuesAt = 0;
  #present: Slab | null = null;
  #presentAt = 0;
  /** Arrays given back by {@linkcode StepArrays.reuse}, handed out again before new ones are cut. */
  #freeValues: Float64Array[] = [];
  #freePresent: Uint8Array[] = [];

  constructor(n: number, pool: SlabPool) {
    this.#n = n;
    this.#pool = pool;
    this.#per = Math.floor(pool.slabBytes / 8 / Math.max(1, n));
  }

  /** A zeroed `Float64Array` of `n` values. */
  values(): Float64Array {
    const n = this.#n;
    const again = this.#freeValues.pop();
    if (again !== undefined) return again.fill(0);
    if (this.#per === 0) return new Float64Array(n);
    if (this.#values === null || this.#valuesAt === this.#per) {
      this.#values = this.#pool.take();
      this.#valuesAt = 0;
    }
    const out = new Float64Array(this.#values.buffer, this.#valuesAt++ * n * 8, n);
    if (this.#values.dirty) out.fill(0);
    return out;
  }

  /** A zeroed `Uint8Array` of `n` presence flags. */
  present(): Uint8Array {
    const n = this.#n;
    const again = this.#freePresent.pop();
    if (again !== undefined) return again.fill(0);
    if (this.#per === 0) return new Uint8Array(n);
    if (this.#present === null || this.#presentAt === this.#per * 8) {
      this.#present = this.#pool.take();
      this.#presentAt = 0;
    }
    const out = new Uint8Array(this.#present.buffer, this.#presentAt++ * n, n);
    if (this.#present.dirty) out.fill(0);
    return out;
  }

  /**
   * Gives arrays that nothing reads any more back, to be handed out again by
   * {@linkcode StepArrays.values} and {@linkcode StepArrays.present} (zeroed):
   * an evaluation then holds the arrays of the nodes it is working on, not of
   * every node it has evaluated. Each array is given back once, however often
   * it is listed; arrays of another length are ignored.
   */
  reuse(values: Iterable<Float64Array>, present: Iterable<Uint8Array>): void {
    const n = this.#n;
    for (const v of new Set(values)) if (v.length === n) this.#freeValues.push(v);
    for (const p of new Set(present)) if (p.length === n) this.#freePresent.push(p);
  }
}

const META2: ReadonlySet<string> = new Set(["__name__"]);
const META3: ReadonlySet<string> = new Set(["__name__", "__type__", "__unit__"]);

function fail(ctx: Ctx, message: string): never {
  throw new BridgeError(
    "local_eval",
    `${message} (query ${JSON.stringify(ctx.expr.slice(0, 300))})`,
  );
}

/**
 * Evaluates a compiled query like Prometheus's `query_range`: steps `start`,
 * `start+step`, … ≤ `end`; series sorted by Go's `labels.Compare`.
 *
 * @param query From {@linkcode compileLocal}.
 * @param raw The raw series of a {@linkcode SelectorNeed} key (already restricted by its matchers).
 * @param options The step grid, lookback delta and engine semantics.
 * @returns The result series, each with values and presence over all steps.
 * @throws {BridgeError} Code `local_eval` where Prometheus would fail the query.
 *
 * @example
 * ```ts
 * import { compileLocal, evaluateRange } from "./local_eval.ts";
 * const c = compileLocal("sum(x)", { lookbackMs: 300_000 });
 * if (!c.ok) throw new Error(c.reason);
 * const raw = [{ metric: { __name__: "x", a: "1" }, t: Float64Array.of(0), v: Float64Array.of(2) }];
 * const out = evaluateRange(c.query, () => raw, {
 *   startMs: 0, endMs: 60_000, stepMs: 60_000, lookbackMs: 300_000, semantics: "prometheus3",
 * });
 * out[0]!.values; // Float64Array [2, 2]
 * ```
 */
export function evaluateRange(
  query: LocalQuery,
  raw: (key: string) => readonly RawSeries[],
  options: EvalOptions,
): EvaluatedSeries[] {
  const { startMs, endMs, stepMs, lookbackMs, semantics } = options;
  if (![startMs, endMs, stepMs].every(Number.isSafeInteger) || stepMs <= 0 || endMs < startMs) {
    throw new RangeError(`Bad step grid start=${startMs} end=${endMs} step=${stepMs}`);
  }
  if (!Number.isSafeInteger(lookbackMs) || lookbackMs <= 0) {
    throw new RangeError(`Bad lookbackMs ${lookbackMs}`);
  }
  if (semantics !== "prometheus2" && semantics !== "prometheus3") {
    throw new RangeError(`Unknown semantics ${JSON.stringify(semantics)}`);
  }
  const root = query.root as Root;
  const subqueryStepMs = options.subqueryStepMs ?? root.subqueryStepMs;
  if (!Number.isSafeInteger(subqueryStepMs) || subqueryStepMs <= 0) {
    throw new RangeError(`Bad subqueryStepMs ${subqueryStepMs}`);
  }
  const n = Math.floor((endMs - startMs) / stepMs) + 1;
  const ts = new Float64Array(n);
  for (let s = 0; s < n; s++) ts[s] = startMs + s * stepMs;
  const v3 = semantics === "prometheus3";
  const pool = options.pool ?? new SlabPool();
  const ctx: Ctx = {
    n,
    slabs: new StepArrays(n, pool),
    pool,
    ts,
    lookbackMs,
    v3,
    meta: v3 ? META3 : META2,
    raw,
    rawCache: new Map(),
    expr: query.expr,
    subqueryStepMs,
    subCache: new Map(),
    resets: [],
  };
  if (root.type === "scalar") {
    const values = evalScalar(root.node, ctx);
    return [{ metric: {}, values, present: new Uint8Array(n).fill(1) }];
  }
  const series = evalVector(root.node, ctx);
  series.sort((a, b) => compareLSets(a.ls, b.ls));
  return series.map((s) => ({ metric: lsetToLabels(s.ls), values: s.v, present: s.p }));
}

function evalScalar(node: SNode, ctx: Ctx): Float64Array {
  switch (node.k) {
    case "num":
      return new Float64Array(ctx.n).fill(node.value);
    case "sneg": {
      const a = evalScalar(node.expr, ctx);
      for (let s = 0; s < a.length; s++) a[s] = -a[s]!;
      return a;
    }
    case "ss": {
      const a = evalScalar(node.lhs, ctx);
      const b = evalScalar(node.rhs, ctx);
      for (let s = 0; s < a.length; s++) a[s] = arith(node.op, a[s]!, b[s]!);
      return a;
    }
  }
}

function arith(op: ArithOp, a: number, b: number): number {
  switch (op) {
    case "+":
      return a + b;
    case "-":
      return a - b;
    case "*":
      return a * b;
    case "/":
      return a / b;
  }
}

function evalVector(node: VNode, ctx: Ctx): VSeries[] {
  switch (node.k) {
    case "sel":
      return evalSelector(node, ctx);
    case "range":
      return evalRangeFn(node, ctx);
    case "agg":
      return evalAggregation(node, ctx);
    case "vv":
      return evalVectorBinop(node, ctx);
    case "set":
      return evalSetOp(node, ctx);
    case "vs":
      return evalVectorScalar(node, ctx);
    case "neg":
      return evalNeg(node, ctx);
    case "label_replace":
      return evalLabelReplace(node, ctx);
    case "clamp":
      return evalClamp(node, ctx);
  }
}

/** Prepared raw series, per array returned by the raw lookup (kept while the caller keeps the array). */
const PREPARED = new WeakMap<readonly RawSeries[], RawPrepared[]>();
/** Raw series as the evaluator reads them, label sets parsed. */
const RAW_PREPARED = new WeakMap<RawSeries, RawPrepared>();

/** The raw series of a key, label sets parsed, sorted in storage (label) order, duplicates merged. */
function rawSeries(ctx: Ctx, key: string): RawPrepared[] {
  const cached = ctx.rawCache.get(key);
  if (cached !== undefined) return cached;
  const list = ctx.raw(key);
  const prepared = PREPARED.get(list);
  if (prepared !== undefined) {
    ctx.rawCache.set(key, prepared);
    return prepared;
  }
  const items: RawPrepared[] = [];
  for (const r of list) {
    if (r.t.length !== r.v.length) {
      throw new RangeError(
        `Raw series of ${key} has ${r.t.length} timestamps but ${r.v.length} values`,
      );
    }
    let item: RawPrepared | undefined = r instanceof LSet ? r as RawPrepared : RAW_PREPARED.get(r);
    if (item === undefined) {
      const ls = r.names !== undefined && r.values !== undefined
        ? { names: r.names, values: r.values }
        : lsetFromLabels(r.metric);
      item = new WrappedRaw(ls.names, ls.values, r.t, r.v);
      RAW_PREPARED.set(r, item);
    }
    items.push(item);
  }
  let sorted = true;
  for (let i = 1; i < items.length && sorted; i++) {
    sorted = compareLSets(items[i - 1]!, items[i]!) < 0;
  }
  let out = items;
  if (!sorted) {
    // A stable sort: series with equal label sets end up side by side, in the order given.
    items.sort(compareLSets);
    out = [];
    for (const item of items) {
      const prior = out[out.length - 1];
      if (prior === undefined || compareLSets(prior, item) !== 0) {
        out.push(item);
        continue;
      }
      // Storage merges series with equal labels; a duplicated timestamp keeps the first sample.
      const pts: [number, number][] = [];
      for (let i = 0; i < prior.t.length; i++) pts.push([prior.t[i]!, prior.v[i]!]);
      for (let i = 0; i < item.t.length; i++) pts.push([item.t[i]!, item.v[i]!]);
      pts.sort((a, b) => a[0] - b[0]);
      const t: number[] = [];
      const v: number[] = [];
      for (const [pt, pv] of pts) {
        if (t.length > 0 && t[t.length - 1] === pt) continue;
        t.push(pt);
        v.push(pv);
      }
      out[out.length - 1] = new WrappedRaw(
        prior.names,
        prior.values,
        Float64Array.from(t),
        Float64Array.from(v),
      );
    }
  }
  PREPARED.set(list, out);
  ctx.rawCache.set(key, out);
  return out;
}

/**
 * A series of a node's result handed to a consumer one at a time: `v` and `p`
 * may be overwritten once the consumer returns.
 */
type EmitSeries = (ls: LSet, v: Float64Array, p: Uint8Array) => void;

/** Where a series' arrays come from: fresh ones to keep, or one scratch pair for streaming. */
type TakeArrays = () => { v: Float64Array; p: Uint8Array };

/** Fresh arrays of the evaluation's slabs, for series that are kept. */
function keepArrays(ctx: Ctx): TakeArrays {
  return () => ({ v: ctx.slabs.values(), p: ctx.slabs.present() });
}

/** One pair of arrays handed out again for every series (presence zeroed; values are read only where present). */
function scratchArrays(ctx: Ctx): TakeArrays {
  let pair: { v: Float64Array; p: Uint8Array } | null = null;
  return () => {
    if (pair === null) pair = { v: ctx.slabs.values(), p: ctx.slabs.present() };
    else pair.p.fill(0);
    return pair;
  };
}

function evalSelector(node: Extract<VNode, { k: "sel" }>, ctx: Ctx): VSeries[] {
  const out: VSeries[] = [];
  eachSelected(node, ctx, keepArrays(ctx), (ls, v, p) => out.push({ ls, v, p }));
  return out;
}

/** The series of an instant selector, one at a time, in raw (label) order; series without a point are left out. */
function eachSelected(
  node: Extract<VNode, { k: "sel" }>,
  ctx: Ctx,
  take: TakeArrays,
  emit: EmitSeries,
): void {
  const { n, ts, lookbackMs, v3 } = ctx;
  const offsetMs = node.offsetMs;
  // 2.x: excluded if t < ref - lookback; 3.x: excluded if t <= ref - lookback (whole ms).
  const reach = v3 ? lookbackMs - 1 : lookbackMs;
  for (const r of rawSeries(ctx, node.key)) {
    const { t, v } = r;
    const len = t.length;
    let values: Float64Array | null = null;
    let present: Uint8Array | null = null;
    let j = 0;
    for (let s = 0; s < n; s++) {
      const ref = ts[s]! - offsetMs;
      while (j < len && t[j]! <= ref) j++;
      if (j === 0 || t[j - 1]! < ref - reach) continue;
      if (values === null) ({ v: values, p: present } = take());
      values[s] = v[j - 1]!;
      present![s] = 1;
    }
    if (values !== null) emit(r, values, present!);
  }
}

/** Go's `time.Duration.Seconds()` of a whole number of milliseconds. */
function durationSeconds(ms: number): number {
  const sec = Math.trunc(ms / 1000);
  const nsec = (ms - sec * 1000) * 1e6;
  return sec + nsec / 1e9;
}

/**
 * The compensation after adding `inc` to `sum` (giving `t`) in Prometheus
 * 2.x's Kahan-Neumaier summation (`kahanSumInc`). The new sum is `t` itself;
 * callers keep both in locals (a function returning the pair would allocate
 * an array per sample in the hottest loops).
 */
function kahanC2(inc: number, sum: number, t: number, c: number): number {
  return Math.abs(sum) >= Math.abs(inc) ? c + ((sum - t) + inc) : c + ((inc - t) + sum);
}

/** As {@linkcode kahanC2}, with 3.x's reset of the compensation when the sum overflows. */
function kahanC3(inc: number, sum: number, t: number, c: number): number {
  return t > Number.MAX_VALUE || t < -Number.MAX_VALUE ? 0 : kahanC2(inc, sum, t, c);
}

function isInf(x: number): boolean {
  return x === Infinity || x === -Infinity;
}

function evalRangeFn(node: Extract<VNode, { k: "range" }>, ctx: Ctx): VSeries[] {
  const out: VSeries[] = [];
  eachRangeResult(node, ctx, keepArrays(ctx), (ls, v, p) => out.push({ ls, v, p }));
  // Distinct label sets need no check (and no key per series).
  if (rangeResultsDistinct(node, ctx)) return out;
  // 2.x: any two result series with one label set fail the query; 3.x merges them unless they overlap.
  return ctx.v3 ? mergePerStep(out, ctx, node.text) : checkWhole(out, ctx, node.text);
}

/**
 * Whether a range function's result series have distinct label sets without
 * a check: its raw series are distinct, and every label it drops (the metric
 * name; in 3.x also `__type__` and `__unit__`) has one value across them.
 */
function rangeResultsDistinct(node: Extract<VNode, { k: "range" }>, ctx: Ctx): boolean {
  if (node.sub !== null) return false;
  if (node.fn === "last_over_time") return true; // keeps every label
  return oneValueEach(rawSeries(ctx, node.key), ctx.meta);
}

/** Whether each of `names` has one value (or none: "") across the series of `list`. */
function oneValueEach(list: readonly LSet[], names: Iterable<string>): boolean {
  for (const name of names) {
    const first = list.length > 0 ? lsetGet(list[0]!, name) : "";
    for (const r of list) if (lsetGet(r, name) !== first) return false;
  }
  return true;
}

/**
 * The series of a range function, one at a time, in input (label) order,
 * before the check for equal label sets; series without a point are left out.
 */
function eachRangeResult(
  node: Extract<VNode, { k: "range" }>,
  ctx: Ctx,
  take: TakeArrays,
  emit: EmitSeries,
): void {
  const fn = node.fn;
  const inputs = node.sub === null ? rawSeries(ctx, node.key) : subquerySeries(node, node.sub, ctx);
  for (const r of inputs) {
    const out = rangeSeries(node, ctx, r.t, r.v, take);
    if (out !== null) {
      emit(fn === "last_over_time" ? r : lsetEdit(r, ctx.meta, null, null), out.v, out.p);
    }
  }
}

/**
 * One input series of a range function: its value at every step (arrays from
 * `take`), or null when it has none. A function of its own, called once per
 * series: the engine optimizes it as a whole, where the same loops inside the
 * per-node function ran mostly in the interpreter (their on-stack replacement
 * was thrown away at every loop exit), boxing every sample it read.
 */
function rangeSeries(
  node: Extract<VNode, { k: "range" }>,
  ctx: Ctx,
  t: Float64Array,
  v: Float64Array,
  take: TakeArrays,
): { v: Float64Array; p: Uint8Array } | null {
  const { n, ts, v3 } = ctx;
  const { fn, rangeMs, offsetMs } = node;
  const rangeSec = durationSeconds(rangeMs);
  // 2.x: [mint, maxt]; 3.x: (mint, maxt], i.e. [mint + 1, maxt] for whole-ms timestamps.
  const edge = v3 ? 1 : 0;
  const len = t.length;
  // Indices i ≥ 1 with v[i] < v[i-1] (counter resets), ascending; found again per evaluation
  // rather than kept with every raw series of the batch.
  const resets = ctx.resets;
  resets.length = 0;
  if (fn === "rate" || fn === "increase") {
    for (let i = 1; i < len; i++) if (v[i]! < v[i - 1]!) resets.push(i);
  }
  let rp = 0;
  let lo = 0;
  let hi = 0;
  let values: Float64Array | null = null;
  let present: Uint8Array | null = null;
  for (let s = 0; s < n; s++) {
    const maxt = ts[s]! - offsetMs;
    const mint = maxt - rangeMs;
    while (hi < len && t[hi]! <= maxt) hi++;
    while (lo < hi && t[lo]! < mint + edge) lo++;
    const count = hi - lo;
    if (count === 0) continue;
    let value: number;
    switch (fn) {
      case "rate":
      case "increase": {
        if (count < 2) continue;
        let result = v[hi - 1]! - v[lo]!;
        while (rp < resets.length && resets[rp]! <= lo) rp++;
        for (let q = rp; q < resets.length && resets[q]! < hi; q++) {
          result += v[resets[q]! - 1]!;
        }
        value = extrapolate(
          result,
          t[lo]!,
          t[hi - 1]!,
          v[lo]!,
          count,
          mint,
          maxt,
          rangeSec,
          fn === "rate",
          v3,
        );
        break;
      }
      case "irate": {
        if (count < 2) continue;
        const last = v[hi - 1]!;
        const prev = v[hi - 2]!;
        const dt = t[hi - 1]! - t[hi - 2]!;
        if (dt === 0) continue;
        value = last < prev ? last : last - prev;
        value /= dt / 1000;
        break;
      }
      case "sum_over_time": {
        let sum = 0;
        let c = 0;
        for (let i = lo; i < hi; i++) {
          const x = v[i]!;
          const next = sum + x; // not `t`: that is the series' timestamps here
          c = v3 ? kahanC3(x, sum, next, c) : kahanC2(x, sum, next, c);
          sum = next;
        }
        value = isInf(sum) ? sum : sum + c;
        break;
      }
      case "avg_over_time":
        value = v3 ? avgOverTime3(v, lo, hi) : avgOverTime2(v, lo, hi);
        break;
      case "max_over_time": {
        let m = v[lo]!;
        for (let i = lo; i < hi; i++) if (v[i]! > m || Number.isNaN(m)) m = v[i]!;
        value = m;
        break;
      }
      case "min_over_time": {
        let m = v[lo]!;
        for (let i = lo; i < hi; i++) if (v[i]! < m || Number.isNaN(m)) m = v[i]!;
        value = m;
        break;
      }
      case "count_over_time":
        value = count;
        break;
      case "last_over_time":
        value = v[hi - 1]!;
        break;
    }
    if (values === null) ({ v: values, p: present } = take());
    values[s] = value;
    present![s] = 1;
  }
  return values === null ? null : { v: values, p: present! };
}

/** `a mod m` for whole numbers, in [0, m). */
function floorMod(a: number, m: number): number {
  const r = a % m;
  return r < 0 ? r + m : r;
}

/**
 * The evaluation times of a subquery: every multiple of its step inside some
 * outer step's window, ascending. Prometheus evaluates the inner expression
 * on the grid of multiples of the step from the first one at or after (2.x;
 * after in 3.x) `start - offset - range` up to `end - offset`, and the outer
 * function reads the points in `[t - offset - range, t - offset]` (2.x; left
 * edge open in 3.x): exactly these times. Times between the windows (a grid
 * coarser than the range) are skipped.
 */
function subqueryTimes(
  ctx: Ctx,
  rangeMs: number,
  offsetMs: number,
  stepMs: number,
): Float64Array {
  const { n, ts, v3 } = ctx;
  const out: number[] = [];
  let next = -Infinity; // first time not emitted yet
  for (let s = 0; s < n; s++) {
    const hi = ts[s]! - offsetMs;
    const lo = hi - rangeMs;
    const m = floorMod(lo, stepMs);
    let first = m === 0 && !v3 ? lo : lo - m + stepMs;
    const last = hi - floorMod(hi, stepMs);
    if (first < next) first = next;
    for (let t = first; t <= last; t += stepMs) out.push(t);
    if (last + stepMs > next) next = last + stepMs;
  }
  return Float64Array.from(out);
}

/** The series of a subquery as raw series: the inner expression at {@linkcode subqueryTimes}, present points only. */
function subquerySeries(
  node: Extract<VNode, { k: "range" }>,
  sub: Subquery,
  ctx: Ctx,
): RawPrepared[] {
  const stepMs = sub.stepMs ?? ctx.subqueryStepMs;
  const cacheKey = `${node.rangeMs}\u0000${node.offsetMs}\u0000${stepMs}\u0000${sub.text}`;
  const cached = ctx.subCache.get(cacheKey);
  if (cached !== undefined) return cached;
  const ts = subqueryTimes(ctx, node.rangeMs, node.offsetMs, stepMs);
  const inner: Ctx = {
    ...ctx,
    n: ts.length,
    slabs: new StepArrays(ts.length, ctx.pool),
    ts,
    subCache: new Map(),
  };
  const out: RawPrepared[] = [];
  for (const s of ts.length === 0 ? [] : evalVector(sub.expr, inner)) {
    let count = 0;
    for (let k = 0; k < s.p.length; k++) count += s.p[k]!;
    if (count === 0) continue;
    const t = new Float64Array(count);
    const v = new Float64Array(count);
    let j = 0;
    for (let k = 0; k < s.p.length; k++) {
      if (s.p[k] === 0) continue;
      t[j] = ts[k]!;
      v[j] = s.v[k]!;
      j++;
    }
    out.push(new WrappedRaw(s.ls.names, s.ls.values, t, v));
  }
  ctx.subCache.set(cacheKey, out);
  return out;
}

/** `extrapolatedRate` for floats (isCounter) of Prometheus 2.42 and 3.16. */
function extrapolate(
  result: number,
  firstT: number,
  lastT: number,
  firstV: number,
  count: number,
  rangeStart: number,
  rangeEnd: number,
  rangeSec: number,
  isRate: boolean,
  v3: boolean,
): number {
  let durationToStart = (firstT - rangeStart) / 1000;
  let durationToEnd = (rangeEnd - lastT) / 1000;
  const sampledInterval = (lastT - firstT) / 1000;
  const averageDurationBetweenSamples = sampledInterval / (count - 1);
  const extrapolationThreshold = averageDurationBetweenSamples * 1.1;
  let factor: number;
  if (v3) {
    if (durationToStart >= extrapolationThreshold) {
      durationToStart = averageDurationBetweenSamples / 2;
    }
    let durationToZero = durationToStart;
    if (result > 0 && firstV >= 0) durationToZero = sampledInterval * (firstV / result);
    if (durationToZero < durationToStart) durationToStart = durationToZero;
    if (durationToEnd >= extrapolationThreshold) durationToEnd = averageDurationBetweenSamples / 2;
    factor = 1.0;
    if (sampledInterval !== 0) {
      factor = (sampledInterval + durationToStart + durationToEnd) / sampledInterval;
    }
  } else {
    if (result > 0 && firstV >= 0) {
      const durationToZero = sampledInterval * (firstV / result);
      if (durationToZero < durationToStart) durationToStart = durationToZero;
    }
    let extrapolateToInterval = sampledInterval;
    if (durationToStart < extrapolationThreshold) extrapolateToInterval += durationToStart;
    else extrapolateToInterval += averageDurationBetweenSamples / 2;
    if (durationToEnd < extrapolationThreshold) extrapolateToInterval += durationToEnd;
    else extrapolateToInterval += averageDurationBetweenSamples / 2;
    factor = extrapolateToInterval / sampledInterval;
  }
  if (isRate) factor /= rangeSec;
  return result * factor;
}

function avgOverTime2(v: Float64Array, lo: number, hi: number): number {
  let mean = 0;
  let count = 0;
  let c = 0;
  for (let i = lo; i < hi; i++) {
    const x = v[i]!;
    count++;
    if (isInf(mean)) {
      if (isInf(x) && (mean > 0) === (x > 0)) continue;
      if (!isInf(x) && !Number.isNaN(x)) continue;
    }
    const inc = x / count - mean / count;
    const t = mean + inc;
    c = kahanC2(inc, mean, t, c);
    mean = t;
  }
  return isInf(mean) ? mean : mean + c;
}

function avgOverTime3(v: Float64Array, lo: number, hi: number): number {
  let sum = v[lo]!;
  let count = 1;
  let mean = 0;
  let c = 0;
  let incremental = false;
  for (let i = lo + 1; i < hi; i++) {
    const x = v[i]!;
    count = i - lo + 1;
    if (!incremental) {
      const newSum = sum + x;
      if (!isInf(newSum)) {
        c = kahanC3(x, sum, newSum, c);
        sum = newSum;
        continue;
      }
      incremental = true;
      mean = sum / (count - 1);
      c /= count - 1;
    }
    const q = (count - 1) / count;
    const inc = x / count;
    const base = q * mean;
    const t = base + inc;
    c = kahanC3(inc, base, t, q * c);
    mean = t;
  }
  return incremental ? mean + c : sum / count + c / count;
}

/** 2.x `Matrix.ContainsSameLabelset` over a whole function result. */
function checkWhole(series: VSeries[], ctx: Ctx, construct: string): VSeries[] {
  const seen = new Map<string, VSeries>();
  for (const s of series) {
    const prior = seen.get(s.ls.key);
    if (prior !== undefined) {
      fail(
        ctx,
        `${construct}: vector cannot contain metrics with the same labelset ${lsetString(s.ls)}`,
      );
    }
    seen.set(s.ls.key, s);
  }
  return series;
}

/** Merges series with one label set; two points at one step fail the query (rangeEval, 3.x merge). */
function mergePerStep(series: VSeries[], ctx: Ctx, construct: string): VSeries[] {
  const byKey = new Map<string, number>();
  const copied = new Set<number>();
  const out: VSeries[] = [];
  for (const s of series) {
    const at = byKey.get(s.ls.key);
    if (at === undefined) {
      byKey.set(s.ls.key, out.length);
      out.push(s);
      continue;
    }
    if (!copied.has(at)) {
      // Copy before writing: the first series' arrays may belong to an input.
      const prior = out[at]!;
      const v = ctx.slabs.values();
      const p = ctx.slabs.present();
      v.set(prior.v);
      p.set(prior.p);
      out[at] = { ls: prior.ls, v, p };
      copied.add(at);
    }
    mergeInto(out[at]!, s, ctx, construct);
  }
  return out;
}

function mergeInto(target: VSeries, s: VSeries, ctx: Ctx, construct: string): void {
  const { p, v } = s;
  for (let k = 0; k < p.length; k++) {
    if (p[k] === 0) continue;
    if (target.p[k] === 1) {
      fail(
        ctx,
        `${construct}: vector cannot contain metrics with the same labelset ${lsetString(s.ls)} ` +
          `at ${new Date(ctx.ts[k]!).toISOString()}`,
      );
    }
    target.p[k] = 1;
    target.v[k] = v[k]!;
  }
}

const NO_LABELS: LSet = new LSet([], []);

function evalAggregation(node: Extract<VNode, { k: "agg" }>, ctx: Ctx): VSeries[] {
  const acc = new Aggregator(node, ctx);
  const add: EmitSeries = (ls, v, p) => acc.add(ls, v, p);
  const expr = node.expr;
  const many = expr.k === "vv" ? streamedMany(expr, ctx) : null;
  // A selector's or range function's series are summed up as they are made,
  // one scratch pair at a time: the input is never held whole.
  if (expr.k === "sel") eachSelected(expr, ctx, scratchArrays(ctx), add);
  else if (expr.k === "range" && rangeResultsDistinct(expr, ctx)) {
    eachRangeResult(expr, ctx, scratchArrays(ctx), add);
  } else if (expr.k === "vv" && many !== null) {
    // So are a join's results when its 'many' side is read one series at a time.
    eachBinopResult(expr, many, ctx, scratchArrays(ctx), add);
  } else {
    const input = evalVector(expr, ctx);
    for (const s of input) acc.add(s.ls, s.v, s.p);
    reuseArrays(ctx, input);
  }
  return acc.finish();
}

/** Gives the arrays of series that nothing reads any more back to the evaluation's slabs. */
function reuseArrays(ctx: Ctx, ...lists: (readonly VSeries[])[]): void {
  ctx.slabs.reuse(
    lists.flatMap((l) => l.map((s) => s.v)),
    lists.flatMap((l) => l.map((s) => s.p)),
  );
}

/**
 * One aggregation's groups, fed series by series in input order: each group
 * accumulates straight into its result arrays (`value`; `seen` is its
 * presence), with helper arrays only where the operator needs them.
 */
class Aggregator {
  readonly #node: Extract<VNode, { k: "agg" }>;
  readonly #ctx: Ctx;
  readonly #grouping: ReadonlySet<string>;
  readonly #without: ReadonlySet<string> | null;
  readonly #groupIndex = new Map<string, number>();
  readonly #groupLabels: LSet[] = [];
  readonly #value: Float64Array[] = [];
  readonly #seen: Uint8Array[] = [];
  readonly #kc: Float64Array[] | null;
  readonly #cnt: Float64Array[] | null;
  readonly #mean: Float64Array[] | null;
  readonly #incr: Uint8Array[] | null;

  constructor(node: Extract<VNode, { k: "agg" }>, ctx: Ctx) {
    this.#node = node;
    this.#ctx = ctx;
    this.#grouping = new Set(node.grouping);
    this.#without = node.without ? new Set([...node.grouping, ...ctx.meta]) : null;
    const op = node.op;
    this.#kc = (op === "sum" && ctx.v3) || op === "avg" ? [] : null;
    this.#cnt = op === "avg" ? [] : null;
    this.#mean = op === "avg" ? [] : null;
    this.#incr = op === "avg" && ctx.v3 ? [] : null;
  }

  /** The group of a label set, its arrays made when it is first seen. */
  #group(ls: LSet): number {
    const node = this.#node;
    const g = this.#without !== null
      ? lsetEdit(ls, this.#without, null, null)
      : node.grouping.length > 0
      ? lsetEdit(ls, null, this.#grouping, null)
      : NO_LABELS;
    let gi = this.#groupIndex.get(g.key);
    if (gi !== undefined) return gi;
    gi = this.#groupLabels.length;
    this.#groupIndex.set(g.key, gi);
    this.#groupLabels.push(g);
    const slabs = this.#ctx.slabs;
    this.#value.push(slabs.values());
    this.#seen.push(slabs.present());
    this.#kc?.push(slabs.values());
    this.#cnt?.push(slabs.values());
    this.#mean?.push(slabs.values());
    this.#incr?.push(slabs.present());
    return gi;
  }

  /** Adds one input series (its arrays are only read during the call). */
  add(ls: LSet, v: Float64Array, p: Uint8Array): void {
    const { n, v3 } = this.#ctx;
    const op = this.#node.op;
    const g = this.#group(ls);
    const kc = this.#kc, cnt = this.#cnt, mean = this.#mean, incr = this.#incr;
    const val = this.#value[g]!, sn = this.#seen[g]!;
    switch (op) {
      case "sum":
        if (v3) {
          const k = kc![g]!;
          for (let s = 0; s < n; s++) {
            if (p[s] === 0) continue;
            const f = v[s]!;
            if (sn[s] === 0) {
              sn[s] = 1;
              val[s] = f;
              continue;
            }
            // Kahan-Neumaier (kahanC3), inline.
            const sum = val[s]!;
            const t = sum + f;
            let c = k[s]!;
            if (t > Number.MAX_VALUE || t < -Number.MAX_VALUE) c = 0;
            else if (Math.abs(sum) >= Math.abs(f)) c += (sum - t) + f;
            else c += (f - t) + sum;
            val[s] = t;
            k[s] = c;
          }
        } else {
          for (let s = 0; s < n; s++) {
            if (p[s] === 0) continue;
            if (sn[s] === 0) {
              sn[s] = 1;
              val[s] = v[s]!;
            } else val[s] = val[s]! + v[s]!;
          }
        }
        break;
      case "max":
      case "min": {
        const max = op === "max";
        for (let s = 0; s < n; s++) {
          if (p[s] === 0) continue;
          const f = v[s]!;
          if (sn[s] === 0) {
            sn[s] = 1;
            val[s] = f;
            continue;
          }
          const cur = val[s]!;
          if ((max ? cur < f : cur > f) || Number.isNaN(cur)) val[s] = f;
        }
        break;
      }
      case "count":
        // The count is the value itself.
        for (let s = 0; s < n; s++) {
          if (p[s] === 0) continue;
          if (sn[s] === 0) {
            sn[s] = 1;
            val[s] = 1;
          } else val[s] = val[s]! + 1;
        }
        break;
      case "avg": {
        const cn = cnt![g]!, mn = mean![g]!, k = kc![g]!;
        const inc = incr === null ? null : incr[g]!;
        for (let s = 0; s < n; s++) {
          if (p[s] === 0) continue;
          const f = v[s]!;
          if (sn[s] === 0) {
            sn[s] = 1;
            val[s] = f;
            cn[s] = 1;
            mn[s] = f;
            continue;
          }
          const count = cn[s]! + 1;
          cn[s] = count;
          if (inc !== null) {
            if (inc[s] === 0) {
              const cur = val[s]!;
              const newV = cur + f;
              if (!isInf(newV)) {
                k[s] = kahanC3(f, cur, newV, k[s]!);
                val[s] = newV;
                continue;
              }
              inc[s] = 1;
              mn[s] = val[s]! / (count - 1);
              k[s] = k[s]! / (count - 1);
            }
            const q = (count - 1) / count;
            const step = f / count;
            const base = q * mn[s]!;
            const m = base + step;
            const c = kahanC3(step, base, m, q * k[s]!);
            mn[s] = m;
            k[s] = c;
          } else {
            const m = mn[s]!;
            if (isInf(m)) {
              if (isInf(f) && (m > 0) === (f > 0)) continue;
              if (!isInf(f) && !Number.isNaN(f)) continue;
            }
            mn[s] = m + (f / count - m / count);
          }
        }
        break;
      }
    }
  }

  /** The groups' series, in the order their first input came; the helper arrays are given back. */
  finish(): VSeries[] {
    const { n, v3 } = this.#ctx;
    const op = this.#node.op;
    const kc = this.#kc, cnt = this.#cnt, mean = this.#mean, incr = this.#incr;
    const out: VSeries[] = [];
    for (let g = 0; g < this.#groupLabels.length; g++) {
      const val = this.#value[g]!, sn = this.#seen[g]!;
      let any = false;
      for (let s = 0; s < n; s++) {
        if (sn[s] === 0) continue;
        any = true;
        switch (op) {
          case "sum":
            if (v3) val[s] = val[s]! + kc![g]![s]!;
            break;
          case "avg":
            if (!v3) val[s] = mean![g]![s]!;
            else if (incr![g]![s] === 1) val[s] = mean![g]![s]! + kc![g]![s]!;
            else val[s] = val[s]! / cnt![g]![s]! + kc![g]![s]! / cnt![g]![s]!;
            break;
        }
      }
      if (any) out.push({ ls: this.#groupLabels[g]!, v: val, p: sn });
      else this.#ctx.slabs.reuse([val], [sn]);
    }
    this.#ctx.slabs.reuse([...(kc ?? []), ...(cnt ?? []), ...(mean ?? [])], incr ?? []);
    return out;
  }
}

/** Per-step "any series present" of a vector. */
function anyPresent(series: readonly VSeries[], n: number): Uint8Array {
  const any = new Uint8Array(n);
  for (const s of series) for (let k = 0; k < n; k++) any[k]! |= s.p[k]!;
  return any;
}

function evalVectorBinop(node: Extract<VNode, { k: "vv" }>, ctx: Ctx): VSeries[] {
  const streamed = streamedMany(node, ctx);
  if (streamed !== null) {
    const out: VSeries[] = [];
    eachBinopResult(node, streamed, ctx, keepArrays(ctx), (ls, v, p) => out.push({ ls, v, p }));
    return out;
  }
  const { n, meta } = ctx;
  const lhsAll = evalVector(node.lhs, ctx);
  const rhsAll = evalVector(node.rhs, ctx);
  const swap = node.card === "one-to-many";
  const many = swap ? rhsAll : lhsAll;
  const one = swap ? lhsAll : rhsAll;
  const manyAny = anyPresent(many, n);
  const oneAny = anyPresent(one, n);
  const err = new FirstError();
  const { sigWhich, conflicts } = indexOneSide(one, node, ctx);
  offerOneSideConflicts(err, conflicts, manyAny, one, node, ctx);

  const del = meta; // arithmetic drops the metric name (and 3.x type/unit)
  const keep = node.card === "one-to-one" && node.matching.on
    ? new Set(node.matching.labels)
    : null;
  const delOneToOne = node.card === "one-to-one" && !node.matching.on
    ? new Set([...del, ...node.matching.labels])
    : del;
  const outByKey = new Map<string, { s: VSeries; sig: string }>();
  const out: VSeries[] = [];
  // One-to-one: a signature matched twice at one step.
  const matchedOnce = node.card === "one-to-one" ? new Map<string, Uint8Array>() : null;
  const manySigCount = new Map<string, number>();
  const manySig: string[] = [];
  for (const m of many) {
    const sig = signature(m.ls, node.matching, meta);
    manySig.push(sig);
    manySigCount.set(sig, (manySigCount.get(sig) ?? 0) + 1);
  }
  for (let i = 0; i < many.length; i++) {
    const sig = manySig[i]!;
    const which = sigWhich.get(sig);
    if (which === undefined) continue;
    const ls = many[i]!;
    const resultFor = new Map<number, { s: VSeries; sig: string }>();
    let once: Uint8Array | undefined;
    if (matchedOnce !== null && manySigCount.get(sig)! > 1) {
      once = matchedOnce.get(sig);
      if (once === undefined) {
        once = new Uint8Array(n);
        matchedOnce.set(sig, once);
      }
    }
    for (let s = 0; s < n; s++) {
      if (ls.p[s] === 0) continue;
      const r = which[s]!;
      if (r < 0) continue;
      if (oneAny[s] === 0) continue;
      let target = resultFor.get(r);
      if (target === undefined) {
        const rs = one[r]!;
        let include: Map<string, string> | null = null;
        if (node.include.length > 0) {
          include = new Map();
          for (const l of node.include) include.set(l, lsetGet(rs.ls, l));
        }
        const result = lsetEdit(
          ls.ls,
          node.card === "one-to-one" ? delOneToOne : del,
          keep,
          include,
        );
        target = outByKey.get(result.key);
        if (target === undefined) {
          target = { s: { ls: result, v: ctx.slabs.values(), p: ctx.slabs.present() }, sig };
          outByKey.set(result.key, target);
          out.push(target.s);
        }
        resultFor.set(r, target);
      }
      if (once !== undefined) {
        if (once[s] === 1) {
          err.offer(
            s,
            1,
            `${node.text}: multiple matches for labels: many-to-one matching must be explicit (group_left/group_right) (series ${
              lsetString(ls.ls)
            })`,
          );
          continue;
        }
        once[s] = 1;
      }
      const t = target.s;
      if (t.p[s] === 1) {
        if (node.card !== "one-to-one" && target.sig === sig) {
          err.offer(
            s,
            1,
            `${node.text}: multiple matches for labels: grouping labels must ensure unique matches (series ${
              lsetString(t.ls)
            })`,
          );
        } else {
          err.offer(
            s,
            2,
            `${node.text}: vector cannot contain metrics with the same labelset ${
              lsetString(t.ls)
            }`,
          );
        }
        continue;
      }
      const lv = ls.v[s]!;
      const rv = one[r]!.v[s]!;
      t.p[s] = 1;
      t.v[s] = swap ? arith(node.op, rv, lv) : arith(node.op, lv, rv);
    }
  }
  err.raise(ctx);
  // The result's arrays are its own: both sides' go back to the slabs.
  reuseArrays(ctx, lhsAll, rhsAll);
  return out;
}

/**
 * The 'one' side of a binary operator by join signature: which of its series
 * is present at each step (the first, where two are), and for each step the
 * first such pair (`conflicts[2s]`, `conflicts[2s + 1]`; null when there is
 * none), which is an error wherever the 'many' side has a point.
 */
function indexOneSide(
  one: readonly VSeries[],
  node: Extract<VNode, { k: "vv" }>,
  ctx: Ctx,
): { sigWhich: Map<string, Int32Array>; conflicts: Int32Array | null } {
  const { n, meta } = ctx;
  const sigWhich = new Map<string, Int32Array>();
  let conflicts: Int32Array | null = null;
  for (let i = 0; i < one.length; i++) {
    const sig = signature(one[i]!.ls, node.matching, meta);
    let which = sigWhich.get(sig);
    if (which === undefined) {
      which = new Int32Array(n).fill(-1);
      sigWhich.set(sig, which);
    }
    const p = one[i]!.p;
    for (let s = 0; s < n; s++) {
      if (p[s] === 0) continue;
      if (which[s]! >= 0) {
        conflicts ??= new Int32Array(2 * n).fill(-1);
        if (conflicts[2 * s]! < 0) {
          conflicts[2 * s] = i;
          conflicts[2 * s + 1] = which[s]!;
        }
        continue;
      }
      which[s] = i;
    }
  }
  return { sigWhich, conflicts };
}

/** Offers the 'one' side's duplicate error at every step where both it and the 'many' side have a point. */
function offerOneSideConflicts(
  err: FirstError,
  conflicts: Int32Array | null,
  manyAny: Uint8Array,
  one: readonly VSeries[],
  node: Extract<VNode, { k: "vv" }>,
  ctx: Ctx,
): void {
  if (conflicts === null) return;
  for (let s = 0; s < ctx.n; s++) {
    const i = conflicts[2 * s]!;
    if (i < 0 || manyAny[s] === 0 || !err.wants(s, 0)) continue;
    const a = lsetString(one[i]!.ls);
    const b = lsetString(one[conflicts[2 * s + 1]!]!.ls);
    const [d1, d2] = ctx.v3 && compareUtf8(a, b) > 0 ? [b, a] : [a, b];
    err.offer(
      s,
      0,
      `${node.text}: found duplicate series for the match group ${
        matchGroupString(one[i]!.ls, node.matching, ctx.meta)
      } on the ${
        node.card === "one-to-many" ? "left" : "right"
      } hand-side of the operation: [${d1}, ${d2}];many-to-many matching not allowed: matching labels must be unique on one side`,
    );
  }
}

/**
 * The 'many' side of a `group_left`/`group_right` operator when it can be
 * read one series at a time ({@linkcode eachBinopResult}): a selector, or a
 * range function over one, whose series stay distinct once the operator has
 * dropped the metric name and set the copied labels — every such label has
 * one value (or none) across the raw series. Then no two result series share
 * a label set, and none of the checks needs the whole side. Null otherwise.
 */
function streamedMany(
  node: Extract<VNode, { k: "vv" }>,
  ctx: Ctx,
): Extract<VNode, { k: "sel" | "range" }> | null {
  if (node.card === "one-to-one") return null;
  const many = node.card === "one-to-many" ? node.rhs : node.lhs;
  if (many.k !== "sel" && !(many.k === "range" && many.sub === null)) return null;
  return oneValueEach(rawSeries(ctx, many.key), [...ctx.meta, ...node.include]) ? many : null;
}

/**
 * The result series of a `group_left`/`group_right` operator whose 'many'
 * side `many` is streamed (as {@linkcode streamedMany} found it), one at a time, in the order the
 * whole-side evaluation makes them: the 'one' side is evaluated and indexed,
 * then each 'many' series is joined as it is read, so that side is never held
 * whole (inside an aggregation, neither is the result).
 */
function eachBinopResult(
  node: Extract<VNode, { k: "vv" }>,
  many: Extract<VNode, { k: "sel" | "range" }>,
  ctx: Ctx,
  take: TakeArrays,
  emit: EmitSeries,
): void {
  const { n, meta } = ctx;
  const swap = node.card === "one-to-many";
  const one = evalVector(swap ? node.lhs : node.rhs, ctx);
  const { sigWhich, conflicts } = indexOneSide(one, node, ctx);
  const manyAny = new Uint8Array(n);
  // The copied labels' values per 'one' series, as a key: 'one' series with equal values give
  // one result series per 'many' series, as the whole-side evaluation merges them.
  const includeKey: (string | undefined)[] = [];
  const includeOf = (r: number): string => {
    let key = includeKey[r];
    if (key === undefined) {
      key = "";
      for (const l of node.include) key += keyPart(l, lsetGet(one[r]!.ls, l));
      includeKey[r] = key;
    }
    return key;
  };
  const keys: string[] = [];
  const firstOf: number[] = [];
  const read: EmitSeries = (ls, v, p) => {
    for (let s = 0; s < n; s++) manyAny[s]! |= p[s]!;
    const which = sigWhich.get(signature(ls, node.matching, meta));
    if (which === undefined) return;
    // The result series of this 'many' series, in the order of their first step.
    keys.length = 0;
    firstOf.length = 0;
    for (let s = 0; s < n; s++) {
      const r = which[s]!;
      if (p[s] === 0 || r < 0) continue;
      const key = node.include.length > 0 ? includeOf(r) : "";
      if (!keys.includes(key)) {
        keys.push(key);
        firstOf.push(r);
      }
    }
    for (let o = 0; o < keys.length; o++) {
      const out = take();
      for (let s = 0; s < n; s++) {
        const r = which[s]!;
        if (p[s] === 0 || r < 0) continue;
        if (keys.length > 1 && includeOf(r) !== keys[o]) continue;
        const rv = one[r]!.v[s]!;
        out.v[s] = swap ? arith(node.op, rv, v[s]!) : arith(node.op, v[s]!, rv);
        out.p[s] = 1;
      }
      let include: Map<string, string> | null = null;
      if (node.include.length > 0) {
        include = new Map();
        for (const l of node.include) include.set(l, lsetGet(one[firstOf[o]!]!.ls, l));
      }
      emit(lsetEdit(ls, meta, null, include), out.v, out.p);
    }
  };
  if (many.k === "sel") eachSelected(many, ctx, scratchArrays(ctx), read);
  else eachRangeResult(many, ctx, scratchArrays(ctx), read);
  const err = new FirstError();
  offerOneSideConflicts(err, conflicts, manyAny, one, node, ctx);
  err.raise(ctx);
  reuseArrays(ctx, one);
}

function matchGroupString(ls: LSet, matching: Matching, meta: ReadonlySet<string>): string {
  const names: string[] = [];
  const values: string[] = [];
  for (let i = 0; i < ls.names.length; i++) {
    const nm = ls.names[i]!;
    const listed = matching.labels.includes(nm);
    if (matching.on ? !listed : listed || meta.has(nm)) continue;
    names.push(nm);
    values.push(ls.values[i]!);
  }
  return lsetString(new LSet(names, values));
}

/** Keeps the error Prometheus reports first: the earliest step, then the earliest check. */
class FirstError {
  step = Infinity;
  rank = Infinity;
  message = "";
  wants(step: number, rank: number): boolean {
    return step < this.step || (step === this.step && rank < this.rank);
  }
  offer(step: number, rank: number, message: string): void {
    if (this.wants(step, rank)) {
      this.step = step;
      this.rank = rank;
      this.message = message;
    }
  }
  raise(ctx: Ctx): void {
    if (this.step !== Infinity) {
      fail(ctx, `${this.message} at ${new Date(ctx.ts[this.step]!).toISOString()}`);
    }
  }
}

function evalSetOp(node: Extract<VNode, { k: "set" }>, ctx: Ctx): VSeries[] {
  const { n, meta } = ctx;
  const lhs = evalVector(node.lhs, ctx);
  const rhs = evalVector(node.rhs, ctx);
  const sigPresent = (side: readonly VSeries[]): [Map<string, Uint8Array>, string[]] => {
    const map = new Map<string, Uint8Array>();
    const sigs: string[] = [];
    for (const s of side) {
      const sig = signature(s.ls, node.matching, meta);
      sigs.push(sig);
      let any = map.get(sig);
      if (any === undefined) {
        any = new Uint8Array(n);
        map.set(sig, any);
      }
      for (let k = 0; k < n; k++) any[k]! |= s.p[k]!;
    }
    return [map, sigs];
  };
  const masked = (s: VSeries, mask: Uint8Array | undefined, keepWhere: 0 | 1): VSeries | null => {
    const p = ctx.slabs.present();
    let any = false;
    for (let k = 0; k < n; k++) {
      if (s.p[k] === 1 && (mask === undefined ? 0 : mask[k]) === keepWhere) {
        p[k] = 1;
        any = true;
      }
    }
    return any ? { ls: s.ls, v: s.v, p } : null;
  };
  if (node.op === "or") {
    const [leftSigs] = sigPresent(lhs);
    const out = [...lhs];
    const rhsSigs = rhs.map((s) => signature(s.ls, node.matching, meta));
    for (let i = 0; i < rhs.length; i++) {
      const m = masked(rhs[i]!, leftSigs.get(rhsSigs[i]!), 0);
      if (m !== null) out.push(m);
    }
    return mergePerStep(out, ctx, "or");
  }
  const [rightSigs] = sigPresent(rhs);
  const out: VSeries[] = [];
  for (const s of lhs) {
    const m = masked(
      s,
      rightSigs.get(signature(s.ls, node.matching, meta)),
      node.op === "and" ? 1 : 0,
    );
    if (m !== null) out.push(m);
  }
  // `and`/`unless` keep the left side's values; nothing reads the right side any more.
  reuseArrays(ctx, rhs);
  return out;
}

function evalVectorScalar(node: Extract<VNode, { k: "vs" }>, ctx: Ctx): VSeries[] {
  const { n } = ctx;
  const vec = evalVector(node.vec, ctx);
  const sc = evalScalar(node.scalar, ctx);
  const out: VSeries[] = [];
  for (const s of vec) {
    const v = ctx.slabs.values();
    for (let k = 0; k < n; k++) {
      if (s.p[k] === 0) continue;
      v[k] = node.scalarLeft ? arith(node.op, sc[k]!, s.v[k]!) : arith(node.op, s.v[k]!, sc[k]!);
    }
    out.push({ ls: lsetEdit(s.ls, ctx.meta, null, null), v, p: s.p });
  }
  return mergePerStep(out, ctx, `vector ${node.op} scalar`);
}

function evalNeg(node: Extract<VNode, { k: "neg" }>, ctx: Ctx): VSeries[] {
  const out = evalVector(node.expr, ctx).map((s) => {
    const v = ctx.slabs.values();
    for (let k = 0; k < v.length; k++) v[k] = -s.v[k]!;
    return { ls: lsetEdit(s.ls, ctx.meta, null, null), v, p: s.p };
  });
  return ctx.v3 ? mergePerStep(out, ctx, "unary -") : checkWhole(out, ctx, "unary -");
}

function evalClamp(node: Extract<VNode, { k: "clamp" }>, ctx: Ctx): VSeries[] {
  const { n } = ctx;
  const vec = evalVector(node.expr, ctx);
  const param = evalScalar(node.param, ctx);
  const out: VSeries[] = [];
  for (const s of vec) {
    const v = ctx.slabs.values();
    for (let k = 0; k < n; k++) {
      if (s.p[k] === 0) continue;
      // 2.x: Min(max, v) / Max(min, v); 3.x: Max(min, Min(max, v)) with ∓Inf, the same values.
      v[k] = node.max ? Math.min(param[k]!, s.v[k]!) : Math.max(param[k]!, s.v[k]!);
    }
    out.push({ ls: lsetEdit(s.ls, ctx.meta, null, null), v, p: s.p });
  }
  return mergePerStep(out, ctx, node.max ? "clamp_max" : "clamp_min");
}

function evalLabelReplace(node: Extract<VNode, { k: "label_replace" }>, ctx: Ctx): VSeries[] {
  const t = ctx.v3 ? node.re3 : node.re2;
  if (!t.ok) {
    fail(ctx, `${node.text}: invalid regular expression in label_replace(): ${node.regex}`);
  }
  const validDst = ctx.v3 ? node.dst.length > 0 : LEGACY_LABEL.test(node.dst);
  if (!validDst) {
    fail(ctx, `${node.text}: invalid destination label name in label_replace(): ${node.dst}`);
  }
  const input = evalVector(node.expr, ctx);
  const out: VSeries[] = [];
  for (const s of input) {
    const srcVal = lsetGet(s.ls, node.src);
    const m = t.re.exec(srcVal);
    if (m === null) {
      out.push(s);
      continue;
    }
    const res = goExpand(node.repl, m, t.names);
    out.push({ ls: lsetEdit(s.ls, null, null, new Map([[node.dst, res]])), v: s.v, p: s.p });
  }
  return mergePerStep(out, ctx, node.text);
}
