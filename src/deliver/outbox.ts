/**
 * The announcement outbox of the `s3-kafka` sink (BRIDGE §3): announcements
 * that could not be sent wait here, one JSON file per message, until the next
 * run sends them.
 *
 * Layout: `<dir>/<ms>-<seq>-<rand>.json`, where `<ms>` (15 digits) and
 * `<seq>` (6 digits) never decrease, so sorting the names sorts the messages
 * oldest first, even if the clock steps back. Each file is written to a
 * dot-named temp file, fsynced, renamed into place and the folder fsynced, so
 * a crash leaves either the whole message or nothing. A message keeps the S3
 * bucket and key of its object so that its presigned URL can be made again.
 *
 * @module
 */

import { join } from "node:path";
import { BridgeError, errorInfo, isDiskFull, toBridgeError } from "../model.ts";
import type { FlushResult } from "./sink.ts";

/** The JSON value koku reads from `platform.upload.announce` (contract §5.2). */
export interface AnnouncementValue {
  /** Manifest uuid. */
  request_id: string;
  /** Base64 of the identity JSON; may be `""`, but the key must exist. */
  b64_identity: string;
  /** koku org id; must not be empty. */
  org_id: string;
  /** Presigned GET of the tarball. */
  url: string;
  /** ISO 8601 time of the announcement. */
  timestamp: string;
}

/** One announcement, as kept in the outbox. */
export interface OutboxMessage {
  readonly topic: string;
  /** Message key (the cluster id). */
  readonly key: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly value: AnnouncementValue;
  /** Where the tarball is, to presign its URL again. */
  readonly s3: { readonly bucket: string; readonly key: string };
  /** ISO 8601 time when `value.url` expires. */
  readonly urlExpiresAt: string;
}

const NAME = /^(\d{15})-(\d{6})-[0-9a-f]{8}\.json$/;
const TEMP = /^\.\d{15}-\d{6}-[0-9a-f]{8}\.json\.tmp$/;

/** Temp files older than this are left-overs of a crash and are removed. */
const STALE_TEMP_MS = 3_600_000;

function isNotFound(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound;
}

