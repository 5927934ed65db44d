/**
 * Which metrics the cost queries read, and what is lost when one is missing.
 *
 * Everything here is derived, never listed by hand: metric names come from
 * walking the parsed PromQL of the catalogue (`@prometheus-io/lezer-promql`),
 * and the link from row fields to report columns comes from running
 * {@linkcode buildHourReports} over marked rows (each field's value names the
 * field) and taking fields away one at a time. So `allowlist` and `doctor`
 * follow the catalogue and `report_rows.ts` when either changes.
 *
 * A query returns nothing when a metric it *requires* is missing: both sides
 * of a vector join (`*`, `and`, `on(…) group_left`, arithmetic) are required,
 * of an `or` only the metrics both sides require, of `unless` only the left
 * side's.
 *
 * @module
 */

import { ROS_QUERIES } from "./ros_catalogue.ts";
import type { RosQuery } from "./catalogue_groups.ts";
import { parsePromql } from "./promql_rewrite.ts";
import type { SyntaxNode } from "@lezer/common";
import { COST_QUERIES } from "./catalogue.ts";
import type { CostQuery, QueryGroup } from "./catalogue_groups.ts";
import { buildHourReports, type GroupMaps } from "./report_rows.ts";
import { REPORT_NAMES, type ReportName, REPORTS } from "./reports.ts";
import type { Row, RowMap } from "./row_map.ts";
import { rowKey } from "./row_map.ts";

/** The metrics of one catalogue query. */
export interface QueryMetrics {
  /** CMMO's query name. */
  readonly query: string;
  readonly group: QueryGroup;
  /** Every metric name its selectors read, sorted. */
  readonly metrics: readonly string[];
  /** The metrics without which the query returns nothing, sorted (a subset of `metrics`). */
  readonly required: readonly string[];
}

/** One column of one report. */
export interface ColumnRef {
  readonly report: ReportName;
  readonly column: string;
}

/** What one metric is used for. */
export interface MetricUsage {
  readonly metric: string;
  /** Queries whose expression reads it (of the reports asked about), catalogue order. */
  readonly queries: readonly string[];
  /** Queries that return nothing without it. */
  readonly emptiedQueries: readonly string[];
  /** Report columns that are empty (for some or all rows) without it. */
  readonly columns: readonly ColumnRef[];
  /** Whether it is missing on a normal cluster without the hardware or add-on (GPU, KubeVirt). */
  readonly optional: boolean;
}

/** A metric name prefix whose absence is normal, with the reason in words. */
export interface OptionalFamily {
  readonly prefix: string;
  readonly reason: string;
}

/** Metric families that clusters without the hardware or add-on do not have. */
export const OPTIONAL_FAMILIES: readonly OptionalFamily[] = [
  { prefix: "DCGM_", reason: "NVIDIA GPUs with the DCGM exporter" },
  { prefix: "kubevirt_", reason: "OpenShift Virtualization (KubeVirt)" },
];

/**
 * The optional family of a metric (GPU or KubeVirt), or null for a metric every
 * OpenShift cluster has.
 *
 * @example
 * ```ts
 * import { optionalFamily } from "./metric_usage.ts";
 * optionalFamily("DCGM_FI_DEV_MIG_MAX_SLICES")?.prefix; // "DCGM_"
 * optionalFamily("kube_node_info"); // null
 * ```
 */
export function optionalFamily(metric: string): OptionalFamily | null {
  return OPTIONAL_FAMILIES.find((f) => metric.startsWith(f.prefix)) ?? null;
}

// ---------------------------------------------------------------------------
// PromQL walk

/** Functions whose result does not depend on their argument having series. */
const NO_REQUIREMENT_FUNCTIONS: ReadonlySet<string> = new Set([
  "absent",
  "absent_over_time",
  "vector",
  "time",
  "pi",
]);

