/**
 * Prometheus's XOR chunk encoding (Gorilla: delta-of-delta timestamps, XOR
 * values), as the remote read API's `STREAMED_XOR_CHUNKS` answers and the
 * TSDB store it: a 2-byte big-endian sample count, then a bit stream. The
 * first sample is a signed varint timestamp and 64 raw value bits; the second
 * an unsigned varint timestamp delta and an XOR value; every next one a
 * delta-of-delta (`0`, or `10`+14, `110`+17, `1110`+20, `1111`+64 bits) and an
 * XOR value (`0`: same value; `10`: XOR bits inside the previous window;
 * `11` + 5 bits leading zeros + 6 bits length (0 means 64) + the bits).
 *
 * Timestamps are int64 milliseconds, which are exact as JavaScript numbers
 * up to 2^53 (year 287,396); values keep their exact bits, so NaN payloads
 * (Prometheus's staleness marker, `0x7ff0000000000002`) survive.
 *
 * @module
 */

/** The bits of Prometheus's staleness marker, a NaN: `0x7ff00000_00000002`. */
export const STALE_NAN_HI = 0x7ff00000;
/** Low 32 bits of the staleness marker. */
export const STALE_NAN_LO = 0x00000002;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
/** Index of the low/high 32-bit half of a float in {@linkcode u32} (platform byte order). */
const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const LO = LITTLE ? 0 : 1;
const HI = LITTLE ? 1 : 0;

/**
 * Whether `v` has exactly the bits of Prometheus's staleness marker, as far
 * as they survived: V8 may make a NaN canonical (e.g. in a double array), so
 * the decoder's `stale` flag, read from the chunk's bits, is the one to trust.
 */
export function isStaleMarker(v: number): boolean {
  if (v === v) return false;
  f64[0] = v;
  return u32[HI] === STALE_NAN_HI && u32[LO] === STALE_NAN_LO;
}

/** The staleness marker as a number (its bits kept while it stays in a `Float64Array`). */
export function staleMarker(): number {
  u32[HI] = STALE_NAN_HI;
  u32[LO] = STALE_NAN_LO;
  return f64[0]!;
}

/** A malformed chunk. */
function bad(what: string): SyntaxError {
  return new SyntaxError(`malformed XOR chunk: ${what}`);
}

/** Reads bits, most significant first, from a byte array. */
class BitReader {
  #pos = 0;
  readonly #end: number;
  constructor(readonly bytes: Uint8Array, startByte: number) {
    this.#pos = startByte * 8;
    this.#end = bytes.length * 8;
  }

