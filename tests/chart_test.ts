/**
 * The Helm chart (charts/thanos-bridge): `helm lint --strict` and
 * `helm template` for the default values and every discovery × sink
 * combination, then the invariants on the parsed objects: one replica, a pod
 * that fits OpenShift's restricted-v2 (non-root, no fixed UID, no privilege
 * escalation, all capabilities dropped, read-only root, RuntimeDefault
 * seccomp), probes on /healthz and /readyz, secrets only by reference (no
 * Secret object, no plain env value, config file holds only file paths), and
 * the managedclusters ClusterRole only with acm discovery. The alert rules
 * pass `promtool check rules` and name only metrics the bridge exports.
 *
 * Needs helm (`.ci/install_helm.sh`) and promtool; fails without them.
 */

import assert from "node:assert/strict";
import YAML from "yaml";
import { ENV_VARS, RUN_KEYS } from "../src/config.ts";
import type { Config } from "../src/config.ts";
import { fileKeyOf } from "../src/config_layers.ts";
import { BridgeMetrics } from "../src/service/metrics.ts";
import { CHART, helm, helmBin, type K8sObject, render } from "./support/helm.ts";

const NS = "cost-management";
const SECRET_WORD = /password|secret|token|credential|access[-_]?key/i;

/** Discovery variants (static, thanos, acm, all three). */
const DISCOVERY: Record<string, unknown> = {
  static: {
    sources: ["static"],
    clusters: ["1b2c-cluster-a", { cluster_id: "9f8e-cluster-b", name: "b", org_id: "42" }],
  },
  thanos: { sources: ["thanos"], exclude: ["local-cluster"], window: "12h" },
  acm: { sources: ["acm"], acm: { orgKey: "cost-management.openshift.io/org-id" } },
  combined: {
    sources: ["static", "thanos", "acm"],
    clusters: ["1b2c-cluster-a"],
    include: ["prod-*"],
  },
};

/** Sink variants, each with its secrets by reference. */
const SINKS: Record<string, unknown> = {
  dir: { kind: "dir" },
  "s3-kafka": {
    kind: "s3-kafka",
    s3: {
      endpoint: "https://s3.example.com",
      bucket: "koku",
      pathStyle: true,
      credentials: { existingSecret: "bridge-s3", sessionTokenKey: "AWS_SESSION_TOKEN" },
    },
    kafka: {
      brokers: ["kafka-0:9093", "kafka-1:9093"],
      tls: true,
      ca: { configMap: "kafka-ca" },
      sasl: { mechanism: "scram-sha-512", username: "bridge", existingSecret: "bridge-kafka" },
    },
  },
  ingress: {
    kind: "ingress",
    ingress: { url: "https://console.example.com", token: { existingSecret: "bridge-ingress" } },
  },
};

function combo(discovery: string, sink: string): Record<string, unknown> {
  return {
    discovery: DISCOVERY[discovery],
    sink: SINKS[sink],
    org: { id: "1234567" },
    thanos: { token: { existingSecret: "bridge-thanos" }, ca: { configMap: "service-ca" } },
    serve: { apiToken: { existingSecret: "bridge-api" } },
    persistence: { enabled: true },
    serviceMonitor: { enabled: true },
    prometheusRule: { enabled: true },
    extraConfig: { "rate-window": "15m", concurrency: 8 },
    extraEnv: [{ name: "DENO_V8_FLAGS", value: "--max-old-space-size=1024" }],
  };
}

const COMBOS = Object.keys(DISCOVERY).flatMap((d) =>
  Object.keys(SINKS).map((s) => ({ name: `${d} × ${s}`, discovery: d, sink: s }))
);

/** Config-file keys the program accepts (flag names without "--", no run-only keys). */
const FILE_KEYS = new Set(
  (Object.keys(ENV_VARS) as (keyof Config)[])
    .filter((k) => !RUN_KEYS.has(k) && k !== "config")
    .map(fileKeyOf),
);

