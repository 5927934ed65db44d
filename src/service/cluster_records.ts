/**
 * Per-cluster records of the service in the state folder, next to the hour
 * fragments: the **watermark** (the newest hour up to which every hour is
 * collected and delivered) and the **delivery ledger** (what each day's newest
 * delivery contained, so that `unchanged` can be verified against the sink).
 *
 * ```text
 * <state>/<cluster>/watermark.json
 * <state>/<cluster>/<day>/delivered-<sink>.json
 * ```
 *
 * Both are written atomically. A damaged file reads as missing (with a
 * warning): the watermark is then recomputed from the hours, and a payload
 * without a ledger entry is delivered again under the same uuid.
 *
 * @module
 */

import { join } from "node:path";
import type { DeliveryRecord } from "../deliver/sink.ts";
import { readJsonFile, writeFileAtomic } from "../fs_atomic.ts";
import { assertClusterId, BridgeError, formatHour, isDay, type SinkKind } from "../model.ts";

/** Reads and writes watermarks and delivery records. */
export class ClusterRecords {
  readonly #root: string;
  readonly #warn: (message: string) => void;

  /**
   * @param stateDir The state folder.
   * @param warn Called with a message (naming the path) when a record is damaged.
   */
  constructor(stateDir: string, warn: (message: string) => void = () => {}) {
    this.#root = stateDir;
    this.#warn = warn;
  }

  #clusterDir(clusterId: string): string {
    assertClusterId(clusterId);
    return join(this.#root, clusterId);
  }

  async #read(path: string): Promise<Record<string, unknown> | null> {
    try {
      const value = await readJsonFile(path);
      if (value === null) return null;
      if (typeof value !== "object" || Array.isArray(value)) {
        throw new BridgeError("state_corrupt", `${path} is not a JSON object`);
      }
      return value as Record<string, unknown>;
    } catch (error) {
      if (error instanceof BridgeError && error.code === "state_corrupt") {
        this.#warn(`ignoring a damaged record: ${error.message}`);
        return null;
      }
      throw error;
    }
  }

  /**
   * The cluster's watermark (start of an hour, ms), or null.
   *
   * @example
   * ```ts
   * import { ClusterRecords } from "./cluster_records.ts";
   * const records = new ClusterRecords(await Deno.makeTempDir());
   * await records.watermark("c1"); // null
   * ```
   */
  async watermark(clusterId: string): Promise<number | null> {
    const path = join(this.#clusterDir(clusterId), "watermark.json");
    const o = await this.#read(path);
    if (o === null) return null;
    const ms = o.hourMs;
    if (typeof ms !== "number" || !Number.isSafeInteger(ms) || ms % 3_600_000 !== 0) {
      this.#warn(`ignoring a damaged record: ${path} has no valid "hourMs"`);
      return null;
    }
    return ms;
  }

  /** Stores the watermark (start of an hour, ms). */
  async setWatermark(clusterId: string, hourMs: number): Promise<void> {
    const path = join(this.#clusterDir(clusterId), "watermark.json");
    await writeFileAtomic(
      path,
      JSON.stringify({ hour: formatHour(hourMs), hourMs }, null, 2) + "\n",
    );
  }

  #ledgerPath(clusterId: string, day: string, sink: SinkKind): string {
    if (!isDay(day)) throw new RangeError(`invalid day ${JSON.stringify(day)}`);
    return join(this.#clusterDir(clusterId), day, `delivered-${sink}.json`);
  }

  /**
   * The newest delivery of one cluster-day to one sink, or null.
   *
   * @example
   * ```ts
   * import { ClusterRecords } from "./cluster_records.ts";
   * const records = new ClusterRecords(await Deno.makeTempDir());
   * await records.delivered("c1", "2026-11-01", "dir"); // null
   * ```
   */
  async delivered(clusterId: string, day: string, sink: SinkKind): Promise<DeliveryRecord | null> {
    const path = this.#ledgerPath(clusterId, day, sink);
    const o = await this.#read(path);
    if (o === null) return null;
    const parts = o.parts;
    const ok = o.sink === sink && o.clusterId === clusterId && o.day === day &&
      typeof o.uuid === "string" && typeof o.lastHour === "number" &&
      typeof o.deliveredAt === "string" && Array.isArray(parts) && parts.length > 0 &&
      parts.every((p) =>
        typeof p === "object" && p !== null && typeof p.fileName === "string" &&
        typeof p.bytes === "number" && typeof p.sha256 === "string" &&
        typeof p.ref === "object" && p.ref !== null && typeof p.ref.location === "string"
      );
    if (!ok) {
      this.#warn(`ignoring a damaged record: ${path} is not a delivery record`);
      return null;
    }
    return o as unknown as DeliveryRecord;
  }

  /** Stores a delivery as the day's newest. */
  async recordDelivery(record: DeliveryRecord): Promise<void> {
    const path = this.#ledgerPath(record.clusterId, record.day, record.sink);
    await writeFileAtomic(path, JSON.stringify(record, null, 2) + "\n");
  }
}
