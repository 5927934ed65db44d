import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { startKafka } from "./kafka.ts";

async function portOpen(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** `kill -0`: whether a process with this PID exists (Deno guards /proc behind --allow-all). */
async function pidAlive(pid: number): Promise<boolean> {
  const out = await new Deno.Command("kill", { args: ["-0", String(pid)], stderr: "null" })
    .output();
  return out.success;
}

Deno.test({
  name: "startKafka: a real broker serves produce and metadata; stop() leaves nothing behind",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const kafka = await startKafka();
    const client = new Kafka({ brokers: [kafka.brokers], logLevel: logLevel.NOTHING });
    const admin = client.admin();
    try {
      assert.match(kafka.brokers, /^127\.0\.0\.1:\d+$/);
      assert.ok(await portOpen(kafka.port));
      assert.ok(await pidAlive(kafka.pid));
      await admin.connect();
      const cluster = await admin.describeCluster();
      assert.equal(cluster.brokers.length, 1);
      assert.equal(cluster.brokers[0]!.port, kafka.port);
      const producer = client.producer({ allowAutoTopicCreation: true });
      await producer.connect();
      const [ack] = await producer.send({
        topic: "harness-check",
        acks: -1,
        messages: [{ value: "x" }],
      });
      await producer.disconnect();
      assert.equal(ack!.errorCode, 0);
      assert.ok((await admin.listTopics()).includes("harness-check"), "topics are auto-created");
    } finally {
      await admin.disconnect();
      await kafka.stop();
    }
    assert.equal(await portOpen(kafka.port), false, "port closed");
    assert.equal(await pidAlive(kafka.pid), false, "JVM gone");
    await assert.rejects(Deno.stat(kafka.dir), Deno.errors.NotFound);
    await kafka.stop(); // twice is fine
  },
});

Deno.test({
  name: "startKafka: a new broker can take over the port of a stopped one",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const first = await startKafka();
    await first.stop();
    const second = await startKafka({ port: first.port });
    try {
      assert.equal(second.brokers, first.brokers);
      assert.notEqual(second.dir, first.dir);
      assert.ok(await portOpen(second.port));
    } finally {
      await second.stop();
    }
  },
});
