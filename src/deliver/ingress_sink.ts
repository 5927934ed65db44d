/**
 * `ingress` sink (BRIDGE §3, contract §7.9): the CMMO path. Each tarball is
 * POSTed to `<ingress-url>/api/ingress/v1/upload` as `multipart/form-data`
 * with one part, field `file`, its file name, and content type
 * `application/vnd.redhat.hccm.tar+tgz` (from which ingress derives the Kafka
 * header `service: hccm`). Success is HTTP 202.
 *
 * The body is streamed from the spool file with an exact `Content-Length`
 * (no chunked encoding, and the tarball is never held in memory), through
 * `node:http(s)`: Deno's `fetch` would send a stream body chunked. 5xx, 429
 * (with `Retry-After`), timeouts and network errors are retried with capped,
 * jittered backoff; any other 4xx fails at once.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { abortableSleep, backoffDelay, parseRetryAfter } from "../thanos/backoff.ts";
import { BridgeError, escapeControl, type SinkKind } from "../model.ts";
import type {
  DeliveredPart,
  DeliveryRecord,
  DeliveryResult,
  FlushResult,
  PayloadSink,
  SinkPayload,
} from "./sink.ts";

/** Content type of the `file` part; ingress routes it to koku (`service: hccm`). */
export const HCCM_CONTENT_TYPE = "application/vnd.redhat.hccm.tar+tgz";
/** Path of the upload endpoint below the ingress URL. */
export const INGRESS_UPLOAD_PATH = "/api/ingress/v1/upload";

/** How the sink authenticates. */
export type IngressAuth =
  /** `Authorization: Bearer <token>` (the text of `--ingress-token-file`, trimmed). */
  | { readonly bearer: string }
  /** `Authorization: Basic …` of `user:password`. */
  | { readonly basic: string };

/** Options of {@linkcode IngressSink}. */
export interface IngressSinkOptions {
  /** Ingress base URL, e.g. `https://console.redhat.com`; a path prefix is kept. */
  readonly url: string;
  /** `null` = no `Authorization` header (e.g. an authenticating proxy in front). */
  readonly auth: IngressAuth | null;
  /** Attempts per tarball, the first included (default 5). */
  readonly maxAttempts?: number;
  /** Backoff cap of the first retry in ms (default 1 000). */
  readonly baseDelayMs?: number;
  /** Upper bound of one wait in ms, `Retry-After` included (default 60 000). */
  readonly maxDelayMs?: number;
  /** Per-attempt timeout in ms, upload included (default 600 000). */
  readonly timeoutMs?: number;
  /** Waits between attempts (tests inject one). */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Jitter source in [0, 1) (default `Math.random`). */
  readonly random?: () => number;
  /** PEM CA bundle to verify an https ingress (default: the system roots). */
  readonly ca?: string | null;
  /** Clock of `deliveredAt`. */
  readonly now?: () => Date;
}

const MAX_ANSWER = 300;
const CHUNK = 256 * 1024;

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** A `multipart/form-data` body read from a file, with its exact length. */
export interface MultipartFileBody {
  readonly contentType: string;
  readonly contentLength: number;
  /** The bytes, streamed: the file is opened on the first read and closed at its end or on `return`. */
  chunks(): AsyncGenerator<Uint8Array>;
}

/**
 * Describes a `multipart/form-data` body with one file part. The boundary is
 * random; the file is read in 256 KiB chunks, never whole, and a file whose
 * size changes in the meantime fails the body.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { multipartFileBody } from "./ingress_sink.ts";
 *
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "abc");
 * const body = await multipartFileBody(path, "file", "x.tar.gz", "application/octet-stream");
 * let text = "";
 * for await (const c of body.chunks()) text += new TextDecoder().decode(c);
 * assert.equal(text.length, body.contentLength);
 * assert.ok(text.includes('name="file"; filename="x.tar.gz"\r\n'));
 * ```
 */
