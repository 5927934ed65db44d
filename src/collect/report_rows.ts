/**
 * From one hour's row maps to the rows of the six cost reports: the node-row
 * join with its empty fallback, `resource_id`, the GPU merge, and the column
 * order of every report (contract §1, §3.3).
 *
 * @module
 */

import type { QueryGroup } from "./catalogue_groups.ts";
import type { ReportName } from "./reports.ts";
import type { Row, RowMap } from "./row_map.ts";
import { rowKey } from "./row_map.ts";
import { compareUtf8 } from "./utf8_compare.ts";

/** The row maps of one hour, one per query group. */
export type GroupMaps = ReadonlyMap<QueryGroup, RowMap>;

/** Rows of every report for one hour, each row a full CSV record. */
export type HourReports = Map<ReportName, string[][]>;

const EMPTY: Row = new Map();

/**
 * CMMO `getResourceID`: the text after the last `/` of `provider_id`, `""` when
 * the field is absent.
 *
 * @example
 * ```ts
 * import { resourceId } from "./report_rows.ts";
 * resourceId("aws:///us-east-2a/i-0d747f55dc1009705"); // "i-0d747f55dc1009705"
 * ```
 */
export function resourceId(providerId: string | undefined): string {
  if (providerId === undefined) return "";
  return providerId.slice(providerId.lastIndexOf("/") + 1);
}

// Report columns after the four date columns, as row fields (CMMO mapstructure tags).
const NODE_FIELDS = ["node", "node_labels"];
const POD_OWN_FIELDS_BEFORE = ["namespace", "pod"];
const POD_VALUE_FIELDS = [
  "pod-usage-cpu-core-seconds",
  "pod-request-cpu-core-seconds",
  "pod-limit-cpu-core-seconds",
  "pod-usage-memory-byte-seconds",
  "pod-request-memory-byte-seconds",
  "pod-limit-memory-byte-seconds",
];
const POD_NODE_FIELDS = [
  "node-capacity-cpu-cores",
  "node-capacity-cpu-core-seconds",
  "node-capacity-memory-bytes",
  "node-capacity-memory-byte-seconds",
  "node-role",
  "resource_id",
];
const STORAGE_FIELDS = [
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
];
const NAMESPACE_FIELDS = ["namespace", "namespace_labels"];
const VM_FIELDS = [
  "node",
  "resource_id",
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
];
const GPU_FIELDS = [
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
];

/** Appends the row's value of each field (`""` when missing) to `out`. */
export function pick(row: Row, fields: readonly string[], out: string[]): void {
  for (const f of fields) out.push(row.get(f) ?? "");
}

/**
 * Sorts rows by their fields in byte order, so that an hour's output is deterministic.
 *
 * @example
 * ```ts
 * import { sortRows } from "./report_rows.ts";
 * sortRows([["b"], ["a"]]); // [["a"], ["b"]]
 * ```
 */
export function sortRows(rows: string[][]): string[][] {
  return rows.sort((a, b) => {
    for (let i = 0; i < a.length; i++) {
      const c = compareUtf8(a[i]!, b[i]!);
      if (c !== 0) return c;
    }
    return 0;
  });
}

/**
 * Builds the rows of all six reports for one hour. Returns empty reports when
 * the node group has no rows: CMMO writes nothing for an hour without node
 * data (contract §3.1). Rows are sorted (CMMO's order is Go map order, i.e.
 * random; any fixed order is equally valid and makes payloads reproducible).
 *
 * @example
 * ```ts
 * import { buildHourReports } from "./report_rows.ts";
 * const reports = buildHourReports(new Map(), ["a", "b", "c", "d"]);
 * reports.get("pod"); // []
 * ```
 */
export function buildHourReports(
  maps: GroupMaps,
  dates: readonly [string, string, string, string] | readonly string[],
): HourReports {
  const out: HourReports = new Map([
    ["namespace", []],
    ["node", []],
    ["gpu", []],
    ["pod", []],
    ["storage", []],
    ["vm", []],
  ]);
  const nodes = maps.get("node") ?? new Map<string, Row>();
  if (nodes.size === 0) return out;
  const row = (): string[] => [...dates];

  // Node rows: resource_id derived from provider_id for every node (CMMO GenerateReports).
  for (const node of nodes.values()) node.set("resource_id", resourceId(node.get("provider_id")));
  for (const node of nodes.values()) {
    const r = row();
    pick(node, NODE_FIELDS, r);
    out.get("node")!.push(r);
  }

  // Pod rows take node, capacity, role and resource_id from the hour's node row, but only
  // when the pod row has a `node` field and that node is in the node results.
  for (const pod of (maps.get("pod") ?? new Map<string, Row>()).values()) {
    const nodeName = pod.get("node");
    const node = nodeName === undefined ? EMPTY : nodes.get(nodeName) ?? EMPTY;
    const r = row();
    r.push(node.get("node") ?? "");
    pick(pod, POD_OWN_FIELDS_BEFORE, r);
    pick(pod, POD_VALUE_FIELDS, r);
    pick(node, POD_NODE_FIELDS, r);
    r.push(pod.get("pod_labels") ?? "");
    out.get("pod")!.push(r);
  }

  for (const pv of (maps.get("storage") ?? new Map<string, Row>()).values()) {
    const r = row();
    pick(pv, STORAGE_FIELDS, r);
    out.get("storage")!.push(r);
  }

  for (const ns of (maps.get("namespace") ?? new Map<string, Row>()).values()) {
    const r = row();
    pick(ns, NAMESPACE_FIELDS, r);
    out.get("namespace")!.push(r);
  }

  for (const vm of (maps.get("vm") ?? new Map<string, Row>()).values()) {
    vm.set("resource_id", resourceId(vm.get("provider_id")));
    const r = row();
    pick(vm, VM_FIELDS, r);
    out.get("vm")!.push(r);
  }

  for (const gpu of mergeGpuRows(maps)) {
    const r = row();
    pick(gpu, GPU_FIELDS, r);
    out.get("gpu")!.push(r);
  }

  for (const rows of out.values()) sortRows(rows);
  return out;
}

/**
 * The GPU merge (contract §1.7): the row set is the utilization group's keys.
 * A MIG row (non-blank `mig_instance_id`) takes the MIG-capacity and
 * max-slices fields with the same key; any other row takes the non-MIG
 * capacity fields keyed by sorted (pod, namespace, node). Capacity-only keys
 * produce no rows.
 */
function mergeGpuRows(maps: GroupMaps): Row[] {
  const util = maps.get("gpu-utilization");
  if (!util) return [];
  const mig = maps.get("gpu-capacity-mig");
  const slices = maps.get("gpu-max-slices");
  const nonMig = maps.get("gpu-capacity-non-mig");
  const rows: Row[] = [];
  for (const [key, base] of util) {
    const merged: Row = new Map(base);
    const copy = (from: Row | undefined) => from?.forEach((v, k) => merged.set(k, v));
    if ((base.get("mig_instance_id") ?? "").trim() !== "") {
      copy(mig?.get(key));
      copy(slices?.get(key));
    } else {
      const resourceKey = rowKey(
        {
          pod: base.get("pod") ?? "",
          namespace: base.get("namespace") ?? "",
          node: base.get("node") ?? "",
        },
        ["pod", "namespace", "node"],
      );
      copy(nonMig?.get(resourceKey));
    }
    rows.push(merged);
  }
  return rows;
}
