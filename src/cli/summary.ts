/**
 * Human-readable summary of a collect run (the `--json` form is the
 * {@link CollectSummary} object itself).
 *
 * @module
 */

import type { CollectSummary } from "../service/collect_job.ts";

const hh = (h: number) => String(h).padStart(2, "0");

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1_048_576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1_048_576).toFixed(1)} MiB`;
}

/**
 * Renders the summary printed at the end of `collect`.
 *
 * @example
 * ```ts
 * import { formatSummary } from "./summary.ts";
 * formatSummary({ day: "2026-11-01", lastHour: 23, mode: "server", clusters: [], queries: 0,
 *   bytesDownloaded: 0, ms: 5, ok: true });
 * ```
 */
export function formatSummary(s: CollectSummary): string {
  const lines: string[] = [];
  for (const c of s.clusters) {
    const head = `cluster ${c.clusterId}  day ${c.day}`;
    const hours = c.lastHour === null ? "no hours" : `hours 00–${hh(c.lastHour)} (${c.hours})`;
    lines.push(`${head}  ${hours}  payload: ${c.status}`);
    if (c.collectedHours.length > 0) {
      lines.push(`  collected now: ${c.collectedHours.map(hh).join(" ")}`);
    }
    if (c.uuid) lines.push(`  uuid   ${c.uuid}`);
    for (const p of c.paths) lines.push(`  path   ${p}`);
    if (c.bytes > 0) lines.push(`  bytes  ${c.bytes} (${bytes(c.bytes)})`);
    if (c.lastHour !== null) {
      lines.push(
        `  rows   ${Object.entries(c.rows).map(([k, v]) => `${k}=${v}`).join(" ")}`,
      );
    }
    for (const f of c.failedHours) lines.push(`  FAILED hour ${hh(f.hour)}: ${f.error}`);
    if (c.error) lines.push(`  ERROR  ${c.error}`);
  }
  lines.push(
    `${s.ok ? "ok" : "partial failure"}: ${s.clusters.length} cluster(s), ${s.queries} queries, ` +
      `${bytes(s.bytesDownloaded)} downloaded, ${(s.ms / 1000).toFixed(1)} s, reduce=${s.mode}`,
  );
  return lines.join("\n") + "\n";
}
