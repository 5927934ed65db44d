import assert from "node:assert/strict";
import {
  DEFAULT_MANIFEST_VERSION,
  formatGoJsonTime,
  isSafePathComponent,
  manifestUuid,
  renderManifest,
  validateManifest,
} from "./manifest.ts";

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

Deno.test("manifestUuid: version-4 shape, deterministic, sensitive to window", () => {
  const a = manifestUuid("cluster-a", "2026-11-01", 5, ["pod", "node"]);
  assert.match(a, V4);
  assert.equal(manifestUuid("cluster-a", "2026-11-01", 5, ["pod", "node"]), a);
  assert.equal(manifestUuid("cluster-a", "2026-11-01", 5, ["node", "pod"]), a, "set, not order");
  const others = [
    manifestUuid("cluster-a", "2026-11-01", 6, ["pod", "node"]),
    manifestUuid("cluster-a", "2026-11-01", 5, ["pod", "node", "vm"]),
    manifestUuid("cluster-a", "2026-11-02", 5, ["pod", "node"]),
    manifestUuid("cluster-b", "2026-11-01", 5, ["pod", "node"]),
  ];
  for (const o of others) {
    assert.match(o, V4);
    assert.notEqual(o, a);
  }
  assert.equal(new Set(others).size, others.length);
});

Deno.test("manifestUuid: matches Python's hashlib + uuid.UUID(bytes=…, version=4)", async () => {
  const cases: Array<[string, string, number, string[]]> = [
    ["cluster-a", "2026-11-01", 5, ["pod", "node"]],
    ["16b9a60d-0774-4102-9028-bd28d6c38ac2", "2024-02-29", 23, [
      "vm",
      "storage",
      "pod",
      "node",
      "namespace",
      "gpu",
    ]],
  ];
  const script = [
    "import hashlib, json, sys, uuid",
    "for c in json.load(sys.stdin):",
    "    key = json.dumps([c[0], c[1], c[2], sorted(c[3])], separators=(',', ':'))",
    "    print(uuid.UUID(bytes=hashlib.sha256(key.encode()).digest()[:16], version=4))",
  ].join("\n");
  const child = new Deno.Command("python3", {
    args: ["-c", script],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(cases)));
  await writer.close();
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const expected = new TextDecoder().decode(out.stdout).trim().split("\n");
  assert.deepEqual(cases.map((c) => manifestUuid(...c)), expected);
});

Deno.test("formatGoJsonTime: RFC 3339 nano like Go", () => {
  assert.equal(formatGoJsonTime(new Date("2021-07-20T15:00:00Z")), "2021-07-20T15:00:00Z");
  assert.equal(formatGoJsonTime(new Date("2021-07-20T18:01:21.700Z")), "2021-07-20T18:01:21.7Z");
  assert.equal(formatGoJsonTime(new Date("2021-07-20T18:01:21.705Z")), "2021-07-20T18:01:21.705Z");
  assert.equal(formatGoJsonTime(new Date("2021-07-20T18:01:21.050Z")), "2021-07-20T18:01:21.05Z");
  assert.equal(formatGoJsonTime(null), "0001-01-01T00:00:00Z");
  assert.throws(() => formatGoJsonTime(new Date(Number.NaN)), RangeError);
  assert.throws(() => formatGoJsonTime(new Date("+010000-01-01T00:00:00Z")), RangeError);
});

