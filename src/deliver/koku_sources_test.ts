import assert from "node:assert/strict";
import { BridgeError } from "../model.ts";
import {
  type FakeKoku,
  type FakeKokuOptions,
  startFakeKokuSources,
} from "../../tests/support/fake_koku_sources.ts";
import {
  type KokuCluster,
  kokuIdentity,
  kokuIdentityFor,
  KokuSourcesClient,
  registerSources,
  type RegisterSourcesOptions,
} from "./koku_sources.ts";

const C1 = "16b9a60d-0774-4102-9028-bd28d6c38ac2";
const C2 = "763da86a-5424-450f-aa35-43de12cd8238";
const C3 = "ad4e5b53-586d-4a27-a2de-4f4f0c8303f9";
const C4 = "4481283f-38da-41ed-a9f6-33e607187243";

async function withKoku(
  options: FakeKokuOptions,
  fn: (koku: FakeKoku, opts: RegisterSourcesOptions) => Promise<void>,
): Promise<void> {
  const koku = startFakeKokuSources(options);
  try {
    await fn(koku, { baseUrl: koku.url, sleep: () => Promise.resolve(), random: () => 0 });
  } finally {
    await koku.stop();
  }
}

const ids = (list: { clusterId: string }[]) => list.map((x) => x.clusterId);

Deno.test("creates each missing source exactly once, as CMMO does", async () => {
  await withKoku({}, async (koku, opts) => {
    const clusters: KokuCluster[] = [
      { clusterId: C1, orgId: "org1" },
      { clusterId: C2, name: "prod-east", orgId: "org1" },
      { clusterId: C3, name: "  ", orgId: "org1" },
      { clusterId: C1, orgId: "org1" }, // listed twice: registered once
    ];
    const report = await registerSources(clusters, opts);
    assert.deepEqual(ids(report.created), [C1, C2, C3]);
    assert.deepEqual(report.existing, []);
    assert.deepEqual(report.conflicts, []);
    assert.deepEqual(report.failed, []);
    assert.deepEqual(report.created.map((c) => c.name), [C1, "prod-east", C3]);
    assert.equal(koku.count("POST", "sources"), 3);
    assert.equal(koku.count("POST", "applications"), 3);
    assert.equal(koku.count("GET", "source_types"), 1, "source type asked once per org");
    assert.equal(koku.count("GET", "application_types"), 1);
    assert.deepEqual(
      koku.sources.map((s) => [s.orgId, s.name, s.clusterId]).sort(),
      [["org1", C1, C1], ["org1", C3, C3], ["org1", "prod-east", C2]].sort(),
    );
    const posts = koku.requests.filter((r) => r.method === "POST" && r.path === "sources");
    assert.deepEqual(posts.find((p) => (p.body as { name: string }).name === "prod-east")?.body, {
      source_type_id: "1",
      name: "prod-east",
      source_ref: C2,
    });
    for (const p of koku.requests.filter((r) => r.path === "applications")) {
      const b = p.body as { source_id: string; application_type_id: string };
      assert.equal(b.application_type_id, "0");
      assert.ok(koku.sources.some((s) => String(s.id) === b.source_id));
    }
    for (const c of report.created) {
      assert.equal(c.sourceId, String(koku.sources.find((s) => s.clusterId === c.clusterId)!.id));
    }
    // The first lookup carries all three filters, as §5.12 step 2.
    const first = koku.requests.find((r) => r.path === "sources")!;
    assert.equal(first.query.get("filter[source_type_id]"), "1");
    assert.ok(first.query.has("filter[source_ref]"));
    assert.ok(first.query.has("filter[name]"));
  });
});

