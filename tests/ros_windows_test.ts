/**
 * ROS windows (contract §3.1, BRIDGE §1): (a) every range window of the
 * rewritten ROS queries holds enough samples of a 300 s series (ACM's push
 * interval) at every alignment, with either edge rule; (b) against the real
 * Prometheus 2.42 over the synthetic hub, one `query_range` with step 900 s
 * from H:15 to (H+1):00 gives, at each point, exactly the instant query at
 * that time — for all 56 planned ROS queries — so the collector may run one
 * range query per ROS query and hour instead of four instant queries.
 */

import assert from "node:assert/strict";
import { parser } from "@prometheus-io/lezer-promql";
import type { SyntaxNode } from "@lezer/common";
import { parseDuration } from "../src/model.ts";
import { planRosQueries } from "../src/collect/ros_plan.ts";
import { ROS_QUERIES } from "../src/collect/ros_catalogue.ts";
import type { HubOptions } from "../tools/synth/model.ts";
import { prepareHub, type PrometheusServer, startPrometheus } from "../tools/synth/prometheus.ts";

const PUSH_INTERVAL_S = 300;
/** Prometheus's default lookback delta for instant vector selectors. */
const LOOKBACK_S = 300;
/** Default subquery resolution: the server's evaluation interval (1m on ACM's Thanos). */
const SUBQUERY_STEP_S = 60;
const RATE_LIKE = new Set([
  "rate",
  "irate",
  "increase",
  "delta",
  "idelta",
  "deriv",
  "resets",
  "changes",
]);

interface Window {
  /** Function name, `subquery` or `lookback`. */
  readonly kind: string;
  readonly seconds: number;
}

/** Every range window of `source`: matrix windows with their function, subquery ranges. */
function windowsOf(source: string): Window[] {
  const out: Window[] = [];
  parser.parse(source).iterate({
    enter(ref) {
      assert.ok(!ref.type.isError, `parse error at ${ref.from} in ${source}`);
      if (ref.name !== "DurationExpr") return;
      const node: SyntaxNode = ref.node;
      const seconds = parseDuration(source.slice(node.from, node.to)) / 1000;
      if (node.parent?.name === "SubqueryExpr") {
        assert.equal(node.parent.getChildren("DurationExpr").length, 1, "default resolution");
        out.push({ kind: "subquery", seconds });
      } else if (node.parent?.name === "MatrixSelector") {
        let call: SyntaxNode | null = node.parent.parent;
        while (call !== null && call.name !== "FunctionCall") call = call.parent;
        const id = call?.getChild("FunctionIdentifier");
        assert.ok(id, `window without function in ${source}`);
        out.push({ kind: source.slice(id.from, id.to), seconds });
      }
    },
  });
  return out;
}

/** Samples of a series pushed every `interval` s at phase `phase` in `(t−w, t]` or `[t−w, t]`, t = 0. */
function samplesIn(w: number, phase: number, closedLeft: boolean, interval = PUSH_INTERVAL_S) {
  let n = 0;
  for (let s = phase - Math.ceil(w / interval + 1) * interval; s <= 0; s += interval) {
    if (s > -w || (closedLeft && s === -w)) n++;
  }
  return n;
}

/** Least samples over every alignment (whole seconds and half seconds) of a 300 s series. */
function leastSamples(w: number, closedLeft: boolean): number {
  let least = Infinity;
  for (let phase = 0; phase < PUSH_INTERVAL_S; phase += 0.5) {
    least = Math.min(least, samplesIn(w, phase, closedLeft));
  }
  return least;
}

/** Samples a window function needs for a value: 2 for rate-like, 1 for `*_over_time`. */
function needed(kind: string): number {
  if (RATE_LIKE.has(kind)) return 2;
  assert.ok(kind.endsWith("_over_time"), `unexpected window function ${kind}`);
  return 1;
}

Deno.test("ROS windows: every window holds enough 300 s samples at every alignment", () => {
  const plan = planRosQueries({ clusterLabel: "clusterID", clusterId: "c", rateWindow: "15m" });
  const distinct = new Map<string, Window>();
  for (const p of plan) {
    for (const w of windowsOf(p.expr)) distinct.set(`${w.kind}[${w.seconds}s]`, w);
  }
  distinct.set("lookback[300s]", { kind: "lookback", seconds: LOOKBACK_S });
  const table: string[] = [];
  for (const [key, w] of [...distinct].sort()) {
    for (const closedLeft of [false, true]) {
      const edge = closedLeft ? "[t-w, t] (Prometheus 2.x)" : "(t-w, t] (Prometheus 3 / Thanos)";
      if (w.kind === "subquery") {
        // Steps at absolute multiples of 60 s; every instant ROS evaluation is on a 15-min boundary.
        const steps = Math.floor(w.seconds / SUBQUERY_STEP_S) + (closedLeft ? 1 : 0);
        assert.ok(steps >= 1, key);
        table.push(`${key} ${edge}: ${steps} inner evaluations`);
        continue;
      }
      const least = leastSamples(w.seconds, closedLeft);
      const need = w.kind === "lookback" ? 1 : needed(w.kind);
      assert.ok(least >= need, `${key} ${edge}: ${least} < ${need} samples`);
      if (w.kind !== "lookback") {
        // One lost push still leaves enough.
        assert.ok(least - 1 >= need, `${key} ${edge}: one missed push leaves ${least - 1}`);
      }
      table.push(`${key} ${edge}: ≥ ${least} samples (need ${need})`);
    }
  }
  assert.deepEqual([...distinct.keys()].sort(), [
    "avg_over_time[900s]",
    "lookback[300s]",
    "max_over_time[900s]",
    "min_over_time[900s]",
    "rate[900s]",
    "subquery[900s]",
  ]);
  // CMMO's original [5m] rate window would fail on Prometheus 3 / Thanos: one sample.
  assert.equal(leastSamples(300, false), 1);
  assert.ok(
    windowsOf(ROS_QUERIES.find((q) => q.name === "cpu-throttle-namespace-max")!.expr)
      .some((w) => w.kind === "rate" && w.seconds === 300),
  );
  // And an exact count for the windows used: (t-15m, t] always holds exactly 3.
  assert.equal(leastSamples(900, false), 3);
  assert.equal(leastSamples(900, true), 3);
  console.log(table.join("\n"));
});

