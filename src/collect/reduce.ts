/**
 * Reduction of sample streams to one value per (series, hour), the CMMO way
 * (contract §3.2), and the same numbers assembled from server-side
 * `*_over_time` answers.
 *
 * @module
 */

import type { Reduction } from "./catalogue_groups.ts";

/** A reduced stream: the reduced value and the number of samples `n`. */
export interface Reduced {
  /** Σ, max, min or average of the samples. */
  readonly value: number;
  /** Number of samples in the stream (used by `max × 60·n`). */
  readonly n: number;
}

/**
 * Parses a Prometheus sample value string (`"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`,
 * `"1e+21"`) to a float64, like Go's `strconv.ParseFloat`.
 *
 * @example
 * ```ts
 * import { parseSampleValue } from "./reduce.ts";
 * parseSampleValue("+Inf"); // Infinity
 * ```
 */
export function parseSampleValue(text: string): number {
  switch (text) {
    case "+Inf":
    case "Inf":
      return Infinity;
    case "-Inf":
      return -Infinity;
    case "NaN":
      return NaN;
  }
  const v = Number(text);
  if (Number.isNaN(v) || text.trim() === "") {
    throw new SyntaxError(`Not a Prometheus sample value: ${JSON.stringify(text)}`);
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
  const n = values.length;
  if (n === 0) return { value: 0, n: 0 };
  switch (reduction) {
    case "sum": {
      let sum = 0;
      for (const [, v] of values) sum += parseSampleValue(v);
      return { value: sum, n };
    }
    case "avg": {
      let sum = 0;
      for (const [, v] of values) sum += parseSampleValue(v);
      return { value: sum / n, n };
    }
    case "max": {
      let max = parseSampleValue(values[0]![1]);
      for (const [, s] of values) {
        const v = parseSampleValue(s);
        if (v > max) max = v;
      }
      return { value: max, n };
    }
    case "min": {
      let min = parseSampleValue(values[0]![1]);
      for (const [, s] of values) {
        const v = parseSampleValue(s);
        if (v < min) min = v;
      }
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
      throw new RangeError(`Server aggregate "${a}" missing for reduction "${reduction}"`);
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
