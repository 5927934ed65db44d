import assert from "node:assert/strict";
import { parser } from "@prometheus-io/lezer-promql";
import type { SyntaxNode } from "@lezer/common";
import {
  carriesLabel,
  escapeRegex,
  parseDuration,
  quotePromqlString,
  type RewriteOptions,
  rewriteQuery,
} from "./promql_rewrite.ts";
import { COST_QUERIES } from "./catalogue.ts";
import { ROS_QUERIES } from "./ros_catalogue.ts";

const LABEL = "clusterID";
const UUID = "2b6b7c1e-4a8f-4f0e-9a51-1c0e4c3d2a10";
const C: RewriteOptions = { label: LABEL, value: "c" };
const W: RewriteOptions = { label: LABEL, value: "c", rangeWindow: "15m" };

const CONTRACT = new URL("../../../shared/contract/cmmo-queries.json", import.meta.url);
const COST_GROUPS = [
  "nodeQueries",
  "podQueries",
  "volQueries",
  "vmQueries",
  "namespaceQueries",
  "costNvidiaGpuMemoryCapacityNonMIGQueries",
  "costNvidiaGpuMemoryCapacityMIGQueries",
  "costNvidiaGpuUtilizationQueries",
  "costNvidiaGpuMaxSlicesQueries",
];
const PROMTOOL = "/usr/bin/promtool";

/** Values that must survive quoting exactly. */
const HOSTILE = [
  'a"b',
  "a\\b",
  'a\\"',
  "line1\nline2",
  "cr\rtab\t",
  "é漢字😀",
  "}",
  ",",
  'a}, b="c',
  '"} or vector(1) #',
  "'`",
  "\u0000\u0001\u001f\u007f\u0085\u009f",
  "\ufffd",
  "\u2028\ufeff",
  " ",
  "$1",
];

// ---------------------------------------------------------------------------
// Helpers that inspect a query through its parse tree (independent of the
// implementation's own walk).

async function exists(path: string | URL): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

function text(source: string, node: SyntaxNode | null | undefined): string {
  assert.ok(node, `missing node in ${source}`);
  return source.slice(node.from, node.to);
}

/** All nodes of one type; fails on any error node. */
function nodesOf(source: string, name: string): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  parser.parse(source).iterate({
    enter(ref) {
      assert.ok(!ref.type.isError, `parse error at ${ref.from} in ${source}`);
      if (ref.name === name) out.push(ref.node);
    },
  });
  return out;
}

interface Selector {
  readonly text: string;
  /** Matchers on `label`, as op and literal text. */
  readonly matchers: { op: string; literal: string }[];
}

function selectorsOf(source: string, label = LABEL): Selector[] {
  return nodesOf(source, "VectorSelector").map((selector) => {
    const matchers: { op: string; literal: string }[] = [];
    const braces = selector.getChild("LabelMatchers");
    for (let item = braces?.firstChild ?? null; item !== null; item = item.nextSibling) {
      let name: string | null = null;
      if (item.name === "UnquotedLabelMatcher") name = text(source, item.getChild("LabelName"));
      if (item.name === "QuotedLabelMatcher") {
        name = JSON.parse(text(source, item.getChild("QuotedLabelName")));
      }
      if (name !== label) continue;
      matchers.push({
        op: text(source, item.getChild("MatchOp")),
        literal: text(source, item.getChild("StringLiteral")),
      });
    }
    return { text: text(source, selector), matchers };
  });
}

/** Asserts every selector of `output` carries `label=literal` exactly once. */
function assertEverySelectorCarries(input: string, output: string, literal: string): void {
  const before = selectorsOf(input);
  const after = selectorsOf(output);
  assert.ok(after.length > 0, `no selector in ${output}`);
  assert.equal(after.length, before.length, `selector count changed: ${output}`);
  for (const selector of after) {
    assert.deepEqual(
      selector.matchers,
      [{ op: "=", literal }],
      `${selector.text} in ${output}`,
    );
  }
}

const WINDOW_FNS = new Set([
  "rate",
  "irate",
  "increase",
  "delta",
  "idelta",
  "deriv",
  "resets",
  "changes",
]);
const WRAPPERS = new Set([
  "ParenExpr",
  "OffsetExpr",
  "StepInvariantExpr",
  "AnchoredExpr",
  "SmoothedExpr",
]);

/** Durations of matrix selectors that are arguments of window functions. */
function windowsOf(source: string): { fn: string; duration: SyntaxNode }[] {
  const out: { fn: string; duration: SyntaxNode }[] = [];
  for (const call of nodesOf(source, "FunctionCall")) {
    const fn = text(source, call.getChild("FunctionIdentifier"));
    if (!WINDOW_FNS.has(fn) && !fn.endsWith("_over_time")) continue;
    const body = call.getChild("FunctionCallBody");
    for (let arg = body?.firstChild ?? null; arg !== null; arg = arg.nextSibling) {
      let inner: SyntaxNode | null = arg;
      while (inner !== null && WRAPPERS.has(inner.name)) inner = inner.firstChild;
      if (inner?.name === "MatrixSelector") {
        const duration = inner.getChild("DurationExpr");
        assert.ok(duration);
        out.push({ fn, duration });
      }
    }
  }
  return out;
}

/** Range texts of all subqueries, e.g. ["1h:1m"]. */
function subqueryRangesOf(source: string): string[] {
  return nodesOf(source, "SubqueryExpr").map((node) => {
    const open = source.indexOf("[", node.getChild("DurationExpr")!.from - 1);
    return source.slice(open + 1, node.to - 1);
  });
}

/** `source` with each window-function duration replaced by a placeholder. */
function maskWindows(source: string): string {
  let out = source;
  for (const { duration } of windowsOf(source).sort((a, b) => b.duration.from - a.duration.from)) {
    out = out.slice(0, duration.from) + "<W>" + out.slice(duration.to);
  }
  return out;
}

/** Removes what the rewrite inserts, for the byte-identity check. */
function stripInjected(output: string, literal: string): string {
  return output.replaceAll(`, ${LABEL}=${literal}`, "").replaceAll(`{${LABEL}=${literal}}`, "");
}

interface ContractQuery {
  readonly name: string;
  readonly expr: string;
}

async function contractGroups(): Promise<{ go_variable: string; queries: ContractQuery[] }[]> {
  return JSON.parse(await Deno.readTextFile(CONTRACT)).groups;
}

