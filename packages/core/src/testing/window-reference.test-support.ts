/**
 * The window test suites' input and oracles: a seeded PRNG, a generator of out-of-order keyed
 * readings, and brute-force reference models of every window kind written from the semantics in
 * DESIGN.md (never from the engine). Pure values: no app, no driver, no vitest.
 */
import { mulberry32 } from './random.js';

// --- randomness ------------------------------------------------------------------------------

export class Random {
  readonly #next: () => number;

  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }

  /** An integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.#next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.#next() < probability;
  }
}

/** The seeds every property runs with; a failing test names its seed. */
export const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] as const;

// --- input ----------------------------------------------------------------------------------

/** One input record. `id` is its position in send order (so arrival order), `k` its key. */
export interface Reading {
  id: number;
  k: string;
  ts: number;
  v: number;
}

export interface GenerateOptions {
  count: number;
  /** Number of distinct keys (`k0`, `k1`, ...). */
  keys: number;
  /** The first base timestamp (may be negative). Default 0. */
  start?: number;
  /** The base timestamp moves forward by 0..maxStep per record. Default 300. */
  maxStep?: number;
  /** Out of order: a record's timestamp is base - 0..jitter. Default 3000. */
  jitter?: number;
  /** Chance that a record is very late: base - 0..lateBy. Default 0.03. */
  lateChance?: number;
  lateBy?: number;
  /** Chance that a record reuses the timestamp of a recent record (any key). Default 0.15. */
  duplicateChance?: number;
  /** Values are integers in [-valueRange, valueRange]. Default 100. */
  valueRange?: number;
  /** Chance that the base timestamp jumps forward by 0..pause before a record (gaps). Default 0. */
  pauseChance?: number;
  pause?: number;
}

/** Seeded readings: mostly ascending, with jitter, very late records and duplicate timestamps. */
export function generate(seed: number, options: GenerateOptions): Reading[] {
  const random = new Random(seed);
  const { count, keys, start = 0, maxStep = 300, jitter = 3000, lateChance = 0.03, lateBy = 60_000, duplicateChance = 0.15, valueRange = 100, pauseChance = 0, pause = 0 } = options;
  const readings: Reading[] = [];
  let base = start;
  for (let id = 0; id < count; id++) {
    base += random.int(0, maxStep);
    if (pauseChance > 0 && random.chance(pauseChance)) base += random.int(0, pause);
    let ts: number;
    if (readings.length > 0 && random.chance(duplicateChance)) ts = readings[Math.max(0, readings.length - random.int(1, 20))]!.ts;
    else if (random.chance(lateChance)) ts = base - random.int(0, lateBy);
    else ts = base - random.int(0, jitter);
    readings.push({ id, k: `k${random.int(0, keys - 1)}`, ts, v: random.int(-valueRange, valueRange) });
  }
  return readings;
}

/** The key and timestamp of the flush record: far in the future, on a key of its own. */
export const FLUSH_KEY = '~flush';
export const FLUSH_TIME = 1_000_000_000_000;

/** Appends a flush record that moves stream time past every window of the other keys. */
export function withFlush(readings: readonly Reading[]): Reading[] {
  return [...readings, { id: readings.length, k: FLUSH_KEY, ts: FLUSH_TIME, v: 0 }];
}

/** Timestamp order, ties in arrival (send) order: what `collect()` promises. */
export function byTimeThenArrival(readings: readonly Reading[]): Reading[] {
  return [...readings].sort((a, b) => a.ts - b.ts || a.id - b.id);
}

// --- reference models --------------------------------------------------------------------------

export interface RefWindow {
  key: string;
  start: number;
  end: number;
  /** The window's records, in the order they were accepted (arrival order). */
  records: Reading[];
  /** Index of the record after which the window was emitted (records.length for the final flush). */
  at: number;
  /** Stream time at which it closes (-Infinity for count windows, which close on arrival). */
  close: number;
}

export interface RefLate {
  key: string;
  start: number;
  end: number;
  id: number;
  timestamp: number;
  at: number;
}

export interface RefUpdate {
  key: string;
  start: number;
  end: number;
  records: Reading[];
  at: number;
}

export interface Reference {
  closed: RefWindow[];
  late: RefLate[];
  /** Records late for at least one window. */
  lateRecords: number;
  updates: RefUpdate[];
}

export interface WindowModel {
  /** Assigns a record, `streamTime` being the stream time before it. */
  add(record: Reading, streamTime: number, at: number, out: Reference): void;
  /** Emits every window whose close time is ≤ `streamTime`. */
  closeUpTo(streamTime: number, at: number, out: Reference): void;
}

function emitInCloseOrder(due: RefWindow[], out: Reference): void {
  due.sort((a, b) => a.close - b.close || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) || a.end - b.end);
  out.closed.push(...due);
}

