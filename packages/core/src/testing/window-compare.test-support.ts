/**
 * Comparing what the engine (or one window strategy) emitted with a reference model's windows:
 * each helper returns the first difference with a little context, or undefined when they agree.
 */
import { isDeepStrictEqual } from 'node:util';
import { collectedIds, idsOf, type Reading, type RefLate, type RefWindow } from './window-reference.test-support.js';

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

/** What an `onLate` handler saw: the late record and the window it missed, as the reference has it, and when. */
export interface LateCall extends RefLate {
  now?: number;
}

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
