/**
 * The sink checks of `thanos-bridge doctor` (issue 10, part 3): each probe
 * tries what its sink does, without delivering anything, and returns
 * {@linkcode DoctorCheck}s the CLI prints as `✓`/`✗` lines.
 *
 * - {@linkcode probeS3}: `s3.write`, `s3.read`, `s3.presign`, `s3.delete` — a
 *   small JSON object under `<prefix>/.thanos-bridge-doctor/<uuid>` is written,
 *   read back, downloaded from a presigned URL (signed for the public endpoint,
 *   like the URLs koku gets) and deleted again.
 * - {@linkcode probeKafka}: `kafka.brokers`, `kafka.topic`, `kafka.produce` —
 *   the brokers answer, the announce topic exists, and (only when asked, to a
 *   topic the operator names) one test message with header
 *   `service: thanos-bridge-doctor` can be produced. koku only consumes
 *   `service: hccm`, so it never takes the test message for an upload.
 * - {@linkcode probeIngress}: `ingress.reach` — a `GET` of the upload URL
 *   (see the function for what counts as `✓`); nothing is uploaded.
 *
 * Every step has its own timeout (default {@linkcode DEFAULT_PROBE_STEP_TIMEOUT_MS})
 * and stops when the caller's `signal` aborts: the probe then cleans up (the
 * S3 test object is still deleted, Kafka clients disconnected) and throws a
 * `BridgeError` `cancelled`. Every other problem is a `fail` check, never an
 * exception. No detail ever holds a credential: secrets are redacted from
 * server answers and presigned URLs are shown without their query.
 *
 * @module
 */

import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { type Admin, Kafka, type LogEntry, logLevel, Partitioners, type Producer } from "kafkajs";
import { BridgeError, escapeControl } from "../model.ts";
import { check, type DoctorCheck } from "../service/doctor_check.ts";
import {
  INGRESS_UPLOAD_PATH,
  type IngressAuth,
  ingressAuthorization,
  nodeRequest,
  type PostAnswer,
} from "./ingress_sink.ts";
import { formatKafkaLogEntry, kafkaConnectionConfig, type KafkaSasl } from "./kafka_announcer.ts";
import {
  createS3Client,
  DEFAULT_ANNOUNCE_TOPIC,
  DEFAULT_PRESIGN_EXPIRY_SECONDS,
  MAX_PRESIGN_EXPIRY_SECONDS,
  type S3Settings,
} from "./s3_kafka_sink.ts";

/** Default timeout of one probe step (one S3 request, one Kafka exchange, one GET). */
export const DEFAULT_PROBE_STEP_TIMEOUT_MS = 10_000;
/** Folder (below the configured prefix) of the S3 test objects. */
export const DOCTOR_OBJECT_FOLDER = ".thanos-bridge-doctor";
/** Value of the `service` header of the Kafka test message (koku consumes only `hccm`). */
export const DOCTOR_SERVICE_HEADER = "thanos-bridge-doctor";

// ---------------------------------------------------------------------------
// Shared helpers

/** A step ran out of time. */
class StepTimeout extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
  }
  override get name(): string {
    return "StepTimeout";
  }
}

function cancelled(signal: AbortSignal): BridgeError {
  return new BridgeError("cancelled", "cancelled", { cause: signal.reason });
}

/**
 * Runs one step: `work` gets a signal that aborts on the step's timeout or
 * the caller's abort. Rejects with {@linkcode StepTimeout}, a `cancelled`
 * BridgeError, or whatever `work` rejects with — even if `work` ignores its
 * signal (kafkajs takes none).
 */
async function step<T>(
  signal: AbortSignal | undefined,
  ms: number,
  work: (stepSignal: AbortSignal) => Promise<T>,
): Promise<T> {
  if (signal?.aborted) throw cancelled(signal);
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort = () => {};
  const stopped = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = new StepTimeout(ms);
      controller.abort(e);
      reject(e);
    }, ms);
    onAbort = () => {
      controller.abort(signal!.reason);
      reject(cancelled(signal!));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  const running = work(controller.signal);
  try {
    return await Promise.race([running, stopped]);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    running.catch(() => {});
  }
}

function isCancelled(e: unknown): e is BridgeError {
  return e instanceof BridgeError && e.code === "cancelled";
}

/** Replaces every secret (4+ characters) in `text`, then escapes control characters. */
function redact(text: string, secrets: readonly (string | null | undefined)[]): string {
  let out = text;
  for (const s of secrets) {
    if (typeof s === "string" && s.length >= 4) out = out.split(s).join("[redacted]");
  }
  return escapeControl(out, false);
}

function clip(text: string, max = 200): string {
  const t = text.trim();
  return t.length > max ? t.slice(0, max) + "…" : t;
}

/** Network error codes, also inside `cause` / `errors` (AggregateError). */
function networkCode(e: unknown, depth = 0): string | null {
  if (depth > 4 || e === null || typeof e !== "object") return null;
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string" && /^E[A-Z_]+$/.test(code)) return code;
  const inner = (e as { cause?: unknown }).cause;
  const found = networkCode(inner, depth + 1);
  if (found) return found;
  const errors = (e as { errors?: unknown }).errors;
  if (Array.isArray(errors)) {
    for (const x of errors) {
      const c = networkCode(x, depth + 1);
      if (c) return c;
    }
  }
  return null;
}

