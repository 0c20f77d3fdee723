import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it, vi } from 'vitest';
import { crc32c, encodeRecord, groupMessagesPerPartition, OutgoingMessage, produceRequest, producerFixesInstalled, replacedModules, type RecordFields } from './producer-fixes.js';

const require = createRequire(import.meta.url);

/** A kafkajs module as kafkajs wrote it, compiled from its source (the module cache now holds the fix). */
function original<T>(path: string): T {
  const module = { exports: undefined as unknown };
  new Function('module', 'require', readFileSync(path, 'utf8'))(module, createRequire(path));
  return module.exports as T;
}

function random(seed: number): () => number {
  return () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
}

describe('kafkajs producer fixes', () => {
  it('are what kafkajs producers in this process use', () => {
    expect(producerFixesInstalled).toBe(true);
    expect(replacedModules.map((path) => require.cache[path]?.exports)).toEqual([crc32c, groupMessagesPerPartition, encodeRecord, produceRequest]);
  });

  it('compute the CRC-32C of record batches like kafkajs: any length, any alignment', () => {
    const kafkajsCrc = original<(buffer: Buffer) => number>(replacedModules[0]!);
    const next = random(11);
    const bytes = Buffer.from(Array.from({ length: 5_000 }, () => Math.floor(next() * 256)));
    for (const length of [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1_000, 4_093]) {
      for (const start of [0, 1, 3, 5]) {
        const slice = bytes.subarray(start, start + length);
        expect(crc32c(slice), `length ${length} from ${start}`).toBe(kafkajsCrc(slice));
      }
    }
    // The standard check value of CRC-32C.
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('group messages by partition like kafkajs, each partition in the order given', () => {
    const next = random(7);
    const partitionMetadata = [{ partitionId: 0 }, { partitionId: 1 }, { partitionId: 2 }, { partitionId: 3 }];
    const partitioner = ({ message }: { message: { partition: number } }) => message.partition;
    const messages = Array.from({ length: 500 }, (_, index) => ({ partition: Math.floor(next() * 4), value: `m${index}` }));
    const args = { topic: 't', partitionMetadata, messages, partitioner };
    expect(groupMessagesPerPartition(args)).toEqual(original<typeof groupMessagesPerPartition>(replacedModules[1]!)(args));
    expect(groupMessagesPerPartition({ ...args, partitionMetadata: [] })).toEqual({});
  });

  it('encode records byte for byte like kafkajs', () => {
    const kafkajsRecord = original<(fields: RecordFields) => { buffer: Buffer }>(replacedModules[2]!);
    const next = random(11);
    const bytes = (max: number) => Buffer.from(Array.from({ length: Math.floor(next() * max) }, () => Math.floor(next() * 256)));
    const text = (max: number) => Array.from({ length: Math.floor(next() * max) }, () => String.fromCodePoint(32 + Math.floor(next() * 2000))).join('');
    const cases: RecordFields[] = [
      {},
      { key: null, value: null },
      { key: Buffer.alloc(0), value: Buffer.alloc(300), offsetDelta: 127, timestampDelta: -1 },
      { offsetDelta: 128, timestampDelta: 2 ** 40, key: 'text key', value: 'ünïcode value', headers: { a: 'b', repeated: ['x', Buffer.from('y')] } },
    ];
    for (let index = 0; index < 300; index++) {
      const headers: Record<string, string | Buffer> = {};
      for (let count = Math.floor(next() * 3); count > 0; count--) headers[text(10)] = next() < 0.5 ? text(40) : bytes(40);
      cases.push({
        offsetDelta: Math.floor(next() * 100_000),
        timestampDelta: Math.floor((next() - 0.3) * 2 ** (next() * 50)),
        key: next() < 0.2 ? null : bytes(50),
        value: next() < 0.1 ? null : next() < 0.5 ? text(400) : bytes(20_000),
        headers,
      });
    }
    for (const fields of cases) expect(encodeRecord(fields).buffer.equals(kafkajsRecord(fields).buffer), JSON.stringify(fields).slice(0, 200)).toBe(true);
  });

  it('write Produce requests byte for byte like kafkajs', async () => {
    type Request = (fields: Parameters<typeof produceRequest>[0]) => { apiKey: number; apiVersion: number; encode(): Promise<{ buffer: Buffer }> };
    const kafkajsRequest = original<Request>(replacedModules[3]!);
    const Long = require('kafkajs/src/utils/long.js') as { fromNumber(value: number): unknown };
    const next = random(5);
    const message = (index: number) => ({
      key: next() < 0.1 ? null : Buffer.from(`sensor-${Math.floor(next() * 100)}`),
      value: Buffer.from(JSON.stringify({ index, value: next() })),
      timestamp: String(1_700_000_000_000 + Math.floor(next() * 100_000)),
      ...(next() < 0.5 ? { headers: { 'eddy.origin': `${index}:0:in:3` } } : {}),
    });
    const topicData = [
      { topic: 'a', partitions: [{ partition: 0, firstSequence: 0, messages: Array.from({ length: 300 }, (_, index) => message(index)) }, { partition: 3, firstSequence: 17, messages: [message(1)] }] },
      { topic: 'b-ü', partitions: [{ partition: 1, firstSequence: 2, messages: Array.from({ length: 40 }, (_, index) => message(index)) }] },
    ];
    // Edge cases: no messages; messages without a timestamp, with a text key and value, and with a header repeated.
    const odd = [
      { key: 'text key', value: 'ünïcode', timestamp: null, headers: { a: 'b', repeated: ['x', Buffer.from('y')] } },
      { key: null, value: null, timestamp: '1700000000001' },
    ];
    const edges = [{ topic: 'c', partitions: [{ partition: 2, messages: [] }, { partition: 0, firstSequence: 5, messages: odd }] }];
    // Both stamp records without a timestamp with the time of encoding: the same time for both.
    vi.spyOn(Date, 'now').mockReturnValue(1_700_000_000_500);
    for (const fields of [
      { acks: -1, timeout: 30_000, topicData },
      { acks: 1, timeout: 5_000, transactionalId: 'app-0_1', producerId: Long.fromNumber(4711), producerEpoch: 3, topicData },
      { acks: -1, timeout: 30_000, compression: 1, topicData },
      { acks: 0, timeout: 1_000, topicData: edges },
    ]) {
      const ours = produceRequest(fields);
      const theirs = kafkajsRequest(fields);
      expect([ours.apiKey, ours.apiVersion, ours.expectResponse()]).toEqual([theirs.apiKey, theirs.apiVersion, fields.acks !== 0]);
      expect((await ours.encode()).buffer.equals((await theirs.encode()).buffer)).toBe(true);
    }
    vi.restoreAllMocks();
    // Headers null: both refuse.
    const nullHeaders = { acks: -1, timeout: 1_000, topicData: [{ topic: 'd', partitions: [{ partition: 0, messages: [{ value: 'v', headers: null }] }] }] };
    await expect(kafkajsRequest(nullHeaders as never).encode()).rejects.toThrow(TypeError);
    await expect(produceRequest(nullHeaders as never).encode()).rejects.toThrow(TypeError);
  });

  it("write an Eddy producer's messages (any Uint8Array as bytes) as kafkajs writes the same as Buffers", async () => {
    type Request = (fields: Parameters<typeof produceRequest>[0]) => { encode(): Promise<{ buffer: Buffer }> };
    const kafkajsRequest = original<Request>(replacedModules[3]!);
    const next = random(3);
    const plain = (bytes: Buffer): Uint8Array => new Uint8Array(bytes);
    const records = Array.from({ length: 200 }, (_, index) => ({
      key: next() < 0.1 ? null : Buffer.from(`sensor-${Math.floor(next() * 100)}`),
      value: next() < 0.05 ? null : Buffer.from(JSON.stringify({ index, value: next(), text: 'ü'.repeat(Math.floor(next() * 200)) })),
      timestamp: 1_700_000_000_000 + Math.floor(next() * 100_000),
      headers: next() < 0.3 ? { 'eddy.origin': `${index}:0:in:3`, other: 'ä' } : undefined,
    }));
    const theirs = records.map(({ key, value, timestamp, headers }) => ({ key, value, timestamp: String(timestamp), ...(headers ? { headers } : {}) }));
    const ours = records.map(({ key, value, timestamp, headers }) => new OutgoingMessage(1, key && plain(key), value && plain(value), timestamp, headers));
    for (const extra of [{}, { transactionalId: 'app-1_0', producerEpoch: 2 }, { compression: 1 }]) {
      const fields = (messages: readonly unknown[]) => ({ acks: -1, timeout: 30_000, ...extra, topicData: [{ topic: 'out', partitions: [{ partition: 1, firstSequence: 9, messages }] }] }) as Parameters<typeof produceRequest>[0];
      expect((await produceRequest(fields(ours)).encode()).buffer.equals((await kafkajsRequest(fields(theirs)).encode()).buffer), JSON.stringify(extra)).toBe(true);
    }
  });
});
