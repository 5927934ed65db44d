/**
 * Assembles one cumulative cluster-day payload (BRIDGE §2) from the hour
 * fragments of the state store: the CSVs (header + fragments of hours
 * 0..lastHour), manifest.json and one tar.gz (or one per CSV when CMMO would
 * split, contract §4.5), written to a spool folder.
 *
 * ROS reports are not cumulative (koku forwards the ROS files of every
 * payload, contract §5.10): a payload carries the ROS fragments of the hours
 * `rosFromHour`..lastHour only, and a ROS file exists only when one of those
 * hours has ROS fragments (a window that passed the namespace filter). ROS
 * members follow the cost members in the alphabetical staged list and are
 * listed under `resource_optimization_files`.
 *
 * Naming follows CMMO (contract §4.3): member `<uuid>-<filePrefix>-<YYYYMM>.<idx>.csv`
 * (split parts `…-<YYYYMM><k>.<idx>.csv`), idx = position in the alphabetical
 * staged list, manifest.json last. Tarballs are `<uuid>.tar.gz`, or
 * `<uuid>-<idx>.tar.gz` once split.
 *
 * The output is a pure function of the state and the request: the uuid is
 * derived from the window, `date` is the newest `collectedAt` of the included
 * hours, and every tar header uses that date, so re-building the same window
 * gives byte-identical files.
 *
 * Every fragment is checked against the size and SHA-256 of its `hour.json`
 * while it is streamed into the tarball (no second read); a mismatch fails
 * the build with `state_corrupt`. Spool files carry a per-run tag
 * (`<pid>-<random>-…` by default, see {@linkcode DayPayloadRequest.spoolTag}),
 * so concurrent builds never share a file and `StateStore.cleanup` can remove
 * those of a killed process; a failed build removes every file it wrote.
 * "No space left on device" becomes `disk_full`, other I/O errors `state_io`.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import type { EventEmitter } from "node:events";
import { join } from "node:path";
import { type Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { pack as tarPack } from "tar-stream";
import {
  REPORT_NAMES,
  reportDefinition,
  type ReportName,
  ROS_REPORT_NAMES,
  ROS_REPORTS,
  type RosReportName,
} from "../collect/reports.ts";
import { BridgeError, isDiskFull } from "../model.ts";
import { encodeRecord, readCsvRecords } from "./csv.ts";
import { formatGoJsonTime, manifestUuid, renderManifest, type RosHourRange } from "./manifest.ts";
import { DEFAULT_MAX_BYTES, needSplit, splitCsv } from "./split.ts";
import {
  assertClusterId,
  assertDay,
  assertHour,
  type HourMeta,
  type StateStore,
  storeError,
  type StoreFileSystem,
  tryHold,
} from "./state_store.ts";

/** What to build. */
export interface DayPayloadRequest {
  /** Where the hour fragments are. */
  store: StateStore;
  /** Cluster id (manifest `cluster_id`). */
  clusterId: string;
  /** UTC day, `YYYY-MM-DD`. */
  day: string;
  /** Newest hour to include; hours 0..lastHour must all be committed. */
  lastHour: number;
  /** Which reports to include (all six by default). */
  reports?: readonly ReportName[];
  /**
   * First hour whose ROS windows the payload carries (through `lastHour`);
   * omitted or null: no ROS files, and the uuid of a payload without ROS.
   * Hours of that range without ROS fragments add nothing; a ROS report
   * without any fragment in the range gets no file.
   */
  rosFromHour?: number | null;
  /** manifest `version` (a CMMO commit). */
  manifestVersion: string;
  /** thanos-bridge's own version, written to `cr_status.source.bridge_version`. */
  bridgeVersion: string;
  /** Split limit; default 104 857 600 (contract §4.5). */
  maxBytes?: number;
  /** Where tarball parts (and, temporarily, split CSV parts) are written. */
  spoolDir: string;
  /**
   * Prefix of every spool file of this build (`<spoolTag>-<fileName>`), letters,
   * digits and `-`; default `<pid>-<random>`. Keep the `<pid>-` start so that
   * `StateStore.cleanup` can tell a killed builder's files.
   */
  spoolTag?: string;
}

/** One tarball of a payload. */
export interface DayPayloadPart {
  /** Absolute or spool-relative path of the tarball. */
  path: string;
  /** Base name of the tarball. */
  fileName: string;
  /** Size of the tarball in bytes. */
  bytes: number;
  /** SHA-256 of the tarball (lower-case hex), computed while it was written. */
  sha256: string;
  /** Tar members in order, `manifest.json` last. */
  members: string[];
}

