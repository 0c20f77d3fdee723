/**
 * Window handlers run by a workerPool that fail. A model that throws (an Error, a string,
 * undefined, an object), rejects or returns what cannot come back from the worker has its window
 * dead-lettered with the reason while the other windows go through; under onError 'stop' the app
 * fails once with HANDLER_FAILED; a pool whose init() throws, or that names a missing export,
 * makes start() reject with an EddyError.
 */
import { describe, expect, it } from 'vitest';
import { createApp, EddyError } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { workerPool } from '@eddy/ml';
import { recording } from './helpers.ts';

const model = new URL('./model.mjs', import.meta.url);
interface Ev { sensor: string; ts: number; mode?: string }

function build(pool: ReturnType<typeof workerPool>, onError: 'dead-letter' | 'stop' = 'dead-letter') {
  const logger = recording();
  const app = createApp({ id: 'pool', idleTimeout: false, onError, logger });
  app.from<Ev>('in', { timestamp: (e) => e.ts }).keyBy((e) => e.sensor).tumbling(1000).collect().onClose(pool).to('out');
  return { app, logger };
}

describe('worker pool handler failures', () => {
  it('every failing mode is dead-lettered with the reason; the rest go through; counts exact', async () => {
    const pool = workerPool(model, { size: 1, retries: 1, timeout: '5s' });
    const { app, logger } = build(pool);
    const driver = await TestDriver.start(app);
    const modes = ['throw-error', 'throw-string', 'throw-undefined', 'throw-object', 'reject', 'function'];
    for (const [i, mode] of modes.entries()) await driver.send('in', { sensor: `bad-${mode}`, ts: i, mode });
    for (let i = 0; i < 5; i++) await driver.send('in', { sensor: `good${i}`, ts: i });
    await driver.send('in', { sensor: 'undef', ts: 1, mode: 'undefined' });
    await driver.send('in', { sensor: 'flush', ts: 100_000 });
    await driver.advanceTime('10s');
    const dead = driver.read('pool-dlq');
    const out = driver.read('out');
    expect(out.map((o) => (o.value as { key: string }).key).sort()).toEqual(['good0', 'good1', 'good2', 'good3', 'good4']);
    expect(dead).toHaveLength(modes.length);
    for (const d of dead) {
      expect(d.headers['error.code']).toMatch(/HANDLER_FAILED|WORKER_/);
      expect(d.headers['error']).toBeTruthy();
      expect(d.headers['step']).toBeDefined();
      expect(d.headers['task']).toBeDefined();
    }
    const reasons = dead.map((d) => d.headers['error']!).join('\n');
    expect(reasons).toContain('bad window bad-throw-error');
    expect(reasons).toContain('string thrown bad-throw-string');
    expect(app.metrics().deadLetters).toBe(modes.length);
    expect(logger.lines.filter((l) => l.level === 'warn').length).toBeGreaterThanOrEqual(modes.length);
    await driver.stop();
  }, 50_000);

  it("under onError 'stop' a throwing model fails the app once with HANDLER_FAILED", async () => {
    const pool = workerPool(model, { size: 1, retries: 0 });
    const { app } = build(pool, 'stop');
    const errors: EddyError[] = [];
    app.on('error', (e) => errors.push(e));
    const driver = await TestDriver.start(app);
    await driver.send('in', { sensor: 'a', ts: 1, mode: 'throw-error' });
    await driver.send('in', { sensor: 'b', ts: 2, mode: 'throw-error' });
    await driver.send('in', { sensor: 'flush', ts: 100_000 }).catch(() => undefined);
    await driver.advanceTime('10s').catch(() => undefined);
    expect(app.state).toBe('failed');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe('HANDLER_FAILED');
    expect(driver.read('out')).toHaveLength(0);
    expect(driver.read('pool-dlq')).toHaveLength(0);
    await app.stop();
  }, 50_000);

  it('a pool whose init() throws: start() rejects with a clear EddyError, state failed', async () => {
    const pool = workerPool(new URL('./init-fails.mjs', import.meta.url), { size: 1 });
    const { app } = build(pool);
    const errors: unknown[] = [];
    app.on('error', (e) => errors.push(e));
    let err: unknown;
    try { await app.start(); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(EddyError);
    expect(String((err as Error).message)).toContain('init exploded');
    expect(app.state).toBe('failed');
    expect(errors).toEqual([]);
    await app.stop();
  }, 50_000);

  it('a pool naming a missing export: start() rejects', async () => {
    const pool = workerPool(model, { size: 1, exportName: 'nope' });
    const { app } = build(pool);
    let err: unknown;
    try { await app.start(); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(EddyError);
    expect(app.state).toBe('failed');
    await app.stop();
  }, 50_000);
});
