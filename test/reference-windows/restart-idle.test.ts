/**
 * Restarts after quiet spells: the input stops for a while (the idle timeout moves stream time,
 * sometimes closing windows, sometimes not), the app stops, and a new one with the same id goes
 * on from the same broker. The stream time a quiet spell reached must survive the restart: the
 * results equal those of one uninterrupted run (the reference). The same quiet spells without
 * restarts run as a control.
 */
import { describe, expect, it } from 'vitest';
import { MemoryTransport } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { generate, modelOf, partitionOf, seededRandom, type Reading, type Reference, type WindowModel, specs, ONE_PER_KIND, type Spec } from './ref.ts';
import { buildApp, diff, newSink, resultOfCalls } from './harness.ts';

const IDLE_TIMEOUT = 5000;
const AGGREGATIONS = ['count', 'collect'];
const SPECS = specs(...ONE_PER_KIND);

/** A record sent (index `index`), or a quiet spell of `advance` ms of clock time after record `at`. */
type Step = { reading: Reading; index: number } | { advance: number; at: number };

/** The reference with quiet spells: a spell of d ms moves every task's stream time by max(0, d - IDLE_TIMEOUT). */
function simulateSteps(spec: Spec, steps: Step[], partitions: number): Reference {
  const tasks = new Map<number, { model: WindowModel; streamTime: number }>();
  const out: Reference = { closed: [], late: [], updates: [], lateRecords: 0 };
  for (const step of steps) {
    if ('reading' in step) {
      const partition = partitionOf(step.reading.k, partitions);
      let task = tasks.get(partition);
      if (!task) tasks.set(partition, (task = { model: modelOf(spec), streamTime: -Infinity }));
      task.model.add(step.reading, task.streamTime, step.index, out);
      task.streamTime = Math.max(task.streamTime, step.reading.ts);
      task.model.closeUpTo(task.streamTime, step.index, out);
    } else {
      for (const task of tasks.values()) {
        task.streamTime += Math.max(0, step.advance - IDLE_TIMEOUT);
        task.model.closeUpTo(task.streamTime, step.at, out);
      }
    }
  }
  return out;
}

describe('windows against the reference: restarts after the idle timeout moved stream time', () => {
  for (const [name, spec] of SPECS) {
    for (const partitions of [1, 2]) {
      for (const restart of [true, false]) {
        const mode = restart ? 'a restart after each quiet spell' : 'the same quiet spells without restarts';
        it.each([31, 32, 33, 34, 35, 36])(`${name}, ${partitions} partition(s), ${mode} (seed %i)`, async (seed) => {
          const readings = generate(seed, { count: 150, keys: ['a', 'b', 'c', 'd'], quantum: 5, maxStep: 3, jitter: 8, lateBy: 40 });
          const random = seededRandom(seed * 13);
          const cuts = [...new Set([10 + Math.floor(random() * 60), 80 + Math.floor(random() * 60)])].sort((a, b) => a - b);
          const bounds = [0, ...cuts, readings.length];
          const transport = new MemoryTransport({ defaultPartitions: partitions });
          let at = -1;
          const sink = newSink(() => at);
          const steps: Step[] = [];
          let clock = 0;
          let driver: TestDriver | undefined;
          for (let segment = 0; segment + 1 < bounds.length; segment++) {
            driver ??= await TestDriver.start(buildApp({ id: 'restart-idle', spec, aggregations: AGGREGATIONS, idle: true, transport }, sink), { startTime: clock, transport });
            for (let index = bounds[segment]!; index < bounds[segment + 1]!; index++) {
              at = index;
              steps.push({ reading: readings[index]!, index });
              await driver.send('in', readings[index], { key: readings[index]!.k, timestamp: readings[index]!.ts });
            }
            // A quiet spell a little longer than the idle timeout; the last one long enough to close everything.
            const last = segment + 2 === bounds.length;
            const advance = last ? IDLE_TIMEOUT + 100_000 : IDLE_TIMEOUT + Math.floor(random() * 60);
            at = bounds[segment + 1]! - 1;
            steps.push({ advance, at });
            await driver.advanceTime(advance);
            clock = driver.now();
            if (restart || last) {
              await driver.stop();
              driver = undefined;
            }
          }
          const options = { spec, readings, aggregations: AGGREGATIONS, flush: 'none' as const };
          expect(diff(options, resultOfCalls(sink, AGGREGATIONS, readings), simulateSteps(spec, steps, partitions))).toEqual([]);
        });
      }
    }
  }
});
