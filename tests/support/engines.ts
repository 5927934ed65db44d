/**
 * The query engines users actually run, on loopback, over a copy of a
 * synthetic hub's TSDB (tools/synth/prometheus.ts `prepareHub`):
 *
 * - {@linkcode startPrometheus3}: Prometheus 3.16 (built by
 *   `.ci/install_prometheus3.sh`) on its own copy of the TSDB (Prometheus 3
 *   rewrites what it opens);
 * - {@linkcode startThanosQuery}: a real Thanos Query 0.42.5 (built by
 *   `.ci/install_thanos.sh`): Debian's Prometheus 2.42 on another copy with
 *   `external_labels: {replica: "r0"}` (the sidecar refuses to start without
 *   external labels), `thanos sidecar` in front of it, and one
 *   `thanos query --endpoint=<sidecar gRPC> --query.replica-label=replica` per
 *   requested PromQL engine (`prometheus`, the default, and/or `thanos`).
 *
 * Every process listens on free loopback ports, logs into its temp folder and
 * is stopped by PID (SIGKILL); `stop()` then removes the folder. Start-up
 * waits until the server answers an instant query at `probeTime` with data.
 * A missing binary makes the install script build it (minutes) or fail: the
 * tests then fail, they are never skipped.
 *
 * @module
 */

import { join } from "node:path";
import { freePort, processStopper, runInstallScript } from "./kafka.ts";

/** One query endpoint (Prometheus HTTP API) under test. */
export interface EngineEndpoint {
  /** Short name for messages, e.g. `prometheus-3.16`, `thanos-query`, `thanos-query/engine=thanos`. */
  readonly name: string;
  /** Base URL, e.g. `http://127.0.0.1:40123`, for `--thanos-url`. */
  readonly url: string;
}

/** Running servers started by {@linkcode startPrometheus3} or {@linkcode startThanosQuery}. */
export interface EngineGroup {
  readonly endpoints: readonly EngineEndpoint[];
  /** Temp folder holding the TSDB copy, configuration and logs. */
  readonly dir: string;
  /** PIDs of every process of the group. */
  readonly pids: readonly number[];
  /** Kills every process by PID (SIGKILL, last started first) and removes {@linkcode dir}. Idempotent. */
  stop(): Promise<void>;
}

/** Options shared by both starters. */
export interface StartEngineOptions {
  /** The hub's TSDB (`prepareHub(...).dataDir`); copied, never opened in place. */
  sourceDataDir: string;
  /** A moment that has data: readiness means `count({__name__=~".+"})` at this time answers. */
  probeTime: Date;
  /** Milliseconds to wait for each server to be ready (default 60 000). */
  readyTimeoutMs?: number;
}

/** Options of {@linkcode startThanosQuery}. */
export interface StartThanosOptions extends StartEngineOptions {
  /** One `thanos query` per engine, in this order (default `["prometheus"]`). */
  engines?: readonly ("prometheus" | "thanos")[];
}

const DEBIAN_PROMETHEUS = "/usr/bin/prometheus";

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Free loopback ports, none handed out twice within one group. */
function portPicker(): () => number {
  const taken = new Set<number>();
  return () => {
    let port = freePort();
    while (taken.has(port)) port = freePort();
    taken.add(port);
    return port;
  };
}

/** The processes of one group and its folder; `stop()` kills them in reverse order. */
class Group {
  readonly children: { name: string; child: Deno.ChildProcess; log: string; exited: boolean }[] =
    [];
  readonly stops: (() => Promise<void>)[] = [];
  constructor(readonly dir: string) {}

