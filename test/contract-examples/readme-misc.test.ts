/**
 * Smaller README statements: failed start() semantics, retention of the embedded broker, a topic
 * read twice, onLate once per missed window, sendBatch headers, an unheard error is not thrown.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, EddyError, createApp, memoryTransport, silentLogger, type Logger } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { levelTransport } from '@eddy/state';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface E { k: string; v: number; ts: number }

describe('README misc', () => {
  it("a start() that fails rejects, leaves state 'failed' with failure set, and emits no 'error' (exactly-once on levelTransport)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eddy-contract-'));
    const app = createApp({ id: 'eos', guarantee: 'exactly-once', transport: levelTransport({ dir }), logger: silentLogger });
    app.from('in').to('out');
    const errors: unknown[] = [];
    app.on('error', (error) => errors.push(error));
    const error = await app.start().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(app.state).toBe('failed');
    expect(app.failure).toBeInstanceOf(EddyError);
    expect(errors).toEqual([]);
    expect(app.health().status).toBe('failed');
    rmSync(dir, { recursive: true, force: true });
  });

  it('memoryTransport({ retention: { records } }) caps ordinary topics per partition; default unbounded', async () => {
    const capped = memoryTransport({ retention: { records: 2 } });
    const app = createApp({ id: 'ret', transport: capped, logger: silentLogger });
    app.from<number>('in').map(n => n).to('out');
    await app.start();
    for (let i = 0; i < 5; i++) await app.send('in', i, { key: 'a' });
    await capped.idle();
    expect(capped.records('in').map(r => r.offset)).toEqual([3, 4]);
    await app.stop();

    const unbounded = memoryTransport();
    const app2 = createApp({ id: 'ret2', transport: unbounded, logger: silentLogger });
    app2.from<number>('in').to('out');
    await app2.start();
    for (let i = 0; i < 5; i++) await app2.send('in', i, { key: 'a' });
    await unbounded.idle();
    expect(unbounded.records('in')).toHaveLength(5);
    await app2.stop();
  });

  it('a topic read twice is one source whose records flow down every branch', async () => {
    const app = createApp({ id: 'twice' });
    app.from<number>('in').map(n => n + 1).to('plus');
    app.from<number>('in').map(n => n * 2).to('times');
    const driver = await TestDriver.start(app);
    await driver.send('in', 5);
    expect(driver.read('plus').map(r => r.value)).toEqual([6]);
    expect(driver.read('times').map(r => r.value)).toEqual([10]);
    await driver.stop();
  });

  it('onLate gets { key, start, end, value, timestamp } once per missed window', async () => {
    const app = createApp({ id: 'late', idleTimeout: false });
    const windows = app.from<E>('in', { timestamp: r => r.ts }).keyBy(r => r.k).hopping('10s', '5s').count();
    windows.toStream().to('out');
    windows.onLate(late => late).to('late');
    const driver = await TestDriver.start(app);
    await driver.send('in', { k: 'a', v: 1, ts: 20_000 });
    await driver.send('in', { k: 'a', v: 2, ts: 7_000 });   // windows [0,10s) and [5s,15s): both closed
    expect(driver.read('late').map(r => r.value)).toEqual([
      { key: 'a', start: 0, end: 10_000, value: { k: 'a', v: 2, ts: 7_000 }, timestamp: 7_000 },
      { key: 'a', start: 5_000, end: 15_000, value: { k: 'a', v: 2, ts: 7_000 }, timestamp: 7_000 },
    ]);
    await driver.stop();
  });

  it('sendBatch delivers value, key, timestamp and headers', async () => {
    const app = createApp({ id: 'batch' });
    app.from<number>('in').map(n => n).to('out');
    const driver = await TestDriver.start(app);
    await app.sendBatch('in', [{ value: 1, key: 'k1', timestamp: 100, headers: { h: 'x' } }, { value: 2, key: 'k2', timestamp: 200, headers: {} }]);
    await driver.advanceTime(0);
    const input = driver.read('in');
    expect(input).toEqual([{ key: 'k1', value: 1, timestamp: 100 }, { key: 'k2', value: 2, timestamp: 200 }]);
    expect(input[0]!.headers).toEqual({ h: 'x' });
    expect(driver.read('out')).toEqual([{ key: 'k1', value: 1, timestamp: 100 }, { key: 'k2', value: 2, timestamp: 200 }]);
    await driver.stop();
  });

  it("an 'error' no listener hears is logged at error, never thrown into the host", async () => {
    const lines: Array<{ level: string; message: string }> = [];
    const logger: Logger = {
      debug: () => {}, info: () => {},
      warn: (_f: object, message: string) => void lines.push({ level: 'warn', message }),
      error: (_f: object, message: string) => void lines.push({ level: 'error', message }),
    } as unknown as Logger;
    const app = createApp({ id: 'unheard', onError: 'stop', logger });
    app.from<number>('in').map(n => { if (n < 0) throw new Error('neg'); return n; }).to('out');
    const driver = await TestDriver.start(app);
    await driver.send('in', -1).catch(() => undefined);
    expect(app.state === 'failed' || app.state === 'stopped').toBe(true);
    expect(app.failure?.code).toBe('HANDLER_FAILED');
    expect(lines.some(l => l.level === 'error')).toBe(true);
    await app.stop();
  });
});
