/**
 * Prometheus's remote read protocol (`POST /api/v1/read`), in the streamed
 * form Prometheus has answered since 2.13: the request is a snappy-compressed
 * `prompb.ReadRequest` that accepts `STREAMED_XOR_CHUNKS`; the answer
 * (`Content-Type: application/x-streamed-protobuf;
 * proto=prometheus.ChunkedReadResponse`) is a sequence of frames, each a
 * uvarint length, a big-endian CRC-32C (Castagnoli) of the message, and a
 * `prompb.ChunkedReadResponse` holding whole series: their labels and their
 * samples as XOR chunks, straight from the TSDB (see `xor_chunk.ts`). Unlike
 * a range selector over `/api/v1/query`, nothing is rendered as JSON text on
 * the server, and staleness markers are kept.
 *
 * This module is the pure part: messages and framing. The client's
 * `readRaw` does the HTTP.
 *
 * @module
 */

import { abortRace } from "./backoff.ts";
import { ProtoReader, ProtoWriter } from "./protobuf.ts";

/** A label matcher of a remote read query. */
export interface ReadMatcher {
  readonly name: string;
  readonly op: "=" | "!=" | "=~" | "!~";
  readonly value: string;
}

/** One query of a `ReadRequest`: the series its matchers select, with samples in `[startMs, endMs]`. */
export interface ReadQuery {
  readonly startMs: number;
  readonly endMs: number;
  readonly matchers: readonly ReadMatcher[];
}

/** `prompb.ReadRequest.ResponseType`: `SAMPLES` (one snappy message) or `STREAMED_XOR_CHUNKS`. */
export const STREAMED_XOR_CHUNKS = 1;

/** `prompb.Chunk.Encoding` of float samples; 2 and 3 are native histograms. */
export const CHUNK_XOR = 1;

/** The answer's content type for streamed chunks. */
export const STREAMED_CONTENT_TYPE =
  "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

const OPS: Readonly<Record<ReadMatcher["op"], number>> = { "=": 0, "!=": 1, "=~": 2, "!~": 3 };
const OP_NAMES: readonly ReadMatcher["op"][] = ["=", "!=", "=~", "!~"];

/**
 * The protobuf bytes of a `ReadRequest` for `queries` that accepts streamed
 * XOR chunks only (snappy-compress them before sending).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeReadRequest, encodeReadRequest } from "./remote_read.ts";
 *
 * const up = { name: "__name__", op: "=" as const, value: "up" };
 * const q = { startMs: 0, endMs: 60_000, matchers: [up] };
 * assert.deepEqual(decodeReadRequest(encodeReadRequest([q])).queries, [q]);
 * ```
 */
export function encodeReadRequest(queries: readonly ReadQuery[]): Uint8Array {
  const w = new ProtoWriter();
  for (const q of queries) {
    const qw = new ProtoWriter().uint(1, q.startMs).uint(2, q.endMs);
    for (const m of q.matchers) {
      qw.bytes(
        3,
        new ProtoWriter().uint(1, OPS[m.op]).string(2, m.name).string(3, m.value).finish(),
      );
    }
    w.bytes(1, qw.finish());
  }
  w.packed(2, [STREAMED_XOR_CHUNKS]);
  return w.finish();
}

/**
 * Reads a `ReadRequest` (for fake servers in tests): its queries and the
 * response types it accepts.
 */
export function decodeReadRequest(
  bytes: Uint8Array,
): { queries: ReadQuery[]; accepted: number[] } {
  const queries: ReadQuery[] = [];
  const accepted: number[] = [];
  const r = new ProtoReader(bytes);
  for (let f = r.next(); f !== null; f = r.next()) {
    if (f.field === 1) {
      const qr = new ProtoReader(r.bytes());
      let startMs = 0, endMs = 0;
      const matchers: ReadMatcher[] = [];
      for (let g = qr.next(); g !== null; g = qr.next()) {
        if (g.field === 1) startMs = qr.uint();
        else if (g.field === 2) endMs = qr.uint();
        else if (g.field === 3) {
          const mr = new ProtoReader(qr.bytes());
          let op = 0, name = "", value = "";
          for (let h = mr.next(); h !== null; h = mr.next()) {
            if (h.field === 1) op = mr.uint();
            else if (h.field === 2) name = mr.string();
            else if (h.field === 3) value = mr.string();
            else mr.skip();
          }
          const o = OP_NAMES[op];
          if (o === undefined) throw new SyntaxError(`unknown matcher type ${op}`);
          matchers.push({ name, op: o, value });
        } else qr.skip();
      }
      queries.push({ startMs, endMs, matchers });
    } else if (f.field === 2) accepted.push(...r.packed());
    else r.skip();
  }
  return { queries, accepted };
}