function errorText(e: unknown): string {
  if (e instanceof Error) {
    return e.message && e.message !== e.name ? `${e.name}: ${e.message}` : e.name;
  }
  return String(e);
}

const TLS_PROBLEM =
  /certificate|self[- ]signed|CERT_|SSL|TLS|wrong version number|handshake|secure TLS connection/i;

// ---------------------------------------------------------------------------
// S3

/**
 * What {@linkcode probeS3} needs: the sink's {@linkcode S3Settings} (the
 * same object the `S3KafkaSink` gets) plus its presign expiry.
 */
export interface S3ProbeOptions extends S3Settings {
  /** Lifetime of the presigned test URL, as the sink's (default 24 h, at most 7 days). */
  readonly presignExpirySeconds?: number;
  /** Timeout of each step in ms (default {@linkcode DEFAULT_PROBE_STEP_TIMEOUT_MS}). */
  readonly stepTimeoutMs?: number;
}

const S3_TITLES = {
  write: "S3: write a test object",
  read: "S3: read the test object back",
  presign: "S3: download it from a presigned URL",
  delete: "S3: delete the test object",
} as const;

/** The XML `<Code>` of an S3 error answer, if any. */
function s3ErrorCode(text: string): string | null {
  return /<Code>([^<]{1,100})<\/Code>/.exec(text)?.[1] ?? null;
}

interface S3Context {
  readonly where: string;
  readonly bucket: string;
  readonly key: string;
  readonly region: string;
  /** S3 permission the failed operation needs, e.g. `s3:PutObject`. */
  readonly permission: string;
  readonly secrets: readonly (string | undefined)[];
}

