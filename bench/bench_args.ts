/**
 * Command-line helpers shared by the benchmarks (`bench.ts`, `fleet.ts`,
 * `skip.ts`).
 *
 * @module
 */

/**
 * Parses the integer value of `--<name>`, or returns `fallback` when absent.
 *
 * @throws {RangeError} Naming the flag and the bad value, when it is not an
 *   integer in `[min, max]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { integerArg } from "./bench_args.ts";
 *
 * assert.equal(integerArg("pods", undefined, 2000, 1, 100_000), 2000);
 * assert.equal(integerArg("pods", "500", 2000, 1, 100_000), 500);
 * assert.throws(() => integerArg("pods", "0", 2000, 1, 100_000), /--pods "0"/);
 * ```
 */
export function integerArg(
  name: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || n < min || n > max) {
    throw new RangeError(`Invalid --${name} "${raw}": expected an integer in [${min}, ${max}]`);
  }
  return n;
}
