/**
 * Peak memory and CPU time of a running process, sampled from Linux's
 * `/proc/<pid>/status` (`VmHWM`, `VmRSS`) and `/proc/<pid>/stat` (`utime`,
 * `stime`) every few milliseconds until it is stopped.
 *
 * `VmHWM` is the kernel's own high-water mark of the resident set, so a peak
 * between two samples is not missed; only growth in the last interval before
 * the process exits can be. Direct child processes are looked up now and then
 * (`/proc/<pid>/task/<tid>/children`) so the caller can check that the sampled
 * process is the one doing the work.
 *
 * Deno refuses every `/proc/<pid>` read without `--allow-all` (`NotCapable`),
 * and `deno task bench` runs with narrower flags. So when this process may not
 * read `/proc`, {@linkcode ProcessMonitor} runs its sampling loop in a helper,
 * `deno run --allow-all process_monitor.ts --watch <pid>` (this module as a
 * program), which prints the {@linkcode ProcessUsage} as JSON once its stdin
 * closes or the process is gone; one-shot reads fall back to `cat`.
 *
 * @module
 */

/** Memory figures of `/proc/<pid>/status`, in bytes. */
export interface ProcStatusMemory {
  /** `VmHWM`: peak resident set size so far. */
  readonly hwmBytes: number;
  /** `VmRSS`: current resident set size. */
  readonly rssBytes: number;
}

function kbField(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name}:\\s*(\\d+)\\s*kB\\s*$`, "m").exec(text);
  return match ? Number(match[1]) * 1024 : undefined;
}

/**
 * Reads `VmHWM` and `VmRSS` out of the text of `/proc/<pid>/status`. Returns
 * `undefined` when they are missing, as for a zombie (exited, not yet reaped)
 * or a kernel thread.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseProcStatus } from "./process_monitor.ts";
 *
 * const status = "Name:\tdeno\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
 * assert.deepEqual(parseProcStatus(status), { hwmBytes: 2_097_152, rssBytes: 1_048_576 });
 * assert.equal(parseProcStatus("Name:\tdeno\nState:\tZ (zombie)\n"), undefined);
 * ```
 */
export function parseProcStatus(text: string): ProcStatusMemory | undefined {
  const hwmBytes = kbField(text, "VmHWM");
  const rssBytes = kbField(text, "VmRSS");
  if (hwmBytes === undefined || rssBytes === undefined) return undefined;
  return { hwmBytes, rssBytes };
}

/**
 * User plus system CPU time, in clock ticks, out of the text of
 * `/proc/<pid>/stat` (fields 14 and 15). The command name in parentheses may
 * contain spaces and parentheses, so fields are counted after the last `)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseProcStatCpuTicks } from "./process_monitor.ts";
 *
 * const stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 8 0 9 0 0";
 * assert.equal(parseProcStatCpuTicks(stat), 280);
 * ```
 */
export function parseProcStatCpuTicks(text: string): number {
  const close = text.lastIndexOf(")");
  const fields = text.slice(close + 1).trim().split(/\s+/);
  // fields[0] is field 3 (state), so utime (14) is fields[11] and stime (15) fields[12].
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (close < 0 || !Number.isInteger(utime) || !Number.isInteger(stime)) {
    throw new SyntaxError(`Not a /proc/<pid>/stat line: ${JSON.stringify(text.slice(0, 120))}`);
  }
  return utime + stime;
}

let cachedClockTicks: number | undefined;

/**
 * Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 when
 * `getconf` is not available).
 *
 * @example
 * ```ts ignore
 * import { clockTicksPerSecond } from "./process_monitor.ts";
 * console.log(await clockTicksPerSecond()); // 100
 * ```
 */
export async function clockTicksPerSecond(): Promise<number> {
  if (cachedClockTicks !== undefined) return cachedClockTicks;
  let ticks = 100;
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).output();
    const n = Number(new TextDecoder().decode(out.stdout).trim());
    if (out.success && Number.isInteger(n) && n > 0) ticks = n;
  } catch { /* no getconf: keep the Linux default */ }
  cachedClockTicks = ticks;
  return ticks;
}

/**
 * CPU seconds (user + system) used so far by `pid`, or `undefined` when the
 * process is gone.
 *
 * @example
 * ```ts ignore
 * import { readCpuSeconds } from "./process_monitor.ts";
 * console.log(await readCpuSeconds(Deno.pid));
 * ```
 */
export async function readCpuSeconds(pid: number): Promise<number | undefined> {
  const text = await readProcFile(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  return parseProcStatCpuTicks(text) / await clockTicksPerSecond();
}

async function readProcFile(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) return await catFile(path);
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) {
      return undefined;
    }
    // ESRCH while the process exits surfaces as a generic error: treat it as gone.
    if (error instanceof Error && /ESRCH|No such process/i.test(error.message)) return undefined;
    throw error;
  }
}

/** One-shot read through `cat`, for when Deno refuses `/proc` (needs `--allow-run`). */
async function catFile(path: string): Promise<string | undefined> {
  const out = await new Deno.Command("cat", { args: [path], stdout: "piped", stderr: "null" })
    .output();
  return out.success ? new TextDecoder().decode(out.stdout) : undefined;
}