export async function multipartFileBody(
  path: string,
  field: string,
  fileName: string,
  partType: string,
): Promise<MultipartFileBody> {
  if (/["\r\n\\]/.test(field + fileName + partType)) {
    throw new TypeError(`unsafe multipart field, file name or type: ${JSON.stringify(fileName)}`);
  }
  const boundary = `----thanos-bridge-${crypto.randomUUID()}`;
  const enc = new TextEncoder();
  const head = enc.encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${fileName}"\r\n` +
      `Content-Type: ${partType}\r\n\r\n`,
  );
  const tail = enc.encode(`\r\n--${boundary}--\r\n`);
  const size = (await Deno.stat(path)).size;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    yield head;
    const file = await Deno.open(path, { read: true });
    try {
      let sent = 0;
      for (;;) {
        const buf = new Uint8Array(CHUNK);
        const n = await file.read(buf);
        if (n === null) break;
        sent += n;
        if (sent > size) break;
        yield buf.subarray(0, n);
      }
      if (sent !== size) throw new Error(`${path} changed size during the upload`);
    } finally {
      file.close();
    }
    yield tail;
  }
  return {
    contentType: `multipart/form-data; boundary=${boundary}`,
    contentLength: head.length + size + tail.length,
    chunks,
  };
}

/** The `Authorization` header of an {@linkcode IngressAuth}, with what to redact and what to advise. */
export interface IngressAuthorization {
  /** Header value; `null` = send none. */
  readonly header: string | null;
  /** The secret part (token or password), to redact from answers; `null` = none. */
  readonly secret: string | null;
  /** What to tell the operator when ingress refuses the credentials. */
  readonly hint: string;
}

/**
 * Builds the `Authorization` header of the ingress sink (and of `doctor`).
 * Throws a `BridgeError` `config` for an empty or malformed token or
 * `user:password`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ingressAuthorization } from "./ingress_sink.ts";
 *
 * assert.equal(ingressAuthorization({ bearer: " t0k3n\n" }).header, "Bearer t0k3n");
 * assert.equal(ingressAuthorization(null).header, null);
 * ```
 */
export function ingressAuthorization(auth: IngressAuth | null): IngressAuthorization {
  if (auth === null) {
    return { header: null, secret: null, hint: "configure --ingress-token-file" };
  }
  if ("bearer" in auth) {
    const token = auth.bearer.trim();
    if (token === "" || /[\s]/.test(token)) {
      throw new BridgeError("config", "ingress token is empty or contains white space");
    }
    return { header: `Bearer ${token}`, secret: token, hint: "check --ingress-token-file" };
  }
  if (!auth.basic.includes(":") || /[\r\n]/.test(auth.basic)) {
    throw new BridgeError("config", "ingress basic auth must be user:password");
  }
  const bytes = new TextEncoder().encode(auth.basic);
  return {
    header: `Basic ${btoa(String.fromCharCode(...bytes))}`,
    secret: auth.basic.slice(auth.basic.indexOf(":") + 1) || null,
    hint: "check the ingress basic-auth user and password",
  };
}

/** What {@linkcode nodeRequest} (and {@linkcode postStream}) got back. */
export interface PostAnswer {
  readonly status: number;
  readonly statusText: string;
  readonly headers: Headers;
  readonly text: string;
}

/**
 * POSTs a streamed body with an exact `Content-Length` through `node:http(s)`
 * (Deno's `fetch` sends a stream body chunked, dropping `Content-Length`).
 * Rejects on network errors and when `signal` aborts.
 *
 * @example
 * ```ts ignore
 * import { postStream } from "./ingress_sink.ts";
 * async function* body() { yield new TextEncoder().encode("hi"); }
 * const answer = await postStream("http://127.0.0.1:8080/x", { "content-length": "2" }, body());
 * ```
 */
export function postStream(
  url: string,
  headers: Record<string, string>,
  body: AsyncIterable<Uint8Array>,
  options: { signal?: AbortSignal; ca?: string | null; maxAnswerBytes?: number } = {},
): Promise<PostAnswer> {
  return nodeRequest("POST", url, headers, body, options);
}

/**
 * One request through `node:http(s)` (the sinks' TLS stack, with their CA):
 * `body` streamed when given, no redirect followed, at most `maxAnswerBytes`
 * (default 64 KiB) of the answer kept. Rejects on network errors and when
 * `signal` aborts.
 *
 * @example
 * ```ts ignore
 * import { nodeRequest } from "./ingress_sink.ts";
 * const answer = await nodeRequest("GET", "http://127.0.0.1:8080/x", {}, null);
 * answer.status; // e.g. 405
 * ```
 */
