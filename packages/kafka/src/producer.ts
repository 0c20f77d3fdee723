import { EddyError, partitionKey, RecordsRejectedError, systemClock, type OutgoingRecord, type TopicPartitionOffset, type TransportProducer } from '@eddy/core';
import { Producer, type ClusterMetadata } from '@platformatic/kafka';
import { clientOptions, retryDelayMs } from './cluster.js';
import { splitRequests, topicsOf, type PendingSend } from './coalescing.js';
import { isRetriable, transportError } from './errors.js';
import type { KafkaSettings } from './options.js';
import { responseOf } from './protocol-errors.js';
import { encodeBatch, produceRaw, type PartitionBatch } from './produce-request.js';
import { sendIsolatingRefusals } from './refusals.js';
import type { TopicLimits } from './topic-limits.js';

/** The limits of a topic, as far as they are known (see topic-limits.ts). */
export type LimitsOf = (topic: string) => Promise<TopicLimits>;

/** The client's producer: it registers the producer id (and transactional id) and runs transactions; records go through produce-request.ts. */
export type EddyProducer = Producer;

/**
 * An idempotent producer (acks from all in-sync replicas, sequence numbers per partition) that
 * never creates a topic: topics come from ensureTopics, and a typo must fail, not make a topic
 * with broker defaults. With a transactional id, a transactional one. Its id, epoch and
 * transactions are the client's; the records Eddy encodes and sends itself (produce-request.ts).
 */
export function createProducer(settings: KafkaSettings, transactionalId?: string): EddyProducer {
  const options = clientOptions(settings, { retrying: true });
  // The client takes fewer than 2 retries of an idempotent producer to mean retrying forever.
  // Its `timeout` is the transaction timeout it registers (InitProducerId; our sends set their
  // own): left at the client's 5 s, the broker aborted every transaction of a commit interval
  // longer than that, and such a task never committed.
  const transactional = transactionalId === undefined ? {} : { transactionalId, timeout: settings.transactionTimeoutMs };
  return new Producer({ ...options, retries: Math.max(2, options.retries), idempotent: true, autocreateTopics: false, ...transactional });
}

/**
 * An idempotent @platformatic/kafka producer (acks from all in-sync replicas) behind Eddy's
 * producer contract.
 *
 * Tasks send concurrently, and an idempotent producer has one request in flight at a time.
 * Calls that arrive while a request is in flight are coalesced into the next one (split so no
 * request grows past 768 KiB, see coalescing.ts), and each call still learns the offsets of its
 * own records: within one request the records of a partition get consecutive offsets from the
 * partition's base offset, in the order they were given. Records the broker refuses for
 * themselves are told from the others by sending again (refusals.ts); the transactional producer
 * is in transactional-producer.ts.
 */
