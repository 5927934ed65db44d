/**
 * The real parts of the delivery end-to-end tests, started once per test: a
 * Prometheus loaded with a synthetic hub whose data ends just before the real
 * clock's "now", an HTTP proxy in front of it that can fail one cluster, a
 * real Kafka broker, a real SeaweedFS and a fault-injecting TCP proxy in
 * front of S3; plus a test consumer and helpers to read what koku would read.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { dayOf, HOUR_MS } from "../../src/model.ts";
import { newestReadyHour } from "../../src/service/run_plan.ts";
import type { Hub } from "../../tools/synth/model.ts";
import {
  prepareHub,
  type PrometheusServer,
  startPrometheus,
} from "../../tools/synth/prometheus.ts";
import { type KafkaServer, startKafka } from "./kafka.ts";
import { type SeaweedServer, startSeaweedfs } from "./seaweedfs.ts";
import { startTcpProxy, type TcpProxy } from "./tcp_proxy.ts";
import { forward, loopbackTarget, relay } from "./proxy_forward.ts";
import { snappyDecode } from "../../src/thanos/snappy.ts";

/** The announce topic. */
export const TOPIC = "platform.upload.announce";
const DAY_MS = 24 * HOUR_MS;

export interface Announcement {
  key: string;
  service: string;
  value: {
    request_id: string;
    b64_identity: string;
    org_id: string;
    url: string;
    timestamp: string;
  };
}

export interface World {
  hub: Hub;
  work: string;
  prometheus: PrometheusServer;
  thanos: FaultyThanos;
  kafka: KafkaServer;
  s3: SeaweedServer;
  s3Proxy: TcpProxy;
  ids: string[];
  /** Days whose hours all have data and are ready, oldest first. */
  fullDays: string[];
}

/**
 * An HTTP proxy in front of Prometheus that answers 503 to every query naming
 * one cluster when told: its own queries and the batched queries it is part of
 * (so a batch falls back to per-cluster queries, and only that cluster fails).
 * Remote reads (local mode's raw reads) are seen through their snappy body;
 * every body is forwarded as the bytes it is.
 */
export interface FaultyThanos {
  url: string;
  failCluster: string | null;
  close(): Promise<void>;
}

export function faultyThanos(target: string): FaultyThanos {
  const state: FaultyThanos = { url: "", failCluster: null, close: async () => {} };
  const upstream = loopbackTarget(target);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const bytes = req.method === "POST"
      ? new Uint8Array(await req.arrayBuffer())
      : new Uint8Array();
    const fail = state.failCluster;
    if (fail !== null) {
      // A remote read's matchers are plain strings inside its snappy-compressed protobuf.
      // (A cluster id is hex digits and dashes: the same text URL-encoded.)
      const body = url.pathname.endsWith("/api/v1/read") ? snappyDecode(bytes) : bytes;
      if ((new TextDecoder().decode(body) + url.search).includes(fail)) {
        return new Response("upstream unavailable", { status: 503 });
      }
    }
    return relay(await forward(req, url, bytes, upstream));
  });
  state.url = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  state.close = () => server.shutdown();
  return state;
}

/** Reads every message of the topic so far (a fresh consumer group, from the beginning). */
export async function readAnnouncements(
  brokers: string,
  expectAtLeast: number,
): Promise<Announcement[]> {
  const kafka = new Kafka({
    clientId: "e2e-consumer",
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({ groupId: `e2e-${crypto.randomUUID()}` });
  const seen: Announcement[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message }) => {
        const header = message.headers?.service;
        seen.push({
          key: message.key?.toString() ?? "",
          service: Array.isArray(header) ? String(header[0]) : String(header ?? ""),
          value: JSON.parse(message.value!.toString()),
        });
        return Promise.resolve();
      },
    });
    // Wait for the expected messages, then a little longer to see any extra ones.
    const deadline = Date.now() + 30_000;
    while (seen.length < expectAtLeast && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 1500));
  } finally {
    await consumer.disconnect();
  }
  return seen;
}

/** Downloads an announced URL, as koku does (a plain GET, no credentials). */
export async function download(w: World, url: string): Promise<string> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url.split("?")[0]}: ${res.status}`);
  const path = await Deno.makeTempFile({ dir: w.work, suffix: ".tar.gz" });
  await Deno.writeFile(path, new Uint8Array(await res.arrayBuffer()));
  return path;
}

/** Cluster and day of an announced URL (`…/hub-a/<cluster>/<day>/<uuid>.tar.gz?…`). */
export function whereOf(url: string): { clusterId: string; day: string; file: string } {
  const parts = new URL(url).pathname.split("/");
  return { clusterId: parts.at(-3)!, day: parts.at(-2)!, file: parts.at(-1)! };
}

export async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "e2e_deliver_" });
  const now = Date.now();
  const today = Math.floor(now / DAY_MS) * DAY_MS;
  const start = today - 4 * DAY_MS - 2 * HOUR_MS;
  const stops: (() => Promise<void>)[] = [];
  try {
    const { hub, dataDir } = await prepareHub({
      seed: 20261127,
      clusters: 2,
      nodes: 2,
      pods: 6,
      pvcs: 2,
      vms: 1,
      gpuPods: 0,
      gpuClusters: 0,
      start: new Date(start),
      // Data up to the last whole hour before now: every ready hour has data.
      hours: Math.floor((now - start) / HOUR_MS),
      intervalSeconds: 300,
      hostile: true,
    }, work);
    const prometheus = await startPrometheus({ dataDir });
    stops.push(() => prometheus.stop());
    const thanos = faultyThanos(prometheus.url);
    stops.push(() => thanos.close());
    const kafka = await startKafka();
    let world: World | undefined;
    stops.push(() => (world?.kafka ?? kafka).stop()); // the test may restart the broker
    const s3 = await startSeaweedfs();
    stops.push(() => s3.stop());
    const s3Proxy = startTcpProxy(s3.port);
    stops.push(() => s3Proxy.close());
    const newest = newestReadyHour(new Date(), 600_000).getTime();
    const fullDays: string[] = [];
    for (let d = start + 2 * HOUR_MS; d + 23 * HOUR_MS <= newest; d += DAY_MS) {
      fullDays.push(dayOf(d));
    }
    assert.ok(fullDays.length >= 3, `three full days of data: ${fullDays}`);
    await fn(
      world = {
        hub,
        work,
        prometheus,
        thanos,
        kafka,
        s3,
        s3Proxy,
        ids: hub.clusters.map((c) => c.id),
        fullDays,
      },
    );
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await Deno.remove(work, { recursive: true });
  }
}
