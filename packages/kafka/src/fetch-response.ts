import type { Buffer } from 'node:buffer';
import { EddyError } from '@eddy/core';
import type { Reader} from '@platformatic/kafka';
import { compressionsAlgorithmsByBitmask, createAPI, fetchV17, ResponseError } from '@platformatic/kafka';

/**
 * Fetch (v17) with record batches kept as the bytes the broker sent. The client's own parser
 * decodes every record of a response into objects (a bigint per timestamp, a tuple per varint)
 * before anyone looks at them; here a batch is read only up to its header, and its records are
 * decoded straight into what the caller keeps (see {@link BatchReader}). Same request, same
 * response structure, same errors (a `ResponseError` holding the parsed response).
 */

/** A record batch of a fetched partition: its header, and where its records are. */
export interface RawBatch {
  readonly firstOffset: number;
  readonly lastOffsetDelta: number;
  readonly attributes: number;
  readonly producerId: bigint;
  readonly firstTimestamp: number;
  readonly maxTimestamp: number;
  readonly recordCount: number;
  /** The batch's records: uncompressed, from `start`. */
  readonly bytes: Buffer;
  readonly start: number;
}

export interface FetchedPartition {
  readonly partitionIndex: number;
  readonly errorCode: number;
  readonly highWatermark: bigint;
  readonly lastStableOffset: bigint;
  readonly logStartOffset: bigint;
  readonly abortedTransactions: ReadonlyArray<{ readonly producerId: bigint; readonly firstOffset: bigint }>;
  readonly records: readonly RawBatch[] | undefined;
}

export interface FetchedTopic {
  readonly topicId: string;
  readonly partitions: readonly FetchedPartition[];
}

export interface FetchResponse {
  readonly throttleTimeMs: number;
  readonly errorCode: number;
  readonly sessionId: number;
  readonly responses: readonly FetchedTopic[];
}

/** Bytes of a batch before its records: base offset (8), length (4), then 49 bytes of header. */
const BATCH_OVERHEAD = 61;
const COMPRESSION = 0b111;

function parseResponse(_correlationId: number, apiKey: number, apiVersion: number, reader: Reader): FetchResponse {
  const errors: Array<[string, [number, null]]> = [];
  const throttleTimeMs = reader.readInt32();
  const errorCode = reader.readInt16();
  if (errorCode !== 0) errors.push(['', [errorCode, null]]);
  const sessionId = reader.readInt32();
  const responses = reader.readArray((topicReader, i) => ({
    topicId: topicReader.readUUID(),
    partitions: topicReader.readArray((r, j): FetchedPartition => {
      const partitionIndex = r.readInt32();
      const partitionError = r.readInt16();
      const highWatermark = r.readInt64();
      const lastStableOffset = r.readInt64();
      const logStartOffset = r.readInt64();
      const abortedTransactions = r.readArray((entry) => ({ producerId: entry.readInt64(), firstOffset: entry.readInt64() }));
      r.readInt32(); // preferred read replica
      if (partitionError !== 0) errors.push([`/responses/${i}/partitions/${j}`, [partitionError, null]]);
      // COMPACT_RECORDS: the length plus one.
      const size = r.readUnsignedVarInt() - 1;
      let records: RawBatch[] | undefined;
      if (size > 0) {
        records = rawBatches(r.buffer.subarray(r.position, r.position + size).buffer);
        r.skip(size);
      }
      return { partitionIndex, errorCode: partitionError, highWatermark, lastStableOffset, logStartOffset, abortedTransactions: abortedTransactions ?? [], records };
    }) ?? [],
  })) ?? [];
  const response: FetchResponse = { throttleTimeMs, errorCode, sessionId, responses };
  if (errors.length > 0) throw new ResponseError(apiKey, apiVersion, Object.fromEntries(errors), response);
  return response;
}

