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
import { collectionParams, type PlannedQuery, planQueries } from "./query_plan.ts";
import { planRosQueries, rosPlanFingerprint } from "./ros_plan.ts";
import type { InstantQuery } from "../thanos/thanos_client.ts";
import type { StreamedSeries } from "./raw_fetch.ts";

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

// ---- ROS (issue 9): one query_range per ROS query and batch, step 900 s at the window ends ----

const rosPlan = planRosQueries({ clusterLabel: "clusterID", clusterId: "c1", rateWindow: "15m" });

/** Window w (0–3) of hour h, from a ROS evaluation time (the window end). */
function windowOf(t: number): { hour: number; w: number } {
  const q = (t - hourStartSeconds(DAY, 0)) / 900 - 1;
  return { hour: Math.floor(q / 4), w: q % 4 };
}

/**
 * The filter passes in every window of hours 0 and 3, windows 0 and 2 of hour 1, none of hour 2;
 * one container and one namespace value everywhere (hour 3 has no node data: no ROS rows).
 */
function rosPoints(name: string, t: number) {
  const { hour, w } = windowOf(t);
  switch (name) {
    case "ros-namespace-filter":
      return hour === 2 || (hour === 1 && w % 2 === 1)
        ? []
        : [{ metric: { namespace: "ns" }, v: 1 }];
    case "cpu-usage-container-avg":
      return [{ metric: { container: "c", pod: "p1", namespace: "ns", node: "n1" }, v: 0.25 + w }];
    case "cpu-usage-namespace-avg":
      return [{ metric: { namespace: "ns" }, v: hour === 0 && w === 0 ? -0 : 1e-7 }];
    default:
      return [];
  }
}

/** FakeThanos for the cost queries, plus the ROS queries answered at every step-900 point. */
class FakeThanosWithRos extends FakeThanos {
  rosRequests: RangeRequest[] = [];
  rosFailOn: ((r: RangeRequest) => boolean) | null = null;
  override queryRange(
    r: RangeRequest,
    onSeries: (s: MatrixSeries) => void,
    signal?: AbortSignal,
    onRetry?: () => void,
  ): Promise<unknown> {
    const p = rosPlan.find((p) => p.expr === r.query);
    if (!p) return super.queryRange(r, onSeries, signal, onRetry);
    this.rosRequests.push(r);
    if (this.rosFailOn?.(r)) return Promise.reject(new Error(`HTTP 503 for ${p.query.name}`));
    const bySeries = new Map<
      string,
      { metric: Record<string, string>; values: [number, string][] }
    >();
    for (let t = r.start; t <= r.end; t += r.step) {
      for (const { metric, v } of rosPoints(p.query.name, t)) {
        const key = JSON.stringify(metric);
        let s = bySeries.get(key);
        if (!s) bySeries.set(key, s = { metric, values: [] });
        s.values.push([t, Object.is(v, -0) ? "-0" : String(v)]);
      }
    }
    for (const s of bySeries.values()) onSeries(s);
    return Promise.resolve({});
  }
}

async function rosFragments(store: StateStore, hours: number[]) {
  const out: Record<string, string | null> = {};
  for (const h of hours) {
    for (const r of ["ros-container", "ros-namespace"] as const) {
      out[`${h}/${r}`] = await Deno.readTextFile(store.fragmentPath("c1", DAY, h, r)).catch(
        (e) => {
          if (e instanceof Deno.errors.NotFound) return null;
          throw e;
        },
      );
    }
  }
  return out;
}