export function nodeRequest(
  method: "GET" | "POST",
  url: string,
  headers: Record<string, string>,
  body: AsyncIterable<Uint8Array> | null,
  options: { signal?: AbortSignal; ca?: string | null; maxAnswerBytes?: number } = {},
): Promise<PostAnswer> {
  const target = new URL(url);
  const request = target.protocol === "https:" ? httpsRequest : httpRequest;
  const maxAnswer = options.maxAnswerBytes ?? 64 * 1024;
  return new Promise<PostAnswer>((resolve, reject) => {
    const req = request(target, {
      method,
      headers,
      signal: options.signal,
      ...(options.ca ? { ca: options.ca } : {}),
    }, (res) => {
      const parts: Uint8Array[] = [];
      let kept = 0;
      res.on("data", (c: Uint8Array) => {
        if (kept < maxAnswer) {
          parts.push(c);
          kept += c.length;
        }
      });
      res.on("error", reject);
      res.on("end", () => {
        const out = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (typeof v === "string") out.set(k, v);
          else if (Array.isArray(v)) out.set(k, v.join(", "));
        }
        resolve({
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? "",
          headers: out,
          text: new TextDecoder().decode(Buffer.concat(parts)),
        });
      });
    });
    req.on("error", reject);
    if (body === null) req.end();
    else pipeline(Readable.from(body), req).catch(reject);
  });
}

/**
 * Uploads payloads to the platform ingress, like CMMO.
 *
 * `has(record)`: ingress cannot be asked what it received, so a stored
 * delivery record of this sink counts as delivered (koku de-duplicates by
 * manifest uuid if a payload is sent twice anyway).
 *
 * @example
 * ```ts ignore
 * import { IngressSink } from "./ingress_sink.ts";
 *
 * const sink = new IngressSink({
 *   url: "https://console.redhat.com",
 *   auth: { bearer: (await Deno.readTextFile("/var/run/ingress/token")).trim() },
 * });
 * // const { record } = await sink.deliver(payload);
 * ```
 */
export class IngressSink implements PayloadSink {
  /** Always `ingress`. */
  readonly kind: SinkKind = "ingress";
  /** The upload endpoint. */
  readonly uploadUrl: string;
  readonly #authorization: string | null;
  readonly #secret: string | null;
  readonly #authHint: string;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #timeoutMs: number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #random: () => number;
  readonly #ca: string | null;
  readonly #now: () => Date;

