import assert from "node:assert/strict";
import { type CsvErrorCause, encodeField, encodeRecord, readCsvRecords } from "./csv.ts";

interface CsvVector {
  record: string[];
  out: string;
  read: string[][];
}

interface CsvDecodeVector {
  in: string;
  records: string[][];
  error?: string;
}

const vectors = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/go_vectors.json", import.meta.url)),
) as { csv: CsvVector[]; csv_decode: CsvDecodeVector[] };

const encoder = new TextEncoder();

/** A byte stream that delivers `bytes` in chunks of the given sizes (cycled). */
function streamOf(bytes: Uint8Array, chunkSizes: readonly number[] = [bytes.length || 1]) {
  let offset = 0;
  let turn = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      const size = chunkSizes[turn++ % chunkSizes.length] as number;
      controller.enqueue(bytes.slice(offset, offset + size));
      offset += size;
    },
  });
}

/** Reads all records; returns them with the error message (if any) that stopped reading. */
async function readAll(
  stream: ReadableStream<Uint8Array>,
  fieldsPerRecord?: number,
): Promise<{ records: string[][]; error?: string }> {
  const records: string[][] = [];
  try {
    const options = fieldsPerRecord === undefined ? {} : { fieldsPerRecord };
    for await (const record of readCsvRecords(stream, options)) {
      records.push(record);
    }
    return { records };
  } catch (error) {
    assert.ok(error instanceof SyntaxError, `expected SyntaxError, got ${error}`);
    return { records, error: error.message };
  }
}

Deno.test("encodeRecord() matches Go's csv.Writer for every vector", () => {
  assert.ok(vectors.csv.length > 2000);
  for (const { record, out } of vectors.csv) {
    assert.equal(encodeRecord(record), out, JSON.stringify(record));
    assert.equal(record.map(encodeField).join(",") + "\n", out);
  }
});

Deno.test("encodeField() quotes exactly Go's special cases", () => {
  assert.equal(encodeField(""), "");
  assert.equal(encodeField("abc"), "abc");
  assert.equal(encodeField("a b"), "a b");
  assert.equal(encodeField("a,b"), '"a,b"');
  assert.equal(encodeField('a"b'), '"a""b"');
  assert.equal(encodeField("a\r\nb"), '"a\r\nb"'); // UseCRLF=false: kept verbatim
  assert.equal(encodeField(" a"), '" a"');
  assert.equal(encodeField("\ta"), '"\ta"');
  assert.equal(encodeField("\u00a0a"), '"\u00a0a"');
  assert.equal(encodeField("\u3000a"), '"\u3000a"');
  assert.equal(encodeField("\u200ba"), "\u200ba"); // zero width space is not White_Space
  assert.equal(encodeField("\ufeffa"), "\ufeffa");
  assert.equal(encodeField("a "), "a ");
  assert.equal(encodeField("\\."), '"\\."');
  assert.equal(encodeField("\\.x"), "\\.x");
  assert.equal(encodeField("label_a:b|label_c:d"), "label_a:b|label_c:d");
  assert.equal(encodeRecord([]), "\n");
});

Deno.test("readCsvRecords() reads every encoded vector like Go's csv.Reader", async () => {
  for (const { record, out, read } of vectors.csv) {
    const got = await readAll(streamOf(encoder.encode(out)));
    assert.deepEqual(got, { records: read }, JSON.stringify(out));
    // decode(encode(x)) == x except where Go itself changes the data.
    const goChangesIt = record.some((field) => field.includes("\r\n")) ||
      (record.length === 1 && record[0] === "");
    if (!goChangesIt) {
      assert.deepEqual(got.records, [record]);
    }
  }
});

Deno.test("readCsvRecords() reads all vectors as one stream fed one byte at a time", async () => {
  const text = vectors.csv.map((v) => v.out).join("");
  const expected = vectors.csv.flatMap((v) => v.read);
  const got = await readAll(streamOf(encoder.encode(text), [1]), -1);
  assert.equal(got.error, undefined);
  assert.equal(got.records.length, expected.length);
  assert.deepEqual(got.records, expected);
});

