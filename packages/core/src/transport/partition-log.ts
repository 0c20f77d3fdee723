import { latin1Text } from '../serde.js';
import type { IncomingRecord } from './types.js';

/** How long an ordinary topic keeps its records (each limit per partition; unset: no limit). */
export interface Retention {
  /** Records kept; the oldest go first. */
  readonly records?: number;
  /** Bytes of keys, values and headers kept. */
  readonly bytes?: number;
  /** How long a record is kept after it was written, in ms. */
  readonly ms?: number;
}

/** What a compacted topic keeps: the latest record of each key, and a delete marker for `tombstoneMs`. */
export interface Compaction {
  /** How long a tombstone (null value) is kept after it was written, so that readers behind it still learn of the delete. */
  readonly tombstoneMs: number;
}

/** Roughly the bytes a record holds: key, value and headers. */
export function recordBytes(record: IncomingRecord): number {
  let bytes = (record.key?.byteLength ?? 0) + (record.value?.byteLength ?? 0);
  for (const name in record.headers) bytes += name.length + (record.headers[name]?.length ?? 0);
  return bytes;
}

/**
 * One partition's log, in memory. Offsets only grow; records may leave the front (retention,
 * deleted records of repartition topics) or the middle (compaction), so lookups by offset search.
 * Every way records leave returns their offsets, for a log kept on disk too (see `LevelTransport` in @eddy/state).
 */
export class PartitionLog {
  /** Offsets of the records held, ascending (dense unless compacted). */
  readonly offsets: number[] = [];
  readonly records: IncomingRecord[] = [];
  /** When each record was written (clock ms), for retention by age and tombstone expiry. */
  readonly writtenAt: number[] = [];
  /** The offset after the last record written. */
  end = 0;
  /** Bytes of the records held (see {@link recordBytes}), counted only for a log that `countsBytes`. */
  bytes = 0;
  /** Records held after the last compaction, to pace the next one. */
  compactedSize = 0;

  /** `countsBytes`: keep {@link bytes} (a retention by bytes needs it; nothing else does). */
  constructor(readonly countsBytes = false) {}

  push(record: IncomingRecord, writtenAt: number): void {
    this.offsets.push(record.offset);
    this.records.push(record);
    this.writtenAt.push(writtenAt);
    if (this.countsBytes) this.bytes += recordBytes(record);
    this.end = record.offset + 1;
  }

  /** The index of the first record at or after `offset`. */
  indexOf(offset: number): number {
    const offsets = this.offsets;
    const first = offsets[0];
    // Without compaction the offsets are dense: index arithmetic, no search.
    if (first === undefined || offset <= first) return 0;
    const guess = offset - first;
    if (guess < offsets.length && offsets[guess] === offset) return guess;
    let low = 0;
    let high = offsets.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (offsets[middle]! < offset) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  slice(from: number, max: number): IncomingRecord[] {
    const start = this.indexOf(from);
    return this.records.slice(start, start + max);
  }

  /** Drops records before `offset`; returns the offsets dropped. */
  truncateBefore(offset: number): number[] {
    return this.#dropFront(this.indexOf(offset));
  }

  /** Drops what an ordinary topic no longer keeps by `retention`, as of clock time `now`; returns the offsets dropped. */
  retain(retention: Retention, now: number): number[] {
    let count = 0;
    if (retention.records !== undefined && this.records.length > retention.records) count = this.records.length - retention.records;
    if (retention.ms !== undefined) while (count < this.writtenAt.length && this.writtenAt[count]! < now - retention.ms) count++;
    if (this.countsBytes && retention.bytes !== undefined && this.bytes > retention.bytes) {
      let bytes = this.bytes;
      for (let index = 0; index < count; index++) bytes -= recordBytes(this.records[index]!);
      while (bytes > retention.bytes && count < this.records.length) bytes -= recordBytes(this.records[count++]!);
    }
    return this.#dropFront(count);
  }

  /**
   * Keeps only the latest record of each key, in offset order, and drops tombstones written more
   * than `tombstoneMs` before `now`; returns the offsets dropped.
   */
  compact({ tombstoneMs }: Compaction, now: number): number[] {
    const latest = new Map<string, number>();
    this.records.forEach((record, index) => latest.set(record.key ? latin1Text(record.key) : `#${index}`, index));
    const keep = new Set([...latest.values()].filter((index) => this.records[index]!.value !== null || this.writtenAt[index]! >= now - tombstoneMs));
    const dropped: number[] = [];
    let kept = 0;
    let bytes = 0;
    for (let index = 0; index < this.records.length; index++) {
      const record = this.records[index]!;
      if (!keep.has(index)) {
        dropped.push(record.offset);
        continue;
      }
      this.records[kept] = record;
      this.offsets[kept] = record.offset;
      this.writtenAt[kept] = this.writtenAt[index]!;
      if (this.countsBytes) bytes += recordBytes(record);
      kept++;
    }
    this.records.length = this.offsets.length = this.writtenAt.length = kept;
    this.bytes = bytes;
    this.compactedSize = kept;
    return dropped;
  }

  #dropFront(count: number): number[] {
    if (count <= 0) return [];
    if (this.countsBytes) for (let index = 0; index < count; index++) this.bytes -= recordBytes(this.records[index]!);
    const dropped = this.offsets.splice(0, count);
    this.records.splice(0, count);
    this.writtenAt.splice(0, count);
    return dropped;
  }
}
