import assert from "node:assert/strict";
import { BYTES, FIXED32, FIXED64, ProtoReader, ProtoWriter, VARINT } from "./protobuf.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");

Deno.test("protobuf: varints are written as the wire format says and read back", () => {
  const cases: [number, string][] = [
    [0, "00"],
    [1, "01"],
    [127, "7f"],
    [128, "80 01"],
    [300, "ac 02"],
    [16_383, "ff 7f"],
    [16_384, "80 80 01"],
    [2 ** 31 - 1, "ff ff ff ff 07"],
    [2 ** 31, "80 80 80 80 08"],
    [2 ** 32 - 1, "ff ff ff ff 0f"],
    [2 ** 32, "80 80 80 80 10"],
    [1_800_000_000_000, "80 a0 f1 c2 b1 34"],
    [2 ** 53 - 1, "ff ff ff ff ff ff ff 0f"],
  ];
  for (const [x, want] of cases) {
    const b = new ProtoWriter().varint(x).finish();
    assert.equal(hex(b), want, `varint ${x}`);
    const r = new ProtoReader(b);
    assert.equal(r.uint(), x);
    assert.equal(r.next(), null);
  }
});

Deno.test("protobuf: negative int64 are ten bytes and read back as the same number", () => {
  assert.equal(hex(new ProtoWriter().varint(-1).finish()), "ff ff ff ff ff ff ff ff ff 01");
  assert.equal(hex(new ProtoWriter().varint(-2).finish()), "fe ff ff ff ff ff ff ff ff 01");
  assert.equal(hex(new ProtoWriter().varint(-(2 ** 63)).finish()), "80 80 80 80 80 80 80 80 80 01");
  for (
    const x of [
      -1,
      -2,
      -127,
      -128,
      -1000,
      -(2 ** 31),
      -(2 ** 32) - 1,
      -1_800_000_000_000,
      -(
        2 ** 53 - 1
      ),
      -(2 ** 63),
    ]
  ) {
    const b = new ProtoWriter().varint(x).finish();
    assert.equal(b.length, 10, `length of ${x}`);
    assert.equal(new ProtoReader(b).uint(), x, `read back ${x}`);
    // As a field too.
    const r = new ProtoReader(new ProtoWriter().uint(3, x).finish());
    assert.deepEqual(r.next(), { field: 3, wire: VARINT });
    assert.equal(r.uint(), x);
  }
});

Deno.test("protobuf: integer fields are left out when 0", () => {
  assert.equal(new ProtoWriter().uint(1, 0).finish().length, 0);
  assert.equal(hex(new ProtoWriter().uint(1, 0).uint(2, 5).uint(3, 0).finish()), "10 05");
  // Tags with large field numbers take more bytes.
  assert.equal(hex(new ProtoWriter().uint(16, 1).finish()), "80 01 01");
  const r = new ProtoReader(new ProtoWriter().uint(536_870_911, 7).finish());
  assert.deepEqual(r.next(), { field: 536_870_911, wire: VARINT });
  assert.equal(r.uint(), 7);
  // Bytes and strings are written even when empty (a writer caller decides).
  assert.equal(
    hex(new ProtoWriter().string(2, "").bytes(3, new Uint8Array(0)).finish()),
    "12 00 1a 00",
  );
});

Deno.test("protobuf: strings, bytes, and growth past the first buffer", () => {
  const big = new Uint8Array(10_000).map((_, i) => (i * 7) & 0xff);
  const w = new ProtoWriter().string(1, "héllo ✓ 𝄞").bytes(2, big).uint(3, 1);
  for (let i = 0; i < 100; i++) w.string(4, `label-${i}`);
  const r = new ProtoReader(w.finish());
  assert.deepEqual(r.next(), { field: 1, wire: BYTES });
  assert.equal(r.string(), "héllo ✓ 𝄞");
  assert.deepEqual(r.next(), { field: 2, wire: BYTES });
  assert.deepEqual(r.bytes(), big);
  assert.deepEqual(r.next(), { field: 3, wire: VARINT });
  assert.equal(r.uint(), 1);
  for (let i = 0; i < 100; i++) {
    assert.deepEqual(r.next(), { field: 4, wire: BYTES });
    assert.equal(r.string(), `label-${i}`);
  }
  assert.equal(r.next(), null);
  // finish() is a copy: later writes do not change it.
  const w2 = new ProtoWriter().uint(1, 1);
  const first = w2.finish();
  w2.uint(2, 2);
  assert.equal(hex(first), "08 01");
  assert.equal(hex(w2.finish()), "08 01 10 02");
});

