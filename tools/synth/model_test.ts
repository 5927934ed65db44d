import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  buildHub,
  clusterById,
  type ClusterModel,
  defaultTestHub,
  HOSTILE_VALUE,
  type HubOptions,
  sampleTimeMs,
  sampleValue,
  type SeriesSpec,
} from "./model.ts";
import { writeOpenMetrics } from "./openmetrics.ts";

const hub = buildHub(defaultTestHub());

function seriesOf(c: ClusterModel, metric: string, match: Record<string, string> = {}) {
  return c.series.filter((s) =>
    s.metric === metric && Object.entries(match).every(([k, v]) => s.labels[k] === v)
  );
}

function definedValues(c: ClusterModel, s: SeriesSpec): [number, number][] {
  const out: [number, number][] = [];
  for (let k = 0; k < c.sampleCount; k++) {
    const v = sampleValue(c, s, k);
    if (v !== undefined) out.push([k, v]);
  }
  return out;
}

Deno.test("same seed gives an identical hub; another seed a different one", () => {
  const again = buildHub(defaultTestHub());
  assert.equal(JSON.stringify(again), JSON.stringify(hub));
  const other = buildHub({ ...defaultTestHub(), seed: 7 });
  assert.notEqual(JSON.stringify(other), JSON.stringify(hub));
  assert.notEqual(other.clusters[0]?.id, hub.clusters[0]?.id);
});

Deno.test("options are validated with clear errors", () => {
  const base = defaultTestHub();
  const bad: [Partial<HubOptions>, ErrorConstructor, RegExp][] = [
    [{ start: new Date("2026-10-31T22:30:00Z") }, RangeError, /whole UTC hour/],
    [{ start: new Date("nope") }, TypeError, /valid Date/],
    [{ hours: 25 }, RangeError, /hours 25/],
    [{ nodes: 1 }, RangeError, /nodes 1/],
    [{ intervalSeconds: 7 }, RangeError, /intervalSeconds 7/],
    [{ clusters: 0 }, RangeError, /clusters 0/],
    [{ gpuClusters: 4 }, RangeError, /gpuClusters 4/],
    [{ pods: 1.5 }, RangeError, /pods 1.5/],
  ];
  for (const [patch, type, message] of bad) {
    assert.throws(() => buildHub({ ...base, ...patch }), (e: unknown) => {
      assert.ok(e instanceof type, `${JSON.stringify(patch)} threw ${e}`);
      assert.match((e as Error).message, message);
      return true;
    });
  }
});

