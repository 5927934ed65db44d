/**
 * HTTP client for the Thanos Query (Prometheus HTTP API) `query_range` and
 * `query` endpoints: POST form requests, streaming parsing, retries with backoff, a per-client
 * concurrency limit, bearer token, extra headers and custom TLS.
 *
 * @module
 */

import {
  BRIDGE_VERSION,
  BridgeError,
  type ErrorCode,
  escapeControl,
  isLabelName,
  showValue,
} from "../model.ts";
import { abortableSleep, abortRace, backoffDelay, parseRetryAfter } from "./backoff.ts";
import { Limiter } from "./limiter.ts";
import { Redactor } from "./redact.ts";
import {
  encodeReadRequest,
  type ReadMatcher,
  type ReadQuery,
  type ReadSeries,
  readStreamedAnswer,
  SeriesCallbackError,
  STREAMED_CONTENT_TYPE,
} from "./remote_read.ts";
import { snappyEncode } from "./snappy.ts";
import { parse as parseYaml } from "yaml";
import {
  type AnswerLimit,
  answerTooLarge,
  limitError,
  parseSeriesStream,
  type ParseSeriesStreamOptions,
  type Series,
  type SeriesStreamErrorCause,
  type SeriesStreamResult,
} from "./series_stream.ts";

export type { Series } from "./series_stream.ts";

/** Version sent in the `User-Agent` header (`thanos-bridge/<version>`). */
export const THANOS_BRIDGE_VERSION: string = BRIDGE_VERSION;

/** A range query. Times are unix seconds, `step` is in seconds. */
export interface RangeQuery {
  /** PromQL expression. */
  query: string;
  /** First evaluation time, unix seconds. */
  start: number;
  /** Last evaluation time, unix seconds. */
  end: number;
  /** Evaluation step in seconds (e.g. `60`). */
  step: number;
  /**
   * Stable short name of the query for messages, e.g. `node-allocatable-cpu-cores`
   * or `node-allocatable-cpu-cores/max` (default: the shortened expression).
   */
  id?: string;
  /** Cluster the query is for: named in messages, and the limiter's fairness key. */
  clusterId?: string;
  /** The hours the answer covers, for messages, e.g. `2026-11-01 03:00-03:59 UTC`. */
  hours?: string;
}

/**
 * An instant query, e.g. a range selector `x{…}[3720s]` whose answer is the raw
 * samples of each series in `(time - 3720 s, time]` (a `matrix`). Time is unix seconds.
 */
export interface InstantQuery {
  /** PromQL expression; its answer must be a `matrix` (a range selector or a subquery). */
  query: string;
  /** Evaluation time, unix seconds. */
  time: number;
  /** Stable short name of the query for messages (default: the shortened expression). */
  id?: string;
  /** Cluster the query is for: named in messages, and the limiter's fairness key. */
  clusterId?: string;
  /** The hours the answer covers, for messages. */
  hours?: string;
}

/**
 * Counters a caller passes to {@linkcode ThanosClient.queryRange} to add up the
 * traffic of its own calls (e.g. one run), next to the client's lifetime totals.
 * Updated as the traffic happens, failed attempts included.
 */
export interface QueryCounter {
  /** Calls started. */
  queries: number;
  /** HTTP attempts made. */
  attempts: number;
  /** Body bytes received. */
  bytes: number;
}

/**
 * One remote read (`POST /api/v1/read`): the series `matchers` select (the
 * metric name as a `__name__` matcher), with their samples in
 * `[startMs, endMs]` (ms). `query` is the selector's text, for messages.
 */
export interface RawReadQuery {
  query: string;
  startMs: number;
  endMs: number;
  matchers: readonly ReadMatcher[];
  /** Names the query in messages. */
  id?: string;
  /** The cluster: named in messages, and the fairness key. */
  clusterId?: string;
  /** For messages: the hours. */
  hours?: string;
}

/** Limits on one answer; see {@linkcode ThanosClientOptions}. */
export interface AnswerLimits {
  /** Bytes of one answer body. */
  maxAnswerBytes: number;
  /** Bytes of the JSON text of one series. */
  maxSeriesBytes: number;
  /** Bytes of one label value. */
  maxLabelBytes: number;
  /** Series in one answer. */
  maxSeries: number;
}

/**
 * Default answer limits, sized for the 512 MiB V8 heap the binary runs with.
 * Answers are parsed one series at a time, so the body size bounds time and
 * traffic, not memory; what stays in memory is about 1 KiB per series of an
 * answer (its labels), so 100,000 series keep ~100 MiB, and one series'
 * text (1 MiB) is held only while it is parsed.
 */
export const DEFAULT_ANSWER_LIMITS: Readonly<AnswerLimits> = {
  maxAnswerBytes: 256 * 1024 * 1024,
  maxSeriesBytes: 1024 * 1024,
  maxLabelBytes: 16 * 1024,
  maxSeries: 100_000,
};

/** The setting that raises each limit, named in `thanos_limit` errors. */
export const LIMIT_SETTINGS: Readonly<Record<AnswerLimit, string>> = {
  "answer-bytes": "--max-answer-mb",
  "series-bytes": "--max-series-kb",
  "label-bytes": "--max-label-kb",
  "series-count": "--max-series",
};

/** What one {@linkcode ThanosClient.queryRange} call did. */
export interface QueryStats {
  /** Bytes of the accepted answer body (the successful attempt). */
  bytes: number;
  /** Series streamed from the accepted answer. */
  series: number;
  /** Attempts made, including the successful one. */
  attempts: number;
  /** Wall time of the whole call in ms, including queueing and retry sleeps. */
  ms: number;
}

/** How one `queryRange` call ended, for self-metrics. */
export interface QueryOutcome {
  readonly ok: boolean;
  /** Error code of a failed call, null on success. */
  readonly code: string | null;
  /** Wall time of the whole call, retries included, in ms. */
  readonly ms: number;
  /** Bytes of the accepted answer (0 on failure). */
  readonly bytes: number;
}

/** Options of {@linkcode ThanosClient}. */
export interface ThanosClientOptions {
  /** Base URL, e.g. `https://thanos-query:9091`; a path prefix is allowed (`https://h/prefix`). */
  url: string;
  /** Timeout per attempt in ms, covering the whole body (default 120 000, CMMO's `context_timeout`). */
  timeoutMs?: number;
  /** Attempts per query, including the first (default 5). */
  maxAttempts?: number;
  /** Base of the exponential backoff in ms (default 1000). */
  baseDelayMs?: number;
  /** Cap of any retry delay in ms, including `Retry-After` (default 30 000). */
  maxDelayMs?: number;
  /** Requests in flight across all callers of this client (default 4). */
  concurrency?: number;
  /** Largest answer body in bytes (default 256 MiB; setting `--max-answer-mb`). */
  maxAnswerBytes?: number;
  /** Largest JSON text of one series in bytes (default 1 MiB; setting `--max-series-kb`). */
  maxSeriesBytes?: number;
  /** Largest label value in bytes (default 16 KiB; setting `--max-label-kb`). */
  maxLabelBytes?: number;
  /** Most series in one answer (default 100,000; setting `--max-series`). */
  maxSeries?: number;
  /**
   * How long a cluster keeps its fair share of the slots after its last request
   * ended, in ms (default 2000), so that between two hours of one cluster another
   * cluster's queued queries cannot take every slot; see {@linkcode Limiter}.
   */
  fairnessGraceMs?: number;
  /** Bearer token. Never logged, and removed from any error text. */
  token?: string;
  /**
   * Whether to ask for gzip-compressed answers. Default false:
   * `Accept-Encoding: identity`, so the server spends no CPU on compression,
   * which is right for a sidecar on loopback or the pod network (gzip doubled
   * Prometheus's CPU per large raw-sample answer). True: `Accept-Encoding: gzip`,
   * for a slow link to a remote Thanos; `fetch` decompresses transparently.
   * The answer limits count decompressed bytes either way. An `Accept-Encoding`
   * in {@linkcode ThanosClientOptions.headers} wins over this.
   */
  compression?: boolean;
  /** Extra request headers, e.g. a tenant header (applied after the defaults, so they win). */
  headers?: Record<string, string>;
  /** Extra trusted CA certificate(s), PEM. */
  caCert?: string;
  /** Client certificate chain for mTLS, PEM (requires `clientKey`). */
  clientCert?: string;
  /** Client private key for mTLS, PEM (requires `clientCert`). */
  clientKey?: string;
  /**
   * Transport (record/replay, tests); defaults to the global `fetch`. When TLS
   * options are given, the `Deno.HttpClient` built from them is passed as
   * `init.client` to this function too, so a wrapper that forwards `init` to
   * the global `fetch` (like `recordingFetch`) keeps the TLS settings.
   */
  fetch?: typeof fetch;
  /** Jitter source in [0, 1) (default `Math.random`). */
  random?: () => number;
  /** Sleep between attempts (default: an abortable `setTimeout`). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Called once per `queryRange` or `queryInstant` call when it ends (self-metrics). */
  onQuery?: (outcome: QueryOutcome) => void;
  /** `User-Agent` header (default `thanos-bridge/<THANOS_BRIDGE_VERSION>`). */
  userAgent?: string;
}

