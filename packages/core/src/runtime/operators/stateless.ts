import type { OperatorFunction } from 'rxjs';
import type { TaskContext } from '../context.js';
import { recordOperator } from '../operator.js';
import { record, type Signal } from '../signals.js';

type Callback = (value: unknown, key: unknown) => unknown;

/** `map`: a new value, same key and timestamp. */
export function mapRecords(context: TaskContext, step: string, fn: Callback): OperatorFunction<Signal, Signal> {
  return recordOperator(context, step, (key, value, timestamp, signal, emit) => emit(record(key, fn(value, key), timestamp, signal.origin)));
}

/** `filter`: keeps records for which `fn` is truthy. */
export function filterRecords(context: TaskContext, step: string, fn: Callback): OperatorFunction<Signal, Signal> {
  return recordOperator(context, step, (key, value, _timestamp, signal, emit) => {
    if (fn(value, key)) emit(signal);
  });
}

/** `flatMap`: zero or more values per record. */
export function flatMapRecords(context: TaskContext, step: string, fn: Callback): OperatorFunction<Signal, Signal> {
  return recordOperator(context, step, (key, value, timestamp, signal, emit) => {
    const values = fn(value, key);
    if (values === undefined || values === null) return;
    if (typeof (values as Iterable<unknown>)[Symbol.iterator] !== 'function') {
      throw new TypeError(`flatMap: the function must return an iterable, got ${JSON.stringify(values)}`);
    }
    // Collect first, so a throw midway emits nothing for this record.
    const out = [...(values as Iterable<unknown>)];
    for (const item of out) emit(record(key, item, timestamp, signal.origin));
  });
}

/** `peek`: a side effect, records unchanged. */
export function peekRecords(context: TaskContext, step: string, fn: Callback): OperatorFunction<Signal, Signal> {
  return recordOperator(context, step, (key, value, _timestamp, signal, emit) => {
    fn(value, key);
    emit(signal);
  });
}

/** `keyBy`: a new key from the value. */
export function keyRecords(context: TaskContext, step: string, fn: Callback): OperatorFunction<Signal, Signal> {
  return recordOperator(context, step, (key, value, timestamp, signal, emit) => {
    const newKey = fn(value, key);
    if (newKey === undefined || newKey === null || (typeof newKey === 'number' && !Number.isFinite(newKey))) {
      throw new TypeError(`keyBy: the key function returned ${String(newKey)}`);
    }
    emit(record(newKey, value, timestamp, signal.origin));
  }, 'KEY_FUNCTION_FAILED');
}