  /** Starts `binary args`, stderr and stdout appended to `<dir>/<name>.log`. */
  async spawn(name: string, binary: string, args: string[]): Promise<void> {
    const log = join(this.dir, `${name}.log`);
    const file = await Deno.open(log, { write: true, create: true, append: true });
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(binary, {
        args,
        cwd: this.dir,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      file.close();
      throw new Error(`cannot start ${name} (${binary})`, { cause: e });
    }
    const entry = { name, child, log, exited: false };
    child.status.then(() => entry.exited = true);
    const piped = child.stderr.pipeTo(file.writable).catch(() => {});
    this.children.push(entry);
    const kill = processStopper(() => child, []);
    this.stops.push(async () => {
      await kill();
      await piped;
    });
  }

  /** Polls `ok()` until true; throws with the log tail when the last process exits or time runs out. */
  async waitFor(what: string, timeoutMs: number, ok: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const last = this.children.at(-1)!;
    for (;;) {
      if (await ok().catch(() => false)) return;
      const dead = this.children.find((c) => c.exited);
      if (dead !== undefined || Date.now() > deadline) {
        const culprit = dead ?? last;
        const tail = (await Deno.readTextFile(culprit.log).catch(() => "")).slice(-3000);
        throw new Error(
          dead
            ? `${dead.name} exited while waiting for ${what}:\n${tail}`
            : `${what} not ready within ${timeoutMs} ms; ${culprit.name} log:\n${tail}`,
        );
      }
      await delay(100);
    }
  }

  readonly stop = (() => {
    let done: Promise<void> | null = null;
    return (): Promise<void> =>
      done ??= (async () => {
        for (const s of [...this.stops].reverse()) await s();
        await Deno.remove(this.dir, { recursive: true }).catch(() => {});
      })();
  })();

  toGroup(endpoints: EngineEndpoint[]): EngineGroup {
    return {
      endpoints,
      dir: this.dir,
      pids: this.children.map((c) => c.child.pid),
      stop: this.stop,
    };
  }
}

async function copyTsdb(from: string, to: string): Promise<void> {
  const out = await new Deno.Command("cp", {
    args: ["-R", from, to],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`cp -R ${from} ${to} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Whether `GET /-/ready` answers 200. */
async function httpReady(base: string): Promise<boolean> {
  const res = await fetch(`${base}/-/ready`);
  await res.body?.cancel();
  return res.ok;
}

/** Whether an instant query at `time` returns at least one sample. */
async function answersWithData(base: string, time: Date): Promise<boolean> {
  const body = new URLSearchParams({
    query: 'count({__name__=~".+"})',
    time: String(time.getTime() / 1000),
  });
  const res = await fetch(`${base}/api/v1/query`, { method: "POST", body });
  if (!res.ok) {
    await res.body?.cancel();
    return false;
  }
  const json = await res.json() as { status?: string; data?: { result?: unknown[] } };
  return json.status === "success" && (json.data?.result?.length ?? 0) > 0;
}

/** A Prometheus configuration without scrape targets, with optional external labels. */
async function writePrometheusConfig(
  path: string,
  externalLabels: Record<string, string>,
): Promise<void> {
  const labels = Object.entries(externalLabels).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`)
    .join("");
  await Deno.writeTextFile(
    path,
    `global:\n  scrape_interval: 1m\n${
      labels === "" ? "" : `  external_labels:\n${labels}`
    }scrape_configs: []\n`,
  );
}

function prometheusArgs(dir: string, data: string, port: number): string[] {
  return [
    `--config.file=${join(dir, "prometheus.yml")}`,
    `--storage.tsdb.path=${data}`,
    "--storage.tsdb.retention.time=100y",
    `--web.listen-address=127.0.0.1:${port}`,
    "--log.level=info",
  ];
}

/**
 * Prometheus 3.16 on its own copy of `sourceDataDir`, ready when it answers a
 * query at `probeTime` with data.
 *
 * @example
 * ```ts ignore
 * import { startPrometheus3 } from "./engines.ts";
 * const p3 = await startPrometheus3({ sourceDataDir: "/tmp/hub/data", probeTime: new Date() });
 * try {
 *   p3.endpoints[0]!.url; // "http://127.0.0.1:<port>"
 * } finally {
 *   await p3.stop();
 * }
 * ```
 */
export async function startPrometheus3(options: StartEngineOptions): Promise<EngineGroup> {
  const binary = await runInstallScript("install_prometheus3.sh");
  const group = new Group(await Deno.makeTempDir({ prefix: "thanos-bridge-prom3-" }));
  try {
    const data = join(group.dir, "data");
    await copyTsdb(options.sourceDataDir, data);
    await writePrometheusConfig(join(group.dir, "prometheus.yml"), {});
    const port = portPicker()();
    const url = `http://127.0.0.1:${port}`;
    await group.spawn("prometheus3", binary, prometheusArgs(group.dir, data, port));
    await group.waitFor(
      "Prometheus 3",
      options.readyTimeoutMs ?? 60_000,
      () => answersWithData(url, options.probeTime),
    );
    return group.toGroup([{ name: "prometheus-3.16", url }]);
  } catch (e) {
    await group.stop();
    throw e;
  }
}

/**
 * A real Thanos Query: Debian's Prometheus 2.42 on a copy of `sourceDataDir`
 * with `external_labels: {replica: "r0"}`, a `thanos sidecar` in front of it
 * (no object store: queries only) and one `thanos query` per engine, each
 * ready when it answers a query at `probeTime` with data.
 *
 * @example
 * ```ts ignore
 * import { startThanosQuery } from "./engines.ts";
 * const thanos = await startThanosQuery({
 *   sourceDataDir: "/tmp/hub/data",
 *   probeTime: new Date("2026-11-01T12:00:00Z"),
 *   engines: ["prometheus", "thanos"],
 * });
 * try {
 *   thanos.endpoints.map((e) => e.name); // ["thanos-query", "thanos-query/engine=thanos"]
 * } finally {
 *   await thanos.stop();
 * }
 * ```
 */
export async function startThanosQuery(options: StartThanosOptions): Promise<EngineGroup> {
  const thanos = await runInstallScript("install_thanos.sh");
  const timeout = options.readyTimeoutMs ?? 60_000;
  const group = new Group(await Deno.makeTempDir({ prefix: "thanos-bridge-thanos-" }));
  try {
    const port = portPicker();
    const data = join(group.dir, "data");
    await copyTsdb(options.sourceDataDir, data);
    await writePrometheusConfig(join(group.dir, "prometheus.yml"), { replica: "r0" });
    const promPort = port();
    const promUrl = `http://127.0.0.1:${promPort}`;
    await group.spawn("prometheus", DEBIAN_PROMETHEUS, prometheusArgs(group.dir, data, promPort));
    await group.waitFor("Prometheus 2.42", timeout, () => httpReady(promUrl));

    const sidecarGrpc = port(), sidecarHttp = port();
    await group.spawn("sidecar", thanos, [
      "sidecar",
      `--prometheus.url=${promUrl}`,
      `--tsdb.path=${data}`,
      `--grpc-address=127.0.0.1:${sidecarGrpc}`,
      `--http-address=127.0.0.1:${sidecarHttp}`,
      "--log.level=info",
    ]);
    await group.waitFor(
      "thanos sidecar",
      timeout,
      () => httpReady(`http://127.0.0.1:${sidecarHttp}`),
    );

    const endpoints: EngineEndpoint[] = [];
    for (const engine of options.engines ?? ["prometheus"]) {
      const httpPort = port(), grpcPort = port();
      const url = `http://127.0.0.1:${httpPort}`;
      const name = engine === "prometheus" ? "thanos-query" : `thanos-query/engine=${engine}`;
      await group.spawn(`query-${engine}`, thanos, [
        "query",
        `--endpoint=127.0.0.1:${sidecarGrpc}`,
        "--query.replica-label=replica",
        `--query.promql-engine=${engine}`,
        `--http-address=127.0.0.1:${httpPort}`,
        `--grpc-address=127.0.0.1:${grpcPort}`,
        "--log.level=info",
      ]);
      await group.waitFor(name, timeout, () => answersWithData(url, options.probeTime));
      endpoints.push({ name, url });
    }
    return group.toGroup(endpoints);
  } catch (e) {
    await group.stop();
    throw e;
  }
}
