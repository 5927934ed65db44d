/**
 * Incremental parser for a Prometheus/Thanos `query_range` answer.
 *
 * The answer is one JSON object whose only large part is `data.result`, an array
 * with one object per series. {@linkcode SeriesStreamParser} scans the text as it
 * arrives (tracking string, escape and nesting state), cuts `data.result` into
 * one JSON text per series, `JSON.parse`s each one alone and hands it to a
 * callback at once. The remaining top-level fields (`status`, `data.resultType`,
 * `warnings`, `errorType`, `error`) are captured with a size cap, and any other
 * field is skipped without being stored, so memory stays bounded by the largest
 * single series whatever the answer size. Keys may come in any order.
 *
 * @module
 */

import { escapeControl } from "../model.ts";
import { Redactor } from "./redact.ts";
import {
  BACKSLASH,
  CLOSE_BRACE,
  CLOSE_BRACKET,
  COLON,
  COMMA,
  OPEN_BRACE,
  OPEN_BRACKET,
  parseSeriesText,
  QUOTE,
} from "./series_text.ts";

/** One series of a `matrix` answer: its labels and its `[unix seconds, "value"]` samples. */
export interface Series {
  /** Label name → label value. */
  metric: Record<string, string>;
  /** Samples in time order: `[timestamp in unix seconds, value as text]`. */
  values: Array<[number, string]>;
}

/** What {@linkcode SeriesStreamParser.finish} reports about the parts of the answer other than the series. */
export interface SeriesStreamResult {
  /** Top-level `status` (`"success"` or `"error"`), if present. */
  status: string | undefined;
  /** `data.resultType`, if present. */
  resultType: string | undefined;
  /** Whether `data.result` was present (as an array). */
  hasResult: boolean;
  /** Number of series handed to the callback. */
  series: number;
  /** Top-level `warnings`, as text; empty when absent or empty. */
  warnings: string[];
  /** Top-level `errorType`, if present. */
  errorType: string | undefined;
  /** Top-level `error`, if present. */
  error: string | undefined;
}

/** Limits of {@linkcode SeriesStreamParser}. */
export interface SeriesStreamLimits {
  /**
   * Largest single series, in UTF-8 bytes of its JSON text. A larger one fails
   * with a `RangeError` (`cause.limit === "series-bytes"`). Default 256 MiB.
   */
  maxSeriesBytes?: number;
  /**
   * Largest label value, in UTF-8 bytes. A larger one fails with a `RangeError`
   * (`cause.limit === "label-bytes"`). Default: no limit beyond `maxSeriesBytes`.
   */
  maxLabelBytes?: number;
  /**
   * Most series in one answer. One more fails with a `RangeError`
   * (`cause.limit === "series-count"`). Default: no limit.
   */
  maxSeries?: number;
  /**
   * Largest captured small field (`status`, `warnings`, `error`, …). A larger one
   * is kept as a truncated text prefix ending in `…` instead of failing. Default 1 MiB.
   */
  maxFieldChars?: number;
  /**
   * Removes secrets from any server text put in an error message or a kept
   * field, before that text is cut to length.
   */
  redactor?: Redactor;
  /**
   * `matrix` (default): a `query_range` answer, series in `data.result`.
   * `labels`: a `/api/v1/series` answer, label sets in `data` (each passed as a
   * series without samples).
   */
  shape?: "matrix" | "labels";
}

/** Which limit an answer went past (see {@linkcode SeriesStreamLimits}). */
export type AnswerLimit = "answer-bytes" | "series-bytes" | "label-bytes" | "series-count";

/** Why a {@linkcode SeriesStreamParser} rejected its input; found in the error's `cause`. */
export interface SeriesStreamErrorCause {
  /**
   * `truncated`: the text ended before the top-level object was closed (a
   * transport problem, worth retrying); `malformed`: the text is not a valid
   * answer (retrying will not help); `too-large`: the answer went past one of
   * its limits, named by `limit`.
   */
  reason: "truncated" | "malformed" | "too-large";
  /** With `too-large`: which limit. */
  limit?: AnswerLimit;
  /** With `too-large`: the limit's value (bytes, or series for `series-count`). */
  max?: number;
  /**
   * Where the problem was found: UTF-16 code units from the start of the text
   * (bytes from the start of the body for invalid UTF-8).
   */
  offset: number;
}

