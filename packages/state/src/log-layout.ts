/**
 * How the durable embedded broker (levelTransport) lays its log out in LevelDB. One byte tags
 * each kind of entry; numbers are big-endian so that a partition's records sort by offset.
 *
 * - `00 "broker-format"` → the format version.
 * - `01 <topic name>` → the topic (JSON: its id, partitions, compaction, retention).
 * - `02 <topic id u32> <partition u32>` → the partition's end offset (u64), kept when records go.
 * - `03 <topic id u32> <partition u32> <first offset u64>` → a chunk: records written together
 *   (see {@link encodeChunk}); one entry per write, not per record, keeps the log cheap to write.
 * - `04 <topic id u32> <partition u32> <group id>` → a group's committed offset (u64).
 * - `05 <topic id u32> <partition u32>` → the partition's first offset (u64): records before it,
 *   still in a chunk that also holds later ones, are gone.
 */
import { Buffer } from 'node:buffer';
import type { Headers, IncomingRecord, TopicSpec } from '@eddy/core';

export const LOG_FORMAT_VERSION = '1';
const TAG_META = 0x00;
export const TAG_TOPIC = 0x01;
export const TAG_END = 0x02;
export const TAG_RECORD = 0x03;
export const TAG_COMMITTED = 0x04;
export const TAG_START = 0x05;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const LOG_FORMAT_KEY = Uint8Array.of(TAG_META, ...encoder.encode('broker-format'));
export const LOG_FORMAT_VALUE = encoder.encode(LOG_FORMAT_VERSION);

/** A topic as the log keeps it: its spec and the id its keys use. */
export interface StoredTopic {
  readonly id: number;
  readonly spec: TopicSpec;
}

/** The first key of a tag's range, and the first after it. */
export const tagRange = (tag: number) => ({ gte: Uint8Array.of(tag), lt: Uint8Array.of(tag + 1) });

export const topicKey = (name: string): Uint8Array => Uint8Array.of(TAG_TOPIC, ...encoder.encode(name));
export const encodeTopic = (topic: StoredTopic): Uint8Array => encoder.encode(JSON.stringify(topic));
export function decodeTopic(value: Uint8Array): StoredTopic {
  const topic = JSON.parse(decoder.decode(value)) as StoredTopic;
  if (!Number.isInteger(topic.id) || typeof topic.spec?.name !== 'string' || !Number.isInteger(topic.spec.partitions)) throw new Error('not a topic');
  return topic;
}

function partitionKey(tag: number, topicId: number, partition: number, extra: number): Buffer {
  const key = Buffer.allocUnsafe(9 + extra);
  key[0] = tag;
  key.writeUInt32BE(topicId, 1);
  key.writeUInt32BE(partition, 5);
  return key;
}

export const endKey = (topicId: number, partition: number): Uint8Array => partitionKey(TAG_END, topicId, partition, 0);
export const startKey = (topicId: number, partition: number): Uint8Array => partitionKey(TAG_START, topicId, partition, 0);

export function chunkKey(topicId: number, partition: number, first: number): Uint8Array {
  const key = partitionKey(TAG_RECORD, topicId, partition, 8);
  key.writeBigUInt64BE(BigInt(first), 9);
  return key;
}

export function committedKey(topicId: number, partition: number, groupId: string): Uint8Array {
  const group = encoder.encode(groupId);
  const key = partitionKey(TAG_COMMITTED, topicId, partition, group.length);
  key.set(group, 9);
  return key;
}

/** The topic id and partition of an end, record or committed key, and what follows them. */
export function readPartitionKey(key: Uint8Array): { topicId: number; partition: number; rest: Buffer } {
  const view = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  return { topicId: view.readUInt32BE(1), partition: view.readUInt32BE(5), rest: view.subarray(9) };
}

export function encodeOffset(offset: number): Uint8Array {
  const bytes = Buffer.allocUnsafe(8);
  bytes.writeBigUInt64BE(BigInt(offset));
  return bytes;
}

export function decodeOffset(bytes: Uint8Array): number {
  if (bytes.length !== 8) throw new Error(`an offset of ${bytes.length} bytes`);
  return Number(Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64BE());
}

/**
 * Records written together, as one entry: their count, when the newest was written (ms) and the
 * last's offset after the chunk's first, then
 * per record its offset after the chunk's first, when it was written, its timestamp, key, value and
 * headers. Lengths are u32, 0xffffffff for null. The header alone tells a chunk's age and size
 * (see {@link chunkSummary}) without decoding its records.
 */
export function encodeChunk(records: readonly IncomingRecord[], writtenAt: (index: number) => number): Uint8Array {
  const first = records[0]!.offset;
  const headers = records.map((record) => {
    const entries: Array<readonly [Buffer, Buffer]> = [];
    for (const name in record.headers) entries.push([Buffer.from(name), Buffer.from(record.headers[name]!)]);
    return entries;
  });
  let size = 4 + 8 + 4;
  let newest = -Infinity;
  records.forEach((record, index) => {
    newest = Math.max(newest, writtenAt(index));
    size += 4 + 8 + 8 + 4 + (record.key?.byteLength ?? 0) + 4 + (record.value?.byteLength ?? 0) + 2;
    for (const [name, value] of headers[index]!) size += 2 + name.length + 4 + value.length;
  });
  const bytes = Buffer.allocUnsafe(size);
  let at = bytes.writeUInt32BE(records.length, 0);
  at = bytes.writeDoubleBE(newest, at);
  at = bytes.writeUInt32BE(records[records.length - 1]!.offset - first, at);
  records.forEach((record, index) => {
    at = bytes.writeUInt32BE(record.offset - first, at);
    at = bytes.writeDoubleBE(writtenAt(index), at);
    at = bytes.writeDoubleBE(record.timestamp, at);
    at = writeBytes(bytes, at, record.key);
    at = writeBytes(bytes, at, record.value);
    at = bytes.writeUInt16BE(headers[index]!.length, at);
    for (const [name, value] of headers[index]!) {
      at = bytes.writeUInt16BE(name.length, at);
      at += name.copy(bytes, at);
      at = bytes.writeUInt32BE(value.length, at);
      at += value.copy(bytes, at);
    }
  });
  return bytes;
}

