import assert from "node:assert/strict";
import { Prng } from "../../tools/synth/prng.ts";
import { formatFloat } from "../package/go_float.ts";
import { BridgeError } from "../model.ts";
import type { RosQuery } from "./catalogue_groups.ts";
import { ROS_QUERIES } from "./ros_catalogue.ts";
import { ROS_REPORTS } from "./reports.ts";
import { parseSampleValue } from "./reduce.ts";
import { resourceId, sortRows } from "./report_rows.ts";
import {
  buildRosWindowReports,
  ROS_ROW_FIELDS,
  type RosRowQuery,
  type RosSample,
  rosWindowColumns,
  rosWindowEnds,
  type RosWindowReports,
} from "./ros_rows.ts";
import { type Labels, type Row, type RowMap, serializeLabels } from "./row_map.ts";
import { compareUtf8 } from "./utf8_compare.ts";

// ---------------------------------------------------------------------------------------
// Fixture catalogue: the ROS groups of contract §2 / cmmo-queries.json, in CMMO order.

const CONTAINER_LABELS = {
  container_name: "container",
  pod: "pod",
  namespace: "namespace",
  node: "node",
};
const CONTAINER_KEY = ["container", "pod", "namespace"];
const ACCEL_LABELS = {
  accelerator_model_name: "modelName",
  container: "exported_container",
  namespace: "exported_namespace",
  pod: "exported_pod",
  node: "Hostname",
};
const ACCEL_KEY = ["exported_container", "exported_pod", "exported_namespace"];

const CONTAINER_VALUE_QUERIES = [
  "cpu-request-container-avg",
  "cpu-request-container-sum",
  "cpu-limit-container-avg",
  "cpu-limit-container-sum",
  "cpu-usage-container-avg",
  "cpu-usage-container-min",
  "cpu-usage-container-max",
  "cpu-usage-container-sum",
  "cpu-throttle-container-avg",
  "cpu-throttle-container-max",
  "cpu-throttle-container-min",
  "cpu-throttle-container-sum",
  "memory-request-container-avg",
  "memory-request-container-sum",
  "memory-limit-container-avg",
  "memory-limit-container-sum",
  "memory-usage-container-avg",
  "memory-usage-container-min",
  "memory-usage-container-max",
  "memory-usage-container-sum",
  "memory-rss-usage-container-avg",
  "memory-rss-usage-container-min",
  "memory-rss-usage-container-max",
  "memory-rss-usage-container-sum",
];
const ACCEL_QUERIES = [
  "accelerator-core-usage-percentage-min",
  "accelerator-core-usage-percentage-max",
  "accelerator-core-usage-percentage-avg",
  "accelerator-memory-copy-percentage-min",
  "accelerator-memory-copy-percentage-max",
  "accelerator-memory-copy-percentage-avg",
  "accelerator-frame-buffer-usage-min",
  "accelerator-frame-buffer-usage-max",
  "accelerator-frame-buffer-usage-avg",
];
const NAMESPACE_QUERIES = [
  "cpu-request-namespace-sum",
  "cpu-limit-namespace-sum",
  "cpu-usage-namespace-avg",
  "cpu-usage-namespace-max",
  "cpu-usage-namespace-min",
  "cpu-throttle-namespace-avg",
  "cpu-throttle-namespace-max",
  "cpu-throttle-namespace-min",
  "memory-request-namespace-sum",
  "memory-limit-namespace-sum",
  "memory-usage-namespace-avg",
  "memory-usage-namespace-max",
  "memory-usage-namespace-min",
  "memory-rss-usage-namespace-avg",
  "memory-rss-usage-namespace-max",
  "memory-rss-usage-namespace-min",
  "pods-running-namespace-max",
  "pods-running-namespace-avg",
  "pods-total-namespace-max",
  "pods-total-namespace-avg",
];

/** The same catalogue written out by hand from the contract, to cross-check ROS_QUERIES. */
const CONTRACT_QUERIES: readonly RosRowQuery[] = [
  {
    name: "ros-namespace-filter",
    group: "ros-filter",
    labels: { namespace: "namespace" },
    labelRegex: {},
    rowKey: [],
    valueField: null,
  },
  {
    name: "container-image-owner",
    group: "ros-container",
    labels: {
      image_name: "image",
      owner_name: "owner_name",
      owner_kind: "owner_kind",
      container_name: "container",
      pod: "pod",
      namespace: "namespace",
    },
    labelRegex: {},
    rowKey: CONTAINER_KEY,
    valueField: null,
  },
  {
    name: "container-image-workload",
    group: "ros-container",
    labels: {
      image_name: "image",
      workload: "workload",
      workload_type: "workload_type",
      container_name: "container",
      pod: "pod",
      namespace: "namespace",
    },
    labelRegex: {},
    rowKey: CONTAINER_KEY,
    valueField: null,
  },
  ...CONTAINER_VALUE_QUERIES.map((name): RosRowQuery => ({
    name,
    group: "ros-container",
    labels: CONTAINER_LABELS,
    labelRegex: {},
    rowKey: CONTAINER_KEY,
    valueField: name,
  })),
  ...ACCEL_QUERIES.map((name): RosRowQuery => ({
    name,
    group: "ros-container",
    labels: name.includes("frame-buffer")
      ? { ...ACCEL_LABELS, accelerator_profile_name: "GPU_I_PROFILE" }
      : ACCEL_LABELS,
    labelRegex: {},
    rowKey: ACCEL_KEY,
    valueField: name,
  })),
  ...NAMESPACE_QUERIES.map((name): RosRowQuery => ({
    name,
    group: "ros-namespace",
    labels: { namespace: "namespace" },
    labelRegex: {},
    rowKey: ["namespace"],
    valueField: name,
  })),
];

