/**
 * The download floor: the same `query_range` and instant `query` requests the
 * bridge sent (read from a `--record` folder's `index.jsonl`), replayed against
 * the server with plain `fetch` at the same concurrency, every body read to the
 * end and discarded. Its wall time is what the bridge would take if processing the
 * answers cost nothing.
 *
 * @module
 */

import type { RecordingIndexEntry } from "../src/thanos/recording.ts";
import {
  type InstantQuery,
  queryInstantForm,
  queryRangeForm,
  type RangeQuery,
} from "../src/thanos/thanos_client.ts";

/**
 * One request of the floor: a range query (`start`, `end`, `step`, sent to
 * `/api/v1/query_range`), an instant query (`time`, sent to `/api/v1/query`),
 * or a remote read (`read`: the snappy-compressed `ReadRequest` the bridge
 * sent, to `/api/v1/read`).
 */
export type FloorRequest = RangeQuery | InstantQuery | RemoteReadRequest;

/** A remote read, replayed as the bridge sent it. */
export interface RemoteReadRequest {
  /** For messages. */
  readonly query: string;
  /** The request body. */
  readonly read: Uint8Array;
}

/** The distinct requests of a recording, in first-seen order. */
export interface RecordedRequests {
  readonly requests: readonly FloorRequest[];
  /** Lines of `index.jsonl`. */
  readonly lines: number;
  /** Lines whose key was already seen (retries, re-runs). */
  readonly duplicates: number;
  /** Sum of the recorded (uncompressed) body sizes of the distinct requests. */
  readonly bytes: number;
}

function entryOf(line: string, lineNumber: number, path: string): RecordingIndexEntry {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new SyntaxError(`${path}:${lineNumber}: not a JSON line`, { cause: error });
  }
  const e = value as Record<string, unknown> | null;
  const common = e !== null && typeof e === "object" && !Array.isArray(e) &&
    typeof e.key === "string" && typeof e.query === "string" && typeof e.bytes === "number";
  // A line with `time` is an instant query; without, a range query (all older recordings).
  const ok = common &&
    (e.time === undefined
      ? typeof e.start === "number" && typeof e.end === "number" && typeof e.step === "number"
      : typeof e.time === "number" && e.start === undefined && e.end === undefined &&
        e.step === undefined);
  if (!ok) {
    throw new TypeError(
      `${path}:${lineNumber}: expected {key, query, start, end, step, bytes} or ` +
        `{key, query, time, bytes}, got ${line.slice(0, 160)}`,
    );
  }
  return e as unknown as RecordingIndexEntry;
}

/** The request an index line describes. */
function requestOf(e: RecordingIndexEntry): FloorRequest {
  return e.time !== undefined
    ? { query: e.query, time: e.time }
    : { query: e.query, start: e.start, end: e.end, step: e.step };
}

/** Whether `r` is an instant query (it has a `time`). */
function isInstant(r: FloorRequest): r is InstantQuery {
  return "time" in r;
}

/** Whether `r` is a remote read. */
function isRead(r: FloorRequest): r is RemoteReadRequest {
  return "read" in r;
}

/**
 * Reads a recording's `index.jsonl` line by line and returns its distinct
 * requests (by key) in the order they were first recorded: range queries
 * (`{query, start, end, step}`) and instant queries (`{query, time}`, from
 * lines with a `time`). For a key recorded more than once, the last line gives
 * the body size, as in the recording.
 *
 * @example
 * ```ts ignore
 * import { readRecordedRequests } from "./download_floor.ts";
 * const { requests, duplicates } = await readRecordedRequests("/tmp/rec/index.jsonl");
 * ```
 */
export async function readRecordedRequests(indexPath: string): Promise<RecordedRequests> {
  const byKey = new Map<string, { request: FloorRequest; bytes: number }>();
  let lines = 0;
  let duplicates = 0;
  let pending = "";
  const take = (line: string) => {
    if (line.trim() === "") return;
    lines++;
    const e = entryOf(line, lines, indexPath);
    const seen = byKey.get(e.key);
    if (seen) {
      duplicates++;
      seen.bytes = e.bytes;
    } else {
      byKey.set(e.key, { request: requestOf(e), bytes: e.bytes });
    }
  };
  const file = await Deno.open(indexPath, { read: true });
  for await (const chunk of file.readable.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      take(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
    }
  }
  take(pending);
  let bytes = 0;
  for (const v of byKey.values()) bytes += v.bytes;
  return { requests: [...byKey.values()].map((v) => v.request), lines, duplicates, bytes };
}

