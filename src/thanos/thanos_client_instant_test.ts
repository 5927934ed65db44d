import assert from "node:assert/strict";
import { BridgeError } from "../model.ts";
import {
  type InstantQuery,
  queryInstantForm,
  type QueryOutcome,
  type RetryInfo,
  type Series,
  ThanosClient,
} from "./thanos_client.ts";
import { recordingFetch, replayFetch } from "./recording.ts";
import {
  answer,
  assertQueryPost,
  AUTH,
  causeOf,
  fastRetries,
  hangingBody,
  json,
  type Seen,
  withServer,
} from "./test_server.ts";

const RAW: InstantQuery = {
  query: 'kube_pod_container_resource_requests{clusterID="c1",resource="cpu"}[3720s]',
  time: 1_793_494_799,
  id: "raw/requests",
  clusterId: "c1",
  hours: "2026-11-01 03:00-03:59 UTC",
};

const SERIES: Series[] = [
  {
    metric: { __name__: "kube_pod_container_resource_requests", pod: "p1", resource: "cpu" },
    values: [[1_793_491_080, "0.25"], [1_793_491_380, "0.5"]],
  },
  {
    metric: { __name__: "kube_pod_container_resource_requests", pod: "p2", resource: "cpu" },
    values: [[1_793_491_200, "1"]],
  },
];

Deno.test("queryInstantForm: query, time, partial_response=false, dedup=true; bad input refused", () => {
  assert.deepEqual([...queryInstantForm({ query: "up[60s]", time: 1.5 })], [
    ["query", "up[60s]"],
    ["time", "1.5"],
    ["partial_response", "false"],
    ["dedup", "true"],
  ]);
  assert.throws(() => queryInstantForm({ query: " ", time: 0 }), TypeError);
  assert.throws(() => queryInstantForm({ query: "up", time: NaN }), RangeError);
});

