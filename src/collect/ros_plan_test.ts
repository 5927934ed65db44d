import assert from "node:assert/strict";
import { parser } from "@prometheus-io/lezer-promql";
import type { SyntaxNode } from "@lezer/common";
import { planBatchRosQueries, planRosQueries, rosPlanFingerprint } from "./ros_plan.ts";
import { carriesLabel } from "./promql_rewrite.ts";
import { ROS_QUERIES } from "./ros_catalogue.ts";

const UUID = "2b6b7c1e-4a8f-4f0e-9a51-1c0e4c3d2a10";
const OPTS = { clusterLabel: "clusterID", clusterId: UUID, rateWindow: "15m" };

/** Parses `source` and fails on any error node. */
function nodes(source: string): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  parser.parse(source).iterate({
    enter(ref) {
      assert.ok(!ref.type.isError, `parse error at ${ref.from} in ${source}`);
      out.push(ref.node);
    },
  });
  return out;
}

/** Every matcher of every vector selector, as `name op value` texts. */
function selectors(source: string): { text: string; matchers: string[] }[] {
  return nodes(source).filter((n) => n.name === "VectorSelector").map((selector) => {
    const matchers: string[] = [];
    const braces = selector.getChild("LabelMatchers");
    for (let m = braces?.firstChild ?? null; m !== null; m = m.nextSibling) {
      if (m.name !== "UnquotedLabelMatcher") continue;
      const name = m.getChild("LabelName")!;
      const op = m.getChild("MatchOp")!;
      const value = m.getChild("StringLiteral")!;
      matchers.push(
        `${source.slice(name.from, name.to)} ${source.slice(op.from, op.to)} ${
          source.slice(value.from, value.to)
        }`,
      );
    }
    return { text: source.slice(selector.from, selector.to), matchers };
  });
}

/** Durations of matrix selectors (`w`) and subqueries (`s`), in text order. */
function durations(source: string): string[] {
  return nodes(source)
    .filter((n) =>
      n.name === "DurationExpr" &&
      (n.parent?.name === "MatrixSelector" || n.parent?.name === "SubqueryExpr")
    )
    .map((n) => `${n.parent!.name === "MatrixSelector" ? "w" : "s"}:${source.slice(n.from, n.to)}`);
}

Deno.test("planRosQueries: 56 queries in catalogue order, every selector carries the cluster", () => {
  const plan = planRosQueries(OPTS);
  assert.equal(plan.length, 56);
  let selectorCount = 0;
  plan.forEach((p, i) => {
    assert.equal(p.query, ROS_QUERIES[i]);
    const before = selectors(p.query.expr);
    const after = selectors(p.expr);
    assert.equal(after.length, before.length, `${p.query.name}: selector count`);
    after.forEach((s, j) => {
      const cluster = s.matchers.filter((m) => m.startsWith("clusterID "));
      assert.deepEqual(cluster, [`clusterID = "${UUID}"`], `${p.query.name}: ${s.text}`);
      assert.equal(s.matchers.at(-1), cluster[0], "appended after the existing matchers");
      assert.deepEqual(s.matchers.slice(0, -1), before[j]!.matchers, "existing matchers kept");
    });
    selectorCount += after.length;
  });
  assert.equal(selectorCount, 268, "selectors in the 56 ROS queries");
  // Selectors in subqueries, label_replace and both sides of `or` are among them.
  const byName = new Map(plan.map((p) => [p.query.name, p.expr]));
  assert.match(
    byName.get("pods-total-namespace-avg")!,
    new RegExp(
      `^\\(avg_over_time\\(sum by\\(namespace\\) \\(kube_pod_info\\{clusterID="${UUID}"\\}\\)\\[15m:\\]\\)`,
    ),
  );
  assert.ok(
    byName.get("accelerator-frame-buffer-usage-avg")!.includes(
      `label_replace(kube_namespace_labels{label_insights_cost_management_optimizations='true', clusterID="${UUID}"}, 'exported_namespace', '$1', 'namespace', '(.*)')`,
    ),
  );
});

Deno.test("planRosQueries: only the [5m] rate windows change (to the 15m rate window)", () => {
  const plan = planRosQueries(OPTS);
  const changed: string[] = [];
  for (const p of plan) {
    const before = durations(p.query.expr);
    const after = durations(p.expr);
    assert.deepEqual(after, before.map((d) => (d === "w:5m" ? "w:15m" : d)), p.query.name);
    if (before.includes("w:5m")) changed.push(p.query.name);
    // Apart from matchers and widened windows, the text is CMMO's.
    const stripped = p.expr.replaceAll(`, clusterID="${UUID}"`, "")
      .replaceAll(`{clusterID="${UUID}"}`, "")
      .replaceAll("[15m]))[15m:]", "[5m]))[15m:]");
    assert.equal(stripped, p.query.expr, p.query.name);
  }
  assert.deepEqual(changed, [
    "cpu-throttle-namespace-avg",
    "cpu-throttle-namespace-max",
    "cpu-throttle-namespace-min",
  ]);
  // Every window and subquery range sent is 15m.
  const all = new Set(plan.flatMap((p) => durations(p.expr)));
  assert.deepEqual([...all].sort(), ["s:15m", "w:15m"]);
});

