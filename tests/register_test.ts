/**
 * `collect --register-sources` end to end through the CLI, on the shipped
 * demo recording and the fake koku sources API: sources are created before
 * collection, remembered, a cluster whose name is taken is blocked (nothing
 * shipped, watermark kept), a dry run registers nothing, and the flag needs
 * `--koku-sources-url`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type CliIo, main } from "../src/cli/main.ts";
import { type FakeKoku, startFakeKokuSources } from "./support/fake_koku_sources.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const ORG = "1234567";
/** A cluster that is not in the demo, holding a demo cluster's name in the conflict test. */
const STRANGER = "0f0e0d0c-0b0a-4909-8807-060504030201";

/** The three cluster ids of `deno task demo`. */
async function demoClusters(): Promise<string[]> {
  const task = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks.demo as string;
  return /--cluster (\S+)/.exec(task)![1]!.split(",");
}

interface Captured extends CliIo {
  out: string;
  err: string;
}

function io(): Captured {
  const c: Captured = {
    out: "",
    err: "",
    stdout: (t) => void (c.out += t),
    stderr: (t) => void (c.err += t),
    stderrIsTerminal: false,
    env: { HOME: "/nonexistent" },
    // Well after the demo day: its hours are ready.
    now: () => new Date("2026-11-02T12:00:00Z"),
  };
  return c;
}

/**
 * The `collect` flags of the demo replay with registration, into `dir`;
 * `extra` appended. The recording holds the day in 6-hour batches
 * (00-05 … 18-23), so `--until` is 5, 11, 17 or 23.
 */
function args(
  clusters: string[],
  dir: string,
  koku: FakeKoku | null,
  opts: { until?: string; out?: string; register?: boolean } = {},
  ...extra: string[]
): string[] {
  return [
    "collect",
    // The demo recording's per-cluster pass (tools/make_demo.ts): the clusters are collected
    // in different subsets here, which batched queries would not find in the recording.
    "--no-ros",
    "--cluster-batch",
    "1",
    "--batch-hours",
    "6",
    "--replay",
    `${ROOT}demo/recording`,
    "--cluster",
    clusters.join(","),
    "--day",
    "2026-11-01",
    "--until",
    opts.until ?? "5",
    "--state",
    join(dir, "state"),
    "--out",
    opts.out ?? join(dir, "out"),
    "--org-id",
    ORG,
    ...(opts.register === false ? [] : ["--register-sources"]),
    ...(koku ? ["--koku-sources-url", koku.url] : []),
    "--json",
    ...extra,
  ];
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const c = io();
  const code = await main(argv, c);
  return { code, out: c.out, err: c.err };
}

/** Payload files under `<out>/<cluster>`, relative; empty when the folder is missing. */
async function payloadsOf(out: string, clusterId: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string, rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    for (const e of entries) {
      if (e.isDirectory) await walk(join(dir, e.name), `${rel}${e.name}/`);
      else found.push(`${rel}${e.name}`);
    }
  };
  await walk(join(out, clusterId), "");
  return found.filter((f) => f.endsWith(".tar.gz"));
}

