import assert from "node:assert/strict";
import { join } from "node:path";
import { REPORT_NAMES, type ReportName } from "../collect/reports.ts";
import { BridgeError } from "../model.ts";
import {
  assertClusterId,
  assertDay,
  assertHour,
  hashFile,
  hourMatches,
  type HourParams,
  type QuarantinedHour,
  StateStore,
  tryHold,
} from "./state_store.ts";
import { canMountTmpfs, tinyTmpfs, unmount } from "./tiny_tmpfs.ts";

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

    const { hours } = await store.listHours("cluster-a", "2026-11-01");
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
      "sha256",
      "params",
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
    const { hours: before } = await store.listHours("c", "2026-11-01");
    assert.equal(before.get(5)?.rows.node, 2);
    await second.commit({
      collectedAt: new Date("2026-11-01T07:10:00Z"),
      mode: "server-side",
      noData: false,
    });

    const { hours: after } = await store.listHours("c", "2026-11-01");
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
    assert.equal((await store.listHours("c", "2026-11-02")).hours.size, 0, "missing day → empty");
    const w = await store.beginHour("c", "2026-11-02", 7);
    await w.writeRows("pod", [[...DATES, ...Array(16).fill("v")]]);
    assert.equal((await store.listHours("c", "2026-11-02")).hours.size, 0);
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
    assert.equal((await store.listHours("c", "2026-11-01")).hours.size, 1);
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

// ---- Hardening -------------------------------------------------------------------------------

const DAY = "2026-11-01";
const PARAMS: HourParams = {
  clusterLabel: "clusterID",
  rateWindow: "15m",
  reduce: "server",
  queryHash: "a".repeat(64),
};
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

async function commitHour(
  store: StateStore,
  hour: number,
  params: HourParams | null = PARAMS,
): Promise<void> {
  const w = await store.beginHour("c", DAY, hour);
  await w.writeRows("namespace", [[...DATES, `ns-${hour}`, "label_a:b"], [...DATES, "x", ""]]);
  await w.writeRows("node", [[...DATES, `node-${hour}`, ""]]);
  await w.commit({
    collectedAt: new Date("2026-11-01T05:00:00Z"),
    mode: "server",
    noData: false,
    params,
  });
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function diskFullError(): Error {
  return Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
}

Deno.test("rule 1: hour.json records the collection parameters; other or missing ones do not match", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    await commitHour(store, 0);
    await commitHour(store, 1, null);
    await commitHour(store, 2);
    // An hour.json written before parameters and hashes were recorded.
    const legacyPath = join(store.hourPath("c", DAY, 2), "hour.json");
    const legacy = JSON.parse(await Deno.readTextFile(legacyPath));
    delete legacy.params;
    delete legacy.sha256;
    await Deno.writeTextFile(legacyPath, JSON.stringify(legacy));

    const warnings: QuarantinedHour[] = [];
    const { hours } = await store.listHours("c", DAY, { onWarning: (w) => warnings.push(w) });
    assert.deepEqual(warnings, [], "an older hour.json is not damaged");
    assert.deepEqual([...hours.keys()], [0, 1, 2]);
    assert.deepEqual(hours.get(0)!.params, PARAMS);
    assert.deepEqual(
      JSON.parse(await Deno.readTextFile(join(store.hourPath("c", DAY, 0), "hour.json"))).params,
      PARAMS,
    );
    assert.equal(hourMatches(hours.get(0)!, PARAMS), true);
    assert.equal(hourMatches(hours.get(0)!, { ...PARAMS }), true);
    for (
      const change of [
        { clusterLabel: "cluster" },
        { rateWindow: "5m" },
        { queryHash: "b".repeat(64) },
      ]
    ) {
      assert.equal(
        hourMatches(hours.get(0)!, { ...PARAMS, ...change }),
        false,
        JSON.stringify(change),
      );
    }
    // How the values were reduced is not what they are: an hour of any mode serves any mode.
    for (const reduce of ["server", "client", "local"]) {
      assert.equal(hourMatches(hours.get(0)!, { ...PARAMS, reduce }), true, reduce);
    }
    assert.equal(hours.get(1)!.params, null);
    assert.equal(hourMatches(hours.get(1)!, PARAMS), false, "committed without parameters");
    assert.equal(hours.get(2)!.params, null);
    assert.equal(hours.get(2)!.sha256, null);
    assert.equal(hourMatches(hours.get(2)!, PARAMS), false, "old hour.json = other parameters");
  });
});

