/**
 * RunManager against a scripted fake Bridge (progress, final states,
 * conflicts, cancel, shutdown, restart, history) and against the real bridge
 * with the `dir` sink and a local fake Thanos.
 */
import type { DiscoveryResult } from "./cluster_discovery.ts";
import type { DoctorCheck } from "./doctor_check.ts";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import assert from "node:assert/strict";
import { join } from "node:path";
import { type BridgeSettings, resolveSettings, type RunRequest } from "../config.ts";
import type { PayloadSink } from "../deliver/sink.ts";
import { BridgeError, ConfigError, formatHour, HOUR_MS, type SinkKind } from "../model.ts";
import { StateStore } from "../package/state_store.ts";
import { ClusterRecords } from "./cluster_records.ts";
import type { ClusterSummary, DaySummary, ErrorInfo, RunSummary } from "./collect_job.ts";
import { RunHistory } from "./run_history.ts";
import { finalState, hoursBehind, RunManager, type RunMetrics } from "./run_manager.ts";
import { planRun } from "./run_plan.ts";
import { RunConflictError, type RunRecord, type RunTrigger } from "./run_types.ts";
import { DEFAULT_SCHEDULE, Scheduler } from "./scheduler.ts";
import { type Bridge, createBridge, type RunOptions } from "./runtime.ts";

const NOW = new Date("2026-11-02T12:00:00Z"); // newest ready hour 10:00 (10 min settle)
const DAY = { from: "2026-11-01", to: "2026-11-01T05" } as const; // 6 hours

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "run_manager_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 5000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function settingsFor(dir: string, clusters: string[]): BridgeSettings {
  return resolveSettings(
    {
      thanosUrl: "http://127.0.0.1:9",
      clusters,
      out: join(dir, "out"),
      state: join(dir, "state"),
    },
    { cacheDir: dir },
  );
}

/** What one cluster of a scripted run does. */
interface ClusterScript {
  /** Hour (of the planned range, 0-based) that fails with thanos_http; later ones are not tried. */
  failAt?: number;
  /** A cluster-level error at the end. */
  error?: ErrorInfo;
}

interface Script {
  clusters?: Record<string, ClusterScript>;
  /** Emit this many hours, then wait for `gate` (or the signal). */
  gateAfter?: number;
  gate?: Promise<void>;
  /** Keep waiting for the gate even when aborted (a stuck run). */
  ignoreSignal?: boolean;
  /** Throw this before planning. */
  throwBeforePlan?: unknown;
}

/** A Bridge whose `run` follows a script; everything else is real (records) or trivial. */
class FakeBridge implements Bridge {
  readonly settings: BridgeSettings;
  readonly store: StateStore;
  readonly records: ClusterRecords;
  sink: PayloadSink;
  script: Script = {};
  calls: RunRequest[] = [];
  pingResult: { ok: boolean; message?: string } = { ok: true };

  constructor(settings: BridgeSettings, sinkKind: SinkKind = "dir") {
    this.settings = settings;
    this.store = new StateStore(settings.stateDir);
    this.records = new ClusterRecords(settings.stateDir);
    this.sink = {
      kind: sinkKind,
      has: () => Promise.resolve(true),
      deliver: () => Promise.reject(new Error("not used")),
      flush: () => Promise.resolve({ sent: 0, pending: 0, error: null }),
      close: () => Promise.resolve(),
    };
  }

  orgOf(clusterId: string): string {
    return `org-of-${clusterId}`;
  }

  ping(_timeoutMs: number) {
    return Promise.resolve(this.pingResult);
  }

  discover(): Promise<DiscoveryResult> {
    const ids = this.settings.clusters;
    return Promise.resolve({
      clusters: ids.map((clusterId) => ({ clusterId, source: "static", sources: ["static"] })),
      sources: [{ kind: "static", found: ids.length }],
      skipped: [],
      excluded: [],
    });
  }

  diagnose(): Promise<DoctorCheck[]> {
    return Promise.resolve([]);
  }

  close() {
    return Promise.resolve();
  }

