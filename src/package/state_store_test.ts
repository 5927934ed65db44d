import assert from "node:assert/strict";
import { join } from "node:path";
import { REPORT_NAMES, type ReportName } from "../collect/reports.ts";
import { assertClusterId, assertDay, assertHour, StateStore } from "./state_store.ts";

const DATES = [
  "2026-11-01 00:00:00 +0000 UTC",
  "2026-12-01 00:00:00 +0000 UTC",
  "2026-11-01 03:00:00 +0000 UTC",
  "2026-11-01 03:59:59 +0000 UTC",
];

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "state_store_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listNames(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("state store: round trip of one hour with hostile values", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    const w = await store.beginHour("cluster-a", "2026-11-01", 3);
    await w.writeRows("namespace", [
      [...DATES, "ns,1", 'label_a:say "hi"'],
      [...DATES, "ns2", "line1\nline2"],
    ]);
    await w.writeRows("namespace", [[...DATES, " lead", "ünïcødé"]]);
    await w.writeRows("node", []);
    const collectedAt = new Date("2026-11-01T04:10:00.123Z");
    const meta = await w.commit({ collectedAt, mode: "raw", noData: false });

    const ns = await Deno.readTextFile(
      store.fragmentPath("cluster-a", "2026-11-01", 3, "namespace"),
    );
    const d = DATES.join(",");
    const expected = `${d},"ns,1","label_a:say ""hi"""\n` +
      `${d},ns2,"line1\nline2"\n` +
      `${d}," lead",ünïcødé\n`;
    assert.equal(ns, expected);
    assert.equal(meta.rows.namespace, 3);
    assert.equal(meta.bytes.namespace, new TextEncoder().encode(expected).length);
    for (const name of REPORT_NAMES) {
      if (name === "namespace") continue;
      assert.equal(meta.rows[name], 0);
      assert.equal(meta.bytes[name], 0);
      const stat = await Deno.stat(store.fragmentPath("cluster-a", "2026-11-01", 3, name));
      assert.equal(stat.size, 0, `empty fragment for ${name}`);
    }
    assert.equal(meta.collectedAt, "2026-11-01T04:10:00.123Z");
    assert.equal(meta.hour, 3);

    const hours = await store.listHours("cluster-a", "2026-11-01");
    assert.deepEqual([...hours.keys()], [3]);
    assert.deepEqual(hours.get(3), meta);
    assert.equal(
      store.fragmentPath("cluster-a", "2026-11-01", 3, "pod"),
      join(root, "cluster-a", "2026-11-01", "03", "pod.csv"),
    );
    const hourDir = join(root, "cluster-a", "2026-11-01", "03");
    assert.deepEqual(
      await listNames(hourDir),
      [...REPORT_NAMES.map((n) => `${n}.csv`), "hour.json"].sort(),
    );
    const onDisk = JSON.parse(await Deno.readTextFile(join(hourDir, "hour.json")));
    assert.deepEqual(Object.keys(onDisk), [
      "hour",
      "collectedAt",
      "mode",
      "noData",
      "rows",
      "bytes",
    ]);
    // No work folders left behind.
    assert.deepEqual(await listNames(join(root, "cluster-a", "2026-11-01")), ["03"]);
  });
});

Deno.test("state store: large batches are written completely", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    const w = await store.beginHour("c", "2026-11-01", 0);
    const rows = Array.from({ length: 30_000 }, (_, i) => [...DATES, `ns-${i}`, "x".repeat(40)]);
    await w.writeRows("namespace", rows);
    const meta = await w.commit({ collectedAt: new Date(), mode: "raw", noData: false });
    const text = await Deno.readTextFile(store.fragmentPath("c", "2026-11-01", 0, "namespace"));
    const lines = text.split("\n");
    assert.equal(lines.length, 30_001);
    assert.equal(lines[29_999], `${DATES.join(",")},ns-29999,${"x".repeat(40)}`);
    assert.equal(meta.rows.namespace, 30_000);
    assert.equal(meta.bytes.namespace, new TextEncoder().encode(text).length);
  });
});

