// Spins forever for windows flagged `hang` (a busy loop: the worker cannot even answer messages),
// or never settles for windows flagged `stall` (an idle hang).
import { threadId } from 'node:worker_threads';

export default async function maybeHang(window) {
  if (window.value.hang) {
    for (;;) {
      // busy
    }
  }
  if (window.value.stall) await new Promise(() => {});
  return { n: window.value.n, threadId };
}
