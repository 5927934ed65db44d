/**
 * The `acm` discovery source: the `ManagedCluster` objects
 * (`cluster.open-cluster-management.io/v1`) of the Red Hat ACM hub, listed
 * through the Kubernetes API with the pod's service account.
 *
 * @module
 */

import { BRIDGE_VERSION, BridgeError, escapeControl, showValue } from "../model.ts";
import { abortableSleep } from "../thanos/backoff.ts";
import { Redactor } from "../thanos/redact.ts";
import type {
  ClusterSource,
  DiscoveredCluster,
  SkippedCluster,
  SourceResult,
} from "./cluster_discovery.ts";

/** Path of the `ManagedCluster` list (cluster-scoped). */
export const MANAGED_CLUSTERS_PATH = "/apis/cluster.open-cluster-management.io/v1/managedclusters";

/** The cluster claim that holds a managed cluster's id (the OpenShift cluster id). */
export const CLUSTER_ID_CLAIM = "id.k8s.io";

/** The RBAC the service account needs, named in 401/403 errors. */
export const ACM_RBAC = "get/list managedclusters.cluster.open-cluster-management.io";

/** Options of {@linkcode acmSource}. */
export interface AcmSourceOptions {
  /** Kubernetes API base URL, e.g. `https://kubernetes.default.svc`. */
  readonly apiUrl: string;
  /** Bearer token (the service account token's text; reading the file is the caller's job). Never shown. */
  readonly token: string;
  /** CA bundle of the API server, PEM (the service account's `ca.crt` text); default: system roots. */
  readonly caCert?: string | undefined;
  /** Label, else annotation, of a `ManagedCluster` that holds its koku org id. */
  readonly orgKey?: string | undefined;
  /** Org id of clusters without `orgKey` (absent: such clusters carry no org id). */
  readonly defaultOrg?: string | undefined;
  /** Transport (tests); the TLS client is passed as `init.client`. Default: the global `fetch`. */
  readonly fetch?: typeof fetch;
  /** Timeout per page request, body included, in ms (default 30 000). */
  readonly timeoutMs?: number;
  /** Attempts per page for network errors, timeouts, 429 and 5xx (default 3). */
  readonly maxAttempts?: number;
  /** Delay before a retry, doubled each time, in ms (default 1000). */
  readonly retryDelayMs?: number;
  /** Objects per page, the `limit` parameter (default 500). */
  readonly pageSize?: number;
  /** Most pages in one listing (default 1000), against a server that never ends one. */
  readonly maxPages?: number;
  /** Largest page body in bytes (default 64 MiB). */
  readonly maxPageBytes?: number;
}

/** The parts of a `ManagedCluster` this source reads. */
interface ManagedClusterLike {
  metadata?: {
    name?: unknown;
    labels?: unknown;
    annotations?: unknown;
  };
  status?: { clusterClaims?: unknown };
}

const ERROR_BODY_LIMIT = 64 * 1024;

/** An attempt that may be retried. */
class Retryable extends Error {}

/**
 * The `acm` discovery source. Each `discover` lists every `ManagedCluster`
 * with `GET /apis/cluster.open-cluster-management.io/v1/managedclusters?limit=500`,
 * following `metadata.continue` (a `410 Gone` for an expired continue token
 * restarts the listing once), with the bearer token and, when given, the CA
 * (a `Deno.HttpClient` made for the call and closed after it).
 *
 * Mapping of one `ManagedCluster`:
 * - id: the value of the `id.k8s.io` entry of `status.clusterClaims`. A cluster
 *   without it (not yet joined, or a non-OpenShift cluster without the claim)
 *   is skipped, named, with the reason `has no id.k8s.io cluster claim`.
 * - name: `metadata.name`.
 * - org id: `metadata.labels[orgKey]`, else `metadata.annotations[orgKey]`,
 *   else `defaultOrg`.
 *
 * `local-cluster` (the hub itself, when it manages itself) is a normal
 * `ManagedCluster` and is found like any other; leave it out with the
 * exclude filter (`local-cluster`) if its costs are not wanted. Clusters that
 * are unavailable or not accepted are still listed: their past data counts.
 *
 * Errors are {@linkcode BridgeError}s: `discovery_failed` (HTTP errors — 401
 * and 403 naming the RBAC needed, {@linkcode ACM_RBAC} —, bad answers,
 * network errors and timeouts after retries), `cancelled` on abort, and
 * `config` for bad options (at construction). The token never appears in
 * them.
 *
 * @example
 * ```ts ignore
 * import { acmSource } from "./acm_discovery.ts";
 *
 * const dir = "/var/run/secrets/kubernetes.io/serviceaccount";
 * const source = acmSource({
 *   apiUrl: "https://kubernetes.default.svc",
 *   token: (await Deno.readTextFile(`${dir}/token`)).trim(),
 *   caCert: await Deno.readTextFile(`${dir}/ca.crt`),
 *   orgKey: "cost.example.com/org-id",
 *   defaultOrg: "1234567",
 * });
 * const { clusters, skipped } = await source.discover();
 * // clusters: [{ clusterId: "16b9a60d-…", name: "prod-east", orgId: "7654321", source: "acm" }, …]
 * // skipped:  [{ name: "new-cluster", reason: "has no id.k8s.io cluster claim" }]
 * ```
 */
