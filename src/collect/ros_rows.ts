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
import { resourceId } from "./report_rows.ts";
import {
  labelRow,
  type Labels,
  type Row,
  rowKey,
  type RowMap,
  serializeLabels,
} from "./row_map.ts";
import { compareUtf8 } from "./utf8_compare.ts";

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
 * The result is that of {@linkcode applyRosSample} for every sample followed
 * by picking each report's fields, computed faster: each query is compiled
 * once (cached by query object) and each label set's row key and label fields
 * once per query shape (cached by label object, which the collector shares
 * across queries and reuses for every window of a batch). Query and label
 * objects must therefore not be modified once passed in.
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

  const containers = new Map<string, Slots>();
  const namespaces = new Map<string, Slots>();
  const containerBlank = blankRecord(dates, CONTAINER.width);
  const namespaceBlank = blankRecord(dates, NAMESPACE.width);
  for (const q of queries) {
    if (q.group === "ros-filter") continue;
    const samples = byQuery.get(q.name);
    if (samples === undefined || samples.length === 0) continue;
    const container = q.group === "ros-container";
    fill(
      container ? containers : namespaces,
      container ? containerBlank : namespaceBlank,
      compile(q),
      samples,
    );
  }

  const container: string[][] = [];
  for (const slots of containers.values()) {
    const nodeName = slots[NODE_AT];
    const node = nodeName === undefined ? EMPTY : nodes.get(nodeName) ?? EMPTY;
    // `node` and `resource_id` come from the hour's node row (contract §1.8, as for pods).
    slots[NODE_AT] = node.get("node") ?? "";
    slots[RESOURCE_ID_AT] = node === EMPTY
      ? ""
      : node.get("resource_id") ?? resourceId(node.get("provider_id"));
    container.push(finish(slots));
  }

  const namespace: string[][] = [];
  for (const slots of namespaces.values()) namespace.push(finish(slots));

  return { passed, container: sortRecords(container), namespace: sortRecords(namespace) };
}

// ---------------------------------------------------------------------------------------
// The fast path of buildRosWindowReports. A row is its record under construction: the four
// dates, then one slot per report field (`ROS_ROW_FIELDS`), undefined until written. Fields
// that no column reads are not kept; the container row's `node` slot holds its `node` field
// (the join key) until the record is finished.

/** A record under construction: the dates, then each field's value, undefined while unset. */
type Slots = (string | undefined)[];

/** Where a report's fields go in its records. */
interface Layout {
  /** Record length: the four dates and the fields. */
  readonly width: number;
  /** Field → record indexes that read it. */
  readonly at: ReadonlyMap<string, readonly number[]>;
}

function layout(fields: readonly string[]): Layout {
  const at = new Map<string, number[]>();
  fields.forEach((f, i) => {
    const list = at.get(f);
    if (list) list.push(4 + i);
    else at.set(f, [4 + i]);
  });
  return { width: 4 + fields.length, at };
}

const CONTAINER = layout(ROS_ROW_FIELDS["ros-container"]);
const NAMESPACE = layout(ROS_ROW_FIELDS["ros-namespace"]);
/** The container record's `node` index: the row's `node` field, then the node row's. */
const NODE_AT = 4 + ROS_ROW_FIELDS["ros-container"].indexOf("node");
/** The container record's `resource_id` index. */
const RESOURCE_ID_AT = 4 + ROS_ROW_FIELDS["ros-container"].indexOf("resource_id");
if (
  CONTAINER.at.get("node")?.length !== 1 || CONTAINER.at.get("resource_id")?.length !== 1
) {
  throw new Error("ros-container: node and resource_id must be one column each");
}

/**
 * What a query reads from a label set: the row key and, per write of a label
 * field, the label or regex. Queries that read alike share one shape (the 24
 * container value queries do), so a label set's cached reads serve all of them.
 */
interface Shape {
  /** Row key labels (CMMO `RowKey`). */
  readonly rowKey: readonly string[];
  /** Per write: the label it reads, or null for a regex field. */
  readonly labels: readonly (string | null)[];
  /** Per write: the regex of a regex field (unused for a label field). */
  readonly patterns: readonly string[];
}

