/**
 * Record and replay of `query_range` and instant `query` traffic, as `fetch`
 * wrappers to pass as the `fetch` option of `ThanosClient`.
 *
 * A recording is a folder with one gzip-compressed answer body per request,
 * `<key>.json.gz`, and an `index.jsonl` with one line per recorded request:
 * `{"key","query","start","end","step","bytes"}` for a range query
 * (`POST /api/v1/query_range`), `{"key","query","time","bytes"}` for an
 * instant query (`POST /api/v1/query`). A line without `time` is a range query,
 * so recordings made before instant queries were recorded read and replay
 * unchanged. The key is the SHA-256 (hex) of the canonical request (see
 * {@linkcode recordingKey}): the path (`/api/v1/query_range` or
 * `/api/v1/query`) and the form parameters `query`, `start`, `end`, `step`,
 * respectively `query`, `time`, only. Host, path prefix, headers (and so the
 * token), `dedup` and `partial_response` are not part of it, so a recording
 * made against one URL replays for any URL. Request headers are never
 * stored, and the bearer token (taken from the request's `Authorization`
 * header, plus any `secrets` given) is scrubbed from everything that is
 * stored: answer bodies, index lines and the text keys are computed from.
 *
 * The server's build info (`GET /api/v1/status/buildinfo`, which local mode
 * reads to choose its engine semantics) is kept as `buildinfo.json`, so a
 * replay answers it as the recorded server did.
 *
 * @module
 */

import { REDACTED, Redactor } from "./redact.ts";

const QUERY_RANGE_SUFFIX = "/api/v1/query_range";
const QUERY_SUFFIX = "/api/v1/query";
const SERIES_SUFFIX = "/api/v1/series";
const BUILD_INFO_SUFFIX = "/api/v1/status/buildinfo";
/** Where a recording keeps the server's build info answer. */
const BUILD_INFO_FILE = "buildinfo.json";
/** A build info answer is a few hundred bytes; a larger one is not kept. */
const MAX_BUILD_INFO_BYTES = 1 << 16;
const INDEX_FILE = "index.jsonl";

/** The parameters that identify a recorded `query_range` answer. */
export interface RangeRecordedRequest {
  /** PromQL expression, as sent. */
  query: string;
  /** `start` form value, as sent (unix seconds). */
  start: string;
  /** `end` form value, as sent (unix seconds). */
  end: string;
  /** `step` form value, as sent (seconds). */
  step: string;
  /** Never set: a range query has no `time`. */
  time?: undefined;
}

/** The parameters that identify a recorded instant `query` answer. */
export interface InstantRecordedRequest {
  /** PromQL expression, as sent. */
  query: string;
  /** `time` form value, as sent (unix seconds). */
  time: string;
  /** Never set: an instant query has no `start`. */
  start?: undefined;
  /** Never set: an instant query has no `end`. */
  end?: undefined;
  /** Never set: an instant query has no `step`. */
  step?: undefined;
}

/**
 * The request parameters that identify a recorded answer: a range query
 * (`start`, `end`, `step`) or an instant query (`time`), told apart by `time`.
 */
export type RecordedRequest = RangeRecordedRequest | InstantRecordedRequest;

/** One line of `index.jsonl` for a range query (the only kind older recordings have). */
export interface RangeIndexEntry {
  /** SHA-256 hex of the canonical request; the body is in `<key>.json.gz`. */
  key: string;
  /** PromQL expression. */
  query: string;
  /** Unix seconds. */
  start: number;
  /** Unix seconds. */
  end: number;
  /** Seconds. */
  step: number;
  /** Never set on a range line. */
  time?: undefined;
  /** Size of the uncompressed answer body. */
  bytes: number;
}

/** One line of `index.jsonl` for an instant query. */
export interface InstantIndexEntry {
  /** SHA-256 hex of the canonical request; the body is in `<key>.json.gz`. */
  key: string;
  /** PromQL expression. */
  query: string;
  /** Evaluation time, unix seconds. */
  time: number;
  /** Never set on an instant line. */
  start?: undefined;
  /** Never set on an instant line. */
  end?: undefined;
  /** Never set on an instant line. */
  step?: undefined;
  /** Size of the uncompressed answer body. */
  bytes: number;
}

/** One line of `index.jsonl`: a line with `time` is an instant query, one without a range query. */
export type RecordingIndexEntry = RangeIndexEntry | InstantIndexEntry;

