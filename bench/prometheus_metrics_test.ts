import assert from "node:assert/strict";
import {
  buildVersion,
  compactionCounters,
  metricSum,
  waitForCompactions,
} from "./prometheus_metrics.ts";

const PAGE = [
  "# HELP prometheus_tsdb_compactions_total Total number of compactions that were executed.",
  "# TYPE prometheus_tsdb_compactions_total counter",
  "prometheus_tsdb_compactions_total 3",
  "prometheus_tsdb_compactions_triggered_total 2",
  "prometheus_tsdb_compactions_failed_total 0",
  'prometheus_tsdb_blocks_loaded{db="a} b",note="q\\"}"} 4',
  'prometheus_tsdb_blocks_loaded{db="c"} 1.5e0',
  'prometheus_build_info{branch="debian/sid",goversion="go1.19",version="2.42.0+ds"} 1',
  "other_gauge NaN",
  "",
].join("\n");

Deno.test("metricSum adds every sample of one name, labels with quotes and braces included", () => {
  assert.equal(metricSum(PAGE, "prometheus_tsdb_compactions_total"), 3);
  assert.equal(metricSum(PAGE, "prometheus_tsdb_compactions_triggered_total"), 2);
  assert.equal(metricSum(PAGE, "prometheus_tsdb_blocks_loaded"), 5.5);
  assert.equal(metricSum(PAGE, "prometheus_tsdb_compactions"), undefined);
  assert.equal(metricSum(PAGE, "missing"), undefined);
  assert.ok(Number.isNaN(metricSum(PAGE, "other_gauge")));
});

Deno.test("metricSum rejects a bad value or an unterminated label set", () => {
  assert.throws(() => metricSum('x{a="1"} twelve\n', "x"), SyntaxError);
  assert.throws(() => metricSum('x{a="1} 2\n', "x"), SyntaxError);
});

Deno.test("buildVersion reads the version label of prometheus_build_info", () => {
  assert.equal(buildVersion(PAGE), "2.42.0+ds");
  assert.equal(buildVersion("up 1\n"), undefined);
});

/** Serves /metrics from `page()` on a loopback port. */
async function withMetrics(page: () => string, fn: (url: string) => Promise<void>) {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) =>
      new URL(req.url).pathname === "/metrics"
        ? new Response(page())
        : new Response("nope", { status: 404 }),
  );
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

function counters(triggered: number, compactions: number, blocks: number): string {
  return `prometheus_tsdb_compactions_triggered_total ${triggered}\n` +
    `prometheus_tsdb_compactions_total ${compactions}\n` +
    `prometheus_tsdb_blocks_loaded ${blocks}\n`;
}

Deno.test("compactionCounters reads the three counters", async () => {
  await withMetrics(() => counters(1, 7, 3), async (url) => {
    assert.deepEqual(await compactionCounters(url), { triggered: 1, compactions: 7, blocks: 3 });
  });
});

Deno.test("waitForCompactions waits for a first pass and then for quiet", async () => {
  // Pass starts at poll 3, merges blocks until poll 6, then nothing changes.
  const timeline = [
    counters(0, 0, 5),
    counters(0, 0, 5),
    counters(0, 0, 5),
    counters(1, 1, 4),
    counters(1, 2, 3),
    counters(1, 2, 3),
    counters(1, 3, 2),
  ];
  let polls = 0;
  await withMetrics(() => timeline[Math.min(polls++, timeline.length - 1)]!, async (url) => {
    const started = performance.now();
    const settled = await waitForCompactions(url, { quietMs: 60, pollMs: 10 });
    assert.deepEqual(settled, { triggered: 1, compactions: 3, blocks: 2 });
    assert.ok(polls >= timeline.length + 5, `polls ${polls}`);
    assert.ok(performance.now() - started >= 60);
  });
});

Deno.test("waitForCompactions gives up with a RangeError when no pass starts", async () => {
  await withMetrics(() => counters(0, 0, 5), async (url) => {
    await assert.rejects(
      waitForCompactions(url, { timeoutMs: 100, quietMs: 10, pollMs: 10 }),
      RangeError,
    );
  });
});
