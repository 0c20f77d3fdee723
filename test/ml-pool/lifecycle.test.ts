/**
 * The pool across the app's life, in real time: stop() while windows are in flight (drained,
 * committed, nothing replayed after a restart, on the memory broker and on disk), stop() with a
 * hung model (never a hang), backpressure with a small queue, a pool shared by two apps, and large
 * windows crossing to the workers. Every window is counted against a brute-force reference.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { createApp, memoryTransport, silentLogger, type MemoryTransport, type Transport, type StateBackend } from '@eddy/core';
import { workerPool } from '@eddy/ml';
import { levelState, levelTransport } from '@eddy/state';
import { count, decode, MODEL, reference, sleep, strip, tempDir, until, windowId, type Reading, type Result } from './helpers.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

const KEYS = 5;
const SIZE = 1000;

function build(id: string, transport: Transport, pool: ReturnType<typeof workerPool>, state?: StateBackend) {
  const app = createApp({ id, transport, state, idleTimeout: false, commitInterval: '50ms', logger: silentLogger });
  app.from<Reading>('in', { timestamp: (r) => r.ts }).keyBy((r) => r.k).tumbling(SIZE).collect().onClose(pool).to('out');
  return app;
}

/** Readings of KEYS keys, four per key per window, in timestamp order. */
function readings(windows: number, sleepMs: number): Reading[] {
  const out: Reading[] = [];
  for (let t = 0; t < windows * 4; t++) for (let k = 0; k < KEYS; k++) out.push({ k: `k${k}`, v: (t * 13 + k) % 17, ts: t * 250 + k, sleep: sleepMs });
  return out;
}

async function readAll(transport: MemoryTransport, topic: string): Promise<Result[]> {
  const results: Result[] = [];
  for await (const batch of transport.readPartition({ topic, partition: 0 }, 0)) for (const record of batch) results.push(decode(record.value) as Result);
  return results;
}

function expectExactlyOnce(results: Result[], ref: ReturnType<typeof reference>) {
  const seen = count(results.map(windowId));
  const repeated = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  const missing = [...ref.keys()].filter((id) => !seen.has(id));
  const unexpected = [...seen.keys()].filter((id) => !ref.has(id));
  expect({ missing, repeated, unexpected }).toEqual({ missing: [], repeated: [], unexpected: [] });
  for (const result of results) expect(strip(result)).toEqual(strip(ref.get(windowId(result))!));
  for (let k = 0; k < KEYS; k++) {
    const starts = results.filter((r) => r.key === `k${k}`).map((r) => r.start);
    expect(starts).toEqual([...starts].sort((a, b) => a - b));
  }
}

