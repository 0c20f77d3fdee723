/**
 * Runs the engine for the window tests of this folder, through its public API only (createApp,
 * TestDriver, MemoryTransport), and compares what it reports with the references of ref.ts.
 */
import { createApp, silentLogger, type KeyedStream, type MemoryTransport, type StateBackend, type WindowedStream, type WindowedTable } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { AGGREGATIONS, partitionOf, simulate, type Reading, type Reference, type RefLate, type Spec } from './ref.ts';

export function windowOf<V>(keyed: KeyedStream<string, V>, spec: Spec, name: string): WindowedStream<string, V> {
  switch (spec.kind) {
    case 'tumbling':
      return keyed.tumbling(spec.size, { grace: spec.grace, name });
    case 'hopping':
      return keyed.hopping(spec.size, spec.slide, { grace: spec.grace, name });
    case 'sliding':
      return keyed.sliding(spec.size, { grace: spec.grace, name });
    case 'session':
      return keyed.session(spec.gap, { grace: spec.grace, name });
    case 'count':
      return keyed.countWindow(spec.size, spec.step, { name });
  }
}

/** The window of `spec` with the aggregation named `aggregation` (a key of AGGREGATIONS). */
export function tableOf(keyed: KeyedStream<string, Reading>, spec: Spec, aggregation: string, name: string): WindowedTable<string, unknown, Reading> {
  const window = windowOf(keyed, spec, name);
  switch (aggregation) {
    case 'count':
      return window.count();
    case 'sum':
      return window.sum((reading) => reading.v);
    case 'min':
      return window.min((reading) => reading.v);
    case 'max':
      return window.max((reading) => reading.v);
    case 'mean':
      return window.mean((reading) => reading.v);
    case 'collect':
      return window.collect();
    case 'reduce':
      return window.reduce((a, b) => ({ ...a, v: a.v + b.v }));
    case 'aggregate':
      return window.aggregate<{ n: number; s: number }>({ init: () => ({ n: 0, s: 0 }), add: (a, reading) => ({ n: a.n + 1, s: a.s + reading.v }), merge: (a, b) => ({ n: a.n + b.n, s: a.s + b.s }) });
    case 'aggregateWithoutMerge':
      return window.aggregate<string>({ init: () => '', add: (a, reading) => (a === '' ? String(reading.id) : `${a},${reading.id}`) });
    default:
      throw new Error(`unknown aggregation ${aggregation}`);
  }
}

/** One onClose call; `at` is the index of the input record being processed (see ref.ts RefWindow). */
export interface CloseCall {
  key: string;
  start: number;
  end: number;
  value: unknown;
  at: number;
}

/** One onLate call: what the reference expects of one (ref.ts RefLate). */
export type LateCall = RefLate;

/** Where buildApp's handlers write their calls, per aggregation; `at()` tells the current input index. */
export interface Sink {
  closed: Record<string, CloseCall[]>;
  late: Record<string, LateCall[]>;
  at: () => number;
}

export const newSink = (at: () => number): Sink => ({ closed: {}, late: {}, at });

/** Far-future keys, one per partition, whose records only move stream time. */
export function flushKeys(partitions: number): string[] {
  const keys: string[] = [];
  for (let partition = 0; partition < partitions; partition++) {
    for (let i = 0; ; i++) {
      const key = `~flush${i}`;
      if (partitionOf(key, partitions) === partition) {
        keys.push(key);
        break;
      }
    }
  }
  return keys;
}

export const FLUSH_TS = 1e13;

/** Keeps the results of real keys, not those of the flush keys. */
export const notFlush = (item: { key?: string | undefined }) => !String(item.key).startsWith('~flush');

export interface RunOptions {
  spec: Spec;
  readings: Reading[];
  aggregations: string[];
  partitions?: number;
  /** What closes the last windows: a far-future record per partition, the idle timeout, or nothing. */
  flush: 'record' | 'idle' | 'none';
  /** Key of the produced record: the window key (default) or something else (forces a repartition). */
  inputKey?: (reading: Reading) => string;
}

