import assert from "node:assert/strict";
import { Prng } from "../../tools/synth/prng.ts";
import { snappyDecode, snappyEncode } from "./snappy.ts";

/** A seeded PRNG (the synthetic hub's mulberry32): 32-bit unsigned integers. */
function prng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.uint32();
}

function randomBytes(n: number, seed: number): Uint8Array {
  const rand = prng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rand() & 0xff;
  return out;
}

/** The uvarint bytes of `n`. */
function uvarint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** The literal tag bytes for a literal of `len` bytes (1 to 65,536), as the format defines. */
function literalTag(len: number): number[] {
  const m = len - 1;
  if (m < 60) return [m << 2];
  if (m < 256) return [60 << 2, m];
  return [61 << 2, m & 0xff, m >> 8];
}

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("snappy: round trips at every literal length encoding", () => {
  for (const n of [0, 1, 2, 59, 60, 61, 62, 255, 256, 257, 65_535, 65_536, 65_537, 200_000]) {
    const data = randomBytes(n, n + 1);
    const block = snappyEncode(data);
    assert.deepEqual(snappyDecode(block), data, `${n} bytes`);
    // Preamble, then literals of at most 65,536 bytes, each with its tag.
    const want: number[] = uvarint(n);
    for (let at = 0; at < n; at += 65_536) want.push(...literalTag(Math.min(65_536, n - at)));
    assert.equal(block.length, want.length + n, `block size for ${n} bytes`);
    // Check the tags in place.
    let pos = uvarint(n).length;
    for (let at = 0; at < n; at += 65_536) {
      const len = Math.min(65_536, n - at);
      const tag = literalTag(len);
      assert.deepEqual([...block.subarray(pos, pos + tag.length)], tag, `tag at ${at} of ${n}`);
      pos += tag.length;
      assert.deepEqual(block.subarray(pos, pos + len), data.subarray(at, at + len));
      pos += len;
    }
    assert.equal(pos, block.length);
  }
});

Deno.test("snappy: literal tags by hand", () => {
  assert.deepEqual([...snappyEncode(new Uint8Array(0))], [0]);
  assert.deepEqual([...snappyEncode(bytes("a"))], [1, 0x00, 0x61]);
  assert.deepEqual([...snappyEncode(new Uint8Array(59)).subarray(0, 2)], [59, 58 << 2]);
  assert.deepEqual([...snappyEncode(new Uint8Array(60)).subarray(0, 2)], [60, 59 << 2]);
  assert.deepEqual([...snappyEncode(new Uint8Array(61)).subarray(0, 3)], [61, 0xf0, 60]);
  assert.deepEqual([...snappyEncode(new Uint8Array(255)).subarray(0, 4)], [0xff, 0x01, 0xf0, 254]);
  assert.deepEqual([...snappyEncode(new Uint8Array(256)).subarray(0, 4)], [0x80, 0x02, 0xf0, 255]);
  assert.deepEqual([...snappyEncode(new Uint8Array(257)).subarray(0, 5)], [
    0x81,
    0x02,
    0xf4,
    0x00,
    0x01,
  ]);
  const big = snappyEncode(new Uint8Array(65_537));
  assert.deepEqual([...big.subarray(0, 6)], [0x81, 0x80, 0x04, 0xf4, 0xff, 0xff]);
  assert.deepEqual([...big.subarray(6 + 65_536, 6 + 65_536 + 1)], [0x00]);
  assert.equal(big.length, 6 + 65_536 + 2);
  // Longer literal lengths a decoder must read (3 and 4 length bytes), from other encoders.
  assert.equal(
    text(snappyDecode(new Uint8Array([5, 62 << 2, 4, 0, 0, ...bytes("hello")]))),
    "hello",
  );
  assert.equal(
    text(snappyDecode(new Uint8Array([5, 63 << 2, 4, 0, 0, 0, ...bytes("hello")]))),
    "hello",
  );
});

