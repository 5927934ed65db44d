import assert from "node:assert/strict";
import { goTimeString, hourColumns } from "./go_time.ts";

Deno.test("hourColumns: month start, next month start, H:00:00, H:59:59", () => {
  assert.deepEqual(hourColumns(new Date("2020-11-06T18:00:00Z")), [
    "2020-11-01 00:00:00 +0000 UTC",
    "2020-12-01 00:00:00 +0000 UTC",
    "2020-11-06 18:00:00 +0000 UTC",
    "2020-11-06 18:59:59 +0000 UTC",
  ]);
  assert.deepEqual(hourColumns(new Date("2026-12-31T23:00:00Z")).slice(0, 2), [
    "2026-12-01 00:00:00 +0000 UTC",
    "2027-01-01 00:00:00 +0000 UTC",
  ]);
});

Deno.test("goTimeString refuses fractions (CMMO never writes one)", () => {
  assert.throws(() => goTimeString(new Date("2020-11-06T18:00:00.5Z")), RangeError);
});
