import assert from "node:assert/strict";
import { ROS_QUERIES } from "./ros_catalogue.ts";
import { COST_QUERIES } from "./catalogue.ts";
import { ROS_GROUP_BY_GO_VARIABLE } from "./catalogue_groups.ts";

const CONTRACT = new URL("../../../shared/contract/cmmo-queries.json", import.meta.url);

async function contractExists(): Promise<boolean> {
  try {
    await Deno.stat(CONTRACT);
    return true;
  } catch {
    return false;
  }
}

Deno.test("ROS catalogue has CMMO's 56 ROS queries: filter, 35 container, 20 namespace", () => {
  assert.equal(ROS_QUERIES.length, 56);
  assert.equal(new Set(ROS_QUERIES.map((q) => q.name)).size, 56, "query names are unique");
  assert.deepEqual(ROS_QUERIES.map((q) => q.group), [
    "ros-filter",
    ...Array<string>(35).fill("ros-container"),
    ...Array<string>(20).fill("ros-namespace"),
  ]);
  const filter = ROS_QUERIES[0]!;
  assert.equal(filter.name, "ros-namespace-filter");
  assert.equal(filter.valueField, null);
  assert.deepEqual(filter.rowKey, []);
  for (const q of ROS_QUERIES) {
    assert.ok(q.queryMapKey?.startsWith("ros:"), `${q.name} is a ros: QueryMap entry`);
    if (q.group !== "ros-filter") assert.ok(q.rowKey.length > 0, `${q.name} has a row key`);
  }
  // Only the two image queries are label-only among container/namespace queries.
  assert.deepEqual(
    ROS_QUERIES.filter((q) => q.valueField === null).map((q) => q.name),
    ["ros-namespace-filter", "container-image-owner", "container-image-workload"],
  );
  // Container columns are `<name with _>`; the value field is the query name (contract §1.8).
  for (const q of ROS_QUERIES.filter((q) => q.valueField !== null)) {
    assert.equal(q.valueField, q.name, `${q.name} stores under its own name`);
  }
  // No name clash with the cost catalogue's QueryMap keys.
  const costKeys = new Set(COST_QUERIES.map((q) => q.queryMapKey));
  assert.ok(ROS_QUERIES.every((q) => !costKeys.has(q.queryMapKey)));
});

Deno.test({
  name: "ROS catalogue equals ../shared/contract/cmmo-queries.json",
  ignore: !(await contractExists()),
  fn: async () => {
    const contract = JSON.parse(await Deno.readTextFile(CONTRACT)) as {
      groups: {
        go_variable: string;
        queries: {
          name: string;
          expr: string;
          query_map_key: string | null;
          metric_key: Record<string, string>;
          metric_key_regex: Record<string, string>;
          row_key: string[];
          value: { ValName: string; Method: string; TransformedName: string } | null;
        }[];
      }[];
    };
    const expected = Object.entries(ROS_GROUP_BY_GO_VARIABLE).flatMap(([goVariable, group]) => {
      const g = contract.groups.find((g) => g.go_variable === goVariable);
      assert.ok(g, `contract has ${goVariable}`);
      return g.queries.map((q) => ({ group, q }));
    });
    assert.equal(
      contract.groups.filter((g) => g.go_variable.startsWith("ros")).length,
      Object.keys(ROS_GROUP_BY_GO_VARIABLE).length,
      "every ROS group of the contract is mapped",
    );
    assert.equal(expected.length, ROS_QUERIES.length);
    expected.forEach(({ group, q }, i) => {
      const ours = ROS_QUERIES[i]!;
      assert.equal(ours.name, q.name);
      assert.equal(ours.group, group);
      assert.equal(ours.expr, q.expr, `${q.name} expression is verbatim`);
      assert.equal(ours.queryMapKey, q.query_map_key);
      assert.deepEqual(ours.labels, q.metric_key);
      assert.deepEqual(ours.labelRegex, q.metric_key_regex);
      assert.deepEqual(ours.rowKey, q.row_key);
      assert.equal(ours.valueField, q.value ? q.value.ValName : null);
      if (q.value) assert.equal(q.value.TransformedName, "", `${q.name} has no transform`);
    });
  },
});
