/**
 * A real Prometheus for tests: backfill OpenMetrics files with `promtool`,
 * start `/usr/bin/prometheus` on a free loopback port over that data, stop it
 * by PID. Also {@linkcode prepareHub}, which does model → files → TSDB.
 *
 * @module
 */

import { buildHub, type Hub, type HubOptions } from "./model.ts";
import { type OpenMetricsOptions, writeOpenMetrics } from "./openmetrics.ts";

/** Paths of the Prometheus binaries (Debian's `prometheus` package by default). */
export interface PrometheusBinaries {
  promtool?: string;
  prometheus?: string;
}

const DEFAULT_PROMTOOL = "/usr/bin/promtool";
const DEFAULT_PROMETHEUS = "/usr/bin/prometheus";

/** What {@linkcode backfill} wrote, summed from promtool's block table. */
export interface BackfillSummary {
  readonly blocks: number;
  readonly samples: number;
}

/**
 * Backfills `files` into the TSDB directory `dataDir`, one
 * `promtool tsdb create-blocks-from --max-block-duration=24h openmetrics F DIR`
 * per file. Throws an `Error` with promtool's output in `cause` on failure.
 *
 * @example
 * ```ts ignore
 * import { backfill } from "./prometheus.ts";
 * const { samples } = await backfill(["/tmp/om/metrics-000.om"], "/tmp/data");
 * ```
 */
