/**
 * README "Testing a pipeline in virtual time" and DESIGN "Test driver": the example as written.
 */
import { describe, expect, it } from 'vitest';
import { createApp } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';

interface Reading {
  sensor: string;
  value: number;
  ts: number;
}

describe('README: Testing a pipeline in virtual time', () => {
  it('runs the counts example and read() gives [{ key, value, timestamp }]', async () => {
    const app = createApp({ id: 'counts' });
    app.from<Reading>('readings', { timestamp: r => r.ts })
      .keyBy(r => r.sensor)
      .tumbling('10s')
      .count()
      .toStream()
      .to('counts');

    const driver = await TestDriver.start(app, { startTime: 0 });
    await driver.send('readings', { sensor: 's1', value: 1, ts: 1_000 }, { key: 's1' });
    expect(driver.read('counts')).toEqual([]);
    await driver.send('readings', { sensor: 's1', value: 2, ts: 12_000 });  // closes [0, 10s)
    expect(driver.read('counts')).toEqual([
      { key: 's1', value: { key: 's1', start: 0, end: 10_000, value: 1 }, timestamp: 9_999 },
    ]);
    await driver.advanceTime('30s');   // quiet: the idle timeout closes the rest
    expect(driver.now()).toBe(30_000);
    expect(driver.read('counts')).toEqual([
      { key: 's1', value: { key: 's1', start: 0, end: 10_000, value: 1 }, timestamp: 9_999 },
      { key: 's1', value: { key: 's1', start: 10_000, end: 20_000, value: 1 }, timestamp: 19_999 },
    ]);
    await driver.stop();
    expect(app.state).toBe('stopped');
  });

  it('send() timestamp defaults to driver.now(); a Uint8Array value is raw bytes (dead-lettered as bad JSON)', async () => {
    const app = createApp({ id: 'ts-default' });
    app.from<{ n: number }>('in').map(v => ({ n: v.n * 2 })).to('out');
    const driver = await TestDriver.start(app, { startTime: 5_000 });
    await driver.advanceTime('1500ms');
    await driver.send('in', { n: 21 }, { key: 'a' });
    await driver.send('in', { n: 1 }, { key: 'b', timestamp: 42 });
    await driver.send('in', new TextEncoder().encode('{not json'), { key: 'c' });
    expect(driver.read('out')).toEqual([
      { key: 'a', value: { n: 42 }, timestamp: 6_500 },
      { key: 'b', value: { n: 2 }, timestamp: 42 },
    ]);
    const dead = driver.read<Uint8Array>('ts-default-dlq');
    expect(dead).toHaveLength(1);
    expect(new TextDecoder().decode(dead[0]!.value)).toBe('{not json');
    await driver.stop();
  });

  it('TestDriver.start(app, { partitions: 4 }) gives 4 partitions (default 1)', async () => {
    const one = createApp({ id: 'p1' });
    one.from('in').to('out');
    const d1 = await TestDriver.start(one);
    expect(one.metrics().tasks).toBe(1);
    await d1.stop();

    const four = createApp({ id: 'p4' });
    four.from('in').to('out');
    const d4 = await TestDriver.start(four, { partitions: 4 });
    expect(four.metrics().tasks).toBe(4);
    for (const key of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']) await d4.send('in', key, { key });
    const out = d4.read('out');
    expect(out.map(r => r.key).sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
    expect(new Set(out.map(r => r.partition)).size).toBeGreaterThan(1);
    await d4.stop();
  });
});
