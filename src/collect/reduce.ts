/**
 * Reduction of sample streams to one value per (series, hour), the CMMO way
 * (contract §3.2), and the same numbers assembled from server-side
 * `*_over_time` answers.
 *
 * @module
 */

import { BridgeError, showValue } from "../model.ts";
import type { Reduction } from "./catalogue_groups.ts";
import { parseGoFloat } from "./go_parse_float.ts";

/** A reduced stream: the reduced value and the number of samples `n`. */
export interface Reduced {
  /** Σ, max, min or average of the samples. */
  readonly value: number;
  /** Number of samples in the stream (used by `max × 60·n`). */
  readonly n: number;
}

/**
 * Parses a Prometheus sample value string to a float64 exactly as Go's
 * `strconv.ParseFloat(text, 64)` (see `go_parse_float.ts`): `"1.5"`, `"NaN"`,
 * `"+Inf"`, `"1e+21"`, also `"inf"`, `"0x1p-2"`, `"1_000"`; and refuses what
 * Go refuses (`"0x10"`, `" 1"`, `""`, `"1e400"`) with a `thanos_parse`
 * {@linkcode BridgeError}.
 *
 * @example
 * ```ts
 * import { parseSampleValue } from "./reduce.ts";
 * parseSampleValue("+Inf"); // Infinity
 * ```
 */
export function parseSampleValue(text: string): number {
  const v = typeof text === "string" ? parseGoFloat(text) : undefined;
  if (v === undefined) {
    throw new BridgeError(
      "thanos_parse",
      `not a Prometheus sample value (Go strconv.ParseFloat): ${showValue(text)}`,
    );
  }
  return v;
}

/**
 * Reduces one stream of `[timestamp, "value"]` pairs exactly as CMMO's
 * `getValue`: `sum` adds in time order, `max`/`min` start from the first
 * sample and replace it only on a strict comparison (so a leading NaN sticks,
 * as in Go), `avg` is Σ / n.
 *
 * @example
 * ```ts
 * import { reduceSamples } from "./reduce.ts";
 * reduceSamples([[0, "1"], [60, "3"]], "max"); // { value: 3, n: 2 }
 * ```
 */
export function reduceSamples(
  values: readonly (readonly [number, string])[],
  reduction: Reduction,
): Reduced {
  return reduceValues(values.map(([, v]) => parseSampleValue(v)), reduction);
}

/**
 * {@linkcode reduceSamples} on values already read (in time order): CMMO's
 * `getValue` arithmetic.
 *
 * @example
 * ```ts
 * import { reduceValues } from "./reduce.ts";
 * reduceValues([1, 3], "avg"); // { value: 2, n: 2 }
 * ```
 */
export function reduceValues(values: readonly number[], reduction: Reduction): Reduced {
  const n = values.length;
  if (n === 0) return { value: 0, n: 0 };
  switch (reduction) {
    case "sum": {
      let sum = 0;
      for (const v of values) sum += v;
      return { value: sum, n };
    }
    case "avg": {
      let sum = 0;
      for (const v of values) sum += v;
      return { value: sum / n, n };
    }
    case "max": {
      let max = values[0]!;
      for (const v of values) if (v > max) max = v;
      return { value: max, n };
    }
    case "min": {
      let min = values[0]!;
      for (const v of values) if (v < min) min = v;
      return { value: min, n };
    }
  }
}

/** Server-side aggregation functions the bridge asks Thanos for. */
export type ServerAggregate = "sum" | "max" | "min" | "count";

/**
 * Which `*_over_time` aggregates are needed to rebuild a reduction server-side.
 * Label-only queries (`null`) need only `count` (the series' presence).
 *
 * @example
 * ```ts
 * import { serverAggregates } from "./reduce.ts";
 * serverAggregates("max"); // ["max", "count"]
 * ```
 */
export function serverAggregates(reduction: Reduction | null): readonly ServerAggregate[] {
  switch (reduction) {
    case null:
      return ["count"];
    case "sum":
      return ["sum"];
    case "max":
      return ["max", "count"];
    case "min":
      return ["min", "count"];
    case "avg":
      return ["sum", "count"];
  }
}

/**
 * Rebuilds a {@link Reduced} from server-side aggregates of the same 60
 * evaluation points: `sum_over_time` is Σ, `count_over_time` is n, and the
 * average is computed here as Σ / n (not `avg_over_time`) so it matches CMMO's
 * arithmetic exactly.
 *
 * @example
 * ```ts
 * import { combineServerAggregates } from "./reduce.ts";
 * combineServerAggregates("max", { max: 4, count: 60 }); // { value: 4, n: 60 }
 * ```
 */
export function combineServerAggregates(
  reduction: Reduction,
  aggs: Partial<Record<ServerAggregate, number>>,
): Reduced {
  const need = (a: ServerAggregate): number => {
    const v = aggs[a];
    if (v === undefined) {
      throw new BridgeError(
        "thanos_parse",
        `server aggregate "${a}" missing for reduction "${reduction}"`,
      );
    }
    return v;
  };
  switch (reduction) {
    case "sum":
      return { value: need("sum"), n: aggs.count ?? 0 };
    case "max":
      return { value: need("max"), n: need("count") };
    case "min":
      return { value: need("min"), n: need("count") };
    case "avg":
      return { value: need("sum") / need("count"), n: need("count") };
  }
}
