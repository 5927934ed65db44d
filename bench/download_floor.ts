/**
 * The download floor: the same `query_range` requests the bridge sent (read
 * from a `--record` folder's `index.jsonl`), replayed against the server with
 * plain `fetch` at the same concurrency, every body read to the end and
 * discarded. Its wall time is what the bridge would take if processing the
 * answers cost nothing.
 *
 * @module
 */

import type { RecordingIndexEntry } from "../src/thanos/recording.ts";
import { queryRangeForm, type RangeQuery } from "../src/thanos/thanos_client.ts";

/** The distinct requests of a recording, in first-seen order. */
export interface RecordedRequests {
  readonly requests: readonly RangeQuery[];
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
  const e = value as Partial<RecordingIndexEntry> | null;
  if (
    e === null || typeof e !== "object" || typeof e.key !== "string" ||
    typeof e.query !== "string" || typeof e.start !== "number" || typeof e.end !== "number" ||
    typeof e.step !== "number" || typeof e.bytes !== "number"
  ) {
    throw new TypeError(
      `${path}:${lineNumber}: expected {key, query, start, end, step, bytes}, got ${
        line.slice(0, 160)
      }`,
    );
  }
  return e as RecordingIndexEntry;
}

/**
 * Reads a recording's `index.jsonl` line by line and returns its distinct
 * requests (by key) in the order they were first recorded. For a key recorded
 * more than once, the last line gives the body size, as in the recording.
 *
 * @example
 * ```ts ignore
 * import { readRecordedRequests } from "./download_floor.ts";
 * const { requests, duplicates } = await readRecordedRequests("/tmp/rec/index.jsonl");
 * ```
 */
export async function readRecordedRequests(indexPath: string): Promise<RecordedRequests> {
  const byKey = new Map<string, { request: RangeQuery; bytes: number }>();
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
      byKey.set(e.key, {
        request: { query: e.query, start: e.start, end: e.end, step: e.step },
        bytes: e.bytes,
      });
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
  const reader = body.getReader();
  let bytes = 0;
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
 * POSTs every request to `<url>/api/v1/query_range` with the bridge's form body
 * (including `partial_response=false` and `dedup=true`) and headers, at most
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
  requests: readonly RangeQuery[],
  options: DownloadFloorOptions = {},
): Promise<FloorResult> {
  const concurrency = options.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`Invalid concurrency ${concurrency}: expected a positive integer`);
  }
  const endpoint = new URL("api/v1/query_range", url.endsWith("/") ? url : `${url}/`).href;
  const doFetch = options.fetch ?? fetch;
  const forms = requests.map((r) => queryRangeForm(r).toString());
  const headers = {
    "Accept": "application/json",
    "Content-Type": "application/x-www-form-urlencoded",
    "User-Agent": "thanos-bridge-bench/0.1.0",
  };
  let next = 0;
  let bytes = 0;
  const worker = async () => {
    try {
      await work();
    } catch (error) {
      next = forms.length; // no new requests once one failed
      throw error;
    }
  };
  const work = async () => {
    while (next < forms.length) {
      const i = next++;
      const init: RequestInit = { method: "POST", headers, body: forms[i]! };
      if (options.signal) init.signal = options.signal;
      const response = await doFetch(endpoint, init);
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
  await Promise.all(Array.from({ length: Math.min(concurrency, forms.length) }, worker));
  return { ms: performance.now() - started, bytes, requests: forms.length };
}
