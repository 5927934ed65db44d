import assert from "node:assert/strict";
import { BridgeError } from "../model.ts";
import {
  type QueryCounter,
  type QueryErrorCause,
  type RangeQuery,
  ThanosClient,
  type ThanosClientOptions,
} from "./thanos_client.ts";

const EXPR = 'max by (node) (kube_node_status_allocatable{resource="cpu", clusterID="c-1"})';
const Q: RangeQuery = {
  query: EXPR,
  start: 1_793_502_000,
  end: 1_793_505_599,
  step: 60,
  id: "node-allocatable-cpu-cores",
  clusterId: "c-1",
  hours: "2026-11-01 03:00-03:59 UTC",
};
const NAMED = "query node-allocatable-cpu-cores (cluster c-1, 2026-11-01 03:00-03:59 UTC)";

const fast: Partial<ThanosClientOptions> = {
  baseDelayMs: 1,
  maxDelayMs: 1,
  sleep: () => Promise.resolve(),
};

const enc = new TextEncoder();

/** Runs `fn` against a loopback server whose answers come from `handler`. */
async function withServer(
  handler: (req: Request, stop: AbortSignal) => Response | Promise<Response>,
  fn: (url: string) => Promise<void>,
): Promise<void> {
  const stopper = new AbortController();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (req) => handler(req, stopper.signal),
  );
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    stopper.abort();
    await server.shutdown();
  }
}

/** A body made of `head`, then `pieces(i)` for i = 0, 1, … until it returns null, then `tail`. */
function generated(
  head: string,
  piece: (i: number) => string | null,
  tail: string,
): ReadableStream<Uint8Array> {
  let i = 0;
  let state: "head" | "body" | "done" = "head";
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (state === "head") {
        c.enqueue(enc.encode(head));
        state = "body";
        return;
      }
      if (state === "done") return c.close();
      // About 64 KiB per pull.
      let text = "";
      while (text.length < 65536) {
        const next = piece(i++);
        if (next === null) {
          text += tail;
          state = "done";
          break;
        }
        text += next;
      }
      c.enqueue(enc.encode(text));
    },
  });
}

const HEAD = '{"status":"success","data":{"resultType":"matrix","result":[';
const TAIL = "]}}";

function seriesText(i: number, extra = ""): string {
  return `${i === 0 ? "" : ","}{"metric":{"node":"n${i}"${extra}},"values":[[1793502000,"1"]]}`;
}

function expectError(
  code: string,
  patterns: RegExp[],
): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof BridgeError, String(error));
    assert.equal(error.code, code, error.message);
    assert.ok(error.message.startsWith(NAMED), error.message);
    assert.ok(!error.message.includes("kube_node_status_allocatable"), error.message);
    for (const p of patterns) assert.match(error.message, p);
    return true;
  };
}

Deno.test("rule 3: client errors name the query id, the cluster, the hours and the cause", async () => {
  const cases: [string, RegExp][] = [
    [
      `${HEAD}{"metric":{"node":"n1"},"values":[]},{"metric":{"node":"n2","pod":7},"values":[]}${TAIL}`,
      /series 2: label "pod" is not a string but number: "7"/,
    ],
    [
      `${HEAD}{"metric":{"node":"n1"},"values":[[1793502000,5]]}${TAIL}`,
      /series 1 has a sample that is not \[number, string\]: "\[1793502000,5\]"/,
    ],
    [
      `${HEAD}{"metric":{"node":"n1"},"values":[]},{"metric":{"node":"n2"},"values":[[1,"1"]}${TAIL}`,
      /series 2 is not valid JSON/,
    ],
    [`${HEAD}{"metric":{"node":"n1"},"values":[]}`, /ended early/],
  ];
  for (const [body, pattern] of cases) {
    await withServer(() => new Response(body), async (url) => {
      const client = new ThanosClient({ url, maxAttempts: 1 });
      await assert.rejects(
        client.queryRange(Q, () => {}),
        expectError(body.endsWith(TAIL) ? "thanos_parse" : "thanos_http", [pattern]),
      );
    });
  }
});

