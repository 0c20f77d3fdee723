import { join, resolve } from 'node:path';
import { EddyError, MemoryTransport, partitionKey, type Clock, type Duration, type IncomingRecord, type RetentionOptions, type TopicPartition, type TopicPartitionOffset, type TopicSpec, type TransportConsumer, type TransportProducer, type ConsumerListener } from '@eddy/core';
import { rootMessage } from './errors.js';
import {
  chunkKey,
  chunkSummary,
  committedKey,
  decodeChunk,
  decodeChunkAbove,
  decodeOffset,
  decodeTopic,
  encodeChunk,
  encodeOffset,
  encodeTopic,
  endKey,
  LOG_FORMAT_KEY,
  LOG_FORMAT_VALUE,
  LOG_FORMAT_VERSION,
  logLayoutViolation,
  readPartitionKey,
  startKey,
  TAG_COMMITTED,
  TAG_END,
  TAG_RECORD,
  TAG_START,
  TAG_TOPIC,
  tagRange,
  topicKey,
} from './log-layout.js';
import { openDatabase, type DatabaseFormat, type LevelDatabase, type LevelTuning, type StateLogger } from './recovery.js';

/**
 * Options of {@link levelTransport}.
 *
 * @example
 * ```ts
 * const options: LevelTransportOptions = { dir: '/var/lib/sensors', sync: true, retention: { age: '1d' } };
 * ```
 */
export interface LevelTransportOptions {
  /**
   * The directory; the log lives in `<dir>/@broker`, so `levelState` may be given the same dir
   * (it keeps `<dir>/<app id>`). Created if missing; relative to the working directory.
   */
  readonly dir: string;
  /**
   * fsync every write, so that what a send acknowledged survives a machine crash too. Default
   * false: acknowledged records survive a process crash (they are in the OS), not a power loss.
   */
  readonly sync?: boolean;
  /**
   * What each partition of an ordinary topic keeps. Default `{ age: '7d', bytes: 64 MiB }`, no
   * limit on records. Changelogs are compacted and repartition topics trimmed once committed,
   * whatever this says.
   */
  readonly retention?: RetentionOptions;
  /** How long a compacted topic keeps a tombstone. Default `'1d'`. */
  readonly tombstoneRetention?: Duration;
  /** Partitions of topics created implicitly (by a send or a subscription). Default 1. */
  readonly defaultPartitions?: number;
  /** Records handed to a task per batch. Default 500. */
  readonly maxBatchSize?: number;
  /** Where warnings (a damaged log set aside) go; a pino logger fits. Default: the console. */
  readonly logger?: StateLogger;
  /** Damaged logs kept as `<dir>/@broker.corrupt-<n>`, newest first; 0 deletes them. Default 1. */
  readonly keepCorruptCopies?: number;
  /** Read every entry when the log opens, so that damage is found then. Default true. */
  readonly verifyOnOpen?: boolean;
  readonly leveldb?: LevelTuning;
  /** The clock that retention by age reads. Default: the system clock. */
  readonly clock?: Clock;
}

/** Kept per partition of an ordinary topic unless `retention` says otherwise. */
const DEFAULT_RETENTION: RetentionOptions = { age: '7d', bytes: 64 * 1024 * 1024 };

/** The log's folder under `dir`: a name no app id can take (ids are letters, digits, `.`, `_`, `-`). */
const LOG_FOLDER = '@broker';

type BatchOp = { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array } | { readonly type: 'del'; readonly key: Uint8Array };

/** Records per chunk when a compacted partition is written again. */
const CHUNK_RECORDS = 1_000;

