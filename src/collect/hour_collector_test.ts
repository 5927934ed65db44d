import assert from "node:assert/strict";
import { StateStore } from "../package/state_store.ts";
import { COST_QUERIES } from "./catalogue.ts";
import {
  collectHours,
  contiguousBatches,
  hourStartSeconds,
  type MatrixSeries,
  type RangeQuerier,
  type RangeRequest,
} from "./hour_collector.ts";
import { type PlannedQuery, planQueries } from "./query_plan.ts";

const DAY = "2026-11-01";

/**
 * A fake Thanos that knows, per catalogue query, the raw 60-second points of
 * every series, and answers client-mode (step 60) and server-mode (step 3600,
 * `*_over_time((…)[1h:1m])`) requests from the same points, like Prometheus.
 */
class FakeThanos implements RangeQuerier {
  requests: RangeRequest[] = [];
  failOn: ((r: RangeRequest) => boolean) | null = null;
  flakyOnce = new Set<string>();
  constructor(
    readonly plan: readonly PlannedQuery[],
    readonly points: (query: string, t: number) => { metric: Record<string, string>; v: number }[],
  ) {}

  queryRange(
    r: RangeRequest,
    onSeries: (s: MatrixSeries) => void,
    _signal?: AbortSignal,
    onRetry?: () => void,
  ): Promise<unknown> {
    this.requests.push(r);
    if (this.failOn?.(r)) return Promise.reject(new Error(`HTTP 503 for ${r.query.slice(0, 30)}`));
    if (this.flakyOnce.delete(r.query)) {
      // First attempt streams a bogus series, then fails: the caller must drop it.
      onSeries({
        metric: { node: "bogus", pod: "bogus", namespace: "bogus" },
        values: [[r.start, "1"]],
      });
      onRetry?.();
    }
    const p = this.plan.find((p) => p.expr === r.query || p.server.some((s) => s.expr === r.query));
    if (!p) throw new Error(`unexpected query ${r.query}`);
    const agg = p.server.find((s) => s.expr === r.query)?.aggregate;
    const bySeries = new Map<
      string,
      { metric: Record<string, string>; values: [number, string][] }
    >();
    const add = (t: number, metric: Record<string, string>, v: number) => {
      const key = JSON.stringify(metric);
      let s = bySeries.get(key);
      if (!s) bySeries.set(key, s = { metric, values: [] });
      s.values.push([t, String(v)]);
    };
    for (let t = r.start; t <= r.end; t += r.step) {
      if (!agg) {
        for (const { metric, v } of this.points(p.query.name, t)) add(t, metric, v);
        continue;
      }
      // Server mode: `[1h:1m] offset 1s` at t aggregates the 60 points of (t−1s−1h, t−1s].
      assert.match(r.query, /\[1h:1m\] offset 1s\)$/);
      assert.equal(t % 3600, 0, "server-mode evaluations are step-aligned");
      const inner = new Map<string, { metric: Record<string, string>; vs: number[] }>();
      for (let u = t - 3600; u <= t - 1; u += 60) {
        for (const { metric, v } of this.points(p.query.name, u)) {
          const key = JSON.stringify(metric);
          let e = inner.get(key);
          if (!e) inner.set(key, e = { metric, vs: [] });
          e.vs.push(v);
        }
      }
      for (const { metric, vs } of inner.values()) {
        const value = agg === "sum"
          ? vs.reduce((a, b) => a + b, 0)
          : agg === "max"
          ? Math.max(...vs)
          : agg === "min"
          ? Math.min(...vs)
          : vs.length;
        add(t, metric, value);
      }
    }
    for (const s of bySeries.values()) onSeries(s);
    return Promise.resolve({});
  }
}

/** Node n1 all day; pod p1 from 00:30; hour 03 has no node data at all. */
function points(query: string, t: number) {
  const hour = Math.floor((t - hourStartSeconds(DAY, 0)) / 3600);
  const minute = Math.floor((t % 3600) / 60);
  if (hour === 3) return [];
  switch (query) {
    case "node-capacity-cpu-cores":
      return [{ metric: { node: "n1", provider_id: "aws:///z/i-1" }, v: minute < 30 ? 4 : 8 }];
    case "node-role":
      return [{ metric: { node: "n1", role: "worker" }, v: 1 }];
    case "pod-usage-cpu-cores":
      return hour === 0 && minute < 30 ? [] : [{
        metric: { pod: "p1", namespace: "ns", node: "n1" },
        v: 0.1 * (minute + 1),
      }];
    case "pod-labels":
      return [{ metric: { pod: "p1", namespace: "ns", label_app: 'a,"b"' }, v: 1 }];
    default:
      return [];
  }
}

