/**
 * The main job: for every planned cluster, collect the missing closed hours
 * of every day of its range into the state store (oldest first), then build
 * each day's cumulative payload and hand it to the sink, and move the
 * cluster's watermark. One failing cluster never stops the others.
 *
 * Fleet batching (`--cluster-batch`): clusters that need the same hours share
 * one query per catalogue entry; the answer is split by the cluster label into
 * each cluster's hour fragments, so everything after collection is per
 * cluster as before. A failing batched query falls back to each cluster's own
 * queries (see `collectHoursBatch`).
 *
 * With ROS on (`settings.ros`), the ROS queries are collected with the cost
 * queries, and each payload carries the ROS windows of the hours no earlier
 * delivered payload of that cluster-day carried (the ROS ledger of
 * cluster_records.ts); a payload rebuilt for a window already delivered
 * carries the ROS hours recorded for that delivery, so it keeps its uuid.
 * With ROS off, hours collected with ROS are reused as they are and no ROS
 * file is shipped.
 *
 * @module
 */

import { COST_QUERIES } from "../collect/catalogue.ts";
import {
  type ClusterBatch,
  type CollectDayResult,
  type CollectEvent,
  collectHours,
  collectHoursBatch,
  type HourCollectorOptions,
  type LocalModeOptions,
  type QueryCounter,
  type RangeQuerier,
  type SelfCheckMismatch,
  type SkipProbe,
} from "../collect/hour_collector.ts";
import { type ClusterQueries, createClusterPlanner } from "../collect/cluster_planner.ts";
import { planBatchQueries, type PlannedQuery } from "../collect/query_plan.ts";
import {
  REPORT_NAMES,
  type ReportName,
  ROS_REPORT_NAMES,
  type RosReportName,
} from "../collect/reports.ts";
import { planBatchRosQueries, type PlannedRosQuery } from "../collect/ros_plan.ts";
import type { BridgeSettings, ReduceSetting } from "../config.ts";
import type { EngineSemantics } from "../collect/local_eval.ts";
import type { FlushResult, PayloadSink } from "../deliver/sink.ts";
import {
  BRIDGE_VERSION,
  BridgeError,
  dayOf,
  type DeliveryRef,
  type ErrorCode,
  errorInfo,
  escapeControl,
  formatHour,
  HOUR_MS,
  hourOf,
} from "../model.ts";
import { buildDayPayload, type DayPayload } from "../package/day_payload.ts";
import { manifestUuid, type RosHourRange, validateManifest } from "../package/manifest.ts";
import {
  type CollectionParams,
  hourMatches,
  type HourMeta,
  type StateStore,
} from "../package/state_store.ts";
import type { ClusterLocks } from "./cluster_lock.ts";
import { type ClusterRecords, nextRosRange } from "./cluster_records.ts";
import { type ClusterPlan, dayStartMs, type RunPlan } from "./run_plan.ts";

/** What happened to one cluster-day's payload. */
export type PayloadStatus =
  /** A new payload was delivered. */
  | "new"
  /** Delivered to S3; its announcement waits in the outbox for the next run. */
  | "queued"
  /** The sink already holds this exact payload, complete (same uuid, every part verified). */
  | "unchanged"
  /** A payload with all 24 hours was delivered before: never shipped again (unless --recollect). */
  | "complete"
  /** Built but not delivered (--dry-run). */
  | "dry-run"
  /** Hours were collected but none had data: nothing to ship. */
  | "no-data"
  /** Hour 00 of the day is not collected yet (missing, pending or failed): nothing to ship. */
  | "none"
  /** The payload could not be built or delivered; the next run tries again. */
  | "failed";

/** `{code, message}` of an error, as summaries carry it. */
export interface ErrorInfo {
  readonly code: ErrorCode;
  readonly message: string;
}

/** Summary of one cluster-day. */
export interface DaySummary {
  readonly day: string;
  /** Hours queried and committed by this run. */
  collectedHours: number[];
  /** Hours without node data that are still inside `--empty-hour-grace`: asked again next run. */
  pendingHours: number[];
  /** Hours that failed in this run; they are retried by the next run. */
  failedHours: { hour: number; code: ErrorCode; message: string }[];
  /** Damaged hours moved to quarantine (and collected again). */
  quarantined: string[];
  status: PayloadStatus;
  uuid: string | null;
  /** Hours in the payload (00..lastHour), or 0. */
  hours: number;
  lastHour: number | null;
  /** Data rows per report in the payload (ROS reports only with ROS on: the ROS hours shipped). */
  rows: Partial<Record<ReportName | RosReportName, number>>;
  /** With ROS on: the hours whose ROS windows this payload carries (null: none); else absent. */
  rosHours?: RosHourRange | null;
  bytes: number;
  /** Where the payload went (or already is). */
  refs: DeliveryRef[];
  /** Announcements of this payload waiting in the outbox. */
  queued: number;
  error: ErrorInfo | null;
}