  async run(request: RunRequest, options: RunOptions = {}): Promise<RunSummary> {
    this.calls.push(request);
    const s = this.script;
    await Promise.resolve();
    if (s.throwBeforePlan !== undefined) throw s.throwBeforePlan;
    const plan = planRun(request, this.settings, NOW, new Map());
    options.onPlan?.(plan);
    const signal = options.signal;
    let emitted = 0;
    const clusters: ClusterSummary[] = [];
    for (const cp of plan.clusters) {
      const cs = s.clusters?.[cp.clusterId] ?? {};
      const day = formatHour(cp.fromMs).slice(0, 10);
      const ds: DaySummary = {
        day,
        collectedHours: [],
        pendingHours: [],
        failedHours: [],
        quarantined: [],
        status: "none",
        uuid: null,
        hours: 0,
        lastHour: null,
        rows: {},
        bytes: 0,
        refs: [],
        queued: 0,
        error: null,
      };
      const summary: ClusterSummary = {
        clusterId: cp.clusterId,
        from: formatHour(cp.fromMs),
        to: formatHour(cp.toMs),
        days: [ds],
        error: null,
        watermark: null,
      };
      const n = (cp.toMs - cp.fromMs) / HOUR_MS + 1;
      const first = new Date(cp.fromMs).getUTCHours();
      for (let i = 0; i < n; i++) {
        const hour = first + i;
        if (emitted === s.gateAfter && s.gate) {
          const aborted = new Promise<void>((resolve) => {
            if (s.ignoreSignal) return;
            if (signal?.aborted) resolve();
            signal?.addEventListener("abort", () => resolve(), { once: true });
          });
          await Promise.race([s.gate, aborted]);
        }
        if (signal?.aborted && !s.ignoreSignal) {
          for (let h = hour; h < first + n; h++) {
            ds.failedHours.push({ hour: h, code: "cancelled", message: "cancelled" });
            options.onEvent?.({
              type: "hour-failed",
              clusterId: cp.clusterId,
              day,
              hour: h,
              error: "cancelled",
            });
          }
          summary.error = { code: "cancelled", message: "cancelled" };
          break;
        }
        if (cs.failAt === i) {
          ds.failedHours.push({ hour, code: "thanos_http", message: "HTTP 503" });
          options.onEvent?.({
            type: "hour-failed",
            clusterId: cp.clusterId,
            day,
            hour,
            error: "HTTP 503",
          });
          break;
        }
        ds.collectedHours.push(hour);
        emitted++;
        options.onEvent?.({ type: "hour-done", clusterId: cp.clusterId, day, hour, noData: false });
        await new Promise((r) => setTimeout(r, 1));
      }
      if (ds.collectedHours.length > 0 && ds.collectedHours[0] === 0) {
        ds.lastHour = ds.collectedHours.at(-1)!;
        ds.hours = ds.lastHour + 1;
        ds.status = "new";
        ds.uuid = `uuid-${cp.clusterId}-${ds.lastHour}`;
        ds.bytes = 1000 + ds.lastHour;
        summary.watermark = `${day}T${String(ds.lastHour).padStart(2, "0")}`;
      }
      if (cs.error) summary.error = cs.error;
      options.onDayDone?.(cp.clusterId, ds);
      options.onClusterDone?.(summary);
      clusters.push(summary);
    }
    return {
      mode: "server",
      sink: this.sink.kind,
      dryRun: false,
      clusters,
      outbox: { sent: 0, pending: 0, error: null },
      queries: 7 * clusters.length,
      bytesDownloaded: 1234,
      ms: 1,
      ok: clusters.every((c) =>
        c.error === null && c.days.every((d) => d.error === null && d.failedHours.length === 0)
      ),
    };
  }
}

/** Records every metrics call. */
class FakeMetrics implements RunMetrics {
  calls: unknown[][] = [];
  runStarted(trigger: RunTrigger) {
    this.calls.push(["runStarted", trigger]);
  }
  runFinished(record: RunRecord, summary: RunSummary | null, seconds: number) {
    this.calls.push(["runFinished", record.id, record.state, summary !== null, seconds]);
  }
  hourCollected(clusterId: string) {
    this.calls.push(["hourCollected", clusterId]);
  }
  hourFailed(clusterId: string) {
    this.calls.push(["hourFailed", clusterId]);
  }
  payload(sink: SinkKind, result: string, bytes: number) {
    this.calls.push(["payload", sink, result, bytes]);
  }
  clusterSucceeded(clusterId: string, atSeconds: number) {
    this.calls.push(["clusterSucceeded", clusterId, atSeconds]);
  }
  hoursBehind(clusterId: string, hours: number | null) {
    this.calls.push(["hoursBehind", clusterId, hours]);
  }
  outbox(pending: number) {
    this.calls.push(["outbox", pending]);
  }
  count(name: string): number {
    return this.calls.filter((c) => c[0] === name).length;
  }
}

interface World {
  dir: string;
  bridge: FakeBridge;
  history: RunHistory;
  manager: RunManager;
  metrics: FakeMetrics;
  runsDir: string;
}

async function world(
  dir: string,
  opts: { clusters?: string[]; limit?: number; sink?: SinkKind; cancelWaitMs?: number } = {},
): Promise<World> {
  const bridge = new FakeBridge(settingsFor(dir, opts.clusters ?? ["c1", "c2"]), opts.sink);
  const runsDir = join(dir, "state", "runs");
  const history = new RunHistory(runsDir, opts.limit ?? 100);
  const metrics = new FakeMetrics();
  const manager = new RunManager({
    bridge,
    history,
    now: () => NOW,
    metrics,
    progressIntervalMs: 20,
    ...(opts.cancelWaitMs !== undefined ? { cancelWaitMs: opts.cancelWaitMs } : {}),
  });
  await manager.init();
  return { dir, bridge, history, manager, metrics, runsDir };
}

