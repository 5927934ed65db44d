import assert from "node:assert/strict";
import { StateStore } from "../package/state_store.ts";
import { COST_QUERIES } from "./catalogue.ts";
import {
  type ClusterBatch,
  collectHoursBatch,
  type MatrixSeries,
  type RangeQuerier,
  type RangeRequest,
  type SkipProbe,
} from "./hour_collector.ts";
import {
  type BatchPlannedQuery,
  planBatchQueries,
  type PlannedQuery,
  planQueries,
} from "./query_plan.ts";
import { compareUtf8 } from "./utf8_compare.ts";

const DAY = "2026-11-01";
const LABEL = "clusterID";
const IDS = ["c.1", "c-2"]; // "." is a regex metacharacter (the state allows [A-Za-z0-9._-])
const OPTS = { clusterLabel: LABEL, rateWindow: "15m" };

/** Same names in both clusters, different values; `node-role` carries the cluster label. */
function points(clusterId: string, query: string, t: number) {
  const k = clusterId === IDS[0] ? 1 : 3;
  const minute = Math.floor((t % 3600) / 60);
  switch (query) {
    case "node-capacity-cpu-cores":
      return [{ metric: { node: "n1", provider_id: "aws:///z/i-1" }, v: 4 * k }];
    case "node-role":
      return [{ metric: { [LABEL]: clusterId, node: "n1", role: "worker" }, v: 1 }];
    case "pod-usage-cpu-cores":
      return [
        { metric: { pod: "p1", namespace: "ns", node: "n1" }, v: 0.1 * k * (minute + 1) },
        { metric: { pod: "p2", namespace: "ns", node: "n1" }, v: 0.2 * k },
      ];
    case "pod-labels":
      return [{ metric: { pod: "p1", namespace: "ns", label_app: `app-${clusterId}` }, v: 1 }];
    default:
      return [];
  }
}

function compareLabels(a: Record<string, string>, b: Record<string, string>): number {
  const an = Object.keys(a).sort(compareUtf8);
  const bn = Object.keys(b).sort(compareUtf8);
  for (let i = 0; i < Math.min(an.length, bn.length); i++) {
    const c = compareUtf8(an[i]!, bn[i]!) || compareUtf8(a[an[i]!]!, b[bn[i]!]!);
    if (c !== 0) return c;
  }
  return an.length - bn.length;
}

/**
 * Answers the single-cluster plans and the batch plan (client mode, step 60)
 * from `points`: a batched answer is every cluster's series with the cluster
 * label, sorted like Prometheus sorts an answer.
 */
class FakeThanos implements RangeQuerier {
  requests: RangeRequest[] = [];
  failWhen: (r: RangeRequest) => boolean = () => false;
  constructor(
    readonly singles: Map<string, readonly PlannedQuery[]>,
    readonly batch: readonly BatchPlannedQuery[],
  ) {}
  queryRange(r: RangeRequest, onSeries: (s: MatrixSeries) => void): Promise<unknown> {
    this.requests.push(r);
    if (this.failWhen(r)) return Promise.reject(new Error("HTTP 422 bad_data"));
    let clusters: string[] = [];
    let name = "";
    const b = this.batch.find((p) => p.expr === r.query);
    if (b) {
      clusters = IDS;
      name = b.query.name;
    } else {
      for (const [id, plan] of this.singles) {
        const p = plan.find((p) => p.expr === r.query);
        if (p) [clusters, name] = [[id], p.query.name];
      }
    }
    if (!name) throw new Error(`unexpected query ${r.query}`);
    const series: { metric: Record<string, string>; values: [number, string][] }[] = [];
    for (const id of clusters) {
      const byKey = new Map<string, (typeof series)[number]>();
      for (let t = r.start; t <= r.end; t += r.step) {
        for (const { metric, v } of points(id, name, t)) {
          const m = b ? { ...metric, [LABEL]: id } : metric;
          const key = JSON.stringify(m);
          let s = byKey.get(key);
          if (!s) byKey.set(key, s = { metric: m, values: [] });
          s.values.push([t, String(v)]);
        }
      }
      series.push(...byKey.values());
    }
    series.sort((x, y) => compareLabels(x.metric, y.metric));
    for (const s of series) onSeries(s);
    return Promise.resolve({});
  }
}

async function hourFiles(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string, rel: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(`${d}/${e.name}`, `${rel}${e.name}/`);
      else if (!e.name.startsWith(".")) {
        out.set(`${rel}${e.name}`, await Deno.readTextFile(`${d}/${e.name}`));
      }
    }
  };
  await walk(dir, "");
  return out;
}

async function collectInto(
  dir: string,
  thanos: FakeThanos,
  batch: ClusterBatch,
  skipProbe?: SkipProbe,
) {
  return await collectHoursBatch(
    {
      client: thanos,
      store: new StateStore(dir),
      mode: "client",
      batchHours: 1,
      now: () => new Date("2026-11-02T00:00:00Z"),
      ...(skipProbe ? { skipProbe } : {}),
    },
    batch,
    DAY,
    [0, 1],
  );
}

function setup() {
  const singles = new Map(
    IDS.map((id) => [id, planQueries(COST_QUERIES, { ...OPTS, clusterId: id })]),
  );
  const cost = planBatchQueries(COST_QUERIES, { ...OPTS, clusterIds: IDS });
  const members = IDS.map((id) => ({ clusterId: id, plan: singles.get(id)! }));
  return { singles, cost, members };
}

