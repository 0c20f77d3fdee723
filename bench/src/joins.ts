/**
 * The join benchmarks (issue #16).
 *
 * - Stream–table (`engine-join-table` vs `baseline-join-table`): a table topic of
 *   {@link TABLE_KEYS} sensors (`{ place, scale }`) is loaded first, untimed; then `records`
 *   readings (`{ sensor, value, ts }`, the sensor drawn from the table's keys) go through
 *   `readings.keyBy(r => r.sensor).join(sensors, (r, s) => ({ ...r, place: s.place, value: r.value * s.scale })).to(out)`,
 *   timed from the first reading appended until the broker is idle. The hand loop builds the same
 *   table as a `Map` (untimed), then per reading decodes the key and the value, looks the sensor
 *   up, builds the joined object and encodes the result's key and value (`JSON.stringify`,
 *   `Buffer.from`). Both report how many results they produced and an order-independent hash of
 *   their bytes, which must agree.
 * - Windowed stream–stream (`engine-join-within-*`): two streams of `{ sensor, id, ts }` over
 *   {@link WITHIN_KEYS} keys (drawn at random), interleaved, timestamps in order,
 *   `left.keyBy(sensor).join(right.keyBy(sensor), (l, r) => ({ l: l.id, r: r.id }), { within, grace })`,
 *   for several `within` (and one large `grace`) on the same input: cost per input record and per
 *   result. Each run's results are checked against the pairs a brute-force loop finds (count and
 *   hash of the `(l, r)` ids).
 */
import { Buffer } from 'node:buffer';
import { createApp, memoryTransport, silentLogger, type MemoryTransport, type OutgoingRecord } from '@eddy/core';
import { mulberry32, settleApp } from '@eddy/core/testing';
import { timed, type EngineOptions, type TimedHooks } from './engine.js';
import { START_TS } from './workload.js';

/** Keys of the table of the stream–table join. */
export const TABLE_KEYS = 10_000;
/** Keys of each stream of the windowed join. */
export const WITHIN_KEYS = 1_000;
/** Records per key per second of event time, on each side of the windowed join. */
export const WITHIN_PER_KEY_PER_SECOND = 0.1;
/** Input records (both sides together) of the windowed join by default: 100k per side. */
export const WITHIN_DEFAULT_RECORDS = 200_000;

const TABLE_TOPIC = 'sensors';
const STREAM_TOPIC = 'readings';
const JOINED_TOPIC = 'enriched';
const LEFT_TOPIC = 'left';
const RIGHT_TOPIC = 'right';
const PAIRS_TOPIC = 'pairs';

/** What a join run produced: enough to tell two contenders (or a run and the expected pairs) apart. */
export interface JoinOutput {
  /** Result records. */
  outputs: number;
  /** Order-independent hash of the results (sum of per-record hashes, mod 2^32), hex. */
  hash: string;
  /** Records dropped as late (engine; the windowed join). */
  lateRecords?: number;
  /** What the brute-force loop found (the windowed join). */
  expectedOutputs?: number;
  expectedHash?: string;
}

export interface JoinRun {
  readonly ms: number;
  readonly cpuMs: number;
  readonly output: JoinOutput;
  readonly metrics?: Record<string, number>;
}

interface Sensor {
  readonly place: string;
  readonly scale: number;
}

interface Reading {
  readonly sensor: string;
  readonly value: number;
  readonly ts: number;
}

const encoder = new TextEncoder();

/** FNV-1a of a record's key and value bytes. */
function recordHash(key: Uint8Array | null | undefined, value: Uint8Array | null | undefined): number {
  let hash = 0x811c9dc5;
  if (key) for (let index = 0; index < key.length; index++) hash = Math.imul(hash ^ key[index]!, 0x01000193);
  hash = Math.imul(hash ^ 0xff, 0x01000193);
  if (value) for (let index = 0; index < value.length; index++) hash = Math.imul(hash ^ value[index]!, 0x01000193);
  return hash >>> 0;
}

