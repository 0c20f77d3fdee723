/**
 * Host callbacks that call back into the app: a state listener that calls stop() on 'starting'
 * or on 'running', one that removes another listener while a state is being announced, and a bad
 * record racing stop(). Each settles, announces every state once, and emits error at most once.
 */
import { describe, expect, it } from 'vitest';
import { createApp, EddyError, type AppState } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { recording, r, type Reading } from './helpers.ts';

const withTimeout = <T>(p: Promise<T>, ms = 3000) => Promise.race([p, new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), ms))]);

function build(onError: 'stop' | 'dead-letter' = 'dead-letter') {
  const logger = recording();
  const app = createApp({ id: 're', idleTimeout: false, onError, logger });
  app.from<Reading>('in', { timestamp: (v) => v.ts }).map((v) => { if (v.sensor === 'bad') throw new Error('bad'); return v; }).keyBy((v) => v.sensor).count({ name: 'counts' });
  return { app, logger };
}

describe('host callbacks that call back into the app', () => {
  it("a state listener that calls stop() on 'running'", async () => {
    const { app } = build();
    const states: AppState[] = [];
    app.on('state', (s) => { states.push(s); if (s === 'running') void app.stop(); });
    const res = await withTimeout(app.start().then(() => 'resolved', (e: unknown) => `rejected ${String(e)}`));
    expect(res).not.toBe('timeout');
    for (let i = 0; i < 50 && app.state !== 'stopped'; i++) await new Promise((r2) => setTimeout(r2, 10));
    expect(app.state).toBe('stopped');
    expect(states).toEqual(['starting', 'running', 'stopping', 'stopped']);
  });

  it("a state listener that calls stop() on 'starting'", async () => {
    const { app } = build();
    const states: AppState[] = [];
    app.on('state', (s) => { states.push(s); if (s === 'starting') void app.stop(); });
    const res = await withTimeout(app.start().then(() => 'resolved', (e: unknown) => `rejected ${String(e)}`));
    expect(res).not.toBe('timeout');
    for (let i = 0; i < 50 && app.state !== 'stopped'; i++) await new Promise((r2) => setTimeout(r2, 10));
    expect(app.state).toBe('stopped');
    expect(new Set(states).size).toBe(states.length);
  });

  it('a state listener that removes another listener during emission does not skip/duplicate the rest', async () => {
    const { app } = build();
    const a: AppState[] = [];
    const c: AppState[] = [];
    let offB: () => void = () => undefined;
    app.on('state', (s) => { a.push(s); if (s === 'running') offB(); });
    offB = app.on('state', () => undefined);
    app.on('state', (s) => c.push(s));
    const d = await TestDriver.start(app);
    await d.stop();
    expect(a).toEqual(['starting', 'running', 'stopping', 'stopped']);
    expect(c).toEqual(['starting', 'running', 'stopping', 'stopped']);
  });

  it('a failure during stop (bad record racing stop) emits error at most once and ends stopped or failed', async () => {
    const { app } = build('stop');
    const errors: unknown[] = [];
    const states: AppState[] = [];
    app.on('error', (e) => errors.push(e));
    app.on('state', (s) => states.push(s));
    await app.start();
    void app.send('in', r('bad', 1, 1)).catch(() => undefined);
    const stopping = app.stop();
    expect(await withTimeout(stopping)).not.toBe('timeout');
    expect(errors.length).toBeLessThanOrEqual(1);
    expect(['stopped', 'failed']).toContain(app.state);
    if (app.state === 'failed') expect(app.failure).toBeInstanceOf(EddyError);
  });
});
