import { describe, expect, it } from 'vitest';
import { ConfigError, createApp, type App } from '../index.js';
import { defaultKeySerde, json, string } from '../serde.js';
import { TestDriver } from '../testing/index.js';
import type { Node, NodeInput } from './graph.js';
import { testHooks } from '../runtime/test-hooks.js';
import { ignoresKey, keyUnreadBelow, stateSpansSources } from './topology.js';

interface Reading {
  sensor: string;
  value: number;
  ts: number;
}

function sensorsApp() {
  const app = createApp({ id: 'sensors' });
  app
    .from<Reading>('readings', { timestamp: (r) => r.ts })
    .filter((r) => Number.isFinite(r.value))
    .keyBy((r) => r.sensor)
    .hopping('10s', '1s', { grace: '2s' })
    .collect()
    .onClose((w) => w.value.length)
    .to('predictions');
  return app;
}

describe('describe()', () => {
  it('prints sub-topologies split at the repartition topic', () => {
    expect(sensorsApp().describe()).toBe(
      [
        'Topology sensors',
        '  Sub-topology 0',
        '    0: source readings --> 1',
        '    1: filter --> 2',
        '    2: keyBy --> 6',
        '    6: sink sensors-hopping-10000ms-1000ms-grace-2000ms-collect-repartition',
        '  Sub-topology 1 (stores: hopping-10000ms-1000ms-grace-2000ms-collect)',
        '    7: source sensors-hopping-10000ms-1000ms-grace-2000ms-collect-repartition --> 3',
        '    3: hopping(10000ms, 1000ms, grace 2000ms) collect [store hopping-10000ms-1000ms-grace-2000ms-collect] --> 4',
        '    4: onClose --> 5',
        '    5: sink predictions',
      ].join('\n'),
    );
  });

  it('prints a Mermaid flowchart with topics between sub-topologies', () => {
    const mermaid = sensorsApp().describe({ format: 'mermaid' });
    expect(mermaid.split('\n')[0]).toBe('flowchart LR');
    expect(mermaid).toContain('subgraph sub0["Sub-topology 0"]');
    expect(mermaid).toContain('subgraph sub1["Sub-topology 1"]');
    expect(mermaid).toContain('topic_readings --> n0');
    expect(mermaid).toContain('n6 --> topic_sensors_hopping_10000ms_1000ms_grace_2000ms_collect_repartition');
    expect(mermaid).toContain('topic_sensors_hopping_10000ms_1000ms_grace_2000ms_collect_repartition --> n7');
    expect(mermaid).toContain('n5 --> topic_predictions');
  });

  it('rejects an unknown format', () => {
    expect(() => sensorsApp().describe({ format: 'dot' as 'text' })).toThrow(/"dot"/);
  });
});

describe('store and topic names', () => {
  it('derives default names from parameters, not from the position in the chain', () => {
    const app = createApp({ id: 'names' });
    const keyed = app.from<Reading>('readings').map((r) => r).keyBy((r) => r.sensor);
    keyed.tumbling('1m').count().toStream().to('a');
    keyed.sliding('30s', { grace: '1s' }).sum((r) => r.value).toStream().to('b');
    keyed.session('5m').max((r) => r.value).toStream().to('c');
    keyed.countWindow(10, 5).mean((r) => r.value).toStream().to('d');
    keyed.count().toStream().to('e');
    const text = app.describe();
    for (const name of [
      'tumbling-60000ms-grace-0ms-count',
      'sliding-30000ms-grace-1000ms-sum',
      'session-300000ms-grace-0ms-max',
      'count-10-5-mean',
      'table-count',
    ]) {
      expect(text).toContain(`[store ${name}]`);
    }
    // One re-keyed stream, one repartition topic, named after the first step that needs it.
    expect(text.match(/sink names-[^\n]*-repartition/g)).toEqual(['sink names-tumbling-60000ms-grace-0ms-count-repartition']);
  });

  it('uses the names given to windows, tables and keyBy', () => {
    const app = createApp({ id: 'named' });
    app.from<Reading>('readings').keyBy((r) => r.sensor, { name: 'by-sensor' }).tumbling('1m', { name: 'per-minute' }).count().toStream().to('out');
    const text = app.describe();
    expect(text).toContain('[store per-minute]');
    expect(text).toContain('named-by-sensor-repartition');
  });

  it('fails fast on two stores with one name', () => {
    const app = createApp({ id: 'dupes' });
    const keyed = app.from<Reading>('readings').keyBy((r) => r.sensor);
    keyed.tumbling('1m').count().toStream().to('a');
    keyed.tumbling('1m').count().toStream().to('b');
    expect(() => app.describe()).toThrow(ConfigError);
    expect(() => app.describe()).toThrow(/tumbling-60000ms-grace-0ms-count/);
  });
});