const hex = (hash: number) => (hash >>> 0).toString(16).padStart(8, '0');

/** FNV-1a over every record's topic, key, value and timestamp: equal hashes mean equal input. */
function inputHashOf(records: readonly OutgoingRecord[]): string {
  let hash = 0x811c9dc5;
  for (const record of records) {
    hash = Math.imul(hash ^ recordHash(encoder.encode(record.topic), record.key), 0x01000193);
    hash = Math.imul(hash ^ recordHash(record.value, null), 0x01000193);
    hash = Math.imul(hash ^ (record.timestamp % 0x7fffffff), 0x01000193);
  }
  return hex(hash);
}

function appendAll(transport: MemoryTransport, records: readonly OutgoingRecord[], batch: number): Promise<void> {
  return (async () => {
    for (let from = 0; from < records.length; from += batch) {
      transport.append(records.slice(from, from + batch));
      await transport.idle();
    }
  })();
}

// --- stream–table ---------------------------------------------------------------------------------

export interface TableJoinInput {
  readonly kind: 'join-table';
  readonly table: readonly OutgoingRecord[];
  readonly stream: readonly OutgoingRecord[];
  readonly inputHash: string;
}

export function buildTableJoinInput(records: number, seed = 42): TableJoinInput {
  if (!Number.isInteger(records) || records < 1) throw new Error(`records must be a positive integer, got ${records}`);
  const random = mulberry32(seed);
  const names = Array.from({ length: TABLE_KEYS }, (_, index) => `sensor-${String(index).padStart(5, '0')}`);
  const keyBytes = names.map((name) => encoder.encode(name));
  const table = names.map((name, index): OutgoingRecord => {
    const sensor: Sensor = { place: `place-${index % 500}`, scale: Math.round((0.5 + random() * 1.5) * 1000) / 1000 };
    return { topic: TABLE_TOPIC, partition: 0, key: keyBytes[index]!, value: encoder.encode(JSON.stringify(sensor)), timestamp: START_TS };
  });
  const stream: OutgoingRecord[] = [];
  for (let index = 0; index < records; index++) {
    const sensor = Math.floor(random() * TABLE_KEYS);
    const ts = START_TS + Math.floor(index / 5);
    const reading: Reading = { sensor: names[sensor]!, value: Math.round((15 + random() * 15) * 100) / 100, ts };
    stream.push({ topic: STREAM_TOPIC, partition: 0, key: keyBytes[sensor]!, value: encoder.encode(JSON.stringify(reading)), timestamp: ts });
  }
  return { kind: 'join-table', table, stream, inputHash: inputHashOf([...table, ...stream]) };
}

/** The engine: the table loaded first (untimed), then the readings timed until the broker is idle. */
export async function runTableJoinEngine(input: TableJoinInput, options: EngineOptions, hooks: TimedHooks = {}): Promise<JoinRun> {
  const transport = memoryTransport({ defaultPartitions: 1, maxBatchSize: options.maxBatchSize });
  await transport.ensureTopics([
    { name: TABLE_TOPIC, partitions: 1 },
    { name: STREAM_TOPIC, partitions: 1 },
  ]);
  const app = createApp({ id: 'bench-join', transport, idleTimeout: false, logger: silentLogger });
  const sensors = app.table<string, Sensor>(TABLE_TOPIC);
  app
    .from<Reading>(STREAM_TOPIC)
    .keyBy((r) => r.sensor)
    .join(sensors, (r, s) => ({ ...r, place: s.place, value: r.value * s.scale }))
    .to(JOINED_TOPIC);
  await app.start();
  try {
    await appendAll(transport, input.table, options.appendBatch);
    await settleApp(app, () => transport.idle());
    const { ms, cpuMs } = await timed(hooks, async () => {
      await appendAll(transport, input.stream, options.appendBatch);
      await settleApp(app, () => transport.idle());
    });
    let hash = 0;
    let outputs = 0;
    for (const record of transport.records(JOINED_TOPIC)) {
      hash = (hash + recordHash(record.key, record.value)) >>> 0;
      outputs++;
    }
    const { recordsIn, recordsOut, deadLetters, lateRecords } = app.metrics();
    return { ms, cpuMs, output: { outputs, hash: hex(hash) }, metrics: { recordsIn, recordsOut, deadLetters, lateRecords } };
  } finally {
    await app.stop();
  }
}

