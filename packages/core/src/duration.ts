import { ConfigError } from './errors.js';

/** A span of time: milliseconds as a number, or a string such as `'500ms'`, `'10s'`, `'5m'`, `'1h'`, `'1d'`. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`;

const unitMs = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const durationPattern = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/**
 * Converts a {@link Duration} to whole milliseconds, once, at the API edge.
 * Throws a {@link ConfigError} naming `what` and the bad value.
 *
 * @example
 * toMs('10s', 'window size'); // 10000
 */
export function toMs(duration: Duration, what: string, { allowZero = false } = {}): number {
  let ms: number;
  if (typeof duration === 'number') {
    ms = duration;
  } else if (typeof duration === 'string') {
    const match = durationPattern.exec(duration.trim());
    if (!match) {
      throw new ConfigError(`${what}: invalid duration ${JSON.stringify(duration)} (use a number of ms or e.g. '500ms', '10s', '5m', '1h', '1d')`);
    }
    ms = Number(match[1]) * unitMs[match[2] as keyof typeof unitMs];
  } else {
    throw new ConfigError(`${what}: invalid duration ${String(duration)} (use a number of ms or e.g. '10s')`);
  }
  if (!Number.isFinite(ms) || !Number.isInteger(ms) || ms < 0 || (ms === 0 && !allowZero)) {
    throw new ConfigError(`${what}: invalid duration ${typeof duration === 'number' ? String(duration) : JSON.stringify(duration)} (must be a ${allowZero ? 'non-negative' : 'positive'} whole number of milliseconds)`);
  }
  return ms;
}
