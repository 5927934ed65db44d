/**
 * Go `encoding/csv` compatible CSV writing and streaming reading.
 *
 * CMMO writes its reports with Go's `csv.Writer` using the defaults (separator `,`, record
 * terminator `\n`, contract §3.8) and re-reads them with Go's `csv.Reader` (defaults) when it
 * splits files at 100 MiB (contract §4.5). This module reproduces both byte for byte.
 *
 * @module
 */

const QUOTE = 0x22; // "
const COMMA = 0x2c; // ,
const CR = 0x0d;

/** Characters that force quoting anywhere in a field (Go `fieldNeedsQuotes`). */
const SPECIAL = /[",\r\n]/;
const QUOTES = /"/g;

/**
 * Reports whether a UTF-16 code unit is a space per Go's `unicode.IsSpace`
 * (Unicode White_Space; all such characters are in the BMP).
 */
function isGoSpace(c: number): boolean {
  if (c <= 0xff) {
    return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0x85 || c === 0xa0;
  }
  return c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 ||
    c === 0x202f || c === 0x205f || c === 0x3000;
}

/**
 * Encodes one field exactly like Go's `csv.Writer` with default settings.
 *
 * The field is wrapped in double quotes only if it contains `,`, `"`, `\r` or `\n`, begins
 * with a Unicode space character (Go `unicode.IsSpace` of the first rune), or equals `\.`.
 * Inner quotes are doubled; `\r` and `\n` are kept verbatim (`UseCRLF` is false). The empty
 * string is never quoted.
 *
 * @example Usage
 * ```ts
 * import { encodeField } from "./csv.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(encodeField("plain"), "plain");
 * assert.equal(encodeField("a,b"), '"a,b"');
 * assert.equal(encodeField('say "hi"'), '"say ""hi"""');
 * assert.equal(encodeField(" leading space"), '" leading space"');
 * assert.equal(encodeField(""), "");
 * ```
 *
 * @param field The field value.
 * @returns The encoded field, without separator or terminator.
 */
export function encodeField(field: string): string {
  if (field === "") {
    return field;
  }
  if (SPECIAL.test(field) || isGoSpace(field.charCodeAt(0)) || field === "\\.") {
    return '"' + field.replace(QUOTES, '""') + '"';
  }
  return field;
}

/**
 * Encodes one record exactly like Go's `csv.Writer.Write` with default settings: the fields
 * encoded with {@linkcode encodeField}, joined by `,`, followed by `\n`.
 *
 * @example Usage
 * ```ts
 * import { encodeRecord } from "./csv.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(encodeRecord(["pod-1", "", "label_app:a|label_b:b", "x,y"]), 'pod-1,,label_app:a|label_b:b,"x,y"\n');
 * ```
 *
 * @param fields The record's fields.
 * @returns The encoded line including the final `\n`.
 */
export function encodeRecord(fields: readonly string[]): string {
  let line = "";
  for (let i = 0; i < fields.length; i++) {
    if (i > 0) {
      line += ",";
    }
    line += encodeField(fields[i] as string);
  }
  return line + "\n";
}

/** Options for {@linkcode readCsvRecords}. */
export interface ReadCsvOptions {
  /**
   * Go's `csv.Reader.FieldsPerRecord`: `0` (default) takes the field count of the first
   * record and requires it of every later record, a positive value requires exactly that
   * many fields, a negative value allows any number.
   */
  fieldsPerRecord?: number;
}

/** Kinds of parse errors, named after Go's `csv.ErrBareQuote`, `ErrQuote` and `ErrFieldCount`. */
export type CsvErrorKind = "bare_quote" | "quote" | "field_count";

/** Structured details attached as `cause` to the `SyntaxError` thrown by {@linkcode readCsvRecords}. */
export interface CsvErrorCause {
  /** What went wrong. */
  kind: CsvErrorKind;
  /** 1-based line on which the record starts. */
  startLine: number;
  /** 1-based line of the error. */
  line: number;
  /** 1-based byte column of the error (as Go reports it). */
  column: number;
}

const GO_MESSAGES: Record<CsvErrorKind, string> = {
  bare_quote: 'bare " in non-quoted-field',
  quote: 'extraneous or missing " in quoted-field',
  field_count: "wrong number of fields",
};

/**
 * Reads CSV records from a byte stream with the semantics of Go's `csv.Reader` with default
 * settings (separator `,`, no comment character, strict quotes, no trimming):
 *
 * - `\r\n` line endings become `\n`, also inside quoted fields; a `\r` right before the end
 *   of input is dropped;
 * - empty lines are skipped, so a record consisting of one empty field is not read back;
 * - a `"` inside an unquoted field, or a quoted field whose closing quote is followed by
 *   anything but `,` or the end of the line, is an error; so is a missing closing quote and,
 *   by default, a record whose field count differs from the first record's.
 *
 * Errors are `SyntaxError`s whose message contains Go's `ParseError` text and whose `cause`
 * is a {@linkcode CsvErrorCause}; invalid UTF-8 is a `TypeError`. The input is decoded
 * incrementally (multi-byte characters and quoted fields may span chunk boundaries) and only
 * the current chunk and record are held in memory. Stopping the iteration early cancels the
 * source.
 *
 * Fields written by {@linkcode encodeRecord} read back unchanged, except that `\r\n` inside
 * a field reads back as `\n` and a record `[""]` (an empty line) is skipped, exactly as Go does.
 *
 * @example Usage
 * ```ts
 * import { encodeRecord, readCsvRecords } from "./csv.ts";
 * import assert from "node:assert/strict";
 *
 * const text = encodeRecord(["name", "labels"]) + encodeRecord(["a", "x,y"]);
 * const source = new Blob([text]).stream();
 * const records = await Array.fromAsync(readCsvRecords(source));
 * assert.deepEqual(records, [["name", "labels"], ["a", "x,y"]]);
 * ```
 *
 * @param source The CSV bytes (UTF-8, as written by {@linkcode encodeRecord}).
 * @param options Field-count checking, see {@linkcode ReadCsvOptions}.
 * @returns An async generator of records.
 */
export async function* readCsvRecords(
  source: ReadableStream<Uint8Array>,
  options: ReadCsvOptions = {},
): AsyncGenerator<string[]> {
  const fieldsPerRecord = options.fieldsPerRecord ?? 0;
  if (!Number.isInteger(fieldsPerRecord)) {
    throw new TypeError(`fieldsPerRecord must be an integer, got ${fieldsPerRecord}`);
  }
  const parser = new RecordParser(fieldsPerRecord);
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const reader = source.getReader();
  let finished = false;
  try {
    for (;;) {
      let record = parser.next();
      while (record !== NEED_MORE && record !== END) {
        yield record;
        record = parser.next();
      }
      if (record === END) {
        finished = true;
        return;
      }
      // Read until the unparsed text has at least doubled, so that a record spanning
      // many chunks is re-scanned only O(log n) times.
      const wanted = Math.max(1, parser.pending());
      let added = "";
      while (added.length < wanted) {
        const { done, value } = await reader.read();
        if (done) {
          added += decode(decoder, undefined);
          finished = true;
          break;
        }
        added += decode(decoder, value);
      }
      parser.append(added, finished);
    }
  } finally {
    if (!finished) {
      await reader.cancel().catch(() => {});
    }
    reader.releaseLock();
  }
}

function decode(decoder: TextDecoder, chunk: Uint8Array | undefined): string {
  try {
    return chunk === undefined ? decoder.decode() : decoder.decode(chunk, { stream: true });
  } catch (error) {
    throw new TypeError("Cannot read CSV: the input is not valid UTF-8", { cause: error });
  }
}

const NEED_MORE = Symbol("need more input");
const END = Symbol("end of input");

/** Number of UTF-8 bytes of `text.slice(start, end)`. */
function utf8Length(text: string, start: number, end: number): number {
  let bytes = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      bytes += 1;
    } else if (c < 0x800) {
      bytes += 2;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < end) {
      bytes += 4; // surrogate pair
      i++;
    } else {
      bytes += 3;
    }
  }
  return bytes;
}

