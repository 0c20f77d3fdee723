import { randomUUID } from 'node:crypto';
import { describeError } from '../errors.js';
import type { Serde } from '../serde.js';
import type { StateBackend } from '../state/backend.js';
import { keyId } from '../state/caching-store.js';
import type { IncomingRecord, Transport, TransportConsumer } from '../transport/types.js';
import { BULK_BYTES, GlobalStoreLocal, type GlobalRow, type LoadedTable } from './global-store-local.js';

type Log = (level: 'info' | 'warn', message: string, fields: Record<string, unknown>) => void;

/**
 * A global table's contents on this instance (`app.globalTable`): every partition of its topic,
 * read by a consumer of its own — a group of one, under a name no other instance shares, that
 * never commits — so each instance holds the whole table. The app starts its tasks only once the
 * table has caught up with the log's end, then keeps it following the log. A null value deletes
 * its key. Joins look keys up here, in memory; `app.store` reads it.
 *
 * On a state backend other than memory, the table also lives in the backend with a checkpoint of
 * the offsets it has read (see {@link GlobalStoreLocal}): a restart loads it from there and reads
 * only the tail after the checkpoint. Without a usable local copy it reads the topic from the start.
 */
export class GlobalStore {
  readonly #rows = new Map<unknown, GlobalRow>();
  /** Per partition, the offset after the last record applied. */
  readonly #positions = new Map<number, number>();
  #consumer: TransportConsumer | undefined;
  #local: GlobalStoreLocal | undefined;
  /** The table holds what the log held at start (the tasks may start). */
  #reachedStartEnds = false;
  /** The bulk write in flight while the table catches up. */
  #bulkWrite: Promise<void> = Promise.resolve();
  #log: Log = () => undefined;
  /** The topic's partitions at start. */
  #partitions = 0;

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

