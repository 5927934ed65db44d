/**
 * The bounded run history of the service: one JSON file per run in
 * `<state>/runs/`, named `<id>.json`. Run ids start with their UTC creation
 * time (`r-20261127T015046123Z-k3j9x2`), so sorting the names sorts the runs
 * oldest first; {@linkcode newRunId} keeps ids strictly increasing within a
 * process, even when the clock stands still or steps back.
 *
 * Each file is written with `writeFileAtomic` (a crash leaves the old or the
 * new record, never a part). The history keeps the newest `limit` runs;
 * older files are removed, except records of runs that are still `queued` or
 * `running`. A damaged file is skipped with a warning (and removed once it is
 * old enough to fall out of the history). Everything is loaded into memory at
 * start, so reads are synchronous.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { join } from "node:path";
import { readJsonFile, writeFileAtomic } from "../fs_atomic.ts";
import { BridgeError } from "../model.ts";
import type { RunRecord, RunState, RunTrigger } from "./run_types.ts";

/** Default number of runs kept (`--run-history`). */
export const DEFAULT_RUN_HISTORY = 100;

/** The history's folder name under the state folder. */
export const RUNS_DIR = "runs";

const RUN_ID = /^r-\d{8}T\d{9}Z-[a-z2-7]{6}$/;
const FILE = /^(r-\d{8}T\d{9}Z-[a-z2-7]{6})\.json$/;
/** Temp files of `writeFileAtomic`: `.<uuid>.<pid>.tmp`. */
const TEMP = /^\.[0-9a-f-]{36}\.\d+\.tmp$/;
/** A temp file older than this was left by a killed process. */
const STALE_TEMP_MS = 3_600_000;

const STATES: ReadonlySet<string> = new Set<RunState>([
  "queued",
  "running",
  "succeeded",
  "partial",
  "failed",
  "cancelled",
  "interrupted",
]);
const TRIGGERS: ReadonlySet<string> = new Set<RunTrigger>(["schedule", "api"]);
const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/**
 * Whether `text` is a run id as {@linkcode newRunId} makes them.
 *
 * @example
 * ```ts
 * import { isRunId } from "./run_history.ts";
 * isRunId("r-20261127T015046123Z-k3j9x2"); // true
 * isRunId("../etc/passwd"); // false
 * ```
 */
export function isRunId(text: unknown): text is string {
  return typeof text === "string" && RUN_ID.test(text);
}

/** The time part of an id: `yyyymmddThhmmssSSSZ` of `ms`. */
function timePart(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-11-27T01:50:46.123Z
  return iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + "T" + iso.slice(11, 13) +
    iso.slice(14, 16) + iso.slice(17, 19) + iso.slice(20, 23) + "Z";
}

/** Milliseconds of an id's time part. */
function idMs(id: string): number {
  const t = id.slice(2, 21);
  return Date.UTC(
    +t.slice(0, 4),
    +t.slice(4, 6) - 1,
    +t.slice(6, 8),
    +t.slice(9, 11),
    +t.slice(11, 13),
    +t.slice(13, 15),
    +t.slice(15, 18),
  );
}

/**
 * A new, time-sortable run id `r-<yyyymmddThhmmssSSS>Z-<6 random base32>`.
 * With `after` (the newest id known), the id's time is at least 1 ms after
 * `after`'s, so ids are strictly increasing even when the clock stands still
 * or steps back.
 *
 * @example
 * ```ts
 * import { newRunId } from "./run_history.ts";
 * const a = newRunId(new Date("2026-11-27T01:50:46.123Z"));
 * a.slice(0, 22); // "r-20261127T015046123Z-"
 * newRunId(new Date("2026-11-27T01:50:46.123Z"), a) > a; // true
 * ```
 */
export function newRunId(now: Date, after: string | null = null): string {
  let ms = now.getTime();
  if (after !== null && isRunId(after)) ms = Math.max(ms, idMs(after) + 1);
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  const suffix = Array.from(bytes, (b) => BASE32[b & 31]).join("");
  return `r-${timePart(ms)}-${suffix}`;
}

/**
 * One page of ids, newest first: the ids below `before` (all when absent),
 * at most `limit` (at least 1) of them, and `next`, the id to pass as
 * `before` for the next page (null on the last page). Pure.
 *
 * @param newestFirst Ids sorted newest first.
 *
 * @example
 * ```ts
 * import { pageOf } from "./run_history.ts";
 * pageOf(["c", "b", "a"], 2); // { ids: ["c", "b"], next: "b" }
 * pageOf(["c", "b", "a"], 2, "b"); // { ids: ["a"], next: null }
 * ```
 */
export function pageOf(
  newestFirst: readonly string[],
  limit: number,
  before?: string,
): { ids: string[]; next: string | null } {
  const n = Number.isFinite(limit) ? Math.max(1, Math.floor(limit)) : 1;
  const start = before === undefined ? 0 : firstBelow(newestFirst, before);
  const ids = newestFirst.slice(start, start + n);
  const next = start + n < newestFirst.length && ids.length > 0 ? ids[ids.length - 1]! : null;
  return { ids, next };
}

