/**
 * Per-cluster records of the service in the state folder, next to the hour
 * fragments: the **watermark** (the newest hour up to which every hour is
 * collected and delivered), the **delivery ledger** (what each day's newest
 * delivery contained, so that `unchanged` can be verified against the sink)
 * and the **ROS ledger** (which hours' ROS windows each delivered payload of
 * the day carried: ROS files are not cumulative, koku forwards those of every
 * payload, so each window must go out in exactly one payload).
 *
 * ```text
 * <state>/<cluster>/watermark.json
 * <state>/<cluster>/<day>/delivered-<sink>.json
 * <state>/<cluster>/<day>/ros-delivered-<sink>.json
 * ```
 *
 * All are written atomically. A damaged file reads as missing (with a
 * warning): the watermark is then recomputed from the hours, a payload
 * without a ledger entry is delivered again under the same uuid, and a
 * damaged ROS ledger means the day's next payload carries the ROS windows
 * from hour 00 again (sent twice rather than never).
 *
 * @module
 */

import { join } from "node:path";
import type { DeliveryRecord } from "../deliver/sink.ts";
import type { RosHourRange } from "../package/manifest.ts";
import { readJsonFile, writeFileAtomic } from "../fs_atomic.ts";
import { assertClusterId, BridgeError, formatHour, isDay, type SinkKind } from "../model.ts";

/** One delivered payload of a day, as the ROS ledger keeps it. */
export interface RosDelivery {
  /** The payload's last hour (payloads are cumulative from 00). */
  readonly lastHour: number;
  /** The payload's uuid. */
  readonly uuid: string;
  /** The hours whose ROS windows it carried; null: none (ROS off, or nothing new). */
  readonly ros: RosHourRange | null;
  /** ISO 8601 time of the delivery. */
  readonly deliveredAt: string;
}

function isHourNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 23;
}

function isRosDelivery(v: unknown): v is RosDelivery {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  if (!isHourNumber(o.lastHour) || typeof o.uuid !== "string") return false;
  if (typeof o.deliveredAt !== "string") return false;
  if (o.ros === null) return true;
  if (typeof o.ros !== "object" || o.ros === undefined || Array.isArray(o.ros)) return false;
  const r = o.ros as Record<string, unknown>;
  return isHourNumber(r.fromHour) && isHourNumber(r.toHour) && r.fromHour <= r.toHour &&
    r.toHour === o.lastHour;
}

/**
 * The ROS hours the next payload of a day with hours 00..`lastHour` carries:
 * the range recorded for a payload with that last hour already delivered (so
 * a rebuild is byte-identical and keeps its uuid), else the hours after the
 * highest ROS hour any delivered payload of the day carried (from 00 when
 * none), or null when there is no such hour.
 *
 * @example
 * ```ts
 * import { nextRosRange } from "./cluster_records.ts";
 * nextRosRange([], 5); // { fromHour: 0, toHour: 5 }
 * const first = { lastHour: 5, uuid: "u", ros: { fromHour: 0, toHour: 5 }, deliveredAt: "" };
 * nextRosRange([first], 8); // { fromHour: 6, toHour: 8 }
 * nextRosRange([first], 5); // { fromHour: 0, toHour: 5 }: the delivered payload, rebuilt
 * ```
 */
export function nextRosRange(
  deliveries: readonly RosDelivery[],
  lastHour: number,
): RosHourRange | null {
  const same = deliveries.find((d) => d.lastHour === lastHour);
  if (same) return same.ros;
  let highest = -1;
  for (const d of deliveries) if (d.ros && d.ros.toHour > highest) highest = d.ros.toHour;
  return highest < lastHour ? { fromHour: highest + 1, toHour: lastHour } : null;
}

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

  /**
   * The cluster's size as the fleet batching estimates it: the most rows of
   * any report in one hour of its last collection, or null (never collected).
   *
   * @example
   * ```ts
   * import { ClusterRecords } from "./cluster_records.ts";
   * const records = new ClusterRecords(await Deno.makeTempDir());
   * await records.setSeriesEstimate("c1", 120);
   * await records.seriesEstimate("c1"); // 120
   * ```
   */
  async seriesEstimate(clusterId: string): Promise<number | null> {
    const path = join(this.#clusterDir(clusterId), "size.json");
    const o = await this.#read(path);
    if (o === null) return null;
    const n = o.series;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
      this.#warn(`ignoring a damaged record: ${path} has no valid "series"`);
      return null;
    }
    return n;
  }

  /** Stores {@linkcode ClusterRecords.seriesEstimate}. */
  async setSeriesEstimate(clusterId: string, series: number): Promise<void> {
    if (!Number.isSafeInteger(series) || series < 0) {
      throw new RangeError(`Invalid series estimate ${series}: expected a non-negative integer`);
    }
    await writeFileAtomic(
      join(this.#clusterDir(clusterId), "size.json"),
      JSON.stringify({ series }) + "\n",
    );
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

  #rosLedgerPath(clusterId: string, day: string, sink: SinkKind): string {
    if (!isDay(day)) throw new RangeError(`invalid day ${JSON.stringify(day)}`);
    return join(this.#clusterDir(clusterId), day, `ros-delivered-${sink}.json`);
  }

  /**
   * Every payload of one cluster-day delivered to one sink with its ROS hour
   * range, oldest first; empty when none was recorded (or the file is damaged,
   * with a warning).
   *
   * @example
   * ```ts
   * import { ClusterRecords } from "./cluster_records.ts";
   * const records = new ClusterRecords(await Deno.makeTempDir());
   * await records.rosDeliveries("c1", "2026-11-01", "dir"); // []
   * ```
   */
  async rosDeliveries(clusterId: string, day: string, sink: SinkKind): Promise<RosDelivery[]> {
    const path = this.#rosLedgerPath(clusterId, day, sink);
    const o = await this.#read(path);
    if (o === null) return [];
    const list = o.deliveries;
    if (
      o.sink !== sink || o.clusterId !== clusterId || o.day !== day || !Array.isArray(list) ||
      !list.every(isRosDelivery)
    ) {
      this.#warn(`ignoring a damaged record: ${path} is not a ROS delivery ledger`);
      return [];
    }
    return list;
  }

  /**
   * Adds a delivered payload to the day's ROS ledger (replacing an entry with
   * the same last hour: a rebuilt payload delivered again).
   *
   * @example
   * ```ts
   * import { ClusterRecords } from "./cluster_records.ts";
   * const records = new ClusterRecords(await Deno.makeTempDir());
   * await records.recordRosDelivery("c1", "2026-11-01", "dir", {
   *   lastHour: 5, uuid: "u", ros: { fromHour: 0, toHour: 5 }, deliveredAt: new Date().toISOString(),
   * });
   * (await records.rosDeliveries("c1", "2026-11-01", "dir")).length; // 1
   * ```
   */
  async recordRosDelivery(
    clusterId: string,
    day: string,
    sink: SinkKind,
    delivery: RosDelivery,
  ): Promise<void> {
    if (!isRosDelivery(delivery)) {
      throw new RangeError(`invalid ROS delivery ${JSON.stringify(delivery)}`);
    }
    const path = this.#rosLedgerPath(clusterId, day, sink);
    const deliveries = (await this.rosDeliveries(clusterId, day, sink))
      .filter((d) => d.lastHour !== delivery.lastHour);
    deliveries.push(delivery);
    deliveries.sort((a, b) => a.lastHour - b.lastHour);
    await writeFileAtomic(
      path,
      JSON.stringify({ sink, clusterId, day, deliveries }, null, 2) + "\n",
    );
  }
}