/** Whether this process may read `/proc` itself. */
async function canReadProc(): Promise<boolean> {
  try {
    await Deno.readTextFile("/proc/self/stat");
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) return false;
    throw error;
  }
}

/** Machine-wide CPU time, from the `cpu` line of `/proc/stat`. */
export interface SystemCpu {
  /** user + nice + system + irq + softirq (guest time is inside user), seconds. */
  readonly busySeconds: number;
  /** idle + iowait, seconds. */
  readonly idleSeconds: number;
  /** Time the hypervisor gave to other guests, seconds. */
  readonly stealSeconds: number;
}

/**
 * Reads the aggregate `cpu` line of `/proc/stat` (in clock ticks) into
 * seconds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseProcStatCpuLine } from "./process_monitor.ts";
 *
 * const stat = "cpu  100 5 20 1000 10 1 2 7 0 0\ncpu0 50 2 10 500 5 0 1 3 0 0\n";
 * assert.deepEqual(parseProcStatCpuLine(stat, 100), {
 *   busySeconds: 1.28, idleSeconds: 10.1, stealSeconds: 0.07,
 * });
 * ```
 */
export function parseProcStatCpuLine(text: string, ticksPerSecond: number): SystemCpu {
  const line = /^cpu\s+([\d\s]+)$/m.exec(text)?.[1];
  const f = line?.trim().split(/\s+/).map(Number) ?? [];
  if (f.length < 8 || f.some((n) => !Number.isInteger(n))) {
    throw new SyntaxError(
      `No aggregate cpu line in /proc/stat: ${JSON.stringify(text.slice(0, 120))}`,
    );
  }
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return {
    busySeconds: (user + nice + system + irq + softirq) / ticksPerSecond,
    idleSeconds: (idle + iowait) / ticksPerSecond,
    stealSeconds: steal / ticksPerSecond,
  };
}

/**
 * Machine-wide CPU time so far (`/proc/stat`).
 *
 * @example
 * ```ts ignore
 * import { readSystemCpu } from "./process_monitor.ts";
 * const before = await readSystemCpu();
 * ```
 */
export async function readSystemCpu(): Promise<SystemCpu> {
  const text = await readProcFile("/proc/stat");
  if (text === undefined) throw new Error("Cannot read /proc/stat");
  return parseProcStatCpuLine(text, await clockTicksPerSecond());
}

