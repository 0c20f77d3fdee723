import type { OperatorFunction } from 'rxjs';
import type { Aggregation } from '../../aggregations.js';
import type { StoreEntry } from '../../state/backend.js';
import { evictLeastRecentlyUsed, keyId } from '../cache.js';
import type { StatefulOperator, TaskContext } from '../context.js';
import { recordOperator } from '../operator.js';
import { record, type Signal } from '../signals.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Row {
  readonly key: unknown;
  partial: unknown;
  bytes: number;
  lastUsed: number;
  /** The accumulator is on disk only. */
  evicted: boolean;
}

/**
 * An unwindowed running aggregate (a `Table`): one accumulator per key, updated by every record;
 * each update is emitted as a record (key, new value) for `toStream()`.
 */
export function tableAggregate(context: TaskContext, storeName: string, aggregation: Aggregation<unknown, unknown, unknown>): OperatorFunction<Signal, Signal> {
  const rows = new Map<unknown, Row>();
  const changed = new Set<Row>();
  let sequence = 0;
  let lastUse = 0;
  let evictedRows = 0;

  const storeKey = (key: unknown) => encoder.encode(JSON.stringify(key));

  const evictRow = (row: Row) => {
    context.cache.usedBytes -= row.bytes;
    row.partial = undefined;
    row.evicted = true;
    evictedRows++;
  };

  const loadRow = async (row: Row) => {
    const stored = await context.storeOf(storeName).get(storeKey(row.key));
    row.partial = stored === undefined ? aggregation.init() : (JSON.parse(decoder.decode(stored)) as unknown);
    row.evicted = false;
    evictedRows--;
    context.cache.usedBytes += row.bytes;
  };

  const operator: StatefulOperator = {
    storeName,
    nextDeadline: () => undefined,
    hasDue: () => false,
    openWindows: () => 0,
    release() {
      for (const row of rows.values()) {
        if (!row.evicted) context.cache.usedBytes -= row.bytes;
        row.bytes = 0;
      }
    },
    takeChanges() {
      const entries: StoreEntry[] = [];
      for (const row of changed) {
        const value = encoder.encode(JSON.stringify(row.partial));
        context.cache.usedBytes += value.length - row.bytes;
        row.bytes = value.length;
        entries.push({ key: storeKey(row.key), value });
      }
      changed.clear();
      return entries;
    },
    async restore(entries) {
      for await (const [keyBytes, value] of entries) {
        const key = JSON.parse(decoder.decode(keyBytes)) as unknown;
        const row: Row = { key, partial: JSON.parse(decoder.decode(value)) as unknown, bytes: value.length, lastUsed: 0, evicted: false };
        rows.set(keyId(key), row);
        context.cache.usedBytes += row.bytes;
        if (context.cache.overLimit) evictRow(row);
      }
    },
    hasEvicted: () => evictedRows > 0,
    async load(keys) {
      if (evictedRows === 0) return;
      for (const key of keys) {
        const row = rows.get(keyId(key));
        if (row?.evicted) await loadRow(row);
      }
    },
    evict() {
      if (!context.cache.overLimit) return;
      evictLeastRecentlyUsed(context.cache, [...rows.values()].filter((row) => !row.evicted && !changed.has(row)), evictRow);
    },
    async query(key) {
      const row = rows.get(keyId(key));
      if (!row) return undefined;
      if (row.evicted) await loadRow(row);
      return aggregation.result(row.partial);
    },
    async *queryAll() {
      for (const row of [...rows.values()]) {
        if (row.evicted) await loadRow(row);
        yield [row.key, aggregation.result(row.partial)] as const;
      }
    },
  };
  context.register(operator);

  return recordOperator(context, `table ${storeName}`, (key, value, timestamp, signal, emit) => {
    const id = keyId(key);
    const existing = rows.get(id);
    if (existing?.evicted) throw new Error(`table row of key ${JSON.stringify(key)} was not loaded before its record`);
    // Computed before the row exists, so a value the aggregation rejects leaves no trace.
    const partial = aggregation.add(existing ? existing.partial : aggregation.init(), value, timestamp, sequence++);
    const row = existing ?? { key, partial, bytes: 0, lastUsed: 0, evicted: false };
    if (!existing) rows.set(id, row);
    row.partial = partial;
    row.lastUsed = ++lastUse;
    changed.add(row);
    emit(record(key, aggregation.result(row.partial), timestamp, signal.origin));
  });
}
