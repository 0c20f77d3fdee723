import { encodeUtf8 } from '../serde.js';
import type { Bucket } from './strategy.js';

const decoder = new TextDecoder();

/**
 * The stored value of a bucket of the built-in kinds: the JSON array
 * `[end, partial, endingWindow, count, start]`. Only sliding buckets fill `endingWindow` and only
 * count buckets `count`; the other kinds store null there. The kinds share this one layout
 * because state written by earlier versions must read back unchanged; a new kind may store its own.
 */
export function encodeBucket(bucket: Bucket, endingWindow: string | null, count: number | null): Uint8Array {
  return encodeUtf8(JSON.stringify([bucket.end, bucket.partial, endingWindow, count, bucket.start]));
}

/** A bucket read back with {@link encodeBucket}'s two kind slots. */
export interface DecodedBucket {
  readonly bucket: Bucket;
  readonly endingWindow: string | null;
  readonly count: number | null;
}

export function decodeBucket(bytes: Uint8Array): DecodedBucket {
  const [end, partial, endingWindow, count, start] = JSON.parse(decoder.decode(bytes)) as [number, unknown, string | null, number | null, number];
  // Read from its storage key: removing it needs a tombstone.
  return { bucket: { start, end, partial, stored: true }, endingWindow, count };
}
