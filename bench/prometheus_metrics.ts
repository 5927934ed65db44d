/**
 * Reads Prometheus's own `/metrics` page: the figures the bench needs to know
 * whether the TSDB is still compacting (which would skew the timings) and
 * which version answers.
 *
 * @module
 */

/** End of the `{…}` label block that starts at `open`, honouring quoted values. */
function labelsEnd(line: string, open: number): number {
  let quoted = false;
  for (let i = open + 1; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === "\\") i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === "}") return i;
  }
  throw new SyntaxError(`Unterminated label set in metrics line: ${line.slice(0, 160)}`);
}

/**
 * Sum of every sample of the metric `name` (any labels) in a Prometheus text
 * exposition, or `undefined` when there is none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { metricSum } from "./prometheus_metrics.ts";
 *
 * const text = '# TYPE x counter\nx{a="1"} 2\nx{a="}"} 3\nx_total 9\nx 1e1\n';
 * assert.equal(metricSum(text, "x"), 15);
 * assert.equal(metricSum(text, "y"), undefined);
 * ```
 */
export function metricSum(text: string, name: string): number | undefined {
  let sum: number | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line.startsWith(name)) continue;
    const after = line[name.length];
    let rest: string;
    if (after === "{") rest = line.slice(labelsEnd(line, name.length) + 1);
    else if (after === " " || after === "\t") rest = line.slice(name.length);
    else continue;
    const token = rest.trim().split(/\s+/)[0] ?? "";
    const value = token === "+Inf" ? Infinity : token === "-Inf" ? -Infinity : Number(token);
    if (token === "" || Number.isNaN(value) && token !== "NaN") {
      throw new SyntaxError(`Bad sample value ${JSON.stringify(token)} for ${name}`);
    }
    sum = (sum ?? 0) + value;
  }
  return sum;
}

/**
 * The `version` label of `prometheus_build_info`, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildVersion } from "./prometheus_metrics.ts";
 *
 * assert.equal(buildVersion('prometheus_build_info{branch="x",version="2.42.0+ds"} 1\n'), "2.42.0+ds");
 * ```
 */
export function buildVersion(text: string): string | undefined {
  return /^prometheus_build_info\{[^\n]*?\bversion="([^"]*)"/m.exec(text)?.[1];
}

/**
 * Fetches `<url>/metrics` as text (a few hundred KB at most).
 *
 * @example
 * ```ts ignore
 * import { metricSum, scrapeMetrics } from "./prometheus_metrics.ts";
 * const text = await scrapeMetrics("http://127.0.0.1:9090");
 * console.log(metricSum(text, "prometheus_tsdb_compactions_total"));
 * ```
 */
export async function scrapeMetrics(url: string, signal?: AbortSignal): Promise<string> {
  const endpoint = new URL("metrics", url.endsWith("/") ? url : `${url}/`).href;
  const response = await fetch(endpoint, signal ? { signal } : {});
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`GET ${endpoint} answered HTTP ${response.status}`, {
      cause: { status: response.status, body: text.slice(0, 300) },
    });
  }
  return text;
}

/** TSDB compaction counters of a running Prometheus. */
export interface CompactionCounters {
  /** `prometheus_tsdb_compactions_triggered_total`: compaction passes started. */
  readonly triggered: number;
  /** `prometheus_tsdb_compactions_total`: blocks written by compactions. */
  readonly compactions: number;
  /** `prometheus_tsdb_blocks_loaded`. */
  readonly blocks: number;
}

/**
 * Reads the compaction counters of the Prometheus at `url`.
 *
 * @example
 * ```ts ignore
 * import { compactionCounters } from "./prometheus_metrics.ts";
 * const { compactions } = await compactionCounters("http://127.0.0.1:9090");
 * ```
 */
export async function compactionCounters(
  url: string,
  signal?: AbortSignal,
): Promise<CompactionCounters> {
  const text = await scrapeMetrics(url, signal);
  return {
    triggered: metricSum(text, "prometheus_tsdb_compactions_triggered_total") ?? 0,
    compactions: metricSum(text, "prometheus_tsdb_compactions_total") ?? 0,
    blocks: metricSum(text, "prometheus_tsdb_blocks_loaded") ?? 0,
  };
}

/** Options of {@linkcode waitForCompactions}. */
export interface WaitForCompactionsOptions {
  /** Give up after this long (default 300 000 ms). */
  readonly timeoutMs?: number;
  /** Counters must stay unchanged this long after the first pass started (default 5 000 ms). */
  readonly quietMs?: number;
  /** Polling interval (default 500 ms). */
  readonly pollMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * Waits until Prometheus has run its first compaction pass (it starts one
 * about a minute after start-up) and its compaction counters and block count
 * then stayed unchanged for `quietMs`: backfilled blocks that the compactor
 * wants to merge are merged by then, so later timings are not disturbed.
 * Throws a `RangeError` after `timeoutMs`.
 *
 * @example
 * ```ts ignore
 * import { waitForCompactions } from "./prometheus_metrics.ts";
 * const settled = await waitForCompactions("http://127.0.0.1:9090");
 * console.log(`${settled.compactions} compactions, ${settled.blocks} blocks`);
 * ```
 */
export async function waitForCompactions(
  url: string,
  options: WaitForCompactionsOptions = {},
): Promise<CompactionCounters> {
  const timeoutMs = options.timeoutMs ?? 300_000;
  const quietMs = options.quietMs ?? 5_000;
  const pollMs = options.pollMs ?? 500;
  const deadline = performance.now() + timeoutMs;
  let last: CompactionCounters | undefined;
  let stableSince = performance.now();
  while (true) {
    options.signal?.throwIfAborted();
    const now = await compactionCounters(url, options.signal);
    const t = performance.now();
    if (
      last === undefined || now.triggered !== last.triggered ||
      now.compactions !== last.compactions || now.blocks !== last.blocks
    ) {
      stableSince = t;
    }
    last = now;
    if (now.triggered >= 1 && t - stableSince >= quietMs) return now;
    if (t > deadline) {
      throw new RangeError(
        `Prometheus at ${url} did not finish compacting within ${timeoutMs} ms`,
        { cause: now },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
