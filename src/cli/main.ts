/**
 * `thanos-bridge` command line. Entry point of the compiled binary.
 *
 * Exit codes: 0 ok, 1 partial failure (some clusters or hours failed, the rest
 * delivered), 2 bad usage or configuration.
 *
 * @module
 */

import { Command, CommanderError, Option } from "commander";
import type { CollectEvent } from "../collect/hour_collector.ts";
import {
  type Config,
  configFromEnv,
  ENV_VARS,
  resolveConfig,
  type ResolvedConfig,
} from "../config.ts";
import { DirectorySink } from "../deliver/directory_sink.ts";
import { StateStore } from "../package/state_store.ts";
import { BRIDGE_VERSION, runCollect } from "../service/collect_job.ts";
import { recordingFetch, replayFetch } from "../thanos/recording.ts";
import { ThanosClient } from "../thanos/thanos_client.ts";
import { formatSummary } from "./summary.ts";

/** Where the CLI writes; injectable for tests. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  stderrIsTerminal: boolean;
  env: Readonly<Record<string, string | undefined>>;
  now: () => Date;
}

const encoder = new TextEncoder();

/** The process's real streams and environment. */
export function processIo(): CliIo {
  return {
    stdout: (t) => void Deno.stdout.writeSync(encoder.encode(t)),
    stderr: (t) => void Deno.stderr.writeSync(encoder.encode(t)),
    stderrIsTerminal: Deno.stderr.isTerminal(),
    env: Deno.env.toObject(),
    now: () => new Date(),
  };
}

/** A usage or configuration problem: exit code 2. */
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

async function readSecretFile(flag: string, path: string | null): Promise<string | undefined> {
  if (path === null) return undefined;
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new UsageError(`${flag} ${path}: cannot read the file (${reason})`);
  }
}

async function collect(config: ResolvedConfig, io: CliIo): Promise<number> {
  const token = (await readSecretFile("--token-file", config.tokenFile))?.trim();
  if (config.tokenFile && !token) throw new UsageError(`--token-file ${config.tokenFile} is empty`);
  const caCert = await readSecretFile("--ca-file", config.caFile);
  const clientCert = await readSecretFile("--cert-file", config.certFile);
  const clientKey = await readSecretFile("--key-file", config.keyFile);

  const transport = config.replay
    ? replayFetch(config.replay)
    : config.record
    ? recordingFetch(config.record)
    : undefined;
  const client = new ThanosClient({
    url: config.thanosUrl ?? "http://replay.invalid",
    timeoutMs: config.timeoutMs,
    maxAttempts: config.maxAttempts,
    concurrency: config.concurrency,
    headers: { ...config.headers },
    ...(token ? { token } : {}),
    ...(caCert ? { caCert } : {}),
    ...(clientCert ? { clientCert } : {}),
    ...(clientKey ? { clientKey } : {}),
    ...(transport ? { fetch: transport } : {}),
  });
  const progress = io.stderrIsTerminal && !config.json;
  let done = 0;
  const onEvent = progress
    ? (e: CollectEvent) => {
      done++;
      const what = e.type === "hour-done" ? (e.noData ? "no data" : "ok") : "FAILED";
      const hour = String(e.hour).padStart(2, "0");
      io.stderr(`\r\x1b[K[${done} hours] ${e.clusterId} ${e.day} ${hour}:00 ${what}`);
    }
    : undefined;
  try {
    const summary = await runCollect(config, {
      client,
      store: new StateStore(config.stateDir),
      sink: new DirectorySink(config.out),
      now: io.now,
      clientStats: () => ({ queries: client.stats.queries, bytes: client.stats.bytes }),
      ...(onEvent ? { onEvent } : {}),
    });
    if (progress) io.stderr("\r\x1b[K");
    if (config.json) io.stdout(JSON.stringify(summary, null, 2) + "\n");
    else io.stdout(formatSummary(summary));
    return summary.ok ? 0 : 1;
  } finally {
    client.close();
  }
}

