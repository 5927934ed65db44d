/**
 * Configuration of a collect run: an optional {@link Config} (from flags and
 * `THANOS_BRIDGE_*` environment variables) is turned by {@link resolveConfig}
 * into a fully resolved, validated {@link ResolvedConfig}. Pure: no I/O.
 *
 * @module
 */

import { parseDuration } from "./collect/promql_rewrite.ts";
import { DEFAULT_MANIFEST_VERSION } from "./package/manifest.ts";

/** Everything a user may set. Every field is optional; see {@link resolveConfig} for defaults. */
export interface Config {
  thanosUrl?: string;
  clusters?: string[];
  day?: string;
  until?: number | string;
  out?: string;
  orgId?: string;
  clusterLabel?: string;
  rateWindow?: string;
  concurrency?: number | string;
  timeout?: string;
  retries?: number | string;
  tokenFile?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  headers?: string[];
  state?: string;
  reduce?: string;
  batchHours?: number | string;
  settleDelay?: string;
  recollect?: boolean;
  record?: string;
  replay?: string;
  manifestVersion?: string;
  maxSizeMb?: number | string;
  json?: boolean;
}

/** A fully resolved configuration. */
export interface ResolvedConfig {
  /** Thanos Query base URL; null only when replaying a recording. */
  readonly thanosUrl: string | null;
  readonly clusters: readonly string[];
  /** UTC day, `YYYY-MM-DD`. */
  readonly day: string;
  /** Last hour of `day` to include (0–23). */
  readonly lastHour: number;
  readonly out: string;
  readonly orgId: string;
  readonly clusterLabel: string;
  readonly rateWindow: string;
  readonly concurrency: number;
  readonly timeoutMs: number;
  /** Attempts per query, the first included. */
  readonly maxAttempts: number;
  readonly tokenFile: string | null;
  readonly caFile: string | null;
  readonly certFile: string | null;
  readonly keyFile: string | null;
  readonly headers: Readonly<Record<string, string>>;
  readonly stateDir: string;
  readonly reduce: "server" | "client";
  readonly batchHours: number;
  readonly settleDelayMs: number;
  readonly recollect: boolean;
  readonly record: string | null;
  readonly replay: string | null;
  readonly manifestVersion: string;
  readonly maxBytes: number;
  readonly json: boolean;
}

/** What {@link resolveConfig} needs from the outside world. */
export interface ResolveContext {
  /** Current time (for the newest ready hour). */
  readonly now: Date;
  /** The OS cache folder; the default state folder is `<cacheDir>/thanos-bridge`. */
  readonly cacheDir: string;
}

/** Every flag with its environment variable, for `--help` and the README. */
export const ENV_VARS: Readonly<Record<keyof Config, string>> = {
  thanosUrl: "THANOS_BRIDGE_THANOS_URL",
  clusters: "THANOS_BRIDGE_CLUSTER",
  day: "THANOS_BRIDGE_DAY",
  until: "THANOS_BRIDGE_UNTIL",
  out: "THANOS_BRIDGE_OUT",
  orgId: "THANOS_BRIDGE_ORG_ID",
  clusterLabel: "THANOS_BRIDGE_CLUSTER_LABEL",
  rateWindow: "THANOS_BRIDGE_RATE_WINDOW",
  concurrency: "THANOS_BRIDGE_CONCURRENCY",
  timeout: "THANOS_BRIDGE_TIMEOUT",
  retries: "THANOS_BRIDGE_RETRIES",
  tokenFile: "THANOS_BRIDGE_TOKEN_FILE",
  caFile: "THANOS_BRIDGE_CA_FILE",
  certFile: "THANOS_BRIDGE_CERT_FILE",
  keyFile: "THANOS_BRIDGE_KEY_FILE",
  headers: "THANOS_BRIDGE_HEADER",
  state: "THANOS_BRIDGE_STATE",
  reduce: "THANOS_BRIDGE_REDUCE",
  batchHours: "THANOS_BRIDGE_BATCH_HOURS",
  settleDelay: "THANOS_BRIDGE_SETTLE_DELAY",
  recollect: "THANOS_BRIDGE_RECOLLECT",
  record: "THANOS_BRIDGE_RECORD",
  replay: "THANOS_BRIDGE_REPLAY",
  manifestVersion: "THANOS_BRIDGE_MANIFEST_VERSION",
  maxSizeMb: "THANOS_BRIDGE_MAX_SIZE_MB",
  json: "THANOS_BRIDGE_JSON",
};

const LIST_SEPARATOR = /[\s,]+/;

