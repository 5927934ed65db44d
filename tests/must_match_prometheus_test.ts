/**
 * The presence probe of must_match.ts against a real Prometheus loaded with
 * the synthetic hub: the answer for every atom of every catalogue query (cost
 * client and server forms, ROS; per cluster and batched) is compared with the
 * model's own samples, and every query the probe says must be empty is sent
 * and comes back empty.
 */
import assert from "node:assert/strict";
import { parser } from "@prometheus-io/lezer-promql";
import type { SyntaxNode } from "@lezer/common";
import {
  type Emptiness,
  emptinessOf,
  mustBeEmpty,
  presentIn,
  type ProbeAtom,
  probeAtoms,
  probeQuery,
  type ProbeResult,
  readProbeAnswer,
} from "../src/collect/must_match.ts";
import { COST_QUERIES } from "../src/collect/catalogue.ts";
import { planQueries } from "../src/collect/query_plan.ts";
import { planRosQueries } from "../src/collect/ros_plan.ts";
import {
  type ClusterModel,
  defaultTestHub,
  type Hub,
  type HubOptions,
  sampleTimeMs,
  sampleValue,
} from "../tools/synth/model.ts";
import { prepareHub, type PrometheusServer, startPrometheus } from "../tools/synth/prometheus.ts";

const LABEL = "clusterID";
const HOUR_MS = 3_600_000;
const KUBEVIRT = [
  "kubevirt_vmi_info",
  "kubevirt_vm_resource_requests",
  "kubevirt_vm_resource_limits",
  "kubevirt_vmi_cpu_usage_seconds_total",
  "kubevirt_vmi_memory_used_bytes",
  "kubevirt_vm_disk_allocated_size_bytes",
  "kubevirt_vm_labels",
];
/** GPUs on cluster 0 only (the default), KubeVirt on clusters 0 and 1 only. */
const HUB: HubOptions = {
  ...defaultTestHub(),
  ros: true,
  hours: 26,
  nodes: 3,
  pods: 8,
  pvcs: 2,
  vms: 2,
  gpuPods: 2,
  dropMetrics: KUBEVIRT.map((metric) => ({ clusterIndex: 2, metric })),
};

/** One query as the bridge sends it, and how. */
interface Sent {
  readonly name: string;
  readonly cluster: string;
  readonly expr: string;
  /** `range`: H:00…H:59 step 60 (client reduction); `instant`: at (H+1):00 (server, ROS). */
  readonly mode: "range" | "instant";
  readonly emptiness: Emptiness;
}

function sentFor(clusterId: string, rewrite: (expr: string) => string = (e) => e): Sent[] {
  const opts = { clusterLabel: LABEL, clusterId, rateWindow: "15m" };
  const out: Omit<Sent, "emptiness">[] = [];
  for (const p of planQueries(COST_QUERIES, opts)) {
    out.push({ name: p.query.name, cluster: clusterId, expr: rewrite(p.expr), mode: "range" });
    for (const s of p.server) {
      out.push({ name: p.query.name, cluster: clusterId, expr: rewrite(s.expr), mode: "instant" });
    }
  }
  for (const p of planRosQueries(opts)) {
    out.push({ name: p.query.name, cluster: clusterId, expr: rewrite(p.expr), mode: "instant" });
  }
  return out.map((s) => ({ ...s, emptiness: emptinessOf(s.expr) }));
}

// --- An independent reading of a selector and of the model's samples. -----------------------

interface Matcher {
  readonly name: string;
  readonly op: string;
  readonly value: string;
}

