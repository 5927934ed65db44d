/**
 * `ThanosClient`'s remote read (`readRaw`, `probeRemoteRead`) and
 * `externalLabels`, against a loopback fake Prometheus that reads the
 * snappy-compressed `ReadRequest` and answers streamed frames written in
 * separate pieces; and `externalLabelsOf`.
 */

import assert from "node:assert/strict";
import { BridgeError } from "../model.ts";
import {
  externalLabelsOf,
  type QueryOutcome,
  type RawReadQuery,
  type RetryInfo,
  THANOS_BRIDGE_VERSION,
  ThanosClient,
} from "./thanos_client.ts";
import {
  CHUNK_XOR,
  decodeReadRequest,
  encodeChunkedReadResponse,
  encodeFrame,
  type ReadSeries,
  STREAMED_CONTENT_TYPE,
  STREAMED_XOR_CHUNKS,
} from "./remote_read.ts";
import { snappyDecode } from "./snappy.ts";
import { decodeXorChunk, encodeXorChunk } from "./xor_chunk.ts";
import { AUTH, causeOf, fastRetries, json, untilAborted } from "./test_server.ts";

/** One request the fake server received, its body as bytes. */
interface ReadSeen {
  method: string;
  path: string;
  headers: Headers;
  body: Uint8Array;
}

/** Runs `fn` against a loopback fake Prometheus whose answers come from `handler`. */
async function withReadServer(
  handler: (seen: ReadSeen, n: number, stop: AbortSignal) => Response | Promise<Response>,
  fn: (url: string, seen: ReadSeen[]) => Promise<void>,
): Promise<void> {
  const stopper = new AbortController();
  const seen: ReadSeen[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const one: ReadSeen = {
      method: req.method,
      path: new URL(req.url).pathname,
      headers: req.headers,
      body: new Uint8Array(await req.arrayBuffer()),
    };
    seen.push(one);
    return await handler(one, seen.length, stopper.signal);
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, seen);
  } finally {
    stopper.abort();
    await server.shutdown();
  }
}

/**
 * A body that sends `pieces` one per pull, a millisecond apart (so they leave
 * the server as separate writes), then ends, or with `hang` waits until
 * `hang` is aborted.
 */
function piecewise(pieces: readonly Uint8Array[], hang?: AbortSignal): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (i < pieces.length) {
        if (i > 0) await new Promise((r) => setTimeout(r, 1));
        c.enqueue(pieces[i++]!);
        return;
      }
      if (hang !== undefined) await untilAborted(hang);
      c.close();
    },
  });
}

/** A streamed remote-read answer of `pieces`. */
function streamed(pieces: readonly Uint8Array[], hang?: AbortSignal): Response {
  return new Response(piecewise(pieces, hang), {
    headers: { "Content-Type": STREAMED_CONTENT_TYPE },
  });
}

/** `bytes` cut at `at` (ascending offsets inside it). */
function cut(bytes: Uint8Array, ...at: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let from = 0;
  for (const to of [...at, bytes.length]) {
    out.push(bytes.slice(from, to));
    from = to;
  }
  return out;
}

const T0 = 1_793_491_200_000;

/** Samples of a series: timestamps (ms) and values. */
interface Samples {
  t: number[];
  v: number[];
}

function samples(n: number, from: number, step: number, value: (i: number) => number): Samples {
  return {
    t: Array.from({ length: n }, (_, i) => from + i * step),
    v: Array.from({ length: n }, (_, i) => value(i)),
  };
}

function chunkOf(s: Samples) {
  return { minMs: s.t[0]!, maxMs: s.t.at(-1)!, type: CHUNK_XOR, data: encodeXorChunk(s.t, s.v) };
}

