import type { EddyError } from '../errors.js';

/** Where an app is in its life; `failed` and `stopped` are final. */
export type AppState = 'created' | 'starting' | 'running' | 'rebalancing' | 'stopping' | 'stopped' | 'failed';

/** What an app tells its host: each state it enters, and the error it stopped on by itself. */
export interface AppEvents {
  state: (state: AppState, previous: AppState) => void;
  error: (error: EddyError) => void;
}

/** The moves an app may make; anything else is a bug in the runtime, not a state to enter. */
const allowed: Readonly<Record<AppState, readonly AppState[]>> = {
  created: ['starting', 'stopped'],
  starting: ['running', 'stopped', 'failed'],
  running: ['rebalancing', 'stopping', 'failed'],
  rebalancing: ['running', 'stopping', 'failed'],
  stopping: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

/**
 * An app's state and its listeners. A listener that throws is reported to `onListenerError`
 * and never reaches the app's own work; an `error` with no listener is only logged (by the
 * caller), never thrown into the host.
 */
export class Lifecycle {
  #state: AppState = 'created';
  #failure: EddyError | undefined;
  /** Subscriptions, each its own entry: one function subscribed twice is two subscriptions, each with its remover. */
  readonly #listeners: { [E in keyof AppEvents]: Set<{ readonly listener: AppEvents[E] }> } = { state: new Set(), error: new Set() };
  readonly #onListenerError: (event: keyof AppEvents, error: unknown) => void;

  constructor(onListenerError: (event: keyof AppEvents, error: unknown) => void) {
    this.#onListenerError = onListenerError;
  }

  get state(): AppState {
    return this.#state;
  }

  get failure(): EddyError | undefined {
    return this.#failure;
  }

  /** Whether records may still be processed and committed (running, or between assignments). */
  get active(): boolean {
    return this.#state === 'running' || this.#state === 'rebalancing';
  }

  on<E extends keyof AppEvents>(event: E, listener: AppEvents[E]): () => void {
    const listeners = this.#listeners[event] as Set<{ readonly listener: AppEvents[E] }> | undefined;
    if (!listeners) throw new TypeError(`app.on: unknown event ${JSON.stringify(event)}; events: state, error`);
    if (typeof listener !== 'function') throw new TypeError(`app.on('${event}'): expected a function, got ${typeof listener}`);
    const subscription = { listener };
    listeners.add(subscription);
    return () => void listeners.delete(subscription);
  }

  /** Moves to `next` if the move is allowed from here (a stop racing a failure, say, keeps the first). */
  moveTo(next: AppState): boolean {
    const previous = this.#state;
    if (previous === next || !allowed[previous].includes(next)) return false;
    this.#state = next;
    for (const { listener } of [...this.#listeners.state]) this.#call('state', () => listener(next, previous));
    return true;
  }

  /**
   * The app stops on its own: `error` once, then `failed`. A failed `start()` rejects instead of
   * emitting (`notify: false`). Returns false if it had failed or stopped already.
   */
  fail(error: EddyError, { notify = true } = {}): boolean {
    if (this.#failure || this.#state === 'stopped' || this.#state === 'failed') return false;
    this.#failure = error;
    if (notify) for (const { listener } of [...this.#listeners.error]) this.#call('error', () => listener(error));
    this.moveTo('failed');
    return true;
  }

  /** Whether anyone listens for `error` (if not, the caller logs it loudly). */
  get heard(): boolean {
    return this.#listeners.error.size > 0;
  }

  #call(event: keyof AppEvents, call: () => void): void {
    try {
      call();
    } catch (error) {
      this.#onListenerError(event, error);
    }
  }
}