async function onDisk(w: World, id: string): Promise<RunRecord> {
  return JSON.parse(await Deno.readTextFile(join(w.runsDir, `${id}.json`)));
}

Deno.test("finalState and hoursBehind", () => {
  const day = (over: Partial<DaySummary>): DaySummary => ({
    day: "2026-11-01",
    collectedHours: [],
    pendingHours: [],
    failedHours: [],
    quarantined: [],
    status: "none",
    uuid: null,
    hours: 0,
    lastHour: null,
    rows: {},
    bytes: 0,
    refs: [],
    queued: 0,
    error: null,
    ...over,
  });
  const summary = (clusters: ClusterSummary[], ok: boolean): RunSummary => ({
    mode: "server",
    sink: "dir",
    dryRun: false,
    clusters,
    outbox: { sent: 0, pending: 0, error: null },
    queries: 0,
    bytesDownloaded: 0,
    ms: 0,
    ok,
  });
  const c = (id: string, days: DaySummary[], error: ErrorInfo | null = null): ClusterSummary => ({
    clusterId: id,
    from: "2026-11-01T00",
    to: "2026-11-01T05",
    days,
    error,
    watermark: null,
  });
  const busy = { code: "cluster_busy" as const, message: "busy" };
  const failedHour = { hour: 0, code: "thanos_http" as const, message: "503" };
  assert.equal(finalState(summary([c("a", [day({ status: "new" })])], true), false), "succeeded");
  assert.equal(finalState(summary([c("a", [day({ status: "new" })])], true), true), "cancelled");
  assert.equal(finalState(summary([c("a", [], busy), c("b", [])], false), false), "partial");
  assert.equal(
    finalState(
      summary([c("a", [day({ collectedHours: [0], failedHours: [failedHour] })])], false),
      false,
    ),
    "partial",
  );
  assert.equal(
    finalState(
      summary([c("a", [], busy), c("b", [day({ failedHours: [failedHour] })])], false),
      false,
    ),
    "failed",
  );
  assert.equal(finalState(null, false), "failed");
  assert.equal(hoursBehind(null, NOW, 600_000), null);
  assert.equal(hoursBehind(Date.parse("2026-11-02T05:00:00Z"), NOW, 600_000), 5);
  assert.equal(hoursBehind(Date.parse("2026-11-02T11:00:00Z"), NOW, 600_000), 0);
});

Deno.test("a run's progress is visible while it runs, then it succeeds", async () => {
  await withDir(async (dir) => {
    const w = await world(dir);
    const gate = Promise.withResolvers<void>();
    w.bridge.script = { gateAfter: 3, gate: gate.promise };
    const started = await w.manager.start({ ...DAY, clusters: ["c1"] }, "api");
    assert.equal(started.state, "running");
    assert.equal(started.trigger, "api");
    assert.match(started.id, /^r-20261102T120000000Z-[a-z2-7]{6}$/);
    assert.deepEqual(started.request.clusters, ["c1"]);
    assert.equal(started.clusters[0]!.from, "2026-11-01T00");
    assert.equal(started.clusters[0]!.to, "2026-11-01T05");
    assert.equal(w.bridge.calls.length, 1);

    await waitFor("3 hours", () => w.manager.get(started.id)!.clusters[0]!.hoursCollected === 3);
    const mid = w.manager.get(started.id)!;
    assert.equal(mid.state, "running");
    assert.equal(mid.clusters[0]!.state, "running");
    assert.equal(mid.finishedAt, null);
    // the progress reaches the disk while the run goes on (throttled writes)
    await waitFor(
      "progress on disk",
      async () => (await onDisk(w, started.id)).clusters[0]!.hoursCollected === 3,
    );
    assert.equal((await onDisk(w, started.id)).state, "running");
    // get() hands out copies
    mid.state = "failed";
    assert.equal(w.manager.get(started.id)!.state, "running");

    gate.resolve();
    const done = (await w.manager.settled(started.id))!;
    assert.equal(done.state, "succeeded");
    assert.notEqual(done.finishedAt, null);
    assert.equal(done.error, null);
    assert.equal(done.queries, 7);
    assert.equal(done.bytesDownloaded, 1234);
    assert.deepEqual(done.outbox, { sent: 0, pending: 0, error: null });
    const cp = done.clusters[0]!;
    assert.equal(cp.state, "done");
    assert.equal(cp.hoursCollected, 6);
    assert.equal(cp.hoursFailed, 0);
    assert.equal(cp.watermark, "2026-11-01T05");
    assert.deepEqual(cp.days.map((d) => [d.day, d.status, d.hours]), [["2026-11-01", "new", 6]]);
    assert.deepEqual(await onDisk(w, started.id), done);
    assert.deepEqual(w.manager.activeRuns(), []);

    assert.deepEqual(w.metrics.calls[0], ["runStarted", "api"]);
    assert.equal(w.metrics.count("hourCollected"), 6);
    assert.deepEqual(w.metrics.calls.find((c) => c[0] === "payload"), [
      "payload",
      "dir",
      "new",
      1005,
    ]);
    assert.deepEqual(w.metrics.calls.find((c) => c[0] === "clusterSucceeded"), [
      "clusterSucceeded",
      "c1",
      NOW.getTime() / 1000,
    ]);
    const behind = 24 + 10 - 5; // 2026-11-01T05 → 2026-11-02T10
    assert.deepEqual(w.metrics.calls.find((c) => c[0] === "hoursBehind"), [
      "hoursBehind",
      "c1",
      behind,
    ]);
    const fin = w.metrics.calls.find((c) => c[0] === "runFinished")!;
    assert.deepEqual(fin.slice(0, 4), ["runFinished", started.id, "succeeded", true]);
    assert.ok(typeof fin[4] === "number" && fin[4] >= 0);
    assert.equal(w.metrics.count("outbox"), 0); // dir sink has no outbox
  });
});

