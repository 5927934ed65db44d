import assert from "node:assert/strict";
import https from "node:https";
import { BridgeError } from "../model.ts";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type RangeQuery,
  type RetryInfo,
  type Series,
  ThanosClient,
  type ThanosClientOptions,
} from "./thanos_client.ts";
import {
  answer,
  assertQueryPost,
  AUTH,
  causeOf,
  fastRetries,
  type Seen,
  untilAborted,
  withServer,
} from "./test_server.ts";

const HOUR: RangeQuery = {
  query: 'sum by (pod, namespace) (\n  cost:pod_usage_cpu_cores{clusterID="c1"}\n)',
  start: 1_793_491_200,
  end: 1_793_494_799,
  step: 60,
};

const SERIES: Series[] = [
  {
    metric: { namespace: "ns-1", pod: 'p "quoted" \\ {x}', label_app: "café 🚀 日本" },
    values: [[1_793_491_200, "0.25"], [1_793_491_260, "1e-7"]],
  },
  { metric: { namespace: "ns-2", pod: "p2" }, values: [[1_793_491_200, "3"]] },
  { metric: {}, values: [] },
];

/** A body written in 1–7 byte chunks (sizes cycle), optionally stalling after `stallAt` bytes. */
function tinyChunks(
  text: string,
  opts: { stallAt?: number; stop?: AbortSignal } = {},
): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  const sizes = [1, 7, 2, 5, 3, 6, 4];
  let at = 0;
  let k = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (opts.stallAt !== undefined && at >= opts.stallAt) {
        // Hang until the test stops the server or the client goes away.
        await untilAborted(opts.stop);
        controller.close();
        return;
      }
      if (at >= bytes.length) {
        controller.close();
        return;
      }
      const size = sizes[k++ % sizes.length] as number;
      controller.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}

Deno.test("queryRange streams series from tiny chunks, status before or after data", async () => {
  for (const statusFirst of [true, false]) {
    await withServer(
      () =>
        new Response(tinyChunks(answer(SERIES, { statusFirst })), {
          headers: { "Content-Type": "application/json" },
        }),
      async ({ url, seen }) => {
        const client = new ThanosClient({
          url: `${url}/prefix/`,
          ...AUTH,
        });
        try {
          const got: Series[] = [];
          const stats = await client.queryRange(HOUR, (s) => got.push(s));
          assert.deepEqual(got, SERIES);
          assert.equal(stats.series, 3);
          assert.equal(stats.attempts, 1);
          assert.equal(
            stats.bytes,
            new TextEncoder().encode(answer(SERIES, { statusFirst })).length,
          );
          assert.ok(stats.ms >= 0);
          assert.deepEqual(client.stats, { queries: 1, attempts: 1, bytes: stats.bytes });

          assert.equal(seen.length, 1);
          const req = seen[0] as Seen;
          assertQueryPost(req, "/prefix/api/v1/query_range");
          assert.equal(req.form.get("query"), HOUR.query);
          assert.equal(req.form.get("start"), "1793491200");
          assert.equal(req.form.get("end"), "1793494799");
          assert.equal(req.form.get("step"), "60");
          assert.equal(req.form.get("partial_response"), "false");
          assert.equal(req.form.get("dedup"), "true");
        } finally {
          client.close();
        }
      },
    );
  }
});

Deno.test("queryRange streams a body that arrives in 1-byte reads from an injected fetch", async () => {
  const bytes = new TextEncoder().encode(answer(SERIES));
  const oneByte: typeof fetch = () => {
    let at = 0;
    return Promise.resolve(
      new Response(
        new ReadableStream<Uint8Array>({
          pull(c) {
            if (at >= bytes.length) c.close();
            else c.enqueue(bytes.slice(at, ++at));
          },
        }),
      ),
    );
  };
  const client = new ThanosClient({ url: "http://thanos.invalid", fetch: oneByte });
  const got: Series[] = [];
  const stats = await client.queryRange(HOUR, (s) => got.push(s));
  assert.deepEqual(got, SERIES);
  assert.equal(stats.bytes, bytes.length);
});

