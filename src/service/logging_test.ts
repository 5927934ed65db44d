import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { resetLogging, setupLogging } from "./logging.ts";

Deno.test("logs are JSON lines with the run context; secrets and control characters never appear", async () => {
  const lines: string[] = [];
  await setupLogging("info", (line) => lines.push(line));
  try {
    const log = getLogger(["thanos-bridge", "runs"]).with({ runId: "r-1", clusterId: "c1" });
    log.info("run {runId} collected {hours} hours", { hours: 3, apiToken: "s3cr3t" });
    log.debug("not shown at info");
    log.warn("server said {text}", { text: "bad\x1b[2Jthing" });
  } finally {
    await resetLogging();
  }
  assert.equal(lines.length, 2);
  const first = JSON.parse(lines[0]!);
  assert.equal(first.level, "info");
  assert.equal(first.category, "thanos-bridge.runs");
  assert.equal(first.message, "run r-1 collected 3 hours");
  assert.equal(first.runId, "r-1");
  assert.equal(first.clusterId, "c1");
  assert.equal(first.hours, 3);
  assert.ok(!lines.join("").includes("s3cr3t"));
  assert.ok(!lines.join("").includes("\x1b"));
  assert.ok(lines.every((l) => l.endsWith("\n") && !l.slice(0, -1).includes("\n")));
});