function writeBytes(target: Buffer, at: number, bytes: Uint8Array | null): number {
  if (bytes === null) return target.writeUInt32BE(0xffffffff, at);
  at = target.writeUInt32BE(bytes.byteLength, at);
  target.set(bytes, at);
  return at + bytes.byteLength;
}

/** A chunk's records back from the log, as consumers get them, and when each was written. */
export function decodeChunk(topic: string, partition: number, first: number, value: Uint8Array): { records: IncomingRecord[]; writtenAt: number[] } {
  return decodeChunkAbove(topic, partition, first, value, -Infinity);
}

/**
 * The records of a chunk from offset `above` on (the rest are walked over, not made), and the
 * offset of its last record.
 */
export function decodeChunkAbove(topic: string, partition: number, first: number, value: Uint8Array, above: number): { records: IncomingRecord[]; writtenAt: number[]; last: number } {
  const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const records: IncomingRecord[] = [];
  const writtenAt: number[] = [];
  const count = bytes.readUInt32BE(0);
  const last = first + bytes.readUInt32BE(12);
  if (last < above) return { records, writtenAt, last };
  let at = 16;
  const skipBytes = () => {
    const length = bytes.readUInt32BE(at);
    at += 4 + (length === 0xffffffff ? 0 : length);
  };
  const readBytes = (): Uint8Array | null => {
    const length = bytes.readUInt32BE(at);
    at += 4;
    if (length === 0xffffffff) return null;
    if (at + length > bytes.length) throw new Error('a field runs past the chunk');
    // A copy: records outlive the read buffer, and consumers get plain Uint8Arrays.
    const field = new Uint8Array(bytes.subarray(at, at + length));
    at += length;
    return field;
  };
  for (let index = 0; index < count; index++) {
    const offset = first + bytes.readUInt32BE(at);
    at += 4;
    if (offset < above) {
      at += 16;
      skipBytes();
      skipBytes();
      const headerCount = bytes.readUInt16BE(at);
      at += 2;
      for (let header = 0; header < headerCount; header++) {
        at += 2 + bytes.readUInt16BE(at);
        at += 4 + bytes.readUInt32BE(at);
      }
      continue;
    }
    writtenAt.push(bytes.readDoubleBE(at));
    at += 8;
    const timestamp = bytes.readDoubleBE(at);
    at += 8;
    const key = readBytes();
    const payload = readBytes();
    const headerCount = bytes.readUInt16BE(at);
    at += 2;
    const headers: Record<string, string> = {};
    for (let header = 0; header < headerCount; header++) {
      const nameLength = bytes.readUInt16BE(at);
      at += 2;
      const name = bytes.toString('utf8', at, at + nameLength);
      at += nameLength;
      const valueLength = bytes.readUInt32BE(at);
      at += 4;
      headers[name] = bytes.toString('utf8', at, at + valueLength);
      at += valueLength;
    }
    records.push({ topic, partition, offset, key, value: payload, timestamp, headers: headers as Headers });
  }
  if (at !== bytes.length) throw new Error('bytes left after the chunk');
  return { records, writtenAt, last };
}

/** What a chunk's header says: how many records, when the newest was written, and its size on disk. */
export function chunkSummary(value: Uint8Array): { count: number; newest: number; bytes: number } {
  const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return { count: bytes.readUInt32BE(0), newest: bytes.readDoubleBE(4), bytes: value.byteLength };
}

/** Why an entry does not fit the broker log's layout (damage), or undefined. */
export function logLayoutViolation(key: Uint8Array, value: Uint8Array): string | undefined {
  try {
    switch (key[0]) {
      case TAG_META:
        return Buffer.from(key).equals(Buffer.from(LOG_FORMAT_KEY)) ? undefined : 'an unknown meta key';
      case TAG_TOPIC:
        decodeTopic(value);
        return undefined;
      case TAG_END:
        if (key.length !== 9) return 'an end key of the wrong size';
        decodeOffset(value);
        return undefined;
      case TAG_RECORD: {
        if (key.length !== 17) return 'a chunk key of the wrong size';
        decodeChunk('', 0, 0, value);
        return undefined;
      }
      case TAG_START:
        if (key.length !== 9) return 'a start key of the wrong size';
        decodeOffset(value);
        return undefined;
      case TAG_COMMITTED:
        if (key.length < 9) return 'a committed-offset key too short';
        decodeOffset(value);
        return undefined;
      default:
        return `a key with unknown tag ${key[0]}`;
    }
  } catch (error) {
    return `an entry that does not decode (${(error as Error).message})`;
  }
}
