/**
 * Helm for the chart tests: finds the binary (`$HELM_BIN`, else the path
 * `.ci/install_helm.sh` prints, which builds and caches helm v3.22.0 on first
 * use, else `helm` on PATH) and runs `helm lint` / `helm template` with values
 * written to a temporary file. Never skips: without helm the caller fails.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import YAML from "yaml";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The chart folder. */
export const CHART = `${ROOT}charts/thanos-bridge`;

/** A finished command. */
export interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function run(cmd: string, args: readonly string[], cwd = ROOT): Promise<Result> {
  const out = await new Deno.Command(cmd, {
    args: [...args],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { HELM_CACHE_HOME: home(), HELM_CONFIG_HOME: home(), HELM_DATA_HOME: home() },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Helm keeps its caches and config in a temporary folder, not in the user's home. */
let helmHome: string | undefined;
function home(): string {
  if (helmHome) return helmHome;
  const dir = helmHome = Deno.makeTempDirSync({ prefix: "helm_home_" });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  return dir;
}

let found: Promise<string> | undefined;

/** The helm binary, located once per process; rejects when there is none. */
export function helmBin(): Promise<string> {
  return found ??= locate();
}

async function locate(): Promise<string> {
  const tried: string[] = [];
  const fromEnv = Deno.env.get("HELM_BIN");
  if (fromEnv) {
    if (await works(fromEnv)) return fromEnv;
    tried.push(`$HELM_BIN=${fromEnv} does not run`);
  }
  const install = await run("bash", [".ci/install_helm.sh"]);
  const printed = install.stdout.trim().split("\n").pop() ?? "";
  if (install.code === 0 && printed && await works(printed)) return printed;
  tried.push(`.ci/install_helm.sh exited ${install.code}: ${install.stderr.trim().slice(-400)}`);
  if (await works("helm")) return "helm";
  tried.push("no helm on PATH");
  throw new Error(`helm is needed for the chart tests (CI installs it): ${tried.join("; ")}`);
}

async function works(bin: string): Promise<boolean> {
  try {
    const r = await run(bin, ["version", "--short"]);
    return r.code === 0 && r.stdout.startsWith("v3.");
  } catch {
    return false;
  }
}

/** Writes `values` to a temporary file; returns its path. */
async function valuesFile(values: unknown): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "chart_values_", suffix: ".yaml" });
  await Deno.writeTextFile(path, YAML.stringify(values));
  return path;
}

/** Options of one render. */
export interface RenderOptions {
  readonly namespace?: string;
  /** Extra `--api-versions` (e.g. `security.openshift.io/v1` to render for OpenShift). */
  readonly apiVersions?: readonly string[];
}

/** `helm <cmd> CHART -f values …`, values from an object. */
export async function helm(
  cmd: "lint" | "template",
  values: unknown,
  options: RenderOptions = {},
): Promise<Result> {
  const bin = await helmBin();
  const file = await valuesFile(values);
  try {
    const args = cmd === "lint"
      ? ["lint", "--strict", CHART, "-f", file]
      : ["template", "thanos-bridge", CHART, "-f", file];
    args.push("--namespace", options.namespace ?? "cost-management");
    for (const v of options.apiVersions ?? []) args.push("--api-versions", v);
    return await run(bin, args);
  } finally {
    await Deno.remove(file);
  }
}

/** A rendered Kubernetes object (loosely typed: the tests walk it). */
// deno-lint-ignore no-explicit-any
export type K8sObject = Record<string, any>;

/** Renders the chart and parses every document; throws with helm's words when it fails. */
export async function render(values: unknown, options: RenderOptions = {}): Promise<K8sObject[]> {
  const r = await helm("template", values, options);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr.trim()}`);
  return YAML.parseAllDocuments(r.stdout)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`rendered YAML does not parse: ${d.errors[0]}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((d): d is K8sObject => d !== null);
}