/** Passed to the `onRetry` callback of {@linkcode ThanosClient.queryRange}. */
export interface RetryInfo {
  /** Number of the attempt about to be made (2 for the first retry). */
  attempt: number;
  /** Delay before that attempt, in ms. */
  delayMs: number;
  /** Why the previous attempt failed (never contains the token). */
  reason: string;
}

/** Structured details in the `cause` of an error from {@linkcode ThanosClient.queryRange}. */
export interface QueryErrorCause {
  /** The full PromQL expression. */
  query: string;
  /** The query's short id, if the request had one. */
  id?: string;
  /** The cluster, if the request named one. */
  clusterId?: string;
  /** What went wrong in the last attempt. */
  kind:
    | "http"
    | "api"
    | "warnings"
    | "result"
    | "malformed"
    | "network"
    | "timeout"
    | "limit";
  /** With `kind: "limit"`: which limit, and the setting that raises it. */
  limit?: { name: AnswerLimit; max: number; setting: string };
  /** Whether the last failure was of a retryable kind. */
  retryable: boolean;
  /** Attempts made. */
  attempts: number;
  /** HTTP status of the last answer, if one arrived. */
  status?: number;
  /** Prometheus `errorType`, if the answer had one. */
  errorType?: string;
  /** Warnings of the last answer, if that was the failure. */
  warnings?: string[];
}

/** Totals since construction of a {@linkcode ThanosClient}. */
export interface ThanosClientTotals {
  /** `queryRange` calls started. */
  queries: number;
  /** HTTP attempts made. */
  attempts: number;
  /** Body bytes received, over all attempts (failed ones included). */
  bytes: number;
}

const QUERY_RANGE_PATH = "/api/v1/query_range";
const QUERY_PATH = "/api/v1/query";
const BUILD_INFO_PATH = "/api/v1/status/buildinfo";
const SERIES_PATH = "/api/v1/series";
const LABEL_VALUES_PATH = "/api/v1/label/";
const REMOTE_READ_PATH = "/api/v1/read";
const CONFIG_PATH = "/api/v1/status/config";
/** Request headers of a remote read. */
const REMOTE_READ_HEADERS: Readonly<Record<string, string>> = {
  "Content-Type": "application/x-protobuf",
  "Content-Encoding": "snappy",
  "Accept": "application/x-streamed-protobuf",
  "X-Prometheus-Remote-Read-Version": "0.1.0",
};

/** The stable error code of each kind of failure. */
const KIND_CODES: Readonly<Record<QueryErrorCause["kind"], ErrorCode>> = {
  http: "thanos_http",
  api: "thanos_http",
  network: "thanos_http",
  warnings: "thanos_warning",
  result: "thanos_parse",
  malformed: "thanos_parse",
  timeout: "thanos_timeout",
  limit: "thanos_limit",
};

/** `n` bytes in the unit of the setting that limits them (MiB or KiB). */
function formatLimit(limit: AnswerLimit, max: number): string {
  switch (limit) {
    case "answer-bytes":
      return `${+(max / 1048576).toFixed(3)} MiB`;
    case "series-bytes":
    case "label-bytes":
      return `${+(max / 1024).toFixed(3)} KiB`;
    case "series-count":
      return `${max} series`;
  }
}
const ERROR_BODY_LIMIT = 64 * 1024;
const RETRYABLE_ERROR_TYPES = new Set([
  "timeout",
  "canceled",
  "execution",
  "internal",
  "unavailable",
]);

/**
 * Shortens a PromQL expression for messages: whitespace runs become one space,
 * and anything beyond `max` characters is replaced by `…`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shortenQuery } from "./thanos_client.ts";
 *
 * assert.equal(shortenQuery("sum by (pod) (\n  x\n)"), "sum by (pod) ( x )");
 * assert.equal(shortenQuery("abcdef", 4), "abc…");
 * ```
 */
export function shortenQuery(query: string, max = 160): string {
  const flat = query.replace(/\s+/g, " ").trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/**
 * Builds the form body of a `query_range` request: `query`, `start`, `end`,
 * `step` (seconds), `partial_response=false`, `dedup=true`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { queryRangeForm } from "./thanos_client.ts";
 *
 * const form = queryRangeForm({ query: "up", start: 0, end: 3540, step: 60 });
 * assert.equal(form.toString(), "query=up&start=0&end=3540&step=60&partial_response=false&dedup=true");
 * ```
 */
export function queryRangeForm(q: RangeQuery): URLSearchParams {
  if (typeof q.query !== "string" || q.query.trim() === "") {
    throw new TypeError(`query must be a non-empty PromQL string, got ${JSON.stringify(q.query)}`);
  }
  for (const name of ["start", "end", "step"] as const) {
    if (!Number.isFinite(q[name])) {
      throw new RangeError(`${name} must be a finite number of seconds, got ${q[name]}`);
    }
  }
  if (q.step <= 0) throw new RangeError(`step must be positive, got ${q.step}`);
  if (q.end < q.start) {
    throw new RangeError(`end (${q.end}) must not be before start (${q.start})`);
  }
  return new URLSearchParams([
    ["query", q.query],
    ["start", String(q.start)],
    ["end", String(q.end)],
    ["step", String(q.step)],
    ["partial_response", "false"],
    ["dedup", "true"],
  ]);
}

/**
 * Builds the form body of an instant `query` request: `query`, `time` (unix
 * seconds), `partial_response=false`, `dedup=true`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { queryInstantForm } from "./thanos_client.ts";
 *
 * const form = queryInstantForm({ query: "up[3720s]", time: 3540 });
 * assert.equal(form.toString(), "query=up%5B3720s%5D&time=3540&partial_response=false&dedup=true");
 * ```
 */
export function queryInstantForm(q: InstantQuery): URLSearchParams {
  if (typeof q.query !== "string" || q.query.trim() === "") {
    throw new TypeError(`query must be a non-empty PromQL string, got ${JSON.stringify(q.query)}`);
  }
  if (!Number.isFinite(q.time)) {
    throw new RangeError(`time must be a finite number of seconds, got ${q.time}`);
  }
  return new URLSearchParams([
    ["query", q.query],
    ["time", String(q.time)],
    ["partial_response", "false"],
    ["dedup", "true"],
  ]);
}

/** What a body reader of {@linkcode ThanosClient} returns: the answer's fields and its size. */
type ReadAnswer = SeriesStreamResult & { bytes: number };

/** Reads an answer's body instead of the series parser (label values, build info). */
type BodyReader = (
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
  onBytes: (n: number) => void,
) => Promise<ReadAnswer>;

/** How {@linkcode ThanosClient} reads one attempt's answer. */
interface AttemptHow {
  onSeries: (s: Series) => void;
  limits: Pick<ParseSeriesStreamOptions, "shape">;
  counter?: QueryCounter | undefined;
  /** Reads the body instead of the series parser; `limits.shape` still picks the checks. */
  read?: BodyReader;
  /** Checks a 200 answer's headers before its body is read: a reason refuses it (not retried). */
  expect?: (response: Response) => string | undefined;
}

/** A whole small JSON answer whose top level is an object: the object, its `warnings` as strings, its size. */
interface WholeJsonAnswer {
  readonly top: Record<string, unknown>;
  readonly warnings: string[];
  readonly bytes: number;
}

/** An error for a malformed answer, classified like the series parser's. */
function malformedAnswer(message: string): SyntaxError {
  return new SyntaxError(message, {
    cause: { reason: "malformed", offset: 0 } satisfies SeriesStreamErrorCause,
  });
}

/** A field of an answer as text: a string as is, anything else as JSON. */
function answerText(v: unknown): string | undefined {
  return v === undefined ? undefined : typeof v === "string" ? v : JSON.stringify(v);
}

/**
 * Reads `body` whole, up to `maxBytes` (else an `answer-bytes` limit error),
 * and parses it as a JSON object; `what` names the answer in errors
 * (e.g. "label values answer"). Errors carry a
 * {@linkcode SeriesStreamErrorCause} like the series parser's, so they are
 * classified the same way.
 */
async function readWholeJson(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
  signal: AbortSignal,
  onBytes: (n: number) => void,
  what: string,
): Promise<WholeJsonAnswer> {
  const { bytes: all } = await readChunks(body, signal, (chunk, total) => {
    onBytes(chunk.byteLength);
    if (total > maxBytes) throw answerTooLarge(maxBytes, total);
    return true;
  });
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(all));
  } catch (error) {
    throw malformedAnswer(
      `${what} is not valid JSON (${
        error instanceof Error ? error.message.slice(0, 200) : String(error)
      })`,
    );
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw malformedAnswer(`${what} is not a JSON object`);
  }
  const top = json as Record<string, unknown>;
  const warnings = Array.isArray(top.warnings)
    ? top.warnings.map((w) => typeof w === "string" ? w : JSON.stringify(w))
    : top.warnings === undefined || top.warnings === null || top.warnings === ""
    ? []
    : [String(answerText(top.warnings))];
  return { top, warnings, bytes: all.byteLength };
}

