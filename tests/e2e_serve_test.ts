/**
 * End to end of the sidecar, on the real parts of the delivery tests (a
 * Prometheus with the synthetic hub, a real Kafka, a SigV4-checking
 * SeaweedFS): `thanos-bridge serve` is started as a new user would start it,
 * with a config file and an API token, and driven over HTTP; then killed,
 * restarted, stopped with SIGTERM, and left to its cron schedule.
 */
import assert from "node:assert/strict";
import { RUNTIME_FLAGS } from "../src/cli/runtime_flags.ts";
import {
  type Announcement,
  readAnnouncements,
  whereOf,
  withWorld,
  type World,
} from "./support/delivery_world.ts";
import { freePort } from "./support/kafka.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const ORG = "7654321";
const TOKEN = "e2e-api-token-0123456789";

interface RunView {
  id: string;
  trigger: string;
  state: string;
  clusters: {
    clusterId: string;
    state: string;
    hoursCollected: number;
    days: { day: string; status: string; uuid: string | null }[];
  }[];
  error: { code: string; message: string } | null;
}

interface Served {
  child: Deno.ChildProcess;
  url: string;
  stderr: () => string;
}

async function writeConfig(w: World, dir: string, extra: Record<string, unknown>): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/api-token`, TOKEN + "\n");
  const lines = Object.entries({
    "thanos-url": w.thanos.url,
    cluster: w.ids,
    sink: "s3-kafka",
    "s3-endpoint": `http://127.0.0.1:${w.s3Proxy.port}`,
    "s3-path-style": true,
    "s3-bucket": w.s3.bucket,
    "s3-prefix": "sidecar",
    "kafka-brokers": w.kafka.brokers,
    "org-id": ORG,
    state: `${dir}/state`,
    retries: 2,
    "api-token-file": `${dir}/api-token`,
    "shutdown-grace": "5s",
    "max-backfill": "2d",
    ...extra,
  }).map(([k, v]) => `${k}: ${JSON.stringify(v)}`);
  const path = `${dir}/bridge.yaml`;
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

