import assert from "node:assert/strict";
import { mergeLayers, parseConfigFile } from "./config_layers.ts";
import { ConfigError } from "./model.ts";

Deno.test("config file: YAML or JSON, keys are flag names, lists as arrays or strings", () => {
  const yaml = parseConfigFile(
    [
      "thanos-url: https://thanos-query:9091",
      "cluster: [a, b]",
      "kafka-brokers: k1:9092, k2:9092",
      "s3-path-style: true",
      "thanos-gzip: true",
      "concurrency: 8",
      "schedule: '*/5 * * * *'",
      "",
    ].join("\n"),
    "bridge.yaml",
  );
  assert.deepEqual(yaml, {
    thanosUrl: "https://thanos-query:9091",
    clusters: ["a", "b"],
    kafkaBrokers: ["k1:9092", "k2:9092"],
    s3PathStyle: true,
    thanosGzip: true,
    concurrency: "8",
    schedule: "*/5 * * * *",
  });
  assert.deepEqual(parseConfigFile('{"out": "/srv/out", "cluster": "c1"}', "b.json"), {
    out: "/srv/out",
    clusters: ["c1"],
  });
  assert.deepEqual(parseConfigFile("", "empty.yaml"), {});
});

Deno.test("config file: unknown keys, wrong types and run-only keys are named with the file", () => {
  const cases: [string, RegExp][] = [
    ["thanos-urll: x\n", /key "thanos-urll" is not a setting/],
    ["concurrency: [1, 2]\n", /key "concurrency" has the wrong type/],
    ["day: 2026-11-01\n", /key "day" belongs to one run/],
    ["- a\n- b\n", /must be a mapping of settings/],
    ["a: [\n", /is not valid YAML or JSON/],
    ["out: " + "x".repeat(5000) + "\n", /key "out" has the wrong type/],
  ];
  for (const [text, re] of cases) {
    try {
      parseConfigFile(text, "/etc/bridge.yaml");
      assert.fail(`accepted ${text.slice(0, 40)}`);
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.field, "config");
      assert.match(error.message, /"\/etc\/bridge\.yaml"/);
      assert.match(error.message, re);
    }
  }
});

Deno.test("layers: a flag wins over its variable, a variable over the file; sources are named", () => {
  const merged = mergeLayers([
    { kind: "flag", values: { out: "/flag" } },
    { kind: "file", origin: "b.yaml", values: { out: "/file", state: "/s", day: "x" } },
    { kind: "env", values: { out: "/env", sink: "dir" } },
  ]);
  assert.equal(merged.config.out, "/flag");
  assert.equal(merged.config.sink, "dir");
  assert.equal(merged.sourceOf("out"), "--out");
  assert.equal(merged.sourceOf("sink"), "THANOS_BRIDGE_SINK");
  assert.equal(merged.sourceOf("state"), "state in b.yaml");
  assert.equal(merged.sourceOf("s3Bucket"), "--s3-bucket");
});

Deno.test("config file: the static cluster list takes ids and {cluster_id, name, org_id} entries", () => {
  const c = parseConfigFile(
    "cluster:\n  - a\n  - cluster_id: b\n    name: prod\n    org_id: 1234567\ndiscovery: [static, thanos]\n",
    "bridge.yaml",
  );
  assert.deepEqual(c.clusters, ["a", { cluster_id: "b", name: "prod", org_id: "1234567" }]);
  assert.deepEqual(c.discovery, ["static", "thanos"]);
  assert.throws(
    () => parseConfigFile("cluster:\n  - cluster_id: b\n    owner: me\n", "bridge.yaml"),
    /cluster\.0.*wrong type|owner/,
  );
});

Deno.test("config file: raw-read is a setting; each layer names it in its own way", () => {
  assert.deepEqual(parseConfigFile("raw-read: remote-read\n", "bridge.yaml"), {
    rawRead: "remote-read",
  });
  assert.deepEqual(parseConfigFile('{"raw-read": "query"}', "b.json"), { rawRead: "query" });
  const layers = [
    { kind: "file", origin: "b.yaml", values: { rawRead: "remote-read" } },
    { kind: "env", values: { rawRead: "query" } },
    { kind: "flag", values: { rawRead: "auto" } },
  ] as const;
  const all = mergeLayers(layers);
  assert.equal(all.config.rawRead, "auto");
  assert.equal(all.sourceOf("rawRead"), "--raw-read");
  const noFlag = mergeLayers(layers.slice(0, 2));
  assert.equal(noFlag.config.rawRead, "query");
  assert.equal(noFlag.sourceOf("rawRead"), "THANOS_BRIDGE_RAW_READ");
  const fileOnly = mergeLayers(layers.slice(0, 1));
  assert.equal(fileOnly.config.rawRead, "remote-read");
  assert.equal(fileOnly.sourceOf("rawRead"), "raw-read in b.yaml");
});