Deno.test("final states: partial, failed (every cluster failed), failed (threw)", async () => {
  await withDir(async (dir) => {
    const w = await world(dir);
    // c1 fails at its 3rd hour (2 collected), c2 is fine → partial
    w.bridge.script = { clusters: { c1: { failAt: 2 } } };
    const partial = (await w.manager.settled((await w.manager.start(DAY, "schedule")).id))!;
    assert.equal(partial.state, "partial");
    assert.equal(partial.error, null);
    assert.deepEqual(
      partial.clusters.map((c) => [c.clusterId, c.hoursCollected, c.hoursFailed]),
      [["c1", 2, 1], ["c2", 6, 0]],
    );
    assert.equal(w.metrics.count("hourFailed"), 1);
    assert.equal(w.metrics.count("clusterSucceeded"), 1);

    // every cluster fails before collecting anything → failed, with the first error
    const busy = { code: "cluster_busy" as const, message: "c1 is locked by another process" };
    w.bridge.script = { clusters: { c1: { failAt: 0 }, c2: { failAt: 0, error: busy } } };
    const failed = (await w.manager.settled((await w.manager.start(DAY, "api")).id))!;
    assert.equal(failed.state, "failed");
    assert.deepEqual(failed.error, { code: "thanos_http", message: "HTTP 503" });

    // the bridge throws (not a ConfigError) before doing anything → a failed run
    w.bridge.script = { throwBeforePlan: new BridgeError("state_io", "cannot read /x") };
    const threw = await w.manager.start(DAY, "api");
    const final = (await w.manager.settled(threw.id))!;
    assert.equal(final.state, "failed");
    assert.deepEqual(final.error, { code: "state_io", message: "cannot read /x" });
    assert.deepEqual((await onDisk(w, threw.id)).state, "failed");
    assert.deepEqual(
      w.metrics.calls.filter((c) => c[0] === "runFinished").map((c) => c[2]),
      ["partial", "failed", "failed"],
    );
  });
});

Deno.test("a bad request is a ConfigError from start, and leaves no run behind", async () => {
  await withDir(async (dir) => {
    const w = await world(dir);
    await assert.rejects(
      w.manager.start({ from: "2026-11-05" }, "api"),
      (e: unknown) => e instanceof ConfigError && e.field === "from",
    );
    await assert.rejects(
      w.manager.start({ clusters: ["../etc"] }, "api"),
      (e: unknown) => e instanceof ConfigError && e.field === "clusters",
    );
    await assert.rejects(
      w.manager.start({ clusters: [] }, "api"),
      (e: unknown) => e instanceof ConfigError && e.field === "clusters",
    );
    assert.equal(w.bridge.calls.length, 0);
    // a ConfigError the bridge finds itself (e.g. a missing org id) also reaches the caller
    w.bridge.script = { throwBeforePlan: new ConfigError("orgId", "c1", "has no org id") };
    await assert.rejects(
      w.manager.start(DAY, "api"),
      (e: unknown) => e instanceof ConfigError && e.field === "orgId",
    );
    assert.equal(w.bridge.calls.length, 1);
    assert.deepEqual(w.manager.list({ limit: 10 }), { runs: [], next: null });
    assert.deepEqual(w.manager.activeRuns(), []);
    // the clusters are free again
    w.bridge.script = {};
    const ok = await w.manager.start(DAY, "api");
    assert.equal((await w.manager.settled(ok.id))!.state, "succeeded");
  });
});

