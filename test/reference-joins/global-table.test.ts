/**
 * Stream–globalTable joins against a brute-force model of README "Global tables": read whole
 * before the tasks start, then followed; a null value deletes; the record keeps its key and
 * timestamp. Preloaded, live (out-of-order timestamps), and stop/restart in the middle.
 */
import { describe, expect, it } from 'vitest';
import { createApp, MemoryTransport, silentLogger } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { canon, diff, preload, rng } from './util.ts';

type Mode = 'inner' | 'left';
interface Reading {
  id: number;
  place: string;
}
type Step = { side: 'places'; key: string; value: { site: number } | null; ts: number } | { side: 'readings'; key: string; value: Reading; ts: number };

function steps(seed: number, n: number): Step[] {
  const random = rng(seed);
  return Array.from({ length: n }, (_, id): Step => {
    const place = `p${Math.floor(random() * 6)}`;
    const ts = 1_000 + id * 10 + Math.floor(random() * 300);
    const roll = random();
    if (roll < 0.25) return { side: 'places', key: place, value: { site: id }, ts };
    if (roll < 0.35) return { side: 'places', key: place, value: null, ts };
    return { side: 'readings', key: `s${Math.floor(random() * 9)}`, value: { id, place }, ts };
  });
}

const joiner = (r: Reading, p: { site: number } | undefined, key: string) => ({ id: r.id, key, site: p?.site ?? null });

function model(ordered: readonly Step[], mode: Mode, places = new Map<string, { site: number }>()): string[] {
  const out: string[] = [];
  for (const s of ordered) {
    if (s.side === 'places') {
      if (s.value === null) places.delete(s.key);
      else places.set(s.key, s.value);
    } else {
      const p = places.get(s.value.place);
      if (p || mode === 'left') out.push(canon({ key: s.key, value: joiner(s.value, p, s.key), timestamp: s.ts }));
    }
  }
  return out;
}

function globalApp(mode: Mode, id: string) {
  const app = createApp({ id, logger: silentLogger, idleTimeout: false });
  const places = app.globalTable<string, { site: number }>('places');
  const readings = app.from<Reading>('readings');
  (mode === 'inner' ? readings.join(places, (r) => r.place, (r, p, k) => joiner(r, p, k as string)) : readings.leftJoin(places, (r) => r.place, (r, p, k) => joiner(r, p, k as string))).to('out');
  return { app, places };
}
const send = (driver: TestDriver, s: Step) => driver.send(s.side, s.value, { key: s.key, timestamp: s.ts });
const outs = (driver: TestDriver) => driver.read('out').map(({ key, value, timestamp }) => canon({ key, value, timestamp }));
const SEEDS = Array.from({ length: 8 }, (_, i) => 400 + i);

describe('stream–globalTable joins against the model', () => {
  for (const partitions of [1, 3]) {
    for (const mode of ['inner', 'left'] as const) {
      it(`preloaded table read whole before tasks start; then live (${mode}, ${partitions}p, ${SEEDS.length} seeds)`, async () => {
        for (const seed of SEEDS) {
          const all = steps(seed, 240);
          const pre = all.slice(0, 140);
          const transport = new MemoryTransport({ defaultPartitions: partitions });
          preload(transport, 'places', partitions, pre.filter((s) => s.side === 'places').map((s) => ({ key: s.key, value: s.value, timestamp: s.ts })));
          preload(transport, 'readings', partitions, pre.filter((s) => s.side === 'readings').map((s) => ({ key: s.key, value: s.value, timestamp: s.ts })));
          const places = new Map<string, { site: number }>();
          model(pre.filter((s) => s.side === 'places'), mode, places);
          const expected = model(pre.filter((s) => s.side === 'readings'), mode, places);
          const { app } = globalApp(mode, `gt-${mode}-${partitions}-${seed}`);
          const driver = await TestDriver.start(app, { transport });
          expect(diff(outs(driver), expected), `seed ${seed} preloaded`).toEqual({ missing: [], extra: [] });
          for (const s of all.slice(140)) {
            await send(driver, s);
            expected.push(...model([s], mode, places));
            expect(diff(outs(driver), expected), `seed ${seed} after ${canon(s)}`).toEqual({ missing: [], extra: [] });
          }
          await driver.stop();
        }
      });
    }
  }

  it(`stop and restart in the middle (left, 3p, ${SEEDS.length} seeds × 2 cuts)`, async () => {
    for (const seed of SEEDS) {
      const all = steps(seed, 160);
      const expected = model(all, 'left');
      for (const cut of [50, 130]) {
        const transport = new MemoryTransport({ defaultPartitions: 3 });
        const id = `gt-restart-${seed}-${cut}`;
        const first = await TestDriver.start(globalApp('left', id).app, { transport });
        for (const s of all.slice(0, cut)) await send(first, s);
        await first.stop();
        const second = globalApp('left', id);
        const again = await TestDriver.start(second.app, { transport });
        for (const s of all.slice(cut)) await send(again, s);
        expect(diff(outs(again), expected), `seed ${seed} cut ${cut}`).toEqual({ missing: [], extra: [] });
        const places = new Map<string, { site: number }>();
        model(all.filter((s) => s.side === 'places'), 'left', places);
        const stored = await second.app.store(second.places).range();
        expect(new Map(stored.map(({ key, value }) => [key, value]))).toEqual(places);
        await again.stop();
      }
    }
  });
});
