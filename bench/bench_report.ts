/**
 * The figures of a benchmark run, their medians, the targets of the issue and
 * the printed table. Pure: no I/O.
 *
 * @module
 */

/** Targets of the issue. */
export const TARGETS = {
  /** Wall time over the download floor. */
  maxRatio: 1.15,
  /** Peak RSS of any run, in MB (10^6 bytes). */
  maxRssMb: 256,
  /**
   * "About the same for 1 h and 24 h": the 24 h peak may exceed the 1 h peak
   * by at most this factor (our reading of "about the same").
   */
  maxRssGrowth: 1.25,
  /**
   * Issue 9: ROS may add at most this fraction to the wall time and to the
   * download of a cluster-day in server mode (ROS / `--no-ros` − 1).
   */
  maxRosOverhead: 0.35,
  /**
   * `--reduce local`: Prometheus's CPU seconds for the cluster-day may be at
   * most this fraction of server mode's (medians).
   */
  localMaxPromCpuRatio: 1 / 20,
  /** `--reduce local`: wall time at most this fraction of server mode's (medians). */
  localMaxWallRatio: 1 / 4,
  /** `--reduce local`: peak RSS of the cluster-day run, MB (10^6 bytes). */
  localMaxRssMb: 256,
} as const;

/** A `--reduce` mode the bench measures. */
export type ReduceMode = "server" | "client" | "local";

/** What local mode's summary said about its self-checks (last timed run). */
export interface SelfCheckFigures {
  /** Self-checks made (one per batch and hour range). */
  readonly checks: number;
  /** Self-checks that failed: those hours were collected again in server mode. */
  readonly mismatches: number;
  /** Distinct queries evaluated on the server instead of here (e.g. unsupported). */
  readonly serverQueries: number;
}

/** One timed run of one mode, with the floor measured right after it. */
export interface TimedRun {
  /** `summary.ms`: time inside runCollect. */
  readonly wallMs: number;
  /** Spawn to exit of the `deno run` process. */
  readonly processMs: number;
  readonly floorMs: number;
  readonly peakRssBytes: number;
  /** CPU seconds of the bridge process. */
  readonly bridgeCpuS: number;
  /** CPU seconds Prometheus spent during the timed run. */
  readonly promCpuS: number;
  /** CPU seconds Prometheus spent during the floor. */
  readonly floorPromCpuS: number;
  /** CPU seconds of the bench process itself (the floor's client) during the floor. */
  readonly floorClientCpuS: number;
  /** CPU seconds of everything else on the machine during the timed run. */
  readonly otherCpuS: number;
  /** CPU seconds of everything else on the machine during the floor. */
  readonly floorOtherCpuS: number;
  /** Seconds stolen by the hypervisor during the timed run and the floor. */
  readonly stealS: number;
}

/** Figures of one reduction mode over a cluster-day. */
export interface ModeFigures {
  readonly mode: ReduceMode;
  readonly runs: readonly TimedRun[];
  readonly queries: number;
  readonly bytesDownloaded: number;
  /** Distinct requests of the recording, replayed by the floor. */
  readonly floorRequests: number;
  readonly floorBytes: number;
  readonly rows: number;
  /** Local mode only: the self-checks of the last timed run. */
  readonly selfCheck?: SelfCheckFigures;
}

/** One timed run with `--no-ros`, right after the mode's timed run (ROS on) and its floor. */
export interface NoRosRun {
  readonly wallMs: number;
  readonly processMs: number;
  readonly peakRssBytes: number;
  readonly bridgeCpuS: number;
  /** CPU seconds Prometheus spent during the run. */
  readonly promCpuS: number;
}

/**
 * The same cluster-day collected with `--no-ros`, as many times as the
 * mode's timed runs (which run with ROS, the default).
 */
export interface NoRosFigures {
  readonly mode: ReduceMode;
  readonly runs: readonly NoRosRun[];
  readonly queries: number;
  readonly bytesDownloaded: number;
  readonly rows: number;
}

/** Peak RSS of one window in one mode. */
export interface WindowFigures {
  readonly mode: ReduceMode;
  readonly hours: number;
  /** Peak RSS of each run, bytes. */
  readonly peakRssBytes: readonly number[];
}

