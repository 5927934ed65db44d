/**
 * Fetches the raw samples of every selector the cost queries read, for the
 * local reduction mode (`--reduce local`): one instant query
 * `<selector>[<range>s]` per selector, each series' samples appended at once to
 * its answer's large flat `Float64Array`s (timestamps in ms, values), so the
 * evaluator can run the queries in the bridge.
 *
 * **Compact storage.** A 6-hour range of a 2,000-pod cluster is ~60,000 series
 * × ~78 samples. Each series' `t` and `v` are `subarray` views into a few large
 * chunks per answer (no `ArrayBuffer` per series). Numbers already stored are
 * not stored again: series scraped together share their timestamps (a run of
 * an earlier series' timestamps), and series of one constant value (info
 * series, requests, limits) share their values. The label values of all
 * series of a call share one string per distinct value (pod, namespace, node
 * names repeat across series and selectors). `src/collect/raw_fetch_bench.ts`
 * measures it. The views are shared, so nothing may write into them.
 *
 * **Why raw samples are safe to use.** The answer to a plain range selector
 * (`x{…}[3720s]`, no function around it) at an instant is the stored samples
 * of each series in the window, unchanged: Prometheus (2.x and 3.x) returns
 * them as read from its TSDB, and Thanos Query returns the deduplicated raw
 * samples of its stores — Thanos's counter adjustment on deduplication
 * (`dedup.NewCounterSeriesIterator`) applies only inside `rate`/`increase`-like
 * functions, never to a bare matrix selector. What the API does drop is the
 * staleness markers (special NaN samples written when a series disappears):
 * they never appear in an answer, so the evaluator must apply the lookback
 * limits (5 minutes) itself and cannot see the exact moment a series went
 * stale. Values are parsed with Go's `strconv.ParseFloat` rules
 * ({@linkcode parseSampleValue}), so `NaN`, `+Inf` and `-Inf` keep their meaning.
 *
 * @module
 */

import { BridgeError, escapeControl, showValue } from "../model.ts";
import type { InstantQuery, QueryCounter, RawReadQuery } from "../thanos/thanos_client.ts";
import { shortenQuery } from "../thanos/thanos_client.ts";
import { CHUNK_XOR, type ReadSeries } from "../thanos/remote_read.ts";
import { decodeXorChunk } from "../thanos/xor_chunk.ts";
import type { RawSeries, SelectorNeed, SelectorParts } from "./local_eval.ts";
import { parseSampleValue } from "./reduce.ts";
import type { Labels } from "./row_map.ts";
import { LabelSet, mixPair } from "./label_set.ts";
import { passesFilter, planRawFetches } from "./raw_fetch_plan.ts";
import { compareUtf8 } from "./utf8_compare.ts";

export type { Labels } from "./row_map.ts";
export type { RawSeries, SelectorNeed } from "./local_eval.ts";

/** One series of an answer, as the client streams it (not trusted yet). */
export interface StreamedSeries {
  readonly metric: Record<string, string>;
  readonly values: ReadonlyArray<readonly [number, string]>;
}

/** What {@linkcode fetchRaw} needs of the client: `ThanosClient.queryInstant`. */
export interface InstantQuerier {
  queryInstant(
    q: InstantQuery,
    onSeries: (s: StreamedSeries) => void,
    signal?: AbortSignal,
    onRetry?: () => void,
    counter?: QueryCounter,
  ): Promise<unknown>;
}

/** What {@linkcode fetchRaw} needs of the client for remote reads: `ThanosClient.readRaw`. */
export interface RemoteReader {
  readRaw(
    q: RawReadQuery,
    onSeries: (s: ReadSeries) => void,
    signal?: AbortSignal,
    onRetry?: () => void,
    counter?: QueryCounter,
  ): Promise<unknown>;
}

/** What {@linkcode fetchRaw} fetches. */
export interface RawFetchRequest {
  /** First evaluation time (unix ms) the samples must serve. */
  readonly firstMs: number;
  /** Last evaluation time (unix ms) the samples must serve; the queries are evaluated at this time. */
  readonly lastMs: number;
  /**
   * The selectors. A key given twice is fetched once, with the larger margin;
   * selectors of one metric that differ only in `=`/`!=` matchers (known from
   * their `parts`) share one query (see {@linkcode planRawFetches}).
   */
  readonly needs: readonly SelectorNeed[];
  /**
   * Selectors served only where they fit into a query of `needs` (they may
   * widen it and raise its margin, never add a query); ask
   * {@linkcode RawStore.covers} which were.
   */
  readonly hints?: readonly SelectorNeed[];
  /** For messages: the batch's name. */
  readonly id?: string;
  /** For messages, and the client's fairness key. */
  readonly clusterId?: string;
  /** For messages: the hours the batch covers. */
  readonly hours?: string;
  /**
   * Fetch over the remote read API (the client's `readRaw`) instead of
   * instant queries, removing the server's external labels from each series
   * (Prometheus adds them to remote reads only). Selectors whose metric and
   * matchers are unknown still go as instant queries.
   */
  readonly remoteRead?: { readonly externalLabels: Readonly<Record<string, string>> };
}