const DEFAULT_MAX_SERIES_BYTES = 256 * 1024 * 1024;
const DEFAULT_MAX_FIELD_CHARS = 1024 * 1024;

// Structural levels.
const LEVEL_BEFORE = 0; // before the top-level `{`
const LEVEL_TOP = 1; // inside the top-level object
const LEVEL_DATA = 2; // inside `data`
const LEVEL_RESULT = 3; // inside `data.result`
const LEVEL_AFTER = 4; // after the top-level `}`

// Structural states inside an object or the result array.
const S_KEY_OR_END = 0; // just after `{`
const S_KEY = 1; // after `,` in an object
const S_COLON = 2; // after a key
const S_VALUE = 3; // after `:` (object) or `,` (array)
const S_VALUE_OR_END = 4; // just after `[`
const S_COMMA_OR_END = 5; // after a value

// What to do with a scanned value.
const V_KEY = 0;
const V_SERIES = 1;
const V_FIELD = 2;
const V_SKIP = 3;

// Shape of a scanned value.
const T_STRING = 0;
const T_CONTAINER = 1;
const T_SCALAR = 2;

function isWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function describeChar(c: number): string {
  return JSON.stringify(String.fromCharCode(c));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** UTF-8 length of a string (lone surrogates count 3, as TextEncoder writes U+FFFD). */
export function utf8Length(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c < 0xdc00 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 2; // a pair: 2 code units, 4 bytes
      i++;
    } else n += 2;
  }
  return n;
}

/** A V8 `JSON.parse` message without the snippet of input text it may quote. */
function jsonErrorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/, ".*" is not valid JSON$/s, " (not valid JSON)");
}

/** The error for an answer past one of its limits. */
export function limitError(
  limit: AnswerLimit,
  max: number,
  message: string,
  offset: number,
): RangeError {
  return new RangeError(message, {
    cause: { reason: "too-large", offset, limit, max } satisfies SeriesStreamErrorCause,
  });
}

/** The error for an answer larger than `maxBytes` (`total` bytes read so far). */
export function answerTooLarge(maxBytes: number, total: number): RangeError {
  return limitError("answer-bytes", maxBytes, `the answer is larger than ${maxBytes} bytes`, total);
}

/**
 * Push-based incremental parser of a `query_range` answer. Feed it decoded text
 * with {@linkcode SeriesStreamParser.push} in pieces of any size, then call
 * {@linkcode SeriesStreamParser.finish}. Each element of `data.result` is passed to
 * `onSeries` as soon as its closing brace has been seen.
 *
 * It validates the JSON structure it walks through and the shape of every series
 * (`metric` object, `values` array of `[number, string]`); it does not check the
 * answer's semantics (status, result type, warnings): that is the caller's job
 * with the returned {@linkcode SeriesStreamResult}. A series object without
 * `values` (Prometheus omits it when a series has only native-histogram samples)
 * is passed with `values: []`; `histograms` are ignored.
 *
 * Errors are `SyntaxError`s (or a `RangeError` for an oversized series) whose
 * `cause` is a {@linkcode SeriesStreamErrorCause}. An error thrown by `onSeries`
 * propagates unchanged.
 *
 * @example Split an answer delivered in two pieces
 * ```ts
 * import assert from "node:assert/strict";
 * import { SeriesStreamParser, type Series } from "./series_stream.ts";
 *
 * const seen: Series[] = [];
 * const parser = new SeriesStreamParser((s) => seen.push(s));
 * parser.push('{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},');
 * parser.push('"values":[[1,"2"]]}]}}');
 * const result = parser.finish();
 * assert.equal(result.status, "success");
 * assert.deepEqual(seen, [{ metric: { a: "1" }, values: [[1, "2"]] }]);
 * ```
 */
export class SeriesStreamParser {
  readonly #onSeries: (series: Series) => void;
  readonly #maxSeriesBytes: number;
  readonly #maxLabelBytes: number;
  readonly #maxSeries: number;
  readonly #maxFieldChars: number;
  readonly #redactor: Redactor;
  readonly #labelsShape: boolean;

  // Structure.
  #level = LEVEL_BEFORE;
  #state = S_VALUE;
  #key = "";
  #offset = 0; // code units consumed before the current piece

