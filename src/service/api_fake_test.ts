/**
 * An in-memory {@linkcode RunService} for the API tests (no tests of its own).
 * It validates like the real planner where the API cannot: unknown clusters
 * and reversed ranges are `ConfigError`s; a cluster of an active run is a
 * `RunConflictError`; `shuttingDown` makes `start` throw `shutting_down`.
 *
 * @module
 */

import type { RunRequest } from "../config.ts";
import { BridgeError, ConfigError } from "../model.ts";
import {
  type ClusterStatus,
  type Readiness,
  RunConflictError,
  type RunRecord,
  type RunService,
  type RunTrigger,
} from "./run_types.ts";

const ACTIVE = new Set(["queued", "running"]);

function hourKey(text: string, isTo: boolean): string {
  return text.length === 10 ? `${text}T${isTo ? "23" : "00"}` : text;
}

export class FakeRunService implements RunService {
  /** Oldest first. */
  readonly runs: RunRecord[] = [];
  readonly starts: { request: RunRequest; trigger: RunTrigger }[] = [];
  readonly configured = ["cluster-a", "cluster-b", "cluster-c"];
  shuttingDown = false;
  /** When set, every method throws it (a bug in the service). */
  failWith: Error | null = null;
  readiness: Readiness = { ok: true, checks: { state: { ok: true }, thanos: { ok: true } } };
  #seq = 0;

  #fail(): void {
    if (this.failWith) throw this.failWith;
  }

  start(request: RunRequest, trigger: RunTrigger): Promise<RunRecord> {
    this.#fail();
    if (this.shuttingDown) {
      return Promise.reject(new BridgeError("shutting_down", "the service is shutting down"));
    }
    const clusters = request.clusters ?? this.configured;
    for (const c of clusters) {
      if (!this.configured.includes(c)) {
        return Promise.reject(new ConfigError("clusters", c, "is not a configured cluster"));
      }
    }
    if (
      request.from !== undefined && request.to !== undefined &&
      hourKey(request.to, true) < hourKey(request.from, false)
    ) {
      return Promise.reject(new ConfigError("to", request.to, `is before from ${request.from}`));
    }
    for (const run of this.runs) {
      if (!ACTIVE.has(run.state)) continue;
      const busy = run.clusters.find((p) => clusters.includes(p.clusterId));
      if (busy) return Promise.reject(new RunConflictError(run.id, busy.clusterId));
    }
    this.starts.push({ request, trigger });
    const now = new Date(Date.UTC(2026, 10, 1, 12, 0, this.#seq)).toISOString();
    const record: RunRecord = {
      id: `r-${String(++this.#seq).padStart(6, "0")}`,
      trigger,
      state: "running",
      request,
      createdAt: now,
      startedAt: now,
      finishedAt: null,
      clusters: clusters.map((clusterId) => ({
        clusterId,
        state: "running",
        from: request.from ?? null,
        to: request.to ?? null,
        hoursCollected: 1,
        hoursFailed: 0,
        days: [{
          day: "2026-11-01",
          collectedHours: [0],
          pendingHours: [],
          failedHours: [],
          quarantined: [],
          status: "new",
          uuid: "4a2c1e7e-8d3b-4c1a-9f00-000000000001",
          hours: 1,
          lastHour: 0,
          rows: { pod: 3 },
          error: null,
        }] as unknown as RunRecord["clusters"][number]["days"],
        watermark: null,
        error: null,
      })),
      queries: 36,
      bytesDownloaded: 1234,
      outbox: { sent: 0, pending: 0, error: null },
      error: null,
    };
    this.runs.push(record);
    return Promise.resolve(record);
  }

  /** Finishes every active run (so new ones do not conflict). */
  finishAll(): void {
    for (const run of this.runs) {
      if (ACTIVE.has(run.state)) {
        run.state = "succeeded";
        run.finishedAt = new Date(Date.UTC(2026, 10, 1, 13)).toISOString();
        for (const c of run.clusters) c.state = "done";
      }
    }
  }

  get(id: string): RunRecord | null {
    this.#fail();
    return this.runs.find((r) => r.id === id) ?? null;
  }

  list(options: { limit: number; before?: string }): { runs: RunRecord[]; next: string | null } {
    this.#fail();
    const newest = [...this.runs].reverse();
    let start = 0;
    if (options.before !== undefined) {
      const i = newest.findIndex((r) => r.id === options.before);
      start = i < 0 ? newest.length : i + 1;
    }
    const runs = newest.slice(start, start + options.limit);
    const more = start + options.limit < newest.length;
    return { runs, next: more && runs.length > 0 ? runs[runs.length - 1]!.id : null };
  }

  cancel(id: string): Promise<RunRecord | null> {
    this.#fail();
    const run = this.runs.find((r) => r.id === id) ?? null;
    if (run && ACTIVE.has(run.state)) {
      run.state = "cancelled";
      run.finishedAt = new Date(Date.UTC(2026, 10, 1, 13)).toISOString();
      run.error = { code: "cancelled", message: "cancelled" };
    }
    return Promise.resolve(run);
  }

  #status(clusterId: string): ClusterStatus {
    return {
      clusterId,
      orgId: "1234567",
      watermark: clusterId === "cluster-a" ? "2026-11-01T09" : null,
      hoursBehind: clusterId === "cluster-a" ? 2 : null,
      lastPayload: clusterId === "cluster-a"
        ? {
          uuid: "4a2c1e7e-8d3b-4c1a-9f00-000000000001",
          day: "2026-11-01",
          lastHour: 9,
          deliveredAt: "2026-11-01T11:20:00.000Z",
          sink: "s3-kafka",
          result: "delivered",
        }
        : null,
    };
  }

  clusters(): Promise<ClusterStatus[]> {
    this.#fail();
    return Promise.resolve(this.configured.map((c) => this.#status(c)));
  }

  cluster(id: string): Promise<ClusterStatus | null> {
    this.#fail();
    return Promise.resolve(this.configured.includes(id) ? this.#status(id) : null);
  }

  ready(_timeoutMs: number): Promise<Readiness> {
    this.#fail();
    return Promise.resolve(this.readiness);
  }
}