/** A built payload. */
export interface DayPayload {
  /** manifest uuid (the idempotency key). */
  uuid: string;
  /** Cluster id. */
  clusterId: string;
  /** UTC day, `YYYY-MM-DD`. */
  day: string;
  /** First hour included (always 0: payloads are cumulative). */
  firstHour: number;
  /** Last hour included. */
  lastHour: number;
  /** Number of hours included. */
  hours: number;
  /** manifest `start`. */
  start: string;
  /** manifest `end`. */
  end: string;
  /** manifest `date`. */
  date: string;
  /** Data rows per report (0 for reports not included). */
  rows: Record<ReportName, number>;
  /** Size of each whole CSV incl. header, before any split (0 for reports not included). */
  csvBytes: Record<ReportName, number>;
  /** The hours whose ROS windows were asked for, or null (no ROS). */
  ros: RosHourRange | null;
  /** Data rows per ROS report in this payload (0 without a file). */
  rosRows: Record<RosReportName, number>;
  /** Size of each whole ROS CSV incl. header, before any split (0 without a file). */
  rosCsvBytes: Record<RosReportName, number>;
  /** The tarballs. */
  parts: DayPayloadPart[];
  /** manifest.json text. */
  manifest: string;
}

const encoder = new TextEncoder();
const READ_CHUNK = 256 * 1024;

/** A fragment of the state store, checked against its `hour.json` while it is read. */
interface Fragment {
  /** The fragment file. */
  path: string;
  /** Its hour folder, named in errors. */
  hourPath: string;
  /** Size recorded in `hour.json`. */
  bytes: number;
  /** SHA-256 recorded in `hour.json`; null for an `hour.json` without hashes (size only). */
  sha256: string | null;
}

/** A file path, a store fragment (verified while read), or bytes in memory. */
type Source = string | Fragment | Uint8Array;

/** Whether an error comes from the file system or a stream (and not from our own checks). */
function isIoError(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof BridgeError) return false;
  if (isDiskFull(err)) return true;
  if (Object.values(Deno.errors).some((cls) => err instanceof cls)) return true;
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && /^E[A-Z]+$/.test(code);
}

/** File-system errors become `disk_full`/`state_io` naming `path`; others pass unchanged. */
function ioError(err: unknown, path: string, action: string): unknown {
  return isIoError(err) ? storeError(err, path, action) : err;
}

function verifyFragment(f: Fragment, bytes: number, sha256: string): void {
  if (bytes === f.bytes && (f.sha256 === null || sha256 === f.sha256)) return;
  throw new BridgeError(
    "state_corrupt",
    `State corrupt: hour ${f.hourPath}: ${f.path} has ${bytes} bytes and SHA-256 ${sha256}, ` +
      `hour.json says ${f.bytes} bytes and ${f.sha256 ?? "no hash"}`,
    { cause: { path: f.path, hourPath: f.hourPath, bytes, sha256 } },
  );
}

/**
 * Streams the concatenation of `sources`, reading files chunk by chunk; store
 * fragments are hashed on the way and checked when their end is reached.
 */
function concatSources(sources: readonly Source[]): ReadableStream<Uint8Array> {
  let i = 0;
  let file: Deno.FsFile | null = null;
  let hash: ReturnType<typeof createHash> | null = null;
  let count = 0;
  const closeFile = () => {
    if (file) {
      try {
        file.close();
      } catch {
        // already closed
      }
      file = null;
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        while (i < sources.length) {
          const src = sources[i]!;
          if (src instanceof Uint8Array) {
            i++;
            if (src.length > 0) {
              controller.enqueue(src);
              return;
            }
            continue;
          }
          const fragment = typeof src === "string" ? null : src;
          const path = typeof src === "string" ? src : src.path;
          if (!file) {
            try {
              file = await Deno.open(path, { read: true });
            } catch (err) {
              if (fragment && err instanceof Deno.errors.NotFound) {
                throw new BridgeError(
                  "state_corrupt",
                  `State corrupt: hour ${fragment.hourPath}: ${path} is missing`,
                  { cause: err },
                );
              }
              throw ioError(err, path, "reading");
            }
            hash = fragment ? createHash("sha256") : null;
            count = 0;
          }
          // A fragment's size is known: a small one gets a buffer of its size (plus one
          // byte, so the end of the file is seen without another read), not READ_CHUNK.
          const left = fragment ? fragment.bytes - count + 1 : READ_CHUNK;
          const buf = new Uint8Array(left > 0 && left < READ_CHUNK ? left : READ_CHUNK);
          let n: number | null;
          try {
            n = await file.read(buf);
          } catch (err) {
            throw ioError(err, path, "reading");
          }
          if (n === null) {
            closeFile();
            if (fragment) verifyFragment(fragment, count, hash!.digest("hex"));
            i++;
            continue;
          }
          const chunk = buf.subarray(0, n);
          hash?.update(chunk);
          count += n;
          controller.enqueue(chunk);
          return;
        }
        controller.close();
      } catch (err) {
        closeFile();
        throw err;
      }
    },
    cancel() {
      closeFile();
    },
  });
}