/** Checks one real query end to end: matcher everywhere, windows, byte identity, wrapping. */
function checkRealQuery(expr: string): void {
  const literal = JSON.stringify(UUID);
  const plain = rewriteQuery(expr, { label: LABEL, value: UUID });
  assertEverySelectorCarries(expr, plain, literal);
  assert.equal(stripInjected(plain, literal), expr, "everything else is byte-identical");

  const windowed = rewriteQuery(expr, { label: LABEL, value: UUID, rangeWindow: "17m" });
  assertEverySelectorCarries(expr, windowed, literal);
  for (const { fn, duration } of windowsOf(windowed)) {
    assert.equal(text(windowed, duration), "17m", `${fn} window in ${windowed}`);
  }
  assert.equal(windowsOf(windowed).length, windowsOf(expr).length);
  assert.deepEqual(subqueryRangesOf(windowed), subqueryRangesOf(expr), "subqueries unchanged");
  assert.equal(maskWindows(windowed), maskWindows(plain), "only windows differ");

  const wrapped = `sum_over_time((${windowed})[1h:1m])`;
  assertEverySelectorCarries(expr, wrapped, literal);
  assert.deepEqual(subqueryRangesOf(wrapped), ["1h:1m", ...subqueryRangesOf(expr)]);
}

// ---------------------------------------------------------------------------
// Exact rewrites.

const EXACT: [input: string, expected: string, options?: RewriteOptions][] = [
  // selector shapes
  ["up", 'up{clusterID="c"}'],
  ["up{}", 'up{clusterID="c"}'],
  ["up{ }", 'up{clusterID="c" }'],
  ['{__name__="up"}', '{__name__="up", clusterID="c"}'],
  ['{job="a"}', '{job="a", clusterID="c"}'],
  ['{"quoted.metric", a="b"}', '{"quoted.metric", a="b", clusterID="c"}'],
  ['{"quoted.metric"}', '{"quoted.metric", clusterID="c"}'],
  ['up{a="b",}', 'up{a="b", clusterID="c",}'],
  ["up {a='b'}", `up {a='b', clusterID="c"}`],
  ['up{a="b"}[5m]', 'up{a="b", clusterID="c"}[5m]'],
  [
    "namespace_workload_pod:kube_pod_owner:relabel",
    'namespace_workload_pod:kube_pod_owner:relabel{clusterID="c"}',
  ],
  // offset and @
  ["up offset 5m", 'up{clusterID="c"} offset 5m'],
  ['up{a="b"} offset -1h', 'up{a="b", clusterID="c"} offset -1h'],
  ["up @ 1234", 'up{clusterID="c"} @ 1234'],
  ["up{} @ start()", 'up{clusterID="c"} @ start()'],
  ["up @ end() offset 5m", 'up{clusterID="c"} @ end() offset 5m'],
  ["rate(x[5m] offset 1h)", 'rate(x{clusterID="c"}[15m] offset 1h)', W],
  ["last_over_time(x[5m] @ start())", 'last_over_time(x{clusterID="c"}[15m] @ start())', W],
  // windows
  ["rate(x[5m])", 'rate(x{clusterID="c"}[15m])', W],
  ["sum_over_time(x[5m])", 'sum_over_time(x{clusterID="c"}[15m])', W],
  ["rate(x[5m])", 'rate(x{clusterID="c"}[5m])', C],
  [
    "max_over_time(rate(x[5m])[1h:1m])",
    'max_over_time(rate(x{clusterID="c"}[15m])[1h:1m])',
    W,
  ],
  [
    "avg_over_time(sum by(namespace) (x{pod!=''})[15m:])",
    `avg_over_time(sum by(namespace) (x{pod!='', clusterID="c"})[15m:])`,
    W,
  ],
  ["rate(x[5m:1m])", 'rate(x{clusterID="c"}[5m:1m])', W],
  ["rate((x[5m]))", 'rate((x{clusterID="c"}[15m]))', W],
  ["rate(x[5m+1m])", 'rate(x{clusterID="c"}[15m])', W],
  ["quantile_over_time(0.9, x[5m])", 'quantile_over_time(0.9, x{clusterID="c"}[15m])', W],
  [
    "irate(a[1m]) + increase(b[2m]) - delta(c[3m]) / idelta(d[4m]) * deriv(e[5m]) > resets(f[6m]) or changes(g[7m])",
    'irate(a{clusterID="c"}[15m]) + increase(b{clusterID="c"}[15m]) - delta(c{clusterID="c"}[15m]) / idelta(d{clusterID="c"}[15m]) * deriv(e{clusterID="c"}[15m]) > resets(f{clusterID="c"}[15m]) or changes(g{clusterID="c"}[15m])',
    W,
  ],
  [
    "absent_over_time(a[1m]) + count_over_time(b[2m]) + present_over_time(c[3m]) + stddev_over_time(d[4m])",
    'absent_over_time(a{clusterID="c"}[15m]) + count_over_time(b{clusterID="c"}[15m]) + present_over_time(c{clusterID="c"}[15m]) + stddev_over_time(d{clusterID="c"}[15m])',
    W,
  ],
  ["predict_linear(x[5m], 3600)", 'predict_linear(x{clusterID="c"}[5m], 3600)', W],
  [
    "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))",
    'histogram_quantile(0.9, sum by (le) (rate(x_bucket{clusterID="c"}[15m])))',
    W,
  ],
  // binary operators, grouping, set operators
  [
    "a * on(node) group_left(provider_id) max by (node, provider_id) (b)",
    'a{clusterID="c"} * on(node) group_left(provider_id) max by (node, provider_id) (b{clusterID="c"})',
  ],
  [
    "a or b unless c and d",
    'a{clusterID="c"} or b{clusterID="c"} unless c{clusterID="c"} and d{clusterID="c"}',
  ],
  ["a / ignoring(x) group_right b", 'a{clusterID="c"} / ignoring(x) group_right b{clusterID="c"}'],
  ["sum by (clusterID) (x)", 'sum by (clusterID) (x{clusterID="c"})'],
  ['count_values("clusterID", x)', 'count_values("clusterID", x{clusterID="c"})'],
  [
    "label_replace(x, 'exported_pod', '$1', 'pod', '(.*)')",
    `label_replace(x{clusterID="c"}, 'exported_pod', '$1', 'pod', '(.*)')`,
  ],
  [
    'label_replace(x, "clusterID", "$1", "a", "(.*)")',
    'label_replace(x{clusterID="c"}, "clusterID", "$1", "a", "(.*)")',
  ],
  ["-x", '-x{clusterID="c"}'],
  // unicode positions, comments
  ['x{a="é😀"} + y', 'x{a="é😀", clusterID="c"} + y{clusterID="c"}'],
  ["up # comment {x}\n  + down", 'up{clusterID="c"} # comment {x}\n  + down{clusterID="c"}'],
  ['up{a="b" # c\n}', 'up{a="b", clusterID="c" # c\n}'],
  // no selectors at all
  ["1 + 2", "1 + 2"],
  ["vector(1)", "vector(1)"],
  // an identical matcher is kept as is
  ['up{clusterID="c"}', 'up{clusterID="c"}'],
  ["up{clusterID='c'}", "up{clusterID='c'}"],
  ["up{clusterID=`c`}", "up{clusterID=`c`}"],
  ['up{clusterID="\\x63"}', 'up{clusterID="\\x63"}'],
  ['up{clusterID="\\u0063"}', 'up{clusterID="\\u0063"}'],
  ['up{"clusterID"="c"}', 'up{"clusterID"="c"}'],
  ['up{clusterID="c", clusterID="c"}', 'up{clusterID="c", clusterID="c"}'],
  ['a{clusterID="c"} / b', 'a{clusterID="c"} / b{clusterID="c"}'],
  ['rate(x{clusterID="c"}[5m])', 'rate(x{clusterID="c"}[15m])', W],
  // other label names
  ["up", 'up{tenant_id="t-1"}', { label: "tenant_id", value: "t-1" }],
  ['up{cluster="a"}', 'up{cluster="a", _x="y"}', { label: "_x", value: "y" }],
];

