import { readOnlyAsTable } from '../../dsl/topology.js';
import { InputOrder, noSkips, type InputOrderOptions, type InputWait, type Run } from './input-order.js';
import type { IncomingRecord, TopicPartitionOffset } from '../../transport/types.js';
import type { SignalInput } from '../operator.js';
import type { Origin, TickSignal } from '../signals.js';
import type { TaskHost } from './host.js';
import type { HandedOff } from './outgoing-hand-offs.js';
import type { RecordDecoder, SourceNode } from './record-decoder.js';
import type { ReplayGuard } from './replay-guard.js';
import type { TaskStateManager } from './state-manager.js';
import type { StreamTimeKeeper } from './stream-time.js';

/** What a task's input needs of the task. */
export interface TaskInputOptions {
  readonly host: TaskHost;
  readonly sources: readonly SourceNode[];
  /** Where signals enter the operator graph, by source topic. */
  readonly inputs: ReadonlyMap<string, SignalInput>;
  readonly decoder: RecordDecoder;
  readonly replays: ReplayGuard;
  readonly time: StreamTimeKeeper;
  readonly state: TaskStateManager;
  /** The task read input, or moved its replay marks: the next commit records that. */
  progressed(): void;
  /** Sends what the batch produced. */
  flush(): void;
  /** Set when the task processes its inputs in timestamp order (see InputOrder). */
  readonly order?: Pick<InputOrderOptions, 'maxWaitMs' | 'maxBuffered' | 'outlook' | 'expired'>;
}

/**
 * What goes into a task: batches read from its partitions (decoded, replays dropped) and records
 * other tasks hand it, each moving stream time; where it stands in each source; and, before a
 * batch, the evicted state the batch will need, read back so that operators run synchronously.
 */
export class TaskInput {
  /** Per source topic, the next offset to process: what a commit records, where a restart resumes. */
  readonly #positions = new Map<string, TopicPartitionOffset>();
  #processing = false;
  #halted = false;

  /** Set for a task that processes its inputs in timestamp order (see InputOrder). */
  readonly #order: InputOrder | undefined;

  constructor(private readonly options: TaskInputOptions) {
    if (options.order) {
      const { sources, decoder } = options;
      this.#order = new InputOrder({
        ...options.order,
        // Ties: a table's update before a stream record of the same timestamp.
        sources: sources.map((source) => ({ topic: source.topic, rank: this.#drivesStreamTime(source) ? 1 : 0 })),
        timestampsOf: (records) => {
          const source = this.#sourceOf(records[0]!.topic);
          return source?.timestamp ? records.map((record) => decoder.extractTimestamp(source, record)) : records.map((record) => record.timestamp);
        },
      });
    }
  }

  #sourceOf(topic: string): SourceNode | undefined {
    return this.options.sources.find((node) => node.topic === topic);
  }

  /** Whether the task stopped accepting records (after a fatal error, under `onError: 'stop'`, or on close). */
  get halted(): boolean {
    return this.#halted;
  }

  halt(): void {
    this.#halted = true;
    // Never processed, so never committed: the partition's next reader meets them again.
    this.#order?.clear();
  }

  /** Set while a batch is processed: records written then may be handed off (see Task.handOff). */
  get processing(): boolean {
    return this.#processing;
  }

  /** Carries a tick through the operator graph, from every source. */
  tick(tick: TickSignal): void {
    for (const input of this.options.inputs.values()) input.next(tick);
  }

