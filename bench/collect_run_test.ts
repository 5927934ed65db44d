import assert from "node:assert/strict";
import { startPrometheus } from "../tools/synth/prometheus.ts";
import { BENCH_DAY, benchHubOptions, prepareBenchHub } from "./bench_hub.ts";
import {
  collectArgs,
  COMPILE_PERMISSIONS,
  parseSummary,
  runCollectProcess,
  summaryRows,
} from "./collect_run.ts";

const BASE = {
  url: "http://127.0.0.1:9",
  clusterId: "c1",
  day: "2026-11-01",
  until: 23,
  mode: "client" as const,
  stateDir: "/tmp/s",
  outDir: "/tmp/o",
};

Deno.test("COMPILE_PERMISSIONS are exactly the flags of `deno task compile`", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  ) as { tasks: Record<string, string> };
  const compile = config.tasks.compile!.split(/\s+/).filter((a) =>
    a.startsWith("--allow") || a === "--no-prompt" || a === "--no-code-cache" ||
    a.startsWith("--v8-flags")
  );
  assert.deepEqual([...COMPILE_PERMISSIONS].sort(), compile.sort());
});

Deno.test("collectArgs runs src/cli/main.ts collect with every option and --json", () => {
  const args = collectArgs({ ...BASE, recordDir: "/tmp/r" });
  const main = args.findIndex((a) => a.endsWith("/src/cli/main.ts"));
  assert.ok(main > 0);
  assert.deepEqual(args.slice(0, main), ["run", ...COMPILE_PERMISSIONS]);
  const flags = args.slice(main + 1);
  assert.equal(flags[0], "collect");
  const value = (flag: string) => flags[flags.indexOf(flag) + 1];
  assert.equal(value("--thanos-url"), BASE.url);
  assert.equal(value("--cluster"), "c1");
  assert.equal(value("--day"), "2026-11-01");
  assert.equal(value("--until"), "23");
  assert.equal(value("--reduce"), "client");
  assert.equal(value("--record"), "/tmp/r");
  assert.equal(value("--state"), "/tmp/s");
  assert.equal(value("--out"), "/tmp/o");
  assert.equal(flags.at(-1), "--json");
  assert.ok(!collectArgs(BASE).includes("--record"));
});

Deno.test("collectArgs passes each --reduce mode, local included", () => {
  for (const mode of ["server", "client", "local"] as const) {
    const args = collectArgs({ ...BASE, mode });
    assert.equal(args[args.indexOf("--reduce") + 1], mode);
    assert.equal(args.filter((a) => a === "--reduce").length, 1);
  }
});

Deno.test("collectArgs: ROS is the CLI's default; ros: false adds --no-ros", () => {
  assert.ok(!collectArgs(BASE).includes("--no-ros"));
  assert.ok(!collectArgs({ ...BASE, ros: true }).includes("--no-ros"));
  const args = collectArgs({ ...BASE, ros: false });
  assert.equal(args.filter((a) => a === "--no-ros").length, 1);
  assert.equal(args.at(-1), "--json");
});

Deno.test("parseSummary rejects non-JSON and summaries without the figures", () => {
  assert.throws(() => parseSummary("thanos-bridge: oops"), SyntaxError);
  assert.throws(() => parseSummary('{"queries":1}'), TypeError);
  assert.throws(
    () => parseSummary('{"queries":1,"bytesDownloaded":2,"ms":3,"ok":true,"clusters":[null]}'),
    TypeError,
  );
  const s = parseSummary(
    '{"queries":1,"bytesDownloaded":2,"ms":3,"ok":true,"clusters":[{"days":[{"rows":{"pod":4}}]}]}',
  );
  assert.equal(summaryRows(s), 4);
});

Deno.test({
  name: "runCollectProcess runs collect on a real Prometheus and samples the process itself",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using hub = await prepareBenchHub(benchHubOptions(3), { hoursPerFile: 24 });
    await using prom = await startPrometheus({ dataDir: hub.dataDir });
    const work = await Deno.makeTempDir({ prefix: "collect_run_" });
    try {
      const run = await runCollectProcess({
        url: prom.url,
        clusterId: hub.clusterId,
        day: BENCH_DAY,
        until: 1,
        mode: "server",
        stateDir: `${work}/state`,
        outDir: `${work}/out`,
        recordDir: `${work}/rec`,
      });
      assert.equal(run.summary.ok, true);
      assert.equal(run.summary.clusters[0]!.days[0]!.hours, 2);
      assert.ok(run.rows > 0);
      assert.equal(run.rows, summaryRows(run.summary));
      assert.ok(run.summary.queries > 0);
      assert.ok(run.processMs >= run.summary.ms);
      // The sampled PID is the deno process running collect, and it did the work itself.
      assert.match(run.usage.command, /src\/cli\/main\.ts collect /);
      assert.deepEqual(run.usage.childPids, []);
      assert.ok(run.usage.peakRssBytes > 20e6, `peak ${run.usage.peakRssBytes}`);
      assert.ok(run.usage.cpuSeconds > 0.1, `cpu ${run.usage.cpuSeconds}`);
      assert.ok(Deno.statSync(`${work}/rec/index.jsonl`).size > 0);

      await assert.rejects(
        runCollectProcess({ ...BASE, url: prom.url, day: "2026-13-01" }),
        (e: Error) => /exited with code 2/.test(e.message),
      );
      const controller = new AbortController();
      const aborted = runCollectProcess({
        url: prom.url,
        clusterId: hub.clusterId,
        day: BENCH_DAY,
        until: 23,
        mode: "client",
        stateDir: `${work}/state2`,
        outDir: `${work}/out2`,
        signal: controller.signal,
      });
      setTimeout(() => controller.abort(new Error("stop")), 200);
      await assert.rejects(aborted, /stop/);
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});

Deno.test("collectArgs: several clusters, an hour range instead of the day, extra flags last", () => {
  const args = collectArgs({
    ...BASE,
    clusterIds: ["a", "b", "c"],
    hours: { from: "2026-11-01T07", to: "2026-11-01T08" },
    extraArgs: ["--cluster-batch", "1", "--no-skip-empty"],
  });
  const value = (flag: string) => args[args.indexOf(flag) + 1];
  assert.equal(value("--cluster"), "a,b,c");
  assert.equal(value("--from"), "2026-11-01T07");
  assert.equal(value("--to"), "2026-11-01T08");
  assert.equal(args.includes("--day"), false);
  assert.equal(args.includes("--until"), false);
  assert.deepEqual(args.slice(-4), ["--json", "--cluster-batch", "1", "--no-skip-empty"]);
  // Without them, the single cluster and the day as before.
  const plain = collectArgs(BASE);
  assert.equal(plain[plain.indexOf("--cluster") + 1], "c1");
  assert.equal(plain[plain.indexOf("--until") + 1], "23");
  assert.equal(plain.at(-1), "--json");
});
