/**
 * The Deno flags the program runs with: the permissions it needs and its
 * memory settings. `deno task compile` bakes exactly these into the binary and
 * `deno task cli` runs with them; `runtime_flags_test.ts` keeps deno.json in
 * step with this list.
 *
 * - `--allow-net`: Thanos, S3, Kafka and ingress.
 * - `--allow-read`, `--allow-write`: state folder, output folder, token/CA
 *   files, recordings.
 * - `--allow-env`: `THANOS_BRIDGE_*`, `HOME`/`XDG_CACHE_HOME`, `LOG` (read by
 *   the PromQL parser) and the standard `AWS_*` variables (S3 credentials).
 * - `--allow-sys=osRelease,hostname`: the AWS SDK reads the OS release for its
 *   user agent; the cluster lock file records the host name.
 * - `--no-code-cache`: no V8 code cache file. Deno would map a cache of
 *   compiled code for the whole module graph (AWS SDK, kafkajs, …), ~4 MiB of
 *   resident memory and the bytecode it brings, where lazy compilation of what
 *   actually runs is as fast here; nor is a cache file written next to a
 *   read-only binary.
 * - `--v8-flags`: a 512 MiB heap limit, sized like a sidecar's memory budget,
 *   instead of V8's default derived from the host's RAM (which lets the heap
 *   grow far past what the data needs), and a 4 MiB young generation, which
 *   keeps short-lived sample garbage from inflating RSS. The old generation
 *   may grow to 1.25× what a full collection left (`--heap-growing-percent`;
 *   V8's own factor, up to 2–4× for a fast collector, let a batch's garbage
 *   pile up to twice the live data), and freed heap pages go back to the
 *   system at once instead of being pooled for 8 s (`--memory-pool-timeout=0`,
 *   `--no-large-page-pool`: V8's defaults are tuned for a browser tab that
 *   comes back). Override at run time with `DENO_V8_FLAGS`, e.g. for a cluster
 *   so large that one `--batch-hours` batch needs more.
 *
 * @module
 */

/** Permission and V8 flags, in the order `deno run`/`deno compile` take them. */
export const RUNTIME_FLAGS: readonly string[] = [
  "--no-prompt",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys=osRelease,hostname",
  "--no-code-cache",
  "--v8-flags=--max-old-space-size=512,--max-semi-space-size=4,--heap-growing-percent=25,--memory-pool-timeout=0,--no-large-page-pool",
];