Deno.test("protobuf: packed repeated varints", () => {
  const xs = [0, 1, 127, 128, 300, 2 ** 32, 2 ** 40 + 1];
  const b = new ProtoWriter().packed(5, xs).finish();
  // Tag 0x2a, the length (1 + 1 + 1 + 2 + 2 + 5 + 6 = 18), then the varints back to back.
  assert.equal(hex(b.subarray(0, 5)), "2a 12 00 01 7f");
  const r = new ProtoReader(b);
  assert.deepEqual(r.next(), { field: 5, wire: BYTES });
  assert.deepEqual(r.packed(), xs);
  assert.equal(r.next(), null);
  // Empty: left out. One element, unpacked (wire type 0): read as a list too.
  assert.equal(new ProtoWriter().packed(5, []).finish().length, 0);
  const single = new ProtoReader(new ProtoWriter().uint(5, 9).finish());
  single.next();
  assert.deepEqual(single.packed(), [9]);
  // A packed field cut inside a varint.
  const cut = new ProtoReader(new Uint8Array([0x2a, 0x02, 0x01, 0x80]));
  cut.next();
  assert.throws(() => cut.packed(), { name: "SyntaxError", message: /varint/ });
});

Deno.test("protobuf: nested messages, and a reader over part of a buffer", () => {
  const inner = new ProtoWriter().string(1, "name").string(2, "value").finish();
  const outer = new ProtoWriter().bytes(1, inner).bytes(1, inner).uint(2, 3).finish();
  const r = new ProtoReader(outer);
  const names: string[] = [];
  let last = 0;
  for (let f = r.next(); f !== null; f = r.next()) {
    if (f.field === 1) {
      const ir = new ProtoReader(r.bytes());
      for (let g = ir.next(); g !== null; g = ir.next()) names.push(`${g.field}=${ir.string()}`);
    } else last = r.uint();
  }
  assert.deepEqual(names, ["1=name", "2=value", "1=name", "2=value"]);
  assert.equal(last, 3);
  // A reader over [start, end): the inner message at its place in the outer one.
  const sub = new ProtoReader(outer, 2, 2 + inner.length);
  assert.deepEqual(sub.next(), { field: 1, wire: BYTES });
  assert.equal(sub.string(), "name");
  assert.deepEqual(sub.next(), { field: 2, wire: BYTES });
  assert.equal(sub.string(), "value");
  assert.equal(sub.next(), null);
  // A field longer than the window is refused although the buffer holds it.
  const short = new ProtoReader(outer, 2, 2 + inner.length - 1);
  short.next();
  short.string();
  short.next();
  assert.throws(() => short.string(), SyntaxError);
  // bytes() is a view, not a copy.
  const view = new ProtoReader(outer);
  view.next();
  assert.equal(view.bytes().buffer, outer.buffer);
});

Deno.test("protobuf: skip() passes over every wire type", () => {
  const msg = new Uint8Array([
    0x08, // field 1, varint
    0x96,
    0x01,
    0x11, // field 2, fixed64
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    0x1a, // field 3, bytes
    0x03,
    0xff,
    0xfe,
    0xfd,
    0x25, // field 4, fixed32
    1,
    2,
    3,
    4,
    0x28, // field 5, varint: the one kept
    0x2a,
  ]);
  const r = new ProtoReader(msg);
  const wires: number[] = [];
  let kept = -1;
  for (let f = r.next(); f !== null; f = r.next()) {
    wires.push(f.wire);
    if (f.field === 5) kept = r.uint();
    else r.skip();
  }
  assert.deepEqual(wires, [VARINT, FIXED64, BYTES, FIXED32, VARINT]);
  assert.equal(kept, 42);
});

