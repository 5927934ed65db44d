import assert from "node:assert/strict";
import {
  type Config,
  configFromEnv,
  ENV_VARS,
  flagOf,
  parseBool,
  resolveRunRequest,
  resolveSettings,
} from "./config.ts";
import { ConfigError } from "./model.ts";

const ctx = { cacheDir: "/home/u/.cache" };
const base: Config = { thanosUrl: "http://127.0.0.1:9090/", clusters: ["c1"], out: "out" };

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error;
  }
  throw new Error("expected a ConfigError");
}

Deno.test("resolveSettings: defaults", () => {
  const s = resolveSettings(base, ctx);
  assert.equal(s.thanosUrl, "http://127.0.0.1:9090");
  assert.deepEqual(s.clusters, ["c1"]);
  assert.equal(s.clusterLabel, "clusterID");
  assert.equal(s.rateWindow, "15m");
  assert.equal(s.concurrency, 4);
  assert.equal(s.timeoutMs, 120_000);
  assert.equal(s.maxAttempts, 5);
  assert.equal(s.reduce, "local");
  assert.equal(s.batchHours, 12);
  // The other modes keep their own batch default.
  assert.equal(resolveSettings({ ...base, reduce: "server" }, ctx).batchHours, 6);
  assert.equal(resolveSettings({ ...base, reduce: "client" }, ctx).batchHours, 6);
  assert.equal(s.settleDelayMs, 600_000);
  assert.equal(s.emptyHourGraceMs, 6 * 3_600_000);
  assert.equal(s.maxBackfillMs, 14 * 24 * 3_600_000);
  assert.equal(s.stateDir, "/home/u/.cache/thanos-bridge");
  assert.equal(s.maxBytes, 104_857_600);
  assert.equal(s.manifestVersion, "78eabeb962648926f98b4cc239a6f59541f001cd");
  assert.equal(s.sink, "dir");
  assert.equal(s.out, "out");
  assert.equal(s.s3Kafka, null);
  assert.equal(s.ingress, null);
  assert.deepEqual(s.limits, {
    maxAnswerBytes: 256 * 1_048_576,
    maxSeriesBytes: 1_048_576,
    maxLabelBytes: 16 * 1024,
    maxSeries: 100_000,
  });
});

Deno.test("resolveSettings: s3-kafka and ingress sinks", () => {
  const s = resolveSettings({
    ...base,
    sink: "s3-kafka",
    out: undefined,
    s3Bucket: "koku-payloads",
    s3Endpoint: "http://127.0.0.1:8333/",
    s3Prefix: "/hub-a/",
    s3PathStyle: "true",
    kafkaBrokers: "127.0.0.1:9092, [::1]:9093",
    kafkaSaslMechanism: "SCRAM-SHA-512",
    kafkaSaslUsername: "bridge",
    kafkaSaslPasswordFile: "/run/secrets/kafka",
    presignExpiry: "2h",
  }, ctx);
  assert.equal(s.out, null);
  assert.deepEqual(s.s3Kafka, {
    s3Endpoint: "http://127.0.0.1:8333",
    s3PublicEndpoint: null,
    s3Region: "us-east-1",
    s3Bucket: "koku-payloads",
    s3Prefix: "hub-a",
    s3PathStyle: true,
    presignExpirySeconds: 7200,
    kafkaBrokers: ["127.0.0.1:9092", "[::1]:9093"],
    kafkaTopic: "platform.upload.announce",
    kafkaTls: false,
    kafkaCaFile: null,
    kafkaSaslMechanism: "scram-sha-512",
    kafkaSaslUsername: "bridge",
    kafkaSaslPasswordFile: "/run/secrets/kafka",
    identityFile: null,
  });
  const i = resolveSettings({
    ...base,
    sink: "ingress",
    ingressUrl: "https://console.example/",
    ingressTokenFile: "/t",
  }, ctx);
  assert.deepEqual(i.ingress, {
    ingressUrl: "https://console.example",
    ingressTokenFile: "/t",
    ingressBasicAuthFile: null,
  });
});

