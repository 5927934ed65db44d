/**
 * Issue 9's acceptance, end to end through the CLI (`main` with an injected
 * `CliIo`) against a real Prometheus loaded with a synthetic hub that has
 * ROS-opted-in namespaces, throttled containers and accelerator metrics:
 *
 * - every cell of both ROS reports matches the independent oracle
 *   (tools/synth/ros_truth.ts) in every `--reduce` mode (local also with one
 *   24-hour batch, two ROS runs), and the modes give byte-identical ROS CSVs; the manifest lists exactly the ROS members
 *   under `resource_optimization_files` and koku's manifest rules pass;
 * - a day delivered hour by hour puts every 15-minute window into exactly one
 *   payload; a re-run ships nothing; a re-run into an empty sink rebuilds the
 *   last payload byte for byte; `--no-ros` ships no ROS file.
 */
import assert from "node:assert/strict";
import { ROS_REPORTS } from "../src/collect/reports.ts";
import { readCsvRecords } from "../src/package/csv.ts";
import type { Hub, HubOptions } from "../tools/synth/model.ts";
import { prepareHub, type PrometheusServer, startPrometheus } from "../tools/synth/prometheus.ts";
import { expectedRosReports } from "../tools/synth/ros_truth.ts";
import { afterData, type Ran, runCli } from "./support/cli_in_process.ts";
import { checkPayload, extract } from "./support/payload_check.ts";

/** The one full day of the hub's data (it runs from 2026-10-31T22:00Z for 26 hours). */
const DAY = "2026-11-01";
const MONTH = "202611";

const HUB: HubOptions = {
  seed: 11,
  clusters: 3, // the third opts no namespace in: no ROS file at all
  nodes: 2,
  pods: 6,
  pvcs: 1,
  vms: 0,
  gpuPods: 2,
  gpuClusters: 1,
  start: new Date("2026-10-31T22:00:00Z"),
  hours: 26,
  intervalSeconds: 300,
  hostile: false,
};

/** The CLI in this process, an hour after the data ends: every hour of DAY is settled. */
function cli(hub: Hub, args: string[]): Promise<Ran> {
  return runCli(args, afterData(hub, 1));
}

interface Day {
  status: string;
  uuid: string | null;
  hours: number;
  lastHour: number | null;
  refs: { location: string }[];
}

interface Summary {
  ok: boolean;
  queries: number;
  clusters: { clusterId: string; days: Day[] }[];
  /** Batches that failed and were collected again cluster by cluster. */
  batching: { fallbacks: unknown[] };
}

async function collect(hub: Hub, url: string, ids: string[], extra: string[]): Promise<Summary> {
  const ran = await cli(hub, [
    "collect",
    "--thanos-url",
    url,
    "--cluster",
    ids.join(","),
    "--day",
    DAY,
    "--json",
    ...extra,
  ]);
  assert.equal(ran.code, 0, `exit ${ran.code}\n${ran.err}\n${ran.out.slice(0, 2000)}`);
  return JSON.parse(ran.out) as Summary;
}

async function parseCsv(bytes: Uint8Array): Promise<string[][]> {
  const rows: string[][] = [];
  for await (const r of readCsvRecords(ReadableStream.from([bytes]))) rows.push(r);
  return rows;
}

const byteOrder = (a: string[], b: string[]) => {
  const x = a.join("\u0000"), y = b.join("\u0000");
  return x < y ? -1 : x > y ? 1 : 0;
};

/** The ROS members of a payload, by report: header and rows (null when the file is absent). */
async function rosOf(
  path: string,
): Promise<{ members: Map<string, Uint8Array>; reports: Map<string, string[][] | null> }> {
  const members = await extract(path);
  const manifest = JSON.parse(new TextDecoder().decode(members.get("manifest.json")));
  const listed: string[] = manifest.resource_optimization_files ?? [];
  const reports = new Map<string, string[][] | null>();
  for (const def of ROS_REPORTS) {
    const name = listed.find((n) => n.includes(`-${def.filePrefix}-${MONTH}`));
    if (name === undefined) {
      reports.set(def.name, null);
      continue;
    }
    assert.ok(name.startsWith(`${manifest.uuid}-`), name);
    const [header, ...rows] = await parseCsv(members.get(name)!);
    assert.deepEqual(header, def.header, `${def.name} header in CMMO order`);
    reports.set(def.name, rows);
  }
  return { members, reports };
}

