/**
 * The Thanos side of `thanos-bridge doctor`: does Thanos answer and accept the
 * token, does the cluster label exist (and which clusters carry it), and, per
 * cluster, does every metric the enabled reports need have series in the last
 * N hours. A missing metric is named with the report columns that will be
 * empty without it ({@linkcode columnsLostWithout}).
 *
 * Few queries: one `vector(1)` probe, then one instant-style query per metric,
 * `count by (<label>) (last_over_time({__name__="<metric>"}[<N>h]))`, sent as a
 * `query_range` with start = end = now. Its answer lists every cluster that
 * has the metric, and a series without the label when some series lack it.
 *
 * @module
 */

import { BridgeError, escapeControl, isLabelName } from "../model.ts";
import {
  type ColumnRef,
  columnsLostWithout,
  formatColumns,
  metricsOfReports,
  optionalFamily,
  rosMetrics,
} from "../collect/metric_usage.ts";
import { quotePromqlString } from "../collect/promql_rewrite.ts";
import type { ReportName } from "../collect/reports.ts";
import type { QueryErrorCause, Series, ThanosClient } from "../thanos/thanos_client.ts";
import { check, type DoctorCheck } from "./doctor_check.ts";

/** Options of {@linkcode thanosChecks}. */
export interface ThanosChecksOptions {
  /** Client of the hub's Thanos Query. */
  readonly client: ThanosClient;
  /** Label carrying the cluster id, e.g. `clusterID`. */
  readonly clusterLabel: string;
  /** Only check these clusters (default: every cluster that carries the label). */
  readonly clusters?: readonly string[];
  /** How far back a series counts as present, in hours (e.g. 24). */
  readonly hours: number;
  /** The end of that window. */
  readonly now: Date;
  /** Reports whose metrics are needed (default: all six). */
  readonly reports?: readonly ReportName[];
  /** Also check what the ROS reports need (default false): opted-in namespaces, ROS metrics. */
  readonly ros?: boolean;
}

/** What Thanos knows about one metric in the window. */
interface Presence {
  readonly metric: string;
  /** Cluster → number of series. */
  readonly clusters: Map<string, number>;
  /** Series without the cluster label. */
  unlabelled: number;
  /** The query's error, if it failed. */
  error?: string;
}

const STEP = 60;

/** Label names as candidates for the cluster label when the configured one is absent. */
const CLUSTER_LIKE = /cluster/i;

function errorMessage(error: unknown): string {
  return escapeControl(error instanceof Error ? error.message : String(error), false);
}

function httpStatus(error: unknown): number | undefined {
  if (!(error instanceof BridgeError)) return undefined;
  const cause = error.cause as Partial<QueryErrorCause> | undefined;
  return typeof cause?.status === "number" ? cause.status : undefined;
}

function regexEscape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function windowOf(hours: number): string {
  return `${Math.round(hours * 3600)}s`;
}

/**
 * The PromQL that counts, per cluster, the series of `metric` seen in the
 * window (optionally only for some clusters).
 *
 * @example
 * ```ts
 * import { presenceQuery } from "./doctor_thanos.ts";
 * presenceQuery("kube_node_info", "clusterID", 2);
 * // 'count by (clusterID) (last_over_time({__name__="kube_node_info"}[7200s]))'
 * ```
 */
export function presenceQuery(
  metric: string,
  clusterLabel: string,
  hours: number,
  clusters?: readonly string[],
): string {
  const matchers = [`__name__=${quotePromqlString(metric)}`];
  if (clusters && clusters.length > 0) {
    matchers.push(`${clusterLabel}=~${quotePromqlString(clusters.map(regexEscape).join("|"))}`);
  }
  return `count by (${clusterLabel}) (last_over_time({${matchers.join(", ")}}[${
    windowOf(hours)
  }]))`;
}

async function instant(
  client: ThanosClient,
  query: string,
  id: string,
  at: number,
  signal?: AbortSignal,
): Promise<Series[]> {
  let series: Series[] = [];
  await client.queryRange(
    { query, start: at, end: at, step: STEP, id },
    (s) => series.push(s),
    signal,
    () => {
      series = [];
    },
  );
  return series;
}

