/**
 * Byte-key helpers shared by every store implementation and by the operators that lay out
 * windowed state. Stores order keys by unsigned bytes (LevelDB's default comparator), so every
 * encoding here is designed so that byte order is the order operators need.
 */
import { Buffer } from 'node:buffer';
import type { KeyRange } from './backend.js';

/**
 * Compares two byte strings in ascending unsigned byte order, a shorter string first when it is a
 * prefix of the other; the order in which every {@link PartitionStore} iterates.
 *
 * @returns a negative number, zero or a positive number, as `Array.prototype.sort` expects.
 * @example
 * ```ts
 * const keys = [Uint8Array.of(2), Uint8Array.of(1, 9), Uint8Array.of(1)];
 * keys.sort(compareBytes); // [ [1], [1, 9], [2] ]
 * ```
 */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  // Native memcmp wins on long keys; on short ones the call into C++ costs more than this loop.
  if (length > NATIVE_COMPARE_FROM) return Buffer.compare(a, b);
  for (let index = 0; index < length; index++) {
    const difference = a[index] - b[index];
    if (difference !== 0) return difference;
  }
  return a.length - b.length;
}

/** Measured crossover (Node 20): below ~32 shared bytes the JS loop is faster. */
const NATIVE_COMPARE_FROM = 32;

/** Bytes of the key length prefix: a 4-byte big-endian unsigned integer. */
const LENGTH_BYTES = 4;
/** Bytes of the encoded window start. */
const START_BYTES = 8;
const MAX_KEY_LENGTH = 0xffff_ffff;

/**
 * Encodes one window of one record key as a store key, such that all windows of a key are
 * contiguous in byte order and sorted by window start (negative and fractional starts included).
 *
 * Layout: `u32be(keyBytes.length) ‖ keyBytes ‖ orderedFloat64(start)`. The length prefix makes
 * the encoding prefix-free, so another record key can never sort between two windows of this
 * one. The price is that different record keys sort by length first, then bytes — fine for
 * per-key scans, not a lexicographic order of record keys.
 *
 * @param keyBytes the serialized record key.
 * @param start the window start in epoch milliseconds; any finite number. `-0` is stored as `0`
 *   so that both name the same window.
 * @throws RangeError if `start` is not finite.
 * @example
 * ```ts
 * const key = new TextEncoder().encode('sensor-1');
 * await store.write([{ key: encodeWindowKey(key, 10_000), value: partial }]);
 * ```
 */
export function encodeWindowKey(keyBytes: Uint8Array, start: number): Uint8Array {
  if (!Number.isFinite(start)) {
    throw new RangeError(`window start must be a finite number, got ${String(start)}`);
  }
  if (keyBytes.length > MAX_KEY_LENGTH) {
    throw new RangeError(`record key too long for a window key: ${keyBytes.length} bytes`);
  }
  const length = keyBytes.length;
  const out = new Uint8Array(LENGTH_BYTES + length + START_BYTES);
  writeLength(out, length);
  out.set(keyBytes, LENGTH_BYTES);
  // Through scratch space: one key costs one array, not a DataView over it too (a commit encodes many).
  writeOrderedFloat64(scratchView, 0, start);
  out.set(scratchBytes, LENGTH_BYTES + length);
  return out;
}

/**
 * Decodes a key made by {@link encodeWindowKey}.
 *
 * @returns the record key (a view into `bytes`, not a copy) and the window start.
 * @throws RangeError if `bytes` is not a window key.
 * @example
 * ```ts
 * for await (const [bytes, value] of store.entries(keyPrefix(key))) {
 *   const { start } = decodeWindowKey(bytes);
 * }
 * ```
 */
export function decodeWindowKey(bytes: Uint8Array): { keyBytes: Uint8Array; start: number } {
  if (bytes.length < LENGTH_BYTES + START_BYTES) {
    throw new RangeError(`not a window key: ${bytes.length} bytes is shorter than the minimum 12`);
  }
  const keyLength = readLength(bytes);
  if (bytes.length !== LENGTH_BYTES + keyLength + START_BYTES) {
    throw new RangeError(
      `not a window key: length prefix says ${keyLength} key bytes but ${bytes.length} bytes were given`,
    );
  }
  return {
    keyBytes: bytes.subarray(LENGTH_BYTES, LENGTH_BYTES + keyLength),
    start: readOrderedFloat64(bytes, LENGTH_BYTES + keyLength),
  };
}