async function startServe(w: World, config: string, port: number): Promise<Served> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...RUNTIME_FLAGS,
      `${ROOT}src/cli/main.ts`,
      "serve",
      "--config",
      config,
      "--listen",
      `127.0.0.1:${port}`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: {
      AWS_ACCESS_KEY_ID: w.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: w.s3.secretAccessKey,
      AWS_EC2_METADATA_DISABLED: "true",
    },
  }).spawn();
  let log = "";
  (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
  })().catch(() => {});
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (true) {
    try {
      const res = await fetch(`${url}/healthz`);
      await res.body?.cancel();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`serve did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { child, url, stderr: () => log };
}

async function api(
  s: Served,
  method: string,
  path: string,
  body?: unknown,
  token: string | null = TOKEN,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${s.url}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text.startsWith("{") ? JSON.parse(text) : { text } };
}

async function waitRun(
  s: Served,
  id: string,
  done: (r: RunView) => boolean,
  timeoutMs = 90_000,
): Promise<RunView[]> {
  const seen: RunView[] = [];
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { status, json } = await api(s, "GET", `/runs/${id}`);
    assert.equal(status, 200, JSON.stringify(json));
    const run = json as unknown as RunView;
    seen.push(run);
    if (done(run)) return seen;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`run ${id} did not finish: ${JSON.stringify(seen.at(-1))}\n${s.stderr()}`);
}

const t0 = performance.now();
/** Progress of the long test on stderr, so that a hang shows where it is. */
function step(name: string): void {
  console.error(`[e2e serve +${((performance.now() - t0) / 1000).toFixed(1)} s] ${name}`);
}

const finished = (r: RunView) => !["queued", "running"].includes(r.state);

async function stop(s: Served, signal: Deno.Signal): Promise<number> {
  try {
    s.child.kill(signal);
  } catch {
    // already gone
  }
  return (await s.child.status).code;
}

function uuidsOf(messages: Announcement[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of messages) {
    const { clusterId, day } = whereOf(m.value.url);
    out.set(`${clusterId}/${day}/${m.value.request_id}`, m.value.request_id);
  }
  return out;
}

Deno.test({
  name: "e2e serve: config file + API token, POST /runs, cron runs, SIGKILL → interrupted, SIGTERM",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withWorld(async (w) => {
      const [a, b] = w.ids as [string, string];
      const [d1, d2] = w.fullDays.slice(-2) as [string, string];
      const dir = `${w.work}/serve`;
      const config = await writeConfig(w, dir, { schedule: "off" });
      const port = freePort();
      let s = await startServe(w, config, port);
      try {
        // --- the API's gates ---------------------------------------------------------------------
        step("API gates");
        assert.equal((await api(s, "POST", "/runs", {}, null)).status, 401);
        assert.equal((await api(s, "POST", "/runs", {}, "wrong")).status, 401);
        const bad = await api(s, "POST", "/runs", { from: "2026-13-01" });
        assert.equal(bad.status, 400);
        assert.equal((bad.json.error as { field?: string }).field, "from");
        assert.equal((await api(s, "GET", "/runs/r-nope")).status, 404);

        // --- POST /runs for 2 clusters: progress while it runs, the result after --------------------
        step("POST /runs for 2 clusters");
        const started = await api(s, "POST", "/runs", { clusters: [a, b], from: d1, to: d1 });
        assert.equal(started.status, 202, JSON.stringify(started.json));
        const id = started.json.id as string;
        const views = await waitRun(s, id, finished);
        const last = views.at(-1)!;
        assert.equal(last.state, "succeeded", JSON.stringify(last));
        assert.equal(last.trigger, "api");
        for (const c of last.clusters) {
          assert.equal(c.days[0]?.day, d1);
          assert.equal(c.days[0]?.status, "new");
        }
        const messages = await readAnnouncements(w.kafka.brokers, 2);
        const ours = messages.filter((m) => whereOf(m.value.url).day === d1);
        assert.deepEqual(ours.map((m) => whereOf(m.value.url).clusterId).sort(), [a, b].sort());
        assert.ok(ours.every((m) => m.service === "hccm" && m.value.org_id === ORG));
        const listed = await api(s, "GET", "/runs");
        assert.equal((listed.json.runs as RunView[])[0]!.id, id);
        const clusters = await api(s, "GET", "/clusters");
        assert.equal(clusters.status, 200);

        // --- a run that hangs on S3: 409 for an overlapping run, then SIGKILL ----------------------
        step("a run that hangs on S3");
        w.s3Proxy.mode = "blackhole";
        const hanging = await api(s, "POST", "/runs", { clusters: [a], from: d2, to: d2 });
        assert.equal(hanging.status, 202);
        const hangingId = hanging.json.id as string;
        await w.s3Proxy.blackholed();
        const overlap = await api(s, "POST", "/runs", { clusters: [a, b], from: d2, to: d2 });
        assert.equal(overlap.status, 409, JSON.stringify(overlap.json));
        assert.equal((overlap.json.error as { activeRunId?: string }).activeRunId, hangingId);
        const running = await api(s, "GET", `/runs/${hangingId}`);
        assert.equal(running.json.state, "running");
        const progress = (running.json as unknown as RunView).clusters[0]!;
        assert.equal(progress.hoursCollected, 24, "progress is visible while the run runs");
        assert.ok((running.json.queries as number) > 0, "live query count while it runs");
        await stop(s, "SIGKILL");
        w.s3Proxy.mode = "pass";

        // --- restart: the killed run is interrupted; the next run delivers what was missing --------
        step("restart");
        s = await startServe(w, config, port);
        const after = await api(s, "GET", `/runs/${hangingId}`);
        assert.equal(after.json.state, "interrupted", JSON.stringify(after.json));
        const again = await api(s, "POST", "/runs", { clusters: [a, b], from: d1, to: d2 });
        assert.equal(again.status, 202, JSON.stringify(again.json));
        const againViews = await waitRun(s, again.json.id as string, finished);
        assert.equal(againViews.at(-1)!.state, "succeeded", JSON.stringify(againViews.at(-1)));
        const all = await readAnnouncements(w.kafka.brokers, 4);
        const byWindow = new Map<string, Set<string>>();
        for (const m of all) {
          const { clusterId, day } = whereOf(m.value.url);
          const key = `${clusterId}/${day}`;
          byWindow.set(key, (byWindow.get(key) ?? new Set()).add(m.value.request_id));
        }
        for (const key of [`${a}/${d1}`, `${b}/${d1}`, `${a}/${d2}`, `${b}/${d2}`]) {
          assert.equal(byWindow.get(key)?.size, 1, `${key}: one uuid, announced`);
        }
        assert.equal(uuidsOf(all).size, 4, "windows already announced keep their uuids");

        // --- SIGTERM during a run: exits within the grace, the state stays consistent --------------
        step("SIGTERM during a run");
        w.s3Proxy.mode = "blackhole";
        const doomed = await api(s, "POST", "/runs", {
          clusters: [b],
          recollect: true,
          from: d1,
          to: d1,
        });
        assert.equal(doomed.status, 202);
        await w.s3Proxy.blackholed();
        const t0 = performance.now();
        const code = await stop(s, "SIGTERM");
        const seconds = (performance.now() - t0) / 1000;
        assert.ok(seconds < 5 + 5, `stopped in ${seconds.toFixed(1)} s (grace 5 s)`);
        assert.equal(code, 0, s.stderr());
        w.s3Proxy.mode = "pass";

        // --- the schedule alone: runs start without any call --------------------------------------
        step("the schedule alone");
        const scheduled = await writeConfig(w, dir, { schedule: "*/3 * * * * *" });
        s = await startServe(w, scheduled, port);
        const cancelled = await api(s, "GET", `/runs/${doomed.json.id}`);
        assert.equal(cancelled.json.state, "cancelled", JSON.stringify(cancelled.json));
        const deadline = Date.now() + 90_000;
        let cron: RunView | undefined;
        while (!cron && Date.now() < deadline) {
          const runs = (await api(s, "GET", "/runs")).json.runs as RunView[];
          cron = runs.find((r) => r.trigger === "schedule" && finished(r));
          if (!cron) await new Promise((r) => setTimeout(r, 500));
        }
        assert.ok(cron, `a scheduled run finished:\n${s.stderr()}`);
        assert.ok(["succeeded", "partial"].includes(cron.state), JSON.stringify(cron));
        const metrics = await fetch(`${s.url}/metrics`);
        const text = await metrics.text();
        assert.match(text, /thanos_bridge_runs_total\{[^}]*trigger="schedule"/);
        assert.match(text, /thanos_bridge_queries_total/);
        const check = new Deno.Command("promtool", {
          args: ["check", "metrics"],
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const writer = check.stdin.getWriter();
        await writer.write(new TextEncoder().encode(text));
        await writer.close();
        const out = await check.output();
        // It parses; the only lint findings allowed are the contract's three "hours" names.
        const findings = new TextDecoder().decode(out.stderr).split("\n").filter((l) => l.trim());
        const allowed =
          /^thanos_bridge_(cluster_hours_collected_total|cluster_hours_failed_total|hours_behind) use base unit "seconds" instead of "hours"$/;
        for (const f of findings) assert.match(f, allowed);
        assert.ok(!s.stderr().includes(TOKEN), "the API token is never logged");
        assert.ok(!s.stderr().includes(w.s3.secretAccessKey), "the S3 secret is never logged");
        for (const line of s.stderr().trim().split("\n")) JSON.parse(line); // JSON lines
      } finally {
        await stop(s, "SIGTERM");
      }
    }),
});
