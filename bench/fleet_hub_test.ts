import assert from "node:assert/strict";
import { benchHubKey, mergedHub } from "./bench_hub.ts";
import { FLEET_NODES, FLEET_PODS, fleetHubParts } from "./fleet_hub.ts";

Deno.test("fleetHubParts: 200 clusters, most plain, 3 with GPUs, one in 40 with VMs", () => {
  const parts = fleetHubParts(200);
  assert.equal(parts.reduce((n, p) => n + p.clusters, 0), 200);
  const [plain, virt] = parts;
  assert.ok(plain && virt && parts.length === 2);
  assert.deepEqual([plain.vms, plain.gpuPods, plain.gpuClusters], [0, 4, 3]);
  assert.deepEqual([virt.clusters, virt.vms, virt.gpuPods], [5, 2, 0]);
  for (const p of parts) {
    assert.equal(p.nodes, FLEET_NODES);
    assert.equal(p.pods, FLEET_PODS);
    assert.equal(p.hours, 26);
    assert.equal(p.start.getTime(), parts[0]!.start.getTime());
  }
  assert.notEqual(plain.seed, virt.seed);
  assert.equal(fleetHubParts(2)[1]!.clusters, 1);
  assert.throws(() => fleetHubParts(1), RangeError);
  assert.throws(() => fleetHubParts(1001), RangeError);
});

Deno.test("fleetHubParts splits plain parts at the model's 500 clusters, GPUs only in the first", () => {
  const parts = fleetHubParts(1000);
  assert.deepEqual(parts.map((p) => p.clusters), [500, 475, 25]);
  assert.deepEqual(parts.map((p) => p.gpuPods > 0), [true, false, false]);
  assert.equal(new Set(parts.map((p) => p.seed)).size, 3);
});

Deno.test("mergedHub: distinct cluster ids across parts; parts must share the time grid", () => {
  const parts = fleetHubParts(4).map((p) => ({ ...p, ros: false }));
  const hub = mergedHub(parts);
  assert.equal(hub.clusters.length, 4);
  assert.equal(new Set(hub.clusters.map((c) => c.id)).size, 4);
  assert.throws(() => mergedHub([parts[0]!, parts[0]!]), /cluster .* give them other seeds/);
  assert.throws(
    () => mergedHub([parts[0]!, { ...parts[1]!, hours: 27 }]),
    /share start, hours and intervalSeconds/,
  );
  assert.throws(() => mergedHub([]), RangeError);
});

Deno.test("benchHubKey of a multi-part spec: stable, and changes with any part", async () => {
  const parts = fleetHubParts(200);
  const key = await benchHubKey(parts, 6);
  assert.match(key, /^[0-9a-f]{16}$/);
  assert.equal(await benchHubKey(fleetHubParts(200), 6), key);
  assert.notEqual(await benchHubKey(fleetHubParts(201), 6), key);
  assert.notEqual(await benchHubKey(parts, 24), key);
  assert.notEqual(await benchHubKey([parts[0]!, { ...parts[1]!, vms: 3 }], 6), key);
  // One part as a list is not the same entry as the bare options (other layout of the key).
  assert.notEqual(await benchHubKey([parts[0]!], 6), await benchHubKey(parts[0]!, 6));
});