Deno.test("rule 8: bad settings are ConfigErrors that name the field and the value", () => {
  const bad: [Config, string, RegExp][] = [
    [{ thanosUrl: "ftp://x" }, "thanosUrl", /"ftp:\/\/x" must be an http or https URL/],
    [{ thanosUrl: "not a url" }, "thanosUrl", /is not a URL/],
    [{ thanosUrl: "https://u:p@h" }, "thanosUrl", /must not contain credentials/],
    [{ clusters: ["../etc"] }, "clusters", /"..\/etc" is not a valid cluster id/],
    [{ out: "" }, "out", /required with --sink dir/],
    [{ concurrency: "0" }, "concurrency", /"0" must be a whole number from 1 to 64/],
    [{ rateWindow: "5 minutes" }, "rateWindow", /must be a duration like 90s/],
    [{ reduce: "both" }, "reduce", /must be server, client or local/],
    [
      { engineSemantics: "prometheus4" },
      "engineSemantics",
      /must be auto, prometheus2 or prometheus3/,
    ],
    [{ lookbackDelta: "5 minutes" }, "lookbackDelta", /./],
    [{ clusterLabel: "cluster-id" }, "clusterLabel", /is not a Prometheus label name/],
    [{ headers: ["no colon"] }, "headers", /no colon/],
    [{ headers: [": v"] }, "headers", /empty header name/],
    [{ headers: ["X-A: 1\r\nX-B: 2"] }, "headers", /CR, LF or NUL/],
    [{ headers: ["Bad Name: v"] }, "headers", /invalid header name/],
    [{ headers: ["Authorization: Bearer x"] }, "headers", /use --token-file/],
    [{ maxSizeMb: "101" }, "maxSizeMb", /from 1 to 100/],
    [{ certFile: "c.pem" }, "keyFile", /go together/],
    [{ record: "r", replay: "r" }, "record", /cannot be used together/],
    [{ timeout: "10ms" }, "timeout", /at least 1s/],
    [{ sink: "ftp" }, "sink", /must be one of dir, s3-kafka, ingress/],
    [{ sink: "s3-kafka" }, "s3Bucket", /required with --sink s3-kafka/],
    [{ sink: "s3-kafka", s3Bucket: "b_b" }, "s3Bucket", /not a valid bucket name/],
    [{ sink: "s3-kafka", s3Bucket: "bucket" }, "kafkaBrokers", /is required/],
    [{ sink: "s3-kafka", s3Bucket: "bbb", kafkaBrokers: ["k"] }, "kafkaBrokers", /host:port/],
    [
      { sink: "s3-kafka", s3Bucket: "bbb", kafkaBrokers: ["k:1"], kafkaSaslMechanism: "gssapi" },
      "kafkaSaslMechanism",
      /plain, scram-sha-256 or scram-sha-512/,
    ],
    [
      { sink: "s3-kafka", s3Bucket: "bbb", kafkaBrokers: ["k:1"], presignExpiry: "8d" },
      "presignExpiry",
      /at most 7d/,
    ],
    [{ sink: "ingress" }, "ingressUrl", /required with --sink ingress/],
    [{ manifestVersion: "v1\x1b[2J" }, "manifestVersion", /commit id/],
    [{ manifestVersion: "not a version" }, "manifestVersion", /commit id/],
    [{ maxBackfill: "30m" }, "maxBackfill", /at least 3600s/],
    [{ emptyHourGrace: "soon" }, "emptyHourGrace", /duration/],
    [{ maxAnswerMb: "0" }, "maxAnswerMb", /whole number/],
  ];
  for (const [patch, field, re] of bad) {
    const e = configError(() => resolveSettings({ ...base, ...patch }, ctx));
    assert.equal(e.field, field, JSON.stringify(patch));
    assert.equal(e.code, "config");
    assert.match(e.message, re, JSON.stringify(patch));
    assert.ok(!e.message.includes("\x1b"), "control characters are escaped");
  }
  const e = configError(() => resolveSettings({ clusters: ["c"], out: "o" }, ctx));
  assert.equal(e.field, "thanosUrl");
  assert.equal(resolveSettings({ clusters: ["c"], out: "o", replay: "rec" }, ctx).thanosUrl, null);
});

