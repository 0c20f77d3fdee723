import type { Clock, TimerHandle } from '../clock.js';

interface Timer {
  readonly at: number;
  readonly order: number;
  readonly callback: () => void;
  cancelled: boolean;
}

/** A clock that moves only when told to; timers run in due order, ties in creation order. */
export class VirtualClock implements Clock {
  #now: number;
  #order = 0;
  #timers: Timer[] = [];

  constructor(startTime: number) {
    this.#now = startTime;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const timer: Timer = { at: this.#now + Math.max(0, delayMs), order: this.#order++, callback, cancelled: false };
    this.#timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }

  /** The earliest live timer due at or before `time`, if any. */
  nextDue(time: number): number | undefined {
    this.#timers = this.#timers.filter((timer) => !timer.cancelled);
    let next: number | undefined;
    for (const timer of this.#timers) if (timer.at <= time && (next === undefined || timer.at < next)) next = timer.at;
    return next;
  }

  /** Moves to `time` (never back) and runs the timers due then. */
  runUntil(time: number): void {
    if (time > this.#now) this.#now = time;
    const due = this.#timers.filter((timer) => !timer.cancelled && timer.at <= this.#now).sort((a, b) => a.at - b.at || a.order - b.order);
    this.#timers = this.#timers.filter((timer) => !due.includes(timer) && !timer.cancelled);
    for (const timer of due) timer.callback();
  }
}