function buildProgram(io: CliIo, run: (config: Config) => Promise<void>): Command {
  const program = new Command()
    .name("thanos-bridge")
    .description(
      "Builds koku-metrics-operator (CMMO) cost reports for many clusters from one Thanos Query.",
    )
    .version(BRIDGE_VERSION)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  const env = (key: keyof Config) => ` [env ${ENV_VARS[key]}]`;
  program
    .command("collect")
    .description(
      "Collect closed hours of one UTC day per cluster and write the cumulative day payloads.",
    )
    .addOption(
      new Option("--thanos-url <url>", "Thanos Query (or Prometheus) base URL" + env("thanosUrl")),
    )
    .addOption(
      new Option(
        "--cluster <id>",
        "cluster id to collect; repeat or comma-separate" + env("clusters"),
      )
        .argParser(collectList),
    )
    .addOption(
      new Option(
        "--day <YYYY-MM-DD>",
        "UTC day (default: day of the newest ready hour)" + env("day"),
      ),
    )
    .addOption(
      new Option(
        "--until <HH>",
        "last hour included, 0-23 (default: newest ready hour)" + env("until"),
      ),
    )
    .addOption(new Option("--out <dir>", "folder the payloads are written to" + env("out")))
    .addOption(new Option("--org-id <id>", "koku org_id of the clusters" + env("orgId")))
    .addOption(
      new Option(
        "--cluster-label <name>",
        "label carrying the cluster id (default clusterID)" + env("clusterLabel"),
      ),
    )
    .addOption(
      new Option(
        "--rate-window <duration>",
        "range window of rate()/*_over_time() (default 15m)" + env("rateWindow"),
      ),
    )
    .addOption(
      new Option(
        "--concurrency <n>",
        "queries in flight across all clusters (default 4)" + env("concurrency"),
      ),
    )
    .addOption(
      new Option("--timeout <duration>", "per-query timeout (default 120s)" + env("timeout")),
    )
    .addOption(
      new Option(
        "--retries <n>",
        "attempts per query, first included (default 5)" + env("retries"),
      ),
    )
    .addOption(new Option("--token-file <file>", "bearer token file for Thanos" + env("tokenFile")))
    .addOption(new Option("--ca-file <file>", "PEM CA bundle to verify Thanos" + env("caFile")))
    .addOption(new Option("--cert-file <file>", "PEM client certificate (mTLS)" + env("certFile")))
    .addOption(new Option("--key-file <file>", "PEM client key (mTLS)" + env("keyFile")))
    .addOption(
      new Option(
        "--header <header>",
        'extra request header "Name: value"; repeatable' + env("headers"),
      )
        .argParser(repeatable),
    )
    .addOption(
      new Option(
        "--state <dir>",
        "state folder with hour fragments (default: OS cache)" + env("state"),
      ),
    )
    .addOption(
      new Option(
        "--reduce <mode>",
        "server: *_over_time on Thanos; client: 60 points here" + env("reduce"),
      )
        .choices(["server", "client"]),
    )
    .addOption(
      new Option(
        "--batch-hours <n>",
        "server mode: hours per query (default 6)" + env("batchHours"),
      ),
    )
    .addOption(
      new Option(
        "--settle-delay <duration>",
        "wait after an hour closes (default 10m)" + env("settleDelay"),
      ),
    )
    .addOption(
      new Option(
        "--recollect",
        "query hours again even if they are in the state" + env("recollect"),
      ),
    )
    .addOption(new Option("--record <dir>", "store every query and answer in DIR" + env("record")))
    .addOption(
      new Option("--replay <dir>", "answer queries from a recording (no network)" + env("replay")),
    )
    .addOption(
      new Option(
        "--manifest-version <s>",
        "manifest version (default: CMMO v4.4.1 commit)" + env("manifestVersion"),
      ),
    )
    .addOption(
      new Option(
        "--max-size-mb <n>",
        "split payloads at this size, 1-100 (default 100)" + env("maxSizeMb"),
      ),
    )
    .addOption(
      new Option("--json", "print the summary as one JSON document on stdout" + env("json")),
    )
    .action(async (opts: Record<string, unknown>) => {
      const fromFlags: Config = {};
      const map: Record<string, keyof Config> = { cluster: "clusters", header: "headers" };
      for (const [k, v] of Object.entries(opts)) {
        if (v !== undefined) (fromFlags as Record<string, unknown>)[map[k] ?? k] = v;
      }
      await run({ ...configFromEnv(io.env), ...fromFlags });
    });
  return program;
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
  const program = buildProgram(io, async (raw) => {
    let config: ResolvedConfig;
    try {
      config = resolveConfig(raw, { now: io.now(), cacheDir: defaultCacheDir(io.env) });
    } catch (error) {
      throw new UsageError(error instanceof Error ? error.message : String(error));
    }
    code = await collect(config, io);
  });
  try {
    await program.parseAsync([...args], { from: "user" });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof UsageError) {
      io.stderr(`thanos-bridge: ${error.message}\n`);
      return 2;
    }
    io.stderr(`thanos-bridge: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exitCode = await main(Deno.args);
}
