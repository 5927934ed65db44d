/**
 * Benchmarks of the local evaluator on synthetic data: 2,000 pods × 3
 * containers, 6 hours of 60 s steps, samples every 30 s or 300 s.
 *
 * `deno bench -A src/collect/local_eval_bench.ts`
 *
 * @module
 */

import { compileLocal, evaluateRange, type RawSeries } from "./local_eval.ts";

const PODS = 2000;
const CONTAINERS = 3;
const HOURS = 6;
const START = Date.UTC(2026, 0, 1);
const END = START + HOURS * 3_600_000 - 1000;
const MARGIN = 15 * 60_000;

function counters(intervalMs: number): RawSeries[] {
  const out: RawSeries[] = [];
  const n = Math.floor((END - START + MARGIN) / intervalMs) + 1;
  for (let p = 0; p < PODS; p++) {
    for (let c = 0; c < CONTAINERS; c++) {
      const t = new Float64Array(n);
      const v = new Float64Array(n);
      let acc = p * 0.01;
      for (let i = 0; i < n; i++) {
        t[i] = START - MARGIN + i * intervalMs + (p % 7) * 1000;
        acc += (intervalMs / 1000) * (0.1 + ((p * 7 + c * 13 + i) % 17) / 100);
        v[i] = i === Math.floor(n / 2) && p % 50 === 0 ? 1 : acc; // a few counter resets
      }
      out.push({
        metric: {
          __name__: "container_cpu_usage_seconds_total",
          clusterID: "c1",
          container: `c${c}`,
          namespace: `ns${p % 40}`,
          node: `node${p % 100}`,
          pod: `pod-${p}`,
        },
        t,
        v,
      });
    }
  }
  return out;
}

function gauges(
  name: string,
  intervalMs: number,
  perPod: number,
  extra: Record<string, string>,
): RawSeries[] {
  const out: RawSeries[] = [];
  const n = Math.floor((END - START + 300_000) / intervalMs) + 1;
  for (let p = 0; p < PODS; p++) {
    for (let c = 0; c < perPod; c++) {
      const t = new Float64Array(n);
      const v = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        t[i] = START - 300_000 + i * intervalMs + (p % 5) * 1000;
        v[i] = 0.25 * (1 + ((p + c) % 8));
      }
      out.push({
        metric: {
          __name__: name,
          clusterID: "c1",
          ...(perPod > 1 ? { container: `c${c}` } : {}),
          namespace: `ns${p % 40}`,
          pod: `pod-${p}`,
          ...extra,
        },
        t,
        v,
      });
    }
  }
  return out;
}

const RATE_Q = compileLocal(
  `sum by (pod, namespace, node) (rate(container_cpu_usage_seconds_total{clusterID="c1"}[15m]))`,
  { lookbackMs: 300_000 },
);
const JOIN_Q = compileLocal(
  `kube_pod_container_resource_requests{clusterID="c1"} * on(pod, namespace) group_left ` +
    `max by (pod, namespace) (kube_pod_status_phase{clusterID="c1",phase="Running"})`,
  { lookbackMs: 300_000 },
);
// ROS namespace queries: a subquery at CMMO's 15-minute window ends (one range evaluation, step 900 s).
const ROS_SUM_Q = compileLocal(
  `avg_over_time(sum by(namespace) (container_cpu_usage_seconds_total{clusterID="c1"})[15m:])`,
  { lookbackMs: 300_000 },
);
const ROS_RATE_Q = compileLocal(
  `max_over_time(sum by(namespace) (rate(container_cpu_usage_seconds_total{clusterID="c1"}[15m]))[15m:])`,
  { lookbackMs: 300_000 },
);
if (!RATE_Q.ok || !JOIN_Q.ok || !ROS_SUM_Q.ok || !ROS_RATE_Q.ok) {
  throw new Error("bench queries do not compile");
}

for (const intervalMs of [30_000, 300_000]) {
  const rateRaw = counters(intervalMs);
  const requests = gauges("kube_pod_container_resource_requests", intervalMs, CONTAINERS, {});
  const phase = gauges("kube_pod_status_phase", intervalMs, 1, { phase: "Running" });
  const joinRaw = (key: string) => key.startsWith("kube_pod_status_phase") ? phase : requests;
  for (const semantics of ["prometheus2", "prometheus3"] as const) {
    const options = { startMs: START, endMs: END, stepMs: 60_000, lookbackMs: 300_000, semantics };
    Deno.bench({
      name: `rate sum by, ${PODS * CONTAINERS} series, ${HOURS} h, samples every ${
        intervalMs / 1000
      } s, ${semantics}`,
      fn: () => {
        evaluateRange(RATE_Q.query, () => rateRaw, options);
      },
    });
    const ros = { ...options, startMs: START + 900_000, stepMs: 900_000 };
    Deno.bench({
      name: `ROS avg_over_time(sum by[15m:]), ${PODS * CONTAINERS} series, ${HOURS} h of ` +
        `15-minute windows, samples every ${intervalMs / 1000} s, ${semantics}`,
      fn: () => {
        evaluateRange(ROS_SUM_Q.query, () => rateRaw, ros);
      },
    });
    Deno.bench({
      name: `ROS max_over_time(sum by(rate[15m])[15m:]), ${PODS * CONTAINERS} series, ${HOURS} h ` +
        `of 15-minute windows, samples every ${intervalMs / 1000} s, ${semantics}`,
      fn: () => {
        evaluateRange(ROS_RATE_Q.query, () => rateRaw, ros);
      },
    });
    Deno.bench({
      name: `group_left join, ${PODS * CONTAINERS}+${PODS} series, ${HOURS} h, samples every ${
        intervalMs / 1000
      } s, ${semantics}`,
      fn: () => {
        evaluateRange(JOIN_Q.query, joinRaw, options);
      },
    });
  }
}
