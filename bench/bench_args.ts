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

/** The flags every benchmark takes (for `parseArgs`). */
export const COMMON_OPTIONS = {
  iterations: { type: "string" },
  "hours-per-file": { type: "string" },
  cache: { type: "string" },
  "json-out": { type: "string" },
} as const;

/** Parsed {@linkcode COMMON_OPTIONS}. */
export interface CommonArgs {
  readonly iterations: number;
  /** Hours per OpenMetrics file given to promtool. */
  readonly hoursPerFile: number;
  readonly cacheDir?: string;
  readonly jsonOut?: string;
}

/**
 * Reads the {@linkcode COMMON_OPTIONS} values of `parseArgs`; `--cache`
 * defaults to `BENCH_CACHE` of `env`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { commonArgs } from "./bench_args.ts";
 *
 * assert.deepEqual(
 *   commonArgs({ iterations: "5" }, { BENCH_CACHE: "/c" }, { iterations: 3, hoursPerFile: 6 }),
 *   { iterations: 5, hoursPerFile: 6, cacheDir: "/c" },
 * );
 * ```
 */
export function commonArgs(
  values: {
    readonly iterations?: string;
    readonly "hours-per-file"?: string;
    readonly cache?: string;
    readonly "json-out"?: string;
  },
  env: Readonly<Record<string, string | undefined>>,
  defaults: { readonly iterations: number; readonly hoursPerFile: number },
): CommonArgs {
  const cacheDir = values.cache ?? (env.BENCH_CACHE || undefined);
  return {
    iterations: integerArg("iterations", values.iterations, defaults.iterations, 1, 99),
    hoursPerFile: integerArg(
      "hours-per-file",
      values["hours-per-file"],
      defaults.hoursPerFile,
      1,
      24,
    ),
    ...(cacheDir ? { cacheDir } : {}),
    ...(values["json-out"] ? { jsonOut: values["json-out"] } : {}),
  };
}
