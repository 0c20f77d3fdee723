/**
 * Backlog scenarios around the in-step delivery: the 2,000-record probe, merged topics with
 * different extractors, live sends during the backlog, stop/restart mid-backlog (memory and level),
 * a windowed stream–stream join, two instances, TestDriver determinism. Input in event-time order
 * with grace 0 unless said otherwise, so that any late record is the delivery's doing.
 */
import { describe, expect, it } from 'vitest';
import { createApp, memoryTransport, MemoryTransport, silentLogger } from '@eddy/core';
import { TestDriver, VirtualClock } from '@eddy/core/testing';
import { levelState, levelTransport } from '@eddy/state';
import { check, clean, clicks, CLOSER, readWindows, reference, runBacklog, sleep, tempDir, waitFor, windowPipeline, winId, type Click, type Win } from './helpers.ts';

const quiet = { warn: () => undefined, info: () => undefined };
const closers = (input: readonly Click[]) => [...new Set(input.map((c) => c.user))].map((user) => ({ value: { seq: -1, user, ts: CLOSER }, key: user, timestamp: CLOSER }));

describe('a sub-topology merging two topics with different extractors', () => {
  it('topic a by record timestamps, topic b by an extractor (records stamped 0): none late, exact', async () => {
    const transport = memoryTransport({ defaultPartitions: 3 });
    const app = createApp({ id: 'merge', transport, idleTimeout: false, logger: silentLogger });
    const a = app.from<Click>('a');
    const b = app.from<Click>('b', { timestamp: (c) => c.ts });
    a.merge(b)
      .keyBy((c) => c.user)
      .tumbling(1_000, { grace: 0 })
      .aggregate({ init: () => [] as number[], add: (s: number[], c: Click) => [...s, c.seq], merge: (x: number[], y: number[]) => [...x, ...y] })
      .onClose(({ key, start, end, value }): Win => ({ key: key as string, start, end, seqs: [...value].sort((x, y) => x - y) }))
      .to('out');
    const input = clicks(61, 3_000, 20, 0);
    await app.sendBatch('a', input.filter((c) => c.seq % 2 === 0).map((c) => ({ value: c, key: String(c.seq), timestamp: c.ts })));
    await app.sendBatch('b', input.filter((c) => c.seq % 2 === 1).map((c) => ({ value: c, key: String(c.seq), timestamp: 0 })));
    await app.start();
    await app.sendBatch('a', closers(input));
    const expected = reference(input, 'tumbling');
    await waitFor(() => new Set(readWindows(transport).map(winId)).size >= expected.size);
    const late = app.metrics().lateRecords;
    const result = check(expected, readWindows(transport));
    await app.stop();
    expect({ late, ...result }).toEqual({ late: 0, ...clean });
  });
});

