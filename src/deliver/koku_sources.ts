/**
 * koku OCP source registration (BRIDGE §4, contract §5.5 and §5.12). koku
 * drops every payload of a cluster that has no OCP source whose credentials
 * are `{"cluster_id": <cluster id>}` in the payload's org, and still reports
 * `success`; this module closes that gap by creating the missing sources the
 * way CMMO does (`internal/sources/handler.go`), against koku's own on-prem
 * sources API (`{API_PATH_PREFIX}/v1/`, e.g.
 * `http://koku-api:8000/api/cost-management/v1/`):
 *
 * 1. `GET source_types?filter[name]=openshift` → `meta.count == 1`, `data[0].id`
 *    (asked once per org and pass).
 * 2. `GET sources?filter[source_type_id]=…&filter[source_ref]=<cluster id>&filter[name]=<name>`
 *    → an entry with exactly that name: the source exists, nothing is done.
 * 3. Else `GET sources?…&filter[source_ref]=<cluster id>`: a source of this
 *    cluster under another name counts as existing (koku matches payloads by
 *    `cluster_id` alone, so it already receives them; a second source for the
 *    same cluster would only be ambiguous). Then
 *    `GET sources?…&filter[name]=<name>`: a source with exactly this name for
 *    another cluster is a conflict, reported with both cluster ids; nothing is
 *    created for this cluster.
 * 4. `GET application_types?filter[name]=/insights/platform/cost-management`
 *    (once per org and pass), `POST sources` with
 *    `{"source_type_id", "name", "source_ref"}`, then `POST applications` with
 *    `{"source_id", "application_type_id"}`.
 *
 * koku's `filter[name]` is a case-insensitive substring match
 * (`name__icontains`), so every list is read in full (`limit`/`offset`
 * pages) and names are compared exactly here. Requests carry an
 * `X-Rh-Identity` per org ({@linkcode kokuIdentity}); it is never logged nor
 * put in a message. 5xx, 429, timeouts and network errors are retried with
 * capped, jittered backoff; a `POST sources` is only repeated after checking
 * that the earlier attempt did not create the source after all.
 *
 * @module
 */

import { abortableSleep, backoffDelay, parseRetryAfter } from "../thanos/backoff.ts";
import { BridgeError, escapeControl, isClusterId, showValue } from "../model.ts";
import { encodeIdentity, type JsonObject } from "./identity.ts";

/** `filter[name]` of koku's OpenShift source type. */
export const OPENSHIFT_SOURCE_TYPE = "openshift";
/** `filter[name]` of the cost-management application type. */
export const COST_MANAGEMENT_APP_TYPE = "/insights/platform/cost-management";
/** Longest source name koku accepts (`AdminSourcesSerializer.name`). */
export const MAX_SOURCE_NAME = 256;

/** One cluster to register: the id payloads carry, its display name when known, its org. */
export interface KokuCluster {
  /** The cluster id (`manifest.cluster_id`), written as the source's `source_ref`. */
  readonly clusterId: string;
  /** The source name; absent, `null` or empty → the cluster id (CMMO's default). */
  readonly name?: string | null;
  /** The koku org (tenant) the cluster's payloads are sent for. */
  readonly orgId: string;
}

/** A koku source as listed or created (the fields this module reads). */
export interface KokuSource {
  /** koku's `id` (a number in koku's answers, kept as text). */
  readonly id: string;
  readonly name: string;
  /** `source_ref` or `authentication.credentials.cluster_id`; `null` when the answer has neither. */
  readonly clusterId: string | null;
}

/** Options of {@linkcode KokuSourcesClient}. */
export interface KokuSourcesClientOptions {
  /** koku's API base, e.g. `http://koku-api:8000/api/cost-management/v1/` (a missing final `/` is added). */
  readonly baseUrl: string;
  /** base64 `X-Rh-Identity` of an org (default {@linkcode kokuIdentityFor}). */
  readonly identityFor?: (orgId: string) => string;
  /** HTTP client (tests inject one; default the global `fetch`). */
  readonly fetch?: typeof fetch;
  /** Per-request timeout in ms (default 30 000). */
  readonly timeoutMs?: number;
  /** Attempts per request, the first included (default 5). */
  readonly maxAttempts?: number;
  /** Backoff cap of the first retry in ms (default 500). */
  readonly baseDelayMs?: number;
  /** Upper bound of one wait in ms, `Retry-After` included (default 30 000). */
  readonly maxDelayMs?: number;
  /** `limit` of list pages (default 100; koku allows up to 1 000). */
  readonly pageSize?: number;
  /** Waits between attempts (tests inject one). */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Jitter source in [0, 1) (default `Math.random`). */
  readonly random?: () => number;
}

