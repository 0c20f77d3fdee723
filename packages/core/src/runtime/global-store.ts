import { randomUUID } from 'node:crypto';
import { describeError } from '../errors.js';
import type { Serde } from '../serde.js';
import { keyId } from '../state/caching-store.js';
import type { IncomingRecord, Transport, TransportConsumer } from '../transport/types.js';

/**
 * A global table's contents on this instance (`app.globalTable`): every partition of its topic,
 * read by a consumer of its own — a group of one, under a name no other instance shares, that
 * never commits — from the start of the log, so each instance holds the whole table. The app
 * starts its tasks only once the table has caught up with the log's end, then keeps it following
 * the log. A null value deletes its key. Joins look keys up here; `app.store` reads it.
 */
export class GlobalStore {
  readonly #rows = new Map<unknown, { readonly key: unknown; readonly value: unknown }>();
  /** Per partition, the offset after the last record applied. */
  readonly #positions = new Map<number, number>();
  #consumer: TransportConsumer | undefined;

  constructor(
    readonly topic: string,
    readonly storeName: string,
    private readonly keySerde: Serde<unknown>,
    private readonly valueSerde: Serde<unknown>,
  ) {}

  get(key: unknown): unknown {
    return this.#rows.get(keyId(key))?.value;
  }

  /** For `app.store`: the value of a key, and every entry. */
  async query(key: unknown): Promise<unknown> {
    return this.get(key);
  }

  async *queryAll(): AsyncIterable<readonly [unknown, unknown]> {
    for (const { key, value } of [...this.#rows.values()]) yield [key, value] as const;
  }

  /** Reads the topic from its start until every partition has caught up with its end now, then follows it. */
  async start(transport: Transport, appId: string, log: (message: string, fields: Record<string, unknown>) => void): Promise<void> {
    const partitions = (await transport.partitionCount(this.topic)) ?? 1;
    const ends: number[] = [];
    for (let partition = 0; partition < partitions; partition++) ends.push(await transport.endOffset({ topic: this.topic, partition }));
    // Tasks start once the table holds what the log held when the app started.
    const caughtUp = new Promise<void>((resolve) => {
      this.#caughtUp = () => {
        if (ends.every((end, partition) => (this.#positions.get(partition) ?? 0) >= end)) resolve();
      };
    });
    this.#caughtUp();
    this.#consumer = await transport.subscribe(`${appId}-global-${this.storeName}-${randomUUID()}`, [this.topic], {
      onAssign: async () => undefined,
      onRevoke: async () => undefined,
      onRecords: async (records) => this.#apply(records, log),
      onSkipped: async ({ partition, to }) => {
        this.#positions.set(partition, Math.max(this.#positions.get(partition) ?? 0, to));
        this.#caughtUp();
      },
    });
    await caughtUp;
  }
  #caughtUp: () => void = () => undefined;

  async close(): Promise<void> {
    await this.#consumer?.close();
  }

  #apply(records: readonly IncomingRecord[], log: (message: string, fields: Record<string, unknown>) => void): void {
    for (const record of records) {
      this.#positions.set(record.partition, record.offset + 1);
      try {
        const key = record.decoded ? record.decoded.key : record.key === null ? undefined : this.keySerde.deserialize(record.key);
        const value = record.decoded ? record.decoded.value : record.value === null ? null : this.valueSerde.deserialize(record.value);
        if (value === null || value === undefined) this.#rows.delete(keyId(key));
        else this.#rows.set(keyId(key), { key, value });
      } catch (error) {
        // A record the table cannot read changes nothing; it is not a task's input to dead-letter.
        log('a global table record could not be read; it is skipped', { topic: this.topic, partition: record.partition, offset: record.offset, error: describeError(error) });
      }
    }
    this.#caughtUp();
  }
}