/** Summary of one cluster. */
export interface ClusterSummary {
  readonly clusterId: string;
  /** First and last hour of the plan (`YYYY-MM-DDTHH`); from > to when up to date. */
  readonly from: string;
  readonly to: string;
  days: DaySummary[];
  /** A cluster-level error (lock busy, no data at all, a query that cannot be rewritten …). */
  error: ErrorInfo | null;
  /** The watermark after this run, `YYYY-MM-DDTHH`, or null. */
  watermark: string | null;
}

/** Summary of a whole run. */
export interface RunSummary {
  readonly mode: ReduceSetting;
  readonly sink: string;
  readonly dryRun: boolean;
  readonly clusters: readonly ClusterSummary[];
  /** Outbox flushed at the start of the run. */
  readonly outbox: FlushResult;
  /** Queries sent to Thanos by this run (0 when everything came from the state). */
  readonly queries: number;
  /** Answer bytes downloaded by this run. */
  readonly bytesDownloaded: number;
  readonly ms: number;
  /** How clusters shared queries (absent in summaries made before fleet batching). */
  readonly batching?: BatchingSummary;
  /** Local mode (`--reduce local`): semantics, self-checks and server-evaluated queries. */
  readonly local?: LocalSummary;
  /**
   * False when any hour, day or cluster failed, a cluster had no data at all, or an
   * announcement waits in the outbox.
   */
  readonly ok: boolean;
}

/** Finds label names that carry a value (for the wrong `--cluster-label` hint). */
export type LabelFinder = (
  value: string,
  match: string,
  startMs: number,
  endMs: number,
  signal?: AbortSignal,
) => Promise<string[]>;

/** What the job needs besides the settings and the plan. */
export interface CollectJobDeps {
  readonly client: RangeQuerier;
  readonly store: StateStore;
  readonly sink: PayloadSink;
  readonly records: ClusterRecords;
  readonly locks: ClusterLocks;
  /** koku org id of a cluster. */
  readonly orgOf: (clusterId: string) => string;
  readonly now: () => Date;
  /** Per-run query counters: `collectHours` adds to them. */
  readonly stats: QueryCounter;
  readonly findLabels?: LabelFinder;
  readonly onEvent?: (event: CollectEvent) => void;
  /** Progress: a cluster-day is done (collected and shipped, or failed). */
  readonly onDayDone?: (clusterId: string, day: DaySummary) => void;
  /** Progress: a cluster is done. */
  readonly onClusterDone?: (summary: ClusterSummary) => void;
  /** Warnings (damaged records, quarantined hours), each naming a path. */
  readonly warn: (message: string) => void;
  /**
   * Clusters that must not be collected in this run, with the reason (e.g. no
   * koku source could be registered: koku would drop their payloads). They
   * end with that error and keep their watermark, so the next run retries.
   */
  readonly blocked?: ReadonlyMap<string, ErrorInfo>;
  /** Names the queries that must be empty for a batch (`--skip-empty`); absent: all are sent. */
  readonly skipProbe?: SkipProbe;
  /** Required with `--reduce local`. */
  readonly local?: LocalRun;
}

/** What local mode did in a run. */
export interface LocalSummary {
  /** The engine semantics evaluated with, and where that came from (setting or build info). */
  readonly semantics: EngineSemantics;
  readonly semanticsFrom: string;
  /** How raw samples were fetched: `remote read`, or `instant queries (<why>)`. */
  readonly rawRead: string;
  /** Self-checks made (one per batch and hour range). */
  checks: number;
  /** Self-checks that failed: those clusters' hours were collected in server mode. */
  readonly mismatches: (SelfCheckMismatch & { readonly clusters: readonly string[] })[];
  /** Queries evaluated on the server instead, with the reason (once per query). */
  readonly serverQueries: { readonly query: string; readonly reason: string }[];
}

/** Local mode's settings for one run (resolved by the runtime: build info or `--engine-semantics`). */
export interface LocalRun extends LocalModeOptions {
  /** Where the semantics came from, for the summary. */
  readonly semanticsFrom: string;
  /** How raw samples are fetched, and why, for the summary. */
  readonly rawRead: string;
}

