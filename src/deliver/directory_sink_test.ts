import assert from "node:assert/strict";
import { join } from "node:path";
import { DirectorySink } from "./directory_sink.ts";

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "directory_sink_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function spoolParts(spool: string, names: string[]) {
  await Deno.mkdir(spool, { recursive: true });
  const parts = [];
  for (const [i, fileName] of names.entries()) {
    const path = join(spool, fileName);
    await Deno.writeFile(path, new Uint8Array([i, 1, 2, 3, 255]));
    parts.push({ path, fileName });
  }
  return parts;
}

Deno.test("directory sink: deliver moves parts into <root>/<cluster>/<day>/, then has() is true", async () => {
  await withTemp(async (dir) => {
    const root = join(dir, "out");
    const sink = new DirectorySink(root);
    const payload = {
      clusterId: "cluster-a",
      day: "2026-11-01",
      parts: await spoolParts(join(dir, "spool"), ["u-0.tar.gz", "u-1.tar.gz"]),
    };
    assert.equal(
      sink.pathFor("cluster-a", "2026-11-01", "u-0.tar.gz"),
      join(root, "cluster-a", "2026-11-01", "u-0.tar.gz"),
    );
    assert.equal(await sink.has(payload), false);
    const paths = await sink.deliver(payload);
    assert.deepEqual(paths, [
      join(root, "cluster-a", "2026-11-01", "u-0.tar.gz"),
      join(root, "cluster-a", "2026-11-01", "u-1.tar.gz"),
    ]);
    for (const [i, p] of paths.entries()) {
      assert.deepEqual(await Deno.readFile(p), new Uint8Array([i, 1, 2, 3, 255]));
    }
    for (const part of payload.parts) {
      await assert.rejects(() => Deno.stat(part.path), Deno.errors.NotFound, "moved, not copied");
    }
    assert.equal(await sink.has(payload), true);
    const names: string[] = [];
    for await (const e of Deno.readDir(join(root, "cluster-a", "2026-11-01"))) names.push(e.name);
    assert.deepEqual(names.sort(), ["u-0.tar.gz", "u-1.tar.gz"], "no temporary files left");
  });
});

Deno.test("directory sink: has() is false while any part is missing", async () => {
  await withTemp(async (dir) => {
    const sink = new DirectorySink(join(dir, "out"));
    const parts = await spoolParts(join(dir, "spool"), ["a.tar.gz", "b.tar.gz"]);
    await sink.deliver({ clusterId: "c", day: "2026-11-01", parts: parts.slice(0, 1) });
    assert.equal(await sink.has({ clusterId: "c", day: "2026-11-01", parts }), false);
    assert.equal(
      await sink.has({ clusterId: "c", day: "2026-11-01", parts: parts.slice(0, 1) }),
      true,
    );
    assert.equal(
      await sink.has({ clusterId: "c", day: "2026-11-02", parts: parts.slice(0, 1) }),
      false,
    );
    assert.equal(await sink.has({ clusterId: "c", day: "2026-11-01", parts: [] }), false);
  });
});

Deno.test("directory sink: re-delivery replaces an existing file", async () => {
  await withTemp(async (dir) => {
    const sink = new DirectorySink(join(dir, "out"));
    const first = await spoolParts(join(dir, "s1"), ["x.tar.gz"]);
    await sink.deliver({ clusterId: "c", day: "2026-11-01", parts: first });
    await Deno.mkdir(join(dir, "s2"));
    await Deno.writeTextFile(join(dir, "s2", "x.tar.gz"), "new");
    const [path] = await sink.deliver({
      clusterId: "c",
      day: "2026-11-01",
      parts: [{ path: join(dir, "s2", "x.tar.gz"), fileName: "x.tar.gz" }],
    });
    assert.equal(await Deno.readTextFile(path!), "new");
  });
});

Deno.test("directory sink: unsafe names are refused", async () => {
  await withTemp(async (dir) => {
    const sink = new DirectorySink(join(dir, "out"));
    for (const bad of ["../x.tar.gz", "a/b.tar.gz", "..", ""]) {
      assert.throws(
        () => sink.pathFor("c", "2026-11-01", bad),
        (err: unknown) => err instanceof RangeError && err.message.includes(JSON.stringify(bad)),
      );
    }
    assert.throws(() => sink.pathFor("../c", "2026-11-01", "x"), RangeError);
    assert.throws(() => sink.pathFor("c", "2026-13-01", "x"), RangeError);
    await assert.rejects(
      () =>
        sink.deliver({
          clusterId: "c",
          day: "2026-11-01",
          parts: [{ path: join(dir, "nope"), fileName: "../../escape" }],
        }),
      RangeError,
    );
    assert.throws(() => new DirectorySink(""), TypeError);
  });
});

Deno.test("directory sink: a missing spool file fails without leaving anything behind", async () => {
  await withTemp(async (dir) => {
    const sink = new DirectorySink(join(dir, "out"));
    await assert.rejects(
      () =>
        sink.deliver({
          clusterId: "c",
          day: "2026-11-01",
          parts: [{ path: join(dir, "missing.tar.gz"), fileName: "m.tar.gz" }],
        }),
      Deno.errors.NotFound,
    );
    const names: string[] = [];
    for await (const e of Deno.readDir(join(dir, "out", "c", "2026-11-01"))) names.push(e.name);
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
      const [path] = await sink.deliver({ clusterId: "c", day: "2026-11-01", parts });
      assert.deepEqual(await Deno.readFile(path!), new Uint8Array([0, 1, 2, 3, 255]));
      await assert.rejects(() => Deno.stat(parts[0]!.path), Deno.errors.NotFound);
      const names: string[] = [];
      for await (const e of Deno.readDir(join(dir, "out", "c", "2026-11-01"))) names.push(e.name);
      assert.deepEqual(names, ["x.tar.gz"]);
    });
  } finally {
    await Deno.remove(spool, { recursive: true });
  }
});

Deno.test("directory sink: hasUuid finds a single or a complete split payload", async () => {
  await withTemp(async (dir) => {
    const sink = new DirectorySink(join(dir, "out"));
    const spool = join(dir, "spool");
    await Deno.mkdir(spool);
    const uuid = "0b5c3f0e-5a3e-4d4e-8f4f-0c9d7e0b1a2c";
    assert.deepEqual(await sink.hasUuid("c1", "2026-11-01", uuid), []);
    const single = await spoolParts(spool, [`${uuid}.tar.gz`]);
    await sink.deliver({ clusterId: "c1", day: "2026-11-01", parts: single });
    assert.deepEqual(await sink.hasUuid("c1", "2026-11-01", uuid), [
      sink.pathFor("c1", "2026-11-01", `${uuid}.tar.gz`),
    ]);
    const split = await spoolParts(spool, [0, 1, 2].map((i) => `${uuid}-${i}.tar.gz`));
    const paths = await sink.deliver({ clusterId: "c1", day: "2026-11-02", parts: split });
    assert.deepEqual(await sink.hasUuid("c1", "2026-11-02", uuid), paths);
    assert.deepEqual(paths.map((p) => p.slice(-9)), ["-0.tar.gz", "-1.tar.gz", "-2.tar.gz"]);
    // Without part 0 (delivered last) the payload does not count as delivered.
    await Deno.remove(paths[0]!);
    assert.deepEqual(await sink.hasUuid("c1", "2026-11-02", uuid), []);
  });
});
