/**
 * The behaviour every {@link StateBackend} must have, as a vitest suite. The memory and LevelDB
 * backends both run it, so an operator tested on memory state behaves the same on disk.
 */
import { Buffer } from 'node:buffer';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KeyRange, PartitionStore, StateBackend, StoreEntry, StoreSpec } from './backend.js';
import { compareBytes } from './keys.js';
import { mulberry32 } from '../testing/random.js';

/**
 * Options of {@link describeStoreContract}.
 *
 * @example
 * ```ts
 * // The memory backend's storage is the backend object itself, so reopening hands it back.
 * describeStoreContract('memoryState', () => memoryState(), { reopen: (previous) => previous });
 * ```
 */
export interface StoreContractOptions {
  /**
   * For a durable backend: opens a new backend over the same storage as `previous`, which the
   * suite has already closed. When given, the suite also checks that data, deletes, clears and
   * checkpoints survive a close and reopen.
   */
  readonly reopen?: (previous: StateBackend) => Promise<StateBackend> | StateBackend;
}

/**
 * Declares the storage contract suite for one {@link StateBackend} implementation. Call it at the
 * top level of a test file; `makeBackend` runs before every test and must return a fresh, empty
 * backend (for a disk backend: on a new directory). The suite closes each backend it made.
 *
 * @example
 * ```ts
 * // packages/state/src/level.contract.test.ts
 * let dir = '';
 * describeStoreContract(
 *   'levelState',
 *   async () => levelState({ dir: (dir = await mkdtemp(join(tmpdir(), 'eddy-'))) }),
 *   { reopen: () => levelState({ dir }) },
 * );
 * ```
 */
