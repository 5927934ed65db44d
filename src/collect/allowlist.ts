/**
 * The `observability-metrics-custom-allowlist` ConfigMap that makes ACM's
 * metrics-collector forward every metric the enabled reports read. The metric
 * names come from {@linkcode metricsOfReports} (the parsed PromQL of the
 * catalogue); there is no second list.
 *
 * ACM's format (`metrics_list.yaml`): `names` (metric names forwarded as
 * they are), `matches` (selectors, unused here) and `recording_rules`
 * (`record` + `expr`, evaluated by the collector on each managed cluster at
 * every push, the result forwarded under the `record` name with the cluster
 * labels). Recording rules are only added when asked for.
 *
 * @module
 */

import YAML from "yaml";
import { expressionMetrics, metricsOfReports, rosMetrics } from "./metric_usage.ts";
import type { ReportName } from "./reports.ts";
import { REPORT_NAMES } from "./reports.ts";

/** Name of the ConfigMap ACM reads custom allowlist entries from. */
export const ALLOWLIST_NAME = "observability-metrics-custom-allowlist";
/** Namespace of ACM's observability on the hub. */
export const ALLOWLIST_NAMESPACE = "open-cluster-management-observability";
/** Data key ACM reads. */
export const ALLOWLIST_KEY = "metrics_list.yaml";

/** One optional recording rule, with why it is useful. */
export interface AllowlistRule {
  /** Name of the recorded series (forwarded under this name). */
  readonly record: string;
  /** PromQL evaluated on the managed cluster. */
  readonly expr: string;
  /** What it is for (written as a comment above the rule). */
  readonly purpose: string;
  /** Reports whose queries read the raw metric this rule pre-aggregates. */
  readonly reports: readonly ReportName[];
}

const CPU_MATCHERS = `container!="", container!="POD", pod!="", namespace!=""`;

/**
 * Per-pod CPU rates worth recording on each managed cluster. ACM pushes
 * samples every 300 s, so a raw CPU counter reaches Thanos with one sample per
 * 5 minutes: `rate(…[5m])` over it has at most one point and thanos-bridge
 * widens the window (`--rate-window`) to get a rate at all. A rule evaluated
 * on the cluster uses its full scrape resolution (typically 30 s), handles
 * counter resets there, and forwards one series per pod instead of one per
 * container. The raw counters stay in `names`: the cost queries read them.
 */
export const RECORDING_RULES: readonly AllowlistRule[] = [
  {
    record: "node_namespace_pod:container_cpu_usage_seconds_total:sum_rate5m",
    expr:
      `sum by (node, namespace, pod) (rate(container_cpu_usage_seconds_total{${CPU_MATCHERS}, node!=""}[5m]))`,
    purpose: "CPU cores used per pod (CMMO's pod-usage-cpu-cores, computed at the " +
      "cluster's scrape resolution): a precise per-pod rate to check or replace " +
      "the hub-side rate over 300 s samples; one series per pod, not per container.",
    reports: ["pod"],
  },
  {
    record: "namespace:container_cpu_usage_seconds_total:sum_rate5m",
    expr: `sum by (namespace) (rate(container_cpu_usage_seconds_total{${CPU_MATCHERS}}[5m]))`,
    purpose: "CPU cores used per namespace: a cheap cross-check of the per-pod sums " +
      "(a namespace whose pods' usage does not add up points at dropped samples).",
    reports: ["pod"],
  },
  {
    record: "namespace_name:kubevirt_vmi_cpu_usage_seconds_total:sum_rate5m",
    expr:
      `sum by (name, namespace) (rate(kubevirt_vmi_cpu_usage_seconds_total{name!="", namespace!=""}[5m]))`,
    purpose: "CPU cores used per KubeVirt VM (the inner part of CMMO's vm_cpu_usage): " +
      "the same 300 s problem for the VM CPU counter; absent on clusters without " +
      "OpenShift Virtualization.",
    reports: ["vm"],
  },
];

