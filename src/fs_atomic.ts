/**
 * Small file-system helpers shared by the stages: an atomic, durable write
 * (temporary file, fsync, rename, fsync of the folder) and a reader for JSON
 * files that may be missing.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { BridgeError, isDiskFull } from "./model.ts";

/** fsyncs a folder, so that a rename inside it survives a power cut (best effort off Linux). */
export async function syncDir(path: string): Promise<void> {
  let dir: Deno.FsFile | null = null;
  try {
    dir = await Deno.open(path, { read: true });
    await dir.sync();
  } catch (error) {
    if (Deno.build.os === "linux") throw error;
  } finally {
    dir?.close();
  }
}

/**
 * Writes `data` to `path` atomically: readers see the old file or the whole
 * new one, never a part, and the new one is on disk when this returns. A full
 * disk is a `disk_full` {@linkcode BridgeError} naming the path.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./fs_atomic.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/a.json`, '{"ok":true}\n');
 * ```
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${crypto.randomUUID()}.${Deno.pid}.tmp`);
  try {
    await Deno.mkdir(dir, { recursive: true });
    const file = await Deno.open(temp, { write: true, createNew: true });
    try {
      const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
      let offset = 0;
      while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
    await syncDir(dir);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    if (isDiskFull(error)) {
      throw new BridgeError("disk_full", `no space left on device while writing ${path}`, {
        cause: error,
      });
    }
    throw new BridgeError(
      "state_io",
      `cannot write ${path}: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
}

/**
 * Reads and parses a JSON file; `null` when it does not exist. A file that is
 * not JSON is a `state_corrupt` {@linkcode BridgeError} naming the path.
 *
 * @example
 * ```ts
 * import { readJsonFile } from "./fs_atomic.ts";
 * await readJsonFile("/no/such/file.json"); // null
 * ```
 */
export async function readJsonFile(path: string): Promise<unknown | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new BridgeError(
      "state_io",
      `cannot read ${path}: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new BridgeError("state_corrupt", `${path} is not valid JSON`, { cause: error });
  }
}
