/**
 * Throughput of {@linkcode parseSeriesStream} on a ~100 MB `query_range` answer
 * read from a spool file, against `Response.json()` and `JSON.parse` of the
 * whole text.
 *
 * `deno bench --allow-read --allow-write --allow-net=127.0.0.1 src/thanos/series_stream_bench.ts`
 * gives the timings (MB/s = 100 / seconds per iteration). Running the file
 * (`deno run --allow-read --allow-write src/thanos/series_stream_bench.ts`)
 * prints MB/s and the peak RSS of the streaming parser alone.
 *
 * @module
 */

import { parseSeriesStream, type Series } from "./series_stream.ts";
import { ThanosClient } from "./thanos_client.ts";

const TARGET_BYTES = 100 * 1024 * 1024;

/**
 * Writes a realistic `query_range` answer of about `targetBytes` to `path`:
 * pod-level series with seven labels and 60 samples each, as Thanos returns
 * for one hour at step 60.
 */
async function writeAnswer(path: string, targetBytes: number): Promise<number> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  const writer = file.writable.getWriter();
  const encoder = new TextEncoder();
  let written = 0;
  const write = async (text: string) => {
    const bytes = encoder.encode(text);
    written += bytes.byteLength;
    await writer.write(bytes);
  };
  await write('{"status":"success","data":{"resultType":"matrix","result":[');
  let batch: string[] = [];
  for (let i = 0; written < targetBytes; i++) {
    const metric = {
      __name__: "cost:pod_usage_cpu_cores",
      clusterID: "0d3b8c1e-5d2f-4d8a-9d9e-2f1a3b4c5d6e",
      namespace: `namespace-${i % 97}`,
      pod: `workload-${i}-7f9c8b6d5-x${(i * 7919).toString(36)}`,
      node: `ip-10-0-${i % 250}-${i % 17}.ec2.internal`,
      container: `container-${i % 5}`,
      label_app: `app "${i % 13}" \u00e9`,
    };
    const values: Array<[number, string]> = [];
    for (let t = 0; t < 60; t++) {
      values.push([1_793_491_200 + t * 60, String(((i + 1) * (t + 3) % 1000) / 997)]);
    }
    batch.push((i === 0 ? "" : ",") + JSON.stringify({ metric, values }));
    if (batch.length === 200) {
      await write(batch.join(""));
      batch = [];
    }
  }
  if (batch.length > 0) await write(batch.join(""));
  await write(']},"warnings":[]}');
  await writer.close();
  return written;
}

async function streamOnce(path: string): Promise<number> {
  const file = await Deno.open(path, { read: true });
  let samples = 0;
  await parseSeriesStream(file.readable, (s: Series) => {
    samples += s.values.length;
  });
  return samples;
}

const dir = await Deno.makeTempDir({ prefix: "series_stream_bench_" });
const path = `${dir}/answer.json`;
const size = await writeAnswer(path, TARGET_BYTES);
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch {
    // already gone
  }
});

Deno.bench({
  name: `parseSeriesStream (${(size / 1e6).toFixed(0)} MB from a file)`,
  group: "query_range answer",
  baseline: true,
  async fn() {
    await streamOnce(path);
  },
});

Deno.bench({
  name: "ThanosClient.queryRange over loopback HTTP",
  group: "query_range answer",
  permissions: { read: true, write: true, net: ["127.0.0.1"] },
  async fn(b) {
    const server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      async () => new Response((await Deno.open(path, { read: true })).readable),
    );
    const client = new ThanosClient({ url: `http://127.0.0.1:${server.addr.port}` });
    try {
      b.start();
      await client.queryRange({ query: "x", start: 0, end: 3540, step: 60 }, () => {});
      b.end();
    } finally {
      client.close();
      await server.shutdown();
    }
  },
});

Deno.bench({
  name: "Response.json() of the whole answer",
  group: "query_range answer",
  async fn() {
    const file = await Deno.open(path, { read: true });
    await new Response(file.readable).json();
  },
});

Deno.bench({
  name: "JSON.parse of the whole text (read excluded)",
  group: "query_range answer",
  async fn(b) {
    const text = await Deno.readTextFile(path);
    b.start();
    JSON.parse(text);
    b.end();
  },
});

if (import.meta.main) {
  const before = Deno.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, Deno.memoryUsage().rss);
  }, 5);
  const rounds = 5;
  const times: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const t0 = performance.now();
    await streamOnce(path);
    times.push(performance.now() - t0);
  }
  clearInterval(sampler);
  times.sort((a, b) => a - b);
  const median = times[Math.floor(rounds / 2)] as number;
  console.log(
    `parseSeriesStream: ${(size / 1e6).toFixed(1)} MB, median ${median.toFixed(0)} ms = ` +
      `${(size / 1e6 / (median / 1000)).toFixed(1)} MB/s, peak RSS ${(peak / 1e6).toFixed(0)} MB (${
        (before / 1e6).toFixed(0)
      } MB before)`,
  );
}