Deno.test("rule 5: hour.json records the size and SHA-256 of every fragment", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    await commitHour(store, 4);
    const meta = (await store.listHours("c", DAY)).hours.get(4)!;
    for (const name of REPORT_NAMES) {
      const bytes = await Deno.readFile(store.fragmentPath("c", DAY, 4, name));
      assert.equal(meta.bytes[name], bytes.length, name);
      assert.equal(meta.sha256![name], await sha256Hex(bytes), name);
    }
    assert.equal(meta.sha256!.vm, EMPTY_SHA256);
    assert.notEqual(meta.sha256!.namespace, EMPTY_SHA256);
    assert.deepEqual(await hashFile(store.fragmentPath("c", DAY, 4, "node")), {
      bytes: meta.bytes.node,
      sha256: meta.sha256!.node,
    });
  });
});

Deno.test("rule 5: a flipped byte is found by verifyHours and quarantined; other hours stay", async () => {
  await withTemp(async (root) => {
    const warned: QuarantinedHour[] = [];
    const store = new StateStore(root, { onWarning: (w) => warned.push(w) });
    for (const h of [0, 1, 2]) await commitHour(store, h);
    assert.deepEqual(await store.verifyHours("c", DAY, [0, 1, 2, 3]), [], "sound (3 is missing)");

    const flip = async (hour: number) => {
      const path = store.fragmentPath("c", DAY, hour, "namespace");
      const bytes = await Deno.readFile(path);
      bytes[5] = bytes[5]! ^ 0x01;
      await Deno.writeFile(path, bytes);
      return path;
    };
    const flipped1 = await flip(1);
    const flipped2 = await flip(2);
    // Same size: the cheap listing cannot see it.
    assert.deepEqual([...(await store.listHours("c", DAY)).hours.keys()], [0, 1, 2]);

    const reported = await store.verifyHours("c", DAY, [2], { quarantine: false });
    assert.equal(reported.length, 1);
    assert.equal(reported[0]!.movedTo, null);
    assert.ok(reported[0]!.reason.includes(flipped2) && /SHA-256/.test(reported[0]!.reason));
    assert.ok(await pathExists(store.hourPath("c", DAY, 2)), "not moved when asked not to");

    const bad = await store.verifyHours("c", DAY, [0, 1, 2]);
    assert.deepEqual(bad.map((b) => b.hour), [1, 2]);
    assert.equal(bad[0]!.path, store.hourPath("c", DAY, 1));
    assert.ok(bad[0]!.reason.includes(flipped1), bad[0]!.reason);
    assert.match(
      bad[0]!.movedTo!,
      new RegExp(`^${root}/quarantine/c/${DAY}/01-\\d{4}-\\d\\d-\\d\\dT\\d{6}\\.\\d{3}Z`),
    );
    assert.ok(await pathExists(join(bad[0]!.movedTo!, "namespace.csv")), "kept for inspection");
    assert.deepEqual(warned.map((w) => w.hour), [1, 2], "the store's onWarning heard both");
    assert.deepEqual([...(await store.listHours("c", DAY)).hours.keys()], [0]);
  });
});