/** The hand loop: the table as a Map (untimed), then decode, look up, join, encode per reading. */
export async function runTableJoinBaseline(input: TableJoinInput, hooks: TimedHooks = {}): Promise<JoinRun> {
  const decoder = new TextDecoder();
  const table = new Map<string, Sensor>();
  for (const record of input.table) table.set(decoder.decode(record.key!), JSON.parse(decoder.decode(record.value!)) as Sensor);
  const { stream } = input;
  const keys: Buffer[] = [];
  const values: Buffer[] = [];
  const { ms, cpuMs } = await timed(hooks, () => {
    for (let index = 0; index < stream.length; index++) {
      const record = stream[index]!;
      decoder.decode(record.key!);
      const r = JSON.parse(decoder.decode(record.value!)) as Reading;
      const s = table.get(r.sensor);
      if (s === undefined) continue;
      const joined = { ...r, place: s.place, value: r.value * s.scale };
      keys.push(Buffer.from(r.sensor, 'utf8'));
      values.push(Buffer.from(JSON.stringify(joined), 'utf8'));
    }
  });
  let hash = 0;
  for (let index = 0; index < values.length; index++) hash = (hash + recordHash(keys[index], values[index])) >>> 0;
  return { ms, cpuMs, output: { outputs: values.length, hash: hex(hash) } };
}

// --- windowed stream–stream ------------------------------------------------------------------------

export interface WithinJoinInput {
  readonly kind: 'join-within';
  /** Both sides interleaved (left, right, left, …), timestamps in order. */
  readonly records: readonly OutgoingRecord[];
  readonly inputHash: string;
  /** Per record: key index, side (0 left, 1 right), timestamp, id (= its index). */
  readonly keys: Int32Array;
  readonly timestamps: Float64Array;
}

export function buildWithinJoinInput(records: number, seed = 7): WithinJoinInput {
  if (!Number.isInteger(records) || records < 2) throw new Error(`records must be an integer ≥ 2, got ${records}`);
  const random = mulberry32(seed);
  const names = Array.from({ length: WITHIN_KEYS }, (_, index) => `sensor-${String(index).padStart(4, '0')}`);
  const keyBytes = names.map((name) => encoder.encode(name));
  // Both sides together: 2 × keys × per-key rate records per second.
  const gapMs = 1000 / (2 * WITHIN_KEYS * WITHIN_PER_KEY_PER_SECOND);
  const out: OutgoingRecord[] = [];
  const keys = new Int32Array(records);
  const timestamps = new Float64Array(records);
  for (let id = 0; id < records; id++) {
    const key = Math.floor(random() * WITHIN_KEYS);
    const ts = START_TS + Math.floor(id * gapMs);
    keys[id] = key;
    timestamps[id] = ts;
    const value = { sensor: names[key]!, id, ts };
    out.push({ topic: id % 2 === 0 ? LEFT_TOPIC : RIGHT_TOPIC, partition: 0, key: keyBytes[key]!, value: encoder.encode(JSON.stringify(value)), timestamp: ts });
  }
  return { kind: 'join-within', records: out, inputHash: inputHashOf(out), keys, timestamps };
}

const pairHash = (l: number, r: number) => (Math.imul(l, 0x9e3779b1) ^ Math.imul(r + 0x7f4a7c15, 0x85ebca6b)) >>> 0;

