import assert from "node:assert/strict";
import { ROS_REPORTS } from "../../src/collect/reports.ts";
import { expectedReports } from "./ground_truth.ts";
import { buildHub, type ClusterModel, defaultTestHub, sampleTimeMs, sampleValue } from "./model.ts";
import { expectedRosReports } from "./ros_truth.ts";

const hub = buildHub({ ...defaultTestHub(), ros: true });
const [c0, c1, c2] = hub.clusters;
assert.ok(c0 && c1 && c2);
const DAY = "2026-11-01";
const CONTAINER_HEADER = ROS_REPORTS[0]!.header;
const NAMESPACE_HEADER = ROS_REPORTS[1]!.header;

/** The metric families added for ROS (absent before). */
const ROS_FAMILIES = new Set([
  "kube_pod_owner",
  "namespace_workload_pod:kube_pod_owner:relabel",
  "kube_pod_info",
  "kube_pod_container_info",
  "node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate",
  "container_memory_working_set_bytes",
  "container_memory_rss",
  "container_cpu_cfs_throttled_seconds_total",
  "kube_resourcequota",
  "DCGM_FI_DEV_GPU_UTIL",
  "DCGM_FI_DEV_MEM_COPY_UTIL",
  "DCGM_FI_DEV_FB_USED",
]);
const OPT_IN = [
  "label_insights_cost_management_optimizations",
  "label_cost_management_optimizations",
];

function col(header: readonly string[], row: readonly string[], name: string): string {
  const i = header.indexOf(name);
  assert.ok(i >= 0, name);
  return row[i] ?? "";
}

function series(c: ClusterModel, metric: string) {
  return c.series.filter((s) => s.metric === metric);
}

async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// Cluster 0's day is computed once and shared by the tests below.
const r0 = expectedRosReports(hub, c0.id, DAY);

Deno.test("the ROS series exist in every cluster with the labels the queries read", () => {
  for (const c of hub.clusters) {
    for (const metric of ROS_FAMILIES) {
      if (metric.startsWith("DCGM_") && !c.scenario.gpu) continue;
      assert.ok(series(c, metric).length > 0, `${c.name}: ${metric}`);
    }
    for (const s of series(c, "kube_pod_owner")) {
      assert.equal(s.labels.container, "kube-rbac-proxy-main");
      assert.ok(s.labels.pod && s.labels.namespace && s.labels.owner_kind && s.labels.owner_name);
    }
    for (const s of series(c, "kube_pod_container_info")) {
      assert.ok(s.labels.container && s.labels.pod && s.labels.namespace && s.labels.image);
    }
    for (const s of series(c, "namespace_workload_pod:kube_pod_owner:relabel")) {
      assert.ok(s.labels.workload && s.labels.workload_type && s.labels.pod);
    }
    for (const s of series(c, "container_cpu_cfs_throttled_seconds_total")) {
      assert.equal(s.type, "counter");
      assert.ok(s.labels.container && s.labels.node);
    }
    const quotas = series(c, "kube_resourcequota");
    assert.deepEqual(
      [...new Set(quotas.map((s) => s.labels.resource))].sort(),
      ["limits.cpu", "limits.memory", "requests.cpu", "requests.memory"],
    );
    assert.ok(quotas.some((s) => s.labels.type === "used"));
    // Pods whose workload is a DeploymentConfig, and a bare pod without owner.
    assert.ok(c.scenario.deploymentConfigPods.length > 0);
    assert.ok(c.scenario.barePods.length > 0);
    assert.ok(c.scenario.throttledContainers.length > 0);
  }
  const dcgm = series(c0, "DCGM_FI_DEV_FB_USED");
  assert.ok(dcgm.some((s) => s.labels.GPU_I_PROFILE && s.labels.exported_pod));
  assert.ok(dcgm.every((s) => s.labels.modelName && s.labels.Hostname));
  assert.ok(series(c0, "DCGM_FI_DEV_GPU_UTIL").every((s) => !s.labels.GPU_I_PROFILE));
  // Opt-in labels: both kinds, "false", the excluded openshift- namespace, none in cluster 2.
  const ns = series(c0, "kube_namespace_labels");
  const label = (name: string, key: string) =>
    ns.find((s) => s.labels.namespace === name)?.labels[key];
  assert.equal(label("app-frontend", OPT_IN[0]!), "true");
  assert.equal(label("app-frontend", OPT_IN[1]!), "true");
  assert.equal(label("ml-training", OPT_IN[1]!), "true");
  assert.equal(label("data-pipeline", OPT_IN[0]!), "false");
  assert.equal(label("openshift-monitoring", OPT_IN[0]!), "true");
  assert.equal(c0.scenario.rosExcludedNamespace, "openshift-monitoring");
  assert.ok(c1.scenario.rosNamespaces.length > 0);
  assert.deepEqual(c2.scenario.rosNamespaces, []);
  assert.ok(
    series(c2, "kube_namespace_labels").every((s) =>
      OPT_IN.every((l) => s.labels[l] === undefined || s.labels[l] !== "true")
    ),
  );
});