  // Value being scanned (`#inValue`), its purpose and shape.
  #inValue = false;
  #vKind = V_SKIP;
  #vType = T_SCALAR;
  #vField = "";
  #vDepth = 0;
  #vInString = false;
  #vEscape = false;
  #vFresh = false; // the string value's opening quote is still ahead
  #vParts: string[] = [];
  #vLength = 0;
  #vExtra = 0; // UTF-8 bytes beyond one per code unit, of the series being scanned
  #vLimit = 0;
  #vTruncated = false;
  #vStartOffset = 0;

  // Results.
  #status: string | undefined;
  #resultType: string | undefined;
  #hasResult = false;
  #series = 0;
  #warnings: string[] = [];
  #errorType: string | undefined;
  #error: string | undefined;
  #finished = false;

  /**
   * @param onSeries Called once per series, in answer order, as soon as it is complete.
   * @param limits Size limits; see {@linkcode SeriesStreamLimits}.
   */
  constructor(onSeries: (series: Series) => void, limits: SeriesStreamLimits = {}) {
    const maxSeriesBytes = limits.maxSeriesBytes ?? DEFAULT_MAX_SERIES_BYTES;
    const maxLabel = limits.maxLabelBytes ?? Number.MAX_SAFE_INTEGER;
    const maxSeries = limits.maxSeries ?? Number.MAX_SAFE_INTEGER;
    const maxField = limits.maxFieldChars ?? DEFAULT_MAX_FIELD_CHARS;
    for (
      const [name, value] of [
        ["maxSeriesBytes", maxSeriesBytes],
        ["maxLabelBytes", maxLabel],
        ["maxSeries", maxSeries],
      ] as const
    ) {
      if (!Number.isInteger(value) || value < 1) {
        throw new RangeError(`${name} must be a positive integer, got ${value}`);
      }
    }
    if (!Number.isInteger(maxField) || maxField < 16) {
      throw new RangeError(`maxFieldChars must be an integer >= 16, got ${maxField}`);
    }
    this.#onSeries = onSeries;
    this.#maxSeriesBytes = maxSeriesBytes;
    this.#maxLabelBytes = maxLabel;
    this.#maxSeries = maxSeries;
    this.#maxFieldChars = maxField;
    this.#redactor = limits.redactor ?? new Redactor([]);
    this.#labelsShape = limits.shape === "labels";
  }

  /**
   * Feeds the next piece of the answer text.
   *
   * @example
   * ```ts
   * import { SeriesStreamParser } from "./series_stream.ts";
   *
   * const parser = new SeriesStreamParser(() => {});
   * for (const piece of ['{"status":', '"success","data":{"resultType":"matrix","result":[]}}']) {
   *   parser.push(piece);
   * }
   * parser.finish();
   * ```
   */
  push(text: string): void {
    if (this.#finished) throw new Error("SeriesStreamParser.push called after finish()");
    const n = text.length;
    let i = 0;
    while (i < n) {
      if (this.#inValue) {
        i = this.#scanValue(text, i, n);
      } else {
        i = this.#structural(text, i, n);
      }
    }
    this.#offset += n;
  }

  /**
   * Declares the end of the text and returns everything but the series.
   * Throws a `SyntaxError` with `cause.reason === "truncated"` when the
   * top-level object was not closed.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SeriesStreamParser } from "./series_stream.ts";
   *
   * const parser = new SeriesStreamParser(() => {});
   * parser.push('{"status":"error","errorType":"bad_data","error":"parse error"}');
   * const result = parser.finish();
   * assert.equal(result.errorType, "bad_data");
   * assert.equal(result.hasResult, false);
   * ```
   */
  finish(): SeriesStreamResult {
    if (!this.#finished) {
      if (this.#level !== LEVEL_AFTER) {
        throw new SyntaxError(
          `query_range answer ended early (after ${this.#offset} characters, inside ${this.#where()})`,
          { cause: { reason: "truncated", offset: this.#offset } satisfies SeriesStreamErrorCause },
        );
      }
      this.#finished = true;
    }
    return {
      status: this.#status,
      resultType: this.#resultType,
      hasResult: this.#hasResult,
      series: this.#series,
      warnings: [...this.#warnings],
      errorType: this.#errorType,
      error: this.#error,
    };
  }

  #where(): string {
    switch (this.#level) {
      case LEVEL_BEFORE:
        return "nothing (empty answer)";
      case LEVEL_TOP:
        return "the top-level object";
      case LEVEL_DATA:
        return '"data"';
      case LEVEL_RESULT:
        return `"${this.#resultPath()}" after ${this.#series} series`;
      default:
        return "trailing text";
    }
  }

  #resultPath(): string {
    return this.#labelsShape ? "data" : "data.result";
  }

  #malformed(message: string, offset: number): SyntaxError {
    return new SyntaxError(`invalid query_range answer at character ${offset}: ${message}`, {
      cause: { reason: "malformed", offset } satisfies SeriesStreamErrorCause,
    });
  }

  #unexpected(c: number, expected: string, offset: number): SyntaxError {
    return this.#malformed(`expected ${expected}, found ${describeChar(c)}`, offset);
  }

