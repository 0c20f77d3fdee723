/**
 * The stateless operators on their own, without a task or an app: marble tests on RxJS's virtual
 * scheduler. Each gets a context that only records what is routed to the error policy, the one
 * thing these operators ask of their task.
 */
import { TestScheduler } from 'rxjs/testing';
import { from, type OperatorFunction } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../errors.js';
import type { TaskContext } from '../context.js';
import { record, type Origin, type Signal } from '../signals.js';
import { filterRecords, flatMapRecords, keyRecords, mapRecords, peekRecords } from './stateless.js';

type Callback = (value: unknown, key: unknown) => unknown;

interface Failure {
  error: unknown;
  signal: Signal | undefined;
  step: string;
  code: ErrorCode | undefined;
}

/** A context that keeps the failures routed to it (a task would dead-letter them or stop). */
function failureRecorder(): { context: TaskContext; failures: Failure[] } {
  const failures: Failure[] = [];
  const context: Pick<TaskContext, 'fail'> = { fail: (error, signal, step, code) => void failures.push({ error, signal, step, code }) };
  return { context: context as TaskContext, failures };
}

const scheduler = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

const origin = (offset: number): Origin => ({ topic: 'in', partition: 0, offset });
const a = record('k1', 1, 100, origin(0));
const b = record('k2', 2, 200, origin(1));
const c = record('k1', 3, 300, origin(2));
const tick: Signal = { type: 'tick', streamTime: 250 };
const window: Signal = { type: 'window', event: 'close', key: 'k1', start: 0, end: 1000, value: 7, timestamp: 999, origin: origin(3) };

/** The signals `operator` emits for `input`, synchronously, outside any scheduler. */
function collect(operator: OperatorFunction<Signal, Signal>, input: readonly Signal[]): Signal[] {
  const output: Signal[] = [];
  from(input).pipe(operator).subscribe((signal) => output.push(signal));
  return output;
}

/** Runs `operator` on the marble `input` (values from `values`) and checks the output marble and the source's subscription. */
function expectMarbles(operator: OperatorFunction<Signal, Signal>, input: { marble: string; values: Record<string, Signal>; error?: unknown }, output: { marble: string; values?: Record<string, Signal>; error?: unknown }, subscription = '^' + '-'.repeat(input.marble.length - 2) + '!'): void {
  scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const source = cold(input.marble, input.values, input.error);
    expectObservable(source.pipe(operator)).toBe(output.marble, output.values, output.error);
    expectSubscriptions(source.subscriptions).toBe(subscription);
  });
}

const operators: ReadonlyArray<[string, (context: TaskContext, step: string, fn: Callback) => OperatorFunction<Signal, Signal>, Callback]> = [
  ['map', mapRecords, (value) => value],
  ['filter', filterRecords, () => true],
  ['flatMap', flatMapRecords, (value) => [value]],
  ['peek', peekRecords, () => undefined],
  ['keyBy', keyRecords, (_value, key) => key],
];

