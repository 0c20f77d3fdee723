/**
 * Table–table joins (join, leftJoin, outerJoin) against a brute-force model of README "Tables and
 * joins": updated whenever either side changes; a result a side no longer supports is deleted
 * (toStream shows null). Inputs preloaded before start are merged by timestamp (the Order
 * paragraph: "a task whose state depends on more than one input ... reads its inputs in timestamp
 * order"); live sends are processed as they come; stop/restart in the middle.
 */
import { describe, expect, it } from 'vitest';
import { MemoryTransport } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { TableJoinModel, tablesApp, type TableStep } from '../../packages/core/src/testing/table-join.test-support.ts';
import { canon, partitionOf, preload, rng } from './util.ts';

interface Step extends TableStep {
  ts: number;
}

function steps(seed: number, n: number, keys = 6): Step[] {
  const random = rng(seed);
  return Array.from({ length: n }, (_, id) => {
    const side = random() < 0.5 ? 'left' : 'right';
    const key = `k${Math.floor(random() * keys)}`;
    const ts = (1_000 + id * 10 + Math.floor(random() * 200)) * 2 + (side === 'left' ? 0 : 1);
    return { side, key, value: random() < 0.25 ? null : id, ts } as Step;
  });
}

/** The model's updates per key as the output is compared: JSON text. */
const canonUpdates = (model: TableJoinModel) => new Map([...model.updates].map(([key, list]) => [key, list.map(canon)]));

function merged(stream: Step[]): Step[] {
  const l = stream.filter((s) => s.side === 'left');
  const r = stream.filter((s) => s.side === 'right');
  const out: Step[] = [];
  let i = 0;
  let j = 0;
  while (i < l.length || j < r.length) {
    if (i < l.length && (j >= r.length || l[i]!.ts < r[j]!.ts)) out.push(l[i++]!);
    else out.push(r[j++]!);
  }
  return out;
}

function actualUpdates(driver: TestDriver): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const rec of driver.read('joined')) m.set(rec.key!, [...(m.get(rec.key!) ?? []), canon(rec.value)]);
  return m;
}

const SEEDS = Array.from({ length: 10 }, (_, i) => 300 + i);

describe('table–table joins against the model', () => {
  for (const partitions of [1, 2]) {
    for (const mode of ['inner', 'left', 'outer'] as const) {
      it(`preloaded, merged by timestamp, then live sends (${mode}, ${partitions}p, ${SEEDS.length} seeds)`, async () => {
        for (const seed of SEEDS) {
          const all = steps(seed, 250);
          const pre = all.slice(0, 150);
          const transport = new MemoryTransport({ defaultPartitions: partitions });
          for (const side of ['left', 'right'] as const) preload(transport, side, partitions, pre.filter((s) => s.side === side).map((s) => ({ key: s.key, value: s.value, timestamp: s.ts })));
          const { app, joined } = tablesApp(mode, `tt-${mode}-${partitions}-${seed}`);
          const driver = await TestDriver.start(app, { transport });
          const model = new TableJoinModel(mode);
          for (let p = 0; p < partitions; p++) for (const s of merged(pre.filter((x) => partitionOf(x.key, partitions) === p))) model.apply(s);
          expect(actualUpdates(driver), `seed ${seed} preloaded`).toEqual(canonUpdates(model));
          for (const s of all.slice(150)) {
            await driver.send(s.side, s.value, { key: s.key, timestamp: s.ts });
            model.apply(s);
          }
          expect(actualUpdates(driver), `seed ${seed} live`).toEqual(canonUpdates(model));
          const stored = await app.store(joined).range();
          expect(new Map(stored.map(({ key, value }) => [key, value])), `seed ${seed} store`).toEqual(model.final);
          await driver.stop();
        }
      });
    }
  }

  for (const mode of ['inner', 'left', 'outer'] as const) {
    it(`stop and restart in the middle (${mode}, 2p, ${SEEDS.length} seeds × 2 cuts)`, async () => {
      for (const seed of SEEDS) {
        const all = steps(seed, 160);
        const model = new TableJoinModel(mode);
        all.forEach((s) => model.apply(s));
        for (const cut of [33, 120]) {
          const transport = new MemoryTransport({ defaultPartitions: 2 });
          const id = `tt-restart-${mode}-${seed}-${cut}`;
          const first = await TestDriver.start(tablesApp(mode, id).app, { transport });
          for (const s of all.slice(0, cut)) await first.send(s.side, s.value, { key: s.key, timestamp: s.ts });
          await first.stop();
          const second = tablesApp(mode, id);
          const again = await TestDriver.start(second.app, { transport });
          for (const s of all.slice(cut)) await again.send(s.side, s.value, { key: s.key, timestamp: s.ts });
          expect(actualUpdates(again), `seed ${seed} cut ${cut}`).toEqual(canonUpdates(model));
          const stored = await second.app.store(second.joined).range();
          expect(new Map(stored.map(({ key, value }) => [key, value])), `seed ${seed} cut ${cut} store`).toEqual(model.final);
          await again.stop();
        }
      }
    });
  }
});
