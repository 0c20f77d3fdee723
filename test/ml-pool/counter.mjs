/** Counts the messages this worker gets from the pool (one load, then one per batch) and tags each window's result with the count. */
import { parentPort, threadId } from 'node:worker_threads';

let messages = 0;
parentPort.on('message', () => { messages += 1; });

export default async function tag(window) {
  await Promise.resolve();
  return { key: window.key, start: window.start, n: window.value.length, thread: threadId, message: messages };
}
