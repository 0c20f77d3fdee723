import { describe, expect, it } from 'vitest';
import { systemClock } from '../clock.js';
import type { IncomingRecord } from '../transport/types.js';
import type { PartitionStore, StoreEntry } from './backend.js';
import { ChangeloggingStore, type ChangelogReader, type RestoreListener } from './changelogging.js';
import { memoryState } from './memory.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const TOPIC = 'app-counts-changelog';

/** Changelog records at offsets `from`…, key `k<n % keys>`, value `v<offset>`; `null` values at the offsets in `tombstones`. */
function changelog(from: number, count: number, { keys = count, tombstones = new Set<number>() } = {}): IncomingRecord[] {
  return Array.from({ length: count }, (_, index) => {
    const offset = from + index;
    return {
      topic: TOPIC,
      partition: 0,
      offset,
      key: encoder.encode(`k${offset % keys}`),
      value: tombstones.has(offset) ? null : encoder.encode(`v${offset}`),
      timestamp: 0,
      headers: {},
    };
  });
}

/** A reader of `records` from an offset, in batches of `batchSize`; `fail` throws instead of yielding the batch at that offset. */
function reader(records: readonly IncomingRecord[], { batchSize = 1_000, fail }: { batchSize?: number; fail?: number } = {}) {
  const asked: number[] = [];
  const read: ChangelogReader = async function* (_topic, _partition, from) {
    const tail = records.filter((record) => record.offset >= from);
    for (let start = 0; start < tail.length; start += batchSize) {
      const batch = tail.slice(start, start + batchSize);
      asked.push(batch[0]!.offset);
      if (fail === batch[0]!.offset) throw new Error(`broker gone at ${fail}`);
      yield batch;
    }
  };
  return { read, asked };
}

/** A memory store partition that records its writes and can hold or fail them. */
async function watchedStore() {
  const below = await memoryState().open({ appId: 'app', storeName: 'counts', partition: 0, changelogTopic: TOPIC });
  const writes: Array<{ records: number; offset: number | undefined }> = [];
  const control = {
    /** Fails the write with this index (0-based). */
    failWrite: undefined as number | undefined,
    /** Holds each write until the returned promise resolves. */
    hold: undefined as (() => Promise<void>) | undefined,
    inFlight: 0,
    maxInFlight: 0,
  };
  const store: PartitionStore = {
    entries: (range) => below.entries(range),
    get: (key) => below.get(key),
    checkpoint: () => below.checkpoint(),
    clear: () => below.clear(),
    close: () => below.close(),
    async write(batch: readonly StoreEntry[], offset?: number) {
      const index = writes.length;
      writes.push({ records: batch.length, offset });
      control.maxInFlight = Math.max(control.maxInFlight, ++control.inFlight);
      try {
        await control.hold?.();
        if (control.failWrite === index) throw new Error('disk full');
        await below.write(batch, offset);
      } finally {
        control.inFlight--;
      }
    },
  };
  return { store, writes, control };
}

function changelogStore(store: PartitionStore): ChangeloggingStore {
  return new ChangeloggingStore({ topic: TOPIC, partition: 0, clock: systemClock, backend: () => store, produce: () => undefined });
}

function listener() {
  const events = { applied: 0, rebuilding: [] as Array<[number, number]> };
  const listen: RestoreListener = {
    rebuilding: (checkpoint, end) => events.rebuilding.push([checkpoint, end]),
    applied: (records) => (events.applied += records),
  };
  return { listen, events };
}

async function contents(store: PartitionStore): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for await (const [key, value] of store.entries()) result[decoder.decode(key)] = decoder.decode(value);
  return result;
}