Deno.test("rule 8: at most 100 characters of a bad value are echoed", () => {
  const e = configError(() => resolveSettings({ ...base, clusterLabel: "x-".repeat(500) }, ctx));
  assert.ok(e.value.length <= 104, e.value);
  assert.ok(e.message.length < 200, e.message);
});

Deno.test("resolveRunRequest: --day/--until are shorthands of --from/--to", () => {
  assert.deepEqual(resolveRunRequest({}), { recollect: false, dryRun: false });
  assert.deepEqual(resolveRunRequest({ day: "2026-11-01" }), {
    recollect: false,
    dryRun: false,
    from: "2026-11-01",
    to: "2026-11-01",
  });
  assert.deepEqual(resolveRunRequest({ day: "2026-11-01", until: "5", dryRun: true }), {
    recollect: false,
    dryRun: true,
    from: "2026-11-01",
    to: "2026-11-01T05",
  });
  assert.deepEqual(
    resolveRunRequest({ from: "2026-11-01T03", clusters: ["a", "a", "b"], recollect: "yes" }),
    { recollect: true, dryRun: false, from: "2026-11-01T03", clusters: ["a", "b"] },
  );
  assert.equal(configError(() => resolveRunRequest({ until: "5" })).field, "until");
  assert.equal(
    configError(() => resolveRunRequest({ day: "2026-11-01", until: "24" })).field,
    "until",
  );
  assert.equal(
    configError(() => resolveRunRequest({ day: "2026-11-01", from: "2026-11-01" })).field,
    "day",
  );
});

Deno.test("configFromEnv reads THANOS_BRIDGE_* variables, and rule 8: bad booleans fail", () => {
  assert.deepEqual(
    configFromEnv({
      THANOS_BRIDGE_THANOS_URL: "http://t",
      THANOS_BRIDGE_CLUSTER: "a, b c",
      THANOS_BRIDGE_HEADER: "A: 1\nB: 2",
      THANOS_BRIDGE_RECOLLECT: "yes",
      THANOS_BRIDGE_JSON: "0",
      THANOS_BRIDGE_UNTIL: "5",
      THANOS_BRIDGE_KAFKA_BROKERS: "k1:9092,k2:9092",
      THANOS_BRIDGE_S3_PATH_STYLE: "on",
      THANOS_BRIDGE_DRY_RUN: "false",
      OTHER: "x",
    }),
    {
      thanosUrl: "http://t",
      clusters: ["a", "b", "c"],
      headers: ["A: 1", "B: 2"],
      recollect: true,
      json: false,
      until: "5",
      kafkaBrokers: ["k1:9092", "k2:9092"],
      s3PathStyle: true,
      dryRun: false,
    },
  );
  const e = configError(() => configFromEnv({ THANOS_BRIDGE_JSON: "maybe" }));
  assert.match(e.message, /THANOS_BRIDGE_JSON "maybe" must be true or false/);
  assert.throws(() => parseBool("kafkaTls", "enabled"), ConfigError);
});

Deno.test("every setting has a flag and a THANOS_BRIDGE_ variable", () => {
  assert.equal(ENV_VARS.s3PathStyle, "THANOS_BRIDGE_S3_PATH_STYLE");
  assert.equal(ENV_VARS.clusters, "THANOS_BRIDGE_CLUSTER");
  assert.equal(ENV_VARS.kafkaSaslPasswordFile, "THANOS_BRIDGE_KAFKA_SASL_PASSWORD_FILE");
  assert.equal(flagOf("kafkaSaslPasswordFile"), "--kafka-sasl-password-file");
  assert.equal(flagOf("headers"), "--header");
  assert.equal(flagOf("dryRun"), "--dry-run");
});

Deno.test("resolveSettings: discovery defaults to the static list", () => {
  const s = resolveSettings(base, ctx);
  assert.deepEqual(s.discovery.sources, ["static"]);
  assert.deepEqual(s.discovery.staticClusters, [{ clusterId: "c1" }]);
  assert.equal(s.discovery.match, "kube_node_info");
  assert.equal(s.discovery.windowMs, 86_400_000);
  assert.equal(s.discovery.acm, null);
  assert.equal(s.registration, null);
});

