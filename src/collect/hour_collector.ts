/**
 * Collects closed hours of one cluster-day from Thanos into hour fragments:
 * runs the catalogue per hour (client-side reduction, CMMO's reference
 * arithmetic) or per batch of hours (server-side reduction), merges the series
 * into row maps in catalogue order, builds the report rows and commits each
 * hour atomically to the state store. A failed hour is not committed, so the
 * next run retries it.
 *
 * With ROS on, the ROS queries (CMMO's instant queries at H:15, H:30, H:45 and
 * (H+1):00) are evaluated once per batch as `query_range` with a 900 s step,
 * in the same run as the batch's cost queries; each hour's four windows are
 * built from the points at its window ends and the hour's node rows, and the
 * ROS fragments are committed only when at least one window passed the
 * namespace filter (CMMO writes a ROS file only then).
 *
 * @module
 */

import { type ErrorCode, errorInfo, HOUR_MS } from "../model.ts";
import type { CollectionParams, HourWriter, StateStore } from "../package/state_store.ts";
import type { QueryGroup } from "./catalogue_groups.ts";
import { hourColumns } from "./go_time.ts";
import { planFingerprint, type PlannedQuery } from "./query_plan.ts";
import { BridgeError } from "../model.ts";
import {
  type AnswerContext,
  answerError,
  checkSeries,
  formatHours,
  showLabels,
} from "./answer_check.ts";
import {
  combineServerAggregates,
  parseSampleValue,
  type Reduced,
  reduceValues,
  type ServerAggregate,
} from "./reduce.ts";
import { buildHourReports, type HourReports } from "./report_rows.ts";
import { applySeries, type Labels, type RowMap } from "./row_map.ts";
import { type PlannedRosQuery, rosPlanFingerprint } from "./ros_plan.ts";
import { buildRosWindowReports, type RosSample, rosWindowEnds } from "./ros_rows.ts";
import { compareUtf8 } from "./utf8_compare.ts";
import {
  compileLocal,
  type EngineSemantics,
  evaluateRange,
  type LocalQuery,
  type RawSeries,
  type SelectorNeed,
  SlabPool,
} from "./local_eval.ts";
import { fetchRaw, type RawStore, type RemoteReader } from "./raw_fetch.ts";
import { mixPair } from "./label_set.ts";
import { compareHourSeries, counterResetClusters, type SelfCheckPicker } from "./self_check.ts";

/** One `query_range` request. Times are unix seconds. */
export interface RangeRequest {
  readonly query: string;
  readonly start: number;
  readonly end: number;
  readonly step: number;
  /** Stable short id for messages: the catalogue name, plus `/<aggregate>` in server mode. */
  readonly id?: string;
  /** The cluster: named in messages, and the client's fairness key. */
  readonly clusterId?: string;
  /** The hours the answer covers, for messages (`formatHours`). */
  readonly hours?: string;
}

/**
 * One series of a matrix answer, as streamed: not trusted yet (every series
 * goes through `checkSeries` before it is used).
 */
export interface MatrixSeries {
  readonly metric: Record<string, string>;
  readonly values: ReadonlyArray<readonly [number, string]>;
}

/** Counters of the traffic of one run (queries started, HTTP attempts, body bytes). */
export interface QueryCounter {
  queries: number;
  attempts: number;
  bytes: number;
}

/** What the collector needs from the Thanos client. */
export interface RangeQuerier {
  /**
   * Streams the series of one answer to `onSeries`. `onRetry` is called before
   * a new attempt, so the caller can drop the series of a failed attempt.
   * `counter`, when given, is increased by the call's traffic.
   */
  queryRange(
    request: RangeRequest,
    onSeries: (series: MatrixSeries) => void,
    signal?: AbortSignal,
    onRetry?: () => void,
    counter?: QueryCounter,
  ): Promise<unknown>;
  /**
   * Local mode only: one instant query (`/api/v1/query`), whose answer (a
   * range selector's raw samples) is streamed like a range answer.
   */
  queryInstant?(
    request: {
      readonly query: string;
      readonly time: number;
      readonly id?: string;
      readonly clusterId?: string;
      readonly hours?: string;
    },
    onSeries: (series: MatrixSeries) => void,
    signal?: AbortSignal,
    onRetry?: () => void,
    counter?: QueryCounter,
  ): Promise<unknown>;
  /** Local mode with remote reads only (`LocalModeOptions.remoteRead`): `ThanosClient.readRaw`. */
  readRaw?: RemoteReader["readRaw"];
}

/**
 * How values are reduced: on the server (`*_over_time`), here from the 60
 * points Thanos evaluated (`client`), or here from raw samples evaluated here
 * (`local`).
 */
export type ReduceMode = "server" | "client" | "local";

/** What local mode needs besides the client. */
export interface LocalModeOptions {
  /** Window edges of the reference engine: closed (`prometheus2`) or open (`prometheus3`) on the left. */
  readonly semantics: EngineSemantics;
  /** The engine's lookback delta for instant selectors, ms (Prometheus: 5 min). */
  readonly lookbackMs: number;
  /**
   * True unless the server is known to be Prometheus: Thanos makes counters
   * monotonic inside `rate`/`increase`/`irate`, so its own answer is not the
   * reference for those queries of a cluster whose counters reset; the
   * self-check does not compare them.
   */
  readonly counterAdjusting: boolean;
  /**
   * Picks each hour range's self-check (query, hour): `SelfCheckRotation`, so
   * checks rotate through the catalogue and the hours.
   */
  readonly rotation: SelfCheckPicker;
  /**
   * Fetch raw samples over the server's remote read API (Prometheus), with
   * its external labels to remove; absent or null: instant queries.
   */
  readonly remoteRead?: { readonly externalLabels: Readonly<Record<string, string>> } | null;
}

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
  /** Cancels the collection: every query in flight stops at once (error code `cancelled`). */
  readonly signal?: AbortSignal;
  /** Counters increased by every query of this collection (per-run figures). */
  readonly counter?: QueryCounter;
  /**
   * The ROS queries bound to the cluster (`planRosQueries`); omitted, null or
   * empty: ROS off (no ROS query, no ROS fragment, no `ros` in `hour.json`).
   */
  readonly ros?: readonly PlannedRosQuery[] | null;
  /**
   * Collection parameters recorded in each committed hour's `hour.json`
   * (`collectionParams(plan, …)` of query_plan.ts); `queryHash` must be the
   * plan's fingerprint and `reduce` equal `mode`, and `rosHash` must be
   * `rosPlanFingerprint(ros)` with ROS and absent without. Without them hours
   * are committed without parameters and count as collected with other ones.
   */
  readonly params?: CollectionParams;
  /**
   * An hour without any data is not committed while `now < hour end + this`
   * (ms); it is reported in `pending` instead, because the cluster's
   * remote-write may still deliver it. Default {@linkcode DEFAULT_EMPTY_HOUR_GRACE_MS}.
   */
  readonly emptyHourGrace?: number;
  /**
   * Names the queries whose answers must be empty, once per batch and hour
   * range (`skipProbe` of skip_probe.ts); they are not sent. Absent: every
   * query is sent.
   */
  readonly skipProbe?: SkipProbe;
  /** Required with `mode: "local"`. */
  readonly local?: LocalModeOptions;
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
export type HourSeries = { metric: Labels; reduced: Reduced | null }[];

/** Start of hour `hour` of `day` (YYYY-MM-DD) in unix seconds. */
export function hourStartSeconds(day: string, hour: number): number {
  const ms = Date.parse(`${day}T00:00:00Z`);
  if (Number.isNaN(ms)) throw new RangeError(`Invalid day "${day}"`);
  return ms / 1000 + hour * 3600;
}

/** A cluster of a {@linkcode ClusterBatch}: its own plan, ROS plan and parameters. */
export interface BatchMember {
  readonly clusterId: string;
  /** The cluster's own plan (`planQueries`): its fingerprint is recorded, and the fallback sends it. */
  readonly plan: readonly PlannedQuery[];
  /** The cluster's own ROS plan (`planRosQueries`), or null/absent: ROS off. */
  readonly ros?: readonly PlannedRosQuery[] | null;
  /** Recorded in each committed hour (see {@linkcode HourCollectorOptions.params}). */
  readonly params?: CollectionParams;
}

/** A query as sent for a batch: with more than one cluster, its answer carries the cluster label. */
export type SentQuery = PlannedQuery & {
  /** Drop the cluster label from each series (the per-cluster answer would not have it). */
  readonly stripClusterLabel?: boolean;
};

/** A ROS query as sent for a batch; see {@linkcode SentQuery}. */
export type SentRosQuery = PlannedRosQuery & { readonly stripClusterLabel?: boolean };

/**
 * Clusters collected together: one query per catalogue entry covers all
 * members, and every answer is split by the cluster label while it streams.
 */
export interface ClusterBatch {
  /** Label carrying the cluster id (routes the series of a batched answer). */
  readonly clusterLabel: string;
  /** The clusters, each with its own plan; all with ROS or all without. */
  readonly members: readonly BatchMember[];
  /**
   * With more than one member: the batched cost queries (`planBatchQueries`),
   * one per entry of every member's plan, same names and order.
   */
  readonly cost?: readonly SentQuery[];
  /** With more than one member and ROS on: the batched ROS queries (`planBatchRosQueries`). */
  readonly ros?: readonly SentRosQuery[] | null;
}

/**
 * Asks, once per batch and hour range, which queries must have an empty
 * answer; resolves to their names. A rejection only means nothing is skipped.
 */
export type SkipProbe = (request: SkipProbeRequest) => Promise<ReadonlySet<string>>;

/** What a {@linkcode SkipProbe} is asked. */
export interface SkipProbeRequest {
  /** Candidate queries: name and the expression sent (without the server-mode wrapper). */
  readonly queries: readonly { readonly name: string; readonly expr: string }[];
  readonly clusterIds: readonly string[];
  readonly day: string;
  readonly first: number;
  readonly last: number;
  readonly signal: AbortSignal;
}

/** Result of {@linkcode collectHoursBatch}. */
export interface BatchCollectResult {
  /** Each member's result. */
  readonly byCluster: Map<string, CollectDayResult>;
  /**
   * Set when a batched query failed: the members were then collected one by
   * one with their own queries (their hours failed or succeeded each on its own).
   */
  readonly fallback: { readonly code: ErrorCode; readonly message: string } | null;
  /**
   * Requests not sent because their answers had to be empty (in server mode a
   * query sends one request per aggregate; ROS queries count only where the
   * namespace filter would have let them be sent).
   */
  readonly skipped: number;
  /** Local mode: what the self-checks found, and which queries ran on the server instead. */
  readonly local: LocalReport | null;
}

