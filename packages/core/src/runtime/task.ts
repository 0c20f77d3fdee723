import { share, type Observable } from 'rxjs';
import type { Clock } from '../clock.js';
import type { Node } from '../dsl/graph.js';
import { changelogTopic, deadLetterTopic, keyUnreadBelow, type SubTopology, type Topology } from '../dsl/topology.js';
import { describeError, EddyError, RecordsRejectedError, type ErrorCode } from '../errors.js';
import { checkerOf, deserializerOf } from '../serde.js';
import type { PartitionStore, StoreEntry } from '../state/backend.js';
import type { CaughtUp, Headers, IncomingRecord, OutgoingRecord, TopicPartitionOffset, TransactionalProducer, TransportProducer } from '../transport/types.js';
import type { CacheBudget } from './cache.js';
import type { StatefulOperator, TaskContext } from './context.js';
import type { Metrics } from './metrics.js';
import { emitWindows } from './operators/emit-windows.js';
import { sinkRecords } from './operators/sink.js';
import { filterRecords, flatMapRecords, keyRecords, mapRecords, peekRecords } from './operators/stateless.js';
import { tableAggregate } from './operators/table-aggregate.js';
import { windowAggregate } from './operators/window-aggregate.js';
import { SignalInput } from './operator.js';
import { decodeOrigin, ORIGIN_HEADER } from './origin.js';
import type { Origin, RecordSignal, Signal } from './signals.js';

/** What a task needs from the app that runs it. */
export interface TaskHost {
  readonly appId: string;
  readonly topology: Topology;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly time: 'event' | 'processing';
  /** Quiet time after which stream time follows the clock; undefined disables it. */
  readonly idleTimeoutMs: number | undefined;
  /** Whether the log says the task has read everything of a partition, and since when (see {@link CaughtUp}). */
  caughtUp(topic: string, partition: number): CaughtUp | undefined;
  readonly producer: TransportProducer;
  readonly keepsValues: boolean;
  partitionsOf(topic: string): number;
  /** The app-wide budget of the operators' write-behind caches. */
  readonly cache: CacheBudget;
  /** A record failed; under `onError: 'stop'` this stops the app. Returns true to dead-letter. */
  recordFailed(error: EddyError): boolean;
  /** The task cannot go on (and must not commit): the app stops and tells its host. */
  fatal(error: EddyError): void;
  log(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>): void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/**
 * Task metadata written with every store's commit batch (and so to its changelog): the stream time
 * and the input offsets the state reflects. Single bytes that UTF-8 text and window keys never are.
 */
const STREAM_TIME_KEY = Uint8Array.of(0xff);
const INPUT_OFFSETS_KEY = Uint8Array.of(0xfe);
/**
 * Per repartition topic read and upstream input partition, the last record (origin offset, index)
 * applied; stored as entries `["<topic>|<upstream>", [offset, index]]` (entries from before
 * marks were per topic have no `<topic>|` and hold for every repartition topic of the task).
 */
const APPLIED_ORIGINS_KEY = Uint8Array.of(0xfd);
/** How soon a task that found the log's word lagging the clock looks again (see nextWakeUp). */
const IDLE_RECHECK_MS = 100;
const isMetaKey = (key: Uint8Array) => key.length === 1 && key[0]! >= 0xfd;

type SourceNode = Extract<Node, { kind: 'source' }>;

interface SourceDecoders {
  readonly key: (bytes: Uint8Array) => unknown;
  readonly value: (bytes: Uint8Array) => unknown;
  /**
   * Set when no step of the task sees the key a record arrives with (see topology.ts
   * `keyUnreadBelow`) and the key serde can tell bad bytes without decoding them: the key is
   * then only checked (a record whose key does not deserialize is still dead-lettered), and is
   * decoded only if a dead letter needs it.
   */
  readonly checkKey: ((bytes: Uint8Array) => void) | undefined;
}

/**
 * A record one task hands to another in process (see {@link Task.handOff}): the record signal the
 * reading task processes (its origin is the upstream record, for dead letters), with what its copy
 * in the topic would carry to detect replays (that origin and its index among the record's outputs).
 */
export interface HandedOff extends RecordSignal {
  readonly replaySource: string;
  readonly replayOffset: number;
  readonly replayIndex: number;
}

/**
 * When a task last committed (or first opened on this instance), and the commits that failed
 * since, with the latest error. It outlives the task object: a task started again after a failure
 * (see the app's rebuild) goes on with it, so a task that keeps failing shows as stuck.
 */
export interface CommitRecord {
  at: number;
  failures: number;
  error: unknown;
}

/** What a restore found. */
export interface RestoreResult {
  /** Changelog records replayed. */
  readonly records: number;
  /**
   * Input positions the restored state already reflects. A crash between the state flush and the
   * offset commit leaves committed offsets behind these; reading from here keeps records from
   * being counted twice.
   */
  readonly positions: readonly TopicPartitionOffset[];
}

/** A task's id: its sub-topology and partition, as in Kafka Streams (`0_3`). */
export const taskIdOf = (subTopology: number, partition: number): string => `${subTopology}_${partition}`;

/**
 * One partition of one sub-topology: its own RxJS operator graph, stream time, state and offsets.
 * Records enter through `process`; `commit` runs the commit protocol of DESIGN.md.
 */
export class Task implements TaskContext {
  readonly taskId: string;
  readonly appId: string;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly operators: StatefulOperator[] = [];
  readonly stores = new Map<string, PartitionStore>();
  readonly cache: CacheBudget;
  readonly keepsValues: boolean;

