import assert from "node:assert/strict";
import { parser } from "@prometheus-io/lezer-promql";
import type { SyntaxNode } from "@lezer/common";
import {
  type BatchPlannedQuery,
  collectionParams,
  planBatchQueries,
  planFingerprint,
  planQueries,
  serverExpr,
} from "./query_plan.ts";
import { planBatchRosQueries, planRosQueries } from "./ros_plan.ts";
import { COST_QUERIES } from "./catalogue.ts";
import { carriesLabel, rewriteQuery } from "./promql_rewrite.ts";
import {
  addScalar,
  aggregate,
  clampMax,
  labelReplace,
  labelsKey,
  mulGroupLeft,
  or,
  type Sample,
} from "../../tools/synth/promql_eval.ts";

const LABEL = "clusterID";
const UUID = "2b6b7c1e-4a8f-4f0e-9a51-1c0e4c3d2a10";
const ONE = { clusterLabel: LABEL, clusterId: UUID, rateWindow: "15m" };

Deno.test("planBatchQueries: one cluster id gives exactly planQueries, plus stripClusterLabel", () => {
  const batch = planBatchQueries(COST_QUERIES, { ...ONE, clusterIds: [UUID] });
  const single = planQueries(COST_QUERIES, ONE);
  assert.equal(batch.length, 36);
  batch.forEach((p, i) => {
    const { stripClusterLabel, ...rest } = p;
    assert.deepEqual(rest, single[i]);
    assert.equal(stripClusterLabel, !carriesLabel(p.query.expr, LABEL));
  });
  // The per-cluster fingerprint recorded in the state is the same either way.
  assert.equal(planFingerprint(batch), planFingerprint(single));
  assert.deepEqual(
    collectionParams(batch, { ...ONE, reduce: "server" }),
    collectionParams(single, { ...ONE, reduce: "server" }),
  );
});

Deno.test("planBatchQueries: many cluster ids share one expression per query", () => {
  const ids = [UUID, "c.2", "c|3"];
  const plan = planBatchQueries(COST_QUERIES, { ...ONE, clusterIds: ids });
  const single = planBatchQueries(COST_QUERIES, { ...ONE, clusterIds: [UUID] });
  assert.equal(plan.length, 36);
  const byName = new Map<string, BatchPlannedQuery>();
  plan.forEach((p, i) => {
    assert.equal(p.query, COST_QUERIES[i]);
    assert.equal(
      p.expr,
      rewriteQuery(p.query.expr, { label: LABEL, values: ids, rangeWindow: "15m" }),
    );
    assert.ok(p.expr.includes(`clusterID=~"${UUID}|c\\\\.2|c\\\\|3"`), p.expr);
    assert.deepEqual(
      p.server,
      single[i]!.server.map((s) => ({
        aggregate: s.aggregate,
        expr: serverExpr(p.expr, s.aggregate),
      })),
    );
    assert.equal(p.stripClusterLabel, single[i]!.stripClusterLabel);
    byName.set(p.query.name, p);
  });
  assert.equal(
    byName.get("pod-usage-cpu-cores")!.expr,
    "sum by (pod, namespace, node, clusterID) (rate(container_cpu_usage_seconds_total{container!='', " +
      `container!='POD', pod!='', namespace!='', node!='', clusterID=~"${UUID}|c\\\\.2|c\\\\|3"}[15m]))`,
  );
  // Per-cluster answers with the label: node, volume and label queries, the MIG capacity.
  const keep = plan.filter((p) => !p.stripClusterLabel).map((p) => p.query.name);
  assert.deepEqual(keep, [
    "node-allocatable-cpu-cores",
    "node-allocatable-memory-bytes",
    "node-capacity-cpu-cores",
    "node-capacity-memory-bytes",
    "node-role",
    "node-labels",
    "persistentvolume-pod-info",
    "persistentvolumeclaim-capacity-bytes",
    "persistentvolumeclaim-request-bytes",
    "persistentvolumeclaim-usage-bytes",
    "persistentvolume-labels",
    "persistentvolumeclaim-labels",
    "pod-labels",
    "vm_labels",
    "namespace-labels",
    "nvidia-gpu-memory-capacity-mib-mig",
  ]);
});