Deno.test("rule 4: each answer limit fails the query at once, naming the limit and its setting", async () => {
  // Each case: options, a body generator, the setting named, the limit's name.
  const cases: {
    options: Partial<ThanosClientOptions>;
    body: () => ReadableStream<Uint8Array>;
    setting: string;
    limit: string;
  }[] = [
    {
      // An answer of ~6 MB (generated while streamed), 2 MiB allowed.
      options: { maxAnswerBytes: 2 * 1024 * 1024 },
      body: () => generated(HEAD, (i) => i < 100_000 ? seriesText(i) : null, TAIL),
      setting: "--max-answer-mb",
      limit: "answer-bytes",
    },
    {
      // One series of ~20 MB of samples, streamed.
      options: { maxSeriesBytes: 64 * 1024 },
      body: () =>
        generated(
          `${HEAD}{"metric":{"node":"n"},"values":[`,
          (i) => i < 1_000_000 ? `${i === 0 ? "" : ","}[${1793502000 + i},"1"]` : null,
          `]}${TAIL}`,
        ),
      setting: "--max-series-kb",
      limit: "series-bytes",
    },
    {
      // A label value of 6,000 "é": 6,000 characters but 12,000 UTF-8 bytes.
      options: { maxLabelBytes: 10_000 },
      body: () =>
        generated(HEAD, (i) => i === 0 ? seriesText(0, `,"x":"${"é".repeat(6000)}"`) : null, TAIL),
      setting: "--max-label-kb",
      limit: "label-bytes",
    },
    {
      options: { maxSeries: 1000 },
      body: () => generated(HEAD, (i) => i < 1001 ? seriesText(i) : null, TAIL),
      setting: "--max-series",
      limit: "series-count",
    },
  ];
  for (const c of cases) {
    let requests = 0;
    await withServer(() => {
      requests++;
      return new Response(c.body());
    }, async (url) => {
      const client = new ThanosClient({ url, maxAttempts: 3, ...fast, ...c.options });
      await assert.rejects(client.queryRange(Q, () => {}), (error) => {
        expectError("thanos_limit", [new RegExp(c.setting)])(error);
        const cause = (error as BridgeError).cause as QueryErrorCause;
        assert.equal(cause.kind, "limit");
        assert.equal(cause.limit?.name, c.limit);
        assert.equal(cause.limit?.setting, c.setting);
        assert.equal(cause.retryable, false);
        return true;
      });
      assert.equal(requests, 1, `${c.limit}: not retried`);
    });
  }
  // At the limits exactly, answers pass.
  await withServer(
    () => new Response(generated(HEAD, (i) => i < 1000 ? seriesText(i) : null, TAIL)),
    async (url) => {
      const client = new ThanosClient({ url, maxSeries: 1000 });
      assert.equal((await client.queryRange(Q, () => {})).series, 1000);
    },
  );
  await withServer(
    () =>
      new Response(
        generated(HEAD, (i) => i === 0 ? seriesText(0, `,"x":"${"é".repeat(5000)}"`) : null, TAIL),
      ),
    async (url) => {
      const client = new ThanosClient({ url, maxLabelBytes: 10_000 });
      assert.equal((await client.queryRange(Q, () => {})).series, 1);
    },
  );
});

Deno.test("rule 4: the defaults fit the 512 MiB heap", () => {
  const client = new ThanosClient({ url: "http://127.0.0.1:1" });
  const l = client.limits;
  assert.deepEqual(l, {
    maxAnswerBytes: 256 * 1024 * 1024,
    maxSeriesBytes: 1024 * 1024,
    maxLabelBytes: 16 * 1024,
    maxSeries: 100_000,
  });
  client.close();
});

Deno.test("rule 4: answers of 300 MB do not crash a process with a 512 MiB heap", async () => {
  const child = new URL("./testdata/big_answer_child.ts", import.meta.url);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--allow-net=127.0.0.1",
      "--v8-flags=--max-old-space-size=512,--max-semi-space-size=4",
      child.pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, `${stdout}\n${new TextDecoder().decode(out.stderr)}`);
  const results = JSON.parse(stdout) as Record<
    string,
    { code?: string; message?: string; series?: number; bytes?: number }
  >;
  // Default limits: the 300 MB answer is refused at 256 MiB, the process lives on.
  assert.equal(results.defaults?.code, "thanos_limit", stdout);
  assert.match(results.defaults?.message ?? "", /--max-answer-mb/);
  // One 300 MB series: refused at the series limit, early.
  assert.equal(results.oneSeries?.code, "thanos_limit", stdout);
  assert.match(results.oneSeries?.message ?? "", /--max-series-kb/);
  // Limits raised: all 300 MB are parsed, one series at a time.
  assert.ok((results.raised?.bytes ?? 0) > 300_000_000, stdout);
  assert.ok((results.raised?.series ?? 0) > 200_000, stdout);
});