/** Everything a bench run measured. */
export interface BenchReport {
  readonly hub: {
    readonly pods: number;
    readonly nodes: number;
    readonly pvcs: number;
    readonly vms: number;
    readonly series: number;
    readonly day: string;
    readonly cached: boolean;
    readonly prepareMs: number;
  };
  readonly machine: { readonly cpus: number; readonly memTotalBytes: number };
  readonly prometheusVersion: string;
  readonly iterations: number;
  readonly modes: readonly ModeFigures[];
  readonly windows: readonly WindowFigures[];
  /** `--no-ros` runs of the modes whose ROS cost was measured (server mode); absent: none. */
  readonly noRos?: readonly NoRosFigures[];
  /** Fingerprint of `src/` at the start and at the end (they should be equal). */
  readonly source: { readonly before: string; readonly after: string };
  /** Compactions Prometheus ran during the measurements (should be 0). */
  readonly compactionsDuringBench: number;
  /** What `/proc` showed about the sampled process. */
  readonly sampledProcess: {
    readonly command: string;
    readonly childProcesses: number;
  };
}

/**
 * Median of a non-empty list (mean of the two middle values for an even length).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { median } from "./bench_report.ts";
 *
 * assert.equal(median([3, 1, 2]), 2);
 * assert.equal(median([4, 1, 2, 3]), 2.5);
 * ```
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("median of an empty list");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Medians and derived figures of one mode. */
export interface ModeSummary {
  readonly mode: ReduceMode;
  readonly wallS: number;
  readonly processS: number;
  readonly floorS: number;
  /** median wall / median floor. */
  readonly ratio: number;
  readonly ratioOk: boolean;
  readonly bytesDownloaded: number;
  readonly queries: number;
  readonly peakRssMb: number;
  readonly rssOk: boolean;
  readonly rows: number;
  readonly rowsPerS: number;
  readonly bridgeCpuS: number;
  readonly promCpuS: number;
  readonly otherCpuS: number;
  readonly floorClientCpuS: number;
  readonly floorPromCpuS: number;
  readonly floorOtherCpuS: number;
  readonly stealS: number;
}

/** Peak RSS of one mode for 1 h and 24 h. */
export interface WindowSummary {
  readonly mode: ReduceMode;
  readonly rss1hMb: number;
  readonly rss24hMb: number;
  readonly growth: number;
  readonly growthOk: boolean;
  readonly rssOk: boolean;
}

const MB = 1e6;

/**
 * Medians of a mode's runs, its ratio and its verdicts against {@linkcode TARGETS}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { summarizeMode } from "./bench_report.ts";
 *
 * const run = (wallMs: number, floorMs: number) => ({
 *   wallMs, processMs: wallMs + 300, floorMs, peakRssBytes: 100e6, bridgeCpuS: 1,
 *   promCpuS: 2, floorPromCpuS: 2, floorClientCpuS: 0.5, otherCpuS: 0, floorOtherCpuS: 0,
 *   stealS: 0,
 * });
 * const s = summarizeMode({
 *   mode: "server", runs: [run(11_000, 10_000), run(12_000, 9_000), run(10_500, 10_000)],
 *   queries: 10, bytesDownloaded: 1000, floorRequests: 10, floorBytes: 1000, rows: 22_000,
 * });
 * assert.equal(s.ratio, 1.1);
 * assert.equal(s.rowsPerS, 2000);
 * assert.equal(s.ratioOk, true);
 * ```
 */
export function summarizeMode(m: ModeFigures): ModeSummary {
  const wallS = median(m.runs.map((r) => r.wallMs)) / 1000;
  const floorS = median(m.runs.map((r) => r.floorMs)) / 1000;
  const ratio = wallS / floorS;
  const peakRssMb = median(m.runs.map((r) => r.peakRssBytes)) / MB;
  return {
    mode: m.mode,
    wallS,
    processS: median(m.runs.map((r) => r.processMs)) / 1000,
    floorS,
    ratio,
    ratioOk: ratio <= TARGETS.maxRatio,
    bytesDownloaded: m.bytesDownloaded,
    queries: m.queries,
    peakRssMb,
    rssOk: peakRssMb <= TARGETS.maxRssMb,
    rows: m.rows,
    rowsPerS: m.rows / wallS,
    bridgeCpuS: median(m.runs.map((r) => r.bridgeCpuS)),
    promCpuS: median(m.runs.map((r) => r.promCpuS)),
    otherCpuS: median(m.runs.map((r) => r.otherCpuS)),
    floorClientCpuS: median(m.runs.map((r) => r.floorClientCpuS)),
    floorPromCpuS: median(m.runs.map((r) => r.floorPromCpuS)),
    floorOtherCpuS: median(m.runs.map((r) => r.floorOtherCpuS)),
    stealS: median(m.runs.map((r) => r.stealS)),
  };
}