describe('build-time validation', () => {
  const keyed = () => createApp({ id: 'v' }).from<Reading>('readings').keyBy((r) => r.sensor);

  it.each([
    ['a bad duration string', () => keyed().tumbling('10 parsecs' as '10s'), /"10 parsecs"/],
    ['a negative size', () => keyed().tumbling(-5), /-5/],
    ['a zero size', () => keyed().hopping(0, 0), /0/],
    ['a fractional ms', () => keyed().tumbling(1.5), /1\.5/],
    ['a slide larger than the size', () => keyed().hopping('1s', '2s'), /"2s"/],
    ['a bad grace', () => keyed().tumbling('1s', { grace: 'soon' as '1s' }), /"soon"/],
    ['a zero count window', () => keyed().countWindow(0), /0/],
    ['a bad step', () => keyed().countWindow(10, 2.5), /2\.5/],
    ['a bad store name', () => keyed().tumbling('1s', { name: 'no spaces' }), /"no spaces"/],
    ['a non-function key', () => createApp({ id: 'v' }).from('x').keyBy('sensor' as unknown as () => string), /string/],
    ['a non-function map', () => createApp({ id: 'v' }).from('x').map(42 as unknown as () => number), /number/],
    ['a bad topic', () => createApp({ id: 'v' }).from('bad topic'), /"bad topic"/],
    ['a bad app id', () => createApp({ id: '' }), /""/],
    ['a bad time', () => createApp({ id: 'x', time: 'wall' as 'event' }), /"wall"/],
    ['a bad onError', () => createApp({ id: 'x', onError: 'ignore' as 'stop' }), /"ignore"/],
    ['a bad idle timeout', () => createApp({ id: 'x', idleTimeout: '-1s' as '1s' }), /"-1s"/],
    ['a bad handler', () => keyed().tumbling('1s').count().onClose('model' as unknown as () => void), /string/],
    ['a bad aggregate', () => keyed().tumbling('1s').aggregate({ init: 0 as unknown as () => number, add: (a: number) => a }), /init/],
    ['a bad serde', () => createApp({ id: 'v' }).from('x', { value: { serialize: () => new Uint8Array() } as never }), /serde/],
    ['a bad cycle flag', () => createApp({ id: 'v' }).from('x').to('x', { cycle: 'yes' as unknown as boolean }), /cycle.*"yes"/],
  ])('throws a ConfigError naming the bad value for %s', (_name, build, message) => {
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(message);
  });

  it('accepts every duration unit', () => {
    for (const duration of ['500ms', '10s', '5m', '1h', '1d', 250] as const) expect(() => keyed().tumbling(duration)).not.toThrow();
  });
});

describe('repartition topics', () => {
  it('are shared by stateful steps on the same re-keyed stream', () => {
    const app = createApp({ id: 'shared' });
    const keyed = app.from<Reading>('readings').keyBy((r) => r.sensor, { name: 'by-sensor' });
    keyed.count({ name: 'counts' });
    keyed.tumbling('1m').max((r) => r.value).toStream().to('maxima');
    const text = app.describe();
    expect(text.match(/sink shared-by-sensor-repartition/g)).toHaveLength(1);
    expect(text).toContain('(stores: counts, tumbling-60000ms-grace-0ms-max)');
  });
});

describe('a topic read twice', () => {
  it('is one source whose records flow down both branches; with other serdes or timestamps it is refused', async () => {
    const app = createApp({ id: 'twice', idleTimeout: false });
    const first = app.from<{ n: number }>('r');
    first.map((v) => ({ n: v.n + 1 })).to('plus');
    app.from<{ n: number }>('r').map((v) => ({ n: v.n * 10 })).to('times');
    expect(app.describe().match(/source r /g)).toHaveLength(1);
    expect(() => app.from('r', { value: string() })).toThrow(ConfigError);
    expect(() => app.from('r', { timestamp: () => 0 })).toThrow(/read already/);
    const driver = await TestDriver.start(app);
    await driver.send('r', { n: 2 });
    expect([driver.read('plus').map((r) => r.value), driver.read('times').map((r) => r.value)]).toEqual([[{ n: 3 }], [{ n: 20 }]]);
    await driver.stop();
  });
});

