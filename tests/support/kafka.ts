/**
 * A real Apache Kafka broker for tests: one combined broker+controller (KRaft)
 * on free loopback ports, with its log folder in a fresh temp dir.
 * {@linkcode startKafka} fetches the jars with `.ci/install_kafka.sh` (cached
 * after the first run); `stop()` kills the JVM by PID and removes the folder.
 *
 * @module
 */

import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { fileURLToPath } from "node:url";

/** Repository root (two levels above this file). */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** A running test broker. */
export interface KafkaServer {
  /** `127.0.0.1:<port>`, for a client's `brokers` list. */
  readonly brokers: string;
  /** Broker (PLAINTEXT) port. */
  readonly port: number;
  /** PID of the JVM. */
  readonly pid: number;
  /** Temp folder holding the configuration, the log folder and `server.log`. */
  readonly dir: string;
  /** Kills the JVM (SIGKILL) and removes {@linkcode dir}. Safe to call twice. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startKafka}. */
export interface StartKafkaOptions {
  /** Broker port; a free loopback port by default (pass an old one to "restart" a broker). */
  port?: number;
  /** Milliseconds to wait for the broker to be ready (default 90 000). */
  readyTimeoutMs?: number;
}

/**
 * A loopback TCP port that was free a moment ago.
 *
 * @example
 * ```ts
 * import { freePort } from "./kafka.ts";
 * const port = freePort();
 * port > 0; // true
 * ```
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Runs an install script of `.ci/` and returns the last line it prints (a
 * path). Its stderr is passed through only when it fails.
 *
 * @example
 * ```ts ignore
 * import { runInstallScript } from "./kafka.ts";
 * const libs = await runInstallScript("install_kafka.sh");
 * ```
 */
export async function runInstallScript(name: string): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: [join(REPO_ROOT, ".ci", name)],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).slice(-2000);
    throw new Error(`.ci/${name} failed (exit ${out.code}): ${err}`);
  }
  const last = text.split("\n").at(-1) ?? "";
  if (last === "") throw new Error(`.ci/${name} printed no path`);
  return last;
}

/** A KRaft cluster id: 16 random bytes, base64url; never starting with `-` (the formatter takes it for a flag). */
function clusterId(): string {
  for (;;) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    const id = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
      .replace(/=+$/, "");
    if (/^[A-Za-z0-9]/.test(id)) return id;
  }
}

const JVM_FLAGS = [
  "-Xmx512m",
  "-XX:+UseSerialGC",
  "-XX:TieredStopAtLevel=1",
  // No /tmp/hsperfdata_<user>/<pid> left behind by a killed JVM.
  "-XX:-UsePerfData",
];

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Starts a single-node Kafka (KRaft, broker+controller) on loopback and waits
 * until it is ready. Topics are created on first use.
 *
 * @example
 * ```ts ignore
 * import { startKafka } from "./kafka.ts";
 * const kafka = await startKafka();
 * try {
 *   kafka.brokers; // "127.0.0.1:<port>"
 * } finally {
 *   await kafka.stop();
 * }
 * ```
 */
export async function startKafka(options: StartKafkaOptions = {}): Promise<KafkaServer> {
  const libs = await runInstallScript("install_kafka.sh");
  const dir = await Deno.makeTempDir({ prefix: "thanos-bridge-kafka-" });
  let child: Deno.ChildProcess | null = null;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child !== null) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await child.status;
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const port = options.port ?? freePort();
    let controllerPort = freePort();
    while (controllerPort === port) controllerPort = freePort();
    const tmp = join(dir, "tmp");
    await Deno.mkdir(tmp);
    const props = join(dir, "server.properties");
    await Deno.writeTextFile(
      props,
      [
        "process.roles=broker,controller",
        "node.id=1",
        `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
        `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
        `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        `log.dirs=${join(dir, "data")}`,
        "auto.create.topics.enable=true",
        "num.partitions=1",
        "default.replication.factor=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "",
      ].join("\n"),
    );
    const logFile = join(dir, "server.log");
    const log4j = join(dir, "log4j2.properties");
    await Deno.writeTextFile(
      log4j,
      [
        "status = error",
        "appender.file.type = File",
        "appender.file.name = FILE",
        `appender.file.fileName = ${logFile}`,
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.file.ref = FILE",
        "",
      ].join("\n"),
    );
    const jvm = [
      ...JVM_FLAGS,
      `-Djava.io.tmpdir=${tmp}`,
      `-Dlog4j2.configurationFile=${log4j}`,
      "-cp",
      `${libs}/*`,
    ];
    const format = await new Deno.Command("java", {
      args: [...jvm, "kafka.tools.StorageTool", "format", "-t", clusterId(), "-c", props],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!format.success) {
      throw new Error(
        `kafka storage format failed: ${new TextDecoder().decode(format.stderr).slice(-2000)}`,
      );
    }
    child = new Deno.Command("java", {
      args: [...jvm, "kafka.Kafka", props],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    let exited = false;
    child.status.then(() => exited = true);
    const deadline = Date.now() + (options.readyTimeoutMs ?? 90_000);
    for (;;) {
      if (await exists(logFile)) {
        const text = await Deno.readTextFile(logFile);
        if (text.includes("Kafka Server started")) break;
      }
      if (exited) {
        const tail = await Deno.readTextFile(logFile).catch(() => "");
        throw new Error(`kafka exited during start-up: ${tail.slice(-2000)}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`kafka not ready after ${options.readyTimeoutMs ?? 90_000} ms`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return { brokers: `127.0.0.1:${port}`, port, pid: child.pid, dir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** One consumed record, as text. */
export interface ConsumedMessage {
  key: string;
  value: string;
  headers: Record<string, string>;
}

/**
 * Reads the first `count` messages of `topic` with a fresh consumer group;
 * rejects when they do not all arrive within `timeoutMs`.
 *
 * @example
 * ```ts ignore
 * import { consumeMessages } from "./kafka.ts";
 * const [first] = await consumeMessages("127.0.0.1:9092", "platform.upload.announce", 1);
 * ```
 */
export async function consumeMessages(
  brokers: string,
  topic: string,
  count: number,
  timeoutMs = 30_000,
): Promise<ConsumedMessage[]> {
  const kafka = new Kafka({
    brokers: [brokers],
    clientId: "test-consumer",
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({ groupId: `g-${crypto.randomUUID()}` });
  const got: ConsumedMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${got.length} of ${count} messages`)),
        timeoutMs,
      );
      consumer.run({
        eachMessage: ({ message }) => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
          got.push({ key: String(message.key), value: String(message.value), headers });
          if (got.length >= count) {
            clearTimeout(timer);
            resolve();
          }
          return Promise.resolve();
        },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return got;
}

/**
 * How many messages `topic` holds (sum of its partitions' high watermarks);
 * 0 when the topic does not exist.
 *
 * @example
 * ```ts ignore
 * import { topicMessageCount } from "./kafka.ts";
 * await topicMessageCount("127.0.0.1:9092", "platform.upload.announce"); // 0
 * ```
 */
export async function topicMessageCount(brokers: string, topic: string): Promise<number> {
  const kafka = new Kafka({
    brokers: [brokers],
    clientId: "test-admin",
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(topic)) return 0;
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}
