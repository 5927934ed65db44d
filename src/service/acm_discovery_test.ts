/**
 * The `acm` discovery source against a local fake Kubernetes API server.
 *
 * No real apiserver (nor ACM, nor its ManagedCluster CRD) can run in this test
 * environment, so `Deno.serve` on 127.0.0.1 plays one: it serves
 * `GET /apis/cluster.open-cluster-management.io/v1/managedclusters` with
 * `limit`/`continue` paging, checks the bearer token, and answers with JSON
 * shaped like a real hub's — `ManagedClusterList` objects whose items carry
 * the labels ACM sets (`cloud`, `vendor`, `clusterID`, `name`,
 * `openshiftVersion` …), annotations, `spec.hubAcceptsClient` and
 * `managedClusterClientConfigs`, `status.clusterClaims` (`id.k8s.io`,
 * `version.openshift.io`, `platform.open-cluster-management.io` …) and
 * conditions, and Kubernetes `Status` objects for errors.
 */
import assert from "node:assert/strict";
import { BridgeError } from "../model.ts";
import { ACM_RBAC, acmSource, type AcmSourceOptions } from "./acm_discovery.ts";
import { discoverClusters, parseGlobFilter, staticSource } from "./cluster_discovery.ts";

const TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6InNhLXRva2VuIn0.fake-service-account-token";
const LIST_PATH = "/apis/cluster.open-cluster-management.io/v1/managedclusters";

interface ClusterFixture {
  name: string;
  /** The `id.k8s.io` claim; absent: a cluster that has not joined yet (no claims at all). */
  id?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Claims without `id.k8s.io` (a joined cluster that does not report it). */
  noIdClaim?: boolean;
}

/** A `ManagedCluster` as a real ACM 2.x hub returns it. */
function managedCluster(f: ClusterFixture): Record<string, unknown> {
  const joined = f.id !== undefined || f.noIdClaim === true;
  const claims = [
    ...(f.id !== undefined ? [{ name: "id.k8s.io", value: f.id }] : []),
    ...(f.id !== undefined ? [{ name: "id.openshift.io", value: f.id }] : []),
    { name: "kubeversion.open-cluster-management.io", value: "v1.28.7+f1b5f6c" },
    { name: "platform.open-cluster-management.io", value: "AWS" },
    { name: "product.open-cluster-management.io", value: "OpenShift" },
    { name: "region.open-cluster-management.io", value: "us-east-1" },
    { name: "version.openshift.io", value: "4.15.3" },
    {
      name: "consoleurl.cluster.open-cluster-management.io",
      value: `https://console-openshift-console.apps.${f.name}.example.com`,
    },
  ];
  const now = "2026-10-30T08:15:42Z";
  return {
    apiVersion: "cluster.open-cluster-management.io/v1",
    kind: "ManagedCluster",
    metadata: {
      name: f.name,
      uid: crypto.randomUUID(),
      resourceVersion: "48213977",
      generation: 3,
      creationTimestamp: "2026-09-01T10:00:00Z",
      labels: {
        cloud: "Amazon",
        "cluster.open-cluster-management.io/clusterset": "default",
        ...(f.id !== undefined ? { clusterID: f.id } : {}),
        "feature.open-cluster-management.io/addon-work-manager": "available",
        name: f.name,
        openshiftVersion: "4.15.3",
        "openshiftVersion-major": "4",
        "openshiftVersion-major-minor": "4.15",
        vendor: "OpenShift",
        ...f.labels,
      },
      annotations: {
        "open-cluster-management/created-via": "other",
        ...f.annotations,
      },
      finalizers: [
        "cluster.open-cluster-management.io/api-resource-cleanup",
        "open-cluster-management.io/managedclusterrole",
      ],
      managedFields: [{
        apiVersion: "cluster.open-cluster-management.io/v1",
        fieldsType: "FieldsV1",
        fieldsV1: { "f:spec": { "f:hubAcceptsClient": {} } },
        manager: "registration",
        operation: "Update",
        time: now,
      }],
    },
    spec: {
      hubAcceptsClient: true,
      leaseDurationSeconds: 60,
      managedClusterClientConfigs: [{
        url: `https://api.${f.name}.example.com:6443`,
        caBundle: "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=",
      }],
    },
    status: joined
      ? {
        allocatable: { cpu: "22500m", memory: "94Gi" },
        capacity: { cpu: "24", memory: "96Gi" },
        clusterClaims: claims,
        conditions: [
          {
            type: "HubAcceptedManagedCluster",
            status: "True",
            reason: "HubClusterAdminAccepted",
            message: "Accepted by hub cluster admin",
            lastTransitionTime: now,
          },
          {
            type: "ManagedClusterJoined",
            status: "True",
            reason: "ManagedClusterJoined",
            message: "Managed cluster joined",
            lastTransitionTime: now,
          },
          {
            type: "ManagedClusterConditionAvailable",
            status: "True",
            reason: "ManagedClusterAvailable",
            message: "Managed cluster is available",
            lastTransitionTime: now,
          },
        ],
        version: { kubernetes: "v1.28.7+f1b5f6c" },
      }
      : {
        conditions: [{
          type: "HubAcceptedManagedCluster",
          status: "True",
          reason: "HubClusterAdminAccepted",
          message: "Accepted by hub cluster admin",
          lastTransitionTime: now,
        }],
        version: {},
      },
  };
}

