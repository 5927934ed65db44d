import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import {
  REPORT_NAMES,
  reportDefinition,
  type ReportName,
  ROS_REPORTS,
} from "../collect/reports.ts";
import { buildDayPayload, type DayPayload } from "./day_payload.ts";
import { DEFAULT_MANIFEST_VERSION, manifestUuid, validateManifest } from "./manifest.ts";
import { BridgeError } from "../model.ts";
import { StateStore } from "./state_store.ts";
import { canMountTmpfs, tinyTmpfs, unmount } from "./tiny_tmpfs.ts";

const CLUSTER = "16b9a60d-0774-4102-9028-bd28d6c38ac2";
const DAY = "2026-11-01";
const decoder = new TextDecoder();

function dates(hour: number): string[] {
  const hh = String(hour).padStart(2, "0");
  return [
    "2026-11-01 00:00:00 +0000 UTC",
    "2026-12-01 00:00:00 +0000 UTC",
    `2026-11-01 ${hh}:00:00 +0000 UTC`,
    `2026-11-01 ${hh}:59:59 +0000 UTC`,
  ];
}

function podRow(hour: number, pod: string, labels: string): string[] {
  return [
    ...dates(hour),
    "node-a",
    "openshift-etcd",
    pod,
    "51.626897",
    "36.000000",
    "",
    "354808627200.000000",
    "188743680000.000000",
    "",
    "4.000000",
    "14400.000000",
    "16502939648.000000",
    "59410582732800.000000",
    "worker",
    "i-0d747f55dc1009705",
    labels,
  ];
}

interface HourSpec {
  hour: number;
  collectedAt: string;
  rows: Partial<Record<ReportName, string[][]>>;
}

async function fillStore(store: StateStore, hours: HourSpec[]): Promise<void> {
  for (const h of hours) {
    const w = await store.beginHour(CLUSTER, DAY, h.hour);
    for (const [report, rows] of Object.entries(h.rows)) {
      await w.writeRows(report as ReportName, rows);
    }
    await w.commit({ collectedAt: new Date(h.collectedAt), mode: "raw", noData: false });
  }
}

/** Hours 0-3 with hostile values; pod rows only in hours 1 and 2. */
const HOSTILE: HourSpec[] = [
  {
    hour: 0,
    collectedAt: "2026-11-01T01:10:00.250Z",
    rows: {
      namespace: [
        [...dates(0), "ns,comma", 'label_a:say "hi"|label_b:x'],
        [...dates(0), "ns-newline", "label_a:line1\nline2\r\nline3"],
      ],
      node: [[...dates(0), "node-a", "label_kubernetes_io_hostname:node-a"]],
    },
  },
  {
    hour: 1,
    collectedAt: "2026-11-01T05:00:00.750Z", // re-collected later: the newest collectedAt
    rows: {
      namespace: [[...dates(1), " leading-space", "label_ünï:çødé ✓"]],
      pod: [podRow(1, "etcd-0", "label_app:etcd"), podRow(1, "etcd-1", "")],
    },
  },
  {
    hour: 2,
    collectedAt: "2026-11-01T03:10:00Z",
    rows: {
      pod: [podRow(2, 'weird"pod', 'label_q:"quoted",x|label_n:a\nb|label_u:日本')],
      storage: [],
    },
  },
  { hour: 3, collectedAt: "2026-11-01T04:10:00Z", rows: {} },
];

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "day_payload_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (out.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${decoder.decode(out.stderr)}`);
  }
  return decoder.decode(out.stdout);
}

async function tarList(path: string): Promise<string[]> {
  return (await run("tar", ["-tzf", path])).split("\n").filter((l) => l !== "");
}

async function extract(path: string, dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await run("tar", ["-xzf", path, "-C", dir]);
}

