import { describe, expect, it } from 'vitest';
import { createApp, silentLogger } from '../index.js';
import { memoryTransport } from './memory.js';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | null) => (value === null ? null : new TextDecoder().decode(value));

describe('the embedded broker log', () => {
  it('compacts compacted topics to the latest record per key, keeping offsets', async () => {
    const transport = memoryTransport();
    transport.createTopic({ name: 'c', partitions: 1, compacted: true });
    for (let i = 0; i < 3000; i++) transport.append([{ topic: 'c', partition: 0, key: bytes(`k${i % 10}`), value: i === 2999 ? null : bytes(String(i)), timestamp: i }]);
    const held = transport.records('c');
    expect(held.length).toBeLessThan(1100);
    expect(await transport.endOffset({ topic: 'c', partition: 0 })).toBe(3000);
    const latest = new Map<string, string | null>();
    for await (const batch of transport.readPartition({ topic: 'c', partition: 0 }, 0)) for (const record of batch) latest.set(text(record.key)!, text(record.value));
    expect(latest.get('k9')).toBeNull();
    expect(latest.get('k8')).toBe('2998');
    expect(latest.get('k0')).toBe('2990');
    // Offsets stay those the records were written with, ascending.
    const offsets = held.map((record) => record.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(held.every((record) => text(record.value) === null || Number(text(record.value)) === record.offset)).toBe(true);
  });

  it('drops records past the retention of ordinary topics and before deleteRecords', async () => {
    const transport = memoryTransport({ retentionRecords: 100 });
    for (let i = 0; i < 250; i++) transport.append([{ topic: 't', partition: 0, key: null, value: bytes(String(i)), timestamp: i }]);
    expect(transport.records('t').map((record) => record.offset)).toEqual([...Array(100).keys()].map((i) => i + 150));
    await transport.deleteRecords({ topic: 't', partition: 0 }, 200);
    expect(transport.records('t')[0]!.offset).toBe(200);
    expect(transport.readSlice('t', 0, 0, 10)[0]!.offset).toBe(200);
    expect(() => memoryTransport({ retentionRecords: 0 })).toThrow(/retentionRecords/);
  });

  it('trims repartition topics as they are committed, and restores state from a compacted changelog', async () => {
    const transport = memoryTransport();
    const build = () => {
      const app = createApp({ id: 'trim', transport, idleTimeout: false, logger: silentLogger });
      app.from<{ k: string; n: number }>('in').keyBy((v) => v.k).count({ name: 'counts' });
      return app;
    };
    const first = build();
    await first.start();
    for (let i = 0; i < 5000; i++) await first.send('in', { k: `k${i % 7}`, n: i });
    await transport.idle();
    await first.stop();
    expect(transport.records('trim-counts-repartition')).toHaveLength(0);

    const second = build();
    await second.start();
    expect(await second.store('counts').get('k3')).toBe(Math.ceil((5000 - 3) / 7));
    await second.stop();
  });
});
