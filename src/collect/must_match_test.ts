import assert from "node:assert/strict";
import { parser } from "@prometheus-io/lezer-promql";
import {
  type Emptiness,
  emptinessOf,
  mustBeEmpty,
  presentIn,
  PROBE_LABEL,
  type ProbeAtom,
  probeAtoms,
  probeQuery,
  readProbeAnswer,
} from "./must_match.ts";
import { COST_QUERIES } from "./catalogue.ts";
import { ROS_QUERIES } from "./ros_catalogue.ts";
import { planQueries, serverExpr } from "./query_plan.ts";
import { planRosQueries } from "./ros_plan.ts";

const NEVER: Emptiness = { kind: "never" };
const A = (atom: string, marginSeconds = 300): Emptiness => ({
  kind: "absent",
  atom,
  marginSeconds,
});
const any = (...of: Emptiness[]): Emptiness => ({ kind: "any", of });
const all = (...of: Emptiness[]): Emptiness => ({ kind: "all", of });

// ---------------------------------------------------------------------------
// emptinessOf: one row per rule.

const RULES: readonly (readonly [string, Emptiness])[] = [
  // Selectors: the atom is the selector text as written; instant ones need the lookback.
  ["x", A("x")],
  ['x{a="b", c!~"d|e"}', A('x{a="b", c!~"d|e"}')],
  ['{"a.b", c="d"}', A('{"a.b", c="d"}')],
  ['{__name__="x"}', A('{__name__="x"}')],
  ["x[10m]", A("x", 600)],
  ["x[90]", A("x", 90)],
  // Aggregations: the vector argument is the last one.
  ["sum by (a) (x)", A("x")],
  ["count without (a) (x)", A("x")],
  ["topk(3, x)", A("x")],
  ['count_values("v", x)', A("x")],
  ["quantile(0.5, x)", A("x")],
  ["group(x)", A("x")],
  // Functions with a vector argument.
  ["rate(x[5m])", A("x", 300)],
  ["increase(x[1h])", A("x", 3600)],
  ["max_over_time(x[15m])", A("x", 900)],
  ["last_over_time(x[2m])", A("x", 120)],
  ["quantile_over_time(0.9, x[5m])", A("x", 300)],
  ["predict_linear(x[10m], 60)", A("x", 600)],
  ["clamp_max(x, 1)", A("x")],
  ["clamp_min(x, 0)", A("x")],
  ["clamp(x, 0, 1)", A("x")],
  ['label_replace(x, "a", "$1", "b", "(.*)")', A("x")],
  ['label_join(x, "a", ",", "b", "c")', A("x")],
  ["sort(x)", A("x")],
  ["sort_desc(x)", A("x")],
  ["abs(x)", A("x")],
  ["round(x, 0.5)", A("x")],
  ["timestamp(x)", A("x")],
  ["histogram_quantile(0.9, x)", A("x")],
  ["hour(x)", A("x")],
  // Parens, unary minus, offsets and subqueries add their windows to the margin.
  ["(x)", A("x")],
  ["-x", A("x")],
  ["x offset 5m", A("x", 600)],
  ["rate(x[5m] offset 1h)", A("x", 3900)],
  ["avg_over_time(sum(rate(x[5m]))[15m:])", A("x", 1200)],
  ["max_over_time((rate(x[5m]) offset 2m)[30m:1m] offset 1m)", A("x", 2280)],
  ["sum_over_time((x)[1h:1m] offset 1s)", A("x", 3901)],
  // Vector–vector arithmetic, comparison and `and`: either side.
  ["x * y", any(A("x"), A("y"))],
  ["x * on(a) group_left(b) y", any(A("x"), A("y"))],
  ["x / ignoring(a) group_right y", any(A("x"), A("y"))],
  ["x > y", any(A("x"), A("y"))],
  ["x > bool y", any(A("x"), A("y"))],
  ["x == y", any(A("x"), A("y"))],
  ["x atan2 y", any(A("x"), A("y"))],
  ["x ^ y", any(A("x"), A("y"))],
  ["x and y", any(A("x"), A("y"))],
  // `or`: both sides; `unless`: the left one.
  ["x or y", all(A("x"), A("y"))],
  ["x unless y", A("x")],
  ["x unless on(a) y", A("x")],
  // Vector–scalar: the vector side; scalar–scalar: never.
  ["x * 2", A("x")],
  ["2 - x", A("x")],
  ["x > 1", A("x")],
  ["x > bool 1", A("x")],
  ["scalar(y) * x", A("x")],
  ["1 + 2", NEVER],
  ["1 > bool 2", NEVER],
  // Never empty (or not known to be).
  ["1", NEVER],
  ['"s"', NEVER],
  ["time()", NEVER],
  ["pi()", NEVER],
  ["hour()", NEVER],
  ["vector(1)", NEVER],
  ["scalar(x)", NEVER],
  ["absent(x)", NEVER],
  ["absent_over_time(x[5m])", NEVER],
  ["x @ 100", NEVER],
  ["x @ end()", NEVER],
  ["x offset -5m", NEVER],
  ["rate(x[1m+1m])", NEVER],
  ["x or vector(0)", NEVER],
  ["x or absent(x)", NEVER],
  ["absent(x) unless x", NEVER],
  ["x + y or on() vector(0)", NEVER],
  // Simplification: flatten, dedupe (one margin per atom, the largest), absorb.
  ["x * x", A("x")],
  ["x * y * x", any(A("x"), A("y"))],
  ["x * (y * z)", any(A("x"), A("y"), A("z"))],
  ["x or (y or z)", all(A("x"), A("y"), A("z"))],
  ["x * rate(x[1h])", A("x", 3600)],
  ["x or x * y", A("x")],
  ["x * (x or y)", A("x")],
  ["(x * y) or (y * x)", any(A("x"), A("y"))],
  ["x * y or z", all(A("z"), any(A("x"), A("y")))],
  ["x * (y or z)", any(A("x"), all(A("y"), A("z")))],
  ["x offset 1h or y", all(A("x", 3900), A("y"))],
  ["x unless w or z * y", all(A("x"), any(A("y"), A("z")))],
  ["(x or vector(1)) * y", A("y")],
];

