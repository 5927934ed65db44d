/**
 * Human-readable summary of a run (the `--json` form is the
 * {@link RunSummary} object itself). Every line is escaped, so no text that
 * came from a server can drive the terminal.
 *
 * @module
 */

import { escapeControl } from "../model.ts";
import type { RunSummary } from "../service/collect_job.ts";

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
 * formatSummary({ mode: "server", sink: "dir", dryRun: false, clusters: [],
 *   outbox: { sent: 0, pending: 0, error: null }, queries: 0, bytesDownloaded: 0, ms: 5,
 *   ok: true });
 * ```
 */
export function formatSummary(s: RunSummary): string {
  const lines: string[] = [];
  if (s.outbox.sent > 0 || s.outbox.pending !== 0 || s.outbox.error) {
    lines.push(
      `outbox: ${s.outbox.sent} sent, ${Math.max(0, s.outbox.pending)} waiting` +
        (s.outbox.error ? ` (${s.outbox.error.code}: ${s.outbox.error.message})` : ""),
    );
  }
  for (const c of s.clusters) {
    lines.push(
      `cluster ${c.clusterId}  hours ${c.from} … ${c.to}` +
        (c.watermark ? `  watermark ${c.watermark}` : ""),
    );
    if (c.error) lines.push(`  ERROR ${c.error.code}: ${c.error.message}`);
    for (const d of c.days) {
      const hours = d.lastHour === null ? "no hours" : `hours 00–${hh(d.lastHour)} (${d.hours})`;
      lines.push(`  day ${d.day}  ${hours}  payload: ${d.status}`);
      if (d.collectedHours.length > 0) {
        lines.push(`    collected now: ${d.collectedHours.map(hh).join(" ")}`);
      }
      if (d.pendingHours.length > 0) {
        lines.push(`    pending (no node data yet): ${d.pendingHours.map(hh).join(" ")}`);
      }
      for (const q of d.quarantined) lines.push(`    quarantined ${q}`);
      if (d.uuid) lines.push(`    uuid   ${d.uuid}`);
      for (const r of d.refs) {
        lines.push(`    ${r.sink === "dir" ? "path " : "at   "}  ${r.location}`);
      }
      if (d.queued > 0) lines.push(`    announcement waits in the outbox (${d.queued})`);
      if (d.bytes > 0) lines.push(`    bytes  ${d.bytes} (${bytes(d.bytes)})`);
      if (d.lastHour !== null) {
        lines.push(`    rows   ${Object.entries(d.rows).map(([k, v]) => `${k}=${v}`).join(" ")}`);
      }
      for (const f of d.failedHours) {
        lines.push(`    FAILED hour ${hh(f.hour)} ${f.code}: ${f.message}`);
      }
      if (d.error) lines.push(`    ERROR ${d.error.code}: ${d.error.message}`);
    }
  }
  lines.push(
    `${s.ok ? "ok" : "partial failure"}: ${s.clusters.length} cluster(s), ${s.queries} queries, ` +
      `${bytes(s.bytesDownloaded)} downloaded, ${(s.ms / 1000).toFixed(1)} s, reduce=${s.mode}, ` +
      `sink=${s.sink}${s.dryRun ? " (dry run: nothing delivered)" : ""}`,
  );
  return lines.map((l) => escapeControl(l, false)).join("\n") + "\n";
}
