/**
 * Issue 8's acceptance for fleet batching, end to end through the CLI (`main`
 * with an injected `CliIo` and a fixed clock) against a real Prometheus loaded
 * with one synthetic hub whose clusters share pod, namespace, node, PV and VM
 * names (`sharedNames`), with different values in each cluster:
 *
 * - `--cluster-batch 3` gives byte-identical payloads (every tarball, so every
 *   CSV member and manifest.json) to `--cluster-batch 1`, in both `--reduce`
 *   modes (ROS on in server mode; the client runs go without ROS, whose
 *   queries are the same in both modes, to save time); both batched runs
 *   match the independent oracle cell by cell (cost, and ROS in server mode);
 *   the summary shows that batching happened and saved queries;
 * - a cluster whose queries fail (a proxy answers 422 `bad_data` to every
 *   query naming it) makes its batch fail: the others get every hour through
 *   the per-cluster fallback, byte-identical to a clean run, the bad
 *   cluster's hours fail, and `batching.fallbacks` names the batch;
 * - `--skip-empty` and `--no-skip-empty` give byte-identical payloads on a hub
 *   with GPU and VM series in two clusters and none in the third (whose GPU
 *   and VM queries the probe skips), and skipping saves queries.
 *
 * One Prometheus serves every step.
 */
import assert from "node:assert/strict";
import { COST_QUERIES } from "../src/collect/catalogue.ts";
import { planQueries } from "../src/collect/query_plan.ts";
import { ROS_REPORTS } from "../src/collect/reports.ts";
import { readCsvRecords } from "../src/package/csv.ts";
import type { RunSummary } from "../src/service/collect_job.ts";
import { buildHub, defaultTestHub, type Hub, type HubOptions } from "../tools/synth/model.ts";
import { prepareHub, type PrometheusServer, startPrometheus } from "../tools/synth/prometheus.ts";
import { expectedRosReports } from "../tools/synth/ros_truth.ts";
import { type Ran, runCli } from "./support/cli_in_process.ts";
import { startAlteringProxy } from "./support/altering_proxy.ts";
import { startFailingProxy } from "./support/failing_proxy.ts";
import { checkPayload, extract } from "./support/payload_check.ts";

/** The one full day of the hub's data (it runs from 2026-10-31T22:00Z for 26 hours). */
const DAY = "2026-11-01";
const MONTH = "202611";

/**
 * The default test hub (hostile labels, outage, late start, resized and late
 * nodes …), a little smaller, with ROS data and shared names: GPUs in clusters
 * 0 and 1, VMs in clusters 0 and 1, neither in cluster 2.
 */
function hubOptions(): HubOptions {
  const base: HubOptions = {
    ...defaultTestHub(),
    pods: 10,
    pvcs: 3,
    hours: 26,
    ros: true,
    sharedNames: true,
    gpuClusters: 2,
  };
  const vmFamilies = [
    ...new Set(
      buildHub(base).clusters[2]!.series.map((s) => s.metric).filter((m) =>
        m.startsWith("kubevirt_")
      ),
    ),
  ];
  return {
    ...base,
    dropMetrics: vmFamilies.map((metric) => ({ clusterIndex: 2, metric })),
  };
}

/** The run clock: half a day after the data ends, so every hour of DAY is final. */
function clock(hub: Hub): () => Date {
  return () => new Date(hub.startMs + (hub.hours + 12) * 3_600_000);
}

interface Run {
  ran: Ran;
  summary: RunSummary;
  /** Cluster id → the day's payload tarballs (absolute paths). */
  payloads: Map<string, string[]>;
}

/** Runs `collect` for DAY into fresh `--state`/`--out` folders under `work`/`tag`. */
async function collect(
  hub: Hub,
  url: string,
  ids: readonly string[],
  work: string,
  tag: string,
  extra: readonly string[],
): Promise<Run> {
  const ran = await runCli([
    "collect",
    "--thanos-url",
    url,
    "--cluster",
    ids.join(","),
    "--day",
    DAY,
    "--sink",
    "dir",
    "--out",
    `${work}/${tag}/out`,
    "--state",
    `${work}/${tag}/state`,
    "--json",
    ...extra,
  ], clock(hub));
  assert.ok(ran.out.trim().startsWith("{"), `${tag}: no JSON summary\n${ran.err}`);
  const summary = JSON.parse(ran.out) as RunSummary;
  const payloads = new Map<string, string[]>();
  for (const c of summary.clusters) {
    payloads.set(c.clusterId, c.days.flatMap((d) => d.refs.map((r) => r.location)));
  }
  return { ran, summary, payloads };
}

