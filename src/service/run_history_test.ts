import assert from "node:assert/strict";
import { join } from "node:path";
import {
  idsToPrune,
  isRunId,
  newRunId,
  pageOf,
  parseRunRecord,
  RunHistory,
} from "./run_history.ts";
import type { RunRecord } from "./run_types.ts";

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "run_history_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function record(id: string, state: RunRecord["state"] = "succeeded"): RunRecord {
  return {
    id,
    trigger: "api",
    state,
    request: { clusters: ["c1"] },
    createdAt: "2026-11-27T01:00:00.000Z",
    startedAt: "2026-11-27T01:00:00.000Z",
    finishedAt: state === "running" ? null : "2026-11-27T01:00:01.000Z",
    clusters: [{
      clusterId: "c1",
      state: "done",
      from: "2026-11-01T00",
      to: "2026-11-01T05",
      hoursCollected: 6,
      hoursFailed: 0,
      days: [],
      watermark: "2026-11-01T05",
      error: null,
    }],
    queries: 3,
    bytesDownloaded: 100,
    outbox: null,
    error: null,
  };
}

function ids(n: number, at = "2026-11-27T01:50:46.000Z"): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(newRunId(new Date(at), out.at(-1) ?? null));
  return out;
}

Deno.test("newRunId: time-sortable, strictly increasing even with a still clock", () => {
  const a = newRunId(new Date("2026-11-27T01:50:46.123Z"));
  assert.match(a, /^r-20261127T015046123Z-[a-z2-7]{6}$/);
  assert.ok(isRunId(a));
  const list = ids(50);
  assert.deepEqual([...list].sort(), list);
  assert.equal(new Set(list).size, 50);
  // the clock stepped back: still after the newest
  const later = newRunId(new Date("2026-11-27T00:00:00Z"), list.at(-1)!);
  assert.ok(later > list.at(-1)!);
  // ids of later times sort later
  assert.ok(
    newRunId(new Date("2026-11-27T01:50:47Z")) > newRunId(new Date("2026-11-27T01:50:46.999Z")),
  );
  for (const bad of ["r-1", "../r-20261127T015046123Z-abcdef", "r-20261127T015046123Z-ABCDEF", 7]) {
    assert.equal(isRunId(bad), false, String(bad));
  }
});

Deno.test("pageOf: pages newest first, next is the last id of a page, null at the end", () => {
  const all = ["e", "d", "c", "b", "a"];
  assert.deepEqual(pageOf(all, 2), { ids: ["e", "d"], next: "d" });
  assert.deepEqual(pageOf(all, 2, "d"), { ids: ["c", "b"], next: "b" });
  assert.deepEqual(pageOf(all, 2, "b"), { ids: ["a"], next: null });
  assert.deepEqual(pageOf(all, 5), { ids: all, next: null });
  assert.deepEqual(pageOf(all, 2, "a"), { ids: [], next: null });
  // a `before` that is no longer in the list (pruned) still pages by order
  assert.deepEqual(pageOf(all, 2, "cc"), { ids: ["c", "b"], next: "b" });
  assert.deepEqual(pageOf(all, 0), { ids: ["e"], next: "e" });
  assert.deepEqual(pageOf([], 10), { ids: [], next: null });
});

Deno.test("idsToPrune: oldest first, never an active one", () => {
  assert.deepEqual(idsToPrune(["a", "b", "c"], 5, () => false), []);
  assert.deepEqual(idsToPrune(["a", "b", "c", "d"], 2, () => false), ["a", "b"]);
  assert.deepEqual(idsToPrune(["a", "b", "c", "d"], 2, (id) => id === "a"), ["b", "c"]);
  assert.deepEqual(idsToPrune(["a", "b"], 1, () => true), []);
});

Deno.test("parseRunRecord: accepts a record, names what is wrong otherwise", () => {
  const id = ids(1)[0]!;
  const ok = record(id);
  assert.deepEqual(parseRunRecord(JSON.parse(JSON.stringify(ok)), id), ok);
  assert.equal(parseRunRecord([], id), "is not a JSON object");
  assert.equal(parseRunRecord({ ...ok, id: "other" }, id), "its id is not the file's");
  assert.equal(parseRunRecord({ ...ok, state: "done" }, id), "has no valid state");
  assert.equal(parseRunRecord({ ...ok, trigger: "cron" }, id), "has no valid trigger");
  assert.equal(parseRunRecord({ ...ok, clusters: [{}] }, id), "has invalid cluster progress");
  assert.equal(parseRunRecord({ ...ok, createdAt: "yesterday" }, id), "has no valid createdAt");
  assert.equal(parseRunRecord({ ...ok, error: "boom" }, id), "has an invalid error");
});

