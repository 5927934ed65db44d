import assert from "node:assert/strict";
import { sourceFingerprint } from "./source_fingerprint.ts";

Deno.test("sourceFingerprint changes with any content, name or new file, not with mtime", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fingerprint_" });
  try {
    await Deno.mkdir(`${dir}/sub`);
    await Deno.writeTextFile(`${dir}/a.ts`, "export const a = 1;\n");
    await Deno.writeTextFile(`${dir}/sub/b.ts`, "export const b = 2;\n");
    const first = await sourceFingerprint(dir);
    assert.match(first, /^[0-9a-f]{16}$/);

    await Deno.writeTextFile(`${dir}/a.ts`, "export const a = 1;\n"); // same bytes, new mtime
    assert.equal(await sourceFingerprint(dir), first);

    await Deno.writeTextFile(`${dir}/sub/b.ts`, "export const b = 3;\n");
    const changed = await sourceFingerprint(dir);
    assert.notEqual(changed, first);

    await Deno.rename(`${dir}/sub/b.ts`, `${dir}/sub/c.ts`);
    const renamed = await sourceFingerprint(dir);
    assert.notEqual(renamed, changed);

    await Deno.writeTextFile(`${dir}/sub/d.ts`, "");
    assert.notEqual(await sourceFingerprint(dir), renamed);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
