import assert from "node:assert/strict";
import {
  parseProcStatCpuLine,
  parseProcStatCpuTicks,
  parseProcStatus,
  ProcessMonitor,
  readCpuSeconds,
  readSystemCpu,
} from "./process_monitor.ts";

const STATUS = [
  "Name:\tdeno",
  "State:\tS (sleeping)",
  "Pid:\t4242",
  "VmPeak:\t 9000000 kB",
  "VmHWM:\t  153600 kB",
  "VmRSS:\t  102400 kB",
  "RssAnon:\t   90000 kB",
  "Threads:\t8",
  "",
].join("\n");

Deno.test("parseProcStatus reads VmHWM and VmRSS in bytes, not VmPeak or RssAnon", () => {
  assert.deepEqual(parseProcStatus(STATUS), {
    hwmBytes: 153_600 * 1024,
    rssBytes: 102_400 * 1024,
  });
});

Deno.test("parseProcStatus gives undefined for a zombie (no Vm lines)", () => {
  assert.equal(parseProcStatus("Name:\tdeno\nState:\tZ (zombie)\nPid:\t1\n"), undefined);
  assert.equal(parseProcStatus("VmHWM:\t 10 kB\n"), undefined);
});

Deno.test("parseProcStatCpuTicks counts fields after the last parenthesis", () => {
  const fields = (utime: number, stime: number) =>
    `S 1 2 3 0 -1 4194560 100 0 0 0 ${utime} ${stime} 0 0 20 0 8 0 9 0 0`;
  assert.equal(parseProcStatCpuTicks(`42 (deno) ${fields(250, 30)}`), 280);
  assert.equal(parseProcStatCpuTicks(`42 (we ird) 1 2) ${fields(7, 5)}`), 12);
  assert.throws(() => parseProcStatCpuTicks("not a stat line"), SyntaxError);
  assert.throws(() => parseProcStatCpuTicks("42 (x) S 1 2"), SyntaxError);
});

Deno.test({
  name: "ProcessMonitor sees the peak of a child that allocates and frees memory, and its CPU",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // 200 MB touched page by page, released, then 600 ms of busy CPU at a low RSS.
    const code = `
      let a = new Uint8Array(200 * 1024 * 1024);
      for (let i = 0; i < a.length; i += 4096) a[i] = 1;
      await new Promise((r) => setTimeout(r, 300));
      a = null;
      const end = Date.now() + 600;
      let x = 0;
      while (Date.now() < end) x += Math.sqrt(x + 1);
      console.log(x > 0);
    `;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-prompt", code],
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    const monitor = new ProcessMonitor(child.pid, { intervalMs: 20 });
    const status = await child.status;
    const usage = await monitor.stop();
    assert.ok(status.success);
    assert.equal(usage.pid, child.pid);
    assert.ok(usage.peakRssBytes >= 200 * 1024 * 1024, `peak ${usage.peakRssBytes}`);
    assert.ok(usage.peakRssBytes < 2 * 1024 * 1024 * 1024, `peak ${usage.peakRssBytes}`);
    assert.ok(usage.cpuSeconds >= 0.4, `cpu ${usage.cpuSeconds}`);
    assert.ok(usage.samples > 5, `samples ${usage.samples}`);
    assert.match(usage.command, /\beval\b/);
    assert.deepEqual(usage.childPids, []);
    // Idempotent.
    assert.deepEqual(await monitor.stop(), usage);
  },
});

Deno.test({
  name: "ProcessMonitor reports child processes of the sampled process",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const child = new Deno.Command("sh", {
      args: ["-c", "sleep 1.5 & wait"],
      stdout: "null",
    }).spawn();
    const monitor = new ProcessMonitor(child.pid, { intervalMs: 20, childEvery: 5 });
    await child.status;
    const usage = await monitor.stop();
    assert.equal(usage.childPids.length, 1, JSON.stringify(usage));
    assert.ok(usage.peakChildRssBytes > 0);
    assert.match(usage.command, /(^|\/)sh -c sleep 1\.5 & wait$/);
  },
});

Deno.test({
  name: "ProcessMonitor stopped while the process still runs returns what it saw",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
    try {
      const monitor = new ProcessMonitor(child.pid, { intervalMs: 10 });
      await new Promise((r) => setTimeout(r, 700));
      const usage = await monitor.stop();
      assert.ok(usage.samples > 0);
      assert.ok(usage.peakRssBytes > 0);
      assert.match(usage.command, /(^|\/)sleep 30$/);
    } finally {
      child.kill("SIGKILL");
      await child.status;
    }
  },
});

Deno.test("ProcessMonitor rejects a bad pid or interval", () => {
  assert.throws(() => new ProcessMonitor(0), RangeError);
  assert.throws(() => new ProcessMonitor(1.5), RangeError);
  assert.throws(() => new ProcessMonitor(1, { intervalMs: 0 }), RangeError);
});

Deno.test("readCpuSeconds reads a live process and gives undefined for a gone one", async () => {
  const child = new Deno.Command("sleep", { args: ["0"] }).spawn();
  const pid = child.pid;
  await child.status;
  assert.equal(await readCpuSeconds(pid), undefined);
  const own = await readCpuSeconds(Deno.pid);
  assert.ok(own !== undefined && own > 0, `own CPU ${own}`);
});

Deno.test("parseProcStatCpuLine sums the busy fields of the aggregate line only", () => {
  const stat = [
    "cpu  4705 356 584 3699 23 23 0 5 7 0",
    "cpu0 1393 240 224 1891 9 4 0 3 7 0",
    "intr 114930548 113199788 3 0 5",
    "",
  ].join("\n");
  const cpu = parseProcStatCpuLine(stat, 100);
  assert.equal(cpu.busySeconds, (4705 + 356 + 584 + 23 + 0) / 100);
  assert.equal(cpu.idleSeconds, (3699 + 23) / 100);
  assert.equal(cpu.stealSeconds, 0.05);
  assert.throws(() => parseProcStatCpuLine("cpu0 1 2 3 4 5 6 7 8\n", 100), SyntaxError);
});

Deno.test("readSystemCpu counts this process's busy loop", async () => {
  const before = await readSystemCpu();
  const end = performance.now() + 400;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  const after = await readSystemCpu();
  assert.ok(x > 0);
  assert.ok(after.busySeconds - before.busySeconds >= 0.3, JSON.stringify({ before, after }));
  assert.ok(after.stealSeconds >= before.stealSeconds);
});
