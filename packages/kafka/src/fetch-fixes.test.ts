import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { decodeRecordBatch, fetchFixInstalled, replacedFetchModule } from './fetch-fixes.js';
import { kafkajsModule } from './kafkajs-modules.js';

const require = createRequire(import.meta.url);

/** kafkajs's own batch decoder, compiled from its source (the module cache now holds the fix). */
function kafkajsDecoder(): typeof decodeRecordBatch {
  const module = { exports: undefined as unknown };
  new Function('module', 'require', readFileSync(replacedFetchModule, 'utf8'))(module, createRequire(replacedFetchModule));
  return module.exports as typeof decodeRecordBatch;
}

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
async function batch(next: () => number, options: { compression: number; firstOffset: string; firstTimestamp: string; transactional: boolean; count: number }): Promise<Buffer> {
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
    maxTimestamp: options.firstTimestamp,
    producerId: Long.fromNumber(4711),
    producerEpoch: 2,
    firstSequence: 9,
    transactional: options.transactional,
    lastOffsetDelta: records.length - 1,
  });
  // RecordBatch starts with a zero first offset; the broker's is the batch's real one.
  const bytes = Buffer.from(recordBatch.buffer);
  const encoder = new Encoder();
  encoder.writeInt64(Long.fromString(options.firstOffset));
  return Buffer.concat([encoder.buffer, bytes.subarray(8)]);
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
    ];
    for (const options of cases) {
      const bytes = await batch(next, options);
      // Two batches back to back, as in a fetch response: each decoder leaves the next one's bytes.
      const twice = Buffer.concat([bytes, bytes]);
      const ours = new Decoder(twice);
      const theirs = new Decoder(twice);
      for (let round = 0; round < 2; round++) {
        const [mine, kafkajs] = [await decodeRecordBatch(ours), await original(theirs)];
        expect(mine, JSON.stringify(options)).toEqual(kafkajs);
        expect(ours.offset).toBe(theirs.offset);
      }
      expect((await decodeRecordBatch(new Decoder(bytes))).records).toHaveLength(options.count);
    }
  });

  it('refuses a partial batch the way kafkajs does', async () => {
    const bytes = await batch(random(9), { compression: Types.None, firstOffset: '0', firstTimestamp: '1', transactional: false, count: 10 });
    await expect(decodeRecordBatch(new Decoder(bytes.subarray(0, bytes.length - 5)))).rejects.toThrow(/partial record batch/);
  });
});
