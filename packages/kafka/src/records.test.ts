import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { OutgoingMessage } from './producer-fixes.js';
import { toHeaders, toIncomingRecord, toKafkajsMessage, toKafkaMessage } from './records.js';

const bytes = (text: string) => new TextEncoder().encode(text);

describe('records', () => {
  it('sends keys and values as they are to the fixed produce request, headers only when there are some', () => {
    const key = bytes('sensor-1');
    const message = toKafkaMessage({ topic: 't', partition: 3, key, value: null, timestamp: 1_700_000_000_123, headers: { a: '1' } }) as unknown as OutgoingMessage;
    expect(message).toBeInstanceOf(OutgoingMessage);
    expect(message.key).toBe(key);
    expect([message.partition, message.value, message.timestampMs, message.timestamp, message.headers]).toEqual([3, null, 1_700_000_000_123, '1700000000123', { a: '1' }]);
    expect((toKafkaMessage({ topic: 't', partition: 0, key: null, value: bytes('v'), timestamp: 0, headers: {} }) as unknown as OutgoingMessage).headers).toBeUndefined();
  });

  it("without the fixes, sends kafkajs's messages: keys and values as Buffers over the same memory, timestamps as strings of ms", () => {
    const key = bytes('sensor-1');
    const message = toKafkajsMessage({ topic: 't', partition: 3, key, value: null, timestamp: 1_700_000_000_123, headers: { a: '1' } });
    expect(message).toEqual({ partition: 3, key: Buffer.from('sensor-1'), value: null, timestamp: '1700000000123', headers: { a: '1' } });
    expect((message.key as Buffer).buffer).toBe(key.buffer);
    expect(toKafkajsMessage({ topic: 't', partition: 0, key: null, value: bytes('v'), timestamp: 0, headers: {} })).not.toHaveProperty('headers');
  });

  it('reads kafkajs messages with numeric offsets and timestamps, keys and values as the fetched bytes (no copy, no new view)', () => {
    const key = Buffer.from('k');
    const value = Buffer.from('{"x":1}');
    const record = toIncomingRecord('t', 2, {
      key,
      value,
      timestamp: '1700000000123',
      offset: '41',
      attributes: 0,
      headers: { text: 'plain', raw: Buffer.from('Grüße'), repeated: [Buffer.from('first'), 'last'], missing: undefined },
    });
    expect(record).toEqual({
      topic: 't',
      partition: 2,
      offset: 41,
      key,
      value,
      timestamp: 1_700_000_000_123,
      headers: { text: 'plain', raw: 'Grüße', repeated: 'last' },
    });
    expect(record.key).toBe(key);
    expect(record.value).toBe(value);
    expect(record.value).toBeInstanceOf(Uint8Array);
    expect(toIncomingRecord('t', 0, { key: null, value: null, timestamp: '0', offset: '0', attributes: 0, headers: {} })).toMatchObject({ key: null, value: null, headers: {} });
  });

  it('has no headers when kafkajs gives none, and leaves out a header without a value', () => {
    expect(toHeaders(undefined)).toEqual({});
    expect(toHeaders({ none: null as unknown as undefined, kept: 'x' })).toEqual({ kept: 'x' });
  });
});
