/**
 * The `b64_identity` of an announcement (BRIDGE §3, contract §5.2): the
 * base64 of an x-rh-identity JSON document. koku only requires the key to be
 * present and forwards the value to ROS (`hccm.ros.events`), whose decoder
 * reads `identity.org_id`, `identity.type`, `identity.auth_type`,
 * `identity.internal.org_id` and `identity.system` (ros-ocp-backend,
 * `internal/types/identity`). The default document is what the platform's
 * ingress builds for an OpenShift cluster authenticated by its pull secret
 * (`uhc-auth`, a `System` identity carrying the cluster id).
 *
 * @module
 */

import { BridgeError } from "../model.ts";

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };
/** Any JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;

/**
 * The default identity of a cluster: a `System` identity with `uhc-auth`,
 * the org id at `identity.org_id` and `identity.internal.org_id`, the cluster
 * id at `identity.system.cluster_id`, and the cost-management entitlement.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildIdentity } from "./identity.ts";
 *
 * const id = buildIdentity("cluster-a", "1234567");
 * assert.equal(id.identity.org_id, "1234567");
 * assert.equal(id.identity.system.cluster_id, "cluster-a");
 * ```
 */
export function buildIdentity(clusterId: string, orgId: string): {
  identity: {
    org_id: string;
    internal: { org_id: string };
    type: "System";
    auth_type: "uhc-auth";
    system: { cluster_id: string };
  };
  entitlements: { cost_management: { is_entitled: true } };
} {
  return {
    identity: {
      org_id: orgId,
      internal: { org_id: orgId },
      type: "System",
      auth_type: "uhc-auth",
      system: { cluster_id: clusterId },
    },
    entitlements: { cost_management: { is_entitled: true } },
  };
}

/**
 * Base64 (standard alphabet, padded) of the UTF-8 bytes of `json`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeIdentity } from "./identity.ts";
 *
 * assert.equal(encodeIdentity('{"a":"é"}'), "eyJhIjoiw6kifQ==");
 * ```
 */
export function encodeIdentity(json: string): string {
  const bytes = new TextEncoder().encode(json);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/**
 * Checks a configured identity (the text of `--identity-file`): it must be a
 * JSON object. Returns the text unchanged (it is sent as is), or throws a
 * `BridgeError` with code `config` that does not quote the content.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { validateIdentityText } from "./identity.ts";
 *
 * assert.equal(validateIdentityText('{"identity":{}}'), '{"identity":{}}');
 * assert.throws(() => validateIdentityText("[1]"));
 * ```
 */
export function validateIdentityText(text: string): string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // V8's message quotes the text, which may hold a secret: do not pass it on.
    throw new BridgeError("config", "identity file is not valid JSON (its content is not shown)");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new BridgeError("config", "identity file must hold a JSON object");
  }
  return text;
}

/**
 * The `b64_identity` of one cluster: the configured identity text as is when
 * given (validated as a JSON object), else {@linkcode buildIdentity}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { identityFor } from "./identity.ts";
 *
 * const b64 = identityFor(null, "cluster-a", "42");
 * assert.equal(JSON.parse(atob(b64)).identity.internal.org_id, "42");
 * assert.equal(identityFor('{"x":1}', "cluster-a", "42"), btoa('{"x":1}'));
 * ```
 */
export function identityFor(configured: string | null, clusterId: string, orgId: string): string {
  if (configured !== null) return encodeIdentity(validateIdentityText(configured));
  return encodeIdentity(JSON.stringify(buildIdentity(clusterId, orgId)));
}
