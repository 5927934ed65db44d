/**
 * No two collections of one cluster at once: an in-process mutex per cluster
 * (runs of the service queue behind each other) plus an exclusive `flock` on
 * a lock file per cluster in the state folder against a second process
 * (`<state>/<cluster>/.lock`, holding the owner's PID, host and start time for
 * the message). The kernel drops the lock when its owner dies, however it
 * dies, so a killed run never leaves a stale lock behind.
 *
 * @module
 */

import { join } from "node:path";
import { assertClusterId, BridgeError } from "../model.ts";

/** A held lock; `release()` is idempotent. */
export interface ClusterLease {
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}

/**
 * Per-cluster locks.
 *
 * @example
 * ```ts
 * import { ClusterLocks } from "./cluster_lock.ts";
 * const locks = new ClusterLocks(await Deno.makeTempDir());
 * const lease = await locks.acquire("c1");
 * await lease.release();
 * ```
 */
export class ClusterLocks {
  readonly #root: string;
  readonly #tails = new Map<string, Promise<void>>();

  constructor(stateDir: string) {
    this.#root = stateDir;
  }

  /**
   * Waits for this process's other run of the cluster, then takes the lock
   * file. Throws `cluster_busy` when another live process holds it.
   */
  async acquire(clusterId: string, signal?: AbortSignal): Promise<ClusterLease> {
    assertClusterId(clusterId);
    const previous = this.#tails.get(clusterId) ?? Promise.resolve();
    let releaseLocal!: () => void;
    const mine = new Promise<void>((resolve) => (releaseLocal = resolve));
    const tail = previous.then(() => mine);
    this.#tails.set(clusterId, tail);
    const cleanupLocal = () => {
      releaseLocal();
      if (this.#tails.get(clusterId) === tail) this.#tails.delete(clusterId);
    };
    let file: Deno.FsFile;
    try {
      await abortable(previous, signal);
      file = await this.#lockFile(clusterId);
    } catch (error) {
      cleanupLocal();
      throw error;
    }
    let released = false;
    return {
      release: () => {
        if (released) return Promise.resolve();
        released = true;
        try {
          file.close(); // drops the flock
        } catch {
          // already closed
        } finally {
          cleanupLocal();
        }
        return Promise.resolve();
      },
    };
  }

  #path(clusterId: string): string {
    return join(this.#root, clusterId, ".lock");
  }

  async #lockFile(clusterId: string): Promise<Deno.FsFile> {
    const path = this.#path(clusterId);
    await Deno.mkdir(join(this.#root, clusterId), { recursive: true });
    const file = await Deno.open(path, { read: true, write: true, create: true });
    try {
      if (!(await file.tryLock(true))) {
        let owner: Partial<LockOwner> = {};
        try {
          owner = JSON.parse(await Deno.readTextFile(path));
        } catch {
          // being written right now
        }
        throw new BridgeError(
          "cluster_busy",
          `cluster ${clusterId} is busy: another collection (pid ${owner.pid ?? "?"} on ${
            owner.host ?? "?"
          }, started ${owner.startedAt ?? "?"}) holds ${path}`,
        );
      }
      const me: LockOwner = {
        pid: Deno.pid,
        host: hostname(),
        startedAt: new Date().toISOString(),
      };
      await file.truncate(0);
      await file.write(new TextEncoder().encode(JSON.stringify(me) + "\n"));
      return file;
    } catch (error) {
      file.close();
      throw error;
    }
  }
}

function abortable(promise: Promise<void>, signal?: AbortSignal): Promise<void> {
  if (!signal) return promise;
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () =>
      reject(new BridgeError("cancelled", "cancelled while waiting for the cluster lock"));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