/** The bridge's headers of a remote read. */
const READ_HEADERS = {
  "Accept": "application/x-streamed-protobuf",
  "Accept-Encoding": "identity",
  "Content-Type": "application/x-protobuf",
  "Content-Encoding": "snappy",
  "X-Prometheus-Remote-Read-Version": "0.1.0",
  "User-Agent": "thanos-bridge-bench/0.1.0",
};

/** Options of {@linkcode downloadFloor}. */
export interface DownloadFloorOptions {
  /** Requests in flight (default 4, the bridge's default). */
  readonly concurrency?: number;
  /** Transport (tests); default the global `fetch`. */
  readonly fetch?: typeof fetch;
  /** Aborts every request. */
  readonly signal?: AbortSignal;
}

/** What {@linkcode downloadFloor} measured. */
export interface FloorResult {
  /** Wall time from the first request to the end of the last body, in ms. */
  readonly ms: number;
  /** Body bytes read (after any content decoding, as the bridge counts them). */
  readonly bytes: number;
  readonly requests: number;
}

async function drain(body: ReadableStream<Uint8Array>): Promise<number> {
  let bytes = 0;
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream (a test's fake fetch).
  }
  if (byob !== undefined) {
    // Into one buffer, as the bridge reads remote reads (no 64 KiB buffer per piece).
    let buffer = new Uint8Array(256 * 1024);
    try {
      while (true) {
        const next = await byob.read(buffer);
        if (next.done) return bytes;
        bytes += next.value!.byteLength;
        buffer = new Uint8Array(next.value!.buffer);
      }
    } finally {
      byob.releaseLock();
    }
  }
  const reader = body.getReader();
  try {
    while (true) {
      const next = await reader.read();
      if (next.done) return bytes;
      bytes += next.value.byteLength;
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * POSTs every range query to `<url>/api/v1/query_range` and every instant
 * query (one with a `time`) to `<url>/api/v1/query`, with the bridge's form
 * body (including `partial_response=false` and `dedup=true`) and headers, at most
 * `concurrency` at a time in list order, reads each body to the end and
 * throws it away. Throws an `Error` naming the query on a non-2xx answer.
 *
 * @example
 * ```ts ignore
 * import { downloadFloor, readRecordedRequests } from "./download_floor.ts";
 * const { requests } = await readRecordedRequests("/tmp/rec/index.jsonl");
 * const floor = await downloadFloor("http://127.0.0.1:9090", requests);
 * console.log(`${floor.ms} ms for ${floor.bytes} bytes`);
 * ```
 */
export async function downloadFloor(
  url: string,
  requests: readonly FloorRequest[],
  options: DownloadFloorOptions = {},
): Promise<FloorResult> {
  const concurrency = options.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`Invalid concurrency ${concurrency}: expected a positive integer`);
  }
  const base = url.endsWith("/") ? url : `${url}/`;
  const rangeEndpoint = new URL("api/v1/query_range", base).href;
  const instantEndpoint = new URL("api/v1/query", base).href;
  const readEndpoint = new URL("api/v1/read", base).href;
  const doFetch = options.fetch ?? fetch;
  const sends = requests.map((r): { endpoint: string; form: string | Uint8Array } =>
    isRead(r)
      ? { endpoint: readEndpoint, form: r.read }
      : isInstant(r)
      ? { endpoint: instantEndpoint, form: queryInstantForm(r).toString() }
      : { endpoint: rangeEndpoint, form: queryRangeForm(r).toString() }
  );
  // As the bridge by default: no compression (fetch would otherwise ask for gzip,br).
  const headers = {
    "Accept": "application/json",
    "Accept-Encoding": "identity",
    "Content-Type": "application/x-www-form-urlencoded",
    "User-Agent": "thanos-bridge-bench/0.1.0",
  };
  let next = 0;
  let bytes = 0;
  const worker = async () => {
    try {
      await work();
    } catch (error) {
      next = sends.length; // no new requests once one failed
      throw error;
    }
  };
  const work = async () => {
    while (next < sends.length) {
      const i = next++;
      const send = sends[i]!;
      const init: RequestInit = {
        method: "POST",
        headers: typeof send.form === "string" ? headers : READ_HEADERS,
        body: send.form as BodyInit,
      };
      if (options.signal) init.signal = options.signal;
      const response = await doFetch(send.endpoint, init);
      if (!response.ok || response.body === null) {
        const text = (await response.text().catch(() => "")).slice(0, 300);
        throw new Error(
          `Floor request ${i} got HTTP ${response.status} for query ${
            JSON.stringify(requests[i]!.query.slice(0, 160))
          }`,
          { cause: { status: response.status, body: text, request: requests[i] } },
        );
      }
      // Not `bytes += await …`: that reads `bytes` before the await and loses updates.
      const read = await drain(response.body);
      bytes += read;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, sends.length) }, worker));
  return { ms: performance.now() - started, bytes, requests: sends.length };
}
