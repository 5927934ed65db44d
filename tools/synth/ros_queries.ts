/**
 * The oracle's own, hand-written copy of CMMO's 56 ROS queries (contract §2:
 * `rosNamespaceFilter`, `rosContainerQueries`, `rosNamespaceQueries`): for
 * each query its CMMO metadata (MetricKey, ValName, RowKey) and an evaluation
 * plan built from {@link ./promql_eval.ts} primitives that mirrors the PromQL
 * expression as Prometheus 2.42 evaluates an instant query. Range windows are
 * those the bridge sends: every `[15m]` unchanged, and the `[5m]` inside the
 * namespace throttle subqueries widened to `[15m]` (BRIDGE.md §1 default).
 * Written independently of the bridge's catalogue.
 *
 * @module
 */

import {
  compareLabels,
  eq,
  labelReplace,
  type Labels,
  type Matcher,
  mulGroupLeft,
  ne,
  or,
  type Sample,
  type SeriesIndex,
} from "./promql_eval.ts";

/** Every `[15m]` window of the ROS queries. */
export const ROS_RANGE_MS = 15 * 60_000;
/** The `[5m]` rate window inside the namespace throttle subqueries, as the bridge widens it. */
export const ROS_SUBQUERY_RATE_MS = 15 * 60_000;
/** Default subquery resolution (Prometheus' global evaluation interval, 1m). */
export const SUBQUERY_STEP_MS = 60_000;

/** CMMO's ROS query groups. */
export type RosGroup = "filter" | "container" | "namespace";

/** One ROS query: CMMO metadata plus the oracle's evaluation plan. */
export interface RosQuery {
  readonly name: string;
  readonly group: RosGroup;
  /** `[row field, series label]` pairs. */
  readonly metricKey: readonly (readonly [string, string])[];
  /** CMMO's `ValName` (the row field the instant value goes to), or null. */
  readonly valName: string | null;
  readonly rowKey: readonly string[];
  /** Evaluates the instant query (cluster matcher implied) at `tMs`. */
  readonly evaluate: (ix: SeriesIndex, tMs: number) => Sample[];
}

type Eval = (ix: SeriesIndex, t: number) => Sample[];
type AggOp = "sum" | "avg" | "min" | "max";
type OverTime = "avg" | "min" | "max";

const INSIGHTS = "label_insights_cost_management_optimizations";
const COST = "label_cost_management_optimizations";
const EXCLUDED_NAMESPACES = /^(?:kube-.*|openshift|openshift-.*)$/;
const DEPLOYMENT_CONFIG = /^(?:deploymentconfig)$/i;
const CONTAINER: readonly Matcher[] = [ne("container", ""), ne("container", "POD"), ne("pod", "")];

/** Prometheus' `kahanSumInc` (Kahan–Neumaier compensated summation step). */
function kahanSumInc(inc: number, sum: number, c: number): [number, number] {
  const t = sum + inc;
  if (Math.abs(sum) >= Math.abs(inc)) c += (sum - t) + inc;
  else c += (inc - t) + sum;
  return [t, c];
}

function isInf(v: number): boolean {
  return v === Infinity || v === -Infinity;
}

function dropName(labels: Labels): Labels {
  if (labels.__name__ === undefined) return labels;
  const out: Record<string, string> = { ...labels };
  delete out.__name__;
  return out;
}

function sorted(v: Sample[]): Sample[] {
  return v.sort((a, b) => compareLabels(a.labels, b.labels));
}

/**
 * An instant selector, series in label order (the order Prometheus' TSDB
 * returns them in, which fixes the float summation order of aggregations).
 */
function select(
  ix: SeriesIndex,
  metric: string,
  matchers: readonly Matcher[],
  t: number,
  keep?: (labels: Labels) => boolean,
): Sample[] {
  const key = `select\u0001${metric}\u0001${JSON.stringify(matchers)}\u0001${keep ? "f" : ""}`;
  return ix.cached(key + (keep?.toString() ?? ""), t, () => {
    const v = ix.instant(metric, matchers, t);
    return sorted(keep ? v.filter((s) => keep(s.labels)) : [...v]);
  });
}