/** How a run's clusters shared their queries (`--cluster-batch`). */
export interface BatchingSummary {
  /** Clusters per query asked for. */
  readonly clusterBatch: number;
  /** Collections of one hour range for a group of clusters (with one cluster, its own queries). */
  batches: number;
  /** Of those, collections that covered more than one cluster with one query each. */
  batched: number;
  /**
   * Requests not sent because their answers had to be empty (`--skip-empty`);
   * without the skip the run would have sent this many more, and no probes
   * (one per batch and hour range, counted in `queries`).
   */
  skippedQueries: number;
  /**
   * Batches whose queries failed (after the client's retries): their clusters
   * were collected one by one with their own queries.
   */
  fallbacks: {
    day: string;
    hours: string;
    clusters: string[];
    code: ErrorCode;
    message: string;
  }[];
}

/** A cluster of the run's plan with its size estimate (rows of its largest report in an hour). */
export interface BatchCandidate {
  readonly plan: ClusterPlan;
  /** `ClusterRecords.seriesEstimate`, or null: never collected. */
  readonly series: number | null;
}

/** Estimate used for a cluster that was never collected. */
export const UNKNOWN_CLUSTER_SERIES = 500;

/**
 * Groups a run's clusters into batches, pure: clusters share a batch only when
 * they need the same hours (same planned range), groups go oldest first, and a
 * batch takes clusters (in plan order) while it has fewer than `size` and the
 * sum of their estimates stays within `maxSeries` (a cluster larger than that
 * gets a batch of its own). Returns indices into `candidates`.
 *
 * @example
 * ```ts
 * import { planBatches } from "./collect_job.ts";
 * const at = (fromMs: number) => ({ clusterId: `c${fromMs}`, fromMs, toMs: 7_200_000, source: "watermark" as const });
 * planBatches([
 *   { plan: at(3_600_000), series: 10 },
 *   { plan: at(0), series: 10 },
 *   { plan: at(3_600_000), series: 10 },
 * ], 100, 1000); // [[1], [0, 2]]
 * ```
 */
export function planBatches(
  candidates: readonly BatchCandidate[],
  size: number,
  maxSeries: number,
): number[][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`Invalid batch size ${size}`);
  if (!(maxSeries >= 1)) throw new RangeError(`Invalid series limit ${maxSeries}`);
  const groups = new Map<string, number[]>();
  candidates.forEach((c, i) => {
    const key = c.plan.fromMs > c.plan.toMs ? "up-to-date" : `${c.plan.fromMs}:${c.plan.toMs}`;
    let list = groups.get(key);
    if (!list) groups.set(key, list = []);
    list.push(i);
  });
  const order = [...groups.values()].sort((a, b) => {
    const pa = candidates[a[0]!]!.plan;
    const pb = candidates[b[0]!]!.plan;
    return pa.fromMs - pb.fromMs || pa.toMs - pb.toMs;
  });
  const out: number[][] = [];
  for (const group of order) {
    let batch: number[] = [];
    let sum = 0;
    for (const i of group) {
      const n = candidates[i]!.series ?? UNKNOWN_CLUSTER_SERIES;
      if (batch.length > 0 && (batch.length >= size || sum + n > maxSeries)) {
        out.push(batch);
        batch = [];
        sum = 0;
      }
      batch.push(i);
      sum += n;
    }
    if (batch.length > 0) out.push(batch);
  }
  return out;
}

/**
 * Runs a planned collection: flushes the sink's outbox, then the planned
 * clusters in batches (`planBatches`): each batch is collected day by day,
 * oldest first, with one query per catalogue entry for all its clusters that
 * need the same hours. With `--cluster-batch 1` every cluster is a batch, and
 * up to `concurrency` run at once; larger batches run two at a time (one
 * downloading while the other is written and shipped).
 *
 * @example
 * ```ts ignore
 * import { runCollection } from "./collect_job.ts";
 * const summary = await runCollection(plan, settings, deps, signal);
 * if (!summary.ok) Deno.exitCode = 1;
 * ```
 */
