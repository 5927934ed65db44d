/**
 * Go's `strconv.ParseFloat(s, 64)`, the parser Prometheus' sample values are
 * written for: the same accepted grammar and the same float64 for every input
 * it accepts (pinned by vectors from `tools/goparsefloat`).
 *
 * Accepted: an optional sign, decimal digits with an optional `.` and an
 * optional `e`/`E` exponent; hexadecimal `0x…` only with a `p`/`P` exponent;
 * `_` only between digits (or after the `0x` prefix), as Go's `underscoreOK`
 * checks; `NaN` (no sign), `Inf` and `Infinity` (optional sign), case-
 * insensitive. Refused: anything else, including surrounding spaces, the empty
 * string, and finite literals that round beyond float64 (Go's `ErrRange`).
 *
 * @module
 */

/**
 * Whether `s` is a decimal literal without underscores, `[+-]?(d+(.d*)?|.d+)([eE][+-]?d+)?`:
 * the common case, which `Number()` reads exactly as Go does. A loop, not a regular
 * expression: it runs once per sample.
 */
function isPlainDecimal(s: string): boolean {
  const n = s.length;
  let i = 0;
  let c = s.charCodeAt(0);
  if (c === 0x2b || c === 0x2d) c = s.charCodeAt(++i);
  let digits = 0;
  while (c >= 0x30 && c <= 0x39) {
    digits++;
    c = s.charCodeAt(++i);
  }
  if (c === 0x2e) {
    c = s.charCodeAt(++i);
    while (c >= 0x30 && c <= 0x39) {
      digits++;
      c = s.charCodeAt(++i);
    }
  }
  if (digits === 0) return false;
  if (c === 0x65 || c === 0x45) {
    c = s.charCodeAt(++i);
    if (c === 0x2b || c === 0x2d) c = s.charCodeAt(++i);
    if (!(c >= 0x30 && c <= 0x39)) return false;
    while (c >= 0x30 && c <= 0x39) c = s.charCodeAt(++i);
  }
  return i === n;
}