/** Asserts a clean run: exit 0, every cluster's day new with 24 hours and one payload. */
function assertClean(run: Run, tag: string): void {
  assert.equal(run.ran.code, 0, `${tag}: exit ${run.ran.code}\n${run.ran.err}`);
  assert.ok(run.summary.ok, `${tag}: summary ok`);
  for (const c of run.summary.clusters) {
    assert.equal(c.days.length, 1, `${tag} ${c.clusterId}: one day`);
    const d = c.days[0]!;
    assert.deepEqual([d.status, d.hours, d.failedHours.length], ["new", 24, 0], tag);
    assert.equal(d.refs.length, 1, `${tag} ${c.clusterId}: one payload`);
  }
}

const decoder = new TextDecoder();

/** The first line where two texts differ, for a precise failure message. */
function firstDifference(a: string, b: string): string {
  const x = a.split("\n"), y = b.split("\n");
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] !== y[i]) {
      return `line ${i + 1}:\n  got  ${JSON.stringify(x[i])}\n  want ${JSON.stringify(y[i])}`;
    }
  }
  return "same text, different bytes";
}

/**
 * Asserts that `got` shipped byte-identical payloads to `want` for `ids`
 * (same tarball names, same bytes); on a difference, names the member and line.
 * Returns the number of members compared.
 */
async function assertSamePayloads(
  got: Run,
  want: Run,
  ids: readonly string[],
  what: string,
): Promise<number> {
  let members = 0;
  for (const id of ids) {
    const g = got.payloads.get(id) ?? [];
    const w = want.payloads.get(id) ?? [];
    const base = (p: string) => p.slice(p.lastIndexOf("/") + 1);
    assert.ok(w.length > 0, `${what} ${id}: the reference shipped a payload`);
    assert.deepEqual(g.map(base), w.map(base), `${what} ${id}: payload names (uuids)`);
    for (const [i, path] of g.entries()) {
      const [a, b] = [await extract(path), await extract(w[i]!)];
      assert.deepEqual([...a.keys()], [...b.keys()], `${what} ${id}: members`);
      for (const [name, bytes] of a) {
        const other = b.get(name)!;
        if (!bytes.every((v, k) => other[k] === v) || bytes.length !== other.length) {
          assert.fail(
            `${what} ${id} ${name} differs at ${
              firstDifference(decoder.decode(bytes), decoder.decode(other))
            }`,
          );
        }
        members++;
      }
      // The members are equal: so must the tarballs be (same order, same mtime).
      assert.deepEqual(await Deno.readFile(path), await Deno.readFile(w[i]!), `${what} ${id}`);
    }
  }
  return members;
}

async function parseCsv(bytes: Uint8Array): Promise<string[][]> {
  const rows: string[][] = [];
  for await (const r of readCsvRecords(ReadableStream.from([bytes]))) rows.push(r);
  return rows;
}

const byteOrder = (a: readonly string[], b: readonly string[]) => {
  const x = a.join("\u0000"), y = b.join("\u0000");
  return x < y ? -1 : x > y ? 1 : 0;
};

/**
 * Checks every cell of every payload of `run` against the cost oracle and,
 * when `ros`, the ROS oracle.
 */
async function checkOracle(
  hub: Hub,
  run: Run,
  ros: boolean,
  checked: Map<string, number>,
): Promise<void> {
  for (const [clusterId, [path]] of run.payloads) {
    await checkPayload(hub, clusterId, path!, 23, DAY, checked);
    if (!ros) continue;
    const members = await extract(path!);
    const manifest = JSON.parse(decoder.decode(members.get("manifest.json")));
    const listed: string[] = manifest.resource_optimization_files ?? [];
    const want = expectedRosReports(hub, clusterId, DAY);
    const passed = want.windows.some((w) => w.passed);
    for (const def of ROS_REPORTS) {
      const name = listed.find((n) => n.includes(`-${def.filePrefix}-${MONTH}`));
      if (!passed) {
        assert.equal(name, undefined, `${clusterId} ${def.name}: no file without opt-in`);
        continue;
      }
      assert.ok(name, `${clusterId} ${def.name}: file present`);
      const [header, ...rows] = await parseCsv(members.get(name)!);
      assert.deepEqual(header, def.header, `${def.name} header`);
      const expected = def.name === "ros-container" ? want.container : want.namespace;
      const got = [...rows].sort(byteOrder);
      const exp = [...expected].sort(byteOrder);
      assert.equal(got.length, exp.length, `${clusterId} ${def.name}: row count`);
      for (const [r, row] of exp.entries()) {
        for (const [c, cell] of row.entries()) {
          assert.equal(
            got[r]![c],
            cell,
            `${clusterId} ${def.name} row ${r} (${row[3]}) ${def.header[c]}`,
          );
        }
      }
      checked.set(def.name, (checked.get(def.name) ?? 0) + rows.length);
    }
  }
}