Deno.test("rewriteQuery: exact rewrites", async (t) => {
  for (const [input, expected, options] of EXACT) {
    await t.step(input, () => {
      assert.equal(rewriteQuery(input, options ?? C), expected);
    });
  }
});

Deno.test("rewriteQuery: every selector of a rewritten query carries the matcher once", () => {
  const queries = [
    'up{a="b",}',
    "max_over_time(rate(x[5m])[1h:1m] @ start()) * on(a) group_left(b) y offset 1d",
    "(a or b) unless on(c) (d and e)",
    'sum without (x) (rate({__name__=~"x_.*", a!="b"}[5m])) / ignoring(x) c',
  ];
  for (const query of queries) {
    const output = rewriteQuery(query, W);
    assertEverySelectorCarries(query, output, '"c"');
  }
});

Deno.test("rewriteQuery: CMMO's 36 cost queries (catalogue)", async (t) => {
  assert.equal(COST_QUERIES.length, 36);
  for (const query of COST_QUERIES) {
    await t.step(query.name, () => checkRealQuery(query.expr));
  }
});

Deno.test({
  name: "rewriteQuery: every query of ../shared/contract/cmmo-queries.json",
  ignore: !(await exists(CONTRACT)),
  fn: async (t) => {
    const groups = await contractGroups();
    const cost = groups.filter((g) => COST_GROUPS.includes(g.go_variable));
    assert.equal(cost.length, COST_GROUPS.length);
    assert.equal(cost.flatMap((g) => g.queries).length, 36);
    for (const group of groups) {
      for (const query of group.queries) {
        await t.step(`${group.go_variable}/${query.name}`, () => checkRealQuery(query.expr));
      }
    }
  },
});

Deno.test("rewriteQuery: rate and sum_over_time windows in the cost queries become 15m", () => {
  const byName = new Map(COST_QUERIES.map((q) => [q.name, q.expr]));
  const pod = rewriteQuery(byName.get("pod-usage-cpu-cores")!, { ...W, value: UUID });
  assert.equal(
    pod,
    `sum by (pod, namespace, node) (rate(container_cpu_usage_seconds_total{container!='', container!='POD', pod!='', namespace!='', node!='', clusterID="${UUID}"}[15m]))`,
  );
  const vm = rewriteQuery(byName.get("vm_memory_usage")!, { ...W, value: UUID });
  assert.equal(
    vm,
    `sum by (name, namespace) (sum_over_time(kubevirt_vmi_memory_used_bytes{name!='', namespace!='', clusterID="${UUID}"}[15m])) * on (name, namespace) group_left max by (name, namespace) (kubevirt_vmi_info{phase='running', clusterID="${UUID}"})`,
  );
  // The trailing space of cost:node_allocatable_cpu_cores is kept.
  const node = rewriteQuery(byName.get("node-allocatable-cpu-cores")!, { ...W, value: UUID });
  assert.ok(node.endsWith(`(kube_node_info{clusterID="${UUID}"}) `), node);
});

Deno.test("rewriteQuery: hostile label values are quoted so they unquote to themselves", async (t) => {
  for (const value of HOSTILE) {
    await t.step(JSON.stringify(value), () => {
      const literal = quotePromqlString(value);
      // JSON's escapes are a subset of PromQL's with the same meaning: an independent decoder.
      assert.equal(JSON.parse(literal), value);
      const options = { label: LABEL, value, rangeWindow: "15m" };
      assert.equal(rewriteQuery("up", options), `up{clusterID=${literal}}`);
      const query = 'sum by (pod) (rate(x{a="b"}[5m])) * on(pod) group_left y';
      const output = rewriteQuery(query, options);
      assertEverySelectorCarries(query, output, literal);
      assert.equal(nodesOf(output, "BinaryExpr").length, 1, "no injected operator");
      assert.equal(nodesOf(output, "StringLiteral").length, 3, "no injected strings");
      // Already carrying exactly this matcher: unchanged.
      assert.equal(rewriteQuery(output, options), output);
    });
  }
});

