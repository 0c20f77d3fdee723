import { Buffer } from 'node:buffer';
import { EddyError, type OutgoingRecord, type TopicPartitionOffset, type TransactionalProducer } from '@eddy/core';
import { addOffsetsToTxnV4, type ClusterMetadata } from '@platformatic/kafka';
import { isFenced, isRetriable, recordRefusal, transportError } from './errors.js';
import type { KafkaSettings } from './options.js';
import { createProducer, KafkaProducer, type EddyProducer, type LimitsOf } from './producer.js';
import { hasKafkaError } from './protocol-errors.js';

/** Who commits a transaction's consumer offsets: the app's member of the group, or the group's coordinator directly when none is here. */
export type TransactionalOffsetCommit = (transaction: TransactionIdentity, groupId: string, offsets: readonly TopicPartitionOffset[]) => Promise<void>;

/** What a TxnOffsetCommit names of the producer whose transaction it joins. */
export interface TransactionIdentity {
  readonly transactionalId: string;
  readonly producerId: bigint;
  readonly producerEpoch: number;
}

type Transaction = Awaited<ReturnType<EddyProducer['beginTransaction']>>;

/** Attempts at registering a transactional id while its previous producer's transaction completes. */
const initAttempts = 8;

/**
 * A transactional producer (exactly-once), one per task: its transactional id is stable per
 * task, so the producer of a task's new owner fences the old one. Sends are coalesced like
 * {@link KafkaProducer}'s, into the open transaction.
 *
 * A failed transactional request leaves the producer broken for good (it is never registered
 * again, which would fence the task's new owner): the runtime replaces the task, and with it the
 * producer.
 */
export class KafkaTransactionalProducer extends KafkaProducer implements TransactionalProducer {
  readonly transactionalId: string;
  readonly #commitOffsets: TransactionalOffsetCommit;
  /** The client's transaction: opened on connect (to register the id), then by `begin`. */
  #transaction: Transaction | undefined;
  /** Whether `begin` opened the transaction (and `commit` or `abort` has not ended it yet). */
  #open = false;
  /** Whether the broker knows the open transaction (records or offsets joined it); one it does not know ends on the client only. */
  #joined = false;
  /** Groups whose offsets joined the open transaction (AddOffsetsToTxn). */
  readonly #groups = new Set<string>();
  #failure: EddyError | undefined;
  #closed = false;

  private constructor(
    producer: EddyProducer,
    settings: KafkaSettings,
    onClose: (producer: KafkaProducer) => void,
    limitsOf: LimitsOf,
    transactionalId: string,
    transaction: Transaction,
    commitOffsets: TransactionalOffsetCommit,
  ) {
    super(producer, settings, onClose, limitsOf);
    this.transactionalId = transactionalId;
    this.#transaction = transaction;
    this.#commitOffsets = commitOffsets;
  }

