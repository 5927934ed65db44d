import assert from "node:assert/strict";
import { COST_QUERIES } from "./catalogue.ts";
import { GROUP_BY_GO_VARIABLE } from "./catalogue_groups.ts";

const CONTRACT = new URL("../../../shared/contract/cmmo-queries.json", import.meta.url);

async function contractExists(): Promise<boolean> {
  try {
    await Deno.stat(CONTRACT);
    return true;
  } catch {
    return false;
  }
}

Deno.test("catalogue has CMMO's 36 cost queries in execution order", () => {
  assert.equal(COST_QUERIES.length, 36);
  const names = new Set(COST_QUERIES.map((q) => q.name));
  assert.equal(names.size, 36, "query names are unique");
  assert.deepEqual(
    [...new Set(COST_QUERIES.map((q) => q.group))],
    [
      "node",
      "storage",
      "pod",
      "vm",
      "namespace",
      "gpu-capacity-non-mig",
      "gpu-capacity-mig",
      "gpu-utilization",
      "gpu-max-slices",
    ],
  );
  for (const q of COST_QUERIES) {
    assert.ok(q.rowKey.length > 0, `${q.name} has a row key`);
    assert.equal(q.kind, "range");
    if (q.value?.transformedField) {
      assert.ok(["sum", "max"].includes(q.value.reduction), `${q.name} transform`);
    }
  }
});

Deno.test({
  name: "catalogue equals ../shared/contract/cmmo-queries.json",
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
    const expected = contract.groups.flatMap((g) =>
      GROUP_BY_GO_VARIABLE[g.go_variable] ? g.queries.map((q) => ({ g: g.go_variable, q })) : []
    );
    assert.equal(expected.length, COST_QUERIES.length);
    expected.forEach(({ g, q }, i) => {
      const ours = COST_QUERIES[i]!;
      assert.equal(ours.name, q.name);
      assert.equal(ours.group, GROUP_BY_GO_VARIABLE[g]);
      assert.equal(ours.expr, q.expr, `${q.name} expression is verbatim`);
      assert.equal(ours.queryMapKey, q.query_map_key);
      assert.deepEqual(ours.labels, q.metric_key);
      assert.deepEqual(ours.labelRegex, q.metric_key_regex);
      assert.deepEqual(ours.rowKey, q.row_key);
      assert.deepEqual(
        ours.value,
        q.value
          ? {
            field: q.value.ValName,
            reduction: q.value.Method,
            transformedField: q.value.TransformedName || null,
          }
          : null,
      );
    });
  },
});
