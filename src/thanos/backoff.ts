/**
 * Retry timing: capped exponential backoff with full jitter, `Retry-After`
 * parsing and an abortable sleep.
 *
 * @module
 */

/** Parameters of {@linkcode backoffDelay}. */
export interface BackoffOptions {
  /** Delay cap before jitter for the first retry, in ms. */
  baseDelayMs: number;
  /** Upper bound of any delay, in ms. */
  maxDelayMs: number;
  /** Uniform random source in [0, 1); defaults to `Math.random`. */
  random?: () => number;
}

/**
 * Delay before retrying after failed attempt number `attempt` (1-based), using
 * capped exponential backoff with full jitter:
 * `random() * min(maxDelayMs, baseDelayMs * 2^(attempt - 1))`, rounded down to
 * whole milliseconds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backoffDelay } from "./backoff.ts";
 *
 * const opts = { baseDelayMs: 1000, maxDelayMs: 30_000, random: () => 0.5 };
 * assert.equal(backoffDelay(1, opts), 500);
 * assert.equal(backoffDelay(3, opts), 2000);
 * assert.equal(backoffDelay(10, opts), 15_000);
 * ```
 */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`attempt must be a positive integer, got ${attempt}`);
  }
  const { baseDelayMs, maxDelayMs } = options;
  const random = options.random ?? Math.random;
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
  const r = random();
  if (!(r >= 0 && r <= 1)) {
    throw new RangeError(`random() must return a number in [0, 1], got ${r}`);
  }
  return Math.floor(r * ceiling);
}

/**
 * Parses an HTTP `Retry-After` value (delay in seconds, or an HTTP date) into
 * milliseconds from `nowMs`, never negative. Returns `undefined` when the value
 * is missing or unparseable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRetryAfter } from "./backoff.ts";
 *
 * assert.equal(parseRetryAfter("3"), 3000);
 * const now = Date.parse("2026-11-01T00:00:00Z");
 * assert.equal(parseRetryAfter("Sun, 01 Nov 2026 00:00:07 GMT", now), 7000);
 * assert.equal(parseRetryAfter("soon"), undefined);
 * ```
 */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number = Date.now(),
): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === "") return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // HTTP dates (IMF-fixdate, RFC 850, asctime) all have a month name and a
  // time of day; Date.parse alone would also take things like "-3".
  if (!/[A-Za-z]{3}/.test(text) || !/\d{1,2}:\d{2}:\d{2}/.test(text)) return undefined;
  const when = Date.parse(text);
  if (Number.isNaN(when)) return undefined;
  return Math.max(0, when - nowMs);
}

/**
 * Waits `ms` milliseconds; rejects with the signal's reason as soon as `signal`
 * aborts (and clears its timer, so nothing is left pending).
 *
 * @example
 * ```ts
 * import { abortableSleep } from "./backoff.ts";
 *
 * await abortableSleep(1);
 * ```
 */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * A promise that rejects with `signal.reason` once `signal` aborts (at once
 * if it already has), to race against a read; `dispose()` removes its
 * listener. Its rejection is handled, so it never goes unhandled when
 * nothing raced it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { abortRace } from "./backoff.ts";
 *
 * const controller = new AbortController();
 * const abort = abortRace(controller.signal);
 * controller.abort(new Error("stop"));
 * await assert.rejects(abort.promise, /stop/);
 * abort.dispose();
 * ```
 */
export function abortRace(signal: AbortSignal): { promise: Promise<never>; dispose(): void } {
  let onAbort: (() => void) | undefined;
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  promise.catch(() => {});
  return { promise, dispose: () => signal.removeEventListener("abort", onAbort!) };
}
