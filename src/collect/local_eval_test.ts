import assert from "node:assert/strict";
import { BridgeError } from "../model.ts";
import { COST_QUERIES } from "./catalogue.ts";
import {
  canonicalSelector,
  compileLocal,
  type EngineSemantics,
  evaluateRange,
  type LocalQuery,
  type RawSeries,
  SlabPool,
  StepArrays,
} from "./local_eval.ts";
import { planBatchQueries, planQueries } from "./query_plan.ts";
import { ROS_QUERIES } from "./ros_catalogue.ts";
import { planBatchRosQueries, planRosQueries } from "./ros_plan.ts";

const LB = 300_000;
const BOTH: readonly EngineSemantics[] = ["prometheus2", "prometheus3"];

function compiled(expr: string): LocalQuery {
  const c = compileLocal(expr, { lookbackMs: LB });
  if (!c.ok) throw new Error(`did not compile: ${c.reason}`);
  return c.query;
}

function series(metric: Record<string, string>, points: [number, number][]): RawSeries {
  return {
    metric,
    t: Float64Array.from(points.map((p) => p[0])),
    v: Float64Array.from(points.map((p) => p[1])),
  };
}

/** Raw lookup by the key's metric name (the tests' series already satisfy the matchers). */
function byName(all: readonly RawSeries[]): (key: string) => readonly RawSeries[] {
  return (key) => {
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(key)?.[0] ?? "";
    return all.filter((s) => s.metric.__name__ === name);
  };
}

interface Simple {
  metric: Record<string, string>;
  /** value per step, null where absent */
  values: (number | null)[];
}

function run(
  expr: string,
  raw: readonly RawSeries[],
  semantics: EngineSemantics,
  grid: { start: number; end: number; step?: number },
): Simple[] {
  const out = evaluateRange(compiled(expr), byName(raw), {
    startMs: grid.start,
    endMs: grid.end,
    stepMs: grid.step ?? 60_000,
    lookbackMs: LB,
    semantics,
  });
  return out.map((s) => ({
    metric: { ...s.metric },
    values: [...s.values].map((v, i) => (s.present[i] === 1 ? v : null)),
  }));
}

function throwsLocal(fn: () => unknown, includes: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BridgeError, `expected BridgeError, got ${e}`);
    assert.equal(e.code, "local_eval");
    assert.ok(e.message.includes(includes), `message ${e.message} lacks ${includes}`);
    return true;
  });
}

// ---------------------------------------------------------------------------
// Selectors and lookback

Deno.test("lookback: a sample exactly lookback before the step is in for 2.x, out for 3.x", () => {
  const raw = [series({ __name__: "x", a: "1" }, [[300_000, 7]])];
  const grid = { start: 600_000, end: 600_000 };
  assert.deepEqual(run("x", raw, "prometheus2", grid), [{
    metric: { __name__: "x", a: "1" },
    values: [7],
  }]);
  assert.deepEqual(run("x", raw, "prometheus3", grid), []);
});

Deno.test("lookback: latest sample at or before the step; expiry; a sample at the step itself", () => {
  const raw = [series({ __name__: "x" }, [[0, 1], [60_000, 2], [120_000, 3]])];
  const grid = { start: 0, end: 480_000 };
  // Steps 0,1,…,8 min. Last sample at 2 min: 2.x keeps it through 7 min (2+5), 3.x through 6 min.
  assert.deepEqual(run("x", raw, "prometheus2", grid)[0]!.values, [1, 2, 3, 3, 3, 3, 3, 3, null]);
  assert.deepEqual(run("x", raw, "prometheus3", grid)[0]!.values, [
    1,
    2,
    3,
    3,
    3,
    3,
    3,
    null,
    null,
  ]);
});

Deno.test("offset shifts the evaluation time", () => {
  const raw = [series({ __name__: "x" }, [[0, 1], [60_000, 2], [120_000, 3]])];
  for (const sem of BOTH) {
    assert.deepEqual(run("x offset 1m", raw, sem, { start: 60_000, end: 180_000 })[0]!.values, [
      1,
      2,
      3,
    ]);
  }
});

// ---------------------------------------------------------------------------
// Range functions

Deno.test("range window: left edge closed in 2.x, open in 3.x; right edge closed in both", () => {
  const raw = [series({ __name__: "x" }, [[0, 1], [60_000, 2], [120_000, 4]])];
  const grid = { start: 120_000, end: 120_000 };
  assert.deepEqual(run("sum_over_time(x[2m])", raw, "prometheus2", grid)[0]!.values, [7]);
  assert.deepEqual(run("sum_over_time(x[2m])", raw, "prometheus3", grid)[0]!.values, [6]);
  assert.deepEqual(run("count_over_time(x[2m])", raw, "prometheus2", grid)[0]!.values, [3]);
  assert.deepEqual(run("count_over_time(x[2m])", raw, "prometheus3", grid)[0]!.values, [2]);
  for (const sem of BOTH) {
    assert.deepEqual(run("last_over_time(x[1m])", raw, sem, grid)[0]!.values, [4]);
    assert.deepEqual(run("max_over_time(x[5m])", raw, sem, grid)[0]!.values, [4]);
    assert.deepEqual(run("min_over_time(x[5m])", raw, sem, grid)[0]!.values, [1]);
  }
  assert.deepEqual(run("min_over_time(x[2m])", raw, "prometheus3", grid)[0]!.values, [2]);
});

Deno.test("avg_over_time and avg of exact values", () => {
  const raw = [series({ __name__: "x" }, [[0, 1], [10_000, 2], [20_000, 3], [30_000, 6]])];
  for (const sem of BOTH) {
    assert.deepEqual(
      run("avg_over_time(x[1m])", raw, sem, { start: 30_000, end: 30_000 })[0]!.values,
      [3],
    );
  }
});

Deno.test("rate/increase: samples near both edges extrapolate to the edges (both versions)", () => {
  // Window (300 s, 600 s]: samples at 330…570 s, 100…140. sampled 240, avg 60, threshold 66,
  // to start 30, to end 30, zero point 240*100/40 = 600 (no clamp).
  const raw = [series({ __name__: "c_total" }, [
    [330_000, 100],
    [390_000, 110],
    [450_000, 120],
    [510_000, 130],
    [570_000, 140],
  ])];
  const grid = { start: 600_000, end: 600_000 };
  for (const sem of BOTH) {
    assert.deepEqual(run("increase(c_total[5m])", raw, sem, grid)[0]!.values, [40 * (300 / 240)]);
    assert.deepEqual(run("rate(c_total[5m])", raw, sem, grid)[0]!.values, [40 * (300 / 240 / 300)]);
    assert.deepEqual(run("irate(c_total[5m])", raw, sem, grid)[0]!.values, [10 / 60]);
  }
});

