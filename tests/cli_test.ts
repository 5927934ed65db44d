/**
 * CLI-level tests against a local fake Thanos: exit codes, partial failure,
 * usage errors, JSON summary, and idempotent re-runs.
 */
import assert from "node:assert/strict";
import { type CliIo, main } from "../src/cli/main.ts";

interface Captured extends CliIo {
  out: string;
  err: string;
}

function io(env: Record<string, string> = {}): Captured {
  const c: Captured = {
    out: "",
    err: "",
    stdout: (t) => void (c.out += t),
    stderr: (t) => void (c.err += t),
    stderrIsTerminal: false,
    env: { HOME: "/nonexistent", ...env },
    now: () => new Date("2026-11-23T12:00:00Z"),
  };
  return c;
}

/** Answers every query; cluster "bad" always gets HTTP 503. */
function fakeThanos() {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const form = new URLSearchParams(await req.text());
    const query = form.get("query") ?? "";
    seen.push(query);
    if (query.includes('clusterID="bad"')) return new Response("overloaded", { status: 503 });
    const start = Number(form.get("start"));
    const end = Number(form.get("end"));
    const step = Number(form.get("step"));
    const result = [];
    if (query.includes("kube_node_role{")) {
      const values = [];
      for (let t = start; t <= end; t += step) values.push([t, step === 60 ? "1" : "60"]);
      result.push({ metric: { node: "n1", role: "worker" }, values });
    }
    return Response.json({ status: "success", data: { resultType: "matrix", result } });
  });
  const { port } = server.addr as Deno.NetAddr;
  return { url: `http://127.0.0.1:${port}`, seen, close: () => server.shutdown() };
}

/** `collect` flags for the fake Thanos; `extra` is appended. */
function collectArgs(
  url: string,
  dir: string,
  opts: { cluster: string; until: string; out?: string },
  ...extra: string[]
): string[] {
  return [
    "collect",
    "--thanos-url",
    url,
    "--cluster",
    opts.cluster,
    "--day",
    "2026-11-01",
    "--until",
    opts.until,
    "--out",
    opts.out ?? `${dir}/out`,
    "--state",
    `${dir}/state`,
    ...extra,
  ];
}

async function withDirs(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "cli_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("one failing cluster does not stop the others; exit code 1", async () => {
  const thanos = fakeThanos();
  try {
    await withDirs(async (dir) => {
      const c = io();
      const code = await main(
        collectArgs(
          thanos.url,
          dir,
          { cluster: "good,bad", until: "2" },
          "--retries",
          "2",
          "--json",
        ),
        c,
      );
      assert.equal(code, 1, c.err);
      const summary = JSON.parse(c.out);
      assert.equal(summary.ok, false);
      const [good, bad] = summary.clusters;
      assert.equal(good.clusterId, "good");
      assert.equal(good.status, "new");
      assert.equal(good.hours, 3);
      assert.equal(good.rows.node, 3);
      assert.equal(good.paths.length, 1);
      assert.ok((await Deno.stat(good.paths[0])).size > 0);
      assert.equal(bad.status, "none");
      assert.deepEqual(bad.failedHours.map((f: { hour: number }) => f.hour), [0, 1, 2]);
      assert.match(bad.failedHours[0].error, /503/);
      assert.ok(!thanos.seen.some((q) => q.includes('clusterID="good"') && q.includes("bad")));
    });
  } finally {
    await thanos.close();
  }
});

