import assert from "node:assert/strict";
import { evaluateQueryRange, type RangeSeries } from "./ground_truth.ts";
import { COST_QUERIES } from "./cost_queries.ts";
import { type HubOptions, sampleValue } from "./model.ts";
import { compareLabels } from "./promql_eval.ts";
import { prepareHub, type PrometheusServer, startPrometheus } from "./prometheus.ts";
import { backfill } from "./prometheus.ts";
import { buildHub } from "./model.ts";
import { writeOpenMetrics } from "./openmetrics.ts";

/**
 * CMMO's cost queries as in contract §2, with the cluster matcher `${m}`
 * written into every selector by hand and every range window set to 15m.
 */
const QUERIES: Record<string, (m: string) => string> = {
  "node-allocatable-cpu-cores": (m) =>
    `kube_node_status_allocatable{resource='cpu', ${m}} * on(node) group_left(provider_id) max by (node, provider_id) (kube_node_info{${m}})`,
  "node-allocatable-memory-bytes": (m) =>
    `kube_node_status_allocatable{resource='memory', ${m}} * on(node) group_left(provider_id) max by (node, provider_id) (kube_node_info{${m}})`,
  "node-capacity-cpu-cores": (m) =>
    `kube_node_status_capacity{resource='cpu', ${m}} * on(node) group_left(provider_id) max by (node, provider_id) (kube_node_info{${m}})`,
  "node-capacity-memory-bytes": (m) =>
    `kube_node_status_capacity{resource='memory', ${m}} * on(node) group_left(provider_id) max by (node, provider_id) (kube_node_info{${m}})`,
  "node-role": (m) => `kube_node_role{${m}}`,
  "node-labels": (m) => `kube_node_labels{${m}}`,
  "pod-limit-cpu-cores": (m) =>
    `sum by (pod, namespace, node) (kube_pod_container_resource_limits{pod!='', namespace!='', node!='', resource='cpu', ${m}} * on(pod, namespace) group_left max by (pod, namespace) (kube_pod_status_phase{phase='Running', ${m}}))`,
  "pod-limit-memory-bytes": (m) =>
    `sum by (pod, namespace, node) (kube_pod_container_resource_limits{pod!='', namespace!='', node!='', resource='memory', ${m}} * on(pod, namespace) group_left max by (pod, namespace) (kube_pod_status_phase{phase='Running', ${m}}))`,
  "pod-request-cpu-cores": (m) =>
    `sum by (pod, namespace, node) (kube_pod_container_resource_requests{pod!='', namespace!='', node!='', resource='cpu', ${m}} * on(pod, namespace) group_left max by (pod, namespace) (kube_pod_status_phase{phase='Running', ${m}}))`,
  "pod-request-memory-bytes": (m) =>
    `sum by (pod, namespace, node) (kube_pod_container_resource_requests{pod!='', namespace!='', node!='', resource='memory', ${m}} * on(pod, namespace) group_left max by (pod, namespace) (kube_pod_status_phase{phase='Running', ${m}}))`,
  "pod-usage-cpu-cores": (m) =>
    `sum by (pod, namespace, node) (rate(container_cpu_usage_seconds_total{container!='', container!='POD', pod!='', namespace!='', node!='', ${m}}[15m]))`,
  "pod-usage-memory-bytes": (m) =>
    `sum by (pod, namespace, node) (container_memory_usage_bytes{container!='', container!='POD', pod!='', namespace!='', node!='', ${m}})`,
  "pod-labels": (m) =>
    `kube_pod_labels{namespace!='',pod!='', ${m}} * on(pod, namespace) group_left max by (pod, namespace) (kube_pod_status_phase{phase='Running', ${m}})`,
  "persistentvolume-pod-info": (m) =>
    `kube_pod_spec_volumes_persistentvolumeclaims_info{${m}} * on(persistentvolumeclaim, namespace) group_left(volumename) max by(namespace, persistentvolumeclaim, volumename) (kube_persistentvolumeclaim_info{volumename != '', ${m}})`,
  "persistentvolumeclaim-capacity-bytes": (m) =>
    `kube_persistentvolume_capacity_bytes{persistentvolume != '', ${m}}`,
  "persistentvolumeclaim-request-bytes": (m) =>
    `kube_persistentvolumeclaim_resource_requests_storage_bytes{${m}} * on(persistentvolumeclaim, namespace) group_left(volumename) max by(namespace, persistentvolumeclaim, volumename) (kube_persistentvolumeclaim_info{volumename != '', ${m}})`,
  "persistentvolumeclaim-usage-bytes": (m) =>
    `kubelet_volume_stats_used_bytes{${m}} * on(persistentvolumeclaim, namespace) group_left(volumename) max by(namespace, persistentvolumeclaim, volumename) (kube_persistentvolumeclaim_info{volumename != '', ${m}})`,
  "persistentvolume-labels": (m) =>
    `kube_persistentvolume_labels{${m}} * on(persistentvolume, namespace) group_left(storageclass, csi_driver, csi_volume_handle) max by(namespace, persistentvolume, storageclass, csi_driver, csi_volume_handle) (kube_persistentvolume_info{${m}})`,
  "persistentvolumeclaim-labels": (m) =>
    `kube_persistentvolumeclaim_labels{${m}} * on(persistentvolumeclaim, namespace) group_left(volumename) max by(namespace, persistentvolumeclaim, volumename) (kube_persistentvolumeclaim_info{volumename != '', ${m}})`,
  "vm_cpu_limit_cores": (m) =>
    `sum by (name, namespace) (kubevirt_vm_resource_limits{name!='', namespace!='', resource='cpu', ${m}}) * on (name, namespace) group_left max by (name, namespace) (kubevirt_vmi_info{phase='running', ${m}})`,
  "vm_cpu_request_cores": (m) =>
    `sum by (name, namespace) (kubevirt_vm_resource_requests{name!='', namespace!='', resource='cpu', unit='cores', ${m}}) * on (name, namespace) group_left max by (name, namespace) (kubevirt_vmi_info{phase='running', ${m}})`,
  "vm_cpu_request_sockets": (m) =>
    `sum by (name, namespace) (kubevirt_vm_resource_requests{name!='', namespace!='', resource='cpu', unit='sockets', ${m}}) * on (name, namespace) group_left max by (name, namespace) (kubevirt_vmi_info{phase='running', ${m}})`,
  "vm_cpu_request_threads": (m) =>
    `sum by (name, namespace) (kubevirt_vm_resource_requests{name!='', namespace!='', resource='cpu', unit='threads', ${m}}) * on (name, namespace) group_left max by (name, namespace) (kubevirt_vmi_info{phase='running', ${m}})`,
  "vm_cpu_usage": (m) =>
    `sum by (name, namespace) (rate(kubevirt_vmi_cpu_usage_seconds_total{name!='', namespace!='', ${m}}[15m])) * on (name, namespace) group_left max by (name, namespace) (kubevirt_vmi_info{phase='running', ${m}})`,
  "vm_memory_limit_bytes": (m) =>
    `sum by (name, namespace) (kubevirt_vm_resource_limits{name!='', namespace!='', resource='memory', ${m}}) * on (name, namespace) group_left max by (name, namespace) (kubevirt_vmi_info{phase='running', ${m}})`,
  "vm_memory_request_bytes": (m) =>
    `sum by (name, namespace) (kubevirt_vm_resource_requests{name!='', namespace!='', resource='memory', ${m}}) * on (name, namespace) group_left max by (name, namespace) (kubevirt_vmi_info{phase='running', ${m}})`,
  "vm_memory_usage": (m) =>
    `sum by (name, namespace) (sum_over_time(kubevirt_vmi_memory_used_bytes{name!='', namespace!='', ${m}}[15m])) * on (name, namespace) group_left max by (name, namespace) (kubevirt_vmi_info{phase='running', ${m}})`,
  "vm_info": (m) =>
    `sum by (name, namespace, node, os, instance_type, guest_os_name, guest_os_version_id, guest_os_arch) (kubevirt_vmi_info{phase='running', ${m}}) * on(node) group_left(provider_id) max by (node, provider_id) (kube_node_info{${m}})`,
  "vm_disk_allocated_size": (m) =>
    `sum by (name, namespace, device, persistentvolumeclaim, volume_mode) (kubevirt_vm_disk_allocated_size_bytes{name!='', namespace!='', ${m}}) * on (name, namespace) group_left max by (name, namespace) (kubevirt_vmi_info{phase='running', ${m}})`,
  "vm_labels": (m) => `kubevirt_vm_labels{name!='', namespace!='', ${m}}`,
  "nvidia-gpu-memory-capacity-mib-non-mig": (m) =>
    `sum by (pod, namespace, node, label_nvidia_com_gpu_memory) ((kube_pod_container_resource_requests{pod!='', namespace!='', node!='', resource='nvidia_com_gpu', ${m}} * on(pod, namespace) group_left max by (pod, namespace) (kube_pod_status_phase{phase='Running', ${m}})) * on(node) group_left(label_nvidia_com_gpu_memory) (max by (node, label_nvidia_com_gpu_memory) (kube_node_labels{${m}})))`,
  "nvidia-gpu-memory-capacity-mib-mig": (m) =>
    `(DCGM_FI_PROF_GR_ENGINE_ACTIVE{UUID!='', GPU_I_ID!='', ${m}} * on(exported_pod, exported_namespace) group_left(pod, namespace) max by (exported_pod, exported_namespace) (label_replace(label_replace(kube_pod_status_phase{phase='Running', ${m}}, 'exported_pod', '$1', 'pod', '(.*)'), 'exported_namespace', '$1', 'namespace', '(.*)')) * on(Hostname) group_left(label_nvidia_com_gpu_memory, label_nvidia_com_mig_strategy) label_replace(kube_node_labels{label_nvidia_com_gpu_memory!='', ${m}}, 'Hostname', '$1', 'node', '(.+)')) or (label_replace(label_replace(DCGM_FI_PROF_GR_ENGINE_ACTIVE{UUID!='', GPU_I_ID!='', exported_namespace='', ${m}} * on(pod, namespace) group_left max by (pod, namespace) (kube_pod_status_phase{phase='Running', ${m}}) * on(Hostname) group_left(label_nvidia_com_gpu_memory, label_nvidia_com_mig_strategy) label_replace(kube_node_labels{label_nvidia_com_gpu_memory!='', ${m}}, 'Hostname', '$1', 'node', '(.+)'), 'exported_pod', '$1', 'pod', '(.*)'), 'exported_namespace', '$1', 'namespace', '(.*)'))`,
  "nvidia-gpu-utilization": (m) =>
    `(sum by (exported_pod, exported_namespace, Hostname, UUID, modelName, GPU_I_ID, GPU_I_PROFILE, device) (DCGM_FI_PROF_GR_ENGINE_ACTIVE{UUID!='', ${m}}) * on(exported_pod, exported_namespace) group_left(pod, namespace) max by (exported_pod, exported_namespace) (label_replace(label_replace(kube_pod_status_phase{phase='Running', ${m}}, 'exported_pod', '$1', 'pod', '(.*)'), 'exported_namespace', '$1', 'namespace', '(.*)'))) or (label_replace(label_replace(sum by (pod, namespace, Hostname, UUID, modelName, GPU_I_ID, GPU_I_PROFILE, device) (DCGM_FI_PROF_GR_ENGINE_ACTIVE{UUID!='', exported_namespace='', ${m}}) * on(pod, namespace) group_left max by (pod, namespace) (kube_pod_status_phase{phase='Running', ${m}}), 'exported_pod', '$1', 'pod', '(.*)'), 'exported_namespace', '$1', 'namespace', '(.*)'))`,
  "nvidia-gpu-pod-uptime": (m) =>
    `(sum by (exported_pod, exported_namespace, Hostname, UUID, modelName, GPU_I_ID, GPU_I_PROFILE, device) (clamp_max(DCGM_FI_PROF_GR_ENGINE_ACTIVE{UUID!='', ${m}} + 1, 1)) * on(exported_pod, exported_namespace) group_left(pod, namespace) max by (exported_pod, exported_namespace) (label_replace(label_replace(kube_pod_status_phase{phase='Running', ${m}}, 'exported_pod', '$1', 'pod', '(.*)'), 'exported_namespace', '$1', 'namespace', '(.*)'))) or (label_replace(label_replace(sum by (pod, namespace, Hostname, UUID, modelName, GPU_I_ID, GPU_I_PROFILE, device) (clamp_max(DCGM_FI_PROF_GR_ENGINE_ACTIVE{UUID!='', exported_namespace='', ${m}} + 1, 1)) * on(pod, namespace) group_left max by (pod, namespace) (kube_pod_status_phase{phase='Running', ${m}}), 'exported_pod', '$1', 'pod', '(.*)'), 'exported_namespace', '$1', 'namespace', '(.*)'))`,
  "nvidia-gpu-max-slices": (m) =>
    `(sum by (exported_pod, exported_namespace, Hostname, UUID, modelName, GPU_I_ID, GPU_I_PROFILE) (DCGM_FI_DEV_MIG_MAX_SLICES{UUID!='', ${m}}) * on(exported_pod, exported_namespace) group_left(pod, namespace) max by (exported_pod, exported_namespace) (label_replace(label_replace(kube_pod_status_phase{phase='Running', ${m}}, 'exported_pod', '$1', 'pod', '(.*)'), 'exported_namespace', '$1', 'namespace', '(.*)'))) or (label_replace(label_replace(sum by (pod, namespace, Hostname, UUID, modelName, GPU_I_ID, GPU_I_PROFILE) (DCGM_FI_DEV_MIG_MAX_SLICES{UUID!='', exported_namespace='', ${m}}) * on(pod, namespace) group_left max by (pod, namespace) (kube_pod_status_phase{phase='Running', ${m}}), 'exported_pod', '$1', 'pod', '(.*)'), 'exported_namespace', '$1', 'namespace', '(.*)'))`,
  "namespace-labels": (m) => `kube_namespace_labels{${m}}`,
};

