import assert from "node:assert/strict";
import { join } from "node:path";
import type { DeliveryRecord } from "../deliver/sink.ts";
import { ClusterRecords } from "./cluster_records.ts";

const record: DeliveryRecord = {
  sink: "dir",
  clusterId: "c1",
  day: "2026-11-01",
  uuid: "0b5c3f0e-5a3e-4d4e-8f4f-0c9d7e0b1a2c",
  lastHour: 5,
  parts: [{
    fileName: "0b5c3f0e-5a3e-4d4e-8f4f-0c9d7e0b1a2c.tar.gz",
    bytes: 10,
    sha256: "ab".repeat(32),
    ref: { sink: "dir", location: "/out/c1/2026-11-01/x.tar.gz" },
  }],
  deliveredAt: "2026-11-01T06:20:00.000Z",
};

Deno.test("cluster records: watermark and delivery ledger round-trip, atomically", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cluster_records_test_" });
  try {
    const records = new ClusterRecords(dir);
    assert.equal(await records.watermark("c1"), null);
    await records.setWatermark("c1", Date.parse("2026-11-01T05:00:00Z"));
    assert.equal(await records.watermark("c1"), Date.parse("2026-11-01T05:00:00Z"));
    assert.equal(await records.delivered("c1", "2026-11-01", "dir"), null);
    await records.recordDelivery(record);
    assert.deepEqual(await records.delivered("c1", "2026-11-01", "dir"), record);
    assert.equal(await records.delivered("c1", "2026-11-01", "s3-kafka"), null);
    const names: string[] = [];
    for await (const e of Deno.readDir(join(dir, "c1"))) names.push(e.name);
    assert.deepEqual(names.sort(), ["2026-11-01", "watermark.json"], "no temporary files left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rule 5: a damaged watermark or ledger reads as missing, with a warning naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cluster_records_test_" });
  try {
    const warnings: string[] = [];
    const records = new ClusterRecords(dir, (m) => warnings.push(m));
    await Deno.mkdir(join(dir, "c1", "2026-11-01"), { recursive: true });
    await Deno.writeTextFile(join(dir, "c1", "watermark.json"), '{"hourMs": 12');
    await Deno.writeTextFile(join(dir, "c1", "2026-11-01", "delivered-dir.json"), '{"sink":"dir"}');
    assert.equal(await records.watermark("c1"), null);
    assert.equal(await records.delivered("c1", "2026-11-01", "dir"), null);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /watermark\.json/);
    assert.match(warnings[1]!, /delivered-dir\.json/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
