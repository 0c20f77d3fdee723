/**
 * How store partitions share one LevelDB: every key starts with a binary prefix naming its store
 * and partition, so one partition is one contiguous key range.
 *
 * ```
 * 0x00 ‖ "format"                                          → "1"  (database format marker)
 * 0x01 ‖ u16be(len) ‖ storeName(utf8) ‖ u32be(partition) ‖ 0x00 ‖ key   → value
 * 0x01 ‖ u16be(len) ‖ storeName(utf8) ‖ u32be(partition) ‖ 0x01 ‖ "checkpoint" → f64be(offset)
 * ```
 *
 * Why an explicit prefix rather than sublevels: store names are free text (sublevel names may not
 * contain their separator), a fixed binary prefix costs one allocation per key instead of a
 * sublevel object per partition, and the length prefix makes partition prefixes prefix-free, so
 * no partition's range can contain another's keys ("a" vs "ab", partition 1 vs 256). The
 * checkpoint sorts right after its partition's data, so `[prefix‖0x00, prefix‖0x01)` is the
 * partition's data alone: one range scan reads it and one range delete clears it.
 */
import { Buffer } from 'node:buffer';

/** The format this code writes; a database with another format is rebuilt from the changelog. */
export const FORMAT_VERSION = '1';

const TAG_DATABASE_META = 0x00;
const TAG_STORE = 0x01;
const KIND_DATA = 0x00;
const KIND_META = 0x01;

const encoder = new TextEncoder();
const CHECKPOINT_NAME = encoder.encode('checkpoint');

/** The key of the database format marker. */
export const FORMAT_KEY: Uint8Array = Uint8Array.of(TAG_DATABASE_META, ...encoder.encode('format'));
/** The value of the database format marker this code writes. */
export const FORMAT_VALUE: Uint8Array = encoder.encode(FORMAT_VERSION);

const MAX_NAME_BYTES = 0xffff;

/** The fixed keys and bounds of one store partition. */
export interface PartitionLayout {
  /** `0x01 ‖ u16be(len) ‖ name ‖ u32be(partition)`. */
  readonly prefix: Uint8Array;
  /** Where the partition's data starts: `prefix ‖ 0x00`. */
  readonly dataStart: Uint8Array;
  /** Just past the partition's data: `prefix ‖ 0x01`. */
  readonly dataEnd: Uint8Array;
  /** The checkpoint key: `prefix ‖ 0x01 ‖ "checkpoint"`. */
  readonly checkpointKey: Uint8Array;
}

/**
 * Computes the layout of one store partition.
 *
 * @throws RangeError for a store name longer than 65,535 UTF-8 bytes or a partition outside
 *   `[0, 2^32)`.
 */
export function partitionLayout(storeName: string, partition: number): PartitionLayout {
  const name = encoder.encode(storeName);
  if (name.length > MAX_NAME_BYTES) {
    throw new RangeError(`store name too long: ${name.length} UTF-8 bytes, at most ${MAX_NAME_BYTES}`);
  }
  if (!Number.isInteger(partition) || partition < 0 || partition > 0xffff_ffff) {
    throw new RangeError(`partition must be an integer in [0, 2^32), got ${String(partition)}`);
  }
  const prefix = new Uint8Array(1 + 2 + name.length + 4);
  const view = new DataView(prefix.buffer);
  prefix[0] = TAG_STORE;
  view.setUint16(1, name.length);
  prefix.set(name, 3);
  view.setUint32(3 + name.length, partition);
  return {
    prefix,
    dataStart: concat(prefix, Uint8Array.of(KIND_DATA)),
    dataEnd: concat(prefix, Uint8Array.of(KIND_META)),
    checkpointKey: concat(prefix, Uint8Array.of(KIND_META), CHECKPOINT_NAME),
  };
}

/** The stored key of a user key: `dataStart ‖ key`. */
export function dataKey(layout: PartitionLayout, key: Uint8Array): Uint8Array {
  const prefix = layout.dataStart;
  // From Node's buffer pool: a small Uint8Array of its own would be copied off the heap again when LevelDB reads it.
  const out = Buffer.allocUnsafe(prefix.length + key.length);
  out.set(prefix, 0);
  out.set(key, prefix.length);
  return out;
}

/** Encodes a changelog offset (a safe integer) as 8 bytes. */
export function encodeOffset(offset: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setFloat64(0, offset);
  return out;
}

/** Decodes a stored changelog offset, or undefined if the bytes are not a valid offset. */
export function decodeOffset(bytes: Uint8Array): number | undefined {
  if (bytes.length !== 8) return undefined;
  const offset = new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0);
  return Number.isSafeInteger(offset) && offset >= 0 ? offset : undefined;
}

/**
 * Checks that one stored entry fits the layout; returns why not, or undefined when it does.
 * A full scan with this finds garbage that LevelDB decoded without complaint.
 */
export function layoutViolation(key: Uint8Array, value: Uint8Array): string | undefined {
  if (key.length === 0) return 'an empty key';
  if (key[0] === TAG_DATABASE_META) {
    if (equalBytes(key, FORMAT_KEY)) return undefined;
    return `an unknown database key ${hex(key)}`;
  }
  if (key[0] !== TAG_STORE) return `a key with unknown tag ${hex(key.subarray(0, 1))}`;
  if (key.length < 3) return `a truncated store key ${hex(key)}`;
  const nameLength = (key[1] << 8) | key[2];
  const kindAt = 3 + nameLength + 4;
  if (key.length <= kindAt) return `a truncated store key ${hex(key)}`;
  const kind = key[kindAt];
  if (kind === KIND_DATA) return undefined;
  if (kind === KIND_META && equalBytes(key.subarray(kindAt + 1), CHECKPOINT_NAME)) {
    return decodeOffset(value) === undefined ? `an invalid checkpoint value ${hex(value)}` : undefined;
  }
  return `an unknown store key ${hex(key)}`;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}

function hex(bytes: Uint8Array): string {
  const shown = Array.from(bytes.subarray(0, 32), (byte) => byte.toString(16).padStart(2, '0')).join('');
  return bytes.length > 32 ? `${shown}…` : shown;
}
