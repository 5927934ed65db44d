/**
 * Runs `thanos-bridge collect --json` as a `deno run` subprocess with the
 * permission flags of `deno task compile`, samples its memory and CPU from
 * `/proc` while it runs, and returns its summary.
 *
 * @module
 */

import type { RunSummary as CollectSummary } from "../src/service/collect_job.ts";
import { RUNTIME_FLAGS } from "../src/cli/runtime_flags.ts";
import { ProcessMonitor, type ProcessUsage } from "./process_monitor.ts";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;

/** The flags of `deno task compile` (permissions and V8 memory settings): the binary gets exactly these. */
export const COMPILE_PERMISSIONS: readonly string[] = RUNTIME_FLAGS;

/** One `collect` run. */
export interface CollectRunOptions {
  readonly url: string;
  readonly clusterId: string;
  /** All the clusters of the run (`--cluster a,b,…`); default `[clusterId]`. */
  readonly clusterIds?: readonly string[];
  /** UTC day, `YYYY-MM-DD`. */
  readonly day: string;
  /** Last hour (`--until`). */
  readonly until: number;
  /**
   * Hours to collect instead of `day` and `until`: `--from` and `--to`
   * (`YYYY-MM-DDTHH`, both included).
   */
  readonly hours?: { readonly from: string; readonly to: string };
  /** More `collect` flags, after the others (e.g. `--cluster-batch 1`, `--no-skip-empty`). */
  readonly extraArgs?: readonly string[];
  /** `--reduce`. */
  readonly mode: "server" | "client" | "local";
  /** Fresh `--state` folder. */
  readonly stateDir: string;
  /** Fresh `--out` folder. */
  readonly outDir: string;
  /** `--record DIR`, for the (untimed) recording run. */
  readonly recordDir?: string;
  /** Collect the ROS reports too (default true, the CLI's default); false adds `--no-ros`. */
  readonly ros?: boolean;
  /** Sampling interval of `/proc` in ms (default 20). */
  readonly sampleMs?: number;
  /** Kills the child. */
  readonly signal?: AbortSignal;
}

/** What one run gave. */
export interface CollectRunResult {
  readonly summary: CollectSummary;
  /** Rows of all reports of all clusters. */
  readonly rows: number;
  /** Spawn to exit, in ms (includes Deno's start-up and module loading). */
  readonly processMs: number;
  /** Memory and CPU of the child. */
  readonly usage: ProcessUsage;
  readonly args: readonly string[];
}

/**
 * The `deno` arguments of a run (without the executable).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { collectArgs } from "./collect_run.ts";
 *
 * const args = collectArgs({
 *   url: "http://127.0.0.1:9090", clusterId: "c1", day: "2026-11-01", until: 23,
 *   mode: "server", stateDir: "/tmp/s", outDir: "/tmp/o",
 * });
 * assert.equal(args[0], "run");
 * assert.deepEqual(args.slice(-3), ["--out", "/tmp/o", "--json"]);
 * ```
 *
 * @example Several clusters, an hour range and extra flags
 * ```ts
 * import assert from "node:assert/strict";
 * import { collectArgs } from "./collect_run.ts";
 *
 * const args = collectArgs({
 *   url: "http://127.0.0.1:9090", clusterId: "a", clusterIds: ["a", "b"], day: "2026-11-01",
 *   until: 23, hours: { from: "2026-11-01T07", to: "2026-11-01T07" }, mode: "server",
 *   stateDir: "/tmp/s", outDir: "/tmp/o", extraArgs: ["--cluster-batch", "1"],
 * });
 * assert.equal(args[args.indexOf("--cluster") + 1], "a,b");
 * assert.equal(args.includes("--day"), false);
 * assert.equal(args[args.indexOf("--from") + 1], "2026-11-01T07");
 * assert.deepEqual(args.slice(-3), ["--json", "--cluster-batch", "1"]);
 * ```
 */
export function collectArgs(options: CollectRunOptions): string[] {
  return [
    "run",
    ...COMPILE_PERMISSIONS,
    MAIN,
    "collect",
    "--thanos-url",
    options.url,
    "--cluster",
    (options.clusterIds ?? [options.clusterId]).join(","),
    ...(options.hours === undefined
      ? ["--day", options.day, "--until", String(options.until)]
      : ["--from", options.hours.from, "--to", options.hours.to]),
    "--reduce",
    options.mode,
    ...(options.recordDir === undefined ? [] : ["--record", options.recordDir]),
    ...(options.ros === false ? ["--no-ros"] : []),
    "--state",
    options.stateDir,
    "--out",
    options.outDir,
    "--json",
    ...(options.extraArgs ?? []),
  ];
}

