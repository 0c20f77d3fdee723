import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PartitionStore, StateBackend } from '@eddy/core';
import { levelState } from './index.js';

const quiet = { warn: () => undefined, info: () => undefined };
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const made: string[] = [];

afterAll(async () => {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function openStore(): Promise<{ backend: StateBackend; store: PartitionStore }> {
  const dir = await mkdtemp(join(tmpdir(), 'eddy-level-store-'));
  made.push(dir);
  const backend = levelState({ dir, logger: quiet });
  const store = await backend.open({ appId: 'app', storeName: 'counts', partition: 0, changelogTopic: 'app-counts-changelog' });
  return { backend, store };
}

const key = (index: number) => encoder.encode(`k${String(index).padStart(5, '0')}`);

// Reads go ahead of the caller a batch of entries at a time: these cross those batches.
describe('levelState entries, read ahead in batches', () => {
  it('reads a range of several batches in order, each entry once', async () => {
    const { backend, store } = await openStore();
    await store.write(Array.from({ length: 4_321 }, (_, index) => ({ key: key(index), value: encoder.encode(String(index)) })));
    const seen: string[] = [];
    for await (const [entryKey, value] of store.entries({ gte: key(17), lt: key(4_300) })) seen.push(`${decoder.decode(entryKey)}=${decoder.decode(value)}`);
    expect(seen).toEqual(Array.from({ length: 4_283 }, (_, index) => `${decoder.decode(key(index + 17))}=${index + 17}`));
    await backend.close();
  });

  it('closes a read stopped part way through a batch, and the store stays usable and closable', async () => {
    const { backend, store } = await openStore();
    await store.write(Array.from({ length: 2_500 }, (_, index) => ({ key: key(index), value: Uint8Array.of(1) })));
    let read = 0;
    for await (const _entry of store.entries()) if (++read === 1_500) break;
    const iterator = store.entries()[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.[0]).toEqual(key(0));
    await iterator.return?.();
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
    await store.write([{ key: key(0), value: null }], 7);
    expect(await store.get(key(0))).toBeUndefined();
    await backend.close();
  });

  it('fails a read of a closed store when it starts, not when it is made', async () => {
    const { backend, store } = await openStore();
    const entries = store.entries();
    await store.close();
    await expect(entries[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'STATE_FAILED' });
    await backend.close();
  });
});
