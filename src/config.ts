/**
 * Process settings: an optional {@link Config} (from flags and
 * `THANOS_BRIDGE_*` environment variables) is turned by {@link resolveSettings}
 * into fully resolved, validated {@link BridgeSettings}, once per process. A
 * run's own request (clusters, hours, recollect, dry run) is resolved
 * separately by {@link resolveRunRequest} and planned by `planRun`
 * (`service/run_plan.ts`). Pure: no I/O; files named here are read and checked
 * by `service/runtime.ts` before the first query.
 *
 * Every error is a {@linkcode ConfigError} whose `field` is the {@link Config}
 * key; the CLI shows it as a flag, the HTTP API as a JSON field.
 *
 * @module
 */

import {
  ConfigError,
  isClusterId,
  isLabelName,
  parseDay,
  parseDuration,
  SINK_KINDS,
  type SinkKind,
} from "./model.ts";
import { DEFAULT_MANIFEST_VERSION } from "./package/manifest.ts";

/** The reduction modes, in the order `--help` lists them. */
export const REDUCE_SETTINGS = ["server", "client", "local"] as const;
/** One of {@linkcode REDUCE_SETTINGS}. */
export type ReduceSetting = typeof REDUCE_SETTINGS[number];

/** Everything a user may set. Every field is optional; see {@link resolveSettings} for defaults. */
export interface Config {
  // --- Thanos -------------------------------------------------------------------------------------
  thanosUrl?: string;
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
  /** Ask Thanos for gzip-compressed answers (default off: `Accept-Encoding: identity`). */
  thanosGzip?: boolean | string;
  reduce?: string;
  /** `auto` (from the server's build info), `prometheus2` or `prometheus3`: local mode's window edges. */
  engineSemantics?: string;
  /** `auto`, `remote-read` or `query`: how local mode fetches raw samples. */
  rawRead?: string;
  /** The query engine's lookback delta, for local mode's instant selectors (default 5m). */
  lookbackDelta?: string;
  batchHours?: number | string;
  /** Clusters per query (fleet batching); 1 sends one query per cluster. */
  clusterBatch?: number | string;
  /** Largest estimated answer (series) of one cluster batch. */
  batchSeries?: number | string;
  /** Skip the queries whose answer must be empty (one presence probe per batch). */
  skipEmpty?: boolean | string;
  settleDelay?: string;
  emptyHourGrace?: string;
  maxAnswerMb?: number | string;
  maxSeriesKb?: number | string;
  maxLabelKb?: number | string;
  maxSeries?: number | string;
  record?: string;
  replay?: string;
  // --- state and payloads ---------------------------------------------------------------------------
  state?: string;
  manifestVersion?: string;
  maxSizeMb?: number | string;
  maxBackfill?: string;
  orgId?: string;
  orgMap?: string;
  // --- sinks ----------------------------------------------------------------------------------------
  sink?: string;
  out?: string;
  s3Endpoint?: string;
  s3PublicEndpoint?: string;
  s3Region?: string;
  s3Bucket?: string;
  s3Prefix?: string;
  s3PathStyle?: boolean | string;
  presignExpiry?: string;
  kafkaBrokers?: string[] | string;
  kafkaTopic?: string;
  kafkaTls?: boolean | string;
  kafkaCaFile?: string;
  kafkaSaslMechanism?: string;
  kafkaSaslUsername?: string;
  kafkaSaslPasswordFile?: string;
  ingressUrl?: string;
  ingressTokenFile?: string;
  ingressBasicAuthFile?: string;
  identityFile?: string;
  // --- clusters -------------------------------------------------------------------------------------
  discovery?: string[] | string;
  include?: string[] | string;
  exclude?: string[] | string;
  discoveryMatch?: string;
  discoveryWindow?: string;
  acmApiUrl?: string;
  acmTokenFile?: string;
  acmCaFile?: string;
  acmOrgKey?: string;
  registerSources?: boolean | string;
  kokuSourcesUrl?: string;
  // --- reports --------------------------------------------------------------------------------------
  /** Resource optimization (ROS) reports; on by default, like CMMO (`--no-ros` turns them off). */
  ros?: boolean | string;
  // --- one run --------------------------------------------------------------------------------------
  /**
   * The static cluster list. Flags and variables give ids; the config file may
   * also give entries `{cluster_id, name?, org_id?}`.
   */
  clusters?: (string | StaticClusterEntry)[];
  day?: string;
  until?: number | string;
  from?: string;
  to?: string;
  recollect?: boolean | string;
  dryRun?: boolean | string;
  // --- CLI output -----------------------------------------------------------------------------------
  json?: boolean | string;
  // --- serve ----------------------------------------------------------------------------------------
  listen?: string;
  schedule?: string;
  apiTokenFile?: string;
  config?: string;
  runHistory?: number | string;
  shutdownGrace?: string;
  logLevel?: string;
}

/** One entry of the config file's `cluster` list. */
export interface StaticClusterEntry {
  readonly cluster_id: string;
  readonly name?: string;
  readonly org_id?: string;
}

/** A cluster of the static list, validated. */
export interface StaticCluster {
  readonly clusterId: string;
  readonly name?: string;
  readonly orgId?: string;
}