/** A source that was created, or found, for a cluster. */
export interface SourceRegistration {
  readonly clusterId: string;
  readonly orgId: string;
  /** The source's name in koku. */
  readonly name: string;
  /** koku's source id. */
  readonly sourceId: string;
}

/** A source that already existed. */
export interface ExistingSource extends SourceRegistration {
  /** The name asked for; differs from {@linkcode SourceRegistration.name} when the cluster's source has another name. */
  readonly requestedName: string;
}

/** A name taken by another cluster's source: nothing was created. */
export interface SourceConflict {
  readonly clusterId: string;
  readonly orgId: string;
  /** The name asked for. */
  readonly name: string;
  /** The cluster the existing source belongs to (`null` if koku did not say). */
  readonly otherClusterId: string | null;
  /** The id of the existing source. */
  readonly sourceId: string;
  /** `koku_sources`, with a message naming both clusters and the name. */
  readonly error: BridgeError;
}

/** A cluster whose registration failed (koku error, bad input). */
export interface SourceFailure {
  readonly clusterId: string;
  readonly orgId: string;
  readonly name: string;
  /** `koku_sources` (or `config` for a bad cluster id / org / name). */
  readonly error: BridgeError;
}

/** Outcome of one registration pass; each cluster appears in exactly one list, in input order. */
export interface RegistrationReport {
  readonly created: SourceRegistration[];
  readonly existing: ExistingSource[];
  readonly conflicts: SourceConflict[];
  readonly failed: SourceFailure[];
}

/** Outcome of one cluster. */
export type ClusterRegistration =
  | { readonly kind: "created"; readonly source: SourceRegistration }
  | { readonly kind: "existing"; readonly source: ExistingSource }
  | { readonly kind: "conflict"; readonly conflict: SourceConflict }
  | { readonly kind: "failed"; readonly failure: SourceFailure };

/** Options of {@linkcode registerSources}. */
export interface RegisterSourcesOptions extends KokuSourcesClientOptions {
  /** Clusters registered at once (default 4). Clusters sharing an org and a name always go one after another. */
  readonly concurrency?: number;
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  424: "Failed Dependency",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

const MAX_ANSWER = 300;
const MAX_PAGES = 1_000;

/**
 * The identity document koku's `IdentityHeaderMiddleware` accepts for an org:
 * a `User` identity with `org_id` (and `internal.org_id`), an org-admin user
 * (so koku skips the RBAC lookup) and the cost-management entitlement
 * (without it koku answers 403). The user name is per org,
 * `thanos-bridge-<org id>`: koku binds a user name to the first org it was
 * seen with, so one name shared by two orgs would put every source in the
 * first org.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kokuIdentity } from "./koku_sources.ts";
 *
 * const id = kokuIdentity("1234567");
 * assert.equal(id.identity.org_id, "1234567");
 * assert.equal(id.identity.user.is_org_admin, true);
 * assert.equal(kokuIdentity("1", "acct").identity.account_number, "acct");
 * ```
 */
export function kokuIdentity(orgId: string, accountNumber?: string | null): {
  identity: {
    org_id: string;
    account_number?: string;
    type: "User";
    auth_type: "basic-auth";
    internal: { org_id: string };
    user: { username: string; email: string; is_org_admin: true };
  };
  entitlements: { cost_management: { is_entitled: true } };
} {
  const username = `thanos-bridge-${orgId}`;
  return {
    identity: {
      org_id: orgId,
      ...(accountNumber ? { account_number: accountNumber } : {}),
      type: "User",
      auth_type: "basic-auth",
      internal: { org_id: orgId },
      user: { username, email: `${username}@localhost`, is_org_admin: true },
    },
    entitlements: { cost_management: { is_entitled: true } },
  };
}

/**
 * The base64 `X-Rh-Identity` of {@linkcode kokuIdentity} for an org: the
 * default `identityFor` of {@linkcode KokuSourcesClient}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kokuIdentityFor } from "./koku_sources.ts";
 *
 * assert.equal(JSON.parse(atob(kokuIdentityFor("42"))).identity.org_id, "42");
 * ```
 */
export function kokuIdentityFor(orgId: string): string {
  return encodeIdentity(JSON.stringify(kokuIdentity(orgId)));
}

/**
 * The source name of a cluster: its name when known, else its id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sourceNameOf } from "./koku_sources.ts";
 *
 * assert.equal(sourceNameOf({ clusterId: "c1", orgId: "o" }), "c1");
 * assert.equal(sourceNameOf({ clusterId: "c1", name: "prod", orgId: "o" }), "prod");
 * ```
 */
export function sourceNameOf(cluster: KokuCluster): string {
  const name = typeof cluster.name === "string" ? cluster.name.trim() : "";
  return name === "" ? cluster.clusterId : name;
}

/** Whether a failure is worth another attempt. */
class Retryable extends Error {
  constructor(message: string, readonly retryAfterMs?: number) {
    super(message);
  }
}

/** koku's answer to one request. */
interface Answer {
  readonly status: number;
  readonly json: unknown;
}

/**
 * A client of koku's sources API (on-prem paths, contract §5.12). Source-type
 * and application-type ids are asked once per org and kept for the life of
 * the client (one pass).
 *
 * @example
 * ```ts ignore
 * import { KokuSourcesClient } from "./koku_sources.ts";
 *
 * const client = new KokuSourcesClient({ baseUrl: "http://koku-api:8000/api/cost-management/v1/" });
 * const outcome = await client.register({ clusterId: "16b9a60d-0774-4102-9028-bd28d6c38ac2", orgId: "1234567" });
 * outcome.kind; // "created" | "existing" | "conflict" | "failed"
 * ```
 */
export class KokuSourcesClient {
  /** The API base, ending with `/`. */
  readonly baseUrl: string;
  readonly #identityFor: (orgId: string) => string;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #pageSize: number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #random: () => number;
  readonly #sourceTypes = new Map<string, Promise<string>>();
  readonly #appTypes = new Map<string, Promise<string>>();

