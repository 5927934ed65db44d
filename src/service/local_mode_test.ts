/**
 * `resolveRawRead` and `resolveLocalRun`: which way local mode fetches raw
 * samples (remote read or instant queries), against fake servers that record
 * what they are asked.
 */

import assert from "node:assert/strict";
import type { BridgeSettings } from "../config.ts";
import { BridgeError, ConfigError } from "../model.ts";
import type { BuildInfo } from "../thanos/build_info.ts";
import { type LocalModeServer, resolveLocalRun, resolveRawRead } from "./local_mode.ts";

/** A fake server: its remote read probe and external labels as given, every call recorded. */
class FakeServer implements LocalModeServer {
  readonly calls: { name: string; signal: AbortSignal | undefined }[] = [];

  constructor(
    readonly answers: {
      /** `probeRemoteRead`'s answer, or an error it throws. */
      probe?: string | null | Error;
      /** `externalLabels`' answer, or an error it throws. */
      labels?: Record<string, string> | null | Error;
      buildInfo?: Record<string, unknown> | null;
    } = {},
  ) {}

  probeRemoteRead(signal?: AbortSignal): Promise<string | null> {
    this.calls.push({ name: "probeRemoteRead", signal });
    const probe = this.answers.probe ?? null;
    return probe instanceof Error ? Promise.reject(probe) : Promise.resolve(probe);
  }

  externalLabels(signal?: AbortSignal): Promise<Record<string, string> | null> {
    this.calls.push({ name: "externalLabels", signal });
    const labels = this.answers.labels === undefined ? {} : this.answers.labels;
    return labels instanceof Error ? Promise.reject(labels) : Promise.resolve(labels);
  }

  buildInfo(signal?: AbortSignal): Promise<Record<string, unknown> | null> {
    this.calls.push({ name: "buildInfo", signal });
    return Promise.resolve(this.answers.buildInfo ?? null);
  }

  queryInstant(): ReturnType<LocalModeServer["queryInstant"]> {
    this.calls.push({ name: "queryInstant", signal: undefined });
    return Promise.reject(new Error("the fake server answers no queries"));
  }

  get names(): string[] {
    return this.calls.map((c) => c.name);
  }
}

type RawReadSettings = Pick<BridgeSettings, "replay" | "record" | "rawRead">;

const AUTO: RawReadSettings = { replay: null, record: null, rawRead: "auto" };
const FORCED: RawReadSettings = { replay: null, record: null, rawRead: "remote-read" };
const PROMETHEUS: BuildInfo = { version: "2.42.0", server: "prometheus" };
const THANOS: BuildInfo = { version: "0.42.5", server: "thanos" };
const UNKNOWN: BuildInfo = { version: "", server: "unknown" };

Deno.test("resolveRawRead: --raw-read query means instant queries, without asking the server", async () => {
  for (const info of [PROMETHEUS, THANOS, null]) {
    const server = new FakeServer();
    const raw = await resolveRawRead({ ...AUTO, rawRead: "query" }, info, server);
    assert.deepEqual(raw, { remoteRead: null, from: "instant queries (--raw-read query)" });
    assert.deepEqual(server.names, []);
  }
});

Deno.test("resolveRawRead: recording or replaying means instant queries, without asking the server", async () => {
  const cases: RawReadSettings[] = [
    { ...AUTO, replay: "/rec" },
    { ...AUTO, record: "/rec" },
  ];
  for (const settings of cases) {
    const server = new FakeServer();
    const raw = await resolveRawRead(settings, PROMETHEUS, server);
    assert.deepEqual(raw, { remoteRead: null, from: "instant queries (recording or replaying)" });
    assert.deepEqual(server.names, [], JSON.stringify(settings));
  }
});

Deno.test("resolveRawRead: auto on Thanos means instant queries, without asking the server", async () => {
  const server = new FakeServer();
  const raw = await resolveRawRead(AUTO, THANOS, server);
  assert.deepEqual(raw, {
    remoteRead: null,
    from: "instant queries (the server is Thanos Query, which has no remote read API)",
  });
  assert.deepEqual(server.names, []);
});