/**
 * Incremental Go `csv.Reader` over a growing text buffer. `next()` parses one record from the
 * buffered text, or reports that it needs more input (nothing is consumed then), or the end.
 */
class RecordParser {
  #text = "";
  #pos = 0;
  #eof = false;
  /** Lines fully consumed so far (Go's `numLine` before reading the next line). */
  #lines = 0;
  #fieldsPerRecord: number;
  // Cached next positions of `,` and `"` at or after the cursor (text.length = none).
  #nextComma = -1;
  #nextQuote = -1;
  // Bounds of the current line: [lineStart, contentEnd) is the content after dropping the
  // "\n" and one "\r" before it (or before the end of input); lineEnd is the index of the
  // "\n" or text.length when the line has none.
  #lineStart = 0;
  #contentEnd = 0;
  #lineEnd = 0;
  #hasNewline = false;

  constructor(fieldsPerRecord: number) {
    this.#fieldsPerRecord = fieldsPerRecord;
  }

  /** Length of the buffered text that has not been consumed yet. */
  pending(): number {
    return this.#text.length - this.#pos;
  }

  append(text: string, eof: boolean): void {
    this.#text = this.#text.slice(this.#pos) + text;
    this.#pos = 0;
    this.#eof = eof;
    this.#nextComma = -1;
    this.#nextQuote = -1;
  }