/** The whole batches of a partition's records (a fetch may end with part of one, which is left for the next). */
export function rawBatches(bytes: Buffer): RawBatch[] {
  const batches: RawBatch[] = [];
  let at = 0;
  while (bytes.length - at >= BATCH_OVERHEAD) {
    const length = bytes.readInt32BE(at + 8);
    const end = at + 12 + length;
    if (end > bytes.length) break;
    const attributes = bytes.readInt16BE(at + 21);
    const header = {
      firstOffset: Number(bytes.readBigInt64BE(at)),
      lastOffsetDelta: bytes.readInt32BE(at + 23),
      attributes,
      firstTimestamp: Number(bytes.readBigInt64BE(at + 27)),
      maxTimestamp: Number(bytes.readBigInt64BE(at + 35)),
      producerId: bytes.readBigInt64BE(at + 43),
      recordCount: bytes.readInt32BE(at + 57),
    };
    if ((attributes & COMPRESSION) === 0) {
      batches.push({ ...header, bytes: bytes.subarray(0, end), start: at + BATCH_OVERHEAD });
    } else {
      // Compressed: the records section, inflated by the client's own decompressor, is laid out as
      // in an uncompressed batch.
      const algorithm = compressionsAlgorithmsByBitmask[attributes & COMPRESSION];
      if (!algorithm) throw new EddyError('TRANSPORT_FAILED', `a fetched record batch uses an unknown compression (attributes ${attributes})`);
      batches.push({ ...header, bytes: algorithm.decompressSync(bytes.subarray(at + BATCH_OVERHEAD, end)), start: 0 });
    }
    at = end;
  }
  return batches;
}

/** Fetch v17 whose record batches stay bytes until a {@link BatchReader} reads them. */
export const fetchRaw = createAPI<Parameters<typeof fetchV17.createRequest>, FetchResponse>(1, 17, fetchV17.createRequest, parseResponse);

/**
 * One record of a batch, its key, value and headers views of the fetched bytes: plain
 * Uint8Arrays, which cost half of what a Buffer view (`subarray`) does to make.
 */
export interface RawRecord {
  offsetDelta: number;
  timestampDelta: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  /** Header names and values, alternating (a value may be null). */
  headers: Array<Uint8Array | null> | undefined;
}

/**
 * Reads a batch's records one at a time, in order, into a reused {@link RawRecord} (copy what
 * you keep), so a caller decodes only as far as it goes. Zigzag varints are read in double
 * arithmetic: a record's timestamp delta stays far below 2^53.
 */
export class BatchReader {
  readonly #batch: RawBatch;
  readonly #bytes: Buffer;
  #at: number;
  #index = 0;

  constructor(batch: RawBatch) {
    this.#batch = batch;
    this.#bytes = batch.bytes;
    this.#at = batch.start;
  }

  /** Reads the next record into `record`; false after the last. */
  next(record: RawRecord): boolean {
    if (this.#index >= this.#batch.recordCount) return false;
    this.#index++;
    const length = this.#varint();
    const end = this.#at + length;
    this.#at++; // attributes (unused)
    record.timestampDelta = this.#varint();
    record.offsetDelta = this.#varint();
    record.key = this.#field();
    record.value = this.#field();
    const headerCount = this.#varint();
    let headers: Array<Uint8Array | null> | undefined;
    for (let header = 0; header < headerCount; header++) (headers ??= []).push(this.#field(), this.#field());
    record.headers = headers;
    this.#at = end;
    return true;
  }

  #varint(): number {
    const bytes = this.#bytes;
    let result = 0;
    let scale = 1;
    for (;;) {
      const byte = bytes[this.#at++];
      if (byte === undefined) throw new EddyError('TRANSPORT_FAILED', 'a fetched record batch ends inside a record');
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) break;
      scale *= 128;
    }
    // Zigzag: even values are non-negative.
    return result % 2 === 0 ? result / 2 : -(result + 1) / 2;
  }

  #field(): Uint8Array | null {
    const length = this.#varint();
    if (length < 0) return null;
    const bytes = this.#bytes;
    const value = new Uint8Array(bytes.buffer, bytes.byteOffset + this.#at, length);
    this.#at += length;
    return value;
  }
}

/** An empty {@link RawRecord}, to read into. */
export const rawRecord = (): RawRecord => ({ offsetDelta: 0, timestampDelta: 0, key: null, value: null, headers: undefined });