for (const [expr, expected] of RULES) {
  Deno.test(`emptinessOf: ${expr}`, () => {
    assert.deepEqual(emptinessOf(expr), expected);
  });
}

Deno.test("emptinessOf: the lookback delta is an option", () => {
  assert.deepEqual(emptinessOf("x", { lookbackDeltaSeconds: 60 }), A("x", 60));
  assert.deepEqual(emptinessOf("x[5m]", { lookbackDeltaSeconds: 60 }), A("x", 300));
  assert.deepEqual(
    emptinessOf("sum_over_time((x)[1h:1m] offset 1s)", { lookbackDeltaSeconds: 0 }),
    A("x", 3601),
  );
  assert.throws(() => emptinessOf("x", { lookbackDeltaSeconds: -1 }), RangeError);
  assert.throws(() => emptinessOf("x", { lookbackDeltaSeconds: NaN }), RangeError);
});

Deno.test("emptinessOf: a query that does not parse is refused", () => {
  for (const bad of ["sum(", "foo(x)", "x{a=}", "", "x y"]) {
    assert.throws(() => emptinessOf(bad), SyntaxError, bad);
  }
});

Deno.test("emptinessOf: an offset written after a binary operation widens every side (never narrower)", () => {
  // lezer-promql reads `x + y offset 1h` as `(x + y) offset 1h` where Prometheus reads
  // `x + (y offset 1h)`: the x window is then wider than needed, which is still sound.
  const e = emptinessOf("x + y offset 1h");
  assert.equal(e.kind, "any");
  const margins = new Map(probeAtoms([e]).map((a) => [a.atom, a.marginSeconds]));
  assert.ok(margins.get("x")! >= 300);
  assert.equal(margins.get("y"), 3900);
});

// ---------------------------------------------------------------------------
// mustBeEmpty

