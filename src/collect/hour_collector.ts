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

import type { StateStore } from "../package/state_store.ts";
import type { QueryGroup } from "./catalogue_groups.ts";
import { hourColumns } from "./go_time.ts";
import type { PlannedQuery } from "./query_plan.ts";
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
}

/** Result of collecting some hours of one cluster-day. */
export interface CollectDayResult {
  /** Hours committed by this call. */
  readonly collected: number[];
  /** Hours that failed (not committed), with the reason. */
  readonly failed: { hour: number; error: string }[];
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
 *
 * @example
 * ```ts ignore
 * import { collectHours } from "./hour_collector.ts";
 * const result = await collectHours(options, plan, "c1", "2026-11-01", [0, 1, 2]);
 * ```
 */
export async function collectHours(
  options: HourCollectorOptions,
  plan: readonly PlannedQuery[],
  clusterId: string,
  day: string,
  hours: readonly number[],
): Promise<CollectDayResult> {
  const result: CollectDayResult = { collected: [], failed: [] };
  const batches = options.mode === "client"
    ? hours.map((h) => [h])
    : contiguousBatches(hours, options.batchHours);
  const fail = (from: number, error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    // These hours stay uncollected; the next run retries them.
    for (const hour of from < 0 ? [] : hours.filter((h) => h >= from)) {
      result.failed.push({ hour, error: message });
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
      const writer = await options.store.beginHour(clusterId, day, hour);
      try {
        for (const [report, rows] of reports) await writer.writeRows(report, rows);
        await writer.commit({ collectedAt: options.now(), mode: options.mode, noData });
      } catch (error) {
        await writer.abort();
        throw error;
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
