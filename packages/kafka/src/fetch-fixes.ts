import { Buffer } from 'node:buffer';
import type { IncomingRecord } from '@eddy/core';
import { emptyHeaders, toHeaders } from './headers.js';
import { kafkajsModule, kafkajsPath, replaceKafkajsModules } from './kafkajs-modules.js';

/**
 * Fixes for kafkajs 2.2.4's consumer, installed together when this module is evaluated (before
 * kafkajs's fetch code loads; `@eddy/kafka` imports it first):
 *
 * - {@link decodeRecordBatch} replaces kafkajs's record batch decoder. kafkajs decodes each record
 *   through a decoder object of its own, reads each varint into a Long, adds offsets and
 *   timestamps as Longs and turns them into strings, and builds each record's headers by copying
 *   an object per header. The fix reads the records in one pass over the batch with plain numbers
 *   (offsets and timestamps stay exact below 2^53; past it, or for a batch it does not expect, it
 *   falls back to kafkajs's decoder), and no further than each record's offset and timestamp:
 *   {@link LazyRecord}s, which Eddy's consumers turn into Eddy records a slice at a time.
 * - {@link FetchedBatch} replaces kafkajs's `Batch` (the records of one partition in one fetch).
 *   kafkajs parses every record's offset into a Long to drop those before the fetched offset, and
 *   copies the list twice more to drop aborted and control records, most often dropping nothing.
 *   The fix compares plain numbers and copies a list only when something goes.
 * - kafkajs's consumer-group fetch is wrapped: the batches of every group but Eddy's (see
 *   {@link deliverLazily}) get exactly the records kafkajs's decoder makes
 *   ({@link materializeBatch}).
 */

interface Long {
  toString(): string;
}

/** kafkajs's decoder, as far as a record batch needs it. */
interface KafkajsDecoder {
  readonly buffer: Buffer;
  offset: number;
  readInt8(): number;
  readInt16(): number;
  readInt32(): number;
  readInt64(): Long;
  slice(size: number): KafkajsDecoder;
  forward(size: number): void;
  readAll(): Buffer;
}

type DecoderClass = new (buffer: Buffer) => KafkajsDecoder;
type RecordDecoder = (decoder: KafkajsDecoder, context: BatchContext) => FetchedRecord;

interface BatchContext {
  readonly firstOffset: string;
  readonly firstTimestamp: string;
  readonly partitionLeaderEpoch: number;
  readonly inTransaction: boolean;
  readonly isControlBatch: boolean;
  readonly lastOffsetDelta: number;
  readonly producerId: string;
  readonly producerEpoch: number;
  readonly firstSequence: number;
  readonly maxTimestamp: string;
  readonly timestampType: number;
  readonly magicByte?: number;
}

/** A record as kafkajs's fetch hands it on. */
export interface FetchedRecord {
  readonly magicByte: number | undefined;
  readonly attributes: number;
  readonly timestamp: string;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, Buffer | null | Array<Buffer | null>>;
  readonly isControlRecord: boolean;
  readonly batchContext: BatchContext;
}

const TIMESTAMP_TYPE_FLAG = 0x8;
const TRANSACTIONAL_FLAG = 0x10;
const CONTROL_FLAG = 0x20;

let parts:
  | {
      Decoder: DecoderClass;
      PartialMessageError: new (message: string) => Error;
      lookupCodecByAttributes(attributes: number): { decompress(buffer: Buffer): Promise<Buffer> } | null;
      decodeRecord: RecordDecoder;
      LOG_APPEND_TIME: number;
      CREATE_TIME: number;
    }
  | undefined;

function kafkajsParts() {
  return (parts ??= {
    Decoder: kafkajsModule<DecoderClass>('protocol/decoder.js'),
    PartialMessageError: kafkajsModule<{ KafkaJSPartialMessageError: new (message: string) => Error }>('errors.js').KafkaJSPartialMessageError,
    lookupCodecByAttributes: kafkajsModule<{ lookupCodecByAttributes: NonNullable<typeof parts>['lookupCodecByAttributes'] }>('protocol/message/compression/index.js').lookupCodecByAttributes,
    decodeRecord: kafkajsModule<RecordDecoder>('protocol/recordBatch/record/v0/decoder.js'),
    ...kafkajsModule<{ LOG_APPEND_TIME: number; CREATE_TIME: number }>('protocol/timestampTypes.js'),
  });
}

