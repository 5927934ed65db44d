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
import { BridgeError, ConfigError } from "../model.ts";
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
export type LocalModeServer = Pick<
  ThanosClient,
  "buildInfo" | "queryInstant" | "probeRemoteRead" | "externalLabels"
>;

/**
 * Local mode's settings for one run. With `--engine-semantics auto` (the
 * default) the semantics come from the server's build info (Prometheus 2.x
 * and Thanos before 0.38: `prometheus2`; Prometheus 3 and Thanos from 0.38:
 * `prometheus3`) or, when its version says nothing (a build without version
 * flags), from a data-free probe query that counts the points of a window;
 * when neither tells, the run fails with a `config` error asking for
 * `--engine-semantics`. The server counts as counter-adjusting unless its
 * build info says Prometheus. The build info is asked for in a replay too
 * (a recording keeps it). Each hour range's self-check is picked by a
 * `SelfCheckRotation`. Raw samples come by remote read or by instant queries
 * (see {@linkcode resolveRawRead}).
 *
 * @example
 * ```ts ignore
 * import { resolveLocalRun } from "./local_mode.ts";
 * const local = await resolveLocalRun(settings, client, signal);
 * local.semantics; // "prometheus3" behind Thanos 0.42
 * ```
 */
export async function resolveLocalRun(
  settings: Pick<
    BridgeSettings,
    "engineSemantics" | "lookbackMs" | "replay" | "record" | "rawRead"
  >,
  server: LocalModeServer,
  signal?: AbortSignal,
): Promise<LocalRun> {
  const info: BuildInfo | null = await fetchBuildInfo(server, signal);
  const counterAdjusting = info?.server !== "prometheus";
  const rotation = new SelfCheckRotation();
  const raw = await resolveRawRead(settings, info, server, signal);
  const base = {
    lookbackMs: settings.lookbackMs,
    counterAdjusting,
    rotation,
    remoteRead: raw.remoteRead,
    rawRead: raw.from,
  };
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

/**
 * How local mode fetches raw samples (`--raw-read`). `query`: instant queries
 * (a range selector each, JSON). `remote-read`: Prometheus's streamed remote
 * read, which must work (an empty read answered with streamed chunks, and the
 * external labels readable from `/api/v1/status/config`), else a `config`
 * error saying why. `auto` (the default): remote read when both of those work
 * and the server's build info does not say Thanos, else instant queries; never
 * with `--record` or `--replay` (recordings hold query answers). Thanos Query
 * has no remote read API.
 *
 * @example
 * ```ts ignore
 * import { resolveRawRead } from "./local_mode.ts";
 * const raw = await resolveRawRead(settings, info, client);
 * raw.from; // "remote read" against Prometheus
 * ```
 */
export async function resolveRawRead(
  settings: Pick<BridgeSettings, "replay" | "record" | "rawRead">,
  info: BuildInfo | null,
  server: Pick<LocalModeServer, "probeRemoteRead" | "externalLabels">,
  signal?: AbortSignal,
): Promise<{ remoteRead: { externalLabels: Record<string, string> } | null; from: string }> {
  const query = (why: string) => ({ remoteRead: null, from: `instant queries (${why})` });
  if (settings.rawRead === "query") return query("--raw-read query");
  if (settings.replay !== null || settings.record !== null) {
    return query("recording or replaying");
  }
  // Deliberately probed unless the build info says Thanos: a Prometheus built from source
  // (Prometheus 3.16 from its Go module in CI) reports no version, so "unknown" must be asked;
  // a server without remote read answers the probe with a 404 and keeps instant queries.
  if (settings.rawRead === "auto" && info?.server === "thanos") {
    return query("the server is Thanos Query, which has no remote read API");
  }
  const refused = await server.probeRemoteRead(signal);
  let externalLabels: Record<string, string> | null = null;
  let unread = "";
  if (refused === null) {
    try {
      externalLabels = await server.externalLabels(signal);
    } catch (error) {
      // As with the probe, a failure (e.g. a proxy's 403) is a reason; a cancellation is thrown.
      if (!(error instanceof BridgeError) || error.code === "cancelled") throw error;
      unread = `: ${error.message}`;
    }
  }
  if (refused === null && externalLabels !== null) {
    return { remoteRead: { externalLabels }, from: "remote read" };
  }
  const why = refused !== null
    ? `the server does not answer streamed remote reads: ${refused}`
    : `the server's external labels cannot be read from /api/v1/status/config${unread}`;
  if (settings.rawRead === "remote-read") throw new ConfigError("rawRead", "remote-read", why);
  return query(why);
}
