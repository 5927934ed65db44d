import assert from "node:assert/strict";
import { join } from "node:path";
import { hourMatches, StateStore, type StateStoreOptions } from "../package/state_store.ts";
import { COST_QUERIES } from "./catalogue.ts";
import {
  type CollectEvent,
  collectHours,
  DEFAULT_EMPTY_HOUR_GRACE_MS,
  hourStartSeconds,
  type MatrixSeries,
  type RangeQuerier,
  type RangeRequest,
} from "./hour_collector.ts";
import {
  collectionParams,
  planFingerprint,
  type PlannedQuery,
  planQueries,
  serverExpr,
} from "./query_plan.ts";

const DAY = "2026-11-01";
const PLAN_OPTIONS = { clusterLabel: "clusterID", clusterId: "c1", rateWindow: "15m" };
const plan = planQueries(COST_QUERIES, PLAN_OPTIONS);

/**
 * A small fake Thanos: node n1 (capacity 4 cores, role worker) pushes every minute of every
 * hour except the hours in `silent`; every other query answers no series. Answers client
 * (step 60) and server (step 3600, `*_over_time`) requests.
 */
class SilentHoursThanos implements RangeQuerier {
  silent = new Set<number>();
  requests = 0;
  constructor(readonly plan: readonly PlannedQuery[]) {}

  queryRange(r: RangeRequest, onSeries: (s: MatrixSeries) => void): Promise<unknown> {
    this.requests++;
    const p = this.plan.find((p) => p.expr === r.query || p.server.some((s) => s.expr === r.query));
    if (!p) return Promise.reject(new Error(`unexpected query ${r.query}`));
    const metric: Record<string, string> | null = p.query.name === "node-capacity-cpu-cores"
      ? { node: "n1", provider_id: "aws:///z/i-1" }
      : p.query.name === "node-role"
      ? { node: "n1", role: "worker" }
      : null;
    if (!metric) return Promise.resolve({});
    const agg = p.server.find((s) => s.expr === r.query)?.aggregate;
    const values: [number, string][] = [];
    for (let t = r.start; t <= r.end; t += r.step) {
      // Server mode evaluates at the end of the hour it aggregates.
      const hour = Math.floor(((agg ? t - 1 : t) - hourStartSeconds(DAY, 0)) / 3600);
      if (this.silent.has(hour)) continue;
      const v = p.query.name === "node-role" ? 1 : 4;
      values.push([t, String(!agg ? v : agg === "sum" ? v * 60 : agg === "count" ? 60 : v)]);
    }
    if (values.length > 0) onSeries({ metric, values });
    return Promise.resolve({});
  }
}

