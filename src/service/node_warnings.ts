/**
 * Node-compat process warnings (`process.emitWarning`) are printed raw to
 * stderr by default, which would break the service's JSON-line logs. This
 * routes them to a function instead, and drops kafkajs's known, harmless
 * `TimeoutNegativeWarning` (its request queue arms a timer with a negative
 * delay, which Node treats as 1 ms).
 *
 * @module
 */

import process from "node:process";

/**
 * Sends every process warning to `onWarning` instead of stderr.
 *
 * @example
 * ```ts ignore
 * import { routeNodeWarnings } from "./node_warnings.ts";
 * routeNodeWarnings((name, message) => console.error(name, message));
 * ```
 */
export function routeNodeWarnings(onWarning: (name: string, message: string) => void): void {
  process.removeAllListeners("warning");
  process.on("warning", (warning: Error) => {
    if (warning.name === "TimeoutNegativeWarning") return;
    onWarning(warning.name, warning.message);
  });
}