Deno.test("409 for a run that overlaps an active one; disjoint clusters run side by side", async () => {
  await withDir(async (dir) => {
    const w = await world(dir, { clusters: ["a", "b", "c"] });
    const gate = Promise.withResolvers<void>();
    w.bridge.script = { gateAfter: 1, gate: gate.promise };
    const first = await w.manager.start({ ...DAY, clusters: ["a"] }, "api");
    await assert.rejects(
      w.manager.start({ ...DAY, clusters: ["b", "a"] }, "schedule"),
      (e: unknown) =>
        e instanceof RunConflictError && e.code === "run_conflict" &&
        e.activeRunId === first.id && e.clusterId === "a",
    );
    // the settings' clusters include "a" too: a scheduled tick is skipped, naming the active run
    await assert.rejects(w.manager.start(DAY, "schedule"), RunConflictError);
    const tick = await new Scheduler({ pattern: DEFAULT_SCHEDULE, service: w.manager }).tick();
    assert.deepEqual(tick, { result: "skipped", activeRunId: first.id, clusterId: "a" });
    const second = await w.manager.start({ ...DAY, clusters: ["b"] }, "api");
    assert.equal(second.state, "running");
    assert.notEqual(second.id, first.id);
    assert.ok(second.id > first.id);
    assert.deepEqual(w.manager.activeRuns().sort(), [first.id, second.id].sort());
    gate.resolve();
    assert.equal((await w.manager.settled(first.id))!.state, "succeeded");
    assert.equal((await w.manager.settled(second.id))!.state, "succeeded");
    // once done, "a" can run again
    const third = await w.manager.start({ ...DAY, clusters: ["a", "c"] }, "api");
    assert.equal((await w.manager.settled(third.id))!.state, "succeeded");
  });
});

Deno.test("cancel aborts through the signal and returns the cancelled record", async () => {
  await withDir(async (dir) => {
    const w = await world(dir);
    const gate = Promise.withResolvers<void>();
    w.bridge.script = { gateAfter: 2, gate: gate.promise };
    const run = await w.manager.start({ ...DAY, clusters: ["c1"] }, "api");
    await waitFor("2 hours", () => w.manager.get(run.id)!.clusters[0]!.hoursCollected === 2);
    const t0 = performance.now();
    const cancelled = (await w.manager.cancel(run.id))!;
    assert.ok(performance.now() - t0 < 2000);
    assert.equal(cancelled.state, "cancelled");
    assert.equal(cancelled.error?.code, "cancelled");
    assert.match(cancelled.error!.message, new RegExp(`run ${run.id} was cancelled`));
    assert.equal(cancelled.clusters[0]!.hoursCollected, 2);
    // hours stopped by the cancellation are not failures
    assert.equal(cancelled.clusters[0]!.hoursFailed, 0);
    assert.equal(w.metrics.count("hourFailed"), 0);
    assert.equal(w.metrics.count("clusterSucceeded"), 0);
    assert.equal((await onDisk(w, run.id)).state, "cancelled");
    // a finished run is returned unchanged; an unknown one is null
    assert.deepEqual(await w.manager.cancel(run.id), cancelled);
    assert.equal(await w.manager.cancel("r-20991231T000000000Z-aaaaaa"), null);
    // the cluster is free again
    w.bridge.script = {};
    const next = await w.manager.start({ ...DAY, clusters: ["c1"] }, "api");
    assert.equal((await w.manager.settled(next.id))!.state, "succeeded");
    gate.resolve();
  });
});

Deno.test("cancel of a run that does not stop returns after the wait, still running", async () => {
  await withDir(async (dir) => {
    const w = await world(dir, { cancelWaitMs: 100 });
    const gate = Promise.withResolvers<void>();
    w.bridge.script = { gateAfter: 1, gate: gate.promise, ignoreSignal: true };
    const run = await w.manager.start({ ...DAY, clusters: ["c1"] }, "api");
    const t0 = performance.now();
    const r = (await w.manager.cancel(run.id))!;
    assert.ok(performance.now() - t0 >= 90);
    assert.equal(r.state, "running");
    // it still holds its cluster until it has unwound
    await assert.rejects(w.manager.start({ ...DAY, clusters: ["c1"] }, "api"), RunConflictError);
    gate.resolve();
    const final = (await w.manager.settled(run.id))!;
    assert.equal(final.state, "cancelled");
    assert.equal(final.error?.code, "cancelled");
  });
});

