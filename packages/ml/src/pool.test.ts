import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { WorkerPoolError } from './errors.js';
import { BATCH_HANDLER, type HandlerOutcome } from './handler-contract.js';
import { workerPool, type ClosedWindow, type WorkerPool } from './pool.js';
import type { WorkerPoolOptions } from './pool-options.js';

const fixture = (name: string): URL => new URL(`../test-fixtures/${name}`, import.meta.url);

const openPools: WorkerPool<ClosedWindow, unknown>[] = [];
afterEach(async () => {
  await Promise.all(openPools.splice(0).map((pool) => pool.close()));
});

const markerDirectory = mkdtempSync(join(tmpdir(), 'eddy-ml-pool-'));
afterAll(() => rmSync(markerDirectory, { recursive: true, force: true }));

function createPool<Out>(name: string, options: WorkerPoolOptions): WorkerPool<ClosedWindow, Out> {
  const pool = workerPool<ClosedWindow, Out>(fixture(name), options);
  openPools.push(pool);
  return pool;
}

function window(key: string, value: Record<string, unknown>): ClosedWindow {
  return { key, start: 0, end: 1_000, value };
}

function values<Out>(outcomes: HandlerOutcome<Out>[]): Out[] {
  return outcomes.map((outcome) => {
    if (!outcome.ok) throw new Error(`expected success, got ${outcome.error.message}`);
    return outcome.value;
  });
}

function failure<Out>(outcome: HandlerOutcome<Out> | undefined): { error: WorkerPoolError; attempts: number } {
  if (outcome === undefined || outcome.ok) throw new Error(`expected a failure outcome, got ${JSON.stringify(outcome)}`);
  expect(outcome.error).toBeInstanceOf(WorkerPoolError);
  return { error: outcome.error as WorkerPoolError, attempts: outcome.attempts };
}

type Echoed = { key: string; doubled: number; threadId: number };

describe('workerPool: results', () => {
  it('gives one outcome per window, in submission order, whatever order the workers finish in', async () => {
    const pool = createPool<Echoed>('echo.mjs', { size: 3, batchSize: 2 });
    const windows = Array.from({ length: 30 }, (_, n) => window(`k${n}`, { n, delayMs: Math.floor(Math.random() * 15) }));

    const [first, second] = await Promise.all([pool.run(windows), pool.run(windows.slice(0, 5).reverse())]);

    expect(values(first).map((result) => [result.key, result.doubled])).toEqual(
      windows.map((_, n) => [`k${n}`, n * 2]),
    );
    expect(values(second).map((result) => result.key)).toEqual(['k4', 'k3', 'k2', 'k1', 'k0']);
    // Several workers took part, so the order above was not a single worker's natural order.
    expect(new Set(values(first).map((result) => result.threadId)).size).toBeGreaterThan(1);
    expect(pool.queueDepth).toBe(0);
  });

  it('returns an empty array for no windows', async () => {
    const pool = createPool('echo.mjs', { size: 1 });
    await expect(pool.run([])).resolves.toEqual([]);
  });

  it('implements the batch handler contract the engine looks for', () => {
    const pool = createPool('echo.mjs', { size: 1, maxQueue: 7 });
    expect(pool[BATCH_HANDLER]).toBe(true);
    expect(pool.maxQueue).toBe(7);
    expect(pool.queueDepth).toBe(0);
  });

  it('counts submitted windows in queueDepth until each has its outcome', async () => {
    const pool = createPool('echo.mjs', { size: 1 });
    const pending = pool.run([window('a', { n: 1, delayMs: 30 }), window('b', { n: 2, delayMs: 30 })]);
    // Counted at once, even before the workers have started.
    expect(pool.queueDepth).toBe(2);
    await pending;
    expect(pool.queueDepth).toBe(0);
  });
});