/** Decodes the simple literals of the catalogue and of cluster ids ('…' or "…", \\ \' \" only). */
function decode(literal: string): string {
  const body = literal.slice(1, -1);
  assert.ok(!/\\[^\\'"]/.test(body), `unexpected escape in ${literal}`);
  return body.replace(/\\(.)/g, "$1");
}

function parseSelector(atom: string): { metric: string | null; matchers: Matcher[] } {
  const top = parser.parse(atom).topNode.firstChild!;
  assert.equal(top.name, "VectorSelector", atom);
  const text = (n: SyntaxNode) => atom.slice(n.from, n.to);
  const name = top.getChild("Identifier");
  const matchers: Matcher[] = [];
  const braces = top.getChild("LabelMatchers");
  for (let m = braces?.firstChild ?? null; m !== null; m = m.nextSibling) {
    if (m.name !== "UnquotedLabelMatcher") continue;
    matchers.push({
      name: text(m.getChild("LabelName")!),
      op: text(m.getChild("MatchOp")!),
      value: decode(text(m.getChild("StringLiteral")!)),
    });
  }
  return { metric: name === null ? null : text(name), matchers };
}

function matches(m: Matcher, actual: string): boolean {
  const anchored = (re: string) =>
    re.startsWith("(?i)")
      ? new RegExp(`^(?:${re.slice(4)})$`, "si")
      : new RegExp(`^(?:${re})$`, "s");
  switch (m.op) {
    case "=":
      return actual === m.value;
    case "!=":
      return actual !== m.value;
    case "=~":
      return anchored(m.value).test(actual);
    case "!~":
      return !anchored(m.value).test(actual);
  }
  throw new Error(`unknown matcher op ${m.op}`);
}

/** Does `cluster` have a sample of a series selected by `atom` in [t − windowS, t] (closed, as Prometheus 2.42)? */
function hasSample(hub: Hub, cluster: ClusterModel, atom: string, t: number, windowS: number) {
  const { metric, matchers } = parseSelector(atom);
  const from = t - windowS * 1000;
  const base = sampleTimeMs(hub, cluster, 0);
  const step = hub.intervalSeconds * 1000;
  const kFrom = Math.max(0, Math.ceil((from - base) / step));
  const kTo = Math.floor((t - base) / step);
  return cluster.series.some((s) =>
    (metric === null || s.metric === metric) &&
    matchers.every((m) =>
      matches(m, m.name === "__name__" ? s.metric : (s.labels[m.name] ?? ""))
    ) &&
    Array.from({ length: Math.max(0, kTo - kFrom + 1) }, (_, i) => kFrom + i)
      .some((k) => sampleValue(cluster, s, k) !== undefined)
  );
}

// --- Talking to Prometheus. ------------------------------------------------------------------

interface Series {
  metric: Record<string, string>;
}

async function api(url: string, path: string, params: Record<string, string>): Promise<Series[]> {
  const res = await fetch(`${url}${path}`, { method: "POST", body: new URLSearchParams(params) });
  const body = await res.json();
  assert.equal(body.status, "success", JSON.stringify(body).slice(0, 500));
  return body.data.result;
}

async function probe(
  url: string,
  atoms: readonly ProbeAtom[],
  t: number,
  rangeSeconds: number,
): Promise<{ result: ProbeResult; ms: number }> {
  const query = probeQuery(atoms, LABEL, rangeSeconds);
  const started = performance.now();
  const series = await api(url, "/api/v1/query", { query, time: String(t / 1000) });
  const ms = performance.now() - started;
  return { result: readProbeAnswer(series, atoms, LABEL), ms };
}

/** Runs `fn` over `items`, `width` at a time. */
async function inPool<T>(width: number, items: readonly T[], fn: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: width }, worker));
}

function check(
  hub: Hub,
  result: ProbeResult,
  atoms: readonly ProbeAtom[],
  t: number,
  range: number,
) {
  let present = 0;
  let absent = 0;
  for (const { atom, marginSeconds } of atoms) {
    const expected = hub.clusters
      .filter((c) => hasSample(hub, c, atom, t, Math.ceil(range + marginSeconds)))
      .map((c) => c.id);
    assert.deepEqual([...result.get(atom)!].sort(), expected.sort(), atom);
    present += expected.length;
    absent += hub.clusters.length - expected.length;
  }
  return { present, absent };
}