async function fragmentBytes(
  store: StateStore,
  report: ReportName,
  hours: number[],
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (const h of hours) {
    chunks.push(await Deno.readFile(store.fragmentPath(CLUSTER, DAY, h, report)));
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

function headerLine(report: ReportName): string {
  return reportDefinition(report).header.join(",") + "\n";
}

const KOKU_CHECK = `
import json, sys, tarfile, uuid
path, out = sys.argv[1], sys.argv[2]
with tarfile.open(path, "r:gz") as tf:
    manifest = json.load(tf.extractfile("manifest.json"))
    assert uuid.UUID(manifest["uuid"]).version == 4, manifest["uuid"]
    info = [{"name": m.name, "mode": m.mode, "uid": m.uid, "gid": m.gid, "uname": m.uname,
             "gname": m.gname, "mtime": m.mtime, "regular": m.isreg(), "size": m.size}
            for m in tf.getmembers()]
    tf.extractall(out, filter="data")
print(json.dumps({"manifest": manifest, "members": info}))
`;

interface KokuView {
  manifest: Record<string, unknown>;
  members: Array<{
    name: string;
    mode: number;
    uid: number;
    gid: number;
    uname: string;
    gname: string;
    mtime: number;
    regular: boolean;
    size: number;
  }>;
}

async function kokuOpen(path: string, out: string): Promise<KokuView> {
  await Deno.mkdir(out, { recursive: true });
  return JSON.parse(await run("python3", ["-c", KOKU_CHECK, path, out]));
}

Deno.test("day payload: one tarball with header + fragments per report, manifest last", async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    await fillStore(store, HOSTILE);
    const payload = await buildDayPayload({
      store,
      clusterId: CLUSTER,
      day: DAY,
      lastHour: 3,
      manifestVersion: DEFAULT_MANIFEST_VERSION,
      bridgeVersion: "0.1.0",
      spoolDir: join(dir, "spool"),
    });
    const uuid = manifestUuid(CLUSTER, DAY, 3, [...REPORT_NAMES]);
    assert.equal(payload.uuid, uuid);
    assert.equal(payload.hours, 4);
    assert.equal(payload.firstHour, 0);
    assert.equal(payload.lastHour, 3);
    assert.equal(payload.start, "2026-11-01T01:00:00Z");
    assert.equal(payload.end, "2026-11-01T02:59:59Z");
    assert.equal(payload.date, "2026-11-01T05:00:00.75Z");
    assert.deepEqual(payload.rows, { namespace: 3, node: 1, gpu: 0, pod: 3, storage: 0, vm: 0 });

    const expectedMembers = [
      `${uuid}-cm-openshift-namespace-usage-202611.0.csv`,
      `${uuid}-cm-openshift-node-usage-202611.1.csv`,
      `${uuid}-cm-openshift-nvidia-gpu-usage-202611.2.csv`,
      `${uuid}-cm-openshift-pod-usage-202611.3.csv`,
      `${uuid}-cm-openshift-storage-usage-202611.4.csv`,
      `${uuid}-cm-openshift-vm-usage-202611.5.csv`,
      "manifest.json",
    ];
    assert.equal(payload.parts.length, 1);
    const part = payload.parts[0]!;
    assert.equal(part.fileName, `${uuid}.tar.gz`);
    assert.equal(dirname(part.path), join(dir, "spool"));
    // Spool names carry the build's tag: <pid>-<random>-<fileName>.
    assert.match(basename(part.path), new RegExp(`^${Deno.pid}-[0-9a-f]{8}-${uuid}\\.tar\\.gz$`));
    assert.equal(part.bytes, (await Deno.stat(part.path)).size);
    assert.deepEqual(part.members, expectedMembers);
    assert.deepEqual(await tarList(part.path), expectedMembers);

    const out = join(dir, "out");
    await extract(part.path, out);
    const reportsInOrder: ReportName[] = ["namespace", "node", "gpu", "pod", "storage", "vm"];
    for (const [idx, report] of reportsInOrder.entries()) {
      const got = await Deno.readFile(join(out, expectedMembers[idx]!));
      const header = new TextEncoder().encode(headerLine(report));
      const body = await fragmentBytes(store, report, [0, 1, 2, 3]);
      assert.deepEqual(got.subarray(0, header.length), header, `${report} header`);
      assert.deepEqual(got.subarray(header.length), body, `${report} body`);
      assert.equal(payload.csvBytes[report], got.length);
    }
    assert.equal(
      decoder.decode(await Deno.readFile(join(out, expectedMembers[1]!))),
      "report_period_start,report_period_end,interval_start,interval_end,node,node_labels\n" +
        "2026-11-01 00:00:00 +0000 UTC,2026-12-01 00:00:00 +0000 UTC," +
        "2026-11-01 00:00:00 +0000 UTC,2026-11-01 00:59:59 +0000 UTC," +
        "node-a,label_kubernetes_io_hostname:node-a\n",
    );
    assert.match(
      decoder.decode(await Deno.readFile(join(out, expectedMembers[0]!))),
      /,"ns,comma","label_a:say ""hi""\|label_b:x"\n/,
    );

    const manifestText = await Deno.readTextFile(join(out, "manifest.json"));
    assert.equal(manifestText, payload.manifest);
    assert.deepEqual(validateManifest(manifestText), []);
    const m = JSON.parse(manifestText);
    assert.deepEqual(Object.keys(m), [
      "uuid",
      "cluster_id",
      "version",
      "date",
      "files",
      "resource_optimization_files",
      "start",
      "end",
      "cr_status",
      "certified",
      "daily_reports",
    ]);
    assert.equal(m.uuid, uuid);
    assert.equal(m.cluster_id, CLUSTER);
    assert.equal(m.version, DEFAULT_MANIFEST_VERSION);
    assert.equal(m.date, "2026-11-01T05:00:00.75Z");
    assert.deepEqual(m.files, expectedMembers.slice(0, -1));
    assert.equal(m.resource_optimization_files, null);
    assert.equal(m.start, "2026-11-01T01:00:00Z");
    assert.equal(m.end, "2026-11-01T02:59:59Z");
    assert.deepEqual(m.cr_status, {
      clusterID: CLUSTER,
      source: { source_type: "thanos_bridge", bridge_version: "0.1.0" },
      upload: { upload: true },
    });
    assert.equal(m.certified, false);
    assert.equal(m.daily_reports, true);
  });
});