Deno.test("mustBeEmpty: evaluates the formula over present atoms", () => {
  const present = (...atoms: string[]) => (a: string) => atoms.includes(a);
  const e = emptinessOf("x * on(a) y or z unless w");
  // all(any(x, y), z)
  assert.equal(mustBeEmpty(e, present()), true);
  assert.equal(mustBeEmpty(e, present("w")), true);
  assert.equal(mustBeEmpty(e, present("x", "w")), true);
  assert.equal(mustBeEmpty(e, present("x", "y")), false);
  assert.equal(mustBeEmpty(e, present("z")), false);
  assert.equal(mustBeEmpty(NEVER, present()), false);
  assert.equal(mustBeEmpty(A("x"), present()), true);
  assert.equal(mustBeEmpty(A("x"), present("x")), false);
});

// ---------------------------------------------------------------------------
// probeAtoms

Deno.test("probeAtoms: deduplicated, largest margin, only atoms that can decide", () => {
  const atoms = probeAtoms([
    emptinessOf("rate(x[5m])"),
    emptinessOf("x offset 1h * y"),
    emptinessOf("z * w or vector(1)"),
    emptinessOf("absent(v)"),
    emptinessOf("u unless t"),
  ]);
  assert.deepEqual(atoms, [
    { atom: "x", marginSeconds: 3900 },
    { atom: "y", marginSeconds: 300 },
    { atom: "u", marginSeconds: 300 },
  ]);
  assert.deepEqual(probeAtoms([]), []);
  assert.deepEqual(probeAtoms([NEVER]), []);
});

// ---------------------------------------------------------------------------
// probeQuery

const X: ProbeAtom = { atom: 'x{clusterID=~"a|b"}', marginSeconds: 300 };
const Y: ProbeAtom = { atom: "y{clusterID=\"a\", l!=''}", marginSeconds: 900.5 };

Deno.test("probeQuery: one count per unique atom, tagged with its index, joined with or", () => {
  const q = probeQuery([X, Y, { ...X, marginSeconds: 600 }], "clusterID", 3600);
  assert.equal(
    q,
    `label_replace(count by (clusterID) (last_over_time(x{clusterID=~"a|b"}[4200s])), ` +
      `"${PROBE_LABEL}", "0", "", "") or ` +
      `label_replace(count by (clusterID) (last_over_time(y{clusterID="a", l!=''}[4501s])), ` +
      `"${PROBE_LABEL}", "1", "", "")`,
  );
  let errors = 0;
  parser.parse(q).iterate({
    enter(ref) {
      if (ref.type.isError) errors++;
    },
  });
  assert.equal(errors, 0);
  assert.deepEqual(emptinessOf(q).kind, "all");
  assert.equal(
    probeQuery([X], "cluster", 0),
    `label_replace(count by (cluster) (last_over_time(x{clusterID=~"a|b"}[300s])), ` +
      `"${PROBE_LABEL}", "0", "", "")`,
  );
});

Deno.test("probeQuery: refuses what it cannot ask", () => {
  assert.throws(() => probeQuery([], "clusterID", 60), RangeError);
  assert.throws(() => probeQuery([X], "cluster-id", 60), RangeError);
  assert.throws(() => probeQuery([X], "__cluster", 60), RangeError);
  assert.throws(() => probeQuery([X], PROBE_LABEL, 60), RangeError);
  assert.throws(() => probeQuery([X], "clusterID", -1), RangeError);
  assert.throws(() => probeQuery([X], "clusterID", Infinity), RangeError);
  assert.throws(() => probeQuery([{ atom: "x", marginSeconds: 0 }], "clusterID", 0), RangeError);
  assert.throws(() => probeQuery([{ atom: "x", marginSeconds: -5 }], "clusterID", 60), TypeError);
  for (const atom of ["rate(x[5m])", "x[5m]", "x) or vector(1", "x offset 1m", "x or y", ""]) {
    assert.throws(() => probeQuery([{ atom, marginSeconds: 60 }], "clusterID", 60), TypeError);
  }
});

