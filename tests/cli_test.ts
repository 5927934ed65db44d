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

/**
 * Answers every query; cluster "bad" always gets HTTP 503. Records each
 * query and the `Accept-Encoding` it came with.
 */
function fakeThanos() {
  const seen: string[] = [];
  const encodings: (string | null)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const form = new URLSearchParams(await req.text());
    const query = form.get("query") ?? "";
    seen.push(query);
    encodings.push(req.headers.get("accept-encoding"));
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
  return { url: `http://127.0.0.1:${port}`, seen, encodings, close: () => server.shutdown() };
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
    // The fake answers range queries only (no raw reads); an `extra` --reduce comes later.
    "--reduce",
    "server",
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
      const [goodDay] = good.days;
      assert.equal(goodDay.status, "new");
      assert.equal(goodDay.hours, 3);
      assert.equal(goodDay.rows.node, 3);
      assert.equal(goodDay.refs.length, 1);
      assert.ok((await Deno.stat(goodDay.refs[0].location)).size > 0);
      const [badDay] = bad.days;
      assert.equal(badDay.status, "none");
      assert.deepEqual(badDay.failedHours.map((f: { hour: number }) => f.hour), [0, 1, 2]);
      assert.equal(badDay.failedHours[0].code, "thanos_http");
      assert.match(badDay.failedHours[0].message, /503/);
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
      const s1 = JSON.parse(first.out).clusters[0].days[0];
      const s2 = JSON.parse(again.out).clusters[0].days[0];
      assert.equal(s2.status, "unchanged");
      assert.equal(s2.uuid, s1.uuid);
      // Into a fresh folder the same payload is rebuilt from the state, byte for byte.
      const third = io();
      assert.equal(await main(args(`${dir}/out2`), third), 0, third.err);
      const s3 = JSON.parse(third.out).clusters[0].days[0];
      assert.equal(s3.status, "new");
      assert.equal(JSON.parse(third.out).queries, 0);
      assert.deepEqual(
        await Deno.readFile(s3.refs[0].location),
        await Deno.readFile(s1.refs[0].location),
      );
      // rule 6: a damaged delivered part is delivered again.
      await Deno.writeTextFile(s3.refs[0].location, "damaged");
      const fourth = io();
      assert.equal(await main(args(`${dir}/out2`), fourth), 0, fourth.err);
      const s4 = JSON.parse(fourth.out).clusters[0].days[0];
      assert.equal(s4.status, "new");
      assert.deepEqual(
        await Deno.readFile(s4.refs[0].location),
        await Deno.readFile(s1.refs[0].location),
      );
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
      /--day \(THANOS_BRIDGE_DAY\) "2026-13-01" must be a real date as YYYY-MM-DD/,
    ],
    [
      ["collect", "--cluster", "c", "--out", "o"],
      /--thanos-url \(THANOS_BRIDGE_THANOS_URL\) is required/,
    ],
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
    ], /--token-file \(THANOS_BRIDGE_TOKEN_FILE\) "\/nonexistent\/t" does not exist/],
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
  // The value came from the variable, so the message names the variable.
  assert.match(c.err, /thanos-bridge: THANOS_BRIDGE_DAY "nope" must be a real date as YYYY-MM-DD/);
});

Deno.test("Thanos answers are asked uncompressed unless --thanos-gzip or its variable says so", async () => {
  const cases: [string[], Record<string, string>, string][] = [
    [[], {}, "identity"],
    [["--thanos-gzip"], {}, "gzip"],
    [[], { THANOS_BRIDGE_THANOS_GZIP: "on" }, "gzip"],
    [[], { THANOS_BRIDGE_THANOS_GZIP: "false" }, "identity"],
  ];
  for (const [flags, env, expected] of cases) {
    const thanos = fakeThanos();
    try {
      await withDirs(async (dir) => {
        const c = io(env);
        const args = collectArgs(thanos.url, dir, { cluster: "good", until: "0" }, ...flags);
        assert.equal(await main(args, c), 0, c.err);
        assert.ok(thanos.encodings.length > 0, "queries were sent");
        const label = `${flags.join(" ")} ${JSON.stringify(env)}`;
        assert.deepEqual(new Set(thanos.encodings), new Set([expected]), label);
      });
    } finally {
      await thanos.close();
    }
  }
  const bad = io({ THANOS_BRIDGE_THANOS_GZIP: "maybe" });
  assert.equal(await main(["collect", "--thanos-url", "http://x", "--cluster", "c"], bad), 2);
  assert.match(bad.err, /THANOS_BRIDGE_THANOS_GZIP "maybe" must be true or false/);
});

