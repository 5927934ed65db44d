/**
 * Rewrites CMMO's PromQL for one cluster of a hub's Thanos (BRIDGE §1): every
 * vector selector gets a cluster matcher such as `clusterID="<uuid>"`, and the
 * range window of `rate`-like and `*_over_time` calls can be replaced. A
 * batched form covers several clusters at once (`clusterID=~"id1|id2"`, the
 * cluster label added to every grouping and `on`), and
 * {@linkcode carriesLabel} tells where its answer has the label that the
 * per-cluster answer has not.
 *
 * The query is parsed with Prometheus's own grammar (`@prometheus-io/lezer-promql`).
 * Edits are splices at the positions of parse-tree nodes, applied from the end
 * of the text backwards; everything else stays byte-identical. String literals
 * are checked and decoded the way Prometheus's Go lexer and `strutil.Unquote`
 * do, so an existing matcher can be compared with the injected one exactly.
 *
 * @module
 */

import { isLabelName, parseDuration } from "../model.ts";
import { parser } from "@prometheus-io/lezer-promql";
import type { SyntaxNode, Tree } from "@lezer/common";

/** How {@linkcode rewriteQuery} binds a query to one cluster. */
export interface RewriteOptions {
  /** Label to inject, e.g. "clusterID". Must be a valid Prometheus label name. */
  label: string;
  /** Value to match exactly (any string: quotes, backslashes, newlines, unicode): one cluster,
   *  matched with `label="value"`. Exactly one of `value` and `values` must be set. */
  value?: string;
  /** Several values (one batch of clusters), matched with ONE regex matcher
   *  `label=~"v1|v2|…"` (each value escaped with {@linkcode escapeRegex}); every aggregation
   *  then groups by `label` and every `on (…)` matches on it, so the answer holds each cluster's
   *  series as if queried alone, plus the label (see {@linkcode carriesLabel}). At least one
   *  value; none empty, no duplicates. Queries whose answer cannot be split by `label` are
   *  refused. */
  values?: readonly string[];
  /** If set, every range-vector window of rate/irate/increase/delta/idelta/deriv/resets/changes and of
   *  every *_over_time call (matrix selectors directly inside those calls) is replaced by this duration,
   *  e.g. "15m". Subquery ranges `[1h:1m]` are NOT changed. */
  rangeWindow?: string;
  /** If set, the same windows as {@linkcode RewriteOptions.rangeWindow} are only WIDENED: a window
   *  shorter than this duration is replaced by it, a window of this length or longer stays
   *  byte-identical, e.g. "15m" turns `rate(x[5m])` into `rate(x[15m])` but leaves `[15m]` and
   *  `[1h]` alone. Subquery ranges `[15m:]` are NOT changed. Cannot be combined with `rangeWindow`. */
  minRangeWindow?: string;
}

/** Functions whose matrix argument is a range-vector window (besides every `*_over_time`). */
const WINDOW_FUNCTIONS: ReadonlySet<string> = new Set([
  "rate",
  "irate",
  "increase",
  "delta",
  "idelta",
  "deriv",
  "resets",
  "changes",
]);

/** Wrappers that may sit between a function argument and its matrix selector. */
const ARGUMENT_WRAPPERS: ReadonlySet<string> = new Set([
  "ParenExpr",
  "OffsetExpr",
  "StepInvariantExpr",
  "AnchoredExpr",
  "SmoothedExpr",
]);

/** Children of `LabelMatchers` that are matchers (the quoted metric name counts as one). */
const MATCHER_NODES: ReadonlySet<string> = new Set([
  "UnquotedLabelMatcher",
  "QuotedLabelMatcher",
  "QuotedLabelName",
]);

/** Longest query text quoted in an error message; the full text is in `cause.query`. */
const MAX_QUOTED_QUERY = 300;

const UTF8 = new TextEncoder();

interface Splice {
  readonly from: number;
  readonly to: number;
  readonly text: string;
}

/**
 * Renders a string as a double-quoted PromQL string literal that Prometheus's
 * Go parser unquotes to exactly `value`: `\` and `"` are escaped, `\n` `\r`
 * `\t` get their short escapes, other control characters (C0, DEL, C1) and
 * U+FFFD (which Prometheus's lexer rejects when written raw) become `\u00HH` /
 * `\uFFFD`; everything else is written raw. Every escape used is also a JSON
 * escape with the same meaning.
 *
 * @param value Any well-formed string.
 * @returns The literal, including the quotes.
 * @throws {RangeError} If `value` contains a lone UTF-16 surrogate (it has no
 *   UTF-8 form, so no label value can equal it).
 *
 * @example
 * ```ts
 * import { quotePromqlString } from "./promql_rewrite.ts";
 * quotePromqlString('a"b\\c\n'); // '"a\\"b\\\\c\\n"'
 * ```
 */
export function quotePromqlString(value: string): string {
  if (typeof value !== "string") {
    throw new TypeError(`PromQL string value must be a string, got ${typeof value}`);
  }
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    if (code >= 0xd800 && code <= 0xdfff) {
      throw new RangeError(
        `Value ${JSON.stringify(value)} contains a lone surrogate U+${hex(code, 4)}: ` +
          `it cannot be sent as UTF-8`,
        { cause: { value } },
      );
    }
    switch (ch) {
      case "\\":
        out += "\\\\";
        break;
      case '"':
        out += '\\"';
        break;
      case "\n":
        out += "\\n";
        break;
      case "\r":
        out += "\\r";
        break;
      case "\t":
        out += "\\t";
        break;
      default:
        if (code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0xfffd) {
          out += `\\u${hex(code, 4)}`;
        } else {
          out += ch;
        }
    }
  }
  return out + '"';
}

