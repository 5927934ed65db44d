/**
 * Human-readable summary of a run (the `--json` form is the
 * {@link RunSummary} object itself). Every line is escaped, so no text that
 * came from a server can drive the terminal.
 *
 * @module
 */

import { escapeControl } from "../model.ts";
import type { RunSummary } from "../service/collect_job.ts";
import type { DoctorCheck } from "../service/doctor_check.ts";
import type { BridgeRunSummary } from "../service/runtime.ts";

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
export function formatSummary(s: RunSummary | BridgeRunSummary): string {
  const lines: string[] = [];
  const discovery = "discovery" in s ? s.discovery : undefined;
  if (discovery) {
    const found = discovery.sources.map((r) =>
      r.error === undefined ? `${r.kind} ${r.found}` : `${r.kind} FAILED`
    );
    lines.push(
      `discovery: ${discovery.clusters.length} cluster(s) (${found.join(", ")})` +
        (discovery.excluded.length > 0
          ? `, ${discovery.excluded.length} left out by the filter`
          : ""),
    );
    for (const r of discovery.sources) {
      if (r.error !== undefined) lines.push(`  ERROR ${r.kind}: ${r.code ?? ""} ${r.error}`);
      for (const w of r.warnings ?? []) lines.push(`  warning ${r.kind}: ${w}`);
    }
    for (const k of discovery.skipped.slice(0, 20)) lines.push(`  skipped ${k.name}: ${k.reason}`);
    if (discovery.skipped.length > 20) {
      lines.push(`  … ${discovery.skipped.length - 20} more skipped`);
    }
  }
  const registration = "registration" in s ? s.registration : undefined;
  if (registration) {
    lines.push(
      `koku sources: ${registration.created.length} created, ${registration.confirmed} confirmed, ` +
        `${registration.known} known, ${registration.failed.length} failed`,
    );
    for (const c of registration.created) {
      lines.push(`  created ${c.name} (id ${c.sourceId}) for ${c.clusterId}`);
    }
    for (const f of registration.failed) {
      lines.push(`  FAILED ${f.clusterId} ${f.code}: ${f.message}`);
    }
  }
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
  const b = s.batching;
  if (b && b.batches > 0) {
    lines.push(
      `batching: ${b.batches} collection(s), ${b.batched} shared by several clusters ` +
        `(--cluster-batch ${b.clusterBatch}), ${b.skippedQueries} queries skipped as empty`,
    );
    for (const f of b.fallbacks) {
      lines.push(
        `  FALLBACK ${f.day} hours ${f.hours}, ${f.clusters.length} clusters collected one by one ` +
          `(${f.code}: ${f.message})`,
      );
    }
  }
  const local = s.local;
  if (local) {
    lines.push(
      `local: ${local.semantics} semantics (${local.semanticsFrom}), raw samples by ` +
        `${local.rawRead}, ${local.checks} self-check(s), ` +
        `${local.mismatches.length} mismatch(es), ${local.serverQueries.length} queries on the server`,
    );
    for (const m of local.mismatches) {
      lines.push(
        `  MISMATCH ${m.query} hour ${hh(m.hour)}: ${m.clusters.length} cluster(s) collected ` +
          `in server mode for ${m.hours} (${m.detail})`,
      );
    }
    for (const q of local.serverQueries) lines.push(`  on the server: ${q.query} (${q.reason})`);
  }
  lines.push(
    `${s.ok ? "ok" : "partial failure"}: ${s.clusters.length} cluster(s), ${s.queries} queries, ` +
      `${bytes(s.bytesDownloaded)} downloaded, ${(s.ms / 1000).toFixed(1)} s, reduce=${s.mode}, ` +
      `sink=${s.sink}${s.dryRun ? " (dry run: nothing delivered)" : ""}`,
  );
  return lines.map((l) => escapeControl(l, false)).join("\n") + "\n";
}

/**
 * Renders `doctor`'s checks: one `✓`/`✗`/`–` line each, details indented.
 *
 * @example
 * ```ts
 * import { formatChecks } from "./summary.ts";
 * formatChecks([{ id: "thanos.reach", title: "Thanos answers", status: "ok", detail: "12 ms" }]);
 * // "✓ Thanos answers: 12 ms\n…"
 * ```
 */
export function formatChecks(checks: readonly DoctorCheck[]): string {
  const lines: string[] = [];
  for (const c of checks) {
    const mark = c.status === "ok" ? "✓" : c.status === "fail" ? "✗" : "–";
    lines.push(`${mark} ${c.title}: ${c.detail}`);
    for (const item of c.items ?? []) lines.push(`    ${item}`);
  }
  const failed = checks.filter((c) => c.status === "fail").length;
  lines.push(failed === 0 ? "all checks passed" : `${failed} check(s) failed`);
  return lines.map((l) => escapeControl(l, false)).join("\n") + "\n";
}
