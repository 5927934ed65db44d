import assert from "node:assert/strict";
import { recordingFetch } from "../src/thanos/recording.ts";
import { ThanosClient } from "../src/thanos/thanos_client.ts";
import { downloadFloor, readRecordedRequests } from "./download_floor.ts";

/** The answer to `query`: one series of 50 points per character of the query. */
function answerText(query: string): string {
  const points = Array.from({ length: query.length * 50 }, (_, i) => `[${i},"${i}"]`);
  return `{"status":"success","data":{"resultType":"matrix","result":[` +
    `{"metric":{"q":${JSON.stringify(query)}},"values":[${points.join(",")}]}]}}`;
}

interface Seen {
  path: string;
  contentType: string | null;
  acceptEncoding: string | null;
  form: Record<string, string>;
}

/**
 * A loopback stand-in for Prometheus: answers every query_range with a matrix
 * whose size depends on the query, streamed in slow chunks so that requests
 * overlap; records what it saw and the largest number of requests in flight.
 */
async function withServer(
  fn: (url: string, seen: Seen[], stats: { maxInFlight: number }) => Promise<void>,
  options: { failQuery?: string } = {},
) {
  const seen: Seen[] = [];
  const stats = { maxInFlight: 0 };
  let inFlight = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const form = Object.fromEntries(new URLSearchParams(await req.text()));
    seen.push({
      path: new URL(req.url).pathname,
      contentType: req.headers.get("content-type"),
      acceptEncoding: req.headers.get("accept-encoding"),
      form,
    });
    if (form.query === options.failQuery) {
      return new Response('{"status":"error","error":"bad"}', { status: 422 });
    }
    inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, inFlight);
    const bytes = new TextEncoder().encode(answerText(form.query ?? ""));
    let at = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await new Promise((r) => setTimeout(r, 5));
        if (at >= bytes.length) {
          inFlight--;
          controller.close();
          return;
        }
        controller.enqueue(bytes.slice(at, at + 4096));
        at += 4096;
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, seen, stats);
  } finally {
    await server.shutdown();
  }
}

function answerSize(query: string): number {
  return new TextEncoder().encode(answerText(query)).length;
}

Deno.test("downloadFloor posts the bridge's form, reads every body, at the given concurrency", async () => {
  await withServer(async (url, seen, stats) => {
    const requests = Array.from({ length: 11 }, (_, i) => ({
      query: `sum(up{job="j${"x".repeat(i)}"})`,
      start: 1793491200 + i * 3600,
      end: 1793491200 + i * 3600 + 3599,
      step: 60,
    }));
    const result = await downloadFloor(`${url}/`, requests, { concurrency: 4 });
    assert.equal(result.requests, 11);
    // Every byte of every body, also when four bodies are read at once.
    assert.equal(result.bytes, requests.reduce((n, r) => n + answerSize(r.query), 0));
    assert.ok(result.ms > 0);
    assert.equal(stats.maxInFlight, 4);
    assert.equal(seen.length, 11);
    // Each request sent exactly once (bodies may arrive out of order when four are in flight).
    assert.deepEqual(seen.map((s) => s.form.query).sort(), requests.map((r) => r.query).sort());
    for (const s of seen) {
      const r = requests.find((r) => r.query === s.form.query)!;
      assert.equal(s.path, "/api/v1/query_range");
      assert.equal(s.contentType, "application/x-www-form-urlencoded");
      // Uncompressed, as the bridge asks by default.
      assert.equal(s.acceptEncoding, "identity");
      assert.deepEqual(Object.keys(s.form), [
        "query",
        "start",
        "end",
        "step",
        "partial_response",
        "dedup",
      ]);
      assert.equal(s.form.partial_response, "false");
      assert.equal(s.form.dedup, "true");
      assert.equal(s.form.start, String(r.start));
      assert.equal(s.form.end, String(r.end));
      assert.equal(s.form.step, "60");
    }
  });
});

Deno.test("downloadFloor sends instant queries to /api/v1/query with the bridge's form", async () => {
  await withServer(async (url, seen) => {
    const requests = [
      { query: "raw_a[3720s]", time: 1793494799 },
      { query: "range_b", start: 0, end: 3540, step: 60 },
      { query: "raw_cc[3720s]", time: 1793498399 },
    ];
    const result = await downloadFloor(`${url}/prefix`, requests, { concurrency: 1 });
    assert.equal(result.requests, 3);
    assert.equal(result.bytes, requests.reduce((n, r) => n + answerSize(r.query), 0));
    assert.deepEqual(seen.map((s) => [s.path, s.form]), [
      ["/prefix/api/v1/query", {
        query: "raw_a[3720s]",
        time: "1793494799",
        partial_response: "false",
        dedup: "true",
      }],
      ["/prefix/api/v1/query_range", {
        query: "range_b",
        start: "0",
        end: "3540",
        step: "60",
        partial_response: "false",
        dedup: "true",
      }],
      ["/prefix/api/v1/query", {
        query: "raw_cc[3720s]",
        time: "1793498399",
        partial_response: "false",
        dedup: "true",
      }],
    ]);
    for (const s of seen) assert.equal(s.contentType, "application/x-www-form-urlencoded");
  });
});

Deno.test("downloadFloor with concurrency 1 sends one request at a time", async () => {
  await withServer(async (url, _seen, stats) => {
    const requests = ["a", "bb", "ccc"].map((q) => ({ query: q, start: 0, end: 3540, step: 60 }));
    const result = await downloadFloor(url, requests, { concurrency: 1 });
    assert.equal(stats.maxInFlight, 1);
    assert.equal(result.bytes, answerSize("a") + answerSize("bb") + answerSize("ccc"));
  });
});