/** Local mode's account of one batch. */
export interface LocalReport {
  /** Self-checks made (one per hour range). */
  checks: number;
  /** Checks whose server answer disagreed: those clusters' hours were collected in server mode. */
  readonly mismatches: SelfCheckMismatch[];
  /** Queries evaluated on the server instead (outside the evaluator's subset, or its error). */
  readonly serverQueries: { readonly query: string; readonly reason: string }[];
}

/** One failed self-check. */
export interface SelfCheckMismatch {
  readonly day: string;
  /** The hour range collected in server mode instead, e.g. `2026-11-01 00:00-05:59 UTC`. */
  readonly hours: string;
  /** The checked query and hour. */
  readonly query: string;
  readonly hour: number;
  /** The clusters whose local answer differed. */
  readonly clusters: readonly string[];
  /** The first difference, in words. */
  readonly detail: string;
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
  const member: BatchMember = {
    clusterId,
    plan,
    ros: options.ros ?? null,
    ...(options.params ? { params: options.params } : {}),
  };
  const { byCluster } = await collectHoursBatch(
    options,
    { clusterLabel: "", members: [member] },
    day,
    hours,
  );
  return byCluster.get(clusterId)!;
}

/**
 * Collects `hours` (sorted, 0–23) of `day` for a batch of clusters that all
 * need these hours: each query is sent once for the batch (with one member,
 * exactly the member's own plan), its answer split by the cluster label into
 * per-cluster hour fragments, and each member's hours are committed as
 * {@linkcode collectHours} would. Members stop on their own at a failed commit.
 *
 * With `options.skipProbe`, one probe per hour range names the queries whose
 * answers must be empty for every member; they are not sent, and their empty
 * answers are used. A failed probe skips nothing.
 *
 * When a batched query fails (after the client's retries), the members are
 * collected one by one with their own plans, so one cluster's bad data cannot
 * block the others; `fallback` says why.
 *
 * @example
 * ```ts ignore
 * import { collectHoursBatch } from "./hour_collector.ts";
 * import { planBatchQueries } from "./query_plan.ts";
 * const batch = { clusterLabel: "clusterID", members, cost: planBatchQueries(COST_QUERIES, opts) };
 * const { byCluster, fallback } = await collectHoursBatch(options, batch, "2026-11-01", [0, 1]);
 * ```
 */
export async function collectHoursBatch(
  options: HourCollectorOptions,
  batch: ClusterBatch,
  day: string,
  hours: readonly number[],
): Promise<BatchCollectResult> {
  const grace = options.emptyHourGrace ?? DEFAULT_EMPTY_HOUR_GRACE_MS;
  if (typeof grace !== "number" || !Number.isFinite(grace) || grace < 0) {
    throw new RangeError(`Invalid emptyHourGrace ${grace}: expected a non-negative number of ms`);
  }
  const members = batch.members;
  if (members.length === 0) throw new RangeError("collectHoursBatch: a batch needs a cluster");
  const single = members.length === 1;
  const withRos = (m: BatchMember) => (m.ros && m.ros.length > 0 ? m.ros : null);
  for (const m of members) checkParams(options, m.plan, withRos(m), m.params ?? null);
  const rosOn = withRos(members[0]!) !== null;
  if (members.some((m) => (withRos(m) !== null) !== rosOn)) {
    throw new RangeError("collectHoursBatch: members must all have ROS on, or all off");
  }
  const cost: readonly SentQuery[] = single ? members[0]!.plan : batch.cost ?? [];
  const rosSent: readonly SentRosQuery[] | null = !rosOn
    ? null
    : single
    ? withRos(members[0]!)
    : batch.ros ?? null;
  if (!single) checkBatchPlan(batch, cost, rosSent);
  const ids = members.map((m) => m.clusterId);
  if (new Set(ids).size !== ids.length) {
    throw new RangeError(`collectHoursBatch: a cluster appears twice in the batch`);
  }
  const routeOf = () => (single ? singleRoute(ids[0]!) : labelRoute(batch.clusterLabel, ids));

  const byCluster = new Map<string, CollectDayResult>(
    ids.map((id) => [id, { collected: [], failed: [], pending: [] }]),
  );
  if (options.mode === "local" && !options.local) {
    throw new RangeError("collectHoursBatch: local mode needs options.local");
  }
  const out = {
    byCluster,
    fallback: null as BatchCollectResult["fallback"],
    skipped: 0,
    local: options.mode === "local"
      ? { checks: 0, mismatches: [], serverQueries: [] } as LocalReport
      : null,
  };
  const stopped = new Set<string>();
  const fail = (clusterId: string, from: number, error: unknown) => {
    const { code, message } = errorInfo(error);
    stopped.add(clusterId);
    // These hours stay uncollected; the next run retries them.
    for (const hour of hours.filter((h) => h >= from)) {
      byCluster.get(clusterId)!.failed.push({ hour, error: message, code });
      options.onEvent?.({ type: "hour-failed", clusterId, day, hour, error: message });
    }
  };
  const batches = options.mode === "client"
    ? hours.map((h) => [h])
    : contiguousBatches(hours, options.batchHours);
  for (const span of batches) {
    const first = span[0]!;
    const last = span.at(-1)!;
    /** Stops the batch at hour `from` after a failure that is not one member's own. */
    const failFrom = async (from: number, error: unknown): Promise<BatchCollectResult> => {
      const cancelled = options.signal?.aborted ||
        (error instanceof BridgeError && error.code === "cancelled");
      if (single || cancelled) {
        for (const id of ids) if (!stopped.has(id)) fail(id, from, error);
        return out;
      }
      // One cluster's bad data must not block the others: each member on its own queries.
      out.fallback = errorInfo(error);
      const rest = hours.filter((h) => h >= from);
      for (const m of members) {
        if (stopped.has(m.clusterId)) continue;
        const own = await collectHoursBatch(
          options,
          { clusterLabel: batch.clusterLabel, members: [m] },
          day,
          rest,
        );
        const mine = byCluster.get(m.clusterId)!;
        const r = own.byCluster.get(m.clusterId)!;
        mine.collected.push(...r.collected);
        mine.pending.push(...r.pending);
        mine.failed.push(...r.failed);
        out.skipped += own.skipped;
        if (out.local && own.local) {
          out.local.checks += own.local.checks;
          out.local.mismatches.push(...own.local.mismatches);
          addServerQueries(out.local, own.local.serverQueries);
        }
      }
      return out;
    };
    let fetched: SpanFetched;
    try {
      const skip = await probeSkips(options, cost, rosSent, ids, day, first, last);
      fetched = options.mode === "local"
        ? await fetchLocalSpan(
          options,
          cost,
          rosSent,
          skip,
          routeOf,
          ids,
          day,
          span,
          out.local!,
          batch.clusterLabel,
        )
        : await fetchSpan(options, cost, rosSent, skip, routeOf(), ids, day, span);
      out.skipped += fetched.skipped;
    } catch (error) {
      return await failFrom(first, error);
    }
    const views = members.map((m) => ({
      m,
      seriesOf: fetched.seriesOf(m.clusterId),
      rosOf: fetched.rosOf?.(m.clusterId) ?? null,
      rosPlan: withRos(m),
      result: byCluster.get(m.clusterId)!,
    }));
    // Hour by hour, every member: local mode evaluates one run of hours at a time.
    try {
      for (const hour of span) {
        if (stopped.size === members.length) break;
        try {
          await fetched.prepare?.(hour);
        } catch (error) {
          return await failFrom(hour, error);
        }
        for (const { m, seriesOf, rosOf, rosPlan, result } of views) {
          if (stopped.has(m.clusterId)) continue;
          const outcome = await commitHour(options, m, seriesOf, rosPlan, rosOf, day, hour, grace);
          if (outcome === "pending") {
            result.pending.push(hour);
          } else if (outcome === "committed") {
            result.collected.push(hour);
          } else {
            fail(m.clusterId, hour, outcome.error);
          }
        }
      }
    } finally {
      // The batch's raw samples go now, before the next batch is fetched.
      fetched.release?.();
    }
    if (stopped.size === members.length) return out;
  }
  return out;
}

/** The params check of {@linkcode collectHours}, per member. */
function checkParams(
  options: HourCollectorOptions,
  plan: readonly PlannedQuery[],
  rosPlan: readonly PlannedRosQuery[] | null,
  params: CollectionParams | null,
): void {
  if (params && (params.queryHash !== planFingerprint(plan) || params.reduce !== options.mode)) {
    throw new RangeError(
      `collectHours: params (reduce ${params.reduce}, plan ${params.queryHash.slice(0, 12)}) ` +
        `do not describe this collection (reduce ${options.mode}, plan ${
          planFingerprint(plan).slice(0, 12)
        })`,
    );
  }
  const rosHash = rosPlan ? rosPlanFingerprint(rosPlan) : undefined;
  if (params && params.rosHash !== rosHash) {
    throw new RangeError(
      `collectHours: params (ROS plan ${params.rosHash?.slice(0, 12) ?? "none"}) ` +
        `do not describe this collection (ROS plan ${rosHash?.slice(0, 12) ?? "none"})`,
    );
  }
}

/** A batch's queries must be the members' catalogue entries, one for one. */
function checkBatchPlan(
  batch: ClusterBatch,
  cost: readonly SentQuery[],
  ros: readonly SentRosQuery[] | null,
): void {
  const names = (list: readonly { query: { name: string } }[]) =>
    list.map((p) => p.query.name).join("\n");
  const m = batch.members[0]!;
  if (names(cost) !== names(m.plan)) {
    throw new RangeError(
      "collectHoursBatch: the batch's cost queries differ from the members' plan",
    );
  }
  if (ros && m.ros && names(ros) !== names(m.ros)) {
    throw new RangeError(
      "collectHoursBatch: the batch's ROS queries differ from the members' plan",
    );
  }
  if (!batch.clusterLabel) {
    throw new RangeError("collectHoursBatch: a batch needs the cluster label");
  }
}

/**
 * Builds, checks and commits one hour of one member: its reports and, with
 * ROS, its ROS windows. "pending": an hour without data inside the grace.
 */
