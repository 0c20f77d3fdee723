import { describe, expect, it } from 'vitest';
import { createApp, silentLogger } from '../index.js';
import { TestDriver } from '../testing/index.js';
import { memoryTransport, MemoryTransport } from './memory.js';
import type { IncomingRecord } from './types.js';

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

describe('a pipeline that writes a topic it reads ({ cycle: true })', () => {
  type Counter = { n: number };
  const sleep = (ms: number) => new Promise<'timer fired'>((resolve) => setTimeout(() => resolve('timer fired'), ms));

  it('runs round after round until its filter ends the loop, and the driver settles', async () => {
    const app = createApp({ id: 'rounds', logger: silentLogger });
    app
      .from<Counter>('t')
      .filter((v) => v.n < 100)
      .map((v) => ({ n: v.n + 1 }))
      .to('t', { cycle: true });
    const driver = await TestDriver.start(app);
    await driver.send('t', { n: 0 });
    expect(driver.read<Counter>('t').map((record) => record.value.n)).toEqual([...Array(101).keys()]);
    await driver.stop();
  });

  // The broker used to deliver round after round in microtasks: no timer fired, not even a test
  // timeout, and the process grew until it died.
  it('lets timers fire while a loop without an exit runs, and stops', async () => {
    const app = createApp({ id: 'forever', logger: silentLogger });
    app
      .from<Counter>('t')
      .map((v) => ({ n: v.n + 1 }))
      .to('t', { cycle: true });
    const driver = await TestDriver.start(app);
    const sending = driver.send('t', { n: 0 });
    expect(await Promise.race([sending.then(() => 'settled'), sleep(20)])).toBe('timer fired');
    const rounds = driver.transport.records('t').length;
    expect(rounds).toBeGreaterThan(1);
    await sleep(20);
    expect(driver.transport.records('t').length).toBeGreaterThan(rounds);
    await driver.stop();
    await sending;
    const stoppedAt = driver.transport.records('t').length;
    await sleep(20);
    expect(driver.transport.records('t').length).toBe(stoppedAt);
  });
});

describe('a member whose read of the log fails', () => {
  it('stops its app with the error (the host is told), instead of an unhandled rejection and a reader that silently stopped', async () => {
    class FailingReads extends MemoryTransport {
      failReads = false;
      override readFrom(topic: string, partition: number, from: number, max: number): IncomingRecord[] | Promise<IncomingRecord[]> {
        if (this.failReads && topic === 'in') return Promise.reject(new Error('the disk went away'));
        return super.readFrom(topic, partition, from, max);
      }
    }
    const transport = new FailingReads();
    const app = createApp({ id: 'failing-reads', transport, idleTimeout: false, logger: silentLogger });
    app.from<number>('in').map((n) => n * 2).to('out');
    const states: string[] = [];
    app.on('state', (state) => states.push(state));
    await app.start();
    transport.append([{ topic: 'in', partition: 0, key: null, value: new TextEncoder().encode('1'), timestamp: 0 }]);
    await expect.poll(() => transport.records('out').length).toBe(1);
    transport.failReads = true;
    transport.append([{ topic: 'in', partition: 0, key: null, value: new TextEncoder().encode('2'), timestamp: 0 }]);
    await expect.poll(() => app.state).toBe('failed');
    expect(app.failure?.code).toBe('TRANSPORT_FAILED');
    expect(app.failure?.message).toMatch(/the disk went away/);
    expect(states).toContain('failed');
    expect(transport.records('out')).toHaveLength(1);
  });
});

describe('delivery in step on the embedded broker', () => {
  it('holds a partition that had nothing when a pass cut its group until the next pass, however much came meanwhile', async () => {
    const transport = memoryTransport();
    transport.createTopic({ name: 's', partitions: 3 });
    const append = (partition: number, from: number, to: number) => {
      for (let ts = from; ts <= to; ts += 10) transport.append([{ topic: 's', partition, key: null, value: null, timestamp: ts }]);
    };
    append(0, 0, 50);
    append(1, 0, 50);
    const batches: Array<{ partition: number; first: number; last: number }> = [];
    let appended = false;
    const alignment = { group: 0, horizon: (first: number) => first + 10, timestamp: (record: IncomingRecord) => record.timestamp };
    const consumer = await transport.subscribe('g', ['s'], {
      onAssign: async () => undefined,
      onRevoke: async () => undefined,
      alignment: () => alignment,
      onRecords: async (records) => {
        batches.push({ partition: records[0]!.partition, first: records[0]!.timestamp, last: records[records.length - 1]!.timestamp });
        // Partition 2 fills while the pass that found it empty awaits the listener.
        if (!appended) {
          appended = true;
          append(2, 0, 1_000);
        }
      },
    });
    await transport.idle();
    await consumer.close();
    // In step, while partitions 0 and 1 hold records (up to 50), no batch spans more than its pass's
    // horizon (its group's first record plus 10 ms); then partition 2, alone, goes whole.
    expect(batches.filter(({ first, last }) => first <= 50 && last - first > 10)).toEqual([]);
    expect(batches.filter(({ partition }) => partition === 2).length).toBeGreaterThan(3);
    expect(batches.filter(({ partition }) => partition === 2).reduce((sum, { first, last }) => sum + (last - first) / 10 + 1, 0)).toBe(101);
  });
});