  /** One bit. */
  bit(): number {
    const p = this.#pos;
    if (p >= this.#end) throw bad("ends inside a sample");
    this.#pos = p + 1;
    return (this.bytes[p >>> 3]! >>> (7 - (p & 7))) & 1;
  }

  /** `n` (0–32) bits as an unsigned number. */
  bits(n: number): number {
    if (n === 0) return 0;
    const p = this.#pos;
    if (p + n > this.#end) throw bad("ends inside a sample");
    let out = 0;
    let i = p >>> 3, off = p & 7, left = n;
    while (left > 0) {
      const avail = 8 - off;
      const take = avail < left ? avail : left;
      const b = (this.bytes[i]! >>> (avail - take)) & ((1 << take) - 1);
      out = out * (1 << take) + b;
      left -= take;
      off = 0;
      i++;
    }
    this.#pos = p + n;
    return out;
  }

  /** A byte-wise unsigned varint read from the bit stream (as Go's `binary.ReadUvarint`). */
  uvarint(): number {
    let x = 0, mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.bits(8);
      x += (b & 0x7f) * mul;
      if (b < 0x80) return x;
      mul *= 128;
    }
    throw bad("varint overflows 64 bits");
  }

  /** A signed (zig-zag) varint (as Go's `binary.ReadVarint`). */
  varint(): number {
    const u = this.uvarint();
    // Zig-zag: even → u/2, odd → -(u+1)/2; exact for |x| < 2^53.
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }
}

/**
 * Decodes one XOR chunk and calls `onSample(t, v, stale)` for each sample in
 * order (`t` in ms). `stale` is true when the value's bits are exactly
 * Prometheus's staleness marker: told from the bits here, because a NaN's
 * payload does not reliably survive as a JavaScript number (V8 makes NaNs
 * canonical when it stores them in a double array). Returns the number of samples. Throws a
 * `SyntaxError` for a chunk that ends early or holds a bad varint.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeXorChunk, encodeXorChunk } from "./xor_chunk.ts";
 *
 * const chunk = encodeXorChunk([1000, 16000, 31000], [1, 1, 2.5]);
 * const got: [number, number][] = [];
 * decodeXorChunk(chunk, (t, v) => got.push([t, v]));
 * assert.deepEqual(got, [[1000, 1], [16000, 1], [31000, 2.5]]);
 * ```
 */
export function decodeXorChunk(
  chunk: Uint8Array,
  onSample: (t: number, v: number, stale: boolean) => void,
): number {
  if (chunk.length < 2) throw bad(`${chunk.length} byte(s), shorter than its header`);
  const count = (chunk[0]! << 8) | chunk[1]!;
  if (count === 0) return 0;
  const r = new BitReader(chunk, 2);
  let t = r.varint();
  let hi = r.bits(32), lo = r.bits(32);
  u32[HI] = hi;
  u32[LO] = lo;
  onSample(t, f64[0]!, hi === STALE_NAN_HI && lo === STALE_NAN_LO);
  if (count === 1) return 1;
  let delta = r.uvarint();
  t += delta;
  let leading = 0, trailing = 0;
  const readValue = () => {
    if (r.bit() === 0) return; // same value
    if (r.bit() === 1) {
      leading = r.bits(5);
      let sig = r.bits(6);
      if (sig === 0) sig = 64;
      trailing = 64 - leading - sig;
      if (trailing < 0) throw bad(`XOR window of ${leading} + ${sig} bits`);
    }
    const sig = 64 - leading - trailing;
    // The XOR bits, placed `trailing` bits up in a 64-bit word (hi:lo).
    let xh: number, xl: number;
    if (sig <= 32) {
      const b = r.bits(sig);
      if (trailing >= 32) {
        xh = trailing - 32 === 0 ? b : (b * 2 ** (trailing - 32)) >>> 0;
        xl = 0;
      } else {
        // b << trailing over 64 bits.
        const shifted = b * 2 ** trailing;
        xh = Math.floor(shifted / 4294967296) >>> 0;
        xl = shifted >>> 0;
      }
    } else {
      const top = r.bits(sig - 32), bottom = r.bits(32);
      // (top:bottom) << trailing, where sig - 32 + trailing <= 32.
      if (trailing === 0) {
        xh = top;
        xl = bottom;
      } else {
        xh = ((top * 2 ** trailing) + Math.floor(bottom / 2 ** (32 - trailing))) >>> 0;
        xl = (bottom * 2 ** trailing) >>> 0;
      }
    }
    hi = (hi ^ xh) >>> 0;
    lo = (lo ^ xl) >>> 0;
  };
  readValue();
  u32[HI] = hi;
  u32[LO] = lo;
  onSample(t, f64[0]!, hi === STALE_NAN_HI && lo === STALE_NAN_LO);
  for (let i = 2; i < count; i++) {
    let size = 0;
    while (size < 4 && r.bit() === 1) size++;
    let dod = 0;
    if (size === 4) {
      const h = r.bits(32) | 0, l = r.bits(32);
      dod = h * 4294967296 + l;
    } else if (size > 0) {
      const n = size === 1 ? 14 : size === 2 ? 17 : 20;
      dod = r.bits(n);
      if (dod > 2 ** (n - 1)) dod -= 2 ** n;
    }
    delta += dod;
    t += delta;
    readValue();
    u32[HI] = hi;
    u32[LO] = lo;
    onSample(t, f64[0]!, hi === STALE_NAN_HI && lo === STALE_NAN_LO);
  }
  return count;
}

/** Writes bits, most significant first. */
class BitWriter {
  bytes: number[] = [];
  #free = 0;

  bit(b: number): void {
    if (this.#free === 0) {
      this.bytes.push(0);
      this.#free = 8;
    }
    this.#free--;
    if (b) this.bytes[this.bytes.length - 1]! |= 1 << this.#free;
  }

  /** The low `n` (0–32) bits of `x`, most significant first. */
  bits(x: number, n: number): void {
    for (let i = n - 1; i >= 0; i--) this.bit(Math.floor(x / 2 ** i) % 2);
  }

