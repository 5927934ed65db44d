import assert from "node:assert/strict";
import type { z } from "zod";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { ApiError, constantTimeEqual, createApi, errorResponse } from "./api.ts";
import {
  ClusterListSchema,
  ClusterStatusSchema,
  ErrorBodySchema,
  HealthSchema,
  ReadinessSchema,
  RunAcceptedSchema,
  RunListSchema,
  RunRecordSchema,
} from "./api_schemas.ts";
import { FakeRunService } from "./api_fake_test.ts";
import { createMetrics } from "./metrics.ts";
import { BridgeError, ConfigError, escapeControl } from "../model.ts";
import { RunConflictError } from "./run_types.ts";

const TOKEN = "t0ken-Secret-42";

function setup(
  opts: {
    token?: string | null;
    limit?: number;
    equals?: (a: string, b: string) => Promise<boolean>;
  } = {},
) {
  const service = new FakeRunService();
  const metrics = createMetrics("9.9.9");
  const app = createApi({
    service,
    metrics,
    apiToken: opts.token === undefined ? null : opts.token,
    version: "9.9.9",
    ...(opts.limit !== undefined ? { bodyLimitBytes: opts.limit } : {}),
    ...(opts.equals !== undefined ? { tokenEquals: opts.equals } : {}),
  });
  const call = (path: string, init: RequestInit = {}) =>
    app.request(`http://localhost${path}`, init);
  return { service, metrics, app, call };
}

const json = (body: unknown, extra: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...extra },
  body: JSON.stringify(body),
});

/** Reads an error answer and checks it has the one shape; returns `error`. */
async function errorOf(res: Response, status: number) {
  assert.equal(res.status, status, `status ${res.status}, expected ${status}`);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  const body = await res.json();
  const parsed = ErrorBodySchema.safeParse(body);
  assert.ok(parsed.success, `not the error shape: ${JSON.stringify(body)}`);
  return parsed.data.error;
}

async function matches<T>(res: Response, schema: z.ZodType<T>): Promise<T> {
  const body = await res.json();
  const parsed = schema.safeParse(body);
  assert.ok(parsed.success, `answer does not match its schema: ${JSON.stringify(body)}`);
  return parsed.data;
}

