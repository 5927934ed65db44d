import assert from "node:assert/strict";
import { join } from "node:path";
import { BridgeError } from "../model.ts";
import { HCCM_CONTENT_TYPE, IngressSink, type IngressSinkOptions } from "./ingress_sink.ts";
import type { SinkPayload } from "./sink.ts";

interface Seen {
  method: string;
  path: string;
  authorization: string | null;
  contentLength: string | null;
  transferEncoding: string | null;
  field: string;
  fileName: string;
  type: string;
  bytes: Uint8Array;
}

/** A local ingress that answers with `answers` in turn (the last one repeats). */
async function withIngress(
  answers: ((seen: Seen) => Response)[],
  fn: (url: string, seen: Seen[]) => Promise<void>,
): Promise<void> {
  const seen: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const contentLength = req.headers.get("content-length");
    const transferEncoding = req.headers.get("transfer-encoding");
    const form = await req.formData();
    const entries = [...form.entries()];
    assert.equal(entries.length, 1, "exactly one form field");
    const [field, file] = entries[0]!;
    assert.ok(file instanceof File);
    const s: Seen = {
      method: req.method,
      path: new URL(req.url).pathname,
      authorization: req.headers.get("authorization"),
      contentLength,
      transferEncoding,
      field,
      fileName: file.name,
      type: file.type,
      bytes: new Uint8Array(await file.arrayBuffer()),
    };
    seen.push(s);
    return answers[Math.min(seen.length - 1, answers.length - 1)]!(s);
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}/prefix/`, seen);
  } finally {
    await server.shutdown();
  }
}

async function payload(dir: string, sizes: number[]): Promise<SinkPayload> {
  const parts = [];
  for (const [i, size] of sizes.entries()) {
    const bytes = new Uint8Array(size).map(() => Math.floor(Math.random() * 256));
    const fileName = `9a7c0d2e-1111-4222-8333-444455556666${
      sizes.length > 1 ? `-${i}` : ""
    }.tar.gz`;
    const path = join(dir, `spool-${i}`);
    await Deno.writeFile(path, bytes);
    parts.push({ path, fileName, bytes: size, sha256: "0".repeat(64) });
  }
  return {
    clusterId: "cluster-a",
    orgId: "org1",
    day: "2026-11-01",
    uuid: "9a7c0d2e-1111-4222-8333-444455556666",
    lastHour: 5,
    parts,
  };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ingress-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function sink(url: string, extra: Partial<IngressSinkOptions> = {}) {
  const sleeps: number[] = [];
  const s = new IngressSink({
    url,
    auth: { bearer: "tok-SECRET-123" },
    baseDelayMs: 100,
    random: () => 1,
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
    now: () => new Date("2026-11-01T06:10:00Z"),
    ...extra,
  });
  return { sink: s, sleeps };
}

const accepted = () =>
  new Response(JSON.stringify({ request_id: crypto.randomUUID().replaceAll("-", "") }), {
    status: 202,
  });

Deno.test("ingress: multipart POST per part, field file, file name, hccm type, exact bytes, 202", async () => {
  await withDir(async (dir) => {
    const p = await payload(dir, [70_000, 1, 300_000]);
    await withIngress([accepted], async (url, seen) => {
      const { sink: s } = sink(url);
      const { record, queued } = await s.deliver(p);
      assert.equal(queued, 0);
      assert.equal(seen.length, 3);
      for (const [i, got] of seen.entries()) {
        const part = p.parts[i]!;
        assert.equal(got.method, "POST");
        assert.equal(got.path, "/prefix/api/ingress/v1/upload");
        assert.equal(got.authorization, "Bearer tok-SECRET-123");
        assert.equal(got.field, "file");
        assert.equal(got.fileName, part.fileName);
        assert.equal(got.type, HCCM_CONTENT_TYPE);
        assert.deepEqual(got.bytes, await Deno.readFile(part.path));
        assert.equal(got.transferEncoding, null, "not chunked");
        assert.ok(Number(got.contentLength) > part.bytes);
      }
      assert.equal(record.sink, "ingress");
      assert.deepEqual(record.parts.map((x) => x.fileName), p.parts.map((x) => x.fileName));
      assert.match(record.parts[0]!.ref.location, /^[0-9a-f]{32}$/);
      assert.equal(record.deliveredAt, "2026-11-01T06:10:00.000Z");
      assert.equal(await s.has(record), true, "a stored record counts as delivered");
      assert.equal(await s.has({ ...record, sink: "dir" }), false);
      assert.deepEqual(await s.flush(), { sent: 0, pending: 0, error: null });
    });
  });
});

Deno.test("ingress: basic auth is sent as Basic base64(user:password)", async () => {
  await withDir(async (dir) => {
    const p = await payload(dir, [10]);
    await withIngress([accepted], async (url, seen) => {
      await sink(url, { auth: { basic: "user:pa:ss" } }).sink.deliver(p);
      assert.equal(seen[0]!.authorization, `Basic ${btoa("user:pa:ss")}`);
    });
  });
});

Deno.test("ingress: 500 and 503 are retried with backoff, then 202 passes", async () => {
  await withDir(async (dir) => {
    const p = await payload(dir, [5000]);
    await withIngress([
      () => new Response("boom", { status: 500 }),
      () => new Response("busy", { status: 503 }),
      accepted,
    ], async (url, seen) => {
      const { sink: s, sleeps } = sink(url);
      await s.deliver(p);
      assert.equal(seen.length, 3);
      for (const got of seen) assert.deepEqual(got.bytes, await Deno.readFile(p.parts[0]!.path));
      assert.deepEqual(sleeps, [100, 200], "capped exponential backoff (random = 1)");
    });
  });
});

Deno.test("ingress: 429 honours Retry-After (seconds and HTTP date)", async () => {
  await withDir(async (dir) => {
    const p = await payload(dir, [10]);
    await withIngress([
      () => new Response("slow down", { status: 429, headers: { "retry-after": "7" } }),
      () =>
        new Response("", {
          status: 429,
          headers: { "retry-after": "Sun, 01 Nov 2026 06:10:03 GMT" },
        }),
      accepted,
    ], async (url) => {
      const { sink: s, sleeps } = sink(url);
      await s.deliver(p);
      assert.deepEqual(sleeps, [7000, 3000]);
    });
  });
});

Deno.test("ingress: 401 fails at once with the clear message and at most 300 escaped characters", async () => {
  await withDir(async (dir) => {
    const p = await payload(dir, [10]);
    const answer = "bad token tok-SECRET-123\x1b[2J\r\n" + "x".repeat(1000);
    await withIngress([() => new Response(answer, { status: 401 })], async (url, seen) => {
      const { sink: s, sleeps } = sink(url);
      await assert.rejects(s.deliver(p), (e: unknown) => {
        assert.ok(e instanceof BridgeError);
        assert.equal(e.code, "sink_ingress");
        assert.ok(
          e.message.startsWith(
            "ingress refused the upload: 401 Unauthorized — check --ingress-token-file: bad token",
          ),
          e.message,
        );
        assert.ok(!e.message.includes("tok-SECRET-123"), "the token is redacted");
        // deno-lint-ignore no-control-regex
        assert.ok(!/[\x00-\x1f]/.test(e.message), "control characters escaped");
        assert.ok(e.message.includes("\\x1b[2J"));
        const shown = e.message.slice(e.message.indexOf(": bad token") + 2);
        assert.ok(shown.length <= 300 + 20, `answer cut: ${shown.length}`);
        return true;
      });
      assert.equal(seen.length, 1, "no retry");
      assert.deepEqual(sleeps, []);
    });
  });
});

Deno.test("ingress: 403 and 413 fail at once", async () => {
  await withDir(async (dir) => {
    const p = await payload(dir, [10]);
    await withIngress([() => new Response("nope", { status: 403 })], async (url, seen) => {
      await assert.rejects(sink(url).sink.deliver(p), /ingress refused the upload: 403 Forbidden/);
      assert.equal(seen.length, 1);
    });
    await withIngress([() => new Response("too big", { status: 413 })], async (url, seen) => {
      await assert.rejects(
        sink(url).sink.deliver(p),
        /rejected .*: 413 Payload Too Large: too big/,
      );
      assert.equal(seen.length, 1);
    });
  });
});

Deno.test("ingress: 5xx every time gives up after maxAttempts with the last answer", async () => {
  await withDir(async (dir) => {
    const p = await payload(dir, [10]);
    await withIngress([() => new Response("down", { status: 502 })], async (url, seen) => {
      const { sink: s, sleeps } = sink(url, { maxAttempts: 3 });
      await assert.rejects(s.deliver(p), (e: unknown) => {
        assert.ok(e instanceof BridgeError && e.code === "sink_ingress");
        assert.match(e.message, /failed after 3 attempts: 502 Bad Gateway: down/);
        return true;
      });
      assert.equal(seen.length, 3);
      assert.equal(sleeps.length, 2);
    });
  });
});

Deno.test("ingress: network errors are retried", async () => {
  await withDir(async (dir) => {
    const p = await payload(dir, [10]);
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    const { sink: s, sleeps } = sink(`http://127.0.0.1:${port}`, { maxAttempts: 2 });
    await assert.rejects(s.deliver(p), /failed after 2 attempts/);
    assert.equal(sleeps.length, 1);
  });
});

