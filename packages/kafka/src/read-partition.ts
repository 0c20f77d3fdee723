import { EddyError, partitionKey, systemClock, type IncomingRecord, type TopicPartition } from '@eddy/core';
import { FetchIsolationLevels, UserError } from '@platformatic/kafka';
import { fetchRaw, type FetchResponse } from './fetch-response.js';
import { Cluster } from './cluster.js';
import { isRetriable, transportError } from './errors.js';
import { CommittedRecords } from './committed-records.js';
import type { KafkaSettings } from './options.js';
import { hasKafkaError } from './protocol-errors.js';

/** Records per yielded batch at most. */
const MAX_YIELD_RECORDS = 10_000;
/** A read that makes no progress for this long fails rather than hang a restore. */
const STALL_TIMEOUT_MS = 60_000;
/** Restore reads as fast as the broker serves: large fetches, and the records are there already. */
const FETCH_MAX_BYTES = 64 * 1024 * 1024;
const PARTITION_MAX_BYTES = 16 * 1024 * 1024;
const FETCH_MAX_WAIT_MS = 100;
/** Backoff after a failed attempt: doubles from the first value up to the second. */
const BACKOFF_MS = [100, 2_000] as const;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Reads one partition's committed records (read_committed) from `fromOffset` up to its end at
 * the time of the call, in batches of at most 10,000 records (changelog restore).
 *
 * The end is the partition's last stable offset then; records of aborted transactions and
 * transaction markers are skipped, and a transactional changelog ends with a marker, so the last
 * record yielded may lie below it. Records deleted before they were read (retention,
 * DeleteRecords) are skipped: the read goes on from where the log starts. A topic or partition
 * that does not exist reads nothing. The next fetch runs while the caller handles a batch.
 * A read that makes no progress for a minute fails; leaving the loop early closes the read.
 *
 * @example
 * ```ts
 * for await (const batch of readPartition(settings, { topic: 'app-counts-changelog', partition: 3 }, checkpoint)) {
 *   await store.write(batch.map((record) => ({ key: record.key!, value: record.value })));
 * }
 * ```
 */
export async function* readPartition(settings: KafkaSettings, tp: TopicPartition, fromOffset: number): AsyncGenerator<readonly IncomingRecord[]> {
  const where = `reading ${tp.topic}[${tp.partition}] from offset ${fromOffset}`;
  if (!Number.isInteger(fromOffset) || fromOffset < 0) throw new EddyError('TRANSPORT_FAILED', `${where}: the offset must be a non-negative integer`);
  const reader = new PartitionReader(settings, tp, where);
  try {
    const end = await reader.end();
    let next = fromOffset < end ? reader.read(fromOffset) : undefined;
    while (next) {
      const { records, position } = await next;
      next = position < end ? reader.read(position) : undefined;
      // Awaited on the next turn; until then its failure must not count as unhandled.
      next?.catch(() => undefined);
      // Decoded as the caller takes them: a fetch holds hundreds of thousands of records.
      const beyondEnd = (record: IncomingRecord) => record.offset >= end;
      for (let slice = records.take(MAX_YIELD_RECORDS, beyondEnd); slice.length > 0; slice = records.take(MAX_YIELD_RECORDS, beyondEnd)) yield slice;
    }
  } finally {
    await reader.close();
  }
}

/** Fetches one partition through a cluster client of its own, which joins no group. */
class PartitionReader {
  readonly #settings: KafkaSettings;
  readonly #tp: TopicPartition;
  readonly #where: string;
  readonly #cluster: Cluster;
  /** Set by a failure: the next attempt reads the metadata again (a leader may have moved). */
  #refreshMetadata = false;
  #closed = false;

  constructor(settings: KafkaSettings, tp: TopicPartition, where: string) {
    this.#settings = settings;
    this.#tp = tp;
    this.#where = where;
    this.#cluster = new Cluster(settings, 'reader');
  }