/**
 * Pairs the 1 h and 24 h peak RSS of each mode (medians) with the verdicts.
 * Modes without both windows are left out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { summarizeWindows } from "./bench_report.ts";
 *
 * const [w] = summarizeWindows([
 *   { mode: "client", hours: 1, peakRssBytes: [100e6] },
 *   { mode: "client", hours: 24, peakRssBytes: [110e6, 120e6, 115e6] },
 * ]);
 * assert.equal(w!.rss24hMb, 115);
 * assert.equal(w!.growthOk, true);
 * ```
 */
export function summarizeWindows(windows: readonly WindowFigures[]): WindowSummary[] {
  const out: WindowSummary[] = [];
  for (const mode of ["server", "client", "local"] as const) {
    const one = windows.find((w) => w.mode === mode && w.hours === 1);
    const day = windows.find((w) => w.mode === mode && w.hours === 24);
    if (!one || !day) continue;
    const rss1hMb = median(one.peakRssBytes) / MB;
    const rss24hMb = median(day.peakRssBytes) / MB;
    const growth = rss24hMb / rss1hMb;
    out.push({
      mode,
      rss1hMb,
      rss24hMb,
      growth,
      growthOk: growth <= TARGETS.maxRssGrowth,
      rssOk: Math.max(rss1hMb, rss24hMb) <= TARGETS.maxRssMb,
    });
  }
  return out;
}

/** What ROS costs in one mode: medians with ROS (the default) and with `--no-ros`. */
export interface RosSummary {
  readonly mode: ReduceMode;
  readonly wallS: number;
  readonly noRosWallS: number;
  /** wallS / noRosWallS − 1. */
  readonly wallOverhead: number;
  readonly wallOk: boolean;
  readonly bytesDownloaded: number;
  readonly noRosBytesDownloaded: number;
  /** bytesDownloaded / noRosBytesDownloaded − 1. */
  readonly downloadOverhead: number;
  readonly downloadOk: boolean;
  readonly queries: number;
  readonly noRosQueries: number;
  /** queries / noRosQueries − 1 (no target). */
  readonly queryOverhead: number;
  readonly processS: number;
  readonly noRosProcessS: number;
  readonly bridgeCpuS: number;
  readonly noRosBridgeCpuS: number;
  readonly promCpuS: number;
  readonly noRosPromCpuS: number;
  readonly peakRssMb: number;
  readonly noRosPeakRssMb: number;
  readonly rows: number;
  readonly noRosRows: number;
}

/**
 * Pairs each mode's timed runs (ROS on) with its `--no-ros` runs: medians of
 * both, the overheads (ROS / no ROS − 1) and the verdicts against
 * `TARGETS.maxRosOverhead` (inclusive). Modes without `--no-ros` runs are
 * left out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { summarizeRos } from "./bench_report.ts";
 *
 * const run = (wallMs: number) => ({
 *   wallMs, processMs: wallMs + 300, floorMs: wallMs, peakRssBytes: 100e6, bridgeCpuS: 1,
 *   promCpuS: 2, floorPromCpuS: 2, floorClientCpuS: 0.5, otherCpuS: 0, floorOtherCpuS: 0,
 *   stealS: 0,
 * });
 * const [s] = summarizeRos(
 *   [{
 *     mode: "server", runs: [run(12_000)], queries: 150, bytesDownloaded: 1100,
 *     floorRequests: 150, floorBytes: 1100, rows: 30_000,
 *   }],
 *   [{
 *     mode: "server", queries: 100, bytesDownloaded: 1000, rows: 20_000,
 *     runs: [{ wallMs: 10_000, processMs: 10_300, peakRssBytes: 90e6, bridgeCpuS: 1, promCpuS: 2 }],
 *   }],
 * );
 * assert.equal(s!.wallOverhead.toFixed(2), "0.20");
 * assert.equal(s!.queryOverhead, 0.5);
 * assert.equal(s!.wallOk && s!.downloadOk, true);
 * ```
 */