  #streamTime = -Infinity;
  /** Clock time and stream time when the last record arrived (for the idle timeout). */
  #lastInput: { clock: number; streamTime: number };
  readonly #inputs = new Map<string, SignalInput>();
  readonly #streams = new Map<Node, Observable<Signal>>();
  readonly #positions = new Map<string, TopicPartitionOffset>();
  /** By repartition topic read, then by upstream input partition (see APPLIED_ORIGINS_KEY). */
  readonly #appliedOrigins = new Map<string, Map<string, [offset: number, index: number]>>();
  readonly #decoders = new Map<SourceNode, SourceDecoders>();
  /** The record being processed, when its source only checked its key (see SourceDecoders): its origin, key bytes and decoders. */
  #keyLeftOrigin: Origin | undefined;
  #keyLeftBytes: Uint8Array | undefined;
  #keyLeftDecoders: SourceDecoders | undefined;
  /** Per store, commit entries sent to the changelog but not yet written to the local store. */
  readonly #unwritten = new Map<string, StoreEntry[]>();
  #positionsChanged = false;
  #outbox: OutgoingRecord[] = [];
  readonly #sends = new Set<Promise<readonly TopicPartitionOffset[]>>();
  readonly #work = new Set<Promise<unknown>>();
  #halted = false;
  #lock: Promise<unknown> = Promise.resolve();
  /** Exactly-once: the task's own producer; its sends, changelog and offsets commit as one transaction. */
  readonly #transactional: TransactionalProducer | undefined;
  /** The open transaction, begun by the first send after a commit. */
  #transaction: Promise<void> | undefined;
  /** A send or commit of the transaction failed: the transaction, and the task's state since the last commit, are lost. */
  #transactionFailure: { error: unknown } | undefined;
  /** Local hand-off: per internal topic, the task of this partition that takes its records directly. */
  readonly #handOffTargets = new Map<string, Task>();
  /** Records handed off during the current batch, per target task. */
  #handedOff: Array<{ readonly target: Task; readonly topic: string; readonly records: HandedOff[] }> = [];
  /** Per topic, the offset of the last record this task wrote to its partition of it. */
  readonly #lastWritten = new Map<string, number>();
  #processing = false;
  /** Successful commits so far (a task that handed records here waits for one after its hand-off). */
  commits = 0;
  readonly #committed: CommitRecord;
  /** Since when sends have failed with none going through (undefined: the last one went through). */
  #sendFailingSince: number | undefined;

  constructor(
    private readonly host: TaskHost,
    readonly subTopology: SubTopology,
    readonly partition: number,
    options: { readonly transactional?: TransactionalProducer; readonly committed?: CommitRecord } = {},
  ) {
    this.#transactional = options.transactional;
    this.#committed = options.committed ?? { at: host.clock.now(), failures: 0, error: undefined };
    this.taskId = taskIdOf(subTopology.index, partition);
    this.appId = host.appId;
    this.clock = host.clock;
    this.metrics = host.metrics;
    this.cache = host.cache;
    this.keepsValues = host.keepsValues;
    this.#lastInput = { clock: host.clock.now(), streamTime: -Infinity };
    this.#build();
  }

  /** Wires the sub-topology's nodes into RxJS operators; sources are subjects fed by `process`. */
  #build(): void {
    const { children } = this.host.topology;
    for (const node of this.subTopology.nodes) {
      const stream = this.#streamFor(node);
      if ((children.get(node)?.length ?? 0) === 0) stream.subscribe();
    }
  }

