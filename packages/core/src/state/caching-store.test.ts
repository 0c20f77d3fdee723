import { describe, expect, it } from 'vitest';
import type { PartitionStore, StoreEntry } from './backend.js';
import { CacheBudget, CachingStore, keyId, type CachedEntry } from './caching-store.js';
import { memoryState } from './memory.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A running total per key, stored as its decimal text under the key's text. */
interface Total extends CachedEntry {
  readonly key: string;
  total: number | undefined;
}

async function setup(limitBytes: number | undefined) {
  const below = await memoryState().open({ appId: 'app', storeName: 'totals', partition: 0, changelogTopic: 'app-totals-changelog' });
  const budget = new CacheBudget(limitBytes);
  const calls = { encoded: [] as string[], loaded: [] as string[] };
  const cache = new CachingStore<Total>(budget, () => below, {
    encode(entry, into) {
      calls.encoded.push(entry.key);
      const value = encoder.encode(String(entry.total));
      into.push({ key: encoder.encode(entry.key), value });
      return value.length;
    },
    async load(entry, store) {
      calls.loaded.push(entry.key);
      const value = (await store.get(encoder.encode(entry.key)))!;
      entry.total = Number(decoder.decode(value));
      return value.length;
    },
    unload(entry) {
      entry.total = undefined;
    },
  });
  /** One record: what an operator does per record (live object, no encoding). */
  const add = (key: string, amount: number) => {
    const entry = cache.get(keyId(key)) ?? cache.add({ key, id: keyId(key), total: 0, bytes: 0, lastUsed: 0, evicted: false });
    entry.total! += amount;
    cache.use(entry);
    cache.changed(entry);
    return entry;
  };
  /** A commit: the changes go below, then clean entries may leave memory. */
  const commit = async () => {
    const entries = cache.takeChanges();
    await below.write(entries);
    cache.evict();
    return entries;
  };
  return { below, budget, cache, calls, add, commit };
}

const text = (entries: StoreEntry[]) => entries.map(({ key, value }) => `${decoder.decode(key)}=${value && decoder.decode(value)}`);
const inMemory = (cache: CachingStore<Total>) => [...cache.values()].filter((entry) => !entry.evicted).map((entry) => entry.key);

async function stored(below: PartitionStore): Promise<string[]> {
  const out: string[] = [];
  for await (const [key, value] of below.entries()) out.push(`${decoder.decode(key)}=${decoder.decode(value)}`);
  return out;
}

