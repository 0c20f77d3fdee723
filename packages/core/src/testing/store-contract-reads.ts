/** The store contract, part two: iteration order, key ranges, and stores kept apart. */
import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import type { StoreEntry, StoreSpec } from '../state/backend.js';
import { bytes, collect, del, describeRange, hexOf, inRange, keysOf, put, random, randomKey, randomRange, sortedReference, type ContractSuite } from './store-contract-bytes.js';

export function describeReads(suite: ContractSuite): void {
  const { open } = suite;

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
}
