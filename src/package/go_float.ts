/**
 * Go-compatible number formatting for CSV cells.
 *
 * CMMO writes every numeric report value with `strconv.FormatFloat(v, 'f', 6, 64)`
 * (contract §3.7). {@linkcode formatFloat} reproduces that output exactly.
 *
 * @module
 */

const FRACTION_DIGITS = 6;
const SCALE = 1_000_000n;
const scratch = new DataView(new ArrayBuffer(8));

/**
 * Formats `v` exactly like Go's `strconv.FormatFloat(v, 'f', 6, 64)`.
 *
 * - fixed notation with exactly six decimals, never an exponent (`1e300` prints all digits);
 * - correctly rounded from the exact binary value, ties to even (`0.0078125` → `0.007812`);
 * - a minus sign for every negative value and for `-0`, even when the digits round to zero
 *   (`-1e-9` → `-0.000000`);
 * - `NaN`, `+Inf` and `-Inf` for the non-finite values.
 *
 * Fast path: `Number.prototype.toFixed(6)` is specified (and implemented by V8) as correctly
 * rounded on the exact binary value, with ties going to the larger magnitude. It therefore
 * differs from Go only on exact ties, which happen exactly when `128 × |v|` is an odd integer,
 * and for `|v| ≥ 1e21`, where it switches to exponent notation. Both cases take the exact
 * BigInt path ({@linkcode formatFloatExact}).
 *
 * @example Usage
 * ```ts
 * import { formatFloat } from "./go_float.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatFloat(4 * 3600), "14400.000000");
 * assert.equal(formatFloat(0.0078125), "0.007812");
 * assert.equal(formatFloat(-1e-9), "-0.000000");
 * assert.equal(formatFloat(Infinity), "+Inf");
 * ```
 *
 * @param v The value to format.
 * @returns The text Go would write for `v`.
 */
export function formatFloat(v: number): string {
  if (v > 0) {
    return v === Infinity ? "+Inf" : formatMagnitude(v);
  }
  if (v < 0) {
    return v === -Infinity ? "-Inf" : "-" + formatMagnitude(-v);
  }
  if (v === 0) {
    return 1 / v < 0 ? "-0.000000" : "0.000000";
  }
  return "NaN";
}

/**
 * Formats `v` like Go's `strconv.FormatFloat(v, 'f', 6, 64)` using only exact BigInt
 * arithmetic on the binary value of `v` (no `toFixed`). {@linkcode formatFloat} gives the
 * same result faster; this function is its reference implementation and its fallback.
 *
 * @example Usage
 * ```ts
 * import { formatFloatExact } from "./go_float.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatFloatExact(1e21), "1000000000000000000000.000000");
 * assert.equal(formatFloatExact(-0.0078125), "-0.007812");
 * assert.equal(formatFloatExact(-Infinity), "-Inf");
 * ```
 *
 * @param v The value to format.
 * @returns The text Go would write for `v`.
 */
export function formatFloatExact(v: number): string {
  if (Number.isNaN(v)) {
    return "NaN";
  }
  if (v === Infinity) {
    return "+Inf";
  }
  if (v === -Infinity) {
    return "-Inf";
  }
  const negative = v < 0 || (v === 0 && 1 / v < 0);
  const digits = formatExactMagnitude(negative ? -v : v);
  return negative ? "-" + digits : digits;
}

/** Formats a positive finite value. */
function formatMagnitude(a: number): string {
  if (a < 1e21) {
    const scaled = a * 128; // exact: multiplying by a power of two
    if (scaled % 2 !== 1) {
      return a.toFixed(FRACTION_DIGITS);
    }
    // 128·a is an odd integer: a·10^6 ends in exactly .5, a tie that toFixed rounds up.
    return formatExactMagnitude(a);
  }
  return formatExactMagnitude(a);
}

/** Exact `'f'`, 6 formatting of a finite, non-negative value (round half to even). */
function formatExactMagnitude(a: number): string {
  scratch.setFloat64(0, a);
  const high = scratch.getUint32(0);
  const low = scratch.getUint32(4);
  const biasedExponent = (high >>> 20) & 0x7ff;
  let mantissa = (BigInt(high & 0xfffff) << 32n) | BigInt(low);
  let exponent: number;
  if (biasedExponent === 0) {
    exponent = -1074; // subnormal
  } else {
    mantissa |= 1n << 52n;
    exponent = biasedExponent - 1075;
  }
  // a = mantissa · 2^exponent; we need round(a · 10^6) with ties to even.
  let units: bigint;
  if (exponent >= 0) {
    units = (mantissa << BigInt(exponent)) * SCALE;
  } else {
    const shift = BigInt(-exponent);
    const numerator = mantissa * SCALE;
    units = numerator >> shift;
    const remainder = numerator - (units << shift);
    const half = 1n << (shift - 1n);
    if (remainder > half || (remainder === half && (units & 1n) === 1n)) {
      units += 1n;
    }
  }
  const text = units.toString().padStart(FRACTION_DIGITS + 1, "0");
  return text.slice(0, -FRACTION_DIGITS) + "." + text.slice(-FRACTION_DIGITS);
}
