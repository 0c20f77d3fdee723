/**
 * Support for the window test suites (`windows/*.test.ts`): a seeded PRNG, a generator of
 * out-of-order keyed readings, brute-force reference models of every window kind written from
 * the semantics in DESIGN.md (never from the engine), and a runner that drives an app through the
 * public API (`createApp`, `TestDriver`) and records what its handlers saw and when.
 *
 * Not a test file itself: it declares no tests and does not import vitest.
 */
import { isDeepStrictEqual } from 'node:util';
import { createApp, type AppOptions, type KeyedStream, type MetricsSnapshot, type WindowedTable } from '../index.js';
import { TestDriver, type DriverRecord } from '../testing/index.js';
import { mulberry32 } from '../testing/random.js';

export { mulberry32 };

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
      let stillOpen = false;
      for (const [windowTime, status] of state.windows) {
        if (windowTime <= t || windowTime >= t + this.size) continue;
        if (status === 'emitted') {
          const forgotten = this.options.forgetEmitted === true && windowTime + this.size + this.grace <= streamTime;
          if (!forgotten) missed.push([windowTime - this.size + 1, windowTime + 1]);
        }
        else stillOpen = true;
      }
      pushLate(out, record, missed, at);
      if (!stillOpen) return;
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

// --- running the engine -----------------------------------------------------------------------

/**
 * What an `onClose` handler saw, after which record (`at`, the index in send order; the
 * readings' length once all were sent) and at which virtual clock time (`now`).
 */
export interface ClosedCall {
  key: string;
  start: number;
  end: number;
  value: unknown;
  at: number;
  now?: number;
}

/** What an `onLate` handler saw. */
export interface LateCall {
  key: string;
  start: number;
  end: number;
  id: number;
  timestamp: number;
  at: number;
  now?: number;
}

export interface TableRun {
  closed: ClosedCall[];
  late: LateCall[];
  /** The `onClose` results as records of the output topic. */
  out: DriverRecord<{ start: number; end: number; value: unknown }>[];
  /** `onUpdate()` records (only when asked for). */
  updates: DriverRecord<{ key: string; start: number; end: number; value: unknown }>[];
}

export interface RunResult {
  tables: Record<string, TableRun>;
  metrics: MetricsSnapshot;
}

/** A windowed table over the keyed readings (its input may be mapped, e.g. to numbers). */
export type TableBuilder = (keyed: KeyedStream<string, Reading>) => WindowedTable<string, unknown, unknown>;

export interface RunOptions {
  readings: readonly Reading[];
  /** One or more windowed tables over the same keyed input, by name. */
  tables: Record<string, TableBuilder>;
  /** Extra app options (`idleTimeout`, `time`, ...). Default: idle timeout off. */
  app?: Partial<AppOptions>;
  /** Also read `onUpdate()` of each table. */
  updates?: boolean;
  /** After the readings, move the virtual clock this far (with an idle timeout, this flushes). */
  advanceAfter?: number;
  /** Clock time to move before each send (processing time); index → ms. */
  advanceBefore?: (index: number) => number;
}

/**
 * Builds an app reading `in` (timestamp = `ts`, keyed by `k`), one windowed table per entry of
 * `tables` with `onClose` (and `onLate`, optionally `onUpdate()`) to topics of its own, sends the
 * readings one by one through a TestDriver and reports what came out.
 */
