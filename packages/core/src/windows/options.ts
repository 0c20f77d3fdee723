import { toMs, type Duration } from '../duration.js';

/** Options every window kind takes. */
export interface WindowOptions {
  /** How long after a window's end stragglers are still accepted. Default 0. */
  grace?: Duration;
  /** The state store name; defaults to one derived from the window's parameters. */
  name?: string;
}

/** The grace period in milliseconds; `what` names the window in the error of a bad value. */
export function graceMs(options: WindowOptions | undefined, what: string): number {
  return options?.grace === undefined ? 0 : toMs(options.grace, `${what} grace`, { allowZero: true });
}