Deno.test("rate/increase: the zero-point clamp differs between 2.x and 3.x", () => {
  // Window (300 s, 600 s]: 420→10, 480→20, 540→30, 600→50. result 40, sampled 180, avg 60,
  // threshold 66, to start 120 (≥ threshold), to end 0, zero point 180*10/40 = 45.
  // 2.x: clamp first (120 → 45), 45 < 66 so +45: 40 * (180+45+0)/180 = 50.
  // 3.x: threshold first (120 → avg/2 = 30), then min(30, 45) = 30: 40 * (180+30+0)/180.
  const raw = [
    series({ __name__: "c_total" }, [[420_000, 10], [480_000, 20], [540_000, 30], [600_000, 50]]),
  ];
  const grid = { start: 600_000, end: 600_000 };
  assert.deepEqual(run("increase(c_total[5m])", raw, "prometheus2", grid)[0]!.values, [
    40 * (225 / 180),
  ]);
  assert.deepEqual(run("increase(c_total[5m])", raw, "prometheus3", grid)[0]!.values, [
    40 * (210 / 180),
  ]);
  assert.deepEqual(run("rate(c_total[5m])", raw, "prometheus2", grid)[0]!.values, [
    40 * (225 / 180 / 300),
  ]);
  assert.deepEqual(run("rate(c_total[5m])", raw, "prometheus3", grid)[0]!.values, [
    40 * (210 / 180 / 300),
  ]);
});

Deno.test("rate/increase: counter reset adds the value before the reset; irate after a reset", () => {
  // 330→100, 390→110, 450→5, 510→15; result 15-100+110 = 25; to start 30 (<66), to end 90 (≥66 → 30).
  const raw = [
    series({ __name__: "c_total" }, [[330_000, 100], [390_000, 110], [450_000, 5], [510_000, 15]]),
  ];
  for (const sem of BOTH) {
    assert.deepEqual(
      run("increase(c_total[5m])", raw, sem, { start: 600_000, end: 600_000 })[0]!.values,
      [25 * (240 / 180)],
    );
    // At 450 s the last two samples are 110 and 5: a reset, so irate = 5 / 60.
    assert.deepEqual(
      run("irate(c_total[5m])", raw, sem, { start: 450_000, end: 450_000 })[0]!.values,
      [5 / 60],
    );
  }
});

Deno.test("rate needs two samples; one sample gives no point", () => {
  const raw = [series({ __name__: "c_total" }, [[0, 1], [600_000, 2]])];
  for (const sem of BOTH) {
    assert.deepEqual(run("rate(c_total[5m])", raw, sem, { start: 300_000, end: 600_000 }), []);
  }
});

Deno.test("rate drops __name__, last_over_time keeps it", () => {
  const raw = [series({ __name__: "c_total", a: "1" }, [[0, 1], [30_000, 2], [60_000, 3]])];
  for (const sem of BOTH) {
    const grid = { start: 60_000, end: 60_000 };
    assert.deepEqual(run("rate(c_total[5m])", raw, sem, grid)[0]!.metric, { a: "1" });
    assert.deepEqual(run("last_over_time(c_total[5m])", raw, sem, grid)[0]!.metric, {
      __name__: "c_total",
      a: "1",
    });
  }
});

Deno.test("range function results with one label set: 2.x fails, 3.x merges unless they overlap", () => {
  const raw = [
    series({ __name__: "x", a: "1" }, [[0, 1], [30_000, 2]]),
    series({ __name__: "y", a: "1" }, [[600_000, 5], [630_000, 6]]),
  ];
  const lookup = () => raw;
  const q = compiled('sum_over_time({__name__=~"x|y"}[1m])');
  const opts = { startMs: 60_000, endMs: 660_000, stepMs: 600_000, lookbackMs: LB };
  throwsLocal(
    () => evaluateRange(q, lookup, { ...opts, semantics: "prometheus2" }),
    "same labelset",
  );
  const out = evaluateRange(q, lookup, { ...opts, semantics: "prometheus3" });
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]!.metric, { a: "1" });
  assert.deepEqual([...out[0]!.values], [2, 6]);
  const overlap = compiled('sum_over_time({__name__=~"x|y"}[20m])');
  throwsLocal(
    () => evaluateRange(overlap, lookup, { ...opts, semantics: "prometheus3" }),
    "same labelset",
  );
});

// ---------------------------------------------------------------------------
// Aggregations

const AGG_RAW = [
  series({ __name__: "m", pod: "p1", ns: "a", c: "x" }, [[0, 1]]),
  series({ __name__: "m", pod: "p1", ns: "a", c: "y" }, [[0, 2]]),
  series({ __name__: "m", pod: "p2", ns: "a", c: "x" }, [[0, 4]]),
  series({ __name__: "m", pod: "p3", ns: "b", c: "x" }, [[0, NaN]]),
  series({ __name__: "m", pod: "p3", ns: "b", c: "y" }, [[0, 8]]),
];

Deno.test("aggregation by / without / none", () => {
  const g = { start: 0, end: 0 };
  for (const sem of BOTH) {
    assert.deepEqual(run("sum by (ns) (m)", AGG_RAW.slice(0, 3), sem, g), [{
      metric: { ns: "a" },
      values: [7],
    }]);
    assert.deepEqual(run("sum without (c) (m)", AGG_RAW.slice(0, 3), sem, g), [
      { metric: { ns: "a", pod: "p1" }, values: [3] },
      { metric: { ns: "a", pod: "p2" }, values: [4] },
    ]);
    assert.deepEqual(run("count(m)", AGG_RAW, sem, g), [{ metric: {}, values: [5] }]);
    // max/min replace a NaN first value.
    assert.deepEqual(run("max by (ns) (m)", AGG_RAW, sem, g), [
      { metric: { ns: "a" }, values: [4] },
      { metric: { ns: "b" }, values: [8] },
    ]);
    assert.deepEqual(run("min by (pod) (m)", AGG_RAW, sem, g)[2], {
      metric: { pod: "p3" },
      values: [8],
    });
    // 2.x: incremental mean 1 → 1.5 → 1.5 + (4/3 - 1.5/3); 3.x: Kahan sum 7, then 7/3 + 0/3.
    const avg = sem === "prometheus2" ? 1.5 + (4 / 3 - 1.5 / 3) : 7 / 3;
    assert.deepEqual(run("avg by (ns) (m)", AGG_RAW.slice(0, 3), sem, g), [{
      metric: { ns: "a" },
      values: [avg],
    }]);
    assert.deepEqual(run("sum by (__name__) (m)", AGG_RAW.slice(0, 1), sem, g), [
      { metric: { __name__: "m" }, values: [1] },
    ]);
  }
});

