/**
 * The result of one `thanos-bridge doctor` check. Checks are produced by the
 * parts that know how to probe (Thanos, sinks, discovery) and printed by the
 * CLI as `✓`/`✗` lines or as JSON (`--json`).
 *
 * @module
 */

/** How a check ended: `ok` (✓), `fail` (✗, the command exits non-zero), `skip` (not applicable). */
export type CheckStatus = "ok" | "fail" | "skip";

/** One check of `doctor`. */
export interface DoctorCheck {
  /** Stable id, e.g. `thanos.auth`, `s3.presign`, `metrics.present`. */
  readonly id: string;
  /** What was checked, in words (one line). */
  readonly title: string;
  readonly status: CheckStatus;
  /** The outcome in words: what was found, or what is wrong and what to do. Never a secret. */
  readonly detail: string;
  /** Details, one per line (e.g. one line per cluster and missing metric). */
  readonly items?: readonly string[];
}

/**
 * Builds a check.
 *
 * @example
 * ```ts
 * import { check } from "./doctor_check.ts";
 * check("thanos.reach", "Thanos answers", "ok", "200 in 12 ms").status; // "ok"
 * ```
 */
export function check(
  id: string,
  title: string,
  status: CheckStatus,
  detail: string,
  items?: readonly string[],
): DoctorCheck {
  return items && items.length > 0
    ? { id, title, status, detail, items }
    : { id, title, status, detail };
}