/** Where a run's clusters come from. */
export type DiscoverySource = "static" | "thanos" | "acm";

/** The discovery sources, in the order they are merged. */
export const DISCOVERY_SOURCES: readonly DiscoverySource[] = ["static", "thanos", "acm"];

/** Settings of the `acm` discovery source. */
export interface AcmSettings {
  /** Kubernetes API base URL of the hub. */
  readonly apiUrl: string;
  /** Service account token file. */
  readonly tokenFile: string;
  /** CA bundle of the API server (null: the system's roots). */
  readonly caFile: string | null;
  /** Label or annotation of a `ManagedCluster` that holds its koku org id (null: none). */
  readonly orgKey: string | null;
}

/** How a run finds its clusters when the request names none. */
export interface DiscoverySettings {
  /** Sources, de-duplicated, in the order given. */
  readonly sources: readonly DiscoverySource[];
  /** The static list (`cluster` in the config file, `--cluster`). */
  readonly staticClusters: readonly StaticCluster[];
  /** Glob patterns (`*`, `?`) on a cluster's id or name; empty: every cluster. */
  readonly include: readonly string[];
  /** Glob patterns; a cluster matching one is left out (wins over include). */
  readonly exclude: readonly string[];
  /** `thanos`: series selector of a metric every cluster sends. */
  readonly match: string;
  /** `thanos`: how far back a cluster must have sent it. */
  readonly windowMs: number;
  /** `acm`: the Kubernetes API (null unless `acm` is a source). */
  readonly acm: AcmSettings | null;
}

/** koku source registration (`--register-sources`). */
export interface RegistrationSettings {
  /** koku's sources API base, e.g. `http://koku-api:8000/api/cost-management/v1/`. */
  readonly url: string;
}

/** Settings of the S3 + Kafka sink. */
export interface S3KafkaSettings {
  readonly s3Endpoint: string | null;
  readonly s3PublicEndpoint: string | null;
  readonly s3Region: string;
  readonly s3Bucket: string;
  readonly s3Prefix: string;
  readonly s3PathStyle: boolean;
  readonly presignExpirySeconds: number;
  readonly kafkaBrokers: readonly string[];
  readonly kafkaTopic: string;
  readonly kafkaTls: boolean;
  readonly kafkaCaFile: string | null;
  readonly kafkaSaslMechanism: "plain" | "scram-sha-256" | "scram-sha-512" | null;
  readonly kafkaSaslUsername: string | null;
  readonly kafkaSaslPasswordFile: string | null;
  readonly identityFile: string | null;
}

/** Settings of the ingress sink. */
export interface IngressSettings {
  readonly ingressUrl: string;
  readonly ingressTokenFile: string | null;
  readonly ingressBasicAuthFile: string | null;
}

/** Limits on one Thanos answer. */
export interface AnswerLimits {
  readonly maxAnswerBytes: number;
  readonly maxSeriesBytes: number;
  readonly maxLabelBytes: number;
  readonly maxSeries: number;
}

/** Process settings, resolved once. */
export interface BridgeSettings {
  /** Thanos Query base URL; null only when replaying a recording. */
  readonly thanosUrl: string | null;
  /** Ids of the static cluster list (`--cluster`); a run request may name others. */
  readonly clusters: readonly string[];
  /** How runs without a cluster list find their clusters. */
  readonly discovery: DiscoverySettings;
  /** koku source registration, or null (off, the default). */
  readonly registration: RegistrationSettings | null;
  /** Collect and ship the two ROS reports (default true; `--no-ros`). */
  readonly ros: boolean;
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
  /**
   * Ask Thanos for gzip-compressed answers (default false: `Accept-Encoding:
   * identity`, so a sidecar's server spends no CPU compressing answers on a
   * loopback link; true for a slow link to a remote Thanos).
   */
  readonly thanosGzip: boolean;
  /**
   * Where CMMO's 60 evaluations per hour happen: `local` (the default: raw
   * samples are fetched and the queries evaluated here, checked against the
   * server every run), `server` (`*_over_time` on Thanos: local mode's
   * fallback and reference) or `client` (Thanos evaluates, the 60 points are
   * reduced here).
   */
  readonly reduce: ReduceSetting;
  /**
   * Local mode's engine semantics: `auto` asks the server's build info;
   * `prometheus2` closes range and lookback windows on the left, `prometheus3`
   * opens them (Prometheus 3.x and Thanos).
   */
  readonly engineSemantics: "auto" | "prometheus2" | "prometheus3";
  /**
   * How local mode fetches raw samples: `remote-read` (Prometheus's
   * `/api/v1/read`, streamed XOR chunks), `query` (a range selector per
   * instant query, JSON), or `auto` (remote read where the server offers it:
   * Prometheus, not Thanos Query; never when recording or replaying).
   */
  readonly rawRead: "auto" | "remote-read" | "query";
  /** Local mode's lookback delta for instant selectors, ms (default 5 min, as Prometheus). */
  readonly lookbackMs: number;
  /** Hours per batch of queries (raw reads in local mode): 12 in local mode, else 6. */
  readonly batchHours: number;
  /**
   * Clusters per query (default 100): one query covers up to this many
   * clusters that need the same hours, and its answer is split by the
   * cluster label. 1 sends one query per cluster.
   */
  readonly clusterBatch: number;
  /**
   * Largest estimated answer of one batch, in series (default 10000): a batch
   * takes clusters while the sum of their estimates (the most rows of any
   * report in their newest collected hour) stays under it, so memory is
   * bounded by one batch's answer.
   */
  readonly batchSeries: number;
  /**
   * Ask once per batch which selectors have series, and skip the queries
   * whose answer must be empty (default true; `--no-skip-empty`).
   */
  readonly skipEmpty: boolean;
  readonly settleDelayMs: number;
  readonly emptyHourGraceMs: number;
  readonly limits: AnswerLimits;
  readonly record: string | null;
  readonly replay: string | null;
  readonly stateDir: string;
  readonly manifestVersion: string;
  readonly maxBytes: number;
  readonly maxBackfillMs: number;
  readonly orgId: string;
  readonly orgMap: string | null;
  readonly sink: SinkKind;
  /** Output folder of the `dir` sink (null for the other sinks). */
  readonly out: string | null;
  readonly s3Kafka: S3KafkaSettings | null;
  readonly ingress: IngressSettings | null;
}