  /**
   * Takes a delivered batch of one partition. A task that orders its inputs (see InputOrder) keeps
   * it until its turn; the runs returned are what can be processed now, in order.
   */
  accept(records: readonly IncomingRecord[]): readonly Run[] {
    if (!this.#order) return [{ topic: records[0]!.topic, records, skips: noSkips }];
    if (this.#halted) return [];
    const now = this.options.host.clock.now();
    this.#order.add(records, now);
    return this.#order.take(now);
  }

  /** What waiting input can be processed now (an input caught up, or the wait ran out). */
  release(now: number): readonly Run[] {
    return this.#order && !this.#halted && this.#order.buffered > 0 ? this.#order.take(now) : [];
  }

  /** Whether the task processes its inputs in timestamp order. */
  get ordered(): boolean {
    return this.#order !== undefined;
  }

  /** Whether records wait for their turn (see InputOrder). */
  get waiting(): boolean {
    return this.#order !== undefined && this.#order.buffered > 0;
  }

  /** The empty input that records wait for, and since when (clock time), if they wait for one. */
  waitingFor(): InputWait | undefined {
    return this.#order?.waiting();
  }

  /** When waiting input should be looked at again, if any waits. */
  wakeUp(now: number): number | undefined {
    return this.#order?.wakeUp(now);
  }

  /**
   * Reads back the evicted state runs of records will need: the keys of their records, and the
   * keys whose windows close by the stream time they reach. Operators then run synchronously.
   */
  async prepare(runs: readonly Run[]): Promise<void> {
    if (!this.options.state.hasEvicted()) return;
    const keys: unknown[] = [];
    let latest = -Infinity;
    for (const { topic, records } of runs) {
      const source = this.#sourceOf(topic);
      if (!source || records.length === 0) continue;
      const decoders = this.options.decoder.decodersOf(source);
      for (const incoming of records) {
        try {
          if (incoming.decoded) keys.push(incoming.decoded.key);
          else if (incoming.key !== null) keys.push(decoders.key(incoming.key));
          if (this.options.host.time === 'event' && incoming.timestamp > latest) latest = incoming.timestamp;
        } catch {
          // A record that does not decode is dead-lettered by process().
        }
      }
      // An extractor's timestamps are only known after decoding values: be safe and load what may close.
      if (source.timestamp) latest = Infinity;
    }
    if (keys.length > 0 || latest > -Infinity) await this.#loadEvicted(keys, latest);
  }

  /** Reads back the evicted state that handed-off records need (see {@link prepare}). */
  async prepareHandOff(records: readonly HandedOff[]): Promise<void> {
    if (!this.options.state.hasEvicted()) return;
    let latest = -Infinity;
    if (this.options.host.time === 'event') for (const record of records) if (record.timestamp > latest) latest = record.timestamp;
    await this.#loadEvicted(records.map((record) => record.key), latest);
  }

  /**
   * Reads back the evicted state that records with these keys need, and what closes by the stream
   * time they reach (`latest`: their largest event time, if it counts).
   */
  async #loadEvicted(keys: readonly unknown[], latest: number): Promise<void> {
    const { host, time } = this.options;
    const now = host.clock.now();
    const streamTime = Math.max(latest, host.time === 'processing' ? now : Math.max(time.current, time.idleStreamTime(now)));
    await this.options.state.load(keys, streamTime);
  }

  /** Whether a source's records move stream time (a topic read only as a table does not), by source, worked out once. */
  #drivesStreamTime(source: SourceNode): boolean {
    let drives = this.#drivesTime.get(source);
    if (drives === undefined) this.#drivesTime.set(source, (drives = !readOnlyAsTable(source, this.options.host.topology.children)));
    return drives;
  }
  readonly #drivesTime = new Map<SourceNode, boolean>();

