import type { GlobalLookup } from './graph.js';

/**
 * A topic read whole by every instance (`app.globalTable`): reference data a stream looks up by
 * any key it computes, without repartitioning — `stream.join(globalTable, (value, key) => tableKey, joiner)`.
 * Readable with `app.store(globalTable)`.
 */
export class GlobalTable<K, V> {
  /** @internal */
  constructor(/** @internal */ readonly lookup: GlobalLookup) {}

  /** The store's name, for `app.store(...)` (the stage itself works too). */
  get name(): string {
    return this.lookup.storeName;
  }

  /** @internal Phantom types: what the table holds. */
  declare readonly types?: { key: K; value: V };
}
