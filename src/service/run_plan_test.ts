import assert from "node:assert/strict";
import { resolveSettings } from "../config.ts";
import { ConfigError } from "../model.ts";
import { newestReadyHour, planRun } from "./run_plan.ts";

const settings = resolveSettings(
  { thanosUrl: "http://t", clusters: ["a", "b"], out: "o" },
  { cacheDir: "/c" },
);
const now = new Date("2026-11-23T12:05:00Z"); // newest ready hour: 10:00
const H = 3_600_000;
const at = (iso: string) => Date.parse(iso);

function field(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.field;
  }
  throw new Error("no error");
}

Deno.test("newestReadyHour: closed and settled", () => {
  assert.deepEqual(newestReadyHour(now, 600_000), new Date("2026-11-23T10:00:00Z"));
  assert.deepEqual(newestReadyHour(now, 0), new Date("2026-11-23T11:00:00Z"));
});

Deno.test("planRun: a day as --to means its hour 23, or today's newest ready hour", () => {
  const past = planRun({ from: "2026-11-01", to: "2026-11-01" }, settings, now, new Map());
  assert.deepEqual(past.clusters.map((c) => [c.clusterId, c.fromMs, c.toMs, c.source]), [
    ["a", at("2026-11-01T00:00Z"), at("2026-11-01T23:00Z"), "request"],
    ["b", at("2026-11-01T00:00Z"), at("2026-11-01T23:00Z"), "request"],
  ]);
  const today = planRun({ from: "2026-11-23", to: "2026-11-23" }, settings, now, new Map());
  assert.equal(today.clusters[0]!.toMs, at("2026-11-23T10:00Z"));
  const hour = planRun({ from: "2026-11-23T02", to: "2026-11-23T07" }, settings, now, new Map());
  assert.deepEqual([hour.clusters[0]!.fromMs, hour.clusters[0]!.toMs], [
    at("2026-11-23T02:00Z"),
    at("2026-11-23T07:00Z"),
  ]);
});

Deno.test("planRun: without --from, from the watermark, bounded by --max-backfill", () => {
  const marks = new Map([["a", at("2026-11-22T05:00Z")], ["b", at("2026-10-01T00:00Z")]]);
  const plan = planRun({}, settings, now, marks);
  const [a, b] = plan.clusters;
  assert.deepEqual([a!.fromMs, a!.toMs, a!.source], [
    at("2026-11-22T06:00Z"),
    at("2026-11-23T10:00Z"),
    "watermark",
  ]);
  // The last 14 UTC days: 2026-11-10 … 2026-11-23.
  assert.deepEqual([b!.fromMs, b!.source], [at("2026-11-10T00:00Z"), "backfill"]);
  const three = resolveSettings(
    { thanosUrl: "http://t", clusters: ["a"], out: "o", maxBackfill: "3d" },
    { cacheDir: "/c" },
  );
  const fresh = planRun({}, three, new Date("2026-11-04T00:20:00Z"), new Map());
  // newest ready = 2026-11-03T23:00: the last three days 01, 02, 03.
  assert.deepEqual([fresh.clusters[0]!.fromMs, fresh.clusters[0]!.toMs], [
    at("2026-11-01T00:00Z"),
    at("2026-11-03T23:00Z"),
  ]);
  const midDay = planRun({}, three, new Date("2026-11-04T10:20:00Z"), new Map());
  assert.deepEqual([midDay.clusters[0]!.fromMs, midDay.clusters[0]!.toMs], [
    at("2026-11-02T00:00Z"),
    at("2026-11-04T09:00Z"),
  ]);
  const upToDate = planRun({}, settings, now, new Map([["a", at("2026-11-23T10:00Z")]]));
  assert.ok(upToDate.clusters[0]!.fromMs > upToDate.clusters[0]!.toMs);
  assert.equal(upToDate.clusters[0]!.fromMs - H, at("2026-11-23T10:00Z"));
});

Deno.test("rule 8: planRun refuses days out of range and hours not ready", () => {
  assert.equal(field(() => planRun({ from: "1999-12-31" }, settings, now, new Map())), "from");
  assert.equal(field(() => planRun({ from: "2026-11-24" }, settings, now, new Map())), "from");
  assert.equal(field(() => planRun({ to: "2026-11-23T11" }, settings, now, new Map())), "to");
  assert.equal(field(() => planRun({ to: "2027-01-01" }, settings, now, new Map())), "to");
  assert.equal(
    field(() => planRun({ from: "2026-11-02", to: "2026-11-01" }, settings, now, new Map())),
    "from",
  );
  assert.equal(field(() => planRun({ from: "2026-11-01T24" }, settings, now, new Map())), "from");
  assert.equal(field(() => planRun({ from: "2026-11-1" }, settings, now, new Map())), "from");
  assert.equal(field(() => planRun({ from: "2020-01-01" }, settings, now, new Map())), "from");
  assert.equal(field(() => planRun({ clusters: [] }, settings, now, new Map())), "clusters");
  assert.match(
    (() => {
      try {
        planRun({ to: "2026-11-23T11" }, settings, now, new Map());
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    })(),
    /is not closed and settled yet \(ready at 2026-11-23T12:10:00.000Z\)/,
  );
});
