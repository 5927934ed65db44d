/**
 * `dir` sink (BRIDGE §3): writes payload tarballs to
 * `<root>/<clusterId>/<day>/<fileName>`, atomically.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { isSafePathComponent } from "../package/manifest.ts";
import { assertClusterId, assertDay, pathExists } from "../package/state_store.ts";

/** The parts of a payload the sink needs. */
export interface DeliverablePayload {
  /** Cluster id (first folder level). */
  clusterId: string;
  /** UTC day `YYYY-MM-DD` (second folder level). */
  day: string;
  /** Tarballs: where they are now and their final base names. */
  parts: ReadonlyArray<{ path: string; fileName: string }>;
}

function assertFileName(fileName: string): void {
  if (!isSafePathComponent(fileName) || basename(fileName) !== fileName) {
    throw new RangeError(`Invalid file name ${JSON.stringify(fileName)}: expected a bare name`, {
      cause: { fileName },
    });
  }
}

/** Whether a rename failed because source and target are on different file systems. */
function isCrossDevice(err: unknown): boolean {
  return err instanceof Error &&
    ((err as { code?: string }).code === "EXDEV" ||
      /cross-device|os error 18\b/i.test(err.message));
}

/**
 * Delivers payloads to a folder tree (air-gapped hand-off and the embedded default).
 *
 * @example
 * ```ts
 * import { DirectorySink } from "./directory_sink.ts";
 * const sink = new DirectorySink(await Deno.makeTempDir());
 * sink.pathFor("cluster-a", "2026-11-01", "x.tar.gz"); // "<root>/cluster-a/2026-11-01/x.tar.gz"
 * ```
 */
export class DirectorySink {
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
    assertDay(day);
    assertFileName(fileName);
    return join(this.root, clusterId, day, fileName);
  }

  /** True when every part already exists (a re-run for the same window then ships nothing). */
  async has(payload: DeliverablePayload): Promise<boolean> {
    if (payload.parts.length === 0) return false;
    for (const part of payload.parts) {
      if (!(await pathExists(this.pathFor(payload.clusterId, payload.day, part.fileName)))) {
        return false;
      }
    }
    return true;
  }

  /**
   * Paths of an already delivered payload with this uuid (`<uuid>.tar.gz`, or
   * every `<uuid>-<i>.tar.gz` of a split payload), or `[]`. Parts are delivered
   * last-to-first, so the presence of part 0 means the whole payload landed.
   *
   * @example
   * ```ts
   * import { DirectorySink } from "./directory_sink.ts";
   * const sink = new DirectorySink(await Deno.makeTempDir());
   * await sink.hasUuid("cluster-a", "2026-11-01", "0b5c3f0e-5a3e-4d4e-8f4f-0c9d7e0b1a2c"); // []
   * ```
   */
  async hasUuid(clusterId: string, day: string, uuid: string): Promise<string[]> {
    const single = this.pathFor(clusterId, day, `${uuid}.tar.gz`);
    if (await pathExists(single)) return [single];
    if (!(await pathExists(this.pathFor(clusterId, day, `${uuid}-0.tar.gz`)))) return [];
    const parts: string[] = [];
    for (let i = 0;; i++) {
      const path = this.pathFor(clusterId, day, `${uuid}-${i}.tar.gz`);
      if (!(await pathExists(path))) return parts;
      parts.push(path);
    }
  }

  /**
   * Moves each part into place with one rename (same file system), or copies
   * it to a temporary name beside the target, renames that, and then removes
   * the spool file. Parts land last-to-first (see {@linkcode hasUuid}).
   * Returns the final paths in part order.
   */
  async deliver(payload: DeliverablePayload): Promise<string[]> {
    const targets = payload.parts.map((p) =>
      this.pathFor(payload.clusterId, payload.day, p.fileName)
    );
    const out: string[] = [];
    for (const [i, part] of [...payload.parts.entries()].reverse()) {
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
      out.unshift(target);
    }
    return out;
  }
}