const QUERIES: readonly RosQuery[] = ROS_QUERIES;

const END = new Date("2026-11-06T18:15:00Z");
const DATES = [
  "2026-11-01 00:00:00 +0000 UTC",
  "2026-12-01 00:00:00 +0000 UTC",
  "2026-11-06 18:00:01 +0000 UTC",
  "2026-11-06 18:15:00 +0000 UTC",
];
const FILTER: RosSample[] = [{
  metric: { __name__: "kube_namespace_labels", namespace: "ns" },
  value: "1",
}];

/** The hour's node rows, as buildHourReports leaves them (resource_id set). */
function nodeRows(): Map<string, Row> {
  return new Map([
    [
      "n1",
      new Map([
        ["node", "n1"],
        ["provider_id", "aws:///us-east-2a/i-0d747f55dc1009705"],
        ["resource_id", "i-0d747f55dc1009705"],
        ["node-capacity-cpu-cores", "4.000000"],
      ]),
    ],
  ]);
}

const containerRecord = (r: readonly string[]) =>
  Object.fromEntries(ROS_REPORTS[0]!.header.map((h, i) => [h, r[i]]));

function answers(entries: [string, RosSample[]][]): Map<string, RosSample[]> {
  return new Map([["ros-namespace-filter", FILTER], ...entries]);
}

const cmetric = (extra: Record<string, string> = {}) => ({
  container: "c",
  pod: "p",
  namespace: "ns",
  node: "n1",
  ...extra,
});
const ametric = (extra: Record<string, string> = {}) => ({
  exported_container: "c",
  exported_pod: "p",
  exported_namespace: "ns",
  Hostname: "n1",
  modelName: "NVIDIA A100",
  container: "nvidia-dcgm-exporter",
  pod: "dcgm-exporter-x",
  namespace: "nvidia-gpu-operator",
  ...extra,
});

// ---------------------------------------------------------------------------------------

Deno.test("ROS_QUERIES has the fields row building reads, as the contract lists them", () => {
  assert.deepEqual(
    ROS_QUERIES.map((q) => ({
      name: q.name,
      group: q.group,
      labels: q.labels,
      labelRegex: q.labelRegex,
      rowKey: q.rowKey,
      valueField: q.valueField,
    })),
    CONTRACT_QUERIES,
  );
});

Deno.test("field lists line up with the committed ROS headers", () => {
  assert.equal(ROS_REPORTS[0]!.name, "ros-container");
  assert.equal(ROS_REPORTS[0]!.header.length, 49);
  assert.equal(ROS_ROW_FIELDS["ros-container"].length + 4, 49);
  assert.equal(ROS_REPORTS[1]!.name, "ros-namespace");
  assert.equal(ROS_REPORTS[1]!.header.length, 25);
  assert.equal(ROS_ROW_FIELDS["ros-namespace"].length + 4, 25);
  // Every value field of the catalogue is read by exactly one column, and vice versa the
  // column names are the fields with '-' → '_' (pod counts excepted, contract §1.9).
  const read = new Set([...ROS_ROW_FIELDS["ros-container"], ...ROS_ROW_FIELDS["ros-namespace"]]);
  for (const q of QUERIES) {
    if (q.valueField !== null) assert.ok(read.has(q.valueField), q.valueField);
    for (const f in q.labels) {
      if (f !== "container") assert.ok(read.has(f), `${q.name}: ${f}`);
    }
  }
  ROS_ROW_FIELDS["ros-container"].forEach((f, i) => {
    assert.equal(f.replaceAll("-", "_"), ROS_REPORTS[0]!.header[i + 4]);
  });
  const nsCols = ROS_REPORTS[1]!.header.slice(4);
  ROS_ROW_FIELDS["ros-namespace"].forEach((f, i) => {
    const m = /^pods-(running|total)-namespace-(max|avg)$/.exec(f);
    assert.equal(m ? `namespace_${m[1]}_pods_${m[2]}` : f.replaceAll("-", "_"), nsCols[i]);
  });
});

