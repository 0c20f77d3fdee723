import { Buffer } from 'node:buffer';
import type { OutgoingRecord } from '@eddy/core';
import { createAPI, crc32c, produceV11, Writer } from '@platformatic/kafka';

/**
 * Produce (v11) with record batches Eddy encodes itself, through the client's public `createAPI`.
 * The client's encoder builds each record in a growing buffer of its own and copies it on (and
 * wants header Maps of Buffers, bigint timestamps and Buffer keys); here a partition's batch is
 * written once into a buffer of its exact size, straight from Eddy's records. The response is the
 * client's own parser's (a `ResponseError` holding the parsed response when a partition failed).
 */

/** The producer a batch names (idempotence and transactions). */
export interface BatchProducer {
  readonly producerId: bigint;
  readonly producerEpoch: number;
  readonly transactional: boolean;
}

/** One partition's record batch in a produce request. */
export interface PartitionBatch {
  readonly topic: string;
  readonly partition: number;
  readonly batch: Buffer;
}

const TRANSACTIONAL = 0b1_0000;
/** Bytes of a batch before its records. */
const BATCH_OVERHEAD = 61;
/** Where the CRC-32C starts: it covers everything from the attributes on. */
const CRC_FROM = 21;

const textEncoder = new TextEncoder();

/** Bytes of a zigzag varint (as record fields are written). */
export function varintSize(value: number): number {
  let zigzag = value >= 0 ? value * 2 : -value * 2 - 1;
  let size = 1;
  while (zigzag >= 0x80) {
    zigzag = Math.floor(zigzag / 128);
    size++;
  }
  return size;
}

function writeVarint(target: Buffer, at: number, value: number): number {
  let zigzag = value >= 0 ? value * 2 : -value * 2 - 1;
  while (zigzag >= 0x80) {
    target[at++] = (zigzag % 128) | 0x80;
    zigzag = Math.floor(zigzag / 128);
  }
  target[at++] = zigzag;
  return at;
}

function writeBytes(target: Buffer, at: number, bytes: Uint8Array | null): number {
  if (bytes === null) return writeVarint(target, at, -1);
  at = writeVarint(target, at, bytes.byteLength);
  target.set(bytes, at);
  return at + bytes.byteLength;
}

/**
 * A record batch (magic 2, uncompressed) of `records`, all of one partition, in order: sequence
 * numbers from `baseSequence`, the producer's id and epoch, the transactional bit if so.
 */
export function encodeBatch(records: readonly OutgoingRecord[], producer: BatchProducer, baseSequence: number): Buffer {
  const first = records[0]!;
  const firstTimestamp = first.timestamp;
  let maxTimestamp = firstTimestamp;
  // Headers as bytes, once (names and values alternating), only for records that have any.
  const headerBytes: Array<Uint8Array[] | undefined> = new Array(records.length);
  const bodySizes = new Array<number>(records.length);
  let size = BATCH_OVERHEAD;
  for (let index = 0; index < records.length; index++) {
    const record = records[index]!;
    if (record.timestamp > maxTimestamp) maxTimestamp = record.timestamp;
    let body = 1 + varintSize(record.timestamp - firstTimestamp) + varintSize(index);
    body += record.key === null ? 1 : varintSize(record.key.byteLength) + record.key.byteLength;
    body += record.value === null ? 1 : varintSize(record.value.byteLength) + record.value.byteLength;
    let headers: Uint8Array[] | undefined;
    if (record.headers) {
      for (const name in record.headers) {
        if (!Object.hasOwn(record.headers, name)) continue;
        (headers ??= []).push(textEncoder.encode(name), textEncoder.encode(record.headers[name]!));
      }
    }
    headerBytes[index] = headers;
    body += varintSize((headers?.length ?? 0) / 2);
    for (const part of headers ?? []) body += varintSize(part.byteLength) + part.byteLength;
    bodySizes[index] = body;
    size += varintSize(body) + body;
  }

  const batch = Buffer.allocUnsafe(size);
  batch.writeBigInt64BE(0n, 0); // base offset: the broker assigns it
  batch.writeInt32BE(size - 12, 8);
  batch.writeInt32BE(-1, 12); // partition leader epoch: the broker's
  batch.writeInt8(2, 16); // magic
  batch.writeInt16BE(producer.transactional ? TRANSACTIONAL : 0, 21);
  batch.writeInt32BE(records.length - 1, 23);
  batch.writeBigInt64BE(BigInt(firstTimestamp), 27);
  batch.writeBigInt64BE(BigInt(maxTimestamp), 35);
  batch.writeBigInt64BE(producer.producerId, 43);
  batch.writeInt16BE(producer.producerEpoch, 51);
  batch.writeInt32BE(baseSequence, 53);
  batch.writeInt32BE(records.length, 57);
  let at = BATCH_OVERHEAD;
  for (let index = 0; index < records.length; index++) {
    const record = records[index]!;
    at = writeVarint(batch, at, bodySizes[index]!);
    batch[at++] = 0; // attributes
    at = writeVarint(batch, at, record.timestamp - firstTimestamp);
    at = writeVarint(batch, at, index);
    at = writeBytes(batch, at, record.key);
    at = writeBytes(batch, at, record.value);
    const headers = headerBytes[index];
    at = writeVarint(batch, at, (headers?.length ?? 0) / 2);
    for (const part of headers ?? []) at = writeBytes(batch, at, part);
  }
  batch.writeUInt32BE(crc32c(batch.subarray(CRC_FROM)) >>> 0, 17);
  return batch;
}

function createRequest(transactionalId: string | null, acks: number, timeoutMs: number, batches: readonly PartitionBatch[]): Writer {
  const byTopic = new Map<string, PartitionBatch[]>();
  for (const entry of batches) {
    let partitions = byTopic.get(entry.topic);
    if (!partitions) byTopic.set(entry.topic, (partitions = []));
    partitions.push(entry);
  }
  return Writer.create()
    .appendString(transactionalId)
    .appendInt16(acks)
    .appendInt32(timeoutMs)
    .appendArray([...byTopic], (topicWriter, [topic, partitions]) => {
      topicWriter.appendString(topic).appendArray(partitions, (partitionWriter, { partition, batch }) => {
        // COMPACT_RECORDS: the length plus one.
        partitionWriter.appendInt32(partition).appendUnsignedVarInt(batch.length + 1).append(batch);
      });
    })
    .appendTaggedFields();
}

/** Produce v11 of batches encoded by {@link encodeBatch}: (transactional id or null, acks, timeout ms, batches). */
export const produceRaw = createAPI<[transactionalId: string | null, acks: number, timeoutMs: number, batches: readonly PartitionBatch[]], produceV11.ProduceResponse>(
  0,
  11,
  createRequest as never,
  produceV11.parseResponse,
);
