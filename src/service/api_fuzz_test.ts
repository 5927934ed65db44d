/**
 * Hostile requests against the API served for real (`Deno.serve` on a
 * loopback port): generated from a seeded PRNG (set `API_FUZZ_SEED` to
 * replay another seed), sent with `fetch` and, for what `fetch` cannot send
 * (raw paths, invalid UTF-8 in the URL, huge or conflicting headers, broken
 * framing), over raw TCP. Every answer must be a 4xx; every answer from the
 * app must be JSON in the one error shape; the server must answer
 * `/healthz` and still start a valid run afterwards.
 *
 * @module
 */

import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { createApi } from "./api.ts";
import { ErrorBodySchema } from "./api_schemas.ts";
import { FakeRunService } from "./api_fake_test.ts";
import { createMetrics } from "./metrics.ts";

const TOKEN = "fuzz-Token-0123456789abcdef";
const SEED = Number(Deno.env.get("API_FUZZ_SEED") ?? 0x5eed1e55);

/** mulberry32: a small seeded PRNG. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const str = (n: number, alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_.") =>
    Array.from({ length: n }, () => alphabet[int(alphabet.length)]).join("");
  const unicode = (n: number) =>
    Array.from({ length: n }, () => {
      const cp = pick([int(0x20), 0x7f, 0x85, 0x202e, 0x2066, 0xfeff, 0x1f600, 0xe000 + int(99)]);
      return String.fromCodePoint(cp);
    }).join("");
  return { next, int, pick, str, unicode };
}

type R = ReturnType<typeof prng>;

interface Hostile {
  kind: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array<ArrayBuffer>>;
}

const bearer = { authorization: `Bearer ${TOKEN}` };
const jsonHeaders = { ...bearer, "content-type": "application/json" };

const INVALID_DATES = [
  "2026-02-30",
  "2026-13-01",
  "2026-00-10",
  "2026-11-31",
  "2026-11-01T24",
  "2026-11-01T99",
  "2026-11-1",
  "20261101",
  "2026-11-01T5",
  "2026-11-01T05:00",
  "2026-11-01Z",
  "2026-11-01t05",
  "",
  " 2026-11-01",
  "2026-11-01\n",
  "２０２６-11-01",
  "2026-11-01T05\u0000",
  "yesterday",
  "-2026-11-01",
  "+02026-11-01",
  "1e10",
];

function wrongValue(r: R): unknown {
  return r.pick<unknown>([
    1,
    -1,
    1.5,
    0,
    true,
    false,
    null,
    {},
    [],
    [1],
    { from: "2026-11-01" },
    "true",
    [null],
    [[["deep"]]],
    1e308,
    -0,
  ]);
}

function deep(n: number, open: string, close: string): string {
  return open.repeat(n) + close.repeat(n);
}

/** Generators of hostile requests, by kind. */
const GENERATORS: Record<string, (r: R) => Hostile> = {
  wrongTypes: (r) => {
    const field = r.pick(["clusters", "from", "to", "recollect", "dryRun"]);
    const value = field === "clusters" && r.next() < 0.5 ? [wrongValue(r)] : wrongValue(r);
    const body = JSON.stringify({ [field]: value });
    // a value of the right type for the field would not be hostile
    const ok = (field === "recollect" || field === "dryRun") && typeof value === "boolean";
    return {
      kind: "wrongTypes",
      method: "POST",
      path: "/runs",
      headers: jsonHeaders,
      body: ok ? body.replace(/(true|false)/, '"$1"') : body,
    };
  },
  hugeStrings: (r) => {
    const n = 1000 + r.int(60_000);
    const big = r.str(n);
    const body = r.pick([
      { from: big },
      { to: big },
      { clusters: [big] },
      { clusters: Array.from({ length: 200 }, () => r.str(260)) },
      { [big.slice(0, 5000)]: 1 },
      { from: r.unicode(2000) },
    ]);
    return {
      kind: "hugeStrings",
      method: "POST",
      path: "/runs",
      headers: jsonHeaders,
      body: JSON.stringify(body),
    };
  },
  deepNesting: (r) => {
    const n = r.pick([100, 1000, 5000, 10_000, 20_000]);
    const body = r.pick([
      deep(n, "[", "]"),
      `{"clusters":${deep(n, "[", "]")}}`,
      `{"from":${deep(Math.min(n, 10_000), '{"a":', "}").replace(/\}+$/, (m) => "1" + m)}}`,
      `{"recollect":${deep(n, "[", "]")}}`,
      `{"x":${deep(n, "[", "]")}}`,
      deep(Math.min(n, 10_000), '{"a":', "}").replace(/\}+$/, (m) => "null" + m),
    ]);
    return { kind: "deepNesting", method: "POST", path: "/runs", headers: jsonHeaders, body };
  },
  unknownFields: (r) => {
    const key = r.pick([
      "__proto__",
      "constructor",
      "prototype",
      "Clusters",
      "dry_run",
      "day",
      "until",
      "sink",
      "thanosUrl",
      "token",
      r.str(1 + r.int(40)),
      r.unicode(1 + r.int(20)),
    ]);
    const body = `{"clusters":["cluster-a"],${JSON.stringify(key)}:${
      JSON.stringify(wrongValue(r))
    }}`;
    return { kind: "unknownFields", method: "POST", path: "/runs", headers: jsonHeaders, body };
  },
  invalidDates: (r) => {
    const date = r.next() < 0.8 ? r.pick(INVALID_DATES) : r.unicode(1 + r.int(14));
    const field = r.pick(["from", "to"]);
    const other = field === "from" ? "to" : "from";
    const body = r.next() < 0.5 ? { [field]: date } : { [field]: date, [other]: "2026-11-01" };
    return {
      kind: "invalidDates",
      method: "POST",
      path: "/runs",
      headers: jsonHeaders,
      body: JSON.stringify(body),
    };
  },
  reversedRanges: (r) => {
    const day = 1 + r.int(27);
    const d = (n: number) => `2026-11-${String(n).padStart(2, "0")}`;
    const from = r.next() < 0.5
      ? d(day + 1)
      : `${d(day)}T${String(1 + r.int(23)).padStart(2, "0")}`;
    const to = r.next() < 0.5 ? d(day) : `${d(day)}T00`;
    return {
      kind: "reversedRanges",
      method: "POST",
      path: "/runs",
      headers: jsonHeaders,
      body: JSON.stringify({ from, to, ...(r.next() < 0.5 ? { clusters: ["cluster-b"] } : {}) }),
    };
  },
  wrongContentTypes: (r) => {
    const type = r.pick([
      "text/plain",
      "application/xml",
      "multipart/form-data; boundary=x",
      "application/x-www-form-urlencoded",
      "application/json; charset=latin1",
      "application/json-patch+json",
      "application/jsonp",
      "json",
      "*/*",
      "application/octet-stream",
    ]);
    const body = r.pick(['{"clusters":["cluster-a"]}', "{}", "clusters=cluster-a", "<run/>"]);
    return {
      kind: "wrongContentTypes",
      method: "POST",
      path: "/runs",
      headers: { ...bearer, "content-type": type },
      body,
    };
  },
  oversized: (r) => {
    const n = 64 * 1024 + 1 + r.int(1024 * 1024);
    if (r.next() < 0.5) {
      return {
        kind: "oversized",
        method: "POST",
        path: "/runs",
        headers: jsonHeaders,
        body: JSON.stringify({ from: "x".repeat(n) }),
      };
    }
    // streamed without Content-Length (chunked)
    let left = n;
    const chunk = new Uint8Array(8192).fill(0x20);
    const body = new ReadableStream<Uint8Array<ArrayBuffer>>({
      pull(controller) {
        if (left <= 0) return controller.close();
        controller.enqueue(chunk.subarray(0, Math.min(left, chunk.length)));
        left -= chunk.length;
      },
    });
    return { kind: "oversizedStreamed", method: "POST", path: "/runs", headers: jsonHeaders, body };
  },
  invalidJson: (r) => {
    const body = r.pick([
      "{",
      '{"from":',
      '{"from": "2026-11-01",}',
      "{'from': '2026-11-01'}",
      '{"recollect": NaN}',
      '{"recollect": tru}',
      "/* c */ {}",
      '{"a":1}{"b":2}',
      '"unterminated',
      "\u00a0{}",
      "[1,]",
      '{"clusters":["a"]] }',
      r.str(1 + r.int(100), '{}[]":,tfn0123456789'),
    ]);
    return { kind: "invalidJson", method: "POST", path: "/runs", headers: jsonHeaders, body };
  },
  invalidUtf8: (r) => {
    const bad = r.pick([[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [
      0x80,
    ], [0xe2, 0x82]]);
    const pre = new TextEncoder().encode('{"from":"2026-11-');
    const post = new TextEncoder().encode('"}');
    const body = new Uint8Array([...pre, ...bad, ...post]);
    return { kind: "invalidUtf8", method: "POST", path: "/runs", headers: jsonHeaders, body };
  },
  badMethods: (r) => {
    const method = r.pick(["PUT", "PATCH", "OPTIONS", "FOO", "PROPFIND", "DELETE", "POST"]);
    const path = r.pick([
      "/runs",
      "/runs/r-000001",
      "/clusters",
      "/clusters/cluster-a",
      "/healthz",
      "/readyz",
      "/metrics",
      "/openapi.json",
    ]);
    const allowed: Record<string, string[]> = {
      "/runs": ["POST"],
      "/runs/r-000001": ["DELETE"],
    };
    const m = allowed[path]?.includes(method) ? "PATCH" : method;
    return { kind: "badMethods", method: m, path, headers: bearer };
  },
  pathTraversal: (r) => {
    const path = r.pick([
      "/runs/%2e%2e",
      "/runs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
      "/runs/..%2F..%2Fetc%2Fpasswd",
      "/clusters/..%2f..%2f",
      "/clusters/%2e%2e",
      "/runs/%00",
      "/runs/%",
      "/runs/%zz",
      "/runs/%ff%fe",
      "/clusters/%c0%af",
      "/runs/" + "a".repeat(4000),
      "/clusters/" + "b".repeat(300),
      "/runs/r-000001/../../etc",
      "/runs/.%2e/.%2e/",
      "/clusters/runs",
      "/clusters/outbox",
      "/static/../../etc/passwd",
      "/" + r.str(1 + r.int(50)),
    ]);
    return { kind: "pathTraversal", method: r.pick(["GET", "DELETE"]), path, headers: bearer };
  },
  badQueries: (r) => {
    const q = r.pick([
      "limit=0",
      "limit=-5",
      "limit=1000000",
      "limit=abc",
      "limit=",
      "limit=1.5",
      "limit=%00",
      "before=..%2F..",
      "before=" + "x".repeat(300),
      "before=%ff",
      "cursor=1",
      r.str(5) + "=" + r.str(5),
      "limit=2&limit=x",
    ]);
    return { kind: "badQueries", method: "GET", path: `/runs?${q}` };
  },
  unauthorized: (r) => {
    const header = r.pick([
      undefined,
      "",
      "Bearer",
      `Bearer ${TOKEN.slice(1)}`,
      `Bearer ${TOKEN}0`,
      `Basic ${btoa(`x:${TOKEN}`)}`,
      `Token ${TOKEN}`,
      `Bearer ${r.str(1 + r.int(300))}`,
      `Bearer ${TOKEN.toUpperCase()}`,
    ]);
    const path = r.pick(["/runs", "/runs/r-000001"]);
    return {
      kind: "unauthorized",
      method: path === "/runs" ? "POST" : "DELETE",
      path,
      headers: header === undefined ? {} as Record<string, string> : { authorization: header },
    };
  },
  conflicts: (r) => {
    const clusters = r.pick([["cluster-a"], ["cluster-b", "cluster-c"], undefined]);
    return {
      kind: "conflicts",
      method: "POST",
      path: "/runs",
      headers: jsonHeaders,
      body: JSON.stringify(clusters ? { clusters } : {}),
    };
  },
  unknownClusters: (r) => ({
    kind: "unknownClusters",
    method: "POST",
    path: "/runs",
    headers: jsonHeaders,
    body: JSON.stringify({ clusters: [`c${r.str(8)}`] }),
  }),
};

