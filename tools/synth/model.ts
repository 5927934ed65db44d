/**
 * A deterministic synthetic ACM hub: several OpenShift clusters whose
 * kube-state-metrics, cAdvisor, kubelet, KubeVirt and DCGM series are
 * described as plain data (label sets plus small value programs), so the same
 * seed always yields the same samples.
 *
 * Time model: each cluster pushes all its series together every
 * `intervalSeconds` at a per-cluster phase φ (never a multiple of 60 s), i.e.
 * sample `k` of a cluster is at `start + φ + k·interval`. No sample ever lands
 * on a 60 s query step, a lookback edge or a range-window edge.
 *
 * @module
 */

import { hash01, Prng } from "./prng.ts";

/** Options of {@linkcode buildHub}. */
export interface HubOptions {
  /** Seed of every random choice. */
  seed: number;
  /** Number of clusters (K). */
  clusters: number;
  /** Regular nodes per cluster (≥ 2; GPU clusters get 2 extra GPU nodes). */
  nodes: number;
  /** Regular pods per cluster (GPU pods and DCGM exporter pods come on top). */
  pods: number;
  /** Bound PVCs per cluster (each cluster also gets one unbound PV). */
  pvcs: number;
  /** KubeVirt VMs per cluster. */
  vms: number;
  /** GPU pods per GPU cluster; 0 disables all DCGM data. */
  gpuPods: number;
  /** How many clusters (the first ones) have GPUs; default 1. */
  gpuClusters?: number;
  /** First hour of data; must be aligned to a whole UTC hour. */
  start: Date;
  /** Hours of data (≥ 26). */
  hours: number;
  /** Push interval, like ACM's metrics-collector; default 300. */
  intervalSeconds?: number;
  /** Put `,` `"` `|` `:` newlines, backslashes and non-ASCII text into names and labels. */
  hostile?: boolean;
  /**
   * Metric families to leave out of single clusters (default none), e.g. to
   * test `doctor` against a cluster that does not forward one metric. Every
   * series whose name is `metric` is removed from cluster `clusterIndex`
   * (0-based); all other samples stay exactly as without the option.
   */
  dropMetrics?: readonly DropMetric[];
  /**
   * Add the data of CMMO's ROS queries (default true): the ROS opt-in labels
   * on namespaces (some `label_insights_cost_management_optimizations="true"`,
   * some `label_cost_management_optimizations="true"`, one `openshift-`
   * namespace too, which the queries exclude, and none in the third cluster)
   * and the series only the ROS queries read. With false the hub is exactly
   * the pre-ROS one; every other series is the same either way.
   */
  ros?: boolean;
  /**
   * Give every cluster the same names (default false): node names, pod names
   * (so pod/namespace/node combinations), PV names, VM names and the GPU
   * nodes' pod names are drawn from a PRNG stream seeded from the hub seed
   * alone and restarted for each cluster, so the same pod in the same
   * namespace on the same node exists in every cluster that has it, with the
   * cluster's own values (requests, usage, uids, labels, instance types…),
   * which still come from the per-cluster stream. This is the data a
   * cluster-batched query must keep apart. With false every name is drawn
   * from the per-cluster stream as before, and the hub is exactly the one
   * without the option.
   */
  sharedNames?: boolean;
}

/** One metric family left out of one cluster; see {@linkcode HubOptions.dropMetrics}. */
export interface DropMetric {
  /** 0-based index of the cluster. */
  readonly clusterIndex: number;
  /** Sample name as stored, e.g. `kube_pod_container_resource_requests`. */
  readonly metric: string;
}

/** A half-open range `[from, to)` of sample indices. */
export interface SampleRange {
  readonly from: number;
  readonly to: number;
}

/** One piece of a series' value program, valid for sample indices `[from, to)`. */
export type Segment =
  | SampleRange & { readonly kind: "const"; readonly value: number }
  | SampleRange & {
    /** Monotonic counter: `start + perSample·(k−from) + jitter·noise(k)` (jitter < perSample). */
    readonly kind: "counter";
    readonly start: number;
    readonly perSample: number;
    readonly jitter: number;
    readonly salt: number;
  }
  | SampleRange & {
    /** Integer-valued noisy gauge: `base + quantum·floor(levels·noise(k))`. */
    readonly kind: "walk";
    readonly base: number;
    readonly quantum: number;
    readonly levels: number;
    readonly salt: number;
  }
  | SampleRange & {
    /** Linear growth: `base + slope·(k−from)`. */
    readonly kind: "ramp";
    readonly base: number;
    readonly slope: number;
  }
  | SampleRange & {
    /** A ratio in [0, 1] that is a multiple of 1/64 (exact in binary). */
    readonly kind: "ratio";
    readonly salt: number;
  };

/** One time series of a cluster. */
export interface SeriesSpec {
  /** Sample name as stored, e.g. `container_cpu_usage_seconds_total`. */
  readonly metric: string;
  /** OpenMetrics type; counters' names end in `_total`. */
  readonly type: "gauge" | "counter";
  /** Labels without `__name__`; always includes `clusterID` and `cluster`. No empty values. */
  readonly labels: Readonly<Record<string, string>>;
  /** Non-overlapping value segments in ascending order; the series is absent elsewhere. */
  readonly segments: readonly Segment[];
}

/** Names of the deliberately interesting entities of one cluster. */
export interface ClusterScenario {
  readonly masterNode: string;
  readonly resizedNode: string | null;
  readonly lateNode: string | null;
  /** A node name that pods use but that has no node series at all. */
  readonly ghostNode: string;
  readonly resetPod: string | null;
  readonly noLimitPod: string | null;
  readonly pendingPod: string | null;
  readonly ghostPod: string | null;
  readonly hostilePod: string | null;
  readonly jobPod: string | null;
  /** A pod that starts together with the late node. */
  readonly daemonPod: string | null;
  readonly midHourPods: readonly string[];
  readonly sharedPvc: string | null;
  readonly unmountedPvc: string | null;
  readonly unboundPv: string;
  readonly vmWithTwoDisks: string | null;
  readonly lateVm: string | null;
  readonly stoppingVm: string | null;
  readonly vmWithoutLimits: string | null;
  readonly gpu: boolean;
  readonly dcgmExporterPods: readonly string[];
  /** Hour indices (from the hub start) in which this cluster pushed nothing at all. */
  readonly hoursWithoutData: readonly number[];
  /** Namespaces opted into ROS (an opt-in label is "true"), not counting `rosExcludedNamespace`. */
  readonly rosNamespaces: readonly string[];
  /** An `openshift-` namespace that carries an opt-in label (ROS queries exclude it), or null. */
  readonly rosExcludedNamespace: string | null;
  /** Containers whose `container_cpu_cfs_throttled_seconds_total` grows. */
  readonly throttledContainers: readonly ContainerRef[];
  /** A container whose throttling counter resets (restart), or null. */
  readonly throttleResetContainer: ContainerRef | null;
  /** Pods whose workload is a DeploymentConfig (ROS's workload query drops them). */
  readonly deploymentConfigPods: readonly string[];
  /** Pods without an owner (`owner_kind="<none>"`, no workload series). */
  readonly barePods: readonly string[];
}

/** A container of a pod. */
export interface ContainerRef {
  readonly namespace: string;
  readonly pod: string;
  readonly container: string;
}

/** One synthetic cluster. */
export interface ClusterModel {
  readonly index: number;
  /** UUID-shaped cluster id (label `clusterID`). */
  readonly id: string;
  /** Cluster name (label `cluster`). */
  readonly name: string;
  /** φ: seconds after the hub start of sample 0. */
  readonly phaseSeconds: number;
  /** Number of sample slots (`k` runs from 0 to `sampleCount − 1`). */
  readonly sampleCount: number;
  /** Sample ranges in which the cluster pushed nothing (late start, outage). */
  readonly gaps: readonly SampleRange[];
  readonly series: readonly SeriesSpec[];
  readonly scenario: ClusterScenario;
}

/** The whole synthetic hub. */
export interface Hub {
  readonly seed: number;
  /** ISO form of the start. */
  readonly start: string;
  readonly startMs: number;
  readonly hours: number;
  readonly intervalSeconds: number;
  readonly hostile: boolean;
  readonly clusters: readonly ClusterModel[];
}

/** The label value used for hostile `label_*` values. */
export const HOSTILE_VALUE = 'a,b "c"|d:e\nf\\g ünï 日本 🚀';

