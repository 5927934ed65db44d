/**
 * Rows of the two ROS reports for one 15-minute window (contract §1.8–1.9,
 * §3.1, §3.3): CMMO's `generateResourceOptimizationReports` as a pure
 * function from the window's instant-query answers to CSV records.
 *
 * @module
 */

import { formatFloat } from "../package/go_float.ts";
import type { RosQuery } from "./catalogue_groups.ts";
import { ROS_REPORTS, type RosReportName } from "./reports.ts";
import { goTimeString } from "./go_time.ts";
import { parseSampleValue } from "./reduce.ts";
import { pick, resourceId, sortRows } from "./report_rows.ts";
import { labelRow, type Labels, type Row, type RowMap } from "./row_map.ts";

/**
 * The parts of a ROS catalogue entry ({@linkcode RosQuery}, ros_catalogue.ts)
 * that row building reads; `byQuery` is keyed by `name`.
 */
export type RosRowQuery = Pick<
  RosQuery,
  "name" | "group" | "labels" | "labelRegex" | "rowKey" | "valueField"
>;

/** One sample of an instant-query (vector) answer: labels and the raw value string. */
export interface RosSample {
  /** The series' labels. */
  readonly metric: Labels;
  /** The sample value as the API sent it (e.g. `"0.25"`, `"NaN"`, `"+Inf"`). */
  readonly value: string;
}

/** Rows of one window: whether the window counts, and full CSV records per report. */
export interface RosWindowReports {
  /** The filter query returned at least one series: CMMO writes this window. */
  readonly passed: boolean;
  /** `ros-openshift-container` records, 49 fields each, sorted. */
  readonly container: string[][];
  /** `ros-openshift-namespace` records, 25 fields each, sorted. */
  readonly namespace: string[][];
}

const QUARTER_HOUR_MS = 900_000;

/**
 * The four common columns of a ROS window ending at `windowEnd` (contract
 * §1.1, §3.1): report_period_start (1st of the month of interval_start),
 * report_period_end (1st of the following month), interval_start
 * (`windowEnd − 14:59`), interval_end (`windowEnd`), as Go time strings.
 * `windowEnd` must lie on a quarter hour.
 *
 * @example
 * ```ts
 * import { rosWindowColumns } from "./ros_rows.ts";
 * rosWindowColumns(new Date("2026-12-01T00:00:00Z"));
 * // ["2026-11-01 00:00:00 +0000 UTC", "2026-12-01 00:00:00 +0000 UTC",
 * //  "2026-11-30 23:45:01 +0000 UTC", "2026-12-01 00:00:00 +0000 UTC"]
 * ```
 */
export function rosWindowColumns(windowEnd: Date): [string, string, string, string] {
  const end = windowEnd.getTime();
  if (!Number.isFinite(end) || end % QUARTER_HOUR_MS !== 0) {
    throw new RangeError(`rosWindowColumns: ${String(windowEnd)} is not on a quarter hour`);
  }
  const start = new Date(end - QUARTER_HOUR_MS + 1_000);
  const y = start.getUTCFullYear();
  const m = start.getUTCMonth();
  return [
    goTimeString(new Date(Date.UTC(y, m, 1))),
    goTimeString(new Date(Date.UTC(y, m + 1, 1))),
    goTimeString(start),
    goTimeString(windowEnd),
  ];
}

/**
 * The ends of the four ROS windows of the hour starting at `hourStart`:
 * H:15, H:30, H:45 and (H+1):00 (contract §3.1). The instant queries run at
 * these times.
 *
 * @example
 * ```ts
 * import { rosWindowEnds } from "./ros_rows.ts";
 * rosWindowEnds(new Date("2026-11-30T23:00:00Z")).map((d) => d.toISOString());
 * // ["2026-11-30T23:15:00.000Z", "2026-11-30T23:30:00.000Z",
 * //  "2026-11-30T23:45:00.000Z", "2026-12-01T00:00:00.000Z"]
 * ```
 */
export function rosWindowEnds(hourStart: Date): [Date, Date, Date, Date] {
  const h = hourStart.getTime();
  const at = (i: number) => new Date(h + i * QUARTER_HOUR_MS);
  return [at(1), at(2), at(3), at(4)];
}

/** Columns filled from labels (CMMO's `MetricKey` fields) or from the hour's node row. */
const LABEL_COLUMNS: ReadonlySet<string> = new Set([
  "container_name",
  "pod",
  "owner_name",
  "owner_kind",
  "workload",
  "workload_type",
  "namespace",
  "image_name",
  "node",
  "resource_id",
  "accelerator_model_name",
  "accelerator_profile_name",
]);

/**
 * The row field a ROS column reads (CMMO's mapstructure tags): a label column
 * reads the field of its name; a value column the hyphenated query name, e.g.
 * `cpu_usage_container_min` ← `cpu-usage-container-min`; the four pod-count
 * columns are named differently from their queries
 * (`namespace_running_pods_max` ← `pods-running-namespace-max`).
 */
function fieldOfColumn(column: string): string {
  if (LABEL_COLUMNS.has(column)) return column;
  const pods = /^namespace_(running|total)_pods_(max|avg)$/.exec(column);
  if (pods) return `pods-${pods[1]}-namespace-${pods[2]}`;
  return column.replaceAll("_", "-");
}

