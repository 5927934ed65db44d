/**
 * The six cost reports CMMO writes, with their file prefixes and headers in
 * CMMO's column order (contract §1). ROS reports come in a later issue; their
 * names are reserved here so file ordering and manifests stay stable.
 *
 * @module
 */

/** Name of one cost report, as used in state folders and summaries. */
export type ReportName = "pod" | "storage" | "node" | "namespace" | "vm" | "gpu";

/** One report's static description. */
export interface ReportDefinition {
  /** Short name used inside thanos-bridge. */
  readonly name: ReportName;
  /** File prefix without month or extension, e.g. `cm-openshift-pod-usage`. */
  readonly filePrefix: string;
  /** Whether packaging lists it under `files` (cost) or `resource_optimization_files` (ROS). */
  readonly kind: "cost" | "ros";
  /** CSV header in CMMO order. */
  readonly header: readonly string[];
}

const COMMON = [
  "report_period_start",
  "report_period_end",
  "interval_start",
  "interval_end",
] as const;

/** Every cost report, in the alphabetical order of their file prefixes (contract §4.3). */
export const REPORTS: readonly ReportDefinition[] = [
  {
    name: "namespace",
    filePrefix: "cm-openshift-namespace-usage",
    kind: "cost",
    header: [...COMMON, "namespace", "namespace_labels"],
  },
  {
    name: "node",
    filePrefix: "cm-openshift-node-usage",
    kind: "cost",
    header: [...COMMON, "node", "node_labels"],
  },
  {
    name: "gpu",
    filePrefix: "cm-openshift-nvidia-gpu-usage",
    kind: "cost",
    header: [
      ...COMMON,
      "node",
      "namespace",
      "pod",
      "gpu_uuid",
      "gpu_model_name",
      "gpu_vendor_name",
      "gpu_memory_capacity_mib",
      "gpu_pod_uptime",
      "gpu_pod_utilization",
      "gpu_max_slices",
      "mig_instance_id",
      "mig_profile",
      "mig_strategy",
    ],
  },
  {
    name: "pod",
    filePrefix: "cm-openshift-pod-usage",
    kind: "cost",
    header: [
      ...COMMON,
      "node",
      "namespace",
      "pod",
      "pod_usage_cpu_core_seconds",
      "pod_request_cpu_core_seconds",
      "pod_limit_cpu_core_seconds",
      "pod_usage_memory_byte_seconds",
      "pod_request_memory_byte_seconds",
      "pod_limit_memory_byte_seconds",
      "node_capacity_cpu_cores",
      "node_capacity_cpu_core_seconds",
      "node_capacity_memory_bytes",
      "node_capacity_memory_byte_seconds",
      "node_role",
      "resource_id",
      "pod_labels",
    ],
  },
  {
    name: "storage",
    filePrefix: "cm-openshift-storage-usage",
    kind: "cost",
    header: [
      ...COMMON,
      "namespace",
      "pod",
      "node",
      "persistentvolumeclaim",
      "persistentvolume",
      "storageclass",
      "csi_driver",
      "csi_volume_handle",
      "persistentvolumeclaim_capacity_bytes",
      "persistentvolumeclaim_capacity_byte_seconds",
      "volume_request_storage_byte_seconds",
      "persistentvolumeclaim_usage_byte_seconds",
      "persistentvolume_labels",
      "persistentvolumeclaim_labels",
    ],
  },
  {
    name: "vm",
    filePrefix: "cm-openshift-vm-usage",
    kind: "cost",
    header: [
      ...COMMON,
      "node",
      "resource_id",
      "namespace",
      "vm_name",
      "vm_instance_type",
      "vm_os",
      "vm_guest_os_arch",
      "vm_guest_os_name",
      "vm_guest_os_version",
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
      "vm_device",
      "vm_volume_mode",
      "vm_persistentvolumeclaim_name",
      "vm_disk_allocated_size_byte_seconds",
      "vm_labels",
    ],
  },
];

/** Name of one ROS (resource optimization) report. */
export type RosReportName = "ros-container" | "ros-namespace";

/** A ROS report's static description (listed under `resource_optimization_files`). */
export interface RosReportDefinition extends Omit<ReportDefinition, "name"> {
  readonly name: RosReportName;
}

/** The two ROS reports (contract §1.8–1.9), after the cost reports in file-name order. */
export const ROS_REPORTS: readonly RosReportDefinition[] = [
  {
    name: "ros-container",
    filePrefix: "ros-openshift-container",
    kind: "ros",
    header: [
      ...COMMON,
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
      "cpu_request_container_avg",
      "cpu_request_container_sum",
      "cpu_limit_container_avg",
      "cpu_limit_container_sum",
      "cpu_usage_container_avg",
      "cpu_usage_container_min",
      "cpu_usage_container_max",
      "cpu_usage_container_sum",
      "cpu_throttle_container_avg",
      "cpu_throttle_container_max",
      "cpu_throttle_container_min",
      "cpu_throttle_container_sum",
      "memory_request_container_avg",
      "memory_request_container_sum",
      "memory_limit_container_avg",
      "memory_limit_container_sum",
      "memory_usage_container_avg",
      "memory_usage_container_min",
      "memory_usage_container_max",
      "memory_usage_container_sum",
      "memory_rss_usage_container_avg",
      "memory_rss_usage_container_min",
      "memory_rss_usage_container_max",
      "memory_rss_usage_container_sum",
      "accelerator_model_name",
      "accelerator_profile_name",
      "accelerator_core_usage_percentage_min",
      "accelerator_core_usage_percentage_max",
      "accelerator_core_usage_percentage_avg",
      "accelerator_memory_copy_percentage_min",
      "accelerator_memory_copy_percentage_max",
      "accelerator_memory_copy_percentage_avg",
      "accelerator_frame_buffer_usage_min",
      "accelerator_frame_buffer_usage_max",
      "accelerator_frame_buffer_usage_avg",
    ],
  },
  {
    name: "ros-namespace",
    filePrefix: "ros-openshift-namespace",
    kind: "ros",
    header: [
      ...COMMON,
      "namespace",
      "cpu_request_namespace_sum",
      "cpu_limit_namespace_sum",
      "cpu_usage_namespace_avg",
      "cpu_usage_namespace_max",
      "cpu_usage_namespace_min",
      "cpu_throttle_namespace_avg",
      "cpu_throttle_namespace_max",
      "cpu_throttle_namespace_min",
      "memory_request_namespace_sum",
      "memory_limit_namespace_sum",
      "memory_usage_namespace_avg",
      "memory_usage_namespace_max",
      "memory_usage_namespace_min",
      "memory_rss_usage_namespace_avg",
      "memory_rss_usage_namespace_max",
      "memory_rss_usage_namespace_min",
      "namespace_running_pods_max",
      "namespace_running_pods_avg",
      "namespace_total_pods_max",
      "namespace_total_pods_avg",
    ],
  },
];

/** Names of the ROS reports, in file-name order. */
export const ROS_REPORT_NAMES: readonly RosReportName[] = ROS_REPORTS.map((r) => r.name);

/** Names of all cost reports, in file-name order. */
export const REPORT_NAMES: readonly ReportName[] = REPORTS.map((r) => r.name);

/**
 * Looks up a report by name.
 *
 * @example
 * ```ts
 * import { reportDefinition } from "./reports.ts";
 * reportDefinition("pod").filePrefix; // "cm-openshift-pod-usage"
 * ```
 */
export function reportDefinition(name: ReportName): ReportDefinition {
  const found = REPORTS.find((r) => r.name === name);
  if (!found) throw new RangeError(`Unknown report "${name}"`);
  return found;
}
