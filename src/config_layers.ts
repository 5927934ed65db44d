/**
 * Where settings come from, in order of precedence: flags, `THANOS_BRIDGE_*`
 * environment variables, and an optional config file (YAML or JSON, keys are
 * the flag names: `thanos-url`, `cluster`, `s3-bucket` …). Each layer is
 * checked with a zod schema (types, unknown keys), the layers are merged, and
 * every value remembers its source, so that an error names the field and
 * where it came from. Pure, except {@linkcode readConfigFile}.
 *
 * @module
 */

import YAML from "yaml";
import { z } from "zod";
import { BOOLEAN_KEYS, type Config, ENV_VARS, flagOf, RUN_KEYS } from "./config.ts";
import { ConfigError } from "./model.ts";

/** One layer of settings. */
export interface ConfigLayer {
  /** `flag`, `env` or `file`. */
  readonly kind: "flag" | "env" | "file";
  /** For a file: its path. */
  readonly origin?: string;
  readonly values: Config;
}

/** The merged settings and the source of each. */
export interface MergedConfig {
  readonly config: Config;
  /** Words for where a setting came from, e.g. `--day`, `THANOS_BRIDGE_DAY`, `day in bridge.yaml`. */
  sourceOf(key: string): string;
}

const LIST_KEYS = new Set<keyof Config>([
  "clusters",
  "headers",
  "kafkaBrokers",
  "discovery",
  "include",
  "exclude",
]);
const NUMBER_KEYS = new Set<keyof Config>([
  "concurrency",
  "retries",
  "batchHours",
  "clusterBatch",
  "batchSeries",
  "maxAnswerMb",
  "maxSeriesKb",
  "maxLabelKb",
  "maxSeries",
  "maxSizeMb",
  "runHistory",
  "until",
]);
/** Settings a config file may not hold: one run's request, and the file itself. */
const NOT_IN_FILE = new Set<keyof Config>([...RUN_KEYS, "config"]);

/** The config-file key of a setting (its flag without `--`). */
export function fileKeyOf(key: keyof Config): string {
  return flagOf(key).slice(2);
}

const text = z.string().max(4096);
/** A `cluster` entry of the file: an id, or `{cluster_id, name?, org_id?}` (the static list). */
const clusterEntry = z.union([
  text,
  z.strictObject({
    cluster_id: text,
    name: text.optional(),
    org_id: z.union([text, z.number().int().nonnegative()]).transform(String).optional(),
  }),
]);
const fileSchema = z.strictObject(
  Object.fromEntries(
    (Object.keys(ENV_VARS) as (keyof Config)[])
      .filter((k) => !NOT_IN_FILE.has(k))
      .map((k) => {
        const schema = k === "clusters"
          ? z.union([text, z.array(clusterEntry).max(100_000)])
          : LIST_KEYS.has(k)
          ? z.union([text, z.array(text).max(100_000)])
          : BOOLEAN_KEYS.has(k)
          ? z.union([z.boolean(), text])
          : NUMBER_KEYS.has(k)
          ? z.union([z.number().int(), text])
          : text;
        return [fileKeyOf(k), schema.optional()];
      }),
  ),
);

const byFileKey = new Map(
  (Object.keys(ENV_VARS) as (keyof Config)[]).map((k) => [fileKeyOf(k), k]),
);

/**
 * Parses a config file's text (YAML, of which JSON is a subset) into
 * {@link Config} values. Unknown keys, wrong types and run-only settings
 * (`day`, `from` …) are {@linkcode ConfigError}s naming the key and the file.
 *
 * @example
 * ```ts
 * import { parseConfigFile } from "./config_layers.ts";
 * parseConfigFile("thanos-url: http://t:9090\ncluster: [a, b]\n", "bridge.yaml");
 * // { thanosUrl: "http://t:9090", clusters: ["a", "b"] }
 * ```
 */
export function parseConfigFile(source: string, path: string): Config {
  let raw: unknown;
  try {
    raw = YAML.parse(source, { maxAliasCount: 100 });
  } catch (error) {
    const why = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new ConfigError("config", path, `is not valid YAML or JSON: ${why}`);
  }
  if (raw === null || raw === undefined) return {};
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.code === "unrecognized_keys"
      ? issue.keys[0]!
      : issue.path.map(String).join(".");
    const known = byFileKey.get(key.split(".")[0]!);
    const reason = issue.code === "unrecognized_keys"
      ? known && NOT_IN_FILE.has(known)
        ? "belongs to one run, not in the config file"
        : "is not a setting"
      : key === ""
      ? "must be a mapping of settings"
      : `has the wrong type (${issue.message})`;
    throw new ConfigError("config", path, `${key === "" ? "" : `key "${key}" `}${reason}`);
  }
  const config: Record<string, unknown> = {};
  for (const [fileKey, value] of Object.entries(parsed.data)) {
    if (value === undefined) continue;
    const key = byFileKey.get(fileKey)!;
    config[key] = LIST_KEYS.has(key) && typeof value === "string"
      ? value.split(/[\s,]+/).filter((s) => s)
      : typeof value === "number"
      ? String(value)
      : value;
  }
  return config as Config;
}

/**
 * Merges layers: a flag wins over its variable, a variable over the file.
 *
 * @example
 * ```ts
 * import { mergeLayers } from "./config_layers.ts";
 * const m = mergeLayers([
 *   { kind: "file", origin: "b.yaml", values: { out: "/a", state: "/s" } },
 *   { kind: "flag", values: { out: "/b" } },
 * ]);
 * m.config.out; // "/b"
 * m.sourceOf("state"); // "state in b.yaml"
 * ```
 */
export function mergeLayers(layers: readonly ConfigLayer[]): MergedConfig {
  const rank = { file: 0, env: 1, flag: 2 } as const;
  const ordered = [...layers].sort((a, b) => rank[a.kind] - rank[b.kind]);
  const config: Record<string, unknown> = {};
  const source = new Map<string, ConfigLayer>();
  for (const layer of ordered) {
    for (const [key, value] of Object.entries(layer.values)) {
      if (value === undefined) continue;
      config[key] = value;
      source.set(key, layer);
    }
  }
  return {
    config: config as Config,
    sourceOf(key: string): string {
      const layer = source.get(key);
      const k = key as keyof Config;
      if (!ENV_VARS[k]) return key;
      if (layer?.kind === "env") return ENV_VARS[k];
      if (layer?.kind === "file") return `${fileKeyOf(k)} in ${layer.origin}`;
      return flagOf(k);
    },
  };
}

/** Reads a config file (a {@linkcode ConfigError} naming it when it cannot be read). */
export async function readConfigFile(path: string): Promise<Config> {
  let source: string;
  try {
    source = await Deno.readTextFile(path);
  } catch (error) {
    throw new ConfigError(
      "config",
      path,
      error instanceof Deno.errors.NotFound ? "does not exist" : "cannot be read",
    );
  }
  if (source.length > 1_048_576) throw new ConfigError("config", path, "is larger than 1 MiB");
  return parseConfigFile(source, path);
}