export async function runTables(options: RunOptions): Promise<RunResult> {
  const app = createApp({ id: 'windows-test', idleTimeout: false, ...options.app });
  const keyed = app.from<Reading>('in', { timestamp: (reading) => reading.ts }).keyBy((reading) => reading.k);
  let at = -1;
  // The handlers read the virtual clock of a driver that starts after the pipeline is built.
  const clock = { now: (): number => Number.NaN };
  const tables: Record<string, { closed: ClosedCall[]; late: LateCall[] }> = {};
  for (const [name, build] of Object.entries(options.tables)) {
    const calls = { closed: [] as ClosedCall[], late: [] as LateCall[] };
    tables[name] = calls;
    const table = build(keyed);
    table
      .onClose((window) => {
        calls.closed.push({ key: window.key, start: window.start, end: window.end, value: window.value, at, now: clock.now() });
        return { start: window.start, end: window.end, value: window.value };
      })
      .to(`out-${name}`);
    table
      .onLate((late) => {
        // A table over mapped values (numbers) has no id to report: -1.
        const id = typeof late.value === 'object' && late.value !== null ? (late.value as Reading).id : -1;
        calls.late.push({ key: late.key, start: late.start, end: late.end, id, timestamp: late.timestamp, at, now: clock.now() });
        return undefined;
      })
      .to(`late-${name}`);
    if (options.updates) table.onUpdate().to(`updates-${name}`);
  }
  const driver = await TestDriver.start(app, { startTime: 0 });
  clock.now = () => driver.now();
  try {
    for (const [index, reading] of options.readings.entries()) {
      const before = options.advanceBefore?.(index) ?? 0;
      if (before > 0) await driver.advanceTime(before);
      at = index;
      await driver.send('in', reading, { key: reading.k, timestamp: reading.ts });
    }
    at = options.readings.length;
    if (options.advanceAfter !== undefined) await driver.advanceTime(options.advanceAfter);
    const result: Record<string, TableRun> = {};
    for (const [name, calls] of Object.entries(tables)) {
      const real = (item: { key: string | undefined }) => item.key !== FLUSH_KEY;
      result[name] = {
        closed: calls.closed.filter(real),
        late: calls.late.filter(real),
        out: driver.read<{ start: number; end: number; value: unknown }>(`out-${name}`).filter(real),
        updates: options.updates ? driver.read<{ key: string; start: number; end: number; value: unknown }>(`updates-${name}`).filter(real) : [],
      };
    }
    return { tables: result, metrics: app.metrics() };
  } finally {
    await driver.stop();
  }
}

/** Runs one table named `main`. */
export async function runTable(options: Omit<RunOptions, 'tables'> & { table: TableBuilder }): Promise<TableRun & { metrics: MetricsSnapshot }> {
  const { tables, metrics } = await runTables({ ...options, tables: { main: options.table } });
  return { ...tables['main']!, metrics };
}

// --- comparing -----------------------------------------------------------------------------------

/** The ids of a collected window value. */
export const idsOf = (value: unknown): number[] => (value as Reading[]).map((reading) => reading.id);

/** The ids of reference records in `collect()` order. */
export const collectedIds = (records: readonly Reading[]): number[] => byTimeThenArrival(records).map((reading) => reading.id);

/**
 * The first difference between two sequences, with a little context, or undefined when equal:
 * `expect(firstDifference(actual, expected)).toBeUndefined()` fails with a readable message.
 */
export function firstDifference<T>(actual: readonly T[], expected: readonly T[], label = ''): object | undefined {
  const length = Math.max(actual.length, expected.length);
  for (let index = 0; index < length; index++) {
    if (!isDeepStrictEqual(actual[index], expected[index])) {
      return {
        label,
        index,
        actualLength: actual.length,
        expectedLength: expected.length,
        actual: actual.slice(Math.max(0, index - 1), index + 3),
        expected: expected.slice(Math.max(0, index - 1), index + 3),
      };
    }
  }
  return undefined;
}

/** Groups items by key, keeping their order. */
export function perKey<T extends { key: string | undefined }>(items: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = String(item.key);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = []));
    group.push(item);
  }
  return groups;
}

/**
 * Compares closed windows per key, in order: bounds, value (through `actualValue` and
 * `expectedValue`) and the record after which each was emitted. Windows of different keys that
 * close at the same stream time may interleave in any order, so the global order is checked only
 * for close times (`closeOf`): never decreasing.
 */
export function closedDifference(
  actual: readonly ClosedCall[],
  expected: readonly RefWindow[],
  expectedValue: (records: Reading[]) => unknown = collectedIds,
  actualValue: (value: unknown) => unknown = idsOf,
  closeOf?: (window: { start: number; end: number }) => number,
): object | undefined {
  const actualByKey = perKey(actual.map((window) => ({ key: window.key, start: window.start, end: window.end, value: actualValue(window.value), at: window.at })));
  const expectedByKey = perKey(expected.map((window) => ({ key: window.key, start: window.start, end: window.end, value: expectedValue(window.records), at: window.at })));
  const keys = [...new Set([...actualByKey.keys(), ...expectedByKey.keys()])].sort();
  for (const key of keys) {
    const difference = firstDifference(actualByKey.get(key) ?? [], expectedByKey.get(key) ?? [], `closed windows of key ${key}`);
    if (difference) return difference;
  }
  if (closeOf) {
    for (let index = 1; index < actual.length; index++) {
      if (closeOf(actual[index]!) < closeOf(actual[index - 1]!)) return { label: 'close-time order across keys', index, windows: actual.slice(index - 1, index + 1) };
    }
  }
  return undefined;
}