/** A Kubernetes `Status` error answer. */
function status(code: number, reason: string, message: string): Response {
  return new Response(
    JSON.stringify({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason,
      details: { group: "cluster.open-cluster-management.io", kind: "managedclusters" },
      code,
    }),
    { status: code, headers: { "Content-Type": "application/json" } },
  );
}

interface Seen {
  path: string;
  params: URLSearchParams;
  authorization: string | null;
}

/**
 * The fake API server: lists `clusters` in pages of `limit` (the continue token
 * is the offset, as opaque text); `answer` may replace the answer to request `n`.
 */
async function withApi(
  clusters: ClusterFixture[],
  fn: (url: string, seen: Seen[]) => Promise<void>,
  answer?: (n: number, seen: Seen) => Response | Promise<Response> | undefined,
  tls?: { cert: string; key: string },
): Promise<void> {
  const seen: Seen[] = [];
  const listen = { hostname: "127.0.0.1", port: 0, onListen() {}, ...tls };
  const server = Deno.serve(listen, async (req) => {
    const url = new URL(req.url);
    const s = {
      path: url.pathname,
      params: url.searchParams,
      authorization: req.headers.get("authorization"),
    };
    seen.push(s);
    const replaced = await answer?.(seen.length, s);
    if (replaced !== undefined) return replaced;
    if (s.authorization !== `Bearer ${TOKEN}`) return status(401, "Unauthorized", "Unauthorized");
    if (url.pathname !== LIST_PATH) {
      return status(404, "NotFound", "the server could not find the requested resource");
    }
    const limit = Number(url.searchParams.get("limit") ?? "0") || clusters.length;
    const cont = url.searchParams.get("continue");
    const from = cont === null ? 0 : Number(atob(cont));
    const to = Math.min(clusters.length, from + limit);
    const more = to < clusters.length;
    return Response.json({
      apiVersion: "cluster.open-cluster-management.io/v1",
      kind: "ManagedClusterList",
      metadata: {
        resourceVersion: "48213990",
        ...(more ? { continue: btoa(String(to)), remainingItemCount: clusters.length - to } : {}),
      },
      items: clusters.slice(from, to).map(managedCluster),
    });
  });
  try {
    await fn(`${tls ? "https" : "http"}://127.0.0.1:${server.addr.port}`, seen);
  } finally {
    await server.shutdown();
  }
}

const ID_EAST = "16b9a60d-0774-4102-9028-bd28d6c38ac2";
const ID_WEST = "5d3c7b0e-2f6a-4c1e-9b8d-3a4f5e6d7c8b";
const ID_HUB = "a0c1e2f3-4b5c-4d6e-8f70-8192a3b4c5d6";
const ID_EU = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b";