/** Nodes that wrap one expression without changing which series it has. */
const PASS_THROUGH: ReadonlySet<string> = new Set([
  "ParenExpr",
  "OffsetExpr",
  "SubqueryExpr",
  "StepInvariantExpr",
  "AnchoredExpr",
  "SmoothedExpr",
  "UnaryExpr",
  "MatrixSelector",
]);

/** What an expression reads: all metric names, and the ones it cannot do without. */
interface Reads {
  readonly all: ReadonlySet<string>;
  readonly required: ReadonlySet<string>;
}

const NOTHING: Reads = { all: new Set(), required: new Set() };

function union(a: ReadonlySet<string>, b: ReadonlySet<string>): Set<string> {
  return new Set([...a, ...b]);
}

function intersection(a: ReadonlySet<string>, b: ReadonlySet<string>): Set<string> {
  return new Set([...a].filter((x) => b.has(x)));
}

/** Expression children of a node (skips tokens, modifiers, labels, durations). */
function expressionChildren(node: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (let child = node.firstChild; child !== null; child = child.nextSibling) {
    if (isExpression(child)) out.push(child);
  }
  return out;
}

function isExpression(node: SyntaxNode): boolean {
  switch (node.name) {
    case "AggregateExpr":
    case "BinaryExpr":
    case "FunctionCall":
    case "MatrixSelector":
    case "NumberDurationLiteral":
    case "NumberLiteral":
    case "StringLiteral":
    case "VectorSelector":
    case "SubqueryExpr":
    case "UnaryExpr":
    case "ParenExpr":
    case "OffsetExpr":
    case "StepInvariantExpr":
    case "AnchoredExpr":
    case "SmoothedExpr":
      return true;
    default:
      return false;
  }
}

/** Decodes a PromQL string literal (Go escapes); enough for metric names. */
function decodeString(literal: string): string {
  const quote = literal[0];
  const body = literal.slice(1, -1);
  if (quote === "`") return body;
  return body.replace(
    /\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)/g,
    (_, e: string) => {
      const simple: Record<string, string> = {
        a: "\x07",
        b: "\b",
        f: "\f",
        n: "\n",
        r: "\r",
        t: "\t",
        v: "\v",
      };
      if (e.length === 1) return simple[e] ?? e;
      if (e[0] === "x" || e[0] === "u" || e[0] === "U") {
        return String.fromCodePoint(parseInt(e.slice(1), 16));
      }
      return String.fromCodePoint(parseInt(e, 8));
    },
  );
}

/** The metric name of a vector selector: `name{…}`, `{"name", …}` or `{__name__="name"}`. */
function selectorName(expr: string, selector: SyntaxNode): string | null {
  const id = selector.getChild("Identifier");
  if (id !== null) return expr.slice(id.from, id.to);
  const braces = selector.getChild("LabelMatchers");
  if (braces === null) return null;
  for (let item = braces.firstChild; item !== null; item = item.nextSibling) {
    if (item.name === "QuotedLabelName") {
      const lit = item.getChild("StringLiteral");
      if (lit !== null) return decodeString(expr.slice(lit.from, lit.to));
    }
    if (item.name !== "UnquotedLabelMatcher" && item.name !== "QuotedLabelMatcher") continue;
    const nameNode = item.name === "UnquotedLabelMatcher"
      ? item.getChild("LabelName")
      : item.getChild("QuotedLabelName")?.getChild("StringLiteral") ?? null;
    const op = item.getChild("MatchOp")?.firstChild ?? null;
    const value = item.getChild("StringLiteral");
    if (nameNode === null || op === null || value === null) continue;
    const raw = expr.slice(nameNode.from, nameNode.to);
    const name = item.name === "UnquotedLabelMatcher" ? raw : decodeString(raw);
    if (name === "__name__" && op.name === "EqlSingle") {
      return decodeString(expr.slice(value.from, value.to));
    }
  }
  return null;
}