  /** Handles structural characters until a value starts or the piece ends. */
  #structural(s: string, i: number, n: number): number {
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (isWhitespace(c)) continue;
      const level = this.#level;
      const offset = this.#offset + i;
      if (level === LEVEL_BEFORE) {
        if (c !== OPEN_BRACE) throw this.#unexpected(c, "the answer to be a JSON object", offset);
        this.#level = LEVEL_TOP;
        this.#state = S_KEY_OR_END;
        continue;
      }
      if (level === LEVEL_AFTER) {
        throw this.#unexpected(c, "nothing after the top-level object", offset);
      }
      switch (this.#state) {
        case S_KEY_OR_END:
        case S_KEY:
          if (c === QUOTE) {
            this.#startValue(s, i, V_KEY, "");
            return i;
          }
          if (c === CLOSE_BRACE && this.#state === S_KEY_OR_END && level !== LEVEL_RESULT) {
            this.#closeLevel();
            continue;
          }
          throw this.#unexpected(c, "an object key", offset);
        case S_COLON:
          if (c !== COLON) throw this.#unexpected(c, '":"', offset);
          this.#state = S_VALUE;
          continue;
        case S_VALUE_OR_END:
          if (c === CLOSE_BRACKET) {
            this.#closeLevel();
            continue;
          }
          return this.#beginValue(s, i, c);
        case S_VALUE:
          return this.#beginValue(s, i, c);
        case S_COMMA_OR_END:
          if (c === COMMA) {
            this.#state = level === LEVEL_RESULT ? S_VALUE : S_KEY;
            continue;
          }
          if (
            (c === CLOSE_BRACE && level !== LEVEL_RESULT) ||
            (c === CLOSE_BRACKET && level === LEVEL_RESULT)
          ) {
            this.#closeLevel();
            continue;
          }
          throw this.#unexpected(c, level === LEVEL_RESULT ? '"," or "]"' : '"," or "}"', offset);
      }
    }
    return i;
  }

  #closeLevel(): void {
    if (this.#level === LEVEL_TOP) {
      this.#level = LEVEL_AFTER;
    } else if (this.#level === LEVEL_RESULT && this.#labelsShape) {
      this.#level = LEVEL_TOP; // `data` is the array itself
      this.#state = S_COMMA_OR_END;
    } else {
      this.#level -= 1;
      this.#state = S_COMMA_OR_END;
    }
  }

  /** A value starts at `s[i]` (character `c`) in state S_VALUE / S_VALUE_OR_END. */
  #beginValue(s: string, i: number, c: number): number {
    const level = this.#level;
    const key = this.#key;
    if (level === LEVEL_RESULT) {
      if (c !== OPEN_BRACE) {
        throw this.#unexpected(c, `a series object in ${this.#resultPath()}`, this.#offset + i);
      }
      if (this.#series >= this.#maxSeries) {
        throw limitError(
          "series-count",
          this.#maxSeries,
          `the answer has more than ${this.#maxSeries} series`,
          this.#offset + i,
        );
      }
      if (
        !this.#labelsShape && this.#resultType !== undefined && this.#resultType !== "matrix"
      ) {
        throw this.#malformed(
          `expected resultType "matrix", got ${JSON.stringify(this.#resultType)}`,
          this.#offset + i,
        );
      }
      this.#startValue(s, i, V_SERIES, "");
      return i;
    }
    if (level === LEVEL_TOP) {
      if (key === "data" && c === OPEN_BRACKET && this.#labelsShape) {
        this.#hasResult = true;
        this.#level = LEVEL_RESULT;
        this.#state = S_VALUE_OR_END;
        return i + 1;
      }
      if (key === "data" && c === OPEN_BRACE && !this.#labelsShape) {
        this.#level = LEVEL_DATA;
        this.#state = S_KEY_OR_END;
        return i + 1;
      }
      if (key === "status" || key === "warnings" || key === "errorType" || key === "error") {
        this.#startValue(s, i, V_FIELD, key);
        return i;
      }
    } else if (level === LEVEL_DATA) {
      if (key === "result" && c === OPEN_BRACKET) {
        this.#hasResult = true;
        this.#level = LEVEL_RESULT;
        this.#state = S_VALUE_OR_END;
        return i + 1;
      }
      if (key === "resultType") {
        this.#startValue(s, i, V_FIELD, key);
        return i;
      }
    }
    this.#startValue(s, i, V_SKIP, key);
    return i;
  }

  #startValue(s: string, i: number, kind: number, field: string): void {
    const c = s.charCodeAt(i);
    if (c === QUOTE) {
      this.#vType = T_STRING;
      this.#vInString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      this.#vType = T_CONTAINER;
      this.#vInString = false;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39) || c === 0x74 || c === 0x66 || c === 0x6e) {
      this.#vType = T_SCALAR;
      this.#vInString = false;
    } else {
      throw this.#unexpected(c, "a JSON value", this.#offset + i);
    }
    this.#inValue = true;
    this.#vKind = kind;
    this.#vField = field;
    this.#vDepth = 0;
    this.#vEscape = false;
    this.#vFresh = true;
    this.#vParts = [];
    this.#vLength = 0;
    this.#vExtra = 0;
    this.#vTruncated = false;
    this.#vStartOffset = this.#offset + i;
    this.#vLimit = kind === V_SERIES ? this.#maxSeriesBytes : this.#maxFieldChars;
  }

  /** Scans the current value from `s[i]`; returns the index after it or `n`. */
  #scanValue(s: string, i: number, n: number): number {
    const start = i;
    let end = -1; // index just after the value, once found
    const type = this.#vType;
    let extra = 0;
    if (type === T_CONTAINER) {
      let depth = this.#vDepth;
      let inString = this.#vInString;
      let escape = this.#vEscape;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        // UTF-8 bytes beyond the first of non-ASCII code units (a surrogate pair: 2 + 2).
        if (c >= 0x80) extra += c < 0x800 || (c >= 0xd800 && c < 0xe000) ? 1 : 2;
        if (inString) {
          if (escape) escape = false;
          else if (c === BACKSLASH) escape = true;
          else if (c === QUOTE) inString = false;
        } else if (c === QUOTE) {
          inString = true;
        } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
          depth++;
        } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
          if (--depth === 0) {
            end = i + 1;
            break;
          }
        }
      }
      this.#vDepth = depth;
      this.#vInString = inString;
      this.#vEscape = escape;
    } else if (type === T_STRING) {
      // The opening quote is at `start` on the first call; skip it then.
      let escape = this.#vEscape;
      let j = this.#vFresh ? i + 1 : i;
      this.#vFresh = false;
      for (; j < n; j++) {
        const c = s.charCodeAt(j);
        if (escape) escape = false;
        else if (c === BACKSLASH) escape = true;
        else if (c === QUOTE) {
          end = j + 1;
          break;
        }
      }
      this.#vEscape = escape;
      i = j;
    } else {
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET || isWhitespace(c)) {
          end = i; // the terminator belongs to the structure
          break;
        }
      }
    }

    const stop = end === -1 ? n : end;
    if (this.#vKind !== V_SKIP) this.#collect(s, start, stop, extra);
    if (end === -1) return n;
    this.#inValue = false;
    this.#completeValue();
    return end;
  }

  #collect(s: string, start: number, stop: number, extra: number): void {
    if (this.#vTruncated) return;
    const length = stop - start;
    this.#vExtra += extra;
    if (this.#vLength + length + this.#vExtra > this.#vLimit) {
      if (this.#vKind === V_SERIES) {
        throw limitError(
          "series-bytes",
          this.#vLimit,
          `series ${this.#series + 1} of the answer is larger than ${this.#vLimit} bytes`,
          this.#vStartOffset,
        );
      }
      if (this.#vKind === V_KEY) {
        throw this.#malformed(
          `an object key is longer than ${this.#vLimit} characters`,
          this.#vStartOffset,
        );
      }
      const room = this.#vLimit - this.#vLength;
      if (room > 0) this.#vParts.push(s.slice(start, start + room));
      this.#vLength = this.#vLimit;
      this.#vTruncated = true;
      return;
    }
    this.#vParts.push(length === s.length ? s : s.slice(start, stop));
    this.#vLength += length;
  }

  #completeValue(): void {
    const kind = this.#vKind;
    if (kind === V_SKIP) {
      this.#state = S_COMMA_OR_END;
      return;
    }
    const parts = this.#vParts;
    const text = parts.length === 1 ? parts[0] as string : parts.join("");
    this.#vParts = [];
    if (kind === V_SERIES) {
      this.#emitSeries(text);
      this.#state = S_COMMA_OR_END;
      return;
    }
    if (kind === V_KEY) {
      this.#key = this.#parse(text, "an object key") as string;
      this.#state = S_COLON;
      return;
    }
    // V_FIELD
    this.#state = S_COMMA_OR_END;
    const field = this.#vField;
    if (this.#vTruncated) {
      // Cut at the limit: a secret split by the cut must not leave its first part.
      this.#storeField(field, `${this.#redactor.cutEnd(text)}…`, true);
    } else {
      this.#storeField(field, this.#parse(text, `the "${field}" field`), false);
    }
  }

  #parse(text: string, what: string): unknown {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw this.#malformed(
        `${what} is not valid JSON (${jsonErrorMessage(error)})`,
        this.#vStartOffset,
      );
    }
  }

  #storeField(field: string, value: unknown, truncated: boolean): void {
    const text = typeof value === "string"
      ? value
      : value === null || value === undefined
      ? undefined
      : JSON.stringify(value);
    switch (field) {
      case "status":
        this.#status = text;
        break;
      case "resultType":
        this.#resultType = text;
        break;
      case "errorType":
        this.#errorType = text;
        break;
      case "error":
        this.#error = text;
        break;
      case "warnings":
        if (truncated) {
          this.#warnings = [text ?? ""];
        } else if (Array.isArray(value)) {
          this.#warnings = value.map((w) => typeof w === "string" ? w : JSON.stringify(w));
        } else {
          this.#warnings = text === undefined || text === "" ? [] : [text];
        }
        break;
    }
  }

  #emitSeries(text: string): void {
    const number = this.#series + 1;
    const what = this.#labelsShape ? `label set ${number}` : `series ${number}`;
    let value: unknown;
    try {
      value = this.#labelsShape ? JSON.parse(text) : parseSeriesText(text);
    } catch (error) {
      throw this.#malformed(
        `${what} is not valid JSON (${jsonErrorMessage(error)})`,
        this.#vStartOffset,
      );
    }
    const metric = this.#labelsShape ? value : isRecord(value) ? value.metric : undefined;
    if (!isRecord(value) || !isRecord(metric)) {
      throw this.#malformed(`${what} has no "metric" object`, this.#vStartOffset);
    }
    this.#checkLabels(metric, what);
    let values = this.#labelsShape ? [] : value.values;
    if (values === undefined) {
      values = [];
    } else if (!Array.isArray(values)) {
      throw this.#malformed(`${what} has a non-array "values"`, this.#vStartOffset);
    } else {
      for (const sample of values as unknown[]) {
        if (
          !Array.isArray(sample) || sample.length !== 2 || typeof sample[0] !== "number" ||
          typeof sample[1] !== "string"
        ) {
          throw this.#malformed(
            `${what} has a sample that is not [number, string]: ${
              this.#show(JSON.stringify(sample) ?? String(sample))
            }`,
            this.#vStartOffset,
          );
        }
      }
    }
    this.#series++;
    this.#onSeries({
      metric: metric as Record<string, string>,
      values: values as Array<[number, string]>,
    });
  }

  /** Every label value must be a string, of at most `maxLabelBytes`. */
  #checkLabels(metric: Record<string, unknown>, what: string): void {
    const max = this.#maxLabelBytes;
    for (const name in metric) {
      const v = metric[name];
      if (typeof v !== "string") {
        throw this.#malformed(
          `${what}: label ${this.#show(name)} is not a string but ${
            v === null ? "null" : Array.isArray(v) ? "an array" : typeof v
          }: ${this.#show(JSON.stringify(v) ?? String(v))}`,
          this.#vStartOffset,
        );
      }
      if (v.length * 3 > max && utf8Length(v) > max) {
        throw limitError(
          "label-bytes",
          max,
          `${what}: the value of label ${this.#show(name)} is larger than ${max} bytes`,
          this.#vStartOffset,
        );
      }
    }
  }

  /** Server text for a message: secrets removed first, then cut, quoted and escaped. */
  #show(text: string): string {
    return JSON.stringify(escapeControl(this.#redactor.cut(text, 80), false));
  }
}

