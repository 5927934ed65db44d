/**
 * Collects closed hours of one cluster-day from Thanos into hour fragments:
 * runs the catalogue per hour (client-side reduction, CMMO's reference
 * arithmetic) or per batch of hours (server-side reduction), merges the series
 * into row maps in catalogue order, builds the report rows and commits each
 * hour atomically to the state store. A failed hour is not committed, so the
 * next run retries it.
 *
 * @module
 */

import { type ErrorCode, errorInfo, HOUR_MS } from "../model.ts";
import type { CollectionParams, HourWriter, StateStore } from "../package/state_store.ts";
import type { QueryGroup } from "./catalogue_groups.ts";
import { hourColumns } from "./go_time.ts";
import { planFingerprint, type PlannedQuery } from "./query_plan.ts";
import {
  combineServerAggregates,
  parseSampleValue,
  type Reduced,
  reduceSamples,
  type ServerAggregate,
} from "./reduce.ts";
import { buildHourReports, type HourReports } from "./report_rows.ts";
import { applySeries, type Labels, type RowMap } from "./row_map.ts";

/** One `query_range` request. Times are unix seconds. */
export interface RangeRequest {
  readonly query: string;
  readonly start: number;
  readonly end: number;
  readonly step: number;
}

/** One series of a matrix answer. */
export interface MatrixSeries {
  readonly metric: Record<string, string>;
  readonly values: ReadonlyArray<readonly [number, string]>;
}

/** What the collector needs from the Thanos client. */
export interface RangeQuerier {
  /**
   * Streams the series of one answer to `onSeries`. `onRetry` is called before
   * a new attempt, so the caller can drop the series of a failed attempt.
   */
  queryRange(
    request: RangeRequest,
    onSeries: (series: MatrixSeries) => void,
    signal?: AbortSignal,
    onRetry?: () => void,
  ): Promise<unknown>;
}

/** How values are reduced: on the server (`*_over_time`) or here from 60 points. */
export type ReduceMode = "server" | "client";

/** Progress events, for a TTY progress line. */
export type CollectEvent =
  | { type: "hour-done"; clusterId: string; day: string; hour: number; noData: boolean }
  | { type: "hour-failed"; clusterId: string; day: string; hour: number; error: string };

/** Everything the hour collector needs. */
export interface HourCollectorOptions {
  readonly client: RangeQuerier;
  readonly store: StateStore;
  readonly mode: ReduceMode;
  /** Server mode: at most this many hours per query_range (bounds memory). */
  readonly batchHours: number;
  /** Clock used for `collectedAt`. */
  readonly now: () => Date;
  readonly onEvent?: (event: CollectEvent) => void;
  /**
   * Collection parameters recorded in each committed hour's `hour.json`
   * (`collectionParams(plan, …)` of query_plan.ts); `queryHash` must be the
   * plan's fingerprint and `reduce` equal `mode`. Without them hours are
   * committed without parameters and count as collected with other ones.
   */
  readonly params?: CollectionParams;
  /**
   * An hour without any data is not committed while `now < hour end + this`
   * (ms); it is reported in `pending` instead, because the cluster's
   * remote-write may still deliver it. Default {@linkcode DEFAULT_EMPTY_HOUR_GRACE_MS}.
   */
  readonly emptyHourGrace?: number;
}

/** Default of {@linkcode HourCollectorOptions.emptyHourGrace}: 6 hours. */
export const DEFAULT_EMPTY_HOUR_GRACE_MS = 6 * HOUR_MS;

/** Result of collecting some hours of one cluster-day. */
export interface CollectDayResult {
  /** Hours committed by this call. */
  readonly collected: number[];
  /** Hours that failed (not committed), with the reason and its stable error code. */
  readonly failed: { hour: number; error: string; code: ErrorCode }[];
  /**
   * Hours without data, younger than `emptyHourGrace`: not committed, to be
   * collected again later. Like a missing hour, a pending hour ends the
   * gap-free run of hours that can be shipped.
   */
  readonly pending: number[];
}

/** Series of one query for one hour, in answer order. */
type HourSeries = { metric: Labels; reduced: Reduced | null }[];

/** Start of hour `hour` of `day` (YYYY-MM-DD) in unix seconds. */
export function hourStartSeconds(day: string, hour: number): number {
  const ms = Date.parse(`${day}T00:00:00Z`);
  if (Number.isNaN(ms)) throw new RangeError(`Invalid day "${day}"`);
  return ms / 1000 + hour * 3600;
}