function reads(expr: string, node: SyntaxNode): Reads {
  switch (node.name) {
    case "VectorSelector": {
      const name = selectorName(expr, node);
      if (name === null) return NOTHING;
      const set = new Set([name]);
      return { all: set, required: set };
    }
    case "NumberDurationLiteral":
    case "NumberLiteral":
    case "StringLiteral":
      return NOTHING;
    case "BinaryExpr": {
      const [left, right] = expressionChildren(node);
      const l = left ? reads(expr, left) : NOTHING;
      const r = right ? reads(expr, right) : NOTHING;
      const all = union(l.all, r.all);
      const op = node.getChild("Or") ?? node.getChild("Unless");
      if (op?.name === "Or") return { all, required: intersection(l.required, r.required) };
      if (op?.name === "Unless") return { all, required: l.required };
      return { all, required: union(l.required, r.required) };
    }
    case "FunctionCall": {
      const id = node.getChild("FunctionIdentifier");
      const name = id ? expr.slice(id.from, id.to) : "";
      const body = node.getChild("FunctionCallBody");
      const args = body ? expressionChildren(body).map((a) => reads(expr, a)) : [];
      const all = args.reduce((acc, a) => union(acc, a.all), new Set<string>());
      if (NO_REQUIREMENT_FUNCTIONS.has(name)) return { all, required: new Set() };
      return { all, required: args.reduce((acc, a) => union(acc, a.required), new Set<string>()) };
    }
    case "AggregateExpr": {
      const body = node.getChild("FunctionCallBody");
      const args = body ? expressionChildren(body).map((a) => reads(expr, a)) : [];
      return args.reduce(
        (acc, a) => ({ all: union(acc.all, a.all), required: union(acc.required, a.required) }),
        NOTHING,
      );
    }
    default: {
      // PromQL root, wrappers (parens, offset, subquery, matrix, unary) and anything newer.
      const children = expressionChildren(node);
      if (!PASS_THROUGH.has(node.name) && node.name !== "PromQL" && children.length !== 1) {
        throw new Error(`Unexpected PromQL node ${node.name} at offset ${node.from}`);
      }
      return children.reduce(
        (acc, c) => {
          const r = reads(expr, c);
          return { all: union(acc.all, r.all), required: union(acc.required, r.required) };
        },
        NOTHING,
      );
    }
  }
}

/**
 * The metric names an expression reads (every vector and matrix selector,
 * including `{__name__="x"}` and `{"x"}` forms), and those without which it
 * returns nothing. Selectors without a fixed name (`{__name__=~"a|b"}`,
 * `{job="x"}`) are not counted.
 *
 * @throws {SyntaxError} If the expression does not parse.
 *
 * @example
 * ```ts
 * import { expressionMetrics } from "./metric_usage.ts";
 * const m = expressionMetrics("a * on(x) b or c");
 * m.metrics; // ["a", "b", "c"]
 * m.required; // []
 * ```
 */
export function expressionMetrics(
  expr: string,
): { metrics: string[]; required: string[] } {
  const cached = parsedCache.get(expr);
  if (cached) return { metrics: [...cached.metrics], required: [...cached.required] };
  const r = reads(expr, parsePromql(expr).topNode);
  const result = { metrics: [...r.all].sort(), required: [...r.required].sort() };
  if (parsedCache.size < 1000) parsedCache.set(expr, result);
  return { metrics: [...result.metrics], required: [...result.required] };
}

const parsedCache = new Map<string, { metrics: string[]; required: string[] }>();

/**
 * The metrics of every query of a catalogue (default: CMMO's 36 cost queries).
 *
 * @example
 * ```ts
 * import { queryMetrics } from "./metric_usage.ts";
 * queryMetrics().find((q) => q.query === "node-role")?.metrics; // ["kube_node_role"]
 * ```
 */
export function queryMetrics(queries: readonly CostQuery[] = COST_QUERIES): QueryMetrics[] {
  return queries.map((q) => ({ query: q.name, group: q.group, ...expressionMetrics(q.expr) }));
}

