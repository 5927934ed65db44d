/**
 * The ground-truth oracle: the exact CSV rows CMMO would write for one
 * (cluster, hour) of the synthetic hub, computed straight from the contract —
 * Prometheus 2.42's evaluation of each cost query at the 60 steps of the hour
 * ({@link ./promql_eval.ts}, {@link ./cost_queries.ts}), then CMMO's
 * reductions (§3.2), row keys and last-writer-wins merging in Prometheus's
 * series order (§3.3), the node-row join, label serialization (§3.5), empty
 * cells for missing values (§3.6), the GPU merge (§1.7) and the "no node data,
 * no reports" rule (§3.1). It shares no code with the bridge's collector.
 *
 * @module
 */

import { formatFloat } from "../../src/package/go_float.ts";
import { reportDefinition, type ReportName } from "../../src/collect/reports.ts";
import { COST_QUERIES, type CostGroup, type CostQuery, costQuery } from "./cost_queries.ts";
import { clusterById, type Hub } from "./model.ts";
import { compareBytes, compareLabels, type Labels, labelsKey, SeriesIndex } from "./promql_eval.ts";

/** One series of a `query_range` answer: label set and `[unix ms, value]` points. */
export interface RangeSeries {
  readonly labels: Labels;
  readonly points: readonly (readonly [number, number])[];
}

/** A report column whose expected value is not guaranteed bit-exact (see `reason`). */
export interface ApproximateColumn {
  readonly report: ReportName;
  readonly column: string;
  /** Compare with `|a − b| ≤ relativeTolerance · max(|a|, |b|)`. */
  readonly relativeTolerance: number;
  readonly reason: string;
}

const RATE_REASON =
  "Σ of 60 rate() results. The oracle repeats Prometheus 2.42's extrapolatedRate operation by " +
  "operation (prometheus_test.ts checks every step bit for bit), but a collector that reduces on " +
  "the server (sum_over_time over a subquery), or another Prometheus/Thanos engine version " +
  "(different rate code, Kahan summation), may differ in the last bits, which %.6f only shows " +
  "when a value sits on a rounding boundary.";

/** Columns to compare with a relative tolerance instead of byte equality. */
export const APPROXIMATE_COLUMNS: readonly ApproximateColumn[] = [
  {
    report: "pod",
    column: "pod_usage_cpu_core_seconds",
    relativeTolerance: 1e-9,
    reason: RATE_REASON,
  },
  {
    report: "vm",
    column: "vm_cpu_usage_total_seconds",
    relativeTolerance: 1e-9,
    reason: RATE_REASON,
  },
];

const STEP_MS = 60_000;
const STEPS = 60;
const HOUR_MS = 3_600_000;

const indexCache = new WeakMap<Hub, Map<string, SeriesIndex>>();
const hourCache = new WeakMap<Hub, Map<string, Record<ReportName, string[][]>>>();

function indexFor(hub: Hub, clusterId: string): SeriesIndex {
  let perHub = indexCache.get(hub);
  if (!perHub) {
    perHub = new Map();
    indexCache.set(hub, perHub);
  }
  let ix = perHub.get(clusterId);
  if (!ix) {
    ix = new SeriesIndex(hub, clusterById(hub, clusterId));
    perHub.set(clusterId, ix);
  }
  return ix;
}

function checkHour(hourStart: Date): number {
  const ms = hourStart.getTime();
  if (Number.isNaN(ms) || ms % HOUR_MS !== 0) {
    throw new RangeError(
      `Invalid hour start ${String(hourStart)}: expected a Date on a whole UTC hour`,
    );
  }
  return ms;
}

function rangeEval(ix: SeriesIndex, q: CostQuery, hourMs: number): RangeSeries[] {
  const series = new Map<string, { labels: Labels; points: [number, number][] }>();
  for (let i = 0; i < STEPS; i++) {
    const t = hourMs + i * STEP_MS;
    const seen = new Set<string>();
    for (const s of q.evaluate(ix, t)) {
      const key = labelsKey(s.labels);
      if (seen.has(key)) {
        throw new Error(`${q.name}: vector cannot contain metrics with the same labelset`, {
          cause: { labels: s.labels, t },
        });
      }
      seen.add(key);
      let entry = series.get(key);
      if (!entry) {
        entry = { labels: s.labels, points: [] };
        series.set(key, entry);
      }
      entry.points.push([t, s.value]);
    }
  }
  return [...series.values()].sort((a, b) => compareLabels(a.labels, b.labels));
}