Deno.test("sum: plain addition in 2.x, Kahan-Neumaier in 3.x; sum_over_time compensated in both", () => {
  const raw = [
    series({ __name__: "k", a: "1" }, [[0, 1e16]]),
    series({ __name__: "k", a: "2" }, [[0, 1]]),
    series({ __name__: "k", a: "3" }, [[0, -1e16]]),
  ];
  const g = { start: 0, end: 0 };
  assert.deepEqual(run("sum(k)", raw, "prometheus2", g)[0]!.values, [0]);
  assert.deepEqual(run("sum(k)", raw, "prometheus3", g)[0]!.values, [1]);
  const one = [series({ __name__: "k" }, [[0, 1e16], [1000, 1], [2000, -1e16]])];
  for (const sem of BOTH) {
    assert.deepEqual(run("sum_over_time(k[1m])", one, sem, { start: 2000, end: 2000 })[0]!.values, [
      1,
    ]);
  }
});

// ---------------------------------------------------------------------------
// Binary operators

Deno.test("group_left copies the listed labels from the one side and drops __name__", () => {
  const raw = [
    series({ __name__: "lim", pod: "p1", ns: "a", c: "x" }, [[0, 2]]),
    series({ __name__: "lim", pod: "p1", ns: "a", c: "y" }, [[0, 3]]),
    series({ __name__: "lim", pod: "p2", ns: "a", c: "x" }, [[0, 5]]),
    series({ __name__: "info", pod: "p1", ns: "a", node: "n1", other: "o" }, [[0, 10]]),
  ];
  for (const sem of BOTH) {
    assert.deepEqual(
      run("lim * on(pod, ns) group_left(node) info", raw, sem, { start: 0, end: 0 }),
      [
        { metric: { c: "x", node: "n1", ns: "a", pod: "p1" }, values: [20] },
        { metric: { c: "y", node: "n1", ns: "a", pod: "p1" }, values: [30] },
      ],
    );
    // group_right: the right side is the many side, the left operand stays on the left.
    assert.deepEqual(run("info - on(pod, ns) group_right lim", raw, sem, { start: 0, end: 0 }), [
      { metric: { c: "x", ns: "a", pod: "p1" }, values: [8] },
      { metric: { c: "y", ns: "a", pod: "p1" }, values: [7] },
    ]);
    // one-to-one on(): only the `on` labels remain.
    assert.deepEqual(run("info / on(pod) lim{c='x'}", raw.slice(2), sem, { start: 0, end: 0 }), []);
    assert.deepEqual(
      run("info / on(pod) lim", [raw[0]!, raw[3]!], sem, { start: 0, end: 0 }),
      [{ metric: { pod: "p1" }, values: [5] }],
    );
    // Default one-to-one matching ignores only __name__.
    assert.deepEqual(
      run("lim + lim", raw.slice(0, 1), sem, { start: 0, end: 0 }),
      [{ metric: { c: "x", ns: "a", pod: "p1" }, values: [4] }],
    );
  }
});

Deno.test("binary: vector/scalar, scalar/scalar, clamp_max(x + 1, 1), unary minus", () => {
  const raw = [series({ __name__: "g", a: "1" }, [[0, -0.5], [60_000, 0.25], [120_000, 3]])];
  const g = { start: 0, end: 120_000 };
  for (const sem of BOTH) {
    assert.deepEqual(run("clamp_max(g + 1, 1)", raw, sem, g), [{
      metric: { a: "1" },
      values: [0.5, 1, 1],
    }]);
    assert.deepEqual(run("clamp_min(g, 0)", raw, sem, g), [{
      metric: { a: "1" },
      values: [0, 0.25, 3],
    }]);
    assert.deepEqual(run("2 / g", raw, sem, g)[0]!.values, [-4, 8, 2 / 3]);
    assert.deepEqual(run("-g", raw, sem, g)[0]!.values, [0.5, -0.25, -3]);
    assert.deepEqual(run("1 + 2 * 3", raw, sem, g), [{ metric: {}, values: [7, 7, 7] }]);
  }
});

Deno.test("set operators: and, unless, or (lowest precedence), with on()", () => {
  const raw = [
    series({ __name__: "a", x: "1" }, [[0, 1]]),
    series({ __name__: "b", x: "1" }, [[0, 10]]),
    series({ __name__: "c", x: "1" }, [[0, 100]]),
    series({ __name__: "c", x: "2" }, [[0, 200]]),
  ];
  const g = { start: 0, end: 0 };
  for (const sem of BOTH) {
    assert.deepEqual(run("a + b or c", raw, sem, g), [
      { metric: { __name__: "c", x: "2" }, values: [200] },
      { metric: { x: "1" }, values: [11] },
    ]);
    assert.deepEqual(run("c and a", raw, sem, g), [{
      metric: { __name__: "c", x: "1" },
      values: [100],
    }]);
    assert.deepEqual(run("c unless a", raw, sem, g), [{
      metric: { __name__: "c", x: "2" },
      values: [200],
    }]);
    assert.deepEqual(run("c and on() a", raw, sem, g).length, 2);
    assert.deepEqual(run("c unless on(x) b", raw, sem, g).length, 1);
  }
});

Deno.test("or: the right side fills in only at steps where the left side's group is absent", () => {
  const raw = [
    series({ __name__: "a", x: "1" }, [[0, 1]]),
    series({ __name__: "c", x: "1" }, [[0, 5], [600_000, 6]]),
  ];
  for (const sem of BOTH) {
    assert.deepEqual(run("a or c", raw, sem, { start: 0, end: 600_000, step: 600_000 }), [
      { metric: { __name__: "a", x: "1" }, values: [1, null] },
      { metric: { __name__: "c", x: "1" }, values: [null, 6] },
    ]);
  }
});

Deno.test("errors: many-to-many, one-to-one multiple matches, same labelset, bad regex", () => {
  const raw = [
    series({ __name__: "l", pod: "p", c: "1" }, [[0, 1]]),
    series({ __name__: "r", pod: "p", z: "1" }, [[0, 1]]),
    series({ __name__: "r", pod: "p", z: "2" }, [[0, 1]]),
    series({ __name__: "l2", pod: "p", c: "2" }, [[0, 1]]),
  ];
  const lookup = (key: string) =>
    key.startsWith("{")
      ? raw.filter((s) => s.metric.__name__!.startsWith("l"))
      : key.includes("z=")
      ? raw.filter((s) => s.metric.z === "1")
      : byName(raw)(key);
  for (const semantics of BOTH) {
    const opts = { startMs: 0, endMs: 0, stepMs: 60_000, lookbackMs: LB, semantics };
    throwsLocal(
      () => evaluateRange(compiled("l * on(pod) group_left r"), lookup, opts),
      "found duplicate series for the match group",
    );
    throwsLocal(
      () => evaluateRange(compiled('{__name__=~"l|l2"} * on(pod) r{z="1"}'), lookup, opts),
      "multiple matches for labels",
    );
    // l{pod} and l2{pod} differ only in __name__, which arithmetic drops.
    const twins = (key: string) =>
      key.startsWith("{")
        ? [
          series({ __name__: "l", pod: "p" }, [[0, 1]]),
          series({ __name__: "l2", pod: "p" }, [[0, 1]]),
        ]
        : lookup(key);
    throwsLocal(
      () =>
        evaluateRange(compiled('{__name__=~"l|l2"} * on(pod) group_left r{z="1"}'), twins, opts),
      "grouping labels must ensure unique matches",
    );
    throwsLocal(
      () => evaluateRange(compiled('clamp_max({__name__=~"l|l2"}, 1)'), twins, opts),
      "same labelset",
    );
    throwsLocal(
      () => evaluateRange(compiled("label_replace(l, 'a', '$1', 'pod', '(')"), lookup, opts),
      "invalid regular expression in label_replace()",
    );
  }
});