const PHASES = ["Pending", "Running", "Succeeded", "Failed", "Unknown"] as const;
const WORDS = [
  "api",
  "web",
  "worker",
  "cache",
  "db",
  "etl",
  "auth",
  "billing",
  "search",
  "ingest",
  "report",
  "notify",
];
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/**
 * The options the end-to-end tests use: 3 clusters, 4 nodes, 16 pods, a few
 * PVCs and VMs, GPUs on the first cluster, 28 hours from 2026-10-31T22:00Z
 * (crossing a day and a month boundary), hostile labels on, ROS data off
 * (`{ ...defaultTestHub(), ros: true }` turns it on).
 *
 * @example
 * ```ts
 * import { buildHub, defaultTestHub } from "./model.ts";
 * const hub = buildHub(defaultTestHub());
 * hub.clusters.length; // 3
 * ```
 */
export function defaultTestHub(): HubOptions {
  return {
    seed: 20261031,
    clusters: 3,
    nodes: 4,
    pods: 16,
    pvcs: 4,
    vms: 3,
    gpuPods: 4,
    gpuClusters: 1,
    start: new Date("2026-10-31T22:00:00Z"),
    hours: 28,
    intervalSeconds: 300,
    hostile: true,
    // The cost end-to-end tests expect no ROS data; ROS tests turn this on.
    ros: false,
  };
}

/**
 * Builds the deterministic hub model for `options`.
 *
 * @example
 * ```ts
 * import { buildHub } from "./model.ts";
 * const hub = buildHub({
 *   seed: 1, clusters: 1, nodes: 3, pods: 8, pvcs: 2, vms: 1, gpuPods: 0,
 *   start: new Date("2026-11-01T00:00:00Z"), hours: 26,
 * });
 * hub.clusters[0]!.series.length > 0; // true
 * ```
 */
export function buildHub(options: HubOptions): Hub {
  const o = validate(options);
  const rng = new Prng(o.seed);
  const clusters: ClusterModel[] = [];
  for (let c = 0; c < o.clusters; c++) {
    clusters.push(buildCluster(o, c, rng));
  }
  // Dropped after building, so the random choices (and every other sample) do not change.
  for (const drop of options.dropMetrics ?? []) {
    if (
      !Number.isInteger(drop.clusterIndex) || drop.clusterIndex < 0 ||
      drop.clusterIndex >= o.clusters
    ) {
      throw new RangeError(
        `Invalid dropMetrics cluster index ${drop.clusterIndex}: expected an integer in [0, ${
          o.clusters - 1
        }]`,
      );
    }
    const cluster = clusters[drop.clusterIndex]!;
    const series = cluster.series.filter((s) => s.metric !== drop.metric);
    if (series.length === cluster.series.length) {
      throw new RangeError(
        `Invalid dropMetrics metric ${
          JSON.stringify(drop.metric)
        }: cluster ${drop.clusterIndex} has no such series`,
      );
    }
    clusters[drop.clusterIndex] = { ...cluster, series };
  }
  return {
    seed: o.seed,
    start: o.start.toISOString(),
    startMs: o.start.getTime(),
    hours: o.hours,
    intervalSeconds: o.intervalSeconds,
    hostile: o.hostile,
    clusters,
  };
}

/**
 * Time of sample `k` of `cluster`, in Unix milliseconds.
 *
 * @example
 * ```ts
 * import { buildHub, defaultTestHub, sampleTimeMs } from "./model.ts";
 * const hub = buildHub(defaultTestHub());
 * const c = hub.clusters[0]!;
 * sampleTimeMs(hub, c, 0) === hub.startMs + c.phaseSeconds * 1000; // true
 * ```
 */
export function sampleTimeMs(hub: Hub, cluster: ClusterModel, k: number): number {
  return hub.startMs + (cluster.phaseSeconds + k * hub.intervalSeconds) * 1000;
}

/**
 * Value of sample `k` of `series`, or `undefined` when the series has no
 * sample there (outside its segments, or in a gap of the cluster).
 *
 * @example
 * ```ts
 * import { buildHub, defaultTestHub, sampleValue } from "./model.ts";
 * const c = buildHub(defaultTestHub()).clusters[0]!;
 * typeof sampleValue(c, c.series[0]!, 10); // "number"
 * ```
 */
export function sampleValue(
  cluster: ClusterModel,
  series: SeriesSpec,
  k: number,
): number | undefined {
  if (k < 0 || k >= cluster.sampleCount) return undefined;
  for (const g of cluster.gaps) if (k >= g.from && k < g.to) return undefined;
  for (const s of series.segments) {
    if (k < s.from) return undefined;
    if (k < s.to) return segmentValue(s, k);
  }
  return undefined;
}

/**
 * Finds a cluster by id.
 *
 * @example
 * ```ts
 * import { buildHub, clusterById, defaultTestHub } from "./model.ts";
 * const hub = buildHub(defaultTestHub());
 * clusterById(hub, hub.clusters[1]!.id).index; // 1
 * ```
 */
export function clusterById(hub: Hub, clusterId: string): ClusterModel {
  const found = hub.clusters.find((c) => c.id === clusterId);
  if (!found) {
    throw new RangeError(`Unknown cluster id "${clusterId}"`, {
      cause: { known: hub.clusters.map((c) => c.id) },
    });
  }
  return found;
}

function segmentValue(s: Segment, k: number): number {
  switch (s.kind) {
    case "const":
      return s.value;
    case "counter":
      return s.start + s.perSample * (k - s.from) + s.jitter * hash01(s.salt, k);
    case "walk":
      return s.base + s.quantum * Math.floor(s.levels * hash01(s.salt, k));
    case "ramp":
      return s.base + s.slope * (k - s.from);
    case "ratio":
      return Math.floor(65 * hash01(s.salt, k)) / 64;
  }
}

interface NormalizedOptions {
  seed: number;
  clusters: number;
  nodes: number;
  pods: number;
  pvcs: number;
  vms: number;
  gpuPods: number;
  gpuClusters: number;
  start: Date;
  hours: number;
  intervalSeconds: number;
  hostile: boolean;
  ros: boolean;
  sharedNames: boolean;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function validate(options: HubOptions): NormalizedOptions {
  const count = (name: string, value: number, min: number, max: number) => {
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new RangeError(
        `Invalid ${name} ${value}: expected an integer in [${min}, ${max}]`,
        { cause: { option: name, value } },
      );
    }
    return value;
  };
  if (!Number.isFinite(options.seed)) {
    throw new RangeError(`Invalid seed ${options.seed}: expected a finite number`);
  }
  const start = options.start;
  if (!(start instanceof Date) || Number.isNaN(start.getTime())) {
    throw new TypeError(`Invalid start ${String(start)}: expected a valid Date`);
  }
  if (start.getTime() % 3_600_000 !== 0) {
    throw new RangeError(
      `Invalid start ${start.toISOString()}: it must be aligned to a whole UTC hour`,
    );
  }
  const intervalSeconds = count("intervalSeconds", options.intervalSeconds ?? 300, 10, 600);
  if (gcd(intervalSeconds, 60) === 1) {
    throw new RangeError(
      `Invalid intervalSeconds ${intervalSeconds}: it shares no factor with 60, so samples would land on 60 s step boundaries`,
    );
  }
  const clusters = count("clusters", options.clusters, 1, 500);
  return {
    seed: Math.trunc(options.seed),
    clusters,
    nodes: count("nodes", options.nodes, 2, 500),
    pods: count("pods", options.pods, 0, 100_000),
    pvcs: count("pvcs", options.pvcs, 0, 10_000),
    vms: count("vms", options.vms, 0, 10_000),
    gpuPods: count("gpuPods", options.gpuPods, 0, 1000),
    gpuClusters: count("gpuClusters", options.gpuClusters ?? 1, 0, clusters),
    start,
    hours: count("hours", options.hours, 26, 24 * 93),
    intervalSeconds,
    hostile: options.hostile ?? false,
    ros: options.ros ?? true,
    sharedNames: options.sharedNames ?? false,
  };
}

interface ContainerPlan {
  name: string;
  image: string;
  cpuRequest: number;
  cpuLimit: number | null;
  memRequest: number;
  memLimit: number | null;
  cpuCores: number;
  memBase: number;
  resetAt: number | null;
}

interface PodPlan {
  name: string;
  namespace: string;
  uid: string;
  node: string;
  created: number;
  scheduled: number;
  running: number;
  ended: number;
  deleted: number;
  endPhase: "Succeeded" | "Failed";
  containers: ContainerPlan[];
  labels: Record<string, string>;
  extraRequest: { resource: string; value: number } | null;
}

interface NodePlan {
  name: string;
  providerId: string;
  roles: string[];
  cpu: number;
  memory: number;
  from: number;
  to: number;
  resize: { at: number; cpu: number } | null;
  labels: Record<string, string>;
  ip: string;
}