Deno.test("rows have CMMO's widths, dates and order; four windows per hour", () => {
  assert.equal(r0.windows.length, 96);
  assert.ok(r0.windows.every((w) => w.passed));
  assert.equal(r0.windows[0]?.end, "2026-11-01 00:15:00 +0000 UTC");
  assert.equal(r0.windows[95]?.end, "2026-11-02 00:00:00 +0000 UTC");
  assert.ok(r0.container.length > 0 && r0.namespace.length > 0);
  for (const r of r0.container) assert.equal(r.length, CONTAINER_HEADER.length);
  for (const r of r0.namespace) assert.equal(r.length, NAMESPACE_HEADER.length);
  const last = r0.container[r0.container.length - 1]!;
  assert.deepEqual(last.slice(0, 4), [
    "2026-11-01 00:00:00 +0000 UTC",
    "2026-12-01 00:00:00 +0000 UTC",
    "2026-11-01 23:45:01 +0000 UTC",
    "2026-11-02 00:00:00 +0000 UTC",
  ]);
  const some = expectedRosReports(hub, c0.id, DAY, [3]);
  assert.equal(some.windows.length, 4);
  assert.ok(some.container.every((r) => r[3]!.startsWith("2026-11-01 0")));
  assert.throws(() => expectedRosReports(hub, c0.id, "2026-11-01T01:00:00Z"), /Invalid day/);
  assert.throws(() => expectedRosReports(hub, c0.id, DAY, [24]), /Invalid hour/);
});

Deno.test("a cluster with no opted-in namespace has no ROS rows", () => {
  const r = expectedRosReports(hub, c2.id, DAY);
  assert.deepEqual(r.container, []);
  assert.deepEqual(r.namespace, []);
  assert.ok(r.windows.every((w) => !w.passed));
});

Deno.test("hours without node data and windows whose filter is empty produce no rows", () => {
  // Cluster 1's outage runs from 19:53 to 21:02 after the hub start (22:00 the day before),
  // i.e. 17:53 to 19:02: the 18:00 window sees no namespace, hour 18 has no node data.
  const r = expectedRosReports(hub, c1.id, DAY, [17, 18, 19]);
  assert.deepEqual(r.windows.map((w) => w.passed), [
    true,
    true,
    true,
    false,
    false,
    false,
    false,
    false,
    true,
    true,
    true,
    true,
  ]);
  const ends = new Set(r.container.map((row) => row[3]));
  assert.ok(!ends.has("2026-11-01 18:00:00 +0000 UTC"));
  assert.ok(!ends.has("2026-11-01 18:15:00 +0000 UTC"));
  assert.ok(ends.has("2026-11-01 19:15:00 +0000 UTC"));
});

Deno.test("the openshift- namespace with the opt-in label and non-opted namespaces are excluded", () => {
  const excluded = c0.scenario.rosExcludedNamespace;
  assert.ok(excluded);
  const namespaces = new Set([
    ...r0.container.map((r) => col(CONTAINER_HEADER, r, "namespace")),
    ...r0.namespace.map((r) => col(NAMESPACE_HEADER, r, "namespace")),
  ]);
  assert.ok(!namespaces.has(excluded));
  assert.ok(!namespaces.has("data-pipeline")); // label "false"
  assert.ok(!namespaces.has("kube-system"));
  for (const ns of namespaces) assert.ok(c0.scenario.rosNamespaces.includes(ns), ns);
  // The excluded namespace does have pods, throttling and a quota.
  assert.ok(c0.scenario.throttledContainers.some((t) => t.namespace === excluded));
  assert.ok(series(c0, "kube_resourcequota").some((s) => s.labels.namespace === excluded));
});

Deno.test("throttled containers have non-zero cpu_throttle values, the others zero", () => {
  const throttled = c0.scenario.throttledContainers.filter((t) =>
    c0.scenario.rosNamespaces.includes(t.namespace)
  );
  assert.ok(throttled.length > 0);
  for (const t of throttled) {
    const rows = r0.container.filter((r) =>
      col(CONTAINER_HEADER, r, "pod") === t.pod &&
      col(CONTAINER_HEADER, r, "container_name") === t.container
    );
    assert.ok(rows.length > 0, t.pod);
    assert.ok(rows.some((r) => Number(col(CONTAINER_HEADER, r, "cpu_throttle_container_max")) > 0));
  }
  const quiet = r0.container.filter((r) =>
    col(CONTAINER_HEADER, r, "cpu_throttle_container_sum") === "0.000000"
  );
  assert.ok(quiet.length > 0);
});