  /** Where the partition's committed records end now (its last stable offset); 0 if it does not exist. */
  end(): Promise<number> {
    return this.#untilAnswered('looking up the end', async () => {
      const { topic, partition } = this.#tp;
      try {
        const metadata = await this.#cluster.topic(topic, this.#takeRefresh());
        if (metadata.partitions[partition] === undefined) return 0;
      } catch (error) {
        // How the client reports a topic the broker does not know, once its retries are spent.
        if (error instanceof UserError) return 0;
        throw error;
      }
      return (await this.#cluster.listOffsets([this.#tp], 'latest')).get(partitionKey(topic, partition));
    });
  }

  /** The committed records from `position` on, decoded as they are taken, and the position after them; tried again until it moves on. */
  read(position: number): Promise<{ records: CommittedRecords; position: number }> {
    return this.#untilAnswered(`at offset ${position}`, async () => {
      const records = await this.#fetch(position);
      return records.end > position ? { records, position: records.end } : undefined;
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#cluster.close().catch(() => undefined);
  }

  /** One fetch from the partition's leader: its committed records from `position` (ending where the log starts, if the records at `position` were deleted). */
  async #fetch(position: number): Promise<CommittedRecords> {
    const { topic, partition } = this.#tp;
    const metadata = await this.#cluster.topic(topic, this.#takeRefresh());
    const leader = metadata.partitions[partition]?.leader;
    if (leader === undefined || leader < 0) throw new EddyError('TRANSPORT_FAILED', `${topic}[${partition}] has no leader`, { retriable: true });
    const request = [{ topicId: metadata.id, partitions: [{ partition, currentLeaderEpoch: -1, fetchOffset: BigInt(position), lastFetchedEpoch: -1, partitionMaxBytes: PARTITION_MAX_BYTES }] }];
    let response: FetchResponse;
    try {
      response = await fetchRaw.async(await this.#cluster.fetchConnection(leader), FETCH_MAX_WAIT_MS, 1, FETCH_MAX_BYTES, FetchIsolationLevels.READ_COMMITTED, 0, -1, request, [], '');
    } catch (error) {
      if (hasKafkaError(error, 'OFFSET_OUT_OF_RANGE')) return CommittedRecords.none(this.#tp, await this.#logStartAfter(position));
      throw error;
    }
    const result = response.responses[0]?.partitions.find(({ partitionIndex }) => partitionIndex === partition);
    return result ? new CommittedRecords(this.#tp, result, position) : CommittedRecords.none(this.#tp, position);
  }

  /** Where the log starts, after records below it were deleted (retention, DeleteRecords) before they were read. */
  async #logStartAfter(position: number): Promise<number> {
    const { topic, partition } = this.#tp;
    const start = (await this.#cluster.listOffsets([this.#tp], 'earliest')).get(partitionKey(topic, partition)) ?? position;
    if (start > position) {
      this.#settings.logger.warn({ component: 'eddy-kafka', partition: `${topic}[${partition}]`, from: position, to: start }, 'records were deleted before they were read; reading on from where the partition starts now');
    }
    return start;
  }

  /**
   * Runs `attempt` until it gives an answer (undefined: none yet), backing off after failures
   * that a retry may mend; fails once a minute has passed without one.
   */
  async #untilAnswered<T>(doing: string, attempt: () => Promise<T | undefined>): Promise<T> {
    const deadline = systemClock.now() + STALL_TIMEOUT_MS;
    let lastError: unknown;
    for (let failures = 0; ; failures++) {
      try {
        const answer = await attempt();
        if (answer !== undefined) return answer;
      } catch (error) {
        if (this.#closed || !isRetriable(error)) throw transportError(`${this.#where} (${doing})`, error);
        lastError = error;
        this.#refreshMetadata = true;
      }
      if (this.#closed) throw new EddyError('TRANSPORT_FAILED', `${this.#where}: the read was closed`);
      if (systemClock.now() >= deadline) {
        const why = lastError === undefined ? '' : `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
        throw new EddyError('TRANSPORT_FAILED', `${this.#where}: no progress for ${STALL_TIMEOUT_MS} ms (${doing})${why}`, { cause: lastError, retriable: true });
      }
      await sleep(Math.min(BACKOFF_MS[1], BACKOFF_MS[0] * 2 ** failures));
    }
  }

  #takeRefresh(): boolean {
    const refresh = this.#refreshMetadata;
    this.#refreshMetadata = false;
    return refresh;
  }
}
