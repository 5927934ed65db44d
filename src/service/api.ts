/**
 * The sidecar's HTTP API (issue 7 §3): a thin Hono layer over
 * {@linkcode RunService}.
 *
 * - Read routes are open; `POST /runs` and `DELETE /runs/{id}` need
 *   `Authorization: Bearer <token>` when an API token is configured (compared
 *   in constant time; 401 with `WWW-Authenticate: Bearer`).
 * - Every error answer has one shape,
 *   `{"error": {"code", "message", "field"?, "activeRunId"?}}`, made by one
 *   mapping ({@linkcode errorResponse}) in `app.onError`/`app.notFound`.
 *   Messages escape control characters and show at most 100 characters of
 *   any echoed value. Bad input is always 4xx.
 * - `POST /runs` takes no body, an empty body (only whitespace counts as
 *   empty) or a JSON object. A non-empty body must be `application/json`
 *   (charset, if given, `utf-8`), else **415**; it must be valid UTF-8 and
 *   JSON, else 400; above the limit (default 64 KiB) it is 413.
 * - Query parameters of `GET /runs` are strict too: unknown or repeated ones
 *   are 400. A path id that cannot be a run or cluster id is a 404.
 * - A request body the route does not read (401, 405, 413) is cancelled at
 *   once. Requests Deno's HTTP layer refuses before the app sees them
 *   (malformed request lines, oversized header blocks, broken framing) get
 *   its bare 400 or a closed connection, never a 5xx.
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { getLogger } from "@logtape/logtape";
import type { z } from "zod";
import type { RunRequest } from "../config.ts";
import { BridgeError, ConfigError, escapeControl, showValue } from "../model.ts";
import {
  ClusterIdSchema,
  DEFAULT_PAGE,
  RunBodySchema,
  RunIdSchema,
  RunListQuerySchema,
} from "./api_schemas.ts";
import type { BridgeMetrics } from "./metrics.ts";
import { buildOpenApi } from "./openapi.ts";
import { RunConflictError, type RunRecord, type RunService } from "./run_types.ts";

/** Options of {@linkcode createApi}. */
export interface ApiOptions {
  readonly service: RunService;
  readonly metrics: BridgeMetrics;
  /** Bearer token of the mutating routes; null leaves them open. */
  readonly apiToken: string | null;
  /** Largest request body in bytes (default 64 KiB). */
  readonly bodyLimitBytes?: number;
  /** Shown in `/openapi.json`. */
  readonly version: string;
  /**
   * Token comparison (default {@linkcode constantTimeEqual}); tests pass a
   * spy to prove every mutating request goes through it.
   */
  readonly tokenEquals?: (given: string, expected: string) => Promise<boolean>;
}

/** Codes of the error answers (the bridge's own codes plus the HTTP ones). */
export type ApiErrorCode =
  | "bad_request"
  | "unauthorized"
  | "not_found"
  | "method_not_allowed"
  | "payload_too_large"
  | "unsupported_media_type"
  | "run_conflict"
  | "shutting_down"
  | "not_ready"
  | "discovery_failed"
  | "internal";

/** An error answer, thrown by handlers and middlewares, mapped by `onError`. */
export class ApiError extends Error {
  readonly status: 400 | 401 | 404 | 405 | 409 | 413 | 415 | 500 | 503;
  readonly code: ApiErrorCode;
  readonly field: string | undefined;
  readonly headers: Record<string, string>;

