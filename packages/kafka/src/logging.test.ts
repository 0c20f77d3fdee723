import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { kafkaLogCreator } from './logging.js';

const { logLevel } = kafkajs;

function capture() {
  const lines: Array<[string, string, Record<string, unknown>]> = [];
  const write = (level: string) => (fields: Record<string, unknown>, message: string) => lines.push([level, message, fields]);
  return { lines, logger: { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') } };
}

describe('kafkaLogCreator', () => {
  it('routes kafkajs entries to the Eddy logger with their fields, at their level', () => {
    const { lines, logger } = capture();
    const log = kafkaLogCreator(logger)(logLevel.DEBUG);
    log({ namespace: 'Runner', level: logLevel.ERROR, label: 'ERROR', log: { timestamp: 'now', logger: 'kafkajs', message: 'Error when calling eachBatch', groupId: 'g' } });
    log({ namespace: 'Cluster', level: logLevel.INFO, label: 'INFO', log: { timestamp: 'now', message: 'connected' } });
    expect(lines).toEqual([
      ['error', 'Error when calling eachBatch', { component: 'kafkajs', namespace: 'Runner', groupId: 'g' }],
      ['info', 'connected', { component: 'kafkajs', namespace: 'Cluster' }],
    ]);
  });

  it('demotes what kafkajs handles itself and drops notices that do not apply', () => {
    const { lines, logger } = capture();
    const log = kafkaLogCreator(logger)(logLevel.DEBUG);
    const entry = (namespace: string, level: kafkajs.logLevel, message: string) => log({ namespace, level, label: '', log: { timestamp: 'now', message } });
    entry('Connection', logLevel.ERROR, 'Response Heartbeat(key: 12, version: 3)');
    entry('Runner', logLevel.WARN, 'The group is rebalancing, re-joining');
    entry('Consumer', logLevel.ERROR, 'Crash: KafkaJSNumberOfRetriesExceeded: boom');
    entry('Producer', logLevel.WARN, 'Limiting retries for the idempotent producer may invalidate EoS guarantees');
    expect(lines.map(([level, message]) => [level, message])).toEqual([
      ['debug', 'Response Heartbeat(key: 12, version: 3)'],
      ['info', 'The group is rebalancing, re-joining'],
      ['debug', 'Crash: KafkaJSNumberOfRetriesExceeded: boom'],
    ]);
  });
});