export async function runCollection(
  plan: RunPlan,
  settings: BridgeSettings,
  deps: CollectJobDeps,
  signal?: AbortSignal,
): Promise<RunSummary> {
  const started = performance.now();
  let outbox: FlushResult = { sent: 0, pending: 0, error: null };
  if (!plan.dryRun) {
    try {
      outbox = await deps.sink.flush(signal);
    } catch (error) {
      outbox = { sent: 0, pending: -1, error: errorInfo(error) };
    }
  }
  const candidates: BatchCandidate[] = [];
  for (const cp of plan.clusters) {
    const series = settings.clusterBatch > 1
      ? await deps.records.seriesEstimate(cp.clusterId).catch(() => null)
      : null;
    candidates.push({ plan: cp, series });
  }
  const batches = planBatches(candidates, settings.clusterBatch, settings.batchSeries);
  const batching: BatchingSummary = {
    clusterBatch: settings.clusterBatch,
    batches: 0,
    batched: 0,
    skippedQueries: 0,
    fallbacks: [],
  };
  if (settings.reduce === "local" && !deps.local) {
    throw new RangeError("runCollection: --reduce local needs deps.local");
  }
  const local: LocalSummary | null = deps.local
    ? {
      semantics: deps.local.semantics,
      semanticsFrom: deps.local.semanticsFrom,
      rawRead: deps.local.rawRead,
      checks: 0,
      mismatches: [],
      serverQueries: [],
    }
    : null;
  const clusters: ClusterSummary[] = new Array(plan.clusters.length);
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const indices = batches[next++]!;
      const group = indices.map((i) => candidates[i]!);
      const summaries = await collectGroup(plan, settings, deps, group, batching, local, signal);
      indices.forEach((i, k) => {
        clusters[i] = summaries[k]!;
        deps.onClusterDone?.(clusters[i]!);
      });
    }
  };
  const inFlight = settings.clusterBatch === 1 ? settings.concurrency : 2;
  await Promise.all(
    Array.from({ length: Math.min(inFlight, batches.length) }, worker),
  );
  return {
    mode: settings.reduce,
    sink: settings.sink,
    dryRun: plan.dryRun,
    clusters,
    outbox,
    queries: deps.stats.queries,
    bytesDownloaded: deps.stats.bytes,
    ms: Math.round(performance.now() - started),
    batching,
    ...(local ? { local } : {}),
    ok: outbox.error === null &&
      clusters.every((c) =>
        c.error === null &&
        c.days.every((d) => d.error === null && d.failedHours.length === 0 && d.queued === 0)
      ),
  };
}

/** Last hour of the gap-free run of committed hours starting at 00, capped at `max`. */
export function contiguousLastHour(
  hours: ReadonlyMap<number, unknown>,
  max = 23,
): number | null {
  let last: number | null = null;
  for (let h = 0; h <= max && hours.has(h); h++) last = h;
  return last;
}

function newDay(day: string): DaySummary {
  return {
    day,
    collectedHours: [],
    pendingHours: [],
    failedHours: [],
    quarantined: [],
    status: "none",
    uuid: null,
    hours: 0,
    lastHour: null,
    rows: {},
    bytes: 0,
    refs: [],
    queued: 0,
    error: null,
  };
}

/** One cluster of a batch while it is collected (locked, planned). */
interface Member {
  readonly cp: ClusterPlan;
  readonly summary: ClusterSummary;
  readonly lease: { release(): Promise<void> };
  readonly queries: readonly PlannedQuery[];
  readonly rosPlan: readonly PlannedRosQuery[] | null;
  readonly params: CollectionParams;
  readonly stored: number | null;
  /** The size estimate the run started with. */
  readonly series: number | null;
  /** The largest report (rows per hour) seen in this run. */
  largest: number;
  mark: number;
  advancing: boolean;
  sawData: boolean;
  sawHours: boolean;
  /** A day failed (or the cluster did): no later day is collected. */
  stopped: boolean;
}

/** A cluster-day of a member being collected. */
interface MemberDay {
  readonly member: Member;
  readonly ds: DaySummary;
  readonly day0: number;
  touched: number;
}

/**
 * Collects one batch of clusters: locks each, then day by day (oldest first)
 * collects the hours each needs — with one query for all clusters that need
 * the same hours — ships each cluster-day, and moves each watermark. A
 * cluster's failure (lock busy, a failed hour, a failed delivery) never stops
 * the others; a failed hour stops that cluster's later days.
 */
async function collectGroup(
  plan: RunPlan,
  settings: BridgeSettings,
  deps: CollectJobDeps,
  group: readonly BatchCandidate[],
  batching: BatchingSummary,
  local: LocalSummary | null,
  signal?: AbortSignal,
): Promise<ClusterSummary[]> {
  const summaries: ClusterSummary[] = [];
  const members: Member[] = [];
  for (const { plan: cp, series } of group) {
    const summary: ClusterSummary = {
      clusterId: cp.clusterId,
      from: formatHour(cp.fromMs),
      to: formatHour(cp.toMs),
      days: [],
      error: null,
      watermark: null,
    };
    summaries.push(summary);
    const member = await startMember(settings, deps, cp, summary, series, signal);
    if (member) members.push(member);
  }
  try {
    const first = Math.min(...members.map((m) => dayStartMs(m.cp.fromMs)));
    // Up to date (from > to): nothing to collect, nothing to ship.
    const last = Math.max(...members.map((m) => (m.cp.fromMs > m.cp.toMs ? -Infinity : m.cp.toMs)));
    for (let day0 = first; day0 <= last; day0 += 24 * HOUR_MS) {
      signal?.throwIfAborted();
      const todays = members.filter((m) =>
        !m.stopped && m.cp.fromMs <= m.cp.toMs && dayStartMs(m.cp.fromMs) <= day0 &&
        day0 <= m.cp.toMs
      );
      if (todays.length === 0) continue;
      await collectGroupDay(plan, settings, deps, todays, day0, batching, local, signal);
    }
  } catch (error) {
    // Only a cancelled run gets here: every member still running ends with it.
    for (const m of members) m.summary.error ??= errorInfo(error);
  } finally {
    for (const m of members) await finishMember(plan, settings, deps, m, signal);
  }
  return summaries;
}

