import assert from "node:assert/strict";
import { formatFloat } from "../../src/package/go_float.ts";
import { REPORT_NAMES, reportDefinition, type ReportName } from "../../src/collect/reports.ts";
import {
  APPROXIMATE_COLUMNS,
  compareRows,
  evaluateQueryRange,
  expectedReport,
  expectedReports,
  goCsvLine,
} from "./ground_truth.ts";
import { buildHub, defaultTestHub, HOSTILE_VALUE, sampleTimeMs, type SeriesSpec } from "./model.ts";
import { compareBytes } from "./promql_eval.ts";

const hub = buildHub(defaultTestHub());
const c0 = hub.clusters[0]!;
const hour = (h: number) => new Date(hub.startMs + h * 3_600_000);

function column(report: ReportName, row: readonly string[], name: string): string {
  const i = reportDefinition(report).header.indexOf(name);
  assert.ok(i >= 0, `no column ${name} in ${report}`);
  return row[i] ?? "";
}

function rowsWhere(
  report: ReportName,
  h: number,
  name: string,
  value: string,
  cluster = c0,
): string[][] {
  return expectedReport(hub, cluster.id, hour(h), report).filter((r) =>
    column(report, r, name) === value
  );
}

function only(report: ReportName, h: number, name: string, value: string): string[] {
  const rows = rowsWhere(report, h, name, value);
  assert.equal(rows.length, 1, `${report} rows with ${name}=${value} in hour ${h}`);
  return rows[0]!;
}

function series(metric: string, match: Record<string, string>): SeriesSpec[] {
  return c0.series.filter((s) =>
    s.metric === metric && Object.entries(match).every(([k, v]) => s.labels[k] === v)
  );
}

function constValue(s: SeriesSpec): number {
  const seg = s.segments[s.segments.length - 1];
  assert.ok(seg && seg.kind === "const");
  return seg.value;
}

Deno.test("rows have the header's width, Go date columns, and are sorted", () => {
  for (
    const [h, period] of [[1, ["2026-10-01", "2026-11-01"]], [2, [
      "2026-11-01",
      "2026-12-01",
    ]]] as const
  ) {
    const reports = expectedReports(hub, c0.id, hour(h));
    for (const name of REPORT_NAMES) {
      const rows = reports[name];
      assert.ok(rows.length > 0, `${name} hour ${h}`);
      for (const r of rows) {
        assert.equal(r.length, reportDefinition(name).header.length);
        assert.deepEqual(r.slice(0, 4), [
          `${period[0]} 00:00:00 +0000 UTC`,
          `${period[1]} 00:00:00 +0000 UTC`,
          hour(h).toISOString().replace("T", " ").replace(".000Z", " +0000 UTC"),
          new Date(hour(h).getTime() + 3_599_000).toISOString().replace("T", " ").replace(
            ".000Z",
            " +0000 UTC",
          ),
        ]);
      }
      for (let i = 1; i < rows.length; i++) assert.ok(compareRows(rows[i - 1]!, rows[i]!) < 0);
    }
  }
});

Deno.test("an hour without node data has no rows in any report", () => {
  const [, c1, c2] = hub.clusters;
  assert.ok(c1 && c2);
  for (const [c, h] of [[c1, 20], [c2, 0], [c2, 1]] as const) {
    for (const name of REPORT_NAMES) assert.deepEqual(expectedReport(hub, c.id, hour(h), name), []);
  }
  for (const [c, h] of [[c1, 19], [c1, 21], [c2, 2]] as const) {
    assert.ok(expectedReport(hub, c.id, hour(h), "node").length > 0);
    assert.ok(expectedReport(hub, c.id, hour(h), "pod").length > 0);
  }
});

Deno.test("pod rows: requests Σ×60, empty limits, empty node columns on a ghost node", () => {
  const s = c0.scenario;
  const noLimit = only("pod", 5, "pod", s.noLimitPod ?? "");
  const requests = series("kube_pod_container_resource_requests", {
    pod: s.noLimitPod ?? "",
    resource: "cpu",
  }).filter((x) => x.labels.node);
  const sum = requests.reduce((a, x) => a + constValue(x), 0);
  assert.equal(column("pod", noLimit, "pod_request_cpu_core_seconds"), formatFloat(sum * 60 * 60));
  assert.equal(column("pod", noLimit, "pod_limit_cpu_core_seconds"), "");
  assert.equal(column("pod", noLimit, "pod_limit_memory_byte_seconds"), "");
  assert.notEqual(column("pod", noLimit, "pod_usage_cpu_core_seconds"), "");

  const ghost = only("pod", 5, "pod", s.ghostPod ?? "");
  for (
    const name of [
      "node",
      "node_capacity_cpu_cores",
      "node_capacity_cpu_core_seconds",
      "node_capacity_memory_bytes",
      "node_capacity_memory_byte_seconds",
      "node_role",
      "resource_id",
    ]
  ) {
    assert.equal(column("pod", ghost, name), "", name);
  }
  assert.notEqual(column("pod", ghost, "pod_usage_memory_byte_seconds"), "");
  assert.match(column("pod", ghost, "pod_labels"), /^label_app:/);
});