/**
 * Reads a `/api/v1/label/<name>/values` answer (`{"status", "data": [strings],
 * "warnings"}`), which the series parser cannot read (its `data` holds strings,
 * not objects). The body is read whole, up to `maxAnswerBytes`, then parsed;
 * each value counts as a series for `maxSeries` and must be at most
 * `maxLabelBytes`. Errors carry a {@linkcode SeriesStreamErrorCause} like the
 * series parser's, so they are classified the same way.
 */
async function readLabelValues(
  body: ReadableStream<Uint8Array>,
  onValue: (value: string) => void,
  limits: AnswerLimits,
  signal: AbortSignal,
  onBytes: (n: number) => void,
): Promise<ReadAnswer> {
  const { top, warnings, bytes } = await readWholeJson(
    body,
    limits.maxAnswerBytes,
    signal,
    onBytes,
    "label values answer",
  );
  const data = top.data;
  let count = 0;
  if (top.status === "success" && warnings.length === 0 && Array.isArray(data)) {
    const encoder = new TextEncoder();
    for (const value of data) {
      if (typeof value !== "string") {
        throw malformedAnswer(`label value ${count + 1} is not a string`);
      }
      if (count >= limits.maxSeries) {
        throw limitError(
          "series-count",
          limits.maxSeries,
          `the answer has more than ${limits.maxSeries} values`,
          bytes,
        );
      }
      if (
        value.length > limits.maxLabelBytes / 3 &&
        encoder.encode(value).length > limits.maxLabelBytes
      ) {
        throw limitError(
          "label-bytes",
          limits.maxLabelBytes,
          `label value ${count + 1} is larger than ${limits.maxLabelBytes} bytes`,
          bytes,
        );
      }
      count++;
      onValue(value);
    }
  }
  return {
    status: answerText(top.status),
    resultType: undefined,
    // Some Thanos versions answer `"data": null` when nothing matches.
    hasResult: Array.isArray(data) || (data === null && top.status === "success"),
    series: count,
    warnings,
    errorType: answerText(top.errorType),
    error: answerText(top.error),
    bytes,
  };
}

/** What names a query in messages: a {@linkcode RangeQuery} or an {@linkcode InstantQuery}. */
type QueryName = Pick<RangeQuery, "query" | "id" | "clusterId" | "hours">;

/**
 * Reads a small JSON answer whose `data` is an object (`/api/v1/status/…`)
 * whole, up to `maxBytes`. Errors carry a {@linkcode SeriesStreamErrorCause}
 * like the series parser's, so they are classified the same way.
 */
async function readJsonObject(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
  signal: AbortSignal,
  onBytes: (n: number) => void,
): Promise<ReadAnswer & { data: Record<string, unknown> | null }> {
  const { top, warnings, bytes } = await readWholeJson(body, maxBytes, signal, onBytes, "answer");
  const data = typeof top.data === "object" && top.data !== null && !Array.isArray(top.data)
    ? top.data as Record<string, unknown>
    : null;
  return {
    status: answerText(top.status),
    resultType: undefined,
    hasResult: data !== null,
    series: 0,
    warnings,
    errorType: answerText(top.errorType),
    error: answerText(top.error),
    bytes,
    data,
  };
}

