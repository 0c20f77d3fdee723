import { Buffer } from 'node:buffer';
import { kafkajsModule, kafkajsPath, replaceKafkajsModules, type ModuleReplacement } from './kafkajs-modules.js';

/**
 * Fixes for kafkajs 2.2.4's producer, installed when this module is evaluated, which must be
 * before kafkajs's producer code loads (`@eddy/kafka` imports this module first). Each replaces a
 * kafkajs module in Node's module cache, so the kafkajs code that requires it gets the fix; the
 * bytes on the wire and the shapes returned are kafkajs's own, only the cost changes.
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

/** What kafkajs's produce request hands its record encoder. */
export interface RecordFields {
  readonly offsetDelta?: number;
  readonly timestampDelta?: number | { toString(): string };
  readonly key?: Bytes;
  readonly value?: Bytes;
  readonly headers?: Readonly<Record<string, Bytes | readonly Bytes[]>>;
}

/** An encoded record, in the shape kafkajs's encoders take (`buf` and `buffer`). */
export class EncodedRecord {
  constructor(readonly buf: Buffer) {}
  get buffer(): Buffer {
    return this.buf;
  }
  size(): number {
    return this.buf.length;
  }
}

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

/** A field's bytes as kafkajs writes them: a Buffer as is, anything else as its UTF-8 string; null stays null. */
const toBytes = (value: Bytes): Buffer | null => (value === null || value === undefined ? null : Buffer.isBuffer(value) ? value : Buffer.from(String(value), 'utf8'));

const sizeOfBytes = (bytes: Buffer | null): number => (bytes === null ? 1 : sizeOfUnsignedVarint(bytes.length * 2) + bytes.length);

function writeBytes(buffer: Buffer, offset: number, bytes: Buffer | null): number {
  if (bytes === null) return writeUnsignedVarint(buffer, offset, 1); // zigzag(-1)
  offset = writeUnsignedVarint(buffer, offset, bytes.length * 2);
  bytes.copy(buffer, offset);
  return offset + bytes.length;
}

/**
 * A record of a record batch (Kafka's message format v2), byte for byte what kafkajs's
 * `recordBatch/record/v0` writes: length, attributes, timestamp delta, offset delta, key, value,
 * headers (a header whose value is an array repeats its name once per value).
 */
export function encodeRecord({ offsetDelta = 0, timestampDelta = 0, key, value, headers = {} }: RecordFields): EncodedRecord {
  const delta = zigZag(typeof timestampDelta === 'number' ? timestampDelta : Number(timestampDelta.toString()));
  const offset = zigZag(offsetDelta);
  const keyBytes = toBytes(key);
  const valueBytes = toBytes(value);
  const headerBytes: Array<Buffer | null> = [];
  for (const name of Object.keys(headers)) {
    const entry = headers[name];
    for (const headerValue of Array.isArray(entry) ? (entry as readonly Bytes[]) : [entry as Bytes]) headerBytes.push(Buffer.from(name, 'utf8'), toBytes(headerValue));
  }
  let body = 1 + sizeOfUnsignedVarint(delta) + sizeOfUnsignedVarint(offset) + sizeOfBytes(keyBytes) + sizeOfBytes(valueBytes) + sizeOfUnsignedVarint(headerBytes.length);
  for (const bytes of headerBytes) body += sizeOfBytes(bytes);
  const buffer = Buffer.allocUnsafe(sizeOfUnsignedVarint(body * 2) + body);
  let at = writeUnsignedVarint(buffer, 0, body * 2);
  buffer[at++] = 0; // attributes: none used
  at = writeUnsignedVarint(buffer, at, delta);
  at = writeUnsignedVarint(buffer, at, offset);
  at = writeBytes(buffer, at, keyBytes);
  at = writeBytes(buffer, at, valueBytes);
  at = writeUnsignedVarint(buffer, at, headerBytes.length); // zigzag(count) = 2 × count
  for (const bytes of headerBytes) at = writeBytes(buffer, at, bytes);
  return new EncodedRecord(buffer);
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
  readonly headers?: RecordFields['headers'];
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
    readonly partitions: ReadonlyArray<{ readonly partition: number; readonly firstSequence?: number; readonly messages: readonly ProduceMessage[] }>;
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
    Long: kafkajsModule<{ fromInt(value: number): unknown }>('utils/long.js'),
    Produce: kafkajsModule<{ Produce: number }>('protocol/requests/apiKeys.js').Produce,
    Types: kafkajsModule<{ Types: { None: number } }>('protocol/message/compression/index.js').Types,
  });
  const encodePartition = async ({ partition, firstSequence, messages }: ProduceRequestFields['topicData'][number]['partitions'][number]) => {
    const now = Date.now(); // eslint-disable-line no-restricted-properties -- kafkajs's stamp for records without a timestamp
    let first: string | number | undefined;
    let firstValue = Infinity;
    let max: string | number | undefined;
    let maxValue = -Infinity;
    for (const { timestamp } of messages) {
      if (timestamp === null || timestamp === undefined) continue;
      const value = Number(timestamp);
      if (value < firstValue) [first, firstValue] = [timestamp, value];
      if (value > maxValue) [max, maxValue] = [timestamp, value];
    }
    if (first === undefined) [first, firstValue, max] = [now, now, now];
    const records = new Array<EncodedRecord>(messages.length);
    for (let index = 0; index < messages.length; index++) {
      const { key, value, headers, timestamp } = messages[index]!;
      records[index] = encodeRecord({ key, value, headers, offsetDelta: index, timestampDelta: (timestamp ? Number(timestamp) : now) - firstValue });
    }
    const batch = await RecordBatch({
      compression: compression ?? Types.None,
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
  };
  return {
    apiKey: Produce,
    apiVersion: 3,
    apiName: 'Produce',
    expectResponse: () => acks !== 0,
    encode: async () => {
      const topics: KafkajsEncoder[] = [];
      for (const { topic, partitions } of topicData) {
        const encoded: KafkajsEncoder[] = [];
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

let produceParts: { Encoder: EncoderClass; RecordBatch: RecordBatchEncoder; Long: { fromInt(value: number): unknown }; Produce: number; Types: { None: number } } | undefined;

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
