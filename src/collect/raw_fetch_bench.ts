/**
 * Memory of {@linkcode fetchRaw}'s store for one 6-hour range of a 2,000-pod
 * cluster: 60,000 synthetic series × 78 samples over 8 selectors, streamed by a
 * fake client (no network) that parses each series' JSON text with the
 * client's own parser ({@linkcode parseSeriesText}), so label strings and
 * sample arrays look as they do in production.
 *
 * `deno run -A --v8-flags=--expose-gc src/collect/raw_fetch_bench.ts`
 * runs 5 measurements, each in a fresh process, and prints their medians:
 * the heap and external (typed-array) bytes held by the store after a full GC,
 * the process's RSS then, and its peak RSS (`VmHWM`) over the whole fetch,
 * each with the process's figures before the fetch subtracted. `--runs=N`
 * changes the count; `--impl=./other.ts` measures another module with the
 * same `fetchRaw` export (e.g. a copy of an earlier version).
 *
 * @module
 */

import { parseSeriesText } from "../thanos/series_text.ts";
import type { InstantQuerier, RawFetchRequest, RawStore, StreamedSeries } from "./raw_fetch.ts";

/** Series in the range, over all selectors. */
const SERIES = 60_000;
/** Samples per series: 6 hours every 5 minutes, plus a 30-minute margin. */
const SAMPLES = 78;
/** Selectors the range reads. */
const SELECTORS = 8;
/** Pods of the cluster. */
const PODS = 2_000;
const LAST_MS = Date.UTC(2026, 10, 1, 5, 59);
const FIRST_MS = LAST_MS - 6 * 3_600_000 + 60_000;
const CLUSTER = "0d3b8c1e-5d2f-4d8a-9d9e-2f1a3b4c5d6e";

/** One measurement's figures, in bytes. */
interface Figures {
  /** V8 heap held by the store after a full GC (heapUsed after − before). */
  heap: number;
  /** External memory (typed-array buffers) held by the store after a full GC. */
  external: number;
  /** RSS after the fetch and a full GC, minus RSS before. */
  rss: number;
  /** Peak RSS (VmHWM) over the fetch, minus RSS before. */
  peakRss: number;
  /** Wall time of the fetch, ms. */
  ms: number;
  /** The store's own estimate. */
  estimate: number;
}

/** The selector keys of the range. */
function keys(): string[] {
  return Array.from(
    { length: SELECTORS },
    (_, i) => `bench_metric_${i}{clusterID="${CLUSTER}"}`,
  );
}

/** The JSON text of series `i` of selector `k`, as Thanos would send it. */
function seriesText(k: number, i: number): string {
  const pod = i % PODS;
  const container = Math.floor(i / PODS);
  const metric: Record<string, string> = {
    __name__: `bench_metric_${k}`,
    clusterID: CLUSTER,
    container: `container-${container}`,
    instance: `10.0.${pod % 250}.${pod % 13}:8080`,
    job: "kube-state-metrics",
    namespace: `namespace-${pod % 97}`,
    node: `ip-10-0-${pod % 50}-17.eu-west-1.compute.internal`,
    pod: `workload-${pod % 300}-7c9d8f6b5-${(pod * 7919).toString(36).padStart(5, "x")}`,
    uid: `6f1c2a3b-${pod.toString(16).padStart(4, "0")}-4e5f-8a9b-0c1d2e3f4a5b`,
  };
  const values: string[] = [];
  const lastS = LAST_MS / 1000;
  for (let j = SAMPLES - 1; j >= 0; j--) {
    values.push(`[${lastS - j * 300},"${(335413248 + ((i * 31 + j) % 4096) * 4096) / 1}"]`);
  }
  return `{"metric":${JSON.stringify(metric)},"values":[${values.join(",")}]}`;
}

/** A client that streams `SERIES / SELECTORS` series per query, yielding to the event loop now and then. */
function fakeClient(): InstantQuerier {
  const all = keys();
  return {
    async queryInstant(q, onSeries) {
      const k = all.findIndex((key) => q.query.startsWith(`${key}[`));
      const n = SERIES / SELECTORS;
      for (let i = 0; i < n; i++) {
        onSeries(parseSeriesText(seriesText(k, i)) as StreamedSeries);
        if (i % 500 === 499) await new Promise((r) => setTimeout(r, 0));
      }
      return undefined;
    },
  };
}

/** Peak RSS of this process (Linux `VmHWM`), or NaN elsewhere. */
function peakRss(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const m = /^VmHWM:\s+(\d+) kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** A full GC when `--expose-gc` is given. */
function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** One measurement in this process. */
async function measure(impl: string): Promise<Figures> {
  const mod = await import(new URL(impl, import.meta.url).href) as {
    fetchRaw: (c: InstantQuerier, r: RawFetchRequest) => Promise<RawStore>;
  };
  // Warm the parser and generator, then take the baseline.
  for (let i = 0; i < 2_000; i++) parseSeriesText(seriesText(0, i));
  gc();
  gc();
  const before = Deno.memoryUsage();
  const started = performance.now();
  const store = await mod.fetchRaw(fakeClient(), {
    firstMs: FIRST_MS,
    lastMs: LAST_MS,
    needs: keys().map((key) => ({ key, marginMs: 1_800_000 })), // 78 samples fit
    clusterId: CLUSTER,
  });
  const ms = performance.now() - started;
  const peak = peakRss();
  gc();
  gc();
  const after = Deno.memoryUsage();
  if (store.seriesCount !== SERIES || store.samples !== SERIES * SAMPLES) {
    throw new Error(`unexpected store: ${store.seriesCount} series, ${store.samples} samples`);
  }
  const figures: Figures = {
    heap: after.heapUsed - before.heapUsed,
    external: after.external - before.external,
    rss: after.rss - before.rss,
    peakRss: peak - before.rss,
    ms,
    estimate: store.bytes,
  };
  // Keep the store alive until after the measurement.
  if (store.series(keys()[0]!).length === 0) throw new Error("empty");
  return figures;
}

/** The median of `xs`. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Megabytes, one decimal. */
function mb(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(1)} MB`;
}

if (import.meta.main) {
  const arg = (name: string) =>
    Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const impl = arg("impl") ?? "./raw_fetch.ts";
  if (Deno.args.includes("--child")) {
    console.log(JSON.stringify(await measure(impl)));
  } else {
    const runs = Number(arg("runs") ?? 5);
    const all: Figures[] = [];
    for (let r = 0; r < runs; r++) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all", // reading /proc/self/status needs it
          "--v8-flags=--expose-gc",
          new URL(import.meta.url).pathname,
          "--child",
          `--impl=${impl}`,
        ],
        stderr: "inherit",
      }).output();
      if (!out.success) throw new Error(`run ${r + 1} failed`);
      all.push(JSON.parse(new TextDecoder().decode(out.stdout)) as Figures);
    }
    const pick = (f: keyof Figures) => median(all.map((x) => x[f]));
    console.log(
      `fetchRaw (${impl}), ${SERIES} series × ${SAMPLES} samples, median of ${runs} runs:`,
    );
    console.log(`  store heap      ${mb(pick("heap"))}`);
    console.log(`  store external  ${mb(pick("external"))}`);
    console.log(`  store total     ${mb(pick("heap") + pick("external"))}`);
    console.log(`  RSS after GC    +${mb(pick("rss"))}`);
    console.log(`  peak RSS        +${mb(pick("peakRss"))}`);
    console.log(`  store.bytes     ${mb(pick("estimate"))}`);
    console.log(`  fetch time      ${pick("ms").toFixed(0)} ms`);
  }
}
