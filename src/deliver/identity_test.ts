import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { BridgeError } from "../model.ts";
import { buildIdentity, encodeIdentity, identityFor, validateIdentityText } from "./identity.ts";

Deno.test("buildIdentity: the uhc-auth System identity koku/ROS read", () => {
  assert.deepEqual(buildIdentity("c-1", "org9"), {
    identity: {
      org_id: "org9",
      internal: { org_id: "org9" },
      type: "System",
      auth_type: "uhc-auth",
      system: { cluster_id: "c-1" },
    },
    entitlements: { cost_management: { is_entitled: true } },
  });
});

Deno.test("encodeIdentity: standard padded base64 of UTF-8, same as Node's Buffer", () => {
  for (const text of ["", "a", "ab", "abc", '{"org":"é✓😀"}', "x".repeat(100_000)]) {
    assert.equal(encodeIdentity(text), Buffer.from(text, "utf8").toString("base64"));
  }
});

Deno.test("identityFor: default is decodable JSON; a configured one is sent byte for byte", () => {
  const b64 = identityFor(null, "c-1", "org9");
  assert.deepEqual(
    JSON.parse(new TextDecoder().decode(Buffer.from(b64, "base64"))),
    buildIdentity("c-1", "org9"),
  );
  const configured = '{ "identity": {"org_id": "7", "type": "User"} }\n';
  assert.equal(
    Buffer.from(identityFor(configured, "c-1", "org9"), "base64").toString("utf8"),
    configured,
  );
});

Deno.test("validateIdentityText: only a JSON object; the message never quotes the content", () => {
  for (const bad of ["", "secret-token", "[]", "null", '"x"', "12", "{"]) {
    assert.throws(() => validateIdentityText(bad), (e: unknown) => {
      assert.ok(e instanceof BridgeError);
      assert.equal(e.code, "config");
      assert.ok(!e.message.includes("secret-token"));
      return true;
    });
  }
  assert.equal(validateIdentityText("{}"), "{}");
});