/**
 * Runs the Thanos checks of `doctor`: `thanos.reach`, `thanos.cluster_label`,
 * `metrics.present` (fail when a metric whose absence empties report columns
 * has no series for a cluster) and `metrics.optional` (GPU and KubeVirt
 * metrics, whose absence is normal: never a failure). Never throws for what
 * Thanos answers; a failed probe is a failed check. Rejects only on bad
 * options or when `signal` aborts.
 *
 * @throws {RangeError} If `clusterLabel` is not a label name or `hours` is not positive.
 *
 * @example
 * ```ts ignore
 * import { ThanosClient } from "../thanos/thanos_client.ts";
 * import { thanosChecks } from "./doctor_thanos.ts";
 *
 * const client = new ThanosClient({ url: "https://thanos-query:9091", token: "…" });
 * const checks = await thanosChecks({ client, clusterLabel: "clusterID", hours: 24, now: new Date() });
 * for (const c of checks) console.log(c.status === "fail" ? "✗" : "✓", c.title, "—", c.detail);
 * client.close();
 * ```
 */
export async function thanosChecks(
  options: ThanosChecksOptions,
  signal?: AbortSignal,
): Promise<DoctorCheck[]> {
  const { client, clusterLabel, hours, now, reports } = options;
  if (!isLabelName(clusterLabel)) {
    throw new RangeError(`cluster label ${JSON.stringify(clusterLabel)} is not a label name`);
  }
  if (!Number.isFinite(hours) || hours <= 0) {
    throw new RangeError(`hours must be a positive number, got ${hours}`);
  }
  const at = Math.floor(now.getTime() / 1000);
  const span = `the last ${hours} h`;

  // 1. Thanos answers, and the token is accepted.
  const reachTitle = "Thanos answers and accepts the credentials";
  const started = performance.now();
  try {
    await instant(client, "vector(1)", "doctor-reach", at, signal);
  } catch (error) {
    signal?.throwIfAborted();
    const status = httpStatus(error);
    const detail = status === 401 || status === 403
      ? `the token was refused (HTTP ${status}): check --token-file (or THANOS_BRIDGE_TOKEN) / the service account's ` +
        `permissions on the hub's Thanos (${errorMessage(error)})`
      : `Thanos does not answer: ${errorMessage(error)}`;
    const skipped = "skipped: Thanos does not answer";
    return [
      check("thanos.reach", reachTitle, "fail", detail),
      check("thanos.cluster_label", `Cluster label ${clusterLabel} exists`, "skip", skipped),
      check("metrics.present", "Metrics the reports need have series", "skip", skipped),
    ];
  }
  const checks: DoctorCheck[] = [
    check(
      "thanos.reach",
      reachTitle,
      "ok",
      `answered in ${Math.round(performance.now() - started)} ms`,
    ),
  ];

  // 2. One presence query per metric.
  const metrics = metricsOfReports(reports);
  const presence: Presence[] = await Promise.all(metrics.map(async (metric) => {
    const p: Presence = { metric, clusters: new Map(), unlabelled: 0 };
    try {
      const series = await instant(
        client,
        presenceQuery(metric, clusterLabel, hours, options.clusters),
        `doctor-presence/${metric}`,
        at,
        signal,
      );
      for (const s of series) {
        const n = Number(s.values.at(-1)?.[1] ?? 0);
        const cluster = s.metric[clusterLabel];
        if (cluster === undefined || cluster === "") p.unlabelled += n;
        else p.clusters.set(cluster, (p.clusters.get(cluster) ?? 0) + n);
      }
    } catch (error) {
      signal?.throwIfAborted();
      p.error = errorMessage(error);
    }
    return p;
  }));

  const carriers = new Set<string>();
  for (const p of presence) for (const c of p.clusters.keys()) carriers.add(c);

  checks.push(await clusterLabelCheck(options, presence, carriers, at, span, signal));

  // 3. Per cluster and metric.
  const checked = (options.clusters ?? [...carriers].sort()).filter((c) => carriers.has(c));
  checks.push(...presenceChecks(presence, checked, reports, span));
  if (options.ros) {
    checks.push(await rosCheck(options, metrics, checked, at, span, signal));
  }
  return checks;
}

