/**
 * A task reads its inputs in timestamp order (task/input-order.ts): with both sides of a join on
 * the broker before the app starts, so that one side's batches could run far ahead of the other's,
 * a stream record meets the table as of its timestamp, and two streams joined with no grace lose
 * no pair. Each result is checked against a brute-force merge of what the join task's partitions
 * hold; a second reference, arrival order, shows that the data would tell the two apart.
 */
import { describe, expect, it } from 'vitest';
import { createApp, MemoryTransport, partitionForKey, silentLogger, type CaughtUp } from '../index.js';
import { mulberry32, TestDriver } from '../testing/index.js';

interface Reading {
  sensor: string;
  id: number;
}
interface Sensor {
  scale: number;
}

const encoder = new TextEncoder();

/** Writes records to the broker directly, partitioned by key as the app's producer does. */
function preload(transport: MemoryTransport, topic: string, partitions: number, records: ReadonlyArray<{ key: string; value: unknown; timestamp: number }>): void {
  transport.append(
    records.map(({ key, value, timestamp }) => {
      const keyBytes = encoder.encode(key);
      return { topic, partition: partitionForKey(keyBytes, partitions), key: keyBytes, value: value === null ? null : encoder.encode(JSON.stringify(value)), timestamp, headers: {} };
    }),
  );
}

type Entry = { side: 'table'; key: string; value: Sensor | null; timestamp: number } | { side: 'stream'; key: string; value: Reading; timestamp: number };

/**
 * The join's output for one partition of the task, merged by timestamp (always the side whose
 * next record is earliest; a table update before a stream record of its timestamp), or with the
 * whole table first (`arrival`: as if the table's batches had all run ahead of the stream's).
 */
function joinReference(stream: readonly Entry[], table: readonly Entry[], merge: 'timestamp' | 'arrival'): string[] {
  const ordered: Entry[] = [];
  if (merge === 'arrival') {
    ordered.push(...table, ...stream);
  } else {
    let s = 0;
    let t = 0;
    while (s < stream.length || t < table.length) {
      if (s < stream.length && (t >= table.length || stream[s]!.timestamp < table[t]!.timestamp)) ordered.push(stream[s++]!);
      else ordered.push(table[t++]!);
    }
  }
  const current = new Map<string, Sensor>();
  const out: string[] = [];
  for (const entry of ordered) {
    if (entry.side === 'table') {
      if (entry.value === null) current.delete(entry.key);
      else current.set(entry.key, entry.value);
    } else {
      out.push(JSON.stringify({ key: entry.key, id: entry.value.id, scale: current.get(entry.key)?.scale ?? null, timestamp: entry.timestamp }));
    }
  }
  return out;
}

