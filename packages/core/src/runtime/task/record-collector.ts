import { deadLetterTopic } from '../../dsl/topology.js';
import { describeError, EddyError, RecordsRejectedError, type ErrorCode } from '../../errors.js';
import type { Headers, IncomingRecord, OutgoingRecord, TopicPartitionOffset } from '../../transport/types.js';
import type { Origin, Signal } from '../signals.js';
import type { TaskHost } from './host.js';

const encoder = new TextEncoder();

/** Exactly-once: how the collector's sends join the task's transaction (see commit.ts). */
export interface TransactionSends {
  /** A send or commit of the transaction failed: nothing more is sent. */
  readonly failed: boolean;
  /** Sends into the open transaction, beginning one if none is open. */
  send(records: readonly OutgoingRecord[]): Promise<readonly TopicPartitionOffset[]>;
  /** A send failed: the transaction, and the task's state since the last commit, are lost. */
  fail(error: unknown): void;
}

/** What the collector needs of its task. */
export interface CollectorOptions {
  readonly host: TaskHost;
  readonly taskId: string;
  readonly partition: number;
  /** Exactly-once: the task's transaction; undefined sends with the app's producer. */
  readonly transaction: TransactionSends | undefined;
  /** Whether `topic` is the changelog of one of the task's stores. */
  isChangelog(topic: string): boolean;
  /** The task takes no more records (a record the policy stops on, or a fatal error). */
  halt(): void;
}

/**
 * Everything a task writes: the outbox its operators fill, the sends that take it to the log
 * (one producer call per flush), what they wrote, and the dead letters, including records the log
 * refused. Like Kafka Streams' RecordCollector.
 */
export class RecordCollector {
  #outbox: OutgoingRecord[] = [];
  readonly #sends = new Set<Promise<readonly TopicPartitionOffset[]>>();
  /** The records of each send in flight. */
  readonly #sending = new Map<Promise<readonly TopicPartitionOffset[]>, readonly OutgoingRecord[]>();
  /** Per topic, by partition, the offset of the last record written there. */
  readonly #lastWritten = new Map<string, number[]>();
  /** Since when sends have failed with none going through (undefined: the last one went through). */
  #sendFailingSince: number | undefined;

  constructor(private readonly options: CollectorOptions) {}

  /** Queues a record; it goes out with the next flush. */
  produce(record: OutgoingRecord): void {
    this.#outbox.push(record);
  }

  /** Whether sends are in flight or queued (records on their way to a topic). */
  get sending(): boolean {
    return this.#sends.size > 0 || this.#outbox.length > 0;
  }

  /** Whether records for a partition of `topic` are queued or in flight (a scan: for when a reader waits, not per record). */
  sendingTo(topic: string, partition: number): boolean {
    const there = (record: OutgoingRecord) => record.partition === partition && record.topic === topic;
    if (this.#outbox.some(there)) return true;
    for (const records of this.#sending.values()) if (records.some(there)) return true;
    return false;
  }

  /** The sends in flight, each resolving to the last offsets it wrote per partition. */
  get inFlight(): ReadonlySet<Promise<readonly TopicPartitionOffset[]>> {
    return this.#sends;
  }

  /** Since when sends have failed with none going through, if they do. */
  get sendFailingSince(): number | undefined {
    return this.#sendFailingSince;
  }

  /** The offset of the last record this task wrote (acknowledged) to its partition of `topic`. */
  lastWritten(topic: string, partition = this.options.partition): number | undefined {
    return this.#lastWritten.get(topic)?.[partition];
  }

  /** Sends what the operators produced since the last flush, as one producer call. */
  flush(): void {
    if (this.#outbox.length === 0) return;
    if (this.options.transaction) return this.#flushTransaction(this.options.transaction);
    const { host, taskId } = this.options;
    const records = this.#outbox;
    this.#outbox = [];
    const send = host.producer.send(records).then(
      (offsets) => this.#sent(offsets),
      (error: unknown) => {
        if (error instanceof RecordsRejectedError) return this.#sent(this.#rejected(error));
        // Nothing is lost: the records go out again with the next flush, and the commit waiting for
        // this send fails, so no offset moves past them until they are acknowledged.
        this.#outbox = [...records, ...this.#outbox];
        this.#sendFailingSince ??= host.clock.now();
        host.log('warn', 'send failed; the records will be sent again', { task: taskId, records: records.length, error: describeError(error) });
        throw error;
      },
    );
    this.#track(send, records);
  }

  /**
   * Exactly-once: sends into the open transaction, beginning one if none is open. A failed send
   * dooms the transaction: nothing more is sent, and the commit fails. Records the log refused
   * before they joined the transaction do not doom it.
   */
  #flushTransaction(transaction: TransactionSends): void {
    if (transaction.failed) return;
    const records = this.#outbox;
    this.#outbox = [];
    const send = transaction.send(records).then(
      (offsets) => this.#sent(offsets),
      (error: unknown) => {
        if (error instanceof RecordsRejectedError) return this.#sent(this.#rejected(error));
        transaction.fail(error);
        throw error;
      },
    );
    this.#track(send, records);
  }

  #track(send: Promise<readonly TopicPartitionOffset[]>, records: readonly OutgoingRecord[]): void {
    const tracked = send.finally(() => {
      this.#sends.delete(tracked);
      this.#sending.delete(tracked);
    });
    this.#sends.add(tracked);
    this.#sending.set(tracked, records);
    tracked.catch(() => undefined);
  }

  /** Records were written (and these are their last offsets per partition). */
  #sent(offsets: readonly TopicPartitionOffset[]): readonly TopicPartitionOffset[] {
    this.#sendFailingSince = undefined;
    for (const { topic, partition, offset } of offsets) {
      let written = this.#lastWritten.get(topic);
      if (!written) this.#lastWritten.set(topic, (written = []));
      if (!(written[partition]! >= offset)) written[partition] = offset;
    }
    return offsets;
  }