// ---------------------------------------------------------------------------
// Fields → columns, derived from buildHourReports

/** A row field of one query group. */
interface FieldRef {
  readonly group: QueryGroup;
  readonly field: string;
}

/** How each report's columns depend on group fields and groups. */
interface ColumnSources {
  /** report → column → fields whose absence empties the column. */
  readonly fields: ReadonlyMap<ReportName, ReadonlyMap<string, readonly FieldRef[]>>;
  /** report → groups without whose rows the report has no rows. */
  readonly rowGroups: ReadonlyMap<ReportName, readonly QueryGroup[]>;
}

/** The fields a query writes into its group's rows (CMMO `iterateMatrix`). */
function writtenFields(q: CostQuery): string[] {
  const out = [...Object.keys(q.labels), ...Object.keys(q.labelRegex)];
  if (q.value) {
    if (q.value.field !== "") out.push(q.value.field);
    if (q.value.transformedField !== null) out.push(q.value.transformedField);
  }
  return out;
}

const DATES = ["\u0001d0", "\u0001d1", "\u0001d2", "\u0001d3"] as const;

function mark(group: QueryGroup, field: string): string {
  return `\u0001${group}\u0002${field}`;
}

/**
 * Marked row maps: one row per group, every field's value naming the field.
 * `mig` chooses which GPU merge path the utilization row takes.
 */
function markedMaps(
  queries: readonly CostQuery[],
  mig: boolean,
  without?: FieldRef | QueryGroup,
): GroupMaps {
  const rows = new Map<QueryGroup, Row>();
  for (const q of queries) {
    let row = rows.get(q.group);
    if (!row) rows.set(q.group, row = new Map());
    for (const f of writtenFields(q)) row.set(f, mark(q.group, f));
  }
  const util = rows.get("gpu-utilization");
  if (util && !mig) util.set("mig_instance_id", "");
  const keys = new Map<QueryGroup, string>();
  // Pods find their node row by their own `node` field.
  keys.set("node", rows.get("pod")?.get("node") ?? "n");
  if (util) {
    keys.set(
      "gpu-capacity-non-mig",
      rowKey({
        pod: util.get("pod") ?? "",
        namespace: util.get("namespace") ?? "",
        node: util.get("node") ?? "",
      }, ["pod", "namespace", "node"]),
    );
  }
  const maps = new Map<QueryGroup, RowMap>();
  for (const [group, row] of rows) {
    if (without === group) continue;
    if (typeof without === "object" && without.group === group) row.delete(without.field);
    maps.set(group, new Map([[keys.get(group) ?? "k", row]]));
  }
  return maps;
}

let sourcesCache: { queries: readonly CostQuery[]; sources: ColumnSources } | null = null;

/** Derives {@linkcode ColumnSources} by taking fields and groups away one at a time. */
function columnSources(queries: readonly CostQuery[]): ColumnSources {
  if (sourcesCache?.queries === queries) return sourcesCache.sources;
  const fields = new Map<ReportName, Map<string, FieldRef[]>>();
  const rowGroups = new Map<ReportName, QueryGroup[]>();
  for (const r of REPORTS) {
    fields.set(r.name, new Map(r.header.slice(DATES.length).map((c) => [c, []])));
    rowGroups.set(r.name, []);
  }
  const groups = [...new Set(queries.map((q) => q.group))];
  const refs: FieldRef[] = [];
  for (const q of queries) {
    for (const field of writtenFields(q)) {
      if (!refs.some((r) => r.group === q.group && r.field === field)) {
        refs.push({ group: q.group, field });
      }
    }
  }
  for (const mig of [true, false]) {
    const base = buildHourReports(markedMaps(queries, mig), DATES);
    for (const group of groups) {
      const out = buildHourReports(markedMaps(queries, mig, group), DATES);
      for (const r of REPORTS) {
        const list = rowGroups.get(r.name)!;
        if ((base.get(r.name)?.length ?? 0) > 0 && out.get(r.name)?.length === 0) {
          if (!list.includes(group)) list.push(group);
        }
      }
    }
    for (const ref of refs) {
      const out = buildHourReports(markedMaps(queries, mig, ref), DATES);
      for (const r of REPORTS) {
        const before = base.get(r.name)?.[0];
        if (before === undefined) continue;
        const after = out.get(r.name)?.[0];
        const columns = fields.get(r.name)!;
        r.header.forEach((column, i) => {
          if (i < DATES.length || before[i] === "") return;
          if (after !== undefined && after[i] !== "") return;
          const list = columns.get(column)!;
          if (!list.some((x) => x.group === ref.group && x.field === ref.field)) list.push(ref);
        });
      }
    }
  }
  const sources = { fields, rowGroups };
  sourcesCache = { queries, sources };
  return sources;
}