Deno.test("rosWindowColumns: the four windows of an hour", () => {
  const cases: [string, string[]][] = [
    ["2026-11-06T18:15:00Z", ["2026-11-06 18:00:01 +0000 UTC", "2026-11-06 18:15:00 +0000 UTC"]],
    ["2026-11-06T18:30:00Z", ["2026-11-06 18:15:01 +0000 UTC", "2026-11-06 18:30:00 +0000 UTC"]],
    ["2026-11-06T18:45:00Z", ["2026-11-06 18:30:01 +0000 UTC", "2026-11-06 18:45:00 +0000 UTC"]],
    ["2026-11-06T19:00:00Z", ["2026-11-06 18:45:01 +0000 UTC", "2026-11-06 19:00:00 +0000 UTC"]],
  ];
  for (const [end, interval] of cases) {
    assert.deepEqual(rosWindowColumns(new Date(end)), [
      "2026-11-01 00:00:00 +0000 UTC",
      "2026-12-01 00:00:00 +0000 UTC",
      ...interval,
    ], end);
  }
});

Deno.test("rosWindowColumns: the report period follows interval_start across month and year ends", () => {
  assert.deepEqual(rosWindowColumns(new Date("2026-12-01T00:00:00Z")), [
    "2026-11-01 00:00:00 +0000 UTC",
    "2026-12-01 00:00:00 +0000 UTC",
    "2026-11-30 23:45:01 +0000 UTC",
    "2026-12-01 00:00:00 +0000 UTC",
  ]);
  assert.deepEqual(rosWindowColumns(new Date("2026-12-01T00:15:00Z")), [
    "2026-12-01 00:00:00 +0000 UTC",
    "2027-01-01 00:00:00 +0000 UTC",
    "2026-12-01 00:00:01 +0000 UTC",
    "2026-12-01 00:15:00 +0000 UTC",
  ]);
  assert.deepEqual(rosWindowColumns(new Date("2027-01-01T00:00:00Z")), [
    "2026-12-01 00:00:00 +0000 UTC",
    "2027-01-01 00:00:00 +0000 UTC",
    "2026-12-31 23:45:01 +0000 UTC",
    "2027-01-01 00:00:00 +0000 UTC",
  ]);
});

Deno.test("rosWindowColumns refuses an end that is not on a quarter hour", () => {
  for (const t of ["2026-11-06T18:14:59Z", "2026-11-06T18:15:00.500Z", "2026-11-06T18:10:00Z"]) {
    assert.throws(() => rosWindowColumns(new Date(t)), RangeError, t);
  }
  assert.throws(() => rosWindowColumns(new Date(NaN)), RangeError);
});

Deno.test("rosWindowEnds: H:15, H:30, H:45, (H+1):00", () => {
  assert.deepEqual(rosWindowEnds(new Date("2026-11-30T23:00:00Z")).map((d) => d.toISOString()), [
    "2026-11-30T23:15:00.000Z",
    "2026-11-30T23:30:00.000Z",
    "2026-11-30T23:45:00.000Z",
    "2026-12-01T00:00:00.000Z",
  ]);
  const ends = rosWindowEnds(new Date("2026-11-30T23:00:00Z"));
  assert.equal(rosWindowColumns(ends[3])[2], "2026-11-30 23:45:01 +0000 UTC");
});

Deno.test("filter empty or absent: window not passed, no rows even with container data", () => {
  const data: [string, RosSample[]][] = [
    ["cpu-usage-container-avg", [{ metric: cmetric(), value: "1" }]],
    ["cpu-request-namespace-sum", [{ metric: { namespace: "ns" }, value: "1" }]],
  ];
  for (const byQuery of [new Map(data), new Map([["ros-namespace-filter", []], ...data])]) {
    assert.deepEqual(buildRosWindowReports(QUERIES, byQuery, nodeRows(), END), {
      passed: false,
      container: [],
      namespace: [],
    });
  }
});

Deno.test("filter passes with no other series: passed, zero rows (CMMO writes a header-only file)", () => {
  assert.deepEqual(buildRosWindowReports(QUERIES, answers([]), nodeRows(), END), {
    passed: true,
    container: [],
    namespace: [],
  });
});