Deno.test("429 with Retry-After is honoured (capped), then success", async () => {
  await withServer(
    (_seen, n) =>
      n === 1
        ? new Response("slow down", { status: 429, headers: { "Retry-After": "2" } })
        : n === 2
        ? new Response("slow down more", { status: 429, headers: { "Retry-After": "3600" } })
        : new Response(answer(SERIES)),
    async ({ url, seen }) => {
      const delays: number[] = [];
      const retries: RetryInfo[] = [];
      const client = new ThanosClient({ url, ...fastRetries(delays) });
      const got: Series[] = [];
      const stats = await client.queryRange(HOUR, (s) => got.push(s), undefined, (info) => {
        retries.push(info);
      });
      assert.equal(seen.length, 3);
      assert.equal(stats.attempts, 3);
      assert.deepEqual(delays, [2000, 5000]);
      assert.deepEqual(retries.map((r) => r.attempt), [2, 3]);
      assert.match(retries[0]?.reason ?? "", /HTTP 429.*slow down/);
      assert.deepEqual(got, SERIES);
    },
  );
});

Deno.test("503 is retried with jittered exponential backoff, then success", async () => {
  await withServer(
    (_seen, n) =>
      n <= 2
        ? Response.json({ status: "error", errorType: "unavailable", error: "store down" }, {
          status: 503,
        })
        : new Response(answer(SERIES)),
    async ({ url, seen }) => {
      const delays: number[] = [];
      const client = new ThanosClient({ url, ...fastRetries(delays) });
      const stats = await client.queryRange(HOUR, () => {});
      assert.equal(seen.length, 3);
      assert.equal(stats.attempts, 3);
      // random() = 0.5: 0.5 * 100 * 2^0, 0.5 * 100 * 2^1
      assert.deepEqual(delays, [50, 100]);
    },
  );
});

Deno.test("a stalled body times out, onRetry resets, and the retry succeeds", async () => {
  await withServer(
    (_seen, n, server) => {
      const text = answer(SERIES);
      // First answer: the first series complete, then the body hangs.
      const cut = text.indexOf('{"metric":{"namespace":"ns-2"');
      return new Response(
        tinyChunks(text, n === 1 ? { stallAt: cut + 3, stop: server.stop } : {}),
      );
    },
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, timeoutMs: 300, ...fastRetries() });
      let got: Series[] = [];
      const reasons: string[] = [];
      const t0 = performance.now();
      const stats = await client.queryRange(HOUR, (s) => got.push(s), undefined, (info) => {
        // The first series of the stalled attempt was already delivered.
        assert.equal(got.length, 1);
        reasons.push(info.reason);
        got = [];
      });
      assert.ok(performance.now() - t0 >= 290);
      assert.equal(seen.length, 2);
      assert.equal(stats.attempts, 2);
      assert.deepEqual(reasons, ["timed out after 300 ms"]);
      assert.deepEqual(got, SERIES);
    },
  );
});

Deno.test("400 fails after exactly one attempt with the server's message", async () => {
  await withServer(
    () =>
      Response.json({
        status: "error",
        errorType: "bad_data",
        error: '1:13: parse error: unexpected "}"',
      }, { status: 400 }),
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      await assert.rejects(client.queryRange(HOUR, () => {}), (error) => {
        assert.ok(error instanceof Error);
        assert.match(error.message, /HTTP 400/);
        assert.match(error.message, /bad_data: 1:13: parse error: unexpected "}"/);
        assert.match(error.message, /sum by \(pod, namespace\) \( cost:pod_usage_cpu_cores/);
        assert.match(error.message, /after 1 attempt:/);
        const cause = causeOf(error);
        assert.equal(cause.status, 400);
        assert.equal(cause.errorType, "bad_data");
        assert.equal(cause.retryable, false);
        assert.equal(cause.query, HOUR.query);
        return true;
      });
      assert.equal(seen.length, 1);
    },
  );
});