// ---------------------------------------------------------------------------
// label_replace

Deno.test("label_replace: groups, $1x, ${1}x, $$, no match, empty result deletes", () => {
  const raw = [series({ __name__: "s", pod: "web-1", ns: "a" }, [[0, 1]])];
  const g = { start: 0, end: 0 };
  const cases: [string, Record<string, string>][] = [
    ["label_replace(s, 'd', '$2/$1', 'pod', '(.*)-(.*)')", { d: "1/web" }],
    ["label_replace(s, 'd', '${1}x', 'pod', '(w)(.*)')", { d: "wx" }],
    ["label_replace(s, 'd', '$1x', 'pod', '(w)(.*)')", {}],
    ["label_replace(s, 'd', '$$1', 'pod', '(.*)')", { d: "$1" }],
    ["label_replace(s, 'd', '$name', 'pod', '(?P<name>w)eb.*')", { d: "w" }],
    ["label_replace(s, 'd', 'x', 'pod', 'web')", {}],
    ["label_replace(s, 'ns', '', 'pod', '.*')", { ns: "" }],
    ["label_replace(s, 'Hostname', '$1', 'node', '(.+)')", {}],
    ["label_replace(s, 'e', '$1', 'missing', '(.*)')", {}],
  ];
  for (const sem of BOTH) {
    for (const [expr, want] of cases) {
      const base: Record<string, string> = { __name__: "s", pod: "web-1", ns: "a" };
      for (const [k, v] of Object.entries(want)) {
        if (v === "") delete base[k];
        else base[k] = v;
      }
      assert.deepEqual(run(expr, raw, sem, g), [{ metric: base, values: [1] }], `${sem} ${expr}`);
    }
  }
});

Deno.test("label_replace: . does not match a newline in 2.x, does in 3.x", () => {
  const raw = [series({ __name__: "s", pod: "a\nb" }, [[0, 1]])];
  const expr = "label_replace(s, 'd', '$1', 'pod', '(.*)')";
  assert.deepEqual(run(expr, raw, "prometheus2", { start: 0, end: 0 })[0]!.metric.d, undefined);
  assert.deepEqual(run(expr, raw, "prometheus3", { start: 0, end: 0 })[0]!.metric.d, "a\nb");
});

// ---------------------------------------------------------------------------
// Output order

Deno.test("output is sorted by labels.Compare (UTF-8 order, a prefix first)", () => {
  const raw = [
    series({ __name__: "o", a: "9" }, [[0, 1]]),
    series({ __name__: "o", a: "10" }, [[0, 2]]),
    series({ __name__: "o", a: "1", b: "x" }, [[0, 3]]),
    series({ __name__: "o", a: "1" }, [[0, 4]]),
    series({ __name__: "o", b: "0" }, [[0, 5]]),
    series({ __name__: "o", a: "\u{1F600}" }, [[0, 6]]),
    series({ __name__: "o", a: "\uFF01" }, [[0, 7]]),
  ];
  for (const sem of BOTH) {
    assert.deepEqual(run("o * 1", raw, sem, { start: 0, end: 0 }).map((s) => s.values[0]), [
      4,
      3,
      2,
      1,
      7,
      6,
      5,
    ]);
  }
});

// ---------------------------------------------------------------------------
// Subqueries

/** One sample per minute at `phase` ms past each minute, value = minute index, from 0 to `minutes`. */
function perMinute(metric: Record<string, string>, minutes: number, phase = 0): RawSeries {
  const points: [number, number][] = [];
  for (let m = 0; m <= minutes; m++) points.push([m * 60_000 + phase, m]);
  return series(metric, points);
}

Deno.test("subquery: steps at multiples of the step; left edge closed in 2.x, open in 3.x", () => {
  const raw = [perMinute({ __name__: "x" }, 120)];
  // Outer steps at 30 min and 45 min: subquery steps 15:00 … 30:00 (2.x: 16 of them) or 16:00 … 30:00.
  for (const [sem, count] of [["prometheus2", 16], ["prometheus3", 15]] as const) {
    assert.deepEqual(
      run("count_over_time(x[15m:])", raw, sem, {
        start: 1_800_000,
        end: 2_700_000,
        step: 900_000,
      }),
      [
        { metric: {}, values: [count, count] },
      ],
    );
  }
  // An outer step off the minute grid: the subquery steps stay on multiples of the minute.
  for (const sem of BOTH) {
    assert.deepEqual(
      run("min_over_time(x[15m:])", raw, sem, { start: 1_830_000, end: 1_830_000 }),
      [{ metric: {}, values: [16] }], // 15:30 → first subquery step 16:00
    );
    assert.deepEqual(
      run("max_over_time(x[15m:])", raw, sem, { start: 1_830_000, end: 1_830_000 }),
      [{ metric: {}, values: [30] }],
    );
  }
});

Deno.test("subquery: explicit step, offset, default step option, nested and rate inside", () => {
  const raw = [perMinute({ __name__: "x", a: "1" }, 240, 1_000)];
  const grid = { start: 3_600_000, end: 3_600_000 };
  for (const sem of BOTH) {
    const open = sem === "prometheus3" ? 0 : 1;
    // [15m:5m]: steps 45:00 (2.x only), 50:00, 55:00, 60:00; values = the sample of the minute before.
    assert.deepEqual(run("count_over_time(x[15m:5m])", raw, sem, grid)[0]!.values, [3 + open]);
    assert.deepEqual(run("min_over_time(x[15m:5m])", raw, sem, grid)[0]!.values, [open ? 44 : 49]);
    // offset 10m: the window ends at 50:00.
    assert.deepEqual(run("max_over_time(x[15m:] offset 10m)", raw, sem, grid)[0]!.values, [49]);
    // The default resolution comes from the compile options or the evaluation options.
    const c = compileLocal("count_over_time(x[15m:])", { lookbackMs: LB, subqueryStepMs: 300_000 });
    assert.ok(c.ok);
    const opts = {
      startMs: 3_600_000,
      endMs: 3_600_000,
      stepMs: 60_000,
      lookbackMs: LB,
      semantics: sem,
    };
    assert.equal(evaluateRange(c.query, () => raw, opts)[0]!.values[0], 3 + open);
    assert.equal(
      evaluateRange(c.query, () => raw, { ...opts, subqueryStepMs: 60_000 })[0]!.values[0],
      15 + open,
    );
    // rate inside a subquery (a counter rising by 1 per minute: 1/60 per second everywhere).
    const r = run("avg_over_time(sum by (a) (rate(x[5m]))[15m:])", raw, sem, grid);
    assert.deepEqual(r.map((s) => s.metric), [{ a: "1" }]);
    assert.ok(Math.abs(r[0]!.values[0]! - 1 / 60) < 1e-12, String(r[0]!.values[0]));
    // Nested: the max over 30 minutes of 15-minute averages.
    const nested = run("max_over_time(avg_over_time(x[15m:])[30m:])", raw, sem, grid);
    assert.deepEqual(nested[0]!.values, [open ? 51.5 : 52]);
  }
});

