import assert from "node:assert/strict";
import { join } from "node:path";
import { MAX_SPLITS, needSplit, rowSizeEstimate, splitCsv } from "./split.ts";

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "split_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function* records(header: string[], rows: string[][]): AsyncGenerator<string[]> {
  yield header;
  for (const r of rows) yield r;
}

async function listNames(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("needSplit: any file or the running total reaching maxBytes", () => {
  assert.equal(needSplit([], 100), false);
  assert.equal(needSplit([40, 50], 100), false);
  assert.equal(needSplit([99], 100), false);
  assert.equal(needSplit([40, 60], 100), true, "total == maxBytes");
  assert.equal(needSplit([100], 100), true, "file == maxBytes");
  assert.equal(needSplit([10, 120, 0], 100), true);
  assert.throws(() => needSplit([1], 0), RangeError);
  assert.throws(() => needSplit([1], 1.5), RangeError);
});

Deno.test("rowSizeEstimate: UTF-8 length of the comma join plus truncated 3 %", () => {
  assert.equal(rowSizeEstimate(["a".repeat(50), "b".repeat(49)]), 103);
  assert.equal(rowSizeEstimate(["x".repeat(33)]), 33);
  assert.equal(rowSizeEstimate(["x".repeat(34)]), 35);
  assert.equal(rowSizeEstimate(["é".repeat(10)]), 20);
  assert.equal(rowSizeEstimate(["€", "😀"]), 8);
  assert.equal(rowSizeEstimate(["", ""]), 1);
  // Quoting is not counted: the raw field value is joined.
  assert.equal(rowSizeEstimate(['a,"b"']), 5);
});

Deno.test("splitCsv: the crossing row stays, header repeated, remainder in the last part", async () => {
  await withTemp(async (dir) => {
    // Each row joins to 50 bytes → estimate 51; at maxBytes 100 a part closes after 2 rows.
    const rows = Array.from({ length: 5 }, (_, i) => [`${i}`.repeat(48), "y"]);
    const parts = await splitCsv(records(["h1", "h2"], rows), {
      maxBytes: 100,
      partPath: (k) => join(dir, `p${k}.csv`),
    });
    assert.deepEqual(parts.map((p) => [p.k, p.rows]), [[1, 2], [2, 2], [3, 1]]);
    for (const [i, p] of parts.entries()) {
      const text = await Deno.readTextFile(p.path);
      const expected = "h1,h2\n" +
        rows.slice(i * 2, i * 2 + 2).map((r) => r.join(",") + "\n").join("");
      assert.equal(text, expected);
      assert.equal(p.bytes, expected.length);
    }
  });
});

Deno.test("splitCsv: a last row that crosses the limit leaves a header-only part, as CMMO", async () => {
  await withTemp(async (dir) => {
    const rows = Array.from({ length: 4 }, (_, i) => [`${i}`.repeat(48), "y"]);
    const parts = await splitCsv(records(["h1", "h2"], rows), {
      maxBytes: 100,
      partPath: (k) => join(dir, `p${k}.csv`),
    });
    assert.deepEqual(parts.map((p) => p.rows), [2, 2, 0]);
    assert.equal(await Deno.readTextFile(parts[2]!.path), "h1,h2\n");
  });
});

Deno.test("splitCsv: fields are re-encoded with Go quoting", async () => {
  await withTemp(async (dir) => {
    const parts = await splitCsv(records(["a", "b"], [["x,1", 'q"'], [" s", "l\nm"]]), {
      maxBytes: 1000,
      partPath: (k) => join(dir, `p${k}.csv`),
    });
    assert.equal(parts.length, 1);
    assert.equal(await Deno.readTextFile(parts[0]!.path), 'a,b\n"x,1","q"""\n" s","l\nm"\n');
  });
});

Deno.test("splitCsv: at most 999 parts; more would lose rows, so it throws and cleans up", async () => {
  await withTemp(async (dir) => {
    const exact = Array.from({ length: MAX_SPLITS - 1 }, (_, i) => [`r${i}`]);
    const parts = await splitCsv(records(["h"], exact), {
      maxBytes: 1,
      partPath: (k) => join(dir, `a${k}.csv`),
    });
    assert.equal(parts.length, 999);
    assert.equal(parts.at(-1)!.rows, 1, "no header-only part after the 999th");

    const sub = join(dir, "more");
    await Deno.mkdir(sub);
    const tooMany = Array.from({ length: MAX_SPLITS }, (_, i) => [`r${i}`]);
    await assert.rejects(
      () =>
        splitCsv(records(["h"], tooMany), { maxBytes: 1, partPath: (k) => join(sub, `b${k}.csv`) }),
      (err: unknown) => err instanceof RangeError && /more than 999 parts/.test(err.message),
    );
    assert.deepEqual(await listNames(sub), []);
  });
});

Deno.test("splitCsv: errors for missing header, ragged rows and existing part files", async () => {
  await withTemp(async (dir) => {
    await assert.rejects(
      () =>
        splitCsv((async function* (): AsyncGenerator<string[]> {})(), {
          maxBytes: 10,
          partPath: (k) => join(dir, `e${k}.csv`),
        }),
      SyntaxError,
    );
    await assert.rejects(
      () =>
        splitCsv(records(["a", "b"], [["1", "2"], ["3"]]), {
          maxBytes: 1000,
          partPath: (k) => join(dir, `r${k}.csv`),
        }),
      (err: unknown) => err instanceof SyntaxError && /1 fields, expected 2/.test(err.message),
    );
    await Deno.writeTextFile(join(dir, "x2.csv"), "taken");
    await assert.rejects(
      () =>
        splitCsv(records(["a"], [["1"], ["2"], ["3"]]), {
          maxBytes: 1,
          partPath: (k) => join(dir, `x${k}.csv`),
        }),
      Deno.errors.AlreadyExists,
    );
    assert.deepEqual(await listNames(dir), ["x2.csv"], "partial parts removed");
  });
});

Deno.test("splitCsv: a part closes when the estimate reaches maxBytes exactly", async () => {
  await withTemp(async (dir) => {
    const rows = Array.from({ length: 3 }, (_, i) => [`${i}`.repeat(48), "y"]); // 51 each
    const exact = await splitCsv(records(["h1", "h2"], rows), {
      maxBytes: 102,
      partPath: (k) => join(dir, `e${k}.csv`),
    });
    assert.deepEqual(exact.map((p) => p.rows), [2, 1]);
    const above = await splitCsv(records(["h1", "h2"], rows), {
      maxBytes: 103,
      partPath: (k) => join(dir, `a${k}.csv`),
    });
    assert.deepEqual(above.map((p) => p.rows), [3, 0]);
  });
});
