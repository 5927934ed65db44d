/**
 * CLI: generate a synthetic ACM hub, backfill it into `OUT/data` and print
 * `{clusters, dataDir}` as JSON; with `--serve`, also start Prometheus on a
 * loopback port, print its URL in the same JSON and keep serving until
 * SIGINT/SIGTERM.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-run --allow-net=127.0.0.1 \
 *   tools/synth/main.ts --out /tmp/synth [--seed 1 --clusters 3 --nodes 4 --pods 16 \
 *   --pvcs 4 --vms 3 --gpu-pods 4 --gpu-clusters 1 --start 2026-10-31T22:00:00Z \
 *   --hours 28 --interval 300 --hostile --hours-per-file 24] \
 *   [--drop-metric 1:kube_pod_container_resource_requests]... [--serve]
 * ```
 *
 * Defaults are those of `defaultTestHub()`, except that `--hostile` must be given.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { defaultTestHub, type DropMetric, type HubOptions } from "./model.ts";
import { prepareHub, startPrometheus } from "./prometheus.ts";

/** Parsed command line of the synth CLI. */
export interface SynthCliOptions {
  readonly out: string;
  readonly hub: HubOptions;
  readonly hoursPerFile: number;
  readonly serve: boolean;
}

function integer(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n)) {
    throw new TypeError(`Invalid --${name} "${raw}": expected an integer`);
  }
  return n;
}

/** Parses `--drop-metric <cluster index>:<metric>`. */
function dropMetric(raw: string): DropMetric {
  const match = /^(\d+):([a-zA-Z_:][a-zA-Z0-9_:]*)$/.exec(raw.trim());
  if (!match) {
    throw new TypeError(
      `Invalid --drop-metric "${raw}": expected <cluster index>:<metric>, e.g. 1:kube_pod_labels`,
    );
  }
  return { clusterIndex: Number(match[1]), metric: match[2]! };
}

/**
 * Parses the CLI arguments (pure; throws `TypeError` on bad input).
 *
 * @example
 * ```ts
 * import { parseSynthArgs } from "./main.ts";
 * const o = parseSynthArgs(["--out", "/tmp/x", "--clusters", "2", "--hostile"]);
 * o.hub.clusters; // 2
 * o.hub.hostile; // true
 * ```
 */
export function parseSynthArgs(args: readonly string[]): SynthCliOptions {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: {
      out: { type: "string" },
      seed: { type: "string" },
      clusters: { type: "string" },
      nodes: { type: "string" },
      pods: { type: "string" },
      pvcs: { type: "string" },
      vms: { type: "string" },
      "gpu-pods": { type: "string" },
      "gpu-clusters": { type: "string" },
      start: { type: "string" },
      hours: { type: "string" },
      interval: { type: "string" },
      "hours-per-file": { type: "string" },
      hostile: { type: "boolean", default: false },
      "drop-metric": { type: "string", multiple: true },
      serve: { type: "boolean", default: false },
    },
  });
  if (!values.out) throw new TypeError("Missing --out DIR");
  const d = defaultTestHub();
  let start = d.start;
  if (values.start !== undefined) {
    start = new Date(values.start);
    if (Number.isNaN(start.getTime())) {
      throw new TypeError(`Invalid --start "${values.start}": expected an ISO date-time`);
    }
  }
  return {
    out: values.out,
    hub: {
      seed: integer("seed", values.seed, d.seed),
      clusters: integer("clusters", values.clusters, d.clusters),
      nodes: integer("nodes", values.nodes, d.nodes),
      pods: integer("pods", values.pods, d.pods),
      pvcs: integer("pvcs", values.pvcs, d.pvcs),
      vms: integer("vms", values.vms, d.vms),
      gpuPods: integer("gpu-pods", values["gpu-pods"], d.gpuPods),
      gpuClusters: integer("gpu-clusters", values["gpu-clusters"], d.gpuClusters ?? 1),
      start,
      hours: integer("hours", values.hours, d.hours),
      intervalSeconds: integer("interval", values.interval, d.intervalSeconds ?? 300),
      hostile: values.hostile,
      ...(values["drop-metric"] ? { dropMetrics: values["drop-metric"].map(dropMetric) } : {}),
    },
    hoursPerFile: integer("hours-per-file", values["hours-per-file"], 24),
    serve: values.serve,
  };
}

/**
 * Runs the CLI: generates and backfills, prints the JSON summary, and with
 * `--serve` keeps Prometheus running until `signal` aborts (or SIGINT/SIGTERM
 * when run as a program).
 *
 * @example
 * ```ts ignore
 * import { runSynth } from "./main.ts";
 * await runSynth(["--out", "/tmp/synth", "--clusters", "1"]);
 * ```
 */
export async function runSynth(
  args: readonly string[],
  signal?: AbortSignal,
  print: (line: string) => void = console.log,
): Promise<void> {
  const opts = parseSynthArgs(args);
  await Deno.mkdir(opts.out, { recursive: true });
  const { hub, dataDir } = await prepareHub(opts.hub, opts.out, {
    hoursPerFile: opts.hoursPerFile,
  });
  const summary = {
    clusters: hub.clusters.map((c) => ({
      id: c.id,
      name: c.name,
      phaseSeconds: c.phaseSeconds,
      scenario: c.scenario,
    })),
    dataDir,
    start: hub.start,
    hours: hub.hours,
    intervalSeconds: hub.intervalSeconds,
  };
  if (!opts.serve) {
    print(JSON.stringify(summary));
    return;
  }
  const prom = await startPrometheus({ dataDir });
  try {
    print(JSON.stringify({ ...summary, url: prom.url, pid: prom.pid }));
    await new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      signal?.addEventListener("abort", () => resolve(), { once: true });
    });
  } finally {
    await prom.stop();
  }
}

if (import.meta.main) {
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await runSynth(Deno.args, controller.signal);
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    Deno.exitCode = 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}
