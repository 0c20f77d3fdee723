import { Observable, type OperatorFunction, type Subscriber } from 'rxjs';
import type { ErrorCode } from '../errors.js';
import type { TaskContext } from './context.js';
import type { Signal } from './signals.js';

/**
 * The one helper every runtime operator is built on. `handle` is called for each signal with an
 * `emit` function; a throw from it (a user callback, a bad value) is routed to the task's error
 * policy for that signal, and processing continues with the next one. Teardown unsubscribes
 * from the source.
 */
export function signalOperator(
  context: TaskContext,
  step: string,
  handle: (signal: Signal, emit: (signal: Signal) => void) => void,
  code: ErrorCode = 'HANDLER_FAILED',
): OperatorFunction<Signal, Signal> {
  return (source) =>
    new Observable<Signal>((subscriber) => {
      const emit = (signal: Signal) => subscriber.next(signal);
      return source.subscribe({
        next(signal) {
          try {
            handle(signal, emit);
          } catch (error) {
            context.fail(error, signal, step, code);
          }
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
    });
}

/** Like {@link signalOperator}, for steps that only look at records and pass everything else on. */
export function recordOperator(
  context: TaskContext,
  step: string,
  handle: (key: unknown, value: unknown, timestamp: number, signal: Signal & { type: 'record' }, emit: (signal: Signal) => void) => void,
  code: ErrorCode = 'HANDLER_FAILED',
): OperatorFunction<Signal, Signal> {
  return signalOperator(
    context,
    step,
    (signal, emit) => {
      if (signal.type === 'record') handle(signal.key, signal.value, signal.timestamp, signal, emit);
      else emit(signal);
    },
    code,
  );
}

/**
 * Where a task's signals enter its operator graph (a source, or the join of a merge): an
 * observable that passes each signal to its subscribers. RxJS's `Subject.next` allocates per call
 * (a closure for its error context, an iterator over a copy of its observers); this runs once per
 * record and per tick, so it loops over a plain array instead. It never errors or completes: a
 * task's graph lives as long as the task.
 */
export class SignalInput extends Observable<Signal> {
  /** Replaced, never changed in place: a (un)subscribe during `next` leaves that loop as it was, like a Subject's copy. */
  readonly #current: { subscribers: ReadonlyArray<Subscriber<Signal>> };

  constructor() {
    const current: { subscribers: ReadonlyArray<Subscriber<Signal>> } = { subscribers: [] };
    super((subscriber) => {
      current.subscribers = [...current.subscribers, subscriber];
      return () => {
        current.subscribers = current.subscribers.filter((other) => other !== subscriber);
      };
    });
    this.#current = current;
  }

  next(signal: Signal): void {
    const subscribers = this.#current.subscribers;
    for (let index = 0; index < subscribers.length; index++) subscribers[index]!.next(signal);
  }
}
