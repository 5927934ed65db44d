/**
 * The container image's rules, checked on the Dockerfile itself (no container
 * engine runs in CI, so the image is never built there): a multi-stage build
 * on the pinned official Deno image, `deno compile` with the program's
 * permissions narrowed to the image's paths (and nothing more), a minimal
 * glibc runtime stage that runs as a non-root user with only the state volume
 * writable, OCI labels, the Kubernetes health note, and the RUN scripts pass
 * shellcheck.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { RUNTIME_FLAGS } from "../src/cli/runtime_flags.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DENO_VERSION = "2.9.6";

/** One instruction: keyword, its arguments (continuations joined), and the comments above it. */
interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}

/** Parses a Dockerfile: joins `\` continuations, drops comments (also inside continuations). */
export function parseDockerfile(text: string): { instructions: Instruction[]; comments: string } {
  const instructions: Instruction[] = [];
  const comments: string[] = [];
  let pending: { text: string; line: number } | null = null;
  text.split("\n").forEach((raw, i) => {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line)) {
      comments.push(line.replace(/^\s*#\s?/, ""));
      return;
    }
    if (pending === null && line.trim() === "") return;
    const continued = line.endsWith("\\");
    const body = continued ? line.slice(0, -1) : line;
    pending = pending ? { text: `${pending.text} ${body.trim()}`, line: pending.line } : {
      text: body.trim(),
      line: i + 1,
    };
    if (!continued) {
      const m = /^(\S+)\s*(.*)$/.exec(pending.text)!;
      instructions.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: pending.line });
      pending = null;
    }
  });
  assert.equal(pending, null, "the Dockerfile ends inside a continuation");
  return { instructions, comments: comments.join("\n") };
}

const text = await Deno.readTextFile(`${ROOT}Dockerfile`);
const { instructions, comments } = parseDockerfile(text);
const stages: Instruction[][] = [];
const globalArgs = new Map<string, string>();
for (const ins of instructions) {
  if (ins.op === "FROM") stages.push([]);
  if (stages.length === 0) {
    if (ins.op === "ARG") {
      const [k, v = ""] = ins.args.split("=", 2);
      globalArgs.set(k!, v.replace(/^"|"$/g, ""));
    }
    continue;
  }
  stages.at(-1)!.push(ins);
}
const resolve = (s: string) =>
  s.replace(/\$\{?([A-Z_]+)\}?/g, (_, k: string) => globalArgs.get(k) ?? `<${k}>`);
const fromOf = (stage: Instruction[]) => resolve(stage[0]!.args.split(/\s+/)[0]!);
const build = stages[0]!;
const runtime = stages.at(-1)!;
const compile = build.find((i) => i.op === "RUN" && /\bdeno compile\b/.test(i.args));

/** The `--allow-*` flags of the compile command, with `${net}` (the scoped or open net flag). */
function compileFlags(): Map<string, string | true> {
  assert.ok(compile, "a RUN with deno compile in the build stage");
  const flags = new Map<string, string | true>();
  for (const m of compile.args.matchAll(/"?(--[a-z0-9-]+)(?:=([^\s"]+))?"?/g)) {
    flags.set(m[1]!, m[2] ?? true);
  }
  return flags;
}

Deno.test("Dockerfile: multi-stage on the pinned official Deno image", async () => {
  assert.ok(stages.length >= 2, "multi-stage");
  assert.equal(fromOf(build), `denoland/deno:${DENO_VERSION}`);
  assert.match(build[0]!.args, /\bAS build$/i);
  const ci = await Deno.readTextFile(`${ROOT}.ci/run`);
  assert.match(ci, new RegExp(`^DENO_VERSION=${DENO_VERSION.replaceAll(".", "\\.")}$`, "m"));
  const install = build.find((i) => i.op === "RUN" && /deno install/.test(i.args));
  assert.match(install?.args ?? "", /--frozen/, "dependencies exactly as locked");
  assert.match(compile?.args ?? "", /deno compile --frozen/);
  assert.match(compile?.args ?? "", /--output \/out\/thanos-bridge src\/cli\/main\.ts/);
});