Deno.test("quotePromqlString: escapes", () => {
  const table: [string, string][] = [
    ["", '""'],
    ["plain-uuid", '"plain-uuid"'],
    ['a"b\\c', '"a\\"b\\\\c"'],
    ["\n\r\t", '"\\n\\r\\t"'],
    ["\u0000\u0007\u001b", '"\\u0000\\u0007\\u001B"'],
    ["\u007f\u0080\u009f\u00a0", '"\\u007F\\u0080\\u009F\u00a0"'],
    ["\ufffd", '"\\uFFFD"'],
    ["é漢😀\u2028", '"é漢😀\u2028"'],
    ["'`$1", '"\'`$1"'],
  ];
  for (const [value, expected] of table) {
    assert.equal(quotePromqlString(value), expected, JSON.stringify(value));
  }
  assert.throws(() => quotePromqlString("a\ud800b"), RangeError);
  assert.throws(() => quotePromqlString("\udc00"), RangeError);
});

Deno.test("rewriteQuery: a conflicting matcher throws a TypeError naming it", async (t) => {
  const cases: [query: string, selector: string, matcher: string][] = [
    ['up{clusterID="d"}', 'up{clusterID="d"}', 'clusterID="d"'],
    ['up{clusterID="C"}', 'up{clusterID="C"}', 'clusterID="C"'],
    ['up{clusterID!="c"}', 'up{clusterID!="c"}', 'clusterID!="c"'],
    ['up{clusterID=~"c"}', 'up{clusterID=~"c"}', 'clusterID=~"c"'],
    ["up{clusterID!~'x'}", "up{clusterID!~'x'}", "clusterID!~'x'"],
    ['up{"clusterID"="d"}', 'up{"clusterID"="d"}', '"clusterID"="d"'],
    ['up{clusterID="c", clusterID!="d"}', 'up{clusterID="c", clusterID!="d"}', 'clusterID!="d"'],
    ['a + rate(b{clusterID=""}[5m])', 'b{clusterID=""}', 'clusterID=""'],
  ];
  for (const [query, selector, matcher] of cases) {
    await t.step(query, () => {
      assert.throws(
        () => rewriteQuery(query, W),
        (error: unknown) => {
          assert.ok(error instanceof TypeError, String(error));
          assert.ok(error.message.includes(selector), error.message);
          assert.ok(error.message.includes(matcher), error.message);
          assert.deepEqual(
            (error.cause as { selector: string; matcher: string }).matcher,
            matcher,
          );
          return true;
        },
      );
    });
  }
});

Deno.test("rewriteQuery: refuses queries that do not parse, naming query and position", async (t) => {
  const cases: [query: string, position: number][] = [
    ["", 0],
    ["sum(", 4],
    ["up{a=", 5],
    ['up{a="b"} +', 11],
    ["rate(x[5m]", 10],
    ['up{a="b\n}', 5],
    ['up{a="\\q"}', 6],
    ["up{a='\\\"'}", 6],
    ['up{a="\\ud800"}', 6],
    ['up{a="\\U00110000"}', 6],
    ['up{a="\\400"}', 6],
    ['up{a="\\x4"}', 6],
    ['up{a="\ufffd"}', 6],
    ["up{a=`\ufffd`}", 6],
    ['up{a="b"}\ud800', 9],
  ];
  for (const [query, position] of cases) {
    await t.step(JSON.stringify(query), () => {
      assert.throws(
        () => rewriteQuery(query, W),
        (error: unknown) => {
          assert.ok(error instanceof SyntaxError, String(error));
          assert.ok(error.message.includes(JSON.stringify(query)), error.message);
          const cause = error.cause as { query: string; position?: number };
          assert.equal(cause.query, query);
          if (cause.position !== undefined) {
            assert.ok(
              cause.position >= position && cause.position <= query.length,
              `position ${cause.position} for ${JSON.stringify(query)}`,
            );
            assert.match(error.message, /line \d+, column \d+/);
          }
          return true;
        },
      );
    });
  }
});

Deno.test("rewriteQuery: validates its options", () => {
  for (const label of ["", "1abc", "a-b", "a.b", "clüster", "__name__", "__x"]) {
    assert.throws(
      () => rewriteQuery("up", { label, value: "c" }),
      (e: unknown) => e instanceof RangeError && e.message.includes(JSON.stringify(label)),
      label,
    );
  }
  assert.throws(() => rewriteQuery("up", { label: LABEL, value: "" }), RangeError);
  assert.throws(() => rewriteQuery("up", { label: LABEL, value: "a\ud800" }), RangeError);
  for (const rangeWindow of ["0s", "0", "0m0s", "abc", "-5m", "5", "", "1.5h", "5M", "1m1h"]) {
    assert.throws(
      () => rewriteQuery("rate(x[5m])", { ...C, rangeWindow }),
      (e: unknown) => e instanceof RangeError && e.message.includes(JSON.stringify(rangeWindow)),
      rangeWindow,
    );
  }
  for (const rangeWindow of ["15m", "1h30m", "90s", "1d", "500ms"]) {
    assert.equal(
      rewriteQuery("rate(x[5m])", { ...C, rangeWindow }),
      `rate(x{clusterID="c"}[${rangeWindow}])`,
    );
  }
});

Deno.test("parseDuration: Prometheus durations in milliseconds", () => {
  const valid: [string, number][] = [
    ["0", 0],
    ["0s", 0],
    ["15m", 900_000],
    ["1h30m", 5_400_000],
    ["90s", 90_000],
    ["100ms", 100],
    ["1d", 86_400_000],
    ["2w", 1_209_600_000],
    ["1y", 31_536_000_000],
    ["1y1w1d1h1m1s1ms", 31_536_000_000 + 604_800_000 + 86_400_000 + 3_600_000 + 61_001],
    ["0015m", 900_000],
    ["292y", 9_208_512_000_000],
  ];
  for (const [input, ms] of valid) assert.equal(parseDuration(input), ms, input);
  const invalid = [
    "",
    "abc",
    "-5m",
    "+5m",
    "5",
    "1.5h",
    "5M",
    " 5m",
    "5m ",
    "1m1h",
    "5m5m",
    "5us",
    "١٥m",
    "293y",
  ];
  for (const input of invalid) {
    assert.throws(
      () => parseDuration(input),
      (e: unknown) => e instanceof RangeError && e.message.includes(JSON.stringify(input)),
      input,
    );
  }
});

// ---------------------------------------------------------------------------
// Prometheus's own Go parser and engine, through `promtool test rules` (no server).

/** A single-quoted PromQL literal with every UTF-8 byte as `\xHH`: a different encoding. */
function hexLiteral(value: string): string {
  return `'${
    [...new TextEncoder().encode(value)].map((b) => `\\x${b.toString(16).padStart(2, "0")}`).join(
      "",
    )
  }'`;
}

