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
  /** With `security: true`: a SASL_PLAINTEXT listener taking PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512. */
  readonly sasl:
    | { readonly brokers: string; readonly username: string; readonly password: string }
    | null;
  /** With `security: true`: an SSL listener whose certificate (for IP 127.0.0.1) is signed by `ca`. */
  readonly tls: { readonly brokers: string; readonly ca: string } | null;
  /** Kills the JVM (SIGKILL) and removes {@linkcode dir}. Safe to call twice. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startKafka}. */
export interface StartKafkaOptions {
  /** Broker port; a free loopback port by default (pass an old one to "restart" a broker). */
  port?: number;
  /** Milliseconds to wait for the broker to be ready (default 90 000). */
  readyTimeoutMs?: number;
  /** Also open a SASL listener and a TLS listener (see {@linkcode KafkaServer.sasl}, `tls`). */
  security?: boolean;
}

/**
 * An idempotent `stop()` for a test server: kills its process (SIGKILL, by
 * PID), waits for it to exit, then removes `paths` (its temp folder, sockets).
 *
 * @example
 * ```ts ignore
 * import { processStopper } from "./kafka.ts";
 * let child: Deno.ChildProcess | null = null;
 * const stop = processStopper(() => child, ["/tmp/my-server"]);
 * await stop();
 * ```
 */
export function processStopper(
  child: () => Deno.ChildProcess | null,
  paths: readonly string[],
): () => Promise<void> {
  let stopped = false;
  return async () => {
    if (stopped) return;
    stopped = true;
    const c = child();
    if (c !== null) {
      try {
        c.kill("SIGKILL");
      } catch {
        // already exited
      }
      await c.status;
    }
    for (const path of paths) await Deno.remove(path, { recursive: true }).catch(() => {});
  };
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
 * Makes a throwaway CA and a broker certificate for IP 127.0.0.1 with
 * `openssl`; writes `broker-keystore.pem` (key + chain, Kafka's PEM keystore)
 * into `dir` and returns the CA certificate PEM.
 */
async function makeCertificates(dir: string): Promise<string> {
  const run = async (args: string[]) => {
    const out = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  await run([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=thanos-bridge test CA",
  ]);
  await run([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "broker.key",
    "-out",
    "broker.csr",
    "-subj",
    "/CN=127.0.0.1",
  ]);
  await Deno.writeTextFile(join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
  await run([
    "x509",
    "-req",
    "-in",
    "broker.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "broker.pem",
    "-days",
    "2",
    "-extfile",
    "san.ext",
  ]);
  const key = await Deno.readTextFile(join(dir, "broker.key"));
  const chain = await Deno.readTextFile(join(dir, "broker.pem"));
  await Deno.writeTextFile(join(dir, "broker-keystore.pem"), key + chain);
  return await Deno.readTextFile(join(dir, "ca.pem"));
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
  const stop = processStopper(() => child, [dir]);
  try {
    const port = options.port ?? freePort();
    const taken = [port];
    const nextPort = () => {
      let p = freePort();
      while (taken.includes(p)) p = freePort();
      taken.push(p);
      return p;
    };
    const controllerPort = nextPort();
    const tmp = join(dir, "tmp");
    await Deno.mkdir(tmp);
    const listeners = [`PLAINTEXT://127.0.0.1:${port}`];
    const protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"];
    const extra: string[] = [];
    const formatExtra: string[] = [];
    let sasl: KafkaServer["sasl"] = null;
    let tls: KafkaServer["tls"] = null;
    if (options.security) {
      const saslPort = nextPort();
      const tlsPort = nextPort();
      const password = `pw-${crypto.randomUUID()}`;
      listeners.push(`SASL_PLAINTEXT://127.0.0.1:${saslPort}`, `SSL://127.0.0.1:${tlsPort}`);
      protocols.push("SASL_PLAINTEXT:SASL_PLAINTEXT", "SSL:SSL");
      const ca = await makeCertificates(dir);
      extra.push(
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config=" +
          `org.apache.kafka.common.security.plain.PlainLoginModule required user_bridge="${password}";`,
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=" +
          "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=" +
          "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "ssl.keystore.type=PEM",
        `ssl.keystore.location=${join(dir, "broker-keystore.pem")}`,
      );
      formatExtra.push(
        "--add-scram",
        `SCRAM-SHA-256=[name=bridge,password=${password}]`,
        "--add-scram",
        `SCRAM-SHA-512=[name=bridge,password=${password}]`,
      );
      sasl = { brokers: `127.0.0.1:${saslPort}`, username: "bridge", password };
      tls = { brokers: `127.0.0.1:${tlsPort}`, ca };
    }
    const props = join(dir, "server.properties");
    await Deno.writeTextFile(
      props,
      [
        "process.roles=broker,controller",
        "node.id=1",
        `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
        `listeners=${[...listeners, `CONTROLLER://127.0.0.1:${controllerPort}`].join(",")}`,
        `advertised.listeners=${listeners.join(",")}`,
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        `listener.security.protocol.map=${protocols.join(",")}`,
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
        ...extra,
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
      args: [
        ...jvm,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        clusterId(),
        "-c",
        props,
        ...formatExtra,
      ],
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
    return { brokers: `127.0.0.1:${port}`, port, pid: child.pid, dir, sasl, tls, stop };
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
