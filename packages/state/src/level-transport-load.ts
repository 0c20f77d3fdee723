import { EddyError, partitionKey, type IncomingRecord, type TopicSpec } from '@eddy/core';
import { rootMessage } from './errors.js';
import { ChunkIndex, splitKey } from './level-transport-chunks.js';
import {
  chunkSummary,
  decodeChunkAbove,
  decodeOffset,
  decodeTopic,
  LOG_FORMAT_KEY,
  LOG_FORMAT_VALUE,
  LOG_FORMAT_VERSION,
  logLayoutViolation,
  readPartitionKey,
  TAG_COMMITTED,
  TAG_END,
  TAG_RECORD,
  TAG_START,
  TAG_TOPIC,
  tagRange,
} from './log-layout.js';
import type { DatabaseFormat, LevelDatabase } from './recovery.js';

/** How `openDatabase` knows the broker log, and what it says when the log is damaged or in use. */
export const brokerLogFormat: DatabaseFormat = {
  markerKey: LOG_FORMAT_KEY,
  markerValue: LOG_FORMAT_VALUE,
  version: LOG_FORMAT_VERSION,
  violation: logLayoutViolation,
  name: 'Eddy broker log',
  consequence: 'its topics start empty (records and committed offsets of the damaged copy are not used)',
  locked: (location, cause) =>
    new EddyError('TRANSPORT_LOCKED', `the Eddy broker log at ${location} is in use by another process (or another levelTransport of this one): ${rootMessage(cause)}`, {
      cause,
      retriable: true,
    }),
  failed: (message, cause) => new EddyError('TRANSPORT_FAILED', message, { cause }),
};

/** The in-memory broker's restore hooks, which a read log is put into. */
export interface LogRestorer {
  createTopic(spec: TopicSpec): void;
  restorePartition(topic: string, partition: number, records: readonly IncomingRecord[], writtenAt: readonly number[], end: number): void;
  restoreCommitted(groupId: string, topic: string, partition: number, offset: number): void;
}

/** What {@link readLog} found: the index of the log's chunks, topics, records for memory and records left on disk only. */
export interface LogRead {
  readonly index: ChunkIndex;
  readonly topics: number;
  readonly records: number;
  readonly onDiskOnly: number;
  /** Puts what was read into the in-memory broker. */
  restore(into: LogRestorer): void;
}

/**
 * Reads the log: topics, ends, committed offsets, and the records readers still need. Of an
 * ordinary topic's partitions, the records every group has committed stay on disk only
 * (`readCold` serves them to a reader that goes back); the rest, and every record of changelogs
 * and repartition topics, are for memory. Nothing reaches the broker before all of the log was
 * read (see {@link LogRead.restore}), so that a log found damaged halfway can be set aside whole.
 */
export async function readLog(db: LevelDatabase): Promise<LogRead> {
  const index = new ChunkIndex();
  const steps: Array<(into: LogRestorer) => void> = [];
  const topics = new Map<number, TopicSpec>();
  for (const [, value] of await entries(db, TAG_TOPIC)) {
    const { id, spec } = decodeTopic(value);
    topics.set(id, spec);
    index.knownTopic(spec.name, id);
    steps.push((into) => into.createTopic(spec));
  }
  /** Per partition, an offset of each entry of a tag (the least, where there are several), and what else each key holds. */
  const offsetsOf = async (tag: number, each?: (name: string, partition: number, rest: Buffer, offset: number) => void) => {
    const found = new Map<string, number>();
    for (const [key, value] of await entries(db, tag)) {
      const { topicId, partition, rest } = readPartitionKey(key);
      const name = topics.get(topicId)?.name;
      if (name === undefined) continue;
      const offset = decodeOffset(value);
      found.set(partitionKey(name, partition), Math.min(offset, found.get(partitionKey(name, partition)) ?? Infinity));
      each?.(name, partition, rest, offset);
    }
    return found;
  };
  const ends = await offsetsOf(TAG_END);
  for (const [key, start] of await offsetsOf(TAG_START)) index.starts.set(key, start);
  // The least offset the groups committed is where some reader still needs records from.
  const committed = await offsetsOf(TAG_COMMITTED, (name, partition, group, offset) => {
    const groupId = group.toString('utf8');
    steps.push((into) => into.restoreCommitted(groupId, name, partition, offset));
  });
  let records = 0;
  let cold = 0;
  const iterator = db.iterator({ ...tagRange(TAG_RECORD), fillCache: false });
  try {
    let current: { name: string; partition: number; records: IncomingRecord[]; writtenAt: number[] } | undefined;
    const restore = () => {
      if (!current) return;
      const { name, partition, records: read, writtenAt } = current;
      const key = partitionKey(name, partition);
      const end = ends.get(key) ?? 0;
      steps.push((into) => into.restorePartition(name, partition, read, writtenAt, end));
      ends.delete(key);
    };
    for (;;) {
      const batch = await iterator.nextv(100);
      if (batch.length === 0) break;
      for (const [key, value] of batch) {
        const { topicId, partition, rest } = readPartitionKey(key);
        const spec = topics.get(topicId);
        if (!spec) continue;
        if (!current || current.name !== spec.name || current.partition !== partition) {
          restore();
          current = { name: spec.name, partition, records: [], writtenAt: [] };
        }
        const at = partitionKey(spec.name, partition);
        const first = Number(rest.readBigUInt64BE(0));
        const summary = chunkSummary(value);
        const start = index.starts.get(at) ?? 0;
        const needed = spec.compacted || spec.unlimitedRetention ? 0 : (committed.get(at) ?? 0);
        const chunk = decodeChunkAbove(spec.name, partition, first, value, Math.max(start, needed));
        index.chunksOf(at).push({ first, last: chunk.last, bytes: summary.bytes, newest: summary.newest });
        if (needed > Math.max(start, first)) {
          // Records below what every group has committed stay on disk.
          const onDisk = Math.max(0, Math.min(chunk.last + 1, needed) - Math.max(start, first));
          const known = index.cold.get(at) ?? { memoryStart: needed, records: 0, bytes: 0, hotRecords: 0, hotBytes: 0 };
          known.records += chunk.last - first + 1;
          known.bytes += summary.bytes;
          index.cold.set(at, known);
          cold += onDisk;
        } else {
          // Chunks come in offset order: those after the cold ones are held in memory.
          const known = index.cold.get(at);
          if (known) {
            known.hotRecords += chunk.last - first + 1;
            known.hotBytes += summary.bytes;
          }
        }
        current.records.push(...chunk.records);
        current.writtenAt.push(...chunk.writtenAt);
        records += chunk.records.length;
      }
    }
    restore();
  } finally {
    await iterator.close();
  }
  // Partitions whose records have all gone keep their end.
  for (const [key, end] of ends) steps.push((into) => into.restorePartition(...splitKey(key), [], [], end));
  return {
    index,
    topics: topics.size,
    records,
    onDiskOnly: cold,
    restore: (into) => {
      for (const step of steps) step(into);
    },
  };
}

/** Every entry of one tag (small ranges: topics, ends, committed offsets). */
async function entries(db: LevelDatabase, tag: number): Promise<Array<[Uint8Array, Uint8Array]>> {
  return (await db.iterator(tagRange(tag)).all()) as Array<[Uint8Array, Uint8Array]>;
}