/**
 * `<fn>_over_time(metric{matchers}[range])` at `t`: samples in `[t − range, t]`
 * (Prometheus 2.42 includes both edges), with 2.42's float algorithms.
 */
function overTime(
  ix: SeriesIndex,
  fn: OverTime,
  metric: string,
  matchers: readonly Matcher[],
  t: number,
  rangeMs = ROS_RANGE_MS,
  keep?: (labels: Labels) => boolean,
): Sample[] {
  const out: Sample[] = [];
  for (const s of ix.selectSeries(metric, matchers)) {
    if (keep && !keep(s.labels)) continue;
    const pts = ix.points(s.spec, t - rangeMs, t).map((p) => p.v);
    if (pts.length === 0) continue;
    out.push({ labels: dropName(s.labels), value: reduceOverTime(fn, pts) });
  }
  return sorted(out);
}

/**
 * Prometheus 2.42's `avg_over_time` / `min_over_time` / `max_over_time` on
 * float samples (the incremental mean `mean += v/n − mean/n`, summed with
 * Kahan–Neumaier compensation).
 *
 * @example
 * ```ts
 * import { reduceOverTime } from "./ros_queries.ts";
 * reduceOverTime("avg", [1, 2, 3]); // 2
 * reduceOverTime("max", [1, 5, 3]); // 5
 * ```
 */
export function reduceOverTime(fn: OverTime, values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("Cannot reduce an empty range");
  if (fn === "avg") {
    let mean = 0;
    let c = 0;
    let count = 0;
    for (const v of values) {
      count++;
      if (isInf(mean)) {
        // An infinite mean stays as it is unless a NaN or an opposite infinity arrives.
        if (isInf(v) && (mean > 0) === (v > 0)) continue;
        if (!isInf(v) && !Number.isNaN(v)) continue;
      }
      [mean, c] = kahanSumInc(v / count - mean / count, mean, c);
    }
    return isInf(mean) ? mean : mean + c;
  }
  let out = values[0] ?? NaN;
  for (const v of values) {
    if (fn === "max" ? v > out || Number.isNaN(out) : v < out || Number.isNaN(out)) out = v;
  }
  return out;
}

/**
 * `<op> by (by…) (v)` as Prometheus 2.42 aggregates floats: groups in
 * first-seen order, labels are the present `by` labels, `avg` is the
 * incremental mean `mean += v/n − mean/n`.
 *
 * @example
 * ```ts
 * import { aggregateBy } from "./ros_queries.ts";
 * const v = [{ labels: { a: "1", b: "x" }, value: 2 }, { labels: { a: "1", b: "y" }, value: 4 }];
 * aggregateBy("avg", ["a"], v); // [{ labels: { a: "1" }, value: 3 }]
 * ```
 */
export function aggregateBy(op: AggOp, by: readonly string[], v: readonly Sample[]): Sample[] {
  const groups = new Map<string, { labels: Labels; value: number; mean: number; count: number }>();
  for (const s of v) {
    const key = JSON.stringify(by.map((n) => s.labels[n] ?? ""));
    const g = groups.get(key);
    if (!g) {
      const labels: Record<string, string> = {};
      for (const n of by) {
        const value = s.labels[n];
        if (value) labels[n] = value;
      }
      groups.set(key, { labels, value: s.value, mean: s.value, count: 1 });
      continue;
    }
    switch (op) {
      case "sum":
        g.value += s.value;
        break;
      case "avg":
        g.count++;
        if (isInf(g.mean)) {
          if (isInf(s.value) && (g.mean > 0) === (s.value > 0)) break;
          if (!isInf(s.value) && !Number.isNaN(s.value)) break;
        }
        g.mean += s.value / g.count - g.mean / g.count;
        break;
      case "max":
        if (g.value < s.value || Number.isNaN(g.value)) g.value = s.value;
        break;
      case "min":
        if (g.value > s.value || Number.isNaN(g.value)) g.value = s.value;
        break;
    }
  }
  return [...groups.values()].map((g) => ({
    labels: g.labels,
    value: op === "avg" ? g.mean : g.value,
  }));
}

