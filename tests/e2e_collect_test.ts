/**
 * End to end against a real Prometheus loaded with the synthetic hub: the
 * `collect` entry point is run with `deno run` and the compile-time permission
 * flags, in both reduction modes, and every cell of every payload is checked
 * against the independent ground truth of tools/synth.
 */
import assert from "node:assert/strict";
import { readCsvRecords } from "../src/package/csv.ts";
import { validateManifest } from "../src/package/manifest.ts";
import { REPORTS } from "../src/collect/reports.ts";
import { RUNTIME_FLAGS } from "../src/cli/runtime_flags.ts";
import { COST_QUERIES } from "../src/collect/catalogue.ts";
import { planQueries } from "../src/collect/query_plan.ts";
import { defaultTestHub, type Hub } from "../tools/synth/model.ts";
import { APPROXIMATE_COLUMNS, compareRows, expectedReport } from "../tools/synth/ground_truth.ts";
import { prepareHub, type PrometheusServer, startPrometheus } from "../tools/synth/prometheus.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DAY = "2026-11-01";

interface RunResult {
  code: number;
  summary: {
    ok: boolean;
    queries: number;
    clusters: {
      clusterId: string;
      status: string;
      uuid: string;
      hours: number;
      lastHour: number;
      paths: string[];
      collectedHours: number[];
      rows: Record<string, number>;
    }[];
  };
  stderr: string;
}

async function collect(url: string, clusters: string[], extra: string[]): Promise<RunResult> {
  const args = [
    "run",
    ...RUNTIME_FLAGS, // exactly what `deno task compile` bakes into the binary
    `${ROOT}src/cli/main.ts`,
    "collect",
    "--thanos-url",
    url,
    "--cluster",
    clusters.join(","),
    "--day",
    DAY,
    "--json",
    ...extra,
  ];
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
    .output();
  const stderr = new TextDecoder().decode(out.stderr);
  const stdout = new TextDecoder().decode(out.stdout);
  assert.ok(stdout.trim().startsWith("{"), `no JSON summary; stderr:\n${stderr}`);
  return { code: out.code, summary: JSON.parse(stdout), stderr };
}

/** Extracts a tar.gz with the system tar and returns member name → bytes. */
async function extract(path: string): Promise<Map<string, Uint8Array>> {
  const dir = await Deno.makeTempDir({ prefix: "e2e_extract_" });
  try {
    const tar = await new Deno.Command("tar", { args: ["-xzf", path, "-C", dir] }).output();
    assert.equal(tar.code, 0, new TextDecoder().decode(tar.stderr));
    const list = await new Deno.Command("tar", { args: ["-tzf", path], stdout: "piped" }).output();
    const names = new TextDecoder().decode(list.stdout).trim().split("\n");
    const out = new Map<string, Uint8Array>();
    for (const n of names) out.set(n, await Deno.readFile(`${dir}/${n}`));
    return out;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function parseCsv(bytes: Uint8Array): Promise<string[][]> {
  const rows: string[][] = [];
  for await (const r of readCsvRecords(ReadableStream.from([bytes]))) rows.push(r);
  return rows;
}

function closeEnough(a: string, b: string, tolerance: number): boolean {
  if (a === b) return true;
  if (a === "" || b === "") return false;
  const x = Number(a), y = Number(b);
  return Math.abs(x - y) <= tolerance * Math.max(Math.abs(x), Math.abs(y));
}

/** Checks one payload against the oracle: headers, every cell of every hour, manifest rules. */
async function checkPayload(
  hub: Hub,
  clusterId: string,
  path: string,
  lastHour: number,
  checked: Map<string, number> = new Map(),
) {
  const members = await extract(path);
  const names = [...members.keys()];
  assert.equal(names.at(-1), "manifest.json", "manifest is the last member");
  const manifestText = new TextDecoder().decode(members.get("manifest.json"));
  assert.deepEqual(validateManifest(manifestText), [], "koku accepts the manifest");
  const manifest = JSON.parse(manifestText);
  assert.equal(manifest.cluster_id, clusterId);
  assert.equal(manifest.daily_reports, true);
  assert.deepEqual(manifest.files, names.slice(0, -1), "files = members");
  assert.match(
    manifest.uuid,
    /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  );
  let podHours: number[] = [];
  for (const [i, report] of REPORTS.entries()) {
    const name = `${manifest.uuid}-${report.filePrefix}-202611.${i}.csv`;
    const csv = members.get(name);
    assert.ok(csv, `member ${name}`);
    const [header, ...rows] = await parseCsv(csv);
    assert.deepEqual(header, report.header, `${report.name} header in CMMO order`);
    const approx = new Map(
      APPROXIMATE_COLUMNS.filter((c) => c.report === report.name).map((c) => [
        report.header.indexOf(c.column),
        c.relativeTolerance,
      ]),
    );
    let offset = 0;
    for (let h = 0; h <= lastHour; h++) {
      const hourStart = new Date(Date.parse(`${DAY}T00:00:00Z`) + h * 3_600_000);
      const expected = expectedReport(hub, clusterId, hourStart, report.name);
      const actual = rows.slice(offset, offset + expected.length);
      offset += expected.length;
      actual.sort(compareRows);
      assert.equal(actual.length, expected.length, `${report.name} ${h}: row count`);
      if (report.name === "pod" && expected.length > 0) podHours.push(h);
      for (const [r, exp] of expected.entries()) {
        const act = actual[r]!;
        for (const [c, want] of exp.entries()) {
          const got = act[c]!;
          const tol = approx.get(c);
          const ok = tol === undefined ? got === want : closeEnough(got, want, tol);
          assert.ok(
            ok,
            `${clusterId} ${report.name} hour ${h} row ${r} column ${report.header[c]}: ` +
              `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`,
          );
        }
      }
    }
    assert.equal(offset, rows.length, `${report.name}: no extra rows`);
    checked.set(report.name, (checked.get(report.name) ?? 0) + rows.length);
  }
  podHours = podHours.sort((a, b) => a - b);
  const first = podHours[0]!, last = podHours.at(-1)!;
  assert.equal(manifest.start, `${DAY}T${String(first).padStart(2, "0")}:00:00Z`);
  assert.equal(manifest.end, `${DAY}T${String(last).padStart(2, "0")}:59:59Z`);
  return members;
}

async function withPrometheus(
  fn: (url: string, hub: Hub, work: string) => Promise<void>,
): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "e2e_collect_" });
  let server: PrometheusServer | undefined;
  try {
    const { hub, dataDir } = await prepareHub(defaultTestHub(), work);
    server = await startPrometheus({ dataDir });
    await fn(server.url, hub, work);
  } finally {
    await server?.stop();
    await Deno.remove(work, { recursive: true });
  }
}

