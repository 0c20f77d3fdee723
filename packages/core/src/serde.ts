import { ConfigError } from './errors.js';

/** Turns values into bytes and back. `deserialize` may validate: throwing marks the record bad. */
export interface Serde<T> {
  serialize(value: T): Uint8Array;
  deserialize(bytes: Uint8Array): T;
}

import { Buffer, isUtf8 } from 'node:buffer';

const lenient = new TextDecoder('utf-8');
const strict = new TextDecoder('utf-8', { fatal: true });

/**
 * UTF-8 to text, rejecting invalid bytes. The lenient decoder is several times faster; only text
 * that came out with a replacement character is decoded again strictly to tell a real U+FFFD
 * from bad input.
 */
export function decodeUtf8(bytes: Uint8Array): string {
  const text = lenient.decode(bytes);
  return text.includes('\uFFFD') ? strict.decode(bytes) : text;
}

/**
 * Node's Latin-1 decoder (what `Buffer#toString('latin1')` calls), which takes any Uint8Array.
 * Wrapping bytes in a Buffer would read their `.buffer`, and for a small array V8 keeps on its
 * heap (a store key it copied, a window key) that moves the bytes off the heap: about 0.7 µs a
 * key against 0.05 µs.
 */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, start: number, end: number): string }).latin1Slice;

/** Bytes as a string of one char per byte, which compares as the bytes do: a map key for byte keys. */
export function latin1Text(bytes: Uint8Array): string {
  return latin1Slice.call(bytes, 0, bytes.length);
}

/** Text to UTF-8; Buffer's encoder beats TextEncoder on short strings. */
export const encodeUtf8 = (text: string): Uint8Array => Buffer.from(text, 'utf8');

/** JSON text in UTF-8 (the default value serde). */
export function json<T = unknown>(): Serde<T> {
  return jsonSerde as Serde<T>;
}
const jsonSerde: Serde<unknown> = {
  serialize: (value) => {
    const text = JSON.stringify(value);
    // JSON.stringify(undefined) is undefined; encode it as null so the record stays decodable.
    return encodeUtf8(text === undefined ? 'null' : text);
  },
  deserialize: (bytes) => JSON.parse(decodeUtf8(bytes)) as unknown,
};

/** UTF-8 text. */
export function string(): Serde<string> {
  return stringSerde;
}
const stringSerde: Serde<string> = {
  serialize: (value) => encodeUtf8(value),
  deserialize: (bytes) => decodeUtf8(bytes),
};

/** Raw bytes, passed through. */
export function bytes(): Serde<Uint8Array> {
  return bytesSerde;
}
const bytesSerde: Serde<Uint8Array> = {
  serialize: (value) => value,
  deserialize: (bytes) => bytes,
};

/**
 * The default key serde: strings as raw UTF-8 (what Kafka's StringSerializer writes, so
 * partitioning agrees with Java clients), anything else as JSON; keys read back as strings.
 */
export const defaultKeySerde: Serde<unknown> = {
  serialize: (value) => (typeof value === 'string' ? encodeUtf8(value) : jsonSerde.serialize(value)),
  deserialize: (bytes) => decodeUtf8(bytes),
};

/**
 * Keys of internal topics: strings as raw UTF-8, exactly like {@link defaultKeySerde} (so a
 * stream keyed by its topic's key keeps its partitions through a repartition), and any other key
 * as JSON behind a zero byte, so that it reads back with its type (a number stays a number).
 */
export const internalKeySerde: Serde<unknown> = {
  serialize: (value) => {
    if (typeof value === 'string' && !value.startsWith('\u0000')) return encodeUtf8(value);
    const json = encodeUtf8(JSON.stringify(value));
    const bytes = new Uint8Array(json.length + 1);
    bytes.set(json, 1);
    return bytes;
  },
  deserialize: (bytes) => (bytes[0] === 0 ? (JSON.parse(decodeUtf8(bytes.subarray(1))) as unknown) : decodeUtf8(bytes)),
};

/** Eddy's serdes that only read the bytes they deserialize, never hand them on. */
const readersOnly = new WeakSet<object>([jsonSerde, stringSerde, defaultKeySerde, internalKeySerde]);

/** The same bytes as a plain Uint8Array (no copy): a transport may hand out subclasses such as Node Buffers. */
export const plainBytes = (bytes: Uint8Array): Uint8Array => (bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));

/**
 * A serde's deserialize, given the bytes as a plain Uint8Array when the serde may hand them on
 * (`bytes()`, a user's serde): a transport may hand out Node Buffers, whose `slice()` is a view
 * and whose JSON differs, and a pipeline must see on every transport what it sees on the embedded broker.
 */
export function deserializerOf<T>(serde: Serde<T>): (bytes: Uint8Array) => T {
  return readersOnly.has(serde) ? serde.deserialize : (bytes) => serde.deserialize(plainBytes(bytes));
}

/**
 * For a serde whose `deserialize` fails exactly on bytes that are not UTF-8 (the text serdes: a
 * stream's default key serde and `string()`), a check that throws what it would throw, without
 * making the text (validating is several times cheaper than decoding); undefined for any other.
 */
export function checkerOf<T>(serde: Serde<T>): ((bytes: Uint8Array) => void) | undefined {
  if (serde !== stringSerde && serde !== defaultKeySerde) return undefined;
  return (bytes) => {
    if (!isShortAscii(bytes) && !isUtf8(bytes)) serde.deserialize(bytes);
  };
}

/** Whether bytes are a short run of ASCII: a loop beats a call into `isUtf8` on keys of a few bytes. */
function isShortAscii(bytes: Uint8Array): boolean {
  if (bytes.length > 64) return false;
  for (let index = 0; index < bytes.length; index++) if (bytes[index]! > 0x7f) return false;
  return true;
}

/** Checks that a user-supplied serde has both functions; throws at build time otherwise. */
export function checkSerde<T>(serde: Serde<T> | undefined, what: string): Serde<T> | undefined {
  if (serde === undefined) return undefined;
  if (typeof serde !== 'object' || serde === null || typeof serde.serialize !== 'function' || typeof serde.deserialize !== 'function') {
    throw new ConfigError(`${what}: a serde needs serialize() and deserialize() functions, got ${String(serde)}`);
  }
  return serde;
}

/** The serde namespace users import: `serdes.json()`, `serdes.string()`, `serdes.bytes()`. */
export const serdes = { json, string, bytes };