Deno.test("queryInstant POSTs the form to /api/v1/query with the client's headers and streams the matrix", async () => {
  await withServer(
    () => json(answer(SERIES)),
    async ({ url, seen }) => {
      const outcomes: QueryOutcome[] = [];
      const client = new ThanosClient({
        url: `${url}/prefix/`,
        ...AUTH,
        onQuery: (o) => outcomes.push(o),
      });
      try {
        const got: Series[] = [];
        const counter = { queries: 0, attempts: 0, bytes: 0 };
        const stats = await client.queryInstant(
          RAW,
          (s) => got.push(s),
          undefined,
          undefined,
          counter,
        );
        assert.deepEqual(counter, { queries: 1, attempts: 1, bytes: stats.bytes });
        assert.deepEqual(got, SERIES);
        assert.equal(stats.series, 2);
        assert.equal(stats.attempts, 1);
        assert.equal(stats.bytes, new TextEncoder().encode(answer(SERIES)).length);
        assert.deepEqual(client.stats, { queries: 1, attempts: 1, bytes: stats.bytes });
        assert.equal(outcomes.length, 1);
        assert.equal(outcomes[0]?.ok, true);
        assert.equal(outcomes[0]?.bytes, stats.bytes);

        const req = seen[0] as Seen;
        assertQueryPost(req, "/prefix/api/v1/query");
        assert.deepEqual([...req.form], [
          ["query", RAW.query],
          ["time", "1793494799"],
          ["partial_response", "false"],
          ["dedup", "true"],
        ]);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("queryInstant counts its traffic in the caller's counter", async () => {
  await withServer(
    (_, n) =>
      n === 1
        ? json('{"status":"error","errorType":"unavailable","error":"x"}', 503)
        : json(answer(SERIES)),
    async ({ url }) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      try {
        const counter = { queries: 0, attempts: 0, bytes: 0 };
        const stats = await client.queryInstant(RAW, () => {}, undefined, undefined, counter);
        assert.equal(counter.queries, 1);
        assert.equal(counter.attempts, 2);
        assert.equal(counter.bytes, stats.bytes); // the error body is not read by the parser
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("queryInstant retries a 503 (Retry-After honoured), and onRetry lets the caller drop a partial answer", async () => {
  const delays: number[] = [];
  const body = answer(SERIES);
  await withServer(
    (_, n) => {
      if (n === 1) {
        return json('{"status":"error","errorType":"unavailable","error":"busy"}', 503, {
          "Retry-After": "2",
        });
      }
      if (n === 2) {
        // One whole series, then the body breaks off.
        return json(body.slice(0, body.indexOf("]]}") + 3));
      }
      return json(body);
    },
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, ...fastRetries(delays) });
      try {
        let got: Series[] = [];
        const retries: RetryInfo[] = [];
        const stats = await client.queryInstant(RAW, (s) => got.push(s), undefined, (info) => {
          retries.push(info);
          got = [];
        });
        assert.deepEqual(got, SERIES);
        assert.equal(stats.attempts, 3);
        assert.equal(seen.length, 3);
        assert.deepEqual(retries.map((r) => r.attempt), [2, 3]);
        assert.match(retries[0]!.reason, /HTTP 503/);
        assert.equal(delays[0], 2000);
        for (const s of seen) assert.equal(s.path, "/api/v1/query");
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("queryInstant: warnings are retried, then fail with thanos_warning naming the query and the time", async () => {
  await withServer(
    () => json(answer(SERIES, { warnings: ["store 10.0.0.1 unavailable"] })),
    async ({ url, seen }) => {
      const outcomes: QueryOutcome[] = [];
      const client = new ThanosClient({
        url,
        maxAttempts: 3,
        onQuery: (o) => outcomes.push(o),
        ...fastRetries(),
      });
      try {
        const error = await client.queryInstant(RAW, () => {}).then(
          () => assert.fail("expected a failure"),
          (e: unknown) => e,
        );
        assert.ok(error instanceof BridgeError);
        assert.equal(error.code, "thanos_warning");
        assert.match(
          error.message,
          /query raw\/requests \(cluster c1, 2026-11-01 03:00-03:59 UTC\)/,
        );
        assert.match(error.message, /\(time=1793494799\) failed after 3 attempts/);
        assert.match(error.message, /store 10\.0\.0\.1 unavailable/);
        assert.equal(seen.length, 3);
        const cause = causeOf(error);
        assert.equal(cause.kind, "warnings");
        assert.equal(cause.query, RAW.query);
        assert.equal(cause.clusterId, "c1");
        assert.deepEqual(outcomes.map((o) => [o.ok, o.code]), [[false, "thanos_warning"]]);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("queryInstant: a vector or scalar answer is a thanos_parse error, not retried", async () => {
  for (
    const body of [
      '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}',
      '{"status":"success","data":{"resultType":"vector","result":[]}}',
      '{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}',
    ]
  ) {
    await withServer(
      () => json(body),
      async ({ url, seen }) => {
        const client = new ThanosClient({ url, ...fastRetries() });
        try {
          const error = await client.queryInstant(RAW, () => {}).then(
            () => assert.fail("expected a failure"),
            (e: unknown) => e,
          );
          assert.ok(error instanceof BridgeError);
          assert.equal(error.code, "thanos_parse");
          // series_stream.ts checks a result item's shape before the result type, so a
          // scalar's `[t, "v"]` is refused as "expected a series object" without the type.
          assert.match(
            error.message,
            body.includes('"scalar"')
              ? /expected a series object in data\.result/
              : /expected resultType "matrix", got "vector"/,
          );
          assert.equal(seen.length, 1);
        } finally {
          client.close();
        }
      },
    );
  }
});

Deno.test("queryInstant: answer limits apply (series count, answer bytes): thanos_limit, not retried", async () => {
  await withServer(
    () => json(answer(SERIES)),
    async ({ url, seen }) => {
      for (
        const [options, setting] of [
          [{ maxSeries: 1 }, "--max-series"],
          [{ maxAnswerBytes: 100 }, "--max-answer-mb"],
          [{ maxLabelBytes: 3 }, "--max-label-kb"],
        ] as const
      ) {
        const before = seen.length;
        const client = new ThanosClient({ url, ...options, ...fastRetries() });
        try {
          const error = await client.queryInstant(RAW, () => {}).then(
            () => assert.fail("expected a failure"),
            (e: unknown) => e,
          );
          assert.ok(error instanceof BridgeError);
          assert.equal(error.code, "thanos_limit");
          assert.equal(causeOf(error).limit?.setting, setting);
          assert.equal(seen.length, before + 1);
        } finally {
          client.close();
        }
      }
    },
  );
});

Deno.test("queryInstant: an abort while the answer hangs is a cancelled error, at once", async () => {
  await withServer(
    (_, __, server) =>
      // Hangs after the start of the answer until the test's server stops.
      new Response(
        hangingBody(server.stop, '{"status":"success","data":{"resultType":"matrix","result":['),
        { headers: { "Content-Type": "application/json" } },
      ),
    async ({ url }) => {
      const outcomes: QueryOutcome[] = [];
      const client = new ThanosClient({ url, onQuery: (o) => outcomes.push(o), ...fastRetries() });
      try {
        const controller = new AbortController();
        const pending = client.queryInstant(RAW, () => {}, controller.signal);
        setTimeout(() => controller.abort(new Error("run stopped")), 50);
        const started = performance.now();
        const error = await pending.then(
          () => assert.fail("expected a failure"),
          (e: unknown) => e,
        );
        assert.ok(performance.now() - started < 2000);
        assert.ok(error instanceof BridgeError);
        assert.equal(error.code, "cancelled");
        assert.match(error.message, /query raw\/requests .* cancelled: run stopped/);
        assert.deepEqual(outcomes.map((o) => o.code), ["cancelled"]);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("queryInstant: an HTTP 400 is not retried; the token never appears in the error", async () => {
  await withServer(
    () => json('{"status":"error","errorType":"bad_data","error":"parse error near tok-123"}', 400),
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, token: "tok-123", ...fastRetries() });
      try {
        const error = await client.queryInstant(RAW, () => {}).then(
          () => assert.fail("expected a failure"),
          (e: unknown) => e,
        );
        assert.ok(error instanceof BridgeError);
        assert.equal(error.code, "thanos_http");
        assert.equal(seen.length, 1);
        assert.doesNotMatch(error.message, /tok-123/);
        assert.equal(causeOf(error).status, 400);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("buildInfo: the data object; null on 404 or a non-JSON page; 503 retried", async () => {
  const data = { version: "2.42.0+ds", revision: "r", branch: "b", goVersion: "go1.19.8" };
  await withServer(
    (seen, n) => {
      assert.equal(seen.path, "/api/v1/status/buildinfo");
      assert.equal(seen.method, "GET");
      if (n === 1) return json("{}", 503);
      return json(JSON.stringify({ status: "success", data }));
    },
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, token: "t0k", ...fastRetries() });
      try {
        assert.deepEqual(await client.buildInfo(), data);
        assert.equal(seen.length, 2);
        assert.equal(seen[1]!.headers.get("authorization"), "Bearer t0k");
      } finally {
        client.close();
      }
    },
  );
  for (
    const reply of [
      () => new Response("404 page not found", { status: 404 }),
      () => new Response("<html>login</html>", { headers: { "Content-Type": "text/html" } }),
      () => json('{"status":"success","data":[]}'),
    ]
  ) {
    await withServer(reply, async ({ url }) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      try {
        assert.equal(await client.buildInfo(), null);
      } finally {
        client.close();
      }
    });
  }
  await withServer(() => json("{}", 401), async ({ url }) => {
    const client = new ThanosClient({ url, ...fastRetries() });
    try {
      await assert.rejects(
        client.buildInfo(),
        (e: unknown) => e instanceof BridgeError && e.code === "thanos_http",
      );
    } finally {
      client.close();
    }
  });
});

Deno.test("queryInstant through recordingFetch/replayFetch: recorded, then replayed offline; another time misses", async () => {
  const dir = await Deno.makeTempDir({ prefix: "thanos-bridge-instant-rec-" });
  try {
    await withServer(
      () => json(answer(SERIES)),
      async ({ url }) => {
        const client = new ThanosClient({ url, fetch: recordingFetch(dir) });
        try {
          const got: Series[] = [];
          await client.queryInstant(RAW, (s) => got.push(s));
          assert.deepEqual(got, SERIES); // passes through unchanged
        } finally {
          client.close();
        }
      },
    );
    const replay = new ThanosClient({
      url: "http://replay.invalid",
      fetch: replayFetch(dir),
      ...fastRetries(),
    });
    try {
      const again: Series[] = [];
      await replay.queryInstant(RAW, (s) => again.push(s));
      assert.deepEqual(again, SERIES);
      // A request that was not recorded is a miss (404), not an answer.
      await assert.rejects(
        replay.queryInstant({ ...RAW, time: RAW.time + 60 }, () => {}),
        (e: unknown) => e instanceof BridgeError && e.code === "thanos_http",
      );
    } finally {
      replay.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
