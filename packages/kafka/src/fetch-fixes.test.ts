import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { decodeRecordBatch, FetchedBatch, fetchFixInstalled, LazyRecord, materializeBatch, replacedBatchModule, replacedFetchModule, type FetchedPartition, type FetchedRecord } from './fetch-fixes.js';
import { toIncomingRecord } from './records.js';
import { kafkajsModule } from './kafkajs-modules.js';

const require = createRequire(import.meta.url);

/** A kafkajs module compiled from its source (the module cache now holds the fix). */
function kafkajsOriginal<T>(path: string): T {
  const module = { exports: undefined as unknown };
  new Function('module', 'require', readFileSync(path, 'utf8'))(module, createRequire(path));
  return module.exports as T;
}
const kafkajsDecoder = () => kafkajsOriginal<typeof decodeRecordBatch>(replacedFetchModule);

type Decoder = Parameters<typeof decodeRecordBatch>[0];
const Decoder = kafkajsModule<new (buffer: Buffer) => Decoder>('protocol/decoder.js');
const Encoder = kafkajsModule<new () => { writeInt64(value: unknown): unknown; writeBytes(value: Buffer): { buffer: Buffer }; buffer: Buffer }>('protocol/encoder.js');
const { RecordBatch } = kafkajsModule<{ RecordBatch: (fields: Record<string, unknown>) => Promise<{ buffer: Buffer }> }>('protocol/recordBatch/v0/index.js');
const encodeRecord = kafkajsModule<(fields: Record<string, unknown>) => unknown>('protocol/recordBatch/record/v0/index.js');
const Long = kafkajsModule<{ fromString(value: string): unknown; fromNumber(value: number): unknown }>('utils/long.js');
const { Types } = kafkajsModule<{ Types: { None: number; GZIP: number } }>('protocol/message/compression/index.js');

function random(seed: number): () => number {
  return () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
}

/** A record batch as a broker sends it: first offset, then the batch kafkajs's producer would write. */
async function batch(next: () => number, options: { compression: number; firstOffset: string; firstTimestamp: string; transactional: boolean; count: number; logAppendTime?: string }): Promise<Buffer> {
  const records = Array.from({ length: options.count }, (_, index) => {
    const headers: Record<string, string | string[]> = {};
    if (next() < 0.5) headers['eddy.origin'] = `${index}:0:in:2`;
    if (next() < 0.2) headers['twice'] = ['a', 'b'];
    return encodeRecord({
      offsetDelta: index,
      timestampDelta: Math.floor(next() * 5_000),
      key: next() < 0.2 ? null : Buffer.from(`sensor-${Math.floor(next() * 50)}`),
      value: next() < 0.1 ? null : Buffer.from(JSON.stringify({ index, value: next(), text: 'ü'.repeat(Math.floor(next() * 40)) })),
      headers,
    });
  });
  const recordBatch = await RecordBatch({
    compression: options.compression,
    records,
    firstTimestamp: options.firstTimestamp,
    maxTimestamp: options.logAppendTime ?? options.firstTimestamp,
    producerId: Long.fromNumber(4711),
    producerEpoch: 2,
    firstSequence: 9,
    transactional: options.transactional,
    lastOffsetDelta: records.length - 1,
  });
  // RecordBatch starts with a zero first offset; the broker's is the batch's real one.
  const bytes = Buffer.from(recordBatch.buffer);
  // Log-append time (the broker's clock; every record takes the batch's largest timestamp): the
  // timestamp type bit of the attributes, after first offset, length, leader epoch, magic and CRC.
  if (options.logAppendTime !== undefined) bytes[22] |= 0x08;
  const encoder = new Encoder();
  encoder.writeInt64(Long.fromString(options.firstOffset));
  return Buffer.concat([encoder.buffer, bytes.subarray(8)]);
}

/** Decoded batches with their lazy records turned into kafkajs's. */
const materialized = <T extends { records: ReadonlyArray<LazyRecord | FetchedRecord> }>(decoded: T) => ({
  ...decoded,
  records: decoded.records.map((record) => (record instanceof LazyRecord ? record.materialize() : record)),
});

/** Record batches of every kind the decoder meets, decoded by it. */
async function decodedCases(seed: number): Promise<Array<LazyRecord | FetchedRecord>> {
  const next = random(seed);
  const records: Array<LazyRecord | FetchedRecord> = [];
  for (const options of [
    { compression: Types.None, firstOffset: '0', firstTimestamp: '1700000000000', transactional: false, count: 100 },
    { compression: Types.GZIP, firstOffset: '500', firstTimestamp: '-1', transactional: true, count: 40 },
    { compression: Types.None, firstOffset: '9', firstTimestamp: '1700000000000', transactional: false, count: 30, logAppendTime: '1700000009999' },
  ]) {
    records.push(...(await decodeRecordBatch(new Decoder(await batch(next, options)))).records);
  }
  return records;
}