async function commitHour(
  options: HourCollectorOptions,
  member: BatchMember,
  seriesOf: HourSeriesOf,
  rosPlan: readonly PlannedRosQuery[] | null,
  rosOf: RosSamplesOf | null,
  day: string,
  hour: number,
  grace: number,
): Promise<"committed" | "pending" | { error: unknown }> {
  const { clusterId } = member;
  let reports: HourReports;
  let nodes: RowMap;
  try {
    ({ reports, nodes } = mergeHour(member.plan, seriesOf(hour), day, hour));
  } catch (error) {
    return { error };
  }
  const noData = [...reports.values()].every((rows) => rows.length === 0);
  const collectedAt = options.now();
  if (noData && collectedAt.getTime() < hourStartSeconds(day, hour) * 1000 + HOUR_MS + grace) {
    // The cluster's remote-write may still deliver this hour: do not make "no data" final.
    return "pending";
  }
  let writer: HourWriter | null = null;
  try {
    writer = await options.store.beginHour(clusterId, day, hour);
    for (const [report, rows] of reports) await writer.writeRows(report, rows);
    // ROS rows are made and written one window at a time: an hour's ROS records are
    // thousands of rows of ~40 fields, and none of them needs another window.
    let ros: { windows: number } | null = null;
    if (rosPlan && rosOf) {
      ros = { windows: 0 };
      for (const window of rosWindows(rosPlan, rosOf, nodes, day, hour)) {
        ros.windows++;
        await writer.writeRows("ros-container", window.container);
        await writer.writeRows("ros-namespace", window.namespace);
      }
    }
    await writer.commit({
      collectedAt,
      mode: options.mode,
      noData,
      params: member.params ?? null,
      ...(ros ? { ros: { windows: ros.windows } } : {}),
    });
  } catch (error) {
    await writer?.abort().catch(() => {});
    return { error };
  }
  options.onEvent?.({ type: "hour-done", clusterId, day, hour, noData });
  return "committed";
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

/** Asks the probe which queries of an hour range must be empty; a failed probe skips none. */
async function probeSkips(
  options: HourCollectorOptions,
  cost: readonly SentQuery[],
  ros: readonly SentRosQuery[] | null,
  clusterIds: readonly string[],
  day: string,
  first: number,
  last: number,
): Promise<ReadonlySet<string>> {
  const probe = options.skipProbe;
  if (!probe) return new Set();
  const signal = options.signal ?? new AbortController().signal;
  signal.throwIfAborted();
  const queries = [
    ...cost.map((p) => ({ name: p.query.name, expr: p.expr })),
    // The namespace filter gates the ROS windows: it is always sent.
    ...(ros ?? []).filter((p) => p.query.group !== "ros-filter").map((p) => ({
      name: p.query.name,
      expr: p.expr,
    })),
  ];
  try {
    return await probe({ queries, clusterIds, day, first, last, signal });
  } catch (error) {
    if (signal.aborted) throw cancelledError(signal, error);
    return new Set(); // the probe only saves work: without it every query is sent
  }
}

/** Each cluster's series of a fetched hour range. */
type ClusterSeriesOf = (clusterId: string) => HourSeriesOf;
/** Each cluster's ROS samples of a fetched hour range. */
type ClusterRosOf = (clusterId: string) => RosSamplesOf;

/** An hour range's answers for the batch's clusters. */
interface SpanFetched {
  readonly seriesOf: ClusterSeriesOf;
  readonly rosOf: ClusterRosOf | null;
  /** Queries not sent because they had to be empty. */
  readonly skipped: number;
  /**
   * Local mode: makes the hour's series ready (evaluates the run of hours it is
   * in, dropping the previous run's); call before reading an hour.
   */
  readonly prepare?: (hour: number) => Promise<void>;
  /** Local mode: frees the raw samples at once; call when no hour is read any more. */
  readonly release?: () => void;
}

/** Fetches the cost and ROS answers of one hour range for the batch. */
async function fetchSpan(
  options: HourCollectorOptions,
  cost: readonly SentQuery[],
  rosSent: readonly SentRosQuery[] | null,
  skip: ReadonlySet<string>,
  route: Route,
  ids: readonly string[],
  day: string,
  span: readonly number[],
): Promise<SpanFetched> {
  const who = ids.length === 1 ? ids[0]! : `${ids[0]} and ${ids.length - 1} more`;
  const first = span[0]!;
  const sent = cost.filter((p) => !skip.has(p.query.name));
  const skipped = cost
    .filter((p) => skip.has(p.query.name))
    .reduce((n, p) => n + (options.mode === "client" ? 1 : p.server.length), 0);
  const fetch = options.mode === "client"
    ? clientHourTasks(options, sent, route, who, day, first)
    : serverBatchTasks(options, sent, route, who, day, span);
  const ros = rosSpan(options, rosSent, skip, route, ids, who, day, span);
  // One run: same client, counter, signal and fairness; the first failure stops all.
  await runAll([...fetch.tasks, ...ros.tasks], options.signal);
  const seriesOf = (clusterId: string) => fetch.result(clusterId, cost);
  const { rosOf, skipped: rosSkipped } = await ros.finish();
  return { seriesOf, rosOf, skipped: skipped + rosSkipped };
}

/**
 * The ROS queries of an hour range: `tasks` (the namespace filter) go into the
 * range's first run; `finish` then sends the other ROS queries only when a
 * window of the range passed the filter, and gives each cluster's samples.
 */
function rosSpan(
  options: HourCollectorOptions,
  rosSent: readonly SentRosQuery[] | null,
  skip: ReadonlySet<string>,
  route: Route,
  ids: readonly string[],
  who: string,
  day: string,
  span: readonly number[],
): {
  tasks: ((signal: AbortSignal) => Promise<unknown>)[];
  finish: () => Promise<{ rosOf: ClusterRosOf | null; skipped: number }>;
} {
  const first = span[0]!;
  const last = span.at(-1)!;
  // The namespace filter gates every ROS window (CMMO runs only the filter for a window
  // without opted-in namespaces): the other 55 ROS queries are sent only when a window of
  // the batch passed, so clusters that opt nothing in cost one ROS query per batch.
  const filter = rosSent?.filter((p) => p.query.group === "ros-filter") ?? [];
  const gate = rosSent ? rosBatchTasks(options, filter, route, who, day, first, last) : null;
  const finish = async () => {
    if (!rosSent || !gate) return { rosOf: null, skipped: 0 };
    let skipped = 0;
    let rosOf: ClusterRosOf = (clusterId) => (h, w) => gate.result(clusterId, filter)(h, w);
    if (anyWindowPassed(gate.result, filter, span, ids)) {
      const rest = rosSent.filter((p) => p.query.group !== "ros-filter");
      skipped += rest.filter((p) => skip.has(p.query.name)).length;
      const more = rosBatchTasks(
        options,
        rest.filter((p) => !skip.has(p.query.name)),
        route,
        who,
        day,
        first,
        last,
      );
      await runAll(more.tasks, options.signal);
      rosOf = (clusterId) => {
        const a = gate.result(clusterId, filter);
        const b = more.result(clusterId, rest);
        return (h, w) => new Map([...a(h, w), ...b(h, w)]);
      };
    }
    return { rosOf, skipped };
  };
  return { tasks: gate?.tasks ?? [], finish };
}

/** Adds server-evaluated queries to a local report, once per name. */
function addServerQueries(
  report: LocalReport,
  more: readonly { readonly query: string; readonly reason: string }[],
): void {
  for (const q of more) {
    if (!report.serverQueries.some((x) => x.query === q.query)) report.serverQueries.push(q);
  }
}

/** Step of local mode's evaluation grid: CMMO's 60 points per hour. */
const LOCAL_STEP_MS = 60_000;
/** Points per hour on that grid. */
const STEPS_PER_HOUR = HOUR_MS / LOCAL_STEP_MS;
/**
 * Most hours local mode evaluates at once: the evaluator's intermediate arrays
 * are this many hours long (9 bytes per series and step).
 */
const LOCAL_EVAL_HOURS = 6;
/**
 * Most hours of ROS local mode evaluates at once: 4 points an hour, so its
 * arrays stay small, and most of its work is per series (joins, label sets),
 * which a longer run shares (a 12-hour batch in 6-hour runs: +3.5 s of wall).
 */
const ROS_EVAL_HOURS = 12;
/**
 * Bytes of a slab of the evaluation pool that a range's cost and ROS queries
 * share (a series takes 2,880 bytes at 360 points, 432 at 48): slabs are
 * recycled from query to query and run to run, and freed with the range, so
 * the arrays of one query kind do not come on top of the other's.
 */
const EVAL_SLAB_BYTES = 1 << 20;

/**
 * Local mode, one hour range of a batch: the raw samples of every selector the
 * batch's cost queries read (`fetchRaw`: remote read or one instant query
 * each), the queries evaluated here at CMMO's 60 points per hour
 * (`evaluateRange`), each series reduced per hour exactly as in client mode.
 * The evaluation is lazy: `prepare(hour)` evaluates the run of up to
 * {@linkcode LOCAL_EVAL_HOURS} hours the hour is in and drops the previous
 * run's series, so only one run's results are held at a time. Queries outside
 * the evaluator's subset are sent in server mode for the range; one it refuses
 * at run time, from the first hour of that run on. ROS is evaluated here too
 * when every ROS query is inside the subset ({@linkcode localRos}).
 *
 * The self-check comes first: one (query, hour) per range, rotating through
 * the catalogue, is asked of the server (its server-side reduction, sent
 * with the raw reads), evaluated here for that hour alone, and compared after
 * `%.6f`, series by series. Clusters that differ get the whole range collected
 * again in server mode before any hour is committed, and the report names
 * them. Where the server is not the reference (counter adjustment on Thanos
 * for a cluster whose counters reset in the window), that cluster is not
 * compared.
 */
async function fetchLocalSpan(
  options: HourCollectorOptions,
  cost: readonly SentQuery[],
  rosSent: readonly SentRosQuery[] | null,
  skip: ReadonlySet<string>,
  routeOf: () => Route,
  ids: readonly string[],
  day: string,
  span: readonly number[],
  report: LocalReport,
  clusterLabel: string,
): Promise<SpanFetched> {
  const local = options.local!;
  const who = ids.length === 1 ? ids[0]! : `${ids[0]} and ${ids.length - 1} more`;
  const first = span[0]!;
  const last = span.at(-1)!;
  const hours = formatHours(day, first, last);
  const route = routeOf();
  const sent = cost.filter((p) => !skip.has(p.query.name));
  // A skipped query is one query not sent: what one local query would have cost.
  let skipped = cost.length - sent.length;
  const compiled: CompiledCost[] = [];
  const onServer: SentQuery[] = [];
  const refuse = (p: SentQuery, reason: string) => {
    onServer.push(p);
    addServerQueries(report, [{ query: p.query.name, reason }]);
  };
  for (const p of sent) {
    const c = compileLocal(p.expr, { lookbackMs: local.lookbackMs });
    if (c.ok) compiled.push({ p, q: c.query });
    else refuse(p, c.reason);
  }
  // Selectors as the queries read them; the raw fetch merges equal keys and variants.
  const needs: SelectorNeed[] = compiled.flatMap(({ q }) => q.selectors);
  // The ROS selectors other than the filter's are fetched only once a window passed; those
  // that fit into a query of the first fetch (another selector of the same metric) come
  // with it at no extra query.
  const hints: SelectorNeed[] = [];
  const startMs = hourStartSeconds(day, first) * 1000;
  // The last evaluation point: last:59 for cost, (last+1):00 once ROS is evaluated here too.
  let lastMs = hourStartSeconds(day, last) * 1000 + HOUR_MS - LOCAL_STEP_MS;
  const fetched: { raw: RawStore | null } = { raw: null };
  const rawTask = async (signal: AbortSignal) => {
    fetched.raw = await fetchNeeds(
      options,
      needs,
      startMs,
      lastMs,
      "raw",
      who,
      hours,
      signal,
      hints,
    );
  };
  if (!options.client.queryInstant) {
    throw new RangeError("collectHoursBatch: local mode needs a client with queryInstant");
  }
  const serverFirst = onServer.length > 0
    ? serverBatchTasks(options, onServer, route, who, day, span)
    : null;
  // ROS: evaluated here too when every ROS query is inside the subset; the namespace
  // filter's selectors come with the cost selectors, the others only if a window passed.
  const rosLocal = rosSent ? compileRos(rosSent, skip, local) : null;
  const ros = rosSent && !rosLocal
    ? rosSpan(options, rosSent, skip, route, ids, who, day, span)
    : null;
  if (rosLocal) {
    for (const { q } of rosLocal.filter) needs.push(...q.selectors);
    for (const { q } of rosLocal.rest) hints.push(...q.selectors);
    // ROS windows end at (last+1):00, after the cost grid's last point (last:59).
    lastMs = hourStartSeconds(day, last) * 1000 + HOUR_MS;
  }
  // The self-check's (query, hour) is known before anything is read: the server's own
  // reduction of it comes with the raw reads.
  /** Queries the evaluator refused at run time, by name: the first hour the server answers. */
  const refusedFrom = new Map<string, number>();
  const isLocal = (name: string, hour: number) => (refusedFrom.get(name) ?? Infinity) > hour;
  /** Server answers of queries outside the evaluator (all hours) or refused from an hour on. */
  const fromServer: ServerPart[] = [];
  if (serverFirst) fromServer.push(serverPart(serverFirst, onServer, first));
  const checkOf = (pick: { query: string; hour: number }) => {
    const c = compiled.find((c) => c.p.query.name === pick.query)!;
    return { pick, c, fetch: serverBatchTasks(options, [c.p], routeOf(), who, day, [pick.hour]) };
  };
  let check = compiled.length > 0
    ? checkOf(
      local.rotation.next(compiled.map((c) => c.p.query.name), span, { clusters: ids, day }),
    )
    : null;
  await runAll(
    [
      ...(needs.length > 0 ? [rawTask] : []),
      ...(serverFirst?.tasks ?? []),
      ...(ros?.tasks ?? []),
      ...(check?.fetch.tasks ?? []),
    ],
    options.signal,
  );
  const store = fetched.raw;
  /** What this range holds until it is released: its raw stores and evaluation pool. */
  const owned: { release(): void }[] = store ? [store] : [];
  // Each query's result arrays are read (reduced, or copied) before the next query reuses them.
  const pool = new SlabPool(EVAL_SLAB_BYTES);
  owned.push(pool);
  const rawOf = (key: string) => store?.series(key) ?? [];
  const evaluateRun = (list: readonly CompiledCost[], run: readonly number[]) =>
    evaluateCostRun(options, list, rawOf, route, who, day, run, pool);
  /** Sends refused queries to the server from the first hour of `run` to the range's end. */
  const refuseFrom = async (refused: readonly Refused[], run: readonly number[]) => {
    for (const r of refused) {
      refusedFrom.set(r.p.query.name, run[0]!);
      // Prometheus would most likely refuse it too; the server's answer decides.
      addServerQueries(report, [{ query: r.p.query.name, reason: r.reason }]);
    }
    const list = refused.map((r) => r.p);
    const rest = span.filter((h) => h >= run[0]!);
    const later = serverBatchTasks(options, list, route, who, day, rest);
    await runAll(later.tasks, options.signal);
    fromServer.push(serverPart(later, list, run[0]!));
  };

  // The self-check: the picked query evaluated here for its hour alone (each point is
  // evaluated on its own, so it equals that hour of the run's evaluation) and compared.
  let redo: ReadonlySet<string> = new Set();
  let again: Fetch<HourSeriesOf> | null = null;
  while (check) {
    const { pick, c } = check;
    const p = c.p;
    const mine = evaluateRun([c], [pick.hour]);
    if (mine.refused.length > 0) {
      await refuseFrom(mine.refused, span);
      const rest = compiled.filter((c) => isLocal(c.p.query.name, first));
      check = rest.length > 0
        ? checkOf(
          local.rotation.next(rest.map((c) => c.p.query.name), span, { clusters: ids, day }),
        )
        : null;
      if (check) await runAll(check.fetch.tasks, options.signal);
      continue;
    }
    report.checks++;
    const hourMs = hourStartSeconds(day, pick.hour) * 1000;
    const excluded = local.counterAdjusting && COUNTER_FUNCTION.test(p.expr)
      ? counterResetClusters(
        c.q.selectors.map((n) => ({
          series: rawOf(n.key),
          fromMs: hourMs - n.marginMs - local.lookbackMs,
          toMs: hourMs + HOUR_MS,
        })),
        ids.length === 1 ? () => ids[0]! : (metric) => metric[clusterLabel] ?? "",
      )
      : new Set<string>();
    const bad: string[] = [];
    let detail = "";
    const lists = mine.byHour.get(pick.hour)!;
    for (const id of ids) {
      if (excluded.has(id)) continue;
      const ours = inAnswerOrder(lists(id, p.query.name).series(), p.stripClusterLabel ?? false);
      const theirs = check.fetch.result(id, [p])(pick.hour).get(p.query.name) ?? [];
      const diff = compareHourSeries(ours, theirs, p.query.value?.reduction ?? null);
      if (diff !== null) {
        bad.push(id);
        if (!detail) detail = `${id}: ${diff}`;
      }
    }
    if (bad.length > 0) {
      report.mismatches.push({
        day,
        hours,
        query: p.query.name,
        hour: pick.hour,
        clusters: bad,
        detail,
      });
      // Nothing unchecked-wrong is shipped: these clusters' range comes from the server.
      again = serverBatchTasks(options, sent, routeOf(), who, day, span);
      await runAll(again.tasks, options.signal);
      redo = new Set(bad);
    }
    check = null;
  }

  // Evaluation, one run of up to LOCAL_EVAL_HOURS hours at a time, when its first hour is
  // committed: only one run's series are held (the evaluator's per-series work, label sets,
  // joins and routing, is done once per run instead of once per hour).
  const runs = contiguousBatches(span, LOCAL_EVAL_HOURS);
  let current: { run: readonly number[]; byHour: RunSeries } | null = null;
  const prepareCost = async (hour: number) => {
    if (current?.run.includes(hour) || ids.every((id) => redo.has(id))) return;
    const run = runs.find((r) => r.includes(hour))!;
    current = null; // the previous run's series go before the next run is evaluated
    const list = compiled.filter((c) => isLocal(c.p.query.name, run[0]!));
    const { byHour, refused } = evaluateRun(list, run);
    if (refused.length > 0) await refuseFrom(refused, run);
    current = { run, byHour };
  };
  const localNames = new Set(compiled.map((c) => c.p.query.name));
  const localSeriesOf = (clusterId: string): HourSeriesOf => (hour) => {
    const lists = current?.run.includes(hour) ? current.byHour.get(hour) : undefined;
    const byQuery = new Map<string, HourSeries>();
    for (const p of cost) {
      const name = p.query.name;
      if (localNames.has(name) && isLocal(name, hour)) {
        if (!lists) throw new RangeError(`fetchLocalSpan: hour ${hour} was not evaluated`);
        byQuery.set(
          name,
          inAnswerOrder(lists(clusterId, name).series(), p.stripClusterLabel ?? false),
        );
      } else {
        let list: HourSeries | undefined;
        for (const f of fromServer) list ??= f.get(clusterId, name, hour);
        byQuery.set(name, list ?? []); // not sent: its answer had to be empty
      }
    }
    return byQuery;
  };
  const seriesOf: ClusterSeriesOf = (clusterId) =>
    again && redo.has(clusterId) ? again.result(clusterId, cost) : localSeriesOf(clusterId);
  let rosOf: ClusterRosOf | null = null;
  let prepareRos: ((hour: number) => Promise<void>) | null = null;
  if (ros) {
    const done = await ros.finish();
    rosOf = done.rosOf;
    skipped += done.skipped;
  } else if (rosLocal && rosSent) {
    const done = await localRos(options, {
      rosSent,
      compiled: rosLocal,
      skip,
      routeOf,
      route,
      ids,
      who,
      day,
      span,
      report,
      clusterLabel,
      fetched: { store, rawOf, startMs, lastMs },
      owned,
      pool,
    });
    rosOf = done.rosOf;
    prepareRos = done.prepare;
    skipped += done.skipped;
  }
  // ROS first: its raw samples are released once its last run is evaluated, before the cost
  // run's evaluation adds its own series (the two stores' peaks do not stack).
  const lastRun = runs.at(-1)!;
  const prepare = async (hour: number) => {
    await prepareRos?.(hour);
    await prepareCost(hour);
    // After the last cost run (and so after every ROS run: those are longer and start on the
    // same hours, and each hour's ROS is prepared first) nothing reads the raw samples or the
    // pool again: they go before that run's hours are written, not after.
    if (hour === lastRun[0]) {
      store?.release();
      pool.release();
    }
  };
  const release = () => {
    for (const o of owned.splice(0)) o.release();
  };
  return { seriesOf, rosOf, skipped, prepare, release };
}

/** A cost query compiled for local evaluation. */
type CompiledCost = { readonly p: SentQuery; readonly q: LocalQuery };
/** A query the evaluator refused at run time, and why. */
type Refused = { readonly p: SentQuery; readonly reason: string };
/** A run's series: per hour, per cluster, per query, in evaluation (label) order. */
type RunSeries = Map<number, (clusterId: string, query: string) => HourColumns>;

/**
 * One query's reduced series of one hour and cluster, column by column: a
 * run holds tens of thousands of them, and three arrays cost a fraction of an
 * object, a `Reduced` object and a boxed number per series. The series
 * objects are made when the hour is read.
 */
class HourColumns {
  readonly #metrics: Labels[] = [];
  readonly #values: number[] = [];
  /** Samples per series; −1 where the query has no reduction. */
  readonly #counts: number[] = [];

  /** Appends a series. */
  push(metric: Labels, reduced: Reduced | null): void {
    this.#metrics.push(metric);
    this.#values.push(reduced?.value ?? 0);
    this.#counts.push(reduced?.n ?? -1);
  }

  /** The series, in the order they were pushed. */
  series(): HourSeries {
    return this.#metrics.map((metric, i) => ({
      metric,
      reduced: this.#counts[i]! < 0 ? null : { value: this.#values[i]!, n: this.#counts[i]! },
    }));
  }
}