function only(docs: K8sObject[], kind: string): K8sObject {
  const found = docs.filter((d) => d.kind === kind);
  assert.equal(found.length, 1, `one ${kind}, got ${found.length}`);
  return found[0]!;
}

function configOf(docs: K8sObject[]): Record<string, unknown> {
  const cm = only(docs, "ConfigMap");
  return YAML.parse(cm.data["config.yaml"]);
}

/** Runs `fn` over `items` with at most `n` at a time. */
async function pool<T, R>(items: readonly T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/** Every invariant that holds for any values a user may give (within the schema). */
function checkInvariants(docs: K8sObject[], acm: boolean, label: string): void {
  const where = (what: string) => `${label}: ${what}`;
  for (const d of docs) {
    assert.notEqual(d.kind, "Secret", where("the chart renders no Secret"));
    if (d.metadata?.namespace !== undefined) assert.equal(d.metadata.namespace, NS, where("ns"));
  }

  // --- Deployment --------------------------------------------------------------------------------
  const dep = only(docs, "Deployment");
  assert.equal(dep.spec.replicas, 1, where("one replica"));
  assert.equal(dep.spec.strategy.type, "Recreate", where("never two writers of one state"));
  const pod = dep.spec.template.spec;
  assert.equal(pod.containers.length, 1, where("one container"));
  const c = pod.containers[0];
  const psc = pod.securityContext ?? {};
  const sc = c.securityContext ?? {};
  assert.equal(psc.runAsNonRoot, true, where("pod runAsNonRoot"));
  assert.equal(sc.runAsNonRoot, true, where("container runAsNonRoot"));
  assert.equal(psc.runAsUser, undefined, where("no fixed pod runAsUser (restricted-v2 sets it)"));
  assert.equal(sc.runAsUser, undefined, where("no fixed container runAsUser"));
  assert.equal(sc.allowPrivilegeEscalation, false, where("allowPrivilegeEscalation false"));
  assert.notEqual(sc.privileged, true, where("not privileged"));
  assert.deepEqual(sc.capabilities?.drop, ["ALL"], where("capabilities drop ALL"));
  assert.equal(sc.capabilities?.add, undefined, where("no capability added"));
  assert.equal(sc.readOnlyRootFilesystem, true, where("read-only root filesystem"));
  assert.equal(
    (sc.seccompProfile ?? psc.seccompProfile)?.type,
    "RuntimeDefault",
    where("seccomp RuntimeDefault"),
  );
  assert.equal(pod.hostNetwork, undefined, where("no host network"));
  for (const v of pod.volumes) assert.equal(v.hostPath, undefined, where("no hostPath volume"));

  assert.deepEqual(c.args, ["serve", "--config", "/etc/thanos-bridge/config.yaml"], where("args"));
  const port = c.ports.find((p: K8sObject) => p.name === "http");
  assert.equal(port?.containerPort, 8080, where("http port 8080"));
  assert.equal(c.livenessProbe?.httpGet?.path, "/healthz", where("liveness /healthz"));
  assert.equal(c.readinessProbe?.httpGet?.path, "/readyz", where("readiness /readyz"));
  assert.equal(c.startupProbe?.httpGet?.path, "/healthz", where("startup /healthz"));
  for (const p of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
    assert.equal(p.httpGet.port, "http", where("probes on the http port"));
  }
  assert.ok(c.resources?.limits?.memory, where("a memory limit"));
  assert.ok(c.resources?.requests?.cpu, where("a cpu request"));

  // --- secrets only by reference ------------------------------------------------------------------
  for (const e of c.env ?? []) {
    if ("value" in e) {
      assert.ok(!SECRET_WORD.test(e.name), where(`env ${e.name} holds a plain value`));
    } else {
      assert.ok(e.valueFrom?.secretKeyRef || e.valueFrom?.configMapKeyRef, where(`env ${e.name}`));
    }
  }
  const mounts = new Map<string, K8sObject>(
    c.volumeMounts.map((m: K8sObject) => [m.name, m] as const),
  );
  const volumes = new Map<string, K8sObject>(pod.volumes.map((v: K8sObject) => [v.name, v]));
  for (const m of c.volumeMounts) {
    assert.ok(volumes.has(m.name), where(`mount ${m.name} has a volume`));
  }
  for (const v of pod.volumes) {
    if (v.secret) {
      assert.equal(mounts.get(v.name)?.readOnly, true, where(`secret ${v.name} mounted read-only`));
    }
  }

  // --- the config file ----------------------------------------------------------------------------
  const cfg = configOf(docs);
  for (const [key, value] of Object.entries(cfg)) {
    assert.ok(FILE_KEYS.has(key), where(`config key "${key}" is a setting of the program`));
    if (SECRET_WORD.test(key)) {
      assert.ok(key.endsWith("-file"), where(`config key ${key} is a file, not a secret value`));
    }
    if (key.endsWith("-file") && key !== "acm-token-file" && key !== "acm-ca-file") {
      const path = String(value);
      const mount = c.volumeMounts.find((m: K8sObject) => path.startsWith(`${m.mountPath}/`));
      assert.ok(mount, where(`${key} ${path} is inside a mounted volume`));
      if (SECRET_WORD.test(key)) {
        assert.ok(volumes.get(mount.name)?.secret, where(`${key} comes from a Secret volume`));
      }
    }
  }
  assert.equal(cfg.listen, "0.0.0.0:8080", where("listen"));
  assert.match(String(cfg.state), /^\/var\/lib\/thanos-bridge\//, where("state on the volume"));
  const data = c.volumeMounts.find((m: K8sObject) => m.mountPath === "/var/lib/thanos-bridge");
  assert.ok(data && !data.readOnly, where("the state volume is writable"));

  // --- RBAC and the service account token: only with acm ------------------------------------------
  const roles = docs.filter((d) => /^(Cluster)?Role(Binding)?$/.test(d.kind));
  if (acm) {
    const role = only(docs, "ClusterRole");
    const binding = only(docs, "ClusterRoleBinding");
    assert.deepEqual(role.rules, [{
      apiGroups: ["cluster.open-cluster-management.io"],
      resources: ["managedclusters"],
      verbs: ["get", "list"],
    }], where("read managedclusters, nothing else"));
    assert.equal(binding.roleRef.name, role.metadata.name, where("binding names the role"));
    assert.equal(binding.subjects[0].name, pod.serviceAccountName, where("bound to the pod's SA"));
    assert.equal(roles.length, 2, where("no other RBAC"));
    assert.equal(pod.automountServiceAccountToken, true, where("acm needs the SA token"));
  } else {
    assert.equal(roles.length, 0, where("no RBAC without acm"));
    assert.equal(pod.automountServiceAccountToken, false, where("no SA token without acm"));
  }
}

Deno.test("chart: helm is available (CI installs it with .ci/install_helm.sh)", async () => {
  const bin = await helmBin();
  assert.ok(bin.length > 0);
});

Deno.test("chart: defaults lint and render, and keep every invariant", async () => {
  const lint = await helm("lint", {});
  assert.equal(lint.code, 0, `helm lint:\n${lint.stdout}\n${lint.stderr}`);
  const docs = await render({}, { namespace: NS });
  checkInvariants(docs, false, "defaults");
  assert.deepEqual(
    docs.map((d) => d.kind).sort(),
    ["ConfigMap", "Deployment", "NetworkPolicy", "Service", "ServiceAccount"],
  );
  const cfg = configOf(docs);
  assert.equal(
    cfg["thanos-url"],
    "http://observability-thanos-query.open-cluster-management-observability.svc:9090",
  );
  assert.deepEqual(cfg.discovery, ["static"]);
  assert.equal(cfg.sink, "dir");
  assert.equal(cfg.out, "/var/lib/thanos-bridge/out");
  assert.equal(cfg.schedule, "15 * * * *");
  const pod = only(docs, "Deployment").spec.template.spec;
  assert.equal(pod.securityContext.fsGroup, 65532, "off OpenShift: fsGroup = the image's user");
  assert.ok(pod.volumes.find((v: K8sObject) => v.name === "data").emptyDir, "emptyDir by default");
  assert.equal(only(docs, "Service").spec.publishNotReadyAddresses, true);
});

Deno.test("chart: every discovery × sink combination lints, renders and keeps the invariants", async () => {
  const results = await pool(COMBOS, 4, async (c) => {
    const values = combo(c.discovery, c.sink);
    const [lint, docs] = await Promise.all([
      helm("lint", values, { namespace: NS }),
      render(values, { namespace: NS }),
    ]);
    return { c, lint, docs };
  });
  for (const { c, lint, docs } of results) {
    assert.equal(lint.code, 0, `${c.name}: helm lint:\n${lint.stdout}\n${lint.stderr}`);
    const acm = c.discovery === "acm" || c.discovery === "combined";
    checkInvariants(docs, acm, c.name);
    const cfg = configOf(docs);
    assert.equal(cfg.sink, c.sink, c.name);
    assert.deepEqual(cfg.discovery, (DISCOVERY[c.discovery] as { sources: string[] }).sources);
    assert.equal(cfg["token-file"], "/etc/thanos-bridge/secrets/thanos-token/token", c.name);
    assert.equal(cfg["api-token-file"], "/etc/thanos-bridge/secrets/api-token/token", c.name);
    assert.equal(cfg["ca-file"], "/etc/thanos-bridge/files/thanos-ca/ca.crt", c.name);
    assert.equal(cfg["acm-api-url"] !== undefined, acm, `${c.name}: acm keys only with acm`);
    assert.equal(
      cfg["discovery-match"] !== undefined,
      c.discovery === "thanos" || c.discovery === "combined",
      `${c.name}: thanos discovery keys only with thanos`,
    );
    const dep = only(docs, "Deployment");
    const ctr = dep.spec.template.spec.containers[0];
    const env = new Map<string, K8sObject>(ctr.env.map((e: K8sObject) => [e.name, e]));
    const secretNames = dep.spec.template.spec.volumes
      .filter((v: K8sObject) => v.secret)
      .map((v: K8sObject) => v.secret.secretName)
      .sort();
    if (c.sink === "s3-kafka") {
      for (const name of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]) {
        assert.equal(
          env.get(name)?.valueFrom?.secretKeyRef?.name,
          "bridge-s3",
          `${c.name} ${name}`,
        );
        assert.ok(!("value" in env.get(name)!), `${c.name}: ${name} by reference`);
      }
      assert.equal(
        cfg["kafka-sasl-password-file"],
        "/etc/thanos-bridge/secrets/kafka-sasl/password",
      );
      assert.equal(cfg["kafka-ca-file"], "/etc/thanos-bridge/files/kafka-ca/ca.crt");
      assert.deepEqual(cfg["kafka-brokers"], ["kafka-0:9093", "kafka-1:9093"]);
      assert.equal(cfg["s3-bucket"], "koku");
      assert.deepEqual(secretNames, ["bridge-api", "bridge-kafka", "bridge-thanos"], c.name);
    } else {
      assert.ok(![...env.keys()].some((n) => n.startsWith("AWS_")), `${c.name}: no AWS env`);
      assert.ok(!Object.keys(cfg).some((k) => /^(s3|kafka)-/.test(k)), `${c.name}: no s3 keys`);
    }
    if (c.sink === "ingress") {
      assert.equal(cfg["ingress-token-file"], "/etc/thanos-bridge/secrets/ingress-token/token");
      assert.equal(cfg["ingress-url"], "https://console.example.com");
      assert.deepEqual(secretNames, ["bridge-api", "bridge-ingress", "bridge-thanos"], c.name);
    }
    if (c.sink === "dir") assert.equal(cfg.out, "/var/lib/thanos-bridge/out", c.name);
    for (const kind of ["PersistentVolumeClaim", "ServiceMonitor", "PrometheusRule"]) {
      only(docs, kind);
    }
    assert.equal(only(docs, "ServiceMonitor").spec.endpoints[0].path, "/metrics");
  }
});

Deno.test("chart: OpenShift render leaves UID and fsGroup to restricted-v2", async () => {
  for (const apiVersions of [["security.openshift.io/v1"], []]) {
    const values = apiVersions.length > 0 ? {} : { openshift: true };
    const docs = await render(values, { namespace: NS, apiVersions });
    checkInvariants(docs, false, "openshift");
    const psc = only(docs, "Deployment").spec.template.spec.securityContext;
    assert.equal(psc.fsGroup, undefined, "no fixed fsGroup on OpenShift");
    assert.equal(psc.runAsUser, undefined);
  }
});

Deno.test("chart: the sidecar example renders next to observability-thanos-query", async () => {
  const ns = "open-cluster-management-observability";
  const values = YAML.parse(await Deno.readTextFile(`${CHART}/examples/values-sidecar.yaml`));
  const lint = await helm("lint", values, { namespace: ns });
  assert.equal(lint.code, 0, `helm lint:\n${lint.stdout}\n${lint.stderr}`);
  const docs = await render(values, { namespace: ns });
  const pod = only(docs, "Deployment").spec.template.spec;
  const term = pod.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0];
  assert.deepEqual(term.podAffinityTerm.labelSelector.matchLabels, {
    "app.kubernetes.io/name": "thanos-query",
  });
  assert.equal(
    configOf(docs)["thanos-url"],
    `http://observability-thanos-query.${ns}.svc:9090`,
  );
  const np = only(docs, "NetworkPolicy");
  assert.deepEqual(np.spec.policyTypes, ["Ingress", "Egress"]);
  assert.ok(
    np.spec.egress.some((r: K8sObject) =>
      r.to?.[0]?.podSelector?.matchLabels?.["app.kubernetes.io/name"] === "thanos-query" &&
      r.ports[0].port === 9090
    ),
    "egress to Thanos Query",
  );
  // Installing the sidecar variant anywhere else is refused.
  const wrong = await helm("template", values, { namespace: NS });
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /install into namespace open-cluster-management-observability/);
});