/**
 * The oracle's answer to `query_range` of cost query `queryName` (CMMO name,
 * e.g. `pod-usage-cpu-cores`) for one cluster, start `hourStart`, end
 * `hourStart + 59:59`, step 60 s, range windows 15m — series sorted as
 * Prometheus sorts them.
 *
 * @example
 * ```ts
 * import { buildHub, defaultTestHub } from "./model.ts";
 * import { evaluateQueryRange } from "./ground_truth.ts";
 * const hub = buildHub(defaultTestHub());
 * const m = evaluateQueryRange(hub, hub.clusters[0]!.id, "node-role", new Date("2026-11-01T03:00:00Z"));
 * m[0]!.points.length; // 60
 * ```
 */
export function evaluateQueryRange(
  hub: Hub,
  clusterId: string,
  queryName: string,
  hourStart: Date,
): RangeSeries[] {
  return rangeEval(indexFor(hub, clusterId), costQuery(queryName), checkHour(hourStart));
}

type Row = Map<string, string>;
type Results = Map<string, Row>;

function generateKey(labels: Labels, rowKey: readonly string[]): string {
  if (rowKey.length === 1) return labels[rowKey[0] ?? ""] ?? "";
  return rowKey.map((k) => labels[k] ?? "").sort(compareBytes).join(",");
}

function findFields(labels: Labels, regex: string): string {
  const re = new RegExp(regex);
  return Object.entries(labels)
    .filter(([name]) => re.test(name))
    .map(([name, value]) => `${name}:${value}`)
    .sort(compareBytes)
    .join("|");
}

function iterateMatrix(results: Results, matrix: readonly RangeSeries[], q: CostQuery): void {
  for (const stream of matrix) {
    const key = generateKey(stream.labels, q.rowKey);
    let row = results.get(key);
    if (!row) {
      row = new Map();
      results.set(key, row);
    }
    for (const [field, label] of q.metricKey) row.set(field, stream.labels[label] ?? "");
    for (const [field, regex] of q.metricKeyRegex) row.set(field, findFields(stream.labels, regex));
    if (q.value) {
      let value = 0;
      if (q.value.method === "sum") {
        for (const [, v] of stream.points) value += v;
      } else {
        value = stream.points[0]?.[1] ?? 0;
        for (const [, v] of stream.points) if (v > value) value = v;
      }
      row.set(q.value.valName, formatFloat(value));
      if (q.value.transformedName !== "") {
        let factor = 60;
        if (q.value.method === "max") factor *= stream.points.length;
        row.set(q.value.transformedName, formatFloat(value * factor));
      }
    }
  }
}