/** Accumulates the series of one cluster. */
class ClusterBuilder {
  readonly series: SeriesSpec[] = [];
  readonly base: Record<string, string>;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly phase: number,
    readonly interval: number,
    readonly count: number,
    readonly rng: Prng,
    readonly hostile: boolean,
    /** Where names come from: `rng` itself, or the hub-wide name stream (`sharedNames`). */
    readonly names: Prng = rng,
  ) {
    this.base = { clusterID: id, cluster: name };
  }

  /** First sample index at or after `hours`h`minutes`m from the hub start (clamped). */
  at(hours: number, minutes = 0): number {
    const s = hours * 3600 + minutes * 60 - this.phase;
    return Math.min(this.count, Math.max(0, Math.ceil(s / this.interval)));
  }

  add(
    metric: string,
    labels: Record<string, string>,
    segments: Segment[],
    type: "gauge" | "counter" = "gauge",
  ): void {
    const live = segments.filter((s) => s.to > s.from);
    if (live.length === 0) return;
    const all: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...labels, ...this.base })) {
      if (v !== "") all[k] = v;
    }
    this.series.push({ metric, type, labels: all, segments: live });
  }

  constant(from: number, to: number, value: number): Segment {
    return { kind: "const", from, to, value };
  }

  walk(from: number, to: number, base: number, quantum: number, levels: number): Segment {
    return { kind: "walk", from, to, base, quantum, levels, salt: this.rng.uint32() };
  }

  counter(from: number, to: number, start: number, perSample: number): Segment {
    return {
      kind: "counter",
      from,
      to,
      start,
      perSample,
      jitter: perSample / 2,
      salt: this.rng.uint32(),
    };
  }
}

function buildCluster(o: NormalizedOptions, index: number, rng: Prng): ClusterModel {
  const id = rng.uuid();
  const name = `synth-${String(index + 1).padStart(2, "0")}-${rng.pick(WORDS)}`;
  const g = gcd(o.intervalSeconds, 60);
  let phase = rng.int(1, o.intervalSeconds - 1);
  while (phase % g === 0) phase = phase + 1 < o.intervalSeconds ? phase + 1 : 1;
  const count = Math.ceil((o.hours * 3600 - phase) / o.intervalSeconds);
  // With sharedNames, every cluster restarts the same name stream (it does not depend on the
  // cluster index); without, names come from the cluster's stream exactly as before.
  const names = o.sharedNames ? new Prng(sharedNameSeed(o.seed)) : rng;
  const b = new ClusterBuilder(id, name, phase, o.intervalSeconds, count, rng, o.hostile, names);

  const gaps: SampleRange[] = [];
  const hoursWithoutData: number[] = [];
  if (index === 2) {
    // This cluster was imported into the hub two hours after the data starts.
    gaps.push({ from: 0, to: b.at(2) });
    hoursWithoutData.push(0, 1);
  }
  if (index === 1) {
    // A metrics-collector outage covering hour 20 entirely.
    gaps.push({ from: b.at(19, 53), to: b.at(21, 2) });
    hoursWithoutData.push(20);
  }

  const nodes = planNodes(b, o);
  const ghostNode = `ip-10-0-${names.int(100, 199)}-${names.int(2, 250)}.ghost.internal`;
  const gpuCluster = o.gpuPods > 0 && index < o.gpuClusters;
  const gpu = gpuCluster ? planGpuNodes(b) : null;
  if (gpu) nodes.push(...gpu.nodes);
  for (const n of nodes) emitNode(b, n);

  const namespaces = emitNamespaces(b, gpuCluster, o.vms > 0, o.ros ? index : null);
  // Nodes that regular pods and VMs are placed on: present from the start, not the master, no GPU.
  const workers = nodes.filter((n) =>
    !n.roles.includes("master") && n.from === 0 && !n.labels.label_nvidia_com_gpu_memory
  );
  const master = nodes[0];
  if (!master || workers.length === 0) {
    throw new RangeError("A cluster needs a master and a worker");
  }
  const pods = planPods(b, o, namespaces.app, workers, master, nodes, ghostNode);
  const scenario = pods.scenario;
  for (const p of pods.plans) emitPod(b, p);

  const storage = emitStorage(b, o, pods.plans);
  const vms = emitVms(b, o, workers);
  const dcgmPods: string[] = [];
  const gpuPlans: PodPlan[] = [];
  const gpuSlots: GpuSlot[] = [];
  if (gpu) {
    const emitted = emitGpus(b, o, gpu);
    dcgmPods.push(...emitted.exporterPods);
    gpuPlans.push(...emitted.plans);
    gpuSlots.push(...emitted.slots);
  }
  // Everything ROS reads comes last and draws only from its own PRNG stream,
  // so the series above (and their salts) are the same as without it.
  const ros: RosScenario = o.ros
    ? emitRos(b, o, index, namespaces, pods.plans, scenario, gpuPlans, gpuSlots, nodes)
    : {
      rosNamespaces: [],
      rosExcludedNamespace: null,
      throttledContainers: [],
      throttleResetContainer: null,
      deploymentConfigPods: [],
      barePods: [],
    };
  const lateNode = nodes.find((n) => n.from > 0);
  const resized = nodes.find((n) => n.resize !== null);
  const masterRoles = master.roles;
  if (!masterRoles.includes("master")) throw new RangeError("The first node must be a master");
  return {
    index,
    id,
    name,
    phaseSeconds: phase,
    sampleCount: count,
    gaps,
    series: b.series,
    scenario: {
      masterNode: master.name,
      resizedNode: resized?.name ?? null,
      lateNode: lateNode?.name ?? null,
      ghostNode,
      ...scenario,
      ...storage,
      ...vms,
      gpu: gpuCluster,
      dcgmExporterPods: dcgmPods,
      hoursWithoutData,
      ...ros,
    },
  };
}

/** Seed of the name stream of {@linkcode HubOptions.sharedNames}: the hub seed only. */
function sharedNameSeed(seed: number): number {
  return (Math.imul(seed | 0, 0x5bd1e995) ^ 0x68e31da4) >>> 0;
}

function planNodes(b: ClusterBuilder, o: NormalizedOptions): NodePlan[] {
  const { rng, names } = b;
  const zone = names.pick(["us-east-2a", "us-east-2b", "eu-west-1c"]);
  const nodes: NodePlan[] = [];
  const used = new Set<string>();
  for (let i = 0; i < o.nodes; i++) {
    let a = names.int(0, 199);
    let c = names.int(2, 254);
    while (used.has(`${a}.${c}`)) {
      a = names.int(0, 199);
      c = names.int(2, 254);
    }
    used.add(`${a}.${c}`);
    const name = `ip-10-0-${a}-${c}.${zone.slice(0, -1)}.compute.internal`;
    let role: string[];
    if (i === 0) role = ["control-plane", "master"];
    else if (i === 1 && o.nodes >= 4) role = ["infra"];
    else role = ["worker"];
    const cpu = rng.pick([4, 8, 16]);
    const memory = cpu * 4 * GIB - rng.int(0, 2000) * 4096;
    let providerId = `aws:///${zone}/i-0${rng.hex(16)}`;
    const labels: Record<string, string> = {
      label_kubernetes_io_hostname: name,
      label_topology_kubernetes_io_zone: zone,
      label_node_kubernetes_io_instance_type: rng.pick(["m5.xlarge", "m6i.2xlarge", "c5.4xlarge"]),
      label_kubernetes_io_arch: "amd64",
    };
    if (b.hostile && i === 1) {
      providerId = `aws:///${zone}/i-0,"odd"|id:1\\ü\nx`;
      labels.label_owner = HOSTILE_VALUE;
    }
    nodes.push({
      name,
      providerId,
      roles: role,
      cpu,
      memory,
      from: 0,
      to: b.count,
      resize: null,
      labels,
      ip: `10.0.${a}.${c}`,
    });
  }
  const workers = nodes.filter((n) => n.roles.includes("worker"));
  const last = workers[workers.length - 1];
  if (workers.length >= 2 && last) {
    // An autoscaled node that joins at 01:35 into the data.
    last.from = b.at(1, 35);
  }
  const resized = workers.length >= 2 ? workers[workers.length - 2] : workers[0];
  if (resized) resized.resize = { at: b.at(3, 25), cpu: resized.cpu * 2 };
  return nodes;
}

