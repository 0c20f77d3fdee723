import type { Aggregation } from '../aggregations.js';
import { ConfigError } from '../errors.js';
import type { WindowHandler } from '../handler.js';
import type { Serde } from '../serde.js';
import type { WindowDefinition } from '../windows/definitions.js';

/** A callback on records: value and key in, anything out. */
export type RecordCallback = (value: unknown, key: unknown) => unknown;

/** A join's callback: one side's value, the other side's (undefined where a left or outer join has none), and the key. */
export type Joiner = (value: unknown, otherValue: unknown, key: unknown) => unknown;

/** A global table as a join sees it: its store's name, and its current value of a key. */
export interface GlobalLookup {
  readonly storeName: string;
  readonly topic: string;
  get(key: unknown): unknown;
}

interface NodeBase {
  readonly id: number;
  readonly parents: readonly Node[];
}

/**
 * The logical graph the DSL records. Nodes are plain immutable objects; nothing runs until the
 * app compiles the graph into one RxJS operator graph per task.
 */
export type Node =
  | (NodeBase & {
      readonly kind: 'source';
      readonly topic: string;
      readonly timestamp: ((value: unknown) => number) | undefined;
      readonly keySerde: Serde<unknown>;
      readonly valueSerde: Serde<unknown>;
      /** Set for the reading half of a repartition topic. */
      readonly internal: boolean;
    })
  | (NodeBase & { readonly kind: 'map' | 'filter' | 'flatMap' | 'peek'; readonly fn: RecordCallback })
  | (NodeBase & { readonly kind: 'keyBy'; readonly fn: RecordCallback; readonly name: string | undefined })
  | (NodeBase & { readonly kind: 'merge' })
  | (NodeBase & {
      readonly kind: 'sink';
      readonly topic: string;
      readonly keySerde: Serde<unknown>;
      readonly valueSerde: Serde<unknown>;
      readonly internal: boolean;
      /** Declared with `to(topic, { cycle: true })`: the write may feed a topic the app reads. */
      readonly cycle: boolean;
    })
  | (NodeBase & {
      readonly kind: 'window';
      readonly window: WindowDefinition;
      readonly aggregation: Aggregation<unknown, unknown, unknown>;
      readonly storeName: string;
      readonly repartitionName: string | undefined;
    })
  | (NodeBase & {
      readonly kind: 'emit';
      readonly event: 'close' | 'update' | 'late';
      readonly handler: WindowHandler<unknown, unknown> | undefined;
      readonly label: string;
    })
  | (NodeBase & {
      readonly kind: 'table';
      readonly aggregation: Aggregation<unknown, unknown, unknown>;
      readonly storeName: string;
      readonly repartitionName: string | undefined;
      /** Each key's latest value, and a null value deletes the key: a topic read as a table (`app.table`), or a table join's result. */
      readonly upsert?: true;
    })
  | (NodeBase & { readonly kind: 'tableStream' })
  | (NodeBase & {
      /** Stream–global table join: each record looks its table key up in a table every instance holds whole. */
      readonly kind: 'globalJoin';
      readonly mode: 'inner' | 'left';
      readonly tableKey: RecordCallback;
      readonly joiner: Joiner;
      readonly table: GlobalLookup;
    })
  | (NodeBase & {
      /** Windowed stream–stream join: parents are [the left stream, the right stream], buffered in the store. */
      readonly kind: 'streamJoin';
      readonly mode: 'inner' | 'left' | 'outer';
      readonly joiner: Joiner;
      readonly withinMs: number;
      readonly graceMs: number;
      readonly storeName: string;
    })
  | (NodeBase & {
      /** Table–table join: parents are [the left table, the right table]; a table of the results follows. */
      readonly kind: 'tableJoin';
      readonly mode: 'inner' | 'left' | 'outer';
      readonly joiner: Joiner;
      readonly leftStore: string;
      readonly rightStore: string;
    })
  | (NodeBase & {
      /** Stream–table join: parents are [the stream, the table]. */
      readonly kind: 'join';
      readonly mode: 'inner' | 'left';
      readonly joiner: Joiner;
      /** The table's store, looked up per stream record. */
      readonly tableStore: string;
      /** Names the repartition topic when the stream side is re-keyed. */
      readonly name: string;
    });

export type NodeKind = Node['kind'];

/** A node before it has an id (the Omit distributes over the union). */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type NodeInput = DistributiveOmit<Node, 'id'>;

/** The nodes whose input must be partitioned by their key. */
export const isStateful = (node: Node): node is Extract<Node, { kind: 'window' | 'table' | 'streamJoin' }> => node.kind === 'window' || node.kind === 'table' || node.kind === 'streamJoin';

/** Collects the nodes the DSL creates; owned by one app. */
export class GraphBuilder {
  readonly nodes: Node[] = [];
  #nextId = 0;
  readonly #sources = new Map<string, Extract<Node, { kind: 'source' }>>();

  /**
   * Adds a node. A topic has one source node: reading it again (`from`, `through`) with the same
   * serdes and timestamp gives that node, whose records then flow down every branch; with others,
   * it throws (one record cannot be two things; read it once and use that stream twice).
   */
  add(node: NodeInput): Node {
    if (node.kind === 'source') {
      const existing = this.#sources.get(node.topic);
      if (existing) {
        if (existing.keySerde === node.keySerde && existing.valueSerde === node.valueSerde && existing.timestamp === node.timestamp) return existing;
        throw new ConfigError(`from ${node.topic}: the topic is read already, with other serdes or another timestamp function; read it once and use that stream twice`);
      }
    }
    const created = { ...node, id: this.#nextId++ } as Node;
    this.nodes.push(created);
    if (created.kind === 'source') this.#sources.set(created.topic, created);
    return created;
  }
}
