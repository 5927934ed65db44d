import assert from "node:assert/strict";
import { COST_QUERIES } from "./catalogue.ts";
import type { QueryGroup } from "./catalogue_groups.ts";
import { hourColumns } from "./go_time.ts";
import { reportDefinition } from "./reports.ts";
import { buildHourReports, resourceId } from "./report_rows.ts";
import { applySeries, type Labels, type RowMap } from "./row_map.ts";
import type { Reduced } from "./reduce.ts";

const DATES = hourColumns(new Date("2020-11-06T18:00:00Z"));

/** Feeds (query name, labels, reduced) triples through the real row-map code. */
function maps(series: [string, Labels, Reduced | null][]): Map<QueryGroup, RowMap> {
  const out = new Map<QueryGroup, RowMap>();
  for (const [name, metric, reduced] of series) {
    const q = COST_QUERIES.find((q) => q.name === name)!;
    let rows = out.get(q.group);
    if (!rows) out.set(q.group, rows = new Map());
    applySeries(rows, q, metric, reduced);
  }
  return out;
}

const asRecords = (
  report: "pod" | "node" | "vm" | "gpu" | "storage" | "namespace",
  rows: string[][],
) => rows.map((r) => Object.fromEntries(reportDefinition(report).header.map((h, i) => [h, r[i]])));

Deno.test("resourceId takes the text after the last slash", () => {
  assert.equal(resourceId("aws:///us-east-2a/i-0d747f55dc1009705"), "i-0d747f55dc1009705");
  assert.equal(resourceId("plain"), "plain");
  assert.equal(resourceId(""), "");
  assert.equal(resourceId(undefined), "");
});

Deno.test("no node rows: no rows for any report in that hour", () => {
  const reports = buildHourReports(
    maps([["pod-usage-memory-bytes", { pod: "p", namespace: "ns", node: "n1" }, {
      value: 1,
      n: 60,
    }]]),
    DATES,
  );
  for (const rows of reports.values()) assert.deepEqual(rows, []);
});

Deno.test("pod rows join the node row only when the node is in the hour's node results", () => {
  const m = maps([
    ["node-capacity-cpu-cores", { node: "n1", provider_id: "aws:///z/i-1" }, { value: 4, n: 60 }],
    ["node-capacity-memory-bytes", { node: "n1", provider_id: "aws:///z/i-1" }, {
      value: 8,
      n: 30,
    }],
    ["node-role", { node: "n1", role: "worker" }, null],
    ["node-labels", { node: "n1", label_zone: "a", label_b: "x" }, null],
    ["node-labels", { node: "n2", label_zone: "b" }, null],
    ["pod-usage-cpu-cores", { pod: "p1", namespace: "ns", node: "n1" }, { value: 0.5, n: 60 }],
    ["pod-request-cpu-cores", { pod: "p1", namespace: "ns", node: "n1" }, { value: 0.6, n: 60 }],
    ["pod-usage-cpu-cores", { pod: "p2", namespace: "ns", node: "gone" }, { value: 1, n: 10 }],
    ["pod-labels", { pod: "p1", namespace: "ns", label_app: "a,b" }, null],
    ["pod-labels", { pod: "p3", namespace: "ns", label_app: "only-labels" }, null],
  ]);
  const reports = buildHourReports(m, DATES);
  const nodes = asRecords("node", reports.get("node")!);
  assert.deepEqual(nodes.map((n) => [n.node, n.node_labels]), [
    ["", "label_zone:b"], // n2 appears only in node-labels, which has no `node` MetricKey
    ["n1", "label_b:x|label_zone:a"],
  ]);
  const pods = Object.fromEntries(asRecords("pod", reports.get("pod")!).map((p) => [p.pod, p]));
  assert.deepEqual(pods.p1, {
    report_period_start: DATES[0],
    report_period_end: DATES[1],
    interval_start: DATES[2],
    interval_end: DATES[3],
    node: "n1",
    namespace: "ns",
    pod: "p1",
    pod_usage_cpu_core_seconds: "30.000000",
    pod_request_cpu_core_seconds: "36.000000",
    pod_limit_cpu_core_seconds: "",
    pod_usage_memory_byte_seconds: "",
    pod_request_memory_byte_seconds: "",
    pod_limit_memory_byte_seconds: "",
    node_capacity_cpu_cores: "4.000000",
    node_capacity_cpu_core_seconds: "14400.000000",
    node_capacity_memory_bytes: "8.000000",
    node_capacity_memory_byte_seconds: "14400.000000",
    node_role: "worker",
    resource_id: "i-1",
    pod_labels: "label_app:a,b",
  });
  // Node not in the node results: every node-derived column is empty.
  assert.equal(pods.p2!.node, "");
  assert.equal(pods.p2!.node_capacity_cpu_cores, "");
  assert.equal(pods.p2!.resource_id, "");
  assert.equal(pods.p2!.pod_usage_cpu_core_seconds, "60.000000", "sum × 60, n irrelevant");
  // Only in pod-labels: no node field at all.
  assert.equal(pods.p3!.node, "");
  assert.equal(pods.p3!.pod_labels, "label_app:only-labels");
});

