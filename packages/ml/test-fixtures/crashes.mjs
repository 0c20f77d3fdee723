// Kills its worker in the ways a model can: `exit` calls process.exit, `throwLater` throws from a
// timer (an uncaught error), `exitLater` exits after answering, while its worker is idle, and
// `exitAfterAnswer` exits the moment its answer has been posted. With `markerPath`, it crashes only the first time, across workers:
// the marker file remembers that the crash already happened.
import { existsSync, writeFileSync } from 'node:fs';
import { threadId } from 'node:worker_threads';

export default async function maybeCrash(window) {
  const { markerPath } = window.value;
  const shouldCrash = markerPath === undefined || !existsSync(markerPath);
  if (shouldCrash && markerPath !== undefined) writeFileSync(markerPath, 'crashed');
  if (shouldCrash && window.value.exit) process.exit(3);
  if (shouldCrash && window.value.throwLater) {
    setTimeout(() => {
      throw new TypeError(`uncaught in ${window.key}`);
    }, 0);
    await new Promise(() => {});
  }
  if (window.value.exitLater) setTimeout(() => process.exit(4), 20);
  if (window.value.exitAfterAnswer) setImmediate(() => process.exit(6));
  return { n: window.value.n, threadId };
}
