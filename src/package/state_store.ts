/**
 * Hour-fragment state store (BRIDGE §2).
 *
 * Every collected (cluster, UTC day, hour) is kept as one fragment file per
 * report: the CSV-encoded data rows of that hour (no header), already in final
 * row order. Day payloads are assembled from these fragments, so each hour is
 * queried from Thanos only once.
 *
 * Layout:
 *
 * ```text
 * <root>/<clusterId>/<YYYY-MM-DD>/<HH>/<report>.csv
 * <root>/<clusterId>/<YYYY-MM-DD>/<HH>/hour.json
 * ```
 *
 * An hour is written into a temporary folder inside the day folder and then
 * renamed into place, so readers only ever see complete hours. Folders whose
 * names start with `.` are work folders and are ignored by readers.
 *
 * @module
 */

import { join } from "node:path";
import { REPORT_NAMES, reportDefinition, type ReportName } from "../collect/reports.ts";
import { encodeRecord } from "./csv.ts";

/** What `hour.json` records about one committed hour. */
export interface HourMeta {
  /** Hour of the UTC day, 0–23. */
  hour: number;
  /** When the hour was collected, ISO 8601 (UTC). */
  collectedAt: string;
  /** How it was collected (for example `raw` or `server-side`); informational. */
  mode: string;
  /** True when the collection found no data at all for this hour. */
  noData: boolean;
  /** Data rows per report fragment. */
  rows: Record<ReportName, number>;
  /** Bytes per report fragment. */
  bytes: Record<ReportName, number>;
}

/** Writes one hour; obtained from {@linkcode StateStore.beginHour}. */
export interface HourWriter {
  /** Appends already-ordered rows (full rows incl. the 4 date columns) to this hour's report fragment. */
  writeRows(report: ReportName, rows: Iterable<readonly string[]>): Promise<void>;
  /** Writes empty fragments for reports without rows and `hour.json`, then renames the hour into place. */
  commit(meta: { collectedAt: Date; mode: string; noData: boolean }): Promise<HourMeta>;
  /** Removes the temporary folder; the committed hour (if any) is left untouched. */
  abort(): Promise<void>;
}

const CLUSTER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const HOUR_DIR = /^\d{2}$/;
const HOUR_FILE = "hour.json";
/** Rows are encoded into one string and written once this many UTF-16 units accumulate. */
const BATCH_CHARS = 1 << 20;

/**
 * Throws a RangeError unless `clusterId` is a safe single path component
 * (`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`, not `.` or `..`).
 *
 * @example
 * ```ts
 * import { assertClusterId } from "./state_store.ts";
 * assertClusterId("16b9a60d-0774-4102-9028-bd28d6c38ac2"); // ok
 * // assertClusterId("../etc") throws RangeError
 * ```
 */
export function assertClusterId(clusterId: string): void {
  if (
    typeof clusterId !== "string" || !CLUSTER_ID.test(clusterId) || clusterId === "." ||
    clusterId === ".."
  ) {
    throw new RangeError(
      `Invalid cluster id ${JSON.stringify(clusterId)}: expected 1-253 characters of ` +
        `[A-Za-z0-9._-] starting with a letter or digit`,
      { cause: { clusterId } },
    );
  }
}

/**
 * Throws a RangeError unless `day` is a real calendar date written `YYYY-MM-DD`.
 *
 * @example
 * ```ts
 * import { assertDay } from "./state_store.ts";
 * assertDay("2024-02-29"); // ok
 * // assertDay("2023-02-29") throws RangeError
 * ```
 */
export function assertDay(day: string): void {
  const m = typeof day === "string" ? DAY.exec(day) : null;
  if (m) {
    const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const t = new Date(0);
    t.setUTCFullYear(y, mo - 1, d);
    if (t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d) return;
  }
  throw new RangeError(`Invalid day ${JSON.stringify(day)}: expected a real date as YYYY-MM-DD`, {
    cause: { day },
  });
}

/**
 * Throws a RangeError unless `hour` is an integer from 0 to 23.
 *
 * @example
 * ```ts
 * import { assertHour } from "./state_store.ts";
 * assertHour(23); // ok
 * // assertHour(24) throws RangeError
 * ```
 */
export function assertHour(hour: number): void {
  if (!Number.isInteger(hour) || hour < 0 || hour > 23) {
    throw new RangeError(`Invalid hour ${JSON.stringify(hour)}: expected an integer 0-23`, {
      cause: { hour },
    });
  }
}

function hourDirName(hour: number): string {
  return String(hour).padStart(2, "0");
}

function zeroCounts(): Record<ReportName, number> {
  const out = {} as Record<ReportName, number>;
  for (const name of REPORT_NAMES) out[name] = 0;
  return out;
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await file.write(data.subarray(offset));
}