Deno.test("pod rows: pending→running, job and mid-hour pods have partial hours", () => {
  const s = c0.scenario;
  const full = (pod: string, h: number) =>
    Number(column("pod", only("pod", h, "pod", pod), "pod_request_cpu_core_seconds"));
  const pendingStart = full(s.pendingPod ?? "", 2);
  const pendingFull = full(s.pendingPod ?? "", 4);
  assert.ok(pendingStart > 0 && pendingStart < pendingFull);
  for (const pod of s.midHourPods) {
    const labels = series("kube_pod_labels", { pod })[0];
    assert.ok(labels);
    const seg = labels.segments[0]!;
    const startHour = Math.floor((sampleTimeMs(hub, c0, seg.from) - hub.startMs) / 3_600_000);
    const endHour = Math.floor((sampleTimeMs(hub, c0, seg.to - 1) - hub.startMs) / 3_600_000);
    assert.ok(endHour > startHour + 1);
    const steady = full(pod, startHour + 1);
    for (const h of [startHour, endHour]) {
      const partial = full(pod, h);
      assert.ok(partial > 0 && partial < steady, `${pod} hour ${h}: ${partial} vs ${steady}`);
    }
  }
  assert.equal(rowsWhere("pod", 0, "pod", s.jobPod ?? "").length, 0);
  assert.equal(rowsWhere("pod", 2, "pod", s.jobPod ?? "").length, 0);
  assert.ok(full(s.jobPod ?? "", 3) > 0);
  const jobRequests = series("kube_pod_container_resource_requests", {
    pod: s.jobPod ?? "",
    resource: "cpu",
  }).reduce((a, x) => a + constValue(x), 0);
  assert.ok(full(s.jobPod ?? "", 3) < jobRequests * 3600);
});

Deno.test("node columns: max over a resize, n < 60 for a node that joins, last role wins", () => {
  const s = c0.scenario;
  const cap =
    series("kube_node_status_capacity", { node: s.resizedNode ?? "", resource: "cpu" })[0];
  assert.ok(cap && cap.segments.length === 2);
  const [before, after] = cap.segments.map((x) => (x.kind === "const" ? x.value : NaN));
  assert.ok(before !== undefined && after !== undefined && after > before);
  const onResized = (h: number) => rowsWhere("pod", h, "node", s.resizedNode ?? "")[0];
  const r2 = onResized(2);
  const r3 = onResized(3);
  assert.ok(r2 && r3);
  assert.equal(column("pod", r2, "node_capacity_cpu_cores"), formatFloat(before));
  assert.equal(column("pod", r3, "node_capacity_cpu_cores"), formatFloat(after));
  assert.equal(column("pod", r3, "node_capacity_cpu_core_seconds"), formatFloat(after * 3600));

  // The late node joins at 01:35 into the data: no row in hour 0, a partial hour in hour 1.
  assert.equal(rowsWhere("node", 0, "node", s.lateNode ?? "").length, 0);
  assert.equal(rowsWhere("node", 1, "node", s.lateNode ?? "").length, 1);
  const job = only("pod", 3, "pod", s.jobPod ?? "");
  assert.equal(column("pod", job, "node"), s.lateNode);
  assert.equal(column("pod", job, "node_role"), "worker");

  const onMaster = rowsWhere("pod", 4, "node", s.masterNode);
  assert.ok(onMaster.length > 0);
  for (const r of onMaster) assert.equal(column("pod", r, "node_role"), "master");
  const provider = series("kube_node_info", { node: s.masterNode })[0]?.labels.provider_id ?? "";
  assert.equal(column("pod", onMaster[0]!, "resource_id"), provider.split("/").pop());
});

Deno.test("the hostile pod, provider id and labels come through verbatim", () => {
  const s = c0.scenario;
  const row = only("pod", 6, "pod", s.hostilePod ?? "");
  assert.ok(column("pod", row, "pod_labels").includes(`label_team:${HOSTILE_VALUE}`));
  const hostileNode = expectedReport(hub, c0.id, hour(6), "node").find((r) =>
    column("node", r, "node_labels").includes(`label_owner:${HOSTILE_VALUE}`)
  );
  assert.ok(hostileNode);
  const onIt = rowsWhere("pod", 6, "node", column("node", hostileNode, "node"));
  assert.ok(onIt.length > 0);
  assert.equal(column("pod", onIt[0]!, "resource_id"), 'i-0,"odd"|id:1\\ü\nx');
  const line = goCsvLine(row);
  assert.ok(line.includes(`"${(s.hostilePod ?? "").replaceAll('"', '""')}"`));
});