async function withStore(
  fn: (store: StateStore, root: string) => Promise<void>,
  options?: StateStoreOptions,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "hour_collector_hardening_" });
  try {
    await fn(new StateStore(root, options), root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const at = (iso: string) => () => new Date(iso);

Deno.test("rule 1: an hour without data stays pending within the grace; the later hours are still collected", async () => {
  for (const mode of ["client", "server"] as const) {
    await withStore(async (store) => {
      const thanos = new SilentHoursThanos(plan);
      thanos.silent.add(2);
      const base = { client: thanos, store, mode, batchHours: 6 };
      // 04:10: hour 02 ended at 03:00, less than 6 h ago.
      const first = await collectHours(
        { ...base, now: at("2026-11-01T04:10:00Z") },
        plan,
        "c1",
        DAY,
        [0, 1, 2, 3],
      );
      assert.deepEqual(first, { collected: [0, 1, 3], failed: [], pending: [2] }, mode);
      assert.deepEqual([...(await store.listHours("c1", DAY)).hours.keys()], [0, 1, 3]);
      assert.equal((await store.listHours("c1", DAY)).hours.get(3)!.noData, false);

      // Still inside the grace one millisecond before 03:00 + 6 h.
      const early = await collectHours(
        { ...base, now: at("2026-11-01T08:59:59.999Z") },
        plan,
        "c1",
        DAY,
        [2],
      );
      assert.deepEqual(early, { collected: [], failed: [], pending: [2] });
      assert.equal((await store.listHours("c1", DAY)).hours.has(2), false);

      // A shorter grace, then the default grace elapsed: committed as "no data".
      const shortGrace = await collectHours(
        { ...base, now: at("2026-11-01T03:30:00Z"), emptyHourGrace: 30 * 60_000 },
        plan,
        "c1",
        DAY,
        [2],
      );
      assert.deepEqual(shortGrace, { collected: [2], failed: [], pending: [] });
      assert.equal((await store.listHours("c1", DAY)).hours.get(2)!.noData, true);
    });
  }
  assert.equal(DEFAULT_EMPTY_HOUR_GRACE_MS, 6 * 3_600_000);
});

Deno.test("rule 1: a pending hour whose data arrives later is committed with it", async () => {
  await withStore(async (store) => {
    const thanos = new SilentHoursThanos(plan);
    thanos.silent.add(5);
    const options = { client: thanos, store, mode: "client" as const, batchHours: 1 };
    const events: CollectEvent[] = [];
    const late = await collectHours(
      { ...options, now: at("2026-11-01T06:15:00Z"), onEvent: (e) => events.push(e) },
      plan,
      "c1",
      DAY,
      [5],
    );
    assert.deepEqual(late.pending, [5]);
    assert.deepEqual(events, [], "a pending hour is neither done nor failed");
    thanos.silent.clear(); // the spoke's remote-write caught up
    const caughtUp = await collectHours(
      { ...options, now: at("2026-11-01T07:15:00Z") },
      plan,
      "c1",
      DAY,
      [5],
    );
    assert.deepEqual(caughtUp, { collected: [5], failed: [], pending: [] });
    const meta = (await store.listHours("c1", DAY)).hours.get(5)!;
    assert.equal(meta.noData, false);
    assert.equal(meta.rows.node, 1);
  });
});

Deno.test("rule 1: hours record the collection parameters; other settings give other parameters", async () => {
  await withStore(async (store) => {
    const thanos = new SilentHoursThanos(plan);
    const params = collectionParams(plan, { ...PLAN_OPTIONS, reduce: "server" });
    assert.deepEqual(params, {
      clusterLabel: "clusterID",
      rateWindow: "15m",
      reduce: "server",
      queryHash: planFingerprint(plan),
    });
    const options = {
      client: thanos,
      store,
      mode: "server" as const,
      batchHours: 2,
      now: at("2026-11-02T00:00:00Z"),
    };
    const res = await collectHours({ ...options, params }, plan, "c1", DAY, [0, 1]);
    assert.deepEqual(res.collected, [0, 1]);
    const { hours } = await store.listHours("c1", DAY);
    assert.deepEqual(hours.get(0)!.params, params);
    assert.equal(hourMatches(hours.get(1)!, params), true);

    // A fixed --cluster-label or another --rate-window: the stored hours do not match.
    for (const change of [{ clusterLabel: "cluster" }, { rateWindow: "5m" }]) {
      const other = planQueries(COST_QUERIES, { ...PLAN_OPTIONS, ...change });
      const otherParams = collectionParams(other, { ...PLAN_OPTIONS, ...change, reduce: "server" });
      assert.notEqual(otherParams.queryHash, params.queryHash, JSON.stringify(change));
      assert.equal(hourMatches(hours.get(0)!, otherParams), false, JSON.stringify(change));
    }
    // Another --reduce: the same values (the contract's), so the hours are as good.
    assert.equal(
      hourMatches(hours.get(0)!, collectionParams(plan, { ...PLAN_OPTIONS, reduce: "local" })),
      true,
    );
    // Params that do not describe this collection are refused.
    await assert.rejects(
      () =>
        collectHours(
          { ...options, params: { ...params, queryHash: "0".repeat(64) } },
          plan,
          "c1",
          DAY,
          [2],
        ),
      RangeError,
    );
    await assert.rejects(
      () => collectHours({ ...options, mode: "client", params }, plan, "c1", DAY, [2]),
      RangeError,
    );
    // Without params, hours are committed as "other parameters".
    await collectHours(options, plan, "c1", DAY, [3]);
    const h3 = (await store.listHours("c1", DAY)).hours.get(3)!;
    assert.equal(h3.params, null);
    assert.equal(hourMatches(h3, params), false);
  });
});

Deno.test("rule 1: planFingerprint is stable and covers every expression, server variants included", () => {
  const again = planQueries(COST_QUERIES, PLAN_OPTIONS);
  assert.equal(planFingerprint(again), planFingerprint(plan));
  assert.match(planFingerprint(plan), /^[0-9a-f]{64}$/);
  const otherCluster = planQueries(COST_QUERIES, { ...PLAN_OPTIONS, clusterId: "c2" });
  assert.notEqual(planFingerprint(otherCluster), planFingerprint(plan));
  // Only a server-side variant differs.
  const i = plan.findIndex((p) => p.server.length > 0);
  const tweaked = plan.map((p, j) =>
    j !== i ? p : {
      ...p,
      server: p.server.map((s) => ({ ...s, expr: serverExpr(p.expr + " ", s.aggregate) + " " })),
    }
  );
  assert.notEqual(planFingerprint(tweaked), planFingerprint(plan));
  // Order matters (catalogue order is the merge order).
  assert.notEqual(planFingerprint([...plan].reverse()), planFingerprint(plan));
});

Deno.test("rule 10: a commit failing with ENOSPC keeps the hours committed before it; the hour fails with disk_full", async () => {
  let failing = false;
  await withStore(async (store, root) => {
    const thanos = new SilentHoursThanos(plan);
    const events: string[] = [];
    const res = await collectHours(
      {
        client: thanos,
        store,
        mode: "client",
        batchHours: 1,
        now: at("2026-11-02T00:00:00Z"),
        onEvent: (e) => events.push(`${e.type}:${e.hour}`),
      },
      plan,
      "c1",
      DAY,
      [0, 1, 2, 3],
    );
    assert.ok(failing, "the injected failure was hit");
    assert.deepEqual(res.collected, [0, 1]);
    assert.deepEqual(res.pending, []);
    assert.deepEqual(res.failed.map((f) => [f.hour, f.code]), [[2, "disk_full"], [3, "disk_full"]]);
    assert.match(
      res.failed[0]!.error,
      new RegExp(`^no space left on device while writing ${root}/c1/${DAY}/\\.hour-02-\\d+-`),
    );
    assert.deepEqual(events, ["hour-done:0", "hour-done:1", "hour-failed:2", "hour-failed:3"]);
    assert.deepEqual([...(await store.listHours("c1", DAY)).hours.keys()], [0, 1]);
    const left: string[] = [];
    for await (const e of Deno.readDir(join(root, "c1", DAY))) left.push(e.name);
    assert.deepEqual(left.sort(), ["00", "01"], "no temporary folder left");
    assert.equal(thanos.requests, 3 * plan.length, "hour 03 was not queried: it stopped at 02");
  }, {
    fs: {
      async write(file, data, path) {
        if (path.includes("/.hour-02-")) {
          failing = true;
          throw Object.assign(new Error("No space left on device (os error 28)"), {
            code: "ENOSPC",
          });
        }
        let off = 0;
        while (off < data.length) off += await file.write(data.subarray(off));
      },
    },
  });
});