const FLEET: ClusterFixture[] = [
  { name: "local-cluster", id: ID_HUB, labels: { "local-cluster": "true" } },
  { name: "prod-east", id: ID_EAST, labels: { "cost.example.com/org-id": "7654321" } },
  {
    name: "prod-west",
    id: ID_WEST,
    annotations: { "cost.example.com/org-id": "1112223" },
  },
  {
    name: "prod-eu",
    id: ID_EU,
    labels: { "cost.example.com/org-id": "4445556" },
    annotations: { "cost.example.com/org-id": "9999999" },
  },
  { name: "pending-import" }, // created, never joined: no claims at all
  { name: "eks-cluster", noIdClaim: true, labels: { vendor: "EKS", cloud: "Amazon" } },
];

function options(url: string, more: Partial<AcmSourceOptions> = {}): AcmSourceOptions {
  return {
    apiUrl: url,
    token: TOKEN,
    orgKey: "cost.example.com/org-id",
    defaultOrg: "1000001",
    retryDelayMs: 0,
    ...more,
  };
}

Deno.test("acm: maps ManagedClusters (id claim, name, org from label/annotation/default) and skips those without a claim", async () => {
  await withApi(FLEET, async (url, seen) => {
    const source = acmSource(options(`${url}/`));
    assert.equal(source.kind, "acm");
    const result = await source.discover();
    assert.deepEqual(result.clusters, [
      // The hub manages itself as local-cluster: a normal ManagedCluster.
      { clusterId: ID_HUB, name: "local-cluster", orgId: "1000001", source: "acm" },
      { clusterId: ID_EAST, name: "prod-east", orgId: "7654321", source: "acm" }, // label
      { clusterId: ID_WEST, name: "prod-west", orgId: "1112223", source: "acm" }, // annotation
      { clusterId: ID_EU, name: "prod-eu", orgId: "4445556", source: "acm" }, // label beats annotation
    ]);
    assert.deepEqual(result.skipped, [
      { name: "pending-import", reason: "has no id.k8s.io cluster claim" },
      { name: "eks-cluster", reason: "has no id.k8s.io cluster claim" },
    ]);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.path, LIST_PATH);
    assert.equal(seen[0]!.params.get("limit"), "500");
    assert.equal(seen[0]!.params.get("continue"), null);
    assert.equal(seen[0]!.authorization, `Bearer ${TOKEN}`);
  });
});

Deno.test("acm: without orgKey or defaultOrg, clusters carry no org id; an API path prefix is kept", async () => {
  await withApi(FLEET.slice(0, 2), async (url) => {
    const result = await acmSource({ apiUrl: url, token: TOKEN }).discover();
    assert.deepEqual(result.clusters, [
      { clusterId: ID_HUB, name: "local-cluster", source: "acm" },
      { clusterId: ID_EAST, name: "prod-east", source: "acm" },
    ]);
  });
  await withApi([], async (url, seen) => {
    await acmSource({ apiUrl: `${url}/k8s/proxy`, token: TOKEN }).discover().catch(() => {});
    assert.equal(seen[0]!.path, `/k8s/proxy${LIST_PATH}`);
  }, () => new Response("{}", { status: 404 }));
});

Deno.test("acm: follows metadata.continue across pages", async () => {
  const many: ClusterFixture[] = Array.from({ length: 7 }, (_, i) => ({
    name: `cluster-${i}`,
    id: `00000000-0000-4000-8000-00000000000${i}`,
  }));
  await withApi(many, async (url, seen) => {
    const result = await acmSource(options(url, { pageSize: 3 })).discover();
    assert.deepEqual(result.clusters.map((c) => c.name), many.map((c) => c.name));
    assert.deepEqual(seen.map((s) => [s.params.get("limit"), s.params.get("continue")]), [
      ["3", null],
      ["3", btoa("3")],
      ["3", btoa("6")],
    ]);
  });
});

Deno.test("acm: an expired continue token (410) restarts the listing once", async () => {
  const many: ClusterFixture[] = Array.from({ length: 4 }, (_, i) => ({
    name: `c-${i}`,
    id: `00000000-0000-4000-8000-00000000000${i}`,
  }));
  await withApi(many, async (url, seen) => {
    const result = await acmSource(options(url, { pageSize: 2 })).discover();
    assert.deepEqual(result.clusters.map((c) => c.name), ["c-0", "c-1", "c-2", "c-3"]);
    assert.equal(seen.length, 4); // page 1, 410, page 1 again, page 2
  }, (n) =>
    n === 2
      ? status(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result.",
      )
      : undefined);
});

