// Counts the messages this worker receives from the pool (one load, then one per batch), so that
// tests can see how windows were grouped without trusting the pool's own bookkeeping.
import { parentPort, threadId } from 'node:worker_threads';

let messagesReceived = 0;
parentPort.on('message', () => {
  messagesReceived += 1;
});

export default async function countMessages(window) {
  // The pool's listener runs before ours for the same message; yielding once lets ours count it.
  await Promise.resolve();
  return { n: window.value.n, threadId, message: messagesReceived };
}