// ---------------------------------------------------------------------------
// (b) query_range step 900 == instant queries, on the real Prometheus 2.42.

const PROMETHEUS = "/usr/bin/prometheus";
const SMALL_HUB: HubOptions = {
  seed: 20261127,
  clusters: 1,
  nodes: 2,
  pods: 6,
  pvcs: 1,
  vms: 0,
  gpuPods: 2,
  gpuClusters: 1,
  start: new Date("2026-10-31T22:00:00Z"),
  hours: 26,
  intervalSeconds: 300,
  hostile: true,
};

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

interface Sample {
  readonly metric: Record<string, string>;
  readonly value?: [number, string];
  readonly values?: [number, string][];
}

async function api(url: string, path: string, form: Record<string, string>): Promise<Sample[]> {
  const res = await fetch(`${url}/api/v1/${path}`, {
    method: "POST",
    body: new URLSearchParams(form),
  });
  const body = await res.json();
  assert.equal(body.status, "success", `${path} ${form.query}: ${JSON.stringify(body)}`);
  assert.equal(body.warnings, undefined);
  return body.data.result;
}

function seriesKey(metric: Record<string, string>): string {
  return JSON.stringify(Object.entries(metric).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

Deno.test({
  name: "ROS windows: query_range step 900 from H:15 to (H+1):00 equals the 4 instant queries",
  ignore: !(await exists(PROMETHEUS)),
  sanitizeResources: false,
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "ros_windows_" });
    let server: PrometheusServer | undefined;
    try {
      const { hub, dataDir } = await prepareHub(SMALL_HUB, work);
      server = await startPrometheus({ dataDir });
      const url = server.url;
      const cluster = hub.clusters[0]!;
      const plan = planRosQueries({
        clusterLabel: "clusterID",
        clusterId: cluster.id,
        rateWindow: "15m",
      });
      const hours = [2, 13].map((h) => SMALL_HUB.start.getTime() / 1000 + h * 3600);
      const nonEmpty = new Set<string>();
      for (const hour of hours) {
        const points = [1, 2, 3, 4].map((i) => hour + i * 900);
        await Promise.all(plan.map(async (p) => {
          const range = await api(url, "query_range", {
            query: p.expr,
            start: String(points[0]),
            end: String(points[3]),
            step: "900",
          });
          for (const t of points) {
            const instant = await api(url, "query", { query: p.expr, time: String(t) });
            const fromRange = new Map<string, string>();
            for (const s of range) {
              const v = s.values!.find(([ts]) => ts === t);
              if (v) fromRange.set(seriesKey(s.metric), v[1]);
            }
            const fromInstant = new Map(instant.map((s) => [seriesKey(s.metric), s.value![1]]));
            assert.deepEqual(fromRange, fromInstant, `${p.query.name} at ${t}`);
            if (fromInstant.size > 0) nonEmpty.add(p.query.name);
          }
        }));
      }
      // Not vacuous: every ROS query returns something for this cluster at some point.
      assert.deepEqual(
        plan.map((p) => p.query.name).filter((n) => !nonEmpty.has(n)),
        [],
        "queries that never returned a series",
      );

      // Why the [5m] rate windows are widened: on this 300 s data CMMO's original is empty
      // (one sample in 5m, samples never on the 60 s step grid), the widened one is not.
      const throttle = ROS_QUERIES.find((q) => q.name === "cpu-throttle-namespace-max")!;
      const original = planRosQueries({
        clusterLabel: "clusterID",
        clusterId: cluster.id,
        rateWindow: "1m", // widens nothing
      }).find((p) => p.query === throttle)!;
      assert.ok(original.expr.includes("[5m]))[15m:]"));
      const t = String(hours[0]! + 3600);
      assert.deepEqual(await api(url, "query", { query: original.expr, time: t }), []);
      const widened = plan.find((p) => p.query === throttle)!;
      assert.ok((await api(url, "query", { query: widened.expr, time: t })).length > 0);
    } finally {
      await server?.stop();
      await Deno.remove(work, { recursive: true });
    }
  },
});
