import type { LateRecord, WindowHandler, WindowResult } from '../handler.js';
import type { GraphBuilder, Node } from './graph.js';
import { checkHandler } from './stage-checks.js';
import { Stream } from './stream.js';

/** Per-window aggregates; choose how results leave: final (`onClose`), every change, late records. */
export class WindowedTable<K, A, V = unknown> {
  /** @internal */
  constructor(
    private readonly graph: GraphBuilder,
    /** @internal */ readonly node: Node,
  ) {}

  /**
   * The window store's name, to read its open windows with `app.store(...)` (the stage itself works too).
   * @example
   * const counts = keyed.hopping('10s', '1s').count();
   * await app.store(counts).get('s1');   // [{ start, end, value }]
   */
  get name(): string {
    return (this.node as Extract<Node, { kind: 'window' }>).storeName;
  }

  private emit<R>(event: 'close' | 'update' | 'late', handler: unknown, label: string, optional: boolean): Stream<K, R> {
    const checked = checkHandler(handler, label, optional);
    return new Stream(this.graph, this.graph.add({ kind: 'emit', parents: [this.node], event, handler: checked, label }));
  }

  /**
   * Runs `handler` once per window when it closes (stream time ≥ end + grace); its results are
   * records keyed by the window key with timestamp `end - 1`. A `workerPool(...)` works too.
   * @example
   * windows.onClose(w => ({ sensor: w.key, mean: w.value })).to('means')
   */
  onClose<R>(handler: WindowHandler<WindowResult<K, A>, R>): Stream<K, R> {
    return this.emit('close', handler, 'onClose', false);
  }

  /**
   * Emits on every change of a window; without a handler the window itself (`{ key, start, end, value }`).
   * @example
   * windows.onUpdate().to('live-counts')
   */
  onUpdate(): Stream<K, WindowResult<K, A>>;
  onUpdate<R>(handler: WindowHandler<WindowResult<K, A>, R>): Stream<K, R>;
  onUpdate<R>(handler?: WindowHandler<WindowResult<K, A>, R>): Stream<K, R | WindowResult<K, A>> {
    return this.emit('update', handler, 'onUpdate', true);
  }

  /**
   * The final result of each window as a stream of `{ key, start, end, value }`.
   * @example
   * windows.toStream().to('window-results')
   */
  toStream(): Stream<K, WindowResult<K, A>> {
    return this.emit('close', undefined, 'toStream', true);
  }

  /**
   * Runs `handler` for each record that arrives after a window it belongs to has closed, once per
   * missed window (`{ key, start, end, value: the record's value, timestamp }`); its results form a stream.
   * @example
   * windows.onLate(late => late).to('late-readings')
   */
  onLate<R>(handler: WindowHandler<LateRecord<K, V>, R>): Stream<K, R> {
    return this.emit('late', handler, 'onLate', false);
  }
}