export function acmSource(options: AcmSourceOptions): ClusterSource {
  let base: URL;
  try {
    base = new URL(options.apiUrl);
  } catch {
    throw new BridgeError("config", `ACM API URL ${showValue(options.apiUrl)} is not a URL`);
  }
  if (base.protocol !== "https:" && base.protocol !== "http:") {
    throw new BridgeError("config", `ACM API URL must use https or http, got ${base.protocol}`);
  }
  if (base.username !== "" || base.password !== "") {
    throw new BridgeError("config", "ACM API URL must not contain credentials; use the token");
  }
  base.search = "";
  base.hash = "";
  const listUrl = base.href.replace(/\/+$/, "") + MANAGED_CLUSTERS_PATH;
  const origin = base.origin;
  const token = options.token;
  if (typeof token !== "string" || token.trim() === "" || /[\r\n\0]/.test(token)) {
    throw new BridgeError("config", "ACM token is empty or has line breaks");
  }
  const redactor = new Redactor([token]);
  const count = (name: string, value: number | undefined, fallback: number, min = 1) => {
    const v = value ?? fallback;
    if (!Number.isInteger(v) || v < min) {
      throw new BridgeError("config", `ACM ${name} must be an integer ≥ ${min}, got ${v}`);
    }
    return v;
  };
  const timeoutMs = count("timeoutMs", options.timeoutMs, 30_000);
  const maxAttempts = count("maxAttempts", options.maxAttempts, 3);
  const retryDelayMs = count("retryDelayMs", options.retryDelayMs, 1000, 0);
  const pageSize = count("pageSize", options.pageSize, 500);
  const maxPages = count("maxPages", options.maxPages, 1000);
  const maxPageBytes = count("maxPageBytes", options.maxPageBytes, 64 * 1024 * 1024);
  const orgKey = options.orgKey === "" ? undefined : options.orgKey;
  const defaultOrg = options.defaultOrg === "" ? undefined : options.defaultOrg;
  const doFetch = options.fetch ?? globalThis.fetch;
  const headers = {
    Accept: "application/json",
    Authorization: `Bearer ${token}`,
    "User-Agent": `thanos-bridge/${BRIDGE_VERSION}`,
  };
  const clean = (text: string, max = 2000) => escapeControl(redactor.cut(text, max), false);
  const fail = (message: string, cause?: unknown) =>
    new BridgeError("discovery_failed", clean(`ACM ${message}`, 4000), { cause });

  return {
    kind: "acm",
    async discover(signal?: AbortSignal): Promise<SourceResult> {
      signal?.throwIfAborted();
      let client: Deno.HttpClient | undefined;
      if (options.caCert !== undefined) {
        try {
          client = Deno.createHttpClient({ caCerts: [options.caCert] });
        } catch (error) {
          throw new BridgeError(
            "config",
            `ACM CA certificate is not usable: ${
              clean(error instanceof Error ? error.message : String(error), 300)
            }`,
          );
        }
      }
      try {
        let restarted = false;
        while (true) {
          try {
            return await listAll(client, signal);
          } catch (error) {
            if (error instanceof ExpiredContinue && !restarted) {
              restarted = true; // the listing took too long: start again, once
              continue;
            }
            if (error instanceof ExpiredContinue) throw fail(error.message);
            throw error;
          }
        }
      } catch (error) {
        if (signal?.aborted) {
          const reason = signal.reason instanceof Error
            ? signal.reason.message
            : String(signal.reason);
          throw new BridgeError("cancelled", clean(`ACM cluster listing cancelled: ${reason}`), {
            cause: signal.reason,
          });
        }
        throw error;
      } finally {
        client?.close();
      }
    },
  };

  async function listAll(
    client: Deno.HttpClient | undefined,
    signal: AbortSignal | undefined,
  ): Promise<SourceResult> {
    const clusters: DiscoveredCluster[] = [];
    const skipped: SkippedCluster[] = [];
    const seenTokens = new Set<string>();
    let next: string | undefined;
    for (let page = 1;; page++) {
      if (page > maxPages) {
        throw fail(
          `listing of ${origin}${MANAGED_CLUSTERS_PATH} did not end within ${maxPages} pages`,
        );
      }
      const url = new URL(listUrl);
      url.searchParams.set("limit", String(pageSize));
      if (next !== undefined) url.searchParams.set("continue", next);
      const list = await getPage(url, page, client, signal);
      for (const item of list.items) mapItem(item, clusters, skipped);
      next = list.continue;
      if (next === undefined) return { clusters, skipped };
      if (seenTokens.has(next)) {
        throw fail(`listing of ${origin}${MANAGED_CLUSTERS_PATH} repeats a continue token`);
      }
      seenTokens.add(next);
    }
  }

  /** One page, with retries. */
  async function getPage(
    url: URL,
    page: number,
    client: Deno.HttpClient | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ items: ManagedClusterLike[]; continue?: string }> {
    const what = `list of ManagedClusters at ${origin} (page ${page})`;
    for (let attempt = 1;; attempt++) {
      signal?.throwIfAborted();
      try {
        return await attemptPage(url, what, client, signal);
      } catch (error) {
        if (!(error instanceof Retryable)) throw error;
        if (attempt >= maxAttempts) {
          const tries = attempt === 1 ? "1 attempt" : `${attempt} attempts`;
          throw fail(`${what} failed after ${tries}: ${error.message}`);
        }
        await abortableSleep(retryDelayMs * 2 ** (attempt - 1), signal);
      }
    }
  }

  async function attemptPage(
    url: URL,
    what: string,
    client: Deno.HttpClient | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ items: ManagedClusterLike[]; continue?: string }> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const attemptSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const init: RequestInit & { client?: Deno.HttpClient } = {
      method: "GET",
      headers,
      signal: attemptSignal,
    };
    if (client !== undefined) init.client = client;
    let text: string;
    let status: number;
    try {
      const response = await doFetch(url.href, init);
      status = response.status;
      if (!response.ok) {
        const body = await readBody(response.body, ERROR_BODY_LIMIT, true);
        throw httpError(response, body, what);
      }
      text = await readBody(response.body, maxPageBytes, false);
    } catch (error) {
      if (
        error instanceof BridgeError || error instanceof Retryable ||
        error instanceof ExpiredContinue
      ) {
        throw error;
      }
      if (signal?.aborted) throw signal.reason;
      if (timeout.aborted) throw new Retryable(`no answer within ${timeoutMs} ms`);
      if (error instanceof RangeError) throw fail(`${what}: ${error.message}`);
      const message = error instanceof Error ? error.message : String(error);
      throw new Retryable(`network error: ${clean(message, 500)}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw fail(
        `${what}: HTTP ${status} answer is not JSON (${
          error instanceof Error ? error.message.slice(0, 200) : String(error)
        })`,
      );
    }
    if (!isRecord(json) || !Array.isArray(json.items)) {
      throw fail(`${what}: the answer is not a ManagedClusterList (no "items" array)`);
    }
    const meta = isRecord(json.metadata) ? json.metadata : {};
    const cont = typeof meta.continue === "string" && meta.continue !== ""
      ? meta.continue
      : undefined;
    return {
      items: json.items as ManagedClusterLike[],
      ...(cont !== undefined ? { continue: cont } : {}),
    };
  }

  /** The error of a non-2xx answer: permanent, or {@linkcode Retryable}. */
  function httpError(response: Response, body: string, what: string): Error {
    const status = response.status;
    let detail = body.trim();
    let reason: string | undefined;
    try {
      const s = JSON.parse(body) as { message?: unknown; reason?: unknown };
      if (typeof s.message === "string") detail = s.message;
      if (typeof s.reason === "string") reason = s.reason;
    } catch {
      // Not a Status object (a proxy's page): keep the text.
    }
    const head = `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ""}`;
    const shown = detail === "" ? head : `${head}: ${clean(detail, 1000)}`;
    if (status === 401) {
      return fail(
        `${what} failed: ${shown}. The API server did not accept the service account token ` +
          `(expired or wrong); the service account needs ${ACM_RBAC}`,
      );
    }
    if (status === 403) {
      return fail(
        `${what} failed: ${shown}. Grant the bridge's service account ${ACM_RBAC} ` +
          `(a ClusterRole with verbs get, list on managedclusters in API group ` +
          `cluster.open-cluster-management.io, bound with a ClusterRoleBinding)`,
      );
    }
    if (status === 404) {
      return fail(
        `${what} failed: ${shown}. Is ACM installed on this hub (the ManagedCluster API ` +
          `cluster.open-cluster-management.io/v1 is missing)?`,
      );
    }
    if (status === 410 || reason === "Expired") return new ExpiredContinue(`${what}: ${shown}`);
    if (status === 429 || status >= 500) return new Retryable(shown);
    return fail(`${what} failed: ${shown}`);
  }

  /** A body as text, at most `limit` bytes (cut quietly when `cut`, else a RangeError). */
  async function readBody(
    body: ReadableStream<Uint8Array> | null,
    limit: number,
    cut: boolean,
  ): Promise<string> {
    if (body === null) return "";
    const reader = body.getReader();
    const parts: Uint8Array[] = [];
    let size = 0;
    let done = false;
    try {
      while (true) {
        const next = await reader.read();
        if (next.done) {
          done = true;
          break;
        }
        size += next.value.byteLength;
        if (size > limit) {
          if (cut) {
            parts.push(next.value.subarray(0, next.value.byteLength - (size - limit)));
            size = limit;
            break;
          }
          throw new RangeError(`the answer is larger than ${limit} bytes`);
        }
        parts.push(next.value);
      }
    } finally {
      if (!done) reader.cancel().catch(() => {});
      reader.releaseLock();
    }
    const all = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.byteLength;
    }
    return new TextDecoder().decode(all);
  }

  function mapItem(
    item: ManagedClusterLike,
    clusters: DiscoveredCluster[],
    skipped: SkippedCluster[],
  ): void {
    const name = typeof item?.metadata?.name === "string" ? item.metadata.name : undefined;
    const label = name ?? "(a ManagedCluster without metadata.name)";
    const claims = Array.isArray(item?.status?.clusterClaims) ? item.status.clusterClaims : [];
    const claim = claims.find((c): c is { name: string; value: unknown } =>
      isRecord(c) && c.name === CLUSTER_ID_CLAIM
    );
    const id = typeof claim?.value === "string" ? claim.value.trim() : "";
    if (id === "") {
      skipped.push({ name: label, reason: `has no ${CLUSTER_ID_CLAIM} cluster claim` });
      return;
    }
    const orgId = orgOf(item) ?? defaultOrg;
    clusters.push({
      clusterId: id,
      ...(name !== undefined ? { name } : {}),
      ...(orgId !== undefined ? { orgId } : {}),
      source: "acm",
    });
  }

  function orgOf(item: ManagedClusterLike): string | undefined {
    if (orgKey === undefined) return undefined;
    for (const map of [item?.metadata?.labels, item?.metadata?.annotations]) {
      if (!isRecord(map)) continue;
      const v = map[orgKey];
      if (typeof v === "string" && v.trim() !== "") return v.trim();
    }
    return undefined;
  }
}

/** A `410 Gone` (`reason: Expired`): the continue token expired. */
class ExpiredContinue extends Error {}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
