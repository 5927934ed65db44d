/**
 * `thanos-bridge` command line. Entry point of the compiled binary.
 *
 * Exit codes: 0 ok, 1 partial failure (some clusters, days or hours failed,
 * or a cluster had no data at all; the rest was delivered), 2 bad usage or
 * configuration (nothing was queried), 130 interrupted.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { Command, CommanderError, Option } from "commander";
import type { CollectEvent } from "../collect/hour_collector.ts";
import {
  type Config,
  configFromEnv,
  ENV_VARS,
  flagOf,
  resolveRunRequest,
  resolveServeSettings,
  resolveSettings,
  RUN_KEYS,
} from "../config.ts";
import {
  type ConfigLayer,
  type MergedConfig,
  mergeLayers,
  readConfigFile,
} from "../config_layers.ts";
import { BRIDGE_VERSION, ConfigError, escapeControl } from "../model.ts";
import { setupLogging } from "../service/logging.ts";
import { routeNodeWarnings } from "../service/node_warnings.ts";
import {
  createBridge,
  readSecretLine,
  SECRET_ENV_VARS,
  type SecretValues,
} from "../service/runtime.ts";
import { startService } from "../service/serve.ts";
import { ALLOWLIST_NAMESPACE, renderAllowlist } from "../collect/allowlist.ts";
import { check, type DoctorCheck } from "../service/doctor_check.ts";
import { formatChecks, formatSummary } from "./summary.ts";

/** Where the CLI writes; injectable for tests. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  stderrIsTerminal: boolean;
  env: Readonly<Record<string, string | undefined>>;
  now: () => Date;
  /** Aborted on SIGINT/SIGTERM (the real process); tests may pass their own. */
  signal?: AbortSignal;
}

const encoder = new TextEncoder();

/** The process's real streams and environment; SIGINT/SIGTERM abort the run. */
export function processIo(): CliIo {
  const controller = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(sig, () => controller.abort(new DOMException(sig, "AbortError")));
    } catch {
      // not supported on this platform
    }
  }
  return {
    stdout: (t) => void Deno.stdout.writeSync(encoder.encode(t)),
    stderr: (t) => void Deno.stderr.writeSync(encoder.encode(t)),
    stderrIsTerminal: Deno.stderr.isTerminal(),
    env: Deno.env.toObject(),
    now: () => new Date(),
    signal: controller.signal,
  };
}

/** A usage problem found by the CLI itself: exit code 2. */
class UsageError extends Error {
  override name = "UsageError";
}

function collectList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(",").map((s) => s.trim()).filter((s) => s)];
}

