import { partitionKey, systemClock, type CaughtUp, type TopicPartition } from '@eddy/core';

/** A partition's offsets as the broker gave them: its first and its end offset. */
export interface PartitionOffsets {
  readonly partition: number;
  readonly low: number;
  readonly high: number;
}

/** What an {@link EndWatch} needs: the broker's offsets of a topic, and a clock. */
export interface EndWatchOptions {
  /** Asks the broker for the first and end offsets of every partition of a topic. */
  readonly readOffsets: (topic: string) => Promise<readonly PartitionOffsets[]>;
  /** How often to ask. */
  readonly intervalMs: number;
  /**
   * How far behind an answer the member may be and still keep up: it must have delivered the end
   * an answer reported within this long. Answers further apart than this, or later, break the
   * member's quiet: it may have missed records.
   */
  readonly breakAfterMs: number;
  readonly now?: () => number;
  readonly log: (message: string, fields: Record<string, unknown>) => void;
}

interface Watched {
  readonly topic: string;
  readonly partition: number;
  /** The next offset the member delivers; undefined until it has delivered or moved (then: where the log starts). */
  position: number | undefined;
  /** The end offset of the last answer. */
  end: number | undefined;
  /** Answers whose end the member had not reached yet: asked at, end. */
  readonly awaiting: Array<{ readonly askedAt: number; readonly end: number }>;
  /** When the latest answer that the member kept up with was asked for, and when that unbroken run of them began. */
  confirmedAt: number | undefined;
  quietSince: number | undefined;
}

/**
 * Keeps asking the broker where each assigned partition ends, so that a member can say whether it
 * keeps up with the log by the broker's word (see `TransportConsumer.caughtUp`): a gap in delivery
 * (an outage, a slow first fetch, a long pause) is then never taken for a quiet input.
 *
 * - An answer counts from the moment it was asked for: its end covers every record written
 *   before then. The member kept up with it once it has delivered up to that end, within
 *   `breakAfterMs`; a busy member that keeps up with its input keeps up with every answer.
 * - An answer it did not keep up with, answers that stop coming or come late break the run: the
 *   partition counts as quiet again only from a later answer on.
 * - After the broker did not answer at all for a while (an outage), quiet counts only after as long
 *   again: producers that could not write meanwhile deliver what they kept once they reach the
 *   broker again, retrying on their own schedule.
 */
export class EndWatch {
  readonly #options: EndWatchOptions;
  readonly #now: () => number;
  readonly #watched = new Map<string, Watched>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #asking = false;
  /** When the broker last answered (any topic), and the end of the last break in its answers, with its length. */
  #answeredAt: number | undefined;
  #lastBreak: { readonly endedAt: number; readonly lengthMs: number } | undefined;