interface Answer {
  status: number;
  contentType: string;
  body: string;
}

async function send(base: string, h: Hostile): Promise<Answer> {
  const res = await fetch(base + h.path, {
    method: h.method,
    ...(h.headers ? { headers: h.headers } : {}),
    ...(h.body !== undefined ? { body: h.body } : {}),
  });
  return {
    status: res.status,
    contentType: res.headers.get("content-type") ?? "",
    body: await res.text(),
  };
}

/** Sends raw bytes over TCP and reads the answer until the server closes. */
async function raw(port: number, request: Uint8Array): Promise<Answer | null> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunks: Uint8Array[] = [];
  try {
    try {
      await conn.write(request);
      await conn.closeWrite();
    } catch {
      // the server may close early (a rejected header block)
    }
    const buf = new Uint8Array(65536);
    const deadline = setTimeout(() => conn.close(), 10_000);
    try {
      for (;;) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) break;
        chunks.push(buf.slice(0, n));
      }
    } finally {
      clearTimeout(deadline);
    }
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
  const all = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) all.set(c, o), o += c.length;
  if (all.length === 0) return null;
  const text = new TextDecoder().decode(all);
  const m = /^HTTP\/1\.1 (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(text);
  assert.ok(m, `not an HTTP answer: ${JSON.stringify(text.slice(0, 200))}`);
  const headers = m[2]!.toLowerCase();
  let body = m[3]!;
  if (/transfer-encoding: *chunked/.test(headers)) {
    let out = "";
    for (;;) {
      const nl = body.indexOf("\r\n");
      const size = parseInt(body.slice(0, nl), 16);
      if (!(size > 0)) break;
      out += body.slice(nl + 2, nl + 2 + size);
      body = body.slice(nl + 2 + size + 2);
    }
    body = out;
  }
  return {
    status: Number(m[1]),
    contentType: /content-type: *([^\r\n]*)/.exec(headers)?.[1] ?? "",
    body,
  };
}