Deno.test("POST /runs without a body: 202, Location, {} to the service as trigger api", async () => {
  const { call, service } = setup();
  const res = await call("/runs", { method: "POST" });
  assert.equal(res.status, 202);
  const body = await matches(res, RunAcceptedSchema);
  assert.equal(body.id, "r-000001");
  assert.equal(body.state, "running");
  assert.deepEqual(body.links, { self: "/runs/r-000001" });
  assert.equal(res.headers.get("location"), "/runs/r-000001");
  assert.match(res.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  assert.deepEqual(service.starts, [{ request: {}, trigger: "api" }]);
});

Deno.test("POST /runs: an empty or blank body counts as {} whatever its content type", async () => {
  const { call, service } = setup();
  for (const [body, type] of [["", "text/plain"], [" \n\t", "application/x-www-form-urlencoded"]]) {
    service.finishAll();
    const res = await call("/runs", { method: "POST", headers: { "content-type": type! }, body });
    assert.equal(res.status, 202);
    await res.body?.cancel();
  }
  assert.deepEqual(service.starts.map((s) => s.request), [{}, {}]);
});

Deno.test("POST /runs: a full body reaches the service as a RunRequest", async () => {
  const { call, service } = setup();
  const res = await call(
    "/runs",
    json({
      clusters: ["cluster-a", "cluster-b"],
      from: "2026-11-01",
      to: "2026-11-02T05",
      recollect: true,
      dryRun: false,
    }, { "content-type": "application/json; charset=UTF-8" }),
  );
  assert.equal(res.status, 202);
  await res.body?.cancel();
  assert.deepEqual(service.starts[0]!.request, {
    clusters: ["cluster-a", "cluster-b"],
    from: "2026-11-01",
    to: "2026-11-02T05",
    recollect: true,
    dryRun: false,
  });
});

Deno.test("POST /runs: bad bodies are 400 naming the field, and never reach the service", async () => {
  const { call, service } = setup();
  const cases: [unknown, string, RegExp][] = [
    [{ clusters: ["cluster-a"], bogus: 1 }, "bogus", /unknown field "bogus"/],
    [{ from: "2026-13-01" }, "from", /from "2026-13-01" must be a UTC day/],
    [{ from: "2026-02-30" }, "from", /YYYY-MM-DD/],
    [{ to: "2026-11-01T24" }, "to", /YYYY-MM-DDTHH/],
    [{ to: "2026-11-01 05" }, "to", /must be/],
    [{ from: 20261101 }, "from", /from 20261101 must be/],
    [{ clusters: "cluster-a" }, "clusters", /must be an array/],
    [{ clusters: [] }, "clusters", /at least one/],
    [{ clusters: ["-bad"] }, "clusters", /clusters\.0 "-bad" must be a cluster id/],
    [{ clusters: ["outbox"] }, "clusters", /cluster id/],
    [{ clusters: [["x"]] }, "clusters", /\(an array\)/],
    [{ clusters: Array.from({ length: 1001 }, (_, i) => `c${i}`) }, "clusters", /at most 1000/],
    [{ recollect: "yes" }, "recollect", /recollect "yes" must be true or false/],
    [{ dryRun: null }, "dryRun", /dryRun null must be true or false/],
  ];
  for (const [body, field, message] of cases) {
    const error = await errorOf(await call("/runs", json(body)), 400);
    assert.equal(error.code, "bad_request");
    assert.equal(error.field, field, JSON.stringify(body));
    assert.match(error.message, message);
  }
  for (const body of [[], "x", 1, null, true]) {
    const error = await errorOf(await call("/runs", json(body)), 400);
    assert.equal(error.message, "request body must be a JSON object");
  }
  assert.equal(service.starts.length, 0);
});

Deno.test("POST /runs: invalid JSON and invalid UTF-8 are 400", async () => {
  const { call } = setup();
  const bad = await errorOf(
    await call("/runs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"from": ',
    }),
    400,
  );
  assert.match(bad.message, /not valid JSON/);
  const utf8 = await errorOf(
    await call("/runs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    }),
    400,
  );
  assert.match(utf8.message, /not valid UTF-8/);
});

Deno.test("POST /runs: a non-empty body that is not application/json is 415", async () => {
  const { call, service } = setup();
  for (
    const type of [null, "text/plain", "application/jsonx", "application/json; charset=latin1"]
  ) {
    const headers: Record<string, string> = type === null ? {} : { "content-type": type };
    const res = await call("/runs", { method: "POST", headers, body: "{}" });
    const error = await errorOf(res, 415);
    assert.equal(error.code, "unsupported_media_type");
  }
  assert.equal(service.starts.length, 0);
});

Deno.test("POST /runs: ConfigError from the planner is 400 naming its field", async () => {
  const { call } = setup();
  const reversed = await errorOf(
    await call("/runs", json({ from: "2026-11-02", to: "2026-11-01T05" })),
    400,
  );
  assert.equal(reversed.field, "to");
  assert.match(reversed.message, /before from/);
  const unknown = await errorOf(await call("/runs", json({ clusters: ["cluster-z"] })), 400);
  assert.equal(unknown.field, "clusters");
});

Deno.test("POST /runs: 409 names the active run; 503 while shutting down", async () => {
  const { call, service } = setup();
  const first = await call("/runs", json({ clusters: ["cluster-b"] }));
  assert.equal(first.status, 202);
  await first.body?.cancel();
  const res = await call("/runs", json({ clusters: ["cluster-a", "cluster-b"] }));
  assert.equal(res.status, 409);
  const body = await res.json();
  assert.deepEqual(Object.keys(body.error).sort(), ["activeRunId", "code", "message"]);
  assert.equal(body.error.code, "run_conflict");
  assert.equal(body.error.activeRunId, "r-000001");
  assert.match(body.error.message, /cluster-b/);
  const other = await call("/runs", json({ clusters: ["cluster-c"] }));
  assert.equal(other.status, 202);
  await other.body?.cancel();
  service.shuttingDown = true;
  const error = await errorOf(await call("/runs", { method: "POST" }), 503);
  assert.equal(error.code, "shutting_down");
});

Deno.test("auth: mutating routes need the bearer token; reads are open; the token is never echoed", async () => {
  const seen: [string, string][] = [];
  const { call, service } = setup({
    token: TOKEN,
    equals: (a, b) => {
      seen.push([a, b]);
      return constantTimeEqual(a, b);
    },
  });
  const wrong = `${TOKEN}x`;
  for (
    const headers of [
      {} as Record<string, string>,
      { authorization: wrong },
      { authorization: `Bearer ${wrong}` },
      { authorization: `Basic ${btoa(`u:${TOKEN}`)}` },
      { authorization: `Bearer ${TOKEN} extra` },
      { authorization: "Bearer" },
    ]
  ) {
    for (const [path, method] of [["/runs", "POST"], ["/runs/r-000001", "DELETE"]] as const) {
      const res = await call(path, { method, headers });
      assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="thanos-bridge"');
      const text = await res.clone().text();
      assert.ok(!text.includes(TOKEN), "the token is echoed");
      const error = await errorOf(res, 401);
      assert.equal(error.code, "unauthorized");
    }
  }
  assert.equal(service.starts.length, 0);
  const before = seen.length;
  assert.equal(before, 12, "every mutating request is compared with tokenEquals");
  const ok = await call("/runs", { method: "POST", headers: { authorization: `bearer ${TOKEN}` } });
  assert.equal(ok.status, 202);
  await ok.body?.cancel();
  const del = await call("/runs/r-000001", {
    method: "DELETE",
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(del.status, 200);
  await del.body?.cancel();
  assert.deepEqual(seen.slice(before), [[TOKEN, TOKEN], [TOKEN, TOKEN]]);
  for (const path of ["/runs", "/runs/r-000001", "/clusters", "/clusters/cluster-a", "/healthz"]) {
    const res = await call(path);
    assert.equal(res.status, 200, path);
    await res.body?.cancel();
  }
  assert.equal(seen.length, before + 2, "read routes do not check the token");
});

Deno.test("auth: the default comparison is constantTimeEqual (HMAC digests, any lengths)", async () => {
  assert.equal(await constantTimeEqual("abc", "abc"), true);
  assert.equal(await constantTimeEqual("abc", "abd"), false);
  assert.equal(await constantTimeEqual("abc", "abcd"), false);
  assert.equal(await constantTimeEqual("", "a"), false);
  assert.equal(await constantTimeEqual("ü".repeat(1000), "ü".repeat(1000)), true);
  const { call } = setup({ token: TOKEN });
  const ok = await call("/runs", { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(ok.status, 202);
  await ok.body?.cancel();
  const no = await call("/runs", {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
  });
  await errorOf(no, 401);
});

Deno.test("GET /runs: newest first, limit, next links that page through everything", async () => {
  const { call, service } = setup();
  for (let i = 0; i < 5; i++) {
    await service.start({}, i % 2 ? "schedule" : "api");
    service.finishAll();
  }
  const ids: string[] = [];
  let link: string | null = "/runs?limit=2";
  const selfs: string[] = [];
  while (link !== null) {
    const res = await call(link);
    assert.equal(res.status, 200);
    const page: z.infer<typeof RunListSchema> = await matches(res, RunListSchema);
    selfs.push(page.links.self);
    ids.push(...page.runs.map((r) => r.id));
    link = page.links.next;
  }
  assert.deepEqual(ids, ["r-000005", "r-000004", "r-000003", "r-000002", "r-000001"]);
  assert.deepEqual(selfs, [
    "/runs?limit=2",
    "/runs?limit=2&before=r-000004",
    "/runs?limit=2&before=r-000002",
  ]);
  const all = await matches(await call("/runs"), RunListSchema);
  assert.equal(all.runs.length, 5);
  assert.equal(all.links.next, null);
});

Deno.test("GET /runs: bad query parameters are 400 naming them", async () => {
  const { call } = setup();
  for (
    const [query, field] of [
      ["limit=0", "limit"],
      ["limit=201", "limit"],
      ["limit=-1", "limit"],
      ["limit=abc", "limit"],
      ["limit=1e2", "limit"],
      ["before=..%2F..%2Fetc", "before"],
      ["page=2", "page"],
      ["limit=2&limit=x", "limit"],
      ["before=r-1&before=r-2", "before"],
    ] as const
  ) {
    const error = await errorOf(await call(`/runs?${query}`), 400);
    assert.equal(error.field, field, query);
  }
});

Deno.test("GET/DELETE /runs/{id}: the record, 404 for an unknown or impossible id", async () => {
  const { call } = setup();
  const start = await call("/runs", { method: "POST" });
  await start.body?.cancel();
  const got = await matches(await call("/runs/r-000001"), RunRecordSchema);
  assert.equal(got.state, "running");
  for (const id of ["r-999999", "..", "%2e%2e", "a%2Fb", "%00", "x".repeat(300)]) {
    const error = await errorOf(await call(`/runs/${id}`), 404);
    assert.equal(error.code, "not_found");
    const del = await errorOf(await call(`/runs/${id}`, { method: "DELETE" }), 404);
    assert.equal(del.code, "not_found");
  }
  const cancelled = await call("/runs/r-000001", { method: "DELETE" });
  assert.equal(cancelled.status, 200);
  const record = await matches(cancelled, RunRecordSchema);
  assert.equal(record.state, "cancelled");
});

Deno.test("GET /clusters and /clusters/{id}", async () => {
  const { call } = setup();
  const list = await matches(await call("/clusters"), ClusterListSchema);
  assert.deepEqual(list.clusters.map((c) => c.clusterId), ["cluster-a", "cluster-b", "cluster-c"]);
  const one = await matches(await call("/clusters/cluster-a"), ClusterStatusSchema);
  assert.equal(one.hoursBehind, 2);
  assert.equal(one.lastPayload?.sink, "s3-kafka");
  for (const id of ["cluster-z", "outbox", "-x", "%20"]) {
    const error = await errorOf(await call(`/clusters/${id}`), 404);
    assert.equal(error.code, "not_found");
  }
});

Deno.test("healthz always 200; readyz 200 or 503 with the checks", async () => {
  const { call, service } = setup();
  await matches(await call("/healthz"), HealthSchema);
  const ready = await call("/readyz");
  assert.equal(ready.status, 200);
  assert.equal((await matches(ready, ReadinessSchema)).ok, true);
  service.readiness = { ok: false, checks: { thanos: { ok: false, message: "503 from Thanos" } } };
  const notReady = await call("/readyz");
  assert.equal(notReady.status, 503);
  assert.deepEqual(await notReady.json(), service.readiness);
  service.failWith = new Error("state folder \x1b[2J gone");
  const thrown = await call("/readyz");
  assert.equal(thrown.status, 503);
  const body = await matches(thrown, ReadinessSchema);
  assert.equal(body.checks.service?.message, "state folder \\x1b[2J gone");
  const health = await call("/healthz");
  assert.equal(health.status, 200, "healthz does not depend on the service");
  await health.body?.cancel();
});

Deno.test("GET /metrics: prom-client text with its content type", async () => {
  const { call, metrics } = setup();
  metrics.onQuery({ ok: true, code: null, ms: 250, bytes: 4096 });
  const res = await call("/metrics");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), metrics.registry.contentType);
  const text = await res.text();
  assert.match(text, /^thanos_bridge_queries_total\{result="ok"\} 1$/m);
  assert.match(text, /^thanos_bridge_build_info\{version="9\.9\.9"\} 1$/m);
});

Deno.test("405 for a wrong method on a known path, with Allow; 404 JSON for unknown paths", async () => {
  const { call } = setup();
  for (
    const [method, path, allow] of [
      ["PUT", "/runs", "GET, POST"],
      ["DELETE", "/runs", "GET, POST"],
      ["POST", "/runs/r-1", "GET, DELETE"],
      ["PATCH", "/clusters", "GET"],
      ["POST", "/clusters/cluster-a", "GET"],
      ["POST", "/healthz", "GET"],
      ["DELETE", "/metrics", "GET"],
      ["OPTIONS", "/openapi.json", "GET"],
      ["PUT", "/readyz", "GET"],
    ] as const
  ) {
    const res = await call(path, { method });
    assert.equal(res.headers.get("allow"), allow);
    const error = await errorOf(res, 405);
    assert.equal(error.code, "method_not_allowed");
  }
  for (const path of ["/", "/runs/", "/runs/a/b", "/../etc/passwd", "/clusters//x", "/RUNS"]) {
    const error = await errorOf(await call(path), 404);
    assert.equal(error.code, "not_found");
  }
});

Deno.test("413 above the body limit, by Content-Length and when streamed", async () => {
  const { call, service } = setup({ limit: 1024 });
  const big = JSON.stringify({ from: "x".repeat(2000) });
  const byLength = await errorOf(await call("/runs", json(JSON.parse(big))), 413);
  assert.equal(byLength.code, "payload_too_large");
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < 4; i++) controller.enqueue(new TextEncoder().encode(" ".repeat(500)));
      controller.close();
    },
  });
  const streamed = await call("/runs", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: stream,
  });
  await errorOf(streamed, 413);
  const small = await call("/runs", json({ from: "2026-11-01" }));
  assert.equal(small.status, 202);
  await small.body?.cancel();
  assert.equal(service.starts.length, 1);
});