Deno.test("Dockerfile: deno compile narrows the program's runtime flags, nothing more", () => {
  const flags = compileFlags();
  for (const bad of ["-A", "--allow-all", "--allow-run", "--allow-ffi", "--allow-import"]) {
    assert.ok(!flags.has(bad) && !compile!.args.includes(` ${bad}`), `no ${bad}`);
  }
  // Every flag of src/cli/runtime_flags.ts is here, the same or scoped.
  for (const f of RUNTIME_FLAGS) {
    const [name, value] = f.split(/=(.*)/s) as [string, string | undefined];
    if (name === "--allow-net") continue; // through ${net}, below
    assert.ok(flags.has(name), `${name} is passed`);
    if (value !== undefined) assert.equal(flags.get(name), value, `${name} keeps its value`);
  }
  const allowed = [...flags.keys()].filter((k) => k.startsWith("--allow-")).sort();
  assert.deepEqual(allowed, [
    "--allow-env",
    "--allow-net",
    "--allow-read",
    "--allow-sys",
    "--allow-write",
  ]);
  // Net: open by default (hosts are site-specific), scoped with the ALLOW_NET build arg.
  assert.match(compile!.args, /net="--allow-net";/);
  assert.match(
    compile!.args,
    /if \[ -n "\$\{ALLOW_NET\}" \]; then net="--allow-net=\$\{ALLOW_NET\}"; fi;/,
  );
  assert.match(compile!.args, / "\$\{net\}" /);
  assert.ok(build.some((i) => i.op === "ARG" && /^ALLOW_NET=/.test(i.args)));
  // Read and write are scoped; write only to the state volume; write ⊆ read.
  const read = String(flags.get("--allow-read")).split(",");
  const write = String(flags.get("--allow-write")).split(",");
  assert.deepEqual(write, ["/var/lib/thanos-bridge"]);
  for (const w of write) assert.ok(read.includes(w), `${w} is readable too`);
  assert.deepEqual(read.sort(), [
    "/etc/thanos-bridge",
    "/var/lib/thanos-bridge",
    "/var/run/secrets",
  ]);
  // Each permission's reason is written down.
  for (const f of ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys"]) {
    assert.match(comments, new RegExp(`^\\s*${f}`, "m"), `a comment says why ${f}`);
  }
  for (const dep of ["@aws-sdk/client-s3", "kafkajs", "hono", "yaml", "tar-stream"]) {
    assert.ok(comments.includes(dep), `the permission notes name ${dep}`);
  }
  assert.match(comments, /Not granted: --allow-run/);
});

Deno.test("Dockerfile: minimal glibc runtime, non-root, read-only root with a state volume", () => {
  assert.match(
    fromOf(runtime),
    /^(gcr\.io\/distroless\/cc-debian\d+:nonroot|registry\.access\.redhat\.com\/ubi\d+\/ubi-micro(:\S+)?)$/,
  );
  const last = (op: string) => runtime.filter((i) => i.op === op).at(-1)?.args;
  const user = last("USER") ?? "";
  assert.match(user, /^[1-9][0-9]*(:0)?$/, "a numeric non-root user (group 0 for OpenShift)");
  assert.ok(!runtime.some((i) => i.op === "USER" && /^(0|root)\b/.test(i.args)));
  assert.ok(!runtime.some((i) => i.op === "RUN"), "no RUN in the runtime stage (no shell there)");
  assert.equal(last("VOLUME"), '["/var/lib/thanos-bridge"]');
  assert.equal(last("WORKDIR"), "/var/lib/thanos-bridge");
  assert.match(last("ENV") ?? "", /HOME=\/var\/lib\/thanos-bridge/);
  // glibc's malloc tuned for a smaller peak (see the comment above ENV).
  assert.match(last("ENV") ?? "", /\bMALLOC_ARENA_MAX=2\b/);
  assert.match(last("ENV") ?? "", /\bMALLOC_MMAP_THRESHOLD_=262144\b/);
  assert.equal(last("EXPOSE"), "8080");
  assert.equal(last("ENTRYPOINT"), '["/usr/local/bin/thanos-bridge"]');
  assert.equal(last("CMD"), '["serve", "--config", "/etc/thanos-bridge/config.yaml"]');
  const copies = runtime.filter((i) => i.op === "COPY").map((i) => i.args);
  assert.ok(
    copies.some((c) =>
      /--from=build .*\/out\/thanos-bridge \/usr\/local\/bin\/thanos-bridge$/.test(c)
    ),
  );
  assert.ok(copies.every((c) => c.includes("--from=build")), "only build outputs are copied");
  // The state folder is created owned by the user, group 0 writable (OpenShift's arbitrary UID).
  assert.match(compile!.args, /chown -R 65532:0 \/out\/root\/var\/lib\/thanos-bridge/);
  assert.match(compile!.args, /chmod -R g=u \/out\/root\/var\/lib\/thanos-bridge/);
  assert.equal(user.split(":")[0], "65532");
});

