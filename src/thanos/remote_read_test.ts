import assert from "node:assert/strict";
import {
  CHUNK_XOR,
  crc32c,
  decodeChunkedReadResponse,
  decodeReadRequest,
  encodeChunkedReadResponse,
  encodeFrame,
  encodeReadRequest,
  FrameSplitter,
  type ReadQuery,
  type ReadSeries,
  readStreamedAnswer,
  SeriesCallbackError,
  STREAMED_XOR_CHUNKS,
  type StreamedAnswerLimits,
} from "./remote_read.ts";
import { ProtoWriter } from "./protobuf.ts";
import { decodeXorChunk, encodeXorChunk } from "./xor_chunk.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A series with `n` samples every 15 s from `t0`, in one or more chunks of at most 120. */
function series(name: string, pod: string, t0: number, n: number): ReadSeries {
  const chunks = [];
  for (let at = 0; at < n; at += 120) {
    const t = Array.from({ length: Math.min(120, n - at) }, (_, i) => t0 + (at + i) * 15_000);
    const v = t.map((_, i) => (at + i) * 0.5);
    chunks.push({ minMs: t[0]!, maxMs: t.at(-1)!, type: CHUNK_XOR, data: encodeXorChunk(t, v) });
  }
  return { labels: [["__name__", name], ["pod", pod]], chunks };
}

/** A series as plain data, its chunks decoded (the callback's views do not outlive the call). */
function plain(s: ReadSeries): unknown {
  return {
    labels: s.labels.map(([n, v]) => [n, v]),
    chunks: s.chunks.map((c) => {
      const samples: [number, number][] = [];
      if (c.type === CHUNK_XOR) decodeXorChunk(c.data, (t, v) => samples.push([t, v]));
      return { minMs: c.minMs, maxMs: c.maxMs, type: c.type, data: [...c.data], samples };
    }),
  };
}

/** A streamed body: one frame per series (as Prometheus flushes), then one frame of three. */
function makeBody(): { body: Uint8Array; all: ReadSeries[] } {
  const t0 = 1_800_000_000_000;
  const all = [
    series("up", "a", t0, 1),
    series("up", "b", t0, 240),
    series("cpu", "c-é✓", t0 + 7, 300),
    series("cpu", "d", t0, 0),
    series("mem", "e", t0, 5),
    series("mem", "f", t0, 130),
  ];
  const frames = all.slice(0, 3).map((s, i) => encodeFrame(encodeChunkedReadResponse([s], i)));
  frames.push(encodeFrame(encodeChunkedReadResponse(all.slice(3), 3)));
  return { body: concat(frames), all };
}

/** The limit error the client builds. */
function tooLarge(
  limit: "answer-bytes" | "label-bytes" | "series-count",
  max: number,
  message: string,
  offset: number,
): RangeError {
  return new RangeError(message, { cause: { reason: "too-large", limit, max, offset } });
}

const LIMITS: StreamedAnswerLimits = {
  maxAnswerBytes: 1 << 20,
  maxLabelBytes: 1024,
  maxSeries: 1000,
};

interface StreamStats {
  byobPulls: number;
  defaultPulls: number;
  cancelled: boolean;
}

/** A byte stream answering each pull with at most `piece` bytes, into the BYOB view if any. */
function byteStream(
  body: Uint8Array,
  piece: number,
): { stream: ReadableStream<Uint8Array>; stats: StreamStats } {
  const stats: StreamStats = { byobPulls: 0, defaultPulls: 0, cancelled: false };
  let at = 0;
  const stream = new ReadableStream({
    type: "bytes",
    pull(controller) {
      const request = controller.byobRequest;
      if (at >= body.length) {
        controller.close();
        request?.respond(0);
        return;
      }
      if (request === null || request.view === null) {
        stats.defaultPulls++;
        const n = Math.min(piece, body.length - at);
        controller.enqueue(body.slice(at, at + n));
        at += n;
        return;
      }
      stats.byobPulls++;
      const view = request.view;
      const n = Math.min(piece, view.byteLength, body.length - at);
      new Uint8Array(view.buffer, view.byteOffset, n).set(body.subarray(at, at + n));
      at += n;
      request.respond(n);
    },
    cancel() {
      stats.cancelled = true;
    },
  });
  return { stream, stats };
}