describe('workerPool: batching', () => {
  type Counted = { n: number; threadId: number; message: number };
  const batchesOf = (results: Counted[]): number[][] => {
    const batches = new Map<string, number[]>();
    for (const result of results) {
      const id = `${result.threadId}/${result.message}`;
      batches.set(id, [...(batches.get(id) ?? []), result.n]);
    }
    return [...batches.values()];
  };

  it('sends many windows to one worker as a few messages of at most batchSize', async () => {
    const pool = createPool<Counted>('message-counter.mjs', { size: 1, batchSize: 10 });
    const results = values(await pool.run(Array.from({ length: 25 }, (_, n) => window(`k${n}`, { n }))));

    const batches = batchesOf(results);
    expect(batches.map((batch) => batch.length)).toEqual([10, 10, 5]);
    expect(batches.flat()).toEqual(Array.from({ length: 25 }, (_, n) => n));
  });

  it('spreads the batches of one run() over the workers', async () => {
    const pool = createPool<Counted>('message-counter.mjs', { size: 2, batchSize: 8 });
    await pool.start();
    const results = values(await pool.run(Array.from({ length: 40 }, (_, n) => window(`k${n}`, { n }))));

    const batches = batchesOf(results);
    expect(batches).toHaveLength(5);
    expect(batches.every((batch) => batch.length === 8)).toBe(true);
    expect(new Set(results.map((result) => result.threadId)).size).toBe(2);
  });
});

describe('workerPool: a handler that throws', () => {
  it('retries the window, then gives a HANDLER_FAILED outcome; the rest of the batch succeeds', async () => {
    const pool = createPool<number>('throws.mjs', { size: 1, retries: 2, batchSize: 10 });
    const outcomes = await pool.run([window('a', { n: 1 }), window('b', { fail: true }), window('c', { n: 3 })]);

    expect(outcomes[0]).toEqual({ ok: true, value: 1 });
    expect(outcomes[2]).toEqual({ ok: true, value: 3 });
    const { error, attempts } = failure(outcomes[1]);
    expect(attempts).toBe(3);
    expect(error.code).toBe('HANDLER_FAILED');
    expect(error.retriable).toBe(false);
    expect(error.message).toContain('bad window b');
    expect(error.message).toContain('gave up after 3 attempts');
    expect(error.cause).toBeInstanceOf(Error);
    expect((error.cause as Error).name).toBe('RangeError');
    expect((error.cause as Error).stack).toContain('throws.mjs');
  });

  it('replaces the worker whose handler threw, and runs the rest of its batch on the new one', async () => {
    const pool = createPool<Echoed>('echo.mjs', { size: 1, retries: 0, batchSize: 10 });
    const outcomes = await pool.run([window('a', { n: 1 }), window('b', { fail: true }), window('c', { n: 3 }), window('d', { n: 4 })]);

    expect(failure(outcomes[1]).error.code).toBe('HANDLER_FAILED');
    const [a, , c, d] = outcomes.map((outcome) => (outcome.ok ? outcome.value : undefined));
    expect([a?.doubled, c?.doubled, d?.doubled]).toEqual([2, 6, 8]);
    expect(c?.threadId).not.toBe(a?.threadId);
    expect(d?.threadId).toBe(c?.threadId);
  });

  it('makes exactly one attempt with retries: 0', async () => {
    const pool = createPool('throws.mjs', { size: 1, retries: 0 });
    const [outcome] = await pool.run([window('a', { fail: true })]);
    expect(failure(outcome).attempts).toBe(1);
  });

  it('succeeds when a retry succeeds', async () => {
    const pool = createPool('flaky.mjs', { size: 1, retries: 2 });
    const countsDir = mkdtempSync(join(markerDirectory, 'flaky-'));
    const outcomes = await pool.run([window('twice', { failTimes: 2, countsDir }), window('thrice', { failTimes: 3, countsDir })]);

    expect(outcomes[0]).toEqual({ ok: true, value: { key: 'twice', calls: 3 } });
    expect(failure(outcomes[1]).attempts).toBe(3);
    expect(failure(outcomes[1]).error.message).toContain('attempt 3 of thrice fails');
  });

  it('fails only the window whose result cannot cross threads', async () => {
    const pool = createPool<number>('unclonable.mjs', { size: 1, retries: 1, batchSize: 10 });
    const outcomes = await pool.run([window('a', { n: 1 }), window('b', { n: 2, unclonable: true }), window('c', { n: 3 })]);

    expect(outcomes[0]).toEqual({ ok: true, value: 1 });
    expect(outcomes[2]).toEqual({ ok: true, value: 3 });
    const { error, attempts } = failure(outcomes[1]);
    expect(error.code).toBe('HANDLER_FAILED');
    expect(attempts).toBe(2);
  });
});