/** A query compiled for its report's layout. */
interface Compiled {
  readonly shape: Shape;
  /** Per write of {@linkcode Shape.labels}: the record index. In CMMO's order: later ones win. */
  readonly slots: readonly number[];
  /** Whether the sample value is written (and so must parse): `valueField !== null`. */
  readonly hasValue: boolean;
  /** Record indexes of `valueField`. */
  readonly valueSlots: readonly number[];
}

const compiledQueries = new WeakMap<RosRowQuery, Compiled>();
const shapes = new Map<string, Shape>();

function compile(query: RosRowQuery): Compiled {
  let compiled = compiledQueries.get(query);
  if (compiled !== undefined) return compiled;
  const { at } = query.group === "ros-container" ? CONTAINER : NAMESPACE;
  const labels: (string | null)[] = [];
  const patterns: string[] = [];
  const slots: number[] = [];
  const write = (field: string, label: string | null, pattern: string) => {
    for (const slot of at.get(field) ?? []) {
      labels.push(label);
      patterns.push(pattern);
      slots.push(slot);
    }
  };
  // for…in, as labelRow iterates them.
  for (const field in query.labels) write(field, query.labels[field]!, "");
  for (const field in query.labelRegex) write(field, null, query.labelRegex[field]!);
  const rowKey = [...query.rowKey];
  const id = JSON.stringify([rowKey, labels, patterns]);
  let shape = shapes.get(id);
  if (shape === undefined) {
    shape = { rowKey, labels, patterns };
    shapes.set(id, shape);
  }
  const valueSlots = query.valueField === null ? [] : at.get(query.valueField) ?? [];
  compiled = { shape, slots, hasValue: query.valueField !== null, valueSlots };
  compiledQueries.set(query, compiled);
  return compiled;
}

/** A label set's row key and field values under one shape; `next` is its entry for another. */
interface Labelled {
  readonly shape: Shape;
  readonly key: string;
  readonly values: readonly string[];
  readonly next: Labelled | undefined;
}

const labelledOf = new WeakMap<Labels, Labelled>();

function labelled(metric: Labels, shape: Shape): Labelled {
  const first = labelledOf.get(metric);
  for (let e = first; e !== undefined; e = e.next) {
    if (e.shape === shape) return e;
  }
  const { labels, patterns } = shape;
  const values: string[] = [];
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    values.push(label === null ? serializeLabels(metric, patterns[i]!) : metric[label] ?? "");
  }
  const made: Labelled = { shape, key: rowKey(metric, shape.rowKey), values, next: first };
  labelledOf.set(metric, made);
  return made;
}

/** `[...dates, undefined × fields]`, the row every new row key starts from. */
function blankRecord(dates: readonly string[], width: number): Slots {
  const out: Slots = [...dates];
  while (out.length < width) out.push(undefined);
  return out;
}

/** {@linkcode applyRosSample} for each sample, on slot rows. */
function fill(
  rows: Map<string, Slots>,
  blank: Slots,
  query: Compiled,
  samples: readonly RosSample[],
): void {
  const { shape, slots, hasValue, valueSlots } = query;
  const writes = slots.length;
  for (let i = 0; i < samples.length; i++) {
    const sample = samples[i]!;
    const { key, values } = labelled(sample.metric, shape);
    let row = rows.get(key);
    if (row === undefined) {
      row = blank.slice();
      rows.set(key, row);
    }
    for (let w = 0; w < writes; w++) row[slots[w]!] = values[w];
    if (hasValue) {
      const value = formatFloat(parseSampleValue(sample.value));
      for (let v = 0; v < valueSlots.length; v++) row[valueSlots[v]!] = value;
    }
  }
}

/** The finished record: unset fields become `""`. */
function finish(slots: Slots): string[] {
  for (let i = 4; i < slots.length; i++) slots[i] ??= "";
  return slots as string[];
}

/**
 * `sortRows` for the records of one window: they share their four dates, so the
 * comparison starts after them; equal strings are skipped without a byte-order
 * comparison (which is 0 only for equal strings).
 */
function sortRecords(records: string[][]): string[][] {
  return records.sort((a, b) => {
    for (let i = 4; i < a.length; i++) {
      const x = a[i]!;
      const y = b[i]!;
      if (x !== y) return compareUtf8(x, y);
    }
    return 0;
  });
}
