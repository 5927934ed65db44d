import assert from "node:assert/strict";
import { BridgeError, ConfigError } from "../model.ts";
import {
  type ClusterSource,
  discoverClusters,
  type DiscoveredCluster,
  type DiscoveryKind,
  parseGlobFilter,
  type SourceResult,
  staticSource,
} from "./cluster_discovery.ts";

const ALL = parseGlobFilter([], []);

/** A source answering `result` (or throwing `error`) after `delayMs`, honouring the signal. */
function fakeSource(
  kind: DiscoveryKind,
  result: SourceResult | Error,
  delayMs = 0,
): ClusterSource & { calls: number } {
  const source = {
    kind,
    calls: 0,
    discover(signal?: AbortSignal): Promise<SourceResult> {
      source.calls++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => result instanceof Error ? reject(result) : resolve(result),
          delayMs,
        );
        signal?.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(signal.reason);
        }, { once: true });
      });
    },
  };
  return source;
}

const c = (
  source: DiscoveryKind,
  clusterId: string,
  more: Partial<DiscoveredCluster> = {},
): DiscoveredCluster => ({ clusterId, source, ...more });

Deno.test("parseGlobFilter: * and ?, id or name, include empty = all, exclude wins", () => {
  const f = parseGlobFilter(["prod-*", "a?c"], ["*-canary", "0000*"]);
  assert.deepEqual(f.include, ["prod-*", "a?c"]);
  assert.equal(f.check({ clusterId: "16b9", name: "prod-eu" }), null);
  assert.equal(f.check({ clusterId: "abc" }), null);
  assert.equal(f.check({ clusterId: "abbc" }), "matches no include pattern");
  assert.equal(
    f.check({ clusterId: "x", name: "prod-canary" }),
    'matches exclude pattern "*-canary"',
  );
  assert.equal(f.check({ clusterId: "0000-1", name: "prod-x" }), 'matches exclude pattern "0000*"');
  assert.equal(f.check({ clusterId: "x", name: "dev" }), "matches no include pattern");
  // Everything else is literal: regex characters do not act as such.
  const literal = parseGlobFilter(["a.b(c)+[d]|$^\\"], []);
  assert.equal(literal.check({ clusterId: "a.b(c)+[d]|$^\\" }), null);
  assert.equal(literal.check({ clusterId: "aXb(c)+[d]|$^\\" }), "matches no include pattern");
  // Case-sensitive, whole string, non-ASCII as one character.
  assert.equal(
    parseGlobFilter(["prod"], []).check({ clusterId: "PROD" }),
    "matches no include pattern",
  );
  assert.equal(
    parseGlobFilter(["pro"], []).check({ clusterId: "prod" }),
    "matches no include pattern",
  );
  assert.equal(parseGlobFilter(["?"], []).check({ clusterId: "x", name: "日" }), null);
  // Empty include = all; blank patterns are ignored.
  const all = parseGlobFilter([" ", ""], []);
  assert.deepEqual(all.include, []);
  assert.equal(all.check({ clusterId: "anything" }), null);
  assert.equal(parseGlobFilter([], ["*"]).check({ clusterId: "a" }), 'matches exclude pattern "*"');
});

Deno.test("parseGlobFilter: unusable patterns are a ConfigError naming the setting", () => {
  assert.throws(
    () => parseGlobFilter(["ok", "bad\npattern"], []),
    (e) => e instanceof ConfigError && e.field === "include" && /bad\\\\npattern/.test(e.message),
  );
  assert.throws(
    () => parseGlobFilter([], ["x".repeat(257)]),
    (e) => e instanceof ConfigError && e.field === "exclude",
  );
});

