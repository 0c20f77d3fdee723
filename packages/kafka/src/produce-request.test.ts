import { Buffer } from 'node:buffer';
import type { OutgoingRecord } from '@eddy/core';
import { crc32c, readRecordsBatch, Reader } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { encodeBatch } from './produce-request.js';

const text = (value: string) => new TextEncoder().encode(value);

describe('encodeBatch: a record batch as the broker reads it', () => {
  const records: OutgoingRecord[] = [
    { topic: 't', partition: 2, key: text('sensor-1'), value: text('{"v":1}'), timestamp: 1_700_000_000_000, headers: { trace: 'abc', 'ü': 'ß' } },
    { topic: 't', partition: 2, key: null, value: null, timestamp: 1_699_999_999_000 },
    { topic: 't', partition: 2, key: text(''), value: text('x'.repeat(300)), timestamp: 1_700_000_000_500, headers: {} },
  ];

  it('decodes with the client’s own decoder to the same records, with a valid CRC-32C', () => {
    const batch = encodeBatch(records, { producerId: 42n, producerEpoch: 3, transactional: true }, 17);
    expect(batch.readInt32BE(8)).toBe(batch.length - 12);
    expect(batch.readUInt32BE(17)).toBe(crc32c(batch.subarray(21)) >>> 0);
    const decoded = readRecordsBatch(Reader.from(batch));
    expect(decoded).toMatchObject({ magic: 2, producerId: 42n, producerEpoch: 3, firstSequence: 17, lastOffsetDelta: 2, firstTimestamp: 1_700_000_000_000n, maxTimestamp: 1_700_000_000_500n });
    expect(decoded.attributes & 0b1_0000).not.toBe(0);
    const read = decoded.records.map((record) => ({
      offsetDelta: record.offsetDelta,
      timestamp: Number(decoded.firstTimestamp + record.timestampDelta),
      key: record.key === null ? null : Buffer.from(record.key).toString(),
      value: record.value === null ? null : Buffer.from(record.value).toString(),
      headers: record.headers.map(([name, value]) => [name?.toString(), value?.toString()]),
    }));
    expect(read).toEqual([
      { offsetDelta: 0, timestamp: 1_700_000_000_000, key: 'sensor-1', value: '{"v":1}', headers: [['trace', 'abc'], ['ü', 'ß']] },
      { offsetDelta: 1, timestamp: 1_699_999_999_000, key: null, value: null, headers: [] },
      { offsetDelta: 2, timestamp: 1_700_000_000_500, key: '', value: 'x'.repeat(300), headers: [] },
    ]);
  });

  it('marks a batch of an idempotent producer as not transactional', () => {
    const batch = encodeBatch(records.slice(0, 1), { producerId: 7n, producerEpoch: 0, transactional: false }, 0);
    expect(readRecordsBatch(Reader.from(batch)).attributes).toBe(0);
  });
});
