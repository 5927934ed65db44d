/**
 * Issue 10's acceptance, end to end through the CLI (`main` with an injected
 * `CliIo`) against one real Prometheus loaded with a small synthetic hub in
 * which one cluster does not forward `kube_pod_container_resource_requests`:
 *
 * - `doctor` finds the clusters by Thanos discovery, says ✓ to the
 *   configuration and to Thanos, and ✗ to that cluster, naming the metric and
 *   the report columns left empty; `--json` gives the same as checks;
 *   `--hours` counts back from now, discovery's window is separate;
 * - `doctor` with a wrong cluster label lists the labels that exist; a filter
 *   that leaves nothing is named as the reason, an empty discovery is not;
 * - `doctor` with a bad setting or a missing file fails the first checks;
 * - `collect` without `--cluster` discovers the hub's clusters (the one without
 *   pod requests still gets a payload that matches the ground truth, with
 *   empty request cells), filters them with `--include`, and merges them with
 *   a static list from a config file (the static name and org win);
 * - `allowlist` prints the ConfigMap with exactly the metrics the reports read.
 */
import assert from "node:assert/strict";
import YAML from "yaml";
import { metricsOfReports, rosMetrics } from "../src/collect/metric_usage.ts";
import type { DoctorCheck } from "../src/service/doctor_check.ts";
import { readCsvRecords } from "../src/package/csv.ts";
import type { Hub, HubOptions } from "../tools/synth/model.ts";
import { prepareHub, type PrometheusServer, startPrometheus } from "../tools/synth/prometheus.ts";
import { afterData, type Ran, runCli } from "./support/cli_in_process.ts";
import { checkPayload, extract } from "./support/payload_check.ts";

const DROPPED = "kube_pod_container_resource_requests";
/** The one full day of the hub's data (it runs from 2026-10-31T22:00Z for 26 hours). */
const DAY = "2026-11-01";

const SMALL_HUB: HubOptions = {
  seed: 7,
  clusters: 3,
  nodes: 2,
  pods: 3,
  pvcs: 1,
  vms: 0,
  gpuPods: 1,
  gpuClusters: 1,
  start: new Date("2026-10-31T22:00:00Z"),
  hours: 26,
  intervalSeconds: 300,
  hostile: false,
  dropMetrics: [{ clusterIndex: 1, metric: DROPPED }],
};

/**
 * Runs the CLI in this process. The clock is the end of the hub's data, so
 * that `doctor --hours 6` and the 24 h discovery window both see it (with the
 * real clock, in a later year, Thanos would have nothing in either window).
 */
function cli(hub: Hub, args: string[], hoursAfterData = 0): Promise<Ran> {
  return runCli(args, afterData(hub, hoursAfterData));
}

function show(r: Ran): string {
  return `exit ${r.code}\n--- stdout\n${r.out}\n--- stderr\n${r.err}`;
}

function byId(checks: readonly DoctorCheck[]): Record<string, DoctorCheck> {
  return Object.fromEntries(checks.map((c) => [c.id, c]));
}

/** The lines of `doctor`'s text output that start with `mark`, mark removed. */
function marked(out: string, mark: "✓" | "✗" | "–"): string[] {
  return out.split("\n").filter((l) => l.startsWith(`${mark} `)).map((l) => l.slice(2));
}

/** The values of one column of the pod report in a payload. */
async function podColumn(path: string, column: string): Promise<string[]> {
  const members = await extract(path);
  const name = [...members.keys()].find((n) => /-cm-openshift-pod-usage-\d{6}\.\d+\.csv$/.test(n));
  assert.ok(name, [...members.keys()].join(", "));
  const rows: string[][] = [];
  for await (const r of readCsvRecords(ReadableStream.from([members.get(name)!]))) rows.push(r);
  const [header, ...data] = rows;
  const i = header!.indexOf(column);
  assert.ok(i >= 0, `${column} in ${header!.join(",")}`);
  return data.map((r) => r[i]!);
}