Deno.test("state store: re-collecting an hour replaces it atomically", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    const first = await store.beginHour("c", "2026-11-01", 5);
    await first.writeRows("node", [[...DATES, "node-a", "old"], [...DATES, "node-b", "old"]]);
    await first.commit({
      collectedAt: new Date("2026-11-01T06:10:00Z"),
      mode: "raw",
      noData: false,
    });

    const second = await store.beginHour("c", "2026-11-01", 5);
    await second.writeRows("node", [[...DATES, "node-c", "new"]]);
    // Before commit, readers still see the old hour.
    const before = await store.listHours("c", "2026-11-01");
    assert.equal(before.get(5)?.rows.node, 2);
    await second.commit({
      collectedAt: new Date("2026-11-01T07:10:00Z"),
      mode: "server-side",
      noData: false,
    });

    const after = await store.listHours("c", "2026-11-01");
    assert.equal(after.get(5)?.rows.node, 1);
    assert.equal(after.get(5)?.collectedAt, "2026-11-01T07:10:00.000Z");
    assert.equal(after.get(5)?.mode, "server-side");
    const text = await Deno.readTextFile(store.fragmentPath("c", "2026-11-01", 5, "node"));
    assert.equal(text, `${DATES.join(",")},node-c,new\n`);
    assert.deepEqual(await listNames(join(root, "c", "2026-11-01")), ["05"]);
  });
});

Deno.test("state store: uncommitted and aborted hours are invisible", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    assert.equal((await store.listHours("c", "2026-11-02")).size, 0, "missing day → empty");
    const w = await store.beginHour("c", "2026-11-02", 7);
    await w.writeRows("pod", [[...DATES, ...Array(16).fill("v")]]);
    assert.equal((await store.listHours("c", "2026-11-02")).size, 0);
    await w.abort();
    assert.deepEqual(await listNames(join(root, "c", "2026-11-02")), []);
    await assert.rejects(() => w.writeRows("pod", []), Error);
    await assert.rejects(
      () => w.commit({ collectedAt: new Date(), mode: "raw", noData: true }),
      /already done/,
    );
  });
});

Deno.test("state store: a committed writer cannot be used again", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    const w = await store.beginHour("c", "2026-11-01", 0);
    const meta = await w.commit({ collectedAt: new Date(), mode: "raw", noData: true });
    assert.equal(meta.noData, true);
    await assert.rejects(
      () => w.commit({ collectedAt: new Date(), mode: "raw", noData: true }),
      /already done/,
    );
    await w.abort(); // no-op after commit
    assert.equal((await store.listHours("c", "2026-11-01")).size, 1);
  });
});

Deno.test("state store: rows of the wrong width are refused", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    const w = await store.beginHour("c", "2026-11-01", 0);
    await assert.rejects(
      () => w.writeRows("node", [[...DATES, "only-node"]]),
      (err: unknown) => err instanceof RangeError && /5 fields, expected 6/.test(err.message),
    );
    await w.abort();
  });
});

Deno.test("state store: cluster id, day and hour are validated", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    for (const bad of ["", ".", "..", "a/b", "../x", ".hidden", "-x", "a b", "x".repeat(254)]) {
      assert.throws(
        () => assertClusterId(bad),
        (err: unknown) => err instanceof RangeError && err.message.includes(JSON.stringify(bad)),
        `cluster id ${JSON.stringify(bad)}`,
      );
      await assert.rejects(() => store.beginHour(bad, "2026-11-01", 0), RangeError);
      await assert.rejects(() => store.listHours(bad, "2026-11-01"), RangeError);
    }
    assertClusterId("x".repeat(253));
    assertClusterId("16b9a60d-0774-4102-9028-bd28d6c38ac2");
    assertClusterId("a..b");

    for (const bad of ["2023-02-29", "2024-13-01", "2024-04-31", "20240101", "2024-1-01", ""]) {
      assert.throws(
        () => assertDay(bad),
        (err: unknown) => err instanceof RangeError && err.message.includes(JSON.stringify(bad)),
        `day ${JSON.stringify(bad)}`,
      );
      assert.throws(() => store.fragmentPath("c", bad, 0, "pod"), RangeError);
    }
    assertDay("2024-02-29");
    assertDay("2026-12-31");

    for (const bad of [-1, 24, 1.5, Number.NaN]) {
      assert.throws(() => assertHour(bad), RangeError);
      await assert.rejects(() => store.beginHour("c", "2026-11-01", bad), RangeError);
    }
    assert.throws(
      () => store.fragmentPath("c", "2026-11-01", 0, "ros" as ReportName),
      RangeError,
    );
  });
});

Deno.test("state store: a corrupt hour.json is reported with its path", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    const w = await store.beginHour("c", "2026-11-01", 1);
    await w.commit({ collectedAt: new Date(), mode: "raw", noData: true });
    const path = join(root, "c", "2026-11-01", "01", "hour.json");
    await Deno.writeTextFile(path, "{not json");
    await assert.rejects(
      () => store.listHours("c", "2026-11-01"),
      (err: unknown) => err instanceof SyntaxError && err.message.includes(path),
    );
  });
});
