/**
 * Table–table joins (inner, left, outer) against a brute-force reference: random updates and
 * deletes of two tables, in the TestDriver with 1 and 4 partitions. After each update the result
 * of its key follows both tables as they stand; a result that goes away is deleted.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, createApp, memoryTransport, silentLogger } from '../index.js';
import { mulberry32, TestDriver } from '../testing/index.js';

type Mode = 'inner' | 'left' | 'outer';
interface Step {
  side: 'left' | 'right';
  key: string;
  value: number | null;
}

const SEEDS = [3, 11, 2026];

function randomSteps(seed: number, count: number): Step[] {
  const random = mulberry32(seed);
  const steps: Step[] = [];
  for (let index = 0; index < count; index++) {
    const key = `k${Math.floor(random() * 8)}`;
    steps.push({ side: random() < 0.5 ? 'left' : 'right', key, value: random() < 0.2 ? null : Math.floor(random() * 1000) });
  }
  return steps;
}

const joiner = (left: number | undefined, right: number | undefined, key: string) => ({ key, left: left ?? null, right: right ?? null });

/** The result table's updates per key (`null`: a result deleted), and its final contents. */
function reference(steps: readonly Step[], mode: Mode): { updates: Map<string, unknown[]>; final: Map<string, unknown> } {
  const tables = { left: new Map<string, number>(), right: new Map<string, number>() };
  const updates = new Map<string, unknown[]>();
  const final = new Map<string, unknown>();
  for (const step of steps) {
    // A delete of a key the table does not hold changes nothing.
    if (step.value === null && !tables[step.side].has(step.key)) continue;
    if (step.value === null) tables[step.side].delete(step.key);
    else tables[step.side].set(step.key, step.value);
    const left = tables.left.get(step.key);
    const right = tables.right.get(step.key);
    const present = mode === 'inner' ? left !== undefined && right !== undefined : mode === 'left' ? left !== undefined : left !== undefined || right !== undefined;
    const list = updates.get(step.key) ?? [];
    if (present) {
      const value = joiner(left, right, step.key);
      list.push(value);
      final.set(step.key, value);
    } else if (final.has(step.key)) {
      list.push(null);
      final.delete(step.key);
    }
    updates.set(step.key, list);
  }
  for (const [key, list] of updates) if (list.length === 0) updates.delete(key);
  return { updates, final };
}

function tablesApp(mode: Mode, id: string) {
  const app = createApp({ id, logger: silentLogger, idleTimeout: false });
  const left = app.table<string, number>('left');
  const right = app.table<string, number>('right');
  const joined = mode === 'inner' ? left.join(right, joiner, { name: 'both' }) : mode === 'left' ? left.leftJoin(right, joiner, { name: 'both' }) : left.outerJoin(right, joiner, { name: 'both' });
  joined.toStream().to('joined');
  return { app, joined };
}

describe('table–table join', () => {
  for (const partitions of [1, 4]) {
    for (const mode of ['inner', 'left', 'outer'] as const) {
      it(`follows both tables on random updates and deletes (${mode}, ${partitions} partition${partitions > 1 ? 's' : ''}, seeds ${SEEDS.join(', ')})`, async () => {
        for (const seed of SEEDS) {
          const steps = randomSteps(seed, 250);
          const { app, joined } = tablesApp(mode, `tables-${mode}-${partitions}-${seed}`);
          const driver = await TestDriver.start(app, { partitions });
          let time = 1;
          for (const step of steps) await driver.send(step.side, step.value, { key: step.key, timestamp: time++ });
          const expected = reference(steps, mode);
          const updates = new Map<string, unknown[]>();
          for (const record of driver.read('joined')) updates.set(record.key!, [...(updates.get(record.key!) ?? []), record.value]);
          expect(updates, `seed ${seed}`).toEqual(expected.updates);
          const stored = await app.store(joined).range();
          expect(new Map(stored.map(({ key, value }) => [key, value])), `seed ${seed}`).toEqual(expected.final);
          await driver.stop();
        }
      });
    }
  }

  it('a restarted app keeps joining from the tables restored from their changelogs', async () => {
    const transport = memoryTransport({ defaultPartitions: 2 });
    const steps = randomSteps(77, 200);
    const first = tablesApp('outer', 'tables-restart');
    const driver = await TestDriver.start(first.app, { transport });
    let time = 1;
    for (const step of steps.slice(0, 100)) await driver.send(step.side, step.value, { key: step.key, timestamp: time++ });
    await driver.stop();
    const second = tablesApp('outer', 'tables-restart');
    const again = await TestDriver.start(second.app, { transport });
    for (const step of steps.slice(100)) await again.send(step.side, step.value, { key: step.key, timestamp: time++ });
    const stored = await second.app.store(second.joined).range();
    expect(new Map(stored.map(({ key, value }) => [key, value]))).toEqual(reference(steps, 'outer').final);
    await again.stop();
  });

  it('two tables in different numbers of partitions fail at start with a ConfigError naming both topics', async () => {
    const transport = memoryTransport({ defaultPartitions: 1 });
    transport.createTopic({ name: 'left', partitions: 4 });
    transport.createTopic({ name: 'right', partitions: 2 });
    const { app } = tablesApp('inner', 'tables-mismatch');
    const started = TestDriver.start(app, { transport });
    await expect(started).rejects.toThrow(ConfigError);
    await expect(started).rejects.toThrow(/left, right are joined .* different partition counts \(4, 2\)/);
  });

  it('describe() shows the join and its stores', () => {
    const { app } = tablesApp('left', 'tables-describe');
    expect(app.describe()).toMatch(/leftJoin tables \[stores left-table, right-table\]/);
    expect(app.describe()).toMatch(/table \[store both\]/);
  });
});