Deno.test("day payload: koku can open, validate and extract it (python tarfile, data filter)", async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    await fillStore(store, HOSTILE);
    const payload = await buildDayPayload({
      store,
      clusterId: CLUSTER,
      day: DAY,
      lastHour: 2,
      manifestVersion: DEFAULT_MANIFEST_VERSION,
      bridgeVersion: "0.1.0",
      spoolDir: join(dir, "spool"),
    });
    const out = join(dir, "koku");
    const view = await kokuOpen(payload.parts[0]!.path, out);
    assert.equal(view.manifest.uuid, payload.uuid);
    assert.equal(view.manifest.end, "2026-11-01T02:59:59Z");
    assert.deepEqual(view.members.map((mm) => mm.name), payload.parts[0]!.members);
    // mtime = manifest date rounded to the nearest second (Go's tar writer): 05:00:00.75 → 05:00:01.
    const mtime = Date.parse("2026-11-01T05:00:01Z") / 1000;
    for (const member of view.members) {
      assert.deepEqual(
        { ...member, name: "", size: 0 },
        {
          name: "",
          mode: 0o644,
          uid: 0,
          gid: 0,
          uname: "",
          gname: "",
          mtime,
          regular: true,
          size: 0,
        },
      );
    }
    for (const name of view.manifest.files as string[]) {
      const stat = await Deno.stat(join(out, name));
      assert.ok(stat.isFile, name);
    }
  });
});

Deno.test("day payload: re-building the same window is byte-identical", async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    await fillStore(store, HOSTILE);
    const build = (spool: string, lastHour = 3) =>
      buildDayPayload({
        store,
        clusterId: CLUSTER,
        day: DAY,
        lastHour,
        manifestVersion: DEFAULT_MANIFEST_VERSION,
        bridgeVersion: "0.1.0",
        spoolDir: join(dir, spool),
      });
    const a = await build("a");
    const b = await build("b");
    assert.equal(a.uuid, b.uuid);
    assert.deepEqual(
      await Deno.readFile(a.parts[0]!.path),
      await Deno.readFile(b.parts[0]!.path),
    );
    // Building again into the same spool folder replaces the file.
    const again = await build("a");
    assert.deepEqual(
      await Deno.readFile(again.parts[0]!.path),
      await Deno.readFile(b.parts[0]!.path),
    );
    const fewer = await build("c", 2);
    assert.notEqual(fewer.uuid, a.uuid);
  });
});

Deno.test("day payload: missing hours are a RangeError naming them", async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    await fillStore(store, HOSTILE.filter((h) => h.hour !== 2));
    const build = (lastHour: number) =>
      buildDayPayload({
        store,
        clusterId: CLUSTER,
        day: DAY,
        lastHour,
        manifestVersion: DEFAULT_MANIFEST_VERSION,
        bridgeVersion: "0.1.0",
        spoolDir: join(dir, "spool"),
      });
    await assert.rejects(
      () => build(5),
      (err: unknown) =>
        err instanceof RangeError && /hour\(s\) 2, 4, 5 not collected/.test(err.message),
    );
    await build(1); // hours 0-1 are complete
    await assert.rejects(() => build(24), RangeError);
  });
});

Deno.test("day payload: a report subset, and no pod rows → zero start/end", async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    await fillStore(store, HOSTILE);
    const payload = await buildDayPayload({
      store,
      clusterId: CLUSTER,
      day: DAY,
      lastHour: 0,
      reports: ["node", "pod", "namespace", "node"],
      manifestVersion: "custom",
      bridgeVersion: "9.9.9",
      spoolDir: join(dir, "spool"),
    });
    assert.equal(payload.uuid, manifestUuid(CLUSTER, DAY, 0, ["namespace", "node", "pod"]));
    assert.deepEqual(payload.parts[0]!.members, [
      `${payload.uuid}-cm-openshift-namespace-usage-202611.0.csv`,
      `${payload.uuid}-cm-openshift-node-usage-202611.1.csv`,
      `${payload.uuid}-cm-openshift-pod-usage-202611.2.csv`,
      "manifest.json",
    ]);
    assert.equal(payload.start, "0001-01-01T00:00:00Z");
    assert.equal(payload.end, "0001-01-01T00:00:00Z");
    assert.equal(payload.date, "2026-11-01T01:10:00.25Z");
    assert.equal(payload.csvBytes.vm, 0);
    const m = JSON.parse(payload.manifest);
    assert.equal(m.version, "custom");
    assert.equal(m.start, "0001-01-01T00:00:00Z");
  });
});

/** Pod rows whose comma-join is exactly 500 bytes: estimate 515, four rows per part at 2000. */
function podRow500(hour: number, i: number): string[] {
  const row = podRow(hour, `pod-${hour}-${i}`, "");
  const len = row.join(",").length;
  row[19] = "label_pad:" + "p".repeat(500 - len - "label_pad:".length);
  assert.equal(row.join(",").length, 500);
  return row;
}

