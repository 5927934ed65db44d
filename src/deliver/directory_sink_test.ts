import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { BridgeError } from "../model.ts";
import { DirectorySink } from "./directory_sink.ts";
import type { PayloadPart, SinkPayload } from "./sink.ts";

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "directory_sink_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function spoolParts(spool: string, names: string[]): Promise<PayloadPart[]> {
  await Deno.mkdir(spool, { recursive: true });
  const parts: PayloadPart[] = [];
  for (const [i, fileName] of names.entries()) {
    const path = join(spool, fileName);
    const bytes = new Uint8Array([i, 1, 2, 3, 255]);
    await Deno.writeFile(path, bytes);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    parts.push({ path, fileName, bytes: bytes.length, sha256 });
  }
  return parts;
}

function payload(parts: PayloadPart[], day = "2026-11-01"): SinkPayload {
  return { clusterId: "cluster-a", orgId: "", day, uuid: "u", lastHour: 3, parts };
}

Deno.test("directory sink: deliver moves parts into <root>/<cluster>/<day>/, then has() is true", async () => {
  await withTemp(async (dir) => {
    const root = join(dir, "out");
    const sink = new DirectorySink(root);
    const parts = await spoolParts(join(dir, "spool"), ["u-0.tar.gz", "u-1.tar.gz"]);
    assert.equal(
      sink.pathFor("cluster-a", "2026-11-01", "u-0.tar.gz"),
      join(root, "cluster-a", "2026-11-01", "u-0.tar.gz"),
    );
    const { record, queued } = await sink.deliver(payload(parts));
    assert.equal(queued, 0);
    assert.deepEqual(record.parts.map((p) => p.ref), [
      { sink: "dir", location: join(root, "cluster-a", "2026-11-01", "u-0.tar.gz") },
      { sink: "dir", location: join(root, "cluster-a", "2026-11-01", "u-1.tar.gz") },
    ]);
    assert.deepEqual([record.uuid, record.lastHour, record.sink], ["u", 3, "dir"]);
    for (const [i, p] of record.parts.entries()) {
      assert.deepEqual(await Deno.readFile(p.ref.location), new Uint8Array([i, 1, 2, 3, 255]));
    }
    for (const part of parts) {
      await assert.rejects(() => Deno.stat(part.path), Deno.errors.NotFound, "moved, not copied");
    }
    assert.equal(await sink.has(record), true);
    const names: string[] = [];
    for await (const e of Deno.readDir(join(root, "cluster-a", "2026-11-01"))) names.push(e.name);
    assert.deepEqual(names.sort(), ["u-0.tar.gz", "u-1.tar.gz"], "no temporary files left");
  });
});

Deno.test("rule 6: has() is false when a part is missing, truncated or altered", async () => {
  await withTemp(async (dir) => {
    const sink = new DirectorySink(join(dir, "out"));
    const { record } = await sink.deliver(
      payload(await spoolParts(join(dir, "spool"), ["a.tar.gz", "b.tar.gz"])),
    );
    assert.equal(await sink.has(record), true);
    const [a, b] = record.parts.map((p) => p.ref.location);
    await Deno.writeFile(b!, new Uint8Array([1, 1, 2, 3, 254])); // same size, other bytes
    assert.equal(await sink.has(record), false);
    await Deno.writeFile(b!, new Uint8Array([1, 1, 2, 3, 255]));
    assert.equal(await sink.has(record), true);
    await Deno.truncate(a!, 2);
    assert.equal(await sink.has(record), false);
    await Deno.remove(a!);
    assert.equal(await sink.has(record), false);
    assert.equal(await sink.has({ ...record, parts: [] }), false);
  });
});

Deno.test("directory sink: re-delivery replaces an existing file", async () => {
  await withTemp(async (dir) => {
    const sink = new DirectorySink(join(dir, "out"));
    await sink.deliver(payload(await spoolParts(join(dir, "s1"), ["x.tar.gz"])));
    await Deno.mkdir(join(dir, "s2"));
    await Deno.writeTextFile(join(dir, "s2", "x.tar.gz"), "new");
    const { record } = await sink.deliver(payload([{
      path: join(dir, "s2", "x.tar.gz"),
      fileName: "x.tar.gz",
      bytes: 3,
      sha256: createHash("sha256").update("new").digest("hex"),
    }]));
    assert.equal(await Deno.readTextFile(record.parts[0]!.ref.location), "new");
    assert.equal(await sink.has(record), true);
  });
});

Deno.test("directory sink: unsafe names are refused", async () => {
  await withTemp(async (dir) => {
    const sink = new DirectorySink(join(dir, "out"));
    for (const bad of ["../x.tar.gz", "a/b.tar.gz", "..", ""]) {
      assert.throws(
        () => sink.pathFor("c", "2026-11-01", bad),
        (err: unknown) => err instanceof BridgeError && err.message.includes(JSON.stringify(bad)),
      );
    }
    assert.throws(() => sink.pathFor("../c", "2026-11-01", "x"), BridgeError);
    assert.throws(() => sink.pathFor("c", "2026-13-01", "x"), BridgeError);
    await assert.rejects(
      () =>
        sink.deliver(payload([{
          path: join(dir, "nope"),
          fileName: "../../escape",
          bytes: 0,
          sha256: "",
        }])),
      BridgeError,
    );
    assert.throws(() => new DirectorySink(""), TypeError);
  });
});

Deno.test("directory sink: a missing spool file fails (sink_dir) without leaving anything behind", async () => {
  await withTemp(async (dir) => {
    const sink = new DirectorySink(join(dir, "out"));
    await assert.rejects(
      () =>
        sink.deliver(payload([{
          path: join(dir, "missing.tar.gz"),
          fileName: "m.tar.gz",
          bytes: 0,
          sha256: "",
        }])),
      (e: unknown) => e instanceof BridgeError && e.code === "sink_dir",
    );
    const names: string[] = [];
    for await (const e of Deno.readDir(join(dir, "out", "cluster-a", "2026-11-01"))) {
      names.push(e.name);
    }
    assert.deepEqual(names, []);
  });
});

async function otherFileSystemDir(): Promise<string | null> {
  try {
    const shm = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "directory_sink_test_" });
    const tmp = await Deno.stat(await Deno.realPath(Deno.env.get("TMPDIR") ?? "/tmp"));
    if ((await Deno.stat(shm)).dev === tmp.dev) {
      await Deno.remove(shm, { recursive: true });
      return null;
    }
    return shm;
  } catch {
    return null;
  }
}

Deno.test("directory sink: across file systems it copies via a temporary name", async () => {
  const spool = await otherFileSystemDir();
  if (spool === null) return; // no second file system here: nothing to exercise
  try {
    await withTemp(async (dir) => {
      const sink = new DirectorySink(join(dir, "out"));
      const parts = await spoolParts(spool, ["x.tar.gz"]);
      const { record } = await sink.deliver(payload(parts));
      const path = record.parts[0]!.ref.location;
      assert.deepEqual(await Deno.readFile(path), new Uint8Array([0, 1, 2, 3, 255]));
      await assert.rejects(() => Deno.stat(parts[0]!.path), Deno.errors.NotFound);
      const names: string[] = [];
      for await (const e of Deno.readDir(join(dir, "out", "cluster-a", "2026-11-01"))) {
        names.push(e.name);
      }
      assert.deepEqual(names, ["x.tar.gz"]);
    });
  } finally {
    await Deno.remove(spool, { recursive: true });
  }
});
