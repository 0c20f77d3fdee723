import type { Clock } from '../clock.js';
import type { SubTopology, Topology } from '../dsl/topology.js';
import type { Alignment, IncomingRecord } from '../transport/types.js';
import { RecordDecoder } from './task/record-decoder.js';

/**
 * Records a sub-topology's tasks may write without crossing partitions before its input is
 * delivered unaligned again: a `keyBy` by the key the input already has moves nothing, and pays
 * for no alignment once that is seen.
 */
const PROBE_RECORDS = 2_000;

/**
 * Which input the consumers deliver in step in event time on a backlog (see
 * transport/types.ts `Alignment`). A repartition topic written by the tasks of several input
 * partitions holds their records in the order those tasks processed them: with each partition's
 * backlog delivered in turn, one task's records would run far ahead of another's in event time,
 * and windows downstream would close before the others' records came (late). So the input of a
 * sub-topology that writes a repartition topic leading to a windowed step or a windowed join (read
 * there, or by a sub-topology that leads there in turn) is delivered in step, each pass up to what
 * cannot make the records still waiting late in those steps, less half the smallest grace, while
 * its tasks or those downstream are seen moving records between partitions (and, from the start,
 * until `PROBE_RECORDS` show they do not): a sub-topology that moves nothing still hands its
 * records to the next in the order it reads them.
 * Event time only. The embedded brokers cut each pass from their logs; on Kafka the fetch loop
 * holds fetched records back (packages/kafka/src/fetch-loop.ts).
 */
export class DeliveryAlignment {
  /** Per source topic, how it is delivered in step (`group`: its sub-topology's index). */
  readonly #plans = new Map<string, Alignment>();
  /** Sub-topologies with a plan, each with itself and those its repartition topics lead to: any of them moving records keeps it in step. */
  readonly #planned = new Map<number, ReadonlySet<number>>();
  readonly #crossing = new Set<number>();
  readonly #delivered = new Map<number, number>();

  constructor(topology: Topology, clock: Clock, time: 'event' | 'processing') {
    if (time !== 'event') return;
    // Only for reading timestamps: a record whose value does not decode is judged by its own.
    const decoder = new RecordDecoder(topology, clock, () => undefined);
    for (const sub of topology.subTopologies) {
      const downstream = downstreamLateness(topology, sub);
      if (!downstream) continue;
      // A pass delivers what cannot make a record at its smallest next timestamp, or up to half the
      // smallest grace before it, late downstream: the other half of the grace is left for the
      // input's own disorder (a record behind an earlier one of its partition).
      const reserve = Math.floor(downstream.graceMs / 2);
      const horizon = (first: number): number => {
        let lateFrom = Infinity;
        for (const lateFromOf of downstream.lateFrom) lateFrom = Math.min(lateFrom, lateFromOf(first - reserve));
        return lateFrom - 1;
      };
      for (const source of sub.sources) {
        const timestamp = source.timestamp ? (record: IncomingRecord) => decoder.extractTimestamp(source, record) : (record: IncomingRecord) => record.timestamp;
        this.#plans.set(source.topic, { group: sub.index, horizon, timestamp });
      }
      this.#planned.set(sub.index, new Set([sub.index, ...downstream.readers]));
    }
  }

  /** How to deliver `topic` now, or undefined for whole batches. */
  forTopic(topic: string): Alignment | undefined {
    const plan = this.#plans.get(topic);
    return plan && this.aligning(plan.group) ? plan : undefined;
  }

  /** Whether sub-topology `index`'s input is delivered in step now. */
  aligning(index: number): boolean {
    const watched = this.#planned.get(index);
    if (!watched) return false;
    if ((this.#delivered.get(index) ?? 0) < PROBE_RECORDS) return true;
    for (const sub of watched) if (this.#crossing.has(sub)) return true;
    return false;
  }

  /**
   * Whether sub-topology `index`'s input is delivered in step because its tasks move records
   * between partitions. They then hand no record off locally (runtime/hand-offs.ts): a record
   * handed to the task of its own partition would overtake those of the other partitions, which
   * go through the repartition topic.
   */
  movesRecords(index: number): boolean {
    return this.#planned.has(index) && this.#crossing.has(index);
  }

  /** A batch of `topic` was delivered. */
  delivered(topic: string, records: number): void {
    const plan = this.#plans.get(topic);
    if (plan) this.#delivered.set(plan.group, (this.#delivered.get(plan.group) ?? 0) + records);
  }

  /** A task of sub-topology `index` wrote a repartition record to a partition other than its own. */
  crossed(index: number): void {
    this.#crossing.add(index);
  }
}

/**
 * The sub-topologies the repartition topics of `sub` lead to (its readers, theirs, and so on),
 * and for the windowed steps and windowed joins among them: their smallest grace, and for each,
 * from what stream time a record is late (see `latenessOf`). Undefined if nothing there can be late.
 */
function downstreamLateness(topology: Topology, sub: SubTopology): { graceMs: number; lateFrom: Array<(timestamp: number) => number>; readers: ReadonlySet<number> } | undefined {
  let graceMs = Infinity;
  const lateFrom: Array<(timestamp: number) => number> = [];
  const readers = new Set<number>();
  for (const writers = [sub]; writers.length > 0; ) {
    const writer = writers.pop()!;
    const written = new Set(writer.sinks.filter((sink) => topology.repartitionTopics.has(sink.topic)).map((sink) => sink.topic));
    for (const reader of topology.subTopologies) {
      if (readers.has(reader.index) || !reader.sources.some((source) => written.has(source.topic))) continue;
      readers.add(reader.index);
      writers.push(reader);
      for (const node of reader.nodes) {
        const late = latenessOf(node);
        if (!late) continue;
        graceMs = Math.min(graceMs, late.graceMs);
        lateFrom.push(late.lateFrom);
      }
    }
  }
  return lateFrom.length === 0 ? undefined : { graceMs, lateFrom, readers };
}

/** A windowed step's or windowed join's grace, and from what stream time a record of it is late. */
function latenessOf(node: SubTopology['nodes'][number]): { graceMs: number; lateFrom: (timestamp: number) => number } | undefined {
  if (node.kind === 'window') {
    const { graceMs, lateFrom } = node.window;
    return graceMs === undefined || lateFrom === undefined ? undefined : { graceMs, lateFrom };
  }
  // A windowed join's record is late once stream time passes it by more than the grace.
  if (node.kind === 'streamJoin') return { graceMs: node.graceMs, lateFrom: (timestamp) => timestamp + node.graceMs + 1 };
  return undefined;
}