Deno.test("planRosQueries: the rate window is a minimum, subquery ranges never change", () => {
  const ten = planRosQueries({ ...OPTS, rateWindow: "10m" });
  const thirty = planRosQueries({ ...OPTS, rateWindow: "30m" });
  assert.deepEqual(
    new Set(ten.flatMap((p) => durations(p.expr))),
    new Set(["w:10m", "w:15m", "s:15m"]),
  );
  // A longer --rate-window never stretches the 15-minute ROS interval.
  assert.deepEqual(new Set(thirty.flatMap((p) => durations(p.expr))), new Set(["w:15m", "s:15m"]));
  assert.throws(() => planRosQueries({ ...OPTS, rateWindow: "0" }), RangeError);
  assert.throws(() => planRosQueries({ ...OPTS, clusterId: "" }), RangeError);
  assert.throws(() => planRosQueries({ ...OPTS, clusterLabel: "__name__" }), RangeError);
});

Deno.test("planRosQueries: a hostile cluster id is quoted and still parses", () => {
  const id = 'a"b\\c\n{x}';
  for (const p of planRosQueries({ ...OPTS, clusterId: id })) {
    for (const s of selectors(p.expr)) {
      assert.equal(s.matchers.at(-1), `clusterID = ${JSON.stringify(id)}`, p.query.name);
    }
  }
});

Deno.test("rosPlanFingerprint: stable, and changes with anything sent", () => {
  const base = rosPlanFingerprint(planRosQueries(OPTS));
  assert.match(base, /^[0-9a-f]{64}$/);
  assert.equal(rosPlanFingerprint(planRosQueries({ ...OPTS })), base);
  const others = [
    rosPlanFingerprint(planRosQueries({ ...OPTS, clusterId: "other" })),
    rosPlanFingerprint(planRosQueries({ ...OPTS, clusterLabel: "cluster" })),
    rosPlanFingerprint(planRosQueries({ ...OPTS, rateWindow: "10m" })),
    rosPlanFingerprint(planRosQueries(OPTS, ROS_QUERIES.slice(1))),
  ];
  assert.equal(new Set([base, ...others]).size, 5);
  // A rate window at or below every window the queries already have changes nothing sent.
  assert.equal(
    rosPlanFingerprint(planRosQueries({ ...OPTS, rateWindow: "5m" })),
    rosPlanFingerprint(planRosQueries({ ...OPTS, rateWindow: "1m" })),
  );
});

const BATCH_OPTS = { clusterLabel: "clusterID", clusterIds: [UUID], rateWindow: "15m" };

Deno.test("planBatchRosQueries: one cluster id gives exactly planRosQueries, plus stripClusterLabel", () => {
  for (const rateWindow of ["15m", "10m", "30m"]) {
    const batch = planBatchRosQueries({ ...BATCH_OPTS, rateWindow });
    const single = planRosQueries({ ...OPTS, rateWindow });
    assert.equal(batch.length, 56);
    batch.forEach((p, i) => {
      const { stripClusterLabel, ...rest } = p;
      assert.deepEqual(rest, single[i]);
      assert.equal(stripClusterLabel, !carriesLabel(p.query.expr, "clusterID"));
    });
    assert.equal(rosPlanFingerprint(batch), rosPlanFingerprint(single));
  }
});

Deno.test("planBatchRosQueries: one regex matcher per selector, short windows widened, labels added", () => {
  const ids = [UUID, "c.2", "c|3"];
  const regex = `clusterID =~ "${UUID}|c\\\\.2|c\\\\|3"`;
  const plan = planBatchRosQueries({ ...BATCH_OPTS, clusterIds: ids });
  const single = planBatchRosQueries(BATCH_OPTS);
  assert.equal(plan.length, 56);
  let selectorCount = 0;
  plan.forEach((p, i) => {
    assert.equal(p.query, ROS_QUERIES[i]);
    assert.equal(p.stripClusterLabel, single[i]!.stripClusterLabel);
    for (const s of selectors(p.expr)) {
      assert.deepEqual(s.matchers.filter((m) => m.startsWith("clusterID ")), [regex], s.text);
      selectorCount++;
    }
    // Same windows as the per-cluster plan: [5m] rate windows widened, [15m:] kept.
    assert.deepEqual(durations(p.expr), durations(single[i]!.expr), p.query.name);
  });
  assert.equal(selectorCount, 268);
  const byName = new Map(plan.map((p) => [p.query.name, p]));
  const throttle = byName.get("cpu-throttle-namespace-avg")!;
  assert.ok(
    throttle.expr.startsWith(
      "(avg_over_time(sum by(namespace, clusterID) (rate(container_cpu_cfs_throttled_seconds_total{" +
        "container!='', container!='POD', pod!='', " + regex.replace(" =~ ", "=~") +
        "}[15m]))[15m:]) " +
        "* on(namespace, clusterID) group_left kube_namespace_labels{",
    ),
    throttle.expr,
  );
  assert.equal(throttle.stripClusterLabel, true);
  assert.equal(byName.get("ros-namespace-filter")!.stripClusterLabel, false);
  assert.equal(byName.get("container-image-owner")!.stripClusterLabel, false);
  assert.equal(byName.get("cpu-request-container-avg")!.stripClusterLabel, true);
  assert.throws(() => planBatchRosQueries({ ...BATCH_OPTS, clusterIds: [] }), RangeError);
  assert.throws(() => planBatchRosQueries({ ...BATCH_OPTS, clusterIds: ["a", "a"] }), RangeError);
});
