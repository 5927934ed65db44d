import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { buildHub, defaultTestHub, type HubOptions, sampleValue } from "./model.ts";
import { escapeLabelValue, formatLabels, formatValue, writeOpenMetrics } from "./openmetrics.ts";

const SMALL: HubOptions = {
  ...defaultTestHub(),
  clusters: 2,
  nodes: 3,
  pods: 7,
  pvcs: 2,
  vms: 2,
  gpuPods: 2,
  hours: 26,
};

async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

async function hashes(options: HubOptions, dir: string, hoursPerFile?: number): Promise<string[]> {
  const files = await writeOpenMetrics(buildHub(options), dir, { hoursPerFile });
  return Promise.all(files.map((f) => sha256(f)));
}

/** Inverse of the exposition escaping, for round-trip checks. */
function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const m of text.matchAll(re)) {
    out[m[1] ?? ""] = (m[2] ?? "").replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
  }
  return out;
}

Deno.test("escaping and number formatting follow the exposition format", () => {
  assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  assert.equal(escapeLabelValue("plain ü"), "plain ü");
  assert.equal(formatLabels({ z: "1", a: 'q"' }), '{a="q\\"",z="1"}');
  assert.equal(formatValue(0.1), "0.1");
  assert.equal(formatValue(1e21), "1e+21");
  assert.equal(Number(formatValue(1 / 3)), 1 / 3);
  assert.equal(formatValue(NaN), "NaN");
  assert.equal(formatValue(-Infinity), "-Inf");
});

Deno.test("same seed gives byte-identical files, another seed different ones", async () => {
  const dir = await Deno.makeTempDir({ prefix: "synth-om-" });
  try {
    const a = await hashes(SMALL, `${dir}/a`);
    const b = await hashes(SMALL, `${dir}/b`);
    const c = await hashes({ ...SMALL, seed: SMALL.seed + 1 }, `${dir}/c`);
    assert.deepEqual(a, b);
    assert.equal(a.length, c.length);
    assert.notDeepEqual(a, c);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("files are split by time, typed once per family, in order, and round-trip", async () => {
  const dir = await Deno.makeTempDir({ prefix: "synth-om-" });
  try {
    const hub = buildHub(SMALL);
    const files = await writeOpenMetrics(hub, dir, { hoursPerFile: 6 });
    // 2026-10-31T22:00Z + 26 h (to 2026-11-02T00:00Z, exclusive) touches the 6-hour windows
    // Oct 31 18–24 and Nov 1 0–6, 6–12, 12–18, 18–24.
    assert.equal(files.length, 5);
    let total = 0;
    const lastTs = new Map<string, number>();
    const byKey = new Map(
      hub.clusters.flatMap((c) => c.series.map((s) => [s.metric + formatLabels(s.labels), s])),
    );
    for (const [i, path] of files.entries()) {
      const text = await Deno.readTextFile(path);
      assert.ok(text.endsWith("# EOF\n"), path);
      const windowStart = Math.floor(hub.startMs / 21_600_000) * 21_600_000 + i * 21_600_000;
      const types = new Set<string>();
      let family = "";
      for (const line of text.split("\n")) {
        if (line === "" || line === "# EOF") continue;
        const typed = line.match(/^# TYPE (\S+) (gauge|counter)$/);
        if (typed) {
          assert.ok(!types.has(typed[1] ?? ""), `family typed twice in ${path}`);
          types.add(typed[1] ?? "");
          family = typed[1] ?? "";
          if (typed[2] === "counter") assert.ok(!family.endsWith("_total"));
          continue;
        }
        const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\}) (\S+) (\d+)$/);
        assert.ok(m, `bad line ${JSON.stringify(line)}`);
        const [, name = "", labels = "", value = "", ts = ""] = m;
        assert.ok(name === family || name === `${family}_total`, `${name} outside ${family}`);
        const seconds = Number(ts);
        assert.equal(ts.length, 10, "timestamps are in seconds");
        assert.ok(seconds * 1000 >= windowStart && seconds * 1000 < windowStart + 21_600_000);
        const key = name + labels;
        const spec = byKey.get(key);
        assert.ok(spec, `unknown series ${key}`);
        assert.deepEqual(parseLabels(labels), spec.labels);
        assert.ok((lastTs.get(key) ?? 0) < seconds, `${key} out of order`);
        lastTs.set(key, seconds);
        assert.equal(typeof Number(value), "number");
        total++;
      }
    }
    let expected = 0;
    for (const c of hub.clusters) {
      for (const s of c.series) {
        for (let k = 0; k < c.sampleCount; k++) if (sampleValue(c, s, k) !== undefined) expected++;
      }
    }
    assert.equal(total, expected);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeOpenMetrics rejects a bad hoursPerFile", async () => {
  await assert.rejects(
    writeOpenMetrics(buildHub(SMALL), "/nonexistent-dir-not-created", { hoursPerFile: 0 }),
    RangeError,
  );
});