/** Go `time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", s)`, as UTC; null when it fails. */
function parseGoTimeString(s: string | undefined): Date | null {
  if (s === undefined) return null;
  const m =
    /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))? ([+-])(\d{2})(\d{2}) (?:[A-Za-z]{3,}|[+-]\d+)$/
      .exec(s);
  if (!m) return null;
  const n = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const [y, mo, d, h, mi, sec] = n;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return null;
  const ms = m[7] ? Math.trunc(Number(`0.${m[7]}`) * 1000) : 0;
  const t = new Date(0);
  t.setUTCFullYear(y, mo - 1, d);
  if (t.getUTCDate() !== d) return null;
  t.setUTCHours(h, mi, sec, ms);
  const offsetMin = (Number(m[9]) * 60 + Number(m[10])) * (m[8] === "-" ? -1 : 1);
  return new Date(t.getTime() - offsetMin * 60_000);
}

async function firstRecord(path: string): Promise<string[] | null> {
  for await (const record of readCsvRecords(concatSources([path]))) return record;
  return null;
}

/** The first and the last record of a CSV file, read once (both null when it has none). */
async function edgeRecords(
  path: string,
): Promise<{ first: string[] | null; last: string[] | null }> {
  let first: string[] | null = null;
  let last: string[] | null = null;
  for await (const record of readCsvRecords(concatSources([path]))) {
    first ??= record;
    last = record;
  }
  return { first, last };
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

/** One CSV of the staged list. */
interface Staged {
  /** Staged base name without `.csv`, e.g. `<uuid>-cm-openshift-pod-usage-202611` (+ k). */
  base: string;
  /** A ROS report (`resource_optimization_files`) rather than a cost report (`files`). */
  ros: boolean;
  /** Contents, concatenated. */
  sources: Source[];
  /** Total size. */
  size: number;
}

/** A tar member. */
interface TarEntry {
  name: string;
  size: number;
  sources: Source[];
}

function drained(sink: EventEmitter): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onClose = () => {
      cleanup();
      reject(new Error("tar entry closed before it drained"));
    };
    const onError = (err: unknown) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      sink.off("drain", onDrain);
      sink.off("close", onClose);
      sink.off("error", onError);
    };
    sink.on("drain", onDrain);
    sink.on("close", onClose);
    sink.on("error", onError);
  });
}

/**
 * Writes one tar.gz to `path` (a new file) through the store's file-system
 * layer, fsyncs it, and returns its size and SHA-256, computed while writing.
 */
async function writeTarGz(
  path: string,
  entries: readonly TarEntry[],
  mtime: Date,
  fs: StoreFileSystem,
): Promise<{ bytes: number; sha256: string }> {
  const file = await Deno.open(path, { write: true, createNew: true });
  // Locked while written: StateStore.cleanup() removes only partial files nobody holds.
  await file.tryLock(true);
  const hash = createHash("sha256");
  let bytes = 0;
  const out = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      const data = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      hash.update(data);
      bytes += data.length;
      fs.write(file, data, path).then(() => callback(), (err) => callback(err));
    },
    final(callback) {
      file.sync().then(() => callback(), (err) => callback(err));
    },
  });
  try {
    await packTarGz(out, entries, mtime);
  } finally {
    try {
      file.close();
    } catch {
      // already closed
    }
  }
  return { bytes, sha256: hash.digest("hex") };
}