Deno.test("echoed values are escaped and cut to 100 characters", async () => {
  const { call } = setup();
  const key = "\x1b[31m" + "k".repeat(500);
  const error = await errorOf(await call("/runs", json({ [key]: 1 })), 400);
  assert.ok(!error.message.includes("\x1b"));
  assert.ok(error.message.includes("\\x1b[31m"));
  assert.ok(error.message.length < 130, error.message);
  assert.ok(error.field!.length <= 101);
  const from = "\u202e" + "9".repeat(500);
  const bad = await errorOf(await call("/runs", json({ from })), 400);
  assert.ok(bad.message.includes("\\u202e"));
  assert.ok(!bad.message.includes("9".repeat(101)));
});

Deno.test("a failing service is a bare 500 internal, without its words", async () => {
  const { call, service } = setup();
  service.failWith = new Error("EACCES /var/lib/secret-path");
  for (const path of ["/runs", "/runs/r-1", "/clusters", "/clusters/cluster-a"]) {
    const res = await call(path);
    const text = await res.clone().text();
    assert.ok(!text.includes("secret-path"));
    const error = await errorOf(res, 500);
    assert.equal(error.code, "internal");
  }
});

Deno.test("errorResponse: the one mapping", () => {
  assert.deepEqual(errorResponse(new RunConflictError("r-7", "c")).body.error.activeRunId, "r-7");
  const config = new ConfigError("from\x1b", "\x07x", "bad");
  const cfg = errorResponse(config);
  assert.deepEqual(cfg, {
    status: 400,
    body: {
      error: {
        code: "bad_request",
        field: "from\\x1b",
        message: escapeControl(config.message, false),
      },
    },
    headers: {},
  });
  assert.ok(![...cfg.body.error.message].some((ch) => ch.charCodeAt(0) < 0x20));
  assert.equal(errorResponse(new BridgeError("not_found", "gone")).status, 404);
  assert.equal(errorResponse(new BridgeError("shutting_down", "bye")).status, 503);
  assert.equal(errorResponse(new BridgeError("unauthorized", "no")).status, 401);
  assert.equal(errorResponse(new BridgeError("state_io", "disk")).status, 500);
  assert.equal(errorResponse(new BridgeError("state_io", "disk")).body.error.code, "internal");
  const api = errorResponse(
    new ApiError(405, "method_not_allowed", "m", { headers: { Allow: "GET" } }),
  );
  assert.deepEqual(api.headers, { Allow: "GET" });
  assert.equal(errorResponse("thrown string").status, 500);
});