/** What the join must produce, by brute force, and how many records a key buffers when a record arrives. */
export interface WithinExpectation {
  readonly outputs: number;
  readonly hash: string;
  /** Mean over records of the key's records (both sides) in the join buffers when it arrives (stream time = its timestamp). */
  readonly bufferedPerKey: number;
  /** Mean records buffered over all keys (both sides). */
  readonly bufferedTotal: number;
}

export function expectedWithin(input: WithinJoinInput, withinMs: number, graceMs: number): WithinExpectation {
  const { keys, timestamps } = input;
  const byKey: number[][] = Array.from({ length: WITHIN_KEYS }, () => []);
  for (let id = 0; id < keys.length; id++) byKey[keys[id]!]!.push(id);
  let outputs = 0;
  let hash = 0;
  let buffered = 0;
  for (const ids of byKey) {
    // ids are in timestamp order; each record meets the earlier ones of the other side in reach.
    let oldest = 0;
    for (let index = 0; index < ids.length; index++) {
      const id = ids[index]!;
      const ts = timestamps[id]!;
      while (oldest < index && timestamps[ids[oldest]!]! < ts - withinMs - graceMs) oldest++;
      buffered += index - oldest;
      for (let earlier = index - 1; earlier >= 0 && timestamps[ids[earlier]!]! >= ts - withinMs; earlier--) {
        const other = ids[earlier]!;
        if (other % 2 === id % 2) continue;
        outputs++;
        hash = (hash + (id % 2 === 0 ? pairHash(id, other) : pairHash(other, id))) >>> 0;
      }
    }
  }
  const bufferedPerKey = Math.round((buffered / keys.length) * 100) / 100;
  const rate = 2 * WITHIN_KEYS * WITHIN_PER_KEY_PER_SECOND;
  return { outputs, hash: hex(hash), bufferedPerKey, bufferedTotal: Math.round((rate * (withinMs + graceMs)) / 1000) };
}

/** The engine on both streams, timed from the first record appended until the broker is idle. */
export async function runWithinJoinEngine(input: WithinJoinInput, withinMs: number, graceMs: number, options: EngineOptions, hooks: TimedHooks = {}): Promise<JoinRun> {
  const transport = memoryTransport({ defaultPartitions: 1, maxBatchSize: options.maxBatchSize });
  await transport.ensureTopics([
    { name: LEFT_TOPIC, partitions: 1 },
    { name: RIGHT_TOPIC, partitions: 1 },
  ]);
  const app = createApp({ id: 'bench-within', transport, idleTimeout: false, logger: silentLogger });
  type Event = { sensor: string; id: number; ts: number };
  const right = app.from<Event>(RIGHT_TOPIC).keyBy((e) => e.sensor);
  app
    .from<Event>(LEFT_TOPIC)
    .keyBy((e) => e.sensor)
    .join(right, (l, r) => ({ l: l.id, r: r.id }), { within: withinMs, grace: graceMs })
    .to(PAIRS_TOPIC);
  await app.start();
  const decoder = new TextDecoder();
  try {
    const { ms, cpuMs } = await timed(hooks, async () => {
      await appendAll(transport, input.records, options.appendBatch);
      await settleApp(app, () => transport.idle());
    });
    let hash = 0;
    let outputs = 0;
    for (const record of transport.records(PAIRS_TOPIC)) {
      const { l, r } = JSON.parse(decoder.decode(record.value!)) as { l: number; r: number };
      hash = (hash + pairHash(l, r)) >>> 0;
      outputs++;
    }
    const { recordsIn, recordsOut, deadLetters, lateRecords } = app.metrics();
    return { ms, cpuMs, output: { outputs, hash: hex(hash), lateRecords }, metrics: { recordsIn, recordsOut, deadLetters, lateRecords } };
  } finally {
    await app.stop();
  }
}