/** One cluster planner per settings object (settings are resolved once per process). */
const PLANNERS = new WeakMap<BridgeSettings, (clusterId: string) => ClusterQueries>();

/** The cluster planner of `settings`: the catalogues parsed once, not once per cluster. */
function plannerOf(settings: BridgeSettings): (clusterId: string) => ClusterQueries {
  let planner = PLANNERS.get(settings);
  if (!planner) {
    planner = createClusterPlanner({
      clusterLabel: settings.clusterLabel,
      rateWindow: settings.rateWindow,
      reduce: settings.reduce,
      ros: settings.ros,
    });
    PLANNERS.set(settings, planner);
  }
  return planner;
}

/** Locks and plans one cluster; null (with `summary.error` set) when it cannot be collected. */
async function startMember(
  settings: BridgeSettings,
  deps: CollectJobDeps,
  cp: ClusterPlan,
  summary: ClusterSummary,
  series: number | null,
  signal?: AbortSignal,
): Promise<Member | null> {
  const blocked = deps.blocked?.get(cp.clusterId);
  if (blocked !== undefined) {
    summary.error = blocked;
    try {
      const mark = await deps.records.watermark(cp.clusterId);
      summary.watermark = mark === null ? null : formatHour(mark);
    } catch (error) {
      summary.error = errorInfo(error);
    }
    return null;
  }
  let lease;
  try {
    lease = await deps.locks.acquire(cp.clusterId, signal);
  } catch (error) {
    summary.error = errorInfo(error);
    return null;
  }
  try {
    const { queries, ros: rosPlan, params } = plannerOf(settings)(cp.clusterId);
    const stored = await deps.records.watermark(cp.clusterId);
    // Where the gap-free run starts for this run: the stored watermark; with none, the day
    // before the planned range; after a `--max-backfill` cut, the cut (older hours are given up).
    const start = dayStartMs(cp.fromMs) - HOUR_MS;
    const mark = stored === null
      ? start
      : cp.source === "backfill"
      ? Math.max(stored, start)
      : stored;
    return {
      cp,
      summary,
      lease,
      queries,
      rosPlan,
      params,
      stored,
      series,
      largest: 0,
      mark,
      advancing: true,
      sawData: false,
      sawHours: false,
      stopped: false,
    };
  } catch (error) {
    summary.error = errorInfo(error);
    await lease.release();
    return null;
  }
}

/** Stores the watermark (and the size estimate), names a cluster without data, unlocks. */
async function finishMember(
  plan: RunPlan,
  settings: BridgeSettings,
  deps: CollectJobDeps,
  m: Member,
  signal?: AbortSignal,
): Promise<void> {
  const { cp, summary, stored, mark } = m;
  try {
    if (!plan.dryRun && mark !== stored && mark >= dayStartMs(cp.fromMs)) {
      await deps.records.setWatermark(cp.clusterId, mark);
      summary.watermark = formatHour(mark);
    } else {
      summary.watermark = stored === null ? null : formatHour(stored);
    }
    // The size estimate batches are formed by; rewritten only when it moved by a quarter.
    if (m.largest > 0 && (m.series === null || Math.abs(m.largest - m.series) * 4 > m.series)) {
      await deps.records.setSeriesEstimate(cp.clusterId, m.largest);
    }
    if (summary.error === null && m.sawHours && !m.sawData) {
      summary.error = await noDataError(settings, deps, cp, signal);
    }
  } catch (error) {
    summary.error ??= errorInfo(error);
  } finally {
    await m.lease.release();
  }
}

/**
 * One day of a batch: lists what each member has, collects the missing hours
 * (members that need the same hours share queries), then finishes and ships
 * each member's day and moves its watermark.
 */
