/**
 * Table–table joins (inner, left, outer) against a brute-force reference: random updates and
 * deletes of two tables, in the TestDriver with 1 and 4 partitions. After each update the result
 * of its key follows both tables as they stand; a result that goes away is deleted.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, memoryTransport } from '../index.js';
import { mulberry32, TestDriver } from '../testing/index.js';
import { TableJoinModel, tablesApp, type TableJoinMode, type TableStep } from '../testing/table-join.test-support.js';

const SEEDS = [3, 11, 2026];

function randomSteps(seed: number, count: number): TableStep[] {
  const random = mulberry32(seed);
  const steps: TableStep[] = [];
  for (let index = 0; index < count; index++) {
    const key = `k${Math.floor(random() * 8)}`;
    steps.push({ side: random() < 0.5 ? 'left' : 'right', key, value: random() < 0.2 ? null : Math.floor(random() * 1000) });
  }
  return steps;
}

/** The result table's updates per key (`null`: a result deleted), and its final contents. */
function reference(steps: readonly TableStep[], mode: TableJoinMode): TableJoinModel {
  const model = new TableJoinModel(mode);
  for (const step of steps) model.apply(step);
  return model;
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
