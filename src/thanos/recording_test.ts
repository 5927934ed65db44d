import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import {
  ByteScrubber,
  canonicalRequest,
  recordingFetch,
  type RecordingIndexEntry,
  recordingKey,
  replayFetch,
} from "./recording.ts";
import {
  type InstantQuery,
  type QueryErrorCause,
  type RangeQuery,
  type Series,
  ThanosClient,
} from "./thanos_client.ts";

const TOKEN = "rec-token-7c1e-do-not-store";

function seriesFor(query: string): Series[] {
  return [
    { metric: { query, pod: 'p-ü "1"' }, values: [[1_793_491_200, "1"], [1_793_491_260, "2"]] },
    { metric: { query, pod: "p2" }, values: [[1_793_491_200, "0.5"]] },
  ];
}

function answerFor(query: string): string {
  return JSON.stringify({
    status: "success",
    data: { resultType: "matrix", result: seriesFor(query) },
  });
}

function rangeOf(query: string): RangeQuery {
  return { query, start: 1_793_491_200, end: 1_793_494_799, step: 60 };
}

/** A body in small chunks; with `stallAfter`, it hangs after that many bytes until `stop`. */
function chunked(
  text: string,
  stallAfter?: number,
  stop?: AbortSignal,
): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (stallAfter !== undefined && at >= stallAfter) {
        await new Promise<void>((resolve) => {
          if (stop?.aborted) resolve();
          stop?.addEventListener("abort", () => resolve(), { once: true });
        });
        c.close();
        return;
      }
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + 5));
      at += 5;
    },
  });
}

async function withServer(
  handler: (form: URLSearchParams, n: number, stop: AbortSignal, path: string) => Response,
  fn: (url: string) => Promise<void>,
): Promise<void> {
  const stopper = new AbortController();
  let n = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const form = new URLSearchParams(await req.text());
    return handler(form, ++n, stopper.signal, new URL(req.url).pathname);
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    stopper.abort();
    await server.shutdown();
  }
}