Deno.test("staticSource: ids and entries, as listed", async () => {
  const result = await staticSource([
    "a1",
    { clusterId: " b2 ", name: "prod", orgId: "1234567" },
    { clusterId: "c3", name: undefined },
  ]).discover();
  assert.deepEqual(result, {
    clusters: [
      { clusterId: "a1", source: "static" },
      { clusterId: "b2", name: "prod", orgId: "1234567", source: "static" },
      { clusterId: "c3", source: "static" },
    ],
    skipped: [],
  });
  const aborted = new AbortController();
  aborted.abort(new Error("stop"));
  await assert.rejects(staticSource(["a"]).discover(aborted.signal), /stop/);
});

Deno.test("discoverClusters: merge by id, first source wins, later ones fill gaps", async () => {
  const result = await discoverClusters(
    [
      fakeSource("static", { clusters: [c("static", "a", { name: "static-a" })], skipped: [] }),
      fakeSource("thanos", {
        clusters: [c("thanos", "a", { name: "thanos-a" }), c("thanos", "b", { name: "thanos-b" })],
        skipped: [],
      }, 20),
      fakeSource("acm", {
        clusters: [
          c("acm", "b", { name: "acm-b", orgId: "org-b" }),
          c("acm", "a", { orgId: "org-a" }),
          c("acm", "c", { name: "acm-c", orgId: "org-c" }),
        ],
        skipped: [{ name: "no-claim", reason: "has no id.k8s.io cluster claim" }],
      }),
    ],
    ALL,
  );
  assert.deepEqual(result.clusters, [
    {
      clusterId: "a",
      name: "static-a",
      orgId: "org-a",
      source: "static",
      sources: ["static", "thanos", "acm"],
    },
    {
      clusterId: "b",
      name: "thanos-b",
      orgId: "org-b",
      source: "thanos",
      sources: ["thanos", "acm"],
    },
    { clusterId: "c", name: "acm-c", orgId: "org-c", source: "acm", sources: ["acm"] },
  ]);
  assert.deepEqual(result.sources, [
    { kind: "static", found: 1 },
    { kind: "thanos", found: 2 },
    { kind: "acm", found: 3 },
  ]);
  assert.deepEqual(result.skipped, [
    { name: "no-claim", reason: "has no id.k8s.io cluster claim", source: "acm" },
  ]);
  assert.deepEqual(result.excluded, []);
});

Deno.test("discoverClusters: sources run concurrently", async () => {
  const started = performance.now();
  await discoverClusters(
    [
      fakeSource("static", { clusters: [], skipped: [] }, 150),
      fakeSource("thanos", { clusters: [], skipped: [] }, 150),
      fakeSource("acm", { clusters: [], skipped: [] }, 150),
    ],
    ALL,
  );
  assert.ok(performance.now() - started < 400, "three 150 ms sources took more than 400 ms");
});

Deno.test("discoverClusters: invalid ids and org ids are skipped; bad names dropped with a warning", async () => {
  const result = await discoverClusters(
    [
      fakeSource("thanos", {
        clusters: [
          c("thanos", "runs"),
          c("thanos", "-leading-dash"),
          c("thanos", "has space"),
          c("thanos", "evil\x1b[2J"),
          c("thanos", "ok-1", { name: "bad\nname" }),
          c("thanos", "ok-2", { name: "  " }),
          c("thanos", "ok-3", { orgId: "x".repeat(65) }),
          c("thanos", "ok-4", { orgId: "org 1" }),
        ],
        skipped: [],
        warnings: ["cluster names unavailable: HTTP 500"],
      }),
    ],
    ALL,
  );
  assert.deepEqual(result.clusters.map((x) => [x.clusterId, x.name]), [
    ["ok-1", undefined],
    ["ok-2", undefined],
  ]);
  assert.deepEqual(result.skipped.map((s) => s.name), [
    "runs",
    "-leading-dash",
    "has space",
    "evil\\x1b[2J",
    "ok-3",
    "ok-4",
  ]);
  assert.match(result.skipped[0]!.reason, /is not a valid cluster id/);
  assert.match(result.skipped[4]!.reason, /cluster ok-3 has an org id .* not 1-64 printable/);
  assert.equal(result.sources[0]!.found, 2);
  const warnings = result.sources[0]!.warnings ?? [];
  assert.equal(warnings[0], "cluster names unavailable: HTTP 500");
  assert.match(warnings[1]!, /cluster ok-1: name "bad\\\\nname" dropped/);
  assert.equal(warnings.length, 3);
});

