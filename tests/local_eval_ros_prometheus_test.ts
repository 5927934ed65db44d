/**
 * Acceptance of the local evaluator (src/collect/local_eval.ts) against the
 * real engines: on a synthetic ROS hub (tools/synth, hostile label values,
 * the same pod names in every cluster), every one of CMMO's 56 ROS queries —
 * per cluster and batched over all clusters, as `planRosQueries` /
 * `planBatchRosQueries` send them — and the 36 cost queries are evaluated
 * by Prometheus (`POST /api/v1/query_range`) and by `evaluateRange` over the
 * raw samples `fetchRaw` fetches from the same server. ROS: step 900 s over
 * window ends (H:15, H:30, H:45, H+1:00) of a few hours, including the first
 * windows of the data (warm-up) and a cluster's outage; cost: step 60 s over
 * one hour. Every answer must have the same series (label sets, order), the
 * same steps, and bit-identical values (so also the same Go `%.6f` text).
 *
 * Engines: Debian's Prometheus 2.42 (`prometheus2` semantics) and
 * Prometheus 3.16 from the CI cache (`prometheus3` semantics). Servers are
 * stopped by PID and the temp folders removed in `finally`.
 */
import assert from "node:assert/strict";
import { COST_QUERIES } from "../src/collect/catalogue.ts";
import {
  compileLocal,
  type EngineSemantics,
  evaluateRange,
  type LocalQuery,
  type SelectorNeed,
} from "../src/collect/local_eval.ts";
import { planBatchQueries, planQueries } from "../src/collect/query_plan.ts";
import { fetchRaw } from "../src/collect/raw_fetch.ts";
import { parseSampleValue } from "../src/collect/reduce.ts";
import { planBatchRosQueries, planRosQueries } from "../src/collect/ros_plan.ts";
import { compareUtf8 } from "../src/collect/utf8_compare.ts";
import { formatFloat } from "../src/package/go_float.ts";
import { ThanosClient } from "../src/thanos/thanos_client.ts";
import type { Hub, HubOptions } from "../tools/synth/model.ts";
import { prepareHub, type PrometheusServer, startPrometheus } from "../tools/synth/prometheus.ts";
import { type EngineGroup, startPrometheus3 } from "./support/engines.ts";

const HUB: HubOptions = {
  seed: 424242,
  clusters: 3, // the third opts no namespace in: its ROS answers are empty
  nodes: 3,
  pods: 8,
  pvcs: 1,
  vms: 1,
  gpuPods: 4,
  gpuClusters: 1,
  start: new Date("2026-10-31T22:00:00Z"),
  hours: 26,
  intervalSeconds: 300,
  hostile: true,
  ros: true,
  sharedNames: true,
};

const LOOKBACK_MS = 300_000;
const MIN = 60_000;
const HOUR = 3_600_000;

interface Grid {
  readonly name: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly stepMs: number;
}

/** One expression to compare, with a name for messages. */
interface Case {
  readonly name: string;
  readonly expr: string;
  readonly ros: boolean;
}

interface Stats {
  queries: number;
  series: number;
  points: number;
  /** Points whose value differs in the last bits but not in `%.6f`. */
  fmtOnly: number;
  nonEmpty: Map<string, number>;
  mismatches: string[];
}

interface PromSeries {
  metric: Record<string, string>;
  values: [number, string][];
}

async function queryRange(url: string, expr: string, grid: Grid): Promise<PromSeries[]> {
  const body = new URLSearchParams({
    query: expr,
    start: String(grid.startMs / 1000),
    end: String(grid.endMs / 1000),
    step: String(grid.stepMs / 1000),
  });
  const res = await fetch(`${url}/api/v1/query_range`, { method: "POST", body });
  const json = await res.json();
  assert.equal(json.status, "success", `query failed: ${JSON.stringify(json).slice(0, 500)}`);
  assert.equal(json.data.resultType, "matrix");
  return json.data.result as PromSeries[];
}

function labelsText(m: Record<string, string>): string {
  const names = Object.keys(m).filter((n) => m[n] !== "").sort(compareUtf8);
  return JSON.stringify(names.map((n) => [n, m[n]]));
}

