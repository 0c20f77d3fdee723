/**
 * Many seeded random bad records of every kind (a value that does not decode, a NaN or throwing
 * timestamp, a throwing filter, map, key function or aggregator) mixed with good ones, on 1 and 3
 * partitions. The dead letters are exactly the bad records, each with all its headers and its own
 * input offset, and every window holds the exact sum and count of its good records.
 */
import { describe, expect, it } from 'vitest';
import { createApp } from '@eddy/core';
import { TestDriver, mulberry32 } from '@eddy/core/testing';
import { recording, HEADERS } from './helpers.ts';

interface Ev { sensor: string; value: number; ts: number; kind?: string }

for (const partitions of [1, 3]) {
  describe(`many random bad records mixed with good ones (${partitions} partitions)`, () => {
    it('exact dead-letter count, exact window sums vs reference', async () => {
      const rand = mulberry32(42 + partitions);
      const logger = recording();
      const app = createApp({ id: 'mix', idleTimeout: false, logger });
      app
        .from<Ev>('in', { timestamp: (e) => (e.kind === 'nan-ts' ? Number.NaN : e.kind === 'ts-throws' ? (() => { throw new Error('ts'); })() : e.ts) })
        .filter((e) => { if (e.kind === 'filter-throws') throw new Error('f'); return true; })
        .map((e) => { if (e.kind === 'map-throws') throw new Error('m'); return e; })
        .keyBy((e) => { if (e.kind === 'key-throws') throw new Error('k'); return e.sensor; })
        .tumbling(1000)
        .aggregate({ init: () => ({ sum: 0, n: 0 }), add: (a, e) => { if (e.kind === 'agg-throws') throw new Error('a'); return { sum: a.sum + e.value, n: a.n + 1 }; }, merge: (a, b) => ({ sum: a.sum + b.sum, n: a.n + b.n }) })
        .onClose((w) => { if (w.value.sum === 13 * 1000) throw new Error('never'); return { key: w.key, start: w.start, sum: w.value.sum, n: w.value.n }; })
        .to('out');
      const driver = await TestDriver.start(app, { partitions });
      const kinds = ['json', 'nan-ts', 'ts-throws', 'filter-throws', 'map-throws', 'key-throws', 'agg-throws'];
      const expected = new Map<string, { sum: number; n: number }>();
      let bad = 0;
      let ts = 0;
      for (let i = 0; i < 2000; i++) {
        ts += Math.floor(rand() * 20);
        const sensor = `s${Math.floor(rand() * 7)}`;
        const value = Math.floor(rand() * 100);
        if (rand() < 0.2) {
          const kind = kinds[Math.floor(rand() * kinds.length)]!;
          bad++;
          if (kind === 'json') await driver.send('in', new TextEncoder().encode(`{bad ${i}`), { key: sensor });
          else await driver.send('in', { sensor, value, ts, kind }, { key: sensor });
        } else {
          await driver.send('in', { sensor, value, ts }, { key: sensor });
          const id = `${sensor}@${Math.floor(ts / 1000) * 1000}`;
          const acc = expected.get(id) ?? { sum: 0, n: 0 };
          acc.sum += value; acc.n++;
          expected.set(id, acc);
        }
      }
      // close everything: one flush record per partition-ish (every sensor)
      for (let s = 0; s < 7; s++) await driver.send('in', { sensor: `s${s}`, value: 0, ts: ts + 100_000 }, { key: `s${s}` });
      await driver.advanceTime('5s');
      const got = new Map<string, { sum: number; n: number }>();
      for (const rec of driver.read('out')) {
        const v = rec.value as { key: string; start: number; sum: number; n: number };
        const id = `${v.key}@${v.start}`;
        expect(got.has(id), `duplicate ${id}`).toBe(false);
        got.set(id, { sum: v.sum, n: v.n });
      }
      expect(Object.fromEntries([...got].sort())).toEqual(Object.fromEntries([...expected].sort()));
      const dead = driver.read('mix-dlq');
      expect(dead).toHaveLength(bad);
      expect(app.metrics().deadLetters).toBe(bad);
      for (const d of dead) for (const h of HEADERS) expect(d.headers[h], `${h} in ${JSON.stringify(d.headers)}`).toBeDefined();
      expect(logger.lines.filter((l) => l.message === 'record dead-lettered')).toHaveLength(bad);
      // every dlq offset points to a distinct input record
      expect(new Set(dead.map((d) => `${d.headers['topic']}/${d.headers['partition']}/${d.headers['offset']}`)).size).toBe(bad);
      await driver.stop();
    }, 50_000);
  });
}