function emitNode(b: ClusterBuilder, n: NodePlan): void {
  const ksm = { job: "kube-state-metrics", node: n.name };
  const span = (v: number) => [b.constant(n.from, n.to, v)];
  b.add("kube_node_info", {
    ...ksm,
    provider_id: n.providerId,
    internal_ip: n.ip,
    kernel_version: "5.14.0-427.el9_4.x86_64",
    os_image: "Red Hat Enterprise Linux CoreOS 416.94",
    container_runtime_version: "cri-o://1.29.6",
    kubelet_version: "v1.29.7",
  }, span(1));
  for (const kind of ["capacity", "allocatable"] as const) {
    const metric = `kube_node_status_${kind}`;
    const cpuValue = (cpu: number) => (kind === "capacity" ? cpu : cpu - 0.5);
    const cpuSegments = n.resize
      ? [
        b.constant(n.from, n.resize.at, cpuValue(n.cpu)),
        b.constant(n.resize.at, n.to, cpuValue(n.resize.cpu)),
      ]
      : span(cpuValue(n.cpu));
    b.add(metric, { ...ksm, resource: "cpu", unit: "core" }, cpuSegments);
    b.add(
      metric,
      { ...ksm, resource: "memory", unit: "byte" },
      span(kind === "capacity" ? n.memory : n.memory - GIB),
    );
    b.add(metric, { ...ksm, resource: "pods", unit: "integer" }, span(250));
  }
  for (const role of n.roles) b.add("kube_node_role", { ...ksm, role }, span(1));
  b.add("kube_node_labels", { ...ksm, ...n.labels }, span(1));
  const root = { job: "kubelet", metrics_path: "/metrics/cadvisor", id: "/", node: n.name };
  b.add("container_memory_usage_bytes", root, [b.walk(n.from, n.to, n.memory / 2, MIB, 512)]);
  b.add(
    "container_cpu_usage_seconds_total",
    root,
    [b.counter(n.from, n.to, 3_600_000, n.cpu * 0.4 * b.interval)],
    "counter",
  );
}

interface GpuPlan {
  nodes: NodePlan[];
  t4: NodePlan;
  a100: NodePlan;
}

function planGpuNodes(b: ClusterBuilder): GpuPlan {
  const mk = (suffix: number, memory: string, product: string, mig: boolean): NodePlan => ({
    name: `ip-10-0-200-${suffix}.gpu.compute.internal`,
    providerId: `aws:///us-east-2a/i-0${b.rng.hex(16)}`,
    roles: ["worker"],
    cpu: 16,
    memory: 64 * GIB,
    from: 0,
    to: b.count,
    resize: null,
    labels: {
      label_kubernetes_io_hostname: `ip-10-0-200-${suffix}.gpu.compute.internal`,
      label_nvidia_com_gpu_present: "true",
      label_nvidia_com_gpu_product: product,
      label_nvidia_com_gpu_memory: memory,
      ...(mig ? { label_nvidia_com_mig_strategy: "mixed" } : {}),
    },
    ip: `10.0.200.${suffix}`,
  });
  const t4 = mk(11, "15360", "Tesla-T4", false);
  const a100 = mk(12, "40960", "NVIDIA-A100-SXM4-40GB", true);
  return { nodes: [t4, a100], t4, a100 };
}

interface Namespaces {
  app: string[];
  /** Every namespace, in emission order. */
  all: string[];
  /** Sample index at which each namespace's series ends. */
  ends: Map<string, number>;
  /** Namespaces opted into ROS (at least one label "true"), without the excluded one. */
  rosOptIn: string[];
  /** The `openshift-` namespace that carries an opt-in label. */
  rosExcluded: string | null;
}

/** Label that opts a namespace into ROS the Insights way. */
const ROS_INSIGHTS_LABEL = "label_insights_cost_management_optimizations";
/** Label that opts a namespace into ROS the cost-management way. */
const ROS_COST_LABEL = "label_cost_management_optimizations";

/**
 * ROS opt-in labels per namespace (contract §2 `ros:namespace_filter`):
 * cluster 2 opts nothing in (one namespace says "false"); odd clusters and
 * even ones use different mixes; every cluster but 2 labels one `openshift-`
 * namespace, which the queries must exclude.
 */
function rosOptInLabels(index: number, ns: string): Record<string, string> {
  const i = ROS_INSIGHTS_LABEL;
  const c = ROS_COST_LABEL;
  const plans: Record<string, Record<string, string>>[] = [
    {
      "app-frontend": { [i]: "true", [c]: "true" },
      "app-backend": { [i]: "true" },
      "data-pipeline": { [i]: "false" },
      "openshift-monitoring": { [i]: "true" },
      "ns-temp": { [i]: "true" },
      "ml-training": { [c]: "true" },
      "virt-workloads": { [c]: "true" },
    },
    {
      "app-frontend": { [c]: "true" },
      "data-pipeline": { [i]: "true" },
      "openshift-monitoring": { [c]: "true" },
      "ml-training": { [i]: "true" },
    },
    { "data-pipeline": { [i]: "false" } },
  ];
  const plan = index === 2 ? plans[2] : plans[index % 2];
  return { ...plan?.[ns] };
}

function emitNamespaces(
  b: ClusterBuilder,
  gpu: boolean,
  vms: boolean,
  rosIndex: number | null,
): Namespaces {
  const app = ["app-frontend", "app-backend", "data-pipeline", "openshift-monitoring"];
  const all = [...app, "openshift-etcd", "kube-system", "ns-temp"];
  if (gpu) all.push("nvidia-gpu-operator", "ml-training");
  if (vms) all.push("virt-workloads");
  const rosOptIn: string[] = [];
  let rosExcluded: string | null = null;
  const ends = new Map<string, number>();
  for (const ns of all) {
    const labels: Record<string, string> = {};
    if (ns !== "kube-system") {
      labels.label_kubernetes_io_metadata_name = ns;
      if (ns.startsWith("app-") || ns === "data-pipeline") labels.label_cost_center = "cc-" + ns;
      if (ns.startsWith("openshift")) labels.label_openshift_io_cluster_monitoring = "true";
    }
    if (b.hostile && ns === "app-backend") labels.label_cost_center = HOSTILE_VALUE;
    const ros = rosIndex === null ? {} : rosOptInLabels(rosIndex, ns);
    Object.assign(labels, ros);
    if (Object.values(ros).includes("true")) {
      if (ns.startsWith("openshift-")) rosExcluded = ns;
      else rosOptIn.push(ns);
    }
    const to = ns === "ns-temp" ? b.at(10, 30) : b.count;
    ends.set(ns, to);
    b.add(
      "kube_namespace_labels",
      { job: "kube-state-metrics", namespace: ns, ...labels },
      [b.constant(0, to, 1)],
    );
  }
  return { app, all, ends, rosOptIn, rosExcluded };
}

interface PodScenario {
  resetPod: string | null;
  noLimitPod: string | null;
  pendingPod: string | null;
  ghostPod: string | null;
  hostilePod: string | null;
  jobPod: string | null;
  daemonPod: string | null;
  midHourPods: string[];
}

