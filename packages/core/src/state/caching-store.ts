import type { PartitionStore, StoreEntry } from './backend.js';

/**
 * The caching layer of the store stack (caching → changelogging → backend): an operator's live
 * state in memory, written behind at each commit.
 *
 * Entries are the operator's own decoded objects, read and updated in place per record; they are
 * encoded only when a commit takes the changes, and decoded only when read back from below.
 */

/**
 * The app-wide budget of the write-behind caches of stateful operators, in serialized bytes.
 * Caches account for what they hold; after a commit has made their state clean, they evict
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

/** An entry a cache may evict: clean (flushed) state with its size and last use. */
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
 * The identity of a record key in a cache: primitives as themselves, objects by their JSON (so
 * equal objects are one key), marked so that no string can pass for one.
 */
export const keyId = (key: unknown): unknown => (typeof key === 'object' && key !== null ? `\u0000${JSON.stringify(key)}` : key);

/** The bookkeeping fields a cached entry carries itself, so that a use costs no lookup. */
export interface CachedEntry {
  /** The key's identity ({@link keyId}). */
  readonly id: unknown;
  /** Serialized size at the last flush or load: what the entry counts in the budget while in memory. */
  bytes: number;
  /** The cache's use count at the entry's last use (least recently used goes first). */
  lastUsed: number;
  /** The entry's state is in the store below only; the entry itself stays (it may carry a deadline). */
  evicted: boolean;
}

/** How a cache moves one operator's entries to and from the store below. */
export interface EntryCodec<Entry> {
  /** Appends the store entries of a dirty entry to `into`; returns the entry's serialized size now. */
  encode(entry: Entry, into: StoreEntry[]): number;
  /** Reads an evicted entry's state back from the store below; returns its serialized size. */
  load(entry: Entry, below: PartitionStore): Promise<number>;
  /** Drops an evicted entry's state from memory. */
  unload(entry: Entry): void;
}

/** How a cache reads the entries a lazy restore left unlisted, in the store below only. */
export interface UnlistedReader<Entry> {
  /** The stored entry of `key`, its `bytes` set, or undefined if the store below has none. */
  find(key: unknown, below: PartitionStore): Promise<Entry | undefined>;
  /** Every stored entry, decoded. */
  all(below: PartitionStore): AsyncIterable<Entry>;
}

/**
 * One operator's write-behind cache: its entries by key id, which changed since the last flush,
 * their last use, and their bytes in the app's {@link CacheBudget}.
 *
 * @example
 * const cache = new CachingStore(context.cache, () => context.storeOf(name), codec);
 * const row = cache.get(keyId(key)) ?? cache.add({ id: keyId(key), bytes: 0, lastUsed: 0, evicted: false, total: 0 });
 * row.total += value;
 * cache.use(row);
 * cache.changed(row);
 */
export class CachingStore<Entry extends CachedEntry> {
  readonly #entries = new Map<unknown, Entry>();
  /** Changed since the last flush, in first-change order (the order of the commit batch). */
  readonly #dirty = new Set<Entry>();
  #uses = 0;
  #evictedCount = 0;
  /** Set by a lazy restore: the store below holds keys the cache has not listed. */
  #unlisted: UnlistedReader<Entry> | undefined;
  /** Unlisted mode: keys deleted here whose stored rows may still be below (their tombstones not yet written). */
  readonly #deletedIds = new Set<unknown>();

  constructor(
    private readonly budget: CacheBudget,
    /** The store below (opened by the app after the operator is built, so asked for when needed). */
    private readonly below: () => PartitionStore,
    private readonly codec: EntryCodec<Entry>,
  ) {}

  get(id: unknown): Entry | undefined {
    return this.#entries.get(id);
  }

  /** Whether `entry` is the one the cache holds for its key (not one deleted since). */
  holds(entry: Entry): boolean {
    return this.#entries.get(entry.id) === entry;
  }

  /** A new entry; it counts in the budget from its first flush. */
  add(entry: Entry): Entry {
    this.#deletedIds.delete(entry.id);
    this.#entries.set(entry.id, entry);
    return entry;
  }

  /** Marks a use, for least-recently-used eviction. */
  use(entry: Entry): void {
    entry.lastUsed = ++this.#uses;
  }

  /** Marks an entry for the next flush. A deleted entry may be marked too (its tombstones). */
  changed(entry: Entry): void {
    this.#dirty.add(entry);
  }

