import assert from "node:assert/strict";
import { type BatchCandidate, planBatches, UNKNOWN_CLUSTER_SERIES } from "./collect_job.ts";
import type { ClusterPlan } from "./run_plan.ts";

const H = 3_600_000;
const at = (id: string, from: number, to: number, series: number | null): BatchCandidate => ({
  plan: { clusterId: id, fromMs: from * H, toMs: to * H, source: "watermark" } as ClusterPlan,
  series,
});

Deno.test("planBatches: clusters share a batch only with the same hours, oldest first", () => {
  const c = [
    at("a", 10, 12, 5),
    at("b", 2, 12, 5), // long outage: its own group, first
    at("c", 10, 12, 5),
    at("d", 13, 12, 5), // up to date
    at("e", 10, 11, 5), // same start, other end
  ];
  assert.deepEqual(planBatches(c, 100, 1000), [[1], [4], [0, 2], [3]]);
});

Deno.test("planBatches: at most `size` clusters and `maxSeries` estimated series per batch", () => {
  const c = Array.from({ length: 7 }, (_, i) => at(`c${i}`, 1, 1, 100));
  assert.deepEqual(planBatches(c, 3, 1e6), [[0, 1, 2], [3, 4, 5], [6]]);
  assert.deepEqual(planBatches(c, 100, 250), [[0, 1], [2, 3], [4, 5], [6]]);
  // Larger than the limit alone: a batch of its own. Unknown size: the default estimate.
  const mixed = [at("big", 1, 1, 5000), at("x", 1, 1, null), at("y", 1, 1, null)];
  assert.deepEqual(planBatches(mixed, 100, 1000), [[0], [1, 2]]);
  assert.deepEqual(planBatches(mixed, 100, UNKNOWN_CLUSTER_SERIES), [[0], [1], [2]]);
  assert.deepEqual(planBatches(c, 1, 1e6).length, 7);
  assert.throws(() => planBatches(c, 0, 1), RangeError);
});
