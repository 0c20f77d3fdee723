import type { StoreReader } from '../app-options.js';
import type { StatefulOperator } from './context.js';

/** What a store reader asks of each part of a store: a task's operator, or a global table. */
export type QueryableStore = Pick<StatefulOperator, 'query' | 'queryAll'>;

/**
 * Reads one store across this instance's tasks for the host (see `app.store`): a key lives in
 * one task's partition, so `get` asks each task's operator until one has it; `range` gathers
 * every task's entries, sorted by key.
 */
export function storeReader(windowed: boolean, operators: () => readonly QueryableStore[]): StoreReader {
  return {
    get: async (key) => {
      for (const operator of operators()) {
        const value = await operator.query(key);
        if (value !== undefined) return value;
      }
      return windowed ? [] : undefined;
    },
    range: async ({ gte, lt } = {}) => {
      const rows: Array<{ key: unknown; value: unknown }> = [];
      for (const operator of operators()) {
        for await (const [key, value] of operator.queryAll()) {
          const text = String(key);
          if ((gte === undefined || text >= gte) && (lt === undefined || text < lt)) rows.push({ key, value });
        }
      }
      return rows.sort((a, b) => (String(a.key) < String(b.key) ? -1 : String(a.key) > String(b.key) ? 1 : 0));
    },
  };
}
