import assert from "node:assert/strict";
import YAML from "yaml";
import { parser } from "@prometheus-io/lezer-promql";
import {
  ALLOWLIST_KEY,
  ALLOWLIST_NAME,
  ALLOWLIST_NAMESPACE,
  type MetricsList,
  RECORDING_RULES,
  renderAllowlist,
  rulesOfReports,
} from "./allowlist.ts";
import { expressionMetrics, metricsOfReports, rosMetrics } from "./metric_usage.ts";
import { REPORT_NAMES } from "./reports.ts";

interface ConfigMap {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  data: Record<string, string>;
}

function parse(text: string): { cm: ConfigMap; list: MetricsList } {
  const cm = YAML.parse(text) as ConfigMap;
  assert.deepEqual(Object.keys(cm).sort(), ["apiVersion", "data", "kind", "metadata"]);
  assert.equal(cm.apiVersion, "v1");
  assert.equal(cm.kind, "ConfigMap");
  assert.deepEqual(Object.keys(cm.data), [ALLOWLIST_KEY]);
  const raw = cm.data[ALLOWLIST_KEY];
  assert.equal(typeof raw, "string");
  return { cm, list: YAML.parse(raw!) as MetricsList };
}

function validPromql(expr: string): boolean {
  let ok = true;
  parser.parse(expr).iterate({
    enter(ref) {
      if (ref.type.isError) ok = false;
      return ok;
    },
  });
  return ok;
}

Deno.test("renderAllowlist: a ConfigMap whose names are exactly metricsOfReports", () => {
  const { cm, list } = parse(renderAllowlist());
  assert.equal(cm.metadata.name, ALLOWLIST_NAME);
  assert.equal(cm.metadata.namespace, ALLOWLIST_NAMESPACE);
  assert.deepEqual(Object.keys(list), ["names"], "nothing else unless asked for");
  assert.deepEqual(list.names, [...new Set([...metricsOfReports(), ...rosMetrics()])].sort());
});

Deno.test("renderAllowlist: per report, and in another namespace", () => {
  for (const report of REPORT_NAMES) {
    const { list } = parse(renderAllowlist({ reports: [report], ros: false }));
    assert.deepEqual(list.names, metricsOfReports([report]), report);
  }
  const { cm, list } = parse(renderAllowlist({ reports: ["node", "namespace"], namespace: "x-y" }));
  assert.equal(cm.metadata.namespace, "x-y");
  assert.ok(list.names.includes("kube_namespace_labels"));
  assert.ok(!list.names.includes("kube_pod_labels"));
  assert.throws(() => renderAllowlist({ namespace: "Bad_NS" }), TypeError);
  assert.throws(() => renderAllowlist({ reports: ["ros" as "pod"] }), RangeError);
});

Deno.test("renderAllowlist with recording rules: valid PromQL, documented, reading listed metrics", () => {
  const text = renderAllowlist({ recordingRules: true });
  const { list } = parse(text);
  assert.deepEqual(
    list.names,
    [...new Set([...metricsOfReports(), ...rosMetrics()])].sort(),
    "names unchanged by the rules",
  );
  const rules = list.recording_rules ?? [];
  assert.deepEqual(rules, RECORDING_RULES.map((r) => ({ record: r.record, expr: r.expr })));
  for (const rule of rules) {
    assert.match(rule.record, /^[a-zA-Z_:][a-zA-Z0-9_:]*$/);
    assert.ok(validPromql(rule.expr), rule.expr);
    for (const m of expressionMetrics(rule.expr).metrics) {
      assert.ok(list.names.includes(m), `${rule.record} reads ${m}, which is forwarded`);
    }
  }
  // Every rule carries its purpose as a comment.
  for (const r of RECORDING_RULES) assert.ok(text.includes(r.purpose.split(" ")[0]!), r.record);
  assert.ok(text.split("\n").every((l) => l.length <= 160 || !l.trimStart().startsWith("#")));

  // Only the rules of enabled reports; none at all for reports without CPU counters.
  const ns = parse(renderAllowlist({ reports: ["namespace"], recordingRules: true })).list;
  assert.equal(ns.recording_rules, undefined);
  const pod = parse(renderAllowlist({ reports: ["pod"], recordingRules: true })).list;
  assert.deepEqual(
    pod.recording_rules?.map((r) => r.record),
    rulesOfReports(["pod"]).map((r) => r.record),
  );
});

Deno.test("allowlist: the ROS metrics are in names unless ROS is off", () => {
  const off = YAML.parse(
    YAML.parse(renderAllowlist({ ros: false })).data["metrics_list.yaml"],
  ) as MetricsList;
  assert.deepEqual(off.names, metricsOfReports());
  const on = YAML.parse(YAML.parse(renderAllowlist()).data["metrics_list.yaml"]) as MetricsList;
  for (const m of rosMetrics()) assert.ok(on.names.includes(m), m);
  assert.ok(on.names.includes("container_cpu_cfs_throttled_seconds_total"));
  assert.ok(!off.names.includes("container_cpu_cfs_throttled_seconds_total"));
});