/** Rows in the payloads of `run` for the pods that exist in more than one cluster. */
async function sharedPodRows(run: Run): Promise<number> {
  const seen = new Map<string, Set<string>>();
  for (const [clusterId, [path]] of run.payloads) {
    for (const [name, bytes] of await extract(path!)) {
      if (!name.includes("-cm-openshift-pod-usage-")) continue;
      const [header, ...rows] = await parseCsv(bytes);
      const ns = header!.indexOf("namespace"), pod = header!.indexOf("pod");
      for (const r of rows) {
        const key = `${r[ns]}/${r[pod]}`;
        if (!seen.has(key)) seen.set(key, new Set());
        seen.get(key)!.add(clusterId);
      }
    }
  }
  return [...seen.values()].filter((s) => s.size > 1).length;
}

/** What every test step shares: the hub, its Prometheus and a work folder. */
interface World {
  hub: Hub;
  url: string;
  work: string;
  ids: string[];
}

async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "e2e_batch_" });
  let server: PrometheusServer | undefined;
  try {
    const { hub, dataDir } = await prepareHub(hubOptions(), work);
    server = await startPrometheus({ dataDir });
    await fn({ hub, url: server.url, work, ids: hub.clusters.map((c) => c.id) });
  } finally {
    await server?.stop();
    await Deno.remove(work, { recursive: true });
  }
}

/** One collection of the whole day, with what it is compared to. */
function describe(tag: string, run: Run): void {
  const b = run.summary.batching;
  console.log(
    `${tag}: ${run.summary.queries} queries, ${run.summary.ms} ms, batches ${b?.batches}, ` +
      `batched ${b?.batched}, skipped ${b?.skippedQueries}, fallbacks ${b?.fallbacks.length}`,
  );
}

