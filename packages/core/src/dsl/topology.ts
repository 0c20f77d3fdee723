import { ConfigError } from '../errors.js';
import { internalKeySerde, json } from '../serde.js';
import { isStateful, type Node } from './graph.js';

/** A connected part of the graph between topics: one task per partition runs it. */
export interface SubTopology {
  readonly index: number;
  /** Nodes in an order where parents come before children. */
  readonly nodes: readonly Node[];
  readonly sources: readonly Extract<Node, { kind: 'source' }>[];
  readonly sinks: readonly Extract<Node, { kind: 'sink' }>[];
  readonly storeNames: readonly string[];
}

/** The compiled form of an app's graph. */
export interface Topology {
  readonly appId: string;
  readonly subTopologies: readonly SubTopology[];
  /** Children of each node, in creation order. */
  readonly children: ReadonlyMap<Node, readonly Node[]>;
  /** Repartition topics and the sub-topology that writes each. */
  readonly repartitionTopics: ReadonlyMap<string, SubTopology>;
}

/** The internal topic names of DESIGN.md. */
export const changelogTopic = (appId: string, storeName: string) => `${appId}-${storeName}-changelog`;
export const repartitionTopic = (appId: string, name: string) => `${appId}-${name}-repartition`;
export const deadLetterTopic = (appId: string) => `${appId}-dlq`;

const internalSerde = json();

/**
 * Whether a callback cannot see the key it would be called with (its second argument): an arrow
 * function (no `arguments` of its own) whose one parameter is a plain name. Anything else may.
 */
export function ignoresKey(fn: (...args: never[]) => unknown): boolean {
  return /^\s*(?:[A-Za-z_$][\w$]*|\(\s*[A-Za-z_$][\w$]*\s*\))\s*=>/.test(Function.prototype.toString.call(fn));
}

/**
 * Whether nothing below `node` sees the key of the records it emits: every path from it reaches a
 * keyBy, which replaces the key, through steps that pass the key on without looking (map, filter,
 * flatMap, peek and merge), and neither those steps nor the keyBy can see it ({@link ignoresKey}).
 * A source whose key no one reads need not decode it.
 */
export function keyUnreadBelow(node: Node, children: ReadonlyMap<Node, readonly Node[]>): boolean {
  return (children.get(node) ?? []).every((child) => {
    switch (child.kind) {
      case 'keyBy':
        return ignoresKey(child.fn);
      case 'map':
      case 'filter':
      case 'flatMap':
      case 'peek':
        return ignoresKey(child.fn) && keyUnreadBelow(child, children);
      case 'merge':
        return keyUnreadBelow(child, children);
      default:
        return false;
    }
  });
}

/**
 * Whether a source is read only as a table (`app.table`): reference data, whose records change the
 * table but do not move its task's stream time.
 */
export function readOnlyAsTable(source: Node, children: ReadonlyMap<Node, readonly Node[]>): boolean {
  const below = children.get(source) ?? [];
  return below.length > 0 && below.every((child) => child.kind === 'table' && child.upsert === true);
}

/**
 * Whether some state of a sub-topology (a window, a table, a join) depends on records of more than
 * one of its source topics: then the order in which the task takes its inputs changes results,
 * and it reads them in timestamp order (see runtime/task/input-order.ts). Branches that only share
 * a task (two windows of two repartition topics) do not need that.
 */
export function stateSpansSources(sub: SubTopology): boolean {
  const inSub = new Set(sub.nodes);
  const sourcesOf = new Map<Node, ReadonlySet<Node>>();
  for (const node of sub.nodes) {
    const sources = new Set<Node>(node.kind === 'source' ? [node] : []);
    for (const parent of node.parents) if (inSub.has(parent)) for (const source of sourcesOf.get(parent) ?? []) sources.add(source);
    sourcesOf.set(node, sources);
    if (sources.size > 1 && statefulKinds.has(node.kind)) return true;
  }
  return false;
}
const statefulKinds = new Set<Node['kind']>(['window', 'table', 'streamJoin', 'tableJoin', 'join']);

/** Does the path from `node` up to its sources re-key the stream (a keyBy) before any topic? */
function rekeyedAbove(node: Node): Extract<Node, { kind: 'keyBy' }> | undefined {
  for (const parent of node.parents) {
    if (parent.kind === 'keyBy') return parent;
    if (parent.kind === 'source') continue;
    const found = rekeyedAbove(parent);
    if (found) return found;
  }
  return undefined;
}

/**
 * Builds the physical topology: a repartition topic (sink + source pair) before each stateful
 * step fed by a re-keyed stream, then sub-topologies as the connected parts between topics.
 */