/** Reads the records of a batch: a cursor over the bytes, with Kafka's (zigzag) varints. */
class RecordReader {
  at: number;
  constructor(
    readonly buffer: Buffer,
    start: number,
  ) {
    this.at = start;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      const byte = this.buffer[this.at++];
      if (byte === undefined) throw new RangeError('record batch: a varint runs past the end');
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) break;
      scale *= 128;
    }
    return value % 2 === 0 ? value / 2 : -(value + 1) / 2;
  }

  bytes(): Buffer | null {
    const length = this.varint();
    if (length < 0) return null;
    const bytes = this.buffer.subarray(this.at, this.at + length);
    this.at += length;
    return bytes;
  }

  /** Like {@link bytes}, as a plain Uint8Array (cheaper to make than a Buffer view). */
  view(): Uint8Array | null {
    const length = this.varint();
    if (length < 0) return null;
    const bytes = new Uint8Array(this.buffer.buffer, this.buffer.byteOffset + this.at, length);
    this.at += length;
    return bytes;
  }

  /** Moves past a length-prefixed field. */
  skipBytes(): void {
    const length = this.varint();
    if (length > 0) this.at += length;
  }

  /** A record's headers as kafkajs gives them (a repeated name collects its values in an array). */
  headers(): FetchedRecord['headers'] {
    const headers: FetchedRecord['headers'] = {};
    for (let count = this.varint(); count > 0; count--) {
      const nameBytes = this.bytes();
      const name = nameBytes === null ? 'null' : nameBytes.toString('utf8');
      const headerValue = this.bytes();
      const previous = headers[name];
      headers[name] = previous === undefined ? headerValue : Array.isArray(previous) ? [...previous, headerValue] : [previous, headerValue];
    }
    return headers;
  }
}

/**
 * One reader for the lazy fields of {@link LazyRecord}s (each read is synchronous, so they never
 * overlap); `release` lets go of the fetched bytes once a read is done.
 */
const noBytes = Buffer.alloc(0);
const fieldReader = new RecordReader(noBytes, 0);
const readerAt = (buffer: Buffer, at: number): RecordReader => {
  (fieldReader as { buffer: Buffer }).buffer = buffer;
  fieldReader.at = at;
  return fieldReader;
};
const releaseReader = (): void => {
  (fieldReader as { buffer: Buffer }).buffer = noBytes;
};
const release = <T>(result: T): T => {
  releaseReader();
  return result;
};

/**
 * Marks lazy records across copies of `@eddy/kafka` (two copies may share one kafkajs: records
 * decoded by one copy's decoder are handled by the other's batch and fetch code).
 */
const lazyBrand: unique symbol = Symbol.for('eddy.kafkajs.lazyRecord') as never;

/** Whether a fetched record is a {@link LazyRecord} (of any copy of `@eddy/kafka`). */
export const isLazyRecord = (record: unknown): record is LazyRecord => typeof record === 'object' && record !== null && (record as { [lazyBrand]?: true })[lazyBrand] === true;


/** What the records of one record batch share (their {@link LazyRecord}s point here). */
export interface LazyBatch {
  readonly buffer: Buffer;
  readonly context: BatchContext;
  /** The batch's first timestamp (records hold deltas from it). */
  readonly firstTimestamp: number;
  /** Log-append time: every record's timestamp is the batch's largest. */
  readonly appendTime: boolean;
}

/** A record's timestamp from its delta: the batch's first plus the delta, or under log-append time the batch's largest. */
const batchTimestamp = (batch: LazyBatch, delta: number): number => (batch.appendTime ? Number(batch.context.maxTimestamp) : batch.firstTimestamp + delta);

/**
 * A fetched record decoded no further than its offset. The rest (timestamp, key, value, headers)
 * stays in the fetched bytes until it is read, so a fetch's worth of records costs one small
 * object each while it waits for its turn (three fields and a flag; what its record batch shares
 * is in a {@link LazyBatch}), instead of a record, two Buffers, a headers object and two strings
 * that all live long enough to be promoted by the garbage collector.
 *
 * kafkajs's own code reads the fields it needs from it; an Eddy consumer turns it straight into
 * an Eddy record ({@link LazyRecord.toRecord}). Every other consumer gets exactly kafkajs's
 * record ({@link LazyRecord.materialize}; see {@link deliverLazily}).
 */
export class LazyRecord {
  /** Writable: the read_committed fix marks records of aborted transactions (read-committed.ts). */
  isControlRecord: boolean;