const SMALL: HubOptions = {
  seed: 424242,
  clusters: 2,
  nodes: 3,
  pods: 8,
  pvcs: 3,
  vms: 3,
  gpuPods: 4,
  gpuClusters: 1,
  start: new Date("2026-10-31T22:00:00Z"),
  hours: 26,
  hostile: true,
};

/** Hours (from the start) to cross-check per cluster index. */
const PLAN: [number, number[]][] = [
  // Warm-up hour, GPU/VM/node arrivals, pending pod + counter reset, job + node resize.
  [0, [0, 1, 2, 3]],
  // The second cluster: warm-up, the outage hour (no data at all) and the hour after it.
  [1, [0, 20, 21]],
];

interface PromSeries {
  metric: Record<string, string>;
  values: [number, string][];
}

async function queryRange(url: string, query: string, hourMs: number): Promise<PromSeries[]> {
  const body = new URLSearchParams({
    query,
    start: String(hourMs / 1000),
    end: String(hourMs / 1000 + 3599),
    step: "60",
  });
  const res = await fetch(`${url}/api/v1/query_range`, { method: "POST", body });
  const json = await res.json();
  assert.equal(json.status, "success", `query failed: ${JSON.stringify(json)} for ${query}`);
  assert.equal(json.data.resultType, "matrix");
  return json.data.result as PromSeries[];
}