  /** Checks the options; a `BridgeError` `config` names the bad one. */
  constructor(options: KokuSourcesClientOptions) {
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch {
      throw new BridgeError("config", `koku URL ${showValue(options.baseUrl)} is not a URL`);
    }
    if (base.protocol !== "https:" && base.protocol !== "http:") {
      throw new BridgeError("config", `koku URL must be http(s), got ${showValue(base.protocol)}`);
    }
    if (base.username !== "" || base.password !== "") {
      throw new BridgeError("config", "koku URL must not carry credentials");
    }
    if (base.search !== "" || base.hash !== "") {
      throw new BridgeError("config", "koku URL must not carry a query or a fragment");
    }
    this.baseUrl = `${base.origin}${base.pathname.replace(/\/+$/, "")}/`;
    this.#identityFor = options.identityFor ?? kokuIdentityFor;
    this.#fetch = options.fetch ?? fetch;
    this.#timeoutMs = positiveInt(options.timeoutMs ?? 30_000, "koku timeout");
    this.#maxAttempts = positiveInt(options.maxAttempts ?? 5, "koku attempts");
    this.#baseDelayMs = options.baseDelayMs ?? 500;
    this.#maxDelayMs = options.maxDelayMs ?? 30_000;
    this.#pageSize = positiveInt(options.pageSize ?? 100, "koku page size");
    this.#sleep = options.sleep ?? abortableSleep;
    this.#random = options.random ?? Math.random;
  }

