import type { GraphBuilder, Node } from './graph.js';
import { Stream } from './stream.js';

/** A running aggregate per key; readable with `app.store(name)`. */
export class Table<K, A> {
  /** @internal */
  constructor(
    private readonly graph: GraphBuilder,
    /** @internal */ readonly node: Node,
  ) {}

  /**
   * The store's name, to read this table with `app.store(...)` (the stage itself works too).
   * @example
   * const totals = keyed.count({ name: 'totals' });
   * await app.store(totals).get('s1');   // number | undefined
   */
  get name(): string {
    return (this.node as Extract<Node, { kind: 'table' }>).storeName;
  }

  /**
   * Every update of the table as a stream of (key, new value).
   * @example
   * clicks.keyBy(c => c.page).count().toStream().to('page-counts')
   */
  toStream(): Stream<K, A> {
    return new Stream(this.graph, this.graph.add({ kind: 'tableStream', parents: [this.node] }));
  }
}
