/**
 * `thanos-bridge serve`: wires the long-running sidecar around one
 * {@linkcode createBridge}: the run manager with its history, the cron
 * scheduler, the self-metrics, and the Hono HTTP API served with
 * `Deno.serve`. {@linkcode startService} returns once the API listens;
 * `shutdown()` stops accepting runs, aborts the active one through its
 * signal, waits up to the grace period, and closes everything.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { join } from "node:path";
import type { BridgeSettings, ServeSettings } from "../config.ts";
import { BRIDGE_VERSION } from "../model.ts";
import { createApi } from "./api.ts";
import { createMetrics } from "./metrics.ts";
import { RunHistory } from "./run_history.ts";
import { RunManager } from "./run_manager.ts";
import { createBridge, type SecretValues } from "./runtime.ts";
import { Scheduler } from "./scheduler.ts";

/** A running service. */
export interface RunningService {
  /** `http://host:port` it listens on. */
  readonly url: string;
  /** Stops gracefully (idempotent); resolves when everything is closed. */
  shutdown(reason: string): Promise<void>;
  /** Resolves when the service has stopped. */
  readonly finished: Promise<void>;
}

/** What the service needs from its host. */
export interface ServiceHost {
  readonly now: () => Date;
  readonly secrets?: SecretValues;
  /** The API token (from `--api-token-file` or `THANOS_BRIDGE_API_TOKEN`), or null. */
  readonly apiToken: string | null;
}

/**
 * Starts the service. Configuration errors (a `ConfigError`) are thrown before
 * anything listens.
 *
 * @example
 * ```ts ignore
 * import { startService } from "./serve.ts";
 * const service = await startService(settings, serve, { now: () => new Date(), apiToken: null });
 * await service.shutdown("SIGTERM");
 * ```
 */
export async function startService(
  settings: BridgeSettings,
  serve: ServeSettings,
  host: ServiceHost,
): Promise<RunningService> {
  const log = getLogger(["thanos-bridge", "serve"]);
  const metrics = createMetrics();
  const bridge = await createBridge(settings, {
    now: host.now,
    warn: (message) => log.warn("{message}", { message }),
    onQuery: (outcome) => metrics.onQuery(outcome),
    ...(host.secrets ? { secrets: host.secrets } : {}),
  });
  let manager: RunManager;
  let scheduler: Scheduler | null = null;
  try {
    const history = new RunHistory(join(settings.stateDir, "runs"), serve.runHistory);
    manager = new RunManager({ bridge, history, now: host.now, metrics });
    await manager.init();
    if (serve.schedule !== null) {
      scheduler = new Scheduler({ pattern: serve.schedule, service: manager });
    }
  } catch (error) {
    await bridge.close();
    throw error;
  }
  const app = createApi({
    service: manager,
    metrics,
    apiToken: host.apiToken,
    version: BRIDGE_VERSION,
  });
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname: serve.hostname,
    port: serve.port,
    onListen: (addr) => listening.resolve(addr as Deno.NetAddr),
  }, app.fetch);
  const addr = await listening.promise;
  const url = `http://${
    addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname
  }:${addr.port}`;
  scheduler?.start();
  log.info("listening on {url}; schedule {schedule}; sink {sink}", {
    url,
    schedule: serve.schedule ?? "off",
    sink: settings.sink,
    version: BRIDGE_VERSION,
  });
  const done = Promise.withResolvers<void>();
  let stopping: Promise<void> | null = null;
  const shutdown = (reason: string) => {
    stopping ??= (async () => {
      log.info("shutting down ({reason}); grace {graceMs} ms", {
        reason,
        graceMs: serve.shutdownGraceMs,
      });
      scheduler?.stop();
      try {
        await manager.shutdown(serve.shutdownGraceMs);
      } finally {
        await server.shutdown().catch(() => {});
        await bridge.close();
        log.info("stopped");
        done.resolve();
      }
    })();
    return stopping;
  };
  return { url, shutdown, finished: done.promise };
}
