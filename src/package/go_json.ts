/**
 * Go `encoding/json` compatible serialization for manifest.json.
 *
 * CMMO renders the manifest with `json.MarshalIndent(m, "", " ")` (contract §4.4). Go's
 * encoder differs from `JSON.stringify` in string escaping (`<`, `>`, `&`, U+2028 and U+2029
 * are escaped), in `-0`, in `time.Time` values and in the indentation of empty containers.
 *
 * @module
 */

// Control characters are exactly what these patterns are for.
// deno-lint-ignore no-control-regex
const NEEDS_ESCAPE = /[\u0000-\u001f"\\<>&\u2028\u2029\ud800-\udfff]/;
// deno-lint-ignore no-control-regex
const ESCAPED = /[\u0000-\u001f"\\<>&\u2028\u2029]/g;

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

function escapeChar(c: string): string {
  return SHORT_ESCAPES[c] ?? "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");
}

/**
 * Returns Go's `json.Marshal` of a string (with Go's default HTML escaping): `"` and `\`
 * are backslash-escaped, `\b`, `\f`, `\n`, `\r`, `\t` use their short forms, other control
 * characters and `<`, `>`, `&`, U+2028, U+2029 become `\u00XX`-style escapes; everything
 * else (including U+007F and non-ASCII) is copied. A lone surrogate is written as U+FFFD,
 * which is what its UTF-8 encoding would become anyway.
 *
 * @example Usage
 * ```ts
 * import { goJsonString } from "./go_json.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(goJsonString("a<b>&c"), '"a\\u003cb\\u003e\\u0026c"');
 * assert.equal(goJsonString("tab\there"), '"tab\\there"');
 * assert.equal(goJsonString("é"), '"é"');
 * ```
 *
 * @param s The string to encode.
 * @returns The JSON string literal, including the surrounding quotes.
 */
export function goJsonString(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) {
    return '"' + s + '"';
  }
  return '"' + s.toWellFormed().replace(ESCAPED, escapeChar) + '"';
}

/**
 * Formats a `Date` like Go's `time.Time` JSON encoding of a UTC time (RFC 3339 with up to
 * nine fraction digits, trailing zeros removed, no fraction when it is zero, suffix `Z`),
 * without the quotes. `Date` has millisecond precision, so at most three digits appear.
 *
 * @example Usage
 * ```ts
 * import { formatGoTime } from "./go_json.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatGoTime(new Date("2021-07-20T15:00:00.000Z")), "2021-07-20T15:00:00Z");
 * assert.equal(formatGoTime(new Date("2021-07-20T18:01:21.700Z")), "2021-07-20T18:01:21.7Z");
 * ```
 *
 * @param date The time to format.
 * @returns The RFC 3339 text.
 * @throws {RangeError} If the date is invalid or its year is outside 0..9999, which Go's
 * encoder rejects.
 */
export function formatGoTime(date: Date): string {
  const time = date.getTime();
  if (Number.isNaN(time)) {
    throw new RangeError("Cannot format an invalid Date as a Go time");
  }
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) {
    throw new RangeError(
      `Cannot format year ${year} as a Go JSON time: the year must be in 0..9999`,
      { cause: { date: date.toISOString() } },
    );
  }
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ for years 0..9999
  const fraction = iso.slice(20, 23).replace(/0+$/, "");
  return iso.slice(0, 19) + (fraction === "" ? "" : "." + fraction) + "Z";
}

/**
 * Returns Go's `json.Marshal` text of a float64. This equals JavaScript's shortest
 * round-trip `String(n)` (same digits, exponent form below 1e-6 and from 1e21 on), except
 * that Go keeps the sign of `-0`.
 */
function goJsonNumber(n: number): string {
  if (!Number.isFinite(n)) {
    throw new RangeError(`Cannot encode ${n} as JSON: Go's encoder rejects non-finite numbers`);
  }
  return n === 0 && 1 / n < 0 ? "-0" : String(n);
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Returns the same text as Go's `json.MarshalIndent(v, "", " ")` for a plain JavaScript value
 * shaped like the Go value:
 *
 * - plain objects are encoded like Go structs: keys in insertion order (so build them in the
 *   struct's field order); properties whose value is `undefined` are left out (like
 *   `omitempty`); an empty object is `{}`;
 * - arrays (`[]` when empty) and `null` (Go's nil slice);
 * - strings via {@linkcode goJsonString}, booleans, finite numbers (Go float64 encoding);
 * - `Date` values as Go `time.Time` strings via {@linkcode formatGoTime}.
 *
 * Nesting is indented with one space per level; there is no trailing newline.
 *
 * @example Usage
 * ```ts
 * import { marshalIndent } from "./go_json.ts";
 * import assert from "node:assert/strict";
 *
 * const text = marshalIndent({ uuid: "x", files: null, tags: [], upload: { upload: true } });
 * assert.equal(
 *   text,
 *   '{\n "uuid": "x",\n "files": null,\n "tags": [],\n "upload": {\n  "upload": true\n }\n}',
 * );
 * ```
 *
 * @param value The value to encode.
 * @returns The indented JSON text.
 * @throws {RangeError} For non-finite numbers and unencodable dates.
 * @throws {TypeError} For values Go could not produce (`undefined` outside an object
 * property, bigint, symbol, function, class instances other than `Date`) and for cycles.
 */
export function marshalIndent(value: unknown): string {
  return encode(value, "\n", new Set(), "value");
}

function encode(value: unknown, newline: string, ancestors: Set<object>, path: string): string {
  switch (typeof value) {
    case "string":
      return goJsonString(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      try {
        return goJsonNumber(value);
      } catch (error) {
        throw new RangeError(`Cannot encode ${path}: ${(error as Error).message}`, {
          cause: { path, value },
        });
      }
    case "object":
      break;
    default:
      throw new TypeError(`Cannot encode ${path}: unsupported type ${typeof value}`, {
        cause: { path },
      });
  }
  if (value === null) {
    return "null";
  }
  if (value instanceof Date) {
    return '"' + formatGoTime(value) + '"';
  }
  if (ancestors.has(value)) {
    throw new TypeError(`Cannot encode ${path}: the value contains a cycle`, { cause: { path } });
  }
  const inner = newline + " ";
  let out: string;
  ancestors.add(value);
  if (Array.isArray(value)) {
    if (value.length === 0) {
      out = "[]";
    } else {
      out = "[";
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        if (item === undefined) {
          throw new TypeError(`Cannot encode ${path}[${i}]: undefined`, { cause: { path } });
        }
        out += (i > 0 ? "," : "") + inner + encode(item, inner, ancestors, `${path}[${i}]`);
      }
      out += newline + "]";
    }
  } else if (isPlainObject(value)) {
    out = "{";
    let first = true;
    for (const key of Object.keys(value)) {
      const item = value[key];
      if (item === undefined) {
        continue;
      }
      out += (first ? "" : ",") + inner + goJsonString(key) + ": " +
        encode(item, inner, ancestors, `${path}.${key}`);
      first = false;
    }
    out += first ? "}" : newline + "}";
  } else {
    const name = (value as object).constructor?.name ?? "unknown";
    throw new TypeError(`Cannot encode ${path}: unsupported object type ${name}`, {
      cause: { path },
    });
  }
  ancestors.delete(value);
  return out;
}
