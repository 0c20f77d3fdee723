/**
 * README's opening example (table + leftJoin + hopping with grace + collect + onClose(model) + to),
 * and DESIGN "Public API" pipeline with a workerPool from @eddy/ml.
 */
import { describe, expect, it } from 'vitest';
import { createApp } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { workerPool } from '@eddy/ml';

interface Reading {
  sensor: string;
  value: number;
  ts: number;
}
interface SensorInfo {
  calibration: { scale: number; offset: number };
  location: string;
}
type Enriched = Reading & { location: string };

describe('README intro example', () => {
  it('calibrates via the table, hopping(10s, 1s, grace 2s) collect, one result per window', async () => {
    const app = createApp({ id: 'intro' });
    const seen: Array<{ key: string; start: number; end: number; value: Enriched[] }> = [];
    const model = (w: { key: string; start: number; end: number; value: Enriched[] }) => {
      seen.push(w);
      return { sensor: w.key, start: w.start, values: w.value.map(r => r.value), locations: w.value.map(r => r.location) };
    };

    const sensors = app.table<string, SensorInfo>('sensors');     // each sensor's calibration and location

    app.from<Reading>('readings', { timestamp: r => r.ts })
      .keyBy(r => r.sensor)
      .leftJoin(sensors, (r, info) => ({                           // no metadata yet: raw, location 'unknown'
        ...r,
        value: info ? r.value * info.calibration.scale + info.calibration.offset : r.value,
        location: info?.location ?? 'unknown',
      }))
      .hopping('10s', '1s', { grace: '2s' })
      .collect()
      .onClose(model)
      .to('predictions');

    const driver = await TestDriver.start(app, { startTime: 0 });
    await driver.send('sensors', { calibration: { scale: 2, offset: 1 }, location: 'lab' }, { key: 's1', timestamp: 0 });
    await driver.send('readings', { sensor: 's1', value: 10, ts: 100_000 });
    await driver.send('readings', { sensor: 's2', value: 5, ts: 100_000 });
    // stream time 100_000: no window containing 100_000 has end + 2s <= 100_000
    expect(driver.read('predictions')).toEqual([]);
    await driver.advanceTime('30s');

    const expectedFor = (sensor: string, value: number, location: string) => {
      const out = [];
      // windows [k*1000, k*1000 + 10000) containing 100_000: starts 91_000 .. 100_000
      for (let start = 91_000; start <= 100_000; start += 1_000) {
        out.push({ key: sensor, value: { sensor, start, values: [value], locations: [location] }, timestamp: start + 10_000 - 1 });
      }
      return out;
    };
    const out = driver.read('predictions');
    expect(out.filter(r => r.key === 's1')).toEqual(expectedFor('s1', 21, 'lab'));
    expect(out.filter(r => r.key === 's2')).toEqual(expectedFor('s2', 5, 'unknown'));
    expect(out).toHaveLength(20);
    // the handler got { key, start, end, value }
    expect(Object.keys(seen[0]!).sort()).toEqual(['end', 'key', 'start', 'value']);
    await driver.stop();
  });

  it('grace: a straggler within 2s of a window end still counts, one later is late', async () => {
    const app = createApp({ id: 'grace', idleTimeout: false });
    const late: unknown[] = [];
    const windows = app.from<Reading>('readings', { timestamp: r => r.ts })
      .keyBy(r => r.sensor)
      .tumbling('10s', { grace: '2s' })
      .collect();
    windows.onClose(w => ({ start: w.start, values: w.value.map(r => r.value) })).to('out');
    windows.onLate(l => { late.push(l); return undefined; });
    const driver = await TestDriver.start(app);
    await driver.send('readings', { sensor: 'a', value: 1, ts: 5_000 });
    await driver.send('readings', { sensor: 'a', value: 2, ts: 11_000 });
    await driver.send('readings', { sensor: 'a', value: 3, ts: 9_000 });   // stream time 11s < 10s + 2s: on time
    await driver.send('readings', { sensor: 'a', value: 4, ts: 12_000 });  // closes [0, 10s)
    await driver.send('readings', { sensor: 'a', value: 5, ts: 8_000 });   // late
    expect(driver.read('out')).toEqual([{ key: 'a', value: { start: 0, values: [1, 3] }, timestamp: 9_999 }]);
    expect(late).toEqual([{ key: 'a', start: 0, end: 10_000, value: { sensor: 'a', value: 5, ts: 8_000 }, timestamp: 8_000 }]);
    expect(app.metrics().lateRecords).toBe(1);
    await driver.stop();
  });
});

describe('DESIGN Public API pipeline', () => {
  it('filter -> keyBy -> hopping(10s, 1s, grace 2s) -> collect -> onClose(workerPool(model.js)) -> to', async () => {
    const app = createApp({ id: 'sensors', idleTimeout: '5s', commitInterval: '1s', time: 'event', guarantee: 'at-least-once', onError: 'dead-letter' });
    app.from<Reading>('readings', { timestamp: r => r.ts })   // Stream<string | undefined, Reading>
      .filter(r => Number.isFinite(r.value))
      .keyBy(r => r.sensor)                                    // KeyedStream<string, Reading>
      .hopping('10s', '1s', { grace: '2s' })                   // WindowedStream
      .collect()                                               // WindowedTable<string, Reading[]>
      .onClose(workerPool(new URL('./model.js', import.meta.url), { size: 1 }))  // Stream<string, Prediction>
      .to('predictions');

    const driver = await TestDriver.start(app, { startTime: 0 });
    await driver.send('readings', { sensor: 's1', value: 3, ts: 20_500 }, { key: 's1' });
    await driver.send('readings', { sensor: 's1', value: null as unknown as number, ts: 20_600 }, { key: 's1' }); // filtered out
    await driver.send('readings', { sensor: 's1', value: 4, ts: 21_200 }, { key: 's1' });
    await driver.advanceTime('30s');
    const out = driver.read('predictions');
    // windows touching 20_500 start 11_000..20_000; 21_200: 12_000..21_000
    const expected = [];
    for (let start = 11_000; start <= 21_000; start += 1_000) {
      const values = [20_500, 21_200].filter(t => t >= start && t < start + 10_000).map(t => (t === 20_500 ? 3 : 4));
      expected.push({ key: 's1', value: { sensor: 's1', start, end: start + 10_000, n: values.length, sum: values.reduce((a, b) => a + b, 0) }, timestamp: start + 9_999 });
    }
    expect(out).toEqual(expected);
    await driver.stop();
  });

  it('workerPool exportName selects a named export', async () => {
    const app = createApp({ id: 'named' });
    app.from<Reading>('readings', { timestamp: r => r.ts }).keyBy(r => r.sensor).tumbling('1s').collect()
      .onClose(workerPool(new URL('./model.js', import.meta.url), { size: 1, exportName: 'named', timeout: '30s', maxQueue: 1000, retries: 2, batchSize: 32 }))
      .to('out');
    const driver = await TestDriver.start(app);
    await driver.send('readings', { sensor: 'x', value: 1, ts: 100 });
    await driver.send('readings', { sensor: 'x', value: 1, ts: 2_000 });
    expect(driver.read('out')).toEqual([{ key: 'x', value: { named: true, key: 'x', n: 1 }, timestamp: 999 }]);
    await driver.stop();
  });
});
