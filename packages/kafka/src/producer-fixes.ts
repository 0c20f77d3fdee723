import { Buffer } from 'node:buffer';
import { kafkajsModule, kafkajsPath, replaceKafkajsModules, type ModuleReplacement } from './kafkajs-modules.js';

/**
 * Fixes for kafkajs 2.2.4's producer, installed when this module is evaluated, which must be
 * before kafkajs's producer code loads (`@eddy/kafka` imports this module first). Each replaces a
 * kafkajs module in Node's module cache, so the kafkajs code that requires it gets the fix; the
 * bytes on the wire and the shapes returned are kafkajs's own, only the cost changes. Except:
 * a batch's first and largest timestamps are the smallest and largest by number (kafkajs sorts
 * them as text, so '1000' comes before '999'); and fields kafkajs refuses with a TypeError from
 * deep inside its encoder (a number as key, a null header value, a timestamp that is not a
 * number) are written as their text, null, or the time of encoding.
 *
 * - {@link groupMessagesPerPartition}: kafkajs groups a request's messages by partition by
 *   copying the partition's list for every message (`[...current, message]`), quadratic in the
 *   messages per partition. The fix appends in place.
 * - {@link encodeRecord}: kafkajs encodes each record into a fresh zero-filled 512-byte buffer,
 *   every varint through a temporary array and buffer, and 64-bit varints through Long objects.
 *   The fix writes each record once, into a buffer of its exact size.
 * - {@link produceRequest} (Produce v3, which v4 to v7 reuse): kafkajs copies every message with
 *   an object spread (about 1.5 µs each, more than encoding it) and sorts the timestamps to find
 *   the first and the largest. The fix passes the fields on and takes the minimum and maximum.
 *
 * - {@link crc32c}: the checksum of every record batch, eight bytes per step (slicing-by-8)
 *   instead of kafkajs's one.
 *
 * If kafkajs's producer loaded first (an application imported kafkajs before `@eddy/kafka`), the
 * fixes cannot apply; {@link producerFixesInstalled} then says false and only speed suffers.
 */

interface GroupArguments<M> {
  readonly topic: string;
  readonly partitionMetadata: readonly unknown[];
  readonly messages: readonly M[];
  readonly partitioner: (args: { topic: string; partitionMetadata: readonly unknown[]; message: M }) => number;
}

/** Messages grouped by the partition the partitioner picks, each group in the order given. */
export function groupMessagesPerPartition<M>({ topic, partitionMetadata, messages, partitioner }: GroupArguments<M>): Record<number, M[]> {
  const groups: Record<number, M[]> = {};
  if (partitionMetadata.length === 0) return groups;
  // An argument object per message, as kafkajs gives: this runs for every kafkajs producer of the
  // process, and an application's own partitioner may keep what it is given.
  for (const message of messages) (groups[partitioner({ topic, partitionMetadata, message })] ??= []).push(message);
  return groups;
}

type Bytes = Buffer | string | null | undefined;
type Headers = Readonly<Record<string, Bytes | readonly Bytes[]>>;

/** What kafkajs's produce request hands its record encoder. */
export interface RecordFields {
  readonly offsetDelta?: number;
  readonly timestampDelta?: number | { toString(): string };
  readonly key?: Bytes;
  readonly value?: Bytes;
  readonly headers?: Headers;
}

/** Marks {@link OutgoingMessage}s across copies of `@eddy/kafka` (which share one kafkajs). */
const outgoingBrand: unique symbol = Symbol.for('eddy.kafkajs.outgoingMessage') as never;

/**
 * A message an Eddy producer hands kafkajs (records.ts `toKafkaMessage`, when these fixes are in
 * place): its key and value are written as the bytes they are, any `Uint8Array`, where kafkajs
 * wants a Buffer (and writes anything else as its `String()`), so no Buffer view is made per
 * field. kafkajs passes messages on untouched from `sendBatch` to the produce request.
 */
export class OutgoingMessage {
  declare readonly [outgoingBrand]: true;
  constructor(
    readonly partition: number,
    readonly key: Uint8Array | null,
    readonly value: Uint8Array | null,
    /** Milliseconds. */
    readonly timestampMs: number,
    readonly headers: Readonly<Record<string, string>> | undefined,
  ) {}

