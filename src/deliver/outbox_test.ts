import assert from "node:assert/strict";
import { join } from "node:path";
import { BridgeError } from "../model.ts";
import { flushOutbox, Outbox, type OutboxMessage } from "./outbox.ts";

function message(i: number, urlExpiresAt = "2030-01-01T00:00:00.000Z"): OutboxMessage {
  return {
    topic: "platform.upload.announce",
    key: "cluster-a",
    headers: { service: "hccm" },
    value: {
      request_id: `uuid-${i}`,
      b64_identity: "e30=",
      org_id: "org1",
      url: `http://s3.example/b/k${i}?X-Amz-Signature=old`,
      timestamp: "2026-11-01T01:00:00.000Z",
    },
    s3: { bucket: "b", key: `cluster-a/2026-11-01/k${i}.tar.gz` },
    urlExpiresAt,
  };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "outbox-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("outbox: names sort oldest first, even with a frozen or backwards clock", async () => {
  await withDir(async (dir) => {
    const times = [5000, 5000, 5000, 4000, 9000, 1];
    let t = 0;
    const outbox = new Outbox(join(dir, "outbox"), () => new Date(times[t++ % times.length]!));
    const first = await outbox.put([message(0), message(1), message(2)]);
    const second = await outbox.put([message(3)]); // clock went back to 4000
    const third = await outbox.put([message(4), message(5)]); // 9000, then back to 1
    const names = await outbox.names();
    assert.deepEqual(names, [...first, ...second, ...third]);
    const ids = [];
    for (const name of names) ids.push((await outbox.read(name)).value.request_id);
    assert.deepEqual(ids, ["uuid-0", "uuid-1", "uuid-2", "uuid-3", "uuid-4", "uuid-5"]);
    assert.match(names[0]!, /^000000000005000-000000-[0-9a-f]{8}\.json$/);
  });
});

Deno.test("outbox: concurrent puts on one instance get distinct names in call order", async () => {
  await withDir(async (dir) => {
    const outbox = new Outbox(dir, () => new Date(1000));
    const results = await Promise.all([0, 1, 2, 3, 4].map((i) => outbox.put([message(i)])));
    assert.deepEqual(results.flat(), await outbox.names());
    assert.equal(new Set(results.flat()).size, 5);
  });
});

Deno.test("outbox: a file is complete JSON, no temp file stays, a crash's temp file is ignored", async () => {
  await withDir(async (dir) => {
    const outbox = new Outbox(dir);
    // A crash between write and rename leaves a dot-named temp file.
    const crashed = join(dir, ".000000000000001-000000-deadbeef.json.tmp");
    await Deno.writeTextFile(crashed, '{"topic": "platform.upl');
    const [name] = await outbox.put([message(7)]);
    assert.deepEqual(await listAll(dir), [".000000000000001-000000-deadbeef.json.tmp", name!]);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(join(dir, name!))), message(7));
    assert.deepEqual(await outbox.names(), [name]);
    // Fresh temp files are kept (a writer may be about to rename them); stale ones go.
    const sent: string[] = [];
    const opts = {
      send: (m: OutboxMessage) => {
        sent.push(m.value.request_id);
        return Promise.resolve();
      },
      presign: () => Promise.reject(new Error("no")),
      now: () => new Date("2026-11-01T00:00:00Z"),
    };
    await flushOutbox(outbox, opts);
    assert.deepEqual(sent, ["uuid-7"]);
    assert.deepEqual(await listAll(dir), [".000000000000001-000000-deadbeef.json.tmp"]);
    const old = new Date(Date.now() - 2 * 3_600_000);
    await Deno.utime(crashed, old, old);
    await flushOutbox(outbox, opts);
    assert.deepEqual(await listAll(dir), []);
  });
});

Deno.test("outbox: a put that cannot write throws sink_kafka naming the folder", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "not-a-dir");
    await Deno.writeTextFile(file, "");
    const outbox = new Outbox(file);
    await assert.rejects(outbox.put([message(1)]), (e: unknown) => {
      assert.ok(e instanceof BridgeError);
      assert.equal(e.code, "sink_kafka");
      assert.match(e.message, /not-a-dir/);
      return true;
    });
    await assert.rejects(new Outbox(join(dir, "x")).put([{} as OutboxMessage]), TypeError);
  });
});

Deno.test("flushOutbox: oldest first, each file removed only after its ack, stops at the first failure", async () => {
  await withDir(async (dir) => {
    const outbox = new Outbox(dir);
    const names = await outbox.put([0, 1, 2, 3].map((i) => message(i)));
    const seen: string[] = [];
    let failOn = "uuid-2";
    const send = async (m: OutboxMessage) => {
      // The file of the message being sent is still there, and every older one is gone.
      const index = Number(m.value.request_id.slice(5));
      assert.deepEqual(await outbox.names(), names.slice(index));
      seen.push(m.value.request_id);
      if (m.value.request_id === failOn) throw new Error("broker 127.0.0.1:9 down");
    };
    const opts = {
      send,
      presign: () => Promise.reject(new Error("unused")),
      now: () => new Date("2026-11-01T00:00:00Z"),
    };
    const r1 = await flushOutbox(outbox, opts);
    assert.deepEqual(seen, ["uuid-0", "uuid-1", "uuid-2"]);
    assert.equal(r1.sent, 2);
    assert.equal(r1.pending, 2);
    assert.equal(r1.error?.code, "sink_kafka");
    assert.match(r1.error!.message, /broker 127\.0\.0\.1:9 down/);
    assert.deepEqual(await outbox.names(), names.slice(2));
    failOn = "";
    seen.length = 0;
    const r2 = await flushOutbox(outbox, opts);
    assert.deepEqual(seen, ["uuid-2", "uuid-3"]);
    assert.deepEqual(r2, { sent: 2, pending: 0, error: null });
    assert.deepEqual(await listAll(dir), []);
  });
});