/** A default (not byte) stream of pieces of at most `piece` bytes. */
function pieceStream(body: Uint8Array, piece: number): ReadableStream<Uint8Array> {
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < body.length; at += piece) pieces.push(body.slice(at, at + piece));
  return ReadableStream.from(pieces);
}

/** Reads `stream` with the defaults, collecting series as plain data and piece sizes. */
async function read(
  stream: ReadableStream<Uint8Array>,
  limits: StreamedAnswerLimits = LIMITS,
  onSeries: (s: ReadSeries) => void = () => {},
  signal: AbortSignal = new AbortController().signal,
) {
  const got: unknown[] = [];
  const pieces: number[] = [];
  const answer = await readStreamedAnswer(
    stream,
    signal,
    (n) => pieces.push(n),
    (s) => {
      got.push(plain(s));
      onSeries(s);
    },
    limits,
    tooLarge,
  );
  return { answer, got, pieces };
}

/** Asserts a rejection with a limit error for `limit`. */
async function rejectsTooLarge(promise: Promise<unknown>, limit: string, max: number) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof RangeError, String(error));
    const cause = error.cause as { reason: string; limit: string; max: number };
    assert.equal(cause.reason, "too-large");
    assert.equal(cause.limit, limit);
    assert.equal(cause.max, max);
    return true;
  });
}

/** Asserts a rejection with a stream SyntaxError of `reason`. */
async function rejectsStream(promise: Promise<unknown>, reason: string) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof SyntaxError, String(error));
    assert.equal((error.cause as { reason: string }).reason, reason);
    return true;
  });
}

// --- ReadRequest ---------------------------------------------------------------------------------

Deno.test("ReadRequest: golden bytes by hand from prompb", () => {
  const q: ReadQuery = { startMs: 1, endMs: 2, matchers: [{ name: "a", op: "!=", value: "b" }] };
  // Query: start 08 01, end 10 02, matcher 1a 08 [type 08 01, name 12 01 61, value 1a 01 62];
  // ReadRequest: queries 0a 0e [query], accepted types packed 12 01 01.
  assert.equal(
    hex(encodeReadRequest([q])),
    "0a 0e 08 01 10 02 1a 08 08 01 12 01 61 1a 01 62 12 01 01",
  );
});

Deno.test("ReadRequest: round trip with every matcher op and several queries", () => {
  const queries: ReadQuery[] = [
    {
      startMs: 1_800_000_000_000,
      endMs: 1_800_000_600_000,
      matchers: [
        { name: "__name__", op: "=", value: "container_cpu_usage_seconds_total" },
        { name: "namespace", op: "!=", value: "" },
        { name: "pod", op: "=~", value: "web-.*|db-[0-9]+" },
        { name: "container", op: "!~", value: "POD|" },
      ],
    },
    { startMs: 0, endMs: 60_000, matchers: [{ name: "job", op: "=", value: "é✓" }] },
    { startMs: 5, endMs: 5, matchers: [] },
  ];
  const decoded = decodeReadRequest(encodeReadRequest(queries));
  assert.deepEqual(decoded.queries, queries);
  assert.deepEqual(decoded.accepted, [STREAMED_XOR_CHUNKS]);
  assert.equal(STREAMED_XOR_CHUNKS, 1);
  const none = decodeReadRequest(encodeReadRequest([]));
  assert.deepEqual(none, { queries: [], accepted: [1] });
});

