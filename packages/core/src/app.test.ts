import { describe, expect, it } from 'vitest';
import { createApp, memoryState, memoryTransport, partitionForKey, silentLogger, string, type MemoryTransport, type OutgoingRecord } from './index.js';
import { TestDriver } from './testing/index.js';

interface Reading {
  sensor: string;
  value: number;
  ts: number;
}
const reading = (sensor: string, value: number, ts: number): Reading => ({ sensor, value, ts });

describe('stateless steps', () => {
  it('maps, filters, flatMaps, peeks, merges and writes with keys', async () => {
    const app = createApp({ id: 'stateless' });
    const seen: number[] = [];
    const north = app.from<Reading>('north');
    const south = app.from<Reading>('south');
    north
      .merge(south)
      .filter((r) => r.value >= 0)
      .peek((r) => seen.push(r.value))
      .flatMap((r) => [r, { ...r, value: r.value * 10 }])
      .map((r) => `${r.sensor}:${r.value}`)
      .to('out', { value: string() });
    const driver = await TestDriver.start(app);
    await driver.send('north', reading('n', 1, 0), { key: 'n' });
    await driver.send('south', reading('s', -1, 0), { key: 's' });
    await driver.send('south', reading('s', 2, 0), { key: 's' });
    expect(driver.read('out').map((r) => [r.key, r.value])).toEqual([
      ['n', 'n:1'],
      ['n', 'n:10'],
      ['s', 's:2'],
      ['s', 's:20'],
    ]);
    expect(seen).toEqual([1, 2]);
    await driver.stop();
  });

  it('continues through a topic with through()', async () => {
    const app = createApp({ id: 'through' });
    app
      .from<Reading>('in')
      .keyBy((r) => r.sensor)
      .through('by-sensor')
      .map((r) => r.value)
      .to('out');
    const driver = await TestDriver.start(app, { partitions: 3 });
    for (let i = 0; i < 30; i++) await driver.send('in', reading(`s${i % 5}`, i, i));
    const written = driver.read('by-sensor');
    expect(written).toHaveLength(30);
    for (const record of written) expect(record.partition).toBe(partitionForKey(new TextEncoder().encode(record.key!), 3));
    expect(driver.read('out').map((r) => r.value).sort((a, b) => (a as number) - (b as number))).toEqual([...Array(30).keys()]);
    await driver.stop();
  });
});

describe('async handlers', () => {
  it('emit results in window order whatever order they finish in', async () => {
    const app = createApp({ id: 'async', idleTimeout: false });
    // Event-loop turns each handler waits (by window): they finish out of window order.
    const turns = [30, 5, 20, 0, 10];
    const finished: number[] = [];
    app
      .from<Reading>('in', { timestamp: (r) => r.ts })
      .keyBy((r) => r.sensor)
      .tumbling(1000)
      .count()
      .onClose(async (w) => {
        for (let turn = 0; turn < turns[(w.start / 1000) % turns.length]!; turn++) await new Promise((resolve) => setImmediate(resolve));
        finished.push(w.start);
        return [w.start, w.end];
      })
      .to('out');
    const driver = await TestDriver.start(app);
    // In one call, so that the windows close in one batch and their handlers run at once.
    await app.sendBatch('in', Array.from({ length: 10 }, (_, second) => ({ value: reading('a', 1, second * 1000 + 1) })));
    await driver.advanceTime(0);
    expect(finished).not.toEqual([...finished].sort((x, y) => x - y));
    const starts = driver.read('out').map((r) => r.value as number);
    expect(starts).toEqual([0, 1000, 1000, 2000, 2000, 3000, 3000, 4000, 4000, 5000, 5000, 6000, 6000, 7000, 7000, 8000, 8000, 9000]);
    expect(driver.read('out').map((r) => r.timestamp)).toEqual(starts.flatMap((_, i) => (i % 2 === 0 ? [starts[i + 1]! - 1, starts[i + 1]! - 1] : [])));
    await driver.stop();
  });
});

