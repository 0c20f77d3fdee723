import type { IncomingRecord } from '../../transport/types.js';
import type { Metrics } from '../metrics.js';
import { decodeReplayStamp, ORIGIN_HEADER, type ReplayMark } from '../origin.js';

/** The replay marks as each commit batch stores them: `["<topic>|<upstream>", [offset, index]]`. */
export type StoredReplayMarks = Array<[string, ReplayMark]>;

/**
 * Drops repartition records whose effect the task's state already holds: an upstream task that
 * crashed before its commit replays its input and writes those records again, with the same
 * replay stamps (see origin.ts). Records of one upstream partition arrive in stamp order, so one
 * high-water mark per upstream partition tells.
 */
export class ReplayGuard {
  /** By repartition topic read, then by upstream input partition. */
  readonly #marks = new Map<string, Map<string, ReplayMark>>();

  constructor(
    private readonly metrics: Metrics,
    /** The internal topics the task reads (marks stored before marks were per topic hold for each). */
    private readonly internalTopics: readonly string[],
  ) {}

  /** Whether a record read from a repartition topic repeats one already applied (see {@link isReplay}). */
  alreadyApplied(incoming: IncomingRecord): boolean {
    const stamp = incoming.decoded?.origin ?? decodeReplayStamp(incoming.headers[ORIGIN_HEADER]);
    return stamp !== undefined && this.isReplay(incoming.topic, stamp[0], stamp[1], stamp[2]);
  }

  /**
   * Whether a record of this stamp was applied already from this repartition topic; if not, marks
   * it applied. Per topic: one input record may go through two repartition topics that one task
   * reads (two re-keyed branches merged), as the same stamp in each.
   */
  isReplay(topic: string, source: string, offset: number, index: number): boolean {
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

  /** The marks as a commit batch stores them; encode them at once (marks move in place). */
  stored(): StoredReplayMarks {
    return [...this.#marks].flatMap(([topic, marks]) => [...marks].map(([source, applied]): [string, ReplayMark] => [`${topic}|${source}`, applied]));
  }

  /**
   * Takes in marks a store held (see {@link stored}), keeping the later of two. Entries from before
   * marks were per topic have no `<topic>|` and hold for every repartition topic of the task.
   */
  restore(stored: StoredReplayMarks): void {
    for (const [entry, applied] of stored) {
      const bar = entry.indexOf('|');
      const source = entry.slice(bar + 1);
      const topics = bar < 0 ? this.internalTopics : [entry.slice(0, bar)];
      for (const topic of topics) {
        const marks = this.#marksOf(topic);
        const known = marks.get(source);
        if (!known || known[0] < applied[0] || (known[0] === applied[0] && known[1] < applied[1])) marks.set(source, [...applied]);
      }
    }
  }

  /** The replay marks of one repartition topic read, by upstream input partition. */
  #marksOf(topic: string): Map<string, ReplayMark> {
    let marks = this.#marks.get(topic);
    if (!marks) this.#marks.set(topic, (marks = new Map()));
    return marks;
  }
}