Deno.test("ROS: one query_range per ROS query and batch at the window ends; fragments only for hours with a passed window; client = server", async () => {
  const results: Record<string, string | null>[] = [];
  for (const mode of ["client", "server"] as const) {
    await withStore(async (store) => {
      const thanos = new FakeThanosWithRos(plan, points);
      const params = {
        ...collectionParams(plan, { clusterLabel: "clusterID", rateWindow: "15m", reduce: mode }),
        rosHash: rosPlanFingerprint(rosPlan),
      };
      const res = await collectHours(
        {
          client: thanos,
          store,
          mode,
          batchHours: 3,
          now: () => new Date("2026-11-02T00:00:00Z"),
          params,
          ros: rosPlan,
        },
        plan,
        "c1",
        DAY,
        [0, 1, 2, 3, 4],
      );
      assert.deepEqual(res, { collected: [0, 1, 2, 3, 4], failed: [], pending: [] });
      // client: one hour per request; server: batches [0,1,2] and [3,4].
      const spans = mode === "client" ? [[0, 0], [1, 1], [2, 2], [3, 3], [4, 4]] : [[0, 2], [3, 4]];
      // The filter gates the other 55: a batch in which no window passed (client mode, hour 2)
      // sends the filter only, as CMMO does.
      const gated = spans.filter(([a, b]) => a === 2 && b === 2).length;
      assert.equal(thanos.rosRequests.length, (spans.length - gated) * 56 + gated);
      const hour2 = thanos.rosRequests.filter((r) => r.start === hourStartSeconds(DAY, 2) + 900);
      if (mode === "client") assert.equal(hour2.length, 1, "hour 2: the filter only");
      for (const r of thanos.rosRequests) {
        assert.equal(r.step, 900);
        assert.ok(
          spans.some(([a, b]) =>
            r.start === hourStartSeconds(DAY, a!) + 900 &&
            r.end === hourStartSeconds(DAY, b!) + 3600
          ),
          `${r.start}-${r.end}`,
        );
        assert.equal(r.clusterId, "c1");
      }
      const { hours } = await store.listHours("c1", DAY);
      assert.deepEqual([0, 1, 2, 3, 4].map((h) => hours.get(h)!.ros?.windows), [4, 2, 0, 0, 4]);
      assert.deepEqual(hours.get(0)!.ros!.rows, { "ros-container": 4, "ros-namespace": 4 });
      assert.equal(hours.get(0)!.params?.rosHash, params.rosHash);
      assert.deepEqual(await store.verifyHours("c1", DAY, [0, 1, 2, 3, 4]), []);
      results.push(await rosFragments(store, [0, 1, 2, 3, 4]));
    });
  }
  assert.deepEqual(results[1], results[0]);
  const r = results[0]!;
  assert.equal(r["2/ros-container"], null, "no window passed: no ROS fragment");
  assert.equal(r["3/ros-namespace"], null, "no node data: no ROS fragment");
  const c1 = r["1/ros-container"]!.trimEnd().split("\n");
  assert.equal(c1.length, 2, "windows 0 and 2 of hour 1, in window order");
  assert.match(
    c1[0]!,
    /^2026-11-01 00:00:00 \+0000 UTC,2026-12-01 00:00:00 \+0000 UTC,2026-11-01 01:00:01 \+0000 UTC,2026-11-01 01:15:00 \+0000 UTC,c,p1,/,
  );
  assert.match(c1[1]!, /,2026-11-01 01:30:01 \+0000 UTC,2026-11-01 01:45:00 \+0000 UTC,c,p1,/);
  assert.ok(c1[0]!.includes(",ns,,n1,i-1,"), c1[0]!);
  assert.ok(c1[1]!.includes(",2.250000,"), c1[1]!);
  const n0 = r["0/ros-namespace"]!.trimEnd().split("\n");
  assert.ok(n0[0]!.includes(",ns,,,-0.000000,"), n0[0]!);
  assert.ok(n0[1]!.includes(",ns,,,0.000000,"), n0[1]!);
});

Deno.test("ROS: a failed ROS query fails its batch like a cost query; params must name the ROS plan", async () => {
  await withStore(async (store) => {
    const thanos = new FakeThanosWithRos(plan, points);
    thanos.rosFailOn = (r) => r.start === hourStartSeconds(DAY, 2) + 900;
    const res = await collectHours(
      { client: thanos, store, mode: "server", batchHours: 2, now: () => new Date(), ros: rosPlan },
      plan,
      "c1",
      DAY,
      [0, 1, 2, 3],
    );
    assert.deepEqual(res.collected, [0, 1]);
    assert.deepEqual(res.failed.map((f) => f.hour), [2, 3]);
    assert.match(res.failed[0]!.error, /HTTP 503/);
    const base = collectionParams(plan, {
      clusterLabel: "clusterID",
      rateWindow: "15m",
      reduce: "server",
    });
    const opts = {
      client: thanos,
      store,
      mode: "server" as const,
      batchHours: 2,
      now: () => new Date(),
    };
    await assert.rejects(
      () => collectHours({ ...opts, params: base, ros: rosPlan }, plan, "c1", DAY, [5]),
      RangeError,
    );
    await assert.rejects(
      () => collectHours({ ...opts, params: { ...base, rosHash: "x" } }, plan, "c1", DAY, [5]),
      RangeError,
    );
  });
});

