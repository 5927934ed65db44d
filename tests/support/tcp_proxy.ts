/**
 * A byte-level TCP proxy on a free loopback port, for fault injection in the
 * end-to-end tests. It forwards bytes unchanged (so SigV4 signatures, which
 * cover the Host header, stay valid), or swallows them (`blackhole`: a server
 * that accepts and never answers), or closes every connection at once
 * (`refuse`: a server that is down).
 *
 * @module
 */

/** What the proxy does with new connections. */
export type ProxyMode = "pass" | "blackhole" | "refuse";

/** A running proxy. */
export interface TcpProxy {
  readonly port: number;
  /** Current mode; changing it to a fault closes every open connection (pooled ones too). */
  mode: ProxyMode;
  /** Resolves when a blackholed connection has received its first bytes. */
  blackholed(): Promise<void>;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/**
 * Starts a proxy to `127.0.0.1:<targetPort>`.
 *
 * @example
 * ```ts ignore
 * import { startTcpProxy } from "./tcp_proxy.ts";
 * const proxy = startTcpProxy(9000);
 * proxy.mode = "blackhole";
 * await proxy.close();
 * ```
 */
export function startTcpProxy(targetPort: number, mode: ProxyMode = "pass"): TcpProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let waiters: (() => void)[] = [];
  let current = mode;
  const proxy: TcpProxy = {
    port: (listener.addr as Deno.NetAddr).port,
    get mode() {
      return current;
    },
    set mode(next: ProxyMode) {
      current = next;
      // Pooled keep-alive connections must not outlive a fault: drop them all.
      if (next !== "pass") {
        for (const c of conns) {
          try {
            c.close();
          } catch {
            // already closed
          }
        }
        conns.clear();
      }
    },
    blackholed: () => new Promise<void>((resolve) => waiters.push(resolve)),
    close: async () => {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await Promise.allSettled([...tasks]);
    },
  };
  const track = (p: Promise<void>) => {
    tasks.add(p);
    p.finally(() => tasks.delete(p));
  };
  const closeQuietly = (c: Deno.Conn) => {
    conns.delete(c);
    try {
      c.close();
    } catch {
      // already closed
    }
  };
  const serve = async (client: Deno.Conn) => {
    conns.add(client);
    if (proxy.mode === "refuse") return closeQuietly(client);
    if (proxy.mode === "blackhole") {
      const buf = new Uint8Array(64 * 1024);
      try {
        while (true) {
          const n = await client.read(buf);
          if (n === null) break;
          const w = waiters;
          waiters = [];
          for (const resolve of w) resolve();
        }
      } catch {
        // closed
      }
      return closeQuietly(client);
    }
    let upstream: Deno.Conn;
    try {
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    } catch {
      return closeQuietly(client);
    }
    conns.add(upstream);
    const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
      try {
        await from.readable.pipeTo(to.writable, { preventClose: true });
      } catch {
        // one side went away
      }
      closeQuietly(from);
      closeQuietly(to);
    };
    await Promise.all([pipe(client, upstream), pipe(upstream, client)]);
  };
  track((async () => {
    try {
      for await (const conn of listener) track(serve(conn));
    } catch {
      // listener closed
    }
  })());
  return proxy;
}