/**
 * Whether something exists at `path` (without following a final symlink).
 *
 * @example
 * ```ts
 * import { pathExists } from "./state_store.ts";
 * await pathExists("/definitely/not/here"); // false
 * ```
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

function parseCounts(value: unknown, path: string, key: string): Record<ReportName, number> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SyntaxError(`${path}: "${key}" must be an object`, { cause: { path, key } });
  }
  const out = zeroCounts();
  for (const name of REPORT_NAMES) {
    const n = (value as Record<string, unknown>)[name];
    if (n === undefined) continue;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
      throw new SyntaxError(`${path}: "${key}.${name}" must be a non-negative integer`, {
        cause: { path, key, report: name, value: n },
      });
    }
    out[name] = n;
  }
  return out;
}

function parseHourMeta(text: string, path: string, expectedHour: number): HourMeta {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new SyntaxError(`${path}: not valid JSON`, { cause: err });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new SyntaxError(`${path}: expected a JSON object`, { cause: { path } });
  }
  const o = raw as Record<string, unknown>;
  if (o.hour !== expectedHour) {
    throw new SyntaxError(
      `${path}: "hour" is ${JSON.stringify(o.hour)}, expected ${expectedHour}`,
      {
        cause: { path, hour: o.hour },
      },
    );
  }
  if (typeof o.collectedAt !== "string" || Number.isNaN(Date.parse(o.collectedAt))) {
    throw new SyntaxError(`${path}: "collectedAt" must be an ISO date string`, {
      cause: { path, collectedAt: o.collectedAt },
    });
  }
  if (typeof o.mode !== "string" || typeof o.noData !== "boolean") {
    throw new SyntaxError(`${path}: "mode" must be a string and "noData" a boolean`, {
      cause: { path },
    });
  }
  return {
    hour: expectedHour,
    collectedAt: o.collectedAt,
    mode: o.mode,
    noData: o.noData,
    rows: parseCounts(o.rows, path, "rows"),
    bytes: parseCounts(o.bytes, path, "bytes"),
  };
}

/**
 * File-system store of hour fragments.
 *
 * @example
 * ```ts
 * import { StateStore } from "./state_store.ts";
 * const store = new StateStore(await Deno.makeTempDir());
 * const w = await store.beginHour("my-cluster", "2026-11-01", 0);
 * await w.writeRows("namespace", [[
 *   "2026-11-01 00:00:00 +0000 UTC", "2026-12-01 00:00:00 +0000 UTC",
 *   "2026-11-01 00:00:00 +0000 UTC", "2026-11-01 00:59:59 +0000 UTC", "default", "",
 * ]]);
 * await w.commit({ collectedAt: new Date(), mode: "raw", noData: false });
 * (await store.listHours("my-cluster", "2026-11-01")).get(0)?.rows.namespace; // 1
 * ```
 */
export class StateStore {
  /** Root folder of the store. */
  readonly root: string;

  /**
   * @param root Root folder; created on the first write.
   */
  constructor(root: string) {
    if (typeof root !== "string" || root === "") {
      throw new TypeError(`StateStore root must be a non-empty path, got ${JSON.stringify(root)}`);
    }
    this.root = root;
  }

  /** Folder of one cluster-day. */
  dayPath(clusterId: string, day: string): string {
    assertClusterId(clusterId);
    assertDay(day);
    return join(this.root, clusterId, day);
  }

  /** Folder of one committed hour. */
  hourPath(clusterId: string, day: string, hour: number): string {
    assertHour(hour);
    return join(this.dayPath(clusterId, day), hourDirName(hour));
  }

  /** Path of one committed report fragment. */
  fragmentPath(clusterId: string, day: string, hour: number, report: ReportName): string {
    reportDefinition(report);
    return join(this.hourPath(clusterId, day, hour), `${report}.csv`);
  }

  /** Starts writing one hour; rows are streamed per report, then committed atomically. */
  async beginHour(clusterId: string, day: string, hour: number): Promise<HourWriter> {
    const finalDir = this.hourPath(clusterId, day, hour);
    const dayDir = this.dayPath(clusterId, day);
    await Deno.mkdir(dayDir, { recursive: true });
    const tempDir = await Deno.makeTempDir({ dir: dayDir, prefix: `.hour-${hourDirName(hour)}-` });
    return new FsHourWriter(dayDir, finalDir, tempDir, hour);
  }