Deno.test("acm: 401 and 403 name the RBAC needed, never the token, and are not retried", async () => {
  await withApi(FLEET, async (url, seen) => {
    await assert.rejects(acmSource(options(url, { token: "wrong-token" })).discover(), (e) => {
      assert.ok(e instanceof BridgeError);
      assert.equal(e.code, "discovery_failed");
      assert.match(e.message, /HTTP 401.*did not accept the service account token/);
      assert.ok(e.message.includes(ACM_RBAC), e.message);
      assert.ok(!e.message.includes("wrong-token"));
      return true;
    });
    assert.equal(seen.length, 1);
  });
  const forbidden =
    'managedclusters.cluster.open-cluster-management.io is forbidden: User "system:serviceaccount:' +
    'openshift-cost:thanos-bridge" cannot list resource "managedclusters" in API group ' +
    `"cluster.open-cluster-management.io" at the cluster scope (token ${TOKEN})`;
  await withApi(FLEET, async (url, seen) => {
    await assert.rejects(acmSource(options(url)).discover(), (e) => {
      assert.ok(e instanceof BridgeError);
      assert.equal(e.code, "discovery_failed");
      assert.match(e.message, /HTTP 403.*cannot list resource "managedclusters"/);
      assert.match(
        e.message,
        /Grant the bridge's service account get\/list managedclusters\.cluster\.open-cluster-management\.io/,
      );
      assert.ok(!e.message.includes(TOKEN), "the token is redacted from the server's text");
      assert.match(e.message, /\[redacted\]/);
      return true;
    });
    assert.equal(seen.length, 1);
  }, () => status(403, "Forbidden", forbidden));
});

Deno.test("acm: 500 is retried, then fails with the server's text; 500 then 200 succeeds", async () => {
  await withApi(FLEET, async (url, seen) => {
    await assert.rejects(acmSource(options(url, { maxAttempts: 3 })).discover(), (e) => {
      assert.ok(e instanceof BridgeError);
      assert.equal(e.code, "discovery_failed");
      assert.match(
        e.message,
        /page 1\) failed after 3 attempts: HTTP 500.*etcdserver: request timed out/,
      );
      return true;
    });
    assert.equal(seen.length, 3);
  }, () => status(500, "InternalError", "etcdserver: request timed out"));
  await withApi(FLEET, async (url, seen) => {
    const result = await acmSource(options(url)).discover();
    assert.equal(result.clusters.length, 4);
    assert.equal(seen.length, 2);
  }, (n) => n === 1 ? new Response("upstream connect error", { status: 503 }) : undefined);
});

Deno.test("acm: an answer that is not JSON, or not a list, fails at once", async () => {
  for (
    const [body, text] of [
      ['{"kind":"ManagedClusterList","items":[{"metadata":', /answer is not JSON/],
      ['{"kind":"Status","status":"Success"}', /not a ManagedClusterList/],
      ["<html>OpenShift login</html>", /answer is not JSON/],
    ] as const
  ) {
    await withApi(FLEET, async (url, seen) => {
      await assert.rejects(
        acmSource(options(url)).discover(),
        (e) => e instanceof BridgeError && e.code === "discovery_failed" && text.test(e.message),
      );
      assert.equal(seen.length, 1);
    }, () => new Response(body, { headers: { "Content-Type": "application/json" } }));
  }
  await withApi(FLEET, async (url) => {
    await assert.rejects(
      acmSource(options(url, { maxPageBytes: 1024 })).discover(),
      (e) => e instanceof BridgeError && /larger than 1024 bytes/.test(e.message),
    );
  });
});

