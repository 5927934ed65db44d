/**
 * Runs the CLI's `main` in the test process with an injected `CliIo`: output
 * collected, no `THANOS_BRIDGE_*` variables from the environment running the
 * test, and a clock the test chooses (the synthetic hubs' data lies in a
 * fixed past).
 *
 * @module
 */
import { type CliIo, main } from "../../src/cli/main.ts";

/** Exit code and output of one CLI run. */
export interface Ran {
  code: number;
  out: string;
  err: string;
}

/**
 * Runs `thanos-bridge <args>` in this process at the time `now()` returns.
 *
 * @example
 * ```ts ignore
 * const ran = await runCli(["allowlist"], () => new Date("2026-11-02T01:00:00Z"));
 * ran.code; // 0
 * ```
 */
export async function runCli(args: readonly string[], now: () => Date): Promise<Ran> {
  const ran: Ran = { code: -1, out: "", err: "" };
  const io: CliIo = {
    stdout: (t) => void (ran.out += t),
    stderr: (t) => void (ran.err += t),
    stderrIsTerminal: false,
    env: { HOME: "/nonexistent" },
    now,
  };
  ran.code = await main(args, io);
  return ran;
}

/** The end of a synthetic hub's data plus `hours` (an hour later, every hour is settled). */
export function afterData(hub: { startMs: number; hours: number }, hours: number): () => Date {
  return () => new Date(hub.startMs + (hub.hours + hours) * 3_600_000);
}
