import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { wrap, type Remote } from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { describeError, WorkerPoolError } from './errors.js';
import type { ItemOutcome, WorkerApi, WorkerReport, WorkerSetup } from './worker-protocol.js';

/**
 * Whose fault a lost batch is: the index of the item to blame (it ran past the timeout, or the
 * worker died of something its handler started), `earlier-batch` when the worker died of something
 * an item of an earlier batch started, `unknown` when nothing tells.
 */
export type Culprit = number | 'earlier-batch' | 'unknown';

/** How a batch ended, seen from the pool. Never a rejection: every way out is a value. */
export type BatchResult =
  /**
   * The worker answered: one outcome per item, in order, unless an item's handler threw; the
   * outcomes then stop at that failure, and the items after it did not run.
   */
  | { readonly kind: 'done'; readonly outcomes: ItemOutcome[] }
  /** The worker hung or died; the first `completed` items had finished, the next one was running. */
  | { readonly kind: 'lost'; readonly error: WorkerPoolError; readonly completed: number; readonly culprit: Culprit }
  /** The call failed while the worker lived on, e.g. a value that cannot be cloned. */
  | { readonly kind: 'rejected'; readonly error: unknown };

export interface PooledWorkerSetup {
  readonly id: number;
  readonly bootstrapUrl: URL;
  readonly moduleUrl: URL;
  readonly exportName: string;
  readonly timeoutMs: number;
  readonly initTimeoutMs: number;
  /** Called once if the worker dies or hangs, but not when the pool terminates it. */
  readonly onLost: (worker: PooledWorker, error: WorkerPoolError) => void;
}

type Call = { readonly lose: (error: WorkerPoolError) => void };

/** How long a call may go without news from the worker, and what it was doing meanwhile. */
type Deadline = { readonly ms: number; readonly task: string };

// Before the worker reports that a batch has arrived, and after its last item, the batch is crossing
// between threads: about as long as packing it, which sending measures. Generous, as it only has to
// catch a worker stuck while no item runs.
const crossingAllowanceMs = (packMs: number): number => 5_000 + 4 * packMs;

/**
 * One worker thread and the bookkeeping comlink lacks: a comlink call to a worker that exits never
 * settles, so every call in flight is tracked here and settled when the worker dies or hangs.
 */
export class PooledWorker {
  readonly id: number;
  readonly #setup: PooledWorkerSetup;
  readonly #worker: Worker;
  // Kept referenced for the worker's whole life: comlink releases the worker's side of the
  // channel once every proxy on it has been garbage-collected.
  readonly #remote: Remote<WorkerApi>;
  readonly #progressPort: MessagePort;
  readonly #calls = new Set<Call>();
  #alive = true;
  #exited = false;
  #terminatedByPool = false;
  #lastUncaughtError: unknown;
  #batchCount = 0;
  #onReport: ((report: WorkerReport) => void) | undefined;

