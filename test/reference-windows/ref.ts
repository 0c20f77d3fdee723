/**
 * Brute-force references for the window tests of this folder, written from the README ("Time and
 * windows") and never from the engine: a seeded input generator, Kafka's default partitioner, one
 * model per window kind, and `simulate`, which runs the models per task as the engine does.
 */
import { mulberry32 } from '@eddy/core/testing';

// The record and result shapes are the engine's own test references' (types only: the models
// below share no code with them).
export type { Reading, RefLate, RefUpdate } from '../../packages/core/src/testing/window-reference.test-support.ts';
import type { Reading, RefLate, RefUpdate } from '../../packages/core/src/testing/window-reference.test-support.ts';

// --- seeded randomness --------------------------------------------------------------------------

/** The project's seeded PRNG in [0, 1) (a test utility, not engine code). */
export const seededRandom = mulberry32;

export interface GenerateOptions {
  count: number;
  keys: string[];
  /** Timestamps are multiples of this, so that records land exactly on window boundaries. */
  quantum: number;
  /** The base timestamp moves forward by 0..maxStep quanta per record. */
  maxStep: number;
  /** Out of order by 0..jitter quanta. */
  jitter: number;
  /** Chance that a record is very late: base - 0..lateBy quanta. Default 0.05, lateBy 200. */
  lateChance?: number;
  lateBy?: number;
  /** Chance that a record reuses the timestamp of a recent record. Default 0.15. */
  duplicateChance?: number;
  /** Chance that the base timestamp jumps forward by 1..gap ms before a record. Default 0. */
  gapChance?: number;
  gap?: number;
  /** The first base timestamp. Default 0. */
  start?: number;
}

/** Seeded records: mostly ascending, with jitter, very late records, equal timestamps and gaps. */
export function generate(seed: number, options: GenerateOptions): Reading[] {
  const random = seededRandom(seed);
  const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
  const readings: Reading[] = [];
  let base = options.start ?? 0;
  for (let id = 0; id < options.count; id++) {
    base += int(0, options.maxStep) * options.quantum;
    if (options.gapChance && random() < options.gapChance) base += int(1, options.gap ?? 1e9);
    let ts: number;
    if (readings.length > 0 && random() < (options.duplicateChance ?? 0.15)) ts = readings[Math.max(0, readings.length - int(1, 10))]!.ts;
    else if (random() < (options.lateChance ?? 0.05)) ts = base - int(0, options.lateBy ?? 200) * options.quantum;
    else ts = base - int(0, options.jitter) * options.quantum;
    // Now and then one millisecond off the grid: a boundary minus one.
    if (random() < 0.1) ts -= 1;
    readings.push({ id, k: options.keys[int(0, options.keys.length - 1)]!, ts, v: int(-50, 50) });
  }
  return readings;
}

// --- partitioning (Kafka's default partitioner, written from its definition) ---------------------