  constructor(options: EndWatchOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => systemClock.now());
  }

  /** A partition newly assigned: not known to keep up until the broker says so. */
  assigned({ topic, partition }: TopicPartition): void {
    this.#watched.set(partitionKey(topic, partition), { topic, partition, position: undefined, end: undefined, awaiting: [], confirmedAt: undefined, quietSince: undefined });
    if (!this.#timer) {
      this.#timer = setInterval(() => void this.ask(), this.#options.intervalMs);
      this.#timer.unref?.();
    }
  }

  released({ topic, partition }: TopicPartition): void {
    this.#watched.delete(partitionKey(topic, partition));
    if (this.#watched.size === 0) this.stop();
  }

  /** The member will deliver from `offset` next (a seek): what was confirmed before no longer holds. */
  moved({ topic, partition }: TopicPartition, offset: number): void {
    const watched = this.#watched.get(partitionKey(topic, partition));
    if (!watched) return;
    watched.position = offset;
    watched.awaiting.length = 0;
    watched.confirmedAt = watched.quietSince = undefined;
  }

  /** The member has delivered everything before `next` (records, or markers it moved past). */
  delivered({ topic, partition }: TopicPartition, next: number): void {
    const watched = this.#watched.get(partitionKey(topic, partition));
    if (!watched || (watched.position !== undefined && watched.position >= next)) return;
    watched.position = next;
    const now = this.#now();
    while (watched.awaiting.length > 0 && watched.awaiting[0]!.end <= next) {
      const { askedAt } = watched.awaiting.shift()!;
      if (now - askedAt <= this.#options.breakAfterMs) this.#keptUp(watched, askedAt);
      else watched.confirmedAt = watched.quietSince = undefined;
    }
  }

  caughtUp({ topic, partition }: TopicPartition): CaughtUp | undefined {
    const watched = this.#watched.get(partitionKey(topic, partition));
    if (!watched || watched.confirmedAt === undefined || watched.quietSince === undefined) return undefined;
    const now = this.#now();
    this.#expire(watched, now);
    if (watched.confirmedAt === undefined || now - watched.confirmedAt > this.#options.breakAfterMs) return undefined;
    const quietSince = Math.max(watched.quietSince, this.#lastBreak ? this.#lastBreak.endedAt + this.#lastBreak.lengthMs : -Infinity);
    if (quietSince > now) return undefined;
    return { forMs: now - quietSince, confirmedAgoMs: now - watched.confirmedAt };
  }

  /** Records of the partition not delivered yet, as of the last answer. */
  lag({ topic, partition }: TopicPartition): number | undefined {
    const watched = this.#watched.get(partitionKey(topic, partition));
    if (!watched || watched.end === undefined || watched.position === undefined) return undefined;
    return Math.max(0, watched.end - watched.position);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One round of questions, one per topic watched; a round still running is not doubled. */
  async ask(): Promise<void> {
    if (this.#asking) return;
    this.#asking = true;
    try {
      const topics = new Set([...this.#watched.values()].map((watched) => watched.topic));
      await Promise.all([...topics].map((topic) => this.#askAbout(topic)));
    } finally {
      this.#asking = false;
    }
  }

  async #askAbout(topic: string): Promise<void> {
    const askedAt = this.#now();
    let answer: readonly PartitionOffsets[];
    try {
      answer = await withDeadline(this.#options.readOffsets(topic), this.#options.breakAfterMs);
    } catch (error) {
      this.#options.log('the broker did not say where partitions end; they count as behind until it does', { topic, error: String(error) });
      return;
    }
    if (this.#answeredAt !== undefined && askedAt - this.#answeredAt > this.#options.breakAfterMs) {
      this.#lastBreak = { endedAt: askedAt, lengthMs: askedAt - this.#answeredAt };
      this.#options.log('the broker answers again after a break; partitions count as quiet only after as long again', { breakMs: this.#lastBreak.lengthMs });
    }
    this.#answeredAt = Math.max(askedAt, this.#answeredAt ?? -Infinity);
    for (const { partition, low, high } of answer) {
      const watched = this.#watched.get(partitionKey(topic, partition));
      if (!watched) continue;
      watched.end = high;
      // Nothing delivered or moved yet: the member starts where the log starts.
      if ((watched.position ?? low) >= high) this.#keptUp(watched, askedAt);
      else watched.awaiting.push({ askedAt, end: high });
    }
  }

  /** The member has delivered everything written before `askedAt`. */
  #keptUp(watched: Watched, askedAt: number): void {
    this.#expire(watched, askedAt);
    if (watched.confirmedAt === undefined || watched.quietSince === undefined) watched.quietSince = askedAt;
    watched.confirmedAt = Math.max(askedAt, watched.confirmedAt ?? -Infinity);
  }

  /** Breaks the run if the member has not kept up with an answer in time, or if answers stopped. */
  #expire(watched: Watched, now: number): void {
    const late = watched.awaiting.length > 0 && now - watched.awaiting[0]!.askedAt > this.#options.breakAfterMs;
    const stale = watched.confirmedAt !== undefined && now - watched.confirmedAt > this.#options.breakAfterMs;
    if (late) watched.awaiting.length = 0;
    if (late || stale) watched.confirmedAt = watched.quietSince = undefined;
  }
}

/** Resolves with `promise`, or rejects once `ms` have passed: a late answer is no answer. */
function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  // The late answer, or its failure, is dropped.
  promise.catch(() => undefined);
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