describe('CachingStore', () => {
  it('encodes only what changed since the last flush, once per entry, in first-change order', async () => {
    const { cache, calls, add } = await setup(undefined);
    add('b', 1);
    add('a', 5);
    add('b', 10);
    expect(calls.encoded).toEqual([]);
    expect(text(cache.takeChanges())).toEqual(['b=11', 'a=5']);
    expect(cache.takeChanges()).toEqual([]);
    add('a', 1);
    expect(text(cache.takeChanges())).toEqual(['a=6']);
    expect(calls.encoded).toEqual(['b', 'a', 'a']);
  });

  it('counts each entry at its size at the last flush', async () => {
    const { budget, cache, add } = await setup(undefined);
    add('a', 5);
    expect(budget.usedBytes).toBe(0);
    cache.takeChanges();
    expect(budget.usedBytes).toBe(1);
    add('a', 995);
    add('b', 10);
    cache.takeChanges();
    expect(budget.usedBytes).toBe(4 + 2);
    cache.delete(cache.get('a')!);
    expect(budget.usedBytes).toBe(2);
  });

  it('keeps everything in memory without a limit', async () => {
    const { cache, add, commit } = await setup(undefined);
    for (let index = 0; index < 100; index++) add(`k${index}`, 100);
    await commit();
    expect(cache.hasEvicted()).toBe(false);
  });

  it('evicts clean entries least recently used first, down to 80% of the limit', async () => {
    // Five entries of 2 bytes each (10 bytes) against a limit of 9: evicting stops at 7.2 bytes, so two go.
    const { budget, cache, add, commit } = await setup(9);
    for (const key of ['a', 'b', 'c', 'd', 'e']) add(key, 10);
    add('a', 10);
    add('c', 10);
    await commit();
    expect(inMemory(cache)).toEqual(['a', 'c', 'e']);
    expect(budget.usedBytes).toBe(6);
    expect(cache.hasEvicted()).toBe(true);
    expect(cache.get('b')!.total).toBeUndefined();
  });

  it('never evicts an entry changed since the last flush', async () => {
    const { budget, cache, add } = await setup(3);
    for (const key of ['a', 'b', 'c']) add(key, 10);
    cache.takeChanges();
    add('a', 1);
    add('b', 1);
    cache.evict();
    expect(inMemory(cache)).toEqual(['a', 'b']);
    expect(budget.usedBytes).toBe(4);
  });

  it('loads evicted entries back through the store below, and counts them again', async () => {
    const { below, budget, cache, calls, add, commit } = await setup(5);
    for (const key of ['a', 'b', 'c', 'd']) add(key, 10);
    await commit();
    expect(inMemory(cache)).toEqual(['c', 'd']);
    expect(await stored(below)).toEqual(['a=10', 'b=10', 'c=10', 'd=10']);

    await cache.loadKeys(['b', 'c', 'unknown']);
    expect(calls.loaded).toEqual(['b']);
    expect(cache.get('b')!.total).toBe(10);
    expect(budget.usedBytes).toBe(6);

    expect((await cache.read('a'))!.total).toBe(10);
    expect(await cache.read('unknown')).toBeUndefined();
    expect(cache.hasEvicted()).toBe(false);
    expect(budget.usedBytes).toBe(8);
    // Loaded entries are clean: nothing to write back.
    expect(cache.takeChanges()).toEqual([]);
  });

  it('reads every entry back for a full query', async () => {
    const { cache, add, commit } = await setup(3);
    for (const key of ['a', 'b', 'c']) add(key, 7);
    await commit();
    const all: Array<[string, number | undefined]> = [];
    for await (const entry of cache.readAll()) all.push([entry.key, entry.total]);
    expect(all).toEqual([['a', 7], ['b', 7], ['c', 7]]);
  });

  it('evicts restored entries past the budget as they arrive', async () => {
    const { budget, cache } = await setup(3);
    for (const key of ['a', 'b', 'c']) {
      const entry: Total = { key, id: keyId(key), total: 10, bytes: 0, lastUsed: 0, evicted: false };
      cache.restored(entry, 2);
      cache.evictIfOverBudget(entry);
    }
    expect(inMemory(cache)).toEqual(['a']);
    expect(budget.usedBytes).toBe(2);
  });

  describe('after a lazy restore', () => {
    /** The cache of a restarted operator whose store below already holds `rows`. */
    async function lazilyRestored(limitBytes: number | undefined, rows: Record<string, number>) {
      const fixture = await setup(limitBytes);
      await fixture.below.write(Object.entries(rows).map(([key, total]) => ({ key: encoder.encode(key), value: encoder.encode(String(total)) })));
      const storedEntry = (key: string, value: Uint8Array): Total => ({ key, id: keyId(key), total: Number(decoder.decode(value)), bytes: value.length, lastUsed: 0, evicted: false });
      fixture.cache.restoredLazily({
        async find(key, store) {
          const value = await store.get(encoder.encode(key as string));
          return value && storedEntry(key as string, value);
        },
        async *all(store) {
          for await (const [key, value] of store.entries()) yield storedEntry(decoder.decode(key), value);
        },
      });
      return fixture;
    }

    it('holds nothing, and reads a stored key on its first use', async () => {
      const { budget, cache, add, commit } = await lazilyRestored(undefined, { a: 10, b: 200 });
      expect(inMemory(cache)).toEqual([]);
      expect(budget.usedBytes).toBe(0);
      expect(cache.hasEvicted()).toBe(true);

      await cache.loadKeys(['b', 'new']);
      expect(inMemory(cache)).toEqual(['b']);
      expect(budget.usedBytes).toBe(3);
      add('b', 1);
      add('new', 5);
      expect(text(await commit())).toEqual(['b=201', 'new=5']);
      expect(budget.usedBytes).toBe(4);
      expect((await cache.read('a'))!.total).toBe(10);
      expect(await cache.read('unknown')).toBeUndefined();
    });

    it('does not read back a key deleted here whose tombstone is not written yet', async () => {
      const { cache } = await lazilyRestored(undefined, { a: 10 });
      await cache.loadKeys(['a']);
      cache.delete(cache.get(keyId('a'))!);
      await cache.loadKeys(['a']);
      expect(cache.get(keyId('a'))).toBeUndefined();
      expect(await cache.read('a')).toBeUndefined();
      const all: string[] = [];
      for await (const entry of cache.readAll()) all.push(entry.key);
      expect(all).toEqual([]);
    });

    it('queries every entry once: listed ones as the cache holds them, unlisted ones from below', async () => {
      const { cache, add } = await lazilyRestored(undefined, { a: 1, b: 2, c: 3 });
      await cache.loadKeys(['b']);
      add('b', 40);
      add('d', 4);
      const all: Array<[string, number | undefined]> = [];
      for await (const entry of cache.readAll()) all.push([entry.key, entry.total]);
      expect(all.sort()).toEqual([['a', 1], ['b', 42], ['c', 3], ['d', 4]]);
    });

    it('evicts read entries past the budget like loaded ones', async () => {
      const { budget, cache, commit } = await lazilyRestored(4, { a: 10, b: 20, c: 30 });
      await cache.loadKeys(['a', 'b', 'c']);
      expect(budget.usedBytes).toBe(6);
      await commit();
      expect(budget.usedBytes).toBeLessThanOrEqual(3.2);
      expect((await cache.read('a'))!.total).toBe(10);
    });
  });

  it('gives back everything it holds on release, evicted entries once', async () => {
    const { budget, cache, add, commit } = await setup(5);
    for (const key of ['a', 'b', 'c', 'd']) add(key, 10);
    await commit();
    expect(budget.usedBytes).toBe(4);
    cache.release();
    expect(budget.usedBytes).toBe(0);
  });

  it('identifies object keys by their JSON, apart from any string', () => {
    expect(keyId({ a: 1 })).toBe(keyId({ a: 1 }));
    expect(keyId({ a: 1 })).not.toBe('{"a":1}');
    expect(keyId('{"a":1}')).toBe('{"a":1}');
    expect(keyId(7)).toBe(7);
    expect(keyId(null)).toBe(null);
  });
});
