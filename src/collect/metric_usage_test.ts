import assert from "node:assert/strict";
import { COST_QUERIES } from "./catalogue.ts";
import {
  columnsLostWithout,
  expressionMetrics,
  formatColumns,
  metricsOfReports,
  metricUsage,
  optionalFamily,
  queriesOfReports,
  queryMetrics,
} from "./metric_usage.ts";
import { REPORTS } from "./reports.ts";

/** Test-only cross-check: identifiers that look like metric names, found by a regex scan. */
function regexScan(expr: string): Set<string> {
  const out = new Set<string>();
  // Drop string literals, grouping label lists and label matchers; what remains are
  // function names, keywords and metric names.
  const bare = expr
    .replace(/'[^']*'|"[^"]*"/g, "''")
    .replace(/\b(by|on|group_left|group_right|without|ignoring)\s*\([^)]*\)/g, " ")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ");
  for (const m of bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const next = bare.slice(m.index! + word.length).trimStart()[0];
    if (next === "(") continue; // a function or aggregation
    if (/^(or|and|unless|by|on|group_left|group_right|offset|bool)$/.test(word)) continue;
    out.add(word);
  }
  return out;
}

Deno.test("metricsOfReports: exactly the metrics named in the catalogue's expressions", () => {
  const scanned = new Set<string>();
  for (const q of COST_QUERIES) for (const m of regexScan(q.expr)) scanned.add(m);
  assert.deepEqual(metricsOfReports(), [...scanned].sort());
  const all = metricsOfReports();
  assert.deepEqual(all, [...new Set(all)].sort(), "sorted and unique");
  assert.ok(all.includes("kube_pod_container_resource_requests"));
  assert.ok(all.includes("DCGM_FI_DEV_MIG_MAX_SLICES"));
});

Deno.test("every query's metrics are found per query, and each is in some query's scan", () => {
  for (const q of queryMetrics()) {
    const expr = COST_QUERIES.find((c) => c.name === q.query)!.expr;
    assert.deepEqual(q.metrics, [...regexScan(expr)].sort(), q.query);
    for (const r of q.required) assert.ok(q.metrics.includes(r), `${q.query}: ${r}`);
    assert.ok(q.required.length > 0, `${q.query} requires something`);
  }
});

Deno.test("expressionMetrics: __name__ and quoted forms, or/unless/and, absent", () => {
  assert.deepEqual(expressionMetrics('{__name__="a", x="y"} * {"b.c"} + rate(d[5m])'), {
    metrics: ["a", "b.c", "d"],
    required: ["a", "b.c", "d"],
  });
  assert.deepEqual(expressionMetrics("a or b * c"), { metrics: ["a", "b", "c"], required: [] });
  assert.deepEqual(expressionMetrics("(a * b) or (a * c)").required, ["a"]);
  assert.deepEqual(expressionMetrics("a unless b").required, ["a"]);
  assert.deepEqual(expressionMetrics("a and on(x) b").required, ["a", "b"]);
  assert.deepEqual(expressionMetrics("absent(a) + 1").required, []);
  assert.deepEqual(expressionMetrics('{__name__=~"a|b"} + {job="x"}').metrics, []);
  assert.deepEqual(expressionMetrics("max_over_time((x offset 1m)[1h:1m])").required, ["x"]);
  assert.throws(() => expressionMetrics("sum(("), SyntaxError);
});

Deno.test("columnsLostWithout: joins empty both sides; GPU `or` sides are not required", () => {
  assert.deepEqual(columnsLostWithout("kube_pod_container_resource_requests"), [
    { report: "gpu", column: "gpu_memory_capacity_mib" },
    { report: "pod", column: "pod_request_cpu_core_seconds" },
    { report: "pod", column: "pod_request_memory_byte_seconds" },
  ]);
  assert.deepEqual(columnsLostWithout("kube_pod_container_resource_requests", ["pod"]), [
    { report: "pod", column: "pod_request_cpu_core_seconds" },
    { report: "pod", column: "pod_request_memory_byte_seconds" },
  ]);
  // kube_node_info is joined into the node capacity queries: their columns go.
  const nodeInfo = formatColumns(columnsLostWithout("kube_node_info", ["pod"]));
  assert.equal(
    nodeInfo,
    "pod: node_capacity_cpu_cores, node_capacity_cpu_core_seconds, node_capacity_memory_bytes, " +
      "node_capacity_memory_byte_seconds, resource_id",
  );
  // The utilization queries drive the GPU rows: without DCGM every GPU column is empty.
  const gpu = REPORTS.find((r) => r.name === "gpu")!;
  assert.equal(
    columnsLostWithout("DCGM_FI_PROF_GR_ENGINE_ACTIVE").length,
    gpu.header.length - 4,
  );
  // Without any node metric no report has rows.
  const nodeMetrics = [
    "kube_node_info",
    "kube_node_status_allocatable",
    "kube_node_status_capacity",
    "kube_node_role",
    "kube_node_labels",
  ];
  const total = REPORTS.reduce((n, r) => n + r.header.length - 4, 0);
  assert.equal(columnsLostWithout(nodeMetrics).length, total);
  assert.deepEqual(columnsLostWithout("no_such_metric"), []);
  assert.throws(() => columnsLostWithout("x", ["nope" as "pod"]), RangeError);
});

Deno.test("queriesOfReports: node queries always; only the groups a report reads", () => {
  const ns = queriesOfReports(["namespace"]).map((q) => q.group);
  assert.deepEqual([...new Set(ns)], ["node", "namespace"]);
  assert.equal(queriesOfReports().length, COST_QUERIES.length);
  const gpu = new Set(queriesOfReports(["gpu"]).map((q) => q.group));
  for (
    const g of ["gpu-capacity-non-mig", "gpu-capacity-mig", "gpu-utilization", "gpu-max-slices"]
  ) {
    assert.ok(gpu.has(g as never), g);
  }
  assert.ok(!metricsOfReports(["node"]).includes("kube_pod_labels"));
});

Deno.test("metricUsage: queries, emptied queries, columns, optional families", () => {
  const usage = metricUsage();
  assert.deepEqual(usage.map((u) => u.metric), metricsOfReports());
  const phase = usage.find((u) => u.metric === "kube_pod_status_phase")!;
  assert.ok(phase.emptiedQueries.includes("pod-labels"));
  assert.ok(!phase.columns.some((c) => c.column === "pod_usage_cpu_core_seconds"));
  assert.equal(usage.find((u) => u.metric === "kubevirt_vmi_info")!.optional, true);
  assert.equal(optionalFamily("DCGM_FI_PROF_GR_ENGINE_ACTIVE")?.prefix, "DCGM_");
  assert.equal(optionalFamily("kube_pod_labels"), null);
  for (const u of usage) assert.ok(u.queries.length > 0, u.metric);
});