const enc = (s: string) => new TextEncoder().encode(s);

/**
 * Requests `fetch` cannot send: `[kind, bytes, reachesTheApp]`. Those that do
 * not reach the app are refused by Deno's HTTP layer (hyper) with a bare 400
 * or a closed connection (broken chunked framing); the test still requires
 * that no answer is a 5xx.
 */
function rawRequests(r: R): [string, Uint8Array, boolean][] {
  const head = (line: string, headers: string[] = [], body = "") =>
    enc(
      `${line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n${
        headers.map((h) => h + "\r\n").join("")
      }\r\n${body}`,
    );
  const out: [string, Uint8Array, boolean][] = [
    ["rawDotDot", head("GET /runs/../../etc/passwd HTTP/1.1"), true],
    ["rawDotDotCluster", head("GET /clusters/../runs/..%2f HTTP/1.1"), true],
    ["rawBackslash", head("GET /runs\\..\\..\\etc HTTP/1.1"), true],
    ["rawAbsolute", head("GET http://evil.example/runs/x HTTP/1.1"), true],
    [
      "rawUtf8Path",
      new Uint8Array([...enc("GET /runs/"), 0xff, 0xfe, ...head(" HTTP/1.1").slice(1)]),
      false,
    ],
    ["rawSpaceInPath", head("GET /runs/a b HTTP/1.1"), false],
    ["rawBadRequestLine", head("GARBAGE"), false],
    ["rawHttp09", enc("GET /healthz\r\n\r\n"), false],
    ["rawHugeHeader", head("GET /healthz HTTP/1.1", [`X-Big: ${"a".repeat(200_000)}`]), false],
    [
      "rawManyHeaders",
      head("GET /healthz HTTP/1.1", Array.from({ length: 500 }, (_, i) => `X-H${i}: ${i}`)),
      false,
    ],
    [
      "rawBadContentLength",
      head("POST /runs HTTP/1.1", ["Content-Length: abc", `Authorization: Bearer ${TOKEN}`], "{}"),
      false,
    ],
    [
      "rawNegativeContentLength",
      head("POST /runs HTTP/1.1", ["Content-Length: -1", `Authorization: Bearer ${TOKEN}`], "{}"),
      false,
    ],
    [
      "rawTwoContentLengths",
      head("POST /runs HTTP/1.1", [
        "Content-Length: 2",
        "Content-Length: 5",
        `Authorization: Bearer ${TOKEN}`,
      ], "{}"),
      false,
    ],
    [
      "rawSmuggle",
      head(
        "POST /runs HTTP/1.1",
        [
          "Content-Length: 4",
          "Transfer-Encoding: chunked",
          `Authorization: Bearer ${TOKEN}`,
          "Content-Type: application/json",
        ],
        "0\r\n\r\nGET /runs/x HTTP/1.1\r\n\r\n",
      ),
      false,
    ],
    [
      "rawBadChunked",
      head(
        "POST /runs HTTP/1.1",
        [
          "Transfer-Encoding: chunked",
          `Authorization: Bearer ${TOKEN}`,
          "Content-Type: application/json",
        ],
        "zz\r\n{}\r\n0\r\n\r\n",
      ),
      false,
    ],
    [
      "rawHugeContentLength",
      head(
        "POST /runs HTTP/1.1",
        ["Content-Length: 99999999999", `Authorization: Bearer ${TOKEN}`],
        "{}",
      ),
      true,
    ],
    [
      "rawControlInContentType",
      head("POST /runs HTTP/1.1", [
        `Authorization: Bearer ${TOKEN}`,
        "Content-Type: application/json\x01",
        "Content-Length: 2",
      ], "{}"),
      false,
    ],
    [
      "rawLatin1Header",
      new Uint8Array([
        ...enc(
          `POST /runs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: text/`,
        ),
        0xe9,
        ...enc("\r\nContent-Length: 2\r\n\r\n{}"),
      ]),
      false, // the app answers 415, but hyper at times resets the connection before it is read
    ],
  ];
  for (let i = 0; i < 30; i++) {
    const path = "/" + r.str(1 + r.int(30), "abcdefgh/%.._-~!$&'()*+,;=:@");
    out.push([
      "rawRandomPath",
      head(`${r.pick(["GET", "DELETE", "POST", "PUT"])} ${path} HTTP/1.1`, [
        `Authorization: Bearer ${TOKEN}`,
      ]),
      false,
    ]);
  }
  return out;
}