Deno.test("readCsvRecords() matches Go on raw input, including errors", async () => {
  assert.ok(vectors.csv_decode.some((v) => v.error !== undefined));
  for (const vector of vectors.csv_decode) {
    const expected = {
      records: vector.records,
      ...(vector.error === undefined ? {} : { error: `Cannot parse CSV: ${vector.error}` }),
    };
    const bytes = encoder.encode(vector.in);
    for (const chunks of [[bytes.length || 1], [1], [2, 3]]) {
      const got = await readAll(streamOf(bytes, chunks));
      assert.deepEqual(got, expected, `${JSON.stringify(vector.in)} in chunks of ${chunks}`);
    }
  }
});

Deno.test("readCsvRecords() attaches structured error details", async () => {
  const bytes = encoder.encode('a,b\n"c\nd","e"f\n');
  try {
    await Array.fromAsync(readCsvRecords(streamOf(bytes)));
    assert.fail("expected a SyntaxError");
  } catch (error) {
    assert.ok(error instanceof SyntaxError);
    const cause: CsvErrorCause = { kind: "quote", startLine: 2, line: 3, column: 6 };
    assert.deepEqual(error.cause, cause);
  }
});

Deno.test("readCsvRecords() enforces the field count like Go", async () => {
  const text = "a,b\nc,d,e\n";
  assert.deepEqual(await readAll(streamOf(encoder.encode(text))), {
    records: [["a", "b"]],
    error: "Cannot parse CSV: record on line 2: wrong number of fields",
  });
  assert.deepEqual(await readAll(streamOf(encoder.encode(text)), -1), {
    records: [["a", "b"], ["c", "d", "e"]],
  });
  assert.deepEqual(await readAll(streamOf(encoder.encode(text)), 3), {
    records: [],
    error: "Cannot parse CSV: record on line 1: wrong number of fields",
  });
  await assert.rejects(
    () => Array.fromAsync(readCsvRecords(streamOf(encoder.encode(text)), { fieldsPerRecord: 1.5 })),
    TypeError,
  );
});

Deno.test("readCsvRecords() keeps a BOM and rejects invalid UTF-8", async () => {
  const withBom = encoder.encode("\ufeffa,b\n");
  assert.deepEqual(await readAll(streamOf(withBom, [1])), { records: [["\ufeffa", "b"]] });
  const invalid = new Uint8Array([0x61, 0x2c, 0xff, 0x0a]);
  await assert.rejects(() => Array.fromAsync(readCsvRecords(streamOf(invalid))), TypeError);
  const truncated = new Uint8Array([0x61, 0x2c, 0xe2, 0x82]); // cut inside "€"
  await assert.rejects(() => Array.fromAsync(readCsvRecords(streamOf(truncated))), TypeError);
});

Deno.test("readCsvRecords() handles records spanning many chunks", async () => {
  // Pseudo-random rows with long quoted multi-line fields, in odd chunk sizes.
  let state = 12345;
  const rand = (n: number) => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % n;
  };
  const pieces = ["x", ",", '"', "\n", "\r\n", " ", "é", "😀", "\u3000", "\\."];
  const rows: string[][] = [];
  for (let r = 0; r < 300; r++) {
    const row: string[] = [];
    for (let f = 0; f < 4; f++) {
      const length = rand(10) === 0 ? 3_000 : rand(12);
      let field = "";
      for (let i = 0; i < length; i++) {
        field += pieces[rand(pieces.length)];
      }
      row.push(field.replaceAll("\r\n", "\n"));
    }
    rows.push(row);
  }
  const bytes = encoder.encode(rows.map(encodeRecord).join(""));
  assert.ok(bytes.length > 500_000);
  for (const chunks of [[65_536], [1, 7, 4093], [3]]) {
    const got = await readAll(streamOf(bytes, chunks));
    assert.deepEqual(got, { records: rows });
  }
});

Deno.test("readCsvRecords() cancels the source when the consumer stops early", async () => {
  let cancelled = false;
  let pulls = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulls++;
      controller.enqueue(encoder.encode("a,b\n"));
    },
    cancel() {
      cancelled = true;
    },
  });
  let count = 0;
  for await (const record of readCsvRecords(source)) {
    assert.deepEqual(record, ["a", "b"]);
    if (++count === 3) {
      break;
    }
  }
  assert.ok(cancelled);
  assert.ok(pulls < 10);
});