/** Server answers for some queries from hour `from` on: each cluster's, looked up by hour. */
interface ServerPart {
  get(clusterId: string, query: string, hour: number): HourSeries | undefined;
}

/** A fetched server batch as a {@linkcode ServerPart} for `list`'s queries from hour `from`. */
function serverPart(
  fetch: Fetch<HourSeriesOf>,
  list: readonly SentQuery[],
  from: number,
): ServerPart {
  const names = new Set(list.map((p) => p.query.name));
  const byCluster = new Map<string, HourSeriesOf>();
  return {
    get(clusterId, query, hour) {
      if (hour < from || !names.has(query)) return undefined;
      let of = byCluster.get(clusterId);
      if (!of) byCluster.set(clusterId, of = fetch.result(clusterId, list));
      return of(hour).get(query);
    },
  };
}

/**
 * Evaluates `list` at CMMO's 60 points of each hour of `run` (consecutive
 * hours, evaluated at once and split into hours: the output is sorted by label
 * set, so each hour's series come in the order an hour-by-hour evaluation
 * gives them), each series routed to its cluster and reduced as in client
 * mode. A query the evaluator refuses at run time is returned in `refused`.
 */
function evaluateCostRun(
  options: HourCollectorOptions,
  list: readonly CompiledCost[],
  rawOf: (key: string) => readonly RawSeries[],
  route: Route,
  who: string,
  day: string,
  run: readonly number[],
  pool: SlabPool,
): { byHour: RunSeries; refused: Refused[] } {
  const local = options.local!;
  const hours = formatHours(day, run[0]!, run.at(-1)!);
  const byHour: RunSeries = new Map(run.map((h) => [h, perCluster(() => new HourColumns())]));
  const refused: Refused[] = [];
  const values: number[] = [];
  const from = hourStartSeconds(day, run[0]!) * 1000;
  for (const { p, q } of list) {
    pool.reset();
    options.signal?.throwIfAborted();
    const name = p.query.name;
    const ctx: AnswerContext = { queryId: name, clusterId: who, hours };
    const reduction = p.query.value?.reduction ?? null;
    let result: ReturnType<typeof evaluateRange>;
    try {
      result = evaluateRange(q, rawOf, {
        startMs: from,
        endMs: from + run.length * HOUR_MS - LOCAL_STEP_MS,
        stepMs: LOCAL_STEP_MS,
        lookbackMs: local.lookbackMs,
        semantics: local.semantics,
        pool,
      });
    } catch (error) {
      if (error instanceof BridgeError && error.code === "local_eval") {
        refused.push({ p, reason: error.message });
        continue;
      }
      throw error;
    }
    for (const s of result) {
      let routed: ReturnType<Route> | null = null;
      for (let h = 0; h < run.length; h++) {
        values.length = 0;
        const end = (h + 1) * STEPS_PER_HOUR;
        for (let k = h * STEPS_PER_HOUR; k < end; k++) {
          if (s.present[k]) values.push(s.values[k]!);
        }
        if (values.length === 0) continue;
        routed ??= route(s.metric, p.stripClusterLabel ?? false, ctx);
        byHour.get(run[h]!)!(routed.clusterId, name).push(
          routed.metric,
          reduction ? reduceValues(values, reduction) : null,
        );
      }
    }
  }
  return { byHour, refused };
}

