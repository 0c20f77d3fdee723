import { Buffer } from 'node:buffer';
import { createRecordsBatch } from '@platformatic/kafka';
import type { IncomingRecord } from '@eddy/core';
import { describe, expect, it } from 'vitest';
import { rawBatches, type RawBatch } from './fetch-response.js';
import { CommittedRecords } from './committed-records.js';

type Partition = ConstructorParameters<typeof CommittedRecords>[1];

/** All of a fetched partition's committed records at once, and where the fetch ends. */
function committedRecords(tp: ConstructorParameters<typeof CommittedRecords>[0], result: Partition, position: number): { records: IncomingRecord[]; next: number } {
  const records = new CommittedRecords(tp, result, position);
  return { records: records.take(Infinity), next: records.end };
}

const TRANSACTIONAL = 0b1_0000;
const CONTROL = 0b10_0000;
const LOG_APPEND_TIME = 0b1000;

/**
 * A record batch as the broker sends it: encoded by the client's own encoder (its base offset
 * and attributes set afterwards, as the broker does), then read back by the fetch parser.
 */
function encoded(first: number, records: Array<{ key: Buffer | null; value: Buffer; headers?: Map<Buffer, Buffer | null>; timestamp: bigint }>, { producerId = -1n, attributes = 0, compression = 'none' } = {}): RawBatch {
  const messages = records.map((record) => ({ topic: 't', partition: 0, key: record.key ?? undefined, value: record.value, headers: record.headers ?? new Map(), timestamp: record.timestamp }));
  const bytes = Buffer.from(createRecordsBatch(messages as never, { producerId, producerEpoch: 0, compression } as never).buffer);
  bytes.writeBigInt64BE(BigInt(first), 0);
  bytes.writeInt16BE(attributes | (bytes.readInt16BE(21) & 0b111), 21);
  const [parsed, ...rest] = rawBatches(bytes);
  expect(rest).toEqual([]);
  return parsed!;
}

/** A record batch of `count` records from `first`, values their offsets; the first record has headers h=1, h=2 and a valueless one. */
function batch(first: number, count: number, { producerId = -1n, attributes = 0, timestamp = 1_000n } = {}): RawBatch {
  const headers = new Map<Buffer, Buffer | null>([
    [Buffer.from('h'), Buffer.from('1')],
    [Buffer.from('h'), Buffer.from('2')],
    [Buffer.from('empty'), null],
  ]);
  const records = Array.from({ length: count }, (_, delta) => ({ key: null, value: Buffer.from(String(first + delta)), timestamp: timestamp + BigInt(delta), ...(delta === 0 ? { headers } : {}) }));
  const made = encoded(first, records, { producerId, attributes });
  // The batch's max timestamp, as the broker sets it for LogAppendTime: 99 ms after the first.
  return attributes & LOG_APPEND_TIME ? { ...made, maxTimestamp: Number(timestamp) + 99 } : made;
}

/** A transaction marker of `producerId` at `offset`: abort (type 0) or commit (type 1). */
function marker(offset: number, producerId: bigint, type: 0 | 1): RawBatch {
  const key = Buffer.alloc(4);
  key.writeInt16BE(0, 0);
  key.writeInt16BE(type, 2);
  return encoded(offset, [{ key, value: Buffer.alloc(6), timestamp: 1_000n }], { producerId, attributes: TRANSACTIONAL | CONTROL });
}

const partition = (records: RawBatch[], aborted: Array<{ producerId: bigint; firstOffset: bigint }> = []): Partition => ({
  partitionIndex: 0,
  errorCode: 0,
  highWatermark: 0n,
  lastStableOffset: 0n,
  logStartOffset: 0n,
  abortedTransactions: aborted,
  records,
});

const text = (bytes: Uint8Array | null) => (bytes === null ? undefined : Buffer.from(bytes).toString());
const values = (result: ReturnType<typeof committedRecords>) => result.records.map((record) => Number(text(record.value)));