/** Direct children of `pid`, over all its threads. */
async function childPids(pid: number): Promise<number[]> {
  const out: number[] = [];
  try {
    for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
      const text = await readProcFile(`/proc/${pid}/task/${task.name}/children`);
      for (const p of text?.trim().split(/\s+/) ?? []) if (p) out.push(Number(p));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out;
}

/** What a {@linkcode ProcessMonitor} saw. */
export interface ProcessUsage {
  readonly pid: number;
  /** Largest `VmHWM` (or `VmRSS`) seen, in bytes. */
  readonly peakRssBytes: number;
  /** CPU seconds (user + system) at the last sample. */
  readonly cpuSeconds: number;
  /** Number of successful samples. */
  readonly samples: number;
  /** `/proc/<pid>/cmdline` at the first sample, arguments joined by spaces. */
  readonly command: string;
  /** Direct child processes seen at any time (PIDs). */
  readonly childPids: readonly number[];
  /** Largest sum of the children's `VmRSS` seen at one time, in bytes. */
  readonly peakChildRssBytes: number;
}

/** Options of {@linkcode ProcessMonitor}. */
export interface ProcessMonitorOptions {
  /** Sampling interval in ms (default 20). */
  readonly intervalMs?: number;
  /** Look for child processes every this many samples (default 25, i.e. every ~0.5 s). */
  readonly childEvery?: number;
}

/** Samples `/proc/<pid>` in this process until stopped or the process is gone. */
class Sampler {
  readonly #pid: number;
  readonly #intervalMs: number;
  readonly #childEvery: number;
  #stopped = false;
  #wake: (() => void) | undefined;
  readonly done: Promise<void>;
  #peak = 0;
  #cpuTicks = 0;
  #samples = 0;
  #command = "";
  readonly #children = new Set<number>();
  #peakChildRss = 0;
  #ticksPerSecond = 100;
  #error: { error: unknown } | undefined;

  constructor(pid: number, intervalMs: number, childEvery: number) {
    this.#pid = pid;
    this.#intervalMs = intervalMs;
    this.#childEvery = childEvery;
    // A failed read must not become an unhandled rejection: stop() rethrows it.
    this.done = this.#run().catch((error) => void (this.#error = { error }));
  }

  async #run(): Promise<void> {
    this.#ticksPerSecond = await clockTicksPerSecond();
    const cmdline = await readProcFile(`/proc/${this.#pid}/cmdline`);
    this.#command = cmdline?.split("\0").filter((s) => s).join(" ") ?? "";
    for (let i = 0;; i++) {
      const alive = await this.#sample(i % this.#childEvery === 0);
      if (!alive || this.#stopped) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#intervalMs);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  async #sample(withChildren: boolean): Promise<boolean> {
    const pid = this.#pid;
    const status = await readProcFile(`/proc/${pid}/status`);
    if (status === undefined) return false;
    const memory = parseProcStatus(status);
    if (memory === undefined) return false; // zombie: the work is over
    this.#peak = Math.max(this.#peak, memory.hwmBytes, memory.rssBytes);
    const stat = await readProcFile(`/proc/${pid}/stat`);
    if (stat !== undefined) this.#cpuTicks = parseProcStatCpuTicks(stat);
    this.#samples++;
    if (withChildren) {
      let childRss = 0;
      for (const child of await childPids(pid)) {
        this.#children.add(child);
        const text = await readProcFile(`/proc/${child}/status`);
        childRss += (text === undefined ? undefined : parseProcStatus(text))?.rssBytes ?? 0;
      }
      this.#peakChildRss = Math.max(this.#peakChildRss, childRss);
    }
    return true;
  }

  /** Takes one last sample if the process is still there and returns what was seen. */
  async stop(): Promise<ProcessUsage> {
    this.#stopped = true;
    this.#wake?.();
    await this.done;
    if (this.#error) throw this.#error.error;
    return {
      pid: this.#pid,
      peakRssBytes: this.#peak,
      cpuSeconds: this.#cpuTicks / this.#ticksPerSecond,
      samples: this.#samples,
      command: this.#command,
      childPids: [...this.#children],
      peakChildRssBytes: this.#peakChildRss,
    };
  }
}

const SELF = new URL(import.meta.url).pathname;

/** Runs the sampling loop in `deno run --allow-all <this module> --watch <pid>`. */
class HelperSampler {
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #output: Promise<[string, string]>;
  #result: Promise<ProcessUsage> | undefined;

  constructor(pid: number, intervalMs: number, childEvery: number) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-all",
        SELF,
        "--watch",
        String(pid),
        "--interval",
        String(intervalMs),
        "--child-every",
        String(childEvery),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#output = Promise.all([
      new Response(this.#child.stdout).text(),
      new Response(this.#child.stderr).text(),
    ]);
  }

  stop(): Promise<ProcessUsage> {
    this.#result ??= (async () => {
      await this.#stdin.close().catch(() => {});
      const [[stdout, stderr], status] = await Promise.all([this.#output, this.#child.status]);
      if (!status.success || stdout.trim() === "") {
        throw new Error(`The /proc sampler helper failed (exit code ${status.code})`, {
          cause: { stderr: stderr.slice(-4000) },
        });
      }
      return JSON.parse(stdout) as ProcessUsage;
    })();
    return this.#result;
  }
}

/**
 * Samples one process from `/proc` in the background until {@linkcode stop}
 * is called (or the process disappears): in this process when Deno lets it
 * read `/proc`, else in a helper process (see the module documentation).
 *
 * @example
 * ```ts ignore
 * import { ProcessMonitor } from "./process_monitor.ts";
 *
 * const child = new Deno.Command("sleep", { args: ["1"] }).spawn();
 * const monitor = new ProcessMonitor(child.pid);
 * await child.status;
 * const usage = await monitor.stop();
 * console.log(usage.peakRssBytes, usage.cpuSeconds);
 * ```
 */
export class ProcessMonitor {
  readonly #sampler: Promise<Sampler | HelperSampler>;

  /** Starts sampling `pid` at once. */
  constructor(pid: number, options: ProcessMonitorOptions = {}) {
    if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`Invalid pid ${pid}`);
    const intervalMs = options.intervalMs ?? 20;
    if (!(intervalMs > 0)) throw new RangeError(`Invalid intervalMs ${intervalMs}`);
    const childEvery = Math.max(1, Math.trunc(options.childEvery ?? 25));
    this.#sampler = canReadProc().then((direct) =>
      direct
        ? new Sampler(pid, intervalMs, childEvery)
        : new HelperSampler(pid, intervalMs, childEvery)
    );
    this.#sampler.catch(() => {}); // rethrown by stop()
  }

  /**
   * Takes one last sample if the process is still there, stops sampling and
   * returns what was seen. Idempotent.
   */
  async stop(): Promise<ProcessUsage> {
    return await (await this.#sampler).stop();
  }
}

if (import.meta.main) {
  // Helper mode: --watch PID [--interval MS] [--child-every N]; prints ProcessUsage as JSON.
  const arg = (name: string, fallback: number) => {
    const i = Deno.args.indexOf(`--${name}`);
    const n = i < 0 ? fallback : Number(Deno.args[i + 1]);
    if (!Number.isFinite(n) || n <= 0) {
      throw new RangeError(`Invalid --${name} ${Deno.args[i + 1]}`);
    }
    return n;
  };
  const sampler = new Sampler(arg("watch", NaN), arg("interval", 20), arg("child-every", 25));
  const stdinClosed = (async () => {
    for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
  })();
  await Promise.race([stdinClosed, sampler.done]);
  console.log(JSON.stringify(await sampler.stop()));
  Deno.exit(0);
}