  /** The key leaves the cache and the budget; a mark from {@link changed} still flushes it. */
  delete(entry: Entry): void {
    this.budget.usedBytes -= entry.bytes;
    // A later flush still measures it (for its tombstones): nothing more to take back then.
    entry.bytes = 0;
    this.#entries.delete(entry.id);
    if (this.#unlisted) this.#deletedIds.add(entry.id);
  }

  values(): IterableIterator<Entry> {
    return this.#entries.values();
  }

  /** An entry rebuilt from the store below by a restore, `bytes` in size. */
  restored(entry: Entry, bytes: number): void {
    this.budget.usedBytes += bytes - entry.bytes;
    entry.bytes = bytes;
    this.#entries.set(entry.id, entry);
  }

  /**
   * A restore that reads nothing: the stored entries stay below, each read on its first use
   * (through {@link loadKeys}, {@link read} or {@link readAll}), as if every one were evicted.
   */
  restoredLazily(reader: UnlistedReader<Entry>): void {
    this.#unlisted = reader;
  }

  /** Past the budget, restored keys stay on disk until a record or a deadline needs them. */
  evictIfOverBudget(entry: Entry): void {
    if (this.budget.overLimit && this.holds(entry)) this.#evict(entry);
  }

  /** Whether some entries are evicted (so loading has work to look for). */
  hasEvicted(): boolean {
    return this.#evictedCount > 0 || this.#unlisted !== undefined;
  }

  /** Reads an evicted entry's state back from the store below. */
  async load(entry: Entry): Promise<void> {
    if (!entry.evicted) return;
    const bytes = await this.codec.load(entry, this.below());
    entry.evicted = false;
    this.#evictedCount--;
    this.budget.usedBytes += bytes;
    entry.bytes = bytes;
  }

  /** Reads back the evicted (or unlisted) entries of these keys. */
  async loadKeys(keys: readonly unknown[]): Promise<void> {
    if (!this.hasEvicted()) return;
    // Only a key that needs the store waits for it: cached keys cost a look-up, no await; a key
    // the store does not hold (a new one) is asked for once per call, however often it repeats.
    let absent: Set<unknown> | undefined;
    for (const key of keys) {
      const id = keyId(key);
      const entry = this.#entries.get(id);
      if (entry) {
        if (entry.evicted) await this.load(entry);
      } else if (this.#unlisted && !absent?.has(id) && !(await this.#find(key, id))) {
        (absent ??= new Set()).add(id);
      }
    }
  }

  /** The entry of `key`, read back if evicted or unlisted (for queries from the host service). */
  async read(key: unknown): Promise<Entry | undefined> {
    const id = keyId(key);
    const entry = this.#entries.get(id);
    if (entry) {
      if (entry.evicted) await this.load(entry);
      return entry;
    }
    return this.#find(key, id);
  }

  /** Every entry, each read back if evicted (for queries from the host service); unlisted ones are read without joining the cache. */
  async *readAll(): AsyncIterable<Entry> {
    const listed = new Set<unknown>();
    for (const entry of [...this.#entries.values()]) {
      if (entry.evicted) await this.load(entry);
      listed.add(entry.id);
      yield entry;
    }
    if (!this.#unlisted) return;
    for await (const stored of this.#unlisted.all(this.below())) {
      if (listed.has(stored.id) || this.#deletedIds.has(stored.id)) continue;
      // Listed since the snapshot above: the cache's entry is the current one.
      const entry = this.#entries.get(stored.id);
      if (entry?.evicted) await this.load(entry);
      yield entry ?? stored;
    }
  }

  /** Reads an unlisted key from below: it joins the cache as if loaded. */
  async #find(key: unknown, id: unknown): Promise<Entry | undefined> {
    if (!this.#unlisted || this.#deletedIds.has(id)) return undefined;
    const found = await this.#unlisted.find(key, this.below());
    // Another read may have listed the key meanwhile; its entry wins.
    const listed = this.#entries.get(id);
    if (listed) {
      if (listed.evicted) await this.load(listed);
      return listed;
    }
    if (!found || this.#deletedIds.has(id)) return undefined;
    this.#entries.set(id, found);
    this.budget.usedBytes += found.bytes;
    return found;
  }

  /** Changed entries since the last call, encoded for the commit batch; clears the change set. */
  takeChanges(): StoreEntry[] {
    const entries: StoreEntry[] = [];
    for (const entry of this.#dirty) {
      const bytes = this.codec.encode(entry, entries);
      this.budget.usedBytes += bytes - entry.bytes;
      entry.bytes = bytes;
    }
    this.#dirty.clear();
    return entries;
  }

  /** After a commit made the state clean: evicts clean entries used least recently while over budget. */
  evict(): void {
    if (!this.budget.overLimit) return;
    const clean: Entry[] = [];
    for (const entry of this.#entries.values()) if (!entry.evicted && !this.#dirty.has(entry)) clean.push(entry);
    evictLeastRecentlyUsed(this.budget, clean, (entry) => this.#evict(entry));
  }

  /** The task closes: what the cache holds leaves the budget. */
  release(): void {
    for (const entry of this.#entries.values()) {
      if (!entry.evicted) this.budget.usedBytes -= entry.bytes;
      entry.bytes = 0;
    }
  }

  #evict(entry: Entry): void {
    this.budget.usedBytes -= entry.bytes;
    this.codec.unload(entry);
    entry.evicted = true;
    this.#evictedCount++;
  }
}