/**
 * The canonical text of a request, hashed into its key:
 * `/api/v1/query_range?query=…&start=…&end=…&step=…` for a range query,
 * `/api/v1/query?query=…&time=…` for an instant query (form-encoded, in this
 * order).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalRequest } from "./recording.ts";
 *
 * assert.equal(
 *   canonicalRequest({ query: "up", start: "0", end: "3540", step: "60" }),
 *   "/api/v1/query_range?query=up&start=0&end=3540&step=60",
 * );
 * assert.equal(
 *   canonicalRequest({ query: "up[1h]", time: "3540" }),
 *   "/api/v1/query?query=up%5B1h%5D&time=3540",
 * );
 * ```
 */
export function canonicalRequest(request: RecordedRequest): string {
  if (request.time !== undefined) {
    const params = new URLSearchParams([["query", request.query], ["time", request.time]]);
    return `${QUERY_SUFFIX}?${params}`;
  }
  const params = new URLSearchParams([
    ["query", request.query],
    ["start", request.start],
    ["end", request.end],
    ["step", request.step],
  ]);
  return `${QUERY_RANGE_SUFFIX}?${params}`;
}

/**
 * SHA-256 (lowercase hex) of {@linkcode canonicalRequest}: the recording key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { recordingKey } from "./recording.ts";
 *
 * const key = await recordingKey({ query: "up", start: "0", end: "3540", step: "60" });
 * assert.match(key, /^[0-9a-f]{64}$/);
 * assert.notEqual(await recordingKey({ query: "up", time: "3540" }), key);
 * ```
 */
export async function recordingKey(request: RecordedRequest): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(canonicalRequest(request)),
  );
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Extracts the key parameters of a `query_range` or instant `query` fetch
 * call, from the form body and the URL's search parameters (form values win).
 * Returns `undefined` for any other request (other path, or a missing
 * parameter).
 */
async function readRecordable(
  input: RequestInfo | URL,
  init: RequestInit | undefined,
): Promise<RecordedRequest | undefined> {
  const request = new Request(input instanceof Request ? input.clone() : input, init);
  const url = new URL(request.url);
  const range = url.pathname.endsWith(QUERY_RANGE_SUFFIX);
  if (!range && !url.pathname.endsWith(QUERY_SUFFIX)) {
    await request.body?.cancel();
    return undefined;
  }
  const params = new URLSearchParams(url.search);
  if (request.body !== null) {
    for (const [name, value] of new URLSearchParams(await request.text())) {
      params.set(name, value);
    }
  }
  const query = params.get("query");
  if (query === null) return undefined;
  if (!range) {
    const time = params.get("time");
    return time === null ? undefined : { query, time };
  }
  const start = params.get("start");
  const end = params.get("end");
  const step = params.get("step");
  if (start === null || end === null || step === null) return undefined;
  return { query, start, end, step };
}

/** The parameters of `request` for messages: `start=…, end=…, step=…` or `time=…`. */
function describeParams(request: RecordedRequest): string {
  return request.time !== undefined
    ? `time=${request.time}`
    : `start=${request.start}, end=${request.end}, step=${request.step}`;
}

/** The bearer token of a request's `Authorization` header, if any. */
function bearerToken(input: RequestInfo | URL, init: RequestInit | undefined): string | undefined {
  const headers = new Headers(
    init?.headers ?? (input instanceof Request ? input.headers : undefined),
  );
  const auth = headers.get("Authorization");
  const m = auth === null ? null : /^Bearer\s+(.+)$/i.exec(auth.trim());
  return m?.[1];
}

/** `request` with every secret removed from its parameters. */
function scrubRequest(request: RecordedRequest, redactor: Redactor): RecordedRequest {
  if (request.time !== undefined) {
    return { query: redactor.redact(request.query), time: redactor.redact(request.time) };
  }
  return {
    query: redactor.redact(request.query),
    start: redactor.redact(request.start),
    end: redactor.redact(request.end),
    step: redactor.redact(request.step),
  };
}