/** An S3 SDK error in words, with what to do. */
function s3Problem(e: unknown, ctx: S3Context): string {
  if (e instanceof StepTimeout) return `no answer from ${ctx.where} within ${e.ms} ms`;
  const name = e instanceof Error ? e.name : "";
  const status = (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  const code = name || "error";
  const object = `s3://${ctx.bucket}/${ctx.key}`;
  switch (name) {
    case "NoSuchBucket":
      return `bucket "${ctx.bucket}" does not exist at ${ctx.where} (NoSuchBucket) — create it, or fix --s3-bucket`;
    case "AccessDenied":
    case "Forbidden":
    case "AllAccessDisabled":
      return `access to ${object} denied at ${ctx.where} (${code}) — the credentials need ${ctx.permission} on ${ctx.bucket}/${
        ctx.key.slice(0, ctx.key.lastIndexOf("/") + 1)
      }*`;
    case "SignatureDoesNotMatch":
      return `${ctx.where} refused the request signature (SignatureDoesNotMatch) — check AWS_SECRET_ACCESS_KEY (and that no proxy rewrites the Host header)`;
    case "InvalidAccessKeyId":
      return `${ctx.where} does not know the access key (InvalidAccessKeyId) — check AWS_ACCESS_KEY_ID`;
    case "ExpiredToken":
    case "InvalidToken":
    case "TokenRefreshRequired":
      return `${ctx.where} refused the session token (${code}) — check AWS_SESSION_TOKEN (or unset it for static keys)`;
    case "CredentialsProviderError":
      return "no S3 credentials found — set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or another source of the AWS SDK's default chain, e.g. AWS_SHARED_CREDENTIALS_FILE)";
    case "AuthorizationHeaderMalformed":
    case "PermanentRedirect":
    case "IllegalLocationConstraintException":
      return `${ctx.where} answers ${code}: the bucket is in another region — check --s3-region (now ${ctx.region})`;
    case "RequestTimeTooSkewed":
      return `${ctx.where} answers RequestTimeTooSkewed: this machine's clock is off — fix its time (NTP)`;
  }
  const net = networkCode(e);
  if (net !== null) {
    return `cannot reach ${ctx.where} (${net}) — check --s3-endpoint, DNS, and that this pod may connect to it (network policy, proxy)`;
  }
  if (name === "AbortError" || name === "TimeoutError") {
    return `no answer from ${ctx.where}`;
  }
  if (status === 403) {
    return `${ctx.where} refused the request (HTTP 403, ${code}) — check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the permission ${ctx.permission}`;
  }
  const text = clip(redact(errorText(e), ctx.secrets), 300);
  return `${ctx.where}: ${text}${status ? ` (HTTP ${status})` : ""}`;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Reads at most `max` bytes of a fetch body (then cancels it). */
async function readCapped(response: Response, max: number): Promise<Uint8Array> {
  if (response.body === null) return new Uint8Array();
  const reader = response.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    while (size <= max) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function originOf(url: string | null): string | null {
  if (url === null) return null;
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

/** A problem with the S3 settings themselves (the sink's constructor would refuse them), or null. */
function s3SettingsProblem(o: S3ProbeOptions): string | null {
  if (typeof o.bucket !== "string" || o.bucket === "") return "the bucket (--s3-bucket) is empty";
  if (typeof o.region !== "string" || o.region === "") return "the region (--s3-region) is empty";
  for (
    const [flag, url] of [["--s3-endpoint", o.endpoint], ["--s3-public-endpoint", o.publicEndpoint]]
  ) {
    if (url !== null && url !== undefined && !/^https?:\/\/[^/?#]+/.test(url)) {
      return `${flag} must be an http(s) URL, got ${JSON.stringify(clip(url, 100))}`;
    }
  }
  return null;
}

/**
 * Checks the S3 side of the `s3-kafka` sink with a small test object under
 * `<prefix>/.thanos-bridge-doctor/<uuid>`:
 *
 * - `s3.write`: `PutObject` with the sink's client settings;
 * - `s3.read`: `GetObject`, the bytes must equal those written;
 * - `s3.presign`: a presigned `GET`, signed like the URLs koku gets (for the
 *   public endpoint when one is set, with the configured expiry), fetched
 *   with plain `fetch`; the bytes must be equal. When the public endpoint
 *   differs from the endpoint and cannot be reached from here at all
 *   (connection refused, DNS, timeout), the check is `skip`, not `fail`: that
 *   host is meant for koku's pods, which may reach it. An answer that refuses
 *   the URL (403, 404, redirect…) is a `fail`;
 * - `s3.delete`: `DeleteObject`, always attempted (in a `finally`). When the
 *   write failed, the delete is still sent (a timed-out write may have
 *   landed) and the check is `skip`.
 *
 * Requests are not retried unless `options.maxAttempts` says so. Never
 * throws, except a `BridgeError` `cancelled` when `signal` aborts (after the
 * clean-up delete).
 *
 * @example
 * ```ts ignore
 * import { probeS3 } from "./sink_probe.ts";
 *
 * const checks = await probeS3({
 *   endpoint: "http://127.0.0.1:8333", publicEndpoint: null, region: "us-east-1",
 *   bucket: "koku", prefix: "cost", pathStyle: true,
 * });
 * for (const c of checks) console.log(c.status === "ok" ? "✓" : "✗", c.title, c.detail);
 * ```
 */
export async function probeS3(
  options: S3ProbeOptions,
  signal?: AbortSignal,
): Promise<DoctorCheck[]> {
  if (signal?.aborted) throw cancelled(signal);
  const ms = options.stepTimeoutMs ?? DEFAULT_PROBE_STEP_TIMEOUT_MS;
  const bad = s3SettingsProblem(options);
  if (bad !== null) {
    return [
      check("s3.write", S3_TITLES.write, "fail", `invalid S3 settings: ${bad}`),
      check("s3.read", S3_TITLES.read, "skip", "the write failed"),
      check("s3.presign", S3_TITLES.presign, "skip", "the write failed"),
      check("s3.delete", S3_TITLES.delete, "skip", "nothing was written"),
    ];
  }
  const bucket = options.bucket;
  const prefix = options.prefix.replace(/^\/+|\/+$/g, "");
  const key = `${prefix === "" ? "" : prefix + "/"}${DOCTOR_OBJECT_FOLDER}/${crypto.randomUUID()}`;
  const object = `s3://${bucket}/${key}`;
  const where = options.endpoint ?? `AWS S3 (${options.region})`;
  const secrets = [
    options.credentials?.secretAccessKey,
    options.credentials?.sessionToken,
    options.credentials?.accessKeyId,
  ];
  const ctx = (permission: string): S3Context => ({
    where,
    bucket,
    key,
    region: options.region,
    permission,
    secrets,
  });
  const body = new TextEncoder().encode(
    JSON.stringify({
      test: "thanos-bridge doctor",
      note: "connectivity test object; deleted right after the check, safe to delete",
      at: new Date().toISOString(),
    }) + "\n",
  );
  const settings: S3Settings = { ...options, maxAttempts: options.maxAttempts ?? 1 };
  const client = createS3Client(settings);
  const presigner = createS3Client(settings, { forPresigning: true });
  const checks: DoctorCheck[] = [];
  let written = false;
  let stop: BridgeError | null = null;
  try {
    try {
      // Some servers (SeaweedFS with an admin identity) create a missing bucket on
      // the first PutObject: ask first, so doctor never creates one. A 403 here only
      // means the credentials lack s3:ListBucket, which the sink does not need.
      try {
        await step(
          signal,
          ms,
          (s) => client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: s }),
        );
      } catch (e) {
        if (isCancelled(e)) throw e;
        const status = (e as { $metadata?: { httpStatusCode?: number } })?.$metadata
          ?.httpStatusCode;
        if (status === 404 || (e instanceof Error && e.name === "NoSuchBucket")) {
          throw Object.assign(new Error("NoSuchBucket"), { name: "NoSuchBucket" });
        }
        if (e instanceof StepTimeout || networkCode(e) !== null) throw e;
      }
      await step(signal, ms, (s) =>
        client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: body,
            ContentType: "application/json",
          }),
          { abortSignal: s },
        ));
      written = true;
      checks.push(
        check(
          "s3.write",
          S3_TITLES.write,
          "ok",
          `wrote ${body.length} bytes to ${object} at ${where}`,
        ),
      );
    } catch (e) {
      if (isCancelled(e)) throw e;
      checks.push(check("s3.write", S3_TITLES.write, "fail", s3Problem(e, ctx("s3:PutObject"))));
    }
    if (!written) {
      checks.push(check("s3.read", S3_TITLES.read, "skip", "the write failed"));
      checks.push(check("s3.presign", S3_TITLES.presign, "skip", "the write failed"));
    } else {
      checks.push(await readBack(client, bucket, key, body, ms, ctx("s3:GetObject"), signal));
      checks.push(
        await presignedGet(presigner, options, key, body, ms, ctx("s3:GetObject"), signal),
      );
    }
  } catch (e) {
    if (!isCancelled(e)) throw e;
    stop = e;
  } finally {
    // Clean up even when cancelled: a fresh timeout, not the aborted signal.
    checks.push(await deleteObject(client, bucket, key, written, ms, ctx("s3:DeleteObject")));
    client.destroy();
    presigner.destroy();
  }
  if (stop !== null) throw stop;
  return checks;
}

