/**
 * The app's life as the host sees it. Under onError 'stop' a bad record emits error once (an
 * EddyError with its code and cause), then the app is failed, takes no more records and commits
 * nothing past the bad one. Bad options, window options and a topology with a loop are refused
 * with CONFIG_INVALID. On a real clock each state is announced once, stop() is safe twice, during
 * start() and before it, sends after stop reject, and an error listener that throws is logged.
 */
import { describe, expect, it } from 'vitest';
import { createApp, EddyError, memoryTransport, type AppState } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { recording, r, type Reading } from './helpers.ts';

function build(opts: { onError?: 'stop' | 'dead-letter'; id?: string; transport?: ReturnType<typeof memoryTransport> } = {}) {
  const logger = recording();
  const app = createApp({ id: opts.id ?? 'life', idleTimeout: false, onError: opts.onError ?? 'dead-letter', logger, transport: opts.transport });
  app.from<Reading>('in', { timestamp: (v) => v.ts })
    .map((v) => { if (v.sensor === 'bad') throw new Error('bad map'); return v; })
    .keyBy((v) => v.sensor).count({ name: 'counts' });
  app.from<Reading>('in2').to('out2');
  return { app, logger };
}

describe("onError: 'stop'", () => {
  it('emits error once (EddyError with code, cause), then failed; failure and health set; stops taking records', async () => {
    const { app } = build({ onError: 'stop' });
    const events: string[] = [];
    const errors: unknown[] = [];
    app.on('state', (s, p) => events.push(`${p}->${s}`));
    app.on('error', (e) => { errors.push(e); events.push(`error:${e.code}`); });
    const driver = await TestDriver.start(app);
    await driver.send('in', r('a', 1, 1));
    await driver.send('in', r('bad', 1, 2)).catch(() => undefined);
    await driver.send('in', r('bad', 1, 3)).catch(() => undefined);
    await driver.advanceTime('5s').catch(() => undefined);
    expect(errors).toHaveLength(1);
    const e = errors[0] as EddyError;
    expect(e).toBeInstanceOf(EddyError);
    expect(e.code).toBe('HANDLER_FAILED');
    expect(e.cause).toBeInstanceOf(Error);
    expect(String((e.cause as Error).message)).toContain('bad map');
    expect(app.state).toBe('failed');
    expect(app.failure).toBe(e);
    const h = app.health();
    expect(h.status).toBe('failed');
    expect(h.reasons.length).toBeGreaterThan(0);
    expect(h.reasons.join('\n')).toContain('HANDLER_FAILED');
    expect(events).toEqual(['created->starting', 'starting->running', 'error:HANDLER_FAILED', 'running->failed']);
    expect(driver.read('life-dlq')).toHaveLength(0);
    // takes no more records
    await expect(app.send('in2', r('a', 1, 1))).rejects.toBeInstanceOf(EddyError);
    await expect(app.store('counts').get('a')).rejects.toMatchObject({ code: 'APP_STATE' });
    await app.stop();
    await app.stop();
    expect(app.state).toBe('failed');
    expect(errors).toHaveLength(1);
    expect(events).toEqual(['created->starting', 'starting->running', 'error:HANDLER_FAILED', 'running->failed']);
  });

  it('commits nothing past the bad record: a restart (dead-letter) sees it again', async () => {
    const transport = memoryTransport();
    const first = build({ onError: 'stop', transport }).app;
    await first.start();
    await first.send('in', r('a', 1, 1));
    await first.send('in', r('bad', 1, 2));
    await first.send('in', r('a', 1, 3));
    for (let i = 0; i < 50 && first.state !== 'failed'; i++) await new Promise((res) => setTimeout(res, 20));
    expect(first.state).toBe('failed');
    await first.stop();
    const second = build({ transport }).app;
    await second.start();
    for (let i = 0; i < 50 && second.metrics().deadLetters < 1; i++) await new Promise((res) => setTimeout(res, 20));
    expect(second.metrics().deadLetters).toBe(1);
    await new Promise((res) => setTimeout(res, 100));
    expect(await second.store('counts').get('a')).toBe(2);
    await second.stop();
  });
});

