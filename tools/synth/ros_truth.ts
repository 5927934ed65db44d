/**
 * The ROS half of the ground-truth oracle: every row of CMMO's two
 * resource-optimization CSVs (contract §1.8–1.9) for one cluster and day of
 * the synthetic hub, computed from the model: for each hour with node data
 * (§3.1) and each of its four 15-minute windows, the filter query and then the
 * 35 container and 20 namespace instant queries at the window end
 * ({@link ./ros_queries.ts}, Prometheus 2.42 semantics), CMMO's row keys and
 * last-writer-wins merging in catalogue order (§3.3), `%.6f` values (§3.7),
 * and the node/resource_id copy from the hour's node row. It shares no code
 * with the bridge's collector (only the report header constant).
 *
 * @module
 */

import { formatFloat } from "../../src/package/go_float.ts";
import { ROS_REPORTS } from "../../src/collect/reports.ts";
import { COST_QUERIES } from "./cost_queries.ts";
import { compareRows, evaluateQueryRange } from "./ground_truth.ts";
import { clusterById, type Hub } from "./model.ts";
import { compareBytes, type Sample, SeriesIndex } from "./promql_eval.ts";
import { ROS_QUERIES, type RosGroup, type RosQuery, rosQuery } from "./ros_queries.ts";

/** The expected ROS reports of one cluster and day; see {@linkcode expectedRosReports}. */
export interface ExpectedRosReports {
  /** Rows of `ros-openshift-container` (49 cells each), sorted by {@linkcode compareRows}. */
  readonly container: string[][];
  /** Rows of `ros-openshift-namespace` (25 cells each), sorted by {@linkcode compareRows}. */
  readonly namespace: string[][];
  /**
   * Every window of the requested hours, in time order: `end` is the window
   * end as a Go time string (the rows' `interval_end`), `passed` whether CMMO
   * runs the ROS queries for it (the hour has node data and the filter query
   * returns at least one namespace).
   */
  readonly windows: { end: string; passed: boolean }[];
}

const HOUR_MS = 3_600_000;
const WINDOW_MS = 15 * 60_000;
const DAY_MS = 24 * HOUR_MS;

function header(name: "ros-container" | "ros-namespace"): readonly string[] {
  const def = ROS_REPORTS.find((r) => r.name === name);
  if (!def) throw new Error(`Internal error: no ROS report ${name}`);
  return def.header;
}

const indexCache = new WeakMap<Hub, Map<string, SeriesIndex>>();
const windowCache = new WeakMap<Hub, Map<string, WindowResult>>();

interface WindowResult {
  passed: boolean;
  container: string[][];
  namespace: string[][];
}

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

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

function goTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000 UTC`;
}

/** The four common columns of the window ending at `endMs` (contract §1.1, §3.1). */
function dateColumns(endMs: number): string[] {
  const startMs = endMs - WINDOW_MS + 1000;
  const d = new Date(startMs);
  const periodStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const periodEnd = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return [goTime(periodStart), goTime(periodEnd), goTime(startMs), goTime(endMs)];
}

type Row = Map<string, string>;

/**
 * The hour's node rows (CMMO's node group, §2 `nodeQueries`): key = node
 * name, fields `node` and `resource_id`, last writer wins.
 */
function nodeRows(hub: Hub, clusterId: string, hourMs: number): Map<string, Row> {
  const rows = new Map<string, Row>();
  for (const q of COST_QUERIES) {
    if (q.group !== "node") continue;
    for (const s of evaluateQueryRange(hub, clusterId, q.name, new Date(hourMs))) {
      const key = s.labels.node ?? "";
      let row = rows.get(key);
      if (!row) {
        row = new Map();
        rows.set(key, row);
      }
      for (const [field, label] of q.metricKey) row.set(field, s.labels[label] ?? "");
    }
  }
  for (const row of rows.values()) {
    const parts = (row.get("provider_id") ?? "").split("/");
    row.set("resource_id", row.has("provider_id") ? parts[parts.length - 1] ?? "" : "");
  }
  return rows;
}

function generateKey(labels: Readonly<Record<string, string>>, rowKey: readonly string[]): string {
  if (rowKey.length === 1) return labels[rowKey[0] ?? ""] ?? "";
  return rowKey.map((k) => labels[k] ?? "").sort(compareBytes).join(",");
}

/**
 * Applies one instant-query result to the group's rows (CMMO's
 * `iterateVector`). Within one query, two series with the same row key that
 * write different values would make the result depend on Prometheus' answer
 * order (not deterministic for instant queries): that is reported as an
 * error, so the synthetic data never relies on it.
 */
function iterateVector(rows: Map<string, Row>, q: RosQuery, vector: readonly Sample[]): void {
  const written = new Map<string, Map<string, string>>();
  for (const s of vector) {
    const key = generateKey(s.labels, q.rowKey);
    const fields = new Map<string, string>();
    for (const [field, label] of q.metricKey) fields.set(field, s.labels[label] ?? "");
    if (q.valName !== null) fields.set(q.valName, formatFloat(s.value));
    const before = written.get(key);
    if (before) {
      for (const [f, v] of fields) {
        if (before.has(f) && before.get(f) !== v) {
          throw new Error(
            `${q.name}: two series for row "${key}" write different ${f} values (${
              before.get(f)
            } vs ${v}); the result would depend on Prometheus' answer order`,
          );
        }
      }
    }
    written.set(key, fields);
    let row = rows.get(key);
    if (!row) {
      row = new Map();
      rows.set(key, row);
    }
    for (const [f, v] of fields) row.set(f, v);
  }
}

function runGroup(ix: SeriesIndex, group: RosGroup, t: number): Map<string, Row> {
  const rows = new Map<string, Row>();
  for (const q of ROS_QUERIES) if (q.group === group) iterateVector(rows, q, q.evaluate(ix, t));
  return rows;
}

/** Row field of each ROS namespace column (contract §1.9). */
function namespaceField(column: string): string {
  const pods = /^namespace_(running|total)_pods_(max|avg)$/.exec(column);
  if (pods) return `pods-${pods[1]}-namespace-${pods[2]}`;
  return column.replaceAll("_", "-");
}

const CONTAINER_LABEL_COLUMNS = new Set([
  "container_name",
  "pod",
  "owner_name",
  "owner_kind",
  "workload",
  "workload_type",
  "namespace",
  "image_name",
  "accelerator_model_name",
  "accelerator_profile_name",
]);

function computeWindow(
  hub: Hub,
  clusterId: string,
  endMs: number,
  nodes: Map<string, Row>,
): WindowResult {
  const ix = indexFor(hub, clusterId);
  const out: WindowResult = { passed: false, container: [], namespace: [] };
  if (nodes.size === 0) return out; // no node data: no cost and no ROS reports for the hour
  if (rosQuery("ros-namespace-filter").evaluate(ix, endMs).length === 0) return out;
  out.passed = true;
  const dates = dateColumns(endMs);
  const containerHeader = header("ros-container");
  for (const row of runGroup(ix, "container", endMs).values()) {
    const node = nodes.get(row.get("node") ?? "\u0000none");
    out.container.push([
      ...dates,
      ...containerHeader.slice(4).map((column) => {
        if (column === "node") return node?.get("node") ?? "";
        if (column === "resource_id") return node?.get("resource_id") ?? "";
        if (CONTAINER_LABEL_COLUMNS.has(column)) return row.get(column) ?? "";
        return row.get(column.replaceAll("_", "-")) ?? "";
      }),
    ]);
  }
  const namespaceHeader = header("ros-namespace");
  for (const row of runGroup(ix, "namespace", endMs).values()) {
    out.namespace.push([
      ...dates,
      ...namespaceHeader.slice(4).map((column) =>
        column === "namespace" ? row.get("namespace") ?? "" : row.get(namespaceField(column)) ?? ""
      ),
    ]);
  }
  return out;
}