/**
 * A run's request, before planning. `from`/`to` are UTC hours `YYYY-MM-DDTHH`
 * (both included) or days `YYYY-MM-DD`: a day as `from` means its hour 00, a
 * day as `to` means its hour 23 or, for today, the newest ready hour.
 */
export interface RunRequest {
  /** Clusters to collect; absent → the settings' list. */
  readonly clusters?: readonly string[];
  /** First hour; absent → each cluster's watermark (bounded by `--max-backfill`). */
  readonly from?: string;
  /** Last hour; absent → the newest ready hour. */
  readonly to?: string;
  /** Query hours again even if they are in the state, and ship complete days again. */
  readonly recollect?: boolean;
  /** Plan and collect, deliver nothing. */
  readonly dryRun?: boolean;
}

/** What {@link resolveSettings} needs from the outside world. */
export interface ResolveContext {
  /** The OS cache folder; the default state folder is `<cacheDir>/thanos-bridge`. */
  readonly cacheDir: string;
}

/** Every setting with its environment variable, for `--help` and the README. */
export const ENV_VARS: Readonly<Record<keyof Config, string>> = Object.freeze(
  Object.fromEntries(
    ([
      "thanosUrl",
      "clusterLabel",
      "rateWindow",
      "concurrency",
      "timeout",
      "retries",
      "tokenFile",
      "caFile",
      "certFile",
      "keyFile",
      "headers",
      "thanosGzip",
      "reduce",
      "engineSemantics",
      "rawRead",
      "lookbackDelta",
      "batchHours",
      "clusterBatch",
      "batchSeries",
      "skipEmpty",
      "settleDelay",
      "emptyHourGrace",
      "maxAnswerMb",
      "maxSeriesKb",
      "maxLabelKb",
      "maxSeries",
      "record",
      "replay",
      "state",
      "manifestVersion",
      "maxSizeMb",
      "maxBackfill",
      "orgId",
      "orgMap",
      "sink",
      "out",
      "s3Endpoint",
      "s3PublicEndpoint",
      "s3Region",
      "s3Bucket",
      "s3Prefix",
      "s3PathStyle",
      "presignExpiry",
      "kafkaBrokers",
      "kafkaTopic",
      "kafkaTls",
      "kafkaCaFile",
      "kafkaSaslMechanism",
      "kafkaSaslUsername",
      "kafkaSaslPasswordFile",
      "ingressUrl",
      "ingressTokenFile",
      "ingressBasicAuthFile",
      "identityFile",
      "discovery",
      "include",
      "exclude",
      "discoveryMatch",
      "discoveryWindow",
      "acmApiUrl",
      "acmTokenFile",
      "acmCaFile",
      "acmOrgKey",
      "registerSources",
      "kokuSourcesUrl",
      "ros",
      "clusters",
      "day",
      "until",
      "from",
      "to",
      "recollect",
      "dryRun",
      "json",
      "listen",
      "schedule",
      "apiTokenFile",
      "config",
      "runHistory",
      "shutdownGrace",
      "logLevel",
    ] as const).map((k) => [k, `THANOS_BRIDGE_${envName(k)}`]),
  ),
) as Record<keyof Config, string>;

function envName(key: string): string {
  if (key === "clusters") return "CLUSTER";
  if (key === "headers") return "HEADER";
  return key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
}

/**
 * The flag of a {@link Config} key, as the CLI spells it.
 *
 * @example
 * ```ts
 * import { flagOf } from "./config.ts";
 * flagOf("s3PathStyle"); // "--s3-path-style"
 * flagOf("clusters"); // "--cluster"
 * ```
 */