/** `kube_namespace_labels{<label>='true'[, namespace!~'kube-.*|openshift|openshift-.*']}`. */
function optIn(label: string, excludePlatform: boolean): Eval {
  return (ix, t) =>
    select(
      ix,
      "kube_namespace_labels",
      [eq(label, "true")],
      t,
      excludePlatform ? (l) => !EXCLUDED_NAMESPACES.test(l.namespace ?? "") : undefined,
    );
}

const NSI = optIn(INSIGHTS, true);
const NSC = optIn(COST, true);
const NSI_ANY = optIn(INSIGHTS, false);
const NSC_ANY = optIn(COST, false);

/** `(A * on(namespace) group_left NSI) or (A * on(namespace) group_left NSC)` with an outer wrapper. */
function optedIn(inner: Eval, wrap: (v: Sample[]) => Sample[] = (v) => v): Eval {
  return (ix, t) => {
    const a = inner(ix, t);
    return or(
      wrap(mulGroupLeft(a, NSI(ix, t), ["namespace"], [])),
      wrap(mulGroupLeft(a, NSC(ix, t), ["namespace"], [])),
    );
  };
}

const CONTAINER_BY = ["container", "pod", "namespace", "node"] as const;

const runningByContainer: Eval = (ix, t) =>
  ix.cached("ros:running", t, () =>
    aggregateBy(
      "max",
      ["container", "pod", "namespace"],
      select(ix, "kube_pod_status_phase", [eq("phase", "Running")], t),
    ));

function resourceQuery(
  metric: "kube_pod_container_resource_requests" | "kube_pod_container_resource_limits",
  resource: "cpu" | "memory",
  op: "avg" | "sum",
): Eval {
  const unit = resource === "cpu" ? "core" : "byte";
  const inner = optedIn(
    (ix, t) => select(ix, metric, [...CONTAINER, eq("resource", resource), eq("unit", unit)], t),
    (v) => aggregateBy(op, CONTAINER_BY, v),
  );
  return (ix, t) => mulGroupLeft(inner(ix, t), runningByContainer(ix, t), ["pod", "namespace"], []);
}

function usageQuery(metric: string, fn: OverTime, op: AggOp): Eval {
  return optedIn(
    (ix, t) => overTime(ix, fn, metric, CONTAINER, t),
    (v) => aggregateBy(op, CONTAINER_BY, v),
  );
}

function throttleQuery(op: AggOp): Eval {
  return optedIn(
    (ix, t) =>
      sorted(ix.rate("container_cpu_cfs_throttled_seconds_total", CONTAINER, t, ROS_RANGE_MS)),
    (v) => aggregateBy(op, CONTAINER_BY, v),
  );
}

const containerInfo: Eval = (ix, t) =>
  ix.cached("ros:containerInfo", t, () => {
    const info = overTime(ix, "max", "kube_pod_container_info", [
      ne("container", ""),
      ne("container", "POD"),
    ], t);
    return or(
      mulGroupLeft(info, NSI(ix, t), ["namespace"], []),
      mulGroupLeft(info, NSC(ix, t), ["namespace"], []),
    );
  });

const CONTAINER_KEY = [
  ["container_name", "container"],
  ["pod", "pod"],
  ["namespace", "namespace"],
  ["node", "node"],
] as const;
const CONTAINER_ROW_KEY = ["container", "pod", "namespace"];

function containerValueQuery(name: string, evaluate: Eval): RosQuery {
  return {
    name,
    group: "container",
    metricKey: CONTAINER_KEY,
    valName: name,
    rowKey: CONTAINER_ROW_KEY,
    evaluate,
  };
}

