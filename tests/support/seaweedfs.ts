/**
 * A real S3 server for tests: SeaweedFS's `weed mini` (Apache-2.0) on free
 * loopback ports, with its data in a fresh temp dir and one S3 identity, so
 * every request must carry a valid SigV4 signature. {@linkcode startSeaweedfs}
 * gets the binary from `.ci/install_seaweedfs.sh` (built once, then cached);
 * `stop()` kills it by PID and removes the temp dir and the gRPC sockets it
 * puts in `/tmp`.
 *
 * @module
 */

import { join } from "node:path";
import { DeleteObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { freePort, processStopper, runInstallScript } from "./kafka.ts";

/** A running SeaweedFS. */
export interface SeaweedfsServer {
  /** `http://127.0.0.1:<port>`: the S3 gateway. */
  readonly endpoint: string;
  /** Port of {@linkcode endpoint}. */
  readonly port: number;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Region to sign with (SeaweedFS accepts any). */
  readonly region: string;
  /** A bucket created at start-up. */
  readonly bucket: string;
  /** PID of `weed`. */
  readonly pid: number;
  /** Temp folder: data, `s3.json`, log. */
  readonly dir: string;
  /** The gRPC socket files `weed` creates in `/tmp` (removed by `stop`). */
  readonly sockets: readonly string[];
  /** Kills `weed` (SIGKILL) and removes {@linkcode dir} and {@linkcode sockets}. Safe to call twice. */
  stop(): Promise<void>;
}

/** Another name of {@linkcode SeaweedfsServer}. */
export type SeaweedServer = SeaweedfsServer;

/** Options of {@linkcode startSeaweedfs}. */
export interface StartSeaweedfsOptions {
  /** S3 port (default: a free one; pass an old one to start again at the same endpoint). */
  port?: number;
  /** Bucket to create (default `koku`). */
  bucket?: string;
  /** Milliseconds to wait until a test object can be written (default 60 000). */
  readyTimeoutMs?: number;
}

function randomText(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** Free loopback ports, all different. */
function freePorts(count: number, taken: number[] = []): number[] {
  const out: number[] = [];
  while (out.length < count) {
    const p = freePort();
    if (!out.includes(p) && !taken.includes(p)) out.push(p);
  }
  return out;
}

/**
 * Starts `weed mini` with its S3 gateway on loopback and waits until an
 * object can be written with the identity's credentials.
 *
 * @example
 * ```ts ignore
 * import { startSeaweedfs } from "./seaweedfs.ts";
 * const s3 = await startSeaweedfs();
 * try {
 *   s3.endpoint; // "http://127.0.0.1:<port>"
 * } finally {
 *   await s3.stop();
 * }
 * ```
 */
export async function startSeaweedfs(
  options: StartSeaweedfsOptions = {},
): Promise<SeaweedfsServer> {
  const weed = await runInstallScript("install_seaweedfs.sh");
  const dir = await Deno.makeTempDir({ prefix: "thanos-bridge-seaweedfs-" });
  const s3Port = options.port ?? freePort();
  const [master, masterGrpc, volume, volumeGrpc, filer, filerGrpc, s3Grpc, admin, adminGrpc] =
    freePorts(
      9,
      [s3Port],
    ) as [number, number, number, number, number, number, number, number, number];
  const sockets = [
    `/tmp/seaweedfs-master-grpc-${masterGrpc}.sock`,
    `/tmp/seaweedfs-volume-grpc-${volumeGrpc}.sock`,
    `/tmp/seaweedfs-filer-grpc-${filerGrpc}.sock`,
    `/tmp/seaweedfs-s3-grpc-${s3Grpc}.sock`,
    `/tmp/seaweedfs-admin-grpc-${adminGrpc}.sock`,
  ];
  const accessKeyId = `AK${randomText(8).toUpperCase()}`;
  const secretAccessKey = randomText(20);
  const bucket = options.bucket ?? "koku";
  const region = "us-east-1";
  let child: Deno.ChildProcess | null = null;
  const stop = processStopper(() => child, [...sockets, dir]);
  try {
    const data = join(dir, "data");
    await Deno.mkdir(data);
    const config = join(dir, "s3.json");
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        identities: [{
          name: "bridge",
          credentials: [{ accessKey: accessKeyId, secretKey: secretAccessKey }],
          actions: ["Admin", "Read", "Write", "List", "Tagging"],
        }],
      }),
    );
    const log = join(dir, "weed.log");
    const logFile = await Deno.open(log, { write: true, create: true });
    logFile.close();
    const args = [
      "mini",
      "-ip=127.0.0.1",
      "-ip.bind=127.0.0.1",
      `-dir=${data}`,
      `-master.port=${master}`,
      `-master.port.grpc=${masterGrpc}`,
      "-master.telemetry=false",
      `-volume.port=${volume}`,
      `-volume.port.grpc=${volumeGrpc}`,
      `-filer.port=${filer}`,
      `-filer.port.grpc=${filerGrpc}`,
      `-filer.localSocket=${join(dir, "filer.sock")}`,
      `-s3.port=${s3Port}`,
      `-s3.port.grpc=${s3Grpc}`,
      `-s3.localSocket=${join(dir, "s3.sock")}`,
      "-s3.port.iceberg=0",
      "-s3.port.lance=0",
      `-s3.config=${config}`,
      `-bucket=${bucket}`,
      "-webdav=false",
      "-admin.ui=false",
      `-admin.port=${admin}`,
      `-admin.port.grpc=${adminGrpc}`,
      "-admin.port.legacy=0",
      `-admin.dataDir=${join(dir, "admin")}`,
    ];
    // `exec` keeps the PID; the shell only redirects the output to the log file.
    child = new Deno.Command("bash", {
      args: ["-c", 'exec "$0" "$@" >>"$WEED_LOG" 2>&1', weed, ...args],
      env: { WEED_LOG: log, TMPDIR: dir },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    let exited = false;
    child.status.then(() => exited = true);
    const client = new S3Client({
      endpoint: `http://127.0.0.1:${s3Port}`,
      region,
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      maxAttempts: 1,
    });
    const timeoutMs = options.readyTimeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    let last = "";
    try {
      for (;;) {
        if (exited) {
          const tail = await Deno.readTextFile(log).catch(() => "");
          throw new Error(`weed exited during start-up: ${tail.slice(-2000)}`);
        }
        try {
          const probe = `.ready-${randomText(4)}`;
          await client.send(
            new PutObjectCommand({ Bucket: bucket, Key: probe, Body: "ok" }),
            { abortSignal: AbortSignal.timeout(5_000) },
          );
          await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: probe }));
          break;
        } catch (e) {
          last = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        }
        if (Date.now() > deadline) throw new Error(`weed not ready after ${timeoutMs} ms: ${last}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      client.destroy();
    }
    return {
      endpoint: `http://127.0.0.1:${s3Port}`,
      port: s3Port,
      accessKeyId,
      secretAccessKey,
      region,
      bucket,
      pid: child.pid,
      dir,
      sockets,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
