/**
 * End to end delivery to koku's intake path, on the real parts: a Prometheus
 * loaded with the synthetic hub, a real Apache Kafka broker (KRaft) and a real
 * SeaweedFS S3 server that checks SigV4 signatures. The `collect` entry point
 * runs as a new user would run it (`deno run` with the compile flags, settings
 * from flags and the standard AWS variables), and a test consumer reads what
 * koku would read.
 *
 * The hub's data ends just before the real clock's "now", so the runs without
 * `--from` (watermark, `--max-backfill`) work on real time.
 */
import assert from "node:assert/strict";
import { HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { RUNTIME_FLAGS } from "../src/cli/runtime_flags.ts";
import { dayOf, HOUR_MS } from "../src/model.ts";
import { newestReadyHour } from "../src/service/run_plan.ts";
import {
  type Announcement,
  download,
  readAnnouncements,
  whereOf,
  withWorld,
  type World,
} from "./support/delivery_world.ts";
import { startKafka } from "./support/kafka.ts";
import { checkPayload, extract } from "./support/payload_check.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const ORG = "1234567";
const DAY_MS = 24 * HOUR_MS;

interface DaySummary {
  day: string;
  status: string;
  uuid: string | null;
  lastHour: number | null;
  hours: number;
  queued: number;
  collectedHours: number[];
  failedHours: { hour: number; code: string; message: string }[];
  refs: { sink: string; location: string }[];
  error: { code: string; message: string } | null;
}

interface Summary {
  ok: boolean;
  queries: number;
  outbox: { sent: number; pending: number; error: unknown };
  batching?: { batched: number; fallbacks: { clusters: string[]; code: string }[] };
  clusters: {
    clusterId: string;
    error: { code: string; message: string } | null;
    watermark: string | null;
    days: DaySummary[];
  }[];
}

async function collect(
  w: World,
  state: string,
  extra: string[],
  options: { clusters?: string[]; s3Port?: number; brokers?: string } = {},
): Promise<{ code: number; summary: Summary; stderr: string }> {
  const child = spawnCollect(w, state, extra, options);
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  const stdout = new TextDecoder().decode(out.stdout);
  assert.ok(
    stdout.trim().startsWith("{"),
    `no JSON summary (exit ${out.code}); stderr:\n${stderr}`,
  );
  return { code: out.code, summary: JSON.parse(stdout), stderr };
}

function spawnCollect(
  w: World,
  state: string,
  extra: string[],
  options: { clusters?: string[]; s3Port?: number; brokers?: string } = {},
): Deno.ChildProcess {
  const args = [
    "run",
    ...RUNTIME_FLAGS,
    `${ROOT}src/cli/main.ts`,
    "collect",
    "--thanos-url",
    w.thanos.url,
    "--cluster",
    (options.clusters ?? w.ids).join(","),
    "--sink",
    "s3-kafka",
    "--s3-endpoint",
    `http://127.0.0.1:${options.s3Port ?? w.s3Proxy.port}`,
    "--s3-path-style",
    "--s3-bucket",
    w.s3.bucket,
    "--s3-prefix",
    "hub-a",
    "--kafka-brokers",
    options.brokers ?? w.kafka.brokers,
    "--org-id",
    ORG,
    "--state",
    state,
    "--retries",
    "2",
    "--json",
    ...extra,
  ];
  return new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: {
      // S3 credentials the standard way; everything else as the test runner has it (Deno's cache).
      AWS_ACCESS_KEY_ID: w.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: w.s3.secretAccessKey,
      AWS_EC2_METADATA_DISABLED: "true",
    },
  }).spawn();
}

function theDay(s: Summary, clusterId: string, day: string): DaySummary {
  const c = s.clusters.find((c) => c.clusterId === clusterId);
  assert.ok(c, `cluster ${clusterId} in the summary`);
  const d = c.days.find((d) => d.day === day);
  assert.ok(d, `day ${day} of ${clusterId} in the summary: ${JSON.stringify(c)}`);
  return d;
}

/** Every (cluster, day, last hour) window was announced under one uuid only. */
async function assertOneUuidPerWindow(w: World, messages: Announcement[]): Promise<void> {
  const windows = new Map<string, Set<string>>();
  for (const m of messages) {
    const { clusterId, day } = whereOf(m.value.url);
    const path = await download(w, m.value.url);
    const manifest = JSON.parse(
      new TextDecoder().decode((await extract(path)).get("manifest.json")),
    );
    assert.equal(manifest.uuid, m.value.request_id);
    const key = `${clusterId}/${day}/${manifest.end}`;
    const set = windows.get(key) ?? new Set();
    set.add(m.value.request_id);
    windows.set(key, set);
  }
  for (const [key, uuids] of windows) assert.equal(uuids.size, 1, `${key}: ${[...uuids]}`);
}

