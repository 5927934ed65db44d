/**
 * {@linkcode SourceRegistry} against the fake koku sources API: what a pass
 * creates, what it remembers in `<state>/koku-sources.json`, when it asks
 * koku again, and which clusters it blocks.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { BridgeError } from "../model.ts";
import { type FakeKoku, startFakeKokuSources } from "../../tests/support/fake_koku_sources.ts";
import type { KokuCluster } from "../deliver/koku_sources.ts";
import { RECHECK_AFTER_MS, SourceRegistry } from "./source_registry.ts";

const C1 = "16b9a60d-0774-4102-9028-bd28d6c38ac2";
const C2 = "763da86a-5424-450f-aa35-43de12cd8238";
const C3 = "ad4e5b53-586d-4a27-a2de-4f4f0c8303f9";
const OTHER = "4481283f-38da-41ed-a9f6-33e607187243";
const ORG = "1234567";
const HOUR = 3_600_000;
const T0 = new Date("2026-11-02T12:00:00Z");
const at = (hours: number) => new Date(T0.getTime() + hours * HOUR);

const clusters = (...ids: string[]): KokuCluster[] =>
  ids.map((clusterId) => ({ clusterId, orgId: ORG }));

/** A fake koku, a temp state folder and a registry on both; everything is cleaned up. */
async function withRegistry(
  fn: (koku: FakeKoku, registry: SourceRegistry, stateDir: string) => Promise<void>,
): Promise<void> {
  const koku = startFakeKokuSources();
  const stateDir = await Deno.makeTempDir({ prefix: "source_registry_test_" });
  try {
    const registry = new SourceRegistry(stateDir, {
      baseUrl: koku.url,
      sleep: () => Promise.resolve(),
      random: () => 0,
    });
    await fn(koku, registry, stateDir);
  } finally {
    await koku.stop();
    await Deno.remove(stateDir, { recursive: true });
  }
}

interface StateFile {
  version: number;
  clusters: Record<
    string,
    { orgId: string; sourceId: string; name: string; confirmedAt: string }
  >;
}

async function readState(stateDir: string): Promise<StateFile> {
  return JSON.parse(await Deno.readTextFile(join(stateDir, "koku-sources.json")));
}

Deno.test("SourceRegistry: the first pass creates each missing source once and remembers it", async () => {
  await withRegistry(async (koku, registry, stateDir) => {
    const { outcome, blocked } = await registry.ensure(clusters(C1, C2, C3), T0);

    assert.deepEqual(outcome.created.map((c) => c.clusterId), [C1, C2, C3]);
    assert.equal(outcome.confirmed, 0);
    assert.equal(outcome.known, 0);
    assert.deepEqual(outcome.failed, []);
    assert.equal(blocked.size, 0);

    assert.equal(koku.count("POST", "sources"), 3);
    assert.equal(koku.count("POST", "applications"), 3);
    assert.deepEqual(
      koku.sources.map((s) => [s.clusterId, s.name, s.orgId]).sort(),
      [[C1, C1, ORG], [C2, C2, ORG], [C3, C3, ORG]].sort(),
    );
    // The outcome names koku's ids.
    for (const c of outcome.created) {
      const s = koku.sources.find((x) => x.clusterId === c.clusterId)!;
      assert.equal(c.sourceId, String(s.id));
      assert.equal(c.name, c.clusterId);
    }

    const state = await readState(stateDir);
    assert.equal(state.version, 1);
    assert.deepEqual(Object.keys(state.clusters).sort(), [C1, C2, C3].sort());
    for (const id of [C1, C2, C3]) {
      const entry = state.clusters[id]!;
      assert.equal(entry.orgId, ORG);
      assert.equal(entry.name, id);
      assert.equal(entry.sourceId, String(koku.sources.find((s) => s.clusterId === id)!.id));
      assert.equal(entry.confirmedAt, T0.toISOString());
    }
  });
});

Deno.test("SourceRegistry: a second pass within a day sends no request and reports the clusters as known", async () => {
  await withRegistry(async (koku, registry, stateDir) => {
    await registry.ensure(clusters(C1, C2, C3), T0);
    const before = koku.requests.length;
    const stateBefore = await Deno.readTextFile(join(stateDir, "koku-sources.json"));

    const { outcome, blocked } = await registry.ensure(clusters(C1, C2, C3), at(1));

    assert.equal(koku.requests.length, before, "no request to koku at all");
    assert.deepEqual(outcome, { created: [], confirmed: 0, known: 3, failed: [] });
    assert.equal(blocked.size, 0);
    assert.equal(koku.sources.length, 3);
    // Nothing to remember: the file is left as it was.
    assert.equal(await Deno.readTextFile(join(stateDir, "koku-sources.json")), stateBefore);

    // A fresh registry on the same state folder (the next CLI run) knows them too.
    const again = new SourceRegistry(stateDir, { baseUrl: koku.url });
    const second = await again.ensure(clusters(C1, C2, C3), at(23));
    assert.equal(koku.requests.length, before);
    assert.equal(second.outcome.known, 3);
  });
});