export function summarizeRos(
  modes: readonly ModeFigures[],
  noRos: readonly NoRosFigures[],
): RosSummary[] {
  const out: RosSummary[] = [];
  for (const m of modes) {
    const n = noRos.find((x) => x.mode === m.mode);
    if (!n || n.runs.length === 0 || m.runs.length === 0) continue;
    const wallS = median(m.runs.map((r) => r.wallMs)) / 1000;
    const noRosWallS = median(n.runs.map((r) => r.wallMs)) / 1000;
    const wallOverhead = wallS / noRosWallS - 1;
    const downloadOverhead = m.bytesDownloaded / n.bytesDownloaded - 1;
    out.push({
      mode: m.mode,
      wallS,
      noRosWallS,
      wallOverhead,
      // As ratios, so that a figure exactly at the target passes despite rounding.
      wallOk: wallS / noRosWallS <= 1 + TARGETS.maxRosOverhead,
      bytesDownloaded: m.bytesDownloaded,
      noRosBytesDownloaded: n.bytesDownloaded,
      downloadOverhead,
      downloadOk: m.bytesDownloaded / n.bytesDownloaded <= 1 + TARGETS.maxRosOverhead,
      queries: m.queries,
      noRosQueries: n.queries,
      queryOverhead: m.queries / n.queries - 1,
      processS: median(m.runs.map((r) => r.processMs)) / 1000,
      noRosProcessS: median(n.runs.map((r) => r.processMs)) / 1000,
      bridgeCpuS: median(m.runs.map((r) => r.bridgeCpuS)),
      noRosBridgeCpuS: median(n.runs.map((r) => r.bridgeCpuS)),
      promCpuS: median(m.runs.map((r) => r.promCpuS)),
      noRosPromCpuS: median(n.runs.map((r) => r.promCpuS)),
      peakRssMb: median(m.runs.map((r) => r.peakRssBytes)) / MB,
      noRosPeakRssMb: median(n.runs.map((r) => r.peakRssBytes)) / MB,
      rows: m.rows,
      noRosRows: n.rows,
    });
  }
  return out;
}

/**
 * Local mode against server mode (medians of each): the figures of both and
 * the three targets of `--reduce local` — Prometheus CPU and wall time as
 * ratios local / server, peak RSS against `TARGETS.localMaxRssMb`. Without a
 * server-mode measurement the ratios (and their verdicts) are `null`.
 */
export interface LocalTargetSummary {
  readonly wallS: number;
  readonly serverWallS: number | null;
  /** wallS / serverWallS. */
  readonly wallRatio: number | null;
  readonly wallOk: boolean | null;
  readonly promCpuS: number;
  readonly serverPromCpuS: number | null;
  /** promCpuS / serverPromCpuS. */
  readonly promCpuRatio: number | null;
  readonly promCpuOk: boolean | null;
  readonly peakRssMb: number;
  readonly serverPeakRssMb: number | null;
  readonly rssOk: boolean;
  readonly floorS: number;
  readonly serverFloorS: number | null;
  readonly bytesDownloaded: number;
  readonly serverBytesDownloaded: number | null;
  readonly queries: number;
  readonly serverQueries: number | null;
  readonly bridgeCpuS: number;
  readonly serverBridgeCpuS: number | null;
  readonly rows: number;
  readonly serverRows: number | null;
  /** The self-checks of local mode's last timed run, when its summary had them. */
  readonly selfCheck: SelfCheckFigures | null;
}

/**
 * Local mode's figures next to server mode's, with the verdicts of the
 * local-mode targets (inclusive). `undefined` when local mode was not measured.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { summarizeLocal } from "./bench_report.ts";
 *
 * const run = (wallMs: number, promCpuS: number, peakRssBytes: number) => ({
 *   wallMs, processMs: wallMs + 300, floorMs: wallMs, peakRssBytes, bridgeCpuS: 1,
 *   promCpuS, floorPromCpuS: 2, floorClientCpuS: 0.5, otherCpuS: 0, floorOtherCpuS: 0,
 *   stealS: 0,
 * });
 * const figures = (mode: "server" | "local", r: ReturnType<typeof run>) => ({
 *   mode, runs: [r], queries: 10, bytesDownloaded: 1000, floorRequests: 10, floorBytes: 1000,
 *   rows: 100,
 * });
 * const s = summarizeLocal([
 *   figures("server", run(40_000, 60, 150e6)),
 *   figures("local", run(8_000, 2, 200e6)),
 * ])!;
 * assert.equal(s.wallRatio, 0.2);
 * assert.equal(s.wallOk && s.promCpuOk && s.rssOk, true);
 * ```
 */