async function readBack(
  client: ReturnType<typeof createS3Client>,
  bucket: string,
  key: string,
  body: Uint8Array,
  ms: number,
  ctx: S3Context,
  signal?: AbortSignal,
): Promise<DoctorCheck> {
  try {
    const got = await step(signal, ms, async (s) => {
      const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), {
        abortSignal: s,
      });
      return answer.Body ? await answer.Body.transformToByteArray() : new Uint8Array();
    });
    if (!equalBytes(got, body)) {
      return check(
        "s3.read",
        S3_TITLES.read,
        "fail",
        `read ${got.length} bytes back, not the ${body.length} bytes written — the server or a proxy changes objects (checksum settings?)`,
      );
    }
    return check("s3.read", S3_TITLES.read, "ok", `read the same ${got.length} bytes back`);
  } catch (e) {
    if (isCancelled(e)) throw e;
    if (e instanceof Error && e.name === "NoSuchKey") {
      return check(
        "s3.read",
        S3_TITLES.read,
        "fail",
        `the object just written is not there (NoSuchKey) at ${ctx.where} — several S3 servers behind one endpoint without shared storage?`,
      );
    }
    return check("s3.read", S3_TITLES.read, "fail", s3Problem(e, ctx));
  }
}

async function presignedGet(
  presigner: ReturnType<typeof createS3Client>,
  options: S3ProbeOptions,
  key: string,
  body: Uint8Array,
  ms: number,
  ctx: S3Context,
  signal?: AbortSignal,
): Promise<DoctorCheck> {
  const id = "s3.presign";
  const title = S3_TITLES.presign;
  const expiry = options.presignExpirySeconds ?? DEFAULT_PRESIGN_EXPIRY_SECONDS;
  if (!Number.isInteger(expiry) || expiry < 1 || expiry > MAX_PRESIGN_EXPIRY_SECONDS) {
    return check(
      id,
      title,
      "fail",
      `the presign expiry must be 1-${MAX_PRESIGN_EXPIRY_SECONDS} seconds (SigV4 limit), got ${expiry}`,
    );
  }
  let url: string;
  try {
    url = await getSignedUrl(
      presigner,
      new GetObjectCommand({ Bucket: options.bucket, Key: key }),
      { expiresIn: expiry },
    );
  } catch (e) {
    return check(id, title, "fail", `cannot presign: ${s3Problem(e, ctx)}`);
  }
  // The query holds the access key id and the signature: never shown.
  const shown = url.replace(/[?#].*$/, "");
  const host = originOf(url) ?? shown;
  const viaPublic = options.publicEndpoint !== null && options.publicEndpoint !== undefined &&
    originOf(options.publicEndpoint) !== originOf(options.endpoint);
  const signedFor = viaPublic ? `signed for --s3-public-endpoint ${host}` : `signed for ${host}`;
  let response: Response;
  let got: Uint8Array;
  try {
    [response, got] = await step(signal, ms, async (s) => {
      const r = await fetch(url, { signal: s, redirect: "manual" });
      return [r, await readCapped(r, 64 * 1024)] as const;
    });
  } catch (e) {
    if (isCancelled(e)) throw e;
    const why = e instanceof StepTimeout ? e.message : fetchProblem(e, url, shown, ctx.secrets);
    if (viaPublic) {
      return check(
        id,
        title,
        "skip",
        `the presigned URL (${signedFor}) cannot be fetched from here (${why}); koku's pods may still reach that host — check that ${host} answers from a koku pod`,
      );
    }
    return check(id, title, "fail", `cannot fetch the presigned URL ${shown} (${why})`);
  }
  const status = response.status;
  if (status === 200) {
    if (!equalBytes(got, body)) {
      return check(
        id,
        title,
        "fail",
        `GET of the presigned URL (${signedFor}) returned ${got.length} bytes that differ from the ${body.length} bytes written — is ${host} the same S3 service?`,
      );
    }
    return check(
      id,
      title,
      "ok",
      `GET of a presigned URL (${signedFor}, valid ${expiry} s) returned the ${got.length} bytes written`,
    );
  }
  if (status >= 300 && status < 400) {
    const location = originOf(response.headers.get("location")) ?? "elsewhere";
    return check(
      id,
      title,
      "fail",
      `${host} redirects the presigned URL (HTTP ${status}) to ${location}: koku does not follow S3 redirects — check --s3-region, http/https, and --s3-public-endpoint`,
    );
  }
  const code = s3ErrorCode(new TextDecoder().decode(got));
  const answer = `HTTP ${status}${code ? ` ${code}` : ""}`;
  if (code === "SignatureDoesNotMatch") {
    return check(
      id,
      title,
      "fail",
      `${host} refused the presigned URL's signature (${answer}) — the URL is ${signedFor}: that name must reach the same S3 service, with no proxy rewriting the Host header or the path; check --s3-public-endpoint and --s3-path-style`,
    );
  }
  if (status === 404) {
    return check(
      id,
      title,
      "fail",
      `${host} does not have the object just written (${answer}) — the public endpoint must be the same S3 service as --s3-endpoint`,
    );
  }
  if (status === 403) {
    return check(
      id,
      title,
      "fail",
      `${host} refused the presigned URL (${answer}) — a bucket policy may deny presigned GETs, or the clocks differ`,
    );
  }
  return check(id, title, "fail", `${host} answered the presigned URL with ${answer}`);
}

/** Why `fetch` failed, in words; the presigned query (access key id, signature) never shows. */
function fetchProblem(
  e: unknown,
  url: string,
  shown: string,
  secrets: readonly (string | undefined)[],
): string {
  const net = networkCode(e);
  if (net !== null) return net;
  const cause = (e as { cause?: unknown })?.cause;
  const text = cause instanceof Error ? cause.message : e instanceof Error ? e.message : String(e);
  const safe = text.split(url).join(shown).replace(/\?[^\s)]*X-Amz-[^\s)]*/g, "?…")
    .replace(/^error sending request for url \([^)]*\):\s*/, "");
  return clip(redact(safe, secrets), 200);
}

