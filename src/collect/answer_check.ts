/**
 * The one check every answer goes through before its samples are reduced, in
 * both reduction modes: label values are strings, every timestamp lies on the
 * request's grid (`start + k·step`, within `[start, end]`) and comes after the
 * previous one of its series, and every value is a float as Go's
 * `strconv.ParseFloat` reads it. A refused answer is a `thanos_parse`
 * {@linkcode BridgeError} that names the query by its stable id, the cluster,
 * the hours, the series and what was wrong.
 *
 * @module
 */

import { BridgeError, showValue } from "../model.ts";
import { parseGoFloat } from "./go_parse_float.ts";

/** Who an answer belongs to, for messages. */
export interface AnswerContext {
  /**
   * Stable short id of the query: the catalogue name (client mode), plus the
   * aggregate in server mode, e.g. `node-allocatable-cpu-cores/max`.
   */
  readonly queryId: string;
  /** The cluster the query is for. */
  readonly clusterId: string;
  /** The hours the answer covers, see {@linkcode formatHours}. */
  readonly hours: string;
}

/** The evaluation times a `query_range` request asked for (unix seconds). */
export interface SampleGrid {
  readonly start: number;
  readonly end: number;
  readonly step: number;
}

/** A series as it comes from an answer, not trusted yet. */
export interface UncheckedSeries {
  readonly metric: Readonly<Record<string, unknown>>;
  readonly values: ReadonlyArray<readonly [unknown, unknown]>;
}

/** The samples of a checked series. */
export interface CheckedSamples {
  /** Grid index `k` of each sample (`t = start + k·step`), strictly increasing. */
  readonly slots: number[];
  /** The value of each sample, as Go's `strconv.ParseFloat` reads it. */
  readonly values: number[];
}

/**
 * Hours `first`…`last` of `day` as shown in messages.
 *
 * @example
 * ```ts
 * import { formatHours } from "./answer_check.ts";
 * formatHours("2026-11-01", 3, 3); // "2026-11-01 03:00-03:59 UTC"
 * formatHours("2026-11-01", 0, 5); // "2026-11-01 00:00-05:59 UTC"
 * ```
 */
export function formatHours(day: string, first: number, last: number): string {
  const hh = (h: number) => String(h).padStart(2, "0");
  return `${day} ${hh(first)}:00-${hh(last)}:59 UTC`;
}

/**
 * `query <id> of cluster <id>, <hours>`: how every answer error starts.
 *
 * @example
 * ```ts
 * import { describeAnswer } from "./answer_check.ts";
 * describeAnswer({ queryId: "node-role", clusterId: "c1", hours: "2026-11-01 03:00-03:59 UTC" });
 * // "query node-role of cluster c1, 2026-11-01 03:00-03:59 UTC"
 * ```
 */
export function describeAnswer(ctx: AnswerContext): string {
  return `query ${ctx.queryId} of cluster ${ctx.clusterId}, ${ctx.hours}`;
}

/**
 * A `thanos_parse` error about an answer: the query, cluster and hours, then `what`.
 *
 * @example
 * ```ts
 * import { answerError } from "./answer_check.ts";
 * const e = answerError({ queryId: "q", clusterId: "c1", hours: "h" }, "bad sample");
 * e.code; // "thanos_parse"
 * e.message; // "query q of cluster c1, h: bad sample"
 * ```
 */
export function answerError(ctx: AnswerContext, what: string): BridgeError {
  return new BridgeError("thanos_parse", `${describeAnswer(ctx)}: ${what}`);
}

/** A label set as shown in messages (escaped, cut to 100 characters). */
export function showLabels(metric: Readonly<Record<string, unknown>>): string {
  let text: string;
  try {
    text = JSON.stringify(metric);
  } catch {
    text = String(metric);
  }
  return showValue(text);
}

function describeType(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "an array" : typeof v;
}

/**
 * Checks one series of an answer against the grid its request asked for and
 * reads its values; used by both reduction modes. Refuses (a `thanos_parse`
 * {@linkcode BridgeError} naming query, cluster, hours, series and cause): a
 * label value that is not a string; a timestamp that is not a finite number,
 * lies outside `[start, end]`, is off the grid `start + k·step`, or does not
 * come after the previous one (repeated or out of order); a value that is not
 * a string Go's `strconv.ParseFloat` accepts.
 *
 * @param series The series as streamed from the answer.
 * @param grid The request's `start`, `end` and `step`.
 * @param ctx The query, cluster and hours, for messages.
 * @returns The grid index and the value of each sample, in order.
 *
 * @example
 * ```ts
 * import { checkSeries } from "./answer_check.ts";
 * const ctx = { queryId: "node-role", clusterId: "c1", hours: "2026-11-01 00:00-00:59 UTC" };
 * const grid = { start: 1_793_491_200, end: 1_793_494_740, step: 60 };
 * checkSeries({ metric: { node: "n1" }, values: [[1_793_491_260, "1.5"]] }, grid, ctx);
 * // { slots: [1], values: [1.5] }
 * ```
 */
export function checkSeries(
  series: UncheckedSeries,
  grid: SampleGrid,
  ctx: AnswerContext,
): CheckedSamples {
  const { metric, values } = series;
  const refuse = (what: string) => answerError(ctx, `series ${showLabels(metric)}: ${what}`);
  for (const name in metric) {
    const v = metric[name];
    if (typeof v !== "string") {
      throw refuse(`label ${showValue(name)} is not a string but ${describeType(v)}`);
    }
  }
  const { start, end, step } = grid;
  const slots: number[] = new Array(values.length);
  const parsed: number[] = new Array(values.length);
  let previous = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const [t, v] = values[i]!;
    if (typeof t !== "number" || !Number.isFinite(t)) {
      throw refuse(`sample ${i + 1} has a timestamp that is not a number: ${showValue(t)}`);
    }
    if (t < start || t > end) {
      throw refuse(`timestamp ${t} is outside the requested range [${start}, ${end}]`);
    }
    const k = (t - start) / step;
    if (!Number.isInteger(k)) {
      throw refuse(`timestamp ${t} is off the step grid (${start} + k·${step})`);
    }
    if (t <= previous) {
      throw refuse(
        t === previous
          ? `timestamp ${t} is repeated`
          : `timestamp ${t} comes after ${previous} (out of order)`,
      );
    }
    previous = t;
    if (typeof v !== "string") {
      throw refuse(`the value at ${t} is not a string but ${describeType(v)}`);
    }
    const x = parseGoFloat(v);
    if (x === undefined) {
      throw refuse(`the value at ${t}, ${showValue(v)}, is not a number (Go strconv.ParseFloat)`);
    }
    slots[i] = k;
    parsed[i] = x;
  }
  return { slots, values: parsed };
}
