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
 * sub-topology that writes a repartition topic read by a windowed step or a windowed join is
 * delivered in step, within half the smallest grace of those steps, while its tasks are seen moving
 * records between partitions (and, from the start, until `PROBE_RECORDS` show they do not).
 * Event time only. The embedded brokers cut each pass from their logs; on Kafka the fetch loop
 * holds fetched records back (packages/kafka/src/fetch-loop.ts).
 */
export class DeliveryAlignment {
  /** Per source topic, how it is delivered in step (`group`: its sub-topology's index). */
  readonly #plans = new Map<string, Alignment>();
  /** Sub-topologies with a plan. */
  readonly #planned = new Set<number>();
  readonly #crossing = new Set<number>();
  readonly #delivered = new Map<number, number>();

  constructor(topology: Topology, clock: Clock, time: 'event' | 'processing') {
    if (time !== 'event') return;
    // Only for reading timestamps: a record whose value does not decode is judged by its own.
    const decoder = new RecordDecoder(topology, clock, () => undefined);
    for (const sub of topology.subTopologies) {
      const grace = downstreamGrace(topology, sub);
      if (grace === undefined) continue;
      // A record may sit up to the span behind what another partition delivered in the same pass,
      // and its own partition's disorder more: half the grace leaves the other half for that.
      const spanMs = Math.floor(grace / 2);
      for (const source of sub.sources) {
        const timestamp = source.timestamp ? (record: IncomingRecord) => decoder.extractTimestamp(source, record) : (record: IncomingRecord) => record.timestamp;
        this.#plans.set(source.topic, { group: sub.index, spanMs, timestamp });
      }
      this.#planned.add(sub.index);
    }
  }

  /** How to deliver `topic` now, or undefined for whole batches. */
  forTopic(topic: string): Alignment | undefined {
    const plan = this.#plans.get(topic);
    return plan && this.aligning(plan.group) ? plan : undefined;
  }

  /** Whether sub-topology `index`'s input is delivered in step now. */
  aligning(index: number): boolean {
    if (!this.#planned.has(index)) return false;
    return this.#crossing.has(index) || (this.#delivered.get(index) ?? 0) < PROBE_RECORDS;
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
 * The smallest grace of the windowed steps and windowed joins that read the repartition topics a
 * sub-topology writes; undefined if it writes none or nothing there can be late.
 */
function downstreamGrace(topology: Topology, sub: SubTopology): number | undefined {
  const written = new Set(sub.sinks.filter((sink) => topology.repartitionTopics.has(sink.topic)).map((sink) => sink.topic));
  let grace: number | undefined;
  for (const reader of topology.subTopologies) {
    if (!reader.sources.some((source) => written.has(source.topic))) continue;
    for (const node of reader.nodes) {
      const nodeGrace = node.kind === 'window' ? node.window.graceMs : node.kind === 'streamJoin' ? node.graceMs : undefined;
      if (nodeGrace !== undefined) grace = Math.min(grace ?? Infinity, nodeGrace);
    }
  }
  return grace;
}
