import { changelogTopic, deadLetterTopic, type SubTopology, type Topology } from '../dsl/topology.js';
import { ConfigError } from '../errors.js';
import type { Transport } from '../transport/types.js';

/**
 * The topics an app reads and writes, made before its tasks start, and their partition counts
 * (a sink partitions its keys by them; a host's `send` too).
 */
export class TopicProvisioner {
  readonly #partitions = new Map<string, number>();

  constructor(
    private readonly appId: string,
    private readonly transport: () => Transport,
  ) {}

  /** The partition count of a topic made or seen before (1 for one never seen). */
  partitionsOf(topic: string): number {
    return this.#partitions.get(topic) ?? 1;
  }

  /** The partition count of a topic; a topic that does not exist is made with the transport's default count. */
  async partitionCount(topic: string): Promise<number> {
    const known = this.#partitions.get(topic);
    if (known !== undefined) return known;
    const transport = this.transport();
    let count = await transport.partitionCount(topic);
    if (count === undefined) {
      await transport.ensureTopics([{ name: topic, partitions: transport.defaultPartitions ?? 1 }]);
      count = (await transport.partitionCount(topic)) ?? 1;
    }
    this.#partitions.set(topic, count);
    return count;
  }

  /**
   * Partition counts: a sub-topology runs one task per partition of its sources (which must
   * agree); a repartition topic gets the count of the sub-topology that reads it: its writer's,
   * unless the reader also reads a topic of its own (a join with a table), whose count it takes
   * so that the re-keyed side is co-partitioned with it, or other repartition topics (both sides
   * of a stream–stream join), which all take the largest of their writers' counts; changelogs get
   * the count of the sub-topology that owns the store.
   */
  async provision(topology: Topology): Promise<void> {
    const counts = new Map<SubTopology, number>();
    const internalCount = (topic: string) => {
      const writer = topology.repartitionTopics.get(topic);
      return writer ? counts.get(writer) : undefined;
    };
    for (let pass = 0; pass <= topology.subTopologies.length && counts.size < topology.subTopologies.length; pass++) {
      for (const sub of topology.subTopologies) {
        if (counts.has(sub)) continue;
        const external = sub.sources.filter((source) => !source.internal);
        const sourceCounts: number[] = [];
        let ready = true;
        for (const source of external.length > 0 ? external : sub.sources) {
          if (source.internal) {
            const count = internalCount(source.topic);
            if (count === undefined) ready = false;
            else sourceCounts.push(count);
          } else {
            sourceCounts.push(await this.partitionCount(source.topic));
          }
        }
        if (!ready) continue;
        // Repartition topics only (both sides of a stream–stream join): the larger count, for all of them.
        if (external.length === 0) {
          counts.set(sub, Math.max(...sourceCounts));
          continue;
        }
        if (new Set(sourceCounts).size > 1) {
          const how = sub.nodes.some((node) => node.kind === 'join' || node.kind === 'tableJoin') ? 'joined (a join needs both sides in the same number of partitions)' : 'merged';
          throw new ConfigError(`topics ${external.map((source) => source.topic).join(', ')} are ${how} but have different partition counts (${sourceCounts.join(', ')})`);
        }
        counts.set(sub, sourceCounts[0]!);
      }
    }
    const readerOf = (topic: string) => topology.subTopologies.find((sub) => sub.sources.some((source) => source.topic === topic));
    const specs = [];
    for (const [topic, writer] of topology.repartitionTopics) {
      // The reading task's count: its writer's, unless it reads other topics too (see above).
      specs.push({ name: topic, partitions: counts.get(readerOf(topic) ?? writer)!, unlimitedRetention: true });
    }
    for (const sub of topology.subTopologies) {
      for (const store of sub.storeNames) specs.push({ name: changelogTopic(this.appId, store), partitions: counts.get(sub)!, compacted: true });
    }
    const internal = [...specs];
    specs.push({ name: deadLetterTopic(this.appId), partitions: 1 });
    await this.transport().ensureTopics(specs);
    // Existing topics are never changed: one made before (by hand, or for an input of another
    // count) must already match, or its tasks would write partitions that do not exist.
    for (const spec of internal) {
      const actual = await this.transport().partitionCount(spec.name);
      if (actual !== undefined && actual !== spec.partitions) {
        throw new ConfigError(`topic ${spec.name} has ${actual} partitions, but app ${this.appId} needs ${spec.partitions} (the partitions of the input its tasks read): delete it, or create it with ${spec.partitions}`);
      }
    }
    for (const spec of specs) this.#partitions.set(spec.name, spec.partitions);
    for (const sub of topology.subTopologies) for (const sink of sub.sinks) await this.partitionCount(sink.topic);
  }
}