  /**
   * Registers one cluster (steps 1–4 of contract §5.12). Never throws for a
   * koku or input error (that is the `failed` outcome); throws `cancelled`
   * when `signal` aborts.
   */
  async register(cluster: KokuCluster, signal?: AbortSignal): Promise<ClusterRegistration> {
    const { clusterId, orgId } = cluster;
    const name = sourceNameOf(cluster);
    const failed = (error: BridgeError): ClusterRegistration => ({
      kind: "failed",
      failure: { clusterId, orgId, name, error },
    });
    const bad = checkCluster(cluster, name);
    if (bad !== null) return failed(bad);
    try {
      const typeId = await this.sourceTypeId(orgId, signal);
      const exact = (await this.listSources(orgId, { typeId, clusterId, name }, signal))
        .find((s) => s.name === name && (s.clusterId === null || s.clusterId === clusterId));
      if (exact) {
        return {
          kind: "existing",
          source: { clusterId, orgId, name, sourceId: exact.id, requestedName: name },
        };
      }
      const mine = (await this.listSources(orgId, { typeId, clusterId }, signal))
        .find((s) => s.clusterId === null || s.clusterId === clusterId);
      if (mine) {
        return {
          kind: "existing",
          source: { clusterId, orgId, name: mine.name, sourceId: mine.id, requestedName: name },
        };
      }
      const taken = (await this.listSources(orgId, { typeId, name }, signal))
        .find((s) => s.name === name && s.clusterId !== clusterId);
      if (taken) {
        const other = taken.clusterId;
        const error = new BridgeError(
          "koku_sources",
          `cannot register cluster ${showValue(clusterId)} in org ${showValue(orgId)}: ` +
            `koku source ${showValue(name)} (id ${showValue(taken.id)}) already belongs to ` +
            `${other === null ? "another cluster" : `cluster ${showValue(other)}`}; ` +
            `give one of the clusters another name or remove that source`,
        );
        return {
          kind: "conflict",
          conflict: { clusterId, orgId, name, otherClusterId: other, sourceId: taken.id, error },
        };
      }
      const appTypeId = await this.applicationTypeId(orgId, signal);
      const created = await this.createSource(orgId, { typeId, name, clusterId }, signal);
      await this.createApplication(orgId, created.id, appTypeId, signal).catch((e) => {
        if (!(e instanceof BridgeError) || e.code === "cancelled") throw e;
        throw new BridgeError(
          "koku_sources",
          `koku source ${showValue(name)} (id ${
            showValue(created.id)
          }) was created, but linking it to cost management failed: ${e.message}`,
          { cause: e },
        );
      });
      return { kind: "created", source: { clusterId, orgId, name, sourceId: created.id } };
    } catch (e) {
      if (signal?.aborted || (e instanceof BridgeError && e.code === "cancelled")) {
        throw new BridgeError("cancelled", "cancelled", { cause: e });
      }
      if (e instanceof BridgeError) return failed(e);
      return failed(
        new BridgeError("koku_sources", escapeControl(String(e), false), { cause: e }),
      );
    }
  }

