import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { committedRecords } from './member.js';

type Partition = Parameters<typeof committedRecords>[1];
type Batch = NonNullable<Partition['records']>[number];

const TRANSACTIONAL = 0b1_0000;
const CONTROL = 0b10_0000;
const LOG_APPEND_TIME = 0b1000;

/** A record batch of `count` records from `first`, values their offsets. */
function batch(first: number, count: number, { producerId = -1n, attributes = 0, timestamp = 1_000n } = {}): Batch {
  return {
    firstOffset: BigInt(first),
    length: 0,
    partitionLeaderEpoch: 0,
    magic: 2,
    crc: 0,
    attributes,
    lastOffsetDelta: count - 1,
    firstTimestamp: timestamp,
    maxTimestamp: timestamp + 99n,
    producerId,
    producerEpoch: 0,
    firstSequence: 0,
    records: Array.from({ length: count }, (_, delta) => ({
      length: 0,
      attributes: 0,
      timestampDelta: BigInt(delta),
      offsetDelta: delta,
      key: null,
      value: Buffer.from(String(first + delta)),
      headers: delta === 0 ? [[Buffer.from('h'), Buffer.from('1')], [Buffer.from('h'), Buffer.from('2')], [Buffer.from('empty'), null]] : [],
    })) as Batch['records'],
  };
}

/** A transaction marker of `producerId` at `offset`: abort (type 0) or commit (type 1). */
function marker(offset: number, producerId: bigint, type: 0 | 1): Batch {
  const key = Buffer.alloc(4);
  key.writeInt16BE(0, 0);
  key.writeInt16BE(type, 2);
  const made = batch(offset, 1, { producerId, attributes: TRANSACTIONAL | CONTROL });
  return { ...made, records: [{ ...made.records[0]!, key, value: Buffer.alloc(6) }] };
}

const partition = (records: Batch[], aborted: Array<{ producerId: bigint; firstOffset: bigint }> = []): Partition => ({
  partitionIndex: 0,
  errorCode: 0,
  highWatermark: 0n,
  lastStableOffset: 0n,
  logStartOffset: 0n,
  abortedTransactions: aborted,
  preferredReadReplica: -1,
  records,
});

const values = (result: ReturnType<typeof committedRecords>) => result.records.map((record) => Number(record.value!.toString()));

describe('committedRecords: what a read_committed member delivers of a fetched partition', () => {
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
});
