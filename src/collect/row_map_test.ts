import assert from "node:assert/strict";
import { COST_QUERIES } from "./catalogue.ts";
import { applySeries, rowKey, type RowMap, serializeLabels } from "./row_map.ts";

const query = (name: string) => {
  const q = COST_QUERIES.find((q) => q.name === name);
  if (!q) throw new Error(name);
  return q;
};

Deno.test("rowKey: one label verbatim, several sorted by value and comma-joined", () => {
  assert.equal(rowKey({ node: "n,1" }, ["node"]), "n,1");
  assert.equal(rowKey({ pod: "b", namespace: "a" }, ["pod", "namespace"]), "a,b");
  assert.equal(rowKey({ pod: "p" }, ["pod", "namespace"]), ",p");
  // Byte order: U+1F600 (F0 9F …) sorts after U+FF01 (EF BC 81).
  assert.equal(rowKey({ a: "\u{1F600}", b: "\uFF01" }, ["a", "b"]), "\uFF01,\u{1F600}");
});

Deno.test("serializeLabels: unanchored name regex, name:value sorted, | joined, no escaping", () => {
  const m = {
    label_z: "1",
    label_app: 'we|ird:va"lue,\n',
    mylabel: "x",
    pod: "p",
    __name__: "kube_pod_labels",
  };
  assert.equal(
    serializeLabels(m, "label_*"),
    'label_app:we|ird:va"lue,\n|label_z:1|mylabel:x',
  );
  assert.equal(serializeLabels(m, "label_"), 'label_app:we|ird:va"lue,\n|label_z:1');
  assert.equal(serializeLabels({ pod: "p" }, "label_*"), "");
});

Deno.test("applySeries writes labels, value and transformed value; last writer wins", () => {
  const rows: RowMap = new Map();
  const cap = query("node-capacity-cpu-cores");
  applySeries(rows, cap, { node: "n1", provider_id: "aws:///z/i-1" }, { value: 4, n: 60 });
  assert.equal(rows.get("n1")!.get("node-capacity-cpu-cores"), "4.000000");
  assert.equal(rows.get("n1")!.get("node-capacity-cpu-core-seconds"), "14400.000000");
  assert.equal(rows.get("n1")!.get("provider_id"), "aws:///z/i-1");
  // max × 60·n with n < 60
  applySeries(rows, cap, { node: "n1" }, { value: 2, n: 30 });
  assert.equal(rows.get("n1")!.get("node-capacity-cpu-core-seconds"), "3600.000000");
  assert.equal(rows.get("n1")!.get("provider_id"), "", "absent label overwrites with empty");
  // sum × 60
  const usage = query("pod-usage-cpu-cores");
  applySeries(rows, usage, { pod: "p", namespace: "ns", node: "n1" }, { value: 0.5, n: 60 });
  assert.equal(rows.get("ns,p")!.get("pod-usage-cpu-core-seconds"), "30.000000");
  // label-only query writes no value
  const labels = query("pod-labels");
  applySeries(rows, labels, { pod: "p", namespace: "ns", label_a: "1" }, null);
  assert.equal(rows.get("ns,p")!.get("pod_labels"), "label_a:1");
  assert.equal(rows.get("ns,p")!.get("node"), "n1", "pod-labels has no node MetricKey");
  // GPU utilization: value not multiplied
  const util = query("nvidia-gpu-utilization");
  applySeries(rows, util, { exported_pod: "g", UUID: "u" }, { value: 12.5, n: 60 });
  const key = rowKey({ exported_pod: "g", UUID: "u" }, util.rowKey);
  assert.equal(rows.get(key)!.get("nvidia-gpu-pod-utilization"), "12.500000");
});