function parseBool(name: string, text: string): boolean {
  const t = text.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(t)) return true;
  if (["0", "false", "no", "off", ""].includes(t)) return false;
  throw new TypeError(`${name} must be true or false, got ${JSON.stringify(text)}`);
}

/**
 * Reads a partial {@link Config} from `THANOS_BRIDGE_*` variables. Lists
 * (`THANOS_BRIDGE_CLUSTER`) are comma- or space-separated; headers
 * (`THANOS_BRIDGE_HEADER`) are newline-separated `Name: value` lines.
 *
 * @example
 * ```ts
 * import { configFromEnv } from "./config.ts";
 * configFromEnv({ THANOS_BRIDGE_CLUSTER: "a,b", THANOS_BRIDGE_JSON: "true" });
 * // { clusters: ["a", "b"], json: true }
 * ```
 */
export function configFromEnv(env: Readonly<Record<string, string | undefined>>): Config {
  const config: Config = {};
  for (const [key, name] of Object.entries(ENV_VARS) as [keyof Config, string][]) {
    const value = env[name];
    if (value === undefined) continue;
    switch (key) {
      case "clusters":
        config.clusters = value.split(LIST_SEPARATOR).filter((s) => s !== "");
        break;
      case "headers":
        config.headers = value.split(/\r?\n/).filter((s) => s.trim() !== "");
        break;
      case "recollect":
      case "json":
        config[key] = parseBool(name, value);
        break;
      default:
        (config as Record<string, unknown>)[key] = value;
    }
  }
  return config;
}