Deno.test("404, 401 and 403 are not retried", async () => {
  for (const status of [401, 403, 404]) {
    await withServer(
      () => new Response(`nope ${status}`, { status }),
      async ({ url, seen }) => {
        const client = new ThanosClient({ url, ...fastRetries() });
        await assert.rejects(client.queryRange(HOUR, () => {}), new RegExp(`HTTP ${status}.*nope`));
        assert.equal(seen.length, 1);
      },
    );
  }
});

Deno.test("422 is retried, and fails after maxAttempts naming the error", async () => {
  await withServer(
    (_seen, n) =>
      n <= 2
        ? Response.json({ status: "error", errorType: "execution", error: "query timed out" }, {
          status: 422,
        })
        : new Response(answer(SERIES)),
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      const stats = await client.queryRange(HOUR, () => {});
      assert.equal(stats.attempts, 3);
      assert.equal(seen.length, 3);
    },
  );
  await withServer(
    () =>
      Response.json({ status: "error", errorType: "execution", error: "too many samples" }, {
        status: 422,
      }),
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, maxAttempts: 4, ...fastRetries() });
      await assert.rejects(client.queryRange(HOUR, () => {}), (error) => {
        assert.match(
          (error as Error).message,
          /after 4 attempts: HTTP 422.*execution: too many samples/,
        );
        assert.equal(causeOf(error).retryable, true);
        return true;
      });
      assert.equal(seen.length, 4);
    },
  );
});

Deno.test("warnings fail the query (after retries) naming the query and the warning", async () => {
  await withServer(
    () => new Response(answer(SERIES, { warnings: ["No StoreAPIs matched for this query"] })),
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, maxAttempts: 2, ...fastRetries() });
      let resets = 0;
      await assert.rejects(
        client.queryRange(HOUR, () => {}, undefined, () => resets++),
        (error) => {
          assert.ok(error instanceof Error);
          assert.match(error.message, /No StoreAPIs matched for this query/);
          assert.match(error.message, /cost:pod_usage_cpu_cores/);
          const cause = causeOf(error);
          assert.equal(cause.kind, "warnings");
          assert.deepEqual(cause.warnings, ["No StoreAPIs matched for this query"]);
          return true;
        },
      );
      assert.equal(seen.length, 2);
      assert.equal(resets, 1);
    },
  );
});

Deno.test("an error status in a 200 answer names errorType and error", async () => {
  await withServer(
    () =>
      new Response(
        '{"status":"error","errorType":"bad_data","error":"invalid parameter \\"step\\""}',
      ),
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      await assert.rejects(
        client.queryRange(HOUR, () => {}),
        /after 1 attempt: answer status "error": bad_data: invalid parameter "step"/,
      );
      assert.equal(seen.length, 1);
    },
  );
});

Deno.test("a non-matrix answer and a non-JSON answer fail without retry", async () => {
  for (
    const [body, pattern] of [
      ['{"status":"success","data":{"resultType":"vector","result":[]}}', /"matrix", got "vector"/],
      ["<html>login</html>", /invalid query_range answer/],
      ['{"status":"success","data":{"resultType":"matrix"}}', /no "data.result"/],
    ] as const
  ) {
    await withServer(
      () => new Response(body),
      async ({ url, seen }) => {
        const client = new ThanosClient({ url, ...fastRetries() });
        await assert.rejects(client.queryRange(HOUR, () => {}), pattern);
        assert.equal(seen.length, 1);
      },
    );
  }
});

