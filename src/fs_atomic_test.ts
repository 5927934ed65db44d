import assert from "node:assert/strict";
import { join } from "node:path";
import { readJsonFile, writeFileAtomic } from "./fs_atomic.ts";
import { BridgeError } from "./model.ts";

Deno.test("writeFileAtomic replaces a file whole and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fs_atomic_test_" });
  try {
    const path = join(dir, "sub", "a.json");
    await writeFileAtomic(path, '{"v":1}');
    await writeFileAtomic(path, '{"v":2}');
    assert.deepEqual(await readJsonFile(path), { v: 2 });
    const names: string[] = [];
    for await (const e of Deno.readDir(join(dir, "sub"))) names.push(e.name);
    assert.deepEqual(names, ["a.json"]);
    assert.equal(await readJsonFile(join(dir, "missing.json")), null);
    await Deno.writeTextFile(join(dir, "bad.json"), "{");
    await assert.rejects(
      () => readJsonFile(join(dir, "bad.json")),
      (e: unknown) =>
        e instanceof BridgeError && e.code === "state_corrupt" && e.message.includes("bad.json"),
    );
    await assert.rejects(
      () => writeFileAtomic(join(path, "under-a-file"), "x"),
      (e: unknown) => e instanceof BridgeError && e.code === "state_io",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
