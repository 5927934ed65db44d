import assert from "node:assert/strict";
import { Prng } from "../../tools/synth/prng.ts";
import { COST_QUERIES } from "./catalogue.ts";
import { applySeries, type Labels, rowKey, type RowMap, serializeLabels } from "./row_map.ts";
import { compareUtf8 } from "./utf8_compare.ts";

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

Deno.test("property: rowKey's 2- and 3-key paths equal sort-and-join for any key count", () => {
  const prng = new Prng(42);
  const names = ["a", "b", "c", "d"];
  // Equal values, prefixes, ",", and characters whose UTF-16 and UTF-8 orders differ.
  const values = [
    "",
    "x",
    "xy",
    "y",
    ",",
    "x,y",
    "\uFF01",
    "\u{1F600}",
    "\u{1F601}",
    "\uE000",
    "é",
  ];
  let multi = 0;
  for (let i = 0; i < 5000; i++) {
    const metric: Record<string, string> = {};
    for (const n of names) if (prng.next() < 0.8) metric[n] = prng.pick(values);
    const keys = Array.from({ length: prng.int(0, 5) }, () => prng.pick(names));
    const want = keys.length === 1
      ? metric[keys[0]!] ?? ""
      : keys.map((k) => (metric as Labels)[k] ?? "").sort(compareUtf8).join(",");
    assert.equal(rowKey(metric, keys), want, JSON.stringify({ metric, keys }));
    if (keys.length === 2 || keys.length === 3) multi++;
  }
  assert.ok(multi > 1500);
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