Deno.test("flushOutbox: presigns again a URL that expires within the hour or has expired", async () => {
  await withDir(async (dir) => {
    const now = new Date("2026-11-01T12:00:00.000Z");
    const outbox = new Outbox(dir);
    await outbox.put([
      message(0, "2026-11-02T12:00:00.000Z"), // 24 h left: kept
      message(1, "2026-11-01T13:00:01.000Z"), // just over an hour: kept
      message(2, "2026-11-01T12:59:59.000Z"), // under an hour: new URL
      message(3, "2026-11-01T11:00:00.000Z"), // expired: new URL
    ]);
    const presigned: string[] = [];
    const sent: OutboxMessage[] = [];
    const r = await flushOutbox(outbox, {
      now: () => now,
      presign: (bucket, key) => {
        presigned.push(`${bucket}/${key}`);
        return Promise.resolve({
          url: `http://s3.example/${bucket}/${key}?X-Amz-Signature=new`,
          expiresAt: new Date(now.getTime() + 86_400_000),
        });
      },
      send: (m) => {
        sent.push(m);
        return Promise.resolve();
      },
    });
    assert.deepEqual(r, { sent: 4, pending: 0, error: null });
    assert.deepEqual(presigned, [
      "b/cluster-a/2026-11-01/k2.tar.gz",
      "b/cluster-a/2026-11-01/k3.tar.gz",
    ]);
    assert.deepEqual(sent.map((m) => m.value.url.split("=").at(-1)), ["old", "old", "new", "new"]);
    assert.equal(sent[3]!.urlExpiresAt, "2026-11-02T12:00:00.000Z");
    // Everything else of the message is unchanged.
    assert.deepEqual({ ...sent[3]!, value: { ...sent[3]!.value, url: "" }, urlExpiresAt: "" }, {
      ...message(3),
      value: { ...message(3).value, url: "" },
      urlExpiresAt: "",
    });
  });
});

Deno.test("flushOutbox: a failing presign stops the flush like a failing send", async () => {
  await withDir(async (dir) => {
    const outbox = new Outbox(dir);
    await outbox.put([message(0, "2000-01-01T00:00:00.000Z"), message(1)]);
    let sends = 0;
    const r = await flushOutbox(outbox, {
      now: () => new Date(),
      presign: () => Promise.reject(new BridgeError("sink_s3", "no credentials")),
      send: () => {
        sends++;
        return Promise.resolve();
      },
    });
    assert.equal(sends, 0);
    assert.deepEqual(r, {
      sent: 0,
      pending: 2,
      error: { code: "sink_s3", message: "no credentials" },
    });
  });
});

Deno.test("flushOutbox: an unreadable file is moved aside and reported, the rest still goes", async () => {
  await withDir(async (dir) => {
    const outbox = new Outbox(dir);
    const [a, b, c] = await outbox.put([message(0), message(1), message(2)]);
    await Deno.writeTextFile(join(dir, b!), "{ not json");
    const sent: string[] = [];
    const r = await flushOutbox(outbox, {
      now: () => new Date(),
      presign: () => Promise.reject(new Error("unused")),
      send: (m) => {
        sent.push(m.value.request_id);
        return Promise.resolve();
      },
    });
    assert.deepEqual(sent, ["uuid-0", "uuid-2"]);
    assert.equal(r.sent, 2);
    assert.equal(r.pending, 0);
    assert.equal(r.error?.code, "state_corrupt");
    assert.match(r.error!.message, /\.corrupt$/);
    assert.deepEqual(await listAll(dir), [`${b}.corrupt`]);
    assert.ok(a && c);
  });
});

Deno.test("flushOutbox: an aborted signal stops before the next message", async () => {
  await withDir(async (dir) => {
    const outbox = new Outbox(dir);
    await outbox.put([message(0), message(1)]);
    const ac = new AbortController();
    const r = await flushOutbox(outbox, {
      now: () => new Date(),
      presign: () => Promise.reject(new Error("unused")),
      send: () => {
        ac.abort();
        return Promise.resolve();
      },
      signal: ac.signal,
    });
    assert.deepEqual(r, {
      sent: 1,
      pending: 1,
      error: { code: "cancelled", message: "cancelled" },
    });
  });
});

Deno.test("flushOutbox: a missing folder is an empty outbox", async () => {
  const r = await flushOutbox(new Outbox("/nonexistent/outbox/folder"), {
    now: () => new Date(),
    presign: () => Promise.reject(new Error("unused")),
    send: () => Promise.reject(new Error("unused")),
  });
  assert.deepEqual(r, { sent: 0, pending: 0, error: null });
});