describe('workerPool: a worker that hangs', () => {
  type Result = { n: number; threadId: number };

  it('times out the window, replaces the worker, and keeps serving the other windows', async () => {
    const pool = createPool<Result>('hangs.mjs', { size: 2, timeout: 150, retries: 1, batchSize: 4 });
    const before = new Set(values(await pool.run([0, 1, 2, 3].map((n) => window(`warm${n}`, { n })))).map((result) => result.threadId));

    const outcomes = await pool.run([
      window('a', { n: 0 }),
      window('b', { n: 1 }),
      window('spin', { hang: true }),
      window('c', { n: 3 }),
      window('stall', { stall: true }),
      window('d', { n: 5 }),
    ]);

    expect(values([outcomes[0], outcomes[1], outcomes[3], outcomes[5]] as HandlerOutcome<Result>[]).map((r) => r.n)).toEqual([0, 1, 3, 5]);
    for (const index of [2, 4]) {
      const { error, attempts } = failure(outcomes[index]);
      expect(error.code).toBe('WORKER_TIMEOUT');
      expect(error.retriable).toBe(true);
      expect(error.message).toContain('took more than 150 ms to run one window');
      expect(attempts).toBe(2);
    }

    const after = values(await pool.run([0, 1, 2, 3].map((n) => window(`later${n}`, { n }))));
    expect(after.map((result) => result.n)).toEqual([0, 1, 2, 3]);
    expect(after.some((result) => !before.has(result.threadId))).toBe(true);
    expect(pool.queueDepth).toBe(0);
  });

  it('times each window, not the whole batch', async () => {
    // 6 windows of 60 ms in one message take 360 ms, well past the 150 ms timeout, yet none is slow.
    const pool = createPool<Echoed>('echo.mjs', { size: 1, timeout: 150, retries: 0, batchSize: 6 });
    const outcomes = await pool.run(Array.from({ length: 6 }, (_, n) => window(`k${n}`, { n, delayMs: 60 })));
    expect(values(outcomes).map((result) => result.doubled)).toEqual([0, 2, 4, 6, 8, 10]);
  });
});

