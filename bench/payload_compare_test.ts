import assert from "node:assert/strict";
import { compareMembers, payloadMembers } from "./payload_compare.ts";
import type { RunSummary } from "../src/service/collect_job.ts";

const t = (s: string) => new TextEncoder().encode(s);

Deno.test("compareMembers: equal, different and one-sided members", () => {
  assert.deepEqual(compareMembers(new Map(), new Map()), { compared: 0, differing: [] });
  const a = new Map([["k/1.csv", t("a,b\n")], ["k/2.csv", t("x")]]);
  assert.deepEqual(compareMembers(a, new Map(a)), { compared: 2, differing: [] });
  assert.deepEqual(
    compareMembers(a, new Map([["k/1.csv", t("a,c\n")], ["k/3.csv", t("")]])),
    { compared: 1, differing: ["k/1.csv", "k/2.csv", "k/3.csv"] },
  );
  // Same length, one byte apart; and a prefix.
  assert.equal(
    compareMembers(new Map([["x", t("ab")]]), new Map([["x", t("ac")]])).differing.length,
    1,
  );
  assert.equal(
    compareMembers(new Map([["x", t("ab")]]), new Map([["x", t("a")]])).differing.length,
    1,
  );
});

Deno.test("payloadMembers reads every tar.gz a summary names, without manifest.json", async () => {
  const dir = await Deno.makeTempDir({ prefix: "payload_compare_test_" });
  try {
    await Deno.mkdir(`${dir}/src/p`, { recursive: true });
    await Deno.writeTextFile(`${dir}/src/p/a.csv`, "h\n1\n");
    await Deno.writeTextFile(`${dir}/src/p/manifest.json`, "{}");
    const tar = await new Deno.Command("tar", {
      args: ["-czf", `${dir}/x.tar.gz`, "-C", `${dir}/src/p`, "a.csv", "manifest.json"],
    }).output();
    assert.ok(tar.success);
    const summary = {
      clusters: [{
        clusterId: "c1",
        days: [{ day: "2026-11-01", refs: [{ sink: "dir", location: `${dir}/x.tar.gz` }] }],
      }],
    } as unknown as RunSummary;
    const members = await payloadMembers(summary);
    assert.deepEqual([...members.keys()], ["c1/2026-11-01/0/a.csv"]);
    assert.equal(new TextDecoder().decode(members.get("c1/2026-11-01/0/a.csv")), "h\n1\n");
    const broken = {
      clusters: [{ clusterId: "c1", days: [{ day: "d", refs: [{ sink: "dir" }] }] }],
    } as unknown as RunSummary;
    await assert.rejects(() => payloadMembers(broken), TypeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
