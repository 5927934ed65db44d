/**
 * The run manager of the service ({@linkcode RunService}): starts runs of a
 * {@linkcode Bridge} in the background, one at a time per cluster (an
 * overlapping request is a {@linkcode RunConflictError}, HTTP 409), keeps
 * each run's record up to date while it runs (per-cluster hours, days,
 * watermark, errors), persists it in the {@linkcode RunHistory} (at most
 * about once a second while running, and at the end), cancels runs, and
 * stops gracefully. It also answers the cluster status and readiness
 * questions of the HTTP API.
 *
 * A run's final state: `succeeded` (the summary is ok), `partial` (something
 * failed, but something was done), `failed` (it threw before doing anything,
 * or every cluster failed and nothing was collected or delivered),
 * `cancelled` (aborted by `cancel` or `shutdown`). Runs that were `queued` or
 * `running` when the process died are marked `interrupted` by
 * {@linkcode RunManager.init}.
 *
 * Logs go to the `["thanos-bridge", "runs"]` LogTape category; every line of
 * a run carries `runId` (and `clusterId` where it concerns one cluster).
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";
import { join } from "node:path";
import type { CollectEvent } from "../collect/hour_collector.ts";
import type { RunRequest } from "../config.ts";
import {
  assertClusterId,
  BridgeError,
  ConfigError,
  errorInfo,
  formatHour,
  HOUR_MS,
  isClusterId,
  isDay,
  type SinkKind,
} from "../model.ts";
import type { ClusterSummary, DaySummary, RunSummary } from "./collect_job.ts";
import { isActiveState, newRunId, type RunHistory } from "./run_history.ts";
import { newestReadyHour, planRun, type RunPlan } from "./run_plan.ts";
import {
  type ClusterProgress,
  type ClusterStatus,
  type LastPayload,
  type Readiness,
  RunConflictError,
  runDiscovery,
  type RunRecord,
  type RunService,
  type RunState,
  type RunTrigger,
} from "./run_types.ts";
import type { Bridge, BridgeRunSummary } from "./runtime.ts";

/**
 * What the run manager reports to the self-metrics. Every method is called
 * synchronously and must not throw.
 */
export interface RunMetrics {
  /** A run was accepted (planned and started) with this trigger. */
  runStarted(trigger: RunTrigger): void;
  /**
   * A run ended: `record.state` is its final state (`succeeded`, `partial`,
   * `failed`, `cancelled`, or `interrupted` for a run found active at start);
   * `summary` is null when the bridge threw or the run was found interrupted;
   * `seconds` is its wall time, NaN when unknown (interrupted).
   */
  runFinished(record: RunRecord, summary: RunSummary | null, seconds: number): void;
  /** One cluster-hour was committed. */
  hourCollected(clusterId: string): void;
  /** One cluster-hour failed (not counted for hours stopped by a cancellation). */
  hourFailed(clusterId: string): void;
  /**
   * A day payload's outcome: `result` is the day's status (`new`, `queued`,
   * `unchanged`, `complete`, `dry-run`, `failed`); `bytes` its size (0 when
   * nothing was built). Not called for days without a payload (`none`, `no-data`).
   */
  payload(sink: SinkKind, result: string, bytes: number): void;
  /** A cluster finished a run without any error, at `atSeconds` (Unix seconds). */
  clusterSucceeded(clusterId: string, atSeconds: number): void;
  /** The cluster's whole hours behind the newest ready hour; null without a watermark. */
  hoursBehind(clusterId: string, hours: number | null): void;
  /** Announcements waiting in the outbox (s3-kafka sink), counted after each run. */
  outbox(pending: number): void;
}