Deno.test("planBatchQueries: refuses bad batches", () => {
  const plan = (clusterIds: readonly string[]) =>
    planBatchQueries(COST_QUERIES, { ...ONE, clusterIds });
  assert.throws(() => plan([]), RangeError);
  assert.throws(() => plan(["a", "a"]), RangeError);
  assert.throws(() => plan(["a", ""]), RangeError);
  assert.throws(() => plan([""]), RangeError);
  assert.throws(
    () =>
      planBatchQueries(
        [{ ...COST_QUERIES[0]!, expr: "absent(kube_node_info)" }],
        { ...ONE, clusterIds: ["a", "b"] },
      ),
    (e: unknown) => e instanceof TypeError && /absent/.test(e.message),
  );
});

// ---------------------------------------------------------------------------
// Oracle: the batched answer, split by cluster and stripped, equals every
// cluster's own answer, evaluated by tools/synth/promql_eval.ts.

/** A construct the evaluator below (and promql_eval) does not implement. */
class Unsupported extends Error {}

/** Decodes the PromQL string literals the catalogue and the rewriter use. */
function literal(text: string): string {
  if (text.startsWith("'")) {
    assert.ok(!text.includes("\\"), text);
    return text.slice(1, -1);
  }
  return JSON.parse(text);
}

/** Evaluates an instant query over `data` with promql_eval's operations. */
function evaluate(expr: string, data: readonly Sample[]): Sample[] {
  const src = (node: SyntaxNode) => expr.slice(node.from, node.to);
  const exprs = (node: SyntaxNode) => {
    const out: SyntaxNode[] = [];
    for (let c = node.firstChild; c !== null; c = c.nextSibling) if (c.type.is("Expr")) out.push(c);
    return out;
  };
  const labelNames = (node: SyntaxNode | null) => {
    const out: string[] = [];
    for (let c = node?.firstChild ?? null; c !== null; c = c.nextSibling) {
      if (c.name === "LabelName") out.push(src(c));
      else if (c.name === "QuotedLabelName") out.push(literal(src(c)));
    }
    return out;
  };
  const ev = (node: SyntaxNode): Sample[] | number => {
    switch (node.name) {
      case "ParenExpr":
        return ev(exprs(node)[0]!);
      case "NumberDurationLiteral":
        return Number(src(node));
      case "VectorSelector": {
        const tests: ((s: Sample) => boolean)[] = [];
        const name = node.getChild("Identifier");
        if (name !== null) tests.push((s) => s.labels.__name__ === src(name));
        const braces = node.getChild("LabelMatchers");
        for (let m = braces?.firstChild ?? null; m !== null; m = m.nextSibling) {
          if (m.name !== "UnquotedLabelMatcher") continue;
          const label = src(m.getChild("LabelName")!);
          const op = src(m.getChild("MatchOp")!);
          const value = literal(src(m.getChild("StringLiteral")!));
          const regex = new RegExp(`^(?:${value})$`, "su");
          const get = (s: Sample) => s.labels[label] ?? "";
          tests.push(
            op === "="
              ? (s) => get(s) === value
              : op === "!="
              ? (s) => get(s) !== value
              : op === "=~"
              ? (s) => regex.test(get(s))
              : (s) => !regex.test(get(s)),
          );
        }
        return data.filter((s) => tests.every((t) => t(s)));
      }
      case "AggregateExpr": {
        const op = src(node.getChild("AggregateOp")!);
        const modifier = node.getChild("AggregateModifier");
        if ((op !== "sum" && op !== "max") || modifier?.getChild("Without")) {
          throw new Unsupported(`${op} ${modifier ? src(modifier) : ""}`);
        }
        const input = ev(exprs(node.getChild("FunctionCallBody")!)[0]!);
        assert.ok(typeof input !== "number");
        return aggregate(op, labelNames(modifier?.getChild("GroupingLabels") ?? null), input);
      }
      case "BinaryExpr": {
        const [l, r] = exprs(node);
        const lhs = ev(l!);
        const rhs = ev(r!);
        const op = l!.nextSibling!.name;
        const clause = node.getChild("MatchingModifierClause");
        if (op === "Or" && clause === null && typeof lhs !== "number" && typeof rhs !== "number") {
          return or(lhs, rhs);
        }
        if (op === "Add" && clause === null && typeof lhs !== "number" && typeof rhs === "number") {
          return addScalar(lhs, rhs);
        }
        if (
          op === "Mul" && clause?.getChild("On") && clause.getChild("GroupLeft") &&
          typeof lhs !== "number" && typeof rhs !== "number"
        ) {
          const [on, include] = clause.getChildren("GroupingLabels");
          return mulGroupLeft(lhs, rhs, labelNames(on!), labelNames(include ?? null));
        }
        throw new Unsupported(src(node).slice(0, 40));
      }
      case "FunctionCall": {
        const fn = src(node.getChild("FunctionIdentifier")!);
        const args = exprs(node.getChild("FunctionCallBody")!);
        if (fn === "label_replace") {
          const v = ev(args[0]!);
          const [dst, replacement, source, regex] = args.slice(1).map((a) => literal(src(a)));
          assert.equal(replacement, "$1");
          assert.ok(regex === "(.*)" || regex === "(.+)");
          assert.ok(typeof v !== "number");
          return labelReplace(v, dst!, source!, regex);
        }
        if (fn === "clamp_max") {
          const v = ev(args[0]!);
          const max = ev(args[1]!);
          assert.ok(typeof v !== "number" && typeof max === "number");
          return clampMax(v, max);
        }
        throw new Unsupported(fn);
      }
      default:
        throw new Unsupported(node.name);
    }
  };
  const result = ev(parser.parse(expr).topNode.firstChild!);
  assert.ok(typeof result !== "number");
  return result;
}

