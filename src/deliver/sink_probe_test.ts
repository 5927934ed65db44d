import assert from "node:assert/strict";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { Kafka, logLevel } from "kafkajs";
import { BridgeError } from "../model.ts";
import type { DoctorCheck } from "../service/doctor_check.ts";
import { consumeMessages, freePort, startKafka } from "../../tests/support/kafka.ts";
import { type SeaweedfsServer, startSeaweedfs } from "../../tests/support/seaweedfs.ts";
import {
  DOCTOR_OBJECT_FOLDER,
  DOCTOR_SERVICE_HEADER,
  type KafkaProbeOptions,
  probeIngress,
  probeKafka,
  probeS3,
  type S3ProbeOptions,
} from "./sink_probe.ts";

const ANNOUNCE = "platform.upload.announce";

function statuses(checks: readonly DoctorCheck[]): Record<string, string> {
  return Object.fromEntries(checks.map((c) => [c.id, c.status]));
}

function byId(checks: readonly DoctorCheck[], id: string): DoctorCheck {
  const found = checks.find((c) => c.id === id);
  assert.ok(found, `no check ${id} in ${JSON.stringify(checks)}`);
  return found;
}

function assertNoSecret(checks: readonly DoctorCheck[], ...secrets: string[]): void {
  const text = JSON.stringify(checks);
  for (const s of secrets) assert.ok(!text.includes(s), `a secret leaked: ${text}`);
  assert.ok(!text.includes("X-Amz-Signature"), `a presigned query leaked: ${text}`);
  assert.ok(!text.includes("X-Amz-Credential"), `a presigned query leaked: ${text}`);
}

function s3Options(s3: SeaweedfsServer, extra: Partial<S3ProbeOptions> = {}): S3ProbeOptions {
  return {
    endpoint: s3.endpoint,
    publicEndpoint: null,
    region: s3.region,
    bucket: s3.bucket,
    prefix: "/cost-reports/",
    pathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    stepTimeoutMs: 5_000,
    ...extra,
  };
}

/** Keys left under the doctor's folder. */
async function leftovers(s3: SeaweedfsServer): Promise<string[]> {
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  try {
    const list = await client.send(
      new ListObjectsV2Command({
        Bucket: s3.bucket,
        Prefix: `cost-reports/${DOCTOR_OBJECT_FOLDER}/`,
      }),
    );
    return (list.Contents ?? []).map((o) => o.Key ?? "");
  } finally {
    client.destroy();
  }
}

async function topics(brokers: string): Promise<string[]> {
  const admin = new Kafka({
    brokers: [brokers],
    clientId: "test-admin",
    logLevel: logLevel.NOTHING,
  })
    .admin();
  await admin.connect();
  try {
    return await admin.listTopics();
  } finally {
    await admin.disconnect();
  }
}

async function createTopics(brokers: string, names: string[]): Promise<void> {
  const admin = new Kafka({
    brokers: [brokers],
    clientId: "test-admin",
    logLevel: logLevel.NOTHING,
  })
    .admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: names.map((topic) => ({ topic, numPartitions: 2, replicationFactor: 1 })),
    });
  } finally {
    await admin.disconnect();
  }
}

