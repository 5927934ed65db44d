/**
 * The small leaf module every stage shares: the bridge's version, typed errors
 * with a stable `code`, the validation of ids, days, hours, label names and
 * durations (one rule each, in one place), and text hygiene for messages.
 * It imports nothing from the stages.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/** thanos-bridge's own version, read from `deno.json` (the one place it is defined). */
export const BRIDGE_VERSION: string = denoJson.version;

/** One hour in milliseconds. */
export const HOUR_MS = 3_600_000;

/**
 * Stable error codes. Summaries, JSON answers and logs carry them; the words
 * of a message may change, the code does not.
 */
export type ErrorCode =
  | "config"
  | "thanos_http"
  | "thanos_warning"
  | "thanos_parse"
  | "thanos_limit"
  | "local_eval"
  | "selfcheck_mismatch"
  | "thanos_timeout"
  | "replay_miss"
  | "state_corrupt"
  | "state_io"
  | "disk_full"
  | "cluster_busy"
  | "no_data"
  | "discovery_failed"
  | "payload"
  | "sink_dir"
  | "sink_s3"
  | "sink_kafka"
  | "sink_ingress"
  | "koku_sources"
  | "cancelled"
  | "run_conflict"
  | "not_found"
  | "bad_request"
  | "unauthorized"
  | "shutting_down"
  | "internal";

/**
 * Base of every error the bridge raises on purpose: a stable {@linkcode code}
 * plus a message that names the bad value. The edges (CLI, HTTP) turn it into
 * words; the code is what automation matches on.
 *
 * @example
 * ```ts
 * import { BridgeError } from "./model.ts";
 * const e = new BridgeError("sink_s3", "upload of x.tar.gz failed: 503");
 * e.code; // "sink_s3"
 * ```
 */
export class BridgeError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return "BridgeError";
  }
}

/**
 * A bad setting or request value. `field` is the setting's name as the user
 * wrote it in a {@linkcode https://jsr.io | Config} (e.g. `clusters`,
 * `s3Bucket`); the CLI shows it as a flag, the HTTP API as a JSON field.
 *
 * @example
 * ```ts
 * import { ConfigError } from "./model.ts";
 * const e = new ConfigError("day", "2026-13-01", "must be a real date as YYYY-MM-DD");
 * e.message; // 'day "2026-13-01" must be a real date as YYYY-MM-DD'
 * ```
 */
export class ConfigError extends BridgeError {
  /** The setting, as a `Config` key. */
  readonly field: string;
  /** The offending value, cut to 100 characters and escaped (never a secret). */
  readonly value: string;
  /** What is wrong, in words. */
  readonly reason: string;

  constructor(field: string, value: unknown, reason: string) {
    const shown = value === undefined ? "" : showValue(value);
    super("config", shown === "" ? `${field} ${reason}` : `${field} ${shown} ${reason}`);
    this.field = field;
    this.value = shown;
    this.reason = reason;
  }

  override get name(): string {
    return "ConfigError";
  }
}

/** Makes a {@linkcode BridgeError} from anything thrown, keeping a BridgeError as it is. */
export function toBridgeError(error: unknown, fallback: ErrorCode = "internal"): BridgeError {
  if (error instanceof BridgeError) return error;
  if (error instanceof DOMException && error.name === "AbortError") {
    return new BridgeError("cancelled", "cancelled", { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  const code = isDiskFull(error) ? "disk_full" : fallback;
  return new BridgeError(code, message, { cause: error });
}

/** Whether an error is "no space left on device". */
export function isDiskFull(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: string }).code;
  return code === "ENOSPC" || /no space left on device|os error 28\b/i.test(error.message);
}

/** `{code, message}` of anything thrown, for summaries and JSON answers. */
export function errorInfo(error: unknown): { code: ErrorCode; message: string } {
  const e = toBridgeError(error);
  return { code: e.code, message: escapeControl(e.message) };
}

/**
 * Replaces control characters (C0 except tab and newline, DEL, C1, and the
 * bidi overrides) with visible escapes, so that a server's text can never
 * move a terminal's cursor, ring its bell or rewrite a line.
 *
 * @example
 * ```ts
 * import { escapeControl } from "./model.ts";
 * escapeControl("a\x1b[2Jb\r"); // "a\\x1b[2Jb\\r"
 * ```
 */
export function escapeControl(text: string, keepNewlines = true): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    if (c === "\n" && keepNewlines) return c;
    if (c === "\r") return "\\r";
    if (c === "\n") return "\\n";
    const code = c.charCodeAt(0);
    return code > 0xff
      ? `\\u${code.toString(16).padStart(4, "0")}`
      : `\\x${code.toString(16).padStart(2, "0")}`;
  });
}

/**
 * A value as shown in an error message: JSON-quoted, control characters
 * escaped, at most 100 characters of it.
 *
 * @example
 * ```ts
 * import { showValue } from "./model.ts";
 * showValue("x".repeat(200)).length; // 104 (quotes, 100 characters and "…")
 * ```
 */
export function showValue(value: unknown, max = 100): string {
  const text = typeof value === "string" ? value : String(value);
  const cut = text.length > max ? text.slice(0, max) + "…" : text;
  return JSON.stringify(escapeControl(cut, false));
}

const CLUSTER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Names of the state folder's own sub-folders, which cannot be cluster ids. */
const RESERVED_IDS = new Set(["outbox", "quarantine", "runs"]);

/**
 * Whether `id` is a valid cluster id: 1–253 of `[A-Za-z0-9._-]`, starting
 * with a letter or digit, and not one of the state folder's own folders
 * (`outbox`, `quarantine`, `runs`).
 */