/** The raw samples of one {@linkcode fetchRaw} call, by selector key. */
export interface RawStore {
  /**
   * The series of selector `key` (one of the request's needs, or a hint it
   * covers), sorted in Prometheus's label order; empty when the selector
   * matched nothing. Throws a `RangeError` for a key that was not served.
   */
  series(key: string): readonly RawSeries[];
  /** Whether `key` was served with a margin of at least `marginMs`. */
  covers(key: string, marginMs: number): boolean;
  /**
   * Frees the samples now instead of at the collector's next full collection
   * (their buffers are detached: every `t`/`v` handed out becomes empty), so
   * the next batch's samples do not pile up on this batch's. `series` throws a
   * `RangeError` afterwards. Call it once nothing reads the series any more.
   */
  release(): void;
  /** Samples over all series. */
  readonly samples: number;
  /** Series over all queries. */
  readonly seriesCount: number;
  /** Queries sent (one per distinct fetch). */
  readonly queries: number;
  /**
   * Approximate memory held: the sample chunks' bytes (at most 16 per sample,
   * less where timestamps or constant values are shared, plus the few unused
   * slots left in them), 2 bytes per character of each distinct
   * label name and value (shared by all series of the call), and an estimate
   * of the objects: 200 bytes per series (its `RawSeries` and two views) and
   * 16 per label of its `metric`.
   */
  readonly bytes: number;
}

/** Extra seconds on every range: a sample exactly at the left edge of the need is kept on every engine. */
export const RANGE_SLACK_SECONDS = 60;

/**
 * The range, in whole seconds, fetched for a selector: the needed span plus
 * {@linkcode RANGE_SLACK_SECONDS} (Prometheus 2.x windows are closed on the
 * left, Prometheus 3.x and Thanos open on the left; the extra minute keeps a
 * sample exactly at `firstMs - marginMs` on both, and the evaluator applies
 * the exact boundaries itself).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rangeSeconds } from "./raw_fetch.ts";
 *
 * // One hour of evaluations (first 00:00, last 00:59) with a 5-minute lookback.
 * assert.equal(rangeSeconds(0, 3_540_000, 300_000), 3_900);
 * ```
 */
export function rangeSeconds(firstMs: number, lastMs: number, marginMs: number): number {
  return Math.ceil((lastMs - firstMs + marginMs) / 1000) + RANGE_SLACK_SECONDS;
}

/**
 * Prometheus's order of label sets (`labels.Compare`): label pairs sorted by
 * name, compared pair by pair, name then value, in UTF-8 byte order; a set
 * that is a prefix of the other comes first. Each set is given as its sorted
 * names and their values.
 */
function compareLabelSets(
  aNames: readonly string[],
  aValues: readonly string[],
  bNames: readonly string[],
  bValues: readonly string[],
): number {
  const n = Math.min(aNames.length, bNames.length);
  for (let i = 0; i < n; i++) {
    if (aNames[i] !== bNames[i]) return compareUtf8(aNames[i]!, bNames[i]!);
    if (aValues[i] !== bValues[i]) return compareUtf8(aValues[i]!, bValues[i]!);
  }
  return aNames.length - bNames.length;
}

/**
 * Sorts `series` in place in Prometheus's label order (`labels.Compare`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type RawSeries, sortSeries } from "./raw_fetch.ts";
 *
 * const empty = new Float64Array(0);
 * const s: RawSeries[] = [
 *   { metric: { a: "2" }, t: empty, v: empty },
 *   { metric: { a: "1", b: "" }, t: empty, v: empty },
 * ];
 * assert.deepEqual(sortSeries(s).map((x) => x.metric.a), ["1", "2"]);
 * ```
 */
export function sortSeries(series: RawSeries[]): RawSeries[] {
  const sets = new Map<RawSeries, [string[], string[]]>();
  for (const s of series) {
    const names = Object.keys(s.metric).sort(compareUtf8);
    sets.set(s, [names, names.map((n) => s.metric[n]!)]);
  }
  return series.sort((x, y) => compareLabelSets(...sets.get(x)!, ...sets.get(y)!));
}

