/**
 * A FIFO counting semaphore that limits how many operations run at once.
 *
 * @module
 */

/** Options of {@linkcode Limiter}. */
export interface LimiterOptions {
  /**
   * How long a key counts as active after its last release, in ms (default
   * 2000; 0 = only while holding or waiting).
   */
  idleGraceMs?: number;
  /** Clock in ms (default `performance.now`). */
  now?: () => number;
}

/** A waiter in the queue: its fairness key and the function that hands it a slot. */
interface Waiter {
  readonly key: string;
  readonly grant: () => boolean;
}

/**
 * Fair counting semaphore: at most `max` holders at once. Each caller may name
 * a fairness key (e.g. a cluster id). While callers of more than one key are
 * active, no key is given a slot that would make it hold more than half of the
 * slots (rounded up, at least 1); a key alone may use every slot. A key is
 * active while it holds or waits for a slot, and for `idleGraceMs` after its
 * last release: a caller that works in rounds (one hour's queries, then the
 * next) keeps its share between rounds instead of finding every slot taken by
 * another key's queue, e.g. queries that hang until they time out. Among the waiters that may be served, the oldest is served first,
 * so callers without a key (all of the same key) are served strictly in
 * arrival order. {@linkcode Limiter.acquire} resolves with a release function
 * that is safe to call more than once (only the first call counts), so it can
 * sit in a `finally` on every path.
 *
 * @example Limit parallel work to two
 * ```ts
 * import assert from "node:assert/strict";
 * import { Limiter } from "./limiter.ts";
 *
 * const limiter = new Limiter(2);
 * let running = 0;
 * let peak = 0;
 * await Promise.all([1, 2, 3, 4, 5].map((n) =>
 *   limiter.run(async () => {
 *     peak = Math.max(peak, ++running);
 *     await Promise.resolve(n);
 *     running--;
 *   })
 * ));
 * assert.equal(peak, 2);
 * ```
 *
 * @example Two keys share four slots
 * ```ts
 * import assert from "node:assert/strict";
 * import { Limiter } from "./limiter.ts";
 *
 * const limiter = new Limiter(4, { idleGraceMs: 0 });
 * const a = await Promise.all([1, 2, 3, 4].map(() => limiter.acquire(undefined, "a")));
 * const b = limiter.acquire(undefined, "b"); // waits: "a" holds every slot
 * const a5 = limiter.acquire(undefined, "a"); // waits behind "b"
 * a[0]!(); // the freed slot goes to "b", not to "a"'s waiter
 * assert.equal(limiter.heldBy("b"), 1);
 * (await b)(); // "b" is gone: "a" alone may use every slot again
 * assert.equal(limiter.heldBy("a"), 4);
 * for (const release of [...a.slice(1), await a5]) release();
 * ```
 */