/**
 * Injects the matcher `label="value"` into every vector selector of a PromQL
 * expression (after the selector's existing matchers) and, if
 * `options.rangeWindow` is set, replaces the window of every matrix selector
 * that is a direct argument of `rate`, `irate`, `increase`, `delta`,
 * `idelta`, `deriv`, `resets`, `changes` or any `*_over_time` function.
 * With `options.minRangeWindow` instead, those windows are only widened:
 * one shorter than it is replaced by it, the others stay byte-identical.
 * Subquery ranges (`[1h:1m]`) are left alone. A selector that already has
 * exactly `label="value"` is left unchanged. All other text, including
 * label names in `on(…)`/`by(…)` and strings in `label_replace(…)`, stays
 * byte-identical.
 *
 * With `options.values` (a batch of clusters) every selector instead gets
 * ONE matcher `label=~"v1|v2|…"` (values escaped with
 * {@linkcode escapeRegex}), every aggregation groups by `label` as well
 * (`sum(x)` becomes `sum by (label)(x)`, `by (a)` becomes `by (a, label)`),
 * and every `on (…)` of a binary operation matches on it too, so each
 * cluster's series are computed from that cluster's series only: splitting
 * the answer by `label` and deleting it where {@linkcode carriesLabel} is
 * false gives each cluster's own answer. `group_left`/`group_right` lists
 * and all other text stay byte-identical. Constructs whose answer could not
 * be split that way are refused (TypeError naming the construct and why):
 * `without (…)`/`ignoring (…)` naming the label, `label_replace`/
 * `label_join`/`count_values` onto it, a `group_left/right (…)` naming it
 * with `on`, sides that disagree about carrying it where matching uses it,
 * `absent`, `absent_over_time`, `vector`, `scalar`, `info`, date functions
 * without argument, functions not known to keep labels, fill modifiers,
 * scalar or string queries, and any existing matcher on the label.
 *
 * Only syntax is checked (Prometheus's grammar and string literals), not
 * types: a query that Prometheus would reject for its types is rewritten and
 * then rejected by the server.
 *
 * @param expr The PromQL expression, e.g. one of CMMO's queries.
 * @param options Label, value and optional window.
 * @returns The rewritten expression.
 * @throws {RangeError} If `options.label` is not a valid label name or starts
 *   with the reserved `__`, if `options.value` is empty or not well-formed, or
 *   if `options.rangeWindow` or `options.minRangeWindow` is not a positive
 *   duration.
 * @throws {SyntaxError} If `expr` does not parse (the message names the query,
 *   the position and a snippet; `cause` has the details).
 * @throws {TypeError} If a selector already has a different matcher on
 *   `options.label` (another value or another operator; with `values`: any
 *   matcher on it), if both `value` and `values` or both `rangeWindow` and
 *   `minRangeWindow` are set, if `minRangeWindow` meets a window that is a
 *   duration expression (`[1m+1m]`), or if `values` is set and the query
 *   cannot be batched (see above).
 * @throws {RangeError} If `values` is empty, has an empty value or a
 *   duplicate.
 *
 * @example
 * ```ts
 * import { rewriteQuery } from "./promql_rewrite.ts";
 * rewriteQuery("sum by (pod) (rate(x{a='b'}[5m]))", {
 *   label: "clusterID",
 *   value: "c",
 *   rangeWindow: "15m",
 * }); // "sum by (pod) (rate(x{a='b', clusterID=\"c\"}[15m]))"
 * rewriteQuery("max_over_time(x[1h]) + rate(y[5m]) + avg_over_time(z[15m:])", {
 *   label: "clusterID",
 *   value: "c",
 *   minRangeWindow: "15m",
 * }); // "max_over_time(x{clusterID=\"c\"}[1h]) + rate(y{clusterID=\"c\"}[15m]) + avg_over_time(z{clusterID=\"c\"}[15m:])"
 * rewriteQuery("sum(x) * on(a) group_left(b) y", { label: "clusterID", values: ["c1", "c.2"] });
 * // "sum by (clusterID)(x{clusterID=~\"c1|c\\\\.2\"}) * on(a, clusterID) group_left(b) y{clusterID=~\"c1|c\\\\.2\"}"
 * ```
 */
export function rewriteQuery(expr: string, options: RewriteOptions): string {
  if (typeof expr !== "string") {
    throw new TypeError(`PromQL expression must be a string, got ${typeof expr}`);
  }
  const { label, value, values, rangeWindow, minRangeWindow } = options;
  checkLabel(label);
  if (values !== undefined && value !== undefined) {
    throw new TypeError(
      `Options value and values cannot be combined: value is one cluster, values a batch`,
      { cause: { value, values } },
    );
  }
  let literal: string;
  let matchOp: "=" | "=~";
  if (values !== undefined) {
    literal = quotePromqlString(batchRegex(label, values));
    matchOp = "=~";
  } else {
    if (typeof value !== "string") {
      throw new TypeError(`Value for label ${label} must be a string, got ${typeof value}`);
    }
    if (value === "") {
      throw new RangeError(
        `Value for label ${label} must not be empty: ${label}="" would match series without the label`,
      );
    }
    literal = quotePromqlString(value);
    matchOp = "=";
  }
  if (rangeWindow !== undefined) checkWindow(rangeWindow);
  if (minRangeWindow !== undefined) {
    if (rangeWindow !== undefined) {
      throw new TypeError(
        `rangeWindow ${JSON.stringify(rangeWindow)} and minRangeWindow ` +
          `${JSON.stringify(minRangeWindow)} cannot be combined: choose one`,
        { cause: { rangeWindow, minRangeWindow } },
      );
    }
    checkWindow(minRangeWindow, "minRangeWindow");
  }
  const windowFor: ((current: string) => string | null) | null = rangeWindow !== undefined
    ? () => rangeWindow
    : minRangeWindow !== undefined
    ? widenTo(expr, minRangeWindow)
    : null;

  const tree = parseChecked(expr);
  const matcher = `${label}${matchOp}${literal}`;
  const wanted = {
    label: UTF8.encode(label),
    value: values === undefined ? UTF8.encode(value ?? "") : null,
  };
  const splices: Splice[] = [];
  if (values !== undefined) {
    splices.push(...analyse(expr, tree, label, true).splices);
  }
  tree.iterate({
    enter(ref) {
      if (ref.name === "VectorSelector") {
        const splice = matcherSplice(expr, ref.node, matcher, wanted);
        if (splice !== null) splices.push(splice);
      } else if (ref.name === "FunctionCall" && windowFor !== null) {
        splices.push(...windowSplices(expr, ref.node, windowFor));
      }
    },
  });

  const result = applySplices(expr, splices);
  const check = firstError(parser.parse(result));
  if (check !== null) {
    throw new Error(
      `Rewriting ${quoteQuery(expr)} produced unparseable PromQL at offset ${check}: ` +
        `${quoteQuery(result)}`,
      { cause: { query: expr, result, position: check } },
    );
  }
  return result;
}