describe('backlog plus live sends', () => {
  it('half preloaded, the other half sent in chunks while the backlog runs (4 partitions): none late, exact', async () => {
    const transport = memoryTransport({ defaultPartitions: 4 });
    const app = createApp({ id: 'live', transport, idleTimeout: false, logger: silentLogger });
    windowPipeline(app, { kind: 'hopping', graceMs: 0 });
    const input = clicks(71, 4_000, 15, 0);
    const send = (part: readonly Click[]) => app.sendBatch('clicks', part.map((c) => ({ value: c, key: String(c.seq), timestamp: c.ts })));
    await send(input.slice(0, 2_000));
    await app.start();
    for (let from = 2_000; from < input.length; from += 100) {
      await send(input.slice(from, from + 100));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await app.sendBatch('clicks', closers(input));
    const expected = reference(input, 'hopping');
    await waitFor(() => new Set(readWindows(transport).map(winId)).size >= expected.size);
    const late = app.metrics().lateRecords;
    const result = check(expected, readWindows(transport));
    await app.stop();
    expect({ late, ...result }).toEqual({ late: 0, ...clean });
  });
});

/** At-least-once: a window may repeat after a restart, always with the same value; none may be lost. */
function checkRepeats(expected: Map<string, number[]>, got: readonly Win[]) {
  const values = new Map<string, Set<string>>();
  for (const w of got) values.set(winId(w), (values.get(winId(w)) ?? new Set()).add(JSON.stringify(w.seqs)));
  return {
    missing: [...expected.keys()].filter((id) => !values.has(id)).slice(0, 10),
    differing: [...values].filter(([, v]) => v.size > 1).map(([id]) => id).slice(0, 10),
    wrong: [...values].filter(([id, v]) => v.size === 1 && [...v][0] !== JSON.stringify(expected.get(id))).map(([id]) => id).slice(0, 10),
  };
}

describe('stop in the middle of a backlog, then a new app', () => {
  async function twice(makeTransport: () => { transport: MemoryTransport; state?: () => ReturnType<typeof levelState>; read: () => Win[] }) {
    const input = clicks(81, 6_000, 10, 0);
    const env = makeTransport();
    const build = () => {
      const app = createApp({ id: 'restart', transport: env.transport, ...(env.state ? { state: env.state() } : {}), idleTimeout: false, commitInterval: '20ms', logger: silentLogger });
      windowPipeline(app, { kind: 'tumbling', graceMs: 0 });
      return app;
    };
    const first = build();
    await first.sendBatch('clicks', input.map((c) => ({ value: c, key: String(c.seq), timestamp: c.ts })));
    await first.start();
    await waitFor(() => env.read().length >= 20, 5_000, 0);
    const lateFirst = first.metrics().lateRecords;
    await first.stop();
    const before = env.read().length;
    const second = build();
    await second.start();
    await second.sendBatch('clicks', closers(input));
    const expected = reference(input, 'tumbling');
    await waitFor(() => new Set(env.read().map(winId)).size >= expected.size);
    const late = lateFirst + second.metrics().lateRecords;
    const got = env.read();
    await second.stop();
    return { before, late, lateFirst, result: checkRepeats(expected, got) };
  }

  it('on a shared memoryTransport: nothing lost, repeats with the same value, none late', async () => {
    const transport = memoryTransport({ defaultPartitions: 3 });
    const { before, late, result } = await twice(() => ({ transport, read: () => readWindows(transport) }));
    expect(before).toBeGreaterThan(0);
    expect({ late, ...result }).toEqual({ late: 0, missing: [], differing: [], wrong: [] });
  });

  it('on levelTransport + levelState in a temp dir: nothing lost, repeats with the same value, none late', async () => {
    const dir = tempDir();
    const transport = levelTransport({ dir, logger: quiet, defaultPartitions: 3 } as Parameters<typeof levelTransport>[0]);
    const dec = new TextDecoder();
    const read = () =>
      transport
        .records('out')
        .map((r) => (r.decoded ? (r.decoded.value as Win) : (JSON.parse(dec.decode(r.value!)) as Win)))
        .filter((w) => w.start < CLOSER - 10_000);
    const { before, late, lateFirst, result } = await twice(() => ({ transport, state: () => levelState({ dir, logger: quiet }), read }));
    expect(before).toBeGreaterThan(0);
    expect({ lateFirst, late, ...result }).toEqual({ lateFirst: 0, late: 0, missing: [], differing: [], wrong: [] });
  });
});

describe('windowed stream–stream join downstream', () => {
  it('both sides preloaded, keyed by seq, in order, grace 0 (3 partitions): every pair once, none late', async () => {
    const transport = memoryTransport({ defaultPartitions: 3 });
    const app = createApp({ id: 'join', transport, idleTimeout: false, logger: silentLogger });
    const W = 100;
    const left = app.from<Click>('left').keyBy((c) => c.user);
    const right = app.from<Click>('right').keyBy((c) => c.user);
    left.join(right, (l, r) => ({ l: l.seq, r: r.seq }), { within: W, grace: 0 }).to('pairs');
    const input = clicks(91, 3_000, 10, 0);
    const sides = input.map((c) => ({ ...c, side: c.seq % 3 === 0 ? 'R' : 'L' }));
    await app.sendBatch('left', sides.filter((c) => c.side === 'L').map((c) => ({ value: c, key: String(c.seq), timestamp: c.ts })));
    await app.sendBatch('right', sides.filter((c) => c.side === 'R').map((c) => ({ value: c, key: String(c.seq), timestamp: c.ts })));
    const expected = new Set<string>();
    const byUser = new Map<string, typeof sides>();
    for (const c of sides) byUser.set(c.user, [...(byUser.get(c.user) ?? []), c]);
    for (const list of byUser.values())
      for (const l of list) if (l.side === 'L') for (const r of list) if (r.side === 'R' && Math.abs(l.ts - r.ts) <= W) expected.add(`${l.seq}-${r.seq}`);
    await app.start();
    const dec = new TextDecoder();
    const pairs = () => transport.records('pairs').map((r) => (r.decoded ? r.decoded.value : JSON.parse(dec.decode(r.value!))) as { l: number; r: number }).map((p) => `${p.l}-${p.r}`);
    await waitFor(() => pairs().length >= expected.size, 8_000, 200);
    const late = app.metrics().lateRecords;
    const got = pairs();
    await app.stop();
    expect(late).toBe(0);
    expect(got.length).toBe(new Set(got).size);
    expect([...expected].filter((p) => !got.includes(p)).slice(0, 10)).toEqual([]);
    expect(got.filter((p) => !expected.has(p)).slice(0, 10)).toEqual([]);
  });
});

describe('levelTransport, no restart', () => {
  it('in order, grace 0, 3 partitions, keyed by seq: none late, exact (as on memoryTransport)', async () => {
    const input = clicks(81, 1_500, 10, 0);
    const transport = levelTransport({ dir: tempDir(), logger: quiet, defaultPartitions: 3 } as Parameters<typeof levelTransport>[0]);
    const run = await runBacklog(input, { kind: 'tumbling', graceMs: 0, partitions: 3, transport, keyOf: (c) => String(c.seq) });
    expect({ late: run.late, ...run.result }).toEqual({ late: 0, ...clean });
  });
});

describe('two instances started at the same time', () => {
  it('Promise.all of two starts on one memoryTransport succeeds', async () => {
    const transport = memoryTransport({ defaultPartitions: 4 });
    const apps = [0, 1].map(() => {
      const app = createApp({ id: 'concurrent', transport, idleTimeout: false, logger: silentLogger });
      windowPipeline(app, { kind: 'tumbling', graceMs: 0 });
      return app;
    });
    const started = await Promise.allSettled(apps.map((app) => app.start()));
    await Promise.allSettled(apps.map((app) => app.stop()));
    expect(started.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))).toEqual(['ok', 'ok']);
  });
});