  constructor(
    /** What the records of its record batch share. */
    readonly batch: LazyBatch,
    /** Where the record starts after its length: its attributes, timestamp delta, offset delta, key… */
    readonly at: number,
    readonly offsetNumber: number,
  ) {
    this.isControlRecord = batch.context.isControlBatch;
  }

  get buffer(): Buffer {
    return this.batch.buffer;
  }

  get batchContext(): BatchContext {
    return this.batch.context;
  }

  get attributes(): number {
    return this.batch.buffer.readInt8(this.at);
  }

  get magicByte(): number | undefined {
    return this.batch.context.magicByte;
  }

  get offset(): string {
    return String(this.offsetNumber);
  }

  get timestampNumber(): number {
    // Under log-append time the delta does not count: no need to read it.
    return batchTimestamp(this.batch, this.batch.appendTime ? 0 : release(readerAt(this.batch.buffer, this.at + 1).varint()));
  }

  get timestamp(): string {
    return this.batch.appendTime ? this.batch.context.maxTimestamp : String(this.timestampNumber);
  }

  get key(): Buffer | null {
    return release(this.#fields().bytes());
  }

  get value(): Buffer | null {
    const reader = this.#fields();
    reader.skipBytes();
    return release(reader.bytes());
  }

  get headers(): FetchedRecord['headers'] {
    const reader = this.#fields();
    reader.skipBytes();
    reader.skipBytes();
    return release(reader.headers());
  }

  /** The shared reader at the record's key (past its attributes and deltas); release it after. */
  #fields(): RecordReader {
    const reader = readerAt(this.batch.buffer, this.at + 1);
    reader.varint();
    reader.varint();
    return reader;
  }

  declare readonly [lazyBrand]: true;

  /** kafkajs's record, field for field. */
  materialize(): FetchedRecord {
    const reader = this.#fields();
    const key = reader.bytes();
    const value = reader.bytes();
    const headers = release(reader.headers());
    return {
      magicByte: this.batch.context.magicByte,
      attributes: this.attributes,
      timestamp: this.timestamp,
      offset: this.offset,
      key,
      value,
      headers,
      isControlRecord: this.isControlRecord,
      batchContext: this.batch.context,
    };
  }

  /** The Eddy record: key and value as (plain Uint8Array) views of the fetched bytes, headers as text. */
  toRecord(topic: string, partition: number): IncomingRecord {
    const reader = readerAt(this.batch.buffer, this.at + 1);
    const timestampDelta = reader.varint();
    reader.varint();
    const key = reader.view();
    const value = reader.view();
    // As an Eddy record has them (toHeaders); most records have none.
    const headersAt = reader.at;
    let headers = emptyHeaders;
    if (reader.varint() > 0) {
      reader.at = headersAt;
      headers = toHeaders(reader.headers());
    }
    releaseReader();
    const timestamp = batchTimestamp(this.batch, timestampDelta);
    return { topic, partition, offset: this.offsetNumber, key, value, timestamp, headers };
  }
}

Object.defineProperty(LazyRecord.prototype, lazyBrand, { value: true });

const exact = (text: string): number | undefined => {
  const value = Number(text);
  return Number.isSafeInteger(value) && Math.abs(value) < 2 ** 52 ? value : undefined;
};

/** The records of an uncompressed or decompressed batch body: a count, then length-prefixed records. */
function decodeRecords(reader: RecordReader, count: number, context: BatchContext): Array<LazyRecord | FetchedRecord> {
  const { decodeRecord, Decoder, LOG_APPEND_TIME } = kafkajsParts();
  const firstOffset = exact(context.firstOffset);
  const firstTimestamp = exact(context.firstTimestamp);
  const appendTime = context.timestampType === LOG_APPEND_TIME && Boolean(context.maxTimestamp);
  const records = new Array<LazyRecord | FetchedRecord>(count);
  const { buffer } = reader;
  const batch: LazyBatch = { buffer, context, firstTimestamp: firstTimestamp ?? 0, appendTime };
  for (let index = 0; index < count; index++) {
    const length = reader.varint();
    const end = reader.at + length;
    if (firstOffset === undefined || (firstTimestamp === undefined && !appendTime)) {
      // Beyond what numbers hold exactly: kafkajs's own decoder, on this record's bytes.
      records[index] = decodeRecord(new Decoder(buffer.subarray(reader.at, end)), context);
    } else {
      const at = reader.at;
      reader.at++; // attributes
      reader.varint(); // timestamp delta
      records[index] = new LazyRecord(batch, at, firstOffset + reader.varint());
    }
    reader.at = end;
  }
  return records;
}

