/**
 * Cross-check of the ROS oracle against the real Prometheus 2.42: every one
 * of CMMO's 56 ROS queries (verbatim text in testdata/, with the cluster
 * matcher added to every selector and the namespace throttle `[5m]` widened
 * to `[15m]` as the bridge sends it) must return, at a set of window ends,
 * exactly the label sets and float64 values the oracle computes.
 */
import assert from "node:assert/strict";
import type { HubOptions } from "./model.ts";
import { compareLabels, type Labels, type Sample } from "./promql_eval.ts";
import { prepareHub, type PrometheusServer, startPrometheus } from "./prometheus.ts";
import { ROS_QUERIES } from "./ros_queries.ts";
import { evaluateRosQuery } from "./ros_truth.ts";

interface CmmoQuery {
  group: string;
  name: string;
  expr: string;
}

const CMMO: CmmoQuery[] = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/cmmo_ros_queries.json", import.meta.url)),
).queries;

const SMALL: HubOptions = {
  seed: 424242,
  clusters: 3,
  nodes: 3,
  pods: 8,
  pvcs: 1,
  vms: 1,
  gpuPods: 4,
  gpuClusters: 1,
  start: new Date("2026-10-31T22:00:00Z"),
  hours: 26,
  hostile: true,
};

/** Window ends to check, as [cluster index, minutes after the hub start]. */
const PLAN: [number, number[]][] = [
  // Warm-up (less than 15 minutes of data), GPU pod start, pending pod, restart, job,
  // late quota, ns-temp disappearing, the hour after a whole day.
  [0, [15, 60, 80 + 10, 135, 150, 165, 210, 330, 345, 630, 645, 660, 1440]],
  // The other opt-in mix, and the outage around hour 20.
  [1, [45, 150, 1185, 1200, 1275]],
  // No namespace opted in: every query must be empty.
  [2, [180]],
];

/** Adds `clusterID="…"` to every selector and widens `[5m]` like the bridge. */
function forCluster(expr: string, clusterId: string): string {
  const m = `clusterID="${clusterId}"`;
  return expr
    .replace(/([A-Za-z_:][A-Za-z0-9_:]*)\{/g, `$1{${m}, `)
    .replaceAll("(kube_pod_info)", `(kube_pod_info{${m}})`)
    .replaceAll("[5m]", "[15m]");
}

async function instant(url: string, query: string, tMs: number): Promise<Sample[]> {
  const body = new URLSearchParams({ query, time: String(tMs / 1000) });
  const res = await fetch(`${url}/api/v1/query`, { method: "POST", body });
  const json = await res.json();
  assert.equal(json.status, "success", `query failed: ${JSON.stringify(json)} for ${query}`);
  assert.equal(json.data.resultType, "vector");
  return (json.data.result as { metric: Labels; value: [number, string] }[]).map((r) => ({
    labels: r.metric,
    value: Number(r.value[1]),
  }));
}

function byLabels(v: readonly Sample[]): Sample[] {
  return [...v].sort((a, b) => compareLabels(a.labels, b.labels));
}

Deno.test("ROS oracle equals Prometheus 2.42 for all 56 ROS queries, bit for bit", async () => {
  assert.deepEqual(CMMO.map((q) => q.name), ROS_QUERIES.map((q) => q.name));
  assert.ok(
    !CMMO.some((q) => /\[5m\]/.test(q.expr) && !q.name.startsWith("cpu-throttle-namespace")),
  );
  const dir = await Deno.makeTempDir({ prefix: "synth-ros-xcheck-" });
  let prom: PrometheusServer | undefined;
  try {
    const { hub, dataDir } = await prepareHub(SMALL, dir);
    prom = await startPrometheus({ dataDir });
    const nonEmpty = new Map<string, number>();
    for (const [clusterIndex, minutes] of PLAN) {
      const cluster = hub.clusters[clusterIndex];
      assert.ok(cluster);
      for (const minute of minutes) {
        const t = hub.startMs + minute * 60_000;
        for (const q of CMMO) {
          const got = byLabels(await instant(prom.url, forCluster(q.expr, cluster.id), t));
          const want = byLabels(evaluateRosQuery(hub, cluster.id, q.name, new Date(t)));
          const where = `${q.name} @ cluster ${clusterIndex} +${minute}m`;
          assert.deepEqual(
            got.map((s) => s.labels),
            want.map((s) => ({ ...s.labels })),
            `${where}: label sets differ`,
          );
          got.forEach((g, i) => {
            // Prometheus prints the shortest round-trip form: this is a bit-exact check.
            assert.equal(g.value, want[i]?.value, `${where}: ${JSON.stringify(g.labels)}`);
          });
          if (clusterIndex === 2) assert.equal(got.length, 0, where);
          nonEmpty.set(q.name, (nonEmpty.get(q.name) ?? 0) + got.length);
        }
      }
    }
    for (const q of ROS_QUERIES) {
      assert.ok((nonEmpty.get(q.name) ?? 0) > 0, `${q.name} returned nothing at any window`);
    }
  } finally {
    await prom?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
