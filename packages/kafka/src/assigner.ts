import { Buffer } from 'node:buffer';
import kafkajs from 'kafkajs';
import type { Assigner, Cluster, PartitionAssigner } from 'kafkajs';

const { AssignerProtocol } = kafkajs;

/** The protocol name members advertise; every member of an Eddy group uses this assigner. */
export const COPARTITIONED_PROTOCOL = 'EddyCopartitioned';

/** One member of a group as the assignment sees it: its id and the topics it reads. */
export interface MemberSubscription {
  readonly memberId: string;
  readonly topics: readonly string[];
}

/**
 * Eddy's assignment: partition p of every topic goes to the member at p mod n (members sorted by
 * id, among those that read the topic), the way the embedded broker assigns. A task may read
 * several co-partitioned topics (merged sources), so partition p of each must land on the same
 * member; kafkajs's round-robin assigner deals topic-partitions out one by one and does not
 * guarantee that.
 *
 * @example
 * ```ts
 * assignCopartitioned([{ memberId: 'a', topics: ['in'] }, { memberId: 'b', topics: ['in'] }], () => [0, 1, 2]);
 * // Map { 'a' => { in: [0, 2] }, 'b' => { in: [1] } }
 * ```
 */
export function assignCopartitioned(
  members: readonly MemberSubscription[],
  partitionsOf: (topic: string) => readonly number[],
): Map<string, Record<string, number[]>> {
  const sorted = [...members].sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0));
  const assignment = new Map(sorted.map((member) => [member.memberId, {} as Record<string, number[]>]));
  const topics = [...new Set(sorted.flatMap((member) => member.topics))].sort();
  for (const topic of topics) {
    const readers = sorted.filter((member) => member.topics.includes(topic));
    for (const partition of [...partitionsOf(topic)].sort((a, b) => a - b)) {
      const owner = assignment.get(readers[partition % readers.length]!.memberId)!;
      (owner[topic] ??= []).push(partition);
    }
  }
  return assignment;
}

/**
 * A kafkajs partition assigner for {@link assignCopartitioned}; the group leader runs it.
 * `onCluster` receives the consumer's cluster (kafkajs hands it to assigner factories), which is
 * where {@link holdJoins} hooks in.
 */
export function copartitionedAssigner(onCluster?: (cluster: Cluster) => void): PartitionAssigner {
  return ({ cluster }): Assigner => {
    onCluster?.(cluster);
    return {
      name: COPARTITIONED_PROTOCOL,
      version: 1,
      protocol: ({ topics }) => ({
        name: COPARTITIONED_PROTOCOL,
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }),
      }),
      async assign({ members, topics }) {
        const subscriptions = members.map(({ memberId, memberMetadata }) => ({
          memberId,
          topics: AssignerProtocol.MemberMetadata.decode(memberMetadata)?.topics ?? topics,
        }));
        const known = (topic: string) => cluster.findTopicPartitionMetadata(topic).map((metadata) => metadata.partitionId);
        const assignment = assignCopartitioned(subscriptions, known);
        return [...assignment].map(([memberId, partitions]) => ({
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: partitions, userData: Buffer.alloc(0) }),
        }));
      },
    };
  };
}

/** A kafkajs partition assigner that gives one partition of one topic to the (only) member. */
export function singlePartitionAssigner(topic: string, partition: number): PartitionAssigner {
  return (): Assigner => ({
    name: 'EddySinglePartition',
    version: 1,
    protocol: ({ topics }) => ({
      name: 'EddySinglePartition',
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }),
    }),
    async assign({ members }) {
      return members.map(({ memberId }, index) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 1,
          assignment: index === 0 ? { [topic]: [partition] } : {},
          userData: Buffer.alloc(0),
        }),
      }));
    },
  });
}

/**
 * Makes every (re)join of the consumer that owns `cluster` wait for `beforeJoin`.
 *
 * kafkajs has no rebalance listener: when it learns of a rebalance it rejoins at once, and the
 * new owner of a partition may start on it while the old owner is still committing. The one
 * step of a join that goes through an object we can reach is the coordinator lookup, which the
 * consumer does right before each JoinGroup (and nowhere else on this cluster). Holding it holds
 * the JoinGroup, and the group's rebalance waits for this member (up to the rebalance timeout),
 * as it does for a Java consumer inside `onPartitionsRevoked`.
 */
export function holdJoins(cluster: Cluster, beforeJoin: () => Promise<void>): void {
  const findGroupCoordinator = cluster.findGroupCoordinator.bind(cluster);
  cluster.findGroupCoordinator = async (group) => {
    await beforeJoin();
    return findGroupCoordinator(group);
  };
}
