import type { OperatorFunction } from 'rxjs';
import type { Node } from '../../dsl/graph.js';
import type { TaskContext } from '../context.js';
import { signalOperator } from '../operator.js';
import { tableLookup } from './table-lookup.js';
import { record, type Signal } from '../signals.js';

type TableJoinNode = Extract<Node, { kind: 'tableJoin' }>;

/**
 * One side of a table–table join: an update of this side's table (its key's new value, or null
 * when the key was deleted) meets the other table's current value of the key, and the key's
 * result follows — the joiner's value, or null when the join no longer has one (inner: either
 * side missing; left: the left side missing; outer: both). A table of the results (an upsert
 * table) comes next, so a null deletes the result.
 */
export function tableTableJoin(context: TaskContext, node: TableJoinNode, side: 'left' | 'right'): OperatorFunction<Signal, Signal> {
  const other = tableLookup(context, side === 'left' ? node.rightStore : node.leftStore);
  return signalOperator(context, `join ${node.leftStore} ${node.rightStore}`, (signal, emit) => {
    if (signal.type !== 'record') {
      if (side === 'left') emit(signal);
      return;
    }
    const { key, timestamp, origin } = signal;
    const own = signal.value === null ? undefined : signal.value;
    const theirs = other(key);
    const [left, right] = side === 'left' ? [own, theirs] : [theirs, own];
    const present = node.mode === 'inner' ? left !== undefined && right !== undefined : node.mode === 'left' ? left !== undefined : left !== undefined || right !== undefined;
    emit(record(key, present ? node.joiner(left, right, key) : null, timestamp, origin));
  });
}
