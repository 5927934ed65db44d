/**
 * Which PromQL engine semantics a query server has, for the local reduction
 * mode: Prometheus 2.x windows are closed on the left (`[t - range, t]`),
 * Prometheus 3.x windows (range selectors and the lookback) open on the left
 * (`(t - range, t]`), and Thanos Query runs the engine of the Prometheus
 * module it is built with.
 *
 * Two ways to find out:
 *
 * - {@linkcode fetchBuildInfo} + {@linkcode semanticsOf}: the server's
 *   `GET /api/v1/status/buildinfo` version. Prometheus answers its own
 *   version (Debian's 2.42: `"2.42.0+ds"`), Thanos Query its Thanos version
 *   (`"0.42.5"`: Thanos is still 0.x, Prometheus has been ≥ 2 since the
 *   endpoint exists, so a major version 0 means Thanos). Thanos switched from
 *   a Prometheus 2.x engine to a 3.x one in 0.38.0 (go.mod of v0.37.2:
 *   `github.com/prometheus/prometheus v0.55.1-…` = Prometheus 2.55; v0.38.0:
 *   `v0.301.0` = Prometheus 3.1; v0.42.x: `v0.309.1` = 3.9). Binaries built
 *   without the release ldflags (`go build`, as the CI's Prometheus 3.16 and
 *   Thanos 0.42.5 are) answer `"version": ""`: unknown.
 * - {@linkcode probeSemantics}: asks the engine itself, with no data needed:
 *   `(count_over_time(vector(1)[1m:1m]))[1m:1m]` at a whole minute counts the
 *   subquery steps in a one-minute window, 2 when the window is closed on the
 *   left (2.x), 1 when it is open (3.x).
 *
 * @module
 */

import { BridgeError } from "../model.ts";
import type { Series, ThanosClient } from "./thanos_client.ts";

/** How a server's engine bounds windows: closed on the left (2.x) or open (3.x). Same union as local_eval.ts. */
export type EngineSemantics = "prometheus2" | "prometheus3";

/** What a server says about itself in `/api/v1/status/buildinfo`. */
export interface BuildInfo {
  /** `data.version` as answered, e.g. `"2.42.0+ds"`, `"3.16.0"`, `"0.42.5"`, or `""` for a dev build. */
  readonly version: string;
  /** `data.revision`, when answered and not empty. */
  readonly revision?: string;
  /** Which server answered, told from the version (major 0: Thanos; 2 and above: Prometheus). */
  readonly server: "prometheus" | "thanos" | "unknown";
}

/** The first Thanos release whose PromQL engine is Prometheus 3.x (`prometheus/prometheus v0.301.0`). */
export const THANOS_FIRST_PROMETHEUS3_ENGINE = "0.38.0";

/** `major.minor.patch` and whether it has a pre-release part, or null. */
function parseVersion(
  version: string,
): { major: number; minor: number; patch: number; pre: boolean } | null {
  const m = /^v?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.exec(version.trim());
  if (m === null) return null;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), pre: m[4] !== undefined };
}

/**
 * A {@linkcode BuildInfo} from the `data` object of a buildinfo answer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBuildInfo } from "./build_info.ts";
 *
 * assert.deepEqual(parseBuildInfo({ version: "0.42.5", revision: "abc" }), {
 *   version: "0.42.5",
 *   revision: "abc",
 *   server: "thanos",
 * });
 * assert.equal(parseBuildInfo({ version: "" }).server, "unknown");
 * ```
 */
export function parseBuildInfo(data: Readonly<Record<string, unknown>>): BuildInfo {
  const version = typeof data.version === "string" ? data.version : "";
  const parsed = parseVersion(version);
  const server = parsed === null
    ? "unknown"
    : parsed.major === 0
    ? "thanos"
    : parsed.major >= 2
    ? "prometheus"
    : "unknown";
  const revision = typeof data.revision === "string" && data.revision !== "" &&
      data.revision !== "unknown"
    ? data.revision
    : undefined;
  return revision === undefined ? { version, server } : { version, revision, server };
}

/**
 * The engine semantics a server's version implies, with the reason, or null
 * when the version does not tell (empty, unparseable, an unknown server, or
 * a pre-release of Thanos 0.38.0): the caller then asks for
 * `--engine-semantics` (or uses {@linkcode probeSemantics}). Prometheus 2.x →
 * `prometheus2`, ≥ 3 → `prometheus3`; Thanos before 0.38.0 → `prometheus2`,
 * from 0.38.0 → `prometheus3`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { semanticsOf } from "./build_info.ts";
 *
 * assert.equal(semanticsOf({ version: "2.42.0+ds", server: "prometheus" })?.semantics, "prometheus2");
 * assert.equal(semanticsOf({ version: "0.42.5", server: "thanos" })?.semantics, "prometheus3");
 * assert.equal(semanticsOf({ version: "0.37.2", server: "thanos" })?.semantics, "prometheus2");
 * assert.equal(semanticsOf({ version: "", server: "unknown" }), null);
 * ```
 */
