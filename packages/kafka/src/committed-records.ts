import { Buffer } from 'node:buffer';
import type { Headers, IncomingRecord, TopicPartition } from '@eddy/core';
import { BatchReader, rawRecord, type FetchedPartition, type RawBatch, type RawRecord } from './fetch-response.js';

/** Record batch attributes (Kafka's record format v2). */
const LOG_APPEND_TIME = 0b1000;
const TRANSACTIONAL = 0b1_0000;
const CONTROL = 0b10_0000;

/** The headers of every record that has none. */
const emptyHeaders: Headers = Object.freeze({});

/**
 * The records of a fetched partition a read_committed consumer delivers, from `position` on,
 * decoded one at a time as they are taken. Records of aborted transactions are dropped: the
 * broker lists the aborted transactions (producer, first offset) that the fetched range touches,
 * and each one's records run from its first offset to its producer's abort marker.
 *
 * Decoding a fetch of megabytes at once would make tens of thousands of records that outlive a
 * young-generation collection; once collections find most of what a site allocated alive, V8
 * allocates everything later made there in the old space (pretenuring), and every record of the
 * run then costs old-space collection. So the fetch loop, even when it holds a fetch back to
 * deliver it in step, and a restore, decode only what they hand on.
 */
export class CommittedRecords {
  /** The offset after the fetched batches (or the position, if none): the offsets after the last record hold nothing to deliver (transaction markers, aborted records). */
  readonly end: number;
  readonly #topic: string;
  readonly #partition: number;
  readonly #position: number;
  readonly #batches: readonly RawBatch[];
  readonly #aborted: ReadonlyArray<{ readonly producerId: bigint; readonly firstOffset: bigint }>;
  #nextAborted = 0;
  readonly #abortedProducers = new Set<bigint>();
  #nextBatch = 0;
  /** The batch being read, if any. */
  #batch: RawBatch | undefined;
  #reader: BatchReader | undefined;
  readonly #raw = rawRecord();
  /** The next record, read ahead by `peek` or a `take` that stopped before it. */
  #next: IncomingRecord | undefined;

  constructor({ topic, partition }: TopicPartition, result: FetchedPartition, position: number) {
    this.#topic = topic;
    this.#partition = partition;
    this.#position = position;
    this.#batches = result.records ?? [];
    this.#aborted = [...result.abortedTransactions].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : 1));
    let end = position;
    for (const batch of this.#batches) end = Math.max(end, batch.firstOffset + batch.lastOffsetDelta + 1);
    this.end = end;
  }

  /** No records, ending at `position`. */
  static none(tp: TopicPartition, position: number): CommittedRecords {
    return new CommittedRecords(tp, { partitionIndex: tp.partition, errorCode: 0, highWatermark: -1n, lastStableOffset: -1n, logStartOffset: -1n, abortedTransactions: [], records: undefined }, position);
  }

  /** The next record, not taken; undefined after the last. */
  peek(): IncomingRecord | undefined {
    return (this.#next ??= this.#read());
  }

  /** Takes the next records, up to `max`, stopping before the first that `stop` is true for (it stays next); empty after the last. */
  take(max: number, stop?: (record: IncomingRecord) => boolean): IncomingRecord[] {
    const taken: IncomingRecord[] = [];
    while (taken.length < max) {
      const record = this.#next ?? this.#read();
      this.#next = undefined;
      if (record === undefined) break;
      if (stop?.(record)) {
        this.#next = record;
        break;
      }
      taken.push(record);
    }
    return taken;
  }

  /** Decodes the next record to deliver. */
  #read(): IncomingRecord | undefined {
    const raw = this.#raw;
    for (;;) {
      const batch = this.#batch;
      if (batch && this.#reader!.next(raw)) {
        const offset = batch.firstOffset + raw.offsetDelta;
        if (offset < this.#position) continue;
        return {
          topic: this.#topic,
          partition: this.#partition,
          offset,
          key: raw.key,
          value: raw.value,
          timestamp: batch.attributes & LOG_APPEND_TIME ? batch.maxTimestamp : batch.firstTimestamp + raw.timestampDelta,
          headers: raw.headers === undefined ? emptyHeaders : headersOf(raw.headers),
        };
      }
      if (!this.#open()) return undefined;
    }
  }

  /** Moves on to the next batch whose records are delivered (not a marker, not aborted); false after the last. */
  #open(): boolean {
    this.#batch = this.#reader = undefined;
    const aborted = this.#aborted;
    while (this.#nextBatch < this.#batches.length) {
      const batch = this.#batches[this.#nextBatch++]!;
      const last = batch.firstOffset + batch.lastOffsetDelta;
      while (this.#nextAborted < aborted.length && Number(aborted[this.#nextAborted]!.firstOffset) <= last) this.#abortedProducers.add(aborted[this.#nextAborted++]!.producerId);
      if (batch.attributes & CONTROL) {
        // A transaction marker: an abort (type 0 in the marker's key) ends that producer's aborted run.
        if (isAbort(batch, this.#raw)) this.#abortedProducers.delete(batch.producerId);
        continue;
      }
      if (batch.attributes & TRANSACTIONAL && this.#abortedProducers.has(batch.producerId)) continue;
      this.#batch = batch;
      this.#reader = new BatchReader(batch);
      return true;
    }
    return false;
  }
}

/** Whether a control batch is an abort marker (type 0 in its record's key). */
function isAbort(batch: RawBatch, raw: RawRecord): boolean {
  const reader = new BatchReader(batch);
  let abort = false;
  while (reader.next(raw)) abort ||= raw.key !== null && raw.key.length >= 4 && raw.key[2] === 0 && raw.key[3] === 0;
  return abort;
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