function checkLabel(label: string): void {
  if (typeof label !== "string") {
    throw new TypeError(`Label name must be a string, got ${typeof label}`);
  }
  if (!isLabelName(label)) {
    throw new RangeError(
      `Invalid label name ${JSON.stringify(label)}: must match ^[a-zA-Z_][a-zA-Z0-9_]*$`,
      { cause: { label } },
    );
  }
  if (label.startsWith("__")) {
    throw new RangeError(
      `Label name ${JSON.stringify(label)} is reserved: names starting with "__" are internal`,
      { cause: { label } },
    );
  }
}

function checkWindow(window: string, option = "rangeWindow"): void {
  if (typeof window !== "string") {
    throw new TypeError(`${option} must be a string, got ${typeof window}`);
  }
  if (parseDuration(window) <= 0) {
    throw new RangeError(
      `${option} ${JSON.stringify(window)} must be longer than zero`,
      { cause: { [option]: window } },
    );
  }
}

/**
 * The window chooser of `minRangeWindow`: `minimum` for a window shorter
 * than it, null (no edit) otherwise. A window written as a plain number is
 * in seconds, as in Prometheus; a duration expression such as `1m+1m` cannot
 * be compared and is refused.
 */
function widenTo(expr: string, minimum: string): (current: string) => string | null {
  const minimumMs = parseDuration(minimum);
  return (current) => {
    let currentMs: number;
    if (/^[0-9]+(\.[0-9]+)?$/.test(current)) {
      currentMs = Number(current) * 1000;
    } else {
      try {
        currentMs = parseDuration(current);
      } catch (error) {
        throw new TypeError(
          `Cannot compare window [${current}] in query ${quoteQuery(expr)} with ` +
            `minRangeWindow ${JSON.stringify(minimum)}: not a plain duration`,
          { cause: { query: expr, window: current, minRangeWindow: minimum, error } },
        );
      }
    }
    return currentMs < minimumMs ? minimum : null;
  };
}

/** Parses `expr` and refuses error nodes and string literals Prometheus would reject. */
/**
 * Parses a PromQL query with Prometheus's grammar and checks it as
 * Prometheus's Go parser would: no error node, no lone surrogates and, unless
 * `literals` is false, string literals that `strutil.Unquote` accepts. Skip
 * the literal check only for text this module wrote itself (a batch's regex
 * literals are kilobytes long, and checking them costs seconds per run).
 *
 * @throws {SyntaxError} Naming the query and the offset of the first problem.
 *
 * @example
 * ```ts
 * import { parsePromql } from "./promql_rewrite.ts";
 * parsePromql("sum by (node) (up)").topNode.name; // "PromQL"
 * ```
 */
export function parsePromql(expr: string, options: { literals?: boolean } = {}): Tree {
  return parseChecked(expr, options.literals ?? true);
}

function parseChecked(expr: string, literals = true): Tree {
  if (!expr.isWellFormed()) {
    throw new SyntaxError(
      `Cannot parse PromQL query ${quoteQuery(expr)}: it contains a lone UTF-16 surrogate`,
      { cause: { query: expr } },
    );
  }
  const tree = parser.parse(expr);
  const error = firstError(tree);
  if (error !== null) throw syntaxError(expr, error, "syntax error");
  if (!literals) return tree;
  tree.iterate({
    enter(ref) {
      if (ref.name !== "StringLiteral") return;
      const problem = unquoteProblem(expr.slice(ref.from, ref.to));
      if (problem !== null) throw syntaxError(expr, ref.from + problem.offset, problem.reason);
    },
  });
  return tree;
}

/** Position of the first error node, or null if the tree has none. */
function firstError(tree: Tree): number | null {
  let found: number | null = null;
  tree.iterate({
    enter(ref) {
      if (found === null && ref.type.isError) found = ref.from;
      return found === null;
    },
  });
  return found;
}

function syntaxError(expr: string, position: number, reason: string): SyntaxError {
  const before = expr.slice(0, position);
  const line = before.split("\n").length;
  const column = position - (before.lastIndexOf("\n") + 1) + 1;
  const start = Math.max(0, position - 20);
  const snippet = (start > 0 ? "…" : "") + expr.slice(start, position) + "⟨here⟩" +
    expr.slice(position, position + 20) + (position + 20 < expr.length ? "…" : "");
  const where = position >= expr.length ? "at the end" : `at offset ${position}`;
  return new SyntaxError(
    `Cannot parse PromQL query ${quoteQuery(expr)}: ${reason} ${where} ` +
      `(line ${line}, column ${column}): ${JSON.stringify(snippet)}`,
    { cause: { query: expr, position, line, column, snippet, reason } },
  );
}

function quoteQuery(expr: string): string {
  return JSON.stringify(
    expr.length > MAX_QUOTED_QUERY ? expr.slice(0, MAX_QUOTED_QUERY) + "…" : expr,
  );
}

/**
 * The splice that adds `matcher` to one VectorSelector, or null if it already
 * carries exactly that matcher. Throws TypeError on a conflicting matcher.
 */