/** The namespace labels that opt a namespace in to ROS (CMMO's `ros:namespace_filter`). */
const ROS_OPT_IN_LABELS = [
  "label_insights_cost_management_optimizations",
  "label_cost_management_optimizations",
] as const;

/**
 * `metrics.ros`: which clusters have a namespace opted in to ROS (without
 * one, CMMO writes no ROS report, and neither does the bridge), and which
 * metrics only the ROS queries read have no series. Information, never a
 * failure: ROS depends on the cluster owners' opt-in.
 */
async function rosCheck(
  options: ThanosChecksOptions,
  costMetrics: readonly string[],
  clusters: readonly string[],
  at: number,
  span: string,
  signal?: AbortSignal,
): Promise<DoctorCheck> {
  const { client, clusterLabel, hours } = options;
  const title = "ROS: opted-in namespaces and the metrics only the ROS reports read";
  if (clusters.length === 0) {
    return check("metrics.ros", title, "skip", "skipped: no cluster carries the cluster label");
  }
  const items: string[] = [];
  const optedIn = new Set<string>();
  for (const label of ROS_OPT_IN_LABELS) {
    try {
      const series = await instant(
        client,
        `count by (${clusterLabel}) (last_over_time({__name__="kube_namespace_labels", ` +
          `${label}="true", namespace!~"kube-.*|openshift|openshift-.*"}[${windowOf(hours)}]))`,
        `doctor-ros-opt-in/${label}`,
        at,
        signal,
      );
      for (const s of series) {
        const c = s.metric[clusterLabel];
        if (c) optedIn.add(c);
      }
    } catch (error) {
      signal?.throwIfAborted();
      items.push(`the opt-in query on ${label} failed: ${errorMessage(error)}`);
    }
  }
  for (const c of clusters) {
    if (!optedIn.has(c)) {
      items.push(
        `${c}: no namespace has cost_management_optimizations="true" in ${span}: ` +
          `no ROS reports for this cluster (label a namespace to opt it in)`,
      );
    }
  }
  const own = rosMetrics().filter((m) => !costMetrics.includes(m));
  const presence = await Promise.all(own.map(async (metric) => {
    try {
      const series = await instant(
        client,
        presenceQuery(metric, clusterLabel, hours, clusters),
        `doctor-presence/${metric}`,
        at,
        signal,
      );
      return { metric, clusters: new Set(series.map((s) => s.metric[clusterLabel] ?? "")) };
    } catch (error) {
      signal?.throwIfAborted();
      items.push(`${metric}: the query failed: ${errorMessage(error)}`);
      return null;
    }
  }));
  for (const p of presence) {
    if (p === null) continue;
    const missing = clusters.filter((c) => optedIn.has(c) && !p.clusters.has(c));
    if (missing.length === 0) continue;
    const family = optionalFamily(p.metric);
    items.push(
      `${missing.join(", ")}: ${p.metric} has no series in ${span}; the ROS columns that read ` +
        `it will be empty` + (family ? ` (normal without ${family.reason})` : ""),
    );
  }
  return check(
    "metrics.ros",
    title,
    "ok",
    `${plural(optedIn.size, "cluster")} of ${clusters.length} ${
      optedIn.size === 1 ? "has" : "have"
    } namespaces opted in to ROS; ${plural(own.length, "ROS-only metric")} checked`,
    items,
  );
}

