import { describe, expectTypeOf, it } from 'vitest';
import { createApp, type KeyedStream, type StoredWindow, type Stream, type Table, type WindowedStream, type WindowedTable, type WindowResult } from '../index.js';

interface Reading {
  sensor: string;
  value: number;
  ts: number;
}

const app = createApp({ id: 'types' });
const readings = app.from<Reading>('readings', { timestamp: (r) => r.ts });

describe('typed store reads', () => {
  it('types get and range by the stage read', () => {
    const keyed = readings.keyBy((r) => r.sensor);
    const windows = keyed.hopping('10s', '1s').collect();
    const totals = keyed.sum((r) => r.value);
    expectTypeOf(app.store(windows).get).parameter(0).toEqualTypeOf<string>();
    expectTypeOf(app.store(windows).get('s1')).resolves.toEqualTypeOf<Array<StoredWindow<Reading[]>>>();
    expectTypeOf(app.store(totals).get('s1')).resolves.toEqualTypeOf<number | undefined>();
    expectTypeOf(app.store(totals).range()).resolves.toEqualTypeOf<Array<{ key: string; value: number }>>();
    expectTypeOf(app.store('by-name').get('s1')).resolves.toEqualTypeOf<unknown>();
  });
});

describe('stage types', () => {
  it('flows key and value types through the chain', () => {
    expectTypeOf(readings).toEqualTypeOf<Stream<string | undefined, Reading>>();
    expectTypeOf(readings.map((r) => r.value)).toEqualTypeOf<Stream<string | undefined, number>>();
    const keyed = readings.keyBy((r) => r.sensor);
    expectTypeOf(keyed).toEqualTypeOf<KeyedStream<string, Reading>>();
    expectTypeOf(readings.keyBy((r) => r.value)).toEqualTypeOf<KeyedStream<number, Reading>>();
    expectTypeOf(keyed.hopping('10s', '1s')).toEqualTypeOf<WindowedStream<string, Reading>>();
    expectTypeOf(keyed.hopping('10s', '1s').collect()).toEqualTypeOf<WindowedTable<string, Reading[], Reading>>();
    expectTypeOf(keyed.tumbling(1000).count()).toEqualTypeOf<WindowedTable<string, number, Reading>>();
    expectTypeOf(keyed.tumbling(1000).mean((r) => r.value)).toEqualTypeOf<WindowedTable<string, number | null, Reading>>();
    expectTypeOf(keyed.count()).toEqualTypeOf<Table<string, number>>();
  });

  it('narrows with a type-guard filter', () => {
    type Maybe = { kind: 'a'; a: number } | { kind: 'b'; b: string };
    const mixed = app.from<Maybe>('mixed');
    const onlyA = mixed.filter((m): m is Extract<Maybe, { kind: 'a' }> => m.kind === 'a');
    expectTypeOf(onlyA).toEqualTypeOf<Stream<string | undefined, { kind: 'a'; a: number }>>();
  });

  it('types handlers and their results', () => {
    const table = readings.keyBy((r) => r.sensor).sliding('5s').collect();
    const predictions = table.onClose((window) => {
      expectTypeOf(window).toEqualTypeOf<WindowResult<string, Reading[]>>();
      return { sensor: window.key, n: window.value.length };
    });
    expectTypeOf(predictions).toEqualTypeOf<Stream<string, { sensor: string; n: number }>>();
    const asyncResults = table.onClose(async (window) => [window.start, window.end]);
    expectTypeOf(asyncResults).toEqualTypeOf<Stream<string, number>>();
    expectTypeOf(table.toStream()).toEqualTypeOf<Stream<string, WindowResult<string, Reading[]>>>();
    expectTypeOf(table.onUpdate()).toEqualTypeOf<Stream<string, WindowResult<string, Reading[]>>>();
    table.onLate((late) => {
      expectTypeOf(late.value).toEqualTypeOf<Reading>();
      expectTypeOf(late.timestamp).toEqualTypeOf<number>();
    });
  });

  it('rejects invalid chains at compile time', () => {
    // @ts-expect-error a Stream has no windows: keyBy first
    readings.tumbling('10s');
    // @ts-expect-error a WindowedStream needs an aggregation before onClose
    readings.keyBy((r) => r.sensor).tumbling('10s').onClose(() => 1);
    // @ts-expect-error durations are numbers or strings with a unit
    readings.keyBy((r) => r.sensor).tumbling('10 seconds');
    // @ts-expect-error to() is terminal
    readings.to('out').map((r: Reading) => r);
    // @ts-expect-error collect() values are Reading[], not numbers
    readings.keyBy((r) => r.sensor).tumbling('1s').collect().onClose((w) => w.value.toFixed(1));
    // @ts-expect-error sum's extractor must return a number
    readings.keyBy((r) => r.sensor).tumbling('1s').sum((r) => r.sensor);
    // @ts-expect-error merge needs the same value type
    readings.merge(app.from<number>('numbers'));
  });
});
