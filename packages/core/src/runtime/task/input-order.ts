import type { IncomingRecord } from '../../transport/types.js';

/** How often a task whose input waits looks again whether the empty input has caught up. */
const WAIT_RECHECK_MS = 50;

/**
 * What can be said of an empty input, as of a record of another input delivered some time ago:
 * - `ready`: nothing more to come that was written before that record;
 * - `coming`: records are known to be on their way, or word of whether there are: the log shows
 *   records not delivered yet, or has not said yet where the input ends, or its next answer is
 *   due (its last is older than the record); or a local task has written records to it, or is
 *   writing them, that the reader has not read;
 * - `unsure`: neither: the log has stopped saying the reader keeps up (its answers are late or
 *   missing) though it shows nothing unread, or a local task that writes the input still waits on
 *   its own inputs.
 */
export type InputOutlook = 'ready' | 'coming' | 'unsure';

/** The empty input records wait for, and since when (clock time). */
export interface InputWait {
  readonly topic: string;
  readonly since: number;
}

/** One source of an ordered task, as the merge sees it. */
export interface OrderedSource {
  readonly topic: string;
  /** Ties go to the lower rank first: a table update applies before a stream record of its timestamp. */
  readonly rank: number;
}

/** What the merge needs of its task. */
export interface InputOrderOptions {
  readonly sources: readonly OrderedSource[];
  /**
   * How long the task waits for an empty input that may still have records, none known (see
   * `maxInputWait`); records known to be coming are waited for until they come. `0`: never waits.
   */
  readonly maxWaitMs: number;
  /** Records buffered across the task's inputs past which it stops waiting, even for records known to be coming. */
  readonly maxBuffered: number;
  /** What is to come of an empty input that was written before a record delivered `deliveredAgoMs` ago (see {@link InputOutlook}). */
  outlook(topic: string, deliveredAgoMs: number): InputOutlook;
  /** The timestamps a delivered batch (of one input) is ordered by: its records' event times. */
  timestampsOf(records: readonly IncomingRecord[]): number[];
  /** A wait ran out (or the buffer filled): records go ahead of an input that may still have earlier ones. */
  expired(waitingFor: string, waitedMs: number): void;
}

interface Queue {
  readonly source: OrderedSource;
  /** The source's place among the task's sources: the last tie-break. */
  readonly order: number;
  /** Batches as delivered (with the clock time of each delivery), and where the next record to take stands. */
  batches: (readonly IncomingRecord[])[];
  timestamps: number[][];
  deliveredAt: number[];
  batch: number;
  index: number;
  /** Offset ranges of this input that hold nothing to process, each due once the records before it are taken. */
  readonly skips: Array<{ readonly from: number; readonly to: number }>;
}

/** A run with no skips after it. */
export const noSkips: Run['skips'] = [];

/** A stretch of one input's records, taken in order, and the skips due after it (either may be empty). */
export interface Run {
  readonly topic: string;
  readonly records: readonly IncomingRecord[];
  readonly skips: ReadonlyArray<{ readonly from: number; readonly to: number }>;
}

/**
 * The order in which a task with several inputs processes their records, as Kafka Streams'
 * partition group does: always the record with the smallest timestamp among the inputs' next
 * records (each input in offset order), so that a table update older than a stream record is
 * applied before it, and two joined streams meet in event time. Batches wait here until every
 * input either has records or has nothing more to come for now; an input that may still have
 * records is waited for: while they are known to be coming (the log shows them, or a local task
 * wrote them) or the log's word on them is due, until they come or the word does, as Kafka Streams
 * waits for a partition whose lag it knows; while neither is known (the log has stopped answering,
 * the task that writes it still waits on its own inputs), at most `maxWaitMs`. Past
 * `maxBuffered` records waiting, or with `maxWaitMs` 0, the others go ahead at once.
 */
export class InputOrder {
  readonly #queues = new Map<string, Queue>();
  #buffered = 0;
  /** Clock time since which the merge has been held up by an empty input, if it is, and that input. */
  #waitingSince: number | undefined;
  #waitingFor: string | undefined;
  /** The wait ran out: records go ahead until every input has records again, or nothing more to come. */
  #expired = false;