Deno.test("a batch's fragments equal each cluster's own, though names repeat across clusters", async () => {
  const { singles, cost, members } = setup();
  const a = await Deno.makeTempDir({ prefix: "batch_test_" });
  const b = await Deno.makeTempDir({ prefix: "batch_test_" });
  try {
    const batched = new FakeThanos(singles, cost);
    const r = await collectInto(a, batched, { clusterLabel: LABEL, members, cost });
    assert.equal(r.fallback, null);
    for (const id of IDS) assert.deepEqual(r.byCluster.get(id)!.collected, [0, 1]);
    // One query per catalogue entry and hour for both clusters.
    assert.equal(batched.requests.length, 2 * COST_QUERIES.length);
    assert.ok(batched.requests.every((q) => q.query.includes(`${LABEL}=~`)));

    const own = new FakeThanos(singles, cost);
    for (const m of members) {
      await collectInto(b, own, { clusterLabel: LABEL, members: [m] });
    }
    assert.equal(own.requests.length, 2 * 2 * COST_QUERIES.length);
    const [fa, fb] = [await hourFiles(a), await hourFiles(b)];
    assert.ok(fa.size > 10);
    assert.deepEqual([...fa.keys()].sort(), [...fb.keys()].sort());
    for (const [k, v] of fa) assert.equal(v, fb.get(k), k);
    // Not vacuous: the clusters' values differ.
    const pods = [...fa].filter(([k]) => k.includes("/00/") && k.endsWith("pod.csv"));
    assert.equal(pods.length, 2);
    assert.notEqual(pods[0]![1], pods[1]![1]);
  } finally {
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }
});

Deno.test("a failing batched query falls back to each cluster's own queries", async () => {
  const { singles, cost, members } = setup();
  const dir = await Deno.makeTempDir({ prefix: "batch_test_" });
  try {
    const thanos = new FakeThanos(singles, cost);
    // Cluster "c-2" breaks every query that names it: the batch, then its own.
    thanos.failWhen = (r) => r.query.includes("c-2");
    const r = await collectInto(dir, thanos, { clusterLabel: LABEL, members, cost });
    assert.ok(r.fallback);
    assert.match(r.fallback.message, /422/);
    assert.deepEqual(r.byCluster.get("c.1")!.collected, [0, 1]);
    assert.deepEqual(r.byCluster.get("c-2")!.collected, []);
    assert.deepEqual(r.byCluster.get("c-2")!.failed.map((f) => f.hour), [0, 1]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("queries the probe names are not sent, and a failed probe skips none", async () => {
  const { singles, cost, members } = setup();
  const dir = await Deno.makeTempDir({ prefix: "batch_test_" });
  try {
    const thanos = new FakeThanos(singles, cost);
    const asked: string[][] = [];
    const r = await collectInto(
      dir,
      thanos,
      { clusterLabel: LABEL, members, cost },
      (req) => {
        asked.push([...req.clusterIds]);
        assert.equal(req.queries.length, COST_QUERIES.length);
        return Promise.resolve(new Set(["vm_info", "nvidia-gpu-utilization"]));
      },
    );
    assert.equal(r.skipped, 4); // two queries in each of two hours
    assert.deepEqual(asked, [IDS, IDS]);
    assert.equal(thanos.requests.length, 2 * (COST_QUERIES.length - 2));
    assert.ok(!thanos.requests.some((q) => q.id === "vm_info"));

    const again = new FakeThanos(singles, cost);
    const d2 = await Deno.makeTempDir({ prefix: "batch_test_" });
    try {
      const r2 = await collectInto(
        d2,
        again,
        { clusterLabel: LABEL, members, cost },
        () => Promise.reject(new Error("probe down")),
      );
      assert.equal(r2.skipped, 0);
      assert.equal(again.requests.length, 2 * COST_QUERIES.length);
      const [fa, fb] = [await hourFiles(dir), await hourFiles(d2)];
      for (const [k, v] of fa) assert.equal(v, fb.get(k), k);
    } finally {
      await Deno.remove(d2, { recursive: true });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a series of a cluster outside the batch is refused, naming it", async () => {
  const { singles, cost, members } = setup();
  const dir = await Deno.makeTempDir({ prefix: "batch_test_" });
  try {
    const thanos = new FakeThanos(singles, cost);
    const inner = thanos.queryRange.bind(thanos);
    thanos.queryRange = (r, onSeries) => {
      if (r.id === "node-role") {
        onSeries({ metric: { [LABEL]: "other", node: "n9" }, values: [[r.start, "1"]] });
      }
      return inner(r, onSeries);
    };
    const r = await collectInto(dir, thanos, { clusterLabel: LABEL, members: [members[0]!], cost });
    // One member: its own plan is sent, and the foreign series is simply its own data.
    assert.equal(r.fallback, null);
    const both = await collectInto(dir, new FakeThanos(singles, cost), {
      clusterLabel: LABEL,
      members,
      cost,
    });
    assert.equal(both.fallback, null);
    const bad = new FakeThanos(singles, cost);
    const badInner = bad.queryRange.bind(bad);
    bad.queryRange = (r, onSeries) => {
      if (r.id === "node-role" && r.query.includes("=~")) {
        onSeries({ metric: { [LABEL]: "other", node: "n9" }, values: [[r.start, "1"]] });
      }
      return badInner(r, onSeries);
    };
    const d2 = await Deno.makeTempDir({ prefix: "batch_test_" });
    try {
      const r2 = await collectInto(d2, bad, { clusterLabel: LABEL, members, cost });
      assert.ok(r2.fallback);
      assert.match(r2.fallback.message, /"other", not to this batch/);
      for (const id of IDS) assert.deepEqual(r2.byCluster.get(id)!.collected, [0, 1]);
    } finally {
      await Deno.remove(d2, { recursive: true });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
