import assert from "node:assert/strict";
import { formatFloat, formatFloatExact } from "./go_float.ts";

interface FloatVector {
  bits: string;
  out: string;
}

const vectorsUrl = new URL("./testdata/go_vectors.json", import.meta.url);
const vectors = JSON.parse(await Deno.readTextFile(vectorsUrl)) as { floats: FloatVector[] };

function fromBits(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt("0x" + hex));
  return view.getFloat64(0);
}

Deno.test("formatFloat() matches Go for every float vector", () => {
  assert.ok(vectors.floats.length > 20_000, "expected the full vector set");
  const failures: string[] = [];
  for (const { bits, out } of vectors.floats) {
    const got = formatFloat(fromBits(bits));
    if (got !== out) {
      failures.push(`${bits}: got ${got}, Go wrote ${out}`);
    }
  }
  assert.deepEqual(failures.slice(0, 20), []);
});

Deno.test("formatFloatExact() matches Go for every float vector", () => {
  const failures: string[] = [];
  for (const { bits, out } of vectors.floats) {
    const got = formatFloatExact(fromBits(bits));
    if (got !== out) {
      failures.push(`${bits}: got ${got}, Go wrote ${out}`);
    }
  }
  assert.deepEqual(failures.slice(0, 20), []);
});

Deno.test("formatFloat() handles readable edge cases", () => {
  const cases: [number, string][] = [
    [0, "0.000000"],
    [-0, "-0.000000"],
    [NaN, "NaN"],
    [Infinity, "+Inf"],
    [-Infinity, "-Inf"],
    [14400, "14400.000000"],
    [59410582732800, "59410582732800.000000"],
    [0.0078125, "0.007812"], // exact tie, even neighbour below
    [0.0234375, "0.023438"], // exact tie, even neighbour above
    [-0.0078125, "-0.007812"],
    [3.0078125, "3.007812"],
    [0.0000005, "0.000000"], // slightly below 5e-7 in binary
    [0.0000015, "0.000002"], // slightly above 1.5e-6 in binary
    [-1e-9, "-0.000000"],
    [-4e-7, "-0.000000"],
    [1e21, "1000000000000000000000.000000"],
    [2 ** 80, "1208925819614629174706176.000000"],
    [5e-324, "0.000000"],
    [0.1 + 0.2, "0.300000"],
    [2 / 3, "0.666667"],
  ];
  for (const [value, expected] of cases) {
    assert.equal(formatFloat(value), expected, `formatFloat(${value})`);
  }
  // Huge doubles are integers: all their digits are printed (1e300 is not 10^300 exactly).
  for (const value of [1e300, Number.MAX_VALUE, -1e22]) {
    assert.equal(formatFloat(value), BigInt(value).toString() + ".000000");
  }
});

Deno.test("formatFloat() agrees with the exact path on pseudo-random values and ties", () => {
  // xorshift32 with a fixed seed: deterministic, independent of Math.random.
  let state = 0x9e3779b9;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  const view = new DataView(new ArrayBuffer(8));
  for (let i = 0; i < 100_000; i++) {
    // Random bit patterns, biased toward magnitudes up to ~1e25.
    view.setUint32(0, Math.floor(next() * 2 ** 32));
    view.setUint32(4, Math.floor(next() * 2 ** 32));
    const exponent = 1023 - 45 + Math.floor(next() * 130);
    view.setUint16(0, (view.getUint16(0) & 0x800f) | (exponent << 4));
    const random = view.getFloat64(0);
    // Exact ties k + j/128 (j odd) and their neighbours.
    const tie = Math.floor(next() * 2 ** 30) + (2 * Math.floor(next() * 64) + 1) / 128;
    for (const v of [random, tie, -tie, tie + tie * Number.EPSILON]) {
      assert.equal(formatFloat(v), formatFloatExact(v), `value ${v}`);
    }
  }
});

Deno.test("formatFloat() is fast enough for per-cell use", () => {
  const values = new Float64Array(200_000);
  for (let i = 0; i < values.length; i++) {
    values[i] = ((i * 7919) % 100_003) * 37.123457 / 7;
  }
  let length = 0;
  const start = performance.now();
  for (const v of values) {
    length += formatFloat(v).length;
  }
  const seconds = (performance.now() - start) / 1000;
  assert.ok(length > values.length * 8);
  // Target is > 2M values/s; assert a lenient floor so slow CI machines do not flake.
  assert.ok(values.length / seconds > 500_000, `only ${Math.round(values.length / seconds)}/s`);
});

const repoRoot = new URL("../../", import.meta.url);
const goAvailable = await (async () => {
  try {
    const { success } = await new Deno.Command("go", {
      args: ["version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "go_vectors.json equals the output of tools/govectors (drift check" +
    (goAvailable ? ")" : "; skipped: `go` is not on PATH)"),
  ignore: !goAvailable,
  fn: async () => {
    const result = await new Deno.Command("go", {
      args: ["run", "."],
      cwd: new URL("tools/govectors/", repoRoot),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(result.success, new TextDecoder().decode(result.stderr));
    const committed = await Deno.readFile(vectorsUrl);
    assert.ok(
      result.stdout.length === committed.length &&
        result.stdout.every((byte, i) => byte === committed[i]),
      "src/package/testdata/go_vectors.json is stale: regenerate it with " +
        "`cd tools/govectors && go run . > ../../src/package/testdata/go_vectors.json`",
    );
  },
});
