/**
 * manifest.json of a payload (contract §4.4, BRIDGE §2) and koku's manifest
 * checks (contract §5.4).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { formatGoTime, marshalIndent } from "./go_json.ts";

/** CMMO v4.4.1 release commit: the format thanos-bridge emits (BRIDGE §2). */
export const DEFAULT_MANIFEST_VERSION = "78eabeb962648926f98b4cc239a6f59541f001cd";

/** koku reads at most this many bytes of manifest.json (`_MAX_MANIFEST_BYTES`). */
export const MAX_MANIFEST_BYTES = 10 * 1024 * 1024;

/** Go's zero `time.Time` as JSON. */
export const ZERO_TIME = "0001-01-01T00:00:00Z";

const encoder = new TextEncoder();

/** The hours whose ROS windows a payload carries (ROS files are not cumulative). */
export interface RosHourRange {
  /** First hour whose ROS windows are included. */
  readonly fromHour: number;
  /** Last hour whose ROS windows are included (the payload's last hour). */
  readonly toHour: number;
}

/**
 * The payload uuid: the idempotency key of a (cluster, day, last hour, report
 * set, ROS hour range) window (BRIDGE §2). SHA-256 of the UTF-8 bytes of
 * `JSON.stringify([clusterId, day, lastHour, [...reports].sort()])`, first 16
 * bytes, version nibble 4, variant bits 10, lowercase 8-4-4-4-12. A payload
 * that carries ROS windows appends `["ros", fromHour, toHour]` to that array;
 * without them (`ros` omitted or null) the key is the one of payloads
 * without ROS, unchanged.
 * Re-building the same window yields the same uuid, so koku de-duplicates it;
 * a new hour, another report set or another ROS range yields a new one.
 *
 * @example
 * ```ts
 * import { manifestUuid } from "./manifest.ts";
 * const id = manifestUuid("cluster-a", "2026-11-01", 5, ["pod", "node"]);
 * id[14]; // "4"
 * manifestUuid("cluster-a", "2026-11-01", 5, ["pod", "node"], { fromHour: 3, toHour: 5 }) !== id; // true
 * ```
 */
export function manifestUuid(
  clusterId: string,
  day: string,
  lastHour: number,
  reports: readonly string[],
  ros?: RosHourRange | null,
): string {
  const parts: unknown[] = [clusterId, day, lastHour, [...reports].sort()];
  if (ros) parts.push(["ros", ros.fromHour, ros.toHour]);
  const key = JSON.stringify(parts);
  const digest = createHash("sha256").update(encoder.encode(key)).digest();
  const b = Uint8Array.from(digest.subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}

/**
 * Formats an instant like Go's JSON encoding of a UTC `time.Time` (RFC 3339
 * with nanoseconds: the fraction only when non-zero, trailing zeros trimmed,
 * `Z`). `null` is Go's zero time, `0001-01-01T00:00:00Z`.
 *
 * @example
 * ```ts
 * import { formatGoJsonTime } from "./manifest.ts";
 * formatGoJsonTime(new Date("2021-07-20T18:01:21.700Z")); // "2021-07-20T18:01:21.7Z"
 * formatGoJsonTime(null); // "0001-01-01T00:00:00Z"
 * ```
 */
export function formatGoJsonTime(t: Date | null): string {
  return t === null ? ZERO_TIME : formatGoTime(t);
}

/** Values of one manifest. */
export interface ManifestFields {
  /** Payload uuid (see {@linkcode manifestUuid}). */
  uuid: string;
  /** Cluster id; also written as `cr_status.clusterID`. */
  clusterId: string;
  /** CMMO commit whose format is emitted; default {@linkcode DEFAULT_MANIFEST_VERSION}. */
  version?: string;
  /** Packaging time (`date`). */
  date: Date;
  /** Cost CSV member names; empty or null → JSON `null` (Go's nil slice). */
  files: readonly string[] | null;
  /** ROS CSV member names; omitted, empty or null → JSON `null`. */
  resourceOptimizationFiles?: readonly string[] | null;
  /** First pod `interval_start`; null → zero time. */
  start: Date | null;
  /** Last pod `interval_end`; null → zero time. */
  end: Date | null;
  /** thanos-bridge's own version, in `cr_status.source.bridge_version`. */
  bridgeVersion: string;
}

/**
 * Renders manifest.json exactly as Go's `json.MarshalIndent(m, "", " ")` of
 * CMMO's manifest struct: keys uuid, cluster_id, version, date, files,
 * resource_optimization_files, start, end, cr_status, certified, daily_reports.
 *
 * @example
 * ```ts
 * import { renderManifest } from "./manifest.ts";
 * const text = renderManifest({
 *   uuid: "2c5bf36c-7572-4156-b102-43f898e1430f",
 *   clusterId: "cluster-a",
 *   date: new Date("2026-11-01T06:10:00Z"),
 *   files: ["2c5bf36c-7572-4156-b102-43f898e1430f-cm-openshift-pod-usage-202611.0.csv"],
 *   start: new Date("2026-11-01T00:00:00Z"),
 *   end: new Date("2026-11-01T05:59:59Z"),
 *   bridgeVersion: "0.1.0",
 * });
 * JSON.parse(text).daily_reports; // true
 * ```
 */
export function renderManifest(fields: ManifestFields): string {
  const files = fields.files && fields.files.length > 0 ? [...fields.files] : null;
  const rosFiles = fields.resourceOptimizationFiles && fields.resourceOptimizationFiles.length > 0
    ? [...fields.resourceOptimizationFiles]
    : null;
  return marshalIndent({
    uuid: fields.uuid,
    cluster_id: fields.clusterId,
    version: fields.version ?? DEFAULT_MANIFEST_VERSION,
    date: formatGoJsonTime(fields.date),
    files,
    resource_optimization_files: rosFiles,
    start: formatGoJsonTime(fields.start),
    end: formatGoJsonTime(fields.end),
    cr_status: {
      clusterID: fields.clusterId,
      source: { source_type: "thanos_bridge", bridge_version: fields.bridgeVersion },
      upload: { upload: true },
    },
    certified: false,
    daily_reports: true,
  });
}

const UUID_HEX = /^[0-9a-fA-F]{32}$/;

/** Python's `uuid.UUID(str)` accepted forms, reduced to 32 hex digits, or null. */
function uuidHex(value: string): string | null {
  let s = value.replace(/^urn:/, "").replace(/^uuid:/, "");
  s = s.replace(/^\{/, "").replace(/\}$/, "").replaceAll("-", "");
  return UUID_HEX.test(s) ? s.toLowerCase() : null;
}

/**
 * koku's `validate_safe_path_component` (contract §5.4): non-empty, not `.`
 * or `..`, and no `/`, `\` or `..` inside.
 *
 * @example
 * ```ts
 * import { isSafePathComponent } from "./manifest.ts";
 * isSafePathComponent("a.csv"); // true
 * isSafePathComponent("../a.csv"); // false
 * ```
 */
export function isSafePathComponent(value: unknown): boolean {
  return typeof value === "string" && value !== "" && value !== "." && value !== ".." &&
    !value.includes("/") && !value.includes("\\") && !value.includes("..");
}

const DATETIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?)?$/;