/** A chunk of a partition on disk: the offsets of its first and last record, its size, and when its newest record was written. */
interface Chunk {
  readonly first: number;
  readonly last: number;
  readonly bytes: number;
  readonly newest: number;
}

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
  if (options === null || typeof options !== 'object') throw new TypeError(`levelTransport needs an options object with a dir, got ${String(options)}`);
  if (typeof options.dir !== 'string' || options.dir.trim() === '') {
    throw new TypeError(`levelTransport option dir must be a non-empty path, got ${JSON.stringify(options.dir)}`);
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
  readonly #topicIds = new Map<string, number>();
  #nextTopicId = 1;
  /** Per partition (`topic\0partition`), its chunks on disk in offset order. */
  readonly #chunks = new Map<string, Chunk[]>();
  /** Per partition, its first offset (records before it are gone). */
  readonly #starts = new Map<string, number>();
  /**
   * Per partition whose older records are on disk only (see `#load`): the first offset held in
   * memory, and the records and bytes of the chunks below it (for their retention).
   */
  readonly #cold = new Map<string, { readonly memoryStart: number; records: number; bytes: number }>();
  readonly #writer: GroupCommit;

  constructor(options: LevelTransportOptions) {
    super({ ...options, retention: { ...DEFAULT_RETENTION, ...options.retention } }, 'levelTransport');
    this.#options = options;
    this.location = join(resolve(options.dir), LOG_FOLDER);
    this.#logger = options.logger ?? consoleLogger;
    const keep = options.keepCorruptCopies ?? 1;
    if (!Number.isInteger(keep) || keep < 0) throw new RangeError(`levelTransport option keepCorruptCopies must be a non-negative integer, got ${String(keep)}`);
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
      const topicId = this.#topicId(topic);
      const value = encodeChunk(run, () => now);
      const chunk = { first: run[0]!.offset, last: run[run.length - 1]!.offset, bytes: value.byteLength, newest: now };
      ops.push({ type: 'put', key: chunkKey(topicId, partition, chunk.first), value });
      ops.push({ type: 'put', key: endKey(topicId, partition), value: encodeOffset(chunk.last + 1) });
      this.#chunksOf(key).push(chunk);
      if (this.#cold.has(key)) this.#retainCold(key);
    }
    return this.#writer.write(ops);
  }

  protected override writeCommitted(groupId: string, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    return this.#writer.write(offsets.map(({ topic, partition, offset }) => ({ type: 'put', key: committedKey(this.#topicId(topic), partition, groupId), value: encodeOffset(offset) })));
  }

  protected override topicCreated(spec: TopicSpec): void {
    if (this.#restoring) return;
    const id = this.#nextTopicId++;
    this.#topicIds.set(spec.name, id);
    // Ahead of the topic's first records in the same queue; a failure is logged (and the records' own write fails too).
    this.#writer.write([{ type: 'put', key: topicKey(spec.name), value: encodeTopic({ id, spec }) }]).catch((error: unknown) => {
      this.#logger.warn({ location: this.location, topic: spec.name, error: rootMessage(error) }, 'writing a topic to the Eddy broker log failed');
    });
  }

  /** Records before `start` are gone: the chunks that hold only such records go, and the start is kept for those that hold later ones too. */
  protected override logTruncated(topic: string, partition: number, start: number): void {
    const topicId = this.#topicId(topic);
    const key = partitionKey(topic, partition);
    const chunks = this.#chunksOf(key);
    const cold = this.#cold.get(key);
    let gone = 0;
    while (gone < chunks.length && chunks[gone]!.last < start) gone++;
    const ops: BatchOp[] = chunks.splice(0, gone).map((chunk) => {
      if (cold && chunk.first < cold.memoryStart) {
        cold.records -= chunk.last - chunk.first + 1;
        cold.bytes -= chunk.bytes;
      }
      return { type: 'del', key: chunkKey(topicId, partition, chunk.first) };
    });
    ops.push({ type: 'put', key: startKey(topicId, partition), value: encodeOffset(start) });
    this.#starts.set(key, Math.max(start, this.#starts.get(key) ?? 0));
    if (cold && cold.memoryStart <= start) this.#cold.delete(key);
    this.#bestEffort(ops, topic, partition);
  }

  /**
   * The partition holds `records` now: its chunks up to their end are written again, in one batch.
   * Chunks of records being written meanwhile (past the end) stay as they are.
   */
  protected override logCompacted(topic: string, partition: number, records: readonly IncomingRecord[], writtenAt: readonly number[]): void {
    const topicId = this.#topicId(topic);
    const chunks = this.#chunksOf(partitionKey(topic, partition));
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

  #chunksOf(key: string): Chunk[] {
    let chunks = this.#chunks.get(key);
    if (!chunks) this.#chunks.set(key, (chunks = []));
    return chunks;
  }

  #topicId(topic: string): number {
    const id = this.#topicIds.get(topic);
    if (id === undefined) throw new EddyError('TRANSPORT_FAILED', `levelTransport: topic ${topic} has no id (it was never created)`);
    return id;
  }

  #open(): Promise<LevelDatabase> {
    this.#opening ??= (async () => {
      const db = await openDatabase({
        location: this.location,
        logger: this.#logger,
        keepCorruptCopies: this.#options.keepCorruptCopies ?? 1,
        verifyOnOpen: this.#options.verifyOnOpen ?? true,
        tuning: { ...this.#options.leveldb },
        format: brokerLogFormat,
      });
      this.#db = db;
      if (!this.#loaded) {
        try {
          await this.#load(db);
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

  /** Reads the whole log into the in-memory broker: topics, records, ends, committed offsets. */
  /**
   * Reads the log into the in-memory broker: topics, ends, committed offsets, and the records
   * readers still need. Of an ordinary topic's partitions, the records every group has committed
   * stay on disk only (`readCold` serves them to a reader that goes back); the rest, and every
   * record of changelogs and repartition topics, come into memory.
   */
  async #load(db: LevelDatabase): Promise<void> {
    this.#restoring = true;
    try {
      const topics = new Map<number, TopicSpec>();
      for (const [, value] of await entries(db, TAG_TOPIC)) {
        const { id, spec } = decodeTopic(value);
        topics.set(id, spec);
        this.#topicIds.set(spec.name, id);
        this.#nextTopicId = Math.max(this.#nextTopicId, id + 1);
        this.createTopic(spec);
      }
      /** Per partition, an offset of each entry of a tag (the least, where there are several), and what else each key holds. */
      const offsetsOf = async (tag: number, each?: (name: string, partition: number, rest: Buffer, offset: number) => void) => {
        const found = new Map<string, number>();
        for (const [key, value] of await entries(db, tag)) {
          const { topicId, partition, rest } = readPartitionKey(key);
          const name = topics.get(topicId)?.name;
          if (name === undefined) continue;
          const offset = decodeOffset(value);
          found.set(partitionKey(name, partition), Math.min(offset, found.get(partitionKey(name, partition)) ?? Infinity));
          each?.(name, partition, rest, offset);
        }
        return found;
      };
      const ends = await offsetsOf(TAG_END);
      for (const [key, start] of await offsetsOf(TAG_START)) this.#starts.set(key, start);
      // The least offset the groups committed is where some reader still needs records from.
      const committed = await offsetsOf(TAG_COMMITTED, (name, partition, group, offset) => this.restoreCommitted(group.toString('utf8'), name, partition, offset));
      let records = 0;
      let cold = 0;
      const iterator = db.iterator({ ...tagRange(TAG_RECORD), fillCache: false });
      try {
        let current: { name: string; partition: number; records: IncomingRecord[]; writtenAt: number[] } | undefined;
        const restore = () => {
          if (!current) return;
          const key = partitionKey(current.name, current.partition);
          this.restorePartition(current.name, current.partition, current.records, current.writtenAt, ends.get(key) ?? 0);
          ends.delete(key);
        };
        for (;;) {
          const batch = await iterator.nextv(100);
          if (batch.length === 0) break;
          for (const [key, value] of batch) {
            const { topicId, partition, rest } = readPartitionKey(key);
            const spec = topics.get(topicId);
            if (!spec) continue;
            if (!current || current.name !== spec.name || current.partition !== partition) {
              restore();
              current = { name: spec.name, partition, records: [], writtenAt: [] };
            }
            const at = partitionKey(spec.name, partition);
            const first = Number(rest.readBigUInt64BE(0));
            const summary = chunkSummary(value);
            const start = this.#starts.get(at) ?? 0;
            const needed = spec.compacted || spec.unlimitedRetention ? 0 : (committed.get(at) ?? 0);
            const chunk = decodeChunkAbove(spec.name, partition, first, value, Math.max(start, needed));
            this.#chunksOf(at).push({ first, last: chunk.last, bytes: summary.bytes, newest: summary.newest });
            if (needed > Math.max(start, first)) {
              // Records below what every group has committed stay on disk.
              const onDisk = Math.max(0, Math.min(chunk.last + 1, needed) - Math.max(start, first));
              const known = this.#cold.get(at) ?? { memoryStart: needed, records: 0, bytes: 0 };
              known.records += chunk.last - first + 1;
              known.bytes += summary.bytes;
              this.#cold.set(at, known);
              cold += onDisk;
            }
            current.records.push(...chunk.records);
            current.writtenAt.push(...chunk.writtenAt);
            records += chunk.records.length;
          }
        }
        restore();
      } finally {
        await iterator.close();
      }
      // Partitions whose records have all gone keep their end.
      for (const [key, end] of ends) this.restorePartition(...splitKey(key), [], [], end);
      for (const key of this.#cold.keys()) this.#retainCold(key);
      if (records + cold > 0) this.#logger.info({ location: this.location, topics: topics.size, records, onDiskOnly: cold }, 'Eddy broker log read');
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
    const memoryStart = this.#cold.get(key)?.memoryStart;
    if (memoryStart === undefined || from >= memoryStart) return undefined;
    return (async () => {
      const db = await this.#open();
      const topicId = this.#topicId(topic);
      const start = Math.max(from, this.#starts.get(key) ?? 0);
      const found: IncomingRecord[] = [];
      for (const chunk of this.#chunksOf(key)) {
        if (chunk.last < start) continue;
        if (chunk.first >= memoryStart || found.length >= max) break;
        const value = await db.get(chunkKey(topicId, partition, chunk.first));
        // Gone meanwhile (retention): what follows is read from there on.
        if (value === undefined) continue;
        for (const record of decodeChunk(topic, partition, chunk.first, value).records) {
          if (record.offset >= start && record.offset < memoryStart && found.length < max) found.push(record);
        }
      }
      return found;
    })();
  }

  /**
   * Retention of the records on disk only, chunk by chunk, oldest first: by age, and by records and
   * bytes on their own (the records in memory keep the same limits, so a partition holds at most
   * about twice them).
   */
  #retainCold(key: string): void {
    const cold = this.#cold.get(key);
    if (!cold) return;
    const chunks = this.#chunksOf(key);
    const { records, bytes, ms } = this.retention;
    const now = this.clock.now();
    let left = { records: cold.records, bytes: cold.bytes };
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

/** The topic and partition of a `partitionKey`. */
const splitKey = (key: string): [topic: string, partition: number] => {
  const at = key.lastIndexOf('\u0000');
  return [key.slice(0, at), Number(key.slice(at + 1))];
};

/** Every entry of one tag (small ranges: topics, ends, committed offsets). */
async function entries(db: LevelDatabase, tag: number): Promise<Array<[Uint8Array, Uint8Array]>> {
  return (await db.iterator(tagRange(tag)).all()) as Array<[Uint8Array, Uint8Array]>;
}

/**
 * Writes to the log in as few batches as it can: what is asked for while a batch is being written
 * goes into the next one, together (a group commit). Batches are written one at a time, in the
 * order asked, so records reach the disk in offset order.
 */
class GroupCommit {
  readonly #db: () => LevelDatabase | undefined;
  readonly #sync: boolean;
  #pending: Array<{ readonly ops: readonly BatchOp[]; readonly resolve: () => void; readonly reject: (error: unknown) => void }> = [];
  #running: Promise<void> | undefined;

  constructor(db: () => LevelDatabase | undefined, sync: boolean) {
    this.#db = db;
    this.#sync = sync;
  }

  write(ops: readonly BatchOp[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#pending.push({ ops, resolve, reject });
      this.#running ??= this.#run();
    });
  }

  /** Resolves once everything asked so far is written (or failed). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #run(): Promise<void> {
    // What else is asked for in this turn joins the first batch.
    await Promise.resolve();
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        this.#pending = [];
        const db = this.#db();
        try {
          if (!db) throw new EddyError('TRANSPORT_FAILED', 'the Eddy broker log is closed');
          await db.batch(batch.flatMap((entry) => entry.ops) as Array<{ type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }>, { sync: this.#sync });
          for (const entry of batch) entry.resolve();
        } catch (error) {
          const failure = error instanceof EddyError ? error : new EddyError('TRANSPORT_FAILED', `writing to the Eddy broker log failed: ${rootMessage(error)}`, { cause: error, retriable: true });
          for (const entry of batch) entry.reject(failure);
        }
      }
    } finally {
      this.#running = undefined;
    }
  }
}

const brokerLogFormat: DatabaseFormat = {
  markerKey: LOG_FORMAT_KEY,
  markerValue: LOG_FORMAT_VALUE,
  version: LOG_FORMAT_VERSION,
  violation: logLayoutViolation,
  name: 'Eddy broker log',
  consequence: 'its topics start empty (records and committed offsets of the damaged copy are not used)',
  locked: (location, cause) =>
    new EddyError('TRANSPORT_LOCKED', `the Eddy broker log at ${location} is in use by another process (or another levelTransport of this one): ${rootMessage(cause)}`, {
      cause,
      retriable: true,
    }),
};

const consoleLogger: StateLogger = {
  warn: (fields, message) => console.warn(`[eddy/broker] ${message}`, fields),
  info: () => undefined,
};