/** One chunk of a streamed series. */
export interface ReadChunk {
  readonly minMs: number;
  readonly maxMs: number;
  /** {@linkcode CHUNK_XOR} for float samples. */
  readonly type: number;
  /** The chunk's bytes (a view into the frame). */
  readonly data: Uint8Array;
}

/** One series of a streamed answer. */
export interface ReadSeries {
  /** Label names and values, in the answer's order (sorted by name). */
  readonly labels: readonly (readonly [string, string])[];
  readonly chunks: readonly ReadChunk[];
}

/**
 * The protobuf bytes of a `ChunkedReadResponse` (for fake servers in tests).
 */
export function encodeChunkedReadResponse(
  series: readonly ReadSeries[],
  queryIndex: number,
): Uint8Array {
  const w = new ProtoWriter();
  for (const s of series) {
    const sw = new ProtoWriter();
    for (const [name, value] of s.labels) {
      sw.bytes(1, new ProtoWriter().string(1, name).string(2, value).finish());
    }
    for (const c of s.chunks) {
      sw.bytes(
        2,
        new ProtoWriter().uint(1, c.minMs).uint(2, c.maxMs).uint(3, c.type).bytes(4, c.data)
          .finish(),
      );
    }
    w.bytes(1, sw.finish());
  }
  w.uint(2, queryIndex);
  return w.finish();
}

/**
 * Calls `onSeries` for each series of one `ChunkedReadResponse` message and
 * returns its `query_index`. Throws a `SyntaxError` for a malformed message.
 */
export function decodeChunkedReadResponse(
  message: Uint8Array,
  onSeries: (series: ReadSeries) => void,
): number {
  const r = new ProtoReader(message);
  let queryIndex = 0;
  const series: Uint8Array[] = [];
  for (let f = r.next(); f !== null; f = r.next()) {
    if (f.field === 1) series.push(r.bytes());
    else if (f.field === 2) queryIndex = r.uint();
    else r.skip();
  }
  for (const bytes of series) {
    const sr = new ProtoReader(bytes);
    const labels: [string, string][] = [];
    const chunks: ReadChunk[] = [];
    for (let g = sr.next(); g !== null; g = sr.next()) {
      if (g.field === 1) {
        const lr = new ProtoReader(sr.bytes());
        let name = "", value = "";
        for (let h = lr.next(); h !== null; h = lr.next()) {
          if (h.field === 1) name = lr.string();
          else if (h.field === 2) value = lr.string();
          else lr.skip();
        }
        labels.push([name, value]);
      } else if (g.field === 2) {
        const cr = new ProtoReader(sr.bytes());
        let minMs = 0, maxMs = 0, type = 0;
        let data: Uint8Array = new Uint8Array(0);
        for (let h = cr.next(); h !== null; h = cr.next()) {
          if (h.field === 1) minMs = cr.uint();
          else if (h.field === 2) maxMs = cr.uint();
          else if (h.field === 3) type = cr.uint();
          else if (h.field === 4) data = cr.bytes();
          else cr.skip();
        }
        chunks.push({ minMs, maxMs, type, data });
      } else sr.skip();
    }
    onSeries({ labels, chunks });
  }
  return queryIndex;
}

/** CRC-32C (Castagnoli) table, reflected polynomial 0x82F63B78. */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/**
 * CRC-32C (Castagnoli) of `bytes`, as Go's `crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crc32c } from "./remote_read.ts";
 *
 * assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
 * ```
 */
export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** One frame of a streamed answer: uvarint length, big-endian CRC-32C, the message (for tests). */
export function encodeFrame(message: Uint8Array): Uint8Array {
  const head = new ProtoWriter().varint(message.length).finish();
  const crc = crc32c(message);
  const out = new Uint8Array(head.length + 4 + message.length);
  out.set(head, 0);
  new DataView(out.buffer).setUint32(head.length, crc, false);
  out.set(message, head.length + 4);
  return out;
}

/** Why a stream was refused; the same shape as the JSON parser's error causes. */
function streamError(
  reason: "truncated" | "malformed",
  message: string,
  offset: number,
): SyntaxError {
  return new SyntaxError(message, { cause: { reason, offset } });
}