Deno.test("ReadRequest: unknown fields are skipped, unknown matcher types refused", () => {
  // A query with hints (field 4) and an unknown fixed32 field; a request with an unknown field.
  const matcher = new ProtoWriter().uint(1, 2).string(2, "a").string(3, "b.*").uint(9, 1).finish();
  const query = new ProtoWriter().uint(1, 10).bytes(3, matcher).bytes(
    4,
    new ProtoWriter().uint(1, 15_000).finish(),
  ).uint(2, 20).finish();
  const withFixed = concat([query, new Uint8Array([0x2d, 1, 2, 3, 4])]);
  const request = new ProtoWriter().bytes(1, withFixed).string(7, "x").packed(2, [0, 1]).finish();
  assert.deepEqual(decodeReadRequest(request), {
    queries: [{ startMs: 10, endMs: 20, matchers: [{ name: "a", op: "=~", value: "b.*" }] }],
    accepted: [0, 1],
  });
  const badOp = new ProtoWriter().bytes(
    1,
    new ProtoWriter().bytes(3, new ProtoWriter().uint(1, 4).string(2, "a").finish()).finish(),
  ).finish();
  assert.throws(() => decodeReadRequest(badOp), { name: "SyntaxError", message: /matcher type 4/ });
  assert.throws(() => decodeReadRequest(new Uint8Array([0x0a, 0x05, 0x08])), SyntaxError);
});

// --- ChunkedReadResponse -------------------------------------------------------------------------

Deno.test("ChunkedReadResponse: round trip of labels, several chunks and the query index", () => {
  const t0 = 1_700_000_000_000;
  const all = [series("up", "a", t0, 250), series("cpu", "b", t0, 1), {
    labels: [],
    chunks: [{ minMs: 0, maxMs: 0, type: 2, data: new Uint8Array([9, 8, 7]) }],
  }];
  assert.equal(all[0]!.chunks.length, 3);
  for (const queryIndex of [0, 1, 7]) {
    const got: unknown[] = [];
    const message = encodeChunkedReadResponse(all, queryIndex);
    assert.equal(decodeChunkedReadResponse(message, (s) => got.push(plain(s))), queryIndex);
    assert.deepEqual(got, all.map(plain));
    // The decoded samples are the encoded ones.
    const first = got[0] as { chunks: { samples: [number, number][] }[] };
    assert.equal(first.chunks.flatMap((c) => c.samples).length, 250);
    assert.deepEqual(first.chunks[2]!.samples.at(-1), [t0 + 249 * 15_000, 249 * 0.5]);
  }
  // No series.
  let calls = 0;
  assert.equal(decodeChunkedReadResponse(encodeChunkedReadResponse([], 2), () => calls++), 2);
  assert.equal(calls, 0);
  assert.equal(decodeChunkedReadResponse(new Uint8Array(0), () => calls++), 0);
});

Deno.test("ChunkedReadResponse: unknown fields skipped, malformed messages refused", () => {
  const label = new ProtoWriter().string(1, "job").string(2, "x").uint(3, 1).finish();
  const chunk = new ProtoWriter().uint(1, 5).uint(2, 9).uint(3, 1).bytes(4, new Uint8Array([1]))
    .uint(5, 1).finish();
  const s = new ProtoWriter().bytes(1, label).bytes(2, chunk).string(3, "?").finish();
  const message = new ProtoWriter().bytes(1, s).uint(2, 4).uint(3, 99).finish();
  const got: ReadSeries[] = [];
  assert.equal(decodeChunkedReadResponse(message, (x) => got.push(x)), 4);
  assert.equal(got.length, 1);
  assert.deepEqual(got[0]!.labels, [["job", "x"]]);
  assert.deepEqual(
    got[0]!.chunks.map((c) => ({ ...c, data: [...c.data] })),
    [{ minMs: 5, maxMs: 9, type: 1, data: [1] }],
  );
  // A label value that is not UTF-8; a series field cut short.
  const badLabel = new ProtoWriter().bytes(
    1,
    new ProtoWriter().bytes(1, new ProtoWriter().bytes(2, new Uint8Array([0xff])).finish())
      .finish(),
  ).finish();
  assert.throws(() => decodeChunkedReadResponse(badLabel, () => {}), SyntaxError);
  assert.throws(() => decodeChunkedReadResponse(new Uint8Array([0x0a, 0x03, 0x0a]), () => {}), {
    name: "SyntaxError",
  });
});