async function clusterLabelCheck(
  options: ThanosChecksOptions,
  presence: readonly Presence[],
  carriers: ReadonlySet<string>,
  at: number,
  span: string,
  signal?: AbortSignal,
): Promise<DoctorCheck> {
  const { client, clusterLabel, hours } = options;
  const id = "thanos.cluster_label";
  const title = `Cluster label ${clusterLabel} exists and names the clusters`;
  const metricsPer = (c: string) => presence.filter((p) => p.clusters.has(c)).length;

  if (carriers.size > 0) {
    const absent = (options.clusters ?? []).filter((c) => !carriers.has(c));
    const items = [...carriers].sort().map((c) =>
      `${c}: ${metricsPer(c)} of ${presence.length} metrics`
    );
    for (const p of presence) {
      if (p.unlabelled > 0) {
        items.push(`${p.metric}: ${plural(p.unlabelled, "series")} without ${clusterLabel}`);
      }
    }
    if (absent.length === 0) {
      return check(
        id,
        title,
        "ok",
        `${plural(carriers.size, "cluster")} carry ${clusterLabel} in ${span}`,
        items,
      );
    }
    const probe = probeMetric(presence);
    for (const c of absent) {
      const hint = probe === null
        ? []
        : await labelsWithValue(client, c, probe, at - Math.round(hours * 3600), at, signal);
      items.unshift(
        `${c}: no series with ${clusterLabel}=${JSON.stringify(c)} in ${span}` +
          (hint.length > 0 ? `; its id is in label(s) ${hint.join(", ")}` : ""),
      );
    }
    return check(
      id,
      title,
      "fail",
      `${plural(absent.length, "requested cluster")} not found under ${clusterLabel}: ` +
        absent.join(", "),
      items,
    );
  }

  // No cluster carries the label: find which labels exist.
  const probe = probeMetric(presence);
  const failed = presence.filter((p) => p.error !== undefined);
  if (probe === null) {
    const why = failed.length > 0
      ? `; ${plural(failed.length, "query")} failed, e.g. ${failed[0]!.error}`
      : "";
    return check(
      id,
      title,
      "fail",
      `no series of any metric the reports need in ${span}: no managed cluster forwards them ` +
        `(apply the allowlist: thanos-bridge allowlist) or this is not the hub's Thanos${why}`,
    );
  }
  const labels = new Map<string, Set<string>>();
  try {
    const series = await instant(
      client,
      `last_over_time({__name__=${quotePromqlString(probe)}}[${windowOf(hours)}])`,
      `doctor-labels/${probe}`,
      at,
      signal,
    );
    for (const s of series) {
      for (const [name, value] of Object.entries(s.metric)) {
        if (name === "__name__") continue;
        let values = labels.get(name);
        if (!values) labels.set(name, values = new Set());
        values.add(value);
      }
    }
  } catch (error) {
    signal?.throwIfAborted();
    return check(
      id,
      title,
      "fail",
      `cluster label ${clusterLabel} not found in ${span}, and listing the labels of ` +
        `${probe} failed: ${errorMessage(error)}`,
    );
  }
  const candidates = new Set([...labels.keys()].filter((l) => CLUSTER_LIKE.test(l)));
  for (const c of options.clusters ?? []) {
    const found = await labelsWithValue(
      client,
      c,
      probe,
      at - Math.round(hours * 3600),
      at,
      signal,
    );
    for (const l of found) candidates.add(l);
  }
  const names = [...labels.keys()].sort();
  // ACM's own label first, then labels that hold a requested cluster's id, then the rest.
  const rank = (l: string) => (l === "clusterID" ? 0 : CLUSTER_LIKE.test(l) ? 2 : 1);
  const suggestion = [...candidates].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1));
  return check(
    id,
    title,
    "fail",
    `cluster label ${clusterLabel} not found on the metrics the reports need in ${span}; ` +
      `these labels exist on ${probe}: ${names.join(", ")}` +
      (suggestion.length > 0
        ? `; set --cluster-label to the one that holds the cluster id, e.g. ` +
          `--cluster-label ${suggestion[0]}`
        : ""),
    names.map((n) =>
      `${n}: ${plural(labels.get(n)!.size, "value")}` +
      (candidates.has(n) ? " (looks like a cluster label)" : "")
    ),
  );
}