Deno.test("ingress: an aborted signal cancels", async () => {
  await withDir(async (dir) => {
    const p = await payload(dir, [10]);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(
      sink("http://127.0.0.1:9").sink.deliver(p, ac.signal),
      (e: unknown) => e instanceof BridgeError && e.code === "cancelled",
    );
  });
});

Deno.test("ingress: options are checked", () => {
  assert.throws(() => new IngressSink({ url: "nope", auth: null }), BridgeError);
  assert.throws(() => new IngressSink({ url: "ftp://x", auth: null }), BridgeError);
  assert.throws(() => new IngressSink({ url: "https://u:p@x", auth: null }), BridgeError);
  assert.throws(() => new IngressSink({ url: "https://x", auth: { bearer: " " } }), BridgeError);
  assert.throws(
    () => new IngressSink({ url: "https://x", auth: { basic: "nocolon" } }),
    BridgeError,
  );
  assert.equal(
    new IngressSink({ url: "https://x.example/", auth: null }).uploadUrl,
    "https://x.example/api/ingress/v1/upload",
  );
});

Deno.test("ingress: a 256 MiB tarball is streamed: RSS grows by far less than its size", async () => {
  await withDir(async (dir) => {
    const size = 256 * 1024 * 1024;
    const path = join(dir, "big.tar.gz");
    const f = await Deno.open(path, { write: true, create: true });
    const chunk = crypto.getRandomValues(new Uint8Array(65536));
    for (let i = 0; i < size / chunk.length; i++) await f.write(chunk);
    f.close();
    let received = 0;
    let peak = 0;
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      for await (const c of req.body!) {
        received += c.length;
        peak = Math.max(peak, Deno.memoryUsage().rss);
      }
      return accepted();
    });
    try {
      const before = Deno.memoryUsage().rss;
      await sink(`http://127.0.0.1:${server.addr.port}`).sink.deliver({
        clusterId: "c",
        orgId: "o",
        day: "2026-11-01",
        uuid: "u",
        lastHour: 0,
        parts: [{ path, fileName: "u.tar.gz", bytes: size, sha256: "0".repeat(64) }],
      });
      assert.ok(received > size && received < size + 1000);
      const growth = (peak - before) / 1024 / 1024;
      // Garbage chunks wait for the GC (measured: ~65 MiB), but the file is never held whole.
      assert.ok(growth < 128, `RSS grew by ${growth.toFixed(1)} MiB while sending 256 MiB`);
    } finally {
      await server.shutdown();
    }
  });
});