Deno.test("chart: the schema refuses secrets as values and unsafe security settings", async () => {
  const refused: [string, unknown][] = [
    ["a secret in extraConfig", { extraConfig: { "kafka-sasl-password": "hunter2" } }],
    ["a token file key in extraConfig", { extraConfig: { "token-file": "/x" } }],
    ["a managed key in extraConfig", { extraConfig: { sink: "dir" } }],
    ["a run-only key in extraConfig", { extraConfig: { day: "2026-11-01" } }],
    ["a plain secret env", { extraEnv: [{ name: "API_TOKEN", value: "hunter2" }] }],
    ["privilege escalation", {
      securityContext: {
        runAsNonRoot: true,
        allowPrivilegeEscalation: true,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      },
    }],
    ["a writable root", {
      securityContext: {
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: false,
        capabilities: { drop: ["ALL"] },
      },
    }],
    ["root", { podSecurityContext: { runAsNonRoot: false } }],
    ["an unknown discovery source", { discovery: { sources: ["dns"] } }],
    ["an unknown sink", { sink: { kind: "ftp" } }],
    ["an unknown top-level key", { replicaCount: 3 }],
    ["s3-kafka without a bucket", { sink: { kind: "s3-kafka", kafka: { brokers: ["k:9092"] } } }],
    ["SASL without a password Secret", {
      sink: {
        kind: "s3-kafka",
        s3: { bucket: "b" },
        kafka: { brokers: ["k:9092"], sasl: { mechanism: "plain", username: "u" } },
      },
    }],
    ["ingress without a url", { sink: { kind: "ingress" } }],
  ];
  const results = await pool(refused, 4, async ([, values]) => await helm("template", values));
  refused.forEach(([what], i) => assert.notEqual(results[i]!.code, 0, `refused: ${what}`));
  // A secret env by reference is fine.
  await render({
    extraEnv: [{ name: "API_TOKEN", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }],
  });
});

