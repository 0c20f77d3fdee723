import { ConfigError } from './errors.js';

/** Turns values into bytes and back. `deserialize` may validate: throwing marks the record bad. */
export interface Serde<T> {
  serialize(value: T): Uint8Array;
  deserialize(bytes: Uint8Array): T;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** JSON text in UTF-8 (the default value serde). */
export function json<T = unknown>(): Serde<T> {
  return jsonSerde as Serde<T>;
}
const jsonSerde: Serde<unknown> = {
  serialize: (value) => {
    const text = JSON.stringify(value);
    // JSON.stringify(undefined) is undefined; encode it as null so the record stays decodable.
    return encoder.encode(text === undefined ? 'null' : text);
  },
  deserialize: (bytes) => JSON.parse(decoder.decode(bytes)) as unknown,
};

/** UTF-8 text. */
export function string(): Serde<string> {
  return stringSerde;
}
const stringSerde: Serde<string> = {
  serialize: (value) => encoder.encode(value),
  deserialize: (bytes) => decoder.decode(bytes),
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
  serialize: (value) => (typeof value === 'string' ? encoder.encode(value) : jsonSerde.serialize(value)),
  deserialize: (bytes) => decoder.decode(bytes),
};

/**
 * Keys of internal topics: strings as raw UTF-8, exactly like {@link defaultKeySerde} (so a
 * stream keyed by its topic's key keeps its partitions through a repartition), and any other key
 * as JSON behind a zero byte, so that it reads back with its type (a number stays a number).
 */
export const internalKeySerde: Serde<unknown> = {
  serialize: (value) => {
    if (typeof value === 'string' && !value.startsWith('\u0000')) return encoder.encode(value);
    const json = encoder.encode(JSON.stringify(value));
    const bytes = new Uint8Array(json.length + 1);
    bytes.set(json, 1);
    return bytes;
  },
  deserialize: (bytes) => (bytes[0] === 0 ? (JSON.parse(decoder.decode(bytes.subarray(1))) as unknown) : decoder.decode(bytes)),
};

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
