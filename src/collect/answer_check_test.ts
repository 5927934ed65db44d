import assert from "node:assert/strict";
import { BridgeError } from "../model.ts";
import { StateStore } from "../package/state_store.ts";
import { ThanosClient } from "../thanos/thanos_client.ts";
import { checkSeries, formatHours } from "./answer_check.ts";
import { COST_QUERIES } from "./catalogue.ts";
import {
  collectHours,
  fetchClientHour,
  fetchServerBatch,
  hourStartSeconds,
  type MatrixSeries,
  type QueryCounter,
  type RangeQuerier,
  type RangeRequest,
} from "./hour_collector.ts";
import { planQueries } from "./query_plan.ts";

const DAY = "2026-11-01";
const plan = planQueries(COST_QUERIES, {
  clusterLabel: "clusterID",
  clusterId: "c-7",
  rateWindow: "15m",
});
/** `node-allocatable-cpu-cores`: a max reduction (server: max + count). */
const MAX_Q = plan.filter((p) => p.query.name === "node-allocatable-cpu-cores");
const H3 = hourStartSeconds(DAY, 3);

/** A querier that answers every request with `answer(request)`. */
function querier(answer: (r: RangeRequest) => MatrixSeries[]): RangeQuerier & {
  requests: RangeRequest[];
} {
  const requests: RangeRequest[] = [];
  return {
    requests,
    queryRange(r, onSeries) {
      requests.push(r);
      for (const s of answer(r)) onSeries(s);
      return Promise.resolve({});
    },
  };
}

function refusal(code: string, ...patterns: RegExp[]): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof BridgeError, String(e));
    assert.equal(e.code, code, e.message);
    for (const p of patterns) assert.match(e.message, p);
    assert.ok(!e.message.includes("kube_node_status_allocatable"), "no expression in the message");
    return true;
  };
}

Deno.test("rule 2: checkSeries refuses timestamps off the grid, out of range, repeated or out of order", () => {
  const ctx = { queryId: "q", clusterId: "c", hours: formatHours(DAY, 3, 3) };
  const grid = { start: H3, end: H3 + 3599, step: 60 };
  const ok = checkSeries(
    { metric: { a: "1" }, values: [[H3, "1"], [H3 + 120, "+Inf"]] },
    grid,
    ctx,
  );
  assert.deepEqual(ok, { slots: [0, 2], values: [1, Infinity] });
  const bad: [Array<[unknown, unknown]>, RegExp][] = [
    [[[H3 + 30, "1"]], /timestamp \d+ is off the step grid/],
    [[[H3 - 60, "1"]], /outside the requested range/],
    [[[H3 + 3600, "1"]], /outside the requested range/],
    [[[H3, "1"], [H3, "2"]], /timestamp \d+ is repeated/],
    [[[H3 + 60, "1"], [H3, "2"]], /out of order/],
    [[[H3, "0x10"]], /"0x10", is not a number \(Go strconv.ParseFloat\)/],
    [[[H3, " 1"]], /" 1", is not a number/],
    [[[H3, ""]], /"", is not a number/],
    [[[H3, 5]], /value at \d+ is not a string but number/],
    [[["x", "1"]], /timestamp that is not a number/],
  ];
  for (const [values, pattern] of bad) {
    assert.throws(
      () => checkSeries({ metric: { a: "1" }, values }, grid, ctx),
      refusal("thanos_parse", /^query q of cluster c, 2026-11-01 03:00-03:59 UTC: series/, pattern),
      String(values),
    );
  }
  assert.throws(
    () => checkSeries({ metric: { a: 1 }, values: [] }, grid, ctx),
    refusal("thanos_parse", /label "a" is not a string but number/),
  );
});

Deno.test("rule 2: client and server mode both refuse answers through the one check", async () => {
  // Client mode: a sample between two grid points (Prometheus never sends one).
  const offGrid = querier(() => [{ metric: { node: "n1" }, values: [[H3 + 30, "4"]] }]);
  await assert.rejects(
    fetchClientHour({ client: offGrid }, MAX_Q, "c-7", DAY, 3),
    refusal(
      "thanos_parse",
      /^query node-allocatable-cpu-cores of cluster c-7, 2026-11-01 03:00-03:59 UTC: /,
      /off the step grid/,
    ),
  );
  // Client mode: a repeated timestamp would have been summed twice.
  const repeated = querier(() => [{ metric: { node: "n1" }, values: [[H3, "4"], [H3, "4"]] }]);
  await assert.rejects(
    fetchClientHour({ client: repeated }, MAX_Q, "c-7", DAY, 3),
    refusal("thanos_parse", /repeated/),
  );
  // Client mode: a value Go refuses (hex without p exponent).
  const hex = querier(() => [{ metric: { node: "n1" }, values: [[H3, "0x10"]] }]);
  await assert.rejects(
    fetchClientHour({ client: hex }, MAX_Q, "c-7", DAY, 3),
    refusal("thanos_parse", /"0x10"/),
  );
  // Server mode, same check: a point at an hour outside the batch, and one off the hour grid.
  for (const t of [H3 + 3600 * 5, H3 + 3600 + 60]) {
    const server = querier(() => [{ metric: { node: "n1" }, values: [[t, "4"]] }]);
    await assert.rejects(
      fetchServerBatch({ client: server }, MAX_Q, "c-7", DAY, [3, 4]),
      refusal(
        "thanos_parse",
        /^query node-allocatable-cpu-cores\/(max|count) of cluster c-7, 2026-11-01 03:00-04:59 UTC: /,
      ),
    );
  }
  // Server mode: a repeated hour within a series.
  const twice = querier(
    () => [{ metric: { node: "n1" }, values: [[H3 + 3600, "4"], [H3 + 3600, "4"]] }],
  );
  await assert.rejects(
    fetchServerBatch({ client: twice }, MAX_Q, "c-7", DAY, [3, 4]),
    refusal("thanos_parse", /repeated/),
  );
});

