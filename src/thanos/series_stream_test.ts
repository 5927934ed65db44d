import assert from "node:assert/strict";
import {
  parseSeriesStream,
  type Series,
  type SeriesStreamErrorCause,
  SeriesStreamParser,
} from "./series_stream.ts";

/** Labels that exercise escapes, unicode (BMP and astral) and JSON structure characters. */
const TRICKY_METRIC: Record<string, string> = {
  __name__: "cost:pod_labels",
  namespace: 'ns "quoted" \\ back\\slash',
  pod: "pod-{with}-[brackets],comma:colon",
  label_team: "équipe 日本 🚀 \u0000\u001f\n\t",
  label_escape_u: "\u2028\u2029/",
  label_odd: 'one " quote } ] { and a trailing backslash \\',
};

function matrixAnswer(series: Series[], extra: { before?: string; after?: string } = {}): string {
  const data = JSON.stringify({ resultType: "matrix", result: series });
  return `{${extra.before ?? ""}"data":${data}${extra.after ?? ""}}`;
}

function makeSeries(count: number): Series[] {
  const out: Series[] = [];
  for (let i = 0; i < count; i++) {
    out.push({
      metric: { ...TRICKY_METRIC, pod: `${TRICKY_METRIC.pod}-${i}` },
      values: [[1_793_491_200 + i, `${i}.5`], [1_793_491_260.5, "NaN"], [1_793_491_320, "+Inf"]],
    });
  }
  return out;
}

/** Feeds `text` to a parser in pieces whose sizes cycle through `sizes`. */
function feed(
  text: string,
  sizes: number[],
): { series: Series[]; result: ReturnType<SeriesStreamParser["finish"]> } {
  const series: Series[] = [];
  const parser = new SeriesStreamParser((s) => series.push(s));
  let k = 0;
  for (let i = 0; i < text.length;) {
    const size = sizes[k++ % sizes.length] as number;
    parser.push(text.slice(i, i + size));
    i += size;
  }
  return { series, result: parser.finish() };
}

function bodyOf(bytes: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  let at = 0;
  let k = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.length) {
        controller.close();
        return;
      }
      const size = sizes[k++ % sizes.length] as number;
      controller.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}

function causeOf(error: unknown): SeriesStreamErrorCause {
  assert.ok(error instanceof Error, `expected an Error, got ${error}`);
  return error.cause as SeriesStreamErrorCause;
}

Deno.test("SeriesStreamParser matches JSON.parse for every split of the text", () => {
  const expected = makeSeries(3);
  const text = matrixAnswer(expected, {
    before: '"status":"success",',
    after: ',"warnings":[],"infos":["x"]',
  });
  const oracle = JSON.parse(text);
  for (let first = 1; first <= text.length; first++) {
    // Two pieces split at every position, then the rest in one piece.
    const { series, result } = feed(text, [first, text.length]);
    assert.deepEqual(series, oracle.data.result, `split at ${first}`);
    assert.equal(result.status, "success");
    assert.equal(result.series, 3);
  }
  for (const sizes of [[1], [2], [3], [5], [7], [1, 7, 3, 2, 6, 4, 5]]) {
    const { series, result } = feed(text, sizes);
    assert.deepEqual(series, expected, `pieces ${sizes}`);
    assert.equal(result.resultType, "matrix");
    assert.deepEqual(result.warnings, []);
    assert.equal(result.hasResult, true);
  }
});

Deno.test("SeriesStreamParser accepts status before or after data, and whitespace anywhere", () => {
  const expected = makeSeries(2);
  const after = matrixAnswer(expected, { after: ',"status":"success"' });
  const pretty = JSON.stringify(
    { data: { result: expected, resultType: "matrix" }, status: "success", warnings: [] },
    null,
    "\t",
  ).replaceAll("\n", "\r\n");
  for (const text of [after, pretty]) {
    const { series, result } = feed(text, [4, 1, 9]);
    assert.deepEqual(series, expected);
    assert.equal(result.status, "success");
    assert.equal(result.resultType, "matrix");
  }
});

Deno.test("SeriesStreamParser collects warnings placed after data", () => {
  const text = matrixAnswer(makeSeries(1), {
    before: '"status":"success",',
    after: ',"warnings":["store 10.0.0.1:10901 unavailable","partial \\"x\\""]',
  });
  const { result } = feed(text, [3]);
  assert.deepEqual(result.warnings, ["store 10.0.0.1:10901 unavailable", 'partial "x"']);
});

Deno.test("SeriesStreamParser reads an error answer", () => {
  const text =
    '{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \\"}\\""}';
  const { series, result } = feed(text, [2]);
  assert.deepEqual(series, []);
  assert.equal(result.status, "error");
  assert.equal(result.errorType, "bad_data");
  assert.equal(result.error, '1:5: parse error: unexpected "}"');
  assert.equal(result.hasResult, false);
});

Deno.test("SeriesStreamParser skips unknown fields of any shape without storing them", () => {
  const expected = makeSeries(1);
  const text = `{"stats":{"a":[1,{"b":"]}\\"{["}],"c":null},"status":"success","n":-1.5e3,` +
    `"t":true,"data":{"extra":{"x":"}"},"resultType":"matrix","result":${
      JSON.stringify(expected)
    },"z":false}}`;
  for (const sizes of [[1], [6]]) {
    const { series, result } = feed(text, sizes);
    assert.deepEqual(series, expected);
    assert.equal(result.status, "success");
  }
});