Deno.test("shutdown aborts active runs within the grace and refuses new ones", async () => {
  await withDir(async (dir) => {
    const w = await world(dir);
    const gate = Promise.withResolvers<void>();
    w.bridge.script = { gateAfter: 1, gate: gate.promise };
    const a = await w.manager.start({ ...DAY, clusters: ["c1"] }, "schedule");
    const b = await w.manager.start({ ...DAY, clusters: ["c2"] }, "api");
    const t0 = performance.now();
    await w.manager.shutdown(3000);
    assert.ok(performance.now() - t0 < 1500, "runs that honour the signal stop at once");
    for (const id of [a.id, b.id]) {
      const r = await onDisk(w, id);
      assert.equal(r.state, "cancelled");
      assert.deepEqual(r.error, { code: "cancelled", message: "thanos-bridge is shutting down" });
    }
    await assert.rejects(
      w.manager.start(DAY, "api"),
      (e: unknown) => e instanceof BridgeError && e.code === "shutting_down",
    );
    const ready = await w.manager.ready(1000);
    assert.equal(ready.ok, false);
    assert.equal(ready.checks.accepting?.ok, false);
    gate.resolve();
  });
});

Deno.test("shutdown gives up on a stuck run after the grace and records it cancelled", async () => {
  await withDir(async (dir) => {
    const w = await world(dir);
    const gate = Promise.withResolvers<void>();
    w.bridge.script = { gateAfter: 1, gate: gate.promise, ignoreSignal: true };
    const run = await w.manager.start({ ...DAY, clusters: ["c1"] }, "api");
    const t0 = performance.now();
    await w.manager.shutdown(200);
    const took = performance.now() - t0;
    assert.ok(took >= 190 && took < 2000, `took ${took} ms`);
    const r = await onDisk(w, run.id);
    assert.equal(r.state, "cancelled");
    assert.match(r.error!.message, /did not stop within 200 ms/);
    // the run unwinds later: its late result does not overwrite the record
    gate.resolve();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await w.history.flush();
    assert.equal((await onDisk(w, run.id)).state, "cancelled");
    assert.equal(w.manager.get(run.id)!.state, "cancelled");
    assert.equal(w.metrics.count("runFinished"), 1);
  });
});

Deno.test("a restart marks the run that was active as interrupted", async () => {
  await withDir(async (dir) => {
    const w = await world(dir);
    const gate = Promise.withResolvers<void>();
    w.bridge.script = { gateAfter: 2, gate: gate.promise };
    const run = await w.manager.start({ ...DAY, clusters: ["c1"] }, "api");
    await waitFor(
      "progress on disk",
      async () => (await onDisk(w, run.id)).clusters[0]!.hoursCollected === 2,
    );
    // the process dies here: a copy of the history is what the next process finds
    const dir2 = join(dir, "after-crash");
    await Deno.mkdir(join(dir2, "state", "runs"), { recursive: true });
    for (const e of Deno.readDirSync(w.runsDir)) {
      await Deno.copyFile(join(w.runsDir, e.name), join(dir2, "state", "runs", e.name));
    }
    const w2 = await world(dir2);
    const r = w2.manager.get(run.id)!;
    assert.equal(r.state, "interrupted");
    assert.equal(r.clusters[0]!.hoursCollected, 2);
    assert.equal(r.error?.code, "internal");
    assert.deepEqual(w2.metrics.calls, [["runFinished", run.id, "interrupted", false, NaN]]);
    // persisted: a third start sees it interrupted and reports nothing again
    const w3 = await world(dir2);
    assert.equal(w3.manager.get(run.id)!.state, "interrupted");
    assert.deepEqual(w3.metrics.calls, []);
    // new ids sort after the interrupted one even with the same clock
    w3.bridge.script = {};
    const next = await w3.manager.start(DAY, "api");
    assert.ok(next.id > run.id);
    await w3.manager.settled(next.id);
    assert.deepEqual(w3.manager.list({ limit: 5 }).runs.map((x) => x.id), [next.id, run.id]);
    gate.resolve();
    await w.manager.settled(run.id);
  });
});

Deno.test("list pages newest first; history bounded at N", async () => {
  await withDir(async (dir) => {
    const w = await world(dir, { limit: 4 });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await w.manager.start(DAY, i % 2 ? "api" : "schedule");
      await w.manager.settled(r.id);
      ids.push(r.id);
    }
    const kept = ids.slice(2).reverse();
    const seen: string[] = [];
    let before: string | undefined;
    for (let page = 0; page < 10; page++) {
      const p = w.manager.list(before === undefined ? { limit: 3 } : { limit: 3, before });
      seen.push(...p.runs.map((r) => r.id));
      if (p.next === null) break;
      assert.equal(p.next, p.runs.at(-1)!.id);
      before = p.next;
    }
    assert.deepEqual(seen, kept);
    const files = [...Deno.readDirSync(w.runsDir)].map((e) => e.name).sort();
    assert.deepEqual(files, kept.map((id) => `${id}.json`).sort());
    assert.equal(w.manager.get(ids[0]!), null);
    const again = await world(dir, { limit: 4 });
    assert.deepEqual(again.manager.list({ limit: 10 }).runs.map((r) => r.id), kept);
  });
});

