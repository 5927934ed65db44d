/**
 * A loopback proxy for the bench's recording pass when the bridge reads raw
 * samples over Prometheus's remote read (`--record` keeps instant queries
 * only, so it cannot record that run): every request is forwarded unchanged,
 * its answer streamed back unchanged, and the query and remote-read requests
 * are kept as {@linkcode FloorRequest}s for the download floor, with the
 * answers' body sizes.
 *
 * @module
 */

import type { FloorRequest } from "./download_floor.ts";
import { decodeReadRequest } from "../src/thanos/remote_read.ts";
import { snappyDecode } from "../src/thanos/snappy.ts";

/** A running capture proxy. */
export interface CaptureProxy {
  /** Its base URL (`http://127.0.0.1:<port>`). */
  readonly url: string;
  /** The captured requests, in the order they arrived. */
  readonly requests: FloorRequest[];
  /** Body bytes of the captured requests' answers. */
  bytes: number;
  /** Stops the proxy. */
  close(): Promise<void>;
}

/** Request headers not copied (the connection's own). */
const DROPPED = new Set(["host", "connection", "content-length", "accept-encoding"]);

/**
 * Starts a capture proxy in front of `target` (a loopback URL).
 *
 * @example
 * ```ts ignore
 * import { startCaptureProxy } from "./capture_proxy.ts";
 * const proxy = startCaptureProxy("http://127.0.0.1:9090");
 * // run the bridge against proxy.url, then replay proxy.requests with downloadFloor
 * await proxy.close();
 * ```
 */
export function startCaptureProxy(target: string): CaptureProxy {
  const base = new URL(target);
  if (!["127.0.0.1", "localhost", "[::1]"].includes(base.hostname)) {
    throw new RangeError(`Invalid target ${target}: only loopback targets are allowed`);
  }
  const requests: FloorRequest[] = [];
  const proxy: CaptureProxy = {
    url: "",
    requests,
    bytes: 0,
    close: () => server.shutdown(),
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const body = req.body ? new Uint8Array(await req.arrayBuffer()) : null;
    const headers = new Headers();
    for (const [k, v] of req.headers) if (!DROPPED.has(k.toLowerCase())) headers.set(k, v);
    headers.set("Accept-Encoding", "identity");
    const upstream = await fetch(new URL(url.pathname + url.search, base), {
      method: req.method,
      headers,
      ...(body ? { body } : {}),
    });
    let captured: FloorRequest | null = null;
    if (upstream.ok && req.method === "POST" && body) {
      if (url.pathname.endsWith("/api/v1/read")) {
        // The bridge's probe (a read of no query) is not one of the run's queries.
        const read = decodeReadRequest(snappyDecode(body));
        if (read.queries.length > 0) captured = { query: "(remote read)", read: body };
      } else if (url.pathname.endsWith("/api/v1/query_range")) {
        const f = new URLSearchParams(new TextDecoder().decode(body));
        captured = {
          query: f.get("query") ?? "",
          start: Number(f.get("start")),
          end: Number(f.get("end")),
          step: Number(f.get("step")),
        };
      } else if (url.pathname.endsWith("/api/v1/query")) {
        const f = new URLSearchParams(new TextDecoder().decode(body));
        captured = { query: f.get("query") ?? "", time: Number(f.get("time")) };
      }
    }
    if (captured !== null) requests.push(captured);
    const out = new Headers();
    for (const [k, v] of upstream.headers) {
      if (!["connection", "content-length", "transfer-encoding"].includes(k)) out.set(k, v);
    }
    const counted = captured === null || upstream.body === null
      ? upstream.body
      : upstream.body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, c) {
            proxy.bytes += chunk.byteLength;
            c.enqueue(chunk);
          },
        }),
      );
    return new Response(counted, { status: upstream.status, headers: out });
  });
  (proxy as { url: string }).url = `http://127.0.0.1:${server.addr.port}`;
  return proxy;
}