Deno.test("subquery: the metric name is dropped, last_over_time keeps it; same labels after the drop", () => {
  const raw = [perMinute({ __name__: "x", a: "1" }, 60), perMinute({ __name__: "y", a: "1" }, 60)];
  const grid = { start: 3_600_000, end: 3_600_000 };
  for (const sem of BOTH) {
    assert.deepEqual(run("max_over_time(x[15m:])", raw, sem, grid), [{
      metric: { a: "1" },
      values: [60],
    }]);
    assert.deepEqual(run("last_over_time(x[15m:])", raw, sem, grid), [
      { metric: { __name__: "x", a: "1" }, values: [60] },
    ]);
  }
  const both = compiled(`max_over_time({__name__=~"x|y"}[15m:])`);
  const all = () => raw;
  const opts = { startMs: 3_600_000, endMs: 3_600_000, stepMs: 60_000, lookbackMs: LB };
  for (const sem of BOTH) {
    assert.throws(
      () => evaluateRange(both, all, { ...opts, semantics: sem }),
      (e) => e instanceof BridgeError && /same labelset/.test(e.message),
    );
  }
});

Deno.test("subquery: a window coarser than the step grid evaluates only the needed steps", () => {
  // Outer step 1 h, range 5m: the inner selector is evaluated at 5 (or 6) times per hour only.
  const raw = [perMinute({ __name__: "x" }, 180)];
  for (const sem of BOTH) {
    const out = run("count_over_time(x[5m:])", raw, sem, {
      start: 3_600_000,
      end: 10_800_000,
      step: 3_600_000,
    });
    assert.deepEqual(out[0]!.values, sem === "prometheus2" ? [6, 6, 6] : [5, 5, 5]);
  }
});

// ---------------------------------------------------------------------------
// Compilation

const keysAndMargins = (q: LocalQuery) =>
  q.selectors.map(({ key, marginMs }) => ({ key, marginMs }));

Deno.test("compileLocal: canonical selector keys and margins", () => {
  const c = compileLocal(
    `rate(x{b='2', a=~"1|2"}[15m]) + on(a) x{a=~'1|2',b="2"} or ({__name__="x", b="2", a=~"1|2"} offset 1m)`,
    { lookbackMs: LB },
  );
  assert.ok(c.ok);
  assert.deepEqual(keysAndMargins(c.query), [{ key: 'x{a=~"1|2",b="2"}', marginMs: 900_000 }]);
  const e = compileLocal(`x{a="1"} + (x{a="1"} offset 10m)`, { lookbackMs: LB });
  assert.ok(e.ok);
  assert.deepEqual(keysAndMargins(e.query), [{ key: 'x{a="1"}', marginMs: 900_000 }]);
  const d = compileLocal(
    `kube_pod_status_phase{phase='Running', clusterID="c\\"1"} + kube_node_role`,
    {
      lookbackMs: 60_000,
    },
  );
  assert.ok(d.ok);
  assert.deepEqual(keysAndMargins(d.query), [
    { key: 'kube_pod_status_phase{clusterID="c\\"1",phase="Running"}', marginMs: 60_000 },
    { key: "kube_node_role", marginMs: 60_000 },
  ]);
  // The parts behind each key: the metric name, and the matchers in key order.
  assert.deepEqual(d.query.selectors.map((s) => s.parts), [
    {
      metric: "kube_pod_status_phase",
      matchers: [
        { name: "clusterID", op: "=", value: 'c"1' },
        { name: "phase", op: "=", value: "Running" },
      ],
    },
    { metric: "kube_node_role", matchers: [] },
  ]);
  assert.equal(
    canonicalSelector(d.query.selectors[0]!.parts!.metric, d.query.selectors[0]!.parts!.matchers)
      .key,
    d.query.selectors[0]!.key,
  );
});

Deno.test("compileLocal: subquery margins add range, offset and one step of slack", () => {
  const cases: [string, number | undefined, number][] = [
    ["avg_over_time(sum(rate(x[5m]))[15m:])", undefined, 5 * 60_000 + 15 * 60_000 + 60_000],
    ["avg_over_time(sum(rate(x[5m]))[15m:])", 30_000, 5 * 60_000 + 15 * 60_000 + 30_000],
    ["max_over_time(x[15m:5m] offset 10m)", undefined, LB + 15 * 60_000 + 10 * 60_000 + 300_000],
    [
      "max_over_time(max_over_time(x[10m:])[30m:])",
      undefined,
      LB + 600_000 + 60_000 + 1_800_000 + 60_000,
    ],
    ["max_over_time(x[15m:]) + x", undefined, LB + 15 * 60_000 + 60_000],
  ];
  for (const [expr, subqueryStepMs, margin] of cases) {
    const c = compileLocal(expr, { lookbackMs: LB, ...(subqueryStepMs ? { subqueryStepMs } : {}) });
    assert.ok(c.ok, expr);
    assert.deepEqual(keysAndMargins(c.query), [{ key: "x", marginMs: margin }], expr);
  }
  assert.equal(compileLocal("x", { lookbackMs: LB, subqueryStepMs: 0 }).ok, false);
});

Deno.test("compileLocal: all 56 ROS queries compile, per cluster and batched", () => {
  assert.equal(ROS_QUERIES.length, 56);
  const single = planRosQueries({ clusterLabel: "clusterID", clusterId: "c1", rateWindow: "15m" });
  const batch = planBatchRosQueries({
    clusterLabel: "clusterID",
    clusterIds: ["c1", "a.b|c", "d\\e"],
    rateWindow: "15m",
  });
  let subqueries = 0;
  for (const p of [...single, ...batch]) {
    const c = compileLocal(p.expr, { lookbackMs: LB });
    assert.ok(c.ok, `${p.query.name}: ${c.ok ? "" : c.reason}`);
    assert.ok(c.query.selectors.length > 0);
    const sub = p.expr.includes(":]");
    if (sub) subqueries++;
    for (const s of c.query.selectors) {
      assert.ok(s.key.includes("clusterID"), s.key);
      // Instant: the lookback; [15m] windows: 15m; inside [15m:]: 15m + 1m + (lookback or 15m).
      const allowed = [LB, 900_000, 960_000 + LB, 960_000 + 900_000];
      assert.ok(allowed.includes(s.marginMs), `${p.query.name}: ${s.key} ${s.marginMs}`);
      if (sub && /container_cpu_cfs_throttled/.test(s.key)) assert.equal(s.marginMs, 1_860_000);
    }
  }
  assert.equal(subqueries, 2 * 16);
});

