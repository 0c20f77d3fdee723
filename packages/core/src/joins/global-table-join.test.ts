/**
 * Stream–global table joins: every instance holds the whole table, so a stream looks up any key
 * it computes, with no repartition. Checked against a brute-force reference on random updates,
 * deletes and readings, with 1 and 4 partitions, and across a restart.
 */
import { describe, expect, it } from 'vitest';
import { createApp, memoryTransport, silentLogger } from '../index.js';
import { mulberry32, TestDriver } from '../testing/index.js';

interface Reading {
  id: number;
  sensor: string;
  place: string;
}
type Step = { side: 'places'; key: string; value: { site: string } | null } | { side: 'readings'; value: Reading };

const SEEDS = [4, 21];

function randomSteps(seed: number, count: number): Step[] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, (_, id): Step => {
    const place = `place-${Math.floor(random() * 6)}`;
    const roll = random();
    if (roll < 0.2) return { side: 'places', key: place, value: { site: `site-${Math.floor(random() * 3)}` } };
    if (roll < 0.26) return { side: 'places', key: place, value: null };
    return { side: 'readings', value: { id, sensor: `s${Math.floor(random() * 10)}`, place } };
  });
}

const joiner = (reading: Reading, place: { site: string } | undefined) => ({ id: reading.id, site: place?.site ?? null });

function reference(steps: readonly Step[], mode: 'inner' | 'left'): unknown[] {
  const places = new Map<string, { site: string }>();
  const out: unknown[] = [];
  for (const step of steps) {
    if (step.side === 'places') {
      if (step.value === null) places.delete(step.key);
      else places.set(step.key, step.value);
    } else {
      const place = places.get(step.value.place);
      if (place || mode === 'left') out.push(joiner(step.value, place));
    }
  }
  return out;
}

function globalApp(mode: 'inner' | 'left', id: string) {
  const app = createApp({ id, logger: silentLogger, idleTimeout: false });
  const places = app.globalTable<string, { site: string }>('places');
  const readings = app.from<Reading>('readings');
  (mode === 'inner' ? readings.join(places, (reading) => reading.place, joiner) : readings.leftJoin(places, (reading) => reading.place, joiner)).to('joined');
  return { app, places };
}

async function feed(driver: TestDriver, steps: readonly Step[]) {
  let time = 1;
  for (const step of steps) {
    if (step.side === 'places') await driver.send('places', step.value, { key: step.key, timestamp: time++ });
    else await driver.send('readings', step.value, { key: step.value.sensor, timestamp: time++ });
  }
}

const byId = (values: unknown[]) => [...values].sort((a, b) => (a as { id: number }).id - (b as { id: number }).id);

describe('stream–global table join', () => {
  for (const partitions of [1, 4]) {
    for (const mode of ['inner', 'left'] as const) {
      it(`looks each record's table key up in the whole table (${mode}, ${partitions} partition${partitions > 1 ? 's' : ''})`, async () => {
        for (const seed of SEEDS) {
          const steps = randomSteps(seed, 300);
          const { app } = globalApp(mode, `global-${mode}-${partitions}-${seed}`);
          const driver = await TestDriver.start(app, { partitions });
          await feed(driver, steps);
          expect(byId(driver.read('joined').map((record) => record.value)), `seed ${seed}`).toEqual(reference(steps, mode));
          await driver.stop();
        }
      });
    }
  }

  it('a new instance reads the whole table before its tasks start; app.store reads it', async () => {
    const transport = memoryTransport({ defaultPartitions: 3 });
    const steps = randomSteps(9, 200);
    const first = globalApp('left', 'global-restart');
    const driver = await TestDriver.start(first.app, { transport });
    await feed(driver, steps.slice(0, 100));
    await driver.stop();
    const second = globalApp('left', 'global-restart');
    const again = await TestDriver.start(second.app, { transport });
    const places = new Map<string, { site: string }>();
    for (const step of steps.slice(0, 100)) {
      if (step.side !== 'places') continue;
      if (step.value === null) places.delete(step.key);
      else places.set(step.key, step.value);
    }
    const stored = await second.app.store(second.places).range();
    expect(new Map(stored.map(({ key, value }) => [key, value]))).toEqual(places);
    await feed(again, steps.slice(100));
    expect(byId(again.read('joined').map((record) => record.value))).toEqual(reference(steps, 'left'));
    expect(second.app.describe()).toMatch(/leftJoin global table places \[store places-global\]/);
    await again.stop();
  });
});