/** Index of the first id (newest first) that sorts below `before` (binary search). */
function firstBelow(newestFirst: readonly string[], before: string): number {
  let lo = 0;
  let hi = newestFirst.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (newestFirst[mid]! >= before) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Which ids to remove so that at most `limit` remain, oldest first, never one
 * that `keep` protects (an active run). Pure.
 *
 * @param oldestFirst Ids sorted oldest first.
 *
 * @example
 * ```ts
 * import { idsToPrune } from "./run_history.ts";
 * idsToPrune(["a", "b", "c", "d"], 2, (id) => id === "a"); // ["b", "c"]
 * ```
 */
export function idsToPrune(
  oldestFirst: readonly string[],
  limit: number,
  keep: (id: string) => boolean,
): string[] {
  let excess = oldestFirst.length - limit;
  const out: string[] = [];
  for (const id of oldestFirst) {
    if (excess <= 0) break;
    if (keep(id)) continue;
    out.push(id);
    excess--;
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isErrorInfo(v: unknown): boolean {
  return v === null || (isObject(v) && typeof v.code === "string" && typeof v.message === "string");
}

function isTimeOrNull(v: unknown): boolean {
  return v === null || (typeof v === "string" && !Number.isNaN(Date.parse(v)));
}

/**
 * Checks a parsed history file: the record, or the reason it is not one.
 * Pure.
 *
 * @param expectedId The id the file name gives.
 *
 * @example
 * ```ts
 * import { parseRunRecord } from "./run_history.ts";
 * parseRunRecord({ id: "x" }, "r-20261127T015046123Z-k3j9x2"); // "its id is not the file's"
 * ```
 */
export function parseRunRecord(value: unknown, expectedId: string): RunRecord | string {
  if (!isObject(value)) return "is not a JSON object";
  if (value.id !== expectedId) return "its id is not the file's";
  if (typeof value.trigger !== "string" || !TRIGGERS.has(value.trigger)) {
    return "has no valid trigger";
  }
  if (typeof value.state !== "string" || !STATES.has(value.state)) return "has no valid state";
  if (!isObject(value.request)) return "has no request";
  if (typeof value.createdAt !== "string" || Number.isNaN(Date.parse(value.createdAt))) {
    return "has no valid createdAt";
  }
  if (!isTimeOrNull(value.startedAt) || !isTimeOrNull(value.finishedAt)) {
    return "has an invalid startedAt or finishedAt";
  }
  if (
    !Array.isArray(value.clusters) ||
    !value.clusters.every((c) =>
      isObject(c) && typeof c.clusterId === "string" && typeof c.state === "string" &&
      typeof c.hoursCollected === "number" && typeof c.hoursFailed === "number" &&
      Array.isArray(c.days) && isErrorInfo(c.error)
    )
  ) {
    return "has invalid cluster progress";
  }
  if (typeof value.queries !== "number" || typeof value.bytesDownloaded !== "number") {
    return "has invalid figures";
  }
  if (!isErrorInfo(value.error)) return "has an invalid error";
  if (value.outbox !== null && !isObject(value.outbox)) return "has an invalid outbox result";
  return value as unknown as RunRecord;
}

/** Whether a run of this state may still change (and must never be pruned). */
export function isActiveState(state: RunState): boolean {
  return state === "queued" || state === "running";
}

/**
 * The run history: every kept {@linkcode RunRecord} in memory (the live
 * objects the run manager updates) and on disk, one file per run.
 *
 * @example
 * ```ts
 * import { RunHistory } from "./run_history.ts";
 * const history = new RunHistory(await Deno.makeTempDir(), 100);
 * await history.load();
 * history.list({ limit: 10 }); // { runs: [], next: null }
 * ```
 */
export class RunHistory {
  /** The folder, `<state>/runs`. */
  readonly dir: string;
  /** How many runs are kept. */
  readonly limit: number;
  readonly #warn: (message: string) => void;
  readonly #records = new Map<string, RunRecord>();
  /** Ids of damaged files (kept on disk until they age out). */
  readonly #damaged = new Set<string>();
  /** Every id with a file or a record, oldest first. */
  #ids: string[] = [];
  #tail: Promise<void> = Promise.resolve();
  #loaded = false;

  /**
   * @param dir The history folder (`<state>/runs`); created on the first write.
   * @param limit Runs kept (at least 1; `--run-history`).
   * @param options `warn`: called with a message naming the path of a damaged file
   *   (default: a warning in the `["thanos-bridge", "runs"]` log).
   */
  constructor(
    dir: string,
    limit: number = DEFAULT_RUN_HISTORY,
    options: { warn?: (message: string) => void } = {},
  ) {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(`run history limit must be an integer ≥ 1, got ${limit}`);
    }
    this.dir = dir;
    this.limit = limit;
    const log = getLogger(["thanos-bridge", "runs"]);
    this.#warn = options.warn ?? ((message) => log.warn("{message}", { message }));
  }

  /** Whether {@linkcode load} has run. */
  get loaded(): boolean {
    return this.#loaded;
  }

  /**
   * Reads every run file (skipping and reporting damaged ones), removes stale
   * temp files of killed writers, and prunes beyond the limit. Idempotent.
   */
  async load(): Promise<void> {
    if (this.#loaded) return;
    this.#loaded = true;
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(this.dir)) {
        if (entry.isFile) names.push(entry.name);
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw new BridgeError(
        "state_io",
        `cannot read the run history ${this.dir}: ${
          error instanceof Error ? error.message : error
        }`,
        { cause: error },
      );
    }
    const now = Date.now();
    for (const name of names.sort()) {
      const path = join(this.dir, name);
      if (TEMP.test(name)) {
        const mtime = (await Deno.stat(path).catch(() => null))?.mtime?.getTime() ?? now;
        if (now - mtime > STALE_TEMP_MS) await Deno.remove(path).catch(() => {});
        continue;
      }
      const m = FILE.exec(name);
      if (!m) continue;
      const id = m[1]!;
      let parsed: RunRecord | string;
      try {
        parsed = parseRunRecord(await readJsonFile(path), id);
      } catch (error) {
        parsed = error instanceof Error ? error.message : String(error);
      }
      if (typeof parsed === "string") {
        this.#warn(`skipping a damaged run record ${path}: ${parsed}`);
        this.#damaged.add(id);
      } else {
        this.#records.set(id, parsed);
      }
      this.#ids.push(id);
    }
    await this.#enqueue(() => this.#prune());
  }

  /** A run by id, or null (the live object: do not change it outside the run manager). */
  get(id: string): RunRecord | null {
    return this.#records.get(id) ?? null;
  }

  /** The newest id (records and damaged files), or null: pass it to {@linkcode newRunId}. */
  newestId(): string | null {
    return this.#ids.length > 0 ? this.#ids[this.#ids.length - 1]! : null;
  }

  /** Every record, newest first. */
  all(): RunRecord[] {
    const out: RunRecord[] = [];
    for (let i = this.#ids.length - 1; i >= 0; i--) {
      const r = this.#records.get(this.#ids[i]!);
      if (r) out.push(r);
    }
    return out;
  }

  /** One page of runs, newest first (see {@linkcode pageOf}). */
  list(options: { limit: number; before?: string }): { runs: RunRecord[]; next: string | null } {
    const newestFirst = this.all().map((r) => r.id);
    const page = pageOf(newestFirst, options.limit, options.before);
    return { runs: page.ids.map((id) => this.#records.get(id)!), next: page.next };
  }

  /**
   * Adds or updates a record and writes its file (atomically, one write at a
   * time, the record as it is when its turn comes), then prunes the oldest
   * finished runs beyond the limit. Rejects with a `BridgeError` (`state_io`,
   * `disk_full`) when the file cannot be written; the record stays in memory.
   */
  save(record: RunRecord): Promise<void> {
    if (!this.#records.has(record.id)) {
      this.#records.set(record.id, record);
      this.#damaged.delete(record.id);
      if (!this.#ids.includes(record.id)) this.#insert(record.id);
    } else {
      this.#records.set(record.id, record);
    }
    return this.#enqueue(async () => {
      const current = this.#records.get(record.id);
      if (current === undefined) return; // pruned meanwhile
      await writeFileAtomic(
        join(this.dir, `${record.id}.json`),
        JSON.stringify(current, null, 2) + "\n",
      );
      await this.#prune();
    });
  }

  /** Resolves when every write queued so far is done (failed writes included). */
  async flush(): Promise<void> {
    await this.#tail;
  }

  #insert(id: string): void {
    let i = this.#ids.length;
    while (i > 0 && this.#ids[i - 1]! > id) i--;
    this.#ids.splice(i, 0, id);
  }

  #enqueue(task: () => Promise<void>): Promise<void> {
    const p = this.#tail.then(task);
    this.#tail = p.catch(() => {});
    return p;
  }

  async #prune(): Promise<void> {
    const remove = idsToPrune(this.#ids, this.limit, (id) => {
      const r = this.#records.get(id);
      return r !== undefined && isActiveState(r.state);
    });
    if (remove.length === 0) return;
    const gone = new Set(remove);
    for (const id of remove) {
      try {
        await Deno.remove(join(this.dir, `${id}.json`));
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) {
          this.#warn(
            `cannot remove an old run record ${join(this.dir, `${id}.json`)}: ${
              error instanceof Error ? error.message : error
            }`,
          );
          gone.delete(id);
          continue;
        }
      }
      this.#records.delete(id);
      this.#damaged.delete(id);
    }
    this.#ids = this.#ids.filter((id) => !gone.has(id));
  }
}