Deno.test("downloadFloor fails on a non-2xx answer, naming the query and status", async () => {
  await withServer(async (url) => {
    const requests = ["ok1", "broken", "ok2"].map((q) => ({
      query: q,
      start: 0,
      end: 3540,
      step: 60,
    }));
    await assert.rejects(
      downloadFloor(url, requests, { concurrency: 1 }),
      (e: Error) => /HTTP 422/.test(e.message) && /"broken"/.test(e.message),
    );
  }, { failQuery: "broken" });
  await assert.rejects(downloadFloor("http://127.0.0.1:1", [], { concurrency: 0 }), RangeError);
});

Deno.test("readRecordedRequests reads a real recording: distinct keys in first-seen order", async () => {
  const dir = await Deno.makeTempDir({ prefix: "floor_rec_" });
  try {
    await withServer(async (url, seen) => {
      const client = new ThanosClient({ url, fetch: recordingFetch(dir), concurrency: 1 });
      try {
        const queries = [
          { query: "q_one", start: 100, end: 3699, step: 60 },
          { query: "q_two", start: 3699, end: 7299, step: 3600 },
          { query: "q_one", start: 100, end: 3699, step: 60 }, // a repeat: same key
        ];
        for (const q of queries) await client.queryRange(q, () => {});
        // Instant queries (local mode's raw fetches) are recorded too, keyed by their time.
        await client.queryInstant({ query: "raw_three[3720s]", time: 3699 }, () => {});
        await client.queryInstant({ query: "raw_three[3720s]", time: 7299 }, () => {});
        await client.queryInstant({ query: "raw_three[3720s]", time: 3699 }, () => {}); // repeat
      } finally {
        client.close();
      }
      const rec = await readRecordedRequests(`${dir}/index.jsonl`);
      assert.equal(rec.lines, 6);
      assert.equal(rec.duplicates, 2);
      assert.deepEqual(rec.requests, [
        { query: "q_one", start: 100, end: 3699, step: 60 },
        { query: "q_two", start: 3699, end: 7299, step: 3600 },
        { query: "raw_three[3720s]", time: 3699 },
        { query: "raw_three[3720s]", time: 7299 },
      ]);
      assert.equal(
        rec.bytes,
        answerSize("q_one") + answerSize("q_two") + 2 * answerSize("raw_three[3720s]"),
      );
      // Replaying the recording downloads exactly the recorded bytes, each from its endpoint.
      const before = seen.length;
      const floor = await downloadFloor(url, rec.requests, { concurrency: 1 });
      assert.equal(floor.bytes, rec.bytes);
      assert.deepEqual(seen.slice(before).map((s) => [s.path, s.form.time ?? s.form.step]), [
        ["/api/v1/query_range", "60"],
        ["/api/v1/query_range", "3600"],
        ["/api/v1/query", "3699"],
        ["/api/v1/query", "7299"],
      ]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readRecordedRequests: last line of a key gives its size; bad lines are named", async () => {
  const dir = await Deno.makeTempDir({ prefix: "floor_idx_" });
  try {
    const line = (key: string, query: string, bytes: number) =>
      JSON.stringify({ key, query, start: 1, end: 2, step: 60, bytes });
    const path = `${dir}/index.jsonl`;
    // Blank lines are skipped; the last line has no newline.
    await Deno.writeTextFile(
      path,
      [line("k1", "a", 10), "", line("k2", "b", 20), line("k1", "a", 15)].join("\n"),
    );
    const rec = await readRecordedRequests(path);
    assert.deepEqual(rec.requests.map((r) => r.query), ["a", "b"]);
    assert.equal(rec.bytes, 35);
    assert.equal(rec.lines, 3);

    await Deno.writeTextFile(path, line("k1", "a", 1) + "\n{oops\n");
    await assert.rejects(
      readRecordedRequests(path),
      (e: Error) => e instanceof SyntaxError && e.message.includes("index.jsonl:2"),
    );
    await Deno.writeTextFile(path, JSON.stringify({ key: "k", query: "a" }) + "\n");
    await assert.rejects(readRecordedRequests(path), TypeError);
    // Instant lines ({key, query, time, bytes}) mix with range lines (no `time`).
    await Deno.writeTextFile(
      path,
      [
        line("k1", "a", 10),
        JSON.stringify({ key: "k2", query: "b[1h]", time: 3600, bytes: 7 }),
        JSON.stringify({ key: "k2", query: "b[1h]", time: 3600, bytes: 8 }),
      ].join("\n") + "\n",
    );
    const mixed = await readRecordedRequests(path);
    assert.deepEqual(mixed.requests, [
      { query: "a", start: 1, end: 2, step: 60 },
      { query: "b[1h]", time: 3600 },
    ]);
    assert.equal(mixed.bytes, 18);
    assert.equal(mixed.duplicates, 1);
    // A line that is neither kind (a time that is not a number, or time and step both) is named.
    for (const bad of [{ time: "3600" }, { time: 3600, start: 1, end: 2, step: 60 }]) {
      await Deno.writeTextFile(path, JSON.stringify({ key: "k", query: "a", bytes: 1, ...bad }));
      await assert.rejects(
        readRecordedRequests(path),
        (e: Error) => e instanceof TypeError && e.message.includes("index.jsonl:1"),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