Deno.test("renderManifest: byte-exact Go MarshalIndent layout", () => {
  const uuid = "2c5bf36c-7572-4156-b102-43f898e1430f";
  const text = renderManifest({
    uuid,
    clusterId: "16b9a60d-0774-4102-9028-bd28d6c38ac2",
    date: new Date("2026-11-01T06:10:00.5Z"),
    files: [
      `${uuid}-cm-openshift-namespace-usage-202611.0.csv`,
      `${uuid}-cm-openshift-pod-usage-202611.1.csv`,
    ],
    start: new Date("2026-11-01T00:00:00Z"),
    end: new Date("2026-11-01T05:59:59Z"),
    bridgeVersion: "0.1.0",
  });
  const expected = `{
 "uuid": "2c5bf36c-7572-4156-b102-43f898e1430f",
 "cluster_id": "16b9a60d-0774-4102-9028-bd28d6c38ac2",
 "version": "78eabeb962648926f98b4cc239a6f59541f001cd",
 "date": "2026-11-01T06:10:00.5Z",
 "files": [
  "2c5bf36c-7572-4156-b102-43f898e1430f-cm-openshift-namespace-usage-202611.0.csv",
  "2c5bf36c-7572-4156-b102-43f898e1430f-cm-openshift-pod-usage-202611.1.csv"
 ],
 "resource_optimization_files": null,
 "start": "2026-11-01T00:00:00Z",
 "end": "2026-11-01T05:59:59Z",
 "cr_status": {
  "clusterID": "16b9a60d-0774-4102-9028-bd28d6c38ac2",
  "source": {
   "source_type": "thanos_bridge",
   "bridge_version": "0.1.0"
  },
  "upload": {
   "upload": true
  }
 },
 "certified": false,
 "daily_reports": true
}`;
  assert.equal(text, expected);
  assert.deepEqual(validateManifest(text), []);
});

Deno.test("renderManifest: nil files, zero times, custom version", () => {
  const text = renderManifest({
    uuid: "2c5bf36c-7572-4156-b102-43f898e1430f",
    clusterId: "c",
    version: "custom-build",
    date: new Date("2026-11-01T06:10:00Z"),
    files: [],
    start: null,
    end: null,
    bridgeVersion: "1.2.3-rc.1",
  });
  const expected = `{
 "uuid": "2c5bf36c-7572-4156-b102-43f898e1430f",
 "cluster_id": "c",
 "version": "custom-build",
 "date": "2026-11-01T06:10:00Z",
 "files": null,
 "resource_optimization_files": null,
 "start": "0001-01-01T00:00:00Z",
 "end": "0001-01-01T00:00:00Z",
 "cr_status": {
  "clusterID": "c",
  "source": {
   "source_type": "thanos_bridge",
   "bridge_version": "1.2.3-rc.1"
  },
  "upload": {
   "upload": true
  }
 },
 "certified": false,
 "daily_reports": true
}`;
  assert.equal(text, expected);
  assert.deepEqual(validateManifest(text), []);
  assert.equal(DEFAULT_MANIFEST_VERSION, "78eabeb962648926f98b4cc239a6f59541f001cd");
});

