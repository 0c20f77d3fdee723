/**
 * Stream–table joins against a brute-force reference: random interleavings of table updates
 * (deletes among them) and stream records, in the TestDriver with 1 and 4 partitions. A record
 * meets the table as it stands when the record is processed; per key that is send order, since a
 * key's records (both sides) go to one partition.
 */
import { describe, expect, it } from 'vitest';
import { createApp, memoryTransport, silentLogger } from '../index.js';
import { mulberry32, TestDriver } from '../testing/index.js';

interface Reading {
  sensor: string;
  value: number;
}
interface Sensor {
  place: string;
  scale: number;
}
type Step = { side: 'table'; key: string; value: Sensor | null } | { side: 'stream'; key: string; value: Reading };

const SEEDS = [1, 7, 42];

function randomSteps(seed: number, count: number): Step[] {
  const random = mulberry32(seed);
  const keys = ['s0', 's1', 's2', 's3', 's4', 's5'];
  const steps: Step[] = [];
  for (let index = 0; index < count; index++) {
    const key = keys[Math.floor(random() * keys.length)]!;
    const roll = random();
    if (roll < 0.25) steps.push({ side: 'table', key, value: { place: `p${Math.floor(random() * 5)}`, scale: Math.floor(random() * 10) } });
    else if (roll < 0.32) steps.push({ side: 'table', key, value: null });
    else steps.push({ side: 'stream', key, value: { sensor: key, value: Math.floor(random() * 100) } });
  }
  return steps;
}

/** What a join emits for each key, in order: the brute-force model of the table at each record. */
function reference(steps: readonly Step[], mode: 'inner' | 'left'): Map<string, unknown[]> {
  const table = new Map<string, Sensor>();
  const out = new Map<string, unknown[]>();
  for (const step of steps) {
    if (step.side === 'table') {
      if (step.value === null) table.delete(step.key);
      else table.set(step.key, step.value);
      continue;
    }
    const sensor = table.get(step.key);
    if (!sensor && mode === 'inner') continue;
    out.set(step.key, [...(out.get(step.key) ?? []), joined(step.value, sensor, step.key)]);
  }
  return out;
}

const joined = (reading: Reading, sensor: Sensor | undefined, key: string) => ({ key, value: reading.value, place: sensor?.place ?? null, scaled: sensor ? reading.value * sensor.scale : null });

function joinApp(mode: 'inner' | 'left', id = `join-${mode}`) {
  const app = createApp({ id, logger: silentLogger, idleTimeout: false });
  const sensors = app.table<string, Sensor>('sensors');
  const keyed = app.from<Reading>('readings').keyBy((reading) => reading.sensor);
  const out = mode === 'inner' ? keyed.join(sensors, (reading, sensor, key) => joined(reading, sensor, key)) : keyed.leftJoin(sensors, (reading, sensor, key) => joined(reading, sensor, key));
  out.to('enriched');
  return { app, sensors };
}

async function feed(driver: TestDriver, steps: readonly Step[]): Promise<void> {
  let time = 1_000;
  for (const step of steps) {
    if (step.side === 'table') await driver.send('sensors', step.value, { key: step.key, timestamp: time++ });
    else await driver.send('readings', step.value, { key: step.key, timestamp: time++ });
  }
}

function byKey(records: ReadonlyArray<{ key: string | undefined; value: unknown }>): Map<string, unknown[]> {
  const out = new Map<string, unknown[]>();
  for (const record of records) out.set(record.key!, [...(out.get(record.key!) ?? []), record.value]);
  return out;
}