Deno.test("a container with every query gives a full 49-column row with Go %.6f values", () => {
  const values = [
    "0.0078125", // exact binary tie → half to even
    "1e21",
    "-0.0078125",
    "0",
    "-0",
    "NaN",
    "+Inf",
    "-Inf",
    "0x1p-2",
    "1_000.5",
    "123456789.123456789",
    "2.5e-7",
  ];
  const byQuery = answers([
    ["container-image-owner", [{
      metric: cmetric({ image: "quay.io/x/app:1", owner_name: "app-7d", owner_kind: "ReplicaSet" }),
      value: "1",
    }]],
    ["container-image-workload", [{
      metric: cmetric({ image: "quay.io/x/app:1", workload: "app", workload_type: "deployment" }),
      value: "1",
    }]],
    ...CONTAINER_VALUE_QUERIES.map((name, i): [string, RosSample[]] => [
      name,
      [{ metric: cmetric(), value: values[i % values.length]! }],
    ]),
    ...ACCEL_QUERIES.map((name, i): [string, RosSample[]] => [
      name,
      [{ metric: ametric({ GPU_I_PROFILE: "1g.5gb" }), value: String(10 + i) }],
    ]),
  ]);
  const out = buildRosWindowReports(QUERIES, byQuery, nodeRows(), END);
  assert.equal(out.passed, true);
  assert.equal(out.container.length, 1);
  assert.deepEqual(out.container[0], [
    ...DATES,
    "c",
    "p",
    "app-7d",
    "ReplicaSet",
    "app",
    "deployment",
    "ns",
    "quay.io/x/app:1",
    "n1",
    "i-0d747f55dc1009705",
    "0.007812",
    "1000000000000000000000.000000",
    "-0.007812",
    "0.000000",
    "-0.000000",
    "NaN",
    "+Inf",
    "-Inf",
    "0.250000",
    "1000.500000",
    "123456789.123457",
    "0.000000",
    "0.007812",
    "1000000000000000000000.000000",
    "-0.007812",
    "0.000000",
    "-0.000000",
    "NaN",
    "+Inf",
    "-Inf",
    "0.250000",
    "1000.500000",
    "123456789.123457",
    "0.000000",
    "NVIDIA A100",
    "1g.5gb",
    "10.000000",
    "11.000000",
    "12.000000",
    "13.000000",
    "14.000000",
    "15.000000",
    "16.000000",
    "17.000000",
    "18.000000",
  ]);
  assert.equal(out.container[0]!.length, 49);
  assert.deepEqual(out.namespace, []);
});

Deno.test("accelerator_profile_name only from the frame-buffer queries", () => {
  const out = buildRosWindowReports(
    QUERIES,
    answers([
      ["cpu-usage-container-avg", [{ metric: cmetric(), value: "1" }]],
      ["accelerator-core-usage-percentage-min", [{
        metric: ametric({ GPU_I_PROFILE: "ignored" }),
        value: "5",
      }]],
    ]),
    nodeRows(),
    END,
  );
  const rec = containerRecord(out.container[0]!);
  assert.equal(rec.accelerator_model_name, "NVIDIA A100");
  assert.equal(rec.accelerator_profile_name, "");
  assert.equal(rec.accelerator_core_usage_percentage_min, "5.000000");
});

Deno.test("node not in the hour's node rows, or no node field: empty node and resource_id", () => {
  const out = buildRosWindowReports(
    QUERIES,
    answers([
      ["cpu-usage-container-avg", [
        { metric: cmetric({ container: "a", node: "gone" }), value: "1" },
        { metric: cmetric({ container: "b", node: "n1" }), value: "2" },
        { metric: { container: "d", pod: "p", namespace: "ns" }, value: "3" }, // no node label
      ]],
      // Only in an image query: the row has no node field at all.
      ["container-image-owner", [{
        metric: cmetric({ container: "e", image: "img" }),
        value: "1",
      }]],
    ]),
    nodeRows(),
    END,
  );
  const recs = out.container.map(containerRecord);
  assert.deepEqual(
    recs.map((r) => [r.container_name, r.node, r.resource_id, r.cpu_usage_container_avg]),
    [
      ["a", "", "", "1.000000"],
      ["b", "n1", "i-0d747f55dc1009705", "2.000000"],
      ["d", "", "", "3.000000"],
      ["e", "", "", ""],
    ],
  );
});

Deno.test("resource_id falls back to the node row's provider_id; nodes are not modified", () => {
  const nodes = new Map([[
    "n2",
    new Map([["node", "n2"], ["provider_id", "gce://proj/zone/vm-9"]]),
  ]]);
  const out = buildRosWindowReports(
    QUERIES,
    answers([["cpu-usage-container-avg", [{ metric: cmetric({ node: "n2" }), value: "1" }]]]),
    nodes,
    END,
  );
  const rec = containerRecord(out.container[0]!);
  assert.equal(rec.node, "n2");
  assert.equal(rec.resource_id, "vm-9");
  assert.equal(nodes.get("n2")!.has("resource_id"), false);
});