/**
 * Parses and checks the `--json` summary of `collect`. Throws a
 * `SyntaxError` for text that is not JSON and a `TypeError` for JSON that
 * lacks the figures the bench reads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSummary } from "./collect_run.ts";
 *
 * const s = parseSummary(JSON.stringify({
 *   day: "2026-11-01", lastHour: 0, mode: "server", queries: 3, bytesDownloaded: 10, ms: 5,
 *   ok: true, clusters: [{ clusterId: "c", days: [{ rows: { pod: 2, node: 1 } }] }],
 * }));
 * assert.equal(s.queries, 3);
 * ```
 */
export function parseSummary(text: string): CollectSummary {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SyntaxError(`collect --json printed no JSON summary: ${text.slice(0, 200)}`, {
      cause: error,
    });
  }
  const s = value as Partial<CollectSummary> | null;
  const numbers = ["queries", "bytesDownloaded", "ms"] as const;
  const isObject = (v: unknown) => v !== null && typeof v === "object";
  if (
    s === null || typeof s !== "object" || numbers.some((k) => typeof s[k] !== "number") ||
    typeof s.ok !== "boolean" || !Array.isArray(s.clusters) ||
    s.clusters.some((c: unknown) => {
      const days = isObject(c) ? (c as { days?: unknown }).days : undefined;
      return !Array.isArray(days) ||
        days.some((d: unknown) => !isObject(d) || !isObject((d as { rows?: unknown }).rows));
    })
  ) {
    throw new TypeError(
      `Unexpected collect summary (need queries, bytesDownloaded, ms, ok, clusters[].days[].rows): ${
        text.slice(0, 200)
      }`,
    );
  }
  return s as CollectSummary;
}

/**
 * Rows of every report of every cluster-day of a summary.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSummary, summaryRows } from "./collect_run.ts";
 *
 * const s = parseSummary(JSON.stringify({
 *   queries: 1, bytesDownloaded: 1, ms: 1, ok: true,
 *   clusters: [{ days: [{ rows: { pod: 2, node: 1 } }] }, { days: [{ rows: { pod: 4 } }] }],
 * }));
 * assert.equal(summaryRows(s), 7);
 * ```
 */
export function summaryRows(summary: CollectSummary): number {
  let rows = 0;
  for (const c of summary.clusters) {
    for (const d of c.days) {
      for (const n of Object.values(d.rows)) rows += n ?? 0;
    }
  }
  return rows;
}

async function readAll(stream: ReadableStream<Uint8Array>, limit: number): Promise<string> {
  // The summary is small; stderr is kept to its last `limit` characters.
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    if (text.length > 2 * limit) text = text.slice(-limit);
  }
  return text.length > limit ? text.slice(-limit) : text;
}

/**
 * Spawns one `collect` run, samples it until it exits and returns its figures.
 * Throws an `Error` (stderr's tail in `cause`) unless it exits with 0 and
 * reports `ok`.
 *
 * @example
 * ```ts ignore
 * import { runCollectProcess } from "./collect_run.ts";
 * const run = await runCollectProcess({
 *   url, clusterId, day: "2026-11-01", until: 23, mode: "server",
 *   stateDir: "/tmp/s", outDir: "/tmp/o",
 * });
 * console.log(run.summary.ms, run.usage.peakRssBytes);
 * ```
 */
export async function runCollectProcess(options: CollectRunOptions): Promise<CollectRunResult> {
  options.signal?.throwIfAborted();
  const args = collectArgs(options);
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const monitor = new ProcessMonitor(child.pid, { intervalMs: options.sampleMs ?? 20 });
  const kill = () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
  };
  options.signal?.addEventListener("abort", kill, { once: true });
  try {
    const [stdout, stderr, status] = await Promise.all([
      readAll(child.stdout, 1_000_000),
      readAll(child.stderr, 8_000),
      child.status,
    ]);
    const processMs = performance.now() - started;
    const usage = await monitor.stop();
    options.signal?.throwIfAborted();
    if (status.code !== 0) {
      throw new Error(`collect (${options.mode}) exited with code ${status.code}`, {
        cause: { args, stderr, stdout: stdout.slice(0, 2000) },
      });
    }
    const summary = parseSummary(stdout);
    if (!summary.ok) {
      throw new Error(`collect (${options.mode}) reported a partial failure`, {
        cause: { args, stderr, summary },
      });
    }
    return { summary, rows: summaryRows(summary), processMs, usage, args };
  } finally {
    options.signal?.removeEventListener("abort", kill);
    await monitor.stop();
  }
}