Deno.test("resolveRawRead: auto probes a server whose build info says nothing (a build without version)", async () => {
  for (const info of [UNKNOWN, null]) {
    const offers = new FakeServer({ probe: null, labels: {} });
    assert.deepEqual(await resolveRawRead(AUTO, info, offers), {
      remoteRead: { externalLabels: {} },
      from: "remote read",
    });
    assert.deepEqual(offers.names, ["probeRemoteRead", "externalLabels"]);
    const refuses = new FakeServer({ probe: "HTTP 404 Not Found" });
    const raw = await resolveRawRead(AUTO, info, refuses);
    assert.equal(raw.remoteRead, null);
    assert.match(raw.from, /^instant queries \(.*HTTP 404 Not Found\)$/);
    assert.deepEqual(refuses.names, ["probeRemoteRead"]);
  }
});

Deno.test("resolveRawRead: auto on Prometheus with streamed remote read and readable labels: remote read", async () => {
  const server = new FakeServer({ probe: null, labels: {} });
  const signal = new AbortController().signal;
  const raw = await resolveRawRead(AUTO, PROMETHEUS, server, signal);
  assert.deepEqual(raw, { remoteRead: { externalLabels: {} }, from: "remote read" });
  assert.deepEqual(server.names, ["probeRemoteRead", "externalLabels"]);
  assert.ok(server.calls.every((c) => c.signal === signal), "the signal is passed on");
});

Deno.test("resolveRawRead: the server's external labels are passed on", async () => {
  const server = new FakeServer({ labels: { replica: "a", cluster: "hub" } });
  const raw = await resolveRawRead(AUTO, PROMETHEUS, server);
  assert.deepEqual(raw.remoteRead, { externalLabels: { replica: "a", cluster: "hub" } });
});

Deno.test("resolveRawRead: auto, the probe refused: instant queries saying why; labels not asked", async () => {
  const server = new FakeServer({ probe: "HTTP 404 Not Found: 404 page not found" });
  const raw = await resolveRawRead(AUTO, PROMETHEUS, server);
  assert.equal(raw.remoteRead, null);
  assert.equal(
    raw.from,
    "instant queries (the server does not answer streamed remote reads: " +
      "HTTP 404 Not Found: 404 page not found)",
  );
  assert.deepEqual(server.names, ["probeRemoteRead"]);
});

Deno.test("resolveRawRead: auto, external labels unreadable: instant queries", async () => {
  const server = new FakeServer({ probe: null, labels: null });
  const raw = await resolveRawRead(AUTO, PROMETHEUS, server);
  assert.equal(raw.remoteRead, null);
  assert.match(raw.from, /^instant queries \(.*external labels.*\/api\/v1\/status\/config\)$/);
  assert.deepEqual(server.names, ["probeRemoteRead", "externalLabels"]);
});

Deno.test("resolveRawRead: --raw-read remote-read that cannot work is a ConfigError naming rawRead and why", async () => {
  const cases: [FakeServer, RegExp][] = [
    [new FakeServer({ probe: "HTTP 404 Not Found" }), /streamed remote reads: HTTP 404 Not Found/],
    [new FakeServer({ probe: null, labels: null }), /external labels cannot be read/],
  ];
  for (const [server, reason] of cases) {
    await assert.rejects(
      resolveRawRead(FORCED, PROMETHEUS, server),
      (error) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.equal(error.field, "rawRead");
        assert.equal(error.value, '"remote-read"');
        assert.equal(error.code, "config");
        assert.match(error.message, reason);
        return true;
      },
    );
  }
});

Deno.test("resolveRawRead: --raw-read remote-read probes whatever the build info says", async () => {
  for (const info of [THANOS, UNKNOWN, null]) {
    const server = new FakeServer({ probe: null, labels: { replica: "b" } });
    const raw = await resolveRawRead(FORCED, info, server);
    assert.deepEqual(raw, {
      remoteRead: { externalLabels: { replica: "b" } },
      from: "remote read",
    });
    assert.deepEqual(server.names, ["probeRemoteRead", "externalLabels"]);
  }
  const refused = new FakeServer({ probe: "HTTP 404 Not Found" });
  await assert.rejects(resolveRawRead(FORCED, THANOS, refused), ConfigError);
  assert.deepEqual(refused.names, ["probeRemoteRead"]);
});