async function withStore(fn: (store: StateStore, dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "hour_collector_test_" });
  try {
    await fn(new StateStore(dir), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const plan = planQueries(COST_QUERIES, {
  clusterLabel: "clusterID",
  clusterId: "c1",
  rateWindow: "15m",
});

async function fragments(store: StateStore, hours: number[]) {
  const out: Record<string, string> = {};
  for (const h of hours) {
    for (const r of ["node", "pod", "storage", "vm", "namespace", "gpu"] as const) {
      out[`${h}/${r}`] = await Deno.readTextFile(store.fragmentPath("c1", DAY, h, r));
    }
  }
  return out;
}

Deno.test("contiguousBatches splits runs of hours", () => {
  assert.deepEqual(contiguousBatches([0, 1, 2, 3, 5, 6, 9], 3), [[0, 1, 2], [3], [5, 6], [9]]);
  assert.throws(() => contiguousBatches([1], 0), RangeError);
});

Deno.test("client and server reduction give identical fragments; no-node hours are empty", async () => {
  const results: Record<string, string>[] = [];
  for (const mode of ["client", "server"] as const) {
    await withStore(async (store) => {
      const thanos = new FakeThanos(plan, points);
      const res = await collectHours(
        { client: thanos, store, mode, batchHours: 3, now: () => new Date("2026-11-02T00:00:00Z") },
        plan,
        "c1",
        DAY,
        [0, 1, 2, 3, 4],
      );
      assert.deepEqual(res, { collected: [0, 1, 2, 3, 4], failed: [], pending: [] });
      // client: 36 queries per hour; server: one query per aggregate per batch of ≤3 hours.
      const perBatch = plan.reduce((n, p) => n + p.server.length, 0);
      assert.equal(thanos.requests.length, mode === "client" ? 5 * 36 : 2 * perBatch);
      const { hours } = await store.listHours("c1", DAY);
      assert.equal(hours.get(3)!.noData, true);
      assert.equal(hours.get(0)!.rows.pod, 1);
      results.push(await fragments(store, [0, 1, 2, 3, 4]));
    });
  }
  assert.deepEqual(results[1], results[0]);
  const pod0 = results[0]!["0/pod"]!;
  // p1 runs 00:30–00:59: Σ 0.1·(31..60) × 60, node capacity max 8 × 60·60.
  assert.match(
    pod0,
    /^2026-11-01 00:00:00 \+0000 UTC,2026-12-01 00:00:00 \+0000 UTC,2026-11-01 00:00:00 \+0000 UTC,2026-11-01 00:59:59 \+0000 UTC,n1,ns,p1,/,
  );
  const fields = pod0.trimEnd().split(",");
  assert.equal(Number(fields[7]), 0.1 * (31 + 60) * 30 / 2 * 60);
  assert.equal(fields[14], "28800.000000", "max 8 × 60 s × 60 samples (4 for 30 min, then 8)");
  assert.ok(pod0.endsWith(',worker,i-1,"label_app:a,""b"""\n'), pod0);
  assert.equal(results[0]!["3/pod"], "");
  assert.equal(results[0]!["3/node"], "");
});

Deno.test("a failed query leaves its hour and the later ones uncollected", async () => {
  await withStore(async (store) => {
    const thanos = new FakeThanos(plan, points);
    const t2 = hourStartSeconds(DAY, 2);
    thanos.failOn = (r) => r.start === t2;
    const events: string[] = [];
    const res = await collectHours(
      {
        client: thanos,
        store,
        mode: "client",
        batchHours: 6,
        now: () => new Date(),
        onEvent: (e) => events.push(`${e.type}:${e.hour}`),
      },
      plan,
      "c1",
      DAY,
      [0, 1, 2, 3],
    );
    assert.deepEqual(res.collected, [0, 1]);
    assert.deepEqual(res.failed.map((f) => f.hour), [2, 3]);
    assert.match(res.failed[0]!.error, /HTTP 503/);
    assert.deepEqual([...(await store.listHours("c1", DAY)).hours.keys()].sort(), [0, 1]);
    assert.deepEqual(events, ["hour-done:0", "hour-done:1", "hour-failed:2", "hour-failed:3"]);
  });
});

Deno.test("series streamed by a failed attempt are dropped on retry", async () => {
  await withStore(async (store) => {
    const thanos = new FakeThanos(plan, points);
    for (const p of plan) thanos.flakyOnce.add(p.expr);
    await collectHours(
      { client: thanos, store, mode: "client", batchHours: 1, now: () => new Date() },
      plan,
      "c1",
      DAY,
      [1],
    );
    const frag = await fragments(store, [1]);
    assert.ok(!Object.values(frag).some((f) => f.includes("bogus")), JSON.stringify(frag));
  });
});
