import type { OperatorFunction } from 'rxjs';
import type { Aggregation } from '../../aggregations.js';
import { CachingStore, keyId, type CachedEntry } from '../../state/caching-store.js';
import type { StatefulOperator, TaskContext } from '../context.js';
import { recordOperator } from '../operator.js';
import { record, type Signal } from '../signals.js';
import { isMetaKey } from '../task/state-manager.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Row extends CachedEntry {
  readonly key: unknown;
  /** The accumulator; undefined while evicted. */
  partial: unknown;
  /** The key was deleted (a table read from a topic, given a null value): its flush is a tombstone. */
  deleted?: true;
}

/**
 * An unwindowed running aggregate (a `Table`): one accumulator per key, updated by every record;
 * each update is emitted as a record (key, new value) for `toStream()`. A table read from a topic
 * (`deletes`) keeps each key's latest value, and a null value deletes the key: a tombstone in
 * its changelog, and a null update downstream.
 */
export function tableAggregate(context: TaskContext, storeName: string, aggregation: Aggregation<unknown, unknown, unknown>, { deletes = false } = {}): OperatorFunction<Signal, Signal> {
  const storeKey = (key: unknown) => encoder.encode(JSON.stringify(key));

  const rows = new CachingStore<Row>(context.cache, () => context.storeOf(storeName), {
    encode(row, into) {
      if (row.deleted) {
        into.push({ key: storeKey(row.key), value: null });
        return 0;
      }
      const value = encoder.encode(JSON.stringify(row.partial));
      into.push({ key: storeKey(row.key), value });
      return value.length;
    },
    async load(row, below) {
      const stored = await below.get(storeKey(row.key));
      row.partial = stored === undefined ? aggregation.init() : (JSON.parse(decoder.decode(stored)) as unknown);
      // The stored value is the one its last flush measured.
      return row.bytes;
    },
    unload(row) {
      row.partial = undefined;
    },
  });
  const storedRow = (key: unknown, value: Uint8Array): Row => ({ key, id: keyId(key), partial: JSON.parse(decoder.decode(value)) as unknown, bytes: value.length, lastUsed: 0, evicted: false });
  let sequence = 0;

  const operator: StatefulOperator = {
    storeName,
    store: rows,
    nextDeadline: () => undefined,
    hasDue: () => false,
    openWindows: () => 0,
    async restore(entries) {
      // Rows are read on first use (records load their keys before they run), not all now.
      const iterator = entries[Symbol.asyncIterator]();
      const first = await iterator.next();
      await iterator.return?.();
      if (first.done) return;
      rows.restoredLazily({
        async find(key, below) {
          const stored = await below.get(storeKey(key));
          return stored && storedRow(key, stored);
        },
        async *all(below) {
          for await (const [keyBytes, value] of below.entries()) {
            if (isMetaKey(keyBytes)) continue;
            yield storedRow(JSON.parse(decoder.decode(keyBytes)) as unknown, value);
          }
        },
      });
    },
    load: (keys) => rows.loadKeys(keys),
    lookup(key) {
      const row = rows.get(keyId(key));
      if (!row) return undefined;
      if (row.evicted) throw new Error(`table row of key ${JSON.stringify(key)} was not loaded before a record that reads it`);
      return aggregation.result(row.partial);
    },
    async query(key) {
      const row = await rows.read(key);
      return row && aggregation.result(row.partial);
    },
    async *queryAll() {
      for await (const row of rows.readAll()) yield [row.key, aggregation.result(row.partial)] as const;
    },
  };
  context.register(operator);

  return recordOperator(context, `table ${storeName}`, (key, value, timestamp, signal, emit) => {
    const id = keyId(key);
    const existing = rows.get(id);
    if (existing?.evicted) throw new Error(`table row of key ${JSON.stringify(key)} was not loaded before its record`);
    if (deletes && (value === null || value === undefined)) {
      // A key the table does not hold has nothing to delete, and nothing to tell downstream.
      if (!existing) return;
      existing.deleted = true;
      rows.changed(existing);
      rows.delete(existing);
      emit(record(key, null, timestamp, signal.origin));
      return;
    }
    // Computed before the row exists, so a value the aggregation rejects leaves no trace.
    const partial = aggregation.add(existing ? existing.partial : aggregation.init(), value, timestamp, sequence++);
    const row = existing ?? rows.add({ key, id, partial, bytes: 0, lastUsed: 0, evicted: false });
    row.partial = partial;
    rows.use(row);
    rows.changed(row);
    emit(record(key, aggregation.result(row.partial), timestamp, signal.origin));
  });
}
