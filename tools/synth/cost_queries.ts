/**
 * The oracle's own, hand-written copy of CMMO's 36 cost queries (contract §2):
 * for each query its CMMO metadata (MetricKey, MetricKeyRegex, QueryValue,
 * RowKey, group) and an evaluation plan built from {@link ./promql_eval.ts}
 * primitives that mirrors the PromQL expression with every range window set
 * to 15m (BRIDGE.md §1). Written independently of the bridge's catalogue.
 *
 * @module
 */

import {
  addScalar,
  aggregate,
  clampMax,
  eq,
  labelReplace,
  type Matcher,
  mulGroupLeft,
  ne,
  or,
  type Sample,
  type SeriesIndex,
} from "./promql_eval.ts";

/** The range window every `rate`/`*_over_time` gets (BRIDGE.md §1 default). */
export const RANGE_WINDOW_MS = 15 * 60_000;

/** CMMO query groups, in the order CMMO runs them. */
export type CostGroup =
  | "node"
  | "pod"
  | "storage"
  | "vm"
  | "gpuNonMig"
  | "gpuMig"
  | "gpuUtilization"
  | "gpuMaxSlices"
  | "namespace";

/** CMMO's `QueryValue`. */
export interface QueryValue {
  readonly valName: string;
  readonly method: "sum" | "max";
  readonly transformedName: string;
}

/** One cost query: CMMO metadata plus the oracle's evaluation plan. */
export interface CostQuery {
  readonly name: string;
  readonly group: CostGroup;
  /** `[row field, series label]` pairs. */
  readonly metricKey: readonly (readonly [string, string])[];
  /** `[row field, Go regexp on label names]` pairs. */
  readonly metricKeyRegex: readonly (readonly [string, string])[];
  readonly value: QueryValue | null;
  readonly rowKey: readonly string[];
  /** Evaluates the query (with the cluster matcher implied) at `tMs`. */
  readonly evaluate: (ix: SeriesIndex, tMs: number) => Sample[];
}

type Eval = (ix: SeriesIndex, t: number) => Sample[];

const running: Eval = (ix, t) =>
  ix.cached(
    "running",
    t,
    () =>
      aggregate(
        "max",
        ["pod", "namespace"],
        ix.instant("kube_pod_status_phase", [eq("phase", "Running")], t),
      ),
  );

const runningExported: Eval = (ix, t) =>
  ix.cached("runningExported", t, () =>
    aggregate(
      "max",
      ["exported_pod", "exported_namespace"],
      labelReplace(
        labelReplace(
          ix.instant("kube_pod_status_phase", [eq("phase", "Running")], t),
          "exported_pod",
          "pod",
          "(.*)",
        ),
        "exported_namespace",
        "namespace",
        "(.*)",
      ),
    ));

const nodeInfo: Eval = (ix, t) =>
  ix.cached(
    "nodeInfo",
    t,
    () => aggregate("max", ["node", "provider_id"], ix.instant("kube_node_info", [], t)),
  );

const pvcInfo: Eval = (ix, t) =>
  ix.cached("pvcInfo", t, () =>
    aggregate(
      "max",
      ["namespace", "persistentvolumeclaim", "volumename"],
      ix.instant("kube_persistentvolumeclaim_info", [ne("volumename", "")], t),
    ));

const vmRunning: Eval = (ix, t) =>
  ix.cached(
    "vmRunning",
    t,
    () =>
      aggregate(
        "max",
        ["name", "namespace"],
        ix.instant("kubevirt_vmi_info", [eq("phase", "running")], t),
      ),
  );

const gpuNodeLabels: Eval = (ix, t) =>
  ix.cached("gpuNodeLabels", t, () =>
    labelReplace(
      ix.instant("kube_node_labels", [ne("label_nvidia_com_gpu_memory", "")], t),
      "Hostname",
      "node",
      "(.+)",
    ));

function exportFallback(v: Sample[]): Sample[] {
  return labelReplace(
    labelReplace(v, "exported_pod", "pod", "(.*)"),
    "exported_namespace",
    "namespace",
    "(.*)",
  );
}

