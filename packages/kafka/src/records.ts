import { Buffer } from 'node:buffer';
import type { Headers, IncomingRecord, OutgoingRecord } from '@eddy/core';
import type { KafkaMessage, Message } from 'kafkajs';
import { isLazyRecord, type LazyRecord } from './fetch-fixes.js';
import { toHeaders } from './headers.js';
import { OutgoingMessage, producerFixesInstalled } from './producer-fixes.js';

export { toHeaders } from './headers.js';

/** A Buffer over the same memory (no copy), as kafkajs wants its keys and values. */
export function toBuffer(bytes: Uint8Array | null): Buffer | null {
  if (bytes === null) return null;
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * An Eddy record as a kafkajs message for its (explicit) partition. With the producer fixes in
 * place, an {@link OutgoingMessage}: key and value stay the bytes they are, whatever kind of
 * Uint8Array. Otherwise kafkajs's own message: Buffers, and the timestamp as a string of ms.
 */
export function toKafkaMessage(record: OutgoingRecord): Message {
  if (!producerFixesInstalled) return toKafkajsMessage(record);
  return new OutgoingMessage(record.partition, record.key, record.value, record.timestamp, hasEntries(record.headers) ? record.headers : undefined) as unknown as Message;
}

/** An Eddy record as kafkajs's own message: key and value as Buffers over the same memory, the timestamp as a string of ms. */
export function toKafkajsMessage(record: OutgoingRecord): Message {
  const message: Message = { partition: record.partition, key: toBuffer(record.key), value: toBuffer(record.value), timestamp: String(record.timestamp) };
  if (hasEntries(record.headers)) message.headers = { ...record.headers };
  return message;
}

function hasEntries(headers: Headers | undefined): headers is Headers {
  if (headers) for (const name in headers) if (Object.hasOwn(headers, name)) return true;
  return false;
}

/** A kafkajs message of a fetched batch (or a record decoded lazily for an Eddy consumer) as an Eddy record. */
export function toIncomingRecord(topic: string, partition: number, message: KafkaMessage | LazyRecord): IncomingRecord {
  if (isLazyRecord(message)) return message.toRecord(topic, partition);
  return {
    topic,
    partition,
    offset: Number(message.offset),
    // A Buffer is a Uint8Array: handed on as it is (one view less per key and value).
    key: message.key ?? null,
    value: message.value,
    timestamp: Number(message.timestamp),
    headers: toHeaders(message.headers),
  };
}

/** Roughly the bytes a record takes in a produce request, to keep requests under the broker's limits. */
export function approximateSize(record: OutgoingRecord): number {
  let size = 70 + (record.key?.byteLength ?? 0) + (record.value?.byteLength ?? 0);
  if (hasEntries(record.headers)) for (const [name, value] of Object.entries(record.headers)) size += 8 + Buffer.byteLength(name) + Buffer.byteLength(value);
  return size;
}
