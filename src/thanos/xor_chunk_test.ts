import assert from "node:assert/strict";
import { Prng } from "../../tools/synth/prng.ts";
import {
  decodeXorChunk,
  encodeXorChunk,
  isStaleMarker,
  STALE_NAN_HI,
  STALE_NAN_LO,
  staleMarker,
} from "./xor_chunk.ts";

/** A seeded PRNG (the synthetic hub's mulberry32): 32-bit unsigned integers. */
function prng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.uint32();
}

const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/**
 * The 64 bits of a double, as 16 hex digits (NaN payloads and -0 included). Through a
 * `Float64Array`: `DataView.setFloat64` would quiet a signalling NaN like the stale marker.
 */
function hexBits(v: number): string {
  f64[0] = v;
  const hex = (x: number) => x.toString(16).padStart(8, "0");
  return hex(u32[LITTLE ? 1 : 0]!) + hex(u32[LITTLE ? 0 : 1]!);
}

/** A double from its bits, kept in a `Float64Array` (a plain array would canonicalize NaNs). */
function fromBits(hi: number, lo: number): Float64Array {
  const f = new Float64Array(1);
  const u = new Uint32Array(f.buffer);
  u[LITTLE ? 1 : 0] = hi;
  u[LITTLE ? 0 : 1] = lo;
  return f;
}

/** `n` (at most 32) bits of the chunk's bit stream (after its 2-byte count) from bit `at`. */
function bitsAt(chunk: Uint8Array, at: number, n: number): number {
  let x = 0;
  for (let i = 0; i < n; i++) {
    const p = 16 + at + i;
    x = x * 2 + ((chunk[p >>> 3]! >>> (7 - (p & 7))) & 1);
  }
  return x;
}

/**
 * Encodes, decodes, and checks every timestamp and every value's bits.
 * Values may be a `Float64Array` so that NaN payloads reach the encoder.
 */
function roundTrip(t: readonly number[], v: readonly number[] | Float64Array): Uint8Array {
  // The encoder only indexes `v`; a Float64Array keeps NaN payloads that a number[] would lose.
  const chunk = encodeXorChunk(t, v as readonly number[]);
  assert.equal((chunk[0]! << 8) | chunk[1]!, t.length);
  const got: [number, string][] = [];
  const n = decodeXorChunk(chunk, (ts, val) => got.push([ts, hexBits(val)]));
  assert.equal(n, t.length);
  assert.deepEqual(got, t.map((ts, i) => [ts, hexBits(v[i]!)]));
  return chunk;
}

Deno.test("xor chunk: no samples is just a zero count", () => {
  const chunk = roundTrip([], []);
  assert.deepEqual([...chunk], [0, 0]);
  let calls = 0;
  assert.equal(decodeXorChunk(new Uint8Array([0, 0, 0xff, 0xff]), () => calls++), 0);
  assert.equal(calls, 0);
});