describe('TestDriver with 4 partitions on a preloaded broker', () => {
  async function once(seed: number) {
    const clock = new VirtualClock(0);
    const transport = new MemoryTransport({ defaultPartitions: 4, clock });
    const app = createApp({ id: 'driver', transport, idleTimeout: false, logger: silentLogger });
    windowPipeline(app, { kind: 'sliding', graceMs: 0 });
    const input = clicks(seed, 2_000, 10, 0);
    await app.sendBatch('clicks', input.map((c) => ({ value: c, key: String(c.seq), timestamp: c.ts })));
    const driver = await TestDriver.start(app, { transport });
    for (const closer of closers(input)) await driver.send('clicks', closer.value, { key: closer.key, timestamp: closer.timestamp });
    await driver.advanceTime('1s');
    const out = driver.read<Win>('out').map((r) => r.value).filter((w) => w.start < CLOSER - 10_000);
    const late = app.metrics().lateRecords;
    await driver.stop();
    return { out, late, expected: reference(input, 'sliding') };
  }

  it('same seed twice gives the same outputs in the same order, equal to the reference', async () => {
    const a = await once(111);
    const b = await once(111);
    expect(b.out.map(winId)).toEqual(a.out.map(winId));
    expect(b.out).toEqual(a.out);
    expect({ late: a.late, ...check(a.expected, a.out) }).toEqual({ late: 0, ...clean });
  });
});

void sleep;