/** Compares `onLate` calls: per record, the windows it missed in start order, and when. */
export function lateDifference(actual: readonly LateCall[], expected: readonly RefLate[]): object | undefined {
  const shape = (late: LateCall | RefLate) => ({ key: late.key, id: late.id, timestamp: late.timestamp, start: late.start, end: late.end, at: late.at });
  return firstDifference(actual.map(shape), expected.map(shape), 'late calls');
}

/** Every output record of `onClose`: key = window key, timestamp = end - 1, in handler-call order. */
export function outputDifference(run: TableRun, actualValue: (value: unknown) => unknown = idsOf): object | undefined {
  return firstDifference(
    run.out.map((record) => ({ key: record.key, timestamp: record.timestamp, start: record.value.start, end: record.value.end, value: actualValue(record.value.value) })),
    run.closed.map((window) => ({ key: window.key, timestamp: window.end - 1, start: window.start, end: window.end, value: actualValue(window.value) })),
    'output records',
  );
}

/** Compares `onUpdate()` records with the reference updates, in order (updates follow records, so the order is total). */
export function updatesDifference(
  actual: TableRun['updates'],
  expected: readonly RefUpdate[],
  expectedValue: (records: Reading[]) => unknown = collectedIds,
  actualValue: (value: unknown) => unknown = idsOf,
): object | undefined {
  return firstDifference(
    actual.map((record) => ({ key: record.key, recordKey: record.value.key, timestamp: record.timestamp, start: record.value.start, end: record.value.end, value: actualValue(record.value.value) })),
    expected.map((update) => ({ key: update.key, recordKey: update.key, timestamp: update.end - 1, start: update.start, end: update.end, value: expectedValue(update.records) })),
    'updates',
  );
}

// --- one property check ----------------------------------------------------------------------

export interface CheckOptions {
  /** The readings, without a flush record. */
  readings: readonly Reading[];
  model: WindowModel;
  table: TableBuilder;
  /**
   * How the last windows close: `record` sends a far-future record on another key (idle timeout
   * off); `idleAdvance` turns the 5 s idle timeout on and moves the clock that far at the end.
   */
  flush: 'record' | { idleAdvance: number };
  /** Close time of a window, for the global order check (omit for count windows). */
  closeOf?: (window: { start: number; end: number }) => number;
  updates?: boolean;
  expectedValue?: (records: Reading[]) => unknown;
  actualValue?: (value: unknown) => unknown;
}

export interface CheckResult {
  /** Empty when the engine agrees with the reference. */
  differences: object[];
  /** Sizes, to assert that a property actually exercised something. */
  stats: { windows: number; lateCalls: number; lateRecords: number; updates: number };
}

/** Runs the engine and the reference model on the same readings and lists every disagreement. */
export async function checkAgainstReference(options: CheckOptions): Promise<CheckResult> {
  const byRecord = options.flush === 'record';
  const readings = byRecord ? withFlush(options.readings) : [...options.readings];
  const reference = simulate(options.model, readings, { flushAtEnd: !byRecord });
  const run = await runTable({
    readings,
    table: options.table,
    updates: options.updates,
    app: byRecord ? { idleTimeout: false } : { idleTimeout: 5000 },
    advanceAfter: byRecord ? undefined : (options.flush as { idleAdvance: number }).idleAdvance,
  });
  const differences = [
    closedDifference(run.closed, reference.closed, options.expectedValue, options.actualValue, options.closeOf),
    lateDifference(run.late, reference.late),
    run.metrics.lateRecords === reference.lateRecords ? undefined : { label: 'lateRecords metric', actual: run.metrics.lateRecords, expected: reference.lateRecords },
    outputDifference(run, options.actualValue),
    options.updates ? updatesDifference(run.updates, reference.updates, options.expectedValue, options.actualValue) : undefined,
  ].filter((difference): difference is object => difference !== undefined);
  return {
    differences,
    stats: { windows: reference.closed.length, lateCalls: reference.late.length, lateRecords: reference.lateRecords, updates: reference.updates.length },
  };
}
