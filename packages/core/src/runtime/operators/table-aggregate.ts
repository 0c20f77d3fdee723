import type { OperatorFunction } from 'rxjs';
import type { Aggregation } from '../../aggregations.js';
import type { StoreEntry } from '../../state/backend.js';
import type { StatefulOperator, TaskContext } from '../context.js';
import { recordOperator } from '../operator.js';
import { record, type Signal } from '../signals.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const keyId = (key: unknown) => (typeof key === 'string' ? `s${key}` : `j${JSON.stringify(key)}`);

/**
 * An unwindowed running aggregate (a `Table`): one accumulator per key, updated by every record;
 * each update is emitted as a record (key, new value) for `toStream()`.
 */
export function tableAggregate(context: TaskContext, storeName: string, aggregation: Aggregation<unknown, unknown, unknown>): OperatorFunction<Signal, Signal> {
  const rows = new Map<string, { key: unknown; partial: unknown }>();
  const changed = new Set<string>();
  let sequence = 0;

  const operator: StatefulOperator = {
    storeName,
    nextDeadline: () => undefined,
    openWindows: () => 0,
    takeChanges() {
      const entries: StoreEntry[] = [];
      for (const id of changed) {
        const row = rows.get(id);
        if (row) entries.push({ key: encoder.encode(JSON.stringify(row.key)), value: encoder.encode(JSON.stringify(row.partial)) });
      }
      changed.clear();
      return entries;
    },
    restore(entries) {
      for (const [keyBytes, value] of entries) {
        const key = JSON.parse(decoder.decode(keyBytes)) as unknown;
        rows.set(keyId(key), { key, partial: JSON.parse(decoder.decode(value)) as unknown });
      }
    },
    query(key) {
      const row = rows.get(keyId(key));
      return row ? aggregation.result(row.partial) : undefined;
    },
    *queryAll() {
      for (const row of rows.values()) yield [row.key, aggregation.result(row.partial)] as const;
    },
  };
  context.register(operator);

  return recordOperator(context, `table ${storeName}`, (key, value, timestamp, signal, emit) => {
    const id = keyId(key);
    const row = rows.get(id) ?? { key, partial: aggregation.init() };
    row.partial = aggregation.add(row.partial, value, timestamp, sequence++);
    rows.set(id, row);
    changed.add(id);
    emit(record(key, aggregation.result(row.partial), timestamp, signal.origin));
  });
}