export function flagOf(key: string): string {
  if (key === "clusters") return "--cluster";
  if (key === "headers") return "--header";
  return "--" + key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Settings that are switches. */
export const BOOLEAN_KEYS: ReadonlySet<keyof Config> = new Set<keyof Config>([
  "s3PathStyle",
  "kafkaTls",
  "registerSources",
  "ros",
  "skipEmpty",
  "thanosGzip",
  "recollect",
  "dryRun",
  "json",
]);

/** Settings that belong to one run (or to the CLI's output), not to the process. */
export const RUN_KEYS: ReadonlySet<keyof Config> = new Set<keyof Config>([
  "day",
  "until",
  "from",
  "to",
  "recollect",
  "dryRun",
  "json",
]);
const LIST_SEPARATOR = /[\s,]+/;
/** Settings whose variable is a comma- or space-separated list. */
const LIST_ENV_KEYS: ReadonlySet<keyof Config> = new Set<keyof Config>([
  "clusters",
  "kafkaBrokers",
  "discovery",
  "include",
  "exclude",
]);

/**
 * Parses a boolean setting: `true/false`, `1/0`, `yes/no`, `on/off`
 * (any case). Anything else is a {@linkcode ConfigError} naming the field.
 *
 * @example
 * ```ts
 * import { parseBool } from "./config.ts";
 * parseBool("json", "yes"); // true
 * ```
 */
export function parseBool(field: string, value: boolean | string | undefined): boolean {
  if (value === undefined) return false;
  if (typeof value === "boolean") return value;
  const t = value.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(t)) return true;
  if (["0", "false", "no", "off"].includes(t)) return false;
  throw new ConfigError(field, value, "must be true or false (or 1/0, yes/no, on/off)");
}

/**
 * Reads a partial {@link Config} from `THANOS_BRIDGE_*` variables. Lists
 * (`THANOS_BRIDGE_CLUSTER`, `THANOS_BRIDGE_KAFKA_BROKERS`) are comma- or
 * space-separated; headers (`THANOS_BRIDGE_HEADER`) are newline-separated
 * `Name: value` lines. Booleans are checked here, so a bad one is an error
 * before anything runs.
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
    if (LIST_ENV_KEYS.has(key)) {
      (config as Record<string, unknown>)[key] = value.split(LIST_SEPARATOR).filter((s) => s);
    } else if (key === "headers") {
      config.headers = value.split(/\r?\n/).filter((s) => s.trim() !== "");
    } else if (BOOLEAN_KEYS.has(key)) {
      if (value.trim() === "") continue;
      (config as Record<string, unknown>)[key] = parseBool(name, value);
    } else {
      (config as Record<string, unknown>)[key] = value;
    }
  }
  return config;
}

function parseInteger(field: string, value: number | string, min: number, max: number): number {
  const n = typeof value === "number" ? value : /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(field, value, `must be a whole number from ${min} to ${max}`);
  }
  return n;
}

function durationMs(field: string, text: string, minMs = 0): number {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch {
    throw new ConfigError(field, text, "must be a duration like 90s, 15m or 1h");
  }
  if (ms < minMs) {
    throw new ConfigError(field, text, `must be at least ${minMs / 1000}s`);
  }
  return ms;
}

function str(value: string | undefined): string | null {
  const t = value?.trim();
  return t ? t : null;
}

function httpUrl(field: string, text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(field, text, "is not a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(field, text, "must be an http or https URL");
  }
  if (url.username || url.password) {
    throw new ConfigError(field, "(hidden)", "must not contain credentials; use a token file");
  }
  return url.href.replace(/\/+$/, "");
}

/** The id of a static list entry. */
function entryId(entry: string | StaticClusterEntry): string {
  return typeof entry === "string" ? entry : String(entry.cluster_id ?? "");
}

function invalidCluster(field: string, id: string): ConfigError {
  return new ConfigError(
    field,
    id,
    "is not a valid cluster id (letters, digits, '.', '_', '-', starting with a letter or digit)",
  );
}

/**
 * Validates a cluster id list (trimmed, de-duplicated, in order). Entries of
 * the config file's form `{cluster_id, …}` count by their id.
 *
 * @example
 * ```ts
 * import { resolveClusters } from "./config.ts";
 * resolveClusters(["a", " a", "b"]); // ["a", "b"]
 * ```
 */
export function resolveClusters(
  list: readonly (string | StaticClusterEntry)[],
  field = "clusters",
): string[] {
  const clusters = [...new Set(list.map((c) => entryId(c).trim()).filter((c) => c))];
  for (const c of clusters) {
    if (!isClusterId(c)) throw invalidCluster(field, c);
  }
  return clusters;
}

/**
 * Validates the static cluster list: ids, optional names and org ids. An id
 * listed twice must not carry two different names or orgs.
 *
 * @example
 * ```ts
 * import { resolveStaticClusters } from "./config.ts";
 * resolveStaticClusters(["a", { cluster_id: "b", name: "prod", org_id: "123" }]);
 * // [{ clusterId: "a" }, { clusterId: "b", name: "prod", orgId: "123" }]
 * ```
 */
