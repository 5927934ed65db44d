import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import {
  BRIDGE_VERSION,
  BridgeError,
  ConfigError,
  errorInfo,
  escapeControl,
  isClusterId,
  parseDay,
  showValue,
  toBridgeError,
} from "./model.ts";

Deno.test("the version is defined once, in deno.json", () => {
  assert.equal(BRIDGE_VERSION, denoJson.version);
});

Deno.test("rule 7: control characters from servers become visible escapes", () => {
  assert.equal(escapeControl("a\x1b[2Jb\rc\x07d\ne"), "a\\x1b[2Jb\\rc\\x07d\ne");
  assert.equal(escapeControl("x\ny", false), "x\\ny");
  assert.equal(escapeControl("\u202eevil"), "\\u202eevil");
  assert.equal(escapeControl("tab\tok ünï 日本"), "tab\tok ünï 日本");
  assert.equal(errorInfo(new Error("boom\x1b]0;title\x07")).message, "boom\\x1b]0;title\\x07");
});

Deno.test("rule 8: at most 100 characters of a value are shown", () => {
  assert.equal(showValue("x".repeat(200)), JSON.stringify("x".repeat(100) + "…"));
  assert.equal(showValue("a\x1bb"), '"a\\\\x1bb"');
  const e = new ConfigError("day", "2026-13-01", "must be a real date");
  assert.equal(e.message, 'day "2026-13-01" must be a real date');
  assert.equal(e.code, "config");
  assert.ok(e instanceof BridgeError);
});

Deno.test("typed errors: codes survive, disk full and aborts are recognised", () => {
  assert.equal(toBridgeError(new BridgeError("sink_s3", "x")).code, "sink_s3");
  const enospc = Object.assign(new Error("No space left on device (os error 28)"), {
    code: "ENOSPC",
  });
  assert.equal(toBridgeError(enospc).code, "disk_full");
  assert.equal(toBridgeError(new DOMException("stop", "AbortError")).code, "cancelled");
  assert.equal(toBridgeError("odd").code, "internal");
  assert.throws(() => parseDay("2023-02-29"), ConfigError);
  assert.equal(isClusterId("16b9a60d-0774-4102-9028-bd28d6c38ac2"), true);
  for (const bad of ["../x", ".hidden", "", "outbox", "quarantine", "a/b", "x".repeat(254)]) {
    assert.equal(isClusterId(bad), false, bad);
  }
  assert.equal(parseDay("2024-02-29").toISOString(), "2024-02-29T00:00:00.000Z");
});