describe('workerPool: a worker that dies', () => {
  type Result = { n: number; threadId: number };

  it('replaces a worker that calls process.exit and retries its window on a fresh one', async () => {
    const pool = createPool<Result>('crashes.mjs', { size: 1, retries: 1, batchSize: 4 });
    const markerPath = join(markerDirectory, 'exit-once');
    const outcomes = await pool.run([
      window('a', { n: 0 }),
      window('exit-once', { n: 1, exit: true, markerPath }),
      window('b', { n: 2 }),
    ]);

    const results = values(outcomes);
    expect(results.map((result) => result.n)).toEqual([0, 1, 2]);
    // The only worker died while running the second window, so a fresh one finished the job.
    expect(new Set(results.slice(1).map((result) => result.threadId)).size).toBe(1);
  });

  it('gives a WORKER_CRASHED outcome once retries are spent', async () => {
    const pool = createPool<Result>('crashes.mjs', { size: 2, retries: 1 });
    const outcomes = await pool.run([window('a', { n: 0 }), window('always', { exit: true }), window('b', { n: 2 })]);

    expect(outcomes[0]).toMatchObject({ ok: true, value: { n: 0 } });
    expect(outcomes[2]).toMatchObject({ ok: true, value: { n: 2 } });
    const { error, attempts } = failure(outcomes[1]);
    expect(error.code).toBe('WORKER_CRASHED');
    expect(error.retriable).toBe(true);
    expect(error.message).toContain('exited with code 3');
    expect(attempts).toBe(2);
    // The pool is whole again.
    expect(values(await pool.run([window('c', { n: 4 })]))[0]?.n).toBe(4);
  });

  it('blames only the window that was running when its worker died or hung', async () => {
    // retries: 0, so any window blamed by mistake would fail; the others of the batch run again.
    const pool = createPool<Result>('crashes.mjs', { size: 1, retries: 0, batchSize: 5 });
    const outcomes = await pool.run([
      window('a', { n: 0 }),
      window('b', { n: 1 }),
      window('exit', { exit: true }),
      window('c', { n: 3 }),
      window('d', { n: 4 }),
    ]);
    expect(outcomes.map((outcome) => outcome.ok)).toEqual([true, true, false, true, true]);
    expect(failure(outcomes[2]).attempts).toBe(1);

    const hanging = createPool<Result>('hangs.mjs', { size: 1, retries: 0, batchSize: 5, timeout: 100 });
    const afterHang = await hanging.run([
      window('a', { n: 0 }),
      window('b', { n: 1 }),
      window('spin', { hang: true }),
      window('c', { n: 3 }),
    ]);
    expect(afterHang.map((outcome) => outcome.ok)).toEqual([true, true, false, true]);
  });

  it('replaces a worker that dies while idle', async () => {
    const pool = createPool<Result>('crashes.mjs', { size: 1, retries: 0 });
    const [first] = values(await pool.run([window('a', { n: 0, exitLater: true })]));
    await new Promise((resolve) => setTimeout(resolve, 100));

    const [second] = values(await pool.run([window('b', { n: 1 })]));
    expect(second?.n).toBe(1);
    expect(second?.threadId).not.toBe(first?.threadId);
  });

  it('keeps the results a worker sent just before it exited', async () => {
    const pool = createPool<Result>('crashes.mjs', { size: 1, retries: 0, batchSize: 4 });
    const outcomes = await pool.run([window('a', { n: 0 }), window('b', { n: 1, exitAfterAnswer: true })]);
    expect(values(outcomes).map((result) => result.n)).toEqual([0, 1]);
    // Give the exit time to happen: a window sent before it would be blamed for it, and retries is 0.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(values(await pool.run([window('c', { n: 2 })]))[0]?.n).toBe(2);
  });

  it('fails the waiting windows, rather than hanging, when no replacement worker can start', async () => {
    const { markerPath } = (await import(fixture('broken-after-crash.mjs').href)) as { markerPath: string };
    rmSync(markerPath, { force: true });
    try {
      const pool = createPool('broken-after-crash.mjs', { size: 1, retries: 1 });
      const outcomes = await pool.run([window('a', {}), window('b', {})]);
      for (const outcome of outcomes) {
        const { error } = failure(outcome);
        expect(error.code).toBe('WORKER_INIT_FAILED');
        expect(error.message).toContain('the model cannot start any more');
      }
      expect(pool.queueDepth).toBe(0);
    } finally {
      rmSync(markerPath, { force: true });
    }
  });

  it('treats an uncaught error in the worker as a crash, with the error as cause', async () => {
    const pool = createPool('crashes.mjs', { size: 1, retries: 0 });
    const [outcome] = await pool.run([window('boom', { throwLater: true })]);

    const { error } = failure(outcome);
    expect(error.code).toBe('WORKER_CRASHED');
    expect(error.cause).toBeInstanceOf(Error);
    expect((error.cause as Error).message).toBe('uncaught in boom');
  });
});