async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("rule 5: a truncated hour.json is quarantined with its path; the other hours are still listed", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    for (const h of [0, 1, 2, 3]) await commitHour(store, h);
    const metaPath = join(store.hourPath("c", DAY, 2), "hour.json");
    const text = await Deno.readTextFile(metaPath);
    await Deno.writeTextFile(metaPath, text.slice(0, text.length >> 1));

    const warnings: QuarantinedHour[] = [];
    const { hours } = await store.listHours("c", DAY, { onWarning: (w) => warnings.push(w) });
    assert.deepEqual([...hours.keys()], [0, 1, 3]);
    assert.equal(warnings.length, 1);
    const w = warnings[0]!;
    assert.equal(w.hour, 2);
    assert.equal(w.path, store.hourPath("c", DAY, 2));
    assert.ok(w.reason.includes(metaPath) && /not valid JSON/.test(w.reason), w.reason);
    assert.equal(
      await Deno.readTextFile(join(w.movedTo!, "hour.json")),
      text.slice(0, text.length >> 1),
    );
    assert.equal(await pathExists(w.path), false, "moved out of the day");
    // Once moved, it is simply missing: no new warning, and it can be collected again.
    assert.deepEqual((await store.listHours("c", DAY)).quarantined, []);
    await commitHour(store, 2);
    assert.deepEqual([...(await store.listHours("c", DAY)).hours.keys()], [0, 1, 2, 3]);
  });
});

Deno.test("rule 5: an hour locked by a writer that is replacing it is not quarantined", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    for (const h of [0, 1]) await commitHour(store, h);
    const hourDir = store.hourPath("c", DAY, 1);
    await Deno.remove(join(hourDir, "hour.json")); // looks damaged mid-replace
    const writer = await tryHold(hourDir); // what HourWriter.commit holds while replacing
    assert.ok(writer);
    try {
      const busy = await store.listHours("c", DAY);
      assert.deepEqual([...busy.hours.keys()], [0]);
      assert.deepEqual(busy.quarantined, []);
      assert.ok(await pathExists(hourDir), "left to its writer");
    } finally {
      writer.close();
    }
    const { hours, quarantined } = await store.listHours("c", DAY);
    assert.deepEqual([...hours.keys()], [0]);
    assert.deepEqual(quarantined.map((q) => q.hour), [1]);
  });
});

Deno.test("rule 5: a deleted, resized or replaced fragment and wrong fields are quarantined", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    for (const h of [0, 1, 2, 3, 4, 5]) await commitHour(store, h);
    const deleted = store.fragmentPath("c", DAY, 1, "pod");
    await Deno.remove(deleted);
    const grown = store.fragmentPath("c", DAY, 2, "node");
    await Deno.writeTextFile(grown, "extra\n", { append: true });
    const wrongHour = join(store.hourPath("c", DAY, 3), "hour.json");
    const meta = JSON.parse(await Deno.readTextFile(wrongHour));
    await Deno.writeTextFile(wrongHour, JSON.stringify({ ...meta, hour: 7 }));
    const replaced = store.fragmentPath("c", DAY, 4, "vm");
    await Deno.remove(replaced);
    await Deno.mkdir(replaced);
    await Deno.remove(join(store.hourPath("c", DAY, 5), "hour.json"));

    const { hours, quarantined } = await store.listHours("c", DAY);
    assert.deepEqual([...hours.keys()], [0]);
    assert.deepEqual(quarantined.map((q) => q.hour), [1, 2, 3, 4, 5]);
    const reasons = quarantined.map((q) => q.reason);
    assert.ok(reasons[0]!.includes(deleted) && /missing/.test(reasons[0]!), reasons[0]!);
    assert.ok(reasons[1]!.includes(grown) && /has \d+ bytes, hour.json says/.test(reasons[1]!));
    assert.ok(reasons[2]!.includes(wrongHour) && /"hour" is 7/.test(reasons[2]!), reasons[2]!);
    assert.ok(reasons[3]!.includes(replaced) && /not a regular file/.test(reasons[3]!));
    assert.ok(/05\/hour\.json is missing/.test(reasons[4]!), reasons[4]!);
    for (const q of quarantined) assert.ok(q.movedTo && (await pathExists(q.movedTo)), q.path);
    assert.deepEqual(await listNames(join(root, "c", DAY)), ["00"]);
  });
});