export function buildTopology(appId: string, logical: readonly Node[]): Topology {
  const storeNames = new Set<string>();
  let nextId = logical.reduce((max, node) => Math.max(max, node.id), 0) + 1;
  const replaced = new Map<Node, Node>();
  const nodes: Node[] = [];
  const repartitionWriters = new Map<string, Node>();
  const repartitionedParents = new Map<Node, Node>();
  /** A repartition topic written by `parents` (a sink) and read back (the source returned). */
  const repartition = (parents: readonly Node[], name: string): Node => {
    const topic = repartitionTopic(appId, name);
    if (repartitionWriters.has(topic)) throw new ConfigError(`the repartition topic ${topic} is used twice; name the keyBy steps`);
    const sink: Node = { kind: 'sink', id: nextId++, parents, topic, keySerde: internalKeySerde, valueSerde: internalSerde, internal: true, cycle: false };
    const source: Node = { kind: 'source', id: nextId++, parents: [], topic, timestamp: undefined, keySerde: internalKeySerde, valueSerde: internalSerde, internal: true };
    repartitionWriters.set(topic, sink);
    if (parents.length === 1) repartitionedParents.set(parents[0]!, source);
    nodes.push(sink, source);
    return source;
  };

  for (const original of logical) {
    const parents = original.parents.map((parent) => replaced.get(parent) ?? parent);
    let node: Node = parents.every((parent, index) => parent === original.parents[index]) ? original : ({ ...original, parents } as Node);
    if (isStateful(node)) {
      if (storeNames.has(node.storeName)) {
        throw new ConfigError(`two stateful steps share the store name ${JSON.stringify(node.storeName)}; give one of them { name }`);
      }
      storeNames.add(node.storeName);
    }
    if (node.kind === 'streamJoin') {
      // Each re-keyed side through a repartition topic of its own, both read by one task per partition.
      const join = node;
      const sides = join.parents.map((parent, index) => {
        const keyBy = rekeyedAbove({ ...join, parents: [parent] });
        if (!keyBy) return parent;
        return repartitionedParents.get(parent) ?? repartition([parent], keyBy.name ?? `${join.storeName}-${index === 0 ? 'left' : 'right'}`);
      });
      node = { ...join, parents: sides };
    } else if (isStateful(node)) {
      const keyBy = rekeyedAbove(node);
      const shared = node.parents.length === 1 ? repartitionedParents.get(node.parents[0]!) : undefined;
      if (keyBy && shared) {
        // Stateful steps on the same re-keyed stream read one repartition topic.
        node = { ...node, parents: [shared] } as Node;
      } else if (keyBy) {
        node = { ...node, parents: [repartition(node.parents, keyBy.name ?? node.storeName)] } as Node;
      }
    } else if (node.kind === 'join') {
      // Only the stream side is re-keyed here: the table side reads its own topic (or store).
      const [stream, table] = node.parents as [Node, Node];
      const keyBy = rekeyedAbove({ ...node, parents: [stream] } as Node);
      if (keyBy) node = { ...node, parents: [repartitionedParents.get(stream) ?? repartition([stream], keyBy.name ?? node.name), table] };
    }
    if (node !== original) replaced.set(original, node);
    nodes.push(node);
  }

  const children = new Map<Node, Node[]>();
  for (const node of nodes) {
    children.set(node, children.get(node) ?? []);
    for (const parent of node.parents) {
      const list = children.get(parent) ?? [];
      list.push(node);
      children.set(parent, list);
    }
  }

  // Connected components over parent edges; topics are the only links between them.
  const component = new Map<Node, number>();
  const ordered: Node[][] = [];
  for (const start of nodes) {
    if (component.has(start)) continue;
    const index = ordered.length;
    const members: Node[] = [];
    const stack = [start];
    component.set(start, index);
    while (stack.length > 0) {
      const node = stack.pop()!;
      members.push(node);
      for (const next of [...node.parents, ...(children.get(node) ?? [])]) {
        if (!component.has(next)) {
          component.set(next, index);
          stack.push(next);
        }
      }
    }
    ordered.push(members);
  }

  const position = new Map(nodes.map((node, index) => [node, index]));
  const subTopologies: SubTopology[] = ordered
    .map((members) => members.sort((a, b) => position.get(a)! - position.get(b)!))
    .filter((members) => members.some((node) => node.kind === 'source'))
    .map((members, index) => ({
      index,
      nodes: members,
      sources: members.filter((node): node is Extract<Node, { kind: 'source' }> => node.kind === 'source'),
      sinks: members.filter((node): node is Extract<Node, { kind: 'sink' }> => node.kind === 'sink'),
      storeNames: members.filter(isStateful).map((node) => node.storeName),
    }));

  const repartitionTopics = new Map<string, SubTopology>();
  for (const [topic, sink] of repartitionWriters) {
    repartitionTopics.set(topic, subTopologies.find((sub) => sub.nodes.includes(sink))!);
  }
  refuseUndeclaredLoops(subTopologies);
  return { appId, subTopologies, children, repartitionTopics };
}

/** A write of one sub-topology to a topic that another (or the same) one reads. */
interface TopicLink {
  readonly topic: string;
  readonly internal: boolean;
  readonly writer: SubTopology;
  readonly reader: SubTopology;
}

/**
 * Throws when the app's sub-topologies, linked by the topics they write and read, form a loop
 * with no write declared `{ cycle: true }`. Repartition topics are links too, but only lead
 * downstream: every loop goes through a user topic.
 */