/**
 * Splits a streamed answer into its frames as bytes arrive, in one buffer of
 * its own (grown to the largest frame, reused): write the next bytes into
 * {@linkcode FrameSplitter.space} (e.g. with a BYOB reader) and
 * {@linkcode FrameSplitter.commit} them, or {@linkcode FrameSplitter.push} a
 * piece (copied); then call {@linkcode FrameSplitter.finish}. Each whole
 * frame's message is checked against its CRC and passed to `onMessage` as a
 * view into the buffer, valid only during the call. Errors are
 * `SyntaxError`s whose `cause.reason` is `malformed` (bad length or CRC) or
 * `truncated` (the body ended inside a frame), or the error of `tooLarge` for
 * a frame longer than `maxFrameBytes`.
 *
 * (A server that flushes every frame makes `fetch` return a piece of about a
 * kilobyte per read, each in a 64 KiB buffer of its own: reading into one
 * buffer keeps that garbage from piling up outside the JavaScript heap.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFrame, FrameSplitter } from "./remote_read.ts";
 *
 * const got: number[][] = [];
 * const split = new FrameSplitter((m) => got.push([...m]), 1024);
 * const frame = encodeFrame(new Uint8Array([1, 2, 3]));
 * split.push(frame.subarray(0, 3));
 * split.push(frame.subarray(3));
 * split.finish();
 * assert.deepEqual(got, [[1, 2, 3]]);
 * ```
 */
export class FrameSplitter {
  #buf: Uint8Array;
  /** Unconsumed bytes: `#buf[#start, #end)`. */
  #start = 0;
  #end = 0;
  /** Stream offset of `#start`. */
  #offset = 0;

  constructor(
    readonly onMessage: (message: Uint8Array) => void,
    readonly maxFrameBytes: number,
    readonly tooLarge: (size: number, offset: number) => Error = (size) =>
      new RangeError(`a frame of ${size} bytes is over ${maxFrameBytes}`),
    initialBytes = 256 * 1024,
  ) {
    this.#buf = new Uint8Array(initialBytes);
  }

  /** Free room at the end of the buffer for at least `min` bytes (unconsumed bytes moved to the front, or the buffer grown). */
  space(min = 64 * 1024): Uint8Array<ArrayBuffer> {
    if (this.#buf.length - this.#end < min) {
      const held = this.#end - this.#start;
      if (this.#buf.length - held >= min && this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        let size = Math.max(1, this.#buf.length) * 2; // from 0, doubling would never end
        while (size - held < min) size *= 2;
        const next = new Uint8Array(size);
        next.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = next;
      }
      this.#start = 0;
      this.#end = held;
    }
    return this.#buf.subarray(this.#end) as Uint8Array<ArrayBuffer>;
  }