Deno.test("resolveRawRead: an error of the probe (e.g. cancelled) is thrown unchanged", async () => {
  const cancelled = new BridgeError("cancelled", "remote read probe cancelled");
  const server = new FakeServer({ probe: cancelled });
  await assert.rejects(resolveRawRead(AUTO, PROMETHEUS, server), (e) => e === cancelled);
});

const LOCAL: Pick<
  BridgeSettings,
  "engineSemantics" | "lookbackMs" | "replay" | "record" | "rawRead"
> = { engineSemantics: "auto", lookbackMs: 300_000, replay: null, record: null, rawRead: "auto" };

Deno.test("resolveLocalRun: the run carries remoteRead and how raw samples are read", async () => {
  const server = new FakeServer({
    buildInfo: { version: "2.42.0", revision: "abc" },
    probe: null,
    labels: { replica: "a" },
  });
  const run = await resolveLocalRun(LOCAL, server);
  assert.deepEqual(run.remoteRead, { externalLabels: { replica: "a" } });
  assert.equal(run.rawRead, "remote read");
  assert.equal(run.semantics, "prometheus2");
  assert.equal(run.counterAdjusting, false);
  assert.deepEqual(server.names, ["buildInfo", "probeRemoteRead", "externalLabels"]);

  const thanos = new FakeServer({ buildInfo: { version: "0.42.5" } });
  const viaQueries = await resolveLocalRun(LOCAL, thanos);
  assert.equal(viaQueries.remoteRead, null);
  assert.match(viaQueries.rawRead, /^instant queries \(the server is Thanos Query/);
  assert.equal(viaQueries.semantics, "prometheus3");
  assert.deepEqual(thanos.names, ["buildInfo"]);
});

Deno.test("resolveLocalRun: a replay asks only for the (recorded) build info and reads by instant queries", async () => {
  const server = new FakeServer({ probe: null, labels: {}, buildInfo: { version: "2.42.0" } });
  const run = await resolveLocalRun({ ...LOCAL, replay: "/rec" }, server);
  assert.equal(run.remoteRead, null);
  assert.equal(run.rawRead, "instant queries (recording or replaying)");
  assert.equal(run.semantics, "prometheus2");
  assert.equal(run.counterAdjusting, false, "the recorded server was Prometheus");
  assert.deepEqual(server.names, ["buildInfo"]);
  const forced = await resolveLocalRun(
    { ...LOCAL, engineSemantics: "prometheus3", replay: "/rec" },
    new FakeServer(),
  );
  assert.equal(forced.semanticsFrom, "--engine-semantics");
  assert.equal(forced.counterAdjusting, true, "no recorded build info: maybe Thanos");
});

Deno.test("resolveLocalRun: --raw-read remote-read against a server without it fails the run", async () => {
  const server = new FakeServer({ buildInfo: { version: "0.42.5" }, probe: "HTTP 404" });
  await assert.rejects(
    resolveLocalRun({ ...LOCAL, rawRead: "remote-read" }, server),
    (e) => e instanceof ConfigError && e.field === "rawRead",
  );
});

Deno.test("resolveRawRead: external labels that fail to load (e.g. a 403) mean instant queries in auto, a ConfigError when forced", async () => {
  const denied = () =>
    new BridgeError(
      "thanos_http",
      "configuration request to http://prom:9090 failed after 1 attempt: HTTP 403 Forbidden",
    );
  const auto = new FakeServer({ probe: null, labels: denied() });
  const raw = await resolveRawRead(AUTO, PROMETHEUS, auto);
  assert.equal(raw.remoteRead, null);
  assert.match(
    raw.from,
    /^instant queries \(.*external labels cannot be read.*HTTP 403 Forbidden\)$/,
  );
  assert.deepEqual(auto.names, ["probeRemoteRead", "externalLabels"]);

  await assert.rejects(
    resolveRawRead(FORCED, PROMETHEUS, new FakeServer({ probe: null, labels: denied() })),
    (e) =>
      e instanceof ConfigError && e.field === "rawRead" && /HTTP 403 Forbidden/.test(e.message),
  );

  const cancelled = new BridgeError("cancelled", "configuration request cancelled");
  await assert.rejects(
    resolveRawRead(AUTO, PROMETHEUS, new FakeServer({ probe: null, labels: cancelled })),
    (e) => e === cancelled,
  );
});