describe('decodeRecordBatch (kafkajs fetch fix)', () => {
  it('is what kafkajs fetches in this process use', () => {
    expect(fetchFixInstalled).toBe(true);
    expect(require.cache[replacedFetchModule]?.exports).toBe(decodeRecordBatch);
  });

  it('decodes record batches exactly like kafkajs: plain and compressed, transactional, any offsets', async () => {
    const original = kafkajsDecoder();
    const next = random(3);
    const cases = [
      { compression: Types.None, firstOffset: '0', firstTimestamp: '1700000000000', transactional: false, count: 200 },
      { compression: Types.None, firstOffset: '123456789', firstTimestamp: '-1', transactional: true, count: 50 },
      { compression: Types.GZIP, firstOffset: '42', firstTimestamp: '1700000000000', transactional: false, count: 120 },
      // Beyond 2^53: kafkajs's own record decoder takes over.
      { compression: Types.None, firstOffset: '9007199254740993', firstTimestamp: '1700000000000', transactional: false, count: 5 },
      { compression: Types.None, firstOffset: '7', firstTimestamp: '1700000000000', transactional: false, count: 0 },
      { compression: Types.None, firstOffset: '9', firstTimestamp: '1700000000000', transactional: false, count: 30, logAppendTime: '1700000009999' },
      { compression: Types.GZIP, firstOffset: '11', firstTimestamp: '1700000000000', transactional: true, count: 30, logAppendTime: '1700000009999' },
    ];
    for (const options of cases) {
      const bytes = await batch(next, options);
      // Two batches back to back, as in a fetch response: each decoder leaves the next one's bytes.
      const twice = Buffer.concat([bytes, bytes]);
      const ours = new Decoder(twice);
      const theirs = new Decoder(twice);
      for (let round = 0; round < 2; round++) {
        const [mine, kafkajs] = [await decodeRecordBatch(ours), await original(theirs)];
        expect(materialized(mine), JSON.stringify(options)).toEqual(kafkajs);
        expect(ours.offset).toBe(theirs.offset);
      }
      expect((await decodeRecordBatch(new Decoder(bytes))).records).toHaveLength(options.count);
    }
  });

  it('decodes records lazily, and each field read from a lazy record is what kafkajs decodes', async () => {
    const records = await decodedCases(5);
    expect(records.every((record) => record instanceof LazyRecord)).toBe(true);
    for (const record of records as LazyRecord[]) {
      const plain = record.materialize();
      const fields = { magicByte: record.magicByte, attributes: record.attributes, timestamp: record.timestamp, offset: record.offset, key: record.key, value: record.value, headers: record.headers, isControlRecord: record.isControlRecord, batchContext: record.batchContext };
      expect(fields).toEqual(plain);
      expect([record.offsetNumber, record.timestampNumber]).toEqual([Number(plain.offset), Number(plain.timestamp)]);
      expect(Object.keys(plain)).toEqual(['magicByte', 'attributes', 'timestamp', 'offset', 'key', 'value', 'headers', 'isControlRecord', 'batchContext']);
    }
  });

  it('gives an Eddy consumer the same record from a lazy record as from kafkajs\'s, key and value as plain views of the fetched bytes', async () => {
    const plain = (bytes: Uint8Array | null) => (bytes === null ? null : [...bytes]);
    for (const record of (await decodedCases(8)) as LazyRecord[]) {
      const lazy = toIncomingRecord('t', 1, record);
      const eager = toIncomingRecord('t', 1, record.materialize() as Parameters<typeof toIncomingRecord>[2]);
      expect({ ...lazy, key: plain(lazy.key), value: plain(lazy.value) }).toEqual({ ...eager, key: plain(eager.key), value: plain(eager.value) });
      for (const bytes of [lazy.key, lazy.value]) {
        if (bytes === null) continue;
        expect(bytes.constructor).toBe(Uint8Array);
        expect(bytes.buffer).toBe(record.buffer.buffer);
      }
    }
  });

  it('leaves out a header whose last value is missing, from a lazy record as from kafkajs\'s', () => {
    // kafkajs cannot write a header without a value; Kafka can. Attributes, timestamp and offset
    // deltas, key 'k', value 'v', then four headers: h = 'x', h = (none), n = (none), kept = 'y'.
    // Lengths are zigzag varints (-1: none).
    const ascii = (text: string) => [...text].map((char) => char.charCodeAt(0));
    const bytes = Buffer.from([0, 0, 0, 2, ...ascii('k'), 2, ...ascii('v'), 8, 2, ...ascii('h'), 2, ...ascii('x'), 2, ...ascii('h'), 1, 2, ...ascii('n'), 1, 8, ...ascii('kept'), 2, ...ascii('y')]);
    const context = { firstOffset: '0', firstTimestamp: '1', maxTimestamp: '1', isControlBatch: false, magicByte: 2 } as unknown as LazyRecord['batchContext'];
    const lazy = new LazyRecord({ buffer: bytes, context, firstTimestamp: 1, appendTime: false }, 0, 0);
    expect(lazy.headers).toEqual({ h: [Buffer.from('x'), null], n: null, kept: Buffer.from('y') });
    expect(toIncomingRecord('t', 0, lazy).headers).toEqual({ kept: 'y' });
    expect(toIncomingRecord('t', 0, lazy.materialize() as Parameters<typeof toIncomingRecord>[2]).headers).toEqual({ kept: 'y' });
  });

  it('refuses a partial batch the way kafkajs does', async () => {
    const bytes = await batch(random(9), { compression: Types.None, firstOffset: '0', firstTimestamp: '1', transactional: false, count: 10 });
    await expect(decodeRecordBatch(new Decoder(bytes.subarray(0, bytes.length - 5)))).rejects.toThrow(/partial record batch/);
  });
});

