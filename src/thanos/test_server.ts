/**
 * Test helpers shared by the `ThanosClient` tests and the tests of
 * code that queries a Thanos through it (`raw_fetch`): a loopback fake Thanos,
 * answer bodies, bodies that hang, and client options that make retries
 * instant. Not used by the bridge itself.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type QueryErrorCause,
  type Series,
  THANOS_BRIDGE_VERSION,
  type ThanosClientOptions,
} from "./thanos_client.ts";

/** One request the fake Thanos received. */
export interface Seen {
  method: string;
  path: string;
  headers: Headers;
  form: URLSearchParams;
}

/** The running fake Thanos, as its handler and the test see it. */
export interface FakeServer {
  url: string;
  seen: Seen[];
  /** Aborted when the test is done (before the server shuts down). */
  stop: AbortSignal;
  inFlight: { now: number; peak: number };
}

/** Runs `fn` against a loopback fake Thanos whose answers come from `handler`. */
export async function withServer(
  handler: (seen: Seen, n: number, server: FakeServer) => Response | Promise<Response>,
  fn: (server: FakeServer) => Promise<void>,
): Promise<void> {
  const stopper = new AbortController();
  const state: FakeServer = {
    url: "",
    seen: [],
    stop: stopper.signal,
    inFlight: { now: 0, peak: 0 },
  };
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const seen: Seen = {
      method: req.method,
      path: url.pathname,
      headers: req.headers,
      form: new URLSearchParams(await req.text()),
    };
    state.seen.push(seen);
    return await handler(seen, state.seen.length, state);
  });
  state.url = `http://127.0.0.1:${server.addr.port}`;
  try {
    await fn(state);
  } finally {
    stopper.abort();
    await server.shutdown();
  }
}

/** Options of a client whose requests {@linkcode assertQueryPost} checks. */
export const AUTH = {
  token: "s3cr3t-token",
  headers: { "X-Scope-OrgID": "tenant-a" },
} as const satisfies Partial<ThanosClientOptions>;

/**
 * That `req` is a query form POSTed to `path` with the headers of a client
 * made with {@linkcode AUTH} (and `compression` as given: `Accept-Encoding`
 * `gzip`, else `identity`).
 */
export function assertQueryPost(req: Seen, path: string, compression = false): void {
  assert.equal(req.method, "POST");
  assert.equal(req.path, path);
  assert.equal(req.headers.get("content-type"), "application/x-www-form-urlencoded");
  assert.equal(req.headers.get("accept"), "application/json");
  assert.equal(req.headers.get("accept-encoding"), compression ? "gzip" : "identity");
  assert.equal(req.headers.get("user-agent"), `thanos-bridge/${THANOS_BRIDGE_VERSION}`);
  assert.equal(req.headers.get("authorization"), "Bearer s3cr3t-token");
  assert.equal(req.headers.get("x-scope-orgid"), "tenant-a");
}

/** A successful answer holding `series` (a matrix unless `resultType` says otherwise). */
export function answer(
  series: Series[],
  opts: { statusFirst?: boolean; warnings?: string[]; resultType?: string } = {},
): string {
  const data = JSON.stringify({ resultType: opts.resultType ?? "matrix", result: series });
  const warnings = opts.warnings ? `,"warnings":${JSON.stringify(opts.warnings)}` : "";
  return opts.statusFirst === false
    ? `{"data":${data}${warnings},"status":"success"}`
    : `{"status":"success","data":${data}${warnings}}`;
}

/** A JSON response. */
export function json(body: string, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/** Resolves when `signal` is aborted (at once if it already is; never without one). */
export function untilAborted(signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) resolve();
    signal?.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** A body that sends `prefix`, then hangs until `stop` is aborted, then ends. */
export function hangingBody(stop: AbortSignal, prefix = ""): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(c) {
      if (prefix !== "") c.enqueue(new TextEncoder().encode(prefix));
    },
    async pull(c) {
      await untilAborted(stop);
      c.close();
    },
  });
}

/** Options that make retries instant and record the delays asked for. */
export function fastRetries(delays: number[] = []): Partial<ThanosClientOptions> {
  return {
    baseDelayMs: 100,
    maxDelayMs: 5_000,
    random: () => 0.5,
    sleep: (ms: number) => {
      delays.push(ms);
      return Promise.resolve();
    },
  };
}

/** The {@linkcode QueryErrorCause} of an error a `ThanosClient` threw. */
export function causeOf(error: unknown): QueryErrorCause {
  assert.ok(error instanceof Error, `expected an Error, got ${error}`);
  return error.cause as QueryErrorCause;
}