/** Options of {@linkcode renderAllowlist}. */
export interface AllowlistOptions {
  /** Reports whose metrics to forward (default: all six cost reports). */
  readonly reports?: readonly ReportName[];
  /** Add the metrics of the two ROS reports (default true, like `--no-ros` off). */
  readonly ros?: boolean;
  /** Add {@linkcode RECORDING_RULES} for the enabled reports (default false). */
  readonly recordingRules?: boolean;
  /** Namespace of the ConfigMap (default `open-cluster-management-observability`). */
  readonly namespace?: string;
}

/** The parsed `metrics_list.yaml` content. */
export interface MetricsList {
  names: string[];
  recording_rules?: { record: string; expr: string }[];
}

/**
 * The recording rules that apply to the given reports (default: all).
 *
 * @example
 * ```ts
 * import { rulesOfReports } from "./allowlist.ts";
 * rulesOfReports(["namespace"]).length; // 0
 * rulesOfReports(["pod"]).length; // 2
 * ```
 */
export function rulesOfReports(reports?: readonly ReportName[]): AllowlistRule[] {
  const wanted = new Set(reports ?? REPORT_NAMES);
  return RECORDING_RULES.filter((r) => r.reports.some((name) => wanted.has(name)));
}

/**
 * Renders the allowlist ConfigMap as YAML: `names` lists exactly the metrics
 * the enabled reports' queries read (sorted), and, when asked for,
 * `recording_rules` with a comment on what each is for.
 *
 * @throws {RangeError} On an unknown report name.
 * @throws {TypeError} On an empty or invalid namespace.
 *
 * @example
 * ```ts
 * import YAML from "yaml";
 * import { renderAllowlist } from "./allowlist.ts";
 * const cm = YAML.parse(renderAllowlist({ reports: ["namespace"] }));
 * cm.metadata.name; // "observability-metrics-custom-allowlist"
 * YAML.parse(cm.data["metrics_list.yaml"]).names.includes("kube_namespace_labels"); // true
 * ```
 */
export function renderAllowlist(options: AllowlistOptions = {}): string {
  const namespace = options.namespace ?? ALLOWLIST_NAMESPACE;
  if (typeof namespace !== "string" || !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) {
    throw new TypeError(
      `namespace ${JSON.stringify(namespace)} is not a valid Kubernetes namespace name`,
    );
  }
  const reports = options.reports ?? REPORT_NAMES;
  const ros = options.ros ?? true;
  const names = [...new Set([...metricsOfReports(reports), ...(ros ? rosMetrics() : [])])].sort();

  const list = new YAML.Document({ names } as Record<string, unknown>);
  if (options.recordingRules) {
    const rules = rulesOfReports(reports);
    if (rules.length > 0) {
      const seq = list.createNode(rules.map((r) => ({ record: r.record, expr: r.expr })));
      seq.items.forEach((item, i) => {
        const rule = rules[i]!;
        item.commentBefore = wrap(
          `${rule.purpose} Reads ${expressionMetrics(rule.expr).metrics.join(", ")}.`,
        );
      });
      list.set("recording_rules", seq);
      list.commentBefore = wrap(
        "Recording rules run on each managed cluster at every push (every 300 s); " +
          "the raw metrics they read are also in names, because the cost queries read those.",
      );
    }
  }
  const inner = list.toString({ lineWidth: 0 });

  const configMap = new YAML.Document({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: ALLOWLIST_NAME, namespace },
    data: { [ALLOWLIST_KEY]: inner },
  });
  configMap.commentBefore =
    ` Metrics thanos-bridge needs for the reports: ${
      [...reports, ...(ros ? ["ros-container", "ros-namespace"] : [])].join(", ")
    }.` +
    `\n Generated from the cost query catalogue. Apply on the hub:` +
    `\n   oc apply -f <this file>` +
    `\n ACM's metrics-collector then forwards these metrics from every managed cluster.`;
  return configMap.toString({ lineWidth: 0 });
}

/** Wraps text into comment lines of at most `width` characters (each with a leading space). */
function wrap(text: string, width = 88): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(line);
  return lines.map((l) => ` ${l}`).join("\n");
}