export class KafkaProducer implements TransportProducer {
  #producer: EddyProducer;
  /** Makes a fresh producer (a new producer id); undefined for transactional producers. */
  #replacement: (() => EddyProducer) | undefined;
  readonly #onClose: (producer: KafkaProducer) => void;
  readonly #limitsOf: LimitsOf;
  readonly #settings: KafkaSettings;
  /** The next sequence number per partition (idempotence), for the client producer's id and epoch. */
  #sequences = new Map<string, number>();
  #queue: PendingSend[] = [];
  #inFlight: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  protected constructor(producer: EddyProducer, settings: KafkaSettings, onClose: (producer: KafkaProducer) => void, limitsOf: LimitsOf) {
    this.#producer = producer;
    this.#settings = settings;
    this.#onClose = onClose;
    this.#limitsOf = limitsOf;
  }

  /** Connects a producer (and gets its producer id) before any send. */
  static async connect(settings: KafkaSettings, onClose: (producer: KafkaProducer) => void, limitsOf: LimitsOf): Promise<KafkaProducer> {
    const create = () => createProducer(settings);
    const producer = create();
    try {
      await producer.initIdempotentProducer({});
    } catch (error) {
      await producer.close().catch(() => undefined);
      throw transportError('connecting the producer', error);
    }
    const connected = new KafkaProducer(producer, settings, onClose, limitsOf);
    connected.#replacement = create;
    return connected;
  }

  /**
   * A request that failed may have been written by the broker all the same (its answer was
   * lost). The client then sends the next records with the sequence numbers of the lost ones,
   * which the broker would take for duplicates of what it holds and drop. A fresh producer id
   * starts clean; the failed records are sent again by the runtime, so the worst case is a
   * duplicate, never a loss.
   */
  async #replaceAfterFailure(): Promise<void> {
    if (!this.#replacement) return;
    const old = this.#producer;
    this.#producer = this.#replacement();
    this.#sequences = new Map();
    await old.close().catch(() => undefined);
  }

  /**
   * Writes records to their (explicit) partitions and resolves, once all are acknowledged, with
   * the offset of the last record written to each partition.
   */
  send(records: readonly OutgoingRecord[]): Promise<readonly TopicPartitionOffset[]> {
    if (this.#closing) return Promise.reject(new EddyError('TRANSPORT_FAILED', 'send: the producer is closed'));
    if (records.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.#queue.push({ records, lastOffsets: new Map(), refused: [], resolve, reject });
      this.#pump();
    });
  }

  /** Waits for the sends already made, then disconnects. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.idle();
      this.#onClose(this);
      await this.#producer.close().catch(() => undefined);
    })();
    return this.#closing;
  }

  /** The client's producer, for the transactional requests of a subclass. */
  protected get client(): EddyProducer {
    return this.#producer;
  }

  /** Resolves once no send is queued or in flight. */
  protected async idle(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
  }

  /**
   * Writes records (acks from every in-sync replica) and resolves with the base offset of each
   * partition's batch: one batch per partition, one request per leader. A partition that fails
   * with an error a retry may mend (a leader moving) goes again, with fresh metadata and the same
   * sequence numbers; any other failure rejects, and the sequence numbers of the whole call count
   * as unused, so a batch the broker wrote goes again unchanged and is known for a duplicate.
   */
  protected async produce(records: readonly OutgoingRecord[]): Promise<Map<string, number>> {
    const client = this.#producer;
    if (client.producerId === undefined) await client.initIdempotentProducer({});
    const producer = { producerId: client.producerId!, producerEpoch: client.producerEpoch!, transactional: this.transactionalIdOrNull !== null };
    // One group per partition, each with its key (for sequences and offsets); per record no string
    // is made: a topic's groups are found by partition number.
    let pending: Array<[string, { topic: string; partition: number; records: OutgoingRecord[] }]> = [];
    const byTopic = new Map<string, Array<{ topic: string; partition: number; records: OutgoingRecord[] }>>();
    for (const record of records) {
      const { topic, partition } = record;
      let ofTopic = byTopic.get(topic);
      if (!ofTopic) byTopic.set(topic, (ofTopic = []));
      let group = ofTopic[partition];
      if (!group) pending.push([partitionKey(topic, partition), (group = ofTopic[partition] = { topic, partition, records: [] })]);
      group.records.push(record);
    }
    const topics = [...byTopic.keys()];
    const sequencesBefore = new Map(this.#sequences);
    const offsets = new Map<string, number>();
    try {
      for (let attempt = 1; ; attempt++) {
        const metadata = await client.metadata({ topics, autocreateTopics: false, forceUpdate: attempt > 1 });
        await this.joinTransaction(metadata, pending.map(([, { topic, partition }]) => ({ topic, partition })));
        const byLeader = new Map<number, Array<[string, { topic: string; partition: number; records: OutgoingRecord[] }]>>();
        for (const entry of pending) {
          const leader = metadata.topics.get(entry[1].topic)?.partitions[entry[1].partition]?.leader;
          if (leader === undefined || leader < 0) throw new EddyError('TRANSPORT_FAILED', `${entry[1].topic}[${entry[1].partition}] has no leader`, { retriable: true });
          let ofLeader = byLeader.get(leader);
          if (!ofLeader) byLeader.set(leader, (ofLeader = []));
          ofLeader.push(entry);
        }
        const failed: typeof pending = [];
        let failure: unknown;
        await Promise.all(
          [...byLeader].map(async ([leader, entries]) => {
            const batches: PartitionBatch[] = entries.map(([key, { topic, partition, records: ofPartition }]) => ({ topic, partition, batch: encodeBatch(ofPartition, producer, this.#sequences.get(key) ?? 0) }));
            let response;
            try {
              const broker = metadata.brokers.get(leader);
              if (!broker) throw new EddyError('TRANSPORT_FAILED', `broker ${leader} is not in the cluster's metadata`, { retriable: true });
              response = await produceRaw.async(await client.connections.get(broker), this.transactionalIdOrNull, -1, 30_000, batches);
            } catch (error) {
              response = responseOf<Awaited<ReturnType<typeof produceRaw.async>>>(error);
              failure ??= error;
              if (!response) {
                failed.push(...entries);
                return;
              }
            }
            const sent = new Map(entries);
            for (const topicResponse of response.responses) {
              for (const { index, errorCode, baseOffset } of topicResponse.partitionResponses) {
                const key = partitionKey(topicResponse.name, index);
                const group = sent.get(key);
                if (!group) continue;
                const entry: (typeof entries)[number] = [key, group];
                if (errorCode !== 0) {
                  failed.push(entry);
                  continue;
                }
                offsets.set(key, Number(baseOffset));
                this.#sequences.set(key, (this.#sequences.get(key) ?? 0) + entry[1].records.length);
              }
            }
          }),
        );
        if (failed.length === 0) return offsets;
        if (attempt > this.#settings.retry.retries || !isRetriable(failure)) throw failure;
        pending = failed;
        await new Promise((resolve) => setTimeout(resolve, retryDelayMs(this.#settings, attempt)));
      }
    } catch (error) {
      this.#sequences = sequencesBefore;
      throw error;
    }
  }

  /** The transactional id produce requests name (null: not transactional). */
  protected get transactionalIdOrNull(): string | null {
    return null;
  }

  /** Under a transaction: registers the partitions with it before records go to them. */
  protected async joinTransaction(_metadata: ClusterMetadata, _partitions: ReadonlyArray<{ topic: string; partition: number }>): Promise<void> {}

  #pump(): void {
    if (this.#inFlight || this.#queue.length === 0) return;
    const pending = this.#queue;
    this.#queue = [];
    this.#inFlight = this.#sendAll(pending).finally(() => {
      this.#inFlight = undefined;
      this.#pump();
    });
  }

  async #sendAll(pending: readonly PendingSend[]): Promise<void> {
    try {
      const limits = new Map<string, TopicLimits>();
      for (const send of pending) for (const { topic } of send.records) if (!limits.has(topic)) limits.set(topic, await this.#limitsOf(topic));
      const sender = { produce: (records: readonly OutgoingRecord[]) => this.produce(records), isolatesRefusals: this.isolatesRefusals };
      for (const entries of splitRequests(pending, limits, systemClock.now())) await sendIsolatingRefusals(entries, sender);
    } catch (error) {
      const failure = transportError(`producing to ${topicsOf(pending)}`, error);
      await this.#replaceAfterFailure();
      for (const send of pending) send.reject(failure);
      return;
    }
    for (const send of pending) {
      const offsets: TopicPartitionOffset[] = [];
      for (const [topic, partitions] of send.lastOffsets) for (const [partition, offset] of partitions) offsets.push({ topic, partition, offset });
      if (send.refused.length > 0) send.reject(new RecordsRejectedError(send.refused, offsets));
      else send.resolve(offsets);
    }
  }

  /** Whether a record the broker refuses can be told from the others by sending again (not inside a transaction). */
  protected get isolatesRefusals(): boolean {
    return true;
  }
}