/** The answer's series, with the samples of each chunk. */
const EXPECTED: { labels: [string, string][]; chunks: Samples[] }[] = [
  {
    labels: [["__name__", "kube_pod_info"], ["pod", "p1"], ["replica", "a"]],
    chunks: [samples(3, T0, 15_000, (i) => i + 0.5), samples(2, T0 + 45_000, 15_000, () => 7)],
  },
  {
    labels: [["__name__", "kube_pod_info"], ["pod", "p2"], ["replica", "a"]],
    chunks: [samples(1, T0 + 30_000, 15_000, () => 1)],
  },
  {
    labels: [["__name__", "kube_pod_info"], ["pod", "p3-with-a-longer-name"], ["replica", "a"]],
    chunks: [samples(240, T0, 15_000, (i) => (i * 37) % 11 + i / 8)],
  },
];

function seriesOf(e: (typeof EXPECTED)[number]): ReadSeries {
  return { labels: e.labels, chunks: e.chunks.map(chunkOf) };
}

/** Frame 1: the first two series in one message; frame 2: the third (over 127 bytes). */
const FRAME1 = encodeFrame(encodeChunkedReadResponse(EXPECTED.slice(0, 2).map(seriesOf), 0));
const FRAME2 = encodeFrame(encodeChunkedReadResponse([seriesOf(EXPECTED[2]!)], 0));
/** The frames in pieces cut inside the length, inside the CRC and inside the message. */
const PIECES = [...cut(FRAME1, 1, 3, 20), ...cut(FRAME2, 1, 4, 60)];
const ANSWER_BYTES = FRAME1.length + FRAME2.length;

Deno.test("fixture: frame 2's length takes two varint bytes, so a piece ends inside it", () => {
  assert.ok(FRAME2.length > 130, String(FRAME2.length));
  assert.ok(FRAME2[0]! >= 0x80);
  assert.equal(PIECES.length, 8);
});

const QUERY: RawReadQuery = {
  query: 'kube_pod_info{clusterID=~"c1|c2",namespace!="",pod!~"x.*"}',
  startMs: T0 - 300_000,
  endMs: T0 + 3_600_000,
  matchers: [
    { name: "__name__", op: "=", value: "kube_pod_info" },
    { name: "clusterID", op: "=~", value: "c1|c2" },
    { name: "namespace", op: "!=", value: "" },
    { name: "pod", op: "!~", value: "x.*" },
  ],
  id: "raw/kube_pod_info",
  clusterId: "c1",
  hours: "2026-11-01 03:00-03:59 UTC",
};

/** A series as the callback saw it: labels, and each chunk's range, type and decoded samples. */
interface Decoded {
  labels: [string, string][];
  chunks: { minMs: number; maxMs: number; type: number; samples: Samples }[];
}

/** Decodes `s` (during the callback: its chunk data is a view into the frame). */
function decode(s: ReadSeries): Decoded {
  return {
    labels: s.labels.map(([n, v]) => [n, v]),
    chunks: s.chunks.map((c) => {
      const got: Samples = { t: [], v: [] };
      decodeXorChunk(c.data, (t, v) => {
        got.t.push(t);
        got.v.push(v);
      });
      return { minMs: c.minMs, maxMs: c.maxMs, type: c.type, samples: got };
    }),
  };
}

const WANT: Decoded[] = EXPECTED.map((e) => ({
  labels: e.labels,
  chunks: e.chunks.map((s) => ({
    minMs: s.t[0]!,
    maxMs: s.t.at(-1)!,
    type: CHUNK_XOR,
    samples: s,
  })),
}));

/** That `promise` rejects with a `BridgeError` of `code`; returns it. */
async function rejectsWith(promise: Promise<unknown>, code: string): Promise<BridgeError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BridgeError, `expected a BridgeError, got ${error}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected a ${code} error`);
}

