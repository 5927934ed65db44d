/**
 * The bridge's self-metrics (issue 7 §4, a contract: the names and labels
 * below do not change). One prom-client `Registry` per process, without
 * prom-client's default process metrics (they read `/proc`, which the
 * binary's permissions do not allow).
 *
 * Labels: per-cluster series exist only on the two gauges that name
 * `{cluster}` (`last_success_timestamp_seconds`, `hours_behind`); the
 * counters and histograms have no cluster label, so a hub with thousands of
 * clusters does not multiply them. `result` of `queries_total` is `ok` or the
 * bridge's stable error code (a bounded set); `result` of `runs_total` is the
 * run's final state.
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { BRIDGE_VERSION } from "../model.ts";
import type { QueryOutcome } from "../thanos/thanos_client.ts";
import type { RunState, RunTrigger } from "./run_types.ts";

/** Final states a run can be counted with. */
const FINAL_STATES: readonly RunState[] = [
  "succeeded",
  "partial",
  "failed",
  "cancelled",
  "interrupted",
];

const LABEL_VALUE = /^[a-z0-9][a-z0-9_-]{0,39}$/;

/** A bounded label value: `value` if it looks like a code, else `fallback`. */
function code(value: string | null | undefined, fallback: string): string {
  return typeof value === "string" && LABEL_VALUE.test(value) ? value : fallback;
}

/**
 * The metrics registry plus the recording methods the run manager (its
 * `RunMetrics`) and the Thanos client (`onQuery`) call.
 */
export class BridgeMetrics {
  /** The registry `GET /metrics` serialises. */
  readonly registry: Registry;
  readonly #runs: Counter<"trigger" | "result">;
  readonly #runDuration: Histogram;
  readonly #hoursCollected: Counter;
  readonly #hoursFailed: Counter;
  readonly #queries: Counter<"result">;
  readonly #queryDuration: Histogram;
  readonly #queryBytes: Counter;
  readonly #payloads: Counter<"sink" | "result">;
  readonly #payloadBytes: Histogram;
  readonly #lastSuccess: Gauge<"cluster">;
  readonly #hoursBehind: Gauge<"cluster">;
  readonly #outbox: Gauge;
  readonly #selfChecks: Counter;
  readonly #selfCheckMismatches: Counter;
  readonly #seenTriggers = new Set<string>();

