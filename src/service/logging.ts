/**
 * Structured logs of the service: one JSON object per line on stderr, with
 * the time, level, category, message and the context properties (run id,
 * cluster id …) of LogTape, the one logging library of the bridge. Message
 * text is escaped (no control characters), and properties whose name looks
 * like a secret are never written.
 *
 * @module
 */

import { configure, type LogRecord, reset } from "@logtape/logtape";
import { escapeControl } from "../model.ts";

const SECRET_KEY = /token|password|secret|authorization|credential/i;

/** Renders a LogTape message (text parts and values) as one string. */
function render(message: readonly unknown[]): string {
  return message.map((part, i) =>
    i % 2 === 0 ? String(part) : typeof part === "string" ? part : JSON.stringify(part)
  ).join("");
}

/**
 * One JSON line for a record.
 *
 * @example
 * ```ts
 * import { formatJsonLine } from "./logging.ts";
 * formatJsonLine({
 *   category: ["thanos-bridge", "runs"], level: "info", message: ["run ", "r-1", " started"],
 *   rawMessage: "run {id} started", timestamp: 0, properties: { runId: "r-1", token: "x" },
 * });
 * // '{"time":"1970-01-01T00:00:00.000Z","level":"info","category":"thanos-bridge.runs","message":"run r-1 started","runId":"r-1"}\n'
 * ```
 */
export function formatJsonLine(record: LogRecord): string {
  const out: Record<string, unknown> = {
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    category: record.category.join("."),
    message: escapeControl(render(record.message), false),
  };
  for (const [key, value] of Object.entries(record.properties)) {
    if (SECRET_KEY.test(key) || key in out) continue;
    out[key] = typeof value === "string" ? escapeControl(value, false) : value;
  }
  return JSON.stringify(out) + "\n";
}

/**
 * Sends every `thanos-bridge` log at `level` or above to `write` as JSON
 * lines (default: stderr).
 *
 * @example
 * ```ts ignore
 * import { setupLogging } from "./logging.ts";
 * await setupLogging("info");
 * ```
 */
export async function setupLogging(
  level: "debug" | "info" | "warning" | "error",
  write: (line: string) => void = (line) =>
    void Deno.stderr.writeSync(new TextEncoder().encode(line)),
): Promise<void> {
  await configure({
    reset: true,
    sinks: { json: (record: LogRecord) => write(formatJsonLine(record)) },
    loggers: [
      { category: ["thanos-bridge"], lowestLevel: level, sinks: ["json"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["json"] },
    ],
  });
}

/** Removes the configuration (tests). */
export async function resetLogging(): Promise<void> {
  await reset();
}
