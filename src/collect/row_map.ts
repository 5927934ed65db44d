/**
 * CMMO's `mappedResults`: one map per query group from row key to row fields,
 * filled series by series with last-writer-wins (contract §3.3, §3.5).
 *
 * @module
 */

import { formatFloat } from "../package/go_float.ts";
import type { CostQuery } from "./catalogue_groups.ts";
import type { Reduced } from "./reduce.ts";
import { compareUtf8 } from "./utf8_compare.ts";

/** Fields of one row: field name → already formatted string. */
export type Row = Map<string, string>;
/** Row key → row. */
export type RowMap = Map<string, Row>;
/** Labels of one series. */
export type Labels = Readonly<Record<string, string>>;

/**
 * The row key of a series: the single RowKey label's value, or the values of
 * several RowKey labels sorted (byte order) and joined with `,` (CMMO
 * `generateKey`). Absent labels count as `""`.
 *
 * @example
 * ```ts
 * import { rowKey } from "./row_map.ts";
 * rowKey({ pod: "a", namespace: "b" }, ["pod", "namespace"]); // "a,b"
 * ```
 */
export function rowKey(metric: Labels, keys: readonly string[]): string {
  switch (keys.length) {
    case 1:
      return metric[keys[0]!] ?? "";
    case 2: {
      // Equal values are interchangeable, so two or three strings sort without an array.
      const a = metric[keys[0]!] ?? "";
      const b = metric[keys[1]!] ?? "";
      return compareUtf8(a, b) <= 0 ? `${a},${b}` : `${b},${a}`;
    }
    case 3: {
      let a = metric[keys[0]!] ?? "";
      let b = metric[keys[1]!] ?? "";
      let c = metric[keys[2]!] ?? "";
      let t: string;
      if (compareUtf8(a, b) > 0) {
        t = a;
        a = b;
        b = t;
      }
      if (compareUtf8(b, c) > 0) {
        t = b;
        b = c;
        c = t;
        if (compareUtf8(a, b) > 0) {
          t = a;
          a = b;
          b = t;
        }
      }
      return `${a},${b},${c}`;
    }
    default:
      return keys.map((k) => metric[k] ?? "").sort(compareUtf8).join(",");
  }
}

const regexCache = new Map<string, RegExp>();

/**
 * CMMO `findFields`: every label whose **name** matches the (unanchored) Go
 * regexp becomes `name:value`; the strings are sorted by byte order and joined
 * with `|`. No matches give `""`. Nothing is escaped.
 *
 * @example
 * ```ts
 * import { serializeLabels } from "./row_map.ts";
 * serializeLabels({ label_b: "2", label_a: "x:y", pod: "p" }, "label_*");
 * // "label_a:x:y|label_b:2"
 * ```
 */
export function serializeLabels(metric: Labels, pattern: string): string {
  let re = regexCache.get(pattern);
  if (!re) {
    re = new RegExp(pattern);
    regexCache.set(pattern, re);
  }
  const out: string[] = [];
  for (const name in metric) {
    if (re.test(name)) out.push(`${name}:${metric[name]}`);
  }
  return out.length === 0 ? "" : out.sort(compareUtf8).join("|");
}

/**
 * The row of `metric` in `rows` (created when missing), with the query's
 * label fields (CMMO `MetricKey`) and label-regex fields (`MetricKeyRegex`)
 * written: the part every query type shares. Later writes overwrite earlier
 * ones.
 *
 * @example
 * ```ts
 * import { labelRow } from "./row_map.ts";
 * const rows = new Map();
 * labelRow(rows, { rowKey: ["node"], labels: { node: "node" }, labelRegex: {} }, { node: "n1" })
 *   .get("node"); // "n1"
 * ```
 */
export function labelRow(
  rows: RowMap,
  query: {
    readonly rowKey: readonly string[];
    readonly labels: Readonly<Record<string, string>>;
    readonly labelRegex: Readonly<Record<string, string>>;
  },
  metric: Labels,
): Row {
  const key = rowKey(metric, query.rowKey);
  let row = rows.get(key);
  if (!row) {
    row = new Map();
    rows.set(key, row);
  }
  for (const field in query.labels) {
    row.set(field, metric[query.labels[field]!] ?? "");
  }
  for (const field in query.labelRegex) {
    row.set(field, serializeLabels(metric, query.labelRegex[field]!));
  }
  return row;
}

/**
 * Writes one series into a row map exactly as CMMO's `iterateMatrix`: label
 * fields, regex label fields, then the reduced value under `value.field` and,
 * if the query has one, `value × 60` (sum) or `value × (60·n)` (max) under
 * `value.transformedField`, all formatted with Go's `%.6f`.
 *
 * @example
 * ```ts
 * import { applySeries, type RowMap } from "./row_map.ts";
 * import { COST_QUERIES } from "./catalogue.ts";
 * const rows: RowMap = new Map();
 * const q = COST_QUERIES.find((q) => q.name === "node-capacity-cpu-cores")!;
 * applySeries(rows, q, { node: "n1", provider_id: "aws:///x/i-1" }, { value: 4, n: 60 });
 * rows.get("n1")!.get("node-capacity-cpu-core-seconds"); // "14400.000000"
 * ```
 */
export function applySeries(
  rows: RowMap,
  query: CostQuery,
  metric: Labels,
  reduced: Reduced | null,
): void {
  const row = labelRow(rows, query, metric);
  const value = query.value;
  if (value && reduced) {
    row.set(value.field, formatFloat(reduced.value));
    if (value.transformedField !== null) {
      let factor = 60;
      if (value.reduction === "max") factor *= reduced.n;
      row.set(value.transformedField, formatFloat(reduced.value * factor));
    }
  }
}