function parseInteger(name: string, value: number | string, min: number, max: number): number {
  const n = typeof value === "number" ? value : /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new RangeError(
      `${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

function durationMs(name: string, text: string): number {
  try {
    return parseDuration(text);
  } catch {
    throw new RangeError(
      `${name} must be a duration like 90s, 15m or 1h, got ${JSON.stringify(text)}`,
    );
  }
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * Validates a `YYYY-MM-DD` UTC day.
 *
 * @example
 * ```ts
 * import { parseDay } from "./config.ts";
 * parseDay("2026-11-01"); // Date 2026-11-01T00:00:00Z
 * ```
 */
export function parseDay(text: string): Date {
  const m = DAY.exec(text);
  const d = m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!)) : null;
  if (!m || !d || d.getUTCDate() !== +m[3]! || d.getUTCMonth() !== +m[2]! - 1) {
    throw new RangeError(`--day must be a real date as YYYY-MM-DD, got ${JSON.stringify(text)}`);
  }
  return d;
}

const CLUSTER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOUR_MS = 3_600_000;

/**
 * The newest hour that is closed and settled: H is ready once
 * `now ≥ H + 1h + settle` (BRIDGE §1).
 *
 * @example
 * ```ts
 * import { newestReadyHour } from "./config.ts";
 * newestReadyHour(new Date("2026-11-01T12:09:00Z"), 600_000); // 2026-11-01T10:00:00Z
 * ```
 */
export function newestReadyHour(now: Date, settleMs: number): Date {
  return new Date(Math.floor((now.getTime() - HOUR_MS - settleMs) / HOUR_MS) * HOUR_MS);
}

/**
 * Fills defaults, validates every value and works out the day and its last
 * hour. Throws `RangeError`/`TypeError` with a message that names the bad value.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * const c = resolveConfig(
 *   { thanosUrl: "http://127.0.0.1:9090", clusters: ["c1"], out: "out", day: "2026-11-01" },
 *   { now: new Date("2026-11-23T10:00:00Z"), cacheDir: "/tmp/cache" },
 * );
 * c.lastHour; // 23
 * ```
 */
export function resolveConfig(config: Config, context: ResolveContext): ResolvedConfig {
  const replay = config.replay?.trim() || null;
  let thanosUrl: string | null = config.thanosUrl?.trim() || null;
  if (thanosUrl !== null) {
    let url: URL;
    try {
      url = new URL(thanosUrl);
    } catch {
      throw new TypeError(`--thanos-url is not a URL: ${JSON.stringify(thanosUrl)}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`--thanos-url must be http or https, got ${JSON.stringify(thanosUrl)}`);
    }
    if (url.username || url.password) {
      throw new TypeError("--thanos-url must not contain credentials; use --token-file");
    }
    thanosUrl = url.href.replace(/\/+$/, "");
  } else if (replay === null) {
    throw new TypeError("--thanos-url is required (or --replay DIR)");
  }
  const record = config.record?.trim() || null;
  if (record !== null && replay !== null) {
    throw new TypeError("--record and --replay cannot be used together");
  }

  const clusters = [...new Set((config.clusters ?? []).map((c) => c.trim()).filter((c) => c))];
  if (clusters.length === 0) throw new TypeError("at least one --cluster is required");
  for (const c of clusters) {
    if (!CLUSTER_ID.test(c)) {
      throw new RangeError(
        `--cluster ${JSON.stringify(c)} is not a valid cluster id (letters, digits, ".", "_", "-")`,
      );
    }
  }

  const out = config.out?.trim();
  if (!out) throw new TypeError("--out DIR is required");

  const clusterLabel = config.clusterLabel?.trim() || "clusterID";
  if (!LABEL_NAME.test(clusterLabel)) {
    throw new RangeError(`--cluster-label ${JSON.stringify(clusterLabel)} is not a label name`);
  }
  const rateWindow = config.rateWindow?.trim() || "15m";
  if (durationMs("--rate-window", rateWindow) <= 0) {
    throw new RangeError(`--rate-window must be positive, got ${JSON.stringify(rateWindow)}`);
  }
  const settleDelayMs = durationMs("--settle-delay", config.settleDelay?.trim() || "10m");
  const timeoutMs = durationMs("--timeout", config.timeout?.trim() || "120s");
  if (timeoutMs < 1000) {
    throw new RangeError(`--timeout must be at least 1s, got ${config.timeout}`);
  }

  const reduce = config.reduce?.trim() || "server";
  if (reduce !== "server" && reduce !== "client") {
    throw new RangeError(`--reduce must be server or client, got ${JSON.stringify(reduce)}`);
  }

  const headers: Record<string, string> = {};
  for (const h of config.headers ?? []) {
    const i = h.indexOf(":");
    const name = i > 0 ? h.slice(0, i).trim() : "";
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      throw new RangeError(`--header must look like "Name: value", got ${JSON.stringify(h)}`);
    }
    if (name.toLowerCase() === "authorization") {
      throw new RangeError("--header must not set Authorization; use --token-file");
    }
    headers[name] = h.slice(i + 1).trim();
  }

  const newest = newestReadyHour(context.now, settleDelayMs);
  const newestDay = newest.toISOString().slice(0, 10);
  const day = config.day?.trim() || newestDay;
  const dayStart = parseDay(day).getTime();
  if (dayStart > newest.getTime()) {
    throw new RangeError(
      `--day ${day} has no closed hour yet (newest ready hour: ${newest.toISOString()})`,
    );
  }
  const readyLast = day < newestDay ? 23 : newest.getUTCHours();
  let lastHour = readyLast;
  if (config.until !== undefined && config.until !== "") {
    lastHour = parseInteger("--until", config.until, 0, 23);
    if (lastHour > readyLast) {
      const ready = new Date(dayStart + (lastHour + 1) * HOUR_MS + settleDelayMs);
      throw new RangeError(
        `--until ${lastHour}: hour ${day} ${String(lastHour).padStart(2, "0")}:00 is not closed ` +
          `and settled yet (ready at ${ready.toISOString()})`,
      );
    }
  }

  const certFile = config.certFile?.trim() || null;
  const keyFile = config.keyFile?.trim() || null;
  if ((certFile === null) !== (keyFile === null)) {
    throw new TypeError("--cert-file and --key-file must be given together (mTLS)");
  }
  const maxSizeMb = parseInteger("--max-size-mb", config.maxSizeMb ?? 100, 1, 100);
  return {
    thanosUrl,
    clusters,
    day,
    lastHour,
    out,
    orgId: config.orgId?.trim() ?? "",
    clusterLabel,
    rateWindow,
    concurrency: parseInteger("--concurrency", config.concurrency ?? 4, 1, 64),
    timeoutMs,
    maxAttempts: parseInteger("--retries", config.retries ?? 5, 1, 20),
    tokenFile: config.tokenFile?.trim() || null,
    caFile: config.caFile?.trim() || null,
    certFile,
    keyFile,
    headers,
    stateDir: config.state?.trim() || `${context.cacheDir.replace(/\/+$/, "")}/thanos-bridge`,
    reduce,
    batchHours: parseInteger("--batch-hours", config.batchHours ?? 6, 1, 24),
    settleDelayMs,
    recollect: config.recollect ?? false,
    record,
    replay,
    manifestVersion: config.manifestVersion?.trim() || DEFAULT_MANIFEST_VERSION,
    maxBytes: maxSizeMb * 1_048_576,
    json: config.json ?? false,
  };
}
