import kafkajs from 'kafkajs';
import type { Cluster, GroupMember } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { assignCopartitioned, copartitionedAssigner, COPARTITIONED_PROTOCOL, holdJoins } from './assigner.js';

const { AssignerProtocol } = kafkajs;
const range = (count: number) => Array.from({ length: count }, (_, index) => index);

describe('assignCopartitioned', () => {
  it('gives partition p of every topic to the same member, p mod n over members sorted by id', () => {
    const members = [
      { memberId: 'c', topics: ['in', 'repartition'] },
      { memberId: 'a', topics: ['in', 'repartition'] },
      { memberId: 'b', topics: ['in', 'repartition'] },
    ];
    const assignment = assignCopartitioned(members, () => range(5));
    expect(Object.fromEntries(assignment)).toEqual({
      a: { in: [0, 3], repartition: [0, 3] },
      b: { in: [1, 4], repartition: [1, 4] },
      c: { in: [2], repartition: [2] },
    });
  });

  it('assigns every partition exactly once, also with more members than partitions', () => {
    const members = range(6).map((index) => ({ memberId: `m${index}`, topics: ['t'] }));
    const assignment = assignCopartitioned(members, () => [3, 1, 0, 2]);
    const owned = [...assignment.values()].flatMap((topics) => topics.t ?? []);
    expect(owned.sort()).toEqual([0, 1, 2, 3]);
    expect(assignment.get('m5')).toEqual({});
  });

  it('gives a topic only to the members that read it', () => {
    const assignment = assignCopartitioned(
      [
        { memberId: 'a', topics: ['x'] },
        { memberId: 'b', topics: ['x', 'y'] },
      ],
      () => range(2),
    );
    expect(Object.fromEntries(assignment)).toEqual({ a: { x: [0] }, b: { x: [1], y: [0, 1] } });
  });

  it('has no members, no assignment', () => {
    expect(assignCopartitioned([], () => range(3)).size).toBe(0);
  });
});

describe('copartitionedAssigner', () => {
  const cluster = (partitions: number) =>
    ({
      findTopicPartitionMetadata: () => range(partitions).map((partitionId) => ({ partitionId })),
      findGroupCoordinator: async () => 'coordinator',
    }) as unknown as Cluster;

  it('speaks the kafkajs assigner protocol', async () => {
    const assigner = copartitionedAssigner()({ cluster: cluster(4), groupId: 'g', logger: {} as never });
    const metadata = (topics: string[]) => assigner.protocol({ topics }).metadata;
    expect(assigner.protocol({ topics: ['in'] }).name).toBe(COPARTITIONED_PROTOCOL);
    const members: GroupMember[] = [
      { memberId: 'b', memberMetadata: metadata(['in']) },
      { memberId: 'a', memberMetadata: metadata(['in']) },
    ];
    const result = await assigner.assign({ members, topics: ['in'] });
    const decoded = Object.fromEntries(result.map(({ memberId, memberAssignment }) => [memberId, AssignerProtocol.MemberAssignment.decode(memberAssignment)?.assignment]));
    expect(decoded).toEqual({ a: { in: [0, 2] }, b: { in: [1, 3] } });
  });

  it('hands the consumer cluster over, where holdJoins delays each coordinator lookup', async () => {
    const target = cluster(1);
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    copartitionedAssigner((received) => holdJoins(received, async () => {
      order.push('before join');
      await held;
    }))({ cluster: target, groupId: 'g', logger: {} as never });
    const lookup = target.findGroupCoordinator({ groupId: 'g' }).then((coordinator) => order.push(`joined via ${String(coordinator)}`));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(order).toEqual(['before join']);
    release();
    await lookup;
    expect(order).toEqual(['before join', 'joined via coordinator']);
  });
});