/** Clusters whose pods, namespaces, nodes, volumes and VMs share their names. */
const BATCH = ["c.1", "c|2"];
/** Not in the batch; its series must never show up. `cx1` matches `c.1` unescaped. */
const OUTSIDER = "cx1";

function hubData(): Sample[] {
  const out: Sample[] = [];
  [...BATCH, OUTSIDER].forEach((cluster, ci) => {
    let n = 0;
    const add = (name: string, labels: Record<string, string>, value?: number) =>
      out.push({
        labels: { __name__: name, ...labels, [LABEL]: cluster },
        value: value ?? 10 * (ci + 1) + ++n,
      });
    const pods = [
      { pod: "p1", namespace: "ns1", node: "n1" },
      { pod: "p2", namespace: "ns1", node: "n2" },
      { pod: "p3", namespace: "ns2", node: "n1" },
    ];
    for (const node of ["n1", "n2"]) {
      for (const resource of ["cpu", "memory"]) {
        add("kube_node_status_allocatable", { node, resource });
        add("kube_node_status_capacity", { node, resource });
      }
      add("kube_node_info", { node, provider_id: `aws:///${cluster}/${node}` }, 1);
      add("kube_node_role", { node, role: "worker" }, 1);
      add("kube_node_labels", {
        node,
        ...(node === "n1"
          ? {
            label_nvidia_com_gpu_memory: `${8192 * (ci + 1)}`,
            label_nvidia_com_mig_strategy: "single",
          }
          : {}),
      }, 1);
    }
    for (const p of pods) {
      for (const resource of ["cpu", "memory", "nvidia_com_gpu"]) {
        add("kube_pod_container_resource_limits", { ...p, container: "c", resource });
        add("kube_pod_container_resource_requests", { ...p, container: "c", resource });
      }
      add("container_memory_usage_bytes", { ...p, container: "c" });
      add("kube_pod_status_phase", { pod: p.pod, namespace: p.namespace, phase: "Running" }, 1);
      add("kube_pod_status_phase", { pod: p.pod, namespace: p.namespace, phase: "Pending" }, 0);
      add(
        "kube_pod_labels",
        { pod: p.pod, namespace: p.namespace, label_app: `app-${cluster}` },
        1,
      );
    }
    const pvc = { namespace: "ns1", persistentvolumeclaim: "pvc1" };
    add("kube_persistentvolumeclaim_info", { ...pvc, volumename: "pv1" }, 1);
    add("kube_pod_spec_volumes_persistentvolumeclaims_info", { ...pvc, pod: "p1", volume: "v" }, 1);
    add("kube_persistentvolumeclaim_resource_requests_storage_bytes", pvc);
    add("kubelet_volume_stats_used_bytes", pvc);
    add("kube_persistentvolumeclaim_labels", { ...pvc, label_tier: `t-${cluster}` }, 1);
    add("kube_persistentvolume_capacity_bytes", { persistentvolume: "pv1" });
    add("kube_persistentvolume_labels", { persistentvolume: "pv1", label_zone: "z" }, 1);
    add("kube_persistentvolume_info", {
      persistentvolume: "pv1",
      storageclass: `sc-${cluster}`,
      csi_driver: "ebs",
      csi_volume_handle: `vol-${cluster}`,
    }, 1);
    const vm = { name: "vm1", namespace: "ns1" };
    for (const resource of ["cpu", "memory"]) {
      add("kubevirt_vm_resource_limits", { ...vm, resource });
    }
    for (const unit of ["cores", "sockets", "threads"]) {
      add("kubevirt_vm_resource_requests", { ...vm, resource: "cpu", unit });
    }
    add("kubevirt_vm_resource_requests", { ...vm, resource: "memory", unit: "bytes" });
    add("kubevirt_vmi_info", {
      ...vm,
      phase: "running",
      node: "n1",
      os: "linux",
      instance_type: "u1",
      guest_os_name: "fedora",
      guest_os_version_id: "40",
      guest_os_arch: "amd64",
    }, 1);
    add("kubevirt_vm_disk_allocated_size_bytes", {
      ...vm,
      device: "vda",
      persistentvolumeclaim: "pvc1",
      volume_mode: "Block",
    });
    add("kubevirt_vm_labels", { ...vm, label_os: "linux" }, 1);
    add("kube_namespace_labels", {
      namespace: "ns1",
      label_insights_cost_management_optimizations: "true",
    }, 1);
    add(
      "kube_namespace_labels",
      { namespace: "ns2", label_cost_management_optimizations: "true" },
      1,
    );
    add("kube_namespace_labels", {
      namespace: "openshift-x",
      label_cost_management_optimizations: "true",
    }, 1);
    const gpu = { Hostname: "n1", modelName: "A100", GPU_I_PROFILE: "1g.10gb", device: "nvidia0" };
    for (const metric of ["DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_MIG_MAX_SLICES"]) {
      add(metric, {
        ...gpu,
        UUID: "u1",
        GPU_I_ID: "1",
        exported_pod: "p1",
        exported_namespace: "ns1",
      });
      add(metric, { ...gpu, UUID: "u2", GPU_I_ID: "2", pod: "p3", namespace: "ns2" });
    }
  });
  return out;
}