/** A record batch (message format v2) from a fetch response, as kafkajs's `recordBatch/v0/decoder` decodes it. */
export async function decodeRecordBatch(fetchDecoder: KafkajsDecoder): Promise<BatchContext & { records: Array<LazyRecord | FetchedRecord> }> {
  const { PartialMessageError, lookupCodecByAttributes, LOG_APPEND_TIME, CREATE_TIME } = kafkajsParts();
  const firstOffset = fetchDecoder.readInt64().toString();
  const length = fetchDecoder.readInt32();
  const decoder = fetchDecoder.slice(length);
  fetchDecoder.forward(length);
  if (decoder.buffer.length < length) {
    throw new PartialMessageError(`Tried to decode a partial record batch: remainingBytes(${decoder.buffer.length}) < recordBatchLength(${length})`);
  }
  const partitionLeaderEpoch = decoder.readInt32();
  const magicByte = decoder.readInt8();
  decoder.readInt32(); // CRC, not checked (nor by kafkajs)
  const attributes = decoder.readInt16();
  const context: BatchContext = {
    firstOffset,
    lastOffsetDelta: decoder.readInt32(),
    firstTimestamp: decoder.readInt64().toString(),
    maxTimestamp: decoder.readInt64().toString(),
    producerId: decoder.readInt64().toString(),
    producerEpoch: decoder.readInt16(),
    firstSequence: decoder.readInt32(),
    partitionLeaderEpoch,
    inTransaction: (attributes & TRANSACTIONAL_FLAG) > 0,
    isControlBatch: (attributes & CONTROL_FLAG) > 0,
    timestampType: (attributes & TIMESTAMP_TYPE_FLAG) > 0 ? LOG_APPEND_TIME : CREATE_TIME,
  };
  const recordContext: BatchContext = { ...context, magicByte };
  const count = decoder.readInt32();
  const codec = lookupCodecByAttributes(attributes);
  let records: Array<LazyRecord | FetchedRecord> = [];
  if (count > 0) {
    if (!codec) {
      records = decodeRecords(new RecordReader(decoder.buffer, decoder.offset), count, recordContext);
    } else {
      const body = await codec.decompress(decoder.readAll());
      records = decodeRecords(new RecordReader(body, 0), count, recordContext);
    }
  }
  return { ...context, records };
}

/** What kafkajs's `Batch` reads of a fetched partition. */
export interface FetchedPartition {
  readonly partition: number;
  readonly highWatermark: string;
  readonly abortedTransactions?: readonly unknown[] | null;
  readonly messages: ReadonlyArray<LazyRecord | { readonly offset: string; readonly isControlRecord?: boolean }>;
}

type BatchClass = new (topic: string, fetchedOffset: string, partitionData: FetchedPartition) => {
  rawMessages: FetchedPartition['messages'];
  messagesWithinOffset: FetchedPartition['messages'];
  messages: FetchedPartition['messages'];
};

const KafkajsBatch = kafkajsModule<BatchClass>('consumer/batch.js');
const filterAbortedMessages = kafkajsModule<(args: { messages: FetchedPartition['messages']; abortedTransactions: FetchedPartition['abortedTransactions'] }) => FetchedPartition['messages']>(
  'consumer/filterAbortedMessages.js',
);
const noMessages: FetchedPartition['messages'] = Object.freeze([]);

/**
 * kafkajs's `Batch` with the same fields and methods, filtered with plain numbers: records before
 * the fetched offset (a compressed batch can start earlier), then aborted and control records
 * (kafkajs's own filter, which returns the list itself when there are no aborted transactions).
 * Offsets past 2^53 go through kafkajs's constructor.
 */
export class FetchedBatch extends KafkajsBatch {
  constructor(topic: string, fetchedOffset: string, partitionData: FetchedPartition) {
    const from = exact(String(fetchedOffset));
    const { messages } = partitionData;
    const last = messages[messages.length - 1];
    if (from === undefined || (last !== undefined && !isLazyRecord(last) && exact(last.offset) === undefined)) {
      super(topic, fetchedOffset, partitionData);
      return;
    }
    super(topic, fetchedOffset, { ...partitionData, messages: noMessages });
    this.rawMessages = messages;
    // Offsets ascend: only a first record before the fetched offset means there are some to drop.
    const first = messages[0];
    const within = first !== undefined && offsetOf(first) < from ? messages.filter((message) => offsetOf(message) >= from) : messages;
    this.messagesWithinOffset = within;
    const kept = filterAbortedMessages({ messages: within, abortedTransactions: partitionData.abortedTransactions });
    this.messages = kept.some((message) => message.isControlRecord) ? kept.filter((message) => !message.isControlRecord) : kept;
  }
}

