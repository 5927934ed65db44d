/**
 * The main job: for every planned cluster, collect the missing closed hours
 * of every day of its range into the state store (oldest first), then build
 * each day's cumulative payload and hand it to the sink, and move the
 * cluster's watermark. One failing cluster never stops the others.
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
  type CollectEvent,
  collectHours,
  type QueryCounter,
  type RangeQuerier,
} from "../collect/hour_collector.ts";
import { collectionParams, type PlannedQuery, planQueries } from "../collect/query_plan.ts";
import {
  REPORT_NAMES,
  type ReportName,
  ROS_REPORT_NAMES,
  type RosReportName,
} from "../collect/reports.ts";
import { type PlannedRosQuery, planRosQueries, rosPlanFingerprint } from "../collect/ros_plan.ts";
import type { BridgeSettings } from "../config.ts";
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
  readonly mode: "server" | "client";
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
}

/**
 * Runs a planned collection: flushes the sink's outbox, then every planned
 * cluster, up to `concurrency` clusters at a time.
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
  const clusters: ClusterSummary[] = new Array(plan.clusters.length);
  let next = 0;
  const worker = async () => {
    while (next < plan.clusters.length) {
      const i = next++;
      clusters[i] = await collectCluster(plan, settings, deps, plan.clusters[i]!, signal);
      deps.onClusterDone?.(clusters[i]!);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(settings.concurrency, plan.clusters.length) }, worker),
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

async function collectCluster(
  plan: RunPlan,
  settings: BridgeSettings,
  deps: CollectJobDeps,
  cp: ClusterPlan,
  signal?: AbortSignal,
): Promise<ClusterSummary> {
  const summary: ClusterSummary = {
    clusterId: cp.clusterId,
    from: formatHour(cp.fromMs),
    to: formatHour(cp.toMs),
    days: [],
    error: null,
    watermark: null,
  };
  const blocked = deps.blocked?.get(cp.clusterId);
  if (blocked !== undefined) {
    summary.error = blocked;
    const mark = await deps.records.watermark(cp.clusterId);
    summary.watermark = mark === null ? null : formatHour(mark);
    return summary;
  }
  let lease;
  try {
    lease = await deps.locks.acquire(cp.clusterId, signal);
  } catch (error) {
    summary.error = errorInfo(error);
    return summary;
  }
  try {
    const queries = planQueries(COST_QUERIES, {
      clusterLabel: settings.clusterLabel,
      clusterId: cp.clusterId,
      rateWindow: settings.rateWindow,
    });
    const rosPlan = settings.ros
      ? planRosQueries({
        clusterLabel: settings.clusterLabel,
        clusterId: cp.clusterId,
        rateWindow: settings.rateWindow,
      })
      : null;
    const params: CollectionParams = rosPlan
      ? { ...collectionParams(queries, settings), rosHash: rosPlanFingerprint(rosPlan) }
      : collectionParams(queries, settings);
    const stored = await deps.records.watermark(cp.clusterId);
    // Where the gap-free run starts for this run: the stored watermark; with none, the day
    // before the planned range; after a `--max-backfill` cut, the cut (older hours are given up).
    const start = dayStartMs(cp.fromMs) - HOUR_MS;
    let mark = stored === null
      ? start
      : cp.source === "backfill"
      ? Math.max(stored, start)
      : stored;
    let advancing = true;
    let sawData = false;
    let sawHours = false;
    // Up to date (from > to): nothing to collect, nothing to ship.
    const lastDay = cp.fromMs > cp.toMs ? -Infinity : cp.toMs;
    for (let day0 = dayStartMs(cp.fromMs); day0 <= lastDay; day0 += 24 * HOUR_MS) {
      signal?.throwIfAborted();
      const day = dayOf(day0);
      const first = Math.max(cp.fromMs, day0);
      const last = Math.min(cp.toMs, day0 + 23 * HOUR_MS);
      const ds = newDay(day);
      summary.days.push(ds);
      const outcome = await collectDay(
        plan,
        settings,
        deps,
        cp.clusterId,
        day,
        hourOf(first),
        hourOf(last),
        queries,
        rosPlan,
        params,
        ds,
        signal,
      );
      deps.onDayDone?.(cp.clusterId, ds);
      sawHours ||= outcome.touched > 0;
      sawData ||= outcome.withData > 0;
      const settled = ["new", "queued", "unchanged", "complete", "no-data"].includes(ds.status);
      if (advancing && settled && ds.lastHour !== null && !plan.dryRun) {
        const end = day0 + ds.lastHour * HOUR_MS;
        if (mark >= day0 - HOUR_MS && end > mark) mark = end;
      }
      if (ds.lastHour !== 23 || !settled) advancing = false;
      if (ds.failedHours.length > 0) break; // later hours would most likely fail the same way
    }
    if (!plan.dryRun && mark !== stored && mark >= dayStartMs(cp.fromMs)) {
      await deps.records.setWatermark(cp.clusterId, mark);
      summary.watermark = formatHour(mark);
    } else {
      summary.watermark = stored === null ? null : formatHour(stored);
    }
    if (sawHours && !sawData) {
      summary.error = await noDataError(settings, deps, cp, signal);
    }
  } catch (error) {
    summary.error = errorInfo(error);
  } finally {
    await lease.release();
  }
  return summary;
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

/** Collects and ships one cluster-day; fills `ds`. */
async function collectDay(
  plan: RunPlan,
  settings: BridgeSettings,
  deps: CollectJobDeps,
  clusterId: string,
  day: string,
  firstHour: number,
  lastHour: number,
  queries: readonly PlannedQuery[],
  rosPlan: readonly PlannedRosQuery[] | null,
  params: CollectionParams,
  ds: DaySummary,
  signal?: AbortSignal,
): Promise<{ touched: number; withData: number }> {
  let touched = 0;
  let withData = 0;
  const collect = async (hours: number[]) => {
    if (hours.length === 0) return;
    const result = await collectHours(
      {
        client: deps.client,
        store: deps.store,
        mode: settings.reduce,
        batchHours: settings.batchHours,
        now: deps.now,
        emptyHourGrace: settings.emptyHourGraceMs,
        params,
        ros: rosPlan,
        counter: deps.stats,
        ...(signal ? { signal } : {}),
        ...(deps.onEvent ? { onEvent: deps.onEvent } : {}),
      },
      queries,
      clusterId,
      day,
      hours,
    );
    ds.collectedHours.push(...result.collected);
    ds.pendingHours.push(...result.pending);
    for (const f of result.failed) {
      ds.failedHours.push({ hour: f.hour, code: f.code, message: escapeControl(f.error) });
    }
    touched += result.collected.length + result.pending.length;
  };
  const list = async () => {
    const listing = await deps.store.listHours(clusterId, day);
    for (const q of listing.quarantined) {
      ds.quarantined.push(q.path);
      deps.warn(`quarantined ${q.path}: ${q.reason}`);
    }
    return listing.hours;
  };

  let hours = await list();
  const wanted: number[] = [];
  for (let h = firstHour; h <= lastHour; h++) {
    const meta = hours.get(h);
    if (plan.recollect || !meta || !hourMatches(meta, params)) wanted.push(h);
  }
  await collect(wanted);
  hours = await list();
  withData += ds.collectedHours.filter((h) => hours.get(h)?.noData === false).length;
  // Hours collected with other parameters are not shipped (they are collected again above
  // when in range; outside the range they end the gap-free run).
  const usable = new Map<number, HourMeta>([...hours].filter(([, m]) => hourMatches(m, params)));
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
      hours = await list();
      last = contiguousLastHour(
        new Map<number, HourMeta>([...hours].filter(([, m]) => hourMatches(m, params))),
      );
    } else if (bad.length > 0) {
      last = Math.min(...bad.map((b) => b.hour)) - 1;
      if (last < 0) last = null;
    }
  }
  if (last === null) return { touched, withData };
  ds.lastHour = last;
  ds.hours = last + 1;
  const included: HourMeta[] = range(0, last).map((h) => hours.get(h)!);
  for (const name of REPORT_NAMES) {
    ds.rows[name] = included.reduce((n, m) => n + (m.rows[name] ?? 0), 0);
  }
  if (included.every((m) => m.noData)) {
    ds.status = "no-data";
    return { touched, withData };
  }
  await ship(plan, settings, deps, clusterId, day, last, included, ds, signal);
  return { touched, withData };
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
