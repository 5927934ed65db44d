/**
 * Child process of the rule 4 test in thanos_client_hardening_test.ts: serves
 * 300 MB answers from a local Deno.serve (generated while streamed, never held
 * whole) to a ThanosClient in the same process, which runs with a 512 MiB V8
 * heap, and prints what each query gave as one JSON object. Exit code 0 means
 * the process survived all of them.
 */
import { toBridgeError } from "../../model.ts";
import { ThanosClient, type ThanosClientOptions } from "../thanos_client.ts";

const TOTAL = 300_000_000;
const enc = new TextEncoder();
const HEAD = enc.encode('{"status":"success","data":{"resultType":"matrix","result":[');
const TAIL = enc.encode("]}}");

/** ~1 MiB of series text, each series `,{…}` with 60 samples and a label of `pad` bytes. */
function seriesBlock(pad: number): Uint8Array {
  const values = Array.from({ length: 60 }, (_, i) => `[${1793502000 + 60 * i},"${i}.5"]`).join(
    ",",
  );
  let text = "";
  for (let i = 0; text.length < 1024 * 1024; i++) {
    text += `,{"metric":{"node":"n${i}","pod":"p${i}${"x".repeat(pad)}"},"values":[${values}]}`;
  }
  return enc.encode(text);
}

/** One series with 300 MB of samples. */
function sampleBlock(): Uint8Array {
  let text = "";
  for (let i = 0; text.length < 1024 * 1024; i++) text += `,[${1793502000 + i},"1"]`;
  return enc.encode(text);
}

function body(kind: string): ReadableStream<Uint8Array> {
  // With the defaults, 3 KiB series reach the 256 MiB answer limit before 100,000 series.
  const block = kind === "oneSeries" ? sampleBlock() : seriesBlock(kind === "defaults" ? 2048 : 0);
  const head = kind === "oneSeries"
    ? enc.encode(
      '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]',
    )
    : enc.encode(
      '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[]}',
    );
  const tail = kind === "oneSeries" ? enc.encode("]}]}}") : TAIL;
  let sent = 0;
  let phase = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (phase === 0) {
        phase = 1;
        c.enqueue(head);
      } else if (sent < TOTAL) {
        c.enqueue(block);
        sent += block.length;
      } else if (phase === 1) {
        phase = 2;
        c.enqueue(tail);
      } else c.close();
    },
  });
}
void HEAD;

const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
  const kind = new URL(req.url).searchParams.get("kind") ?? "";
  return new Response(body(kind));
});
const results: Record<string, unknown> = {};
const runs: [string, Partial<ThanosClientOptions>][] = [
  ["defaults", {}],
  ["oneSeries", {}],
  ["raised", { maxAnswerBytes: 400 * 1024 * 1024, maxSeries: 10_000_000 }],
];
for (const [kind, options] of runs) {
  const client = new ThanosClient({
    url: `http://127.0.0.1:${server.addr.port}/k`,
    maxAttempts: 1,
    fetch: (input, init) => {
      const url = new URL(String(input));
      url.searchParams.set("kind", kind);
      return fetch(url, init);
    },
    ...options,
  });
  let series = 0;
  try {
    const stats = await client.queryRange(
      { query: "up", start: 1793502000, end: 1793505599, step: 60, id: kind, clusterId: "big" },
      () => series++,
    );
    results[kind] = { series, bytes: stats.bytes };
  } catch (error) {
    const e = toBridgeError(error);
    results[kind] = { code: e.code, message: e.message, series };
  }
  client.close();
}
await server.shutdown();
console.log(JSON.stringify(results));