Deno.test("VM rows: resource_id from provider_id, columns from vm_info and values", () => {
  const m = maps([
    ["node-role", { node: "n1", role: "worker" }, null],
    ["vm_cpu_request_cores", { name: "vm1", namespace: "ns" }, { value: 2, n: 60 }],
    ["vm_info", {
      name: "vm1",
      namespace: "ns",
      node: "n1",
      provider_id: "gce://p/z/vm-host",
      os: "rhel",
      instance_type: "u1.small",
      guest_os_arch: "amd64",
      guest_os_name: "Red Hat",
      guest_os_version_id: "9.4",
    }, { value: 60, n: 60 }],
    ["vm_disk_allocated_size", {
      name: "vm1",
      namespace: "ns",
      device: "rootdisk",
      volume_mode: "Block",
      persistentvolumeclaim: "pvc1",
    }, { value: 1024, n: 60 }],
    ["vm_labels", { name: "vm1", namespace: "ns", label_kubevirt_io_domain: "vm1" }, null],
  ]);
  const [vm] = asRecords("vm", buildHourReports(m, DATES).get("vm")!);
  assert.equal(vm!.resource_id, "vm-host");
  assert.equal(vm!.vm_name, "vm1");
  assert.equal(vm!.vm_guest_os_version, "9.4");
  assert.equal(vm!.vm_uptime_total_seconds, "3600.000000");
  assert.equal(vm!.vm_cpu_request_core_seconds, "7200.000000");
  assert.equal(vm!.vm_cpu_limit_cores, "");
  assert.equal(vm!.vm_device, "rootdisk");
  assert.equal(vm!.vm_persistentvolumeclaim_name, "pvc1");
  assert.equal(vm!.vm_disk_allocated_size_byte_seconds, "3686400.000000");
  assert.equal(vm!.vm_labels, "label_kubevirt_io_domain:vm1");
});