/** Options of {@linkcode parseSeriesStream}. */
export interface ParseSeriesStreamOptions extends SeriesStreamLimits {
  /**
   * Largest answer body in bytes; past it reading stops with a `RangeError`
   * (`cause.limit === "answer-bytes"`). Default: no limit.
   */
  maxAnswerBytes?: number;
  /** Aborts reading: the stream is cancelled and the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called with the size of every chunk read, as it arrives. */
  onBytes?: (bytes: number) => void;
}

/** {@linkcode SeriesStreamResult} plus the number of bytes read. */
export interface ParsedSeriesStream extends SeriesStreamResult {
  /** Bytes read from the stream. */
  bytes: number;
}

/**
 * Reads a `query_range` answer body chunk by chunk, decoding UTF-8 on the fly,
 * and feeds it to a {@linkcode SeriesStreamParser}. Memory stays bounded by the
 * largest series plus one chunk. The stream is always released: fully read, or
 * cancelled on error or abort. Invalid UTF-8 is a `SyntaxError` with
 * `cause.reason === "malformed"`.
 *
 * @example Parse a body
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSeriesStream } from "./series_stream.ts";
 *
 * const body = new Response(
 *   '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}',
 * ).body!;
 * let count = 0;
 * const result = await parseSeriesStream(body, () => count++);
 * assert.equal(count, 1);
 * assert.equal(result.series, 1);
 * ```
 */