describe('workerPool across stop() and restart', () => {
  for (const durable of [false, true]) {
    it(`stop() while windows are in flight drains them; a restart (${durable ? 'levelTransport + levelState on disk' : 'shared memoryTransport'}) gives every other window: each exactly once, in order`, async () => {
      const dir = tempDir('restart');
      dirs.push(dir);
      const shared = memoryTransport();
      const transportFor = () => (durable ? levelTransport({ dir, logger: { warn: () => {}, info: () => {} } }) : shared);
      const stateFor = () => (durable ? levelState({ dir, logger: { warn: () => {}, info: () => {} } }) : undefined);
      const input = readings(60, 15);
      const flush: Reading = { k: 'flush', v: 0, ts: 1_000_000 };
      const ref = reference([...input, flush], SIZE, 1_000_000);

      const pool1 = workerPool(MODEL, { size: 2, batchSize: 4, timeout: '10s' });
      const transport1 = transportFor();
      const app1 = build('mlstop', transport1, pool1, stateFor());
      await app1.start();
      for (const r of input) await app1.send('in', r, { key: r.k });
      // Let some windows reach the pool, then stop in the middle of their work.
      await until(() => pool1.queueDepth > 0, 10_000, 'windows in the pool');
      await sleep(100);
      await app1.stop();
      expect(pool1.queueDepth).toBe(0);
      const afterStop = durable ? undefined : shared.records('out').length;
      await sleep(200);
      if (!durable) expect(shared.records('out').length).toBe(afterStop);

      const pool2 = workerPool(MODEL, { size: 2, batchSize: 4, timeout: '10s' });
      const transport2 = transportFor();
      const app2 = build('mlstop', transport2, pool2, stateFor());
      await app2.start();
      await app2.send('in', flush, { key: flush.k });
      const outCount = async () => (await readAll(transport2, 'out')).length;
      const deadline = Date.now() + 30_000;
      while ((await outCount()) < ref.size && Date.now() < deadline) await sleep(50);
      await (transport2 as MemoryTransport).idle();
      await app2.stop();
      expect(app2.metrics().deadLetters).toBe(0);

      let results: Result[];
      if (durable) {
        const reader = levelTransport({ dir, logger: { warn: () => {}, info: () => {} } });
        await reader.connect();
        results = await readAll(reader, 'out');
        await reader.close();
      } else {
        results = await readAll(shared, 'out');
      }
      expectExactlyOnce(results, ref);
    }, 90_000);
  }

  it('stop() with a model that never answers resolves (timeout, then dead letter), never hangs', async () => {
    const transport = memoryTransport();
    const pool = workerPool(MODEL, { size: 1, retries: 1, timeout: '300ms' });
    const app = build('mlhang', transport, pool);
    await app.start();
    await app.send('in', { k: 'a', v: 1, ts: 0, act: 'stall' }, { key: 'a' });
    await app.send('in', { k: 'a', v: 2, ts: 10, }, { key: 'a' });
    await app.send('in', { k: 'b', v: 5, ts: 20 }, { key: 'b' });
    await app.send('in', { k: 'flush', v: 0, ts: 5000 }, { key: 'flush' });
    await until(() => pool.queueDepth > 0, 10_000, 'windows in the pool');
    const started = Date.now();
    await app.stop();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(transport.records('mlhang-dlq').map((record) => decode(record.key))).toEqual(['a']);
    expect(transport.records('mlhang-dlq')[0]!.headers['error.code']).toBe('WORKER_TIMEOUT');
    expect(transport.records('out').map((record) => (decode(record.value) as Result).key)).toEqual(['b']);
  }, 30_000);
});

