// @ts-check
// The worker-side bootstrap. Plain JavaScript (type-checked through JSDoc) rather than TypeScript,
// so that the very same file runs from `src/` under the tests and from `dist/` once built: Node 20
// cannot run a .ts file in a worker, and tsc copies this file to dist/ as it is (allowJs).

/** @import { ItemOutcome, SerializedError, WorkerApi, WorkerReport, WorkerSetup } from './worker-protocol.js' */

import { AsyncLocalStorage } from 'node:async_hooks';
import { parentPort, workerData } from 'node:worker_threads';
// comlink's package.json has no "exports" and its "main" is a UMD build, so both halves of the
// channel name the ES module files directly.
import { expose } from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';

if (parentPort === null) {
  throw new Error('@eddy/ml worker bootstrap must run inside a worker thread started by workerPool()');
}

const setup = /** @type {WorkerSetup} */ (workerData);

/** @type {((item: unknown) => unknown) | undefined} */
let handler;

/**
 * The item whose handler is running; callbacks it schedules (timers, promises) carry it too.
 * @type {AsyncLocalStorage<{ batchId: number; item: number }>}
 */
const runningItem = new AsyncLocalStorage();

/** @param {WorkerReport} report */
function report(report) {
  setup.progressPort.postMessage(report);
}

// Both run as the worker dies, in the context of the code that killed it: the pool can then blame
// the item that armed a fatal timer rather than the one running when it fired.
function reportDying() {
  const running = runningItem.getStore();
  if (running !== undefined) report({ kind: 'dying', ...running });
}
process.on('uncaughtExceptionMonitor', reportDying);
process.on('exit', reportDying);

/**
 * @param {unknown} error
 * @returns {SerializedError}
 */
function serializeError(error) {
  if (error instanceof Error) {
    return { message: error.message, name: error.name, stack: error.stack };
  }
  return { message: `a non-Error value was thrown: ${String(error)}`, name: 'Error' };
}

/** @type {WorkerApi} */
const api = {
  async load() {
    const module = await import(setup.moduleUrl);
    const candidate = module[setup.exportName];
    if (typeof candidate !== 'function') {
      const exported = Object.keys(module).join(', ') || 'nothing';
      throw new TypeError(
        `${setup.moduleUrl} has no function exported as '${setup.exportName}' (it exports: ${exported})`,
      );
    }
    handler = candidate;
    if (typeof module.init === 'function') await module.init();
  },

  async runBatch(items, batchId = 0) {
    if (handler === undefined) throw new Error('runBatch() was called before load()');
    const run = handler;
    /** @type {ItemOutcome[]} */
    const outcomes = [];
    // The pool times the first item from here, not from sending: a large batch takes a while to cross.
    report({ kind: 'progress', batchId, completed: 0 });
    // One at a time: when the worker hangs or dies, the pool knows from the progress reports
    // which item was running, and blames that one alone.
    for (const [index, item] of items.entries()) {
      let threw = false;
      try {
        outcomes.push({ ok: true, value: await runningItem.run({ batchId, item: index }, () => run(item)) });
      } catch (error) {
        threw = true;
        outcomes.push({ ok: false, error: serializeError(error) });
      }
      report({ kind: 'progress', batchId, completed: outcomes.length });
      // A model that threw may have left its state broken: the pool replaces this worker, and the
      // rest of the batch runs on another.
      if (threw) break;
    }
    return outcomes;
  },
};

expose(api, nodeEndpoint(parentPort));
