/** The store contract, part three: checkpoints, clears, closing, and what survives a reopen. */
import { describe, expect, it } from 'vitest';
import { bytes, collect, del, hexOf, put, u32, type ContractSuite } from './store-contract-bytes.js';

export function describeDurability(suite: ContractSuite, durable: boolean): void {
  const { open } = suite;

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
      await suite.backend().close();
      await expect(store.get(bytes(1))).rejects.toThrow();
    });
  });

  describe.runIf(durable)('durability', () => {
    const { reopen } = suite;

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
}
