/**
 * Byte-for-byte comparison of the payloads of two `collect` runs (dir sink):
 * every member of every tar.gz the summaries name, except `manifest.json`
 * (it carries the run's date), keyed by cluster, day and member name.
 *
 * @module
 */

import type { RunSummary } from "../src/service/collect_job.ts";

/** What {@linkcode compareMembers} found. */
export interface MemberComparison {
  /** Members present on both sides and compared. */
  readonly compared: number;
  /** Keys whose bytes differ, or that only one side has, sorted. */
  readonly differing: readonly string[];
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Compares two member maps (key → bytes). A key on one side only counts as
 * differing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareMembers } from "./payload_compare.ts";
 *
 * const t = (s: string) => new TextEncoder().encode(s);
 * const r = compareMembers(
 *   new Map([["c/d/a.csv", t("x")], ["c/d/b.csv", t("y")], ["c/d/only.csv", t("")]]),
 *   new Map([["c/d/a.csv", t("x")], ["c/d/b.csv", t("z")]]),
 * );
 * assert.deepEqual(r, { compared: 2, differing: ["c/d/b.csv", "c/d/only.csv"] });
 * ```
 */
export function compareMembers(
  a: ReadonlyMap<string, Uint8Array>,
  b: ReadonlyMap<string, Uint8Array>,
): MemberComparison {
  let compared = 0;
  const differing: string[] = [];
  for (const [key, bytes] of a) {
    const other = b.get(key);
    if (other === undefined) {
      differing.push(key);
      continue;
    }
    compared++;
    if (!equalBytes(bytes, other)) differing.push(key);
  }
  for (const key of b.keys()) if (!a.has(key)) differing.push(key);
  return { compared, differing: differing.sort() };
}

/** Extracts a tar.gz with the system `tar` and returns member name → bytes. */
async function extract(path: string): Promise<Map<string, Uint8Array>> {
  const dir = await Deno.makeTempDir({ prefix: "thanos_bridge_bench_extract_" });
  try {
    const tar = await new Deno.Command("tar", {
      args: ["-xzf", path, "-C", dir],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!tar.success) {
      throw new Error(`tar could not extract ${path}: ${new TextDecoder().decode(tar.stderr)}`);
    }
    const out = new Map<string, Uint8Array>();
    const walk = async (sub: string) => {
      for await (const e of Deno.readDir(`${dir}/${sub}`)) {
        const rel = sub === "" ? e.name : `${sub}/${e.name}`;
        if (e.isDirectory) await walk(rel);
        else if (e.isFile) out.set(rel, await Deno.readFile(`${dir}/${rel}`));
      }
    };
    await walk("");
    return out;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The members of every payload a run's summary names (its refs' locations,
 * as the dir sink writes them), keyed `clusterId/day/part/member`, without
 * `manifest.json`. Throws when a ref has no readable location.
 *
 * @example
 * ```ts ignore
 * import { payloadMembers } from "./payload_compare.ts";
 * const members = await payloadMembers(run.summary);
 * ```
 */
export async function payloadMembers(summary: RunSummary): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const c of summary.clusters) {
    for (const d of c.days) {
      for (const [i, ref] of d.refs.entries()) {
        const location = (ref as { location?: unknown }).location;
        if (typeof location !== "string") {
          throw new TypeError(`Payload ref of ${c.clusterId} ${d.day} has no location`);
        }
        for (const [name, bytes] of await extract(location)) {
          if (name.endsWith("manifest.json")) continue;
          out.set(`${c.clusterId}/${d.day}/${i}/${name}`, bytes);
        }
      }
    }
  }
  return out;
}