export function resolveStaticClusters(
  list: readonly (string | StaticClusterEntry)[],
): StaticCluster[] {
  const byId = new Map<string, StaticCluster>();
  for (const entry of list) {
    const id = entryId(entry).trim();
    if (id === "") continue;
    if (!isClusterId(id)) throw invalidCluster("clusters", id);
    const name = typeof entry === "string" ? null : str(entry.name);
    const orgId = typeof entry === "string" ? null : str(entry.org_id);
    // deno-lint-ignore no-control-regex
    if (name !== null && (name.length > 256 || /[\x00-\x1f\x7f]/.test(name))) {
      throw new ConfigError("clusters", name, `is not a usable name for cluster ${id}`);
    }
    if (orgId !== null) checkOrgId("clusters", orgId);
    const cluster: StaticCluster = {
      clusterId: id,
      ...(name !== null ? { name } : {}),
      ...(orgId !== null ? { orgId } : {}),
    };
    const seen = byId.get(id);
    if (seen !== undefined) {
      if (
        (seen.name && cluster.name && seen.name !== cluster.name) ||
        (seen.orgId && cluster.orgId && seen.orgId !== cluster.orgId)
      ) {
        throw new ConfigError("clusters", id, "is listed twice with different names or orgs");
      }
      byId.set(id, { ...cluster, ...seen });
    } else {
      byId.set(id, cluster);
    }
  }
  return [...byId.values()];
}

function checkOrgId(field: string, orgId: string): void {
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(orgId) || orgId.length > 64) {
    throw new ConfigError(field, orgId, "must be at most 64 printable characters");
  }
}

function list(value: string[] | string | undefined): string[] {
  return (typeof value === "string" ? value.split(LIST_SEPARATOR) : value ?? [])
    .flatMap((s) => s.split(","))
    .map((s) => s.trim())
    .filter((s) => s);
}

/** A series selector: `metric`, `metric{…}` or `{…}`. */
const SELECTOR = /^(?:[A-Za-z_:][A-Za-z0-9_:]*(?:\{[^{}]*\})?|\{[^{}]+\})$/;

function resolveDiscovery(config: Config): DiscoverySettings {
  const sources: DiscoverySource[] = [];
  for (const s of list(config.discovery).map((s) => s.toLowerCase())) {
    if (!(DISCOVERY_SOURCES as readonly string[]).includes(s)) {
      throw new ConfigError(
        "discovery",
        s,
        `is not a discovery source (use ${DISCOVERY_SOURCES.join(", ")}, comma-separated)`,
      );
    }
    if (!sources.includes(s as DiscoverySource)) sources.push(s as DiscoverySource);
  }
  if (sources.length === 0) sources.push("static");
  const patterns = (field: "include" | "exclude") => {
    const out = list(config[field]);
    for (const p of out) {
      // deno-lint-ignore no-control-regex
      if (p.length > 256 || /[\x00-\x1f\x7f]/.test(p)) {
        throw new ConfigError(
          field,
          p,
          "must be a glob pattern of at most 256 printable characters",
        );
      }
    }
    return out;
  };
  const match = str(config.discoveryMatch) ?? "kube_node_info";
  if (!SELECTOR.test(match)) {
    throw new ConfigError(
      "discoveryMatch",
      match,
      'must be a series selector such as kube_node_info or up{job="x"}',
    );
  }
  let acm: AcmSettings | null = null;
  if (sources.includes("acm")) {
    const orgKey = str(config.acmOrgKey);
    if (
      orgKey !== null &&
      !/^([a-z0-9.-]{1,253}\/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/.test(orgKey)
    ) {
      throw new ConfigError("acmOrgKey", orgKey, "is not a Kubernetes label or annotation key");
    }
    acm = {
      apiUrl: httpUrl("acmApiUrl", str(config.acmApiUrl) ?? "https://kubernetes.default.svc"),
      tokenFile: str(config.acmTokenFile) ?? `${SERVICE_ACCOUNT_DIR}/token`,
      caFile: str(config.acmCaFile) ?? `${SERVICE_ACCOUNT_DIR}/ca.crt`,
      orgKey,
    };
  }
  return {
    sources,
    staticClusters: resolveStaticClusters(config.clusters ?? []),
    include: patterns("include"),
    exclude: patterns("exclude"),
    match,
    windowMs: durationMs("discoveryWindow", str(config.discoveryWindow) ?? "24h", 60_000),
    acm,
  };
}

/** Where Kubernetes mounts a pod's service account token and CA. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

function resolveRegistration(config: Config): RegistrationSettings | null {
  if (!parseBool("registerSources", config.registerSources)) return null;
  const url = str(config.kokuSourcesUrl);
  if (url === null) {
    throw new ConfigError(
      "kokuSourcesUrl",
      undefined,
      "is required with --register-sources (e.g. http://koku-api:8000/api/cost-management/v1/)",
    );
  }
  return { url: httpUrl("kokuSourcesUrl", url) + "/" };
}

/** Whether a header value or name holds CR, LF or NUL. */
// deno-lint-ignore no-control-regex
const HEADER_BREAK = /[\r\n\x00]/;

function resolveHeaders(list: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const h of list) {
    if (HEADER_BREAK.test(h)) {
      throw new ConfigError("headers", h, "must not contain CR, LF or NUL characters");
    }
    const i = h.indexOf(":");
    if (i < 0) throw new ConfigError("headers", h, 'must look like "Name: value" (no colon)');
    const name = h.slice(0, i).trim();
    if (name === "") throw new ConfigError("headers", h, "has an empty header name");
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      throw new ConfigError("headers", h, `has an invalid header name ${JSON.stringify(name)}`);
    }
    if (name.toLowerCase() === "authorization") {
      throw new ConfigError("headers", name, "must not be set here; use --token-file");
    }
    headers[name] = h.slice(i + 1).trim();
  }
  return headers;
}