  /** As kafkajs's messages have it. */
  get timestamp(): string {
    return String(this.timestampMs);
  }
}
Object.defineProperty(OutgoingMessage.prototype, outgoingBrand, { value: true });

const isOutgoingMessage = (message: unknown): message is OutgoingMessage => (message as { [outgoingBrand]?: true })[outgoingBrand] === true;

/** An encoded record or request, in the shape kafkajs's encoders take (`buf` and `buffer`). */
export class EncodedRecord {
  constructor(readonly buf: Buffer) {}
  get buffer(): Buffer {
    return this.buf;
  }
  size(): number {
    return this.buf.length;
  }
}

/** The record batch attribute of a transactional batch. */
const TRANSACTIONAL_FLAG = 0x10;

/** ZigZag encoding of a signed integer up to 2^53 (Kafka's varint and varlong). */
const zigZag = (value: number): number => (value >= 0 ? value * 2 : -value * 2 - 1);

function sizeOfUnsignedVarint(value: number): number {
  let size = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

function writeUnsignedVarint(buffer: Buffer, offset: number, value: number): number {
  while (value >= 128) {
    buffer[offset++] = (value % 128) | 128;
    value = Math.floor(value / 128);
  }
  buffer[offset++] = value;
  return offset;
}

/** A field as it is written: bytes as they are, text as UTF-8, or null. */
type Field = Uint8Array | string | null;

/** A kafkajs message field as kafkajs writes it: a Buffer as is, anything else as its `String()`; null and undefined as null. */
const kafkajsField = (value: unknown): Field => (value === null || value === undefined ? null : Buffer.isBuffer(value) ? value : String(value));

const fieldLength = (field: Field): number => (field === null ? -1 : typeof field === 'string' ? Buffer.byteLength(field, 'utf8') : field.length);

/** A length-prefixed field's size; `length` -1 is null. */
const sizeOfField = (length: number): number => (length < 0 ? 1 : sizeOfUnsignedVarint(length * 2) + length);

function writeField(buffer: Buffer, at: number, field: Field, length: number): number {
  if (field === null) return writeUnsignedVarint(buffer, at, 1); // zigzag(-1)
  at = writeUnsignedVarint(buffer, at, length * 2);
  if (typeof field === 'string') buffer.write(field, at, length, 'utf8');
  else buffer.set(field, at);
  return at + length;
}

/** Calls `each` per header value, as kafkajs writes them: a value that is an array repeats its name. */
function forEachHeader(headers: Headers | null, each: (name: string, value: Field) => void): void {
  for (const name of Object.keys(headers!)) {
    const entry = headers![name];
    if (Array.isArray(entry)) for (const value of entry as readonly Bytes[]) each(name, kafkajsField(value));
    else each(name, kafkajsField(entry));
  }
}

/**
 * Sizes and writes records of a record batch (Kafka's message format v2), byte for byte what
 * kafkajs's `recordBatch/record/v0` writes: length, attributes, timestamp delta, offset delta, key,
 * value, headers. One instance serves every record of a request, one record at a time.
 */
class RecordWriter {
  #key: Field = null;
  #keyLength = -1;
  #value: Field = null;
  #valueLength = -1;
  #headers: Headers | null | undefined;
  #headerCount = 0;
  #headersSize = 0;
  #timestamp = 0;
  #offset = 0;
  /** The size of the record after its length prefix. */
  body = 0;

  /** Takes a record's fields and sizes it; the record takes `sizeOfUnsignedVarint(body * 2) + body` bytes. */
  take(key: Field, value: Field, headers: Headers | null | undefined, timestampDelta: number, offsetDelta: number): this {
    this.#key = key;
    this.#keyLength = fieldLength(key);
    this.#value = value;
    this.#valueLength = fieldLength(value);
    this.#headers = headers;
    this.#headerCount = 0;
    this.#headersSize = 0;
    // null throws, as kafkajs's Object.keys does.
    if (headers !== undefined) {
      forEachHeader(headers, (name, headerValue) => {
        this.#headerCount++;
        this.#headersSize += sizeOfField(Buffer.byteLength(name, 'utf8')) + sizeOfField(fieldLength(headerValue));
      });
    }
    this.#timestamp = zigZag(timestampDelta);
    this.#offset = zigZag(offsetDelta);
    this.body =
      1 +
      sizeOfUnsignedVarint(this.#timestamp) +
      sizeOfUnsignedVarint(this.#offset) +
      sizeOfField(this.#keyLength) +
      sizeOfField(this.#valueLength) +
      sizeOfUnsignedVarint(this.#headerCount * 2) +
      this.#headersSize;
    return this;
  }

  get size(): number {
    return sizeOfUnsignedVarint(this.body * 2) + this.body;
  }

  /** The record taken last, in a buffer of its own. */
  encoded(): EncodedRecord {
    const buffer = Buffer.allocUnsafe(this.size);
    this.write(buffer, 0);
    return new EncodedRecord(buffer);
  }

  /** Writes the record taken last at `at`; returns where it ends. */
  write(buffer: Buffer, at: number): number {
    at = writeUnsignedVarint(buffer, at, this.body * 2);
    buffer[at++] = 0; // attributes: none used
    at = writeUnsignedVarint(buffer, at, this.#timestamp);
    at = writeUnsignedVarint(buffer, at, this.#offset);
    at = writeField(buffer, at, this.#key, this.#keyLength);
    at = writeField(buffer, at, this.#value, this.#valueLength);
    at = writeUnsignedVarint(buffer, at, this.#headerCount * 2); // zigzag(count)
    if (this.#headers) {
      forEachHeader(this.#headers, (name, headerValue) => {
        at = writeField(buffer, at, name, Buffer.byteLength(name, 'utf8'));
        at = writeField(buffer, at, headerValue, fieldLength(headerValue));
      });
    }
    // Not to hold on to the record's bytes (a view of a whole fetch, for a record passed through).
    this.#key = this.#value = null;
    this.#headers = undefined;
    return at;
  }
}

const recordWriter = new RecordWriter();

/** A record of a record batch, byte for byte what kafkajs's `recordBatch/record/v0` writes. */
export function encodeRecord({ offsetDelta = 0, timestampDelta = 0, key, value, headers = {} }: RecordFields): EncodedRecord {
  const delta = typeof timestampDelta === 'number' ? timestampDelta : Number(timestampDelta.toString());
  return recordWriter.take(kafkajsField(key), kafkajsField(value), headers, delta, offsetDelta).encoded();
}


/** The parts of kafkajs's encoder a produce request is written with. */
interface KafkajsEncoder {
  readonly buffer: Buffer;
  writeString(value: string | null): KafkajsEncoder;
  writeInt16(value: number): KafkajsEncoder;
  writeInt32(value: number): KafkajsEncoder;
  writeArray(values: readonly unknown[]): KafkajsEncoder;
  writeEncoder(value: unknown): KafkajsEncoder;
}
type EncoderClass = new () => KafkajsEncoder;
type RecordBatchEncoder = (fields: Record<string, unknown>) => Promise<{ size(): number }>;

/** A message as kafkajs's sendMessages hands it to the produce request. */
interface ProduceMessage {
  readonly key?: Bytes;
  readonly value?: Bytes;
  readonly headers?: RecordFields['headers'] | null;
  readonly timestamp?: string | number | null;
}

interface ProduceRequestFields {
  readonly acks: number;
  readonly timeout: number;
  readonly transactionalId?: string | null;
  readonly producerId?: unknown;
  readonly producerEpoch?: number;
  readonly compression?: number;
  readonly topicData: ReadonlyArray<{
    readonly topic: string;
    readonly partitions: ReadonlyArray<{ readonly partition: number; readonly firstSequence?: number; readonly messages: ReadonlyArray<ProduceMessage | OutgoingMessage> }>;
  }>;
}

/**
 * Kafka's Produce request, version 3 (kafkajs's v4 to v7 wrap it): the same request kafkajs
 * builds — one record batch per partition, timestamps as deltas from the smallest, records
 * without a timestamp stamped with the time of encoding.
 */
export function produceRequest({ acks, timeout, transactionalId = null, producerId, producerEpoch = 0, compression, topicData }: ProduceRequestFields) {
  const { Encoder, RecordBatch, Long, Produce, Types } = (produceParts ??= {
    Encoder: kafkajsModule<EncoderClass>('protocol/encoder.js'),
    RecordBatch: kafkajsModule<{ RecordBatch: RecordBatchEncoder }>('protocol/recordBatch/v0/index.js').RecordBatch,
    Long: kafkajsModule<KafkajsLong>('utils/long.js'),
    Produce: kafkajsModule<{ Produce: number }>('protocol/requests/apiKeys.js').Produce,
    Types: kafkajsModule<{ Types: { None: number } }>('protocol/message/compression/index.js').Types,
  });
  const none = compression === undefined || compression === Types.None;
  const encodePartition = async ({ partition, firstSequence = 0, messages }: ProduceRequestFields['topicData'][number]['partitions'][number]) => {
    const now = Date.now(); // eslint-disable-line no-restricted-properties -- kafkajs's stamp for records without a timestamp
    let first: string | number | undefined;
    let firstValue = Infinity;
    let max: string | number | undefined;
    let maxValue = -Infinity;
    for (const message of messages) {
      const timestamp = isOutgoingMessage(message) ? message.timestampMs : message.timestamp;
      if (timestamp === null || timestamp === undefined) continue;
      const value = Number(timestamp);
      if (value < firstValue) [first, firstValue] = [timestamp, value];
      if (value > maxValue) [max, maxValue] = [timestamp, value];
    }
    if (first === undefined) [first, firstValue, max] = [now, now, now];
    /** Takes message `index` into the record writer. */
    const take = (index: number): RecordWriter => {
      const message = messages[index]!;
      if (isOutgoingMessage(message)) return recordWriter.take(message.key, message.value, message.headers, message.timestampMs - firstValue, index);
      const { key, value, headers = {}, timestamp } = message;
      return recordWriter.take(kafkajsField(key), kafkajsField(value), headers, (timestamp ? Number(timestamp) : now) - firstValue, index);
    };
    if (!none) {
      const records = new Array<EncodedRecord>(messages.length);
      for (let index = 0; index < messages.length; index++) records[index] = take(index).encoded();
      const batch = await RecordBatch({
        compression,
        records,
        firstTimestamp: first,
        maxTimestamp: max,
        producerId: producerId ?? Long.fromInt(-1),
        producerEpoch,
        firstSequence,
        transactional: !!transactionalId,
        lastOffsetDelta: records.length - 1,
      });
      return new Encoder().writeInt32(partition).writeInt32(batch.size()).writeEncoder(batch);
    }
    // Uncompressed, the partition's part of the request in one buffer, as kafkajs's encoders lay
    // it out: the partition, the record set's size, then the record batch (v2) — base offset,
    // length, leader epoch, magic, CRC-32C of what follows it, attributes, last offset delta,
    // first and largest timestamp, producer id and epoch, first sequence, the records.
    let recordsSize = 0;
    for (let index = 0; index < messages.length; index++) recordsSize += take(index).size;
    const bodyStart = 29;
    const buffer = Buffer.allocUnsafe(bodyStart + 40 + recordsSize);
    buffer.writeInt32BE(partition, 0);
    buffer.writeInt32BE(buffer.length - 8, 4);
    buffer.writeBigInt64BE(0n, 8);
    buffer.writeInt32BE(buffer.length - 20, 16);
    buffer.writeInt32BE(0, 20); // partition leader epoch
    buffer.writeInt8(2, 24); // magic: record batch v2
    buffer.writeInt16BE(transactionalId ? TRANSACTIONAL_FLAG : 0, bodyStart);
    buffer.writeInt32BE(messages.length - 1, bodyStart + 2);
    buffer.writeBigInt64BE(Long.fromValue(first).value, bodyStart + 6);
    buffer.writeBigInt64BE(Long.fromValue(max).value, bodyStart + 14);
    buffer.writeBigInt64BE(Long.fromValue(producerId ?? -1).value, bodyStart + 22);
    buffer.writeInt16BE(producerEpoch, bodyStart + 30);
    buffer.writeInt32BE(firstSequence, bodyStart + 32);
    buffer.writeInt32BE(messages.length, bodyStart + 36);
    let at = bodyStart + 40;
    for (let index = 0; index < messages.length; index++) at = take(index).write(buffer, at);
    buffer.writeUInt32BE(crc32c(buffer.subarray(bodyStart)), 25);
    return new EncodedRecord(buffer);
  };
  return {
    apiKey: Produce,
    apiVersion: 3,
    apiName: 'Produce',
    expectResponse: () => acks !== 0,
    encode: async () => {
      const topics: KafkajsEncoder[] = [];
      for (const { topic, partitions } of topicData) {
        const encoded: Array<KafkajsEncoder | EncodedRecord> = [];
        for (const data of partitions) encoded.push(await encodePartition(data));
        topics.push(new Encoder().writeString(topic).writeArray(encoded));
      }
      return new Encoder().writeString(transactionalId).writeInt16(acks).writeInt32(timeout).writeArray(topics);
    },
  };
}

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) tables for slicing-by-8: table k at k·256. */
const CRC_TABLES = (() => {
  const tables = new Int32Array(8 * 256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
    tables[byte] = crc;
  }
  for (let table = 1; table < 8; table++) {
    for (let byte = 0; byte < 256; byte++) {
      const previous = tables[(table - 1) * 256 + byte]!;
      tables[table * 256 + byte] = (previous >>> 8) ^ tables[previous & 0xff]!;
    }
  }
  return tables;
})();

/** The CRC-32C of `buffer`, as kafkajs's `crc32C` returns it (an unsigned 32-bit number). */
export function crc32c(buffer: Uint8Array): number {
  const t = CRC_TABLES;
  let crc = -1;
  let index = 0;
  const whole = buffer.length - (buffer.length % 8);
  for (; index < whole; index += 8) {
    crc ^= buffer[index]! | (buffer[index + 1]! << 8) | (buffer[index + 2]! << 16) | (buffer[index + 3]! << 24);
    crc =
      t[1792 + (crc & 0xff)]! ^
      t[1536 + ((crc >>> 8) & 0xff)]! ^
      t[1280 + ((crc >>> 16) & 0xff)]! ^
      t[1024 + (crc >>> 24)]! ^
      t[768 + buffer[index + 4]!]! ^
      t[512 + buffer[index + 5]!]! ^
      t[256 + buffer[index + 6]!]! ^
      t[buffer[index + 7]!]!;
  }
  for (; index < buffer.length; index++) crc = t[(crc ^ buffer[index]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

/** kafkajs's 64-bit integers (a BigInt inside). */
interface KafkajsLong {
  fromInt(value: number): unknown;
  fromValue(value: unknown): { readonly value: bigint };
}

let produceParts: { Encoder: EncoderClass; RecordBatch: RecordBatchEncoder; Long: KafkajsLong; Produce: number; Types: { None: number } } | undefined;

/** The kafkajs modules replaced, and the modules that take them when they load. */
const replacements: readonly ModuleReplacement[] = [
  // First: putting the produce request in place loads the record batch encoder, which takes the checksum.
  { module: 'protocol/recordBatch/crc32C/crc32C.js', loadedBy: ['protocol/recordBatch/crc32C/index.js'], exports: crc32c },
  { module: 'producer/groupMessagesPerPartition.js', loadedBy: ['producer/sendMessages.js'], exports: groupMessagesPerPartition },
  { module: 'protocol/recordBatch/record/v0/index.js', loadedBy: ['protocol/requests/produce/v3/request.js'], exports: encodeRecord },
  {
    module: 'protocol/requests/produce/v3/request.js',
    loadedBy: ['protocol/requests/produce/v3/request.js', ...[4, 5, 6, 7].map((version) => `protocol/requests/produce/v${version}/request.js`)],
    exports: produceRequest,
  },
];

/** Whether kafkajs's producers in this process use these fixes. */
export const producerFixesInstalled: boolean = replaceKafkajsModules(replacements);

/** The kafkajs module paths replaced (for tests). */
export const replacedModules: readonly string[] = replacements.map(({ module }) => kafkajsPath(module));
