/**
 * `s3-kafka` sink (BRIDGE §3, contract §5.1–5.3): uploads each tarball to S3
 * under `<prefix>/<cluster_id>/<day>/<file>`, then announces it on Kafka the
 * way the platform's ingress does, so koku downloads it from a presigned URL.
 *
 * Order of work, per payload: every part is uploaded (streamed from the
 * spool file with `@aws-sdk/lib-storage`, multipart above the part size, the
 * SHA-256 stored as object metadata `sha256`); only then are the parts
 * announced, one message per part. An upload that fails leaves no multipart
 * upload behind and announces nothing (`sink_s3`). An announcement that fails
 * goes to the {@linkcode Outbox} and the delivery still succeeds (`queued`):
 * the objects are in S3, and `flush()` (called at the start of every run)
 * sends the outbox later, with fresh URLs when they are about to expire.
 *
 * @module
 */

import { createReadStream } from "node:fs";
import {
  AbortMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { BridgeError, escapeControl, isClusterId, isDay, type SinkKind } from "../model.ts";
import { identityFor, validateIdentityText } from "./identity.ts";
import {
  KafkaAnnouncer,
  type KafkaLog,
  type KafkaRecord,
  type KafkaSettings,
} from "./kafka_announcer.ts";
import {
  type AnnouncementValue,
  flushOutbox,
  Outbox,
  type OutboxMessage,
  type Presigned,
} from "./outbox.ts";
import type {
  DeliveredPart,
  DeliveryRecord,
  DeliveryResult,
  FlushResult,
  PayloadSink,
  SinkPayload,
} from "./sink.ts";

/** Default topic koku listens on. */
export const DEFAULT_ANNOUNCE_TOPIC = "platform.upload.announce";
/** Default lifetime of a presigned URL: 24 h. */
export const DEFAULT_PRESIGN_EXPIRY_SECONDS = 86_400;
/** SigV4 presigned URLs cannot live longer than 7 days. */
export const MAX_PRESIGN_EXPIRY_SECONDS = 604_800;
/** Default multipart part size (lib-storage's minimum is 5 MiB). */
export const DEFAULT_PART_SIZE_BYTES = 8 * 1024 * 1024;

/** S3 settings of the sink. */
export interface S3Settings {
  /** S3 endpoint URL; `null` for AWS (from the region). */
  readonly endpoint: string | null;
  /** Host koku's pods use to download (presigned URLs are signed for it); `null` = `endpoint`. */
  readonly publicEndpoint: string | null;
  readonly region: string;
  readonly bucket: string;
  /** Key prefix, without leading or trailing `/` (they are trimmed); may be `""`. */
  readonly prefix: string;
  /** Path-style addressing (MinIO, SeaweedFS, Ceph…). */
  readonly pathStyle: boolean;
  /** Static credentials; absent = the AWS SDK's default chain (environment, shared file…). */
  readonly credentials?: {
    readonly accessKeyId: string;
    readonly secretAccessKey: string;
    readonly sessionToken?: string;
  };
  /** Multipart part size in bytes (default 8 MiB, at least 5 MiB). */
  readonly partSizeBytes?: number;
  /** Attempts per S3 request, the SDK's retry (default 3). */
  readonly maxAttempts?: number;
}

/** Kafka settings of the sink: {@linkcode KafkaSettings} with defaults for topic and client id. */
export type S3KafkaKafkaSettings = Omit<KafkaSettings, "topic" | "clientId"> & {
  /** Default {@linkcode DEFAULT_ANNOUNCE_TOPIC}. */
  readonly topic?: string;
  /** Default `thanos-bridge`. */
  readonly clientId?: string;
};

/** Options of {@linkcode S3KafkaSink}. */
export interface S3KafkaSinkOptions {
  readonly s3: S3Settings;
  /** Lifetime of presigned URLs (default 24 h, at most 7 days). */
  readonly presignExpirySeconds?: number;
  readonly kafka: S3KafkaKafkaSettings;
  /** Configured identity JSON text (`--identity-file`), sent as is; `null` = per-cluster default. */
  readonly identity: string | null;
  /** Folder of the announcement outbox. */
  readonly outboxDir: string;
  /** Clock (timestamps, presigning, outbox names). */
  readonly now?: () => Date;
  /** Where kafkajs's warnings go (default: stderr). */
  readonly kafkaLog?: KafkaLog;
}

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;

function causeOf(e: unknown): string {
  if (e instanceof Error) {
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const text = e.message && e.message !== e.name ? `${e.name}: ${e.message}` : e.name;
    return escapeControl(status ? `${text} (HTTP ${status})` : text, false);
  }
  return escapeControl(String(e), false);
}

function isAbort(e: unknown, signal?: AbortSignal): boolean {
  return signal?.aborted === true ||
    (e instanceof Error && e.name === "AbortError");
}

function isNotFound(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return e.name === "NotFound" || e.name === "NoSuchKey" || status === 404;
}

/** `s3://bucket/key` → `{bucket, key}`, or null. */
function parseS3Uri(uri: string): { bucket: string; key: string } | null {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  return m ? { bucket: m[1]!, key: m[2]! } : null;
}

/**
 * The object key of one tarball: `<prefix>/<cluster_id>/<day>/<fileName>`,
 * without a leading slash when the prefix is empty.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { objectKey } from "./s3_kafka_sink.ts";
 *
 * assert.equal(objectKey("/cost/", "c1", "2026-11-01", "u.tar.gz"), "cost/c1/2026-11-01/u.tar.gz");
 * assert.equal(objectKey("", "c1", "2026-11-01", "u.tar.gz"), "c1/2026-11-01/u.tar.gz");
 * ```
 */
export function objectKey(
  prefix: string,
  clusterId: string,
  day: string,
  fileName: string,
): string {
  const p = prefix.replace(/^\/+|\/+$/g, "");
  return `${p === "" ? "" : p + "/"}${clusterId}/${day}/${fileName}`;
}

/**
 * The S3 client the sink uses, from its settings: path-style as configured,
 * checksums only when an operation requires them (the SDK's default CRC32
 * changed object bytes on non-AWS servers), `maxAttempts` default 3. With
 * `forPresigning`, the client is bound to the public endpoint (falling back
 * to the endpoint), the host koku's pods download from.
 *
 * @example
 * ```ts
 * import { createS3Client } from "./s3_kafka_sink.ts";
 *
 * const client = createS3Client({
 *   endpoint: "http://127.0.0.1:8333", publicEndpoint: null, region: "us-east-1",
 *   bucket: "koku", prefix: "", pathStyle: true,
 * });
 * client.destroy();
 * ```
 */
export function createS3Client(
  s3: S3Settings,
  options: { readonly forPresigning?: boolean } = {},
): S3Client {
  const endpoint = options.forPresigning ? s3.publicEndpoint ?? s3.endpoint : s3.endpoint;
  const config: S3ClientConfig = {
    region: s3.region,
    forcePathStyle: s3.pathStyle,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: s3.maxAttempts ?? 3,
    ...(s3.credentials ? { credentials: { ...s3.credentials } } : {}),
    ...(endpoint ? { endpoint } : {}),
  };
  return new S3Client(config);
}

/**
 * Uploads payloads to S3 and announces them on Kafka for koku.
 *
 * @example
 * ```ts ignore
 * import { S3KafkaSink } from "./s3_kafka_sink.ts";
 *
 * const sink = new S3KafkaSink({
 *   s3: { endpoint: "http://127.0.0.1:8333", publicEndpoint: null, region: "us-east-1",
 *     bucket: "koku", prefix: "", pathStyle: true,
 *     credentials: { accessKeyId: "key", secretAccessKey: "secret" } },
 *   kafka: { brokers: ["127.0.0.1:9092"], tls: false, ca: null, sasl: null },
 *   identity: null,
 *   outboxDir: "/var/lib/thanos-bridge/outbox",
 * });
 * try {
 *   await sink.flush();
 *   // const { record, queued } = await sink.deliver(payload);
 * } finally {
 *   await sink.close();
 * }
 * ```
 */
export class S3KafkaSink implements PayloadSink {
  /** Always `s3-kafka`. */
  readonly kind: SinkKind = "s3-kafka";
  readonly #s3: S3Client;
  readonly #presigner: S3Client;
  readonly #announcer: KafkaAnnouncer;
  readonly #outbox: Outbox;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #endpointName: string;
  readonly #topic: string;
  readonly #expirySeconds: number;
  readonly #partSize: number;
  readonly #identity: string | null;
  readonly #now: () => Date;

  /** Checks the options (a `BridgeError` `config` names the bad one); connects lazily. */
  constructor(options: S3KafkaSinkOptions) {
    const { s3, kafka } = options;
    if (typeof s3.bucket !== "string" || s3.bucket === "") {
      throw new BridgeError("config", "s3 bucket must not be empty");
    }
    if (typeof s3.region !== "string" || s3.region === "") {
      throw new BridgeError("config", "s3 region must not be empty");
    }
    for (const [name, url] of [["endpoint", s3.endpoint], ["public endpoint", s3.publicEndpoint]]) {
      if (url !== null && !/^https?:\/\/[^/?#]+/.test(url ?? "")) {
        throw new BridgeError(
          "config",
          `s3 ${name} must be an http(s) URL, got ${JSON.stringify(url)}`,
        );
      }
    }
    const expiry = options.presignExpirySeconds ?? DEFAULT_PRESIGN_EXPIRY_SECONDS;
    if (!Number.isInteger(expiry) || expiry < 1 || expiry > MAX_PRESIGN_EXPIRY_SECONDS) {
      throw new BridgeError(
        "config",
        `presign expiry must be 1-${MAX_PRESIGN_EXPIRY_SECONDS} seconds, got ${expiry}`,
      );
    }
    const partSize = s3.partSizeBytes ?? DEFAULT_PART_SIZE_BYTES;
    if (!Number.isInteger(partSize) || partSize < 5 * 1024 * 1024) {
      throw new BridgeError("config", `s3 part size must be at least 5 MiB, got ${partSize}`);
    }
    this.#identity = options.identity === null ? null : validateIdentityText(options.identity);
    this.#s3 = createS3Client(s3);
    this.#presigner = createS3Client(s3, { forPresigning: true });
    this.#bucket = s3.bucket;
    this.#prefix = s3.prefix;
    this.#endpointName = s3.endpoint ?? `AWS S3 (${s3.region})`;
    this.#topic = kafka.topic ?? DEFAULT_ANNOUNCE_TOPIC;
    this.#expirySeconds = expiry;
    this.#partSize = partSize;
    this.#now = options.now ?? (() => new Date());
    this.#outbox = new Outbox(options.outboxDir, this.#now);
    this.#announcer = new KafkaAnnouncer(
      { ...kafka, topic: this.#topic, clientId: kafka.clientId ?? "thanos-bridge" },
      options.kafkaLog,
    );
  }

  /** The outbox (for status pages and tests). */
  get outbox(): Outbox {
    return this.#outbox;
  }

  /**
   * True only if every part of `record` is in S3 with the recorded size (and
   * the recorded SHA-256 in its `sha256` metadata, when the object has it).
   * A missing object is `false`; any other S3 error throws `sink_s3`.
   */
  async has(record: DeliveryRecord, signal?: AbortSignal): Promise<boolean> {
    if (record.sink !== this.kind || record.parts.length === 0) return false;
    for (const part of record.parts) {
      const where = parseS3Uri(part.ref.location);
      if (part.ref.sink !== this.kind || where === null) return false;
      let head;
      try {
        head = await this.#s3.send(
          new HeadObjectCommand({ Bucket: where.bucket, Key: where.key }),
          { abortSignal: signal },
        );
      } catch (e) {
        if (isAbort(e, signal)) throw new BridgeError("cancelled", "cancelled", { cause: e });
        if (isNotFound(e)) return false;
        throw new BridgeError(
          "sink_s3",
          `cannot check ${part.ref.location} at ${this.#endpointName}: ${causeOf(e)}`,
          { cause: e },
        );
      }
      if (head.ContentLength !== part.bytes) return false;
      const sha = head.Metadata?.sha256;
      if (sha !== undefined && sha !== part.sha256) return false;
    }
    return true;
  }

  /**
   * Uploads every part, then announces them (one message per part). Throws
   * `sink_s3` (nothing announced), `config` (no org id: koku would refuse the
   * announcement), `cancelled`, or `sink_kafka` when an announcement can
   * neither be sent nor queued.
   */
  async deliver(payload: SinkPayload, signal?: AbortSignal): Promise<DeliveryResult> {
    this.#check(payload);
    const delivered: DeliveredPart[] = [];
    const keys: string[] = [];
    for (const part of payload.parts) {
      const key = objectKey(this.#prefix, payload.clusterId, payload.day, part.fileName);
      await this.#upload(part.path, key, part.sha256, signal);
      keys.push(key);
      delivered.push({
        fileName: part.fileName,
        bytes: part.bytes,
        sha256: part.sha256,
        ref: { sink: this.kind, location: `s3://${this.#bucket}/${key}` },
      });
    }
    const b64Identity = identityFor(this.#identity, payload.clusterId, payload.orgId);
    const messages: OutboxMessage[] = [];
    for (const key of keys) {
      const presigned = await this.#presign(this.#bucket, key);
      const value: AnnouncementValue = {
        request_id: payload.uuid,
        b64_identity: b64Identity,
        org_id: payload.orgId,
        url: presigned.url,
        timestamp: this.#now().toISOString(),
      };
      messages.push({
        topic: this.#topic,
        key: payload.clusterId,
        headers: { service: "hccm" },
        value,
        s3: { bucket: this.#bucket, key },
        urlExpiresAt: presigned.expiresAt.toISOString(),
      });
    }
    let queued = 0;
    try {
      await this.#announcer.send(messages.map(toRecord), signal);
    } catch (e) {
      if (e instanceof BridgeError && e.code === "cancelled") throw e;
      // The objects are in S3: keep the announcements for the next run.
      await this.#outbox.put(messages);
      queued = messages.length;
    }
    const record: DeliveryRecord = {
      sink: this.kind,
      clusterId: payload.clusterId,
      day: payload.day,
      uuid: payload.uuid,
      lastHour: payload.lastHour,
      parts: delivered,
      deliveredAt: this.#now().toISOString(),
    };
    return { record, queued };
  }

  /** Sends the outbox, oldest first (see {@linkcode flushOutbox}). */
  flush(signal?: AbortSignal): Promise<FlushResult> {
    return flushOutbox(this.#outbox, {
      send: (m, s) => this.#announcer.send([toRecord(m)], s),
      presign: (bucket, key) => this.#presign(bucket, key),
      now: this.#now,
      signal,
    });
  }

  /** Disconnects from Kafka and S3. */
  async close(): Promise<void> {
    await this.#announcer.close();
    this.#s3.destroy();
    this.#presigner.destroy();
  }

  #check(payload: SinkPayload): void {
    if (!isClusterId(payload.clusterId)) {
      throw new BridgeError("payload", `invalid cluster id ${JSON.stringify(payload.clusterId)}`);
    }
    if (!isDay(payload.day)) {
      throw new BridgeError("payload", `invalid day ${JSON.stringify(payload.day)}`);
    }
    if (typeof payload.orgId !== "string" || payload.orgId.trim() === "") {
      throw new BridgeError(
        "config",
        `cluster ${payload.clusterId} has no org id: koku drops an announcement without org_id (set --org-id)`,
      );
    }
    if (payload.parts.length === 0) {
      throw new BridgeError("payload", `payload ${payload.uuid} has no parts`);
    }
    for (const part of payload.parts) {
      if (!FILE_NAME.test(part.fileName)) {
        throw new BridgeError("payload", `invalid tarball name ${JSON.stringify(part.fileName)}`);
      }
    }
  }

  async #presign(bucket: string, key: string): Promise<Presigned> {
    const signingDate = this.#now();
    try {
      const url = await getSignedUrl(
        this.#presigner,
        new GetObjectCommand({ Bucket: bucket, Key: key }),
        {
          expiresIn: this.#expirySeconds,
          signingDate,
        },
      );
      return { url, expiresAt: new Date(signingDate.getTime() + this.#expirySeconds * 1000) };
    } catch (e) {
      throw new BridgeError("sink_s3", `cannot presign s3://${bucket}/${key}: ${causeOf(e)}`, {
        cause: e,
      });
    }
  }

  async #upload(path: string, key: string, sha256: string, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw new BridgeError("cancelled", "cancelled", { cause: signal.reason });
    const where = `s3://${this.#bucket}/${key}`;
    const body = createReadStream(path);
    const opened = new Promise<void>((resolve, reject) => {
      body.once("open", () => resolve());
      body.once("error", reject);
    });
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      try {
        await opened;
      } catch (e) {
        throw new BridgeError("sink_s3", `cannot read ${path} for ${where}: ${causeOf(e)}`, {
          cause: e,
        });
      }
      const upload = new Upload({
        client: this.#s3,
        params: {
          Bucket: this.#bucket,
          Key: key,
          Body: body,
          ContentType: "application/gzip",
          Metadata: { sha256 },
        },
        partSize: this.#partSize,
        queueSize: 2,
        leavePartsOnError: false,
        abortController: controller,
      });
      try {
        await upload.done();
      } catch (e) {
        controller.abort();
        await this.#abortMultipart(key);
        if (isAbort(e, signal) && signal?.aborted) {
          throw new BridgeError("cancelled", "cancelled", { cause: e });
        }
        throw new BridgeError(
          "sink_s3",
          `cannot upload ${path} to ${where} at ${this.#endpointName}: ${causeOf(e)}`,
          { cause: e },
        );
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      body.destroy();
    }
  }

  /**
   * Aborts every unfinished multipart upload of `key`: lib-storage aborts its
   * own upload only after `done()` has already rejected, so this makes sure
   * none is left when `deliver` throws. Best effort (S3 may be down).
   */
  async #abortMultipart(key: string): Promise<void> {
    try {
      const list = await this.#s3.send(
        new ListMultipartUploadsCommand({ Bucket: this.#bucket, Prefix: key }),
      );
      for (const u of list.Uploads ?? []) {
        if (u.Key !== key || u.UploadId === undefined) continue;
        await this.#s3.send(
          new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: key, UploadId: u.UploadId }),
        ).catch(() => {});
      }
    } catch {
      // S3 unreachable: nothing more can be done now.
    }
  }
}

function toRecord(m: OutboxMessage): KafkaRecord {
  return { topic: m.topic, key: m.key, headers: m.headers, value: JSON.stringify(m.value) };
}
