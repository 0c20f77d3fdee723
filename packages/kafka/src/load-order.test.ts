import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** What a fresh Node process (the built package) reports, with or without kafkajs loaded first. */
function flagsInFreshProcess(kafkajsFirst: boolean): { producer: boolean; fetch: boolean; warned: boolean } {
  const script = `
    ${kafkajsFirst ? "await import('kafkajs');" : ''}
    const { producerFixesInstalled, fetchFixInstalled, kafkaTransport } = await import('@eddy/kafka');
    const warnings = [];
    const logger = { warn: (fields, message) => warnings.push(message), error() {}, info() {}, debug() {}, trace() {}, fatal() {}, child() { return logger; } };
    // connect() warns before it dials; the refused dial is not what this checks.
    await kafkaTransport({ brokers: ['127.0.0.1:1'], logger, logLevel: 'nothing', retry: { retries: 0 } }).connect().catch(() => {});
    console.log(JSON.stringify({ producer: producerFixesInstalled, fetch: fetchFixInstalled, warned: warnings.some((message) => message.includes('import @eddy/kafka first')) }));
  `;
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
  return JSON.parse(output.trim().split('\n').at(-1)!) as { producer: boolean; fetch: boolean; warned: boolean };
}

describe('kafkajs fixes and load order', () => {
  it('apply when @eddy/kafka loads first', () => {
    expect(flagsInFreshProcess(false)).toEqual({ producer: true, fetch: true, warned: false });
  });

  it('cannot apply when kafkajs loaded first: the flags say so and the transport warns on connect', () => {
    expect(flagsInFreshProcess(true)).toEqual({ producer: false, fetch: false, warned: true });
  });
});
