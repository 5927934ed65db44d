/**
 * `/openapi.json`: an OpenAPI 3.1 document generated from the zod schemas of
 * `api_schemas.ts`, the same ones that validate the requests, with
 * `z.toJSONSchema` (JSON Schema 2020-12, which OpenAPI 3.1 uses).
 *
 * @module
 */

import { z } from "zod";
import {
  ClusterListSchema,
  ClusterPathSchema,
  ClusterStatusSchema,
  ErrorBodySchema,
  HealthSchema,
  ReadinessSchema,
  RunAcceptedSchema,
  RunBodySchema,
  RunListQuerySchema,
  RunListSchema,
  RunPathSchema,
  RunRecordSchema,
} from "./api_schemas.ts";

type Json = Record<string, unknown>;

/** HTTP methods of the document, lower case as OpenAPI writes them. */
export type OpenApiMethod = "get" | "post" | "delete";

/** One operation of the API, as the generator reads it. */
export interface ApiOperation {
  readonly summary: string;
  readonly mutating?: boolean;
  readonly query?: z.ZodObject;
  readonly path?: z.ZodObject;
  readonly body?: z.ZodType;
  /** Status → [description, schema or text content type]. */
  readonly responses: Record<number, readonly [string, z.ZodType | "text"]>;
}

const E = ErrorBodySchema;

/**
 * Every route with its statuses. api.ts answers exactly these (a test checks
 * it against the running app): 405 for a wrong method on a known path and
 * 413 for too large a body apply to every route.
 */
export const OPERATIONS: Readonly<Record<string, Partial<Record<OpenApiMethod, ApiOperation>>>> = {
  "/runs": {
    post: {
      summary: "Start a run (202), like a scheduled one unless the body narrows it",
      mutating: true,
      body: RunBodySchema,
      responses: {
        202: ["Accepted; Location names the run", RunAcceptedSchema],
        400: ["Bad body or request (field names the culprit)", E],
        401: ["Missing or wrong bearer token", E],
        409: ["A cluster is in an active run (activeRunId)", E],
        413: ["Body larger than the limit", E],
        415: ["A body that is not application/json", E],
        503: ["Shutting down", E],
      },
    },
    get: {
      summary: "Runs, newest first, paginated (links.next)",
      query: RunListQuerySchema,
      responses: { 200: ["A page of runs", RunListSchema], 400: ["Bad query parameter", E] },
    },
  },
  "/runs/{id}": {
    get: {
      summary: "One run: state, per-cluster and per-day progress, figures, errors",
      path: RunPathSchema,
      responses: { 200: ["The run", RunRecordSchema], 404: ["No such run", E] },
    },
    delete: {
      summary: "Cancel a run (no-op for a finished one)",
      mutating: true,
      path: RunPathSchema,
      responses: {
        200: ["The run after cancellation", RunRecordSchema],
        401: ["Missing or wrong bearer token", E],
        404: ["No such run", E],
      },
    },
  },
  "/clusters": {
    get: {
      summary: "Every configured cluster (and any in the state), sorted by id",
      responses: { 200: ["Clusters", ClusterListSchema] },
    },
  },
  "/clusters/{id}": {
    get: {
      summary: "One cluster: org, watermark, hours behind, last payload",
      path: ClusterPathSchema,
      responses: { 200: ["The cluster", ClusterStatusSchema], 404: ["No such cluster", E] },
    },
  },
  "/healthz": {
    get: { summary: "Process alive", responses: { 200: ["Alive", HealthSchema] } },
  },
  "/readyz": {
    get: {
      summary: "Settings valid, state writable, Thanos answering (2 s)",
      responses: { 200: ["Ready", ReadinessSchema], 503: ["Not ready", ReadinessSchema] },
    },
  },
  "/metrics": {
    get: {
      summary: "Self-metrics, Prometheus text format",
      responses: { 200: ["Metrics", "text"] },
    },
  },
  "/openapi.json": {
    get: { summary: "This document", responses: { 200: ["OpenAPI 3.1 document", "text"] } },
  },
};

/** Converts one schema; named sub-schemas (meta `id`) go to `components`. */
function convert(schema: z.ZodType, components: Json): Json {
  const raw = z.toJSONSchema(schema, {
    io: "input",
    target: "draft-2020-12",
    unrepresentable: "any",
  });
  // Named schemas are referenced as #/$defs/<id>; OpenAPI keeps them in components.
  const out = JSON.parse(
    JSON.stringify(raw).replaceAll('"#/$defs/', '"#/components/schemas/'),
  ) as Json;
  const defs = (out.$defs ?? {}) as Json;
  for (const [id, def] of Object.entries(defs)) components[id] = def;
  delete out.$defs;
  delete out.$schema;
  return out;
}

function parameters(where: "query" | "path", schema: z.ZodObject, components: Json): Json[] {
  const json = convert(schema, components);
  const props = (json.properties ?? {}) as Record<string, Json>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(props).map(([name, s]) => {
    const { description, ...rest } = s;
    return {
      name,
      in: where,
      required: where === "path" || required.has(name),
      ...(typeof description === "string" ? { description } : {}),
      schema: rest,
    };
  });
}

/**
 * Builds the OpenAPI 3.1 document of the API.
 *
 * @example
 * ```ts
 * import { buildOpenApi } from "./openapi.ts";
 * const doc = buildOpenApi("0.1.0");
 * doc.openapi; // "3.1.0"
 * ```
 */
export function buildOpenApi(version: string): Json {
  const components: Json = {};
  const paths: Json = {};
  for (const [path, ops] of Object.entries(OPERATIONS)) {
    const item: Json = {};
    for (const [method, op] of Object.entries(ops) as [OpenApiMethod, ApiOperation][]) {
      const params = [
        ...(op.path ? parameters("path", op.path, components) : []),
        ...(op.query ? parameters("query", op.query, components) : []),
      ];
      const responses: Json = {};
      for (const [status, [description, schema]] of Object.entries(op.responses)) {
        const content = schema === "text"
          ? path === "/metrics"
            ? { "text/plain": { schema: { type: "string" } } }
            : { "application/json": { schema: { type: "object" } } }
          : { "application/json": { schema: convert(schema, components) } };
        const headers = status === "202"
          ? { Location: { description: "/runs/{id}", schema: { type: "string" } } }
          : status === "401"
          ? { "WWW-Authenticate": { description: "Bearer", schema: { type: "string" } } }
          : undefined;
        responses[status] = { description, content, ...(headers ? { headers } : {}) };
      }
      item[method] = {
        operationId: `${method}${
          path.replace(/\{id\}/g, "ById").replace(/[^A-Za-z]+(.)?/g, (_, c?: string) =>
            c ? c.toUpperCase() : "")
        }`,
        summary: op.summary,
        ...(params.length > 0 ? { parameters: params } : {}),
        ...(op.body
          ? {
            requestBody: {
              required: false,
              description: "Optional; no body or an empty one means {}",
              content: { "application/json": { schema: convert(op.body, components) } },
            },
          }
          : {}),
        ...(op.mutating ? { security: [{ bearer: [] }] } : {}),
        responses,
      };
    }
    paths[path] = item;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "thanos-bridge",
      version,
      description: "The sidecar's API. Read routes are open; POST /runs and DELETE /runs/{id} " +
        "need `Authorization: Bearer <token>` when an API token is configured. Every error " +
        "answer is `{error: {code, message, field?, activeRunId?}}`; a wrong method on a known " +
        "path is 405, a body above the limit 413.",
    },
    paths,
    components: {
      schemas: components,
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    },
  };
}