async function deleteObject(
  client: ReturnType<typeof createS3Client>,
  bucket: string,
  key: string,
  written: boolean,
  ms: number,
  ctx: S3Context,
): Promise<DoctorCheck> {
  const id = "s3.delete";
  const title = S3_TITLES.delete;
  try {
    await step(
      undefined,
      ms,
      (s) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: s }),
    );
    return written
      ? check(id, title, "ok", `deleted s3://${bucket}/${key}`)
      : check(id, title, "skip", "the write failed (a clean-up delete was sent anyway)");
  } catch (e) {
    if (!written) return check(id, title, "skip", "the write failed; nothing to delete");
    return check(
      id,
      title,
      "fail",
      `${
        s3Problem(e, ctx)
      } — the test object s3://${bucket}/${key} is left behind: delete it by hand (the bridge itself never deletes objects)`,
    );
  }
}

// ---------------------------------------------------------------------------
// Kafka

/** What {@linkcode probeKafka} needs: the sink's Kafka settings. */
export interface KafkaProbeOptions {
  /** `host:port` of the bootstrap brokers. */
  readonly brokers: readonly string[];
  readonly tls: boolean;
  /** PEM CA bundle for TLS; system roots when `null`. */
  readonly ca: string | null;
  readonly sasl: KafkaSasl | null;
  /** Announce topic (default `platform.upload.announce`). */
  readonly topic?: string;
  /** Kafka client id (default `thanos-bridge`). */
  readonly clientId?: string;
  /** Timeout of each step in ms (default {@linkcode DEFAULT_PROBE_STEP_TIMEOUT_MS}). */
  readonly stepTimeoutMs?: number;
  /** Receives kafkajs's warnings and errors (already stripped of credentials); default: dropped. */
  readonly debug?: (line: string) => void;
}

/** What else {@linkcode probeKafka} should do. */
export interface KafkaProbeRequest {
  /** Produce one test message to this topic (`--produce-test TOPIC`); absent = `kafka.produce` is `skip`. */
  readonly produceTestTopic?: string | null;
}

const KAFKA_TITLES = {
  brokers: "Kafka: the brokers answer",
  topic: "Kafka: the announce topic exists",
  produce: "Kafka: a test message can be produced",
} as const;

const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;

/** The kafkajs protocol error type (`UNKNOWN_TOPIC_OR_PARTITION`…) of `e` or of what it wraps. */
function kafkaErrorType(e: unknown): string | null {
  let at: unknown = e;
  for (let i = 0; i < 5 && at !== null && typeof at === "object"; i++) {
    const type = (at as { type?: unknown }).type;
    if (typeof type === "string") return type;
    if (at instanceof Error && /does not host this topic-partition/.test(at.message)) {
      return "UNKNOWN_TOPIC_OR_PARTITION";
    }
    at = (at as { originalError?: unknown }).originalError ?? (at as { cause?: unknown }).cause;
  }
  return null;
}

/** A kafkajs error in words, with what to do. */
function kafkaProblem(e: unknown, brokers: string, secrets: readonly (string | undefined)[]) {
  if (e instanceof StepTimeout) {
    return `no answer from ${brokers} within ${e.ms} ms — check --kafka-brokers and --kafka-tls (a TLS listener does not answer a plaintext client, and vice versa)`;
  }
  // kafkajs wraps the last error of its retries.
  let inner: unknown = e;
  for (let i = 0; i < 4; i++) {
    const next = (inner as { originalError?: unknown })?.originalError;
    if (next === undefined || next === null) break;
    inner = next;
  }
  const name = inner instanceof Error ? inner.name : "";
  const type = kafkaErrorType(e);
  const text = clip(redact(errorText(inner), secrets), 300);
  if (name === "KafkaJSSASLAuthenticationError" || type === "SASL_AUTHENTICATION_FAILED") {
    return `the brokers refused the SASL login (${text}) — check --kafka-sasl-mechanism, --kafka-sasl-username and the password`;
  }
  if (type === "TOPIC_AUTHORIZATION_FAILED" || type === "CLUSTER_AUTHORIZATION_FAILED") {
    return `not allowed (${type}) — the Kafka user needs DESCRIBE and WRITE on the topic`;
  }
  if (TLS_PROBLEM.test(text)) {
    return `TLS with ${brokers} failed (${text}) — check --kafka-tls and --kafka-ca-file`;
  }
  const net = networkCode(inner) ?? networkCode(e);
  if (net !== null || name === "KafkaJSConnectionError") {
    return `cannot reach ${brokers}${
      net ? ` (${net})` : ` (${text})`
    } — check --kafka-brokers, DNS, and that this pod may connect to them`;
  }
  return `${brokers}: ${text}`;
}