Deno.test({
  name: "sink probes against real SeaweedFS (SigV4) and real Kafka (KRaft)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const [s3, kafka] = await Promise.all([startSeaweedfs(), startKafka({ security: true })]);
    try {
      // ----- S3 -----
      await t.step("s3: write, read, presign, delete all ✓; nothing left behind", async () => {
        const checks = await probeS3(s3Options(s3));
        assert.deepEqual(checks.map((c) => c.id), [
          "s3.write",
          "s3.read",
          "s3.presign",
          "s3.delete",
        ]);
        assert.deepEqual(statuses(checks), {
          "s3.write": "ok",
          "s3.read": "ok",
          "s3.presign": "ok",
          "s3.delete": "ok",
        }, JSON.stringify(checks));
        assert.match(
          byId(checks, "s3.write").detail,
          new RegExp(`s3://koku/cost-reports/\\${DOCTOR_OBJECT_FOLDER}/[0-9a-f-]{36}`),
        );
        assertNoSecret(checks, s3.secretAccessKey, s3.accessKeyId);
        assert.deepEqual(await leftovers(s3), []);
      });

      await t.step("s3: a reachable public endpoint signs and serves the URL", async () => {
        const publicEndpoint = `http://localhost:${s3.port}`;
        const checks = await probeS3(s3Options(s3, { publicEndpoint, presignExpirySeconds: 600 }));
        const presign = byId(checks, "s3.presign");
        assert.equal(presign.status, "ok", presign.detail);
        assert.match(presign.detail, /--s3-public-endpoint http:\/\/localhost:\d+/);
        assert.match(presign.detail, /valid 600 s/);
      });

      await t.step("s3: an unreachable public endpoint is skip, said clearly", async () => {
        const publicEndpoint = `http://127.0.0.1:${freePort()}`;
        const checks = await probeS3(s3Options(s3, { publicEndpoint }));
        assert.equal(byId(checks, "s3.write").status, "ok");
        const presign = byId(checks, "s3.presign");
        assert.equal(presign.status, "skip", presign.detail);
        assert.match(presign.detail, /cannot be fetched from here/);
        assert.match(presign.detail, /koku's pods may still reach/);
        assert.match(presign.detail, /refused/i, "says why");
        assert.equal(byId(checks, "s3.delete").status, "ok");
        assertNoSecret(checks, s3.secretAccessKey, s3.accessKeyId);
        assert.deepEqual(await leftovers(s3), []);
      });

      await t.step(
        "s3: a wrong secret fails the write and names AWS_SECRET_ACCESS_KEY",
        async () => {
          const wrong = `${s3.secretAccessKey.slice(0, -4)}beef`;
          const checks = await probeS3(s3Options(s3, {
            credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: wrong },
          }));
          assert.deepEqual(statuses(checks), {
            "s3.write": "fail",
            "s3.read": "skip",
            "s3.presign": "skip",
            "s3.delete": "skip",
          });
          const write = byId(checks, "s3.write");
          assert.match(write.detail, /SignatureDoesNotMatch/);
          assert.match(write.detail, /check AWS_SECRET_ACCESS_KEY/);
          assertNoSecret(checks, wrong, s3.secretAccessKey, s3.accessKeyId);
        },
      );

      await t.step("s3: an unknown access key names AWS_ACCESS_KEY_ID", async () => {
        const checks = await probeS3(s3Options(s3, {
          credentials: { accessKeyId: "AKNOBODY1234", secretAccessKey: s3.secretAccessKey },
        }));
        const write = byId(checks, "s3.write");
        assert.equal(write.status, "fail");
        assert.match(write.detail, /AWS_ACCESS_KEY_ID/);
        assertNoSecret(checks, s3.secretAccessKey, "AKNOBODY1234");
      });

      await t.step("s3: a missing bucket fails, names the bucket, is not created", async () => {
        // SeaweedFS would create it on PutObject (admin identity): doctor asks first.
        const checks = await probeS3(s3Options(s3, { bucket: "no-such-bucket-here" }));
        const write = byId(checks, "s3.write");
        assert.equal(write.status, "fail");
        assert.match(write.detail, /bucket "no-such-bucket-here" does not exist/);
        assert.match(write.detail, /--s3-bucket/);
        const again = await probeS3(s3Options(s3, { bucket: "no-such-bucket-here" }));
        assert.equal(byId(again, "s3.write").status, "fail", "still missing");
      });

      await t.step("s3: an endpoint that is down fails fast with 'cannot reach'", async () => {
        const started = Date.now();
        const checks = await probeS3(
          s3Options(s3, { endpoint: `http://127.0.0.1:${freePort()}` }),
        );
        assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
        const write = byId(checks, "s3.write");
        assert.equal(write.status, "fail");
        assert.match(write.detail, /cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
      });

      await t.step("s3: bad settings fail without a request", async () => {
        const checks = await probeS3(s3Options(s3, { endpoint: "ftp://x" }));
        assert.equal(byId(checks, "s3.write").status, "fail");
        assert.match(byId(checks, "s3.write").detail, /--s3-endpoint must be an http\(s\) URL/);
        const expiry = await probeS3(s3Options(s3, { presignExpirySeconds: 700_000 }));
        assert.equal(byId(expiry, "s3.presign").status, "fail");
        assert.equal(byId(expiry, "s3.delete").status, "ok");
      });

      await t.step("s3: cancelling throws cancelled and still deletes the object", async () => {
        await assertCancelledAfter(1, (signal) => probeS3(s3Options(s3), signal));
        await assert.rejects(
          probeS3(s3Options(s3), AbortSignal.abort()),
          (e: unknown) => e instanceof BridgeError && e.code === "cancelled",
        );
        assert.deepEqual(await leftovers(s3), []);
      });

      // ----- Kafka -----
      const kafkaBase: KafkaProbeOptions = {
        brokers: [kafka.brokers],
        tls: false,
        ca: null,
        sasl: null,
        topic: ANNOUNCE,
        stepTimeoutMs: 5_000,
      };
      await createTopics(kafka.brokers, [ANNOUNCE, "doctor.test"]);

      await t.step("kafka: brokers and topic ✓, produce skipped with a hint", async () => {
        const checks = await probeKafka(kafkaBase);
        assert.deepEqual(statuses(checks), {
          "kafka.brokers": "ok",
          "kafka.topic": "ok",
          "kafka.produce": "skip",
        }, JSON.stringify(checks));
        assert.match(byId(checks, "kafka.brokers").detail, /^1 broker answers via/);
        assert.match(byId(checks, "kafka.topic").detail, /exists with 2 partitions/);
        assert.match(byId(checks, "kafka.produce").detail, /--produce-test TOPIC/);
      });

      await t.step("kafka: a missing topic fails, and the probe does not create it", async () => {
        const checks = await probeKafka({ ...kafkaBase, topic: "not.there" });
        const topic = byId(checks, "kafka.topic");
        assert.equal(topic.status, "fail");
        assert.match(topic.detail, /topic not\.there does not exist/);
        assert.match(topic.detail, /koku consumes it/);
        assert.match(topic.detail, /auto\.create\.topics\.enable/);
        assert.ok(!(await topics(kafka.brokers)).includes("not.there"));
      });

      await t.step("kafka: --produce-test sends one message with the doctor header", async () => {
        const checks = await probeKafka(kafkaBase, { produceTestTopic: "doctor.test" });
        const produce = byId(checks, "kafka.produce");
        assert.equal(produce.status, "ok", produce.detail);
        assert.match(produce.detail, /produced to doctor\.test \(partition \d, offset 0\)/);
        const [message] = await consumeMessages(kafka.brokers, "doctor.test", 1, 15_000);
        assert.deepEqual(message!.headers, { service: DOCTOR_SERVICE_HEADER });
        assert.notEqual(message!.headers.service, "hccm");
        const value = JSON.parse(message!.value);
        assert.equal(value.test, true);
        assert.equal(value.source, "thanos-bridge doctor");
        assert.equal(await topicCount(kafka.brokers, ANNOUNCE), 0, "nothing on the announce topic");
      });

      await t.step("kafka: producing to a missing topic fails and creates nothing", async () => {
        const checks = await probeKafka(kafkaBase, { produceTestTopic: "doctor.missing" });
        const produce = byId(checks, "kafka.produce");
        assert.equal(produce.status, "fail");
        assert.match(produce.detail, /doctor\.missing does not exist/);
        assert.ok(!(await topics(kafka.brokers)).includes("doctor.missing"));
        const bad = await probeKafka(kafkaBase, { produceTestTopic: "bad topic!" });
        assert.equal(byId(bad, "kafka.produce").status, "fail");
      });

      await t.step(
        "kafka: SASL ✓ with the password, a wrong one fails without showing it",
        async () => {
          const sasl = kafka.sasl!;
          const good = await probeKafka({
            ...kafkaBase,
            brokers: [sasl.brokers],
            sasl: { mechanism: "scram-sha-512", username: sasl.username, password: sasl.password },
          });
          assert.equal(byId(good, "kafka.brokers").status, "ok", JSON.stringify(good));
          const wrong = "wrong-password-123";
          const bad = await probeKafka({
            ...kafkaBase,
            brokers: [sasl.brokers],
            sasl: { mechanism: "plain", username: sasl.username, password: wrong },
          });
          assert.equal(byId(bad, "kafka.brokers").status, "fail");
          assert.match(byId(bad, "kafka.brokers").detail, /refused the SASL login/);
          assert.equal(byId(bad, "kafka.topic").status, "skip");
          assertNoSecret(bad, wrong, sasl.password);
        },
      );

      await t.step("kafka: TLS with the CA ✓", async () => {
        const tls = kafka.tls!;
        const checks = await probeKafka({
          ...kafkaBase,
          brokers: [tls.brokers],
          tls: true,
          ca: tls.ca,
        });
        assert.equal(byId(checks, "kafka.brokers").status, "ok", JSON.stringify(checks));
        assert.equal(byId(checks, "kafka.topic").status, "ok");
      });

      await t.step("kafka: a broker that is down fails within a few seconds", async () => {
        const started = Date.now();
        const checks = await probeKafka(
          { ...kafkaBase, brokers: [`127.0.0.1:${freePort()}`] },
          { produceTestTopic: "doctor.test" },
        );
        const took = Date.now() - started;
        assert.ok(took < 5_000, `took ${took} ms`);
        assert.deepEqual(statuses(checks), {
          "kafka.brokers": "fail",
          "kafka.topic": "skip",
          "kafka.produce": "skip",
        });
        assert.match(byId(checks, "kafka.brokers").detail, /cannot reach 127\.0\.0\.1:\d+/);
      });

      await t.step("kafka: cancelling throws cancelled", async () => {
        await assert.rejects(
          probeKafka(kafkaBase, {}, AbortSignal.abort()),
          (e: unknown) => e instanceof BridgeError && e.code === "cancelled",
        );
        // In flight: a broker address that accepts connections and never answers, so the probe
        // cannot finish before the abort (the real broker sometimes answered within 5 ms).
        const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const held: Deno.Conn[] = [];
        const accepting = (async () => {
          for await (const conn of silent) held.push(conn);
        })().catch(() => {});
        try {
          await assertCancelledAfter(50, (signal) =>
            probeKafka(
              // The disconnect after the abort waits up to one step timeout.
              { ...kafkaBase, brokers: [`127.0.0.1:${silent.addr.port}`], stepTimeoutMs: 1_000 },
              {},
              signal,
            ));
        } finally {
          silent.close();
          for (const conn of held) conn.close();
          await accepting;
        }
      });
    } finally {
      await Promise.all([s3.stop(), kafka.stop()]);
    }
  },
});

