import assert from "node:assert/strict";
import { logLevel } from "kafkajs";
import { BridgeError } from "../model.ts";
import { consumeMessages, freePort, startKafka } from "../../tests/support/kafka.ts";
import { formatKafkaLogEntry, KafkaAnnouncer, type KafkaSettings } from "./kafka_announcer.ts";

function settings(brokers: string, extra: Partial<KafkaSettings> = {}): KafkaSettings {
  return {
    brokers: [brokers],
    topic: "platform.upload.announce",
    tls: false,
    ca: null,
    sasl: null,
    clientId: "thanos-bridge-test",
    ...extra,
  };
}

Deno.test({
  name:
    "KafkaAnnouncer: a real broker acknowledges; key, headers and value arrive as sent, in order",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const kafka = await startKafka();
    const announcer = new KafkaAnnouncer(settings(kafka.brokers));
    try {
      await announcer.send([
        { topic: "t1", key: "cluster-a", headers: { service: "hccm" }, value: '{"n":1}' },
        { topic: "t1", key: "cluster-a", headers: { service: "hccm" }, value: '{"n":2}' },
        { topic: "t2", key: "cluster-b", headers: { service: "hccm", x: "y" }, value: "é" },
      ]);
      await announcer.send([{ topic: "t1", key: "cluster-a", headers: {}, value: '{"n":3}' }]);
      assert.deepEqual(await consumeMessages(kafka.brokers, "t1", 3), [
        { key: "cluster-a", value: '{"n":1}', headers: { service: "hccm" } },
        { key: "cluster-a", value: '{"n":2}', headers: { service: "hccm" } },
        { key: "cluster-a", value: '{"n":3}', headers: {} },
      ]);
      assert.deepEqual(await consumeMessages(kafka.brokers, "t2", 1), [
        { key: "cluster-b", value: "é", headers: { service: "hccm", x: "y" } },
      ]);
      // Concurrent sends (clusters delivered in parallel) share one fresh connection.
      const fresh = new KafkaAnnouncer(settings(kafka.brokers));
      try {
        await Promise.all(
          [1, 2, 3, 4].map((n) =>
            fresh.send([{ topic: "t3", key: `c${n}`, headers: {}, value: `${n}` }])
          ),
        );
      } finally {
        await fresh.close();
      }
      const t3 = await consumeMessages(kafka.brokers, "t3", 4);
      assert.deepEqual(t3.map((m) => m.value).sort(), ["1", "2", "3", "4"]);
    } finally {
      await announcer.close();
      await kafka.stop();
    }
  },
});

Deno.test({
  name:
    "KafkaAnnouncer: no broker → sink_kafka naming topic and broker; logs are safe and off stdout",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const port = freePort();
    const lines: string[] = [];
    const stdout: unknown[] = [];
    const original = { log: console.log, info: console.info, debug: console.debug };
    console.log = console.info = console.debug = (...args: unknown[]) => stdout.push(args);
    const announcer = new KafkaAnnouncer(
      settings(`127.0.0.1:${port}`, {
        retries: 1,
        sasl: { mechanism: "scram-sha-512", username: "bridge", password: "hunter2-SECRET" },
      }),
      (level, line) => lines.push(`${level} ${line}`),
    );
    try {
      const started = Date.now();
      await assert.rejects(
        announcer.send([{ topic: "platform.upload.announce", key: "k", headers: {}, value: "v" }]),
        (e: unknown) => {
          assert.ok(e instanceof BridgeError);
          assert.equal(e.code, "sink_kafka");
          assert.match(
            e.message,
            new RegExp(`platform\\.upload\\.announce via 127\\.0\\.0\\.1:${port}`),
          );
          assert.match(e.message, /ECONNREFUSED|Connection/);
          assert.ok(!e.message.includes("hunter2"));
          return true;
        },
      );
      assert.ok(Date.now() - started < 15_000, "fails within seconds");
    } finally {
      await announcer.close();
      Object.assign(console, original);
    }
    assert.deepEqual(stdout, []);
    assert.ok(lines.length > 0, "kafkajs errors reach the log function");
    assert.ok(lines.every((l) => !l.includes("hunter2")));
  },
});