async function quietly(work: () => Promise<unknown>, ms: number): Promise<void> {
  await step(undefined, ms, () => work()).catch(() => {});
}

/**
 * Checks the Kafka side of the `s3-kafka` sink with kafkajs (connect
 * timeout ≤ 3 s, one retry, each step bounded by `stepTimeoutMs`):
 *
 * - `kafka.brokers`: an admin client connects and describes the cluster
 *   (broker count and advertised addresses: they must be reachable from here
 *   too, the producer talks to them);
 * - `kafka.topic`: the announce topic is listed, with its partitions, each
 *   with a leader. Missing → `fail`: koku consumes that topic and it is
 *   normally created with the platform; the bridge could only create it by
 *   auto-creation, which is often off;
 * - `kafka.produce`: only with `request.produceTestTopic` (`--produce-test
 *   TOPIC`): one message (key `thanos-bridge-doctor`, header `service:
 *   thanos-bridge-doctor` — never `hccm`, so koku ignores it — and a small
 *   JSON value saying it is a test) is produced with `acks: -1`; the topic is
 *   not auto-created. Without it: `skip`.
 *
 * Clients are always disconnected. Never throws, except a `BridgeError`
 * `cancelled` when `signal` aborts.
 *
 * @example
 * ```ts ignore
 * import { probeKafka } from "./sink_probe.ts";
 *
 * const checks = await probeKafka(
 *   { brokers: ["127.0.0.1:9092"], tls: false, ca: null, sasl: null },
 *   { produceTestTopic: "thanos-bridge.doctor" },
 * );
 * console.log(checks.map((c) => `${c.id} ${c.status}`));
 * ```
 */
export async function probeKafka(
  options: KafkaProbeOptions,
  request: KafkaProbeRequest = {},
  signal?: AbortSignal,
): Promise<DoctorCheck[]> {
  if (signal?.aborted) throw cancelled(signal);
  const ms = options.stepTimeoutMs ?? DEFAULT_PROBE_STEP_TIMEOUT_MS;
  const topic = options.topic ?? DEFAULT_ANNOUNCE_TOPIC;
  const testTopic = request.produceTestTopic ?? null;
  const brokerList = options.brokers.join(",");
  const secrets = [options.sasl?.password];
  if (options.brokers.length === 0) {
    return [
      check(
        "kafka.brokers",
        KAFKA_TITLES.brokers,
        "fail",
        "no broker configured (--kafka-brokers)",
      ),
      check("kafka.topic", KAFKA_TITLES.topic, "skip", "no broker configured"),
      check("kafka.produce", KAFKA_TITLES.produce, "skip", "no broker configured"),
    ];
  }
  const debug = options.debug;
  const retry = { retries: 1, initialRetryTime: 200, maxRetryTime: 1_000 };
  const kafka = new Kafka({
    ...kafkaConnectionConfig({ ...options, clientId: options.clientId ?? "thanos-bridge" }),
    connectionTimeout: Math.min(3_000, ms),
    requestTimeout: ms,
    retry,
    logLevel: debug ? logLevel.WARN : logLevel.NOTHING,
    logCreator: () => (entry: LogEntry) => {
      debug?.(`kafka ${entry.label.toLowerCase()}: ${formatKafkaLogEntry(entry)}`);
    },
  });
  const checks: DoctorCheck[] = [];
  let admin: Admin | null = null;
  let producer: Producer | null = null;
  try {
    // kafka.brokers
    let brokersOk = false;
    try {
      const cluster = await step(signal, ms, async () => {
        admin = kafka.admin({ retry });
        await admin.connect();
        return await admin.describeCluster();
      });
      brokersOk = true;
      const list = cluster.brokers.map((b) => `${b.host}:${b.port}`).sort();
      checks.push(check(
        "kafka.brokers",
        KAFKA_TITLES.brokers,
        "ok",
        `${list.length} broker${
          list.length === 1 ? " answers" : "s answer"
        } via ${brokerList} (advertised: ${list.join(", ")})`,
      ));
    } catch (e) {
      if (isCancelled(e)) throw e;
      checks.push(
        check("kafka.brokers", KAFKA_TITLES.brokers, "fail", kafkaProblem(e, brokerList, secrets)),
      );
    }

    // kafka.topic
    if (!brokersOk) {
      checks.push(check("kafka.topic", KAFKA_TITLES.topic, "skip", "the brokers did not answer"));
    } else {
      checks.push(await topicCheck(admin!, topic, brokerList, ms, secrets, signal));
    }

    // kafka.produce
    if (testTopic === null) {
      checks.push(
        check(
          "kafka.produce",
          KAFKA_TITLES.produce,
          "skip",
          "not tried — add --produce-test TOPIC to produce one test message (header service: thanos-bridge-doctor, which koku ignores)",
        ),
      );
    } else if (!TOPIC_NAME.test(testTopic)) {
      checks.push(check(
        "kafka.produce",
        KAFKA_TITLES.produce,
        "fail",
        `${
          JSON.stringify(clip(testTopic, 100))
        } is not a Kafka topic name (letters, digits, ".", "_", "-")`,
      ));
    } else if (!brokersOk) {
      checks.push(
        check("kafka.produce", KAFKA_TITLES.produce, "skip", "the brokers did not answer"),
      );
    } else {
      try {
        const sent = await step(signal, ms, async () => {
          producer = kafka.producer({
            allowAutoTopicCreation: false,
            createPartitioner: Partitioners.DefaultPartitioner,
            retry,
          });
          await producer.connect();
          return await producer.send({
            topic: testTopic,
            acks: -1,
            messages: [{
              key: DOCTOR_SERVICE_HEADER,
              headers: { service: DOCTOR_SERVICE_HEADER },
              value: JSON.stringify({
                test: true,
                source: "thanos-bridge doctor",
                note: "connectivity test message; not an upload, ignore it",
                timestamp: new Date().toISOString(),
              }),
            }],
          });
        });
        const where = sent[0]
          ? ` (partition ${sent[0].partition}, offset ${sent[0].baseOffset ?? "?"})`
          : "";
        checks.push(check(
          "kafka.produce",
          KAFKA_TITLES.produce,
          "ok",
          `1 test message produced to ${testTopic}${where} with header service: ${DOCTOR_SERVICE_HEADER}`,
        ));
      } catch (e) {
        if (isCancelled(e)) throw e;
        const detail = kafkaErrorType(e) === "UNKNOWN_TOPIC_OR_PARTITION"
          ? `topic ${testTopic} does not exist on ${brokerList} — create it first (doctor does not create topics)`
          : kafkaProblem(e, brokerList, secrets);
        checks.push(check("kafka.produce", KAFKA_TITLES.produce, "fail", detail));
      }
    }
  } finally {
    const p: Producer | null = producer;
    const a: Admin | null = admin;
    if (p !== null) await quietly(() => (p as Producer).disconnect(), ms);
    if (a !== null) await quietly(() => (a as Admin).disconnect(), ms);
  }
  return checks;
}