Deno.test("accelerator series merge into the container's row (exported_* labels, same key)", () => {
  const out = buildRosWindowReports(
    QUERIES,
    answers([
      ["container-image-owner", [{
        metric: cmetric({ image: "img", owner_name: "o", owner_kind: "Job" }),
        value: "1",
      }]],
      ["cpu-usage-container-max", [{ metric: cmetric(), value: "0.5" }]],
      ["accelerator-frame-buffer-usage-max", [{
        metric: ametric({ GPU_I_PROFILE: "" }),
        value: "42",
      }]],
      // A GPU-only container: its own row; CMMO's accelerator MetricKey writes `container`,
      // not `container_name`, so that column stays empty.
      ["accelerator-core-usage-percentage-avg", [{
        metric: ametric({ exported_container: "gpu-only" }),
        value: "0.0078125",
      }]],
    ]),
    nodeRows(),
    END,
  );
  assert.equal(out.container.length, 2);
  const [gpuOnly, merged] = out.container.map(containerRecord);
  assert.equal(merged!.container_name, "c");
  assert.equal(merged!.owner_kind, "Job");
  assert.equal(merged!.cpu_usage_container_max, "0.500000");
  assert.equal(merged!.accelerator_frame_buffer_usage_max, "42.000000");
  assert.equal(merged!.accelerator_model_name, "NVIDIA A100");
  assert.equal(merged!.node, "n1");
  assert.equal(merged!.resource_id, "i-0d747f55dc1009705");
  assert.deepEqual(
    [gpuOnly!.container_name, gpuOnly!.pod, gpuOnly!.namespace, gpuOnly!.node],
    ["", "p", "ns", "n1"],
  );
  assert.equal(gpuOnly!.accelerator_core_usage_percentage_avg, "0.007812");
});

Deno.test("the accelerator queries run last: a Hostname missing or unknown overwrites node", () => {
  const out = buildRosWindowReports(
    QUERIES,
    answers([
      ["cpu-usage-container-max", [{ metric: cmetric(), value: "1" }]],
      ["accelerator-core-usage-percentage-min", [{
        metric: { exported_container: "c", exported_pod: "p", exported_namespace: "ns" },
        value: "1",
      }]],
    ]),
    nodeRows(),
    END,
  );
  const rec = containerRecord(out.container[0]!);
  assert.equal(rec.node, "");
  assert.equal(rec.resource_id, "");
});

Deno.test("last writer wins: two series of one query, and image_name from both image queries", () => {
  const out = buildRosWindowReports(
    QUERIES,
    answers([
      ["container-image-owner", [{ metric: cmetric({ image: "from-owner" }), value: "1" }]],
      ["container-image-workload", [
        { metric: cmetric({ image: "first-workload", workload: "w1" }), value: "1" },
        { metric: cmetric({ image: "second-workload", workload: "w2" }), value: "1" },
      ]],
      ["cpu-usage-container-avg", [
        { metric: cmetric({ node: "n1" }), value: "1" },
        { metric: cmetric({ node: "elsewhere" }), value: "2" },
      ]],
    ]),
    nodeRows(),
    END,
  );
  assert.equal(out.container.length, 1);
  const rec = containerRecord(out.container[0]!);
  assert.equal(rec.image_name, "second-workload");
  assert.equal(rec.workload, "w2");
  assert.equal(rec.cpu_usage_container_avg, "2.000000");
  assert.equal(rec.node, ""); // "elsewhere" is not among the hour's nodes
});

Deno.test("namespace rows: 25 columns keyed by namespace, sorted, missing values empty", () => {
  const byQuery = answers([
    ...NAMESPACE_QUERIES.map((name, i): [string, RosSample[]] => [
      name,
      [{ metric: { namespace: "zeta" }, value: String(i) + ".5" }],
    ]),
    ["pods-running-namespace-max", [
      { metric: { namespace: "alpha", pod: "ignored" }, value: "3" },
      { metric: { namespace: "zeta" }, value: "7" }, // second write for zeta: wins
    ]],
  ]);
  const out = buildRosWindowReports(QUERIES, byQuery, nodeRows(), END);
  assert.deepEqual(out.container, []);
  assert.equal(out.namespace.length, 2);
  const header = ROS_REPORTS[1]!.header;
  for (const r of out.namespace) assert.equal(r.length, 25);
  const [alpha, zeta] = out.namespace.map((r) =>
    Object.fromEntries(header.map((h, i) => [h, r[i]]))
  );
  assert.deepEqual(out.namespace[0], [
    ...DATES,
    "alpha",
    ...Array(16).fill(""),
    "3.000000",
    "",
    "",
    "",
  ]);
  assert.equal(zeta!.namespace, "zeta");
  assert.equal(zeta!.cpu_request_namespace_sum, "0.500000");
  assert.equal(zeta!.memory_rss_usage_namespace_min, "15.500000");
  assert.equal(zeta!.namespace_running_pods_max, "7.000000");
  assert.equal(zeta!.namespace_running_pods_avg, "17.500000");
  assert.equal(zeta!.namespace_total_pods_max, "18.500000");
  assert.equal(zeta!.namespace_total_pods_avg, "19.500000");
  assert.equal(alpha!.interval_end, "2026-11-06 18:15:00 +0000 UTC");
});

Deno.test("container rows are sorted by their fields in byte order", () => {
  const out = buildRosWindowReports(
    QUERIES,
    answers([["cpu-usage-container-avg", [
      { metric: cmetric({ container: "\uFF01" }), value: "1" },
      { metric: cmetric({ container: "\u{1F600}" }), value: "1" },
      { metric: cmetric({ container: "b" }), value: "1" },
      { metric: cmetric({ container: "a", pod: "q" }), value: "1" },
      { metric: cmetric({ container: "a", pod: "p" }), value: "1" },
    ]]]),
    nodeRows(),
    END,
  );
  assert.deepEqual(out.container.map((r) => `${r[4]}/${r[5]}`), [
    "a/p",
    "a/q",
    "b/p",
    "\uFF01/p",
    "\u{1F600}/p",
  ]);
});