Deno.test("every series carries clusterID and cluster, no empty labels, sane segments", () => {
  for (const c of hub.clusters) {
    assert.match(c.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    for (const s of c.series) {
      assert.equal(s.labels.clusterID, c.id);
      assert.equal(s.labels.cluster, c.name);
      for (const v of Object.values(s.labels)) assert.notEqual(v, "");
      assert.equal(s.type === "counter", s.metric.endsWith("_total"), s.metric);
      let prevTo = 0;
      for (const seg of s.segments) {
        assert.ok(seg.from >= prevTo && seg.to > seg.from && seg.to <= c.sampleCount);
        prevTo = seg.to;
      }
    }
  }
  assert.deepEqual(hub.clusters.map((c) => new Set(c.series.map((s) => s.labels.clusterID)).size), [
    1,
    1,
    1,
  ]);
  assert.equal(new Set(hub.clusters.map((c) => c.id)).size, hub.clusters.length);
});

Deno.test("no sample lands on a 60 s boundary", () => {
  for (const intervalSeconds of [300, 30, 45, 120]) {
    const h = buildHub({ ...defaultTestHub(), intervalSeconds, clusters: 3 });
    for (const c of h.clusters) {
      assert.ok(c.phaseSeconds >= 1 && c.phaseSeconds < intervalSeconds);
      for (let k = 0; k < c.sampleCount; k += 1) {
        assert.notEqual(sampleTimeMs(h, c, k) % 60_000, 0, `interval ${intervalSeconds} k ${k}`);
      }
      const last = sampleTimeMs(h, c, c.sampleCount - 1);
      assert.ok(last < h.startMs + h.hours * 3_600_000);
      assert.ok(last + intervalSeconds * 1000 >= h.startMs + h.hours * 3_600_000);
    }
  }
});

Deno.test("pods have one or two workload containers, plus POD and cgroup series", () => {
  for (const c of hub.clusters) {
    const perPod = new Map<string, Set<string>>();
    for (const s of c.series) {
      if (s.metric !== "container_cpu_usage_seconds_total" || !s.labels.pod) continue;
      const key = `${s.labels.namespace}/${s.labels.pod}`;
      const set = perPod.get(key) ?? new Set();
      set.add(s.labels.container ?? "<cgroup>");
      perPod.set(key, set);
    }
    assert.ok(perPod.size > 0);
    for (const [pod, containers] of perPod) {
      assert.ok(containers.has("POD") && containers.has("<cgroup>"), pod);
      const workload = [...containers].filter((n) => n !== "POD" && n !== "<cgroup>");
      assert.ok(workload.length >= 1 && workload.length <= 2, `${pod}: ${workload}`);
    }
  }
});

Deno.test("counters only go up, except for the deliberate restart (CPU and throttling)", () => {
  const c = buildHub({ ...defaultTestHub(), ros: true }).clusters[0];
  assert.ok(c);
  const resets: string[] = [];
  for (const s of c.series.filter((x) => x.type === "counter")) {
    const vals = definedValues(c, s);
    for (let i = 1; i < vals.length; i++) {
      const [, prev] = vals[i - 1] ?? [0, 0];
      const [, cur] = vals[i] ?? [0, 0];
      if (cur < prev) {
        resets.push(s.metric);
        assert.equal(s.labels.pod, c.scenario.resetPod);
      }
    }
  }
  assert.deepEqual(resets.sort(), [
    "container_cpu_cfs_throttled_seconds_total",
    "container_cpu_usage_seconds_total",
  ]);
  assert.equal(c.scenario.throttleResetContainer?.pod, c.scenario.resetPod);
});

Deno.test("the scenario's interesting cases exist in the first cluster", () => {
  const c = hub.clusters[0];
  assert.ok(c);
  const s = c.scenario;
  for (
    const name of [
      s.resizedNode,
      s.lateNode,
      s.resetPod,
      s.noLimitPod,
      s.pendingPod,
      s.ghostPod,
      s.hostilePod,
      s.jobPod,
      s.daemonPod,
      s.sharedPvc,
      s.unmountedPvc,
      s.vmWithTwoDisks,
      s.lateVm,
      s.stoppingVm,
      s.vmWithoutLimits,
    ]
  ) {
    assert.ok(name, JSON.stringify(s));
  }
  assert.ok(s.midHourPods.length > 0 && s.gpu && s.dcgmExporterPods.length === 2);
  // Ghost node: used by a pod, absent from every node metric.
  assert.equal(seriesOf(c, "kube_node_info", { node: s.ghostNode }).length, 0);
  assert.ok(seriesOf(c, "kube_pod_container_resource_requests", { node: s.ghostNode }).length > 0);
  // The master has two roles.
  assert.deepEqual(
    seriesOf(c, "kube_node_role", { node: s.masterNode }).map((x) => x.labels.role).sort(),
    ["control-plane", "master"],
  );
  // No limits for the no-limit pod.
  assert.equal(
    seriesOf(c, "kube_pod_container_resource_limits", { pod: s.noLimitPod ?? "" }).length,
    0,
  );
  // The resized node's capacity has two values.
  const cap = seriesOf(c, "kube_node_status_capacity", {
    node: s.resizedNode ?? "",
    resource: "cpu",
  })[0];
  assert.ok(cap);
  assert.equal(new Set(definedValues(c, cap).map(([, v]) => v)).size, 2);
  // The shared PVC is mounted by two pods on two nodes.
  const mounts = seriesOf(c, "kube_pod_spec_volumes_persistentvolumeclaims_info", {
    persistentvolumeclaim: s.sharedPvc ?? "",
  });
  assert.equal(new Set(mounts.map((m) => m.labels.pod)).size, 2);
  const usage = seriesOf(c, "kubelet_volume_stats_used_bytes", {
    persistentvolumeclaim: s.sharedPvc ?? "",
  });
  assert.equal(new Set(usage.map((u) => u.labels.node)).size, 2);
  // The unbound PV has no claim.
  assert.equal(
    seriesOf(c, "kube_persistentvolumeclaim_info", { volumename: s.unboundPv }).length,
    0,
  );
  assert.equal(
    seriesOf(c, "kube_persistentvolume_capacity_bytes", { persistentvolume: s.unboundPv }).length,
    1,
  );
  // The pending pod has requests without a node first, then with one.
  const pending = seriesOf(c, "kube_pod_container_resource_requests", {
    pod: s.pendingPod ?? "",
    resource: "cpu",
  });
  assert.ok(pending.some((x) => x.labels.node === undefined));
  assert.ok(pending.some((x) => x.labels.node !== undefined));
  // MIG and non-MIG GPUs, idle ones without exported_pod.
  const dcgm = seriesOf(c, "DCGM_FI_PROF_GR_ENGINE_ACTIVE");
  assert.ok(dcgm.some((x) => x.labels.GPU_I_ID && x.labels.exported_pod));
  assert.ok(dcgm.some((x) => !x.labels.GPU_I_ID && x.labels.exported_pod));
  assert.ok(dcgm.some((x) => x.labels.GPU_I_ID && !x.labels.exported_pod));
  assert.ok(dcgm.some((x) => !x.labels.GPU_I_ID && !x.labels.exported_pod));
  // GPUs only on the first cluster.
  assert.deepEqual(
    hub.clusters.map((x) => seriesOf(x, "DCGM_FI_PROF_GR_ENGINE_ACTIVE").length > 0),
    [
      true,
      false,
      false,
    ],
  );
});

Deno.test("clusters 2 and 3 have the outage and the late start", () => {
  const [c0, c1, c2] = hub.clusters;
  assert.ok(c0 && c1 && c2);
  assert.deepEqual(c0.scenario.hoursWithoutData, []);
  assert.deepEqual(c1.scenario.hoursWithoutData, [20]);
  assert.deepEqual(c2.scenario.hoursWithoutData, [0, 1]);
  for (const c of [c1, c2]) {
    for (const h of c.scenario.hoursWithoutData) {
      // Nothing within the hour or its 5-minute lookback.
      const from = hub.startMs + h * 3_600_000 - 5 * 60_000;
      const to = hub.startMs + (h + 1) * 3_600_000;
      for (let k = 0; k < c.sampleCount; k++) {
        const t = sampleTimeMs(hub, c, k);
        if (t < from || t >= to) continue;
        assert.ok(c.series.every((s) => sampleValue(c, s, k) === undefined), `k ${k}`);
      }
    }
  }
});

Deno.test("hostile mode puts awkward characters where the task asks for them", () => {
  const c = hub.clusters[0];
  assert.ok(c);
  const labelValues = c.series.flatMap((s) =>
    Object.entries(s.labels).filter(([k]) => k.startsWith("label_")).map(([, v]) => v)
  );
  assert.ok(labelValues.includes(HOSTILE_VALUE));
  for (const ch of [",", '"', "|", ":", "\n", "\\", "ü", "🚀"]) {
    assert.ok(HOSTILE_VALUE.includes(ch));
  }
  const pods = new Set(c.series.map((s) => s.labels.pod).filter((p) => p !== undefined));
  assert.ok([...pods].some((p) => p.includes(",") && p.includes('"')));
  const providers = seriesOf(c, "kube_node_info").map((s) => s.labels.provider_id ?? "");
  assert.ok(providers.some((p) => /[,"|:\n\\]/.test(p) && /[^ -~\n]/.test(p)));
  const os = seriesOf(c, "kubevirt_vmi_info").map((s) => s.labels.os ?? "");
  assert.ok(os.some((o) => o.startsWith(" ") && o.includes("\n") && o.includes(",")));
  // Off by default.
  const tame = buildHub({ ...defaultTestHub(), hostile: false });
  assert.ok(
    tame.clusters.every((x) =>
      x.series.every((s) => Object.values(s.labels).every((v) => !v.includes("\n")))
    ),
  );
});

Deno.test("clusterById finds clusters and rejects unknown ids", () => {
  const c = hub.clusters[2];
  assert.ok(c);
  assert.equal(clusterById(hub, c.id), c);
  assert.throws(() => clusterById(hub, "nope"), RangeError);
});

Deno.test("dropMetrics removes one family from one cluster and changes nothing else", () => {
  const base = buildHub(defaultTestHub());
  const metric = "kube_pod_container_resource_requests";
  const dropped = buildHub({ ...defaultTestHub(), dropMetrics: [{ clusterIndex: 1, metric }] });
  const [a, b] = [base.clusters[1]!, dropped.clusters[1]!];
  assert.ok(a.series.some((s) => s.metric === metric));
  assert.ok(!b.series.some((s) => s.metric === metric));
  assert.deepEqual(b.series, a.series.filter((s) => s.metric !== metric));
  assert.deepEqual(dropped.clusters[0], base.clusters[0]);
  assert.deepEqual(dropped.clusters[2], base.clusters[2]);
  assert.throws(
    () => buildHub({ ...defaultTestHub(), dropMetrics: [{ clusterIndex: 3, metric }] }),
    /cluster index 3/,
  );
  assert.throws(
    () => buildHub({ ...defaultTestHub(), dropMetrics: [{ clusterIndex: 0, metric: "nope" }] }),
    /"nope": cluster 0 has no such series/,
  );
});

/** SHA-256 of the OpenMetrics text of `options`' hub (every file, in order). */
async function openMetricsHash(options: HubOptions): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "synth-shared-" });
  try {
    const files = await writeOpenMetrics(buildHub(options), dir);
    const hash = createHash("sha256");
    for (const f of files) hash.update(await Deno.readFile(f));
    return hash.digest("hex");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("sharedNames: false (or absent) leaves the hub byte-identical", async () => {
  const base = defaultTestHub();
  const [without, withFalse, withTrue] = [
    await openMetricsHash(base),
    await openMetricsHash({ ...base, sharedNames: false }),
    await openMetricsHash({ ...base, sharedNames: true }),
  ];
  assert.equal(withFalse, without, "sharedNames: false changes no byte of the data");
  assert.notEqual(withTrue, without, "sharedNames: true does change the data");
  // The model itself too, with ROS data (its own PRNG stream) and without hostile labels.
  const ros = { ...base, ros: true, hostile: false };
  assert.equal(
    JSON.stringify(buildHub({ ...ros, sharedNames: false })),
    JSON.stringify(buildHub(ros)),
  );
});

/** `namespace/pod` → the pod's node, from `kube_pod_status_phase` and the node-bound requests. */
function podsOf(c: ClusterModel): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of seriesOf(c, "kube_pod_labels")) {
    out.set(`${s.labels.namespace}/${s.labels.pod}`, "");
  }
  for (const s of seriesOf(c, "kube_pod_container_resource_requests")) {
    const key = `${s.labels.namespace}/${s.labels.pod}`;
    if (s.labels.node !== undefined) out.set(key, s.labels.node);
  }
  return out;
}

Deno.test("sharedNames: true repeats pod/namespace/node across clusters with other values", () => {
  const options = { ...defaultTestHub(), ros: true, gpuClusters: 2, sharedNames: true };
  const shared = buildHub(options);
  const own = buildHub({ ...options, sharedNames: false });
  const [a, b, c] = shared.clusters as [ClusterModel, ClusterModel, ClusterModel];
  // Cluster ids, names and phases stay per cluster.
  assert.equal(new Set(shared.clusters.map((x) => x.id)).size, 3);
  assert.equal(new Set(shared.clusters.map((x) => x.phaseSeconds)).size, 3);

  const nodes = (x: ClusterModel) => seriesOf(x, "kube_node_info").map((s) => s.labels.node);
  assert.deepEqual(nodes(b), nodes(a)); // two GPU clusters
  assert.deepEqual(nodes(c), nodes(a).filter((n) => !n?.includes(".gpu.")));
  const [pa, pb, pc] = [podsOf(a), podsOf(b), podsOf(c)];
  // The same pod in the same namespace on the same node, in all three clusters …
  const inAll = [...pa].filter(([k, node]) => pb.get(k) === node && pc.get(k) === node);
  assert.ok(inAll.length >= options.pods, `${inAll.length} pods in all three clusters`);
  // … and GPU pods in the two GPU clusters only.
  const gpuPods = [...pa.keys()].filter((k) => k.startsWith("ml-training/"));
  assert.ok(gpuPods.length > 0);
  for (const k of gpuPods) {
    assert.equal(pb.get(k), pa.get(k), k);
    assert.equal(pc.has(k), false, k);
  }
  // VM and PV names repeat too.
  const vms = (x: ClusterModel) => seriesOf(x, "kubevirt_vm_labels").map((s) => s.labels.name);
  assert.deepEqual(vms(b), vms(a));
  assert.deepEqual(vms(c), vms(a));
  const pvs = (x: ClusterModel) =>
    seriesOf(x, "kube_persistentvolume_info").map((s) => s.labels.persistentvolume);
  assert.deepEqual(pvs(b), pvs(a));

  // Different values: a shared pod's requests, uid and labels differ between clusters.
  const differs = (metric: string, pick: (s: SeriesSpec) => string) =>
    inAll.filter(([k]) => {
      const [ns, pod] = k.split("/");
      const of = (x: ClusterModel) =>
        seriesOf(x, metric, { namespace: ns!, pod: pod! }).map(pick).join(";");
      return of(a) !== of(b) || of(b) !== of(c);
    }).length;
  const valueOf = (s: SeriesSpec) =>
    `${s.labels.container}/${s.labels.resource}=${JSON.stringify(s.segments)}`;
  assert.ok(differs("kube_pod_container_resource_requests", valueOf) > inAll.length / 2);
  assert.equal(differs("kube_pod_labels", (s) => s.labels.uid ?? ""), inAll.length);
  assert.ok(differs("kube_pod_labels", (s) => s.labels.label_pod_template_hash ?? "") > 0);
  assert.ok(differs("container_cpu_usage_seconds_total", (s) => JSON.stringify(s.segments)) > 0);

  // Without the option no pod name repeats across clusters.
  const ownNames = own.clusters.map((x) => new Set(podsOf(x).keys()));
  const repeated = [...ownNames[0]!].filter((k) => ownNames[1]!.has(k) || ownNames[2]!.has(k));
  assert.deepEqual(repeated, []);
});
