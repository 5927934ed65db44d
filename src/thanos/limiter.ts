/**
 * A FIFO counting semaphore that limits how many operations run at once.
 *
 * @module
 */

/**
 * FIFO semaphore: at most `max` holders at once; waiters are served strictly in
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
 */
export class Limiter {
  readonly #max: number;
  #active = 0;
  readonly #waiters: Array<() => boolean> = [];
  #head = 0; // index of the first live waiter in #waiters

  /** @param max Largest number of simultaneous holders (a positive integer). */
  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`Limiter size must be a positive integer, got ${max}`);
    }
    this.#max = max;
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
    return this.#waiters.length - this.#head;
  }

  /**
   * Waits for a free slot and returns its release function. If `signal` aborts
   * while waiting, the caller leaves the queue and the promise rejects with the
   * signal's reason (no slot is taken).
   *
   * @example
   * ```ts
   * import { Limiter } from "./limiter.ts";
   *
   * const limiter = new Limiter(1);
   * const release = await limiter.acquire();
   * try {
   *   // … use the slot …
   * } finally {
   *   release();
   * }
   * ```
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#active < this.#max && this.pending === 0) {
      this.#active++;
      return Promise.resolve(this.#releaser());
    }
    return new Promise<() => void>((resolve, reject) => {
      let settled = false;
      const onAbort = () => {
        if (settled) return;
        settled = true;
        const index = this.#waiters.indexOf(grant, this.#head);
        if (index !== -1) this.#waiters.splice(index, 1);
        reject(signal?.reason);
      };
      const grant = () => {
        if (settled) return false;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        resolve(this.#releaser());
        return true;
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(grant);
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
  async run<T>(fn: () => T | Promise<T>, signal?: AbortSignal): Promise<T> {
    const release = await this.acquire(signal);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#active--;
      this.#next();
    };
  }

  #next(): void {
    while (this.#active < this.#max && this.#head < this.#waiters.length) {
      const grant = this.#waiters[this.#head] as () => boolean;
      this.#head++;
      this.#active++;
      if (!grant()) this.#active--;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#waiters.length) {
      this.#waiters.splice(0, this.#head);
      this.#head = 0;
    }
    if (this.#head === this.#waiters.length) {
      this.#waiters.length = 0;
      this.#head = 0;
    }
  }
}