  constructor(
    status: ApiError["status"],
    code: ApiErrorCode,
    message: string,
    extra: { field?: string; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = extra.field;
    this.headers = extra.headers ?? {};
  }

  override get name(): string {
    return "ApiError";
  }
}

/** JSON body of every error answer. */
export interface ErrorBody {
  error: { code: string; message: string; field?: string; activeRunId?: string };
}

const DEFAULT_BODY_LIMIT = 64 * 1024;
const MAX_MESSAGE = 500;

/** Escapes control characters and bounds the length of an answer's message. */
function cleanMessage(message: string): string {
  const text = escapeControl(message, false);
  return text.length > MAX_MESSAGE ? text.slice(0, MAX_MESSAGE) + "…" : text;
}

/** A field name for an answer: escaped and at most 100 characters. */
function cleanField(field: string): string {
  const text = escapeControl(field, false);
  return text.length > 100 ? text.slice(0, 100) + "…" : text;
}

const HTTP_CODES: Record<number, ApiErrorCode> = {
  400: "bad_request",
  401: "unauthorized",
  404: "not_found",
  405: "method_not_allowed",
  413: "payload_too_large",
  415: "unsupported_media_type",
};

const BRIDGE_STATUS: Partial<Record<string, 400 | 401 | 404 | 409 | 503>> = {
  config: 400,
  discovery_failed: 503,
  bad_request: 400,
  unauthorized: 401,
  not_found: 404,
  run_conflict: 409,
  shutting_down: 503,
};

/**
 * The one mapping from anything thrown to an error answer: {@linkcode ApiError},
 * hono's `HTTPException`, {@linkcode RunConflictError} (409 with
 * `activeRunId`), `ConfigError` (400 naming `field`), other `BridgeError`s by
 * code; anything else is a 500 `internal` without details.
 *
 * @example
 * ```ts
 * import { errorResponse } from "./api.ts";
 * import { ConfigError } from "../model.ts";
 * const { status, body } = errorResponse(new ConfigError("from", "2026-13-01", "is not a date"));
 * // status 400, body.error: {code: "bad_request", field: "from", message: 'from "2026-13-01" is not a date'}
 * ```
 */
export function errorResponse(
  error: unknown,
): { status: number; body: ErrorBody; headers: Record<string, string> } {
  if (error instanceof ApiError) {
    const body: ErrorBody = { error: { code: error.code, message: cleanMessage(error.message) } };
    if (error.field !== undefined) body.error.field = cleanField(error.field);
    return { status: error.status, body, headers: error.headers };
  }
  if (error instanceof HTTPException) {
    const status = error.status >= 400 && error.status < 600 ? error.status : 500;
    const code = HTTP_CODES[status] ?? (status < 500 ? "bad_request" : "internal");
    const message = status === 413 ? "request body is larger than the limit" : `HTTP ${status}`;
    return { status, body: { error: { code, message } }, headers: {} };
  }
  if (error instanceof RunConflictError) {
    return {
      status: 409,
      body: {
        error: {
          code: "run_conflict",
          message: cleanMessage(error.message),
          activeRunId: error.activeRunId,
        },
      },
      headers: {},
    };
  }
  if (error instanceof ConfigError) {
    return {
      status: 400,
      body: {
        error: {
          code: "bad_request",
          message: cleanMessage(error.message),
          field: cleanField(error.field),
        },
      },
      headers: {},
    };
  }
  if (error instanceof BridgeError) {
    const status = BRIDGE_STATUS[error.code];
    if (status !== undefined) {
      const code = error.code === "config" ? "bad_request" : error.code;
      return {
        status,
        body: { error: { code, message: cleanMessage(error.message) } },
        headers: {},
      };
    }
  }
  return {
    status: 500,
    body: { error: { code: "internal", message: "internal error (see the server log)" } },
    headers: {},
  };
}

/**
 * Compares two secrets in constant time: HMAC-SHA-256 of both under a fresh
 * random key, then `timingSafeEqual` of the equal-length digests (so neither
 * the content nor the length of the expected token leaks through timing).
 *
 * @example
 * ```ts
 * import { constantTimeEqual } from "./api.ts";
 * await constantTimeEqual("s3cret", "s3cret"); // true
 * ```
 */
export async function constantTimeEqual(given: string, expected: string): Promise<boolean> {
  const key = await crypto.subtle.importKey(
    "raw",
    crypto.getRandomValues(new Uint8Array(32)),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const enc = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.sign("HMAC", key, enc.encode(given)),
    crypto.subtle.sign("HMAC", key, enc.encode(expected)),
  ]);
  return timingSafeEqual(new Uint8Array(a), new Uint8Array(b));
}

/** Hono environment of the API: the request id middleware sets `requestId`. */
export type ApiEnv = { Variables: { requestId: string } };

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Middleware: takes a well-formed `X-Request-Id` or makes one, stores it as
 * `requestId` and echoes it in the answer.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { requestIdMiddleware } from "./api.ts";
 * const app = new Hono().use(requestIdMiddleware());
 * ```
 */
export function requestIdMiddleware(): MiddlewareHandler<ApiEnv> {
  return async function requestId(c, next) {
    const given = c.req.header("x-request-id");
    const id = given !== undefined && REQUEST_ID.test(given) ? given : crypto.randomUUID();
    c.set("requestId", id);
    c.header("X-Request-Id", id);
    await next();
  };
}

/**
 * Middleware: after the answer, cancels a request body nobody read (a 401,
 * 405 or 413 by `Content-Length`, a body on a route that takes none), so the
 * server releases it at once instead of when it is garbage-collected.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { discardUnreadBodyMiddleware } from "./api.ts";
 * const app = new Hono().use(discardUnreadBodyMiddleware());
 * ```
 */
