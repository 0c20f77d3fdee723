/**
 * Small fixed inputs for seven behaviours at the edge between the host and the app that were
 * once broken: the states announced when stop() is called from an 'error' listener, one function
 * subscribed twice, sendBatch and send given input they cannot take, headers that are not strings
 * on both transports, and the dead letter of a throwing onClose handler.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, EddyError, type AppState } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { levelState, levelTransport } from '@eddy/state';
import { recording, r, type Reading } from './helpers.ts';

const directories: string[] = [];
afterAll(async () => Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true }))));

describe('host errors: regressions', () => {
  // README "The app's life": a bad record under onError: 'stop' emits error once, then the state
  // is failed; "stopping → stopped" is only for a stop() of a running app. A host that calls
  // stop() from its error listener must not see a 'stopping' announced before 'failed'.
  it("stop() called from an 'error' listener: the states go running → failed, with no 'stopping'", async () => {
    const app = createApp({ id: 'stop-in-listener', idleTimeout: false, onError: 'stop', logger: recording() });
    app.from<Reading>('in').map((v) => { if (v.sensor === 'bad') throw new Error('bad'); return v; }).to('out');
    const states: Array<[AppState, AppState]> = [];
    let stopping: Promise<void> | undefined;
    app.on('state', (s, p) => states.push([s, p]));
    app.on('error', () => { stopping = app.stop(); });
    const driver = await TestDriver.start(app);
    await driver.send('in', r('bad', 1, 1)).catch(() => undefined);
    await stopping;
    expect(app.state).toBe('failed');
    expect(states).toEqual([['starting', 'created'], ['running', 'starting'], ['failed', 'running']]);
  });

  // DESIGN: "const off = app.on('state', ...) // each returns an unsubscribe function"; README:
  // "off(); // each on() returns its remover". The same function registered twice is two
  // subscriptions: the first remover leaves the second one in place.
  it('one function subscribed twice is two subscriptions, each with its own remover', async () => {
    const app = createApp({ id: 'subscribed-twice', idleTimeout: false, logger: recording() });
    app.from('in').to('out');
    const seen: AppState[] = [];
    const listener = (s: AppState) => void seen.push(s);
    const off1 = app.on('state', listener);
    app.on('state', listener); // a second, independent subscription
    off1();
    const driver = await TestDriver.start(app);
    await driver.stop();
    expect(seen).toEqual(['starting', 'running', 'stopping', 'stopped']);
  });

  // DESIGN: "await app.sendBatch('readings', [{ value, key, timestamp, headers }])"; README: "Errors
  // are EddyErrors with a stable code". An element that is not an object is refused, and the
  // batch writes nothing (no record with a null value in its place).
  it('sendBatch refuses an element that is not an object and writes nothing', async () => {
    const app = createApp({ id: 'batch-not-object', idleTimeout: false, logger: recording() });
    app.from<Reading>('in').to('out');
    const driver = await TestDriver.start(app);
    await expect(app.sendBatch('in', [{ value: r('a', 1, 1) }, 5 as never])).rejects.toBeInstanceOf(EddyError);
    expect(driver.transport.records('in')).toHaveLength(0);
    await driver.stop();
  });

  // README: "Errors are EddyErrors with a stable code". A null element, or a value JSON cannot
  // encode, rejects with an EddyError rather than a bare TypeError.
  it('bad host input (a null element, a BigInt value) rejects with an EddyError', async () => {
    const app = createApp({ id: 'bad-host-input', idleTimeout: false, logger: recording() });
    app.from<Reading>('in').to('out');
    const driver = await TestDriver.start(app);
    await expect(app.sendBatch('in', [null as never])).rejects.toBeInstanceOf(EddyError);
    await expect(app.sendBatch('in', [{ value: { n: 1n } }])).rejects.toBeInstanceOf(EddyError);
    await expect(app.send('in', { n: 1n })).rejects.toBeInstanceOf(EddyError);
    await driver.stop();
  });

  // Headers are checked before anything is written: levelTransport writes the sends of one
  // event-loop turn together, so one caller's bad headers must be refused on their own, and the
  // valid send() and sendBatch() of other callers in that turn still go through.
  it("headers that are not strings are refused with an EddyError on levelTransport, and fail no other caller's send", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eddy-host-headers-'));
    directories.push(dir);
    const app = createApp({ id: 'headers-level', idleTimeout: false, logger: recording(), transport: levelTransport({ dir }), state: levelState({ dir }) });
    app.from<Reading>('in').to('out');
    await app.start();
    try {
      const [good1, bad, good2] = await Promise.allSettled([
        app.send('in', r('good1', 1, 1)),
        app.sendBatch('in', [{ value: r('bad', 1, 1), headers: { n: 5 as unknown as string } }]),
        app.sendBatch('in', [{ value: r('good2', 1, 1) }]),
      ]);
      expect([good1.status, good2.status]).toEqual(['fulfilled', 'fulfilled']);
      expect(bad.status).toBe('rejected');
      expect((bad as PromiseRejectedResult).reason).toBeInstanceOf(EddyError);
    } finally {
      await app.stop();
    }
  });

  // The same input on memoryTransport has the same outcome: a header that is not a string, or
  // headers that are not an object, are refused with an EddyError.
  it('headers that are not strings are refused with an EddyError on memoryTransport too', async () => {
    const app = createApp({ id: 'headers-memory', idleTimeout: false, logger: recording() });
    app.from<Reading>('in').to('out');
    const driver = await TestDriver.start(app);
    await expect(app.sendBatch('in', [{ value: r('a', 1, 1), headers: { n: 5 as unknown as string } }])).rejects.toBeInstanceOf(EddyError);
    await expect(app.sendBatch('in', [{ value: r('a', 1, 1), headers: 'h' as never }])).rejects.toBeInstanceOf(EddyError);
    await driver.stop();
  });

  // README "Errors and dead letters": a window handler's dead letter holds the window under its
  // key, with headers error, error.code, step and task; it comes from no single input record, so
  // it has no topic, partition or offset.
  it("a dead letter from a throwing onClose holds the window, keyed by the window's key as JSON, with headers error, error.code, step, task", async () => {
    const app = createApp({ id: 'close-throws', idleTimeout: false, logger: recording() });
    app.from<Reading>('in', { timestamp: (v) => v.ts }).keyBy((v) => v.sensor).tumbling('10s').count()
      .onClose(() => { throw new Error('close boom'); }).to('out');
    const driver = await TestDriver.start(app);
    await driver.send('in', r('a', 1, 1000));
    await driver.send('in', r('a', 1, 100_000));
    const [dead] = driver.read('close-throws-dlq');
    expect(dead!.headers).toMatchObject({ 'error.code': 'HANDLER_FAILED', step: 'onClose' });
    expect(Object.keys(dead!.headers).sort()).toEqual(['error', 'error.code', 'step', 'task']);
    expect({ key: dead!.key, value: dead!.value }).toEqual({ key: JSON.stringify('a'), value: { start: 0, end: 10_000, value: 1 } });
    await driver.stop();
  });
});