describe('ChangeloggingStore.restore', () => {
  it('replays the tail after the checkpoint in chunks, each checkpointed at the offset after its last record', async () => {
    const { store, writes } = await watchedStore();
    await store.write(changelog(0, 5_000).map(({ key, value }) => ({ key: key!, value })), 5_000);
    writes.length = 0;
    const { read, asked } = reader(changelog(0, 30_000));
    const { listen, events } = listener();
    await changelogStore(store).restore(read, 30_000, listen);
    expect(asked[0]).toBe(5_000);
    expect(writes).toEqual([
      { records: 10_000, offset: 15_000 },
      { records: 10_000, offset: 25_000 },
      { records: 5_000, offset: 30_000 },
    ]);
    expect(events.applied).toBe(25_000);
    expect(await store.checkpoint()).toBe(30_000);
    expect(Object.keys(await contents(store))).toHaveLength(30_000);
  });

  it('keeps the last value of a key and applies tombstones, within a chunk and across chunks', async () => {
    const { store } = await watchedStore();
    // 25,000 records over 7 keys: every key repeats in every chunk; offsets 24,995 and 24,996 delete two keys at the end.
    const records = changelog(0, 25_000, { keys: 7, tombstones: new Set([3, 24_995, 24_996]) });
    await changelogStore(store).restore(reader(records).read, 25_000, listener().listen);
    const expected: Record<string, string> = {};
    for (const record of records) {
      const key = decoder.decode(record.key!);
      if (record.value === null) delete expected[key];
      else expected[key] = decoder.decode(record.value);
    }
    expect(await contents(store)).toEqual(expected);
    expect(Object.keys(expected)).toHaveLength(5);
  });

  it('reads the next chunk while one is written, with one write in flight at most', async () => {
    const { store, writes, control } = await watchedStore();
    const { read, asked } = reader(changelog(0, 40_000));
    let release = () => undefined as void;
    let readWhileWriting = 0;
    control.hold = () =>
      new Promise<void>((resolve) => {
        const askedBefore = asked.length;
        release = () => {
          readWhileWriting = Math.max(readWhileWriting, asked.length - askedBefore);
          resolve();
        };
      });
    const restoring = changelogStore(store).restore(read, 40_000, listener().listen);
    for (let written = 1; written <= 4; written++) {
      await expect.poll(() => writes.length).toBe(written);
      // Let the reader run ahead as far as it may.
      await new Promise((resolve) => setTimeout(resolve, 5));
      release();
    }
    await restoring;
    expect(readWhileWriting).toBeGreaterThanOrEqual(10);
    expect(control.maxInFlight).toBe(1);
    expect(await store.checkpoint()).toBe(40_000);
  });

  it('fails on a failed write, the checkpoint at the last chunk written and the data with it', async () => {
    const { store, control } = await watchedStore();
    control.failWrite = 1;
    const { listen, events } = listener();
    await expect(changelogStore(store).restore(reader(changelog(0, 35_000)).read, 35_000, listen)).rejects.toThrow('disk full');
    expect(await store.checkpoint()).toBe(10_000);
    expect(Object.keys(await contents(store))).toHaveLength(10_000);
    expect(events.applied).toBe(10_000);
    // The next restore goes on from there.
    control.failWrite = undefined;
    await changelogStore(store).restore(reader(changelog(0, 35_000)).read, 35_000, listen);
    expect(await store.checkpoint()).toBe(35_000);
    expect(Object.keys(await contents(store))).toHaveLength(35_000);
  });

  it('fails on a failed read only once the chunk being written has landed', async () => {
    const { store, control } = await watchedStore();
    let release = () => undefined as void;
    control.hold = () => new Promise<void>((resolve) => (release = resolve));
    const restoring = changelogStore(store).restore(reader(changelog(0, 30_000), { fail: 11_000 }).read, 30_000, listener().listen);
    let settled = false;
    void restoring.catch(() => (settled = true));
    await expect.poll(() => control.inFlight).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(settled).toBe(false);
    release();
    await expect(restoring).rejects.toThrow('broker gone at 11000');
    expect(control.inFlight).toBe(0);
    expect(await store.checkpoint()).toBe(10_000);
  });

  it('clears and rebuilds from offset 0 when the checkpoint is beyond the changelog end', async () => {
    const { store } = await watchedStore();
    await store.write([{ key: encoder.encode('stale'), value: encoder.encode('x') }], 50_000);
    const { read, asked } = reader(changelog(0, 12_000));
    const { listen, events } = listener();
    await changelogStore(store).restore(read, 12_000, listen);
    expect(events.rebuilding).toEqual([[50_000, 12_000]]);
    expect(asked[0]).toBe(0);
    const restored = await contents(store);
    expect(restored.stale).toBeUndefined();
    expect(Object.keys(restored)).toHaveLength(12_000);
    expect(await store.checkpoint()).toBe(12_000);
  });
});
