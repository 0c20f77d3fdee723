/**
 * Processing time: a record's timestamp is the clock at its arrival, and windows close on clock
 * timers at end + grace, also while no record comes. The reference closes, before each record,
 * every window due by the clock at its arrival.
 */
import { describe, expect, it } from 'vitest';
import { createApp, silentLogger } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { modelOf, partitionOf, seededRandom, type Reading, type Reference, type WindowModel, specs, ONE_PER_KIND } from './ref.ts';
import { diff, newSink, resultOfCalls, tableOf } from './harness.ts';

const AGGREGATIONS = ['count', 'collect'];
const SPECS = specs(...ONE_PER_KIND);

describe('windows against the reference: processing time, windows closed by clock timers', () => {
  for (const [name, spec] of SPECS) {
    for (const partitions of [1, 2]) {
      it.each([71, 72, 73])(`${name}, ${partitions} partition(s) (seed %i)`, async (seed) => {
        const random = seededRandom(seed);
        const keys = ['a', 'b', 'c', 'd'];
        const steps: number[] = [];
        const readings: Reading[] = [];
        let clock = 1000;
        for (let id = 0; id < 150; id++) {
          const step = random() < 0.4 ? 0 : random() < 0.9 ? Math.floor(random() * 12) : Math.floor(random() * 80);
          steps.push(step);
          clock += step;
          readings.push({ id, k: keys[Math.floor(random() * keys.length)]!, ts: clock, v: Math.floor(random() * 100) - 50 });
        }

        const expected: Reference = { closed: [], late: [], updates: [], lateRecords: 0 };
        const tasks = new Map<number, WindowModel>();
        for (const [index, reading] of readings.entries()) {
          // `at` index - 0.5: closed by the clock before the record arrives.
          for (const model of tasks.values()) model.closeUpTo(reading.ts, index - 0.5, expected);
          const partition = partitionOf(reading.k, partitions);
          if (!tasks.has(partition)) tasks.set(partition, modelOf(spec));
          tasks.get(partition)!.add(reading, reading.ts, index, expected);
        }
        for (const model of tasks.values()) model.closeUpTo(Infinity, readings.length, expected);

        let at = -1;
        const sink = newSink(() => at);
        const app = createApp({ id: 'processing-time', time: 'processing', logger: silentLogger });
        const keyed = app.from<Reading>('in').keyBy((reading) => reading.k);
        for (const aggregation of AGGREGATIONS) {
          const closed = (sink.closed[aggregation] ??= []);
          const late = (sink.late[aggregation] ??= []);
          const table = tableOf(keyed, spec, aggregation, `t-${aggregation}`);
          table
            .onClose((window) => {
              closed.push({ key: window.key, start: window.start, end: window.end, value: window.value, at });
              return undefined;
            })
            .to(`out-${aggregation}`);
          table
            .onLate((record) => {
              late.push({ key: record.key, start: record.start, end: record.end, id: record.value.id, timestamp: record.timestamp, at });
              return undefined;
            })
            .to(`late-${aggregation}`);
        }
        const driver = await TestDriver.start(app, { startTime: 1000, partitions });
        for (const [index, reading] of readings.entries()) {
          at = index - 0.5;
          if (steps[index]) await driver.advanceTime(steps[index]);
          at = index;
          // No timestamp: the record takes the clock's.
          await driver.send('in', reading, { key: reading.k });
        }
        at = readings.length;
        await driver.advanceTime(10_000);
        await driver.stop();
        const options = { spec, readings, aggregations: AGGREGATIONS, flush: 'none' as const };
        expect(diff(options, resultOfCalls(sink, AGGREGATIONS, readings), expected)).toEqual([]);
      });
    }
  }
});