Deno.test("rule 7: the token is removed before any cut, and control characters are escaped", async () => {
  const token = "tok-5e1f0c9a-3b2d-very-secret-value";
  // 1. An error body where the 2,000-character cut falls inside the token.
  for (const at of [1990, 1980, 2000 - token.length + 1]) {
    await withServer(
      () => new Response("x".repeat(at) + token + " tail", { status: 400 }),
      async (url) => {
        const client = new ThanosClient({ url, token });
        await assert.rejects(client.queryRange(Q, () => {}), (error) => {
          assert.ok(error instanceof BridgeError);
          assert.ok(!error.message.includes(token.slice(0, 8)), error.message.slice(-80));
          return true;
        });
      },
    );
  }
  // 2. An error body longer than the 64 KiB read, cut inside the token.
  await withServer(
    () => new Response("y".repeat(65536 - 9) + token, { status: 500 }),
    async (url) => {
      const client = new ThanosClient({ url, token, maxAttempts: 1 });
      await assert.rejects(client.queryRange(Q, () => {}), (error) => {
        assert.ok(!(error as Error).message.includes(token.slice(0, 9)));
        assert.ok(!JSON.stringify((error as Error).cause).includes(token.slice(0, 9)));
        return true;
      });
    },
  );
  // 3. A warning longer than the 1 MiB field cap, cut inside the token.
  await withServer(
    () =>
      new Response(
        `{"status":"success","warnings":["${"w".repeat(1024 * 1024 - 12)}${token}"],` +
          `"data":{"resultType":"matrix","result":[]}}`,
      ),
    async (url) => {
      const reasons: string[] = [];
      const client = new ThanosClient({ url, token, maxAttempts: 2, ...fast });
      await assert.rejects(
        client.queryRange(Q, () => {}, undefined, (info) => reasons.push(info.reason)),
        (error) => {
          assert.ok(error instanceof BridgeError && error.code === "thanos_warning");
          assert.ok(!error.message.includes(token.slice(0, 10)));
          assert.ok(!JSON.stringify(error.cause).includes(token.slice(0, 10)));
          assert.ok(error.message.length < 5000, "warnings are cut in messages");
          return true;
        },
      );
      assert.ok(reasons.every((r) => !r.includes(token.slice(0, 10))));
    },
  );
  // 4. A sample shown in a parse error, with the token right at the 80-character cut.
  await withServer(
    () => new Response(`${HEAD}{"metric":{},"values":[[1,"${"z".repeat(70)}${token}",3]]}${TAIL}`),
    async (url) => {
      const client = new ThanosClient({ url, token });
      await assert.rejects(client.queryRange(Q, () => {}), (error) => {
        assert.ok(error instanceof BridgeError && error.code === "thanos_parse");
        assert.ok(!error.message.includes(token.slice(0, 6)), error.message);
        return true;
      });
    },
  );
  // 5. Control characters in server text: status text, error body, warnings, labels.
  const nasty = "bad\x1b[2J\rquery\x07\x9b";
  const bodies: [number, string][] = [
    [400, JSON.stringify({ status: "error", errorType: "bad_data\x1b", error: nasty })],
    [
      200,
      JSON.stringify({
        status: "success",
        warnings: [nasty],
        data: { resultType: "matrix", result: [] },
      }),
    ],
    [200, `${HEAD}{"metric":{"a\\u001b":1},"values":[]}${TAIL}`],
    [200, `{"status":"error","errorType":"x\\r","error":${JSON.stringify(nasty)}}`],
  ];
  for (const [status, body] of bodies) {
    await withServer(() => new Response(body, { status }), async (url) => {
      const client = new ThanosClient({ url, maxAttempts: 1 });
      await assert.rejects(client.queryRange(Q, () => {}), (error) => {
        assert.ok(error instanceof BridgeError);
        // deno-lint-ignore no-control-regex
        assert.doesNotMatch(error.message, /[\x00-\x1f\x7f-\x9f]/, error.message);
        return true;
      });
    });
  }
});

