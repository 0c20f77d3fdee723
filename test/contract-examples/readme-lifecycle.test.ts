/**
 * README "The app's life, seen from the host" and DESIGN second wave (lifecycle), plus
 * "Errors and dead letters".
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, EddyError, createApp, silentLogger, type AppState } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';

interface Reading { sensor: string; value: number; ts: number }

describe('README: the app\'s life', () => {
  it('state, on("state", (state, previous)) with its remover, health() { status, reasons }', async () => {
    const app = createApp({ id: 'life', logger: silentLogger });
    app.from<Reading>('readings').map(r => r.value).to('values');
    const log: Array<{ state: AppState; previous: AppState }> = [];
    expect(app.state).toBe('created');
    expect(app.health()).toEqual({ status: 'degraded', reasons: [expect.any(String)] });
    const off = app.on('state', (state, previous) => log.push({ state, previous }));
    expect(typeof off).toBe('function');
    app.on('error', (error) => { throw new Error(`unexpected ${error.code}`); });
    expect(app.failure).toBeUndefined();
    await app.start();
    expect(app.state).toBe('running');
    const health = app.health();
    expect(health).toEqual({ status: 'ok', reasons: [] });
    expect(log).toEqual([{ state: 'starting', previous: 'created' }, { state: 'running', previous: 'starting' }]);
    off();                                                  // each on() returns its remover
    await app.stop();
    expect(app.state).toBe('stopped');
    expect(log).toHaveLength(2);
    expect(app.health().status).toBe('failed');
    expect(app.health().reasons.length).toBeGreaterThan(0);
  });

  it('every change is announced once with the previous state, stopping → stopped', async () => {
    const app = createApp({ id: 'life2', logger: silentLogger });
    app.from('in').to('out');
    const seen: string[] = [];
    app.on('state', (state, previous) => void seen.push(`${previous}->${state}`));
    await app.start();
    await app.stop();
    expect(seen).toEqual(['created->starting', 'starting->running', 'running->stopping', 'stopping->stopped']);
  });

  it("onError: 'stop': error once with an EddyError, then state failed; failure kept; health failed", async () => {
    const app = createApp({ id: 'stopper', onError: 'stop', logger: silentLogger });
    app.from<Reading>('readings').map(r => { if (r.value < 0) throw new Error('negative'); return r.value; }).to('values');
    const errors: EddyError[] = [];
    const states: AppState[] = [];
    app.on('error', (error) => errors.push(error));   // once, when it stops on its own
    app.on('state', (state) => states.push(state));
    const driver = await TestDriver.start(app);
    await driver.send('readings', { sensor: 'a', value: 1, ts: 0 });
    await driver.send('readings', { sensor: 'a', value: -1, ts: 0 }).catch(() => undefined);
    await driver.advanceTime('1s').catch(() => undefined);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(EddyError);
    expect(errors[0]!.code).toBe('HANDLER_FAILED');
    expect(errors[0]!.cause).toBeDefined();
    expect(typeof errors[0]!.retriable).toBe('boolean');
    expect(app.state).toBe('failed');
    expect(states.at(-1)).toBe('failed');
    expect(app.failure).toBe(errors[0]);
    expect(app.health().status).toBe('failed');
    expect(driver.read('values').map(r => r.value)).toEqual([1]);
    await app.stop();
  });
});

describe('README: Errors and dead letters', () => {
  it('a bad record goes to <id>-dlq with headers error, error.code, step, task, topic, partition, offset; processing continues', async () => {
    const app = createApp({ id: 'dl', logger: silentLogger });
    app.from<Reading>('readings').keyBy(r => { if (r.sensor === 'bad') throw new Error('nope'); return r.sensor; }).count().toStream().to('counts');
    const driver = await TestDriver.start(app);
    await driver.send('readings', { sensor: 'a', value: 1, ts: 0 });
    await driver.send('readings', { sensor: 'bad', value: 1, ts: 0 }, { key: 'kb' });
    await driver.send('readings', { sensor: 'a', value: 1, ts: 0 });
    expect(driver.read('counts').map(r => r.value)).toEqual([1, 2]);
    const dead = driver.read('dl-dlq');
    expect(dead).toHaveLength(1);
    const headers = dead[0]!.headers;
    for (const h of ['error', 'error.code', 'step', 'task', 'topic', 'partition', 'offset']) expect(headers[h], h).toBeDefined();
    expect(headers['error.code']).toBe('KEY_FUNCTION_FAILED');
    expect(headers.topic).toBe('readings');
    expect(headers.offset).toBe('1');
    expect(app.metrics().deadLetters).toBe(1);
    await driver.stop();
  });

  it('a window handler that throws: dead letter holds { start, end, value } keyed by the key as JSON, HANDLER_FAILED', async () => {
    const app = createApp({ id: 'wh', idleTimeout: false, logger: silentLogger });
    app.from<Reading>('readings', { timestamp: r => r.ts }).keyBy(r => r.sensor).tumbling('1s').count()
      .onClose(w => { if (w.key === 'x') throw new Error('boom'); return w.value; }).to('out');
    const driver = await TestDriver.start(app);
    await driver.send('readings', { sensor: 'x', value: 1, ts: 100 });
    await driver.send('readings', { sensor: 'y', value: 1, ts: 200 });
    await driver.send('readings', { sensor: 'y', value: 1, ts: 1_500 });
    expect(driver.read('out')).toEqual([{ key: 'y', value: 1, timestamp: 999 }]);
    const dead = driver.read('wh-dlq');
    expect(dead).toHaveLength(1);
    expect(dead[0]!.value).toEqual({ start: 0, end: 1_000, value: 1 });
    expect(dead[0]!.key).toBe(JSON.stringify('x'));
    expect(dead[0]!.headers['error.code']).toBe('HANDLER_FAILED');
    await driver.stop();
  });

  it('a loop among the app\'s topics is refused at describe()/start() with a ConfigError naming the topic, unless { cycle: true }', async () => {
    const app = createApp({ id: 'loop' });
    app.from<number>('t').map(n => n + 1).to('t');
    expect(() => app.describe()).toThrow(ConfigError);
    expect(() => app.describe()).toThrow(/\bt\b/);
    const ok = createApp({ id: 'loop-ok' });
    ok.from<number>('jobs').filter(n => n < 3).map(n => n + 1).to('jobs', { cycle: true });
    const driver = await TestDriver.start(ok);
    await driver.send('jobs', 0);
    expect(driver.read('jobs').map(r => r.value)).toEqual([0, 1, 2, 3]);
    await driver.stop();
  });

  it('a timestamp that is not a finite number is dead-lettered with INVALID_TIMESTAMP', async () => {
    const app = createApp({ id: 'its', logger: silentLogger });
    app.from<Reading>('readings', { timestamp: r => r.ts }).keyBy(r => r.sensor).count().toStream().to('c');
    const driver = await TestDriver.start(app);
    await driver.send('readings', { sensor: 'a', value: 1, ts: Number.NaN });
    expect(driver.read('its-dlq')[0]!.headers['error.code']).toBe('INVALID_TIMESTAMP');
    await driver.stop();
  });
});

describe('send after stop', () => {
  it('app.send on a stopped app rejects with an EddyError', async () => {
    const app = createApp({ id: 'sent', logger: silentLogger });
    app.from('in').to('out');
    await app.start();
    await app.stop();
    await expect(app.send('in', 1)).rejects.toBeInstanceOf(EddyError);
    await expect(app.sendBatch('in', [{ value: 1 }])).rejects.toBeInstanceOf(EddyError);
  });
});
