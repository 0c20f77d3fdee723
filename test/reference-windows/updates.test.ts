/**
 * onUpdate() and toStream() against the reference: onUpdate gives, per key, one record for every
 * window a record was added to, with the window's contents so far; toStream gives one final
 * { key, start, end, value } per window, keyed by the window key, with timestamp end - 1.
 */
import { describe, expect, it } from 'vitest';
import { createApp, silentLogger } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { byTimeThenArrival, generate, simulate, type Reading, specs, WITH_AND_WITHOUT_GRACE } from './ref.ts';
import { flushKeys, FLUSH_TS, notFlush, perKey, windowOf } from './harness.ts';

const SPECS = specs(...WITH_AND_WITHOUT_GRACE);

interface WindowRecord {
  key: string;
  start: number;
  end: number;
  value: Reading[];
}

describe('windows against the reference: onUpdate() (every change) and toStream() (final results)', () => {
  for (const [name, spec] of SPECS) {
    for (const partitions of [1, 3]) {
      it.each([51, 52, 53, 54])(`${name}, ${partitions} partition(s) (seed %i)`, async (seed) => {
        const readings = generate(seed, { count: 200, keys: ['a', 'b', 'c', 'd', 'e'], quantum: 5, maxStep: 3, jitter: 8, lateBy: 40 });
        const input: Reading[] = [...readings];
        for (const key of flushKeys(partitions)) input.push({ id: input.length, k: key, ts: FLUSH_TS, v: 0 });
        const app = createApp({ id: 'updates', idleTimeout: false, logger: silentLogger });
        const table = windowOf(app.from<Reading>('in', { timestamp: (reading) => reading.ts }).keyBy((reading) => reading.k), spec, 'w').collect();
        table.onUpdate().to('updates');
        table.toStream().to('final');
        const driver = await TestDriver.start(app, { partitions });
        for (const reading of input) await driver.send('in', reading, { key: reading.k, timestamp: reading.ts });
        const updates = driver.read<WindowRecord>('updates').filter(notFlush);
        const final = driver.read<WindowRecord>('final').filter(notFlush);
        await driver.stop();
        const expected = simulate(spec, input, { partitions, ignoreKeys: new Set(flushKeys(partitions)) });

        const view = (record: { key: string | undefined; timestamp: number; value: WindowRecord }) => ({ key: record.key!, record });
        const asRow = ({ record }: ReturnType<typeof view>) => [record.value.key, record.timestamp, record.value.start, record.value.end, record.value.value.map((reading) => reading.id)];
        expect(perKey(updates.map(view), asRow)).toEqual(perKey(expected.updates, (update) => [update.key, update.end - 1, update.start, update.end, byTimeThenArrival(update.records).map((reading) => reading.id)]));
        expect(perKey(final.map(view), asRow)).toEqual(perKey(expected.closed, (window) => [window.key, window.end - 1, window.start, window.end, byTimeThenArrival(window.records).map((reading) => reading.id)]));
      });
    }
  }
});