Deno.test("compileLocal: refusals name the construct and its offset", () => {
  const cases: [string, string][] = [
    ["x[1h:5m]", "matrix result"],
    ["max_over_time((x[5m])[1h:])", "subquery of a matrix at 14"],
    ["max_over_time(1[1h:])", "subquery of a scalar"],
    ["max_over_time(x[1h:0s])", "subquery step of zero"],
    ["max_over_time((x[1h:]) offset 5m)", "offset on anything but a selector"],
    ["max_over_time(x[1h:] @ 100)", "@ modifier"],
    ["quantile_over_time(0.5, x[1h:])", "function quantile_over_time"],
    ["x @ 100", "@ modifier"],
    ["topk(3, x)", "aggregation topk"],
    ["x > bool 1", "bool modifier"],
    ["x > 1", "operator >"],
    ["histogram_quantile(0.9, x)", "function histogram_quantile"],
    ["x offset -1m", "negative offset"],
    ['"a"', "string result"],
    ["x[5m]", "matrix result"],
    ["rate(x)", "rate of a vector"],
    ["x ^ 2", "operator ^"],
    // String literals Prometheus's lexer rejects (not UTF-8; a U+FFFD rune).
    ['x{a="\\xff"}', "Prometheus would reject"],
    ['x{a="\uFFFD"}', "Prometheus would reject"],
  ];
  for (const [expr, want] of cases) {
    const c = compileLocal(expr, { lookbackMs: LB });
    assert.equal(c.ok, false, expr);
    if (!c.ok) assert.ok(c.reason.includes(want), `${expr}: ${c.reason} lacks ${want}`);
  }
});

Deno.test("compileLocal: all 36 cost queries compile, per cluster and batched", () => {
  assert.equal(COST_QUERIES.length, 36);
  const single = planQueries(COST_QUERIES, {
    clusterLabel: "clusterID",
    clusterId: "c1",
    rateWindow: "15m",
  });
  const batch = planBatchQueries(COST_QUERIES, {
    clusterLabel: "clusterID",
    clusterIds: ["c1", "a.b|c", "d\\e"],
    rateWindow: "15m",
  });
  for (const p of [...single, ...batch]) {
    const c = compileLocal(p.expr, { lookbackMs: LB });
    assert.ok(c.ok, `${p.query.name}: ${c.ok ? "" : c.reason}`);
    assert.ok(c.query.selectors.length > 0);
    for (const s of c.query.selectors) {
      assert.ok(s.key.includes("clusterID"), s.key);
      assert.ok(s.marginMs === LB || s.marginMs === 900_000, `${s.key} ${s.marginMs}`);
    }
  }
  const b = compileLocal(batch[0]!.expr, { lookbackMs: LB });
  assert.ok(
    b.ok &&
      b.query.selectors.some((s) => s.key.includes('clusterID=~"c1|a\\\\.b\\\\|c|d\\\\\\\\e"')),
  );
});

Deno.test("a catalogue query end to end: GPU `or` with nested label_replace", () => {
  const gpu = COST_QUERIES.find((q) => q.expr.includes("clamp_max"))!;
  const expr =
    planQueries([gpu], { clusterLabel: "clusterID", clusterId: "c1", rateWindow: "15m" })[0]!.expr;
  const raw = [
    series({
      __name__: "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
      clusterID: "c1",
      UUID: "u1",
      exported_pod: "p",
      exported_namespace: "n",
      Hostname: "h",
      modelName: "m",
      GPU_I_ID: "0",
    }, [[0, 0.5]]),
    series({
      __name__: "kube_pod_status_phase",
      clusterID: "c1",
      pod: "p",
      namespace: "n",
      phase: "Running",
    }, [[
      0,
      1,
    ]]),
  ];
  for (const sem of BOTH) {
    assert.deepEqual(run(expr, raw, sem, { start: 0, end: 0 }), [{
      metric: {
        GPU_I_ID: "0",
        Hostname: "h",
        UUID: "u1",
        exported_namespace: "n",
        exported_pod: "p",
        modelName: "m",
      },
      values: [1],
    }]);
  }
});

// ---------------------------------------------------------------------------
// Result arrays: slabs and a recycled pool

Deno.test("a recycled SlabPool gives the same results as fresh arrays, across slab boundaries", () => {
  // 1,300 series of 61 steps: many 64 KiB slabs of values, several of presence flags.
  const raw: RawSeries[] = [];
  for (let i = 0; i < 1_300; i++) {
    const label = String(i).padStart(4, "0");
    // Present only in part of the hour (a gap per series), values distinct per series and minute.
    const points: [number, number][] = [];
    for (let m = 0; m <= 60; m++) if ((m + i) % 7 !== 0) points.push([m * 60_000, i * 1_000 + m]);
    raw.push(series({ __name__: "x", pod: label, ns: String(i % 13) }, points));
    // y: namespaces 0-6 only, present at 00-05 and 30-35.
    if (i < 300) {
      raw.push(
        series({ __name__: "y", ns: String(i % 7), node: `n${i}` }, [[0, i], [1_800_000, -i]]),
      );
    }
  }
  const queries = [
    "x",
    "sum by (ns) (x)",
    "avg without (pod) (x)",
    "count by (ns) (x) or max by (ns) (x) * 2",
    "max_over_time(x[5m]) - on (pod) group_left x",
    "min by (ns) (rate(x[5m]))",
    "x and on (ns) y",
    "clamp_max(-x, -5) unless on (ns) y",
    "max_over_time(sum by (ns) (x)[10m:2m])",
  ];
  const pool = new SlabPool(1 << 16);
  let held = 0;
  for (const sem of BOTH) {
    for (let round = 0; round < 2; round++) {
      for (const expr of queries) {
        const options = {
          startMs: 0,
          endMs: 3_600_000,
          stepMs: 60_000,
          lookbackMs: LB,
          semantics: sem,
        };
        const want = evaluateRange(compiled(expr), byName(raw), options);
        pool.reset();
        const got = evaluateRange(compiled(expr), byName(raw), { ...options, pool });
        assert.equal(got.length, want.length, `${sem} ${expr}: series`);
        for (let i = 0; i < want.length; i++) {
          assert.deepEqual(got[i]!.metric, want[i]!.metric, `${sem} ${expr}: labels`);
          assert.deepEqual([...got[i]!.present], [...want[i]!.present], `${sem} ${expr}: presence`);
          assert.deepEqual([...got[i]!.values], [...want[i]!.values], `${sem} ${expr}: values`);
        }
      }
      // The second round reuses the first round's buffers: the pool does not grow.
      if (round === 0) held = pool.bytes;
      else assert.equal(pool.bytes, held, `${sem}: pool grew from ${held} to ${pool.bytes} bytes`);
    }
  }
  assert.ok(held > 20 * (1 << 16), `the test must cross slabs (pool holds ${held} bytes)`);
  // Released: every buffer is detached, and the pool starts again from nothing.
  const kept = new StepArrays(61, pool).values();
  pool.release();
  assert.equal(kept.length, 0);
  assert.equal(pool.bytes, 0);
  assert.equal(new StepArrays(61, pool).values().length, 61);
});

