/**
 * Removal of a secret (the bearer token) from text that may be shown or
 * stored, including text that was cut to a length: a cut can leave the first
 * part of a token at the end, and that part is removed too.
 *
 * @module
 */

/** What replaces a secret. */
export const REDACTED = "[redacted]";

/**
 * Removes secrets from text. Every occurrence of a secret (and of its
 * JSON-escaped form) is replaced by `[redacted]`; {@linkcode Redactor.cut}
 * redacts BEFORE cutting, and {@linkcode Redactor.cutEnd} also removes a
 * trailing piece of text that could be the first part of a secret.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Redactor } from "./redact.ts";
 *
 * const r = new Redactor(["s3cr3t-token"]);
 * assert.equal(r.redact("token s3cr3t-token!"), "token [redacted]!");
 * assert.equal(r.cut("x s3cr3t-token y", 8), "x [redac…");
 * assert.equal(r.cutEnd("ends with s3cr3"), "ends with [redacted]");
 * ```
 */
export class Redactor {
  readonly #secrets: string[];

  /** @param secrets Secrets to remove; empty strings are ignored. */
  constructor(secrets: readonly (string | undefined)[]) {
    const all = new Set<string>();
    for (const s of secrets) {
      if (s === undefined || s === "") continue;
      all.add(s);
      all.add(JSON.stringify(s).slice(1, -1));
      all.add(encodeURIComponent(s));
    }
    // Longest first, so a secret that contains another is removed whole.
    this.#secrets = [...all].sort((a, b) => b.length - a.length);
  }

  /** Whether there is anything to redact. */
  get active(): boolean {
    return this.#secrets.length > 0;
  }

  /** Length of the longest secret form (0 without secrets). */
  get longest(): number {
    return this.#secrets[0]?.length ?? 0;
  }

  /** `text` with every secret replaced by `[redacted]`. */
  redact(text: string): string {
    for (const s of this.#secrets) {
      if (text.includes(s)) text = text.replaceAll(s, REDACTED);
    }
    return text;
  }

  /**
   * Redacts `text`, then cuts it to `max` characters (adding `…` when cut),
   * then removes a trailing first part of a secret the cut may have left.
   */
  cut(text: string, max: number): string {
    const clean = this.redact(text);
    if (clean.length <= max) return clean;
    return `${this.#stripPartial(clean.slice(0, max))}…`;
  }

  /**
   * For text that something else already cut at its end: redacts it and
   * removes a trailing first part of a secret.
   */
  cutEnd(text: string): string {
    return this.#stripPartial(this.redact(text));
  }

  #stripPartial(text: string): string {
    for (const s of this.#secrets) {
      for (let k = Math.min(s.length - 1, text.length); k >= 1; k--) {
        if (text.endsWith(s.slice(0, k))) return text.slice(0, text.length - k) + REDACTED;
      }
    }
    return text;
  }
}