describe('workerPool backpressure and sharing', () => {
  it('a small maxQueue pauses the source: the queue stays bounded and every window comes out once, in order', async () => {
    const transport = memoryTransport();
    const pool = workerPool(MODEL, { size: 1, maxQueue: 4, batchSize: 2, timeout: '10s' });
    const app = build('mlbp', transport, pool);
    await app.start();
    const input = readings(200, 1); // 1000 windows, 1 ms each on one worker
    const flush: Reading = { k: 'flush', v: 0, ts: 1_000_000 };
    const ref = reference([...input, flush], SIZE, 1_000_000);
    let maxDepth = 0;
    let sawDegraded = false;
    const probe = setInterval(() => {
      maxDepth = Math.max(maxDepth, pool.queueDepth);
      if (app.health().status === 'degraded') sawDegraded = true;
    }, 1);
    try {
      await app.sendBatch('in', [...input, flush].map((value) => ({ value, key: value.k })));
      await until(() => transport.records('out').length >= ref.size, 40_000, 'every window');
      await transport.idle();
    } finally {
      clearInterval(probe);
    }
    await app.stop();
    expectExactlyOnce(await readAll(transport, 'out'), ref);
    expect(sawDegraded).toBe(true);
    // The source may only pause between deliveries: one delivery of the embedded broker (at most
    // 500 records, i.e. 25 window boundaries of KEYS keys here) closes at most 125 windows. So the
    // queue may hold maxQueue + 125 windows, never a growing share of the input (1000 windows).
    expect(maxDepth).toBeLessThanOrEqual(4 + (500 / (4 * KEYS)) * KEYS);
  }, 60_000);

  it('one pool given to two apps: stopping one leaves the other working', async () => {
    const pool = workerPool(MODEL, { size: 1, timeout: '10s' });
    const transportA = memoryTransport();
    const transportB = memoryTransport();
    const appA = build('mlshare-a', transportA, pool);
    const appB = build('mlshare-b', transportB, pool);
    await appA.start();
    await appB.start();
    for (const app of [appA, appB]) {
      await app.send('in', { k: 'x', v: 1, ts: 0 }, { key: 'x' });
      await app.send('in', { k: 'x', v: 2, ts: 1000 }, { key: 'x' });
    }
    await until(() => transportA.records('out').length === 1 && transportB.records('out').length === 1, 10_000, 'one result each');
    await appA.stop();
    await appB.send('in', { k: 'x', v: 3, ts: 2000 }, { key: 'x' });
    await until(() => transportB.records('out').length + transportB.records('mlshare-b-dlq').length >= 2, 10_000, 'a second outcome in B');
    await transportB.idle();
    const dead = transportB.records('mlshare-b-dlq');
    await appB.stop();
    expect(dead.map((record) => record.headers['error.code'])).toEqual([]);
    expect(transportB.records('out').map((record) => strip(decode(record.value) as Result))).toEqual([
      { key: 'x', start: 0, end: 1000, n: 1, sum: 1 },
      { key: 'x', start: 1000, end: 2000, n: 1, sum: 2 },
    ]);
  }, 30_000);

  it('one pool given to two apps: an app that fails to start, then is stopped, leaves the other working', async () => {
    const pool = workerPool(MODEL, { size: 1, timeout: '10s' });
    const transportA = memoryTransport();
    const appA = build('mlfail-a', transportA, pool);
    await appA.start();
    // Refused at start before its handlers start (a pipeline writing the topic it reads), then stopped.
    const appB = createApp({ id: 'mlfail-b', transport: memoryTransport(), logger: silentLogger });
    appB.from<Reading>('loop', { timestamp: (r) => r.ts }).keyBy((r) => r.k).tumbling(SIZE).collect().onClose(pool).to('loop');
    await expect(appB.start()).rejects.toThrow(/loop/);
    await appB.stop();
    await appA.send('in', { k: 'x', v: 1, ts: 0 }, { key: 'x' });
    await appA.send('in', { k: 'x', v: 2, ts: 1000 }, { key: 'x' });
    await until(() => transportA.records('out').length + transportA.records('mlfail-a-dlq').length >= 1, 10_000, 'an outcome in A');
    await transportA.idle();
    const dead = transportA.records('mlfail-a-dlq');
    await appA.stop();
    expect(dead.map((record) => record.headers['error.code'])).toEqual([]);
    expect(transportA.records('out').map((record) => strip(decode(record.value) as Result))).toEqual([{ key: 'x', start: 0, end: 1000, n: 1, sum: 1 }]);
  }, 30_000);

  it('an app restarted in the same process with the same pool object (declared once, as in the README) starts and gives its windows', async () => {
    const pool = workerPool(MODEL, { size: 1, timeout: '10s' });
    const transport = memoryTransport();
    const first = build('mlsame', transport, pool);
    await first.start();
    await first.send('in', { k: 'x', v: 1, ts: 0 }, { key: 'x' });
    await first.send('in', { k: 'x', v: 2, ts: 1000 }, { key: 'x' });
    await until(() => transport.records('out').length === 1, 10_000, 'the first result');
    await first.stop();
    const second = build('mlsame', transport, pool);
    await second.start();
    await second.send('in', { k: 'x', v: 3, ts: 2000 }, { key: 'x' });
    await until(() => transport.records('out').length + transport.records('mlsame-dlq').length >= 2, 10_000, 'a second outcome');
    await transport.idle();
    await second.stop();
    expect(transport.records('mlsame-dlq')).toHaveLength(0);
    expect(transport.records('out').map((record) => strip(decode(record.value) as Result))).toEqual([
      { key: 'x', start: 0, end: 1000, n: 1, sum: 1 },
      { key: 'x', start: 1000, end: 2000, n: 1, sum: 2 },
    ]);
  }, 30_000);

  it('large windows (about 1 MB each, many at once) cross to the workers and back intact', async () => {
    const transport = memoryTransport();
    const pool = workerPool(new URL('./big.mjs', import.meta.url), { size: 2, batchSize: 8, timeout: '10s' });
    const app = createApp({ id: 'mlbig', transport, idleTimeout: false, commitInterval: '100ms', logger: silentLogger });
    app.from<{ k: string; ts: number; payload: number[] }>('in', { timestamp: (r) => r.ts }).keyBy((r) => r.k).tumbling(SIZE).collect().onClose(pool).to('out');
    await app.start();
    const keys = 12;
    const expected = new Map<string, { n: number; sum: number }>();
    for (let k = 0; k < keys; k++) {
      // Two readings of 60,000 numbers each: ~1 MB of JSON per window.
      for (let j = 0; j < 2; j++) {
        const payload = Array.from({ length: 60_000 }, (_, i) => (i * (k + 1) + j) % 1000);
        const e = expected.get(`k${k}`) ?? { n: 0, sum: 0 };
        e.n += payload.length;
        e.sum += payload.reduce((a, b) => a + b, 0);
        expected.set(`k${k}`, e);
        await app.send('in', { k: `k${k}`, ts: j * 10 + k, payload }, { key: `k${k}` });
      }
    }
    await app.send('in', { k: 'flush', ts: 5000, payload: [] }, { key: 'flush' });
    await until(() => transport.records('out').length >= keys, 30_000, 'every large window');
    await transport.idle();
    await app.stop();
    const results = transport.records('out').map((record) => decode(record.value) as { key: string; n: number; sum: number });
    expect(new Map(results.map((r) => [r.key, { n: r.n, sum: r.sum }]))).toEqual(expected);
    expect(results).toHaveLength(keys);
    expect(app.metrics().deadLetters).toBe(0);
  }, 60_000);

  it('timeout is per window: a batch of large windows whose model takes ~1 ms each is not timed out for the time the batch takes to cross', async () => {
    const transport = memoryTransport();
    // Each window runs in about a millisecond, far below the 300 ms timeout; a batch of 32 of
    // them (2.4 MB each) takes about a second to be cloned to the worker.
    const pool = workerPool(new URL('./big.mjs', import.meta.url), { size: 1, batchSize: 32, timeout: '300ms', retries: 0 });
    const app = createApp({ id: 'mlbigt', transport, idleTimeout: false, commitInterval: '100ms', logger: silentLogger });
    app.from<{ k: string; ts: number; payload: number[] }>('in', { timestamp: (r) => r.ts }).keyBy((r) => r.k).tumbling(SIZE).collect().onClose(pool).to('out');
    await app.start();
    const keys = 32;
    const payload = Array.from({ length: 300_000 }, (_, i) => i % 7);
    const sum = payload.reduce((a, b) => a + b, 0);
    await app.sendBatch('in', Array.from({ length: keys }, (_, k) => ({ value: { k: `k${k}`, ts: k, payload }, key: `k${k}` })));
    await app.send('in', { k: 'flush', ts: 5000, payload: [] }, { key: 'flush' });
    await until(() => transport.records('out').length + transport.records('mlbigt-dlq').length >= keys, 60_000, 'every large window');
    await transport.idle();
    await app.stop();
    const dead = transport.records('mlbigt-dlq').map((record) => `${String(decode(record.key))}: ${record.headers['error']}`);
    expect(dead).toEqual([]);
    const results = transport.records('out').map((record) => decode(record.value) as { key: string; n: number; sum: number });
    expect(results).toHaveLength(keys);
    for (const r of results) expect(r).toMatchObject({ n: payload.length, sum });
  }, 90_000);
});