const HEX_VALUE: Record<string, number> = {};
for (const [i, c] of [..."0123456789abcdef"].entries()) {
  HEX_VALUE[c] = i;
  HEX_VALUE[c.toUpperCase()] = i;
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

function isHexDigit(c: string | undefined): boolean {
  return c !== undefined && HEX_VALUE[c] !== undefined;
}

/** Go's `special`: `NaN`, `[+-]Inf`, `[+-]Infinity`, case-insensitive, the whole string. */
function special(s: string): number | undefined {
  const lower = s.toLowerCase();
  if (lower === "nan") return NaN;
  let sign = 1;
  let rest = lower;
  if (rest[0] === "+" || rest[0] === "-") {
    if (rest[0] === "-") sign = -1;
    rest = rest.slice(1);
  }
  return rest === "inf" || rest === "infinity" ? sign * Infinity : undefined;
}

/** Go's `underscoreOK` (strconv/atoi.go): `_` only between digits or after a base prefix. */
function underscoreOK(s: string): boolean {
  let saw = "^";
  let i = 0;
  if (s[0] === "-" || s[0] === "+") s = s.slice(1);
  let hex = false;
  const p = s[1]?.toLowerCase();
  if (s.length >= 2 && s[0] === "0" && (p === "b" || p === "o" || p === "x")) {
    i = 2;
    saw = "0";
    hex = p === "x";
  }
  for (; i < s.length; i++) {
    const c = s[i];
    if (isDigit(c) || (hex && isHexDigit(c))) {
      saw = "0";
      continue;
    }
    if (c === "_") {
      if (saw !== "0") return false;
      saw = "_";
      continue;
    }
    if (saw === "_") return false;
    saw = "!";
  }
  return saw !== "_";
}

/** Rounds `m · 2^e2` (m > 0) to the nearest float64, ties to even; Infinity past the range. */
function roundBinary(m: bigint, e2: number): number {
  const bits = m.toString(2).length;
  const top = bits - 1 + e2; // exponent of the leading bit
  if (top > 1024) return Infinity;
  if (top < -1076) return 0;
  // The result is r · 2^q with 53 significant bits, fewer for subnormals.
  const q = Math.max(top - 52, -1074);
  let r: bigint;
  if (e2 >= q) {
    r = m << BigInt(e2 - q);
  } else {
    const shift = BigInt(q - e2);
    r = m >> shift;
    const rest = m - (r << shift);
    const half = 1n << (shift - 1n);
    if (rest > half || (rest === half && (r & 1n) === 1n)) r += 1n;
  }
  // Rounding up may carry into a 54th bit: still exact after halving.
  const value = Number(r) * 2 ** q;
  return value > Number.MAX_VALUE ? Infinity : value;
}

/**
 * Parses `text` exactly as Go's `strconv.ParseFloat(text, 64)` does, or
 * returns `undefined` where Go returns an error (syntax or range).
 *
 * @example
 * ```ts
 * import { parseGoFloat } from "./go_parse_float.ts";
 * parseGoFloat("1e+21"); // 1e21
 * parseGoFloat("-Infinity"); // -Infinity
 * parseGoFloat("0x1p-2"); // 0.25
 * parseGoFloat("0x10"); // undefined (hex needs a p exponent)
 * parseGoFloat("1_000"); // 1000 (Go allows _ between digits)
 * parseGoFloat(" 1"); // undefined
 * ```
 */
export function parseGoFloat(text: string): number | undefined {
  if (text.length === 0) return undefined;
  if (isPlainDecimal(text)) {
    // What Prometheus writes: JavaScript reads these exactly as Go does (correctly rounded).
    const v = Number(text);
    return Number.isFinite(v) ? v : undefined;
  }
  const sp = special(text);
  if (sp !== undefined) return sp;
  // readFloat (strconv/atof.go), collecting a normalized literal instead of a mantissa.
  const s = text;
  let i = 0;
  let neg = false;
  if (s[i] === "+") i++;
  else if (s[i] === "-") {
    i++;
    neg = true;
  }
  let hex = false;
  if (i + 2 < s.length && s[i] === "0" && (s[i + 1] === "x" || s[i + 1] === "X")) {
    hex = true;
    i += 2;
  }
  let underscores = false;
  let sawDot = false;
  let sawDigits = false;
  let intDigits = "";
  let fracDigits = "";
  for (; i < s.length; i++) {
    const c = s[i]!;
    if (c === "_") {
      underscores = true;
      continue;
    }
    if (c === ".") {
      if (sawDot) break;
      sawDot = true;
      continue;
    }
    if (isDigit(c) || (hex && isHexDigit(c))) {
      sawDigits = true;
      if (sawDot) fracDigits += c;
      else intDigits += c;
      continue;
    }
    break;
  }
  if (!sawDigits) return undefined;
  let exponent = 0;
  const expChar = hex ? "p" : "e";
  if (i < s.length && s[i]!.toLowerCase() === expChar) {
    i++;
    if (i >= s.length) return undefined;
    let esign = 1;
    if (s[i] === "+") i++;
    else if (s[i] === "-") {
      i++;
      esign = -1;
    }
    if (!isDigit(s[i])) return undefined;
    let e = 0;
    for (; i < s.length && (isDigit(s[i]) || s[i] === "_"); i++) {
      if (s[i] === "_") {
        underscores = true;
        continue;
      }
      if (e < 10000) e = e * 10 + (s.charCodeAt(i) - 48);
    }
    exponent = e * esign;
  } else if (hex) {
    return undefined; // a hex mantissa needs a p exponent
  }
  if (i !== s.length) return undefined;
  if (underscores && !underscoreOK(s)) return undefined;

  let value: number;
  if (hex) {
    const digits = (intDigits + fracDigits).replace(/^0+/, "");
    value = digits === ""
      ? 0
      : roundBinary(BigInt(`0x${digits}`), exponent - 4 * fracDigits.length);
  } else {
    // JavaScript's Number() rounds decimal literals correctly, as Go does.
    value = Number(`${intDigits || "0"}.${fracDigits || "0"}e${exponent}`);
  }
  if (!Number.isFinite(value)) return undefined; // Go: ErrRange
  return neg ? -value : value;
}