Deno.test("readRaw POSTs a snappy ReadRequest to <base>/api/v1/read with the remote read headers, the token and extra headers", async () => {
  await withReadServer(
    () => streamed(PIECES),
    async (url, seen) => {
      const client = new ThanosClient({ url: `${url}/prefix/`, ...AUTH });
      try {
        await client.readRaw(QUERY, () => {});
      } finally {
        client.close();
      }
      assert.equal(seen.length, 1);
      const req = seen[0]!;
      assert.equal(req.method, "POST");
      assert.equal(req.path, "/prefix/api/v1/read");
      assert.equal(req.headers.get("content-type"), "application/x-protobuf");
      assert.equal(req.headers.get("content-encoding"), "snappy");
      assert.equal(req.headers.get("x-prometheus-remote-read-version"), "0.1.0");
      assert.equal(req.headers.get("accept"), "application/x-streamed-protobuf");
      assert.equal(req.headers.get("accept-encoding"), "identity");
      assert.equal(req.headers.get("user-agent"), `thanos-bridge/${THANOS_BRIDGE_VERSION}`);
      assert.equal(req.headers.get("authorization"), "Bearer s3cr3t-token");
      assert.equal(req.headers.get("x-scope-orgid"), "tenant-a");
      assert.deepEqual(decodeReadRequest(snappyDecode(req.body)), {
        queries: [{ startMs: QUERY.startMs, endMs: QUERY.endMs, matchers: QUERY.matchers }],
        accepted: [STREAMED_XOR_CHUNKS],
      });
      assert.equal(STREAMED_XOR_CHUNKS, 1);
    },
  );
});

Deno.test("readRaw without a token sends no Authorization header", async () => {
  await withReadServer(
    () => streamed([]),
    async (url, seen) => {
      const client = new ThanosClient({ url });
      try {
        await client.readRaw(QUERY, () => {});
      } finally {
        client.close();
      }
      assert.equal(seen[0]?.path, "/api/v1/read");
      assert.equal(seen[0]?.headers.get("authorization"), null);
    },
  );
});