export function summarizeLocal(modes: readonly ModeFigures[]): LocalTargetSummary | undefined {
  const local = modes.find((m) => m.mode === "local");
  if (local === undefined || local.runs.length === 0) return undefined;
  const server = modes.find((m) => m.mode === "server" && m.runs.length > 0);
  const med = (m: ModeFigures, f: (r: TimedRun) => number) => median(m.runs.map(f));
  const wallS = med(local, (r) => r.wallMs) / 1000;
  const promCpuS = med(local, (r) => r.promCpuS);
  const peakRssMb = med(local, (r) => r.peakRssBytes) / MB;
  const serverWallS = server ? med(server, (r) => r.wallMs) / 1000 : null;
  const serverPromCpuS = server ? med(server, (r) => r.promCpuS) : null;
  const wallRatio = serverWallS === null ? null : wallS / serverWallS;
  const promCpuRatio = serverPromCpuS === null ? null : promCpuS / serverPromCpuS;
  return {
    wallS,
    serverWallS,
    wallRatio,
    // Compared as products, so that a figure exactly at the target passes despite rounding.
    wallOk: serverWallS === null ? null : wallS <= serverWallS * TARGETS.localMaxWallRatio,
    promCpuS,
    serverPromCpuS,
    promCpuRatio,
    promCpuOk: serverPromCpuS === null
      ? null
      : promCpuS <= serverPromCpuS * TARGETS.localMaxPromCpuRatio,
    peakRssMb,
    serverPeakRssMb: server ? med(server, (r) => r.peakRssBytes) / MB : null,
    rssOk: peakRssMb <= TARGETS.localMaxRssMb,
    floorS: med(local, (r) => r.floorMs) / 1000,
    serverFloorS: server ? med(server, (r) => r.floorMs) / 1000 : null,
    bytesDownloaded: local.bytesDownloaded,
    serverBytesDownloaded: server?.bytesDownloaded ?? null,
    queries: local.queries,
    serverQueries: server?.queries ?? null,
    bridgeCpuS: med(local, (r) => r.bridgeCpuS),
    serverBridgeCpuS: server ? med(server, (r) => r.bridgeCpuS) : null,
    rows: local.rows,
    serverRows: server?.rows ?? null,
    selfCheck: local.selfCheck ?? null,
  };
}

/** Fixed-width table: first column left-aligned, the others right-aligned. */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

const ok = (pass: boolean) => (pass ? "ok" : "MISSED");

/** CPU seconds with one decimal; tick rounding can make a difference slightly negative. */
const cpu = (seconds: number) => (Math.abs(seconds) < 0.05 ? 0 : seconds).toFixed(1);

