/**
 * Small deterministic random sources for the synthetic hub: a seeded PRNG
 * (mulberry32) for structural choices and a stateless hash for per-sample
 * noise, so any sample can be recomputed from (salt, index) alone.
 *
 * @module
 */

/**
 * A seeded pseudo-random generator (mulberry32). Never uses `Math.random`.
 *
 * @example
 * ```ts
 * import { Prng } from "./prng.ts";
 * const a = new Prng(7);
 * const b = new Prng(7);
 * a.next() === b.next(); // true
 * ```
 */
export class Prng {
  #state: number;

  /** Creates a generator from a 32-bit seed (other numbers are truncated). */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) {
      throw new RangeError(`Cannot seed a PRNG with ${seed}: the seed must be a finite number`);
    }
    this.#state = Math.trunc(seed) >>> 0;
  }

  /** Returns a float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Returns an integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    if (!Number.isInteger(min) || !Number.isInteger(max) || max < min) {
      throw new RangeError(`Invalid integer range [${min}, ${max}]`);
    }
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** Returns an unsigned 32-bit integer, e.g. a salt for {@linkcode hash01}. */
  uint32(): number {
    return Math.floor(this.next() * 4294967296) >>> 0;
  }

  /** Picks one element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new RangeError("Cannot pick from an empty list");
    return item;
  }

  /** Returns `length` lowercase hexadecimal digits. */
  hex(length: number): string {
    let out = "";
    for (let i = 0; i < length; i++) out += Math.floor(this.next() * 16).toString(16);
    return out;
  }

  /** Returns `length` characters from Kubernetes' pod-name suffix alphabet. */
  suffix(length: number): string {
    const alphabet = "bcdfghjklmnpqrstvwxz2456789";
    let out = "";
    for (let i = 0; i < length; i++) out += alphabet[Math.floor(this.next() * alphabet.length)];
    return out;
  }

  /** Returns a version-4-shaped UUID string. */
  uuid(): string {
    const h = this.hex(32).split("");
    h[12] = "4";
    h[16] = "89ab"[Math.floor(this.next() * 4)] ?? "8";
    const s = h.join("");
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${
      s.slice(20)
    }`;
  }
}

/**
 * Stateless noise in [0, 1) for sample `index` of the series salted with `salt`.
 *
 * @example
 * ```ts
 * import { hash01 } from "./prng.ts";
 * hash01(42, 3) === hash01(42, 3); // true
 * ```
 */
export function hash01(salt: number, index: number): number {
  let h = Math.imul((salt >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^
    Math.imul((index + 0x632be5ab) | 0, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}
