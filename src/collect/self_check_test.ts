import assert from "node:assert/strict";
import { compareHourSeries, counterResetClusters, SelfCheckRotation } from "./self_check.ts";

Deno.test("SelfCheckRotation walks through every query and every hour of a range", () => {
  const rotation = new SelfCheckRotation();
  const names = ["a", "b", "c"];
  const hours = [0, 1, 2, 3];
  const range = { clusters: ["c2", "c1"], day: "2026-11-01" };
  const seen = new Set<string>();
  const picks: string[] = [];
  for (let i = 0; i < names.length * hours.length; i++) {
    const { query, hour } = rotation.next(names, hours, range);
    seen.add(`${query}@${hour}`);
    picks.push(`${query}@${hour}`);
  }
  // 3 and 4 are coprime: 12 checks cover all 12 (query, hour) pairs.
  assert.equal(seen.size, 12);
  // The pick depends on the range alone: not on the order of its clusters, nor on other
  // ranges picked before (a replay of some of a run's clusters checks what the run checked).
  const other = new SelfCheckRotation();
  other.next(names, hours, { clusters: ["c3"], day: "2026-11-01" });
  other.next(names, [4, 5, 6, 7], range);
  assert.equal(
    (({ query, hour }) => `${query}@${hour}`)(
      other.next(names, hours, { clusters: ["c1", "c2"], day: "2026-11-01" }),
    ),
    picks[0],
  );
  // Successive hour ranges (a scheduled run per hour) check successive queries.
  const at = (first: number) => new SelfCheckRotation().next(names, [first], range).query;
  assert.deepEqual([at(5), at(6), at(7)].sort(), names);
  // The next day's range with the same first hour: 24 hours later in the walk.
  const k0 = names.indexOf(at(5));
  assert.equal(
    new SelfCheckRotation().next(names, [5], { ...range, day: "2026-11-02" }).query,
    names[(k0 + 24) % 3],
  );
  assert.deepEqual(
    new SelfCheckRotation(1).next(names, [5], range).query,
    names[(k0 + 1) % 3],
    "start shifts k",
  );
  assert.throws(() => rotation.next([], hours, range), RangeError);
  assert.throws(() => rotation.next(names, hours, { ...range, day: "11/01" }), /Invalid day/);
  assert.throws(() => new SelfCheckRotation(-1), /Invalid rotation start -1/);
});

Deno.test("compareHourSeries agrees after %.6f and names the first difference", () => {
  const s = (pod: string, value: number, n = 60) => ({ metric: { pod }, reduced: { value, n } });
  assert.equal(compareHourSeries([s("a", 1.0000001)], [s("a", 1.0000004)], "sum"), null);
  assert.match(
    compareHourSeries([s("a", 1.000001)], [s("a", 1.000002)], "sum")!,
    /local 1\.000001, server 1\.000002/,
  );
  // max compares the number of points too (CMMO writes max × 60 × n).
  assert.match(compareHourSeries([s("a", 2, 59)], [s("a", 2, 60)], "max")!, /n=59.*n=60/);
  // sum: the server reports no count, so n is not compared.
  assert.equal(compareHourSeries([s("a", 2, 59)], [s("a", 2, 0)], "sum"), null);
  assert.match(compareHourSeries([], [s("a", 1)], "sum")!, /server's answer only/);
  assert.match(compareHourSeries([s("b", 1)], [], "sum")!, /local answer only/);
  // Label-only queries compare presence; key order does not matter.
  const l = (metric: Record<string, string>) => ({ metric, reduced: null });
  assert.equal(compareHourSeries([l({ x: "1", y: "2" })], [l({ y: "2", x: "1" })], null), null);
  assert.match(compareHourSeries([l({ x: "1" })], [l({ x: "2" })], null)!, /only/);
  // The server's *_over_time wrapper drops __name__, a plain selector keeps it: same series.
  assert.equal(compareHourSeries([l({ __name__: "m", x: "1" })], [l({ x: "1" })], null), null);
});

Deno.test("counterResetClusters finds resets inside the window only", () => {
  const series = (c: string, t: number[], v: number[]) => ({
    metric: { c },
    t: new Float64Array(t),
    v: new Float64Array(v),
  });
  const windows = [{
    series: [
      series("a", [0, 60e3, 120e3], [5, 6, 1]), // reset at 120 s
      series("b", [0, 60e3, 120e3], [5, 6, 7]),
      series("c", [0, 60e3, 200e3], [5, 6, 1]), // reset outside the window
    ],
    fromMs: 0,
    toMs: 150e3,
  }];
  assert.deepEqual([...counterResetClusters(windows, (m) => m.c!)], ["a"]);
  // A drop from a sample before the window does not count.
  const late = [{ series: [series("d", [0, 60e3, 120e3], [9, 1, 2])], fromMs: 60e3, toMs: 150e3 }];
  assert.equal(counterResetClusters(late, (m) => m.c!).size, 0);
});