Deno.test("a sample value Go's ParseFloat refuses is a thanos_parse error", () => {
  for (const value of ["", " 1", "0x10", "1e400"]) {
    assert.throws(
      () =>
        buildRosWindowReports(
          QUERIES,
          answers([["cpu-usage-container-avg", [{ metric: cmetric(), value }]]]),
          nodeRows(),
          END,
        ),
      (e: unknown) => e instanceof BridgeError && e.code === "thanos_parse",
      JSON.stringify(value),
    );
  }
  // A label-only query ignores its value, as CMMO does.
  const out = buildRosWindowReports(
    QUERIES,
    answers([["container-image-owner", [{ metric: cmetric({ image: "i" }), value: "garbage" }]]]),
    nodeRows(),
    END,
  );
  assert.equal(containerRecord(out.container[0]!).image_name, "i");
});

Deno.test("a value field no column reads is still parsed: a bad value is a thanos_parse error", () => {
  const junk: RosRowQuery = {
    name: "junk",
    group: "ros-container",
    labels: { container_name: "container" },
    labelRegex: {},
    rowKey: ["container"],
    valueField: "not-a-column",
  };
  const filter = QUERIES[0]!;
  const byQuery = answers([["junk", [{ metric: { container: "c" }, value: "1" }]]]);
  const out = buildRosWindowReports([filter, junk], byQuery, nodeRows(), END);
  assert.equal(out.container.length, 1);
  assert.equal(containerRecord(out.container[0]!).container_name, "c");
  assert.throws(
    () =>
      buildRosWindowReports(
        [filter, junk],
        answers([["junk", [{ metric: { container: "c" }, value: "x" }]]]),
        nodeRows(),
        END,
      ),
    (e: unknown) => e instanceof BridgeError && e.code === "thanos_parse",
  );
});

// ---------------------------------------------------------------------------------------
// buildRosWindowReports caches per query object and per label object. Against it, CMMO's
// row maps written out plainly: a Map per row, every label field of every sample set in
// turn (the implementation before the caches), on random catalogues and answers.

/** The row key as CMMO's `generateKey`, without fast paths. */
function referenceRowKey(metric: Labels, keys: readonly string[]): string {
  if (keys.length === 1) return metric[keys[0]!] ?? "";
  return keys.map((k) => metric[k] ?? "").sort(compareUtf8).join(",");
}

/** CMMO's `iterateVector` into a row map. */
function referenceApply(rows: RowMap, query: RosRowQuery, sample: RosSample): void {
  const key = referenceRowKey(sample.metric, query.rowKey);
  let row = rows.get(key);
  if (!row) {
    row = new Map();
    rows.set(key, row);
  }
  for (const field in query.labels) row.set(field, sample.metric[query.labels[field]!] ?? "");
  for (const field in query.labelRegex) {
    row.set(field, serializeLabels(sample.metric, query.labelRegex[field]!));
  }
  if (query.valueField !== null) {
    row.set(query.valueField, formatFloat(parseSampleValue(sample.value)));
  }
}

function referenceWindow(
  queries: readonly RosRowQuery[],
  byQuery: ReadonlyMap<string, readonly RosSample[]>,
  nodes: ReadonlyMap<string, Row>,
  windowEnd: Date,
): RosWindowReports {
  const dates = rosWindowColumns(windowEnd);
  const passed = queries.some((q) =>
    q.group === "ros-filter" && (byQuery.get(q.name)?.length ?? 0) > 0
  );
  if (!passed) return { passed, container: [], namespace: [] };
  const containers: RowMap = new Map();
  const namespaces: RowMap = new Map();
  for (const q of queries) {
    if (q.group === "ros-filter") continue;
    const rows = q.group === "ros-container" ? containers : namespaces;
    for (const sample of byQuery.get(q.name) ?? []) referenceApply(rows, q, sample);
  }
  const empty: Row = new Map();
  const container = [...containers.values()].map((row) => {
    const nodeName = row.get("node");
    const node = nodeName === undefined ? empty : nodes.get(nodeName) ?? empty;
    return [
      ...dates,
      ...ROS_ROW_FIELDS["ros-container"].map((field) =>
        field === "node"
          ? node.get("node") ?? ""
          : field === "resource_id"
          ? node === empty ? "" : node.get("resource_id") ?? resourceId(node.get("provider_id"))
          : row.get(field) ?? ""
      ),
    ];
  });
  const namespace = [...namespaces.values()].map((row) => [
    ...dates,
    ...ROS_ROW_FIELDS["ros-namespace"].map((field) => row.get(field) ?? ""),
  ]);
  return { passed, container: sortRows(container), namespace: sortRows(namespace) };
}