Deno.test("resolveSettings: discovery sources, filters, acm and registration", () => {
  const s = resolveSettings({
    ...base,
    clusters: ["c1", { cluster_id: "c2", name: "prod", org_id: "42" }, { cluster_id: "c1" }],
    discovery: "acm, thanos,acm",
    include: ["prod*", "c?"],
    exclude: "c9",
    discoveryMatch: 'up{job="x"}',
    discoveryWindow: "2h",
    acmOrgKey: "cost.example.com/org-id",
    registerSources: "yes",
    kokuSourcesUrl: "http://koku:8000/api/cost-management/v1",
  }, ctx);
  assert.deepEqual(s.discovery.sources, ["acm", "thanos"]);
  assert.deepEqual(s.clusters, ["c1", "c2"]);
  assert.deepEqual(s.discovery.staticClusters, [
    { clusterId: "c1" },
    { clusterId: "c2", name: "prod", orgId: "42" },
  ]);
  assert.deepEqual(s.discovery.include, ["prod*", "c?"]);
  assert.deepEqual(s.discovery.exclude, ["c9"]);
  assert.equal(s.discovery.windowMs, 7_200_000);
  assert.deepEqual(s.discovery.acm, {
    apiUrl: "https://kubernetes.default.svc",
    tokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
    caFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    orgKey: "cost.example.com/org-id",
  });
  assert.deepEqual(s.registration, { url: "http://koku:8000/api/cost-management/v1/" });
});