export class Limiter {
  readonly #max: number;
  readonly #share: number;
  #active = 0;
  readonly #held = new Map<string, number>();
  readonly #waiting = new Map<string, number>();
  #waiters: Waiter[] = [];
  readonly #graceMs: number;
  readonly #now: () => number;
  /** Keys without holders or waiters that released a slot less than `#graceMs` ago: release time. */
  readonly #idleSince = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param max Largest number of simultaneous holders (a positive integer).
   * @param options See {@linkcode LimiterOptions}.
   */
  constructor(max: number, options: LimiterOptions = {}) {
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`Limiter size must be a positive integer, got ${max}`);
    }
    const grace = options.idleGraceMs ?? 2000;
    if (!Number.isFinite(grace) || grace < 0) {
      throw new RangeError(`idleGraceMs must be a non-negative number, got ${grace}`);
    }
    this.#max = max;
    this.#share = Math.max(1, Math.ceil(max / 2));
    this.#graceMs = grace;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Largest number of simultaneous holders. */
  get max(): number {
    return this.#max;
  }

  /** Number of current holders. */
  get active(): number {
    return this.#active;
  }

  /** Number of callers waiting for a slot. */
  get pending(): number {
    return this.#waiters.length;
  }

  /** Slots held by callers of fairness key `key` (`""` for callers without one). */
  heldBy(key: string): number {
    return this.#held.get(key) ?? 0;
  }

  /**
   * Waits for a free slot and returns its release function. If `signal` aborts
   * while waiting, the caller leaves the queue and the promise rejects with the
   * signal's reason (no slot is taken).
   *
   * @param signal Stops waiting.
   * @param key Fairness key (e.g. the cluster id); callers without one share the key `""`.
   *
   * @example
   * ```ts
   * import { Limiter } from "./limiter.ts";
   *
   * const limiter = new Limiter(1);
   * const release = await limiter.acquire(undefined, "cluster-a");
   * try {
   *   // … use the slot …
   * } finally {
   *   release();
   * }
   * ```
   */
  acquire(signal?: AbortSignal, key = ""): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<() => void>((resolve, reject) => {
      let settled = false;
      const onAbort = () => {
        if (settled) return;
        settled = true;
        const index = this.#waiters.findIndex((w) => w.grant === grant);
        if (index !== -1) {
          this.#waiters.splice(index, 1);
          this.#count(this.#waiting, key, -1);
        }
        reject(signal?.reason);
        // Its leaving may let another key's waiter past the fair share.
        this.#next();
      };
      const grant = () => {
        if (settled) return false;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        resolve(this.#releaser(key));
        return true;
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push({ key, grant });
      this.#count(this.#waiting, key, 1);
      this.#idleSince.delete(key);
      this.#next();
    });
  }

  /**
   * Runs `fn` while holding a slot and releases it however `fn` ends.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Limiter } from "./limiter.ts";
   *
   * const limiter = new Limiter(1);
   * assert.equal(await limiter.run(() => 42), 42);
   * assert.equal(limiter.active, 0);
   * ```
   */
  async run<T>(fn: () => T | Promise<T>, signal?: AbortSignal, key?: string): Promise<T> {
    const release = await this.acquire(signal, key);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  #count(map: Map<string, number>, key: string, delta: number): void {
    const n = (map.get(key) ?? 0) + delta;
    if (n === 0) map.delete(key);
    else map.set(key, n);
  }

  /** Whether a key other than `key` holds, waits for, or recently released a slot. */
  #othersActive(key: string): boolean {
    for (const k of this.#held.keys()) if (k !== key) return true;
    for (const k of this.#waiting.keys()) if (k !== key) return true;
    const now = this.#now();
    for (const [k, since] of this.#idleSince) {
      if (now - since >= this.#graceMs) this.#idleSince.delete(k);
      else if (k !== key) return true;
    }
    return false;
  }

  /** Looks at the waiters again when the oldest grace period ends (if any waiter is left). */
  #wakeLater(): void {
    if (this.#timer !== undefined || this.#waiters.length === 0 || this.#idleSince.size === 0) {
      return;
    }
    const oldest = Math.min(...this.#idleSince.values());
    const delay = Math.max(0, oldest + this.#graceMs - this.#now()) + 1;
    const timer = setTimeout(() => {
      this.#timer = undefined;
      this.#next();
    }, delay);
    this.#timer = timer;
  }

  #releaser(key: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#active--;
      this.#count(this.#held, key, -1);
      if (this.#graceMs > 0 && this.heldBy(key) === 0 && !this.#waiting.has(key)) {
        this.#idleSince.set(key, this.#now());
      }
      this.#next();
    };
  }

  /** Hands free slots to the oldest waiters whose key is within its fair share. */
  #next(): void {
    let i = 0;
    while (this.#active < this.#max && i < this.#waiters.length) {
      const { key, grant } = this.#waiters[i]!;
      if (this.heldBy(key) >= this.#share && this.#othersActive(key)) {
        i++;
        continue;
      }
      this.#waiters.splice(i, 1);
      this.#count(this.#waiting, key, -1);
      this.#active++;
      this.#count(this.#held, key, 1);
      if (!grant()) {
        this.#active--;
        this.#count(this.#held, key, -1);
      }
      i = 0; // a grant changes the shares: look again from the oldest
    }
    this.#wakeLater();
  }
}