/** JSON (valid YAML) in pure ASCII, so YAML never sees raw line separators or C1 controls. */
function asciiYaml(document: unknown): string {
  return JSON.stringify(document, null, 1).replace(/[^\x20-\x7e\n]/gu, (ch) => {
    const code = ch.codePointAt(0)!;
    return code > 0xffff
      ? `\\U${code.toString(16).padStart(8, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

Deno.test({
  name: "promtool: rewritten queries parse and select exactly the cluster",
  ignore: !(await exists(PROMTOOL)),
  fn: async () => {
    const cpu = COST_QUERIES.find((q) => q.name === "pod-usage-cpu-cores")!.expr;
    const memory = COST_QUERIES.find((q) => q.name === "pod-usage-memory-bytes")!.expr;
    const target = HOSTILE.join("|");
    const series = (name: string, cluster: string) =>
      `${name}{container="c", pod="p", namespace="n", node="w", clusterID=${cluster}}`;
    const document = {
      evaluation_interval: "1m",
      tests: [{
        interval: "1m",
        input_series: [
          {
            series: series("container_cpu_usage_seconds_total", hexLiteral(target)),
            values: "0+60x30",
          },
          { series: series("container_cpu_usage_seconds_total", '"decoy"'), values: "0+120x30" },
          {
            series: series("container_memory_usage_bytes", hexLiteral(target)),
            values: "1000+0x30",
          },
          { series: series("container_memory_usage_bytes", '"decoy"'), values: "5+0x30" },
          ...HOSTILE.map((value, i) => ({
            series: `hostile{clusterID=${hexLiteral(value)}}`,
            values: `${i + 1}+0x30`,
          })),
        ],
        promql_expr_test: [
          {
            expr: rewriteQuery(memory, { label: LABEL, value: target, rangeWindow: "15m" }),
            eval_time: "20m",
            exp_samples: [{ labels: '{namespace="n", node="w", pod="p"}', value: 1000 }],
          },
          {
            expr: `round(${
              rewriteQuery(cpu, { label: LABEL, value: target, rangeWindow: "15m" })
            }, 0.001)`,
            eval_time: "20m",
            exp_samples: [{ labels: '{namespace="n", node="w", pod="p"}', value: 1 }],
          },
          ...HOSTILE.map((value, i) => ({
            expr: rewriteQuery("hostile", { label: LABEL, value }),
            eval_time: "10m",
            exp_samples: [{ labels: `hostile{clusterID=${hexLiteral(value)}}`, value: i + 1 }],
          })),
          // All 36 cost queries, bound to another cluster: they must parse and return nothing.
          ...COST_QUERIES.map((q) => ({
            expr: `sum_over_time((${
              rewriteQuery(q.expr, { label: LABEL, value: UUID, rangeWindow: "15m" })
            })[1h:1m])`,
            eval_time: "20m",
            exp_samples: [],
          })),
        ],
      }],
    };
    const file = await Deno.makeTempFile({ suffix: ".yml" });
    try {
      await Deno.writeTextFile(file, asciiYaml(document));
      const result = await new Deno.Command(PROMTOOL, {
        args: ["test", "rules", file],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const decoder = new TextDecoder();
      assert.equal(
        result.code,
        0,
        `promtool failed:\n${decoder.decode(result.stdout)}\n${decoder.decode(result.stderr)}`,
      );
    } finally {
      await Deno.remove(file);
    }
  },
});

// ---------------------------------------------------------------------------
// minRangeWindow: widen only.

const MIN: RewriteOptions = { label: LABEL, value: "c", minRangeWindow: "15m" };

Deno.test("rewriteQuery minRangeWindow: widens shorter windows only", () => {
  const table: [input: string, expected: string][] = [
    ["rate(x[5m])", 'rate(x{clusterID="c"}[15m])'],
    ["rate(x[14m59s])", 'rate(x{clusterID="c"}[15m])'],
    ["rate(x[15m])", 'rate(x{clusterID="c"}[15m])'],
    ["rate(x[900s])", 'rate(x{clusterID="c"}[900s])'],
    ["rate(x[1h])", 'rate(x{clusterID="c"}[1h])'],
    [
      "irate(x[1m]) + increase(y[2m])",
      'irate(x{clusterID="c"}[15m]) + increase(y{clusterID="c"}[15m])',
    ],
    [
      "max_over_time(x[30m]) - min_over_time(x[10m])",
      'max_over_time(x{clusterID="c"}[30m]) - min_over_time(x{clusterID="c"}[15m])',
    ],
    ["rate(x[300])", 'rate(x{clusterID="c"}[15m])'],
    ["rate(x[900])", 'rate(x{clusterID="c"}[900])'],
    ["rate(x[5m] offset 5m)", 'rate(x{clusterID="c"}[15m] offset 5m)'],
    // Subquery ranges and resolutions are never touched; windows inside them are.
    [
      "avg_over_time(sum by(n) (rate(x[5m]))[15m:])",
      'avg_over_time(sum by(n) (rate(x{clusterID="c"}[15m]))[15m:])',
    ],
    ["max_over_time(x[5m:1m])", 'max_over_time(x{clusterID="c"}[5m:1m])'],
    // A plain range selector is not a window function's argument.
    ["x[5m]", 'x{clusterID="c"}[5m]'],
    [
      "label_replace(rate(x[1m]), 'a', '$1', 'b', '(.*)')",
      `label_replace(rate(x{clusterID="c"}[15m]), 'a', '$1', 'b', '(.*)')`,
    ],
  ];
  for (const [input, expected] of table) {
    assert.equal(rewriteQuery(input, MIN), expected, input);
  }
});

Deno.test("rewriteQuery minRangeWindow: option checks", () => {
  assert.throws(
    () => rewriteQuery("rate(x[5m])", { ...MIN, rangeWindow: "15m" }),
    (e: unknown) => e instanceof TypeError && /cannot be combined/.test(e.message),
  );
  assert.throws(() => rewriteQuery("rate(x[5m])", { ...C, minRangeWindow: "0" }), RangeError);
  assert.throws(() => rewriteQuery("rate(x[5m])", { ...C, minRangeWindow: "5 m" }), RangeError);
  assert.throws(
    () => rewriteQuery("rate(x[1m+1m])", MIN),
    (e: unknown) => e instanceof TypeError && /\[1m\+1m\]/.test(e.message),
  );
});

Deno.test("rewriteQuery minRangeWindow: cost behaviour is unchanged without it", () => {
  for (const q of COST_QUERIES) {
    assert.equal(
      rewriteQuery(q.expr, { ...W, minRangeWindow: undefined }),
      rewriteQuery(q.expr, W),
    );
  }
});

// ---------------------------------------------------------------------------
// Batched form: one query for several clusters.

const B: RewriteOptions = { label: LABEL, values: ["a", "b"] };
const M = 'clusterID=~"a|b"';

/** [input, expected batched output] for every shape of the cost and ROS catalogues. */
const BATCH_EXACT: readonly [string, string][] = [
  // selectors
  ["up", `up{${M}}`],
  ["up{a='b'}", `up{a='b', ${M}}`],
  ["{__name__='up'}", `{__name__='up', ${M}}`],
  // aggregations: by, without, none, empty by, modifier after the body
  ["sum by (pod) (x)", `sum by (pod, clusterID) (x{${M}})`],
  [
    "sum by(namespace, persistentvolumeclaim, volumename) (x)",
    `sum by(namespace, persistentvolumeclaim, volumename, clusterID) (x{${M}})`,
  ],
  ["sum by (a,) (x)", `sum by (a, clusterID,) (x{${M}})`],
  ["sum by () (x)", `sum by (clusterID) (x{${M}})`],
  ["sum(x)", `sum by (clusterID)(x{${M}})`],
  ["sum (x)", `sum by (clusterID) (x{${M}})`],
  ["sum(x) by (pod)", `sum(x{${M}}) by (pod, clusterID)`],
  ["sum without (pod) (x)", `sum without (pod) (x{${M}})`],
  ["sum by (clusterID) (x)", `sum by (clusterID) (x{${M}})`],
  ['sum by ("clusterID") (x)', `sum by ("clusterID") (x{${M}})`],
  ["topk(3, x)", `topk by (clusterID)(3, x{${M}})`],
  ["quantile by (a) (0.9, x)", `quantile by (a, clusterID) (0.9, x{${M}})`],
  ["count_values('v', x)", `count_values by (clusterID)('v', x{${M}})`],
  // nested aggregations
  ["max(sum by (a) (x))", `max by (clusterID)(sum by (a, clusterID) (x{${M}}))`],
  // binary operations: on, ignoring, none, group_left/group_right with labels
  [
    "x * on(node) group_left(provider_id) max by (node, provider_id) (y)",
    `x{${M}} * on(node, clusterID) group_left(provider_id) max by (node, provider_id, clusterID) (y{${M}})`,
  ],
  [
    "x * on (name, namespace) group_left y",
    `x{${M}} * on (name, namespace, clusterID) group_left y{${M}}`,
  ],
  ["x * on(namespace) group_left() y", `x{${M}} * on(namespace, clusterID) group_left() y{${M}}`],
  ["x * on() y", `x{${M}} * on(clusterID) y{${M}}`],
  ["x / on(a) group_right(b) y", `x{${M}} / on(a, clusterID) group_right(b) y{${M}}`],
  ["x / ignoring(a) y", `x{${M}} / ignoring(a) y{${M}}`],
  ["x / ignoring(a) group_left(b) y", `x{${M}} / ignoring(a) group_left(b) y{${M}}`],
  ["x / y", `x{${M}} / y{${M}}`],
  ["x > bool on(a) y", `x{${M}} > bool on(a, clusterID) y{${M}}`],
  ["x * 2", `x{${M}} * 2`],
  ["clamp_max(x + 1, 1)", `clamp_max(x{${M}} + 1, 1)`],
  ["-x", `-x{${M}}`],
  // set operators: no `on` matches on all labels; `on` gets the label
  ["a or b", `a{${M}} or b{${M}}`],
  ["a and on(x) b", `a{${M}} and on(x, clusterID) b{${M}}`],
  ["a unless b", `a{${M}} unless b{${M}}`],
  // label_replace onto other labels, subqueries, offset, @
  [
    "label_replace(x, 'exported_pod', '$1', 'pod', '(.*)')",
    `label_replace(x{${M}}, 'exported_pod', '$1', 'pod', '(.*)')`,
  ],
  [
    "avg_over_time(sum by(namespace) (x)[15m:]) * on(namespace) group_left y",
    `avg_over_time(sum by(namespace, clusterID) (x{${M}})[15m:]) * on(namespace, clusterID) group_left y{${M}}`,
  ],
  ["max_over_time(x[1h:1m] offset 1d @ 100)", `max_over_time(x{${M}}[1h:1m] offset 1d @ 100)`],
  [
    "histogram_quantile(0.9, sum by (le) (rate(x[5m])))",
    `histogram_quantile(0.9, sum by (le, clusterID) (rate(x{${M}}[5m])))`,
  ],
  ["sort_desc(timestamp(x))", `sort_desc(timestamp(x{${M}}))`],
  ["x * pi() + time()", `x{${M}} * pi() + time()`],
  ["hour(x)", `hour(x{${M}})`],
];

Deno.test("rewriteQuery values: exact batched rewrites", async (t) => {
  for (const [input, expected] of BATCH_EXACT) {
    await t.step(input, () => {
      assert.equal(rewriteQuery(input, B), expected);
      assert.equal(firstParseError(expected), null, expected);
    });
  }
});

function firstParseError(source: string): number | null {
  let found: number | null = null;
  parser.parse(source).iterate({
    enter(ref) {
      if (found === null && ref.type.isError) found = ref.from;
    },
  });
  return found;
}

Deno.test("rewriteQuery values: windows are rewritten as in the single-cluster form", () => {
  assert.equal(
    rewriteQuery("sum(rate(x[5m])) + sum(max_over_time(y[1h]))", { ...B, rangeWindow: "15m" }),
    `sum by (clusterID)(rate(x{${M}}[15m])) + sum by (clusterID)(max_over_time(y{${M}}[15m]))`,
  );
  assert.equal(
    rewriteQuery("avg_over_time(sum(rate(x[5m]))[15m:]) or sum(max_over_time(y[1h]))", {
      ...B,
      minRangeWindow: "15m",
    }),
    `avg_over_time(sum by (clusterID)(rate(x{${M}}[15m]))[15m:]) or sum by (clusterID)(max_over_time(y{${M}}[1h]))`,
  );
});

/** Cluster ids with RE2 metacharacters. */
const META_IDS = [
  "c.1",
  "a|b",
  "(x)",
  "back\\slash",
  "star*",
  "plus+",
  "q?",
  "[set]",
  "{2}",
  "^caret",
  "dollar$",
  'quote"',
  "dash-ok_9",
];

Deno.test("escapeRegex: every RE2 metacharacter is escaped; the pattern matches only the id", () => {
  assert.equal(escapeRegex("a.b|c"), "a\\.b\\|c");
  assert.equal(escapeRegex(".|()\\*+?[]{}^$"), "\\.\\|\\(\\)\\\\\\*\\+\\?\\[\\]\\{\\}\\^\\$");
  assert.equal(escapeRegex("2b6b7c1e-4a8f"), "2b6b7c1e-4a8f");
  const pattern = new RegExp(`^(?:${META_IDS.map(escapeRegex).join("|")})$`, "u");
  for (const id of META_IDS) assert.ok(pattern.test(id), id);
  for (const other of ["cx1", "a", "b", "x", "starrr", "plu", "q", "s", "2", "caret", "dollar"]) {
    assert.ok(!pattern.test(other), other);
  }
});

Deno.test("rewriteQuery values: ids with regex metacharacters are escaped and quoted", () => {
  const out = rewriteQuery("sum by (pod) (x)", { label: LABEL, values: META_IDS });
  const [selector] = selectorsOf(out);
  assert.equal(selector!.matchers.length, 1);
  assert.equal(selector!.matchers[0]!.op, "=~");
  const literal = selector!.matchers[0]!.literal;
  assert.equal(literal, quotePromqlString(META_IDS.map(escapeRegex).join("|")));
  // The literal unquotes (JSON-compatible escapes) to the escaped alternation.
  assert.equal(JSON.parse(literal), META_IDS.map(escapeRegex).join("|"));
  assert.equal(out, `sum by (pod, clusterID) (x{clusterID=~${literal}})`);
  assert.equal(
    rewriteQuery("up", { label: LABEL, values: ["c.1"] }),
    'up{clusterID=~"c\\\\.1"}',
  );
});

Deno.test("rewriteQuery values: option checks", () => {
  const refuse = (options: RewriteOptions, kind: ErrorConstructor, pattern: RegExp) =>
    assert.throws(
      () => rewriteQuery("up", options),
      (e: unknown) => e instanceof kind && pattern.test((e as Error).message),
    );
  refuse({ label: LABEL, values: [] }, RangeError, /must not be empty/);
  refuse({ label: LABEL, values: ["a", ""] }, RangeError, /empty value/);
  refuse({ label: LABEL, values: ["a", "b", "a"] }, RangeError, /"a" twice/);
  refuse({ label: LABEL, values: ["a\ud800"] }, RangeError, /lone surrogate/);
  refuse({ label: LABEL, value: "a", values: ["a"] }, TypeError, /cannot be combined/);
  refuse({ label: LABEL }, TypeError, /must be a string/);
  refuse({ label: "__x", values: ["a"] }, RangeError, /reserved/);
  // A selector with its own matcher on the label: always refused in the batched form.
  for (const q of ['up{clusterID="a"}', 'up{clusterID=~"a|b"}', 'up{"clusterID"!="x"}']) {
    assert.throws(
      () => rewriteQuery(q, B),
      (e: unknown) =>
        e instanceof TypeError && /already has matcher/.test(e.message) &&
        /cannot tell which/.test(e.message),
      q,
    );
  }
  // ... while the single-cluster form keeps comparing values as before.
  assert.equal(
    rewriteQuery('up{clusterID="a"}', { label: LABEL, value: "a" }),
    'up{clusterID="a"}',
  );
});

/** [query, construct named in the message, reason named in the message]. */
const BATCH_REFUSALS: readonly [string, RegExp][] = [
  ["sum without (clusterID) (x)", /sum without \(clusterID\).*aggregates away the cluster label/],
  ['sum without ("clusterID") (x)', /aggregates away the cluster label/],
  ["x / ignoring(clusterID) y", /ignoring\(clusterID\).*ignores the cluster label/],
  ["x * on(a) group_left(clusterID) y", /group_left\(clusterID\).*both on/],
  ["x * on(a) group_right(clusterID) y", /group_right\(clusterID\).*both on/],
  [
    "label_replace(x, 'clusterID', '$1', 'a', '(.*)')",
    /label_replace onto the cluster label clusterID.*rewrites the cluster label/,
  ],
  ['label_join(x, "clusterID", ",", "a", "b")', /label_join onto the cluster label/],
  ["count_values('clusterID', x)", /count_values onto the cluster label.*overwrites/],
  ["absent(x)", /absent\(…\).*equality matchers/],
  ["absent_over_time(x[5m])", /absent_over_time\(…\)/],
  ["vector(1)", /vector\(…\).*no labels/],
  ["x * scalar(y)", /scalar\(…\).*mixing the clusters/],
  ["info(x)", /info\(…\).*instance, job/],
  ["hour()", /hour\(\).*vector\(time\(\)\)/],
  ["1 + 2", /a scalar query/],
  ['"s"', /a string query/],
  ["time()", /a scalar query/],
  // sides that disagree about the label where matching uses it
  ["sum by (a) (x) / y", /left side.*right side does not|right side carries/],
  ["x and sum by (a) (y)", /carries the cluster label/],
  ["x or sum by (a) (y)", /carries the cluster label/],
  ["x or on(a) sum by (a) (y)", /mixes series with and without it/],
  ["x * on(clusterID) sum by (a) (y)", /carries the cluster label/],
  ["x * on(a) group_left(clusterID) sum by (a) (y) + 0", /both on/],
];

Deno.test("rewriteQuery values: refuses what cannot be split by cluster, saying why", async (t) => {
  for (const [query, pattern] of BATCH_REFUSALS) {
    await t.step(query, () => {
      for (const run of [() => rewriteQuery(query, B), () => carriesLabel(query, LABEL)]) {
        assert.throws(run, (e: unknown) => {
          assert.ok(e instanceof TypeError, String(e));
          assert.match(e.message, pattern);
          assert.ok(e.message.includes(JSON.stringify(query)), e.message);
          assert.match(e.message, /^Cannot batch query .* over several clusters: /);
          return true;
        });
      }
      // The single-cluster form is unchanged: it rewrites what parses.
      rewriteQuery(query, C);
    });
  }
});

/** [query, does every series of the per-cluster answer carry the cluster label?] */
const CARRIES: readonly [string, boolean][] = [
  ["x", true],
  ["x[5m]", true],
  ["rate(x[5m])", true],
  ["sum(x)", false],
  ["sum by () (x)", false],
  ["sum by (a) (x)", false],
  ["sum by (a, clusterID) (x)", true],
  ["sum by (clusterID) (sum by (a) (x))", false], // empty value: no label
  ["sum without (a) (x)", true],
  ["sum without (a) (sum by (a, b) (x))", false],
  ["topk(3, x)", true],
  ["bottomk by (a) (3, sum by (a) (x))", false],
  ["count_values('v', x)", false],
  ["count_values by (clusterID) ('v', x)", true],
  ["x * on(a) y", false], // one-to-one on(L) keeps only L
  ["x * on(a, clusterID) y", true],
  ["x * ignoring(a) y", true],
  ["x * y", true],
  ["sum by (a) (x) * sum by (a) (y)", false],
  ["x * on(a) group_left(b) sum by (a, b) (y)", true],
  ["sum by (a) (x) * on(a) group_left(b) y", false],
  ["sum by (a) (x) * on(a) group_right(b) y", true],
  ["x * on(a) group_right(b) sum by (a, b) (y)", false],
  ["x * ignoring(a) group_left(clusterID) y", true],
  ["sum by (a) (x) * ignoring(b) group_left(clusterID) sum by (a) (y)", false],
  ["x * 2", true],
  ["2 * sum(x)", false],
  ["x and y", true],
  ["x unless on(a) sum by (a) (y)", true],
  ["sum by (a) (x) and on(a) y", false],
  ["x or y", true],
  ["sum by (a) (x) or sum by (b) (y)", false],
  ["label_replace(sum by (a) (x), 'b', '$1', 'a', '(.*)')", false],
  ["label_replace(x, 'b', '$1', 'a', '(.*)')", true],
  ["avg_over_time(sum by (a) (x)[15m:])", false],
  ["max_over_time(x[15m:1m] offset 5m)", true],
  ["histogram_quantile(0.9, sum by (le, clusterID) (rate(x[5m])))", true],
  ["-sum(x)", false],
  ["(x)", true],
];

Deno.test("carriesLabel: follows Prometheus's label rules", async (t) => {
  for (const [query, expected] of CARRIES) {
    await t.step(query, () => {
      assert.equal(carriesLabel(query, LABEL), expected);
      rewriteQuery(query, B); // and the batched form accepts it
    });
  }
  assert.equal(carriesLabel("sum by (tenant) (x)", "tenant"), true);
  assert.equal(carriesLabel("sum by (tenant) (x)", "other"), false);
  assert.throws(() => carriesLabel("sum(", LABEL), SyntaxError);
  assert.throws(() => carriesLabel("x", "bad-label"), RangeError);
});

const CATALOGUES = [...COST_QUERIES, ...ROS_QUERIES];

Deno.test("rewriteQuery values: every cost and ROS query is batched and parses", async (t) => {
  assert.equal(CATALOGUES.length, 36 + 56);
  const counts = { carries: 0, strips: 0 };
  for (const query of CATALOGUES) {
    await t.step(query.name, () => {
      const out = rewriteQuery(query.expr, { label: LABEL, values: [UUID, "c.2|x"] });
      assert.equal(firstParseError(out), null, out);
      const before = selectorsOf(query.expr);
      const after = selectorsOf(out);
      assert.equal(after.length, before.length);
      for (const selector of after) {
        assert.deepEqual(selector.matchers, [{ op: "=~", literal: `"${UUID}|c\\\\.2\\\\|x"` }]);
      }
      // Every aggregation groups by the label and every `on` matches on it.
      for (const modifier of nodesOf(out, "AggregateModifier")) {
        const labels = text(out, modifier.getChild("GroupingLabels"));
        if (modifier.getChild("By")) assert.match(labels, /[(, ]clusterID\)$/, labels);
      }
      for (const aggregation of nodesOf(out, "AggregateExpr")) {
        assert.ok(aggregation.getChild("AggregateModifier"), text(out, aggregation));
      }
      for (const clause of nodesOf(out, "MatchingModifierClause")) {
        if (clause.getChild("On")) {
          assert.match(text(out, clause.getChild("GroupingLabels")), /clusterID\)$/);
        }
      }
      if (carriesLabel(query.expr, LABEL)) counts.carries++;
      else counts.strips++;
    });
  }
  assert.equal(counts.carries + counts.strips, 92);
  assert.ok(counts.carries > 0 && counts.strips > 0, JSON.stringify(counts));
});

/**
 * Undoes the batched form's additions in `batched` (made with one id), which
 * gives back the single-cluster form: the regex matcher becomes the equality
 * matcher, and the cluster label added to groupings and `on` lists goes.
 */
function unbatch(batched: string, id: string): string {
  const regex = `${LABEL}=~${quotePromqlString(escapeRegex(id))}`;
  const equal = `${LABEL}=${quotePromqlString(id)}`;
  return batched
    .split(regex).join(equal)
    .split(` by (${LABEL})`).join("")
    .split(`, ${LABEL})`).join(")")
    .split(`(${LABEL})`).join("()");
}

Deno.test("rewriteQuery values: with one id, only the matcher and the added labels differ", async (t) => {
  for (const id of [UUID, "c.1|(x)", 'a\\b"c']) {
    for (const query of CATALOGUES) {
      await t.step(`${id} ${query.name}`, () => {
        for (const windows of [{ rangeWindow: "15m" }, { minRangeWindow: "15m" }]) {
          const single = rewriteQuery(query.expr, { label: LABEL, value: id, ...windows });
          const batched = rewriteQuery(query.expr, { label: LABEL, values: [id], ...windows });
          assert.notEqual(batched, single);
          assert.equal(unbatch(batched, id), single);
          // Only additions: nothing of the single-cluster text is lost.
          const added = batched.length - single.length;
          assert.ok(added > 0);
        }
      });
    }
  }
});
