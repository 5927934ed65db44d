/**
 * A fake of koku's on-prem sources API (contract §5.12), as far as source
 * registration uses it, served on 127.0.0.1 with a random port:
 *
 * - `X-Rh-Identity` is required: missing or not base64 JSON → 401; no
 *   `org_id`, no user name or no cost-management entitlement → 403; an org
 *   outside `orgs` (when given) → 403. Like koku, a user name belongs to the
 *   first org it was seen with: later requests by that name act on that org.
 * - `GET source_types` (`filter[name]`), `GET application_types`
 *   (`filter[name]`): koku's fixed answers (`"1"` openshift, `"0"` cost management).
 * - `GET sources`: `filter[source_type_id]` (`"1"` = OCP), `filter[source_ref]`
 *   (equals `credentials.cluster_id`), `filter[name]` (case-insensitive
 *   substring), `limit` (default 10) / `offset`, answered as
 *   `{meta: {count, limit, offset}, links, data}`.
 * - `POST sources`: `{name, source_type_id | source_type, source_ref}`;
 *   `source_ref` becomes `authentication.credentials.cluster_id`; 201 with the source.
 * - `POST applications`: `{source_id, application_type_id}`; the source must
 *   exist in the org (404 otherwise); 201.
 *
 * `intercept` can answer any request first (to inject 500s, 401s, delays).
 *
 * @module
 */

/** One stored source. */
export interface FakeSource {
  id: number;
  uuid: string;
  orgId: string;
  name: string;
  clusterId: string;
}

/** One request the fake saw (the identity is decoded, never kept encoded). */
export interface FakeRequest {
  method: string;
  /** Path below the API base, e.g. `sources`. */
  path: string;
  query: URLSearchParams;
  /** `identity.org_id` of the request, `null` when it had none. */
  orgId: string | null;
  body: unknown;
}

/** Options of {@linkcode startFakeKokuSources}. */
export interface FakeKokuOptions {
  /** Path of the API base (default `/api/cost-management/v1/`). */
  prefix?: string;
  /** Orgs allowed; others get 403 (default: any). */
  orgs?: readonly string[];
  /** Answers a request instead of the fake when it returns a Response. */
  intercept?: (req: FakeRequest) => Response | undefined | Promise<Response | undefined>;
}

/** A running fake. */
export interface FakeKoku {
  /** The API base URL, ending with `/`. */
  url: string;
  sources: FakeSource[];
  requests: FakeRequest[];
  /** Requests of one method and path. */
  count(method: string, path: string): number;
  /** Adds a source as if created earlier. */
  seed(orgId: string, name: string, clusterId: string): FakeSource;
  stop(): Promise<void>;
}