async function withWorld(fn: (koku: FakeKoku, dir: string, clusters: string[]) => Promise<void>) {
  const koku = startFakeKokuSources();
  const dir = await Deno.makeTempDir({ prefix: "register_test_" });
  try {
    await fn(koku, dir, await demoClusters());
  } finally {
    await koku.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("collect --register-sources creates the three demo sources once, then knows them", async () => {
  await withWorld(async (koku, dir, clusters) => {
    assert.equal(clusters.length, 3);
    const first = await run(args(clusters, dir, koku));
    assert.equal(first.code, 0, first.err + first.out);

    assert.equal(koku.count("POST", "sources"), 3);
    assert.deepEqual(
      koku.sources.map((s) => [s.clusterId, s.name, s.orgId]).sort(),
      clusters.map((id) => [id, id, ORG]).sort(),
      "source_ref and name are the cluster id, in the --org-id org",
    );
    const summary = JSON.parse(first.out);
    assert.equal(summary.registration.created.length, 3);
    assert.deepEqual(
      summary.registration.created.map((c: { clusterId: string }) => c.clusterId).sort(),
      [...clusters].sort(),
    );
    for (const c of summary.registration.created) {
      assert.equal(c.name, c.clusterId);
      assert.equal(c.sourceId, String(koku.sources.find((s) => s.clusterId === c.clusterId)!.id));
    }
    assert.equal(summary.registration.known, 0);
    assert.deepEqual(summary.registration.failed, []);
    for (const c of summary.clusters) {
      assert.equal(c.error, null, JSON.stringify(c.error));
      assert.equal(c.days.length, 1);
      assert.equal(c.days[0].hours, 6);
      assert.ok((await payloadsOf(join(dir, "out"), c.clusterId)).length > 0, c.clusterId);
    }
    // The CLI says what it created.
    for (const id of clusters) assert.match(first.err, new RegExp(`created koku source .*${id}`));

    const requests = koku.requests.length;
    const second = await run(args(clusters, dir, koku));
    assert.equal(second.code, 0, second.err + second.out);
    assert.equal(koku.count("POST", "sources"), 3, "no POST on the second run");
    assert.equal(koku.requests.length, requests, "no request at all: the sources are known");
    const again = JSON.parse(second.out);
    assert.deepEqual(again.registration, { created: [], confirmed: 0, known: 3, failed: [] });
  });
});

Deno.test("collect --register-sources: a cluster whose source name is taken is blocked, the others delivered", async () => {
  await withWorld(async (koku, dir, clusters) => {
    const [blockedId, ...others] = clusters as [string, ...string[]];
    // Hours 00-05 collected earlier, without registration (into another folder): a watermark.
    const earlier = await run(
      args(clusters, dir, null, { until: "5", out: join(dir, "earlier"), register: false }),
    );
    assert.equal(earlier.code, 0, earlier.err + earlier.out);
    const before = JSON.parse(earlier.out).clusters.find(
      (c: { clusterId: string }) => c.clusterId === blockedId,
    ).watermark;
    assert.equal(before, "2026-11-01T05");
    const watermarkFile = join(dir, "state", blockedId, "watermark.json");
    const fileBefore = await Deno.readTextFile(watermarkFile);
    assert.equal(koku.requests.length, 0);

    const taken = koku.seed(ORG, blockedId, STRANGER);
    const res = await run(args(clusters, dir, koku, { until: "11" }));
    assert.equal(res.code, 1, res.err + res.out);
    const summary = JSON.parse(res.out);

    // Registration: two created, the third failed with the conflict.
    assert.deepEqual(
      summary.registration.created.map((c: { clusterId: string }) => c.clusterId).sort(),
      [...others].sort(),
    );
    assert.equal(summary.registration.failed.length, 1);
    assert.equal(summary.registration.failed[0].clusterId, blockedId);
    assert.equal(summary.registration.failed[0].code, "koku_sources");
    assert.equal(koku.sources.filter((s) => s.clusterId === blockedId).length, 0);
    assert.equal(koku.sources.filter((s) => s.name === blockedId).length, 1);
    assert.equal(koku.sources.find((s) => s.name === blockedId)!.id, taken.id);

    const byId = new Map(
      summary.clusters.map((c: { clusterId: string }) => [c.clusterId, c]),
    ) as Map<string, {
      error: { code: string; message: string } | null;
      days: { status: string; hours: number }[];
      watermark: string | null;
    }>;
    const blocked = byId.get(blockedId)!;
    assert.equal(blocked.error?.code, "koku_sources");
    assert.match(blocked.error!.message, /koku would drop its payloads/);
    assert.match(blocked.error!.message, new RegExp(STRANGER));
    assert.deepEqual(blocked.days, [], "nothing collected nor delivered");
    assert.equal(blocked.watermark, before, "its watermark did not move");
    assert.equal(await Deno.readTextFile(watermarkFile), fileBefore);
    assert.deepEqual(await payloadsOf(join(dir, "out"), blockedId), []);

    for (const id of others) {
      const c = byId.get(id)!;
      assert.equal(c.error, null, JSON.stringify(c.error));
      assert.equal(c.days.length, 1);
      assert.equal(c.days[0]!.hours, 12);
      assert.equal(c.watermark, "2026-11-01T11");
      assert.ok((await payloadsOf(join(dir, "out"), id)).length > 0, id);
    }
    // Only the registered clusters are remembered.
    const state = JSON.parse(await Deno.readTextFile(join(dir, "state", "koku-sources.json")));
    assert.deepEqual(Object.keys(state.clusters).sort(), [...others].sort());

    // The human summary names the failure too.
    const text = await run(
      args(clusters, dir, koku, { until: "11" }).filter((a) => a !== "--json"),
    );
    assert.equal(text.code, 1);
    assert.match(text.out, /koku sources: 0 created, 0 confirmed, 2 known, 1 failed/);
    assert.match(text.out, new RegExp(`FAILED ${blockedId} koku_sources`));
  });
});

Deno.test("collect --register-sources --dry-run registers nothing", async () => {
  await withWorld(async (koku, dir, clusters) => {
    const res = await run(args(clusters, dir, koku, {}, "--dry-run"));
    assert.equal(res.code, 0, res.err + res.out);
    assert.equal(koku.requests.length, 0, "koku was not asked anything");
    assert.equal(koku.sources.length, 0);
    const summary = JSON.parse(res.out);
    assert.equal(summary.dryRun, true);
    assert.equal(summary.registration, undefined);
    await assert.rejects(
      Deno.stat(join(dir, "state", "koku-sources.json")),
      Deno.errors.NotFound,
    );
  });
});

Deno.test("collect --register-sources without --koku-sources-url exits 2 naming the flag", async () => {
  const dir = await Deno.makeTempDir({ prefix: "register_test_" });
  try {
    const res = await run(args(await demoClusters(), dir, null));
    assert.equal(res.code, 2, res.err + res.out);
    assert.match(res.err, /--koku-sources-url/);
    assert.equal(res.out, "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
