/**
 * The cron scheduler of the service (`croner`): on every tick it starts a run
 * of every configured cluster (`service.start({}, "schedule")`). A tick while
 * the previous run still holds a cluster is logged and skipped, never queued.
 * Patterns are read in UTC (like every hour the bridge handles) and may have
 * 5 fields (minute precision) or 6 (seconds first); `off` disables the
 * scheduler. The default, `15 * * * *`, runs at minute 15 of every hour.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";
import { Cron } from "croner";
import { BridgeError, ConfigError, errorInfo } from "../model.ts";
import { RunConflictError, type RunService } from "./run_types.ts";

/** Default `--schedule`: minute 15 of every hour. */
export const DEFAULT_SCHEDULE = "15 * * * *";

/** What the scheduler needs from the run manager. */
export type RunStarter = Pick<RunService, "start">;

/** Options of a {@linkcode Scheduler}. */
export interface SchedulerOptions {
  /** Cron pattern (5 or 6 fields, UTC), or `off`. */
  readonly pattern: string;
  readonly service: RunStarter;
  /** Default: `getLogger(["thanos-bridge", "scheduler"])`. */
  readonly logger?: Logger;
  /** Clock for {@linkcode Scheduler.nextRun} (default: the system clock). */
  readonly now?: () => Date;
}

/** What one tick did. */
export type TickOutcome =
  | { readonly result: "started"; readonly runId: string }
  | { readonly result: "skipped"; readonly activeRunId: string; readonly clusterId: string }
  | { readonly result: "refused"; readonly code: string; readonly message: string };

/**
 * Checks a cron pattern: `null` for `off` (any case), else the pattern
 * trimmed; a {@linkcode ConfigError} on field `schedule` naming the pattern
 * when croner cannot read it.
 *
 * @example
 * ```ts
 * import { parseSchedule } from "./scheduler.ts";
 * parseSchedule("15 * * * *"); // "15 * * * *"
 * parseSchedule("off"); // null
 * ```
 */
export function parseSchedule(pattern: string): string | null {
  const text = pattern.trim();
  if (text.toLowerCase() === "off") return null;
  if (text === "") {
    throw new ConfigError("schedule", pattern, "is empty: give a cron pattern or off");
  }
  let job: Cron;
  try {
    job = new Cron(text, { timezone: "UTC", mode: "5-or-6-parts" });
  } catch (error) {
    throw new ConfigError(
      "schedule",
      pattern,
      `is not a cron pattern (5 fields, or 6 with seconds first; or off): ${
        error instanceof Error ? error.message : error
      }`,
    );
  }
  const next = job.nextRun(new Date());
  job.stop();
  if (next === null) throw new ConfigError("schedule", pattern, "never fires");
  return text;
}

/**
 * Starts scheduled runs.
 *
 * @example
 * ```ts ignore
 * import { Scheduler } from "./scheduler.ts";
 * const scheduler = new Scheduler({ pattern: "15 * * * *", service: manager });
 * scheduler.start();
 * scheduler.nextRun(); // e.g. 2026-11-27T03:15:00.000Z
 * scheduler.stop();
 * ```
 */
export class Scheduler {
  /** The pattern, or null when disabled (`off`). */
  readonly pattern: string | null;
  readonly #service: RunStarter;
  readonly #log: Logger;
  readonly #now: () => Date;
  #job: Cron | null = null;
  #ticks = 0;
  #inFlight: Promise<TickOutcome> | null = null;

  /** @throws {ConfigError} `schedule` when the pattern is not a cron pattern. */
  constructor(options: SchedulerOptions) {
    this.pattern = parseSchedule(options.pattern);
    this.#service = options.service;
    this.#log = options.logger ?? getLogger(["thanos-bridge", "scheduler"]);
    this.#now = options.now ?? (() => new Date());
  }

  /** Whether a pattern is set (not `off`). */
  get enabled(): boolean {
    return this.pattern !== null;
  }

  /** Whether the timer is armed. */
  get running(): boolean {
    return this.#job !== null;
  }

  /** Ticks so far. */
  get ticks(): number {
    return this.#ticks;
  }

  /** Arms the timer (a no-op when disabled or already started). */
  start(): void {
    if (this.pattern === null || this.#job !== null) return;
    this.#job = new Cron(this.pattern, {
      timezone: "UTC",
      mode: "5-or-6-parts",
      protect: true,
      catch: (error: unknown) => {
        this.#log.error("scheduled tick failed: {error}", { error: errorInfo(error).message });
      },
    }, async () => {
      await this.tick();
    });
    this.#log.info("schedule {pattern} (UTC); next run {next}", {
      pattern: this.pattern,
      next: this.nextRun()?.toISOString() ?? null,
    });
  }

  /** Disarms the timer; a tick in progress finishes on its own (see {@linkcode idle}). */
  stop(): void {
    this.#job?.stop();
    this.#job = null;
  }

  /** Resolves once the tick in progress, if any, is done. */
  async idle(): Promise<void> {
    await this.#inFlight?.catch(() => {});
  }

  /** When the next tick fires, or null when disabled or stopped. */
  nextRun(): Date | null {
    return this.#job?.nextRun(this.#now()) ?? null;
  }

  /**
   * One tick: starts a run of every configured cluster. A conflict with an
   * active run is logged and skipped; any other refusal (shutting down, no
   * clusters configured, …) is logged. Never throws.
   */
  tick(): Promise<TickOutcome> {
    this.#ticks++;
    const p = this.#tick();
    this.#inFlight = p;
    return p;
  }

  async #tick(): Promise<TickOutcome> {
    try {
      const record = await this.#service.start({}, "schedule");
      return { result: "started", runId: record.id };
    } catch (error) {
      if (error instanceof RunConflictError) {
        this.#log.info(
          "scheduled run skipped: cluster {clusterId} is still being collected by run {activeRunId}",
          { clusterId: error.clusterId, activeRunId: error.activeRunId },
        );
        return { result: "skipped", activeRunId: error.activeRunId, clusterId: error.clusterId };
      }
      const info = errorInfo(error);
      if (error instanceof BridgeError && error.code === "shutting_down") {
        this.#log.info("scheduled run skipped: shutting down");
      } else {
        this.#log.error("scheduled run not started: {error}", {
          error: info.message,
          code: info.code,
        });
      }
      return { result: "refused", code: info.code, message: info.message };
    }
  }
}
