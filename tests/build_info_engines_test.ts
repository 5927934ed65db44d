/**
 * The real servers' build info and engine semantics: Debian's Prometheus
 * 2.42, the CI's Prometheus 3.16 and a Thanos Query 0.42.5 (sidecar over a
 * Prometheus 2.42), over a tiny backfilled TSDB. All stopped by PID in
 * `finally`.
 *
 * The CI's Prometheus 3.16 and Thanos are built without release ldflags and
 * answer `"version": ""`, so {@linkcode semanticsOf} cannot tell (null) and
 * {@linkcode probeSemantics} is what finds their semantics.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fetchBuildInfo, probeSemantics, semanticsOf } from "../src/thanos/build_info.ts";
import { ThanosClient } from "../src/thanos/thanos_client.ts";
import { backfill, type PrometheusServer, startPrometheus } from "../tools/synth/prometheus.ts";
import { type EngineGroup, startPrometheus3, startThanosQuery } from "./support/engines.ts";

const PROBE_TIME = new Date("2026-11-01T03:00:00Z");

Deno.test("buildinfo and engine semantics of Prometheus 2.42, Prometheus 3.16 and Thanos Query 0.42.5", async () => {
  const work = await Deno.makeTempDir({ prefix: "thanos-bridge-buildinfo-" });
  let p2: PrometheusServer | undefined;
  const groups: EngineGroup[] = [];
  try {
    const t = PROBE_TIME.getTime() / 1000;
    const om = join(work, "tiny.om");
    await Deno.writeTextFile(
      om,
      ["# TYPE tiny gauge", `tiny 1 ${t - 60}`, `tiny 2 ${t}`, "# EOF", ""].join("\n"),
    );
    const dataDir = join(work, "data");
    await backfill([om], dataDir);
    groups.push(await startPrometheus3({ sourceDataDir: dataDir, probeTime: PROBE_TIME }));
    groups.push(
      await startThanosQuery({
        sourceDataDir: dataDir,
        probeTime: PROBE_TIME,
        engines: ["prometheus", "thanos"],
      }),
    );
    p2 = await startPrometheus({ dataDir: join(work, "p2-data") });

    const endpoints = [
      { name: "prometheus-2.42", url: p2.url },
      ...groups.flatMap((g) => g.endpoints),
    ];
    const seen: Record<string, unknown> = {};
    for (const { name, url } of endpoints) {
      const client = new ThanosClient({ url });
      try {
        const info = await fetchBuildInfo(client);
        assert.ok(info !== null, name);
        const probe = await probeSemantics(client);
        seen[name] = {
          version: info.version,
          server: info.server,
          fromVersion: semanticsOf(info)?.semantics ?? null,
          probe: probe?.semantics ?? null,
        };
      } finally {
        client.close();
      }
    }
    assert.deepEqual(seen, {
      "prometheus-2.42": {
        version: "2.42.0+ds",
        server: "prometheus",
        fromVersion: "prometheus2",
        probe: "prometheus2",
      },
      "prometheus-3.16": {
        version: "",
        server: "unknown",
        fromVersion: null,
        probe: "prometheus3",
      },
      "thanos-query": { version: "", server: "unknown", fromVersion: null, probe: "prometheus3" },
      "thanos-query/engine=thanos": {
        version: "",
        server: "unknown",
        fromVersion: null,
        probe: "prometheus3",
      },
    });
  } finally {
    await p2?.stop();
    for (const g of groups.reverse()) await g.stop();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});