/**
 * Streaming byte-level replacement of secrets by `[redacted]`: bytes that could
 * be the start of a secret split across chunks are held back until the next
 * chunk (or the end) shows what they are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteScrubber } from "./recording.ts";
 *
 * const s = new ByteScrubber(["tok3n"]);
 * const enc = new TextEncoder();
 * const out = [s.push(enc.encode("a to")), s.push(enc.encode("k3n b")), s.flush()];
 * assert.equal(out.map((b) => new TextDecoder().decode(b)).join(""), "a [redacted] b");
 * ```
 */
export class ByteScrubber {
  readonly #forms: Uint8Array[];
  readonly #first: Set<number>;
  readonly #keep: number;
  readonly #replacement = new TextEncoder().encode(REDACTED);
  #carry: Uint8Array = new Uint8Array(0);

  /** @param secrets Secrets to remove (also in their JSON-escaped and URI-encoded forms). */
  constructor(secrets: readonly string[]) {
    const forms = new Set<string>();
    for (const s of secrets) {
      if (s === "") continue;
      forms.add(s);
      forms.add(JSON.stringify(s).slice(1, -1));
      forms.add(encodeURIComponent(s));
    }
    const enc = new TextEncoder();
    this.#forms = [...forms].map((f) => enc.encode(f)).sort((a, b) => b.length - a.length);
    this.#first = new Set(this.#forms.map((f) => f[0]!));
    this.#keep = Math.max(0, (this.#forms[0]?.length ?? 1) - 1);
  }

