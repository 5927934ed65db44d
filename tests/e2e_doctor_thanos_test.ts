/**
 * `doctor`'s Thanos checks against a real Prometheus loaded with a small
 * synthetic hub in which one cluster does not forward
 * `kube_pod_container_resource_requests`: the checks name that cluster, that
 * metric and the report columns left empty; a wrong cluster label is answered
 * with the labels that do exist; the right one lists exactly the hub's clusters.
 */
import assert from "node:assert/strict";
import { ThanosClient } from "../src/thanos/thanos_client.ts";
import { thanosChecks } from "../src/service/doctor_thanos.ts";
import type { DoctorCheck } from "../src/service/doctor_check.ts";
import type { Hub, HubOptions } from "../tools/synth/model.ts";
import { prepareHub, type PrometheusServer, startPrometheus } from "../tools/synth/prometheus.ts";

const DROPPED = "kube_pod_container_resource_requests";

const SMALL_HUB: HubOptions = {
  seed: 7,
  clusters: 3,
  nodes: 2,
  pods: 3,
  pvcs: 1,
  vms: 0, // no KubeVirt anywhere: its metrics are optional
  gpuPods: 1,
  gpuClusters: 1, // DCGM only on the first cluster
  start: new Date("2026-10-31T22:00:00Z"),
  hours: 26,
  intervalSeconds: 300,
  hostile: false,
  dropMetrics: [{ clusterIndex: 1, metric: DROPPED }],
};

async function withHub(fn: (url: string, hub: Hub) => Promise<void>): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "e2e_doctor_" });
  let server: PrometheusServer | undefined;
  try {
    const { hub, dataDir } = await prepareHub(SMALL_HUB, work);
    server = await startPrometheus({ dataDir });
    await fn(server.url, hub);
  } finally {
    await server?.stop();
    await Deno.remove(work, { recursive: true });
  }
}

async function checks(
  url: string,
  hub: Hub,
  clusterLabel: string,
  clusters?: string[],
): Promise<Record<string, DoctorCheck>> {
  const client = new ThanosClient({ url, maxAttempts: 1 });
  try {
    const now = new Date(hub.startMs + hub.hours * 3_600_000);
    const list = await thanosChecks({ client, clusterLabel, hours: 6, now, clusters });
    return Object.fromEntries(list.map((c) => [c.id, c]));
  } finally {
    client.close();
  }
}

Deno.test({
  name: "e2e doctor: missing metric, wrong cluster label, right label against real Prometheus",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withHub(async (url, hub) => {
      const ids = hub.clusters.map((c) => c.id);
      const lacking = ids[1]!;

      // The right label: every synthetic cluster, and nothing else.
      const right = await checks(url, hub, "clusterID");
      assert.equal(right["thanos.reach"]!.status, "ok");
      const label = right["thanos.cluster_label"]!;
      assert.equal(label.status, "ok", label.detail);
      const listed = (label.items ?? []).filter((i) => !i.includes(" without "))
        .map((i) => i.split(":")[0]);
      assert.deepEqual(listed, [...ids].sort());

      // The missing metric: that cluster, that metric, the empty columns; nothing else fails.
      const present = right["metrics.present"]!;
      assert.equal(present.status, "fail", JSON.stringify(present, null, 2));
      assert.deepEqual(present.items, [
        `${lacking}: ${DROPPED} has no series in the last 6 h; empty columns: ` +
        "gpu: gpu_memory_capacity_mib; pod: pod_request_cpu_core_seconds, " +
        "pod_request_memory_byte_seconds",
      ]);
      // KubeVirt everywhere and DCGM on two clusters are missing: normal, not a failure.
      const optional = right["metrics.optional"]!;
      assert.equal(optional.status, "ok");
      assert.ok(optional.items?.some((i) => /^all 3 clusters: kubevirt_vmi_info /.test(i)));
      assert.ok(
        optional.items?.some((i) =>
          i.startsWith(`${ids[1]}, ${ids[2]}: DCGM_FI_PROF_GR_ENGINE_ACTIVE`)
        ),
        JSON.stringify(optional.items, null, 2),
      );

      // Restricted to a complete cluster: everything needed is there.
      const one = await checks(url, hub, "clusterID", [ids[0]!]);
      assert.equal(one["metrics.present"]!.status, "ok", JSON.stringify(one["metrics.present"]));

      // A wrong label: it says which labels exist and suggests one.
      const wrong = await checks(url, hub, "cluster_id");
      const w = wrong["thanos.cluster_label"]!;
      assert.equal(w.status, "fail");
      assert.match(w.detail, /cluster label cluster_id not found/);
      assert.match(w.detail, /these labels exist on kube_node_info: .*\bclusterID\b/);
      assert.match(w.detail, /--cluster-label clusterID$/);
      assert.ok(
        w.items?.includes("clusterID: 3 values (looks like a cluster label)"),
        (w.items ?? []).join("\n"),
      );
      assert.equal(wrong["metrics.present"]!.status, "skip");
      console.log(
        [label, present, optional, w].map((c) =>
          `${c.status === "fail" ? "✗" : "✓"} ${c.title}: ${c.detail}\n` +
          (c.items ?? []).map((i) => `    ${i}`).join("\n")
        ).join("\n"),
      );
    }),
});