async function buildSplit(
  dir: string,
  podRowsPerHour: number[],
  maxBytes: number,
): Promise<{ store: StateStore; payload: DayPayload }> {
  const store = new StateStore(join(dir, "state"));
  await fillStore(
    store,
    podRowsPerHour.map((n, hour) => ({
      hour,
      collectedAt: `2026-11-01T0${hour + 1}:10:00Z`,
      rows: {
        pod: Array.from({ length: n }, (_, i) => podRow500(hour, i)),
        namespace: hour === 0 ? [[...dates(0), "ns", "label_a:b"]] : [],
      },
    })),
  );
  const payload = await buildDayPayload({
    store,
    clusterId: CLUSTER,
    day: DAY,
    lastHour: podRowsPerHour.length - 1,
    manifestVersion: DEFAULT_MANIFEST_VERSION,
    bridgeVersion: "0.1.0",
    maxBytes,
    spoolDir: join(dir, "spool"),
  });
  return { store, payload };
}

Deno.test("day payload: split at a tiny maxBytes, exactly as CMMO", async () => {
  await withTemp(async (dir) => {
    const { store, payload } = await buildSplit(dir, [4, 4, 2], 2_000);
    const uuid = payload.uuid;
    const members = [
      `${uuid}-cm-openshift-namespace-usage-202611.0.csv`,
      `${uuid}-cm-openshift-node-usage-202611.1.csv`,
      `${uuid}-cm-openshift-nvidia-gpu-usage-202611.2.csv`,
      `${uuid}-cm-openshift-pod-usage-2026111.3.csv`,
      `${uuid}-cm-openshift-pod-usage-2026112.4.csv`,
      `${uuid}-cm-openshift-pod-usage-2026113.5.csv`,
      `${uuid}-cm-openshift-storage-usage-202611.6.csv`,
      `${uuid}-cm-openshift-vm-usage-202611.7.csv`,
    ];
    assert.deepEqual(
      payload.parts.map((p) => p.fileName),
      members.map((_, i) => `${uuid}-${i}.tar.gz`),
    );
    assert.deepEqual(JSON.parse(payload.manifest).files, members);
    const podHeader = headerLine("pod");
    const podBodies: string[] = [];
    for (const [i, part] of payload.parts.entries()) {
      assert.deepEqual(part.members, [members[i], "manifest.json"]);
      assert.deepEqual(await tarList(part.path), [members[i], "manifest.json"]);
      const out = join(dir, `x${i}`);
      await extract(part.path, out);
      assert.equal(await Deno.readTextFile(join(out, "manifest.json")), payload.manifest);
      const csv = await Deno.readTextFile(join(out, members[i]!));
      if (members[i]!.includes("pod-usage")) {
        assert.ok(csv.startsWith(podHeader), "header repeated");
        podBodies.push(csv.slice(podHeader.length));
      }
    }
    assert.deepEqual(podBodies.map((b) => b.split("\n").length - 1), [4, 4, 2]);
    assert.equal(
      podBodies.join(""),
      decoder.decode(await fragmentBytes(store, "pod", [0, 1, 2])),
      "parts hold every row once, in order",
    );
    const view = await kokuOpen(payload.parts[4]!.path, join(dir, "koku"));
    assert.deepEqual(view.manifest.files, members);
    // Only the tarballs remain in the spool folder (split CSV parts are removed).
    const spool: string[] = [];
    for await (const e of Deno.readDir(join(dir, "spool"))) spool.push(e.name);
    assert.deepEqual(spool.sort(), payload.parts.map((p) => basename(p.path)).sort());
  });
});

Deno.test("day payload: a last row crossing the limit leaves a header-only part", async () => {
  await withTemp(async (dir) => {
    const { payload } = await buildSplit(dir, [4, 4, 4], 2_000);
    const files: string[] = JSON.parse(payload.manifest).files;
    const pods = files.filter((f) => f.includes("pod-usage"));
    assert.deepEqual(pods, [
      `${payload.uuid}-cm-openshift-pod-usage-2026111.3.csv`,
      `${payload.uuid}-cm-openshift-pod-usage-2026112.4.csv`,
      `${payload.uuid}-cm-openshift-pod-usage-2026113.5.csv`,
      `${payload.uuid}-cm-openshift-pod-usage-2026114.6.csv`,
    ]);
    const out = join(dir, "x");
    await extract(payload.parts[6]!.path, out);
    assert.equal(await Deno.readTextFile(join(out, pods[3]!)), headerLine("pod"));
    assert.equal(payload.parts.length, 9);
  });
});

Deno.test("day payload: a total over maxBytes splits into one tarball per CSV without cutting", async () => {
  await withTemp(async (dir) => {
    const probe = await buildSplit(join(dir, "probe"), [2, 1], 104_857_600);
    const podBytes = probe.payload.csvBytes.pod;
    assert.equal(probe.payload.parts.length, 1);
    const { payload } = await buildSplit(join(dir, "real"), [2, 1], podBytes + 1);
    assert.equal(payload.parts.length, 6);
    assert.deepEqual(
      payload.parts.map((p) => p.members[0]),
      JSON.parse(payload.manifest).files,
    );
    assert.equal(
      payload.parts[3]!.members[0],
      `${payload.uuid}-cm-openshift-pod-usage-202611.3.csv`,
    );
    assert.equal(payload.parts[3]!.fileName, `${payload.uuid}-3.tar.gz`);
  });
});