Deno.test("--help and --version exit 0", async () => {
  const h = io();
  assert.equal(await main(["collect", "--help"], h), 0);
  assert.match(h.out, /--thanos-url <url>/);
  assert.match(h.out, /THANOS_BRIDGE_THANOS_URL/);
  assert.match(h.out, /--thanos-gzip +ask Thanos for gzip-compressed answers/);
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
      assert.match(captured.out, /cluster good {2}hours 2026-11-01T00 … 2026-11-01T01/);
      assert.match(captured.out, /day 2026-11-01 {2}hours 00–01 \(2\) {2}payload: new/);
      assert.match(captured.out, /rows {3}namespace=0 node=2 gpu=0 pod=0 storage=0 vm=0/);
      assert.match(captured.out, /^ok: 1 cluster\(s\), \d+ queries/m);
    });
  } finally {
    await thanos.close();
  }
});

Deno.test("rule 8: bad configuration is exit 2 before the first query, naming the value", async () => {
  const thanos = fakeThanos();
  try {
    await withDirs(async (dir) => {
      await Deno.writeTextFile(`${dir}/two-lines`, "token\nsecond\n");
      await Deno.writeTextFile(`${dir}/not-pem`, "hello\n");
      await Deno.writeTextFile(`${dir}/a-file`, "x");
      await Deno.writeTextFile(`${dir}/orgs`, "good,123\nbad line\n");
      const base = ["collect", "--thanos-url", thanos.url, "--cluster", "good"];
      const out = ["--out", `${dir}/out`, "--state", `${dir}/state`];
      const cases: [string[], Record<string, string>, RegExp][] = [
        [[...base, "--out", `${dir}/a-file`, "--state", `${dir}/s`], {}, /--out .*is not a/],
        [[...base, ...out.slice(0, 2), "--state", `${dir}/a-file/x`], {}, /--state .*is not a/],
        [[...base, ...out, "--token-file", `${dir}/two-lines`], {}, /exactly one line/],
        [[...base, ...out, "--ca-file", `${dir}/not-pem`], {}, /--ca-file .*holds no PEM/],
        [
          [...base, ...out, "--cert-file", `${dir}/not-pem`, "--key-file", `${dir}/not-pem`],
          {},
          /--cert-file .*holds no PEM certificate/,
        ],
        [[...base, ...out, "--header", "X-A: 1\r\nX-B: 2"], {}, /--header .*CR, LF or NUL/],
        [[...base, ...out, "--header", ": v"], {}, /empty header name/],
        [[...base, ...out, "--replay", `${dir}/nope`], {}, /--replay .*is not a folder/],
        [[...base, ...out], { THANOS_BRIDGE_RECOLLECT: "maybe" }, /THANOS_BRIDGE_RECOLLECT/],
        [[...base, ...out, "--day", "1999-12-31"], {}, /before 2000/],
        [[...base, ...out, "--day", "2026-12-01"], {}, /no closed hour yet/],
        [[...base, ...out, "--manifest-version", "x\x1b[31m"], {}, /commit id/],
        [
          [...base, ...out, "--org-map", `${dir}/orgs`],
          {},
          /--org-map .*orgs:2.*cluster_id,org_id/,
        ],
        [[...base, ...out, "--sink", "s3-kafka", "--s3-bucket", "b-1"], {}, /--kafka-brokers/],
      ];
      for (const [args, env, re] of cases) {
        const c = io(env);
        assert.equal(await main(args, c), 2, `${args.join(" ")}: ${c.err}`);
        assert.match(c.err, re);
        assert.ok(!c.err.includes("\x1b"), "no raw control characters");
        assert.ok(c.err.length < 400, c.err);
      }
      const long = io();
      assert.equal(await main([...base, ...out, "--cluster-label", "x-".repeat(300)], long), 2);
      assert.ok(long.err.length < 250, "at most 100 characters of a bad value are echoed");
      assert.equal(thanos.seen.length, 0, "no query was sent");
    });
  } finally {
    await thanos.close();
  }
});

