import { performance } from 'node:perf_hooks';
import type { Clock, TimerHandle } from '@eddy/core';

/**
 * A clock that starts at `startTime` and runs `speed` times faster than the wall clock: the demo
 * replays sensor history in compressed time. The engine reads time only through its `Clock`, so
 * everything that depends on time (the idle timeout, commits) runs compressed too.
 *
 * @example
 * const clock = compressedClock({ startTime: Date.UTC(2025, 0, 1), speed: 100 });
 * const app = createApp({ id: 'replay', clock });
 */
export function compressedClock({ startTime, speed }: { startTime: number; speed: number }): Clock {
  if (!(speed > 0) || !Number.isFinite(speed)) throw new RangeError(`compressedClock: speed must be a positive number, got ${speed}`);
  const origin = performance.now();
  return {
    now: () => startTime + Math.floor((performance.now() - origin) * speed),
    setTimeout(callback, delayMs): TimerHandle {
      // Rounded up: a Node timer truncates fractions of a millisecond and would fire early.
      // Like the system clock's timers, these never keep the process alive on their own.
      const timer = setTimeout(callback, Math.ceil(Math.max(0, delayMs) / speed));
      timer.unref();
      return { cancel: () => clearTimeout(timer) };
    },
  };
}
