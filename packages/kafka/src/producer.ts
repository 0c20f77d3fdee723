import { EddyError, type OutgoingRecord, type TopicPartitionOffset, type TransportProducer } from '@eddy/core';
import kafkajs from 'kafkajs';
import type { Kafka, Message, Producer, RecordMetadata, TopicMessages } from 'kafkajs';
import { transportError } from './errors.js';
import type { KafkaSettings } from './options.js';
import { approximateSize, partitionKey, toKafkaMessage } from './records.js';

const { Partitioners } = kafkajs;

/**
 * Bytes of records per produce request. Kafka's default limit is 1 MiB per record batch (one per
 * partition per request); staying well below it keeps a large flush from failing as too large.
 */
const maxRequestBytes = 768 * 1024;

/** One `send` call waiting for its records to be acknowledged. */
interface PendingSend {
  readonly records: readonly OutgoingRecord[];
  /** The offset of the last record of this call in each partition, filled in as requests succeed. */
  readonly lastOffsets: Map<string, TopicPartitionOffset>;
  readonly resolve: (offsets: readonly TopicPartitionOffset[]) => void;
  readonly reject: (error: EddyError) => void;
}

/**
 * An idempotent kafkajs producer (acks from all in-sync replicas) behind Eddy's producer contract.
 *
 * Tasks send concurrently; kafkajs would serialize their requests one round trip each. Instead,
 * calls that arrive while a request is in flight are coalesced into the next one (split so no
 * request grows past {@link maxRequestBytes}), and each call still learns the offsets of its own
 * records: within one request the records of a partition get consecutive offsets from the
 * partition's base offset, in the order they were given.
 */
export class KafkaProducer implements TransportProducer {
  readonly #producer: Producer;
  readonly #onClose: (producer: KafkaProducer) => void;
  #queue: PendingSend[] = [];
  #inFlight: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  private constructor(producer: Producer, onClose: (producer: KafkaProducer) => void) {
    this.#producer = producer;
    this.#onClose = onClose;
  }

  /** Connects a producer (and gets its producer id) before any send. */
  static async connect(kafka: Kafka, settings: KafkaSettings, onClose: (producer: KafkaProducer) => void): Promise<KafkaProducer> {
    const producer = kafka.producer({
      // Broker-side deduplication of retried requests; kafkajs then sends with acks from all replicas.
      idempotent: true,
      createPartitioner: Partitioners.DefaultPartitioner,
      // Topics come from ensureTopics; a typo must fail, not create a topic with broker defaults.
      allowAutoTopicCreation: false,
      // kafkajs refuses an idempotent producer without retries.
      retry: { ...settings.retry, retries: Math.max(1, settings.retry.retries ?? 1) },
    });
    try {
      await producer.connect();
    } catch (error) {
      throw transportError('connecting the producer', error);
    }
    return new KafkaProducer(producer, onClose);
  }

  /**
   * Writes records to their (explicit) partitions and resolves, once all are acknowledged, with
   * the offset of the last record written to each partition.
   */
  send(records: readonly OutgoingRecord[]): Promise<readonly TopicPartitionOffset[]> {
    if (this.#closing) return Promise.reject(new EddyError('TRANSPORT_FAILED', 'send: the producer is closed'));
    if (records.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.#queue.push({ records, lastOffsets: new Map(), resolve, reject });
      this.#pump();
    });
  }

  /** Waits for the sends already made, then disconnects. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      while (this.#inFlight) await this.#inFlight;
      this.#onClose(this);
      await this.#producer.disconnect().catch(() => undefined);
    })();
    return this.#closing;
  }

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
      for (const request of splitRequests(pending)) {
        const metadata = await this.#producer.sendBatch({ acks: -1, topicMessages: request.topicMessages });
        assignOffsets(request.entries, metadata);
      }
    } catch (error) {
      const failure = transportError(`producing to ${topicsOf(pending)}`, error);
      for (const send of pending) send.reject(failure);
      return;
    }
    for (const send of pending) send.resolve([...send.lastOffsets.values()]);
  }
}

/** One produce request: its messages by topic, and which call each record belongs to, in order. */
interface ProduceRequest {
  readonly topicMessages: TopicMessages[];
  readonly entries: ReadonlyArray<{ readonly record: OutgoingRecord; readonly owner: PendingSend }>;
}

function splitRequests(pending: readonly PendingSend[]): ProduceRequest[] {
  const requests: ProduceRequest[] = [];
  let entries: Array<{ record: OutgoingRecord; owner: PendingSend }> = [];
  let bytes = 0;
  const close = () => {
    if (entries.length === 0) return;
    const byTopic = new Map<string, Message[]>();
    for (const { record } of entries) {
      let messages = byTopic.get(record.topic);
      if (!messages) byTopic.set(record.topic, (messages = []));
      messages.push(toKafkaMessage(record));
    }
    requests.push({ topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })), entries });
    entries = [];
    bytes = 0;
  };
  for (const owner of pending) {
    for (const record of owner.records) {
      const size = approximateSize(record);
      if (bytes + size > maxRequestBytes) close();
      entries.push({ record, owner });
      bytes += size;
    }
  }
  close();
  return requests;
}

/** Gives each record its offset: its partition's base offset plus its position among that partition's records. */
function assignOffsets(entries: ProduceRequest['entries'], metadata: readonly RecordMetadata[]): void {
  const next = new Map<string, number>();
  for (const { topicName, partition, baseOffset } of metadata) {
    if (baseOffset !== undefined) next.set(partitionKey(topicName, partition), Number(baseOffset));
  }
  for (const { record, owner } of entries) {
    const key = partitionKey(record.topic, record.partition);
    const offset = next.get(key);
    if (offset === undefined) throw new EddyError('TRANSPORT_FAILED', `the broker acknowledged no offset for ${record.topic}[${record.partition}]`);
    next.set(key, offset + 1);
    owner.lastOffsets.set(key, { topic: record.topic, partition: record.partition, offset });
  }
}

function topicsOf(pending: readonly PendingSend[]): string {
  return [...new Set(pending.flatMap((send) => send.records.map((record) => record.topic)))].join(', ');
}