/** What a {@linkcode RunManager} is built from. */
export interface RunManagerOptions {
  readonly bridge: Bridge;
  readonly history: RunHistory;
  /** Clock of records, plans and cluster status (default: the system clock). */
  readonly now?: () => Date;
  readonly metrics?: RunMetrics;
  /** Default: `getLogger(["thanos-bridge", "runs"])`. */
  readonly logger?: Logger;
  /** Least time between two progress writes of a running run's record (default 1000 ms). */
  readonly progressIntervalMs?: number;
  /** How long {@linkcode RunManager.cancel} waits for the run to stop (default 5000 ms). */
  readonly cancelWaitMs?: number;
}

/** A run in progress. */
interface ActiveRun {
  readonly record: RunRecord;
  readonly controller: AbortController;
  readonly log: Logger;
  readonly started: number;
  /** Settles once the run is finalised and its record written. */
  done: Promise<void>;
  finalized: boolean;
  saveTimer: ReturnType<typeof setTimeout> | null;
  lastSave: number;
}

/** Day statuses that mean "a payload was built or is in the sink". */
const DONE_STATUSES = new Set(["new", "queued", "unchanged", "complete", "dry-run", "no-data"]);

/** Whether a cluster of a summary finished without any error. */
function clusterOk(c: ClusterSummary): boolean {
  return c.error === null &&
    c.days.every((d) => d.error === null && d.failedHours.length === 0 && d.queued === 0);
}

/**
 * The final state of a run from its outcome. Pure.
 *
 * @param summary The bridge's summary, or null when `bridge.run` threw.
 * @param aborted Whether the run's signal was aborted.
 *
 * @example
 * ```ts
 * import { finalState } from "./run_manager.ts";
 * finalState(null, false); // "failed"
 * finalState(null, true); // "cancelled"
 * ```
 */
export function finalState(summary: RunSummary | null, aborted: boolean): RunState {
  if (aborted) return "cancelled";
  if (summary === null) return "failed";
  if (summary.ok) return "succeeded";
  const somethingDone = summary.clusters.some((c) =>
    clusterOk(c) ||
    c.days.some((d) => d.collectedHours.length > 0 || DONE_STATUSES.has(d.status))
  );
  return somethingDone ? "partial" : "failed";
}

/** Hours of a summary's days that failed for another reason than a cancellation. */
function failedHours(days: readonly DaySummary[]): number {
  return days.reduce((n, d) => n + d.failedHours.filter((f) => f.code !== "cancelled").length, 0);
}

/**
 * Whole hours between a watermark and the newest ready hour (≥ 0), or null
 * without a watermark. Pure.
 *
 * @example
 * ```ts
 * import { hoursBehind } from "./run_manager.ts";
 * const now = new Date("2026-11-01T12:30:00Z"); // newest ready hour (10 min settle): 11:00
 * hoursBehind(Date.parse("2026-11-01T08:00:00Z"), now, 600_000); // 3
 * ```
 */
export function hoursBehind(watermark: number | null, now: Date, settleMs: number): number | null {
  if (watermark === null) return null;
  const newest = newestReadyHour(now, settleMs).getTime();
  return Math.max(0, Math.floor((newest - watermark) / HOUR_MS));
}

/** Resolves true when `p` settles within `ms`, false otherwise; leaves no timer behind. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Uuids of the announcements waiting in an outbox folder (unreadable files are skipped). */
async function outboxUuids(dir: string): Promise<Set<string>> {
  const uuids = new Set<string>();
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !/^\d{15}-\d{6}-[0-9a-f]{8}\.json$/.test(entry.name)) continue;
      try {
        const message = JSON.parse(await Deno.readTextFile(join(dir, entry.name)));
        const id = message?.value?.request_id;
        if (typeof id === "string") uuids.add(id);
      } catch {
        // a message being removed or damaged: the sink reports it
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return uuids;
}

/** Number of messages in an outbox folder. */
async function outboxCount(dir: string): Promise<number> {
  let n = 0;
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && /^\d{15}-\d{6}-[0-9a-f]{8}\.json$/.test(entry.name)) n++;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return n;
}

