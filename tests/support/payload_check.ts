/**
 * Contract checks of a delivered payload for the end-to-end tests: extracts a
 * tar.gz with the system `tar`, checks the manifest against koku's rules and
 * every cell of every report hour against the independent ground truth of
 * tools/synth.
 *
 * @module
 */
import assert from "node:assert/strict";
import { REPORTS } from "../../src/collect/reports.ts";
import { readCsvRecords } from "../../src/package/csv.ts";
import { validateManifest } from "../../src/package/manifest.ts";
import type { Hub } from "../../tools/synth/model.ts";
import {
  APPROXIMATE_COLUMNS,
  compareRows,
  expectedReport,
} from "../../tools/synth/ground_truth.ts";

/** Extracts a tar.gz with the system tar and returns member name → bytes. */
export async function extract(path: string): Promise<Map<string, Uint8Array>> {
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

/** Checks one payload of `day` against the oracle: headers, every cell of every hour, manifest rules. */
export async function checkPayload(
  hub: Hub,
  clusterId: string,
  path: string,
  lastHour: number,
  day: string,
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
  // CMMO classifies a member as ROS when its name contains `ros-openshift` (contract §1).
  const csvNames = names.slice(0, -1);
  assert.deepEqual(
    manifest.files,
    csvNames.filter((n) => !n.includes("ros-openshift")),
    "files = the cost members",
  );
  const rosNames = csvNames.filter((n) => n.includes("ros-openshift"));
  assert.deepEqual(
    manifest.resource_optimization_files ?? [],
    rosNames,
    "resource_optimization_files = the ROS members",
  );
  assert.match(
    manifest.uuid,
    /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  );
  let podHours: number[] = [];
  for (const [i, report] of REPORTS.entries()) {
    const name = `${manifest.uuid}-${report.filePrefix}-${day.slice(0, 4)}${
      day.slice(5, 7)
    }.${i}.csv`;
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
      const hourStart = new Date(Date.parse(`${day}T00:00:00Z`) + h * 3_600_000);
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
  assert.equal(manifest.start, `${day}T${String(first).padStart(2, "0")}:00:00Z`);
  assert.equal(manifest.end, `${day}T${String(last).padStart(2, "0")}:59:59Z`);
  return members;
}