const MANIFEST_VERSION = /^(?:[0-9a-f]{40}|[0-9a-f]{7,39}|v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?)$/;

function kafkaBrokers(value: Config["kafkaBrokers"]): string[] {
  const brokers = list(value);
  for (const b of brokers) {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(b);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      throw new ConfigError("kafkaBrokers", b, "must be host:port");
    }
  }
  return brokers;
}

function resolveS3Kafka(config: Config): S3KafkaSettings {
  const s3Bucket = str(config.s3Bucket);
  if (s3Bucket === null) {
    throw new ConfigError("s3Bucket", undefined, "is required with --sink s3-kafka");
  }
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(s3Bucket)) {
    throw new ConfigError("s3Bucket", s3Bucket, "is not a valid bucket name");
  }
  const brokers = kafkaBrokers(config.kafkaBrokers);
  if (brokers.length === 0) {
    throw new ConfigError(
      "kafkaBrokers",
      undefined,
      "is required with --sink s3-kafka (host:port,…)",
    );
  }
  const mechanism = str(config.kafkaSaslMechanism)?.toLowerCase() ?? null;
  if (mechanism !== null && !["plain", "scram-sha-256", "scram-sha-512"].includes(mechanism)) {
    throw new ConfigError(
      "kafkaSaslMechanism",
      config.kafkaSaslMechanism,
      "must be plain, scram-sha-256 or scram-sha-512",
    );
  }
  const username = str(config.kafkaSaslUsername);
  const passwordFile = str(config.kafkaSaslPasswordFile);
  if (mechanism !== null && username === null) {
    throw new ConfigError("kafkaSaslMechanism", mechanism, "needs --kafka-sasl-username");
  }
  const prefix = (config.s3Prefix ?? "").trim().replace(/^\/+|\/+$/g, "");
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f\\]|(^|\/)\.\.?(\/|$)/.test(prefix)) {
    throw new ConfigError(
      "s3Prefix",
      config.s3Prefix,
      "must be a plain key prefix (no control characters, '.' or '..' parts)",
    );
  }
  const topic = str(config.kafkaTopic) ?? "platform.upload.announce";
  if (!/^[A-Za-z0-9._-]{1,249}$/.test(topic)) {
    throw new ConfigError("kafkaTopic", topic, "is not a valid Kafka topic name");
  }
  const expiry = durationMs("presignExpiry", str(config.presignExpiry) ?? "24h", 60_000);
  if (expiry > 7 * 86_400_000) {
    throw new ConfigError(
      "presignExpiry",
      config.presignExpiry,
      "must be at most 7d (SigV4's limit)",
    );
  }
  return {
    s3Endpoint: config.s3Endpoint?.trim() ? httpUrl("s3Endpoint", config.s3Endpoint.trim()) : null,
    s3PublicEndpoint: config.s3PublicEndpoint?.trim()
      ? httpUrl("s3PublicEndpoint", config.s3PublicEndpoint.trim())
      : null,
    s3Region: str(config.s3Region) ?? "us-east-1",
    s3Bucket,
    s3Prefix: prefix,
    s3PathStyle: parseBool("s3PathStyle", config.s3PathStyle),
    presignExpirySeconds: Math.floor(expiry / 1000),
    kafkaBrokers: brokers,
    kafkaTopic: topic,
    kafkaTls: parseBool("kafkaTls", config.kafkaTls),
    kafkaCaFile: str(config.kafkaCaFile),
    kafkaSaslMechanism: mechanism as S3KafkaSettings["kafkaSaslMechanism"],
    kafkaSaslUsername: username,
    kafkaSaslPasswordFile: passwordFile,
    identityFile: str(config.identityFile),
  };
}

/**
 * Fills defaults and validates every process setting. Throws a
 * {@linkcode ConfigError} naming the setting and (at most 100 characters of)
 * its value.
 *
 * @example
 * ```ts
 * import { resolveSettings } from "./config.ts";
 * const s = resolveSettings(
 *   { thanosUrl: "http://127.0.0.1:9090", clusters: ["c1"], out: "out" },
 *   { cacheDir: "/tmp/cache" },
 * );
 * s.stateDir; // "/tmp/cache/thanos-bridge"
 * ```
 */