Deno.test("SlabPool: a reset buffer comes back zeroed; without a reset nothing is reused", () => {
  const pool = new SlabPool(1 << 16);
  const a = new StepArrays(10, pool);
  const v = a.values();
  const p = a.present();
  v.fill(7);
  p.fill(1);
  const bytes = pool.bytes;
  // Without a reset, new arrays never overlap the old ones.
  const b = new StepArrays(10, pool);
  b.values().fill(3);
  b.present().fill(1);
  assert.ok(pool.bytes > bytes);
  assert.deepEqual([...v], new Array(10).fill(7));
  pool.reset();
  const c = new StepArrays(10, pool);
  const w = c.values();
  const q = c.present();
  assert.deepEqual([...w], new Array(10).fill(0));
  assert.deepEqual([...q], new Array(10).fill(0));
  // A series longer than a slab gets an array of its own.
  const small = new SlabPool(1_024);
  const long = new StepArrays(200, small).values();
  assert.equal(long.length, 200);
  assert.equal(long.buffer.byteLength, 1_600);
  assert.equal(small.bytes, 0);
  assert.throws(() => new SlabPool(4), RangeError);
});

Deno.test("StepArrays.reuse: given-back arrays come back zeroed, once each, before new slabs are cut", () => {
  const pool = new SlabPool(1 << 16);
  const a = new StepArrays(10, pool);
  const v = a.values().fill(7);
  const p = a.present().fill(1);
  const bytes = pool.bytes;
  // Listed twice, and with an array of another length: each of ours comes back once, the other never.
  a.reuse([v, v, new Float64Array(11)], [p, p]);
  const w = a.values();
  const q = a.present();
  assert.equal(w, v);
  assert.equal(q, p);
  assert.deepEqual([...w], new Array(10).fill(0));
  assert.deepEqual([...q], new Array(10).fill(0));
  const fresh = a.values();
  assert.notEqual(fresh, v);
  assert.notEqual(a.present(), p);
  assert.equal(fresh.length, 10);
  assert.equal(pool.bytes, bytes);
});

Deno.test("evaluation gives consumed arrays back and streams selectors into aggregations, with exact results", () => {
  // 1,300 series of 61 steps, 13 namespaces: materialized, x alone would take 1,300 × 61 × 9 bytes.
  const raw: RawSeries[] = [];
  const valueAt = (i: number, m: number) => ((i * 37 + m * 11) % 101) / 4 - 3;
  for (let i = 0; i < 1_300; i++) {
    const points: [number, number][] = [];
    for (let m = 0; m <= 60; m++) if ((m + i) % 5 !== 0) points.push([m * 60_000, valueAt(i, m)]);
    raw.push(
      series({ __name__: "x", pod: String(i).padStart(4, "0"), ns: String(i % 13) }, points),
    );
  }
  const options = { startMs: 0, endMs: 3_600_000, stepMs: 60_000, lookbackMs: LB };
  const materialized = 1_300 * 61 * 9;
  for (const semantics of BOTH) {
    // Streamed: the pool holds the 13 groups, not the 1,300 input series.
    for (const expr of ["sum by (ns) (x)", "max by (ns) (max_over_time(x[2m]))"]) {
      const pool = new SlabPool(1 << 14);
      const out = evaluateRange(compiled(expr), byName(raw), { ...options, semantics, pool });
      assert.equal(out.length, 13);
      assert.ok(
        pool.bytes < materialized / 4,
        `${semantics} ${expr}: pool holds ${pool.bytes} bytes`,
      );
    }
    // Chained binary operations over arrays given back and handed out again: every value is exact.
    const pool = new SlabPool(1 << 14);
    const out = evaluateRange(
      compiled("(x * on (pod) group_left x) + on (pod) (x * 2) - on (pod) sum by (pod) (x)"),
      byName(raw),
      { ...options, semantics, pool },
    );
    assert.equal(out.length, 1_300);
    for (const s of out) {
      const i = Number(s.metric.pod);
      for (let k = 0; k <= 60; k++) {
        // The lookback carries the sample before a gap: the value at minute k is the last one at or before it.
        let m = k;
        while (m >= 0 && (m + i) % 5 === 0) m--;
        const x = m < 0 ? null : valueAt(i, m);
        assert.equal(
          s.present[k],
          x === null ? 0 : 1,
          `${semantics} pod ${i} minute ${k}: presence`,
        );
        if (x !== null) {
          assert.equal(s.values[k], x * x + x * 2 - x, `${semantics} pod ${i} minute ${k}: value`);
        }
      }
    }
  }
});

Deno.test("raw series whose label sets are equal (an empty value is no label) merge; a shared timestamp keeps the first", () => {
  const raw = [
    series({ __name__: "x", a: "2" }, [[0, 20]]),
    series({ __name__: "x", a: "1", b: "" }, [[0, 1], [120_000, 3]]),
    series({ __name__: "x", a: "1" }, [[60_000, 2], [120_000, 99]]),
    series({ __name__: "x", a: "1", c: "" }, [[180_000, 4]]),
  ];
  for (const sem of BOTH) {
    const grid = { start: 0, end: 180_000 };
    assert.deepEqual(run("x", raw, sem, grid), [
      { metric: { __name__: "x", a: "1" }, values: [1, 2, 3, 4] },
      { metric: { __name__: "x", a: "2" }, values: [20, 20, 20, 20] },
    ]);
    assert.deepEqual(run("count_over_time(x[3m])", raw, sem, grid)[0]!.values, [
      1,
      2,
      3,
      sem === "prometheus3" ? 3 : 4,
    ]);
  }
});