  /** Committed hours of one cluster-day, ascending by hour. Missing day → empty map. */
  async listHours(clusterId: string, day: string): Promise<Map<number, HourMeta>> {
    const dayDir = this.dayPath(clusterId, day);
    const found: number[] = [];
    try {
      for await (const entry of Deno.readDir(dayDir)) {
        if (!entry.isDirectory || !HOUR_DIR.test(entry.name)) continue;
        const hour = Number(entry.name);
        if (hour <= 23) found.push(hour);
      }
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return new Map();
      throw err;
    }
    found.sort((a, b) => a - b);
    const out = new Map<number, HourMeta>();
    for (const hour of found) {
      const path = join(dayDir, hourDirName(hour), HOUR_FILE);
      let text: string;
      try {
        text = await Deno.readTextFile(path);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue; // not a committed hour
        throw err;
      }
      out.set(hour, parseHourMeta(text, path, hour));
    }
    return out;
  }
}

class FsHourWriter implements HourWriter {
  #dayDir: string;
  #finalDir: string;
  #tempDir: string;
  #hour: number;
  #files = new Map<ReportName, Deno.FsFile>();
  #rows = zeroCounts();
  #bytes = zeroCounts();
  #state: "open" | "committing" | "done" = "open";
  #encoder = new TextEncoder();

  constructor(dayDir: string, finalDir: string, tempDir: string, hour: number) {
    this.#dayDir = dayDir;
    this.#finalDir = finalDir;
    this.#tempDir = tempDir;
    this.#hour = hour;
  }

  #assertOpen(what: string): void {
    if (this.#state !== "open") {
      throw new Error(`HourWriter.${what}: hour ${this.#hour} is already ${this.#state}`);
    }
  }

  async #file(report: ReportName): Promise<Deno.FsFile> {
    let file = this.#files.get(report);
    if (!file) {
      file = await Deno.open(join(this.#tempDir, `${report}.csv`), {
        write: true,
        createNew: true,
      });
      this.#files.set(report, file);
    }
    return file;
  }

  async #flush(report: ReportName, parts: string[]): Promise<void> {
    if (parts.length === 0) return;
    const data = this.#encoder.encode(parts.join(""));
    await writeAll(await this.#file(report), data);
    this.#bytes[report] += data.length;
  }

  async writeRows(report: ReportName, rows: Iterable<readonly string[]>): Promise<void> {
    this.#assertOpen("writeRows");
    const width = reportDefinition(report).header.length;
    let parts: string[] = [];
    let chars = 0;
    let count = 0;
    for (const row of rows) {
      if (row.length !== width) {
        throw new RangeError(
          `Row for report "${report}" has ${row.length} fields, expected ${width}`,
          { cause: { report, row } },
        );
      }
      const line = encodeRecord(row);
      parts.push(line);
      chars += line.length;
      count++;
      if (chars >= BATCH_CHARS) {
        await this.#flush(report, parts);
        this.#rows[report] += count;
        parts = [];
        chars = 0;
        count = 0;
      }
    }
    await this.#flush(report, parts);
    this.#rows[report] += count;
    if (!this.#files.has(report)) await this.#file(report);
  }

  #closeFiles(): void {
    for (const file of this.#files.values()) {
      try {
        file.close();
      } catch {
        // already closed
      }
    }
    this.#files.clear();
  }

  async commit(meta: { collectedAt: Date; mode: string; noData: boolean }): Promise<HourMeta> {
    this.#assertOpen("commit");
    if (!(meta.collectedAt instanceof Date) || Number.isNaN(meta.collectedAt.getTime())) {
      throw new TypeError(`commit: collectedAt must be a valid Date, got ${meta.collectedAt}`);
    }
    this.#state = "committing";
    try {
      for (const name of REPORT_NAMES) await this.#file(name); // empty fragments
      for (const file of this.#files.values()) await file.sync();
      this.#closeFiles();
      const result: HourMeta = {
        hour: this.#hour,
        collectedAt: meta.collectedAt.toISOString(),
        mode: meta.mode,
        noData: meta.noData,
        rows: { ...this.#rows },
        bytes: { ...this.#bytes },
      };
      await Deno.writeTextFile(
        join(this.#tempDir, HOUR_FILE),
        JSON.stringify(result, null, 2) + "\n",
      );
      let old: string | undefined;
      if (await pathExists(this.#finalDir)) {
        old = join(this.#dayDir, `.old-${hourDirName(this.#hour)}-${crypto.randomUUID()}`);
        await Deno.rename(this.#finalDir, old);
      }
      try {
        await Deno.rename(this.#tempDir, this.#finalDir);
      } catch (err) {
        if (old) await Deno.rename(old, this.#finalDir).catch(() => {});
        throw err;
      }
      if (old) await Deno.remove(old, { recursive: true });
      this.#state = "done";
      return result;
    } catch (err) {
      this.#state = "open";
      await this.abort().catch(() => {});
      throw err;
    }
  }

  async abort(): Promise<void> {
    if (this.#state === "done") return;
    this.#state = "done";
    this.#closeFiles();
    try {
      await Deno.remove(this.#tempDir, { recursive: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
}