async function packTarGz(out: Writable, entries: readonly TarEntry[], mtime: Date): Promise<void> {
  const pack = tarPack();
  const piping = pipeline(pack as unknown as Readable, createGzip({ level: 6 }), out);
  const producing = (async () => {
    for (const entry of entries) {
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry({
          name: entry.name,
          size: entry.size,
          mode: 0o644,
          mtime,
          uid: 0,
          gid: 0,
          uname: "",
          gname: "",
          type: "file",
        }, (err) => err ? reject(err) : resolve());
        // Failures reach the caller through reject(); without a listener, the
        // "error" event of a destroyed entry would be thrown as uncaught.
        (sink as unknown as EventEmitter).on("error", () => {});
        (async () => {
          for await (const chunk of concatSources(entry.sources)) {
            const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
            if (!sink.write(buf)) await drained(sink as unknown as EventEmitter);
          }
          sink.end(undefined);
        })().catch((err) => {
          sink.destroy(err);
          reject(err);
        });
      });
    }
    pack.finalize();
  })();
  producing.catch((err) => pack.destroy(err));
  const [produced, piped] = await Promise.allSettled([producing, piping]);
  if (produced.status === "rejected") throw produced.reason;
  if (piped.status === "rejected") throw piped.reason;
}

/** Throws `state_corrupt` unless a fragment has the size its `hour.json` records. */
function checkFragmentSize(
  path: string,
  hourPath: string,
  actual: number | null,
  recorded: number,
): asserts actual is number {
  if (actual === recorded) return;
  throw new BridgeError(
    "state_corrupt",
    `State corrupt: hour ${hourPath}: ${path} has ${actual ?? "no file"} bytes, ` +
      `hour.json says ${recorded}`,
    { cause: { path, hourPath, actual, recorded } },
  );
}

async function fileSize(path: string): Promise<number | null> {
  try {
    return (await Deno.stat(path)).size;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw ioError(err, path, "reading");
  }
}

const SPOOL_TAG = /^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$/;

/**
 * Builds the payload of hours 0..lastHour of one cluster-day into `spoolDir`;
 * with `rosFromHour`, it also carries the ROS windows of hours
 * rosFromHour..lastHour (and its uuid says so, see `manifestUuid`).
 *
 * @throws {RangeError} when an hour of 0..lastHour is not committed (the
 * message names the missing hours), or on an invalid cluster id, day, hour,
 * report, maxBytes or spoolTag.
 * @throws {BridgeError} `state_corrupt` when a fragment does not match its
 * `hour.json` (the message names the hour folder and the fragment), or when a
 * needed hour was found damaged and moved to quarantine by this build's
 * listing; `disk_full` when the spool runs out of space; `state_io` for other
 * I/O errors. Nothing this build wrote is left in the spool folder.
 *
 * @example
 * ```ts
 * import { buildDayPayload } from "./day_payload.ts";
 * import { StateStore } from "./state_store.ts";
 * import { DEFAULT_MANIFEST_VERSION } from "./manifest.ts";
 * const store = new StateStore(await Deno.makeTempDir());
 * const w = await store.beginHour("cluster-a", "2026-11-01", 0);
 * await w.commit({ collectedAt: new Date("2026-11-01T01:10:00Z"), mode: "raw", noData: true });
 * const payload = await buildDayPayload({
 *   store, clusterId: "cluster-a", day: "2026-11-01", lastHour: 0,
 *   manifestVersion: DEFAULT_MANIFEST_VERSION, bridgeVersion: "0.1.0",
 *   spoolDir: await Deno.makeTempDir(),
 * });
 * payload.parts[0]?.fileName; // `${payload.uuid}.tar.gz`
 * ```
 */
