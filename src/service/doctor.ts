/**
 * `thanos-bridge doctor`: the checks an operator runs first. The CLI checks
 * that the configuration resolves and that its files can be read (by wiring a
 * bridge); {@linkcode diagnose} then checks, with the wired parts: discovery
 * (every source), Thanos (reach, token, cluster label, per-cluster metrics:
 * `doctor_thanos.ts`; with `--reduce local`, what a run would evaluate with),
 * koku's sources API when registration is on, and the
 * sink (S3 write/read/presign/delete and Kafka, or ingress: `sink_probe.ts`).
 *
 * Nothing here throws for a failed check: every problem is a `fail` check. An
 * abort throws.
 *
 * @module
 */

import type { BridgeSettings } from "../config.ts";
import { KokuSourcesClient } from "../deliver/koku_sources.ts";
import { probeIngress, probeKafka, probeS3 } from "../deliver/sink_probe.ts";
import { errorInfo } from "../model.ts";
import type { ThanosClient } from "../thanos/thanos_client.ts";
import type { DiscoveryResult } from "./cluster_discovery.ts";
import { check, type DoctorCheck } from "./doctor_check.ts";
import { thanosChecks } from "./doctor_thanos.ts";
import { resolveLocalRun } from "./local_mode.ts";
import type { SinkInputs } from "./runtime.ts";

/** What `doctor` asks for besides the settings. */
export interface DiagnoseOptions {
  /** A metric counts as present when it has a series in the last `hours` hours. */
  readonly hours: number;
  /** Produce one test message to this Kafka topic (`--produce-test TOPIC`); null: don't. */
  readonly produceTestTopic: string | null;
}

/** The wired parts {@linkcode diagnose} probes. */
export interface DiagnoseDeps {
  readonly settings: BridgeSettings;
  readonly client: ThanosClient;
  readonly sink: SinkInputs;
  readonly now: Date;
  readonly discover: (signal?: AbortSignal) => Promise<DiscoveryResult>;
  /** koku org id of a cluster. */
  readonly orgOf: (clusterId: string) => string;
}

/**
 * Runs every check that needs the wired parts, in the order an operator
 * fixes things: state, discovery, Thanos, koku sources, sink.
 *
 * @example
 * ```ts ignore
 * import { createBridge } from "./runtime.ts";
 * const bridge = await createBridge(settings, { now: () => new Date(), warn: console.error });
 * const checks = await bridge.diagnose({ hours: 6, produceTestTopic: null });
 * const failed = checks.some((c) => c.status === "fail");
 * ```
 */
export async function diagnose(
  deps: DiagnoseDeps,
  options: DiagnoseOptions,
  signal?: AbortSignal,
): Promise<DoctorCheck[]> {
  const { settings } = deps;
  const checks: DoctorCheck[] = [
    check("state.folder", "State folder is writable", "ok", settings.stateDir),
  ];

  // Discovery, every source.
  let discovered: DiscoveryResult | null = null;
  try {
    discovered = await deps.discover(signal);
  } catch (error) {
    signal?.throwIfAborted();
    checks.push(
      check(
        "discovery",
        `Discovery (${settings.discovery.sources.join(", ")}) finds clusters`,
        "fail",
        errorInfo(error).message,
      ),
    );
  }
  if (discovered !== null) checks.push(...discoveryChecks(settings, discovered));

  // Thanos: reach, token, cluster label, metrics per cluster.
  if (settings.replay !== null) {
    checks.push(check("thanos.reach", "Thanos answers", "skip", "replaying a recording"));
  } else {
    const ids = discovered?.clusters.map((c) => c.clusterId) ?? [];
    checks.push(
      ...await thanosChecks({
        client: deps.client,
        clusterLabel: settings.clusterLabel,
        ...(ids.length > 0 ? { clusters: ids } : {}),
        hours: options.hours,
        now: deps.now,
        ros: settings.ros,
      }, signal),
    );
    checks.push(await localModeCheck(deps, checks, signal));
  }

  // koku's sources API, when registration is on.
  if (settings.registration !== null) {
    checks.push(await kokuSourcesCheck(deps, discovered, signal));
  }

  // The sink.
  const sink = deps.sink;
  switch (sink.kind) {
    case "dir":
      checks.push(check("sink.dir", "Output folder is writable", "ok", sink.out));
      break;
    case "ingress":
      checks.push(...await probeIngress({ url: sink.url, auth: sink.auth }, signal));
      break;
    case "s3-kafka":
      checks.push(
        ...await probeS3({ ...sink.s3, presignExpirySeconds: sink.presignExpirySeconds }, signal),
      );
      checks.push(
        ...await probeKafka(
          { ...sink.kafka, clientId: "thanos-bridge-doctor" },
          { produceTestTopic: options.produceTestTopic },
          signal,
        ),
      );
      break;
  }
  return checks;
}