describe('misconfiguration', () => {
  it('createApp with a bad option throws a ConfigError naming the value', () => {
    for (const [opt, bad] of [['onError', 'ignore'], ['time', 'wall'], ['guarantee', 'maybe'], ['commitInterval', 'soon'], ['idleTimeout', 'xx'], ['commitInterval', -5], ['id', ''], ['stallTimeout', 'abc']] as const) {
      let thrown: unknown;
      try {
        const app = createApp({ id: 'cfg', [opt]: bad } as never);
        app.from('a').to('b');
        thrown = undefined;
      } catch (e) { thrown = e; }
      expect(thrown, `${opt}=${String(bad)}`).toBeInstanceOf(EddyError);
      expect((thrown as EddyError).code, opt).toBe('CONFIG_INVALID');
      expect(String((thrown as Error).message), opt).toContain(String(bad) === '' ? 'id' : String(bad));
    }
  });

  it('bad window options throw ConfigError with the value', () => {
    const app = createApp({ id: 'cfg' });
    const k = app.from<Reading>('a').keyBy((v) => v.sensor);
    for (const f of [() => k.tumbling('ten' as never), () => k.tumbling(0), () => k.tumbling(-10), () => k.hopping(1000, 0), () => k.hopping(1000, 2000), () => k.session(-1), () => k.countWindow(0), () => k.tumbling('1s', { grace: -5 }), () => k.tumbling(Number.NaN)]) {
      let thrown: unknown;
      try { f(); } catch (e) { thrown = e; }
      expect(thrown, String(f)).toBeInstanceOf(EddyError);
      expect((thrown as EddyError).code, String(f)).toBe('CONFIG_INVALID');
    }
  });

  it('start() of an app with a loop rejects with CONFIG_INVALID, state failed, no error event', async () => {
    const app = createApp({ id: 'loop', logger: recording() });
    app.from('t').map((v) => v).to('t');
    const errors: unknown[] = [];
    app.on('error', (e) => errors.push(e));
    await expect(app.start()).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('t') });
    expect(app.state).toBe('failed');
    expect(app.failure?.code).toBe('CONFIG_INVALID');
    expect(errors).toEqual([]);
    expect(app.health().status).toBe('failed');
  });
});

describe('lifecycle on a real clock', () => {
  it('start → stop states, once each; stop twice and concurrently safe; sends after stop reject', async () => {
    const { app } = build();
    const seen: Array<[AppState, AppState]> = [];
    const off = app.on('state', (s, p) => seen.push([s, p]));
    expect(app.state).toBe('created');
    const starting = app.start();
    expect(app.state).toBe('starting');
    expect(app.health().status).toBe('degraded');
    await starting;
    expect(app.state).toBe('running');
    expect(app.health()).toEqual({ status: 'ok', reasons: [] });
    await app.send('in', r('a', 1, 1));
    await Promise.all([app.stop(), app.stop()]);
    await app.stop();
    expect(seen).toEqual([['starting', 'created'], ['running', 'starting'], ['stopping', 'running'], ['stopped', 'stopping']]);
    off(); off();
    await expect(app.send('in', r('a', 1, 1))).rejects.toMatchObject({ code: 'APP_STOPPED' });
    await expect(app.sendBatch('in', [{ value: r('a', 1, 1) }])).rejects.toMatchObject({ code: 'APP_STOPPED' });
    await expect(app.store('counts').get('a')).rejects.toMatchObject({ code: 'APP_STATE' });
    await expect(app.start()).rejects.toBeInstanceOf(EddyError);
    expect(app.failure).toBeUndefined();
    expect(app.health().status).toBe('failed');
  });

  it('stop() during start()', async () => {
    const { app } = build();
    const seen: AppState[] = [];
    app.on('state', (s) => seen.push(s));
    const starting = app.start();
    const stopping = app.stop();
    await Promise.allSettled([starting]);
    await stopping;
    expect(app.state).toBe('stopped');
    expect(seen.at(-1)).toBe('stopped');
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('stop() before start()', async () => {
    const { app } = build();
    await expect(app.stop()).resolves.toBeUndefined();
    expect(['created', 'stopped']).toContain(app.state);
  });

  it('send before start', async () => {
    const { app } = build();
    const p = app.send('in', r('a', 1, 1));
    const result = await Promise.race([p.then(() => 'ok', (e) => e), new Promise((res) => setTimeout(() => res('hang'), 500))]);
    expect(result, String(result)).not.toBe('hang');
    if (result !== 'ok') expect(result).toBeInstanceOf(EddyError);
  });

  it('a throwing error listener is logged and does not disturb; removed error listeners hear nothing', async () => {
    const { app, logger } = build({ onError: 'stop' });
    const heard: unknown[] = [];
    app.on('error', () => { throw new Error('careless'); });
    const off = app.on('error', (e) => heard.push(e));
    off();
    const driver = await TestDriver.start(app);
    await driver.send('in', r('bad', 1, 1)).catch(() => undefined);
    expect(app.state).toBe('failed');
    expect(heard).toEqual([]);
    expect(logger.lines.some((l) => /careless/.test(JSON.stringify(l.fields)) || /careless/.test(l.message))).toBe(true);
    await app.stop();
  });

  it('host stop() emits no error event', async () => {
    const { app } = build();
    const errors: unknown[] = [];
    app.on('error', (e) => errors.push(e));
    const d = await TestDriver.start(app);
    await d.stop();
    expect(errors).toEqual([]);
  });
});
