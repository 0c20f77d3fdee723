/**
 * Hand-written loops that do the essential work of `keyBy → window → count/collect → onClose → to`
 * on the same pre-serialized input, with Eddy's window semantics (epoch-aligned windows, stream
 * time = largest timestamp seen, a window closes when stream time ≥ end + grace, a record late
 * for a closed window still counts in the open ones), so their output can be checked against the
 * engine's, window for window.
 *
 * Per record: decode the key (UTF-8) and the value (UTF-8 + JSON.parse), re-encode the value
 * (JSON.stringify + UTF-8 via Buffer.from, the cost of forwarding it, e.g. to a repartition
 * topic), then
 * - `runSliced`: one update of one slice (gcd(size, slide) long) in a Map per key; when stream
 *   time passes the next window end, every key closes its due windows by combining their
 *   size/slice slices (10 for 10s/1s) and drops the slices no open window needs;
 * - `runNaive`: the record goes into every window that overlaps it (10 for 10s/1s); a closing
 *   window is read as is.
 * Each closed, non-empty window becomes a JSON-encoded `{ sensor, start, count }` with the UTF-8
 * sensor as key.
 *
 * Both run over `createHandWindows`, the same loop taking one record at a time, so that the Kafka
 * benchmark (kafka-input.ts) can keep one per partition of a topic already partitioned by key
 * (no re-encoding: `reencode: false`) and tell which windows the engine must close there.
 */
import { Buffer } from 'node:buffer';
import type { OutgoingRecord } from '@eddy/core';
import { addSummary, emptyOutput, floorTo, gcd, openFrom, type AggregationKind, type RunOutput, type WindowShape, type WindowSummary } from './windowing.js';
import type { Reading } from './workload.js';

/** One collected record: timestamp, arrival sequence, value (what Eddy's `collect()` keeps). */
type Item = [timestamp: number, sequence: number, value: Reading];

/** A partial aggregate of the hand loops. */
interface HandAggregation<P> {
  init(): P;
  add(partial: P, value: Reading, timestamp: number, sequence: number): P;
  /** Folds `partial` into `into`, which is the window's private accumulator. */
  merge(into: P, partial: P): P;
  /** The window's final value, reduced to what the summary reports. */
  finish(partial: P): number;
}

const countAggregation: HandAggregation<number> = {
  init: () => 0,
  add: (partial) => partial + 1,
  merge: (into, partial) => into + partial,
  finish: (partial) => partial,
};

const byTimeThenArrival = (a: Item, b: Item) => a[0] - b[0] || a[1] - b[1];

const collectAggregation: HandAggregation<Item[]> = {
  init: () => [],
  add: (partial, value, timestamp, sequence) => {
    partial.push([timestamp, sequence, value]);
    return partial;
  },
  merge: (into, partial) => {
    for (let index = 0; index < partial.length; index++) into.push(partial[index]!);
    return into;
  },
  // The list the window's handler would get: values in timestamp order, ties in arrival order.
  finish: (partial) => partial.sort(byTimeThenArrival).map((item) => item[2]).length,
};

function aggregationFor(kind: AggregationKind): HandAggregation<unknown> {
  return (kind === 'count' ? countAggregation : collectAggregation) as HandAggregation<unknown>;
}

/** Per key: partials by start (slice or window start), and where the next window to close starts. */
interface KeyState<P> {
  readonly key: string;
  readonly parts: Map<number, P>;
  /** Windows starting before this are closed for this key. */
  nextStart: number;
  /** A lower bound of the smallest start in `parts`. */
  minPart: number;
}

/** What a hand loop has done so far: its windows, and the bytes it re-encoded and produced. */
export type HandSummary = RunOutput & { forwardedBytes: number; outputBytes: number };

export interface HandWindowOptions {
  /** `sliced` (one slice update per record, the default) or `naive` (every overlapping window). */
  readonly strategy?: 'sliced' | 'naive';
  /**
   * Re-encode every value (JSON.stringify + Buffer.from), the cost of forwarding it to a
   * repartition topic (default true). A job on a topic already partitioned by key has no such hop.
   */
  readonly reencode?: boolean;
}

/** The windows of one stream (one partition): records go in one at a time, closed windows come out. */
export interface HandWindows {
  /** One record: decode, maybe re-encode, assign, advance stream time, close the windows now due. */
  push(key: Uint8Array, value: Uint8Array, timestamp: number): void;
  summary(): HandSummary;
}

