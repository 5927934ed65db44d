/**
 * The few parts of the protobuf wire format the remote read API needs:
 * varints, length-delimited fields (bytes, strings, nested messages) and
 * packed repeated varints. Numbers are JavaScript numbers, exact up to 2^53
 * (int64 timestamps in ms are).
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Longest string the decode cache keeps. */
const CACHED_MAX = 64;
/** Slots of the decode cache (a power of two). */
const CACHE_SLOTS = 4_096;
/**
 * Recently decoded short strings, by a hash of their bytes (one entry per
 * slot, the last one wins): label names and values repeat across the series
 * of an answer, so most of them are found here instead of decoded again, and
 * equal labels share one string.
 */
const cacheBytes: (Uint8Array | undefined)[] = new Array(CACHE_SLOTS);
const cacheStrings: (string | undefined)[] = new Array(CACHE_SLOTS);

/** Wire types. */
export const VARINT = 0;
/** 64-bit fixed. */
export const FIXED64 = 1;
/** Length-delimited. */
export const BYTES = 2;
/** 32-bit fixed. */
export const FIXED32 = 5;

/**
 * Builds one message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProtoReader, ProtoWriter } from "./protobuf.ts";
 *
 * const bytes = new ProtoWriter().uint(1, 300).string(2, "hi").finish();
 * const r = new ProtoReader(bytes);
 * assert.deepEqual([r.next(), r.uint()], [{ field: 1, wire: 0 }, 300]);
 * assert.deepEqual([r.next(), r.string()], [{ field: 2, wire: 2 }, "hi"]);
 * assert.equal(r.next(), null);
 * ```
 */
export class ProtoWriter {
  #buf = new Uint8Array(64);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  /** A raw varint (a non-negative integer, or a negative one as its 64-bit two's complement). */
  varint(x: number): this {
    this.#room(10);
    if (x < 0) {
      // Two's complement over 64 bits: 10 bytes.
      let v = BigInt.asUintN(64, BigInt(x));
      while (v >= 0x80n) {
        this.#buf[this.#len++] = Number(v & 0x7fn) | 0x80;
        v >>= 7n;
      }
      this.#buf[this.#len++] = Number(v);
      return this;
    }
    while (x >= 0x80) {
      this.#buf[this.#len++] = (x % 128) | 0x80;
      x = Math.floor(x / 128);
    }
    this.#buf[this.#len++] = x;
    return this;
  }

  #tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** An integer field (int64, uint64, enum), left out when 0 as proto3 does. */
  uint(field: number, x: number): this {
    if (x === 0) return this;
    this.#tag(field, VARINT);
    return this.varint(x);
  }

  /** A bytes field. */
  bytes(field: number, b: Uint8Array): this {
    this.#tag(field, BYTES);
    this.varint(b.length);
    this.#room(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
    return this;
  }

  /** A string field (UTF-8). */
  string(field: number, s: string): this {
    return this.bytes(field, encoder.encode(s));
  }

  /** A packed repeated varint field. */
  packed(field: number, xs: readonly number[]): this {
    if (xs.length === 0) return this;
    const inner = new ProtoWriter();
    for (const x of xs) inner.varint(x);
    return this.bytes(field, inner.finish());
  }

  /** The message's bytes. */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** `bytes` as UTF-8 text; a `SyntaxError` if they are not valid UTF-8. */
function decodeUtf8(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch (error) {
    if (error instanceof SyntaxError) throw error;
    throw bad("string is not valid UTF-8");
  }
}

/** A malformed message. */
function bad(what: string): SyntaxError {
  return new SyntaxError(`malformed protobuf message: ${what}`);
}

/** Reads the fields of one message in order. See {@linkcode ProtoWriter} for an example. */
export class ProtoReader {
  #pos: number;
  readonly #end: number;
  #wire = 0;

  constructor(readonly buf: Uint8Array, start = 0, end = buf.length) {
    this.#pos = start;
    this.#end = end;
  }

  /** The next field's number and wire type, or null at the end. */
  next(): { field: number; wire: number } | null {
    if (this.#pos >= this.#end) return null;
    const tag = this.uint();
    const field = Math.floor(tag / 8), wire = tag % 8;
    if (field === 0) throw bad("field number 0");
    this.#wire = wire;
    return { field, wire };
  }

  /** A varint (int64 values at or above 2^63 come back negative). */
  uint(): number {
    let x = 0, mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.#pos >= this.#end) throw bad("ends inside a varint");
      const b = this.buf[this.#pos++]!;
      x += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (i < 9) return x;
        // Ten bytes: a negative int64, whose low bits a double sum rounds away (-1 came back 0).
        let v = 0n;
        for (let k = this.#pos - 1; k >= this.#pos - 10; k--) {
          v = (v << 7n) | BigInt(this.buf[k]! & 0x7f);
        }
        return Number(BigInt.asIntN(64, v));
      }
      mul *= 128;
    }
    throw bad("varint longer than 10 bytes");
  }

  /** A length-delimited field's bytes (a view, not a copy). */
  bytes(): Uint8Array {
    const n = this.uint();
    if (n < 0 || this.#pos + n > this.#end) throw bad("field longer than its message");
    const out = this.buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** A string field (must be valid UTF-8). */
  string(): string {
    const bytes = this.bytes();
    const n = bytes.length;
    if (n > CACHED_MAX) return decodeUtf8(bytes);
    let h = 0x811c9dc5 ^ n;
    for (let i = 0; i < n; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
    const slot = (h >>> 0) & (CACHE_SLOTS - 1);
    const kept = cacheBytes[slot];
    if (kept !== undefined && kept.length === n) {
      let same = true;
      for (let i = 0; i < n && same; i++) same = kept[i] === bytes[i];
      if (same) return cacheStrings[slot]!;
    }
    const text = decodeUtf8(bytes);
    cacheBytes[slot] = bytes.slice();
    cacheStrings[slot] = text;
    return text;
  }

  /** A packed (or single) repeated varint field. */
  packed(): number[] {
    if (this.#wire === VARINT) return [this.uint()];
    const b = this.bytes();
    const r = new ProtoReader(b);
    const out: number[] = [];
    while (r.#pos < r.#end) out.push(r.uint());
    return out;
  }

  /** Skips the field just announced by {@linkcode next}. */
  skip(): void {
    switch (this.#wire) {
      case VARINT:
        this.uint();
        return;
      case FIXED64:
        this.#advance(8);
        return;
      case BYTES:
        this.bytes();
        return;
      case FIXED32:
        this.#advance(4);
        return;
      default:
        throw bad(`unknown wire type ${this.#wire}`);
    }
  }

  #advance(n: number): void {
    if (this.#pos + n > this.#end) throw bad("field longer than its message");
    this.#pos += n;
  }
}