// --- CRC-32C and frames --------------------------------------------------------------------------

Deno.test("crc32c: check values", () => {
  assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  // RFC 3720 (iSCSI) B.4 vectors: 32 zero bytes, 32 0xff bytes, 0..31.
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(new Uint8Array(32).map((_, i) => i)), 0x46dd794e);
});

Deno.test("encodeFrame: uvarint length, big-endian CRC-32C, message", () => {
  const message = new TextEncoder().encode("123456789");
  assert.equal(hex(encodeFrame(message)), "09 e3 06 92 83 31 32 33 34 35 36 37 38 39");
  assert.equal(hex(encodeFrame(new Uint8Array(0))), "00 00 00 00 00");
  const long = encodeFrame(new Uint8Array(300));
  assert.equal(hex(long.subarray(0, 2)), "ac 02");
  assert.equal(long.length, 2 + 4 + 300);
});

/** Messages of several sizes (1- to 3-byte length varints) and their frames. */
function frames(sizes: readonly number[]): { messages: Uint8Array[]; body: Uint8Array } {
  const messages = sizes.map((n, k) => new Uint8Array(n).map((_, i) => (i * 31 + k) & 0xff));
  return { messages, body: concat(messages.map(encodeFrame)) };
}

/** A splitter collecting copies of its messages. */
function collector(maxFrameBytes = 1 << 20, initialBytes?: number) {
  const got: Uint8Array[] = [];
  const split = new FrameSplitter(
    (m) => got.push(m.slice()),
    maxFrameBytes,
    undefined,
    initialBytes,
  );
  return { got, split };
}

Deno.test("FrameSplitter: several frames in one push", () => {
  const { messages, body } = frames([3, 0, 200, 1, 20_000]);
  const { got, split } = collector();
  split.push(body);
  split.finish();
  assert.deepEqual(got, messages);
  // The splitter is reusable after finish.
  split.push(body);
  split.push(new Uint8Array(0));
  split.finish();
  assert.equal(got.length, 2 * messages.length);
});

Deno.test("FrameSplitter: a body split at every byte boundary", () => {
  const { messages, body } = frames([3, 130, 0, 17]);
  for (let cut = 0; cut <= body.length; cut++) {
    const { got, split } = collector();
    split.push(body.subarray(0, cut));
    split.push(body.subarray(cut));
    split.finish();
    assert.deepEqual(got, messages, `cut at ${cut}`);
  }
  // And in three pieces, around each frame header.
  for (let a = 0; a < 40; a++) {
    for (let b = a; b < 60; b += 3) {
      const { got, split } = collector(1 << 20, 16);
      split.push(body.subarray(0, a));
      split.push(body.subarray(a, b));
      split.push(body.subarray(b));
      split.finish();
      assert.deepEqual(got, messages, `cuts at ${a}, ${b}`);
    }
  }
});

Deno.test("FrameSplitter: a body fed one byte at a time", () => {
  const { messages, body } = frames([5, 128, 0, 1000, 2]);
  const { got, split } = collector(1 << 20, 8);
  const seen: number[] = [];
  for (let i = 0; i < body.length; i++) {
    split.push(body.subarray(i, i + 1));
    seen.push(got.length);
  }
  split.finish();
  assert.deepEqual(got, messages);
  // Each message arrives exactly when its last byte does.
  let end = 0;
  for (let k = 0; k < messages.length; k++) {
    end += encodeFrame(messages[k]!).length;
    assert.equal(seen[end - 2], k, `before the end of frame ${k}`);
    assert.equal(seen[end - 1], k + 1, `at the end of frame ${k}`);
  }
});