function planPods(
  b: ClusterBuilder,
  o: NormalizedOptions,
  namespaces: string[],
  workers: NodePlan[],
  master: NodePlan,
  allNodes: NodePlan[],
  ghostNode: string,
): { plans: PodPlan[]; scenario: PodScenario } {
  const { rng } = b;
  const plans: PodPlan[] = [];
  const scenario: PodScenario = {
    resetPod: null,
    noLimitPod: null,
    pendingPod: null,
    ghostPod: null,
    hostilePod: null,
    jobPod: null,
    daemonPod: null,
    midHourPods: [],
  };
  const lateNode = allNodes.find((n) => n.from > 0);
  const roles = ["reset", "nolimit", "pending", "ghost", "hostile", "job", "daemon"];
  for (let j = 0; j < o.pods; j++) {
    let role = roles[j] ?? (j % 3 === 0 ? "midhour" : "steady");
    if (role === "hostile" && !o.hostile) role = "steady";
    if (role === "daemon" && !lateNode) role = "steady";
    const word = WORDS[j % WORDS.length] ?? "app";
    let namespace = namespaces[j % namespaces.length] ?? "default";
    if (j <= 1) namespace = namespaces[0] ?? "default";
    const { names } = b;
    let name = `${word}-${names.hex(10)}-${names.suffix(5)}`;
    if (role === "hostile") name = `${word}-weird,"pod"-${names.suffix(5)}`;
    if (role === "job") name = `${word}-job-2911-${names.suffix(5)}`;
    if (role === "daemon") {
      name = `node-exporter-${names.suffix(5)}`;
      namespace = "openshift-monitoring";
    }
    const worker = workers[j % workers.length] ?? master;
    let node = worker.name;
    if (role === "steady" && j % 5 === 2) {
      // Control-plane pods run on the master.
      node = master.name;
      namespace = "openshift-etcd";
    }
    if (role === "ghost") node = ghostNode;
    if ((role === "job" || role === "daemon") && lateNode) node = lateNode.name;
    if (j === 1) node = (workers[1] ?? master).name; // a different node than pod 0

    const nContainers = j % 2 === 0 ? 2 : 1;
    const containers: ContainerPlan[] = [];
    for (let c = 0; c < nContainers; c++) {
      const cpuRequest = rng.pick([0.1, 0.25, 0.5, 1, 1.5]);
      const memRequest = rng.pick([128, 256, 512, 1024]) * MIB;
      const limited = role !== "nolimit";
      containers.push({
        name: c === 0 ? word : "sidecar",
        image: `quay.io/synth/${word}:${rng.hex(7)}`,
        cpuRequest,
        cpuLimit: limited ? cpuRequest * 2 : null,
        memRequest,
        memLimit: limited ? memRequest * 2 : null,
        cpuCores: rng.pick([0.02, 0.05, 0.1, 0.3, 0.8]) * (1 + rng.next()),
        memBase: rng.int(40, 700) * MIB,
        resetAt: null,
      });
    }
    const labels: Record<string, string> = {
      label_app: word,
      label_pod_template_hash: rng.hex(10),
    };
    if (role === "hostile" || (b.hostile && j === 7)) labels.label_team = HOSTILE_VALUE;
    const plan: PodPlan = {
      name,
      namespace,
      uid: rng.uuid(),
      node,
      created: 0,
      scheduled: 0,
      running: 0,
      ended: b.count,
      deleted: b.count,
      endPhase: "Succeeded",
      containers,
      labels,
      extraRequest: null,
    };
    switch (role) {
      case "reset": {
        const c0 = containers[0];
        if (c0) c0.resetAt = b.at(2, 31);
        scenario.resetPod = name;
        break;
      }
      case "nolimit":
        scenario.noLimitPod = name;
        break;
      case "pending":
        plan.created = b.at(2, 12);
        plan.scheduled = b.at(2, 20);
        plan.running = b.at(2, 26);
        plan.ended = b.at(5, 41);
        plan.deleted = b.at(5, 52);
        scenario.pendingPod = name;
        break;
      case "ghost":
        scenario.ghostPod = name;
        break;
      case "hostile":
        scenario.hostilePod = name;
        break;
      case "job":
        plan.created = b.at(3, 4);
        plan.scheduled = plan.created;
        plan.running = b.at(3, 5);
        plan.ended = b.at(3, 38);
        plan.deleted = b.at(3, 50);
        plan.endPhase = "Failed";
        delete labels.label_pod_template_hash;
        labels.label_job_name = `${word}-job-2911`;
        scenario.jobPod = name;
        break;
      case "daemon":
        // A DaemonSet pod that starts together with the node that joins late.
        plan.created = lateNode?.from ?? 0;
        plan.scheduled = plan.created;
        plan.running = plan.created;
        scenario.daemonPod = name;
        break;
      case "midhour": {
        const startHour = (j % 5) + 1;
        const startMinute = 7 + ((11 * j) % 40);
        plan.created = b.at(startHour, startMinute);
        plan.scheduled = plan.created;
        plan.running = b.at(startHour, startMinute + 1);
        plan.ended = b.at(startHour + 3, (startMinute + 17) % 60);
        plan.deleted = plan.ended;
        scenario.midHourPods.push(name);
        break;
      }
    }
    plans.push(plan);
  }
  return { plans, scenario };
}

