/**
 * README "The API" and DESIGN "Public API": createApp options, durations, the stage table,
 * serdes, embedding (start/send/sendBatch/store/stop), describe, sharing the embedded broker.
 */
import { describe, expect, it, vi } from 'vitest';
import { ConfigError, EddyError, createApp, memoryTransport, serdes, silentLogger, type Serde } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';

interface Reading {
  sensor: string;
  value: number;
  ts: number;
}

describe('README: createApp options', () => {
  it('accepts every option of the example with the shown value formats', async () => {
    const app = createApp({
      id: 'sensors',              // group id, internal topic prefix, state dir name
      time: 'event',              // or 'processing'
      idleTimeout: '5s',          // event time: a quiet task's stream time follows the clock (false: off)
      maxInputWait: '500ms',      // event time: how long a join waits for an input nothing is known of
      commitInterval: '1s',
      guarantee: 'at-least-once', // or 'exactly-once'
      onError: 'dead-letter',     // or 'stop'
    });
    expect(app.id).toBe('sensors');
    expect(app.state).toBe('created');
    expect(createApp({ id: 'p', time: 'processing', idleTimeout: false, onError: 'stop' }).state).toBe('created');
  });

  it.each([
    ['idleTimeout', { idleTimeout: '5 seconds' }, '5 seconds'],
    ['commitInterval', { commitInterval: '1x' }, '1x'],
    ['maxInputWait', { maxInputWait: 'soon' }, 'soon'],
  ])('a bad %s duration throws a ConfigError naming the value', (_name, bad, value) => {
    let thrown: unknown;
    try {
      createApp({ id: 'bad', ...(bad as object) });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect(thrown).toBeInstanceOf(EddyError);
    expect((thrown as EddyError).code).toBe('CONFIG_INVALID');
    expect((thrown as Error).message).toContain(value);
  });

  it('a bad window duration throws a ConfigError when declared, naming the value', () => {
    const app = createApp({ id: 'w' });
    const keyed = app.from<Reading>('r').keyBy(r => r.sensor);
    expect(() => keyed.tumbling('ten seconds' as '10s')).toThrow(ConfigError);
    expect(() => keyed.tumbling('ten seconds' as '10s')).toThrow(/ten seconds/);
    expect(() => keyed.hopping('10s', '1s', { grace: '-2s' as '2s' })).toThrow(ConfigError);
  });

  it.each([
    ['500ms', 500], ['10s', 10_000], ['5m', 300_000], ['1h', 3_600_000], ['1d', 86_400_000], [250, 250],
  ] as const)('duration %s is %d ms (via a tumbling window size)', async (size, ms) => {
    const app = createApp({ id: 'dur', idleTimeout: false });
    app.from<Reading>('r', { timestamp: r => r.ts }).keyBy(r => r.sensor).tumbling(size).count().toStream().to('out');
    const driver = await TestDriver.start(app);
    await driver.send('r', { sensor: 'a', value: 1, ts: 0 });
    await driver.send('r', { sensor: 'a', value: 1, ts: ms - 1 });
    expect(driver.read('out')).toEqual([]);
    await driver.send('r', { sensor: 'a', value: 1, ts: ms });
    expect(driver.read('out')).toEqual([{ key: 'a', value: { key: 'a', start: 0, end: ms, value: 2 }, timestamp: ms - 1 }]);
    await driver.stop();
  });
});

describe('README: defaults', () => {
  it('idleTimeout defaults to 5s: a quiet stream closes its window 5s of clock after it went quiet, not before', async () => {
    const app = createApp({ id: 'idle-default' });
    app.from<Reading>('r', { timestamp: r => r.ts }).keyBy(r => r.sensor).tumbling('1s').count().toStream().to('out');
    const driver = await TestDriver.start(app, { startTime: 0 });
    await driver.send('r', { sensor: 'a', value: 1, ts: 0 });
    await driver.advanceTime('4900ms');
    expect(driver.read('out')).toEqual([]);
    await driver.advanceTime('1100ms'); // 6s of quiet: stream time ~ 0 + 1s (>= end 1000)
    expect(driver.read('out')).toEqual([{ key: 'a', value: { key: 'a', start: 0, end: 1000, value: 1 }, timestamp: 999 }]);
    await driver.stop();
  });

  it('grace defaults to 0: a window closes as soon as stream time reaches its end', async () => {
    const app = createApp({ id: 'grace-default', idleTimeout: false });
    app.from<Reading>('r', { timestamp: r => r.ts }).keyBy(r => r.sensor).tumbling('1s').count().toStream().to('out');
    const driver = await TestDriver.start(app);
    await driver.send('r', { sensor: 'a', value: 1, ts: 10 });
    await driver.send('r', { sensor: 'a', value: 1, ts: 1000 });
    expect(driver.read('out')).toHaveLength(1);
    await driver.send('r', { sensor: 'a', value: 1, ts: 999 }); // late
    expect(app.metrics().lateRecords).toBe(1);
    await driver.stop();
  });

  it('memoryTransport() creates topics with 1 partition by default, { defaultPartitions } otherwise', async () => {
    const shared = memoryTransport();
    expect(await shared.partitionCount('nope')).toBeUndefined();
    const app = createApp({ id: 'parts', transport: shared, logger: silentLogger });
    app.from('in').to('out');
    await app.start();
    expect(app.metrics().tasks).toBe(1);
    expect(await shared.partitionCount('in')).toBe(1);
    await app.stop();

    const four = memoryTransport({ defaultPartitions: 4 });
    const app4 = createApp({ id: 'parts4', transport: four, logger: silentLogger });
    app4.from('in').to('out');
    await app4.start();
    expect(await four.partitionCount('in')).toBe(4);
    expect(app4.metrics().tasks).toBe(4);
    await app4.stop();
  });
});

describe('README: stage methods exist as listed', () => {
  it('Stream, KeyedStream, WindowedStream, WindowedTable, Table, App', () => {
    const app = createApp({ id: 'methods' });
    const stream = app.from<Reading>('readings');
    for (const m of ['map', 'filter', 'flatMap', 'peek', 'merge', 'keyBy', 'to', 'through', 'join', 'leftJoin']) expect(typeof (stream as never)[m], `Stream.${m}`).toBe('function');
    const keyed = stream.keyBy(r => r.sensor, { name: 'by-sensor' });
    for (const m of ['tumbling', 'hopping', 'sliding', 'session', 'countWindow', 'count', 'sum', 'min', 'max', 'mean', 'reduce', 'aggregate', 'join', 'leftJoin', 'outerJoin', 'map', 'to']) {
      expect(typeof (keyed as never)[m], `KeyedStream.${m}`).toBe('function');
    }
    const windowed = keyed.tumbling('1s');
    for (const m of ['count', 'sum', 'min', 'max', 'mean', 'collect', 'reduce', 'aggregate']) expect(typeof (windowed as never)[m], `WindowedStream.${m}`).toBe('function');
    const wt = windowed.count();
    for (const m of ['onClose', 'onUpdate', 'toStream', 'onLate']) expect(typeof (wt as never)[m], `WindowedTable.${m}`).toBe('function');
    expect(wt.name).toBe('tumbling-1000ms-grace-0ms-count');
    const table = keyed.count();
    for (const m of ['toStream', 'join', 'leftJoin', 'outerJoin']) expect(typeof (table as never)[m], `Table.${m}`).toBe('function');
    expect(table.name).toBe('table-count');
    for (const m of ['from', 'table', 'globalTable', 'start', 'stop', 'describe', 'send', 'sendBatch', 'store', 'metrics', 'on', 'health']) expect(typeof (app as never)[m], `App.${m}`).toBe('function');
    expect(app.failure).toBeUndefined();
  });

  it('default store names derive from parameters (hopping-10000ms-1000ms-grace-2000ms-collect, table-count)', () => {
    const app = createApp({ id: 'names' });
    const keyed = app.from<Reading>('readings').keyBy(r => r.sensor);
    expect(keyed.hopping('10s', '1s', { grace: '2s' }).collect().name).toBe('hopping-10000ms-1000ms-grace-2000ms-collect');
    expect(keyed.count().name).toBe('table-count');
    expect(keyed.tumbling('1m', { name: 'mine' }).count().name).toBe('mine');
  });
});

describe('README: serdes', () => {
  it('string(), bytes(), json() and a custom serde in from(topic, { key, value }) and to(topic, { key, value })', async () => {
    const upper: Serde<string> = {
      serialize: (v) => new TextEncoder().encode(v.toUpperCase()),
      deserialize: (b) => {
        const text = new TextDecoder().decode(b);
        if (text.startsWith('!')) throw new Error('invalid');
        return text;
      },
    };
    const app = createApp({ id: 'serdes' });
    app.from('in', { key: serdes.string(), value: upper }).map(v => `${v}-seen`).to('out', { key: serdes.string(), value: serdes.string() });
    app.from('raw', { value: serdes.bytes() }).map(b => b.length).to('lengths', { value: serdes.json() });
    const driver = await TestDriver.start(app);
    await driver.send('in', new TextEncoder().encode('hello'), { key: 'k' });
    await driver.send('in', new TextEncoder().encode('!bad'), { key: 'k' });
    await driver.send('raw', new Uint8Array([1, 2, 3]));
    expect(driver.read('out')).toEqual([{ key: 'k', value: 'hello-seen', timestamp: 0 }]);
    expect(driver.read('lengths').map(r => r.value)).toEqual([3]);
    // a deserialize that throws marks the record bad: dead-lettered
    expect(driver.read('serdes-dlq')).toHaveLength(1);
    expect(app.metrics().deadLetters).toBe(1);
    await driver.stop();
  });

  it('reading a topic twice with other serdes throws at once', () => {
    const app = createApp({ id: 'twice' });
    app.from('t', { value: serdes.string() }).to('a');
    expect(() => {
      app.from('t', { value: serdes.bytes() }).to('b');
      app.describe();
    }).toThrow(ConfigError);
  });
});

describe('README: embedding (start, send, sendBatch, store, stop) on the default embedded broker', () => {
  it('send(topic, value, { key, timestamp }), sendBatch([{ value, key, timestamp, headers }]), store(stage).get/.range', async () => {
    const app = createApp({ id: 'embed', commitInterval: '100ms', idleTimeout: false, logger: silentLogger });
    const keyed = app.from<Reading>('readings', { timestamp: r => r.ts }).keyBy(r => r.sensor);
    const totals = keyed.sum(r => r.value, { name: 'totals' });
    const windows = keyed.tumbling('10s').count();
    windows.toStream().to('counts');
    await app.start();
    expect(app.state).toBe('running');
    await app.send('readings', { sensor: 's1', value: 2, ts: 1_000 }, { key: 's1', timestamp: 1_000 });
    await app.sendBatch('readings', [
      { value: { sensor: 's1', value: 3, ts: 2_000 }, key: 's1', timestamp: 2_000, headers: { source: 'batch' } },
      { value: { sensor: 's2', value: 7, ts: 3_000 }, key: 's2', timestamp: 3_000, headers: {} },
    ]);
    await vi.waitFor(async () => expect(await app.store(totals).get('s2')).toBe(7), { timeout: 5_000 });
    expect(await app.store(totals).get('s1')).toBe(5);
    expect(await app.store(totals).get('nobody')).toBeUndefined();
    expect(await app.store('totals').get('s1')).toBe(5);
    expect(await app.store(totals).range()).toEqual([{ key: 's1', value: 5 }, { key: 's2', value: 7 }]);
    expect(await app.store(totals).range({ gte: 's2', lt: 's3' })).toEqual([{ key: 's2', value: 7 }]);
    // window store: open windows [{ start, end, value }], [] for a key with none
    expect(await app.store(windows).get('s1')).toEqual([{ start: 0, end: 10_000, value: 2 }]);
    expect(await app.store(windows).get('nobody')).toEqual([]);
    expect(await app.store(windows.name).range({ gte: 's1', lt: 's2' })).toEqual([{ key: 's1', value: [{ start: 0, end: 10_000, value: 2 }] }]);
    await app.stop();
    expect(app.state).toBe('stopped');
    // reads reject with APP_STATE unless running
    await expect(app.store(totals).get('s1')).rejects.toMatchObject({ code: 'APP_STATE' });
  });

  it('app.store(name) of an unknown store throws a ConfigError', () => {
    const app = createApp({ id: 'nostore' });
    app.from('in').to('out');
    expect(() => app.store('missing')).toThrow(ConfigError);
  });

  it('sharing one memoryTransport(): one app feeds another', async () => {
    const shared = memoryTransport();
    const first = createApp({ id: 'first', transport: shared, logger: silentLogger });
    first.from<number>('numbers').map(n => n * 10).to('tens');
    const second = createApp({ id: 'second', transport: shared, logger: silentLogger });
    const seen: number[] = [];
    second.from<number>('tens').peek(n => void seen.push(n)).to('sink');
    await first.start();
    await second.start();
    await first.send('numbers', 4, { key: 'a' });
    await first.send('numbers', 5, { key: 'a' });
    await vi.waitFor(() => expect(seen).toEqual([40, 50]), { timeout: 5_000 });
    await first.stop();
    await second.stop();
  });
});

describe('README/DESIGN: describe()', () => {
  it('prints text, and a Mermaid flowchart with { format: "mermaid" }', () => {
    const app = createApp({ id: 'sensors' });
    app.from<Reading>('readings', { timestamp: r => r.ts }).keyBy(r => r.sensor).hopping('10s', '1s', { grace: '2s' }).collect().toStream().to('predictions');
    const text = app.describe();
    expect(text).toContain('readings');
    expect(text).toContain('predictions');
    expect(text).toContain('hopping-10000ms-1000ms-grace-2000ms-collect');
    // keyBy before a stateful step: <id>-<store name>-repartition
    expect(text).toContain('sensors-hopping-10000ms-1000ms-grace-2000ms-collect-repartition');
    const mermaid = app.describe({ format: 'mermaid' });
    expect(mermaid.split('\n')[0]).toMatch(/^(flowchart|graph) /);
    expect(mermaid).toContain('readings');
    expect(mermaid).not.toBe(text);
  });

  it('keyBy { name } names the repartition topic <id>-<name>-repartition', () => {
    const app = createApp({ id: 'sensors' });
    app.from<Reading>('readings').keyBy(r => r.sensor, { name: 'by-sensor' }).count().toStream().to('out');
    expect(app.describe()).toContain('sensors-by-sensor-repartition');
  });
});

describe('README: internal topics', () => {
  it('<id>-<store>-changelog, <id>-<name>-repartition and <id>-dlq exist once started', async () => {
    const app = createApp({ id: 'sensors' });
    const readings = app.from<Reading>('readings', { timestamp: r => r.ts });
    readings.keyBy(r => r.sensor).hopping('10s', '1s', { grace: '2s' }).collect().toStream().to('predictions');
    readings.keyBy(r => r.sensor, { name: 'by-sensor' }).count({ name: 'totals' }).toStream().to('totals-out');
    const driver = await TestDriver.start(app);
    const topics = driver.transport.topicNames();
    expect(topics).toEqual(expect.arrayContaining([
      'sensors-hopping-10000ms-1000ms-grace-2000ms-collect-changelog',
      'sensors-hopping-10000ms-1000ms-grace-2000ms-collect-repartition',
      'sensors-totals-changelog',
      'sensors-by-sensor-repartition',
      'sensors-dlq',
    ]));
    await driver.stop();
  });
});