  /**
   * Connects a producer with this transactional id and registers the id with its transaction
   * coordinator (InitProducerId). That fences every older producer of the id: the coordinator
   * aborts its open transaction (and answers CONCURRENT_TRANSACTIONS until the abort is complete,
   * which is waited through), and its next send or commit fails. Only then may the new owner read
   * the task's committed state.
   */
  static async connectTransactional(
    settings: KafkaSettings,
    transactionalId: string,
    onClose: (producer: KafkaProducer) => void,
    limitsOf: LimitsOf,
    commitOffsets: TransactionalOffsetCommit,
  ): Promise<KafkaTransactionalProducer> {
    for (let attempt = 1; ; attempt++) {
      const producer = createProducer(settings, transactionalId);
      try {
        // The client registers the id with the first transaction; it stays open on the client
        // only (the broker knows a transaction once records or offsets join it). A new producer
        // names no earlier producer id and epoch (-1): the client's default (0, 0) claims to be
        // producer 0, which the coordinator of an id used before answers with PRODUCER_FENCED.
        const transaction = await producer.beginTransaction({ producerId: -1n, producerEpoch: -1 });
        return new KafkaTransactionalProducer(producer, settings, onClose, limitsOf, transactionalId, transaction, commitOffsets);
      } catch (error) {
        await producer.close().catch(() => undefined);
        if (attempt >= initAttempts || isFenced(error) || !isRetriable(error)) throw transactionError(`starting transactional producer ${transactionalId}`, transactionalId, error);
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
  }

  async begin(): Promise<void> {
    this.#usable('begin');
    if (this.#open) throw new EddyError('TRANSPORT_FAILED', `transactional producer ${this.transactionalId}: a transaction is open already`);
    if (!this.#transaction) {
      try {
        this.#transaction = await this.client.beginTransaction();
      } catch (error) {
        throw this.#broken('beginning a transaction', error);
      }
    }
    this.#open = true;
    this.#joined = false;
    this.#groups.clear();
  }

  /**
   * Commits consumer group offsets (the next offset to read) with the open transaction: the group
   * joins the transaction (AddOffsetsToTxn), then the offsets go to the group's coordinator
   * (TxnOffsetCommit), which makes them visible only if the transaction commits.
   */
  async sendOffsets(groupId: string, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.#current('sendOffsets');
    if (offsets.length === 0) return;
    const identity = this.#identity();
    try {
      if (!this.#groups.has(groupId)) {
        await this.#addOffsetsToTransaction(identity, groupId);
        this.#groups.add(groupId);
        this.#joined = true;
      }
      await this.#commitOffsets(identity, groupId, offsets);
    } catch (error) {
      throw this.#broken(`committing offsets of group ${groupId} in the transaction`, error);
    }
  }

  async commit(): Promise<void> {
    const transaction = this.#current('commit');
    await this.idle();
    if (this.#failure) throw this.#failure;
    try {
      if (this.#joined) await transaction.commit();
      else await transaction.cancel();
    } catch (error) {
      throw this.#broken('committing the transaction', error);
    } finally {
      this.#open = false;
      this.#transaction = undefined;
    }
  }

  async abort(): Promise<void> {
    if (!this.#open || !this.#transaction) return;
    const transaction = this.#transaction;
    this.#open = false;
    this.#transaction = undefined;
    await this.idle();
    try {
      if (this.#joined) await transaction.abort();
      else await transaction.cancel();
    } catch (error) {
      throw this.#broken('aborting the transaction', error);
    }
  }

  /** Aborts an open transaction (best effort), then disconnects. */
  override close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      const abort = this.#open ? this.abort().catch(() => undefined) : Promise.resolve();
      return abort.then(() => super.close());
    }
    return super.close();
  }

  /** A refused record dooms the transaction (and the task's work since its last commit): only the topic's limits, checked before sending, keep records out of it. */
  protected override get isolatesRefusals(): boolean {
    return false;
  }

  protected override produce(records: readonly OutgoingRecord[]): Promise<Map<string, number>> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (!this.#open || !this.#transaction) {
      return Promise.reject(new EddyError('TRANSPORT_FAILED', `transactional producer ${this.transactionalId}: send outside a transaction`));
    }
    this.#joined = true;
    return super.produce(records).catch((error: unknown) => {
      throw this.#broken('producing in the transaction', error);
    });
  }

  protected override get transactionalIdOrNull(): string | null {
    return this.transactionalId;
  }

  /** AddPartitionsToTxn for the partitions the open transaction does not hold yet (the client's transaction keeps count). */
  protected override async joinTransaction(metadata: ClusterMetadata, partitions: ReadonlyArray<{ topic: string; partition: number }>): Promise<void> {
    await this.#transaction!.addPartitions(metadata, partitions.map(({ topic, partition }) => ({ topic, partition, value: Buffer.alloc(0) })));
  }

  #identity(): TransactionIdentity {
    const { producerId, producerEpoch } = this.client;
    if (producerId === undefined || producerEpoch === undefined) throw new EddyError('TRANSPORT_FAILED', `transactional producer ${this.transactionalId} has no producer id`);
    return { transactionalId: this.transactionalId, producerId, producerEpoch };
  }

  /** AddOffsetsToTxn at the transaction's coordinator, through the public protocol API (retried while the coordinator completes an earlier transaction). */
  async #addOffsetsToTransaction({ transactionalId, producerId, producerEpoch }: TransactionIdentity, groupId: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const metadata = this.client.currentMetadata ?? (await this.client.metadata({ topics: [] }));
        const broker = metadata.brokers.get(this.client.coordinatorId);
        if (!broker) throw new EddyError('TRANSPORT_FAILED', `the transaction coordinator ${this.client.coordinatorId} of ${transactionalId} is not in the cluster's metadata`, { retriable: true });
        await addOffsetsToTxnV4.api.async(await this.client.connections.get(broker), transactionalId, producerId, producerEpoch, groupId);
        return;
      } catch (error) {
        if (attempt >= initAttempts || !hasKafkaError(error, 'CONCURRENT_TRANSACTIONS', 'COORDINATOR_LOAD_IN_PROGRESS')) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20 * 2 ** attempt));
      }
    }
  }

  #usable(what: string): void {
    if (this.#failure) throw this.#failure;
    if (this.#closed) throw new EddyError('TRANSPORT_FAILED', `${what}: transactional producer ${this.transactionalId} is closed`);
  }

  #current(what: string): Transaction {
    this.#usable(what);
    if (!this.#open || !this.#transaction) throw new EddyError('TRANSPORT_FAILED', `${what}: transactional producer ${this.transactionalId} has no open transaction`);
    return this.#transaction;
  }

  /** A failed transactional request leaves the transaction (and the producer) unusable. */
  #broken(what: string, error: unknown): EddyError {
    const failure = transactionError(what, this.transactionalId, error);
    this.#failure ??= failure;
    return failure;
  }
}

/** A failure of a transactional producer; fencing says so, and is never retriable. */
function transactionError(what: string, transactionalId: string, error: unknown): EddyError {
  if (error instanceof EddyError) return error;
  const refusal = recordRefusal(error);
  if (refusal !== undefined) {
    return new EddyError('RECORD_REJECTED', `${what}: the broker refused a record of the transaction (${refusal}) of transactional id ${transactionalId}: ${transportError('producing', error).message}`, {
      cause: error,
      retriable: false,
    });
  }
  if (isFenced(error)) {
    return new EddyError('TRANSPORT_FAILED', `${what}: transactional id ${transactionalId} was fenced: a newer producer (the task's next owner) took it over`, {
      cause: error,
      retriable: false,
    });
  }
  return transportError(`${what} (transactional id ${transactionalId})`, error);
}