function canonical(v: readonly Sample[]): string[] {
  return v.map((s) => `${labelsKey(s.labels)} ${s.value}`).sort();
}

/** Splits a batched answer by cluster and strips the label where the per-cluster answer lacks it. */
function split(v: readonly Sample[], strip: boolean): Map<string, Sample[]> {
  const out = new Map<string, Sample[]>(BATCH.map((id) => [id, []]));
  for (const s of v) {
    const id = s.labels[LABEL];
    assert.ok(id !== undefined && out.has(id), `series outside the batch: ${labelsKey(s.labels)}`);
    const labels: Record<string, string> = { ...s.labels };
    if (strip) delete labels[LABEL];
    out.get(id)!.push({ labels, value: s.value });
  }
  return out;
}

/** Queries the evaluator cannot run: rate/irate windows and *_over_time need sample history. */
const SKIPPED = new Set([
  "pod-usage-cpu-cores",
  "vm_cpu_usage",
  "vm_memory_usage",
]);

Deno.test("batched cost queries: split answers equal each cluster's own answer (promql_eval oracle)", async (t) => {
  const data = hubData();
  const batch = planBatchQueries(COST_QUERIES, {
    clusterLabel: LABEL,
    clusterIds: BATCH,
    rateWindow: "15m",
  });
  const perCluster = new Map(
    BATCH.map((
      id,
    ) => [
      id,
      planQueries(COST_QUERIES, { clusterLabel: LABEL, clusterId: id, rateWindow: "15m" }),
    ]),
  );
  const skipped: string[] = [];
  let compared = 0;
  for (const [i, planned] of batch.entries()) {
    await t.step(planned.query.name, () => {
      let answer: Sample[];
      try {
        answer = evaluate(planned.expr, data);
      } catch (error) {
        if (!(error instanceof Unsupported)) throw error;
        skipped.push(planned.query.name);
        return;
      }
      const parts = split(answer, planned.stripClusterLabel);
      for (const id of BATCH) {
        const own = evaluate(perCluster.get(id)![i]!.expr, data);
        assert.ok(own.length > 0, `${planned.query.name}: empty answer for ${id}`);
        assert.deepEqual(canonical(parts.get(id)!), canonical(own), `${planned.query.name} ${id}`);
      }
      compared++;
    });
  }
  assert.deepEqual(new Set(skipped), SKIPPED);
  assert.equal(compared, 36 - SKIPPED.size);
});

