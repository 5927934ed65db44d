import assert from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createApi } from "./api.ts";
import { RunBodySchema } from "./api_schemas.ts";
import { FakeRunService } from "./api_fake_test.ts";
import { createMetrics } from "./metrics.ts";
import { buildOpenApi, type OpenApiMethod, OPERATIONS } from "./openapi.ts";

const TOKEN = "openapi-test-token";

type Doc = {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
  components: { schemas: Record<string, Record<string, unknown>> };
};

Deno.test("openapi: the document validates as OpenAPI 3.1", async () => {
  const doc = buildOpenApi("1.0.0");
  const validator = new Validator();
  const result = await validator.validate(doc);
  assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  assert.equal(validator.version, "3.1");
});

Deno.test("openapi: the validator is a real check (it rejects a broken document)", async () => {
  const doc = structuredClone(buildOpenApi("1.0.0")) as Doc;
  (doc.paths["/runs"]!.post as Record<string, unknown>).responses = "nope";
  const result = await new Validator().validate(doc);
  assert.equal(result.valid, false);
});

Deno.test("openapi: request schemas are the validating zod schemas", () => {
  const doc = buildOpenApi("1.0.0") as unknown as Doc;
  const body = doc.components.schemas.RunRequest!;
  assert.equal(body.additionalProperties, false);
  assert.deepEqual(
    Object.keys(body.properties as object).sort(),
    Object.keys(RunBodySchema.shape).sort(),
  );
  const props = body.properties as Record<string, Record<string, unknown>>;
  assert.equal(props.from!.pattern, "^\\d{4}-\\d{2}-\\d{2}(T\\d{2})?$");
  assert.equal((props.clusters as { maxItems: number }).maxItems, 1000);
  const list = (doc.paths["/runs"]!.get as unknown as { parameters: { name: string }[] })
    .parameters.map((p) => p.name);
  assert.deepEqual(list, ["limit", "before"]);
  const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
  assert.ok(refs.length > 0);
  for (const ref of refs) {
    const id = /#\/components\/schemas\/([^"]+)"/.exec(ref)?.[1];
    assert.ok(id !== undefined && doc.components.schemas[id], `dangling ${ref}`);
  }
});

type Probe = { path: string; init?: RequestInit; before?: (s: FakeRunService) => void };

const auth = { authorization: `Bearer ${TOKEN}` };
const jsonBody = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { ...auth, "content-type": "application/json" },
  body: JSON.stringify(body),
});

/** Requests for every operation, meant to produce each status it documents. */
const PROBES: Record<string, Probe[]> = {
  "post /runs": [
    { path: "/runs", init: jsonBody({ clusters: ["cluster-c"] }) },
    { path: "/runs", init: jsonBody({ from: "nope" }) },
    { path: "/runs", init: { method: "POST" } },
    { path: "/runs", init: jsonBody({ clusters: ["cluster-a"] }) },
    { path: "/runs", init: jsonBody({ from: "x".repeat(70_000) }) },
    { path: "/runs", init: { method: "POST", headers: auth, body: "{}" } },
    {
      path: "/runs",
      init: { method: "POST", headers: auth },
      before: (s) => s.shuttingDown = true,
    },
  ],
  "get /runs": [{ path: "/runs?limit=1" }, { path: "/runs?limit=x" }],
  "get /runs/{id}": [{ path: "/runs/r-000001" }, { path: "/runs/r-404" }],
  "delete /runs/{id}": [
    { path: "/runs/r-000001", init: { method: "DELETE", headers: auth } },
    { path: "/runs/r-000001", init: { method: "DELETE" } },
    { path: "/runs/r-404", init: { method: "DELETE", headers: auth } },
  ],
  "get /clusters": [{ path: "/clusters" }],
  "get /clusters/{id}": [{ path: "/clusters/cluster-b" }, { path: "/clusters/cluster-q" }],
  "get /healthz": [{ path: "/healthz" }],
  "get /readyz": [
    { path: "/readyz" },
    {
      path: "/readyz",
      before: (s) => s.readiness = { ok: false, checks: { thanos: { ok: false, message: "x" } } },
    },
  ],
  "get /metrics": [{ path: "/metrics" }],
  "get /openapi.json": [{ path: "/openapi.json" }],
};

Deno.test("openapi: every documented operation answers, over HTTP, exactly the statuses it lists", async () => {
  const service = new FakeRunService();
  // One active run on cluster-a, so that a run for it conflicts (409).
  await service.start({ clusters: ["cluster-a"] }, "schedule");
  const app = createApi({ service, metrics: createMetrics(), apiToken: TOKEN, version: "1.0.0" });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    const served = await (await fetch(`${base}/openapi.json`)).json() as Doc;
    assert.deepEqual(served, buildOpenApi("1.0.0"));
    const documented = Object.entries(served.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m} ${path}`)
    );
    assert.deepEqual(documented.sort(), Object.keys(PROBES).sort());
    for (const [key, probes] of Object.entries(PROBES)) {
      const [method, path] = key.split(" ") as [OpenApiMethod, string];
      const op = OPERATIONS[path]![method]!;
      const seen = new Set<string>();
      for (const probe of probes) {
        probe.before?.(service);
        const res = await fetch(base + probe.path, { method: method.toUpperCase(), ...probe.init });
        const status = String(res.status);
        const text = await res.text();
        const spec = op.responses[res.status];
        assert.ok(spec, `${key}: ${status} is not documented (${text.slice(0, 300)})`);
        assert.ok(served.paths[path]![method]!.responses[status], `${key}: ${status} not served`);
        const [, schema] = spec;
        if (schema !== "text") {
          const body = JSON.parse(text);
          const parsed = schema.safeParse(body);
          assert.ok(parsed.success, `${key} ${status}: ${JSON.stringify(body).slice(0, 300)}`);
        }
        seen.add(status);
        service.shuttingDown = false;
        service.readiness = { ok: true, checks: {} };
      }
      assert.deepEqual([...seen].sort(), Object.keys(op.responses).sort(), key);
    }
  } finally {
    await server.shutdown();
  }
});
