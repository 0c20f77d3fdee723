import type { Clock } from '../../clock.js';
import type { CaughtUp } from '../../transport/types.js';
import type { StatefulOperator } from '../context.js';
import type { TickSignal } from '../signals.js';

/** How soon a task that found the log's word lagging the clock looks again (see nextWakeUp). */
const IDLE_RECHECK_MS = 100;

/** What the keeper needs of its task and app. */
export interface StreamTimeOptions {
  readonly clock: Clock;
  readonly time: 'event' | 'processing';
  /** Quiet time after which stream time follows the clock; undefined disables it. */
  readonly idleTimeoutMs: number | undefined;
  /** The task's source topics. */
  readonly sourceTopics: readonly string[];
  /** Whether the log says the task has read everything of its partition of `topic`, and since when. */
  caughtUp(topic: string): CaughtUp | undefined;
  /** The task's stateful operators: what is due, and when. */
  readonly operators: readonly StatefulOperator[];
  /** Carries a tick through the task's operator graph (stream time moved and something is due). */
  tick(tick: TickSignal): void;
}

/**
 * A task's stream time: the largest timestamp it has seen (in processing time, the clock), and,
 * in event time, the idle timeout that lets a quiet task's stream time follow the clock. Moving it
 * ticks the operator graph when a window or row is due; `nextWakeUp` says when timers should look.
 */
export class StreamTimeKeeper {
  #streamTime = -Infinity;
  /** Clock time and stream time when the last record arrived (for the idle timeout). */
  #lastInput: { clock: number; streamTime: number };

  constructor(private readonly options: StreamTimeOptions) {
    this.#lastInput = { clock: options.clock.now(), streamTime: -Infinity };
  }

  /** The task's stream time: the largest timestamp seen (or the clock, in processing time). */
  get current(): number {
    return this.#streamTime;
  }

  /** After a restore: stream time is what the state recorded, and quiet time counts from now. */
  restore(streamTime: number): void {
    this.#streamTime = streamTime;
    this.#lastInput = { clock: this.options.clock.now(), streamTime };
  }

  /** Moves stream time forward (never back) and lets window operators close what is due. */
  advance(streamTime: number): void {
    if (streamTime <= this.#streamTime) return;
    this.#streamTime = streamTime;
    // Only stateful operators act on time, and only when something of theirs is due: most records
    // move stream time without closing anything, and need not carry a tick through the graph.
    if (!this.#somethingDue(streamTime)) return;
    this.options.tick({ type: 'tick', streamTime });
  }

  #somethingDue(streamTime: number): boolean {
    for (const operator of this.options.operators) if (operator.hasDue(streamTime)) return true;
    return false;
  }

  /** The stream time that `punctuate(now)` reaches. */
  reachedBy(now: number): number {
    return this.options.time === 'processing' ? now : this.idleStreamTime(now);
  }

  /**
   * Timer work: in processing time, stream time is the clock; in event time, once the task has
   * been quiet for the idle timeout, stream time follows the clock from there on.
   */
  punctuate(now: number): void {
    if (this.options.time === 'processing') {
      this.advance(now);
    } else {
      this.advance(this.idleStreamTime(now));
    }
  }

  /**
   * Event time: the stream time of a task quiet since its last record, at clock time `now`. Quiet
   * means the log has kept saying, for the idle timeout, that there is nothing more to read; stream
   * time then follows the clock up to the log's last such answer. A task whose input waits
   * (backpressure, a busy process, a broker that does not answer, a partition just assigned) is
   * behind, not quiet: its stream time waits, and quiet time counts again once the log answers.
   */
  idleStreamTime(now: number): number {
    return this.#idleStreamTime(now, true);
  }

  /** The stream time the task has at clock time `now` (what `punctuate(now)` would reach), for metrics: changes nothing. */
  peek(now: number): number {
    return this.options.time === 'processing' ? now : this.#idleStreamTime(now, false);
  }

  /** See {@link idleStreamTime}; `countdown`: whether the quiet time may start counting afresh. */
  #idleStreamTime(now: number, countdown: boolean): number {
    const { idleTimeoutMs } = this.options;
    if (idleTimeoutMs === undefined || this.#lastInput.streamTime === -Infinity) return this.#streamTime;
    let quietSince = -Infinity;
    let confirmedAt = now;
    for (const topic of this.options.sourceTopics) {
      const caughtUp = this.options.caughtUp(topic);
      if (caughtUp === undefined) {
        if (countdown) this.restartIdleCountdown();
        return this.#streamTime;
      }
      quietSince = Math.max(quietSince, now - caughtUp.forMs);
      confirmedAt = Math.min(confirmedAt, now - caughtUp.confirmedAgoMs);
    }
    let lastInput = this.#lastInput;
    // The log's answers broke off since the last record (an outage): quiet counts from their return.
    if (quietSince > lastInput.clock) {
      lastInput = { clock: quietSince, streamTime: this.#streamTime };
      if (countdown) this.#lastInput = lastInput;
    }
    const idleSince = lastInput.clock + idleTimeoutMs;
    return confirmedAt >= idleSince ? Math.max(this.#streamTime, lastInput.streamTime + (confirmedAt - idleSince)) : this.#streamTime;
  }

  /** Quiet time counts from now (after records arrive, after a pause for backpressure, or while input waits). */
  restartIdleCountdown(from = this.options.clock.now()): void {
    this.#lastInput = { clock: from, streamTime: this.#streamTime };
  }

  /** The clock time at which the task next has timer work, if any. */
  nextWakeUp(): number | undefined {
    let deadline: number | undefined;
    for (const operator of this.options.operators) {
      const due = operator.nextDeadline();
      if (due !== undefined && (deadline === undefined || due < deadline)) deadline = due;
    }
    if (deadline === undefined) return undefined;
    if (this.options.time === 'processing') return deadline;
    const { idleTimeoutMs } = this.options;
    if (idleTimeoutMs === undefined || this.#lastInput.streamTime === -Infinity) return undefined;
    const wakeUp = this.#lastInput.clock + idleTimeoutMs + Math.max(0, deadline - this.#lastInput.streamTime);
    // Due already, yet not closed: the log's last answer lags the clock; ask again a little later.
    const now = this.options.clock.now();
    return wakeUp > now ? wakeUp : now + IDLE_RECHECK_MS;
  }
}
