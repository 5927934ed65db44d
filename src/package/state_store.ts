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
 * <root>/<clusterId>/<YYYY-MM-DD>/<HH>/ros-<report>.csv  ROS fragments, only when a window passed
 * <root>/<clusterId>/<YYYY-MM-DD>/<HH>/hour.json      sizes, SHA-256s, collection parameters
 * <root>/quarantine/<clusterId>/<YYYY-MM-DD>/<HH>-<timestamp>   hours found damaged
 * <root>/.spool/                                       payload tarballs before delivery
 * ```
 *
 * An hour is written into a temporary folder inside the day folder
 * (`.hour-<HH>-<pid>-<random>`), fsynced, and then renamed into place (the day
 * folder is fsynced after the rename), so readers only ever see complete hours
 * and a power cut cannot leave a committed hour with empty files. Folders whose
 * names start with `.` are work folders and are ignored by readers;
 * {@linkcode StateStore.cleanup} removes those a killed process left behind.
 *
 * Every file-system error becomes a {@linkcode BridgeError}: `disk_full` for
 * "no space left on device", `state_io` for any other I/O failure,
 * `state_corrupt` for a fragment that does not match its `hour.json`. The
 * message names the path.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  REPORT_NAMES,
  reportDefinition,
  type ReportName,
  ROS_REPORT_NAMES,
  ROS_REPORTS,
  type RosReportName,
} from "../collect/reports.ts";
import { BridgeError, isClusterId, isDay, isDiskFull, isHour } from "../model.ts";
import { encodeRecord } from "./csv.ts";

/**
 * How an hour was collected. An hour collected with other parameters than the
 * current ones is not trustworthy for the current settings (a wrong cluster
 * label gives "no data", another rate window other values) and must be
 * collected again; see {@linkcode hourMatches}. The reduce mode is recorded
 * but not compared: every mode writes CMMO's values, so it says how an hour
 * was collected, not what it holds.
 */
export interface CollectionParams {
  /** Label carrying the cluster id (`--cluster-label`). */
  readonly clusterLabel: string;
  /** Range window of `rate`/`*_over_time` (`--rate-window`). */
  readonly rateWindow: string;
  /** Where values were reduced (`--reduce`): `server`, `client` or `local`; not compared. */
  readonly reduce: string;
  /** `planFingerprint(plan)`: SHA-256 (hex) of the expressions actually sent. */
  readonly queryHash: string;
  /**
   * `rosPlanFingerprint(rosPlan)` when the hour was collected with the ROS
   * reports; absent when collected without them (`--no-ros`, or before ROS).
   */
  readonly rosHash?: string;
}

/** Any report that has hour fragments: the six cost reports and the two ROS reports. */
export type FragmentName = ReportName | RosReportName;

/**
 * What `hour.json` records about the ROS reports of an hour collected with
 * them. CMMO writes a ROS file only for a 15-minute window that passed the
 * namespace filter, so the ROS fragments exist only when `windows > 0`
 * (then both, a fragment may be empty: the header-only file of CMMO).
 */
export interface RosHourMeta {
  /** Windows of the hour (0–4) that passed the namespace filter. */
  windows: number;
  /** Data rows per ROS fragment (0 when `windows` is 0). */
  rows: Record<RosReportName, number>;
  /** Bytes per ROS fragment (0 when `windows` is 0). */
  bytes: Record<RosReportName, number>;
  /** SHA-256 (lower-case hex) per ROS fragment; null when `windows` is 0 (no fragments). */
  sha256: Record<RosReportName, string> | null;
}

/** Former name of {@linkcode CollectionParams}. */
export type HourParams = CollectionParams;

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
  /** SHA-256 (lower-case hex) per report fragment; null in an `hour.json` written before hashes. */
  sha256: Record<ReportName, string> | null;
  /** Collection parameters; null when not recorded (older `hour.json`): "other parameters". */
  params: CollectionParams | null;
  /** ROS reports of the hour; null when collected without them (or an older `hour.json`). */
  ros: RosHourMeta | null;
}

/** What {@linkcode HourWriter.commit} records besides what the writer counted itself. */
export interface HourCommit {
  /** When the hour was collected. */
  collectedAt: Date;
  /** How it was collected; informational. */
  mode: string;
  /** True when the collection found no data at all. */
  noData: boolean;
  /** Collection parameters (see {@linkcode hourMatches}); omitted or null = not recorded. */
  params?: CollectionParams | null;
  /**
   * Collected with the ROS reports: how many of the hour's windows passed the
   * namespace filter. With `windows > 0` both ROS fragments are committed
   * (empty ones for a report without rows); with 0, none (and no ROS rows may
   * have been written). Omitted or null: collected without ROS.
   */
  ros?: { windows: number } | null;
}

/** Writes one hour; obtained from {@linkcode StateStore.beginHour}. */
export interface HourWriter {
  /**
   * Appends already-ordered rows (full rows incl. the 4 date columns) to this
   * hour's report fragment (a cost report, or a ROS report when the commit
   * records passed ROS windows).
   */
  writeRows(report: FragmentName, rows: Iterable<readonly string[]>): Promise<void>;
  /**
   * Writes empty fragments for reports without rows and `hour.json`, fsyncs
   * them and the temporary folder, renames the hour into place and fsyncs the
   * day folder. On failure the temporary folder is removed and the error
   * (a {@linkcode BridgeError}) is rethrown.
   */
  commit(meta: HourCommit): Promise<HourMeta>;
  /** Removes the temporary folder; the committed hour (if any) is left untouched. */
  abort(): Promise<void>;
}

/** A committed hour found damaged, and where it was moved. */
export interface QuarantinedHour {
  /** Cluster id. */
  readonly clusterId: string;
  /** UTC day, `YYYY-MM-DD`. */
  readonly day: string;
  /** Hour of the day. */
  readonly hour: number;
  /** The hour folder where it was found. */
  readonly path: string;
  /** What is wrong, naming the file. */
  readonly reason: string;
  /** Where it was moved (`<root>/quarantine/…`), or null when it was not moved. */
  readonly movedTo: string | null;
}

/** Result of {@linkcode StateStore.listHours}. */
export interface HourScan {
  /** Committed, consistent hours, ascending by hour. */
  readonly hours: Map<number, HourMeta>;
  /** Hours found damaged during this scan (moved aside; absent from `hours`). */
  readonly quarantined: QuarantinedHour[];
}

/** What {@linkcode StateStore.cleanup} did. */
export interface CleanupReport {
  /** Temporary folders, replaced hours and spool files of dead processes that were removed. */
  readonly removed: string[];
  /** Hour folders put back from a `.old-*` folder whose replacement never landed. */
  readonly restored: string[];
}

/**
 * The file-system writes of the store and of payload building go through this
 * layer, so that tests can inject failures (e.g. ENOSPC).
 */
export interface StoreFileSystem {
  /** Writes all of `data` to `file`; `path` is the file's path, for messages. */
  write(file: Deno.FsFile, data: Uint8Array, path: string): Promise<void>;
}

/** Options of a {@linkcode StateStore}. */
export interface StateStoreOptions {
  /** Replaces parts of the default file-system layer (tests). */
  readonly fs?: Partial<StoreFileSystem>;
  /** Called for every hour moved to quarantine (e.g. to log a warning). */
  readonly onWarning?: (warning: QuarantinedHour) => void;
}

const HOUR_DIR = /^\d{2}$/;
const HOUR_FILE = "hour.json";
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** `.hour-HH-<pid>-<random>` and `.old-HH-<pid>-<random>` in a day folder. */
const WORK_DIR = /^\.(hour|old)-(\d{2})-/;
/** Spool work entries of a build: `.<tag>-<file>.partial` and `<tag>-split`. */
const SPOOL_WORK = /^(?:\..+\.partial|.+-split)$/;
/** Default age after which a finished but undelivered spool tarball is removed: 24 h. */
export const SPOOL_MAX_AGE_MS = 24 * 3_600_000;
/** Rows are encoded into one string and written once this many UTF-16 units accumulate. */
const BATCH_CHARS = 1 << 20;
const READ_CHUNK = 256 * 1024;
/** The quarantine folder under the root. */
export const QUARANTINE_DIR = "quarantine";
/** The default spool folder under the root. */
export const SPOOL_DIR = ".spool";

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
  if (!isClusterId(clusterId)) {
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
  if (isDay(day)) return;
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
  if (!isHour(hour)) {
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

function zeroRosCounts(): Record<RosReportName, number> {
  const out = {} as Record<RosReportName, number>;
  for (const name of ROS_REPORT_NAMES) out[name] = 0;
  return out;
}

function isRosReport(name: string): name is RosReportName {
  return (ROS_REPORT_NAMES as readonly string[]).includes(name);
}

/**
 * The CSV header of a cost or ROS report.
 *
 * @example
 * ```ts
 * import { fragmentHeader } from "./state_store.ts";
 * fragmentHeader("ros-namespace").length; // 25
 * fragmentHeader("pod").length; // 20
 * ```
 */
export function fragmentHeader(name: FragmentName): readonly string[] {
  if (isRosReport(name)) return ROS_REPORTS.find((r) => r.name === name)!.header;
  return reportDefinition(name).header;
}

/** The fragments of a committed hour, with the size and hash `hour.json` records. */
function recordedFragments(
  meta: HourMeta,
): { name: FragmentName; bytes: number; sha256: string | null }[] {
  const out: { name: FragmentName; bytes: number; sha256: string | null }[] = REPORT_NAMES.map((
    name,
  ) => ({ name, bytes: meta.bytes[name], sha256: meta.sha256?.[name] ?? null }));
  if (meta.ros && meta.ros.windows > 0) {
    for (const name of ROS_REPORT_NAMES) {
      out.push({ name, bytes: meta.ros.bytes[name], sha256: meta.ros.sha256?.[name] ?? null });
    }
  }
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

/**
 * Turns a file-system error into a {@linkcode BridgeError} that names `path`:
 * `disk_full` for "no space left on device", `state_io` for anything else. A
 * BridgeError is returned as it is.
 *
 * @param err What was thrown.
 * @param path The file or folder being worked on.
 * @param action What was being done, e.g. `writing` or `renaming`.
 *
 * @example
 * ```ts
 * import { storeError } from "./state_store.ts";
 * const err = Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
 * storeError(err, "/state/c/2026-11-01/.hour-03-1-x/pod.csv", "writing").code; // "disk_full"
 * ```
 */
export function storeError(err: unknown, path: string, action: string): BridgeError {
  if (err instanceof BridgeError) return err;
  if (isDiskFull(err)) {
    return new BridgeError("disk_full", `no space left on device while writing ${path}`, {
      cause: err,
    });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new BridgeError("state_io", `${action} ${path} failed: ${message}`, { cause: err });
}

/** Runs one file-system step, turning its errors into {@linkcode storeError}s. */
async function io<T>(path: string, action: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw storeError(err, path, action);
  }
}

/** fsyncs a folder, so that the names created, renamed or removed in it are durable. */
async function syncDir(path: string): Promise<void> {
  await io(path, "syncing", async () => {
    const dir = await Deno.open(path, { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  });
}

/** Removes `path` recursively; already gone is fine. */
async function removeTree(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw storeError(err, path, "removing");
  }
}

/** The default file-system layer. */
const DEFAULT_FS: StoreFileSystem = {
  async write(file: Deno.FsFile, data: Uint8Array): Promise<void> {
    await writeAll(file, data);
  },
};

/**
 * Byte count and SHA-256 (hex) of a file, read in chunks.
 *
 * @example
 * ```ts
 * import { hashFile } from "./state_store.ts";
 * const path = await Deno.makeTempFile();
 * (await hashFile(path)).bytes; // 0
 * ```
 */
export async function hashFile(path: string): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash("sha256");
  let bytes = 0;
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(READ_CHUNK);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
      bytes += n;
    }
  } finally {
    file.close();
  }
  return { bytes, sha256: hash.digest("hex") };
}

/**
 * Opens `path` (a file or folder) and takes an exclusive `flock` on it without
 * waiting. Work files are locked by their writer for as long as they are in
 * use, and the kernel releases the lock when the writer dies, however it dies:
 * a lock that can be taken means the owner is gone. Null when the lock is held
 * by someone else or `path` is gone. The caller closes the returned file.
 *
 * @example
 * ```ts
 * import { tryHold } from "./state_store.ts";
 * const dir = await Deno.makeTempDir();
 * const held = await tryHold(dir);
 * (await tryHold(dir)) === null; // true while `held` is open
 * held?.close();
 * ```
 */
export async function tryHold(path: string): Promise<Deno.FsFile | null> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw storeError(err, path, "opening");
  }
  try {
    if (await file.tryLock(true)) return file;
  } catch (err) {
    file.close();
    throw storeError(err, path, "locking");
  }
  file.close();
  return null;
}

/**
 * Whether a committed hour was collected with these parameters. An
 * `hour.json` without parameters (written before they were recorded) counts as
 * collected with other parameters. The service collects an hour again instead
 * of reusing it when this is false. With `params.rosHash` (ROS on) the hour
 * must carry the same `rosHash`; without it (ROS off) the hour's `rosHash` is
 * not compared: an hour collected with ROS serves a run without ROS as it is.
 * The reduce mode is not compared: the modes differ in where CMMO's
 * evaluations are made, not in the values (the contract's; behind Thanos,
 * server mode's differ at a counter reset, where Thanos adjusts counters and
 * local mode follows CMMO's Prometheus), so a day begun in one mode goes on
 * in another without collecting its hours again (which the service could not
 * do for hours before its run's range: they would stop the day's gap-free run
 * of hours, and so its shipping, until the day ends).
 *
 * @example
 * ```ts
 * import { hourMatches, type HourMeta } from "./state_store.ts";
 * const params = { clusterLabel: "clusterID", rateWindow: "15m", reduce: "server", queryHash: "ab" };
 * hourMatches({ params } as HourMeta, params); // true
 * hourMatches({ params: null } as HourMeta, params); // false
 * hourMatches({ params } as HourMeta, { ...params, reduce: "local" }); // true
 * ```
 */
export function hourMatches(meta: Pick<HourMeta, "params">, params: CollectionParams): boolean {
  const p = meta.params;
  return p !== null && p !== undefined && p.clusterLabel === params.clusterLabel &&
    p.rateWindow === params.rateWindow && p.queryHash === params.queryHash &&
    // With ROS, the hour must have been collected with the same ROS plan; without ROS, an
    // hour collected with ROS is just as good (its ROS fragments are not shipped).
    (params.rosHash === undefined || p.rosHash === params.rosHash);
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

function parseHashes(value: unknown, path: string): Record<ReportName, string> | null {
  if (value === undefined) return null; // written before hashes were recorded
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SyntaxError(`${path}: "sha256" must be an object`, { cause: { path } });
  }
  const out = {} as Record<ReportName, string>;
  for (const name of REPORT_NAMES) {
    const h = (value as Record<string, unknown>)[name];
    if (typeof h !== "string" || !SHA256_HEX.test(h)) {
      throw new SyntaxError(`${path}: "sha256.${name}" must be 64 lower-case hex digits`, {
        cause: { path, report: name },
      });
    }
    out[name] = h;
  }
  return out;
}

function parseParams(value: unknown, path: string): CollectionParams | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new SyntaxError(`${path}: "params" must be an object or null`, { cause: { path } });
  }
  const o = value as Record<string, unknown>;
  for (const key of ["clusterLabel", "rateWindow", "reduce", "queryHash"]) {
    if (typeof o[key] !== "string") {
      throw new SyntaxError(`${path}: "params.${key}" must be a string`, { cause: { path, key } });
    }
  }
  if (o.rosHash !== undefined && typeof o.rosHash !== "string") {
    throw new SyntaxError(`${path}: "params.rosHash" must be a string`, { cause: { path } });
  }
  return {
    clusterLabel: o.clusterLabel as string,
    rateWindow: o.rateWindow as string,
    reduce: o.reduce as string,
    queryHash: o.queryHash as string,
    ...(typeof o.rosHash === "string" ? { rosHash: o.rosHash } : {}),
  };
}

function parseRos(value: unknown, path: string): RosHourMeta | null {
  if (value === undefined || value === null) return null; // collected without ROS
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new SyntaxError(`${path}: "ros" must be an object or null`, { cause: { path } });
  }
  const o = value as Record<string, unknown>;
  const windows = o.windows;
  if (typeof windows !== "number" || !Number.isInteger(windows) || windows < 0 || windows > 4) {
    throw new SyntaxError(`${path}: "ros.windows" must be an integer 0-4`, { cause: { path } });
  }
  const counts = (v: unknown, key: string): Record<RosReportName, number> => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new SyntaxError(`${path}: "ros.${key}" must be an object`, { cause: { path, key } });
    }
    const out = zeroRosCounts();
    for (const name of ROS_REPORT_NAMES) {
      const n = (v as Record<string, unknown>)[name];
      if (
        typeof n !== "number" || !Number.isSafeInteger(n) || n < 0 || (windows === 0 && n !== 0)
      ) {
        throw new SyntaxError(
          `${path}: "ros.${key}.${name}" must be a non-negative integer (0 without windows)`,
          { cause: { path, key, report: name } },
        );
      }
      out[name] = n;
    }
    return out;
  };
  const rows = counts(o.rows, "rows");
  const bytes = counts(o.bytes, "bytes");
  let sha256: Record<RosReportName, string> | null = null;
  if (windows > 0) {
    const h = o.sha256;
    if (typeof h !== "object" || h === null || Array.isArray(h)) {
      throw new SyntaxError(`${path}: "ros.sha256" must be an object`, { cause: { path } });
    }
    sha256 = {} as Record<RosReportName, string>;
    for (const name of ROS_REPORT_NAMES) {
      const x = (h as Record<string, unknown>)[name];
      if (typeof x !== "string" || !SHA256_HEX.test(x)) {
        throw new SyntaxError(`${path}: "ros.sha256.${name}" must be 64 lower-case hex digits`, {
          cause: { path, report: name },
        });
      }
      sha256[name] = x;
    }
  } else if (o.sha256 !== undefined && o.sha256 !== null) {
    throw new SyntaxError(`${path}: "ros.sha256" must be null without windows`, {
      cause: { path },
    });
  }
  return { windows, rows, bytes, sha256 };
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
    sha256: parseHashes(o.sha256, path),
    params: parseParams(o.params, path),
    ros: parseRos(o.ros, path),
  };
}

/** The outcome of the cheap consistency check of one hour folder. */
type HourCheck = { ok: true; meta: HourMeta } | { ok: false; reason: string };

/**
 * Reads and checks one hour folder without hashing: `hour.json` parses and has
 * the right fields, every fragment is a regular file of the recorded size.
 */
async function checkHour(hourDir: string, hour: number): Promise<HourCheck> {
  const metaPath = join(hourDir, HOUR_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(metaPath);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { ok: false, reason: `${metaPath} is missing` };
    const message = err instanceof Error ? err.message : String(err);
    return { ok: false, reason: `${metaPath} cannot be read: ${message}` };
  }
  let meta: HourMeta;
  try {
    meta = parseHourMeta(text, metaPath, hour);
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  }
  for (const { name, bytes, sha256 } of recordedFragments(meta)) {
    const path = join(hourDir, `${name}.csv`);
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        // hour.json files written before hashes never had empty fragments checked.
        if (sha256 === null && bytes === 0) continue;
        return { ok: false, reason: `${path} is missing` };
      }
      const message = err instanceof Error ? err.message : String(err);
      return { ok: false, reason: `${path} cannot be read: ${message}` };
    }
    if (!info.isFile) return { ok: false, reason: `${path} is not a regular file` };
    if (info.size !== bytes) {
      return { ok: false, reason: `${path} has ${info.size} bytes, hour.json says ${bytes}` };
    }
  }
  return { ok: true, meta };
}

/**
 * File-system store of hour fragments.
 *
 * @example
 * ```ts
 * import { StateStore } from "./state_store.ts";
 * const store = new StateStore(await Deno.makeTempDir());
 * await store.cleanup(); // at start: work files of killed processes
 * const w = await store.beginHour("my-cluster", "2026-11-01", 0);
 * await w.writeRows("namespace", [[
 *   "2026-11-01 00:00:00 +0000 UTC", "2026-12-01 00:00:00 +0000 UTC",
 *   "2026-11-01 00:00:00 +0000 UTC", "2026-11-01 00:59:59 +0000 UTC", "default", "",
 * ]]);
 * await w.commit({ collectedAt: new Date(), mode: "raw", noData: false });
 * (await store.listHours("my-cluster", "2026-11-01")).hours.get(0)?.rows.namespace; // 1
 * ```
 */
export class StateStore {
  /** Root folder of the store. */
  readonly root: string;
  /** The file-system layer used for writes (also by payload building). */
  readonly fs: StoreFileSystem;
  #onWarning: ((warning: QuarantinedHour) => void) | undefined;

  /**
   * @param root Root folder; created on the first write.
   * @param options Injected file-system layer, warning callback.
   */
  constructor(root: string, options: StateStoreOptions = {}) {
    if (typeof root !== "string" || root === "") {
      throw new TypeError(`StateStore root must be a non-empty path, got ${JSON.stringify(root)}`);
    }
    this.root = root;
    this.fs = { ...DEFAULT_FS, ...options.fs };
    this.#onWarning = options.onWarning;
  }

  /** The spool folder for payload tarballs: `<root>/.spool`. */
  get spoolDir(): string {
    return join(this.root, SPOOL_DIR);
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

  /** Path of one committed report fragment (cost or ROS). */
  fragmentPath(clusterId: string, day: string, hour: number, report: FragmentName): string {
    fragmentHeader(report);
    return join(this.hourPath(clusterId, day, hour), `${report}.csv`);
  }

  /**
   * Starts writing one hour; rows are streamed per report, then committed
   * atomically. The temporary folder is `.hour-<HH>-<pid>-<random>`.
   *
   * @throws {BridgeError} `disk_full` or `state_io` when the folders cannot be created.
   */
  async beginHour(clusterId: string, day: string, hour: number): Promise<HourWriter> {
    const finalDir = this.hourPath(clusterId, day, hour);
    const dayDir = this.dayPath(clusterId, day);
    for (let attempt = 1;; attempt++) {
      await io(dayDir, "creating", () => Deno.mkdir(dayDir, { recursive: true }));
      const tempDir = await io(
        dayDir,
        "creating a temporary hour folder in",
        () => Deno.makeTempDir({ dir: dayDir, prefix: `.hour-${hourDirName(hour)}-${Deno.pid}-` }),
      );
      // Held until commit or abort: cleanup() leaves a locked work folder alone.
      const lock = await tryHold(tempDir);
      if (lock) return new FsHourWriter(this.fs, dayDir, finalDir, tempDir, hour, lock);
      // Removed by a concurrent cleanup() before it was locked: take a new one.
      if (attempt >= 3) {
        throw new BridgeError("state_io", `cannot lock temporary hour folder ${tempDir}`);
      }
    }
  }

  /**
   * Committed hours of one cluster-day (ascending by hour; missing day → none),
   * and the hours found damaged. An hour whose `hour.json` is missing,
   * unreadable, not parseable or has wrong fields, or whose fragment is
   * missing, not a file or not of the recorded size, is moved to
   * `<root>/quarantine/<cluster>/<day>/<HH>-<timestamp>`, reported in
   * `quarantined` (and to `options.onWarning` and the store's `onWarning`),
   * and left out of `hours`: it is then simply missing, and the other hours
   * are unaffected. Fragments are not hashed here (see {@linkcode verifyHours}).
   *
   * @throws {BridgeError} `state_io` when the day folder itself cannot be read.
   *
   * @example
   * ```ts
   * import { StateStore } from "./state_store.ts";
   * const store = new StateStore(await Deno.makeTempDir());
   * const { hours, quarantined } = await store.listHours("c1", "2026-11-01", {
   *   onWarning: (w) => console.warn(`quarantined ${w.path}: ${w.reason}`),
   * });
   * [hours.size, quarantined.length]; // [0, 0]
   * ```
   */
  async listHours(
    clusterId: string,
    day: string,
    options: { onWarning?: (warning: QuarantinedHour) => void } = {},
  ): Promise<HourScan> {
    const dayDir = this.dayPath(clusterId, day);
    const found: number[] = [];
    try {
      for await (const entry of Deno.readDir(dayDir)) {
        if (!HOUR_DIR.test(entry.name)) continue;
        const hour = Number(entry.name);
        if (hour <= 23) found.push(hour);
      }
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return { hours: new Map(), quarantined: [] };
      throw storeError(err, dayDir, "reading");
    }
    found.sort((a, b) => a - b);
    const hours = new Map<number, HourMeta>();
    const quarantined: QuarantinedHour[] = [];
    for (const hour of found) {
      const hourDir = join(dayDir, hourDirName(hour));
      let check = await checkHour(hourDir, hour);
      // A concurrent re-commit can replace the folder between two reads: look again first.
      if (!check.ok) check = await checkHour(hourDir, hour);
      if (check.ok) {
        hours.set(hour, check.meta);
        continue;
      }
      // A writer replacing this hour holds a lock on it: leave it to the writer.
      const held = await tryHold(hourDir);
      if (!held) continue; // gone meanwhile, or being replaced
      let q: QuarantinedHour;
      try {
        const again = await checkHour(hourDir, hour);
        if (again.ok) {
          hours.set(hour, again.meta);
          continue;
        }
        q = await this.quarantineHour(clusterId, day, hour, again.reason);
      } finally {
        held.close();
      }
      options.onWarning?.(q);
      quarantined.push(q);
    }
    return { hours, quarantined };
  }

  /**
   * Hashes the fragments of the given committed hours and compares size and
   * SHA-256 with `hour.json`; also runs the checks of {@linkcode listHours}.
   * Returns the bad hours (empty when all are sound); by default they are
   * moved to quarantine, so that they count as missing and are collected
   * again. Hours that are not committed are skipped. `hour.json` files written
   * before hashes were recorded are checked for size only.
   *
   * @example
   * ```ts
   * import { StateStore } from "./state_store.ts";
   * const store = new StateStore(await Deno.makeTempDir());
   * const bad = await store.verifyHours("c1", "2026-11-01", [0, 1, 2]);
   * bad.length; // 0
   * ```
   */
  async verifyHours(
    clusterId: string,
    day: string,
    hours: Iterable<number>,
    options: { quarantine?: boolean } = {},
  ): Promise<QuarantinedHour[]> {
    const quarantine = options.quarantine ?? true;
    const bad: QuarantinedHour[] = [];
    for (const hour of [...new Set(hours)].sort((a, b) => a - b)) {
      const hourDir = this.hourPath(clusterId, day, hour);
      if (!(await pathExists(hourDir))) continue;
      const reason = await this.#verifyHour(hourDir, hour);
      if (reason === null) continue;
      bad.push(
        quarantine
          ? await this.quarantineHour(clusterId, day, hour, reason)
          : { clusterId, day, hour, path: hourDir, reason, movedTo: null },
      );
    }
    return bad;
  }

  /** Null when the hour is sound, else what is wrong. */
  async #verifyHour(hourDir: string, hour: number): Promise<string | null> {
    const check = await checkHour(hourDir, hour);
    if (!check.ok) return check.reason;
    const { meta } = check;
    for (const { name, bytes, sha256: expected } of recordedFragments(meta)) {
      const path = join(hourDir, `${name}.csv`);
      let actual: { bytes: number; sha256: string };
      try {
        actual = await hashFile(path);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound && expected === null && bytes === 0) {
          continue;
        }
        const message = err instanceof Error ? err.message : String(err);
        return `${path} cannot be read: ${message}`;
      }
      if (actual.bytes !== bytes) {
        return `${path} has ${actual.bytes} bytes, hour.json says ${bytes}`;
      }
      if (expected !== null && actual.sha256 !== expected) {
        return `${path} has SHA-256 ${actual.sha256}, hour.json says ${expected}`;
      }
    }
    return null;
  }

  /**
   * Moves a committed hour aside to
   * `<root>/quarantine/<cluster>/<day>/<HH>-<timestamp>`, so that it counts as
   * missing (and is collected again), and reports it to the store's
   * `onWarning`. Never throws for I/O: when the hour cannot be moved,
   * `movedTo` is null and the reason says why.
   *
   * @example
   * ```ts
   * import { StateStore } from "./state_store.ts";
   * const store = new StateStore(await Deno.makeTempDir());
   * const q = await store.quarantineHour("c1", "2026-11-01", 3, "fragment damaged");
   * q.movedTo; // null: there was no hour 03
   * ```
   */
  async quarantineHour(
    clusterId: string,
    day: string,
    hour: number,
    reason: string,
  ): Promise<QuarantinedHour> {
    const path = this.hourPath(clusterId, day, hour);
    const parent = join(this.root, QUARANTINE_DIR, clusterId, day);
    const stamp = new Date().toISOString().replaceAll(":", "");
    let movedTo: string | null = null;
    let why = reason;
    try {
      await Deno.mkdir(parent, { recursive: true });
      let target = join(parent, `${hourDirName(hour)}-${stamp}`);
      if (await pathExists(target)) target += `-${crypto.randomUUID().slice(0, 8)}`;
      await Deno.rename(path, target);
      movedTo = target;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound) || (await pathExists(path))) {
        const message = err instanceof Error ? err.message : String(err);
        why = `${reason}; could not move it to ${parent}: ${message}`;
      }
    }
    const warning: QuarantinedHour = { clusterId, day, hour, path, reason: why, movedTo };
    this.#onWarning?.(warning);
    return warning;
  }

  /**
   * Removes what killed processes left behind, and nothing that a live
   * process (this one or another) still uses:
   *
   * - temporary hour folders `<cluster>/<day>/.hour-HH-<pid>-*`;
   * - `.old-HH-<pid>-*` folders of an interrupted replace: put back as `HH`
   *   when that hour is missing (it is the last committed version), else removed;
   * - spool work files of a build: `.<tag>-<file>.partial` and `<tag>-split`;
   * - finished spool tarballs (`*.tar.gz`) older than `spoolMaxAgeMs` (default
   *   24 h) that were never delivered.
   *
   * A live writer holds an exclusive `flock` on its work folder or file, and
   * the kernel drops it when the process dies, so "can be locked" is exactly
   * "its owner is gone" (a PID check cannot work here: Deno refuses `/proc`
   * without `--allow-all`, and a restarted container reuses the same PID).
   * Call it once at start, before collecting.
   *
   * @param options `spoolDir`: the spool folder (default `<root>/.spool`);
   *   `spoolMaxAgeMs`, `now`: when a finished tarball counts as abandoned.
   * @throws {BridgeError} `state_io` when a leftover cannot be removed.
   *
   * @example
   * ```ts
   * import { StateStore } from "./state_store.ts";
   * const store = new StateStore(await Deno.makeTempDir());
   * const { removed, restored } = await store.cleanup();
   * [removed.length, restored.length]; // [0, 0]
   * ```
   */
  async cleanup(
    options: { spoolDir?: string; spoolMaxAgeMs?: number; now?: Date } = {},
  ): Promise<CleanupReport> {
    const removed: string[] = [];
    const restored: string[] = [];
    for (const cluster of await dirEntries(this.root)) {
      if (!cluster.isDirectory || !isClusterId(cluster.name)) continue;
      const clusterDir = join(this.root, cluster.name);
      for (const dayEntry of await dirEntries(clusterDir)) {
        if (!dayEntry.isDirectory || !isDay(dayEntry.name)) continue;
        const dayDir = join(clusterDir, dayEntry.name);
        for (const entry of await dirEntries(dayDir)) {
          const m = WORK_DIR.exec(entry.name);
          if (!m || !entry.isDirectory) continue;
          const path = join(dayDir, entry.name);
          const held = await tryHold(path);
          if (!held) continue; // in use by a live writer
          try {
            const finalDir = join(dayDir, m[2]!);
            if (m[1] === "old" && !(await pathExists(finalDir))) {
              await io(path, "restoring", () => Deno.rename(path, finalDir));
              restored.push(finalDir);
            } else {
              await removeTree(path);
              removed.push(path);
            }
          } finally {
            held.close();
          }
        }
      }
    }
    const spoolDir = options.spoolDir ?? this.spoolDir;
    const maxAge = options.spoolMaxAgeMs ?? SPOOL_MAX_AGE_MS;
    const now = (options.now ?? new Date()).getTime();
    for (const entry of await dirEntries(spoolDir)) {
      const path = join(spoolDir, entry.name);
      if (SPOOL_WORK.test(entry.name)) {
        const held = await tryHold(path);
        if (!held) continue;
        try {
          await removeTree(path);
        } finally {
          held.close();
        }
        removed.push(path);
      } else if (entry.isFile && entry.name.endsWith(".tar.gz")) {
        let mtime: number;
        try {
          mtime = (await Deno.lstat(path)).mtime?.getTime() ?? now;
        } catch (err) {
          if (err instanceof Deno.errors.NotFound) continue;
          throw storeError(err, path, "reading");
        }
        if (now - mtime <= maxAge) continue;
        await removeTree(path);
        removed.push(path);
      }
    }
    return { removed, restored };
  }
}

/** Entries of a folder; a missing folder has none. */
async function dirEntries(dir: string): Promise<Deno.DirEntry[]> {
  const out: Deno.DirEntry[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) out.push(entry);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
      return out;
    }
    throw storeError(err, dir, "reading");
  }
  return out;
}

class FsHourWriter implements HourWriter {
  #fs: StoreFileSystem;
  #dayDir: string;
  #finalDir: string;
  #tempDir: string;
  #hour: number;
  #files = new Map<FragmentName, Deno.FsFile>();
  #hashes = new Map<FragmentName, ReturnType<typeof createHash>>();
  #rows: Record<FragmentName, number> = { ...zeroCounts(), ...zeroRosCounts() };
  #bytes: Record<FragmentName, number> = { ...zeroCounts(), ...zeroRosCounts() };
  #state: "open" | "committing" | "done" = "open";
  #encoder = new TextEncoder();
  /** flock on the temporary folder (after the rename: on the committed folder). */
  #lock: Deno.FsFile | null;

  constructor(
    fs: StoreFileSystem,
    dayDir: string,
    finalDir: string,
    tempDir: string,
    hour: number,
    lock: Deno.FsFile,
  ) {
    this.#fs = fs;
    this.#dayDir = dayDir;
    this.#finalDir = finalDir;
    this.#tempDir = tempDir;
    this.#hour = hour;
    this.#lock = lock;
  }

  #unlock(): void {
    try {
      this.#lock?.close();
    } catch {
      // already closed
    }
    this.#lock = null;
  }

  #assertOpen(what: string): void {
    if (this.#state !== "open") {
      throw new Error(`HourWriter.${what}: hour ${this.#hour} is already ${this.#state}`);
    }
  }

  #path(report: FragmentName): string {
    return join(this.#tempDir, `${report}.csv`);
  }

  async #file(report: FragmentName): Promise<Deno.FsFile> {
    let file = this.#files.get(report);
    if (!file) {
      const path = this.#path(report);
      file = await io(path, "creating", () => Deno.open(path, { write: true, createNew: true }));
      this.#files.set(report, file);
      this.#hashes.set(report, createHash("sha256"));
    }
    return file;
  }

  async #flush(report: FragmentName, parts: string[]): Promise<void> {
    if (parts.length === 0) return;
    const data = this.#encoder.encode(parts.join(""));
    const file = await this.#file(report);
    const path = this.#path(report);
    await io(path, "writing", () => this.#fs.write(file, data, path));
    this.#hashes.get(report)!.update(data);
    this.#bytes[report] += data.length;
  }

  async writeRows(report: FragmentName, rows: Iterable<readonly string[]>): Promise<void> {
    this.#assertOpen("writeRows");
    const width = fragmentHeader(report).length;
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

  async commit(meta: HourCommit): Promise<HourMeta> {
    this.#assertOpen("commit");
    if (!(meta.collectedAt instanceof Date) || Number.isNaN(meta.collectedAt.getTime())) {
      throw new TypeError(`commit: collectedAt must be a valid Date, got ${meta.collectedAt}`);
    }
    const rosWindows = meta.ros?.windows ?? null;
    if (
      rosWindows !== null &&
      (typeof rosWindows !== "number" || !Number.isInteger(rosWindows) || rosWindows < 0 ||
        rosWindows > 4)
    ) {
      throw new RangeError(`commit: ros.windows must be an integer 0-4, got ${rosWindows}`);
    }
    const rosWritten = ROS_REPORT_NAMES.filter((name) => this.#files.has(name));
    if (rosWritten.length > 0 && !(rosWindows !== null && rosWindows > 0)) {
      throw new RangeError(
        `commit: hour ${this.#hour} has ROS rows (${rosWritten.join(", ")}) ` +
          `but no passed ROS window is recorded`,
      );
    }
    this.#state = "committing";
    try {
      for (const name of REPORT_NAMES) await this.#file(name); // empty fragments
      if (rosWindows !== null && rosWindows > 0) {
        for (const name of ROS_REPORT_NAMES) await this.#file(name); // header-only in CMMO
      }
      const sha256 = {} as Record<ReportName, string>;
      for (const name of REPORT_NAMES) sha256[name] = this.#hashes.get(name)!.digest("hex");
      const pick = (counts: Record<FragmentName, number>) => {
        const out = {} as Record<ReportName, number>;
        for (const name of REPORT_NAMES) out[name] = counts[name];
        return out;
      };
      let ros: RosHourMeta | null = null;
      if (rosWindows !== null) {
        ros = { windows: rosWindows, rows: zeroRosCounts(), bytes: zeroRosCounts(), sha256: null };
        if (rosWindows > 0) {
          const hashes = {} as Record<RosReportName, string>;
          for (const name of ROS_REPORT_NAMES) {
            ros.rows[name] = this.#rows[name];
            ros.bytes[name] = this.#bytes[name];
            hashes[name] = this.#hashes.get(name)!.digest("hex");
          }
          ros.sha256 = hashes;
        }
      }
      const result: HourMeta = {
        hour: this.#hour,
        collectedAt: meta.collectedAt.toISOString(),
        mode: meta.mode,
        noData: meta.noData,
        rows: pick(this.#rows),
        bytes: pick(this.#bytes),
        sha256,
        params: meta.params ?? null,
        ros,
      };
      const metaPath = join(this.#tempDir, HOUR_FILE);
      // Without ROS, hour.json keeps the keys it always had.
      const { ros: _ros, ...withoutRos } = result;
      const text = this.#encoder.encode(
        JSON.stringify(ros === null ? withoutRos : result, null, 2) + "\n",
      );
      const metaFile = await io(
        metaPath,
        "writing",
        () => Deno.open(metaPath, { write: true, createNew: true }),
      );
      try {
        await io(metaPath, "writing", () => this.#fs.write(metaFile, text, metaPath));
        // Every file of the hour is fsynced at once, not one after the other: the
        // kernel can then make them durable in one journal commit. All of them are
        // durable before the folder is, and the folder before it is renamed.
        const syncs = [...this.#files].map(([name, file]) =>
          io(this.#path(name), "syncing", () => file.sync())
        );
        syncs.push(io(metaPath, "writing", () => metaFile.sync()));
        const failed = (await Promise.allSettled(syncs)).find((r) => r.status === "rejected");
        if (failed) throw failed.reason;
      } finally {
        metaFile.close();
        this.#closeFiles();
      }
      await syncDir(this.#tempDir);
      let old: string | undefined;
      // The replaced hour is locked while it sits aside, so cleanup() never restores or
      // removes it under our feet; if we die, the lock goes and cleanup() puts it back.
      const oldLock = await tryHold(this.#finalDir);
      try {
        if (oldLock || (await pathExists(this.#finalDir))) {
          old = join(
            this.#dayDir,
            `.old-${hourDirName(this.#hour)}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`,
          );
          const aside = old;
          await io(this.#finalDir, "renaming", () => Deno.rename(this.#finalDir, aside));
        }
        try {
          await io(this.#tempDir, "renaming", () => Deno.rename(this.#tempDir, this.#finalDir));
        } catch (err) {
          if (old) await Deno.rename(old, this.#finalDir).catch(() => {});
          throw err;
        }
        this.#state = "done";
        this.#unlock();
        await Promise.all([syncDir(this.#dayDir), syncDir(join(this.#dayDir, ".."))]);
        if (old) await removeTree(old);
      } finally {
        oldLock?.close();
      }
      return result;
    } catch (err) {
      if (this.#state === "done") throw err; // committed; only the aftermath failed
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
      await removeTree(this.#tempDir);
    } finally {
      this.#unlock();
    }
  }
}