export async function parseSeriesStream(
  body: ReadableStream<Uint8Array>,
  onSeries: (series: Series) => void,
  options: ParseSeriesStreamOptions = {},
): Promise<ParsedSeriesStream> {
  const { signal, onBytes } = options;
  const maxAnswerBytes = options.maxAnswerBytes ?? Number.MAX_SAFE_INTEGER;
  const parser = new SeriesStreamParser(onSeries, options);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const reader = body.getReader();
  let bytes = 0;
  let done = false;
  let aborted: Promise<never> | undefined;
  let onAbort: (() => void) | undefined;
  if (signal) {
    aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    aborted.catch(() => {}); // handled by the race below; avoid an unhandled rejection
  }
  const decode = (chunk: Uint8Array | undefined): string => {
    try {
      return chunk === undefined ? decoder.decode() : decoder.decode(chunk, { stream: true });
    } catch {
      // The TextDecoder's TypeError adds nothing to this message.
      throw new SyntaxError(`query_range answer is not valid UTF-8 (near byte ${bytes})`, {
        cause: { reason: "malformed", offset: bytes } satisfies SeriesStreamErrorCause,
      });
    }
  };
  try {
    signal?.throwIfAborted();
    while (true) {
      const next = aborted ? await Promise.race([reader.read(), aborted]) : await reader.read();
      if (next.done) {
        done = true;
        break;
      }
      const chunk = next.value;
      bytes += chunk.byteLength;
      onBytes?.(chunk.byteLength);
      if (bytes > maxAnswerBytes) {
        throw answerTooLarge(maxAnswerBytes, bytes);
      }
      parser.push(decode(chunk));
    }
    parser.push(decode(undefined));
    return { ...parser.finish(), bytes };
  } finally {
    if (signal && onAbort) signal.removeEventListener("abort", onAbort);
    if (!done) {
      reader.cancel(signal?.aborted ? signal.reason : undefined).catch(() => {});
    }
    reader.releaseLock();
  }
}
