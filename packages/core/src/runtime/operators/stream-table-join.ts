import type { OperatorFunction } from 'rxjs';
import type { Joiner } from '../../dsl/graph.js';
import type { TaskContext } from '../context.js';
import { recordOperator } from '../operator.js';
import { tableLookup } from './table-lookup.js';
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
  joiner: Joiner,
): OperatorFunction<Signal, Signal> {
  const lookup = tableLookup(context, tableStore);
  return recordOperator(context, `join ${tableStore}`, (key, value, timestamp, signal, emit) => {
    const tableValue = key === undefined || key === null ? undefined : lookup(key);
    if (tableValue === undefined && mode === 'inner') return;
    emit(record(key, joiner(value, tableValue, key), timestamp, signal.origin));
  });
}