  /** Checks the options; a `BridgeError` `config` names the bad one. */
  constructor(options: IngressSinkOptions) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new BridgeError("config", `ingress URL ${JSON.stringify(options.url)} is not a URL`);
    }
    if (base.protocol !== "https:" && base.protocol !== "http:") {
      throw new BridgeError("config", `ingress URL must be http(s), got ${base.protocol}`);
    }
    if (base.username !== "" || base.password !== "") {
      throw new BridgeError("config", "ingress URL must not carry credentials; use basic auth");
    }
    this.uploadUrl = `${base.origin}${base.pathname.replace(/\/+$/, "")}${INGRESS_UPLOAD_PATH}`;
    const auth = ingressAuthorization(options.auth);
    this.#authorization = auth.header;
    this.#secret = auth.secret;
    this.#authHint = auth.hint;
    this.#maxAttempts = options.maxAttempts ?? 5;
    if (!Number.isInteger(this.#maxAttempts) || this.#maxAttempts < 1) {
      throw new BridgeError("config", `ingress attempts must be ≥ 1, got ${this.#maxAttempts}`);
    }
    this.#baseDelayMs = options.baseDelayMs ?? 1_000;
    this.#maxDelayMs = options.maxDelayMs ?? 60_000;
    this.#timeoutMs = options.timeoutMs ?? 600_000;
    this.#sleep = options.sleep ?? abortableSleep;
    this.#random = options.random ?? Math.random;
    this.#ca = options.ca ?? null;
    this.#now = options.now ?? (() => new Date());
  }

  /** A stored record of this sink counts as delivered: ingress cannot be asked. */
  has(record: DeliveryRecord): Promise<boolean> {
    return Promise.resolve(record.sink === this.kind && record.parts.length > 0);
  }

  /** POSTs every part in order; throws `sink_ingress` or `cancelled`. */
  async deliver(payload: SinkPayload, signal?: AbortSignal): Promise<DeliveryResult> {
    if (payload.parts.length === 0) {
      throw new BridgeError("payload", `payload ${payload.uuid} has no parts`);
    }
    const parts: DeliveredPart[] = [];
    for (const part of payload.parts) {
      const requestId = await this.#upload(part.path, part.fileName, signal);
      parts.push({
        fileName: part.fileName,
        bytes: part.bytes,
        sha256: part.sha256,
        ref: { sink: this.kind, location: requestId ?? `${this.uploadUrl}#${part.fileName}` },
      });
    }
    return {
      record: {
        sink: this.kind,
        clusterId: payload.clusterId,
        day: payload.day,
        uuid: payload.uuid,
        lastHour: payload.lastHour,
        parts,
        deliveredAt: this.#now().toISOString(),
      },
      queued: 0,
    };
  }

  /** Nothing waits: a no-op. */
  flush(): Promise<FlushResult> {
    return Promise.resolve({ sent: 0, pending: 0, error: null });
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The server's answer, safe to show: at most 300 characters, secrets and control characters out. */
  #answer(text: string): string {
    let t = text;
    if (this.#secret !== null && this.#secret.length >= 4) {
      t = t.split(this.#secret).join("[redacted]");
    }
    t = t.trim();
    const cut = t.length > MAX_ANSWER ? t.slice(0, MAX_ANSWER) + "…" : t;
    return escapeControl(cut, false);
  }

  /** One tarball; returns ingress's `request_id` when it answers one. */
  async #upload(path: string, fileName: string, signal?: AbortSignal): Promise<string | null> {
    let last = "";
    for (let attempt = 1;; attempt++) {
      if (signal?.aborted) {
        throw new BridgeError("cancelled", "cancelled", { cause: signal.reason });
      }
      let retryAfterMs: number | undefined;
      const body = await multipartFileBody(path, "file", fileName, HCCM_CONTENT_TYPE).catch((e) => {
        throw new BridgeError(
          "sink_ingress",
          `cannot read ${path}: ${e instanceof Error ? e.message : e}`,
          {
            cause: e,
          },
        );
      });
      const headers: Record<string, string> = {
        "content-type": body.contentType,
        "content-length": String(body.contentLength),
        "accept": "application/json",
      };
      if (this.#authorization !== null) headers["authorization"] = this.#authorization;
      const timeout = AbortSignal.timeout(this.#timeoutMs);
      const attemptSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
      let response: PostAnswer;
      try {
        response = await postStream(this.uploadUrl, headers, body.chunks(), {
          signal: attemptSignal,
          ca: this.#ca,
        });
      } catch (e) {
        if (signal?.aborted) throw new BridgeError("cancelled", "cancelled", { cause: e });
        last = timeout.aborted
          ? `no answer within ${this.#timeoutMs} ms`
          : escapeControl(e instanceof Error ? e.message : String(e), false);
        if (attempt >= this.#maxAttempts) break;
        await this.#wait(attempt, undefined, signal);
        continue;
      }
      const status = response.status;
      const text = response.text;
      const reason = `${status} ${response.statusText || STATUS_TEXT[status] || ""}`.trim();
      if (status === 202) {
        try {
          const json = JSON.parse(text) as { request_id?: unknown };
          return typeof json.request_id === "string" && json.request_id !== ""
            ? json.request_id
            : null;
        } catch {
          return null;
        }
      }
      const answer = this.#answer(text);
      const suffix = answer === "" ? "" : `: ${answer}`;
      if (status === 401 || status === 403) {
        throw new BridgeError(
          "sink_ingress",
          `ingress refused the upload: ${reason} — ${this.#authHint}${suffix}`,
        );
      }
      if (status !== 429 && status < 500) {
        throw new BridgeError(
          "sink_ingress",
          `ingress rejected ${fileName} at ${this.uploadUrl}: ${reason}${suffix}`,
        );
      }
      last = `${reason}${suffix}`;
      if (status === 429 || status === 503) {
        retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), this.#now().getTime());
      }
      if (attempt >= this.#maxAttempts) break;
      await this.#wait(attempt, retryAfterMs, signal);
    }
    throw new BridgeError(
      "sink_ingress",
      `ingress upload of ${fileName} to ${this.uploadUrl} failed after ${this.#maxAttempts} attempts: ${last}`,
    );
  }

  async #wait(
    attempt: number,
    retryAfterMs: number | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    const backoff = backoffDelay(attempt, {
      baseDelayMs: this.#baseDelayMs,
      maxDelayMs: this.#maxDelayMs,
      random: this.#random,
    });
    const ms = Math.min(this.#maxDelayMs, Math.max(backoff, retryAfterMs ?? 0));
    try {
      await this.#sleep(ms, signal);
    } catch (e) {
      throw new BridgeError("cancelled", "cancelled", { cause: e });
    }
  }
}