Deno.test("GPU rows: utilization keys only; MIG merges MIG capacity and slices, others non-MIG capacity", () => {
  const nonMig = {
    exported_pod: "p1",
    exported_namespace: "ns",
    Hostname: "n1",
    UUID: "GPU-1",
    GPU_I_ID: "",
    modelName: "Tesla T4",
    device: "nvidia0",
  };
  const mig = {
    ...nonMig,
    exported_pod: "p2",
    UUID: "GPU-2",
    GPU_I_ID: "3",
    GPU_I_PROFILE: "1g.5gb",
  };
  const m = maps([
    ["node-role", { node: "n1", role: "worker" }, null],
    ["nvidia-gpu-memory-capacity-mib-non-mig", {
      pod: "p1",
      namespace: "ns",
      node: "n1",
      label_nvidia_com_gpu_memory: "15360",
    }, null],
    ["nvidia-gpu-memory-capacity-mib-non-mig", {
      pod: "lonely",
      namespace: "ns",
      node: "n1",
      label_nvidia_com_gpu_memory: "1",
    }, null],
    ["nvidia-gpu-memory-capacity-mib-mig", {
      ...mig,
      label_nvidia_com_gpu_memory: "40960",
      label_nvidia_com_mig_strategy: "mixed",
    }, null],
    ["nvidia-gpu-utilization", nonMig, { value: 30, n: 60 }],
    ["nvidia-gpu-pod-uptime", nonMig, { value: 60, n: 60 }],
    ["nvidia-gpu-utilization", mig, { value: 6, n: 30 }],
    ["nvidia-gpu-pod-uptime", mig, { value: 30, n: 30 }],
    ["nvidia-gpu-max-slices", mig, { value: 7, n: 30 }],
  ]);
  const gpus = asRecords("gpu", buildHourReports(m, DATES).get("gpu")!);
  assert.equal(gpus.length, 2, "capacity-only keys make no rows");
  const [a, b] = gpus;
  assert.equal(a!.pod, "p1");
  assert.equal(a!.gpu_memory_capacity_mib, "15360");
  assert.equal(a!.gpu_pod_uptime, "3600.000000");
  assert.equal(a!.gpu_pod_utilization, "30.000000");
  assert.equal(a!.gpu_max_slices, "");
  assert.equal(a!.mig_instance_id, "");
  assert.equal(a!.mig_strategy, "");
  assert.equal(a!.gpu_model_name, "Tesla T4");
  assert.equal(a!.gpu_vendor_name, "nvidia0");
  assert.equal(b!.pod, "p2");
  assert.equal(b!.gpu_memory_capacity_mib, "40960");
  assert.equal(b!.gpu_max_slices, "7.000000");
  assert.equal(b!.mig_instance_id, "3");
  assert.equal(b!.mig_profile, "1g.5gb");
  assert.equal(b!.mig_strategy, "mixed");
  assert.equal(b!.gpu_pod_uptime, "1800.000000");
});

Deno.test("storage rows: any PV seen by any query; keys volumename/persistentvolume", () => {
  const m = maps([
    ["node-role", { node: "n1", role: "worker" }, null],
    ["persistentvolume-pod-info", { volumename: "pv1", namespace: "ns", pod: "p1" }, null],
    ["persistentvolume-pod-info", { volumename: "pv1", namespace: "ns", pod: "p2" }, null],
    ["persistentvolumeclaim-capacity-bytes", { persistentvolume: "pv1" }, { value: 100, n: 60 }],
    ["persistentvolumeclaim-request-bytes", { volumename: "pv1" }, { value: 50, n: 60 }],
    ["persistentvolumeclaim-usage-bytes", { volumename: "pv1", node: "n1" }, { value: 600, n: 60 }],
    ["persistentvolume-labels", {
      persistentvolume: "pv2",
      storageclass: "gp3",
      csi_driver: "ebs",
      csi_volume_handle: "vol-1",
      label_x: "y",
    }, null],
    ["persistentvolumeclaim-labels", {
      volumename: "pv1",
      namespace: "ns2",
      persistentvolumeclaim: "c1",
      label_app: "a",
    }, null],
  ]);
  const rows = asRecords("storage", buildHourReports(m, DATES).get("storage")!);
  assert.equal(rows.length, 2);
  const pv1 = rows.find((r) => r.pod === "p2");
  const pv2 = rows.find((r) => r.persistentvolume === "pv2");
  assert.equal(pv1!.pod, "p2", "last pod wins");
  assert.equal(pv1!.namespace, "ns2", "pvc-labels overwrites namespace");
  assert.equal(pv1!.persistentvolumeclaim_capacity_bytes, "100.000000");
  assert.equal(pv1!.persistentvolumeclaim_capacity_byte_seconds, "360000.000000");
  assert.equal(pv1!.volume_request_storage_byte_seconds, "180000.000000");
  assert.equal(pv1!.persistentvolumeclaim_usage_byte_seconds, "36000.000000");
  assert.equal(pv1!.node, "n1");
  assert.equal(pv1!.persistentvolumeclaim_labels, "label_app:a");
  assert.equal(pv2!.persistentvolume, "pv2");
  assert.equal(pv2!.storageclass, "gp3");
  assert.equal(pv2!.persistentvolume_labels, "label_x:y");
  assert.equal(pv2!.persistentvolumeclaim_capacity_bytes, "");
});