function compile(c: Case): LocalQuery {
  const r = compileLocal(c.expr, { lookbackMs: LOOKBACK_MS });
  assert.ok(r.ok, `${c.name} does not compile: ${r.ok ? "" : r.reason}`);
  return r.query;
}

/** Compares every case on one grid: one raw fetch for all, then one query_range per case. */
async function compareAll(
  url: string,
  semantics: EngineSemantics,
  cases: readonly Case[],
  grid: Grid,
  stats: Stats,
): Promise<void> {
  const compiled = cases.map(compile);
  const needs: SelectorNeed[] = compiled.flatMap((q) => q.selectors);
  const client = new ThanosClient({ url });
  let store;
  try {
    store = await fetchRaw(client, { firstMs: grid.startMs, lastMs: grid.endMs, needs });
  } finally {
    client.close();
  }
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i]!;
    const where = `${semantics} ${grid.name} ${c.name}`;
    const local = evaluateRange(compiled[i]!, (key) => store.series(key), {
      startMs: grid.startMs,
      endMs: grid.endMs,
      stepMs: grid.stepMs,
      lookbackMs: LOOKBACK_MS,
      semantics,
    });
    const remote = await queryRange(url, c.expr, grid);
    stats.queries++;
    stats.nonEmpty.set(c.name, (stats.nonEmpty.get(c.name) ?? 0) + remote.length);
    const localKeys = local.map((s) => labelsText(s.metric as Record<string, string>));
    const remoteKeys = remote.map((s) => labelsText(s.metric));
    if (JSON.stringify(localKeys) !== JSON.stringify(remoteKeys)) {
      const onlyLocal = localKeys.filter((k) => !remoteKeys.includes(k));
      const onlyRemote = remoteKeys.filter((k) => !localKeys.includes(k));
      stats.mismatches.push(
        `${where}: series differ (local ${localKeys.length}, Prometheus ${remoteKeys.length}; ` +
          `only local ${onlyLocal.slice(0, 2).join(" ")}; only Prometheus ${
            onlyRemote.slice(0, 2).join(" ")
          })`,
      );
      continue;
    }
    for (let s = 0; s < local.length; s++) {
      stats.series++;
      const l = local[s]!;
      const r = remote[s]!;
      const localSteps: number[] = [];
      for (let k = 0; k < l.present.length; k++) if (l.present[k] === 1) localSteps.push(k);
      const remoteSteps = r.values.map(([t]) =>
        Math.round((t * 1000 - grid.startMs) / grid.stepMs)
      );
      if (JSON.stringify(localSteps) !== JSON.stringify(remoteSteps)) {
        stats.mismatches.push(
          `${where} ${remoteKeys[s]}: steps differ (local ${localSteps.join(",")}; ` +
            `Prometheus ${remoteSteps.join(",")})`,
        );
        continue;
      }
      for (let j = 0; j < localSteps.length; j++) {
        stats.points++;
        const lv = l.values[localSteps[j]!]!;
        const rv = parseSampleValue(r.values[j]![1]);
        if (Object.is(lv, rv)) continue;
        if (formatFloat(lv) === formatFloat(rv)) stats.fmtOnly++;
        stats.mismatches.push(
          `${where} ${remoteKeys[s]} @ ${new Date(r.values[j]![0] * 1000).toISOString()}: ` +
            `local ${lv} Prometheus ${r.values[j]![1]}`,
        );
      }
    }
  }
}

function rosCases(hub: Hub): Case[] {
  const out: Case[] = [];
  for (const cluster of hub.clusters) {
    for (
      const p of planRosQueries({
        clusterLabel: "clusterID",
        clusterId: cluster.id,
        rateWindow: "15m",
      })
    ) {
      out.push({ name: `${p.query.name} [${cluster.id}]`, expr: p.expr, ros: true });
    }
  }
  const ids = hub.clusters.map((c) => c.id);
  for (
    const p of planBatchRosQueries({
      clusterLabel: "clusterID",
      clusterIds: ids,
      rateWindow: "15m",
    })
  ) {
    out.push({ name: `${p.query.name} [batch]`, expr: p.expr, ros: true });
  }
  return out;
}