const NODE_KEY = [["node", "node"], ["provider_id", "provider_id"]] as const;
const POD_KEY = [["pod", "pod"], ["namespace", "namespace"], ["node", "node"]] as const;
const VM_KEY = [["name", "name"], ["namespace", "namespace"]] as const;
const GPU_ROW_KEY = ["exported_pod", "exported_namespace", "Hostname", "UUID", "GPU_I_ID"];
const GPU_UTIL_KEY = [
  ["node", "Hostname"],
  ["namespace", "exported_namespace"],
  ["pod", "exported_pod"],
  ["gpu_uuid", "UUID"],
  ["model_name", "modelName"],
  ["mig_instance_id", "GPU_I_ID"],
  ["mig_profile", "GPU_I_PROFILE"],
  ["vendor_name", "device"],
] as const;

function nodeQuery(name: string, kind: "allocatable" | "capacity", resource: string): CostQuery {
  const unit = resource === "cpu" ? "cpu-core" : "memory-byte";
  const noun = resource === "cpu" ? "cpu-cores" : "memory-bytes";
  return {
    name,
    group: "node",
    metricKey: NODE_KEY,
    metricKeyRegex: [],
    value: {
      valName: `node-${kind}-${noun}`,
      method: "max",
      transformedName: `node-${kind}-${unit}-seconds`,
    },
    rowKey: ["node"],
    evaluate: (ix, t) =>
      mulGroupLeft(
        ix.instant(`kube_node_status_${kind}`, [eq("resource", resource)], t),
        nodeInfo(ix, t),
        ["node"],
        ["provider_id"],
      ),
  };
}

function podResourceQuery(
  name: string,
  metric: string,
  resource: string,
  valName: string,
  transformedName: string,
): CostQuery {
  return {
    name,
    group: "pod",
    metricKey: POD_KEY,
    metricKeyRegex: [],
    value: { valName, method: "sum", transformedName },
    rowKey: ["pod", "namespace"],
    evaluate: (ix, t) =>
      aggregate(
        "sum",
        ["pod", "namespace", "node"],
        mulGroupLeft(
          ix.instant(metric, [
            ne("pod", ""),
            ne("namespace", ""),
            ne("node", ""),
            eq("resource", resource),
          ], t),
          running(ix, t),
          ["pod", "namespace"],
          [],
        ),
      ),
  };
}

function pvcJoin(metric: string, matchers: Matcher[] = []): Eval {
  return (ix, t) =>
    mulGroupLeft(
      ix.instant(metric, matchers, t),
      pvcInfo(ix, t),
      ["persistentvolumeclaim", "namespace"],
      ["volumename"],
    );
}

function vmRunningJoin(inner: Eval): Eval {
  return (ix, t) => mulGroupLeft(inner(ix, t), vmRunning(ix, t), ["name", "namespace"], []);
}

function vmResource(
  name: string,
  metric: string,
  matchers: Matcher[],
  valName: string,
  transformedName: string,
  metricKey: readonly (readonly [string, string])[] = VM_KEY,
): CostQuery {
  return {
    name,
    group: "vm",
    metricKey,
    metricKeyRegex: [],
    value: { valName, method: "max", transformedName },
    rowKey: ["name", "namespace"],
    evaluate: vmRunningJoin((ix, t) =>
      aggregate(
        "sum",
        ["name", "namespace"],
        ix.instant(metric, [ne("name", ""), ne("namespace", ""), ...matchers], t),
      )
    ),
  };
}

function gpuUtilizationLike(
  name: string,
  metric: string,
  by: readonly string[],
  transform: (v: Sample[]) => Sample[],
  value: QueryValue,
  metricKey: readonly (readonly [string, string])[],
  group: CostGroup,
): CostQuery {
  const fallbackBy = by.map((l) =>
    l === "exported_pod" ? "pod" : l === "exported_namespace" ? "namespace" : l
  );
  return {
    name,
    group,
    metricKey,
    metricKeyRegex: [],
    value,
    rowKey: GPU_ROW_KEY,
    evaluate: (ix, t) =>
      or(
        mulGroupLeft(
          aggregate("sum", by, transform(ix.instant(metric, [ne("UUID", "")], t))),
          runningExported(ix, t),
          ["exported_pod", "exported_namespace"],
          ["pod", "namespace"],
        ),
        exportFallback(
          mulGroupLeft(
            aggregate(
              "sum",
              fallbackBy,
              transform(ix.instant(metric, [ne("UUID", ""), eq("exported_namespace", "")], t)),
            ),
            running(ix, t),
            ["pod", "namespace"],
            [],
          ),
        ),
      ),
  };
}