/**
 * The raw samples of `needs` for evaluation times `firstMs`…`lastMs`, and of
 * the `hints` that fit into their queries.
 */
function fetchNeeds(
  options: HourCollectorOptions,
  needs: readonly SelectorNeed[],
  firstMs: number,
  lastMs: number,
  id: string,
  who: string,
  hours: string,
  signal: AbortSignal | undefined = options.signal,
  hints: readonly SelectorNeed[] = [],
): Promise<RawStore> {
  const client = options.client;
  const remoteRead = options.local?.remoteRead ?? undefined;
  return fetchRaw(
    {
      queryInstant: client.queryInstant!.bind(client),
      ...(remoteRead !== undefined && client.readRaw
        ? { readRaw: client.readRaw.bind(client) }
        : {}),
    },
    {
      firstMs,
      lastMs,
      needs,
      hints,
      id,
      clusterId: who,
      hours,
      ...(remoteRead !== undefined ? { remoteRead } : {}),
    },
    signal,
    options.counter,
  );
}

/** A compiled ROS query. */
type CompiledRos = { readonly p: SentRosQuery; readonly q: LocalQuery };

/**
 * The ROS queries of a range compiled for local evaluation: the namespace
 * filter, and the others not skipped; null when any of them is outside the
 * evaluator's subset (then every ROS query goes to the server, as in server
 * mode).
 */
function compileRos(
  rosSent: readonly SentRosQuery[],
  skip: ReadonlySet<string>,
  local: LocalModeOptions,
): { filter: CompiledRos[]; rest: CompiledRos[] } | null {
  const filter: CompiledRos[] = [];
  const rest: CompiledRos[] = [];
  for (const p of rosSent) {
    const isFilter = p.query.group === "ros-filter";
    if (!isFilter && skip.has(p.query.name)) continue;
    const c = compileLocal(p.expr, { lookbackMs: local.lookbackMs });
    if (!c.ok) return null;
    (isFilter ? filter : rest).push({ p, q: c.query });
  }
  return { filter, rest };
}

/** What {@linkcode localRos} works on. */
interface LocalRosInput {
  readonly rosSent: readonly SentRosQuery[];
  readonly compiled: { readonly filter: CompiledRos[]; readonly rest: CompiledRos[] };
  readonly skip: ReadonlySet<string>;
  readonly routeOf: () => Route;
  readonly route: Route;
  readonly ids: readonly string[];
  readonly who: string;
  readonly day: string;
  readonly span: readonly number[];
  readonly report: LocalReport;
  readonly clusterLabel: string;
  /** The range's raw samples so far (null: nothing fetched) and their series by selector key. */
  readonly fetched: {
    readonly store: RawStore | null;
    readonly rawOf: (key: string) => readonly RawSeries[];
    readonly startMs: number;
    readonly lastMs: number;
  };
  /** The range's releasable memory: the ROS raw store is added here. */
  readonly owned: { release(): void }[];
  /** The range's evaluation pool, shared with its cost queries. */
  readonly pool: SlabPool;
}

/**
 * Local mode's ROS for one range: the namespace filter evaluated at every
 * window end (step 900 s, as CMMO's instant queries); only when a window
 * passed, the other ROS queries' raw samples are fetched, and they are
 * evaluated one run of up to {@linkcode ROS_EVAL_HOURS} hours at a time
 * (`prepare`, before an hour is read). A
 * query the evaluator refuses at run time sends all ROS queries of the rest of
 * the range to the server instead. One ROS (query, hour) per range is
 * self-checked first against the server's own evaluation of that hour's four
 * window ends (asked with the raw reads); clusters that differ get the range's
 * ROS from the server.
 */
async function localRos(
  options: HourCollectorOptions,
  input: LocalRosInput,
): Promise<
  { rosOf: ClusterRosOf | null; skipped: number; prepare: ((hour: number) => Promise<void>) | null }