async function topicCheck(
  admin: Admin,
  topic: string,
  brokers: string,
  ms: number,
  secrets: readonly (string | undefined)[],
  signal?: AbortSignal,
): Promise<DoctorCheck> {
  const id = "kafka.topic";
  const title = KAFKA_TITLES.topic;
  try {
    // listTopics asks for every topic's metadata, which never auto-creates one.
    const topics = await step(signal, ms, () => admin.listTopics());
    if (!topics.includes(topic)) {
      return check(
        id,
        title,
        "fail",
        `topic ${topic} does not exist on ${brokers} (or this user may not describe it) — koku consumes it and it is normally created with the platform; the bridge's producer creates it only if the brokers allow auto-creation (auto.create.topics.enable), often off: create it, or fix --kafka-topic`,
      );
    }
    const meta = await step(signal, ms, () => admin.fetchTopicMetadata({ topics: [topic] }));
    const partitions = meta.topics.find((t) => t.name === topic)?.partitions ?? [];
    const leaderless = partitions.filter((p) => p.leader < 0).map((p) => p.partitionId);
    if (leaderless.length > 0) {
      return check(
        id,
        title,
        "fail",
        `topic ${topic} has partitions without a leader (${
          leaderless.join(", ")
        }): producing would fail`,
      );
    }
    return check(
      id,
      title,
      "ok",
      `topic ${topic} exists with ${partitions.length} partition${
        partitions.length === 1 ? "" : "s"
      }`,
    );
  } catch (e) {
    if (isCancelled(e)) throw e;
    return check(id, title, "fail", kafkaProblem(e, brokers, secrets));
  }
}

// ---------------------------------------------------------------------------
// Ingress

/** What {@linkcode probeIngress} needs: the sink's URL, credentials and CA. */
export interface IngressProbeOptions {
  /** Ingress base URL, e.g. `https://console.redhat.com` (as `--ingress-url`). */
  readonly url: string;
  /** `null` = no `Authorization` header. */
  readonly auth: IngressAuth | null;
  /** PEM CA bundle to verify an https ingress (default: the system roots). */
  readonly ca?: string | null;
  /** Timeout of the request in ms (default {@linkcode DEFAULT_PROBE_STEP_TIMEOUT_MS}). */
  readonly stepTimeoutMs?: number;
}

/** A `GET` through the ingress sink's `node:http(s)` request; no redirect is followed. */
async function httpGet(
  url: string,
  headers: Record<string, string>,
  options: { signal: AbortSignal; ca: string | null },
): Promise<GetAnswer> {
  const answer = await nodeRequest("GET", url, headers, null, { ...options, maxAnswerBytes: 4096 });
  return { ...answer, location: answer.headers.get("location") };
}

type GetAnswer = PostAnswer & { readonly location: string | null };