async function withHub(fn: (url: string, hub: Hub, work: string) => Promise<void>) {
  const work = await Deno.makeTempDir({ prefix: "e2e_ros_" });
  let server: PrometheusServer | undefined;
  try {
    const { hub, dataDir } = await prepareHub(HUB, work);
    server = await startPrometheus({ dataDir });
    await fn(server.url, hub, work);
  } finally {
    await server?.stop();
    await Deno.remove(work, { recursive: true });
  }
}

Deno.test({
  name: "e2e ROS: every cell matches the oracle in every reduce mode; windows ship once",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withHub(async (url, hub, work) => {
      const ids = hub.clusters.map((c) => c.id);
      const truth = new Map(ids.map((id) => [id, expectedRosReports(hub, id, DAY)]));
      const withRos = ids.filter((id) => truth.get(id)!.container.length > 0);
      assert.ok(withRos.length > 0, "some cluster has ROS rows (the test is not vacuous)");
      assert.ok(
        ids.some((id) => !truth.get(id)!.windows.some((w) => w.passed)),
        "some cluster opts no namespace in",
      );

      const csvs = new Map<string, Uint8Array>();
      let checkedCells = 0;
      // local-day: one 24-hour batch, so two 12-hour ROS runs (the raw samples go after the second).
      const modes = ["client", "server", "local", "local-day"] as const;
      for (const mode of modes) {
        const run = await collect(hub, url, ids, [
          "--reduce",
          mode === "local-day" ? "local" : mode,
          ...(mode === "local-day" ? ["--batch-hours", "24"] : []),
          "--out",
          `${work}/out-${mode}`,
          "--state",
          `${work}/state-${mode}`,
        ]);
        assert.ok(run.ok);
        // Not rescued by a retry: every batch's evaluation held up on its own.
        assert.deepEqual(run.batching.fallbacks, [], `${mode}: no batch fell back`);
        for (const { clusterId, days: [d] } of run.clusters) {
          assert.equal(d!.hours, 24);
          const path = d!.refs[0]!.location;
          await checkPayload(hub, clusterId, path, 23, DAY); // cost cells + manifest lists
          const { members, reports } = await rosOf(path);
          const want = truth.get(clusterId)!;
          const passed = want.windows.some((w) => w.passed);
          for (const def of ROS_REPORTS) {
            const got = reports.get(def.name) ?? null;
            const expected = def.name === "ros-container" ? want.container : want.namespace;
            if (!passed) {
              assert.equal(
                got,
                null,
                `${clusterId} ${def.name}: no file without opted-in namespaces`,
              );
              continue;
            }
            assert.ok(got, `${clusterId} ${def.name}: file present`);
            const sorted = [...got].sort(byteOrder);
            const exp = [...expected].sort(byteOrder);
            assert.equal(sorted.length, exp.length, `${clusterId} ${def.name}: row count`);
            for (const [r, row] of exp.entries()) {
              for (const [c, cell] of row.entries()) {
                assert.equal(
                  sorted[r]![c],
                  cell,
                  `${mode} ${clusterId} ${def.name} row ${r} (${row[3]}) ${def.header[c]}`,
                );
                checkedCells++;
              }
            }
          }
          for (const [name, bytes] of members) {
            if (name.includes("ros-openshift")) {
              csvs.set(`${mode}/${clusterId}/${name.replace(/^[0-9a-f-]{37}/, "")}`, bytes);
            }
          }
        }
      }
      let compared = 0;
      for (const [key, bytes] of csvs) {
        if (!key.startsWith("client/")) continue;
        for (const other of modes.slice(1)) {
          assert.deepEqual(
            csvs.get(key.replace(/^client\//, `${other}/`)),
            bytes,
            `${other}: ${key}`,
          );
        }
        compared++;
      }
      assert.ok(compared >= 2, `ROS CSVs compared across modes: ${compared}`);
      console.log(`ROS cells checked: ${checkedCells}`);

      // Hour by hour, one cluster with ROS rows: every window in exactly one payload.
      const id = withRos[0]!;
      const state = ["--state", `${work}/state-hourly`];
      const seen = new Map<string, string>(); // interval_end → uuid
      const rows = { "ros-container": [] as string[][], "ros-namespace": [] as string[][] };
      let last: Day | null = null;
      for (let h = 0; h <= 23; h++) {
        const run = await collect(hub, url, [id], [
          ...state,
          "--until",
          String(h),
          "--out",
          `${work}/hourly`,
        ]);
        const d = run.clusters[0]!.days[0]!;
        assert.equal(d.status, "new", `hour ${h}`);
        assert.equal(d.lastHour, h);
        const { reports } = await rosOf(d.refs[0]!.location);
        const windows = new Set<string>();
        for (const def of ROS_REPORTS) {
          for (const row of reports.get(def.name) ?? []) {
            rows[def.name].push(row);
            windows.add(row[3]!);
          }
        }
        for (const end of windows) {
          assert.ok(!seen.has(end), `window ${end} shipped twice (${seen.get(end)}, ${d.uuid})`);
          seen.set(end, d.uuid!);
        }
        last = d;
      }
      const want = truth.get(id)!;
      assert.deepEqual(rows["ros-container"].sort(byteOrder), [...want.container].sort(byteOrder));
      assert.deepEqual(rows["ros-namespace"].sort(byteOrder), [...want.namespace].sort(byteOrder));

      // A re-run ships nothing and sends no query.
      const again = await collect(hub, url, [id], [...state, "--out", `${work}/hourly`]);
      assert.equal(again.queries, 0);
      assert.ok(!["new", "queued"].includes(again.clusters[0]!.days[0]!.status));

      // Into an empty sink: the last payload again, byte for byte (same uuid, same ROS windows).
      const rebuilt = await collect(hub, url, [id], [...state, "--out", `${work}/empty`]);
      const r = rebuilt.clusters[0]!.days[0]!;
      assert.equal(r.uuid, last!.uuid);
      assert.deepEqual(
        await Deno.readFile(r.refs[0]!.location),
        await Deno.readFile(last!.refs[0]!.location),
      );

      // doctor names the cluster that opts no namespace in (no ROS reports for it).
      const none = ids.find((c) => !truth.get(c)!.windows.some((w) => w.passed))!;
      const doc = await cli(hub, [
        "doctor",
        "--thanos-url",
        url,
        "--cluster",
        ids.join(","),
        "--out",
        `${work}/doctor-out`,
        "--state",
        `${work}/doctor-state`,
        "--hours",
        "24",
        "--json",
      ]);
      const checks = JSON.parse(doc.out).checks as { id: string; items?: string[] }[];
      const ros = checks.find((c) => c.id === "metrics.ros");
      assert.ok(ros, doc.out);
      assert.ok(
        ros.items?.some((i) => i.startsWith(`${none}: no namespace has`)),
        JSON.stringify(ros),
      );
      for (const c of withRos) {
        assert.ok(!ros.items?.some((i) => i.startsWith(`${c}: no namespace`)), c);
      }

      // --no-ros: no ROS file, no ROS query.
      const off = await collect(hub, url, [id], [
        "--no-ros",
        "--state",
        `${work}/state-off`,
        "--out",
        `${work}/off`,
      ]);
      const { reports: noRos } = await rosOf(off.clusters[0]!.days[0]!.refs[0]!.location);
      for (const def of ROS_REPORTS) assert.equal(noRos.get(def.name), null, def.name);
    }),
});