Deno.test("FrameSplitter: frames larger than the initial buffer grow it", () => {
  const { messages, body } = frames([10, 5000, 3, 70_000, 1]);
  for (const piece of [7, 1000, 65_536, body.length]) {
    const { got, split } = collector(1 << 20, 16);
    for (let at = 0; at < body.length; at += piece) split.push(body.subarray(at, at + piece));
    split.finish();
    assert.deepEqual(got, messages, `pieces of ${piece}`);
  }
  // Through space()/commit(), as a BYOB reader fills it, in reads of 100 bytes.
  const { got, split } = collector(1 << 20, 16);
  for (let at = 0; at < body.length; at += 100) {
    const n = Math.min(100, body.length - at);
    const room = split.space(n);
    assert.ok(room.length >= n);
    room.set(body.subarray(at, at + n));
    split.commit(n);
  }
  split.finish();
  assert.deepEqual(got, messages);
  // space() with its default asks for 64 KiB of room.
  assert.ok(collector(1 << 20, 16).split.space().length >= 64 * 1024);
  // Even from an empty initial buffer.
  for (const initial of [0, 1]) {
    const { got, split } = collector(1 << 20, initial);
    split.push(body);
    split.finish();
    assert.deepEqual(got, messages, `initial buffer of ${initial}`);
    assert.ok(collector(1 << 20, initial).split.space().length >= 64 * 1024);
  }
});

Deno.test("FrameSplitter: commit() takes a buffer handed back by a BYOB read", () => {
  const { messages, body } = frames([40, 300, 2]);
  const { got, split } = collector(1 << 20, 64);
  let at = 0;
  while (at < body.length) {
    const room = split.space(32);
    // What a BYOB read does: transfer the buffer, fill the view, hand back a new one.
    const offset = room.byteOffset; // 0 once the buffer is detached
    const moved = room.buffer.transfer();
    assert.equal(room.buffer.byteLength, 0);
    const n = Math.min(32, body.length - at);
    new Uint8Array(moved, offset, n).set(body.subarray(at, at + n));
    split.commit(n, moved);
    at += n;
  }
  split.finish();
  assert.deepEqual(got, messages);
});

Deno.test("FrameSplitter: a bad CRC or length is malformed, a cut body truncated", () => {
  const { body } = frames([10, 20]);
  const first = encodeFrame(new Uint8Array(10).map((_, i) => (i * 31) & 0xff)).length;
  // A flipped bit in each part of the second frame: its CRC or its message.
  for (const at of [first + 1, first + 4, first + 5, body.length - 1]) {
    const broken = body.slice();
    broken[at]! ^= 0x10;
    const { got, split } = collector();
    assert.throws(() => split.push(broken), (error) => {
      assert.ok(error instanceof SyntaxError);
      assert.deepEqual(error.cause, { reason: "malformed", offset: first });
      return true;
    }, `flip at ${at}`);
    assert.equal(got.length, 1);
  }
  // A length varint of five continuation bytes.
  const { split: s1 } = collector();
  assert.throws(() => s1.push(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])), (e) => {
    assert.ok(e instanceof SyntaxError);
    assert.equal((e.cause as { reason: string }).reason, "malformed");
    return true;
  });
  // Every proper prefix of the body is truncated, except the one ending between the frames.
  for (let cut = 1; cut < body.length; cut++) {
    const { split } = collector();
    split.push(body.subarray(0, cut));
    if (cut === first) {
      split.finish();
      continue;
    }
    assert.throws(() => split.finish(), (error) => {
      assert.ok(error instanceof SyntaxError);
      const cause = error.cause as { reason: string; offset: number };
      assert.equal(cause.reason, "truncated");
      assert.equal(cause.offset, cut < first ? 0 : first);
      return true;
    }, `cut at ${cut}`);
  }
});