describe('tables and app.store()', () => {
  it('keeps running aggregates per key, streams updates, and serves them to the host', async () => {
    const app = createApp({ id: 'tables' });
    const keyed = app.from<Reading>('in').keyBy((r) => r.sensor);
    keyed.count({ name: 'counts' }).toStream().to('count-updates');
    keyed.aggregate({ init: () => ({ total: 0, n: 0 }), add: (a, r) => ({ total: a.total + r.value, n: a.n + 1 }) }, { name: 'totals' });
    const driver = await TestDriver.start(app);
    const values = [3, 1, 4, 1, 5, 9, 2, 6];
    for (const [i, value] of values.entries()) await driver.send('in', reading(i % 2 ? 'odd' : 'even', value, i));
    expect(await app.store('counts').get('even')).toBe(4);
    expect(await app.store('totals').get('odd')).toEqual({ total: 1 + 1 + 9 + 6, n: 4 });
    expect(await app.store('totals').get('missing')).toBeUndefined();
    expect(await app.store('counts').range()).toEqual([
      { key: 'even', value: 4 },
      { key: 'odd', value: 4 },
    ]);
    expect(driver.read('count-updates').map((r) => [r.key, r.value])).toEqual(values.map((_, i) => [i % 2 ? 'odd' : 'even', Math.floor(i / 2) + 1]));
    expect(() => app.store('nope')).toThrow(/counts, totals/);
    await driver.stop();
  });

  it('serves the open windows of a window store', async () => {
    const app = createApp({ id: 'window-store', idleTimeout: false });
    app.from<Reading>('in', { timestamp: (r) => r.ts }).keyBy((r) => r.sensor).hopping(10, 5, { name: 'recent' }).sum((r) => r.value).toStream().to('out');
    const driver = await TestDriver.start(app);
    await driver.send('in', reading('a', 2, 7));
    await driver.send('in', reading('a', 3, 12));
    expect(await app.store('recent').get('a')).toEqual([
      { start: 5, end: 15, value: 5 },
      { start: 10, end: 20, value: 3 },
    ]);
    await driver.stop();
  });

  it('answers [] for a key with no open window, reads through the stage itself, and refuses reads unless running', async () => {
    const app = createApp({ id: 'typed-store', idleTimeout: false });
    const keyed = app.from<Reading>('in', { timestamp: (r) => r.ts }).keyBy((r) => r.sensor);
    const recent = keyed.tumbling(10).sum((r) => r.value);
    recent.toStream().to('out');
    const totals = keyed.count({ name: 'totals' });
    expect(recent.name).toBe('tumbling-10ms-grace-0ms-sum');
    expect(totals.name).toBe('totals');
    await expect(app.store(recent).get('a')).rejects.toMatchObject({ code: 'APP_STATE' });
    const driver = await TestDriver.start(app);
    await driver.send('in', reading('a', 2, 7));
    expect(await app.store(recent).get('a')).toEqual([{ start: 0, end: 10, value: 2 }]);
    expect(await app.store(recent).get('nobody')).toEqual([]);
    expect(await app.store('tumbling-10ms-grace-0ms-sum').get('nobody')).toEqual([]);
    await driver.send('in', reading('a', 1, 25));
    // The window closed: the key has windows again only for [20, 30).
    expect(await app.store(recent).get('a')).toEqual([{ start: 20, end: 30, value: 1 }]);
    expect(await app.store(totals).get('a')).toBe(2);
    expect(await app.store(totals).get('nobody')).toBeUndefined();
    await driver.stop();
    await expect(app.store(totals).get('a')).rejects.toMatchObject({ code: 'APP_STATE' });
    await expect(app.store('totals').range()).rejects.toMatchObject({ code: 'APP_STATE' });
  });
});

