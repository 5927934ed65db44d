/**
 * What the end-to-end tests' fault-injecting HTTP proxies
 * (`failing_proxy.ts`, `altering_proxy.ts`) share: the loopback-only target
 * check, and forwarding a request to the target and its answer back without
 * the hop-by-hop and encoding headers of either connection.
 *
 * @module
 */

/** Hop-by-hop and encoding headers that must not be copied between the two connections. */
const DROPPED = new Set([
  "host",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
  "accept-encoding",
  "content-encoding",
]);

/** `from` without the headers that belong to one connection only. */
export function copyHeaders(from: Headers): Headers {
  const out = new Headers();
  for (const [k, v] of from) if (!DROPPED.has(k.toLowerCase())) out.set(k, v);
  return out;
}

/** `target` as a URL; a RangeError unless it is a loopback address. */
export function loopbackTarget(target: string): URL {
  const url = new URL(target);
  if (!["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) {
    throw new RangeError(`Invalid target ${target}: only loopback targets are allowed`);
  }
  return url;
}

/**
 * Sends `request` (whose URL is `url` and whose body, already read, is
 * `body`: bytes, as a remote read's snappy body is binary) to the same path
 * and query string on `target`.
 */
export async function forward(
  request: Request,
  url: URL,
  body: Uint8Array,
  target: URL,
): Promise<Response> {
  return await fetch(new URL(url.pathname + url.search, target), {
    method: request.method,
    headers: copyHeaders(request.headers),
    ...(request.method === "GET" || request.method === "HEAD" ? {} : { body: body as BodyInit }),
  });
}

/** The target's answer, streamed back unchanged. */
export function relay(upstream: Response): Response {
  return new Response(upstream.body, {
    status: upstream.status,
    statusText: upstream.statusText,
    headers: copyHeaders(upstream.headers),
  });
}
