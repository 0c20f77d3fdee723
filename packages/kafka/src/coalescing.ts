import { Buffer } from 'node:buffer';
import { EddyError, partitionKey, type Headers, type OutgoingRecord, type RejectedRecord, type TopicPartitionOffset } from '@eddy/core';
import { refusalOf, type TopicLimits } from './topic-limits.js';

/**
 * How concurrent `send` calls become produce requests: the calls waiting while a request is in
 * flight are split into the next requests in order, and each call learns the offsets of its own
 * records (within one request the records of a partition get consecutive offsets from the
 * partition's base offset, in the order they were given).
 */

/**
 * Bytes of records per produce request. Kafka's default limit is 1 MiB per record batch (one per
 * partition per request); staying well below it keeps a large flush from failing as too large.
 */
const maxRequestBytes = 768 * 1024;

/** One `send` call waiting for its records to be acknowledged. */
export interface PendingSend {
  readonly records: readonly OutgoingRecord[];
  /** The offset of the last record of this call in each partition (topic → partition → offset), filled in as requests succeed. */
  readonly lastOffsets: Map<string, Map<number, number>>;
  /** Records of this call refused for themselves (by the topic's limits, or by the broker). */
  readonly refused: RejectedRecord[];
  readonly resolve: (offsets: readonly TopicPartitionOffset[]) => void;
  readonly reject: (error: EddyError) => void;
}

/** A record of a produce request, and the call it belongs to. */
export interface RequestEntry {
  readonly record: OutgoingRecord;
  readonly owner: PendingSend;
}

/**
 * The records of the pending calls in produce requests, in order, none larger than
 * {@link maxRequestBytes} or than the batch a topic in it takes. A record its topic would refuse
 * (too large, a timestamp out of range) is not sent: its call learns why.
 */
export function splitRequests(pending: readonly PendingSend[], limits: ReadonlyMap<string, TopicLimits>, now: number): RequestEntry[][] {
  const requests: RequestEntry[][] = [];
  let entries: RequestEntry[] = [];
  let bytes = 0;
  let cap = maxRequestBytes;
  for (const owner of pending) {
    for (const record of owner.records) {
      const topicLimits = limits.get(record.topic)!;
      const refusal = refusalOf(record, topicLimits, now);
      if (refusal) {
        owner.refused.push({ record, reason: refusal.reason, error: new EddyError('RECORD_REJECTED', `${record.topic} would refuse it (${refusal.reason}): ${refusal.message}`) });
        continue;
      }
      const size = approximateSize(record);
      const topicCap = Math.min(maxRequestBytes, topicLimits.maxMessageBytes ?? maxRequestBytes);
      if (bytes + size > Math.min(cap, topicCap) && entries.length > 0) {
        requests.push(entries);
        entries = [];
        bytes = 0;
        cap = maxRequestBytes;
      }
      entries.push({ record, owner });
      bytes += size;
      cap = Math.min(cap, topicCap);
    }
  }
  if (entries.length > 0) requests.push(entries);
  return requests;
}

function hasEntries(headers: Headers | undefined): headers is Headers {
  if (headers) for (const name in headers) if (Object.hasOwn(headers, name)) return true;
  return false;
}

/** Roughly the bytes a record takes in a produce request, to keep requests under the broker's limits. */
function approximateSize(record: OutgoingRecord): number {
  let size = 70 + (record.key?.byteLength ?? 0) + (record.value?.byteLength ?? 0);
  if (hasEntries(record.headers)) for (const [name, value] of Object.entries(record.headers)) size += 8 + Buffer.byteLength(name) + Buffer.byteLength(value);
  return size;
}

/** Gives each record its offset: its partition's base offset plus its position among that partition's records. */
export function assignOffsets(entries: readonly RequestEntry[], baseOffsets: ReadonlyMap<string, number>): void {
  const next = new Map<string, Map<number, number>>();
  for (const { record } of entries) {
    if (next.get(record.topic)?.has(record.partition)) continue;
    const base = baseOffsets.get(partitionKey(record.topic, record.partition));
    if (base === undefined) continue;
    let partitions = next.get(record.topic);
    if (!partitions) next.set(record.topic, (partitions = new Map()));
    partitions.set(record.partition, base);
  }
  // Per record, no strings or objects: consecutive records mostly share their topic and caller.
  let topic: string | undefined;
  let owner: PendingSend | undefined;
  let offsets: Map<number, number> | undefined;
  let last: Map<number, number> | undefined;
  for (const entry of entries) {
    const { record } = entry;
    if (record.topic !== topic) {
      topic = record.topic;
      offsets = next.get(topic);
      owner = undefined;
    }
    if (entry.owner !== owner) {
      owner = entry.owner;
      last = owner.lastOffsets.get(topic);
      if (!last) owner.lastOffsets.set(topic, (last = new Map()));
    }
    const offset = offsets?.get(record.partition);
    if (offset === undefined) throw new EddyError('TRANSPORT_FAILED', `the broker acknowledged no offset for ${record.topic}[${record.partition}]`);
    offsets!.set(record.partition, offset + 1);
    last!.set(record.partition, offset);
  }
}

/** The topics of the pending calls, for an error message. */
export function topicsOf(pending: readonly PendingSend[]): string {
  return [...new Set(pending.flatMap((send) => send.records.map((record) => record.topic)))].join(', ');
}
