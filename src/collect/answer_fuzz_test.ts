/**
 * Fuzz test of the answer path in both reduction modes: generated answers go
 * through the real ThanosClient (streamed in random chunks, with small limits)
 * and the collector's fetch functions, and each must either be refused with a
 * named BridgeError or give exactly what an independent reference decoder
 * (JSON.parse, Go's verdicts from the vector file, CMMO's arithmetic written
 * out here) gives.
 */
import assert from "node:assert/strict";
import { BridgeError } from "../model.ts";
import { ThanosClient } from "../thanos/thanos_client.ts";
import type { Reduction } from "./catalogue_groups.ts";
import { COST_QUERIES } from "./catalogue.ts";
import { fetchClientHour, fetchServerBatch, hourStartSeconds } from "./hour_collector.ts";
import { type PlannedQuery, planQueries, serverExpr } from "./query_plan.ts";
import { type ServerAggregate, serverAggregates } from "./reduce.ts";

const DAY = "2026-11-01";
const CLUSTER = "fuzz-cluster";
const LIMITS = { maxAnswerBytes: 24_000, maxSeriesBytes: 1_600, maxLabelBytes: 120, maxSeries: 25 };

// ---------------------------------------------------------------- Go's verdicts

interface Vector {
  s: string;
  ok: boolean;
  bits?: string;
}
const VECTORS: Vector[] = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/go_parse_float_vectors.json", import.meta.url)),
).vectors;
/** Go's value of each vector string, or null where Go refuses it. */
const GO = new Map<string, number | null>();
for (const v of VECTORS) {
  if (!v.ok) {
    GO.set(v.s, null);
    continue;
  }
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${v.bits}`));
  GO.set(v.s, view.getFloat64(0));
}
const GO_STRINGS = [...GO.keys()];

// ---------------------------------------------------------------- PRNG

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  constructor(readonly random: () => number) {}
  int(n: number): number {
    return Math.floor(this.random() * n);
  }
  chance(p: number): boolean {
    return this.random() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

// ---------------------------------------------------------------- generator

interface Grid {
  start: number;
  end: number;
  step: number;
}

/** A generated answer: its text and the UTF-8 size of each series' text, in order. */
interface Answer {
  text: string;
  seriesBytes: number[];
}

const utf8 = (s: string) => new TextEncoder().encode(s).length;

const LABEL_NAMES = ["node", "pod", "namespace", "label_app", "__name__", "ü_name"];
const PIECES = ["a", "B", "7", "-", "é", "日本", "🚀", '"', "\\", "\n", "\x1b", " ", "\u2028"];

function labelValue(g: Gen): unknown {
  const r = g.random();
  if (r < 0.01) return g.pick([1, null, true, ["x"], { a: "b" }, 0.5]);
  if (r < 0.05) {
    // Near the label limit, in bytes (2-byte characters).
    return "é".repeat(LIMITS.maxLabelBytes / 2 - 2 + g.int(4));
  }
  let s = "";
  for (let i = g.int(8); i > 0; i--) s += g.pick(PIECES);
  return s;
}

function metricOf(g: Gen): Record<string, unknown> {
  const m: Record<string, unknown> = {};
  for (let i = g.int(4); i > 0; i--) m[g.pick(LABEL_NAMES)] = labelValue(g);
  return m;
}

const GO_ACCEPTED = GO_STRINGS.filter((v) => GO.get(v) !== null);
const GO_REFUSED = GO_STRINGS.filter((v) => GO.get(v) === null);

/** A sample value as JSON text: usually a value Go accepts; `bad` makes it one Go refuses. */
function sampleValue(g: Gen, bad = false): string {
  if (bad) {
    return g.chance(0.2)
      ? g.pick(["5", "null", "true", '["1"]', "{}"]) // not a string at all
      : JSON.stringify(g.pick(GO_REFUSED));
  }
  if (g.chance(0.3)) return JSON.stringify(g.pick(GO_ACCEPTED));
  return JSON.stringify(String(g.pick([0, 1, 0.25, 1e-7, 123456789, -3.5, 1e21, 4096])));
}

/** A timestamp as JSON text; `bad` makes it something that is not a JSON number. */
function timestampText(g: Gen, t: number, bad = false): string {
  if (bad) return g.pick([`"${t}"`, "null", `+${t}`, `0${t}`, `${t}.`, "1e400", "NaN"]);
  const r = g.random();
  if (r < 0.05) return `${t}.0`;
  if (r < 0.1) return (t / 1e9).toString() + "e9";
  return String(t);
}

/**
 * The samples of one series: on the grid and in order, and in about a quarter
 * of the series one flaw (off grid, out of range, repeated, out of order, a bad
 * timestamp or value, a sample of the wrong shape).
 */
function samplesText(g: Gen, grid: Grid): string {
  const slots = Math.floor((grid.end - grid.start) / grid.step) + 1;
  const ts: number[] = [];
  const density = g.random();
  for (let k = 0; k < slots; k++) if (g.random() < density) ts.push(grid.start + k * grid.step);
  const flaw = g.chance(0.25) ? g.int(9) : -1;
  const at = ts.length > 0 ? g.int(ts.length) : -1;
  if (flaw === 0 && at >= 0) ts[at]! += g.pick([1, 0.5, -30]); // off grid
  if (flaw === 1) ts.push(grid.end + grid.step); // after end
  if (flaw === 2) ts.unshift(grid.start - grid.step); // before start
  if (flaw === 3 && at >= 0) ts.splice(at, 0, ts[at]!); // repeated
  if (flaw === 4 && ts.length > 1) ts.reverse(); // out of order
  const parts = ts.map((t, i) => {
    const bad = i === at;
    if (bad && flaw === 5) return `[${timestampText(g, t, true)},${sampleValue(g)}]`;
    if (bad && flaw === 6) return `[${timestampText(g, t)},${sampleValue(g, true)}]`;
    if (bad && flaw === 7) {
      return g.pick([`[${t}]`, `[${t},${sampleValue(g)},1]`, `"x"`, `{"t":${t}}`]);
    }
    return `[${timestampText(g, t)},${sampleValue(g)}]`;
  });
  return `[${parts.join(g.chance(0.05) ? " ,\n" : ",")}]`;
}

function seriesText(g: Gen, grid: Grid, previous: string[]): string {
  const members: string[] = [];
  const r = g.random();
  if (r < 0.01) return g.pick(["[]", "null", '"s"', "{}"]);
  // Sometimes the label set of an earlier series again (a duplicate).
  const metric = previous.length > 0 && g.chance(0.06)
    ? g.pick(previous)
    : JSON.stringify(metricOf(g));
  previous.push(metric);
  if (!g.chance(0.01)) members.push(`"metric":${metric}`);
  if (!g.chance(0.03)) members.push(`"values":${samplesText(g, grid)}`);
  if (g.chance(0.03)) members.push(`"histograms":[[1,{"count":"1"}]]`);
  if (g.chance(0.3)) members.reverse();
  return `{${members.join(g.chance(0.1) ? " , " : ",")}}`;
}

function answerText(g: Gen, grid: Grid): Answer {
  const count = g.chance(0.05) ? LIMITS.maxSeries - 1 + g.int(3) : g.int(7);
  const series: string[] = [];
  const previous: string[] = [];
  for (let i = 0; i < count; i++) series.push(seriesText(g, grid, previous));
  const top: string[] = [];
  const r = g.random();
  const status = r < 0.03 ? '"error"' : r < 0.04 ? "null" : '"success"';
  top.push(`"status":${status}`);
  if (status === '"error"') top.push('"errorType":"execution","error":"boom \\u001b"');
  const resultType = g.chance(0.03) ? g.pick(['"vector"', "null", '"scalar"']) : '"matrix"';
  const data = g.chance(0.02)
    ? `{"resultType":${resultType}}`
    : `{"resultType":${resultType},"result":[${series.join(",")}]}`;
  top.push(`"data":${data}`);
  if (g.chance(0.05)) top.push(g.pick(['"warnings":[]', '"warnings":["store down"]']));
  if (g.chance(0.1)) top.push(`"stats":{"timings":{"evalTotalTime":0.1},"x":[1,"]"]}`);
  if (g.chance(0.04)) {
    // Padding that brings the answer near the answer limit.
    top.push(`"pad":"${"p".repeat(LIMITS.maxAnswerBytes - 2000 + g.int(4000))}"`);
  }
  if (g.chance(0.3)) top.reverse();
  let text = `{${top.join(",")}}`;
  if (g.chance(0.03)) text = text.slice(0, g.int(text.length)); // truncated
  return { text, seriesBytes: series.map(utf8) };
}

// ---------------------------------------------------------------- reference decoder

type Decoded =
  | { ok: false; why: string }
  | { ok: true; series: { metric: Record<string, string>; ts: number[]; vs: number[] }[] };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** What a correct decoder must make of `answer` for a request on `grid`. */
function referenceDecode(answer: Answer, grid: Grid): Decoded {
  const no = (why: string): Decoded => ({ ok: false, why });
  if (utf8(answer.text) > LIMITS.maxAnswerBytes) return no("answer bytes");
  let top: unknown;
  try {
    top = JSON.parse(answer.text);
  } catch {
    return no("json");
  }
  if (!isObject(top)) return no("top");
  if (top.status !== "success") return no("status");
  if (Array.isArray(top.warnings) && top.warnings.length > 0) return no("warnings");
  const data = top.data;
  if (!isObject(data) || data.resultType !== "matrix") return no("resultType");
  const result = data.result;
  if (!Array.isArray(result)) return no("result");
  if (result.length > LIMITS.maxSeries) return no("series count");
  const out: { metric: Record<string, string>; ts: number[]; vs: number[] }[] = [];
  for (const [i, s] of result.entries()) {
    if (answer.seriesBytes[i]! > LIMITS.maxSeriesBytes) return no("series bytes");
    if (!isObject(s) || !isObject(s.metric)) return no("metric");
    for (const v of Object.values(s.metric)) {
      if (typeof v !== "string") return no("label type");
      if (utf8(v) > LIMITS.maxLabelBytes) return no("label bytes");
    }
    const values = s.values ?? [];
    if (!Array.isArray(values)) return no("values");
    const ts: number[] = [];
    const vs: number[] = [];
    for (const sample of values) {
      if (!Array.isArray(sample) || sample.length !== 2) return no("sample shape");
      const [t, v] = sample;
      if (typeof t !== "number" || typeof v !== "string") return no("sample types");
      if (!Number.isFinite(t) || t < grid.start || t > grid.end) return no("range");
      if ((t - grid.start) % grid.step !== 0) return no("grid");
      if (ts.length > 0 && t <= ts.at(-1)!) return no("order");
      const x = GO.has(v) ? GO.get(v)! : Number(v); // generated values are Go vectors or plain
      if (x === null) return no("go float");
      ts.push(t);
      vs.push(x);
    }
    out.push({ metric: s.metric as Record<string, string>, ts, vs });
  }
  return { ok: true, series: out };
}

/** CMMO's getValue, written out again. */
function referenceReduce(vs: number[], reduction: Reduction): { value: number; n: number } {
  if (vs.length === 0) return { value: 0, n: 0 };
  let acc = reduction === "max" || reduction === "min" ? vs[0]! : 0;
  for (const v of vs) {
    if (reduction === "sum" || reduction === "avg") acc += v;
    else if (reduction === "max" && v > acc) acc = v;
    else if (reduction === "min" && v < acc) acc = v;
  }
  return { value: reduction === "avg" ? acc / vs.length : acc, n: vs.length };
}

const canonical = (m: Record<string, string>) =>
  JSON.stringify(Object.keys(m).sort().map((k) => [k, m[k]]));

// ---------------------------------------------------------------- the plan under test

const BASE = planQueries(COST_QUERIES, {
  clusterLabel: "clusterID",
  clusterId: CLUSTER,
  rateWindow: "15m",
});

function withReduction(p: PlannedQuery, reduction: Reduction | null): PlannedQuery {
  const query = {
    ...p.query,
    value: reduction === null
      ? null
      : { ...(p.query.value ?? { field: "x", transformedField: null }), reduction },
  };
  const server = serverAggregates(reduction).map((aggregate) => ({
    aggregate,
    expr: serverExpr(p.expr, aggregate),
  }));
  return { ...p, query, server };
}

const QUERIES: PlannedQuery[] = (["sum", "max", "min", "avg", null] as const).map((r) =>
  withReduction(BASE.find((p) => p.query.value?.reduction === "max")!, r)
);

/** A client whose transport answers from `answers` (by query text), in random chunks. */
function clientFor(g: Gen, answers: Map<string, string>): ThanosClient {
  return new ThanosClient({
    url: "http://fuzz.invalid",
    maxAttempts: 1,
    ...LIMITS,
    fetch: async (_input, init) => {
      const form = new URLSearchParams(String(init?.body));
      const text = answers.get(form.get("query") ?? "");
      if (text === undefined) throw new Error(`unexpected query ${form.get("query")}`);
      const bytes = new TextEncoder().encode(text);
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < bytes.length;) {
        const size = 1 + g.int(g.chance(0.5) ? 64 : 8192);
        chunks.push(bytes.slice(at, at + size));
        at += size;
      }
      return await Promise.resolve(
        new Response(
          new ReadableStream({
            pull(c) {
              const next = chunks.shift();
              if (next) c.enqueue(next);
              else c.close();
            },
          }),
        ),
      );
    },
  });
}

function assertNamedRefusal(error: unknown, queryId: string, why: string, text: string): void {
  if (!(error instanceof BridgeError)) {
    throw new Error(`not a BridgeError (${why}): ${error}\n${text.slice(0, 500)}`);
  }
  assert.ok(error.code.length > 0);
  assert.ok(
    error.message.includes(queryId) && error.message.includes(CLUSTER),
    `message does not name ${queryId} and ${CLUSTER}: ${error.message}`,
  );
}

const tally = { accepted: 0, refused: 0, answers: 0 };
/** Why the reference refused, counted (shown at the end). */
const reasons = new Map<string, number>();
function countReason(why: string): void {
  const key = why.replace(/^.*: /, "").replace(/, hour \d+$/, "");
  reasons.set(key, (reasons.get(key) ?? 0) + 1);
}

async function clientCase(g: Gen): Promise<void> {
  const p = g.pick(QUERIES);
  const hour = g.int(24);
  const start = hourStartSeconds(DAY, hour);
  const grid = { start, end: start + 3599, step: 60 };
  const answer = answerText(g, grid);
  tally.answers++;
  const expected = referenceDecode(answer, grid);
  const client = clientFor(g, new Map([[p.expr, answer.text]]));
  let got;
  try {
    got = (await fetchClientHour({ client }, [p], CLUSTER, DAY, hour))(hour).get(p.query.name)!;
  } catch (error) {
    if (expected.ok) {
      throw new Error(`refused an answer the reference accepts: ${error}\n${answer.text}`);
    }
    assertNamedRefusal(error, p.query.name, expected.why, answer.text);
    countReason(expected.why);
    tally.refused++;
    return;
  }
  if (!expected.ok) {
    throw new Error(`accepted an answer the reference refuses (${expected.why}):\n${answer.text}`);
  }
  tally.accepted++;
  const reduction = p.query.value?.reduction ?? null;
  assert.equal(got.length, expected.series.length);
  for (const [i, s] of expected.series.entries()) {
    assert.deepEqual(got[i]!.metric, s.metric);
    if (reduction === null) {
      assert.equal(got[i]!.reduced, null);
    } else {
      const want = referenceReduce(s.vs, reduction);
      assert.ok(
        Object.is(got[i]!.reduced!.value, want.value),
        `${got[i]!.reduced!.value} ≠ ${want.value}`,
      );
      assert.equal(got[i]!.reduced!.n, want.n);
    }
  }
}

async function serverCase(g: Gen): Promise<void> {
  const p = g.pick(QUERIES);
  const first = g.int(21);
  const hours = Array.from({ length: 1 + g.int(4) }, (_, i) => first + i);
  const grid = {
    start: hourStartSeconds(DAY, first) + 3600,
    end: hourStartSeconds(DAY, hours.at(-1)!) + 3600,
    step: 3600,
  };
  const answers = new Map<string, string>();
  const decoded = new Map<ServerAggregate, Decoded>();
  let refusedBy: string | null = null;
  for (const { aggregate, expr } of p.server) {
    const answer = answerText(g, grid);
    tally.answers++;
    answers.set(expr, answer.text);
    const d = referenceDecode(answer, grid);
    decoded.set(aggregate, d);
    if (!d.ok) refusedBy ??= `${p.query.name}/${aggregate}: ${d.why}`;
  }
  // A label set twice in one answer (once with points) is refused in server mode.
  for (const [aggregate, d] of decoded) {
    if (!d.ok || refusedBy) continue;
    const withPoints = new Set<string>();
    for (const s of d.series) {
      const key = canonical(s.metric);
      if (withPoints.has(key)) refusedBy = `${p.query.name}/${aggregate}: duplicate`;
      if (s.ts.length > 0 || withPoints.has(key)) withPoints.add(key);
    }
  }
  // Reference rows per hour (sorted by label set), or a missing-aggregate refusal.
  const expected = new Map<
    number,
    { key: string; reduced: { value: number; n: number } | null }[]
  >();
  if (!refusedBy) {
    type Points = Map<number, number>; // slot -> value
    const bySeries = new Map<string, Map<ServerAggregate, Points>>();
    for (const [aggregate, d] of decoded) {
      if (!d.ok) continue;
      for (const s of d.series) {
        const key = canonical(s.metric);
        const aggs = bySeries.get(key) ?? new Map<ServerAggregate, Points>();
        bySeries.set(key, aggs);
        const pts = aggs.get(aggregate) ?? new Map<number, number>();
        aggs.set(aggregate, pts);
        s.ts.forEach((t, i) => pts.set((t - grid.start) / grid.step, s.vs[i]!));
      }
    }
    const primary = p.server[0]!.aggregate;
    for (const [i, hour] of hours.entries()) {
      const rows: { key: string; reduced: { value: number; n: number } | null }[] = [];
      for (const [key, aggs] of bySeries) {
        if (!aggs.get(primary)?.has(i)) continue;
        const value = (a: ServerAggregate) => aggs.get(a)?.get(i);
        const missing = p.server.find(({ aggregate }) => value(aggregate) === undefined);
        if (missing) {
          refusedBy ??= `${p.query.name}/${missing.aggregate}: missing aggregate, hour ${hour}`;
          continue;
        }
        const r = p.query.value?.reduction ?? null;
        rows.push({
          key,
          reduced: r === null
            ? null
            : r === "sum"
            ? { value: value("sum")!, n: 0 }
            : r === "avg"
            ? { value: value("sum")! / value("count")!, n: value("count")! }
            : { value: value(r)!, n: value("count")! },
        });
      }
      expected.set(hour, rows.sort((a, b) => (a.key < b.key ? -1 : 1)));
    }
  }
  const client = clientFor(g, answers);
  const got = new Map<number, { key: string; reduced: { value: number; n: number } | null }[]>();
  try {
    const seriesOf = await fetchServerBatch({ client }, [p], CLUSTER, DAY, hours);
    for (const hour of hours) {
      got.set(
        hour,
        seriesOf(hour).get(p.query.name)!.map((s) => ({
          key: canonical(s.metric),
          reduced: s.reduced,
        })).sort((a, b) => (a.key < b.key ? -1 : 1)),
      );
    }
  } catch (error) {
    if (!refusedBy) {
      throw new Error(`refused answers the reference accepts: ${error}\n${[...answers.values()]}`);
    }
    assertNamedRefusal(error, `${p.query.name}/`, refusedBy, [...answers.values()].join("\n"));
    countReason(refusedBy);
    tally.refused++;
    return;
  }
  if (refusedBy) {
    throw new Error(
      `accepted answers the reference refuses (${refusedBy}):\n${[...answers.values()]}`,
    );
  }
  tally.accepted++;
  for (const hour of hours) {
    const want = expected.get(hour)!;
    const have = got.get(hour)!;
    assert.equal(have.length, want.length, `hour ${hour}`);
    for (const [i, w] of want.entries()) {
      assert.equal(have[i]!.key, w.key);
      if (w.reduced === null) assert.equal(have[i]!.reduced, null);
      else {
        assert.ok(
          Object.is(have[i]!.reduced!.value, w.reduced.value),
          `${have[i]!.reduced!.value}`,
        );
        assert.equal(have[i]!.reduced!.n, w.reduced.n);
      }
    }
  }
}

Deno.test("rule 2: fuzz: 10,000+ generated answers in both modes are refused by name or decoded exactly", async () => {
  const g = new Gen(prng(0x7ba1d9e));
  const t0 = performance.now();
  for (let i = 0; i < 6000; i++) await clientCase(g);
  for (let i = 0; i < 4000; i++) await serverCase(g);
  const ms = performance.now() - t0;
  assert.ok(tally.answers >= 10_000, `${tally.answers} answers`);
  // Both outcomes are well represented.
  assert.ok(tally.accepted > 2000 && tally.refused > 2000, JSON.stringify(tally));
  // Every kind of refusal was generated.
  for (
    const why of [
      "json",
      "answer bytes",
      "series bytes",
      "label bytes",
      "series count",
      "range",
      "grid",
      "order",
      "go float",
      "label type",
      "sample types",
      "missing aggregate",
      "duplicate",
    ]
  ) {
    assert.ok(
      (reasons.get(why) ?? 0) > 20,
      `${why}: ${JSON.stringify(Object.fromEntries(reasons))}`,
    );
  }
  console.log(`fuzz: ${JSON.stringify(tally)} in ${Math.round(ms)} ms`);
  console.log(`refusals: ${JSON.stringify(Object.fromEntries(reasons))}`);
});