Deno.test({
  name:
    "KafkaAnnouncer: SASL plain/scram-sha-256/scram-sha-512 and TLS with a CA against a real broker",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const kafka = await startKafka({ security: true });
    const lines: string[] = [];
    const log = (level: string, line: string) => lines.push(`${level} ${line}`);
    const record = (n: string) => ({
      topic: "secure",
      key: "k",
      headers: { service: "hccm" },
      value: n,
    });
    const sent: string[] = [];
    try {
      const { sasl, tls } = kafka;
      assert.ok(sasl && tls);
      for (const mechanism of ["plain", "scram-sha-256", "scram-sha-512"] as const) {
        const a = new KafkaAnnouncer(
          settings(sasl.brokers, {
            sasl: { mechanism, username: sasl.username, password: sasl.password },
          }),
          log,
        );
        try {
          await a.send([record(mechanism)]);
          sent.push(mechanism);
        } finally {
          await a.close();
        }
      }
      const viaTls = new KafkaAnnouncer(settings(tls.brokers, { tls: true, ca: tls.ca }), log);
      try {
        await viaTls.send([record("tls")]);
        sent.push("tls");
      } finally {
        await viaTls.close();
      }
      const messages = await consumeMessages(kafka.brokers, "secure", 4);
      assert.deepEqual(messages.map((m) => m.value), [
        "plain",
        "scram-sha-256",
        "scram-sha-512",
        "tls",
      ]);

      // A wrong password and an unknown CA fail with sink_kafka, and say nothing secret.
      const wrong = new KafkaAnnouncer(
        settings(sasl.brokers, {
          retries: 1,
          sasl: { mechanism: "scram-sha-512", username: sasl.username, password: "WRONG-hunter2" },
        }),
        log,
      );
      try {
        await assert.rejects(wrong.send([record("x")]), (e: unknown) => {
          assert.ok(e instanceof BridgeError && e.code === "sink_kafka");
          assert.match(e.message, /SASL|authenticat/i);
          assert.ok(!e.message.includes("hunter2") && !e.message.includes(sasl.password));
          return true;
        });
      } finally {
        await wrong.close();
      }
      const untrusted = new KafkaAnnouncer(
        settings(tls.brokers, { tls: true, ca: null, retries: 1 }),
        log,
      );
      try {
        await assert.rejects(untrusted.send([record("x")]), (e: unknown) => {
          assert.ok(e instanceof BridgeError && e.code === "sink_kafka");
          return true;
        });
      } finally {
        await untrusted.close();
      }
      assert.ok(lines.every((l) => !l.includes("hunter2") && !l.includes(sasl.password)));
    } finally {
      await kafka.stop();
    }
    assert.deepEqual(sent, ["plain", "scram-sha-256", "scram-sha-512", "tls"]);
  },
});

Deno.test("KafkaAnnouncer: an aborted signal cancels before connecting", async () => {
  const announcer = new KafkaAnnouncer(settings("127.0.0.1:1"), () => {});
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(
    announcer.send([{ topic: "t", key: "k", headers: {}, value: "v" }], ac.signal),
    (e: unknown) => e instanceof BridgeError && e.code === "cancelled",
  );
  await announcer.close();
});

Deno.test("KafkaAnnouncer: needs a broker and at least one retry", () => {
  assert.throws(() => new KafkaAnnouncer({ ...settings("x:1"), brokers: [] }), BridgeError);
  assert.throws(() => new KafkaAnnouncer(settings("x:1", { retries: 0 })), /at least 1/);
});

Deno.test("formatKafkaLogEntry: keeps message, broker and error, drops everything else", () => {
  const line = formatKafkaLogEntry({
    namespace: "SASLAuthenticator",
    level: logLevel.ERROR,
    label: "ERROR",
    log: {
      timestamp: "t",
      logger: "kafkajs",
      message: "Failed",
      broker: "b:1",
      error: "boom",
      password: "p4ss",
    } as unknown as { timestamp: string; logger: "kafkajs"; message: string },
  });
  assert.equal(line, "[SASLAuthenticator] Failed broker=b:1 error=boom");
});