Deno.test("a second pass creates nothing", async () => {
  await withKoku({}, async (koku, opts) => {
    const clusters = [{ clusterId: C1, orgId: "org1" }, {
      clusterId: C2,
      name: "b",
      orgId: "org1",
    }];
    const first = await registerSources(clusters, opts);
    assert.equal(first.created.length, 2);
    const second = await registerSources(clusters, opts);
    assert.deepEqual(second.created, []);
    assert.deepEqual(ids(second.existing), [C1, C2]);
    assert.deepEqual(second.existing.map((e) => e.sourceId), first.created.map((c) => c.sourceId));
    assert.equal(koku.count("POST", "sources"), 2);
    assert.equal(koku.count("POST", "applications"), 2);
    assert.equal(koku.sources.length, 2);
  });
});

Deno.test("existing sources are left untouched, also under another name", async () => {
  await withKoku({}, async (koku, opts) => {
    const same = koku.seed("org1", C1, C1);
    const renamed = koku.seed("org1", "named-by-hand", C2);
    const report = await registerSources([
      { clusterId: C1, orgId: "org1" },
      { clusterId: C2, name: "prod", orgId: "org1" },
      { clusterId: C3, orgId: "org1" },
    ], opts);
    assert.deepEqual(report.existing, [
      { clusterId: C1, orgId: "org1", name: C1, sourceId: String(same.id), requestedName: C1 },
      {
        clusterId: C2,
        orgId: "org1",
        name: "named-by-hand",
        sourceId: String(renamed.id),
        requestedName: "prod",
      },
    ]);
    assert.deepEqual(ids(report.created), [C3]);
    assert.equal(koku.count("POST", "sources"), 1);
    assert.equal(koku.count("POST", "applications"), 1);
    assert.equal(koku.sources.length, 3);
  });
});

Deno.test("a name taken by another cluster is a conflict naming both; others still register", async () => {
  await withKoku({}, async (koku, opts) => {
    const taken = koku.seed("org1", "prod", C4);
    const report = await registerSources([
      { clusterId: C1, name: "prod", orgId: "org1" },
      { clusterId: C2, orgId: "org1" },
    ], opts);
    assert.deepEqual(ids(report.created), [C2]);
    assert.equal(report.conflicts.length, 1);
    const c = report.conflicts[0]!;
    assert.equal(c.clusterId, C1);
    assert.equal(c.otherClusterId, C4);
    assert.equal(c.sourceId, String(taken.id));
    assert.ok(c.error instanceof BridgeError);
    assert.equal(c.error.code, "koku_sources");
    for (const part of [C1, C4, '"prod"', '"org1"']) {
      assert.ok(c.error.message.includes(part), `${c.error.message} names ${part}`);
    }
    assert.equal(koku.sources.filter((s) => s.name === "prod").length, 1);
  });
});

Deno.test("two clusters asking for one name in one pass: one source, one conflict", async () => {
  await withKoku({}, async (koku, opts) => {
    const report = await registerSources([
      { clusterId: C1, name: "twin", orgId: "org1" },
      { clusterId: C2, name: "twin", orgId: "org1" },
      { clusterId: C3, name: "twin", orgId: "org2" }, // other org: no conflict
    ], { ...opts, concurrency: 8 });
    assert.deepEqual(ids(report.created), [C1, C3]);
    assert.deepEqual(ids(report.conflicts), [C2]);
    assert.equal(report.conflicts[0]!.otherClusterId, C1);
    assert.equal(koku.sources.filter((s) => s.orgId === "org1").length, 1);
  });
});

Deno.test("koku's substring name filter: similar names are no conflict, all pages are read", async () => {
  await withKoku({}, async (koku, opts) => {
    for (let i = 0; i < 7; i++) koku.seed("org1", `prod-${i}`, `other-${i}`);
    koku.seed("org1", "PROD", "other-upper"); // other case: a different name in koku
    const report = await registerSources(
      [{ clusterId: C1, name: "prod", orgId: "org1" }],
      { ...opts, pageSize: 3 },
    );
    assert.deepEqual(ids(report.created), [C1]);
    const byName = koku.requests.filter((r) =>
      r.path === "sources" && r.method === "GET" && !r.query.has("filter[source_ref]")
    );
    assert.deepEqual(byName.map((r) => r.query.get("offset")), ["0", "3", "6"]);
    assert.ok(byName.every((r) => r.query.get("limit") === "3"));
  });
});