  constructor(version: string) {
    const registers = [this.registry = new Registry()];
    this.#runs = new Counter({
      name: "thanos_bridge_runs_total",
      help: "Finished runs by trigger (schedule, api) and result (the run's final state).",
      labelNames: ["trigger", "result"],
      registers,
    });
    this.#runDuration = new Histogram({
      name: "thanos_bridge_run_duration_seconds",
      help: "Wall time of finished runs.",
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400],
      registers,
    });
    this.#hoursCollected = new Counter({
      name: "thanos_bridge_cluster_hours_collected_total",
      help: "Cluster-hours queried and committed (all clusters).",
      registers,
    });
    this.#hoursFailed = new Counter({
      name: "thanos_bridge_cluster_hours_failed_total",
      help: "Cluster-hours that failed (retried by the next run; all clusters).",
      registers,
    });
    this.#queries = new Counter({
      name: "thanos_bridge_queries_total",
      help: "Thanos queries by result (ok, or the error code), retries included in one call.",
      labelNames: ["result"],
      registers,
    });
    this.#queryDuration = new Histogram({
      name: "thanos_bridge_query_duration_seconds",
      help: "Wall time of Thanos queries, retries included.",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.#queryBytes = new Counter({
      name: "thanos_bridge_query_bytes_total",
      help: "Bytes of accepted Thanos answers.",
      registers,
    });
    this.#payloads = new Counter({
      name: "thanos_bridge_payloads_total",
      help: "Day payloads by sink and result (new, queued, unchanged, failed, ...).",
      labelNames: ["sink", "result"],
      registers,
    });
    this.#payloadBytes = new Histogram({
      name: "thanos_bridge_payload_bytes",
      help: "Size of delivered day payloads (all parts).",
      buckets: [1024, 16384, 131072, 1048576, 8388608, 33554432, 104857600, 524288000],
      registers,
    });
    this.#lastSuccess = new Gauge({
      name: "thanos_bridge_last_success_timestamp_seconds",
      help: "Unix time of the cluster's last successful collection and delivery.",
      labelNames: ["cluster"],
      registers,
    });
    this.#hoursBehind = new Gauge({
      name: "thanos_bridge_hours_behind",
      help: "Hours between the cluster's watermark and the newest ready hour.",
      labelNames: ["cluster"],
      registers,
    });
    this.#outbox = new Gauge({
      name: "thanos_bridge_outbox_messages",
      help: "Kafka announcements waiting in the outbox.",
      registers,
    });
    this.#selfChecks = new Counter({
      name: "thanos_bridge_selfchecks_total",
      help: "Local mode's self-checks: one (query, hour) per batch and hour range asked of Thanos.",
      registers,
    });
    this.#selfCheckMismatches = new Counter({
      name: "thanos_bridge_selfcheck_mismatches_total",
      help: "Self-checks whose Thanos answer differed: those hours were collected in server mode.",
      registers,
    });
    new Gauge({
      name: "thanos_bridge_build_info",
      help: "Always 1; the version label names the running build.",
      labelNames: ["version"],
      registers,
    }).set({ version }, 1);
    this.#queries.inc({ result: "ok" }, 0);
  }

  /**
   * A run started: makes its trigger's `runs_total` series exist (at 0 for
   * every final state), so rate() and absent() work before the first finish.
   */
  runStarted(trigger: RunTrigger): void {
    if (this.#seenTriggers.has(trigger)) return;
    this.#seenTriggers.add(trigger);
    for (const result of FINAL_STATES) this.#runs.inc({ trigger, result }, 0);
  }

  /** A run finished: counts it by trigger and final state, its duration and its self-checks. */
  runFinished(
    record: { readonly trigger: RunTrigger; readonly state: RunState },
    summary: unknown,
    seconds: number,
  ): void {
    this.runStarted(record.trigger);
    const local = (summary as { local?: { checks?: unknown; mismatches?: unknown } } | null)
      ?.local;
    if (local && typeof local.checks === "number" && local.checks > 0) {
      this.#selfChecks.inc(local.checks);
    }
    if (local && Array.isArray(local.mismatches) && local.mismatches.length > 0) {
      this.#selfCheckMismatches.inc(local.mismatches.length);
    }
    this.#runs.inc({ trigger: record.trigger, result: code(record.state, "unknown") });
    if (Number.isFinite(seconds) && seconds >= 0) this.#runDuration.observe(seconds);
  }

  /** One cluster-hour committed (the cluster is not a label, see the module doc). */
  hourCollected(_clusterId: string): void {
    this.#hoursCollected.inc();
  }

  /** One cluster-hour failed. */
  hourFailed(_clusterId: string): void {
    this.#hoursFailed.inc();
  }

  /** A day payload's outcome at a sink; `bytes` is observed when positive. */
  payload(sink: string, result: string, bytes: number): void {
    this.#payloads.inc({ sink: code(sink, "other"), result: code(result, "other") });
    if (Number.isFinite(bytes) && bytes > 0) this.#payloadBytes.observe(bytes);
  }

  /** A cluster completed successfully at `atSeconds` (Unix seconds). */
  clusterSucceeded(clusterId: string, atSeconds: number): void {
    this.#lastSuccess.set({ cluster: clusterId }, atSeconds);
  }

  /** The cluster's hours behind; null (no watermark yet) removes the series. */
  hoursBehind(clusterId: string, hours: number | null): void {
    if (hours === null) this.#hoursBehind.remove({ cluster: clusterId });
    else this.#hoursBehind.set({ cluster: clusterId }, hours);
  }

  /** Messages waiting in the outbox. */
  outbox(pending: number): void {
    this.#outbox.set(pending);
  }

  /**
   * One Thanos call's outcome: pass as the `onQuery` option of `ThanosClient`.
   * An arrow property, so it can be handed over without `bind`.
   */
  readonly onQuery = (outcome: QueryOutcome): void => {
    this.#queries.inc({ result: outcome.ok ? "ok" : code(outcome.code, "error") });
    this.#queryDuration.observe(Math.max(0, outcome.ms) / 1000);
    if (outcome.bytes > 0) this.#queryBytes.inc(outcome.bytes);
  };

  /** The text format and its content type, for `GET /metrics`. */
  async render(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}

/**
 * Creates the process's metrics (`thanos_bridge_build_info{version}` = 1;
 * the version defaults to the bridge's own).
 *
 * @example
 * ```ts
 * import { createMetrics } from "./metrics.ts";
 * const metrics = createMetrics("0.1.0");
 * metrics.onQuery({ ok: true, code: null, ms: 120, bytes: 2048 });
 * const { text } = await metrics.render(); // contains thanos_bridge_queries_total{result="ok"} 1
 * ```
 */
export function createMetrics(version: string = BRIDGE_VERSION): BridgeMetrics {
  return new BridgeMetrics(version);
}