Deno.test("storage rows: unbound PV, shared PVC (last series wins), unmounted PVC", () => {
  const s = c0.scenario;
  const unbound = only("storage", 4, "persistentvolume", s.unboundPv);
  for (const name of ["namespace", "pod", "node", "persistentvolumeclaim", "csi_driver"]) {
    assert.equal(column("storage", unbound, name), "");
  }
  assert.equal(column("storage", unbound, "storageclass"), "local-storage");
  assert.equal(column("storage", unbound, "persistentvolume_labels"), "label_reclaim:retain");
  const size = constValue(
    series("kube_persistentvolume_capacity_bytes", { persistentvolume: s.unboundPv })[0]!,
  );
  assert.equal(
    column("storage", unbound, "persistentvolumeclaim_capacity_byte_seconds"),
    formatFloat(size * 3600),
  );

  const shared = only("storage", 4, "persistentvolumeclaim", s.sharedPvc ?? "");
  const mounts = series("kube_pod_spec_volumes_persistentvolumeclaims_info", {
    persistentvolumeclaim: s.sharedPvc ?? "",
  });
  const pods = mounts.map((m) => m.labels.pod ?? "").sort(compareBytes);
  assert.equal(column("storage", shared, "pod"), pods[pods.length - 1]);
  const nodes = series("kubelet_volume_stats_used_bytes", {
    persistentvolumeclaim: s.sharedPvc ?? "",
  })
    .map((m) => m.labels.node ?? "").sort(compareBytes);
  assert.equal(column("storage", shared, "node"), nodes[nodes.length - 1]);
  assert.ok(column("storage", shared, "persistentvolumeclaim_labels").includes(HOSTILE_VALUE));

  const unmounted = only("storage", 4, "persistentvolumeclaim", s.unmountedPvc ?? "");
  assert.equal(column("storage", unmounted, "pod"), "");
  assert.equal(column("storage", unmounted, "persistentvolumeclaim_usage_byte_seconds"), "");
  assert.notEqual(column("storage", unmounted, "volume_request_storage_byte_seconds"), "");
});

Deno.test("vm rows: last disk wins, no limits, late start, stop, labels-only rows", () => {
  const s = c0.scenario;
  const two = only("vm", 4, "vm_name", s.vmWithTwoDisks ?? "");
  // The two disks sort by `device` first: "datadisk" < "rootdisk", so rootdisk survives.
  assert.equal(column("vm", two, "vm_device"), "rootdisk");
  assert.equal(column("vm", two, "vm_uptime_total_seconds"), "3600.000000");
  assert.ok(column("vm", two, "vm_os").startsWith(" rhel"));

  const late = (h: number) => only("vm", h, "vm_name", s.lateVm ?? "");
  assert.equal(column("vm", late(0), "vm_uptime_total_seconds"), "");
  assert.equal(column("vm", late(0), "node"), "");
  assert.ok(column("vm", late(0), "vm_labels").length > 0);
  const partial = Number(column("vm", late(1), "vm_uptime_total_seconds"));
  assert.ok(partial > 0 && partial < 3600);
  assert.equal(column("vm", late(4), "vm_cpu_limit_cores"), "");
  assert.notEqual(column("vm", late(4), "vm_cpu_request_cores"), "");
  assert.equal(column("vm", late(4), "vm_guest_os_version"), "\\.");

  const stopping = (h: number) => only("vm", h, "vm_name", s.stoppingVm ?? "");
  const lastHour = Number(column("vm", stopping(4), "vm_uptime_total_seconds"));
  assert.ok(lastHour > 0 && lastHour < 3600);
  assert.equal(column("vm", stopping(6), "vm_uptime_total_seconds"), "");
  assert.equal(column("vm", stopping(6), "vm_instance_type"), "");
});

