/**
 * The idle timeout with the clock moving between records: a task that has received nothing for
 * 5 s of clock time has its stream time follow the clock from then on, so windows close while the
 * input is quiet. The reference keeps, per task, the clock of its last record; each task goes
 * idle on its own.
 */
import { describe, expect, it } from 'vitest';
import { TestDriver } from '@eddy/core/testing';
import { generate, modelOf, partitionOf, seededRandom, type Reference, type WindowModel, specs, ONE_PER_KIND } from './ref.ts';
import { buildApp, diff, newSink, resultOfCalls } from './harness.ts';

const IDLE_TIMEOUT = 5000;
const AGGREGATIONS = ['count', 'collect'];
const SPECS = specs(...ONE_PER_KIND, 'count 3/2');

describe('windows against the reference: idle timeout per task, the clock moving between records', () => {
  for (const [name, spec] of SPECS) {
    for (const partitions of [1, 2, 3]) {
      it.each([61, 62, 63, 64])(`${name}, ${partitions} partition(s) (seed %i)`, async (seed) => {
        const readings = generate(seed, { count: 150, keys: ['a', 'b', 'c', 'd', 'e'], quantum: 5, maxStep: 3, jitter: 8, lateBy: 40 });
        const random = seededRandom(seed * 17);
        // Clock time before each record: mostly none or a little, sometimes more than the idle timeout.
        const before = readings.map(() => (random() < 0.12 ? Math.floor(random() * 7000) : random() < 0.3 ? Math.floor(random() * 50) : 0));

        // The reference: a task whose last record came at clock c has stream time S + max(0, now - c - IDLE_TIMEOUT).
        const expected: Reference = { closed: [], late: [], updates: [], lateRecords: 0 };
        const tasks = new Map<number, { model: WindowModel; streamTime: number; since: number }>();
        let clock = 0;
        // `at` i - 0.5: while the clock moves before record i.
        const idleTo = (now: number, at: number) => {
          for (const task of tasks.values()) task.model.closeUpTo(task.streamTime + Math.max(0, now - task.since - IDLE_TIMEOUT), at, expected);
        };
        readings.forEach((reading, index) => {
          clock += before[index]!;
          idleTo(clock, index - 0.5);
          const partition = partitionOf(reading.k, partitions);
          let task = tasks.get(partition);
          if (!task) tasks.set(partition, (task = { model: modelOf(spec), streamTime: -Infinity, since: 0 }));
          const streamTime = task.streamTime + Math.max(0, clock - task.since - IDLE_TIMEOUT);
          task.model.add(reading, streamTime, index, expected);
          task.streamTime = Math.max(streamTime, reading.ts);
          task.since = clock;
          task.model.closeUpTo(task.streamTime, index, expected);
        });
        const END = 200_000;
        idleTo(clock + END, readings.length);

        let at = -1;
        const sink = newSink(() => at);
        const driver = await TestDriver.start(buildApp({ id: 'idle', spec, aggregations: AGGREGATIONS, idle: true }, sink), { startTime: 0, partitions });
        for (const [index, reading] of readings.entries()) {
          at = index - 0.5;
          if (before[index]) await driver.advanceTime(before[index]);
          at = index;
          await driver.send('in', reading, { key: reading.k, timestamp: reading.ts });
        }
        at = readings.length;
        await driver.advanceTime(END);
        await driver.stop();
        const options = { spec, readings, aggregations: AGGREGATIONS, flush: 'none' as const };
        expect(diff(options, resultOfCalls(sink, AGGREGATIONS, readings), expected)).toEqual([]);
      });
    }
  }
});
