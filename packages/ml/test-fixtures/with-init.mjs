// Exports a named handler (no default) and an init() that counts its runs in this worker.
import { threadId } from 'node:worker_threads';

let initRuns = 0;
let initFinished = false;

export async function init() {
  initRuns += 1;
  await new Promise((resolve) => setTimeout(resolve, 20));
  initFinished = true;
}

export function predict(window) {
  return { n: window.value.n, threadId, initRuns, initFinished };
}