  /** Id of koku's `openshift` source type in an org (`meta.count` must be 1); asked once per org. */
  sourceTypeId(orgId: string, signal?: AbortSignal): Promise<string> {
    return cached(this.#sourceTypes, orgId, async () => {
      const answer = await this.#get(orgId, "source_types", {
        "filter[name]": OPENSHIFT_SOURCE_TYPE,
      }, signal);
      const { count, data } = listOf(answer.json, "source_types");
      const id = count === 1 ? idOf(data[0]) : null;
      if (id === null) {
        throw new BridgeError(
          "koku_sources",
          `koku at ${this.baseUrl} has no single ${OPENSHIFT_SOURCE_TYPE} source type ` +
            `(meta.count ${count}); is this koku's API base, with ONPREM set?`,
        );
      }
      return id;
    });
  }

  /** Id of the cost-management application type in an org; asked once per org. */
  applicationTypeId(orgId: string, signal?: AbortSignal): Promise<string> {
    return cached(this.#appTypes, orgId, async () => {
      const answer = await this.#get(orgId, "application_types", {
        "filter[name]": COST_MANAGEMENT_APP_TYPE,
      }, signal);
      const { count, data } = listOf(answer.json, "application_types");
      const id = count >= 1 ? idOf(data[0]) : null;
      if (id === null) {
        throw new BridgeError(
          "koku_sources",
          `koku at ${this.baseUrl} has no ${COST_MANAGEMENT_APP_TYPE} application type (meta.count ${count})`,
        );
      }
      return id;
    });
  }

  /**
   * Every source of the source type matching the filters, all pages read.
   * `name` is koku's case-insensitive substring filter: compare names exactly.
   */
  async listSources(
    orgId: string,
    filter: { typeId: string; clusterId?: string; name?: string },
    signal?: AbortSignal,
  ): Promise<KokuSource[]> {
    const query: Record<string, string> = { "filter[source_type_id]": filter.typeId };
    if (filter.clusterId !== undefined) query["filter[source_ref]"] = filter.clusterId;
    if (filter.name !== undefined) query["filter[name]"] = filter.name;
    const out: KokuSource[] = [];
    for (let page = 0; page < MAX_PAGES; page++) {
      const answer = await this.#get(orgId, "sources", {
        ...query,
        limit: String(this.#pageSize),
        offset: String(out.length),
      }, signal);
      const { count, data } = listOf(answer.json, "sources");
      for (const item of data) out.push(sourceOf(item));
      if (data.length === 0 || out.length >= count) return out;
    }
    throw new BridgeError("koku_sources", `koku listed more than ${MAX_PAGES} pages of sources`);
  }

  /**
   * `POST sources`. A retry after a lost answer first checks whether the
   * source exists now (by `source_ref`), so a cluster never gets two sources.
   */
  async createSource(
    orgId: string,
    source: { typeId: string; name: string; clusterId: string },
    signal?: AbortSignal,
  ): Promise<KokuSource> {
    const body = { source_type_id: source.typeId, name: source.name, source_ref: source.clusterId };
    const answer = await this.#request(orgId, "POST", "sources", null, body, signal, async () => {
      const found = (await this.listSources(
        orgId,
        { typeId: source.typeId, clusterId: source.clusterId },
        signal,
      )).find((s) => s.clusterId === null || s.clusterId === source.clusterId);
      return found ? { status: 201, json: { id: found.id, name: found.name } } : null;
    });
    const id = idOf(answer.json);
    if (id === null) {
      throw new BridgeError(
        "koku_sources",
        `koku answered POST ${this.baseUrl}sources without a source id: ${
          showValue(JSON.stringify(answer.json), MAX_ANSWER)
        }`,
      );
    }
    return { id, name: source.name, clusterId: source.clusterId };
  }

  /** `POST applications`: links a source to cost management (idempotent in koku). */
  async createApplication(
    orgId: string,
    sourceId: string,
    appTypeId: string,
    signal?: AbortSignal,
  ): Promise<void> {
    await this.#request(orgId, "POST", "applications", null, {
      source_id: sourceId,
      application_type_id: appTypeId,
    }, signal);
  }

  #get(
    orgId: string,
    path: string,
    query: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<Answer> {
    return this.#request(orgId, "GET", path, query, null, signal);
  }

  /**
   * One request with retries. `beforeRetry` (POST) may answer in place of a
   * retry. Throws `koku_sources` or `cancelled`.
   */
  async #request(
    orgId: string,
    method: "GET" | "POST",
    path: string,
    query: Record<string, string> | null,
    body: JsonObject | null,
    signal?: AbortSignal,
    beforeRetry?: () => Promise<Answer | null>,
  ): Promise<Answer> {
    const url = this.baseUrl + path + (query ? `?${new URLSearchParams(query)}` : "");
    const where = `${method} ${url}`;
    const headers: Record<string, string> = {
      "accept": "application/json",
      "cache-control": "no-cache",
      "x-rh-identity": this.#identityFor(orgId),
    };
    if (body !== null) headers["content-type"] = "application/json";
    let last = "";
    for (let attempt = 1;; attempt++) {
      if (signal?.aborted) {
        throw new BridgeError("cancelled", "cancelled", { cause: signal.reason });
      }
      if (attempt > 1 && beforeRetry) {
        const instead = await beforeRetry();
        if (instead !== null) return instead;
      }
      try {
        return await this.#once(url, where, orgId, method, headers, body, signal);
      } catch (e) {
        if (!(e instanceof Retryable)) throw e;
        last = e.message;
        if (attempt >= this.#maxAttempts) break;
        const backoff = backoffDelay(attempt, {
          baseDelayMs: this.#baseDelayMs,
          maxDelayMs: this.#maxDelayMs,
          random: this.#random,
        });
        const ms = Math.min(this.#maxDelayMs, Math.max(backoff, e.retryAfterMs ?? 0));
        try {
          await this.#sleep(ms, signal);
        } catch (err) {
          throw new BridgeError("cancelled", "cancelled", { cause: err });
        }
      }
    }
    throw new BridgeError(
      "koku_sources",
      `koku ${where} failed after ${this.#maxAttempts} attempts: ${last}`,
    );
  }

  async #once(
    url: string,
    where: string,
    orgId: string,
    method: string,
    headers: Record<string, string>,
    body: JsonObject | null,
    signal?: AbortSignal,
  ): Promise<Answer> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const attemptSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        body: body === null ? undefined : JSON.stringify(body),
        // A redirect would carry the identity to wherever it points.
        redirect: "manual",
        signal: attemptSignal,
      });
      text = await response.text();
    } catch (e) {
      if (signal?.aborted) throw new BridgeError("cancelled", "cancelled", { cause: e });
      throw new Retryable(
        timeout.aborted
          ? `no answer within ${this.#timeoutMs} ms`
          : escapeControl(e instanceof Error ? e.message : String(e), false),
      );
    }
    const status = response.status;
    const reason = `${status} ${response.statusText || STATUS_TEXT[status] || ""}`.trim();
    const shown = text.trim() === "" ? "" : `: ${showValue(text.trim(), MAX_ANSWER)}`;
    if (status >= 200 && status < 300) {
      try {
        return { status, json: text.trim() === "" ? null : JSON.parse(text) };
      } catch {
        throw new BridgeError("koku_sources", `koku answered ${where} with non-JSON${shown}`);
      }
    }
    if (status === 401 || status === 403) {
      throw new BridgeError(
        "koku_sources",
        `koku refused ${where} for org ${showValue(orgId)}: ${reason} — koku needs an ` +
          `X-Rh-Identity with this org_id, a user name and the cost_management entitlement, ` +
          `and ONPREM (or DEVELOPMENT) set to allow creating sources${shown}`,
      );
    }
    if (status >= 300 && status < 400) {
      throw new BridgeError(
        "koku_sources",
        `koku redirected ${where} to ${
          showValue(response.headers.get("location") ?? "")
        } (${reason}); not followed: set the koku URL to the final address`,
      );
    }
    if (status === 429 || status >= 500) {
      const retryAfter = status === 429 || status === 503
        ? parseRetryAfter(response.headers.get("retry-after"))
        : undefined;
      throw new Retryable(`${reason}${shown}`, retryAfter);
    }
    throw new BridgeError("koku_sources", `koku rejected ${where}: ${reason}${shown}`);
  }
}