// ---------------------------------------------------------------------------
// Public questions

function reportList(reports: readonly ReportName[] | undefined): readonly ReportName[] {
  if (reports === undefined) return REPORT_NAMES;
  for (const r of reports) {
    if (!REPORT_NAMES.includes(r)) {
      throw new RangeError(
        `Unknown report ${JSON.stringify(r)}; known: ${REPORT_NAMES.join(", ")}`,
      );
    }
  }
  return reports;
}

/**
 * The catalogue queries that the given reports need (default: all six): every
 * query that writes a field one of their columns is made from, every query of
 * a group without whose rows they have none, and every node query (CMMO writes
 * nothing for an hour without node rows). Catalogue order.
 *
 * @throws {RangeError} On an unknown report name.
 *
 * @example
 * ```ts
 * import { queriesOfReports } from "./metric_usage.ts";
 * queriesOfReports(["namespace"]).map((q) => q.group).includes("pod"); // false
 * ```
 */
export function queriesOfReports(
  reports?: readonly ReportName[],
  queries: readonly CostQuery[] = COST_QUERIES,
): CostQuery[] {
  const wanted = reportList(reports);
  const sources = columnSources(queries);
  const groups = new Set<QueryGroup>(["node"]);
  const fields = new Set<string>();
  for (const r of wanted) {
    for (const g of sources.rowGroups.get(r) ?? []) groups.add(g);
    for (const refs of sources.fields.get(r)?.values() ?? []) {
      for (const ref of refs) fields.add(`${ref.group}\u0000${ref.field}`);
    }
  }
  return queries.filter((q) =>
    groups.has(q.group) || writtenFields(q).some((f) => fields.has(`${q.group}\u0000${f}`))
  );
}

/**
 * Metric names the 56 ROS queries read (sorted, unique).
 *
 * @example
 * ```ts
 * import { rosMetrics } from "./metric_usage.ts";
 * rosMetrics().includes("container_cpu_cfs_throttled_seconds_total"); // true
 * ```
 */
export function rosMetrics(queries: readonly RosQuery[] = ROS_QUERIES): string[] {
  const names = new Set<string>();
  for (const q of queries) for (const m of expressionMetrics(q.expr).metrics) names.add(m);
  return [...names].sort();
}

/**
 * Every metric the given reports' queries read (default: all six reports),
 * sorted and unique: the `names` of the ACM allowlist.
 *
 * @throws {RangeError} On an unknown report name.
 *
 * @example
 * ```ts
 * import { metricsOfReports } from "./metric_usage.ts";
 * metricsOfReports(["namespace"]).includes("kube_namespace_labels"); // true
 * metricsOfReports(["namespace"]).includes("kubevirt_vmi_info"); // false
 * ```
 */
export function metricsOfReports(
  reports?: readonly ReportName[],
  queries: readonly CostQuery[] = COST_QUERIES,
): string[] {
  const names = new Set<string>();
  for (const q of queriesOfReports(reports, queries)) {
    for (const m of expressionMetrics(q.expr).metrics) names.add(m);
  }
  return [...names].sort();
}