function acceleratorQuery(
  name: string,
  metric: string,
  fn: OverTime,
  profile: boolean,
): RosQuery {
  const p = profile ? ["GPU_I_PROFILE"] : [];
  const exportedBy = [
    "modelName",
    ...p,
    "exported_container",
    "exported_namespace",
    "exported_pod",
    "Hostname",
  ];
  const ownBy = ["modelName", ...p, "container", "namespace", "pod", "Hostname"];
  const metricKey: (readonly [string, string])[] = [
    ["accelerator_model_name", "modelName"],
    ["container", "exported_container"],
    ["namespace", "exported_namespace"],
    ["pod", "exported_pod"],
    ["node", "Hostname"],
  ];
  if (profile) metricKey.push(["accelerator_profile_name", "GPU_I_PROFILE"]);
  return {
    name,
    group: "container",
    metricKey,
    valName: name,
    rowKey: ["exported_container", "exported_pod", "exported_namespace"],
    evaluate: (ix, t) => {
      const exported = aggregateBy(
        fn,
        exportedBy,
        overTime(ix, fn, metric, [
          ne("exported_namespace", ""),
          ne("exported_container", ""),
          ne("exported_pod", ""),
        ], t),
      );
      const own = aggregateBy(
        fn,
        ownBy,
        overTime(ix, fn, metric, [
          ne("namespace", ""),
          ne("container", ""),
          ne("pod", ""),
          eq("exported_namespace", ""),
        ], t),
      );
      const renamed = (ns: Sample[]) => labelReplace(ns, "exported_namespace", "namespace", "(.*)");
      const relabel = (v: Sample[]) =>
        labelReplace(
          labelReplace(
            labelReplace(v, "exported_container", "container", "(.*)"),
            "exported_namespace",
            "namespace",
            "(.*)",
          ),
          "exported_pod",
          "pod",
          "(.*)",
        );
      return or(
        or(
          or(
            mulGroupLeft(exported, renamed(NSI_ANY(ix, t)), ["exported_namespace"], ["namespace"]),
            mulGroupLeft(exported, renamed(NSC_ANY(ix, t)), ["exported_namespace"], ["namespace"]),
          ),
          relabel(mulGroupLeft(own, NSI_ANY(ix, t), ["namespace"], [])),
        ),
        relabel(mulGroupLeft(own, NSC_ANY(ix, t), ["namespace"], [])),
      );
    },
  };
}

/** `<fn>_over_time(inner[15m:])` at `t`: inner evaluated at the multiples of 1m in `[t − 15m, t]`. */
function subquery(fn: OverTime, name: string, inner: Eval): Eval {
  return (ix, t) => {
    const first = Math.ceil((t - ROS_RANGE_MS) / SUBQUERY_STEP_MS) * SUBQUERY_STEP_MS;
    const series = new Map<string, { labels: Labels; values: number[] }>();
    for (let tau = first; tau <= t; tau += SUBQUERY_STEP_MS) {
      for (const s of ix.cached(name, tau, () => inner(ix, tau))) {
        const key = JSON.stringify(Object.entries(s.labels).sort());
        let e = series.get(key);
        if (!e) {
          e = { labels: s.labels, values: [] };
          series.set(key, e);
        }
        e.values.push(s.value);
      }
    }
    return sorted(
      [...series.values()].map((e) => ({
        labels: dropName(e.labels),
        value: reduceOverTime(fn, e.values),
      })),
    );
  };
}

function namespaceSum(metric: string, matchers: readonly Matcher[]): Eval {
  return (ix, t) => aggregateBy("sum", ["namespace"], select(ix, metric, matchers, t));
}

const NAMESPACE_INNER: Record<string, Eval> = {
  "cpu-usage": namespaceSum(
    "node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate",
    CONTAINER,
  ),
  "cpu-throttle": (ix, t) =>
    aggregateBy(
      "sum",
      ["namespace"],
      sorted(
        ix.rate("container_cpu_cfs_throttled_seconds_total", CONTAINER, t, ROS_SUBQUERY_RATE_MS),
      ),
    ),
  "memory-usage": namespaceSum("container_memory_working_set_bytes", CONTAINER),
  "memory-rss-usage": namespaceSum("container_memory_rss", CONTAINER),
  "pods-running": namespaceSum("kube_pod_status_phase", [eq("phase", "Running")]),
  "pods-total": namespaceSum("kube_pod_info", []),
};