Deno.test("protobuf: unknown wire types, field 0 and cut fields are SyntaxErrors", () => {
  for (const wire of [3, 4, 6, 7]) {
    const r = new ProtoReader(new Uint8Array([(1 << 3) | wire, 0, 0, 0, 0, 0, 0, 0, 0]));
    assert.deepEqual(r.next(), { field: 1, wire });
    assert.throws(() => r.skip(), {
      name: "SyntaxError",
      message: new RegExp(`wire type ${wire}`),
    });
  }
  assert.throws(() => new ProtoReader(new Uint8Array([0x00, 0x01])).next(), {
    name: "SyntaxError",
    message: /field number 0/,
  });
  const after = (bytes: number[], read: (r: ProtoReader) => unknown) => {
    const r = new ProtoReader(new Uint8Array(bytes));
    r.next();
    return () => read(r);
  };
  // Truncated varints: a tag, a value, a length.
  assert.throws(() => new ProtoReader(new Uint8Array([0x80])).next(), SyntaxError);
  assert.throws(after([0x08, 0x80, 0x80], (r) => r.uint()), /varint/);
  assert.throws(after([0x08], (r) => r.uint()), SyntaxError);
  assert.throws(after([0x0a, 0x80], (r) => r.bytes()), SyntaxError);
  // A varint of more than 10 bytes.
  assert.throws(after([0x08, ...new Array(11).fill(0x80), 0x01], (r) => r.uint()), /10 bytes/);
  // Truncated length-delimited and fixed fields.
  assert.throws(after([0x0a, 0x05, 1, 2], (r) => r.bytes()), /longer than its message/);
  assert.throws(after([0x0a, 0x05, 1, 2], (r) => r.skip()), SyntaxError);
  assert.throws(after([0x11, 1, 2, 3, 4, 5, 6, 7], (r) => r.skip()), SyntaxError);
  assert.throws(after([0x15, 1, 2, 3], (r) => r.skip()), SyntaxError);
  // A negative length (a 10-byte varint) is no length.
  const minus = [...new ProtoWriter().varint(-1).finish()];
  assert.throws(after([0x0a, ...minus, 1, 2], (r) => r.bytes()), SyntaxError);
  // Fields that fit exactly are fine.
  assert.doesNotThrow(after([0x11, 1, 2, 3, 4, 5, 6, 7, 8], (r) => r.skip()));
  assert.doesNotThrow(after([0x15, 1, 2, 3, 4], (r) => r.skip()));
});

Deno.test("protobuf: strings must be valid UTF-8", () => {
  for (const bad of [[0xff], [0xc3], [0xe2, 0x9c], [0xed, 0xa0, 0x80], [0x61, 0x80]]) {
    const r = new ProtoReader(new Uint8Array([0x0a, bad.length, ...bad]));
    r.next();
    assert.throws(
      () => r.string(),
      { name: "SyntaxError", message: /UTF-8/ },
      hex(new Uint8Array(bad)),
    );
  }
  // The same bytes are fine as bytes.
  const r = new ProtoReader(new Uint8Array([0x0a, 1, 0xff]));
  r.next();
  assert.deepEqual([...r.bytes()], [0xff]);
});

Deno.test("protobuf: short strings come from a decode cache, equal to a fresh decode, whatever the collisions", () => {
  // 10,000 distinct strings (more than the cache's slots), ASCII and not, read three times.
  const texts = Array.from({ length: 10_000 }, (_, i) => (i % 3 === 0 ? `ns-é${i}` : `pod-${i}`));
  texts.push("x".repeat(64), "y".repeat(65), "");
  const w = new ProtoWriter();
  for (const t of [...texts, ...texts.slice().reverse(), ...texts]) w.string(1, t);
  const r = new ProtoReader(w.finish());
  const got: string[] = [];
  while (r.next() !== null) got.push(r.string());
  assert.deepEqual(got, [...texts, ...texts.slice().reverse(), ...texts]);
  // Bytes that are not UTF-8 are refused even right after valid ones of the same length.
  const again = new ProtoReader(new Uint8Array([0x0a, 2, 0x61, 0x62, 0x0a, 2, 0x61, 0x80]));
  again.next();
  assert.equal(again.string(), "ab");
  again.next();
  assert.throws(() => again.string(), SyntaxError);
});
