import assert from "node:assert/strict";
import { COST_QUERIES } from "./catalogue.ts";
import type { MatrixSeries, RangeRequest } from "./hour_collector.ts";
import { PROBE_LABEL } from "./must_match.ts";
import { planBatchQueries } from "./query_plan.ts";
import { createSkipProbe, PROBE_SLACK_SECONDS } from "./skip_probe.ts";

const IDS = ["c1", "c2"];
const plan = planBatchQueries(COST_QUERIES, {
  clusterLabel: "clusterID",
  rateWindow: "15m",
  clusterIds: IDS,
});
const queries = plan.map((p) => ({ name: p.query.name, expr: p.expr }));

/**
 * Answers the probe as Prometheus would if `present(cluster, selector)` says
 * which selectors have samples: one series per (atom, cluster) present.
 */
function fakeClient(present: (cluster: string, atom: string) => boolean) {
  const requests: RangeRequest[] = [];
  return {
    requests,
    queryRange(r: RangeRequest, onSeries: (s: MatrixSeries) => void) {
      requests.push(r);
      const parts = r.query.split(" or ");
      parts.forEach((part, i) => {
        const atom = /last_over_time\((.*)\[\d+s\]\)\), "thanos_bridge_probe", "(\d+)"/.exec(part);
        assert.ok(atom, part);
        assert.equal(atom[2], String(i));
        for (const c of IDS) {
          if (present(c, atom[1]!)) {
            onSeries({
              metric: { clusterID: c, [PROBE_LABEL]: String(i) },
              values: [[r.end, "1"]],
            });
          }
        }
      });
      return Promise.resolve({});
    },
  };
}

const request = (first: number, last: number) => ({
  queries,
  clusterIds: IDS,
  day: "2026-11-01",
  first,
  last,
  signal: new AbortController().signal,
});

Deno.test("skip probe: GPU and VM queries are skipped only when no cluster of the batch has them", async () => {
  const noGpuNoVm = (_c: string, atom: string) => !/^(DCGM_|kubevirt_)/.test(atom);
  const client = fakeClient(noGpuNoVm);
  const skip = await createSkipProbe({ client, clusterLabel: "clusterID" })(request(0, 5));
  assert.equal(client.requests.length, 1);
  const r = client.requests[0]!;
  // One instant evaluation at the end of the range, covering it plus margins and slack.
  assert.equal(r.start, r.end);
  assert.equal(r.end, Date.parse("2026-11-01T06:00:00Z") / 1000);
  const windows = [...r.query.matchAll(/\[(\d+)s\]/g)].map((m) => Number(m[1]));
  assert.ok(windows.every((w) => w >= 6 * 3600 + PROBE_SLACK_SECONDS), String(windows));
  // `…-non-mig` reads no DCGM series (GPU requests and node labels): present here, so it is sent.
  const expected = COST_QUERIES
    .filter((q) => /^(nvidia|vm_)/.test(q.name) && !q.name.endsWith("-non-mig"))
    .map((q) => q.name);
  assert.deepEqual([...skip].sort(), expected.sort());
  assert.ok(expected.length >= 12);

  // One cluster with GPUs: the GPU queries are sent for the whole batch.
  const gpuInC2 = (c: string, atom: string) => c === "c2" || noGpuNoVm(c, atom);
  const skip2 = await createSkipProbe({ client: fakeClient(gpuInC2), clusterLabel: "clusterID" })(
    request(0, 0),
  );
  assert.deepEqual([...skip2], []);

  // Everything present: nothing is skipped.
  const all = await createSkipProbe({ client: fakeClient(() => true), clusterLabel: "clusterID" })(
    request(3, 3),
  );
  assert.equal(all.size, 0);
});

Deno.test("skip probe: a malformed answer is an error (the collector then skips nothing)", async () => {
  const client = {
    queryRange(_r: RangeRequest, onSeries: (s: MatrixSeries) => void) {
      onSeries({ metric: { clusterID: "c1" }, values: [[0, "1"]] });
      return Promise.resolve({});
    },
  };
  await assert.rejects(
    createSkipProbe({ client, clusterLabel: "clusterID" })(request(0, 0)),
    /thanos_bridge_probe/,
  );
});