describe('stream–table join', () => {
  it('enriches each record with the table value of its key; an inner join drops records with none, a left join passes undefined', async () => {
    for (const mode of ['inner', 'left'] as const) {
      const { app } = joinApp(mode);
      const driver = await TestDriver.start(app);
      await driver.send('readings', { sensor: 's1', value: 5 }, { key: 's1', timestamp: 1 });
      await driver.send('sensors', { place: 'attic', scale: 2 }, { key: 's1', timestamp: 2 });
      await driver.send('readings', { sensor: 's1', value: 7 }, { key: 's1', timestamp: 3 });
      await driver.send('readings', { sensor: 's2', value: 1 }, { key: 's2', timestamp: 4 });
      const expected = [
        ...(mode === 'left' ? [{ key: 's1', value: { key: 's1', value: 5, place: null, scaled: null }, timestamp: 1 }] : []),
        { key: 's1', value: { key: 's1', value: 7, place: 'attic', scaled: 14 }, timestamp: 3 },
        ...(mode === 'left' ? [{ key: 's2', value: { key: 's2', value: 1, place: null, scaled: null }, timestamp: 4 }] : []),
      ];
      expect(driver.read('enriched')).toEqual(expected);
      await driver.stop();
    }
  });

  it('a null table value deletes the key: the table no longer has it, for joins and for app.store', async () => {
    const { app, sensors } = joinApp('left', 'join-delete');
    const driver = await TestDriver.start(app);
    await driver.send('sensors', { place: 'attic', scale: 2 }, { key: 's1', timestamp: 1 });
    expect(await app.store(sensors).get('s1')).toEqual({ place: 'attic', scale: 2 });
    await driver.send('sensors', null, { key: 's1', timestamp: 2 });
    expect(await app.store(sensors).get('s1')).toBeUndefined();
    await driver.send('readings', { sensor: 's1', value: 3 }, { key: 's1', timestamp: 3 });
    expect(driver.read('enriched').map((record) => record.value)).toEqual([{ key: 's1', value: 3, place: null, scaled: null }]);
    expect(app.describe()).toMatch(/leftJoin table \[store sensors-table\]/);
    await driver.stop();
  });

  for (const partitions of [1, 4]) {
    for (const mode of ['inner', 'left'] as const) {
      it(`matches the reference on random interleavings (${mode}, ${partitions} partition${partitions > 1 ? 's' : ''}, seeds ${SEEDS.join(', ')})`, async () => {
        for (const seed of SEEDS) {
          const steps = randomSteps(seed, 300);
          const { app } = joinApp(mode, `join-random-${mode}-${partitions}-${seed}`);
          const driver = await TestDriver.start(app, { partitions });
          await feed(driver, steps);
          expect(byKey(driver.read('enriched')), `seed ${seed}`).toEqual(reference(steps, mode));
          await driver.stop();
        }
      });
    }
  }

  it('a restarted app joins against the table restored from its changelog', async () => {
    const transport = memoryTransport({ defaultPartitions: 2 });
    const steps = randomSteps(99, 200);
    const first = joinApp('inner', 'join-restart');
    const driver = await TestDriver.start(first.app, { transport });
    await feed(driver, steps.slice(0, 100));
    await driver.stop();
    const second = joinApp('inner', 'join-restart');
    const again = await TestDriver.start(second.app, { transport });
    // Only the second half is new input; the table holds what the first half left.
    await feed(again, steps.slice(100));
    expect(byKey(again.read('enriched'))).toEqual(reference(steps, 'inner'));
    await again.stop();
  });

  it('table updates do not move stream time: a table record far in the future closes no window of the stream', async () => {
    const app = createApp({ id: 'join-stream-time', logger: silentLogger, idleTimeout: false });
    const info = app.table<string, { place: string }>('info');
    app
      .from<{ k: string }>('in')
      .keyBy((record) => record.k)
      .leftJoin(info, (record, found) => ({ ...record, place: found?.place ?? 'unknown' }))
      .tumbling('1s')
      .count()
      .onClose(({ key, start, value }) => ({ key, start, value }))
      .to('out');
    const driver = await TestDriver.start(app);
    await driver.send('info', { place: 'roof' }, { key: 'a', timestamp: 3_600_000 });
    for (let timestamp = 0; timestamp < 3_000; timestamp += 100) await driver.send('in', { k: 'a' }, { key: 'a', timestamp });
    await driver.send('in', { k: 'a' }, { key: 'a', timestamp: 10_000 });
    expect(app.metrics().lateRecords).toBe(0);
    expect(driver.read('out').map((record) => record.value)).toEqual([
      { key: 'a', start: 0, value: 10 },
      { key: 'a', start: 1_000, value: 10 },
      { key: 'a', start: 2_000, value: 10 },
    ]);
    await driver.stop();
  });

  it('a re-keyed stream is repartitioned with the table topic’s partition count', async () => {
    const transport = memoryTransport({ defaultPartitions: 4 });
    transport.createTopic({ name: 'sensors', partitions: 2 });
    const { app } = joinApp('inner', 'join-copartition');
    const driver = await TestDriver.start(app, { transport });
    await expect(transport.partitionCount('join-copartition-sensors-table-join-repartition')).resolves.toBe(2);
    await driver.send('sensors', { place: 'attic', scale: 2 }, { key: 's1', timestamp: 1 });
    await driver.send('readings', { sensor: 's1', value: 4 }, { key: 'x', timestamp: 2 });
    expect(driver.read('enriched').map((record) => record.value)).toEqual([{ key: 's1', value: 4, place: 'attic', scaled: 8 }]);
    await driver.stop();
  });
});
