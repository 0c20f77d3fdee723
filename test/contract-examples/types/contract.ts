/**
 * Type-level contract of DESIGN.md "Public API" / "Contract additions of the second wave" and
 * README.md, compiled against the published packages (node_modules/@eddy/* -> dist) with
 * `npx tsc -p test/contract-examples/types --noEmit`. Nothing here runs.
 */
import { createApp, memoryTransport, serdes, type App, type Duration, type EddyError, type GlobalTable, type KeyedStream, type Stream, type Table, type WindowedStream, type WindowedTable } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { levelState, levelTransport } from '@eddy/state';
import { kafkaTransport } from '@eddy/kafka';
import { workerPool, models } from '@eddy/ml';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(..._used: unknown[]): T | void {}

interface Reading { sensor: string; value: number; ts: number; site: string; place: string }
interface Prediction { sensor: string; forecast: number }
interface SensorInfo { calibration: { scale: number; offset: number }; location: string }
interface Sensor { place: string; name: string }
interface Place { region: string }
interface Site { region: string }
interface Repair { sensor: string; by: string }
declare const value: unknown;
declare const key: string;
declare const timestamp: number;
declare const headers: Record<string, string>;
declare const log: { info(fields: object, message: string): void };
declare function alert(message: string): void;

// DESIGN: type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`
type DesignDuration = number /* ms */ | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`;
assertType<Equal<Duration, DesignDuration>>();

export async function designPublicApi(): Promise<void> {
  const app = createApp({
    id: 'sensors',                        // group id, internal topic prefix, state dir name
    transport: kafkaTransport({ brokers: ['localhost:9092'] }), // default: a private embedded broker
    state: levelState({ dir: '.eddy' }),  // default: in-memory state
    time: 'event',                        // or 'processing'
    idleTimeout: '5s',                    // event time: a quiet partition's time follows the clock
    commitInterval: '1s',
    guarantee: 'at-least-once',           // or 'exactly-once' (Kafka transactions)
    onError: 'dead-letter',               // or 'stop'
  });

  const source = app.from<Reading>('readings', { timestamp: r => r.ts });
  assertType<Equal<typeof source, Stream<string | undefined, Reading>>>(source);
  const keyed = source.filter(r => Number.isFinite(r.value)).keyBy(r => r.sensor);
  assertType<Equal<typeof keyed, KeyedStream<string, Reading>>>(keyed);
  const windowed = keyed.hopping('10s', '1s', { grace: '2s' });
  assertType<Equal<typeof windowed, WindowedStream<string, Reading>>>(windowed);
  const collected = windowed.collect();
  assertType<Equal<typeof collected, WindowedTable<string, Reading[], Reading>>>(collected);
  const predictions = collected.onClose(workerPool<{ key: string; start: number; end: number; value: Reading[] }, Prediction>(new URL('./model.js', import.meta.url)));
  assertType<Equal<typeof predictions, Stream<string, Prediction>>>(predictions);
  predictions.to('predictions');
  // the two-parameter spelling of the comments (WindowedTable<string, Reading[]>) is usable as an annotation
  const annotated: WindowedTable<string, Reading[]> = collected;
  const stored = await app.store(annotated).get('s1');
  const storedFirst: { start: number; end: number; value: Reading[] } | undefined = stored[0];
  void storedFirst;
  const asStream: Stream<string, Prediction> = predictions;
  void asStream;

  // the chain exactly as DESIGN writes it
  app.from<Reading>('readings', { timestamp: r => r.ts })   // Stream<string | undefined, Reading>
    .filter(r => Number.isFinite(r.value))
    .keyBy(r => r.sensor)                                    // KeyedStream<string, Reading>
    .hopping('10s', '1s', { grace: '2s' })                   // WindowedStream
    .collect()                                               // WindowedTable<string, Reading[]>
    .onClose(workerPool(new URL('./model.js', import.meta.url)))  // Stream<string, Prediction>
    .to('predictions');

  await app.start();   // returns once running; embeds in any Node service
  await app.stop();    // drains in-flight work, commits, closes

  // DESIGN "Test driver"
  const driver = await TestDriver.start(app, { startTime: 0 });
  await driver.send('readings', value, { key, timestamp });
  await driver.send('readings', new Uint8Array([1]));
  await driver.advanceTime('5s');
  const now: number = driver.now();
  void now;
  const read = driver.read('predictions');       // [{ key, value, timestamp }, ...] produced so far
  const first: { key: string | undefined; value: unknown; timestamp: number } | undefined = read[0];
  void first;
  await driver.stop();
}

export function stagesDoNotCompileWhenInvalid(app: App): void {
  const readings = app.from<Reading>('readings');
  // @ts-expect-error a Stream has no windows: keyBy first (README: `stream.tumbling(...)` without keyBy is a type error)
  readings.tumbling('10s');
  // @ts-expect-error hopping needs keyBy too
  readings.hopping('10s', '1s');
  // @ts-expect-error no running aggregate on an un-keyed stream
  readings.count();
  // @ts-expect-error a WindowedStream needs an aggregation before onClose
  readings.keyBy(r => r.sensor).tumbling('10s').onClose(() => 1);
  // @ts-expect-error a WindowedStream cannot be written to a topic
  readings.keyBy(r => r.sensor).tumbling('10s').to('x');
  // @ts-expect-error to() is terminal
  readings.to('out').map((r: Reading) => r);
  // @ts-expect-error a bad duration string
  readings.keyBy(r => r.sensor).tumbling('10 seconds');
  // @ts-expect-error window options are { grace?, name? }
  readings.keyBy(r => r.sensor).tumbling('10s', { lateness: '1s' });
  // @ts-expect-error a stream–stream join needs { within }
  readings.keyBy(r => r.sensor).join(app.from<Repair>('repairs').keyBy(e => e.sensor), (a, b) => [a, b]);
  // @ts-expect-error Table has no windows
  app.table<string, Sensor>('sensors').tumbling('1s');
}

export function filterNarrows(app: App): void {
  type Event = { kind: 'reading'; value: number } | { kind: 'note'; text: string };
  const events = app.from<Event>('events');
  const onlyReadings = events.filter((e): e is Extract<Event, { kind: 'reading' }> => e.kind === 'reading');
  assertType<Equal<typeof onlyReadings, Stream<string | undefined, { kind: 'reading'; value: number }>>>(onlyReadings);
  onlyReadings.map(e => e.value.toFixed(1));
  const keyedNarrowed = events.keyBy(e => e.kind).filter((e): e is Extract<Event, { kind: 'note' }> => e.kind === 'note');
  assertType<Equal<typeof keyedNarrowed, KeyedStream<'reading' | 'note', { kind: 'note'; text: string }>>>(keyedNarrowed);
  // a plain boolean predicate does not narrow (TS 5.5 infers guards from `e => e.kind === 'x'`, so use another one)
  const plain = events.filter((e): boolean => e.kind === 'reading');
  assertType<Equal<typeof plain, Stream<string | undefined, Event>>>(plain);
}

export function handlers(app: App): void {
  const table = app.from<Reading>('readings').keyBy(r => r.sensor).tumbling('1m').count();
  const one = table.onClose(({ key, start, end, value }) => ({ key, start, end, n: value }));
  assertType<Equal<typeof one, Stream<string, { key: string; start: number; end: number; n: number }>>>(one);
  const many = table.onClose(w => [w.value, w.value + 1]);
  assertType<Equal<typeof many, Stream<string, number>>>(many);
  const maybe = table.onClose(w => (w.value > 1 ? w.value : undefined));
  assertType<Equal<typeof maybe, Stream<string, number>>>(maybe);
  const later = table.onClose(async w => [String(w.value)]);
  assertType<Equal<typeof later, Stream<string, string>>>(later);
  const results = table.toStream();
  results.map(r => [r.key, r.start, r.end, r.value] as const);
  table.onUpdate().map(w => w.value + 1);
  table.onLate(({ key, start, end, value, timestamp }) => ({ key, start, end, sensor: value.sensor, timestamp }));
  // aggregations
  const keyed = app.from<Reading>('readings').keyBy(r => r.sensor);
  keyed.tumbling('1s').sum(r => r.value);
  keyed.tumbling('1s').min(r => r.value);
  keyed.tumbling('1s').max(r => r.value);
  keyed.tumbling('1s').mean(r => r.value);
  keyed.tumbling('1s').reduce((a, b) => (a.value > b.value ? a : b));
  keyed.tumbling('1s').aggregate({ init: () => 0, add: (a, r) => a + r.value, merge: (a, b) => a + b });
  keyed.sliding('5s').count();
  keyed.session('30m', { grace: '1m', name: 'sessions' }).collect();
  keyed.countWindow(100, 10).mean(r => r.value);
  keyed.countWindow(100).count();
  const t: Table<string, number> = keyed.count({ name: 'n' });
  keyed.sum(r => r.value, { name: 's' });
  keyed.reduce((a, b) => b, { name: 'r' });
  keyed.aggregate({ init: () => 0, add: (a, r) => a + r.value }, { name: 'a' });
  void t;
}

export async function readmeApiAndEmbedding(): Promise<void> {
  const app = createApp({
    id: 'sensors',
    time: 'event',
    idleTimeout: '5s',
    maxInputWait: '500ms',
    commitInterval: '1s',
    guarantee: 'at-least-once',
    onError: 'dead-letter',
    transport: memoryTransport({ defaultPartitions: 4, retention: { records: 1000, bytes: 1 << 20, age: '7d' }, retentionRecords: 10, tombstoneRetention: '1d' }),
  });
  createApp({ id: 'x', idleTimeout: false });
  const keyed = app.from<Reading>('readings', { key: serdes.string(), value: serdes.json<Reading>() }).keyBy(r => r.sensor, { name: 'by-sensor' });
  keyed.map(r => r.value).to('values', { key: serdes.string(), value: serdes.json<number>() });
  keyed.through('rekeyed', { cycle: false }).to('elsewhere', { cycle: true });
  app.from<Uint8Array>('raw', { value: serdes.bytes() }).merge(app.from<Uint8Array>('raw2', { value: serdes.bytes() })).flatMap(b => [b.length]).peek(n => void n).to('lengths');

  const spend = keyed.sum(r => r.value, { name: 'spend' });
  const windows = keyed.hopping('10s', '1s').count();
  const name: string = windows.name;
  const tableName: string = spend.name;
  void name; void tableName;

  await app.start();
  await app.send('readings', { sensor: 's1', value: 1, ts: 0 }, { key: 's1', timestamp: 0 });
  await app.send('readings', value);
  await app.sendBatch('readings', [{ value, key, timestamp, headers }]);
  await app.sendBatch('readings', [{ value }]);
  const total = await app.store(spend).get('customer-7');
  assertType<Equal<typeof total, number | undefined>>(total);
  const open = await app.store(windows).get('s1');
  const firstOpen: { start: number; end: number; value: number } | undefined = open[0];
  void firstOpen;
  const listed = await app.store(spend).range({ gte: 'a', lt: 'b' });
  const entry: { key: string; value: number } | undefined = listed[0];
  void entry;
  await app.store('spend').get('customer-7');
  await app.store(windows.name).range();
  const text: string = app.describe();
  const mermaid: string = app.describe({ format: 'mermaid' });
  void text; void mermaid;
  const late: number = app.metrics().lateRecords;
  const prom: string = app.metrics('prometheus');
  void late; void prom;
  await app.stop();
}

export function lifecycle(app: App): void {
  const state: 'created' | 'starting' | 'running' | 'rebalancing' | 'stopping' | 'stopped' | 'failed' = app.state;
  void state;
  const off = app.on('state', (state, previous) => log.info({ state, previous }, 'eddy'));
  assertType<Equal<typeof off, () => void>>(off);
  app.on('error', (error) => alert(`pipeline stopped: ${error.code}`));   // once, when it stops on its own
  app.on('error', (error: EddyError) => void error.retriable);
  const failure: EddyError | undefined = app.failure;
  void failure;
  const health = app.health();
  const status: 'ok' | 'degraded' | 'failed' = health.status;
  const reasons: string[] = health.reasons;
  void status; void reasons;
  off();
}

export async function tablesAndJoins(app: App): Promise<void> {
  const sensors = app.table<string, Sensor>('sensors');   // Table<string, Sensor>: each key's latest value
  assertType<Equal<typeof sensors, Table<string, Sensor>>>(sensors);
  const placed = sensors.join(app.table<string, Place>('places'), (sensor, place) => ({ ...sensor, place }));  // table–table
  assertType<Equal<typeof placed, Table<string, { name: string; place: Place }>>>(placed);
  const sites = app.globalTable<string, Site>('sites');    // every instance holds all of it
  assertType<Equal<typeof sites, GlobalTable<string, Site>>>(sites);
  app.from<Reading>('readings').join(sites, (r) => r.site, (reading, site) => ({ ...reading, region: site.region }));
  app.from<Reading>('readings').leftJoin(sites, (r) => r.site, (reading, site) => ({ ...reading, region: site?.region }));
  app.from<Reading>('readings')
    .keyBy((r) => r.sensor)
    .join(sensors, (reading, sensor, key) => ({ ...reading, place: sensor.place, key }))   // or leftJoin
    .to('enriched');
  app.from<Reading>('readings').keyBy((r) => r.sensor)                                  // windowed; also leftJoin, outerJoin
    .join(app.from<Repair>('repairs').keyBy((e) => e.sensor), (reading, repair) => ({ reading, repair }), { within: '5s', grace: '1s' })
    .to('readings-near-repairs');
  const got = await app.store(sensors).get('s1');                      // Sensor | undefined
  assertType<Equal<typeof got, Sensor | undefined>>(got);
  const fromGlobal = await app.store(sites).get('site-1');
  assertType<Equal<typeof fromGlobal, Site | undefined>>(fromGlobal);

  // DESIGN second wave chain
  const places = app.globalTable<string, Place>('places2');
  const readings = app.from<Reading>('readings');
  const other = app.from<Repair>('repairs');
  readings.keyBy(r => r.sensor)
    .join(sensors, (reading, sensor, key) => ({ ...reading, ...sensor, key }))   // also leftJoin
    .join(places, (r) => r.place, (r, place) => ({ ...r, place }))          // stream–globalTable
    .join(other.keyBy(e => e.sensor), (a, b) => [a, b], { within: '5s', grace: '1s' });
  readings.keyBy(r => r.sensor).leftJoin(other.keyBy(e => e.sensor), (a, b) => ({ a, b: b?.by }), { within: '5s' });
  readings.keyBy(r => r.sensor).outerJoin(other.keyBy(e => e.sensor), (a, b) => ({ a: a?.value, b: b?.by }), { within: '5s', grace: '1s', name: 'near' });
  const otherTable = app.table<string, number>('other');
  sensors.join(otherTable, (a, b) => ({ a, b }), { name: 'both' }); // table–table; also leftJoin, outerJoin
  sensors.leftJoin(otherTable, (a, b) => ({ a, b }));
  sensors.outerJoin(otherTable, (a, b) => ({ a, b }));
  app.table<string, Sensor>('sensors-2', { name: 'sensor-store', key: serdes.string(), value: serdes.json<Sensor>() });
  app.globalTable<string, Site>('sites-2', { name: 'site-store' });
  // README intro: leftJoin against a table, info possibly undefined
  app.from<Reading>('readings').keyBy(r => r.sensor)
    .leftJoin(app.table<string, SensorInfo>('infos'), (r, info) => ({ ...r, value: info ? r.value * info.calibration.scale + info.calibration.offset : r.value, location: info?.location ?? 'unknown' }))
    .hopping('10s', '1s', { grace: '2s' })
    .collect()
    .onClose(workerPool(new URL('./model.js', import.meta.url)))
    .to('predictions');
}

export function durableAndState(): void {
  createApp({ id: 'svc', transport: levelTransport({ dir: '.eddy' }), state: levelState({ dir: '.eddy' }) });
  createApp({ id: 'page-stats', transport: levelTransport({ dir: '.eddy', sync: true, retention: { age: '7d', bytes: 64 * 1024 * 1024, records: 10 }, tombstoneRetention: '1d', verifyOnOpen: false }), state: levelState({ dir: '.eddy', cacheBudget: 64 * 1024 * 1024, keepCorruptCopies: 1, verifyOnOpen: true }) });
}

export function kafkaOnly(): void {
  // README "Running on Kafka" (typechecked only: needs a broker)
  const app = createApp({
    id: 'sensors',                                   // the consumer group
    transport: kafkaTransport({ brokers: ['localhost:9092'], defaultPartitions: 12 }),
    state: levelState({ dir: '.eddy' }),
  });
  kafkaTransport({ brokers: ['localhost:9092'], groupInstanceId: 'sensors-7' });
  kafkaTransport({ brokers: ['localhost:9092'], consumer: { sessionTimeout: '45s', heartbeatInterval: '5s' } });
  createApp({ id: 'eos', transport: kafkaTransport({ brokers: ['localhost:9092'] }), guarantee: 'exactly-once' });
  void app;
}

export function ml(): void {
  const model = workerPool(new URL('./model.js', import.meta.url), {
    size: 2,          // worker threads (default: CPUs - 1)
    exportName: 'default',
    timeout: '30s',   // per window; a hung worker is replaced
    maxQueue: 1000,   // windows waiting before the source pauses (backpressure)
    retries: 2,       // then the window is dead-lettered with the reason
    batchSize: 32,    // windows per message to a worker
  });
  const app = createApp({ id: 'ml' });
  const windows = app.from<Reading>('readings').keyBy(r => r.sensor).hopping('10s', '1s').collect();
  windows.onClose(model).to('predictions');
  windows.onUpdate(model).to('live');
  void [models.linearTrend, models.ewma, models.holt, models.zScore, models.mad, models.scorePoint];
}

export async function testingReadme(): Promise<void> {
  const app = createApp({ id: 'counts' });
  app.from<Reading>('readings', { timestamp: r => r.ts })
    .keyBy(r => r.sensor)
    .tumbling('10s')
    .count()
    .toStream()
    .to('counts');

  const driver = await TestDriver.start(app, { startTime: 0 });
  await driver.send('readings', { sensor: 's1', value: 1, ts: 1_000 }, { key: 's1' });
  await driver.send('readings', { sensor: 's1', value: 2, ts: 12_000 });  // closes [0, 10s)
  await driver.advanceTime('30s');   // quiet: the idle timeout closes the rest
  driver.read('counts');
  await driver.stop();
  await TestDriver.start(createApp({ id: 'p' }), { partitions: 4 });
}