  /**
   * Takes `n` bytes written at the start of the last {@linkcode space}, into
   * `buffer` when a BYOB read handed that room back in a new `ArrayBuffer`.
   */
  commit(n: number, buffer?: ArrayBufferLike): void {
    if (buffer !== undefined && buffer !== this.#buf.buffer) this.#buf = new Uint8Array(buffer);
    this.#end += n;
    this.#frames();
  }

  /** Feeds the next piece of the body (copied into the buffer). */
  push(piece: Uint8Array): void {
    if (piece.length === 0) return;
    this.space(piece.length).set(piece);
    this.commit(piece.length);
  }

  /** Passes on every whole frame held. */
  #frames(): void {
    const buf = this.#buf;
    while (this.#start < this.#end) {
      const at = this.#start;
      // The length varint (at most 5 bytes for a 32-bit size), then the CRC.
      let size = 0, mul = 1, p = at, complete = false;
      for (let i = 0; i < 5 && p < this.#end; i++) {
        const b = buf[p++]!;
        size += (b & 0x7f) * mul;
        mul *= 128;
        if (b < 0x80) {
          complete = true;
          break;
        }
        if (i === 4) {
          throw streamError("malformed", "frame length is not a valid varint", this.#offset);
        }
      }
      if (!complete) break;
      if (size > this.maxFrameBytes) throw this.tooLarge(size, this.#offset);
      const total = p - at + 4 + size;
      if (this.#end - at < total) break;
      const crc = ((buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!) >>> 0;
      const message = buf.subarray(p + 4, p + 4 + size);
      if (crc32c(message) !== crc) {
        throw streamError("malformed", "frame fails its CRC-32C check", this.#offset);
      }
      this.onMessage(message);
      this.#start += total;
      this.#offset += total;
    }
    if (this.#start === this.#end) this.#start = this.#end = 0;
  }

  /** Ends the body: a `truncated` error when it ended inside a frame. */
  finish(): void {
    if (this.#end > this.#start) {
      throw streamError(
        "truncated",
        `the answer ends inside a frame (${this.#end - this.#start} bytes left over)`,
        this.#offset,
      );
    }
  }
}

/** Limits of {@linkcode readStreamedAnswer}, as the client's answer limits. */
export interface StreamedAnswerLimits {
  /** Largest body, in bytes (also the largest frame). */
  readonly maxAnswerBytes: number;
  /** Largest label name or value, in UTF-8 bytes. */
  readonly maxLabelBytes: number;
  /** Most series in the answer. */
  readonly maxSeries: number;
}

/** What {@linkcode readStreamedAnswer} returns. */
export interface StreamedAnswer {
  /** Series passed to `onSeries`. */
  readonly series: number;
  /** Body bytes read. */
  readonly bytes: number;
}

/** An error thrown by the caller's `onSeries`, passed through {@linkcode readStreamedAnswer} unchanged. */
export class SeriesCallbackError extends Error {
  constructor(readonly error: unknown) {
    super("onSeries failed", { cause: error });
  }
}

/**
 * Reads a streamed remote-read body to its end, passing each series to
 * `onSeries` as its frame arrives. Errors: `SyntaxError`s with
 * `cause.reason` `malformed` or `truncated` (as the JSON parser's), a
 * `RangeError` with `cause.reason === "too-large"` for a limit (made by
 * `tooLarge`), the signal's reason on an abort, and a
 * {@linkcode SeriesCallbackError} wrapping what `onSeries` threw.
 *
 * @param body The answer's body.
 * @param signal Aborts the read.
 * @param onBytes Called with the size of each piece read.
 * @param onSeries Called for each series, in answer order.
 * @param limits The answer limits.
 * @param tooLarge Makes the error for a limit: which, its value, the message, the offset.
 */
export async function readStreamedAnswer(
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
  onBytes: (n: number) => void,
  onSeries: (series: ReadSeries) => void,
  limits: StreamedAnswerLimits,
  tooLarge: (
    limit: "answer-bytes" | "label-bytes" | "series-count",
    max: number,
    message: string,
    offset: number,
  ) => RangeError,
): Promise<StreamedAnswer> {
  let series = 0, total = 0;
  const labelBytes = limits.maxLabelBytes;
  // UTF-16 length is a lower bound of UTF-8 length; check exactly only near the limit. Name and
  // value each: the longer of the two in UTF-16 may be the shorter in UTF-8.
  const over = (text: string) =>
    text.length * 3 > labelBytes && new TextEncoder().encode(text).length > labelBytes;
  const split = new FrameSplitter(
    (message) =>
      decodeChunkedReadResponse(message, (s) => {
        series++;
        if (series > limits.maxSeries) {
          throw tooLarge(
            "series-count",
            limits.maxSeries,
            `the answer has more than ${limits.maxSeries} series`,
            total,
          );
        }
        for (const [name, value] of s.labels) {
          if (over(name) || over(value)) {
            throw tooLarge(
              "label-bytes",
              labelBytes,
              `label ${JSON.stringify(name.slice(0, 100))} is longer than ${labelBytes} bytes`,
              total,
            );
          }
        }
        try {
          onSeries(s);
        } catch (error) {
          throw new SeriesCallbackError(error);
        }
      }),
    limits.maxAnswerBytes,
    (size, offset) =>
      tooLarge(
        "answer-bytes",
        limits.maxAnswerBytes,
        `a frame of ${size} bytes is larger than ${limits.maxAnswerBytes} bytes`,
        offset,
      ),
  );
  let byob: ReadableStreamBYOBReader | undefined;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream (e.g. a test's own stream): pieces are copied in.
    reader = body.getReader();
  }
  let done = false;
  const abort = abortRace(signal);
  const aborted = abort.promise;
  const take = (n: number) => {
    total += n;
    onBytes(n);
    if (total > limits.maxAnswerBytes) {
      throw tooLarge(
        "answer-bytes",
        limits.maxAnswerBytes,
        `the answer is larger than ${limits.maxAnswerBytes} bytes`,
        total,
      );
    }
  };
  const guard = (feed: () => void) => {
    try {
      feed();
    } catch (error) {
      if (error instanceof SyntaxError && error.cause === undefined) {
        // A malformed message inside a good frame.
        throw streamError("malformed", error.message, total);
      }
      throw error;
    }
  };
  try {
    while (true) {
      if (byob !== undefined) {
        const next = await Promise.race([byob.read(split.space()), aborted]);
        if (next.done) {
          done = true;
          break;
        }
        const got = next.value!;
        take(got.byteLength);
        guard(() => split.commit(got.byteLength, got.buffer));
      } else {
        const next = await Promise.race([reader!.read(), aborted]);
        if (next.done) {
          done = true;
          break;
        }
        take(next.value.byteLength);
        guard(() => split.push(next.value));
      }
    }
    split.finish();
  } finally {
    abort.dispose();
    const r = byob ?? reader!;
    if (!done) r.cancel().catch(() => {});
    r.releaseLock();
  }
  return { series, bytes: total };
}