export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  let h = (0x9747b28c ^ data.length) | 0;
  const words = data.length >> 2;
  for (let i = 0; i < words; i++) {
    const j = i * 4;
    let k = data[j]! | (data[j + 1]! << 8) | (data[j + 2]! << 16) | (data[j + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  // The last 1 to 3 bytes, highest first.
  const tail = data.length & ~3;
  const rest = data.length & 3;
  if (rest >= 3) h ^= data[tail + 2]! << 16;
  if (rest >= 2) h ^= data[tail + 1]! << 8;
  if (rest >= 1) {
    h ^= data[tail]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

export const partitionOf = (key: string, partitions: number) => (murmur2(new TextEncoder().encode(key)) & 0x7fffffff) % partitions;

// --- reference models -----------------------------------------------------------------------------

export interface RefWindow {
  key: string;
  start: number;
  end: number;
  records: Reading[];
  /** Index of the input record after which the window was emitted (the input's length: at the final flush). */
  at: number;
}

export interface Reference {
  closed: RefWindow[];
  late: RefLate[];
  updates: RefUpdate[];
  /** Records late for at least one window. */
  lateRecords: number;
}

export type Spec =
  | { kind: 'tumbling'; size: number; grace: number }
  | { kind: 'hopping'; size: number; slide: number; grace: number }
  | { kind: 'sliding'; size: number; grace: number }
  | { kind: 'session'; gap: number; grace: number }
  | { kind: 'count'; size: number; step: number };

/** One window kind of each time-based kind, with grace where it can have one. */
export const ONE_PER_KIND = ['tumbling 20 g7', 'hopping 30/10 g0', 'sliding 20 g6', 'session 15 g4'];

/** Each time-based kind with grace 0 and with a grace off the 5 ms grid of the generated timestamps. */
export const WITH_AND_WITHOUT_GRACE = ['tumbling 20 g0', 'tumbling 20 g7', 'hopping 30/10 g0', 'hopping 25/10 g5', 'sliding 20 g0', 'sliding 20 g6', 'session 15 g0', 'session 15 g4'];

/**
 * Specs named as the tests title them: 'tumbling 20 g7', 'hopping 30/10 g0', 'sliding 20 g6',
 * 'session 15 g4', 'count 4/2' (size/step); a note in parentheses may follow.
 */
export function specs(...names: string[]): Array<[string, Spec]> {
  return names.map((name) => {
    const [kind = '', shape = '', grace = ''] = name.replace(/ \(.*\)$/, '').split(' ');
    const [a, b] = shape.split('/').map(Number) as [number, number | undefined];
    const g = Number(grace.slice(1));
    const spec: Spec | undefined =
      kind === 'tumbling' || kind === 'sliding' ? { kind, size: a, grace: g }
      : kind === 'hopping' && b !== undefined ? { kind, size: a, slide: b, grace: g }
      : kind === 'session' ? { kind, gap: a, grace: g }
      : kind === 'count' && b !== undefined ? { kind, size: a, step: b }
      : undefined;
    if (!spec || Object.values(spec).some((value) => Number.isNaN(value))) throw new Error(`test setup: no window spec is named ${JSON.stringify(name)}`);
    return [name, spec];
  });
}

/** One task's window operator, brute force from the stated semantics. */
export interface WindowModel {
  /** Assigns a record, `streamTime` being the stream time before it. */
  add(record: Reading, streamTime: number, at: number, out: Reference): void;
  /** Emits every window whose close time is ≤ `streamTime`. */
  closeUpTo(streamTime: number, at: number, out: Reference): void;
}

/** tumbling(size) = hopping(size, size); hopping: windows [k*slide, k*slide + size), closing at end + grace. */
class HoppingModel implements WindowModel {
  /** key -> window start -> records */
  readonly #open = new Map<string, Map<number, Reading[]>>();

  constructor(
    private readonly size: number,
    private readonly slide: number,
    private readonly grace: number,
  ) {}

  add(record: Reading, streamTime: number, at: number, out: Reference): void {
    let windows = this.#open.get(record.k);
    if (!windows) this.#open.set(record.k, (windows = new Map()));
    const starts: number[] = [];
    for (let k = Math.floor(record.ts / this.slide); k * this.slide > record.ts - this.size; k--) starts.push(k * this.slide);
    starts.sort((a, b) => a - b);
    let late = false;
    for (const start of starts) {
      if (start + this.size + this.grace <= streamTime) {
        out.late.push({ key: record.k, start, end: start + this.size, id: record.id, timestamp: record.ts, at });
        late = true;
      } else {
        let records = windows.get(start);
        if (!records) windows.set(start, (records = []));
        records.push(record);
        out.updates.push({ key: record.k, start, end: start + this.size, records: [...records], at });
      }
    }
    if (late) out.lateRecords++;
  }

  closeUpTo(streamTime: number, at: number, out: Reference): void {
    for (const [key, windows] of this.#open) {
      for (const [start, records] of [...windows].sort((a, b) => a[0] - b[0])) {
        if (start + this.size + this.grace <= streamTime) {
          out.closed.push({ key, start, end: start + this.size, records, at });
          windows.delete(start);
        }
      }
    }
  }
}

/**
 * sliding(size): per key and distinct timestamp t whose own window opened, the window
 * [t - size + 1, t + 1) of the key's kept records in range, closing at t + 1 + grace.
 */
class SlidingModel implements WindowModel {
  readonly #keys = new Map<string, { kept: Reading[]; windows: Map<number, 'open' | 'emitted'> }>();

  constructor(
    private readonly size: number,
    private readonly grace: number,
  ) {}

  #state(key: string) {
    let state = this.#keys.get(key);
    if (!state) this.#keys.set(key, (state = { kept: [], windows: new Map() }));
    return state;
  }

  #contents(kept: readonly Reading[], windowTime: number): Reading[] {
    return kept.filter((record) => record.ts > windowTime - this.size && record.ts <= windowTime);
  }

  add(record: Reading, streamTime: number, at: number, out: Reference): void {
    const state = this.#state(record.k);
    const t = record.ts;
    const missed: number[] = [];
    if (t + 1 + this.grace > streamTime) state.windows.set(t, state.windows.get(t) ?? 'open');
    else missed.push(t);
    for (const [windowTime, status] of state.windows) {
      if (windowTime <= t || windowTime >= t + this.size || status !== 'emitted') continue;
      // An emitted window is remembered while stream time < its t + size + grace (README).
      if (windowTime + this.size + this.grace > streamTime) missed.push(windowTime);
    }
    missed.sort((a, b) => a - b);
    for (const windowTime of missed) out.late.push({ key: record.k, start: windowTime - this.size + 1, end: windowTime + 1, id: record.id, timestamp: t, at });
    if (missed.length > 0) out.lateRecords++;
    // A record late for its own window still counts for the windows of later timestamps that hold
    // it, open or yet to come, while stream time < t + size + grace.
    if (t + this.size + this.grace <= streamTime) return;
    state.kept.push(record);
    for (const windowTime of [...state.windows.keys()].sort((a, b) => a - b)) {
      if (state.windows.get(windowTime) === 'open' && windowTime - this.size < t && t <= windowTime) {
        out.updates.push({ key: record.k, start: windowTime - this.size + 1, end: windowTime + 1, records: this.#contents(state.kept, windowTime), at });
      }
    }
  }

  closeUpTo(streamTime: number, at: number, out: Reference): void {
    for (const [key, state] of this.#keys) {
      for (const windowTime of [...state.windows.keys()].sort((a, b) => a - b)) {
        if (state.windows.get(windowTime) === 'open' && windowTime + 1 + this.grace <= streamTime) {
          out.closed.push({ key, start: windowTime - this.size + 1, end: windowTime + 1, records: this.#contents(state.kept, windowTime), at });
          state.windows.set(windowTime, 'emitted');
        }
      }
    }
  }
}

/** session(gap): open sessions [first, last + 1) per key, closing at last + gap + grace. */
class SessionModel implements WindowModel {
  readonly #open = new Map<string, Array<{ first: number; last: number; records: Reading[] }>>();

  constructor(
    private readonly gap: number,
    private readonly grace: number,
  ) {}

  add(record: Reading, streamTime: number, at: number, out: Reference): void {
    const sessions = this.#open.get(record.k) ?? [];
    const matching = sessions.filter((session) => session.first - this.gap <= record.ts && record.ts <= session.last + this.gap);
    if (matching.length === 0 && record.ts + this.gap + this.grace <= streamTime) {
      out.late.push({ key: record.k, start: record.ts, end: record.ts + 1, id: record.id, timestamp: record.ts, at });
      out.lateRecords++;
      return;
    }
    const merged = { first: record.ts, last: record.ts, records: [] as Reading[] };
    for (const session of matching) {
      merged.first = Math.min(merged.first, session.first);
      merged.last = Math.max(merged.last, session.last);
      merged.records.push(...session.records);
    }
    merged.records.push(record);
    this.#open.set(record.k, [...sessions.filter((session) => !matching.includes(session)), merged]);
    out.updates.push({ key: record.k, start: merged.first, end: merged.last + 1, records: [...merged.records], at });
  }

  closeUpTo(streamTime: number, at: number, out: Reference): void {
    for (const [key, sessions] of this.#open) {
      const due = sessions.filter((session) => session.last + this.gap + this.grace <= streamTime).sort((a, b) => a.last - b.last);
      for (const session of due) out.closed.push({ key, start: session.first, end: session.last + 1, records: session.records, at });
      this.#open.set(
        key,
        sessions.filter((session) => !due.includes(session)),
      );
    }
  }
}

/** countWindow(size, step): per key, after every step-th record, the last min(size, seen) records. */
class CountModel implements WindowModel {
  readonly #keys = new Map<string, { seen: number; recent: Reading[] }>();

  constructor(
    private readonly size: number,
    private readonly step: number,
  ) {}

  add(record: Reading, _streamTime: number, at: number, out: Reference): void {
    let state = this.#keys.get(record.k);
    if (!state) this.#keys.set(record.k, (state = { seen: 0, recent: [] }));
    state.seen++;
    state.recent = [...state.recent, record].slice(-this.size);
    if (state.seen % this.step === 0) {
      const times = state.recent.map((item) => item.ts);
      out.closed.push({ key: record.k, start: Math.min(...times), end: Math.max(...times) + 1, records: [...state.recent], at });
    }
  }

  closeUpTo(): void {}
}

export function modelOf(spec: Spec): WindowModel {
  switch (spec.kind) {
    case 'tumbling':
      return new HoppingModel(spec.size, spec.size, spec.grace);
    case 'hopping':
      return new HoppingModel(spec.size, spec.slide, spec.grace);
    case 'sliding':
      return new SlidingModel(spec.size, spec.grace);
    case 'session':
      return new SessionModel(spec.gap, spec.grace);
    case 'count':
      return new CountModel(spec.size, spec.step);
  }
}

/**
 * Runs the model per task: records go to partition partitionOf(k) of `partitions`, each task with
 * its own stream time. `flushAtEnd` closes everything at the end (an idle timeout given enough
 * clock time). The results of `ignoreKeys` (records that only move stream time) are dropped.
 */
export function simulate(spec: Spec, readings: readonly Reading[], options: { partitions?: number; flushAtEnd?: boolean; ignoreKeys?: Set<string> } = {}): Reference {
  const partitions = options.partitions ?? 1;
  const tasks = new Map<number, { model: WindowModel; streamTime: number }>();
  const out: Reference = { closed: [], late: [], updates: [], lateRecords: 0 };
  readings.forEach((record, index) => {
    const partition = partitionOf(record.k, partitions);
    let task = tasks.get(partition);
    if (!task) tasks.set(partition, (task = { model: modelOf(spec), streamTime: -Infinity }));
    task.model.add(record, task.streamTime, index, out);
    task.streamTime = Math.max(task.streamTime, record.ts);
    task.model.closeUpTo(task.streamTime, index, out);
  });
  if (options.flushAtEnd) for (const task of tasks.values()) task.model.closeUpTo(Infinity, readings.length, out);
  const kept = (item: { key: string }) => !options.ignoreKeys?.has(item.key);
  return { closed: out.closed.filter(kept), late: out.late.filter(kept), updates: out.updates.filter(kept), lateRecords: out.lateRecords };
}

// --- aggregations ---------------------------------------------------------------------------------

/** Timestamp order, ties in send order: what `collect()` promises. */
export const byTimeThenArrival = (readings: readonly Reading[]) => [...readings].sort((a, b) => a.ts - b.ts || a.id - b.id);
const values = (readings: readonly Reading[]) => readings.map((reading) => reading.v);
const sum = (readings: readonly Reading[]) => values(readings).reduce((a, b) => a + b, 0);
const roundMean = (mean: number) => Math.round(mean * 1e9) / 1e9;

/** Each aggregation's expected value, and how to normalise the engine's value for comparison. */
export const AGGREGATIONS: Record<string, { expect: (readings: Reading[]) => unknown; normalise?: (value: unknown) => unknown }> = {
  count: { expect: (readings) => readings.length },
  sum: { expect: sum },
  min: { expect: (readings) => Math.min(...values(readings)) },
  max: { expect: (readings) => Math.max(...values(readings)) },
  mean: { expect: (readings) => roundMean(sum(readings) / readings.length), normalise: (value) => roundMean(value as number) },
  collect: { expect: (readings) => byTimeThenArrival(readings).map((reading) => reading.id), normalise: (value) => (value as Reading[]).map((reading) => reading.id) },
  reduce: { expect: sum, normalise: (value) => (value as Reading).v },
  aggregate: { expect: (readings) => ({ n: readings.length, s: sum(readings) }) },
  aggregateWithoutMerge: { expect: (readings) => byTimeThenArrival(readings).map((reading) => reading.id).join(',') },
};