function runGroup(ix: SeriesIndex, hourMs: number, group: CostGroup): Results {
  const results: Results = new Map();
  for (const q of COST_QUERIES) {
    if (q.group === group) iterateMatrix(results, rangeEval(ix, q, hourMs), q);
  }
  return results;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

function goTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000 UTC`;
}

function dateColumns(hourMs: number): string[] {
  const d = new Date(hourMs);
  const periodStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const periodEnd = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return [goTime(periodStart), goTime(periodEnd), goTime(hourMs), goTime(hourMs + HOUR_MS - 1000)];
}

function resourceId(providerId: string | undefined): string {
  if (providerId === undefined) return "";
  const parts = providerId.split("/");
  return parts[parts.length - 1] ?? "";
}

function computeHour(hub: Hub, clusterId: string, hourMs: number): Record<ReportName, string[][]> {
  const ix = indexFor(hub, clusterId);
  const out: Record<ReportName, string[][]> = {
    namespace: [],
    node: [],
    gpu: [],
    pod: [],
    storage: [],
    vm: [],
  };
  const nodes = runGroup(ix, hourMs, "node");
  if (nodes.size === 0) return out; // "No data to report for the hour queried."
  const dates = dateColumns(hourMs);
  const get = (row: Row | undefined, field: string) => row?.get(field) ?? "";

  for (const row of nodes.values()) row.set("resource_id", resourceId(row.get("provider_id")));
  for (const row of nodes.values()) {
    out.node.push([...dates, get(row, "node"), get(row, "node_labels")]);
  }

  for (const row of runGroup(ix, hourMs, "pod").values()) {
    const nodeKey = row.get("node");
    const n = nodeKey === undefined ? undefined : nodes.get(nodeKey);
    out.pod.push([
      ...dates,
      get(n, "node"),
      get(row, "namespace"),
      get(row, "pod"),
      get(row, "pod-usage-cpu-core-seconds"),
      get(row, "pod-request-cpu-core-seconds"),
      get(row, "pod-limit-cpu-core-seconds"),
      get(row, "pod-usage-memory-byte-seconds"),
      get(row, "pod-request-memory-byte-seconds"),
      get(row, "pod-limit-memory-byte-seconds"),
      get(n, "node-capacity-cpu-cores"),
      get(n, "node-capacity-cpu-core-seconds"),
      get(n, "node-capacity-memory-bytes"),
      get(n, "node-capacity-memory-byte-seconds"),
      get(n, "node-role"),
      get(n, "resource_id"),
      get(row, "pod_labels"),
    ]);
  }

  for (const row of runGroup(ix, hourMs, "storage").values()) {
    out.storage.push([
      ...dates,
      ...[
        "namespace",
        "pod",
        "node",
        "persistentvolumeclaim",
        "persistentvolume",
        "storageclass",
        "csi_driver",
        "csi_volume_handle",
        "persistentvolumeclaim-capacity-bytes",
        "persistentvolumeclaim-capacity-byte-seconds",
        "persistentvolumeclaim-request-byte-seconds",
        "persistentvolumeclaim-usage-byte-seconds",
        "persistentvolume_labels",
        "persistentvolumeclaim_labels",
      ].map((f) => get(row, f)),
    ]);
  }

  for (const row of runGroup(ix, hourMs, "vm").values()) {
    out.vm.push([
      ...dates,
      get(row, "node"),
      resourceId(row.get("provider_id")),
      ...[
        "namespace",
        "name",
        "instance_type",
        "os",
        "guest_os_arch",
        "guest_os_name",
        "guest_os_version_id",
        "vm_uptime_total_seconds",
        "vm_cpu_limit_cores",
        "vm_cpu_limit_core_seconds",
        "vm_cpu_request_cores",
        "vm_cpu_request_core_seconds",
        "vm_cpu_request_sockets",
        "vm_cpu_request_socket_seconds",
        "vm_cpu_request_threads",
        "vm_cpu_request_thread_seconds",
        "vm_cpu_usage_total_seconds",
        "vm_memory_limit_bytes",
        "vm_memory_limit_byte_seconds",
        "vm_memory_request_bytes",
        "vm_memory_request_byte_seconds",
        "vm_memory_usage_byte_seconds",
        "device",
        "volume_mode",
        "persistentvolumeclaim_name",
        "vm_disk_allocated_size_byte_seconds",
        "vm_labels",
      ].map((f) => get(row, f)),
    ]);
  }

  const nonMig = runGroup(ix, hourMs, "gpuNonMig");
  const mig = runGroup(ix, hourMs, "gpuMig");
  const slices = runGroup(ix, hourMs, "gpuMaxSlices");
  for (const [key, util] of runGroup(ix, hourMs, "gpuUtilization")) {
    const row: Row = new Map(util);
    const merge = (from: Row | undefined) => {
      if (from) { for (const [f, v] of from) row.set(f, v); }
    };
    if ((row.get("mig_instance_id") ?? "").trim() !== "") {
      merge(mig.get(key));
      merge(slices.get(key));
    } else {
      const resourceKey = [get(row, "pod"), get(row, "namespace"), get(row, "node")]
        .sort(compareBytes)
        .join(",");
      merge(nonMig.get(resourceKey));
    }
    out.gpu.push([
      ...dates,
      ...[
        "node",
        "namespace",
        "pod",
        "gpu_uuid",
        "model_name",
        "vendor_name",
        "gpu_memory_capacity_mib",
        "nvidia-gpu-pod-uptime-seconds",
        "nvidia-gpu-pod-utilization",
        "nvidia-gpu-max-slices",
        "mig_instance_id",
        "mig_profile",
        "mig_strategy",
      ].map((f) => get(row, f)),
    ]);
  }

  for (const row of runGroup(ix, hourMs, "namespace").values()) {
    out.namespace.push([...dates, get(row, "namespace"), get(row, "namespace_labels")]);
  }

  for (const name of Object.keys(out) as ReportName[]) {
    const width = reportDefinition(name).header.length;
    for (const r of out[name]) {
      if (r.length !== width) {
        throw new Error(`Internal error: ${name} row has ${r.length} cells, header has ${width}`);
      }
    }
    out[name].sort(compareRows);
  }
  return out;
}

const UNICODE_SPACES = new Set([
  0x09,
  0x0a,
  0x0b,
  0x0c,
  0x0d,
  0x20,
  0x85,
  0xa0,
  0x1680,
  0x2000,
  0x2001,
  0x2002,
  0x2003,
  0x2004,
  0x2005,
  0x2006,
  0x2007,
  0x2008,
  0x2009,
  0x200a,
  0x2028,
  0x2029,
  0x202f,
  0x205f,
  0x3000,
]);

/**
 * One CSV line as Go's `encoding/csv` writes it (no terminator): a field is
 * quoted when it contains `,` `"` `\r` `\n`, starts with a Unicode space, or
 * is exactly `\.`; empty fields are never quoted.
 *
 * @example
 * ```ts
 * import { goCsvLine } from "./ground_truth.ts";
 * goCsvLine(["a", 'b,"c"', "", " d"]); // 'a,"b,""c""",," d"'
 * ```
 */
export function goCsvLine(cells: readonly string[]): string {
  return cells.map((f) => {
    if (f === "") return f;
    const first = f.codePointAt(0) ?? 0;
    const quote = f === "\\." || /[,"\r\n]/.test(f) || UNICODE_SPACES.has(first);
    return quote ? `"${f.replaceAll('"', '""')}"` : f;
  }).join(",");
}

/**
 * The order of {@linkcode expectedReport}'s rows: by the Go-CSV-encoded line
 * ({@linkcode goCsvLine}), compared in UTF-8 byte order.
 *
 * @example
 * ```ts
 * import { compareRows } from "./ground_truth.ts";
 * [["b"], ["a"]].sort(compareRows); // [["a"], ["b"]]
 * ```
 */
export function compareRows(a: readonly string[], b: readonly string[]): number {
  return compareBytes(goCsvLine(a), goCsvLine(b));
}

/**
 * All six cost reports of one (cluster, hour), see {@linkcode expectedReport}.
 *
 * @example
 * ```ts
 * import { buildHub, defaultTestHub } from "./model.ts";
 * import { expectedReports } from "./ground_truth.ts";
 * const hub = buildHub(defaultTestHub());
 * const r = expectedReports(hub, hub.clusters[0]!.id, new Date("2026-11-01T03:00:00Z"));
 * r.node.length > 0; // true
 * ```
 */
export function expectedReports(
  hub: Hub,
  clusterId: string,
  hourStart: Date,
): Readonly<Record<ReportName, readonly (readonly string[])[]>> {
  const hourMs = checkHour(hourStart);
  let perHub = hourCache.get(hub);
  if (!perHub) {
    perHub = new Map();
    hourCache.set(hub, perHub);
  }
  const key = `${clusterId}|${hourMs}`;
  let reports = perHub.get(key);
  if (!reports) {
    reports = computeHour(hub, clusterId, hourMs);
    perHub.set(key, reports);
  }
  return reports;
}

/**
 * Every data row (full row in header order, dates included, cells unquoted)
 * that CMMO would write for `report` of cluster `clusterId` in the hour
 * starting at `hourStart`, sorted by {@linkcode compareRows}. An hour without
 * node data yields no rows for any report.
 *
 * @example
 * ```ts
 * import { buildHub, defaultTestHub } from "./model.ts";
 * import { expectedReport } from "./ground_truth.ts";
 * const hub = buildHub(defaultTestHub());
 * const rows = expectedReport(hub, hub.clusters[0]!.id, new Date("2026-11-01T03:00:00Z"), "pod");
 * rows[0]!.length; // 20
 * ```
 */
export function expectedReport(
  hub: Hub,
  clusterId: string,
  hourStart: Date,
  report: ReportName,
): string[][] {
  reportDefinition(report);
  return expectedReports(hub, clusterId, hourStart)[report].map((r) => [...r]);
}