export async function buildDayPayload(req: DayPayloadRequest): Promise<DayPayload> {
  const { store, clusterId, day, lastHour } = req;
  assertClusterId(clusterId);
  assertDay(day);
  assertHour(lastHour);
  const maxBytes = req.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw new RangeError(`Invalid maxBytes ${maxBytes}: expected a positive integer`, {
      cause: { maxBytes },
    });
  }
  const requested = new Set<ReportName>(req.reports ?? REPORT_NAMES);
  for (const name of requested) reportDefinition(name);
  if (requested.size === 0) throw new RangeError("buildDayPayload: no reports requested");
  // Alphabetical file-prefix order = REPORTS order (contract §4.3).
  const reports = REPORT_NAMES.filter((name) => requested.has(name));

  const spoolTag = req.spoolTag ?? `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  if (typeof spoolTag !== "string" || !SPOOL_TAG.test(spoolTag)) {
    throw new RangeError(
      `Invalid spoolTag ${JSON.stringify(spoolTag)}: expected letters and digits joined by "-"`,
      { cause: { spoolTag } },
    );
  }

  const { hours: committed, quarantined } = await store.listHours(clusterId, day);
  const metas: HourMeta[] = [];
  const missing: number[] = [];
  for (let h = 0; h <= lastHour; h++) {
    const meta = committed.get(h);
    if (meta) metas.push(meta);
    else missing.push(h);
  }
  const damaged = quarantined.filter((q) => q.hour <= lastHour);
  if (damaged.length > 0) {
    throw new BridgeError(
      "state_corrupt",
      `Cannot build ${clusterId} ${day} up to hour ${lastHour}: ` +
        damaged.map((q) =>
          `hour ${q.path} is damaged (${q.reason})${q.movedTo ? `, moved to ${q.movedTo}` : ""}`
        ).join("; "),
      { cause: { clusterId, day, lastHour, quarantined: damaged } },
    );
  }
  if (missing.length > 0) {
    throw new RangeError(
      `Cannot build ${clusterId} ${day} up to hour ${lastHour}: hour(s) ${
        missing.join(", ")
      } not collected`,
      { cause: { clusterId, day, lastHour, missing } },
    );
  }

  const rosFrom = req.rosFromHour ?? null;
  if (rosFrom !== null) {
    assertHour(rosFrom);
    if (rosFrom > lastHour) {
      throw new RangeError(
        `Invalid rosFromHour ${rosFrom}: expected an hour from 0 to lastHour ${lastHour}`,
        { cause: { rosFromHour: rosFrom, lastHour } },
      );
    }
  }
  const ros: RosHourRange | null = rosFrom === null
    ? null
    : { fromHour: rosFrom, toHour: lastHour };
  const uuid = manifestUuid(clusterId, day, lastHour, reports, ros);
  const yyyymm = day.slice(0, 4) + day.slice(5, 7);
  const date = new Date(Math.max(...metas.map((m) => Date.parse(m.collectedAt))));
  // Go's tar writer rounds ModTime to the nearest second.
  const mtime = new Date(Math.round(date.getTime() / 1000) * 1000);

  const rows = zeroCounts();
  const csvBytes = zeroCounts();
  const whole: Staged[] = [];
  for (const name of reports) {
    const def = reportDefinition(name);
    const header = encoder.encode(encodeRecord(def.header));
    const sources: Source[] = [header];
    let size = header.length;
    for (const meta of metas) {
      const path = store.fragmentPath(clusterId, day, meta.hour, name);
      const hourPath = store.hourPath(clusterId, day, meta.hour);
      const actual = await fileSize(path);
      if (actual === null && meta.bytes[name] === 0 && meta.sha256 === null) continue;
      checkFragmentSize(path, hourPath, actual, meta.bytes[name]);
      if (actual > 0) {
        sources.push({ path, hourPath, bytes: actual, sha256: meta.sha256?.[name] ?? null });
      }
      size += actual;
      rows[name] += meta.rows[name];
    }
    csvBytes[name] = size;
    whole.push({ base: `${uuid}-${def.filePrefix}-${yyyymm}`, ros: false, sources, size });
  }

  // ROS: only the hours of the ROS range that have ROS fragments (a window passed the filter).
  const rosRows = zeroRosCounts();
  const rosCsvBytes = zeroRosCounts();
  const rosMetas = ros === null
    ? []
    : metas.filter((m) => m.hour >= ros.fromHour && (m.ros?.windows ?? 0) > 0);
  if (rosMetas.length > 0) {
    for (const def of ROS_REPORTS) {
      const name = def.name;
      const header = encoder.encode(encodeRecord(def.header));
      const sources: Source[] = [header];
      let size = header.length;
      for (const meta of rosMetas) {
        const recorded = meta.ros!;
        const path = store.fragmentPath(clusterId, day, meta.hour, name);
        const hourPath = store.hourPath(clusterId, day, meta.hour);
        const actual = await fileSize(path);
        checkFragmentSize(path, hourPath, actual, recorded.bytes[name]);
        if (actual > 0) {
          sources.push({ path, hourPath, bytes: actual, sha256: recorded.sha256?.[name] ?? null });
        }
        size += actual;
        rosRows[name] += recorded.rows[name];
      }
      rosCsvBytes[name] = size;
      whole.push({ base: `${uuid}-${def.filePrefix}-${yyyymm}`, ros: true, sources, size });
    }
  }

  // manifest start/end from the pod report (contract §4.2 step 3).
  let start: Date | null = null;
  let end: Date | null = null;
  if (requested.has("pod")) {
    const podHours = metas.filter((m) => m.rows.pod > 0);
    const first = podHours[0];
    const last = podHours[podHours.length - 1];
    if (first && last) {
      const header = reportDefinition("pod").header;
      // One hour (or the first and last hour in one file): one pass finds both records.
      const lastPath = store.fragmentPath(clusterId, day, last.hour, "pod");
      const edges = await edgeRecords(lastPath);
      const rec0 = first.hour === last.hour
        ? edges.first
        : await firstRecord(store.fragmentPath(clusterId, day, first.hour, "pod"));
      const recN = edges.last;
      start = parseGoTimeString(rec0?.[header.indexOf("interval_start")]);
      end = parseGoTimeString(recN?.[header.indexOf("interval_end")]);
    }
  }

  await Deno.mkdir(req.spoolDir, { recursive: true }).catch((err) => {
    throw ioError(err, req.spoolDir, "creating");
  });
  let workDir: string | null = null;
  let workLock: Deno.FsFile | null = null;
  const written: string[] = [];
  try {
    const split = needSplit(whole.map((s) => s.size), maxBytes);
    let staged: Staged[] = whole;
    if (split) {
      staged = [];
      for (const s of whole) {
        if (s.size < maxBytes) {
          staged.push(s);
          continue;
        }
        if (workDir === null) {
          const dir = join(req.spoolDir, `${spoolTag}-split`);
          await Deno.mkdir(dir).catch((err) => {
            throw ioError(err, dir, "creating");
          });
          workDir = dir;
          workLock = await tryHold(dir); // StateStore.cleanup() leaves it alone while held
        }
        const dir = workDir;
        const parts = await splitCsv(readCsvRecords(concatSources(s.sources)), {
          maxBytes,
          partPath: (k) => join(dir, `${s.base}${k}.csv`),
        }).catch((err) => {
          throw ioError(err, dir, "writing split parts in");
        });
        for (const p of parts) {
          staged.push({ base: `${s.base}${p.k}`, ros: s.ros, sources: [p.path], size: p.bytes });
        }
      }
    }
    // Cost files (`cm-…`) sort before ROS files (`ros-…`): idx continues after the cost files.
    const entries: TarEntry[] = staged.map((s, idx) => ({
      name: `${s.base}.${idx}.csv`,
      size: s.size,
      sources: s.sources,
    }));
    const manifest = renderManifest({
      uuid,
      clusterId,
      version: req.manifestVersion,
      date,
      files: entries.filter((_, idx) => !staged[idx]!.ros).map((e) => e.name),
      resourceOptimizationFiles: entries.filter((_, idx) => staged[idx]!.ros).map((e) => e.name),
      start,
      end,
      bridgeVersion: req.bridgeVersion,
    });
    const manifestBytes = encoder.encode(manifest);
    const manifestEntry: TarEntry = {
      name: "manifest.json",
      size: manifestBytes.length,
      sources: [manifestBytes],
    };

    const tarballs: Array<{ fileName: string; entries: TarEntry[] }> = split
      ? entries.map((e, idx) => ({
        fileName: `${uuid}-${idx}.tar.gz`,
        entries: [e, manifestEntry],
      }))
      : [{ fileName: `${uuid}.tar.gz`, entries: [...entries, manifestEntry] }];

    const parts: DayPayloadPart[] = [];
    for (const t of tarballs) {
      const path = join(req.spoolDir, `${spoolTag}-${t.fileName}`);
      const temp = join(req.spoolDir, `.${spoolTag}-${t.fileName}.partial`);
      let tarball: { bytes: number; sha256: string };
      try {
        tarball = await writeTarGz(temp, t.entries, mtime, store.fs);
        await Deno.rename(temp, path);
      } catch (err) {
        await Deno.remove(temp).catch(() => {});
        throw ioError(err, temp, "writing");
      }
      written.push(path);
      parts.push({
        path,
        fileName: t.fileName,
        bytes: tarball.bytes,
        sha256: tarball.sha256,
        members: t.entries.map((e) => e.name),
      });
    }
    written.length = 0; // success: keep them
    return {
      uuid,
      clusterId,
      day,
      firstHour: 0,
      lastHour,
      hours: metas.length,
      start: formatGoJsonTime(start),
      end: formatGoJsonTime(end),
      date: formatGoJsonTime(date),
      rows,
      csvBytes,
      ros,
      rosRows,
      rosCsvBytes,
      parts,
      manifest,
    };
  } finally {
    // On failure, nothing this build wrote stays behind; on success only the tarballs.
    for (const path of written) await Deno.remove(path).catch(() => {});
    if (workDir) await Deno.remove(workDir, { recursive: true }).catch(() => {});
    workLock?.close();
  }
}
