/**
 * Go time strings used in the CSV date columns (contract §3.4).
 *
 * @module
 */

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/**
 * Formats a UTC instant like Go's `time.Time.String()` for a UTC time with
 * whole seconds: `YYYY-MM-DD HH:MM:SS +0000 UTC`.
 *
 * @example
 * ```ts
 * import { goTimeString } from "./go_time.ts";
 * goTimeString(new Date("2020-11-06T18:59:59Z")); // "2020-11-06 18:59:59 +0000 UTC"
 * ```
 */
export function goTimeString(t: Date): string {
  if (t.getUTCMilliseconds() !== 0) {
    throw new RangeError(`goTimeString: ${t.toISOString()} has a fraction of a second`);
  }
  return `${pad(t.getUTCFullYear(), 4)}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())} ` +
    `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}:${pad(t.getUTCSeconds())} +0000 UTC`;
}

/**
 * The four common columns of every cost row for the hour starting at
 * `hourStart`: report_period_start, report_period_end (1st of next month),
 * interval_start (H:00:00), interval_end (H:59:59).
 *
 * @example
 * ```ts
 * import { hourColumns } from "./go_time.ts";
 * hourColumns(new Date("2020-11-06T18:00:00Z"));
 * // ["2020-11-01 00:00:00 +0000 UTC", "2020-12-01 00:00:00 +0000 UTC",
 * //  "2020-11-06 18:00:00 +0000 UTC", "2020-11-06 18:59:59 +0000 UTC"]
 * ```
 */
export function hourColumns(hourStart: Date): [string, string, string, string] {
  const y = hourStart.getUTCFullYear();
  const m = hourStart.getUTCMonth();
  return [
    goTimeString(new Date(Date.UTC(y, m, 1))),
    goTimeString(new Date(Date.UTC(y, m + 1, 1))),
    goTimeString(hourStart),
    goTimeString(new Date(hourStart.getTime() + 3_599_000)),
  ];
}
