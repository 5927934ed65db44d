/**
 * Produces announcements to Kafka with `kafkajs`: acks from all in-sync
 * replicas (`acks: -1`), an idempotent producer with one request in flight
 * (so retries neither duplicate nor reorder), optional TLS (with a CA PEM)
 * and SASL (plain, scram-sha-256, scram-sha-512). kafkajs's own logger is
 * replaced: nothing goes to stdout, warnings and errors go to stderr (or to an
 * injected function), and no credential is ever part of a line. kafkajs's
 * per-request error answers are left out: it retries them, and the error that
 * remains is the one `send` throws.
 *
 * @module
 */

import {
  Kafka,
  type KafkaConfig,
  type LogEntry,
  logLevel,
  Partitioners,
  type Producer,
} from "kafkajs";
import { BridgeError, escapeControl } from "../model.ts";

/** SASL settings. */
export interface KafkaSasl {
  readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
  readonly username: string;
  /** Never logged, never part of an error message. */
  readonly password: string;
}

/** How to reach the brokers. */
export interface KafkaSettings {
  /** `host:port` of one or more brokers. */
  readonly brokers: readonly string[];
  /** Topic of the announcements (default of the sink: `platform.upload.announce`). */
  readonly topic: string;
  /** Connect with TLS. */
  readonly tls: boolean;
  /** PEM CA bundle for TLS; system roots when `null`. */
  readonly ca: string | null;
  readonly sasl: KafkaSasl | null;
  /** Kafka client id (default of the sink: `thanos-bridge`). */
  readonly clientId: string;
  /** TCP connect timeout in ms (default 3 000). */
  readonly connectionTimeoutMs?: number;
  /** Request timeout in ms (default 30 000). */
  readonly requestTimeoutMs?: number;
  /** kafkajs retries per send after the first attempt (default 3, at least 1: the producer is idempotent). */
  readonly retries?: number;
}

/** One record to produce. */
export interface KafkaRecord {
  readonly topic: string;
  readonly key: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly value: string;
}

/** Receives kafkajs's warnings and errors, already stripped to safe fields. */
export type KafkaLog = (level: "error" | "warn", line: string) => void;

/**
 * The default {@linkcode KafkaLog}: one line on stderr, control characters
 * escaped.
 *
 * @example
 * ```ts
 * import { stderrKafkaLog } from "./kafka_announcer.ts";
 * stderrKafkaLog("warn", "[Connection] Connection error: connect ECONNREFUSED");
 * ```
 */
export function stderrKafkaLog(level: "error" | "warn", line: string): void {
  console.error(`kafka ${level}: ${escapeControl(line, false)}`);
}

/**
 * One kafkajs log entry as a line: namespace, message, broker and error only
 * (kafkajs puts other request details in entries; they stay out).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatKafkaLogEntry } from "./kafka_announcer.ts";
 *
 * assert.equal(
 *   formatKafkaLogEntry({
 *     namespace: "Connection",
 *     level: 1,
 *     label: "ERROR",
 *     log: { timestamp: "t", logger: "kafkajs", message: "Connection error", broker: "b:9092", sasl: { password: "p" } },
 *   }),
 *   "[Connection] Connection error broker=b:9092",
 * );
 * ```
 */
export function formatKafkaLogEntry(entry: LogEntry): string {
  const log = entry.log as unknown as Record<string, unknown>;
  let line = `[${entry.namespace}] ${String(log.message ?? "")}`;
  if (typeof log.broker === "string") line += ` broker=${log.broker}`;
  if (typeof log.error === "string") line += ` error=${log.error}`;
  return line;
}

/**
 * The connection part of a kafkajs client configuration (client id, brokers,
 * TLS with an optional CA, SASL), shared by the announcer and `doctor`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kafkaConnectionConfig } from "./kafka_announcer.ts";
 *
 * const config = kafkaConnectionConfig({
 *   brokers: ["b:9093"], tls: true, ca: null, sasl: null, clientId: "thanos-bridge",
 * });
 * assert.equal(config.ssl, true);
 * ```
 */
export function kafkaConnectionConfig(
  settings: Pick<KafkaSettings, "brokers" | "tls" | "ca" | "sasl" | "clientId">,
): Pick<KafkaConfig, "clientId" | "brokers" | "ssl" | "sasl"> {
  const sasl = settings.sasl;
  return {
    clientId: settings.clientId,
    brokers: [...settings.brokers],
    ssl: settings.tls ? (settings.ca !== null ? { ca: [settings.ca] } : true) : false,
    ...(sasl === null ? {} : {
      sasl: sasl.mechanism === "plain"
        ? { mechanism: "plain", username: sasl.username, password: sasl.password }
        : sasl.mechanism === "scram-sha-256"
        ? { mechanism: "scram-sha-256", username: sasl.username, password: sasl.password }
        : { mechanism: "scram-sha-512", username: sasl.username, password: sasl.password },
    }),
  };
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("cancelled", "AbortError");
}