  constructor(setup: PooledWorkerSetup) {
    this.id = setup.id;
    this.#setup = setup;
    const channel = new MessageChannel();
    this.#progressPort = channel.port1;
    const workerData: WorkerSetup = {
      moduleUrl: setup.moduleUrl.href,
      exportName: setup.exportName,
      progressPort: channel.port2,
    };
    this.#worker = new Worker(setup.bootstrapUrl, { workerData, transferList: [channel.port2] });
    this.#remote = wrap<WorkerApi>(nodeEndpoint(this.#worker));
    this.#progressPort.on('message', (report: WorkerReport) => this.#onReport?.(report));
    // The worker's own reference decides whether the process stays up; see `#call`.
    this.#progressPort.unref();
    // An uncaught error is always followed by 'exit', which reports it.
    this.#worker.on('error', (error) => {
      this.#lastUncaughtError = error;
    });
    this.#worker.on('exit', (exitCode) => {
      this.#exited = true;
      if (this.#terminatedByPool) return;
      // Node delivers the worker's last messages just before 'exit', but comlink settles a call
      // a few promise hops after its message: wait for those, so that an answer sent right before
      // the exit still counts.
      setImmediate(() => {
        const uncaught = this.#lastUncaughtError;
        const reason = uncaught === undefined ? `exited with code ${exitCode}` : `crashed: ${describeError(uncaught)}`;
        this.#lose(new WorkerPoolError('WORKER_CRASHED', `worker ${this.id} ${reason}`, { cause: uncaught, retriable: true }));
      });
    });
  }

  get alive(): boolean {
    return this.#alive && !this.#exited;
  }

  /** Imports the module and runs its `init()`; rejects with a `WORKER_INIT_FAILED` error. */
  async load(): Promise<void> {
    const result = await this.#call(() => this.#remote.load(), () => ({
      ms: this.#setup.initTimeoutMs,
      task: 'to load the module and run init()',
    }));
    if (result.kind === 'done') return;
    const cause = result.error;
    await this.terminate();
    throw new WorkerPoolError(
      'WORKER_INIT_FAILED',
      `worker ${this.id} could not load ${this.#setup.moduleUrl.href}: ${describeError(cause)}`,
      { cause, retriable: result.kind === 'lost' },
    );
  }

  /**
   * Runs one batch. The timeout covers one item at a time: it starts when the worker reports that
   * the batch has arrived, and each report of a finished item restarts it, so a long batch of quick
   * items is fine and one slow item is caught. Until the batch arrives, a generous allowance for
   * its crossing applies instead.
   */
  async runBatch(items: readonly unknown[]): Promise<BatchResult> {
    const batchId = ++this.#batchCount;
    const windowDeadline: Deadline = { ms: this.#setup.timeoutMs, task: 'to run one window' };
    let crossingDeadline: Deadline = windowDeadline;
    let started = false;
    let completed = 0;
    let culprit: Culprit = 'unknown';
    let restartTimer = (_deadline: Deadline): void => {};
    this.#onReport = (report) => {
      if (report.kind === 'dying') {
        // Only the first word counts: an uncaught error may be followed by an exit.
        if (culprit === 'unknown') culprit = report.batchId === batchId ? report.item : 'earlier-batch';
        return;
      }
      // A late report of an earlier batch may arrive on this port after its answer did.
      if (report.batchId !== batchId) return;
      started = true;
      completed = Math.max(completed, report.completed);
      // Once every item has run, the answer still has to cross back.
      restartTimer(completed < items.length ? windowDeadline : crossingDeadline);
    };
    try {
      const result = await this.#call(
        () => this.#remote.runBatch(items, batchId),
        (packMs) => {
          crossingDeadline = { ms: this.#setup.timeoutMs + crossingAllowanceMs(packMs), task: 'to pass a batch across' };
          return crossingDeadline;
        },
        (restart) => (restartTimer = restart),
      );
      if (result.kind !== 'lost') return result.kind === 'done' ? { kind: 'done', outcomes: result.value } : result;
      // An item that ran past the timeout is to blame, whatever else the worker said.
      const ranTooLong = result.error.code === 'WORKER_TIMEOUT' && started && completed < items.length;
      return { kind: 'lost', error: result.error, completed, culprit: ranTooLong ? completed : culprit };
    } finally {
      this.#onReport = undefined;
    }
  }

  /** Stops the worker on the pool's behalf: no `onLost`, calls in flight are lost. */
  async terminate(): Promise<void> {
    this.#terminatedByPool = true;
    this.#lose(new WorkerPoolError('POOL_CLOSED', `worker ${this.id} was terminated by the pool`));
    await this.#worker.terminate();
  }

  /**
   * Makes one comlink call that settles whatever the worker does: with its value, with its
   * rejection, or as lost when the worker dies or outlasts its deadline. The first deadline is
   * counted from the end of `send()`, given how long sending took; `exposeRestart` gives the
   * caller a way to start a new one.
   */
  #call<T>(
    send: () => Promise<T>,
    firstDeadline: (sendMs: number) => Deadline,
    exposeRestart?: (restart: (deadline: Deadline) => void) => void,
  ): Promise<{ kind: 'done'; value: T } | { kind: 'lost'; error: WorkerPoolError } | { kind: 'rejected'; error: unknown }> {
    if (!this.alive) {
      return Promise.resolve({
        kind: 'lost',
        error: new WorkerPoolError('WORKER_CRASHED', `worker ${this.id} is no longer running`, { retriable: true }),
      });
    }
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const call: Call = {
        lose: (error) => {
          finish();
          resolve({ kind: 'lost', error });
        },
      };
      const finish = (): void => {
        clearTimeout(timer);
        this.#calls.delete(call);
        if (this.#calls.size === 0 && this.#alive) this.#worker.unref();
      };
      let restarts = 0;
      const restart = ({ ms, task }: Deadline): void => {
        clearTimeout(timer);
        const restartsSoFar = ++restarts;
        timer = setTimeout(() => {
          // News may wait on the port behind this timer; it restarts the clock if it does.
          this.#drainProgress();
          if (restarts !== restartsSoFar || !this.#calls.has(call)) return;
          this.#lose(
            new WorkerPoolError('WORKER_TIMEOUT', `worker ${this.id} took more than ${ms} ms ${task}; it was terminated`, {
              retriable: true,
            }),
          );
        }, ms);
      };
      this.#calls.add(call);
      // Work in flight keeps the process alive; an idle pool does not.
      this.#worker.ref();
      exposeRestart?.(restart);
      const sendStartedAt = performance.now();
      let answer: Promise<T>;
      try {
        answer = send();
      } catch (error) {
        answer = Promise.reject(error);
      }
      restart(firstDeadline(performance.now() - sendStartedAt));
      answer.then(
        (value) => {
          if (!this.#calls.has(call)) return;
          finish();
          resolve({ kind: 'done', value });
        },
        (error: unknown) => {
          if (!this.#calls.has(call)) return;
          finish();
          resolve({ kind: 'rejected', error });
        },
      );
    });
  }

  #drainProgress(): void {
    for (let entry = receiveMessageOnPort(this.#progressPort); entry !== undefined; entry = receiveMessageOnPort(this.#progressPort)) {
      this.#onReport?.(entry.message as WorkerReport);
    }
  }

  #lose(error: WorkerPoolError): void {
    if (!this.#alive) return;
    // Progress reports still queued tell which items finished; read them before judging.
    this.#drainProgress();
    this.#alive = false;
    for (const call of [...this.#calls]) call.lose(error);
    this.#progressPort.close();
    // A hung worker does not exit by itself; a dead one ignores this.
    void this.#worker.terminate();
    if (!this.#terminatedByPool) this.#setup.onLost(this, error);
  }
}