// ---- Hardening -------------------------------------------------------------------------------

async function spoolNames(spoolDir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(spoolDir)) names.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return names.sort();
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function request(store: StateStore, spoolDir: string, lastHour = 3, maxBytes?: number) {
  return {
    store,
    clusterId: CLUSTER,
    day: DAY,
    lastHour,
    manifestVersion: DEFAULT_MANIFEST_VERSION,
    bridgeVersion: "0.1.0",
    spoolDir,
    ...(maxBytes ? { maxBytes } : {}),
  };
}

function isStateCorrupt(...mustInclude: string[]) {
  return (err: unknown) =>
    err instanceof BridgeError && err.code === "state_corrupt" &&
    mustInclude.every((s) => err.message.includes(s));
}

Deno.test("rule 5: a flipped byte in a fragment fails the build with state_corrupt naming the hour; nothing left in the spool", async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    await fillStore(store, HOSTILE);
    const spoolDir = join(dir, "spool");
    const ns = store.fragmentPath(CLUSTER, DAY, 1, "namespace");
    const bytes = await Deno.readFile(ns);
    bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0x20;
    await Deno.writeFile(ns, bytes); // same size: only the hash can tell
    await assert.rejects(
      () => buildDayPayload(request(store, spoolDir)),
      isStateCorrupt(store.hourPath(CLUSTER, DAY, 1), ns, "SHA-256"),
    );
    assert.deepEqual(await spoolNames(spoolDir), []);
    // The other hours are fine: a payload without hour 1 still builds.
    await buildDayPayload(request(store, join(dir, "spool0"), 0));
  });
});

Deno.test("rule 5: a flipped byte is also caught while splitting, and the split folder is removed", async () => {
  await withTemp(async (dir) => {
    const spoolDir = join(dir, "spool");
    const { store } = await buildSplit(join(dir, "a"), [4, 4, 2], 2_000);
    const pod = store.fragmentPath(CLUSTER, DAY, 1, "pod");
    const bytes = await Deno.readFile(pod);
    bytes[100] = bytes[100]! ^ 0x01;
    await Deno.writeFile(pod, bytes);
    await assert.rejects(
      () => buildDayPayload(request(store, spoolDir, 2, 2_000)),
      isStateCorrupt(store.hourPath(CLUSTER, DAY, 1), pod),
    );
    assert.deepEqual(await spoolNames(spoolDir), []);
  });
});

Deno.test("rule 5: a truncated or deleted fragment is quarantined; the build names it, the other hours still build", async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    await fillStore(store, HOSTILE);
    const spoolDir = join(dir, "spool");
    const pod = store.fragmentPath(CLUSTER, DAY, 2, "pod");
    await Deno.writeFile(pod, (await Deno.readFile(pod)).subarray(0, 7));
    await Deno.remove(store.fragmentPath(CLUSTER, DAY, 3, "node"));
    await assert.rejects(
      () => buildDayPayload(request(store, spoolDir)),
      isStateCorrupt(pod, store.hourPath(CLUSTER, DAY, 3), "quarantine"),
    );
    assert.deepEqual([...(await store.listHours(CLUSTER, DAY)).hours.keys()], [0, 1]);
    const ok = await buildDayPayload(request(store, spoolDir, 1));
    assert.equal(ok.hours, 2);
    // Once moved aside they are simply missing (collect them again).
    await assert.rejects(() => buildDayPayload(request(store, spoolDir)), /hour\(s\) 2, 3 not/);
  });
});

Deno.test("rule 5: every tarball part carries the SHA-256 and size computed while writing it", async () => {
  await withTemp(async (dir) => {
    const { payload } = await buildSplit(join(dir, "split"), [4, 4, 2], 2_000);
    const store = new StateStore(join(dir, "state"));
    await fillStore(store, HOSTILE);
    const single = await buildDayPayload(request(store, join(dir, "spool")));
    const parts = [...payload.parts, ...single.parts];
    assert.equal(parts.length, 9);
    for (const part of parts) {
      const bytes = await Deno.readFile(part.path);
      assert.equal(part.bytes, bytes.length, part.fileName);
      assert.equal(part.sha256, await sha256Hex(bytes), part.fileName);
    }
    assert.equal(new Set(parts.map((p) => p.sha256)).size, parts.length);
  });
});

Deno.test("rule 5: each build has its own spool names; concurrent builds of one window do not collide", async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    await fillStore(store, HOSTILE);
    const spoolDir = join(dir, "spool");
    const [a, b] = await Promise.all([
      buildDayPayload(request(store, spoolDir)),
      buildDayPayload(request(store, spoolDir)),
    ]);
    assert.equal(a.uuid, b.uuid);
    assert.notEqual(a.parts[0]!.path, b.parts[0]!.path);
    assert.deepEqual(await Deno.readFile(a.parts[0]!.path), await Deno.readFile(b.parts[0]!.path));
    assert.equal(a.parts[0]!.sha256, b.parts[0]!.sha256);
    const tagged = await buildDayPayload({ ...request(store, spoolDir), spoolTag: "42-run7" });
    assert.equal(tagged.parts[0]!.path, join(spoolDir, `42-run7-${tagged.uuid}.tar.gz`));
    assert.equal(tagged.parts[0]!.fileName, `${tagged.uuid}.tar.gz`);
    assert.deepEqual((await spoolNames(spoolDir)).length, 3);
    for (const bad of ["../x", "", "a b", "x-"]) {
      await assert.rejects(
        () => buildDayPayload({ ...request(store, spoolDir), spoolTag: bad }),
        RangeError,
      );
    }
  });
});

