import { join, resolve } from 'node:path';
import { ConfigError, EddyError, MemoryTransport, partitionKey, type ConsumerListener, type IncomingRecord, type TopicPartition, type TopicPartitionOffset, type TopicSpec, type TransportConsumer, type TransportProducer } from '@eddy/core';
import { isDamage, rootMessage } from './errors.js';
import { ChunkIndex, CHUNK_RECORDS, splitKey, type Chunk } from './level-transport-chunks.js';
import { brokerLogFormat, readLog, type LogRead } from './level-transport-load.js';
import { consoleLogger, DEFAULT_RETENTION, LOG_FOLDER, type LevelTransportOptions } from './level-transport-options.js';
import { GroupCommit, type BatchOp } from './level-transport-writer.js';
import { chunkKey, committedKey, decodeChunk, encodeChunk, encodeOffset, encodeTopic, endKey, startKey, topicKey } from './log-layout.js';
import { openDatabase, type LevelDatabase, type StateLogger } from './recovery.js';

export type { LevelTransportOptions } from './level-transport-options.js';

/**
 * The embedded broker with its log on disk, in LevelDB: topics, partitions, consumer groups of the
 * apps of this process, compacted changelogs, repartition records deleted once committed,
 * timestamps and headers, as `memoryTransport()` — and every record and committed offset survives
 * a restart. A send resolves once its records are written (with `sync`, flushed to disk);
 * consumers see records only then. One process per dir: another fails at start with
 * `TRANSPORT_LOCKED`. A damaged log is moved aside with a warning and the broker starts empty.
 *
 * @example
 * ```ts
 * import { createApp } from '@eddy/core';
 * import { levelState, levelTransport } from '@eddy/state';
 *
 * const app = createApp({ id: 'svc', transport: levelTransport({ dir: '.eddy' }), state: levelState({ dir: '.eddy' }) });
 * ```
 */
export function levelTransport(options: LevelTransportOptions): LevelTransport {
  if (options === null || typeof options !== 'object') throw new ConfigError(`levelTransport needs an options object with a dir, got ${String(options)}`);
  if (typeof options.dir !== 'string' || options.dir.trim() === '') {
    throw new ConfigError(`levelTransport option dir must be a non-empty path, got ${JSON.stringify(options.dir)}`);
  }
  return new LevelTransport(options);
}

export class LevelTransport extends MemoryTransport {
  override readonly kind: string = 'level';
  /** Records travel as bytes: they are written to disk (and local tasks hand them over directly, as on Kafka). */
  override readonly keepsValues: boolean = false;
  /** A crash can come between a task's outputs and its offsets; transactions are not implemented here. */
  override readonly exactlyOnce: boolean = false;
  /** Where the log lives: `<dir>/@broker`. */
  readonly location: string;
  readonly #options: LevelTransportOptions;
  readonly #logger: StateLogger;
  #db: LevelDatabase | undefined;
  #opening: Promise<LevelDatabase> | undefined;
  /** Apps connected; the database closes when the last one closes. */
  #users = 0;
  /** Whether the log was read into memory (once: the in-memory log then stays the copy in use). */
  #loaded = false;
  #restoring = false;
  /** Records of damaged chunks skipped (see #skipDamaged). */
  #lostToDamage = 0;
  /** Topic ids, and per partition its chunks on disk, its first offset and its records on disk only: the log's own once it is read. */
  #index = new ChunkIndex();
  readonly #writer: GroupCommit;

  constructor(options: LevelTransportOptions) {
    super({ ...options, retention: { ...DEFAULT_RETENTION, ...options.retention } }, 'levelTransport');
    this.#options = options;
    this.location = join(resolve(options.dir), LOG_FOLDER);
    this.#logger = options.logger ?? consoleLogger;
    const keep = options.keepCorruptCopies ?? 1;
    if (!Number.isInteger(keep) || keep < 0) throw new ConfigError(`levelTransport option keepCorruptCopies must be a non-negative integer, got ${String(keep)}`);
    this.#writer = new GroupCommit(() => this.#db, options.sync === true);
  }

  /** Opens the log (reading it into memory the first time); each app that connects closes once. */
  override async connect(): Promise<void> {
    await this.#open();
    this.#users++;
  }