Deno.test("spot checks against values computed by hand from the model", () => {
  const at = (rows: string[][], end: string, ns: string, header: readonly string[]) =>
    rows.filter((r) => r[3] === end && col(header, r, "namespace") === ns);
  // Quotas: app-frontend has "compute" (8 cores, 16 GiB) and "burst" (1.5 cores, 4 GiB limit).
  const [front] = at(
    r0.namespace,
    "2026-11-01 03:15:00 +0000 UTC",
    "app-frontend",
    NAMESPACE_HEADER,
  );
  assert.ok(front);
  assert.equal(col(NAMESPACE_HEADER, front, "cpu_request_namespace_sum"), "9.500000");
  assert.equal(col(NAMESPACE_HEADER, front, "cpu_limit_namespace_sum"), "16.000000");
  assert.equal(col(NAMESPACE_HEADER, front, "memory_request_namespace_sum"), "17179869184.000000");
  assert.equal(col(NAMESPACE_HEADER, front, "memory_limit_namespace_sum"), "38654705664.000000");
  // app-backend's CPU quota starts 5 h 20 min after the hub start (22:00 the day before): 03:20.
  const backend = (end: string) =>
    at(r0.namespace, end, "app-backend", NAMESPACE_HEADER).map((r) =>
      col(NAMESPACE_HEADER, r, "cpu_request_namespace_sum")
    );
  assert.deepEqual(backend("2026-11-01 03:15:00 +0000 UTC"), [""]);
  assert.deepEqual(backend("2026-11-01 03:30:00 +0000 UTC"), ["3.000000"]);

  // One container: requests, and min/max/avg of its per-container CPU gauge over [t − 15m, t].
  const end = Date.parse("2026-11-01T06:45:00Z");
  const gauge = series(
    c0,
    "node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate",
  ).find((s) => s.labels.namespace === "app-frontend");
  assert.ok(gauge);
  const values: number[] = [];
  for (let k = 0; k < c0.sampleCount; k++) {
    const t = sampleTimeMs(hub, c0, k);
    const v = sampleValue(c0, gauge, k);
    if (t >= end - 900_000 && t <= end && v !== undefined) values.push(v);
  }
  assert.equal(values.length, 3);
  const [row] = r0.container.filter((r) =>
    r[3] === "2026-11-01 06:45:00 +0000 UTC" &&
    col(CONTAINER_HEADER, r, "pod") === gauge.labels.pod &&
    col(CONTAINER_HEADER, r, "container_name") === gauge.labels.container
  );
  assert.ok(row);
  const f6 = (v: number) => v.toFixed(6);
  assert.equal(col(CONTAINER_HEADER, row, "cpu_usage_container_min"), f6(Math.min(...values)));
  assert.equal(col(CONTAINER_HEADER, row, "cpu_usage_container_max"), f6(Math.max(...values)));
  assert.equal(
    col(CONTAINER_HEADER, row, "cpu_usage_container_avg"),
    f6((values[0]! + values[1]! + values[2]!) / 3),
  );
  const request = series(c0, "kube_pod_container_resource_requests").find((s) =>
    s.labels.pod === gauge.labels.pod && s.labels.container === gauge.labels.container &&
    s.labels.resource === "cpu"
  );
  assert.ok(request);
  const requested = request.segments[request.segments.length - 1];
  assert.ok(requested?.kind === "const");
  assert.equal(col(CONTAINER_HEADER, row, "cpu_request_container_sum"), f6(requested.value));
  assert.equal(col(CONTAINER_HEADER, row, "namespace"), "app-frontend");
  assert.equal(col(CONTAINER_HEADER, row, "node"), gauge.labels.node);
  assert.notEqual(col(CONTAINER_HEADER, row, "resource_id"), "");
  assert.notEqual(col(CONTAINER_HEADER, row, "owner_kind"), "");
  assert.notEqual(col(CONTAINER_HEADER, row, "image_name"), "");

  // Throttling of a container without restart in a 15m window holding 3 samples spaced
  // 300 s: both edges lie within the extrapolation threshold, so rate = (v3 − v1) / 600.
  const ref = c0.scenario.throttledContainers.find((t) =>
    c0.scenario.rosNamespaces.includes(t.namespace) && t !== c0.scenario.throttleResetContainer
  );
  assert.ok(ref);
  const counter = series(c0, "container_cpu_cfs_throttled_seconds_total").find((s) =>
    s.labels.pod === ref.pod && s.labels.container === ref.container
  );
  assert.ok(counter);
  const pts: number[] = [];
  for (let k = 0; k < c0.sampleCount; k++) {
    const t = sampleTimeMs(hub, c0, k);
    const v = sampleValue(c0, counter, k);
    if (t >= end - 900_000 && t <= end && v !== undefined) pts.push(v);
  }
  assert.equal(pts.length, 3);
  const [trow] = r0.container.filter((r) =>
    r[3] === "2026-11-01 06:45:00 +0000 UTC" && col(CONTAINER_HEADER, r, "pod") === ref.pod &&
    col(CONTAINER_HEADER, r, "container_name") === ref.container
  );
  assert.ok(trow);
  assert.equal(
    col(CONTAINER_HEADER, trow, "cpu_throttle_container_avg"),
    f6((pts[2]! - pts[0]!) / 600),
  );

  // GPU rows: model name everywhere, MIG profile only on MIG instances.
  const gpuRows = r0.container.filter((r) => col(CONTAINER_HEADER, r, "accelerator_model_name"));
  assert.ok(gpuRows.some((r) => col(CONTAINER_HEADER, r, "accelerator_profile_name") !== ""));
  assert.ok(gpuRows.some((r) => col(CONTAINER_HEADER, r, "accelerator_core_usage_percentage_max")));
  // The DeploymentConfig pod has an owner but no workload.
  const dc = r0.container.find((r) =>
    c0.scenario.deploymentConfigPods.includes(col(CONTAINER_HEADER, r, "pod"))
  );
  assert.ok(dc);
  assert.equal(col(CONTAINER_HEADER, dc, "owner_kind"), "ReplicationController");
  assert.equal(col(CONTAINER_HEADER, dc, "workload"), "");
});

