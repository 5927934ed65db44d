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
 * - `--v8-flags`: a 512 MiB heap limit, sized like a sidecar's memory budget,
 *   instead of V8's default derived from the host's RAM (which lets the heap
 *   grow far past what the data needs), and a 4 MiB young generation, which
 *   keeps short-lived sample garbage from inflating RSS. Override at run time
 *   with `DENO_V8_FLAGS`, e.g. for a cluster so large that one `--batch-hours`
 *   batch needs more.
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
  "--v8-flags=--max-old-space-size=512,--max-semi-space-size=4",
];
