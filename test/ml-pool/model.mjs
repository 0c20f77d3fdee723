/**
 * A workerPool model for the ml-pool tests. Each window holds readings `{ k, v, ts, act?, sleep?, log? }`;
 * the model sums `v` and misbehaves the way a reading's `act` asks:
 * - 'throw': throws (and marks this worker as poisoned);
 * - 'exit': calls process.exit(7);
 * - 'spin': busy loop forever; 'stall': a promise that never settles;
 * - 'bomb': arms a timer that throws 30 ms later (an uncaught error kills the worker), then answers;
 * - 'flaky': throws on the first call for this window (calls are counted in the `log` dir).
 * `sleep` (ms) delays the answer; `log` (a directory) records every call, one line per call.
 */
import { appendFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';

let poisoned = false;

export default async function model(window) {
  const readings = window.value;
  const id = `${window.key}@${window.start}`;
  const log = readings.find((r) => r.log)?.log;
  if (log) appendFileSync(join(log, 'calls'), `${id}\n`);
  const acts = new Set(readings.map((r) => r.act).filter(Boolean));
  const sleep = Math.max(0, ...readings.map((r) => r.sleep ?? 0));
  if (acts.has('flaky')) {
    const calls = readFileSync(join(log, 'calls'), 'utf8').split('\n').filter((line) => line === id).length;
    if (calls === 1) throw new Error(`flaky first attempt of ${id}`);
  }
  if (acts.has('throw')) {
    poisoned = true;
    throw new RangeError(`model failed ${id} on thread ${threadId}`);
  }
  if (acts.has('exit')) process.exit(7);
  if (acts.has('spin')) for (;;) { /* busy */ }
  if (acts.has('stall')) await new Promise(() => {});
  if (sleep > 0) await new Promise((resolve) => setTimeout(resolve, sleep));
  // Armed as the model answers: the timer fires while the worker runs its next window.
  if (acts.has('bomb')) setTimeout(() => { throw new Error(`bomb of ${id}`); }, 30);
  const sum = readings.reduce((a, r) => a + (typeof r.v === 'number' ? r.v : 0), 0);
  return { key: window.key, start: window.start, end: window.end, n: readings.length, sum, thread: threadId, poisoned };
}

export function calls(log) {
  return existsSync(join(log, 'calls')) ? readFileSync(join(log, 'calls'), 'utf8').split('\n').filter(Boolean) : [];
}