  /** One observable per node, shared when several children read it. */
  #streamFor(node: Node): Observable<Signal> {
    let stream = this.#streams.get(node);
    if (!stream) {
      stream = this.#operatorFor(node);
      if ((this.host.topology.children.get(node)?.length ?? 0) > 1) stream = stream.pipe(share());
      this.#streams.set(node, stream);
    }
    return stream;
  }

  #operatorFor(node: Node): Observable<Signal> {
    const parent = (index = 0) => this.#streamFor(node.parents[index]!);
    switch (node.kind) {
      case 'source': {
        const subject = new SignalInput();
        this.#inputs.set(node.topic, subject);
        return subject;
      }
      case 'map':
        return parent().pipe(mapRecords(this, 'map', node.fn));
      case 'filter':
        return parent().pipe(filterRecords(this, 'filter', node.fn));
      case 'flatMap':
        return parent().pipe(flatMapRecords(this, 'flatMap', node.fn));
      case 'peek':
        return parent().pipe(peekRecords(this, 'peek', node.fn));
      case 'keyBy':
        return parent().pipe(keyRecords(this, 'keyBy', node.fn));
      case 'merge': {
        const merged = new SignalInput();
        for (let index = 0; index < node.parents.length; index++) parent(index).subscribe((signal) => merged.next(signal));
        return merged;
      }
      case 'sink':
        return parent().pipe(sinkRecords(this, node.topic, node.keySerde, node.valueSerde, node.internal));
      case 'window': {
        const emitsUpdates = (this.host.topology.children.get(node) ?? []).some((child) => child.kind === 'emit' && child.event === 'update');
        return parent().pipe(windowAggregate(this, { storeName: node.storeName, window: node.window, aggregation: node.aggregation, emitUpdates: emitsUpdates }));
      }
      case 'emit':
        return parent().pipe(emitWindows(this, node.label, node.event, node.handler));
      case 'table':
        return parent().pipe(tableAggregate(this, node.storeName, node.aggregation));
      case 'tableStream':
        return parent();
    }
  }

  // --- TaskContext -------------------------------------------------------------------------

  streamTime(): number {
    return this.#streamTime;
  }

  register(operator: StatefulOperator): void {
    this.operators.push(operator);
  }

  storeOf(storeName: string): PartitionStore {
    const store = this.stores.get(storeName);
    if (!store) throw new EddyError('STATE_FAILED', `store ${storeName} of task ${this.taskId} is not open`);
    return store;
  }

  produce(record: OutgoingRecord): void {
    this.#outbox.push(record);
  }

  partitionsOf(topic: string): number {
    return this.host.partitionsOf(topic);
  }

  track(work: Promise<unknown>): void {
    const tracked = work.finally(() => this.#work.delete(tracked));
    this.#work.add(tracked);
    // Results of async handlers are produced as they come.
    void tracked.then(() => this.flush());
  }

  fail(error: unknown, signal: Signal | undefined, step: string, code: ErrorCode = 'HANDLER_FAILED'): void {
    const origin = signal && 'origin' in signal ? signal.origin : undefined;
    const failure = error instanceof EddyError ? error : new EddyError(code, `${step}: ${describeError(error)}`, { cause: error });
    const value = signal && signal.type !== 'tick' ? safeJson(signalValue(signal)) : null;
    const key = signal && signal.type !== 'tick' ? safeJson(this.#keyOf(signal)) : null;
    this.#deadLetter(failure, step, origin, key, value);
  }

  /** A signal's key; for a record whose source left its key undecoded (see SourceDecoders), that key decoded. */
  #keyOf(signal: Exclude<Signal, { type: 'tick' }>): unknown {
    if (signal.key !== undefined || signal.origin === undefined || signal.origin !== this.#keyLeftOrigin) return signal.key;
    return this.#keyLeftDecoders!.key(this.#keyLeftBytes!);
  }

  // --- records in --------------------------------------------------------------------------

  /** Serializes work on this task: record batches, punctuation and commits never interleave. */
  exclusive<T>(work: () => Promise<T> | T): Promise<T> {
    const run = this.#lock.then(work, work);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  /**
   * Reads back the evicted state a batch will need: the keys of its records, and the keys whose
   * windows close by the stream time the batch reaches. Operators then run synchronously.
   */
  async prepare(records: readonly IncomingRecord[]): Promise<void> {
    if (!this.operators.some((operator) => operator.hasEvicted())) return;
    const source = this.subTopology.sources.find((node) => node.topic === records[0]?.topic);
    if (!source) return;
    const decoders = this.#decodersOf(source);
    const keys: unknown[] = [];
    let latest = -Infinity;
    for (const incoming of records) {
      try {
        if (incoming.decoded) keys.push(incoming.decoded.key);
        else if (incoming.key !== null) keys.push(decoders.key(incoming.key));
        if (this.host.time === 'event' && incoming.timestamp > latest) latest = incoming.timestamp;
      } catch {
        // A record that does not decode is dead-lettered by process().
      }
    }
    // An extractor's timestamps are only known after decoding values: be safe and load what may close.
    await this.#loadEvicted(keys, source.timestamp ? Infinity : latest);
  }

  /**
   * Reads back the evicted state that records with these keys need, and what closes by the stream
   * time they reach (`latest`: their largest event time, if it counts).
   */
  async #loadEvicted(keys: readonly unknown[], latest: number): Promise<void> {
    const now = this.clock.now();
    const streamTime = Math.max(latest, this.host.time === 'processing' ? now : Math.max(this.#streamTime, this.#idleStreamTime(now)));
    for (const operator of this.operators) await operator.load(keys, streamTime);
  }

  /** Reads back the evicted state that closes by the stream time `punctuate(now)` reaches. */
  async preparePunctuate(now: number): Promise<void> {
    if (!this.operators.some((operator) => operator.hasEvicted())) return;
    const streamTime = this.host.time === 'processing' ? now : this.#idleStreamTime(now);
    for (const operator of this.operators) await operator.load([], streamTime);
  }

  /** Processes a batch of one partition, in offset order. */
  process(records: readonly IncomingRecord[]): void {
    if (this.#halted) return;
    const source = this.subTopology.sources.find((node) => node.topic === records[0]?.topic);
    const input = source && this.#inputs.get(source.topic);
    if (!source || !input) return;
    const decoders = this.#decodersOf(source);
    const processingTime = this.host.time === 'processing';
    // After a quiet spell, stream time has followed the clock up to now, whether or not a timer
    // ran at that exact moment: the batch is judged against it.
    if (!processingTime) this.#advance(this.#idleStreamTime(this.clock.now()));
    let processed: IncomingRecord | undefined;
    // Records read back from repartition topics are not new input.
    if (!source.internal) this.metrics.recordsIn += records.length;
    // Records written while a batch is processed may be handed off to a local task (see handOff).
    this.#processing = true;
    try {
      for (const incoming of records) {
        if (this.#halted) break;
        const origin: Origin = { topic: incoming.topic, partition: incoming.partition, offset: incoming.offset };
        if (source.internal && this.#alreadyApplied(incoming)) {
          processed = incoming;
          continue;
        }
        const signal = this.#decode(source, decoders, incoming, origin, processingTime);
        if (signal) {
          input.next(signal);
          this.#advance(processingTime ? this.clock.now() : signal.timestamp);
        }
        // Under onError 'stop' the failing record's offset is not committed: a restart meets it again.
        if (this.#halted) break;
        processed = incoming;
      }
    } finally {
      this.#processing = false;
      // Not to hold on to the fetched bytes.
      this.#keyLeftOrigin = this.#keyLeftBytes = this.#keyLeftDecoders = undefined;
    }
    if (processed) {
      this.#positions.set(processed.topic, { topic: processed.topic, partition: processed.partition, offset: processed.offset + 1 });
      this.#positionsChanged = true;
    }
    this.#lastInput = { clock: this.clock.now(), streamTime: this.#streamTime };
    this.flush();
  }

  /**
   * Offsets `from` to `to` of this task's partition of `topic` need no processing (transaction
   * markers, aborted records): if the task stands at `from`, it moves on to `to`, and its next
   * commit records that. Anywhere else (it was moved back, or has not read up to there) it stays.
   */
  skip(topic: string, from: number, to: number): void {
    if (this.#halted) return;
    const current = this.#positions.get(topic);
    if (current === undefined || current.offset !== from || to <= from) return;
    this.#positions.set(topic, { ...current, offset: to });
    this.#positionsChanged = true;
  }

  // --- local hand-off ------------------------------------------------------------------------

  /**
   * Local hand-off, for an internal topic whose reading task of this partition runs in this
   * process (see the app's `#handOffs`): a record this task writes to that partition while it
   * processes a batch goes to that task directly, with its origin, instead of through the topic.
   * Returns false when the record must go through the topic.
   */
  handOff(topic: string, partition: number, key: unknown, value: unknown, timestamp: number, source: string, offset: number, index: number, upstream: Origin): boolean {
    if (!this.#processing || partition !== this.partition) return false;
    const target = this.#handOffTargets.get(topic);
    if (!target) return false;
    // In the order written, as runs of one topic: the reading task meets the records of two
    // topics interleaved as they were written, as through the topics themselves.
    let run = this.#handedOff[this.#handedOff.length - 1];
    if (!run || run.topic !== topic) this.#handedOff.push((run = { target, topic, records: [] }));
    run.records.push({ type: 'record', key, value, timestamp, origin: upstream, replaySource: source, replayOffset: offset, replayIndex: index });
    this.metrics.recordsHandedOff++;
    return true;
  }

  /** The records handed off during the last batch, in runs of one topic, in the order written; clears them. */
  takeHandOffs(): ReadonlyArray<{ readonly target: Task; readonly topic: string; readonly records: readonly HandedOff[] }> {
    const runs = this.#handedOff;
    if (runs.length > 0) this.#handedOff = [];
    return runs;
  }

  handOffTarget(topic: string): Task | undefined {
    return this.#handOffTargets.get(topic);
  }

  setHandOffTarget(topic: string, target: Task | undefined): void {
    if (target) this.#handOffTargets.set(topic, target);
    else this.#handOffTargets.delete(topic);
  }

  /** The offset of the last record this task wrote (acknowledged) to its partition of `topic`. */
  lastWritten(topic: string): number | undefined {
    return this.#lastWritten.get(topic);
  }

  /** Whether sends are in flight or queued (records on their way to a topic). */
  get sending(): boolean {
    return this.#sends.size > 0 || this.#outbox.length > 0;
  }

  /** The next offset of `topic` (this partition) that this task would process. */
  position(topic: string): number | undefined {
    return this.#positions.get(topic)?.offset;
  }

  /** Reads back the evicted state that handed-off records need (see {@link prepare}). */
  async prepareHandOff(records: readonly HandedOff[]): Promise<void> {
    if (!this.operators.some((operator) => operator.hasEvicted())) return;
    let latest = -Infinity;
    if (this.host.time === 'event') for (const record of records) if (record.timestamp > latest) latest = record.timestamp;
    await this.#loadEvicted(records.map((record) => record.key), latest);
  }

  /**
   * Processes records another task handed off for `topic`: like records read from it (replays
   * dropped by their origin, stream time advanced), but decoded already and with no offset of
   * their own — the upstream task commits its input only after this task has committed them.
   */
  processHandOff(topic: string, records: readonly HandedOff[]): void {
    if (this.#halted) return;
    const input = this.#inputs.get(topic);
    if (!input) return;
    const processingTime = this.host.time === 'processing';
    if (!processingTime) this.#advance(this.#idleStreamTime(this.clock.now()));
    for (const record of records) {
      if (this.#halted) break;
      if (this.#isReplay(topic, record.replaySource, record.replayOffset, record.replayIndex)) continue;
      const signal = processingTime ? { ...record, timestamp: this.clock.now() } : record;
      input.next(signal);
      this.#advance(signal.timestamp);
    }
    // The replay marks changed: the next commit writes them.
    this.#positionsChanged = true;
    this.#lastInput = { clock: this.clock.now(), streamTime: this.#streamTime };
    this.flush();
  }

  /**
   * Whether a repartition record repeats one whose effect the state already holds: an upstream
   * task that crashed before its commit replays its input and writes those records again.
   * Records of one upstream partition arrive in origin order, so one high-water mark per upstream
   * partition tells.
   */
  #alreadyApplied(incoming: IncomingRecord): boolean {
    const origin = incoming.decoded?.origin ?? decodeOrigin(incoming.headers[ORIGIN_HEADER]);
    return origin !== undefined && this.#isReplay(incoming.topic, origin[0], origin[1], origin[2]);
  }

  /**
   * Whether a record of this origin was applied already from this repartition topic; if not, marks
   * it applied. Per topic: one input record may go through two repartition topics that one task
   * reads (two re-keyed branches merged), as the same origin in each.
   */
  #isReplay(topic: string, source: string, offset: number, index: number): boolean {
    const marks = this.#marksOf(topic);
    const applied = marks.get(source);
    if (applied && (offset < applied[0] || (offset === applied[0] && index <= applied[1]))) {
      this.metrics.duplicatesDropped++;
      return true;
    }
    // In place: this runs per repartitioned record (the marks are copied only when committed).
    if (applied) {
      applied[0] = offset;
      applied[1] = index;
    } else {
      marks.set(source, [offset, index]);
    }
    return false;
  }

  /** The replay marks of one repartition topic read, by upstream input partition. */
  #marksOf(topic: string): Map<string, [offset: number, index: number]> {
    let marks = this.#appliedOrigins.get(topic);
    if (!marks) this.#appliedOrigins.set(topic, (marks = new Map()));
    return marks;
  }

  /** A source's key and value deserializers (see serde.ts `deserializerOf`), made once per source. */
  #decodersOf(source: SourceNode): SourceDecoders {
    let decoders = this.#decoders.get(source);
    if (!decoders) {
      const checkKey = keyUnreadBelow(source, this.host.topology.children) ? checkerOf(source.keySerde) : undefined;
      this.#decoders.set(source, (decoders = { key: deserializerOf(source.keySerde), value: deserializerOf(source.valueSerde), checkKey }));
    }
    return decoders;
  }

  #decode(source: SourceNode, decoders: SourceDecoders, incoming: IncomingRecord, origin: Origin, processingTime: boolean): RecordSignal | undefined {
    let key: unknown;
    let value: unknown;
    try {
      if (incoming.decoded) {
        ({ key, value } = incoming.decoded);
      } else {
        if (incoming.key === null) {
          key = undefined;
        } else if (decoders.checkKey) {
          decoders.checkKey(incoming.key);
          this.#keyLeftOrigin = origin;
          this.#keyLeftBytes = incoming.key;
          this.#keyLeftDecoders = decoders;
        } else {
          key = decoders.key(incoming.key);
        }
        value = incoming.value === null ? null : decoders.value(incoming.value);
      }
    } catch (error) {
      this.#deadLetterRaw(incoming, new EddyError('DESERIALIZATION_FAILED', `cannot deserialize a record of ${incoming.topic}: ${describeError(error)}`, { cause: error }), `source ${incoming.topic}`);
      return undefined;
    }
    let timestamp = incoming.timestamp;
    if (processingTime) {
      timestamp = this.clock.now();
    } else if (source.timestamp) {
      try {
        timestamp = source.timestamp(value);
      } catch (error) {
        this.#deadLetterRaw(incoming, new EddyError('INVALID_TIMESTAMP', `the timestamp extractor threw: ${describeError(error)}`, { cause: error }), `source ${incoming.topic}`);
        return undefined;
      }
    }
    if (typeof timestamp !== 'number' || !Number.isFinite(timestamp)) {
      this.#deadLetterRaw(incoming, new EddyError('INVALID_TIMESTAMP', `the record's timestamp is not a finite number: ${String(timestamp)}`), `source ${incoming.topic}`);
      return undefined;
    }
    return { type: 'record', key, value, timestamp, origin };
  }

  #somethingDue(streamTime: number): boolean {
    for (const operator of this.operators) if (operator.hasDue(streamTime)) return true;
    return false;
  }

  /** Moves stream time forward (never back) and lets window operators close what is due. */
  #advance(streamTime: number): void {
    if (streamTime <= this.#streamTime) return;
    this.#streamTime = streamTime;
    // Only stateful operators act on time, and only when something of theirs is due: most records
    // move stream time without closing anything, and need not carry a tick through the graph.
    if (!this.#somethingDue(streamTime)) return;
    const tick: Signal = { type: 'tick', streamTime };
    for (const input of this.#inputs.values()) input.next(tick);
  }

  /**
   * Timer work: in processing time, stream time is the clock; in event time, once the task has
   * been quiet for the idle timeout, stream time follows the clock from there on.
   */
  punctuate(now: number): void {
    if (this.#halted) return;
    if (this.host.time === 'processing') {
      this.#advance(now);
    } else {
      this.#advance(this.#idleStreamTime(now));
    }
    this.flush();
  }

  /**
   * Event time: the stream time of a task quiet since its last record, at clock time `now`. Quiet
   * means the log has kept saying, for the idle timeout, that there is nothing more to read; stream
   * time then follows the clock up to the log's last such answer. A task whose input waits
   * (backpressure, a busy process, a broker that does not answer, a partition just assigned) is
   * behind, not quiet: its stream time waits, and quiet time counts again once the log answers.
   */
  #idleStreamTime(now: number): number {
    const idleTimeoutMs = this.host.idleTimeoutMs;
    if (idleTimeoutMs === undefined || this.#lastInput.streamTime === -Infinity) return this.#streamTime;
    let quietSince = -Infinity;
    let confirmedAt = now;
    for (const source of this.subTopology.sources) {
      const caughtUp = this.host.caughtUp(source.topic, this.partition);
      if (caughtUp === undefined) {
        this.restartIdleCountdown();
        return this.#streamTime;
      }
      quietSince = Math.max(quietSince, now - caughtUp.forMs);
      confirmedAt = Math.min(confirmedAt, now - caughtUp.confirmedAgoMs);
    }
    // The log's answers broke off since the last record (an outage): quiet counts from their return.
    if (quietSince > this.#lastInput.clock) this.restartIdleCountdown(quietSince);
    const idleSince = this.#lastInput.clock + idleTimeoutMs;
    return confirmedAt >= idleSince ? Math.max(this.#streamTime, this.#lastInput.streamTime + (confirmedAt - idleSince)) : this.#streamTime;
  }

  /** Quiet time counts from now (after a pause for backpressure, or while input waits). */
  restartIdleCountdown(from = this.clock.now()): void {
    this.#lastInput = { clock: from, streamTime: this.#streamTime };
  }

  /** The clock time at which this task next has timer work, if any. */
  nextWakeUp(): number | undefined {
    let deadline: number | undefined;
    for (const operator of this.operators) {
      const due = operator.nextDeadline();
      if (due !== undefined && (deadline === undefined || due < deadline)) deadline = due;
    }
    if (deadline === undefined) return undefined;
    if (this.host.time === 'processing') return deadline;
    if (this.host.idleTimeoutMs === undefined || this.#lastInput.streamTime === -Infinity) return undefined;
    const wakeUp = this.#lastInput.clock + this.host.idleTimeoutMs + Math.max(0, deadline - this.#lastInput.streamTime);
    // Due already, yet not closed: the log's last answer lags the clock; ask again a little later.
    const now = this.clock.now();
    return wakeUp > now ? wakeUp : now + IDLE_RECHECK_MS;
  }

  // --- records out -------------------------------------------------------------------------

  /** Sends what the operators produced since the last flush, as one producer call. */
  flush(): void {
    if (this.#outbox.length === 0) return;
    if (this.#transactional) return this.#flushTransaction(this.#transactional);
    const records = this.#outbox;
    this.#outbox = [];
    const send = this.host.producer.send(records).then(
      (offsets) => this.#sent(offsets),
      (error: unknown) => {
        if (error instanceof RecordsRejectedError) return this.#sent(this.#rejected(error));
        // Nothing is lost: the records go out again with the next flush, and the commit waiting for
        // this send fails, so no offset moves past them until they are acknowledged.
        this.#outbox = [...records, ...this.#outbox];
        this.#sendFailingSince ??= this.clock.now();
        this.host.log('warn', 'send failed; the records will be sent again', { task: this.taskId, records: records.length, error: describeError(error) });
        throw error;
      },
    );
    this.#track(send);
  }

  /**
   * Exactly-once: sends into the open transaction, beginning one if none is open. A failed send
   * dooms the transaction: nothing more is sent, and the commit fails. Records the log refused
   * before they joined the transaction do not doom it.
   */
  #flushTransaction(producer: TransactionalProducer): void {
    if (this.#transactionFailure) return;
    const records = this.#outbox;
    this.#outbox = [];
    const transaction = (this.#transaction ??= producer.begin());
    const send = transaction
      .then(() => producer.send(records))
      .then(
        (offsets) => this.#sent(offsets),
        (error: unknown) => {
          if (error instanceof RecordsRejectedError) return this.#sent(this.#rejected(error));
          this.#transactionFailure ??= { error };
          throw error;
        },
      );
    this.#track(send);
  }

  #track(send: Promise<readonly TopicPartitionOffset[]>): void {
    const tracked = send.finally(() => this.#sends.delete(tracked));
    this.#sends.add(tracked);
    tracked.catch(() => undefined);
  }

  /** Records were written (and these are their last offsets per partition). */
  #sent(offsets: readonly TopicPartitionOffset[]): readonly TopicPartitionOffset[] {
    this.#sendFailingSince = undefined;
    for (const { topic, partition, offset } of offsets) if (partition === this.partition) this.#lastWritten.set(topic, Math.max(offset, this.#lastWritten.get(topic) ?? -1));
    return offsets;
  }

  /**
   * Records the log refused for themselves go to the dead letters with its reason (or stop the app
   * under `onError: 'stop'`): sending them again would only be refused again. A changelog record,
   * or a dead letter even without its value, cannot be given up that way: the app stops. Returns
   * the offsets of what was written.
   */
  #rejected(error: RecordsRejectedError): readonly TopicPartitionOffset[] {
    const deadLetters = deadLetterTopic(this.appId);
    for (const { record, error: refusal, reason } of error.refused) {
      this.host.log('warn', 'the log refused a record', { task: this.taskId, topic: record.topic, partition: record.partition, reason, error: refusal.message });
      if (this.operators.some((operator) => changelogTopic(this.appId, operator.storeName) === record.topic)) {
        this.#failTask(new EddyError('STATE_FAILED', `task ${this.taskId}: the log refused a state change for ${record.topic} (${reason}), so the state cannot be kept durable; check the topic's limits (max.message.bytes): ${refusal.message}`, { cause: refusal }));
      } else if (record.topic === deadLetters) {
        if (record.value !== null || record.key !== null) {
          // Kept without the key and value it could not hold; the headers still say what failed.
          this.produce({ ...record, key: null, value: null, headers: { ...record.headers, 'dropped': `key and value (${reason}: ${refusal.message})` } });
        } else {
          this.#failTask(new EddyError('RECORD_REJECTED', `task ${this.taskId}: the dead-letter topic ${deadLetters} refused a dead letter (${reason}): ${refusal.message}`, { cause: refusal }));
        }
      } else {
        const tooLarge = reason === 'MESSAGE_TOO_LARGE' || reason === 'RECORD_LIST_TOO_LARGE';
        const failure = new EddyError('RECORD_REJECTED', `the log refused a record for ${record.topic}[${record.partition}] (${reason}): ${refusal.message}`, { cause: refusal });
        this.#deadLetter(failure, `to ${record.topic}`, undefined, record.key, tooLarge ? null : record.value, { 'error.reason': reason, 'timestamp': String(record.timestamp), ...(tooLarge ? { dropped: 'value (too large)' } : {}) });
      }
    }
    // The dead letters go out now; the commit waits for them too.
    queueMicrotask(() => this.flush());
    return error.written;
  }

  #failTask(error: EddyError): void {
    this.#halted = true;
    this.host.fatal(error);
  }

  #deadLetterRaw(incoming: IncomingRecord, error: EddyError, step: string): void {
    this.#deadLetter(error, step, { topic: incoming.topic, partition: incoming.partition, offset: incoming.offset }, incoming.key, incoming.value);
  }

  /** `headers` adds to the error's own (`error`, `error.code`, `step`, `task`, and the origin's place). */
  #deadLetter(error: EddyError, step: string, origin: Origin | undefined, key: Uint8Array | null, value: Uint8Array | null, headers: Record<string, string> = {}): void {
    if (!this.host.recordFailed(error)) {
      this.#halted = true;
      return;
    }
    this.metrics.deadLetters++;
    Object.assign(headers, { 'error': error.message, 'error.code': error.code, 'step': step, 'task': this.taskId });
    if (origin) {
      headers['topic'] = origin.topic;
      headers['partition'] = String(origin.partition);
      headers['offset'] = String(origin.offset);
    }
    this.host.log('warn', 'record dead-lettered', { code: error.code, step, error: error.message, ...origin });
    this.produce({ topic: deadLetterTopic(this.appId), partition: 0, key, value, timestamp: this.clock.now(), headers: headers as Headers });
  }

  // --- commit and restore ------------------------------------------------------------------

  /** Async work (handlers, sends) in flight. */
  get pendingWork(): number {
    return this.#work.size + this.#sends.size;
  }

  /** Resolves when every handler started so far has delivered and every send is acknowledged. */
  async drain(): Promise<void> {
    while (this.#work.size > 0 || this.#sends.size > 0 || this.#outbox.length > 0) {
      if (this.#transactionFailure) throw this.#transactionFailure.error;
      this.flush();
      // A failed send rejects here (its records are back in the outbox): the caller stops.
      await Promise.all([...this.#work, ...this.#sends]);
    }
  }

  /** Exactly-once: the task has its own transactional producer (and commits offsets with it). */
  get transactional(): boolean {
    return this.#transactional !== undefined;
  }

  /**
   * The commit protocol: (1) handlers of closed windows deliver, (2) state changes go to the
   * changelog and the local store, (3) every send is acknowledged, (4) input offsets are committed.
   * Exactly-once: outputs and changelog records went into the task's transaction, and (4) adds the
   * input offsets to it and commits it, all or nothing; the local store is written after that, and
   * `commitOffsets` then only follows up (the offsets are committed already). A failed transaction
   * leaves the task unusable: it must be closed and rebuilt from the last commit.
   */
  async commit(commitOffsets: (offsets: readonly TopicPartitionOffset[]) => Promise<void>): Promise<void> {
    try {
      if (this.#halted) throw new EddyError('APP_STOPPED', `task ${this.taskId} is halted and commits no more`);
      await this.#commit(commitOffsets);
      this.commits++;
      Object.assign(this.#committed, { at: this.clock.now(), failures: 0, error: undefined });
    } catch (error) {
      if (this.#transactional) this.#transactionFailure ??= { error };
      this.metrics.commitFailures++;
      this.#committed.failures++;
      this.#committed.error = error;
      throw error;
    }
  }

  /**
   * Whether the task is stuck, as of clock time `now`: it has not committed for `boundMs` (its
   * commits fail, or wait on sends the log does not take), or its sends have failed for that long.
   * Says why, for logs and `app.health()`.
   */
  stalled(now: number, boundMs: number): string | undefined {
    const sendsFailingMs = this.#sendFailingSince === undefined ? 0 : now - this.#sendFailingSince;
    const uncommittedMs = now - this.#committed.at;
    if (uncommittedMs <= boundMs && sendsFailingMs <= boundMs) return undefined;
    const why = this.#committed.error === undefined ? '' : `: ${describeError(this.#committed.error)}`;
    if (sendsFailingMs > boundMs) return `task ${this.taskId}: sends have failed for ${sendsFailingMs} ms${why}`;
    return `task ${this.taskId}: no commit for ${uncommittedMs} ms (${this.#committed.failures} failed)${why}`;
  }

  /** Clock time since the last successful commit (or since the task opened). */
  commitAgeMs(now: number): number {
    return now - this.#committed.at;
  }

  async #commit(commitOffsets: (offsets: readonly TopicPartitionOffset[]) => Promise<void>): Promise<void> {
    const positionsChanged = this.#positionsChanged;
    this.#positionsChanged = false;
    try {
      await this.#commitSteps(commitOffsets, positionsChanged);
    } catch (error) {
      // The next commit writes the metadata again, with whatever this one left unwritten.
      this.#positionsChanged = true;
      throw error;
    }
  }

  async #commitSteps(commitOffsets: (offsets: readonly TopicPartitionOffset[]) => Promise<void>, positionsChanged: boolean): Promise<void> {
    await this.drain();
    const writes: Array<{ store: PartitionStore; storeName: string; entries: StoreEntry[]; topic: string }> = [];
    for (const operator of this.operators) {
      const entries = operator.takeChanges();
      // Entries a failed commit took from the operator but never wrote locally: their changelog
      // records are back in the outbox; the local store must get them too, first.
      const unwritten = this.#unwritten.get(operator.storeName) ?? [];
      if (entries.length === 0 && !positionsChanged && unwritten.length === 0) continue;
      entries.push(
        { key: STREAM_TIME_KEY, value: encoder.encode(JSON.stringify(this.#streamTime)) },
        { key: INPUT_OFFSETS_KEY, value: encoder.encode(JSON.stringify([...this.#positions.values()])) },
        { key: APPLIED_ORIGINS_KEY, value: encoder.encode(JSON.stringify([...this.#appliedOrigins].flatMap(([topic, marks]) => [...marks].map(([source, applied]) => [`${topic}|${source}`, applied])))) },
      );
      const topic = changelogTopic(this.appId, operator.storeName);
      for (const entry of entries) this.produce({ topic, partition: this.partition, key: entry.key, value: entry.value, timestamp: this.clock.now() });
      const all = [...unwritten, ...entries];
      this.#unwritten.set(operator.storeName, all);
      writes.push({ store: this.stores.get(operator.storeName)!, storeName: operator.storeName, entries: all, topic });
    }
    const lastOffsets = new Map<string, number>();
    // Dead letters of records the log refused join the outbox as sends complete: they go out and are acknowledged too.
    do {
      // A doomed transaction sends nothing more.
      if (this.#transactionFailure) throw this.#transactionFailure.error;
      this.flush();
      for (const offsets of await Promise.all([...this.#sends])) {
        for (const { topic, partition, offset } of offsets) if (partition === this.partition) lastOffsets.set(topic, Math.max(lastOffsets.get(topic) ?? -1, offset));
      }
    } while (this.#outbox.length > 0 || this.#sends.size > 0);
    // A refused record stopped the app (onError 'stop', or a state change it could not keep): nothing past it is committed.
    if (this.#halted) throw new EddyError('APP_STOPPED', `task ${this.taskId} stopped on a record the log refused; not committing past it`);
    if (this.#transactional) await this.#commitTransaction(this.#transactional, positionsChanged);
    for (const { store, storeName, entries, topic } of writes) {
      const last = lastOffsets.get(topic);
      await store.write(entries, last === undefined ? undefined : last + 1);
      this.#unwritten.delete(storeName);
    }
    // State is clean now; this is when keys may leave memory.
    for (const operator of this.operators) operator.evict();
    if (this.#positions.size > 0) await commitOffsets([...this.#positions.values()]);
  }

  /** Exactly-once, steps (3) and (4) at once: the input offsets join the transaction, which commits. */
  async #commitTransaction(producer: TransactionalProducer, positionsChanged: boolean): Promise<void> {
    if (this.#transactionFailure) throw this.#transactionFailure.error;
    // Nothing sent and nothing read since the last commit: no transaction to commit.
    if (!this.#transaction && !positionsChanged) return;
    await (this.#transaction ??= producer.begin());
    if (positionsChanged && this.#positions.size > 0) await producer.sendOffsets(this.appId, [...this.#positions.values()]);
    await producer.commit();
    this.#transaction = undefined;
  }

  /**
   * Closes the task for good: no more records; under exactly-once its open transaction (what it
   * produced since the last commit) is aborted and its producer closed. Its stores are the caller's.
   */
  async close(): Promise<void> {
    this.halt();
    for (const operator of this.operators) operator.release();
    const producer = this.#transactional;
    if (!producer) return;
    await Promise.allSettled([...this.#sends]);
    if (this.#transaction) {
      this.#transaction = undefined;
      // A fenced or failed producer cannot abort; the broker aborts its transaction anyway (on the
      // next owner's first transaction, or after the transaction timeout).
      await producer.abort().catch((error: unknown) => this.host.log('debug', 'aborting the transaction failed', { task: this.taskId, error: describeError(error) }));
    }
    await producer.close().catch((error: unknown) => this.host.log('debug', 'closing the transactional producer failed', { task: this.taskId, error: describeError(error) }));
  }

  /**
   * Restores each store: the changelog tail after the local checkpoint goes into the store,
   * then the operators rebuild their in-memory state (and so their open windows) from it.
   */
  async restore(
    readChangelog: (topic: string, partition: number, from: number) => AsyncIterable<readonly IncomingRecord[]>,
    endOffset: (topic: string, partition: number) => Promise<number>,
    progress: (restored: number, remaining: number) => void,
  ): Promise<RestoreResult> {
    let restored = 0;
    let streamTime = -Infinity;
    const positions = new Map<string, TopicPartitionOffset>();
    const ends = new Map<StatefulOperator, number>();
    let remaining = 0;
    for (const operator of this.operators) {
      const end = await endOffset(changelogTopic(this.appId, operator.storeName), this.partition);
      ends.set(operator, end);
      remaining += Math.max(0, end - ((await this.stores.get(operator.storeName)!.checkpoint()) ?? 0));
    }
    for (const operator of this.operators) {
      const store = this.stores.get(operator.storeName)!;
      const topic = changelogTopic(this.appId, operator.storeName);
      const end = ends.get(operator)!;
      let checkpoint = (await store.checkpoint()) ?? 0;
      if (checkpoint > end) {
        // The local state is ahead of its changelog (the topic was recreated): start over.
        this.host.log('warn', 'local state is ahead of its changelog; rebuilding', { store: operator.storeName, checkpoint, end });
        await store.clear();
        remaining += end;
        checkpoint = 0;
      }
      // Store writes in chunks of ~10k records: fewer, larger batches restore several times faster.
      let pending: StoreEntry[] = [];
      let nextOffset = checkpoint;
      const write = async () => {
        if (pending.length === 0) return;
        await store.write(pending, nextOffset);
        restored += pending.length;
        remaining = Math.max(0, remaining - pending.length);
        pending = [];
        progress(restored, remaining);
      };
      for await (const batch of readChangelog(topic, this.partition, checkpoint)) {
        for (const record of batch) pending.push({ key: record.key ?? new Uint8Array(), value: record.value });
        const last = batch[batch.length - 1];
        if (last) nextOffset = last.offset + 1;
        if (pending.length >= 10_000) await write();
      }
      await write();
      const storedTime = await store.get(STREAM_TIME_KEY);
      if (storedTime) streamTime = Math.max(streamTime, Number(decoder.decode(storedTime)));
      const storedOrigins = await store.get(APPLIED_ORIGINS_KEY);
      for (const [entry, applied] of storedOrigins ? (JSON.parse(decoder.decode(storedOrigins)) as Array<[string, [number, number]]>) : []) {
        const bar = entry.indexOf('|');
        const source = entry.slice(bar + 1);
        const topics = bar < 0 ? this.subTopology.sources.filter((node) => node.internal).map((node) => node.topic) : [entry.slice(0, bar)];
        for (const topic of topics) {
          const marks = this.#marksOf(topic);
          const known = marks.get(source);
          if (!known || known[0] < applied[0] || (known[0] === applied[0] && known[1] < applied[1])) marks.set(source, [...applied]);
        }
      }
      const storedPositions = await store.get(INPUT_OFFSETS_KEY);
      for (const position of storedPositions ? (JSON.parse(decoder.decode(storedPositions)) as TopicPartitionOffset[]) : []) {
        if ((positions.get(position.topic)?.offset ?? -1) < position.offset) positions.set(position.topic, position);
      }
    }
    this.#streamTime = streamTime;
    this.#lastInput = { clock: this.clock.now(), streamTime };
    for (const operator of this.operators) await operator.restore(withoutMeta(this.stores.get(operator.storeName)!.entries()), streamTime);
    for (const position of positions.values()) this.#positions.set(position.topic, position);
    return { records: restored, positions: [...positions.values()] };
  }

  openWindows(): number {
    return this.operators.reduce((sum, operator) => sum + operator.openWindows(), 0);
  }

  /** Stops accepting records (after a fatal error or on close). */
  halt(): void {
    this.#halted = true;
  }
}

async function* withoutMeta(entries: AsyncIterable<readonly [Uint8Array, Uint8Array]>): AsyncIterable<readonly [Uint8Array, Uint8Array]> {
  for await (const entry of entries) if (!isMetaKey(entry[0])) yield entry;
}

function signalValue(signal: Exclude<Signal, { type: 'tick' }>): unknown {
  return signal.type === 'window' ? { start: signal.start, end: signal.end, value: signal.value } : signal.value;
}

function safeJson(value: unknown): Uint8Array | null {
  if (value === undefined) return null;
  if (value instanceof Uint8Array) return value;
  try {
    return encoder.encode(JSON.stringify(value) ?? 'null');
  } catch {
    return encoder.encode(JSON.stringify(String(value)));
  }
}