Deno.test("FrameSplitter: a frame over maxFrameBytes is the tooLarge error", () => {
  const small = encodeFrame(new Uint8Array(100));
  const big = encodeFrame(new Uint8Array(101));
  const calls: [number, number][] = [];
  const sentinel = new RangeError("too big");
  const split = new FrameSplitter(() => {}, 100, (size, offset) => {
    calls.push([size, offset]);
    return sentinel;
  }, 32);
  split.push(small);
  // Only the length is needed: the error comes before the frame's message.
  assert.throws(() => split.push(big.subarray(0, 1)), (error) => error === sentinel);
  assert.deepEqual(calls, [[101, small.length]]);
  // The default error is a RangeError.
  const plainSplit = new FrameSplitter(() => {}, 10);
  assert.throws(() => plainSplit.push(encodeFrame(new Uint8Array(11))), RangeError);
  // A length of 2^35 - 1 (five bytes) is too large, not malformed.
  const huge = new FrameSplitter(() => {}, 1 << 20, () => sentinel);
  assert.throws(
    () => huge.push(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x7f])),
    (e) => e === sentinel,
  );
});

// --- readStreamedAnswer --------------------------------------------------------------------------

Deno.test("readStreamedAnswer: a byte stream is read with BYOB reads", async () => {
  const { body, all } = makeBody();
  for (const piece of [1, 7, 100, 4096, body.length]) {
    const { stream, stats } = byteStream(body, piece);
    const { answer, got, pieces } = await read(stream);
    assert.deepEqual(answer, { series: all.length, bytes: body.length }, `pieces of ${piece}`);
    assert.deepEqual(got, all.map(plain));
    assert.equal(pieces.reduce((a, b) => a + b, 0), body.length);
    assert.ok(pieces.every((n) => n > 0 && n <= piece));
    assert.ok(stats.byobPulls > 0);
    assert.equal(stats.defaultPulls, 0);
    assert.equal(stats.cancelled, false);
  }
});

Deno.test("readStreamedAnswer: a byte stream that enqueues its own pieces", async () => {
  const { body, all } = makeBody();
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < body.length; at += 333) pieces.push(body.slice(at, at + 333));
  const stream = new ReadableStream({
    type: "bytes",
    start(controller) {
      for (const p of pieces) controller.enqueue(p);
      controller.close();
    },
  });
  const { answer, got } = await read(stream);
  assert.deepEqual(answer, { series: all.length, bytes: body.length });
  assert.deepEqual(got, all.map(plain));
});

Deno.test("readStreamedAnswer: a default stream of pieces", async () => {
  const { body, all } = makeBody();
  for (const piece of [1, 13, 1024, body.length]) {
    const { answer, got, pieces } = await read(pieceStream(body, piece));
    assert.deepEqual(answer, { series: all.length, bytes: body.length });
    assert.deepEqual(got, all.map(plain));
    assert.deepEqual(pieces, Array.from(pieceStreamSizes(body.length, piece)));
  }
  // A plain stream with empty pieces in between.
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new Uint8Array(0));
      c.enqueue(body.slice(0, 10));
      c.enqueue(new Uint8Array(0));
      c.enqueue(body.slice(10));
      c.close();
    },
  });
  const { answer } = await read(stream);
  assert.deepEqual(answer, { series: all.length, bytes: body.length });
  // An empty body.
  assert.deepEqual((await read(pieceStream(new Uint8Array(0), 1))).answer, { series: 0, bytes: 0 });
  assert.deepEqual((await read(byteStream(new Uint8Array(0), 1).stream)).answer, {
    series: 0,
    bytes: 0,
  });
});

function* pieceStreamSizes(total: number, piece: number): Generator<number> {
  for (let at = 0; at < total; at += piece) yield Math.min(piece, total - at);
}

Deno.test("readStreamedAnswer: more series than maxSeries", async () => {
  const { body, all } = makeBody();
  const ok = await read(pieceStream(body, 50), { ...LIMITS, maxSeries: all.length });
  assert.equal(ok.answer.series, all.length);
  for (const stream of [pieceStream(body, 50), byteStream(body, 50).stream]) {
    const seen: ReadSeries[] = [];
    await rejectsTooLarge(
      read(stream, { ...LIMITS, maxSeries: 2 }, (s) => seen.push(s)),
      "series-count",
      2,
    );
    assert.equal(seen.length, 2);
  }
});

