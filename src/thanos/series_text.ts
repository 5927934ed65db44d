/**
 * Fast parsing of one `query_range` series object.
 *
 * `JSON.parse` is slow on sample arrays such as `[[1793491200,"335413248"],…]`:
 * V8 internalizes short string values, and an integer-looking string's hash is
 * derived from its value, so byte counts that are multiples of the page size
 * (memory metrics) collide in the string table. Measured here: 2.5 MB of such
 * samples took 750 ms with `JSON.parse` instead of ~15 ms. This parser reads
 * the `values` array by hand (sample strings are sliced, never internalized)
 * and leaves every other member, such as `metric`, to `JSON.parse`.
 *
 * @module
 */

/** JSON character codes, shared with the streaming parser. */
export const QUOTE = 0x22;
/** `\` */
export const BACKSLASH = 0x5c;
/** `{` */
export const OPEN_BRACE = 0x7b;
/** `}` */
export const CLOSE_BRACE = 0x7d;
/** `[` */
export const OPEN_BRACKET = 0x5b;
/** `]` */
export const CLOSE_BRACKET = 0x5d;
/** `,` */
export const COMMA = 0x2c;
/** `:` */
export const COLON = 0x3a;

/** A JSON number, whole. */
const JSON_NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

function skipWs(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
    else return i;
  }
}

/** Index just after the JSON string starting at `s[i]` (a quote), or -1. */
function endOfString(s: string, i: number): number {
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === BACKSLASH) j++;
    else if (c === QUOTE) return j + 1;
  }
  return -1;
}

/** Index just after the JSON value starting at `s[i]`, or -1 (balanced scan). */
function endOfValue(s: string, i: number): number {
  const first = s.charCodeAt(i);
  if (first === QUOTE) return endOfString(s, i);
  if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
    let j = i;
    while (j < s.length) {
      const c = s.charCodeAt(j);
      if (c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET || c <= 0x20) break;
      j++;
    }
    return j;
  }
  let depth = 0;
  for (let j = i; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === QUOTE) {
      j = endOfString(s, j) - 1;
      if (j < 0) return -1;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
    } else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) {
      return j + 1;
    }
  }
  return -1;
}

/**
 * Parses `[[t,"v"],…]` starting at `s[i]`. Returns the samples and the index
 * after the array, or null when the text is not in that simple form (an escape
 * in a value, a non-number timestamp, …), so the caller can fall back to
 * `JSON.parse`.
 */
function parseSamples(s: string, i: number): { values: [number, string][]; end: number } | null {
  const values: [number, string][] = [];
  if (s.charCodeAt(i) !== OPEN_BRACKET) return null;
  i = skipWs(s, i + 1);
  if (s.charCodeAt(i) === CLOSE_BRACKET) return { values, end: i + 1 };
  for (;;) {
    if (s.charCodeAt(i) !== OPEN_BRACKET) return null;
    const tStart = skipWs(s, i + 1);
    let j = tStart;
    while (j < s.length) {
      const c = s.charCodeAt(j);
      if (c === COMMA || c <= 0x20) break;
      j++;
    }
    const tText = s.slice(tStart, j);
    // Only JSON's number grammar (Number() would also take "+1", "0x10", ".5", "Infinity").
    if (!JSON_NUMBER.test(tText)) return null;
    const t = Number(tText);
    if (!Number.isFinite(t)) return null;
    j = skipWs(s, j);
    if (s.charCodeAt(j) !== COMMA) return null;
    j = skipWs(s, j + 1);
    if (s.charCodeAt(j) !== QUOTE) return null;
    const vStart = j + 1;
    let k = vStart;
    for (; k < s.length; k++) {
      const c = s.charCodeAt(k);
      if (c === QUOTE) break;
      if (c === BACKSLASH) return null;
    }
    if (k >= s.length) return null;
    values.push([t, s.slice(vStart, k)]);
    k = skipWs(s, k + 1);
    if (s.charCodeAt(k) !== CLOSE_BRACKET) return null;
    i = skipWs(s, k + 1);
    const c = s.charCodeAt(i);
    if (c === CLOSE_BRACKET) return { values, end: i + 1 };
    if (c !== COMMA) return null;
    i = skipWs(s, i + 1);
  }
}

/**
 * Parses one series object of a matrix answer. Members other than `values`
 * are parsed with `JSON.parse`; `values` is read by hand. Returns the parsed
 * object, or the result of `JSON.parse(text)` when the fast path does not
 * apply. Throws `SyntaxError` like `JSON.parse` for invalid JSON.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSeriesText } from "./series_text.ts";
 * assert.deepEqual(
 *   parseSeriesText('{"metric":{"a":"1"},"values":[[1,"4096"],[61,"8192"]]}'),
 *   { metric: { a: "1" }, values: [[1, "4096"], [61, "8192"]] },
 * );
 * ```
 */
export function parseSeriesText(text: string): unknown {
  const out: Record<string, unknown> = {};
  let i = skipWs(text, 0);
  if (text.charCodeAt(i) !== OPEN_BRACE) return JSON.parse(text);
  i = skipWs(text, i + 1);
  if (text.charCodeAt(i) === CLOSE_BRACE) return JSON.parse(text);
  for (;;) {
    if (text.charCodeAt(i) !== QUOTE) return JSON.parse(text);
    const keyEnd = endOfString(text, i);
    if (keyEnd < 0) return JSON.parse(text);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWs(text, keyEnd);
    if (text.charCodeAt(i) !== COLON) return JSON.parse(text);
    i = skipWs(text, i + 1);
    if (key === "values") {
      const samples = parseSamples(text, i);
      if (samples === null) return JSON.parse(text);
      out[key] = samples.values;
      i = samples.end;
    } else {
      const end = endOfValue(text, i);
      if (end < 0) return JSON.parse(text);
      out[key] = JSON.parse(text.slice(i, end));
      i = end;
    }
    i = skipWs(text, i);
    const c = text.charCodeAt(i);
    if (c === CLOSE_BRACE) {
      // Anything after the object makes it invalid JSON: let JSON.parse say so.
      return skipWs(text, i + 1) === text.length ? out : JSON.parse(text);
    }
    if (c !== COMMA) return JSON.parse(text);
    i = skipWs(text, i + 1);
  }
}