Deno.test("evaluateRange: raw series that give their labels as arrays evaluate as from `metric`, and the arrays win", () => {
  const plain = [
    series({ __name__: "m", pod: "b", ns: "x" }, [[0, 1], [60_000, 2]]),
    series({ __name__: "m", pod: "a", ns: "x" }, [[0, 5]]),
  ];
  const arrays: RawSeries[] = plain.map((s) => {
    const names = Object.keys(s.metric).sort();
    // `metric` is wrong on purpose: the evaluator must read the arrays.
    return { ...s, metric: {}, names, values: names.map((n) => s.metric[n]!) };
  });
  const grid = { start: 0, end: 120_000 };
  for (const expr of ["m", "sum by (pod) (m)", "max(m) by (ns)"]) {
    for (const sem of ["prometheus2", "prometheus3"] as const) {
      const want = run(expr, plain, sem, grid);
      const got = evaluateRange(compiled(expr), () => arrays, {
        startMs: grid.start,
        endMs: grid.end,
        stepMs: 60_000,
        lookbackMs: LB,
        semantics: sem,
      }).map((s) => ({
        metric: { ...s.metric },
        values: [...s.values].map((v, i) => (s.present[i] === 1 ? v : null)),
      }));
      assert.deepEqual(got, want, `${expr} ${sem}`);
      assert.ok(want.length > 0);
    }
  }
});

Deno.test("a join read one 'many' series at a time gives what the whole-side join gives, errors included", () => {
  // `m + 0` is the same series without the metric name, but not a selector: its join is
  // evaluated with both sides whole. Pods move between nodes (two 'one' series per pod over
  // time), 'many' series have gaps, and pod p3 has no 'one' series at all.
  const raw: RawSeries[] = [];
  const at = (m: number, v: number): [number, number] => [m * 60_000, v];
  for (let i = 0; i < 12; i++) {
    const pod = `p${i % 4}`;
    const points: [number, number][] = [];
    for (let m = 0; m <= 30; m++) {
      if ((m + i) % 7 !== 0) points.push(at(m, (i * 13 + m * 7) % 23 - 5));
    }
    raw.push(series({ __name__: "m", pod, ns: `n${i % 3}`, c: `c${i}` }, points));
  }
  for (let p = 0; p < 3; p++) {
    // Node a until minute 12, node b from minute 18 (after a's lookback has passed).
    raw.push(
      series({ __name__: "o", pod: `p${p}`, ns: "n0", node: "a" }, [at(0, p + 2), at(12, p + 3)]),
    );
    raw.push(
      series({ __name__: "o", pod: `p${p}`, ns: "n0", node: "b" }, [at(18, p + 5), at(30, 1)]),
    );
    for (const ns of ["n1", "n2"]) {
      raw.push(series({ __name__: "o", pod: `p${p}`, ns, node: "a" }, [at(0, 2), at(30, 2)]));
    }
  }
  const grid = { start: 0, end: 30 * 60_000 };
  const pairs: [string, string][] = [
    ["m * on(pod, ns) group_left(node) o", "(m + 0) * on(pod, ns) group_left(node) o"],
    ["m / on(pod, ns) group_left o", "(m + 0) / on(pod, ns) group_left o"],
    ["o - on(pod, ns) group_right(node) m", "o - on(pod, ns) group_right(node) (m + 0)"],
    [
      "sum by (ns, node) (m * on(pod, ns) group_left(node) o)",
      "sum by (ns, node) ((m + 0) * on(pod, ns) group_left(node) o)",
    ],
    [
      "avg by (pod) (max_over_time(m[3m]) * on(pod, ns) group_left o)",
      "avg by (pod) ((max_over_time(m[3m]) + 0) * on(pod, ns) group_left o)",
    ],
    [
      "max without (c) (rate(m[5m]) * on(pod, ns) group_left(node) o)",
      "max without (c) ((rate(m[5m]) + 0) * on(pod, ns) group_left(node) o)",
    ],
    // `c` differs between 'many' series: copying it from the 'one' side could merge them,
    // so this join is not streamed; the results are the same either way.
    ["m * on(pod, ns) group_left(c) o", "(m + 0) * on(pod, ns) group_left(c) o"],
  ];
  for (const sem of BOTH) {
    for (const [streamed, whole] of pairs) {
      const got = run(streamed, raw, sem, grid);
      assert.ok(got.length > 0, `${sem} ${streamed}: no result`);
      assert.deepEqual(got, run(whole, raw, sem, grid), `${sem} ${streamed}`);
    }
    // Two 'one' series for a match group: an error at the first such step where the 'many' side
    // has any point (Prometheus checks the sides only when neither is empty), with the same
    // message; none when the 'many' side is empty at those steps.
    const dup = [
      ...raw,
      series({ __name__: "o", pod: "p1", ns: "n1", node: "z" }, [at(2, 1)]),
    ];
    const message = (expr: string): string => {
      try {
        run(expr, dup, sem, grid);
      } catch (e) {
        assert.ok(e instanceof BridgeError, `${e}`);
        return e.message.replaceAll("(m + 0)", "m");
      }
      return "";
    };
    const streamedMessage = message("m * on(pod, ns) group_left(node) o");
    assert.match(
      streamedMessage,
      /found duplicate series for the match group \{ns="n1", pod="p1"\}/,
    );
    assert.match(streamedMessage, /at 1970-01-01T00:02:00\.000Z/);
    assert.equal(streamedMessage, message("(m + 0) * on(pod, ns) group_left(node) o"));
    const quiet = dup.map((s) =>
      s.metric.__name__ === "m"
        ? series(
          s.metric,
          [...s.t].map((t, k) => [t, s.v[k]!] as [number, number]).filter(([t]) =>
            t >= 10 * 60_000
          ),
        )
        : s
    );
    assert.ok(run("m * on(pod, ns) group_left(node) o", quiet, sem, grid).length > 0);
  }
});

Deno.test("an aggregation over a join with a small 'one' side holds the groups, not the join's series", () => {
  const raw: RawSeries[] = [];
  for (let i = 0; i < 1_300; i++) {
    const points: [number, number][] = [];
    for (let m = 0; m <= 60; m++) points.push([m * 60_000, (i + m) % 17]);
    raw.push(series({ __name__: "x", pod: String(i), ns: String(i % 13) }, points));
  }
  for (let ns = 0; ns < 13; ns++) {
    raw.push(series({ __name__: "w", ns: String(ns), team: `t${ns % 2}` }, [[0, ns + 1]]));
  }
  const materialized = 1_300 * 61 * 9;
  for (const semantics of BOTH) {
    const pool = new SlabPool(1 << 14);
    const out = evaluateRange(
      compiled("sum by (team) (x * on(ns) group_left(team) w)"),
      byName(raw),
      { startMs: 0, endMs: 3_600_000, stepMs: 60_000, lookbackMs: LB, semantics, pool },
    );
    assert.equal(out.length, 2);
    assert.ok(pool.bytes < materialized / 4, `${semantics}: pool holds ${pool.bytes} bytes`);
    // Minute 0: Σ over pods of ((i + 0) % 17) × (ns + 1), split by the parity of ns.
    let even = 0;
    for (let i = 0; i < 1_300; i++) if ((i % 13) % 2 === 0) even += (i % 17) * ((i % 13) + 1);
    assert.equal(out.find((s) => s.metric.team === "t0")!.values[0], even);
  }
});