/** A record of an output topic: onClose returns the window's bounds and value. */
export interface OutputRecord {
  key: string | undefined;
  timestamp: number;
  value: { start: number; end: number };
}

export interface RunResult {
  closed: Record<string, CloseCall[]>;
  late: Record<string, LateCall[]>;
  out: Record<string, OutputRecord[]>;
  lateRecords: number;
  /** The records sent, flush records included. */
  input: Reading[];
}

/**
 * The result of a run whose output topics are not read: each aggregation's output is taken from
 * its onClose calls, so that only the calls are compared with the reference.
 */
export function resultOfCalls(sink: Sink, aggregations: string[], input: Reading[]): RunResult {
  const out = Object.fromEntries(aggregations.map((aggregation) => [aggregation, sink.closed[aggregation]!.map((call) => ({ key: call.key, timestamp: call.end - 1, value: call }))]));
  return { closed: sink.closed, late: sink.late, out, lateRecords: 0, input };
}

/** An app with one window of `spec` per aggregation on topic `in`, its onClose and onLate calls written to `sink`. */
export function buildApp(options: { id: string; spec: Spec; aggregations: string[]; idle: boolean; transport?: MemoryTransport; state?: () => StateBackend }, sink: Sink) {
  const app = createApp({ id: options.id, idleTimeout: options.idle ? 5000 : false, logger: silentLogger, ...(options.transport ? { transport: options.transport } : {}), ...(options.state ? { state: options.state() } : {}) });
  const keyed = app.from<Reading>('in', { timestamp: (reading) => reading.ts }).keyBy((reading) => reading.k);
  for (const aggregation of options.aggregations) {
    const closed = (sink.closed[aggregation] ??= []);
    const late = (sink.late[aggregation] ??= []);
    const table = tableOf(keyed, options.spec, aggregation, `t-${aggregation}`);
    table
      .onClose((window) => {
        closed.push({ key: window.key, start: window.start, end: window.end, value: window.value, at: sink.at() });
        return { start: window.start, end: window.end, value: window.value };
      })
      .to(`out-${aggregation}`);
    table
      .onLate((record) => {
        late.push({ key: record.key, start: record.start, end: record.end, id: record.value.id, timestamp: record.timestamp, at: sink.at() });
        return { start: record.start, end: record.end, id: record.value.id };
      })
      .to(`late-${aggregation}`);
  }
  return app;
}

/** Sends the readings one by one to a fresh app on the TestDriver, then closes the rest as `flush` says. */
export async function run(options: RunOptions): Promise<RunResult> {
  const partitions = options.partitions ?? 1;
  const input = [...options.readings];
  if (options.flush === 'record') for (const key of flushKeys(partitions)) input.push({ id: input.length, k: key, ts: FLUSH_TS, v: 0 });
  let at = -1;
  const sink = newSink(() => at);
  const app = buildApp({ id: 'windows', spec: options.spec, aggregations: options.aggregations, idle: options.flush === 'idle' }, sink);
  const driver = await TestDriver.start(app, { startTime: 0, partitions });
  try {
    for (const [index, reading] of input.entries()) {
      at = index;
      await driver.send('in', reading, { key: options.inputKey ? options.inputKey(reading) : reading.k, timestamp: reading.ts });
    }
    at = input.length;
    if (options.flush === 'idle') {
      const times = options.readings.map((reading) => reading.ts);
      await driver.advanceTime(5000 + (Math.max(...times) - Math.min(...times)) + 100_000);
    }
    const out: RunResult['out'] = {};
    for (const aggregation of options.aggregations) out[aggregation] = driver.read<OutputRecord['value']>(`out-${aggregation}`).filter(notFlush);
    for (const aggregation of options.aggregations) {
      sink.closed[aggregation] = sink.closed[aggregation]!.filter(notFlush);
      sink.late[aggregation] = sink.late[aggregation]!.filter(notFlush);
    }
    return { closed: sink.closed, late: sink.late, out, lateRecords: app.metrics().lateRecords, input };
  } finally {
    await driver.stop();
  }
}