function matcherSplice(
  expr: string,
  selector: SyntaxNode,
  matcher: string,
  wanted: { readonly label: Uint8Array; readonly value: Uint8Array | null },
): Splice | null {
  const braces = selector.getChild("LabelMatchers");
  if (braces === null) {
    const name = selector.getChild("Identifier");
    if (name === null) throw unexpectedTree(expr, selector, "a selector without name or braces");
    return { from: name.to, to: name.to, text: `{${matcher}}` };
  }
  const items: SyntaxNode[] = [];
  for (let child = braces.firstChild; child !== null; child = child.nextSibling) {
    if (MATCHER_NODES.has(child.name)) items.push(child);
  }
  let identical = false;
  for (const item of items) {
    if (item.name === "QuotedLabelName") continue; // the metric name, not a label matcher
    const nameNode = item.name === "UnquotedLabelMatcher"
      ? item.getChild("LabelName")
      : item.getChild("QuotedLabelName")?.getChild("StringLiteral") ?? null;
    const op = item.getChild("MatchOp")?.firstChild ?? null;
    const valueNode = item.getChild("StringLiteral");
    if (nameNode === null || op === null || valueNode === null) {
      throw unexpectedTree(expr, item, "an incomplete label matcher");
    }
    const nameText = expr.slice(nameNode.from, nameNode.to);
    const name = item.name === "UnquotedLabelMatcher" ? UTF8.encode(nameText) : unquote(nameText);
    if (!bytesEqual(name, wanted.label)) continue;
    const selectorText = expr.slice(selector.from, selector.to);
    const existing = expr.slice(item.from, item.to);
    if (wanted.value === null) {
      throw new TypeError(
        `Selector ${selectorText} in query ${quoteQuery(expr)} already has matcher ${existing} ` +
          `on the cluster label: a batched query selects its clusters with ${matcher} alone, ` +
          `and cannot tell which of them the existing matcher was meant for`,
        { cause: { query: expr, selector: selectorText, matcher: existing, position: item.from } },
      );
    }
    if (
      op.name === "EqlSingle" &&
      bytesEqual(unquote(expr.slice(valueNode.from, valueNode.to)), wanted.value)
    ) {
      identical = true;
      continue;
    }
    throw new TypeError(
      `Selector ${selectorText} in query ${quoteQuery(expr)} already has matcher ${existing}, ` +
        `which conflicts with ${matcher}`,
      { cause: { query: expr, selector: selectorText, matcher: existing, position: item.from } },
    );
  }
  if (identical) return null;
  const last = items.at(-1);
  if (last === undefined) {
    if (expr[braces.from] !== "{") throw unexpectedTree(expr, braces, "label matchers without '{'");
    return { from: braces.from + 1, to: braces.from + 1, text: matcher };
  }
  return { from: last.to, to: last.to, text: `, ${matcher}` };
}

/**
 * Splices that replace the windows of a FunctionCall's matrix arguments, if it
 * takes one. `windowFor` gets the current window text and returns the new one,
 * or null to leave it unchanged.
 */
function windowSplices(
  expr: string,
  call: SyntaxNode,
  windowFor: (current: string) => string | null,
): Splice[] {
  const id = call.getChild("FunctionIdentifier");
  const body = call.getChild("FunctionCallBody");
  if (id === null || body === null) return [];
  const name = expr.slice(id.from, id.to);
  if (!WINDOW_FUNCTIONS.has(name) && !name.endsWith("_over_time")) return [];
  const splices: Splice[] = [];
  for (let arg = body.firstChild; arg !== null; arg = arg.nextSibling) {
    let inner: SyntaxNode | null = arg;
    while (inner !== null && ARGUMENT_WRAPPERS.has(inner.name)) inner = inner.firstChild;
    if (inner?.name !== "MatrixSelector") continue;
    const duration = inner.getChild("DurationExpr");
    if (duration === null) throw unexpectedTree(expr, inner, "a range without a duration");
    const window = windowFor(expr.slice(duration.from, duration.to));
    if (window !== null) splices.push({ from: duration.from, to: duration.to, text: window });
  }
  return splices;
}

function unexpectedTree(expr: string, node: SyntaxNode, what: string): Error {
  return new Error(
    `Unexpected parse tree for ${quoteQuery(expr)}: ${what} at offset ${node.from}`,
    { cause: { query: expr, position: node.from, node: node.name } },
  );
}