/** One check per discovery source, and one for the filter. */
export function discoveryChecks(
  settings: BridgeSettings,
  result: DiscoveryResult,
): DoctorCheck[] {
  const checks: DoctorCheck[] = [];
  for (const report of result.sources) {
    const skipped = result.skipped.filter((s) => s.source === undefined || s.source === report.kind)
      .map((s) => `skipped ${s.name}: ${s.reason}`);
    const items = [...(report.warnings ?? []).map((w) => `warning: ${w}`), ...skipped];
    checks.push(
      report.error !== undefined
        ? check(
          `discovery.${report.kind}`,
          `Discovery source ${report.kind} answers`,
          "fail",
          report.error,
          items,
        )
        : check(
          `discovery.${report.kind}`,
          `Discovery source ${report.kind} answers`,
          report.found === 0 ? "fail" : "ok",
          report.found === 0
            ? `found no cluster${sourceHint(settings, report.kind)}`
            : `found ${report.found} cluster(s)`,
          items,
        ),
    );
  }
  const kept = result.clusters.map((c) =>
    `${c.clusterId}${c.name ? ` (${c.name})` : ""}` +
    `${c.orgId ? ` org ${c.orgId}` : ""} from ${c.sources.join("+")}`
  );
  const excluded = result.excluded.map((e) => `left out ${e.clusterId}: ${e.reason}`);
  checks.push(
    check(
      "discovery.clusters",
      "Runs have clusters to collect",
      result.clusters.length > 0 ? "ok" : "fail",
      result.clusters.length > 0
        ? `${result.clusters.length} cluster(s) after the include/exclude filter`
        : result.excluded.length > 0
        ? "no cluster is left after the include/exclude filter"
        : "discovery found no cluster",
      [
        ...kept.slice(0, 200),
        ...(kept.length > 200 ? [`… ${kept.length - 200} more`] : []),
        ...excluded,
      ],
    ),
  );
  return checks;
}

function sourceHint(settings: BridgeSettings, kind: string): string {
  if (kind === "static") return ": add clusters to the config file's cluster list, or --cluster";
  if (kind === "thanos") {
    return `: no series of ${settings.discovery.match} with ${settings.clusterLabel} in the ` +
      `discovery window (see --discovery-match, --cluster-label, --discovery-window)`;
  }
  return ": no ManagedCluster carries an id.k8s.io cluster claim";
}

async function kokuSourcesCheck(
  deps: DiagnoseDeps,
  discovered: DiscoveryResult | null,
  signal?: AbortSignal,
): Promise<DoctorCheck> {
  const title = "koku's sources API answers (for --register-sources)";
  const orgs = [
    ...new Set(
      (discovered?.clusters ?? []).map((c) => c.orgId ?? deps.orgOf(c.clusterId)).filter((o) => o),
    ),
  ];
  if (deps.settings.orgId) orgs.push(deps.settings.orgId);
  const org = orgs[0];
  if (org === undefined) {
    return check("koku.sources", title, "fail", "no org id to ask for: set --org-id or --org-map");
  }
  const client = new KokuSourcesClient({
    baseUrl: deps.settings.registration!.url,
    timeoutMs: 10_000,
    maxAttempts: 2,
  });
  try {
    const typeId = await client.sourceTypeId(org, signal);
    const appType = await client.applicationTypeId(org, signal);
    return check(
      "koku.sources",
      title,
      "ok",
      `source type openshift = ${typeId}, application type cost-management = ${appType} (org ${org})`,
    );
  } catch (error) {
    signal?.throwIfAborted();
    return check("koku.sources", title, "fail", errorInfo(error).message);
  }
}

/**
 * With `--reduce local`: what a run resolves before it reads anything (the
 * engine semantics, how raw samples are read, whether the server adjusts
 * counters), or why it cannot (a `fail` naming the setting to change).
 */
async function localModeCheck(
  deps: DiagnoseDeps,
  before: readonly DoctorCheck[],
  signal?: AbortSignal,
): Promise<DoctorCheck> {
  const id = "local.engine";
  const title = "Local mode knows the server's engine and how to read raw samples";
  const { settings } = deps;
  if (settings.reduce !== "local") {
    return check(id, title, "skip", `--reduce ${settings.reduce}: Thanos evaluates`);
  }
  if (before.some((c) => c.id === "thanos.reach" && c.status !== "ok")) {
    return check(id, title, "skip", "skipped: Thanos does not answer");
  }
  try {
    const run = await resolveLocalRun(settings, deps.client, signal);
    return check(
      id,
      title,
      "ok",
      `${run.semantics} semantics (${run.semanticsFrom}), raw samples by ${run.rawRead}`,
      run.counterAdjusting
        ? [
          "the server is not known to be Prometheus: it may adjust counters at a reset, so the " +
          "self-check skips rate/increase queries of clusters whose counters reset",
        ]
        : [],
    );
  } catch (error) {
    signal?.throwIfAborted();
    return check(id, title, "fail", errorInfo(error).message);
  }
}