function mib(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(1)} MiB`;
}

/** A fraction as a signed percentage with one decimal, e.g. `+12.3 %`. */
function percent(fraction: number): string {
  const p = fraction * 100;
  const fixed = (Math.abs(p) < 0.05 ? 0 : p).toFixed(1);
  return `${p > 0 && fixed !== "0.0" ? "+" : ""}${fixed} %`;
}

/** A ratio as `0.123` (`—` when unknown). */
const ratioText = (x: number | null) => (x === null ? "—" : x.toFixed(3));
const verdict = (pass: boolean | null) => (pass === null ? "—" : ok(pass));
const orDash = <T>(x: T | null, f: (v: T) => string) => (x === null ? "—" : f(x));

/** A row of the local-mode table without a target: server, local and their ratio. */
function compared(
  figure: string,
  server: number | null,
  local: number,
  format: (v: number) => string,
): string[] {
  return [
    figure,
    orDash(server, format),
    format(local),
    ratioText(server === null ? null : local / server),
    "",
    "",
  ];
}

/** The local-mode section: its figures next to server mode's, and the three targets. */
function formatLocal(s: LocalTargetSummary): string[] {
  const out: string[] = [];
  out.push(
    "Local mode (--reduce local) against server mode (medians; ratio = local / server):",
  );
  const fraction = (x: number) => `1/${Math.round(1 / x)}`;
  out.push(
    ...table(["figure", "server", "local", "ratio", "target", ""], [
      [
        "Prometheus CPU s",
        orDash(s.serverPromCpuS, cpu),
        cpu(s.promCpuS),
        ratioText(s.promCpuRatio),
        `≤ ${fraction(TARGETS.localMaxPromCpuRatio)}`,
        verdict(s.promCpuOk),
      ],
      [
        "wall s",
        orDash(s.serverWallS, (v) => v.toFixed(2)),
        s.wallS.toFixed(2),
        ratioText(s.wallRatio),
        `≤ ${fraction(TARGETS.localMaxWallRatio)}`,
        verdict(s.wallOk),
      ],
      [
        "peak RSS MB",
        orDash(s.serverPeakRssMb, (v) => v.toFixed(1)),
        s.peakRssMb.toFixed(1),
        ratioText(s.serverPeakRssMb === null ? null : s.peakRssMb / s.serverPeakRssMb),
        `≤ ${TARGETS.localMaxRssMb} MB`,
        ok(s.rssOk),
      ],
      compared("floor s", s.serverFloorS, s.floorS, (v) => v.toFixed(2)),
      compared("downloaded", s.serverBytesDownloaded, s.bytesDownloaded, mib),
      compared("bridge CPU s", s.serverBridgeCpuS, s.bridgeCpuS, cpu),
      compared("queries", s.serverQueries, s.queries, String),
      compared("rows", s.serverRows, s.rows, String),
    ]),
  );
  if (s.serverWallS === null) {
    out.push("server mode was not measured (--modes): no ratios, only the RSS target is judged.");
  }
  if (s.selfCheck !== null) {
    const c = s.selfCheck;
    out.push(
      `local self-checks: ${c.checks} made, ${c.mismatches} mismatch(es), ` +
        `${c.serverQueries} query(ies) evaluated on the server instead` +
        (c.mismatches > 0
          ? " (WARNING: mismatched hours were collected again in server mode)"
          : ""),
    );
  }
  return out;
}

/**
 * The printed report: the hub, one row per mode with the targets next to
 * the figures, the ROS cost, local mode next to server mode with the three
 * local-mode targets, the window table and how the time was spent.
 *
 * @example
 * ```ts ignore
 * import { formatBenchReport } from "./bench_report.ts";
 * console.log(formatBenchReport(report));
 * ```
 */
export function formatBenchReport(r: BenchReport): string {
  const out: string[] = [];
  const h = r.hub;
  out.push(
    `thanos-bridge bench — 1 cluster: ${h.pods} pods, ${h.nodes} nodes, ${h.pvcs} PVCs, ` +
      `${h.vms} VMs, ${h.series} series; day ${h.day} (24 h, 300 s samples)`,
  );
  out.push(
    `Prometheus ${r.prometheusVersion} on 127.0.0.1, same machine: ${r.machine.cpus} CPUs, ` +
      `${(r.machine.memTotalBytes / 1e9).toFixed(1)} GB RAM; concurrency 4; medians of ` +
      `${r.iterations} run(s); TSDB ${
        h.cached ? "from the cache" : `generated in ${(h.prepareMs / 1000).toFixed(0)} s`
      }`,
  );
  out.push("");
  const modes = r.modes.map(summarizeMode);
  out.push(
    ...table(
      [
        "mode",
        "wall s",
        "floor s",
        "ratio",
        `(≤ ${TARGETS.maxRatio})`,
        "downloaded",
        "queries",
        "peak RSS MB",
        `(≤ ${TARGETS.maxRssMb})`,
        "rows",
        "rows/s",
        "process s",
      ],
      modes.map((m) => [
        m.mode,
        m.wallS.toFixed(2),
        m.floorS.toFixed(2),
        m.ratio.toFixed(3),
        ok(m.ratioOk),
        mib(m.bytesDownloaded),
        String(m.queries),
        m.peakRssMb.toFixed(1),
        ok(m.rssOk),
        String(m.rows),
        m.rowsPerS.toFixed(0),
        m.processS.toFixed(2),
      ]),
    ),
  );
  out.push("");
  out.push(
    "wall = summary.ms (inside runCollect); process = spawn to exit of `deno run` " +
      "(adds start-up and module loading); floor = the same distinct requests fetched " +
      "at concurrency 4, bodies read and discarded.",
  );
  for (const m of r.modes) {
    if (m.floorBytes !== m.bytesDownloaded || m.floorRequests !== m.queries) {
      out.push(
        `WARNING: ${m.mode}: the floor fetched ${m.floorRequests} requests / ${m.floorBytes} bytes, ` +
          `the bridge ${m.queries} / ${m.bytesDownloaded}`,
      );
    }
  }
  out.push("");
  for (const s of summarizeRos(r.modes, r.noRos ?? [])) {
    const target = `(≤ +${(TARGETS.maxRosOverhead * 100).toFixed(0)} %)`;
    out.push(
      `ROS cost, ${s.mode} mode (medians; the timed runs above, ROS on by default, against ` +
        "the same runs with --no-ros; overhead = ROS / no ROS − 1):",
    );
    out.push(
      ...table(["figure", "ROS", "--no-ros", "overhead", target], [
        [
          "wall s",
          s.wallS.toFixed(2),
          s.noRosWallS.toFixed(2),
          percent(s.wallOverhead),
          ok(s.wallOk),
        ],
        [
          "downloaded",
          mib(s.bytesDownloaded),
          mib(s.noRosBytesDownloaded),
          percent(s.downloadOverhead),
          ok(s.downloadOk),
        ],
        ["queries", String(s.queries), String(s.noRosQueries), percent(s.queryOverhead), ""],
        [
          "process s",
          s.processS.toFixed(2),
          s.noRosProcessS.toFixed(2),
          percent(s.processS / s.noRosProcessS - 1),
          "",
        ],
        [
          "bridge CPU s",
          cpu(s.bridgeCpuS),
          cpu(s.noRosBridgeCpuS),
          percent(s.bridgeCpuS / s.noRosBridgeCpuS - 1),
          "",
        ],
        [
          "Prometheus CPU s",
          cpu(s.promCpuS),
          cpu(s.noRosPromCpuS),
          percent(s.promCpuS / s.noRosPromCpuS - 1),
          "",
        ],
        [
          "peak RSS MB",
          s.peakRssMb.toFixed(1),
          s.noRosPeakRssMb.toFixed(1),
          percent(s.peakRssMb / s.noRosPeakRssMb - 1),
          "",
        ],
        ["rows", String(s.rows), String(s.noRosRows), percent(s.rows / s.noRosRows - 1), ""],
      ]),
    );
    out.push("");
  }
  const local = summarizeLocal(r.modes);
  if (local !== undefined) out.push(...formatLocal(local), "");
  const windows = summarizeWindows(r.windows);
  if (windows.length > 0) {
    out.push("Peak RSS by window (MB, fresh state and out each run):");
    out.push(
      ...table(
        [
          "mode",
          "1 h",
          "24 h",
          "24h/1h",
          `(≤ ${TARGETS.maxRssGrowth})`,
          `max (≤ ${TARGETS.maxRssMb})`,
        ],
        windows.map((w) => [
          w.mode,
          w.rss1hMb.toFixed(1),
          w.rss24hMb.toFixed(1),
          w.growth.toFixed(2),
          ok(w.growthOk),
          ok(w.rssOk),
        ]),
      ),
    );
    out.push("");
  }
  out.push(
    `Where the time goes (CPU seconds, medians; ${r.machine.cpus} CPUs shared by the bridge and ` +
      "Prometheus; other = rest of the machine):",
  );
  out.push(
    ...table(
      [
        "mode",
        "run: bridge",
        "Prometheus",
        "other",
        "floor: client",
        "Prometheus",
        "other",
        "steal",
      ],
      modes.map((m) => [
        m.mode,
        cpu(m.bridgeCpuS),
        cpu(m.promCpuS),
        cpu(m.otherCpuS),
        cpu(m.floorClientCpuS),
        cpu(m.floorPromCpuS),
        cpu(m.floorOtherCpuS),
        cpu(m.stealS),
      ]),
    ),
  );
  out.push("");
  out.push(
    `sampled process: ${
      r.sampledProcess.command.replace(/^\S*\/deno /, "deno ").replace(/ --thanos-url .*/, " …")
    } — ` +
      `${r.sampledProcess.childProcesses} child process(es) seen`,
  );
  out.push(
    r.source.before === r.source.after
      ? `src/ fingerprint ${r.source.before}, unchanged during the run`
      : `WARNING: src/ changed during the run (${r.source.before} → ${r.source.after}): ` +
        "the runs mix two versions",
  );
  out.push(
    `Prometheus compactions during the measurements: ${r.compactionsDuringBench}` +
      (r.compactionsDuringBench === 0 ? "" : " (WARNING: timings are disturbed)"),
  );
  return out.join("\n") + "\n";
}