async function collectGroupDay(
  plan: RunPlan,
  settings: BridgeSettings,
  deps: CollectJobDeps,
  todays: readonly Member[],
  day0: number,
  batching: BatchingSummary,
  local: LocalSummary | null,
  signal?: AbortSignal,
): Promise<void> {
  const day = dayOf(day0);
  const wantedBy = new Map<string, MemberDay[]>();
  const hoursOf = new Map<MemberDay, number[]>();
  const days: MemberDay[] = [];
  for (const member of todays) {
    const ds = newDay(day);
    member.summary.days.push(ds);
    const md: MemberDay = { member, ds, day0, touched: 0 };
    days.push(md);
    try {
      const first = hourOf(Math.max(member.cp.fromMs, day0));
      const last = hourOf(Math.min(member.cp.toMs, day0 + 23 * HOUR_MS));
      const hours = await listHours(deps, member.cp.clusterId, day, ds);
      const wanted: number[] = [];
      for (let h = first; h <= last; h++) {
        const meta = hours.get(h);
        if (plan.recollect || !meta || !hourMatches(meta, member.params)) wanted.push(h);
      }
      if (wanted.length === 0) continue;
      const key = wanted.join(",");
      let list = wantedBy.get(key);
      if (!list) wantedBy.set(key, list = []);
      list.push(md);
      hoursOf.set(md, wanted);
    } catch (error) {
      if (signal?.aborted) throw error;
      member.summary.error = errorInfo(error);
      member.stopped = true;
    }
  }
  for (const list of wantedBy.values()) {
    for (let i = 0; i < list.length; i += settings.clusterBatch) {
      const part = list.slice(i, i + settings.clusterBatch);
      await collectShared(
        settings,
        deps,
        part,
        day,
        hoursOf.get(part[0]!)!,
        batching,
        local,
        signal,
      );
    }
  }
  for (const md of days) {
    signal?.throwIfAborted();
    const { member: m, ds } = md;
    if (m.stopped) continue;
    try {
      await finishDay(plan, settings, deps, md, signal);
    } catch (error) {
      if (signal?.aborted) throw error;
      m.summary.error = errorInfo(error);
      m.stopped = true;
      continue;
    }
    deps.onDayDone?.(m.cp.clusterId, ds);
    const settled = ["new", "queued", "unchanged", "complete", "no-data"].includes(ds.status);
    if (m.advancing && settled && ds.lastHour !== null && !plan.dryRun) {
      const end = day0 + ds.lastHour * HOUR_MS;
      if (m.mark >= day0 - HOUR_MS && end > m.mark) m.mark = end;
    }
    if (ds.lastHour !== 23 || !settled) m.advancing = false;
    // Later hours would most likely fail the same way.
    if (ds.failedHours.length > 0) m.stopped = true;
  }
}

/** Committed hours of a cluster-day; quarantined ones are named in `ds` and warned about. */
async function listHours(
  deps: CollectJobDeps,
  clusterId: string,
  day: string,
  ds: DaySummary,
): Promise<Map<number, HourMeta>> {
  const listing = await deps.store.listHours(clusterId, day);
  for (const q of listing.quarantined) {
    ds.quarantined.push(q.path);
    deps.warn(`quarantined ${q.path}: ${q.reason}`);
  }
  return listing.hours;
}

/** The collector options of a run. */
function collectorOptions(
  settings: BridgeSettings,
  deps: CollectJobDeps,
  signal?: AbortSignal,
): HourCollectorOptions {
  return {
    client: deps.client,
    store: deps.store,
    mode: settings.reduce,
    batchHours: settings.batchHours,
    now: deps.now,
    emptyHourGrace: settings.emptyHourGraceMs,
    counter: deps.stats,
    ...(deps.local && settings.reduce === "local" ? { local: deps.local } : {}),
    ...(deps.skipProbe ? { skipProbe: deps.skipProbe } : {}),
    ...(signal ? { signal } : {}),
    ...(deps.onEvent ? { onEvent: deps.onEvent } : {}),
  };
}

/** Collects the same hours of one day for members, with one query per catalogue entry. */
async function collectShared(
  settings: BridgeSettings,
  deps: CollectJobDeps,
  part: readonly MemberDay[],
  day: string,
  hours: readonly number[],
  batching: BatchingSummary,
  local: LocalSummary | null,
  signal?: AbortSignal,
): Promise<void> {
  const members = part.map(({ member: m }) => ({
    clusterId: m.cp.clusterId,
    plan: m.queries,
    ros: m.rosPlan,
    params: m.params,
  }));
  let batch: ClusterBatch = { clusterLabel: settings.clusterLabel, members };
  if (members.length > 1) {
    const clusterIds = members.map((m) => m.clusterId);
    const options = {
      clusterLabel: settings.clusterLabel,
      clusterIds,
      rateWindow: settings.rateWindow,
    };
    batch = {
      ...batch,
      cost: planBatchQueries(COST_QUERIES, options),
      ros: settings.ros ? planBatchRosQueries(options) : null,
    };
  }
  batching.batches++;
  if (members.length > 1) batching.batched++;
  const result = await collectHoursBatch(
    collectorOptions(settings, deps, signal),
    batch,
    day,
    hours,
  );
  batching.skippedQueries += result.skipped;
  if (local && result.local) {
    local.checks += result.local.checks;
    local.mismatches.push(...result.local.mismatches.map((m) => ({
      ...m,
      detail: escapeControl(m.detail),
    })));
    for (const q of result.local.serverQueries) {
      if (!local.serverQueries.some((x) => x.query === q.query)) {
        local.serverQueries.push({ query: q.query, reason: escapeControl(q.reason) });
      }
    }
  }
  if (result.fallback) {
    batching.fallbacks.push({
      day,
      hours: `${String(hours[0]).padStart(2, "0")}-${String(hours.at(-1)).padStart(2, "0")}`,
      clusters: members.map((m) => m.clusterId),
      code: result.fallback.code,
      message: escapeControl(result.fallback.message),
    });
  }
  for (const md of part) {
    const r = result.byCluster.get(md.member.cp.clusterId)!;
    applyResult(md, r);
  }
}

