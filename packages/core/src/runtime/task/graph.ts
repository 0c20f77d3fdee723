import { share, type Observable } from 'rxjs';
import type { Node } from '../../dsl/graph.js';
import type { SubTopology, Topology } from '../../dsl/topology.js';
import type { TaskContext } from '../context.js';
import { SignalInput } from '../operator.js';
import { emitWindows } from '../operators/emit-windows.js';
import { sinkRecords } from '../operators/sink.js';
import { filterRecords, flatMapRecords, keyRecords, mapRecords, peekRecords } from '../operators/stateless.js';
import { globalTableJoin } from '../operators/global-table-join.js';
import { streamStreamJoin } from '../operators/stream-stream-join.js';
import { streamTableJoin } from '../operators/stream-table-join.js';
import { tableTableJoin } from '../operators/table-table-join.js';
import { tableAggregate } from '../operators/table-aggregate.js';
import { windowAggregate } from '../operators/window-aggregate.js';
import type { Signal } from '../signals.js';

/**
 * Wires a sub-topology's nodes into one task's RxJS operators, one operator per node kind; the
 * stateful ones register with `context`. Returns the sources, by topic: subjects the task feeds.
 */
export function buildOperatorGraph(context: TaskContext, topology: Topology, subTopology: SubTopology): ReadonlyMap<string, SignalInput> {
  const inputs = new Map<string, SignalInput>();
  const streams = new Map<Node, Observable<Signal>>();
  const { children } = topology;

  /** One observable per node, shared when several children read it. */
  const streamFor = (node: Node): Observable<Signal> => {
    let stream = streams.get(node);
    if (!stream) {
      stream = operatorFor(node);
      if ((children.get(node)?.length ?? 0) > 1) stream = stream.pipe(share());
      streams.set(node, stream);
    }
    return stream;
  };

  const operatorFor = (node: Node): Observable<Signal> => {
    const parent = (index = 0) => streamFor(node.parents[index]!);
    switch (node.kind) {
      case 'source': {
        const subject = new SignalInput();
        inputs.set(node.topic, subject);
        return subject;
      }
      case 'map':
        return parent().pipe(mapRecords(context, 'map', node.fn));
      case 'filter':
        return parent().pipe(filterRecords(context, 'filter', node.fn));
      case 'flatMap':
        return parent().pipe(flatMapRecords(context, 'flatMap', node.fn));
      case 'peek':
        return parent().pipe(peekRecords(context, 'peek', node.fn));
      case 'keyBy':
        return parent().pipe(keyRecords(context, 'keyBy', node.fn));
      case 'merge': {
        const merged = new SignalInput();
        for (let index = 0; index < node.parents.length; index++) parent(index).subscribe((signal) => merged.next(signal));
        return merged;
      }
      case 'sink':
        return parent().pipe(sinkRecords(context, node.topic, node.keySerde, node.valueSerde, node.internal));
      case 'window': {
        const emitsUpdates = (children.get(node) ?? []).some((child) => child.kind === 'emit' && child.event === 'update');
        return parent().pipe(windowAggregate(context, { storeName: node.storeName, window: node.window, aggregation: node.aggregation, emitUpdates: emitsUpdates }));
      }
      case 'emit':
        return parent().pipe(emitWindows(context, node.label, node.event, node.handler));
      case 'table':
        return parent().pipe(tableAggregate(context, node.storeName, node.aggregation, { deletes: node.upsert === true }));
      case 'globalJoin':
        return parent().pipe(globalTableJoin(context, node));
      case 'streamJoin':
        return streamStreamJoin(context, node, parent(0), parent(1));
      case 'tableJoin': {
        // Either side's update changes the result of its key; the left side alone carries ticks on.
        const joined = new SignalInput();
        parent(0).pipe(tableTableJoin(context, node, 'left')).subscribe((signal) => joined.next(signal));
        parent(1).pipe(tableTableJoin(context, node, 'right')).subscribe((signal) => joined.next(signal));
        return joined;
      }
      case 'join':
        // The table side runs for its updates alone: they change the table, and produce nothing here.
        parent(1).subscribe();
        return parent(0).pipe(streamTableJoin(context, node.tableStore, node.mode, node.joiner));
      case 'tableStream':
        return parent();
    }
  };

  for (const node of subTopology.nodes) {
    const stream = streamFor(node);
    if ((children.get(node)?.length ?? 0) === 0) stream.subscribe();
  }
  return inputs;
}