Deno.test("identity per org: each org's X-Rh-Identity, sources in their own org", async () => {
  await withKoku({ orgs: ["org1", "org2"] }, async (koku, opts) => {
    const report = await registerSources([
      { clusterId: C1, orgId: "org1" },
      { clusterId: C2, orgId: "org2" },
      { clusterId: C3, orgId: "org2" },
    ], opts);
    assert.deepEqual(ids(report.created), [C1, C2, C3]);
    assert.deepEqual(
      koku.sources.map((s) => [s.clusterId, s.orgId]).sort(),
      [[C1, "org1"], [C2, "org2"], [C3, "org2"]].sort(),
    );
    assert.equal(koku.count("GET", "source_types"), 2, "once per org");
    // Every request of a cluster carried that cluster's org.
    for (const r of koku.requests.filter((r) => r.method === "POST" && r.path === "sources")) {
      const ref = (r.body as { source_ref: string }).source_ref;
      assert.equal(r.orgId, ref === C1 ? "org1" : "org2");
    }
  });
  const doc = JSON.parse(atob(kokuIdentityFor("org9")));
  assert.deepEqual(doc, kokuIdentity("org9"));
  assert.equal(doc.identity.type, "User");
  assert.equal(doc.identity.user.username, "thanos-bridge-org9");
  assert.equal(doc.entitlements.cost_management.is_entitled, true);
  assert.equal("account_number" in doc.identity, false);
});

Deno.test("an org outside koku's orgs fails with 403, the others register", async () => {
  await withKoku({ orgs: ["org1"] }, async (koku, opts) => {
    const report = await registerSources([
      { clusterId: C1, orgId: "org1" },
      { clusterId: C2, orgId: "nope" },
      { clusterId: C3, orgId: "nope" },
    ], opts);
    assert.deepEqual(ids(report.created), [C1]);
    assert.deepEqual(ids(report.failed), [C2, C3]);
    assert.match(report.failed[0]!.error.message, /403 Forbidden.*"nope"|"nope".*403 Forbidden/);
    // The source-type lookup failed once for the org; its clusters share that failure.
    assert.equal(koku.requests.filter((r) => r.orgId === "nope").length, 1);
  });
});

Deno.test("500 then success: retried, the source created once", async () => {
  let failures = 0;
  await withKoku({
    intercept: (r) => {
      if (r.path === "sources" && failures < 2) {
        failures++;
        return new Response("upstream down", { status: r.method === "GET" ? 500 : 503 });
      }
      return undefined;
    },
  }, async (koku, opts) => {
    const slept: number[] = [];
    const report = await registerSources([{ clusterId: C1, orgId: "org1" }], {
      ...opts,
      sleep: (ms) => {
        slept.push(ms);
        return Promise.resolve();
      },
    });
    assert.deepEqual(ids(report.created), [C1]);
    assert.equal(slept.length, 2);
    assert.equal(koku.sources.length, 1);
  });
});

Deno.test("a POST sources whose answer is lost is not repeated blindly", async () => {
  let lost = false;
  let koku!: FakeKoku;
  await withKoku({
    intercept: (r) => {
      if (r.method === "POST" && r.path === "sources" && !lost) {
        lost = true;
        const b = r.body as { name: string; source_ref: string };
        koku.seed(r.orgId!, b.name, b.source_ref); // koku created it, then the answer was lost
        return new Response("gateway timeout", { status: 504 });
      }
      return undefined;
    },
  }, async (k, opts) => {
    koku = k;
    const report = await registerSources([{ clusterId: C1, orgId: "org1" }], opts);
    assert.deepEqual(ids(report.created), [C1]);
    assert.equal(k.count("POST", "sources"), 1);
    assert.equal(k.sources.length, 1);
    assert.equal(report.created[0]!.sourceId, String(k.sources[0]!.id));
    assert.equal(k.count("POST", "applications"), 1);
  });
});