/** Whether pydantic v2 would accept `value` for a `datetime` field (string forms and numbers). */
function isDatetime(value: unknown): boolean {
  if (typeof value === "number") return Number.isFinite(value);
  if (typeof value !== "string") return false;
  const m = DATETIME.exec(value);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (y < 1 || mo < 1 || mo > 12 || d < 1) return false;
  const dim = new Date(Date.UTC(2000, mo, 0));
  dim.setUTCFullYear(y, mo, 0);
  if (d > dim.getUTCDate()) return false;
  if (m[4] !== undefined && (Number(m[4]) > 23 || Number(m[5]) > 59)) return false;
  if (m[6] !== undefined && Number(m[6]) > 59) return false;
  return true;
}

/**
 * Checks a manifest the way koku's pydantic `Manifest` model does (contract
 * §5.4) before anything is extracted: uuid is a version-4 UUID, cluster_id is
 * a safe path component, date is present and parses, every file name is a
 * safe single path component, start/end parse when present, and the text is
 * at most 10 MiB. Returns the problems found; an empty list means koku
 * accepts it.
 *
 * @example
 * ```ts
 * import { validateManifest } from "./manifest.ts";
 * validateManifest('{"uuid": "not-a-uuid"}').length > 0; // true
 * ```
 */
export function validateManifest(json: string | unknown): string[] {
  const problems: string[] = [];
  let m: unknown = json;
  if (typeof json === "string") {
    if (encoder.encode(json).length > MAX_MANIFEST_BYTES) {
      problems.push(`manifest is larger than ${MAX_MANIFEST_BYTES} bytes`);
    }
    try {
      m = JSON.parse(json);
    } catch (err) {
      return [...problems, `manifest is not valid JSON: ${(err as Error).message}`];
    }
  }
  if (typeof m !== "object" || m === null || Array.isArray(m)) {
    return [...problems, "manifest must be a JSON object"];
  }
  const o = m as Record<string, unknown>;

  if (typeof o.uuid !== "string") {
    problems.push("uuid: required string is missing");
  } else {
    const hex = uuidHex(o.uuid);
    if (hex === null) problems.push(`uuid: ${JSON.stringify(o.uuid)} is not a UUID`);
    else {
      if (hex[12] !== "4") {
        problems.push(`uuid: ${JSON.stringify(o.uuid)} is version ${hex[12]}, not 4`);
      }
      if (!"89ab".includes(hex[16]!)) {
        problems.push(`uuid: ${JSON.stringify(o.uuid)} does not have the RFC 4122 variant`);
      }
    }
  }

  if (o.cluster_id === undefined) problems.push("cluster_id: required string is missing");
  else if (!isSafePathComponent(o.cluster_id)) {
    problems.push(`cluster_id: ${JSON.stringify(o.cluster_id)} is not a safe path component`);
  }

  if (o.version !== undefined && typeof o.version !== "string") {
    problems.push("version: must be a string");
  }

  if (o.date === undefined || o.date === null) problems.push("date: required datetime is missing");
  else if (!isDatetime(o.date)) problems.push(`date: ${JSON.stringify(o.date)} is not a datetime`);

  for (const key of ["files", "resource_optimization_files"]) {
    const list = o[key];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      problems.push(`${key}: must be a list of strings or null`);
      continue;
    }
    list.forEach((name, i) => {
      if (!isSafePathComponent(name)) {
        problems.push(`${key}[${i}]: ${JSON.stringify(name)} is not a safe single path component`);
      }
    });
  }

  for (const key of ["start", "end"]) {
    const v = o[key];
    if (v !== undefined && v !== null && !isDatetime(v)) {
      problems.push(`${key}: ${JSON.stringify(v)} is not a datetime`);
    }
  }

  for (const key of ["certified", "daily_reports"]) {
    if (o[key] !== undefined && typeof o[key] !== "boolean") {
      problems.push(`${key}: must be a boolean`);
    }
  }

  const cr = o.cr_status;
  if (cr !== undefined && cr !== null && (typeof cr !== "object" || Array.isArray(cr))) {
    problems.push("cr_status: must be an object");
  }
  return problems;
}