Deno.test("Dockerfile: OCI labels and the Kubernetes health note", () => {
  const labels = runtime.filter((i) => i.op === "LABEL").map((i) => i.args).join(" ");
  for (const key of ["title", "description", "version", "revision", "created", "base.name"]) {
    assert.match(
      labels,
      new RegExp(`org\\.opencontainers\\.image\\.${key.replace(".", "\\.")}="[^"]+"`),
    );
  }
  assert.ok(!instructions.some((i) => i.op === "HEALTHCHECK"), "Kubernetes ignores HEALTHCHECK");
  assert.match(comments, /liveness\/startup GET \/healthz/);
  assert.match(comments, /readiness\s+GET \/readyz/);
  assert.match(comments, /Not built in CI/);
});

Deno.test("Dockerfile: the chart's paths are inside the image's permissions", async () => {
  const values = YAML.parse(
    await Deno.readTextFile(`${ROOT}charts/thanos-bridge/values.yaml`),
  );
  const flags = compileFlags();
  const read = String(flags.get("--allow-read")).split(",");
  const inside = (p: string, roots: string[]) =>
    roots.some((r) => p === r || p.startsWith(`${r}/`));
  for (const p of [values.discovery.acm.tokenFile, values.discovery.acm.caFile]) {
    assert.ok(inside(p, read), `${p} is readable`);
  }
  const helpers = await Deno.readTextFile(`${ROOT}charts/thanos-bridge/templates/_helpers.tpl`);
  const dataDir = /define "thanos-bridge\.dataDir" -\}\}(\S+?)\{\{/.exec(helpers)?.[1];
  const secretsDir = /define "thanos-bridge\.secretsDir" -\}\}(\S+?)\{\{/.exec(helpers)?.[1];
  assert.deepEqual([dataDir], String(flags.get("--allow-write")).split(","));
  assert.ok(secretsDir && inside(secretsDir, read), "mounted secrets are readable");
});

Deno.test(".dockerignore sends only deno.json, deno.lock and src/ (no tests)", async () => {
  const lines = (await Deno.readTextFile(`${ROOT}.dockerignore`)).split("\n")
    .map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  assert.equal(lines[0], "*");
  const kept = lines.filter((l) => l.startsWith("!")).sort();
  assert.deepEqual(kept, ["!deno.json", "!deno.lock", "!src/"]);
  assert.ok(lines.includes("src/**/*_test.ts"));
});

Deno.test("Dockerfile: RUN scripts and .ci scripts pass shellcheck", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dockerfile_sh_" });
  try {
    const files: string[] = [];
    for (const [i, ins] of instructions.entries()) {
      if (ins.op !== "RUN" || ins.args.startsWith("[")) continue;
      const file = `${dir}/run_${i}.sh`;
      await Deno.writeTextFile(file, `#!/bin/sh\n# Dockerfile line ${ins.line}\n${ins.args}\n`);
      files.push(file);
    }
    for await (const e of Deno.readDir(`${ROOT}.ci`)) {
      if (e.name.endsWith(".sh")) files.push(`${ROOT}.ci/${e.name}`);
    }
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command("shellcheck", { args: ["-x", ...files], cwd: ROOT }).output();
    } catch (error) {
      throw new Error(`shellcheck is needed (.ci/run installs it): ${error}`);
    }
    const dec = new TextDecoder();
    assert.equal(out.code, 0, dec.decode(out.stdout) + dec.decode(out.stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
