import assert from "node:assert/strict";
import { join } from "node:path";
import type { DeliveryRecord } from "../deliver/sink.ts";
import { ClusterRecords, nextRosRange } from "./cluster_records.ts";

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

Deno.test("ROS ledger: deliveries per day and sink, replaced by last hour; nextRosRange continues after the highest ROS hour", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cluster_records_test_" });
  try {
    const warnings: string[] = [];
    const records = new ClusterRecords(dir, (m) => warnings.push(m));
    assert.deepEqual(await records.rosDeliveries("c1", "2026-11-01", "dir"), []);
    assert.deepEqual(nextRosRange([], 5), { fromHour: 0, toHour: 5 });
    const at = "2026-11-01T06:20:00.000Z";
    await records.recordRosDelivery("c1", "2026-11-01", "dir", {
      lastHour: 8,
      uuid: "b",
      ros: { fromHour: 6, toHour: 8 },
      deliveredAt: at,
    });
    await records.recordRosDelivery("c1", "2026-11-01", "dir", {
      lastHour: 5,
      uuid: "a",
      ros: { fromHour: 0, toHour: 5 },
      deliveredAt: at,
    });
    await records.recordRosDelivery("c1", "2026-11-01", "dir", {
      lastHour: 8,
      uuid: "b",
      ros: { fromHour: 6, toHour: 8 },
      deliveredAt: "2026-11-01T09:00:00.000Z",
    });
    const list = await records.rosDeliveries("c1", "2026-11-01", "dir");
    assert.deepEqual(list.map((d) => [d.lastHour, d.uuid]), [[5, "a"], [8, "b"]]);
    assert.deepEqual(await records.rosDeliveries("c1", "2026-11-01", "s3-kafka"), []);
    assert.deepEqual(nextRosRange(list, 8), { fromHour: 6, toHour: 8 }, "rebuilt: recorded");
    assert.deepEqual(nextRosRange(list, 5), { fromHour: 0, toHour: 5 });
    assert.deepEqual(nextRosRange(list, 11), { fromHour: 9, toHour: 11 });
    const off = [{ lastHour: 3, uuid: "x", ros: null, deliveredAt: at }];
    assert.equal(nextRosRange(off, 3), null, "delivered without ROS: rebuilt without ROS");
    assert.deepEqual(nextRosRange(off, 4), { fromHour: 0, toHour: 4 });
    await assert.rejects(
      () =>
        records.recordRosDelivery("c1", "2026-11-01", "dir", {
          lastHour: 8,
          uuid: "b",
          ros: { fromHour: 6, toHour: 7 },
          deliveredAt: at,
        }),
      RangeError,
    );
    await Deno.writeTextFile(join(dir, "c1", "2026-11-01", "ros-delivered-dir.json"), "{}");
    assert.deepEqual(await records.rosDeliveries("c1", "2026-11-01", "dir"), []);
    assert.match(warnings[0]!, /ros-delivered-dir\.json/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
