/**
 * No two collections of one cluster at once: an in-process mutex per cluster
 * (runs of the service queue behind each other) plus a lock file per cluster
 * in the state folder against a second process (`<state>/<cluster>/.lock`,
 * holding the owner's PID, host and start time). A lock whose owner is gone
 * (same host, PID no longer alive) is taken over.
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

/** Whether a process with this PID exists on this host (Linux: `/proc/<pid>`). */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    return true; // cannot tell: assume alive, never steal a live lock
  }
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
    try {
      await abortable(previous, signal);
      await this.#lockFile(clusterId);
    } catch (error) {
      cleanupLocal();
      throw error;
    }
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        try {
          await Deno.remove(this.#path(clusterId)).catch(() => {});
        } finally {
          cleanupLocal();
        }
      },
    };
  }

  #path(clusterId: string): string {
    return join(this.#root, clusterId, ".lock");
  }

  async #lockFile(clusterId: string): Promise<void> {
    const path = this.#path(clusterId);
    await Deno.mkdir(join(this.#root, clusterId), { recursive: true });
    const me: LockOwner = { pid: Deno.pid, host: hostname(), startedAt: new Date().toISOString() };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await Deno.writeTextFile(path, JSON.stringify(me) + "\n", { createNew: true });
        return;
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      }
      let owner: Partial<LockOwner> = {};
      try {
        owner = JSON.parse(await Deno.readTextFile(path));
      } catch {
        // being written right now, or damaged: judged by its age below
      }
      const stale = typeof owner.pid === "number"
        ? owner.host === me.host && !pidAlive(owner.pid)
        : await olderThan(path, 60_000);
      if (!stale) {
        throw new BridgeError(
          "cluster_busy",
          `cluster ${clusterId} is busy: another collection (pid ${owner.pid ?? "?"} on ${
            owner.host ?? "?"
          }, started ${owner.startedAt ?? "?"}) holds ${path}`,
        );
      }
      // Take over a dead owner's lock: rename it away first, so two takers cannot both win.
      const aside = `${path}.stale-${Deno.pid}-${crypto.randomUUID()}`;
      try {
        await Deno.rename(path, aside);
        await Deno.remove(aside);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    throw new BridgeError("cluster_busy", `cluster ${clusterId} is busy: could not take ${path}`);
  }
}

async function olderThan(path: string, ms: number): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return (info.mtime?.getTime() ?? 0) < Date.now() - ms;
  } catch {
    return true;
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
