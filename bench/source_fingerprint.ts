/**
 * A fingerprint of the bridge's source tree, taken before and after a bench
 * run: every `collect` run is a fresh `deno run` that loads whatever is on
 * disk, so a change to `src/` during a long run would mix two versions.
 *
 * @module
 */

async function listFiles(dir: string, prefix: string, out: string[]): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory) await listFiles(path, rel, out);
    else if (entry.isFile) out.push(rel);
  }
}

/**
 * SHA-256 (first 16 hex digits) over the relative paths and contents of every
 * file under `dir`, in sorted path order.
 *
 * @example
 * ```ts ignore
 * import { sourceFingerprint } from "./source_fingerprint.ts";
 * const before = await sourceFingerprint(new URL("../src", import.meta.url).pathname);
 * ```
 */
export async function sourceFingerprint(dir: string): Promise<string> {
  const files: string[] = [];
  await listFiles(dir, "", files);
  files.sort();
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const rel of files) {
    const content = new Uint8Array(
      await crypto.subtle.digest("SHA-256", await Deno.readFile(`${dir}/${rel}`)),
    );
    parts.push(encoder.encode(`${rel}\0`), content);
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}
