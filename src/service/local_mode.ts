/**
 * Local mode's per-run settings (`--reduce local`): which engine semantics to
 * evaluate with, and whether the server's own `rate()` may differ from
 * Prometheus's near counter resets (Thanos), resolved once per run from the
 * settings and the server.
 *
 * @module
 */

import { SelfCheckRotation } from "../collect/self_check.ts";
import type { BridgeSettings } from "../config.ts";
import { ConfigError, HOUR_MS } from "../model.ts";
import {
  type BuildInfo,
  type EngineSemantics,
  fetchBuildInfo,
  probeSemantics,
  semanticsOf,
} from "../thanos/build_info.ts";
import type { ThanosClient } from "../thanos/thanos_client.ts";
import type { LocalRun } from "./collect_job.ts";

/** What {@linkcode resolveLocalRun} asks of the server. */
export type LocalModeServer = Pick<ThanosClient, "buildInfo" | "queryInstant">;

/**
 * Local mode's settings for one run. With `--engine-semantics auto` (the
 * default) the semantics come from the server's build info (Prometheus 2.x
 * and Thanos before 0.38: `prometheus2`; Prometheus 3 and Thanos from 0.38:
 * `prometheus3`) or, when its version says nothing (a build without version
 * flags), from a data-free probe query that counts the points of a window;
 * when neither tells, the run fails with a `config` error asking for
 * `--engine-semantics`. The server counts as counter-adjusting unless its
 * build info says Prometheus. The self-check rotation starts at the run's
 * hour, so consecutive runs check different queries.
 *
 * @example
 * ```ts ignore
 * import { resolveLocalRun } from "./local_mode.ts";
 * const local = await resolveLocalRun(settings, client, new Date(), signal);
 * local.semantics; // "prometheus3" behind Thanos 0.42
 * ```
 */
export async function resolveLocalRun(
  settings: Pick<BridgeSettings, "engineSemantics" | "lookbackMs" | "replay">,
  server: LocalModeServer,
  now: Date,
  signal?: AbortSignal,
): Promise<LocalRun> {
  let info: BuildInfo | null = null;
  if (settings.replay === null) info = await fetchBuildInfo(server, signal);
  const counterAdjusting = info?.server !== "prometheus";
  const rotation = new SelfCheckRotation(Math.floor(now.getTime() / HOUR_MS));
  const base = { lookbackMs: settings.lookbackMs, counterAdjusting, rotation };
  if (settings.engineSemantics !== "auto") {
    return {
      ...base,
      semantics: settings.engineSemantics,
      semanticsFrom: "--engine-semantics",
    };
  }
  const found: { semantics: EngineSemantics; reason: string } | null =
    (info ? semanticsOf(info) : null) ?? await probeSemantics(server, signal);
  if (found === null) {
    throw new ConfigError(
      "engineSemantics",
      "auto",
      `cannot tell the server's engine (build info version ${
        JSON.stringify(info?.version ?? null)
      }, and the window probe gave no answer): set --engine-semantics prometheus2 or prometheus3`,
    );
  }
  return { ...base, semantics: found.semantics, semanticsFrom: found.reason };
}
