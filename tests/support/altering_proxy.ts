/**
 * An HTTP proxy on a free loopback port in front of a Prometheus query API
 * that falsifies the answers local mode's self-check gets: every one-point
 * `query_range` (start = end) whose `query` starts with `*_over_time(` (the
 * server-mode wrapper), i.e. a server-side reduction of one hour, is answered
 * with every value increased by 1, and a `count_over_time` answer gets one
 * extra series (its first series with the label `selfcheck_fake="1"`), so
 * that a label-only query's answer differs too. Server-mode queries of
 * several hours, raw samples, ROS, probes and build info are forwarded
 * unchanged. It counts what it altered and the several-hour server-side
 * reductions it passed.
 *
 * @module
 */

import { forward, loopbackTarget, relay } from "./proxy_forward.ts";

/** A running altering proxy. */
export interface AlteringProxy {
  /** Base URL of the proxy, e.g. `http://127.0.0.1:40123`. */
  readonly url: string;
  /** Answers altered so far. */
  readonly altered: () => number;
  /** Server-side reductions of several hours passed unchanged (server-mode collection). */
  readonly passedServerSide: () => number;
  /** Stops listening and waits for the requests in flight. */
  close(): Promise<void>;
}

const SERVER_SIDE = /^(sum|max|min|count)_over_time\(/;

interface Matrix {
  status: string;
  data: {
    resultType: string;
    result: { metric: Record<string, string>; values: [number, string][] }[];
  };
}

/**
 * Starts the proxy in front of `target` (a loopback URL).
 *
 * @example
 * ```ts ignore
 * import { startAlteringProxy } from "./altering_proxy.ts";
 * const proxy = startAlteringProxy("http://127.0.0.1:9090");
 * // run --reduce local against proxy.url: every self-check must fail
 * await proxy.close();
 * ```
 */
export function startAlteringProxy(target: string): AlteringProxy {
  const base = loopbackTarget(target);
  let altered = 0;
  let passedServerSide = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const url = new URL(request.url);
      const bytes = request.body ? new Uint8Array(await request.arrayBuffer()) : new Uint8Array(0);
      const body = new TextDecoder().decode(bytes);
      const form = new URLSearchParams(body);
      const field = (name: string) => url.searchParams.get(name) ?? form.get(name);
      const query = field("query");
      const upstream = await forward(request, url, bytes, base);
      const serverSide = upstream.ok && url.pathname.endsWith("/api/v1/query_range") &&
        query !== null && SERVER_SIDE.test(query);
      const alter = serverSide && field("start") === field("end");
      if (serverSide && !alter) passedServerSide++;
      if (!alter) return relay(upstream);
      const answer = await upstream.json() as Matrix;
      for (const s of answer.data.result) {
        s.values = s.values.map(([t, v]) => [t, String(Number(v) + 1)]);
      }
      const first = answer.data.result[0];
      if (query!.startsWith("count_over_time(") && first) {
        answer.data.result.push({
          metric: { ...first.metric, selfcheck_fake: "1" },
          values: first.values,
        });
      }
      altered++;
      return Response.json(answer);
    },
  );
  const addr = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${addr.port}`,
    altered: () => altered,
    passedServerSide: () => passedServerSide,
    async close() {
      await server.shutdown();
    },
  };
}