describe('workerPool: init and lifecycle', () => {
  type Result = { n: number; threadId: number; initRuns: number; initFinished: boolean };

  it('runs init() once per worker before its first window, and calls the named export', async () => {
    const pool = createPool<Result>('with-init.mjs', { size: 2, exportName: 'predict' });
    await pool.start();
    await pool.start();
    const first = values(await pool.run(Array.from({ length: 8 }, (_, n) => window(`k${n}`, { n }))));
    const second = values(await pool.run(Array.from({ length: 8 }, (_, n) => window(`k${n}`, { n }))));

    const results = [...first, ...second];
    expect(results.every((result) => result.initRuns === 1 && result.initFinished)).toBe(true);
    expect(new Set(results.map((result) => result.threadId)).size).toBe(2);
  });

  it('rejects start() and run() with WORKER_INIT_FAILED when init() throws', async () => {
    const pool = createPool('init-fails.mjs', { size: 2 });
    const started = pool.start();
    await expect(started).rejects.toBeInstanceOf(WorkerPoolError);
    await expect(started).rejects.toMatchObject({ code: 'WORKER_INIT_FAILED', message: expect.stringContaining('model weights not found') });

    const running = pool.run([window('a', { n: 1 })]);
    expect(pool.queueDepth).toBe(1);
    await expect(running).rejects.toMatchObject({ code: 'WORKER_INIT_FAILED' });
    expect(pool.queueDepth).toBe(0);
  });

  it('rejects start() when init() outlasts initTimeout', async () => {
    const pool = createPool('init-hangs.mjs', { size: 1, initTimeout: 100 });
    await expect(pool.start()).rejects.toMatchObject({
      code: 'WORKER_INIT_FAILED',
      message: expect.stringContaining('took more than 100 ms to load the module and run init()'),
    });
  });

  it('rejects start() when the module lacks the export, naming what it does export', async () => {
    const pool = createPool('with-init.mjs', { size: 1 });
    await expect(pool.start()).rejects.toMatchObject({
      code: 'WORKER_INIT_FAILED',
      message: expect.stringMatching(/no function exported as 'default' \(it exports: init, predict\)/),
    });
  });

  it('close() waits for every submitted window, then refuses new work', async () => {
    const pool = createPool<Echoed>('echo.mjs', { size: 2, batchSize: 1 });
    let settled = false;
    const pending = pool.run(Array.from({ length: 6 }, (_, n) => window(`k${n}`, { n, delayMs: 30 }))).then((outcomes) => {
      settled = true;
      return outcomes;
    });

    await pool.close();

    expect(settled).toBe(true);
    expect(values(await pending).map((result) => result.doubled)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(pool.queueDepth).toBe(0);
    await expect(pool.run([window('late', { n: 1 })])).rejects.toMatchObject({ code: 'POOL_CLOSED' });
    await expect(pool.close()).resolves.toBeUndefined();
  });

  it('start() after close() starts the pool afresh, on new workers', async () => {
    const pool = createPool<Echoed>('echo.mjs', { size: 1 });
    await pool.start();
    const [before] = values(await pool.run([window('a', { n: 1 })]));
    await pool.close();

    await pool.start();
    const [after] = values(await pool.run([window('b', { n: 2 })]));
    expect(after?.doubled).toBe(4);
    expect(after?.threadId).not.toBe(before?.threadId);
  });

  it('counts its users: the workers run until every start() has had its close()', async () => {
    const pool = createPool<Echoed>('echo.mjs', { size: 1 });
    await pool.start();
    await pool.start();
    await pool.close();
    expect(values(await pool.run([window('a', { n: 1 })]))[0]?.doubled).toBe(2);
    await pool.close();
    await expect(pool.run([window('b', { n: 1 })])).rejects.toMatchObject({ code: 'POOL_CLOSED' });
    // A close() too many does nothing.
    await expect(pool.close()).resolves.toBeUndefined();
  });

  it('closes a pool that never started', async () => {
    const pool = createPool('echo.mjs', { size: 1 });
    await pool.close();
    await expect(pool.run([window('a', { n: 1 })])).rejects.toMatchObject({ code: 'POOL_CLOSED' });
  });
});

describe('workerPool: options', () => {
  const echo = fixture('echo.mjs');

  it.each<[string, WorkerPoolOptions, string]>([
    ['size 0', { size: 0 }, 'size must be a whole number >= 1, got 0'],
    ['fractional size', { size: 1.5 }, 'got 1.5'],
    ['negative retries', { retries: -1 }, 'retries must be a whole number >= 0, got -1'],
    ['batchSize 0', { batchSize: 0 }, 'batchSize must be a whole number >= 1, got 0'],
    ['maxQueue as string', { maxQueue: '10' as unknown as number }, 'maxQueue must be a whole number >= 1, got "10"'],
    ['timeout in words', { timeout: 'soon' as unknown as number }, 'timeout: invalid duration "soon"'],
    ['zero timeout', { timeout: 0 }, 'timeout: invalid duration 0'],
    ['empty exportName', { exportName: '' }, 'exportName must be a non-empty string, got ""'],
    ['a misspelt option', { timout: '1s' } as WorkerPoolOptions, 'unknown option "timout"'],
  ])('rejects %s with the bad value in the message', (_, options, message) => {
    expect(() => workerPool(echo, options)).toThrow(message);
    try {
      workerPool(echo, options);
    } catch (error) {
      expect(error).toMatchObject({ code: 'CONFIG_INVALID' });
    }
  });

  it('rejects a module that is not a local file', () => {
    expect(() => workerPool('https://example.com/model.js')).toThrow('must be a file: URL, got "https://example.com/model.js"');
    expect(() => workerPool(new URL('./missing.mjs', echo))).toThrow(/missing\.mjs" does not exist/);
  });

  it('accepts durations as strings and a path string for the module', async () => {
    const pool = workerPool<ClosedWindow, Echoed>(echo.pathname, { size: 1, timeout: '2s' });
    openPools.push(pool);
    expect(values(await pool.run([window('a', { n: 21 })]))[0]?.doubled).toBe(42);
  });
});