Deno.test("readStreamedAnswer: a label longer than maxLabelBytes", async () => {
  const limits = { ...LIMITS, maxLabelBytes: 1024 };
  const answer = (labels: [string, string][]) =>
    encodeFrame(encodeChunkedReadResponse([{ labels, chunks: [] }], 0));
  // At the limit: fine, in bytes of UTF-8.
  for (
    const labels of [
      [["pod", "a".repeat(1024)]],
      [["é".repeat(512), "x"]],
      [["a".repeat(1024), "✓".repeat(341)]],
    ] as [string, string][][]
  ) {
    const { answer: a } = await read(pieceStream(answer(labels), 100), limits);
    assert.equal(a.series, 1);
  }
  // Over it: a long value, a long name, multi-byte characters.
  for (
    const labels of [
      [["pod", "a".repeat(1025)]],
      [["a".repeat(1025), "x"]],
      [["pod", "é".repeat(513)]],
      [["pod", "x"], ["ns", "✓".repeat(342)]],
      // The name is shorter in UTF-16 but longer in UTF-8 than the value.
      [["é".repeat(600), "a".repeat(700)]],
      [["a".repeat(700), "é".repeat(600)]],
    ] as [string, string][][]
  ) {
    const what = labels.map(([n, v]) => `${n.length}/${v.length}`).join(",");
    let called = 0;
    await rejectsTooLarge(
      read(pieceStream(answer(labels), 100), limits, () => called++),
      "label-bytes",
      1024,
    ).catch((error) => {
      throw new Error(`labels ${what}: ${error}`);
    });
    assert.equal(called, 0);
  }
});

Deno.test("readStreamedAnswer: a body over maxAnswerBytes", async () => {
  const { body } = makeBody();
  const ok = await read(pieceStream(body, 64), { ...LIMITS, maxAnswerBytes: body.length });
  assert.equal(ok.answer.bytes, body.length);
  for (const stream of [pieceStream(body, 64), byteStream(body, 64).stream]) {
    const pieces: number[] = [];
    await rejectsTooLarge(
      readStreamedAnswer(
        stream,
        new AbortController().signal,
        (n) => pieces.push(n),
        () => {},
        { ...LIMITS, maxAnswerBytes: body.length - 1 },
        tooLarge,
      ),
      "answer-bytes",
      body.length - 1,
    );
    assert.equal(pieces.reduce((a, b) => a + b, 0), body.length);
  }
  // It stops at the piece that crosses the limit.
  const limit = body.length - 200;
  for (const stream of [pieceStream(body, 64), byteStream(body, 64).stream]) {
    const pieces: number[] = [];
    await rejectsTooLarge(
      readStreamedAnswer(
        stream,
        new AbortController().signal,
        (n) => pieces.push(n),
        () => {},
        { ...LIMITS, maxAnswerBytes: limit },
        tooLarge,
      ),
      "answer-bytes",
      limit,
    );
    assert.equal(pieces.reduce((a, b) => a + b, 0), (Math.floor(limit / 64) + 1) * 64);
  }
  // One frame larger than the limit is refused from its length alone.
  const big = encodeFrame(encodeChunkedReadResponse([series("up", "a", 0, 1000)], 0));
  assert.ok(big.length > 1000);
  const { stream, stats } = byteStream(big, 10);
  await assert.rejects(read(stream, { ...LIMITS, maxAnswerBytes: 500 }), (error) => {
    assert.ok(error instanceof RangeError);
    assert.deepEqual(error.cause, {
      reason: "too-large",
      limit: "answer-bytes",
      max: 500,
      offset: 0,
    });
    return true;
  });
  assert.ok(stats.cancelled);
});

