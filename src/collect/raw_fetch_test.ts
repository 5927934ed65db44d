import assert from "node:assert/strict";
import { join } from "node:path";
import { BridgeError } from "../model.ts";
import { type Series, ThanosClient, type ThanosClientOptions } from "../thanos/thanos_client.ts";
import { backfill, startPrometheus } from "../../tools/synth/prometheus.ts";
import { answer, hangingBody, json, withServer } from "../thanos/test_server.ts";
import { canonicalSelector } from "./local_eval.ts";
import {
  fetchRaw,
  type InstantQuerier,
  rangeSeconds,
  type RawSeries,
  type RemoteReader,
  sortSeries,
  type StreamedSeries,
} from "./raw_fetch.ts";
import type { RawReadQuery } from "../thanos/thanos_client.ts";
import { CHUNK_XOR, type ReadChunk, type ReadSeries } from "../thanos/remote_read.ts";
import { encodeXorChunk } from "../thanos/xor_chunk.ts";

const FIRST_MS = Date.UTC(2026, 10, 1, 3, 0); // 1_793_502_000_000
const LAST_MS = Date.UTC(2026, 10, 1, 3, 59);
const KEY_A = 'kube_pod_info{clusterID="c1"}';
const KEY_B = 'kube_node_info{clusterID="c1"}';

const FAST: Partial<ThanosClientOptions> = {
  baseDelayMs: 1,
  maxDelayMs: 1,
  random: () => 0,
  sleep: () => Promise.resolve(),
};

/** The selector of a `x[Ns]` query. */
function selectorOf(form: URLSearchParams): string {
  return form.get("query")!.replace(/\[\d+s\]$/, "");
}

Deno.test("rangeSeconds: the needed span rounded up, plus one minute", () => {
  assert.equal(rangeSeconds(0, 3_540_000, 300_000), 3_900);
  assert.equal(rangeSeconds(0, 0, 0), 60);
  assert.equal(rangeSeconds(0, 1, 0), 61);
});

Deno.test("sortSeries: Prometheus's labels.Compare order (names, then values, UTF-8 bytes, prefix first)", () => {
  const e = new Float64Array(0);
  const sets: Record<string, string>[] = [
    { b: "1" },
    { a: "2" },
    { a: "1", c: "x" },
    { a: "1" },
    { a: "\u{1F600}" },
    { a: "\uFF01" },
    { __name__: "m", a: "1" },
  ];
  const sorted = sortSeries(sets.map((metric): RawSeries => ({ metric, t: e, v: e })));
  assert.deepEqual(sorted.map((s) => s.metric), [
    { __name__: "m", a: "1" },
    { a: "1" },
    { a: "1", c: "x" },
    { a: "2" },
    { a: "\uFF01" },
    { a: "\u{1F600}" },
    { b: "1" },
  ]);
});