function pushLate(out: Reference, record: Reading, windows: Array<[start: number, end: number]>, at: number): void {
  windows.sort((a, b) => a[0] - b[0]);
  for (const [start, end] of windows) out.late.push({ key: record.k, start, end, id: record.id, timestamp: record.ts, at });
  if (windows.length > 0) out.lateRecords++;
}

/** tumbling(size) = hopping(size, size); hopping: windows [k*slide, k*slide + size), closing at end + grace. */
export class HoppingModel implements WindowModel {
  readonly #open = new Map<string, Map<number, Reading[]>>();

  constructor(
    readonly size: number,
    readonly slide: number,
    readonly grace: number,
  ) {}

  add(record: Reading, streamTime: number, at: number, out: Reference): void {
    const missed: Array<[number, number]> = [];
    const added: number[] = [];
    let windows = this.#open.get(record.k);
    if (!windows) this.#open.set(record.k, (windows = new Map()));
    // Every window containing ts, brute force from the last one backwards.
    for (let k = Math.floor(record.ts / this.slide); k * this.slide + this.size > record.ts; k--) {
      const start = k * this.slide;
      if (start > record.ts) throw new Error('reference: bad window enumeration');
      if (start + this.size + this.grace <= streamTime) {
        missed.push([start, start + this.size]);
      } else {
        let records = windows.get(start);
        if (!records) windows.set(start, (records = []));
        records.push(record);
        added.push(start);
      }
    }
    pushLate(out, record, missed, at);
    added.sort((a, b) => a - b);
    for (const start of added) out.updates.push({ key: record.k, start, end: start + this.size, records: [...windows.get(start)!], at });
  }

  closeUpTo(streamTime: number, at: number, out: Reference): void {
    const due: RefWindow[] = [];
    for (const [key, windows] of this.#open) {
      for (const [start, records] of windows) {
        const close = start + this.size + this.grace;
        if (close <= streamTime) {
          due.push({ key, start, end: start + this.size, records, at, close });
          windows.delete(start);
        }
      }
    }
    emitInCloseOrder(due, out);
  }
}

/**
 * sliding(size): per key and distinct timestamp t of a record accepted while its own window was
 * open, the window [t - size + 1, t + 1) of all accepted records in range, closing at t + 1 + grace.
 * A record whose own window has closed is accepted while a window that may hold it can still be
 * open or come (stream time < t + size + grace).
 */
export class SlidingModel implements WindowModel {
  readonly #keys = new Map<string, { accepted: Reading[]; windows: Map<number, 'open' | 'emitted'> }>();

  /**
   * `forgetEmitted`: the semantics say a late record gets one onLate call for every emitted
   * window t'' in (t, t + size), which needs every emitted window remembered forever. The engine
   * remembers an emitted window t'' only while records at t'' may still count somewhere, i.e.
   * while stream time < t'' + size + grace (see the windows test report). With `forgetEmitted`
   * the model does the same; without it, it follows the stated semantics.
   */
  constructor(
    readonly size: number,
    readonly grace: number,
    readonly options: { forgetEmitted?: boolean } = {},
  ) {}

