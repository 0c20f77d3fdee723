import type { OperatorFunction } from 'rxjs';
import type { TaskContext } from '../context.js';
import { recordOperator } from '../operator.js';
import { record, type Signal } from '../signals.js';

/**
 * Stream–table join: each stream record meets the table's value for its key at that moment (the
 * table is updated by its own input in the same task, co-partitioned with the stream), and the
 * joiner's result goes on with the record's key and timestamp. An inner join drops a record whose
 * key the table does not hold; a left join passes `undefined` for it. Table updates produce nothing.
 */
export function streamTableJoin(
  context: TaskContext,
  tableStore: string,
  mode: 'inner' | 'left',
  joiner: (value: unknown, tableValue: unknown, key: unknown) => unknown,
): OperatorFunction<Signal, Signal> {
  let lookup: ((key: unknown) => unknown) | undefined;
  return recordOperator(context, `join ${tableStore}`, (key, value, timestamp, signal, emit) => {
    if (!lookup) {
      const table = context.operatorOf(tableStore);
      if (!table?.lookup) throw new Error(`join: the table ${tableStore} is not in task ${context.taskId}`);
      lookup = (lookupKey) => table.lookup!(lookupKey);
    }
    const tableValue = key === undefined || key === null ? undefined : lookup(key);
    if (tableValue === undefined && mode === 'inner') return;
    emit(record(key, joiner(value, tableValue, key), timestamp, signal.origin));
  });
}