  /**
   * Records the log refused for themselves go to the dead letters with its reason (or stop the app
   * under `onError: 'stop'`): sending them again would only be refused again. A changelog record,
   * or a dead letter even without its value, cannot be given up that way: the app stops. Returns
   * the offsets of what was written.
   */
  #rejected(error: RecordsRejectedError): readonly TopicPartitionOffset[] {
    const { host, taskId } = this.options;
    const deadLetters = deadLetterTopic(host.appId);
    for (const { record, error: refusal, reason } of error.refused) {
      host.log('warn', 'the log refused a record', { task: taskId, topic: record.topic, partition: record.partition, reason, error: refusal.message });
      if (this.options.isChangelog(record.topic)) {
        this.#failTask(new EddyError('STATE_FAILED', `task ${taskId}: the log refused a state change for ${record.topic} (${reason}), so the state cannot be kept durable; check the topic's limits (max.message.bytes): ${refusal.message}`, { cause: refusal }));
      } else if (record.topic === deadLetters) {
        if (record.value !== null || record.key !== null) {
          // Kept without the key and value it could not hold; the headers still say what failed.
          this.produce({ ...record, key: null, value: null, headers: { ...record.headers, 'dropped': `key and value (${reason}: ${refusal.message})` } });
        } else {
          this.#failTask(new EddyError('RECORD_REJECTED', `task ${taskId}: the dead-letter topic ${deadLetters} refused a dead letter (${reason}): ${refusal.message}`, { cause: refusal }));
        }
      } else {
        // An output was counted in recordsOut when queued (sink.ts); this one was not written.
        if (!host.topology.repartitionTopics.has(record.topic)) host.metrics.recordsOut--;
        const tooLarge = reason === 'MESSAGE_TOO_LARGE' || reason === 'RECORD_LIST_TOO_LARGE';
        const failure = new EddyError('RECORD_REJECTED', `the log refused a record for ${record.topic}[${record.partition}] (${reason}): ${refusal.message}`, { cause: refusal });
        this.deadLetter(failure, `to ${record.topic}`, undefined, record.key, tooLarge ? null : record.value, { 'error.reason': reason, 'timestamp': String(record.timestamp), ...(tooLarge ? { dropped: 'value (too large)' } : {}) });
      }
    }
    // The dead letters go out now; the commit waits for them too.
    queueMicrotask(() => this.flush());
    return error.written;
  }

  #failTask(error: EddyError): void {
    this.options.halt();
    this.options.host.fatal(error);
  }

  /**
   * An error raised while processing `signal` at step `step`: a dead letter with the signal's key
   * (`keyOf`: see RecordDecoder.keyOf) and value, or a stop, as the app's `onError` policy says.
   */
  deadLetterSignal(error: unknown, signal: Signal | undefined, step: string, code: ErrorCode, keyOf: (signal: Exclude<Signal, { type: 'tick' }>) => unknown): void {
    const origin = signal && 'origin' in signal ? signal.origin : undefined;
    const failure = error instanceof EddyError ? error : new EddyError(code, `${step}: ${describeError(error)}`, { cause: error });
    const value = signal && signal.type !== 'tick' ? safeJson(signalValue(signal)) : null;
    const key = signal && signal.type !== 'tick' ? safeJson(keyOf(signal)) : null;
    this.deadLetter(failure, step, origin, key, value);
  }

  /** A record read from the log that cannot be processed, dead-lettered as it came. */
  deadLetterRaw(incoming: IncomingRecord, error: EddyError, step: string): void {
    this.deadLetter(error, step, { topic: incoming.topic, partition: incoming.partition, offset: incoming.offset }, incoming.key, incoming.value);
  }

  /**
   * A failed record goes to the dead-letter topic, or, when the app's `onError` policy says stop,
   * halts the task. `headers` adds to the error's own (`error`, `error.code`, `step`, `task`, and
   * the origin's place).
   */
  deadLetter(error: EddyError, step: string, origin: Origin | undefined, key: Uint8Array | null, value: Uint8Array | null, headers: Record<string, string> = {}): void {
    const { host, taskId } = this.options;
    if (!host.recordFailed(error)) {
      this.options.halt();
      return;
    }
    host.metrics.deadLetters++;
    Object.assign(headers, { 'error': error.message, 'error.code': error.code, 'step': step, 'task': taskId });
    if (origin) {
      headers['topic'] = origin.topic;
      headers['partition'] = String(origin.partition);
      headers['offset'] = String(origin.offset);
    }
    host.log('warn', 'record dead-lettered', { code: error.code, step, error: error.message, ...origin });
    this.produce({ topic: deadLetterTopic(host.appId), partition: 0, key, value, timestamp: host.clock.now(), headers: headers as Headers });
  }
}

/** What a dead letter holds of a signal's value: a window result as `{ start, end, value }`. */
function signalValue(signal: Exclude<Signal, { type: 'tick' }>): unknown {
  return signal.type === 'window' ? { start: signal.start, end: signal.end, value: signal.value } : signal.value;
}

/** A value as dead-letter bytes: bytes as they are, anything else as JSON (or its text, if not JSON). */
function safeJson(value: unknown): Uint8Array | null {
  if (value === undefined) return null;
  if (value instanceof Uint8Array) return value;
  try {
    return encoder.encode(JSON.stringify(value) ?? 'null');
  } catch {
    return encoder.encode(JSON.stringify(String(value)));
  }
}