Deno.test("a body cut short and a network error are retried", async () => {
  await withServer(
    (_seen, n) => new Response(n === 1 ? answer(SERIES).slice(0, 40) : answer(SERIES)),
    async ({ url, seen }) => {
      let calls = 0;
      const flaky: typeof fetch = (input, init) =>
        ++calls === 1 ? Promise.reject(new TypeError("connection reset")) : fetch(input, init);
      const reasons: string[] = [];
      const client = new ThanosClient({ url, fetch: flaky, ...fastRetries() });
      const stats = await client.queryRange(
        HOUR,
        () => {},
        undefined,
        (i) => reasons.push(i.reason),
      );
      assert.equal(stats.attempts, 3);
      assert.equal(seen.length, 2);
      assert.match(reasons[0] ?? "", /network error: connection reset/);
      assert.match(reasons[1] ?? "", /ended early/);
    },
  );
});

Deno.test("concurrency never exceeds the limit across 20 parallel calls", async () => {
  await withServer(
    async (_seen, _n, server) => {
      server.inFlight.now++;
      server.inFlight.peak = Math.max(server.inFlight.peak, server.inFlight.now);
      await new Promise((r) => setTimeout(r, 5));
      const inner = tinyChunks(answer(SERIES)).getReader();
      // Count the request as in flight until its last byte is handed over.
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(c) {
            const next = await inner.read();
            if (next.done) {
              server.inFlight.now--;
              c.close();
            } else {
              c.enqueue(next.value);
            }
          },
        }),
      );
    },
    async ({ url, seen, inFlight }) => {
      const client = new ThanosClient({ url, concurrency: 3, ...fastRetries() });
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => {
          let count = 0;
          return client.queryRange({ ...HOUR, query: `up{i="${i}"}` }, () => count++).then((s) => {
            assert.equal(count, 3);
            return s;
          });
        }),
      );
      assert.equal(results.length, 20);
      assert.equal(seen.length, 20);
      assert.equal(inFlight.peak, 3);
      assert.equal(inFlight.now, 0);
      assert.equal(client.stats.queries, 20);
      assert.equal(client.stats.attempts, 20);
    },
  );
});

Deno.test("sleeping before a retry does not hold a concurrency slot", async () => {
  await withServer(
    (seen) =>
      seen.form.get("query") === "a"
        ? new Response("busy", { status: 503 })
        : new Response(answer(SERIES)),
    async ({ url }) => {
      let releaseSleep!: () => void;
      const sleeping = new Promise<void>((r) => releaseSleep = r);
      let sleepStarted!: () => void;
      const started = new Promise<void>((r) => sleepStarted = r);
      const clientA = new ThanosClient({
        url,
        concurrency: 1,
        random: () => 0,
        sleep: () => {
          sleepStarted();
          return sleeping;
        },
      });
      const a = clientA.queryRange({ ...HOUR, query: "a" }, () => {});
      await started;
      // While A sleeps, B (same client, same single slot) must get through.
      const b = await clientA.queryRange({ ...HOUR, query: "b" }, () => {});
      assert.equal(b.attempts, 1);
      releaseSleep();
      await assert.rejects(a, /HTTP 503/); // the server keeps answering 503 to "a"
    },
  );
});

Deno.test("the bearer token never appears in error messages", async () => {
  const token = "tok-3f9a1c7d-very-secret";
  await withServer(
    (seen) =>
      new Response(`denied for header ${seen.headers.get("authorization")}`, { status: 401 }),
    async ({ url }) => {
      const client = new ThanosClient({ url, token, ...fastRetries() });
      await assert.rejects(client.queryRange(HOUR, () => {}), (error) => {
        assert.ok(error instanceof Error);
        assert.ok(!error.message.includes(token), error.message);
        assert.ok(!JSON.stringify(error.cause).includes(token));
        assert.match(error.message, /denied for header Bearer \[redacted\]/);
        return true;
      });
    },
  );
  await withServer(
    (seen) => new Response(answer([], { warnings: [`echo ${seen.headers.get("authorization")}`] })),
    async ({ url }) => {
      const reasons: string[] = [];
      const client = new ThanosClient({ url, token, maxAttempts: 2, ...fastRetries() });
      await assert.rejects(
        client.queryRange(HOUR, () => {}, undefined, (i) => reasons.push(i.reason)),
        (error) => {
          assert.ok(!(error as Error).message.includes(token));
          assert.ok(!JSON.stringify((error as Error).cause).includes(token));
          return true;
        },
      );
      assert.ok(reasons.length === 1 && !reasons[0]?.includes(token));
    },
  );
});

