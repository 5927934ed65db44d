import assert from "node:assert/strict";
import type { RunRequest } from "../config.ts";
import { BridgeError, ConfigError } from "../model.ts";
import { DEFAULT_SCHEDULE, parseSchedule, Scheduler } from "./scheduler.ts";
import { RunConflictError, type RunRecord, type RunTrigger } from "./run_types.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A RunService.start that records its calls and answers as told. */
class FakeService {
  calls: { request: RunRequest; trigger: RunTrigger; at: number }[] = [];
  answer: () => Promise<RunRecord> = () => Promise.resolve(this.record());
  #n = 0;

  record(): RunRecord {
    return {
      id: `r-20261127T0000000${String(this.#n++).padStart(2, "0")}Z-aaaaaa`,
      trigger: "schedule",
      state: "running",
      request: {},
      createdAt: new Date().toISOString(),
      startedAt: new Date().toISOString(),
      finishedAt: null,
      clusters: [],
      queries: 0,
      bytesDownloaded: 0,
      outbox: null,
      error: null,
    };
  }

  start(request: RunRequest, trigger: RunTrigger): Promise<RunRecord> {
    this.calls.push({ request, trigger, at: Date.now() });
    return this.answer();
  }
}

Deno.test("parseSchedule: default, off, seconds, and bad patterns as ConfigError", () => {
  assert.equal(parseSchedule(DEFAULT_SCHEDULE), "15 * * * *");
  assert.equal(parseSchedule(" */5 * * * * "), "*/5 * * * *");
  assert.equal(parseSchedule("* * * * * *"), "* * * * * *");
  assert.equal(parseSchedule("off"), null);
  assert.equal(parseSchedule("OFF"), null);
  for (const bad of ["", "x", "61 * * * *", "* * * * * * *", "* * * *", "0 0 30 2 *"]) {
    assert.throws(
      () => parseSchedule(bad),
      (e: unknown) => e instanceof ConfigError && e.field === "schedule",
      bad,
    );
  }
  assert.throws(
    () => parseSchedule("61 * * * *"),
    /schedule "61 \* \* \* \*" is not a cron pattern/,
  );
  assert.throws(() => parseSchedule("0 0 30 2 *"), /never fires/);
});

Deno.test("Scheduler: a bad pattern is refused at construction", () => {
  const service = new FakeService();
  assert.throws(
    () => new Scheduler({ pattern: "every hour", service }),
    (e: unknown) => e instanceof ConfigError && e.field === "schedule",
  );
});

Deno.test("Scheduler: nextRun follows the pattern in UTC, null when stopped", () => {
  const service = new FakeService();
  const s = new Scheduler({
    pattern: DEFAULT_SCHEDULE,
    service,
    now: () => new Date("2026-11-27T01:20:00Z"),
  });
  assert.equal(s.nextRun(), null);
  s.start();
  try {
    assert.equal(s.nextRun()?.toISOString(), "2026-11-27T02:15:00.000Z");
    assert.equal(s.running, true);
  } finally {
    s.stop();
  }
  assert.equal(s.running, false);
  assert.equal(s.nextRun(), null);
});

Deno.test("Scheduler: every second it starts a scheduled run of every cluster; stop() stops it", async () => {
  const service = new FakeService();
  const s = new Scheduler({ pattern: "* * * * * *", service });
  s.start();
  try {
    const t0 = Date.now();
    while (service.calls.length < 2 && Date.now() - t0 < 5000) await sleep(20);
  } finally {
    s.stop();
  }
  await s.idle();
  assert.ok(service.calls.length >= 2, `${service.calls.length} ticks`);
  for (const c of service.calls) {
    assert.deepEqual(c.request, {});
    assert.equal(c.trigger, "schedule");
  }
  const [a, b] = service.calls;
  assert.ok(b!.at - a!.at >= 500, "one tick per second");
  const n = service.calls.length;
  await sleep(1300);
  assert.equal(service.calls.length, n, "no tick after stop()");
});

Deno.test("Scheduler: a conflict is skipped (not queued, not retried); other refusals are reported", async () => {
  const service = new FakeService();
  const s = new Scheduler({ pattern: DEFAULT_SCHEDULE, service });
  assert.deepEqual(await s.tick(), {
    result: "started",
    runId: "r-20261127T000000000Z-aaaaaa",
  });
  service.answer = () => Promise.reject(new RunConflictError("r-active", "c1"));
  assert.deepEqual(await s.tick(), { result: "skipped", activeRunId: "r-active", clusterId: "c1" });
  assert.equal(service.calls.length, 2); // one call per tick: nothing queued or retried
  await sleep(50);
  assert.equal(service.calls.length, 2);
  service.answer = () => Promise.reject(new BridgeError("shutting_down", "stopping"));
  assert.deepEqual(await s.tick(), {
    result: "refused",
    code: "shutting_down",
    message: "stopping",
  });
  service.answer = () => Promise.reject(new ConfigError("clusters", undefined, "is empty"));
  assert.equal((await s.tick()).result, "refused");
  service.answer = () => Promise.resolve(service.record());
  assert.equal((await s.tick()).result, "started");
  assert.equal(s.ticks, 5);
});

Deno.test("Scheduler: conflicts while the timer runs are skipped, and ticks go on", async () => {
  const service = new FakeService();
  let n = 0;
  service.answer = () =>
    n++ % 2 === 0
      ? Promise.resolve(service.record())
      : Promise.reject(new RunConflictError("r-x", "c1"));
  const s = new Scheduler({ pattern: "* * * * * *", service });
  s.start();
  try {
    const t0 = Date.now();
    while (service.calls.length < 3 && Date.now() - t0 < 6000) await sleep(20);
  } finally {
    s.stop();
  }
  await s.idle();
  assert.ok(service.calls.length >= 3, `${service.calls.length} ticks`);
});

Deno.test("Scheduler: off disables it", async () => {
  const service = new FakeService();
  const s = new Scheduler({ pattern: "off", service });
  assert.equal(s.enabled, false);
  assert.equal(s.pattern, null);
  s.start();
  assert.equal(s.running, false);
  assert.equal(s.nextRun(), null);
  await sleep(1200);
  assert.equal(service.calls.length, 0);
  s.stop();
});
