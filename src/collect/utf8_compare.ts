/**
 * Byte-order string comparison, as Go's `sort.Strings` does it.
 *
 * @module
 */

/**
 * Compares two strings by the UTF-8 byte order of their contents (Go's `<` on
 * strings). JavaScript's default comparison uses UTF-16 code units, which
 * orders characters above U+FFFF before U+E000–U+FFFF; Go does not.
 *
 * @example
 * ```ts
 * import { compareUtf8 } from "./utf8_compare.ts";
 * ["b", "a"].sort(compareUtf8); // ["a", "b"]
 * compareUtf8("\u{1F600}", "\uFF01") > 0; // true (UTF-8: F0… > EF…)
 * ```
 */
export function compareUtf8(a: string, b: string): number {
  // Equal strings are common (rows of one window share their date columns): one native check.
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (U+D800–U+DFFF) stand for code points above U+FFFF, which sort
    // after every BMP character in UTF-8 byte order.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs === ys) return x < y ? -1 : 1;
    return xs ? 1 : -1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}
