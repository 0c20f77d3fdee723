/**
 * The TestDriver's contract ("Testing a pipeline in virtual time"): send() returns once everything
 * that follows from the record is processed (async handlers included, whatever real time they
 * take), advanceTime() runs every timer due on the way at its own due time (commits, idle
 * timeouts, processing-time windows), runs are deterministic, and what the driver reports
 * (read(), now(), metrics measured on its clock) is exact.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, createApp, serdes, type Logger } from '@eddy/core';
import { TestDriver, mulberry32 } from '@eddy/core/testing';

const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
interface Ev { k: string; v: number; ts: number }

const realDelay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('send() and advanceTime() wait for async handlers, whatever real time they take', () => {
  it('a close handler awaiting real timers (0–15 ms) has its result in read() as soon as send() returns', async () => {
    const rand = mulberry32(3);
    const app = createApp({ id: 'async', idleTimeout: false, logger: quiet });
    app
      .from<Ev>('in', { timestamp: (e) => e.ts })
      .keyBy((e) => e.k)
      .tumbling(100)
      .sum((e) => e.v)
      .onClose(async (w) => {
        await realDelay(Math.floor(rand() * 15));
        await new Promise((resolve) => setImmediate(resolve));
        return { key: w.key, start: w.start, sum: w.value };
      })
      .to('out');
    const driver = await TestDriver.start(app);
    const expected = new Map<string, number>();
    let ts = 0;
    for (let i = 0; i < 40; i++) {
      ts += 30;
      const k = `k${i % 3}`;
      await driver.send('in', { k, v: i, ts }, { key: k });
      const id = `${k}@${Math.floor(ts / 100) * 100}`;
      expected.set(id, (expected.get(id) ?? 0) + i);
      // Every window of every key whose end <= ts has closed: its result is there now.
      const closedIds = [...expected.keys()].filter((wid) => Number(wid.split('@')[1]) + 100 <= ts);
      const got = driver.read<{ key: string; start: number; sum: number }>('out').map((o) => `${o.value.key}@${o.value.start}`);
      expect(got.sort(), `after record ${i}`).toEqual(closedIds.sort());
    }
    await driver.stop();
  });
});

describe('determinism', () => {
  async function run(seed: number) {
    const rand = mulberry32(seed);
    const delays = mulberry32(seed + 1);
    const app = createApp({ id: 'det', idleTimeout: '2s', logger: quiet });
    const table = app
      .from<Ev>('in', { timestamp: (e) => e.ts })
      .keyBy((e) => e.k)
      .hopping(300, 100, { grace: 50 })
      .collect();
    table.onClose(async (w) => {
      await realDelay(Math.floor(delays() * 4));
      return { key: w.key, start: w.start, n: w.value.length, ids: w.value.map((e) => e.v) };
    }).to('out');
    table.onLate((l) => ({ key: l.key, start: l.start, v: l.value.v })).to('late');
    const driver = await TestDriver.start(app, { startTime: 1_000_000, partitions: 2 });
    let ts = 5_000;
    for (let i = 0; i < 300; i++) {
      ts += Math.floor(rand() * 30);
      const k = `k${Math.floor(rand() * 5)}`;
      const t = rand() < 0.2 ? ts - Math.floor(rand() * 600) : ts;
      if (rand() < 0.05) await driver.advanceTime(Math.floor(rand() * 4000));
      await driver.send('in', { k, v: i, ts: t }, { key: k });
    }
    await driver.advanceTime('1m');
    const metrics = app.metrics();
    const result = {
      out: driver.read('out').map(({ key, value, timestamp }) => ({ key, value, timestamp })),
      late: driver.read('late').map(({ key, value, timestamp }) => ({ key, value, timestamp })),
      lateRecords: metrics.lateRecords,
      windowsClosed: metrics.windowsClosed,
      streamTime: metrics.streamTime,
      recordsOut: metrics.recordsOut,
    };
    await driver.stop();
    return result;
  }

  it('the same input twice gives the same results in the same order, and the same metrics', async () => {
    const first = await run(11);
    const second = await run(11);
    expect(first.out.length).toBeGreaterThan(50);
    expect(first.late.length).toBeGreaterThan(0);
    expect(second).toEqual(first);
  }, 60_000);
});

describe('commits run on the virtual clock', () => {
  it('lastCommitAgeMs is virtual time since the last commit, commitInterval apart', async () => {
    const app = createApp({ id: 'commits', idleTimeout: false, commitInterval: '1h', logger: quiet });
    app.from<Ev>('in').map((e) => e).to('out');
    const driver = await TestDriver.start(app, { startTime: 5_000_000 });
    await driver.send('in', { k: 'a', v: 1, ts: 0 }, { key: 'a' });
    await driver.advanceTime('10m');
    for (const age of Object.values(app.metrics().lastCommitAgeMs)) expect(age).toBe(600_000);
    await driver.advanceTime('55m'); // a commit at 60 min
    for (const age of Object.values(app.metrics().lastCommitAgeMs)) expect(age).toBe(300_000);
    expect(app.health()).toEqual({ status: 'ok', reasons: [] });
    await driver.stop();
  });
});

describe('advanceTime runs each idle-timeout close at its own due time', () => {
  it('windows of a quiet stream close one by one during a single advanceTime, at idle + close - stream time; streamTime follows the clock', async () => {
    const IDLE = 3000;
    const GRACE = 250;
    const rand = mulberry32(5);
    const closedAt: Array<{ key: string; start: number; now: number }> = [];
    let clockNow = (): number => Number.NaN;
    const app = createApp({ id: 'idle-steps', idleTimeout: IDLE, logger: quiet });
    app
      .from<Ev>('in', { timestamp: (e) => e.ts })
      .keyBy((e) => e.k)
      .hopping(1000, 250, { grace: GRACE })
      .count()
      .onClose((w) => void closedAt.push({ key: w.key, start: w.start, now: clockNow() }))
      .to('out');
    const driver = await TestDriver.start(app, { startTime: 0 });
    clockNow = () => driver.now();
    const windows = new Set<string>();
    let st = -Infinity;
    for (let i = 0; i < 80; i++) {
      const k = `k${Math.floor(rand() * 3)}`;
      const ts = 10_000 + i * 37 + Math.floor(rand() * 30);
      await driver.advanceTime(Math.floor(rand() * 100)); // never idle: gaps far below IDLE
      await driver.send('in', { k, v: 1, ts }, { key: k });
      st = Math.max(st, ts);
      for (let s = Math.floor(ts / 250) * 250; s > ts - 1000; s -= 250) windows.add(`${k}@${s}`);
    }
    const c0 = driver.now();
    const already = closedAt.length;
    const S = st;
    // Still open after the last record: windows whose end + grace > S.
    const pending = [...windows]
      .map((id) => ({ key: id.split('@')[0]!, start: Number(id.split('@')[1]) }))
      .filter((w) => w.start + 1000 + GRACE > S)
      .map((w) => ({ ...w, now: c0 + IDLE + (w.start + 1000 + GRACE - S) }));
    expect(pending.length).toBeGreaterThan(3);
    await driver.advanceTime('1m');
    const got = closedAt.slice(already).sort((a, b) => a.now - b.now || a.key.localeCompare(b.key) || a.start - b.start);
    const want = pending.sort((a, b) => a.now - b.now || a.key.localeCompare(b.key) || a.start - b.start);
    expect(got).toEqual(want);
    // Stream time = last stream time + clock time since the task went idle.
    await driver.stop();
  });
});

describe('processing time in the driver', () => {
  async function run(options: { explicit: boolean }) {
    const rand = mulberry32(21);
    const calls: Array<{ key: string; start: number; end: number; value: number; now: number }> = [];
    let clockNow = (): number => Number.NaN;
    const app = createApp({ id: 'pt', time: 'processing', logger: quiet });
    app
      .from<Ev>('in')
      .keyBy((e) => e.k)
      .tumbling(500, { grace: 120 })
      .count()
      .onClose((w) => {
        calls.push({ key: w.key, start: w.start, end: w.end, value: w.value, now: clockNow() });
        return { key: w.key, start: w.start };
      })
      .to('out');
    const driver = await TestDriver.start(app, { startTime: 100_000, partitions: 2 });
    clockNow = () => driver.now();
    const arrivals: Array<{ k: string; at: number }> = [];
    for (let i = 0; i < 150; i++) {
      await driver.advanceTime(Math.floor(rand() * 60));
      const k = `k${Math.floor(rand() * 4)}`;
      const bogus = Math.floor(rand() * 10_000_000); // not the clock: must be ignored
      arrivals.push({ k, at: driver.now() });
      await driver.send('in', { k, v: i, ts: bogus }, options.explicit ? { key: k, timestamp: bogus } : { key: k });
    }
    await driver.advanceTime('10s');
    const out = driver.read<{ key: string; start: number }>('out');
    const lateRecords = app.metrics().lateRecords;
    await driver.stop();
    return { calls, arrivals, out, lateRecords };
  }

  for (const explicit of [false, true]) {
    it(`windows by arrival clock, each closed exactly at end + grace on the clock${explicit ? ' (send() given other timestamps, ignored)' : ''}`, async () => {
      const { calls, arrivals, out, lateRecords } = await run({ explicit });
      const counts = new Map<string, number>();
      for (const a of arrivals) {
        const id = `${a.k}@${Math.floor(a.at / 500) * 500}`;
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      const want = [...counts].map(([id, value]) => {
        const start = Number(id.split('@')[1]);
        return { key: id.split('@')[0]!, start, end: start + 500, value, now: start + 500 + 120 };
      });
      const order = (a: { key: string; start: number }, b: { key: string; start: number }) => a.start - b.start || a.key.localeCompare(b.key);
      expect([...calls].sort(order)).toEqual(want.sort(order));
      for (const o of out) expect(o.timestamp).toBe(o.value.start + 499);
      expect(lateRecords).toBe(0);
    });
  }
});

describe('what the driver reports', () => {
  it('send() stamps records with now() by default; read() decodes with the serdes the app writes with', async () => {
    const app = createApp({ id: 'rep', idleTimeout: false, logger: quiet });
    app.from<Ev>('in').map((e) => `${e.k}:${e.v}`).to('out', { value: serdes.string() });
    const driver = await TestDriver.start(app, { startTime: 1_000 });
    await driver.advanceTime('3s');
    await driver.send('in', { k: 'a', v: 1, ts: 0 }, { key: 'a' });
    await driver.advanceTime(0);
    await driver.send('in', { k: 'b', v: 2, ts: 0 }, { key: 'b', timestamp: 77 });
    expect(driver.now()).toBe(4_000);
    expect(driver.read('out')).toEqual([
      { key: 'a', value: 'a:1', timestamp: 4_000 },
      { key: 'b', value: 'b:2', timestamp: 77 },
    ]);
    expect(driver.read('nobody-writes-this')).toEqual([]);
    await driver.stop();
  });

  it('advanceTime with a bad duration throws a ConfigError naming it, and the clock does not move', async () => {
    const app = createApp({ id: 'bad-dur', idleTimeout: false, logger: quiet });
    app.from<Ev>('in').to('out');
    const driver = await TestDriver.start(app, { startTime: 10 });
    for (const bad of ['-5s', 'soon', -1, 2.5, '1w'] as const) {
      let caught: unknown;
      try {
        await driver.advanceTime(bad as never);
      } catch (error) {
        caught = error;
      }
      expect(caught, String(bad)).toBeInstanceOf(ConfigError);
      expect((caught as Error).message).toContain(String(bad));
    }
    expect(driver.now()).toBe(10);
    await driver.stop();
  });

  it('a NaN duration: the ConfigError names NaN (not "null")', async () => {
    const app = createApp({ id: 'nan-dur', idleTimeout: false, logger: quiet });
    app.from<Ev>('in').to('out');
    const driver = await TestDriver.start(app);
    await expect(driver.advanceTime(Number.NaN)).rejects.toThrow(/NaN/);
    expect(() => createApp({ id: 'nan-commit', commitInterval: Number.NaN })).toThrow(/NaN/);
    await driver.stop();
  });
});

describe('metrics().streamTime is the stream time the clock has reached', () => {
  it('event time: a quiet task reports last stream time + clock time since it went idle, also when no window is due', async () => {
    const app = createApp({ id: 'st-idle', idleTimeout: '1s', logger: quiet });
    app.from<Ev>('in', { timestamp: (e) => e.ts }).keyBy((e) => e.k).tumbling(1000).count().toStream().to('out');
    const driver = await TestDriver.start(app, { startTime: 0 });
    await driver.send('in', { k: 'a', v: 1, ts: 10_000 }, { key: 'a' });
    await driver.advanceTime(11_500); // idle from clock 1000: stream time 10000 + 10500
    expect(driver.read('out')).toHaveLength(1); // [10000, 11000) closed on the way
    expect(Object.values(app.metrics().streamTime)).toEqual([20_500, 20_500]);
    await driver.stop();
  });

  it('processing time: stream time is the clock', async () => {
    const app = createApp({ id: 'st-proc', time: 'processing', logger: quiet });
    app.from<Ev>('in').keyBy((e) => e.k).tumbling(1000).count().toStream().to('out');
    const driver = await TestDriver.start(app, { startTime: 0 });
    await driver.send('in', { k: 'a', v: 1, ts: 0 }, { key: 'a' });
    await driver.advanceTime(5_500);
    expect(driver.read('out')).toHaveLength(1);
    for (const value of Object.values(app.metrics().streamTime)) expect(value).toBe(5_500);
    await driver.stop();
  });
});
