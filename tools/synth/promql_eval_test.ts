import assert from "node:assert/strict";
import { buildHub, defaultTestHub, sampleTimeMs, sampleValue } from "./model.ts";
import {
  addScalar,
  aggregate,
  clampMax,
  compareBytes,
  compareLabels,
  eq,
  extrapolatedRate,
  labelReplace,
  type Labels,
  labelsKey,
  mulGroupLeft,
  ne,
  or,
  type Sample,
  SeriesIndex,
} from "./promql_eval.ts";

function close(actual: number | undefined, expected: number): void {
  assert.ok(actual !== undefined);
  assert.ok(Math.abs(actual - expected) <= 1e-15 * Math.abs(expected), `${actual} vs ${expected}`);
}

Deno.test("extrapolatedRate: extrapolation to both edges within 1.1× the spacing", () => {
  // 900 s window [0, 900]; samples 100 s after the start and 200 s before the end.
  const pts = [{ t: 100_000, v: 10 }, { t: 400_000, v: 40 }, { t: 700_000, v: 70 }];
  // Increase 60 over 600 s, extrapolated by 100 + 200 s → 90 over 900 s.
  close(extrapolatedRate(pts, 0, 900_000, 900), 90 / 900);
});

Deno.test("extrapolatedRate: counter resets add the value before the drop", () => {
  const pts = [{ t: 100_000, v: 100 }, { t: 400_000, v: 130 }, { t: 700_000, v: 5 }];
  // 5 − 100 + 130 = 35 over 600 s, extrapolated to 900 s.
  close(extrapolatedRate(pts, 0, 900_000, 900), (35 * 900 / 600) / 900);
});

Deno.test("extrapolatedRate: the zero point limits the extrapolation at the start", () => {
  const pts = [{ t: 100_000, v: 1 }, { t: 400_000, v: 31 }, { t: 700_000, v: 61 }];
  // The counter would have been 0 just 10 s before the first sample: 600 + 10 + 200.
  close(extrapolatedRate(pts, 0, 900_000, 900), (60 * 810 / 600) / 900);
});

Deno.test("extrapolatedRate: v2.42 applies the zero point before the 1.1× threshold", () => {
  // Spacing 100 s (threshold 110 s); 400 s gaps at both ends. The zero point (100 s before
  // the first sample) shortens durationToStart to 100 s, which is then under the threshold,
  // so 2.42 extrapolates 100 s at the start and 50 s (half the spacing) at the end.
  const pts = [{ t: 400_000, v: 10 }, { t: 500_000, v: 20 }];
  close(extrapolatedRate(pts, 0, 900_000, 900), (10 * 250 / 100) / 900);
  assert.equal(extrapolatedRate([{ t: 400_000, v: 1 }], 0, 900_000, 900), undefined);
  assert.equal(extrapolatedRate([], 0, 900_000, 900), undefined);
});

Deno.test("aggregate keeps only the present by-labels", () => {
  const v: Sample[] = [
    { labels: { __name__: "m", a: "1", b: "x" }, value: 2 },
    { labels: { __name__: "m", a: "1", b: "y" }, value: 5 },
    { labels: { __name__: "m", b: "z" }, value: 7 },
  ];
  const sum = aggregate("sum", ["a", "c"], v);
  assert.deepEqual(sum.map((s) => [s.labels, s.value]), [[{ a: "1" }, 7], [{}, 7]]);
  const max = aggregate("max", ["a"], v);
  assert.deepEqual(max.map((s) => s.value), [5, 7]);
});

Deno.test("mulGroupLeft copies or removes group_left labels and checks cardinality", () => {
  const lhs: Sample[] = [
    { labels: { __name__: "x", node: "n1", pod: "p", keep: "k" }, value: 4 },
    { labels: { __name__: "x", node: "n2", pod: "q" }, value: 3 },
    { labels: { __name__: "x", node: "n3" }, value: 1 },
  ];
  const rhs: Sample[] = [
    { labels: { node: "n1", provider_id: "aws:///a/i-1" }, value: 1 },
    { labels: { node: "n2" }, value: 0.5 },
  ];
  const out = mulGroupLeft(lhs, rhs, ["node"], ["provider_id", "pod"]);
  assert.deepEqual(out, [
    { labels: { node: "n1", keep: "k", provider_id: "aws:///a/i-1" }, value: 4 },
    { labels: { node: "n2" }, value: 1.5 },
  ]);
  assert.throws(
    () => mulGroupLeft(lhs, [...rhs, { labels: { node: "n1", z: "1" }, value: 1 }], ["node"], []),
    /many-to-many/,
  );
  assert.throws(
    () =>
      mulGroupLeft(
        [{ labels: { a: "1", b: "x" }, value: 1 }, { labels: { a: "1", b: "y" }, value: 1 }],
        [{ labels: { a: "1" }, value: 1 }],
        ["a"],
        ["b"],
      ),
    /grouping labels must ensure uniqueness/,
  );
});