/**
 * Checks that the ingress upload URL answers, without uploading anything:
 * one `GET <url>/api/ingress/v1/upload` with the configured `Authorization`
 * (no redirect followed, `stepTimeoutMs` bounded). The upload endpoint takes
 * only `POST`, so the answer decides:
 *
 * | answer | `ingress.reach` |
 * |---|---|
 * | 405, 2xx, 429 or another 4xx (400, 411, 415…) | `ok`: the endpoint exists and did not refuse the credentials |
 * | 401, 403 | `fail`: the credentials were refused ("token refused") |
 * | 404 | `fail`: nothing at that path — `--ingress-url` must be the base URL |
 * | 3xx | `fail`: uploads are not redirected — use the final URL |
 * | 5xx | `fail`: ingress or its gateway is failing |
 * | no answer, TLS error, timeout | `fail` |
 *
 * An `ok` proves that the gateway accepted the credentials when it checks
 * them before routing (console.redhat.com's does); only an upload proves it
 * for sure. Never throws, except a `BridgeError` `cancelled` when `signal`
 * aborts.
 *
 * @example
 * ```ts ignore
 * import { probeIngress } from "./sink_probe.ts";
 *
 * const [reach] = await probeIngress({
 *   url: "https://console.redhat.com",
 *   auth: { bearer: (await Deno.readTextFile("/var/run/ingress/token")).trim() },
 * });
 * console.log(reach.status, reach.detail);
 * ```
 */
export async function probeIngress(
  options: IngressProbeOptions,
  signal?: AbortSignal,
): Promise<DoctorCheck[]> {
  if (signal?.aborted) throw cancelled(signal);
  const id = "ingress.reach";
  const title = "Ingress: the upload URL answers";
  const ms = options.stepTimeoutMs ?? DEFAULT_PROBE_STEP_TIMEOUT_MS;
  let base: URL;
  try {
    base = new URL(options.url);
  } catch {
    return [
      check(
        id,
        title,
        "fail",
        `--ingress-url ${JSON.stringify(clip(options.url, 100))} is not a URL`,
      ),
    ];
  }
  if (base.protocol !== "https:" && base.protocol !== "http:") {
    return [check(id, title, "fail", `--ingress-url must be http(s), got ${base.protocol}`)];
  }
  if (base.username !== "" || base.password !== "") {
    return [check(id, title, "fail", "--ingress-url must not carry credentials; use basic auth")];
  }
  let auth;
  try {
    auth = ingressAuthorization(options.auth);
  } catch (e) {
    return [check(id, title, "fail", e instanceof Error ? e.message : String(e))];
  }
  const uploadUrl = `${base.origin}${base.pathname.replace(/\/+$/, "")}${INGRESS_UPLOAD_PATH}`;
  const headers: Record<string, string> = { accept: "application/json" };
  if (auth.header !== null) headers["authorization"] = auth.header;
  const secrets = [auth.secret];
  let answer: GetAnswer;
  try {
    answer = await step(
      signal,
      ms,
      (s) => httpGet(uploadUrl, headers, { signal: s, ca: options.ca ?? null }),
    );
  } catch (e) {
    if (isCancelled(e)) throw e;
    if (e instanceof StepTimeout) {
      return [check(id, title, "fail", `no answer from ${uploadUrl} within ${e.ms} ms`)];
    }
    const text = clip(redact(errorText(e), secrets), 200);
    if (TLS_PROBLEM.test(text)) {
      return [
        check(
          id,
          title,
          "fail",
          `TLS with ${base.origin} failed (${text}) — check http vs https in --ingress-url, and that the server's certificate is signed by a trusted CA`,
        ),
      ];
    }
    const net = networkCode(e);
    return [check(
      id,
      title,
      "fail",
      `cannot reach ${uploadUrl} (${
        net ?? text
      }) — check --ingress-url, DNS, and the egress proxy/network policy`,
    )];
  }
  const status = answer.status;
  const said = `${status} ${answer.statusText}`.trim();
  const body = clip(redact(answer.text, secrets), 200);
  const suffix = body === "" ? "" : `: ${body}`;
  if (status === 401 || status === 403) {
    return [check(
      id,
      title,
      "fail",
      auth.header === null
        ? `${uploadUrl} wants credentials (${said}) — ${auth.hint}`
        : `token refused by ${uploadUrl} (${said}) — ${auth.hint}${suffix}`,
    )];
  }
  if (status === 404) {
    return [check(
      id,
      title,
      "fail",
      `${base.origin} answers, but has no ${
        base.pathname.replace(/\/+$/, "")
      }${INGRESS_UPLOAD_PATH} (${said}) — --ingress-url is the base URL (e.g. https://console.redhat.com), without ${INGRESS_UPLOAD_PATH}`,
    )];
  }
  if (status >= 300 && status < 400) {
    const to = answer.location ? clip(answer.location.replace(/[?#].*$/, ""), 150) : "elsewhere";
    return [check(
      id,
      title,
      "fail",
      `${uploadUrl} redirects (${said}) to ${
        escapeControl(to, false)
      }: uploads are not redirected — use the final URL as --ingress-url`,
    )];
  }
  if (status >= 500 || status < 200) {
    return [
      check(
        id,
        title,
        "fail",
        `${uploadUrl} answers ${said}: ingress or its gateway is failing${suffix}`,
      ),
    ];
  }
  const why = status === 405
    ? "uploads are POSTs, as expected"
    : status === 429
    ? "rate-limited, but there"
    : "uploads are POSTs";
  return [check(
    id,
    title,
    "ok",
    `${uploadUrl} answers ${said} to a GET (${why}); the credentials were not refused`,
  )];
}