Deno.test({
  name: "e2e batch: shared names; --cluster-batch 3 = 1 byte for byte; fault fallback; skip-empty",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: (t) =>
    withWorld(async ({ hub, url, work, ids }) => {
      const has = (prefix: string) =>
        hub.clusters.filter((c) => c.series.some((s) => s.metric.startsWith(prefix)));
      const gpu = has("DCGM_"), vms = has("kubevirt_");
      assert.ok(gpu.length > 0 && gpu.length < 3, "GPUs in some clusters, not all");
      assert.ok(vms.length > 0 && vms.length < 3, "VMs in some clusters, not all");
      const plain = hub.clusters.find((c) => !gpu.includes(c) && !vms.includes(c))!;
      assert.ok(plain, "a cluster without GPU and VM series");
      // The batched runs (one mixed batch: nothing can be skipped) go without the probe, the
      // per-cluster ones with it (the plain cluster's GPU and VM queries are skipped): their
      // equality covers --cluster-batch and --skip-empty at once; step c separates the two.
      const runs = new Map<string, Run>();
      const run = async (tag: string, args: string[], of: readonly string[] = ids) => {
        const r = await collect(hub, url, of, work, tag, args);
        describe(tag, r);
        runs.set(tag, r);
        return r;
      };

      await t.step(
        "a: --cluster-batch 3 equals --cluster-batch 1, both modes, and the oracle",
        async () => {
          const checked = new Map<string, number>();
          for (const mode of ["server", "client"] as const) {
            // ROS queries are the same in both modes, only sent per hour instead of per 6 hours
            // in client mode: the server runs cover them, the client runs go without (time).
            const ros = mode === "server" ? [] : ["--no-ros"];
            const batched = await run(`${mode}-b3`, [
              "--reduce",
              mode,
              "--cluster-batch",
              "3",
              "--no-skip-empty",
              ...ros,
            ]);
            const single = await run(`${mode}-b1`, [
              "--reduce",
              mode,
              "--cluster-batch",
              "1",
              ...ros,
            ]);
            assertClean(batched, `${mode}-b3`);
            assertClean(single, `${mode}-b1`);
            // Batching really happened, and saved queries.
            const b = batched.summary.batching!;
            assert.deepEqual([b.clusterBatch, b.batches, b.batched, b.fallbacks], [3, 1, 1, []]);
            const s = single.summary.batching!;
            assert.deepEqual([s.clusterBatch, s.batches, s.batched, s.fallbacks], [1, 3, 0, []]);
            assert.ok(
              batched.summary.queries < single.summary.queries,
              `${mode}: ${batched.summary.queries} batched queries < ${single.summary.queries}`,
            );
            const members = await assertSamePayloads(batched, single, ids, `${mode} b3 vs b1`);
            // Six cost CSVs and a manifest per cluster, and ROS CSVs of the opted-in clusters.
            const least = ids.length * 7 + (mode === "server" ? 2 * ROS_REPORTS.length : 0);
            assert.ok(members >= least, `${mode}: ${members} members compared`);
            // Not vacuous: pods with the same namespace and name have rows in several clusters.
            assert.ok((await sharedPodRows(batched)) > 0, "shared pod names in the payloads");
            await checkOracle(hub, batched, mode === "server", checked);
          }
          for (const r of ["pod", "node", "namespace", "storage", "vm", "gpu"]) {
            assert.ok((checked.get(r) ?? 0) > 0, `${r} rows checked against the oracle`);
          }
          for (const def of ROS_REPORTS) {
            assert.ok((checked.get(def.name) ?? 0) > 0, `${def.name} rows checked`);
          }
          console.log("rows checked against the oracle:", Object.fromEntries(checked));
        },
      );

      await t.step(
        "a2: --reduce local, batched and per cluster, ships the server's bytes",
        async () => {
          for (const size of ["3", "1"]) {
            const local = await run(`local-b${size}`, [
              "--reduce",
              "local",
              "--cluster-batch",
              size,
            ]);
            assertClean(local, `local-b${size}`);
            const l = local.summary.local!;
            assert.equal(
              l.semantics,
              "prometheus2",
              "Debian's Prometheus 2.42, from its build info",
            );
            assert.deepEqual(l.serverQueries, [], "every cost query evaluated here");
            assert.deepEqual(l.mismatches, [], "the self-checks agree");
            // One cost check per batch and 12-hour range at least: 2 a day, per cluster with b1.
            assert.ok(l.checks >= (size === "3" ? 2 : 6), `self-checks made (${l.checks})`);
            // Whole tarballs: the same CSV bytes, manifests and uuids as server mode.
            await assertSamePayloads(
              local,
              runs.get("server-b1")!,
              ids,
              `local b${size} vs server`,
            );
          }
          // Raw samples instead of 60 evaluations per hour: far fewer queries than server mode.
          assert.ok(
            runs.get("local-b3")!.summary.queries < runs.get("server-b3")!.summary.queries,
            "local mode sends fewer queries",
          );
        },
      );

      await t.step(
        "a3: self-check — a server-side reduction that differs is caught; the server's hours ship",
        async () => {
          // The proxy falsifies every one-hour server-side reduction (what the self-check asks):
          // values off by one, an extra series in label-only answers. Each self-check of a query
          // with series must fail, and its range be collected in server mode (several-hour
          // queries, passed unchanged): the payloads are then the honest server-mode ones.
          const proxy = startAlteringProxy(url);
          let local: Run;
          try {
            local = await collect(hub, proxy.url, ids, work, "altered-local", [
              "--reduce",
              "local",
              "--cluster-batch",
              "3",
            ]);
          } finally {
            await proxy.close();
          }
          assertClean(local, "altered-local");
          const l = local.summary.local!;
          // One cost check per range is falsified (ROS checks, at window ends, pass unchanged).
          assert.ok(proxy.altered() > 0 && l.checks > proxy.altered(), "cost checks falsified");
          assert.ok(l.mismatches.length > 0, "a mismatch was detected");
          for (const m of l.mismatches) {
            assert.ok(m.clusters.length > 0, JSON.stringify(m));
            assert.match(m.detail, /server/, m.detail);
          }
          // Each mismatch collected its range in server mode: one query per aggregate.
          const perRange = planQueries(COST_QUERIES, {
            clusterLabel: "clusterID",
            clusterId: ids[0]!,
            rateWindow: "15m",
          }).reduce((n, p) => n + p.server.length, 0);
          assert.ok(
            proxy.passedServerSide() >= l.mismatches.length * perRange,
            `server-mode queries after the mismatches: ${proxy.passedServerSide()}`,
          );
          // No falsified value was shipped: the bytes are those of a clean server-mode run.
          await assertSamePayloads(local, runs.get("server-b1")!, ids, "altered local vs server");
        },
      );

      await t.step("b: a failing cluster fails only its hours; the others fall back", async () => {
        const bad = hub.clusters[1]!.id;
        const good = ids.filter((id) => id !== bad);
        const message = "injected: bad data in one cluster";
        const proxy = startFailingProxy({ target: url, failOn: [bad], message });
        let faulty: Run;
        try {
          faulty = await collect(hub, proxy.url, ids, work, "fault", [
            "--reduce",
            "server",
            "--cluster-batch",
            "3",
            "--retries",
            "2",
          ]);
        } finally {
          await proxy.close();
        }
        describe("fault", faulty);
        assert.notEqual(faulty.ran.code, 0, "a failed cluster fails the run");
        assert.equal(faulty.summary.ok, false);
        // The batch failed (retried once: --retries 2), then each cluster ran on its own.
        const batchQueries = proxy.failed.filter((q) => ids.every((id) => q.includes(id)));
        const tries = new Map<string, number>();
        for (const q of batchQueries) tries.set(q, (tries.get(q) ?? 0) + 1);
        assert.ok([...tries.values()].some((n) => n === 2), "a batched query was retried");
        assert.ok([...tries.values()].every((n) => n <= 2), "at most --retries 2 attempts");
        assert.ok(proxy.failed.some((q) => !good.some((id) => q.includes(id))), "own queries");
        assert.ok(proxy.passed.length > 0);
        for (const q of proxy.passed) assert.ok(!q.includes(bad), "no query of it got through");
        const b = faulty.summary.batching!;
        assert.equal(b.batched, 1);
        assert.equal(b.fallbacks.length, 1, JSON.stringify(b.fallbacks));
        const f = b.fallbacks[0]!;
        assert.deepEqual([f.day, f.hours, f.clusters], [DAY, "00-23", ids]);
        assert.equal(f.code, "thanos_http");
        assert.ok(f.message.includes(message), f.message);
        for (const c of faulty.summary.clusters) {
          const d = c.days[0]!;
          if (c.clusterId === bad) {
            assert.deepEqual(d.collectedHours, []);
            assert.deepEqual(d.failedHours.map((h) => h.hour), [...Array(24).keys()]);
            assert.ok(
              d.failedHours.every((h) => h.message.includes(message)),
              JSON.stringify(d.failedHours[0]),
            );
            assert.deepEqual(d.refs, [], "nothing shipped for the failed cluster");
          } else {
            assert.deepEqual([d.status, d.hours, d.failedHours], ["new", 24, []], c.clusterId);
            assert.deepEqual(d.collectedHours, [...Array(24).keys()]);
          }
        }
        await assertSamePayloads(faulty, runs.get("server-b1")!, good, "fallback vs clean b1");
      });

      await t.step("c: --skip-empty and --no-skip-empty ship the same bytes", async () => {
        // The probe is active: per cluster, the plain cluster's GPU and VM queries are skipped …
        for (const mode of ["server", "client"] as const) {
          const b1 = runs.get(`${mode}-b1`)!.summary.batching!;
          assert.ok(b1.skippedQueries > 0, `${mode}: queries skipped (${b1.skippedQueries})`);
          assert.equal(runs.get(`${mode}-b3`)!.summary.batching!.skippedQueries, 0);
        }
        // … and the plain cluster alone, without the probe, ships what it shipped with it.
        const noSkip = await run("server-b1-noskip", [
          "--reduce",
          "server",
          "--cluster-batch",
          "1",
          "--no-skip-empty",
        ], [plain.id]);
        assertClean(noSkip, "server-b1-noskip");
        assert.equal(noSkip.summary.batching!.skippedQueries, 0);
        const alone = await run("server-b1-skip", [
          "--reduce",
          "server",
          "--cluster-batch",
          "1",
        ], [plain.id]);
        assertClean(alone, "server-b1-skip");
        const skipped = alone.summary.batching!.skippedQueries;
        assert.ok(skipped > 0, "the plain cluster's GPU and VM queries are skipped");
        assert.ok(
          alone.summary.queries < noSkip.summary.queries,
          `skipping saves queries: ${alone.summary.queries} < ${noSkip.summary.queries}`,
        );
        await assertSamePayloads(noSkip, alone, [plain.id], "no-skip vs skip");
        await assertSamePayloads(noSkip, runs.get("server-b1")!, [plain.id], "no-skip vs b1");
        // Client mode: the batched run (no probe) shipped the plain cluster's day too.
        await assertSamePayloads(
          runs.get("client-b3")!,
          runs.get("client-b1")!,
          [plain.id],
          "client no-skip vs skip",
        );
      });
    }),
});