Deno.test("rule 9: a cluster whose queries hang does not slow the others", async () => {
  await withServer(async (req, stop) => {
    const form = new URLSearchParams(await req.text());
    if (form.get("query")?.startsWith("hang")) {
      // Cluster A: never answers; the client's timeout ends each attempt.
      await new Promise<void>((resolve) => {
        stop.addEventListener("abort", () => resolve(), { once: true });
        req.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      return new Response("gone", { status: 503 });
    }
    return new Response(`${HEAD}${seriesText(0)}${TAIL}`);
  }, async (url) => {
    const client = new ThanosClient({
      url,
      concurrency: 4,
      timeoutMs: 500,
      maxAttempts: 2,
      ...fast,
    });
    const a = Array.from(
      { length: 12 },
      (_, i) => client.queryRange({ ...Q, query: `hang_${i}`, clusterId: "A" }, () => {}),
    );
    const aDone = Promise.allSettled(a);
    // Cluster B works in rounds, like hours: 10 rounds of 4 queries.
    const t0 = performance.now();
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        Array.from(
          { length: 4 },
          (_, i) =>
            client.queryRange({ ...Q, query: `up_${round}_${i}`, clusterId: "B" }, () => {}),
        ),
      );
    }
    const bMs = performance.now() - t0;
    // B waits at most for A's first timeout (A had every slot before B came), then keeps its share.
    assert.ok(bMs < 1500, `cluster B took ${Math.round(bMs)} ms`);
    console.log(`cluster B: ${Math.round(bMs)} ms`);
    for (const r of await aDone) {
      assert.equal(r.status, "rejected");
      const e = (r as PromiseRejectedResult).reason;
      assert.ok(e instanceof BridgeError && e.code === "thanos_timeout", String(e));
      assert.match(e.message, /query node-allocatable-cpu-cores \(cluster A,/);
    }
    client.close();
  });
});

Deno.test("a counter adds up the traffic of the calls given it; lifetime totals stay", async () => {
  let n = 0;
  const body = `${HEAD}${seriesText(0)}${TAIL}`;
  await withServer(
    () => ++n === 1 ? new Response("busy", { status: 503 }) : new Response(body),
    async (url) => {
      const client = new ThanosClient({ url, ...fast });
      const run: QueryCounter = { queries: 0, attempts: 0, bytes: 0 };
      await client.queryRange(Q, () => {}, undefined, undefined, run);
      await client.queryRange(Q, () => {}, undefined, undefined, run);
      await client.queryRange(Q, () => {}); // not counted in `run`
      assert.deepEqual(run, { queries: 2, attempts: 3, bytes: 2 * enc.encode(body).length });
      assert.deepEqual(client.stats, {
        queries: 3,
        attempts: 4,
        bytes: 3 * enc.encode(body).length,
      });
    },
  );
});

Deno.test("findLabelsWithValue names the labels that carry a value, via /api/v1/series", async () => {
  const seen: URL[] = [];
  await withServer((req) => {
    seen.push(new URL(req.url));
    return new Response(JSON.stringify({
      status: "success",
      data: [
        { __name__: "kube_node_info", cluster: "c-1", node: "n1" },
        { __name__: "kube_node_info", cluster: "c-2", tenant: "c-1", node: "c-1" },
        { __name__: "kube_node_info", cluster: "c-3", node: "n3" },
      ],
    }));
  }, async (url) => {
    const client = new ThanosClient({ url: `${url}/prefix`, token: "t0k" });
    assert.deepEqual(
      await client.findLabelsWithValue("c-1", "kube_node_info", 1_793_502_000, 1_793_505_600),
      ["cluster", "node", "tenant"],
    );
    assert.deepEqual(await client.findLabelsWithValue("nope", "kube_node_info", 0, 1), []);
    const limited = new ThanosClient({ url, maxSeries: 2 });
    await assert.rejects(
      limited.findLabelsWithValue("c-1", "kube_node_info", 0, 1),
      (e) =>
        e instanceof BridgeError && e.code === "thanos_limit" && /--max-series/.test(e.message),
    );
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    await assert.rejects(
      client.findLabelsWithValue("c-1", "kube_node_info", 0, 1, controller.signal),
      (e) => e instanceof BridgeError && e.code === "cancelled",
    );
  });
  assert.equal(seen[0]?.pathname, "/prefix/api/v1/series");
  assert.deepEqual(seen[0]?.searchParams.getAll("match[]"), ["kube_node_info"]);
  assert.equal(seen[0]?.searchParams.get("start"), "1793502000");
  assert.equal(seen[0]?.searchParams.get("end"), "1793505600");
});