Deno.test(
  "rule 5: commit fsyncs fragments, hour.json and the temp folder before the rename, the day folder after",
  {
    ignore: !(await commandWorks("strace", ["-V"])),
  },
  async () => {
    await withTemp(async (root) => {
      const script = join(root, "commit.ts");
      const storeUrl = new URL("./state_store.ts", import.meta.url).href;
      await Deno.writeTextFile(
        script,
        `import { StateStore } from ${JSON.stringify(storeUrl)};
const w = await new StateStore(Deno.args[0]).beginHour("c", "${DAY}", 3);
await w.writeRows("node", [${JSON.stringify([...DATES, "n", ""])}]);
await w.commit({ collectedAt: new Date(), mode: "server", noData: false });
`,
      );
      const log = join(root, "strace.log");
      const state = join(root, "state");
      const out = await new Deno.Command("strace", {
        args: [
          "-f",
          "-y",
          "-e",
          "trace=fsync,fdatasync,rename,renameat,renameat2",
          "-o",
          log,
          Deno.execPath(),
          "run",
          "-A",
          "--no-lock",
          "--config",
          new URL("../../deno.json", import.meta.url).pathname,
          script,
          state,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const lines = (await Deno.readTextFile(log)).split("\n").filter((l) => l.includes(state));
      const dayDir = join(state, "c", DAY);
      const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
      const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const rename = at(
        new RegExp(`rename.*"${esc(dayDir)}/\\.hour-03-\\d+-[^"]*", .*"${esc(dayDir)}/03"`),
      );
      assert.ok(rename > 0, lines.join("\n"));
      for (const file of [...REPORT_NAMES.map((n) => `${n}.csv`), "hour.json"]) {
        const i = at(new RegExp(`fsync\\(\\d+<${esc(dayDir)}/\\.hour-03-[^/>]+/${esc(file)}>`));
        assert.ok(i >= 0 && i < rename, `${file} fsynced before the rename:\n${lines.join("\n")}`);
      }
      const tempSync = at(new RegExp(`fsync\\(\\d+<${esc(dayDir)}/\\.hour-03-[^/>]+>`));
      assert.ok(tempSync >= 0 && tempSync < rename, "temp folder fsynced before the rename");
      const daySync = lines.findIndex((l, i) =>
        i > rename && l.includes(`fsync(`) && l.includes(`<${dayDir}>`)
      );
      assert.ok(daySync > rename, `day folder fsynced after the rename:\n${lines.join("\n")}`);
    });
  },
);

async function commandWorks(cmd: string, args: string[]): Promise<boolean> {
  try {
    return (await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output()).success;
  } catch {
    return false;
  }
}

/**
 * Starts a separate Deno process that begins writing hour `hour` (temporary hour folder) and
 * holds a spool partial file like a payload build, then waits to be killed.
 */
async function startWriter(root: string, hour: number, partial: string) {
  const script = join(root, `writer-${hour}.ts`);
  const storeUrl = new URL("./state_store.ts", import.meta.url).href;
  await Deno.writeTextFile(
    script,
    `import { StateStore } from ${JSON.stringify(storeUrl)};
const w = await new StateStore(Deno.args[0]).beginHour("c", "${DAY}", ${hour});
await w.writeRows("node", [${JSON.stringify([...DATES, "n", ""])}]);
const partial = await Deno.open(Deno.args[1], { write: true, createNew: true });
await partial.tryLock(true);
console.log("ready");
setInterval(() => {}, 1000);
`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--no-lock",
      "--config",
      new URL("../../deno.json", import.meta.url).pathname,
      script,
      root,
      partial,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let out = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  while (!out.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`writer ${hour} ended before it was ready: ${out}`);
    out += value;
  }
  await reader.cancel();
  return child;
}

Deno.test("rule 5: cleanup removes what killed processes left, never a live process's work", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    const dayDir = join(root, "c", DAY);
    const spool = store.spoolDir;
    assert.equal(spool, join(root, ".spool"));
    await Deno.mkdir(spool, { recursive: true });
    await commitHour(store, 5);
    await commitHour(store, 8);

    // A writer killed with SIGKILL in the middle of an hour and of a payload build.
    const killed = await startWriter(root, 3, join(spool, ".1-dead-x.tar.gz.partial"));
    killed.kill("SIGKILL");
    await killed.status;
    // A writer that is alive (another process) while cleanup runs.
    const alive = await startWriter(root, 4, join(spool, ".2-live-x.tar.gz.partial"));
    try {
      const names = await listNames(dayDir);
      const killedTemp = names.find((n) => n.startsWith(`.hour-03-${killed.pid}-`));
      const aliveTemp = names.find((n) => n.startsWith(`.hour-04-${alive.pid}-`));
      assert.ok(killedTemp && aliveTemp, `temp names carry the owner's PID: ${names}`);
      // This process, mid-hour.
      const mine = await store.beginHour("c", DAY, 7);
      const mineTemp = (await listNames(dayDir)).find((n) => n.startsWith(".hour-07-"))!;
      assert.match(mineTemp, new RegExp(`^\\.hour-07-${Deno.pid}-`));
      // Interrupted replaces: 05 is there (remove the old copy), 08 is gone (put it back).
      const oldDup = join(dayDir, ".old-05-999999-abc");
      await Deno.mkdir(oldDup);
      const old08 = join(dayDir, ".old-08-999999-abc");
      await Deno.rename(join(dayDir, "08"), old08);
      // Spool: a dead build's split folder, finished tarballs old and new, a foreign file.
      const deadSplit = join(spool, "999999-abc-split");
      await Deno.mkdir(deadSplit);
      const staleTar = join(spool, "999999-abc-u.tar.gz");
      const freshTar = join(spool, "999999-abd-u.tar.gz");
      const other = join(spool, "notes.txt");
      for (const path of [staleTar, freshTar, other]) await Deno.writeTextFile(path, "t");
      const now = new Date();
      await Deno.utime(
        staleTar,
        new Date(now.getTime() - 25 * 3_600_000),
        new Date(now.getTime() - 25 * 3_600_000),
      );

      const report = await store.cleanup({ now });
      assert.deepEqual(
        report.removed.sort(),
        [
          join(dayDir, killedTemp),
          oldDup,
          join(spool, ".1-dead-x.tar.gz.partial"),
          deadSplit,
          staleTar,
        ].sort(),
      );
      assert.deepEqual(report.restored, [join(dayDir, "08")]);
      for (
        const path of [
          join(dayDir, aliveTemp),
          join(dayDir, mineTemp),
          join(spool, ".2-live-x.tar.gz.partial"),
          freshTar,
          other,
        ]
      ) {
        assert.ok(await pathExists(path), `kept ${path}`);
      }
      await mine.commit({ collectedAt: new Date(), mode: "server", noData: true });
      assert.deepEqual([...(await store.listHours("c", DAY)).hours.keys()], [5, 7, 8]);
      assert.deepEqual(await store.cleanup({ now }), { removed: [], restored: [] }, "idempotent");
    } finally {
      alive.kill("SIGKILL");
      await alive.status;
    }
    // Once the other process is gone, its leftovers go too.
    const after = await store.cleanup();
    assert.equal(after.removed.length, 2, after.removed.join("\n"));
    assert.deepEqual((await listNames(dayDir)).filter((n) => n.startsWith(".")), []);
  });
});