describe.each(operators)('%s, like every stateless operator', (step, operator, identity) => {
  it('completes at once on an empty source', () => {
    const { context } = failureRecorder();
    expectMarbles(operator(context, step, identity), { marble: '|', values: {} }, { marble: '|' }, '(^!)');
  });

  it('passes ticks and window events on unchanged, without calling its function', () => {
    const { context, failures } = failureRecorder();
    const calls: unknown[] = [];
    const spy: Callback = (value, key) => {
      calls.push([value, key]);
      return identity(value, key);
    };
    expectMarbles(operator(context, step, spy), { marble: '-t-w-|', values: { t: tick, w: window } }, { marble: '-t-w-|', values: { t: tick, w: window } });
    expect(calls).toEqual([]);
    expect(failures).toEqual([]);
  });

  it('passes an error of its source on, and routes nothing to the error policy', () => {
    const { context, failures } = failureRecorder();
    const broken = new Error('the source broke');
    expectMarbles(operator(context, step, identity), { marble: '-a-#', values: { a }, error: broken }, { marble: '-a-#', values: { a }, error: broken });
    expect(failures).toEqual([]);
  });

  it('unsubscribes from its source when its subscriber does', () => {
    const { context } = failureRecorder();
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-a-b-c-|', { a, b, c });
      expectObservable(source.pipe(operator(context, step, identity)), '^--!').toBe('-a-', { a });
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('routes a throw of its function to the error policy with the record and its step, and goes on with the next record', () => {
    const { context, failures } = failureRecorder();
    const boom = new Error('boom');
    const throwsOnB: Callback = (value, key) => {
      if (value === 2) throw boom;
      return identity(value, key);
    };
    expectMarbles(operator(context, step, throwsOnB), { marble: '-a-b-c-|', values: { a, b, c } }, { marble: '-a---c-|', values: { a, c } });
    expect(failures).toEqual([{ error: boom, signal: b, step, code: step === 'keyBy' ? 'KEY_FUNCTION_FAILED' : 'HANDLER_FAILED' }]);
  });
});

describe('map', () => {
  it('gives each record a new value from (value, key), keeping its key, timestamp and origin', () => {
    const { context, failures } = failureRecorder();
    const map = mapRecords(context, 'map', (value, key) => `${String(key)}=${String(value)}`);
    expectMarbles(map, { marble: '-a-b-|', values: { a, b } }, { marble: '-x-y-|', values: { x: record('k1', 'k1=1', 100, a.origin), y: record('k2', 'k2=2', 200, b.origin) } });
    expect(failures).toEqual([]);
  });

  it('passes undefined and null on as values', () => {
    const { context } = failureRecorder();
    const map = mapRecords(context, 'map', (value) => (value === 1 ? undefined : null));
    expectMarbles(map, { marble: '-a-b-|', values: { a, b } }, { marble: '-x-y-|', values: { x: record('k1', undefined, 100, a.origin), y: record('k2', null, 200, b.origin) } });
  });
});

describe('filter', () => {
  it('keeps the records its function finds truthy, as they were', () => {
    const { context, failures } = failureRecorder();
    const filter = filterRecords(context, 'filter', (value, key) => (key === 'k1' ? value : 0));
    expectMarbles(filter, { marble: '-a-b-c-|', values: { a, b, c } }, { marble: '-a---c-|', values: { a, c } });
    // The same signal objects: a filter copies nothing.
    const kept = collect(filter, [a, b, c]);
    expect(kept).toHaveLength(2);
    expect(kept[0]).toBe(a);
    expect(kept[1]).toBe(c);
    expect(failures).toEqual([]);
  });

  it('drops every record when nothing passes', () => {
    const { context } = failureRecorder();
    expectMarbles(filterRecords(context, 'filter', () => ''), { marble: '-a-b-|', values: { a, b } }, { marble: '-----|' });
  });
});

describe('flatMap', () => {
  it('emits each value of the iterable in order, with the key, timestamp and origin of its record', () => {
    const { context, failures } = failureRecorder();
    const flatMap = flatMapRecords(context, 'flatMap', (value) => new Set([value, (value as number) * 10]));
    expectMarbles(
      flatMap,
      { marble: '-a----b----|', values: { a, b } },
      {
        marble: '-(wx)-(yz)-|',
        values: { w: record('k1', 1, 100, a.origin), x: record('k1', 10, 100, a.origin), y: record('k2', 2, 200, b.origin), z: record('k2', 20, 200, b.origin) },
      },
    );
    expect(failures).toEqual([]);
  });

  it('emits nothing for an empty iterable, undefined or null', () => {
    const { context, failures } = failureRecorder();
    const answers = new Map<unknown, unknown>([
      [1, []],
      [2, undefined],
      [3, null],
    ]);
    expectMarbles(flatMapRecords(context, 'flatMap', (value) => answers.get(value)), { marble: '-a-b-c-|', values: { a, b, c } }, { marble: '-------|' });
    expect(failures).toEqual([]);
  });

  it('routes a value that is not iterable to the error policy, naming it', () => {
    const { context, failures } = failureRecorder();
    const flatMap = flatMapRecords(context, 'flatMap', (value) => (value === 2 ? 42 : [value]));
    expectMarbles(flatMap, { marble: '-a-b-c-|', values: { a, b, c } }, { marble: '-a---c-|', values: { a, c } });
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ signal: b, step: 'flatMap', code: 'HANDLER_FAILED' });
    expect(String(failures[0]!.error)).toMatch(/flatMap: the function must return an iterable, got 42/);
  });

  it('emits nothing for a record whose iterable throws midway', () => {
    const { context, failures } = failureRecorder();
    const boom = new Error('midway');
    const flatMap = flatMapRecords(context, 'flatMap', function* (value) {
      yield value;
      if (value === 2) throw boom;
      yield (value as number) * 10;
    });
    expectMarbles(
      flatMap,
      { marble: '-a----b----c----|', values: { a, b, c } },
      { marble: '-(wx)------(yz)-|', values: { w: record('k1', 1, 100, a.origin), x: record('k1', 10, 100, a.origin), y: record('k1', 3, 300, c.origin), z: record('k1', 30, 300, c.origin) } },
    );
    expect(failures).toEqual([{ error: boom, signal: b, step: 'flatMap', code: 'HANDLER_FAILED' }]);
  });
});