Deno.test("rule 3: a missing aggregate names the query/aggregate, the cluster and the hour", async () => {
  // `max` has a point for hour 04, `count` has none.
  const client = querier((r) =>
    r.query.startsWith("max_over_time")
      ? [{ metric: { node: "n1" }, values: [[H3 + 3600, "4"], [H3 + 7200, "4"]] }]
      : [{ metric: { node: "n1" }, values: [[H3 + 3600, "60"]] }]
  );
  const seriesOf = await fetchServerBatch({ client }, MAX_Q, "c-7", DAY, [3, 4]);
  assert.equal(seriesOf(3).get("node-allocatable-cpu-cores")?.length, 1);
  assert.throws(
    () => seriesOf(4),
    refusal(
      "thanos_parse",
      /^query node-allocatable-cpu-cores\/count of cluster c-7, 2026-11-01 04:00-04:59 UTC: /,
      /series "\{\\"node\\":\\"n1\\"\}" has a "max" point but no "count" point/,
    ),
  );
  // Through collectHours, the failed hour carries the code and the named message.
  const dir = await Deno.makeTempDir({ prefix: "answer_check_test_" });
  try {
    const result = await collectHours(
      {
        client,
        store: new StateStore(dir),
        mode: "server",
        batchHours: 6,
        now: () => new Date("2026-11-02T12:00:00Z"),
      },
      MAX_Q,
      "c-7",
      DAY,
      [3, 4],
    );
    assert.deepEqual(result.collected, [3]);
    assert.equal(result.failed[0]?.hour, 4);
    assert.equal(result.failed[0]?.code, "thanos_parse");
    assert.match(result.failed[0]?.error ?? "", /node-allocatable-cpu-cores\/count of cluster c-7/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rule 3: a label value that is not a string is named with query, cluster and hours", async () => {
  const client = querier(() => [
    { metric: { node: "n1" }, values: [[H3, "4"]] },
    { metric: { node: 12 } as unknown as Record<string, string>, values: [[H3, "4"]] },
  ]);
  await assert.rejects(
    fetchClientHour({ client }, MAX_Q, "c-7", DAY, 3),
    refusal(
      "thanos_parse",
      /^query node-allocatable-cpu-cores of cluster c-7, 2026-11-01 03:00-03:59 UTC: /,
      /label "node" is not a string but number/,
    ),
  );
});

/** A real client whose transport answers `body(query)` to every query, or hangs on `hang`. */
function stubClient(body: (query: string) => string | "hang"): ThanosClient {
  return new ThanosClient({
    url: "http://stub.invalid",
    concurrency: 4,
    fetch: (_input, init) => {
      const query = new URLSearchParams(String(init?.body)).get("query") ?? "";
      const text = body(query);
      if (text !== "hang") return Promise.resolve(new Response(text));
      return new Promise((_, reject) => {
        const signal = init?.signal;
        signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    },
  });
}

const EMPTY = '{"status":"success","data":{"resultType":"matrix","result":[]}}';

Deno.test("a cancelled collection stops every query at once with code 'cancelled'", async () => {
  const client = stubClient((q) => (q.includes("memory") ? "hang" : EMPTY));
  const controller = new AbortController();
  const t0 = performance.now();
  setTimeout(() => controller.abort(new Error("shutting down")), 50);
  await assert.rejects(
    fetchClientHour({ client, signal: controller.signal }, plan, "c-7", DAY, 3),
    (e) => e instanceof BridgeError && e.code === "cancelled" && /shutting down/.test(e.message),
  );
  assert.ok(performance.now() - t0 < 1000, "stopped at once, not at the 120 s timeout");
  // An already cancelled signal sends nothing.
  const before = client.stats.queries;
  await assert.rejects(
    fetchServerBatch({ client, signal: controller.signal }, plan, "c-7", DAY, [3]),
    (e) => e instanceof BridgeError && e.code === "cancelled",
  );
  assert.equal(client.stats.queries, before);
  // Through collectHours: the hours fail with the code, nothing is committed.
  const dir = await Deno.makeTempDir({ prefix: "answer_check_test_" });
  try {
    const result = await collectHours(
      {
        client,
        store: new StateStore(dir),
        mode: "client",
        batchHours: 6,
        now: () => new Date("2026-11-02T12:00:00Z"),
        signal: controller.signal,
      },
      plan,
      "c-7",
      DAY,
      [3, 4],
    );
    assert.deepEqual(result.collected, []);
    assert.deepEqual(result.failed.map((f) => f.code), ["cancelled", "cancelled"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  client.close();
});

Deno.test("collectHours adds every query's traffic to options.counter (per-run figures)", async () => {
  const client = stubClient(() => EMPTY);
  const dir = await Deno.makeTempDir({ prefix: "answer_check_test_" });
  try {
    const run: QueryCounter = { queries: 0, attempts: 0, bytes: 0 };
    for (const mode of ["client", "server"] as const) {
      await collectHours(
        {
          client,
          store: new StateStore(`${dir}/${mode}`),
          mode,
          batchHours: 6,
          now: () => new Date("2026-11-02T12:00:00Z"),
          counter: run,
        },
        plan,
        "c-7",
        DAY,
        [0, 1],
      );
    }
    const perBatch = plan.reduce((n, p) => n + p.server.length, 0);
    const queries = 2 * plan.length + perBatch;
    assert.deepEqual(run, { queries, attempts: queries, bytes: queries * EMPTY.length });
    assert.deepEqual(client.stats, run); // the client's lifetime totals are the same here
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  client.close();
});