/**
 * Runs, cancels and records collections of a {@linkcode Bridge}; see the
 * module documentation. Call {@linkcode init} once before use (`start`
 * waits for it too).
 *
 * @example
 * ```ts ignore
 * import { RunManager } from "./run_manager.ts";
 * import { RunHistory } from "./run_history.ts";
 * const history = new RunHistory(`${settings.stateDir}/runs`, 100);
 * const manager = new RunManager({ bridge, history, now: () => new Date() });
 * await manager.init();
 * const run = await manager.start({}, "api");
 * manager.get(run.id)?.state; // "running"
 * await manager.shutdown(30_000);
 * ```
 */
export class RunManager implements RunService {
  readonly #bridge: Bridge;
  readonly #history: RunHistory;
  readonly #now: () => Date;
  readonly #metrics: RunMetrics | null;
  readonly #log: Logger;
  readonly #progressIntervalMs: number;
  readonly #cancelWaitMs: number;
  readonly #active = new Map<string, ActiveRun>();
  /** Cluster id → id of the active run that holds it (including runs being planned). */
  readonly #clusterRuns = new Map<string, string>();
  #lastId: string | null = null;
  /** Clusters that discovery found in this process (shown by `GET /clusters`). */
  readonly #discovered = new Set<string>();
  #stopping = false;
  #init: Promise<void> | null = null;

  constructor(options: RunManagerOptions) {
    this.#bridge = options.bridge;
    this.#history = options.history;
    this.#now = options.now ?? (() => new Date());
    this.#metrics = options.metrics ?? null;
    this.#log = options.logger ?? getLogger(["thanos-bridge", "runs"]);
    this.#progressIntervalMs = options.progressIntervalMs ?? 1000;
    this.#cancelWaitMs = options.cancelWaitMs ?? 5000;
  }