Deno.test("clusters(): configured and found in the state, watermark, hours behind, last payload", async () => {
  await withDir(async (dir) => {
    const w = await world(dir, { clusters: ["c2", "c1"], sink: "s3-kafka" });
    const state = join(dir, "state");
    await w.bridge.records.setWatermark("c1", Date.parse("2026-11-02T05:00:00Z"));
    const delivery = (clusterId: string, day: string, uuid: string) => ({
      sink: "s3-kafka" as const,
      clusterId,
      day,
      uuid,
      lastHour: 23,
      parts: [{
        fileName: `${uuid}.tar.gz`,
        bytes: 10,
        sha256: "0".repeat(64),
        ref: { sink: "s3-kafka" as const, location: `s3://b/${uuid}.tar.gz` },
      }],
      deliveredAt: "2026-11-01T01:00:00.000Z",
    });
    await w.bridge.records.recordDelivery(delivery("c3", "2026-10-30", "uuid-old"));
    await w.bridge.records.recordDelivery(delivery("c3", "2026-10-31", "uuid-new"));
    await Deno.mkdir(join(state, "c3", "2026-11-01"), { recursive: true }); // no delivery yet
    await w.bridge.records.recordDelivery(delivery("c1", "2026-11-01", "uuid-c1"));
    // the outbox still holds c3's newest announcement
    await Deno.mkdir(join(state, "outbox"), { recursive: true });
    await Deno.writeTextFile(
      join(state, "outbox", "001764201600000-000000-0a1b2c3d.json"),
      JSON.stringify({ value: { request_id: "uuid-new" } }),
    );
    await Deno.mkdir(join(state, "quarantine"), { recursive: true });
    await Deno.mkdir(join(state, ".spool"), { recursive: true });
    await Deno.mkdir(join(state, "runs"), { recursive: true });

    const all = await w.manager.clusters();
    assert.deepEqual(all.map((c) => c.clusterId), ["c1", "c2", "c3"]);
    const [c1, c2, c3] = all;
    assert.equal(c1!.orgId, "org-of-c1");
    assert.equal(c1!.watermark, "2026-11-02T05");
    assert.equal(c1!.hoursBehind, 5);
    assert.deepEqual(c1!.lastPayload, {
      uuid: "uuid-c1",
      day: "2026-11-01",
      lastHour: 23,
      deliveredAt: "2026-11-01T01:00:00.000Z",
      sink: "s3-kafka",
      result: "delivered",
    });
    assert.deepEqual([c2!.watermark, c2!.hoursBehind, c2!.lastPayload], [null, null, null]);
    assert.equal(c3!.lastPayload?.uuid, "uuid-new");
    assert.equal(c3!.lastPayload?.result, "queued");
    assert.ok(w.metrics.calls.some((c) => c[0] === "hoursBehind" && c[1] === "c1" && c[2] === 5));

    assert.deepEqual(await w.manager.cluster("c3"), c3);
    assert.deepEqual(await w.manager.cluster("c2"), c2);
    assert.equal(await w.manager.cluster("c9"), null);
    assert.equal(await w.manager.cluster("../state"), null);
    assert.equal(await w.manager.cluster("runs"), null);
  });
});

Deno.test("ready(): state writable and Thanos answering", async () => {
  await withDir(async (dir) => {
    const w = await world(dir);
    await Deno.mkdir(w.bridge.settings.stateDir, { recursive: true });
    const ok = await w.manager.ready(1000);
    assert.deepEqual(ok, {
      ok: true,
      checks: {
        settings: { ok: true },
        state: { ok: true },
        thanos: { ok: true },
        accepting: { ok: true },
      },
    });
    assert.deepEqual(
      [...Deno.readDirSync(w.bridge.settings.stateDir)].filter((e) => e.name.startsWith(".ready")),
      [],
    );
    w.bridge.pingResult = { ok: false, message: "connection refused" };
    const down = await w.manager.ready(1000);
    assert.equal(down.ok, false);
    assert.deepEqual(down.checks.thanos, { ok: false, message: "connection refused" });
    // a state "folder" that is a file is not writable
    await Deno.remove(w.bridge.settings.stateDir, { recursive: true });
    await Deno.writeTextFile(w.bridge.settings.stateDir, "");
    w.bridge.pingResult = { ok: true };
    const bad = await w.manager.ready(1000);
    assert.equal(bad.ok, false);
    assert.equal(bad.checks.state!.ok, false);
    assert.match(bad.checks.state!.message!, /state folder is not writable/);
  });
});

