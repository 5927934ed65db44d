/**
 * The `thanos` discovery source: against a fake client for the edge cases,
 * and against a real Prometheus (the Thanos Query API is the Prometheus HTTP
 * API) loaded with the synthetic hub of tools/synth, where it must find
 * exactly the synthetic clusters with their `cluster` names.
 */
import assert from "node:assert/strict";
import { BridgeError } from "../model.ts";
import type { RangeQuery, RetryInfo, Series } from "../thanos/thanos_client.ts";
import { ThanosClient } from "../thanos/thanos_client.ts";
import { defaultTestHub, type Hub } from "../../tools/synth/model.ts";
import {
  prepareHub,
  type PrometheusServer,
  startPrometheus,
} from "../../tools/synth/prometheus.ts";
import { discoverClusters, parseGlobFilter } from "./cluster_discovery.ts";
import {
  CLUSTER_NAMES_QUERY_ID,
  clusterNamesQuery,
  type ThanosDiscoveryClient,
  thanosSource,
} from "./thanos_discovery.ts";

const HOUR_MS = 3_600_000;

interface Calls {
  labelValues: { label: string; matches: string[]; start: number; end: number }[];
  queries: RangeQuery[];
}

/** A client whose label values and names query answer from the arguments. */
function fakeClient(
  ids: string[] | Error,
  series: Series[] | Error,
  calls: Calls = { labelValues: [], queries: [] },
): ThanosDiscoveryClient & { calls: Calls } {
  return {
    calls,
    labelValues(label, matches, start, end) {
      calls.labelValues.push({ label, matches, start, end });
      return ids instanceof Error ? Promise.reject(ids) : Promise.resolve(ids);
    },
    queryRange(q, onSeries, _signal, onRetry?: (info: RetryInfo) => void) {
      calls.queries.push(q);
      if (series instanceof Error) return Promise.reject(series);
      // One failed attempt that streamed garbage first: the source must drop it.
      onSeries({ metric: { clusterID: "a", cluster: "garbage" }, values: [] });
      onRetry?.({ attempt: 2, delayMs: 0, reason: "cut" });
      for (const s of series) onSeries(s);
      return Promise.resolve({ bytes: 1, series: series.length, attempts: 2, ms: 1 });
    },
  };
}

const named = (clusterID: string, cluster: string): Series => ({
  metric: { clusterID, cluster },
  values: [[0, "1"]],
});

Deno.test("thanosSource: ids from label values, names from one group-by query at `now`", async () => {
  const client = fakeClient(["a", "b", "c"], [named("a", "prod-a"), named("b", "prod-b")]);
  const source = thanosSource({
    client,
    clusterLabel: "clusterID",
    match: 'up{job="x"}',
    windowMs: 2 * HOUR_MS + 1,
    now: () => 1_793_505_600_999,
  });
  assert.equal(source.kind, "thanos");
  assert.deepEqual(await source.discover(), {
    clusters: [
      { clusterId: "a", name: "prod-a", source: "thanos" },
      { clusterId: "b", name: "prod-b", source: "thanos" },
      { clusterId: "c", source: "thanos" },
    ],
    skipped: [],
  });
  assert.deepEqual(client.calls.labelValues, [
    {
      label: "clusterID",
      matches: ['up{job="x"}'],
      start: 1_793_505_600 - 7201,
      end: 1_793_505_600,
    },
  ]);
  assert.deepEqual(client.calls.queries, [{
    query: 'group by (clusterID, cluster) (last_over_time(up{job="x"}[7201s]))',
    start: 1_793_505_600,
    end: 1_793_505_600,
    step: 60,
    id: CLUSTER_NAMES_QUERY_ID,
  }]);
  assert.equal(
    clusterNamesQuery("id", "name", "kube_node_info", 60),
    "group by (id, name) (last_over_time(kube_node_info[60s]))",
  );
});

Deno.test("thanosSource: a failed names query is a warning, the ids still count", async () => {
  const failing = fakeClient(
    ["a", "b"],
    new BridgeError("thanos_http", "query cluster-discovery-names failed: HTTP 500"),
  );
  const result = await thanosSource({
    client: failing,
    clusterLabel: "clusterID",
    match: "kube_node_info",
    windowMs: HOUR_MS,
  }).discover();
  assert.deepEqual(result.clusters.map((c) => [c.clusterId, c.name]), [
    ["a", undefined],
    ["b", undefined],
  ]);
  assert.deepEqual(result.warnings, [
    "cluster names unavailable (ids still count): query cluster-discovery-names failed: HTTP 500",
  ]);
});

