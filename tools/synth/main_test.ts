import assert from "node:assert/strict";
import { parseSynthArgs, runSynth } from "./main.ts";

const SMALL = ["--clusters", "1", "--nodes", "2", "--pods", "3", "--pvcs", "1", "--vms", "1"];

Deno.test("parseSynthArgs applies defaults and reads every option", () => {
  const d = parseSynthArgs(["--out", "/tmp/x"]);
  assert.equal(d.out, "/tmp/x");
  assert.equal(d.hub.clusters, 3);
  assert.equal(d.hub.hours, 28);
  assert.equal(d.hub.start.toISOString(), "2026-10-31T22:00:00.000Z");
  assert.equal(d.hub.hostile, false);
  assert.equal(d.serve, false);
  assert.equal(d.hoursPerFile, 24);
  const o = parseSynthArgs([
    "--out=/tmp/y",
    "--seed=9",
    "--clusters=2",
    "--nodes=5",
    "--pods=30",
    "--pvcs=6",
    "--vms=0",
    "--gpu-pods=0",
    "--gpu-clusters=0",
    "--start=2026-11-05T03:00:00Z",
    "--hours=30",
    "--interval=60",
    "--hours-per-file=6",
    "--hostile",
    "--serve",
  ]);
  assert.deepEqual(
    [o.hub.seed, o.hub.clusters, o.hub.nodes, o.hub.pods, o.hub.pvcs, o.hub.vms, o.hub.gpuPods],
    [9, 2, 5, 30, 6, 0, 0],
  );
  assert.equal(o.hub.gpuClusters, 0);
  assert.equal(o.hub.start.toISOString(), "2026-11-05T03:00:00.000Z");
  assert.equal(o.hub.intervalSeconds, 60);
  assert.equal(o.hoursPerFile, 6);
  assert.ok(o.hub.hostile && o.serve);
});

Deno.test("parseSynthArgs rejects bad input with the offending value", () => {
  assert.throws(() => parseSynthArgs([]), /--out/);
  assert.throws(() => parseSynthArgs(["--out", "x", "--pods", "many"]), /--pods "many"/);
  assert.throws(
    () => parseSynthArgs(["--out", "x", "--start", "yesterday"]),
    /--start "yesterday"/,
  );
  assert.throws(() => parseSynthArgs(["--out", "x", "--bogus"]));
});

Deno.test("runSynth backfills and prints the clusters and data dir", async () => {
  const dir = await Deno.makeTempDir({ prefix: "synth-cli-" });
  try {
    const lines: string[] = [];
    await runSynth(["--out", dir, ...SMALL, "--hours", "26"], undefined, (l) => lines.push(l));
    assert.equal(lines.length, 1);
    const out = JSON.parse(lines[0] ?? "");
    assert.equal(out.dataDir, `${dir}/data`);
    assert.equal(out.clusters.length, 1);
    assert.match(out.clusters[0].id, /^[0-9a-f-]{36}$/);
    const blocks = [...Deno.readDirSync(out.dataDir)].filter((e) => /^[0-9A-Z]{26}$/.test(e.name));
    assert.ok(blocks.length >= 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runSynth --serve serves until aborted, then stops Prometheus", async () => {
  const dir = await Deno.makeTempDir({ prefix: "synth-cli-" });
  try {
    const controller = new AbortController();
    const printed = Promise.withResolvers<string>();
    const done = runSynth(
      ["--out", dir, ...SMALL, "--serve"],
      controller.signal,
      (l) => printed.resolve(l),
    );
    let url = "";
    try {
      const summary = JSON.parse(await Promise.race([printed.promise, done.then(() => "{}")]));
      url = summary.url;
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(summary.clusters.length, 1);
      const res = await fetch(`${url}/api/v1/label/clusterID/values`);
      assert.deepEqual((await res.json()).data, [summary.clusters[0].id]);
    } finally {
      controller.abort();
      await done;
    }
    await assert.rejects(fetch(`${url}/-/ready`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseSynthArgs reads --drop-metric, repeatable, and rejects bad forms", () => {
  assert.equal(parseSynthArgs(["--out", "x"]).hub.dropMetrics, undefined);
  const o = parseSynthArgs([
    "--out",
    "x",
    "--drop-metric",
    "1:kube_pod_labels",
    "--drop-metric=0:DCGM_FI_DEV_MIG_MAX_SLICES",
  ]);
  assert.deepEqual(o.hub.dropMetrics, [
    { clusterIndex: 1, metric: "kube_pod_labels" },
    { clusterIndex: 0, metric: "DCGM_FI_DEV_MIG_MAX_SLICES" },
  ]);
  assert.throws(
    () => parseSynthArgs(["--out", "x", "--drop-metric", "kube_pod_labels"]),
    /--drop-metric "kube_pod_labels"/,
  );
});
