/**
 * Test helper: a really small file system (a tmpfs of a few KiB) to make
 * writes fail with ENOSPC for real. Needs `mount` and the right to use it;
 * {@linkcode canMountTmpfs} tells whether this machine allows it.
 *
 * @module
 */

/** Mounts a tmpfs of `kib` KiB on a new folder, or null when mounting is not possible here. */
export async function tinyTmpfs(kib: number): Promise<string | null> {
  const dir = await Deno.makeTempDir({ prefix: "tmpfs_" });
  try {
    const out = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", `size=${kib}k`, "tmpfs", dir],
      stdout: "null",
      stderr: "null",
    }).output();
    if (out.success) return dir;
  } catch {
    // no mount(8)
  }
  await Deno.remove(dir);
  return null;
}

/** Unmounts a folder of {@linkcode tinyTmpfs} and removes it. */
export async function unmount(dir: string): Promise<void> {
  await new Deno.Command("umount", { args: [dir] }).output();
  await Deno.remove(dir, { recursive: true });
}

/** Whether a tmpfs can be mounted here (probed once). */
export async function canMountTmpfs(): Promise<boolean> {
  const probe = await tinyTmpfs(16);
  if (probe) await unmount(probe);
  return probe !== null;
}
