/**
 * End to end against a real Prometheus loaded with the synthetic hub: the
 * `collect` entry point is run with `deno run` and the compile-time permission
 * flags, in all three reduction modes (`local` evaluates the queries here from
 * raw samples, with the semantics the server's build info names; once over
 * Prometheus's remote read, once over instant queries), and every
 * cell of every payload is checked against the independent ground truth of
 * tools/synth.
 */
import assert from "node:assert/strict";
import { REPORTS } from "../src/collect/reports.ts";
import { RUNTIME_FLAGS } from "../src/cli/runtime_flags.ts";
import { COST_QUERIES } from "../src/collect/catalogue.ts";
import { planQueries } from "../src/collect/query_plan.ts";
import { planRosQueries } from "../src/collect/ros_plan.ts";
import { defaultTestHub, type Hub } from "../tools/synth/model.ts";
import { prepareHub, type PrometheusServer, startPrometheus } from "../tools/synth/prometheus.ts";
import { checkPayload } from "./support/payload_check.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DAY = "2026-11-01";

interface RunResult {
  code: number;
  summary: {
    ok: boolean;
    queries: number;
    /** Batches that failed and were collected again cluster by cluster. */
    batching: { fallbacks: unknown[] };
    local?: {
      semantics: string;
      rawRead: string;
      checks: number;
      mismatches: unknown[];
      serverQueries: { query: string; reason: string }[];
    };
    clusters: {
      clusterId: string;
      days: {
        status: string;
        uuid: string;
        hours: number;
        lastHour: number;
        refs: { location: string }[];
        collectedHours: number[];
        rows: Record<string, number>;
      }[];
    }[];
  };
  stderr: string;
}

async function collect(url: string, clusters: string[], extra: string[]): Promise<RunResult> {
  const args = [
    "run",
    ...RUNTIME_FLAGS, // exactly what `deno task compile` bakes into the binary
    `${ROOT}src/cli/main.ts`,
    "collect",
    "--thanos-url",
    url,
    "--cluster",
    clusters.join(","),
    "--day",
    DAY,
    "--json",
    ...extra,
  ];
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
    .output();
  const stderr = new TextDecoder().decode(out.stderr);
  const stdout = new TextDecoder().decode(out.stdout);
  assert.ok(stdout.trim().startsWith("{"), `no JSON summary; stderr:\n${stderr}`);
  return { code: out.code, summary: JSON.parse(stdout), stderr };
}

async function withPrometheus(
  fn: (url: string, hub: Hub, work: string) => Promise<void>,
): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "e2e_collect_" });
  let server: PrometheusServer | undefined;
  try {
    const { hub, dataDir } = await prepareHub(defaultTestHub(), work);
    server = await startPrometheus({ dataDir });
    await fn(server.url, hub, work);
  } finally {
    await server?.stop();
    await Deno.remove(work, { recursive: true });
  }
}