Deno.test("the oracle check is not vacuous: a regex matcher alone mixes the clusters", () => {
  // The clusters share pod and namespace names: without the cluster label in
  // by (…) and on (…), the batch sums the clusters' pods together.
  const data = hubData();
  const query = COST_QUERIES.find((q) => q.name === "pod-request-cpu-cores")!;
  const regexOnly = rewriteQuery(query.expr, { label: LABEL, value: "x" })
    .replaceAll('clusterID="x"', 'clusterID=~"c\\\\.1|c\\\\|2"');
  const mixed = evaluate(regexOnly, data);
  const own = BATCH.flatMap((id) =>
    evaluate(rewriteQuery(query.expr, { label: LABEL, value: id }), data)
  );
  assert.equal(mixed.length, 3);
  assert.equal(own.length, 6);
  assert.ok(mixed.every((s) => s.labels[LABEL] === undefined));
  const total = (v: readonly Sample[]) => v.reduce((sum, s) => sum + s.value, 0);
  assert.equal(total(mixed), total(own)); // both clusters, summed together
});

Deno.test("batched ROS filter query: split answers equal each cluster's own answer", () => {
  const data = hubData();
  const batch = planBatchRosQueries({ clusterLabel: LABEL, clusterIds: BATCH, rateWindow: "15m" });
  const filter = batch[0]!;
  assert.equal(filter.query.name, "ros-namespace-filter");
  const parts = split(evaluate(filter.expr, data), filter.stripClusterLabel);
  for (const id of BATCH) {
    const own = evaluate(
      planRosQueries({ clusterLabel: LABEL, clusterId: id, rateWindow: "15m" })[0]!.expr,
      data,
    );
    assert.equal(own.length, 2);
    assert.deepEqual(canonical(parts.get(id)!), canonical(own));
  }
});