/** A metric to list labels on: `kube_node_info` if it has series, else any that has. */
function probeMetric(presence: readonly Presence[]): string | null {
  const has = (p: Presence) => p.unlabelled > 0 || p.clusters.size > 0;
  const node = presence.find((p) => p.metric === "kube_node_info" && has(p));
  return node?.metric ?? presence.find(has)?.metric ?? null;
}

async function labelsWithValue(
  client: ThanosClient,
  value: string,
  metric: string,
  start: number,
  end: number,
  signal?: AbortSignal,
): Promise<string[]> {
  try {
    return await client.findLabelsWithValue(
      value,
      `{__name__=${quotePromqlString(metric)}}`,
      start,
      end,
      signal,
    );
  } catch {
    signal?.throwIfAborted();
    return [];
  }
}

function presenceChecks(
  presence: readonly Presence[],
  clusters: readonly string[],
  reports: readonly ReportName[] | undefined,
  span: string,
): DoctorCheck[] {
  const title = "Metrics the enabled reports need have series for every cluster";
  const optionalTitle = "Optional metrics (GPU, KubeVirt)";
  if (clusters.length === 0) {
    const why = "skipped: no cluster carries the cluster label";
    return [
      check("metrics.present", title, "skip", why),
      check("metrics.optional", optionalTitle, "skip", why),
    ];
  }
  const lost = new Map<string, ColumnRef[]>();
  const lostOf = (m: string) => {
    let l = lost.get(m);
    if (!l) lost.set(m, l = columnsLostWithout(m, reports));
    return l;
  };
  const items: string[] = [];
  const optionalItems: string[] = [];
  let failing = 0;
  const failingClusters = new Set<string>();
  const errors = presence.filter((p) => p.error !== undefined);
  for (const p of errors) items.push(`${p.metric}: the query failed: ${p.error}`);

  for (const p of presence) {
    if (p.error !== undefined) continue;
    const missing = clusters.filter((c) => !p.clusters.has(c));
    if (missing.length === 0) continue;
    const columns = lostOf(p.metric);
    const family = optionalFamily(p.metric);
    const where = missing.length === clusters.length && clusters.length > 1
      ? `all ${clusters.length} clusters`
      : missing.join(", ");
    const empty = columns.length > 0
      ? `empty columns: ${formatColumns(columns)}`
      : "no report column depends on it alone";
    if (family !== null) {
      optionalItems.push(
        `${where}: ${p.metric} has no series in ${span}; normal without ${family.reason}; ${empty}`,
      );
      continue;
    }
    items.push(`${where}: ${p.metric} has no series in ${span}; ${empty}`);
    if (columns.length > 0) {
      failing++;
      for (const c of missing) failingClusters.add(c);
    }
  }

  const checkedWhat = `${plural(presence.length, "metric")} × ${
    plural(clusters.length, "cluster")
  }`;
  const present = failing === 0 && errors.length === 0
    ? check(
      "metrics.present",
      title,
      "ok",
      items.length === 0
        ? `every metric has series for every cluster in ${span} (${checkedWhat})`
        : `no report column will be empty (${checkedWhat}); see the notes`,
      items,
    )
    : check(
      "metrics.present",
      title,
      "fail",
      failing > 0
        ? `${plural(failingClusters.size, "cluster")} ${
          failingClusters.size === 1 ? "lacks" : "lack"
        } ${plural(failing, "metric")} ` +
          `that report columns need (${checkedWhat}); forward them with the ACM allowlist ` +
          `(thanos-bridge allowlist)`
        : `${plural(errors.length, "presence query")} failed`,
      items,
    );
  const optional = check(
    "metrics.optional",
    optionalTitle,
    "ok",
    optionalItems.length === 0
      ? "every GPU and KubeVirt metric has series for every cluster"
      : "some clusters have no GPU or KubeVirt metrics; that is normal without the hardware " +
        "or add-on (their report rows are simply absent)",
    optionalItems,
  );
  return [present, optional];
}