describe('peek', () => {
  it('calls its function with (value, key) for each record and passes the records on as they were', () => {
    const { context, failures } = failureRecorder();
    const seen: unknown[] = [];
    const peek = peekRecords(context, 'peek', (value, key) => seen.push([value, key]));
    expectMarbles(peek, { marble: '-a-b-|', values: { a, b } }, { marble: '-a-b-|', values: { a, b } });
    expect(seen).toEqual([
      [1, 'k1'],
      [2, 'k2'],
    ]);
    const passed = collect(peek, [a, b]);
    expect(passed).toHaveLength(2);
    expect(passed[0]).toBe(a);
    expect(passed[1]).toBe(b);
    expect(failures).toEqual([]);
  });

  it('passes on no record whose function threw', () => {
    const { context, failures } = failureRecorder();
    const boom = new Error('boom');
    const peek = peekRecords(context, 'peek', (value) => {
      if (value === 1) throw boom;
    });
    expectMarbles(peek, { marble: '-a-b-|', values: { a, b } }, { marble: '---b-|', values: { b } });
    expect(failures).toEqual([{ error: boom, signal: a, step: 'peek', code: 'HANDLER_FAILED' }]);
  });
});

describe('keyBy', () => {
  it('gives each record a new key from (value, key), keeping its value, timestamp and origin', () => {
    const { context, failures } = failureRecorder();
    const keyBy = keyRecords(context, 'keyBy', (value, key) => `${String(key)}/${String(value)}`);
    expectMarbles(keyBy, { marble: '-a-b-|', values: { a, b } }, { marble: '-x-y-|', values: { x: record('k1/1', 1, 100, a.origin), y: record('k2/2', 2, 200, b.origin) } });
    expect(failures).toEqual([]);
  });

  it('takes 0 and the empty string as keys', () => {
    const { context, failures } = failureRecorder();
    const keyBy = keyRecords(context, 'keyBy', (value) => (value === 1 ? 0 : ''));
    expectMarbles(keyBy, { marble: '-a-b-|', values: { a, b } }, { marble: '-x-y-|', values: { x: record(0, 1, 100, a.origin), y: record('', 2, 200, b.origin) } });
    expect(failures).toEqual([]);
  });

  it.each([undefined, null, Number.NaN, Number.POSITIVE_INFINITY])('routes a key of %s to the error policy as KEY_FUNCTION_FAILED, naming it', (bad) => {
    const { context, failures } = failureRecorder();
    const keyBy = keyRecords(context, 'keyBy', (value, key) => (value === 2 ? bad : key));
    expectMarbles(keyBy, { marble: '-a-b-c-|', values: { a, b, c } }, { marble: '-a---c-|', values: { a, c } });
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ signal: b, step: 'keyBy', code: 'KEY_FUNCTION_FAILED' });
    expect(String(failures[0]!.error)).toContain(`keyBy: the key function returned ${String(bad)}`);
  });
});
