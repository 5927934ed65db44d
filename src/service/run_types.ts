/**
 * The models of the long-running service: a run's record (state, progress,
 * figures), a cluster's status, and {@linkcode RunService}, what the HTTP API
 * and the scheduler need from the run manager.
 *
 * @module
 */

import type { BatchingSummary, LocalSummary } from "./collect_job.ts";
import type { RunRequest } from "../config.ts";
import type { FlushResult } from "../deliver/sink.ts";
import { BridgeError, type SinkKind } from "../model.ts";
import type { DiscoveryResult, SkippedCluster, SourceReport } from "./cluster_discovery.ts";
import type { DaySummary, ErrorInfo } from "./collect_job.ts";
import type { RegistrationOutcome } from "./source_registry.ts";

/** Who started a run. */
export type RunTrigger = "schedule" | "api";

/** Where a run is in its life. */
export type RunState =
  /** Accepted, waiting for its turn. */
  | "queued"
  | "running"
  /** Everything collected and delivered. */
  | "succeeded"
  /** Finished, but some clusters, days or hours failed (they are retried by the next run). */
  | "partial"
  /** Nothing was done (a bad request found late, a fatal error). */
  | "failed"
  /** Cancelled (`DELETE /runs/{id}` or shutdown). */
  | "cancelled"
  /** It was running when the process died. */
  | "interrupted";

/** Progress and result of one cluster within a run. */
export interface ClusterProgress {
  readonly clusterId: string;
  state: "waiting" | "running" | "done";
  /** First and last hour planned, `YYYY-MM-DDTHH` (from > to: up to date). */
  from: string | null;
  to: string | null;
  /** Hours committed so far by this run. */
  hoursCollected: number;
  /** Hours that failed so far in this run. */
  hoursFailed: number;
  /** Days done so far (collected and shipped, or failed), oldest first. */
  days: DaySummary[];
  /** The cluster's watermark after the run. */
  watermark: string | null;
  error: ErrorInfo | null;
}

/** A run, as `GET /runs/{id}` shows it and the run history keeps it. */
export interface RunRecord {
  readonly id: string;
  readonly trigger: RunTrigger;
  state: RunState;
  readonly request: RunRequest;
  /** ISO 8601 times. */
  readonly createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  clusters: ClusterProgress[];
  /** Queries sent to Thanos by this run, and answer bytes. */
  queries: number;
  bytesDownloaded: number;
  /** Outbox flush at the start of the run. */
  outbox: FlushResult | null;
  /** A run-level error (bad request found late, cancelled, fatal). */
  error: ErrorInfo | null;
  /** How the clusters were found (absent when the request named them). */
  discovery?: RunDiscovery;
  /** koku source registration (absent when it is off). */
  registration?: RegistrationOutcome;
  /** How clusters shared queries (absent until the run collected). */
  batching?: BatchingSummary;
  /** Local mode's semantics, self-checks and server-evaluated queries (`--reduce local` only). */
  local?: LocalSummary;
}

/** What a run's discovery found, as its record keeps it. */
export interface RunDiscovery {
  /** One per source: clusters found, or why it failed. */
  readonly sources: readonly SourceReport[];
  /** Clusters after the include/exclude filter. */
  readonly clusters: number;
  /** What sources could not use (e.g. a ManagedCluster without an id claim), at most 100. */
  readonly skipped: readonly SkippedCluster[];
  /** Clusters the include/exclude filter left out. */
  readonly excluded: number;
}

/**
 * The compact form of a discovery result a run record keeps.
 *
 * @example
 * ```ts
 * import { runDiscovery } from "./run_types.ts";
 * runDiscovery({ clusters: [], sources: [{ kind: "static", found: 0 }], skipped: [], excluded: [] });
 * // { sources: [{ kind: "static", found: 0 }], clusters: 0, skipped: [], excluded: 0 }
 * ```
 */
export function runDiscovery(result: DiscoveryResult): RunDiscovery {
  return {
    sources: result.sources,
    clusters: result.clusters.length,
    skipped: result.skipped.slice(0, 100),
    excluded: result.excluded.length,
  };
}

/** The newest delivery of a cluster. */
export interface LastPayload {
  readonly uuid: string;
  readonly day: string;
  readonly lastHour: number;
  readonly deliveredAt: string;
  readonly sink: SinkKind;
  /** `delivered`, or `queued` while its announcement waits in the outbox. */
  readonly result: string;
}

/** What `GET /clusters` shows of one cluster. */
export interface ClusterStatus {
  readonly clusterId: string;
  readonly orgId: string;
  /** `YYYY-MM-DDTHH`, or null before the first delivery. */
  readonly watermark: string | null;
  /** Whole hours between the watermark and the newest ready hour (null without a watermark). */
  readonly hoursBehind: number | null;
  readonly lastPayload: LastPayload | null;
}

/** Result of a readiness check. */
export interface Readiness {
  readonly ok: boolean;
  readonly checks: Record<string, { ok: boolean; message?: string }>;
}

/**
 * A run that overlaps an active run for one of its clusters (HTTP 409).
 *
 * @example
 * ```ts
 * import { RunConflictError } from "./run_types.ts";
 * const e = new RunConflictError("r-1", "cluster-a");
 * e.code; // "run_conflict"
 * ```
 */
export class RunConflictError extends BridgeError {
  readonly activeRunId: string;
  readonly clusterId: string;

  constructor(activeRunId: string, clusterId: string) {
    super("run_conflict", `cluster ${clusterId} is already being collected by run ${activeRunId}`);
    this.activeRunId = activeRunId;
    this.clusterId = clusterId;
  }

  override get name(): string {
    return "RunConflictError";
  }
}

/** What the HTTP API and the scheduler need from the run manager. */
export interface RunService {
  /**
   * Validates and plans the request (a `ConfigError` for a bad one), then
   * starts the run in the background and returns its record (`queued` or
   * `running`). Throws {@linkcode RunConflictError} when one of its clusters
   * is in an active run, and `BridgeError("shutting_down")` while stopping.
   */
  start(request: RunRequest, trigger: RunTrigger): Promise<RunRecord>;
  /** A run by id (active or from the history), or null. */
  get(id: string): RunRecord | null;
  /** Runs, newest first; `before` is the id of the last run of the previous page. */
  list(options: { limit: number; before?: string }): { runs: RunRecord[]; next: string | null };
  /** Cancels an active run (no-op for a finished one); null for an unknown id. */
  cancel(id: string): Promise<RunRecord | null>;
  /** Every configured cluster (and any seen in the state), sorted by id. */
  clusters(): Promise<ClusterStatus[]>;
  /** One cluster, or null when it is neither configured nor in the state. */
  cluster(id: string): Promise<ClusterStatus | null>;
  /** Settings valid, state writable, Thanos answering (within `timeoutMs`). */
  ready(timeoutMs: number): Promise<Readiness>;
}