export function semanticsOf(
  info: BuildInfo,
): { semantics: EngineSemantics; reason: string } | null {
  const v = parseVersion(info.version);
  if (v === null) return null;
  if (info.server === "prometheus" && v.major >= 2) {
    return v.major === 2
      ? { semantics: "prometheus2", reason: `Prometheus ${info.version} (2.x engine)` }
      : { semantics: "prometheus3", reason: `Prometheus ${info.version} (3.x or later engine)` };
  }
  if (info.server === "thanos" && v.major === 0) {
    const first = parseVersion(THANOS_FIRST_PROMETHEUS3_ENGINE)!;
    if (v.minor === first.minor && v.patch === first.patch && v.pre) return null;
    return v.minor >= first.minor
      ? {
        semantics: "prometheus3",
        reason:
          `Thanos ${info.version} (Prometheus 3.x engine since Thanos ${THANOS_FIRST_PROMETHEUS3_ENGINE})`,
      }
      : {
        semantics: "prometheus2",
        reason:
          `Thanos ${info.version} (Prometheus 2.x engine before Thanos ${THANOS_FIRST_PROMETHEUS3_ENGINE})`,
      };
  }
  return null;
}

/**
 * The server's build info through the client (its URL, token, headers and
 * TLS settings), or null when the server has no buildinfo endpoint (404/405,
 * e.g. a query-only proxy or a replay) or answers something else than a
 * status object. Transport and auth failures are thrown as the client's
 * {@linkcode BridgeError}s.
 *
 * @param client The Thanos client.
 * @param signal Aborts the request: a `cancelled` error.
 *
 * @example
 * ```ts ignore
 * import { ThanosClient } from "./thanos_client.ts";
 * import { fetchBuildInfo, semanticsOf } from "./build_info.ts";
 *
 * const client = new ThanosClient({ url: "http://127.0.0.1:9090" });
 * const info = await fetchBuildInfo(client);
 * const found = info === null ? null : semanticsOf(info); // null: ask for --engine-semantics
 * client.close();
 * ```
 */
export async function fetchBuildInfo(
  client: Pick<ThanosClient, "buildInfo">,
  signal?: AbortSignal,
): Promise<BuildInfo | null> {
  const data = await client.buildInfo(signal);
  return data === null ? null : parseBuildInfo(data);
}

/** Evaluation time of the probe: a whole minute (unix seconds), so subquery steps fall on both window edges. */
export const PROBE_TIME = 1_800_000_000;

/** The probe query: a matrix of the number of one-minute subquery steps in a one-minute window. */
export const PROBE_QUERY = "(count_over_time(vector(1)[1m:1m]))[1m:1m]";

/**
 * Asks the engine which semantics it has, without needing any data:
 * {@linkcode PROBE_QUERY} at {@linkcode PROBE_TIME} counts the subquery
 * steps inside a one-minute window ending on a step, 2 when the window is
 * closed on the left (Prometheus 2.x), 1 when it is open (Prometheus 3.x,
 * Thanos ≥ 0.38 with either of its engines). Measured: Debian's Prometheus
 * 2.42 answers 2; Prometheus 3.16 and Thanos Query 0.42.5 (`prometheus` and
 * `thanos` engines) answer 1. Returns null when the answer is anything else
 * or the server refuses the query (`thanos_http`, `thanos_parse`, e.g. a
 * replay); other errors (cancelled, timeout, …) are thrown.
 *
 * @param client The Thanos client.
 * @param signal Aborts the query: a `cancelled` error.
 *
 * @example
 * ```ts ignore
 * import { ThanosClient } from "./thanos_client.ts";
 * import { probeSemantics } from "./build_info.ts";
 *
 * const client = new ThanosClient({ url: "http://127.0.0.1:9090" });
 * (await probeSemantics(client))?.semantics; // "prometheus3"
 * client.close();
 * ```
 */
export async function probeSemantics(
  client: Pick<ThanosClient, "queryInstant">,
  signal?: AbortSignal,
): Promise<{ semantics: EngineSemantics; reason: string } | null> {
  const series: Series[] = [];
  try {
    await client.queryInstant(
      { query: PROBE_QUERY, time: PROBE_TIME, id: "engine-semantics-probe" },
      (s) => series.push(s),
      signal,
      () => series.splice(0),
    );
  } catch (error) {
    if (
      error instanceof BridgeError &&
      (error.code === "thanos_http" || error.code === "thanos_parse")
    ) return null;
    throw error;
  }
  const last = series.length === 1 ? series[0]!.values.at(-1) : undefined;
  if (last === undefined || last[0] !== PROBE_TIME) return null;
  const why = `the engine counts ${last[1]} one-minute step(s) in a one-minute window`;
  if (last[1] === "2") return { semantics: "prometheus2", reason: `${why} (closed on the left)` };
  if (last[1] === "1") return { semantics: "prometheus3", reason: `${why} (open on the left)` };
  return null;
}