describe('input from the host', () => {
  it('sendBatch writes many records in one call, with their keys, timestamps and headers, partitioned as send does', async () => {
    const app = createApp({ id: 'batch', idleTimeout: false });
    app.from<Reading>('in').keyBy((r) => r.sensor).count({ name: 'counts' });
    const driver = await TestDriver.start(app, { partitions: 3 });
    const records = Array.from({ length: 30 }, (_, i) => ({ value: reading(`s${i % 5}`, i, i * 10), key: `s${i % 5}`, timestamp: i * 10, headers: { n: String(i) } }));
    await app.sendBatch('in', records);
    await app.send('in', reading('s0', 99, 500), { key: 's0', timestamp: 500 });
    await app.sendBatch('in', []);
    await driver.advanceTime(0);
    const stored = driver.transport.records('in');
    expect(stored).toHaveLength(31);
    for (const record of stored.filter((each) => each.headers['n'] !== undefined)) {
      const i = Number(record.headers['n']);
      expect([new TextDecoder().decode(record.key!), record.timestamp]).toEqual([`s${i % 5}`, i * 10]);
    }
    // One key, one partition, whichever way it came in.
    expect(new Set(stored.filter((record) => new TextDecoder().decode(record.key!) === 's0').map((record) => record.partition)).size).toBe(1);
    expect(await app.store('counts').get('s0')).toBe(7);
    await expect(app.sendBatch('in', [{ value: reading('s1', 1, 1), timestamp: Number.NaN }])).rejects.toThrow(/timestamp must be a finite number, got NaN/);
    await expect(app.sendBatch('in', 'nope' as never)).rejects.toThrow(/expected an array/);
    await driver.stop();
    await expect(app.sendBatch('in', records)).rejects.toMatchObject({ code: 'APP_STOPPED' });
    await expect(app.send('in', reading('s1', 1, 1))).rejects.toMatchObject({ code: 'APP_STOPPED' });
  });
});

describe('the embedded broker', () => {
  it('lets a restarted app resume from its committed offsets and restore its windows from the changelog', async () => {
    const transport = memoryTransport();
    const build = () => {
      const app = createApp({ id: 'resume', transport, idleTimeout: false, logger: silentLogger });
      app.from<Reading>('in', { timestamp: (r) => r.ts }).keyBy((r) => r.sensor).tumbling(100).collect().onClose((w) => ({ values: w.value.map((r) => r.value) })).to('out');
      return app;
    };
    const first = build();
    await first.start();
    for (let i = 0; i < 5; i++) await first.send('in', reading('a', i, i * 30));
    await transport.idle();
    await first.stop();
    const outputBefore = transport.records('out').length;
    expect(outputBefore).toBe(1);

    const second = build();
    await second.start();
    for (let i = 5; i < 10; i++) await second.send('in', reading('a', i, i * 30));
    await transport.idle();
    await second.stop();
    const decoded = transport.records('out').map((r) => (JSON.parse(new TextDecoder().decode(r.value!)) as { values: number[] }).values);
    // [100,200) was open at the stop, with record 4 in it; [200,300) is still open at the end.
    expect(decoded).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6],
    ]);
    expect(second.metrics().restoredRecords).toBeGreaterThan(0);
  });

  it('runs one task per partition with its own stream time', async () => {
    const app = createApp({ id: 'parts', idleTimeout: false });
    app.from<Reading>('in', { timestamp: (r) => r.ts }).keyBy((r) => r.sensor).tumbling(10).count().toStream().to('out');
    const driver = await TestDriver.start(app, { partitions: 4 });
    for (let i = 0; i < 40; i++) await driver.send('in', reading(`s${i % 8}`, 1, i), { key: `s${i % 8}` });
    expect(app.metrics().tasks).toBe(8);
    await driver.advanceTime(0);
    expect(Object.keys(app.metrics().streamTime).sort()).toEqual(['0_0', '0_1', '0_2', '0_3', '1_0', '1_1', '1_2', '1_3']);
    await driver.stop();
  });
});

describe('repartitioning', () => {
  it('keeps a stream keyed by its topic key in its partitions, so in-order input stays in order', async () => {
    const transport = memoryTransport({ defaultPartitions: 4 });
    const app = createApp({ id: 'copartitioned', transport, idleTimeout: false, logger: silentLogger });
    app.from<{ k: string; ts: number }>('in', { timestamp: (v) => v.ts }).keyBy((v) => v.k).tumbling('1s').count().toStream().to('out');
    await app.start();
    const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    for (let i = 0; i < 4000; i++) await app.send('in', { k: keys[i % 8]!, ts: i * 10 }, { key: keys[i % 8] });
    await transport.idle();
    expect(app.metrics().lateRecords).toBe(0);
    const counts = transport.records('out').map((r) => (JSON.parse(new TextDecoder().decode(r.value!)) as { value: number }).value);
    // Every window but each key's last ([39 s, 40 s), 100 records in all) has closed, complete.
    expect(counts).toHaveLength(8 * 39);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(3900);
    await app.stop();
  });

  it('keeps the type of non-string keys through the repartition topic', async () => {
    const app = createApp({ id: 'numeric-keys', idleTimeout: false });
    const keys: unknown[] = [];
    app.from<{ id: number; ts: number }>('in', { timestamp: (v) => v.ts }).keyBy((v) => v.id % 3).tumbling(100).count().onClose((w) => {
      keys.push(w.key);
      return w.value;
    }).to('out');
    const driver = await TestDriver.start(app);
    for (let id = 0; id < 9; id++) await driver.send('in', { id, ts: id });
    await driver.send('in', { id: 0, ts: 1000 });
    expect(keys.sort()).toEqual([0, 1, 2]);
    await driver.stop();
  });
});