/**
 * Collects `hours` (sorted, 0–23) of `day` for one cluster. Stops at the first
 * failed hour or batch: later hours of the same cluster-day would most likely
 * fail the same way, and payloads only ever contain a gap-free prefix of hours.
 * A failed commit (e.g. `disk_full`) also stops it, and the result keeps the
 * hours committed before it.
 *
 * An hour without any data is committed (as `noData`) only once it is older
 * than `emptyHourGrace`; until then it is left uncommitted and reported in
 * `pending`, and the later hours are still collected. Each committed hour
 * records `options.params` in its `hour.json`.
 *
 * @example
 * ```ts ignore
 * import { collectHours } from "./hour_collector.ts";
 * import { collectionParams } from "./query_plan.ts";
 * const params = collectionParams(plan, { clusterLabel: "clusterID", rateWindow: "15m", reduce: "server" });
 * const result = await collectHours({ ...options, params }, plan, "c1", "2026-11-01", [0, 1, 2]);
 * result.collected; // e.g. [0, 1]; result.pending: [2] while hour 02 has no data yet
 * ```
 */
export async function collectHours(
  options: HourCollectorOptions,
  plan: readonly PlannedQuery[],
  clusterId: string,
  day: string,
  hours: readonly number[],
): Promise<CollectDayResult> {
  const result: CollectDayResult = { collected: [], failed: [], pending: [] };
  const grace = options.emptyHourGrace ?? DEFAULT_EMPTY_HOUR_GRACE_MS;
  if (typeof grace !== "number" || !Number.isFinite(grace) || grace < 0) {
    throw new RangeError(`Invalid emptyHourGrace ${grace}: expected a non-negative number of ms`);
  }
  const params = options.params ?? null;
  if (params && (params.queryHash !== planFingerprint(plan) || params.reduce !== options.mode)) {
    throw new RangeError(
      `collectHours: params (reduce ${params.reduce}, plan ${params.queryHash.slice(0, 12)}) ` +
        `do not describe this collection (reduce ${options.mode}, plan ${
          planFingerprint(plan).slice(0, 12)
        })`,
    );
  }
  const batches = options.mode === "client"
    ? hours.map((h) => [h])
    : contiguousBatches(hours, options.batchHours);
  const fail = (from: number, error: unknown) => {
    const { code, message } = errorInfo(error);
    // These hours stay uncollected; the next run retries them.
    for (const hour of from < 0 ? [] : hours.filter((h) => h >= from)) {
      result.failed.push({ hour, error: message, code });
      options.onEvent?.({ type: "hour-failed", clusterId, day, hour, error: message });
    }
  };
  for (const batch of batches) {
    let seriesOf: (hour: number) => Map<string, HourSeries>;
    try {
      seriesOf = options.mode === "client"
        ? await fetchClientHour(options.client, plan, day, batch[0]!)
        : await fetchServerBatch(options.client, plan, day, batch);
    } catch (error) {
      fail(batch[0]!, error);
      return result;
    }
    for (const hour of batch) {
      let reports: HourReports;
      try {
        reports = mergeHour(plan, seriesOf(hour), day, hour);
      } catch (error) {
        fail(hour, error);
        return result;
      }
      const noData = [...reports.values()].every((rows) => rows.length === 0);
      const collectedAt = options.now();
      if (noData && collectedAt.getTime() < hourStartSeconds(day, hour) * 1000 + HOUR_MS + grace) {
        // The cluster's remote-write may still deliver this hour: do not make "no data" final.
        result.pending.push(hour);
        continue;
      }
      let writer: HourWriter | null = null;
      try {
        writer = await options.store.beginHour(clusterId, day, hour);
        for (const [report, rows] of reports) await writer.writeRows(report, rows);
        await writer.commit({ collectedAt, mode: options.mode, noData, params });
      } catch (error) {
        await writer?.abort().catch(() => {});
        fail(hour, error);
        return result;
      }
      result.collected.push(hour);
      options.onEvent?.({ type: "hour-done", clusterId, day, hour, noData });
    }
  }
  return result;
}

/** Splits sorted hours into runs of consecutive hours of at most `size` hours. */
export function contiguousBatches(hours: readonly number[], size: number): number[][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`Invalid batch size ${size}`);
  const out: number[][] = [];
  for (const h of hours) {
    const last = out.at(-1);
    if (last && last.at(-1) === h - 1 && last.length < size) last.push(h);
    else out.push([h]);
  }
  return out;
}

/**
 * Runs all queries of a plan in parallel (the client bounds concurrency);
 * the first failure aborts the rest.
 */
async function runAll(
  tasks: ((signal: AbortSignal) => Promise<unknown>)[],
): Promise<void> {
  const controller = new AbortController();
  try {
    await Promise.all(tasks.map((t) =>
      t(controller.signal).catch((error) => {
        controller.abort(error);
        throw error;
      })
    ));
  } finally {
    controller.abort();
  }
}

