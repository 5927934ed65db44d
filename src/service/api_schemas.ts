/**
 * The zod schemas of the HTTP API: the ones that validate requests (the
 * `POST /runs` body, the `GET /runs` query, the path parameters) and the ones
 * that describe answers. `openapi.ts` turns these same schemas into
 * `/openapi.json`, so the document cannot drift from what is enforced.
 *
 * @module
 */

import { z } from "zod";
import { isClusterId, parseDay } from "../model.ts";

/** Most clusters one `POST /runs` may name. */
export const MAX_REQUEST_CLUSTERS = 1000;

/** Largest and default page of `GET /runs`. */
export const MAX_PAGE = 200;
export const DEFAULT_PAGE = 20;

const HOUR_TEXT = /^(\d{4}-\d{2}-\d{2})(?:T(\d{2}))?$/;

/**
 * Whether `text` is `YYYY-MM-DD` (a real date) or `YYYY-MM-DDTHH` (hour 00–23).
 *
 * @example
 * ```ts
 * import { isHourText } from "./api_schemas.ts";
 * isHourText("2026-11-01T05"); // true
 * isHourText("2026-02-30"); // false
 * ```
 */
export function isHourText(text: string): boolean {
  const m = HOUR_TEXT.exec(text);
  if (!m) return false;
  try {
    parseDay(m[1]!);
  } catch {
    return false;
  }
  return m[2] === undefined || Number(m[2]) <= 23;
}

const HOUR_REASON = "must be a UTC day YYYY-MM-DD or hour YYYY-MM-DDTHH";

/** `from`/`to`: the CLI's `--from`/`--to` forms. */
export const HourTextSchema = z
  .string({ error: HOUR_REASON })
  .max(13, { error: HOUR_REASON })
  .regex(/^\d{4}-\d{2}-\d{2}(T\d{2})?$/, { error: HOUR_REASON })
  .refine(isHourText, { error: HOUR_REASON })
  .meta({ description: "UTC day `YYYY-MM-DD` or hour `YYYY-MM-DDTHH`", examples: ["2026-11-01"] });

const CLUSTER_REASON =
  "must be a cluster id (1-253 letters, digits, '.', '_', '-', starting with a letter or digit)";

/** A cluster id (the rule of `isClusterId`). */
export const ClusterIdSchema = z
  .string({ error: CLUSTER_REASON })
  .min(1, { error: CLUSTER_REASON })
  .max(253, { error: CLUSTER_REASON })
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { error: CLUSTER_REASON })
  .refine(isClusterId, { error: CLUSTER_REASON })
  .meta({ description: "Cluster id", examples: ["1b2c3d4e-cluster-a"] });

/** The body of `POST /runs`. Unknown fields are refused. */
export const RunBodySchema = z
  .strictObject({
    clusters: z
      .array(ClusterIdSchema, { error: "must be an array of cluster ids" })
      .min(1, { error: "must name at least one cluster (omit it for every configured cluster)" })
      .max(MAX_REQUEST_CLUSTERS, { error: `must name at most ${MAX_REQUEST_CLUSTERS} clusters` })
      .optional()
      .meta({ description: "Clusters to collect; absent: every configured cluster" }),
    from: HourTextSchema.optional().meta({
      description: "First UTC hour; absent: after each cluster's watermark",
    }),
    to: HourTextSchema.optional().meta({
      description: "Last UTC hour, included; absent: the newest ready hour",
    }),
    recollect: z
      .boolean({ error: "must be true or false" })
      .optional()
      .meta({ description: "Query hours again even if collected; ship complete days again" }),
    dryRun: z
      .boolean({ error: "must be true or false" })
      .optional()
      .meta({ description: "Plan, collect and build; deliver nothing" }),
  })
  .meta({ id: "RunRequest", description: "Body of POST /runs (optional; empty means {})" });

/** A run id in a path or in `before` (anything else cannot be a run: 404). */
export const RunIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/)
  .meta({ description: "Run id" });

/** Query of `GET /runs`. Unknown parameters are refused. */
export const RunListQuerySchema = z.strictObject({
  limit: z
    .string({ error: "must be an integer" })
    .regex(/^[0-9]{1,4}$/, { error: `must be an integer 1-${MAX_PAGE}` })
    .refine((s) => Number(s) >= 1 && Number(s) <= MAX_PAGE, {
      error: `must be an integer 1-${MAX_PAGE}`,
    })
    .optional()
    .meta({ description: `Page size, 1-${MAX_PAGE} (default ${DEFAULT_PAGE})` }),
  before: RunIdSchema.optional().meta({
    description: "Id of the last run of the previous page (from the `next` link)",
  }),
});

/** Path parameters. */
export const RunPathSchema = z.strictObject({ id: RunIdSchema });
export const ClusterPathSchema = z.strictObject({ id: ClusterIdSchema });

// ---- answers ----

/** `{code, message}` of a failure inside a run. */
export const ErrorInfoSchema = z.object({ code: z.string(), message: z.string() });

/** The one error shape of every error answer. */
export const ErrorBodySchema = z
  .strictObject({
    error: z.strictObject({
      code: z.string().meta({ description: "Stable machine-readable code" }),
      message: z.string(),
      field: z.string().optional().meta({ description: "The request field at fault" }),
      activeRunId: z.string().optional().meta({ description: "With run_conflict" }),
    }),
  })
  .meta({ id: "Error" });

