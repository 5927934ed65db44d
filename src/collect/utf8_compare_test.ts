import assert from "node:assert/strict";
import { compareUtf8 } from "./utf8_compare.ts";

Deno.test("compareUtf8 orders like UTF-8 bytes (Go)", () => {
  const words = ["b", "a", "ab", "", "\uFF01", "\u{1F600}", "\u00e9", "Z"];
  const enc = new TextEncoder();
  const byBytes = [...words].sort((x, y) => {
    const a = enc.encode(x), b = enc.encode(y);
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
    return a.length - b.length;
  });
  assert.deepEqual([...words].sort(compareUtf8), byBytes);
  assert.equal(compareUtf8("x", "x"), 0);
});
