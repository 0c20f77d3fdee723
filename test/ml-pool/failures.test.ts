/**
 * A workerPool behind onClose whose model throws, kills its worker, hangs (busy or idle) or fails
 * once, on the embedded broker in real time. Every window is counted against a brute-force
 * reference: the good ones give exactly one result, in window order per key; the bad ones give
 * exactly one dead letter holding the window, after exactly `retries + 1` attempts; the app goes on.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { createApp, EddyError, memoryTransport, type MemoryTransport } from '@eddy/core';
import { workerPool } from '@eddy/ml';
import { calls, count, decode, MODEL, recording, reference, strip, tempDir, text, until, values, windowId, type Reading, type Result } from './helpers.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function build(transport: MemoryTransport, pool: ReturnType<typeof workerPool>, id: string, onError: 'dead-letter' | 'stop' = 'dead-letter') {
  const logger = recording();
  const app = createApp({ id, transport, idleTimeout: false, commitInterval: '100ms', onError, logger });
  app.from<Reading>('in', { timestamp: (r) => r.ts }).keyBy((r) => r.k).tumbling(1000).collect().onClose(pool).to('out');
  return { app, logger };
}

const outputs = (transport: MemoryTransport) => transport.records('out');
const deadLetters = (transport: MemoryTransport, id: string) => transport.records(`${id}-dlq`);

describe('workerPool failures inside an app', () => {
  it('throw / exit / busy hang / idle hang: one dead letter each with the window, the code and the reason, after retries + 1 attempts; the rest match the reference; the app goes on', async () => {
    const log = tempDir('fail');
    dirs.push(log);
    const transport = memoryTransport();
    const pool = workerPool(MODEL, { size: 2, retries: 1, timeout: '700ms', batchSize: 4 });
    const { app, logger } = build(transport, pool, 'mlf');
    await app.start();
    const bad: Record<string, { act: string; code: string; reason: RegExp }> = {
      'k1@1000': { act: 'throw', code: 'HANDLER_FAILED', reason: /model failed k1@1000/ },
      'k2@2000': { act: 'exit', code: 'WORKER_CRASHED', reason: /exit|code 7/ },
      'k3@3000': { act: 'spin', code: 'WORKER_TIMEOUT', reason: /700 ms/ },
      'k0@4000': { act: 'stall', code: 'WORKER_TIMEOUT', reason: /700 ms/ },
    };
    const readings: Reading[] = [];
    for (let w = 0; w < 6; w++) {
      for (let k = 0; k < 6; k++) {
        for (let j = 0; j < 3; j++) {
          const id = `k${k}@${w * 1000}`;
          const act = j === 1 ? (bad[id]?.act ?? (id === 'k4@1000' ? 'flaky' : undefined)) : undefined;
          readings.push({ k: `k${k}`, v: (w * 7 + k * 3 + j) % 11, ts: w * 1000 + j * 300 + k, log, ...(act ? { act } : {}) });
        }
      }
    }
    const phase1 = [...readings, { k: 'flush', v: 0, ts: 100_000, log }];
    for (const r of phase1) await app.send('in', r, { key: r.k });
    const ref1 = reference(phase1, 1000, 100_000);
    const good1 = [...ref1.values()].filter((w) => bad[windowId(w)] === undefined);
    await until(() => outputs(transport).length + deadLetters(transport, 'mlf').length >= ref1.size, 20_000, 'phase 1 outcomes');

    // The app goes on: more windows after the failures, all of them good.
    const phase2: Reading[] = [];
    for (let j = 0; j < 4; j++) for (let k = 0; k < 6; k++) phase2.push({ k: `k${k}`, v: k + j, ts: 200_000 + j * 400 + k, log });
    phase2.push({ k: 'flush', v: 0, ts: 300_000, log });
    for (const r of phase2) await app.send('in', r, { key: r.k });
    const all = [...phase1, ...phase2];
    const ref = reference(all, 1000, 300_000);
    await until(() => outputs(transport).length + deadLetters(transport, 'mlf').length >= ref.size, 20_000, 'phase 2 outcomes');
    await transport.idle();
    await app.stop();

    const expectedGood = [...ref.values()].filter((w) => bad[windowId(w)] === undefined);
    expect(good1.length).toBe(ref1.size - 4);
    const out = outputs(transport);
    const results = out.map((record) => decode(record.value) as Result);
    // Exactly one result per good window, equal to the reference.
    expect(results.map(strip).sort((a, b) => windowId(a).localeCompare(windowId(b)))).toEqual(
      expectedGood.map(strip).sort((a, b) => windowId(a).localeCompare(windowId(b))),
    );
    // Keyed by the window key, stamped end - 1, in window order per key.
    for (const [index, record] of out.entries()) {
      expect(text(record.key)).toBe(results[index]!.key);
      expect(record.timestamp).toBe(results[index]!.end - 1);
    }
    for (let k = 0; k < 6; k++) {
      const starts = results.filter((r) => r.key === `k${k}`).map((r) => r.start);
      expect(starts).toEqual([...starts].sort((a, b) => a - b));
    }
    // The flaky window failed once and was retried: it is among the results, after two calls.
    const called = count(calls(log));
    expect(called.get('k4@1000')).toBe(2);

    // One dead letter per bad window: the window as { start, end, value }, keyed by its key as JSON.
    const dead = deadLetters(transport, 'mlf');
    expect(dead).toHaveLength(4);
    const byId = new Map(dead.map((record) => {
      const value = decode(record.value) as { start: number; end: number; value: Reading[] };
      const key = decode(record.key) as string;
      return [`${key}@${value.start}`, { record, value, key }] as const;
    }));
    expect([...byId.keys()].sort()).toEqual(Object.keys(bad).sort());
    for (const [id, { record, value }] of byId) {
      const expected = ref.get(id)!;
      expect(text(record.key)).toBe(JSON.stringify(expected.key));
      expect(value).toEqual({ start: expected.start, end: expected.end, value: expected.readings });
      expect(record.headers['error.code']).toBe(bad[id]!.code);
      expect(record.headers['error']).toMatch(bad[id]!.reason);
      expect(Object.keys(record.headers).sort()).toEqual(['error', 'error.code', 'step', 'task']);
      // retries: 1 -> exactly two attempts, then the dead letter.
      expect(called.get(id), `calls of ${id}`).toBe(2);
    }
    expect(app.metrics().deadLetters).toBe(4);
    expect(app.metrics().windowsClosed).toBe(ref.size);
    expect(app.metrics().lateRecords).toBe(0);
    expect(logger.lines.filter((line) => line.level === 'warn').length).toBeGreaterThanOrEqual(4);
  }, 60_000);

  it('a model that throws has its worker replaced (README: "A model that throws, hangs past timeout or kills its worker: the worker is replaced")', async () => {
    const transport = memoryTransport();
    const pool = workerPool(MODEL, { size: 1, retries: 0, timeout: '5s' });
    const { app } = build(transport, pool, 'mlr');
    await app.start();
    await app.send('in', { k: 'a', v: 1, ts: 0, act: 'throw' }, { key: 'a' });
    await app.send('in', { k: 'a', v: 2, ts: 1000 }, { key: 'a' }); // closes a@0 (throws)
    await app.send('in', { k: 'a', v: 3, ts: 2000 }, { key: 'a' }); // closes a@1000
    await until(() => outputs(transport).length + deadLetters(transport, 'mlr').length >= 2, 10_000, 'two outcomes');
    await transport.idle();
    await app.stop();
    const dead = deadLetters(transport, 'mlr');
    expect(dead).toHaveLength(1);
    const threadOfThrow = Number(/on thread (\d+)/.exec(dead[0]!.headers['error']!)![1]);
    const [next] = values<Result>(transport, 'out');
    expect(next).toMatchObject({ key: 'a', start: 1000, sum: 2 });
    // The window after the throw must not run on the worker the throwing model left behind.
    expect(next!.poisoned).toBe(false);
    expect(next!.thread).not.toBe(threadOfThrow);
  }, 30_000);

  it('retries: 0 — a window that calls process.exit mid-batch is the only one dead-lettered; its batch-mates give results', async () => {
    const log = tempDir('exit0');
    dirs.push(log);
    const transport = memoryTransport();
    const pool = workerPool(MODEL, { size: 1, retries: 0, timeout: '5s', batchSize: 8 });
    const { app } = build(transport, pool, 'mle');
    await app.start();
    // Eight keys' windows [0, 1000) close together, on one record: one batch of 8.
    const readings: Reading[] = Array.from({ length: 8 }, (_, i) => ({ k: `k${i}`, v: i, ts: i, log, ...(i === 3 ? { act: 'exit' } : {}) }));
    for (const r of readings) await app.send('in', r, { key: r.k });
    await app.send('in', { k: 'flush', v: 0, ts: 5000 }, { key: 'flush' });
    await until(() => outputs(transport).length + deadLetters(transport, 'mle').length >= 8, 15_000, 'eight outcomes');
    await transport.idle();
    await app.stop();
    const dead = deadLetters(transport, 'mle');
    expect(dead.map((record) => decode(record.key))).toEqual(['k3']);
    expect(dead[0]!.headers['error.code']).toBe('WORKER_CRASHED');
    expect(values<Result>(transport, 'out').map((r) => r.key).sort()).toEqual(['k0', 'k1', 'k2', 'k4', 'k5', 'k6', 'k7']);
    expect(count(calls(log)).get('k3@0')).toBe(1);
  }, 30_000);

  it('retries: 0 — a model whose timer kills its worker after it answered: no other window of the batch is dead-lettered', async () => {
    const log = tempDir('bomb');
    dirs.push(log);
    const transport = memoryTransport();
    const pool = workerPool(MODEL, { size: 1, retries: 0, timeout: '5s', batchSize: 8 });
    const { app } = build(transport, pool, 'mlb');
    await app.start();
    // Every window takes 50 ms; k2's model arms a timer that throws 30 ms after it answered, while
    // k3's window is running on the same worker.
    const readings: Reading[] = Array.from({ length: 8 }, (_, i) => ({ k: `k${i}`, v: i, ts: i, sleep: 50, log, ...(i === 2 ? { act: 'bomb' } : {}) }));
    for (const r of readings) await app.send('in', r, { key: r.k });
    await app.send('in', { k: 'flush', v: 0, ts: 5000 }, { key: 'flush' });
    await until(() => outputs(transport).length + deadLetters(transport, 'mlb').length >= 8, 20_000, 'eight outcomes');
    await transport.idle();
    await app.stop();
    const deadKeys = deadLetters(transport, 'mlb').map((record) => decode(record.key) as string);
    const resultKeys = values<Result>(transport, 'out').map((r) => r.key);
    // Every window has exactly one outcome ...
    expect([...deadKeys, ...resultKeys].sort()).toEqual(readings.map((r) => r.k).sort());
    // ... and no window other than k2 (the one whose model kills the worker) is dead-lettered.
    expect(deadKeys.filter((key) => key !== 'k2')).toEqual([]);
  }, 30_000);

  it('a model module whose import throws: start() rejects with WORKER_INIT_FAILED, state failed, failure set, no error event', async () => {
    const transport = memoryTransport();
    const pool = workerPool(new URL('./load-fails.mjs', import.meta.url), { size: 2 });
    const { app } = build(transport, pool, 'mll');
    const errors: unknown[] = [];
    app.on('error', (error) => errors.push(error));
    const rejection = await app.start().then(() => undefined, (error: unknown) => error);
    expect(rejection).toBeInstanceOf(EddyError);
    expect((rejection as EddyError).code).toBe('WORKER_INIT_FAILED');
    expect((rejection as EddyError).message).toContain('weights.bin not found');
    expect(app.state).toBe('failed');
    expect(app.failure?.code).toBe('WORKER_INIT_FAILED');
    expect(app.health().status).toBe('failed');
    expect(errors).toEqual([]);
    await app.stop();
  }, 30_000);

  it("onError 'stop': a model that kills its worker fails the app once with WORKER_CRASHED, after retries; nothing dead-lettered", async () => {
    const log = tempDir('stop');
    dirs.push(log);
    const transport = memoryTransport();
    const pool = workerPool(MODEL, { size: 1, retries: 1, timeout: '5s' });
    const { app } = build(transport, pool, 'mls', 'stop');
    const errors: EddyError[] = [];
    app.on('error', (error) => errors.push(error));
    await app.start();
    await app.send('in', { k: 'a', v: 1, ts: 0, act: 'exit', log }, { key: 'a' });
    await app.send('in', { k: 'a', v: 1, ts: 1000, log }, { key: 'a' });
    await until(() => app.state === 'failed', 15_000, 'the app to fail');
    await app.stop();
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe('WORKER_CRASHED');
    expect(app.failure).toBe(errors[0]);
    expect(count(calls(log)).get('a@0')).toBe(2);
    expect(deadLetters(transport, 'mls')).toHaveLength(0);
    expect(outputs(transport)).toHaveLength(0);
  }, 30_000);
});