async function topicCount(brokers: string, topic: string): Promise<number> {
  const admin = new Kafka({
    brokers: [brokers],
    clientId: "test-admin",
    logLevel: logLevel.NOTHING,
  })
    .admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}

// ----- Ingress, against a fake -----

interface FakeIngress {
  readonly url: string;
  readonly seen: { method: string; path: string; authorization: string | null }[];
  close(): Promise<void>;
}

const TOKEN = "good-token-0123456789";

function startFakeIngress(): FakeIngress {
  const seen: FakeIngress["seen"] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const url = new URL(req.url);
      const authorization = req.headers.get("authorization");
      seen.push({ method: req.method, path: url.pathname, authorization });
      if (url.pathname.startsWith("/slow/")) {
        await new Promise((r) => setTimeout(r, 1_500));
        return new Response("late", { status: 405 });
      }
      if (url.pathname.startsWith("/broken/")) return new Response("oops", { status: 503 });
      if (url.pathname.startsWith("/moved/")) {
        return new Response(null, {
          status: 301,
          headers: { location: "https://ingress.example/api/ingress/v1/upload?x=1" },
        });
      }
      if (authorization !== `Bearer ${TOKEN}`) {
        // Echoes what it got, as some gateways do: the probe must redact it.
        return new Response(`bad credentials: ${authorization}`, { status: 401 });
      }
      if (
        url.pathname === "/api/ingress/v1/upload" || url.pathname === "/pre/api/ingress/v1/upload"
      ) {
        return req.method === "POST"
          ? new Response('{"request_id":"x"}', { status: 202 })
          : new Response("Method Not Allowed", { status: 405 });
      }
      return new Response("404 page not found", { status: 404 });
    },
  );
  const port = server.addr.port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () => server.shutdown(),
  };
}