export function resolveSettings(config: Config, context: ResolveContext): BridgeSettings {
  const replay = str(config.replay);
  const rawUrl = str(config.thanosUrl);
  const thanosUrl = rawUrl === null ? null : httpUrl("thanosUrl", rawUrl);
  if (thanosUrl === null && replay === null) {
    throw new ConfigError("thanosUrl", undefined, "is required (or --replay DIR)");
  }
  const record = str(config.record);
  if (record !== null && replay !== null) {
    throw new ConfigError("record", record, "cannot be used together with --replay");
  }
  const clusterLabel = str(config.clusterLabel) ?? "clusterID";
  if (!isLabelName(clusterLabel)) {
    throw new ConfigError("clusterLabel", clusterLabel, "is not a Prometheus label name");
  }
  const rateWindow = str(config.rateWindow) ?? "15m";
  durationMs("rateWindow", rateWindow, 1000);
  const reduce = str(config.reduce) ?? "local";
  if (!(REDUCE_SETTINGS as readonly string[]).includes(reduce)) {
    throw new ConfigError("reduce", reduce, "must be server, client or local");
  }
  const engineSemantics = str(config.engineSemantics) ?? "auto";
  if (!["auto", "prometheus2", "prometheus3"].includes(engineSemantics)) {
    throw new ConfigError(
      "engineSemantics",
      engineSemantics,
      "must be auto, prometheus2 or prometheus3",
    );
  }
  const rawRead = str(config.rawRead) ?? "auto";
  if (!["auto", "remote-read", "query"].includes(rawRead)) {
    throw new ConfigError("rawRead", rawRead, "must be auto, remote-read or query");
  }
  if (rawRead === "remote-read" && (replay !== null || record !== null)) {
    throw new ConfigError(
      "rawRead",
      rawRead,
      "cannot be used with --replay or --record (recordings hold query answers only)",
    );
  }
  const certFile = str(config.certFile);
  const keyFile = str(config.keyFile);
  if ((certFile === null) !== (keyFile === null)) {
    throw new ConfigError(
      certFile ? "keyFile" : "certFile",
      undefined,
      "is needed too: --cert-file and --key-file go together (mTLS)",
    );
  }
  const sink = (str(config.sink) ?? "dir") as SinkKind;
  if (!SINK_KINDS.includes(sink)) {
    throw new ConfigError("sink", config.sink, `must be one of ${SINK_KINDS.join(", ")}`);
  }
  const out = str(config.out);
  if (sink === "dir" && out === null) {
    throw new ConfigError("out", undefined, "DIR is required with --sink dir");
  }
  let ingress: IngressSettings | null = null;
  if (sink === "ingress") {
    const url = str(config.ingressUrl);
    if (url === null) {
      throw new ConfigError("ingressUrl", undefined, "is required with --sink ingress");
    }
    const tokenFile = str(config.ingressTokenFile);
    const basicFile = str(config.ingressBasicAuthFile);
    if (tokenFile !== null && basicFile !== null) {
      throw new ConfigError(
        "ingressBasicAuthFile",
        basicFile,
        "cannot be used together with --ingress-token-file",
      );
    }
    ingress = {
      ingressUrl: httpUrl("ingressUrl", url),
      ingressTokenFile: tokenFile,
      ingressBasicAuthFile: basicFile,
    };
  }
  const manifestVersion = str(config.manifestVersion) ?? DEFAULT_MANIFEST_VERSION;
  if (!MANIFEST_VERSION.test(manifestVersion)) {
    throw new ConfigError(
      "manifestVersion",
      manifestVersion,
      "must be a commit id (7-40 hex digits) or a version like 4.4.1",
    );
  }
  const orgId = (config.orgId ?? "").trim();
  checkOrgId("orgId", orgId);
  return {
    thanosUrl,
    clusters: resolveClusters(config.clusters ?? []),
    discovery: resolveDiscovery(config),
    registration: resolveRegistration(config),
    ros: config.ros === undefined ? true : parseBool("ros", config.ros),
    clusterLabel,
    rateWindow,
    concurrency: parseInteger("concurrency", config.concurrency ?? 4, 1, 64),
    timeoutMs: durationMs("timeout", str(config.timeout) ?? "120s", 1000),
    maxAttempts: parseInteger("retries", config.retries ?? 5, 1, 20),
    tokenFile: str(config.tokenFile),
    caFile: str(config.caFile),
    certFile,
    keyFile,
    headers: resolveHeaders(config.headers ?? []),
    thanosGzip: parseBool("thanosGzip", config.thanosGzip),
    reduce: reduce as ReduceSetting,
    engineSemantics: engineSemantics as BridgeSettings["engineSemantics"],
    rawRead: rawRead as BridgeSettings["rawRead"],
    lookbackMs: durationMs("lookbackDelta", str(config.lookbackDelta) ?? "5m", 1000),
    // Local mode reads each series once per batch, so longer batches cost the server less:
    // 2,000-pod day, 6 -> 12 hours: Prometheus CPU 9.4 -> 6.2 s, wall 55 -> 44 s, RSS +36 MB.
    batchHours: parseInteger(
      "batchHours",
      config.batchHours ?? (reduce === "local" ? 12 : 6),
      1,
      24,
    ),
    clusterBatch: parseInteger("clusterBatch", config.clusterBatch ?? 100, 1, 1000),
    batchSeries: parseInteger("batchSeries", config.batchSeries ?? 10_000, 1, 100_000_000),
    skipEmpty: config.skipEmpty === undefined ? true : parseBool("skipEmpty", config.skipEmpty),
    settleDelayMs: durationMs("settleDelay", str(config.settleDelay) ?? "10m"),
    emptyHourGraceMs: durationMs("emptyHourGrace", str(config.emptyHourGrace) ?? "6h"),
    limits: {
      maxAnswerBytes: parseInteger("maxAnswerMb", config.maxAnswerMb ?? 256, 1, 4096) * 1_048_576,
      maxSeriesBytes: parseInteger("maxSeriesKb", config.maxSeriesKb ?? 1024, 1, 1_048_576) * 1024,
      maxLabelBytes: parseInteger("maxLabelKb", config.maxLabelKb ?? 16, 1, 65_536) * 1024,
      maxSeries: parseInteger("maxSeries", config.maxSeries ?? 100_000, 1, 100_000_000),
    },
    record,
    replay,
    stateDir: str(config.state) ?? `${context.cacheDir.replace(/\/+$/, "")}/thanos-bridge`,
    manifestVersion,
    maxBytes: parseInteger("maxSizeMb", config.maxSizeMb ?? 100, 1, 100) * 1_048_576,
    maxBackfillMs: durationMs("maxBackfill", str(config.maxBackfill) ?? "14d", 3_600_000),
    orgId,
    orgMap: str(config.orgMap),
    sink,
    out: sink === "dir" ? out : null,
    s3Kafka: sink === "s3-kafka" ? resolveS3Kafka(config) : null,
    ingress,
  };
}