/** A fake Thanos whose series carry the cluster id in `clusterID` only (for the label tests). */
function labelledThanos() {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/api/v1/series") {
      return Response.json({
        status: "success",
        data: [{ __name__: "kube_node_info", clusterID: "good", node: "n1" }],
      });
    }
    const form = new URLSearchParams(await req.text());
    const query = form.get("query") ?? "";
    seen.push(query);
    const start = Number(form.get("start"));
    const end = Number(form.get("end"));
    const step = Number(form.get("step"));
    const result = [];
    if (query.includes("kube_node_role{") && query.includes('clusterID="good"')) {
      const values = [];
      for (let t = start; t <= end; t += step) values.push([t, step === 60 ? "1" : "60"]);
      result.push({ metric: { node: "n1", role: "worker" }, values });
    }
    return Response.json({ status: "success", data: { resultType: "matrix", result } });
  });
  const { port } = server.addr as Deno.NetAddr;
  return { url: `http://127.0.0.1:${port}`, seen, close: () => server.shutdown() };
}

Deno.test("rule 1: a wrong --cluster-label is loud, hints at the right label, and a re-run with the right one fixes the day", async () => {
  const thanos = labelledThanos();
  try {
    await withDirs(async (dir) => {
      const wrong = io();
      const args = collectArgs(thanos.url, dir, { cluster: "good", until: "2" }, "--json");
      assert.equal(await main([...args, "--cluster-label", "cluster"], wrong), 1, wrong.err);
      const s1 = JSON.parse(wrong.out);
      assert.equal(s1.ok, false);
      assert.equal(s1.clusters[0].error.code, "no_data");
      assert.match(s1.clusters[0].error.message, /no node data for cluster good/);
      assert.match(s1.clusters[0].error.message, /try --cluster-label clusterID/);
      assert.equal(s1.clusters[0].days[0].status, "no-data");
      // The right label: the hours were collected with other parameters, so they are collected
      // again, with no manual clean-up, and the day gets its real data.
      const sent = thanos.seen.length;
      const right = io();
      assert.equal(await main(args, right), 0, right.err);
      const s2 = JSON.parse(right.out);
      assert.ok(thanos.seen.length > sent, "queried again");
      const day = s2.clusters[0].days[0];
      assert.deepEqual(day.collectedHours, [0, 1, 2]);
      assert.equal(day.status, "new");
      assert.equal(day.rows.node, 3);
    });
  } finally {
    await thanos.close();
  }
});

