/**
 * "What can go wrong and what you see": each row's metric, log line and event. The embedded broker
 * plays a log that refuses records or fails sends (a public MemoryTransport subclass handed to the
 * TestDriver); a rebalance runs on a shared memoryTransport() with two apps of one id.
 */
import { describe, expect, it } from 'vitest';
import { createApp, EddyError, MemoryTransport, memoryTransport, RecordsRejectedError, type AppState, type Logger, type OutgoingRecord, type RejectedRecord, type TopicPartitionOffset, type TransportProducer } from '@eddy/core';
import { TestDriver, mulberry32 } from '@eddy/core/testing';

type Line = { level: string; message: string; fields: Record<string, unknown> };
function recording(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, message: string) => void lines.push({ level, message, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
const count = (logger: { lines: Line[] }, level: string, message: string | RegExp) =>
  logger.lines.filter((l) => l.level === level && (typeof message === 'string' ? l.message === message : message.test(l.message))).length;

class Refusing extends MemoryTransport {
  refuse: (record: OutgoingRecord) => string | undefined = () => undefined;
  down = false;
  override async createProducer(): Promise<TransportProducer> {
    return {
      send: async (records): Promise<readonly TopicPartitionOffset[]> => {
        if (this.down && records.some((record) => record.topic !== 'in')) throw new EddyError('TRANSPORT_FAILED', 'the broker does not answer', { retriable: true });
        const refused: RejectedRecord[] = [];
        const accepted: OutgoingRecord[] = [];
        for (const record of records) {
          const reason = this.refuse(record);
          if (reason === undefined) accepted.push(record);
          else refused.push({ record, reason, error: new EddyError('RECORD_REJECTED', `refused: ${reason}`) });
        }
        const written = this.append(accepted);
        if (refused.length === 0) return written;
        throw new RecordsRejectedError(refused, written);
      },
      close: async () => undefined,
    };
  }
}

interface Ev { k: string; v: number; ts: number }
const keyOf = (record: OutgoingRecord) => (record.key ? new TextDecoder().decode(record.key) : '');

function summing(id: string, logger: Logger, options: { onError?: 'stop' | 'dead-letter' } = {}) {
  const app = createApp({ id, idleTimeout: false, commitInterval: '1s', logger, stallTimeout: '5s', onError: options.onError ?? 'dead-letter' });
  app
    .from<Ev>('in', { timestamp: (e) => e.ts })
    .keyBy((e) => e.k)
    .tumbling(100)
    .sum((e) => e.v)
    .onClose((w) => ({ key: w.key, start: w.start, sum: w.value }))
    .to('out');
  return app;
}

describe('records the log refuses', () => {
  it('random input: each refused result is a dead letter (RECORD_REJECTED), a warn "the log refused a record", and not counted as written', async () => {
    const rand = mulberry32(99);
    const transport = new Refusing();
    transport.refuse = (record) => (record.topic === 'out' && keyOf(record).startsWith('bad') ? 'MESSAGE_TOO_LARGE' : undefined);
    const logger = recording();
    const app = summing('ref', logger);
    const driver = await TestDriver.start(app, { transport });
    const keys = ['ok0', 'ok1', 'ok2', 'bad0', 'bad1'];
    const windows = new Set<string>();
    let ts = 1_000;
    for (let i = 0; i < 300; i++) {
      ts += Math.floor(rand() * 20);
      const k = keys[Math.floor(rand() * keys.length)]!;
      await driver.send('in', { k, v: 1, ts }, { key: k });
      windows.add(`${k}@${Math.floor(ts / 100) * 100}`);
    }
    for (const k of keys) await driver.send('in', { k, v: 0, ts: ts + 10_000 }, { key: k }); // close all
    await driver.advanceTime('2s');
    const refusedWindows = [...windows].filter((id) => id.startsWith('bad')).length;
    const okWindows = windows.size - refusedWindows;
    const out = driver.read('out');
    expect(out).toHaveLength(okWindows);
    const dead = driver.read('ref-dlq');
    expect(dead).toHaveLength(refusedWindows);
    for (const d of dead) expect(d.headers).toMatchObject({ 'error.code': 'RECORD_REJECTED', 'error.reason': 'MESSAGE_TOO_LARGE', step: 'to out' });
    const m = app.metrics();
    expect(m.deadLetters).toBe(refusedWindows);
    expect(count(logger, 'warn', 'the log refused a record'), 'one warn per refused record').toBe(refusedWindows);
    expect(m.recordsOut, 'recordsOut counts records written to topics, not refused ones').toBe(out.length);
    expect(app.health()).toEqual({ status: 'ok', reasons: [] });
    await driver.stop();
  });

  it('a refused state change: error log "a task cannot go on", error STATE_FAILED once, failed', async () => {
    const transport = new Refusing();
    transport.refuse = (record) => (record.topic.endsWith('-changelog') && (record.value?.byteLength ?? 0) > 0 ? 'MESSAGE_TOO_LARGE' : undefined);
    const logger = recording();
    const app = summing('ref-state', logger);
    const errors: EddyError[] = [];
    app.on('error', (error) => errors.push(error));
    const driver = await TestDriver.start(app, { transport });
    await driver.send('in', { k: 'a', v: 1, ts: 1_000 }, { key: 'a' });
    await driver.advanceTime('2s').catch(() => undefined);
    await app.stop();
    expect(errors.map((e) => e.code)).toEqual(['STATE_FAILED']);
    expect(count(logger, 'error', /^a task cannot go on/)).toBeGreaterThanOrEqual(1);
    expect(app.state).toBe('failed');
    expect(app.health().status).toBe('failed');
    expect(app.metrics('prometheus')).toMatch(/eddy_healthy\{app="ref-state"\} 0/);
  });
});

describe('the broker down: sends and commits fail', () => {
  it('warn "send failed" and "commit failed", commitFailures counts each failed commit, nothing produced is lost, all recovers', async () => {
    const transport = new Refusing();
    const logger = recording();
    const app = summing('down', logger);
    const driver = await TestDriver.start(app, { transport });
    await driver.send('in', { k: 'a', v: 1, ts: 1_000 }, { key: 'a' });
    await driver.advanceTime('1s');
    expect(app.metrics().commitFailures).toBe(0);
    transport.down = true;
    await driver.send('in', { k: 'a', v: 2, ts: 1_200 }, { key: 'a' }); // closes [1000, 1100)
    await driver.advanceTime('3500ms');
    const failures = app.metrics().commitFailures;
    expect(failures).toBeGreaterThanOrEqual(3);
    expect(count(logger, 'warn', /^send failed/), 'warn send failed').toBeGreaterThan(0);
    expect(count(logger, 'warn', 'commit failed'), 'one warn per failed commit').toBe(failures);
    expect(Math.max(...Object.values(app.metrics().lastCommitAgeMs))).toBeGreaterThanOrEqual(3_000);
    expect(app.health().status, 'not yet stallTimeout').toBe('ok');
    await driver.advanceTime('3s');
    expect(app.health().status).toBe('degraded');
    transport.down = false;
    await driver.advanceTime('2s');
    expect(app.health()).toEqual({ status: 'ok', reasons: [] });
    expect(driver.read('out').map((o) => o.value)).toEqual([{ key: 'a', start: 1_000, sum: 1 }]);
    expect(app.metrics().recordsOut).toBe(1);
    await driver.stop();
  });
});

describe('a rebalance, seen in logs and metrics', () => {
  it('the joining app logs info "partitions assigned" and "state restored", and restoredRecords says how many', async () => {
    const transport = memoryTransport({ defaultPartitions: 4 });
    const first = recording();
    const second = recording();
    const build = (logger: Logger) => {
      const app = createApp({ id: 'rb', transport, idleTimeout: false, commitInterval: '100ms', logger });
      app.from<Ev>('in', { timestamp: (e) => e.ts }).keyBy((e) => e.k).tumbling('1h').count().toStream().to('out');
      return app;
    };
    const a = build(first);
    const states: AppState[] = [];
    a.on('state', (state) => states.push(state));
    await a.start();
    for (let i = 0; i < 40; i++) await a.send('in', { k: `k${i % 8}`, v: 1, ts: 1_000 + i }, { key: `k${i % 8}` });
    const until = async (what: () => boolean) => {
      for (let i = 0; i < 200 && !what(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(what()).toBe(true);
    };
    await until(() => a.metrics().recordsIn === 40 && a.metrics().windowsOpen === 8);
    await new Promise((resolve) => setTimeout(resolve, 300)); // a commit or two
    const b = build(second);
    await b.start();
    await until(() => a.state === 'running' && b.metrics().tasks > 0 && a.metrics().tasks + b.metrics().tasks === 8);
    expect(states).toContain('rebalancing');
    const restoredLines = second.lines.filter((l) => l.level === 'info' && l.message === 'state restored');
    expect(b.metrics().restoredRecords).toBeGreaterThan(0);
    expect(restoredLines.reduce((n, l) => n + Number(l.fields['records']), 0)).toBe(b.metrics().restoredRecords);
    expect(count(second, 'info', /partitions assigned/), 'info partitions assigned (joining app)').toBeGreaterThan(0);
    expect(count(first, 'info', /partitions assigned/), 'info partitions assigned (app that gave some up)').toBeGreaterThan(0);
    await b.stop();
    await a.stop();
  }, 30_000);
});
