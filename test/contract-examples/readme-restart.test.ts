/**
 * README "Sharing the embedded broker": a restarted app on the same memoryTransport() resumes from
 * its committed offsets and restores its open windows from the changelog. And "Callbacks get
 * (value, key)"; describe() shows a join and the table's store.
 */
import { describe, expect, it, vi } from 'vitest';
import { createApp, memoryTransport, silentLogger } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';

interface E { k: string; v: number; ts: number }

function build(transport: ReturnType<typeof memoryTransport>) {
  const app = createApp({ id: 'restart', transport, idleTimeout: false, commitInterval: '100ms', logger: silentLogger });
  const windows = app.from<E>('in', { timestamp: r => r.ts }).keyBy(r => r.k).tumbling('10s').sum(r => r.v);
  windows.toStream().to('out');
  return { app, windows };
}

describe('README: a restarted app on a shared memoryTransport()', () => {
  it('restores its open windows and resumes from committed offsets (no record counted twice)', async () => {
    const shared = memoryTransport();
    const first = build(shared);
    await first.app.start();
    await first.app.send('in', { k: 'a', v: 1, ts: 1_000 });
    await first.app.send('in', { k: 'a', v: 2, ts: 2_000 });
    await vi.waitFor(async () => expect(await first.app.store(first.windows).get('a')).toEqual([{ start: 0, end: 10_000, value: 3 }]), { timeout: 5_000 });
    await first.app.stop();

    const second = build(shared);
    await second.app.start();
    expect(await second.app.store(second.windows).get('a')).toEqual([{ start: 0, end: 10_000, value: 3 }]);
    await second.app.send('in', { k: 'a', v: 4, ts: 11_000 });
    const decode = () => shared.records('out').map(r => JSON.parse(new TextDecoder().decode(r.value!)) as unknown);
    await vi.waitFor(() => expect(decode()).toEqual([{ key: 'a', start: 0, end: 10_000, value: 3 }]), { timeout: 5_000 });
    await second.app.stop();
  });
});

describe('README: callbacks and describe', () => {
  it('callbacks get (value, key)', async () => {
    const app = createApp({ id: 'cb' });
    app.from<number>('in').map((value, key) => `${key}:${value}`).filter((_v, key) => key !== 'skip').to('out');
    const driver = await TestDriver.start(app);
    await driver.send('in', 1, { key: 'a' });
    await driver.send('in', 2, { key: 'skip' });
    expect(driver.read('out').map(r => r.value)).toEqual(['a:1']);
    await driver.stop();
  });

  it('describe() shows a stream–table join and the table store; repartition named <id>-<table store>-join-repartition', () => {
    const app = createApp({ id: 'dj' });
    const sensors = app.table<string, { place: string }>('sensors');
    app.from<{ sensor: string }>('readings').keyBy(r => r.sensor).join(sensors, (r, s) => ({ ...r, ...s })).to('enriched');
    const text = app.describe();
    expect(text).toMatch(/join/);
    expect(text).toContain('sensors-table');
    expect(text).toContain('dj-sensors-table-join-repartition');
  });
});