Deno.test("multi-day runs, oldest day first; then the watermark resumes where the last run stopped", async () => {
  const thanos = fakeThanos();
  try {
    await withDirs(async (dir) => {
      const base = [
        "collect",
        "--thanos-url",
        thanos.url,
        "--cluster",
        "good",
        "--out",
        `${dir}/out`,
        "--state",
        `${dir}/state`,
        "--json",
        "--reduce",
        "server",
      ];
      const first = io();
      first.now = () => new Date("2026-11-02T03:30:00Z"); // newest ready hour: 02:00
      assert.equal(
        await main([...base, "--from", "2026-11-01", "--to", "2026-11-02T01"], first),
        0,
      );
      const s1 = JSON.parse(first.out).clusters[0];
      assert.deepEqual(s1.days.map((d: { day: string }) => d.day), ["2026-11-01", "2026-11-02"]);
      assert.deepEqual(s1.days.map((d: { hours: number }) => d.hours), [24, 2]);
      assert.deepEqual(s1.days.map((d: { status: string }) => d.status), ["new", "new"]);
      assert.equal(s1.watermark, "2026-11-02T01");

      const sent = thanos.seen.length;
      const next = io();
      next.now = () => new Date("2026-11-02T04:30:00Z"); // newest ready hour: 03:00
      assert.equal(await main(base, next), 0, next.err);
      const s2 = JSON.parse(next.out).clusters[0];
      assert.equal(s2.from, "2026-11-02T02");
      assert.deepEqual(s2.days.map((d: { day: string }) => d.day), ["2026-11-02"]);
      assert.deepEqual(s2.days[0].collectedHours, [2, 3]);
      assert.equal(s2.days[0].hours, 4);
      assert.equal(s2.watermark, "2026-11-02T03");
      assert.ok(thanos.seen.length > sent);
      const perHourQueries = thanos.seen.length - sent;
      // Nothing new: no query, nothing shipped.
      const idle = io();
      idle.now = next.now;
      assert.equal(await main(base, idle), 0, idle.err);
      const s3 = JSON.parse(idle.out);
      assert.equal(s3.queries, 0);
      assert.deepEqual(s3.clusters[0].days, []);
      assert.ok(perHourQueries > 0);
      // After a long outage the catch-up is cut at --max-backfill, and the watermark moves on.
      const late = io();
      late.now = () => new Date("2026-11-20T04:30:00Z");
      assert.equal(await main([...base, "--max-backfill", "2d"], late), 0, late.err);
      const s4 = JSON.parse(late.out).clusters[0];
      assert.equal(s4.from, "2026-11-19T00");
      assert.deepEqual(s4.days.map((d: { day: string }) => d.day), ["2026-11-19", "2026-11-20"]);
      assert.equal(s4.watermark, "2026-11-20T03");
    });
  } finally {
    await thanos.close();
  }
});

Deno.test("--dry-run plans and collects but delivers nothing", async () => {
  const thanos = fakeThanos();
  try {
    await withDirs(async (dir) => {
      const c = io();
      const args = collectArgs(thanos.url, dir, { cluster: "good", until: "1" }, "--json");
      assert.equal(await main([...args, "--dry-run"], c), 0, c.err);
      const day = JSON.parse(c.out).clusters[0].days[0];
      assert.equal(day.status, "dry-run");
      assert.ok(day.bytes > 0);
      assert.ok(day.uuid);
      await assert.rejects(() => Deno.stat(`${dir}/out/good`), Deno.errors.NotFound);
      const text = io();
      assert.equal(
        await main(
          collectArgs(thanos.url, dir, { cluster: "good", until: "1" }, "--dry-run"),
          text,
        ),
        0,
      );
      assert.match(text.out, /dry run: nothing delivered/);
    });
  } finally {
    await thanos.close();
  }
});

/** A fake ingress: answers with the given statuses in turn, then 202; records each upload. */
function fakeIngress(statuses: number[]) {
  const uploads: { auth: string | null; type: string | null; file: File | null }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    if (new URL(req.url).pathname !== "/api/ingress/v1/upload") {
      return new Response("not found", { status: 404 });
    }
    const form = await req.formData();
    const file = form.get("file");
    uploads.push({
      auth: req.headers.get("authorization"),
      type: file instanceof File ? file.type : null,
      file: file instanceof File ? file : null,
    });
    const status = statuses.shift() ?? 202;
    return new Response(status === 401 ? '{"errors":[{"detail":"bad token"}]}' : "{}", { status });
  });
  const { port } = server.addr as Deno.NetAddr;
  return { url: `http://127.0.0.1:${port}`, uploads, close: () => server.shutdown() };
}

