/**
 * The app-wide budget of the write-behind caches of stateful operators, in serialized bytes.
 * Operators account for what they hold; after a commit has made their state clean, they evict
 * the keys used least recently until the total is back under the target.
 */
export class CacheBudget {
  usedBytes = 0;

  constructor(readonly limitBytes: number | undefined) {}

  get overLimit(): boolean {
    return this.limitBytes !== undefined && this.usedBytes > this.limitBytes;
  }

  /** Evicting stops at 80% of the limit, so that one more record does not trigger it again. */
  get targetBytes(): number {
    return this.limitBytes === undefined ? Infinity : this.limitBytes * 0.8;
  }
}

/** An entry an operator may evict: clean (flushed) state with its size and last use. */
export interface Evictable {
  lastUsed: number;
  bytes: number;
}

/** Evicts the least recently used candidates until the budget is back under its target. */
export function evictLeastRecentlyUsed<T extends Evictable>(budget: CacheBudget, candidates: T[], evict: (entry: T) => void): void {
  if (!budget.overLimit) return;
  candidates.sort((a, b) => a.lastUsed - b.lastUsed);
  for (const candidate of candidates) {
    if (budget.usedBytes <= budget.targetBytes) return;
    evict(candidate);
  }
}

/**
 * The identity of a record key in an operator's in-memory map: primitives as themselves, objects
 * by their JSON (so equal objects are one key), marked so that no string can pass for one.
 */
export const keyId = (key: unknown): unknown => (typeof key === 'object' && key !== null ? `\u0000${JSON.stringify(key)}` : key);