function namespaceQuery(name: string, evaluate: Eval): RosQuery {
  return {
    name,
    group: "namespace",
    metricKey: [["namespace", "namespace"]],
    valName: name,
    rowKey: ["namespace"],
    evaluate,
  };
}

function quotaQuery(name: string, resource: string): RosQuery {
  return namespaceQuery(
    name,
    optedIn(namespaceSum("kube_resourcequota", [eq("resource", resource), eq("type", "hard")])),
  );
}

function subqueryQuery(name: string, metric: string, fn: OverTime): RosQuery {
  const inner = NAMESPACE_INNER[metric];
  if (!inner) throw new RangeError(`Unknown namespace metric ${metric}`);
  return namespaceQuery(name, optedIn(subquery(fn, `ros:ns:${metric}`, inner)));
}

const CONTAINER_OVER = [
  ["cpu-usage", "node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate"],
  ["memory-usage", "container_memory_working_set_bytes"],
  ["memory-rss-usage", "container_memory_rss"],
] as const;

/**
 * The 56 ROS queries in CMMO's catalogue order: the filter, the 35 container
 * queries, the 20 namespace queries.
 *
 * @example
 * ```ts
 * import { ROS_QUERIES } from "./ros_queries.ts";
 * ROS_QUERIES.length; // 56
 * ROS_QUERIES.filter((q) => q.group === "container").length; // 35
 * ```
 */
