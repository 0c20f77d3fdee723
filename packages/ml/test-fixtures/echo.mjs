// Doubles `value.n` after waiting `value.delayMs`, so that tests can make workers finish out of order;
// throws for windows flagged `fail`.
import { threadId } from 'node:worker_threads';

export default async function echo(window) {
  if (window.value.fail) throw new RangeError(`bad window ${window.key}`);
  if (window.value.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, window.value.delayMs));
  return { key: window.key, doubled: window.value.n * 2, threadId };
}