Deno.test("thanosSource: several names for one id, names label = cluster label, no ids", async () => {
  const several = await thanosSource({
    client: fakeClient(["a"], [named("a", "old-name"), named("a", "new-name"), named("x", "n")]),
    clusterLabel: "clusterID",
    match: "kube_node_info",
    windowMs: HOUR_MS,
  }).discover();
  assert.deepEqual(several.clusters, [{ clusterId: "a", name: "new-name", source: "thanos" }]);
  assert.match(several.warnings?.[0] ?? "", /several names .*: a \(new-name, old-name\)/);

  const same = fakeClient(["a"], []);
  await thanosSource({ client: same, clusterLabel: "cluster", match: "up", windowMs: HOUR_MS })
    .discover();
  assert.equal(same.calls.queries.length, 0);

  const none = fakeClient([], []);
  assert.deepEqual(
    await thanosSource({ client: none, clusterLabel: "clusterID", match: "up", windowMs: HOUR_MS })
      .discover(),
    { clusters: [], skipped: [] },
  );
  assert.equal(none.calls.queries.length, 0);
});

Deno.test("thanosSource: a label values failure fails the source; bad options are config errors", async () => {
  await assert.rejects(
    thanosSource({
      client: fakeClient(new BridgeError("thanos_timeout", "timed out"), []),
      clusterLabel: "clusterID",
      match: "up",
      windowMs: HOUR_MS,
    }).discover(),
    (e) => e instanceof BridgeError && e.code === "thanos_timeout",
  );
  const client = fakeClient([], []);
  for (
    const bad of [
      { clusterLabel: "cluster-id", match: "up", windowMs: HOUR_MS },
      { clusterLabel: "clusterID", match: " ", windowMs: HOUR_MS },
      { clusterLabel: "clusterID", match: "up\n", windowMs: HOUR_MS },
      { clusterLabel: "clusterID", match: "up", windowMs: 999 },
      { clusterLabel: "clusterID", match: "up", windowMs: NaN },
      { clusterLabel: "clusterID", match: "up", windowMs: HOUR_MS, nameLabel: "a b" },
    ]
  ) {
    assert.throws(
      () => thanosSource({ client, ...bad }),
      (e) => e instanceof BridgeError && e.code === "config",
      JSON.stringify(bad),
    );
  }
});

/** Runs `fn` against a real Prometheus loaded with the default synthetic hub. */
async function withPrometheus(fn: (client: ThanosClient, hub: Hub) => Promise<void>) {
  const work = await Deno.makeTempDir({ prefix: "thanos_discovery_" });
  let server: PrometheusServer | undefined;
  try {
    const { hub, dataDir } = await prepareHub(defaultTestHub(), work);
    server = await startPrometheus({ dataDir });
    const client = new ThanosClient({ url: server.url, maxAttempts: 2, baseDelayMs: 10 });
    try {
      await fn(client, hub);
    } finally {
      client.close();
    }
  } finally {
    await server?.stop();
    await Deno.remove(work, { recursive: true });
  }
}

Deno.test({
  name: "thanosSource against Prometheus with the synthetic hub: exactly its clusters and names",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withPrometheus(async (client, hub) => {
      const endMs = hub.startMs + hub.hours * HOUR_MS;
      const source = (match: string, nowMs: number, windowMs: number) =>
        thanosSource({ client, clusterLabel: "clusterID", match, windowMs, now: () => nowMs });
      const byId = (clusters: readonly { clusterId: string; name?: string }[]) =>
        clusters.map((c) => [c.clusterId, c.name]).sort();
      const all = hub.clusters.map((c) => [c.id, c.name]).sort();
      assert.equal(all.length, 3);

      // The whole hub: every synthetic cluster, with its `cluster` label as name, nothing else.
      const whole = await source("kube_node_info", endMs, hub.hours * HOUR_MS).discover();
      assert.deepEqual(byId(whole.clusters), all);
      assert.equal(whole.warnings, undefined);

      // The first two hours: the third cluster was imported two hours after the data starts.
      const early = await source("kube_node_info", hub.startMs + 2 * HOUR_MS - 1000, 2 * HOUR_MS)
        .discover();
      assert.deepEqual(
        byId(early.clusters),
        hub.clusters.slice(0, 2).map((c) => [c.id, c.name]).sort(),
      );

      // A metric only the GPU cluster sends.
      const gpu = await source("DCGM_FI_PROF_GR_ENGINE_ACTIVE", endMs, hub.hours * HOUR_MS)
        .discover();
      assert.deepEqual(byId(gpu.clusters), [[hub.clusters[0]!.id, hub.clusters[0]!.name]]);

      // Before the hub: nothing.
      const before = await source("kube_node_info", hub.startMs - HOUR_MS, HOUR_MS).discover();
      assert.deepEqual(before.clusters, []);

      // Through discoverClusters, with a filter on the name.
      const third = hub.clusters[2]!;
      const result = await discoverClusters(
        [source("kube_node_info", endMs, hub.hours * HOUR_MS)],
        parseGlobFilter([], [third.name]),
      );
      assert.deepEqual(byId(result.clusters), all.filter(([id]) => id !== third.id));
      assert.deepEqual(result.excluded.map((c) => c.clusterId), [third.id]);
      assert.deepEqual(result.sources, [{ kind: "thanos", found: 3 }]);
    });
  },
});