/** Slots of a lane's first chunk; each next chunk doubles, up to {@linkcode CHUNK_MAX}. */
const CHUNK_MIN = 1_024;
/** Largest chunk, in slots (2 MiB), unless one series needs more. */
const CHUNK_MAX = 262_144;
/** Estimated V8 bytes per series besides its samples and strings: the `RawSeries` and its two views. */
const SERIES_OVERHEAD_BYTES = 200;
/** Estimated V8 bytes per label of a series' `metric` object (its property slot and share of the object). */
const LABEL_OVERHEAD_BYTES = 16;
/** Earlier timestamp runs of an answer that a new series' timestamps are looked for in, most recently used first. */
const RUN_CANDIDATES = 8;

/**
 * Where {@linkcode Answer.reserve} lets a series write its samples before it
 * is committed: timestamps at `t[tAt…]`, values at `v[vAt…]`.
 */
interface Scratch {
  readonly t: Float64Array<ArrayBuffer>;
  readonly tAt: number;
  readonly v: Float64Array<ArrayBuffer>;
  readonly vAt: number;
}

/** A span of a {@linkcode Lane}: `length` slots of chunk `chunk` from `at` on. */
interface Span {
  readonly chunk: number;
  readonly at: number;
  readonly length: number;
}

/**
 * One column of an answer (its timestamps, or its values): chunks of
 * doubling size, never reallocated, each filled from the front. A series'
 * numbers are written at the free end of the last chunk and kept only by
 * {@linkcode Lane.keep}; a series whose numbers are already stored points at
 * those instead and keeps nothing.
 */
class Lane {
  readonly chunks: Float64Array<ArrayBuffer>[] = [];
  /** Slots kept per chunk. */
  readonly used: number[] = [];
  /** Slots allocated (after {@linkcode Lane.trim}: kept). */
  capacity = 0;

  /** Room for `n` slots at the end of the last chunk: the chunk and where the room starts. */
  reserve(n: number): [Float64Array<ArrayBuffer>, number] {
    const c = this.chunks.length - 1;
    const last = this.chunks[c];
    if (last !== undefined && last.length - this.used[c]! >= n) return [last, this.used[c]!];
    const size = Math.max(
      n,
      last === undefined ? CHUNK_MIN : Math.min(CHUNK_MAX, last.length * 2),
    );
    const chunk = new Float64Array(size);
    this.chunks.push(chunk);
    this.used.push(0);
    this.capacity += size;
    return [chunk, 0];
  }

  /** Keeps the `n` slots written at the free end of the last chunk. */
  keep(n: number): Span {
    const c = this.chunks.length - 1;
    const at = this.used[c]!;
    this.used[c] = at + n;
    return { chunk: c, at, length: n };
  }

  /** Cuts each chunk's unused tail off (one copy of that chunk) where it is 1/16 of the chunk or more. */
  trim(): void {
    for (let c = 0; c < this.chunks.length; c++) {
      const chunk = this.chunks[c]!;
      const spare = chunk.length - this.used[c]!;
      if (spare > 0 && spare * 16 >= chunk.length) {
        this.chunks[c] = chunk.slice(0, this.used[c]!);
        this.capacity -= spare;
      }
    }
  }
}