/**
 * The report columns that are empty, for some or all rows, when the given
 * metrics are missing (of the given reports, default all six): columns whose
 * fields only empty queries write, and every column of a report whose
 * row-giving groups are all empty (all reports when every node query is).
 * Report order of {@linkcode REPORTS}, then header order.
 *
 * @throws {RangeError} On an unknown report name.
 *
 * @example
 * ```ts
 * import { columnsLostWithout } from "./metric_usage.ts";
 * columnsLostWithout("kube_pod_container_resource_limits", ["pod"]);
 * // [{ report: "pod", column: "pod_limit_cpu_core_seconds" },
 * //  { report: "pod", column: "pod_limit_memory_byte_seconds" }]
 * ```
 */
export function columnsLostWithout(
  metrics: string | readonly string[],
  reports?: readonly ReportName[],
  queries: readonly CostQuery[] = COST_QUERIES,
): ColumnRef[] {
  const missing = new Set(typeof metrics === "string" ? [metrics] : metrics);
  const wanted = new Set(reportList(reports));
  const sources = columnSources(queries);
  const empty = new Set(
    queries.filter((q) => expressionMetrics(q.expr).required.some((m) => missing.has(m))),
  );
  const emptyGroup = (g: QueryGroup) =>
    queries.filter((q) => q.group === g).every((q) => empty.has(q));
  const emptyField = (ref: FieldRef) =>
    queries.filter((q) => q.group === ref.group && writtenFields(q).includes(ref.field))
      .every((q) => empty.has(q));
  const out: ColumnRef[] = [];
  for (const r of REPORTS) {
    if (!wanted.has(r.name)) continue;
    const noRows = emptyGroup("node") ||
      (sources.rowGroups.get(r.name) ?? []).some((g) => emptyGroup(g));
    for (const column of r.header.slice(DATES.length)) {
      const refs = sources.fields.get(r.name)?.get(column) ?? [];
      if (noRows || refs.some(emptyField)) out.push({ report: r.name, column });
    }
  }
  return out;
}

/**
 * For every metric the given reports need: which queries read it, which of
 * them return nothing without it, which columns are then empty, and whether
 * its absence is normal (GPU, KubeVirt). Sorted by metric name.
 *
 * @throws {RangeError} On an unknown report name.
 *
 * @example
 * ```ts
 * import { metricUsage } from "./metric_usage.ts";
 * const u = metricUsage(["pod"]).find((m) => m.metric === "container_memory_usage_bytes");
 * u?.columns; // [{ report: "pod", column: "pod_usage_memory_byte_seconds" }]
 * ```
 */
export function metricUsage(
  reports?: readonly ReportName[],
  queries: readonly CostQuery[] = COST_QUERIES,
): MetricUsage[] {
  const needed = queriesOfReports(reports, queries);
  const parsed = needed.map((q) => ({ q, ...expressionMetrics(q.expr) }));
  return metricsOfReports(reports, queries).map((metric) => ({
    metric,
    queries: parsed.filter((p) => p.metrics.includes(metric)).map((p) => p.q.name),
    emptiedQueries: parsed.filter((p) => p.required.includes(metric)).map((p) => p.q.name),
    columns: columnsLostWithout(metric, reports, queries),
    optional: optionalFamily(metric) !== null,
  }));
}

/**
 * Formats columns as `report: a, b; report2: c` for messages.
 *
 * @example
 * ```ts
 * import { formatColumns } from "./metric_usage.ts";
 * formatColumns([{ report: "pod", column: "a" }, { report: "pod", column: "b" }]); // "pod: a, b"
 * ```
 */
export function formatColumns(columns: readonly ColumnRef[]): string {
  const by = new Map<ReportName, string[]>();
  for (const c of columns) {
    const list = by.get(c.report) ?? [];
    list.push(c.column);
    by.set(c.report, list);
  }
  return [...by].map(([r, cs]) => `${r}: ${cs.join(", ")}`).join("; ");
}
