import { describe, expect, it } from 'vitest';
import { memoryState } from './memory.js';
import { describeStoreContract } from '../testing/store-contract.js';
import type { PartitionStore } from './backend.js';

// The same backend object is the memory backend's only storage, so "reopen" hands it back.
describeStoreContract('memoryState', () => memoryState(), { reopen: (previous) => previous });

const spec = { appId: 'app', storeName: 'store', partition: 0, changelogTopic: 'app-store-changelog' };

async function keys(store: PartitionStore): Promise<number[]> {
  const out: number[] = [];
  for await (const [key] of store.entries()) out.push(new DataView(key.buffer, key.byteOffset).getUint32(0));
  return out;
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

describe('memoryState', () => {
  it('is kind memory', () => {
    expect(memoryState().kind).toBe('memory');
  });

  it('starts empty in a new backend', async () => {
    const first = memoryState();
    await (await first.open(spec)).write([{ key: u32(1), value: u32(1) }], 3);
    const second = await memoryState().open(spec);
    expect(await keys(second)).toEqual([]);
    expect(await second.checkpoint()).toBeUndefined();
  });

  it('stays ordered through churn of inserts, deletes, re-inserts and scans', async () => {
    const store = await memoryState().open(spec);
    const live = new Set<number>();
    let seed = 7;
    const next = (): number => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 200; round++) {
      const batch = Array.from({ length: 40 }, () => {
        const key = Math.floor(next() * 500);
        if (next() < 0.45) {
          live.delete(key);
          return { key: u32(key), value: null };
        }
        live.add(key);
        return { key: u32(key), value: u32(round) };
      });
      await store.write(batch);
      if (round % 3 === 0) expect(await keys(store)).toEqual([...live].sort((a, b) => a - b));
    }
    expect(await keys(store)).toEqual([...live].sort((a, b) => a - b));
  });

  it('does not see entries of a scan that started before clear', async () => {
    const store = await memoryState().open(spec);
    await store.write(Array.from({ length: 10 }, (_, index) => ({ key: u32(index), value: u32(index) })));
    const seen: number[] = [];
    for await (const [key] of store.entries()) {
      seen.push(new DataView(key.buffer, key.byteOffset).getUint32(0));
      if (seen.length === 2) await store.clear();
    }
    expect(seen).toEqual([0, 1]);
  });
});