Deno.test("X-Request-Id: a well-formed one is kept, anything else replaced", async () => {
  const { call } = setup();
  const kept = await call("/healthz", { headers: { "x-request-id": "abc-123" } });
  assert.equal(kept.headers.get("x-request-id"), "abc-123");
  await kept.body?.cancel();
  const replaced = await call("/healthz", { headers: { "x-request-id": "a b<script>" } });
  assert.match(replaced.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  await replaced.body?.cancel();
});

Deno.test("readyz: a readiness check that never answers is a 503 within 2.5 s", async () => {
  const { call, service } = setup();
  service.ready = () => new Promise(() => {});
  const started = performance.now();
  const res = await call("/readyz");
  const ms = performance.now() - started;
  assert.equal(res.status, 503);
  const body = await matches(res, ReadinessSchema);
  assert.equal(body.ok, false);
  assert.match(body.checks.service?.message ?? "", /no answer within 2500 ms/);
  assert.ok(ms >= 2400 && ms < 4000, `${ms} ms`);
});

Deno.test("access log: one structured record per request, without headers", async () => {
  const records: LogRecord[] = [];
  await configure({
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      { category: ["thanos-bridge", "http"], sinks: ["memory"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "error" },
    ],
    reset: true,
  });
  try {
    const { call, service } = setup({ token: TOKEN });
    await (await call("/healthz", { headers: { "x-request-id": "req-1" } })).body?.cancel();
    await (await call("/runs", { method: "POST", headers: { authorization: "Bearer nope" } }))
      .body?.cancel();
    service.failWith = new Error("boom");
    await (await call("/clusters")).body?.cancel();
  } finally {
    await reset();
  }
  const access = records.filter((r) => r.rawMessage === "{method} {path} {status} {ms} ms");
  assert.deepEqual(
    access.map((r) => [r.level, r.properties.method, r.properties.path, r.properties.status]),
    [
      ["debug", "GET", "/healthz", 200],
      ["info", "POST", "/runs", 401],
      ["error", "GET", "/clusters", 500],
    ],
  );
  assert.equal(access[0]!.properties.requestId, "req-1");
  assert.equal(typeof access[0]!.properties.ms, "number");
  const failure = records.find((r) => String(r.rawMessage).startsWith("{method} {path} failed"));
  assert.match(String(failure?.properties.error), /boom/);
  const all = JSON.stringify(records.map((r) => [r.message, r.properties]));
  assert.ok(!all.includes("nope") && !/authorization/i.test(all));
});