describe('FetchedBatch (kafkajs Batch fix)', () => {
  const KafkajsBatch = kafkajsOriginal<typeof FetchedBatch>(replacedBatchModule);
  type Message = { offset: string; isControlRecord: boolean; key: Buffer | null; batchContext: { producerId: string; inTransaction: boolean } };

  it('is what kafkajs consumers in this process use', () => {
    expect(fetchFixInstalled).toBe(true);
    expect(require(replacedBatchModule)).toBe(FetchedBatch);
  });

  /** A fetched partition: offsets from `first`, some transactional (producer 7 or 8), some control records. */
  function partition(next: () => number, first: number, count: number, withAborts: boolean): FetchedPartition & { messages: Message[] } {
    const messages: Message[] = [];
    for (let index = 0; index < count; index++) {
      const control = next() < 0.1;
      const producerId = next() < 0.5 ? '7' : '8';
      // A control record's key: version 0, then 0 for an abort marker, 1 for a commit marker.
      const key = control ? Buffer.from([0, 0, 0, next() < 0.5 ? 0 : 1]) : Buffer.from(`k${index}`);
      messages.push({ offset: String(first + index), isControlRecord: control, key, batchContext: { producerId, inTransaction: next() < 0.6 } });
    }
    const abortedTransactions = withAborts ? [{ producerId: '7', firstOffset: String(first + Math.floor(count / 3)) }, { producerId: '8', firstOffset: String(first + Math.floor(count / 2)) }] : [];
    return { partition: 3, highWatermark: String(first + count + 5), abortedTransactions, messages };
  }

  const view = (batch: InstanceType<typeof FetchedBatch>) => {
    const methods = batch as unknown as Record<string, () => unknown>;
    const calls = ['isEmpty', 'isEmptyIncludingFiltered', 'isEmptyDueToFiltering', 'isEmptyControlRecord', 'isEmptyDueToLogCompactedMessages', 'firstOffset', 'lastOffset', 'offsetLag', 'offsetLagLow'];
    return { rawMessages: batch.rawMessages, messagesWithinOffset: batch.messagesWithinOffset, messages: batch.messages, ...Object.fromEntries(calls.map((name) => [name, methods[name]!.call(batch)])) };
  };

  it.each([
    ['from the fetched offset', 100, 100, 60, false],
    ['starting before the fetched offset (a compressed batch)', 120, 100, 60, false],
    ['all before the fetched offset', 500, 100, 60, false],
    ['with aborted transactions', 100, 100, 80, true],
    ['starting before the fetched offset, with aborted transactions', 130, 100, 80, true],
    ['empty', 100, 100, 0, false],
    ['past 2^53 (kafkajs\'s own filter)', 2 ** 53 + 10, 2 ** 53, 30, false],
  ] as const)('holds what kafkajs\'s Batch holds: %s', (_name, fetched, first, count, withAborts) => {
    for (let seed = 1; seed <= 5; seed++) {
      const data = partition(random(seed), first, count, withAborts);
      const fetchedOffset = fetched > 2 ** 53 ? '9007199254741002' : String(fetched);
      const [ours, theirs] = [new FetchedBatch('t', fetchedOffset, data), new KafkajsBatch('t', fetchedOffset, data)];
      expect(view(ours), `seed ${seed}`).toEqual(view(theirs));
      expect({ topic: (ours as unknown as { topic: string }).topic, partition: (ours as unknown as { partition: number }).partition }).toEqual({ topic: 't', partition: 3 });
    }
  });

  it('holds what kafkajs\'s Batch holds for lazy records, and turned into kafkajs\'s records keeps which list shares which record', async () => {
    const records = await decodedCases(13);
    for (const [fetched, abortedTransactions] of [
      [0, []],
      [37, []],
      [120, []],
      [520, []],
      // The second batch is transactional (producer 4711): aborted from 510 on.
      [0, [{ producerId: '4711', firstOffset: '510' }]],
    ] as const) {
      const data = { partition: 3, highWatermark: '700', abortedTransactions: [...abortedTransactions], messages: records };
      const plain = { ...data, messages: records.map((record) => (record as LazyRecord).materialize()) };
      const ours = new FetchedBatch('t', String(fetched), data);
      materializeBatch(ours as unknown as Parameters<typeof materializeBatch>[0]);
      expect(view(ours), `fetched from ${fetched}`).toEqual(view(new KafkajsBatch('t', String(fetched), plain)));
      if (abortedTransactions.length > 0) expect(ours.messages.length).toBeLessThan(records.length);
      expect(ours.messages.every((message) => !(message instanceof LazyRecord))).toBe(true);
      expect(ours.messages.every((message) => ours.rawMessages.includes(message))).toBe(true);
    }
  });
});
