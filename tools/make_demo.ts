/**
 * Re-creates the shipped demo recording `demo/recording/`: generates the
 * synthetic test hub, loads it into a real Prometheus, and runs the `collect`
 * entry point with `--record`: once with the exact flags of `deno task demo`
 * (recorded requests are keyed by query and time range, so the replay must use
 * the same day, reduction mode, batch size and cluster batch), and once with
 * `--cluster-batch 1 --no-ros --batch-hours 6`, for tests that replay a subset
 * of the clusters and of the hours (up to 05, 11, 17 or 23). Both are local
 * mode (the default): raw reads by instant queries, the self-checks' server
 * answers and the server's build info.
 *
 * Run: `deno run -A tools/make_demo.ts`
 *
 * @module
 */

import { RUNTIME_FLAGS } from "../src/cli/runtime_flags.ts";
import { defaultTestHub } from "./synth/model.ts";
import { prepareHub, startPrometheus } from "./synth/prometheus.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const RECORDING = `${ROOT}demo/recording`;
const work = await Deno.makeTempDir({ prefix: "make_demo_" });
try {
  const { hub, dataDir } = await prepareHub(defaultTestHub(), work);
  const server = await startPrometheus({ dataDir });
  try {
    await Deno.remove(RECORDING, { recursive: true }).catch(() => {});
    const clusters = hub.clusters.map((c) => c.id).join(",");
    // 1. The demo's own run (one batch for the three clusters). 2. Each cluster on its own
    //    queries without ROS, in 6-hour batches, which tests replay for other subsets of the
    //    clusters and hours (tests/register_test.ts collects two of them, to 05 then to 11).
    const passes: [string, string[]][] = [["demo", []], ["per-cluster", [
      "--cluster-batch",
      "1",
      "--no-ros",
      "--batch-hours",
      "6",
    ]]];
    for (const [name, extra] of passes) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...RUNTIME_FLAGS,
          `${ROOT}src/cli/main.ts`,
          "collect",
          "--thanos-url",
          server.url,
          "--cluster",
          clusters,
          "--day",
          "2026-11-01",
          "--record",
          RECORDING,
          "--state",
          `${work}/state-${name}`,
          "--out",
          `${work}/out-${name}`,
          ...extra,
        ],
        stdout: "inherit",
        stderr: "inherit",
      }).output();
      if (out.code !== 0) throw new Error(`collect (${name}) exited with ${out.code}`);
    }
    console.log(`\nrecorded ${RECORDING} for clusters ${clusters}`);
  } finally {
    await server.stop();
  }
} finally {
  await Deno.remove(work, { recursive: true });
}