/**
 * A lazily connected idempotent producer. After a failed send the producer is
 * dropped, so the next send connects again (to a restarted broker, too).
 *
 * @example
 * ```ts ignore
 * import { KafkaAnnouncer } from "./kafka_announcer.ts";
 *
 * const announcer = new KafkaAnnouncer({
 *   brokers: ["127.0.0.1:9092"], topic: "platform.upload.announce", tls: false, ca: null,
 *   sasl: null, clientId: "thanos-bridge",
 * });
 * try {
 *   await announcer.send([{ topic: "platform.upload.announce", key: "cluster-a",
 *     headers: { service: "hccm" }, value: "{}" }]);
 * } finally {
 *   await announcer.close();
 * }
 * ```
 */
export class KafkaAnnouncer {
  readonly #settings: KafkaSettings;
  readonly #kafka: Kafka;
  #producer: Promise<Producer> | null = null;

  /**
   * @param settings Brokers, TLS, SASL, client id.
   * @param log Where kafkajs's warnings and errors go (default {@linkcode stderrKafkaLog}).
   */
  constructor(settings: KafkaSettings, log: KafkaLog = stderrKafkaLog) {
    if (settings.brokers.length === 0) {
      throw new BridgeError("config", "kafka: at least one broker is needed");
    }
    const retries = settings.retries ?? 3;
    if (!Number.isInteger(retries) || retries < 1) {
      // kafkajs refuses an idempotent producer without retries.
      throw new BridgeError("config", `kafka retries must be at least 1, got ${retries}`);
    }
    this.#settings = settings;
    this.#kafka = new Kafka({
      ...kafkaConnectionConfig(settings),
      connectionTimeout: settings.connectionTimeoutMs ?? 3_000,
      requestTimeout: settings.requestTimeoutMs ?? 30_000,
      retry: { retries: settings.retries ?? 3, initialRetryTime: 300, maxRetryTime: 5_000 },
      logLevel: logLevel.WARN,
      logCreator: () => (entry: LogEntry) => {
        // Retries are bounded on purpose (a send must fail, not hang, when the
        // broker is down; the producer is dropped after a failure anyway).
        if (String(entry.log.message).startsWith("Limiting retries for the idempotent")) return;
        // kafkajs logs every error answer, retriable ones too (a topic being created, a
        // coordinator loading); the error that remains after the retries is the one thrown.
        if (entry.namespace === "Connection" && String(entry.log.message).startsWith("Response ")) {
          return;
        }
        if (entry.level === logLevel.ERROR) log("error", formatKafkaLogEntry(entry));
        else if (entry.level === logLevel.WARN) log("warn", formatKafkaLogEntry(entry));
      },
    });
  }

  /** `host:port,…` of the configured brokers, for messages. */
  get brokerList(): string {
    return this.#settings.brokers.join(",");
  }

  /** The connected producer; concurrent callers share one connection attempt. */
  #connected(): Promise<Producer> {
    if (this.#producer !== null) return this.#producer;
    const producer = this.#kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: true,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: this.#settings.retries ?? 3, initialRetryTime: 300, maxRetryTime: 5_000 },
    });
    const connecting = producer.connect().then(
      () => producer,
      async (e) => {
        if (this.#producer === connecting) this.#producer = null;
        await producer.disconnect().catch(() => {});
        throw e;
      },
    );
    this.#producer = connecting;
    return connecting;
  }

  async #drop(): Promise<void> {
    const pending = this.#producer;
    this.#producer = null;
    if (pending === null) return;
    const producer = await pending.catch(() => null);
    if (producer !== null) await producer.disconnect().catch(() => {});
  }

  /**
   * Produces `records` (grouped by topic, in order) and resolves once the
   * brokers acknowledged all of them. Throws a `BridgeError` `sink_kafka`
   * naming the topic and brokers, or `cancelled` when `signal` aborts.
   */
  async send(records: readonly KafkaRecord[], signal?: AbortSignal): Promise<void> {
    if (records.length === 0) return;
    if (signal?.aborted) {
      throw new BridgeError("cancelled", "cancelled", { cause: abortError(signal) });
    }
    const topics = new Map<string, KafkaRecord[]>();
    for (const r of records) {
      const list = topics.get(r.topic) ?? [];
      list.push(r);
      topics.set(r.topic, list);
    }
    const work = (async () => {
      const producer = await this.#connected();
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...topics].map(([topic, list]) => ({
          topic,
          messages: list.map((r) => ({ key: r.key, value: r.value, headers: { ...r.headers } })),
        })),
      });
    })();
    let onAbort = () => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () =>
        reject(new BridgeError("cancelled", "cancelled", { cause: abortError(signal!) }));
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    try {
      await Promise.race([work, aborted]);
    } catch (e) {
      work.catch(() => {});
      await this.#drop();
      if (e instanceof BridgeError) throw e;
      const cause = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      throw new BridgeError(
        "sink_kafka",
        `cannot announce on topic ${[...topics.keys()].join(",")} via ${this.brokerList}: ${
          escapeControl(cause, false)
        }`,
        { cause: e },
      );
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Disconnects the producer. */
  async close(): Promise<void> {
    await this.#drop();
  }
}
