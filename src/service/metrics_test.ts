import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { createMetrics } from "./metrics.ts";
import type { RunMetrics } from "./run_manager.ts";
import type { RunRecord } from "./run_types.ts";

/** Runs `promtool check metrics` on `text`; returns its exit code and output. */
async function promtool(text: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

/** Value of one sample line `name{labels} value`, or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

function record(trigger: "api" | "schedule", state: RunRecord["state"]) {
  return { trigger, state } as const;
}

function exercise() {
  const m = createMetrics("1.2.3");
  m.runStarted("schedule");
  m.runFinished(record("schedule", "succeeded"), null, 42);
  m.runFinished(record("api", "partial"), null, 3700);
  // A local-mode run: 7 self-checks, 2 of them mismatched.
  m.runFinished(
    record("api", "succeeded"),
    { local: { checks: 7, mismatches: [{}, {}] } },
    1,
  );
  m.hourCollected("cluster-a");
  m.hourCollected("cluster-b");
  m.hourFailed("cluster-b");
  m.onQuery({ ok: true, code: null, ms: 1500, bytes: 10_000 });
  m.onQuery({ ok: false, code: "thanos_timeout", ms: 120_000, bytes: 0 });
  m.onQuery({ ok: false, code: 'evil"\n{code}', ms: 5, bytes: 0 });
  m.payload("s3-kafka", "new", 2_000_000);
  m.payload("s3-kafka", "queued", 1_000);
  m.payload("dir", "unchanged", 0);
  m.clusterSucceeded("cluster-a", 1_790_000_000);
  m.hoursBehind("cluster-a", 2);
  m.hoursBehind("cluster-b", 5);
  m.hoursBehind("cluster-b", null);
  m.outbox(3);
  return m;
}

Deno.test("metrics: the contract names and labels, with the recorded values", async () => {
  const { text, contentType } = await exercise().render();
  assert.match(contentType, /^text\/plain; version=0\.0\.4/);
  const names = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
  assert.deepEqual(names.sort(), [
    "thanos_bridge_build_info gauge",
    "thanos_bridge_cluster_hours_collected_total counter",
    "thanos_bridge_cluster_hours_failed_total counter",
    "thanos_bridge_hours_behind gauge",
    "thanos_bridge_last_success_timestamp_seconds gauge",
    "thanos_bridge_outbox_messages gauge",
    "thanos_bridge_payload_bytes histogram",
    "thanos_bridge_payloads_total counter",
    "thanos_bridge_queries_total counter",
    "thanos_bridge_query_bytes_total counter",
    "thanos_bridge_query_duration_seconds histogram",
    "thanos_bridge_run_duration_seconds histogram",
    "thanos_bridge_runs_total counter",
    "thanos_bridge_selfcheck_mismatches_total counter",
    "thanos_bridge_selfchecks_total counter",
  ]);
  const expect: [string, number][] = [
    ['thanos_bridge_build_info{version="1.2.3"}', 1],
    ['thanos_bridge_runs_total{trigger="schedule",result="succeeded"}', 1],
    ['thanos_bridge_runs_total{trigger="schedule",result="failed"}', 0],
    ['thanos_bridge_runs_total{trigger="api",result="partial"}', 1],
    ["thanos_bridge_run_duration_seconds_count", 3],
    ["thanos_bridge_run_duration_seconds_sum", 3743],
    ["thanos_bridge_selfchecks_total", 7],
    ["thanos_bridge_selfcheck_mismatches_total", 2],
    ['thanos_bridge_run_duration_seconds_bucket{le="60"}', 2],
    ["thanos_bridge_cluster_hours_collected_total", 2],
    ["thanos_bridge_cluster_hours_failed_total", 1],
    ['thanos_bridge_queries_total{result="ok"}', 1],
    ['thanos_bridge_queries_total{result="thanos_timeout"}', 1],
    ['thanos_bridge_queries_total{result="error"}', 1],
    ["thanos_bridge_query_duration_seconds_count", 3],
    ["thanos_bridge_query_duration_seconds_sum", 121.505],
    ["thanos_bridge_query_bytes_total", 10_000],
    ['thanos_bridge_payloads_total{sink="s3-kafka",result="new"}', 1],
    ['thanos_bridge_payloads_total{sink="s3-kafka",result="queued"}', 1],
    ['thanos_bridge_payloads_total{sink="dir",result="unchanged"}', 1],
    ["thanos_bridge_payload_bytes_count", 2],
    ['thanos_bridge_last_success_timestamp_seconds{cluster="cluster-a"}', 1_790_000_000],
    ['thanos_bridge_hours_behind{cluster="cluster-a"}', 2],
    ["thanos_bridge_outbox_messages", 3],
  ];
  for (const [series, value] of expect) assert.equal(sample(text, series), value, series);
  assert.equal(sample(text, 'thanos_bridge_hours_behind{cluster="cluster-b"}'), undefined);
  // Counters and histograms carry no cluster label; only the two gauges do.
  const withCluster = new Set(
    [...text.matchAll(/^(\w+)\{[^}]*cluster="/gm)].map((m) => m[1]),
  );
  assert.deepEqual([...withCluster].sort(), [
    "thanos_bridge_hours_behind",
    "thanos_bridge_last_success_timestamp_seconds",
  ]);
  assert.ok(!text.includes("evil"), "an unexpected code never becomes a label value");
});

/**
 * promtool's linter reads `hours` in a name as a time unit; these three
 * names are the contract (issue 7 §4): two count cluster-hours, and
 * `hours_behind` is a lag in whole hours, as the issue names it. They are the
 * only findings promtool may report (it reports a name once it has samples):
 * anything else (a parse error, another lint) fails.
 */
const CONTRACT_LINT = [
  'thanos_bridge_cluster_hours_collected_total use base unit "seconds" instead of "hours"',
  'thanos_bridge_cluster_hours_failed_total use base unit "seconds" instead of "hours"',
  'thanos_bridge_hours_behind use base unit "seconds" instead of "hours"',
];

Deno.test("metrics: promtool check metrics parses the output; only the contract's hour names lint", async () => {
  for (
    const [m, lint] of [[createMetrics(), CONTRACT_LINT.slice(0, 2)], [
      exercise(),
      CONTRACT_LINT,
    ]] as const
  ) {
    const { text } = await m.render();
    const { output } = await promtool(text);
    const findings = output.split("\n").map((l) => l.trim()).filter((l) => l !== "");
    assert.deepEqual(findings, lint, `promtool said:\n${output}`);
    const others = text.replace(
      /^.*thanos_bridge_(cluster_hours_collected_total|cluster_hours_failed_total|hours_behind)\b.*\n/gm,
      "",
    );
    const rest = await promtool(others);
    assert.equal(rest.code, 0, rest.output);
    assert.equal(rest.output.trim(), "");
  }
});

Deno.test("metrics: promtool is a real check (it rejects a broken exposition)", async () => {
  const { code } = await promtool("thanos_bridge_runs_total{oops 1\n");
  assert.notEqual(code, 0);
});

Deno.test("metrics: works under the binary's permissions (no /proc, no default metrics)", async () => {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    const url = new URL("./metrics.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { createMetrics } from ${JSON.stringify(url)};\n` +
        `const m = createMetrics("7.7.7");\n` +
        `m.onQuery({ ok: true, code: null, ms: 10, bytes: 1 });\n` +
        `console.log((await m.render()).text);\n`,
    );
    const config = fileURLToPath(new URL("../../deno.json", import.meta.url));
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        `--config=${config}`,
        "--allow-net",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-sys=osRelease,hostname",
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, stderr);
    assert.match(stdout, /^thanos_bridge_build_info\{version="7\.7\.7"\} 1$/m);
    assert.ok(!/process_|nodejs_/.test(stdout), "no default process metrics");
  } finally {
    await Deno.remove(script);
  }
});

Deno.test("metrics: BridgeMetrics is the run manager's RunMetrics (checked by the type checker)", async () => {
  const m = createMetrics();
  const asRunMetrics: RunMetrics = m;
  asRunMetrics.runStarted("api");
  asRunMetrics.runFinished({ trigger: "api", state: "interrupted" } as RunRecord, null, NaN);
  const { text } = await m.render();
  assert.equal(sample(text, 'thanos_bridge_runs_total{trigger="api",result="interrupted"}'), 1);
  assert.equal(sample(text, 'thanos_bridge_runs_total{trigger="api",result="succeeded"}'), 0);
  assert.equal(sample(text, "thanos_bridge_run_duration_seconds_count"), 0, "NaN is not observed");
});