Deno.test("retries end: failed with the last answer; 429 honours Retry-After", async () => {
  await withKoku({
    intercept: () => new Response("slow down", { status: 429, headers: { "retry-after": "7" } }),
  }, async (koku, opts) => {
    const slept: number[] = [];
    const report = await registerSources([{ clusterId: C1, orgId: "org1" }], {
      ...opts,
      maxAttempts: 3,
      sleep: (ms) => {
        slept.push(ms);
        return Promise.resolve();
      },
    });
    assert.deepEqual(ids(report.failed), [C1]);
    const e = report.failed[0]!.error;
    assert.equal(e.code, "koku_sources");
    assert.match(e.message, /failed after 3 attempts: 429 Too Many Requests: "slow down"/);
    assert.deepEqual(slept, [7000, 7000]);
    assert.equal(koku.requests.length, 3);
  });
});

Deno.test("401: a clear message, no retry, the identity never shown", async () => {
  await withKoku({}, async (koku, opts) => {
    const secret = btoa("not json at all");
    const report = await registerSources([{ clusterId: C1, orgId: "org1" }], {
      ...opts,
      identityFor: () => secret,
    });
    assert.deepEqual(ids(report.failed), [C1]);
    const e = report.failed[0]!.error;
    assert.equal(e.code, "koku_sources");
    assert.match(
      e.message,
      /koku refused GET http:\/\/127\.0\.0\.1:\d+\/api\/cost-management\/v1\/source_types\?/,
    );
    assert.match(e.message, /401 Unauthorized/);
    assert.match(e.message, /"org1"/);
    assert.ok(!e.message.includes(secret));
    assert.equal(koku.requests.length, 1);
  });
});

Deno.test("a 4xx answer is quoted, escaped and cut", async () => {
  await withKoku({
    intercept: (r) =>
      r.method === "POST" && r.path === "sources"
        ? new Response(`{"name":["bad\x1b[2J ${"x".repeat(500)}"]}`, { status: 400 })
        : undefined,
  }, async (koku, opts) => {
    const report = await registerSources([{ clusterId: C1, orgId: "org1" }], opts);
    const e = report.failed[0]!.error;
    assert.match(
      e.message,
      /^koku rejected POST http:\/\/127\.0\.0\.1:\d+\/api\/cost-management\/v1\/sources: 400 Bad Request: "/,
    );
    assert.ok(e.message.includes("\\\\x1b[2J"), e.message);
    assert.ok(!e.message.includes("\x1b"));
    assert.ok(e.message.endsWith('…"'));
    assert.ok(e.message.length < 500);
    assert.equal(koku.count("POST", "sources"), 1);
  });
});

Deno.test("application link failure names the created source", async () => {
  await withKoku({
    intercept: (r) =>
      r.path === "applications" ? Response.json({ error: "nope" }, { status: 404 }) : undefined,
  }, async (_koku, opts) => {
    const report = await registerSources([{ clusterId: C1, orgId: "org1" }], opts);
    assert.match(
      report.failed[0]!.error.message,
      /source ".*" \(id "1"\) was created, but linking it to cost management failed: .*404/,
    );
  });
});

Deno.test("abort: a pass in flight and a pass already aborted end as cancelled", async () => {
  const controller = new AbortController();
  const gate = Promise.withResolvers<void>();
  await withKoku({
    intercept: async (r) => {
      if (r.path === "sources") {
        controller.abort();
        await gate.promise;
      }
      return undefined;
    },
  }, async (koku, opts) => {
    await assert.rejects(
      registerSources(
        [{ clusterId: C1, orgId: "org1" }, { clusterId: C2, orgId: "org1" }],
        opts,
        controller.signal,
      ),
      (e: unknown) => e instanceof BridgeError && e.code === "cancelled",
    );
    gate.resolve();
    assert.equal(koku.count("POST", "sources"), 0);
    const before = koku.requests.length;
    await assert.rejects(
      registerSources([{ clusterId: C3, orgId: "org1" }], opts, AbortSignal.abort()),
      (e: unknown) => e instanceof BridgeError && e.code === "cancelled",
    );
    assert.equal(koku.requests.length, before);
  });
});

