import assert from "node:assert/strict";
import { createClusterPlanner } from "./cluster_planner.ts";
import { COST_QUERIES } from "./catalogue.ts";
import { collectionParams, planQueries } from "./query_plan.ts";
import { planRosQueries, rosPlanFingerprint } from "./ros_plan.ts";

const IDS = [
  "763da86a-5424-450f-aa35-43de12cd8238",
  "c.1",
  'we"ird\\id',
  "ünïcode-\u2028-\n-$1-$&",
  "a",
];

Deno.test("cluster planner: every cluster's plan equals planQueries/planRosQueries exactly", () => {
  for (const reduce of ["server", "client"]) {
    for (const ros of [true, false]) {
      for (const rateWindow of ["15m", "5m"]) {
        const options = { clusterLabel: "clusterID", rateWindow, reduce, ros };
        const plan = createClusterPlanner(options);
        for (const clusterId of IDS) {
          const got = plan(clusterId);
          const bind = { clusterLabel: "clusterID", rateWindow, clusterId };
          const queries = planQueries(COST_QUERIES, bind);
          assert.deepEqual(got.queries, queries);
          const rosPlan = ros ? planRosQueries(bind) : null;
          assert.deepEqual(got.ros, rosPlan);
          const params = collectionParams(queries, options);
          assert.deepEqual(
            got.params,
            rosPlan ? { ...params, rosHash: rosPlanFingerprint(rosPlan) } : params,
          );
        }
      }
    }
  }
});

Deno.test("cluster planner: bad ids are refused like the rewriter refuses them", () => {
  const plan = createClusterPlanner({
    clusterLabel: "clusterID",
    rateWindow: "15m",
    reduce: "server",
    ros: false,
  });
  assert.throws(() => plan(""), RangeError);
  assert.throws(() => plan("a\ud800b"), RangeError);
});
