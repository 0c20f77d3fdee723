import { EddyError } from '@eddy/core';

/** Records per chunk when a compacted partition is written again. */
export const CHUNK_RECORDS = 1_000;

/** A chunk of a partition on disk: the offsets of its first and last record, its size, and when its newest record was written. */
export interface Chunk {
  readonly first: number;
  readonly last: number;
  readonly bytes: number;
  readonly newest: number;
}

/**
 * The older records of a partition that are on disk only (see `readLog`): the first offset held
 * in memory, the records and bytes of the chunks below it, and those of the chunks from there on
 * (held in memory too): retention judges the partition as a whole.
 */
export interface ColdRecords {
  readonly memoryStart: number;
  records: number;
  bytes: number;
  hotRecords: number;
  hotBytes: number;
}

/**
 * What the broker knows of its log on disk without reading it: the id each topic is keyed by, and
 * per partition (`partitionKey`) its chunks, its first offset and its records on disk only.
 */
export class ChunkIndex {
  readonly #topicIds = new Map<string, number>();
  #nextTopicId = 1;
  /** Per partition, its chunks on disk in offset order. */
  readonly #chunks = new Map<string, Chunk[]>();
  /** Per partition, its first offset (records before it are gone). */
  readonly starts = new Map<string, number>();
  /** Per partition whose older records are on disk only. */
  readonly cold = new Map<string, ColdRecords>();

  /** Gives a new topic the next id. */
  addTopic(topic: string): number {
    const id = this.#nextTopicId++;
    this.#topicIds.set(topic, id);
    return id;
  }

  /** A topic read from the log keeps its id; new topics get higher ones. */
  knownTopic(topic: string, id: number): void {
    this.#topicIds.set(topic, id);
    this.#nextTopicId = Math.max(this.#nextTopicId, id + 1);
  }

  topicId(topic: string): number {
    const id = this.#topicIds.get(topic);
    if (id === undefined) throw new EddyError('TRANSPORT_FAILED', `levelTransport: topic ${topic} has no id (it was never created)`);
    return id;
  }

  chunksOf(key: string): Chunk[] {
    let chunks = this.#chunks.get(key);
    if (!chunks) this.#chunks.set(key, (chunks = []));
    return chunks;
  }
}

/** The topic and partition of a `partitionKey`. */
export const splitKey = (key: string): [topic: string, partition: number] => {
  const at = key.lastIndexOf('\u0000');
  return [key.slice(0, at), Number(key.slice(at + 1))];
};