describe('a loop among the app\'s own topics', () => {
  type Counter = { n: number };
  const loops: [string, (app: App) => void, RegExp, string][] = [
    ['a pipeline that writes its own source', (app) => app.from<Counter>('t').map((v) => ({ n: v.n + 1 })).to('t'), /sub-topology 0 writes t, which sub-topology 0 reads/, 't'],
    ['through() into its own source', (app) => app.from<Counter>('t').map((v) => ({ n: v.n + 1 })).through('t').to('out'), /sub-topology 0 writes t, which sub-topology 0 reads/, 't'],
    [
      'a branch that writes one of the sources of its sub-topology',
      (app) => {
        const both = app.from<Counter>('a').merge(app.from<Counter>('t'));
        both.to('out');
        both.filter((v) => v.n > 0).to('t');
      },
      /sub-topology 0 writes t, which sub-topology 0 reads/,
      't',
    ],
    [
      'two sub-topologies that feed each other',
      (app) => {
        app.from<Counter>('t').map((v) => ({ n: v.n + 1 })).to('u');
        app.from<Counter>('u').to('t');
      },
      /sub-topology 0 writes u, which sub-topology 1 reads; sub-topology 1 writes t, which sub-topology 0 reads/,
      'u',
    ],
    [
      'a loop through a repartition topic',
      (app) => app.from<Reading>('t').keyBy((r) => r.sensor).count({ name: 'counts' }).toStream().to('t'),
      /sub-topology 1 writes t, which sub-topology 0 reads; sub-topology 0 writes loop-counts-repartition, which sub-topology 1 reads/,
      't',
    ],
  ];

  it.each(loops)('is refused when the topology is built, naming the topic: %s', async (_name, build, steps, topic) => {
    const app = createApp({ id: 'loop' });
    build(app);
    expect(() => app.describe()).toThrow(ConfigError);
    expect(() => app.describe()).toThrow(`the app reads the topic ${topic} that it writes`);
    expect(() => app.describe()).toThrow(steps);
    expect(() => app.describe()).toThrow(`to('${topic}', { cycle: true })`);
    await expect(app.start()).rejects.toThrow(`the app reads the topic ${topic} that it writes`);
  });

  it('is accepted when one of its writes is declared { cycle: true }', () => {
    const direct = createApp({ id: 'loop' });
    direct.from<Counter>('t').map((v) => ({ n: v.n + 1 })).to('t', { cycle: true });
    expect(direct.describe()).toContain('sink t (cycle)');

    const through = createApp({ id: 'loop' });
    through.from<Counter>('t').through('t', { cycle: true }).to('out');
    expect(() => through.describe()).not.toThrow();

    const across = createApp({ id: 'loop' });
    across.from<Counter>('t').map((v) => ({ n: v.n + 1 })).to('u', { cycle: true });
    across.from<Counter>('u').to('t');
    expect(() => across.describe()).not.toThrow();
  });

  it('is refused when another write closes a second loop without the declaration', () => {
    const app = createApp({ id: 'loop' });
    const counters = app.from<Counter>('t');
    counters.map((v) => ({ n: v.n + 1 })).to('t', { cycle: true });
    counters.filter((v) => v.n === 0).to('t');
    expect(() => app.describe()).toThrow(/reads the topic t that it writes/);
  });

  it('is not seen in a chain of topics that never leads back', () => {
    const app = createApp({ id: 'chain' });
    app.from<Counter>('a').to('b');
    app.from<Counter>('b').through('c').to('d');
    app.from<Reading>('c').keyBy((r) => r.sensor).count({ name: 'counts' }).toStream().to('a2');
    expect(() => app.describe()).not.toThrow();
  });
});

describe('one input record through two repartition topics that one task reads', () => {
  // Two re-keyed, windowed branches of one stream, merged: the task reading both repartition
  // topics sees the same origin (input offset, output index) from each, and must apply both.
  it.each(['stream used twice', 'topic read twice'])('applies both copies (%s)', async (mode) => {
    interface R {
      sensor: string;
      v: number;
      ts: number;
    }
    const ts = (r: R) => r.ts;
    const app = createApp({ id: 'branches', idleTimeout: false });
    const first = app.from<R>('r', { timestamp: ts });
    const second = mode === 'topic read twice' ? app.from<R>('r', { timestamp: ts }) : first;
    const counts = first.keyBy((r) => r.sensor).tumbling('10s').count().onClose((w) => ({ b: 'count', k: w.key, c: w.value }));
    const sums = second.keyBy((r) => r.sensor).tumbling('10s').sum((r) => r.v).onClose((w) => ({ b: 'sum', k: w.key, c: w.value }));
    counts.merge(sums).to('out');
    const driver = await TestDriver.start(app);
    for (const [t, v] of [[1000, 2], [3000, 3], [100_000, 0]] as const) await driver.send('r', { sensor: 's', v, ts: t }, { key: 'K', timestamp: t });
    expect(driver.read('out').map((r) => r.value)).toEqual(expect.arrayContaining([{ b: 'count', k: 's', c: 2 }, { b: 'sum', k: 's', c: 5 }]));
    expect(app.metrics().duplicatesDropped).toBe(0);
    await driver.stop();
  });
});

