import assert from "node:assert/strict";
import { canonicalSelector, compileLocal, type SelectorNeed } from "./local_eval.ts";
import { passesFilter, planRawFetches, type RawFetch } from "./raw_fetch_plan.ts";
import { COST_QUERIES } from "./catalogue.ts";
import { ROS_QUERIES } from "./ros_catalogue.ts";
import { planQueries } from "./query_plan.ts";
import { planRosQueries } from "./ros_plan.ts";

type M = [string, "=" | "!=" | "=~" | "!~", string];

const need = (metric: string | null, m: M[], marginMs = 300_000): SelectorNeed => {
  const { key, parts } = canonicalSelector(
    metric,
    m.map(([name, op, value]) => ({ name, op, value })),
  );
  return { key, marginMs, parts };
};

const C: M = ["clusterID", "=", "c1"];

/** The fetches' keys and margins. */
function keyed(fetches: readonly RawFetch[]): { key: string; marginMs: number }[] {
  return fetches.map(({ key, marginMs }) => ({ key, marginMs }));
}

Deno.test("planRawFetches: cost and ROS variants of one metric share one query, cut out here", () => {
  const cost = need("req", [C, ["resource", "=", "cpu"], ["namespace", "!=", ""], [
    "node",
    "!=",
    "",
  ]]);
  const ros = need("req", [
    C,
    ["resource", "=", "cpu"],
    ["unit", "=", "core"],
    ["container", "!=", ""],
    ["container", "!=", "POD"],
  ], 1_260_000);
  const plan = planRawFetches([cost, ros]);
  assert.deepEqual(keyed(plan.fetches), [{
    key: 'req{clusterID="c1",resource="cpu"}',
    marginMs: 1_260_000,
  }]);
  // The merged query's own metric and matchers (what a remote read sends).
  assert.deepEqual(plan.fetches[0]!.parts, {
    metric: "req",
    matchers: [
      { name: "clusterID", op: "=", value: "c1" },
      { name: "resource", op: "=", value: "cpu" },
    ],
  });
  assert.deepEqual(plan.served.get(cost.key), {
    fetch: 'req{clusterID="c1",resource="cpu"}',
    filter: [{ name: "namespace", op: "!=", value: "" }, { name: "node", op: "!=", value: "" }],
    marginMs: 1_260_000,
  });
  assert.deepEqual(plan.served.get(ros.key)!.filter.map((m) => m.name + m.op + m.value), [
    "container!=",
    "container!=POD",
    "unit=core",
  ]);
});

Deno.test("planRawFetches: different values of one label, regex and unknown selectors stay apart", () => {
  const cpu = need("req", [C, ["resource", "=", "cpu"]]);
  const mem = need("req", [C, ["resource", "=", "memory"]]);
  const re = need("req", [C, ["resource", "=", "cpu"], ["pod", "=~", "a.*"]]);
  const other = need("lim", [C, ["resource", "=", "cpu"]]);
  const opaque: SelectorNeed = { key: 'req{clusterID="c1"}', marginMs: 1 };
  const plan = planRawFetches([cpu, mem, re, other, opaque]);
  assert.deepEqual(
    plan.fetches.map((f) => f.key).sort(),
    [cpu.key, mem.key, re.key, other.key, opaque.key].sort(),
  );
  for (const [key, s] of plan.served) {
    assert.equal(s.fetch, key);
    assert.deepEqual(s.filter, []);
  }
  // The same key twice: one query, the larger margin.
  const twice = planRawFetches([cpu, { ...cpu, marginMs: 900_000 }]);
  assert.deepEqual(keyed(twice.fetches), [{ key: cpu.key, marginMs: 900_000 }]);
});

Deno.test("planRawFetches: a hint rides along only where it fits, never adding a query", () => {
  const cost = need("req", [C, ["resource", "=", "cpu"], ["node", "!=", ""]]);
  const fits = need("req", [C, ["resource", "=", "cpu"], ["unit", "=", "core"]], 1_000_000);
  const apart = need("req", [C, ["resource", "=", "memory"]]);
  const none = need("usage", [C]);
  const same = need("phase", [C, ["phase", "=", "Running"]]);
  const plan = planRawFetches([cost, same], [fits, apart, none, { ...same, marginMs: 2_000_000 }]);
  assert.deepEqual(keyed(plan.fetches), [
    { key: 'phase{clusterID="c1",phase="Running"}', marginMs: 2_000_000 },
    { key: 'req{clusterID="c1",resource="cpu"}', marginMs: 1_000_000 },
  ]);
  assert.ok(plan.served.has(fits.key));
  assert.equal(plan.served.has(apart.key), false);
  assert.equal(plan.served.has(none.key), false);
  assert.equal(plan.served.get(same.key)!.marginMs, 2_000_000);
});

Deno.test("passesFilter: = and != with a missing label as the empty string; other operators refused", () => {
  const f = [
    { name: "container", op: "!=" as const, value: "" },
    { name: "container", op: "!=" as const, value: "POD" },
    { name: "unit", op: "=" as const, value: "core" },
  ];
  assert.equal(passesFilter({ container: "app", unit: "core" }, f), true);
  assert.equal(passesFilter({ container: "POD", unit: "core" }, f), false);
  assert.equal(passesFilter({ unit: "core" }, f), false);
  assert.equal(passesFilter({ container: "app" }, f), false);
  assert.equal(passesFilter({}, [{ name: "x", op: "=", value: "" }]), true);
  assert.throws(() => passesFilter({}, [{ name: "x", op: "=~", value: "a" }]), RangeError);
});

Deno.test("planRawFetches on the catalogue: fewer queries for cost + ROS, every selector served", () => {
  const lookbackMs = 300_000;
  const options = { clusterLabel: "clusterID", clusterId: "c1", rateWindow: "15m" };
  const cost = planQueries(COST_QUERIES, options).map((p) => p.expr);
  const ros = planRosQueries(options).map((p) => p.expr);
  const needs = (exprs: string[]) =>
    exprs.flatMap((e) => {
      const c = compileLocal(e, { lookbackMs });
      assert.ok(c.ok, e);
      return c.query.selectors;
    });
  const all = [...needs(cost), ...needs(ros)];
  const distinct = new Set(all.map((n) => n.key)).size;
  const plan = planRawFetches(all);
  for (const n of all) {
    const s = plan.served.get(n.key);
    assert.ok(s, n.key);
    assert.ok(s.marginMs >= n.marginMs, n.key);
    assert.ok(plan.fetches.some((f) => f.key === s.fetch), n.key);
  }
  // requests/limits (cpu, memory) of cost and ROS merge; kube_pod_status_phase is one key already.
  assert.ok(plan.fetches.length <= distinct - 4, `${plan.fetches.length} of ${distinct}`);
  assert.equal(ROS_QUERIES.length, 56);
});