> {
  const local = options.local!;
  const { rosSent, compiled, skip, routeOf, route, ids, who, day, span, report } = input;
  const first = span[0]!;
  const last = span.at(-1)!;
  const hours = formatHours(day, first, last);
  const filterPlans = rosSent.filter((p) => p.query.group === "ros-filter");
  const restPlans = rosSent.filter((p) => p.query.group !== "ros-filter");
  const serverRos = async (from: number) => {
    const sub = span.filter((h) => h >= from);
    const ros = rosSpan(options, rosSent, skip, routeOf(), ids, who, day, sub);
    await runAll(ros.tasks, options.signal);
    return await ros.finish();
  };
  let rawOf = input.fetched.rawOf;
  /** Evaluates, or null when the evaluator refuses at run time (then ROS goes to the server). */
  const evaluate = (
    list: readonly CompiledRos[],
    from: number,
    to: number,
  ): ReturnType<typeof evaluateRos> | null => {
    try {
      return evaluateRos(options, list, rawOf, route, who, day, from, to, input.pool);
    } catch (error) {
      if (!(error instanceof BridgeError && error.code === "local_eval")) throw error;
      addServerQueries(report, [{ query: "ros", reason: error.message }]);
      return null;
    }
  };
  const gate = evaluate(compiled.filter, first, last);
  if (!gate) return { ...(await serverRos(first)), prepare: null };
  if (!anyWindowPassed(gate.result, filterPlans, span, ids)) {
    return { rosOf: (id) => gate.result(id, filterPlans), skipped: 0, prepare: null };
  }
  const skipped = restPlans.filter((p) => skip.has(p.query.name)).length;
  const had = input.fetched.store;
  const more = compiled.rest.flatMap(({ q }) =>
    q.selectors.filter((n) => !had?.covers(n.key, n.marginMs))
  );
  // The self-check's server answer comes with the other selectors' raw samples.
  const pick = compiled.rest.length > 0
    ? local.rotation.next(compiled.rest.map((c) => c.p.query.name), span, { clusters: ids, day })
    : null;
  const c = pick ? compiled.rest.find((x) => x.p.query.name === pick.query)! : null;
  const check = pick && c
    ? rosBatchTasks(options, [c.p], routeOf(), who, day, pick.hour, pick.hour)
    : null;
  let store: RawStore | null = null;
  const { startMs, lastMs } = input.fetched;
  await runAll(
    [
      ...(more.length > 0
        ? [async (signal: AbortSignal) => {
          store = await fetchNeeds(options, more, startMs, lastMs, "raw-ros", who, hours, signal);
        }]
        : []),
      ...(check?.tasks ?? []),
    ],
    options.signal,
  );
  const rosStore = store as RawStore | null; // set by the fetch task above
  if (store !== null) {
    const fetched: RawStore = store;
    input.owned.push(fetched);
    const before = rawOf;
    rawOf = (key) => (fetched.covers(key, 0) ? fetched.series(key) : before(key));
  }

  /** ROS of the rest of the range from the server, from a run's first hour on. */
  let fromServer: { from: number; rosOf: ClusterRosOf } | null = null;
  let current: {
    run: readonly number[];
    result: Fetch<RosSamplesOf>["result"];
    release(): void;
  } | null = null;
  // Hours come in order and each is committed before the next is prepared: once the next run
  // is due (or the range ends), nothing reads a run's results any more.
  const dropCurrent = () => {
    current?.release();
    current = null;
  };
  input.owned.push({ release: dropCurrent });
  const runs = contiguousBatches(span, ROS_EVAL_HOURS);
  const prepare = async (hour: number) => {
    if ((fromServer && hour >= fromServer.from) || current?.run.includes(hour)) return;
    const run = runs.find((r) => r.includes(hour))!;
    dropCurrent(); // the previous run's series go before the next run is evaluated
    const rest = evaluate(compiled.rest, run[0]!, run.at(-1)!);
    // Hours come in order: after the last run, nothing reads the ROS raw samples.
    if (run === runs.at(-1)) rosStore?.release();
    if (rest) current = { run, result: rest.result, release: rest.release };
    else fromServer = { from: run[0]!, rosOf: (await serverRos(run[0]!)).rosOf! };
  };
  const localOf: ClusterRosOf = (clusterId) => {
    const a = gate.result(clusterId, filterPlans);
    let b: { run: readonly number[]; of: RosSamplesOf } | null = null;
    return (h, w) => {
      if (fromServer && h >= fromServer.from) return fromServer.rosOf(clusterId)(h, w);
      if (!current?.run.includes(h)) {
        throw new RangeError(`localRos: hour ${h} was not evaluated`);
      }
      if (b?.run !== current.run) {
        b = { run: current.run, of: current.result(clusterId, restPlans) };
      }
      return new Map([...a(h, w), ...b.of(h, w)]);
    };
  };
  if (!pick || !c || !check) return { rosOf: localOf, skipped, prepare };

  // The ROS self-check: the picked query evaluated here for its hour's four window ends.
  const mine = evaluate([c], pick.hour, pick.hour);
  if (!mine) return { ...(await serverRos(first)), prepare: null };
  report.checks++;
  const hourMs = hourStartSeconds(day, pick.hour) * 1000;
  const excluded = local.counterAdjusting && COUNTER_FUNCTION.test(c.p.expr)
    ? counterResetClusters(
      c.q.selectors.map((n) => ({
        series: rawOf(n.key),
        fromMs: hourMs - n.marginMs - local.lookbackMs,
        toMs: hourMs + HOUR_MS,
      })),
      ids.length === 1 ? () => ids[0]! : (metric) => metric[input.clusterLabel] ?? "",
    )
    : new Set<string>();
  const asSeries = (list: readonly RosSample[]) =>
    list.map((x) => ({ metric: x.metric, reduced: { value: parseSampleValue(x.value), n: 0 } }));
  const bad: string[] = [];
  let detail = "";
  for (const id of ids) {
    if (excluded.has(id)) continue;
    const ours = mine.result(id, [c.p]);
    const theirs = check.result(id, [c.p]);
    for (let w = 0; w < 4; w++) {
      const diff = compareHourSeries(
        asSeries(ours(pick.hour, w).get(c.p.query.name) ?? []),
        asSeries(theirs(pick.hour, w).get(c.p.query.name) ?? []),
        "sum",
      );
      if (diff !== null) {
        bad.push(id);
        if (!detail) detail = `${id}, window ${w}: ${diff}`;
        break;
      }
    }
  }
  if (bad.length === 0) return { rosOf: localOf, skipped, prepare };
  report.mismatches.push({
    day,
    hours,
    query: c.p.query.name,
    hour: pick.hour,
    clusters: bad,
    detail,
  });
  const again = await serverRos(first);
  const redo = new Set(bad);
  return {
    rosOf: (clusterId) => (redo.has(clusterId) ? again.rosOf!(clusterId) : localOf(clusterId)),
    skipped,
    prepare: ids.every((id) => redo.has(id)) ? null : prepare,
  };
}

/**
 * ROS queries evaluated here at the window ends of hours `first`…`last`
 * (step 900 s from `first`:15 to (`last`+1):00), each series routed to its
 * cluster: the same result as {@linkcode rosBatchTasks}'s answers.
 */
function evaluateRos(
  options: HourCollectorOptions,
  compiled: readonly CompiledRos[],
  rawOf: (key: string) => readonly RawSeries[],
  route: Route,
  who: string,
  day: string,
  first: number,
  last: number,
  pool: SlabPool,
): Fetch<RosSamplesOf> & { release(): void } {
  const local = options.local!;
  const hours = formatHours(day, first, last);
  const seriesOf = perCluster(() => new Map<number, RosEntry>());
  const buffers: ArrayBuffer[] = [];
  const planOf = new Map<string, SentRosQuery>(compiled.map((c) => [c.p.query.name, c.p]));
  // Intermediate arrays are recycled from query to query; each query's results are copied out
  // into two arrays of their own, its series at offsets in them (no view objects per series).
  for (const { p, q } of compiled) {
    options.signal?.throwIfAborted();
    pool.reset();
    const name = p.query.name;
    const ctx: AnswerContext = { queryId: name, clusterId: who, hours };
    const result = evaluateRange(q, rawOf, {
      startMs: (hourStartSeconds(day, first) + ROS_STEP) * 1000,
      endMs: (hourStartSeconds(day, last) + 3600) * 1000,
      stepMs: ROS_STEP * 1000,
      lookbackMs: local.lookbackMs,
      semantics: local.semantics,
      pool,
    });
    const steps = result[0]?.values.length ?? 0;
    const value = new Float64Array(result.length * steps);
    const present = new Uint8Array(result.length * steps);
    buffers.push(value.buffer, present.buffer);
    for (let i = 0; i < result.length; i++) {
      const s = result[i]!;
      const { clusterId, metric, key } = route(s.metric, p.stripClusterLabel ?? false, ctx);
      const series = seriesOf(clusterId, name);
      if (series.has(key)) {
        throw new BridgeError("local_eval", `${name}: series ${showLabels(metric)} twice`);
      }
      value.set(s.values, i * steps);
      present.set(s.present, i * steps);
      series.set(key, { metric, value, present, at: i * steps });
    }
  }
  return {
    tasks: [],
    result: rosResult(seriesOf, planOf, first),
    // Frees the results at once, not at the next full collection: nothing may read them after.
    release: () => {
      for (const b of buffers.splice(0)) if (!b.detached) b.transfer(0);
    },
  };
}