function randomHex(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether `value` has the shape of an {@linkcode OutboxMessage}. */
function isOutboxMessage(value: unknown): value is OutboxMessage {
  if (typeof value !== "object" || value === null) return false;
  const m = value as Record<string, unknown>;
  const v = m.value as Record<string, unknown> | null | undefined;
  const s3 = m.s3 as Record<string, unknown> | null | undefined;
  const headers = m.headers as Record<string, unknown> | null | undefined;
  return typeof m.topic === "string" && typeof m.key === "string" &&
    typeof headers === "object" && headers !== null &&
    Object.values(headers).every((h) => typeof h === "string") &&
    typeof v === "object" && v !== null &&
    ["request_id", "b64_identity", "org_id", "url", "timestamp"].every((k) =>
      typeof v[k] === "string"
    ) &&
    typeof s3 === "object" && s3 !== null && typeof s3.bucket === "string" &&
    typeof s3.key === "string" && typeof m.urlExpiresAt === "string" &&
    !Number.isNaN(Date.parse(m.urlExpiresAt));
}

/**
 * A folder of pending announcements.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Outbox } from "./outbox.ts";
 *
 * const outbox = new Outbox(await Deno.makeTempDir());
 * const [name] = await outbox.put([{
 *   topic: "platform.upload.announce",
 *   key: "cluster-a",
 *   headers: { service: "hccm" },
 *   value: { request_id: "u", b64_identity: "", org_id: "1", url: "http://s3/x", timestamp: "t" },
 *   s3: { bucket: "b", key: "cluster-a/2026-11-01/u.tar.gz" },
 *   urlExpiresAt: "2026-11-02T00:00:00.000Z",
 * }]);
 * assert.deepEqual(await outbox.names(), [name]);
 * await outbox.remove(name!);
 * assert.equal(await outbox.count(), 0);
 * ```
 */
export class Outbox {
  /** The folder (created on the first `put`). */
  readonly dir: string;
  readonly #now: () => Date;
  #queue: Promise<unknown> = Promise.resolve();

  /**
   * @param dir Folder of the outbox.
   * @param now Clock used to name files (tests inject one).
   */
  constructor(dir: string, now: () => Date = () => new Date()) {
    if (typeof dir !== "string" || dir === "") {
      throw new TypeError(`outbox folder must be a non-empty path, got ${JSON.stringify(dir)}`);
    }
    this.dir = dir;
    this.#now = now;
  }

  /**
   * Writes each message to its own file, atomically and durably, after every
   * file already there; returns the new names in order. Calls on one instance
   * run one after the other.
   */
  put(messages: readonly OutboxMessage[]): Promise<string[]> {
    const run = this.#queue.then(() => this.#put(messages));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #put(messages: readonly OutboxMessage[]): Promise<string[]> {
    for (const message of messages) {
      if (!isOutboxMessage(message)) throw new TypeError("not an outbox message");
    }
    try {
      await Deno.mkdir(this.dir, { recursive: true });
      const existing = await this.names();
      let lastMs = 0;
      let lastSeq = -1;
      const last = existing.at(-1);
      if (last !== undefined) {
        const m = NAME.exec(last)!;
        lastMs = Number(m[1]);
        lastSeq = Number(m[2]);
      }
      const names: string[] = [];
      for (const message of messages) {
        const nowMs = this.#now().getTime();
        let ms: number;
        let seq: number;
        if (nowMs > lastMs) {
          ms = nowMs;
          seq = 0;
        } else if (lastSeq < 999_999) {
          ms = lastMs;
          seq = lastSeq + 1;
        } else {
          ms = lastMs + 1;
          seq = 0;
        }
        const name = `${String(ms).padStart(15, "0")}-${
          String(seq).padStart(6, "0")
        }-${randomHex()}.json`;
        await this.#writeAtomic(name, JSON.stringify(message, null, 2) + "\n");
        names.push(name);
        lastMs = ms;
        lastSeq = seq;
      }
      await this.#syncDir();
      return names;
    } catch (e) {
      if (e instanceof BridgeError) throw e;
      const base = toBridgeError(e, "sink_kafka");
      throw new BridgeError(
        isDiskFull(e) ? "disk_full" : "sink_kafka",
        `cannot write the announcement outbox ${this.dir}: ${base.message}`,
        { cause: e },
      );
    }
  }

  async #writeAtomic(name: string, text: string): Promise<void> {
    const temp = join(this.dir, `.${name}.tmp`);
    const file = await Deno.open(temp, { write: true, createNew: true });
    try {
      const bytes = new TextEncoder().encode(text);
      let off = 0;
      while (off < bytes.length) off += await file.write(bytes.subarray(off));
      await file.sync();
    } catch (e) {
      file.close();
      await Deno.remove(temp).catch(() => {});
      throw e;
    }
    file.close();
    await Deno.rename(temp, join(this.dir, name));
  }

  async #syncDir(): Promise<void> {
    const dir = await Deno.open(this.dir, { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  }

  /** Names of the waiting messages, oldest first (`[]` when the folder does not exist). */
  async names(): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(this.dir)) {
        if (entry.isFile && NAME.test(entry.name)) names.push(entry.name);
      }
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
    return names.sort();
  }

  /** How many messages wait. */
  async count(): Promise<number> {
    return (await this.names()).length;
  }

  /** Reads one message; throws a `BridgeError` (`state_corrupt`) when the file is not one. */
  async read(name: string): Promise<OutboxMessage> {
    const text = await Deno.readTextFile(join(this.dir, name));
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = null;
    }
    if (!isOutboxMessage(value)) {
      throw new BridgeError(
        "state_corrupt",
        `outbox file ${join(this.dir, name)} is not a message`,
      );
    }
    return value;
  }

  /** Removes one message once the broker has it, and fsyncs the folder. */
  async remove(name: string): Promise<void> {
    try {
      await Deno.remove(join(this.dir, name));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    await this.#syncDir();
  }

  /**
   * Moves an unreadable file out of the queue (renamed `<name>.corrupt`, kept
   * for inspection) and returns its new path.
   */
  async quarantine(name: string): Promise<string> {
    const to = join(this.dir, `${name}.corrupt`);
    await Deno.rename(join(this.dir, name), to);
    await this.#syncDir();
    return to;
  }

  /** Removes temp files older than an hour (left by a crash between write and rename). */
  async removeStaleTemps(): Promise<number> {
    let removed = 0;
    const limit = Date.now() - STALE_TEMP_MS;
    try {
      for await (const entry of Deno.readDir(this.dir)) {
        if (!entry.isFile || !TEMP.test(entry.name)) continue;
        const path = join(this.dir, entry.name);
        const info = await Deno.stat(path).catch(() => null);
        if (info?.mtime && info.mtime.getTime() < limit) {
          await Deno.remove(path).catch(() => {});
          removed++;
        }
      }
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    return removed;
  }
}

/** A fresh presigned URL and when it expires. */
export interface Presigned {
  readonly url: string;
  readonly expiresAt: Date;
}

/** What {@linkcode flushOutbox} needs. */
export interface FlushOutboxOptions {
  /** Sends one message; resolves only once the broker acknowledged it. */
  send(message: OutboxMessage, signal?: AbortSignal): Promise<void>;
  /** Presigns a GET of `s3://bucket/key` again. */
  presign(bucket: string, key: string): Promise<Presigned>;
  /** Clock. */
  now(): Date;
  /** A URL expiring within this many ms is presigned again before sending (default 1 h). */
  refreshWithinMs?: number;
  signal?: AbortSignal;
}

/**
 * Sends the outbox oldest first: a message whose URL expires within
 * `refreshWithinMs` (or has expired) gets a new presigned URL first, and each
 * file is removed only after the broker acknowledged it. Stops at the first
 * failure, so the order is kept. An unreadable file is moved aside
 * (`.corrupt`) and reported in `error`, without blocking the others.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { flushOutbox, Outbox } from "./outbox.ts";
 *
 * const outbox = new Outbox(await Deno.makeTempDir());
 * const result = await flushOutbox(outbox, {
 *   send: () => Promise.resolve(),
 *   presign: () => Promise.reject(new Error("not needed")),
 *   now: () => new Date(),
 * });
 * assert.deepEqual(result, { sent: 0, pending: 0, error: null });
 * ```
 */
export async function flushOutbox(
  outbox: Outbox,
  options: FlushOutboxOptions,
): Promise<FlushResult> {
  const refreshWithinMs = options.refreshWithinMs ?? 3_600_000;
  let sent = 0;
  let error: FlushResult["error"] = null;
  let names: string[];
  try {
    await outbox.removeStaleTemps();
    names = await outbox.names();
  } catch (e) {
    return { sent, pending: 0, error: errorInfo(toBridgeError(e, "sink_kafka")) };
  }
  for (const name of names) {
    if (options.signal?.aborted) {
      error = { code: "cancelled", message: "cancelled" };
      break;
    }
    let message: OutboxMessage;
    try {
      message = await outbox.read(name);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue; // sent by a concurrent flush
      const bad = errorInfo(e);
      try {
        const moved = await outbox.quarantine(name);
        error ??= { code: bad.code, message: `${bad.message}; moved to ${moved}` };
        continue;
      } catch (moveError) {
        error = errorInfo(toBridgeError(moveError, "sink_kafka"));
        break;
      }
    }
    try {
      if (Date.parse(message.urlExpiresAt) - options.now().getTime() < refreshWithinMs) {
        const fresh = await options.presign(message.s3.bucket, message.s3.key);
        message = {
          ...message,
          value: { ...message.value, url: fresh.url },
          urlExpiresAt: fresh.expiresAt.toISOString(),
        };
      }
      await options.send(message, options.signal);
      await outbox.remove(name);
      sent++;
    } catch (e) {
      error = errorInfo(toBridgeError(e, "sink_kafka"));
      break;
    }
  }
  let pending = 0;
  try {
    pending = await outbox.count();
  } catch (e) {
    error ??= errorInfo(toBridgeError(e, "sink_kafka"));
  }
  return { sent, pending, error };
}