Deno.test("SeriesStreamParser passes a series without values as values: []", () => {
  const text = '{"status":"success","data":{"resultType":"matrix","result":[' +
    '{"metric":{"a":"b"},"histograms":[[1,{"count":"1","sum":"2"}]]},{"values":[[1,"1"]],"metric":{}}]}}';
  const { series } = feed(text, [5]);
  assert.deepEqual(series, [{ metric: { a: "b" }, values: [] }, {
    metric: {},
    values: [[1, "1"]],
  }]);
});

Deno.test("SeriesStreamParser reports truncation as retryable-looking 'truncated'", () => {
  const text = matrixAnswer(makeSeries(2), { before: '"status":"success",' });
  for (const cut of [0, 1, 20, Math.floor(text.length / 2), text.length - 1]) {
    const seen: Series[] = [];
    const parser = new SeriesStreamParser((s) => seen.push(s));
    parser.push(text.slice(0, cut));
    assert.throws(() => parser.finish(), (error) => {
      assert.ok(error instanceof SyntaxError);
      assert.equal(causeOf(error).reason, "truncated");
      return true;
    }, `cut at ${cut}`);
  }
});

Deno.test("SeriesStreamParser rejects malformed answers with 'malformed'", () => {
  const cases: Array<[string, RegExp]> = [
    ["<html>502</html>", /JSON object/],
    ['{"status":"success"} x', /nothing after/],
    ['{"status" "success"}', /":"/],
    ['{"data":{"resultType":"matrix","result":[1]}}', /series object/],
    [
      '{"data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,2]]}]}}',
      /\[number, string\]/,
    ],
    ['{"data":{"resultType":"matrix","result":[{"values":[]}]}}', /"metric"/],
    [
      '{"data":{"resultType":"matrix","result":[{"metric":{}, "values":[[1,"1"]}]}}',
      /not valid JSON/,
    ],
    ['{"data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}', /"matrix"/],
    ['{"status":"success",}', /object key/],
    ['{"data":{"resultType":"matrix","result":[{"metric":{},"values":[]},]}}', /series object/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => feed(text, [3]), (error) => {
      assert.ok(error instanceof SyntaxError, `${text}: ${error}`);
      assert.equal(causeOf(error).reason, "malformed");
      assert.match(error.message, pattern, text);
      return true;
    });
  }
});

Deno.test("SeriesStreamParser caps series and field sizes", () => {
  const big = matrixAnswer(makeSeries(2));
  const parser = new SeriesStreamParser(() => {}, { maxSeriesBytes: 100 });
  assert.throws(() => parser.push(big), (error) => {
    assert.ok(error instanceof RangeError);
    assert.equal(causeOf(error).reason, "too-large");
    assert.match(error.message, /series 1 .*larger than 100 bytes/);
    assert.equal(causeOf(error).limit, "series-bytes");
    return true;
  });

  const warning = "w".repeat(500);
  const text =
    `{"status":"success","data":{"resultType":"matrix","result":[]},"warnings":["${warning}"]}`;
  const capped = new SeriesStreamParser(() => {}, { maxFieldChars: 64 });
  for (let i = 0; i < text.length; i += 10) capped.push(text.slice(i, i + 10));
  const result = capped.finish();
  assert.equal(result.warnings.length, 1);
  const only = result.warnings[0] as string;
  assert.ok(only.length <= 65 && only.endsWith("…"), only);
  assert.equal(result.status, "success");
});

Deno.test("SeriesStreamParser propagates an exception from onSeries unchanged", () => {
  const boom = new Error("collector full");
  const parser = new SeriesStreamParser(() => {
    throw boom;
  });
  assert.throws(() => parser.push(matrixAnswer(makeSeries(1))), (error) => error === boom);
});

Deno.test("parseSeriesStream decodes UTF-8 split across 1-7 byte chunks", async () => {
  const expected = makeSeries(4);
  const text = matrixAnswer(expected, { before: '"status":"success",', after: ',"warnings":[]' });
  const bytes = new TextEncoder().encode(text);
  for (const sizes of [[1], [1, 2, 3, 4, 5, 6, 7], [7, 3]]) {
    const seen: Series[] = [];
    let counted = 0;
    const result = await parseSeriesStream(bodyOf(bytes, sizes), (s) => seen.push(s), {
      onBytes: (n) => counted += n,
    });
    assert.deepEqual(seen, expected);
    assert.equal(result.bytes, bytes.byteLength);
    assert.equal(counted, bytes.byteLength);
    assert.equal(result.series, 4);
  }
});

Deno.test("parseSeriesStream rejects invalid UTF-8 as malformed", async () => {
  const bytes = new Uint8Array([...new TextEncoder().encode('{"status":"'), 0xff, 0x22, 0x7d]);
  await assert.rejects(parseSeriesStream(bodyOf(bytes, [4]), () => {}), (error) => {
    assert.ok(error instanceof SyntaxError);
    assert.equal(causeOf(error).reason, "malformed");
    return true;
  });
});

Deno.test("parseSeriesStream stops on abort and cancels the stream", async () => {
  const controller = new AbortController();
  let cancelled: unknown = "not cancelled";
  const first = new TextEncoder().encode(
    '{"status":"success","data":{"resultType":"matrix","result":[',
  );
  let sent = false;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (!sent) {
        sent = true;
        c.enqueue(first);
      }
      // then never enqueue again: a stalled body
    },
    cancel(reason) {
      cancelled = reason;
    },
  });
  const reason = new Error("stop");
  const pending = parseSeriesStream(body, () => {}, { signal: controller.signal });
  setTimeout(() => controller.abort(reason), 10);
  await assert.rejects(pending, (error) => error === reason);
  assert.equal(cancelled, reason);
});