Deno.test("xor chunk: one, two and three samples", () => {
  // One sample: zig-zag varint of 1000 (2000 = 0xd0 0x0f) and the 64 bits of 1.0.
  const one = roundTrip([1000], [1]);
  assert.deepEqual([...one], [0, 1, 0xd0, 0x0f, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
  roundTrip([1000, 16000], [1, 2.5]);
  roundTrip([1000, 16000], [7, 7]);
  roundTrip([1000, 16000, 31000], [1, 1, 2.5]);
  roundTrip([0, 0, 0], [0, 0, 0]);
});

Deno.test("xor chunk: golden vector derived by hand from the format", () => {
  // count 3 = 00 03; t0 = -1 → zig-zag 1 = 01; v0 = 1.0 = 3f f0 00 00 00 00 00 00;
  // delta 10 = 0a; v1 same: 0; dod +1: 10 00000000000001;
  // v2 = 2.0, XOR 0x7ff0... : 11, leading 00001, length 001011 (11), bits 11111111111.
  // Bits after the delta: 01000000 00000000 11100001 00101111 11111111 1(0000000).
  const golden = [
    0,
    3,
    0x01,
    0x3f,
    0xf0,
    0,
    0,
    0,
    0,
    0,
    0,
    0x0a,
    0x40,
    0x00,
    0xe1,
    0x2f,
    0xff,
    0x80,
  ];
  assert.deepEqual([...encodeXorChunk([-1, 9, 20], [1, 1, 2])], golden);
  const got: [number, number][] = [];
  assert.equal(decodeXorChunk(new Uint8Array(golden), (t, v) => got.push([t, v])), 3);
  assert.deepEqual(got, [[-1, 1], [9, 1], [20, 2]]);
});

Deno.test("xor chunk: 120+ regularly spaced samples (15 s and 60 s)", () => {
  const t0 = 1_800_000_000_000;
  // A constant value every 15 s: after the second sample, 2 bits per sample (dod 0, same value).
  const t15 = Array.from({ length: 120 }, (_, i) => t0 + i * 15_000);
  const flat = roundTrip(t15, t15.map(() => 42));
  // 2 count + 6 varint(t0) + 8 value + 2 uvarint(15000) + ceil((1 + 118 * 2) / 8) = 30.
  assert.equal(flat.length, 2 + 6 + 8 + 2 + 30);
  // A counter and a gauge every 60 s.
  const t60 = Array.from({ length: 150 }, (_, i) => t0 + i * 60_000);
  roundTrip(t60, t60.map((_, i) => i * 3 + (i % 7 === 0 ? 1 : 0)));
  roundTrip(t60, t60.map((_, i) => Math.sin(i / 10) * 1000));
  roundTrip(t60, t60.map((_, i) => i / 3));
});

Deno.test("xor chunk: 65535 samples, the most a chunk holds", () => {
  const t = Array.from({ length: 0xffff }, (_, i) => i * 15_000);
  const chunk = roundTrip(t, t.map((_, i) => i % 5));
  assert.deepEqual([chunk[0], chunk[1]], [0xff, 0xff]);
  assert.throws(() => encodeXorChunk([...t, 1e12], [...t, 0]), RangeError);
  assert.throws(() => encodeXorChunk([1, 2], [1]), RangeError);
});

Deno.test("xor chunk: every delta-of-delta class, with its edges", () => {
  // Samples at 0, 1000 and 2000 + dod, all 0: the dod starts at bit 8 + 64 + 16 + 1 = 89.
  const cases: [number, number, number, number][] = [
    // dod, prefix, prefix bits, payload bits
    [0, 0b0, 1, 0],
    [1, 0b10, 2, 14],
    [-1, 0b10, 2, 14],
    [8, 0b10, 2, 14],
    [-8191, 0b10, 2, 14],
    [8192, 0b10, 2, 14],
    [-8192, 0b110, 3, 17],
    [8193, 0b110, 3, 17],
    [-65535, 0b110, 3, 17],
    [65536, 0b110, 3, 17],
    [-65536, 0b1110, 4, 20],
    [65537, 0b1110, 4, 20],
    [-(2 ** 19 - 1), 0b1110, 4, 20],
    [2 ** 19, 0b1110, 4, 20],
    [-(2 ** 19), 0b1111, 4, 64],
    [2 ** 19 + 1, 0b1111, 4, 64],
    [2 ** 32, 0b1111, 4, 64],
    [-(2 ** 40) - 3, 0b1111, 4, 64],
  ];
  for (const [dod, prefix, prefixBits, payloadBits] of cases) {
    const t = [2 ** 45, 2 ** 45 + 1000, 2 ** 45 + 2000 + dod];
    const chunk = roundTrip(t, [0, 0, 0]);
    const at = 8 * 7 + 64 + 16 + 1; // varint(2^46) is 7 bytes
    assert.equal(bitsAt(chunk, at, prefixBits), prefix, `prefix of dod ${dod}`);
    const p = at + prefixBits;
    if (payloadBits === 64) {
      const two = BigInt.asUintN(64, BigInt(dod));
      assert.equal(bitsAt(chunk, p, 32), Number(two >> 32n), `high bits of dod ${dod}`);
      assert.equal(bitsAt(chunk, p + 32, 32), Number(two & 0xffffffffn), `low bits of ${dod}`);
    } else if (payloadBits > 0) {
      const want = dod < 0 ? dod + 2 ** payloadBits : dod;
      assert.equal(bitsAt(chunk, p, payloadBits), want, `payload of dod ${dod}`);
    }
    // The value: the same, one 0 bit; then padding only.
    assert.equal(bitsAt(chunk, p + payloadBits, 1), 0);
    assert.equal(chunk.length, 2 + Math.ceil((p + payloadBits + 1) / 8));
  }
});

Deno.test("xor chunk: irregular timestamps through all classes in one chunk", () => {
  const dods = [
    0,
    1,
    -1,
    8191,
    -8191,
    8192,
    -8192,
    100_000,
    -100_000,
    2 ** 19,
    -(2 ** 19),
    2 ** 33 + 5,
    -(2 ** 33) - 5,
    2 ** 40,
    -(2 ** 40),
    0,
    0,
    7,
  ];
  for (const t0 of [0, -5000, -1_800_000_000_000, 1_800_000_000_000]) {
    const t = [t0];
    let delta = 2 ** 42;
    t.push(t0 + delta);
    for (const dod of dods) {
      delta += dod;
      t.push(t.at(-1)! + delta);
    }
    roundTrip(t, t.map((_, i) => i * 0.5));
  }
  // Small first timestamps near zero, negative and positive.
  roundTrip([-1, 0, 1], [1, 2, 3]);
  roundTrip([-64, -63, 63, 64], [1, 2, 3, 4]);
});

Deno.test("xor chunk: special values keep their bits", () => {
  const values = [
    0,
    -0,
    1,
    -1,
    42,
    0.1,
    1 / 3,
    -2.5e-7,
    NaN,
    Infinity,
    -Infinity,
    Number.MAX_VALUE,
    -Number.MAX_VALUE,
    Number.MIN_VALUE,
    -Number.MIN_VALUE,
    2 ** 53,
    0,
    0,
    -0,
    NaN,
    NaN,
  ];
  const t = values.map((_, i) => 1_700_000_000_000 + i * 15_000);
  roundTrip(t, values);
  const got: number[] = [];
  decodeXorChunk(encodeXorChunk(t, values), (_, v) => got.push(v));
  assert.ok(Object.is(got[0], 0));
  assert.ok(Object.is(got[1], -0));
  assert.ok(Object.is(got[18], -0));
  assert.ok(Number.isNaN(got[8]));
  assert.equal(got[13], Number.MIN_VALUE);
  assert.equal(got[11], Number.MAX_VALUE);
  // Each special value as the first sample too (64 raw bits).
  for (const v of values) roundTrip([5], [v]);
});

Deno.test("xor chunk: the staleness marker survives, an ordinary NaN is not one", () => {
  assert.equal(STALE_NAN_HI, 0x7ff00000);
  assert.equal(STALE_NAN_LO, 2);
  const stale = staleMarker();
  assert.ok(Number.isNaN(stale));
  assert.ok(isStaleMarker(stale));
  assert.equal(hexBits(stale), "7ff0000000000002");
  assert.ok(!isStaleMarker(NaN));
  assert.ok(!isStaleMarker(0));
  assert.ok(!isStaleMarker(Infinity));
  assert.ok(!isStaleMarker(fromBits(0x7ff00000, 3)[0]!));
  assert.ok(!isStaleMarker(fromBits(0xfff00000, 2)[0]!));
  assert.ok(isStaleMarker(fromBits(0x7ff00000, 2)[0]!));

  // Values in a Float64Array, so the marker's bits reach the encoder.
  const values = new Float64Array([1, 0, 2, NaN, 0, 3]);
  values[1] = stale;
  values[4] = stale;
  const t = [0, 15_000, 30_000, 45_000, 60_000, 75_000];
  const chunk = roundTrip(t, values);
  const stales: boolean[] = [];
  const flags: boolean[] = [];
  const nans: boolean[] = [];
  decodeXorChunk(chunk, (_, v, isStale) => {
    stales.push(isStaleMarker(v));
    flags.push(isStale);
    nans.push(Number.isNaN(v));
  });
  const want = [false, true, false, false, true, false];
  assert.deepEqual(stales, want);
  assert.deepEqual(flags, want);
  assert.deepEqual(nans, [false, true, false, true, true, false]);

  // The encoder's `stale` indexes: the marker's bits without a NaN in a number[] (where V8
  // would make it canonical). The same chunk as from the Float64Array.
  const plainValues = [1, 0, 2, NaN, 0, 3];
  assert.deepEqual(encodeXorChunk(t, plainValues, new Set([1, 4])), chunk);
  assert.notDeepEqual(encodeXorChunk(t, plainValues), chunk);
  // Stale first, stale twice in a row (the '0' bit), stale between ordinary NaNs.
  const mixed = [NaN, NaN, NaN, 5, NaN, NaN];
  const got: boolean[] = [];
  decodeXorChunk(encodeXorChunk(t, mixed, new Set([0, 1, 4])), (_, v, isStale) => {
    assert.equal(Number.isNaN(v), got.length !== 3);
    assert.equal(isStale, isStaleMarker(v));
    got.push(isStale);
  });
  assert.deepEqual(got, [true, true, false, false, true, false]);

  // By hand: one sample whose 64 value bits are the marker's; then one whose bits differ in one.
  const byHand = new Uint8Array([0, 1, 0x00, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0x02]);
  const seen: [number, boolean, boolean][] = [];
  decodeXorChunk(byHand, (t0, v, isStale) => seen.push([t0, isStaleMarker(v), isStale]));
  byHand[10] = 0x03;
  decodeXorChunk(byHand, (t0, v, isStale) => seen.push([t0, isStaleMarker(v), isStale]));
  assert.deepEqual(seen, [[0, true, true], [0, false, false]]);
  // And as the first sample of an encoded chunk.
  roundTrip([10], fromBits(0x7ff00000, 2));
});

Deno.test("xor chunk: XOR windows with ≥ 32 leading zeros, ≥ 32 trailing zeros, 64 bits", () => {
  // The second value starts at bit 8 + 64 + 16 = 88 (t0 = 0, delta 1000).
  const t = [0, 1000, 2000];

  // 1 then its next double: XOR 1, 63 leading zeros clamped to 31, 33 significant bits.
  const lead = roundTrip(t.slice(0, 2), [1, 1 + 2 ** -52]);
  assert.equal(bitsAt(lead, 88, 2), 0b11);
  assert.equal(bitsAt(lead, 90, 5), 31);
  assert.equal(bitsAt(lead, 95, 6), 33);
  assert.equal(bitsAt(lead, 101, 1), 0);
  assert.equal(bitsAt(lead, 102, 32), 1);

  // 1 then 2: XOR 0x7ff0..., 1 leading zero, 52 trailing zeros, 11 bits.
  const trail = roundTrip(t.slice(0, 2), [1, 2]);
  assert.equal(bitsAt(trail, 88, 2), 0b11);
  assert.equal(bitsAt(trail, 90, 5), 1);
  assert.equal(bitsAt(trail, 95, 6), 11);
  assert.equal(bitsAt(trail, 101, 11), 0x7ff);

  // 1, -1.5, 1/3: XORs 0x8008000000000000 (13 bits) then 0x802d555555555555 (64 bits, length 0).
  const full = roundTrip(t, [1, -1.5, 1 / 3]);
  assert.equal(bitsAt(full, 88, 2), 0b11);
  assert.equal(bitsAt(full, 90, 5), 0);
  assert.equal(bitsAt(full, 95, 6), 13);
  assert.equal(bitsAt(full, 101, 13), 0x1001);
  assert.equal(bitsAt(full, 114, 1), 0); // dod 0
  assert.equal(bitsAt(full, 115, 2), 0b11);
  assert.equal(bitsAt(full, 117, 5), 0);
  assert.equal(bitsAt(full, 122, 6), 0); // 64 significant bits
  assert.equal(bitsAt(full, 128, 32), 0x802d5555);
  assert.equal(bitsAt(full, 160, 32), 0x55555555);
  assert.equal(full.length, 2 + 192 / 8);

  // Windows straddling the 32-bit halves, and with ≥ 32 trailing and few leading zeros.
  roundTrip([0, 1, 2, 3, 4], [1, 1 + 2 ** -20, 1 + 2 ** -21 + 2 ** -50, -7, 7]);
  roundTrip([0, 1, 2], [fromBits(0x12345678, 0x9abcdef1)[0]!, 0, 5e-324]);
});

Deno.test("xor chunk: a value inside the previous window reuses it", () => {
  // 2 → 4: XOR 0x0010000000000000, 11 leading and 52 trailing zeros, inside the window
  // (1 leading, 52 trailing) set by 1 → 2: control 10, then the window's 11 bits.
  const chunk = roundTrip([0, 1000, 2000], [1, 2, 4]);
  assert.equal(bitsAt(chunk, 95, 6), 11);
  assert.equal(bitsAt(chunk, 112, 1), 0); // dod 0
  assert.equal(bitsAt(chunk, 113, 2), 0b10);
  assert.equal(bitsAt(chunk, 115, 11), 1);
  assert.equal(chunk.length, 2 + Math.ceil(126 / 8));
  // Repeated values cost one bit each: the '0' path.
  const same = roundTrip([0, 1000, 2000, 3000, 4000], [3.25, 3.25, 3.25, 3.25, 3.25]);
  assert.equal(bitsAt(same, 88, 1), 0);
  for (let i = 0; i < 3; i++) assert.equal(bitsAt(same, 89 + 2 * i, 2), 0);
  // Many reuses after a wide window.
  roundTrip([0, 1, 2, 3, 4, 5, 6], [1, -1.5, 1.5, -1.5, 1.5, 1.5, -1.5]);
});

Deno.test("xor chunk: random samples, seeded", () => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    const rand = prng(seed);
    const n = 1 + (rand() % 400);
    const t: number[] = [];
    const v = new Float64Array(n);
    const u = new Uint32Array(v.buffer);
    let ts = rand() % 2 === 0 ? -(rand() * 1000) : 1_700_000_000_000 + rand();
    for (let i = 0; i < n; i++) {
      t.push(ts);
      const kind = rand() % 8;
      ts += kind === 0 ? 15_000 : kind === 1 ? rand() : kind === 2 ? rand() * 2 ** 8 : 60_000;
      const vk = rand() % 6;
      if (vk === 0 && i > 0) v[i] = v[i - 1]!;
      else if (vk === 1) v[i] = rand() % 100;
      else if (vk === 2) v[i] = (rand() - 2 ** 31) / 977;
      else {
        // Any 64 bits, NaN payloads included.
        u[2 * i] = rand();
        u[2 * i + 1] = rand();
      }
    }
    roundTrip(t, v);
  }
});

