import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

/** What a fresh Node process (the built package) reports, with or without kafkajs loaded first. */
const root = fileURLToPath(new URL('../../..', import.meta.url));
const inFreshProcess = (script: string): string => execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' }).trim().split('\n').at(-1)!;

function flagsInFreshProcess(kafkajsFirst: boolean): { producer: boolean; fetch: boolean; warned: boolean; lazy: boolean } {
  const script = `
    ${kafkajsFirst ? "await import('kafkajs');" : ''}
    const { producerFixesInstalled, fetchFixInstalled, kafkaTransport } = await import('@eddy/kafka');
    const warnings = [];
    const logger = { warn: (fields, message) => warnings.push(message), error() {}, info() {}, debug() {}, trace() {}, fatal() {}, child() { return logger; } };
    // connect() warns before it dials; the refused dial is not what this checks.
    await kafkaTransport({ brokers: ['127.0.0.1:1'], logger, logLevel: 'nothing', retry: { retries: 0 } }).connect().catch(() => {});
    // Whether kafkajs's fetches decode record batches lazily (Eddy's decoder is in place).
    const { createRequire } = await import('node:module');
    const decoder = createRequire(process.cwd() + '/packages/kafka/package.json')('kafkajs/src/protocol/recordBatch/v0/decoder.js');
    console.log(JSON.stringify({ producer: producerFixesInstalled, fetch: fetchFixInstalled, warned: warnings.some((message) => message.includes('import @eddy/kafka first')), lazy: decoder.name === 'decodeRecordBatch' }));
  `;
  return JSON.parse(inFreshProcess(script)) as { producer: boolean; fetch: boolean; warned: boolean; lazy: boolean };
}

describe('kafkajs fixes and load order', () => {
  it('apply when @eddy/kafka loads first', () => {
    expect(flagsInFreshProcess(false)).toEqual({ producer: true, fetch: true, warned: false, lazy: true });
  });

  it('cannot apply when kafkajs loaded first: the flags say so and the transport warns on connect', () => {
    // None of the fetch fix, not half of it: a lazy decoder without the code that turns its
    // records into kafkajs's would hand other consumers records they do not know.
    expect(flagsInFreshProcess(true)).toEqual({ producer: false, fetch: false, warned: true, lazy: false });
  });

  it('with two copies of @eddy/kafka on one kafkajs, each copy knows the lazy records of the other', () => {
    const copy = mkdtempSync(join(root, 'packages/kafka/.copy-'));
    try {
      cpSync(join(root, 'packages/kafka/dist'), join(copy, 'dist'), { recursive: true });
      const [first, second] = [join(root, 'packages/kafka/dist/fetch-fixes.js'), join(copy, 'dist/fetch-fixes.js')].map((path) => pathToFileURL(path).href);
      const script = `
        const first = await import(${JSON.stringify(first)});
        const second = await import(${JSON.stringify(second)});
        // A record decoded by the second copy: attributes, deltas, key 'k', value 'v', no headers.
        const bytes = Buffer.from([0, 0, 0, 2, 0x6b, 2, 0x76, 0]);
        const context = { firstOffset: '7', firstTimestamp: '5', maxTimestamp: '5', isControlBatch: false, magicByte: 2 };
        const record = new second.LazyRecord({ buffer: bytes, context, firstTimestamp: 5, appendTime: false }, 0, 7);
        const batch = { rawMessages: [record], messagesWithinOffset: [record], messages: [record] };
        first.materializeBatch(batch);
        const [plain] = batch.messages;
        console.log(JSON.stringify({ known: first.isLazyRecord(record), plain: Object.getPrototypeOf(plain) === Object.prototype, key: String(plain.key), value: String(plain.value), offset: plain.offset, same: batch.rawMessages[0] === plain }));
      `;
      expect(JSON.parse(inFreshProcess(script))).toEqual({ known: true, plain: true, key: 'k', value: 'v', offset: '7', same: true });
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});
