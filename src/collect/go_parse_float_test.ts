import assert from "node:assert/strict";
import { parseGoFloat } from "./go_parse_float.ts";
import { parseSampleValue } from "./reduce.ts";
import { BridgeError } from "../model.ts";

interface Vector {
  s: string;
  ok: boolean;
  bits?: string;
}

const VECTORS: Vector[] = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/go_parse_float_vectors.json", import.meta.url)),
).vectors;

function bitsOf(v: number): string {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, v);
  return view.getBigUint64(0).toString(16).padStart(16, "0");
}

Deno.test("rule 2: sample values follow Go's strconv.ParseFloat on every Go vector", () => {
  assert.ok(VECTORS.length > 4000);
  const wrong: string[] = [];
  for (const { s, ok, bits } of VECTORS) {
    const got = parseGoFloat(s);
    if (!ok) {
      if (got !== undefined) wrong.push(`${JSON.stringify(s)}: Go refuses, got ${got}`);
      continue;
    }
    if (got === undefined) {
      wrong.push(`${JSON.stringify(s)}: Go accepts (${bits}), refused`);
    } else if (Number.isNaN(got) ? !bits!.startsWith("7ff8") : bitsOf(got) !== bits) {
      wrong.push(`${JSON.stringify(s)}: Go ${bits}, got ${bitsOf(got)}`);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("rule 2: the edges named in the issue", () => {
  for (const s of ["0x10", " 1", "1 ", "", "+NaN", "1e400", "infin", "0x1p"]) {
    assert.equal(parseGoFloat(s), undefined, s);
    assert.throws(() => parseSampleValue(s), BridgeError, s);
  }
  assert.equal(parseGoFloat("1_000"), 1000);
  assert.equal(parseGoFloat("0x1p4"), 16);
  assert.equal(parseGoFloat("inf"), Infinity);
  assert.equal(parseGoFloat("-INFINITY"), -Infinity);
  assert.ok(Number.isNaN(parseGoFloat("nAn")));
  assert.ok(Object.is(parseGoFloat("-0"), -0));
});

const goAvailable = await (async () => {
  try {
    return (await new Deno.Command("go", { args: ["version"], stdout: "null", stderr: "null" })
      .output()).success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "go_parse_float_vectors.json equals the output of tools/goparsefloat (drift check" +
    (goAvailable ? ")" : "; skipped: `go` is not on PATH)"),
  ignore: !goAvailable,
  fn: async () => {
    const result = await new Deno.Command("go", {
      args: ["run", "."],
      cwd: new URL("../../tools/goparsefloat/", import.meta.url),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(result.success, new TextDecoder().decode(result.stderr));
    const committed = await Deno.readFile(
      new URL("./testdata/go_parse_float_vectors.json", import.meta.url),
    );
    assert.ok(
      result.stdout.length === committed.length &&
        result.stdout.every((byte, i) => byte === committed[i]),
      "src/collect/testdata/go_parse_float_vectors.json is stale: regenerate it with " +
        "`cd tools/goparsefloat && go run . > ../../src/collect/testdata/go_parse_float_vectors.json`",
    );
  },
});
