/**
 * Snappy's block format (not the framing format), which the remote read API
 * uses for its request body. The encoder writes only literals: valid Snappy
 * that any decoder reads, without compression (requests are a few hundred
 * bytes). The decoder reads literals and copies.
 *
 * @module
 */

import { ProtoWriter } from "./protobuf.ts";

/**
 * Encodes `data` as one Snappy block of literals.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { snappyDecode, snappyEncode } from "./snappy.ts";
 *
 * const data = new TextEncoder().encode("hello");
 * assert.deepEqual(snappyDecode(snappyEncode(data)), data);
 * ```
 */
export function snappyEncode(data: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new ProtoWriter().varint(data.length).finish();
  const parts: Uint8Array[] = [out];
  let size = out.length;
  for (let at = 0; at < data.length; at += 65_536) {
    const piece = data.subarray(at, Math.min(data.length, at + 65_536));
    const len = piece.length - 1;
    const head = len < 60
      ? new Uint8Array([len << 2])
      : len < 256
      ? new Uint8Array([60 << 2, len])
      : new Uint8Array([61 << 2, len & 0xff, len >>> 8]);
    parts.push(head, piece);
    size += head.length + piece.length;
  }
  const block = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    block.set(p, at);
    at += p.length;
  }
  return block;
}

/** A malformed block. */
function bad(what: string): SyntaxError {
  return new SyntaxError(`malformed snappy block: ${what}`);
}

/**
 * Decodes one Snappy block; at most `maxBytes` decoded bytes (else a
 * `RangeError`). See {@linkcode snappyEncode} for an example.
 */
export function snappyDecode(block: Uint8Array, maxBytes = 64 * 1024 * 1024): Uint8Array {
  let pos = 0, n = 0, mul = 1;
  for (let i = 0;; i++) {
    if (i === 5 || pos >= block.length) throw bad("bad length preamble");
    const b = block[pos++]!;
    n += (b & 0x7f) * mul;
    mul *= 128;
    if (b < 0x80) break;
  }
  if (n > maxBytes) throw new RangeError(`snappy block of ${n} bytes, over ${maxBytes}`);
  const out = new Uint8Array(n);
  let o = 0;
  const le = (k: number) => {
    if (pos + k > block.length) throw bad("ends inside a tag");
    let x = 0;
    for (let i = 0; i < k; i++) x += block[pos + i]! * 2 ** (8 * i);
    pos += k;
    return x;
  };
  while (pos < block.length) {
    const tag = block[pos++]!;
    const kind = tag & 3;
    if (kind === 0) {
      let len = tag >>> 2;
      if (len >= 60) len = le(len - 59);
      len += 1;
      if (pos + len > block.length || o + len > n) throw bad("literal past the end");
      out.set(block.subarray(pos, pos + len), o);
      pos += len;
      o += len;
      continue;
    }
    let len: number, offset: number;
    if (kind === 1) {
      len = 4 + ((tag >>> 2) & 7);
      offset = ((tag >>> 5) << 8) | le(1);
    } else {
      len = 1 + (tag >>> 2);
      offset = le(kind === 2 ? 2 : 4);
    }
    if (offset === 0 || offset > o || o + len > n) throw bad("copy out of range");
    for (let i = 0; i < len; i++, o++) out[o] = out[o - offset]!;
  }
  if (o !== n) throw bad(`${o} bytes decoded, ${n} announced`);
  return out;
}