/** The incremental loop shared by both strategies: decode, re-encode, assign, advance stream time, close. */
function createLoop<P>(shape: WindowShape, partsPerRecord: 'slice' | 'windows', aggregation: HandAggregation<P>, reencode: boolean): HandWindows {
  const { sizeMs, slideMs, graceMs } = shape;
  const sliceMs = gcd(sizeMs, slideMs);
  // The fastest plain primitives for short strings: TextDecoder to decode, Buffer.from to encode.
  const decoder = new TextDecoder();
  const encode = (text: string) => Buffer.from(text, 'utf8');
  const keys = new Map<string, KeyState<P>>();
  const output = emptyOutput();
  let forwardedBytes = 0;
  let outputBytes = 0;
  let streamTime = -Infinity;
  let nextCloseAt = -Infinity;
  let sequence = 0;

  const emit = (state: KeyState<P>, start: number, partial: P) => {
    const summary: WindowSummary = { sensor: state.key, start, count: aggregation.finish(partial) };
    const key = encode(state.key);
    const value = encode(JSON.stringify(summary));
    outputBytes += key.length + value.length;
    addSummary(output, summary);
  };

  const closeDue = (time: number) => {
    for (const state of keys.values()) {
      const parts = state.parts;
      if (parts.size === 0) continue;
      // The first window holding a part: the one containing the first slice, or the first window itself.
      const firstHolding = partsPerRecord === 'slice' ? floorTo(state.minPart - sizeMs, slideMs) + slideMs : state.minPart;
      let start = Math.max(state.nextStart, firstHolding);
      for (; start + sizeMs + graceMs <= time && parts.size > 0; start += slideMs) {
        if (partsPerRecord === 'slice') {
          // Combine the window's slices into a private accumulator; the slices stay for later windows.
          let window: P | undefined;
          for (let slice = start; slice < start + sizeMs; slice += sliceMs) {
            const partial = parts.get(slice);
            if (partial !== undefined) window = aggregation.merge(window ?? aggregation.init(), partial);
          }
          if (window !== undefined) emit(state, start, window);
          // Slices before the next window's start belong to no open window.
          for (let slice = start; slice < start + slideMs; slice += sliceMs) parts.delete(slice);
        } else {
          const window = parts.get(start);
          if (window !== undefined) {
            emit(state, start, window);
            parts.delete(start);
          }
        }
        state.nextStart = start + slideMs;
        if (state.minPart < state.nextStart) state.minPart = state.nextStart;
      }
    }
    nextCloseAt = openFrom(shape, time) + sizeMs + graceMs;
  };

  const push = (keyBytes: Uint8Array, valueBytes: Uint8Array, timestamp: number) => {
    // Decode as a source would: key as UTF-8, value as JSON; forward the value re-encoded.
    decoder.decode(keyBytes);
    const reading = JSON.parse(decoder.decode(valueBytes)) as Reading;
    if (reencode) forwardedBytes += encode(JSON.stringify(reading)).length;
    const key = reading.sensor;
    const seq = sequence++;

    let state = keys.get(key);
    if (state === undefined) {
      state = { key, parts: new Map(), nextStart: -Infinity, minPart: Infinity };
      keys.set(key, state);
    }
    const open = openFrom(shape, streamTime);
    if (state.nextStart < open) state.nextStart = open;
    const firstWindow = floorTo(timestamp - sizeMs, slideMs) + slideMs;
    const lastWindow = floorTo(timestamp, slideMs);
    if (state.nextStart > firstWindow) output.lateRecords++;
    if (lastWindow >= state.nextStart) {
      if (partsPerRecord === 'slice') {
        const slice = floorTo(timestamp, sliceMs);
        const parts = state.parts;
        if (parts.size === 0 || slice < state.minPart) state.minPart = slice;
        const partial = parts.get(slice);
        if (partial === undefined) parts.set(slice, aggregation.add(aggregation.init(), reading, timestamp, seq));
        else parts.set(slice, aggregation.add(partial, reading, timestamp, seq));
      } else {
        const parts = state.parts;
        const from = Math.max(firstWindow, state.nextStart);
        if (parts.size === 0 || from < state.minPart) state.minPart = from;
        for (let start = from; start <= lastWindow; start += slideMs) {
          const partial = parts.get(start);
          if (partial === undefined) parts.set(start, aggregation.add(aggregation.init(), reading, timestamp, seq));
          else parts.set(start, aggregation.add(partial, reading, timestamp, seq));
        }
      }
    }
    if (timestamp > streamTime) {
      streamTime = timestamp;
      if (streamTime >= nextCloseAt) closeDue(streamTime);
    }
  };

  return { push, summary: () => ({ ...output, forwardedBytes, outputBytes }) };
}

/**
 * The hand windows of one stream, e.g. one partition of a topic partitioned by key: stream time
 * is the largest timestamp pushed so far, as in Eddy's task for that partition.
 */
export function createHandWindows(shape: WindowShape, kind: AggregationKind, options: HandWindowOptions = {}): HandWindows {
  const partsPerRecord = options.strategy === 'naive' ? 'windows' : 'slice';
  return createLoop(shape, partsPerRecord, aggregationFor(kind), options.reencode ?? true);
}

/** Runs a whole in-memory input through fresh hand windows (forwarding cost included). */
function runLoop(input: readonly OutgoingRecord[], windows: HandWindows): HandSummary {
  for (let index = 0; index < input.length; index++) {
    const record = input[index]!;
    windows.push(record.key!, record.value!, record.timestamp);
  }
  return windows.summary();
}

/** The sliced hand loop: one slice update per record, windows combined from slices at close. */
export function runSliced(input: readonly OutgoingRecord[], shape: WindowShape, kind: AggregationKind): HandSummary {
  return runLoop(input, createHandWindows(shape, kind, { strategy: 'sliced' }));
}

/** The naive hand loop: every record goes into each of the size/slide windows that overlap it. */
export function runNaive(input: readonly OutgoingRecord[], shape: WindowShape, kind: AggregationKind): HandSummary {
  return runLoop(input, createHandWindows(shape, kind, { strategy: 'naive' }));
}