Deno.test("readStreamedAnswer: an onSeries error is a SeriesCallbackError", async () => {
  const { body } = makeBody();
  for (const thrown of [new Error("boom"), new SyntaxError("not ours"), "a string"]) {
    const { stream, stats } = byteStream(body, 100);
    await assert.rejects(
      read(stream, LIMITS, () => {
        throw thrown;
      }),
      (error) => {
        assert.ok(error instanceof SeriesCallbackError, String(error));
        assert.equal(error.error, thrown);
        assert.equal(error.cause, thrown);
        return true;
      },
    );
    assert.ok(stats.cancelled);
  }
});

Deno.test("readStreamedAnswer: an abort rejects with the signal's reason", async () => {
  const { body } = makeBody();
  const first = encodeFrame(encodeChunkedReadResponse([series("up", "a", 0, 3)], 0));
  // A stream that sends one frame, then nothing.
  const stalled = (byob: boolean) => {
    let sent = false;
    let cancelled = false;
    const source = {
      pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
        if (sent) return new Promise<void>(() => {});
        sent = true;
        controller.enqueue(first.slice());
        return Promise.resolve();
      },
      cancel() {
        cancelled = true;
      },
    };
    const stream = byob
      ? new ReadableStream({
        type: "bytes",
        pull: (c) => source.pull(c as unknown as ReadableStreamDefaultController<Uint8Array>),
        cancel: source.cancel,
      })
      : new ReadableStream<Uint8Array>(source);
    return { stream, cancelled: () => cancelled };
  };
  for (const byob of [true, false]) {
    // Aborted while waiting for bytes.
    const controller = new AbortController();
    const reason = new Error("stop");
    const { stream, cancelled } = stalled(byob);
    let seen = 0;
    const reading = read(stream, LIMITS, () => seen++, controller.signal);
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(seen, 1);
    controller.abort(reason);
    await assert.rejects(reading, (error) => error === reason);
    assert.ok(cancelled(), `cancelled (byob ${byob})`);
    // Aborted from onSeries, with a reason that is not an Error.
    const c2 = new AbortController();
    const s2 = stalled(byob);
    await assert.rejects(
      read(s2.stream, LIMITS, () => c2.abort("enough"), c2.signal),
      (error) => error === "enough",
    );
  }
  // Aborted before the read starts: nothing is read.
  const reason = new DOMException("gone", "AbortError");
  const { stream, stats } = byteStream(body, 100);
  await assert.rejects(
    read(stream, LIMITS, () => {}, AbortSignal.abort(reason)),
    (error) => error === reason,
  );
  assert.equal(stats.byobPulls + stats.defaultPulls <= 1, true);
});

Deno.test("readStreamedAnswer: malformed and truncated bodies", async () => {
  const { body } = makeBody();
  // A good CRC around a bad message: a bytes field longer than the message.
  const badMessage = encodeFrame(new Uint8Array([0x0a, 0x05, 0x01]));
  for (const stream of [pieceStream(badMessage, 2), byteStream(badMessage, 2).stream]) {
    await rejectsStream(read(stream), "malformed");
  }
  // Also after good frames, and for a label that is not UTF-8.
  const badUtf8 = encodeFrame(
    new ProtoWriter().bytes(
      1,
      new ProtoWriter().bytes(1, new ProtoWriter().bytes(1, new Uint8Array([0xc3])).finish())
        .finish(),
    ).finish(),
  );
  await rejectsStream(read(pieceStream(concat([body, badUtf8]), 100)), "malformed");
  // A bad CRC.
  const flipped = body.slice();
  flipped[flipped.length - 1]! ^= 1;
  await rejectsStream(read(byteStream(flipped, 100).stream), "malformed");
  // The body ends inside a frame.
  for (const cut of [1, 3, body.length - 1]) {
    await rejectsStream(read(pieceStream(body.subarray(0, cut), 50)), "truncated");
    await rejectsStream(read(byteStream(body.subarray(0, cut), 50).stream), "truncated");
  }
});