Deno.test("every log line of a run carries runId, and clusterId where it is about one", async () => {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { buffer: (r: LogRecord) => void records.push(r) },
    loggers: [
      { category: ["thanos-bridge", "runs"], sinks: ["buffer"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
  });
  try {
    await withDir(async (dir) => {
      const w = await world(dir);
      w.bridge.script = { clusters: { c1: { failAt: 3 } } };
      const run = await w.manager.start(DAY, "api");
      await w.manager.settled(run.id);
    });
    assert.ok(records.length >= 5, `${records.length} lines`);
    for (const r of records) assert.match(String(r.properties.runId), /^r-/);
    const aboutCluster = records.filter((r) =>
      /hour|day|cluster \{clusterId\}/.test(String(r.rawMessage))
    );
    assert.ok(aboutCluster.length >= 4);
    for (const r of aboutCluster) assert.ok(["c1", "c2"].includes(String(r.properties.clusterId)));
    assert.ok(records.some((r) => r.level === "warning" && /failed/.test(String(r.rawMessage))));
  } finally {
    await reset();
  }
});

/** Answers every query like a Prometheus with one worker node. */
function fakeThanos() {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const form = new URLSearchParams(await req.text());
    const query = form.get("query") ?? "";
    const start = Number(form.get("start"));
    const end = Number(form.get("end"));
    const step = Number(form.get("step"));
    const result = [];
    if (query.includes("kube_node_role{") || query === "vector(1)") {
      const values = [];
      for (let t = start; t <= end; t += step) values.push([t, step === 60 ? "1" : "60"]);
      result.push({ metric: { node: "n1", role: "worker" }, values });
    }
    return Response.json({ status: "success", data: { resultType: "matrix", result } });
  });
  const { port } = server.addr as Deno.NetAddr;
  return { url: `http://127.0.0.1:${port}`, close: () => server.shutdown() };
}

Deno.test("the real bridge: a run via the manager delivers its day; clusters() shows it", async () => {
  const thanos = fakeThanos();
  try {
    await withDir(async (dir) => {
      const now = () => new Date("2026-11-23T12:00:00Z");
      const settings = resolveSettings(
        {
          thanosUrl: thanos.url,
          clusters: ["c1"],
          out: join(dir, "out"),
          state: join(dir, "state"),
          orgId: "1234567",
          retries: 1,
          // The fake answers range queries only (no raw reads).
          reduce: "server",
        },
        { cacheDir: dir },
      );
      const bridge = await createBridge(settings, { now, warn: () => {} });
      try {
        const history = new RunHistory(join(settings.stateDir, "runs"), 10);
        const metrics = new FakeMetrics();
        const manager = new RunManager({ bridge, history, now, metrics });
        await manager.init();
        const run = await manager.start({ from: "2026-11-01", to: "2026-11-01T02" }, "api");
        assert.equal(run.state, "running");
        assert.deepEqual(run.clusters.map((c) => [c.clusterId, c.from, c.to]), [
          ["c1", "2026-11-01T00", "2026-11-01T02"],
        ]);
        const done = (await manager.settled(run.id))!;
        assert.equal(done.state, "succeeded", JSON.stringify(done, null, 2));
        assert.ok(done.queries > 0);
        assert.ok(done.bytesDownloaded > 0);
        const day = done.clusters[0]!.days[0]!;
        assert.equal(day.status, "new");
        assert.equal(day.hours, 3);
        assert.equal(done.clusters[0]!.hoursCollected, 3);
        assert.equal(done.clusters[0]!.watermark, "2026-11-01T02");
        const tarball = join(dir, "out", "c1", "2026-11-01", `${day.uuid}.tar.gz`);
        assert.ok((await Deno.stat(tarball)).size > 0);
        assert.equal(metrics.count("hourCollected"), 3);
        assert.deepEqual(metrics.calls.find((c) => c[0] === "payload")?.slice(0, 3), [
          "payload",
          "dir",
          "new",
        ]);

        const [c1] = await manager.clusters();
        assert.equal(c1!.clusterId, "c1");
        assert.equal(c1!.orgId, "1234567");
        assert.equal(c1!.watermark, "2026-11-01T02");
        assert.equal(c1!.hoursBehind, 22 * 24 + 8); // up to 2026-11-23T10
        assert.equal(c1!.lastPayload?.uuid, day.uuid);
        assert.equal(c1!.lastPayload?.sink, "dir");
        assert.equal(c1!.lastPayload?.result, "delivered");
        assert.equal((await manager.ready(2000)).ok, true);

        // the same window again: nothing new to query, the day is unchanged
        const again = (await manager.settled(
          (await manager.start(
            { from: "2026-11-01", to: "2026-11-01T02" },
            "api",
          )).id,
        ))!;
        assert.equal(again.state, "succeeded");
        assert.equal(again.queries, 0);
        assert.equal(again.clusters[0]!.days[0]!.status, "unchanged");
        await manager.shutdown(1000);
      } finally {
        await bridge.close();
      }
    });
  } finally {
    await thanos.close();
  }
});