export const ROS_QUERIES: readonly RosQuery[] = [
  {
    name: "ros-namespace-filter",
    group: "filter",
    metricKey: [["namespace", "namespace"]],
    valName: null,
    rowKey: [],
    evaluate: (ix, t) => or(NSI(ix, t), NSC(ix, t)),
  },
  {
    name: "container-image-owner",
    group: "container",
    metricKey: [
      ["image_name", "image"],
      ["owner_name", "owner_name"],
      ["owner_kind", "owner_kind"],
      ["container_name", "container"],
      ["pod", "pod"],
      ["namespace", "namespace"],
    ],
    valName: null,
    rowKey: CONTAINER_ROW_KEY,
    evaluate: (ix, t) =>
      mulGroupLeft(
        containerInfo(ix, t),
        aggregateBy(
          "max",
          ["pod", "namespace", "owner_kind", "owner_name"],
          overTime(ix, "max", "kube_pod_owner", CONTAINER, t),
        ),
        ["pod", "namespace"],
        ["owner_kind", "owner_name"],
      ),
  },
  {
    name: "container-image-workload",
    group: "container",
    metricKey: [
      ["image_name", "image"],
      ["workload", "workload"],
      ["workload_type", "workload_type"],
      ["container_name", "container"],
      ["pod", "pod"],
      ["namespace", "namespace"],
    ],
    valName: null,
    rowKey: CONTAINER_ROW_KEY,
    evaluate: (ix, t) =>
      mulGroupLeft(
        containerInfo(ix, t),
        aggregateBy(
          "max",
          ["pod", "namespace", "workload", "workload_type"],
          overTime(
            ix,
            "max",
            "namespace_workload_pod:kube_pod_owner:relabel",
            [ne("pod", "")],
            t,
            ROS_RANGE_MS,
            (l) => !DEPLOYMENT_CONFIG.test(l.workload_type ?? ""),
          ),
        ),
        ["pod", "namespace"],
        ["workload", "workload_type"],
      ),
  },
  containerValueQuery(
    "cpu-request-container-avg",
    resourceQuery("kube_pod_container_resource_requests", "cpu", "avg"),
  ),
  containerValueQuery(
    "cpu-request-container-sum",
    resourceQuery("kube_pod_container_resource_requests", "cpu", "sum"),
  ),
  containerValueQuery(
    "cpu-limit-container-avg",
    resourceQuery("kube_pod_container_resource_limits", "cpu", "avg"),
  ),
  containerValueQuery(
    "cpu-limit-container-sum",
    resourceQuery("kube_pod_container_resource_limits", "cpu", "sum"),
  ),
  ...(["avg", "min", "max", "sum"] as const).map((agg) =>
    containerValueQuery(
      `cpu-usage-container-${agg}`,
      usageQuery(CONTAINER_OVER[0][1], agg === "sum" ? "avg" : agg, agg),
    )
  ),
  ...(["avg", "max", "min", "sum"] as const).map((agg) =>
    containerValueQuery(`cpu-throttle-container-${agg}`, throttleQuery(agg))
  ),
  containerValueQuery(
    "memory-request-container-avg",
    resourceQuery("kube_pod_container_resource_requests", "memory", "avg"),
  ),
  containerValueQuery(
    "memory-request-container-sum",
    resourceQuery("kube_pod_container_resource_requests", "memory", "sum"),
  ),
  containerValueQuery(
    "memory-limit-container-avg",
    resourceQuery("kube_pod_container_resource_limits", "memory", "avg"),
  ),
  containerValueQuery(
    "memory-limit-container-sum",
    resourceQuery("kube_pod_container_resource_limits", "memory", "sum"),
  ),
  ...CONTAINER_OVER.slice(1).flatMap(([prefix, metric]) =>
    (["avg", "min", "max", "sum"] as const).map((agg) =>
      containerValueQuery(
        `${prefix}-container-${agg}`,
        usageQuery(metric, agg === "sum" ? "avg" : agg, agg),
      )
    )
  ),
  ...([
    ["core-usage-percentage", "DCGM_FI_DEV_GPU_UTIL", false],
    ["memory-copy-percentage", "DCGM_FI_DEV_MEM_COPY_UTIL", false],
    ["frame-buffer-usage", "DCGM_FI_DEV_FB_USED", true],
  ] as const).flatMap(([what, metric, profile]) =>
    (["min", "max", "avg"] as const).map((agg) =>
      acceleratorQuery(`accelerator-${what}-${agg}`, metric, agg, profile)
    )
  ),
  quotaQuery("cpu-request-namespace-sum", "requests.cpu"),
  quotaQuery("cpu-limit-namespace-sum", "limits.cpu"),
  subqueryQuery("cpu-usage-namespace-avg", "cpu-usage", "avg"),
  subqueryQuery("cpu-usage-namespace-max", "cpu-usage", "max"),
  subqueryQuery("cpu-usage-namespace-min", "cpu-usage", "min"),
  subqueryQuery("cpu-throttle-namespace-avg", "cpu-throttle", "avg"),
  subqueryQuery("cpu-throttle-namespace-max", "cpu-throttle", "max"),
  subqueryQuery("cpu-throttle-namespace-min", "cpu-throttle", "min"),
  quotaQuery("memory-request-namespace-sum", "requests.memory"),
  quotaQuery("memory-limit-namespace-sum", "limits.memory"),
  subqueryQuery("memory-usage-namespace-avg", "memory-usage", "avg"),
  subqueryQuery("memory-usage-namespace-max", "memory-usage", "max"),
  subqueryQuery("memory-usage-namespace-min", "memory-usage", "min"),
  subqueryQuery("memory-rss-usage-namespace-avg", "memory-rss-usage", "avg"),
  subqueryQuery("memory-rss-usage-namespace-max", "memory-rss-usage", "max"),
  subqueryQuery("memory-rss-usage-namespace-min", "memory-rss-usage", "min"),
  subqueryQuery("pods-running-namespace-max", "pods-running", "max"),
  subqueryQuery("pods-running-namespace-avg", "pods-running", "avg"),
  subqueryQuery("pods-total-namespace-max", "pods-total", "max"),
  subqueryQuery("pods-total-namespace-avg", "pods-total", "avg"),
];

/**
 * Looks up a ROS query by its CMMO name.
 *
 * @example
 * ```ts
 * import { rosQuery } from "./ros_queries.ts";
 * rosQuery("cpu-usage-namespace-avg").group; // "namespace"
 * ```
 */
export function rosQuery(name: string): RosQuery {
  const q = ROS_QUERIES.find((r) => r.name === name);
  if (!q) throw new RangeError(`Unknown ROS query "${name}"`);
  return q;
}