Deno.test("rule 10: ENOSPC while writing a fragment or hour.json is disk_full naming the path", async () => {
  await withTemp(async (root) => {
    let failOn: RegExp | null = null;
    let failWith: () => Error = diskFullError;
    const store = new StateStore(root, {
      fs: {
        async write(file, data, path) {
          if (failOn?.test(path)) throw failWith();
          let off = 0;
          while (off < data.length) off += await file.write(data.subarray(off));
        },
      },
    });
    await commitHour(store, 2); // the previous version of hour 2
    const before = await Deno.readTextFile(store.fragmentPath("c", DAY, 2, "namespace"));
    const dayDir = join(root, "c", DAY);

    failOn = /pod\.csv$/;
    const w = await store.beginHour("c", DAY, 2);
    await assert.rejects(
      () => w.writeRows("pod", [[...DATES, ...Array(16).fill("v")]]),
      (err: unknown) =>
        err instanceof BridgeError && err.code === "disk_full" &&
        new RegExp(
          `^no space left on device while writing ${dayDir}/\\.hour-02-\\d+-[^/]+/pod\\.csv$`,
        )
          .test(err.message),
    );
    await w.abort();

    failOn = /hour\.json$/;
    const w2 = await store.beginHour("c", DAY, 2);
    await w2.writeRows("namespace", [[...DATES, "new", ""]]);
    await assert.rejects(
      () => w2.commit({ collectedAt: new Date(), mode: "server", noData: false, params: PARAMS }),
      (err: unknown) =>
        err instanceof BridgeError && err.code === "disk_full" &&
        /while writing .*\/\.hour-02-\d+-[^/]+\/hour\.json$/.test(err.message),
    );
    assert.deepEqual(await listNames(dayDir), ["02"], "temp folders removed");
    assert.equal(
      await Deno.readTextFile(store.fragmentPath("c", DAY, 2, "namespace")),
      before,
      "the committed hour is untouched",
    );

    failWith = () => Object.assign(new Error("Input/output error (os error 5)"), { code: "EIO" });
    const w3 = await store.beginHour("c", DAY, 2);
    await assert.rejects(
      () => w3.commit({ collectedAt: new Date(), mode: "server", noData: true }),
      (err: unknown) =>
        err instanceof BridgeError && err.code === "state_io" && err.message.includes("hour.json"),
    );
  });
});