/**
 * Registers the koku OCP source of every cluster that has none (contract
 * §5.12), at most `concurrency` (default 4) clusters at a time. A cluster id
 * listed twice for the same org is registered once. Clusters of one org that
 * ask for the same name go one after another, so the second sees the first's
 * source (a conflict) instead of creating a twin. A second pass creates
 * nothing.
 *
 * @param clusters The clusters, e.g. from discovery.
 * @param options The koku client's options, plus `concurrency`.
 * @param signal Aborts the pass.
 * @returns Every cluster in exactly one of `created`, `existing`,
 *   `conflicts`, `failed`, in input order.
 * @throws {BridgeError} `config` for bad options, `cancelled` when `signal`
 *   aborts (sources created before that stay; the next pass finds them).
 *
 * @example
 * ```ts ignore
 * import { registerSources } from "./koku_sources.ts";
 *
 * const report = await registerSources(
 *   [{ clusterId: "16b9a60d-0774-4102-9028-bd28d6c38ac2", name: "prod-east", orgId: "1234567" }],
 *   { baseUrl: "http://koku-api:8000/api/cost-management/v1/" },
 * );
 * for (const c of report.conflicts) console.error(c.error.message);
 * ```
 */
export async function registerSources(
  clusters: readonly KokuCluster[],
  options: RegisterSourcesOptions,
  signal?: AbortSignal,
): Promise<RegistrationReport> {
  const concurrency = positiveInt(options.concurrency ?? 4, "koku concurrency");
  const client = new KokuSourcesClient(options);
  // One entry per (org, cluster id); same (org, name) in one queue.
  const seen = new Set<string>();
  const queues = new Map<string, KokuCluster[]>();
  const order: KokuCluster[] = [];
  for (const cluster of clusters) {
    const key = JSON.stringify([cluster.orgId, cluster.clusterId]);
    if (seen.has(key)) continue;
    seen.add(key);
    order.push(cluster);
    const queueKey = JSON.stringify([cluster.orgId, sourceNameOf(cluster)]);
    const queue = queues.get(queueKey);
    if (queue) queue.push(cluster);
    else queues.set(queueKey, [cluster]);
  }
  const outcomes = new Map<KokuCluster, ClusterRegistration>();
  const work = [...queues.values()];
  let next = 0;
  const inner = new AbortController();
  const onAbort = () => inner.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  const worker = async () => {
    while (next < work.length) {
      const queue = work[next++]!;
      for (const cluster of queue) {
        outcomes.set(cluster, await client.register(cluster, inner.signal));
      }
    }
  };
  try {
    const results = await Promise.allSettled(
      Array.from({ length: Math.min(concurrency, work.length) }, worker),
    );
    if (signal?.aborted) {
      throw new BridgeError("cancelled", "cancelled", { cause: signal.reason });
    }
    const rejected = results.find((r) => r.status === "rejected");
    if (rejected) throw (rejected as PromiseRejectedResult).reason;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  const report: RegistrationReport = { created: [], existing: [], conflicts: [], failed: [] };
  for (const cluster of order) {
    const o = outcomes.get(cluster)!;
    if (o.kind === "created") report.created.push(o.source);
    else if (o.kind === "existing") report.existing.push(o.source);
    else if (o.kind === "conflict") report.conflicts.push(o.conflict);
    else report.failed.push(o.failure);
  }
  return report;
}

function positiveInt(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new BridgeError("config", `${what} must be an integer ≥ 1, got ${showValue(value)}`);
  }
  return value;
}