/** Adds a collector result to a member's day. */
function applyResult(md: MemberDay, result: CollectDayResult): void {
  const { ds } = md;
  ds.collectedHours.push(...result.collected);
  ds.pendingHours.push(...result.pending);
  for (const f of result.failed) {
    ds.failedHours.push({ hour: f.hour, code: f.code, message: escapeControl(f.error) });
  }
  md.touched += result.collected.length + result.pending.length;
}

/**
 * The rest of a cluster-day once its hours are collected: verifies the hours
 * to ship (a damaged hour is quarantined and collected again on its own),
 * then builds and delivers the day's payload.
 */
async function finishDay(
  plan: RunPlan,
  settings: BridgeSettings,
  deps: CollectJobDeps,
  md: MemberDay,
  signal?: AbortSignal,
): Promise<void> {
  const { member: m, ds } = md;
  const clusterId = m.cp.clusterId;
  const day = ds.day;
  const collect = async (hours: number[]) => {
    const result = await collectHours(
      { ...collectorOptions(settings, deps, signal), params: m.params, ros: m.rosPlan },
      m.queries,
      clusterId,
      day,
      hours,
    );
    applyResult(md, result);
  };
  let hours = await listHours(deps, clusterId, day, ds);
  const withData = ds.collectedHours.filter((h) => hours.get(h)?.noData === false).length;
  m.sawHours ||= md.touched > 0;
  m.sawData ||= withData > 0;
  for (const h of ds.collectedHours) {
    const rows = hours.get(h)?.rows;
    if (rows) m.largest = Math.max(m.largest, ...Object.values(rows));
  }
  // Hours collected with other parameters are not shipped (they are collected again above
  // when in range; outside the range they end the gap-free run).
  const usable = new Map<number, HourMeta>([...hours].filter(([, x]) => hourMatches(x, m.params)));
  let last = contiguousLastHour(usable);
  if (last !== null) {
    // Verify the fragments of the hours to ship; a damaged hour is quarantined and collected again.
    const bad = await deps.store.verifyHours(clusterId, day, range(0, last));
    for (const b of bad) {
      ds.quarantined.push(b.path);
      deps.warn(`quarantined ${b.path}: ${b.reason}`);
    }
    if (bad.length > 0 && ds.failedHours.length === 0) {
      await collect(bad.map((b) => b.hour));
      hours = await listHours(deps, clusterId, day, ds);
      last = contiguousLastHour(
        new Map<number, HourMeta>([...hours].filter(([, x]) => hourMatches(x, m.params))),
      );
    } else if (bad.length > 0) {
      last = Math.min(...bad.map((b) => b.hour)) - 1;
      if (last < 0) last = null;
    }
  }
  if (last === null) return;
  ds.lastHour = last;
  ds.hours = last + 1;
  const included: HourMeta[] = range(0, last).map((h) => hours.get(h)!);
  for (const name of REPORT_NAMES) {
    ds.rows[name] = included.reduce((n, x) => n + (x.rows[name] ?? 0), 0);
  }
  if (included.every((x) => x.noData)) {
    ds.status = "no-data";
    return;
  }
  await ship(plan, settings, deps, clusterId, day, last, included, ds, signal);
}