Deno.test("discoverClusters: the filter applies to merged clusters, by id or name", async () => {
  const result = await discoverClusters(
    [
      fakeSource("static", { clusters: [c("static", "id-1")], skipped: [] }),
      fakeSource("acm", {
        clusters: [
          c("acm", "id-1", { name: "prod-eu" }),
          c("acm", "id-2", { name: "prod-canary" }),
          c("acm", "id-3", { name: "dev" }),
        ],
        skipped: [],
      }),
    ],
    parseGlobFilter(["prod-*"], ["*-canary"]),
  );
  assert.deepEqual(result.clusters.map((x) => x.clusterId), ["id-1"]);
  assert.deepEqual(result.excluded, [
    { clusterId: "id-2", name: "prod-canary", reason: 'matches exclude pattern "*-canary"' },
    { clusterId: "id-3", name: "dev", reason: "matches no include pattern" },
  ]);
  assert.deepEqual(result.sources.map((s) => s.found), [1, 3]); // counted before the filter
});

Deno.test("discoverClusters: a failing source is reported, the others count", async () => {
  const result = await discoverClusters(
    [
      fakeSource("thanos", new BridgeError("thanos_http", "label values failed: HTTP 503\x1b[0m")),
      fakeSource("acm", { clusters: [c("acm", "a")], skipped: [] }),
    ],
    ALL,
  );
  assert.deepEqual(result.clusters.map((x) => x.clusterId), ["a"]);
  assert.deepEqual(result.sources, [
    {
      kind: "thanos",
      found: 0,
      error: "label values failed: HTTP 503\\x1b[0m",
      code: "thanos_http",
    },
    { kind: "acm", found: 1 },
  ]);
  // A plain Error is reported as `internal`.
  const plain = await discoverClusters(
    [fakeSource("acm", new Error("boom")), fakeSource("static", { clusters: [], skipped: [] })],
    ALL,
  );
  assert.deepEqual(plain.sources[0], { kind: "acm", found: 0, error: "boom", code: "internal" });
  assert.deepEqual(plain.clusters, []); // nothing found is not a failure
});

Deno.test("discoverClusters: when every source fails, discovery_failed names each failure", async () => {
  await assert.rejects(
    discoverClusters(
      [
        fakeSource("thanos", new BridgeError("thanos_timeout", "timed out after 120000 ms")),
        fakeSource("acm", new BridgeError("unauthorized", "acm: HTTP 403")),
      ],
      ALL,
    ),
    (e) => {
      assert.ok(e instanceof BridgeError);
      assert.equal(e.code, "discovery_failed");
      assert.match(e.message, /thanos: timed out after 120000 ms; acm: acm: HTTP 403/);
      return true;
    },
  );
  await assert.rejects(
    discoverClusters([], ALL),
    (e) => e instanceof BridgeError && e.code === "config",
  );
});

Deno.test("discoverClusters: an abort is a cancelled error, not a source failure", async () => {
  const controller = new AbortController();
  const slow = fakeSource("acm", { clusters: [], skipped: [] }, 10_000);
  const call = discoverClusters(
    [fakeSource("static", { clusters: [c("static", "a")], skipped: [] }), slow],
    ALL,
    controller.signal,
  );
  setTimeout(() => controller.abort(new Error("shutting down")), 20);
  await assert.rejects(
    call,
    (e) => e instanceof BridgeError && e.code === "cancelled" && /shutting down/.test(e.message),
  );
  assert.equal(slow.calls, 1);
  await assert.rejects(
    discoverClusters([slow], ALL, controller.signal),
    (e) => e instanceof Error && /shutting down/.test(e.message),
  );
});
