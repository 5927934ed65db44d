/**
 * `ThanosClient`'s `compression` option: the `Accept-Encoding` it sends
 * (`identity` by default, `gzip` when asked, an explicit extra header wins),
 * and that a gzip-encoded answer is decoded transparently by `queryRange` and
 * `queryInstant`, with the answer limits counting decompressed bytes.
 */

import assert from "node:assert/strict";
import { BridgeError } from "../model.ts";
import {
  type InstantQuery,
  type QueryErrorCause,
  type RangeQuery,
  type Series,
  ThanosClient,
  type ThanosClientOptions,
} from "./thanos_client.ts";
import { answer, assertQueryPost, AUTH, json, type Seen, withServer } from "./test_server.ts";

const HOUR: RangeQuery = {
  query: 'sum by (pod) (cost:pod_usage_cpu_cores{clusterID="c1"})',
  start: 1_793_491_200,
  end: 1_793_494_799,
  step: 60,
};

const RAW: InstantQuery = {
  query: 'kube_pod_container_resource_requests{clusterID="c1",resource="cpu"}[3720s]',
  time: 1_793_494_799,
};

/** `n` series of 60 samples each: a few hundred KB of very compressible JSON. */
function manySeries(n: number): Series[] {
  return Array.from({ length: n }, (_, i) => ({
    metric: { namespace: "ns-1", pod: `pod-${i}`, label_app: "café 🚀" },
    values: Array.from(
      { length: 60 },
      (_, k) => [1_793_491_200 + 60 * k, "0.25"] as [number, string],
    ),
  }));
}

/** `text` gzip-compressed, as bytes. */
async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A JSON answer sent gzip-encoded (`Content-Encoding: gzip`), compressed while streamed. */
function gzipped(text: string): Response {
  return new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip")), {
    headers: { "Content-Type": "application/json", "Content-Encoding": "gzip" },
  });
}

/** The `Accept-Encoding` a client built with `options` sends with a range query. */
async function acceptEncodingOf(options: Partial<ThanosClientOptions>): Promise<string | null> {
  let got: string | null | undefined;
  await withServer(
    () => json(answer([])),
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, ...options });
      try {
        await client.queryRange(HOUR, () => {});
      } finally {
        client.close();
      }
      assert.equal(seen.length, 1);
      got = (seen[0] as Seen).headers.get("accept-encoding");
    },
  );
  assert.notEqual(got, undefined, "the server saw no request");
  return got ?? null;
}

Deno.test("compression: Accept-Encoding is identity by default, gzip when asked", async () => {
  assert.equal(await acceptEncodingOf({}), "identity");
  assert.equal(await acceptEncodingOf({ compression: false }), "identity");
  assert.equal(await acceptEncodingOf({ compression: true }), "gzip");
});

Deno.test("compression: an explicit Accept-Encoding extra header wins over the option", async () => {
  assert.equal(await acceptEncodingOf({ headers: { "Accept-Encoding": "gzip" } }), "gzip");
  assert.equal(
    await acceptEncodingOf({ compression: true, headers: { "accept-encoding": "identity" } }),
    "identity",
  );
});

Deno.test("compression: the other default headers stay as they were", async () => {
  for (const compression of [false, true]) {
    await withServer(
      () => json(answer([])),
      async ({ url, seen }) => {
        const client = new ThanosClient({ url, ...AUTH, compression });
        try {
          await client.queryRange(HOUR, () => {});
        } finally {
          client.close();
        }
        assertQueryPost(seen[0] as Seen, "/api/v1/query_range", compression);
      },
    );
  }
});

Deno.test("compression: queryRange and queryInstant decode gzip answers; counts are decompressed bytes", async () => {
  const series = manySeries(300);
  const text = answer(series);
  const raw = new TextEncoder().encode(text).length;
  const compressed = (await gzip(text)).length;
  assert.ok(compressed * 10 < raw, `test answer compresses well (${compressed} of ${raw} bytes)`);
  let sentGzip = 0;
  await withServer(
    (seen) => {
      // Compress only when asked to, as Prometheus does.
      if (seen.headers.get("accept-encoding") !== "gzip") return json(text);
      sentGzip++;
      return gzipped(text);
    },
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, compression: true });
      try {
        const ranged: Series[] = [];
        const rangeStats = await client.queryRange(HOUR, (s) => ranged.push(s));
        assert.deepEqual(ranged, series);
        assert.equal(rangeStats.series, series.length);
        assert.equal(rangeStats.bytes, raw);

        const instant: Series[] = [];
        const instantStats = await client.queryInstant(RAW, (s) => instant.push(s));
        assert.deepEqual(instant, series);
        assert.equal(instantStats.bytes, raw);
        assert.deepEqual(client.stats, { queries: 2, attempts: 2, bytes: 2 * raw });
      } finally {
        client.close();
      }
      assert.deepEqual(seen.map((s) => s.path), ["/api/v1/query_range", "/api/v1/query"]);
      assert.equal(sentGzip, 2, "both answers went gzip-encoded");
    },
  );
});

Deno.test("compression: maxAnswerBytes counts decompressed bytes of a gzip answer", async () => {
  const text = answer(manySeries(300));
  const raw = new TextEncoder().encode(text).length;
  const compressed = (await gzip(text)).length;
  // Between the two sizes: the compressed body fits, the answer does not.
  const maxAnswerBytes = Math.floor((compressed + raw) / 2);
  await withServer(
    () => gzipped(text),
    async ({ url }) => {
      const client = new ThanosClient({ url, compression: true, maxAnswerBytes, maxAttempts: 1 });
      try {
        await assert.rejects(client.queryRange(HOUR, () => {}), (error) => {
          assert.ok(error instanceof BridgeError, String(error));
          assert.equal(error.code, "thanos_limit", error.message);
          assert.equal((error.cause as QueryErrorCause).limit?.name, "answer-bytes");
          return true;
        });
      } finally {
        client.close();
      }
    },
  );
});