Deno.test("rule 10: ENOSPC while writing a tarball is disk_full naming the spool file; nothing left in the spool", async () => {
  await withTemp(async (dir) => {
    let budget = Number.POSITIVE_INFINITY;
    const store = new StateStore(join(dir, "state"), {
      fs: {
        async write(file, data, path) {
          if (path.endsWith(".partial")) {
            budget -= data.length;
            if (budget < 0) {
              throw Object.assign(new Error("No space left on device (os error 28)"), {
                code: "ENOSPC",
              });
            }
          }
          let off = 0;
          while (off < data.length) off += await file.write(data.subarray(off));
        },
      },
    });
    await fillStore(
      store,
      [4, 4, 2].map((n, hour) => ({
        hour,
        collectedAt: `2026-11-01T0${hour + 1}:10:00Z`,
        rows: { pod: Array.from({ length: n }, (_, i) => podRow500(hour, i)) },
      })),
    );
    const spoolDir = join(dir, "spool");
    // Single tarball: the first write fails.
    budget = 0;
    await assert.rejects(
      () => buildDayPayload({ ...request(store, spoolDir, 2), spoolTag: "9-t" }),
      (err: unknown) =>
        err instanceof BridgeError && err.code === "disk_full" &&
        err.message ===
          `no space left on device while writing ${
            join(
              spoolDir,
              ".9-t-" + manifestUuid(CLUSTER, DAY, 2, [...REPORT_NAMES]) + ".tar.gz.partial",
            )
          }`,
    );
    assert.deepEqual(await spoolNames(spoolDir), []);
    // Split payload: some tarballs are written, then the disk fills up.
    budget = Number.POSITIVE_INFINITY;
    const whole = await buildDayPayload(request(store, join(dir, "probe"), 2, 2_000));
    budget = whole.parts.slice(0, 4).reduce((n, p) => n + p.bytes, 0);
    await assert.rejects(
      () => buildDayPayload(request(store, spoolDir, 2, 2_000)),
      (err: unknown) => err instanceof BridgeError && err.code === "disk_full",
    );
    assert.deepEqual(await spoolNames(spoolDir), [], "written parts and split folder removed");
  });
});

const CAN_MOUNT = await canMountTmpfs();

Deno.test("rule 10: a really full spool (tiny tmpfs) gives disk_full and is left empty", {
  ignore: !CAN_MOUNT,
}, async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    const noise = () => {
      const b = new Uint8Array(150);
      crypto.getRandomValues(b);
      return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    };
    await fillStore(store, [{
      hour: 0,
      collectedAt: "2026-11-01T01:10:00Z",
      rows: { namespace: Array.from({ length: 600 }, (_, i) => [...dates(0), `ns-${i}`, noise()]) },
    }]);
    const mnt = await tinyTmpfs(64);
    assert.ok(mnt);
    try {
      await assert.rejects(
        () => buildDayPayload(request(store, mnt, 0)),
        (err: unknown) =>
          err instanceof BridgeError && err.code === "disk_full" &&
          err.message.startsWith(`no space left on device while writing ${mnt}/.`),
      );
      assert.deepEqual(await spoolNames(mnt), []);
    } finally {
      await unmount(mnt);
    }
  });
});

// ---- ROS reports (issue 9): not cumulative, listed under resource_optimization_files ----

function rosDates(hour: number, w: number): string[] {
  const t = (min: number, sec: string) => {
    const h = hour + Math.floor(min / 60);
    return `2026-11-01 ${String(h).padStart(2, "0")}:${String(min % 60).padStart(2, "0")}:${sec}`;
  };
  return [
    "2026-11-01 00:00:00 +0000 UTC",
    "2026-12-01 00:00:00 +0000 UTC",
    `${t(w * 15, "01")} +0000 UTC`,
    `${t(w * 15 + 15, "00")} +0000 UTC`,
  ];
}

function rosContainerRow(hour: number, w: number, container: string): string[] {
  const row = [...rosDates(hour, w), container, "pod-1", "owner", "ReplicaSet", "wl", "deployment"];
  row.push("ns-ros", "quay.io/img:1", "node-a", "i-0d747f55dc1009705");
  while (row.length < 49) row.push(row.length === 38 ? "" : "0.250000");
  return row;
}

function rosNamespaceRow(hour: number, w: number, ns: string): string[] {
  const row = [...rosDates(hour, w), ns];
  while (row.length < 25) row.push("1.000000");
  return row;
}

interface RosHourSpec extends HourSpec {
  /** Passed windows; omitted: collected without ROS. */
  rosWindows?: number;
  ros?: { "ros-container"?: string[][]; "ros-namespace"?: string[][] };
}