export async function backfill(
  files: readonly string[],
  dataDir: string,
  binaries: PrometheusBinaries = {},
): Promise<BackfillSummary> {
  await Deno.mkdir(dataDir, { recursive: true });
  const promtool = binaries.promtool ?? DEFAULT_PROMTOOL;
  let blocks = 0;
  let samples = 0;
  for (const file of files) {
    const result = await new Deno.Command(promtool, {
      args: [
        "tsdb",
        "create-blocks-from",
        "--max-block-duration=24h",
        "openmetrics",
        file,
        dataDir,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!result.success) {
      const decoder = new TextDecoder();
      throw new Error(`promtool failed to backfill "${file}" (exit code ${result.code})`, {
        cause: {
          file,
          dataDir,
          stdout: decoder.decode(result.stdout).slice(-4000),
          stderr: decoder.decode(result.stderr).slice(-4000),
        },
      });
    }
    // Block table rows: ULID, min time, max time, duration, samples, chunks, series, size.
    for (const line of new TextDecoder().decode(result.stdout).split("\n")) {
      const cols = line.trim().split(/\s+/);
      if (cols.length >= 8 && /^[0-9A-Z]{26}$/.test(cols[0] ?? "")) {
        blocks++;
        samples += Number(cols[4]);
      }
    }
  }
  return { blocks, samples };
}

/** A running Prometheus started by {@linkcode startPrometheus}. */
export interface PrometheusServer extends AsyncDisposable {
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  readonly url: string;
  readonly pid: number;
  /** Path of the process log. */
  readonly logFile: string;
  /** SIGTERM, SIGKILL after a timeout, then waits for the exit. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startPrometheus}. */
export interface StartPrometheusOptions {
  /** TSDB directory (the backfilled data); config and log files are written here too. */
  dataDir: string;
  /** Binary path; default `/usr/bin/prometheus`. */
  binary?: string;
  /** How long to wait for `/-/ready`; default 30 s. */
  readyTimeoutMs?: number;
  /** How long to wait after SIGTERM before SIGKILL; default 5 s. */
  stopTimeoutMs?: number;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Starts Prometheus over `dataDir` on `127.0.0.1:<free port>` with no scrape
 * targets and a 100-year retention, and waits until `/-/ready` answers.
 *
 * @example
 * ```ts ignore
 * import { startPrometheus } from "./prometheus.ts";
 * await using prom = await startPrometheus({ dataDir: "/tmp/data" });
 * await fetch(`${prom.url}/api/v1/query?query=up`);
 * ```
 */
export async function startPrometheus(options: StartPrometheusOptions): Promise<PrometheusServer> {
  const { dataDir } = options;
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 5_000;
  await Deno.mkdir(dataDir, { recursive: true });
  const configFile = `${dataDir}/prometheus.yml`;
  await Deno.writeTextFile(configFile, "global:\n  scrape_interval: 1m\nscrape_configs: []\n");
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = freePort();
    const logFile = `${dataDir}/prometheus-${port}.log`;
    const log = await Deno.open(logFile, { write: true, create: true, truncate: true });
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(options.binary ?? DEFAULT_PROMETHEUS, {
        args: [
          `--config.file=${configFile}`,
          `--storage.tsdb.path=${dataDir}`,
          "--storage.tsdb.retention.time=100y",
          `--web.listen-address=127.0.0.1:${port}`,
          "--log.level=info",
        ],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      log.close();
      throw new Error(`Cannot start Prometheus "${options.binary ?? DEFAULT_PROMETHEUS}"`, {
        cause: err,
      });
    }
    const logDone = child.stderr.pipeTo(log.writable).catch(() => {});
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    const url = `http://127.0.0.1:${port}`;
    let stopped: Promise<void> | null = null;
    const stop = (): Promise<void> => {
      stopped ??= (async () => {
        if (!exited) {
          try {
            child.kill("SIGTERM");
          } catch { /* already gone */ }
          let timer: ReturnType<typeof setTimeout> | undefined;
          const timeout = new Promise<"timeout">((resolve) => {
            timer = setTimeout(() => resolve("timeout"), stopTimeoutMs);
          });
          const outcome = await Promise.race([status.then(() => "exited" as const), timeout]);
          clearTimeout(timer);
          if (outcome === "timeout") {
            try {
              child.kill("SIGKILL");
            } catch { /* already gone */ }
          }
        }
        await status;
        await logDone;
      })();
      return stopped;
    };
    const deadline = Date.now() + readyTimeoutMs;
    let ready = false;
    while (!exited && Date.now() < deadline) {
      try {
        const res = await fetch(`${url}/-/ready`);
        await res.body?.cancel();
        if (res.ok) {
          ready = true;
          break;
        }
      } catch { /* not listening yet */ }
      await delay(50);
    }
    if (ready) {
      return { url, pid: child.pid, logFile, stop, [Symbol.asyncDispose]: stop };
    }
    const exitedEarly = exited;
    await stop();
    const tail = (await Deno.readTextFile(logFile)).slice(-2000);
    lastError = new Error(
      exitedEarly
        ? `Prometheus exited before it became ready on port ${port}`
        : `Prometheus was not ready on port ${port} within ${readyTimeoutMs} ms`,
      { cause: { logFile, tail } },
    );
    if (!exitedEarly || !/address already in use/.test(tail)) break;
  }
  throw lastError;
}

/** Options of {@linkcode prepareHub}. */
export interface PrepareHubOptions extends OpenMetricsOptions, PrometheusBinaries {
  /** Keep the OpenMetrics files in `workDir/openmetrics` (default: delete after backfill). */
  keepOpenMetrics?: boolean;
}

/**
 * Builds the hub, writes it as OpenMetrics into `workDir/openmetrics`,
 * backfills `workDir/data` and returns the model and the TSDB directory.
 *
 * @example
 * ```ts ignore
 * import { defaultTestHub } from "./model.ts";
 * import { prepareHub, startPrometheus } from "./prometheus.ts";
 * const { hub, dataDir } = await prepareHub(defaultTestHub(), "/tmp/synth");
 * await using prom = await startPrometheus({ dataDir });
 * ```
 */
export async function prepareHub(
  options: HubOptions,
  workDir: string,
  prepare: PrepareHubOptions = {},
): Promise<{ hub: Hub; dataDir: string }> {
  const hub = buildHub(options);
  const omDir = `${workDir}/openmetrics`;
  const dataDir = `${workDir}/data`;
  const files = await writeOpenMetrics(hub, omDir, prepare);
  await backfill(files, dataDir, prepare);
  if (!prepare.keepOpenMetrics) await Deno.remove(omDir, { recursive: true });
  return { hub, dataDir };
}