describe('which steps can see a source key', () => {
  it('a callback cannot when it is an arrow function with one plain parameter', () => {
    const blind = [(r: unknown) => r, (reading: { sensor: string }) => reading.sensor, (_: unknown) => 1];
    // Two parameters, a default or rest parameter, destructuring (not looked into), and functions
    // (which have \`arguments\`) may; so may what does not show its source.
    const seeing = [
      (r: unknown, k: unknown) => [r, k],
      (r: unknown, k = 'x') => [r, k],
      (...args: unknown[]) => args[1],
      ({ sensor }: { sensor: string }) => sensor,
      function (this: unknown, r: unknown) {
        // eslint-disable-next-line prefer-rest-params
        return [r, arguments[1]];
      },
      ((r: unknown) => r).bind(null),
      async (r: unknown) => r,
    ];
    for (const fn of blind) expect(ignoresKey(fn), String(fn)).toBe(true);
    for (const fn of seeing) expect(ignoresKey(fn as (...args: never[]) => unknown), String(fn)).toBe(false);
  });

  it("a source's key is unread when every path re-keys it through steps that cannot see it", () => {
    let id = 0;
    const children = new Map<Node, Node[]>();
    const node = (input: NodeInput, parent?: Node): Node => {
      const made = { ...input, id: id++, parents: parent ? [parent] : [] } as Node;
      if (parent) children.set(parent, [...(children.get(parent) ?? []), made]);
      return made;
    };
    const source = () => node({ kind: 'source', topic: 't', timestamp: undefined, keySerde: defaultKeySerde, valueSerde: json(), internal: false, parents: [] });
    const step = (kind: 'map' | 'filter' | 'keyBy', fn: (value: unknown, key: unknown) => unknown, parent: Node) => node({ kind, fn, name: undefined, parents: [] } as NodeInput, parent);
    const sink = (parent: Node) => node({ kind: 'sink', topic: 'out', keySerde: defaultKeySerde, valueSerde: json(), internal: false, cycle: false, parents: [] }, parent);

    const rekeyed = source();
    step('keyBy', (r) => r, step('filter', (r) => r, step('map', (r) => r, rekeyed)));
    expect(keyUnreadBelow(rekeyed, children)).toBe(true);

    const keySeen = source();
    step('keyBy', (r, k) => [r, k], keySeen);
    expect(keyUnreadBelow(keySeen, children)).toBe(false);

    const seenOnTheWay = source();
    step('keyBy', (r) => r, step('filter', (r, k) => k !== r, seenOnTheWay));
    expect(keyUnreadBelow(seenOnTheWay, children)).toBe(false);

    // One branch writes the key to a topic.
    const branched = source();
    step('keyBy', (r) => r, branched);
    sink(step('map', (r) => r, branched));
    expect(keyUnreadBelow(branched, children)).toBe(false);
  });
});

describe('stateSpansSources (which tasks read their inputs in timestamp order)', () => {
  const spans = (app: App) => app[testHooks]().topology().subTopologies.map((sub) => stateSpansSources(sub));

  it('is true for the sub-topology of a join, whose state takes records of both its inputs', () => {
    const streamTable = createApp({ id: 'spans-join' });
    streamTable
      .from<Reading>('readings')
      .keyBy((r) => r.sensor)
      .leftJoin(streamTable.table<string, { place: string }>('sensors'), (r, s) => ({ ...r, place: s?.place }))
      .to('out');
    expect(spans(streamTable)).toEqual([false, true]);

    const tables = createApp({ id: 'spans-tables' });
    tables.table<string, number>('left').outerJoin(tables.table<string, number>('right'), (l, r) => [l, r]).toStream().to('out');
    expect(spans(tables)).toEqual([true]);

    const streams = createApp({ id: 'spans-streams' });
    const lefts = streams.from<Reading>('lefts').keyBy((r) => r.sensor);
    lefts.join(streams.from<Reading>('rights').keyBy((r) => r.sensor), (l, r) => l.value + r.value, { within: '1s' }).to('out');
    expect(spans(streams)).toContain(true);
  });

  it('is false for windows that only share a task, each fed by one input, and for a single input', () => {
    const branches = createApp({ id: 'spans-branches' });
    const readings = branches.from<Reading>('readings');
    const counts = readings.keyBy((r) => r.sensor).tumbling('10s').count().onClose((w) => w.value);
    const sums = readings.keyBy((r) => r.sensor, { name: 'for-sums' }).tumbling('10s').sum((r) => r.value).onClose((w) => w.value);
    counts.merge(sums).to('out');
    const subs = branches[testHooks]().topology().subTopologies;
    expect(subs.some((sub) => sub.sources.length > 1)).toBe(true);
    expect(spans(branches).every((spanned) => !spanned)).toBe(true);
    expect(spans(sensorsApp())).toEqual([false, false]);
  });
});
