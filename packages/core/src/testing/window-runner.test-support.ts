/**
 * Runs windowed tables through the public API (`createApp`, `TestDriver`), records what their
 * handlers saw and when, and checks a run against a reference model.
 */
import { createApp, type AppOptions, type KeyedStream, type MetricsSnapshot, type WindowedTable } from '../index.js';
import { TestDriver, type DriverRecord } from './index.js';
import { closedDifference, firstDifference, lateDifference, type ClosedCall, type LateCall } from './window-compare.test-support.js';
import { collectedIds, FLUSH_KEY, idsOf, simulate, withFlush, type Reading, type RefUpdate, type WindowModel } from './window-reference.test-support.js';

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