Deno.test("snappy: copies of every tag type, overlapping ones included", () => {
  const block = new Uint8Array([
    28, // preamble: 28 bytes
    0x0c, // literal of 4
    ...bytes("abcd"),
    0x11, // copy, 1-byte offset: length 4 + 4 = 8, offset 4 (overlapping)
    0x04,
    0x00, // literal of 1
    ...bytes("x"),
    0x26, // copy, 2-byte offset: length 9 + 1 = 10, offset 1 (run length)
    0x01,
    0x00,
    0x13, // copy, 4-byte offset: length 4 + 1 = 5, offset 23
    23,
    0,
    0,
    0,
  ]);
  assert.equal(text(snappyDecode(block)), "abcdabcdabcdxxxxxxxxxxxabcda");

  // A 1-byte-offset copy with offset bits in its tag (offset 260, length 11).
  const prefix = randomBytes(300, 7);
  const far = new Uint8Array([
    ...uvarint(311),
    ...literalTag(300),
    ...prefix,
    (1 << 5) | (7 << 2) | 1,
    0x04,
  ]);
  const out = snappyDecode(far);
  assert.equal(out.length, 311);
  assert.deepEqual(out.subarray(0, 300), prefix);
  assert.deepEqual(out.subarray(300), prefix.subarray(40, 51));

  // A 2-byte offset above 255 and a 64-byte copy (the longest of type 2).
  const mid = new Uint8Array([
    ...uvarint(364),
    ...literalTag(300),
    ...prefix,
    (63 << 2) | 2,
    0x2c, // 300 = 0x012c
    0x01,
  ]);
  assert.deepEqual(snappyDecode(mid).subarray(300), prefix.subarray(0, 64));
});

Deno.test("snappy: malformed blocks are SyntaxErrors", () => {
  const bad = (block: number[], what: RegExp) =>
    assert.throws(() => snappyDecode(new Uint8Array(block)), {
      name: "SyntaxError",
      message: what,
    });
  // The preamble.
  bad([], /preamble/);
  bad([0x80], /preamble/);
  bad([0x80, 0x80, 0x80, 0x80, 0x80, 0x01], /preamble/);
  // Literals past the block's end or past the announced length.
  bad([5, 0x10, 1, 2], /literal/);
  bad([2, 0x10, 1, 2, 3, 4, 5], /literal/);
  bad([5, 0xf0], /tag/); // 1-byte length missing
  bad([5, 0xf4, 4], /tag/); // 2-byte length cut
  // Copies: offset 0, before the start, past the announced length, cut.
  bad([11, 0x00, 0x61, 0x26, 0x00, 0x00], /copy/); // would fit: 1 + 10 bytes
  bad([10, 0x00, 0x61, 0x26, 0x02, 0x00], /copy/);
  bad([10, 0x00, 0x61, 0x05, 0x02], /copy/);
  bad([3, 0x00, 0x61, 0x0e, 0x01, 0x00], /copy/); // 4 bytes into 3
  bad([10, 0x00, 0x61, 0x01], /tag/);
  bad([10, 0x00, 0x61, 0x03, 1, 0, 0], /tag/);
  // Fewer bytes than announced.
  bad([10, 0x08, 0x61, 0x62, 0x63], /3 bytes decoded, 10 announced/);
  bad([1], /0 bytes decoded, 1 announced/);
});

Deno.test("snappy: the size limit is a RangeError, checked before decoding", () => {
  const data = randomBytes(100, 3);
  assert.deepEqual(snappyDecode(snappyEncode(data), 100), data);
  assert.throws(() => snappyDecode(snappyEncode(data), 99), RangeError);
  // An announced size alone is enough, however short the block.
  assert.throws(() => snappyDecode(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f])), RangeError);
  assert.throws(() => snappyDecode(new Uint8Array(uvarint(65 * 1024 * 1024))), RangeError);
});