Deno.test({
  name:
    "must_match: the probe answers which clusters have each atom, and skipped queries are empty",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const started = performance.now();
    const work = await Deno.makeTempDir({ prefix: "must_match_prom_" });
    let server: PrometheusServer | undefined;
    try {
      const { hub, dataDir } = await prepareHub(HUB, work);
      server = await startPrometheus({ dataDir });
      const url = server.url;
      const prepared = performance.now();
      const ids = hub.clusters.map((c) => c.id);
      const [gpuCluster, vmCluster, bareCluster] = ids as [string, string, string];
      assert.ok(hub.clusters[0]!.scenario.gpu && !hub.clusters[1]!.scenario.gpu);

      const perCluster = ids.flatMap((id) => sentFor(id));
      // The batched form of cluster 0's queries: one regex matcher for the three clusters.
      const batched = sentFor(
        gpuCluster,
        (e) => e.replaceAll(`${LABEL}="${gpuCluster}"`, `${LABEL}=~"${ids.join("|")}"`),
      );
      const timings: string[] = [];
      let skipped = 0;
      let totals = { present: 0, absent: 0 };
      // Hour 14: every cluster pushes. Cluster 1 stops in hour 19 and pushes nothing in hour 20;
      // cluster 2 pushes nothing before hour 2. Hours 2 and 19 hold the edges, where only the
      // right margins keep the probe and the queries in agreement.
      assert.deepEqual(hub.clusters[1]!.scenario.hoursWithoutData, [20]);
      assert.deepEqual(hub.clusters[2]!.scenario.hoursWithoutData, [0, 1]);
      for (const hour of [1, 2, 14, 19, 20]) {
        const hourStart = hub.startMs + hour * HOUR_MS;
        for (const mode of ["instant", "range"] as const) {
          const t = mode === "instant" ? hourStart + HOUR_MS : hourStart + 59 * 60_000;
          const range = mode === "instant" ? 0 : 59 * 60;
          const sent = perCluster.filter((s) => s.mode === mode);
          const atoms = probeAtoms([
            ...sent.map((s) => s.emptiness),
            ...batched.filter((s) => s.mode === mode).map((s) => s.emptiness),
          ]);
          const { result, ms } = await probe(url, atoms, t, range);
          timings.push(`hour ${hour} ${mode}: ${atoms.length} atoms in ${ms.toFixed(0)} ms`);
          const counts = check(hub, result, atoms, t, range);
          totals = {
            present: totals.present + counts.present,
            absent: totals.absent + counts.absent,
          };

          // The model's facts, as seen through the probe.
          const has = (prefix: string, cluster: string) =>
            atoms.some((a) => a.atom.startsWith(prefix) && result.get(a.atom)!.has(cluster));
          if (hour === 14) {
            assert.ok(has("DCGM_FI_", gpuCluster));
            assert.ok(!has("DCGM_FI_", vmCluster) && !has("DCGM_FI_", bareCluster));
            assert.ok(has("kubevirt_", gpuCluster) && has("kubevirt_", vmCluster));
            assert.ok(!has("kubevirt_", bareCluster));
            assert.ok(has("kube_pod_status_phase", bareCluster));
          }
          if (hour === 1 && mode === "range") {
            assert.ok(!has("kube_", bareCluster), "cluster 2 has not started in hour 1");
          }

          // Every query the probe says must be empty is empty on the real server.
          const skippable = sent.filter((s) =>
            mustBeEmpty(s.emptiness, presentIn(result, s.cluster))
          );
          skipped += skippable.length;
          await inPool(4, skippable, async (s) => {
            const answer = mode === "instant"
              ? await api(url, "/api/v1/query", { query: s.expr, time: String(t / 1000) })
              : await api(url, "/api/v1/query_range", {
                query: s.expr,
                start: String(hourStart / 1000),
                end: String(t / 1000),
                step: "60",
              });
            assert.deepEqual(answer, [], `hour ${hour} ${mode} ${s.name} for ${s.cluster}`);
          });
          // The GPU and VM queries are skipped where the data is missing, and kept where it is.
          if (hour === 14) {
            const skips = (name: string, cluster: string) =>
              sent.filter((s) => s.name === name && s.cluster === cluster)
                .every((s) => mustBeEmpty(s.emptiness, presentIn(result, cluster)));
            for (const name of ["nvidia-gpu-utilization", "nvidia-gpu-max-slices"]) {
              assert.ok(!skips(name, gpuCluster) && skips(name, vmCluster), name);
            }
            assert.ok(!skips("vm_cpu_usage", vmCluster) && skips("vm_cpu_usage", bareCluster));
            assert.ok(!skips("pod-usage-cpu-cores", bareCluster));
          }
        }
      }
      assert.ok(totals.present > 0 && totals.absent > 0, JSON.stringify(totals));

      assert.ok(skipped > 0);
      console.log(
        `prepare ${((prepared - started) / 1000).toFixed(1)} s; ${timings.join("; ")}; ` +
          `${skipped} skippable queries checked empty; (atom, cluster) pairs present ` +
          `${totals.present}, absent ${totals.absent}`,
      );
    } finally {
      await server?.stop();
      await Deno.remove(work, { recursive: true });
    }
  },
});