/**
 * Resolves the run part of a {@link Config}: `--from`/`--to`, or their
 * shorthands `--day` (+ `--until`), the cluster list, `--recollect` and
 * `--dry-run`. Pure; the hours are checked against the clock by `planRun`.
 *
 * @example
 * ```ts
 * import { resolveRunRequest } from "./config.ts";
 * resolveRunRequest({ day: "2026-11-01", until: "5" });
 * // { recollect: false, dryRun: false, from: "2026-11-01", to: "2026-11-01T05" }
 * ```
 */
export function resolveRunRequest(config: Config): RunRequest {
  let from = str(config.from) ?? undefined;
  let to = str(config.to) ?? undefined;
  const day = str(config.day);
  const until = config.until === undefined || config.until === "" ? null : config.until;
  if (day !== null) {
    if (from !== undefined || to !== undefined) {
      throw new ConfigError("day", day, "cannot be combined with --from/--to");
    }
    parseDay(day, "day");
    from = day;
    to = until === null
      ? day
      : `${day}T${String(parseInteger("until", until, 0, 23)).padStart(2, "0")}`;
  } else if (until !== null) {
    throw new ConfigError("until", until, "needs --day");
  }
  const request: { -readonly [K in keyof RunRequest]: RunRequest[K] } = {
    recollect: parseBool("recollect", config.recollect),
    dryRun: parseBool("dryRun", config.dryRun),
  };
  if (from !== undefined) request.from = from;
  if (to !== undefined) request.to = to;
  if (config.clusters !== undefined) request.clusters = resolveClusters(config.clusters);
  return request;
}

/** Settings of `thanos-bridge serve` (besides the {@link BridgeSettings}). */
export interface ServeSettings {
  readonly hostname: string;
  readonly port: number;
  /** Cron pattern of the scheduled runs, or null (`off`). */
  readonly schedule: string | null;
  readonly apiTokenFile: string | null;
  /** Runs kept in the history. */
  readonly runHistory: number;
  readonly shutdownGraceMs: number;
  readonly logLevel: "debug" | "info" | "warning" | "error";
}

const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;

/**
 * Resolves the settings of `serve`: `--listen HOST:PORT` (default
 * `0.0.0.0:8080`), `--schedule CRON` (default `15 * * * *`, `off` disables
 * it; the pattern itself is checked by the scheduler), `--api-token-file`,
 * `--run-history N` (default 100), `--shutdown-grace DUR` (default 30s),
 * `--log-level` (default info). Pure.
 *
 * @example
 * ```ts
 * import { resolveServeSettings } from "./config.ts";
 * resolveServeSettings({ listen: "127.0.0.1:9000" }).port; // 9000
 * ```
 */
export function resolveServeSettings(config: Config): ServeSettings {
  const listen = str(config.listen) ?? "0.0.0.0:8080";
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) {
    throw new ConfigError("listen", listen, "must be HOST:PORT, e.g. 0.0.0.0:8080");
  }
  const hostname = m[1] === "" ? "0.0.0.0" : m[1]!.replace(/^\[|\]$/g, "");
  const schedule = str(config.schedule) ?? "15 * * * *";
  const logLevel = (str(config.logLevel) ?? "info").toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError("logLevel", config.logLevel, `must be one of ${LOG_LEVELS.join(", ")}`);
  }
  return {
    hostname,
    port,
    schedule: schedule.toLowerCase() === "off" ? null : schedule,
    apiTokenFile: str(config.apiTokenFile),
    runHistory: parseInteger("runHistory", config.runHistory ?? 100, 1, 100_000),
    shutdownGraceMs: durationMs("shutdownGrace", str(config.shutdownGrace) ?? "30s"),
    logLevel: logLevel as ServeSettings["logLevel"],
  };
}