Deno.test("an exception from onSeries is rethrown without retry", async () => {
  await withServer(
    () => new Response(answer(SERIES)),
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, ...fastRetries() });
      const boom = new Error("collector rejected the series");
      await assert.rejects(
        client.queryRange(HOUR, () => {
          throw boom;
        }),
        (error) => error === boom,
      );
      assert.equal(seen.length, 1);
    },
  );
});

Deno.test("the caller's signal aborts a retry sleep and a pending request", async () => {
  await withServer(
    (_seen, _n, server) =>
      new Response(tinyChunks(answer(SERIES), { stallAt: 10, stop: server.stop })),
    async ({ url, seen }) => {
      const client = new ThanosClient({ url, timeoutMs: 60_000 });
      const controller = new AbortController();
      const reason = new Error("shutting down");
      setTimeout(() => controller.abort(reason), 50);
      await assert.rejects(
        client.queryRange(HOUR, () => {}, controller.signal),
        (error) =>
          error instanceof BridgeError && error.code === "cancelled" && error.cause === reason &&
          /cancelled: shutting down/.test(error.message),
      );
      assert.equal(seen.length, 1);
    },
  );
  await withServer(
    () => new Response("down", { status: 503 }),
    async ({ url, seen }) => {
      // Real (default) sleep with a long backoff: the abort must cut it short.
      const client = new ThanosClient({ url, baseDelayMs: 60_000, random: () => 1 });
      const controller = new AbortController();
      const reason = new Error("stop now");
      const t0 = performance.now();
      const pending = client.queryRange(HOUR, () => {}, controller.signal);
      setTimeout(() => controller.abort(reason), 50);
      await assert.rejects(
        pending,
        (error) =>
          error instanceof BridgeError && error.code === "cancelled" && error.cause === reason,
      );
      assert.ok(performance.now() - t0 < 5_000);
      assert.equal(seen.length, 1);
    },
  );
});

Deno.test("options and queries are validated with clear errors", async () => {
  assert.throws(() => new ThanosClient({ url: "not a url" }), /not a valid URL: "not a url"/);
  assert.throws(() => new ThanosClient({ url: "ftp://x" }), /http or https, got "ftp:"/);
  assert.throws(() => new ThanosClient({ url: "http://u:p@x" }), /credentials/);
  assert.throws(
    () => new ThanosClient({ url: "http://x", concurrency: 0 }),
    /concurrency .* got 0/,
  );
  assert.throws(() => new ThanosClient({ url: "http://x", maxAttempts: 1.5 }), RangeError);
  assert.throws(() => new ThanosClient({ url: "http://x", clientCert: "x" }), /together/);
  const client = new ThanosClient({ url: "http://x" });
  await assert.rejects(
    client.queryRange({ ...HOUR, step: 0 }, () => {}),
    /step must be positive, got 0/,
  );
  await assert.rejects(
    client.queryRange({ ...HOUR, end: HOUR.start - 1 }, () => {}),
    /before start/,
  );
  await assert.rejects(client.queryRange({ ...HOUR, query: " " }, () => {}), TypeError);
  client.close();
  await assert.rejects(client.queryRange(HOUR, () => {}), /closed/);
});

// ---------------------------------------------------------------------------
// TLS

