/**
 * An HTTP proxy on a free loopback port in front of a Prometheus (or Thanos)
 * query API, for fault injection in the end-to-end tests: every request whose
 * PromQL `query` parameter (in the URL or in a form body) contains one of the
 * `failOn` strings is answered by the proxy itself with HTTP 422 and a
 * Prometheus `bad_data` error document; every other request is forwarded
 * unchanged and its answer streamed back. It records which queries it failed
 * and which it passed.
 *
 * @module
 */

import { forward, loopbackTarget, relay } from "./proxy_forward.ts";

/** A running failing proxy. */
export interface FailingProxy {
  /** Base URL of the proxy, e.g. `http://127.0.0.1:40123`. */
  readonly url: string;
  /** `query` parameters answered with 422, in arrival order (retries included). */
  readonly failed: readonly string[];
  /** `query` parameters forwarded to the target, in arrival order. */
  readonly passed: readonly string[];
  /** Stops listening and waits for the requests in flight. */
  close(): Promise<void>;
}

/** Options of {@linkcode startFailingProxy}. */
export interface FailingProxyOptions {
  /** Base URL of the real server, e.g. `http://127.0.0.1:9090`. */
  readonly target: string;
  /** A request fails when its `query` parameter contains any of these (case-sensitive). */
  readonly failOn: readonly string[];
  /** Text of the `error` field of the 422 answer. */
  readonly message?: string;
}

/** The `query` parameter of a request: from the URL, else from a form-encoded body. */
function queryOf(url: URL, body: string, contentType: string | null): string | null {
  const inUrl = url.searchParams.get("query");
  if (inUrl !== null) return inUrl;
  if (contentType?.includes("application/x-www-form-urlencoded")) {
    return new URLSearchParams(body).get("query");
  }
  return null;
}

/**
 * Starts a failing proxy in front of `options.target` on `127.0.0.1`.
 *
 * @example
 * ```ts ignore
 * import { startFailingProxy } from "./failing_proxy.ts";
 * const proxy = startFailingProxy({ target: "http://127.0.0.1:9090", failOn: ["bad-id"] });
 * // point the client at proxy.url …
 * proxy.failed.length; // queries that named "bad-id"
 * await proxy.close();
 * ```
 */
export function startFailingProxy(options: FailingProxyOptions): FailingProxy {
  const target = loopbackTarget(options.target);
  if (options.failOn.length === 0 || options.failOn.some((s) => s === "")) {
    throw new RangeError("startFailingProxy: failOn needs at least one non-empty string");
  }
  const message = options.message ?? "injected fault: this cluster's data is bad";
  const failed: string[] = [];
  const passed: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const url = new URL(request.url);
      const bytes = request.body ? new Uint8Array(await request.arrayBuffer()) : new Uint8Array(0);
      const body = new TextDecoder().decode(bytes);
      const query = queryOf(url, body, request.headers.get("content-type"));
      if (query !== null && options.failOn.some((s) => query.includes(s))) {
        failed.push(query);
        return Response.json({ status: "error", errorType: "bad_data", error: message }, {
          status: 422,
        });
      }
      if (query !== null) passed.push(query);
      return relay(await forward(request, url, bytes, target));
    },
  );
  const addr = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${addr.port}`,
    failed,
    passed,
    async close() {
      await server.shutdown();
    },
  };
}