  /** Scrubs the next chunk; returns the bytes that are safe to store now. */
  push(chunk: Uint8Array): Uint8Array {
    if (this.#forms.length === 0) return chunk;
    const buf = new Uint8Array(this.#carry.length + chunk.length);
    buf.set(this.#carry);
    buf.set(chunk, this.#carry.length);
    const { out, rest } = this.#scan(buf, buf.length - this.#keep);
    this.#carry = rest;
    return out;
  }

  /** The held-back bytes, scrubbed, at the end of the stream. */
  flush(): Uint8Array {
    const { out } = this.#scan(this.#carry, this.#carry.length);
    this.#carry = new Uint8Array(0);
    return out;
  }

  #scan(buf: Uint8Array, safeEnd: number): { out: Uint8Array; rest: Uint8Array } {
    const pieces: Uint8Array[] = [];
    let from = 0;
    let i = 0;
    for (; i < safeEnd; i++) {
      if (!this.#first.has(buf[i]!)) continue;
      const form = this.#forms.find((f) =>
        i + f.length <= buf.length && f.every((b, j) => buf[i + j] === b)
      );
      if (form === undefined) continue;
      pieces.push(buf.subarray(from, i), this.#replacement);
      i += form.length - 1;
      from = i + 1;
    }
    const end = Math.max(from, Math.min(i, buf.length));
    pieces.push(buf.subarray(from, end));
    const size = pieces.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(size);
    let at = 0;
    for (const p of pieces) {
      out.set(p, at);
      at += p.length;
    }
    return { out, rest: buf.slice(end) };
  }
}

/** Appends to `index.jsonl` one line at a time per folder, in this process. */
const indexQueues = new Map<string, Promise<void>>();

function appendIndex(dir: string, entry: RecordingIndexEntry): Promise<void> {
  const line = JSON.stringify(entry) + "\n";
  const previous = indexQueues.get(dir) ?? Promise.resolve();
  // One write() with O_APPEND per line: whole lines even across processes.
  const next = previous.catch(() => {}).then(() =>
    Deno.writeTextFile(`${dir}/${INDEX_FILE}`, line, { append: true, create: true })
  );
  indexQueues.set(dir, next);
  next.finally(() => {
    if (indexQueues.get(dir) === next) indexQueues.delete(dir);
  }).catch(() => {});
  return next;
}

/**
 * Wraps `inner` so that every successful (2xx) `query_range` or instant
 * `query` answer is also
 * stored in `dir` while the caller streams it: each chunk is written through a
 * gzip `CompressionStream` to `<key>.json.gz.tmp-…` before it is passed on,
 * so memory stays bounded; when the body ends, the file is renamed to
 * `<key>.json.gz` and a line is appended to `index.jsonl`, all before the
 * caller sees the end of the body. A body that is cancelled or fails leaves
 * nothing behind. A later answer to the same request (a retry, a re-run)
 * replaces the stored body and appends another index line for the same key;
 * the last line for a key describes the stored body.
 * A successful build info answer is stored as `buildinfo.json` (scrubbed as
 * well). Non-2xx answers and other requests pass through unrecorded. `init` (with a
 * TLS `client`, signal, headers) is passed to `inner` unchanged; headers are
 * never written to disk. The bearer token of the request's `Authorization`
 * header and `options.secrets` are scrubbed from the stored body, the index
 * line and the key's text (the caller still gets the body unchanged).
 *
 * @example Record while querying
 * ```ts ignore
 * import { recordingFetch } from "./recording.ts";
 * import { ThanosClient } from "./thanos_client.ts";
 *
 * await Deno.mkdir("recording", { recursive: true });
 * const client = new ThanosClient({ url: "https://thanos:9091", fetch: recordingFetch("recording") });
 * ```
 */
export function recordingFetch(
  dir: string,
  inner: typeof fetch = fetch,
  options: RecordingOptions = {},
): typeof fetch {
  return async (input, init) => {
    const secrets = [...(options.secrets ?? []), bearerToken(input, init) ?? ""];
    const redactor = new Redactor(secrets);
    const raw = await readRecordable(input, init);
    const response = await inner(input, init);
    if (raw === undefined && response.ok && isBuildInfo(input)) {
      return await recordBuildInfo(dir, response, redactor);
    }
    if (raw === undefined || !response.ok || response.body === null) return response;
    const request = scrubRequest(raw, redactor);
    const key = await recordingKey(request);
    const scrubber = new ByteScrubber(secrets);
    return new Response(recordBody(dir, key, request, response.body, scrubber), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
}

function isBuildInfo(input: RequestInfo | URL): boolean {
  const url = new URL(input instanceof Request ? input.url : String(input));
  return url.pathname.endsWith(BUILD_INFO_SUFFIX);
}

/** Stores a build info answer (small: read whole) and passes it on unchanged. */
async function recordBuildInfo(
  dir: string,
  response: Response,
  redactor: Redactor,
): Promise<Response> {
  const body = new Uint8Array(await response.arrayBuffer());
  if (body.byteLength <= MAX_BUILD_INFO_BYTES) {
    await Deno.mkdir(dir, { recursive: true });
    const path = `${dir}/${BUILD_INFO_FILE}`;
    const tmp = `${path}.tmp-${crypto.randomUUID()}`;
    await Deno.writeTextFile(tmp, redactor.redact(new TextDecoder().decode(body)));
    await Deno.rename(tmp, path);
  }
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}

/** Options of {@linkcode recordingFetch}. */
export interface RecordingOptions {
  /**
   * Secrets never to store, besides the request's bearer token (which is
   * found in its `Authorization` header without being named here).
   */
  secrets?: readonly string[];
}

/**
 * Passes `source` through chunk by chunk (pulled on demand, so nothing piles
 * up), writing each chunk to a gzip spool file first; publishes the file and
 * its index line when `source` ends, and deletes it if `source` fails or the
 * reader cancels.
 */
function recordBody(
  dir: string,
  key: string,
  request: RecordedRequest,
  source: ReadableStream<Uint8Array>,
  scrubber: ByteScrubber,
): ReadableStream<Uint8Array> {
  const finalPath = `${dir}/${key}.json.gz`;
  const tmpPath = `${finalPath}.tmp-${crypto.randomUUID()}`;
  const reader = source.getReader();
  let spool:
    | { writer: WritableStreamDefaultWriter<BufferSource>; written: Promise<void> }
    | undefined;
  let bytes = 0;
  let settled = false;

  const open = async () => {
    await Deno.mkdir(dir, { recursive: true });
    const file = await Deno.open(tmpPath, { write: true, createNew: true });
    const gzip = new CompressionStream("gzip");
    const written = gzip.readable.pipeTo(file.writable);
    written.catch(() => {}); // awaited in finish() / discard()
    return { writer: gzip.writable.getWriter(), written };
  };
  const discard = async (reason: unknown) => {
    if (settled) return;
    settled = true;
    if (spool === undefined) return;
    await spool.writer.abort(reason).catch(() => {});
    await spool.written.catch(() => {});
    await Deno.remove(tmpPath).catch(() => {});
  };
  const finish = async () => {
    spool ??= await open();
    const tail = scrubber.flush();
    if (tail.length > 0) await spool.writer.write(tail as Uint8Array<ArrayBuffer>);
    await spool.writer.close();
    await spool.written;
    await Deno.rename(tmpPath, finalPath);
    settled = true;
    await appendIndex(dir, indexEntry(key, request, bytes));
  };

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        spool ??= await open();
        const next = await reader.read();
        if (next.done) {
          await finish();
          controller.close();
          return;
        }
        bytes += next.value.byteLength;
        const clean = scrubber.push(next.value);
        if (clean.length > 0) await spool.writer.write(clean as Uint8Array<ArrayBuffer>);
        controller.enqueue(next.value);
      } catch (error) {
        await discard(error);
        reader.cancel(error).catch(() => {});
        controller.error(error);
      }
    },
    async cancel(reason) {
      await reader.cancel(reason).catch(() => {});
      await discard(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * The `index.jsonl` line of a recorded answer: `{key, query, start, end, step,
 * bytes}` for a range query (as in recordings made before instant queries were
 * recorded), `{key, query, time, bytes}` for an instant query.
 */
function indexEntry(key: string, request: RecordedRequest, bytes: number): RecordingIndexEntry {
  if (request.time !== undefined) {
    return { key, query: request.query, time: Number(request.time), bytes };
  }
  return {
    key,
    query: request.query,
    start: Number(request.start),
    end: Number(request.end),
    step: Number(request.step),
    bytes,
  };
}

/** Options of {@linkcode replayFetch}. */
export interface ReplayOptions {
  /** Called for each request that has no recorded answer (before the 404 answer). */
  onMissing?: (request: RecordedRequest, key: string) => void;
}

/**
 * A `fetch` that answers `query_range` and instant `query` requests from a
 * recording in `dir`, without any network: the stored `<key>.json.gz` is
 * streamed through a `DecompressionStream` (never read whole). A request with
 * no recorded answer gets an HTTP 404 answer with a Prometheus-style error
 * body (`errorType` `not_found`) naming the query, its parameters (`start`,
 * `end`, `step`, or `time` for an instant query) and its key, which
 * `ThanosClient` turns into an immediate, non-retried error; `onMissing` is
 * called with the request first. A `/api/v1/series` request (label lookup) gets an empty
 * successful answer: a recording has no such answers, so the labels are
 * unknown. A build info request gets the recorded `buildinfo.json`, or a 404
 * (no build info endpoint) in a recording without one. Any other request gets
 * a 404. `init.client` and headers are ignored.
 *
 * @example Replay a recording
 * ```ts ignore
 * import { replayFetch } from "./recording.ts";
 * import { ThanosClient } from "./thanos_client.ts";
 *
 * const client = new ThanosClient({ url: "http://replay.invalid", fetch: replayFetch("recording") });
 * ```
 */
export function replayFetch(dir: string, options: ReplayOptions = {}): typeof fetch {
  return async (input, init) => {
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
    signal?.throwIfAborted();
    const request = await readRecordable(input, init);
    if (request === undefined) {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (url.pathname.endsWith(SERIES_SUFFIX)) {
        return new Response('{"status":"success","data":[]}', {
          status: 200,
          headers: { "Content-Type": "application/json" },
        });
      }
      if (url.pathname.endsWith(BUILD_INFO_SUFFIX)) {
        try {
          return new Response(await Deno.readFile(`${dir}/${BUILD_INFO_FILE}`), {
            status: 200,
            headers: { "Content-Type": "application/json" },
          });
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
          return errorResponse(404, "not_found", `no build info recorded in ${dir}`);
        }
      }
      return errorResponse(
        404,
        "not_found",
        "replay only answers POST /api/v1/query_range and /api/v1/query",
      );
    }
    const key = await recordingKey(request);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(`${dir}/${key}.json.gz`, { read: true });
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      options.onMissing?.(request, key);
      return errorResponse(
        404,
        "not_found",
        `no recorded answer in ${dir} for ${request.time !== undefined ? "instant " : ""}` +
          `query ${JSON.stringify(request.query)} (${describeParams(request)}, key ${key})`,
      );
    }
    const body = file.readable.pipeThrough(new DecompressionStream("gzip"));
    return new Response(body, {
      status: 200,
      headers: { "Content-Type": "application/json" },
    });
  };
}

function errorResponse(status: number, errorType: string, error: string): Response {
  return new Response(JSON.stringify({ status: "error", errorType, error }), {
    status,
    statusText: status === 404 ? "Not Found" : "",
    headers: { "Content-Type": "application/json" },
  });
}