Deno.test({
  name:
    "e2e: 3 clusters × full day, all three reduction modes, every cell matches the ground truth",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withPrometheus(async (url, hub, work) => {
      const ids = hub.clusters.map((c) => c.id);
      const csvs = new Map<string, Uint8Array>();
      const checked = new Map<string, number>();
      const local = { checks: 0, mismatches: 0 };
      // local: raw samples by remote read (auto, on Prometheus); local-query: by instant queries;
      // local-day: one 24-hour batch (two ROS runs, its raw samples released after the second).
      const modes = ["client", "server", "local", "local-query", "local-day"] as const;
      for (const mode of modes) {
        const run = await collect(url, ids, [
          "--reduce",
          mode.startsWith("local") ? "local" : mode,
          ...(mode === "local-query" ? ["--raw-read", "query"] : []),
          ...(mode === "local-day" ? ["--batch-hours", "24"] : []),
          "--out",
          `${work}/out-${mode}`,
          "--state",
          `${work}/state-${mode}`,
        ]);
        assert.equal(run.code, 0, run.stderr);
        assert.ok(run.summary.ok);
        assert.deepEqual(run.summary.batching.fallbacks, [], `${mode}: no batch fell back`);
        if (mode.startsWith("local")) {
          const l = run.summary.local!;
          assert.equal(l.semantics, "prometheus2", "Debian's Prometheus 2.42, from its build info");
          assert.equal(
            l.rawRead,
            mode === "local-query" ? "instant queries (--raw-read query)" : "remote read",
          );
          assert.deepEqual(l.serverQueries, [], "every cost query evaluated here");
          if (mode !== "local-day") local.checks = Math.min(local.checks || l.checks, l.checks);
          local.mismatches += l.mismatches.length;
        }
        for (const { clusterId, days: [c] } of run.summary.clusters) {
          assert.equal(c!.status, "new");
          assert.equal(c!.hours, 24);
          assert.equal(c!.refs.length, 1);
          const path = c!.refs[0]!.location;
          const members = await checkPayload(hub, clusterId, path, 23, DAY, checked);
          for (const [name, bytes] of members) csvs.set(`${mode}/${clusterId}/${name}`, bytes);
        }
      }
      // client is the reference: server-side reduction and local evaluation must give
      // byte-identical CSVs.
      let compared = 0;
      for (const [key, clientBytes] of csvs) {
        if (!key.startsWith("client/") || key.endsWith("/manifest.json")) continue; // date differs
        for (const other of modes.slice(1)) {
          const bytes = csvs.get(key.replace(/^client\//, `${other}/`));
          assert.ok(bytes, `${other} payload has ${key}`);
          assert.deepEqual(bytes, clientBytes, `${key}: ${other} and client CSVs are identical`);
        }
        compared++;
      }
      // Local mode checked itself against the server, and found nothing to correct.
      // One per batch at least (12-hour batches in local mode: two a day).
      assert.ok(local.checks >= 2, `local mode made self-checks (${local.checks})`);
      assert.equal(local.mismatches, 0, "no self-check mismatch");
      // Six cost CSVs per cluster (ROS CSVs, on by default, are compared too where present).
      const cost = [...csvs.keys()].filter((k) =>
        k.startsWith("client/") && k.includes("-cm-openshift-")
      );
      assert.equal(cost.length, 3 * 6);
      assert.ok(compared >= cost.length);
      // The comparison is not vacuous: every report had rows to check.
      for (const r of REPORTS) assert.ok((checked.get(r.name) ?? 0) > 0, `${r.name} rows checked`);
      console.log("rows checked per report (three modes):", Object.fromEntries(checked));
    }),
});

Deno.test({
  name: "e2e: re-runs are byte-identical with 0 queries; one more hour queries only that hour",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withPrometheus(async (url, hub, work) => {
      const id = hub.clusters[0]!.id;
      const state = ["--state", `${work}/state`];
      const first = await collect(url, [id], [...state, "--until", "22", "--out", `${work}/a`]);
      assert.equal(first.code, 0, first.stderr);
      const f = first.summary.clusters[0]!.days[0]!;
      assert.deepEqual([f.status, f.hours, f.lastHour], ["new", 23, 22]);
      assert.ok(first.summary.queries > 0);

      // Same window into a fresh folder: rebuilt from the state, byte for byte, no query.
      const again = await collect(url, [id], [...state, "--until", "22", "--out", `${work}/b`]);
      const g = again.summary.clusters[0]!.days[0]!;
      assert.equal(again.summary.queries, 0);
      assert.equal(g.uuid, f.uuid);
      assert.deepEqual(
        await Deno.readFile(g.refs[0]!.location),
        await Deno.readFile(f.refs[0]!.location),
      );
      // Same window into the same folder: already delivered, nothing shipped.
      const same = await collect(url, [id], [...state, "--until", "22", "--out", `${work}/a`]);
      assert.equal(same.summary.clusters[0]!.days[0]!.status, "unchanged");
      assert.equal(same.summary.queries, 0);

      // One more hour: only hour 23 is queried (one batch in server mode), new uuid, 24 hours.
      // Without the skip probe, to count the catalogue's queries exactly. Hours 0–22 were
      // collected in local mode (the default): the mode is not part of an hour's identity, so
      // a day goes on in another mode without collecting its hours again.
      const more = await collect(url, [id], [
        ...state,
        "--until",
        "23",
        "--out",
        `${work}/a`,
        "--no-skip-empty",
        "--reduce",
        "server",
      ]);
      const m = more.summary.clusters[0]!.days[0]!;
      assert.deepEqual(m.collectedHours, [23]);
      assert.equal(m.status, "new");
      assert.equal(m.hours, 24);
      assert.notEqual(m.uuid, f.uuid);
      // Server mode sends one query per aggregate (sum; max + count; count for label queries),
      // and the ROS namespace filter (ROS is on by default): this hub opts no namespace in, so
      // the other ROS queries are not sent.
      const opts = { clusterLabel: "clusterID", clusterId: id, rateWindow: "15m" };
      const filters = planRosQueries(opts).filter((p) => p.query.group === "ros-filter").length;
      const perBatch = planQueries(COST_QUERIES, opts).reduce((n, p) => n + p.server.length, 0) +
        filters;
      assert.equal(more.summary.queries, perBatch, "only hour 23 was queried");
      await checkPayload(hub, id, m.refs[0]!.location, 23, DAY);
    }),
});