/**
 * Row fields read by the ROS reports' columns after the four date columns, in
 * header order (CMMO's mapstructure tags). In the container report, `node`
 * and `resource_id` are read from the hour's node row, not the container row.
 *
 * @example
 * ```ts
 * import { ROS_ROW_FIELDS } from "./ros_rows.ts";
 * ROS_ROW_FIELDS["ros-container"].length + 4; // 49
 * ROS_ROW_FIELDS["ros-namespace"][20]; // "pods-total-namespace-avg"
 * ```
 */
export const ROS_ROW_FIELDS: Readonly<
  Record<"ros-container" | "ros-namespace", readonly string[]>
> = {
  "ros-container": reportDefinitionFields("ros-container"),
  "ros-namespace": reportDefinitionFields("ros-namespace"),
};

function reportDefinitionFields(name: RosReportName): string[] {
  return ROS_REPORTS.find((r) => r.name === name)!.header.slice(4).map(fieldOfColumn);
}

const EMPTY: Row = new Map();

/**
 * Writes one vector sample into a row map as CMMO's `iterateVector`: label
 * fields, regex label fields, then the sample value (Go `ParseFloat` grammar)
 * formatted `%.6f` under `valueField`. Later writes of a field win.
 *
 * @example
 * ```ts
 * import { applyRosSample } from "./ros_rows.ts";
 * import type { RowMap } from "./row_map.ts";
 * const rows: RowMap = new Map();
 * applyRosSample(rows, {
 *   name: "cpu-usage-container-max", group: "ros-container",
 *   labels: { container_name: "container", pod: "pod", namespace: "namespace", node: "node" },
 *   labelRegex: {}, rowKey: ["container", "pod", "namespace"],
 *   valueField: "cpu-usage-container-max",
 * }, { metric: { container: "c", pod: "p", namespace: "ns", node: "n1" }, value: "0.0078125" });
 * rows.get("c,ns,p")!.get("cpu-usage-container-max"); // "0.007812"
 * ```
 */
export function applyRosSample(rows: RowMap, query: RosRowQuery, sample: RosSample): void {
  const row = labelRow(rows, query, sample.metric);
  if (query.valueField !== null) {
    row.set(query.valueField, formatFloat(parseSampleValue(sample.value)));
  }
}

/**
 * Builds the ROS container and namespace records of one window ending at
 * `windowEnd`.
 *
 * - `passed` is true when a `ros-filter` query answered at least one series;
 *   otherwise CMMO skips the window and there are no rows.
 * - Container queries fill one row map in catalogue order, namespace queries
 *   another; later writes of a field overwrite earlier ones (contract §3.3).
 * - A container row takes `node` and `resource_id` from the hour's node row
 *   named by its `node` field (the `Hostname` label for the accelerator
 *   queries, which run last), only when that node is in `nodes`; otherwise both
 *   are `""`. `resource_id` falls back to the node row's `provider_id` when
 *   `buildHourReports` has not set it yet.
 * - Missing fields are `""`; records are sorted as in `buildHourReports`.
 *
 * `byQuery` maps a query's `name` to its vector answer; a missing entry is an
 * empty answer. The caller does not call this for an hour without node rows
 * (CMMO writes no report at all for such an hour).
 *
 * @example
 * ```ts
 * import { buildRosWindowReports } from "./ros_rows.ts";
 * const filter = {
 *   name: "ros-namespace-filter", group: "ros-filter" as const, labels: { namespace: "namespace" },
 *   labelRegex: {}, rowKey: [], valueField: null,
 * };
 * const out = buildRosWindowReports([filter], new Map(), new Map(), new Date("2026-11-06T18:15:00Z"));
 * out.passed; // false
 * ```
 */
export function buildRosWindowReports(
  queries: readonly RosRowQuery[],
  byQuery: ReadonlyMap<string, readonly RosSample[]>,
  nodes: ReadonlyMap<string, Row>,
  windowEnd: Date,
): RosWindowReports {
  const dates = rosWindowColumns(windowEnd);
  const passed = queries.some((q) =>
    q.group === "ros-filter" && (byQuery.get(q.name)?.length ?? 0) > 0
  );
  if (!passed) return { passed, container: [], namespace: [] };

  const containers: RowMap = new Map();
  const namespaces: RowMap = new Map();
  for (const q of queries) {
    if (q.group === "ros-filter") continue;
    const rows = q.group === "ros-container" ? containers : namespaces;
    for (const sample of byQuery.get(q.name) ?? []) applyRosSample(rows, q, sample);
  }

  const container: string[][] = [];
  for (const row of containers.values()) {
    const nodeName = row.get("node");
    const node = nodeName === undefined ? EMPTY : nodes.get(nodeName) ?? EMPTY;
    const r: string[] = [...dates];
    for (const field of ROS_ROW_FIELDS["ros-container"]) {
      // `node` and `resource_id` come from the hour's node row (contract §1.8, as for pods).
      r.push(
        field === "node"
          ? node.get("node") ?? ""
          : field === "resource_id"
          ? node === EMPTY ? "" : node.get("resource_id") ?? resourceId(node.get("provider_id"))
          : row.get(field) ?? "",
      );
    }
    container.push(r);
  }

  const namespace: string[][] = [];
  for (const row of namespaces.values()) {
    const r: string[] = [...dates];
    pick(row, ROS_ROW_FIELDS["ros-namespace"], r);
    namespace.push(r);
  }

  return { passed, container: sortRows(container), namespace: sortRows(namespace) };
}
