import type { Clock } from '../clock.js';
import type { IncomingRecord, OutgoingRecord } from '../transport/types.js';
import type { PartitionStore, StoreEntry } from './backend.js';

/**
 * The changelogging layer of the store stack (caching → changelogging → backend): a commit's
 * entries go to the store's compacted changelog topic first, and to the backend only once the
 * changelog has them, checkpointed at the changelog offset they reached. A restore replays the
 * changelog tail after that checkpoint. Like Kafka Streams' ChangeLoggingKeyValueBytesStore and
 * its changelog reader.
 */

/** Records per store write of a restore. */
const RESTORE_CHUNK_RECORDS = 10_000;
const EMPTY_KEY = new Uint8Array();

/** A record is a store entry as it is, unless it has no key (which no store writes). */
const hasKey = (record: IncomingRecord): record is IncomingRecord & StoreEntry => record.key !== null;

/** Reads a changelog partition from an offset, in batches. */
export type ChangelogReader = (topic: string, partition: number, from: number) => AsyncIterable<readonly IncomingRecord[]>;

/** What a restore reports as it goes. */
export interface RestoreListener {
  /** The backend is ahead of its changelog (the topic was recreated): it is cleared and rebuilt from offset 0. */
  rebuilding(checkpoint: number, end: number): void;
  /** `records` more changelog records are in the backend. */
  applied(records: number): void;
}

export interface ChangeloggingOptions {
  /** The changelog topic: `<appId>-<storeName>-changelog`. */
  readonly topic: string;
  readonly partition: number;
  readonly clock: Clock;
  /** The store partition below (opened by the app after the task is built, so asked for when needed). */
  readonly backend: () => PartitionStore;
  /** Queues a changelog record with the task's other sends. */
  produce(record: OutgoingRecord): void;
}

/** One store partition's changelogging layer, above its backend. */
export class ChangeloggingStore {
  /** Commit entries sent to the changelog but not yet written to the backend. */
  #unwritten: StoreEntry[] = [];

  constructor(private readonly options: ChangeloggingOptions) {}

  get topic(): string {
    return this.options.topic;
  }

  get backend(): PartitionStore {
    return this.options.backend();
  }

  /** Whether a failed commit left entries that the changelog has and the backend does not. */
  hasUnwritten(): boolean {
    return this.#unwritten.length > 0;
  }

  /**
   * Commit step (2), the changelog half: queues `entries` for the changelog. Returns what the
   * backend must get in {@link write}: entries a failed commit took but never wrote locally (their
   * changelog records are back in the outbox), then these.
   */
  log(entries: readonly StoreEntry[]): StoreEntry[] {
    const { topic, partition, clock } = this.options;
    for (const entry of entries) this.options.produce({ topic, partition, key: entry.key, value: entry.value, timestamp: clock.now() });
    this.#unwritten = [...this.#unwritten, ...entries];
    return this.#unwritten;
  }

  /**
   * Commit step (2), the local half: the backend gets `entries` in one batch, checkpointed at the
   * changelog offset after the last one written (`lastOffsets`, per changelog topic).
   */
  async write(entries: readonly StoreEntry[], lastOffsets: ReadonlyMap<string, number>): Promise<void> {
    const last = lastOffsets.get(this.options.topic);
    await this.options.backend().write(entries, last === undefined ? undefined : last + 1);
    this.#unwritten = [];
  }

  /** How many changelog records up to `end` the backend has not applied. */
  async behind(end: number): Promise<number> {
    return Math.max(0, end - ((await this.options.backend().checkpoint()) ?? 0));
  }

  /** Replays the changelog tail after the backend's checkpoint (up to `end`, the topic's end offset) into the backend. */
  async restore(read: ChangelogReader, end: number, listener: RestoreListener): Promise<void> {
    const { topic, partition } = this.options;
    const store = this.options.backend();
    let checkpoint = (await store.checkpoint()) ?? 0;
    if (checkpoint > end) {
      listener.rebuilding(checkpoint, end);
      await store.clear();
      checkpoint = 0;
    }
    // Store writes in chunks of ~10k records (fewer, larger batches restore several times faster),
    // one chunk written while the next is read. Each chunk carries the offset after its last
    // record, in the same atomic batch, and chunks land in order: the checkpoint never runs ahead.
    let pending: StoreEntry[] = [];
    let nextOffset = checkpoint;
    let writing: Promise<void> | undefined;
    const write = async (entries: readonly StoreEntry[], offset: number) => {
      await store.write(entries, offset);
      listener.applied(entries.length);
    };
    try {
      for await (const batch of read(topic, partition, checkpoint)) {
        for (const record of batch) pending.push(hasKey(record) ? record : { key: EMPTY_KEY, value: record.value });
        const last = batch[batch.length - 1];
        if (last) nextOffset = last.offset + 1;
        if (pending.length < RESTORE_CHUNK_RECORDS) continue;
        await writing;
        writing = write(pending, nextOffset);
        // Awaited before the next chunk or at the end; until then its failure must not count as unhandled.
        writing.catch(() => undefined);
        pending = [];
      }
      await writing;
      if (pending.length > 0) await write(pending, nextOffset);
    } finally {
      // A failed read leaves no write running behind the caller's back.
      await writing?.catch(() => undefined);
    }
  }
}