Deno.test("readRaw streams the series of frames split across writes; chunks decode back; counters updated", async () => {
  await withReadServer(
    () => streamed(PIECES),
    async (url) => {
      const outcomes: QueryOutcome[] = [];
      const client = new ThanosClient({ url, onQuery: (o) => outcomes.push(o) });
      try {
        const got: Decoded[] = [];
        const counter = { queries: 0, attempts: 0, bytes: 0 };
        const stats = await client.readRaw(
          QUERY,
          (s) => got.push(decode(s)),
          undefined,
          undefined,
          counter,
        );
        assert.deepEqual(got, WANT);
        assert.equal(stats.series, 3);
        assert.equal(stats.attempts, 1);
        assert.equal(stats.bytes, ANSWER_BYTES);
        assert.deepEqual(counter, { queries: 1, attempts: 1, bytes: ANSWER_BYTES });
        assert.deepEqual(client.stats, { queries: 1, attempts: 1, bytes: ANSWER_BYTES });
        assert.equal(outcomes.length, 1);
        assert.equal(outcomes[0]?.ok, true);
        assert.equal(outcomes[0]?.bytes, ANSWER_BYTES);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("readRaw reads a body that is not a byte stream, one byte per piece, the same way", async () => {
  /** `fetch`, with the answer's body re-cut into pieces of one byte (a plain stream). */
  const bytewise: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    const body = response.body!.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(piece, c) {
          for (let i = 0; i < piece.length; i++) c.enqueue(piece.slice(i, i + 1));
        },
      }),
    );
    return new Response(body, { status: response.status, headers: response.headers });
  };
  await withReadServer(
    () => streamed(PIECES),
    async (url) => {
      const client = new ThanosClient({ url, fetch: bytewise });
      try {
        const got: Decoded[] = [];
        const counter = { queries: 0, attempts: 0, bytes: 0 };
        const stats = await client.readRaw(
          QUERY,
          (s) => got.push(decode(s)),
          undefined,
          undefined,
          counter,
        );
        assert.deepEqual(got, WANT);
        assert.equal(stats.bytes, ANSWER_BYTES);
        assert.equal(counter.bytes, ANSWER_BYTES);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("readRaw reads an empty streamed answer as no series", async () => {
  await withReadServer(
    () => streamed([]),
    async (url) => {
      const client = new ThanosClient({ url });
      try {
        let calls = 0;
        const stats = await client.readRaw(QUERY, () => calls++);
        assert.equal(calls, 0);
        assert.equal(stats.series, 0);
        assert.equal(stats.bytes, 0);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("readRaw retries a 503 (Retry-After honoured) and counts both attempts", async () => {
  await withReadServer(
    (_, n) =>
      n === 1
        ? new Response("overloaded", { status: 503, headers: { "Retry-After": "2" } })
        : streamed(PIECES),
    async (url, seen) => {
      const delays: number[] = [];
      const client = new ThanosClient({ url, ...fastRetries(delays) });
      try {
        let got: Decoded[] = [];
        const retries: RetryInfo[] = [];
        const counter = { queries: 0, attempts: 0, bytes: 0 };
        const stats = await client.readRaw(QUERY, (s) => got.push(decode(s)), undefined, (r) => {
          retries.push(r);
          got = [];
        }, counter);
        assert.deepEqual(got, WANT);
        assert.equal(stats.attempts, 2);
        assert.equal(seen.length, 2);
        assert.equal(retries.length, 1);
        assert.equal(retries[0]?.attempt, 2);
        assert.match(retries[0]?.reason ?? "", /HTTP 503/);
        assert.deepEqual(delays, [2000]);
        assert.equal(counter.queries, 1);
        assert.equal(counter.attempts, 2);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("readRaw: the series of an attempt cut short are dropped in onRetry, not delivered twice", async () => {
  await withReadServer(
    (_, n) => n === 1 ? streamed([FRAME1, FRAME2.slice(0, 50)]) : streamed(PIECES),
    async (url, seen) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      try {
        let got: Decoded[] = [];
        let calls = 0;
        const retries: RetryInfo[] = [];
        const stats = await client.readRaw(
          QUERY,
          (s) => {
            calls++;
            got.push(decode(s));
          },
          undefined,
          (r) => {
            retries.push(r);
            got = [];
          },
        );
        assert.deepEqual(got, WANT);
        assert.equal(calls, 5, "the cut attempt delivered its first frame's two series");
        assert.equal(stats.series, 3);
        assert.equal(stats.attempts, 2);
        assert.equal(seen.length, 2);
        assert.equal(retries.length, 1);
        assert.match(retries[0]?.reason ?? "", /ends inside a frame/);
      } finally {
        client.close();
      }
    },
  );
});

for (const type of ["application/x-protobuf", "text/html; charset=utf-8"]) {
  Deno.test(`readRaw: a 200 answer of ${type} is a thanos_parse error after one attempt`, async () => {
    await withReadServer(
      () =>
        new Response(type.startsWith("text/html") ? "<html>login</html>" : new Uint8Array(9), {
          headers: { "Content-Type": type },
        }),
      async (url, seen) => {
        const client = new ThanosClient({ url, ...fastRetries() });
        try {
          let calls = 0;
          const e = await rejectsWith(client.readRaw(QUERY, () => calls++), "thanos_parse");
          assert.equal(calls, 0);
          assert.equal(seen.length, 1);
          const cause = causeOf(e);
          assert.equal(cause.attempts, 1);
          assert.equal(cause.retryable, false);
          assert.equal(cause.status, 200);
          assert.ok(e.message.includes(JSON.stringify(type)), e.message);
          assert.match(e.message, /raw\/kube_pod_info/);
        } finally {
          client.close();
        }
      },
    );
  });
}

Deno.test("readRaw: a 404 is a thanos_http error, not retried", async () => {
  await withReadServer(
    () => new Response("404 page not found", { status: 404 }),
    async (url, seen) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      try {
        const e = await rejectsWith(client.readRaw(QUERY, () => {}), "thanos_http");
        assert.equal(seen.length, 1);
        assert.equal(causeOf(e).status, 404);
        assert.equal(causeOf(e).attempts, 1);
        assert.match(e.message, /HTTP 404/);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("readRaw: answers over maxAnswerBytes, maxSeries or maxLabelBytes are thanos_limit errors, not retried", async () => {
  const cases: [Record<string, number>, string, string][] = [
    // Each frame fits, the body does not.
    [{ maxAnswerBytes: ANSWER_BYTES - 1 }, "answer-bytes", "--max-answer-mb"],
    // The second frame alone is too large.
    [{ maxAnswerBytes: FRAME2.length - 1 }, "answer-bytes", "--max-answer-mb"],
    [{ maxSeries: 2 }, "series-count", "--max-series"],
    [{ maxLabelBytes: 20 }, "label-bytes", "--max-label-kb"],
  ];
  for (const [limits, name, setting] of cases) {
    await withReadServer(
      () => streamed(PIECES),
      async (url, seen) => {
        const client = new ThanosClient({ url, ...fastRetries(), ...limits });
        try {
          const e = await rejectsWith(client.readRaw(QUERY, () => {}), "thanos_limit");
          const cause = causeOf(e);
          assert.equal(cause.kind, "limit");
          assert.equal(cause.limit?.name, name, JSON.stringify(limits));
          assert.equal(cause.limit?.setting, setting);
          assert.equal(cause.attempts, 1);
          assert.equal(seen.length, 1);
          assert.ok(e.message.includes(setting), e.message);
        } finally {
          client.close();
        }
      },
    );
  }
});

Deno.test("readRaw: limits just at the answer's size pass", async () => {
  await withReadServer(
    () => streamed(PIECES),
    async (url) => {
      const client = new ThanosClient({
        url,
        maxAnswerBytes: ANSWER_BYTES,
        maxSeries: 3,
        maxLabelBytes: 21,
      });
      try {
        assert.equal((await client.readRaw(QUERY, () => {})).series, 3);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("readRaw: a body that ends inside a frame is retried as a network error, then thanos_http", async () => {
  await withReadServer(
    () => streamed([FRAME1, FRAME2.slice(0, 50)]),
    async (url, seen) => {
      const client = new ThanosClient({ url, ...fastRetries(), maxAttempts: 3 });
      try {
        const retries: RetryInfo[] = [];
        const e = await rejectsWith(
          client.readRaw(QUERY, () => {}, undefined, (r) => retries.push(r)),
          "thanos_http",
        );
        const cause = causeOf(e);
        assert.equal(cause.kind, "network");
        assert.equal(cause.retryable, true);
        assert.equal(cause.attempts, 3);
        assert.equal(seen.length, 3);
        assert.deepEqual(retries.map((r) => r.attempt), [2, 3]);
        assert.match(e.message, /ends inside a frame/);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("readRaw: an answer that stalls past timeoutMs is retried, then thanos_timeout", async () => {
  await withReadServer(
    (_, __, stop) => streamed([FRAME1], stop),
    async (url, seen) => {
      const client = new ThanosClient({ url, ...fastRetries(), maxAttempts: 2, timeoutMs: 100 });
      try {
        let got: Decoded[] = [];
        const e = await rejectsWith(
          client.readRaw(QUERY, (s) => got.push(decode(s)), undefined, () => (got = [])),
          "thanos_timeout",
        );
        assert.equal(causeOf(e).attempts, 2);
        assert.equal(seen.length, 2);
        assert.equal(got.length, 2, "only the last attempt's series are held");
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("readRaw: a frame with a bad CRC is a thanos_parse error, not retried", async () => {
  const bad = FRAME1.slice();
  bad[bad.length - 1]! ^= 0xff;
  await withReadServer(
    () => streamed([bad]),
    async (url, seen) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      try {
        const e = await rejectsWith(client.readRaw(QUERY, () => {}), "thanos_parse");
        assert.equal(seen.length, 1);
        assert.match(e.message, /CRC/);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("readRaw: an error thrown by onSeries propagates unchanged, without a retry", async () => {
  await withReadServer(
    () => streamed(PIECES),
    async (url, seen) => {
      const outcomes: QueryOutcome[] = [];
      const client = new ThanosClient({ url, ...fastRetries(), onQuery: (o) => outcomes.push(o) });
      try {
        const boom = new TypeError("the caller refuses this series");
        let calls = 0;
        let retried = false;
        await assert.rejects(
          client.readRaw(
            QUERY,
            () => {
              calls++;
              if (calls === 2) throw boom;
            },
            undefined,
            () => (retried = true),
          ),
          (error) => error === boom,
        );
        assert.equal(calls, 2);
        assert.equal(retried, false);
        assert.equal(seen.length, 1);
        assert.equal(outcomes.length, 1);
        assert.equal(outcomes[0]?.ok, false);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("readRaw: an abort through the signal mid-answer is a cancelled error", async () => {
  await withReadServer(
    (_, __, stop) => streamed([FRAME1], stop),
    async (url, seen) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      try {
        const controller = new AbortController();
        let calls = 0;
        const e = await rejectsWith(
          client.readRaw(QUERY, () => {
            calls++;
            controller.abort(new Error("shutting down"));
          }, controller.signal),
          "cancelled",
        );
        assert.ok(calls >= 1);
        assert.equal(seen.length, 1);
        assert.match(e.message, /cancelled: shutting down/);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("readRaw: an already aborted signal is a cancelled error", async () => {
  await withReadServer(
    () => streamed(PIECES),
    async (url, seen) => {
      const client = new ThanosClient({ url });
      try {
        await rejectsWith(client.readRaw(QUERY, () => {}, AbortSignal.abort()), "cancelled");
        assert.equal(seen.length, 0);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("probeRemoteRead: null when an empty read gets a streamed answer; the request asks for no query", async () => {
  await withReadServer(
    () => streamed([]),
    async (url, seen) => {
      const client = new ThanosClient({ url: `${url}/prom`, ...AUTH });
      try {
        assert.equal(await client.probeRemoteRead(), null);
      } finally {
        client.close();
      }
      assert.equal(seen.length, 1);
      const req = seen[0]!;
      assert.equal(req.method, "POST");
      assert.equal(req.path, "/prom/api/v1/read");
      assert.equal(req.headers.get("content-encoding"), "snappy");
      assert.equal(req.headers.get("authorization"), "Bearer s3cr3t-token");
      assert.deepEqual(decodeReadRequest(snappyDecode(req.body)), {
        queries: [],
        accepted: [STREAMED_XOR_CHUNKS],
      });
    },
  );
});

Deno.test("probeRemoteRead: the reason for a 404 names it", async () => {
  await withReadServer(
    () => new Response("404 page not found", { status: 404 }),
    async (url, seen) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      try {
        const reason = await client.probeRemoteRead();
        assert.equal(typeof reason, "string");
        assert.match(reason ?? "", /HTTP 404/);
        assert.equal(seen.length, 1);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("probeRemoteRead: the reason for an HTML answer names its content type", async () => {
  await withReadServer(
    () => new Response("<html>sign in</html>", { headers: { "Content-Type": "text/html" } }),
    async (url) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      try {
        const reason = await client.probeRemoteRead();
        assert.match(reason ?? "", /"text\/html"/);
        assert.ok(reason?.includes(STREAMED_CONTENT_TYPE), reason ?? "");
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("probeRemoteRead: cancellation is thrown, not a reason", async () => {
  await withReadServer(
    () => streamed([]),
    async (url) => {
      const client = new ThanosClient({ url });
      try {
        await rejectsWith(client.probeRemoteRead(AbortSignal.abort()), "cancelled");
      } finally {
        client.close();
      }
    },
  );
});

/** A `/api/v1/status/config` answer holding `yaml`. */
function configAnswer(yaml: string): Response {
  return json(JSON.stringify({ status: "success", data: { yaml } }));
}

Deno.test("externalLabels: {} for a configuration without external labels; GET /api/v1/status/config", async () => {
  await withReadServer(
    () => configAnswer("global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n"),
    async (url, seen) => {
      const client = new ThanosClient({ url: `${url}/prom/`, ...AUTH });
      try {
        assert.deepEqual(await client.externalLabels(), {});
      } finally {
        client.close();
      }
      assert.equal(seen.length, 1);
      assert.equal(seen[0]?.method, "GET");
      assert.equal(seen[0]?.path, "/prom/api/v1/status/config");
      assert.equal(seen[0]?.headers.get("authorization"), "Bearer s3cr3t-token");
      assert.equal(seen[0]?.headers.get("x-scope-orgid"), "tenant-a");
    },
  );
});

Deno.test("externalLabels: the map of global.external_labels", async () => {
  await withReadServer(
    () =>
      configAnswer(
        'global:\n  scrape_interval: 1m\n  external_labels:\n    cluster: hub\n    replica: "1"\nscrape_configs:\n- job_name: x\n',
      ),
    async (url) => {
      const client = new ThanosClient({ url });
      try {
        assert.deepEqual(await client.externalLabels(), { cluster: "hub", replica: "1" });
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("externalLabels: null for a 404, a 405 and an HTML page", async () => {
  const answers: (() => Response)[] = [
    () => new Response("404 page not found", { status: 404 }),
    () => new Response("method not allowed", { status: 405 }),
    () => new Response("<html></html>", { headers: { "Content-Type": "text/html" } }),
  ];
  for (const answer of answers) {
    await withReadServer(
      answer,
      async (url, seen) => {
        const client = new ThanosClient({ url, ...fastRetries() });
        try {
          assert.equal(await client.externalLabels(), null);
          assert.equal(seen.length, 1);
        } finally {
          client.close();
        }
      },
    );
  }
});

Deno.test("externalLabels: a 403 is a thanos_http error, not null (local mode turns it into a reason)", async () => {
  await withReadServer(
    () => new Response("forbidden", { status: 403 }),
    async (url, seen) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      try {
        const e = await rejectsWith(client.externalLabels(), "thanos_http");
        assert.match(e.message, /HTTP 403/);
        assert.equal(seen.length, 1);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("externalLabels: a 503 is retried", async () => {
  await withReadServer(
    (_, n) =>
      n === 1
        ? new Response("busy", { status: 503 })
        : configAnswer("global:\n  external_labels:\n    replica: b\n"),
    async (url, seen) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      try {
        assert.deepEqual(await client.externalLabels(), { replica: "b" });
        assert.equal(seen.length, 2);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("externalLabelsOf: absent parts are {}, anything not a map of strings is null", () => {
  assert.deepEqual(externalLabelsOf("scrape_configs: []\n"), {});
  assert.deepEqual(externalLabelsOf("global:\n"), {});
  assert.deepEqual(externalLabelsOf("global: null\n"), {});
  assert.deepEqual(externalLabelsOf("global:\n  external_labels:\n"), {});
  assert.deepEqual(externalLabelsOf("global:\n  external_labels: {}\n"), {});
  assert.deepEqual(
    externalLabelsOf('global:\n  external_labels:\n    a: x\n    b: ""\n'),
    { a: "x", b: "" },
  );
  assert.equal(externalLabelsOf("global:\n  external_labels:\n    replica: 1\n"), null);
  assert.equal(externalLabelsOf("global:\n  external_labels:\n    a: [x]\n"), null);
  assert.equal(externalLabelsOf("global:\n  external_labels: [a, b]\n"), null);
  assert.equal(externalLabelsOf("global:\n  external_labels: a\n"), null);
  assert.equal(externalLabelsOf("global: [a]\n"), null);
  assert.equal(externalLabelsOf("global: 5\n"), null);
  assert.equal(externalLabelsOf("- a\n- b\n"), null);
  assert.equal(externalLabelsOf("just text"), null);
  assert.equal(externalLabelsOf("global: [\n"), null);
});