export function discardUnreadBodyMiddleware(): MiddlewareHandler<ApiEnv> {
  return async function discardUnreadBody(c, next) {
    const raw = c.req.raw;
    await next();
    for (const request of new Set([raw, c.req.raw])) {
      const body = request.body;
      if (body !== null && !request.bodyUsed && !body.locked) {
        await body.cancel().catch(() => {});
      }
    }
  };
}

/**
 * Middleware: requires `Authorization: Bearer <token>` when `token` is set
 * (401 with `WWW-Authenticate: Bearer` otherwise). The token is never echoed
 * nor logged.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { authMiddleware } from "./api.ts";
 * const app = new Hono().post("/runs", authMiddleware("s3cret"), (c) => c.json({}));
 * ```
 */
export function authMiddleware(
  token: string | null,
  equals: (given: string, expected: string) => Promise<boolean> = constantTimeEqual,
): MiddlewareHandler<ApiEnv> {
  return async function auth(_c, next) {
    if (token === null) return await next();
    const header = _c.req.header("authorization") ?? "";
    const m = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
    // Always compare (a fixed dummy without a header) so timing does not tell the cases apart.
    const ok = await equals(m ? m[1]! : "\0", token);
    if (!m || !ok) {
      throw new ApiError(401, "unauthorized", "missing or wrong bearer token", {
        headers: { "WWW-Authenticate": 'Bearer realm="thanos-bridge"' },
      });
    }
    await next();
  };
}

/**
 * Middleware: answers 413 (in the one error shape) for bodies above
 * `maxBytes`, by `Content-Length` or while streaming a chunked body.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { bodyLimitMiddleware } from "./api.ts";
 * const app = new Hono().use(bodyLimitMiddleware(1024));
 * ```
 */
export function bodyLimitMiddleware(maxBytes: number): MiddlewareHandler<ApiEnv> {
  const limit = bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new ApiError(413, "payload_too_large", `request body is larger than ${maxBytes} bytes`);
    },
  });
  return async function bodyLimitOrBadBody(c, next) {
    let reached = false;
    // A streamed body is read by hono's bodyLimit, which keeps its reader locked when it gives
    // up (413): read the original through a reader of our own, so it can be cancelled then.
    let original: ReadableStreamDefaultReader<Uint8Array> | null = null;
    const raw = c.req.raw;
    if (
      raw.body !== null &&
      (!raw.headers.has("content-length") || raw.headers.has("transfer-encoding"))
    ) {
      const reader = original = raw.body.getReader();
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        },
        cancel: (reason) => reader.cancel(reason),
      });
      // (url, method, headers only: copying `raw` would touch its signal, which Deno.serve
      // aborts on every answer in its legacy mode and warns about)
      c.req.raw = new Request(raw.url, {
        method: raw.method,
        headers: raw.headers,
        body,
        duplex: "half",
      } as RequestInit);
    }
    try {
      await limit(c, async () => {
        reached = true;
        await next();
      });
    } catch (error) {
      if (!reached) await original?.cancel().catch(() => {});
      // A body that cannot be read (broken chunked framing, a client gone) is the client's fault.
      if (reached || error instanceof ApiError) throw error;
      throw new ApiError(400, "bad_request", "the request body could not be read");
    }
  };
}

/**
 * Middleware: one structured log record per request on the
 * `["thanos-bridge", "http"]` logger (method, path, status, ms, request id).
 * Headers are never logged.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { accessLogMiddleware } from "./api.ts";
 * const app = new Hono().use(accessLogMiddleware());
 * ```
 */
export function accessLogMiddleware(): MiddlewareHandler<ApiEnv> {
  const logger = getLogger(["thanos-bridge", "http"]);
  return async function accessLog(c, next) {
    const started = performance.now();
    await next();
    const status = c.res.status;
    const props = {
      requestId: c.get("requestId"),
      method: escapeControl(c.req.method.slice(0, 20), false),
      path: cleanMessage(c.req.path.slice(0, 200)),
      status,
      ms: Math.round((performance.now() - started) * 10) / 10,
    };
    const message = "{method} {path} {status} {ms} ms";
    if (status >= 500) logger.error(message, props);
    else if (status >= 400) logger.info(message, props);
    else logger.debug(message, props);
  };
}

