import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { wrap, type Remote } from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { describeError, WorkerPoolError } from './errors.js';
import type { ItemOutcome, ProgressReport, WorkerApi, WorkerSetup } from './worker-protocol.js';

/** How a batch ended, seen from the pool. Never a rejection: every way out is a value. */
export type BatchResult =
  /** The worker answered: one outcome per item. */
  | { readonly kind: 'done'; readonly outcomes: ItemOutcome[] }
  /** The worker hung or died; the first `completed` items had finished, the next one was running. */
  | { readonly kind: 'lost'; readonly error: WorkerPoolError; readonly completed: number }
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
  #onProgress: ((report: ProgressReport) => void) | undefined;

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
    this.#progressPort.on('message', (report: ProgressReport) => this.#onProgress?.(report));
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
    const result = await this.#call(() => this.#remote.load(), this.#setup.initTimeoutMs, 'to load the module and run init()');
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
   * Runs one batch. The timeout covers one item at a time: each progress report from the worker
   * restarts it, so a long batch of quick items is fine and one slow item is caught.
   */
  async runBatch(items: readonly unknown[]): Promise<BatchResult> {
    const batchId = ++this.#batchCount;
    let completed = 0;
    let restartTimer = (): void => {};
    this.#onProgress = (report) => {
      // A late report of an earlier batch may arrive on this port after its answer did.
      if (report.batchId !== batchId) return;
      completed = Math.max(completed, report.completed);
      restartTimer();
    };
    try {
      const result = await this.#call(
        () => this.#remote.runBatch(items, batchId),
        this.#setup.timeoutMs,
        'to run one window',
        (restart) => (restartTimer = restart),
      );
      if (result.kind !== 'lost') return result.kind === 'done' ? { kind: 'done', outcomes: result.value } : result;
      return { kind: 'lost', error: result.error, completed };
    } finally {
      this.#onProgress = undefined;
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
   * rejection, or as lost when the worker dies or stays silent for `timeoutMs`.
   */
  #call<T>(
    send: () => Promise<T>,
    timeoutMs: number,
    task: string,
    exposeRestart?: (restart: () => void) => void,
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
      const restart = (): void => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          this.#lose(
            new WorkerPoolError(
              'WORKER_TIMEOUT',
              `worker ${this.id} took more than ${timeoutMs} ms ${task}; it was terminated`,
              { retriable: true },
            ),
          );
        }, timeoutMs);
      };
      this.#calls.add(call);
      // Work in flight keeps the process alive; an idle pool does not.
      this.#worker.ref();
      restart();
      exposeRestart?.(restart);
      let answer: Promise<T>;
      try {
        answer = send();
      } catch (error) {
        answer = Promise.reject(error);
      }
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
      this.#onProgress?.(entry.message as ProgressReport);
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