function dayStart(day: Date | string): number {
  const ms = typeof day === "string" ? Date.parse(`${day}T00:00:00Z`) : day.getTime();
  if (Number.isNaN(ms) || ms % DAY_MS !== 0) {
    throw new RangeError(
      `Invalid day ${String(day)}: expected "YYYY-MM-DD" or a Date at 00:00 UTC`,
    );
  }
  return ms;
}

/**
 * The instant vector the oracle computes for ROS query `queryName` (CMMO
 * name) of one cluster at `at`, in the oracle's evaluation order.
 *
 * @example
 * ```ts
 * import { buildHub, defaultTestHub } from "./model.ts";
 * import { evaluateRosQuery } from "./ros_truth.ts";
 * const hub = buildHub(defaultTestHub());
 * const v = evaluateRosQuery(hub, hub.clusters[0]!.id, "ros-namespace-filter", new Date("2026-11-01T03:15:00Z"));
 * v.length > 0; // true
 * ```
 */
export function evaluateRosQuery(
  hub: Hub,
  clusterId: string,
  queryName: string,
  at: Date,
): Sample[] {
  return rosQuery(queryName).evaluate(indexFor(hub, clusterId), at.getTime());
}

/**
 * Every row CMMO would write into `ros-openshift-container` (49 columns) and
 * `ros-openshift-namespace` (25 columns) for cluster `clusterId` on `day`
 * (`"YYYY-MM-DD"` or a Date at 00:00 UTC), for the windows ending at H:15,
 * H:30, H:45 and (H+1):00 of each hour H in `hours` (default 0–23). Rows are
 * complete (dates included, cells unquoted) and sorted by
 * {@linkcode compareRows} (byte order of the Go-CSV-encoded line). A window
 * whose filter query returns nothing, and every window of an hour without
 * node data, produce no rows.
 *
 * @example
 * ```ts
 * import { buildHub, defaultTestHub } from "./model.ts";
 * import { expectedRosReports } from "./ros_truth.ts";
 * const hub = buildHub(defaultTestHub());
 * const r = expectedRosReports(hub, hub.clusters[0]!.id, "2026-11-01", [3]);
 * r.windows.length; // 4
 * r.container[0]!.length; // 49
 * ```
 */
export function expectedRosReports(
  hub: Hub,
  clusterId: string,
  day: Date | string,
  hours: readonly number[] = Array.from({ length: 24 }, (_, h) => h),
): ExpectedRosReports {
  const dayMs = dayStart(day);
  clusterById(hub, clusterId);
  let perHub = windowCache.get(hub);
  if (!perHub) {
    perHub = new Map();
    windowCache.set(hub, perHub);
  }
  const result: ExpectedRosReports = { container: [], namespace: [], windows: [] };
  for (const h of hours) {
    if (!Number.isInteger(h) || h < 0 || h > 23) {
      throw new RangeError(`Invalid hour ${h}: expected an integer in [0, 23]`);
    }
    const hourMs = dayMs + h * HOUR_MS;
    let nodes: Map<string, Row> | undefined;
    for (let w = 1; w <= 4; w++) {
      const endMs = hourMs + w * WINDOW_MS;
      const key = `${clusterId}|${endMs}`;
      let window = perHub.get(key);
      if (!window) {
        nodes ??= nodeRows(hub, clusterId, hourMs);
        window = computeWindow(hub, clusterId, endMs, nodes);
        perHub.set(key, window);
      }
      result.windows.push({ end: goTime(endMs), passed: window.passed });
      for (const r of window.container) result.container.push([...r]);
      for (const r of window.namespace) result.namespace.push([...r]);
    }
  }
  const widths = [
    [result.container, header("ros-container").length],
    [result.namespace, header("ros-namespace").length],
  ] as const;
  for (const [rows, width] of widths) {
    for (const r of rows) {
      if (r.length !== width) {
        throw new Error(`Internal error: ROS row has ${r.length} cells, header has ${width}`);
      }
    }
    rows.sort(compareRows);
  }
  return result;
}