Deno.test("validateManifest: koku's rejections", () => {
  const good = {
    uuid: "2c5bf36c-7572-4156-b102-43f898e1430f",
    cluster_id: "c",
    date: "2026-11-01T06:10:00Z",
    files: ["a.csv"],
    resource_optimization_files: null,
    start: "2026-11-01T00:00:00Z",
    end: "2026-11-01T05:59:59Z",
  };
  assert.deepEqual(validateManifest(good), []);
  assert.deepEqual(validateManifest(JSON.stringify(good)), []);
  const bad = (patch: Record<string, unknown>, re: RegExp) => {
    const problems = validateManifest({ ...good, ...patch });
    assert.ok(problems.some((p) => re.test(p)), `${JSON.stringify(patch)} → ${problems}`);
  };
  bad({ uuid: "2c5bf36c-7572-1156-b102-43f898e1430f" }, /uuid: .* version 1, not 4/);
  bad({ uuid: "2c5bf36c-7572-4156-7102-43f898e1430f" }, /uuid: .*variant/);
  bad({ uuid: "not-a-uuid" }, /uuid: "not-a-uuid" is not a UUID/);
  bad({ uuid: undefined }, /uuid: required/);
  bad({ cluster_id: "../x" }, /cluster_id: "..\/x"/);
  bad({ cluster_id: "" }, /cluster_id/);
  bad({ cluster_id: undefined }, /cluster_id: required/);
  bad({ date: undefined }, /date: required/);
  bad({ date: "yesterday" }, /date: "yesterday" is not a datetime/);
  bad({ date: "2026-02-30T00:00:00Z" }, /date: /);
  bad({ files: ["ok.csv", "sub/dir.csv"] }, /files\[1\]: "sub\/dir.csv"/);
  bad({ files: "a.csv" }, /files: must be a list/);
  bad({ resource_optimization_files: [".."] }, /resource_optimization_files\[0\]/);
  bad({ start: "garbage" }, /start: "garbage"/);
  bad({ end: {} }, /end: /);
  bad({ daily_reports: "yes" }, /daily_reports: must be a boolean/);
  assert.match(validateManifest("{")[0]!, /not valid JSON/);
  assert.match(validateManifest("[]")[0]!, /JSON object/);
  const huge = JSON.stringify({ ...good, pad: "x".repeat(10 * 1024 * 1024) });
  assert.ok(validateManifest(huge).some((p) => /larger than/.test(p)));
  // Accepted forms
  assert.deepEqual(validateManifest({ ...good, start: null, end: null, files: null }), []);
  assert.deepEqual(
    validateManifest({ ...good, uuid: "{2C5BF36C75724156B10243F898E1430F}" }),
    [],
  );
});

Deno.test("isSafePathComponent", () => {
  for (const ok of ["a", "a.csv", "x-1.tar.gz", "…ünï"]) assert.ok(isSafePathComponent(ok), ok);
  for (const bad of ["", ".", "..", "a/b", "a\\b", "a..b", 5, null]) {
    assert.ok(!isSafePathComponent(bad), String(bad));
  }
});

Deno.test("manifestUuid: the ROS hour range is part of the key; without it the key is unchanged", () => {
  const reports = ["namespace", "node", "gpu", "pod", "storage", "vm"];
  const plain = manifestUuid("16b9a60d-0774-4102-9028-bd28d6c38ac2", "2026-11-01", 3, reports);
  assert.equal(
    plain,
    "30a69737-dd51-433d-964d-bc0191ae21c2",
    "the uuid payloads without ROS always had",
  );
  assert.equal(
    manifestUuid("16b9a60d-0774-4102-9028-bd28d6c38ac2", "2026-11-01", 3, reports, null),
    plain,
  );
  const a = manifestUuid("c", "2026-11-01", 3, reports, { fromHour: 0, toHour: 3 });
  const b = manifestUuid("c", "2026-11-01", 3, reports, { fromHour: 2, toHour: 3 });
  assert.notEqual(a, b);
  assert.notEqual(a, manifestUuid("c", "2026-11-01", 3, reports));
  assert.equal(a[14], "4");
});

Deno.test("renderManifest: ROS members under resource_optimization_files, null when none", () => {
  const base = {
    uuid: "2c5bf36c-7572-4156-b102-43f898e1430f",
    clusterId: "cluster-a",
    date: new Date("2026-11-01T06:10:00Z"),
    files: ["a.0.csv"],
    start: null,
    end: null,
    bridgeVersion: "0.1.0",
  };
  const ros = ["x-ros-openshift-container-202611.6.csv", "x-ros-openshift-namespace-202611.7.csv"];
  const m = JSON.parse(renderManifest({ ...base, resourceOptimizationFiles: ros }));
  assert.deepEqual(m.resource_optimization_files, ros);
  assert.deepEqual(m.files, ["a.0.csv"]);
  assert.equal(JSON.parse(renderManifest(base)).resource_optimization_files, null);
  assert.equal(
    JSON.parse(renderManifest({ ...base, resourceOptimizationFiles: [] }))
      .resource_optimization_files,
    null,
  );
});
