/**
 * `dir` sink (BRIDGE §3): writes payload tarballs to
 * `<root>/<clusterId>/<day>/<fileName>`, atomically, for an air-gapped
 * hand-off.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { syncDir } from "../fs_atomic.ts";
import { assertClusterId, BridgeError, isDay, isDiskFull } from "../model.ts";
import { isSafePathComponent } from "../package/manifest.ts";
import type {
  DeliveredPart,
  DeliveryRecord,
  DeliveryResult,
  FlushResult,
  PayloadSink,
  SinkPayload,
} from "./sink.ts";

function assertFileName(fileName: string): void {
  if (!isSafePathComponent(fileName) || basename(fileName) !== fileName) {
    throw new BridgeError(
      "sink_dir",
      `invalid file name ${JSON.stringify(fileName)}: expected a bare name`,
    );
  }
}

/** Whether a rename failed because source and target are on different file systems. */
function isCrossDevice(err: unknown): boolean {
  return err instanceof Error &&
    ((err as { code?: string }).code === "EXDEV" ||
      /cross-device|os error 18\b/i.test(err.message));
}

/** SHA-256 of a file, lowercase hex, read in chunks. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/**
 * Delivers payloads to a folder tree.
 *
 * @example
 * ```ts
 * import { DirectorySink } from "./directory_sink.ts";
 * const sink = new DirectorySink(await Deno.makeTempDir());
 * sink.pathFor("cluster-a", "2026-11-01", "x.tar.gz"); // "<root>/cluster-a/2026-11-01/x.tar.gz"
 * ```
 */
export class DirectorySink implements PayloadSink {
  readonly kind = "dir" as const;
  /** Root folder. */
  readonly root: string;

  /** @param root Root folder; created on the first delivery. */
  constructor(root: string) {
    if (typeof root !== "string" || root === "") {
      throw new TypeError(
        `DirectorySink root must be a non-empty path, got ${JSON.stringify(root)}`,
      );
    }
    this.root = root;
  }

  /** Final path of one tarball. */
  pathFor(clusterId: string, day: string, fileName: string): string {
    assertClusterId(clusterId);
    if (!isDay(day)) throw new BridgeError("sink_dir", `invalid day ${JSON.stringify(day)}`);
    assertFileName(fileName);
    return join(this.root, clusterId, day, fileName);
  }

  /**
   * True when every recorded part is in place with its recorded size and
   * SHA-256. A missing, truncated or altered part means false.
   */
  async has(record: DeliveryRecord): Promise<boolean> {
    if (record.parts.length === 0) return false;
    for (const part of record.parts) {
      const path = this.pathFor(record.clusterId, record.day, part.fileName);
      try {
        const info = await Deno.stat(path);
        if (!info.isFile || info.size !== part.bytes) return false;
        if ((await sha256File(path)) !== part.sha256) return false;
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return false;
        throw error;
      }
    }
    return true;
  }

  /**
   * Moves each part into place with one rename (same file system), or copies
   * it to a temporary name beside the target and renames that. Parts land
   * last-to-first, and the folder is fsynced.
   */
  async deliver(payload: SinkPayload, signal?: AbortSignal): Promise<DeliveryResult> {
    const targets = payload.parts.map((p) =>
      this.pathFor(payload.clusterId, payload.day, p.fileName)
    );
    const parts: DeliveredPart[] = [];
    try {
      for (const [i, part] of [...payload.parts.entries()].reverse()) {
        signal?.throwIfAborted();
        const target = targets[i]!;
        const dir = dirname(target);
        await Deno.mkdir(dir, { recursive: true });
        try {
          await Deno.rename(part.path, target); // atomic on one file system
        } catch (err) {
          if (!isCrossDevice(err)) throw err;
          const temp = join(dir, `.${part.fileName}.${crypto.randomUUID()}.partial`);
          try {
            await Deno.copyFile(part.path, temp);
            await Deno.rename(temp, target);
          } catch (copyErr) {
            await Deno.remove(temp).catch(() => {});
            throw copyErr;
          }
          await Deno.remove(part.path);
        }
        await syncDir(dir);
        parts.unshift({
          fileName: part.fileName,
          bytes: part.bytes,
          sha256: part.sha256,
          ref: { sink: "dir", location: target },
        });
      }
    } catch (error) {
      if (error instanceof BridgeError) throw error;
      if (signal?.aborted) throw new BridgeError("cancelled", "delivery cancelled");
      const what = error instanceof Error ? error.message : String(error);
      throw new BridgeError(
        isDiskFull(error) ? "disk_full" : "sink_dir",
        `cannot write the payload to ${dirname(targets[0] ?? this.root)}: ${what}`,
        { cause: error },
      );
    }
    const record: DeliveryRecord = {
      sink: "dir",
      clusterId: payload.clusterId,
      day: payload.day,
      uuid: payload.uuid,
      lastHour: payload.lastHour,
      parts,
      deliveredAt: new Date().toISOString(),
    };
    return { record, queued: 0 };
  }

  /** Nothing waits in a folder. */
  flush(): Promise<FlushResult> {
    return Promise.resolve({ sent: 0, pending: 0, error: null });
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
