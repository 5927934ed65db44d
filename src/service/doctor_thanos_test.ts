import assert from "node:assert/strict";
import { ThanosClient } from "../thanos/thanos_client.ts";
import { metricsOfReports } from "../collect/metric_usage.ts";
import { presenceQuery, thanosChecks } from "./doctor_thanos.ts";
import type { DoctorCheck } from "./doctor_check.ts";

type Labels = Record<string, string>;

/** A fake Thanos holding one label set per series; answers the doctor's query shapes. */
function fakeThanos(series: Labels[], status = 200): typeof fetch {
  const json = (body: unknown) =>
    new Response(JSON.stringify(body), { headers: { "Content-Type": "application/json" } });
  return (input, init) => {
    if (status !== 200) return Promise.resolve(new Response("denied", { status }));
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.pathname.endsWith("/api/v1/series")) {
      const name = /__name__="([^"]+)"/.exec(url.searchParams.get("match[]") ?? "")?.[1];
      return Promise.resolve(
        json({ status: "success", data: series.filter((s) => s.__name__ === name) }),
      );
    }
    const form = new URLSearchParams(String(init?.body));
    const query = form.get("query") ?? "";
    const t = Number(form.get("start"));
    const matrix = (result: { metric: Labels; value: number }[]) =>
      json({
        status: "success",
        data: {
          resultType: "matrix",
          result: result.map((r) => ({ metric: r.metric, values: [[t, String(r.value)]] })),
        },
      });
    if (query === "vector(1)") return Promise.resolve(matrix([{ metric: {}, value: 1 }]));
    const count =
      /^count by \((\w+)\) \(last_over_time\(\{__name__="([^"]+)"(?:, \w+=~"([^"]*)")?\}/
        .exec(query);
    if (count) {
      const [, label, name, only] = count;
      const allowed = only === undefined ? null : new RegExp(`^(?:${only})$`);
      const groups = new Map<string, number>();
      for (const s of series) {
        if (s.__name__ !== name) continue;
        const v = s[label!];
        if (allowed && (v === undefined || !allowed.test(v))) continue;
        groups.set(v ?? "", (groups.get(v ?? "") ?? 0) + 1);
      }
      return Promise.resolve(
        matrix(
          [...groups].map(([v, n]) => ({ metric: v === "" ? {} : { [label!]: v }, value: n })),
        ),
      );
    }
    const raw = /^last_over_time\(\{__name__="([^"]+)"\}/.exec(query);
    if (raw) {
      return Promise.resolve(
        matrix(
          series.filter((s) => s.__name__ === raw[1]).map((s) => {
            const { __name__: _, ...rest } = s;
            return { metric: rest, value: 1 };
          }),
        ),
      );
    }
    return Promise.resolve(new Response(`unexpected query ${query}`, { status: 400 }));
  };
}

/** Every needed metric on every cluster, except `drop` (cluster → metrics). */
function hub(clusters: string[], drop: Record<string, string[]> = {}): Labels[] {
  const out: Labels[] = [];
  for (const [i, c] of clusters.entries()) {
    for (const m of metricsOfReports()) {
      if (drop[c]?.includes(m)) continue;
      out.push({ __name__: m, clusterID: c, cluster: `name-${i}`, node: `n${i}` });
    }
  }
  return out;
}

const NOW = new Date("2026-11-02T00:00:00Z");

async function run(
  series: Labels[],
  extra: Partial<Parameters<typeof thanosChecks>[0]> = {},
  status = 200,
) {
  const client = new ThanosClient({
    url: "http://thanos.test",
    fetch: fakeThanos(series, status),
    maxAttempts: 1,
  });
  try {
    const checks = await thanosChecks({
      client,
      clusterLabel: "clusterID",
      hours: 24,
      now: NOW,
      ...extra,
    });
    return Object.fromEntries(checks.map((c) => [c.id, c])) as Record<string, DoctorCheck>;
  } finally {
    client.close();
  }
}

Deno.test("presenceQuery: one count per cluster, optional cluster filter escaped", () => {
  assert.equal(
    presenceQuery("a", "clusterID", 24, ["c.1", "c2"]),
    'count by (clusterID) (last_over_time({__name__="a", clusterID=~"c\\\\.1|c2"}[86400s]))',
  );
});

Deno.test("thanosChecks: all there → every check ok", async () => {
  const c = await run(hub(["c1", "c2"]));
  assert.equal(c["thanos.reach"]!.status, "ok");
  assert.equal(c["thanos.cluster_label"]!.status, "ok");
  assert.match(c["thanos.cluster_label"]!.detail, /2 clusters carry clusterID/);
  assert.deepEqual(c["thanos.cluster_label"]!.items, [
    `c1: ${metricsOfReports().length} of ${metricsOfReports().length} metrics`,
    `c2: ${metricsOfReports().length} of ${metricsOfReports().length} metrics`,
  ]);
  assert.equal(c["metrics.present"]!.status, "ok");
  assert.equal(c["metrics.optional"]!.status, "ok");
});