function costCases(hub: Hub): Case[] {
  const out: Case[] = [];
  for (const cluster of hub.clusters.slice(0, 2)) {
    const opts = { clusterLabel: "clusterID", clusterId: cluster.id, rateWindow: "15m" };
    for (const p of planQueries(COST_QUERIES, opts)) {
      out.push({ name: `${p.query.name} [${cluster.id}]`, expr: p.expr, ros: false });
    }
  }
  const ids = hub.clusters.map((c) => c.id);
  const batch = planBatchQueries(COST_QUERIES, {
    clusterLabel: "clusterID",
    clusterIds: ids,
    rateWindow: "15m",
  });
  for (const p of batch) out.push({ name: `${p.query.name} [batch]`, expr: p.expr, ros: false });
  return out;
}

function grids(hub: Hub): { ros: Grid[]; cost: Grid[] } {
  const t0 = hub.startMs;
  return {
    ros: [
      // From the first window end: warm-up, GPU pods, restarts, jobs.
      { name: "ros 00:15-06:00", startMs: t0 + 15 * MIN, endMs: t0 + 6 * HOUR, stepMs: 15 * MIN },
      // Cluster 1's outage around hour 20, the day's end.
      {
        name: "ros 19:00-24:30",
        startMs: t0 + 19 * HOUR,
        endMs: t0 + 24.5 * HOUR,
        stepMs: 15 * MIN,
      },
    ],
    cost: [
      {
        name: "cost 03:00-03:59",
        startMs: t0 + 3 * HOUR,
        endMs: t0 + 3 * HOUR + 59 * MIN,
        stepMs: MIN,
      },
    ],
  };
}

function newStats(): Stats {
  return { queries: 0, series: 0, points: 0, fmtOnly: 0, nonEmpty: new Map(), mismatches: [] };
}

function report(semantics: EngineSemantics, what: string, stats: Stats): void {
  console.log(
    `${semantics} ${what}: ${stats.queries} query answers, ${stats.series} series, ` +
      `${stats.points} points; ${stats.mismatches.length} mismatches ` +
      `(${stats.fmtOnly} only in the last bits)`,
  );
  for (const m of stats.mismatches.slice(0, 20)) console.log(`  ${m}`);
}

async function compareEngine(url: string, semantics: EngineSemantics, hub: Hub): Promise<string[]> {
  const g = grids(hub);
  const ros = rosCases(hub);
  const rosStats = newStats();
  for (const grid of g.ros) await compareAll(url, semantics, ros, grid, rosStats);
  report(semantics, "ROS (56 x 3 clusters + batch, step 900 s)", rosStats);
  const costStats = newStats();
  for (const grid of g.cost) await compareAll(url, semantics, costCases(hub), grid, costStats);
  report(semantics, "cost (36 x 2 clusters + batch, step 60 s)", costStats);
  // Every ROS query (per cluster or batched) answers something somewhere: the comparison is not vacuous.
  const names = [...new Set(ros.map((c) => c.name.replace(/ \[.*$/, "")))];
  const empty = names.filter((name) =>
    ![...rosStats.nonEmpty].some(([k, n]) => k.startsWith(`${name} [`) && n > 0)
  );
  assert.deepEqual(empty, [], `ROS queries without any series: ${empty.join(", ")}`);
  return [...rosStats.mismatches, ...costStats.mismatches];
}

Deno.test({
  name: "local_eval equals Prometheus 2.42 and 3.16 on all 56 ROS and 36 cost queries",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "local-eval-ros-" });
    let prom: PrometheusServer | undefined;
    let prom3: EngineGroup | undefined;
    try {
      const { hub, dataDir } = await prepareHub(HUB, dir);
      await t.step("Prometheus 2.42", async () => {
        prom = await startPrometheus({ dataDir });
        const mismatches = await compareEngine(prom.url, "prometheus2", hub);
        await prom.stop();
        assert.deepEqual(mismatches, []);
      });
      await t.step("Prometheus 3.16", async () => {
        prom3 = await startPrometheus3({
          sourceDataDir: dataDir,
          probeTime: new Date(hub.startMs + 3 * HOUR),
        });
        const mismatches = await compareEngine(prom3.endpoints[0]!.url, "prometheus3", hub);
        assert.deepEqual(mismatches, []);
      });
    } finally {
      await prom?.stop();
      await prom3?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
