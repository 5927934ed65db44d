import assert from "node:assert/strict";
import { abortableSleep, backoffDelay, parseRetryAfter } from "./backoff.ts";

Deno.test("backoffDelay is full jitter over a capped exponential", () => {
  const base = { baseDelayMs: 100, maxDelayMs: 1000 };
  for (let attempt = 1; attempt <= 8; attempt++) {
    const ceiling = Math.min(1000, 100 * 2 ** (attempt - 1));
    assert.equal(backoffDelay(attempt, { ...base, random: () => 0 }), 0);
    assert.equal(
      backoffDelay(attempt, { ...base, random: () => 0.999999 }),
      Math.floor(0.999999 * ceiling),
    );
    assert.equal(
      backoffDelay(attempt, { ...base, random: () => 0.25 }),
      Math.floor(0.25 * ceiling),
    );
  }
  assert.throws(() => backoffDelay(0, base), RangeError);
  assert.throws(() => backoffDelay(1, { ...base, random: () => 2 }), RangeError);
});

Deno.test("parseRetryAfter reads seconds and HTTP dates", () => {
  const now = Date.parse("2026-11-01T12:00:00Z");
  assert.equal(parseRetryAfter("0", now), 0);
  assert.equal(parseRetryAfter(" 12 ", now), 12_000);
  assert.equal(parseRetryAfter("Sun, 01 Nov 2026 12:00:30 GMT", now), 30_000);
  assert.equal(parseRetryAfter("Sun, 01 Nov 2026 11:59:00 GMT", now), 0);
  assert.equal(parseRetryAfter(null, now), undefined);
  assert.equal(parseRetryAfter("", now), undefined);
  assert.equal(parseRetryAfter("-3", now), undefined);
  assert.equal(parseRetryAfter("later", now), undefined);
});

Deno.test("abortableSleep waits and can be aborted", async () => {
  const t0 = performance.now();
  await abortableSleep(20);
  assert.ok(performance.now() - t0 >= 15);
  const controller = new AbortController();
  const reason = new Error("cancelled");
  const sleeping = abortableSleep(60_000, controller.signal);
  controller.abort(reason);
  await assert.rejects(sleeping, (error) => error === reason);
  await assert.rejects(abortableSleep(1, controller.signal), (error) => error === reason);
});
