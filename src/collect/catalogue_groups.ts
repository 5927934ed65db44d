/**
 * Types of the query catalogue and the mapping from CMMO's Go variables to
 * thanos-bridge's query groups.
 *
 * @module
 */

/** How the samples of one stream are reduced (contract §3.2). */
export type Reduction = "sum" | "max" | "min" | "avg";

/**
 * A set of queries whose results share one row map (one CMMO `mappedResults`).
 * The four GPU groups are separate maps that are merged afterwards (contract §1.7).
 */
export type QueryGroup =
  | "node"
  | "pod"
  | "storage"
  | "vm"
  | "namespace"
  | "gpu-capacity-non-mig"
  | "gpu-capacity-mig"
  | "gpu-utilization"
  | "gpu-max-slices";

/** The value part of a query: CMMO's `saveQueryValue`. */
export interface QueryValue {
  /** Row field that receives the reduced value (`ValName`); may be `""` (no column reads it). */
  readonly field: string;
  /** How the samples are reduced. */
  readonly reduction: Reduction;
  /** Row field that receives `value × 60` (sum) or `value × 60·n` (max), if any. */
  readonly transformedField: string | null;
}

/** One catalogue entry. `kind: "instant"` is reserved for the ROS queries of a later issue. */
export interface CostQuery {
  /** CMMO's query name. */
  readonly name: string;
  /** Which row map the query writes into. */
  readonly group: QueryGroup;
  /** `range`: query_range over the hour (cost); `instant`: ROS-style instant query. */
  readonly kind: "range" | "instant";
  /** CMMO's `QueryMap` key, or null for inline expressions. */
  readonly queryMapKey: string | null;
  /** PromQL as CMMO sends it, before the cluster matcher and window rewrite. */
  readonly expr: string;
  /** Row field ← series label (CMMO `MetricKey`). */
  readonly labels: Readonly<Record<string, string>>;
  /** Row field ← `name:value` of labels whose name matches the regex (CMMO `MetricKeyRegex`). */
  readonly labelRegex: Readonly<Record<string, string>>;
  /** Labels whose values (sorted, comma-joined) identify the row. */
  readonly rowKey: readonly string[];
  /** Value to reduce, or null for label-only queries. */
  readonly value: QueryValue | null;
}

/** CMMO Go variable → thanos-bridge group. ROS variables are not mapped yet. */
export const GROUP_BY_GO_VARIABLE: Readonly<Record<string, QueryGroup>> = {
  nodeQueries: "node",
  podQueries: "pod",
  volQueries: "storage",
  vmQueries: "vm",
  namespaceQueries: "namespace",
  costNvidiaGpuMemoryCapacityNonMIGQueries: "gpu-capacity-non-mig",
  costNvidiaGpuMemoryCapacityMIGQueries: "gpu-capacity-mig",
  costNvidiaGpuUtilizationQueries: "gpu-utilization",
  costNvidiaGpuMaxSlicesQueries: "gpu-max-slices",
};

/** Which ROS row map a ROS query writes into (contract §1.8–1.9, §2 groups 10–12). */
export type RosGroup = "ros-filter" | "ros-container" | "ros-namespace";

/**
 * One ROS query (contract §2, `rosNamespaceFilter`, `rosContainerQueries`,
 * `rosNamespaceQueries`). ROS queries are instant queries at the end of each
 * 15-minute window (contract §3.1); the single sample value is stored under
 * {@linkcode RosQuery.valueField} and CMMO's `Method` is ignored.
 */
export interface RosQuery {
  /** CMMO's query name. */
  readonly name: string;
  /** Which ROS row map the query writes into. */
  readonly group: RosGroup;
  /** CMMO's `QueryMap` key, or null for inline expressions. */
  readonly queryMapKey: string | null;
  /** PromQL as CMMO sends it, before the cluster matcher and window rewrite. */
  readonly expr: string;
  /** Row field ← series label (CMMO `MetricKey`). */
  readonly labels: Readonly<Record<string, string>>;
  /** Row field ← `name:value` of labels whose name matches the regex (CMMO `MetricKeyRegex`). */
  readonly labelRegex: Readonly<Record<string, string>>;
  /** Labels whose values (sorted, comma-joined) identify the row; empty for the filter. */
  readonly rowKey: readonly string[];
  /** Row field that receives the instant sample value (CMMO `ValName`), or null for label-only queries. */
  readonly valueField: string | null;
}

/** CMMO Go variable → ROS group, in CMMO's execution order. */
export const ROS_GROUP_BY_GO_VARIABLE: Readonly<Record<string, RosGroup>> = {
  rosNamespaceFilter: "ros-filter",
  rosContainerQueries: "ros-container",
  rosNamespaceQueries: "ros-namespace",
};