async function noDataError(
  settings: BridgeSettings,
  deps: CollectJobDeps,
  cp: ClusterPlan,
  signal?: AbortSignal,
): Promise<ErrorInfo> {
  let hint = "";
  if (deps.findLabels) {
    try {
      const labels = await deps.findLabels(
        cp.clusterId,
        "kube_node_info",
        cp.fromMs,
        cp.toMs + HOUR_MS,
        signal,
      );
      const others = labels.filter((l) => l !== settings.clusterLabel);
      hint = others.length > 0
        ? ` The cluster id is carried by label(s) ${
          others.map((l) => JSON.stringify(l)).join(", ")
        }: try --cluster-label ${others[0]}.`
        : ` No label of kube_node_info carries ${
          JSON.stringify(cp.clusterId)
        } in that window: check the id, and that the cluster pushes its metrics.`;
    } catch {
      // the hint is best effort
    }
  }
  return {
    code: "no_data",
    message: `no node data for cluster ${cp.clusterId} in any hour of this run (label ${
      JSON.stringify(settings.clusterLabel)
    }).${hint}`,
  };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/**
 * Builds the day payload for hours 00..last and delivers it, unless the sink
 * already has it. With ROS on, the payload also carries the ROS windows of the
 * hours no earlier delivered payload of the day carried (or, rebuilt for a
 * last hour already delivered, the ROS hours recorded for that delivery).
 */
async function ship(
  plan: RunPlan,
  settings: BridgeSettings,
  deps: CollectJobDeps,
  clusterId: string,
  day: string,
  last: number,
  included: readonly HourMeta[],
  ds: DaySummary,
  signal?: AbortSignal,
): Promise<void> {
  try {
    let ros: RosHourRange | null = null;
    if (settings.ros) {
      ros = nextRosRange(await deps.records.rosDeliveries(clusterId, day, deps.sink.kind), last);
      ds.rosHours = ros;
      for (const name of ROS_REPORT_NAMES) {
        ds.rows[name] = ros === null ? 0 : included
          .filter((m) => m.hour >= ros!.fromHour && m.hour <= ros!.toHour)
          .reduce((n, m) => n + ((m.ros?.windows ?? 0) > 0 ? m.ros!.rows[name] : 0), 0);
      }
    }
    const uuid = manifestUuid(clusterId, day, last, REPORT_NAMES, ros);
    ds.uuid = uuid;
    const previous = await deps.records.delivered(clusterId, day, deps.sink.kind);
    if (previous && !plan.recollect) {
      if (previous.lastHour === 23 && previous.uuid === uuid) {
        ds.status = "complete";
        ds.refs = previous.parts.map((p) => p.ref);
        return;
      }
      if (previous.lastHour > last) {
        throw new BridgeError(
          "payload",
          `day ${day} was delivered with hours 00-${
            String(previous.lastHour).padStart(2, "0")
          } (uuid ${previous.uuid}), but the state now holds only 00-${
            String(last).padStart(2, "0")
          }: not shipping fewer hours (koku would ignore them); the missing hours are collected again`,
        );
      }
      if (previous.uuid === uuid && await deps.sink.has(previous, signal)) {
        ds.status = "unchanged";
        ds.refs = previous.parts.map((p) => p.ref);
        ds.bytes = previous.parts.reduce((n, p) => n + p.bytes, 0);
        return;
      }
    }
    let payload: DayPayload | null = null;
    try {
      payload = await buildDayPayload({
        store: deps.store,
        clusterId,
        day,
        lastHour: last,
        reports: REPORT_NAMES,
        rosFromHour: ros?.fromHour ?? null,
        manifestVersion: settings.manifestVersion,
        bridgeVersion: BRIDGE_VERSION,
        maxBytes: settings.maxBytes,
        spoolDir: deps.store.spoolDir,
      });
      const problems = validateManifest(JSON.parse(payload.manifest));
      if (problems.length > 0) {
        throw new BridgeError(
          "payload",
          `built manifest fails koku's rules: ${problems.join("; ")}`,
        );
      }
      ds.bytes = payload.parts.reduce((n, p) => n + p.bytes, 0);
      if (plan.dryRun) {
        ds.status = "dry-run";
        return;
      }
      const result = await deps.sink.deliver({
        clusterId,
        orgId: deps.orgOf(clusterId),
        day,
        uuid,
        lastHour: last,
        parts: payload.parts.map((p) => ({
          path: p.path,
          fileName: p.fileName,
          bytes: p.bytes,
          sha256: p.sha256,
        })),
      }, signal);
      // The ROS ledger first: a crash before the delivery record only re-sends this payload.
      await deps.records.recordRosDelivery(clusterId, day, deps.sink.kind, {
        lastHour: last,
        uuid,
        ros,
        deliveredAt: result.record.deliveredAt,
      });
      await deps.records.recordDelivery(result.record);
      ds.refs = result.record.parts.map((p) => p.ref);
      ds.queued = result.queued;
      ds.status = result.queued > 0 ? "queued" : "new";
    } finally {
      for (const p of payload?.parts ?? []) await Deno.remove(p.path).catch(() => {});
    }
  } catch (error) {
    ds.status = "failed";
    ds.error = errorInfo(error);
  }
}