Deno.test("the cost oracle is unchanged by the ROS data, apart from the opt-in namespace labels", async () => {
  // SHA-256 of the cost expected reports (all clusters, all 28 hours) and of the
  // pre-ROS series, taken before the ROS data was added, with the opt-in labels
  // removed from namespace_labels / kube_namespace_labels. (defaultTestHub()
  // itself has ros: false, so there they are identical without removal.)
  const cost: Record<string, unknown> = {};
  for (const c of hub.clusters) {
    for (let h = 0; h < hub.hours; h++) {
      const r = expectedReports(hub, c.id, new Date(hub.startMs + h * 3_600_000));
      cost[`${c.id}|${h}`] = {
        ...r,
        namespace: r.namespace.map((row) => [
          ...row.slice(0, 5),
          (row[5] ?? "").split("|").filter((x) =>
            x !== "" && !OPT_IN.some((l) => x.startsWith(l + ":"))
          ).join("|"),
        ]),
      };
    }
  }
  assert.equal(
    await sha256(JSON.stringify(cost)),
    "d5714e26cee7dd34431046737aaef0c6a8c1a9651079b7c7fc346346ae4c3f9b",
  );
  const old = hub.clusters.map((c) =>
    c.series.filter((s) => !ROS_FAMILIES.has(s.metric)).map((s) => {
      if (s.metric !== "kube_namespace_labels") return s;
      const labels: Record<string, string> = { ...s.labels };
      for (const l of OPT_IN) delete labels[l];
      return { ...s, labels };
    })
  );
  assert.equal(
    await sha256(JSON.stringify(old)),
    "83d28d2ba3a6dfe9d7a723d5c5ebb3d5e02ef90ec4a59e5ed4e4eca56378b90b",
  );
});

Deno.test("ros: false (defaultTestHub) leaves out exactly the ROS families and opt-in labels", () => {
  const off = buildHub(defaultTestHub());
  assert.equal(defaultTestHub().ros, false);
  off.clusters.forEach((c, i) => {
    const on = hub.clusters[i]!.series.filter((s) => !ROS_FAMILIES.has(s.metric)).map((s) => {
      if (s.metric !== "kube_namespace_labels") return s;
      const labels: Record<string, string> = { ...s.labels };
      for (const l of OPT_IN) delete labels[l];
      return { ...s, labels };
    });
    assert.deepEqual(c.series, on);
    assert.deepEqual(c.scenario.rosNamespaces, []);
    assert.equal(c.scenario.rosExcludedNamespace, null);
  });
  const r = expectedRosReports(off, off.clusters[0]!.id, DAY, [3]);
  assert.deepEqual([r.container, r.namespace], [[], []]);
  assert.ok(r.windows.every((w) => !w.passed));
});