Deno.test("acm: a page that never answers times out (retried); an abort is cancelled", async () => {
  const hang = new AbortController();
  await withApi(
    FLEET,
    async (url, seen) => {
      await assert.rejects(
        acmSource(options(url, { timeoutMs: 100, maxAttempts: 2 })).discover(),
        (e) =>
          e instanceof BridgeError && e.code === "discovery_failed" &&
          /after 2 attempts: no answer within 100 ms/.test(e.message),
      );
      assert.equal(seen.length, 2);
      const controller = new AbortController();
      const call = acmSource(options(url)).discover(controller.signal);
      setTimeout(() => controller.abort(new Error("shutting down")), 50);
      await assert.rejects(
        call,
        (e) =>
          e instanceof BridgeError && e.code === "cancelled" && /shutting down/.test(e.message),
      );
      hang.abort();
    },
    () =>
      new Promise<Response>((resolve) =>
        hang.signal.addEventListener("abort", () => resolve(new Response("{}")), { once: true })
      ),
  );
});

Deno.test("acm: bad options are config errors, a CA that is not a certificate too", async () => {
  for (
    const bad of [
      { apiUrl: "not a url" },
      { apiUrl: "ftp://hub" },
      { apiUrl: "https://user:pw@hub" },
      { token: "" },
      { token: "a\nb" },
      { pageSize: 0 },
      { timeoutMs: 1.5 },
    ]
  ) {
    assert.throws(
      () => acmSource(options("https://kubernetes.default.svc", bad)),
      (e) => e instanceof BridgeError && e.code === "config",
      JSON.stringify(bad),
    );
  }
  // A PEM that is not a certificate fails at discover time, as a config error.
  await assert.rejects(
    acmSource(options("https://127.0.0.1:1", { caCert: "-----BEGIN CERTIFICATE-----\nnope\n" }))
      .discover(),
    (e) => e instanceof BridgeError && e.code === "config" && /CA certificate/.test(e.message),
  );
});

Deno.test({
  name: "acm: an API server certificate from a private CA is trusted only with caCert",
  ignore: !(await hasOpenssl()), // skipped: openssl is not on PATH to make a throwaway certificate
  async fn() {
    const tls = await selfSigned();
    await withApi(
      FLEET,
      async (url) => {
        const result = await acmSource(options(url, { caCert: tls.cert })).discover();
        assert.equal(result.clusters.length, 4);
        await assert.rejects(
          acmSource(options(url, { maxAttempts: 1 })).discover(),
          (e) =>
            e instanceof BridgeError && e.code === "discovery_failed" &&
            /failed after 1 attempt: network error/.test(e.message),
        );
      },
      undefined,
      tls,
    );
  },
});

Deno.test("acm with static through discoverClusters: merged, filtered, skips reported", async () => {
  await withApi(FLEET, async (url) => {
    const result = await discoverClusters(
      [
        staticSource([{ clusterId: ID_EAST, name: "east-from-config" }]),
        acmSource(options(url)),
      ],
      parseGlobFilter([], ["local-cluster"]),
    );
    assert.deepEqual(
      result.clusters.map((c) => [c.clusterId, c.name, c.orgId, c.sources.join("+")]),
      [
        [ID_EAST, "east-from-config", "7654321", "static+acm"],
        [ID_WEST, "prod-west", "1112223", "acm"],
        [ID_EU, "prod-eu", "4445556", "acm"],
      ],
    );
    assert.deepEqual(result.excluded.map((c) => c.name), ["local-cluster"]);
    assert.deepEqual(result.skipped.map((s) => [s.source, s.name]), [
      ["acm", "pending-import"],
      ["acm", "eks-cluster"],
    ]);
    assert.deepEqual(result.sources, [{ kind: "static", found: 1 }, { kind: "acm", found: 4 }]);
  });
});

async function hasOpenssl(): Promise<boolean> {
  try {
    return (await new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .output()).success;
  } catch {
    return false;
  }
}

/** A throwaway self-signed server certificate for 127.0.0.1 (also its own trust anchor). */
async function selfSigned(): Promise<{ cert: string; key: string }> {
  const dir = await Deno.makeTempDir({ prefix: "acm_tls_" });
  try {
    const out = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=fake-apiserver",
        "-days",
        "1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=serverAuth",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`openssl failed: ${new TextDecoder().decode(out.stderr)}`);
    return {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