  /** Loads the line starting at `start`; false when it is not complete yet. */
  #loadLine(start: number): boolean {
    const text = this.#text;
    let end = text.indexOf("\n", start);
    this.#hasNewline = end >= 0;
    if (end < 0) {
      if (!this.#eof) {
        return false;
      }
      end = text.length;
    }
    this.#lineStart = start;
    this.#lineEnd = end;
    this.#contentEnd = end > start && text.charCodeAt(end - 1) === CR ? end - 1 : end;
    return true;
  }

  #commaFrom(i: number): number {
    if (this.#nextComma < i) {
      const found = this.#text.indexOf(",", i);
      this.#nextComma = found < 0 ? this.#text.length : found;
    }
    return this.#nextComma;
  }

  #quoteFrom(i: number): number {
    if (this.#nextQuote < i) {
      const found = this.#text.indexOf('"', i);
      this.#nextQuote = found < 0 ? this.#text.length : found;
    }
    return this.#nextQuote;
  }

  #column(index: number): number {
    return utf8Length(this.#text, this.#lineStart, index) + 1;
  }

  #fail(kind: CsvErrorKind, startLine: number, line: number, column: number): never {
    const what = GO_MESSAGES[kind];
    const message = kind === "field_count"
      ? `record on line ${line}: ${what}`
      : startLine !== line
      ? `record on line ${startLine}; parse error on line ${line}, column ${column}: ${what}`
      : `parse error on line ${line}, column ${column}: ${what}`;
    const cause: CsvErrorCause = { kind, startLine, line, column };
    throw new SyntaxError(`Cannot parse CSV: ${message}`, { cause });
  }

  next(): string[] | typeof NEED_MORE | typeof END {
    const text = this.#text;
    // Skip empty lines ("\n", "\r\n", or a lone "\r" at the end of input).
    for (;;) {
      if (this.#pos >= text.length) {
        return this.#eof ? END : NEED_MORE;
      }
      if (!this.#loadLine(this.#pos)) {
        return NEED_MORE;
      }
      if (this.#contentEnd !== this.#lineStart) {
        break;
      }
      this.#lines++;
      this.#pos = this.#hasNewline ? this.#lineEnd + 1 : this.#lineEnd;
    }

    const startLine = this.#lines + 1;
    let line = startLine;
    const fields: string[] = [];
    let i = this.#lineStart;
    fields: for (;;) {
      if (i < this.#contentEnd && text.charCodeAt(i) === QUOTE) {
        // Quoted field, possibly spanning lines.
        i++;
        let value = "";
        for (;;) {
          const q = this.#quoteFrom(i);
          if (q < this.#contentEnd) {
            value += text.slice(i, q);
            i = q + 1;
            const c = i < this.#contentEnd ? text.charCodeAt(i) : -1;
            if (c === QUOTE) {
              value += '"';
              i++;
            } else if (c === COMMA) {
              fields.push(value);
              i++;
              continue fields;
            } else if (i === this.#contentEnd) {
              fields.push(value);
              break fields;
            } else {
              this.#fail("quote", startLine, line, this.#column(q));
            }
          } else {
            // End of line inside the quotes: keep the (normalized) line break, read on.
            value += text.slice(i, this.#contentEnd);
            if (!this.#hasNewline) {
              this.#fail("quote", startLine, line, this.#column(this.#contentEnd));
            }
            value += "\n";
            const previousStart = this.#lineStart;
            const previousEnd = this.#contentEnd;
            const nextStart = this.#lineEnd + 1;
            if (nextStart >= text.length && !this.#eof) {
              return NEED_MORE;
            }
            if (nextStart < text.length && !this.#loadLine(nextStart)) {
              return NEED_MORE;
            }
            if (nextStart >= text.length || this.#contentEnd === nextStart && !this.#hasNewline) {
              // No further line (a lone "\r" at the end counts as none): Go reports the
              // position just after the previous line's "\n".
              const column = utf8Length(text, previousStart, previousEnd) + 2;
              this.#fail("quote", startLine, line, column);
            }
            line++;
            i = nextStart;
          }
        }
      } else {
        // Unquoted field: up to the next comma on this line.
        const comma = this.#commaFrom(i);
        const end = comma < this.#contentEnd ? comma : this.#contentEnd;
        const q = this.#quoteFrom(i);
        if (q < end) {
          this.#fail("bare_quote", startLine, line, this.#column(q));
        }
        fields.push(text.slice(i, end));
        if (end === this.#contentEnd) {
          break;
        }
        i = end + 1;
      }
    }

    this.#lines = line;
    this.#pos = this.#hasNewline ? this.#lineEnd + 1 : this.#lineEnd;
    if (this.#fieldsPerRecord > 0) {
      if (fields.length !== this.#fieldsPerRecord) {
        this.#fail("field_count", startLine, startLine, 1);
      }
    } else if (this.#fieldsPerRecord === 0) {
      this.#fieldsPerRecord = fields.length;
    }
    return fields;
  }
}