/** Internal: one failed attempt. */
class AttemptFailure {
  constructor(
    readonly reason: string,
    readonly kind: QueryErrorCause["kind"],
    readonly retryable: boolean,
    readonly extra: {
      status?: number;
      errorType?: string;
      warnings?: string[];
      limit?: QueryErrorCause["limit"];
    } = {},
    readonly retryAfterMs?: number,
  ) {}
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative number of ms, got ${value}`);
  }
  return value;
}

/**
 * Reads `body` chunk by chunk into memory until it ends or `keep` returns
 * false (then the rest is cancelled); aborts with `signal`. Returns the bytes
 * kept, joined, and whether the body was read to its end.
 */
async function readChunks(
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
  keep: (chunk: Uint8Array, total: number) => boolean,
): Promise<{ bytes: Uint8Array; ended: boolean }> {
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  let done = false;
  const abort = abortRace(signal);
  const aborted = abort.promise;
  try {
    while (true) {
      const next = await Promise.race([reader.read(), aborted]);
      if (next.done) {
        done = true;
        break;
      }
      parts.push(next.value);
      size += next.value.byteLength;
      if (!keep(next.value, size)) break;
    }
  } finally {
    abort.dispose();
    if (!done) reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.byteLength;
  }
  return { bytes: all, ended: done };
}

/** Reads at most `limit` bytes of an error body as text (`cut` when there was more); aborts with `signal`. */
async function readLimitedText(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  signal: AbortSignal,
): Promise<{ text: string; cut: boolean }> {
  if (body === null) return { text: "", cut: false };
  const { bytes } = await readChunks(body, signal, (_, total) => total < limit);
  return {
    text: new TextDecoder().decode(bytes.subarray(0, Math.min(bytes.byteLength, limit))),
    cut: bytes.byteLength > limit,
  };
}

/**
 * Client for one Thanos Query endpoint. All calls of one client share one FIFO
 * limit of requests in flight; a request holds its slot for the whole attempt,
 * body included, but not while sleeping before a retry.
 *
 * Retried (up to `maxAttempts`, capped exponential backoff with full jitter,
 * `Retry-After` honoured on 429/503 and capped at `maxDelayMs`): network errors,
 * timeouts, bodies that end early, HTTP 429, 422 and 5xx, `status: "error"`
 * answers whose `errorType` is transient (`timeout`, `canceled`, `execution`,
 * `internal`, `unavailable`), and answers with a non-empty `warnings` array.
 *
 * **Warnings decision:** Thanos puts partial-response problems (an unreachable
 * store, a dropped series set) in `warnings`, and those are usually transient, so
 * an answer with warnings is retried like a 5xx; if the last attempt still has
 * warnings the call fails with an error naming the query and the warnings. Its
 * series are never accepted (BRIDGE.md §1). `infos` are ignored.
 *
 * Not retried (fail at once with the server's text): other 4xx (400 bad query,
 * 401, 403, 404 …), other `status: "error"` answers, a `resultType` other than
 * `matrix`, answers that are not valid JSON, and answers past a limit
 * (`maxAnswerBytes`, `maxSeriesBytes`, `maxLabelBytes`, `maxSeries`). An
 * abort through the caller's signal rejects at once with a `cancelled`
 * error. An exception thrown by `onSeries` is rethrown unchanged, without retry.
 *
 * **Fairness:** the requests of one client share `concurrency` slots; a
 * request's `clusterId` is its fairness key, so while several clusters are
 * active none holds more than half of the slots (see {@linkcode Limiter}), and a
 * cluster whose queries hang cannot hold up the others.
 *
 * Errors are {@linkcode BridgeError}s (`thanos_http`, `thanos_warning`,
 * `thanos_parse`, `thanos_limit`, `thanos_timeout`, `cancelled`) whose message
 * names the query by its `id`, the cluster and the hours, and the reason, with a
 * {@linkcode QueryErrorCause} as `cause`. The bearer token never appears in them
 * (it is removed before any text is cut), and control characters of server text
 * are shown as escapes.
 *
 * @example Query a range and collect the series
 * ```ts ignore
 * import { ThanosClient, type Series } from "./thanos_client.ts";
 *
 * const client = new ThanosClient({ url: "https://thanos-query:9091", token: "…" });
 * try {
 *   let series: Series[] = [];
 *   const stats = await client.queryRange(
 *     { query: "up", start: 1_793_491_200, end: 1_793_494_799, step: 60 },
 *     (s) => series.push(s),
 *     undefined,
 *     () => { series = []; }, // a retry restarts the answer
 *   );
 *   console.log(stats.series, series.length);
 * } finally {
 *   client.close();
 * }
 * ```
 */
export class ThanosClient {
  readonly #endpoint: URL;
  /** `…/api/v1/query`, beside {@linkcode #endpoint}. */
  readonly #queryEndpoint: string;
  readonly #timeoutMs: number;
  readonly #maxAttempts: number;
  readonly #onQuery: ((outcome: QueryOutcome) => void) | undefined;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #limiter: Limiter;
  readonly #limits: AnswerLimits;
  readonly #token: string | undefined;
  readonly #redactor: Redactor;
  readonly #headers: Headers;
  readonly #fetch: typeof fetch;
  readonly #random: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #httpClient: Deno.HttpClient | undefined;
  readonly #totals: ThanosClientTotals = { queries: 0, attempts: 0, bytes: 0 };
  #closed = false;

  /**
   * @param options See {@linkcode ThanosClientOptions}.
   *
   * @example
   * ```ts
   * import { ThanosClient } from "./thanos_client.ts";
   *
   * const client = new ThanosClient({ url: "http://127.0.0.1:9090", concurrency: 2 });
   * client.close();
   * ```
   */
  constructor(options: ThanosClientOptions) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch (error) {
      throw new TypeError(`Thanos URL is not a valid URL: ${JSON.stringify(options.url)}`, {
        cause: error,
      });
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new TypeError(
        `Thanos URL must use http or https, got ${JSON.stringify(base.protocol)}`,
      );
    }
    if (base.username !== "" || base.password !== "") {
      throw new TypeError("Thanos URL must not contain credentials; use the token option");
    }
    base.search = "";
    base.hash = "";
    base.pathname = base.pathname.replace(/\/+$/, "") + QUERY_RANGE_PATH;
    this.#endpoint = base;
    this.#queryEndpoint = base.href.slice(0, -QUERY_RANGE_PATH.length) + QUERY_PATH;

    this.#timeoutMs = positiveInteger("timeoutMs", options.timeoutMs ?? 120_000);
    this.#maxAttempts = positiveInteger("maxAttempts", options.maxAttempts ?? 5);
    this.#onQuery = options.onQuery;
    this.#baseDelayMs = nonNegative("baseDelayMs", options.baseDelayMs ?? 1000);
    this.#maxDelayMs = nonNegative("maxDelayMs", options.maxDelayMs ?? 30_000);
    this.#limiter = new Limiter(positiveInteger("concurrency", options.concurrency ?? 4), {
      idleGraceMs: nonNegative("fairnessGraceMs", options.fairnessGraceMs ?? 2000),
    });
    this.#limits = {
      maxAnswerBytes: positiveInteger(
        "maxAnswerBytes",
        options.maxAnswerBytes ?? DEFAULT_ANSWER_LIMITS.maxAnswerBytes,
      ),
      maxSeriesBytes: positiveInteger(
        "maxSeriesBytes",
        options.maxSeriesBytes ?? DEFAULT_ANSWER_LIMITS.maxSeriesBytes,
      ),
      maxLabelBytes: positiveInteger(
        "maxLabelBytes",
        options.maxLabelBytes ?? DEFAULT_ANSWER_LIMITS.maxLabelBytes,
      ),
      maxSeries: positiveInteger("maxSeries", options.maxSeries ?? DEFAULT_ANSWER_LIMITS.maxSeries),
    };
    this.#token = options.token === "" ? undefined : options.token;
    this.#redactor = new Redactor([this.#token]);
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? abortableSleep;

    const headers = new Headers();
    headers.set("Accept", "application/json");
    headers.set("User-Agent", options.userAgent ?? `thanos-bridge/${THANOS_BRIDGE_VERSION}`);
    // Without it, `fetch` sends `gzip,br` and the server compresses every answer.
    headers.set("Accept-Encoding", options.compression === true ? "gzip" : "identity");
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      try {
        headers.set(name, value);
      } catch (error) {
        throw new TypeError(`invalid extra header ${JSON.stringify(name)}`, { cause: error });
      }
    }
    headers.set("Content-Type", "application/x-www-form-urlencoded");
    if (this.#token !== undefined) {
      try {
        headers.set("Authorization", `Bearer ${this.#token}`);
      } catch {
        // Do not chain the cause: it could echo the token.
        throw new TypeError("bearer token contains characters not allowed in an HTTP header");
      }
    }
    this.#headers = headers;

    const { caCert, clientCert, clientKey } = options;
    if ((clientCert === undefined) !== (clientKey === undefined)) {
      throw new TypeError("clientCert and clientKey must be given together for mTLS");
    }
    if (caCert !== undefined || clientCert !== undefined) {
      const tls: Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem> = {};
      if (caCert !== undefined) tls.caCerts = [caCert];
      if (clientCert !== undefined && clientKey !== undefined) {
        tls.cert = clientCert;
        tls.key = clientKey;
      }
      try {
        this.#httpClient = Deno.createHttpClient(tls as Deno.CreateHttpClientOptions);
      } catch (error) {
        throw new TypeError(
          `cannot set up TLS for ${this.#endpoint.origin}: ${
            error instanceof Error ? error.message : String(error)
          }`,
          { cause: error },
        );
      }
    }
  }

  /** Totals since construction. */
  get stats(): Readonly<ThanosClientTotals> {
    return { ...this.#totals };
  }

  /** The answer limits in force. */
  get limits(): Readonly<AnswerLimits> {
    return { ...this.#limits };
  }

  /**
   * Runs one `query_range` request (with retries) and streams every series of
   * the `matrix` answer to `onSeries` as it is parsed. Resolves with the call's
   * {@linkcode QueryStats} only once the whole answer was read and checked
   * (status, result type, warnings, limits), so the caller must commit what it
   * accumulated only after the promise resolves. When an attempt fails after
   * some series were streamed, `onRetry` is called before the next attempt so
   * the caller can drop them.
   *
   * @param q The range query (unix seconds), with its id, cluster and hours for messages.
   * @param onSeries Called for each series of the answer, in answer order.
   * @param signal Aborts the call (waiting, request, body and retry sleeps): a `cancelled` error.
   * @param onRetry Called before every retry, after a failed attempt.
   * @param counter Counters of the caller's own traffic, updated as it happens.
   *
   * @example
   * ```ts ignore
   * import { ThanosClient } from "./thanos_client.ts";
   *
   * const client = new ThanosClient({ url: "http://127.0.0.1:9090" });
   * const run = { queries: 0, attempts: 0, bytes: 0 };
   * const stats = await client.queryRange(
   *   { query: "up", start: 0, end: 3540, step: 60, id: "up", clusterId: "c1" },
   *   (s) => console.log(s.metric),
   *   undefined,
   *   undefined,
   *   run,
   * );
   * console.log(`${stats.series} series, ${stats.bytes} bytes, ${stats.attempts} attempt(s)`);
   * client.close();
   * ```
   */
  async queryRange(
    q: RangeQuery,
    onSeries: (s: Series) => void,
    signal?: AbortSignal,
    onRetry?: (info: RetryInfo) => void,
    counter?: QueryCounter,
  ): Promise<QueryStats> {
    if (this.#closed) throw new Error("ThanosClient is closed");
    const form = queryRangeForm(q).toString();
    return await this.#runQuery(
      q,
      `start=${q.start}, end=${q.end}, step=${q.step}`,
      { method: "POST", url: this.#endpoint.href, body: form, key: q.clusterId ?? "" },
      onSeries,
      signal,
      onRetry,
      counter,
    );
  }

  /**
   * Runs one instant `query` request (`POST /api/v1/query`, form `query`,
   * `time`, `partial_response=false`, `dedup=true`) with exactly the retries,
   * limits, warning handling, counters, `onQuery` hook, cancellation and error
   * codes of {@linkcode ThanosClient.queryRange}, and streams every series of
   * its answer to `onSeries`. The answer must be a `matrix`: the query is
   * meant to be a range selector such as `x{…}[3720s]` (its answer is the raw
   * samples of each series in the window ending at `time`) or a subquery; a
   * `vector` or `scalar` answer fails with a `thanos_parse` error naming the
   * type. As with `queryRange`, commit what `onSeries` collected only once the
   * promise resolves, and drop it in `onRetry`.
   *
   * @param q The instant query (unix seconds), with its id, cluster and hours for messages.
   * @param onSeries Called for each series of the answer, in answer order.
   * @param signal Aborts the call (waiting, request, body and retry sleeps): a `cancelled` error.
   * @param onRetry Called before every retry, after a failed attempt.
   * @param counter Counters of the caller's own traffic, updated as it happens.
   *
   * @example
   * ```ts ignore
   * import { ThanosClient } from "./thanos_client.ts";
   *
   * const client = new ThanosClient({ url: "http://127.0.0.1:9090" });
   * const stats = await client.queryInstant(
   *   { query: 'kube_pod_info{clusterID="c1"}[3720s]', time: 1_793_494_799, id: "raw" },
   *   (s) => console.log(s.metric, s.values.length),
   * );
   * console.log(`${stats.series} series, ${stats.bytes} bytes`);
   * client.close();
   * ```
   */
  async queryInstant(
    q: InstantQuery,
    onSeries: (s: Series) => void,
    signal?: AbortSignal,
    onRetry?: (info: RetryInfo) => void,
    counter?: QueryCounter,
  ): Promise<QueryStats> {
    if (this.#closed) throw new Error("ThanosClient is closed");
    const form = queryInstantForm(q).toString();
    return await this.#runQuery(
      q,
      `time=${q.time}`,
      { method: "POST", url: this.#queryEndpoint, body: form, key: q.clusterId ?? "" },
      onSeries,
      signal,
      onRetry,
      counter,
    );
  }

  /**
   * The server's `GET /api/v1/status/buildinfo` answer: its `data` object, or
   * `null` when the server has no such endpoint (HTTP 404 or 405, e.g. a proxy
   * that only forwards queries, or a replay) or its answer is not a JSON
   * object with a `data` object (e.g. a proxy's HTML page). Retried like
   * {@linkcode ThanosClient.queryRange} (network errors, timeouts, 429/422/5xx),
   * with the client's token, headers and TLS settings; other failures are
   * {@linkcode BridgeError}s with the same codes. The body may be at most 1 MiB.
   * See `build_info.ts` for what the fields mean.
   *
   * @param signal Aborts the call: a `cancelled` error.
   * @returns e.g. `{ version: "2.42.0", revision: "…", branch: "…", goVersion: "go1.19.8", … }`.
   *
   * @example
   * ```ts ignore
   * import { ThanosClient } from "./thanos_client.ts";
   *
   * const client = new ThanosClient({ url: "http://127.0.0.1:9090" });
   * const data = await client.buildInfo(); // { version: "2.42.0+ds", … } or null
   * client.close();
   * ```
   */
  async buildInfo(signal?: AbortSignal): Promise<Record<string, unknown> | null> {
    if (this.#closed) throw new Error("ThanosClient is closed");
    const url = this.#url(BUILD_INFO_PATH);
    const describe = () => `build info request to ${this.#endpoint.origin}`;
    let data: Record<string, unknown> | null = null;
    const read: BodyReader = async (body, s, onBytes) => {
      const answer = await readJsonObject(
        body,
        Math.min(this.#limits.maxAnswerBytes, 1 << 20),
        s,
        onBytes,
      );
      data = answer.data;
      return answer;
    };
    const found = await this.#lookup(url, describe, read, signal, {
      reset: () => {
        data = null;
      },
      // No such endpoint, or an answer that is not a status object (a proxy's page): unknown.
      unknown: (outcome) =>
        outcome.extra.status === 404 || outcome.extra.status === 405 ||
        outcome.kind === "malformed" || outcome.kind === "result",
    });
    return found ? data : null;
  }

  /**
   * The retry loop of a GET lookup ({@linkcode ThanosClient.buildInfo},
   * {@linkcode ThanosClient.labelValues}) whose body `read` reads: `reset`
   * before each attempt, backoff between them. True when an attempt
   * succeeded, false when a failure is one `unknown` accepts; else a
   * {@linkcode BridgeError} naming `describe()` once the failure is not
   * retryable or the attempts run out, or a `cancelled` one on an abort.
   */
  async #lookup(
    url: string,
    describe: () => string,
    read: BodyReader,
    signal: AbortSignal | undefined,
    how: { reset: () => void; unknown?: (outcome: AttemptFailure) => boolean },
  ): Promise<boolean> {
    this.#totals.queries++;
    let attempts = 0;
    try {
      while (true) {
        signal?.throwIfAborted();
        attempts++;
        how.reset();
        const outcome = await this.#attempt(
          { method: "GET", url, key: "" },
          { onSeries: () => {}, limits: { shape: "labels" }, read },
          signal,
        );
        if (!(outcome instanceof AttemptFailure)) return true;
        if (how.unknown?.(outcome)) return false;
        if (!outcome.retryable || attempts >= this.#maxAttempts) {
          const tries = attempts === 1 ? "1 attempt" : `${attempts} attempts`;
          throw new BridgeError(
            KIND_CODES[outcome.kind],
            escapeControl(
              this.#redactor.redact(`${describe()} failed after ${tries}: ${outcome.reason}`),
              false,
            ),
            {
              cause: {
                kind: outcome.kind,
                retryable: outcome.retryable,
                attempts,
                ...outcome.extra,
              },
            },
          );
        }
        await this.#sleep(this.#retryDelay(outcome, attempts), signal);
      }
    } catch (error) {
      throw this.#cancelled(error, signal, describe);
    }
  }

  /** The retry loop of a query (range or instant): attempts, backoff, `onQuery`, typed errors. */
  async #runQuery(
    q: QueryName,
    params: string,
    request: {
      method: "POST";
      url: string;
      body: string | Uint8Array<ArrayBuffer>;
      key: string;
      headers?: Readonly<Record<string, string>>;
    },
    onSeries: (s: Series) => void,
    signal: AbortSignal | undefined,
    onRetry: ((info: RetryInfo) => void) | undefined,
    counter: QueryCounter | undefined,
    how: Pick<AttemptHow, "read" | "expect"> = {},
  ): Promise<QueryStats> {
    const started = performance.now();
    this.#totals.queries++;
    if (counter) counter.queries++;
    let attempts = 0;
    try {
      while (true) {
        signal?.throwIfAborted();
        attempts++;
        const outcome = await this.#attempt(
          request,
          { onSeries, limits: {}, counter, ...how },
          signal,
        );
        if (!(outcome instanceof AttemptFailure)) {
          const ms = Math.round(performance.now() - started);
          this.#onQuery?.({ ok: true, code: null, ms, bytes: outcome.bytes });
          return { bytes: outcome.bytes, series: outcome.series, attempts, ms };
        }
        if (!outcome.retryable || attempts >= this.#maxAttempts) {
          throw this.#queryError(q, params, outcome, attempts);
        }
        const delayMs = this.#retryDelay(outcome, attempts);
        onRetry?.({ attempt: attempts + 1, delayMs, reason: outcome.reason });
        await this.#sleep(delayMs, signal);
      }
    } catch (error) {
      const failure = this.#cancelled(error, signal, () => this.#describe(q));
      this.#onQuery?.({
        ok: false,
        code: failure instanceof BridgeError ? failure.code : "internal",
        ms: Math.round(performance.now() - started),
        bytes: 0,
      });
      throw failure;
    }
  }

  /** Delay before the attempt after `attempts` failed ones: `Retry-After` (capped) or backoff. */
  #retryDelay(outcome: AttemptFailure, attempts: number): number {
    return outcome.retryAfterMs !== undefined
      ? Math.min(outcome.retryAfterMs, this.#maxDelayMs)
      : backoffDelay(attempts, {
        baseDelayMs: this.#baseDelayMs,
        maxDelayMs: this.#maxDelayMs,
        random: this.#random,
      });
  }

  /**
   * Names of the labels whose value is `value` on the series that match
   * `match` between `start` and `end` (unix seconds), from `/api/v1/series`,
   * sorted. Used to hint which label carries a cluster id when the configured
   * one matches nothing. The answer is subject to the same limits as a range
   * answer (each label set counts as a series); one attempt, no retries.
   * Against a replay (`replayFetch`) the answer is empty: unknown.
   *
   * @param value The label value to look for, e.g. a cluster id.
   * @param match A series selector, e.g. `kube_node_info`.
   * @param start Unix seconds.
   * @param end Unix seconds.
   * @param signal Aborts the call: a `cancelled` error.
   *
   * @example
   * ```ts ignore
   * import { ThanosClient } from "./thanos_client.ts";
   *
   * const client = new ThanosClient({ url: "http://127.0.0.1:9090" });
   * const now = Math.floor(Date.now() / 1000);
   * await client.findLabelsWithValue("my-cluster", "kube_node_info", now - 3600, now);
   * // e.g. ["cluster"]: set --cluster-label cluster
   * client.close();
   * ```
   */
  async findLabelsWithValue(
    value: string,
    match: string,
    start: number,
    end: number,
    signal?: AbortSignal,
  ): Promise<string[]> {
    if (this.#closed) throw new Error("ThanosClient is closed");
    if (typeof match !== "string" || match.trim() === "") {
      throw new TypeError(
        `match must be a non-empty series selector, got ${JSON.stringify(match)}`,
      );
    }
    for (const [name, t] of [["start", start], ["end", end]] as const) {
      if (!Number.isFinite(t)) {
        throw new RangeError(`${name} must be a finite number of seconds, got ${t}`);
      }
    }
    const url = new URL(this.#url(SERIES_PATH));
    url.searchParams.append("match[]", match);
    url.searchParams.set("start", String(start));
    url.searchParams.set("end", String(end));
    const found = new Set<string>();
    const describe = () => `series lookup of ${JSON.stringify(match)} on ${this.#endpoint.origin}`;
    this.#totals.queries++;
    try {
      const outcome = await this.#attempt(
        { method: "GET", url: url.href, key: "" },
        {
          onSeries: (s) => {
            for (const [name, v] of Object.entries(s.metric)) if (v === value) found.add(name);
          },
          limits: { shape: "labels" },
        },
        signal,
      );
      if (outcome instanceof AttemptFailure) {
        throw new BridgeError(
          KIND_CODES[outcome.kind],
          escapeControl(`${describe()} failed: ${outcome.reason}`, false),
        );
      }
    } catch (error) {
      throw this.#cancelled(error, signal, describe);
    }
    return [...found].sort();
  }

  /**
   * The distinct values of label `label` on the series that match any of
   * `matches` between `start` and `end` (unix seconds), from
   * `GET /api/v1/label/<label>/values` with `match[]` (Thanos answers label
   * values on GET only), sorted and de-duplicated. Retried like
   * {@linkcode ThanosClient.queryRange} (network errors, timeouts, 429/422/5xx,
   * transient `errorType`s, warnings), within the same limits: the body counts
   * for `maxAnswerBytes`, each value for `maxSeries` and `maxLabelBytes`.
   * Errors are {@linkcode BridgeError}s with the same codes (`thanos_http`,
   * `thanos_warning`, `thanos_parse`, `thanos_limit`, `thanos_timeout`,
   * `cancelled`) naming the label, the selectors and the endpoint, never the
   * token. A replay (`replayFetch`) answers it with a 404: `thanos_http`.
   *
   * @param label A label name, e.g. `clusterID`.
   * @param matches Series selectors (at least one), e.g. `["kube_node_info"]`.
   * @param start Unix seconds.
   * @param end Unix seconds, not before `start`.
   * @param signal Aborts the call (waiting, request, body and retry sleeps): a `cancelled` error.
   * @returns The values, sorted.
   *
   * @example
   * ```ts ignore
   * import { ThanosClient } from "./thanos_client.ts";
   *
   * const client = new ThanosClient({ url: "http://127.0.0.1:9090" });
   * const now = Math.floor(Date.now() / 1000);
   * const ids = await client.labelValues("clusterID", ["kube_node_info"], now - 86_400, now);
   * // e.g. ["16b9a60d-0774-4102-9028-bd28d6c38ac2", "5d3c…"]
   * client.close();
   * ```
   */
  async labelValues(
    label: string,
    matches: string[],
    start: number,
    end: number,
    signal?: AbortSignal,
  ): Promise<string[]> {
    if (this.#closed) throw new Error("ThanosClient is closed");
    if (!isLabelName(label)) {
      throw new TypeError(`label must be a Prometheus label name, got ${JSON.stringify(label)}`);
    }
    if (
      !Array.isArray(matches) || matches.length === 0 ||
      matches.some((m) => typeof m !== "string" || m.trim() === "")
    ) {
      throw new TypeError(
        `matches must be non-empty series selectors, got ${JSON.stringify(matches)}`,
      );
    }
    for (const [name, t] of [["start", start], ["end", end]] as const) {
      if (!Number.isFinite(t)) {
        throw new RangeError(`${name} must be a finite number of seconds, got ${t}`);
      }
    }
    if (end < start) throw new RangeError(`end (${end}) must not be before start (${start})`);
    const url = new URL(
      this.#url(LABEL_VALUES_PATH) +
        encodeURIComponent(label) + "/values",
    );
    for (const m of matches) url.searchParams.append("match[]", m);
    url.searchParams.set("start", String(start));
    url.searchParams.set("end", String(end));
    const describe = () =>
      `label values of ${label} matching ${
        showValue(matches.join(", "), 200)
      } on ${this.#endpoint.origin}`;
    let values = new Set<string>();
    const read: BodyReader = (body, s, onBytes) =>
      readLabelValues(body, (v) => values.add(v), this.#limits, s, onBytes);
    await this.#lookup(url.href, describe, read, signal, {
      reset: () => {
        values = new Set();
      },
    });
    return [...values].sort();
  }

  /** `<base>/<path>` of the server's API. */
  #url(path: string): string {
    return this.#endpoint.href.slice(0, -QUERY_RANGE_PATH.length) + path;
  }

  /**
   * Reads the raw samples of the series `q.matchers` select, in
   * `[q.startMs, q.endMs]`, over Prometheus's remote read API
   * (`POST /api/v1/read`, streamed XOR chunks; see `remote_read.ts`), and
   * passes each series to `onSeries` as its frame arrives: labels (the
   * server's external labels included) and chunks, which may reach outside
   * the range. Retries, limits (`maxAnswerBytes` for the body and each frame,
   * `maxSeries`, `maxLabelBytes`), counters, `onQuery`, cancellation and
   * error codes as {@linkcode ThanosClient.queryInstant}; an answer that is
   * not streamed chunks (a server without streamed remote read) fails with a
   * `thanos_parse` error, not retried. Thanos Query has no remote read API.
   *
   * @param q The selector's matchers and the range (ms), with its id, cluster and hours for messages.
   * @param onSeries Called for each series, in answer order.
   * @param signal Aborts the call: a `cancelled` error.
   * @param onRetry Called before every retry, after a failed attempt.
   * @param counter Counters of the caller's own traffic.
   *
   * @example
   * ```ts ignore
   * import { ThanosClient } from "./thanos_client.ts";
   *
   * const client = new ThanosClient({ url: "http://127.0.0.1:9090" });
   * await client.readRaw(
   *   {
   *     query: "up",
   *     startMs: 1_793_491_200_000,
   *     endMs: 1_793_494_800_000,
   *     matchers: [{ name: "__name__", op: "=", value: "up" }],
   *   },
   *   (s) => console.log(s.labels, s.chunks.length),
   * );
   * client.close();
   * ```
   */
  async readRaw(
    q: RawReadQuery,
    onSeries: (s: ReadSeries) => void,
    signal?: AbortSignal,
    onRetry?: (info: RetryInfo) => void,
    counter?: QueryCounter,
  ): Promise<QueryStats> {
    if (this.#closed) throw new Error("ThanosClient is closed");
    return await this.#remoteRead(
      q,
      `remote read, start=${q.startMs / 1000}, end=${q.endMs / 1000}`,
      [{ startMs: q.startMs, endMs: q.endMs, matchers: q.matchers }],
      onSeries,
      signal,
      onRetry,
      counter,
    );
  }

  /** One remote read of `queries` (retries, limits, errors as a query), each series to `onSeries`. */
  async #remoteRead(
    name: QueryName,
    params: string,
    queries: ReadQuery[],
    onSeries: (s: ReadSeries) => void,
    signal: AbortSignal | undefined,
    onRetry: ((info: RetryInfo) => void) | undefined,
    counter: QueryCounter | undefined,
  ): Promise<QueryStats> {
    const read: BodyReader = async (body, attemptSignal, onBytes) => {
      const got = await readStreamedAnswer(
        body,
        attemptSignal,
        onBytes,
        onSeries,
        this.#limits,
        limitError,
      );
      return {
        status: "success",
        resultType: "matrix",
        hasResult: true,
        series: got.series,
        warnings: [],
        errorType: undefined,
        error: undefined,
        bytes: got.bytes,
      };
    };
    return await this.#runQuery(
      name,
      params,
      {
        method: "POST",
        url: this.#url(REMOTE_READ_PATH),
        body: snappyEncode(encodeReadRequest(queries)),
        key: name.clusterId ?? "",
        headers: REMOTE_READ_HEADERS,
      },
      () => {},
      signal,
      onRetry,
      counter,
      { read, expect: streamedAnswerProblem },
    );
  }

  /**
   * Whether the server answers streamed remote reads: null when it does (an
   * empty read request got a streamed answer), else why not, e.g. `HTTP 404`
   * from Thanos Query (which has no remote read API) or a proxy, or an answer
   * of another type. Cancellation is thrown as a `cancelled` error; every
   * other failure is a reason.
   *
   * @param signal Aborts the request.
   *
   * @example
   * ```ts ignore
   * import { ThanosClient } from "./thanos_client.ts";
   *
   * const client = new ThanosClient({ url: "http://127.0.0.1:9090" });
   * (await client.probeRemoteRead()) ?? "supported"; // "supported" on Prometheus
   * client.close();
   * ```
   */
  async probeRemoteRead(signal?: AbortSignal): Promise<string | null> {
    if (this.#closed) throw new Error("ThanosClient is closed");
    try {
      await this.#remoteRead(
        { query: "(no query)", id: "remote-read-probe" },
        "remote read",
        [],
        () => {},
        signal,
        undefined,
        undefined,
      );
      return null;
    } catch (error) {
      if (error instanceof BridgeError && error.code !== "cancelled") return error.message;
      throw error;
    }
  }

  /**
   * The server's external labels (`global.external_labels` of
   * `GET /api/v1/status/config`), which Prometheus adds to every series of a
   * remote read but not to query answers; `{}` when it has none, null when
   * the server has no such endpoint (Thanos Query, a proxy) or its answer
   * cannot be read as a Prometheus configuration. Retried and limited like
   * {@linkcode ThanosClient.buildInfo}.
   *
   * @param signal Aborts the call: a `cancelled` error.
   *
   * @example
   * ```ts ignore
   * import { ThanosClient } from "./thanos_client.ts";
   *
   * const client = new ThanosClient({ url: "http://127.0.0.1:9090" });
   * await client.externalLabels(); // e.g. { replica: "a" }
   * client.close();
   * ```
   */
  async externalLabels(signal?: AbortSignal): Promise<Record<string, string> | null> {
    if (this.#closed) throw new Error("ThanosClient is closed");
    const describe = () => `configuration request to ${this.#endpoint.origin}`;
    let data: Record<string, unknown> | null = null;
    const read: BodyReader = async (body, s, onBytes) => {
      const answer = await readJsonObject(
        body,
        Math.min(this.#limits.maxAnswerBytes, 16 << 20),
        s,
        onBytes,
      );
      data = answer.data;
      return answer;
    };
    const found = await this.#lookup(this.#url(CONFIG_PATH), describe, read, signal, {
      reset: () => {
        data = null;
      },
      unknown: (outcome) =>
        outcome.extra.status === 404 || outcome.extra.status === 405 ||
        outcome.kind === "malformed" || outcome.kind === "result",
    });
    const text = found ? (data as Record<string, unknown> | null)?.yaml : undefined;
    return typeof text === "string" ? externalLabelsOf(text) : null;
  }

  /**
   * Releases the TLS client, if one was created. Further queries are refused.
   *
   * @example
   * ```ts
   * import { ThanosClient } from "./thanos_client.ts";
   *
   * new ThanosClient({ url: "http://127.0.0.1:9090" }).close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#httpClient?.close();
  }

  /** An abort of the caller's signal as a `cancelled` error; anything else unchanged. */
  #cancelled(error: unknown, signal: AbortSignal | undefined, what: () => string): unknown {
    if (signal?.aborted && (error === signal.reason || isAbortError(error))) {
      const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
      return new BridgeError(
        "cancelled",
        escapeControl(this.#redactor.cut(`${what()} cancelled: ${reason}`, 2000), false),
        { cause: signal.reason },
      );
    }
    return error;
  }

  /** The query as named in messages: its id, cluster and hours. */
  #describe(q: QueryName): string {
    const name = q.id ?? `\`${shortenQuery(q.query)}\``;
    const where = [
      q.clusterId !== undefined ? `cluster ${q.clusterId}` : undefined,
      q.hours,
    ].filter((p) => p !== undefined).join(", ");
    return `query ${name}${where ? ` (${where})` : ""}`;
  }

  #queryError(
    q: QueryName,
    params: string,
    failure: AttemptFailure,
    attempts: number,
  ): BridgeError {
    const cause: QueryErrorCause = {
      query: q.query,
      ...(q.id !== undefined ? { id: q.id } : {}),
      ...(q.clusterId !== undefined ? { clusterId: q.clusterId } : {}),
      kind: failure.kind,
      retryable: failure.retryable,
      attempts,
      ...failure.extra,
    };
    const tries = attempts === 1 ? "1 attempt" : `${attempts} attempts`;
    return new BridgeError(
      KIND_CODES[failure.kind],
      escapeControl(
        this.#redactor.redact(
          `${this.#describe(q)} on ${this.#endpoint.origin} (${params}) ` +
            `failed after ${tries}: ${failure.reason}`,
        ),
        false,
      ),
      { cause },
    );
  }

  /** One attempt: a slot, a request, the streamed body. Never throws except for aborts and callback errors. */
  async #attempt(
    request: {
      method: "GET" | "POST";
      url: string;
      body?: string | Uint8Array<ArrayBuffer>;
      key: string;
      /** Headers that replace the client's (e.g. a remote read's content type). */
      headers?: Readonly<Record<string, string>>;
    },
    how: AttemptHow,
    signal: AbortSignal | undefined,
  ): Promise<{ bytes: number; series: number } | AttemptFailure> {
    const release = await this.#limiter.acquire(signal, request.key);
    const timeout = new AbortController();
    const timer = setTimeout(
      () =>
        timeout.abort(
          new DOMException(`timed out after ${this.#timeoutMs} ms`, "TimeoutError"),
        ),
      this.#timeoutMs,
    );
    const attemptSignal = signal ? AbortSignal.any([signal, timeout.signal]) : timeout.signal;
    const { onSeries, counter } = how;
    let callbackError: { error: unknown } | undefined;
    const guarded = (s: Series) => {
      try {
        onSeries(s);
      } catch (error) {
        callbackError = { error };
        throw error;
      }
    };
    let response: Response | undefined;
    try {
      this.#totals.attempts++;
      if (counter) counter.attempts++;
      const headers = new Headers(this.#headers);
      if (request.body === undefined) headers.delete("Content-Type");
      for (const [name, value] of Object.entries(request.headers ?? {})) headers.set(name, value);
      const init: RequestInit & { client?: Deno.HttpClient } = {
        method: request.method,
        headers,
        signal: attemptSignal,
      };
      if (request.body !== undefined) init.body = request.body;
      if (this.#httpClient !== undefined) init.client = this.#httpClient;
      response = await this.#fetch(request.url, init);
      if (!response.ok) {
        return await this.#httpFailure(response, attemptSignal);
      }
      if (response.body === null) {
        return new AttemptFailure("HTTP 200 without a body", "network", true, {
          status: response.status,
        });
      }
      const unexpected = how.expect?.(response);
      if (unexpected !== undefined) {
        response.body.cancel().catch(() => {});
        return new AttemptFailure(unexpected, "result", false, { status: response.status });
      }
      const onBytes = (n: number) => {
        this.#totals.bytes += n;
        if (counter) counter.bytes += n;
      };
      const parsed = how.read
        ? await how.read(response.body, attemptSignal, onBytes)
        : await parseSeriesStream(response.body, guarded, {
          ...this.#limits,
          ...how.limits,
          redactor: this.#redactor,
          signal: attemptSignal,
          onBytes,
        });
      const problem = this.#checkAnswer(parsed, response.status, how.limits.shape ?? "matrix");
      return problem ?? { bytes: parsed.bytes, series: parsed.series };
    } catch (error) {
      if (callbackError !== undefined) throw callbackError.error;
      if (error instanceof SeriesCallbackError) throw error.error;
      if (signal?.aborted) throw signal.reason;
      const status = response ? { status: response.status } : {};
      if (timeout.signal.aborted) {
        return new AttemptFailure(`timed out after ${this.#timeoutMs} ms`, "timeout", true, status);
      }
      const message = escapeControl(
        this.#redactor.redact(error instanceof Error ? error.message : String(error)),
        false,
      );
      const cause = (error instanceof SyntaxError || error instanceof RangeError)
        ? error.cause as SeriesStreamErrorCause | undefined
        : undefined;
      const reason = cause?.reason;
      if (reason === "truncated") {
        return new AttemptFailure(message, "network", true, status);
      }
      if (reason === "too-large" && cause?.limit !== undefined && cause.max !== undefined) {
        const setting = LIMIT_SETTINGS[cause.limit];
        return new AttemptFailure(
          `${message}: over the limit of ${formatLimit(cause.limit, cause.max)} ` +
            `(raise it with ${setting})`,
          "limit",
          false,
          { ...status, limit: { name: cause.limit, max: cause.max, setting } },
        );
      }
      if (reason === "malformed" || reason === "too-large") {
        return new AttemptFailure(message, "malformed", false, status);
      }
      // fetch() rejects with a TypeError for network problems; a body stream
      // that errors mid-read is also a transport problem.
      return new AttemptFailure(`network error: ${message}`, "network", true, status);
    } finally {
      clearTimeout(timer);
      release();
    }
  }

  async #httpFailure(response: Response, signal: AbortSignal): Promise<AttemptFailure> {
    const status = response.status;
    const retryable = status === 429 || status === 422 || status >= 500;
    const retryAfterMs = status === 429 || status === 503
      ? parseRetryAfter(response.headers.get("Retry-After"))
      : undefined;
    const { text, cut } = await readLimitedText(response.body, ERROR_BODY_LIMIT, signal);
    // The body may have been cut inside a token: remove its first part before anything else.
    const clean = cut ? this.#redactor.cutEnd(text) : this.#redactor.redact(text);
    let detail = clean.trim();
    let errorType: string | undefined;
    try {
      const json = JSON.parse(clean) as { errorType?: unknown; error?: unknown };
      if (typeof json.error === "string") {
        errorType = typeof json.errorType === "string"
          ? escapeControl(this.#redactor.redact(json.errorType), false)
          : undefined;
        detail = errorType ? `${errorType}: ${json.error}` : json.error;
      }
    } catch {
      // Not JSON (e.g. a proxy's HTML page): keep the text.
    }
    detail = this.#redactor.cut(detail, 2000);
    const statusText = this.#redactor.redact(response.statusText);
    const reason = escapeControl(
      `HTTP ${status}${statusText ? ` ${statusText}` : ""}` + (detail ? `: ${detail}` : ""),
      false,
    );
    return new AttemptFailure(
      reason,
      "http",
      retryable,
      errorType !== undefined ? { status, errorType } : { status },
      retryAfterMs,
    );
  }

  #checkAnswer(
    parsed: SeriesStreamResult,
    status: number,
    shape: "matrix" | "labels",
  ): AttemptFailure | undefined {
    const clean = (text: string) => escapeControl(this.#redactor.redact(text), false);
    if (parsed.status !== "success") {
      const errorType = parsed.errorType === undefined ? undefined : clean(parsed.errorType);
      const detail = [errorType, parsed.error === undefined ? undefined : clean(parsed.error)]
        .filter((s) => s !== undefined && s !== "").join(": ");
      return new AttemptFailure(
        `answer status ${clean(JSON.stringify(parsed.status ?? null))}${
          detail ? `: ${detail}` : ""
        }`,
        "api",
        parsed.errorType !== undefined && RETRYABLE_ERROR_TYPES.has(parsed.errorType),
        errorType !== undefined ? { status, errorType } : { status },
      );
    }
    if (parsed.warnings.length > 0) {
      const warnings = parsed.warnings.map((w) =>
        escapeControl(this.#redactor.cut(w, 2000), false)
      );
      return new AttemptFailure(
        `answer has warnings (partial data): ${this.#redactor.cut(warnings.join("; "), 4000)}`,
        "warnings",
        true,
        { status, warnings },
      );
    }
    if (shape === "matrix" && parsed.resultType !== "matrix") {
      return new AttemptFailure(
        `expected resultType "matrix", got ${
          clean(JSON.stringify(parsed.resultType ?? null).slice(0, 100))
        }`,
        "result",
        false,
        { status },
      );
    }
    if (!parsed.hasResult) {
      return new AttemptFailure(
        shape === "matrix" ? 'answer has no "data.result" array' : 'answer has no "data" array',
        "result",
        false,
        { status },
      );
    }
    return undefined;
  }
}

/** Why a 200 answer to a remote read is not streamed chunks, or undefined when it is. */
function streamedAnswerProblem(response: Response): string | undefined {
  const type = response.headers.get("Content-Type") ?? "";
  if (type.replace(/\s+/g, "") === STREAMED_CONTENT_TYPE.replace(/\s+/g, "")) return undefined;
  return `the answer is ${JSON.stringify(type.slice(0, 100))}, not ${
    JSON.stringify(STREAMED_CONTENT_TYPE)
  } (no streamed remote read)`;
}

/**
 * `global.external_labels` of a Prometheus configuration (YAML): `{}` when
 * absent, null when the text is not a YAML mapping or the labels are not a
 * map of strings.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { externalLabelsOf } from "./thanos_client.ts";
 *
 * assert.deepEqual(externalLabelsOf("global:\n  external_labels:\n    replica: a\n"), { replica: "a" });
 * assert.deepEqual(externalLabelsOf("global:\n  scrape_interval: 1m\n"), {});
 * ```
 */
export function externalLabelsOf(yaml: string): Record<string, string> | null {
  let doc: unknown;
  try {
    doc = parseYaml(yaml);
  } catch {
    return null;
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return null;
  const global = (doc as Record<string, unknown>).global;
  if (global === undefined || global === null) return {};
  if (typeof global !== "object" || Array.isArray(global)) return null;
  const labels = (global as Record<string, unknown>).external_labels;
  if (labels === undefined || labels === null) return {};
  if (typeof labels !== "object" || Array.isArray(labels)) return null;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(labels)) {
    if (typeof value !== "string") return null;
    out[name] = value;
  }
  return out;
}

/** Whether `error` is an `AbortError` DOMException (what `fetch` rejects with on abort). */
function isAbortError(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}