  uvarint(x: number): void {
    while (x >= 0x80) {
      this.bits((x % 128) | 0x80, 8);
      x = Math.floor(x / 128);
    }
    this.bits(x, 8);
  }
}

/** Leading zero bits of the 64-bit word hi:lo. */
function clz64(hi: number, lo: number): number {
  return hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
}

/** Trailing zero bits of the 64-bit word hi:lo (64 for zero). */
function ctz64(hi: number, lo: number): number {
  const ctz32 = (x: number) => (x === 0 ? 32 : 31 - Math.clz32(x & -x));
  return lo !== 0 ? ctz32(lo) : 32 + ctz32(hi);
}

/**
 * Encodes samples as Prometheus's `chunkenc.XORChunk` does (at most 65,535;
 * `t` in ms, ascending). The values at the indexes in `stale` are written
 * as Prometheus's staleness marker (its exact bits). For tests and the fake
 * remote-read server; the bridge only decodes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeXorChunk } from "./xor_chunk.ts";
 *
 * assert.deepEqual([...encodeXorChunk([], [])], [0, 0]);
 * ```
 */
export function encodeXorChunk(
  t: readonly number[],
  v: readonly number[],
  stale: ReadonlySet<number> = new Set(),
): Uint8Array {
  if (t.length !== v.length || t.length > 0xffff) {
    throw new RangeError(`cannot encode ${t.length} timestamps with ${v.length} values`);
  }
  const w = new BitWriter();
  let prevT = 0, delta = 0, hi = 0, lo = 0, leading = 0xff, trailing = 0;
  /** The bits of value `i`. */
  const bitsOf = (i: number): [number, number] => {
    if (stale.has(i)) return [STALE_NAN_HI, STALE_NAN_LO];
    f64[0] = v[i]!;
    return [u32[HI]!, u32[LO]!];
  };
  const writeValue = (i: number) => {
    const [h, l] = bitsOf(i);
    const xh = (h ^ hi) >>> 0, xl = (l ^ lo) >>> 0;
    hi = h;
    lo = l;
    if (xh === 0 && xl === 0) {
      w.bit(0);
      return;
    }
    w.bit(1);
    let lead = clz64(xh, xl);
    const trail = ctz64(xh, xl);
    if (lead >= 32) lead = 31;
    if (leading !== 0xff && lead >= leading && trail >= trailing) {
      w.bit(0);
    } else {
      leading = lead;
      trailing = trail;
      w.bit(1);
      w.bits(leading, 5);
      const sig = 64 - leading - trailing;
      w.bits(sig === 64 ? 0 : sig, 6);
    }
    const sig = 64 - leading - trailing;
    // Bits [trailing, trailing + sig) of xh:xl, most significant first.
    for (let i = trailing + sig - 1; i >= trailing; i--) {
      w.bit(i >= 32 ? (xh >>> (i - 32)) & 1 : (xl >>> i) & 1);
    }
  };
  for (let i = 0; i < t.length; i++) {
    const ti = t[i]!;
    if (i === 0) {
      w.uvarint(ti >= 0 ? ti * 2 : -ti * 2 - 1);
      [hi, lo] = bitsOf(0);
      w.bits(hi, 32);
      w.bits(lo, 32);
    } else if (i === 1) {
      delta = ti - prevT;
      w.uvarint(delta);
      writeValue(i);
    } else {
      const d = ti - prevT;
      const dod = d - delta;
      delta = d;
      const fits = (n: number) => -(2 ** (n - 1) - 1) <= dod && dod <= 2 ** (n - 1);
      if (dod === 0) w.bit(0);
      else if (fits(14)) (w.bits(0b10, 2), w.bits(dod < 0 ? dod + 2 ** 14 : dod, 14));
      else if (fits(17)) (w.bits(0b110, 3), w.bits(dod < 0 ? dod + 2 ** 17 : dod, 17));
      else if (fits(20)) (w.bits(0b1110, 4), w.bits(dod < 0 ? dod + 2 ** 20 : dod, 20));
      else {
        w.bits(0b1111, 4);
        const h = Math.floor(dod / 4294967296);
        w.bits(h >>> 0, 32);
        w.bits(dod - h * 4294967296, 32);
      }
      writeValue(i);
    }
    prevT = ti;
  }
  const out = new Uint8Array(2 + w.bytes.length);
  out[0] = t.length >>> 8;
  out[1] = t.length & 0xff;
  out.set(w.bytes, 2);
  return out;
}