export function describeStoreContract(
  name: string,
  makeBackend: () => Promise<StateBackend> | StateBackend,
  opts: StoreContractOptions = {},
): void {
  describe(`StateBackend contract: ${name}`, () => {
    let backend: StateBackend;

    beforeEach(async () => {
      backend = await makeBackend();
    });

    afterEach(async () => {
      await backend.close();
    });

    const open = (overrides: Partial<StoreSpec> = {}): Promise<PartitionStore> => backend.open(spec(overrides));

    describe('basics', () => {
      it('has a kind', () => {
        expect(typeof backend.kind).toBe('string');
        expect(backend.kind.length).toBeGreaterThan(0);
      });

      it('starts empty, without a checkpoint', async () => {
        const store = await open();
        expect(await collect(store)).toEqual([]);
        expect(await store.get(bytes(1))).toBeUndefined();
        expect(await store.checkpoint()).toBeUndefined();
      });

      it('puts, overwrites and gets', async () => {
        const store = await open();
        await store.write([put([1], [10]), put([2], [20])]);
        await store.write([put([1], [11])]);
        expect(hexOf(await store.get(bytes(1)))).toBe('0b');
        expect(hexOf(await store.get(bytes(2)))).toBe('14');
        expect(await store.get(bytes(3))).toBeUndefined();
      });

      it('deletes a key with a tombstone, and ignores a tombstone for a missing key', async () => {
        const store = await open();
        await store.write([put([1], [10]), put([2], [20])]);
        await store.write([del([1]), del([9])]);
        expect(await store.get(bytes(1))).toBeUndefined();
        expect(await collect(store)).toEqual([['02', '14']]);
        await store.write([put([1], [12])]);
        expect(hexOf(await store.get(bytes(1)))).toBe('0c');
      });

      it('keeps an empty value apart from a missing key, and accepts an empty key', async () => {
        const store = await open();
        await store.write([put([], [5]), put([1], [])]);
        expect(hexOf(await store.get(bytes()))).toBe('05');
        const empty = await store.get(bytes(1));
        expect(empty).toBeInstanceOf(Uint8Array);
        expect(empty?.length).toBe(0);
        expect(await collect(store)).toEqual([
          ['', '05'],
          ['01', ''],
        ]);
      });

      it('applies a batch in order: the last entry for a key wins', async () => {
        const store = await open();
        await store.write([put([1], [1]), put([1], [2]), del([2]), put([2], [3]), put([3], [4]), del([3])]);
        expect(await collect(store)).toEqual([
          ['01', '02'],
          ['02', '03'],
        ]);
      });

      it('makes a whole batch visible once write resolves', async () => {
        const store = await open();
        const batch = Array.from({ length: 500 }, (_, index) => put(u32(index), u32(index * 2)));
        await store.write(batch, 1);
        for (const index of [0, 1, 250, 499]) {
          expect(hexOf(await store.get(u32(index)))).toBe(hexOf(u32(index * 2)));
        }
        expect((await collect(store)).length).toBe(500);
        expect(await store.checkpoint()).toBe(1);
      });

      it('applies nothing of a batch that holds an invalid entry', async () => {
        const store = await open();
        await store.write([put([1], [1])], 5);
        const invalid = [put([1], [9]), put([2], [2]), { key: 'not bytes', value: bytes(3) }] as unknown as StoreEntry[];
        await expect(store.write(invalid, 9)).rejects.toThrow();
        expect(await collect(store)).toEqual([['01', '01']]);
        expect(await store.checkpoint()).toBe(5);
      });

      it('copies keys and values: changing the caller’s buffers afterwards changes nothing', async () => {
        const store = await open();
        const key = bytes(1, 2);
        const value = bytes(3, 4);
        await store.write([{ key, value }]);
        key[0] = 9;
        value[0] = 9;
        expect(hexOf(await store.get(bytes(1, 2)))).toBe('0304');
        expect(await store.get(bytes(9, 2))).toBeUndefined();
      });

      it('copies Node Buffers too (whose slice() is a view, not a copy), as fetched from Kafka', async () => {
        const store = await open();
        const fetched = Buffer.from([0xaa, 1, 2, 3, 4, 0xbb]);
        await store.write([{ key: fetched.subarray(1, 3), value: fetched.subarray(3, 5) }]);
        fetched.fill(9);
        expect(hexOf(await store.get(bytes(1, 2)))).toBe('0304');
        expect(await collect(store)).toEqual([['0102', '0304']]);
      });

      it('accepts keys and values that are views into larger buffers', async () => {
        const store = await open();
        const backing = bytes(0xaa, 1, 2, 3, 0xbb);
        await store.write([{ key: backing.subarray(1, 3), value: backing.subarray(2, 4) }]);
        expect(hexOf(await store.get(bytes(0xee, 1, 2, 0xee).subarray(1, 3)))).toBe('0203');
        expect(await collect(store)).toEqual([['0102', '0203']]);
      });

      it('stores large values', async () => {
        const store = await open();
        const large = new Uint8Array(1 << 20).map((_, index) => index % 251);
        await store.write([{ key: bytes(1), value: large }]);
        const read = await store.get(bytes(1));
        expect(read?.length).toBe(large.length);
        expect(Buffer.compare(read!, large)).toBe(0);
      });

      it('applies writes issued without waiting in the order they were issued', async () => {
        const store = await open();
        const writes: Promise<void>[] = [];
        for (let round = 0; round < 50; round++) {
          writes.push(store.write([put([1], u32(round)), round % 2 === 0 ? del([2]) : put([2], u32(round))], round));
        }
        await Promise.all(writes);
        expect(hexOf(await store.get(bytes(1)))).toBe(hexOf(u32(49)));
        expect(hexOf(await store.get(bytes(2)))).toBe(hexOf(u32(49)));
        expect(await store.checkpoint()).toBe(49);
      });

      it('writes and deletes a batch of 10,000 entries', async () => {
        const store = await open();
        const next = random(10_000);
        const reference = new Map<string, string>();
        const batch: StoreEntry[] = [];
        for (let index = 0; index < 10_000; index++) {
          // Distinct keys in random order, so the store has to sort them.
          const key = Uint8Array.from([...u32(Math.floor(next() * 2 ** 32)), ...u32(index)]);
          const value = u32(index);
          batch.push({ key, value });
          reference.set(hexOf(key), hexOf(value));
        }
        await store.write(batch, 10_000);
        const entries = await collect(store);
        expect(entries).toEqual(sortedReference(reference));
        expect(hexOf(await store.get(batch[1234].key))).toBe(hexOf(u32(1234)));
        await store.write(
          batch.map(({ key }) => ({ key, value: null })),
          10_001,
        );
        expect(await collect(store)).toEqual([]);
        expect(await store.checkpoint()).toBe(10_001);
      });
    });

    describe('order and ranges', () => {
      it('iterates in unsigned byte order, a prefix before its extensions', async () => {
        const store = await open();
        const keys = [[0xff], [0x80], [0x7f], [0x00], [], [0x00, 0x00], [0x01, 0xff], [0x01], [0xff, 0xff, 0xff]];
        await store.write(keys.map((key) => put(key, [1])));
        expect((await collect(store)).map(([key]) => key)).toEqual(['', '00', '0000', '01', '01ff', '7f', '80', 'ff', 'ffffff']);
      });

      it('matches a sorted reference under random writes, deletes and ranges', async () => {
        const seed = 20_240_601;
        const next = random(seed);
        const store = await open();
        const reference = new Map<string, string>();
        for (let round = 0; round < 30; round++) {
          const batch: StoreEntry[] = [];
          const size = 1 + Math.floor(next() * 80);
          for (let index = 0; index < size; index++) {
            const key = randomKey(next);
            if (next() < 0.25) {
              batch.push({ key, value: null });
              reference.delete(hexOf(key));
            } else {
              const value = randomKey(next);
              batch.push({ key, value });
              reference.set(hexOf(key), hexOf(value));
            }
          }
          await store.write(batch, round);
          const expected = sortedReference(reference);
          expect(await collect(store), `seed ${seed} round ${round}`).toEqual(expected);
          for (let query = 0; query < 8; query++) {
            const range = randomRange(next);
            expect(await collect(store, range), `seed ${seed} round ${round} range ${describeRange(range)}`).toEqual(
              expected.filter(([key]) => inRange(Buffer.from(key, 'hex'), range)),
            );
          }
        }
      });

      it('treats gte as inclusive and lt as exclusive', async () => {
        const store = await open();
        await store.write([put([1], [1]), put([2], [2]), put([3], [3]), put([3, 0], [4])]);
        expect(keysOf(await collect(store, { gte: bytes(2), lt: bytes(3) }))).toEqual(['02']);
        expect(keysOf(await collect(store, { gte: bytes(2) }))).toEqual(['02', '03', '0300']);
        expect(keysOf(await collect(store, { lt: bytes(3, 0) }))).toEqual(['01', '02', '03']);
        expect(keysOf(await collect(store, { gte: bytes(1, 5), lt: bytes(3, 0, 0) }))).toEqual(['02', '03', '0300']);
      });

      it('yields nothing for empty, inverted and out-of-reach ranges', async () => {
        const empty = await open({ storeName: 'empty' });
        expect(await collect(empty, { gte: bytes(1), lt: bytes(2) })).toEqual([]);

        const store = await open();
        await store.write([put([5], [5]), put([6], [6])]);
        expect(await collect(store, { gte: bytes(5), lt: bytes(5) })).toEqual([]);
        expect(await collect(store, { gte: bytes(6), lt: bytes(5) })).toEqual([]);
        expect(await collect(store, { gte: bytes(7) })).toEqual([]);
        expect(await collect(store, { lt: bytes(5) })).toEqual([]);
        expect(await collect(store, { lt: bytes() })).toEqual([]);
        expect(keysOf(await collect(store, { gte: bytes() }))).toEqual(['05', '06']);
        expect(keysOf(await collect(store, {}))).toEqual(['05', '06']);
      });

      it('lets a caller stop iterating early and keep using the store', async () => {
        const store = await open();
        await store.write(Array.from({ length: 100 }, (_, index) => put([index], [index])));
        let seen = 0;
        for await (const _entry of store.entries()) {
          if (++seen === 3) break;
        }
        expect(seen).toBe(3);
        await store.write([put([200], [1])]);
        expect((await collect(store)).length).toBe(101);
      });

      it('finishes an iteration that overlaps a write, in order, with the untouched keys', async () => {
        const store = await open();
        await store.write(Array.from({ length: 50 }, (_, index) => put([index * 2], [1])));
        const seen: string[] = [];
        for await (const [key] of store.entries()) {
          seen.push(hexOf(key));
          if (seen.length === 10) await store.write([put([1], [1]), put([99], [1]), del([40])]);
        }
        expect([...seen].sort()).toEqual(seen);
        const untouched = Array.from({ length: 50 }, (_, index) => hexOf(bytes(index * 2))).filter((key) => key !== '28');
        expect(seen.filter((key) => untouched.includes(key))).toEqual(untouched);
      });
    });

    describe('isolation', () => {
      it('keeps partitions, stores and apps apart', async () => {
        const specs: Partial<StoreSpec>[] = [
          { storeName: 'a', partition: 0 },
          { storeName: 'a', partition: 1 },
          { storeName: 'a', partition: 256 },
          { storeName: 'ab', partition: 0 },
          { storeName: 'a\u0000b', partition: 0 },
          { storeName: 'b', partition: 0 },
          { appId: 'other-app', storeName: 'a', partition: 0 },
        ];
        const stores = await Promise.all(specs.map((overrides) => open(overrides)));
        for (const [index, store] of stores.entries()) {
          await store.write([put([1], [index]), put([0xff, 0xff], [index]), put([index + 10], [index])], 100 + index);
        }
        for (const [index, store] of stores.entries()) {
          expect(await collect(store), JSON.stringify(specs[index])).toEqual(
            sortedReference(new Map([['01', hexOf(bytes(index))], [hexOf(bytes(index + 10)), hexOf(bytes(index))], ['ffff', hexOf(bytes(index))]])),
          );
          expect(await store.checkpoint()).toBe(100 + index);
        }

        await stores[1].clear();
        await stores[3].write([del([1])]);
        expect(await collect(stores[1])).toEqual([]);
        expect(await stores[1].checkpoint()).toBeUndefined();
        for (const index of [0, 2, 4, 5, 6]) {
          expect(hexOf(await stores[index].get(bytes(1)))).toBe(hexOf(bytes(index)));
          expect(await stores[index].checkpoint()).toBe(100 + index);
        }
      });

      it('keeps ranges inside their partition', async () => {
        const first = await open({ partition: 0 });
        const second = await open({ partition: 1 });
        await first.write([put([0x00], [1]), put([0xff], [1])]);
        await second.write([put([0x80], [2])]);
        expect(keysOf(await collect(first, { gte: bytes(0x01) }))).toEqual(['ff']);
        expect(keysOf(await collect(second, { lt: bytes(0xff, 0xff) }))).toEqual(['80']);
        expect(keysOf(await collect(second, { gte: bytes() }))).toEqual(['80']);
      });
    });

    describe('checkpoint', () => {
      it('records the offset written with a batch', async () => {
        const store = await open();
        await store.write([put([1], [1])], 10);
        expect(await store.checkpoint()).toBe(10);
        await store.write([put([2], [2])], 25);
        expect(await store.checkpoint()).toBe(25);
      });

      it('never moves backwards, but still applies the batch', async () => {
        const store = await open();
        await store.write([put([1], [1])], 10);
        await store.write([put([2], [2])], 3);
        expect(await store.checkpoint()).toBe(10);
        expect(hexOf(await store.get(bytes(2)))).toBe('02');
        await store.write([put([3], [3])], 10);
        expect(await store.checkpoint()).toBe(10);
        await store.write([], 0);
        expect(await store.checkpoint()).toBe(10);
      });

      it('keeps the checkpoint when a batch carries no offset', async () => {
        const store = await open();
        await store.write([put([1], [1])], 7);
        await store.write([put([2], [2])]);
        expect(await store.checkpoint()).toBe(7);
      });

      it('moves with an empty batch', async () => {
        const store = await open();
        await store.write([], 0);
        expect(await store.checkpoint()).toBe(0);
        await store.write([], 42);
        expect(await store.checkpoint()).toBe(42);
        expect(await collect(store)).toEqual([]);
      });

      it('keeps large offsets exactly', async () => {
        const store = await open();
        await store.write([], Number.MAX_SAFE_INTEGER - 1);
        expect(await store.checkpoint()).toBe(Number.MAX_SAFE_INTEGER - 1);
      });

      it('rejects an offset that is not a non-negative integer, applying nothing', async () => {
        const store = await open();
        await store.write([put([1], [1])], 5);
        for (const offset of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
          await expect(store.write([put([1], [9])], offset), String(offset)).rejects.toThrow();
        }
        expect(await store.checkpoint()).toBe(5);
        expect(hexOf(await store.get(bytes(1)))).toBe('01');
      });
    });

    describe('clear', () => {
      it('empties the entries and the checkpoint, and the store stays usable', async () => {
        const store = await open();
        await store.write(Array.from({ length: 300 }, (_, index) => put(u32(index), [1])), 99);
        await store.clear();
        expect(await collect(store)).toEqual([]);
        expect(await store.get(u32(5))).toBeUndefined();
        expect(await store.checkpoint()).toBeUndefined();
        await store.write([put([7], [7])], 3);
        expect(await collect(store)).toEqual([['07', '07']]);
        expect(await store.checkpoint()).toBe(3);
      });

      it('is fine on an empty store', async () => {
        const store = await open();
        await store.clear();
        expect(await collect(store)).toEqual([]);
        expect(await store.checkpoint()).toBeUndefined();
      });
    });

    describe('lifecycle', () => {
      it('keeps a partition’s data when it is closed and opened again', async () => {
        const store = await open();
        await store.write([put([1], [1])], 4);
        await store.close();
        const again = await open();
        expect(hexOf(await again.get(bytes(1)))).toBe('01');
        expect(await again.checkpoint()).toBe(4);
      });

      it('rejects use of a closed partition; closing twice is fine', async () => {
        const store = await open();
        await store.close();
        await store.close();
        await expect(store.get(bytes(1))).rejects.toThrow();
        await expect(store.write([put([1], [1])])).rejects.toThrow();
        await expect(store.checkpoint()).rejects.toThrow();
        await expect(store.clear()).rejects.toThrow();
        await expect(collect(store)).rejects.toThrow();
      });

      it('rejects a partition that is not a non-negative integer', async () => {
        await expect(open({ partition: -1 })).rejects.toThrow();
        await expect(open({ partition: 1.5 })).rejects.toThrow();
      });

      it('closes the partitions it opened when the backend closes', async () => {
        const store = await open();
        await store.write([put([1], [1])]);
        await backend.close();
        await expect(store.get(bytes(1))).rejects.toThrow();
      });
    });

    describe.runIf(opts.reopen !== undefined)('durability', () => {
      const reopen = async (): Promise<void> => {
        await backend.close();
        backend = await opts.reopen!(backend);
      };

      it('keeps entries and checkpoints across close and reopen', async () => {
        const first = await open({ partition: 0 });
        const second = await open({ storeName: 'other', partition: 3 });
        await first.write([put([1], [1]), put([2], [2]), put([3], [3])], 10);
        await first.write([del([2])], 11);
        await second.write([put([9], [9])], 500);
        await reopen();

        const firstAgain = await open({ partition: 0 });
        const secondAgain = await open({ storeName: 'other', partition: 3 });
        expect(await collect(firstAgain)).toEqual([
          ['01', '01'],
          ['03', '03'],
        ]);
        expect(await firstAgain.checkpoint()).toBe(11);
        expect(await collect(secondAgain)).toEqual([['09', '09']]);
        expect(await secondAgain.checkpoint()).toBe(500);
        expect(await collect(await open({ partition: 1 }))).toEqual([]);
      });

      it('keeps a clear across close and reopen', async () => {
        const store = await open();
        await store.write([put([1], [1])], 10);
        await store.clear();
        await reopen();
        const again = await open();
        expect(await collect(again)).toEqual([]);
        expect(await again.checkpoint()).toBeUndefined();
      });

      it('keeps a 10,000-entry batch across close and reopen', async () => {
        const store = await open();
        await store.write(
          Array.from({ length: 10_000 }, (_, index) => put(u32(index), u32(index))),
          77,
        );
        await reopen();
        const again = await open();
        expect((await collect(again)).length).toBe(10_000);
        expect(hexOf(await again.get(u32(9_999)))).toBe(hexOf(u32(9_999)));
        expect(await again.checkpoint()).toBe(77);
      });

      it('checks the checkpoint against the reopened value, never moving it back', async () => {
        const store = await open();
        await store.write([], 50);
        await reopen();
        const again = await open();
        await again.write([put([1], [1])], 20);
        expect(await again.checkpoint()).toBe(50);
      });
    });
  });
}