Deno.test("ROS off: no ROS query, no ROS fragment, hour.json without ros", async () => {
  await withStore(async (store) => {
    const thanos = new FakeThanosWithRos(plan, points);
    await collectHours(
      { client: thanos, store, mode: "server", batchHours: 3, now: () => new Date() },
      plan,
      "c1",
      DAY,
      [0],
    );
    assert.equal(thanos.rosRequests.length, 0);
    assert.equal((await store.listHours("c1", DAY)).hours.get(0)!.ros, null);
    assert.deepEqual(await rosFragments(store, [0]), {
      "0/ros-container": null,
      "0/ros-namespace": null,
    });
  });
});

Deno.test("local mode: a query the evaluator refuses only in a later run is local before that run and the server's from it on", async () => {
  // Two series that label_replace() makes equal: `b` exists from 06:00 only, so the first
  // 6-hour run evaluates here and the second fails with "same labelset".
  const podCpu = plan.find((p) => p.query.name === "pod-usage-cpu-cores")!;
  const nodeCpu = plan.find((p) => p.query.name === "node-capacity-cpu-cores")!;
  const localPlan: PlannedQuery[] = [{
    ...podCpu,
    expr: 'sum by (pod, namespace, node) (label_replace(m{clusterID="c1"}, "pod", "p1", "", ""))',
  }, { ...nodeCpu, expr: 'max by (node, provider_id) (m{clusterID="c1"})' }];
  const day0 = hourStartSeconds(DAY, 0) * 1000;
  const raw = (q: InstantQuery): StreamedSeries[] => {
    const m = /^m\{clusterID="c1"\}\[(\d+)s\]$/.exec(q.query);
    if (!m) throw new Error(`unexpected raw query ${q.query}`);
    const from = q.time * 1000 - Number(m[1]) * 1000;
    const series = (pod: string, startMs: number): StreamedSeries => {
      const values: [number, string][] = [];
      for (let t = startMs; t <= q.time * 1000; t += 60_000) {
        if (t > from) values.push([t / 1000, "4"]);
      }
      return {
        metric: { __name__: "m", clusterID: "c1", pod, namespace: "ns", node: "n1" },
        values,
      };
    };
    return [series("a", day0 - 3_600_000), series("b", day0 + 6 * 3_600_000)]
      .filter((s) => s.values.length > 0);
  };
  // The server's own answers: 4 before 06:00 (the self-check of hour 0 agrees), 5 after.
  const serverPoints = (query: string, t: number) => {
    if (query !== "pod-usage-cpu-cores") return [];
    const v = t < hourStartSeconds(DAY, 6) ? 4 : 5;
    return [{ metric: { pod: "p1", namespace: "ns", node: "n1" }, v }];
  };
  await withStore(async (store) => {
    const thanos = new FakeThanos(localPlan, serverPoints);
    const instant: InstantQuery[] = [];
    const client = Object.assign(thanos, {
      queryInstant(q: InstantQuery, onSeries: (s: StreamedSeries) => void) {
        instant.push(q);
        for (const s of raw(q)) onSeries(s);
        return Promise.resolve({});
      },
    });
    const local = {
      semantics: "prometheus3" as const,
      lookbackMs: 300_000,
      counterAdjusting: false,
      // The check of the first hour, before the refusal.
      rotation: { next: (names: readonly string[]) => ({ query: names[0]!, hour: 0 }) },
    };
    const hours = Array.from({ length: 12 }, (_, h) => h);
    const events: string[] = [];
    const res = await collectHours(
      {
        client,
        store,
        mode: "local",
        batchHours: 12,
        now: () => new Date("2026-11-02T00:00:00Z"),
        local,
        onEvent: (e) => events.push(`${e.type}:${e.hour}`),
      },
      localPlan,
      "c1",
      DAY,
      hours,
    );
    assert.deepEqual(res, { collected: hours, failed: [], pending: [] });
    assert.deepEqual(events, hours.map((h) => `hour-done:${h}`));
    assert.equal(instant.length, 1, "one raw read for the 12-hour batch");
    // The server: the self-check of hour 0, then the refused query from 06:00 to the batch's end.
    assert.deepEqual(
      thanos.requests.map((r) => [(r.start - hourStartSeconds(DAY, 0)) / 3600, r.end - r.start]),
      [[1, 0], [7, 5 * 3600]],
    );
    for (const h of hours) {
      const pod = await Deno.readTextFile(store.fragmentPath("c1", DAY, h, "pod"));
      const seconds = h < 6 ? "14400.000000" : "18000.000000"; // Σ of 60 points × 60 s
      assert.ok(pod.includes(`,${seconds},`), `hour ${h}: ${pod}`);
    }
  });
});
