/**
 * Stop and restart mid-stream: the input is sent in segments, each to a new app with the same id
 * and topology on one shared MemoryTransport (and, in the last suite, levelState on one dir).
 * The results must equal those of one uninterrupted run: the same windows with the same values,
 * each closed after the same input record, every late record reported once, none reported twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryTransport, type StateBackend } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { levelState } from '@eddy/state';
import { generate, seededRandom, specs, WITH_AND_WITHOUT_GRACE } from './ref.ts';
import { buildApp, diff, flushKeys, FLUSH_TS, newSink, notFlush, reference, type CloseCall, type OutputRecord, type RunOptions, type RunResult } from './harness.ts';

const AGGREGATIONS = ['count', 'mean', 'collect', 'aggregateWithoutMerge'];
const SPECS = specs(...WITH_AND_WITHOUT_GRACE, 'count 4/2', 'count 3/1');

/**
 * Runs the input in segments cut before the indices in `cuts`, a new app per segment. Results
 * reported twice are set aside in `duplicates` (with whether the value differed), so that the
 * rest can be compared with the reference.
 */
async function runRestarting(options: RunOptions & { cuts: number[]; state?: () => StateBackend }): Promise<RunResult & { duplicates: string[] }> {
  const partitions = options.partitions ?? 1;
  const input = [...options.readings];
  if (options.flush === 'record') for (const key of flushKeys(partitions)) input.push({ id: input.length, k: key, ts: FLUSH_TS, v: 0 });
  const transport = new MemoryTransport({ defaultPartitions: partitions });
  let at = -1;
  const sink = newSink(() => at);
  const bounds = [0, ...options.cuts, input.length];
  let lateRecords = 0;
  let last: TestDriver | undefined;
  for (let segment = 0; segment + 1 < bounds.length; segment++) {
    const app = buildApp({ id: 'restart', spec: options.spec, aggregations: options.aggregations, idle: options.flush === 'idle', transport, state: options.state }, sink);
    const driver = await TestDriver.start(app, { startTime: 0, transport });
    for (let index = bounds[segment]!; index < bounds[segment + 1]!; index++) {
      at = index;
      await driver.send('in', input[index], { key: input[index]!.k, timestamp: input[index]!.ts });
    }
    at = input.length;
    if (segment + 2 === bounds.length && options.flush === 'idle') {
      const times = options.readings.map((reading) => reading.ts);
      await driver.advanceTime(5000 + Math.max(...times) - Math.min(...times) + 100_000);
    }
    lateRecords += app.metrics().lateRecords;
    last = driver;
    await driver.stop();
  }
  const duplicates: string[] = [];
  const out: RunResult['out'] = {};
  for (const aggregation of options.aggregations) {
    out[aggregation] = last!.read<OutputRecord['value']>(`out-${aggregation}`).filter(notFlush);
    const seen = new Map<string, string>();
    const unique: CloseCall[] = [];
    for (const call of sink.closed[aggregation]!.filter(notFlush)) {
      // Count windows may repeat bounds and value legitimately: those are told apart by `at`.
      const id = options.spec.kind === 'count' ? `${call.key}|${call.start}|${call.end}|${call.at}` : `${call.key}|${call.start}|${call.end}`;
      const value = JSON.stringify(call.value);
      if (seen.has(id)) {
        duplicates.push(`${aggregation} ${id} ${seen.get(id) === value ? 'same value' : `different value ${seen.get(id)} vs ${value}`}`);
        if (seen.get(id) === value) continue;
      }
      seen.set(id, value);
      unique.push(call);
    }
    sink.closed[aggregation] = unique;
    const lateSeen = new Set<string>();
    sink.late[aggregation] = sink.late[aggregation]!.filter(notFlush).filter((late) => {
      const id = `${late.key}|${late.id}|${late.start}`;
      if (lateSeen.has(id)) {
        duplicates.push(`${aggregation} late ${id}`);
        return false;
      }
      lateSeen.add(id);
      return true;
    });
  }
  return { closed: sink.closed, late: sink.late, out, lateRecords, input, duplicates };
}

const KEYS = ['a', 'b', 'c', 'd', 'e'];

describe('windows against the reference: stop and restart on a shared MemoryTransport mid-stream', () => {
  for (const [name, spec] of SPECS) {
    for (const partitions of [1, 3]) {
      for (const flush of ['record', 'idle'] as const) {
        it.each([21, 22, 23, 24])(`${name}, ${partitions} partition(s), flush ${flush} (seed %i)`, async (seed) => {
          const readings = generate(seed, { count: 160, keys: KEYS, quantum: 5, maxStep: 3, jitter: 8, lateBy: 40 });
          const random = seededRandom(seed * 7);
          const cuts = [...new Set([1 + Math.floor(random() * 70), 80 + Math.floor(random() * 70)])].sort((a, b) => a - b);
          const options = { spec, readings, aggregations: AGGREGATIONS, flush, partitions, cuts };
          const result = await runRestarting(options);
          const expected = reference(options, result.input);
          // `at` is compared too: windows close after the same record as in an uninterrupted run.
          expect(diff(options, result, expected)).toEqual([]);
          expect(result.duplicates).toEqual([]);
          expect(result.lateRecords).toBe(expected.lateRecords * AGGREGATIONS.length);
        });
      }
    }
  }
});

describe('windows against the reference: a restart every 7 to 20 records', () => {
  for (const [name, spec] of SPECS) {
    it.each([25, 26, 27])(`${name}, 2 partitions (seed %i)`, async (seed) => {
      const readings = generate(seed, { count: 160, keys: KEYS, quantum: 5, maxStep: 3, jitter: 8, lateBy: 40 });
      const random = seededRandom(seed * 11);
      const cuts: number[] = [];
      for (let cut = 7 + Math.floor(random() * 14); cut < 160; cut += 7 + Math.floor(random() * 14)) cuts.push(cut);
      const options = { spec, readings, aggregations: AGGREGATIONS, flush: 'record' as const, partitions: 2, cuts };
      const result = await runRestarting(options);
      const expected = reference(options, result.input);
      expect(diff(options, result, expected)).toEqual([]);
      expect(result.duplicates).toEqual([]);
      expect(result.lateRecords).toBe(expected.lateRecords * AGGREGATIONS.length);
    });
  }
});

describe('windows against the reference: restarts with levelState (local checkpoint and changelog tail) on a shared MemoryTransport', () => {
  for (const [name, spec] of SPECS) {
    it.each([28, 29])(`${name}, 2 partitions (seed %i)`, async (seed) => {
      const dir = mkdtempSync(join(tmpdir(), 'eddy-windows-level-'));
      try {
        const readings = generate(seed, { count: 120, keys: KEYS, quantum: 5, maxStep: 3, jitter: 8, lateBy: 40 });
        const random = seededRandom(seed * 5);
        const cuts: number[] = [];
        for (let cut = 10 + Math.floor(random() * 20); cut < 120; cut += 10 + Math.floor(random() * 20)) cuts.push(cut);
        const options = { spec, readings, aggregations: AGGREGATIONS, flush: 'record' as const, partitions: 2, cuts, state: () => levelState({ dir }) };
        const result = await runRestarting(options);
        const expected = reference(options, result.input);
        expect(diff(options, result, expected)).toEqual([]);
        expect(result.duplicates).toEqual([]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