/** Queries whose answer a counter-adjusting server (Thanos) computes differently near a reset. */
const COUNTER_FUNCTION = /\b(?:rate|irate|increase|resets)\s*\(/;

/**
 * Runs all queries of a plan in parallel (the client bounds concurrency);
 * the first failure aborts the rest, and so does `signal` (a `cancelled`
 * error, at once).
 */
async function runAll(
  tasks: ((signal: AbortSignal) => Promise<unknown>)[],
  signal?: AbortSignal,
): Promise<void> {
  if (signal?.aborted) throw cancelledError(signal);
  const controller = new AbortController();
  const both = signal ? AbortSignal.any([signal, controller.signal]) : controller.signal;
  try {
    await Promise.all(tasks.map((t) =>
      t(both).catch((error) => {
        controller.abort(error);
        throw signal?.aborted ? cancelledError(signal, error) : error;
      })
    ));
  } finally {
    controller.abort();
  }
}

/** A `cancelled` error for an aborted collection (keeping one the client already made). */
function cancelledError(signal: AbortSignal, error?: unknown): BridgeError {
  if (error instanceof BridgeError && error.code === "cancelled") return error;
  const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
  return new BridgeError("cancelled", `collection cancelled: ${reason}`, { cause: signal.reason });
}

/** The request context the client names in its errors. */
function requestContext(ctx: AnswerContext): { id: string; clusterId: string; hours: string } {
  return { id: ctx.queryId, clusterId: ctx.clusterId, hours: ctx.hours };
}

/**
 * Where a series of an answer belongs: its cluster, and its labels as the
 * cluster's own query would have returned them.
 */
type Route = (
  metric: Labels,
  strip: boolean,
  ctx: AnswerContext,
) => Routed;

/**
 * A routed series: its cluster, its labels and their number within the
 * collection (`key`: equal label sets, equal numbers). Label sets are
 * interned per collection: the same pod comes back from a dozen queries, and
 * one shared label object instead of a dozen copies is most of a batch's
 * memory.
 */
interface Routed {
  readonly clusterId: string;
  readonly metric: Labels;
  readonly key: number;
}

/**
 * Interns label sets by cluster (one table per collection of an hour range),
 * found by a hash of their labels and compared label by label: no key string
 * is built per series and answer, nor kept per label set. The hash mixes the
 * numbers of the label names and values, each string numbered once (a string
 * caches its own hash, and the values of local mode's series are the raw
 * store's shared strings).
 */
function interner(): (clusterId: string, metric: Labels) => Routed {
  const tables = new Map<string, Map<number, Routed | Routed[]>>();
  const numbers = new Map<string, number>();
  const numberOf = (s: string): number => {
    let n = numbers.get(s);
    if (n === undefined) numbers.set(s, n = numbers.size);
    return n;
  };
  let next = 0;
  return (clusterId, metric) => {
    let table = tables.get(clusterId);
    if (!table) tables.set(clusterId, table = new Map());
    let hash = 0;
    for (const name in metric) hash = (hash + mixPair(numberOf(name), numberOf(metric[name]!))) | 0;
    const found = table.get(hash);
    if (found !== undefined && !Array.isArray(found) && sameLabels(found.metric, metric)) {
      return found;
    }
    if (Array.isArray(found)) {
      for (const r of found) if (sameLabels(r.metric, metric)) return r;
    }
    const routed: Routed = { clusterId, metric, key: next++ };
    if (found === undefined) table.set(hash, routed);
    else if (Array.isArray(found)) found.push(routed);
    else table.set(hash, [found, routed]);
    return routed;
  };
}

/** Whether two label sets hold the same labels (an empty value is a label here, as in the answer). */
function sameLabels(a: Labels, b: Labels): boolean {
  let count = 0;
  for (const name in a) {
    if (!Object.hasOwn(b, name) || b[name] !== a[name]) return false;
    count++;
  }
  for (const _ in b) count--;
  return count === 0;
}

/** One cluster: every series is its own, labels unchanged. */
function singleRoute(clusterId: string): Route {
  const intern = interner();
  return (metric) => intern(clusterId, metric);
}

/**
 * A batch: the cluster label names the cluster; it is dropped where the
 * cluster's own query would not have carried it. A series without the label,
 * or of a cluster outside the batch, is refused.
 */
function labelRoute(label: string, ids: readonly string[]): Route {
  const known = new Set(ids);
  const intern = interner();
  return (metric, strip, ctx) => {
    const clusterId = metric[label];
    if (clusterId === undefined || !known.has(clusterId)) {
      throw answerError(
        ctx,
        `series ${showLabels(metric)} ${
          clusterId === undefined
            ? `has no ${label} label`
            : `belongs to cluster ${JSON.stringify(clusterId)}, not to this batch`
        }: the batched answer cannot be split by cluster`,
      );
    }
    if (!strip) return intern(clusterId, metric);
    const rest: Record<string, string> = {};
    for (const name in metric) if (name !== label) rest[name] = metric[name]!;
    return intern(clusterId, rest);
  };
}

/** What {@linkcode fetchClientHour} and {@linkcode fetchServerBatch} use of the options. */
export type FetchOptions = Pick<HourCollectorOptions, "client" | "signal" | "counter">;

/** The series of each query for one hour, by catalogue name, in answer order. */
export type HourSeriesOf = (hour: number) => Map<string, HourSeries>;

/**
 * Client mode: one query per catalogue entry for one hour, 60 points per
 * series, every series checked (`checkSeries`) and reduced as it arrives.
 * Resolves once every answer was accepted; the first failure (or `signal`)
 * stops the others.
 *
 * @example
 * ```ts ignore
 * import { fetchClientHour } from "./hour_collector.ts";
 * const seriesOf = await fetchClientHour({ client }, plan, "c1", "2026-11-01", 3);
 * seriesOf(3).get("node-role"); // [{ metric, reduced: null }, …]
 * ```
 */
export async function fetchClientHour(
  options: FetchOptions,
  plan: readonly PlannedQuery[],
  clusterId: string,
  day: string,
  hour: number,
): Promise<HourSeriesOf> {
  const { tasks, result } = clientHourTasks(
    options,
    plan,
    singleRoute(clusterId),
    clusterId,
    day,
    hour,
  );
  await runAll(tasks, options.signal);
  return result(clusterId, plan);
}

/** Query tasks to hand to `runAll`, and what their answers give once all succeeded. */
interface Fetch<T> {
  readonly tasks: ((signal: AbortSignal) => Promise<unknown>)[];
  /** A cluster's results; `all` lists every query (also those not sent: empty answers). */
  readonly result: (clusterId: string, all: readonly { query: { name: string } }[]) => T;
}

/** Per cluster, per query name: what `T` holds. Created on first use. */
function perCluster<T>(make: () => T): (clusterId: string, query: string) => T {
  const byCluster = new Map<string, Map<string, T>>();
  return (clusterId, query) => {
    let byQuery = byCluster.get(clusterId);
    if (!byQuery) byCluster.set(clusterId, byQuery = new Map());
    let value = byQuery.get(query);
    if (value === undefined) byQuery.set(query, value = make());
    return value;
  };
}

/** The tasks of {@linkcode fetchClientHour}, for one cluster or a batch. */
function clientHourTasks(
  options: FetchOptions,
  plan: readonly SentQuery[],
  route: Route,
  who: string,
  day: string,
  hour: number,
): Fetch<HourSeriesOf> {
  const { client, counter } = options;
  const start = hourStartSeconds(day, hour);
  const grid = { start, end: start + 3599, step: 60 };
  const hours = formatHours(day, hour, hour);
  const lists = perCluster<HourSeries>(() => []);
  const stripped = new Set(plan.filter((p) => p.stripClusterLabel).map((p) => p.query.name));
  const tasks = plan.map((p) => async (signal: AbortSignal) => {
    const name = p.query.name;
    const mine = new Set<string>(); // clusters with series (a retry empties their lists)
    const ctx: AnswerContext = { queryId: name, clusterId: who, hours };
    await client.queryRange(
      { query: p.expr, ...grid, ...requestContext(ctx) },
      (s) => {
        const { values } = checkSeries(s, grid, ctx);
        const { clusterId, metric } = route(s.metric, p.stripClusterLabel ?? false, ctx);
        mine.add(clusterId);
        lists(clusterId, name).push({
          metric,
          reduced: p.query.value ? reduceValues(values, p.query.value.reduction) : null,
        });
      },
      signal,
      () => {
        for (const id of mine) lists(id, name).length = 0;
      },
      counter,
    );
  });
  return {
    tasks,
    result: (clusterId, all) => {
      const byQuery = new Map<string, HourSeries>();
      for (const p of all) {
        const list = lists(clusterId, p.query.name);
        byQuery.set(p.query.name, inAnswerOrder(list, stripped.has(p.query.name)));
      }
      return (h) => (h === hour ? byQuery : new Map());
    },
  };
}

/** Canonical identity of a label set, to join the aggregates of one series. */
export function labelsKey(metric: Labels): string {
  return JSON.stringify(Object.entries(metric).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Server mode: one query per aggregate for the whole batch; every answer holds
 * one point per series per hour. Points are kept per series (one entry per
 * label set and query, not per hour), and an hour's series are assembled only
 * when that hour is merged. Every series goes through the same `checkSeries`
 * as in client mode (grid: the ends of the batch's hours, step 3600); a label
 * set that appears twice in one answer, or a series whose primary aggregate
 * has a point in an hour where another aggregate has none, is refused.
 *
 * @example
 * ```ts ignore
 * import { fetchServerBatch } from "./hour_collector.ts";
 * const seriesOf = await fetchServerBatch({ client }, plan, "c1", "2026-11-01", [0, 1, 2]);
 * seriesOf(1).get("node-capacity-cpu-cores"); // [{ metric, reduced: { value, n } }, …]
 * ```
 */
export async function fetchServerBatch(
  options: FetchOptions,
  plan: readonly PlannedQuery[],
  clusterId: string,
  day: string,
  hours: readonly number[],
): Promise<HourSeriesOf> {
  const { tasks, result } = serverBatchTasks(
    options,
    plan,
    singleRoute(clusterId),
    clusterId,
    day,
    hours,
  );
  await runAll(tasks, options.signal);
  return result(clusterId, plan);
}

/** The tasks of {@linkcode fetchServerBatch}, for one cluster or a batch. */
function serverBatchTasks(
  options: FetchOptions,
  plan: readonly SentQuery[],
  route: Route,
  who: string,
  day: string,
  hours: readonly number[],
): Fetch<HourSeriesOf> {
  const { client, counter } = options;
  const first = hours[0]!;
  const span = hours.at(-1)! - first + 1;
  // Evaluated at the end of each hour; `offset 1s` in `expr` (see serverExpr).
  const grid = {
    start: hourStartSeconds(day, first) + 3600,
    end: hourStartSeconds(day, first + span - 1) + 3600,
    step: 3600,
  };
  const batchHours = formatHours(day, first, first + span - 1);
  /**
   * Per aggregate: the value of each hour of the batch, and a bit mask of the hours that
   * have a point (a batch has at most 24 hours). Plain arrays, not typed arrays: one
   * ArrayBuffer per series and aggregate costs far more memory than the data.
   */
  type Points = { value: number[]; present: number };
  type Entry = { metric: Labels; byAggregate: Partial<Record<ServerAggregate, Points>> };
  const seriesOf = perCluster(() => new Map<number, Entry>());
  const planOf = new Map<string, SentQuery>(plan.map((p) => [p.query.name, p]));
  const tasks = plan.flatMap((p) => {
    const name = p.query.name;
    const mine = new Set<string>();
    return p.server.map(({ aggregate, expr }) => async (signal: AbortSignal) => {
      const ctx: AnswerContext = {
        queryId: `${name}/${aggregate}`,
        clusterId: who,
        hours: batchHours,
      };
      await client.queryRange(
        { query: expr, ...grid, ...requestContext(ctx) },
        (s) => {
          const { slots, values } = checkSeries(s, grid, ctx);
          const { clusterId, metric, key } = route(s.metric, p.stripClusterLabel ?? false, ctx);
          mine.add(clusterId);
          const series = seriesOf(clusterId, name);
          let entry = series.get(key);
          if (!entry) series.set(key, entry = { metric, byAggregate: {} });
          const points = entry.byAggregate[aggregate] ??= {
            value: new Array<number>(span).fill(0),
            present: 0,
          };
          if (points.present !== 0) {
            throw answerError(ctx, `series ${showLabels(s.metric)} appears twice in the answer`);
          }
          for (let i = 0; i < slots.length; i++) {
            points.value[slots[i]!] = values[i]!;
            points.present |= 1 << slots[i]!;
          }
        },
        signal,
        // A failed attempt's points are dropped before the next attempt.
        () => {
          for (const id of mine) {
            for (const entry of seriesOf(id, name).values()) {
              const points = entry.byAggregate[aggregate];
              if (points) points.present = 0;
            }
          }
        },
        counter,
      );
    });
  });
  const result = (clusterId: string, all: readonly { query: { name: string } }[]): HourSeriesOf => {
    const ordered = orderedByQuery(all, planOf, (name) => seriesOf(clusterId, name).values());
    return (hour) => hourOf(clusterId, all, ordered, hour);
  };
  const hourOf = (
    clusterId: string,
    all: readonly { query: { name: string } }[],
    ordered: Map<string, Entry[]>,
    hour: number,
  ): Map<string, HourSeries> => {
    const byQuery = new Map<string, HourSeries>();
    const i = hour - first;
    for (const { query } of all) {
      const list: HourSeries = [];
      byQuery.set(query.name, list);
      const p = planOf.get(query.name);
      if (!p) continue; // not sent: its answer had to be empty
      const primary = p.server[0]!.aggregate;
      for (const { metric, byAggregate } of ordered.get(query.name) ?? []) {
        const bit = 1 << i;
        if (!((byAggregate[primary]?.present ?? 0) & bit)) continue; // absent in this hour
        const aggs: Partial<Record<ServerAggregate, number>> = {};
        for (const { aggregate } of p.server) {
          const points = byAggregate[aggregate];
          if (points && points.present & bit) {
            aggs[aggregate] = points.value[i]!;
          } else {
            throw answerError(
              {
                queryId: `${query.name}/${aggregate}`,
                clusterId,
                hours: formatHours(day, hour, hour),
              },
              `series ${showLabels(metric)} has a "${primary}" ` +
                `point but no "${aggregate}" point (the aggregate is missing)`,
            );
          }
        }
        list.push({
          metric,
          reduced: p.query.value ? combineServerAggregates(p.query.value.reduction, aggs) : null,
        });
      }
      // Answers are sorted by label set; the order is kept for last-writer-wins.
    }
    return byQuery;
  };
  return { tasks, result };
}

/**
 * Prometheus's order of label sets (`labels.Compare`): label names sorted, then
 * name by name and value by value in UTF-8 byte order; a prefix comes first.
 */
function compareLabels(a: Labels, b: Labels): number {
  const an = Object.keys(a).sort(compareUtf8);
  const bn = Object.keys(b).sort(compareUtf8);
  const n = Math.min(an.length, bn.length);
  for (let i = 0; i < n; i++) {
    const byName = compareUtf8(an[i]!, bn[i]!);
    if (byName !== 0) return byName;
    const byValue = compareUtf8(a[an[i]!]!, b[bn[i]!]!);
    if (byValue !== 0) return byValue;
  }
  return an.length - bn.length;
}

/**
 * A stripped batch answer back in the order of the cluster's own answer:
 * Prometheus sorts an answer by its label sets, and removing the cluster label
 * can change that order (a label set that was a prefix of another no longer
 * is). Rows keep the last of several series for one key, so order matters.
 */
function inAnswerOrder<T extends { metric: Labels }>(list: T[], strip: boolean): T[] {
  return strip ? list.sort((x, y) => compareLabels(x.metric, y.metric)) : list;
}

/**
 * Each query's series of one cluster in the cluster's own answer order,
 * sorted once; a query that was not sent (its answer had to be empty) has none.
 */
function orderedByQuery<T extends { metric: Labels }>(
  all: readonly { query: { name: string } }[],
  sent: ReadonlyMap<string, { readonly stripClusterLabel?: boolean }>,
  entries: (query: string) => Iterable<T>,
): Map<string, T[]> {
  const ordered = new Map<string, T[]>();
  for (const { query } of all) {
    const p = sent.get(query.name);
    const list = p ? [...entries(query.name)] : [];
    ordered.set(query.name, inAnswerOrder(list, p?.stripClusterLabel ?? false));
  }
  return ordered;
}

/** Step of the ROS `query_range`: one point per 15-minute window end. */
const ROS_STEP = 900;

/**
 * The ROS samples of one hour: for window `w` (0–3, ending at H:15 … (H+1):00),
 * each ROS query's series that have a point there, in answer order.
 */
export type RosSamplesOf = (hour: number, window: number) => Map<string, RosSample[]>;

/**
 * A sample value as a string `parseSampleValue` reads back to the same float
 * (the points are kept as numbers, 8 bytes each, not as the answer's strings).
 */
function sampleText(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "+Inf";
  if (x === -Infinity) return "-Inf";
  if (Object.is(x, -0)) return "-0";
  return String(x);
}

/**
 * The ROS queries of hours `first`…`last` (consecutive) of `day`: one
 * `query_range` per query with step 900 s from `first`:15 to (`last`+1):00,
 * whose points are CMMO's instant queries at the window ends. Every series goes
 * through `checkSeries` with that grid; a label set that appears twice in one
 * answer is refused. With a batch, each series goes to its cluster.
 */
function rosBatchTasks(
  options: FetchOptions,
  rosPlan: readonly SentRosQuery[],
  route: Route,
  who: string,
  day: string,
  first: number,
  last: number,
): Fetch<RosSamplesOf> {
  const { client, counter } = options;
  const span = last - first + 1;
  const grid = {
    start: hourStartSeconds(day, first) + ROS_STEP,
    end: hourStartSeconds(day, last) + 3600,
    step: ROS_STEP,
  };
  const hours = formatHours(day, first, last);
  type Entry = RosEntry & { value: number[]; present: boolean[] };
  const seriesOf = perCluster(() => new Map<number, RosEntry>());
  const planOf = new Map<string, SentRosQuery>(rosPlan.map((p) => [p.query.name, p]));
  const tasks = rosPlan.map((p) => {
    const name = p.query.name;
    const mine = new Set<string>();
    return async (signal: AbortSignal) => {
      const ctx: AnswerContext = { queryId: name, clusterId: who, hours };
      await client.queryRange(
        { query: p.expr, ...grid, ...requestContext(ctx) },
        (s) => {
          const { slots, values } = checkSeries(s, grid, ctx);
          const { clusterId, metric, key } = route(s.metric, p.stripClusterLabel ?? false, ctx);
          mine.add(clusterId);
          const series = seriesOf(clusterId, name);
          if (series.has(key)) {
            throw answerError(ctx, `series ${showLabels(s.metric)} appears twice in the answer`);
          }
          const entry: Entry = {
            metric,
            value: new Array<number>(span * 4).fill(0),
            present: new Array<boolean>(span * 4).fill(false),
            at: 0,
          };
          for (let i = 0; i < slots.length; i++) {
            entry.value[slots[i]!] = values[i]!;
            entry.present[slots[i]!] = true;
          }
          series.set(key, entry);
        },
        signal,
        () => {
          for (const id of mine) seriesOf(id, name).clear(); // a failed attempt's series are dropped
        },
        counter,
      );
    };
  });
  return { tasks, result: rosResult(seriesOf, planOf, first) };
}

/**
 * One ROS series: its value at each window end of the batch, and which ends
 * have a point, from index `at` of `value` and `present` (arrays that the
 * series of one query may share).
 */
interface RosEntry {
  readonly metric: Labels;
  readonly value: ArrayLike<number>;
  readonly present: ArrayLike<boolean | number>;
  readonly at: number;
}

/** Each cluster's ROS samples per hour and window, from its series in answer order. */
function rosResult(
  seriesOf: (clusterId: string, query: string) => Map<number, RosEntry>,
  planOf: ReadonlyMap<string, { readonly stripClusterLabel?: boolean }>,
  first: number,
): Fetch<RosSamplesOf>["result"] {
  return (clusterId, all) => {
    const ordered = orderedByQuery(all, planOf, (name) => seriesOf(clusterId, name).values());
    return (hour, window) => {
      const slot = (hour - first) * 4 + window;
      const byQuery = new Map<string, RosSample[]>();
      for (const [name, entries] of ordered) {
        const list: RosSample[] = [];
        for (const { metric, value, present, at } of entries) {
          if (present[at + slot]) list.push({ metric, value: sampleText(value[at + slot]!) });
        }
        byQuery.set(name, list);
      }
      return byQuery;
    };
  };
}

/** Whether the namespace filter returned a series at any window end, for any cluster. */
function anyWindowPassed(
  result: Fetch<RosSamplesOf>["result"],
  filter: readonly SentRosQuery[],
  hours: readonly number[],
  clusterIds: readonly string[],
): boolean {
  for (const clusterId of clusterIds) {
    const rosOf = result(clusterId, filter);
    for (const hour of hours) {
      for (let w = 0; w < 4; w++) {
        const byQuery = rosOf(hour, w);
        if (filter.some((p) => (byQuery.get(p.query.name)?.length ?? 0) > 0)) return true;
      }
    }
  }
  return false;
}

/**
 * Applies an hour's series to the group row maps in catalogue order and builds
 * the reports; also returns the hour's node rows (with `resource_id` set by
 * `buildHourReports`), which the ROS container rows join.
 */
function mergeHour(
  plan: readonly PlannedQuery[],
  byQuery: Map<string, HourSeries>,
  day: string,
  hour: number,
): { reports: HourReports; nodes: RowMap } {
  const maps = new Map<QueryGroup, RowMap>();
  for (const p of plan) {
    let rows = maps.get(p.query.group);
    if (!rows) maps.set(p.query.group, rows = new Map());
    for (const s of byQuery.get(p.query.name) ?? []) {
      applySeries(rows, p.query, s.metric, s.reduced);
    }
  }
  const reports = buildHourReports(maps, hourColumns(new Date(hourStartSeconds(day, hour) * 1000)));
  return { reports, nodes: maps.get("node") ?? new Map() };
}

/**
 * The ROS rows of one hour's passed windows, window after window, each built
 * when it is asked for. An hour without node rows has none (and no passed
 * window): CMMO writes no report for it (contract §3.1, "No data").
 */
function* rosWindows(
  rosPlan: readonly PlannedRosQuery[],
  rosOf: RosSamplesOf,
  nodes: RowMap,
  day: string,
  hour: number,
): Generator<{ container: string[][]; namespace: string[][] }> {
  if (nodes.size === 0) return;
  const queries = rosPlan.map((p) => p.query);
  const ends = rosWindowEnds(new Date(hourStartSeconds(day, hour) * 1000));
  for (let w = 0; w < 4; w++) {
    const window = buildRosWindowReports(queries, rosOf(hour, w), nodes, ends[w]!);
    if (window.passed) yield window;
  }
}