const LABEL_NAMES = [
  "container",
  "pod",
  "namespace",
  "node",
  "image",
  "Hostname",
  "exported_pod",
  "label_app",
  "label_team",
  "owner_kind",
];
const LABEL_VALUES = ["", "a", "b", "ns", ",", "a,b", "n1", "n2", "n3", "\uFF01", "\u{1F600}", "é"];
const SAMPLE_VALUES = [
  "0",
  "1",
  "-0",
  "NaN",
  "+Inf",
  "-Inf",
  "0x1p-2",
  "1e21",
  "0.0078125",
  "1_000.5",
  "123456789.123456789",
];

/** A random label set (labels may be absent). */
function randomLabels(prng: Prng): Labels {
  const out: Record<string, string> = {};
  for (const name of LABEL_NAMES) {
    if (prng.next() < 0.7) out[name] = prng.pick(LABEL_VALUES);
  }
  return out;
}

/** Random ROS queries: label fields (read and unread), regex fields, 0–4 key labels. */
function randomQueries(prng: Prng, n: number): RosRowQuery[] {
  const out: RosRowQuery[] = [{ ...QUERIES[0]!, name: "filter" }];
  for (let i = 0; i < n; i++) {
    const group = prng.next() < 0.7 ? "ros-container" : "ros-namespace";
    const fields = [...ROS_ROW_FIELDS[group], "container", "junk"];
    const labels: Record<string, string> = {};
    for (let k = prng.int(0, 6); k > 0; k--) labels[prng.pick(fields)] = prng.pick(LABEL_NAMES);
    const labelRegex: Record<string, string> = {};
    for (let k = prng.int(-2, 2); k > 0; k--) {
      labelRegex[prng.pick(fields)] = prng.pick(["label_", "^node$", "o", "."]);
    }
    const keys = Array.from({ length: prng.int(0, 4) }, () => prng.pick(LABEL_NAMES));
    const r = prng.next();
    out.push({
      // A name twice now and then: both queries read the same answer.
      name: prng.next() < 0.1 && i > 0 ? out[out.length - 1]!.name : `q${i}`,
      group,
      labels,
      labelRegex,
      rowKey: keys,
      valueField: r < 0.2 ? null : r < 0.25 ? "junk" : prng.pick(fields),
    });
  }
  return out;
}

/** One window's answers: label sets drawn (with repeats) from `pool`, random values. */
function randomAnswers(
  prng: Prng,
  queries: readonly RosRowQuery[],
  pool: readonly Labels[],
): Map<string, RosSample[]> {
  const byQuery = new Map<string, RosSample[]>();
  for (const q of queries) {
    const n = q.group === "ros-filter" ? (prng.next() < 0.1 ? 0 : 1) : prng.int(0, 8);
    const value = () =>
      prng.next() < 0.5
        ? prng.pick(SAMPLE_VALUES)
        : String((prng.next() - 0.3) * 10 ** prng.int(-8, 12));
    byQuery.set(
      q.name,
      Array.from({ length: n }, () => ({ metric: prng.pick(pool), value: value() })),
    );
  }
  return byQuery;
}

function randomNodes(prng: Prng): Map<string, Row> {
  const nodes = new Map<string, Row>();
  const all: [string, Row][] = [
    ["n1", new Map([["node", "n1"], ["provider_id", "aws:///z/i-1"], ["resource_id", "i-1"]])],
    ["n2", new Map([["node", "n2"], ["provider_id", "gce://p/z/vm-2"]])],
    ["", new Map([["node", ""], ["resource_id", "r-empty"]])],
    ["n3", new Map([["provider_id", "no-slash"]])],
  ];
  for (const [name, row] of all) if (prng.next() < 0.6) nodes.set(name, row);
  return nodes;
}

/** Copies of the label sets, so that nothing can come from a cache. */
function fresh(byQuery: Map<string, RosSample[]>): Map<string, RosSample[]> {
  return new Map(
    [...byQuery].map((
      [name, list],
    ) => [name, list.map((s) => ({ ...s, metric: { ...s.metric } }))]),
  );
}

Deno.test("property: buildRosWindowReports equals the plain row maps on random catalogues and answers", () => {
  const prng = new Prng(20261106);
  // Label objects shared by every trial and window: each meets many query shapes.
  const shared = Array.from({ length: 10 }, () => randomLabels(prng));
  const ends = rosWindowEnds(new Date("2026-11-06T18:00:00Z"));
  let rows = 0;
  for (let trial = 0; trial < 300; trial++) {
    const queries = randomQueries(prng, prng.int(1, 10));
    if (trial % 10 === 0) queries.push(...QUERIES.slice(1));
    const pool = [...shared, ...Array.from({ length: 6 }, () => randomLabels(prng))];
    const nodes = randomNodes(prng);
    for (let w = 0; w < 4; w++) {
      const byQuery = randomAnswers(prng, queries, pool);
      const want = referenceWindow(queries, byQuery, nodes, ends[w]!);
      const context = `trial ${trial}, window ${w}`;
      assert.deepEqual(buildRosWindowReports(queries, byQuery, nodes, ends[w]!), want, context);
      assert.deepEqual(
        buildRosWindowReports(queries, fresh(byQuery), nodes, ends[w]!),
        want,
        `${context}, fresh labels`,
      );
      // New query objects with the same content: compiled anew, same rows.
      const copies = queries.map((q) => ({ ...q, rowKey: [...q.rowKey] }));
      assert.deepEqual(buildRosWindowReports(copies, byQuery, nodes, ends[w]!), want, context);
      rows += want.container.length + want.namespace.length;
    }
  }
  assert.ok(rows > 3000, `only ${rows} rows compared`);
});