  /** Writes what is pending; the last app to close closes the database (the data stays). */
  override async close(): Promise<void> {
    if (this.#users > 0) this.#users--;
    if (this.#users > 0) return;
    const opening = this.#opening;
    this.#opening = undefined;
    const db = await opening?.catch(() => undefined);
    if (!db) return;
    await this.#writer.idle();
    this.#db = undefined;
    await db.close();
  }

  override async ensureTopics(specs: readonly TopicSpec[]): Promise<void> {
    await this.#open();
    await super.ensureTopics(specs);
  }

  override async partitionCount(topic: string): Promise<number | undefined> {
    await this.#open();
    return super.partitionCount(topic);
  }

  override async createProducer(): Promise<TransportProducer> {
    await this.#open();
    return super.createProducer();
  }

  override async subscribe(groupId: string, topics: readonly string[], listener: ConsumerListener): Promise<TransportConsumer> {
    await this.#open();
    return super.subscribe(groupId, topics, listener);
  }

  override async endOffset(partition: TopicPartition): Promise<number> {
    await this.#open();
    return super.endOffset(partition);
  }

  /** The memory broker's synchronous append skips the disk: here records go through a producer. */
  override append(): TopicPartitionOffset[] {
    throw new EddyError('TRANSPORT_FAILED', 'levelTransport: append() is the memory broker’s; send records through a producer (or app.send)');
  }

  // --- the log on disk -----------------------------------------------------------------------

  /** One chunk per partition written, and its new end. */
  protected override write(records: readonly IncomingRecord[]): Promise<void> {
    const now = this.clock.now();
    const byPartition = new Map<string, IncomingRecord[]>();
    for (const record of records) {
      const key = partitionKey(record.topic, record.partition);
      const run = byPartition.get(key);
      if (run) run.push(record);
      else byPartition.set(key, [record]);
    }
    const ops: BatchOp[] = [];
    for (const [key, run] of byPartition) {
      const { topic, partition } = run[0]!;
      const topicId = this.#index.topicId(topic);
      const value = encodeChunk(run, () => now);
      const chunk = { first: run[0]!.offset, last: run[run.length - 1]!.offset, bytes: value.byteLength, newest: now };
      ops.push({ type: 'put', key: chunkKey(topicId, partition, chunk.first), value });
      ops.push({ type: 'put', key: endKey(topicId, partition), value: encodeOffset(chunk.last + 1) });
      this.#index.chunksOf(key).push(chunk);
      const cold = this.#index.cold.get(key);
      if (cold) {
        cold.hotRecords += run.length;
        cold.hotBytes += value.byteLength;
        this.#retainCold(key);
      }
    }
    return this.#writer.write(ops);
  }

  protected override writeCommitted(groupId: string, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    return this.#writer.write(offsets.map(({ topic, partition, offset }) => ({ type: 'put', key: committedKey(this.#index.topicId(topic), partition, groupId), value: encodeOffset(offset) })));
  }

  protected override topicCreated(spec: TopicSpec): void {
    if (this.#restoring) return;
    const id = this.#index.addTopic(spec.name);
    // Ahead of the topic's first records in the same queue; a failure is logged (and the records' own write fails too).
    this.#writer.write([{ type: 'put', key: topicKey(spec.name), value: encodeTopic({ id, spec }) }]).catch((error: unknown) => {
      this.#logger.warn({ location: this.location, topic: spec.name, error: rootMessage(error) }, 'writing a topic to the Eddy broker log failed');
    });
  }

  /** Where a partition's log starts, as this log knows it across restarts. */
  override logStart(topic: string, partition: number): number {
    return Math.max(super.logStart(topic, partition), this.#index.starts.get(partitionKey(topic, partition)) ?? 0);
  }

  /** Records before `start` are gone: the chunks that hold only such records go, and the start is kept for those that hold later ones too. */
  protected override logTruncated(topic: string, partition: number, start: number): void {
    const topicId = this.#index.topicId(topic);
    const key = partitionKey(topic, partition);
    const chunks = this.#index.chunksOf(key);
    const cold = this.#index.cold.get(key);
    let gone = 0;
    while (gone < chunks.length && chunks[gone]!.last < start) gone++;
    const ops: BatchOp[] = chunks.splice(0, gone).map((chunk) => {
      if (cold && chunk.first < cold.memoryStart) {
        cold.records -= chunk.last - chunk.first + 1;
        cold.bytes -= chunk.bytes;
      } else if (cold) {
        cold.hotRecords -= chunk.last - chunk.first + 1;
        cold.hotBytes -= chunk.bytes;
      }
      return { type: 'del', key: chunkKey(topicId, partition, chunk.first) };
    });
    ops.push({ type: 'put', key: startKey(topicId, partition), value: encodeOffset(start) });
    this.#index.starts.set(key, Math.max(start, this.#index.starts.get(key) ?? 0));
    if (cold && cold.memoryStart <= start) this.#index.cold.delete(key);
    this.#bestEffort(ops, topic, partition);
  }

  /**
   * The partition holds `records` now: its chunks up to their end are written again, in one batch.
   * Chunks of records being written meanwhile (past the end) stay as they are.
   */
  protected override logCompacted(topic: string, partition: number, records: readonly IncomingRecord[], writtenAt: readonly number[]): void {
    const topicId = this.#index.topicId(topic);
    const chunks = this.#index.chunksOf(partitionKey(topic, partition));
    const end = records.length === 0 ? -1 : records[records.length - 1]!.offset;
    let covered = 0;
    while (covered < chunks.length && chunks[covered]!.first <= end) covered++;
    const ops: BatchOp[] = [];
    const rewritten: Chunk[] = [];
    for (let from = 0; from < records.length; from += CHUNK_RECORDS) {
      const slice = records.slice(from, from + CHUNK_RECORDS);
      const value = encodeChunk(slice, (index) => writtenAt[from + index]!);
      const chunk = { first: slice[0]!.offset, last: slice[slice.length - 1]!.offset, bytes: value.byteLength, newest: Math.max(...writtenAt.slice(from, from + CHUNK_RECORDS)) };
      ops.push({ type: 'put', key: chunkKey(topicId, partition, chunk.first), value });
      rewritten.push(chunk);
    }
    // A chunk whose first offset starts a rewritten one is written over, not deleted.
    const kept = new Set(rewritten.map((chunk) => chunk.first));
    for (const chunk of chunks.splice(0, covered)) if (!kept.has(chunk.first)) ops.push({ type: 'del', key: chunkKey(topicId, partition, chunk.first) });
    chunks.unshift(...rewritten);
    this.#bestEffort(ops, topic, partition);
  }

  /** A rewrite that may fail: what stays on disk is dropped again when the log is next read. */
  #bestEffort(ops: readonly BatchOp[], topic: string, partition: number): void {
    this.#writer.write(ops).catch((error: unknown) => {
      this.#logger.warn({ location: this.location, topic, partition, error: rootMessage(error) }, 'dropping records from the Eddy broker log failed');
    });
  }

  /** See `Transport.recordsLostToDamage`. */
  recordsLostToDamage(): number {
    return this.#lostToDamage;
  }

  #open(): Promise<LevelDatabase> {
    this.#opening ??= (async () => {
      let read: LogRead | undefined;
      const db = await openDatabase({
        location: this.location,
        logger: this.#logger,
        keepCorruptCopies: this.#options.keepCorruptCopies ?? 1,
        verifyOnOpen: this.#options.verifyOnOpen ?? true,
        tuning: { ...this.#options.leveldb },
        format: brokerLogFormat,
        // Reading the log reads all of it, so damage it meets sets the log aside too, even without verifyOnOpen.
        read: this.#loaded
          ? undefined
          : async (opened) => {
              read = await readLog(opened);
            },
      });
      this.#db = db;
      if (read) {
        try {
          this.#load(read);
        } catch (error) {
          this.#db = undefined;
          await db.close().catch(() => undefined);
          throw new EddyError('TRANSPORT_FAILED', `reading the Eddy broker log at ${this.location} failed: ${rootMessage(error)}`, { cause: error });
        }
        this.#loaded = true;
      }
      return db;
    })();
    const opening = this.#opening;
    opening.catch(() => {
      if (this.#opening === opening) this.#opening = undefined;
    });
    return opening;
  }

  /** Puts the log read (see {@link readLog}) into the in-memory broker, then applies retention to what stays on disk only. */
  #load(read: LogRead): void {
    this.#index = read.index;
    this.#restoring = true;
    try {
      read.restore({
        createTopic: (spec) => this.createTopic(spec),
        restorePartition: (topic, partition, records, writtenAt, end) => this.restorePartition(topic, partition, records, writtenAt, end),
        restoreCommitted: (groupId, topic, partition, offset) => this.restoreCommitted(groupId, topic, partition, offset),
      });
      for (const key of this.#index.cold.keys()) this.#retainCold(key);
      if (read.records + read.onDiskOnly > 0) this.#logger.info({ location: this.location, topics: read.topics, records: read.records, onDiskOnly: read.onDiskOnly }, 'Eddy broker log read');
    } finally {
      this.#restoring = false;
    }
  }

  /**
   * Records of a partition that are on disk only (every group had committed them when the log was
   * read), for a reader that goes back: a new group, a task started again from an old commit.
   */
  protected override readCold(topic: string, partition: number, from: number, max: number): Promise<IncomingRecord[]> | undefined {
    const key = partitionKey(topic, partition);
    const memoryStart = this.#index.cold.get(key)?.memoryStart;
    if (memoryStart === undefined || from >= memoryStart) return undefined;
    return (async () => {
      const db = await this.#open();
      const topicId = this.#index.topicId(topic);
      const start = Math.max(from, this.#index.starts.get(key) ?? 0);
      const found: IncomingRecord[] = [];
      for (const chunk of this.#index.chunksOf(key)) {
        if (chunk.last < start) continue;
        if (chunk.first >= memoryStart || found.length >= max) break;
        let value: Uint8Array | undefined;
        try {
          value = await db.get(chunkKey(topicId, partition, chunk.first));
        } catch (error) {
          if (!isDamage(error)) throw error;
          this.#skipDamaged(topic, partition, chunk, error);
          continue;
        }
        // Gone meanwhile (retention): what follows is read from there on.
        if (value === undefined) continue;
        let records: IncomingRecord[];
        try {
          records = decodeChunk(topic, partition, chunk.first, value).records;
        } catch (error) {
          this.#skipDamaged(topic, partition, chunk, error);
          continue;
        }
        for (const record of records) {
          if (record.offset >= start && record.offset < memoryStart && found.length < max) found.push(record);
        }
      }
      return found;
    })();
  }

  /** A damaged chunk on disk only is passed over like a gone one, with a warning and counted: failing the read would stop its reader for good. */
  #skipDamaged(topic: string, partition: number, chunk: Chunk, error: unknown): void {
    this.#lostToDamage += chunk.last - chunk.first + 1;
    this.#logger.warn(
      { location: this.location, topic, partition, first: chunk.first, last: chunk.last, error: rootMessage(error) },
      `records ${chunk.first} to ${chunk.last} of ${topic} partition ${partition} in the Eddy broker log at ${this.location} are damaged (${rootMessage(error)}); skipping them`,
    );
  }

  /**
   * Retention of the records on disk only, chunk by chunk, oldest first: by age, and by the records
   * and bytes of the whole partition, those in memory included (which go first by their own
   * retention only once the disk-only ones have gone).
   */
  #retainCold(key: string): void {
    const cold = this.#index.cold.get(key);
    if (!cold) return;
    const chunks = this.#index.chunksOf(key);
    const { records, bytes, ms } = this.retention;
    const now = this.clock.now();
    let left = { records: cold.records + cold.hotRecords, bytes: cold.bytes + cold.hotBytes };
    let gone = 0;
    while (gone < chunks.length && chunks[gone]!.last < cold.memoryStart) {
      const chunk = chunks[gone]!;
      const over = (ms !== undefined && chunk.newest < now - ms) || (records !== undefined && left.records > records) || (bytes !== undefined && left.bytes > bytes);
      if (!over) break;
      left = { records: left.records - (chunk.last - chunk.first + 1), bytes: left.bytes - chunk.bytes };
      gone++;
    }
    // The totals follow in logTruncated, with the chunks.
    if (gone > 0) this.logTruncated(...splitKey(key), chunks[gone - 1]!.last + 1);
  }
}