Deno.test({
  name: "e2e: 3 clusters × full day, both reduction modes, every cell matches the ground truth",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withPrometheus(async (url, hub, work) => {
      const ids = hub.clusters.map((c) => c.id);
      const csvs = new Map<string, Uint8Array>();
      const checked = new Map<string, number>();
      for (const mode of ["client", "server"] as const) {
        const run = await collect(url, ids, [
          "--reduce",
          mode,
          "--out",
          `${work}/out-${mode}`,
          "--state",
          `${work}/state-${mode}`,
        ]);
        assert.equal(run.code, 0, run.stderr);
        assert.ok(run.summary.ok);
        for (const c of run.summary.clusters) {
          assert.equal(c.status, "new");
          assert.equal(c.hours, 24);
          assert.equal(c.paths.length, 1);
          const members = await checkPayload(hub, c.clusterId, c.paths[0]!, 23, checked);
          for (const [name, bytes] of members) csvs.set(`${mode}/${c.clusterId}/${name}`, bytes);
        }
      }
      // client is the reference: server-side reduction must give byte-identical CSVs.
      let compared = 0;
      for (const [key, clientBytes] of csvs) {
        if (!key.startsWith("client/") || key.endsWith("/manifest.json")) continue; // date differs
        const serverBytes = csvs.get(key.replace(/^client\//, "server/"));
        assert.ok(serverBytes, `server payload has ${key}`);
        assert.deepEqual(serverBytes, clientBytes, `${key}: server and client CSVs are identical`);
        compared++;
      }
      assert.equal(compared, 3 * 6);
      // The comparison is not vacuous: every report had rows to check.
      for (const r of REPORTS) assert.ok((checked.get(r.name) ?? 0) > 0, `${r.name} rows checked`);
      console.log("rows checked per report (both modes):", Object.fromEntries(checked));
    }),
});

Deno.test({
  name: "e2e: re-runs are byte-identical with 0 queries; one more hour queries only that hour",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withPrometheus(async (url, hub, work) => {
      const id = hub.clusters[0]!.id;
      const state = ["--state", `${work}/state`];
      const first = await collect(url, [id], [...state, "--until", "22", "--out", `${work}/a`]);
      assert.equal(first.code, 0, first.stderr);
      const f = first.summary.clusters[0]!;
      assert.deepEqual([f.status, f.hours, f.lastHour], ["new", 23, 22]);
      assert.ok(first.summary.queries > 0);

      // Same window into a fresh folder: rebuilt from the state, byte for byte, no query.
      const again = await collect(url, [id], [...state, "--until", "22", "--out", `${work}/b`]);
      const g = again.summary.clusters[0]!;
      assert.equal(again.summary.queries, 0);
      assert.equal(g.uuid, f.uuid);
      assert.deepEqual(await Deno.readFile(g.paths[0]!), await Deno.readFile(f.paths[0]!));
      // Same window into the same folder: already delivered, nothing shipped.
      const same = await collect(url, [id], [...state, "--until", "22", "--out", `${work}/a`]);
      assert.equal(same.summary.clusters[0]!.status, "unchanged");
      assert.equal(same.summary.queries, 0);

      // One more hour: only hour 23 is queried (one batch in server mode), new uuid, 24 hours.
      const more = await collect(url, [id], [...state, "--until", "23", "--out", `${work}/a`]);
      const m = more.summary.clusters[0]!;
      assert.deepEqual(m.collectedHours, [23]);
      assert.equal(m.status, "new");
      assert.equal(m.hours, 24);
      assert.notEqual(m.uuid, f.uuid);
      // Server mode sends one query per aggregate (sum; max + count; count for label queries).
      const perBatch = planQueries(COST_QUERIES, {
        clusterLabel: "clusterID",
        clusterId: id,
        rateWindow: "15m",
      }).reduce((n, p) => n + p.server.length, 0);
      assert.equal(more.summary.queries, perBatch, "only hour 23 was queried");
      await checkPayload(hub, id, m.paths[0]!, 23);
    }),
});