  /**
   * Loads the local copy, if any, then reads the topic from the checkpoint (or its start) until
   * every partition has caught up with its end now, then follows it.
   */
  async start(transport: Transport, state: StateBackend, appId: string, log: Log): Promise<void> {
    this.#log = log;
    this.#partitions = (await transport.partitionCount(this.topic)) ?? 1;
    const ends: number[] = [];
    for (let partition = 0; partition < this.#partitions; partition++) ends.push(await transport.endOffset({ topic: this.topic, partition }));
    // A backend that does not outlive the process would only hold a second copy of the rows.
    if (state.durable) await this.#restore(transport, state, appId, ends);
    const restoredTo = new Map(this.#positions);
    let read = 0;
    // Tasks start once the table holds what the log held when the app started.
    const caughtUp = new Promise<void>((resolve) => {
      this.#caughtUp = () => {
        if (!ends.every((end, partition) => (this.#positions.get(partition) ?? 0) >= end)) return;
        this.#reachedStartEnds = true;
        resolve();
      };
    });
    this.#caughtUp();
    this.#consumer = await transport.subscribe(`${appId}-global-${this.storeName}-${randomUUID()}`, [this.topic], {
      // From the checkpoint where there is one; elsewhere from where the log starts (nothing is committed).
      onAssign: async (assigned) => assigned.flatMap((tp) => (this.#positions.get(tp.partition) ? [{ ...tp, offset: this.#positions.get(tp.partition)! }] : [])),
      onRevoke: async () => undefined,
      onRecords: async (records) => {
        read += records.length;
        await this.#apply(records);
      },
      onSkipped: async ({ partition, to }) => {
        this.#positions.set(partition, Math.max(this.#positions.get(partition) ?? 0, to));
        this.#local?.moved();
        this.#caughtUp();
      },
    });
    await caughtUp;
    // Written down now, not with the next update, so that a restart after this one reads only what
    // follows; tasks need not wait for it (`close` does).
    void this.#write();
    log('info', 'global table caught up', { store: this.storeName, topic: this.topic, rows: this.#rows.size, read, from: Object.fromEntries(restoredTo) });
  }
  #caughtUp: () => void = () => undefined;

  async close(): Promise<void> {
    await this.#consumer?.close();
    await this.#write();
    await this.#local?.close().catch((error: unknown) => this.#log('warn', 'closing a global table\'s local state failed', { store: this.storeName, error: describeError(error) }));
  }

  /** Opens the local copy and loads what it holds, unless it cannot be used: then the table is read whole. */
  async #restore(transport: Transport, state: StateBackend, appId: string, ends: readonly number[]): Promise<void> {
    const loaded = await this.#load(state, appId);
    if (loaded === undefined) return;
    const unusable = typeof loaded === 'string' ? loaded : await this.#outdated(transport, loaded.next, ends);
    if (unusable !== undefined) {
      this.#log('warn', 'a global table\'s local state cannot be used; reading its topic from the start', { store: this.storeName, topic: this.topic, reason: unusable });
      await this.#local?.clear().catch((error: unknown) => this.#dropLocal(error));
      return;
    }
    if (typeof loaded === 'string') return;
    for (const row of loaded.rows) this.#rows.set(keyId(row.key), row);
    loaded.next.forEach((offset, partition) => this.#positions.set(partition, offset));
  }

  /** The local copy's rows and checkpoint; undefined when there is none, a string when it is unusable. Never throws. */
  async #load(state: StateBackend, appId: string): Promise<LoadedTable | string | undefined> {
    try {
      this.#local = await GlobalStoreLocal.open(state, appId, this.storeName, this.topic);
    } catch (error) {
      this.#log('warn', 'a global table\'s local state cannot be opened; it is kept in memory only', { store: this.storeName, error: describeError(error) });
      return undefined;
    }
    try {
      return await this.#local.load((key, value) => ({ key: key === undefined ? undefined : this.keySerde.deserialize(key), value: this.valueSerde.deserialize(value) }));
    } catch (error) {
      // A row the serdes no longer read, or a store that fails to: the topic has it all.
      return `reading it failed: ${describeError(error)}`;
    }
  }

  /** Why the log no longer continues where the checkpoint left off, if it does not. */
  async #outdated(transport: Transport, next: readonly number[], ends: readonly number[]): Promise<string | undefined> {
    if (next.length > ends.length) return `the checkpoint has ${next.length} partitions, the topic ${ends.length}`;
    const behind = next.findIndex((offset, partition) => offset > ends[partition]!);
    if (behind >= 0) return `partition ${behind} ends at ${ends[behind]}, before the checkpoint's ${next[behind]} (the topic was recreated)`;
    // Records after the checkpoint deleted (retention, DeleteRecords): the updates they held are lost.
    const starts = await Promise.all(next.map((offset, partition) => (offset > 0 && offset < ends[partition]! ? this.#firstOffset(transport, partition, ends[partition]!) : 0)));
    const gone = starts.findIndex((start, partition) => start > next[partition]!);
    if (gone >= 0) return `partition ${gone} starts at ${starts[gone]}, after the checkpoint's ${next[gone]}`;
    return undefined;
  }

  /** The offset of a partition's first record, or its end if it holds none. */
  async #firstOffset(transport: Transport, partition: number, end: number): Promise<number> {
    for await (const batch of transport.readPartition({ topic: this.topic, partition }, 0)) {
      if (batch.length > 0) return batch[0]!.offset;
    }
    return end;
  }

  async #apply(records: readonly IncomingRecord[]): Promise<void> {
    const local = this.#local;
    for (const record of records) {
      this.#positions.set(record.partition, record.offset + 1);
      try {
        const key = record.decoded ? record.decoded.key : record.key === null ? undefined : this.keySerde.deserialize(record.key);
        const value = record.decoded ? record.decoded.value : record.value === null ? null : this.valueSerde.deserialize(record.value);
        const deletes = value === null || value === undefined;
        if (deletes) this.#rows.delete(keyId(key));
        else this.#rows.set(keyId(key), { key, value });
        // Keys stored as the serde writes them, so that one key is one row however its record spelled it.
        local?.stage(key, key === undefined || key === null ? undefined : this.keySerde.serialize(key), deletes ? null : record.decoded || record.value === null ? this.valueSerde.serialize(value) : record.value);
      } catch (error) {
        // A record the table cannot read changes nothing; it is not a task's input to dead-letter.
        local?.moved();
        this.#log('warn', 'a global table record could not be read; it is skipped', { store: this.storeName, topic: this.topic, partition: record.partition, offset: record.offset, error: describeError(error) });
      }
    }
    this.#caughtUp();
    if (local === undefined) return;
    if (local.stagedBytes >= BULK_BYTES) {
      // Still behind the log: one bulk write goes down as the next records are read.
      const previous = this.#bulkWrite;
      this.#bulkWrite = this.#write();
      await previous;
    } else if (this.#readAll()) {
      // Written whenever the table has read what the log holds: at once when updates trickle in,
      // once per key rather than per record when it is behind (catching up, or a burst).
      await this.#write();
    }
  }

  /** Whether the consumer has read everything the log holds now, as far as it can tell. */
  #readAll(): boolean {
    const consumer = this.#consumer;
    if (consumer === undefined || !this.#reachedStartEnds) return false;
    for (let partition = 0; partition < this.#partitions; partition++) {
      if ((consumer.lag?.({ topic: this.topic, partition }) ?? 0) > 0) return false;
    }
    return true;
  }

  /** Writes the staged rows with the positions they reach. A failure leaves the table in memory only. */
  async #write(): Promise<void> {
    const local = this.#local;
    if (local === undefined) return;
    const next = Array.from({ length: Math.max(this.#partitions, ...[...this.#positions.keys()].map((partition) => partition + 1)) }, (_, partition) => this.#positions.get(partition) ?? 0);
    await local.write(next).catch((error: unknown) => this.#dropLocal(error));
  }

  /** The local copy failed: what it holds stays consistent with its checkpoint, and the next start reads the tail after it. */
  #dropLocal(error: unknown): void {
    if (this.#local === undefined) return;
    this.#log('warn', 'a global table\'s local state failed; it is kept in memory only until the app restarts', { store: this.storeName, error: describeError(error) });
    const local = this.#local;
    this.#local = undefined;
    void local.close().catch(() => undefined);
  }
}