Deno.test("RunHistory: survives a restart, newest first, bounded at N", async () => {
  await withDir(async (dir) => {
    const runs = join(dir, "runs");
    const h = new RunHistory(runs, 3);
    await h.load();
    const all = ids(5);
    for (const id of all) await h.save(record(id));
    // only the newest 3 files are left
    const files = [...Deno.readDirSync(runs)].map((e) => e.name).sort();
    assert.deepEqual(files, all.slice(2).map((id) => `${id}.json`));
    assert.deepEqual(h.all().map((r) => r.id), all.slice(2).reverse());
    assert.equal(h.get(all[0]!), null);

    const again = new RunHistory(runs, 3);
    await again.load();
    assert.deepEqual(again.all().map((r) => r.id), all.slice(2).reverse());
    assert.deepEqual(again.get(all[4]!), record(all[4]!));
    assert.equal(again.newestId(), all[4]);
    const p1 = again.list({ limit: 2 });
    assert.deepEqual(p1.runs.map((r) => r.id), [all[4], all[3]]);
    assert.equal(p1.next, all[3]);
    const p2 = again.list({ limit: 2, before: p1.next! });
    assert.deepEqual(p2.runs.map((r) => r.id), [all[2]]);
    assert.equal(p2.next, null);

    // a lower limit at the next start prunes at load
    const smaller = new RunHistory(runs, 1);
    await smaller.load();
    assert.deepEqual(smaller.all().map((r) => r.id), [all[4]]);
    assert.deepEqual([...Deno.readDirSync(runs)].map((e) => e.name), [`${all[4]}.json`]);
  });
});

Deno.test("RunHistory: an active run is never pruned; updates rewrite the same file", async () => {
  await withDir(async (dir) => {
    const h = new RunHistory(dir, 1);
    await h.load();
    const [a, b, c] = ids(3);
    const active = record(a!, "running");
    await h.save(active);
    await h.save(record(b!));
    assert.deepEqual(h.all().map((r) => r.id), [a]); // b pruned, a kept while running
    active.state = "succeeded";
    await h.save(active);
    await h.save(record(c!));
    assert.deepEqual(h.all().map((r) => r.id), [c]);
    const back = new RunHistory(dir, 1);
    await back.load();
    assert.equal(back.get(c!)?.state, "succeeded");
  });
});

Deno.test("RunHistory: a damaged file is skipped with a warning; stale temp files go", async () => {
  await withDir(async (dir) => {
    const [a, b, c, d] = ids(4);
    const h = new RunHistory(dir, 10);
    await h.load();
    await h.save(record(a!));
    await h.save(record(d!));
    await Deno.writeTextFile(join(dir, `${b}.json`), '{"id": "' + b + '", "state": "runn');
    await Deno.writeTextFile(join(dir, `${c}.json`), JSON.stringify({ ...record(c!), state: 1 }));
    await Deno.writeTextFile(join(dir, "notes.txt"), "not a run");
    const temp = join(dir, `.${crypto.randomUUID()}.123.tmp`);
    await Deno.writeTextFile(temp, "{");
    const old = new Date(Date.now() - 2 * 3_600_000);
    await Deno.utime(temp, old, old);
    const fresh = join(dir, `.${crypto.randomUUID()}.124.tmp`);
    await Deno.writeTextFile(fresh, "{");

    const warnings: string[] = [];
    const back = new RunHistory(dir, 10, { warn: (m) => warnings.push(m) });
    await back.load();
    assert.deepEqual(back.all().map((r) => r.id), [d, a]);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, new RegExp(`${b}\\.json.*not valid JSON`));
    assert.match(warnings[1]!, new RegExp(`${c}\\.json: has no valid state`));
    await assert.rejects(Deno.stat(temp), Deno.errors.NotFound);
    await Deno.stat(fresh); // a live writer's temp file stays
    // damaged files count towards the limit and age out like the others
    const small = new RunHistory(dir, 2, { warn: () => {} });
    await small.load();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".json"));
    assert.deepEqual(names.sort(), [`${c}.json`, `${d}.json`]);
    assert.deepEqual(small.all().map((r) => r.id), [d]);
  });
});

Deno.test("RunHistory: missing folder loads empty; a bad limit is refused", async () => {
  await withDir(async (dir) => {
    const h = new RunHistory(join(dir, "nope", "runs"));
    await h.load();
    assert.deepEqual(h.list({ limit: 10 }), { runs: [], next: null });
    assert.equal(h.newestId(), null);
    assert.throws(() => new RunHistory(dir, 0), RangeError);
  });
});

Deno.test("RunHistory: a write that fails rejects and keeps the record in memory", async () => {
  await withDir(async (dir) => {
    const blocked = join(dir, "file");
    await Deno.writeTextFile(blocked, "");
    const h = new RunHistory(join(blocked, "runs"), 5);
    await h.load().catch(() => {});
    const [a] = ids(1);
    await assert.rejects(h.save(record(a!)), /cannot write/);
    assert.equal(h.get(a!)?.id, a); // kept in memory
    await h.flush();
  });
});