const GPU_BY = [
  "exported_pod",
  "exported_namespace",
  "Hostname",
  "UUID",
  "modelName",
  "GPU_I_ID",
  "GPU_I_PROFILE",
  "device",
];

/** All 36 cost queries, grouped and ordered as CMMO runs them. */
export const COST_QUERIES: readonly CostQuery[] = [
  nodeQuery("node-allocatable-cpu-cores", "allocatable", "cpu"),
  nodeQuery("node-allocatable-memory-bytes", "allocatable", "memory"),
  nodeQuery("node-capacity-cpu-cores", "capacity", "cpu"),
  nodeQuery("node-capacity-memory-bytes", "capacity", "memory"),
  {
    name: "node-role",
    group: "node",
    metricKey: [["node", "node"], ["node-role", "role"]],
    metricKeyRegex: [],
    value: null,
    rowKey: ["node"],
    evaluate: (ix, t) => ix.instant("kube_node_role", [], t),
  },
  {
    name: "node-labels",
    group: "node",
    metricKey: [],
    metricKeyRegex: [["node_labels", "label_*"]],
    value: null,
    rowKey: ["node"],
    evaluate: (ix, t) => ix.instant("kube_node_labels", [], t),
  },

  podResourceQuery(
    "pod-limit-cpu-cores",
    "kube_pod_container_resource_limits",
    "cpu",
    "pod-limit-cpu-cores",
    "pod-limit-cpu-core-seconds",
  ),
  podResourceQuery(
    "pod-limit-memory-bytes",
    "kube_pod_container_resource_limits",
    "memory",
    "pod-limit-memory-bytes",
    "pod-limit-memory-byte-seconds",
  ),
  podResourceQuery(
    "pod-request-cpu-cores",
    "kube_pod_container_resource_requests",
    "cpu",
    "pod-request-cpu-cores",
    "pod-request-cpu-core-seconds",
  ),
  podResourceQuery(
    "pod-request-memory-bytes",
    "kube_pod_container_resource_requests",
    "memory",
    "pod-request-memory-bytes",
    "pod-request-memory-byte-seconds",
  ),
  {
    name: "pod-usage-cpu-cores",
    group: "pod",
    metricKey: POD_KEY,
    metricKeyRegex: [],
    value: {
      valName: "pod-usage-cpu-cores",
      method: "sum",
      transformedName: "pod-usage-cpu-core-seconds",
    },
    rowKey: ["pod", "namespace"],
    evaluate: (ix, t) =>
      aggregate(
        "sum",
        ["pod", "namespace", "node"],
        ix.rate(
          "container_cpu_usage_seconds_total",
          [
            ne("container", ""),
            ne("container", "POD"),
            ne("pod", ""),
            ne("namespace", ""),
            ne("node", ""),
          ],
          t,
          RANGE_WINDOW_MS,
        ),
      ),
  },
  {
    name: "pod-usage-memory-bytes",
    group: "pod",
    metricKey: POD_KEY,
    metricKeyRegex: [],
    value: {
      valName: "pod-usage-memory-bytes",
      method: "sum",
      transformedName: "pod-usage-memory-byte-seconds",
    },
    rowKey: ["pod", "namespace"],
    evaluate: (ix, t) =>
      aggregate(
        "sum",
        ["pod", "namespace", "node"],
        ix.instant("container_memory_usage_bytes", [
          ne("container", ""),
          ne("container", "POD"),
          ne("pod", ""),
          ne("namespace", ""),
          ne("node", ""),
        ], t),
      ),
  },
  {
    name: "pod-labels",
    group: "pod",
    metricKey: [["pod", "pod"], ["namespace", "namespace"]],
    metricKeyRegex: [["pod_labels", "label_*"]],
    value: null,
    rowKey: ["pod", "namespace"],
    evaluate: (ix, t) =>
      mulGroupLeft(
        ix.instant("kube_pod_labels", [ne("namespace", ""), ne("pod", "")], t),
        running(ix, t),
        ["pod", "namespace"],
        [],
      ),
  },

  {
    name: "persistentvolume-pod-info",
    group: "storage",
    metricKey: [["namespace", "namespace"], ["pod", "pod"]],
    metricKeyRegex: [],
    value: null,
    rowKey: ["volumename"],
    evaluate: pvcJoin("kube_pod_spec_volumes_persistentvolumeclaims_info"),
  },
  {
    name: "persistentvolumeclaim-capacity-bytes",
    group: "storage",
    metricKey: [],
    metricKeyRegex: [],
    value: {
      valName: "persistentvolumeclaim-capacity-bytes",
      method: "max",
      transformedName: "persistentvolumeclaim-capacity-byte-seconds",
    },
    rowKey: ["persistentvolume"],
    evaluate: (ix, t) =>
      ix.instant("kube_persistentvolume_capacity_bytes", [ne("persistentvolume", "")], t),
  },
  {
    name: "persistentvolumeclaim-request-bytes",
    group: "storage",
    metricKey: [],
    metricKeyRegex: [],
    value: {
      valName: "persistentvolumeclaim-request-bytes",
      method: "max",
      transformedName: "persistentvolumeclaim-request-byte-seconds",
    },
    rowKey: ["volumename"],
    evaluate: pvcJoin("kube_persistentvolumeclaim_resource_requests_storage_bytes"),
  },
  {
    name: "persistentvolumeclaim-usage-bytes",
    group: "storage",
    metricKey: [["node", "node"]],
    metricKeyRegex: [],
    value: {
      valName: "persistentvolumeclaim-usage-bytes",
      method: "sum",
      transformedName: "persistentvolumeclaim-usage-byte-seconds",
    },
    rowKey: ["volumename"],
    evaluate: pvcJoin("kubelet_volume_stats_used_bytes"),
  },
  {
    name: "persistentvolume-labels",
    group: "storage",
    metricKey: [
      ["storageclass", "storageclass"],
      ["persistentvolume", "persistentvolume"],
      ["csi_driver", "csi_driver"],
      ["csi_volume_handle", "csi_volume_handle"],
    ],
    metricKeyRegex: [["persistentvolume_labels", "label_*"]],
    value: null,
    rowKey: ["persistentvolume"],
    evaluate: (ix, t) =>
      mulGroupLeft(
        ix.instant("kube_persistentvolume_labels", [], t),
        aggregate(
          "max",
          ["namespace", "persistentvolume", "storageclass", "csi_driver", "csi_volume_handle"],
          ix.instant("kube_persistentvolume_info", [], t),
        ),
        ["persistentvolume", "namespace"],
        ["storageclass", "csi_driver", "csi_volume_handle"],
      ),
  },
  {
    name: "persistentvolumeclaim-labels",
    group: "storage",
    metricKey: [["namespace", "namespace"], ["persistentvolumeclaim", "persistentvolumeclaim"]],
    metricKeyRegex: [["persistentvolumeclaim_labels", "label_"]],
    value: null,
    rowKey: ["volumename"],
    evaluate: pvcJoin("kube_persistentvolumeclaim_labels"),
  },

  vmResource(
    "vm_cpu_limit_cores",
    "kubevirt_vm_resource_limits",
    [eq("resource", "cpu")],
    "vm_cpu_limit_cores",
    "vm_cpu_limit_core_seconds",
  ),
  vmResource(
    "vm_cpu_request_cores",
    "kubevirt_vm_resource_requests",
    [eq("resource", "cpu"), eq("unit", "cores")],
    "vm_cpu_request_cores",
    "vm_cpu_request_core_seconds",
  ),
  vmResource(
    "vm_cpu_request_sockets",
    "kubevirt_vm_resource_requests",
    [eq("resource", "cpu"), eq("unit", "sockets")],
    "vm_cpu_request_sockets",
    "vm_cpu_request_socket_seconds",
  ),
  vmResource(
    "vm_cpu_request_threads",
    "kubevirt_vm_resource_requests",
    [eq("resource", "cpu"), eq("unit", "threads")],
    "vm_cpu_request_threads",
    "vm_cpu_request_thread_seconds",
  ),
  {
    name: "vm_cpu_usage",
    group: "vm",
    metricKey: VM_KEY,
    metricKeyRegex: [],
    value: {
      valName: "vm_cpu_usage",
      method: "sum",
      transformedName: "vm_cpu_usage_total_seconds",
    },
    rowKey: ["name", "namespace"],
    evaluate: vmRunningJoin((ix, t) =>
      aggregate(
        "sum",
        ["name", "namespace"],
        ix.rate(
          "kubevirt_vmi_cpu_usage_seconds_total",
          [ne("name", ""), ne("namespace", "")],
          t,
          RANGE_WINDOW_MS,
        ),
      )
    ),
  },
  vmResource(
    "vm_memory_limit_bytes",
    "kubevirt_vm_resource_limits",
    [eq("resource", "memory")],
    "vm_memory_limit_bytes",
    "vm_memory_limit_byte_seconds",
  ),
  vmResource(
    "vm_memory_request_bytes",
    "kubevirt_vm_resource_requests",
    [eq("resource", "memory")],
    "vm_memory_request_bytes",
    "vm_memory_request_byte_seconds",
    [...VM_KEY, ["resource", "resource"]],
  ),
  {
    name: "vm_memory_usage",
    group: "vm",
    metricKey: VM_KEY,
    metricKeyRegex: [],
    value: {
      valName: "vm_memory_usage_bytes",
      method: "sum",
      transformedName: "vm_memory_usage_byte_seconds",
    },
    rowKey: ["name", "namespace"],
    evaluate: vmRunningJoin((ix, t) =>
      aggregate(
        "sum",
        ["name", "namespace"],
        ix.sumOverTime(
          "kubevirt_vmi_memory_used_bytes",
          [ne("name", ""), ne("namespace", "")],
          t,
          RANGE_WINDOW_MS,
        ),
      )
    ),
  },
  {
    name: "vm_info",
    group: "vm",
    metricKey: [
      ["node", "node"],
      ["provider_id", "provider_id"],
      ["name", "name"],
      ["namespace", "namespace"],
      ["instance_type", "instance_type"],
      ["os", "os"],
      ["guest_os_arch", "guest_os_arch"],
      ["guest_os_name", "guest_os_name"],
      ["guest_os_version_id", "guest_os_version_id"],
    ],
    metricKeyRegex: [],
    value: { valName: "", method: "sum", transformedName: "vm_uptime_total_seconds" },
    rowKey: ["name", "namespace"],
    evaluate: (ix, t) =>
      mulGroupLeft(
        aggregate(
          "sum",
          [
            "name",
            "namespace",
            "node",
            "os",
            "instance_type",
            "guest_os_name",
            "guest_os_version_id",
            "guest_os_arch",
          ],
          ix.instant("kubevirt_vmi_info", [eq("phase", "running")], t),
        ),
        nodeInfo(ix, t),
        ["node"],
        ["provider_id"],
      ),
  },
  {
    name: "vm_disk_allocated_size",
    group: "vm",
    metricKey: [
      ["name", "name"],
      ["namespace", "namespace"],
      ["device", "device"],
      ["volume_mode", "volume_mode"],
      ["persistentvolumeclaim_name", "persistentvolumeclaim"],
    ],
    metricKeyRegex: [],
    value: {
      valName: "vm_disk_allocated_size_bytes",
      method: "max",
      transformedName: "vm_disk_allocated_size_byte_seconds",
    },
    rowKey: ["name", "namespace"],
    evaluate: vmRunningJoin((ix, t) =>
      aggregate(
        "sum",
        ["name", "namespace", "device", "persistentvolumeclaim", "volume_mode"],
        ix.instant(
          "kubevirt_vm_disk_allocated_size_bytes",
          [ne("name", ""), ne("namespace", "")],
          t,
        ),
      )
    ),
  },
  {
    name: "vm_labels",
    group: "vm",
    metricKey: VM_KEY,
    metricKeyRegex: [["vm_labels", "label_*"]],
    value: null,
    rowKey: ["name", "namespace"],
    evaluate: (ix, t) => ix.instant("kubevirt_vm_labels", [ne("name", ""), ne("namespace", "")], t),
  },

  {
    name: "nvidia-gpu-memory-capacity-mib-non-mig",
    group: "gpuNonMig",
    metricKey: [
      ["pod", "pod"],
      ["namespace", "namespace"],
      ["node", "node"],
      ["gpu_memory_capacity_mib", "label_nvidia_com_gpu_memory"],
    ],
    metricKeyRegex: [],
    value: null,
    rowKey: ["pod", "namespace", "node"],
    evaluate: (ix, t) =>
      aggregate(
        "sum",
        ["pod", "namespace", "node", "label_nvidia_com_gpu_memory"],
        mulGroupLeft(
          mulGroupLeft(
            ix.instant("kube_pod_container_resource_requests", [
              ne("pod", ""),
              ne("namespace", ""),
              ne("node", ""),
              eq("resource", "nvidia_com_gpu"),
            ], t),
            running(ix, t),
            ["pod", "namespace"],
            [],
          ),
          aggregate(
            "max",
            ["node", "label_nvidia_com_gpu_memory"],
            ix.instant("kube_node_labels", [], t),
          ),
          ["node"],
          ["label_nvidia_com_gpu_memory"],
        ),
      ),
  },
  {
    name: "nvidia-gpu-memory-capacity-mib-mig",
    group: "gpuMig",
    metricKey: [
      ["pod", "exported_pod"],
      ["namespace", "exported_namespace"],
      ["node", "Hostname"],
      ["gpu_memory_capacity_mib", "label_nvidia_com_gpu_memory"],
      ["mig_strategy", "label_nvidia_com_mig_strategy"],
    ],
    metricKeyRegex: [],
    value: null,
    rowKey: GPU_ROW_KEY,
    evaluate: (ix, t) => {
      const include = ["label_nvidia_com_gpu_memory", "label_nvidia_com_mig_strategy"];
      const dcgm = "DCGM_FI_PROF_GR_ENGINE_ACTIVE";
      return or(
        mulGroupLeft(
          mulGroupLeft(
            ix.instant(dcgm, [ne("UUID", ""), ne("GPU_I_ID", "")], t),
            runningExported(ix, t),
            ["exported_pod", "exported_namespace"],
            ["pod", "namespace"],
          ),
          gpuNodeLabels(ix, t),
          ["Hostname"],
          include,
        ),
        exportFallback(
          mulGroupLeft(
            mulGroupLeft(
              ix.instant(
                dcgm,
                [ne("UUID", ""), ne("GPU_I_ID", ""), eq("exported_namespace", "")],
                t,
              ),
              running(ix, t),
              ["pod", "namespace"],
              [],
            ),
            gpuNodeLabels(ix, t),
            ["Hostname"],
            include,
          ),
        ),
      );
    },
  },
  gpuUtilizationLike(
    "nvidia-gpu-utilization",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    GPU_BY,
    (v) => v,
    { valName: "nvidia-gpu-pod-utilization", method: "sum", transformedName: "" },
    GPU_UTIL_KEY,
    "gpuUtilization",
  ),
  gpuUtilizationLike(
    "nvidia-gpu-pod-uptime",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    GPU_BY,
    (v) => clampMax(addScalar(v, 1), 1),
    { valName: "", method: "sum", transformedName: "nvidia-gpu-pod-uptime-seconds" },
    GPU_UTIL_KEY,
    "gpuUtilization",
  ),
  gpuUtilizationLike(
    "nvidia-gpu-max-slices",
    "DCGM_FI_DEV_MIG_MAX_SLICES",
    GPU_BY.filter((l) => l !== "device"),
    (v) => v,
    { valName: "nvidia-gpu-max-slices", method: "max", transformedName: "" },
    [["node", "Hostname"], ["namespace", "exported_namespace"], ["pod", "exported_pod"]],
    "gpuMaxSlices",
  ),

  {
    name: "namespace-labels",
    group: "namespace",
    metricKey: [["namespace", "namespace"]],
    metricKeyRegex: [["namespace_labels", "label_*"]],
    value: null,
    rowKey: ["namespace"],
    evaluate: (ix, t) => ix.instant("kube_namespace_labels", [], t),
  },
];

/**
 * Looks up a cost query by its CMMO name.
 *
 * @example
 * ```ts
 * import { costQuery } from "./cost_queries.ts";
 * costQuery("pod-usage-cpu-cores").group; // "pod"
 * ```
 */
export function costQuery(name: string): CostQuery {
  const q = COST_QUERIES.find((c) => c.name === name);
  if (!q) throw new RangeError(`Unknown cost query "${name}"`);
  return q;
}