Deno.test("or keeps the left side and adds right elements with new label sets", () => {
  const out = or(
    [{ labels: { a: "1" }, value: 1 }],
    [{ labels: { __name__: "m", a: "1" }, value: 9 }, { labels: { a: "2" }, value: 2 }],
  );
  assert.deepEqual(out.map((s) => s.value), [1, 2]);
});

Deno.test("label_replace follows RE2: '.' does not match a newline; (.+) needs a value", () => {
  const v: Sample[] = [
    { labels: { pod: "p1", namespace: "ns" }, value: 1 },
    { labels: { pod: "line\nbreak", namespace: "ns" }, value: 1 },
    { labels: { namespace: "ns", exported_pod: "old" }, value: 1 },
  ];
  const out = labelReplace(v, "exported_pod", "pod", "(.*)");
  assert.equal(out[0]?.labels.exported_pod, "p1");
  assert.equal(out[1]?.labels.exported_pod, undefined);
  // Empty source matches (.*) and removes the destination label.
  assert.equal(out[2]?.labels.exported_pod, undefined);
  const plus = labelReplace(v, "exported_pod", "pod", "(.+)");
  assert.equal(plus[2]?.labels.exported_pod, "old");
  assert.throws(
    () =>
      labelReplace(
        [{ labels: { a: "x", b: "1" }, value: 1 }, { labels: { a: "x" }, value: 1 }],
        "b",
        "a",
        "(.*)",
      ),
    /same labelset/,
  );
});

Deno.test("arithmetic with a scalar and clamp_max drop the metric name", () => {
  const v = [{ labels: { __name__: "m", a: "1" }, value: 0.25 }];
  assert.deepEqual(clampMax(addScalar(v, 1), 1), [{ labels: { a: "1" }, value: 1 }]);
  assert.deepEqual(addScalar(v, 1), [{ labels: { a: "1" }, value: 1.25 }]);
});

Deno.test("compareLabels sorts like Prometheus (byte order of names, then values)", () => {
  const sets: Labels[] = [
    { a: "2" },
    { a: "1", b: "x" },
    { a: "1" },
    { Z: "1" },
    { _x: "1" },
    { a: "\u{1F680}" },
    { a: "\uFFFD" },
  ];
  const sorted = [...sets].sort(compareLabels).map((s) => JSON.stringify(s));
  assert.deepEqual(sorted, [
    '{"Z":"1"}',
    '{"_x":"1"}',
    '{"a":"1"}',
    '{"a":"1","b":"x"}',
    '{"a":"2"}',
    '{"a":"\uFFFD"}',
    '{"a":"\u{1F680}"}',
  ]);
  assert.ok(compareBytes("\u{1F680}", "\uFFFD") > 0);
  assert.ok("\u{1F680}" < "\uFFFD"); // JavaScript's own order differs
  assert.equal(labelsKey({ b: "1", a: "2" }), labelsKey({ a: "2", b: "1" }));
  assert.notEqual(labelsKey({ a: "1" }), labelsKey({ a: "2" }));
});

Deno.test("SeriesIndex.instant uses the newest sample of the last 5 minutes", () => {
  const hub = buildHub({ ...defaultTestHub(), clusters: 1 });
  const c = hub.clusters[0];
  assert.ok(c);
  const ix = new SeriesIndex(hub, c);
  const job = c.scenario.jobPod ?? "";
  const phase = c.series.find((s) =>
    s.metric === "kube_pod_status_phase" && s.labels.pod === job && s.labels.phase === "Failed"
  );
  assert.ok(phase);
  const last = phase.segments[phase.segments.length - 1];
  assert.ok(last);
  const lastMs = sampleTimeMs(hub, c, last.to - 1);
  const at = (t: number) =>
    ix.instant("kube_pod_status_phase", [eq("pod", job), eq("phase", "Failed")], t);
  // Visible for 5 minutes after the last sample, gone afterwards.
  assert.deepEqual(at(lastMs + 4 * 60_000).map((s) => s.value), [
    sampleValue(c, phase, last.to - 1),
  ]);
  assert.deepEqual(at(lastMs + 5 * 60_000 + 1), []);
  // Between two samples the older one is used.
  const mid = sampleTimeMs(hub, c, last.from) + 1000;
  assert.deepEqual(at(mid).map((s) => s.value), [sampleValue(c, phase, last.from)]);
  assert.equal(at(mid)[0]?.labels.__name__, "kube_pod_status_phase");
  // Matchers: != "" requires the label.
  const noNode = ix.instant("kube_pod_container_resource_requests", [ne("node", "")], mid);
  assert.ok(noNode.every((s) => s.labels.node !== undefined));
});
