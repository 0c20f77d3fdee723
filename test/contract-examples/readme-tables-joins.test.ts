/**
 * README "Tables and joins" and DESIGN "Contract additions of the second wave" (tables and joins).
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, createApp } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';

interface Reading { sensor: string; site: string; value: number; ts: number }
interface Sensor { name: string; place: string }
interface Place { city: string }
interface Site { region: string }
interface Repair { sensor: string; by: string; ts: number }

describe('README: Tables and joins example', () => {
  it('table, table–table, globalTable, stream–table, windowed stream–stream, store(table).get', async () => {
    const app = createApp({ id: 'tj', idleTimeout: false });
    const sensors = app.table<string, Sensor>('sensors');   // Table<string, Sensor>: each key's latest value
    const placed = sensors.join(app.table<string, Place>('places'), (sensor, place) => ({ ...sensor, place }));  // table–table
    placed.toStream().to('placed');
    const sites = app.globalTable<string, Site>('sites');    // every instance holds all of it
    app.from<Reading>('readings').join(sites, (r) => r.site, (reading, site) => ({ ...reading, region: site.region })).to('regional');
    app.from<Reading>('readings')
      .keyBy((r) => r.sensor)
      .join(sensors, (reading, sensor, key) => ({ ...reading, place: sensor.place, key }))   // or leftJoin
      .to('enriched');
    app.from<Reading>('readings').keyBy((r) => r.sensor)                                  // windowed; also leftJoin, outerJoin
      .join(app.from<Repair>('repairs').keyBy((e) => e.sensor), (reading, repair) => ({ reading: reading.value, repair: repair.by }), { within: '5s', grace: '1s' })
      .to('readings-near-repairs');

    const driver = await TestDriver.start(app, { startTime: 0 });
    await driver.send('sites', { region: 'north' }, { key: 'site-1', timestamp: 0 });
    await driver.send('sensors', { name: 'thermo', place: 'p1' }, { key: 's1', timestamp: 0 });
    await driver.send('places', { city: 'Oslo' }, { key: 's1', timestamp: 0 });
    expect(await app.store(sensors).get('s1')).toEqual({ name: 'thermo', place: 'p1' });   // Sensor | undefined
    expect(await app.store(sensors).get('s9')).toBeUndefined();
    expect(driver.read('placed')).toEqual([{ key: 's1', value: { name: 'thermo', place: { city: 'Oslo' } }, timestamp: 0 }]);

    await driver.send('readings', { sensor: 's1', site: 'site-1', value: 1, ts: 10_000 }, { key: 'r1', timestamp: 10_000 });
    await driver.send('readings', { sensor: 's2', site: 'site-x', value: 2, ts: 11_000 }, { key: 'r2', timestamp: 11_000 });
    // globalTable join: record keeps its key and timestamp; unknown site dropped
    expect(driver.read('regional')).toEqual([{ key: 'r1', value: { sensor: 's1', site: 'site-1', value: 1, ts: 10_000, region: 'north' }, timestamp: 10_000 }]);
    // stream–table: s2 not in the table: dropped; result keyed by sensor
    expect(driver.read('enriched')).toEqual([{ key: 's1', value: { sensor: 's1', site: 'site-1', value: 1, ts: 10_000, place: 'p1', key: 's1' }, timestamp: 10_000 }]);

    await driver.send('repairs', { sensor: 's1', by: 'ann', ts: 14_000 }, { timestamp: 14_000 });   // 4s after: joined
    await driver.send('repairs', { sensor: 's1', by: 'bob', ts: 16_000 }, { timestamp: 16_000 });   // 6s after: not
    expect(driver.read('readings-near-repairs')).toEqual([{ key: 's1', value: { reading: 1, repair: 'ann' }, timestamp: 14_000 }]);
    await driver.stop();
  });

  it('leftJoin on a table passes undefined; outerJoin of streams emits unmatched after within + grace', async () => {
    const app = createApp({ id: 'lj', idleTimeout: false });
    const sensors = app.table<string, Sensor>('sensors');
    app.from<Reading>('readings').keyBy(r => r.sensor).leftJoin(sensors, (r, s) => ({ v: r.value, place: s?.place ?? 'unknown' })).to('left');
    app.from<Reading>('a', { timestamp: r => r.ts }).keyBy(r => r.sensor)
      .outerJoin(app.from<Repair>('b', { timestamp: e => e.ts }).keyBy(e => e.sensor), (x, y) => ({ x: x?.value ?? null, y: y?.by ?? null }), { within: '1s' })
      .to('outer');
    const driver = await TestDriver.start(app);
    await driver.send('readings', { sensor: 'zz', site: '', value: 3, ts: 0 });
    expect(driver.read('left').map(r => r.value)).toEqual([{ v: 3, place: 'unknown' }]);
    await driver.send('a', { sensor: 'k', site: '', value: 1, ts: 1_000 });
    expect(driver.read('outer')).toEqual([]);   // never before within + grace
    await driver.send('b', { sensor: 'q', by: 'zed', ts: 2_001 });   // stream time 2001 > 1000 + 1000: a's record closes
    await driver.send('a', { sensor: 'q', site: '', value: 9, ts: 5_000 });
    const values = driver.read('outer').map(r => r.value);
    expect(values).toContainEqual({ x: 1, y: null });
    await driver.stop();
  });

  it('DESIGN chain: keyed.join(table).join(globalTable, keyFn, joiner).join(otherKeyed, .., { within, grace })', async () => {
    const app = createApp({ id: 'chain', idleTimeout: false });
    const sensors = app.table<string, Sensor>('sensors');            // Table<string, Sensor>
    const places = app.globalTable<string, Place>('places');        // GlobalTable<string, Place>
    const readings = app.from<Reading>('readings', { timestamp: r => r.ts });
    const other = app.from<Repair>('repairs', { timestamp: e => e.ts });
    readings.keyBy(r => r.sensor)
      .join(sensors, (reading, sensor, key) => ({ ...reading, ...sensor, key }))   // also leftJoin
      .join(places, (r) => r.place, (r, place) => ({ ...r, place }))          // stream–globalTable
      .join(other.keyBy(e => e.sensor), (a, b) => [a, b], { within: '5s', grace: '1s' })
      .to('out');
    const both = sensors.join(app.table<string, Place>('cities'), (a, b) => ({ a, b }), { name: 'both' }); // table–table
    expect(both.name).toBe('both');
    const driver = await TestDriver.start(app);
    await driver.send('places', { city: 'Oslo' }, { key: 'p1', timestamp: 0 });
    await driver.send('sensors', { name: 'n', place: 'p1' }, { key: 's1', timestamp: 0 });
    await driver.send('cities', { city: 'Bergen' }, { key: 's1', timestamp: 0 });
    await driver.send('readings', { sensor: 's1', site: 'x', value: 5, ts: 1_000 }, { timestamp: 1_000 });
    await driver.send('repairs', { sensor: 's1', by: 'ann', ts: 2_000 }, { timestamp: 2_000 });
    const out = driver.read('out');
    expect(out).toHaveLength(1);
    expect(out[0]!.key).toBe('s1');
    expect(out[0]!.timestamp).toBe(2_000);
    expect(out[0]!.value).toEqual([{ sensor: 's1', site: 'x', value: 5, ts: 1_000, name: 'n', place: { city: 'Oslo' }, key: 's1' }, { sensor: 's1', by: 'ann', ts: 2_000 }]);
    expect(await app.store('both').get('s1')).toEqual({ a: { name: 'n', place: 'p1' }, b: { city: 'Bergen' } });
    expect(await app.store(places).get('p1')).toEqual({ city: 'Oslo' });
    await driver.stop();
  });

  it('table–table join: deletion on a null value; toStream shows a null', async () => {
    const app = createApp({ id: 'tt', idleTimeout: false });
    const a = app.table<string, number>('ta');
    const b = app.table<string, number>('tb');
    a.join(b, (x, y) => x + y).toStream().to('sum');
    const driver = await TestDriver.start(app);
    await driver.send('ta', 1, { key: 'k' });
    await driver.send('tb', 2, { key: 'k' });
    await driver.send('tb', null, { key: 'k' });
    expect(driver.read('sum').map(r => r.value)).toEqual([3, null]);
    await driver.stop();
  });

  it('default store names: table <topic>-table, changelog <id>-<topic>-table-changelog, table–table <left>-<right>-join', async () => {
    const app = createApp({ id: 'names', idleTimeout: false });
    const sensors = app.table<string, Sensor>('sensors');
    const places = app.table<string, Place>('places');
    expect(sensors.name).toBe('sensors-table');
    expect(sensors.join(places, (s, p) => ({ s, p })).name).toBe('sensors-table-places-table-join');
    const driver = await TestDriver.start(app);
    await driver.send('sensors', { name: 'n', place: 'p' }, { key: 's1' });
    expect(driver.transport.topicNames()).toContain('names-sensors-table-changelog');
    await driver.stop();
  });

  it('README: leftJoin/outerJoin of tables are stored "by default <left store>-<right store>-join, -left-join or -outer-join"', () => {
    const app = createApp({ id: 'names2' });
    const sensors = app.table<string, Sensor>('sensors');
    const places = app.table<string, Place>('places');
    expect(sensors.leftJoin(places, (s, p) => ({ s, p })).name).toBe('sensors-table-places-table-left-join');
    expect(sensors.outerJoin(places, (s, p) => ({ s, p })).name).toBe('sensors-table-places-table-outer-join');
  });

  it('README: a windowed stream–stream join buffer store is by default join-within-<ms>ms-grace-<ms>ms (leftJoin-within-… for leftJoin)', () => {
    const app = createApp({ id: 'names3' });
    const a = app.from<Reading>('a').keyBy(r => r.sensor);
    const b = app.from<Repair>('b').keyBy(r => r.sensor);
    a.join(b, (x, y) => [x, y], { within: '5s', grace: '1s' }).to('j');
    a.leftJoin(b, (x, y) => [x, y], { within: '2s' }).to('l');
    const text = app.describe();
    expect(text).toContain('join-within-5000ms-grace-1000ms');
    expect(text).toContain('leftJoin-within-2000ms-grace-0ms');
  });

  it('two tables in different partition counts fail at start with a ConfigError naming both topics', async () => {
    const app = createApp({ id: 'copart', idleTimeout: false });
    app.table<string, number>('left4').join(app.table<string, number>('right2'), (x, y) => x + y).toStream().to('o');
    const { MemoryTransport } = await import('@eddy/core');
    const transport = new MemoryTransport();
    transport.createTopic({ name: 'left4', partitions: 4 } as never);
    transport.createTopic({ name: 'right2', partitions: 2 } as never);
    const started = TestDriver.start(app, { transport });
    await expect(started).rejects.toBeInstanceOf(ConfigError);
    await expect(started).rejects.toThrow(/left4[\s\S]*right2|right2[\s\S]*left4/);
  });
});