const CAN_MOUNT = await canMountTmpfs();

Deno.test(
  "rule 10: a really full file system (tiny tmpfs) gives disk_full and leaves no temp folder",
  {
    ignore: !CAN_MOUNT,
  },
  async () => {
    const mnt = await tinyTmpfs(64);
    assert.ok(mnt);
    try {
      const store = new StateStore(mnt);
      const w = await store.beginHour("c", DAY, 1);
      const rows = Array.from({ length: 2000 }, (_, i) => [...DATES, `ns-${i}`, "x".repeat(100)]);
      await assert.rejects(
        () => w.writeRows("namespace", rows),
        (err: unknown) =>
          err instanceof BridgeError && err.code === "disk_full" &&
          err.message.startsWith(`no space left on device while writing ${mnt}/c/${DAY}/.hour-01-`),
      );
      await w.abort();
      assert.deepEqual(await listNames(join(mnt, "c", DAY)), []);
    } finally {
      await unmount(mnt);
    }
  },
);

// ---- ROS fragments (issue 9) ----

const ROS_DATES = [
  "2026-11-01 00:00:00 +0000 UTC",
  "2026-12-01 00:00:00 +0000 UTC",
  "2026-11-01 03:00:01 +0000 UTC",
  "2026-11-01 03:15:00 +0000 UTC",
];
const ROS_PARAMS: HourParams = { ...PARAMS, rosHash: "cd".repeat(32) };

function rosRow(width: number, key: string): string[] {
  const row = [...ROS_DATES, key];
  while (row.length < width) row.push("0.500000");
  return row;
}