Deno.test("property: the real catalogue, label objects reused over windows with new values", () => {
  const prng = new Prng(7);
  const containers = Array.from({ length: 40 }, (_, i) => ({
    container: `c${i % 7}`,
    pod: `p${i % 13}`,
    namespace: `ns${i % 3}`,
    node: prng.pick(["n1", "n2", "gone"]),
  }));
  const gpus = containers.slice(0, 10).map((c) => ({
    exported_container: c.container,
    exported_pod: c.pod,
    exported_namespace: c.namespace,
    Hostname: prng.pick(["n1", "n2"]),
    modelName: "A100",
    GPU_I_PROFILE: "1g.5gb",
  }));
  const images = containers.map((c) => ({ ...c, image: `img-${c.pod}`, workload: "w" }));
  const namespaces = ["ns0", "ns1", "ns2"].map((namespace) => ({ namespace }));
  const nodes = nodeRows().set("n2", new Map([["node", "n2"], ["provider_id", "x/y/vm-2"]]));
  for (let hour = 0; hour < 6; hour++) {
    const ends = rosWindowEnds(new Date(Date.UTC(2026, 10, 30, 22 + hour)));
    for (let w = 0; w < 4; w++) {
      const byQuery = new Map<string, RosSample[]>();
      for (const q of QUERIES) {
        const pool = q.group === "ros-filter" || q.group === "ros-namespace"
          ? namespaces
          : q.name.startsWith("accelerator")
          ? gpus
          : q.name.startsWith("container-image")
          ? images
          : containers;
        byQuery.set(
          q.name,
          pool.filter(() => prng.next() < 0.8).map((metric) => ({
            metric,
            value: String(hour * 4 + w + prng.int(0, 3) / 8),
          })),
        );
      }
      const want = referenceWindow(QUERIES, byQuery, nodes, ends[w]!);
      assert.deepEqual(buildRosWindowReports(QUERIES, byQuery, nodes, ends[w]!), want);
      assert.deepEqual(buildRosWindowReports(QUERIES, fresh(byQuery), nodes, ends[w]!), want);
    }
  }
});

Deno.test("label objects reused across windows: each window has its own values and rows only", () => {
  const a = cmetric({ container: "a" });
  const b = cmetric({ container: "b" });
  const owner = cmetric({ container: "a", image: "img-a", owner_kind: "Job" });
  const window = (entries: [string, RosSample[]][], end: Date) =>
    buildRosWindowReports(QUERIES, answers(entries), nodeRows(), end).container.map(
      containerRecord,
    );
  const [end1, end2, end3] = rosWindowEnds(new Date("2026-11-06T18:00:00Z"));
  const first = window([
    ["container-image-owner", [{ metric: owner, value: "1" }]],
    ["cpu-usage-container-avg", [{ metric: a, value: "1" }, { metric: b, value: "2" }]],
    ["cpu-usage-container-max", [{ metric: a, value: "3" }]],
  ], end1);
  assert.deepEqual(
    first.map((
      r,
    ) => [r.container_name, r.image_name, r.cpu_usage_container_avg, r.cpu_usage_container_max]),
    [["a", "img-a", "1.000000", "3.000000"], ["b", "", "2.000000", ""]],
  );
  const second = window([
    ["cpu-usage-container-avg", [{ metric: b, value: "0.5" }]],
    ["cpu-usage-container-min", [{ metric: a, value: "NaN" }]],
  ], end2);
  assert.deepEqual(
    second.map((r) => [
      r.container_name,
      r.image_name,
      r.owner_kind,
      r.cpu_usage_container_avg,
      r.cpu_usage_container_max,
      r.cpu_usage_container_min,
      r.interval_end,
    ]),
    [
      ["a", "", "", "", "", "NaN", "2026-11-06 18:30:00 +0000 UTC"],
      ["b", "", "", "0.500000", "", "", "2026-11-06 18:30:00 +0000 UTC"],
    ],
  );
  // The same label object under another query shape (the owner labels as a value query's).
  const third = window([["cpu-usage-container-sum", [{ metric: owner, value: "-0" }]]], end3);
  assert.deepEqual(
    third.map((r) => [r.container_name, r.image_name, r.cpu_usage_container_sum]),
    [["a", "", "-0.000000"]],
  );
});