function repeatable(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function defaultCacheDir(env: CliIo["env"]): string {
  if (env.XDG_CACHE_HOME) return env.XDG_CACHE_HOME;
  if (env.HOME) return `${env.HOME}/.cache`;
  return Deno.build.os === "windows" && env.LOCALAPPDATA ? env.LOCALAPPDATA : ".cache";
}

/** One option of `collect`: its Config key, the argument's name (none: a switch) and help. */
type OptionSpec = [key: keyof Config, arg: string | null, help: string];

/** Every option of `collect`, in `--help` order. Flags are derived from the keys (`flagOf`). */
const OPTIONS: readonly OptionSpec[] = [
  ["thanosUrl", "url", "Thanos Query (or Prometheus) base URL"],
  ["clusters", "id", "cluster id to collect; repeat or comma-separate (skips discovery)"],
  [
    "discovery",
    "sources",
    "where runs find clusters: static, thanos, acm; combinable (default static)",
  ],
  ["include", "glob", "keep only clusters whose id or name matches; repeatable"],
  ["exclude", "glob", "leave out clusters whose id or name matches; repeatable"],
  [
    "discoveryMatch",
    "selector",
    "thanos discovery: a metric every cluster sends (default kube_node_info)",
  ],
  [
    "discoveryWindow",
    "duration",
    "thanos discovery: how far back it must have been sent (default 24h)",
  ],
  ["acmApiUrl", "url", "acm discovery: Kubernetes API (default https://kubernetes.default.svc)"],
  ["acmTokenFile", "file", "acm discovery: service account token (default: the pod's)"],
  ["acmCaFile", "file", "acm discovery: API server CA (default: the pod's)"],
  ["acmOrgKey", "key", "acm discovery: ManagedCluster label or annotation holding the org id"],
  ["registerSources", null, "create a koku OCP source for every cluster that has none"],
  ["ros", null, "ROS reports (resource optimization); --no-ros turns them off (default on)"],
  ["kokuSourcesUrl", "url", "koku sources API, e.g. http://koku-api:8000/api/cost-management/v1/"],
  ["from", "YYYY-MM-DD[THH]", "first UTC hour (default: after each cluster's watermark)"],
  ["to", "YYYY-MM-DD[THH]", "last UTC hour, included (default: the newest ready hour)"],
  ["day", "YYYY-MM-DD", "shorthand: --from DAY --to DAY"],
  ["until", "HH", "with --day: last hour of that day, 0-23"],
  ["maxBackfill", "duration", "how far back a run without --from catches up (default 14d)"],
  ["recollect", null, "query hours again even if in the state; ship complete days again"],
  ["dryRun", null, "plan and collect, deliver nothing; print what would be shipped"],
  ["sink", "dir|s3-kafka|ingress", "where payloads go (default dir)"],
  ["out", "dir", "dir sink: folder the payloads are written to"],
  ["orgId", "id", "koku org_id of every cluster"],
  ["orgMap", "file", "cluster_id,org_id lines (hubs that serve several orgs)"],
  ["s3Endpoint", "url", "S3 endpoint (default: AWS)"],
  ["s3PublicEndpoint", "url", "endpoint used in presigned URLs (as koku reaches S3)"],
  ["s3Region", "region", "S3 region (default us-east-1)"],
  ["s3Bucket", "name", "S3 bucket"],
  ["s3Prefix", "prefix", "key prefix: <prefix>/<cluster>/<day>/<uuid>.tar.gz"],
  ["s3PathStyle", null, "path-style S3 addressing (SeaweedFS, Ceph, MinIO)"],
  ["presignExpiry", "duration", "validity of presigned URLs (default 24h)"],
  ["kafkaBrokers", "host:port,...", "Kafka bootstrap brokers"],
  ["kafkaTopic", "topic", "announce topic (default platform.upload.announce)"],
  ["kafkaTls", null, "TLS to Kafka"],
  ["kafkaCaFile", "file", "PEM CA bundle for Kafka TLS"],
  ["kafkaSaslMechanism", "mechanism", "plain, scram-sha-256 or scram-sha-512"],
  ["kafkaSaslUsername", "name", "SASL user name"],
  ["kafkaSaslPasswordFile", "file", "SASL password, read from a file"],
  ["identityFile", "file", "identity JSON sent as b64_identity (default: built per cluster)"],
  ["ingressUrl", "url", "ingress base URL (…/api/ingress/v1/upload is appended)"],
  ["ingressTokenFile", "file", "ingress bearer token, read from a file"],
  ["ingressBasicAuthFile", "file", "ingress basic auth user:password, read from a file"],
  ["clusterLabel", "name", "label carrying the cluster id (default clusterID)"],
  ["rateWindow", "duration", "range window of rate()/*_over_time() (default 15m)"],
  ["concurrency", "n", "queries in flight across all clusters (default 4)"],
  ["timeout", "duration", "per-query attempt timeout (default 120s)"],
  ["retries", "n", "attempts per query, first included (default 5)"],
  ["tokenFile", "file", "bearer token file for Thanos"],
  ["caFile", "file", "PEM CA bundle to verify Thanos"],
  ["certFile", "file", "PEM client certificate (mTLS)"],
  ["keyFile", "file", "PEM client key (mTLS)"],
  ["headers", "header", 'extra request header "Name: value"; repeatable'],
  [
    "thanosGzip",
    null,
    "ask Thanos for gzip-compressed answers (default off: a sidecar on loopback)",
  ],
  [
    "reduce",
    "local|server|client",
    "local (default): raw samples, evaluated here; server: *_over_time on Thanos; client: 60 points here",
  ],
  [
    "engineSemantics",
    "auto|prometheus2|prometheus3",
    "local mode: window edges of the server's engine (default auto: its build info)",
  ],
  [
    "rawRead",
    "auto|remote-read|query",
    "local mode: raw samples by Prometheus remote read or by query (default auto: remote read where offered)",
  ],
  ["lookbackDelta", "duration", "local mode: the engine's lookback delta (default 5m)"],
  [
    "batchHours",
    "n",
    "server and local mode: hours per query (default 12 in local mode, 6 in server mode)",
  ],
  ["clusterBatch", "n", "clusters per query; 1: one query per cluster (default 100)"],
  ["batchSeries", "n", "most estimated series in one cluster batch (default 10000)"],
  ["skipEmpty", null, "skip queries that must be empty (GPU, VMs); --no-skip-empty (default on)"],
  ["settleDelay", "duration", "wait after an hour closes (default 10m)"],
  ["emptyHourGrace", "duration", "an hour without node data stays pending this long (default 6h)"],
  ["maxAnswerMb", "n", "largest answer to one query, MiB (default 256)"],
  ["maxSeriesKb", "n", "largest single series of an answer, KiB (default 1024)"],
  ["maxLabelKb", "n", "largest label value, KiB (default 16)"],
  ["maxSeries", "n", "most series in one answer (default 100000)"],
  ["state", "dir", "state folder (default: OS cache)"],
  ["record", "dir", "store every query and answer in DIR"],
  ["replay", "dir", "answer queries from a recording (no network)"],
  ["manifestVersion", "s", "manifest version (default: CMMO v4.4.1 commit)"],
  ["maxSizeMb", "n", "split payloads at this size, 1-100 (default 100)"],
  ["json", null, "print the summary as one JSON document on stdout"],
  ["config", "file", "settings file (YAML or JSON; keys are the flag names)"],
];

/** Options only `serve` takes. */
const SERVE_OPTIONS: readonly OptionSpec[] = [
  ["listen", "host:port", "address of the HTTP API (default 0.0.0.0:8080)"],
  ["schedule", "cron", "cron pattern of the scheduled runs (default '15 * * * *'; off disables)"],
  ["apiTokenFile", "file", "bearer token that POST/DELETE need (or THANOS_BRIDGE_API_TOKEN)"],
  ["runHistory", "n", "runs kept in the history (default 100)"],
  ["shutdownGrace", "duration", "how long SIGTERM waits for the active run (default 30s)"],
  ["logLevel", "level", "debug, info, warning or error (default info)"],
];

/** Switches that are on by default: the CLI offers their `--no-…` form. */
const NEGATED_FLAGS: ReadonlySet<keyof Config> = new Set<keyof Config>(["ros", "skipEmpty"]);

/** Options given as comma-separated lists, repeatable. */
const LIST_FLAGS: ReadonlySet<keyof Config> = new Set<keyof Config>([
  "clusters",
  "kafkaBrokers",
  "discovery",
  "include",
  "exclude",
]);

function addOptions(command: Command, specs: readonly OptionSpec[]): void {
  for (const [key, arg, help] of specs) {
    const option = new Option(
      arg === null
        ? (NEGATED_FLAGS.has(key) ? `--no-${flagOf(key).slice(2)}` : flagOf(key))
        : `${flagOf(key)} <${arg}>`,
      `${help} [env ${ENV_VARS[key]}]`,
    );
    if (LIST_FLAGS.has(key)) option.argParser(collectList);
    if (key === "headers") option.argParser(repeatable);
    command.addOption(option);
  }
}

function flagValues(opts: Record<string, unknown>): Config {
  const fromFlags: Config = {};
  const map: Record<string, keyof Config> = { cluster: "clusters", header: "headers" };
  for (const [k, v] of Object.entries(opts)) {
    const key = map[k] ?? k;
    // Commander defaults a lone `--no-x` to true: only `false` was given on the command line.
    if (NEGATED_FLAGS.has(key as keyof Config) && v === true) continue;
    if (v !== undefined && key in ENV_VARS) (fromFlags as Record<string, unknown>)[key] = v;
  }
  return fromFlags;
}

/**
 * A command's action: the merged settings, the flags alone (what this run
 * names), and the command's own options that are not settings.
 */
type Handler = (
  merged: MergedConfig,
  flags: Config,
  own: Record<string, unknown>,
) => Promise<void>;

function buildProgram(
  io: CliIo,
  handlers: { collect: Handler; serve: Handler; doctor: Handler },
  onMerged: (merged: MergedConfig) => void,
): Command {
  const program = new Command()
    .name("thanos-bridge")
    .description(
      "Builds koku-metrics-operator (CMMO) cost reports for many clusters from one Thanos Query.",
    )
    .version(BRIDGE_VERSION)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  const layered = (handler: Handler) => async (opts: Record<string, unknown>) => {
    let env: Config;
    try {
      env = configFromEnv(io.env);
    } catch (error) {
      if (error instanceof ConfigError) throw new UsageError(error.message);
      throw error;
    }
    const flags = flagValues(opts);
    const layers: ConfigLayer[] = [{ kind: "env", values: env }, { kind: "flag", values: flags }];
    const file = flags.config ?? env.config;
    if (file) layers.push({ kind: "file", origin: file, values: await readConfigFile(file) });
    const merged = mergeLayers(layers);
    onMerged(merged);
    await handler(merged, flags, opts);
  };
  const collect = program
    .command("collect")
    .description(
      "Collect the closed hours of every cluster (from its watermark, or --from/--to) and " +
        "deliver each day's cumulative payload.",
    );
  addOptions(collect, OPTIONS);
  collect.action(layered(handlers.collect));
  const serve = program
    .command("serve")
    .description(
      "Run as a sidecar: scheduled runs, an HTTP API (POST /runs, GET /runs, /clusters, " +
        "/metrics, /healthz, /readyz, /openapi.json) and a run history.",
    );
  addOptions(serve, OPTIONS.filter(([key]) => !RUN_KEYS.has(key)));
  addOptions(serve, SERVE_OPTIONS);
  serve.action(layered(handlers.serve));
  const doctor = program
    .command("doctor")
    .description(
      "Check the configuration, discovery, Thanos (token, cluster label, the metrics every " +
        "report needs, per cluster) and the sink (S3 round trip, Kafka, ingress). Exits 1 on any ✗.",
    );
  addOptions(doctor, OPTIONS.filter(([key]) => !RUN_KEYS.has(key) || key === "json"));
  addOptions(doctor, SERVE_OPTIONS);
  doctor
    .addOption(
      new Option("--hours <n>", "a metric counts as present with a series in the last N hours")
        .default("6"),
    )
    .addOption(
      new Option(
        "--produce-test <topic>",
        "also produce one test message (header service: thanos-bridge-doctor) to this topic",
      ),
    );
  doctor.action(layered(handlers.doctor));
  program
    .command("allowlist")
    .description(
      "Print the ACM observability-metrics-custom-allowlist ConfigMap with every metric the " +
        "reports read (from the parsed queries).",
    )
    .option("--recording-rules", "also add recording rules for per-pod and per-namespace CPU rates")
    .option("--namespace <ns>", "namespace of the ConfigMap", ALLOWLIST_NAMESPACE)
    .option("--no-ros", "leave out the metrics only the ROS reports read")
    .action((opts: { recordingRules?: boolean; namespace: string; ros: boolean }) => {
      try {
        io.stdout(
          renderAllowlist({
            recordingRules: opts.recordingRules === true,
            namespace: opts.namespace,
            ros: opts.ros,
          }),
        );
      } catch (error) {
        throw new UsageError(error instanceof Error ? error.message : String(error));
      }
    });
  return program;
}

/** Secrets given in environment variables rather than files. */
function secretsFromEnv(env: CliIo["env"]): SecretValues {
  const out: Record<string, string> = {};
  for (const [key, name] of Object.entries(SECRET_ENV_VARS)) {
    const value = env[name];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** A ConfigError in the CLI's words: where the value came from, the value, the reason. */
function wordConfigError(error: ConfigError, merged: MergedConfig | null): string {
  if (error.field.startsWith("THANOS_BRIDGE_")) return error.message;
  const key = error.field as keyof Config;
  const where = !ENV_VARS[key]
    ? error.field
    : merged
    ? `${merged.sourceOf(key)}${merged.sourceOf(key) === flagOf(key) ? ` (${ENV_VARS[key]})` : ""}`
    : `${flagOf(key)} (${ENV_VARS[key]})`;
  return error.value === ""
    ? `${where} ${error.reason}`
    : `${where} ${error.value} ${error.reason}`;
}

/**
 * Runs the CLI with `args` (without the program name) and returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { main, processIo } from "./main.ts";
 * Deno.exitCode = await main(["collect", "--help"], processIo());
 * ```
 */
export async function main(args: readonly string[], io: CliIo = processIo()): Promise<number> {
  let code = 0;
  let merged: MergedConfig | null = null;
  const collect: Handler = async ({ config }, flags) => {
    const settings = resolveSettings(config, { cacheDir: defaultCacheDir(io.env) });
    // Only `--cluster` names this run's clusters; the file's and the variable's list is the
    // static discovery source (the default), so that other sources can add to it.
    const request = resolveRunRequest({ ...config, clusters: flags.clusters });
    const json = config.json === true;
    const warn = (message: string) =>
      io.stderr(`thanos-bridge: warning: ${escapeControl(message)}\n`);
    routeNodeWarnings((name, message) => warn(`${name}: ${message}`));
    const bridge = await createBridge(settings, {
      now: io.now,
      warn,
      secrets: secretsFromEnv(io.env),
    });
    try {
      const progress = io.stderrIsTerminal && !json;
      let done = 0;
      const onEvent = progress
        ? (e: CollectEvent) => {
          done++;
          const what = e.type === "hour-done" ? (e.noData ? "no data" : "ok") : "FAILED";
          const hour = String(e.hour).padStart(2, "0");
          io.stderr(`\r\x1b[K[${done} hours] ${e.clusterId} ${e.day} ${hour}:00 ${what}`);
        }
        : undefined;
      const summary = await bridge.run(request, {
        ...(io.signal ? { signal: io.signal } : {}),
        ...(onEvent ? { onEvent } : {}),
      });
      if (progress) io.stderr("\r\x1b[K");
      if (json) io.stdout(JSON.stringify(summary, null, 2) + "\n");
      else io.stdout(formatSummary(summary));
      code = io.signal?.aborted ? 130 : summary.ok ? 0 : 1;
    } finally {
      await bridge.close();
    }
  };
  const serve: Handler = async ({ config }) => {
    const settings = resolveSettings(config, { cacheDir: defaultCacheDir(io.env) });
    const serveSettings = resolveServeSettings(config);
    const tokenEnv = io.env.THANOS_BRIDGE_API_TOKEN;
    if (serveSettings.apiTokenFile !== null && tokenEnv !== undefined) {
      throw new ConfigError(
        "apiTokenFile",
        serveSettings.apiTokenFile,
        "and THANOS_BRIDGE_API_TOKEN cannot both be set",
      );
    }
    const apiToken = serveSettings.apiTokenFile !== null
      ? await readSecretLine("apiTokenFile", serveSettings.apiTokenFile)
      : tokenEnv?.trim() || null;
    await setupLogging(serveSettings.logLevel, (line) => io.stderr(line));
    const nodeLog = getLogger(["thanos-bridge", "runtime"]);
    routeNodeWarnings((name, message) => nodeLog.warn("{name}: {message}", { name, message }));
    const service = await startService(settings, serveSettings, {
      now: io.now,
      secrets: secretsFromEnv(io.env),
      apiToken,
    });
    const stop = () => void service.shutdown(String(io.signal?.reason?.message ?? "signal"));
    if (io.signal?.aborted) stop();
    else io.signal?.addEventListener("abort", stop, { once: true });
    await service.finished;
    code = 0;
  };
  const doctor: Handler = async (m, _flags, own) => {
    const json = m.config.json === true;
    const hoursText = String(own.hours ?? "6");
    const hours = Number(hoursText);
    if (!/^\d+$/.test(hoursText.trim()) || hours < 1 || hours > 24 * 31) {
      throw new UsageError(`--hours ${hoursText} must be a whole number from 1 to 744`);
    }
    const produceTestTopic = typeof own.produceTest === "string" ? own.produceTest : null;
    if (produceTestTopic !== null && !/^[A-Za-z0-9._-]{1,249}$/.test(produceTestTopic)) {
      throw new UsageError(`--produce-test ${produceTestTopic} is not a valid Kafka topic name`);
    }
    const checks: DoctorCheck[] = [];
    const print = () => {
      const failed = checks.some((c) => c.status === "fail");
      io.stdout(
        json ? JSON.stringify({ ok: !failed, checks }, null, 2) + "\n" : formatChecks(checks),
      );
      code = failed ? 1 : 0;
    };
    const configTitle = "The configuration resolves";
    let settings;
    try {
      settings = resolveSettings(m.config, { cacheDir: defaultCacheDir(io.env) });
      resolveServeSettings(m.config);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      checks.push(check("config.resolve", configTitle, "fail", wordConfigError(error, m)));
      return print();
    }
    checks.push(
      check(
        "config.resolve",
        configTitle,
        "ok",
        `sink ${settings.sink}, discovery ${settings.discovery.sources.join("+")}, ` +
          `cluster label ${settings.clusterLabel}`,
      ),
    );
    const warnings: string[] = [];
    let bridge;
    const filesTitle = "Files, secrets and folders are readable and well-formed";
    try {
      bridge = await createBridge(settings, {
        now: io.now,
        warn: (message) => warnings.push(message),
        secrets: secretsFromEnv(io.env),
      });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      checks.push(check("config.files", filesTitle, "fail", wordConfigError(error, m)));
      return print();
    }
    checks.push(check("config.files", filesTitle, "ok", "all read", warnings));
    try {
      checks.push(...await bridge.diagnose({ hours, produceTestTopic }, io.signal));
    } finally {
      await bridge.close();
    }
    print();
  };
  const program = buildProgram(io, { collect, serve, doctor }, (m) => (merged = m));
  try {
    await program.parseAsync([...args], { from: "user" });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof ConfigError) {
      io.stderr(`thanos-bridge: ${escapeControl(wordConfigError(error, merged))}\n`);
      return 2;
    }
    if (error instanceof UsageError) {
      io.stderr(`thanos-bridge: ${escapeControl(error.message)}\n`);
      return 2;
    }
    io.stderr(
      `thanos-bridge: ${escapeControl(error instanceof Error ? error.message : String(error))}\n`,
    );
    return io.signal?.aborted ? 130 : 1;
  }
}

if (import.meta.main) {
  // Exit explicitly: after a graceful shutdown, a request the grace period gave up on (an upload
  // to a server that stopped answering) must not keep the process alive.
  Deno.exit(await main(Deno.args));
}