Deno.test("SourceRegistry: after a day it asks koku again, confirms, creates nothing", async () => {
  await withRegistry(async (koku, registry, stateDir) => {
    await registry.ensure(clusters(C1, C2, C3), T0);
    const posts = koku.count("POST", "sources");
    const gets = koku.count("GET", "sources");
    assert.ok(RECHECK_AFTER_MS < 25 * HOUR);

    const { outcome, blocked } = await registry.ensure(clusters(C1, C2, C3), at(25));

    assert.ok(koku.count("GET", "sources") > gets, "koku was asked again");
    assert.equal(koku.count("POST", "sources"), posts, "nothing created");
    assert.equal(koku.count("POST", "applications"), 3);
    assert.deepEqual(outcome, { created: [], confirmed: 3, known: 0, failed: [] });
    assert.equal(blocked.size, 0);
    assert.equal(koku.sources.length, 3);
    // Confirmed again: trusted for another day from now.
    const state = await readState(stateDir);
    for (const id of [C1, C2, C3]) {
      assert.equal(state.clusters[id]!.confirmedAt, at(25).toISOString());
    }
    const requests = koku.requests.length;
    const next = await registry.ensure(clusters(C1, C2, C3), at(26));
    assert.equal(koku.requests.length, requests);
    assert.equal(next.outcome.known, 3);
  });
});

Deno.test("SourceRegistry: only the clusters it does not know are asked about", async () => {
  await withRegistry(async (koku, registry) => {
    await registry.ensure(clusters(C1), T0);
    const { outcome } = await registry.ensure(clusters(C1, C2), at(1));
    assert.deepEqual(outcome.created.map((c) => c.clusterId), [C2]);
    assert.equal(outcome.known, 1);
    // No request was about C1.
    const about = (id: string) =>
      koku.requests.filter((r) =>
        r.query.get("filter[source_ref]") === id || r.query.get("filter[name]") === id ||
        (r.body as { source_ref?: string } | null)?.source_ref === id
      ).length;
    const c1Requests = about(C1);
    await registry.ensure(clusters(C1, C2), at(2));
    assert.equal(about(C1), c1Requests);
  });
});

Deno.test("SourceRegistry: a name taken by another cluster's source blocks that cluster; the others are created", async () => {
  await withRegistry(async (koku, registry, stateDir) => {
    const taken = koku.seed(ORG, C2, OTHER);

    const { outcome, blocked } = await registry.ensure(clusters(C1, C2, C3), T0);

    assert.deepEqual(outcome.created.map((c) => c.clusterId), [C1, C3]);
    assert.equal(outcome.failed.length, 1);
    assert.equal(outcome.failed[0]!.clusterId, C2);
    assert.equal(outcome.failed[0]!.code, "koku_sources");
    assert.match(outcome.failed[0]!.message, new RegExp(OTHER));

    assert.deepEqual([...blocked.keys()], [C2]);
    const info = blocked.get(C2)!;
    assert.equal(info.code, "koku_sources");
    assert.match(info.message, /koku would drop its payloads/);
    assert.match(info.message, new RegExp(C2));
    assert.match(info.message, new RegExp(OTHER), "names the cluster that holds the name");
    assert.match(
      info.message,
      new RegExp(`\\(id "?${taken.id}"?\\)`),
      "names the source holding the name",
    );

    // Nothing created for C2, the seeded source untouched.
    assert.equal(koku.sources.filter((s) => s.name === C2).length, 1);
    assert.equal(koku.sources.filter((s) => s.clusterId === C2).length, 0);
    assert.equal(koku.count("POST", "sources"), 2);

    // Only the registered clusters are remembered; the blocked one is tried again next pass.
    const state = await readState(stateDir);
    assert.deepEqual(Object.keys(state.clusters).sort(), [C1, C3].sort());
    const requests = koku.requests.length;
    const next = await registry.ensure(clusters(C1, C2, C3), at(1));
    assert.ok(koku.requests.length > requests, "the blocked cluster is asked about again");
    assert.equal(next.outcome.known, 2);
    assert.deepEqual([...next.blocked.keys()], [C2]);
    assert.equal(koku.count("POST", "sources"), 2);
  });
});

Deno.test("SourceRegistry: a known cluster whose org changed is checked again (in the new org)", async () => {
  await withRegistry(async (koku, registry, stateDir) => {
    await registry.ensure(clusters(C1, C2), T0);
    const requests = koku.requests.length;

    const { outcome, blocked } = await registry.ensure(
      [{ clusterId: C1, orgId: "7654321" }, { clusterId: C2, orgId: ORG }],
      at(1),
    );

    assert.ok(koku.requests.length > requests, "koku was asked again");
    assert.ok(
      koku.requests.slice(requests).every((r) => r.orgId === "7654321"),
      "only about the moved cluster, in its new org",
    );
    assert.deepEqual(outcome.created.map((c) => c.clusterId), [C1]);
    assert.equal(outcome.known, 1);
    assert.equal(blocked.size, 0);
    assert.deepEqual(
      koku.sources.filter((s) => s.clusterId === C1).map((s) => s.orgId).sort(),
      [ORG, "7654321"].sort(),
    );
    const state = await readState(stateDir);
    assert.equal(state.clusters[C1]!.orgId, "7654321");
    assert.equal(state.clusters[C2]!.orgId, ORG);

    // Now known in the new org.
    const again = koku.requests.length;
    const next = await registry.ensure(
      [{ clusterId: C1, orgId: "7654321" }, { clusterId: C2, orgId: ORG }],
      at(2),
    );
    assert.equal(koku.requests.length, again);
    assert.equal(next.outcome.known, 2);
  });
});

