/**
 * The input every contender gets: sensor readings for `keys` sensors, several per sensor per
 * second of event time, timestamps advancing in order with a little out-of-order jitter, plus one
 * far-future record at the end that closes every window still open. Generation is deterministic
 * (seeded), so every benchmark process builds byte-identical records; `inputHash` proves it.
 */
import type { OutgoingRecord } from '@eddy/core';
import { mulberry32 } from '@eddy/core/testing';

/** The value of one input record (JSON-encoded in the record). */
export interface Reading {
  readonly sensor: string;
  readonly value: number;
  readonly ts: number;
}

export interface WorkloadOptions {
  /** Regular records (the far-future closing record comes on top). */
  readonly records: number;
  /** Distinct sensors (keys). */
  readonly keys: number;
  /** Records per key per second of event time. */
  readonly perKeyPerSecond: number;
  /** Share of records whose timestamp is moved back by up to `jitterMs`. */
  readonly jitterFraction: number;
  readonly jitterMs: number;
  readonly seed: number;
}

export const defaultWorkload: Omit<WorkloadOptions, 'records'> = {
  keys: 1000,
  perKeyPerSecond: 5,
  jitterFraction: 0.1,
  jitterMs: 250,
  seed: 42,
};

/** The input topic name. */
export const INPUT_TOPIC = 'readings';
/** Event time of the first record: 2023-11-14T22:13:20Z, a multiple of every window size used. */
export const START_TS = 1_700_000_000_000;
/** How far past the last regular record the closing record lies. */
export const CLOSER_GAP_MS = 3_600_000;

export interface Workload {
  readonly options: WorkloadOptions;
  /** Pre-serialized records for `memoryTransport().append`, the last one being the far-future closer. */
  readonly input: readonly OutgoingRecord[];
  /** Event time covered by the regular records. */
  readonly eventTimeSpanMs: number;
  /** Records whose timestamp is below the largest seen before them. */
  readonly outOfOrder: number;
  /** FNV-1a over every key, value and timestamp: equal hashes mean equal input. */
  readonly inputHash: string;
  readonly inputBytes: number;
}

const prng = mulberry32;

export function sensorName(index: number): string {
  return `sensor-${String(index).padStart(4, '0')}`;
}

export function buildWorkload(options: WorkloadOptions): Workload {
  const { records, keys, perKeyPerSecond, jitterFraction, jitterMs, seed } = options;
  if (!Number.isInteger(records) || records < 1) throw new Error(`records must be a positive integer, got ${records}`);
  const random = prng(seed);
  const encoder = new TextEncoder();
  const names = Array.from({ length: keys }, (_, index) => sensorName(index));
  const keyBytes = names.map((name) => encoder.encode(name));
  const perSecond = keys * perKeyPerSecond;
  const input: OutgoingRecord[] = [];
  let maxTs = -Infinity;
  let outOfOrder = 0;
  const make = (sensor: number, ts: number): OutgoingRecord => {
    if (ts < maxTs) outOfOrder++;
    else maxTs = ts;
    const value = Math.round((15 + random() * 15) * 100) / 100;
    const reading: Reading = { sensor: names[sensor]!, value, ts };
    return { topic: INPUT_TOPIC, partition: 0, key: keyBytes[sensor]!, value: encoder.encode(JSON.stringify(reading)), timestamp: ts };
  };
  for (let index = 0; index < records; index++) {
    // Round-robin over sensors: each sensor every keys/perSecond seconds, evenly spread.
    let ts = START_TS + Math.floor((index * 1000) / perSecond);
    if (random() < jitterFraction) ts -= Math.floor(random() * jitterMs);
    input.push(make(index % keys, ts));
  }
  const eventTimeSpanMs = maxTs - START_TS;
  input.push(make(0, maxTs + CLOSER_GAP_MS));

  let hash = 0x811c9dc5;
  let inputBytes = 0;
  const mix = (bytes: Uint8Array) => {
    for (let index = 0; index < bytes.length; index++) hash = Math.imul(hash ^ bytes[index]!, 0x01000193);
    inputBytes += bytes.length;
  };
  for (const record of input) {
    mix(record.key!);
    mix(record.value!);
    hash = Math.imul(hash ^ (record.timestamp % 0x7fffffff), 0x01000193);
  }
  return { options, input, eventTimeSpanMs, outOfOrder, inputHash: (hash >>> 0).toString(16).padStart(8, '0'), inputBytes };
}
