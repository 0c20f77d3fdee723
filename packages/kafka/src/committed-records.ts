import { Buffer } from 'node:buffer';
import type { Headers, IncomingRecord, TopicPartition } from '@eddy/core';
import { forEachRecord, type FetchedPartition } from './fetch-response.js';

/** Record batch attributes (Kafka's record format v2). */
const LOG_APPEND_TIME = 0b1000;
const TRANSACTIONAL = 0b1_0000;
const CONTROL = 0b10_0000;

/** The headers of every record that has none. */
const emptyHeaders: Headers = Object.freeze({});

/** The offset after the last batch of a fetched partition, or `position` if it has none. */
export function fetchedEnd(result: FetchedPartition, position: number): number {
  let next = position;
  for (const batch of result.records ?? []) next = Math.max(next, batch.firstOffset + batch.lastOffsetDelta + 1);
  return next;
}

/**
 * The records of a fetched partition a read_committed consumer delivers, from `position` on, a
 * record batch at a time (batches with none delivered left out). Records of aborted transactions
 * are dropped: the broker lists the aborted transactions (producer, first offset) that the fetched
 * range touches, and each one's records run from its first offset to its producer's abort marker.
 * The fetch loop and a restore decode a large fetch as they hand it on, so its records die young.
 * With `into`, each batch's records are appended there, and `into` is what is yielded.
 */
export function* committedBatches(tp: TopicPartition, result: FetchedPartition, position: number, into?: IncomingRecord[]): Generator<IncomingRecord[]> {
  const batches = result.records ?? [];
  const aborted = [...result.abortedTransactions].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : 1));
  const abortedProducers = new Set<bigint>();
  let nextAborted = 0;
  const { topic, partition } = tp;
  for (const batch of batches) {
    const first = batch.firstOffset;
    const last = first + batch.lastOffsetDelta;
    while (nextAborted < aborted.length && Number(aborted[nextAborted]!.firstOffset) <= last) abortedProducers.add(aborted[nextAborted++]!.producerId);
    if (batch.attributes & CONTROL) {
      // A transaction marker: an abort (type 0 in the marker's key) ends that producer's aborted run.
      let abort = false;
      forEachRecord(batch, ({ key }) => (abort ||= key !== null && key.length >= 4 && key[2] === 0 && key[3] === 0));
      if (abort) abortedProducers.delete(batch.producerId);
      continue;
    }
    if (batch.attributes & TRANSACTIONAL && abortedProducers.has(batch.producerId)) continue;
    const logAppendTime = (batch.attributes & LOG_APPEND_TIME) !== 0;
    const { firstTimestamp, maxTimestamp } = batch;
    const records: IncomingRecord[] = into ?? [];
    const before = records.length;
    forEachRecord(batch, ({ offsetDelta, timestampDelta, key, value, headers }) => {
      const offset = first + offsetDelta;
      if (offset < position) return;
      records.push({
        topic,
        partition,
        offset,
        key,
        value,
        timestamp: logAppendTime ? maxTimestamp : firstTimestamp + timestampDelta,
        headers: headers === undefined ? emptyHeaders : headersOf(headers),
      });
    });
    if (records.length > before) yield records;
  }
}

/** UTF-8 as Node's Buffer decodes it (bad bytes become U+FFFD). */
const text = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');

/** Header values as text (names and values alternating); like Java's `Headers.lastHeader`, the last of a repeated name wins, and a header without a value is left out. */
function headersOf(headers: ReadonlyArray<Uint8Array | null>): Headers {
  let result: Record<string, string> | undefined;
  for (let index = 0; index + 1 < headers.length; index += 2) {
    const name = headers[index];
    const value = headers[index + 1];
    if (!name || !value) continue;
    (result ??= {})[text(name)] = text(value);
  }
  return result ?? emptyHeaders;
}