/** The reference for a run of `options` over `input` (the records sent, flush records included). */
export function reference(options: RunOptions, input: Reading[]): Reference {
  return simulate(options.spec, input, {
    partitions: options.partitions ?? 1,
    flushAtEnd: options.flush === 'idle',
    ignoreKeys: new Set(flushKeys(options.partitions ?? 1)),
  });
}

/** Groups items by key, in order: the order of results within a key is specified, across keys it is not. */
export function perKey<T extends { key: string }>(items: T[], view: (item: T) => unknown): Record<string, unknown[]> {
  const grouped: Record<string, unknown[]> = {};
  for (const item of items) (grouped[item.key] ??= []).push(view(item));
  return grouped;
}

/**
 * Lists the disagreements between a run and its reference: per aggregation and key, the closed
 * windows (bounds, value, and the input record after which each closed); the
 * output topic against the onClose calls; and every onLate call.
 */
export function diff(options: RunOptions, result: RunResult, expected: Reference): string[] {
  const problems: string[] = [];
  for (const aggregation of options.aggregations) {
    const { expect: expectedValue, normalise = (value: unknown) => value } = AGGREGATIONS[aggregation]!;
    const actual = perKey(result.closed[aggregation]!, (call) => [call.start, call.end, normalise(call.value), call.at]);
    const wanted = perKey(expected.closed, (window) => [window.start, window.end, expectedValue(window.records), window.at]);
    for (const key of new Set([...Object.keys(actual), ...Object.keys(wanted)])) {
      const actualOfKey = actual[key] ?? [];
      const wantedOfKey = wanted[key] ?? [];
      if (JSON.stringify(actualOfKey) !== JSON.stringify(wantedOfKey)) {
        let i = 0;
        while (i < Math.max(actualOfKey.length, wantedOfKey.length) && JSON.stringify(actualOfKey[i]) === JSON.stringify(wantedOfKey[i])) i++;
        problems.push(`${aggregation} closed key ${key} #${i}: engine ${JSON.stringify(actualOfKey.slice(i, i + 3))} reference ${JSON.stringify(wantedOfKey.slice(i, i + 3))} (lengths ${actualOfKey.length}/${wantedOfKey.length})`);
        break;
      }
    }
    // The output topic mirrors the onClose calls: the window key, timestamp end - 1.
    const outputs = result.out[aggregation]!.map((record) => `${record.key}|${record.timestamp}|${record.value.start}|${record.value.end}`).sort();
    const calls = result.closed[aggregation]!.map((call) => `${call.key}|${call.end - 1}|${call.start}|${call.end}`).sort();
    if (JSON.stringify(outputs) !== JSON.stringify(calls)) problems.push(`${aggregation} output topic differs from onClose calls`);
    const lateActual = result.late[aggregation]!.map((late) => `${late.key}|${late.id}|${late.start}|${late.end}|${late.timestamp}|${late.at}`).sort();
    const lateWanted = expected.late.map((late) => `${late.key}|${late.id}|${late.start}|${late.end}|${late.timestamp}|${late.at}`).sort();
    if (JSON.stringify(lateActual) !== JSON.stringify(lateWanted)) {
      const inActual = new Set(lateActual);
      const inWanted = new Set(lateWanted);
      problems.push(`${aggregation} late: engine only ${JSON.stringify(lateActual.filter((late) => !inWanted.has(late)).slice(0, 4))} reference only ${JSON.stringify(lateWanted.filter((late) => !inActual.has(late)).slice(0, 4))} (${lateActual.length}/${lateWanted.length})`);
    }
  }
  return problems;
}