describe('a task reads its inputs in timestamp order', () => {
  for (const partitions of [1, 4]) {
    it(`joins each stream record with the table as of its timestamp, whichever side's batches come first (${partitions} partition${partitions > 1 ? 's' : ''}, seeds 1–4)`, async () => {
      let differs = 0;
      for (let seed = 1; seed <= 4; seed++) {
        const random = mulberry32(seed);
        const keys = Array.from({ length: 12 }, (_, index) => `s${index}`);
        // Timestamps out of order within each side; 1,500 records a side, three batches or more.
        const readings = Array.from({ length: 1_500 }, (_, id) => {
          const sensor = keys[Math.floor(random() * keys.length)]!;
          return { key: sensor, value: { sensor, id } satisfies Reading, timestamp: 1_000 + id * 10 + Math.floor(random() * 400) };
        });
        const updates = Array.from({ length: 1_500 }, (_, index) => ({
          key: keys[Math.floor(random() * keys.length)]!,
          value: random() < 0.1 ? null : ({ scale: Math.floor(random() * 100) } satisfies Sensor),
          timestamp: 1_000 + index * 10 + Math.floor(random() * 400),
        }));
        const transport = new MemoryTransport({ defaultPartitions: partitions });
        preload(transport, 'readings', partitions, readings);
        preload(transport, 'sensors', partitions, updates);

        const app = createApp({ id: `order-${partitions}-${seed}`, logger: silentLogger, idleTimeout: false });
        const sensors = app.table<string, Sensor>('sensors');
        app
          .from<Reading>('readings')
          .keyBy((reading) => reading.sensor, { name: 'by-sensor' })
          .leftJoin(sensors, (reading, sensor, key) => ({ key, id: reading.id, scale: sensor?.scale ?? null }))
          .to('enriched');
        const driver = await TestDriver.start(app, { transport });

        // The reference reads what the join task's partitions hold, in offset order: the
        // repartition topic as the upstream tasks wrote it, and the table topic.
        const expected: string[] = [];
        const byArrival: string[] = [];
        const repartitioned = transport.records(`order-${partitions}-${seed}-by-sensor-repartition`);
        expect(repartitioned).toHaveLength(readings.length);
        for (let partition = 0; partition < partitions; partition++) {
          const stream: Entry[] = repartitioned
            .filter((record) => record.partition === partition)
            .map((record) => {
              const value = (record.decoded?.value ?? JSON.parse(new TextDecoder().decode(record.value!))) as Reading;
              return { side: 'stream', key: value.sensor, value, timestamp: record.timestamp };
            });
          const table: Entry[] = transport
            .records('sensors')
            .filter((record) => record.partition === partition)
            .map((record) => ({ side: 'table', key: new TextDecoder().decode(record.key!), value: record.value === null ? null : (JSON.parse(new TextDecoder().decode(record.value)) as Sensor), timestamp: record.timestamp }));
          expected.push(...joinReference(stream, table, 'timestamp'));
          byArrival.push(...joinReference(stream, table, 'arrival'));
        }
        const actual = driver.read<{ key: string; id: number; scale: number | null }>('enriched').map(({ value, timestamp }) => JSON.stringify({ key: value.key, id: value.id, scale: value.scale, timestamp }));
        expect(actual.sort(), `seed ${seed}`).toEqual(expected.sort());
        if (JSON.stringify(byArrival.sort()) !== JSON.stringify(expected)) differs++;
        expect(app.metrics().inputWaitsExpired, `seed ${seed}`).toBe(0);
        await driver.stop();
      }
      expect(differs, 'the data tells timestamp order from arrival order').toBeGreaterThan(0);
    });

    it(`joins two streams with no grace and loses no pair, though one side is all on the broker before the other (${partitions} partition${partitions > 1 ? 's' : ''})`, async () => {
      const within = 50;
      const random = mulberry32(partitions);
      const keys = ['a', 'b', 'c', 'd', 'e'];
      const side = (offset: number) =>
        Array.from({ length: 1_500 }, (_, index) => {
          const key = keys[Math.floor(random() * keys.length)]!;
          return { key, value: { key, id: index }, timestamp: 10_000 + index * 20 + offset };
        });
      const lefts = side(0);
      const rights = side(7);
      const transport = new MemoryTransport({ defaultPartitions: partitions });
      preload(transport, 'lefts', partitions, lefts);
      preload(transport, 'rights', partitions, rights);
      const app = createApp({ id: `order-streams-${partitions}`, logger: silentLogger, idleTimeout: false });
      const left = app.from<{ key: string; id: number }>('lefts').keyBy((event) => event.key);
      const right = app.from<{ key: string; id: number }>('rights').keyBy((event) => event.key);
      left.join(right, (l, r) => `${l.id}-${r.id}`, { within, grace: 0 }).to('pairs');
      const driver = await TestDriver.start(app, { transport });
      const expected: string[] = [];
      for (const l of lefts) for (const r of rights) if (l.key === r.key && Math.abs(l.timestamp - r.timestamp) <= within) expected.push(`${l.value.id}-${r.value.id}`);
      expect(expected.length).toBeGreaterThan(500);
      expect(driver.read<string>('pairs').map((record) => record.value).sort()).toEqual(expected.sort());
      expect(app.metrics().lateRecords).toBe(0);
      await driver.stop();
    });
  }

  /**
   * The embedded broker, but while `silent` the log has no word on the table's partition: it is
   * not known to be at its end, and, with `lagging`, it shows a record not delivered yet.
   */
  class ScriptedTable extends MemoryTransport {
    silent = true;
    constructor(readonly lagging: boolean) {
      super({ defaultPartitions: 1 });
    }
    override async subscribe(...args: Parameters<MemoryTransport['subscribe']>) {
      const consumer = await super.subscribe(...args);
      const caughtUp = consumer.caughtUp.bind(consumer);
      const lag = consumer.lag?.bind(consumer);
      const scripted = (partition: { topic: string }) => partition.topic === 'sensors' && this.silent;
      consumer.caughtUp = (partition): CaughtUp | undefined => (scripted(partition) ? undefined : caughtUp(partition));
      consumer.lag = (partition) => (scripted(partition) && this.lagging ? 1 : lag?.(partition));
      return consumer;
    }
  }

  /** Readings left-joined with the sensors table, on `transport`. */
  async function enrichment(id: string, transport: ScriptedTable) {
    const app = createApp({ id, logger: silentLogger, idleTimeout: false, maxInputWait: '2s' });
    const sensors = app.table<string, Sensor>('sensors');
    app
      .from<Reading>('readings')
      .keyBy((reading) => reading.sensor)
      .leftJoin(sensors, (reading, sensor) => ({ id: reading.id, scale: sensor?.scale ?? null }))
      .to('enriched');
    return { app, driver: await TestDriver.start(app, { transport }) };
  }

  it('waits up to maxInputWait for a side the log has no word on, then processes the other and counts it in inputWaitsExpired', async () => {
    const transport = new ScriptedTable(false);
    const { app, driver } = await enrichment('order-wait', transport);
    await driver.send('readings', { sensor: 's1', id: 1 }, { key: 's1', timestamp: 100 });
    expect(driver.read('enriched'), 'the reading waits for the table').toEqual([]);
    await driver.advanceTime('1s');
    expect(driver.read('enriched')).toEqual([]);
    await driver.advanceTime('1s');
    expect(driver.read('enriched').map((record) => record.value)).toEqual([{ id: 1, scale: null }]);
    expect(app.metrics().inputWaitsExpired).toBe(1);
    // The log answers again: records go in timestamp order, with no wait.
    transport.silent = false;
    await driver.send('sensors', { scale: 3 }, { key: 's1', timestamp: 200 });
    await driver.send('readings', { sensor: 's1', id: 2 }, { key: 's1', timestamp: 300 });
    expect(driver.read('enriched').map((record) => record.value)).toEqual([
      { id: 1, scale: null },
      { id: 2, scale: 3 },
    ]);
    expect(app.metrics().inputWaitsExpired).toBe(1);
    await driver.stop();
  });

  it('waits past maxInputWait for a side the log shows records of, until they come', async () => {
    const transport = new ScriptedTable(true);
    const { app, driver } = await enrichment('order-lag', transport);
    await driver.send('readings', { sensor: 's1', id: 1 }, { key: 's1', timestamp: 100 });
    await driver.advanceTime('1m');
    expect(driver.read('enriched'), 'a minute later, the reading still waits for the table').toEqual([]);
    expect(app.health().reasons.join('\n'), 'not silently').toMatch(/records have waited \d+ ms for input sensors/);
    // The record the log showed comes: it is applied first, being older.
    transport.silent = false;
    await driver.send('sensors', { scale: 3 }, { key: 's1', timestamp: 50 });
    expect(driver.read('enriched').map((record) => record.value)).toEqual([{ id: 1, scale: 3 }]);
    expect(app.metrics().inputWaitsExpired).toBe(0);
    expect(app.health().status).toBe('ok');
    await driver.stop();
  });

  it('rejects a maxInputWait that is not a duration', () => {
    expect(() => createApp({ id: 'order-bad', maxInputWait: '-1s' as never })).toThrow(/maxInputWait/);
  });
});