async function openssl(dir: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

async function hasOpenssl(): Promise<boolean> {
  try {
    const out = await new Deno.Command("openssl", {
      args: ["version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

interface Pki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A throwaway CA, a server certificate for 127.0.0.1 and a client certificate. */
async function makePki(): Promise<Pki> {
  const dir = await Deno.makeTempDir({ prefix: "thanos_client_tls_" });
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await openssl(
      dir,
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "1",
      "-subj",
      "/CN=bridge-test-ca",
    );
    await Deno.writeTextFile(
      `${dir}/server.ext`,
      "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    await Deno.writeTextFile(
      `${dir}/client.ext`,
      "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
    for (const who of ["server", "client"]) {
      await openssl(
        dir,
        "req",
        ...ec,
        "-keyout",
        `${who}.key`,
        "-out",
        `${who}.csr`,
        "-subj",
        `/CN=bridge-${who}`,
      );
      await openssl(
        dir,
        "x509",
        "-req",
        "-in",
        `${who}.csr`,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        `${who}.pem`,
        "-days",
        "1",
        "-extfile",
        `${who}.ext`,
      );
    }
    const read = (name: string) => Deno.readTextFile(`${dir}/${name}`);
    return {
      ca: await read("ca.pem"),
      serverCert: await read("server.pem"),
      serverKey: await read("server.key"),
      clientCert: await read("client.pem"),
      clientKey: await read("client.key"),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const opensslAvailable = await hasOpenssl();

Deno.test({
  name: "caCert: a server certificate from a private CA is trusted only with caCert",
  ignore: !opensslAvailable, // skipped: openssl is not on PATH to make a throwaway CA
  async fn() {
    const pki = await makePki();
    const server = Deno.serve({
      port: 0,
      hostname: "127.0.0.1",
      cert: pki.serverCert,
      key: pki.serverKey,
      onListen() {},
    }, () => new Response(answer(SERIES)));
    const url = `https://127.0.0.1:${server.addr.port}`;
    try {
      const trusted = new ThanosClient({ url, caCert: pki.ca, ...fastRetries() });
      try {
        const got: Series[] = [];
        await trusted.queryRange(HOUR, (s) => got.push(s));
        assert.deepEqual(got, SERIES);
      } finally {
        trusted.close();
      }
      const untrusted = new ThanosClient({ url, maxAttempts: 1 });
      await assert.rejects(untrusted.queryRange(HOUR, () => {}), /network error/);
      untrusted.close();
    } finally {
      await server.shutdown();
    }
  },
});

Deno.test({
  name: "mTLS: clientCert/clientKey are presented to a server that requires them",
  ignore: !opensslAvailable, // skipped: openssl is not on PATH to make a throwaway CA
  async fn() {
    const pki = await makePki();
    const subjects: string[] = [];
    // Deno.serve cannot demand client certificates; node:https can.
    const server = https.createServer({
      key: pki.serverKey,
      cert: pki.serverCert,
      ca: pki.ca,
      requestCert: true,
      rejectUnauthorized: true,
    }, (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket as unknown as {
        getPeerCertificate(): { subject?: { CN?: string } };
      };
      subjects.push(socket.getPeerCertificate().subject?.CN ?? "");
      req.resume();
      req.on("end", () => res.end(answer(SERIES)));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    const url = `https://127.0.0.1:${port}`;
    try {
      const withCert = new ThanosClient({
        url,
        caCert: pki.ca,
        clientCert: pki.clientCert,
        clientKey: pki.clientKey,
      });
      try {
        const got: Series[] = [];
        await withCert.queryRange(HOUR, (s) => got.push(s));
        assert.deepEqual(got, SERIES);
        assert.deepEqual(subjects, ["bridge-client"]);
      } finally {
        withCert.close();
      }
      const withoutCert = new ThanosClient({ url, caCert: pki.ca, maxAttempts: 1 });
      await assert.rejects(withoutCert.queryRange(HOUR, () => {}), /network error/);
      withoutCert.close();
    } finally {
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  },
});

// --- labelValues ---------------------------------------------------------------------------------

/** Runs `fn` against a loopback fake Thanos that records GET URLs and answers from `handler`. */
async function withLabelServer(
  handler: (url: URL, n: number, req: Request) => Response | Promise<Response>,
  fn: (
    base: string,
    seen: { url: URL; method: string; headers: Headers; body: string }[],
  ) => Promise<void>,
): Promise<void> {
  const seen: { url: URL; method: string; headers: Headers; body: string }[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const url = new URL(req.url);
    seen.push({
      url,
      method: req.method,
      headers: new Headers(req.headers),
      body: await req.text(),
    });
    return await handler(url, seen.length, req);
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, seen);
  } finally {
    await server.shutdown();
  }
}

const values = (data: unknown, extra: Record<string, unknown> = {}) =>
  new Response(JSON.stringify({ status: "success", data, ...extra }));

Deno.test("labelValues: GET /api/v1/label/<l>/values with match[], start, end; sorted, unique", async () => {
  await withLabelServer(
    () => values(["c-2", "c-1", "c-2", "日本"]),
    async (base, seen) => {
      const client = new ThanosClient({ url: `${base}/prefix/`, token: "s3cr3t" });
      try {
        assert.deepEqual(
          await client.labelValues(
            "clusterID",
            ["kube_node_info", 'up{job="x"}'],
            1_793_502_000,
            1_793_505_600,
          ),
          ["c-1", "c-2", "日本"],
        );
        assert.deepEqual(client.stats.queries, 1);
      } finally {
        client.close();
      }
      const { url, method, headers, body } = seen[0]!;
      assert.equal(method, "GET");
      assert.equal(body, "");
      assert.equal(url.pathname, "/prefix/api/v1/label/clusterID/values");
      assert.deepEqual(url.searchParams.getAll("match[]"), ["kube_node_info", 'up{job="x"}']);
      assert.equal(url.searchParams.get("start"), "1793502000");
      assert.equal(url.searchParams.get("end"), "1793505600");
      assert.equal(headers.get("authorization"), "Bearer s3cr3t");
      assert.equal(headers.get("content-type"), null);
    },
  );
});

Deno.test("labelValues: 503 (Retry-After) and warnings are retried; then success", async () => {
  const delays: number[] = [];
  await withLabelServer(
    (_url, n) => {
      if (n === 1) return new Response("busy", { status: 503, headers: { "Retry-After": "2" } });
      if (n === 2) return values(["a"], { warnings: ["store s1 unreachable"] });
      return values(["b", "a"]);
    },
    async (base, seen) => {
      const client = new ThanosClient({ url: base, ...fastRetries(delays) });
      assert.deepEqual(await client.labelValues("clusterID", ["up"], 0, 60), ["a", "b"]);
      assert.equal(seen.length, 3);
      assert.equal(delays[0], 2000); // Retry-After honoured
      client.close();
    },
  );
});

Deno.test("labelValues: failures are typed, name the label and never the token", async () => {
  const cases: {
    name: string;
    answer: () => Response;
    code: string;
    attempts: number;
    text: RegExp;
    options?: Partial<ThanosClientOptions>;
  }[] = [
    {
      name: "400 bad_data",
      answer: () =>
        new Response(
          JSON.stringify({ status: "error", errorType: "bad_data", error: "parse error tok3n" }),
          { status: 400 },
        ),
      code: "thanos_http",
      attempts: 1,
      text: /HTTP 400.*bad_data: parse error \[redacted\]/,
    },
    {
      name: "500 every time",
      answer: () => new Response("down", { status: 500 }),
      code: "thanos_http",
      attempts: 3,
      text: /failed after 3 attempts: HTTP 500/,
    },
    {
      name: "warnings every time",
      answer: () => values(["a"], { warnings: ["partial"] }),
      code: "thanos_warning",
      attempts: 3,
      text: /warnings.*partial/,
    },
    {
      name: "not JSON",
      answer: () => new Response("<html>proxy</html>"),
      code: "thanos_parse",
      attempts: 1,
      text: /not valid JSON/,
    },
    {
      name: "a value that is not a string",
      answer: () => values(["a", 7]),
      code: "thanos_parse",
      attempts: 1,
      text: /label value 2 is not a string/,
    },
    {
      name: "no data array",
      answer: () => values({ a: 1 }),
      code: "thanos_parse",
      attempts: 1,
      text: /no "data" array/,
    },
    {
      name: "status error with a permanent errorType",
      answer: () => new Response(JSON.stringify({ status: "error", errorType: "bad_data" })),
      code: "thanos_http",
      attempts: 1,
      text: /answer status "error": bad_data/,
    },
    {
      name: "too many values",
      answer: () => values(["a", "b", "c"]),
      code: "thanos_limit",
      attempts: 1,
      text: /--max-series/,
      options: { maxSeries: 2 },
    },
    {
      name: "a value too long",
      answer: () => values(["x".repeat(2000)]),
      code: "thanos_limit",
      attempts: 1,
      text: /--max-label-kb/,
      options: { maxLabelBytes: 1024 },
    },
    {
      name: "a body too large",
      answer: () => values(Array.from({ length: 100 }, (_, i) => `cluster-${i}`)),
      code: "thanos_limit",
      attempts: 1,
      text: /--max-answer-mb/,
      options: { maxAnswerBytes: 512 },
    },
  ];
  for (const c of cases) {
    await withLabelServer(c.answer, async (base, seen) => {
      const client = new ThanosClient({
        url: base,
        token: "tok3n",
        maxAttempts: 3,
        ...fastRetries(),
        ...c.options,
      });
      try {
        await assert.rejects(client.labelValues("clusterID", ["kube_node_info"], 0, 60), (e) => {
          assert.ok(e instanceof BridgeError, c.name);
          assert.equal(e.code, c.code, `${c.name}: ${e.message}`);
          assert.match(e.message, c.text, c.name);
          assert.match(e.message, /^label values of clusterID matching "kube_node_info" on http/);
          assert.ok(!e.message.includes("tok3n"), c.name);
          return true;
        });
        assert.equal(seen.length, c.attempts, c.name);
      } finally {
        client.close();
      }
    });
  }
});

Deno.test("labelValues: an abort is a cancelled error; bad arguments are refused", async () => {
  await withLabelServer(
    () => new Response("busy", { status: 503 }),
    async (base) => {
      const client = new ThanosClient({ url: base, baseDelayMs: 60_000, maxDelayMs: 60_000 });
      try {
        const controller = new AbortController();
        const call = client.labelValues("clusterID", ["up"], 0, 60, controller.signal);
        setTimeout(() => controller.abort(new Error("run stopped")), 50);
        await assert.rejects(
          call,
          (e) =>
            e instanceof BridgeError && e.code === "cancelled" && /run stopped/.test(e.message),
        );
        await assert.rejects(client.labelValues("cluster-id", ["up"], 0, 60), TypeError);
        await assert.rejects(client.labelValues("clusterID", [], 0, 60), TypeError);
        await assert.rejects(client.labelValues("clusterID", [" "], 0, 60), TypeError);
        await assert.rejects(client.labelValues("clusterID", ["up"], 60, 0), RangeError);
        await assert.rejects(client.labelValues("clusterID", ["up"], NaN, 0), RangeError);
      } finally {
        client.close();
      }
    },
  );
});

Deno.test("labelValues: an empty answer, including data: null, is no values", async () => {
  await withLabelServer(
    (_url, n) => n === 1 ? values([]) : values(null),
    async (base) => {
      const client = new ThanosClient({ url: base });
      try {
        assert.deepEqual(await client.labelValues("clusterID", ["up"], 0, 60), []);
        assert.deepEqual(await client.labelValues("clusterID", ["up"], 0, 60), []);
      } finally {
        client.close();
      }
    },
  );
});