  /**
   * Loads the history and marks every run that was `queued` or `running`
   * when the process died as `interrupted` (persisted). Idempotent.
   */
  init(): Promise<void> {
    this.#init ??= (async () => {
      await this.#history.load();
      for (const record of this.#history.all()) {
        if (!isActiveState(record.state) || this.#active.has(record.id)) continue;
        record.state = "interrupted";
        record.error ??= {
          code: "internal",
          message:
            "thanos-bridge stopped while this run was active; the next run collects what it missed",
        };
        for (const c of record.clusters) if (c.state !== "done") c.state = "done";
        this.#log.with({ runId: record.id }).warn(
          "run {runId} was active when the process stopped: marked interrupted",
          { runId: record.id },
        );
        this.#metrics?.runFinished(record, null, NaN);
        await this.#history.save(record);
      }
    })();
    return this.#init;
  }

  /** Whether `shutdown` was called. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** Ids of the runs in progress. */
  activeRuns(): string[] {
    return [...this.#active.keys()];
  }

  #ensureAccepting(): void {
    if (this.#stopping) {
      throw new BridgeError("shutting_down", "thanos-bridge is shutting down: no new runs");
    }
  }

  /**
   * Plans the request (a `ConfigError` for a bad one, thrown before anything
   * starts), checks that none of its clusters is in an active run
   * ({@linkcode RunConflictError}), then starts it in the background and
   * returns its record (state `running`). While shutting down, throws
   * `BridgeError("shutting_down")`.
   */
  async start(request: RunRequest, trigger: RunTrigger): Promise<RunRecord> {
    await this.init();
    this.#ensureAccepting();
    const settings = this.#bridge.settings;
    // A request without clusters runs on what discovery finds now.
    const discovery = request.clusters === undefined ? await this.#bridge.discover() : undefined;
    const clusters = [
      ...new Set(request.clusters ?? discovery!.clusters.map((c) => c.clusterId)),
    ];
    if (discovery !== undefined && clusters.length === 0) {
      throw new ConfigError(
        "clusters",
        undefined,
        `is empty: discovery (${
          settings.discovery.sources.join(", ")
        }) found no cluster to collect (run thanos-bridge doctor)`,
      );
    }
    for (const c of clusters) assertClusterId(c);
    for (const c of discovery?.clusters ?? []) this.#discovered.add(c.clusterId);
    const req: RunRequest = { ...request, clusters };
    const watermarks = new Map<string, number>();
    for (const c of clusters) {
      const mark = await this.#bridge.records.watermark(c);
      if (mark !== null) watermarks.set(c, mark);
    }
    const plan = planRun(req, settings, this.#now(), watermarks);

    // From here to the registration nothing awaits: the conflict check is atomic.
    this.#ensureAccepting();
    for (const c of clusters) {
      const holder = this.#clusterRuns.get(c);
      if (holder !== undefined) throw new RunConflictError(holder, c);
    }
    const newest = this.#history.newestId();
    const after = newest !== null && (this.#lastId === null || newest > this.#lastId)
      ? newest
      : this.#lastId;
    const id = newRunId(this.#now(), after);
    this.#lastId = id;
    const created = this.#now().toISOString();
    const record: RunRecord = {
      id,
      trigger,
      state: "running",
      request: req,
      createdAt: created,
      startedAt: created,
      finishedAt: null,
      clusters: [],
      queries: 0,
      bytesDownloaded: 0,
      outbox: null,
      error: null,
      ...(discovery !== undefined ? { discovery: runDiscovery(discovery) } : {}),
    };
    this.#applyPlan(record, plan);
    const controller = new AbortController();
    const run: ActiveRun = {
      record,
      controller,
      log: this.#log.with({ runId: id }),
      started: performance.now(),
      done: Promise.resolve(),
      finalized: false,
      saveTimer: null,
      lastSave: performance.now(),
    };
    for (const c of clusters) this.#clusterRuns.set(c, id);
    this.#active.set(id, run);

    // Start the bridge; wait until it has planned (or failed before planning).
    const planned = Promise.withResolvers<void>();
    let wasPlanned = false;
    let rejected: ConfigError | null = null;
    const accepted = () => {
      run.log.info("run {runId} started ({trigger}): {clusters}", {
        runId: id,
        trigger,
        clusters: record.clusters.map((c) => `${c.clusterId} ${c.from}..${c.to}`).join(", "),
        request: req,
      });
      this.#metrics?.runStarted(trigger);
    };
    // Live figures: every query of the run adds to this counter while it runs.
    const counter = {
      get queries() {
        return record.queries;
      },
      set queries(n: number) {
        record.queries = n;
      },
      attempts: 0,
      get bytes() {
        return record.bytesDownloaded;
      },
      set bytes(n: number) {
        record.bytesDownloaded = n;
      },
    };
    const outcome = this.#bridge.run(req, {
      signal: controller.signal,
      ...(discovery !== undefined ? { discovery } : {}),
      counter,
      onPlan: (p) => {
        wasPlanned = true;
        this.#applyPlan(record, p);
        accepted();
        planned.resolve();
      },
      onEvent: (event) => this.#onEvent(run, event),
      onDayDone: (clusterId, day) => this.#onDayDone(run, clusterId, day),
      onClusterDone: (summary) => this.#onClusterDone(run, summary),
    }).then(
      (summary) => ({ summary, error: null as unknown }),
      (error: unknown) => ({ summary: null, error }),
    );
    run.done = outcome.then(async (o) => {
      if (!wasPlanned && o.summary === null && o.error instanceof ConfigError) {
        // A bad request found by the bridge itself: no run; start() throws the error.
        rejected = o.error;
        run.finalized = true;
        this.#unregister(run);
        return;
      }
      if (!wasPlanned) accepted();
      await this.#finish(run, o.summary, o.error);
    });
    await Promise.race([planned.promise, run.done]);
    if (rejected !== null) throw rejected;
    if (!run.finalized) {
      try {
        await this.#history.save(record);
      } catch (error) {
        run.log.error("cannot write the record of run {runId}: {error}", {
          runId: id,
          error: errorInfo(error).message,
        });
      }
    }
    return structuredClone(record);
  }

  #applyPlan(record: RunRecord, plan: RunPlan): void {
    const old = new Map(record.clusters.map((c) => [c.clusterId, c]));
    record.clusters = plan.clusters.map((cp): ClusterProgress => {
      const previous = old.get(cp.clusterId);
      return {
        clusterId: cp.clusterId,
        state: previous?.state ?? "waiting",
        from: formatHour(cp.fromMs),
        to: formatHour(cp.toMs),
        hoursCollected: previous?.hoursCollected ?? 0,
        hoursFailed: previous?.hoursFailed ?? 0,
        days: previous?.days ?? [],
        watermark: previous?.watermark ?? null,
        error: previous?.error ?? null,
      };
    });
  }

  #progress(run: ActiveRun, clusterId: string): ClusterProgress | null {
    const cp = run.record.clusters.find((c) => c.clusterId === clusterId) ?? null;
    if (cp !== null && cp.state === "waiting") cp.state = "running";
    return cp;
  }

  #onEvent(run: ActiveRun, event: CollectEvent): void {
    if (run.finalized) return;
    const cp = this.#progress(run, event.clusterId);
    if (cp === null) return;
    if (event.type === "hour-done") {
      cp.hoursCollected++;
      this.#metrics?.hourCollected(event.clusterId);
    } else if (!run.controller.signal.aborted) {
      cp.hoursFailed++;
      this.#metrics?.hourFailed(event.clusterId);
      run.log.with({ clusterId: event.clusterId }).warn(
        "hour {day}T{hour} of {clusterId} failed: {error}",
        {
          clusterId: event.clusterId,
          day: event.day,
          hour: String(event.hour).padStart(2, "0"),
          error: event.error,
        },
      );
    }
    this.#scheduleSave(run);
  }

  #onDayDone(run: ActiveRun, clusterId: string, day: DaySummary): void {
    if (run.finalized) return;
    const cp = this.#progress(run, clusterId);
    if (cp === null) return;
    const copy = structuredClone(day);
    const i = cp.days.findIndex((d) => d.day === day.day);
    if (i >= 0) cp.days[i] = copy;
    else cp.days.push(copy);
    if (day.status !== "none" && day.status !== "no-data") {
      this.#metrics?.payload(this.#bridge.sink.kind, day.status, day.bytes);
    }
    const fields = {
      clusterId,
      day: day.day,
      status: day.status,
      hours: day.hours,
      uuid: day.uuid,
      bytes: day.bytes,
      collected: day.collectedHours.length,
      failed: day.failedHours.length,
    };
    const log = run.log.with({ clusterId });
    if (day.error !== null) {
      log.warn("day {day} of {clusterId}: {status} ({error})", {
        ...fields,
        error: day.error.message,
        code: day.error.code,
      });
    } else {
      log.info("day {day} of {clusterId}: {status}, {hours} hours", fields);
    }
    this.#scheduleSave(run);
  }

  #onClusterDone(run: ActiveRun, summary: ClusterSummary): void {
    if (run.finalized) return;
    const cp = this.#progress(run, summary.clusterId);
    if (cp === null) return;
    this.#applyClusterSummary(cp, summary);
    const log = run.log.with({ clusterId: summary.clusterId });
    if (clusterOk(summary) && !run.controller.signal.aborted) {
      this.#metrics?.clusterSucceeded(summary.clusterId, this.#now().getTime() / 1000);
    }
    if (summary.watermark !== null) {
      this.#metrics?.hoursBehind(
        summary.clusterId,
        hoursBehind(
          Date.parse(`${summary.watermark}:00:00Z`),
          this.#now(),
          this.#bridge.settings.settleDelayMs,
        ),
      );
    }
    if (summary.error !== null) {
      log.warn("cluster {clusterId} done with an error: {error}", {
        clusterId: summary.clusterId,
        error: summary.error.message,
        code: summary.error.code,
        watermark: summary.watermark,
      });
    } else {
      log.info("cluster {clusterId} done; watermark {watermark}", {
        clusterId: summary.clusterId,
        watermark: summary.watermark,
        days: summary.days.length,
      });
    }
    this.#scheduleSave(run);
  }

  #applyClusterSummary(cp: ClusterProgress, summary: ClusterSummary): void {
    cp.state = "done";
    cp.from = summary.from;
    cp.to = summary.to;
    cp.days = structuredClone(summary.days);
    cp.hoursCollected = summary.days.reduce((n, d) => n + d.collectedHours.length, 0);
    cp.hoursFailed = failedHours(summary.days);
    cp.watermark = summary.watermark;
    cp.error = summary.error === null ? null : { ...summary.error };
  }

  /** Writes the record at most every `progressIntervalMs` while the run goes on. */
  #scheduleSave(run: ActiveRun): void {
    if (run.finalized || run.saveTimer !== null) return;
    const wait = Math.max(0, run.lastSave + this.#progressIntervalMs - performance.now());
    run.saveTimer = setTimeout(() => {
      run.saveTimer = null;
      if (run.finalized) return;
      run.lastSave = performance.now();
      this.#history.save(run.record).catch((error) => {
        run.log.warn("cannot write the progress of run {runId}: {error}", {
          runId: run.record.id,
          error: errorInfo(error).message,
        });
      });
    }, wait);
  }

  #unregister(run: ActiveRun): void {
    if (run.saveTimer !== null) clearTimeout(run.saveTimer);
    run.saveTimer = null;
    this.#active.delete(run.record.id);
    for (const [c, id] of this.#clusterRuns) {
      if (id === run.record.id) this.#clusterRuns.delete(c);
    }
  }

  /** Sets the final state from the outcome, writes the record, reports it. */
  async #finish(run: ActiveRun, summary: RunSummary | null, error: unknown): Promise<void> {
    if (run.finalized) return;
    run.finalized = true;
    const record = run.record;
    const aborted = run.controller.signal.aborted;
    record.finishedAt = this.#now().toISOString();
    if (summary !== null) {
      record.queries = summary.queries;
      record.bytesDownloaded = summary.bytesDownloaded;
      record.outbox = { ...summary.outbox };
      const registration = (summary as BridgeRunSummary).registration;
      if (registration !== undefined) record.registration = registration;
      if (summary.batching !== undefined) record.batching = summary.batching;
      if (summary.local !== undefined) record.local = summary.local;
      for (const c of summary.clusters) {
        const cp = record.clusters.find((p) => p.clusterId === c.clusterId);
        if (cp) this.#applyClusterSummary(cp, c);
      }
    }
    record.state = finalState(summary, aborted);
    if (aborted) {
      record.error = errorInfo(run.controller.signal.reason);
      for (const cp of record.clusters) cp.state = "done";
    } else if (summary === null) {
      record.error = errorInfo(error);
      for (const cp of record.clusters) cp.state = "done";
    } else if (record.state === "failed") {
      const first = summary.clusters.map((c) =>
        c.error ?? c.days.find((d) => d.error !== null)?.error ??
          c.days.flatMap((d) => d.failedHours)[0] ?? null
      ).find((e) => e !== null);
      record.error = first ? { code: first.code, message: first.message } : null;
    }
    this.#unregister(run);
    const seconds = (performance.now() - run.started) / 1000;
    try {
      await this.#history.save(record);
    } catch (e) {
      run.log.error("cannot write the record of run {runId}: {error}", {
        runId: record.id,
        error: errorInfo(e).message,
      });
    }
    this.#metrics?.runFinished(record, summary, seconds);
    if (this.#bridge.sink.kind === "s3-kafka" && this.#metrics !== null) {
      try {
        this.#metrics.outbox(await outboxCount(join(this.#bridge.settings.stateDir, "outbox")));
      } catch {
        // the gauge keeps its last value
      }
    }
    const fields = {
      runId: record.id,
      state: record.state,
      seconds: Math.round(seconds * 1000) / 1000,
      queries: record.queries,
      bytesDownloaded: record.bytesDownloaded,
      hoursCollected: record.clusters.reduce((n, c) => n + c.hoursCollected, 0),
      hoursFailed: record.clusters.reduce((n, c) => n + c.hoursFailed, 0),
    };
    if (record.state === "succeeded") {
      run.log.info("run {runId} {state} in {seconds} s", fields);
    } else {
      run.log.warn("run {runId} {state} in {seconds} s: {error}", {
        ...fields,
        error: record.error?.message ?? "see its clusters",
        code: record.error?.code ?? null,
      });
    }
  }

  /** A run by id (a copy), or null. */
  get(id: string): RunRecord | null {
    const r = this.#active.get(id)?.record ?? this.#history.get(id);
    return r ? structuredClone(r) : null;
  }

  /**
   * Resolves once the run has ended and its record is written: its final
   * record (a copy); at once for a finished run; null for an unknown id.
   */
  async settled(id: string): Promise<RunRecord | null> {
    await this.#active.get(id)?.done;
    return this.get(id);
  }

  /** Runs, newest first (copies); `next` is the `before` of the next page, null on the last. */
  list(options: { limit: number; before?: string }): { runs: RunRecord[]; next: string | null } {
    const page = this.#history.list(options);
    return { runs: page.runs.map((r) => structuredClone(r)), next: page.next };
  }

  /**
   * Cancels an active run through its signal and waits (up to
   * `cancelWaitMs`) until it has stopped; returns its record, then in state
   * `cancelled` (still `running` if it did not stop in time). A finished run
   * is returned unchanged; an unknown id gives null.
   */
  async cancel(id: string): Promise<RunRecord | null> {
    const run = this.#active.get(id);
    if (run === undefined) return this.get(id);
    if (!run.controller.signal.aborted) {
      run.log.info("cancelling run {runId}", { runId: id });
      run.controller.abort(new BridgeError("cancelled", `run ${id} was cancelled on request`));
    }
    await within(run.done, this.#cancelWaitMs);
    return structuredClone(run.record);
  }

  /**
   * Stops: refuses new runs (`shutting_down`), aborts every active run through
   * its signal, waits for them up to `graceMs`, and writes their final
   * records (`cancelled`; a run that has not unwound by then is recorded as
   * cancelled anyway). Resolves once every history write is done. The bridge
   * itself is the caller's to close.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.#stopping = true;
    await this.#init?.catch(() => {});
    const runs = [...this.#active.values()];
    for (const run of runs) {
      if (!run.controller.signal.aborted) {
        run.log.info("aborting run {runId}: shutting down", { runId: run.record.id });
        run.controller.abort(new BridgeError("cancelled", "thanos-bridge is shutting down"));
      }
    }
    const stopped = await within(Promise.all(runs.map((r) => r.done)), graceMs);
    if (!stopped) {
      for (const run of runs) {
        if (run.finalized) continue;
        run.finalized = true;
        const record = run.record;
        record.state = "cancelled";
        record.finishedAt = this.#now().toISOString();
        record.error = {
          code: "cancelled",
          message: `thanos-bridge is shutting down; the run did not stop within ${graceMs} ms`,
        };
        for (const cp of record.clusters) cp.state = "done";
        this.#unregister(run);
        run.log.warn("run {runId} did not stop within the grace of {graceMs} ms", {
          runId: record.id,
          graceMs,
        });
        this.#metrics?.runFinished(record, null, (performance.now() - run.started) / 1000);
        await this.#history.save(record).catch((error) => {
          run.log.error("cannot write the record of run {runId}: {error}", {
            runId: record.id,
            error: errorInfo(error).message,
          });
        });
      }
    }
    await this.#history.flush();
  }

  /** Every configured cluster and every cluster folder in the state, sorted by id. */
  async clusters(): Promise<ClusterStatus[]> {
    const ids = new Set([...this.#bridge.settings.clusters, ...this.#discovered]);
    try {
      for await (const entry of Deno.readDir(this.#bridge.settings.stateDir)) {
        if (entry.isDirectory && isClusterId(entry.name)) ids.add(entry.name);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const queued = await this.#queuedUuids();
    const out: ClusterStatus[] = [];
    for (const id of [...ids].sort()) out.push(await this.#status(id, queued));
    return out;
  }

  /** One cluster's status, or null when it is neither configured nor in the state. */
  async cluster(id: string): Promise<ClusterStatus | null> {
    if (!isClusterId(id)) return null;
    if (!this.#bridge.settings.clusters.includes(id) && !this.#discovered.has(id)) {
      try {
        if (!(await Deno.stat(join(this.#bridge.settings.stateDir, id))).isDirectory) return null;
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return null;
        throw error;
      }
    }
    return await this.#status(id, await this.#queuedUuids());
  }

  async #queuedUuids(): Promise<Set<string>> {
    if (this.#bridge.sink.kind !== "s3-kafka") return new Set();
    return await outboxUuids(join(this.#bridge.settings.stateDir, "outbox"));
  }

  async #status(clusterId: string, queued: ReadonlySet<string>): Promise<ClusterStatus> {
    const { records, settings, sink } = this.#bridge;
    const mark = await records.watermark(clusterId);
    const behind = hoursBehind(mark, this.#now(), settings.settleDelayMs);
    this.#metrics?.hoursBehind(clusterId, behind);
    const days: string[] = [];
    try {
      for await (const entry of Deno.readDir(join(settings.stateDir, clusterId))) {
        if (entry.isDirectory && isDay(entry.name)) days.push(entry.name);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    let lastPayload: LastPayload | null = null;
    for (const day of days.sort().reverse()) {
      const rec = await records.delivered(clusterId, day, sink.kind);
      if (rec === null) continue;
      lastPayload = {
        uuid: rec.uuid,
        day: rec.day,
        lastHour: rec.lastHour,
        deliveredAt: rec.deliveredAt,
        sink: rec.sink,
        result: queued.has(rec.uuid) ? "queued" : "delivered",
      };
      break;
    }
    return {
      clusterId,
      orgId: this.#bridge.orgOf(clusterId),
      watermark: mark === null ? null : formatHour(mark),
      hoursBehind: behind,
      lastPayload,
    };
  }

  /**
   * Readiness: `settings` (valid once constructed), `state` (a probe file can
   * be written and removed in the state folder), `thanos` (answers a query),
   * `accepting` (not shutting down), each within `timeoutMs`.
   */
  async ready(timeoutMs: number): Promise<Readiness> {
    const [state, thanos] = await Promise.all([
      this.#probeState(timeoutMs),
      this.#bridge.ping(timeoutMs).catch((error) => ({
        ok: false,
        message: errorInfo(error).message,
      })),
    ]);
    const checks: Record<string, { ok: boolean; message?: string }> = {
      settings: { ok: true },
      state,
      thanos,
      accepting: this.#stopping ? { ok: false, message: "shutting down" } : { ok: true },
    };
    return { ok: Object.values(checks).every((c) => c.ok), checks };
  }

  async #probeState(timeoutMs: number): Promise<{ ok: boolean; message?: string }> {
    const path = join(
      this.#bridge.settings.stateDir,
      `.ready-${Deno.pid}-${crypto.randomUUID()}`,
    );
    const probe = (async () => {
      await Deno.writeTextFile(path, "");
      await Deno.remove(path);
    })();
    let result: { ok: boolean; message?: string } = {
      ok: false,
      message: `no answer within ${timeoutMs} ms`,
    };
    const settled = await within(
      probe.then(
        () => result = { ok: true },
        (error: unknown) =>
          result = {
            ok: false,
            message: `state folder is not writable: ${
              error instanceof Error ? error.message : String(error)
            }`,
          },
      ),
      timeoutMs,
    );
    if (!settled) probe.catch(() => {}).finally(() => Deno.remove(path).catch(() => {}));
    return result;
  }
}
