import type { MemoryConsumer } from './memory-consumer.js';
import { partitionKey, type TopicPartition, type TopicPartitionOffset } from './types.js';

/** What a consumer group needs of the broker it lives on. */
export interface GroupBroker {
  /** The partition count of a topic; 0 when it does not exist. */
  partitionsOf(topic: string): number;
  /** Keeps committed offsets durably before the commit resolves (see `MemoryTransport.writeCommitted`). */
  writeCommitted(groupId: string, offsets: readonly TopicPartitionOffset[]): Promise<void> | undefined;
}

/** A consumer group on the embedded broker: its members, which partitions each reads, and its committed offsets. */
export class ConsumerGroup {
  readonly members: MemoryConsumer[] = [];
  readonly #committed = new Map<string, number>();
  readonly #broker: GroupBroker;
  /** The join or leave under way (see #serially). */
  #changes: Promise<void> = Promise.resolve();

  constructor(
    readonly id: string,
    broker: GroupBroker,
  ) {
    this.#broker = broker;
  }

  /** Adds a member and rebalances; resolves once every member has its partitions. */
  join(member: MemoryConsumer): Promise<void> {
    return this.#serially(async () => {
      this.members.push(member);
      await this.#rebalance();
    });
  }

  /** Removes a member and hands its partitions to the others. */
  leave(member: MemoryConsumer): Promise<void> {
    return this.#serially(async () => {
      const index = this.members.indexOf(member);
      if (index < 0) return;
      await member.revokeAll();
      this.members.splice(index, 1);
      await this.#rebalance();
    });
  }

  /** Joins and leaves one at a time: members that come or go together (apps started at once) each see a settled group. */
  #serially(change: () => Promise<void>): Promise<void> {
    const run = this.#changes.then(change);
    this.#changes = run.catch(() => undefined);
    return run;
  }

  /** Partition p of every topic goes to member p mod n, so co-partitioned topics stay together. */
  async #rebalance(): Promise<void> {
    const members = [...this.members];
    const wanted = members.map(() => [] as TopicPartition[]);
    members.forEach((member, index) => {
      for (const topic of member.topics) {
        const count = this.#broker.partitionsOf(topic);
        for (let partition = 0; partition < count; partition++) {
          if (partition % members.length === index) wanted[index]!.push({ topic, partition });
        }
      }
    });
    await Promise.all(members.map((member, index) => member.revokeExcept(wanted[index]!)));
    await Promise.all(members.map((member, index) => member.assign(wanted[index]!)));
  }

  committedOffset(topic: string, partition: number): number | undefined {
    return this.#committed.get(partitionKey(topic, partition));
  }

  /** Commits offsets (kept durably first, where the broker keeps its log on disk); they never move backwards. */
  async commitOffsets(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    const forward = offsets.filter(({ topic, partition, offset }) => (this.#committed.get(partitionKey(topic, partition)) ?? -1) < offset);
    if (forward.length === 0) return;
    await this.#broker.writeCommitted(this.id, forward);
    for (const { topic, partition, offset } of forward) {
      const key = partitionKey(topic, partition);
      if ((this.#committed.get(key) ?? -1) < offset) this.#committed.set(key, offset);
    }
  }

  /** Puts a committed offset back as it was kept (a broker loading its log). */
  restoreCommitted(topic: string, partition: number, offset: number): void {
    this.#committed.set(partitionKey(topic, partition), offset);
  }
}
