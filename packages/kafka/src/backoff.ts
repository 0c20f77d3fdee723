/** Backoff after a failed request of a group member: doubles from the first value up to the second. */
export const BACKOFF_MS = [100, 5_000] as const;

/** The wait before retry number `attempt` (from 0), give or take a fifth. */
export const backoff = (attempt: number) => Math.min(BACKOFF_MS[1], BACKOFF_MS[0] * 2 ** attempt) * (0.8 + Math.random() * 0.4);

/** A wait that does not keep the process alive. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref?.());