// ---------------------------------------------------------------------------
// readProbeAnswer

const series = (cluster: string | undefined, index: string | undefined, extra = {}) => ({
  metric: {
    ...(cluster === undefined ? {} : { clusterID: cluster }),
    ...(index === undefined ? {} : { [PROBE_LABEL]: index }),
    ...extra,
  },
});

Deno.test("readProbeAnswer: maps every unique atom to the clusters that have it", () => {
  const atoms = [X, Y, X];
  const result = readProbeAnswer(
    [series("a", "0"), series("b", "0"), series("a", "1")],
    atoms,
    "clusterID",
  );
  assert.deepEqual(
    [...result].map(([k, v]) => [k, [...v].sort()]),
    [[X.atom, ["a", "b"]], [Y.atom, ["a"]]],
  );
  const none = readProbeAnswer([], atoms, "clusterID");
  assert.deepEqual([...none].map(([k, v]) => [k, v.size]), [[X.atom, 0], [Y.atom, 0]]);
});

Deno.test("readProbeAnswer: a malformed answer is an error naming the series", () => {
  const cases: [ReturnType<typeof series>, RegExp][] = [
    [series("a", "2"), /names atom 2/],
    [series("a", "01"), /no valid thanos_bridge_probe/],
    [series("a", "-1"), /no valid thanos_bridge_probe/],
    [series("a", undefined), /no valid thanos_bridge_probe/],
    [series(undefined, "0"), /has no clusterID label/],
    [series("", "0"), /has no clusterID label/],
    [series("a", "0", { pod: "p" }), /unexpected labels pod/],
  ];
  for (const [s, why] of cases) {
    assert.throws(
      () => readProbeAnswer([s], [X, Y], "clusterID"),
      (err: Error) => why.test(err.message) && err.message.includes(JSON.stringify(s.metric)),
      JSON.stringify(s),
    );
  }
  assert.throws(
    () => readProbeAnswer([series("a", "1"), series("a", "1")], [X, Y], "clusterID"),
    /twice/,
  );
});

Deno.test("presentIn: one cluster's view; atoms not probed count as present", () => {
  const result = readProbeAnswer([series("a", "0")], [X, Y], "clusterID");
  assert.equal(presentIn(result, "a")(X.atom), true);
  assert.equal(presentIn(result, "b")(X.atom), false);
  assert.equal(presentIn(result, "a")(Y.atom), false);
  assert.equal(presentIn(result, "a")("unprobed"), true);
});

// ---------------------------------------------------------------------------
// The catalogues, rewritten for one cluster as the bridge sends them.

const ID = "2b6b7c1e-4a8f-4f0e-9a51-1c0e4c3d2a10";
const MATCHER = `clusterID="${ID}"`;
const PLAN = { clusterLabel: "clusterID", clusterId: ID, rateWindow: "15m" };

interface Sent {
  readonly name: string;
  readonly form: "client" | "server" | "ros";
  readonly expr: string;
  readonly catalogueExpr: string;
}

const SENT: readonly Sent[] = [
  ...planQueries(COST_QUERIES, PLAN).flatMap((p) => [
    { name: p.query.name, form: "client" as const, expr: p.expr, catalogueExpr: p.query.expr },
    ...p.server.map((s) => ({
      name: p.query.name,
      form: "server" as const,
      expr: s.expr,
      catalogueExpr: p.query.expr,
    })),
  ]),
  ...planRosQueries(PLAN).map((p) => ({
    name: p.query.name,
    form: "ros" as const,
    expr: p.expr,
    catalogueExpr: p.query.expr,
  })),
];

const isGpu = (atom: string) => atom.startsWith("DCGM_FI_");
const isVm = (atom: string) => atom.startsWith("kubevirt_");
const formulas = new Map(SENT.map((s) => [s, emptinessOf(s.expr)]));

function atomsOf(e: Emptiness): string[] {
  return probeAtoms([e]).map((a) => a.atom);
}