interface Summary {
  ok: boolean;
  clusters: {
    clusterId: string;
    error?: unknown;
    days: {
      day: string;
      status: string;
      hours: number;
      lastHour: number;
      refs: { location: string }[];
    }[];
  }[];
  discovery?: {
    clusters: { clusterId: string; name?: string; orgId?: string; sources: string[] }[];
    sources: { kind: string; found: number; error?: string }[];
    skipped: unknown[];
    excluded: { clusterId: string; reason: string }[];
  };
}

Deno.test({
  name: "e2e ops: doctor, discovery-driven collect and allowlist through the CLI",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const work = await Deno.makeTempDir({ prefix: "e2e_ops_" });
    let server: PrometheusServer | undefined;
    try {
      const { hub, dataDir } = await prepareHub(SMALL_HUB, work);
      server = await startPrometheus({ dataDir });
      const url = server.url;
      const ids = hub.clusters.map((c) => c.id);
      const lacking = ids[1]!;
      const dirs = (
        name: string,
      ) => ["--out", `${work}/${name}/out`, "--state", `${work}/${name}/state`];
      const doctor = (...extra: string[]) =>
        cli(hub, [
          "doctor",
          "--thanos-url",
          url,
          "--discovery",
          "thanos",
          ...dirs("doctor"),
          "--hours",
          "6",
          ...extra,
        ]);

      await t.step("doctor: ✓ config and Thanos, ✗ the cluster without pod requests", async () => {
        const r = await doctor();
        assert.equal(r.code, 1, show(r));
        const ok = marked(r.out, "✓");
        assert.ok(ok.some((l) => l.startsWith("The configuration resolves: ")), show(r));
        assert.ok(ok.some((l) => l.startsWith("Files, secrets and folders are readable")), show(r));
        assert.ok(
          ok.includes("Discovery source thanos answers: found 3 cluster(s)"),
          show(r),
        );
        assert.ok(ok.some((l) => l.startsWith("Thanos answers and accepts the credentials")));
        assert.ok(ok.some((l) => l.startsWith("Cluster label clusterID exists")), show(r));
        // Exactly one ✗: the metrics; its item names the cluster, the metric, the columns.
        const failed = marked(r.out, "✗");
        assert.equal(failed.length, 1, show(r));
        assert.match(failed[0]!, /^Metrics the enabled reports need have series/);
        const item = r.out.split("\n").find((l) => l.startsWith(`    ${lacking}: ${DROPPED} `));
        assert.ok(item, show(r));
        assert.match(item, new RegExp(`: ${DROPPED} has no series in the last 6 h; `));
        assert.match(item, /empty columns: .*\bpod: pod_request_cpu_core_seconds\b/);
        assert.match(item, /\bpod_request_memory_byte_seconds\b/);
        assert.ok(r.out.endsWith("1 check(s) failed\n"), show(r));
        // The complete clusters are not blamed for anything needed.
        for (const id of [ids[0]!, ids[2]!]) {
          assert.ok(!failed.some((l) => l.includes(id)));
          assert.ok(!r.out.includes(`    ${id}: ${DROPPED}`), show(r));
        }

        // --json: the same checks as data.
        const j = await doctor("--json");
        assert.equal(j.code, 1, show(j));
        const doc = JSON.parse(j.out) as { ok: boolean; checks: DoctorCheck[] };
        assert.equal(doc.ok, false);
        const got = doc.checks.map((c) => c.id);
        for (
          const id of [
            "config.resolve",
            "config.files",
            "discovery.thanos",
            "thanos.reach",
            "thanos.cluster_label",
            "metrics.present",
            "local.engine",
            "sink.dir",
          ]
        ) {
          assert.ok(got.includes(id), `${id} in ${got.join(", ")}`);
        }
        assert.equal(new Set(got).size, got.length, "check ids are unique");
        assert.deepEqual(doc.checks.filter((c) => c.status === "fail").map((c) => c.id), [
          "metrics.present",
        ]);
        const c = byId(doc.checks);
        assert.equal(c["discovery.thanos"]!.detail, "found 3 cluster(s)");
        // Local mode (the default) against Debian's Prometheus 2: its build info, remote read,
        // and no counter adjustment.
        assert.match(
          c["local.engine"]!.detail,
          /^prometheus2 semantics \(Prometheus 2\.[\d.]+\S* \(2\.x engine\)\), raw samples by remote read$/,
        );
        assert.equal(c["local.engine"]!.items, undefined);
        assert.deepEqual(c["metrics.present"]!.items, [item.trim()]);

        // --hours is counted back from now: 7 h after the data ended, the last 6 h are empty
        // (every cluster is "missing"), while discovery's 24 h window still finds all three.
        const later = await cli(hub, [
          "doctor",
          "--thanos-url",
          url,
          "--discovery",
          "thanos",
          ...dirs("doctor"),
          "--hours",
          "6",
          "--json",
        ], 7);
        assert.equal(later.code, 1, show(later));
        const lc = byId((JSON.parse(later.out) as { checks: DoctorCheck[] }).checks);
        assert.equal(lc["discovery.thanos"]!.status, "ok", show(later));
        assert.equal(lc["thanos.cluster_label"]!.status, "fail", show(later));
        // A window that reaches back into the data sees it again: only the one cluster fails.
        const wider = await cli(hub, [
          "doctor",
          "--thanos-url",
          url,
          "--discovery",
          "thanos",
          ...dirs("doctor"),
          "--hours",
          "12",
          "--json",
        ], 7);
        const wc = byId((JSON.parse(wider.out) as { checks: DoctorCheck[] }).checks);
        assert.equal(wc["thanos.cluster_label"]!.status, "ok", show(wider));
        assert.equal(wc["metrics.present"]!.status, "fail", show(wider));
        assert.equal(wc["metrics.present"]!.items?.length, 1, show(wider));
        assert.match(wc["metrics.present"]!.items![0]!, new RegExp(`^${lacking}: ${DROPPED} `));
      });

      await t.step("doctor: a wrong cluster label lists the labels that exist", async () => {
        const r = await doctor("--cluster-label", "cluster_id");
        assert.equal(r.code, 1, show(r));
        const line = marked(r.out, "✗").find((l) => l.startsWith("Cluster label cluster_id "));
        assert.ok(line, show(r));
        assert.match(line, /cluster label cluster_id not found/);
        assert.match(line, /these labels exist on kube_node_info: .*\bclusterID\b/);
        assert.match(line, /--cluster-label clusterID$/);
        assert.ok(r.out.includes("\n    clusterID: 3 values (looks like a cluster label)\n"));
        // Nothing was filtered out: the reason is discovery, not the include/exclude filter.
        assert.ok(
          marked(r.out, "✗").includes("Runs have clusters to collect: discovery found no cluster"),
          show(r),
        );
        // Discovery by the same label finds nothing and says where to look.
        assert.ok(
          marked(r.out, "✗").some((l) =>
            l.startsWith("Discovery source thanos answers: found no cluster") &&
            l.includes("--cluster-label")
          ),
          show(r),
        );
      });

      await t.step("doctor: a filter that leaves nothing is named as the reason", async () => {
        const r = await doctor("--exclude", "*");
        assert.equal(r.code, 1, show(r));
        assert.ok(
          marked(r.out, "✓").includes("Discovery source thanos answers: found 3 cluster(s)"),
        );
        assert.ok(
          marked(r.out, "✗").includes(
            "Runs have clusters to collect: no cluster is left after the include/exclude filter",
          ),
          show(r),
        );
        assert.equal(r.out.split("\n").filter((l) => l.includes(" left out ")).length, 3, show(r));
      });

      await t.step(
        "doctor: a bad setting fails config.resolve, a missing file config.files",
        async () => {
          const bad = await doctor("--discovery", "k8s");
          assert.equal(bad.code, 1, show(bad));
          const failed = marked(bad.out, "✗");
          assert.equal(failed.length, 1, show(bad));
          assert.match(
            failed[0]!,
            /^The configuration resolves: --discovery .*"k8s" is not a discovery source/,
          );
          assert.deepEqual(
            marked(bad.out, "✓"),
            [],
            "nothing after a configuration that does not resolve",
          );
          const badJson = await doctor("--discovery", "k8s", "--json");
          assert.equal(badJson.code, 1, show(badJson));
          const bj = JSON.parse(badJson.out) as { ok: boolean; checks: DoctorCheck[] };
          assert.equal(bj.ok, false);
          assert.deepEqual(bj.checks.map((c) => [c.id, c.status]), [["config.resolve", "fail"]]);
          assert.match(bj.checks[0]!.detail, /"k8s"/);

          const missing = await doctor("--token-file", "/nonexistent");
          assert.equal(missing.code, 1, show(missing));
          assert.ok(marked(missing.out, "✓")[0]?.startsWith("The configuration resolves: "));
          const mf = marked(missing.out, "✗");
          assert.equal(mf.length, 1, show(missing));
          assert.match(
            mf[0]!,
            /^Files, secrets and folders are readable and well-formed: --token-file .*"\/nonexistent" does not exist/,
          );
          const mj = await doctor("--token-file", "/nonexistent", "--json");
          const mc = JSON.parse(mj.out) as { ok: boolean; checks: DoctorCheck[] };
          assert.equal(mj.code, 1, show(mj));
          assert.deepEqual(mc.checks.map((c) => [c.id, c.status]), [
            ["config.resolve", "ok"],
            ["config.files", "fail"],
          ]);
        },
      );

      const collect = (name: string, ...extra: string[]) =>
        cli(hub, [
          "collect",
          "--thanos-url",
          url,
          "--day",
          DAY,
          "--until",
          "1",
          ...dirs(name),
          "--json",
          ...extra,
        ]);

      await t.step(
        "collect without --cluster: thanos discovery finds the hub's clusters",
        async () => {
          const r = await collect("all", "--discovery", "thanos");
          assert.equal(r.code, 0, show(r));
          const s = JSON.parse(r.out) as Summary;
          assert.equal(s.ok, true);
          assert.deepEqual(s.discovery?.sources[0], { kind: "thanos", found: 3 });
          assert.deepEqual(s.discovery?.excluded, []);
          assert.deepEqual(s.clusters.map((c) => c.clusterId).sort(), [...ids].sort());
          assert.deepEqual(
            s.discovery?.clusters.map((c) => [c.clusterId, c.name]),
            hub.clusters.map((c) => [c.id, c.name]),
          );
          // Every cluster, the one without pod requests too, yields a payload that matches the
          // ground truth (whose pod request cells are empty where the metric is missing).
          for (const c of s.clusters) {
            assert.equal(c.error, null);
            const [d] = c.days;
            assert.deepEqual([d!.day, d!.status, d!.hours, d!.lastHour, d!.refs.length], [
              DAY,
              "new",
              2,
              1,
              1,
            ]);
            await checkPayload(hub, c.clusterId, d!.refs[0]!.location, 1, DAY);
          }
          const lackingPod = await podColumn(
            s.clusters.find((c) => c.clusterId === lacking)!.days[0]!.refs[0]!.location,
            "pod_request_cpu_core_seconds",
          );
          assert.ok(lackingPod.length > 0, "the cluster without requests still has pod rows");
          assert.ok(lackingPod.every((v) => v === ""), lackingPod.join(","));
          const fullPod = await podColumn(
            s.clusters.find((c) => c.clusterId === ids[0])!.days[0]!.refs[0]!.location,
            "pod_request_cpu_core_seconds",
          );
          assert.ok(fullPod.some((v) => v !== ""), "a complete cluster has request values");
        },
      );

      await t.step(
        "collect --include: only the matching cluster, the others left out",
        async () => {
          const r = await collect("include", "--discovery", "thanos", "--include", ids[0]!);
          assert.equal(r.code, 0, show(r));
          const s = JSON.parse(r.out) as Summary;
          assert.deepEqual(s.clusters.map((c) => c.clusterId), [ids[0]]);
          assert.deepEqual(s.discovery?.sources, [{ kind: "thanos", found: 3 }]);
          assert.deepEqual(
            s.discovery?.excluded.map((e) => e.clusterId).sort(),
            [ids[1]!, ids[2]!].sort(),
          );
          for (const e of s.discovery!.excluded) assert.match(e.reason, /include/);
          // The text summary says the same.
          const text = await cli(hub, [
            "collect",
            "--thanos-url",
            url,
            "--discovery",
            "thanos",
            "--include",
            ids[0]!,
            "--day",
            DAY,
            "--until",
            "1",
            ...dirs("include"),
          ]);
          assert.equal(text.code, 0, show(text));
          assert.match(
            text.out,
            /^discovery: 1 cluster\(s\) \(thanos 3\), 2 left out by the filter\n/,
          );
        },
      );

      await t.step(
        "collect --discovery static,thanos with a config file: merged, static name wins",
        async () => {
          const config = `${work}/bridge.yaml`;
          await Deno.writeTextFile(
            config,
            YAML.stringify({ cluster: [{ cluster_id: ids[2]!, name: "prod", org_id: "42" }] }),
          );
          const r = await collect("merged", "--discovery", "static,thanos", "--config", config);
          assert.equal(r.code, 0, show(r));
          const s = JSON.parse(r.out) as Summary;
          assert.deepEqual(s.discovery?.sources, [
            { kind: "static", found: 1 },
            { kind: "thanos", found: 3 },
          ]);
          assert.deepEqual(s.clusters.map((c) => c.clusterId).sort(), [...ids].sort());
          const merged = s.discovery!.clusters;
          assert.equal(merged.length, 3);
          const prod = merged.find((c) => c.clusterId === ids[2]);
          assert.deepEqual(
            [prod?.name, prod?.orgId, prod?.sources],
            ["prod", "42", ["static", "thanos"]],
          );
          for (const c of merged.filter((c) => c.clusterId !== ids[2])) {
            assert.deepEqual(c.sources, ["thanos"]);
            assert.equal(c.name, hub.clusters.find((h) => h.id === c.clusterId)!.name);
          }
        },
      );

      await t.step(
        "allowlist: the ConfigMap lists exactly the metrics the reports read",
        async () => {
          const parse = (r: Ran) => {
            assert.equal(r.code, 0, show(r));
            const cm = YAML.parse(r.out) as {
              apiVersion: string;
              kind: string;
              metadata: { name: string; namespace: string };
              data: Record<string, string>;
            };
            assert.equal(cm.apiVersion, "v1");
            assert.equal(cm.kind, "ConfigMap");
            assert.equal(cm.metadata.name, "observability-metrics-custom-allowlist");
            assert.equal(cm.metadata.namespace, "open-cluster-management-observability");
            return YAML.parse(cm.data["metrics_list.yaml"]!) as {
              names: string[];
              recording_rules?: { record: string; expr: string }[];
            };
          };
          const plain = parse(await cli(hub, ["allowlist"]));
          assert.deepEqual(
            plain.names,
            [...new Set([...metricsOfReports(), ...rosMetrics()])].sort(),
          );
          assert.ok(plain.names.includes(DROPPED));
          assert.equal(plain.recording_rules, undefined);
          const rules = parse(await cli(hub, ["allowlist", "--recording-rules"]));
          assert.deepEqual(
            rules.names,
            [...new Set([...metricsOfReports(), ...rosMetrics()])].sort(),
          );
          assert.ok((rules.recording_rules?.length ?? 0) > 0);
          for (const rule of rules.recording_rules!) {
            assert.deepEqual(Object.keys(rule).sort(), ["expr", "record"]);
            assert.match(rule.record, /^[a-zA-Z_:][a-zA-Z0-9_:]*$/);
          }
        },
      );
    } finally {
      await server?.stop();
      await Deno.remove(work, { recursive: true });
    }
  },
});