Deno.test("resolveSettings: bad discovery settings name the field and the value", () => {
  const cases: [Config, string, RegExp][] = [
    [{ discovery: "static,k8s" }, "discovery", /k8s"? is not a discovery source/],
    [{ discoveryMatch: "rate(x[5m])" }, "discoveryMatch", /series selector/],
    [{ discoveryWindow: "10s" }, "discoveryWindow", /at least 60s/],
    [{ discovery: "acm", acmApiUrl: "ftp://x" }, "acmApiUrl", /http or https/],
    [{ discovery: "acm", acmOrgKey: "bad key!" }, "acmOrgKey", /label or annotation key/],
    [{ registerSources: true }, "kokuSourcesUrl", /is required with --register-sources/],
    [{ clusters: [{ cluster_id: "-x" }] }, "clusters", /not a valid cluster id/],
    [
      { clusters: [{ cluster_id: "a", name: "x" }, { cluster_id: "a", name: "y" }] },
      "clusters",
      /listed twice/,
    ],
    [{ clusters: [{ cluster_id: "a", org_id: "1\n2" }] }, "clusters", /printable/],
  ];
  for (const [extra, field, reason] of cases) {
    const e = configError(() => resolveSettings({ ...base, ...extra }, ctx));
    assert.equal(e.field, field, JSON.stringify(extra));
    assert.match(e.message, reason);
  }
});

Deno.test("configFromEnv: discovery lists are comma- or space-separated", () => {
  const c = configFromEnv({
    THANOS_BRIDGE_DISCOVERY: "static thanos",
    THANOS_BRIDGE_INCLUDE: "a*,b*",
    THANOS_BRIDGE_REGISTER_SOURCES: "on",
  });
  assert.deepEqual(c, {
    discovery: ["static", "thanos"],
    include: ["a*", "b*"],
    registerSources: true,
  });
});

Deno.test("resolveSettings: --thanos-gzip is off by default; flag, variable and bad values", () => {
  assert.equal(resolveSettings(base, ctx).thanosGzip, false);
  // Commander gives a plain switch as `true`.
  assert.equal(resolveSettings({ ...base, thanosGzip: true }, ctx).thanosGzip, true);
  assert.equal(resolveSettings({ ...base, thanosGzip: "off" }, ctx).thanosGzip, false);
  assert.equal(ENV_VARS.thanosGzip, "THANOS_BRIDGE_THANOS_GZIP");
  assert.equal(flagOf("thanosGzip"), "--thanos-gzip");
  assert.deepEqual(configFromEnv({ THANOS_BRIDGE_THANOS_GZIP: "yes" }), { thanosGzip: true });
  assert.deepEqual(configFromEnv({ THANOS_BRIDGE_THANOS_GZIP: "0" }), { thanosGzip: false });
  assert.deepEqual(configFromEnv({ THANOS_BRIDGE_THANOS_GZIP: "" }), {});
  const fromEnv = configError(() => configFromEnv({ THANOS_BRIDGE_THANOS_GZIP: "maybe" }));
  assert.match(fromEnv.message, /THANOS_BRIDGE_THANOS_GZIP "maybe" must be true or false/);
  const resolved = configError(() => resolveSettings({ ...base, thanosGzip: "maybe" }, ctx));
  assert.equal(resolved.field, "thanosGzip");
  assert.match(resolved.message, /"maybe"/);
});

Deno.test("resolveSettings: ROS is on unless turned off", () => {
  assert.equal(resolveSettings(base, ctx).ros, true);
  assert.equal(resolveSettings({ ...base, ros: "false" }, ctx).ros, false);
  assert.equal(resolveSettings({ ...base, ros: false }, ctx).ros, false);
  assert.equal(configFromEnv({ THANOS_BRIDGE_ROS: "off" }).ros, false);
  assert.equal(configError(() => resolveSettings({ ...base, ros: "maybe" }, ctx)).field, "ros");
});

Deno.test("resolveSettings: --raw-read is auto by default; auto, remote-read and query accepted", () => {
  assert.equal(resolveSettings(base, ctx).rawRead, "auto");
  for (const value of ["auto", "remote-read", "query"] as const) {
    assert.equal(resolveSettings({ ...base, rawRead: value }, ctx).rawRead, value);
  }
  // Recording or replaying is fine with auto and query: they read by query there.
  assert.equal(resolveSettings({ ...base, record: "rec" }, ctx).rawRead, "auto");
  assert.equal(resolveSettings({ ...base, replay: "rec", rawRead: "query" }, ctx).rawRead, "query");
});

Deno.test("--raw-read: its flag and THANOS_BRIDGE_RAW_READ variable", () => {
  assert.equal(flagOf("rawRead"), "--raw-read");
  assert.equal(ENV_VARS.rawRead, "THANOS_BRIDGE_RAW_READ");
  assert.deepEqual(configFromEnv({ THANOS_BRIDGE_RAW_READ: "remote-read" }), {
    rawRead: "remote-read",
  });
  const s = resolveSettings(
    { ...base, ...configFromEnv({ THANOS_BRIDGE_RAW_READ: "query" }) },
    ctx,
  );
  assert.equal(s.rawRead, "query");
});

Deno.test("rule 8: a bad --raw-read is a ConfigError naming rawRead and the value", () => {
  // As every setting: blank is the default, and the value is trimmed.
  assert.equal(resolveSettings({ ...base, rawRead: "" }, ctx).rawRead, "auto");
  assert.equal(resolveSettings({ ...base, rawRead: " query " }, ctx).rawRead, "query");
  for (const value of ["remote_read", "REMOTE-READ", "samples"]) {
    const e = configError(() => resolveSettings({ ...base, rawRead: value }, ctx));
    assert.equal(e.field, "rawRead", JSON.stringify(value));
    assert.equal(e.code, "config");
    assert.ok(e.message.includes(JSON.stringify(value)), e.message);
    assert.match(e.message, /must be auto, remote-read or query/);
  }
});

Deno.test("--raw-read remote-read with --replay or --record is a ConfigError naming rawRead", () => {
  for (const patch of [{ replay: "rec" }, { record: "rec" }]) {
    const e = configError(() =>
      resolveSettings({ ...base, ...patch, rawRead: "remote-read" }, ctx)
    );
    assert.equal(e.field, "rawRead", JSON.stringify(patch));
    assert.match(e.message, /"remote-read"/);
    assert.match(e.message, /--replay or --record/);
  }
});