Deno.test("fetchRaw: one instant query per selector at lastMs, typed arrays, sorted series, totals", async () => {
  const timeS = LAST_MS / 1000;
  await withServer(
    (seen) => {
      const sel = selectorOf(seen.form);
      if (sel === KEY_A) {
        return json(answer([
          {
            metric: { __name__: "kube_pod_info", pod: "p2" },
            values: [[timeS - 3900, "1"], [timeS - 60.5, "NaN"], [timeS, "+Inf"]],
          },
          { metric: { __name__: "kube_pod_info", pod: "p1" }, values: [[timeS - 30, "0x1p-2"]] },
        ]));
      }
      return json(answer([]));
    },
    async ({ url, seen }) => {
      const client = new ThanosClient({ url });
      try {
        const counter = { queries: 0, attempts: 0, bytes: 0 };
        const store = await fetchRaw(
          client,
          {
            firstMs: FIRST_MS,
            lastMs: LAST_MS,
            needs: [
              { key: KEY_A, marginMs: 300_000 },
              { key: KEY_B, marginMs: 0 },
              { key: KEY_A, marginMs: 60_000 },
            ],
            id: "batch-1",
            clusterId: "c1",
          },
          undefined,
          counter,
        );
        assert.equal(seen.length, 2);
        const forms = new Map(seen.map((s) => [selectorOf(s.form), s.form]));
        assert.equal(forms.get(KEY_A)!.get("query"), `${KEY_A}[3900s]`);
        assert.equal(forms.get(KEY_B)!.get("query"), `${KEY_B}[3600s]`);
        for (const s of seen) {
          assert.equal(s.path, "/api/v1/query");
          assert.equal(s.form.get("time"), String(timeS));
        }
        const a = store.series(KEY_A);
        assert.deepEqual(a.map((s) => s.metric.pod), ["p1", "p2"]);
        assert.ok(a[1]!.t instanceof Float64Array && a[1]!.v instanceof Float64Array);
        assert.deepEqual([...a[1]!.t], [LAST_MS - 3_900_000, LAST_MS - 60_500, LAST_MS]);
        assert.equal(a[1]!.v.length, 3);
        assert.equal(a[1]!.v[0], 1);
        assert.ok(Number.isNaN(a[1]!.v[1]));
        assert.equal(a[1]!.v[2], Infinity);
        assert.equal(a[0]!.v[0], 0.25);
        // Views into one trimmed chunk per answer: no buffer per series, no spare slots.
        assert.equal(a[0]!.t.buffer, a[1]!.t.buffer);
        assert.equal(a[0]!.v.buffer, a[1]!.v.buffer);
        assert.equal(a[0]!.t.buffer.byteLength, 4 * 8);
        assert.equal(a[0]!.t.length, 1);
        assert.deepEqual(store.series(KEY_B), []);
        assert.equal(store.samples, 4);
        assert.equal(store.seriesCount, 2);
        assert.ok(store.bytes >= 4 * 16);
        assert.deepEqual(counter, { queries: 2, attempts: 2, bytes: counter.bytes });
        assert.throws(() => store.series("up"), RangeError);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("fetchRaw refuses bad series with thanos_parse naming the selector and the labels", async () => {
  const timeS = LAST_MS / 1000;
  const cases: [Series[], RegExp][] = [
    [
      [{ metric: { pod: "p1" }, values: [[timeS - 10, "1"], [timeS - 10, "2"]] }],
      /not strictly ascending/,
    ],
    [
      [{ metric: { pod: "p1" }, values: [[timeS - 20, "1"], [timeS - 30, "2"]] }],
      /not strictly ascending/,
    ],
    [[{ metric: { pod: "p1" }, values: [[timeS + 1, "1"]] }], /outside the window/],
    [[{ metric: { pod: "p1" }, values: [[timeS - 3661, "1"]] }], /outside the window/],
    [[{ metric: { pod: "p1" }, values: [[timeS, "0x10"]] }], /bad value/],
    [
      [{ metric: { pod: "p1" }, values: [[timeS, "1"]] }, {
        metric: { pod: "p1" },
        values: [[timeS, "2"]],
      }],
      /comes twice in one answer/,
    ],
  ];
  for (const [series, pattern] of cases) {
    await withServer(
      () => json(answer(series)),
      async ({ url, seen }) => {
        const client = new ThanosClient({ url, ...FAST });
        try {
          const error = await fetchRaw(client, {
            firstMs: LAST_MS,
            lastMs: LAST_MS,
            needs: [{ key: KEY_A, marginMs: 3_540_000 }], // range 3600 s
            clusterId: "c1",
          }).then(() => assert.fail("expected a failure"), (e: unknown) => e);
          assert.ok(error instanceof BridgeError, String(error));
          assert.equal(error.code, "thanos_parse");
          assert.match(error.message, pattern);
          assert.ok(error.message.includes(KEY_A), error.message);
          assert.match(error.message, /\{pod="p1"\}/);
          assert.equal(seen.length, 1); // not retried
        } finally {
          client.close();
        }
      },
    );
  }
  // The sample exactly at time - range is accepted.
  await withServer(
    () => json(answer([{ metric: { pod: "p1" }, values: [[timeS - 3600, "1"]] }])),
    async ({ url }) => {
      const client = new ThanosClient({ url });
      try {
        const store = await fetchRaw(client, {
          firstMs: LAST_MS,
          lastMs: LAST_MS,
          needs: [{ key: KEY_A, marginMs: 3_540_000 }],
        });
        assert.equal(store.samples, 1);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("fetchRaw: a retried query drops what the failed attempt delivered", async () => {
  const timeS = LAST_MS / 1000;
  const full = answer([
    { metric: { pod: "p1" }, values: [[timeS, "1"]] },
    { metric: { pod: "p2" }, values: [[timeS, "2"]] },
  ]);
  await withServer(
    (_, n) => json(n === 1 ? full.slice(0, full.indexOf("]]}") + 3) : full),
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, ...FAST });
      try {
        const store = await fetchRaw(client, {
          firstMs: FIRST_MS,
          lastMs: LAST_MS,
          needs: [{ key: KEY_A, marginMs: 0 }],
        });
        assert.equal(seen.length, 2);
        assert.deepEqual(store.series(KEY_A).map((s) => s.metric.pod), ["p1", "p2"]);
        assert.equal(store.samples, 2);
        // The failed attempt's samples are not in the kept chunks (both series share one timestamp).
        assert.equal(store.series(KEY_A)[0]!.t.buffer.byteLength, 1 * 8);
        assert.equal(store.series(KEY_A)[0]!.v.buffer.byteLength, 2 * 8);
      } finally {
        client.close();
      }
    },
  );
});

/** A client that streams `attempts[k]` for attempt k of each query, calling `onRetry` between them. */
function fakeClient(
  answers: (key: string) => StreamedSeries[][],
  seen: string[] = [],
): InstantQuerier {
  return {
    queryInstant(q, onSeries, _signal, onRetry) {
      const key = q.query.replace(/\[\d+s\]$/, "");
      seen.push(key);
      const attempts = answers(key);
      attempts.forEach((attempt, k) => {
        if (k > 0) onRetry?.();
        for (const s of attempt) onSeries(s);
      });
      return Promise.resolve(undefined);
    },
  };
}

/** `n` samples ending at LAST_MS, `stepMs` apart; value i + offset. */
function samples(n: number, stepMs: number, offset = 0): [number, string][] {
  return Array.from(
    { length: n },
    (_, i): [number, string] => [(LAST_MS - (n - 1 - i) * stepMs) / 1000, String(i + offset)],
  );
}

Deno.test("fetchRaw: many series over several chunks, one series larger than a chunk, empty series, retries", async () => {
  const pods = 3_000;
  const big = 300_000; // more than the largest chunk (262,144 samples)
  const attempt = (offset: number): StreamedSeries[] => {
    const out: StreamedSeries[] = [];
    for (let i = 0; i < pods; i++) {
      out.push({
        metric: { __name__: "m", namespace: `ns-${i % 7}`, pod: `p${String(i).padStart(4, "0")}` },
        values: samples(1 + (i % 100), 60_000, i + offset),
      });
      if (i === 1_500) {
        out.push({ metric: { __name__: "m", pod: "big" }, values: samples(big, 10, offset) });
        out.push({ metric: { __name__: "m", pod: "empty" }, values: [] });
      }
    }
    return out;
  };
  const store = await fetchRaw(
    fakeClient((key) =>
      key === KEY_A ? [attempt(7).slice(0, 2_000), attempt(0)] : [attempt(0).slice(0, 10)]
    ),
    {
      firstMs: LAST_MS,
      lastMs: LAST_MS,
      needs: [{ key: KEY_A, marginMs: 6_000_000 }, {
        key: KEY_B,
        marginMs: 6_000_000,
      }],
    },
  );
  const a = store.series(KEY_A);
  assert.equal(a.length, pods + 2);
  let total = 0;
  for (const s of a) {
    const pod = s.metric.pod!;
    if (pod === "big") {
      assert.equal(s.t.length, big);
      assert.equal(s.v[0], 0);
      assert.equal(s.v[big - 1], big - 1);
      assert.equal(s.t[big - 1], LAST_MS);
    } else if (pod === "empty") {
      assert.equal(s.t.length, 0);
      assert.equal(s.v.length, 0);
    } else {
      const i = Number(pod.slice(1));
      const n = 1 + (i % 100);
      assert.equal(s.metric.namespace, `ns-${i % 7}`);
      assert.equal(s.t.length, n, pod);
      assert.equal(s.v.length, n, pod);
      assert.deepEqual([...s.v], Array.from({ length: n }, (_, k) => k + i), pod);
      assert.equal(s.t[n - 1], LAST_MS);
      assert.equal(s.t[0], LAST_MS - (n - 1) * 60_000);
    }
    total += s.t.length;
  }
  assert.equal(store.samples, total + 55); // KEY_B: 10 series of 1..10 samples
  assert.equal(store.seriesCount, pods + 2 + 10);
  // Few buffers, none with more than a few spare slots. The pods' timestamps are all runs of
  // one grid (each ends at LAST_MS, 60 s apart). The first 100 pods come in growing lengths, so
  // each is stored (1 + 2 + … + 100 slots, plus chunk tails under 1/16); every later pod's is
  // a run of the longest.
  const buffers = new Set(a.map((s) => s.v.buffer));
  assert.ok(buffers.size <= 12, `${buffers.size} buffers`);
  let slots = 0;
  for (const b of buffers) slots += b.byteLength / 8;
  assert.ok(slots >= total && slots - total < total / 16, `${slots} slots for ${total} samples`);
  const tBuffers = new Set(a.map((s) => s.t.buffer));
  let tSlots = 0;
  for (const b of tBuffers) tSlots += b.byteLength / 8;
  assert.ok(tSlots <= big + ((100 * 101) / 2) * (17 / 16), `${tSlots} timestamp slots`);
  assert.ok(store.bytes >= (total + big + 100) * 8);
  const buffers2 = new Set([...buffers, ...tBuffers]);
  // Released: every buffer is freed (detached), every view is empty, and the store refuses reads.
  const b = store.series(KEY_B);
  store.release();
  for (const buffer of [...buffers2, ...b.map((s) => s.v.buffer)]) {
    assert.equal(buffer.byteLength, 0);
  }
  assert.ok(a.every((s) => s.t.length === 0 && s.v.length === 0));
  assert.throws(() => store.series(KEY_A), RangeError);
  store.release(); // twice is harmless
});

Deno.test("fetchRaw: duplicates are found by label set, whatever the labels' order; near misses are not duplicates", async () => {
  const one = (metric: Record<string, string>): StreamedSeries => ({
    metric,
    values: samples(1, 1),
  });
  const distinct = [
    one({ a: "1", b: "2" }),
    one({ a: "2", b: "1" }),
    one({ b: "1", c: "2" }),
    one({ a: "1" }),
    one({ b: "1" }),
    one({}),
    one({ a: "1", b: "2", c: "" }),
  ];
  for (let i = 0; i < 5_000; i++) distinct.push(one({ pod: `p${i}`, n: `${i % 13}` }));
  const store = await fetchRaw(fakeClient(() => [distinct]), {
    firstMs: LAST_MS,
    lastMs: LAST_MS,
    needs: [{ key: KEY_A, marginMs: 0 }],
  });
  assert.equal(store.seriesCount, distinct.length);
  const dups: Record<string, string>[] = [{ b: "2", a: "1" }, { n: "7", pod: "p4999" }, {}];
  for (const dup of dups) {
    const error = await fetchRaw(fakeClient(() => [[...distinct, one(dup)]]), {
      firstMs: LAST_MS,
      lastMs: LAST_MS,
      needs: [{ key: KEY_A, marginMs: 0 }],
    }).then(() => assert.fail("expected a failure"), (e: unknown) => e);
    assert.ok(error instanceof BridgeError, String(error));
    assert.equal(error.code, "thanos_parse");
    assert.match(error.message, /comes twice in one answer/);
  }
  // A non-string label is named by the first such name in sorted order.
  const error = await fetchRaw(
    fakeClient(() => [[{ metric: { z: 1, b: 2, a: "x" } as never, values: [] }]]),
    { firstMs: LAST_MS, lastMs: LAST_MS, needs: [{ key: KEY_A, marginMs: 0 }] },
  ).then(() => assert.fail("expected a failure"), (e: unknown) => e);
  assert.ok(error instanceof BridgeError, String(error));
  assert.match(error.message, /has label "b" that is not a string/);
});

Deno.test("fetchRaw: equal label values of different series and selectors read back equal", async () => {
  const store = await fetchRaw(
    fakeClient((key) => [[
      { metric: { __name__: key.slice(0, 8), pod: "p".repeat(40) }, values: samples(2, 1) },
      { metric: { __name__: key.slice(0, 8), pod: "q".repeat(40) }, values: samples(2, 1) },
    ]]),
    {
      firstMs: LAST_MS,
      lastMs: LAST_MS,
      needs: [{ key: KEY_A, marginMs: 0 }, { key: KEY_B, marginMs: 0 }],
    },
  );
  assert.deepEqual(store.series(KEY_A).map((s) => s.metric), [
    { __name__: "kube_pod", pod: "p".repeat(40) },
    { __name__: "kube_pod", pod: "q".repeat(40) },
  ]);
  assert.deepEqual(store.series(KEY_B).map((s) => s.metric.pod), ["p".repeat(40), "q".repeat(40)]);
});

Deno.test("fetchRaw: the first failure aborts the other queries and is thrown", async () => {
  await withServer(
    (seen, _, server) => {
      if (selectorOf(seen.form) === KEY_B) {
        return json('{"status":"error","errorType":"bad_data","error":"boom"}', 400);
      }
      // KEY_A hangs until the test's server stops.
      return new Response(hangingBody(server.stop), {
        headers: { "Content-Type": "application/json" },
      });
    },
    async ({ url }) => {
      const client = new ThanosClient({ url, ...FAST });
      try {
        const started = performance.now();
        const error = await fetchRaw(client, {
          firstMs: FIRST_MS,
          lastMs: LAST_MS,
          needs: [{ key: KEY_A, marginMs: 0 }, { key: KEY_B, marginMs: 0 }],
        }).then(() => assert.fail("expected a failure"), (e: unknown) => e);
        assert.ok(performance.now() - started < 5000);
        assert.ok(error instanceof BridgeError);
        assert.equal(error.code, "thanos_http");
        assert.match(error.message, /boom/);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("fetchRaw: the caller's abort is a cancelled error; bad requests are refused", async () => {
  await withServer(
    () => json(answer([])),
    async ({ url }) => {
      const client = new ThanosClient({ url });
      try {
        const controller = new AbortController();
        controller.abort(new Error("stop"));
        await assert.rejects(
          fetchRaw(client, {
            firstMs: FIRST_MS,
            lastMs: LAST_MS,
            needs: [{ key: KEY_A, marginMs: 0 }],
          }, controller.signal),
          (e: unknown) => e instanceof BridgeError && e.code === "cancelled",
        );
        await assert.rejects(
          fetchRaw(client, { firstMs: LAST_MS, lastMs: FIRST_MS, needs: [] }),
          RangeError,
        );
        await assert.rejects(
          fetchRaw(client, { firstMs: 0, lastMs: 0, needs: [{ key: "x", marginMs: -1 }] }),
          RangeError,
        );
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("fetchRaw against Debian's Prometheus 2.42: raw samples unchanged, the sample at the left edge kept", async () => {
  const work = await Deno.makeTempDir({ prefix: "thanos-bridge-raw-fetch-" });
  let server: Awaited<ReturnType<typeof startPrometheus>> | undefined;
  try {
    // Samples every 300 s (ACM's interval) from 02:50 to 04:05, one of them NaN.
    const firstMs = FIRST_MS, lastMs = LAST_MS, marginMs = 600_000; // left edge 02:50:00
    const edgeMs = firstMs - marginMs;
    const times: number[] = [];
    for (let t = edgeMs - 300_000; t <= lastMs + 360_000; t += 300_000) times.push(t);
    const value = (i: number) => (i === 5 ? "NaN" : String(i * 1.5));
    const lines = ["# TYPE raw_test gauge"];
    times.forEach((t, i) => lines.push(`raw_test{pod="p1"} ${value(i)} ${t / 1000}`));
    times.forEach((t, i) => lines.push(`raw_test{pod="p0"} ${i} ${t / 1000}`));
    lines.push("# EOF\n");
    const om = join(work, "raw.om");
    await Deno.writeTextFile(om, lines.join("\n"));
    const dataDir = join(work, "data");
    await backfill([om], dataDir);
    server = await startPrometheus({ dataDir });
    const client = new ThanosClient({ url: server.url });
    try {
      const store = await fetchRaw(client, {
        firstMs,
        lastMs,
        needs: [{ key: "raw_test", marginMs }],
      });
      const series = store.series("raw_test");
      assert.deepEqual(series.map((s) => s.metric), [
        { __name__: "raw_test", pod: "p0" },
        { __name__: "raw_test", pod: "p1" },
      ]);
      const range = rangeSeconds(firstMs, lastMs, marginMs) * 1000;
      const expected = times.filter((t) => t >= lastMs - range && t <= lastMs);
      const p1 = series[1]!;
      assert.deepEqual([...p1.t], expected);
      assert.ok(p1.t.includes(edgeMs), "the sample exactly at the left edge is present");
      for (let i = 0; i < p1.t.length; i++) {
        const k = times.indexOf(p1.t[i]!);
        if (k === 5) assert.ok(Number.isNaN(p1.v[i]));
        else assert.equal(p1.v[i], k * 1.5);
      }
      // The same over remote read: XOR chunks from the TSDB, cut to the same window.
      const needs = [{ key: "raw_test", marginMs, parts: { metric: "raw_test", matchers: [] } }];
      const read = await fetchRaw(client, {
        firstMs,
        lastMs,
        needs,
        remoteRead: { externalLabels: {} },
      });
      const byQuery = await fetchRaw(client, { firstMs, lastMs, needs });
      assert.equal(read.queries, 1);
      assert.equal(client.stats.queries, 3);
      const got = read.series("raw_test");
      assert.deepEqual(got.map((s) => s.metric), series.map((s) => s.metric));
      for (let i = 0; i < got.length; i++) {
        assert.deepEqual([...got[i]!.t], [...byQuery.series("raw_test")[i]!.t]);
        assert.deepEqual([...got[i]!.v], [...byQuery.series("raw_test")[i]!.v]);
      }
      assert.equal(read.samples, store.samples);
    } finally {
      client.close();
    }
  } finally {
    await server?.stop();
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("fetchRaw: selectors of one metric share one query; each gets its own series; hints and covers", async () => {
  const timeS = LAST_MS / 1000;
  const sel = (m: [string, "=" | "!=", string][], marginMs: number) => {
    const { key, parts } = canonicalSelector(
      "req",
      m.map(([name, op, value]) => ({ name, op, value })),
    );
    return { key, marginMs, parts };
  };
  const cost = sel(
    [["clusterID", "=", "c1"], ["resource", "=", "cpu"], ["node", "!=", ""]],
    300_000,
  );
  const ros = sel(
    [["clusterID", "=", "c1"], ["resource", "=", "cpu"], ["unit", "=", "core"]],
    900_000,
  );
  const mem = sel([["clusterID", "=", "c1"], ["resource", "=", "memory"]], 1_800_000);
  const series = (labels: Record<string, string>) => ({
    metric: { __name__: "req", clusterID: "c1", resource: "cpu", ...labels },
    values: [[timeS - 60, "1"]] as [number, string][],
  });
  await withServer(
    (seen) =>
      json(answer(
        selectorOf(seen.form) === 'req{clusterID="c1",resource="cpu"}'
          ? [
            series({ node: "n1", unit: "core", pod: "a" }),
            series({ unit: "core", pod: "b" }),
            series({ node: "n1", pod: "c" }),
          ]
          : [],
      )),
    async ({ url, seen }) => {
      const client = new ThanosClient({ url });
      try {
        const store = await fetchRaw(client, {
          firstMs: FIRST_MS,
          lastMs: LAST_MS,
          needs: [cost],
          hints: [ros, mem],
          clusterId: "c1",
        });
        // One query for cost and the ROS hint, at the hint's margin; the memory hint is not fetched.
        assert.deepEqual(seen.map((s) => s.form.get("query")), [
          `req{clusterID="c1",resource="cpu"}[${3540 + 900 + 60}s]`,
        ]);
        assert.deepEqual(store.series(cost.key).map((s) => s.metric.pod), ["a", "c"]);
        assert.deepEqual(store.series(ros.key).map((s) => s.metric.pod), ["a", "b"]);
        assert.equal(store.series(ros.key), store.series(ros.key)); // cut once
        assert.equal(store.covers(ros.key, 900_000), true);
        assert.equal(store.covers(ros.key, 900_001), false);
        assert.equal(store.covers(mem.key, 0), false);
        assert.throws(() => store.series(mem.key), RangeError);
        assert.equal(store.queries, 1);
        assert.equal(store.seriesCount, 3);
      } finally {
        client.close();
      }
    },
  );
});

/** One series of a fake remote read: labels and samples, cut into XOR chunks of `per` samples. */
function readSeries(
  labels: Record<string, string>,
  t: number[],
  v: number[],
  per = 3,
  stale: ReadonlySet<number> = new Set(),
): ReadSeries {
  const chunks: ReadChunk[] = [];
  for (let i = 0; i < t.length; i += per) {
    const ct = t.slice(i, i + per), cv = v.slice(i, i + per);
    const marks = new Set([...stale].filter((k) => k >= i && k < i + per).map((k) => k - i));
    chunks.push({
      minMs: ct[0]!,
      maxMs: ct.at(-1)!,
      type: CHUNK_XOR,
      data: encodeXorChunk(ct, cv, marks),
    });
  }
  return { labels: Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)), chunks };
}

/** A fake client: remote reads answered by `answer`, instant queries refused. */
function fakeReader(
  answer: (q: RawReadQuery, attempt: number) => ReadSeries[] | Error,
): InstantQuerier & RemoteReader & { reads: RawReadQuery[] } {
  const reads: RawReadQuery[] = [];
  return {
    reads,
    queryInstant() {
      return Promise.reject(new Error("instant query sent"));
    },
    async readRaw(q, onSeries, _signal, onRetry) {
      reads.push(q);
      for (let attempt = 1;; attempt++) {
        const got = answer(q, attempt);
        if (got instanceof Error) {
          await Promise.resolve();
          onRetry?.();
          continue;
        }
        for (const s of got) onSeries(s);
        return {};
      }
    },
  };
}

const POD = "kube_pod_info";
const POD_PARTS = {
  metric: POD,
  matchers: [{ name: "clusterID", op: "=" as const, value: "c1" }],
};

Deno.test("fetchRaw over remote read: matchers and range sent; window, stale markers, external labels, histograms and empty series handled", async () => {
  const lo = LAST_MS - rangeSeconds(FIRST_MS, LAST_MS, 300_000) * 1000;
  const client = fakeReader((q) => {
    if (q.matchers[0]!.value !== POD) return [];
    return [
      // Samples before, at and after the window's edges; a stale marker; a plain NaN.
      readSeries(
        { __name__: POD, clusterID: "c1", pod: "p2", replica: "a" },
        [lo - 60_000, lo, lo + 60_000, lo + 120_000, LAST_MS, LAST_MS + 60_000],
        [1, 2, 0, NaN, 5, 6],
        3,
        new Set([2]), // a staleness marker at lo + 60 s
      ),
      // A series whose samples all lie outside the window: not listed.
      readSeries({ __name__: POD, clusterID: "c1", pod: "p3", replica: "a" }, [lo - 1], [1]),
      // A native histogram chunk is skipped; its float chunk kept.
      {
        labels: [["__name__", POD], ["clusterID", "c1"], ["pod", "p1"], ["replica", "b"]],
        chunks: [
          { minMs: lo, maxMs: lo, type: 2, data: new Uint8Array([0, 1, 9, 9]) },
          ...readSeries({}, [LAST_MS - 30_000], [0.25]).chunks,
        ],
      },
    ];
  });
  const key = canonicalSelector(POD, POD_PARTS.matchers).key;
  const store = await fetchRaw(client, {
    firstMs: FIRST_MS,
    lastMs: LAST_MS,
    needs: [{ key, marginMs: 300_000, parts: POD_PARTS }],
    remoteRead: { externalLabels: { replica: "a" } },
  });
  assert.deepEqual(client.reads.map((q) => [q.startMs, q.endMs, q.matchers]), [[
    lo,
    LAST_MS,
    [{ name: "__name__", op: "=", value: POD }, { name: "clusterID", op: "=", value: "c1" }],
  ]]);
  const series = store.series(key);
  // replica="a" is the server's external label: removed; replica="b" is the series' own.
  assert.deepEqual(series.map((s) => s.metric), [
    { __name__: POD, clusterID: "c1", pod: "p1", replica: "b" },
    { __name__: POD, clusterID: "c1", pod: "p2" },
  ]);
  assert.deepEqual([...series[0]!.t], [LAST_MS - 30_000]);
  assert.deepEqual([...series[1]!.t], [lo, lo + 120_000, LAST_MS]);
  assert.deepEqual([...series[1]!.v].map(String), ["2", "NaN", "5"]);
  assert.equal(store.samples, 4);
  assert.equal(store.queries, 1);
});

Deno.test("fetchRaw over remote read: the same store as instant queries for the same samples", async () => {
  const lo = LAST_MS - rangeSeconds(FIRST_MS, LAST_MS, 300_000) * 1000;
  const data = [
    { metric: { __name__: POD, clusterID: "c1", pod: "b" }, t: [lo, lo + 90_000, LAST_MS] },
    { metric: { __name__: POD, clusterID: "c1", pod: "a" }, t: [lo + 1, LAST_MS - 1] },
  ];
  const reader = fakeReader(() =>
    data.map((d) => readSeries(d.metric, d.t, d.t.map((x, i) => i * 0.1 + x / 1e12)))
  );
  const querier: InstantQuerier = {
    queryInstant(_q, onSeries) {
      for (const d of data) {
        onSeries({
          metric: { ...d.metric },
          values: d.t.map((x, i) => [x / 1000, String(i * 0.1 + x / 1e12)] as [number, string]),
        });
      }
      return Promise.resolve({});
    },
  };
  const key = canonicalSelector(POD, POD_PARTS.matchers).key;
  const request = {
    firstMs: FIRST_MS,
    lastMs: LAST_MS,
    needs: [{ key, marginMs: 300_000, parts: POD_PARTS }],
  };
  const a = await fetchRaw(reader, { ...request, remoteRead: { externalLabels: {} } });
  const b = await fetchRaw(querier, request);
  assert.equal(reader.reads.length, 1);
  const flat = (s: readonly RawSeries[]) =>
    s.map((x) => ({ metric: x.metric, t: [...x.t], v: [...x.v] }));
  assert.deepEqual(flat(a.series(key)), flat(b.series(key)));
  assert.equal(a.samples, b.samples);
  assert.equal(a.seriesCount, b.seriesCount);
});

Deno.test("fetchRaw over remote read: bad series are refused with thanos_parse; a retry drops the failed attempt; no parts: an instant query", async () => {
  const key = canonicalSelector(POD, POD_PARTS.matchers).key;
  const request = (answer: ReadSeries[]) =>
    fetchRaw(fakeReader(() => answer), {
      firstMs: FIRST_MS,
      lastMs: LAST_MS,
      needs: [{ key, marginMs: 300_000, parts: POD_PARTS }],
      remoteRead: { externalLabels: {} },
      clusterId: "c1",
    });
  const refused = async (answer: ReadSeries[], pattern: RegExp) => {
    await assert.rejects(request(answer), (e: unknown) => {
      assert.ok(e instanceof BridgeError);
      assert.equal(e.code, "thanos_parse");
      assert.match(e.message, /kube_pod_info\{clusterID="c1"\} \(cluster c1\)/);
      assert.match(e.message, pattern);
      return true;
    });
  };
  const t = LAST_MS - 120_000;
  // Chunks out of order: not ascending across chunks.
  const twoChunks = readSeries({ pod: "p" }, [t, t + 60_000], [1, 2], 1);
  await refused(
    [{ labels: twoChunks.labels, chunks: [twoChunks.chunks[1]!, twoChunks.chunks[0]!] }],
    /not strictly ascending/,
  );
  await refused(
    [readSeries({ pod: "p" }, [t], [1]), readSeries({ pod: "p" }, [t + 1], [1])],
    /comes twice in one answer/,
  );
  await refused(
    [{
      labels: [["pod", "p"]],
      chunks: [{ minMs: t, maxMs: t, type: CHUNK_XOR, data: new Uint8Array([0, 5, 1]) }],
    }],
    /has a bad chunk: malformed XOR chunk/,
  );
  await refused(
    [{ labels: [["pod", "p"], ["pod", "q"]], chunks: [] }],
    /has label "pod" twice/,
  );

  // A failed attempt's series are dropped on the retry.
  const retried = fakeReader((_q, attempt) =>
    attempt === 1 ? new Error("HTTP 503") : [readSeries({ pod: "ok" }, [t], [1])]
  );
  const flaky = fakeReader((_q, attempt) => {
    if (attempt === 2) return [readSeries({ pod: "ok" }, [t], [1])];
    return new Error("HTTP 503");
  });
  for (const client of [retried, flaky]) {
    const store = await fetchRaw(client, {
      firstMs: FIRST_MS,
      lastMs: LAST_MS,
      needs: [{ key, marginMs: 300_000, parts: POD_PARTS }],
      remoteRead: { externalLabels: {} },
    });
    assert.deepEqual(store.series(key).map((s) => s.metric), [{ pod: "ok" }]);
  }

  // A selector whose parts are unknown goes as an instant query, even with remote reads on.
  const sent: string[] = [];
  const mixed: InstantQuerier & RemoteReader = {
    queryInstant(q) {
      sent.push(q.query);
      return Promise.resolve({});
    },
    readRaw() {
      return Promise.reject(new Error("remote read sent"));
    },
  };
  await fetchRaw(mixed, {
    firstMs: FIRST_MS,
    lastMs: LAST_MS,
    needs: [{ key: KEY_B, marginMs: 0 }],
    remoteRead: { externalLabels: {} },
  });
  assert.deepEqual(sent, [`${KEY_B}[${rangeSeconds(FIRST_MS, LAST_MS, 0)}s]`]);
});

Deno.test("fetchRaw: shared timestamp runs and constant values read back exactly; −0, NaN and near misses are not shared", async () => {
  const s = (pod: string, values: [number, string][]): StreamedSeries => ({
    metric: { pod },
    values,
  });
  const at = (k: number) => (LAST_MS - (9 - k) * 300_000) / 1000; // a grid of 10 points
  const grid = (from: number, to: number, value: (k: number) => string) =>
    Array.from({ length: to - from }, (_, i): [number, string] => [at(from + i), value(from + i)]);
  const given = [
    s("a-full", grid(0, 10, (k) => String(k))),
    s("b-late", grid(4, 10, () => "1")), // a run inside a-full's, constant 1
    s("c-early", grid(0, 3, () => "1")), // another run, a shorter constant 1
    s("d-long1", grid(0, 10, () => "1")), // a longer constant 1: stored, then shared
    s("e-one", grid(2, 8, () => "1")),
    s("f-zero", grid(0, 5, () => "0")),
    s("g-negzero", grid(0, 5, () => "-0")), // −0 is printed apart from 0: never shared with it
    s("h-mixed", [[at(0), "0"], [at(1), "-0"]]),
    s("i-nan", grid(0, 4, () => "NaN")),
    s("j-nan", grid(0, 4, () => "NaN")),
    s("k-offgrid", [[at(1) + 0.001, "2"], [at(2), "2"]]), // not a run of the grid
  ];
  const store = await fetchRaw(fakeClient(() => [given]), {
    firstMs: LAST_MS,
    lastMs: LAST_MS,
    needs: [{ key: KEY_A, marginMs: 3_000_000 }],
  });
  const got = new Map(store.series(KEY_A).map((x) => [x.metric.pod!, x]));
  for (const g of given) {
    const x = got.get(g.metric.pod!)!;
    assert.deepEqual([...x.t], g.values.map(([t]) => Math.round(t * 1000)), g.metric.pod!);
    const want = g.values.map(([, v]) => Number(v));
    assert.equal(x.v.length, want.length, g.metric.pod!);
    want.forEach((w, i) => assert.ok(Object.is(x.v[i], w), `${g.metric.pod} ${i}: ${x.v[i]}`));
  }
  // Timestamps: a-full's run, and k-offgrid's and h-mixed's own (h-mixed's is inside a-full's).
  const tSlots = new Set(store.series(KEY_A).map((x) => x.t.buffer)).values().reduce(
    (n, b) => n + b.byteLength / 8,
    0,
  );
  assert.equal(tSlots, 10 + 2);
  assert.equal(got.get("b-late")!.t.buffer, got.get("a-full")!.t.buffer);
  assert.equal(got.get("e-one")!.t.byteOffset, 2 * 8);
  // Values: constant 1 stored twice (b-late's 6, then d-long1's longer 10; c-early and e-one
  // share them); 0 once; −0, the mixed series, NaN and k-offgrid's 2 each their own.
  const vSlots = new Set(store.series(KEY_A).map((x) => x.v.buffer)).values().reduce(
    (n, b) => n + b.byteLength / 8,
    0,
  );
  assert.equal(vSlots, 10 + 6 + 10 + 5 + 5 + 2 + 4 + 4 + 2);
  assert.equal(got.get("e-one")!.v.buffer, got.get("d-long1")!.v.buffer);
  assert.equal(got.get("e-one")!.v.byteOffset, got.get("d-long1")!.v.byteOffset);
  // Equal spans share one view.
  assert.equal(got.get("d-long1")!.t, got.get("a-full")!.t);
  assert.equal(store.samples, given.reduce((n, g) => n + g.values.length, 0));
  store.release();
});

Deno.test("fetchRaw: labels kept as sorted arrays, name lists shared across series and selectors, empty values left out for the evaluator", async () => {
  const one = (metric: Record<string, string>): StreamedSeries => ({
    metric,
    values: samples(1, 1),
  });
  const store = await fetchRaw(
    fakeClient((key) =>
      key === KEY_A
        ? [[
          one({ pod: "p2", namespace: "n", __name__: "m" }),
          one({ __name__: "m", pod: "p1", namespace: "n" }),
        ]]
        : [[
          one({ namespace: "n", pod: "p3", __name__: "m" }),
          one({ __name__: "m", pod: "p4", z: "" }),
        ]]
    ),
    {
      firstMs: LAST_MS,
      lastMs: LAST_MS,
      needs: [{ key: KEY_A, marginMs: 0 }, { key: KEY_B, marginMs: 0 }],
    },
  );
  const [p1, p2] = store.series(KEY_A);
  const [p3, p4] = store.series(KEY_B);
  assert.deepEqual(p1!.names, ["__name__", "namespace", "pod"]);
  assert.deepEqual(p1!.values, ["m", "n", "p1"]);
  assert.deepEqual(p2!.values, ["m", "n", "p2"]);
  assert.equal(p1!.names, p2!.names); // one list for equal names
  assert.equal(p1!.names, p3!.names); // across selectors of the call too
  assert.deepEqual(p1!.metric, { __name__: "m", namespace: "n", pod: "p1" });
  // An empty value is in `metric` (as the server gave it) but not in the evaluator's arrays.
  assert.deepEqual(p4!.metric, { __name__: "m", pod: "p4", z: "" });
  assert.deepEqual(p4!.names, ["__name__", "pod"]);
  assert.deepEqual(p4!.values, ["m", "p4"]);
  store.release();
});