Deno.test("chart: alerts pass promtool and name only metrics the bridge exports", async () => {
  const metrics = new BridgeMetrics("test");
  const exported = new Set(
    (await metrics.registry.getMetricsAsJSON()).flatMap((m) =>
      String(m.type) === "histogram"
        ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`]
        : [m.name]
    ),
  );
  const cases: [string, Record<string, unknown>, number][] = [
    ["hourly", {}, 3600],
    ["every 30 minutes", { serve: { schedule: "*/30 * * * *" } }, 1800],
    ["every 6 hours", { serve: { schedule: "5 */6 * * *" } }, 21600],
    ["explicit", {
      serve: { schedule: "0 2,14 * * *" },
      prometheusRule: { enabled: true, scheduleIntervalSeconds: 43200 },
    }, 43200],
  ];
  const dir = await Deno.makeTempDir({ prefix: "chart_rules_" });
  try {
    for (const [name, extra, interval] of cases) {
      const values = {
        ...extra,
        prometheusRule: { enabled: true, ...(extra.prometheusRule ?? {}) },
      };
      const docs = await render(values, { namespace: NS });
      const rule = only(docs, "PrometheusRule");
      const alerts = new Map<string, K8sObject>(
        rule.spec.groups[0].rules.map((r: K8sObject) => [r.alert, r]),
      );
      assert.deepEqual([...alerts.keys()].sort(), [
        "ThanosBridgeClusterNotDelivered",
        "ThanosBridgeHoursBehind",
        "ThanosBridgeNoSuccessfulRun",
        "ThanosBridgeOutboxNotEmpty",
        "ThanosBridgeRunFailures",
      ], name);
      assert.match(
        alerts.get("ThanosBridgeRunFailures")!.expr,
        /thanos_bridge_runs_total\{.*result=~"failed\|partial\|interrupted"\}.*> 0/,
      );
      assert.match(
        alerts.get("ThanosBridgeNoSuccessfulRun")!.expr,
        new RegExp(`\\[${2 * interval}s\\]`),
        name,
      );
      assert.match(
        alerts.get("ThanosBridgeClusterNotDelivered")!.expr,
        new RegExp(`thanos_bridge_last_success_timestamp_seconds.*> ${2 * interval}$`),
        name,
      );
      assert.match(
        alerts.get("ThanosBridgeHoursBehind")!.expr,
        /thanos_bridge_hours_behind\{.*\}\) > 6$/,
      );
      for (const r of alerts.values()) {
        for (const m of String(r.expr).match(/\bthanos_bridge_[a-z_]+/g) ?? []) {
          assert.ok(exported.has(m), `${r.alert}: ${m} is exported by src/service/metrics.ts`);
        }
      }
      const file = `${dir}/rules.yaml`;
      await Deno.writeTextFile(file, YAML.stringify({ groups: rule.spec.groups }));
      const check = await new Deno.Command("promtool", { args: ["check", "rules", file] }).output();
      const dec = new TextDecoder();
      assert.equal(
        check.code,
        0,
        `${name}: promtool:\n${dec.decode(check.stdout)}${dec.decode(check.stderr)}`,
      );
    }
    // A schedule the chart cannot turn into an interval drops only the "no success" alerts.
    const docs = await render({ serve: { schedule: "off" }, prometheusRule: { enabled: true } });
    // (A bare `off` is YAML 1.1's false to helm; the config file still says "off".)
    assert.equal(configOf(docs).schedule, "off");
    const names = only(docs, "PrometheusRule").spec.groups[0].rules.map((r: K8sObject) => r.alert);
    assert.ok(!names.includes("ThanosBridgeNoSuccessfulRun"));
    assert.ok(names.includes("ThanosBridgeHoursBehind"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