Deno.test("thanosChecks: a missing metric names the cluster, the metric and the empty columns", async () => {
  const c = await run(hub(["c1", "c2"], {
    c2: ["kube_pod_container_resource_requests", "DCGM_FI_PROF_GR_ENGINE_ACTIVE"],
  }));
  const present = c["metrics.present"]!;
  assert.equal(present.status, "fail");
  assert.match(present.detail, /1 cluster lacks 1 metric that report columns need/);
  assert.deepEqual(present.items, [
    "c2: kube_pod_container_resource_requests has no series in the last 24 h; empty columns: " +
    "gpu: gpu_memory_capacity_mib; pod: pod_request_cpu_core_seconds, pod_request_memory_byte_seconds",
  ]);
  const optional = c["metrics.optional"]!;
  assert.equal(optional.status, "ok");
  assert.equal(optional.items?.length, 1);
  assert.match(
    optional.items![0]!,
    /^c2: DCGM_FI_PROF_GR_ENGINE_ACTIVE .*normal without NVIDIA GPUs/,
  );
});

Deno.test("thanosChecks: only the enabled reports' metrics; a metric missing everywhere is one line", async () => {
  const c = await run(hub(["c1", "c2"], { c1: ["kube_pod_labels"], c2: ["kube_pod_labels"] }), {
    reports: ["pod"],
  });
  assert.deepEqual(c["metrics.present"]!.items, [
    "all 2 clusters: kube_pod_labels has no series in the last 24 h; empty columns: pod: pod_labels",
  ]);
  const ns = await run(hub(["c1"], { c1: ["kube_pod_labels"] }), { reports: ["namespace"] });
  assert.equal(ns["metrics.present"]!.status, "ok");
});

Deno.test("thanosChecks: a wrong cluster label lists the labels that exist", async () => {
  const c = await run(hub(["c1", "c2"]), { clusterLabel: "cluster_id" });
  const label = c["thanos.cluster_label"]!;
  assert.equal(label.status, "fail");
  assert.match(label.detail, /cluster label cluster_id not found/);
  assert.match(label.detail, /these labels exist on kube_node_info: cluster, clusterID, node/);
  assert.match(label.detail, /--cluster-label clusterID$/);
  assert.deepEqual(label.items, [
    "cluster: 2 values (looks like a cluster label)",
    "clusterID: 2 values (looks like a cluster label)",
    "node: 2 values",
  ]);
  assert.equal(c["metrics.present"]!.status, "skip");
});

Deno.test("thanosChecks: a requested cluster that is not under the label gets a hint", async () => {
  const c = await run(hub(["c1", "c2"]), { clusters: ["c1", "name-1"] });
  const label = c["thanos.cluster_label"]!;
  assert.equal(label.status, "fail");
  assert.match(label.detail, /1 requested cluster not found under clusterID: name-1/);
  assert.match(label.items![0]!, /^name-1: no series with clusterID="name-1".*label\(s\) cluster$/);
  // Only c1 is checked, and it has everything.
  assert.equal(c["metrics.present"]!.status, "ok");
  assert.match(c["metrics.present"]!.detail, /× 1 cluster\)/);
});

Deno.test("thanosChecks: 401 says the token is refused; the rest is skipped", async () => {
  const c = await run([], {}, 401);
  assert.equal(c["thanos.reach"]!.status, "fail");
  assert.match(c["thanos.reach"]!.detail, /token was refused \(HTTP 401\)/);
  assert.equal(c["thanos.cluster_label"]!.status, "skip");
  assert.equal(c["metrics.present"]!.status, "skip");
});

Deno.test("thanosChecks: an empty Thanos says nothing is forwarded", async () => {
  const c = await run([]);
  assert.equal(c["thanos.reach"]!.status, "ok");
  assert.equal(c["thanos.cluster_label"]!.status, "fail");
  assert.match(c["thanos.cluster_label"]!.detail, /no series of any metric the reports need/);
});

Deno.test("thanosChecks: bad options are refused", async () => {
  const client = new ThanosClient({ url: "http://thanos.test", fetch: fakeThanos([]) });
  try {
    await assert.rejects(
      thanosChecks({ client, clusterLabel: "bad-label", hours: 1, now: NOW }),
      RangeError,
    );
    await assert.rejects(
      thanosChecks({ client, clusterLabel: "clusterID", hours: 0, now: NOW }),
      RangeError,
    );
  } finally {
    client.close();
  }
});
