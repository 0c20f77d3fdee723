import type { OperatorFunction } from 'rxjs';
import type { Node } from '../../dsl/graph.js';
import type { TaskContext } from '../context.js';
import { recordOperator } from '../operator.js';
import { record, type Signal } from '../signals.js';

/**
 * Stream–global table join: each record names the key it needs (`tableKey`), looked up in a table
 * this instance holds whole (see runtime/global-table.ts), so the stream needs no repartition.
 * The record keeps its key and timestamp; an inner join drops a record whose table key is not
 * there, a left join passes `undefined`.
 */
export function globalTableJoin(context: TaskContext, node: Extract<Node, { kind: 'globalJoin' }>): OperatorFunction<Signal, Signal> {
  const { table, tableKey, joiner, mode } = node;
  return recordOperator(context, `join ${table.storeName}`, (key, value, timestamp, signal, emit) => {
    const wanted = tableKey(value, key);
    const tableValue = wanted === undefined || wanted === null ? undefined : table.get(wanted);
    if (tableValue === undefined && mode === 'inner') return;
    emit(record(key, joiner(value, tableValue, key), timestamp, signal.origin));
  });
}
