import assert from "node:assert/strict";
import { join } from "node:path";
import { COST_QUERIES } from "../collect/catalogue.ts";
import type { MatrixSeries, RangeQuerier, RangeRequest } from "../collect/hour_collector.ts";
import { planQueries } from "../collect/query_plan.ts";
import { REPORT_NAMES } from "../collect/reports.ts";
import { planRosQueries } from "../collect/ros_plan.ts";
import { type BridgeSettings, resolveSettings } from "../config.ts";
import { DirectorySink } from "../deliver/directory_sink.ts";
import { HOUR_MS } from "../model.ts";
import { manifestUuid } from "../package/manifest.ts";
import { StateStore } from "../package/state_store.ts";
import { ClusterLocks } from "./cluster_lock.ts";
import { ClusterRecords } from "./cluster_records.ts";
import { type DaySummary, runCollection } from "./collect_job.ts";
import type { RunPlan } from "./run_plan.ts";

const CLUSTER = "c1";
const DAY = "2026-11-01";
const DAY0 = Date.parse(`${DAY}T00:00:00Z`);
const decoder = new TextDecoder();

const opts = { clusterLabel: "clusterID", clusterId: CLUSTER, rateWindow: "15m" };
const COST = new Map(planQueries(COST_QUERIES, opts).map((p) => [p.expr, p.query.name]));
const ROS = new Map(planRosQueries(opts).map((p) => [p.expr, p.query.name]));

/** Node n1 and pod p1 every minute; ROS: the filter passes and one container everywhere. */
class Fake implements RangeQuerier {
  ros = 0;
  queryRange(r: RangeRequest, onSeries: (s: MatrixSeries) => void): Promise<unknown> {
    const cost = COST.get(r.query);
    const ros = ROS.get(r.query);
    if (cost === undefined && ros === undefined) throw new Error(`unexpected ${r.query}`);
    if (ros !== undefined) this.ros++;
    const metric: Record<string, string> | null = cost === "node-capacity-cpu-cores"
      ? { node: "n1", provider_id: "aws:///z/i-1" }
      : cost === "pod-usage-cpu-cores"
      ? { pod: "p1", namespace: "ns", node: "n1" }
      : ros === "ros-namespace-filter"
      ? { namespace: "ns" }
      : ros === "cpu-usage-container-avg"
      ? { container: "c", pod: "p1", namespace: "ns", node: "n1" }
      : null;
    if (metric) {
      const values: [number, string][] = [];
      for (let t = r.start; t <= r.end; t += r.step) values.push([t, "0.5"]);
      onSeries({ metric, values });
    }
    return Promise.resolve({});
  }
}

interface Env {
  dir: string;
  settings: BridgeSettings;
  store: StateStore;
  records: ClusterRecords;
  client: Fake;
  run(fromHour: number, toHour: number, flags?: Partial<RunPlan>): Promise<DaySummary>;
}