Deno.test("ingress sink: 202 passes, 500 is retried, 401 fails with a clear message and exit 1", async () => {
  const thanos = fakeThanos();
  try {
    await withDirs(async (dir) => {
      await Deno.writeTextFile(`${dir}/token`, "s3cr3t-token\n");
      const args = (state: string, ingress: string) => [
        "collect",
        "--thanos-url",
        thanos.url,
        "--cluster",
        "good",
        "--day",
        "2026-11-01",
        "--until",
        "1",
        "--state",
        `${dir}/${state}`,
        "--sink",
        "ingress",
        "--ingress-url",
        ingress,
        "--ingress-token-file",
        `${dir}/token`,
        "--json",
        "--reduce",
        "server",
      ];
      const flaky = fakeIngress([500]);
      try {
        const c = io();
        assert.equal(await main(args("s1", flaky.url), c), 0, c.err);
        const day = JSON.parse(c.out).clusters[0].days[0];
        assert.equal(day.status, "new");
        assert.equal(flaky.uploads.length, 2, "500 retried once");
        const up = flaky.uploads[1]!;
        assert.equal(up.auth, "Bearer s3cr3t-token");
        assert.equal(up.type, "application/vnd.redhat.hccm.tar+tgz");
        assert.equal(up.file?.name, `${day.uuid}.tar.gz`);
        assert.equal(up.file?.size, day.bytes);
        // Delivered once: a re-run ships nothing.
        const again = io();
        assert.equal(await main(args("s1", flaky.url), again), 0, again.err);
        assert.equal(JSON.parse(again.out).clusters[0].days[0].status, "unchanged");
        assert.equal(flaky.uploads.length, 2);
      } finally {
        await flaky.close();
      }
      const refusing = fakeIngress([401, 401, 401]);
      try {
        const c = io();
        assert.equal(await main(args("s2", refusing.url), c), 1);
        const day = JSON.parse(c.out).clusters[0].days[0];
        assert.equal(day.status, "failed");
        assert.equal(day.error.code, "sink_ingress");
        assert.match(day.error.message, /401/);
        assert.match(day.error.message, /--ingress-token-file/);
        assert.doesNotMatch(c.out + c.err, /s3cr3t-token/, "the token is never printed");
        assert.equal(refusing.uploads.length, 1, "401 is not retried");
      } finally {
        await refusing.close();
      }
    });
  } finally {
    await thanos.close();
  }
});

Deno.test("serve: a bad setting is exit 2 before anything listens, named with where it came from", async () => {
  await withDirs(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/bridge.yaml`,
      "thanos-url: http://127.0.0.1:1\nconcurrency: 0\n",
    );
    await Deno.writeTextFile(`${dir}/unknown.yaml`, "thanos-url: x\nthanos-urll: y\n");
    const base = ["serve", "--cluster", "c1", "--out", `${dir}/out`, "--state", `${dir}/state`];
    const cases: [string[], Record<string, string>, RegExp][] = [
      [
        [...base, "--config", `${dir}/bridge.yaml`],
        {},
        /concurrency in .*bridge\.yaml "0" must be/,
      ],
      [
        [...base, "--thanos-url", "http://127.0.0.1:1"],
        { THANOS_BRIDGE_CONCURRENCY: "99" },
        /^thanos-bridge: THANOS_BRIDGE_CONCURRENCY "99" must be a whole number from 1 to 64/,
      ],
      [
        [...base, "--thanos-url", "http://127.0.0.1:1", "--concurrency", "0"],
        { THANOS_BRIDGE_CONCURRENCY: "4" },
        /--concurrency \(THANOS_BRIDGE_CONCURRENCY\) "0" must be/,
      ],
      [[...base, "--config", `${dir}/unknown.yaml`], {}, /key "thanos-urll" is not a setting/],
      [
        [...base, "--config", `${dir}/missing.yaml`],
        {},
        /--config .*missing\.yaml" does not exist/,
      ],
      [
        [...base, "--thanos-url", "http://127.0.0.1:1", "--listen", "nowhere"],
        {},
        /--listen .*HOST:PORT/,
      ],
      [
        [...base, "--thanos-url", "http://127.0.0.1:1", "--schedule", "every hour"],
        {},
        /--schedule .*"every hour"/,
      ],
      [
        [...base, "--thanos-url", "http://127.0.0.1:1", "--api-token-file", `${dir}/nope`],
        {},
        /--api-token-file .* does not exist/,
      ],
    ];
    for (const [args, env, re] of cases) {
      const c = io(env);
      assert.equal(await main(args, c), 2, `${args.join(" ")}: ${c.err}`);
      assert.match(c.err, re);
    }
  });
});