/** Applies non-overlapping splices from the end of the text backwards. */
function applySplices(expr: string, splices: Splice[]): string {
  const ordered = [...splices].sort((a, b) => b.from - a.from || b.to - a.to);
  let out = expr;
  let limit = expr.length;
  for (const splice of ordered) {
    if (splice.to > limit) {
      throw new Error(`Overlapping edits at offset ${splice.from} of ${quoteQuery(expr)}`);
    }
    out = out.slice(0, splice.from) + splice.text + out.slice(splice.to);
    limit = splice.from;
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function hex(code: number, width: number): string {
  return code.toString(16).toUpperCase().padStart(width, "0");
}

/** Decodes a PromQL string literal to its bytes (it was checked by {@linkcode parseChecked}). */
function unquote(literal: string): Uint8Array {
  const bytes: number[] = [];
  const problem = decodeLiteral(literal, bytes);
  if (problem !== null) {
    throw new SyntaxError(`Invalid PromQL string ${literal}: ${problem.reason}`);
  }
  return Uint8Array.from(bytes);
}

function unquoteProblem(literal: string): { offset: number; reason: string } | null {
  return decodeLiteral(literal, []);
}

const UTF8_DECODER = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes a PromQL string literal as Prometheus's lexer and Go's
 * `strconv.Unquote` do, to text; null if Prometheus would reject it or its
 * bytes are not UTF-8 (a JavaScript string cannot hold them).
 *
 * @example
 * ```ts
 * import { unquotePromql } from "./promql_rewrite.ts";
 * unquotePromql("'a\\tb'"); // "a\tb"
 * unquotePromql('"\\xff"'); // null
 * ```
 */
export function unquotePromql(literal: string): string | null {
  const bytes: number[] = [];
  if (decodeLiteral(literal, bytes) !== null) return null;
  try {
    return UTF8_DECODER.decode(Uint8Array.from(bytes));
  } catch {
    return null;
  }
}

const SIMPLE_ESCAPES: Readonly<Record<string, number>> = {
  a: 0x07,
  b: 0x08,
  f: 0x0c,
  n: 0x0a,
  r: 0x0d,
  t: 0x09,
  v: 0x0b,
  "\\": 0x5c,
};

/**
 * Decodes a string literal the way Prometheus's lexer (`lexString`,
 * `lexRawString`, `lexEscape`) and `strutil.Unquote` do, appending the bytes
 * to `out`. Returns the offset and reason of the first problem, or null.
 */
function decodeLiteral(
  literal: string,
  out: number[],
): { offset: number; reason: string } | null {
  const quote = literal[0];
  if (quote !== '"' && quote !== "'" && quote !== "`") {
    return { offset: 0, reason: "not a string literal" };
  }
  let i = 1;
  while (i < literal.length) {
    const code = literal.codePointAt(i) ?? 0;
    const ch = String.fromCodePoint(code);
    if (ch === quote) {
      return i === literal.length - 1 ? null : { offset: i + 1, reason: "text after a string" };
    }
    if (code === 0xfffd) return { offset: i, reason: "invalid UTF-8 rune (U+FFFD) in a string" };
    if (quote !== "`" && ch === "\n") return { offset: i, reason: "unterminated quoted string" };
    if (quote === "`" || ch !== "\\") {
      out.push(...UTF8.encode(ch));
      i += ch.length;
      continue;
    }
    const escape = literal[i + 1];
    if (escape === undefined) return { offset: i, reason: "escape sequence not terminated" };
    const simple = SIMPLE_ESCAPES[escape];
    if (simple !== undefined || escape === quote) {
      out.push(simple ?? escape.charCodeAt(0));
      i += 2;
      continue;
    }
    const numeric = escape === "x"
      ? { digits: literal.slice(i + 2, i + 4), pattern: /^[0-9a-fA-F]{2}$/, base: 16, skip: 4 }
      : escape === "u"
      ? { digits: literal.slice(i + 2, i + 6), pattern: /^[0-9a-fA-F]{4}$/, base: 16, skip: 6 }
      : escape === "U"
      ? { digits: literal.slice(i + 2, i + 10), pattern: /^[0-9a-fA-F]{8}$/, base: 16, skip: 10 }
      : escape >= "0" && escape <= "7"
      ? { digits: literal.slice(i + 1, i + 4), pattern: /^[0-7]{3}$/, base: 8, skip: 4 }
      : null;
    if (numeric === null) {
      return { offset: i, reason: `unknown escape sequence \\${escape} in a string` };
    }
    if (!numeric.pattern.test(numeric.digits)) {
      return { offset: i, reason: `illegal escape sequence in a string` };
    }
    const value = parseInt(numeric.digits, numeric.base);
    if (escape === "x" || (escape >= "0" && escape <= "7")) {
      if (value > 0xff) return { offset: i, reason: "octal escape above \\377 in a string" };
      out.push(value); // a single byte, possibly not UTF-8 (as in Go)
    } else {
      if (value > 0x10ffff || (value >= 0xd800 && value < 0xe000)) {
        return { offset: i, reason: "escape sequence is an invalid Unicode code point" };
      }
      out.push(...UTF8.encode(String.fromCodePoint(value)));
    }
    i += numeric.skip;
  }
  return { offset: literal.length, reason: "unterminated string" };
}

// ---------------------------------------------------------------------------
// Batched queries: one query for several clusters.

/** RE2 metacharacters, as escaped by Go's `regexp.QuoteMeta`. */
const REGEX_META = /[\\.+*?()|[\]{}^$]/g;

/**
 * Escapes a string for RE2 (Go's `regexp.QuoteMeta`): every one of
 * `\ . + * ? ( ) | [ ] { } ^ $` gets a backslash, so the pattern matches the
 * string literally. Prometheus anchors a regex matcher itself (`^(?s:…)$`),
 * so no anchors are added.
 *
 * @param value Any string.
 * @returns The pattern, not yet quoted as a PromQL string.
 *
 * @example
 * ```ts
 * import { escapeRegex } from "./promql_rewrite.ts";
 * escapeRegex("a.b|c"); // "a\\.b\\|c"
 * ```
 */
export function escapeRegex(value: string): string {
  if (typeof value !== "string") {
    throw new TypeError(`Regex value must be a string, got ${typeof value}`);
  }
  return value.replace(REGEX_META, "\\$&");
}

/** The alternation `v1|v2|…` of a batch's values, checked. */
function batchRegex(label: string, values: readonly string[]): string {
  if (!Array.isArray(values)) {
    throw new TypeError(`Values for label ${label} must be an array, got ${typeof values}`);
  }
  if (values.length === 0) {
    throw new RangeError(`Values for label ${label} must not be empty: a batch needs a cluster`);
  }
  const seen = new Set<string>();
  for (const value of values) {
    if (typeof value !== "string") {
      throw new TypeError(`Value for label ${label} must be a string, got ${typeof value}`);
    }
    if (value === "") {
      throw new RangeError(
        `Values for label ${label} must not contain an empty value: it would select series ` +
          `without the label`,
        { cause: { values } },
      );
    }
    if (seen.has(value)) {
      throw new RangeError(
        `Values for label ${label} contain ${JSON.stringify(value)} twice`,
        { cause: { values, duplicate: value } },
      );
    }
    seen.add(value);
    quotePromqlString(value); // refuses lone surrogates, naming the value
  }
  return values.map(escapeRegex).join("|");
}

/**
 * Whether every series of a per-cluster query's answer carries the cluster
 * label, following Prometheus's engine on the expression as sent for one
 * cluster (every selector with the cluster matcher):
 * - a selector carries it; a function keeps its vector argument's labels;
 * - an aggregation `by (L)` carries it if `L` names it and its input carries
 *   it (an empty value is no label); `without (L)` if its input does (and
 *   `L` cannot name it); no grouping: no; `topk`/`bottomk`/`limitk`/
 *   `limit_ratio` keep their input's labels;
 * - vector ⊕ vector: `group_left(I)` keeps the left side's labels, and
 *   copies `I` from the right side (a label the right side lacks is
 *   deleted); `group_right` mirrors it; one-to-one `on (L)` keeps only `L`;
 *   one-to-one `ignoring (L)` or without modifier keeps the left side's;
 *   `and`/`unless` the left side's; `or` both sides', which must agree;
 * - vector ⊕ scalar: the vector side's.
 *
 * A batched query ({@linkcode RewriteOptions.values}) always carries the
 * label; its caller deletes it from the series of a query for which this is
 * false, and the answer is then what each cluster's own query returns.
 *
 * The analysis also refuses (throws) every construct the batched form
 * refuses, with the same message: the answer only matters for batching.
 *
 * @param expr The catalogue expression (per cluster, before or after the
 *   single-cluster rewrite: the answer is the same).
 * @param label The cluster label, e.g. `clusterID`.
 * @returns True if every series of the per-cluster answer has the label.
 * @throws {SyntaxError} If `expr` does not parse.
 * @throws {TypeError} If `expr` has a construct whose answer cannot be split
 *   by the cluster label (the message names it and says why).
 *
 * @example
 * ```ts
 * import { carriesLabel } from "./promql_rewrite.ts";
 * carriesLabel("x * on(node) group_left(p) max by (node, p) (y)", "clusterID"); // true
 * carriesLabel("sum by (pod) (x)", "clusterID"); // false
 * ```
 */
export function carriesLabel(expr: string, label: string): boolean {
  if (typeof expr !== "string") {
    throw new TypeError(`PromQL expression must be a string, got ${typeof expr}`);
  }
  checkLabel(label);
  return analyse(expr, parseChecked(expr), label, false).carries;
}

type ValueKind = "vector" | "matrix" | "scalar" | "string";

interface Analysis {
  readonly kind: ValueKind;
  /** Every series carries the cluster label in the per-cluster answer. */
  readonly carries: boolean;
}

/** Functions that keep the labels of their one vector or range-vector argument. */
const LABEL_KEEPING_FUNCTIONS: ReadonlySet<string> = new Set([
  "abs",
  "acos",
  "acosh",
  "asin",
  "asinh",
  "atan",
  "atanh",
  "avg_over_time",
  "ceil",
  "changes",
  "clamp",
  "clamp_max",
  "clamp_min",
  "cos",
  "cosh",
  "count_over_time",
  "deg",
  "delta",
  "deriv",
  "double_exponential_smoothing",
  "exp",
  "first_over_time",
  "floor",
  "histogram_avg",
  "histogram_count",
  "histogram_fraction",
  "histogram_quantile",
  "histogram_stddev",
  "histogram_stdvar",
  "histogram_sum",
  "holt_winters",
  "idelta",
  "increase",
  "irate",
  "last_over_time",
  "ln",
  "log10",
  "log2",
  "mad_over_time",
  "max_over_time",
  "min_over_time",
  "predict_linear",
  "present_over_time",
  "quantile_over_time",
  "rad",
  "rate",
  "resets",
  "round",
  "sgn",
  "sin",
  "sinh",
  "sort",
  "sort_by_label",
  "sort_by_label_desc",
  "sort_desc",
  "sqrt",
  "stddev_over_time",
  "stdvar_over_time",
  "sum_over_time",
  "tan",
  "tanh",
  "timestamp",
  "ts_of_first_over_time",
  "ts_of_last_over_time",
  "ts_of_max_over_time",
  "ts_of_min_over_time",
]);

/** Date functions: keep their argument's labels; without one they read `vector(time())`. */
export const DATE_FUNCTIONS: ReadonlySet<string> = new Set([
  "day_of_month",
  "day_of_week",
  "day_of_year",
  "days_in_month",
  "hour",
  "minute",
  "month",
  "year",
]);

/** Scalar functions without arguments (no series, nothing to split). */
const SCALAR_FUNCTIONS: ReadonlySet<string> = new Set(["time", "pi"]);

/** Why a function cannot be batched. */
const REFUSED_FUNCTIONS: Readonly<Record<string, string>> = {
  absent: "its series takes its labels from the selector's equality matchers, and a batch " +
    "selects its clusters with a regex matcher; it is also one answer for all clusters, " +
    "not one per cluster",
  absent_over_time: "its series takes its labels from the selector's equality matchers, and a " +
    "batch selects its clusters with a regex matcher; it is also one answer for all clusters, " +
    "not one per cluster",
  vector: "its series has no labels, so it belongs to no cluster",
  scalar: "it turns the whole batch's series into one number (NaN unless exactly one series), " +
    "mixing the clusters",
  info: "it joins on identifying labels (instance, job) that may repeat across clusters",
};

/** Aggregations whose result keeps each input series' labels. */
const LABEL_KEEPING_AGGREGATIONS: ReadonlySet<string> = new Set([
  "topk",
  "bottomk",
  "limitk",
  "limit_ratio",
]);

const SET_OPERATORS: ReadonlySet<string> = new Set(["And", "Or", "Unless"]);

interface AnalysisContext {
  readonly expr: string;
  readonly label: string;
  readonly labelBytes: Uint8Array;
  /** Collect the splices of the batched form. */
  readonly batch: boolean;
  readonly splices: Splice[];
}

/**
 * Walks the expression: computes whether the per-cluster answer carries the
 * cluster label, refuses what a batch cannot answer per cluster, and (with
 * `batch`) collects the grouping and `on` splices of the batched form.
 */
function analyse(
  expr: string,
  tree: Tree,
  label: string,
  batch: boolean,
): { carries: boolean; splices: Splice[] } {
  const ctx: AnalysisContext = {
    expr,
    label,
    labelBytes: UTF8.encode(label),
    batch,
    splices: [],
  };
  const top = tree.topNode.firstChild;
  if (top === null) throw unexpectedTree(expr, tree.topNode, "an empty query");
  const result = analyseNode(ctx, top);
  if (result.kind === "scalar" || result.kind === "string") {
    throw refusal(
      ctx,
      top,
      `a ${result.kind} query`,
      `its answer is one ${result.kind} with no labels, so it cannot be split by cluster`,
    );
  }
  return { carries: result.carries, splices: ctx.splices };
}

function analyseNode(ctx: AnalysisContext, node: SyntaxNode): Analysis {
  switch (node.name) {
    case "VectorSelector":
      return { kind: "vector", carries: true };
    case "MatrixSelector":
    case "SubqueryExpr":
      return { kind: "matrix", carries: analyseNode(ctx, onlyExpr(ctx, node)).carries };
    case "ParenExpr":
    case "OffsetExpr":
    case "StepInvariantExpr":
    case "AnchoredExpr":
    case "SmoothedExpr":
    case "UnaryExpr":
      return analyseNode(ctx, onlyExpr(ctx, node));
    case "NumberDurationLiteral":
      return { kind: "scalar", carries: false };
    case "StringLiteral":
      return { kind: "string", carries: false };
    case "AggregateExpr":
      return analyseAggregation(ctx, node);
    case "BinaryExpr":
      return analyseBinary(ctx, node);
    case "FunctionCall":
      return analyseFunction(ctx, node);
    default:
      throw unexpectedTree(ctx.expr, node, `an expression of type ${node.name}`);
  }
}

/**
 * The expression children of a node of a {@linkcode parsePromql} tree (those
 * of lezer-promql's `Expr` group), in order.
 *
 * @example
 * ```ts
 * import { exprChildren, parsePromql } from "./promql_rewrite.ts";
 * exprChildren(parsePromql("up").topNode).map((n) => n.name); // ["VectorSelector"]
 * ```
 */
export function exprChildren(node: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (let child = node.firstChild; child !== null; child = child.nextSibling) {
    if (child.type.is("Expr")) out.push(child);
  }
  return out;
}

/** All children of a node of a {@linkcode parsePromql} tree, in order. */
export function childNodes(node: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (let child = node.firstChild; child !== null; child = child.nextSibling) out.push(child);
  return out;
}

/**
 * Milliseconds of the text of a `NumberDurationLiteralInDurationContext` node:
 * a plain number is seconds (`90`, `1.5`), anything else a Prometheus
 * duration (`5m`, `1h30m`); null if it is neither.
 *
 * @example
 * ```ts
 * import { durationLiteralMs } from "./promql_rewrite.ts";
 * durationLiteralMs("1.5"); // 1500
 * durationLiteralMs("5m"); // 300000
 * durationLiteralMs("5x"); // null
 * ```
 */
export function durationLiteralMs(literal: string): number | null {
  if (/^[0-9]+(\.[0-9]+)?$/.test(literal)) return Number(literal) * 1000;
  try {
    return parseDuration(literal);
  } catch {
    return null;
  }
}

function onlyExpr(ctx: AnalysisContext, node: SyntaxNode): SyntaxNode {
  const inner = exprChildren(node)[0];
  if (inner === undefined) throw unexpectedTree(ctx.expr, node, "an expression without operand");
  return inner;
}

function analyseAggregation(ctx: AnalysisContext, node: SyntaxNode): Analysis {
  const opNode = node.getChild("AggregateOp");
  const body = node.getChild("FunctionCallBody");
  if (opNode === null || body === null) {
    throw unexpectedTree(ctx.expr, node, "an aggregation without operator or body");
  }
  const op = ctx.expr.slice(opNode.from, opNode.to).toLowerCase();
  const args = exprChildren(body);
  const input = args.at(-1);
  if (input === undefined) throw unexpectedTree(ctx.expr, node, "an aggregation without input");
  const inputs = args.map((arg) => analyseNode(ctx, arg));
  const inner = inputs.at(-1)!;
  if (op === "count_values") {
    const dst = args[0];
    if (dst?.name === "StringLiteral" && bytesEqual(unquote(textOf(ctx, dst)), ctx.labelBytes)) {
      throw refusal(
        ctx,
        node,
        `count_values onto the cluster label ${ctx.label}`,
        `it overwrites the cluster label with sample values, so the series can no longer be ` +
          `told apart by cluster`,
      );
    }
  }
  const modifier = node.getChild("AggregateModifier");
  let groupingCarries: boolean;
  if (modifier === null) {
    groupingCarries = false;
    if (ctx.batch) ctx.splices.push({ from: opNode.to, to: opNode.to, text: ` by (${ctx.label})` });
  } else {
    const labels = modifier.getChild("GroupingLabels");
    if (labels === null) throw unexpectedTree(ctx.expr, modifier, "a grouping without labels");
    const names = hasLabel(ctx, labels);
    if (modifier.getChild("Without") !== null) {
      if (names) {
        throw refusal(
          ctx,
          node,
          `${textOf(ctx, opNode)} ${textOf(ctx, modifier)}`,
          `it aggregates away the cluster label ${ctx.label}, so a batch would add up the ` +
            `clusters' series together`,
        );
      }
      groupingCarries = inner.carries;
    } else {
      groupingCarries = names && inner.carries;
      if (ctx.batch && !names) ctx.splices.push(addLabelSplice(ctx, labels));
    }
  }
  return {
    kind: "vector",
    carries: LABEL_KEEPING_AGGREGATIONS.has(op) ? inner.carries : groupingCarries,
  };
}

function analyseBinary(ctx: AnalysisContext, node: SyntaxNode): Analysis {
  const sides = exprChildren(node);
  const lhsNode = sides[0];
  const rhsNode = sides[1];
  if (lhsNode === undefined || rhsNode === undefined || sides.length !== 2) {
    throw unexpectedTree(ctx.expr, node, "a binary operation without two operands");
  }
  const lhs = analyseNode(ctx, lhsNode);
  const rhs = analyseNode(ctx, rhsNode);
  const opNode = lhsNode.nextSibling;
  if (opNode === null) throw unexpectedTree(ctx.expr, node, "a binary operation without operator");
  const opText = textOf(ctx, opNode);
  if (lhs.kind !== "vector" || rhs.kind !== "vector") {
    // Scalar on one side (or both): no matching, the vector side's labels are kept.
    if (lhs.kind === "vector") return lhs;
    if (rhs.kind === "vector") return rhs;
    return { kind: "scalar", carries: false };
  }
  if (node.getChild("FillModifier") !== null) {
    throw refusal(
      ctx,
      node,
      `the fill modifier of ${opText}`,
      `filled-in series take their labels from one side only, which is not analysed`,
    );
  }
  const clause = node.getChild("MatchingModifierClause");
  const groupings = clause?.getChildren("GroupingLabels") ?? [];
  const matchLabels = groupings[0] ?? null;
  const includeLabels = groupings[1] ?? null;
  const on = clause?.getChild("On") != null;
  const ignoring = clause?.getChild("Ignoring") != null;
  const groupLeft = clause?.getChild("GroupLeft") != null;
  const groupRight = clause?.getChild("GroupRight") != null;
  const matchNames = matchLabels !== null && hasLabel(ctx, matchLabels);
  const includeNames = includeLabels !== null && hasLabel(ctx, includeLabels);
  const modifierText = clause === null ? "" : ` ${textOf(ctx, clause)}`;
  const construct = `${opText}${modifierText}`;

  if (ignoring && matchNames) {
    throw refusal(
      ctx,
      node,
      construct,
      `it ignores the cluster label ${ctx.label} when matching, so a batch would match series ` +
        `of different clusters with each other`,
    );
  }
  if (on && includeNames) {
    throw refusal(
      ctx,
      node,
      construct,
      `a batch must match on the cluster label ${ctx.label}, and Prometheus refuses a label ` +
        `in both on (…) and group_left/group_right (…)`,
    );
  }
  // Does the label take part in matching? Then both sides must agree on it:
  // per cluster a side without it never matches a side with it, in a batch
  // (where both sides carry it) they would.
  const matchesOnLabel = on ? matchNames : true;
  if (matchesOnLabel && lhs.carries !== rhs.carries) {
    throw refusal(
      ctx,
      node,
      construct,
      `its ${lhs.carries ? "left" : "right"} side carries the cluster label ${ctx.label} and ` +
        `its ${lhs.carries ? "right" : "left"} side does not, while matching uses all labels ` +
        `(or names ${ctx.label}): per cluster no series match, in a batch they would`,
    );
  }
  if (ctx.batch && on && !matchNames && matchLabels !== null) {
    ctx.splices.push(addLabelSplice(ctx, matchLabels));
  }

  if (SET_OPERATORS.has(opNode.name)) {
    if (opNode.name === "Or" && lhs.carries !== rhs.carries) {
      throw refusal(
        ctx,
        node,
        construct,
        `its ${lhs.carries ? "left" : "right"} side carries the cluster label ${ctx.label} and ` +
          `the other does not, so the per-cluster answer mixes series with and without it and ` +
          `a batched answer cannot be turned back into it`,
      );
    }
    return { kind: "vector", carries: lhs.carries };
  }
  if (groupLeft) return { kind: "vector", carries: includeNames ? rhs.carries : lhs.carries };
  if (groupRight) return { kind: "vector", carries: includeNames ? lhs.carries : rhs.carries };
  if (on) return { kind: "vector", carries: matchNames && lhs.carries };
  return { kind: "vector", carries: lhs.carries };
}

function analyseFunction(ctx: AnalysisContext, node: SyntaxNode): Analysis {
  const id = node.getChild("FunctionIdentifier");
  const body = node.getChild("FunctionCallBody");
  if (id === null || body === null) {
    throw unexpectedTree(ctx.expr, node, "a function call without name or body");
  }
  const name = textOf(ctx, id);
  const args = exprChildren(body);
  const refused = REFUSED_FUNCTIONS[name];
  if (refused !== undefined) throw refusal(ctx, node, `${name}(…)`, refused);
  const inputs = args.map((arg) => analyseNode(ctx, arg));
  if (SCALAR_FUNCTIONS.has(name)) return { kind: "scalar", carries: false };
  if (name === "label_replace" || name === "label_join") {
    const dst = args[1];
    if (dst?.name === "StringLiteral" && bytesEqual(unquote(textOf(ctx, dst)), ctx.labelBytes)) {
      throw refusal(
        ctx,
        node,
        `${name} onto the cluster label ${ctx.label}`,
        `it rewrites the cluster label itself, so the answer's series can no longer be told ` +
          `apart by cluster`,
      );
    }
  } else if (DATE_FUNCTIONS.has(name)) {
    if (args.length === 0) {
      throw refusal(
        ctx,
        node,
        `${name}()`,
        `without an argument it reads vector(time()), one series with no labels that belongs ` +
          `to no cluster`,
      );
    }
  } else if (!LABEL_KEEPING_FUNCTIONS.has(name)) {
    throw refusal(
      ctx,
      node,
      `${name}(…)`,
      `this function is not known to keep the labels of its argument, so its answer might not ` +
        `be splittable by cluster`,
    );
  }
  const series = inputs.filter((input) => input.kind === "vector" || input.kind === "matrix");
  if (series.length !== 1) {
    throw refusal(
      ctx,
      node,
      `${name}(…)`,
      `it has ${series.length} vector arguments instead of one, so whose labels it keeps is ` +
        `not known`,
    );
  }
  return { kind: "vector", carries: series[0]!.carries };
}

function textOf(ctx: AnalysisContext, node: SyntaxNode): string {
  return ctx.expr.slice(node.from, node.to);
}

/** Whether a `GroupingLabels` list names the cluster label (plain or quoted). */
function hasLabel(ctx: AnalysisContext, labels: SyntaxNode): boolean {
  for (let child = labels.firstChild; child !== null; child = child.nextSibling) {
    if (child.name === "LabelName") {
      if (textOf(ctx, child) === ctx.label) return true;
    } else if (child.name === "QuotedLabelName") {
      const literal = child.getChild("StringLiteral");
      if (literal !== null && bytesEqual(unquote(textOf(ctx, literal)), ctx.labelBytes)) {
        return true;
      }
    }
  }
  return false;
}

/** The splice that appends the cluster label to a `GroupingLabels` list. */
function addLabelSplice(ctx: AnalysisContext, labels: SyntaxNode): Splice {
  let last: SyntaxNode | null = null;
  for (let child = labels.firstChild; child !== null; child = child.nextSibling) {
    if (child.name === "LabelName" || child.name === "QuotedLabelName") last = child;
  }
  if (last !== null) return { from: last.to, to: last.to, text: `, ${ctx.label}` };
  if (ctx.expr[labels.from] !== "(") {
    throw unexpectedTree(ctx.expr, labels, "a label list without '('");
  }
  return { from: labels.from + 1, to: labels.from + 1, text: ctx.label };
}

function refusal(
  ctx: AnalysisContext,
  node: SyntaxNode,
  construct: string,
  why: string,
): TypeError {
  return new TypeError(
    `Cannot batch query ${quoteQuery(ctx.expr)} over several clusters: ${construct} at offset ` +
      `${node.from}: ${why}`,
    { cause: { query: ctx.expr, construct, position: node.from, label: ctx.label } },
  );
}

export { parseDuration };
