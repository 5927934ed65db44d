/**
 * Payload splitting exactly as CMMO does it (contract §4.5,
 * `CMMO:internal/packaging/packaging.go`: `needSplit`, `splitFiles`, `writePart`).
 *
 * - A split is needed when any staged CSV is ≥ `maxBytes` or the running total
 *   of the staged CSV sizes reaches ≥ `maxBytes`.
 * - Only CSVs ≥ `maxBytes` are cut. Each part repeats the header; rows are
 *   copied while an estimate of the written size stays below `maxBytes`, and
 *   the row that crosses the limit is still written into the current part.
 *   The estimate per row is `len + trunc(len × 0.03)` where `len` is the UTF-8
 *   byte length of the fields joined by `,` (quoting is not counted).
 * - If the last row of a part is also the last row of the file, CMMO still
 *   opens one more part and finds the end of the file there, so that last part
 *   holds only the header. This is reproduced.
 * - At most 999 parts (CMMO's `maxSplits` = 1000). CMMO silently drops the
 *   rows beyond; thanos-bridge throws instead of shipping a truncated day.
 *
 * @module
 */

import { encodeRecord } from "./csv.ts";

/** CMMO's default and maximum payload size: 100 MiB (contract §4.2). */
export const DEFAULT_MAX_BYTES = 104_857_600;

/** CMMO's `maxSplits`: the part counter stops the loop when it reaches this value. */
export const MAX_SPLITS = 1000;

/** CMMO's `variance`: the estimate is 3 % above the plain comma-joined length. */
const VARIANCE = 0.03;

/** Part files are written once this many UTF-16 units of encoded rows accumulate. */
const BATCH_CHARS = 1 << 20;

const encoder = new TextEncoder();

/**
 * CMMO's `needSplit`: true when any size is ≥ `maxBytes` or the running total
 * reaches ≥ `maxBytes`.
 *
 * @example
 * ```ts
 * import { needSplit } from "./split.ts";
 * needSplit([40, 50], 100); // false
 * needSplit([40, 60], 100); // true (total reaches 100)
 * ```
 */
export function needSplit(sizes: readonly number[], maxBytes: number): boolean {
  assertMaxBytes(maxBytes);
  let total = 0;
  for (const size of sizes) {
    total += size;
    if (size >= maxBytes || total >= maxBytes) return true;
  }
  return false;
}

/**
 * CMMO's per-row size estimate: `len + int(float64(len) × 0.03)` with `len`
 * the UTF-8 byte length of `fields.join(",")`.
 *
 * @example
 * ```ts
 * import { rowSizeEstimate } from "./split.ts";
 * rowSizeEstimate(["a".repeat(50), "b".repeat(49)]); // 100 + 3 = 103
 * ```
 */
export function rowSizeEstimate(fields: readonly string[]): number {
  const len = utf8Length(fields.join(","));
  return len + Math.trunc(len * VARIANCE);
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

function assertMaxBytes(maxBytes: number): void {
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw new RangeError(`Invalid maxBytes ${maxBytes}: expected a positive integer`, {
      cause: { maxBytes },
    });
  }
}

/** One part written by {@linkcode splitCsv}. */
export interface SplitPart {
  /** Part number k, starting at 1 (appended to the month in the staged name). */
  k: number;
  /** Where the part was written. */
  path: string;
  /** Size of the part file in bytes. */
  bytes: number;
  /** Data rows in the part (header not counted). */
  rows: number;
}

/** Options of {@linkcode splitCsv}. */
export interface SplitCsvOptions {
  /** Limit that closes a part once the row estimate reaches it. */
  maxBytes: number;
  /** Path of part k (k = 1, 2, …); the file must not exist yet. */
  partPath: (k: number) => string;
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await file.write(data.subarray(offset));
}

/**
 * Cuts one CSV, given as parsed records (header first), into parts written
 * with Go `encoding/csv` quoting, exactly as CMMO's `splitFiles`/`writePart`.
 *
 * @example
 * ```ts
 * import { splitCsv } from "./split.ts";
 * const dir = await Deno.makeTempDir();
 * async function* records() {
 *   yield ["a", "b"];
 *   for (let i = 0; i < 10; i++) yield ["x".repeat(10), String(i)];
 * }
 * const parts = await splitCsv(records(), { maxBytes: 30, partPath: (k) => `${dir}/p${k}.csv` });
 * parts.map((p) => p.rows); // [3, 3, 3, 1]
 * ```
 */
export async function splitCsv(
  records: AsyncIterable<readonly string[]>,
  options: SplitCsvOptions,
): Promise<SplitPart[]> {
  assertMaxBytes(options.maxBytes);
  const it = records[Symbol.asyncIterator]();
  const parts: SplitPart[] = [];
  const created: string[] = [];
  let finished = false;
  try {
    const first = await it.next();
    if (first.done) {
      throw new SyntaxError("splitCsv: the CSV has no header record");
    }
    const header = first.value;
    const headerLine = encodeRecord(header);
    let k = 1;
    let eof = false;
    while (true) {
      const path = options.partPath(k);
      const file = await Deno.open(path, { write: true, createNew: true });
      created.push(path);
      let bytes = 0;
      let rows = 0;
      try {
        let pending: string[] = [headerLine];
        let chars = headerLine.length;
        const flush = async () => {
          if (pending.length === 0) return;
          const data = encoder.encode(pending.join(""));
          await writeAll(file, data);
          bytes += data.length;
          pending = [];
          chars = 0;
        };
        let estimate = 0;
        while (true) {
          const next = await it.next();
          if (next.done) {
            eof = true;
            break;
          }
          const row = next.value;
          if (row.length !== header.length) {
            throw new SyntaxError(
              `splitCsv: record ${rows + 1} of part ${k} has ${row.length} fields, ` +
                `expected ${header.length}`,
              { cause: { part: k, row } },
            );
          }
          const line = encodeRecord(row);
          pending.push(line);
          chars += line.length;
          rows++;
          if (chars >= BATCH_CHARS) await flush();
          estimate += rowSizeEstimate(row);
          if (estimate >= options.maxBytes) break;
        }
        await flush();
      } finally {
        file.close();
      }
      parts.push({ k, path, bytes, rows });
      k++;
      if (eof) break;
      if (k >= MAX_SPLITS) {
        const more = await it.next();
        if (more.done) break;
        throw new RangeError(
          `splitCsv: more than ${MAX_SPLITS - 1} parts needed at maxBytes ${options.maxBytes}; ` +
            `CMMO would drop the remaining rows`,
          { cause: { maxBytes: options.maxBytes, parts: parts.length } },
        );
      }
    }
    finished = true;
    return parts;
  } finally {
    if (!finished) {
      for (const path of created) await Deno.remove(path).catch(() => {});
    }
    await it.return?.();
  }
}