Deno.test("catalogues: every query sent has a formula over its own cluster-bound selectors", () => {
  assert.equal(COST_QUERIES.length, 36);
  assert.equal(ROS_QUERIES.length, 56);
  let skippable = 0;
  for (const [sent, e] of formulas) {
    const where = `${sent.form} ${sent.name}`;
    assert.notEqual(e.kind, "never", `${where}: an empty selector can empty it`);
    skippable++;
    assert.equal(mustBeEmpty(e, () => true), false, `${where}: not empty with all data`);
    assert.equal(mustBeEmpty(e, () => false), true, `${where}: empty without any data`);
    for (const atom of atomsOf(e)) {
      assert.ok(sent.expr.includes(atom), `${where}: ${atom} is written in the query`);
      assert.ok(atom.includes(MATCHER), `${where}: ${atom} is bound to the cluster`);
      assert.doesNotThrow(() => probeQuery([{ atom, marginSeconds: 1 }], "clusterID", 0));
    }
  }
  assert.equal(skippable, SENT.length);
});

Deno.test("catalogues: margins cover the rate window, the lookback and the server-side subquery", () => {
  const margin = (name: string, form: Sent["form"], prefix: string) => {
    const sent = SENT.find((s) => s.name === name && s.form === form)!;
    const found = probeAtoms([formulas.get(sent)!]).filter((a) => a.atom.startsWith(prefix));
    assert.equal(found.length, 1, `${form} ${name}: one ${prefix} atom`);
    return found[0]!.marginSeconds;
  };
  assert.equal(margin("pod-usage-cpu-cores", "client", "container_cpu_usage_seconds_total"), 900);
  assert.equal(margin("pod-usage-cpu-cores", "server", "container_cpu_usage_seconds_total"), 4501);
  assert.equal(margin("node-role", "client", "kube_node_role"), 300);
  assert.equal(margin("node-role", "server", "kube_node_role"), 3901);
  assert.equal(margin("cpu-throttle-namespace-avg", "ros", "container_cpu_cfs"), 1800);
  assert.equal(margin("pods-running-namespace-max", "ros", "kube_pod_status_phase"), 1200);
});

Deno.test("catalogues: with no DCGM series exactly the queries that read DCGM must be empty", () => {
  const gpu = new Set<string>();
  for (const [sent, e] of formulas) {
    if (mustBeEmpty(e, (atom) => !isGpu(atom))) gpu.add(sent.name);
  }
  const reading = new Set(
    SENT.filter((s) => s.catalogueExpr.includes("DCGM_FI_")).map((s) => s.name),
  );
  assert.deepEqual([...gpu].sort(), [...reading].sort());
  for (
    const name of [
      "nvidia-gpu-memory-capacity-mib-mig",
      "nvidia-gpu-utilization",
      "nvidia-gpu-pod-uptime",
      "nvidia-gpu-max-slices",
    ]
  ) {
    assert.ok(gpu.has(name), name);
  }
  for (const name of ["pod-usage-cpu-cores", "pod-request-cpu-cores", "node-role"]) {
    assert.ok(!gpu.has(name), name);
  }
  // The GPU queries stay: a single DCGM selector present is enough to keep them.
  for (const [sent, e] of formulas) {
    if (!sent.catalogueExpr.includes("DCGM_FI_")) continue;
    const present = (atom: string) => isGpu(atom) || !atom.startsWith("DCGM_FI_");
    assert.equal(mustBeEmpty(e, present), false, `${sent.form} ${sent.name}`);
  }
});

Deno.test("catalogues: with no KubeVirt series exactly the vm_* queries must be empty", () => {
  const vm = new Set<string>();
  for (const [sent, e] of formulas) {
    if (mustBeEmpty(e, (atom) => !isVm(atom))) vm.add(sent.name);
  }
  const expected = COST_QUERIES.filter((q) => q.name.startsWith("vm_")).map((q) => q.name);
  assert.ok(expected.length > 0);
  assert.deepEqual([...vm].sort(), expected.sort());
});