Deno.test("xor chunk: malformed chunks are SyntaxErrors", () => {
  const noop = () => {};
  assert.throws(() => decodeXorChunk(new Uint8Array(0), noop), SyntaxError);
  assert.throws(() => decodeXorChunk(new Uint8Array([0]), noop), SyntaxError);
  const good = encodeXorChunk([0, 15_000, 30_000, 45_000], [1, 2, 3, 4]);
  // A count larger than the bits hold (a few padding bits may read as samples, not 20).
  const more = good.slice();
  more[1] = 24;
  assert.throws(() => decodeXorChunk(more, noop), SyntaxError);
  const huge = good.slice();
  huge[0] = 0xff;
  assert.throws(() => decodeXorChunk(huge, noop), SyntaxError);
  // Cut at every length short of the whole.
  for (let n = 2; n < good.length; n++) {
    assert.throws(() => decodeXorChunk(good.subarray(0, n), noop), SyntaxError, `cut at ${n}`);
  }
  // One sample without all its value bits.
  assert.throws(() => decodeXorChunk(new Uint8Array([0, 1, 0, 0x3f, 0xf0]), noop), SyntaxError);
  // A varint that never ends.
  assert.throws(() => decodeXorChunk(new Uint8Array([0, 1, ...new Array(12).fill(0xff)]), noop), {
    name: "SyntaxError",
    message: /varint/,
  });
  // A window of 31 leading zeros and 40 bits: more than 64.
  const window = new Uint8Array([0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x40]);
  assert.throws(() => decodeXorChunk(window, noop), { name: "SyntaxError", message: /window/ });
  // Samples before the error were passed on.
  const seen: number[] = [];
  assert.throws(() => decodeXorChunk(more, (t) => seen.push(t)), SyntaxError);
  assert.deepEqual(seen.slice(0, 4), [0, 15_000, 30_000, 45_000]);
});