function checkAnswer(kind: string, a: Answer, mustBeJson: boolean, seed: number): void {
  const where = `${kind} (seed ${seed}): ${a.status} ${a.body.slice(0, 200)}`;
  assert.ok(a.status >= 400 && a.status < 500, `not a 4xx: ${where}`);
  if (!mustBeJson && !a.contentType.startsWith("application/json")) return;
  assert.match(a.contentType, /^application\/json/, where);
  const parsed = ErrorBodySchema.safeParse(JSON.parse(a.body));
  assert.ok(parsed.success, `not the error shape: ${where}`);
  const msg = parsed.data.error.message;
  assert.ok(![...msg].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f), where);
  assert.ok(!msg.includes(TOKEN) && !a.body.includes(TOKEN), `token echoed: ${where}`);
  assert.ok(msg.length <= 600, `message too long: ${where}`);
}

Deno.test({
  name: "fuzz: 1,298 hostile requests to the running server are all 4xx in the one error shape",
  sanitizeResources: true,
  fn: async () => {
    const records: LogRecord[] = [];
    await configure({
      sinks: { memory: (record) => records.push(record) },
      loggers: [
        { category: ["thanos-bridge"], sinks: ["memory"], lowestLevel: "debug" },
        { category: ["logtape", "meta"], sinks: [], lowestLevel: "error" },
      ],
      reset: true,
    });
    const service = new FakeRunService();
    // cluster-a..c are busy: a request that happens to be valid is a 409, never a 202.
    await service.start({}, "schedule");
    const active = service.starts.length;
    const app = createApi({ service, metrics: createMetrics(), apiToken: TOKEN, version: "1.0.0" });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
    const base = `http://127.0.0.1:${server.addr.port}`;
    const r = prng(SEED);
    const kinds = Object.keys(GENERATORS);
    const counts: Record<string, number> = {};
    const statuses: Record<number, number> = {};
    const started = performance.now();
    try {
      const requests: Hostile[] = [];
      for (let i = 0; i < 1250; i++) {
        requests.push(GENERATORS[kinds[i % kinds.length]!]!(r));
      }
      for (let i = 0; i < requests.length; i += 8) {
        const batch = requests.slice(i, i + 8);
        const answers = await Promise.all(batch.map((h) => send(base, h)));
        answers.forEach((a, j) => {
          const h = batch[j]!;
          counts[h.kind] = (counts[h.kind] ?? 0) + 1;
          statuses[a.status] = (statuses[a.status] ?? 0) + 1;
          checkAnswer(`${h.kind} ${h.method} ${h.path.slice(0, 80)}`, a, true, SEED);
        });
      }
      let rawCount = 0;
      for (const [kind, bytes, reachesApp] of rawRequests(r)) {
        const a = await raw(server.addr.port, bytes);
        rawCount++;
        counts[kind] = (counts[kind] ?? 0) + 1;
        if (a === null) {
          // the HTTP layer closed the connection without answering: not a 5xx, not a crash
          assert.ok(!reachesApp, `${kind}: no answer`);
          continue;
        }
        statuses[a.status] = (statuses[a.status] ?? 0) + 1;
        checkAnswer(kind, a, reachesApp, SEED);
      }
      const total = requests.length + rawCount;
      assert.ok(total >= 1000, `${total} requests`);
      // Every generator ran, and the expected statuses all occurred.
      for (const k of kinds) assert.ok((counts[k] ?? 0) > 0 || counts[`${k}Streamed`], k);
      for (const s of [400, 401, 404, 405, 409, 413, 415]) assert.ok(statuses[s], `no ${s}`);
      assert.equal(service.starts.length, active, "no hostile request started a run");

      const health = await fetch(`${base}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: "ok" });
      service.finishAll();
      const ok = await fetch(`${base}/runs`, { method: "POST", headers: bearer });
      assert.equal(ok.status, 202, "the server still works");
      await ok.body?.cancel();
      console.log(
        `seed ${SEED}: ${total} requests in ${Math.round(performance.now() - started)} ms; ` +
          `statuses ${JSON.stringify(statuses)}`,
      );
    } finally {
      await server.shutdown();
      await reset();
    }
    const http = records.filter((x) => x.category.join(".") === "thanos-bridge.http");
    assert.ok(http.length >= 1000, `${http.length} access log records`);
    for (const x of http) {
      const text = JSON.stringify({ p: x.properties, m: x.message });
      assert.ok(!text.includes(TOKEN), "the token is in the log");
      assert.ok(!/authorization/i.test(text), "a header is in the log");
    }
    assert.ok(http.every((x) => x.level !== "error"), "no request was a 5xx");
  },
});