async function readIndex(dir: string): Promise<RecordingIndexEntry[]> {
  const text = await Deno.readTextFile(`${dir}/index.jsonl`);
  assert.ok(text.endsWith("\n"));
  return text.trimEnd().split("\n").map((line) => JSON.parse(line));
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

const fast = { baseDelayMs: 1, maxDelayMs: 1, sleep: () => Promise.resolve() };

Deno.test("record then replay gives the same series, for any URL, without headers on disk", async () => {
  const dir = await Deno.makeTempDir({ prefix: "recording_test_" });
  try {
    const queries = ["sum(rate(a[15m]))", 'kube_pod_labels{clusterID="c1"}'];
    const recorded = new Map<string, Series[]>();
    await withServer(
      (form) => new Response(chunked(answerFor(form.get("query") ?? ""))),
      async (url) => {
        const client = new ThanosClient({
          url: `${url}/thanos`,
          token: TOKEN,
          headers: { "X-Tenant": "t1" },
          fetch: recordingFetch(dir),
          ...fast,
        });
        for (const query of queries) {
          const got: Series[] = [];
          await client.queryRange(rangeOf(query), (s) => got.push(s));
          assert.deepEqual(got, seriesFor(query));
          recorded.set(query, got);
        }
      },
    );

    const index = await readIndex(dir);
    assert.equal(index.length, 2);
    for (const [i, query] of queries.entries()) {
      const entry = index[i] as RecordingIndexEntry;
      const body = answerFor(query);
      assert.deepEqual(entry, {
        key: entry.key,
        query,
        start: 1_793_491_200,
        end: 1_793_494_799,
        step: 60,
        bytes: new TextEncoder().encode(body).byteLength,
      });
      // Key = SHA-256 of the canonical request, computed independently here.
      const canonical = `/api/v1/query_range?${new URLSearchParams({
        query,
        start: "1793491200",
        end: "1793494799",
        step: "60",
      })}`;
      assert.equal(
        canonicalRequest({ query, start: "1793491200", end: "1793494799", step: "60" }),
        canonical,
      );
      assert.equal(entry.key, createHash("sha256").update(canonical).digest("hex"));
      const stored = await Deno.readFile(`${dir}/${entry.key}.json.gz`);
      assert.equal(new TextDecoder().decode(gunzipSync(stored)), body);
    }
    assert.deepEqual(
      await listDir(dir),
      [...index.map((e) => `${e.key}.json.gz`), "index.jsonl"].sort(),
    );
    // No request header (token, tenant) is stored anywhere, compressed or not.
    for (const name of await listDir(dir)) {
      const raw = await Deno.readFile(`${dir}/${name}`);
      const text = new TextDecoder().decode(name.endsWith(".gz") ? gunzipSync(raw) : raw);
      assert.ok(!text.includes(TOKEN) && !text.includes('t1"'), name);
    }

    // Replay against another URL: same series, no network.
    const replay = new ThanosClient({
      url: "http://replay.invalid:1/other/",
      fetch: replayFetch(dir),
    });
    for (const query of queries) {
      const got: Series[] = [];
      const stats = await replay.queryRange(rangeOf(query), (s) => got.push(s));
      assert.deepEqual(got, recorded.get(query));
      assert.equal(stats.bytes, index.find((e) => e.query === query)?.bytes);
    }

    // A request that was never recorded fails at once, naming the query.
    const missing: string[] = [];
    const strict = new ThanosClient({
      url: "http://replay.invalid",
      fetch: replayFetch(dir, { onMissing: (r) => missing.push(r.query) }),
      ...fast,
    });
    await assert.rejects(strict.queryRange(rangeOf("not_recorded_metric"), () => {}), (error) => {
      assert.ok(error instanceof Error);
      assert.match(error.message, /not_recorded_metric/);
      assert.match(error.message, /HTTP 404.*not_found: no recorded answer in/);
      const cause = error.cause as QueryErrorCause;
      assert.equal(cause.attempts, 1);
      assert.equal(cause.retryable, false);
      return true;
    });
    // Same query, another window: also missing.
    await assert.rejects(
      strict.queryRange({ ...rangeOf(queries[0] as string), end: 1_793_494_800 }, () => {}),
      /no recorded answer/,
    );
    assert.deepEqual(missing, ["not_recorded_metric", queries[0]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function instantOf(query: string, time = 1_793_494_799): InstantQuery {
  return { query, time };
}

Deno.test("instant queries: recorded with their time, replayed, missed on another time", async () => {
  const dir = await Deno.makeTempDir({ prefix: "recording_instant_test_" });
  try {
    const raw = 'kube_pod_labels{clusterID="c1"}[3720s]';
    const range = "sum(rate(a[15m]))";
    const paths: string[] = [];
    await withServer(
      (form, _n, _stop, path) => {
        paths.push(path);
        return new Response(chunked(answerFor(form.get("query") ?? "")));
      },
      async (url) => {
        const client = new ThanosClient({
          url: `${url}/thanos`,
          token: TOKEN,
          fetch: recordingFetch(dir),
          concurrency: 1,
          ...fast,
        });
        try {
          const got: Series[] = [];
          await client.queryInstant(instantOf(raw), (s) => got.push(s));
          assert.deepEqual(got, seriesFor(raw)); // passed through unchanged
          await client.queryRange(rangeOf(range), () => {});
        } finally {
          client.close();
        }
      },
    );
    assert.deepEqual(paths, ["/thanos/api/v1/query", "/thanos/api/v1/query_range"]);

    // Instant line: {key, query, time, bytes}; the range line keeps its old shape (no `time`).
    const index = await readIndex(dir);
    assert.equal(index.length, 2);
    const [instant, ranged] = index as [RecordingIndexEntry, RecordingIndexEntry];
    assert.deepEqual(Object.keys(instant), ["key", "query", "time", "bytes"]);
    assert.deepEqual(instant, {
      key: instant.key,
      query: raw,
      time: 1_793_494_799,
      bytes: new TextEncoder().encode(answerFor(raw)).byteLength,
    });
    assert.deepEqual(Object.keys(ranged), ["key", "query", "start", "end", "step", "bytes"]);
    // Key = SHA-256 of `/api/v1/query?query=…&time=…`, computed independently here.
    const canonical = `/api/v1/query?${new URLSearchParams({ query: raw, time: "1793494799" })}`;
    assert.equal(canonicalRequest({ query: raw, time: "1793494799" }), canonical);
    assert.equal(instant.key, createHash("sha256").update(canonical).digest("hex"));
    assert.equal(instant.key, await recordingKey({ query: raw, time: "1793494799" }));
    const stored = await Deno.readFile(`${dir}/${instant.key}.json.gz`);
    assert.equal(new TextDecoder().decode(gunzipSync(stored)), answerFor(raw));
    for (const name of await listDir(dir)) {
      const bytes = await Deno.readFile(`${dir}/${name}`);
      const text = new TextDecoder().decode(name.endsWith(".gz") ? gunzipSync(bytes) : bytes);
      assert.ok(!text.includes(TOKEN), name);
    }

    // Replay against another URL: same series, both kinds.
    const missing: { query: string; time?: string | undefined; key: string }[] = [];
    const replay = new ThanosClient({
      url: "http://replay.invalid:1/other/",
      fetch: replayFetch(dir, {
        onMissing: (r, key) => missing.push({ query: r.query, time: r.time, key }),
      }),
      ...fast,
    });
    try {
      const got: Series[] = [];
      const stats = await replay.queryInstant(instantOf(raw), (s) => got.push(s));
      assert.deepEqual(got, seriesFor(raw));
      assert.equal(stats.bytes, instant.bytes);
      const rangeGot: Series[] = [];
      await replay.queryRange(rangeOf(range), (s) => rangeGot.push(s));
      assert.deepEqual(rangeGot, seriesFor(range));

      // Same query at another time: a miss at once, naming the query, its time and key.
      const otherKey = await recordingKey({ query: raw, time: "1793498399" });
      await assert.rejects(
        replay.queryInstant(instantOf(raw, 1_793_498_399), () => {}),
        (error) => {
          assert.ok(error instanceof Error);
          assert.match(error.message, /HTTP 404.*not_found: no recorded answer in/);
          assert.match(error.message, /instant query/);
          assert.match(error.message, /time=1793498399/);
          assert.ok(error.message.includes(otherKey), error.message);
          const cause = error.cause as QueryErrorCause;
          assert.equal(cause.status, 404);
          assert.equal(cause.errorType, "not_found");
          assert.equal(cause.attempts, 1);
          assert.equal(cause.retryable, false);
          return true;
        },
      );
      assert.deepEqual(missing, [{ query: raw, time: "1793498399", key: otherKey }]);
    } finally {
      replay.close();
    }

    // An instant request is not answered by a range recording of the same query, nor vice versa.
    const direct = replayFetch(dir);
    const asRange = await direct("http://c/api/v1/query_range", {
      method: "POST",
      body: new URLSearchParams({ query: raw, start: "1793494799", end: "1793494799", step: "60" }),
    });
    assert.equal(asRange.status, 404);
    await asRange.body?.cancel();
    const asInstant = await direct("http://c/api/v1/query", {
      method: "POST",
      body: new URLSearchParams({ query: range, time: "1793494799" }),
    });
    assert.equal(asInstant.status, 404);
    await asInstant.body?.cancel();
    // GET with a query string works too; dedup and partial_response are not in the key.
    const viaGet = await direct(
      `http://c/x/api/v1/query?${new URLSearchParams({ query: raw, time: "1793494799" })}`,
    );
    assert.equal(await viaGet.text(), answerFor(raw));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an instant query's token is scrubbed from its index line and key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "recording_instant_scrub_test_" });
  try {
    const body = answerFor("x");
    const record = recordingFetch(dir, () => Promise.resolve(new Response(body)));
    const res = await record("http://a/api/v1/query", {
      method: "POST",
      headers: { Authorization: `Bearer ${TOKEN}` },
      body: new URLSearchParams({ query: `up{x="${TOKEN}"}[1h]`, time: "60", dedup: "true" }),
    });
    assert.equal(await res.text(), body);
    const [entry] = await readIndex(dir);
    assert.deepEqual(entry, {
      key: await recordingKey({ query: 'up{x="[redacted]"}[1h]', time: "60" }),
      query: 'up{x="[redacted]"}[1h]',
      time: 60,
      bytes: new TextEncoder().encode(body).byteLength,
    });
    // Not recorded: an instant request without `time`.
    const untimed = await record("http://a/api/v1/query", {
      method: "POST",
      body: new URLSearchParams({ query: "up" }),
    });
    await untimed.body?.cancel();
    assert.equal((await readIndex(dir)).length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the key ignores host, prefix, dedup and partial_response", async () => {
  const base = { query: "up", start: "1", end: "2", step: "60" };
  const key = await recordingKey(base);
  assert.match(key, /^[0-9a-f]{64}$/);
  assert.notEqual(await recordingKey({ ...base, step: "30" }), key);
  assert.notEqual(await recordingKey({ ...base, query: "up " }), key);
  assert.notEqual(await recordingKey({ query: "up", time: "2" }), key);

  const dir = await Deno.makeTempDir({ prefix: "recording_key_test_" });
  try {
    const body = answerFor("up");
    const inner: typeof fetch = () => Promise.resolve(new Response(body));
    const record = recordingFetch(dir, inner);
    const form = new URLSearchParams({ ...base, dedup: "true", partial_response: "false" });
    const res = await record("http://a.example:9091/x/api/v1/query_range", {
      method: "POST",
      body: form,
    });
    assert.equal(await res.text(), body);
    // Replay with other non-key parameters, another host, and as a GET with a query string.
    const replay = replayFetch(dir);
    const viaPost = await replay("https://b.example/api/v1/query_range", {
      method: "POST",
      body: new URLSearchParams(base),
    });
    assert.equal(await viaPost.text(), body);
    const viaGet = await replay(`http://c/api/v1/query_range?${new URLSearchParams(base)}`);
    assert.equal(await viaGet.text(), body);
    const other = await replay("http://c/api/v1/query", {
      method: "POST",
      body: new URLSearchParams(base),
    });
    assert.equal(other.status, 404);
    await other.body?.cancel();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("failed, cancelled and non-2xx answers leave nothing behind", async () => {
  const dir = await Deno.makeTempDir({ prefix: "recording_fail_test_" });
  try {
    await withServer(
      (form, n, stop) => {
        const query = form.get("query") ?? "";
        if (query === "bad") return new Response("bad query", { status: 400 });
        // "stall": first answer hangs half-way (timeout), second is fine.
        if (query === "stall" && n === 2) return new Response(chunked(answerFor(query), 30, stop));
        return new Response(chunked(answerFor(query)));
      },
      async (url) => {
        const client = new ThanosClient({
          url,
          fetch: recordingFetch(dir),
          timeoutMs: 200,
          ...fast,
        });
        await assert.rejects(client.queryRange(rangeOf("bad"), () => {}), /HTTP 400/);
        let got: Series[] = [];
        const stats = await client.queryRange(
          rangeOf("stall"),
          (s) => got.push(s),
          undefined,
          () => {
            got = [];
          },
        );
        assert.equal(stats.attempts, 2);
        assert.deepEqual(got, seriesFor("stall"));
      },
    );
    const index = await readIndex(dir);
    assert.deepEqual(index.map((e) => e.query), ["stall"]);
    assert.deepEqual(await listDir(dir), [`${index[0]?.key}.json.gz`, "index.jsonl"].sort());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("concurrent recordings append whole index lines", async () => {
  const dir = await Deno.makeTempDir({ prefix: "recording_concurrent_test_" });
  try {
    const queries = Array.from(
      { length: 16 },
      (_, i) => `metric_${i}{long_label="${"x".repeat(i * 50)}"}`,
    );
    await withServer(
      (form) => new Response(chunked(answerFor(form.get("query") ?? ""))),
      async (url) => {
        const client = new ThanosClient({ url, fetch: recordingFetch(dir), concurrency: 8 });
        await Promise.all(queries.map((q) => client.queryRange(rangeOf(q), () => {})));
      },
    );
    const index = await readIndex(dir);
    assert.deepEqual(index.map((e) => e.query).sort(), [...queries].sort());
    const replay = new ThanosClient({
      url: "http://replay.invalid",
      fetch: replayFetch(dir),
      concurrency: 8,
    });
    await Promise.all(queries.map(async (q) => {
      const got: Series[] = [];
      await replay.queryRange(rangeOf(q), (s) => got.push(s));
      assert.deepEqual(got, seriesFor(q));
    }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rule 7: recordings never contain the token: bodies, index lines and keys are scrubbed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "recording_test_" });
  try {
    // The server echoes the token in a label value, in a warning-free answer, in 5-byte chunks
    // (so the token is split across chunks), and the query itself contains it.
    const query = `up{x="${TOKEN}"}`;
    const body = JSON.stringify({
      status: "success",
      data: {
        resultType: "matrix",
        result: [{ metric: { echo: TOKEN, esc: `\u0000${TOKEN}` }, values: [[1, "1"]] }],
      },
    });
    await withServer(
      () => new Response(chunked(body)),
      async (url) => {
        const client = new ThanosClient({ url, token: TOKEN, fetch: recordingFetch(dir), ...fast });
        const got: Series[] = [];
        await client.queryRange(rangeOf(query), (s) => got.push(s));
        // The caller still gets the answer as the server sent it.
        assert.equal(got[0]?.metric.echo, TOKEN);
      },
    );
    const names = await listDir(dir);
    assert.equal(names.length, 2);
    for (const name of names) {
      assert.ok(!name.includes(TOKEN));
      const raw = await Deno.readFile(`${dir}/${name}`);
      const text = new TextDecoder().decode(name.endsWith(".gz") ? gunzipSync(raw) : raw);
      assert.ok(!text.includes(TOKEN), `${name}: ${text}`);
      assert.ok(!text.includes(TOKEN.slice(0, TOKEN.length - 1)), name);
      assert.match(text, /\[redacted\]/);
    }
    const [entry] = await readIndex(dir);
    assert.equal(entry?.query, 'up{x="[redacted]"}');
    // The key is the hash of the scrubbed request, never of text holding the token.
    assert.equal(
      entry?.key,
      await recordingKey({
        query: entry!.query,
        start: "1793491200",
        end: "1793494799",
        step: "60",
      }),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rule 7: ByteScrubber removes a secret split anywhere across chunks", () => {
  const secret = "s3cr3t/tok";
  const text = `a${secret}b"${JSON.stringify(secret).slice(1, -1)}"${
    encodeURIComponent(secret)
  }${secret}`;
  const bytes = new TextEncoder().encode(text);
  for (let cut1 = 0; cut1 <= bytes.length; cut1 += 1) {
    for (const cut2 of [cut1, Math.min(bytes.length, cut1 + 3), bytes.length]) {
      const s = new ByteScrubber([secret]);
      const parts = [
        s.push(bytes.slice(0, cut1)),
        s.push(bytes.slice(cut1, cut2)),
        s.push(bytes.slice(cut2)),
        s.flush(),
      ];
      const out = parts.map((p) => new TextDecoder().decode(p)).join("");
      assert.equal(out, 'a[redacted]b"[redacted]"[redacted][redacted]', `${cut1}/${cut2}`);
    }
  }
});

Deno.test("a label lookup against a replay is answered as unknown (empty)", async () => {
  const client = new ThanosClient({
    url: "http://replay.invalid",
    fetch: replayFetch("/nonexistent"),
  });
  assert.deepEqual(await client.findLabelsWithValue("c1", "kube_node_info", 0, 3600), []);
});

Deno.test("the build info is recorded (token scrubbed) and replayed; without it a replay has no build info", async () => {
  const dir = await Deno.makeTempDir({ prefix: "recording_test_" });
  try {
    const info = { version: "2.42.0+ds", revision: TOKEN, branch: "debian" };
    await withServer(
      (_form, _n, _stop, path) =>
        path.endsWith("/api/v1/status/buildinfo")
          ? Response.json({ status: "success", data: info })
          : new Response("nope", { status: 404 }),
      async (url) => {
        const client = new ThanosClient({
          url,
          token: TOKEN,
          fetch: recordingFetch(dir),
          ...fast,
        });
        try {
          assert.deepEqual(await client.buildInfo(), info, "passed on unchanged");
        } finally {
          client.close();
        }
      },
    );
    const stored = await Deno.readTextFile(`${dir}/buildinfo.json`);
    assert.ok(!stored.includes(TOKEN), "the token is scrubbed");
    assert.deepEqual(await listDir(dir), ["buildinfo.json"], "no index line, no spool file");
    const replay = new ThanosClient({ url: "http://replay.invalid", fetch: replayFetch(dir) });
    assert.deepEqual(await replay.buildInfo(), { ...info, revision: "[redacted]" });
    replay.close();
    const none = new ThanosClient({ url: "http://replay.invalid", fetch: replayFetch(`${dir}/x`) });
    assert.equal(await none.buildInfo(), null, "a 404: the endpoint is unknown");
    none.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
