import assert from "node:assert/strict";
import { BridgeError } from "../model.ts";
import {
  combineServerAggregates,
  parseSampleValue,
  reduceSamples,
  serverAggregates,
} from "./reduce.ts";

const pts = (...vs: string[]) => vs.map((v, i) => [i * 60, v] as const);

Deno.test("parseSampleValue handles Prometheus specials and rejects junk", () => {
  assert.equal(parseSampleValue("1.5"), 1.5);
  assert.equal(parseSampleValue("1e+21"), 1e21);
  assert.equal(parseSampleValue("+Inf"), Infinity);
  assert.equal(parseSampleValue("-Inf"), -Infinity);
  assert.ok(Number.isNaN(parseSampleValue("NaN")));
  assert.throws(() => parseSampleValue("abc"), /abc/);
  assert.throws(() => parseSampleValue(""), BridgeError);
});

Deno.test("reduceSamples follows CMMO's getValue", () => {
  assert.deepEqual(reduceSamples(pts("1", "2", "3"), "sum"), { value: 6, n: 3 });
  assert.deepEqual(reduceSamples(pts("1", "5", "3"), "max"), { value: 5, n: 3 });
  assert.deepEqual(reduceSamples(pts("4", "2", "3"), "min"), { value: 2, n: 3 });
  assert.deepEqual(reduceSamples(pts("1", "2"), "avg"), { value: 1.5, n: 2 });
  // Summed in time order in float64: (0.1 + 0.2) + 0.3, not 0.1 + (0.2 + 0.3).
  assert.equal(reduceSamples(pts("0.1", "0.2", "0.3"), "sum").value, 0.1 + 0.2 + 0.3);
  // A leading NaN sticks for max/min, as Go's strict comparisons do.
  assert.ok(Number.isNaN(reduceSamples(pts("NaN", "1"), "max").value));
  assert.equal(reduceSamples(pts("1", "NaN", "2"), "max").value, 2);
});

Deno.test("server aggregates rebuild the client reduction", () => {
  assert.deepEqual(serverAggregates(null), ["count"]);
  assert.deepEqual(serverAggregates("sum"), ["sum"]);
  assert.deepEqual(serverAggregates("max"), ["max", "count"]);
  assert.deepEqual(serverAggregates("avg"), ["sum", "count"]);
  const values = ["0.25", "0.5", "0.125", "1.75"];
  for (const r of ["sum", "max", "min", "avg"] as const) {
    const client = reduceSamples(pts(...values), r);
    const nums = values.map(Number);
    const server = combineServerAggregates(r, {
      sum: nums.reduce((a, b) => a + b, 0),
      max: Math.max(...nums),
      min: Math.min(...nums),
      count: nums.length,
    });
    assert.equal(server.value, client.value, r);
    if (r !== "sum") assert.equal(server.n, client.n, r);
  }
  assert.throws(() => combineServerAggregates("max", { max: 1 }), /count/);
});