const json = (status: number, body: unknown): Response =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** Starts the fake; `stop()` it in a `finally`. */
export function startFakeKokuSources(options: FakeKokuOptions = {}): FakeKoku {
  const prefix = options.prefix ?? "/api/cost-management/v1/";
  const sources: FakeSource[] = [];
  const requests: FakeRequest[] = [];
  const userOrg = new Map<string, string>();
  let nextId = 1;

  const seed = (orgId: string, name: string, clusterId: string): FakeSource => {
    const s = { id: nextId++, uuid: crypto.randomUUID(), orgId, name, clusterId };
    sources.push(s);
    return s;
  };
  const show = (s: FakeSource) => ({
    id: s.id,
    uuid: s.uuid,
    name: s.name,
    source_type: "OCP",
    authentication: { credentials: { cluster_id: s.clusterId } },
    billing_source: {},
  });

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (!url.pathname.startsWith(prefix)) return json(404, { detail: "Not found." });
    const path = url.pathname.slice(prefix.length).replace(/\/$/, "");
    const text = await req.text();
    let body: unknown = null;
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        return json(400, { detail: "JSON parse error" });
      }
    }
    // Identity, like koku's IdentityHeaderMiddleware.
    const header = req.headers.get("x-rh-identity");
    let identity: {
      identity?: { org_id?: unknown; type?: unknown; user?: { username?: unknown } };
      entitlements?: { cost_management?: { is_entitled?: unknown } };
    } | null = null;
    try {
      if (header !== null) identity = JSON.parse(atob(header));
    } catch {
      identity = null;
    }
    const orgOfHeader = typeof identity?.identity?.org_id === "string"
      ? identity.identity.org_id
      : null;
    const seen: FakeRequest = {
      method: req.method,
      path,
      query: url.searchParams,
      orgId: orgOfHeader,
      body,
    };
    requests.push(seen);
    const intercepted = await options.intercept?.(seen);
    if (intercepted) return intercepted;
    if (identity === null || typeof identity !== "object") {
      return new Response(null, { status: 401 });
    }
    const username = identity.identity?.user?.username;
    if (
      orgOfHeader === null || typeof username !== "string" || username === "" ||
      identity.entitlements?.cost_management?.is_entitled !== true
    ) {
      return json(403, { detail: "You do not have permission to perform this action." });
    }
    if (options.orgs && !options.orgs.includes(orgOfHeader)) {
      return json(403, { detail: "You do not have permission to perform this action." });
    }
    if (!userOrg.has(username)) userOrg.set(username, orgOfHeader);
    const org = userOrg.get(username)!;
    const q = url.searchParams;

    if (req.method === "GET" && path === "source_types") {
      const all = [{ id: "1", name: "openshift" }];
      const data = all.filter((t) => !q.get("filter[name]") || t.name === q.get("filter[name]"));
      return json(200, { meta: { count: data.length }, data });
    }
    if (req.method === "GET" && path === "application_types") {
      const all = [{ id: "0", name: "/insights/platform/cost-management" }];
      const data = all.filter((t) => !q.get("filter[name]") || t.name === q.get("filter[name]"));
      return json(200, { meta: { count: data.length }, data });
    }
    if (req.method === "GET" && path === "sources") {
      let list = sources.filter((s) => s.orgId === org);
      const typeId = q.get("filter[source_type_id]");
      if (typeId !== null && typeId !== "1") list = [];
      const ref = q.get("filter[source_ref]");
      if (ref !== null) list = list.filter((s) => s.clusterId === ref);
      const name = q.get("filter[name]");
      if (name !== null) {
        list = list.filter((s) => s.name.toLowerCase().includes(name.toLowerCase()));
      }
      const limit = Math.min(1000, Number(q.get("limit") ?? 10) || 10);
      const offset = Number(q.get("offset") ?? 0) || 0;
      const page = list.slice(offset, offset + limit);
      const link = (o: number) => {
        const u = new URL(url);
        u.searchParams.set("offset", String(o));
        u.searchParams.set("limit", String(limit));
        return u.pathname + u.search;
      };
      return json(200, {
        meta: { count: list.length, limit, offset },
        links: {
          first: link(0),
          next: offset + limit < list.length ? link(offset + limit) : null,
          previous: offset > 0 ? link(Math.max(0, offset - limit)) : null,
          last: link(Math.max(0, list.length - limit)),
        },
        data: page.map(show),
      });
    }
    if (req.method === "POST" && path === "sources") {
      const b = (body ?? {}) as Record<string, unknown>;
      if (typeof b.name !== "string" || b.name === "") {
        return json(400, { errors: [{ detail: "This field is required.", source: "name" }] });
      }
      if (b.source_type_id !== undefined && b.source_type_id !== "1") {
        return json(400, { source_type_id: [`Invalid source_type_id: ${b.source_type_id}`] });
      }
      if (b.source_type_id === undefined && b.source_type !== "OCP") {
        return json(400, { source_type: "Either source_type or source_type_id is required" });
      }
      if (typeof b.source_ref !== "string" || b.source_ref === "") {
        return json(400, { detail: "cluster_id must not be empty" });
      }
      return json(201, show(seed(org, b.name, b.source_ref)));
    }
    if (req.method === "POST" && path === "applications") {
      const b = (body ?? {}) as Record<string, unknown>;
      if (!b.source_id) return json(400, { error: "source_id is required" });
      if (b.application_type_id && b.application_type_id !== "0") {
        return json(400, {
          error: "Only application_type_id '0' (cost-management) is supported",
        });
      }
      const source = sources.find((s) => s.orgId === org && String(s.id) === String(b.source_id));
      if (!source) return json(404, { error: `Source ${b.source_id} not found` });
      return json(201, {
        id: String(source.id),
        source_id: String(source.id),
        application_type_id: "0",
      });
    }
    return json(405, { detail: `Method "${req.method}" not allowed.` });
  });

  return {
    url: `http://127.0.0.1:${server.addr.port}${prefix}`,
    sources,
    requests,
    count: (method, path) => requests.filter((r) => r.method === method && r.path === path).length,
    seed,
    stop: () => server.shutdown(),
  };
}