Deno.test("at most `concurrency` requests at once", async () => {
  let inFlight = 0;
  let most = 0;
  await withKoku({
    intercept: async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 2));
      inFlight--;
      return undefined;
    },
  }, async (koku, opts) => {
    const clusters = Array.from(
      { length: 20 },
      (_, i) => ({ clusterId: `cluster-${i}`, orgId: "org1" }),
    );
    const report = await registerSources(clusters, { ...opts, concurrency: 3 });
    assert.equal(report.created.length, 20);
    assert.equal(koku.count("POST", "sources"), 20);
    assert.ok(most <= 3 && most >= 2, `at most 3 at once, saw ${most}`);
  });
});

Deno.test("base URL: trailing slash optional; bad URLs and options are config errors", async () => {
  await withKoku({}, async (koku, opts) => {
    const report = await registerSources([{ clusterId: C1, orgId: "org1" }], {
      ...opts,
      baseUrl: koku.url.replace(/\/$/, ""),
    });
    assert.deepEqual(ids(report.created), [C1]);
  });
  assert.equal(
    new KokuSourcesClient({ baseUrl: "http://koku:8000/api/cost-management/v1//" }).baseUrl,
    "http://koku:8000/api/cost-management/v1/",
  );
  for (const baseUrl of ["koku", "ftp://koku/", "http://u:p@koku/", "http://koku/?x=1"]) {
    assert.throws(
      () => new KokuSourcesClient({ baseUrl }),
      (e: unknown) => e instanceof BridgeError && e.code === "config",
      baseUrl,
    );
  }
  await assert.rejects(
    registerSources([], { baseUrl: "http://koku/", concurrency: 0 }),
    (e: unknown) => e instanceof BridgeError && e.code === "config",
  );
});

Deno.test("bad cluster ids, orgs and names fail alone, without a request", async () => {
  await withKoku({}, async (koku, opts) => {
    const report = await registerSources([
      { clusterId: "../etc", orgId: "org1" },
      { clusterId: C1, orgId: "" },
      { clusterId: C2, name: "x".repeat(257), orgId: "org1" },
      { clusterId: C3, name: "a\nb", orgId: "org1" },
      { clusterId: C4, orgId: "org1" },
    ], opts);
    assert.deepEqual(ids(report.created), [C4]);
    assert.deepEqual(ids(report.failed), ["../etc", C1, C2, C3]);
    assert.ok(report.failed.every((f) => f.error.code === "config"));
    assert.equal(koku.count("POST", "sources"), 1);
  });
});

Deno.test("a redirect is not followed (it would carry the identity)", async () => {
  await withKoku({
    intercept: () =>
      new Response(null, { status: 301, headers: { location: "http://elsewhere/" } }),
  }, async (koku, opts) => {
    const report = await registerSources([{ clusterId: C1, orgId: "org1" }], opts);
    assert.match(report.failed[0]!.error.message, /redirected .* to "http:\/\/elsewhere\/"/);
    assert.equal(koku.requests.length, 1);
  });
});

Deno.test("a koku without the openshift source type fails clearly", async () => {
  await withKoku({
    intercept: (r) =>
      r.path === "source_types" ? Response.json({ meta: { count: 0 }, data: [] }) : undefined,
  }, async (_koku, opts) => {
    const report = await registerSources([{ clusterId: C1, orgId: "org1" }], opts);
    assert.match(
      report.failed[0]!.error.message,
      /no single openshift source type \(meta\.count 0\)/,
    );
  });
});