function refuseUndeclaredLoops(subTopologies: readonly SubTopology[]): void {
  const readers = new Map<string, SubTopology[]>();
  for (const sub of subTopologies) for (const source of sub.sources) readers.set(source.topic, [...(readers.get(source.topic) ?? []), sub]);
  const linksFrom = (writer: SubTopology): TopicLink[] =>
    writer.sinks
      .filter((sink) => !sink.cycle)
      .flatMap((sink) => (readers.get(sink.topic) ?? []).map((reader) => ({ topic: sink.topic, internal: sink.internal, writer, reader })));

  // Depth-first search: a link back to a sub-topology still on the path closes a loop.
  const visited = new Map<SubTopology, 'on path' | 'done'>();
  const path: TopicLink[] = [];
  const findLoop = (sub: SubTopology): TopicLink[] | undefined => {
    visited.set(sub, 'on path');
    for (const link of linksFrom(sub)) {
      const seen = visited.get(link.reader);
      if (seen === 'done') continue;
      path.push(link);
      if (seen === 'on path') return path.slice(path.findIndex((step) => step.writer === link.reader));
      const loop = findLoop(link.reader);
      if (loop) return loop;
      path.pop();
    }
    visited.set(sub, 'done');
    return undefined;
  };

  for (const sub of subTopologies) {
    const loop = visited.has(sub) ? undefined : findLoop(sub);
    if (!loop) continue;
    const first = Math.max(0, loop.findIndex((link) => !link.internal));
    const links = [...loop.slice(first), ...loop.slice(0, first)];
    const topic = links[0]!.topic;
    const steps = links.map((link) => `sub-topology ${link.writer.index} writes ${link.topic}, which sub-topology ${link.reader.index} reads`).join('; ');
    throw new ConfigError(
      `the app reads the topic ${topic} that it writes, a loop with no end of its own (${steps}); ` +
        `if the loop is meant, declare the write: to('${topic}', { cycle: true })`,
    );
  }
}

function label(node: Node): string {
  switch (node.kind) {
    case 'source':
      return `source ${node.topic}`;
    case 'sink':
      return node.cycle ? `sink ${node.topic} (cycle)` : `sink ${node.topic}`;
    case 'keyBy':
      return node.name ? `keyBy ${node.name}` : 'keyBy';
    case 'window':
      return `${node.window.description} ${node.aggregation.name} [store ${node.storeName}]`;
    case 'table':
      return node.upsert ? `table [store ${node.storeName}]` : `table ${node.aggregation.name} [store ${node.storeName}]`;
    case 'globalJoin':
      return `${node.mode === 'left' ? 'leftJoin' : 'join'} global table ${node.table.topic} [store ${node.table.storeName}]`;
    case 'streamJoin':
      return `${node.mode === 'inner' ? 'join' : `${node.mode}Join`} within ${node.withinMs}ms, grace ${node.graceMs}ms [store ${node.storeName}]`;
    case 'tableJoin':
      return `${node.mode === 'inner' ? 'join' : `${node.mode}Join`} tables [stores ${node.leftStore}, ${node.rightStore}]`;
    case 'join':
      return `${node.mode === 'left' ? 'leftJoin' : 'join'} table [store ${node.tableStore}]`;
    case 'emit':
      return node.label;
    case 'tableStream':
      return 'toStream';
    default:
      return node.kind;
  }
}

/** The topology as text: one block per sub-topology, one line per node with its children. */
export function describeText(topology: Topology): string {
  const lines = [`Topology ${topology.appId}`];
  for (const sub of topology.subTopologies) {
    lines.push(`  Sub-topology ${sub.index}${sub.storeNames.length ? ` (stores: ${sub.storeNames.join(', ')})` : ''}`);
    for (const node of sub.nodes) {
      const next = topology.children.get(node) ?? [];
      lines.push(`    ${node.id}: ${label(node)}${next.length ? ` --> ${next.map((child) => child.id).join(', ')}` : ''}`);
    }
  }
  return lines.join('\n');
}

/** The topology as a Mermaid flowchart; topics are the links between sub-topologies. */
export function describeMermaid(topology: Topology): string {
  const lines = ['flowchart LR'];
  const topics = new Set<string>();
  const topicId = (topic: string) => `topic_${topic.replace(/[^A-Za-z0-9_]/g, '_')}`;
  for (const sub of topology.subTopologies) {
    lines.push(`  subgraph sub${sub.index}["Sub-topology ${sub.index}"]`);
    for (const node of sub.nodes) lines.push(`    n${node.id}["${label(node).replace(/"/g, "'")}"]`);
    lines.push('  end');
    for (const node of sub.nodes) {
      for (const child of topology.children.get(node) ?? []) lines.push(`  n${node.id} --> n${child.id}`);
      if (node.kind === 'source' || node.kind === 'sink') {
        topics.add(node.topic);
        lines.push(node.kind === 'source' ? `  ${topicId(node.topic)} --> n${node.id}` : `  n${node.id} --> ${topicId(node.topic)}`);
      }
    }
  }
  for (const topic of topics) lines.push(`  ${topicId(topic)}[("${topic}")]`);
  return lines.join('\n');
}