Deno.test("SourceRegistry: a damaged koku-sources.json is a state_corrupt error naming the file", async () => {
  await withRegistry(async (koku, registry, stateDir) => {
    const path = join(stateDir, "koku-sources.json");
    for (const text of ["{ not json", '{"version": 1}', '{"version": 1, "clusters": []}', "[]"]) {
      await Deno.writeTextFile(path, text);
      await assert.rejects(
        registry.ensure(clusters(C1), T0),
        (e: unknown) => {
          assert.ok(e instanceof BridgeError, String(e));
          assert.equal(e.code, "state_corrupt", text);
          assert.ok(e.message.includes(path), `${text}: ${e.message}`);
          return true;
        },
      );
    }
    assert.equal(koku.requests.length, 0, "no request with an unreadable state");
    // The file was left for the operator to look at.
    assert.equal(await Deno.readTextFile(path), "[]");

    // A failed pass does not jam the registry: once the file is repaired, passes go on.
    await Deno.remove(path);
    const { outcome } = await registry.ensure(clusters(C1), T0);
    assert.equal(outcome.created.length, 1);
  });
});

Deno.test("SourceRegistry: concurrent passes never create the same source twice", async () => {
  await withRegistry(async (koku, registry, stateDir) => {
    const [a, b, c] = await Promise.all([
      registry.ensure(clusters(C1, C2, C3), T0),
      registry.ensure(clusters(C3, C2, C1), T0),
      registry.ensure(clusters(C2, C3), T0),
    ]);

    assert.equal(koku.count("POST", "sources"), 3);
    assert.equal(koku.sources.length, 3);
    for (const id of [C1, C2, C3]) {
      assert.equal(koku.sources.filter((s) => s.clusterId === id).length, 1, id);
    }
    const created = [a, b, c].flatMap((r) => r.outcome.created.map((x) => x.clusterId));
    assert.deepEqual(created.sort(), [C1, C2, C3].sort(), "each created by exactly one pass");
    for (const r of [a, b, c]) {
      assert.equal(r.blocked.size, 0);
      assert.deepEqual(r.outcome.failed, []);
    }
    assert.equal(a.outcome.created.length + a.outcome.known + a.outcome.confirmed, 3);
    assert.equal(b.outcome.known, 3);
    assert.equal(c.outcome.known, 2);
    assert.deepEqual(Object.keys((await readState(stateDir)).clusters).sort(), [C1, C2, C3].sort());
  });
});

Deno.test("SourceRegistry: a pass that koku fails for blocks the clusters and remembers nothing", async () => {
  const koku = startFakeKokuSources({
    intercept: (r) => r.method === "POST" ? new Response("down", { status: 400 }) : undefined,
  });
  const stateDir = await Deno.makeTempDir({ prefix: "source_registry_test_" });
  try {
    const registry = new SourceRegistry(stateDir, { baseUrl: koku.url });
    const { outcome, blocked } = await registry.ensure(clusters(C1, C2), T0);
    assert.deepEqual(outcome.created, []);
    assert.deepEqual(outcome.failed.map((f) => [f.clusterId, f.code]), [
      [C1, "koku_sources"],
      [C2, "koku_sources"],
    ]);
    assert.deepEqual([...blocked.keys()].sort(), [C1, C2].sort());
    for (const info of blocked.values()) assert.match(info.message, /koku would drop its payloads/);
    await assert.rejects(Deno.stat(join(stateDir, "koku-sources.json")), Deno.errors.NotFound);
  } finally {
    await koku.stop();
    await Deno.remove(stateDir, { recursive: true });
  }
});

Deno.test("SourceRegistry: two registries on one state folder (two processes) never create a source twice", async () => {
  await withRegistry(async (koku, registry, stateDir) => {
    // A second registry has its own in-process queue, like another process: only the lock file
    // on the state folder keeps the two passes apart (flock locks differ per open file).
    const other = new SourceRegistry(stateDir, {
      baseUrl: koku.url,
      sleep: () => Promise.resolve(),
      random: () => 0,
    });
    const [a, b] = await Promise.all([
      registry.ensure(clusters(C1, C2), T0),
      other.ensure(clusters(C2, C1), T0),
    ]);
    assert.equal(koku.count("POST", "sources"), 2);
    for (const id of [C1, C2]) {
      assert.equal(koku.sources.filter((s) => s.clusterId === id).length, 1, id);
    }
    assert.equal(a.outcome.created.length + b.outcome.created.length, 2);
    assert.equal(a.outcome.known + b.outcome.known, 2);
  });
});