/** Turns a failed zod parse into a 400 naming the field. */
function zodError(error: z.ZodError, input: unknown, fallbackField: string): ApiError {
  const issue = error.issues[0];
  if (issue === undefined) return new ApiError(400, "bad_request", "invalid request");
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "";
    return new ApiError(400, "bad_request", `unknown field ${showValue(key)}`, { field: key });
  }
  const path = issue.path.map(String);
  const field = path.length > 0 ? path.join(".") : fallbackField;
  let value: unknown = input;
  for (const p of issue.path) {
    value = value !== null && typeof value === "object"
      ? (value as Record<PropertyKey, unknown>)[p as PropertyKey]
      : undefined;
  }
  const shown = typeof value === "string"
    ? ` ${showValue(value)}`
    : typeof value === "number" || typeof value === "boolean"
    ? ` ${String(value).slice(0, 100)}`
    : value === null
    ? " null"
    : Array.isArray(value)
    ? " (an array)"
    : value !== null && typeof value === "object"
    ? " (an object)"
    : "";
  return new ApiError(400, "bad_request", `${field}${shown} ${issue.message}`, {
    field: path[0] ?? fallbackField,
  });
}

const JSON_TYPE = /^application\/json\s*(;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

/** Reads the optional JSON body of `POST /runs` as a {@linkcode RunRequest}. */
async function readRunBody(c: Context<ApiEnv>): Promise<RunRequest> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await c.req.arrayBuffer());
  } catch {
    throw new ApiError(400, "bad_request", "the request body could not be read");
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new ApiError(400, "bad_request", "request body is not valid UTF-8");
  }
  if (text.trim() === "") return {};
  const type = c.req.header("content-type") ?? "";
  if (!JSON_TYPE.test(type.trim())) {
    throw new ApiError(
      415,
      "unsupported_media_type",
      `a request body must be application/json, not ${showValue(type)}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ApiError(
      400,
      "bad_request",
      `request body is not valid JSON: ${e instanceof Error ? showValue(e.message) : ""}`,
    );
  }
  const parsed = RunBodySchema.safeParse(json);
  if (!parsed.success) {
    if (json === null || typeof json !== "object" || Array.isArray(json)) {
      throw new ApiError(400, "bad_request", "request body must be a JSON object");
    }
    throw zodError(parsed.error, json, "body");
  }
  const body = parsed.data;
  const request: { -readonly [K in keyof RunRequest]: RunRequest[K] } = {};
  if (body.clusters !== undefined) request.clusters = body.clusters;
  if (body.from !== undefined) request.from = body.from;
  if (body.to !== undefined) request.to = body.to;
  if (body.recollect !== undefined) request.recollect = body.recollect;
  if (body.dryRun !== undefined) request.dryRun = body.dryRun;
  return request;
}

function runLink(id: string): string {
  return `/runs/${encodeURIComponent(id)}`;
}

function notFound(what: string): ApiError {
  return new ApiError(404, "not_found", what);
}

/** The run id of a path, or a 404 (nothing else can be a run). */
function runId(c: Context<ApiEnv>): string {
  const id = c.req.param("id") ?? "";
  if (!RunIdSchema.safeParse(id).success) throw notFound(`no run ${showValue(id)}`);
  return id;
}

function methodNotAllowed(allow: string): MiddlewareHandler<ApiEnv> {
  return function wrongMethod(c) {
    throw new ApiError(
      405,
      "method_not_allowed",
      `${showValue(c.req.method.slice(0, 20))} is not allowed here; use ${allow}`,
      { headers: { Allow: allow } },
    );
  };
}

async function readiness(service: RunService, timeoutMs: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      service.ready(timeoutMs),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${timeoutMs + 500} ms`)),
          timeoutMs + 500,
        );
      }),
    ]);
  } catch (e) {
    return {
      ok: false,
      checks: {
        service: { ok: false, message: cleanMessage(e instanceof Error ? e.message : String(e)) },
      },
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Builds the HTTP API. Serve it with `Deno.serve(options, app.fetch)`.
 *
 * @example
 * ```ts ignore
 * import { createApi } from "./api.ts";
 * import { createMetrics } from "./metrics.ts";
 * declare const service: import("./run_types.ts").RunService;
 * const app = createApi({ service, metrics: createMetrics(), apiToken: null, version: "0.1.0" });
 * Deno.serve({ hostname: "127.0.0.1", port: 8080 }, app.fetch);
 * ```
 */
export function createApi(options: ApiOptions): Hono<ApiEnv> {
  const { service, metrics } = options;
  const limit = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;
  const auth = authMiddleware(options.apiToken, options.tokenEquals);
  const openapi = JSON.stringify(buildOpenApi(options.version));
  const logger = getLogger(["thanos-bridge", "http"]);
  const app = new Hono<ApiEnv>();

  app.use(requestIdMiddleware());
  app.use(accessLogMiddleware());
  app.use(discardUnreadBodyMiddleware());

  app.post("/runs", auth, bodyLimitMiddleware(limit), async (c) => {
    const request = await readRunBody(c);
    const record = await service.start(request, "api");
    const self = runLink(record.id);
    c.header("Location", self);
    return c.json({ id: record.id, state: record.state, links: { self } }, 202);
  });

  app.get("/runs", (c) => {
    for (const [name, values] of Object.entries(c.req.queries())) {
      if (values.length > 1) {
        throw new ApiError(400, "bad_request", `${showValue(name)} is given more than once`, {
          field: name,
        });
      }
    }
    const query = c.req.query();
    const parsed = RunListQuerySchema.safeParse(query);
    if (!parsed.success) throw zodError(parsed.error, query, "query");
    const limit = parsed.data.limit === undefined ? DEFAULT_PAGE : Number(parsed.data.limit);
    const page = service.list({
      limit,
      ...(parsed.data.before !== undefined ? { before: parsed.data.before } : {}),
    });
    const self = `/runs?limit=${limit}` +
      (parsed.data.before !== undefined ? `&before=${encodeURIComponent(parsed.data.before)}` : "");
    const next = page.next === null
      ? null
      : `/runs?limit=${limit}&before=${encodeURIComponent(page.next)}`;
    return c.json({ runs: page.runs, links: { self, next } });
  });

  app.get("/runs/:id", (c) => {
    const id = runId(c);
    const record = service.get(id);
    if (record === null) throw notFound(`no run ${showValue(id)}`);
    return c.json(record);
  });

  app.delete("/runs/:id", auth, bodyLimitMiddleware(limit), async (c) => {
    const id = runId(c);
    const record: RunRecord | null = await service.cancel(id);
    if (record === null) throw notFound(`no run ${showValue(id)}`);
    return c.json(record);
  });

  app.get("/clusters", async (c) => c.json({ clusters: await service.clusters() }));

  app.get("/clusters/:id", async (c) => {
    const id = c.req.param("id");
    const status = ClusterIdSchema.safeParse(id).success ? await service.cluster(id) : null;
    if (status === null) throw notFound(`no cluster ${showValue(id)}`);
    return c.json(status);
  });

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", async (c) => {
    const result = await readiness(service, 2000);
    return c.json(result, result.ok ? 200 : 503);
  });

  app.get("/metrics", async (c) => {
    const { text, contentType } = await metrics.render();
    return c.body(text, 200, { "Content-Type": contentType });
  });

  app.get("/openapi.json", (c) => c.body(openapi, 200, { "Content-Type": "application/json" }));

  app.all("/runs", methodNotAllowed("GET, POST"));
  app.all("/runs/:id", methodNotAllowed("GET, DELETE"));
  app.all("/clusters", methodNotAllowed("GET"));
  app.all("/clusters/:id", methodNotAllowed("GET"));
  for (const path of ["/healthz", "/readyz", "/metrics", "/openapi.json"]) {
    app.all(path, methodNotAllowed("GET"));
  }

  app.notFound((c) => {
    const { status, body } = errorResponse(notFound("no such route"));
    return c.json(body, status as 404);
  });

  app.onError((error, c) => {
    const { status, body, headers } = errorResponse(error);
    if (status >= 500) {
      logger.error("{method} {path} failed: {error}", {
        requestId: c.get("requestId"),
        method: c.req.method,
        path: cleanMessage(c.req.path.slice(0, 200)),
        error: cleanMessage(error instanceof Error ? error.stack ?? error.message : String(error)),
      });
    }
    for (const [k, v] of Object.entries(headers)) c.header(k, v);
    return c.json(body, status as 400);
  });

  return app;
}