/** Index of the first element of `a[lo, hi)` (ascending) that is ≥ `x`. */
function lowerBound(a: Float64Array, lo: number, hi: number, x: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Views of lane spans, one per distinct span: series that share a span
 * share its view object too.
 */
class Views {
  readonly #byKey = new Map<string, Float64Array>();
  constructor(readonly lane: Lane) {}

  of(span: Span): Float64Array {
    const key = `${span.chunk}:${span.at}:${span.length}`;
    let view = this.#byKey.get(key);
    if (view === undefined) {
      view = this.lane.chunks[span.chunk]!.subarray(span.at, span.at + span.length);
      this.#byKey.set(key, view);
    }
    return view;
  }
}

/**
 * The label names and values of one {@linkcode fetchRaw} call, each distinct
 * string kept once and numbered: every series' `metric` is made to point at
 * the kept strings, so a pod, namespace or node name repeated across series
 * and selectors is stored once.
 */
class Interner {
  readonly #ids = new Map<string, number>();
  readonly #strings: string[] = [];
  /** UTF-16 code units over the distinct strings. */
  chars = 0;

  /** The number of `s`; `strings[id]` is the kept string equal to `s`. */
  id(s: string): number {
    let id = this.#ids.get(s);
    if (id === undefined) {
      id = this.#strings.length;
      this.#ids.set(s, id);
      this.#strings.push(s);
      this.chars += s.length;
    }
    return id;
  }

  /** The kept string of `id`. */
  string(id: number): string {
    return this.#strings[id]!;
  }

  /**
   * Drops the lookup tables once every series is made (the series keep the
   * strings themselves): they are as large as the strings, and the store's
   * closures would keep them for the whole batch.
   */
  forget(): void {
    this.#ids.clear();
    this.#strings.length = 0;
    this.#nameLists.clear();
  }

  readonly #nameLists = new Map<string, readonly string[]>();

  /** The kept list equal to `names` (the series of a metric mostly have the same label names). */
  names(names: readonly string[]): readonly string[] {
    const key = names.join("\u0000"); // a name with NUL in it may clash: checked below
    const kept = this.#nameLists.get(key);
    if (
      kept !== undefined && kept.length === names.length && kept.every((n, i) => n === names[i])
    ) {
      return kept;
    }
    this.#nameLists.set(key, names);
    return names;
  }
}

/**
 * The labels with a value (what the evaluator reads), or the arrays themselves
 * when every label has one.
 */
function nonEmpty(
  names: readonly string[],
  values: readonly string[],
): [readonly string[], readonly string[]] {
  if (!values.includes("")) return [names, values];
  const keep = names.flatMap((_, i) => values[i] === "" ? [] : [i]);
  return [keep.map((i) => names[i]!), keep.map((i) => values[i]!)];
}

/**
 * A fetched series: its labels as two parallel arrays in Prometheus's label
 * order (the name list shared with the other series of the call that have
 * the same names), no object per series; `metric` is built when asked for.
 * It is the evaluator's label set itself ({@linkcode LabelSet}), so the
 * evaluator needs no second object per raw series.
 */
class StoredSeries extends LabelSet implements RawSeries {
  constructor(
    readonly allNames: readonly string[],
    readonly allValues: readonly string[],
    readonly t: Float64Array,
    readonly v: Float64Array,
  ) {
    super(...nonEmpty(allNames, allValues));
  }

  get metric(): Labels {
    const out: Record<string, string> = {};
    for (let i = 0; i < this.allNames.length; i++) out[this.allNames[i]!] = this.allValues[i]!;
    return out;
  }
}

/** Whether `a` (with names `aNames`) and `b` hold the same labels. */
function sameLabels(a: Labels, aNames: readonly string[], b: Labels): boolean {
  let count = 0;
  for (const _ in b) count++;
  if (count !== aNames.length) return false;
  for (const n of aNames) if (!Object.hasOwn(b, n) || b[n] !== a[n]) return false;
  return true;
}

/**
 * One answer's series, checked and converted; dropped when the attempt fails.
 *
 * Timestamps and values go to two {@linkcode Lane}s. Numbers already stored
 * are not stored again:
 * - series scraped together share their timestamps: a series whose
 *   timestamps are a contiguous run of an earlier series' (equal, or a pod
 *   that started or ended inside the window) points into that run;
 * - a series whose values are all one number (info series, requests,
 *   limits: most of the cost metrics) points into an earlier series of that
 *   same constant, at least as long.
 *
 * {@linkcode Answer.finish} trims the chunks' unused tails and hands out each
 * series' `t`/`v` as `subarray` views into them (one view per distinct
 * span). No chunk is written to after that, so the views never change, and
 * nothing may write into them: they are shared.
 */
class Answer {
  readonly #t = new Lane();
  readonly #v = new Lane();
  /** Per committed series: its labels and its spans. */
  readonly #metrics: Labels[] = [];
  readonly #tSpans: Span[] = [];
  readonly #vSpans: Span[] = [];
  /** Distinct timestamp runs kept, most recently used first (at most {@linkcode RUN_CANDIDATES}). */
  #runs: Span[] = [];
  /** The longest kept span of each constant value (not NaN, not −0). */
  #constants = new Map<number, Span>();
  /** Label-set hash → index (or indexes, on a collision) of the committed series with it. */
  #byHash = new Map<number, number | number[]>();
  /** Samples over the committed series. */
  samples = 0;
  /** Labels over the committed series. */
  labels = 0;

  /** Slots allocated over both lanes (after {@linkcode Answer.finish}: kept). */
  get capacity(): number {
    return this.#t.capacity + this.#v.capacity;
  }

  /** Where to write a series of up to `n` samples. */
  reserve(n: number): Scratch {
    const [t, tAt] = this.#t.reserve(n);
    const [v, vAt] = this.#v.reserve(n);
    return { t, tAt, v, vAt };
  }

  /** The committed series with the same labels as `labels` (whose hash is `hash`), if any. */
  find(hash: number, labels: Labels, names: readonly string[]): Labels | undefined {
    const at = this.#byHash.get(hash);
    if (at === undefined) return undefined;
    for (const i of typeof at === "number" ? [at] : at) {
      const other = this.#metrics[i]!;
      if (sameLabels(labels, names, other)) return other;
    }
    return undefined;
  }

  /** Commits a series whose `n` samples were written where the last {@linkcode Answer.reserve} said. */
  commit(hash: number, metric: Labels, n: number, labelCount: number): void {
    const index = this.#metrics.length;
    this.#metrics.push(metric);
    this.#tSpans.push(this.#keepTimes(n));
    this.#vSpans.push(this.#keepValues(n));
    const at = this.#byHash.get(hash);
    if (at === undefined) this.#byHash.set(hash, index);
    else if (typeof at === "number") this.#byHash.set(hash, [at, index]);
    else at.push(index);
    this.samples += n;
    this.labels += labelCount;
  }

  /** The span of the `n` timestamps just written: inside an earlier run when they are part of one. */
  #keepTimes(n: number): Span {
    const lane = this.#t;
    const c = lane.chunks.length - 1;
    const t = lane.chunks[c]!, from = lane.used[c]!;
    if (n > 0) {
      const runs = this.#runs;
      for (let r = 0; r < runs.length; r++) {
        const run = runs[r]!;
        const a = lane.chunks[run.chunk]!;
        const end = run.at + run.length;
        const i = lowerBound(a, run.at, end, t[from]!);
        if (end - i < n) continue;
        let k = 0;
        while (k < n && a[i + k] === t[from + k]) k++;
        if (k < n) continue;
        if (r > 0) runs.unshift(...runs.splice(r, 1));
        return { chunk: run.chunk, at: i, length: n };
      }
    }
    const span = lane.keep(n);
    if (n > 0) {
      this.#runs.unshift(span);
      if (this.#runs.length > RUN_CANDIDATES) this.#runs.pop();
    }
    return span;
  }

  /** The span of the `n` values just written: in an earlier series of the same constant when they are one. */
  #keepValues(n: number): Span {
    const lane = this.#v;
    const c = lane.chunks.length - 1;
    const v = lane.chunks[c]!, from = lane.used[c]!;
    if (n === 0) return lane.keep(0);
    const first = v[from]!;
    let constant = !Number.isNaN(first) && !Object.is(first, -0);
    for (let k = 1; constant && k < n; k++) {
      const x = v[from + k]!;
      constant = x === first && (x !== 0 || 1 / x > 0); // −0 is not 0: Go prints it as -0.000000
    }
    if (!constant) return lane.keep(n);
    const known = this.#constants.get(first);
    if (known !== undefined && known.length >= n) {
      return { chunk: known.chunk, at: known.at, length: n };
    }
    const span = lane.keep(n);
    this.#constants.set(first, span);
    return span;
  }

  /** The buffers of the trimmed chunks, once {@linkcode Answer.finish} has run. */
  buffers: ArrayBuffer[] = [];

  /**
   * The series, with views into the trimmed chunks and their labels as
   * arrays (names kept in `interner`); the answer is spent afterwards.
   */
  finish(interner: Interner): StoredSeries[] {
    this.#byHash = new Map();
    this.#runs = [];
    this.#constants = new Map();
    this.#t.trim();
    this.#v.trim();
    const tViews = new Views(this.#t), vViews = new Views(this.#v);
    const series = this.#metrics.map((metric, i) => {
      const names = Object.keys(metric).sort(compareUtf8);
      return new StoredSeries(
        interner.names(names),
        names.map((n) => metric[n]!),
        tViews.of(this.#tSpans[i]!),
        vViews.of(this.#vSpans[i]!),
      );
    });
    this.buffers = [...this.#t.chunks, ...this.#v.chunks].map((c) => c.buffer);
    this.#t.chunks.length = 0;
    this.#v.chunks.length = 0;
    this.#metrics.length = 0;
    this.#tSpans.length = 0;
    this.#vSpans.length = 0;
    return series;
  }
}

/** Server or query text for a message: one line, control characters escaped, at most 300 characters. */
function show(text: string): string {
  return escapeControl(shortenQuery(text, 300), false);
}

/** Text of a label set for messages, e.g. `{__name__="x", pod="p1"}`. */
function showLabels(metric: Labels): string {
  return show(
    `{${
      Object.keys(metric).sort(compareUtf8).map((n) => `${n}=${JSON.stringify(metric[n])}`)
        .join(", ")
    }}`,
  );
}

/**
 * Fetches the raw samples of every selector of `request`: one instant query
 * `${key}[${rangeSeconds}s]` at `lastMs / 1000` per {@linkcode SelectorNeed},
 * all started at once (the client bounds how many are in flight). The first
 * failure aborts the others and is thrown. Each streamed series is checked and
 * converted at once into its answer's sample chunks (the `[t, "v"]` pairs are
 * not kept); a series is refused with a `thanos_parse`
 * {@linkcode BridgeError} naming the selector and its labels when its
 * labels are not a flat string map, its timestamps are not strictly
 * ascending or outside `[time - range, time]`, a value is not a Go float, or
 * the same label set comes twice in one answer. A retried query drops what
 * the failed attempt delivered. The series of each key are sorted in
 * Prometheus's label order. Errors of the client (`thanos_http`,
 * `thanos_limit`, `cancelled`, …) pass through; note its answer limits
 * (`maxSeries`, `maxAnswerBytes`, `maxSeriesBytes`) apply to each raw answer.
 *
 * Memory: at most 16 bytes per sample plus the labels; the answers' text is
 * parsed one series at a time and not kept. Each answer's timestamps and
 * values are appended to two columns of chunks of doubling size (1,024 slots
 * up to 262,144, never reallocated). A series' timestamps that are a
 * contiguous run of one of the last 8 distinct runs kept are not kept again,
 * nor are values that are all one number (not NaN, not −0) when a series of
 * that number at least as long was kept. Once every answer is in, each
 * chunk's unused tail is trimmed off (one copy of that chunk) and each series
 * gets `subarray` views of its spans (one view object per distinct span), so
 * its `t.buffer` is shared with the other series of the chunk. Label values (as
 * kept in each series' `metric` object, which is the client's object, its
 * values replaced in place) are shared through one table per call: equal
 * strings across series and selectors are one string.
 *
 * @param client The Thanos client (only `queryInstant` is used).
 * @param request The evaluation span and the selectors.
 * @param signal Aborts every query: a `cancelled` error.
 * @param counter Counters of the caller's traffic, passed to each query.
 *
 * @example
 * ```ts ignore
 * import { ThanosClient } from "../thanos/thanos_client.ts";
 * import { fetchRaw } from "./raw_fetch.ts";
 *
 * const client = new ThanosClient({ url: "http://127.0.0.1:9090" });
 * const store = await fetchRaw(client, {
 *   firstMs: Date.UTC(2026, 10, 1, 3),
 *   lastMs: Date.UTC(2026, 10, 1, 3, 59),
 *   needs: [{ key: 'kube_pod_info{clusterID="c1"}', marginMs: 300_000 }],
 *   clusterId: "c1",
 * });
 * for (const s of store.series('kube_pod_info{clusterID="c1"}')) console.log(s.metric, s.t.length);
 * client.close();
 * ```
 */
export async function fetchRaw(
  client: InstantQuerier & Partial<RemoteReader>,
  request: RawFetchRequest,
  signal?: AbortSignal,
  counter?: QueryCounter,
): Promise<RawStore> {
  const { firstMs, lastMs } = request;
  if (!Number.isFinite(firstMs) || !Number.isFinite(lastMs) || lastMs < firstMs) {
    throw new RangeError(
      `firstMs and lastMs must be finite with firstMs <= lastMs, got ${firstMs} and ${lastMs}`,
    );
  }
  for (const need of [...request.needs, ...(request.hints ?? [])]) {
    if (typeof need.key !== "string" || need.key.trim() === "") {
      throw new TypeError(`selector key must be a non-empty PromQL selector, got ${need.key}`);
    }
    if (!Number.isFinite(need.marginMs) || need.marginMs < 0) {
      throw new RangeError(`marginMs of ${need.key} must be >= 0, got ${need.marginMs}`);
    }
  }
  const plan = planRawFetches(request.needs, request.hints ?? []);

  const inner = new AbortController();
  const forward = () => inner.abort(signal?.reason);
  if (signal?.aborted) forward();
  else signal?.addEventListener("abort", forward, { once: true });
  let failure: { error: unknown } | undefined;
  const answers = new Map<string, Answer>();
  const interner = new Interner();
  try {
    const tasks = plan.fetches.map(async ({ key, marginMs, parts }) => {
      try {
        answers.set(
          key,
          request.remoteRead !== undefined && client.readRaw !== undefined && parts !== undefined
            ? await readOne(
              client as RemoteReader,
              request,
              key,
              parts,
              marginMs,
              interner,
              inner.signal,
              counter,
            )
            : await fetchOne(client, request, key, marginMs, interner, inner.signal, counter),
        );
      } catch (error) {
        if (failure === undefined) {
          failure = { error };
          inner.abort(error);
        }
      }
    });
    await Promise.all(tasks);
  } finally {
    signal?.removeEventListener("abort", forward);
  }
  if (failure !== undefined) throw failure.error;

  let samples = 0, seriesCount = 0, capacity = 0, labels = 0;
  const byKey = new Map<string, readonly RawSeries[]>();
  const buffers: ArrayBuffer[] = [];
  let released = false;
  for (const [key, answer] of answers) {
    const series = answer.finish(interner);
    buffers.push(...answer.buffers);
    byKey.set(
      key,
      series.sort((x, y) => compareLabelSets(x.allNames, x.allValues, y.allNames, y.allValues)),
    );
    samples += answer.samples;
    seriesCount += series.length;
    capacity += answer.capacity;
    labels += answer.labels;
  }
  const chars = interner.chars;
  interner.forget();
  const cut = new Map<string, readonly RawSeries[]>();
  return {
    series(key: string): readonly RawSeries[] {
      if (released) {
        throw new RangeError(`selector ${showValue(key, 200)}: the samples were released`);
      }
      const served = plan.served.get(key);
      const found = served === undefined ? undefined : byKey.get(served.fetch);
      if (served === undefined || found === undefined) {
        throw new RangeError(`selector ${showValue(key, 200)} was not fetched`);
      }
      if (served.filter.length === 0) return found;
      let mine = cut.get(key);
      if (mine === undefined) {
        mine = found.filter((s) => passesFilter(s.metric, served.filter));
        cut.set(key, mine);
      }
      return mine;
    },
    covers(key: string, marginMs: number): boolean {
      const served = plan.served.get(key);
      return served !== undefined && served.marginMs >= marginMs;
    },
    release(): void {
      released = true;
      for (const b of buffers) if (!b.detached) b.transfer(0);
      buffers.length = 0;
      byKey.clear();
      cut.clear();
    },
    samples,
    seriesCount,
    queries: plan.fetches.length,
    bytes: capacity * 8 + chars * 2 + seriesCount * SERIES_OVERHEAD_BYTES +
      labels * LABEL_OVERHEAD_BYTES,
  };
}

/**
 * Points the values of `labels` (names `names`) at the call's kept strings,
 * and returns the set's hash from their numbers.
 */
function internLabels(
  labels: Record<string, string>,
  names: readonly string[],
  interner: Interner,
): number {
  let hash = names.length;
  for (const n of names) {
    const value = interner.id(labels[n]!);
    labels[n] = interner.string(value);
    hash = (hash + mixPair(interner.id(n), value)) | 0;
  }
  return hash;
}

/** The refusal of one series of a selector's answer, naming the selector, the cluster and the series. */
function refusal(
  request: RawFetchRequest,
  key: string,
): (metric: Labels, what: string) => BridgeError {
  return (metric, what) =>
    new BridgeError(
      "thanos_parse",
      `raw samples of ${show(key)}${
        request.clusterId !== undefined ? ` (cluster ${request.clusterId})` : ""
      }: series ${showLabels(metric)} ${what}`,
    );
}

/** The query's name in messages: the batch's id and the selector. */
function fetchName(request: RawFetchRequest, key: string, how: string): string {
  const name = `${how} ${shortenQuery(key, 120)}`;
  return request.id !== undefined ? `${request.id} ${name}` : name;
}

/**
 * One selector's remote read (samples in `[lastMs - range, lastMs]`);
 * resolves with its series checked and converted as {@linkcode fetchOne}'s:
 * the server's external labels removed, staleness markers and samples outside
 * the range (a chunk may reach past it) dropped, a series without samples
 * left in the range dropped (the query API would not list it), native
 * histogram chunks skipped (the query API lists their series without float
 * samples).
 */
async function readOne(
  client: RemoteReader,
  request: RawFetchRequest,
  key: string,
  parts: SelectorParts,
  marginMs: number,
  interner: Interner,
  signal: AbortSignal,
  counter: QueryCounter | undefined,
): Promise<Answer> {
  const range = rangeSeconds(request.firstMs, request.lastMs, marginMs);
  const hiMs = request.lastMs;
  const loMs = request.lastMs - range * 1000;
  const q: RawReadQuery = {
    query: key,
    startMs: loMs,
    endMs: hiMs,
    matchers: parts.metric === null
      ? parts.matchers
      : [{ name: "__name__", op: "=", value: parts.metric }, ...parts.matchers],
    id: fetchName(request, key, "raw (remote read)"),
  };
  if (request.clusterId !== undefined) q.clusterId = request.clusterId;
  if (request.hours !== undefined) q.hours = request.hours;
  const external = request.remoteRead?.externalLabels ?? {};
  const hasExternal = Object.keys(external).length > 0;

  let answer = new Answer();
  const refuse = refusal(request, key);
  const onSeries = (s: ReadSeries) => {
    const labels: Record<string, string> = {};
    const names: string[] = [];
    for (const [name, value] of s.labels) {
      if (hasExternal && Object.hasOwn(external, name) && external[name] === value) continue;
      if (Object.hasOwn(labels, name)) {
        throw refuse(labels, `has label ${showValue(name)} twice`);
      }
      labels[name] = value;
      names.push(name);
    }
    const hash = internLabels(labels, names, interner);
    if (answer.find(hash, labels, names) !== undefined) {
      throw refuse(labels, "comes twice in one answer");
    }
    let most = 0;
    for (const c of s.chunks) {
      if (c.type === CHUNK_XOR && c.data.length >= 2) most += (c.data[0]! << 8) | c.data[1]!;
    }
    const { t, tAt, v, vAt } = answer.reserve(most);
    let n = 0, previous = -Infinity;
    for (const c of s.chunks) {
      if (c.type !== CHUNK_XOR) continue;
      if (c.maxMs < loMs || c.minMs > hiMs) continue;
      try {
        decodeXorChunk(c.data, (ms, value, stale) => {
          if (!(ms > previous)) {
            throw refuse(
              labels,
              `has timestamps that are not strictly ascending (${previous / 1000} then ${
                ms / 1000
              })`,
            );
          }
          previous = ms;
          if (ms < loMs || ms > hiMs || stale) return;
          t[tAt + n] = ms;
          v[vAt + n] = value;
          n++;
        });
      } catch (error) {
        if (error instanceof BridgeError) throw error;
        throw refuse(
          labels,
          `has a bad chunk: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
    if (n > 0) answer.commit(hash, labels, n, names.length);
  };
  await client.readRaw(q, onSeries, signal, () => {
    answer = new Answer();
  }, counter);
  return answer;
}

/** One selector's query; resolves with its checked, converted series. */
async function fetchOne(
  client: InstantQuerier,
  request: RawFetchRequest,
  key: string,
  marginMs: number,
  interner: Interner,
  signal: AbortSignal,
  counter: QueryCounter | undefined,
): Promise<Answer> {
  const range = rangeSeconds(request.firstMs, request.lastMs, marginMs);
  const time = request.lastMs / 1000;
  const hiMs = request.lastMs;
  const loMs = request.lastMs - range * 1000;
  const q: InstantQuery = {
    query: `${key}[${range}s]`,
    time,
    id: fetchName(request, key, "raw"),
  };
  if (request.clusterId !== undefined) q.clusterId = request.clusterId;
  if (request.hours !== undefined) q.hours = request.hours;

  let answer = new Answer();
  const refuse = refusal(request, key);
  const onSeries = (s: StreamedSeries) => {
    const metric = s.metric as unknown;
    if (typeof metric !== "object" || metric === null || Array.isArray(metric)) {
      throw refuse({}, "has labels that are not an object");
    }
    const labels = metric as Record<string, unknown>;
    const names = Object.keys(labels);
    for (const n of names) {
      if (typeof labels[n] !== "string") {
        // Name the first such label in sorted order.
        const bad = names.sort(compareUtf8).find((m) => typeof labels[m] !== "string")!;
        throw refuse({}, `has label ${showValue(bad)} that is not a string`);
      }
    }
    const hash = internLabels(labels as Record<string, string>, names, interner);
    if (answer.find(hash, labels as Labels, names) !== undefined) {
      throw refuse(metric as Labels, "comes twice in one answer");
    }
    const values = s.values;
    const n = values.length;
    // Written at the lanes' free ends; committed (kept) only once the whole series passed.
    const { t, tAt, v, vAt } = answer.reserve(n);
    let previous = -Infinity;
    for (let i = 0; i < n; i++) {
      const [ts, text] = values[i]!;
      const ms = Math.round(ts * 1000);
      if (!(ms > previous)) {
        throw refuse(
          metric as Labels,
          `has timestamps that are not strictly ascending (${previous / 1000} then ${ts})`,
        );
      }
      if (ms < loMs || ms > hiMs) {
        throw refuse(
          metric as Labels,
          `has a sample at ${ts}, outside the window [${loMs / 1000}, ${hiMs / 1000}]`,
        );
      }
      previous = ms;
      t[tAt + i] = ms;
      try {
        v[vAt + i] = parseSampleValue(text);
      } catch (error) {
        throw refuse(
          metric as Labels,
          `has a bad value at ${ts}: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
    answer.commit(hash, metric as Labels, n, names.length);
  };
  await client.queryInstant(q, onSeries, signal, () => {
    answer = new Answer();
  }, counter);
  return answer;
}
