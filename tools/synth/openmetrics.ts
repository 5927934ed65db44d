/**
 * Streams a synthetic hub as OpenMetrics text files that
 * `promtool tsdb create-blocks-from openmetrics` accepts: timestamps in
 * seconds, counters typed `counter` with `_total` samples, escaped label
 * values, each series' samples in time order, `# EOF` at the end of every
 * file. Files are split by time so promtool's memory stays bounded.
 *
 * @module
 */

import {
  type ClusterModel,
  type Hub,
  sampleTimeMs,
  sampleValue,
  type SeriesSpec,
} from "./model.ts";

/** Options of {@linkcode writeOpenMetrics}. */
export interface OpenMetricsOptions {
  /**
   * Hours per file (default 24). Files cover `[n·h, (n+1)·h)` hours since the
   * Unix epoch, so with 24 they follow UTC days like promtool's 24 h blocks.
   */
  hoursPerFile?: number;
}

/**
 * Escapes a label value for the exposition formats (`\` `"` and newline).
 *
 * @example
 * ```ts
 * import { escapeLabelValue } from "./openmetrics.ts";
 * escapeLabelValue('a"b\\c\nd'); // 'a\\"b\\\\c\\nd'
 * ```
 */
export function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/**
 * The `{name="value",…}` part of a sample line, label names sorted.
 *
 * @example
 * ```ts
 * import { formatLabels } from "./openmetrics.ts";
 * formatLabels({ pod: "p", cluster: "c" }); // '{cluster="c",pod="p"}'
 * ```
 */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  const names = Object.keys(labels).sort();
  return `{${names.map((n) => `${n}="${escapeLabelValue(labels[n] ?? "")}"`).join(",")}}`;
}

/**
 * Formats a sample value so that Go's `strconv.ParseFloat` reads back the
 * identical float64 (shortest round-trip form).
 *
 * @example
 * ```ts
 * import { formatValue } from "./openmetrics.ts";
 * formatValue(0.1); // "0.1"
 * formatValue(17179869184); // "17179869184"
 * ```
 */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** The OpenMetrics family name of a series: counters drop the `_total` suffix. */
function familyName(series: SeriesSpec): string {
  if (series.type !== "counter") return series.metric;
  if (!series.metric.endsWith("_total")) {
    throw new TypeError(`Counter "${series.metric}" must end in _total for OpenMetrics`);
  }
  return series.metric.slice(0, -"_total".length);
}

class BufferedFile {
  #parts: string[] = [];
  #size = 0;
  readonly #encoder = new TextEncoder();

  constructor(readonly file: Deno.FsFile) {}

  /** Buffers `text`; returns true once the buffer should be flushed. */
  push(text: string): boolean {
    this.#parts.push(text);
    this.#size += text.length;
    return this.#size >= 1 << 20;
  }

  async flush(): Promise<void> {
    if (this.#parts.length === 0) return;
    let bytes = this.#encoder.encode(this.#parts.join(""));
    this.#parts = [];
    this.#size = 0;
    while (bytes.length > 0) {
      const n = await this.file.write(bytes);
      bytes = bytes.subarray(n);
    }
  }
}

interface Family {
  readonly name: string;
  readonly type: "gauge" | "counter";
  readonly members: { cluster: ClusterModel; series: SeriesSpec; prefix: string }[];
}

function families(hub: Hub): Family[] {
  const byName = new Map<string, Family>();
  for (const cluster of hub.clusters) {
    for (const series of cluster.series) {
      const name = familyName(series);
      let f = byName.get(name);
      if (!f) {
        f = { name, type: series.type, members: [] };
        byName.set(name, f);
      } else if (f.type !== series.type) {
        throw new TypeError(`Metric family "${name}" is both ${f.type} and ${series.type}`);
      }
      f.members.push({ cluster, series, prefix: series.metric + formatLabels(series.labels) });
    }
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Writes `hub` as OpenMetrics files into `dir` (created if missing) and
 * returns their paths in time order. Nothing is held in memory beyond one
 * output buffer of about 1 MiB.
 *
 * @example
 * ```ts ignore
 * import { buildHub, defaultTestHub } from "./model.ts";
 * import { writeOpenMetrics } from "./openmetrics.ts";
 * const files = await writeOpenMetrics(buildHub(defaultTestHub()), "/tmp/om");
 * ```
 */
export async function writeOpenMetrics(
  hub: Hub,
  dir: string,
  options: OpenMetricsOptions = {},
): Promise<string[]> {
  const hoursPerFile = options.hoursPerFile ?? 24;
  if (!Number.isInteger(hoursPerFile) || hoursPerFile < 1) {
    throw new RangeError(`Invalid hoursPerFile ${hoursPerFile}: expected a positive integer`);
  }
  await Deno.mkdir(dir, { recursive: true });
  const chunkMs = hoursPerFile * 3_600_000;
  const endMs = hub.startMs + hub.hours * 3_600_000;
  const fams = families(hub);
  const intervalMs = hub.intervalSeconds * 1000;
  const files: string[] = [];
  for (let from = Math.floor(hub.startMs / chunkMs) * chunkMs; from < endMs; from += chunkMs) {
    const to = from + chunkMs;
    const path = `${dir}/metrics-${String(files.length).padStart(3, "0")}.om`;
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    try {
      const out = new BufferedFile(file);
      for (const fam of fams) {
        let typed = false;
        for (const m of fam.members) {
          const first = sampleTimeMs(hub, m.cluster, 0);
          const lo = Math.max(0, Math.ceil((from - first) / intervalMs));
          const hi = Math.min(m.cluster.sampleCount, Math.ceil((to - first) / intervalMs));
          for (let k = lo; k < hi; k++) {
            const v = sampleValue(m.cluster, m.series, k);
            if (v === undefined) continue;
            if (!typed) {
              out.push(`# TYPE ${fam.name} ${fam.type}\n`);
              typed = true;
            }
            const line = `${m.prefix} ${formatValue(v)} ${(first + k * intervalMs) / 1000}\n`;
            if (out.push(line)) await out.flush();
          }
        }
      }
      out.push("# EOF\n");
      await out.flush();
    } finally {
      file.close();
    }
    files.push(path);
  }
  return files;
}