describe('processing time', () => {
  it('stamps records with the clock and closes windows on clock timers', async () => {
    const app = createApp({ id: 'proc', time: 'processing' });
    app.from<Reading>('in').keyBy((r) => r.sensor).tumbling('10s').count().toStream().to('out');
    const driver = await TestDriver.start(app, { startTime: 1_000 });
    await driver.send('in', reading('a', 1, 999_999));
    await driver.advanceTime('4s');
    await driver.send('in', reading('a', 1, 0));
    await driver.advanceTime('4999ms');
    expect(driver.read('out')).toEqual([]);
    await driver.advanceTime('1ms');
    expect(driver.read('out').map((r) => r.value)).toEqual([{ key: 'a', start: 0, end: 10_000, value: 2 }]);
    await driver.stop();
  });
});

describe('lifecycle', () => {
  it('rejects steps added after start and a second start', async () => {
    const app = createApp({ id: 'life' });
    app.from('in').to('out');
    await app.start();
    expect(() => app.from('late')).toThrow(/running/);
    await expect(app.start()).rejects.toThrow(/running/);
    await app.stop();
    await app.stop();
    await expect(app.send('in', 1)).rejects.toMatchObject({ code: 'APP_STOPPED' });
  });

  it('refuses to start without a pipeline', async () => {
    await expect(createApp({ id: 'empty' }).start()).rejects.toThrow(/no pipeline/);
  });
});

describe('TestDriver.read', () => {
  it('returns { key, value, timestamp } records, with partition and headers readable but not compared', async () => {
    const app = createApp({ id: 'read-shape' });
    app.from<number>('in').map((n) => n * 2).to('out');
    const driver = await TestDriver.start(app, { startTime: 100 });
    await driver.send('in', 21, { key: 'k' });
    await driver.send('in', 1, { timestamp: 5 });
    expect(driver.read('out')).toEqual([
      { key: 'k', value: 42, timestamp: 100 },
      { key: undefined, value: 2, timestamp: 5 },
    ]);
    expect(driver.read('out')[0]!.partition).toBe(0);
    expect(driver.read('out')[0]!.headers).toEqual({});
    await driver.stop();
  });
});

