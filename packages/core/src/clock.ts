/** A handle returned by {@link Clock.setTimeout}. */
export interface TimerHandle {
  cancel(): void;
}

/** The only source of time in Eddy; injected so that tests can drive it. */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
}

/** The real clock: `Date.now()` and Node timers that do not keep the process alive. */
export const systemClock: Clock = {
  // The one place that reads the wall clock.
  // eslint-disable-next-line no-restricted-properties
  now: () => Date.now(),
  setTimeout(callback, delayMs) {
    const timer = setTimeout(callback, Math.max(0, delayMs));
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};