async function withEnv(ros: boolean, fn: (env: Env) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "collect_job_test_" });
  try {
    const settings = {
      ...resolveSettings(
        {
          thanosUrl: "http://127.0.0.1:9",
          clusters: [CLUSTER],
          out: join(dir, "out"),
          state: join(dir, "state"),
          reduce: "client",
        },
        { cacheDir: dir },
      ),
      ros,
    };
    const store = new StateStore(settings.stateDir);
    const records = new ClusterRecords(settings.stateDir);
    const client = new Fake();
    const env: Env = {
      dir,
      settings,
      store,
      records,
      client,
      async run(fromHour, toHour, flags = {}) {
        const plan: RunPlan = {
          clusters: [{
            clusterId: CLUSTER,
            fromMs: DAY0 + fromHour * HOUR_MS,
            toMs: DAY0 + toHour * HOUR_MS,
            source: "request",
          }],
          newestReadyMs: DAY0 + 23 * HOUR_MS,
          recollect: false,
          dryRun: false,
          ...flags,
        };
        const summary = await runCollection(plan, settings, {
          client,
          store,
          sink: new DirectorySink(join(dir, "out")),
          records,
          locks: new ClusterLocks(settings.stateDir),
          orgOf: () => "org",
          now: () => new Date(DAY0 + 30 * HOUR_MS),
          stats: { queries: 0, attempts: 0, bytes: 0 },
          warn: (m) => {
            throw new Error(`unexpected warning ${m}`);
          },
        });
        const c = summary.clusters[0]!;
        assert.equal(c.error, null, JSON.stringify(c.error));
        return c.days[0]!;
      },
    };
    await fn(env);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Members of a delivered tarball, with the text of each CSV. */
async function open(path: string, dir: string): Promise<Map<string, string>> {
  const out = join(dir, `x-${crypto.randomUUID()}`);
  await Deno.mkdir(out);
  const tar = await new Deno.Command("tar", { args: ["-xzf", path, "-C", out] }).output();
  assert.equal(tar.code, 0, decoder.decode(tar.stderr));
  const files = new Map<string, string>();
  for await (const e of Deno.readDir(out)) {
    files.set(e.name, await Deno.readTextFile(join(out, e.name)));
  }
  return files;
}

function rosCsv(files: Map<string, string>, report: "container" | "namespace"): string[] | null {
  for (const [name, text] of files) {
    if (name.includes(`-ros-openshift-${report}-`)) return text.trimEnd().split("\n").slice(1);
  }
  return null;
}

Deno.test("collect job, ROS: each window in exactly one delivered payload; a lost payload is rebuilt byte-identical; a dry run records nothing", async () => {
  await withEnv(true, async (env) => {
    const first = await env.run(0, 5);
    assert.equal(first.status, "new");
    assert.deepEqual(first.rosHours, { fromHour: 0, toHour: 5 });
    assert.equal(
      first.uuid,
      manifestUuid(CLUSTER, DAY, 5, REPORT_NAMES, { fromHour: 0, toHour: 5 }),
    );
    assert.equal(first.rows["ros-container"], 24, "6 hours × 4 windows");
    const a = await open(first.refs[0]!.location, env.dir);
    assert.equal(rosCsv(a, "container")!.length, 24);
    const manifest = JSON.parse(a.get("manifest.json")!);
    assert.equal(manifest.resource_optimization_files.length, 2);
    assert.equal(manifest.files.length, 6);

    const second = await env.run(6, 8);
    assert.equal(second.status, "new");
    assert.deepEqual(second.rosHours, { fromHour: 6, toHour: 8 });
    assert.equal(second.rows["ros-container"], 12);
    const b = await open(second.refs[0]!.location, env.dir);
    const rows = rosCsv(b, "container")!;
    assert.equal(rows.length, 12, "only hours 06-08");
    assert.ok(rows[0]!.includes(",2026-11-01 06:00:01 +0000 UTC,2026-11-01 06:15:00 +0000 UTC,"));
    assert.equal(b.size, 9, "cost CSVs are cumulative, ROS ones are not");
    assert.ok([...b.values()].some((t) => t.includes("00:59:59 +0000 UTC")), "hour 00 cost rows");
    const ledger = await env.records.rosDeliveries(CLUSTER, DAY, "dir");
    assert.deepEqual(ledger.map((d) => [d.lastHour, d.ros]), [
      [5, { fromHour: 0, toHour: 5 }],
      [8, { fromHour: 6, toHour: 8 }],
    ]);

    // Nothing new: unchanged, nothing delivered.
    const queriesBefore = env.client.ros;
    const same = await env.run(8, 8);
    assert.equal(same.status, "unchanged");
    assert.equal(same.uuid, second.uuid);
    assert.equal(env.client.ros, queriesBefore);

    // The sink lost it: rebuilt with the recorded ROS hours, byte-identical, same uuid.
    const before = await Deno.readFile(second.refs[0]!.location);
    await Deno.remove(second.refs[0]!.location);
    const again = await env.run(8, 8);
    assert.equal(again.status, "new");
    assert.equal(again.uuid, second.uuid);
    assert.deepEqual(again.rosHours, { fromHour: 6, toHour: 8 });
    assert.deepEqual(await Deno.readFile(again.refs[0]!.location), before);

    // --recollect of the day keeps the recorded ROS hours (and so the uuid).
    const recollected = await env.run(0, 8, { recollect: true });
    assert.equal(recollected.uuid, second.uuid);
    assert.deepEqual(recollected.rosHours, { fromHour: 6, toHour: 8 });

    // A dry run records nothing.
    const dry = await env.run(9, 9, { dryRun: true });
    assert.equal(dry.status, "dry-run");
    assert.deepEqual(dry.rosHours, { fromHour: 9, toHour: 9 });
    assert.equal((await env.records.rosDeliveries(CLUSTER, DAY, "dir")).length, 2);
    const next = await env.run(9, 9);
    assert.deepEqual(next.rosHours, { fromHour: 9, toHour: 9 });
  });
});

Deno.test("collect job, --no-ros: no ROS query, no ROS file, the uuid of a payload without ROS", async () => {
  await withEnv(false, async (env) => {
    const day = await env.run(0, 3);
    assert.equal(day.status, "new");
    assert.equal(env.client.ros, 0);
    assert.equal(day.uuid, manifestUuid(CLUSTER, DAY, 3, REPORT_NAMES));
    assert.equal(day.rosHours, undefined);
    assert.deepEqual(Object.keys(day.rows), REPORT_NAMES);
    const files = await open(day.refs[0]!.location, env.dir);
    assert.equal(JSON.parse(files.get("manifest.json")!).resource_optimization_files, null);
    assert.equal(files.size, 7);
  });
});

Deno.test("collect job: hours collected without ROS are collected again with ROS; ROS off reuses hours collected with ROS", async () => {
  await withEnv(false, async (env) => {
    await env.run(0, 2);
    const withRos = { ...env.settings, ros: true };
    const store = env.store;
    const hoursBefore = (await store.listHours(CLUSTER, DAY)).hours;
    assert.equal(hoursBefore.get(0)!.ros, null);
    // Same state, ROS on: hours 0-2 are collected again, and the day's next payload carries them.
    const summary = await runCollection(
      {
        clusters: [{
          clusterId: CLUSTER,
          fromMs: DAY0,
          toMs: DAY0 + 3 * HOUR_MS,
          source: "request",
        }],
        newestReadyMs: DAY0 + 23 * HOUR_MS,
        recollect: false,
        dryRun: false,
      },
      withRos,
      {
        client: env.client,
        store,
        sink: new DirectorySink(join(env.dir, "out")),
        records: env.records,
        locks: new ClusterLocks(env.settings.stateDir),
        orgOf: () => "org",
        now: () => new Date(DAY0 + 30 * HOUR_MS),
        stats: { queries: 0, attempts: 0, bytes: 0 },
        warn: () => {},
      },
    );
    const d = summary.clusters[0]!.days[0]!;
    assert.deepEqual(d.collectedHours, [0, 1, 2, 3]);
    assert.deepEqual(d.rosHours, { fromHour: 0, toHour: 3 });
    assert.equal((await store.listHours(CLUSTER, DAY)).hours.get(0)!.ros?.windows, 4);
    // ROS off again: nothing is collected, the hours are reused, no ROS file.
    const off = await env.run(0, 3);
    assert.deepEqual(off.collectedHours, []);
    assert.equal(off.uuid, manifestUuid(CLUSTER, DAY, 3, REPORT_NAMES));
    const files = await open(off.refs[0]!.location, env.dir);
    assert.equal(JSON.parse(files.get("manifest.json")!).resource_optimization_files, null);
  });
});
