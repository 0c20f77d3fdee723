import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { dropAbortedRecords, type FetchedPartition, type FetchedRecord } from './read-committed.js';

const abortMarker = Buffer.from([0, 0, 0, 0]);
const commitMarker = Buffer.from([0, 0, 0, 1]);

/** A fetched record: `producer` writes it inside a transaction unless `plain`; markers are control records. */
function record(offset: number, producer: string, kind: 'data' | 'plain' | 'abort' | 'commit' = 'data'): FetchedRecord {
  const control = kind === 'abort' || kind === 'commit';
  return {
    offset: String(offset),
    key: kind === 'abort' ? abortMarker : kind === 'commit' ? commitMarker : Buffer.from(`k${offset}`),
    isControlRecord: control,
    batchContext: { producerId: producer, inTransaction: kind !== 'plain' },
  };
}

/** The offsets kafkajs goes on to deliver: those not marked as control records. */
const delivered = (partition: FetchedPartition) => partition.messages.filter((message) => !message.isControlRecord).map((message) => Number(message.offset));

describe('dropAbortedRecords (read_committed on kafkajs)', () => {
  it('drops the records of every aborted transaction, whatever order the broker lists them in', () => {
    // Three producers' transactions interleaved and aborted (a crashed instance's tasks), listed by producer id.
    const partition: FetchedPartition = {
      abortedTransactions: [
        { producerId: '261', firstOffset: '6' },
        { producerId: '263', firstOffset: '0' },
        { producerId: '265', firstOffset: '7' },
      ],
      messages: [
        ...[0, 1, 2, 3, 4, 5].map((offset) => record(offset, '263')),
        record(6, '261'),
        ...[7, 8, 9, 10, 11].map((offset) => record(offset, '265')),
        record(12, '261', 'abort'),
        record(13, '263', 'abort'),
        record(14, '265', 'abort'),
        record(15, '265'),
        record(16, '263'),
        record(17, '265', 'commit'),
        record(18, '263', 'commit'),
        record(19, '999', 'plain'),
      ],
    };
    dropAbortedRecords(partition);
    expect(delivered(partition)).toEqual([15, 16, 19]);
    expect(partition.abortedTransactions).toEqual([]);
  });

  it('starts in the middle of several aborted transactions (a fetch from a committed position)', () => {
    const partition: FetchedPartition = {
      abortedTransactions: [
        { producerId: '2', firstOffset: '3' },
        { producerId: '1', firstOffset: '1' },
      ],
      messages: [record(5, '2'), record(6, '1'), record(7, '3'), record(8, '1', 'abort'), record(9, '2', 'abort'), record(10, '3', 'commit'), record(11, '1')],
    };
    dropAbortedRecords(partition);
    // Producer 1's transaction after its abort marker is a new one (not listed as aborted).
    expect(delivered(partition)).toEqual([7, 11]);
  });

  it('leaves a partition without aborted transactions as it is', () => {
    const partition: FetchedPartition = { abortedTransactions: [], messages: [record(0, '1'), record(1, '1', 'commit'), record(2, '2', 'plain')] };
    dropAbortedRecords(partition);
    expect(delivered(partition)).toEqual([0, 2]);
  });
});