/** A `config` error for a cluster koku could not take, or `null`. */
function checkCluster(cluster: KokuCluster, name: string): BridgeError | null {
  if (!isClusterId(cluster.clusterId)) {
    return new BridgeError(
      "config",
      `cluster id ${showValue(cluster.clusterId)} is not valid for a koku source`,
    );
  }
  if (
    typeof cluster.orgId !== "string" || cluster.orgId.trim() === "" ||
    escapeControl(cluster.orgId, false) !== cluster.orgId
  ) {
    return new BridgeError(
      "config",
      `cluster ${showValue(cluster.clusterId)} has no usable org id: ${showValue(cluster.orgId)}`,
    );
  }
  if (name.length > MAX_SOURCE_NAME || escapeControl(name, false) !== name) {
    return new BridgeError(
      "config",
      `cluster ${showValue(cluster.clusterId)}: source name ${
        showValue(name)
      } must be at most ${MAX_SOURCE_NAME} characters without control characters`,
    );
  }
  return null;
}

/** A per-org promise kept for the pass (a failure too: the org's other clusters fail fast). */
function cached(
  map: Map<string, Promise<string>>,
  orgId: string,
  make: () => Promise<string>,
): Promise<string> {
  let p = map.get(orgId);
  if (p === undefined) {
    p = make();
    map.set(orgId, p);
    // A cancelled lookup must not stick.
    p.catch((e) => {
      if (e instanceof BridgeError && e.code === "cancelled") map.delete(orgId);
    });
  }
  return p;
}

/** `{count, data}` of a koku list answer; a `koku_sources` error when it is not one. */
function listOf(json: unknown, what: string): { count: number; data: unknown[] } {
  const o = json as { meta?: { count?: unknown }; data?: unknown } | null;
  if (typeof o !== "object" || o === null || !Array.isArray(o.data)) {
    throw new BridgeError(
      "koku_sources",
      `koku's ${what} answer is not a list (no "data" array): ${
        showValue(JSON.stringify(json), MAX_ANSWER)
      }`,
    );
  }
  const count = o.meta?.count;
  return { count: typeof count === "number" ? count : o.data.length, data: o.data };
}

/** `id` of a koku object as text, or `null`. */
function idOf(item: unknown): string | null {
  const id = (item as { id?: unknown } | null | undefined)?.id;
  if (typeof id === "number" && Number.isFinite(id)) return String(id);
  if (typeof id === "string" && id !== "") return id;
  return null;
}

/** A listed source: id, name, and the cluster it is for (`source_ref`, else the credentials). */
function sourceOf(item: unknown): KokuSource {
  const id = idOf(item);
  const o = item as {
    name?: unknown;
    source_ref?: unknown;
    authentication?: { credentials?: { cluster_id?: unknown } } | null;
  };
  if (id === null || typeof o.name !== "string") {
    throw new BridgeError(
      "koku_sources",
      `koku listed a source without id or name: ${showValue(JSON.stringify(item), MAX_ANSWER)}`,
    );
  }
  const ref = typeof o.source_ref === "string" && o.source_ref !== ""
    ? o.source_ref
    : o.authentication?.credentials?.cluster_id;
  return { id, name: o.name, clusterId: typeof ref === "string" && ref !== "" ? ref : null };
}