function sameLabels(a: Record<string, string>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

function compareSeries(name: string, got: PromSeries[], want: RangeSeries[]): void {
  assert.equal(
    got.length,
    want.length,
    `${name}: ${got.length} series from Prometheus, ${want.length} from the oracle`,
  );
  got.forEach((g, i) => {
    const w = want[i];
    assert.ok(w);
    assert.ok(
      sameLabels(g.metric, w.labels),
      `${name}: series ${i} differs: ${JSON.stringify(g.metric)} vs ${JSON.stringify(w.labels)}`,
    );
    assert.equal(
      g.values.length,
      w.points.length,
      `${name}: point count of ${JSON.stringify(g.metric)}`,
    );
    g.values.forEach(([ts, v], j) => {
      const [wt, wv] = w.points[j] ?? [NaN, NaN];
      assert.equal(ts * 1000, wt, `${name}: timestamp ${j} of ${JSON.stringify(g.metric)}`);
      // Prometheus prints the shortest round-trip form, so this is a bit-exact check.
      assert.equal(Number(v), wv, `${name}: value at ${ts} of ${JSON.stringify(g.metric)}`);
    });
  });
}

Deno.test("oracle evaluation equals Prometheus 2.42 for all 36 cost queries, bit for bit", async () => {
  assert.deepEqual(Object.keys(QUERIES).sort(), COST_QUERIES.map((q) => q.name).sort());
  const dir = await Deno.makeTempDir({ prefix: "synth-xcheck-" });
  let prom: PrometheusServer | undefined;
  try {
    const { hub, dataDir } = await prepareHub(SMALL, dir);
    prom = await startPrometheus({ dataDir });
    const seriesSeen = new Map<string, number>();
    let emptyHourChecked = false;
    for (const [clusterIndex, hours] of PLAN) {
      const cluster = hub.clusters[clusterIndex];
      assert.ok(cluster);
      const matcher = `clusterID="${cluster.id}"`;
      for (const h of hours) {
        const hourMs = hub.startMs + h * 3_600_000;
        let seriesThisHour = 0;
        for (const q of COST_QUERIES) {
          const expr = QUERIES[q.name];
          assert.ok(expr);
          const got = await queryRange(prom.url, expr(matcher), hourMs);
          const want = evaluateQueryRange(hub, cluster.id, q.name, new Date(hourMs));
          compareSeries(`${q.name} @ cluster ${clusterIndex} hour ${h}`, got, want);
          // The answer comes back in Prometheus's label order; the oracle must sort alike.
          for (let i = 1; i < want.length; i++) {
            assert.ok(compareLabels(want[i - 1]!.labels, want[i]!.labels) < 0);
          }
          seriesThisHour += got.length;
          seriesSeen.set(q.name, (seriesSeen.get(q.name) ?? 0) + got.length);
        }
        if (cluster.scenario.hoursWithoutData.includes(h)) {
          assert.equal(seriesThisHour, 0, `hour ${h} of cluster ${clusterIndex} should be empty`);
          emptyHourChecked = true;
        } else {
          assert.ok(seriesThisHour > 0);
        }
      }
    }
    assert.ok(emptyHourChecked);
    for (const q of COST_QUERIES) {
      assert.ok((seriesSeen.get(q.name) ?? 0) > 0, `${q.name} returned no data in any hour`);
    }
  } finally {
    await prom?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("promtool accepts the OpenMetrics files and backfills every sample", async () => {
  const dir = await Deno.makeTempDir({ prefix: "synth-backfill-" });
  try {
    const hub = buildHub({ ...SMALL, clusters: 1, pods: 4, hours: 26, seed: 5 });
    const files = await writeOpenMetrics(hub, `${dir}/om`, { hoursPerFile: 6 });
    assert.ok(files.length >= 5);
    const summary = await backfill(files, `${dir}/data`);
    let expected = 0;
    for (const c of hub.clusters) {
      for (const s of c.series) {
        for (let k = 0; k < c.sampleCount; k++) if (sampleValue(c, s, k) !== undefined) expected++;
      }
    }
    assert.equal(summary.samples, expected);
    assert.ok(summary.blocks >= files.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startPrometheus serves on loopback and stop() ends the process", async () => {
  const dir = await Deno.makeTempDir({ prefix: "synth-prom-" });
  try {
    const prom = await startPrometheus({ dataDir: dir });
    let stopped = false;
    try {
      assert.match(prom.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(`${prom.url}/api/v1/query?query=vector(1)`);
      assert.equal((await res.json()).status, "success");
      await prom.stop();
      stopped = true;
      await assert.rejects(fetch(`${prom.url}/-/ready`));
      await prom.stop(); // idempotent
      const log = await Deno.readTextFile(prom.logFile);
      assert.match(log, /SIGTERM/);
    } finally {
      if (!stopped) await prom.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startPrometheus reports a missing binary and kills a process that never gets ready", async () => {
  const dir = await Deno.makeTempDir({ prefix: "synth-prom-" });
  try {
    await assert.rejects(
      startPrometheus({ dataDir: dir, binary: `${dir}/no-such-prometheus` }),
      /Cannot start Prometheus/,
    );
    // A stand-in that ignores SIGTERM and never listens: stop() must escalate to SIGKILL.
    const stubborn = `${dir}/stubborn.sh`;
    await Deno.writeTextFile(stubborn, "#!/bin/sh\ntrap '' TERM\nexec sleep 30\n");
    await Deno.chmod(stubborn, 0o755);
    const started = Date.now();
    await assert.rejects(
      startPrometheus({ dataDir: dir, binary: stubborn, readyTimeoutMs: 300, stopTimeoutMs: 200 }),
      /not ready/,
    );
    assert.ok(Date.now() - started < 10_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
