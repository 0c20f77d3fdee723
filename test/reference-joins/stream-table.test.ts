/**
 * Stream–table joins (join, leftJoin) against brute-force models of README "Tables and joins":
 * - records sent one at a time, out-of-order timestamps: each record meets the table as it stands
 *   when processed (an input read to its end is not waited for);
 * - both topics preloaded before start: the task merges its inputs by timestamp (each input in
 *   offset order; a table update before a stream record of the same timestamp);
 * - stop and restart in the middle.
 */
import { describe, expect, it } from 'vitest';
import { createApp, MemoryTransport, silentLogger } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { canon, diff, preload, rng } from './util.ts';

type Mode = 'inner' | 'left';
interface Reading {
  id: number;
  sensor: string;
}
type Step = { side: 'table'; key: string; value: { s: number } | null; ts: number } | { side: 'stream'; key: string; value: Reading; ts: number };

function steps(seed: number, n: number, keys = 5): Step[] {
  const random = rng(seed);
  return Array.from({ length: n }, (_, id): Step => {
    const key = `s${Math.floor(random() * keys)}`;
    const ts = 1_000 + id * 10 + Math.floor(random() * 300) - 150;
    const roll = random();
    if (roll < 0.3) return { side: 'table', key, value: { s: Math.floor(random() * 1000) }, ts };
    if (roll < 0.4) return { side: 'table', key, value: null, ts };
    return { side: 'stream', key, value: { id, sensor: key }, ts };
  });
}

const joiner = (r: Reading, t: { s: number } | undefined, key: string) => ({ id: r.id, key, s: t?.s ?? null });

/** Output of processing `ordered` (in that order): { key, value, timestamp } per stream record. */
function model(ordered: readonly Step[], mode: Mode, table = new Map<string, { s: number }>()): string[] {
  const out: string[] = [];
  for (const step of ordered) {
    if (step.side === 'table') {
      if (step.value === null) table.delete(step.key);
      else table.set(step.key, step.value);
      continue;
    }
    const t = table.get(step.key);
    if (t === undefined && mode === 'inner') continue;
    out.push(canon({ key: step.key, value: joiner(step.value, t, step.key), timestamp: step.ts }));
  }
  return out;
}

/** Merge of one partition's two inputs by timestamp, each in offset order, table first on ties. */
function merge(stream: Step[], table: Step[]): Step[] {
  const out: Step[] = [];
  let s = 0;
  let t = 0;
  while (s < stream.length || t < table.length) {
    if (s < stream.length && (t >= table.length || stream[s]!.ts < table[t]!.ts)) out.push(stream[s++]!);
    else out.push(table[t++]!);
  }
  return out;
}

function joinApp(mode: Mode, id: string) {
  const app = createApp({ id, logger: silentLogger, idleTimeout: false });
  const sensors = app.table<string, { s: number }>('sensors');
  const keyed = app.from<Reading>('readings').keyBy((r) => r.sensor, { name: 'by-sensor' });
  (mode === 'inner' ? keyed.join(sensors, joiner) : keyed.leftJoin(sensors, joiner)).to('out');
  return app;
}

const send = (driver: TestDriver, s: Step) =>
  s.side === 'table' ? driver.send('sensors', s.value, { key: s.key, timestamp: s.ts }) : driver.send('readings', s.value, { key: `in-${s.value.id % 7}`, timestamp: s.ts });
const outs = (driver: TestDriver) => driver.read('out').map(({ key, value, timestamp }) => canon({ key, value, timestamp }));

const SEEDS = Array.from({ length: 10 }, (_, i) => 200 + i);

describe('stream–table joins against the model', () => {
  for (const partitions of [1, 3]) {
    for (const mode of ['inner', 'left'] as const) {
      it(`sent one at a time, out-of-order timestamps (${mode}, ${partitions}p, ${SEEDS.length} seeds)`, async () => {
        for (const seed of SEEDS) {
          const all = steps(seed, 200);
          const driver = await TestDriver.start(joinApp(mode, `st-${mode}-${partitions}-${seed}`), { partitions });
          const expected: string[] = [];
          const table = new Map<string, { s: number }>();
          for (const s of all) {
            await send(driver, s);
            expected.push(...model([s], mode, table));
            const d = diff(outs(driver), expected);
            expect(d, `seed ${seed} after ${canon(s)}`).toEqual({ missing: [], extra: [] });
          }
          await driver.stop();
        }
      });
    }
  }

  for (const mode of ['inner', 'left'] as const) {
    it(`preloaded before start: merged by timestamp (${mode}, 1p, ${SEEDS.length} seeds), then more sent live`, async () => {
      for (const seed of SEEDS) {
        const all = steps(seed, 300);
        const pre = all.slice(0, 200);
        const transport = new MemoryTransport({ defaultPartitions: 1 });
        preload(transport, 'readings', 1, pre.filter((s) => s.side === 'stream').map((s) => ({ key: `in-${(s.value as Reading).id % 7}`, value: s.value, timestamp: s.ts })));
        preload(transport, 'sensors', 1, pre.filter((s) => s.side === 'table').map((s) => ({ key: s.key, value: s.value, timestamp: s.ts })));
        const app = joinApp(mode, `st-pre-${mode}-${seed}`);
        const driver = await TestDriver.start(app, { transport });
        const table = new Map<string, { s: number }>();
        const expected = model(
          merge(
            pre.filter((s) => s.side === 'stream'),
            pre.filter((s) => s.side === 'table'),
          ),
          mode,
          table,
        );
        expect(diff(outs(driver), expected), `seed ${seed} preloaded`).toEqual({ missing: [], extra: [] });
        for (const s of all.slice(200)) {
          await send(driver, s);
          expected.push(...model([s], mode, table));
        }
        expect(diff(outs(driver), expected), `seed ${seed} live`).toEqual({ missing: [], extra: [] });
        expect(app.metrics().inputWaitsExpired).toBe(0);
        await driver.stop();
      }
    });
  }

  for (const mode of ['inner', 'left'] as const) {
    it(`stop and restart in the middle, shared transport (${mode}, 3p, ${SEEDS.length} seeds × 2 cuts)`, async () => {
      for (const seed of SEEDS) {
        const all = steps(seed, 160);
        const expected = model(all, mode);
        for (const cut of [40, 111]) {
          const transport = new MemoryTransport({ defaultPartitions: 3 });
          const id = `st-restart-${mode}-${seed}-${cut}`;
          const first = await TestDriver.start(joinApp(mode, id), { transport });
          for (const s of all.slice(0, cut)) await send(first, s);
          await first.stop();
          const again = await TestDriver.start(joinApp(mode, id), { transport });
          for (const s of all.slice(cut)) await send(again, s);
          expect(diff(outs(again), expected), `seed ${seed} cut ${cut}`).toEqual({ missing: [], extra: [] });
          await again.stop();
        }
      }
    });
  }
});
