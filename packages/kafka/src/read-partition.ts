import { randomUUID } from 'node:crypto';
import { EddyError, type IncomingRecord, type TopicPartition } from '@eddy/core';
import type { Admin, Kafka } from 'kafkajs';
import { singlePartitionAssigner } from './assigner.js';
import { transportError } from './errors.js';
import type { KafkaSettings } from './options.js';
import { deliverLazily } from './fetch-fixes.js';
import { toIncomingRecord } from './records.js';

/** Records per yielded batch at most. */
const maxYieldRecords = 10_000;

/** A read that makes no progress for this long fails rather than hang a restore. */
const stallTimeoutMs = 60_000;

/** What reading a partition needs from its transport. */
export interface PartitionReaderHost {
  readonly kafka: Kafka;
  readonly settings: KafkaSettings;
  /** Runs an operation on the transport's admin client (retried on stale metadata). */
  withAdmin<T>(operation: (admin: Admin) => Promise<T>): Promise<T>;
  endOffset(partition: TopicPartition): Promise<number>;
}

/**
 * Reads one partition from `fromOffset` up to its end offset at the time of the call, in the
 * batches Kafka returns (changelog restore).
 *
 * kafkajs has no manual assignment, so this joins a throwaway consumer group of one member whose
 * assigner gives it exactly this partition, seeks to `fromOffset` as soon as the group is joined
 * (before the first fetch), and stops at the end offset; then it leaves and deletes the group.
 * Fetches are large and short-waiting, and the next fetch overlaps with the caller's handling of
 * the previous batch. An empty range costs one offset lookup and no group. Breaking out of the
 * loop early cleans up the same way.
 *
 * @example
 * ```ts
 * for await (const batch of readPartition(host, { topic: 'app-counts-changelog', partition: 3 }, checkpoint)) {
 *   await store.write(batch.map((record) => ({ key: record.key!, value: record.value })));
 * }
 * ```
 */
export async function* readPartition(host: PartitionReaderHost, { topic, partition }: TopicPartition, fromOffset: number): AsyncGenerator<readonly IncomingRecord[]> {
  const where = `reading ${topic}[${partition}] from offset ${fromOffset}`;
  if (!Number.isInteger(fromOffset) || fromOffset < 0) throw new EddyError('TRANSPORT_FAILED', `${where}: the offset must be a non-negative integer`);
  const end = await host.endOffset({ topic, partition });
  if (fromOffset >= end) return;

  const { kafka, settings } = host;
  // Named after the client id, so that ACLs can grant these groups by prefix.
  const groupId = `${settings.clientId}-read-${randomUUID()}`;
  const consumer = kafka.consumer({
    groupId,
    partitionAssigners: [singlePartitionAssigner(topic, partition)],
    // Restore reads as fast as the broker serves; the short wait matters only at the end, where
    // disconnecting waits for the fetch in flight.
    maxWaitTimeInMs: 50,
    maxBytesPerPartition: 16 * 1024 * 1024,
    maxBytes: 64 * 1024 * 1024,
    sessionTimeout: settings.sessionTimeoutMs,
    heartbeatInterval: settings.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
    // read_committed: a restore never applies a record of an aborted transaction.
    readUncommitted: false,
    retry: settings.retry,
  });
  // Records reach toIncomingRecord undecoded (see fetch-fixes.ts).
  const endLazy = deliverLazily(groupId);
  const batches = new Handoff<readonly IncomingRecord[]>();
  let next = fromOffset;
  const stall = setTimeout(() => batches.fail(new EddyError('TRANSPORT_FAILED', `${where}: no progress for ${stallTimeoutMs} ms`, { retriable: true })), stallTimeoutMs);
  stall.unref();
  const advance = (offset: number) => {
    if (offset <= next) return;
    next = offset;
    stall.refresh();
    if (next >= end) batches.end();
  };

  // GROUP_JOIN comes before the first fetch, so no record before fromOffset is fetched.
  consumer.on(consumer.events.GROUP_JOIN, () => consumer.seek({ topic, partition, offset: String(next) }));
  // Batches of control records only (transaction markers) never reach eachBatch, but count as progress.
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    if (payload.topic === topic && payload.partition === partition) advance(Number(payload.lastOffset) + 1);
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart) batches.fail(transportError(where, payload.error));
  });

  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const records: IncomingRecord[] = [];
        for (const message of batch.messages) {
          const record = toIncomingRecord(topic, partition, message);
          if (record.offset >= next && record.offset < end) records.push(record);
        }
        if (records.length > 0) await batches.push(records);
        advance(Number(batch.lastOffset()) + 1);
      },
    });
    for (;;) {
      const batch = await batches.take();
      if (batch === undefined) return;
      // A fetch can bring a hundred thousand records; smaller batches keep restore progress
      // (and a store's write batches) moving in steps.
      for (let start = 0; start < batch.length; start += maxYieldRecords) yield batch.slice(start, start + maxYieldRecords);
    }
  } catch (error) {
    throw transportError(where, error);
  } finally {
    clearTimeout(stall);
    batches.close();
    await consumer.disconnect().catch(() => undefined);
    endLazy();
    await host
      .withAdmin((admin) => admin.deleteGroups([groupId]))
      .catch((error: unknown) => settings.logger.debug({ component: 'eddy-kafka', group: groupId, error: String(error) }, 'could not delete a throwaway group; the broker expires it'));
  }
}

/**
 * Hands batches from kafkajs's fetch loop to the reader one at a time: `push` resolves once the
 * reader has taken the batch, so at most one batch waits while the reader works on another.
 */
class Handoff<T> {
  readonly #items: Array<{ value: T; taken: () => void }> = [];
  #waiter: { resolve: (value: T | undefined) => void; reject: (error: unknown) => void } | undefined;
  #ended = false;
  #failure: { error: unknown } | undefined;

  push(value: T): Promise<void> {
    if (this.#ended || this.#failure) return Promise.resolve();
    return new Promise((taken) => {
      this.#items.push({ value, taken });
      this.#wake();
    });
  }

  /** The next batch, or undefined once the end is reached and everything was taken. */
  take(): Promise<T | undefined> {
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      this.#wake();
    });
  }

  /** No more batches after those already pushed. */
  end(): void {
    this.#ended = true;
    this.#wake();
  }

  fail(error: unknown): void {
    this.#failure ??= { error };
    this.#wake();
  }

  /** Releases every pending push (the reader has gone). */
  close(): void {
    this.#ended = true;
    for (const item of this.#items.splice(0)) item.taken();
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    if (this.#failure) {
      this.#waiter = undefined;
      waiter.reject(this.#failure.error);
      return;
    }
    const item = this.#items.shift();
    if (item) {
      this.#waiter = undefined;
      item.taken();
      waiter.resolve(item.value);
    } else if (this.#ended) {
      this.#waiter = undefined;
      waiter.resolve(undefined);
    }
  }
}
