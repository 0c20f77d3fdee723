/**
 * README "Time and windows" table and "Handlers": window bounds, close times, handler results
 * (R | R[] | undefined | Promise), window-end order per key with async handlers, onUpdate,
 * processing time.
 */
import { describe, expect, it } from 'vitest';
import { createApp } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';

interface E { k: string; v: number; ts: number }
const e = (k: string, v: number, ts: number): E => ({ k, v, ts });

async function run(build: (app: ReturnType<typeof createApp>) => void, inputs: E[], after?: (d: TestDriver) => Promise<void>) {
  const app = createApp({ id: 'w', idleTimeout: false });
  build(app);
  const driver = await TestDriver.start(app);
  for (const input of inputs) await driver.send('in', input);
  await after?.(driver);
  const out = driver.read('out');
  await driver.stop();
  return { app, out };
}

describe('README: windows', () => {
  it('sliding(size): [t - size + 1, t + 1), closes at t + 1 + grace', async () => {
    const { out } = await run(
      (app) => app.from<E>('in', { timestamp: r => r.ts }).keyBy(r => r.k).sliding('1s').sum(r => r.v).toStream().to('out'),
      [e('a', 1, 1_000), e('a', 2, 1_500), e('a', 4, 1_999), e('a', 100, 3_000)],
    );
    expect(out.map(r => r.value)).toEqual([
      { key: 'a', start: 1, end: 1_001, value: 1 },
      { key: 'a', start: 501, end: 1_501, value: 3 },
      { key: 'a', start: 1_000, end: 2_000, value: 7 },
    ]);
  });

  it('session(gap): [first, last + 1), closes at last + gap + grace; a bridging record merges', async () => {
    const { out } = await run(
      (app) => app.from<E>('in', { timestamp: r => r.ts }).keyBy(r => r.k).session('1s', { grace: '1s' }).collect().onClose(w => ({ start: w.start, end: w.end, vs: w.value.map(x => x.v) })).to('out'),
      [e('a', 1, 0), e('a', 2, 1_800), e('a', 3, 900), e('a', 4, 2_799), e('a', 5, 10_000)],
    );
    // 0 and 1800 are 1800 apart (two sessions; [0, 1) stays open until 0 + 1s + 1s) until 900 bridges them; 2799 is within 1s of 1800
    expect(out.map(r => r.value)).toEqual([{ start: 0, end: 2_800, vs: [1, 3, 2, 4] }]);
    expect(out[0]!.timestamp).toBe(2_799);
  });

  it('countWindow(n, step): every step records, the last n; bounds [min, max + 1); at once', async () => {
    const { out } = await run(
      (app) => app.from<E>('in', { timestamp: r => r.ts }).keyBy(r => r.k).countWindow(3, 2).collect().onClose(w => ({ start: w.start, end: w.end, vs: w.value.map(x => x.v) })).to('out'),
      [e('a', 1, 10), e('a', 2, 20), e('a', 3, 5), e('a', 4, 40)],
    );
    // after record 2: [1, 2] (ts 10, 20); after record 4: the last 3, [2, 3, 4] (ts 20, 5, 40), collected in timestamp order
    expect(out.map(r => r.value)).toEqual([
      { start: 10, end: 21, vs: [1, 2] },
      { start: 5, end: 41, vs: [3, 2, 4] },
    ]);
  });

  it('handlers may return R, R[], undefined or a promise; results are keyed by the window key, timestamp end - 1', async () => {
    const { out } = await run(
      (app) => app.from<E>('in', { timestamp: r => r.ts }).keyBy(r => r.k).tumbling('1s').count()
        .onClose(async w => {
          if (w.key === 'none') return undefined;
          if (w.key === 'many') return [w.value, w.value * 10];
          return w.value;
        }).to('out'),
      [e('one', 1, 0), e('many', 1, 0), e('none', 1, 0), e('one', 1, 1_000)],
    );
    expect(out).toEqual([
      { key: 'one', value: 1, timestamp: 999 },
      { key: 'many', value: 1, timestamp: 999 },
      { key: 'many', value: 10, timestamp: 999 },
    ]);
  });

  it('results leave in window-end order per key whatever order async handlers finish in', async () => {
    const { out } = await run(
      (app) => app.from<E>('in', { timestamp: r => r.ts }).keyBy(r => r.k).tumbling('1s').count()
        .onClose(w => new Promise<number>((resolve) => setTimeout(() => resolve(w.start), w.start === 0 ? 30 : 1))).to('out'),
      [e('a', 1, 0), e('a', 1, 1_000), e('a', 1, 2_000), e('a', 1, 3_000)],
    );
    expect(out.map(r => r.value)).toEqual([0, 1_000, 2_000]);
  });

  it('onUpdate() emits every change as { key, start, end, value }', async () => {
    const { out } = await run(
      (app) => app.from<E>('in', { timestamp: r => r.ts }).keyBy(r => r.k).tumbling('1s').count().onUpdate().to('out'),
      [e('a', 1, 0), e('a', 1, 10)],
    );
    expect(out.map(r => r.value)).toEqual([{ key: 'a', start: 0, end: 1_000, value: 1 }, { key: 'a', start: 0, end: 1_000, value: 2 }]);
  });

  it("time: 'processing': timestamps are the clock at arrival; windows close on clock timers at end + grace", async () => {
    const app = createApp({ id: 'pt', time: 'processing' });
    app.from<E>('in', { timestamp: r => r.ts }).keyBy(r => r.k).tumbling('1s', { grace: '500ms' }).count().toStream().to('out');
    const driver = await TestDriver.start(app, { startTime: 10_000 });
    await driver.send('in', e('a', 1, 999_999));
    await driver.advanceTime('1400ms');
    expect(driver.read('out')).toEqual([]);
    await driver.advanceTime('200ms');
    expect(driver.read('out')).toEqual([{ key: 'a', value: { key: 'a', start: 10_000, end: 11_000, value: 1 }, timestamp: 10_999 }]);
    await driver.stop();
  });

  it("metrics() has the README's counters; metrics('prometheus') has eddy_healthy", async () => {
    const app = createApp({ id: 'm' });
    app.from<E>('in').to('out');
    const driver = await TestDriver.start(app);
    await driver.send('in', e('a', 1, 0));
    const m = app.metrics();
    for (const field of ['recordsIn', 'recordsOut', 'lag', 'windowsOpen', 'windowsClosed', 'lateRecords', 'deadLetters', 'duplicatesDropped', 'recordsHandedOff', 'inputWaitsExpired', 'recordsLostToDamage', 'recordsLostToRetention', 'handlerQueueDepth', 'stateCacheBytes', 'restoredRecords', 'restoreRemaining', 'tasks', 'streamTime', 'commitFailures', 'lastCommitAgeMs']) {
      expect(m, field).toHaveProperty(field);
    }
    expect(m.recordsIn).toBe(1);
    expect(m.recordsOut).toBe(1);
    expect(app.metrics('prometheus')).toMatch(/eddy_healthy(\{[^}]*\})? 1/);
    await driver.stop();
  });

  it('sum() without fn sums the values; a non-number value is a bad record (dead-lettered)', async () => {
    const app = createApp({ id: 'agg', idleTimeout: false });
    app.from<number>('nums').keyBy(() => 'all').tumbling('1s').sum().toStream().to('out');
    const driver = await TestDriver.start(app);
    await driver.send('nums', 2, { timestamp: 0 });
    await driver.send('nums', 'x' as unknown as number, { timestamp: 1 });
    await driver.send('nums', 5, { timestamp: 2 });
    await driver.send('nums', 0, { timestamp: 1_000 });
    expect(driver.read('out').map(r => r.value)).toEqual([{ key: 'all', start: 0, end: 1_000, value: 7 }]);
    expect(driver.read('agg-dlq')).toHaveLength(1);
    await driver.stop();
  });
});