Deno.test("catalogues: node-role is empty only when kube_node_role is absent", () => {
  for (const [sent, e] of formulas) {
    if (sent.name !== "node-role") continue;
    const atoms = atomsOf(e);
    assert.deepEqual(atoms, [`kube_node_role{${MATCHER}}`]);
    assert.equal(mustBeEmpty(e, (atom) => atom !== atoms[0]), true);
    assert.equal(mustBeEmpty(e, (atom) => atom === atoms[0]), false);
  }
});

Deno.test("catalogues: GPU-less and VM-less clusters never make pod-usage-cpu-cores skippable", () => {
  for (const [sent, e] of formulas) {
    if (sent.name !== "pod-usage-cpu-cores") continue;
    assert.equal(mustBeEmpty(e, (atom) => !isGpu(atom) && !isVm(atom)), false);
    assert.deepEqual(atomsOf(e).map((a) => a.split("{")[0]), ["container_cpu_usage_seconds_total"]);
  }
});

Deno.test("catalogues: the GPU queries hinge on DCGM and the joined side, not on either alone", () => {
  const sent = SENT.find((s) => s.name === "nvidia-gpu-utilization" && s.form === "server")!;
  const e = formulas.get(sent)!;
  // Without kube_pod_status_phase both branches are empty too.
  assert.equal(mustBeEmpty(e, (atom) => !atom.startsWith("kube_pod_status_phase")), true);
  // One branch's DCGM selector present keeps the query.
  const dcgm = atomsOf(e).filter(isGpu);
  assert.equal(dcgm.length, 2);
  for (const keep of dcgm) {
    assert.equal(mustBeEmpty(e, (atom) => !isGpu(atom) || atom === keep), false, keep);
  }
});

Deno.test("catalogues: the ROS queries' `or` of two opt-in labels needs both absent", () => {
  const sent = SENT.find((s) => s.name === "cpu-usage-namespace-avg")!;
  const e = formulas.get(sent)!;
  const optIn = atomsOf(e).filter((a) => a.startsWith("kube_namespace_labels"));
  assert.equal(optIn.length, 2);
  assert.equal(mustBeEmpty(e, (atom) => atom !== optIn[0]), false);
  assert.equal(mustBeEmpty(e, (atom) => atom !== optIn[1]), false);
  assert.equal(mustBeEmpty(e, (atom) => !optIn.includes(atom)), true);
});

Deno.test("catalogues: one probe for every atom of every query parses and names each atom once", () => {
  const atoms = probeAtoms([...formulas.values()]);
  const keys = atoms.map((a) => a.atom);
  assert.equal(new Set(keys).size, keys.length);
  const q = probeQuery(atoms, "clusterID", 0);
  assert.equal(q.split(" or label_replace(").length, atoms.length);
  let errors = 0;
  parser.parse(q).iterate({
    enter(ref) {
      if (ref.type.isError) errors++;
    },
  });
  assert.equal(errors, 0);
  // The server forms read an hour further back than the client forms of the same selector.
  const serverOnly = probeAtoms(
    [...formulas].filter(([s]) => s.form === "server").map(([, e]) => e),
  );
  for (const a of serverOnly) {
    const overall = atoms.find((b) => b.atom === a.atom)!;
    assert.equal(overall.marginSeconds, Math.max(a.marginSeconds, overall.marginSeconds));
    assert.ok(a.marginSeconds > 3600, a.atom);
  }
});

Deno.test("catalogues: serverExpr wrapping keeps the formula and adds 1h1s to every margin", () => {
  for (const p of planQueries(COST_QUERIES, PLAN)) {
    const client = emptinessOf(p.expr);
    const server = emptinessOf(serverExpr(p.expr, "sum"));
    const shift = (e: Emptiness): Emptiness =>
      e.kind === "absent"
        ? { ...e, marginSeconds: e.marginSeconds + 3601 }
        : e.kind === "never"
        ? e
        : { kind: e.kind, of: e.of.map(shift) };
    assert.deepEqual(server, shift(client), p.query.name);
  }
});
