/**
 * koku source registration for runs (`--register-sources`): before a run
 * collects, every cluster without a confirmed koku OCP source gets one
 * ({@linkcode registerSources}, contract §5.12). Confirmed sources are
 * remembered in `<state>/koku-sources.json` and checked again after a day, so
 * a run on a thousand known clusters sends no request, and a second pass
 * soon after a first never depends on koku's cached source list.
 *
 * Passes are serialised within the process and, through an exclusive lock on
 * `<state>/koku-sources.lock`, across processes sharing the state folder.
 *
 * A cluster whose registration failed (a name taken by another cluster, koku
 * refusing) is blocked for the run: koku would drop its payloads. It keeps its
 * watermark, so the next run tries again.
 *
 * @module
 */

import { join } from "node:path";
import {
  type KokuCluster,
  registerSources,
  type RegisterSourcesOptions,
} from "../deliver/koku_sources.ts";
import { readJsonFile, writeFileAtomic } from "../fs_atomic.ts";
import { BridgeError, errorInfo } from "../model.ts";
import type { ErrorInfo } from "./collect_job.ts";

/** How long a confirmed source is trusted before it is checked again. */
export const RECHECK_AFTER_MS = 24 * 3_600_000;

/** One confirmed source in the state file. */
interface Confirmed {
  readonly orgId: string;
  readonly sourceId: string;
  readonly name: string;
  /** When koku last confirmed it, ISO time. */
  readonly confirmedAt: string;
}

/** What one run's registration did. */
export interface RegistrationOutcome {
  /** Sources created by this run. */
  readonly created: readonly { clusterId: string; name: string; sourceId: string }[];
  /** Clusters whose source was found in koku by this run. */
  readonly confirmed: number;
  /** Clusters whose source was confirmed less than a day ago (no request). */
  readonly known: number;
  /** Clusters without a source after this run: blocked, retried next run. */
  readonly failed: readonly { clusterId: string; code: string; message: string }[];
}

/**
 * Registers the clusters of runs as koku sources and remembers what koku
 * confirmed.
 *
 * @example
 * ```ts ignore
 * import { SourceRegistry } from "./source_registry.ts";
 * const registry = new SourceRegistry("/var/lib/thanos-bridge", {
 *   baseUrl: "http://koku-api:8000/api/cost-management/v1/",
 * });
 * const { outcome, blocked } = await registry.ensure(
 *   [{ clusterId: "c1", name: "prod", orgId: "1234567" }],
 *   new Date(),
 * );
 * ```
 */
export class SourceRegistry {
  readonly #path: string;
  readonly #options: RegisterSourcesOptions;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(stateDir: string, options: RegisterSourcesOptions) {
    this.#path = join(stateDir, "koku-sources.json");
    this.#options = options;
  }

  /**
   * Makes sure each cluster has a koku source. Returns what was done and the
   * clusters that must not be collected (no source), with the reason.
   * Passes run one at a time, so two runs never create the same source.
   */
  ensure(
    clusters: readonly KokuCluster[],
    now: Date,
    signal?: AbortSignal,
  ): Promise<{ outcome: RegistrationOutcome; blocked: Map<string, ErrorInfo> }> {
    const next = this.#chain.then(() => this.#ensure(clusters, now, signal));
    this.#chain = next.catch(() => {});
    return next;
  }

  async #ensure(
    clusters: readonly KokuCluster[],
    now: Date,
    signal?: AbortSignal,
  ): Promise<{ outcome: RegistrationOutcome; blocked: Map<string, ErrorInfo> }> {
    // Another process on the same state folder (a `collect` beside `serve`) waits here: two
    // passes that list and create at the same time would create the same source twice.
    const lock = await Deno.open(this.#path.replace(/\.json$/, ".lock"), {
      read: true,
      write: true,
      create: true,
    });
    try {
      await lock.lock(true);
      return await this.#ensureLocked(clusters, now, signal);
    } finally {
      lock.close(); // drops the lock
    }
  }

  async #ensureLocked(
    clusters: readonly KokuCluster[],
    now: Date,
    signal?: AbortSignal,
  ): Promise<{ outcome: RegistrationOutcome; blocked: Map<string, ErrorInfo> }> {
    const state = await this.#read();
    const due: KokuCluster[] = [];
    let known = 0;
    for (const c of clusters) {
      const seen = state.get(c.clusterId);
      const fresh = seen !== undefined && seen.orgId === c.orgId &&
        now.getTime() - Date.parse(seen.confirmedAt) < RECHECK_AFTER_MS;
      if (fresh) known++;
      else due.push(c);
    }
    const blocked = new Map<string, ErrorInfo>();
    if (due.length === 0) {
      return { outcome: { created: [], confirmed: 0, known, failed: [] }, blocked };
    }
    const report = await registerSources(due, this.#options, signal);
    const at = now.toISOString();
    for (const s of [...report.created, ...report.existing]) {
      state.set(s.clusterId, {
        orgId: s.orgId,
        sourceId: s.sourceId,
        name: s.name,
        confirmedAt: at,
      });
    }
    const failed = [...report.conflicts, ...report.failed].map((f) => {
      const info = errorInfo(f.error);
      blocked.set(f.clusterId, {
        code: info.code,
        message: `no koku source, so koku would drop its payloads: ${info.message}`,
      });
      return { clusterId: f.clusterId, code: info.code, message: info.message };
    });
    if (report.created.length + report.existing.length > 0) await this.#write(state);
    return {
      outcome: {
        created: report.created.map((c) => ({
          clusterId: c.clusterId,
          name: c.name,
          sourceId: c.sourceId,
        })),
        confirmed: report.existing.length,
        known,
        failed,
      },
      blocked,
    };
  }

  async #read(): Promise<Map<string, Confirmed>> {
    const raw = await readJsonFile(this.#path);
    const map = new Map<string, Confirmed>();
    if (raw === null) return map;
    const clusters = (raw as { clusters?: unknown }).clusters;
    if (typeof clusters !== "object" || clusters === null || Array.isArray(clusters)) {
      throw new BridgeError("state_corrupt", `${this.#path} has no "clusters" object`);
    }
    for (const [id, v] of Object.entries(clusters as Record<string, unknown>)) {
      const c = v as Partial<Confirmed> | null;
      if (
        c && typeof c.orgId === "string" && typeof c.sourceId === "string" &&
        typeof c.name === "string" && typeof c.confirmedAt === "string" &&
        !Number.isNaN(Date.parse(c.confirmedAt))
      ) {
        map.set(id, c as Confirmed);
      }
    }
    return map;
  }

  async #write(state: Map<string, Confirmed>): Promise<void> {
    const clusters = Object.fromEntries([...state].sort(([a], [b]) => (a < b ? -1 : 1)));
    await writeFileAtomic(this.#path, JSON.stringify({ version: 1, clusters }, null, 2) + "\n");
  }
}
