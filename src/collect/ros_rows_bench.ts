/**
 * Benchmark of ROS row building ({@linkcode buildRosWindowReports}) on a
 * synthetic cluster: 2,000 pods with 3,000 containers in 100 namespaces on 100
 * nodes, the 56 queries of the real ROS catalogue, 12-hour batches of four
 * windows an hour. As in local mode, one label object per series is shared by
 * every query whose answer has that label set and reused for every window of
 * the batch; each batch gets new label objects.
 *
 * `deno run --v8-flags=--expose-gc,--max-semi-space-size=4 src/collect/ros_rows_bench.ts [--rounds N] [--fresh]`
 *
 * `--fresh` makes new label objects for every window (as after a server-side
 * query, where every answer is parsed anew). Prints ms per hour (wall and the
 * process's CPU time) for each batch, the medians, and a checksum of every
 * record, to compare implementations. With `--expose-gc`, each hour's answers
 * are made and their garbage collected before the hour is timed.
 *
 * @module
 */

import process from "node:process";
import { Prng } from "../../tools/synth/prng.ts";
import { ROS_QUERIES } from "./ros_catalogue.ts";
import { buildRosWindowReports, type RosSample, rosWindowEnds } from "./ros_rows.ts";
import type { Labels, Row } from "./row_map.ts";

const PODS = 2000;
const NAMESPACES = 100;
const NODES = 100;
const GPU_CONTAINERS = 60;
const HOURS = 12;
const HOUR0 = Date.UTC(2026, 10, 6, 0);

interface Container {
  readonly pod: number;
  readonly name: string;
  readonly namespace: string;
  readonly node: string;
}

const CONTAINERS: Container[] = [];
for (let p = 0; p < PODS; p++) {
  const perPod = p % 2 === 0 ? 2 : 1;
  for (let c = 0; c < perPod; c++) {
    CONTAINERS.push({
      pod: p,
      name: c === 0 ? `app-${p % 37}` : "sidecar-proxy",
      namespace: `team-${p % NAMESPACES}-prod`,
      node: `ip-10-0-${p % NODES}-17.us-east-2.compute.internal`,
    });
  }
}

function nodeRows(): Map<string, Row> {
  const nodes = new Map<string, Row>();
  for (let n = 0; n < NODES; n++) {
    const node = `ip-10-0-${n}-17.us-east-2.compute.internal`;
    nodes.set(
      node,
      new Map([
        ["node", node],
        ["provider_id", `aws:///us-east-2a/i-0d747f55dc10${String(n).padStart(5, "0")}`],
        ["resource_id", `i-0d747f55dc10${String(n).padStart(5, "0")}`],
      ]),
    );
  }
  return nodes;
}

/** The label objects of one batch, shared by every query with the same label set. */
interface BatchLabels {
  readonly value: Labels[];
  readonly owner: Labels[];
  readonly workload: Labels[];
  readonly gpu: Labels[];
  readonly filter: Labels[];
  readonly namespace: Labels[];
}

function podName(c: Container): string {
  return `${c.name.split("-")[0]}-7d9f8c6b5-${(c.pod * 7919).toString(36).padStart(5, "x")}`;
}

function batchLabels(): BatchLabels {
  const value = CONTAINERS.map((c) => ({
    container: c.name,
    namespace: c.namespace,
    node: c.node,
    pod: podName(c),
  }));
  const info = (c: Container) => ({
    container: c.name,
    container_id: `cri-o://${(c.pod * 104729).toString(16).padStart(64, "0")}`,
    image: `quay.io/example/${c.name}:v1.${c.pod % 9}`,
    image_id: `quay.io/example/${c.name}@sha256:${(c.pod * 7).toString(16).padStart(64, "a")}`,
    image_spec: `quay.io/example/${c.name}:v1.${c.pod % 9}`,
    namespace: c.namespace,
    pod: podName(c),
    uid: `9b2f${c.pod.toString(16).padStart(8, "0")}-1f2e-4c3d-9a8b-7c6d5e4f3a2b`,
  });
  const owner = CONTAINERS.map((c) => ({
    ...info(c),
    owner_kind: "ReplicaSet",
    owner_name: `${c.name}-7d9f8c6b5`,
  }));
  const workload = CONTAINERS.map((c) => ({
    ...info(c),
    workload: c.name,
    workload_type: "deployment",
  }));
  const gpu = CONTAINERS.slice(0, GPU_CONTAINERS).map((c) => ({
    Hostname: c.node,
    exported_container: c.name,
    exported_namespace: c.namespace,
    exported_pod: podName(c),
    modelName: "NVIDIA A100-SXM4-40GB",
    namespace: c.namespace,
    ...(c.pod % 4 === 0 ? { GPU_I_PROFILE: "1g.5gb" } : {}),
  }));
  const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `team-${i}-prod`);
  const filter = namespaces.map((namespace) => ({
    __name__: "kube_namespace_labels",
    label_cost_management_optimizations: "true",
    label_kubernetes_io_metadata_name: namespace,
    namespace,
  }));
  return {
    value,
    owner,
    workload,
    gpu,
    filter,
    namespace: namespaces.map((n) => ({ namespace: n })),
  };
}