/**
 * The range `[gte, lt)` that holds every window key of one record key, ascending by start.
 *
 * @example
 * ```ts
 * for await (const [bytes, value] of store.entries(keyPrefix(key))) {
 *   // every window of `key`, oldest start first
 * }
 * ```
 */
export function keyPrefix(keyBytes: Uint8Array): KeyRange & { readonly gte: Uint8Array } {
  if (keyBytes.length > MAX_KEY_LENGTH) {
    throw new RangeError(`record key too long for a window key: ${keyBytes.length} bytes`);
  }
  const gte = new Uint8Array(LENGTH_BYTES + keyBytes.length);
  writeLength(gte, keyBytes.length);
  gte.set(keyBytes, LENGTH_BYTES);
  const lt = prefixSuccessor(gte);
  return lt === undefined ? { gte } : { gte, lt };
}

/**
 * The smallest byte string greater than every string that starts with `prefix`, or undefined if
 * there is none (the prefix is all 0xff bytes, so the range is open above). With it, "every key
 * starting with `prefix`" becomes the range `{ gte: prefix, lt: prefixSuccessor(prefix) }`.
 *
 * @example
 * ```ts
 * prefixSuccessor(Uint8Array.of(1, 0xff)); // Uint8Array [2]
 * prefixSuccessor(Uint8Array.of(0xff));    // undefined
 * ```
 */
export function prefixSuccessor(prefix: Uint8Array): Uint8Array | undefined {
  for (let index = prefix.length - 1; index >= 0; index--) {
    if (prefix[index] !== 0xff) {
      const successor = prefix.slice(0, index + 1);
      successor[index]++;
      return successor;
    }
  }
  return undefined;
}

/*
 * The length prefix, byte by byte: not through a DataView, because `.buffer` of a small array V8
 * keeps on its heap (every key made here or copied by a store) moves its bytes off the heap, which
 * costs far more than the key itself.
 */
function writeLength(out: Uint8Array, length: number): void {
  out[0] = length >>> 24;
  out[1] = (length >>> 16) & 0xff;
  out[2] = (length >>> 8) & 0xff;
  out[3] = length & 0xff;
}

function readLength(bytes: Uint8Array): number {
  return ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
}

/** Scratch space for a window start being encoded or decoded (JavaScript runs one at a time). */
const scratchBytes = new Uint8Array(8);
const scratchView = new DataView(scratchBytes.buffer);
const SIGN_BIT = 0x8000_0000;

/**
 * IEEE 754 bits compare like sign-magnitude integers. Flipping the sign bit of non-negatives and
 * every bit of negatives turns that into plain unsigned order, so byte order equals numeric order.
 */
function writeOrderedFloat64(view: DataView, offset: number, value: number): void {
  view.setFloat64(offset, value === 0 ? 0 : value);
  const high = view.getUint32(offset);
  const low = view.getUint32(offset + 4);
  if (high & SIGN_BIT) {
    view.setUint32(offset, ~high >>> 0);
    view.setUint32(offset + 4, ~low >>> 0);
  } else {
    view.setUint32(offset, (high | SIGN_BIT) >>> 0);
  }
}

/** Inverse of {@link writeOrderedFloat64}, through scratch space (the caller's bytes may be a view the store still owns). */
function readOrderedFloat64(bytes: Uint8Array, offset: number): number {
  const negative = (bytes[offset] & 0x80) === 0;
  for (let index = 0; index < START_BYTES; index++) {
    const byte = bytes[offset + index];
    scratchBytes[index] = negative ? ~byte & 0xff : byte;
  }
  if (!negative) scratchBytes[0] &= 0x7f;
  return scratchView.getFloat64(0);
}
