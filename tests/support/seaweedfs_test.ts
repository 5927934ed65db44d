import assert from "node:assert/strict";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { startSeaweedfs } from "./seaweedfs.ts";

async function portOpen(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** `kill -0`: whether a process with this PID exists. */
async function pidAlive(pid: number): Promise<boolean> {
  const out = await new Deno.Command("kill", { args: ["-0", String(pid)], stderr: "null" })
    .output();
  return out.success;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

function client(endpoint: string, accessKeyId: string, secretAccessKey: string): S3Client {
  return new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: 1,
  });
}

Deno.test({
  name: "startSeaweedfs: S3 with SigV4 checked; stop() leaves no process, port, folder or socket",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const s3 = await startSeaweedfs({ bucket: "harness" });
    const port = s3.port;
    assert.equal(s3.endpoint, `http://127.0.0.1:${port}`);
    const good = client(s3.endpoint, s3.accessKeyId, s3.secretAccessKey);
    const bad = client(s3.endpoint, s3.accessKeyId, s3.secretAccessKey + "x");
    try {
      assert.match(s3.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(s3.bucket, "harness");
      await good.send(new PutObjectCommand({ Bucket: "harness", Key: "a/b.txt", Body: "hello" }));
      const got = await good.send(new GetObjectCommand({ Bucket: "harness", Key: "a/b.txt" }));
      assert.equal(await got.Body!.transformToString(), "hello");
      await assert.rejects(
        bad.send(new GetObjectCommand({ Bucket: "harness", Key: "a/b.txt" })),
        (e: unknown) => {
          assert.ok(e instanceof Error);
          assert.equal(e.name, "SignatureDoesNotMatch");
          return true;
        },
      );
      assert.ok(await pidAlive(s3.pid));
      assert.ok(s3.sockets.length > 0);
      const present = [];
      for (const s of s3.sockets) if (await exists(s)) present.push(s);
      assert.ok(present.length > 0, "weed made its gRPC sockets in /tmp");
    } finally {
      good.destroy();
      bad.destroy();
      await s3.stop();
    }
    assert.equal(await portOpen(port), false, "port closed");
    assert.equal(await pidAlive(s3.pid), false, "process gone");
    assert.equal(await exists(s3.dir), false, "temp dir gone");
    for (const s of s3.sockets) assert.equal(await exists(s), false, `${s} removed`);
    await s3.stop(); // twice is fine
  },
});