export function isClusterId(id: unknown): id is string {
  return typeof id === "string" && CLUSTER_ID.test(id) && !RESERVED_IDS.has(id);
}

/**
 * Throws a {@linkcode ConfigError} (field `clusters` by default) unless `id`
 * is a valid cluster id.
 *
 * @example
 * ```ts
 * import { assertClusterId } from "./model.ts";
 * assertClusterId("16b9a60d-0774-4102-9028-bd28d6c38ac2"); // ok
 * ```
 */
export function assertClusterId(id: string, field = "clusters"): void {
  if (!isClusterId(id)) {
    throw new ConfigError(
      field,
      id,
      "is not a valid cluster id (1-253 letters, digits, '.', '_', '-', starting with a letter or digit)",
    );
  }
}

/** Whether `name` is a Prometheus label name. */
export function isLabelName(name: unknown): name is string {
  return typeof name === "string" && LABEL_NAME.test(name);
}

/**
 * The UTC midnight of a `YYYY-MM-DD` day, or a {@linkcode ConfigError}.
 *
 * @example
 * ```ts
 * import { parseDay } from "./model.ts";
 * parseDay("2024-02-29").toISOString(); // "2024-02-29T00:00:00.000Z"
 * ```
 */
export function parseDay(text: string, field = "day"): Date {
  const m = typeof text === "string" ? DAY.exec(text) : null;
  if (m) {
    const t = new Date(0);
    t.setUTCFullYear(+m[1]!, +m[2]! - 1, +m[3]!);
    if (
      t.getUTCFullYear() === +m[1]! && t.getUTCMonth() === +m[2]! - 1 && t.getUTCDate() === +m[3]!
    ) {
      return t;
    }
  }
  throw new ConfigError(field, text, "must be a real date as YYYY-MM-DD");
}

/** Whether `text` is a real `YYYY-MM-DD` day. */
export function isDay(text: unknown): text is string {
  try {
    parseDay(text as string);
    return true;
  } catch {
    return false;
  }
}

/** Whether `hour` is an integer 0–23. */
export function isHour(hour: unknown): hour is number {
  return typeof hour === "number" && Number.isInteger(hour) && hour >= 0 && hour <= 23;
}

/** `YYYY-MM-DD` of a time (UTC). */
export function dayOf(time: Date | number): string {
  return new Date(time).toISOString().slice(0, 10);
}

/** Hour of the UTC day of a time. */
export function hourOf(time: Date | number): number {
  return new Date(time).getUTCHours();
}

/** Start of hour `hour` of `day`, in ms. */
export function hourStartMs(day: string, hour: number): number {
  return parseDay(day).getTime() + hour * HOUR_MS;
}

/** `YYYY-MM-DDTHH` of an hour start (the form `--from`/`--to` accept). */
export function formatHour(ms: number): string {
  return new Date(ms).toISOString().slice(0, 13);
}

/** Prometheus `model.ParseDuration`: units in this order, each at most once. */
const DURATION =
  /^(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?$/;

/** Milliseconds per unit, in the order of the groups of {@linkcode DURATION}. */
const DURATION_UNITS_MS: readonly bigint[] = [
  365n * 24n * 3_600_000n,
  7n * 24n * 3_600_000n,
  24n * 3_600_000n,
  3_600_000n,
  60_000n,
  1_000n,
  1n,
];

/** Go's `time.Duration` is int64 nanoseconds: the longest duration Prometheus accepts, in ms. */
const MAX_DURATION_MS = 9_223_372_036_854n;

/**
 * Parses a Prometheus duration (`model.ParseDuration`): units `y w d h m s ms`,
 * each at most once and in that order, e.g. `15m`, `1h30m`, `90s`; the bare
 * `0` is zero. A year is 365 days.
 *
 * @param text The duration as written in PromQL or in a setting.
 * @returns The duration in milliseconds (may be 0).
 * @throws {RangeError} If `text` is not a duration or is longer than Go's
 *   `time.Duration` can hold; the message names `text`.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./model.ts";
 * parseDuration("1h30m"); // 5_400_000
 * parseDuration("90s"); // 90_000
 * ```
 */
export function parseDuration(text: string): number {
  if (typeof text !== "string") {
    throw new TypeError(`Duration must be a string, got ${typeof text}`);
  }
  if (text === "0") return 0;
  const match = text === "" ? null : DURATION.exec(text);
  if (match === null) {
    throw new RangeError(
      `Invalid duration ${JSON.stringify(text)}: expected Prometheus units y, w, d, h, m, s, ms ` +
        `in that order, e.g. "15m", "1h30m" or "90s"`,
      { cause: { text } },
    );
  }
  let total = 0n;
  DURATION_UNITS_MS.forEach((unit, i) => {
    const digits = match[i + 1];
    if (digits !== undefined) total += BigInt(digits) * unit;
  });
  if (total > MAX_DURATION_MS) {
    throw new RangeError(
      `Duration ${JSON.stringify(text)} is out of range: at most ${MAX_DURATION_MS} ms`,
      { cause: { text } },
    );
  }
  return Number(total);
}

/** Where one delivered tarball went: the sink's kind and its location there (path, s3 URI, …). */
export interface DeliveryRef {
  /** `dir`, `s3-kafka` or `ingress`. */
  readonly sink: SinkKind;
  /** A path, an `s3://bucket/key` URI, or the ingress request id. */
  readonly location: string;
}

/** The sinks a payload can go to. */
export type SinkKind = "dir" | "s3-kafka" | "ingress";

/** The sink kinds, for validation. */
export const SINK_KINDS: readonly SinkKind[] = ["dir", "s3-kafka", "ingress"];