const offsetOf = (message: FetchedPartition['messages'][number]): number => (isLazyRecord(message) ? message.offsetNumber : Number(message.offset));

/**
 * Group ids whose consumers take {@link LazyRecord}s, with how many consumers of each do; one map
 * for every copy of `@eddy/kafka` in the process (the fetch wrapper is installed by the first).
 */
const lazyGroups: Map<string, number> = ((globalThis as { [key: symbol]: unknown })[Symbol.for('eddy.kafkajs.lazyGroups')] ??= new Map<string, number>()) as Map<string, number>;

/**
 * Lets the consumers of a group (Eddy's own) receive {@link LazyRecord}s as they are; returns the
 * function that ends it. Consumers of every other group get kafkajs's records.
 */
export function deliverLazily(groupId: string): () => void {
  lazyGroups.set(groupId, (lazyGroups.get(groupId) ?? 0) + 1);
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    const count = (lazyGroups.get(groupId) ?? 1) - 1;
    if (count > 0) lazyGroups.set(groupId, count);
    else lazyGroups.delete(groupId);
  };
}

interface FetchedBatchFields {
  rawMessages: FetchedPartition['messages'];
  messagesWithinOffset: FetchedPartition['messages'];
  messages: FetchedPartition['messages'];
}

/** Turns a batch's lazy records into kafkajs's records, keeping which list holds which. */
export function materializeBatch(batch: FetchedBatchFields): void {
  const { rawMessages, messagesWithinOffset, messages } = batch;
  if (!rawMessages.some(isLazyRecord)) return;
  const raw = rawMessages.map((message) => (isLazyRecord(message) ? message.materialize() : message));
  batch.rawMessages = raw;
  // The other lists are the raw one, or parts of it in the same order: walk along it.
  const along = (list: FetchedPartition['messages']) => {
    if (list === rawMessages) return raw;
    const converted = new Array<FetchedPartition['messages'][number]>(list.length);
    let at = 0;
    for (let index = 0; index < list.length; index++) {
      while (at < rawMessages.length && rawMessages[at] !== list[index]) at++;
      converted[index] = raw[at]!;
    }
    return converted;
  };
  batch.messagesWithinOffset = along(messagesWithinOffset);
  batch.messages = messages === messagesWithinOffset ? batch.messagesWithinOffset : along(messages);
}

interface ConsumerGroupClass {
  prototype: { groupId: string; fetch(nodeId: number): Promise<FetchedBatchFields[]> } & { [wrapped]?: true };
}
const wrapped = Symbol.for('eddy.kafkajs.lazyRecords');

/** Wraps kafkajs's consumer group fetch (once): batches of groups not in {@link lazyGroups} get kafkajs's records. */
function installMaterializer(): void {
  const prototype = kafkajsModule<ConsumerGroupClass>('consumer/consumerGroup.js').prototype;
  if (prototype[wrapped]) return;
  const fetch = prototype.fetch;
  prototype.fetch = async function (this: ConsumerGroupClass['prototype'], nodeId: number) {
    const batches = await fetch.call(this, nodeId);
    if (!lazyGroups.has(this.groupId)) for (const batch of batches) materializeBatch(batch);
    return batches;
  };
  prototype[wrapped] = true;
}

/** Whether kafkajs's fetches in this process decode record batches with {@link decodeRecordBatch}. */
export const fetchFixInstalled: boolean = replaceKafkajsModules([
  { module: 'protocol/recordBatch/v0/decoder.js', loadedBy: ['protocol/requests/fetch/v4/decodeMessages.js'], exports: decodeRecordBatch },
  { module: 'consumer/batch.js', loadedBy: ['consumer/consumerGroup.js'], exports: FetchedBatch },
]);
// After the replacements: this loads kafkajs's consumer group, which takes the batch module.
if (fetchFixInstalled) installMaterializer();

/** The kafkajs modules replaced (for tests). */
export const replacedFetchModule: string = kafkajsPath('protocol/recordBatch/v0/decoder.js');
export const replacedBatchModule: string = kafkajsPath('consumer/batch.js');
