import assert from "node:assert/strict";
import {
  type BuildInfo,
  fetchBuildInfo,
  parseBuildInfo,
  PROBE_QUERY,
  PROBE_TIME,
  probeSemantics,
  semanticsOf,
} from "./build_info.ts";
import { ThanosClient } from "./thanos_client.ts";

/**
 * `GET /api/v1/status/buildinfo` answers measured on 2026-11-27 (loopback):
 * Debian's `prometheus` 2.42 package, and the CI's Prometheus 3.16 and Thanos
 * Query 0.42.5, which `.ci/install_*.sh` build with `go build` (no release
 * ldflags), so their version is empty (`prometheus --version` and `thanos
 * --version` say `version  (branch: , revision: unknown)` too). Thanos Query
 * answers with CORS headers (`Access-Control-Allow-Origin: *`); the JSON
 * fields are the same as Prometheus's.
 */
const MEASURED = {
  debianPrometheus242:
    '{"status":"success","data":{"version":"2.42.0+ds","revision":"2.42.0+ds-5+deb12u1","branch":"debian/sid","buildUser":"team+pkg-go@tracker.debian.org","buildDate":"20260604-00:58:54","goVersion":"go1.19.8"}}',
  prometheus316DevBuild:
    '{"status":"success","data":{"version":"","revision":"","branch":"","buildUser":"","buildDate":"","goVersion":"go1.26.8"}}',
  thanosQuery0425DevBuild:
    '{"status":"success","data":{"version":"","revision":"","branch":"","buildUser":"","buildDate":"","goVersion":"go1.26.8"}}',
  /** `thanos sidecar`'s HTTP port has no such endpoint. */
  thanosSidecar404: "404 page not found\n",
} as const;

/**
 * Release builds (not measured here: the CI has none), as the same code
 * answers when `github.com/prometheus/common/version` is set by the release
 * ldflags: Prometheus puts its own version, Thanos its Thanos version.
 */
const RELEASES: Record<string, [Record<string, string>, BuildInfo, string | null]> = {
  "prometheus 3.5": [
    { version: "3.5.0", revision: "8be3a9560fbdd18a94dedec4b747c35178177202" },
    {
      version: "3.5.0",
      revision: "8be3a9560fbdd18a94dedec4b747c35178177202",
      server: "prometheus",
    },
    "prometheus3",
  ],
  "prometheus 3.0 beta": [
    { version: "3.0.0-beta.0" },
    { version: "3.0.0-beta.0", server: "prometheus" },
    "prometheus3",
  ],
  "prometheus 2.55": [
    { version: "2.55.1" },
    { version: "2.55.1", server: "prometheus" },
    "prometheus2",
  ],
  "thanos 0.42.5": [{ version: "0.42.5" }, { version: "0.42.5", server: "thanos" }, "prometheus3"],
  "thanos 0.38.0": [{ version: "0.38.0" }, { version: "0.38.0", server: "thanos" }, "prometheus3"],
  "thanos 0.37.2": [{ version: "0.37.2" }, { version: "0.37.2", server: "thanos" }, "prometheus2"],
  "thanos 0.32.5": [{ version: "0.32.5" }, { version: "0.32.5", server: "thanos" }, "prometheus2"],
  "thanos 0.38.0-rc.0": [
    { version: "0.38.0-rc.0" },
    { version: "0.38.0-rc.0", server: "thanos" },
    null,
  ],
  "thanos v0.39.2": [
    { version: "v0.39.2" },
    { version: "v0.39.2", server: "thanos" },
    "prometheus3",
  ],
  "prometheus 1.8": [{ version: "1.8.2" }, { version: "1.8.2", server: "unknown" }, null],
  "garbage": [{ version: "main-abc" }, { version: "main-abc", server: "unknown" }, null],
};

Deno.test("parseBuildInfo + semanticsOf on the measured answers", () => {
  const debian = parseBuildInfo(JSON.parse(MEASURED.debianPrometheus242).data);
  assert.deepEqual(debian, {
    version: "2.42.0+ds",
    revision: "2.42.0+ds-5+deb12u1",
    server: "prometheus",
  });
  assert.deepEqual(semanticsOf(debian), {
    semantics: "prometheus2",
    reason: "Prometheus 2.42.0+ds (2.x engine)",
  });
  for (const dev of [MEASURED.prometheus316DevBuild, MEASURED.thanosQuery0425DevBuild]) {
    const info = parseBuildInfo(JSON.parse(dev).data);
    assert.deepEqual(info, { version: "", server: "unknown" });
    assert.equal(semanticsOf(info), null);
  }
});

Deno.test("parseBuildInfo + semanticsOf on release versions: Thanos switched to a 3.x engine in 0.38.0", () => {
  for (const [name, [data, info, semantics]] of Object.entries(RELEASES)) {
    assert.deepEqual(parseBuildInfo(data), info, name);
    assert.equal(semanticsOf(info)?.semantics ?? null, semantics, name);
  }
  // A version that does not match the server is not trusted.
  assert.equal(semanticsOf({ version: "2.42.0", server: "thanos" }), null);
  assert.equal(semanticsOf({ version: "0.42.5", server: "prometheus" }), null);
});

async function withServer(
  handler: (req: Request) => Response | Promise<Response>,
  fn: (url: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, handler);
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

Deno.test("fetchBuildInfo: through the client; null for a 404 (sidecar, proxy, replay)", async () => {
  for (
    const [body, status, expected] of [
      [MEASURED.debianPrometheus242, 200, "prometheus"],
      [MEASURED.thanosQuery0425DevBuild, 200, "unknown"],
      [MEASURED.thanosSidecar404, 404, null],
    ] as const
  ) {
    await withServer(
      (req) => {
        assert.equal(new URL(req.url).pathname, "/p/api/v1/status/buildinfo");
        assert.equal(req.headers.get("authorization"), "Bearer t");
        return new Response(body, { status });
      },
      async (url) => {
        const client = new ThanosClient({ url: `${url}/p`, token: "t" });
        try {
          const info = await fetchBuildInfo(client);
          assert.equal(info === null ? null : info.server, expected);
        } finally {
          client.close();
        }
      },
    );
  }
});

Deno.test("probeSemantics: 2 steps is prometheus2, 1 is prometheus3, anything else null", async () => {
  const measured: Record<string, string> = {
    // Debian Prometheus 2.42:
    "2":
      '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1799999940,"2"],[1800000000,"2"]]}]}}',
    // Prometheus 3.16; Thanos Query 0.42.5 (both engines) adds "analysis":{}:
    "1":
      '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1800000000,"1"]]}],"analysis":{}}}',
    "3":
      '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1800000000,"3"]]}]}}',
  };
  for (
    const [count, semantics] of [["2", "prometheus2"], ["1", "prometheus3"], ["3", null]] as const
  ) {
    await withServer(
      async (req) => {
        const form = new URLSearchParams(await req.text());
        assert.equal(form.get("query"), PROBE_QUERY);
        assert.equal(form.get("time"), String(PROBE_TIME));
        return new Response(measured[count]);
      },
      async (url) => {
        const client = new ThanosClient({ url });
        try {
          assert.equal((await probeSemantics(client))?.semantics ?? null, semantics);
        } finally {
          client.close();
        }
      },
    );
  }
  await withServer(() => new Response("{}", { status: 404 }), async (url) => {
    const client = new ThanosClient({ url });
    try {
      assert.equal(await probeSemantics(client), null);
    } finally {
      client.close();
    }
  });
});