Deno.test({
  name: "e2e deliver: real Kafka and S3: 2 clusters × 2 days, faults, locks and a 3-day backfill",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withWorld(async (w) => {
      const [a, b] = w.ids as [string, string];
      const [d1, d2, d3] = w.fullDays.slice(-3) as [string, string, string];

      // --- 2 clusters × 2 days, as a new user runs it --------------------------------------------
      const state = `${w.work}/state-main`;
      const first = await collect(w, state, ["--from", d1, "--to", d2]);
      assert.equal(first.code, 0, first.stderr);
      let messages = await readAnnouncements(w.kafka.brokers, 4);
      assert.equal(messages.length, 4, "one message per (cluster, day)");
      const windows = new Set<string>();
      for (const m of messages) {
        assert.equal(m.service, "hccm");
        assert.deepEqual(Object.keys(m.value).sort(), [
          "b64_identity",
          "org_id",
          "request_id",
          "timestamp",
          "url",
        ]);
        assert.equal(m.value.org_id, ORG);
        const identity = JSON.parse(atob(m.value.b64_identity));
        assert.equal(identity.identity.org_id, ORG);
        const { clusterId, day, file } = whereOf(m.value.url);
        assert.equal(m.key, clusterId);
        assert.equal(identity.identity.system.cluster_id, clusterId);
        assert.equal(file, `${m.value.request_id}.tar.gz`);
        assert.match(m.value.url, /X-Amz-Signature=/, "a presigned URL");
        windows.add(`${clusterId}/${day}`);
        const summaryDay = theDay(first.summary, clusterId, day);
        assert.equal(summaryDay.status, "new");
        assert.equal(summaryDay.uuid, m.value.request_id);
        // The URL downloads a payload that passes the contract checks, cell by cell.
        await checkPayload(w.hub, clusterId, await download(w, m.value.url), 23, day);
        // Signatures are checked: a tampered URL is refused.
        const tampered = m.value.url.replace(/X-Amz-Signature=([0-9a-f])/, (_, c) =>
          `X-Amz-Signature=${c === "0" ? "1" : "0"}`);
        const refused = await fetch(tampered);
        await refused.body?.cancel();
        assert.equal(refused.status, 403);
      }
      assert.deepEqual(
        [...windows].sort(),
        [`${a}/${d1}`, `${a}/${d2}`, `${b}/${d1}`, `${b}/${d2}`].sort(),
      );
      // A second run with no new hours sends no message and uploads nothing.
      const again = await collect(w, state, ["--from", d1, "--to", d2]);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.summary.queries, 0);
      for (const c of again.summary.clusters) {
        for (const d of c.days) {
          assert.equal(d.status, "complete", JSON.stringify(d)); // whole days never ship again
        }
      }
      messages = await readAnnouncements(w.kafka.brokers, 4);
      assert.equal(messages.length, 4, "no new message");

      // --- S3 down during the upload: nothing announced; the next run uploads and announces -------
      const s3State = `${w.work}/state-s3`;
      w.s3Proxy.mode = "refuse";
      const down = await collect(w, s3State, ["--day", d3], { clusters: [a] });
      assert.equal(down.code, 1);
      const failed = theDay(down.summary, a, d3);
      assert.equal(failed.status, "failed");
      assert.equal(failed.error?.code, "sink_s3");
      assert.equal((await readAnnouncements(w.kafka.brokers, 4)).length, 4, "nothing announced");
      w.s3Proxy.mode = "pass";
      const up = await collect(w, s3State, ["--day", d3], { clusters: [a] });
      assert.equal(up.code, 0, up.stderr);
      assert.equal(up.summary.queries, 0, "the hours were kept in the state");
      assert.equal(theDay(up.summary, a, d3).status, "new");
      assert.equal((await readAnnouncements(w.kafka.brokers, 5)).length, 5);

      // --- Thanos 503 for one cluster: the other is delivered; the next run catches up -------------
      const thanosState = `${w.work}/state-thanos`;
      w.thanos.failCluster = b;
      const half = await collect(w, thanosState, ["--day", d3]);
      assert.equal(half.code, 1);
      assert.equal(theDay(half.summary, a, d3).status, "new");
      const bDay = theDay(half.summary, b, d3);
      assert.equal(bDay.status, "none");
      assert.equal(bDay.failedHours[0]?.code, "thanos_http");
      // Both clusters shared a batch; it failed, and each was collected on its own queries.
      const fallbacks = half.summary.batching?.fallbacks ?? [];
      assert.ok(fallbacks.length > 0, JSON.stringify(half.summary.batching));
      assert.deepEqual(fallbacks[0]!.clusters.toSorted(), [a, b].toSorted());
      w.thanos.failCluster = null;
      const caught = await collect(w, thanosState, ["--day", d3]);
      assert.equal(caught.code, 0, caught.stderr);
      assert.equal(theDay(caught.summary, a, d3).status, "complete");
      assert.equal(theDay(caught.summary, b, d3).status, "new");

      // --- SIGKILL in the middle of an upload: the next run delivers the same uuid ----------------
      const killState = `${w.work}/state-kill`;
      w.s3Proxy.mode = "blackhole";
      const victim = spawnCollect(w, killState, ["--day", d2], { clusters: [b] });
      const hung = w.s3Proxy.blackholed();
      // Meanwhile a second process on the same state and cluster must not run at the same time.
      await hung;
      const second = await collect(w, killState, ["--day", d2], { clusters: [b] });
      assert.equal(second.code, 1);
      const busy = second.summary.clusters[0]!;
      assert.equal(busy.error?.code, "cluster_busy", JSON.stringify(busy));
      assert.match(busy.error!.message, /is busy/);
      victim.kill("SIGKILL");
      await victim.status;
      await victim.stdout.cancel();
      await victim.stderr.cancel();
      w.s3Proxy.mode = "pass";
      const resumed = await collect(w, killState, ["--day", d2], { clusters: [b] });
      assert.equal(resumed.code, 0, resumed.stderr);
      const resumedDay = theDay(resumed.summary, b, d2);
      assert.equal(resumedDay.uuid, theDay(first.summary, b, d2).uuid, "the same uuid");

      // --- Kafka down: the payload is in S3 and the message in the outbox; the next run sends it ---
      const kafkaState = `${w.work}/state-kafka`;
      const port = w.kafka.port;
      await w.kafka.stop();
      const queued = await collect(w, kafkaState, ["--day", d3], { clusters: [b] });
      assert.equal(queued.code, 1, "an announcement waiting in the outbox is reported");
      const q = theDay(queued.summary, b, d3);
      assert.equal(q.status, "queued", JSON.stringify(q));
      assert.equal(q.queued, 1);
      const outboxFiles = [...Deno.readDirSync(`${kafkaState}/outbox`)].filter((e) =>
        e.isFile
      );
      assert.equal(outboxFiles.length, 1, "one message in the outbox");
      const s3 = new S3Client({
        endpoint: w.s3.endpoint,
        region: "us-east-1",
        forcePathStyle: true,
        credentials: { accessKeyId: w.s3.accessKeyId, secretAccessKey: w.s3.secretAccessKey },
      });
      const head = await s3.send(
        new HeadObjectCommand({ Bucket: w.s3.bucket, Key: `hub-a/${b}/${d3}/${q.uuid}.tar.gz` }),
      );
      s3.destroy();
      assert.ok((head.ContentLength ?? 0) > 0, "the payload is in S3");
      w.kafka = await startKafka({ port });
      const sent = await collect(w, kafkaState, ["--day", d3], { clusters: [b] });
      assert.equal(sent.code, 0, sent.stderr);
      assert.equal(sent.summary.outbox.sent, 1);
      assert.equal(theDay(sent.summary, b, d3).status, "complete");
      const afterRestart = await readAnnouncements(w.kafka.brokers, 1);
      assert.deepEqual(afterRestart.map((m) => m.value.request_id), [q.uuid]);
      assert.equal([...Deno.readDirSync(`${kafkaState}/outbox`)].filter((e) => e.isFile).length, 0);

      // --- Empty state, --max-backfill 3d: the last three days, oldest first ----------------------
      const backfillState = `${w.work}/state-backfill`;
      const before = (await readAnnouncements(w.kafka.brokers, 1)).length;
      const backfill = await collect(w, backfillState, ["--max-backfill", "3d"]);
      assert.equal(backfill.code, 0, backfill.stderr);
      const newest = newestReadyHour(new Date(), 600_000).getTime();
      const expectedDays = [2, 1, 0].map((n) => dayOf(newest - n * DAY_MS));
      const all = await readAnnouncements(w.kafka.brokers, before + 6);
      const shipped = all.slice(before);
      for (const id of w.ids) {
        const days = shipped.filter((m) => m.key === id).map((m) => whereOf(m.value.url).day);
        assert.deepEqual(days, expectedDays, `${id}: three days, in order`);
        const c = backfill.summary.clusters.find((c) => c.clusterId === id)!;
        assert.deepEqual(c.days.map((d) => d.day), expectedDays);
      }
      await assertOneUuidPerWindow(w, all);
    }),
});