Deno.test("probeIngress: what a GET of the upload URL proves, against a fake ingress", async (t) => {
  const fake = startFakeIngress();
  try {
    await t.step("405 to a GET with the right token ✓; nothing is uploaded", async () => {
      const [reach] = await probeIngress({ url: `${fake.url}/`, auth: { bearer: TOKEN } });
      assert.equal(reach!.id, "ingress.reach");
      assert.equal(reach!.status, "ok", reach!.detail);
      assert.match(reach!.detail, /answers 405 Method Not Allowed to a GET/);
      assert.deepEqual(fake.seen.at(-1), {
        method: "GET",
        path: "/api/ingress/v1/upload",
        authorization: `Bearer ${TOKEN}`,
      });
      assert.ok(fake.seen.every((s) => s.method === "GET"));
      const [prefixed] = await probeIngress({ url: `${fake.url}/pre`, auth: { bearer: TOKEN } });
      assert.equal(prefixed!.status, "ok", prefixed!.detail);
    });

    await t.step("401 → token refused, the token is not shown", async () => {
      const wrong = "wrong-token-9876543210";
      const checks = await probeIngress({ url: fake.url, auth: { bearer: wrong } });
      assert.equal(checks[0]!.status, "fail");
      assert.match(checks[0]!.detail, /token refused .*\(401 Unauthorized\).*--ingress-token-file/);
      assertNoSecret(checks, wrong);
      const basic = await probeIngress({ url: fake.url, auth: { basic: "user:s3cret-pass" } });
      assert.equal(basic[0]!.status, "fail");
      assert.match(basic[0]!.detail, /basic-auth user and password/);
      assertNoSecret(basic, "s3cret-pass");
      const none = await probeIngress({ url: fake.url, auth: null });
      assert.equal(none[0]!.status, "fail");
      assert.match(none[0]!.detail, /wants credentials .*configure --ingress-token-file/);
    });

    await t.step("404 → the URL has a wrong path (e.g. the upload path twice)", async () => {
      const [reach] = await probeIngress({
        url: `${fake.url}/api/ingress/v1/upload`,
        auth: { bearer: TOKEN },
      });
      assert.equal(reach!.status, "fail");
      assert.match(reach!.detail, /without \/api\/ingress\/v1\/upload/);
    });

    await t.step("redirects, 5xx, timeouts, refused connections and bad URLs fail", async () => {
      const [moved] = await probeIngress({ url: `${fake.url}/moved`, auth: { bearer: TOKEN } });
      assert.equal(moved!.status, "fail");
      assert.match(moved!.detail, /redirects \(301.*\) to https:\/\/ingress\.example\/api/);
      assert.ok(!moved!.detail.includes("x=1"));
      const [broken] = await probeIngress({ url: `${fake.url}/broken`, auth: { bearer: TOKEN } });
      assert.equal(broken!.status, "fail");
      assert.match(broken!.detail, /answers 503/);
      const started = Date.now();
      const [slow] = await probeIngress({
        url: `${fake.url}/slow`,
        auth: { bearer: TOKEN },
        stepTimeoutMs: 300,
      });
      assert.ok(Date.now() - started < 1_200, "the step timeout holds");
      assert.equal(slow!.status, "fail");
      assert.match(slow!.detail, /no answer .* within 300 ms/);
      const [down] = await probeIngress({
        url: `http://127.0.0.1:${freePort()}`,
        auth: { bearer: TOKEN },
      });
      assert.equal(down!.status, "fail");
      assert.match(down!.detail, /cannot reach .*ECONNREFUSED/);
      const [bad] = await probeIngress({ url: "not a url", auth: null });
      assert.equal(bad!.status, "fail");
      const [creds] = await probeIngress({ url: "https://u:p@x.example", auth: null });
      assert.equal(creds!.status, "fail");
      const [blank] = await probeIngress({ url: fake.url, auth: { bearer: "  " } });
      assert.equal(blank!.status, "fail");
      assert.match(blank!.detail, /token is empty/);
    });

    await t.step("cancelling throws cancelled", async () => {
      await assert.rejects(
        probeIngress({ url: fake.url, auth: null }, AbortSignal.abort()),
        (e: unknown) => e instanceof BridgeError && e.code === "cancelled",
      );
      await assertCancelledAfter(
        50,
        (signal) => probeIngress({ url: `${fake.url}/slow`, auth: { bearer: TOKEN } }, signal),
      );
    });
  } finally {
    // Let the slow handlers finish before shutting down.
    await new Promise((r) => setTimeout(r, 1_600));
    await fake.close();
  }
});

/** Starts `probe`, aborts it after `ms` (while it is in flight), and expects a `cancelled` error. */
async function assertCancelledAfter(
  ms: number,
  probe: (signal: AbortSignal) => Promise<unknown>,
): Promise<void> {
  const controller = new AbortController();
  const running = probe(controller.signal);
  setTimeout(() => controller.abort(), ms);
  await assert.rejects(running, (e: unknown) => e instanceof BridgeError && e.code === "cancelled");
}
