/**
 * Table–table join test support, shared by the join's own tests (joins/table-table-join.test.ts)
 * and the model-based ones of test/reference-joins: the app under test, and a brute-force model
 * of its result table.
 */
import { createApp, silentLogger } from '../index.js';

export type TableJoinMode = 'inner' | 'left' | 'outer';

/** An update of one of the two tables (`null`: the key deleted). */
export interface TableStep {
  side: 'left' | 'right';
  key: string;
  value: number | null;
}

export const tableJoiner = (left: number | undefined, right: number | undefined, key: string) => ({ key, left: left ?? null, right: right ?? null });

/** Tables `left` and `right` joined by `mode` into the table `both`, whose changes go to the topic `joined`. */
export function tablesApp(mode: TableJoinMode, id: string) {
  const app = createApp({ id, logger: silentLogger, idleTimeout: false });
  const left = app.table<string, number>('left');
  const right = app.table<string, number>('right');
  const joined = mode === 'inner' ? left.join(right, tableJoiner, { name: 'both' }) : mode === 'left' ? left.leftJoin(right, tableJoiner, { name: 'both' }) : left.outerJoin(right, tableJoiner, { name: 'both' });
  joined.toStream().to('joined');
  return { app, joined };
}

/** The result table as the updates applied so far make it: per key its updates (`null`: the result deleted), and its contents. */
export class TableJoinModel {
  readonly #tables = { left: new Map<string, number>(), right: new Map<string, number>() };
  readonly updates = new Map<string, unknown[]>();
  readonly final = new Map<string, unknown>();

  constructor(readonly mode: TableJoinMode) {}

  apply(step: TableStep): void {
    const table = this.#tables[step.side];
    // A delete of a key the table does not hold changes nothing.
    if (step.value === null && !table.has(step.key)) return;
    if (step.value === null) table.delete(step.key);
    else table.set(step.key, step.value);
    const left = this.#tables.left.get(step.key);
    const right = this.#tables.right.get(step.key);
    const present = this.mode === 'inner' ? left !== undefined && right !== undefined : this.mode === 'left' ? left !== undefined : left !== undefined || right !== undefined;
    let change: unknown;
    if (present) {
      change = tableJoiner(left, right, step.key);
      this.final.set(step.key, change);
    } else if (this.final.has(step.key)) {
      change = null;
      this.final.delete(step.key);
    } else {
      return;
    }
    this.updates.set(step.key, [...(this.updates.get(step.key) ?? []), change]);
  }
}
