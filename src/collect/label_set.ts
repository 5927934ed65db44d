/**
 * A series' labels as the local evaluator reads them: two parallel arrays,
 * names in UTF-8 byte order, no empty values, with a key for hashing built on
 * first use. Shared by the raw store (`raw_fetch.ts`), whose series are label
 * sets themselves, and the evaluator (`local_eval.ts`), so a batch's tens of
 * thousands of raw series need no second object each.
 *
 * @module
 */

/**
 * Sorted label set with a key for hashing (name/value pairs, each prefixed
 * with its length). The key is built on first use and kept: most label sets
 * (the raw series', kept for a whole batch) never need one, and it is the
 * largest part of a set.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LabelSet } from "./label_set.ts";
 * const ls = new LabelSet(["job", "pod"], ["a", "b:c"]);
 * assert.equal(ls.key, "3:job1:a3:pod3:b:c");
 * ```
 */
export class LabelSet {
  readonly names: readonly string[];
  readonly values: readonly string[];
  #key: string | undefined = undefined;

  constructor(names: readonly string[], values: readonly string[]) {
    this.names = names;
    this.values = values;
  }

  /** The set as one flat string: equal for equal sets, different otherwise. */
  get key(): string {
    if (this.#key === undefined) {
      const parts = new Array<string>(this.names.length);
      for (let i = 0; i < parts.length; i++) parts[i] = keyPart(this.names[i]!, this.values[i]!);
      this.#key = parts.join(""); // one flat string, not a rope of parts
    }
    return this.#key;
  }
}

/**
 * One label as part of a key: name and value each prefixed with its length,
 * so a sequence of them is uniquely decodable whatever the values contain,
 * and the key stays a one-byte string for Latin-1 labels (half the memory of
 * the two-byte strings that separator characters outside Latin-1 would make).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyPart } from "./label_set.ts";
 * assert.equal(keyPart("a", "1:2"), "1:a3:1:2");
 * ```
 */
export function keyPart(name: string, value: string): string {
  return `${name.length}:${name}${value.length}:${value}`;
}

/**
 * A 32-bit mix of a label's name and value, given as numbers (each distinct
 * string numbered once): summed over a set, it does not depend on the order of
 * the labels, so it hashes a label set held as an object.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mixPair } from "./label_set.ts";
 * const a = (mixPair(0, 1) + mixPair(2, 3)) | 0;
 * assert.equal((mixPair(2, 3) + mixPair(0, 1)) | 0, a);
 * assert.notEqual((mixPair(0, 3) + mixPair(2, 1)) | 0, a);
 * ```
 */
export function mixPair(name: number, value: number): number {
  let x = Math.imul(name + 1, 0x9e3779b1) ^ value;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return x ^ (x >>> 16);
}
