import assert from "node:assert/strict";
import { configFromEnv, newestReadyHour, parseDay, resolveConfig } from "./config.ts";

const ctx = { now: new Date("2026-11-23T12:05:00Z"), cacheDir: "/home/u/.cache" };
const base = { thanosUrl: "http://127.0.0.1:9090/", clusters: ["c1"], out: "out" };

Deno.test("defaults", () => {
  const c = resolveConfig({ ...base, day: "2026-11-01" }, ctx);
  assert.equal(c.thanosUrl, "http://127.0.0.1:9090");
  assert.equal(c.lastHour, 23);
  assert.equal(c.clusterLabel, "clusterID");
  assert.equal(c.rateWindow, "15m");
  assert.equal(c.concurrency, 4);
  assert.equal(c.timeoutMs, 120_000);
  assert.equal(c.maxAttempts, 5);
  assert.equal(c.reduce, "server");
  assert.equal(c.batchHours, 6);
  assert.equal(c.settleDelayMs, 600_000);
  assert.equal(c.stateDir, "/home/u/.cache/thanos-bridge");
  assert.equal(c.maxBytes, 104_857_600);
  assert.equal(c.manifestVersion, "78eabeb962648926f98b4cc239a6f59541f001cd");
  assert.equal(c.json, false);
  assert.equal(c.recollect, false);
});

Deno.test("day and last hour follow the newest ready hour (1 h + settle delay)", () => {
  // 12:05 with a 10 min settle delay: 10:00–10:59 is the newest ready hour.
  assert.deepEqual(newestReadyHour(ctx.now, 600_000), new Date("2026-11-23T10:00:00Z"));
  const today = resolveConfig(base, ctx);
  assert.equal(today.day, "2026-11-23");
  assert.equal(today.lastHour, 10);
  assert.equal(resolveConfig({ ...base, settleDelay: "0s" }, ctx).lastHour, 11);
  assert.equal(resolveConfig({ ...base, until: "7" }, ctx).lastHour, 7);
  assert.throws(
    () => resolveConfig({ ...base, until: 11 }, ctx),
    /--until 11: hour 2026-11-23 11:00 is not closed and settled yet \(ready at 2026-11-23T12:10:00.000Z\)/,
  );
  assert.throws(() => resolveConfig({ ...base, day: "2026-11-24" }, ctx), /has no closed hour yet/);
  // Just after midnight the newest ready hour is yesterday 23:00.
  const early = resolveConfig(base, { ...ctx, now: new Date("2026-11-24T00:15:00Z") });
  assert.deepEqual([early.day, early.lastHour], ["2026-11-23", 23]);
});

Deno.test("bad values are named in the error", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ thanosUrl: "ftp://x" }, /--thanos-url must be http or https, got "ftp:\/\/x"/],
    [{ thanosUrl: "not a url" }, /--thanos-url is not a URL: "not a url"/],
    [{ thanosUrl: "https://u:p@h" }, /must not contain credentials/],
    [{ clusters: [] }, /at least one --cluster/],
    [{ clusters: ["../etc"] }, /--cluster "..\/etc" is not a valid cluster id/],
    [{ out: "" }, /--out DIR is required/],
    [{ day: "2026-02-30" }, /--day must be a real date as YYYY-MM-DD, got "2026-02-30"/],
    [{ until: "24" }, /--until must be a whole number from 0 to 23, got "24"/],
    [{ until: "x" }, /--until must be a whole number/],
    [{ concurrency: "0" }, /--concurrency must be a whole number from 1 to 64, got "0"/],
    [
      { rateWindow: "5 minutes" },
      /--rate-window must be a duration like 90s, 15m or 1h, got "5 minutes"/,
    ],
    [{ reduce: "both" }, /--reduce must be server or client, got "both"/],
    [{ clusterLabel: "cluster-id" }, /--cluster-label "cluster-id" is not a label name/],
    [{ headers: ["no colon"] }, /--header must look like "Name: value", got "no colon"/],
    [{ headers: ["Authorization: Bearer x"] }, /must not set Authorization/],
    [{ maxSizeMb: "101" }, /--max-size-mb must be a whole number from 1 to 100, got "101"/],
    [{ certFile: "c.pem" }, /--cert-file and --key-file must be given together/],
    [{ record: "r", replay: "r" }, /cannot be used together/],
    [{ timeout: "10ms" }, /--timeout must be at least 1s/],
  ];
  for (const [patch, re] of bad) {
    assert.throws(
      () => resolveConfig({ ...base, day: "2026-11-01", ...patch }, ctx),
      re,
      JSON.stringify(patch),
    );
  }
  assert.throws(
    () => resolveConfig({ clusters: ["c"], out: "o" }, ctx),
    /--thanos-url is required/,
  );
  assert.equal(resolveConfig({ clusters: ["c"], out: "o", replay: "rec" }, ctx).thanosUrl, null);
});

Deno.test("headers, clusters de-duplicated, parseDay", () => {
  const c = resolveConfig(
    { ...base, clusters: ["a", "b", "a"], headers: ["X-Scope-OrgID: t1"] },
    ctx,
  );
  assert.deepEqual(c.clusters, ["a", "b"]);
  assert.deepEqual(c.headers, { "X-Scope-OrgID": "t1" });
  assert.deepEqual(parseDay("2024-02-29"), new Date("2024-02-29T00:00:00Z"));
});

Deno.test("configFromEnv reads THANOS_BRIDGE_* variables", () => {
  assert.deepEqual(
    configFromEnv({
      THANOS_BRIDGE_THANOS_URL: "http://t",
      THANOS_BRIDGE_CLUSTER: "a, b c",
      THANOS_BRIDGE_HEADER: "A: 1\nB: 2",
      THANOS_BRIDGE_RECOLLECT: "yes",
      THANOS_BRIDGE_JSON: "0",
      THANOS_BRIDGE_UNTIL: "5",
      OTHER: "x",
    }),
    {
      thanosUrl: "http://t",
      clusters: ["a", "b", "c"],
      headers: ["A: 1", "B: 2"],
      recollect: true,
      json: false,
      until: "5",
    },
  );
  assert.throws(
    () => configFromEnv({ THANOS_BRIDGE_JSON: "maybe" }),
    /THANOS_BRIDGE_JSON must be true or false, got "maybe"/,
  );
});