function emitPod(b: ClusterBuilder, p: PodPlan): void {
  const ksm = { job: "kube-state-metrics", namespace: p.namespace, pod: p.name, uid: p.uid };
  const ranges: [string, number, number][] = [
    ["Pending", p.created, p.running],
    ["Running", p.running, p.ended],
    [p.endPhase, p.ended, p.deleted],
  ];
  for (const phase of PHASES) {
    const segments = ranges
      .filter(([, from, to]) => to > from)
      .map(([which, from, to]) => b.constant(from, to, which === phase ? 1 : 0));
    b.add("kube_pod_status_phase", { ...ksm, phase }, segments);
  }
  b.add("kube_pod_labels", { ...ksm, ...p.labels }, [b.constant(p.created, p.deleted, 1)]);
  p.containers.forEach((c, i) => {
    const resources: [string, string, number | null, number | null][] = [
      ["cpu", "core", c.cpuRequest, c.cpuLimit],
      ["memory", "byte", c.memRequest, c.memLimit],
    ];
    if (i === 0 && p.extraRequest) {
      resources.push([
        p.extraRequest.resource,
        "integer",
        p.extraRequest.value,
        p.extraRequest.value,
      ]);
    }
    for (const [resource, unit, request, limit] of resources) {
      for (
        const [metric, value] of [
          ["kube_pod_container_resource_requests", request],
          ["kube_pod_container_resource_limits", limit],
        ] as const
      ) {
        if (value === null) continue;
        const labels = { ...ksm, container: c.name, resource, unit };
        b.add(metric, labels, [b.constant(p.created, p.scheduled, value)]);
        b.add(metric, { ...labels, node: p.node }, [b.constant(p.scheduled, p.deleted, value)]);
      }
    }
  });
  if (p.ended <= p.running) return;
  const podSlice = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${
    p.uid.replaceAll("-", "_")
  }.slice`;
  const cad = {
    job: "kubelet",
    metrics_path: "/metrics/cadvisor",
    namespace: p.namespace,
    pod: p.name,
    node: p.node,
  };
  const preExisting = p.running === 0;
  let podCores = 0;
  for (const c of p.containers) {
    podCores += c.cpuCores;
    const labels = {
      ...cad,
      container: c.name,
      image: c.image,
      id: `${podSlice}/crio-${b.rng.hex(64)}.scope`,
    };
    const per = c.cpuCores * b.interval;
    const start = preExisting ? c.cpuCores * 3600 * (5 + 20 * b.rng.next()) : per * 0.3;
    const cpu: Segment[] = c.resetAt !== null && c.resetAt > p.running && c.resetAt < p.ended
      ? [
        b.counter(p.running, c.resetAt, start, per),
        b.counter(c.resetAt, p.ended, per * 0.2, per),
      ]
      : [b.counter(p.running, p.ended, start, per)];
    b.add("container_cpu_usage_seconds_total", labels, cpu, "counter");
    b.add("container_memory_usage_bytes", labels, [
      b.walk(p.running, p.ended, c.memBase, 64 * 1024, 1024),
    ]);
  }
  const pause = { ...cad, container: "POD", id: `${podSlice}/crio-${b.rng.hex(64)}.scope` };
  b.add(
    "container_cpu_usage_seconds_total",
    pause,
    [b.counter(p.running, p.ended, 0.05, 0.0004 * b.interval)],
    "counter",
  );
  b.add("container_memory_usage_bytes", pause, [b.walk(p.running, p.ended, 1_200_000, 4096, 8)]);
  const cgroup = { ...cad, id: podSlice };
  b.add(
    "container_cpu_usage_seconds_total",
    cgroup,
    [b.counter(p.running, p.ended, preExisting ? 50_000 : 1, podCores * b.interval)],
    "counter",
  );
  b.add("container_memory_usage_bytes", cgroup, [b.walk(p.running, p.ended, 900 * MIB, MIB, 256)]);
}

interface StorageScenario {
  sharedPvc: string | null;
  unmountedPvc: string | null;
  unboundPv: string;
}

function emitStorage(b: ClusterBuilder, o: NormalizedOptions, pods: PodPlan[]): StorageScenario {
  const { rng } = b;
  const ksm = { job: "kube-state-metrics" };
  const result: StorageScenario = { sharedPvc: null, unmountedPvc: null, unboundPv: "" };
  const pv = (name: string, size: number, csi: boolean, labels: Record<string, string>) => {
    const sc = csi ? "gp3-csi" : "local-storage";
    const info: Record<string, string> = {
      ...ksm,
      persistentvolume: name,
      storageclass: sc,
      phase: "Bound",
    };
    if (csi) {
      info.csi_driver = "ebs.csi.aws.com";
      info.csi_volume_handle = `vol-0${rng.hex(16)}`;
    }
    const all = [b.constant(0, b.count, 1)];
    b.add("kube_persistentvolume_info", info, all);
    b.add("kube_persistentvolume_labels", { ...ksm, persistentvolume: name, ...labels }, all);
    b.add("kube_persistentvolume_capacity_bytes", { ...ksm, persistentvolume: name }, [
      b.constant(0, b.count, size),
    ]);
    return sc;
  };
  const longRunning = pods.filter((p) => p.running === 0 && p.ended === b.count);
  for (let i = 0; i < o.pvcs; i++) {
    const pvName = `pvc-${b.names.uuid()}`;
    const size = rng.pick([1, 5, 10, 20, 50]) * GIB;
    const pvLabels: Record<string, string> = i === 0 ? { label_backup: "daily" } : {};
    if (b.hostile && i === 1) pvLabels.label_note = HOSTILE_VALUE;
    const sc = pv(pvName, size, true, pvLabels);
    let users: PodPlan[];
    if (i === 0) users = pods.slice(0, 2);
    else if (i === o.pvcs - 1 && o.pvcs >= 3) users = [];
    else {
      const p = longRunning[(i * 3) % Math.max(1, longRunning.length)] ?? pods[i];
      users = p ? [p] : [];
    }
    const namespace = users[0]?.namespace ?? "data-pipeline";
    const claim = `data-${WORDS[i % WORDS.length]}-${i}`;
    if (i === 0 && users.length === 2) result.sharedPvc = claim;
    if (users.length === 0) result.unmountedPvc = claim;
    const pvc = { ...ksm, namespace, persistentvolumeclaim: claim };
    const all = [b.constant(0, b.count, 1)];
    b.add("kube_persistentvolumeclaim_info", { ...pvc, storageclass: sc, volumename: pvName }, all);
    const pvcLabels: Record<string, string> = { label_app: WORDS[i % WORDS.length] ?? "x" };
    if (b.hostile && i === 0) pvcLabels.label_note = HOSTILE_VALUE;
    b.add("kube_persistentvolumeclaim_labels", { ...pvc, ...pvcLabels }, all);
    b.add("kube_persistentvolumeclaim_resource_requests_storage_bytes", pvc, [
      b.constant(0, b.count, size),
    ]);
    const usageSalt = rng.uint32();
    const usageBase = Math.floor(size * (0.1 + 0.5 * rng.next()));
    for (const user of users) {
      b.add("kube_pod_spec_volumes_persistentvolumeclaims_info", {
        ...ksm,
        namespace,
        pod: user.name,
        uid: user.uid,
        volume: "data",
        persistentvolumeclaim: claim,
      }, [b.constant(user.created, user.deleted, 1)]);
      if (user.ended > user.running) {
        b.add(
          "kubelet_volume_stats_used_bytes",
          { job: "kubelet", namespace, persistentvolumeclaim: claim, node: user.node },
          [{
            kind: "walk",
            from: user.running,
            to: user.ended,
            base: usageBase,
            quantum: 4096,
            levels: 4096,
            salt: usageSalt,
          }],
        );
      }
    }
  }
  const unbound = `pvc-${b.names.uuid()}`;
  pv(unbound, 100 * GIB, false, { label_reclaim: "retain" });
  result.unboundPv = unbound;
  return result;
}

interface VmScenario {
  vmWithTwoDisks: string | null;
  lateVm: string | null;
  stoppingVm: string | null;
  vmWithoutLimits: string | null;
}

function emitVms(b: ClusterBuilder, o: NormalizedOptions, workers: NodePlan[]): VmScenario {
  const { rng } = b;
  const result: VmScenario = {
    vmWithTwoDisks: null,
    lateVm: null,
    stoppingVm: null,
    vmWithoutLimits: null,
  };
  const namespace = "virt-workloads";
  for (let v = 0; v < o.vms; v++) {
    const name = `vm-${WORDS[(v + 3) % WORDS.length]}-${v}-${b.names.suffix(4)}`;
    const node = (workers[v % workers.length] ?? workers[0])?.name ?? "";
    const base = { namespace, name };
    let scheduling: [number, number] | null = null;
    let running: [number, number] = [0, b.count];
    let limited = true;
    if (v === 1) {
      scheduling = [b.at(1, 19), b.at(1, 23)];
      running = [b.at(1, 23), b.count];
      limited = false;
      result.lateVm = name;
      result.vmWithoutLimits = name;
    } else if (v === 2) {
      running = [0, b.at(4, 47)];
      result.stoppingVm = name;
    }
    const cores = rng.pick([1, 2, 4]);
    const memory = rng.pick([2, 4, 8]) * GIB;
    let os = rng.pick(["rhel9", "fedora", "centos-stream9"]);
    let guestName = "Red Hat Enterprise Linux";
    let guestVersion = "9.4";
    if (b.hostile && v === 0) os = ' rhel,9 "beta"|x:y\nz\\ü';
    if (b.hostile && v === 1) {
      guestName = "\u00a0Fedora Linux";
      guestVersion = "\\.";
    }
    const info = {
      job: "kubevirt-prometheus-metrics",
      ...base,
      os,
      workload: "server",
      flavor: "small",
      instance_type: v === 2 ? "" : rng.pick(["u1.medium", "u1.large"]),
      guest_os_arch: "amd64",
      guest_os_name: guestName,
      guest_os_version_id: guestVersion,
    };
    if (scheduling) {
      b.add("kubevirt_vmi_info", { ...info, phase: "scheduling" }, [
        b.constant(scheduling[0], scheduling[1], 1),
      ]);
    }
    b.add("kubevirt_vmi_info", { ...info, phase: "running", node }, [
      b.constant(running[0], running[1], 1),
    ]);
    const kv = { job: "kubevirt-prometheus-metrics", ...base };
    const all = (value: number) => [b.constant(0, b.count, value)];
    b.add("kubevirt_vm_resource_requests", { ...kv, resource: "cpu", unit: "cores" }, all(cores));
    b.add("kubevirt_vm_resource_requests", { ...kv, resource: "cpu", unit: "sockets" }, all(1));
    b.add("kubevirt_vm_resource_requests", { ...kv, resource: "cpu", unit: "threads" }, all(1));
    b.add(
      "kubevirt_vm_resource_requests",
      { ...kv, resource: "memory", unit: "bytes" },
      all(memory),
    );
    if (limited) {
      b.add(
        "kubevirt_vm_resource_limits",
        { ...kv, resource: "cpu", unit: "cores" },
        all(cores * 2),
      );
      b.add(
        "kubevirt_vm_resource_limits",
        { ...kv, resource: "memory", unit: "bytes" },
        all(memory + GIB / 2),
      );
    }
    const vmi = { ...kv, node };
    const per = cores * 0.3 * b.interval;
    b.add("kubevirt_vmi_cpu_usage_seconds_total", vmi, [
      b.counter(running[0], running[1], running[0] === 0 ? 250_000 : per * 0.2, per),
    ], "counter");
    b.add("kubevirt_vmi_memory_used_bytes", vmi, [
      b.walk(running[0], running[1], memory / 4, MIB, 1024),
    ]);
    const disks: [string, string, string, number][] = [[
      "rootdisk",
      `${name}-rootdisk`,
      "Filesystem",
      30 * GIB,
    ]];
    if (v === 0) {
      disks.push(["datadisk", `${name}-data`, "Block", 100 * GIB]);
      result.vmWithTwoDisks = name;
    }
    for (const [device, claim, mode, size] of disks) {
      b.add("kubevirt_vm_disk_allocated_size_bytes", {
        ...kv,
        device,
        persistentvolumeclaim: claim,
        volume_mode: mode,
      }, all(size));
    }
    const labels: Record<string, string> = {
      label_app: name,
      label_kubevirt_io_domain: name,
    };
    if (b.hostile && v === 0) labels.label_note = HOSTILE_VALUE;
    b.add("kubevirt_vm_labels", { ...kv, ...labels }, all(1));
  }
  return result;
}

interface GpuSlot {
  node: NodePlan;
  exporterPod: string;
  uuid: string;
  gpu: string;
  device: string;
  modelName: string;
  mig: { id: string; profile: string } | null;
  users: PodPlan[];
}

function emitGpus(
  b: ClusterBuilder,
  o: NormalizedOptions,
  plan: GpuPlan,
): { exporterPods: string[]; plans: PodPlan[]; slots: GpuSlot[] } {
  const { rng } = b;
  const exporterPods = new Map<string, string>();
  const exporterPlans: PodPlan[] = [];
  for (const node of plan.nodes) {
    const pod = `nvidia-dcgm-exporter-${b.names.suffix(5)}`;
    exporterPods.set(node.name, pod);
    exporterPlans.push({
      name: pod,
      namespace: "nvidia-gpu-operator",
      uid: rng.uuid(),
      node: node.name,
      created: 0,
      scheduled: 0,
      running: 0,
      ended: b.count,
      deleted: b.count,
      endPhase: "Succeeded",
      containers: [{
        name: "nvidia-dcgm-exporter",
        image: "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.5",
        cpuRequest: 0.1,
        cpuLimit: null,
        memRequest: 128 * MIB,
        memLimit: 512 * MIB,
        cpuCores: 0.03,
        memBase: 90 * MIB,
        resetAt: null,
      }],
      labels: { label_app: "nvidia-dcgm-exporter" },
      extraRequest: null,
    });
  }
  for (const p of exporterPlans) emitPod(b, p);
  const gpuPlans: PodPlan[] = [...exporterPlans];

  const nonMigPods = Math.ceil(o.gpuPods / 2);
  const migPods = Math.floor(o.gpuPods / 2);
  const slots: GpuSlot[] = [];
  const exporterOf = (n: NodePlan) => exporterPods.get(n.name) ?? "";
  for (let g = 0; g <= nonMigPods; g++) {
    slots.push({
      node: plan.t4,
      exporterPod: exporterOf(plan.t4),
      uuid: `GPU-${rng.uuid()}`,
      gpu: String(g),
      device: `nvidia${g}`,
      modelName: "Tesla T4",
      mig: null,
      users: [],
    });
  }
  const profiles = [["1", "3g.20gb"], ["2", "2g.10gb"], ["3", "1g.5gb"]] as const;
  const a100s = Math.ceil((migPods + 1) / profiles.length);
  for (let g = 0; g < a100s; g++) {
    const uuid = `GPU-${rng.uuid()}`;
    for (const [id, profile] of profiles) {
      slots.push({
        node: plan.a100,
        exporterPod: exporterOf(plan.a100),
        uuid,
        gpu: String(g),
        device: `nvidia${g}`,
        modelName: "NVIDIA A100-SXM4-40GB",
        mig: { id, profile },
        users: [],
      });
    }
  }
  const nonMigSlots = slots.filter((s) => !s.mig);
  const migSlots = slots.filter((s) => s.mig);
  for (let i = 0; i < o.gpuPods; i++) {
    const mig = i % 2 === 1;
    const slot = mig ? migSlots[Math.floor(i / 2)] : nonMigSlots[Math.floor(i / 2)];
    if (!slot) throw new RangeError(`No GPU slot for GPU pod ${i}`);
    const name = `trainer-${i}-${b.names.hex(8)}-${b.names.suffix(5)}`;
    const pod: PodPlan = {
      name,
      namespace: "ml-training",
      uid: rng.uuid(),
      node: slot.node.name,
      created: 0,
      scheduled: 0,
      running: 0,
      ended: b.count,
      deleted: b.count,
      endPhase: "Succeeded",
      containers: [{
        name: "cuda",
        image: "nvcr.io/nvidia/pytorch:24.05-py3",
        cpuRequest: 2,
        cpuLimit: 4,
        memRequest: 8 * GIB,
        memLimit: 16 * GIB,
        cpuCores: 1.2,
        memBase: 6 * GIB,
        resetAt: null,
      }],
      labels: { label_app: "trainer", label_gpu: mig ? "mig" : "full" },
      extraRequest: {
        resource: slot.mig
          ? `nvidia_com_mig_${slot.mig.profile.replace(".", "_")}`
          : "nvidia_com_gpu",
        value: 1,
      },
    };
    if (i === 2) {
      pod.created = b.at(1, 17);
      pod.scheduled = pod.created;
      pod.running = b.at(1, 19);
    }
    if (i === 3) {
      pod.ended = b.at(6, 44);
      pod.deleted = b.at(6, 50);
    }
    emitPod(b, pod);
    slot.users.push(pod);
    gpuPlans.push(pod);
  }
  for (const slot of slots) emitGpuSlot(b, slot);
  return { exporterPods: [...exporterPods.values()], plans: gpuPlans, slots };
}

/**
 * The DCGM label sets of one GPU slot over time: idle stretches carry the
 * exporter's labels only, assigned ones add `exported_pod/namespace/container`.
 */
function gpuStretches(
  count: number,
  slot: GpuSlot,
): { from: number; to: number; labels: Record<string, string> }[] {
  const base: Record<string, string> = {
    job: "nvidia-dcgm-exporter",
    instance: `${slot.node.ip}:9400`,
    namespace: "nvidia-gpu-operator",
    pod: slot.exporterPod,
    container: "nvidia-dcgm-exporter",
    Hostname: slot.node.name,
    UUID: slot.uuid,
    gpu: slot.gpu,
    device: slot.device,
    modelName: slot.modelName,
    DCGM_FI_DRIVER_VERSION: "550.90.07",
    pci_bus_id: `00000000:00:1${slot.gpu}.0`,
  };
  if (slot.mig) {
    base.GPU_I_ID = slot.mig.id;
    base.GPU_I_PROFILE = slot.mig.profile;
  }
  // Split the whole time line into assigned and idle stretches.
  const marks: { from: number; to: number; labels: Record<string, string> }[] = [];
  let cursor = 0;
  for (const user of [...slot.users].sort((x, y) => x.running - y.running)) {
    if (user.running > cursor) marks.push({ from: cursor, to: user.running, labels: base });
    marks.push({
      from: user.running,
      to: user.ended,
      labels: {
        ...base,
        exported_pod: user.name,
        exported_namespace: user.namespace,
        exported_container: user.containers[0]?.name ?? "",
      },
    });
    cursor = user.ended;
  }
  if (cursor < count) marks.push({ from: cursor, to: count, labels: base });
  return marks;
}

function emitGpuSlot(b: ClusterBuilder, slot: GpuSlot): void {
  for (const { from, to, labels } of gpuStretches(b.count, slot)) {
    const m = { from, to };
    b.add("DCGM_FI_PROF_GR_ENGINE_ACTIVE", labels, [{
      kind: "ratio",
      from: m.from,
      to: m.to,
      salt: b.rng.uint32(),
    }]);
    if (slot.mig) {
      b.add("DCGM_FI_DEV_MIG_MAX_SLICES", labels, [b.constant(m.from, m.to, 7)]);
    }
  }
}

interface RosScenario {
  rosNamespaces: string[];
  rosExcludedNamespace: string | null;
  throttledContainers: ContainerRef[];
  throttleResetContainer: ContainerRef | null;
  deploymentConfigPods: string[];
  barePods: string[];
}

interface Owner {
  kind: string;
  name: string;
  workload: { name: string; type: string } | null;
}

/** The owner of regular pod `j` (and its workload, as the recording rule names it). */
function ownerOf(p: PodPlan, j: number, scenario: PodScenario): Owner {
  const parts = p.name.split("-");
  const word = parts[0] ?? p.name;
  if (p.name === scenario.jobPod) {
    const job = parts.slice(0, -1).join("-");
    return { kind: "Job", name: job, workload: { name: job, type: "job" } };
  }
  if (p.name === scenario.daemonPod) {
    return {
      kind: "DaemonSet",
      name: "node-exporter",
      workload: { name: "node-exporter", type: "daemonset" },
    };
  }
  if (p.name === scenario.ghostPod) return { kind: "<none>", name: "<none>", workload: null };
  if (j % 6 === 4) {
    return {
      kind: "ReplicationController",
      name: `${word}-1`,
      workload: { name: word, type: "deploymentconfig" },
    };
  }
  if (j % 6 === 5) {
    return { kind: "StatefulSet", name: word, workload: { name: word, type: "statefulset" } };
  }
  const rs = parts.length >= 3 ? parts.slice(0, -1).join("-") : `${word}-rs`;
  return { kind: "ReplicaSet", name: rs, workload: { name: word, type: "deployment" } };
}

/** A noisy gauge segment salted from the ROS stream (not the cluster's main stream). */
function rosWalk(
  rng: Prng,
  from: number,
  to: number,
  base: number,
  quantum: number,
  levels: number,
): Segment {
  return { kind: "walk", from, to, base, quantum, levels, salt: rng.uint32() };
}

/**
 * The series the ROS queries read (contract §2 `rosContainerQueries`,
 * `rosNamespaceQueries`): container info, owners and workloads, the per-container
 * CPU recording rule, CFS throttling, working set and RSS, resource quotas,
 * `kube_pod_info` and the DCGM utilization/frame-buffer families. All its
 * randomness comes from a PRNG stream of its own, seeded from the hub seed and
 * the cluster index.
 */
function emitRos(
  b: ClusterBuilder,
  o: NormalizedOptions,
  index: number,
  namespaces: Namespaces,
  regular: PodPlan[],
  scenario: PodScenario,
  gpuPlans: PodPlan[],
  gpuSlots: GpuSlot[],
  nodes: NodePlan[],
): RosScenario {
  const rng = new Prng(
    (Math.imul(o.seed | 0, 0x2c1b3c6d) ^ Math.imul(index + 1, 0x297a2d39)) >>> 0,
  );
  const out: RosScenario = {
    rosNamespaces: namespaces.rosOptIn,
    rosExcludedNamespace: namespaces.rosExcluded,
    throttledContainers: [],
    throttleResetContainer: null,
    deploymentConfigPods: [],
    barePods: [],
  };
  const ksm = { job: "kube-state-metrics" };
  const owners = new Map<PodPlan, Owner>();
  regular.forEach((p, j) => owners.set(p, ownerOf(p, j, scenario)));
  for (const p of gpuPlans) {
    owners.set(
      p,
      p.namespace === "nvidia-gpu-operator"
        ? {
          kind: "DaemonSet",
          name: "nvidia-dcgm-exporter",
          workload: { name: "nvidia-dcgm-exporter", type: "daemonset" },
        }
        : {
          kind: "Job",
          name: p.name.split("-").slice(0, 3).join("-"),
          workload: { name: p.name.split("-").slice(0, 3).join("-"), type: "job" },
        },
    );
  }
  const nodeIps = new Map(nodes.map((n) => [n.name, n.ip]));
  let podNumber = 0;
  for (const [p, owner] of owners) {
    podNumber++;
    const pod = { namespace: p.namespace, pod: p.name, uid: p.uid };
    const life = [b.constant(p.created, p.deleted, 1)];
    if (owner.kind === "<none>") out.barePods.push(p.name);
    if (owner.workload?.type === "deploymentconfig") out.deploymentConfigPods.push(p.name);
    // kube-state-metrics behind OpenShift's kube-rbac-proxy: a `container` target label.
    b.add("kube_pod_owner", {
      ...ksm,
      container: "kube-rbac-proxy-main",
      ...pod,
      owner_kind: owner.kind,
      owner_name: owner.name,
      owner_is_controller: owner.kind === "<none>" ? "<none>" : "true",
    }, life);
    if (owner.workload) {
      b.add("namespace_workload_pod:kube_pod_owner:relabel", {
        namespace: p.namespace,
        pod: p.name,
        workload: owner.workload.name,
        workload_type: owner.workload.type,
      }, life);
    }
    const info = {
      ...ksm,
      ...pod,
      pod_ip: `10.128.${index}.${podNumber}`,
      created_by_kind: owner.kind,
      created_by_name: owner.name,
      priority_class: p.namespace.startsWith("openshift") ? "system-cluster-critical" : "",
    };
    b.add("kube_pod_info", info, [b.constant(p.created, p.scheduled, 1)]);
    b.add("kube_pod_info", {
      ...info,
      node: p.node,
      host_ip: nodeIps.get(p.node) ?? "",
    }, [b.constant(p.scheduled, p.deleted, 1)]);

    p.containers.forEach((c, ci) => {
      b.add("kube_pod_container_info", {
        ...ksm,
        ...pod,
        container: c.name,
        image: c.image,
        image_spec: c.image,
        image_id: `${c.image.split(":")[0]}@sha256:${rng.hex(64)}`,
        container_id: `cri-o://${rng.hex(64)}`,
      }, [b.constant(p.scheduled, p.deleted, 1)]);
      if (p.ended <= p.running) return;
      const cad = {
        job: "kubelet",
        metrics_path: "/metrics/cadvisor",
        namespace: p.namespace,
        pod: p.name,
        node: p.node,
        container: c.name,
        image: c.image,
      };
      b.add("node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate", {
        namespace: p.namespace,
        pod: p.name,
        container: c.name,
        node: p.node,
      }, [rosWalk(rng, p.running, p.ended, c.cpuCores / 2, c.cpuCores / 32, 33)]);
      b.add("container_memory_working_set_bytes", cad, [
        rosWalk(rng, p.running, p.ended, Math.floor(c.memBase * 0.9 / 4096) * 4096, 4096, 4096),
      ]);
      b.add("container_memory_rss", cad, [
        rosWalk(rng, p.running, p.ended, Math.floor(c.memBase * 0.6 / 4096) * 4096, 4096, 2048),
      ]);
      if (c.cpuLimit === null) return; // no CFS quota, no throttling counter
      const ref = { namespace: p.namespace, pod: p.name, container: c.name };
      const throttled = ci === 0 && (podNumber % 3 === 1 || c.resetAt !== null);
      const start = p.running === 0 ? Math.round(rng.next() * 4000) / 8 : 0;
      if (!throttled) {
        b.add("container_cpu_cfs_throttled_seconds_total", cad, [
          b.constant(p.running, p.ended, start),
        ], "counter");
        return;
      }
      out.throttledContainers.push(ref);
      const per = (0.02 + 0.3 * rng.next()) * b.interval;
      const counter = (from: number, to: number, s: number): Segment => ({
        kind: "counter",
        from,
        to,
        start: s,
        perSample: per,
        jitter: per / 2,
        salt: rng.uint32(),
      });
      const reset = c.resetAt !== null && c.resetAt > p.running && c.resetAt < p.ended;
      if (reset && c.resetAt !== null) out.throttleResetContainer = ref;
      b.add(
        "container_cpu_cfs_throttled_seconds_total",
        cad,
        reset && c.resetAt !== null
          ? [counter(p.running, c.resetAt, start), counter(c.resetAt, p.ended, per * 0.1)]
          : [counter(p.running, p.ended, start)],
        "counter",
      );
    });
    if (p.ended > p.running) {
      // The pause container: the ROS queries must drop it (container="POD").
      b.add("container_memory_working_set_bytes", {
        job: "kubelet",
        metrics_path: "/metrics/cadvisor",
        namespace: p.namespace,
        pod: p.name,
        node: p.node,
        container: "POD",
      }, [rosWalk(rng, p.running, p.ended, 600 * 1024, 4096, 8)]);
    }
  }

  // Resource quotas: two objects in one namespace (summed), a late one, one on
  // a namespace that goes away, one on the excluded openshift- namespace, and
  // (in app-frontend) "used" series that the queries must ignore.
  const quota = (
    ns: string,
    name: string,
    values: Record<string, number>,
    from = 0,
  ) => {
    if (!namespaces.all.includes(ns)) return;
    const to = namespaces.ends.get(ns) ?? b.count;
    for (const [resource, value] of Object.entries(values)) {
      for (
        const type of name === "compute" && ns === "app-frontend" ? ["hard", "used"] : ["hard"]
      ) {
        const v = type === "hard" ? value : Math.floor(value * (0.25 + rng.next() / 2));
        b.add("kube_resourcequota", {
          ...ksm,
          namespace: ns,
          resourcequota: name,
          resource,
          type,
        }, [b.constant(from, to, v)]);
      }
    }
  };
  const full = (cpu: number, mem: number) => ({
    "requests.cpu": cpu,
    "limits.cpu": cpu * 2,
    "requests.memory": mem,
    "limits.memory": mem * 2,
  });
  quota("app-frontend", "compute", full(8, 16 * GIB));
  quota("app-frontend", "burst", { "requests.cpu": 1.5, "limits.memory": 4 * GIB });
  quota("app-backend", "memory-only", { "requests.memory": 12 * GIB, "limits.memory": 24 * GIB });
  quota("app-backend", "late-cpu", { "requests.cpu": 3, "limits.cpu": 6 }, b.at(5, 20));
  quota("data-pipeline", "compute", full(4, 8 * GIB));
  quota("ns-temp", "compute", full(2, 4 * GIB));
  quota("ml-training", "gpu-compute", full(32, 128 * GIB));
  quota("openshift-monitoring", "compute", full(20, 64 * GIB));

  // DCGM families of ROS's accelerator queries, on the same label sets as
  // DCGM_FI_PROF_GR_ENGINE_ACTIVE. MIG instances report no GPU/copy
  // utilization, only frame-buffer use.
  for (const slot of gpuSlots) {
    for (const { from, to, labels } of gpuStretches(b.count, slot)) {
      if (!slot.mig) {
        b.add("DCGM_FI_DEV_GPU_UTIL", labels, [rosWalk(rng, from, to, 0, 1, 101)]);
        b.add("DCGM_FI_DEV_MEM_COPY_UTIL", labels, [rosWalk(rng, from, to, 0, 1, 61)]);
      }
      const fb = slot.mig ? 4864 : 15360;
      b.add("DCGM_FI_DEV_FB_USED", labels, [rosWalk(rng, from, to, 256, 16, (fb - 256) / 16)]);
    }
  }
  return out;
}