/** The embedded broker, except that sends for which `fails` says so are refused. */
function failingSends(inner: MemoryTransport, fails: (records: readonly OutgoingRecord[]) => boolean): MemoryTransport {
  const createProducer = async () => {
    const producer = await inner.createProducer();
    return {
      send: async (records: readonly OutgoingRecord[]) => {
        if (fails(records)) throw new Error('broker unavailable');
        return producer.send(records);
      },
      close: () => producer.close(),
    };
  };
  return new Proxy(inner, {
    get(target, property) {
      if (property === 'createProducer') return createProducer;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('transport failures', () => {
  it('sends the records of a failed send again and commits no offset past them meanwhile', async () => {
    const inner = memoryTransport();
    let failures = 2;
    const flaky = failingSends(inner, (records) => records.some((record) => record.topic === 'out') && failures > 0 && failures-- > 0);
    const app = createApp({ id: 'flaky', transport: flaky, logger: silentLogger });
    app.from<number>('in').map((n) => n + 1).to('out');
    await app.start();
    await app.send('in', 1);
    await inner.idle();
    expect(inner.records('out')).toHaveLength(0);
    await app.stop().catch(() => undefined);
    // The failed commit left the input uncommitted; a new instance redoes it.
    const again = createApp({ id: 'flaky', transport: flaky, logger: silentLogger });
    again.from<number>('in').map((n) => n + 1).to('out');
    await again.start();
    await inner.idle();
    await again.stop();
    const values = inner.records('out').map((record) => Number(new TextDecoder().decode(record.value!)));
    expect(values.length).toBeGreaterThanOrEqual(1);
    expect(new Set(values)).toEqual(new Set([2]));
  });
});

describe('repartition replays', () => {
  // Every repartition record through its topic (no local hand-off), to write it again as a replay would.
  const throughTopics = () => Object.assign(memoryTransport(), { localHandOff: false });

  it('keeps replay marks restored from a changelog written before they were per repartition topic', async () => {
    const transport = throughTopics();
    const define = () => {
      const app = createApp({ id: 'marks', transport, idleTimeout: false, logger: silentLogger });
      app.from<{ k: string }>('in').keyBy((v) => v.k).count({ name: 'counts' });
      return app;
    };
    const first = define();
    await first.start();
    for (const k of ['a', 'a', 'b']) await first.send('in', { k });
    await transport.idle();
    const written = transport.records('marks-counts-repartition');
    expect(written).toHaveLength(3);
    await first.stop();
    // The marks as they were written before: by upstream input partition only (in:0, last offset 2, index 0).
    transport.append([{ topic: 'marks-counts-changelog', partition: 0, key: Uint8Array.of(0xfd), value: new TextEncoder().encode('[["in:0",[2,0]]]'), timestamp: 0 }]);
    // An upstream replay writes the three repartition records again.
    transport.append(written.map(({ topic, partition, key, value, timestamp, headers, decoded }) => ({ topic, partition, key, value, timestamp, headers, decoded })));
    // A new instance (its own memory state) restores from the changelog, then reads the copies.
    const second = define();
    await second.start();
    await transport.idle();
    expect([await second.store('counts').get('a'), await second.store('counts').get('b')]).toEqual([2, 1]);
    expect(second.metrics().duplicatesDropped).toBe(3);
    await second.stop();
  });

  it('drops repartition records an upstream replay writes again, so state never counts a record twice', async () => {
    const transport = throughTopics();
    const app = createApp({ id: 'replay', transport, idleTimeout: false, commitInterval: '1h', logger: silentLogger });
    app.from<{ k: string }>('in').keyBy((v) => v.k).count({ name: 'counts' });
    await app.start();
    for (const k of ['a', 'a', 'b']) await app.send('in', { k });
    await transport.idle();
    const written = transport.records('replay-counts-repartition');
    expect(written).toHaveLength(3);
    // What an upstream task that crashed before its commit writes again when it replays its input.
    transport.append(written.map(({ topic, partition, key, value, timestamp, headers, decoded }) => ({ topic, partition, key, value, timestamp, headers, decoded })));
    await transport.idle();
    expect(await app.store('counts').get('a')).toBe(2);
    expect(await app.store('counts').get('b')).toBe(1);
    expect(app.metrics().duplicatesDropped).toBe(3);
    // New input still counts.
    await app.send('in', { k: 'b' });
    await transport.idle();
    expect(await app.store('counts').get('b')).toBe(2);
    await app.stop();
  });
});

describe('a commit that fails half-way', () => {
  it('writes the state it took to the local store with the next commit, so a restart on the same state loses nothing', async () => {
    const inner = memoryTransport();
    let failures = 1;
    const flaky = failingSends(inner, (records) => records.some((record) => record.topic.endsWith('-changelog')) && failures > 0 && failures-- > 0);
    const state = memoryState();
    const build = () => {
      const app = createApp({ id: 'half', state, idleTimeout: false, commitInterval: 20, logger: silentLogger });
      app.from<{ s: string; v: number; ts: number }>('in', { timestamp: (r) => r.ts }).keyBy((r) => r.s).tumbling(1000).sum((r) => r.v).onClose((w) => `${w.key}@${w.start}=${w.value}`).to('out');
      return app;
    };
    const first = await TestDriver.start(build(), { transport: flaky });
    await first.send('in', { s: 's2', v: 10, ts: 100 });
    // The first commit fails on its changelog send; a later one succeeds.
    await first.advanceTime(150);
    expect(failures).toBe(0);
    // A later commit writes newer state with a checkpoint past the entries the failed one took.
    await first.send('in', { s: 's1', v: 1, ts: 200 });
    await first.advanceTime(150);
    await first.stop();

    const second = await TestDriver.start(build(), { transport: flaky });
    await second.send('in', { s: 's2', v: 0, ts: 5000 });
    await second.stop();
    expect(inner.records('out').map((record) => JSON.parse(new TextDecoder().decode(record.value!)) as string).sort()).toEqual(['s1@0=1', 's2@0=10']);
  });
});