Deno.test("gpu rows: MIG rows get slices and strategy, idle GPUs go to the DCGM exporter", () => {
  const rows = expectedReport(hub, c0.id, hour(4), "gpu");
  const mig = rows.filter((r) => column("gpu", r, "mig_instance_id") !== "");
  const full = rows.filter((r) => column("gpu", r, "mig_instance_id") === "");
  assert.ok(mig.length > 0 && full.length > 0);
  for (const r of mig) {
    assert.equal(column("gpu", r, "gpu_max_slices"), "7.000000");
    assert.equal(column("gpu", r, "mig_strategy"), "mixed");
    assert.equal(column("gpu", r, "gpu_memory_capacity_mib"), "40960");
    assert.notEqual(column("gpu", r, "mig_profile"), "");
  }
  for (const r of full) {
    assert.equal(column("gpu", r, "gpu_max_slices"), "");
    assert.equal(column("gpu", r, "mig_strategy"), "");
    assert.equal(column("gpu", r, "mig_profile"), "");
    const exporter = c0.scenario.dcgmExporterPods.includes(column("gpu", r, "pod"));
    assert.equal(column("gpu", r, "gpu_memory_capacity_mib"), exporter ? "" : "15360");
  }
  const idle = rows.filter((r) => c0.scenario.dcgmExporterPods.includes(column("gpu", r, "pod")));
  assert.ok(idle.some((r) => column("gpu", r, "mig_instance_id") !== ""));
  assert.ok(idle.some((r) => column("gpu", r, "mig_instance_id") === ""));
  for (const r of rows) {
    assert.equal(column("gpu", r, "gpu_pod_uptime"), "3600.000000");
    const util = Number(column("gpu", r, "gpu_pod_utilization"));
    assert.ok(util >= 0 && util <= 60);
  }
  // A GPU pod that starts at 01:19: partial uptime in hour 1.
  const h1 = expectedReport(hub, c0.id, hour(1), "gpu");
  assert.ok(h1.some((r) => Number(column("gpu", r, "gpu_pod_uptime")) < 3600));
  assert.deepEqual(expectedReport(hub, hub.clusters[1]!.id, hour(4), "gpu"), []);
});

Deno.test("namespace rows follow kube_namespace_labels", () => {
  assert.equal(rowsWhere("namespace", 10, "namespace", "ns-temp").length, 1);
  assert.equal(rowsWhere("namespace", 11, "namespace", "ns-temp").length, 0);
  assert.equal(
    column("namespace", only("namespace", 4, "namespace", "kube-system"), "namespace_labels"),
    "",
  );
});

Deno.test("reductions follow §3.2 on the oracle's own query_range answers", () => {
  // max × (60 × n) for a node that joins mid-hour, seen through the pod that starts with it.
  const s = c0.scenario;
  const m = evaluateQueryRange(hub, c0.id, "node-capacity-memory-bytes", hour(1));
  const late = m.find((x) => x.labels.node === s.lateNode);
  assert.ok(late && late.points.length > 0 && late.points.length < 60);
  const max = Math.max(...late.points.map(([, v]) => v));
  const daemon = only("pod", 1, "pod", s.daemonPod ?? "");
  assert.equal(column("pod", daemon, "node"), s.lateNode);
  assert.equal(column("pod", daemon, "node_capacity_memory_bytes"), formatFloat(max));
  assert.equal(
    column("pod", daemon, "node_capacity_memory_byte_seconds"),
    formatFloat(max * (60 * late.points.length)),
  );
  // Σ × 60 in time order for a rate() query.
  const usage = evaluateQueryRange(hub, c0.id, "pod-usage-cpu-cores", hour(5));
  assert.ok(usage.length > 5);
  for (const series of usage) {
    let sum = 0;
    for (const [, v] of series.points) sum += v;
    const row = only("pod", 5, "pod", series.labels.pod ?? "");
    assert.equal(column("pod", row, "pod_usage_cpu_core_seconds"), formatFloat(sum * 60));
  }
});

Deno.test("APPROXIMATE_COLUMNS name real columns; bad inputs are rejected", () => {
  for (const a of APPROXIMATE_COLUMNS) {
    assert.ok(reportDefinition(a.report).header.includes(a.column));
    assert.ok(a.relativeTolerance > 0 && a.relativeTolerance < 1e-6 && a.reason.length > 20);
  }
  assert.throws(
    () => expectedReport(hub, c0.id, new Date("2026-11-01T00:30:00Z"), "pod"),
    RangeError,
  );
  assert.throws(() => expectedReport(hub, "no-such-cluster", hour(1), "pod"), RangeError);
  assert.throws(() => expectedReport(hub, c0.id, hour(1), "ros" as ReportName), RangeError);
});

Deno.test("goCsvLine quotes like Go's encoding/csv", () => {
  assert.equal(goCsvLine(["a", "", "b c"]), "a,,b c");
  assert.equal(
    goCsvLine(['x"y', "1,2", "l\nm", "\\.", " s", "\u00a0t", "\\x"]),
    '"x""y","1,2","l\nm","\\."," s","\u00a0t",\\x',
  );
});
