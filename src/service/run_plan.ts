/**
 * Plans one run: which hours of which clusters to collect, from a
 * {@linkcode RunRequest}, the process settings, the clock and each cluster's
 * watermark. Pure: no I/O.
 *
 * @module
 */

import type { BridgeSettings, RunRequest } from "../config.ts";
import { ConfigError, formatHour, HOUR_MS, parseDay } from "../model.ts";

/** The hours one cluster's run covers (both ends included, hour starts in ms). */
export interface ClusterPlan {
  readonly clusterId: string;
  /** First hour to collect. Greater than `toMs` when the cluster is up to date. */
  readonly fromMs: number;
  /** Last hour to collect. */
  readonly toMs: number;
  /** Where `fromMs` came from. */
  readonly source: "request" | "watermark" | "backfill";
}

/** A planned run. */
export interface RunPlan {
  readonly clusters: readonly ClusterPlan[];
  /** The newest hour that is closed and settled at planning time. */
  readonly newestReadyMs: number;
  readonly recollect: boolean;
  readonly dryRun: boolean;
}

/** Oldest day a run may ask for. */
const EARLIEST_MS = Date.UTC(2000, 0, 1);
/** Longest explicit range (a bound against typos such as 2002 for 2026). */
const MAX_RANGE_MS = 400 * 24 * HOUR_MS;
const HOUR_TEXT = /^(\d{4}-\d{2}-\d{2})(?:T(\d{2}))?$/;

/**
 * The newest hour that is closed and settled: H is ready once
 * `now ≥ H + 1h + settle` (BRIDGE §1).
 *
 * @example
 * ```ts
 * import { newestReadyHour } from "./run_plan.ts";
 * newestReadyHour(new Date("2026-11-01T12:09:00Z"), 600_000); // 2026-11-01T10:00:00Z
 * ```
 */
export function newestReadyHour(now: Date, settleMs: number): Date {
  return new Date(Math.floor((now.getTime() - HOUR_MS - settleMs) / HOUR_MS) * HOUR_MS);
}

/** Start of the UTC day of `ms`. */
export function dayStartMs(ms: number): number {
  return Math.floor(ms / (24 * HOUR_MS)) * 24 * HOUR_MS;
}

/** Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH`; `isDay` tells which form it was. */
function parseHourText(field: string, text: string): { ms: number; isDay: boolean } {
  const m = HOUR_TEXT.exec(text);
  if (!m) throw new ConfigError(field, text, "must be YYYY-MM-DD or YYYY-MM-DDTHH (UTC)");
  const day = parseDay(m[1]!, field).getTime();
  if (m[2] === undefined) return { ms: day, isDay: true };
  const hour = Number(m[2]);
  if (hour > 23) throw new ConfigError(field, text, "has an hour above 23");
  return { ms: day + hour * HOUR_MS, isDay: false };
}

/**
 * Plans a run. Explicit `from`/`to` are checked against the clock (not before
 * 2000, not in the future, an explicit last hour must be closed and settled);
 * without `from`, each cluster starts after its watermark, but never earlier
 * than 00:00 of the oldest of the last `max backfill` UTC days (the newest
 * ready hour's day counts as the first: `3d` = that day and the two before).
 *
 * @param watermarks Per cluster, the start of the newest hour up to which
 *   everything is collected and delivered (absent: nothing yet).
 *
 * @example
 * ```ts ignore
 * import { planRun } from "./run_plan.ts";
 * const plan = planRun({ from: "2026-11-01" , to: "2026-11-01" }, settings, new Date(), new Map());
 * plan.clusters[0]!.toMs - plan.clusters[0]!.fromMs; // 23 h
 * ```
 */
export function planRun(
  request: RunRequest,
  settings: BridgeSettings,
  now: Date,
  watermarks: ReadonlyMap<string, number>,
): RunPlan {
  const clusters = request.clusters ?? settings.clusters;
  if (clusters.length === 0) {
    throw new ConfigError("clusters", undefined, "is empty: name at least one cluster");
  }
  const newest = newestReadyHour(now, settings.settleDelayMs).getTime();
  const readyAt = (ms: number) => new Date(ms + HOUR_MS + settings.settleDelayMs).toISOString();

  let toMs = newest;
  if (request.to !== undefined) {
    const to = parseHourText("to", request.to);
    if (to.ms < EARLIEST_MS) throw new ConfigError("to", request.to, "is before 2000");
    if (to.isDay) {
      if (to.ms > newest) {
        throw new ConfigError(
          "to",
          request.to,
          `has no closed hour yet (newest ready hour: ${formatHour(newest)})`,
        );
      }
      toMs = Math.min(to.ms + 23 * HOUR_MS, newest);
    } else {
      if (to.ms > newest) {
        throw new ConfigError(
          "to",
          request.to,
          `is not closed and settled yet (ready at ${readyAt(to.ms)})`,
        );
      }
      toMs = to.ms;
    }
  }
  let explicitFrom: number | null = null;
  if (request.from !== undefined) {
    const from = parseHourText("from", request.from);
    if (from.ms < EARLIEST_MS) throw new ConfigError("from", request.from, "is before 2000");
    if (from.ms > newest) {
      throw new ConfigError(
        "from",
        request.from,
        `has no closed hour yet (newest ready hour: ${formatHour(newest)})`,
      );
    }
    if (from.ms > toMs) {
      throw new ConfigError("from", request.from, `is after the last hour ${formatHour(toMs)}`);
    }
    if (toMs - from.ms > MAX_RANGE_MS) {
      throw new ConfigError("from", request.from, "spans more than 400 days; split the range");
    }
    explicitFrom = from.ms;
  }
  // `--max-backfill 3d` = the last three UTC days, the newest ready hour's day included.
  const bound = Math.min(
    dayStartMs(newest),
    dayStartMs(newest + 24 * HOUR_MS - settings.maxBackfillMs),
  );
  return {
    newestReadyMs: newest,
    recollect: request.recollect ?? false,
    dryRun: request.dryRun ?? false,
    clusters: clusters.map((clusterId): ClusterPlan => {
      if (explicitFrom !== null) {
        return { clusterId, fromMs: explicitFrom, toMs, source: "request" };
      }
      const mark = watermarks.get(clusterId);
      if (mark === undefined || mark + HOUR_MS < bound) {
        return { clusterId, fromMs: bound, toMs, source: "backfill" };
      }
      return { clusterId, fromMs: mark + HOUR_MS, toMs, source: "watermark" };
    }),
  };
}
