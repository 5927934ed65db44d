import assert from "node:assert/strict";
import { formatGoTime, goJsonString, marshalIndent } from "./go_json.ts";

interface Vectors {
  json_strings: { s: string; out: string }[];
  json_numbers: { bits: string; out: string }[];
  json_times: { unix_seconds: number; nanos: number; out: string }[];
  json_values: { name: string; value: unknown; out: string }[];
}

const vectors = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/go_vectors.json", import.meta.url)),
) as Vectors;

function fromBits(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt("0x" + hex));
  return view.getFloat64(0);
}

Deno.test("goJsonString() matches Go's json.Marshal for every string vector", () => {
  assert.ok(vectors.json_strings.length > 500);
  for (const { s, out } of vectors.json_strings) {
    assert.equal(goJsonString(s), out, JSON.stringify(s));
  }
});

Deno.test("goJsonString() escapes like Go, not like JSON.stringify", () => {
  assert.equal(goJsonString("<&>"), '"\\u003c\\u0026\\u003e"');
  assert.equal(goJsonString("\u2028\u2029"), '"\\u2028\\u2029"');
  assert.equal(goJsonString("\b\f\u0000\u001f\u007f"), '"\\b\\f\\u0000\\u001f\u007f"');
  assert.equal(goJsonString("a\ud800b"), '"a\ufffdb"'); // lone surrogate
  assert.equal(goJsonString("😀"), '"😀"');
});

Deno.test("marshalIndent() encodes numbers like Go's float64 encoder", () => {
  assert.ok(vectors.json_numbers.length > 1000);
  for (const { bits, out } of vectors.json_numbers) {
    assert.equal(marshalIndent(fromBits(bits)), out, bits);
  }
  assert.throws(() => marshalIndent(NaN), RangeError);
  assert.throws(() => marshalIndent({ a: [Infinity] }), /value\.a\[0\]/);
});

Deno.test("formatGoTime() matches Go's time.Time JSON for millisecond times", () => {
  let tested = 0;
  for (const { unix_seconds, nanos, out } of vectors.json_times) {
    if (nanos % 1_000_000 !== 0) {
      continue; // Date cannot hold sub-millisecond precision
    }
    const date = new Date(unix_seconds * 1000 + nanos / 1_000_000);
    assert.equal(marshalIndent(date), out);
    assert.equal('"' + formatGoTime(date) + '"', out);
    tested++;
  }
  assert.ok(tested >= 10);
  assert.throws(() => formatGoTime(new Date(NaN)), RangeError);
  assert.throws(() => formatGoTime(new Date("+010000-01-01T00:00:00Z")), RangeError);
  assert.throws(() => formatGoTime(new Date("-000001-01-01T00:00:00Z")), RangeError);
});

Deno.test("marshalIndent() matches Go's MarshalIndent for every value vector", () => {
  const names = vectors.json_values.map((v) => v.name);
  assert.ok(names.includes("manifest_nil_files") && names.includes("manifest_empty_files"));
  for (const { name, value, out } of vectors.json_values) {
    assert.equal(marshalIndent(value), out, name);
  }
});

Deno.test("marshalIndent() renders manifest times given as Date objects", () => {
  for (const { name, value, out } of vectors.json_values) {
    if (!name.startsWith("manifest")) {
      continue;
    }
    const manifest = { ...(value as Record<string, unknown>) };
    for (const key of ["date", "start", "end"]) {
      manifest[key] = new Date(manifest[key] as string);
    }
    assert.equal(marshalIndent(manifest), out, name);
  }
});

Deno.test("marshalIndent() handles undefined, nesting and unsupported values", () => {
  assert.equal(marshalIndent({}), "{}");
  assert.equal(marshalIndent([]), "[]");
  assert.equal(marshalIndent({ a: undefined }), "{}");
  assert.equal(
    marshalIndent({ a: 1, b: undefined, c: [[], {}] }),
    '{\n "a": 1,\n "c": [\n  [],\n  {}\n ]\n}',
  );
  assert.equal(marshalIndent(-0), "-0");
  assert.throws(() => marshalIndent(undefined), TypeError);
  assert.throws(() => marshalIndent([undefined]), TypeError);
  assert.throws(() => marshalIndent({ n: 1n }), TypeError);
  assert.throws(() => marshalIndent(new Map()), TypeError);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(() => marshalIndent(cyclic), /cycle/);
  const shared = { x: 1 };
  assert.equal(marshalIndent([shared, shared]), '[\n {\n  "x": 1\n },\n {\n  "x": 1\n }\n]');
});
