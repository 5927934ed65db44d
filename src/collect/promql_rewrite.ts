/**
 * Rewrites CMMO's PromQL for one cluster of a hub's Thanos (BRIDGE §1): every
 * vector selector gets a cluster matcher such as `clusterID="<uuid>"`, and the
 * range window of `rate`-like and `*_over_time` calls can be replaced.
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
  /** Value to match exactly (any string: quotes, backslashes, newlines, unicode). */
  value: string;
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
 *   `options.label` (another value or another operator), if both
 *   `rangeWindow` and `minRangeWindow` are set, or if `minRangeWindow` meets a
 *   window that is a duration expression (`[1m+1m]`).
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
 * ```
 */
export function rewriteQuery(expr: string, options: RewriteOptions): string {
  if (typeof expr !== "string") {
    throw new TypeError(`PromQL expression must be a string, got ${typeof expr}`);
  }
  const { label, value, rangeWindow, minRangeWindow } = options;
  checkLabel(label);
  if (typeof value !== "string") {
    throw new TypeError(`Value for label ${label} must be a string, got ${typeof value}`);
  }
  if (value === "") {
    throw new RangeError(
      `Value for label ${label} must not be empty: ${label}="" would match series without the label`,
    );
  }
  const literal = quotePromqlString(value);
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
  const matcher = `${label}=${literal}`;
  const wanted = { label: UTF8.encode(label), value: UTF8.encode(value) };
  const splices: Splice[] = [];
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
function parseChecked(expr: string): Tree {
  if (!expr.isWellFormed()) {
    throw new SyntaxError(
      `Cannot parse PromQL query ${quoteQuery(expr)}: it contains a lone UTF-16 surrogate`,
      { cause: { query: expr } },
    );
  }
  const tree = parser.parse(expr);
  const error = firstError(tree);
  if (error !== null) throw syntaxError(expr, error, "syntax error");
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
  wanted: { readonly label: Uint8Array; readonly value: Uint8Array },
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
    if (
      op.name === "EqlSingle" &&
      bytesEqual(unquote(expr.slice(valueNode.from, valueNode.to)), wanted.value)
    ) {
      identical = true;
      continue;
    }
    const selectorText = expr.slice(selector.from, selector.to);
    const existing = expr.slice(item.from, item.to);
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

export { parseDuration };