  constructor(private readonly options: InputOrderOptions) {
    options.sources.forEach((source, order) => this.#queues.set(source.topic, { source, order, batches: [], timestamps: [], deliveredAt: [], batch: 0, index: 0, skips: [] }));
  }

  /** Records waiting to be processed. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Whether `topic` has records or skips waiting (a skip then waits its turn behind them). */
  holds(topic: string): boolean {
    const queue = this.#queues.get(topic);
    return queue !== undefined && (queue.batch < queue.batches.length || queue.skips.length > 0);
  }

  /** A batch of one input, in offset order, delivered at clock time `now`. */
  add(records: readonly IncomingRecord[], now: number): void {
    const queue = this.#queues.get(records[0]!.topic);
    if (!queue) return;
    queue.batches.push(records);
    queue.timestamps.push(this.options.timestampsOf(records));
    queue.deliveredAt.push(now);
    this.#buffered += records.length;
  }

  /** Offsets `from` to `to` of `topic` hold nothing: due after the records of it that wait here. */
  addSkip(topic: string, from: number, to: number): void {
    this.#queues.get(topic)?.skips.push({ from, to });
  }

  /** Drops everything that waits (the task closes; its next owner reads it again from the last commit). */
  clear(): void {
    for (const queue of this.#queues.values()) {
      queue.batches = [];
      queue.timestamps = [];
      queue.deliveredAt = [];
      queue.batch = queue.index = 0;
      queue.skips.length = 0;
    }
    this.#buffered = 0;
    this.#waitingSince = undefined;
    this.#expired = false;
  }

  /**
   * Takes what can be processed now, as of clock time `now`, in timestamp order: runs of one input
   * each. Stops at an empty input that may still have earlier records, until the wait runs out.
   */
  take(now: number): Run[] {
    const runs: Run[] = [];
    for (;;) {
      let best: Queue | undefined;
      let next: Queue | undefined;
      for (const queue of this.#queues.values()) {
        if (queue.batch >= queue.batches.length) continue;
        if (!best || this.#before(queue, best)) {
          next = best;
          best = queue;
        } else if (!next || this.#before(queue, next)) {
          next = queue;
        }
      }
      // An empty input holds the next record up unless the log says, by an answer asked for after
      // that record came, that the input has nothing written before it: a record written to the
      // other input earlier (a stream record before a later table update) is in any such answer.
      // It holds it up for as long as records (or that answer) are known to be coming to it, else
      // for at most maxWaitMs.
      let blockedBy: Queue | undefined;
      let coming = false;
      if (best && !this.#expired) {
        const deliveredAgoMs = now - best.deliveredAt[best.batch]!;
        for (const queue of this.#queues.values()) {
          if (queue.batch < queue.batches.length) continue;
          const outlook = this.options.outlook(queue.source.topic, deliveredAgoMs);
          if (outlook === 'ready') continue;
          blockedBy = queue;
          if (outlook === 'coming') {
            coming = true;
            break;
          }
        }
      }
      if (!best) {
        // Nothing waits: the skips of inputs with no records left are due now.
        this.#waitingSince = undefined;
        this.#expired = false;
        for (const queue of this.#queues.values()) if (queue.skips.length > 0) runs.push({ topic: queue.source.topic, records: [], skips: queue.skips.splice(0) });
        return runs;
      }
      if (blockedBy) {
        this.#waitingSince ??= now;
        this.#waitingFor = blockedBy.source.topic;
        const waited = now - this.#waitingSince;
        const waits = this.options.maxWaitMs > 0 && this.#buffered < this.options.maxBuffered && (coming || waited < this.options.maxWaitMs);
        if (waits) return runs;
        this.#expired = true;
        this.options.expired(blockedBy.source.topic, waited);
        continue;
      }
      if (!this.#expired) this.#waitingSince = undefined;
      runs.push(this.#takeRun(best, next));
    }
  }

  /** The input the merge has waited for since `since` (clock time), if it waits now. */
  waiting(): InputWait | undefined {
    return this.#expired || this.#waitingSince === undefined || this.#buffered === 0 || this.#waitingFor === undefined ? undefined : { topic: this.#waitingFor, since: this.#waitingSince };
  }

  /**
   * When the task should look again, if records wait: the wait's end, or a little later to see
   * whether the empty input caught up meanwhile (the log's word changes with no delivery).
   */
  wakeUp(now: number): number | undefined {
    if (this.#waitingSince === undefined || this.#buffered === 0) return undefined;
    // Records known to be coming are waited for past the wait's end: look again now and then.
    const end = this.#waitingSince + this.options.maxWaitMs;
    return end > now ? Math.min(end, now + WAIT_RECHECK_MS) : now + WAIT_RECHECK_MS;
  }

  /** Whether the next record of `a` goes before that of `b`: by timestamp, then rank, then source order. */
  #before(a: Queue, b: Queue): boolean {
    const at = a.timestamps[a.batch]![a.index]!;
    const bt = b.timestamps[b.batch]![b.index]!;
    if (at !== bt) return at < bt;
    return this.#tieBefore(a, b);
  }

  /** Between records of one timestamp: the lower rank first, then the earlier source. */
  #tieBefore(a: Queue, b: Queue): boolean {
    if (a.source.rank !== b.source.rank) return a.source.rank < b.source.rank;
    return a.order < b.order;
  }

  /** Takes records of `queue` up to (not past) the next record of `next`, and the skips due after them. */
  #takeRun(queue: Queue, next: Queue | undefined): Run {
    const batch = queue.batches[queue.batch]!;
    const timestamps = queue.timestamps[queue.batch]!;
    const start = queue.index;
    let end = start + 1;
    if (next) {
      const limit = next.timestamps[next.batch]![next.index]!;
      const inclusive = this.#tieBefore(queue, next);
      while (end < batch.length && (timestamps[end]! < limit || (inclusive && timestamps[end] === limit))) end++;
    } else {
      end = batch.length;
    }
    const records = start === 0 && end === batch.length ? batch : batch.slice(start, end);
    this.#buffered -= end - start;
    if (end === batch.length) {
      queue.batches[queue.batch] = queue.timestamps[queue.batch] = [];
      queue.batch++;
      queue.index = 0;
      if (queue.batch === queue.batches.length) {
        queue.batches = [];
        queue.timestamps = [];
        queue.deliveredAt = [];
        queue.batch = 0;
      }
    } else {
      queue.index = end;
    }
    // Skips wait for the records before them; with the input empty, they are due.
    const last = records[records.length - 1]!.offset;
    const skips = queue.skips.length > 0 ? this.#dueSkips(queue, last) : noSkips;
    return { topic: queue.source.topic, records, skips };
  }

  #dueSkips(queue: Queue, last: number): Array<{ from: number; to: number }> {
    if (queue.batches.length === 0) return queue.skips.splice(0);
    let count = 0;
    while (count < queue.skips.length && queue.skips[count]!.from <= last + 1) count++;
    return queue.skips.splice(0, count);
  }
}