/** One window's answers, in catalogue order; a few containers are absent in some windows. */
function windowAnswers(labels: BatchLabels, slot: number): Map<string, RosSample[]> {
  const prng = new Prng(slot + 1);
  const random = () => prng.next();
  const present = (i: number) => (i * 31 + slot) % 50 !== 0;
  const byQuery = new Map<string, RosSample[]>();
  for (const q of ROS_QUERIES) {
    const list: RosSample[] = [];
    const name = q.name;
    if (q.group === "ros-filter") {
      for (const metric of labels.filter) list.push({ metric, value: "1" });
    } else if (q.group === "ros-namespace") {
      for (const [i, metric] of labels.namespace.entries()) {
        const v = name.startsWith("pods") ? String(10 + (i % 13)) : String(random() * 1e9);
        list.push({ metric, value: v });
      }
    } else if (name.startsWith("container-image")) {
      const all = name === "container-image-owner" ? labels.owner : labels.workload;
      all.forEach((metric, i) => present(i) && list.push({ metric, value: "1" }));
    } else if (name.startsWith("accelerator")) {
      for (const metric of labels.gpu) list.push({ metric, value: String(random() * 100) });
    } else {
      const constant = name.includes("request") || name.includes("limit");
      const memory = name.startsWith("memory");
      labels.value.forEach((metric, i) => {
        if (!present(i)) return;
        const v = constant
          ? memory ? String(2 ** 27 * (1 + (i % 8))) : String(0.1 * (1 + (i % 8)))
          : memory
          ? String(Math.floor(random() * 2 ** 30))
          : String(random() * 0.5);
        list.push({ metric, value: v });
      });
    }
    byQuery.set(name, list);
  }
  return byQuery;
}

/** FNV-1a over every record, to compare the output of two implementations. */
function checksum(hash: number, records: readonly string[][]): number {
  for (const r of records) {
    for (const s of r) {
      for (let i = 0; i < s.length; i++) hash = Math.imul(hash ^ s.charCodeAt(i), 16777619);
      hash = Math.imul(hash ^ 0x2c, 16777619);
    }
    hash = Math.imul(hash ^ 0x0a, 16777619);
  }
  return hash >>> 0;
}

/** V8's `gc()`, present when run with `--v8-flags=--expose-gc`. */
const collectGarbage = (globalThis as { gc?: () => void }).gc;

function main(args: readonly string[]): void {
  const at = args.indexOf("--rounds");
  const rounds = at >= 0 ? Number(args[at + 1]) : 6;
  const fresh = args.includes("--fresh");
  const queries = ROS_QUERIES;
  const nodes = nodeRows();
  const perHour: number[] = [];
  const cpuPerHour: number[] = [];
  let hash = 2166136261;
  let rows = 0;
  for (let round = 0; round < rounds; round++) {
    const batch = batchLabels();
    let ms = 0;
    let cpuMs = 0;
    for (let h = 0; h < HOURS; h++) {
      const ends = rosWindowEnds(new Date(HOUR0 + h * 3_600_000));
      // The hour's answers first, so that collecting their garbage is not timed (with --expose-gc).
      const answers = [0, 1, 2, 3].map((w) =>
        windowAnswers(fresh ? batchLabels() : batch, h * 4 + w)
      );
      collectGarbage?.();
      for (let w = 0; w < 4; w++) {
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        const out = buildRosWindowReports(queries, answers[w]!, nodes, ends[w]!);
        const c1 = process.cpuUsage(c0);
        ms += performance.now() - t0;
        cpuMs += (c1.user + c1.system) / 1000;
        if (round === 0) {
          hash = checksum(checksum(hash, out.container), out.namespace);
          rows += out.container.length + out.namespace.length;
        }
      }
    }
    perHour.push(ms / HOURS);
    cpuPerHour.push(cpuMs / HOURS);
    console.log(
      `batch ${round + 1}: ${(ms / HOURS).toFixed(1)} ms per hour ` +
        `(CPU ${(cpuMs / HOURS).toFixed(1)} ms)`,
    );
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(
    `${CONTAINERS.length} containers, ${queries.length} queries, ${HOURS} h × 4 windows` +
      `${fresh ? ", fresh labels every window" : ""}: median ${
        median(perHour).toFixed(1)
      } ms per hour, CPU ${median(cpuPerHour).toFixed(1)} ms ` +
      `(${rows} records, checksum ${hash.toString(16)})`,
  );
}

if (import.meta.main) main(Deno.args);