function spec(overrides: Partial<StoreSpec>): StoreSpec {
  const appId = overrides.appId ?? 'contract-app';
  const storeName = overrides.storeName ?? 'store';
  return {
    appId,
    storeName,
    partition: overrides.partition ?? 0,
    changelogTopic: overrides.changelogTopic ?? `${appId}-${storeName}-changelog`,
  };
}

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

function put(key: number[] | Uint8Array, value: number[] | Uint8Array): StoreEntry {
  return { key: Uint8Array.from(key), value: Uint8Array.from(value) };
}

function del(key: number[]): StoreEntry {
  return { key: Uint8Array.from(key), value: null };
}

function hexOf(value: Uint8Array): string;
function hexOf(value: Uint8Array | undefined): string | undefined;
function hexOf(value: Uint8Array | undefined): string | undefined {
  return value === undefined ? undefined : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
}

/** Entries as hex pairs: copies the bytes, so later writes cannot change what was read. */
async function collect(store: PartitionStore, range?: KeyRange): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const [key, value] of store.entries(range)) out.push([hexOf(key), hexOf(value)]);
  return out;
}

function keysOf(entries: [string, string][]): string[] {
  return entries.map(([key]) => key);
}

function sortedReference(reference: Map<string, string>): [string, string][] {
  return [...reference.entries()].sort(([a], [b]) => compareBytes(Buffer.from(a, 'hex'), Buffer.from(b, 'hex')));
}

function inRange(key: Uint8Array, range: KeyRange): boolean {
  return (range.gte === undefined || compareBytes(key, range.gte) >= 0) && (range.lt === undefined || compareBytes(key, range.lt) < 0);
}

function describeRange(range: KeyRange): string {
  return `[${hexOf(range.gte) ?? '-∞'}, ${hexOf(range.lt) ?? '+∞'})`;
}

const random = mulberry32;

/** Short keys over a small alphabet with the edge bytes, so prefixes and collisions are common. */
function randomKey(next: () => number): Uint8Array {
  const alphabet = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff];
  return Uint8Array.from({ length: Math.floor(next() * 4) }, () => alphabet[Math.floor(next() * alphabet.length)]);
}

function randomRange(next: () => number): KeyRange {
  const roll = next();
  const gte = roll < 0.75 ? randomKey(next) : undefined;
  const lt = roll > 0.25 ? randomKey(next) : undefined;
  return { ...(gte === undefined ? {} : { gte }), ...(lt === undefined ? {} : { lt }) };
}
