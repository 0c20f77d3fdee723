import type { HandOffOffer } from '../context.js';
import type { Metrics } from '../metrics.js';
import type { RecordSignal } from '../signals.js';
import type { Task } from '../task.js';

/**
 * A record one task hands to another in process (see {@link Task.handOff}): the record signal the
 * reading task processes (its origin is the upstream record, for dead letters), with the replay
 * stamp its copy in the topic would carry, to detect replays (see origin.ts).
 */
export interface HandedOff extends RecordSignal {
  readonly replaySource: string;
  readonly replayOffset: number;
  readonly replayIndex: number;
}

/** Records a batch handed off for one topic, in the order written. */
export interface HandOffRun {
  readonly target: Task;
  readonly topic: string;
  readonly records: HandedOff[];
}

/**
 * The writing half of the local hand-off: per internal topic, the local task that takes this
 * task's records for it directly, and what the current batch handed off. When a target is set is
 * the app's decision (see runtime/hand-offs.ts).
 */
export class OutgoingHandOffs {
  /** Per internal topic, the task of this partition that takes its records directly. */
  readonly #targets = new Map<string, Task>();
  /** Records handed off during the current batch, in runs of one topic. */
  #runs: HandOffRun[] = [];

  constructor(private readonly metrics: Metrics) {}

  /** Takes the record when a local task takes its topic; false when it must go through the topic. */
  offer(offer: HandOffOffer): boolean {
    const { topic } = offer;
    const target = this.#targets.get(topic);
    if (!target) return false;
    // In the order written, as runs of one topic: the reading task meets the records of two
    // topics interleaved as they were written, as through the topics themselves.
    let run = this.#runs[this.#runs.length - 1];
    if (!run || run.topic !== topic) this.#runs.push((run = { target, topic, records: [] }));
    run.records.push({
      type: 'record',
      key: offer.key,
      value: offer.value,
      timestamp: offer.timestamp,
      origin: offer.upstream,
      replaySource: offer.replaySource,
      replayOffset: offer.replayOffset,
      replayIndex: offer.replayIndex,
    });
    this.metrics.recordsHandedOff++;
    return true;
  }

  /** The runs handed off since the last call, in the order written; clears them. */
  take(): readonly HandOffRun[] {
    const runs = this.#runs;
    if (runs.length > 0) this.#runs = [];
    return runs;
  }

  target(topic: string): Task | undefined {
    return this.#targets.get(topic);
  }

  setTarget(topic: string, target: Task | undefined): void {
    if (target) this.#targets.set(topic, target);
    else this.#targets.delete(topic);
  }
}
