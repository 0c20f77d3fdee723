/** The store contract, part one: what a write puts in and a read gets back. */
import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import type { StoreEntry } from '../state/backend.js';
import { bytes, collect, del, hexOf, put, random, sortedReference, u32, type ContractSuite } from './store-contract-bytes.js';

export function describeWrites(suite: ContractSuite): void {
  const { open } = suite;

  describe('basics', () => {
    it('has a kind', () => {
      expect(typeof suite.backend().kind).toBe('string');
      expect(suite.backend().kind.length).toBeGreaterThan(0);
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
}