describe('CommittedRecords: what a read_committed member delivers of a fetched partition', () => {
  const tp = { topic: 't', partition: 0 };

  it('drops the records of every aborted transaction, also with several producers aborting interleaved, and every marker', () => {
    // Producers 7 and 8 write interleaved; 7 aborts, 9 commits, then 8 aborts; 7 writes again (committed).
    const fetched = partition(
      [
        batch(0, 2, { producerId: 7n, attributes: TRANSACTIONAL }),
        batch(2, 2, { producerId: 8n, attributes: TRANSACTIONAL }),
        batch(4, 2, { producerId: 9n, attributes: TRANSACTIONAL }),
        marker(6, 7n, 0),
        marker(7, 9n, 1),
        batch(8, 1, { producerId: 8n, attributes: TRANSACTIONAL }),
        marker(9, 8n, 0),
        batch(10, 2, { producerId: 7n, attributes: TRANSACTIONAL }),
        marker(12, 7n, 1),
        batch(13, 2),
      ],
      [
        { producerId: 8n, firstOffset: 2n },
        { producerId: 7n, firstOffset: 0n },
      ],
    );
    const result = committedRecords(tp, fetched, 0);
    expect(values(result)).toEqual([4, 5, 10, 11, 13, 14]);
    expect(result.next).toBe(15);
  });

  it('starts at the position (a batch may begin before it), and moves past a fetch of nothing but markers', () => {
    expect(values(committedRecords(tp, partition([batch(0, 5)]), 3))).toEqual([3, 4]);
    const onlyMarkers = committedRecords(tp, partition([batch(20, 2, { producerId: 3n, attributes: TRANSACTIONAL }), marker(22, 3n, 0)], [{ producerId: 3n, firstOffset: 20n }]), 20);
    expect(onlyMarkers.records).toEqual([]);
    expect(onlyMarkers.next).toBe(23);
    expect(committedRecords(tp, partition([]), 9)).toEqual({ records: [], next: 9 });
  });

  it('reads timestamps (create time per record, or the broker append time of the batch), offsets and headers as text', () => {
    const [first, second] = committedRecords(tp, partition([batch(40, 2, { timestamp: 5_000n })]), 40).records;
    expect(first).toMatchObject({ topic: 't', partition: 0, offset: 40, timestamp: 5_000, key: null, headers: { h: '2' } });
    expect(second).toMatchObject({ offset: 41, timestamp: 5_001, headers: {} });
    const appended = committedRecords(tp, partition([batch(50, 2, { timestamp: 5_000n, attributes: LOG_APPEND_TIME })]), 50).records;
    expect(appended.map((record) => record.timestamp)).toEqual([5_099, 5_099]);
  });

  it('reads compressed batches too', () => {
    const records = Array.from({ length: 50 }, (_, delta) => ({ key: Buffer.from(`k${delta}`), value: Buffer.from(String(60 + delta)), timestamp: 7_000n + BigInt(delta) }));
    const gzipped = encoded(60, records, { compression: 'gzip' });
    expect(gzipped.attributes & 0b111).not.toBe(0);
    const read = committedRecords(tp, partition([gzipped]), 65).records;
    expect(read.map((record) => [record.offset, text(record.key), Number(text(record.value)), record.timestamp])).toEqual(
      records.slice(5).map((record, index) => [65 + index, record.key.toString(), 65 + index, Number(record.timestamp)]),
    );
  });

  it('hands out the same records as taken: in slices, up to a record a stop test picks (which stays next), across batches and markers', () => {
    const fetched = partition(
      [batch(0, 3), batch(3, 2, { producerId: 7n, attributes: TRANSACTIONAL }), marker(5, 7n, 0), batch(6, 4), batch(10, 1, { producerId: 8n, attributes: TRANSACTIONAL }), marker(11, 8n, 1)],
      [{ producerId: 7n, firstOffset: 3n }],
    );
    const all = committedRecords(tp, fetched, 1).records;
    expect(all.map((record) => record.offset)).toEqual([1, 2, 6, 7, 8, 9, 10]);
    const records = new CommittedRecords(tp, fetched, 1);
    expect(records.peek()?.offset).toBe(1);
    expect(records.take(2).map((record) => record.offset)).toEqual([1, 2]);
    const beyond8 = (record: IncomingRecord) => record.offset > 8;
    expect(records.take(2, beyond8).map((record) => record.offset)).toEqual([6, 7]);
    expect(records.take(10, beyond8).map((record) => record.offset)).toEqual([8]);
    expect(records.take(10, beyond8)).toEqual([]);
    expect(records.peek()?.offset).toBe(9);
    const rest = records.take(10);
    expect(rest.map((record) => record.offset)).toEqual([9, 10]);
    expect(records.peek()).toBeUndefined();
    expect(records.take(10)).toEqual([]);
    // Taken in pieces, the same records as taken at once.
    expect(new CommittedRecords(tp, fetched, 1).take(Infinity)).toEqual(all);
    expect(records.end).toBe(12);
    expect(CommittedRecords.none(tp, 9)).toMatchObject({ end: 9 });
    expect(CommittedRecords.none(tp, 9).take(10)).toEqual([]);
  });
});