async function fillRosStore(store: StateStore, hours: RosHourSpec[]): Promise<void> {
  for (const h of hours) {
    const w = await store.beginHour(CLUSTER, DAY, h.hour);
    for (const [report, rows] of Object.entries(h.rows)) {
      await w.writeRows(report as ReportName, rows);
    }
    for (const [report, rows] of Object.entries(h.ros ?? {})) {
      await w.writeRows(report as "ros-container" | "ros-namespace", rows);
    }
    await w.commit({
      collectedAt: new Date(h.collectedAt),
      mode: "raw",
      noData: false,
      ...(h.rosWindows === undefined ? {} : { ros: { windows: h.rosWindows } }),
    });
  }
}

/** HOSTILE's cost rows, with ROS: hour 0 no window passed, 1 two windows, 2 one window without container rows, 3 four. */
const WITH_ROS: RosHourSpec[] = [
  { ...HOSTILE[0]!, rosWindows: 0 },
  {
    ...HOSTILE[1]!,
    rosWindows: 2,
    ros: {
      "ros-container": [rosContainerRow(1, 2, "c,1"), rosContainerRow(1, 3, "c2")],
      "ros-namespace": [rosNamespaceRow(1, 2, "ns-ros"), rosNamespaceRow(1, 3, "ns-ros")],
    },
  },
  {
    ...HOSTILE[2]!,
    rosWindows: 1,
    ros: { "ros-namespace": [rosNamespaceRow(2, 0, "ns-ros")] },
  },
  {
    ...HOSTILE[3]!,
    rosWindows: 4,
    ros: {
      "ros-container": [0, 1, 2, 3].map((w) => rosContainerRow(3, w, "c3")),
      "ros-namespace": [0, 1, 2, 3].map((w) => rosNamespaceRow(3, w, "ns-ros")),
    },
  },
];

function rosHeaderLine(name: "ros-container" | "ros-namespace"): string {
  return ROS_REPORTS.find((r) => r.name === name)!.header.join(",") + "\n";
}

async function rosFragments(
  store: StateStore,
  name: "ros-container" | "ros-namespace",
  hours: number[],
): Promise<string> {
  let out = "";
  for (const h of hours) {
    out += await Deno.readTextFile(store.fragmentPath(CLUSTER, DAY, h, name));
  }
  return out;
}

Deno.test("day payload: a ROS range adds the ROS members after the cost members, listed under resource_optimization_files", async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    await fillRosStore(store, WITH_ROS);
    const payload = await buildDayPayload({
      ...request(store, join(dir, "spool")),
      rosFromHour: 0,
    });
    const uuid = payload.uuid;
    assert.equal(uuid, manifestUuid(CLUSTER, DAY, 3, REPORT_NAMES, { fromHour: 0, toHour: 3 }));
    assert.notEqual(
      uuid,
      manifestUuid(CLUSTER, DAY, 3, REPORT_NAMES),
      "the ROS range is in the key",
    );
    assert.deepEqual(payload.ros, { fromHour: 0, toHour: 3 });
    assert.deepEqual(payload.rosRows, { "ros-container": 6, "ros-namespace": 7 });
    assert.equal(payload.parts.length, 1);
    const members = payload.parts[0]!.members;
    assert.deepEqual(members, [
      `${uuid}-cm-openshift-namespace-usage-202611.0.csv`,
      `${uuid}-cm-openshift-node-usage-202611.1.csv`,
      `${uuid}-cm-openshift-nvidia-gpu-usage-202611.2.csv`,
      `${uuid}-cm-openshift-pod-usage-202611.3.csv`,
      `${uuid}-cm-openshift-storage-usage-202611.4.csv`,
      `${uuid}-cm-openshift-vm-usage-202611.5.csv`,
      `${uuid}-ros-openshift-container-202611.6.csv`,
      `${uuid}-ros-openshift-namespace-202611.7.csv`,
      "manifest.json",
    ]);
    const manifest = JSON.parse(payload.manifest);
    assert.deepEqual(manifest.files, members.slice(0, 6));
    assert.deepEqual(manifest.resource_optimization_files, members.slice(6, 8));
    assert.deepEqual(validateManifest(payload.manifest), []);
    const out = join(dir, "x");
    await extract(payload.parts[0]!.path, out);
    assert.equal(
      await Deno.readTextFile(join(out, members[6]!)),
      rosHeaderLine("ros-container") + await rosFragments(store, "ros-container", [1, 2, 3]),
    );
    assert.equal(
      await Deno.readTextFile(join(out, members[7]!)),
      rosHeaderLine("ros-namespace") + await rosFragments(store, "ros-namespace", [1, 2, 3]),
    );
    assert.equal(
      payload.rosCsvBytes["ros-container"],
      (await Deno.stat(join(out, members[6]!))).size,
    );
    // Cost CSVs are the same as without ROS.
    assert.equal(
      await Deno.readTextFile(join(out, members[3]!)),
      headerLine("pod") + decoder.decode(await fragmentBytes(store, "pod", [0, 1, 2, 3])),
    );
  });
});