const DaySummarySchema = z
  .looseObject({
    day: z.string(),
    collectedHours: z.array(z.number()),
    pendingHours: z.array(z.number()),
    failedHours: z.array(z.object({ hour: z.number(), code: z.string(), message: z.string() })),
    status: z.string(),
    uuid: z.string().nullable(),
    hours: z.number(),
    lastHour: z.number().nullable(),
    error: ErrorInfoSchema.nullable(),
  })
  .meta({ id: "DaySummary" });

const ClusterProgressSchema = z
  .object({
    clusterId: z.string(),
    state: z.enum(["waiting", "running", "done"]),
    from: z.string().nullable(),
    to: z.string().nullable(),
    hoursCollected: z.number(),
    hoursFailed: z.number(),
    days: z.array(DaySummarySchema),
    watermark: z.string().nullable(),
    error: ErrorInfoSchema.nullable(),
  })
  .meta({ id: "ClusterProgress" });

/** Run states (`RunState`). */
export const RunStateSchema = z.enum([
  "queued",
  "running",
  "succeeded",
  "partial",
  "failed",
  "cancelled",
  "interrupted",
]);

/** A run record, as `GET /runs/{id}` shows it. */
export const RunRecordSchema = z
  .object({
    id: z.string(),
    trigger: z.enum(["schedule", "api"]),
    state: RunStateSchema,
    request: z.object({
      clusters: z.array(z.string()).optional(),
      from: z.string().optional(),
      to: z.string().optional(),
      recollect: z.boolean().optional(),
      dryRun: z.boolean().optional(),
    }),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    clusters: z.array(ClusterProgressSchema),
    queries: z.number(),
    bytesDownloaded: z.number(),
    outbox: z
      .object({ sent: z.number(), pending: z.number(), error: ErrorInfoSchema.nullable() })
      .nullable(),
    error: ErrorInfoSchema.nullable(),
    discovery: z
      .object({
        sources: z.array(z.object({
          kind: z.enum(["static", "thanos", "acm"]),
          found: z.number(),
          error: z.string().optional(),
          code: z.string().optional(),
          warnings: z.array(z.string()).optional(),
        })),
        clusters: z.number(),
        skipped: z.array(
          z.object({ name: z.string(), reason: z.string(), source: z.string().optional() }),
        ),
        excluded: z.number(),
      })
      .optional()
      .describe("How the run's clusters were found (absent when the request named them)"),
    registration: z
      .object({
        created: z.array(
          z.object({ clusterId: z.string(), name: z.string(), sourceId: z.string() }),
        ),
        confirmed: z.number(),
        known: z.number(),
        failed: z.array(
          z.object({ clusterId: z.string(), code: z.string(), message: z.string() }),
        ),
      })
      .optional()
      .describe("koku source registration (absent when --register-sources is off)"),
    batching: z
      .object({
        clusterBatch: z.number(),
        batches: z.number(),
        batched: z.number(),
        skippedQueries: z.number(),
        fallbacks: z.array(z.object({
          day: z.string(),
          hours: z.string(),
          clusters: z.array(z.string()),
          code: z.string(),
          message: z.string(),
        })),
      })
      .optional()
      .describe(
        "How clusters shared queries (--cluster-batch), queries skipped as empty, and batches " +
          "that fell back to per-cluster queries (absent before the run collected)",
      ),
    local: z
      .object({
        semantics: z.enum(["prometheus2", "prometheus3"]),
        semanticsFrom: z.string(),
        rawRead: z.string().describe(
          "How raw samples were fetched: remote read, or instant queries (and why)",
        ),
        checks: z.number(),
        mismatches: z.array(z.object({
          day: z.string(),
          hours: z.string(),
          query: z.string(),
          hour: z.number(),
          clusters: z.array(z.string()),
          detail: z.string(),
        })),
        serverQueries: z.array(z.object({ query: z.string(), reason: z.string() })),
      })
      .optional()
      .describe(
        "--reduce local: the engine semantics and where they came from, the self-checks, the " +
          "ones whose Thanos answer differed (those hours were collected in server mode), and " +
          "queries evaluated on the server instead",
      ),
  })
  .meta({ id: "RunRecord" });

/** 202 answer of `POST /runs`. */
export const RunAcceptedSchema = z
  .object({
    id: z.string(),
    state: RunStateSchema,
    links: z.object({ self: z.string() }),
  })
  .meta({ id: "RunAccepted" });

/** Answer of `GET /runs`. */
export const RunListSchema = z
  .object({
    runs: z.array(RunRecordSchema),
    links: z.object({ self: z.string(), next: z.string().nullable() }),
  })
  .meta({ id: "RunList" });

/** A cluster's status. */
export const ClusterStatusSchema = z
  .object({
    clusterId: z.string(),
    orgId: z.string(),
    watermark: z.string().nullable(),
    hoursBehind: z.number().nullable(),
    lastPayload: z
      .object({
        uuid: z.string(),
        day: z.string(),
        lastHour: z.number(),
        deliveredAt: z.string(),
        sink: z.enum(["dir", "s3-kafka", "ingress"]),
        result: z.string(),
      })
      .nullable(),
  })
  .meta({ id: "ClusterStatus" });

/** Answer of `GET /clusters`. */
export const ClusterListSchema = z
  .object({ clusters: z.array(ClusterStatusSchema) })
  .meta({ id: "ClusterList" });

/** Answer of `GET /healthz`. */
export const HealthSchema = z.object({ status: z.literal("ok") }).meta({ id: "Health" });

/** Answer of `GET /readyz` (200 when `ok`, else 503). */
export const ReadinessSchema = z
  .object({
    ok: z.boolean(),
    checks: z.record(z.string(), z.object({ ok: z.boolean(), message: z.string().optional() })),
  })
  .meta({ id: "Readiness" });
