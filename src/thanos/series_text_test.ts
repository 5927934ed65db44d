import assert from "node:assert/strict";
import { parseSeriesText } from "./series_text.ts";

Deno.test("parseSeriesText equals JSON.parse on every shape", () => {
  const cases = [
    '{"metric":{"a":"1"},"values":[[1,"4096"],[61,"8192"]]}',
    '{"values":[[1.5,"NaN"],[2,"+Inf"],[3,"-Inf"],[4,"1e+21"]],"metric":{}}',
    ' { "metric" : { "x" : "y\\"z" } , "values" : [ [ 1 , "2" ] , [ 3 , "4" ] ] } ',
    '{"metric":{"k":"\\u00e9\\n,]}"},"values":[]}',
    '{"metric":{},"values":[[1,"a\\"b"]]}', // escape in a value: falls back
    '{"metric":{},"histograms":[[1,{"count":"2"}]]}',
    '{"metric":{}}',
    "{}",
  ];
  for (const text of cases) assert.deepEqual(parseSeriesText(text), JSON.parse(text), text);
});

Deno.test("parseSeriesText rejects invalid JSON like JSON.parse", () => {
  for (
    const bad of [
      '{"metric":{},"values":[[1,"2"]]',
      '{"metric":{},"values":[[1,"2"]]} x',
      '{"metric":{},"values":[[1,"2"],]}',
      '{"metric":{},"values":[[x,"2"]]}',
      '{"metric":{"a":1,}}',
    ]
  ) {
    assert.throws(() => parseSeriesText(bad), SyntaxError, bad);
  }
});

Deno.test("parseSeriesText is fast on page-aligned byte counts (JSON.parse is not)", () => {
  const parts = [];
  for (let i = 0; i < 100_000; i++) {
    parts.push(`[${1793491200 + i * 60},"${300_000_000 + i * 4096}"]`);
  }
  const text = `{"metric":{"pod":"p"},"values":[${parts.join(",")}]}`;
  const parsed = parseSeriesText(text) as { values: [number, string][] };
  assert.equal(parsed.values.length, 100_000);
  assert.deepEqual(parsed.values[99_999], [
    1793491200 + 99_999 * 60,
    String(300_000_000 + 99_999 * 4096),
  ]);
});

Deno.test("rule 2: a timestamp outside JSON's number grammar is not read by the fast path", () => {
  for (const t of ["+1", "0x10", ".5", "01", "Infinity", "1.", "-", "1e"]) {
    assert.throws(() => parseSeriesText(`{"metric":{},"values":[[${t},"1"]]}`), SyntaxError, t);
  }
  assert.deepEqual(parseSeriesText('{"metric":{},"values":[[-0.5e+2,"1"]]}'), {
    metric: {},
    values: [[-50, "1"]],
  });
});