Deno.test("day payload: a later payload of the day carries only its ROS hours; a hour without a passed window adds nothing", async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    await fillRosStore(store, WITH_ROS);
    const later = await buildDayPayload({ ...request(store, join(dir, "a")), rosFromHour: 2 });
    const out = join(dir, "x");
    await extract(later.parts[0]!.path, out);
    const members = later.parts[0]!.members;
    assert.equal(members.length, 9);
    assert.equal(
      await Deno.readTextFile(join(out, members[6]!)),
      rosHeaderLine("ros-container") + await rosFragments(store, "ros-container", [2, 3]),
      "hour 2 passed a window without container rows: only hour 3's rows",
    );
    assert.equal(
      await Deno.readTextFile(join(out, members[7]!)),
      rosHeaderLine("ros-namespace") + await rosFragments(store, "ros-namespace", [2, 3]),
    );
    assert.deepEqual(later.rosRows, { "ros-container": 4, "ros-namespace": 5 });
    const earlier = await buildDayPayload({ ...request(store, join(dir, "b"), 1), rosFromHour: 0 });
    assert.notEqual(earlier.uuid, later.uuid);
    assert.deepEqual(earlier.rosRows, { "ros-container": 2, "ros-namespace": 2 });
  });
});

Deno.test("day payload: a header-only ROS file for a passed window without rows", async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    await fillRosStore(store, WITH_ROS.slice(0, 3));
    const p = await buildDayPayload({ ...request(store, join(dir, "a"), 2), rosFromHour: 2 });
    const members = p.parts[0]!.members;
    const out = join(dir, "x");
    await extract(p.parts[0]!.path, out);
    assert.equal(await Deno.readTextFile(join(out, members[6]!)), rosHeaderLine("ros-container"));
    assert.deepEqual(JSON.parse(p.manifest).resource_optimization_files, members.slice(6, 8));
  });
});

Deno.test("day payload: no ROS file when no hour of the ROS range passed the filter", async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    await fillRosStore(store, WITH_ROS);
    const p = await buildDayPayload({ ...request(store, join(dir, "a"), 0), rosFromHour: 0 });
    assert.equal(p.parts[0]!.members.length, 7, "six cost CSVs and the manifest");
    assert.equal(JSON.parse(p.manifest).resource_optimization_files, null);
    assert.deepEqual(p.rosRows, { "ros-container": 0, "ros-namespace": 0 });
    assert.equal(p.uuid, manifestUuid(CLUSTER, DAY, 0, REPORT_NAMES, { fromHour: 0, toHour: 0 }));
    await assert.rejects(
      () => buildDayPayload({ ...request(store, join(dir, "b"), 1), rosFromHour: 2 }),
      RangeError,
    );
  });
});

Deno.test("day payload: without a ROS range, ROS fragments are left out and the payload is byte-identical to one of a state without ROS", async () => {
  await withTemp(async (dir) => {
    const withRos = new StateStore(join(dir, "with"));
    await fillRosStore(withRos, WITH_ROS);
    const without = new StateStore(join(dir, "without"));
    await fillStore(without, HOSTILE);
    const a = await buildDayPayload(request(withRos, join(dir, "a")));
    const b = await buildDayPayload(request(without, join(dir, "b")));
    // The uuid of a payload without ROS is the one it always had (fixed literal).
    assert.equal(a.uuid, "30a69737-dd51-433d-964d-bc0191ae21c2");
    assert.equal(a.uuid, b.uuid);
    assert.equal(a.ros, null);
    assert.equal(JSON.parse(a.manifest).resource_optimization_files, null);
    assert.deepEqual(await Deno.readFile(a.parts[0]!.path), await Deno.readFile(b.parts[0]!.path));
  });
});

Deno.test("day payload: re-building a ROS window is byte-identical; ROS files split like the others", async () => {
  await withTemp(async (dir) => {
    const store = new StateStore(join(dir, "state"));
    await fillRosStore(store, WITH_ROS);
    const a = await buildDayPayload({ ...request(store, join(dir, "a")), rosFromHour: 1 });
    const b = await buildDayPayload({ ...request(store, join(dir, "b")), rosFromHour: 1 });
    assert.equal(a.uuid, b.uuid);
    assert.deepEqual(await Deno.readFile(a.parts[0]!.path), await Deno.readFile(b.parts[0]!.path));
    // A tiny limit: every CSV in its own tarball, the ROS ones cut into parts after the cost ones.
    const split = await buildDayPayload({
      ...request(store, join(dir, "c"), 3, 600),
      rosFromHour: 0,
    });
    const manifest = JSON.parse(split.manifest);
    const names: string[] = split.parts.map((p) => p.members[0]!);
    assert.deepEqual([...manifest.files, ...manifest.resource_optimization_files], names);
    assert.ok(manifest.resource_optimization_files.length > 2, "a ROS CSV was cut");
    for (const [i, name] of manifest.resource_optimization_files.entries()) {
      assert.match(name, /-ros-openshift-(container|namespace)-202611\d*\.\d+\.csv$/);
      assert.ok(name.endsWith(`.${manifest.files.length + i}.csv`), name);
    }
    for (const p of split.parts) assert.equal(p.members.at(-1), "manifest.json");
  });
});
