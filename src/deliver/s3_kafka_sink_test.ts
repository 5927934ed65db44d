import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DeleteObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { BridgeError } from "../model.ts";
import {
  consumeMessages,
  type KafkaServer,
  startKafka,
  topicMessageCount,
} from "../../tests/support/kafka.ts";
import { type SeaweedfsServer, startSeaweedfs } from "../../tests/support/seaweedfs.ts";
import { buildIdentity } from "./identity.ts";
import { objectKey, S3KafkaSink, type S3KafkaSinkOptions } from "./s3_kafka_sink.ts";
import type { SinkPayload } from "./sink.ts";

const TOPIC = "platform.upload.announce";
const CLUSTER = "1b2c3d4e-cluster-a";
const DAY = "2026-11-01";

async function sha256Hex(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A real tar.gz holding `manifest.json` and a CSV of `csvBytes` random hex characters. */
async function makeTarball(
  dir: string,
  name: string,
  uuid: string,
  csvBytes: number,
): Promise<string> {
  const src = await Deno.makeTempDir({ dir });
  await Deno.writeTextFile(
    join(src, "manifest.json"),
    JSON.stringify({ uuid, cluster_id: CLUSTER }),
  );
  const f = await Deno.open(join(src, "report.csv"), { write: true, create: true });
  const chunk = new Uint8Array(65536);
  for (let left = csvBytes; left > 0; left -= chunk.length) {
    crypto.getRandomValues(chunk);
    const hex = new TextEncoder().encode(
      Array.from(
        chunk.subarray(0, Math.min(chunk.length, left) / 2),
        (b) => b.toString(16).padStart(2, "0"),
      )
        .join(""),
    );
    await f.write(hex);
  }
  f.close();
  const path = join(dir, name);
  const out = await new Deno.Command("tar", {
    args: ["-czf", path, "-C", src, "manifest.json", "report.csv"],
  })
    .output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  await Deno.remove(src, { recursive: true });
  return path;
}

async function payload(dir: string, uuid: string, csvSizes: number[]): Promise<SinkPayload> {
  const parts = [];
  for (const [i, size] of csvSizes.entries()) {
    const fileName = csvSizes.length > 1 ? `${uuid}-${i}.tar.gz` : `${uuid}.tar.gz`;
    const path = await makeTarball(dir, `spool-${uuid}-${i}`, uuid, size);
    parts.push({
      path,
      fileName,
      bytes: (await Deno.stat(path)).size,
      sha256: await sha256Hex(path),
    });
  }
  return { clusterId: CLUSTER, orgId: "org-1234567", day: DAY, uuid, lastHour: 6, parts };
}

function options(
  s3: SeaweedfsServer,
  kafka: KafkaServer | string,
  outboxDir: string,
): S3KafkaSinkOptions {
  const port = new URL(s3.endpoint).port;
  return {
    s3: {
      endpoint: s3.endpoint,
      // koku's pods reach S3 under another name: the URL must be signed for it.
      publicEndpoint: `http://localhost:${port}`,
      region: s3.region,
      bucket: s3.bucket,
      prefix: "/cost-reports/",
      pathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      partSizeBytes: 5 * 1024 * 1024,
      maxAttempts: 2,
    },
    kafka: {
      brokers: [typeof kafka === "string" ? kafka : kafka.brokers],
      tls: false,
      ca: null,
      sasl: null,
      retries: 1,
      connectionTimeoutMs: 1_000,
    },
    identity: null,
    outboxDir,
    kafkaLog: () => {},
  };
}

function s3Client(s3: SeaweedfsServer): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

function noSecrets(text: string, s3: SeaweedfsServer): void {
  assert.ok(!text.includes(s3.secretAccessKey), "no S3 secret");
  assert.ok(!text.includes("X-Amz-Signature"), "no presigned signature");
}

Deno.test({
  name:
    "s3-kafka sink against real SeaweedFS and Kafka: upload, announce, verify, outbox, failures",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "s3-kafka-test-" });
    const outboxDir = join(dir, "outbox");
    let [kafka, s3] = await Promise.all([startKafka(), startSeaweedfs({ bucket: "koku" })]);
    const admin = s3Client(s3);
    const sink = new S3KafkaSink(options(s3, kafka, outboxDir));
    try {
      const first = await payload(dir, "0f3c1a52-7d4e-4b8a-9c21-5e6f7a8b9c0d", [
        40_000,
        12 * 1024 * 1024,
      ]);
      let firstRecord: Awaited<ReturnType<typeof sink.deliver>>["record"];

      await t.step(
        "deliver: both parts uploaded (one multipart), then announced as koku expects",
        async () => {
          assert.ok(
            first.parts[1]!.bytes > 5 * 1024 * 1024,
            "second part needs a multipart upload",
          );
          const { record, queued } = await sink.deliver(first);
          firstRecord = record;
          assert.equal(queued, 0);
          assert.deepEqual(
            record.parts.map((p) => p.ref),
            first.parts.map((p) => ({
              sink: "s3-kafka",
              location: `s3://koku/cost-reports/${CLUSTER}/${DAY}/${p.fileName}`,
            })),
          );
          for (const part of first.parts) {
            const head = await admin.send(
              new HeadObjectCommand({
                Bucket: "koku",
                Key: objectKey("cost-reports", CLUSTER, DAY, part.fileName),
              }),
            );
            assert.equal(head.ContentLength, part.bytes);
            assert.equal(head.Metadata?.sha256, part.sha256);
          }
          const messages = await consumeMessages(kafka.brokers, TOPIC, 2);
          assert.equal(await topicMessageCount(kafka.brokers, TOPIC), 2, "one message per part");
          for (const [i, m] of messages.entries()) {
            assert.deepEqual(m.headers, { service: "hccm" });
            assert.equal(m.key, CLUSTER);
            const value = JSON.parse(m.value);
            assert.deepEqual(Object.keys(value).sort(), [
              "b64_identity",
              "org_id",
              "request_id",
              "timestamp",
              "url",
            ]);
            assert.equal(value.request_id, first.uuid);
            assert.equal(value.org_id, "org-1234567");
            assert.deepEqual(
              JSON.parse(atob(value.b64_identity)),
              buildIdentity(CLUSTER, "org-1234567"),
            );
            assert.ok(Math.abs(Date.parse(value.timestamp) - Date.now()) < 120_000);
            const url = new URL(value.url);
            assert.equal(
              url.host,
              `localhost:${new URL(s3.endpoint).port}`,
              "signed for the public endpoint",
            );
            assert.equal(
              url.pathname,
              `/koku/cost-reports/${CLUSTER}/${DAY}/${first.parts[i]!.fileName}`,
            );
            assert.equal(url.searchParams.get("X-Amz-Expires"), "86400");
            const got = await fetch(url);
            assert.equal(got.status, 200);
            assert.deepEqual(
              new Uint8Array(await got.arrayBuffer()),
              await Deno.readFile(first.parts[i]!.path),
            );
            // Signatures are checked: a tampered URL is refused.
            const sig = url.searchParams.get("X-Amz-Signature")!;
            const tampered = new URL(url);
            tampered.searchParams.set(
              "X-Amz-Signature",
              (sig[0] === "a" ? "b" : "a") + sig.slice(1),
            );
            const refused = await fetch(tampered);
            await refused.body?.cancel();
            assert.equal(refused.status, 403);
            const otherKey = new URL(url);
            otherKey.pathname = otherKey.pathname.replace(".tar.gz", ".tar");
            const refused2 = await fetch(otherKey);
            await refused2.body?.cancel();
            assert.equal(refused2.status, 403);
          }
        },
      );

      await t.step(
        "has: true while every object is there; false for a wrong size or a deleted object",
        async () => {
          assert.equal(await sink.has(firstRecord), true);
          const wrongSize = {
            ...firstRecord,
            parts: firstRecord.parts.map((p, i) => (i === 0 ? { ...p, bytes: p.bytes + 1 } : p)),
          };
          assert.equal(await sink.has(wrongSize), false);
          const wrongSha = {
            ...firstRecord,
            parts: firstRecord.parts.map((
              p,
              i,
            ) => (i === 1 ? { ...p, sha256: "0".repeat(64) } : p)),
          };
          assert.equal(await sink.has(wrongSha), false);
          assert.equal(await sink.has({ ...firstRecord, sink: "dir" }), false);
          await admin.send(
            new DeleteObjectCommand({
              Bucket: "koku",
              Key: objectKey("cost-reports", CLUSTER, DAY, first.parts[0]!.fileName),
            }),
          );
          assert.equal(await sink.has(firstRecord), false);
        },
      );

      await t.step(
        "cancelled mid multipart upload: cancelled, no multipart upload or object left",
        async () => {
          const big = await payload(dir, "2a2a2a2a-1111-4222-8333-444455556666", [
            40 * 1024 * 1024,
          ]);
          const key = objectKey("cost-reports", CLUSTER, DAY, big.parts[0]!.fileName);
          const ac = new AbortController();
          const delivery = sink.deliver(big, ac.signal);
          delivery.catch(() => {});
          // Abort once S3 holds an unfinished multipart upload of the object.
          let seen = false;
          for (let i = 0; i < 500 && !seen; i++) {
            const list = await admin.send(
              new ListMultipartUploadsCommand({ Bucket: "koku", Prefix: key }),
            );
            seen = (list.Uploads ?? []).some((u) => u.Key === key);
            if (!seen) await new Promise((r) => setTimeout(r, 10));
          }
          assert.ok(seen, "the multipart upload was seen in progress");
          ac.abort();
          await assert.rejects(delivery, (e: unknown) => {
            assert.ok(e instanceof BridgeError);
            assert.equal(e.code, "cancelled");
            return true;
          });
          // Checked at once: when deliver has thrown, no multipart upload is left.
          const list = await admin.send(
            new ListMultipartUploadsCommand({ Bucket: "koku", Prefix: key }),
          );
          const uploads = (list.Uploads ?? []).length;
          await new Promise((r) => setTimeout(r, 500)); // in-flight parts cannot complete it later
          assert.equal(uploads, 0, "no multipart upload left");
          await assert.rejects(
            admin.send(new HeadObjectCommand({ Bucket: "koku", Key: key })),
            /NotFound/,
          );
          assert.equal(await topicMessageCount(kafka.brokers, TOPIC), 2, "nothing announced");
        },
      );

      const second = await payload(dir, "5b5b5b5b-1111-4222-8333-444455556666", [1000, 2000]);
      await t.step(
        "Kafka down: deliver still succeeds, the announcements wait in the outbox",
        async () => {
          await kafka.stop();
          const started = Date.now();
          const { record, queued } = await sink.deliver(second);
          assert.ok(Date.now() - started < 20_000, "a dead broker fails fast");
          assert.equal(queued, 2);
          assert.equal(record.parts.length, 2);
          assert.equal(await sink.has(record), true, "the objects are in S3");
          const names = await sink.outbox.names();
          assert.equal(names.length, 2);
          for (const [i, name] of names.entries()) {
            const m = await sink.outbox.read(name);
            assert.equal(m.topic, TOPIC);
            assert.deepEqual(m.s3, {
              bucket: "koku",
              key: objectKey("cost-reports", CLUSTER, DAY, second.parts[i]!.fileName),
            });
            assert.equal(m.value.request_id, second.uuid);
          }
          const failed = await sink.flush();
          assert.equal(failed.sent, 0);
          assert.equal(failed.pending, 2);
          assert.equal(failed.error?.code, "sink_kafka");
          assert.match(failed.error!.message, new RegExp(kafka.brokers.replaceAll(".", "\\.")));
          noSecrets(failed.error!.message, s3);
        },
      );

      await t.step(
        "Kafka back on the same port: flush sends the outbox in order and empties it",
        async () => {
          kafka = await startKafka({ port: kafka.port });
          // The first message's URL has expired meanwhile: flush must presign it again.
          const [oldest] = await sink.outbox.names();
          const stale = await sink.outbox.read(oldest!);
          await Deno.writeTextFile(
            join(outboxDir, oldest!),
            JSON.stringify({
              ...stale,
              value: { ...stale.value, url: "http://expired.invalid/x" },
              urlExpiresAt: new Date(Date.now() - 60_000).toISOString(),
            }),
          );
          const result = await sink.flush();
          assert.deepEqual(result, { sent: 2, pending: 0, error: null });
          assert.deepEqual(await sink.outbox.names(), []);
          const messages = await consumeMessages(kafka.brokers, TOPIC, 2);
          assert.deepEqual(
            messages.map((m) => new URL(JSON.parse(m.value).url).pathname.split("/").at(-1)),
            second.parts.map((p) => p.fileName),
          );
          for (const [i, m] of messages.entries()) {
            assert.deepEqual(m.headers, { service: "hccm" });
            const got = await fetch(JSON.parse(m.value).url);
            assert.deepEqual(
              new Uint8Array(await got.arrayBuffer()),
              await Deno.readFile(second.parts[i]!.path),
            );
          }
        },
      );

      await t.step(
        "no credentials given: the AWS SDK's default chain (environment) is used",
        async () => {
          const saved = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"].map((k) =>
            [k, Deno.env.get(k)] as const
          );
          Deno.env.set("AWS_ACCESS_KEY_ID", s3.accessKeyId);
          Deno.env.set("AWS_SECRET_ACCESS_KEY", s3.secretAccessKey);
          const base = options(s3, kafka, join(dir, "outbox-env"));
          const { credentials: _, ...s3NoCredentials } = base.s3;
          const envSink = new S3KafkaSink({ ...base, s3: s3NoCredentials });
          try {
            const p = await payload(dir, "6d6d6d6d-1111-4222-8333-444455556666", [500]);
            const { record, queued } = await envSink.deliver(p);
            assert.equal(queued, 0);
            assert.equal(await envSink.has(record), true);
            Deno.env.set("AWS_SECRET_ACCESS_KEY", "wrong");
            const other = new S3KafkaSink({ ...base, s3: s3NoCredentials });
            try {
              await assert.rejects(other.has(record), (e: unknown) => {
                assert.ok(e instanceof BridgeError && e.code === "sink_s3");
                assert.ok(!e.message.includes("wrong") && !e.message.includes(s3.secretAccessKey));
                return true;
              });
            } finally {
              await other.close();
            }
          } finally {
            await envSink.close();
            for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
          }
        },
      );

      await t.step("S3 down: deliver throws sink_s3, nothing is announced or queued", async () => {
        const third = await payload(dir, "7c7c7c7c-1111-4222-8333-444455556666", [1000]);
        const before = await topicMessageCount(kafka.brokers, TOPIC);
        await s3.stop();
        await assert.rejects(sink.deliver(third), (e: unknown) => {
          assert.ok(e instanceof BridgeError);
          assert.equal(e.code, "sink_s3");
          assert.match(
            e.message,
            new RegExp(`s3://koku/cost-reports/${CLUSTER}/${DAY}/${third.uuid}\\.tar\\.gz`),
          );
          assert.match(e.message, new RegExp(s3.endpoint.replaceAll(".", "\\.")));
          noSecrets(e.message, s3);
          return true;
        });
        assert.equal(await topicMessageCount(kafka.brokers, TOPIC), before);
        assert.deepEqual(await sink.outbox.names(), []);
      });
    } finally {
      await sink.close();
      admin.destroy();
      await kafka.stop();
      await s3.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("S3KafkaSink: options and payloads are checked before any network use", async () => {
  const base: S3KafkaSinkOptions = {
    s3: {
      endpoint: "http://127.0.0.1:1",
      publicEndpoint: null,
      region: "us-east-1",
      bucket: "b",
      prefix: "",
      pathStyle: true,
      credentials: { accessKeyId: "a", secretAccessKey: "s" },
    },
    kafka: { brokers: ["127.0.0.1:1"], tls: false, ca: null, sasl: null },
    identity: null,
    outboxDir: "/nonexistent",
  };
  const bad = (patch: Partial<S3KafkaSinkOptions>) => () => new S3KafkaSink({ ...base, ...patch });
  assert.throws(bad({ s3: { ...base.s3, bucket: "" } }), BridgeError);
  assert.throws(bad({ s3: { ...base.s3, endpoint: "127.0.0.1:9000" } }), BridgeError);
  assert.throws(bad({ presignExpirySeconds: 604_801 }), BridgeError);
  assert.throws(bad({ s3: { ...base.s3, partSizeBytes: 1024 } }), BridgeError);
  assert.throws(bad({ identity: "not json" }), BridgeError);
  const sink = new S3KafkaSink(base);
  try {
    assert.equal(sink.kind, "s3-kafka");
    const p: SinkPayload = {
      clusterId: "c",
      orgId: "",
      day: DAY,
      uuid: "u",
      lastHour: 0,
      parts: [{ path: "/nonexistent", fileName: "u.tar.gz", bytes: 1, sha256: "0" }],
    };
    await assert.rejects(sink.deliver(p), (e: unknown) => {
      assert.ok(e instanceof BridgeError);
      assert.equal(e.code, "config");
      assert.match(e.message, /org id/);
      return true;
    });
    await assert.rejects(sink.deliver({ ...p, orgId: "o", parts: [] }), /no parts/);
    await assert.rejects(
      sink.deliver({ ...p, orgId: "o", parts: [{ ...p.parts[0]!, fileName: "../x.tar.gz" }] }),
      /invalid tarball name/,
    );
    await assert.rejects(sink.deliver({ ...p, orgId: "o", day: "2026-13-01" }), /invalid day/);
    assert.equal(
      await sink.has({
        sink: "s3-kafka",
        clusterId: "c",
        day: DAY,
        uuid: "u",
        lastHour: 0,
        parts: [],
        deliveredAt: "",
      }),
      false,
    );
  } finally {
    await sink.close();
  }
});