Deno.test("ROS: fragments of passed windows are committed with size and SHA-256, and verified", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    const w = await store.beginHour("c", DAY, 3);
    await w.writeRows("node", [[...DATES, "node-a", ""]]);
    await w.writeRows("ros-container", [rosRow(49, "c1"), rosRow(49, "c2")]);
    const meta = await w.commit({
      collectedAt: new Date("2026-11-01T05:00:00Z"),
      mode: "server",
      noData: false,
      params: ROS_PARAMS,
      ros: { windows: 2 },
    });
    assert.equal(meta.ros?.windows, 2);
    assert.deepEqual(meta.ros?.rows, { "ros-container": 2, "ros-namespace": 0 });
    for (const name of ["ros-container", "ros-namespace"] as const) {
      const bytes = await Deno.readFile(store.fragmentPath("c", DAY, 3, name));
      assert.equal(meta.ros!.bytes[name], bytes.length);
      assert.equal(meta.ros!.sha256![name], await sha256Hex(bytes));
    }
    assert.equal(
      meta.ros!.sha256!["ros-namespace"],
      EMPTY_SHA256,
      "header-only file: empty fragment",
    );
    const { hours } = await store.listHours("c", DAY);
    assert.deepEqual(hours.get(3), meta);
    assert.equal(hours.get(3)!.params?.rosHash, ROS_PARAMS.rosHash);
    assert.deepEqual(await store.verifyHours("c", DAY, [3]), []);
    // A flipped byte in a ROS fragment is found and the hour quarantined.
    const path = store.fragmentPath("c", DAY, 3, "ros-container");
    const bytes = await Deno.readFile(path);
    bytes[7] = bytes[7]! ^ 0x01;
    await Deno.writeFile(path, bytes);
    const bad = await store.verifyHours("c", DAY, [3]);
    assert.equal(bad.length, 1);
    assert.match(bad[0]!.reason, /ros-container\.csv has SHA-256/);
    // A missing ROS fragment makes the hour damaged for the cheap listing too.
    const w2 = await store.beginHour("c", DAY, 4);
    await w2.commit({
      collectedAt: new Date(),
      mode: "server",
      noData: false,
      params: ROS_PARAMS,
      ros: { windows: 1 },
    });
    await Deno.remove(store.fragmentPath("c", DAY, 4, "ros-namespace"));
    const listing = await store.listHours("c", DAY);
    assert.deepEqual(listing.quarantined.map((q) => q.hour), [4]);
  });
});

Deno.test("ROS: no window passed → no ROS fragments, windows 0 recorded; ROS rows then refused", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    const w = await store.beginHour("c", DAY, 0);
    const meta = await w.commit({
      collectedAt: new Date(),
      mode: "server",
      noData: true,
      params: ROS_PARAMS,
      ros: { windows: 0 },
    });
    assert.deepEqual(meta.ros, {
      windows: 0,
      rows: { "ros-container": 0, "ros-namespace": 0 },
      bytes: { "ros-container": 0, "ros-namespace": 0 },
      sha256: null,
    });
    const names: string[] = [];
    for await (const e of Deno.readDir(store.hourPath("c", DAY, 0))) names.push(e.name);
    assert.ok(!names.some((n) => n.startsWith("ros-")), names.join(","));
    assert.deepEqual((await store.listHours("c", DAY)).hours.get(0), meta);
    for (const ros of [undefined, { windows: 0 }]) {
      const bad = await store.beginHour("c", DAY, 1);
      await bad.writeRows("ros-namespace", [rosRow(25, "ns")]);
      await assert.rejects(
        () => bad.commit({ collectedAt: new Date(), mode: "server", noData: false, ros }),
        RangeError,
      );
      await bad.abort();
    }
  });
});

Deno.test("ROS: an hour.json without ROS reads as collected without ROS; hourMatches compares rosHash only with ROS on", async () => {
  await withTemp(async (root) => {
    const store = new StateStore(root);
    await commitHour(store, 0);
    const meta = (await store.listHours("c", DAY)).hours.get(0)!;
    assert.equal(meta.ros, null);
    const onDisk = JSON.parse(
      await Deno.readTextFile(join(store.hourPath("c", DAY, 0), "hour.json")),
    );
    assert.ok(!("ros" in onDisk), "hour.json without ROS keeps its keys");
    assert.ok(!("rosHash" in onDisk.params));
    assert.equal(hourMatches(meta, PARAMS), true);
    assert.equal(hourMatches(meta, ROS_PARAMS), false, "collected without ROS: again with ROS");
    const withRos = { params: ROS_PARAMS };
    assert.equal(hourMatches(withRos, ROS_PARAMS), true);
    assert.equal(hourMatches(withRos, { ...ROS_PARAMS, rosHash: "ef".repeat(32) }), false);
    assert.equal(hourMatches(withRos, PARAMS), true, "ROS off reuses an hour collected with ROS");
  });
});
