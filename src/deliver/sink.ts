/**
 * What every sink implements (BRIDGE §3): deliver a built payload (tarballs in
 * the spool folder) and tell whether an earlier delivery is still complete.
 * The service keeps a {@linkcode DeliveryRecord} per delivered uuid in the
 * state folder; `has` verifies such a record against the sink.
 *
 * @module
 */

import type { DeliveryRef, SinkKind } from "../model.ts";

/** One tarball of a payload, as it sits in the spool folder. */
export interface PayloadPart {
  /** Where the tarball is now (the spool). The sink may move or delete it. */
  readonly path: string;
  /** Final base name, `<uuid>.tar.gz` or `<uuid>-<i>.tar.gz`. */
  readonly fileName: string;
  /** Size in bytes. */
  readonly bytes: number;
  /** SHA-256 of the tarball, lowercase hex. */
  readonly sha256: string;
}

/** A payload ready to deliver. */
export interface SinkPayload {
  readonly clusterId: string;
  /** koku org id of the cluster (may be `""` for the `dir` sink). */
  readonly orgId: string;
  /** UTC day `YYYY-MM-DD`. */
  readonly day: string;
  /** manifest uuid: the idempotency key. */
  readonly uuid: string;
  /** Last hour included (payloads always start at hour 00). */
  readonly lastHour: number;
  /** Tarballs, in part order. */
  readonly parts: readonly PayloadPart[];
}

/** One delivered tarball. */
export interface DeliveredPart {
  readonly fileName: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly ref: DeliveryRef;
}

/** What a sink reports about one delivery; stored by the service, verified by `has`. */
export interface DeliveryRecord {
  readonly sink: SinkKind;
  readonly clusterId: string;
  readonly day: string;
  readonly uuid: string;
  readonly lastHour: number;
  /** Every part, in part order. */
  readonly parts: readonly DeliveredPart[];
  /** ISO 8601 time of the delivery. */
  readonly deliveredAt: string;
}

/** Result of {@linkcode PayloadSink.deliver}. */
export interface DeliveryResult {
  readonly record: DeliveryRecord;
  /**
   * Announcements that could not be sent and wait in the outbox (s3-kafka
   * only; 0 elsewhere). The payload counts as delivered: the next run sends them.
   */
  readonly queued: number;
}

/** Result of {@linkcode PayloadSink.flush}. */
export interface FlushResult {
  /** Messages sent from the outbox. */
  readonly sent: number;
  /** Messages still waiting (the broker is still down, …). */
  readonly pending: number;
  /** Why the remaining ones were not sent, if any failed. */
  readonly error: { code: string; message: string } | null;
}

/** A place payloads go to. */
export interface PayloadSink {
  readonly kind: SinkKind;
  /**
   * True only when every part of `record` is still in the sink, complete
   * (same count and sizes, and checksums where the sink can tell). A missing
   * or damaged part means false: the payload is delivered again.
   */
  has(record: DeliveryRecord, signal?: AbortSignal): Promise<boolean>;
  /**
   * Delivers every part. Throws a `BridgeError` (`sink_dir`, `sink_s3`,
   * `sink_ingress`, `cancelled`) when the payload is not delivered; the spool
   * files are the caller's to remove then.
   */
  deliver(payload: SinkPayload, signal?: AbortSignal): Promise<DeliveryResult>;
  /** Sends what waits in the outbox, oldest first (a no-op for sinks without one). */
  flush(signal?: AbortSignal): Promise<FlushResult>;
  /** Releases connections. */
  close(): Promise<void>;
}