async function fetchClientHour(
  client: RangeQuerier,
  plan: readonly PlannedQuery[],
  day: string,
  hour: number,
): Promise<(hour: number) => Map<string, HourSeries>> {
  const start = hourStartSeconds(day, hour);
  const byQuery = new Map<string, HourSeries>();
  const tasks = plan.map((p) => async (signal: AbortSignal) => {
    const list: HourSeries = [];
    byQuery.set(p.query.name, list);
    await client.queryRange(
      { query: p.expr, start, end: start + 3599, step: 60 },
      (s) => {
        list.push({
          metric: s.metric,
          reduced: p.query.value ? reduceSamples(s.values, p.query.value.reduction) : null,
        });
      },
      signal,
      () => void (list.length = 0),
    );
  });
  await runAll(tasks);
  return (h) => (h === hour ? byQuery : new Map());
}

/** Canonical identity of a label set, to join the aggregates of one series. */
function labelsKey(metric: Labels): string {
  return JSON.stringify(Object.entries(metric).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Server mode: one query per aggregate for the whole batch; every answer holds
 * one point per series per hour. Points are kept per series (one entry per
 * label set and query, not per hour), and an hour's series are assembled only
 * when that hour is merged.
 */
async function fetchServerBatch(
  client: RangeQuerier,
  plan: readonly PlannedQuery[],
  day: string,
  hours: readonly number[],
): Promise<(hour: number) => Map<string, HourSeries>> {
  const dayStart = hourStartSeconds(day, 0);
  const first = hours[0]!;
  const span = hours.at(-1)! - first + 1;
  /**
   * Per aggregate: the value of each hour of the batch, and a bit mask of the hours that
   * have a point (a batch has at most 24 hours). Plain arrays, not typed arrays: one
   * ArrayBuffer per series and aggregate costs far more memory than the data.
   */
  type Points = { value: number[]; present: number };
  type Entry = { metric: Labels; byAggregate: Partial<Record<ServerAggregate, Points>> };
  const perQuery = new Map<string, Map<string, Entry>>();
  const tasks = plan.flatMap((p) => {
    const series = new Map<string, Entry>();
    perQuery.set(p.query.name, series);
    return p.server.map(({ aggregate, expr }) => async (signal: AbortSignal) => {
      await client.queryRange(
        // Evaluated at the end of each hour; `offset 1s` in `expr` (see serverExpr).
        {
          query: expr,
          start: hourStartSeconds(day, first) + 3600,
          end: hourStartSeconds(day, first + span - 1) + 3600,
          step: 3600,
        },
        (s) => {
          const key = labelsKey(s.metric);
          let entry = series.get(key);
          if (!entry) series.set(key, entry = { metric: s.metric, byAggregate: {} });
          const points = entry.byAggregate[aggregate] ??= {
            value: new Array<number>(span).fill(0),
            present: 0,
          };
          for (const [t, v] of s.values) {
            const hour = (t - 3600 - dayStart) / 3600;
            if (!Number.isInteger(hour) || hour < first || hour >= first + span) {
              throw new RangeError(
                `Unexpected timestamp ${t} in the answer to ${expr.slice(0, 80)}`,
              );
            }
            points.value[hour - first] = parseSampleValue(v);
            points.present |= 1 << (hour - first);
          }
        },
        signal,
        // A failed attempt's points are dropped before the next attempt.
        () => {
          for (const entry of series.values()) {
            const points = entry.byAggregate[aggregate];
            if (points) points.present = 0;
          }
        },
      );
    });
  });
  await runAll(tasks);
  return (hour) => {
    const byQuery = new Map<string, HourSeries>();
    const i = hour - first;
    for (const p of plan) {
      const list: HourSeries = [];
      const primary = p.server[0]!.aggregate;
      for (const { metric, byAggregate } of perQuery.get(p.query.name)?.values() ?? []) {
        const bit = 1 << i;
        if (!((byAggregate[primary]?.present ?? 0) & bit)) continue; // absent in this hour
        const aggs: Partial<Record<ServerAggregate, number>> = {};
        for (const { aggregate } of p.server) {
          const points = byAggregate[aggregate];
          if (points && points.present & bit) aggs[aggregate] = points.value[i]!;
        }
        list.push({
          metric,
          reduced: p.query.value ? combineServerAggregates(p.query.value.reduction, aggs) : null,
        });
      }
      // Answers are sorted by label set; the order is kept for last-writer-wins.
      byQuery.set(p.query.name, list);
    }
    return byQuery;
  };
}

/** Applies an hour's series to the group row maps in catalogue order and builds the reports. */
function mergeHour(
  plan: readonly PlannedQuery[],
  byQuery: Map<string, HourSeries>,
  day: string,
  hour: number,
): HourReports {
  const maps = new Map<QueryGroup, RowMap>();
  for (const p of plan) {
    let rows = maps.get(p.query.group);
    if (!rows) maps.set(p.query.group, rows = new Map());
    for (const s of byQuery.get(p.query.name) ?? []) {
      applySeries(rows, p.query, s.metric, s.reduced);
    }
  }
  return buildHourReports(maps, hourColumns(new Date(hourStartSeconds(day, hour) * 1000)));
}