  /** Processes runs of records (each of one partition, in offset order), and the skips due after each. */
  process(runs: readonly Run[]): void {
    const { host, time } = this.options;
    if (this.#halted || runs.length === 0) return;
    // After a quiet spell, stream time has followed the clock up to now, whether or not a timer
    // ran at that exact moment: the records are judged against it.
    if (host.time !== 'processing') time.advance(time.idleStreamTime(host.clock.now()));
    let progressed = false;
    // Records written while records are processed may be handed off to a local task (see Task.handOff).
    this.#processing = true;
    try {
      for (const { topic, records, skips } of runs) {
        if (records.length > 0 && this.#processRun(topic, records)) progressed = true;
        for (const { from, to } of skips) if (this.#skipNow(topic, from, to)) progressed = true;
        if (this.#halted) break;
      }
    } finally {
      this.#processing = false;
      this.options.decoder.forgetUndecodedKey();
    }
    if (progressed) this.options.progressed();
    time.restartIdleCountdown();
    this.options.flush();
  }

  /** Processes one run of `topic`; true when the task's position moved. */
  #processRun(topic: string, records: readonly IncomingRecord[]): boolean {
    const { host, decoder, replays, time } = this.options;
    const source = this.#sourceOf(topic);
    const input = source && this.options.inputs.get(source.topic);
    if (!source || !input) return false;
    const decoders = decoder.decodersOf(source);
    const processingTime = host.time === 'processing';
    const drivesTime = this.#drivesStreamTime(source);
    let processed: IncomingRecord | undefined;
    // Records read back from repartition topics are not new input.
    if (!source.internal) host.metrics.recordsIn += records.length;
    for (const incoming of records) {
      if (this.#halted) break;
      const origin: Origin = { topic: incoming.topic, partition: incoming.partition, offset: incoming.offset };
      if (source.internal && replays.alreadyApplied(incoming)) {
        processed = incoming;
        continue;
      }
      const signal = decoder.decode(source, decoders, incoming, origin, processingTime);
      if (signal) {
        input.next(signal);
        if (drivesTime) time.advance(processingTime ? host.clock.now() : signal.timestamp);
      }
      // Under onError 'stop' the failing record's offset is not committed: a restart meets it again.
      if (this.#halted) break;
      processed = incoming;
    }
    if (!processed) return false;
    this.#positions.set(processed.topic, { topic: processed.topic, partition: processed.partition, offset: processed.offset + 1 });
    return true;
  }

  /**
   * Processes records another task handed off for `topic`: like records read from it (replays
   * dropped by their stamp, stream time advanced), but decoded already and with no offset of
   * their own — the upstream task commits its input only after this task has committed them.
   */
  processHandOff(topic: string, records: readonly HandedOff[]): void {
    const { host, replays, time } = this.options;
    if (this.#halted) return;
    const input = this.options.inputs.get(topic);
    if (!input) return;
    const processingTime = host.time === 'processing';
    if (!processingTime) time.advance(time.idleStreamTime(host.clock.now()));
    for (const record of records) {
      if (this.#halted) break;
      if (replays.isReplay(topic, record.replaySource, record.replayOffset, record.replayIndex)) continue;
      const signal = processingTime ? { ...record, timestamp: host.clock.now() } : record;
      input.next(signal);
      time.advance(signal.timestamp);
    }
    // The replay marks changed: the next commit records them.
    this.options.progressed();
    time.restartIdleCountdown();
    this.options.flush();
  }

  /**
   * Offsets `from` to `to` of this task's partition of `topic` need no processing (transaction
   * markers, aborted records): if the task stands at `from`, it moves on to `to`, and its next
   * commit records that. Anywhere else (it was moved back, or has not read up to there) it stays.
   * Behind records that wait for their turn, the skip waits too.
   */
  skip(topic: string, from: number, to: number): void {
    if (this.#halted) return;
    if (this.#order?.holds(topic)) this.#order.addSkip(topic, from, to);
    else if (this.#skipNow(topic, from, to)) this.options.progressed();
  }

  #skipNow(topic: string, from: number, to: number): boolean {
    const current = this.#positions.get(topic);
    if (current === undefined || current.offset !== from || to <= from) return false;
    this.#positions.set(topic, { ...current, offset: to });
    return true;
  }

  /** The next offset of `topic` (this partition) that the task would process. */
  position(topic: string): number | undefined {
    return this.#positions.get(topic)?.offset;
  }

  positions(): readonly TopicPartitionOffset[] {
    return [...this.#positions.values()];
  }

  /** After a restore: the positions the restored state already reflects. */
  restorePositions(positions: readonly TopicPartitionOffset[]): void {
    for (const position of positions) this.#positions.set(position.topic, position);
  }
}
