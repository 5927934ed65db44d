/**
 * The fleet benchmark's synthetic hub: many small clusters in one TSDB, most
 * without GPUs and KubeVirt, a few with GPUs and a few with VMs, on the bench
 * day's time grid (26 h from `BENCH_DAY` − 2 h, 300 s interval). Cached like
 * the single-cluster bench hub (keyed by the options and the generator's
 * sources).
 *
 * @module
 */

import type { HubOptions } from "../tools/synth/model.ts";
import { benchHubOptions } from "./bench_hub.ts";

/** Nodes of every fleet cluster. */
export const FLEET_NODES = 3;
/** Regular pods of every fleet cluster (as the 100-cluster hub measured in issue 8). */
export const FLEET_PODS = 20;

/**
 * The parts of a fleet hub of `clusters` clusters (each 3 nodes, 20 pods, 3
 * PVCs, ROS data on):
 * - the plain part: all but one in 40 clusters, no VMs; its first 3 clusters
 *   have GPUs (4 GPU pods each);
 * - the KubeVirt part: one cluster in 40 (at least 1), 2 VMs each, no GPUs.
 *
 * The parts have different seeds, hence different cluster ids.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fleetHubParts } from "./fleet_hub.ts";
 *
 * const [plain, virt] = fleetHubParts(200);
 * assert.deepEqual([plain!.clusters, plain!.vms, plain!.gpuClusters], [195, 0, 3]);
 * assert.deepEqual([virt!.clusters, virt!.vms, virt!.gpuPods], [5, 2, 0]);
 * ```
 */
export function fleetHubParts(clusters: number): HubOptions[] {
  if (!Number.isInteger(clusters) || clusters < 2 || clusters > 1000) {
    throw new RangeError(`Invalid clusters ${clusters}: expected an integer in [2, 1000]`);
  }
  const withVms = Math.max(1, Math.round(clusters / 40));
  const base = benchHubOptions(FLEET_PODS);
  const shape = { ...base, nodes: FLEET_NODES, pods: FLEET_PODS, pvcs: 3 };
  const plain = clusters - withVms;
  const parts: HubOptions[] = [];
  // The model takes at most 500 clusters per hub: bigger plain parts are split.
  for (let at = 0, i = 0; at < plain; at += 500, i++) {
    const n = Math.min(500, plain - at);
    parts.push({
      ...shape,
      seed: 20261201 + i,
      clusters: n,
      vms: 0,
      gpuPods: i === 0 ? 4 : 0,
      gpuClusters: i === 0 ? Math.min(3, n) : 0,
    });
  }
  parts.push({
    ...shape,
    seed: 20261301,
    clusters: withVms,
    vms: 2,
    gpuPods: 0,
    gpuClusters: 0,
  });
  return parts;
}