Deno.test("a second run of the same window sends no query and ships nothing new", async () => {
  const thanos = fakeThanos();
  try {
    await withDirs(async (dir) => {
      const args = (out: string) =>
        collectArgs(thanos.url, dir, { cluster: "good", until: "1", out }, "--json");
      const first = io();
      assert.equal(await main(args(`${dir}/out1`), first), 0, first.err);
      const sent = thanos.seen.length;
      assert.ok(sent > 0);
      const again = io();
      assert.equal(await main(args(`${dir}/out1`), again), 0, again.err);
      assert.equal(thanos.seen.length, sent, "no query on a re-run");
      const s1 = JSON.parse(first.out).clusters[0];
      const s2 = JSON.parse(again.out).clusters[0];
      assert.equal(s2.status, "unchanged");
      assert.equal(s2.uuid, s1.uuid);
      // Into a fresh folder the same payload is rebuilt from the state, byte for byte.
      const third = io();
      assert.equal(await main(args(`${dir}/out2`), third), 0, third.err);
      const s3 = JSON.parse(third.out).clusters[0];
      assert.equal(s3.status, "new");
      assert.equal(JSON.parse(third.out).queries, 0);
      assert.deepEqual(await Deno.readFile(s3.paths[0]), await Deno.readFile(s1.paths[0]));
    });
  } finally {
    await thanos.close();
  }
});

Deno.test("usage errors exit 2 and name the bad value", async () => {
  const cases: [string[], RegExp][] = [
    [
      [
        "collect",
        "--cluster",
        "c",
        "--out",
        "o",
        "--thanos-url",
        "http://x",
        "--day",
        "2026-13-01",
      ],
      /--day must be a real date as YYYY-MM-DD, got "2026-13-01"/,
    ],
    [["collect", "--cluster", "c", "--out", "o"], /--thanos-url is required/],
    [
      ["collect", "--cluster", "c", "--out", "o", "--thanos-url", "http://x", "--reduce", "fast"],
      /fast/,
    ],
    [[
      "collect",
      "--cluster",
      "c",
      "--out",
      "o",
      "--thanos-url",
      "http://x",
      "--token-file",
      "/nonexistent/t",
    ], /--token-file \/nonexistent\/t: cannot read the file/],
    [["frobnicate"], /unknown command 'frobnicate'/],
  ];
  for (const [args, re] of cases) {
    const c = io();
    assert.equal(await main(args, c), 2, args.join(" "));
    assert.match(c.err, re);
  }
});

Deno.test("environment variables configure the run", async () => {
  const c = io({ THANOS_BRIDGE_CLUSTER: "c1", THANOS_BRIDGE_OUT: "o", THANOS_BRIDGE_DAY: "nope" });
  assert.equal(await main(["collect", "--thanos-url", "http://x"], c), 2);
  assert.match(c.err, /--day must be a real date as YYYY-MM-DD, got "nope"/);
});

Deno.test("--help and --version exit 0", async () => {
  const h = io();
  assert.equal(await main(["collect", "--help"], h), 0);
  assert.match(h.out, /--thanos-url <url>/);
  assert.match(h.out, /THANOS_BRIDGE_THANOS_URL/);
  const v = io();
  assert.equal(await main(["--version"], v), 0);
  assert.match(v.out, /^\d+\.\d+\.\d+/);
});

Deno.test("progress on a terminal's stderr; text summary on stdout", async () => {
  const thanos = fakeThanos();
  try {
    await withDirs(async (dir) => {
      const c = { ...io(), stderrIsTerminal: true };
      const captured = io();
      c.stdout = captured.stdout;
      c.stderr = captured.stderr;
      const code = await main(collectArgs(thanos.url, dir, { cluster: "good", until: "1" }), c);
      assert.equal(code, 0, captured.err);
      assert.match(captured.err, /\[1 hours\] good 2026-11-01 00:00 ok/);
      assert.match(captured.err, /\[2 hours\] good 2026-11-01 01:00 ok/);
      assert.match(
        captured.out,
        /cluster good {2}day 2026-11-01 {2}hours 00–01 \(2\) {2}payload: new/,
      );
      assert.match(captured.out, /rows {3}namespace=0 node=2 gpu=0 pod=0 storage=0 vm=0/);
      assert.match(captured.out, /^ok: 1 cluster\(s\), \d+ queries/m);
    });
  } finally {
    await thanos.close();
  }
});