  #state(key: string) {
    let state = this.#keys.get(key);
    if (!state) this.#keys.set(key, (state = { accepted: [], windows: new Map() }));
    return state;
  }

  #contents(accepted: readonly Reading[], windowTime: number): Reading[] {
    return accepted.filter((record) => record.ts > windowTime - this.size && record.ts <= windowTime);
  }

  add(record: Reading, streamTime: number, at: number, out: Reference): void {
    const state = this.#state(record.k);
    const t = record.ts;
    const ownOpen = t + 1 + this.grace > streamTime;
    if (ownOpen) {
      const status = state.windows.get(t);
      if (status === 'emitted') throw new Error('reference: an emitted window cannot be open again');
      state.windows.set(t, 'open');
    } else {
      const missed: Array<[number, number]> = [[t - this.size + 1, t + 1]];
      for (const [windowTime, status] of state.windows) {
        if (windowTime <= t || windowTime >= t + this.size || status !== 'emitted') continue;
        const forgotten = this.options.forgetEmitted === true && windowTime + this.size + this.grace <= streamTime;
        if (!forgotten) missed.push([windowTime - this.size + 1, windowTime + 1]);
      }
      pushLate(out, record, missed, at);
      if (t + this.size + this.grace <= streamTime) return;
    }
    state.accepted.push(record);
    const updated = [...state.windows].filter(([windowTime, status]) => status === 'open' && windowTime - this.size < t && t <= windowTime).map(([windowTime]) => windowTime);
    updated.sort((a, b) => a - b);
    for (const windowTime of updated) {
      out.updates.push({ key: record.k, start: windowTime - this.size + 1, end: windowTime + 1, records: this.#contents(state.accepted, windowTime), at });
    }
  }

  closeUpTo(streamTime: number, at: number, out: Reference): void {
    const due: RefWindow[] = [];
    for (const [key, state] of this.#keys) {
      for (const [windowTime, status] of state.windows) {
        const close = windowTime + 1 + this.grace;
        if (status === 'open' && close <= streamTime) {
          due.push({ key, start: windowTime - this.size + 1, end: windowTime + 1, records: this.#contents(state.accepted, windowTime), at, close });
          state.windows.set(windowTime, 'emitted');
        }
      }
    }
    emitInCloseOrder(due, out);
  }
}

/** session(gap): open sessions [first, last + 1) per key, closing at last + gap + grace. */
export class SessionModel implements WindowModel {
  readonly #open = new Map<string, Array<{ first: number; last: number; records: Reading[] }>>();

  constructor(
    readonly gap: number,
    readonly grace: number,
  ) {}

  add(record: Reading, streamTime: number, at: number, out: Reference): void {
    const t = record.ts;
    let sessions = this.#open.get(record.k);
    if (!sessions) this.#open.set(record.k, (sessions = []));
    const matching = sessions.filter((session) => session.first - this.gap <= t && t <= session.last + this.gap);
    if (matching.length === 0 && t + this.gap + this.grace <= streamTime) {
      pushLate(out, record, [[t, t + 1]], at);
      return;
    }
    const merged = { first: t, last: t, records: [] as Reading[] };
    for (const session of matching) {
      merged.first = Math.min(merged.first, session.first);
      merged.last = Math.max(merged.last, session.last);
      merged.records.push(...session.records);
    }
    merged.records.push(record);
    const rest = sessions.filter((session) => !matching.includes(session));
    rest.push(merged);
    this.#open.set(record.k, rest);
    out.updates.push({ key: record.k, start: merged.first, end: merged.last + 1, records: [...merged.records], at });
  }

  closeUpTo(streamTime: number, at: number, out: Reference): void {
    const due: RefWindow[] = [];
    for (const [key, sessions] of this.#open) {
      const keep = [];
      for (const session of sessions) {
        const close = session.last + this.gap + this.grace;
        if (close <= streamTime) due.push({ key, start: session.first, end: session.last + 1, records: session.records, at, close });
        else keep.push(session);
      }
      this.#open.set(key, keep);
    }
    emitInCloseOrder(due, out);
  }
}

/** countWindow(n, step): per key, after every step-th record, the last min(n, seen) records. */
export class CountModel implements WindowModel {
  readonly #keys = new Map<string, { seen: number; recent: Reading[] }>();

  constructor(
    readonly size: number,
    readonly step: number,
  ) {}

  add(record: Reading, _streamTime: number, at: number, out: Reference): void {
    let state = this.#keys.get(record.k);
    if (!state) this.#keys.set(record.k, (state = { seen: 0, recent: [] }));
    state.seen++;
    state.recent.push(record);
    const recent = state.recent.slice(-this.size);
    state.recent = recent;
    if (state.seen % this.step === 0) {
      const times = recent.map((item) => item.ts);
      out.closed.push({ key: record.k, start: Math.min(...times), end: Math.max(...times) + 1, records: [...recent], at, close: -Infinity });
    }
  }

  closeUpTo(): void {}
}

/**
 * Runs a model over readings in send order: each record is assigned with the stream time before
 * it, then stream time moves and due windows close. `flushAtEnd` closes everything afterwards
 * (what an idle timeout does given enough clock time). Results of FLUSH_KEY are dropped.
 */
export function simulate(model: WindowModel, readings: readonly Reading[], { flushAtEnd = false } = {}): Reference {
  const out: Reference = { closed: [], late: [], lateRecords: 0, updates: [] };
  let streamTime = -Infinity;
  readings.forEach((record, index) => {
    model.add(record, streamTime, index, out);
    streamTime = Math.max(streamTime, record.ts);
    model.closeUpTo(streamTime, index, out);
  });
  if (flushAtEnd) model.closeUpTo(Infinity, readings.length, out);
  const real = (item: { key: string }) => item.key !== FLUSH_KEY;
  return { closed: out.closed.filter(real), late: out.late.filter(real), lateRecords: out.lateRecords, updates: out.updates.filter(real) };
}

/** The ids of a collected window value. */
export const idsOf = (value: unknown): number[] => (value as Reading[]).map((reading) => reading.id);

/** The ids of reference records in `collect()` order. */
export const collectedIds = (records: readonly Reading[]): number[] => byTimeThenArrival(records).map((reading) => reading.id);
