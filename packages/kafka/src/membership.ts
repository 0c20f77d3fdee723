import { randomUUID } from 'node:crypto';
import { systemClock, type TopicPartition } from '@eddy/core';
import { consumerGroupHeartbeatV1, type Connection } from '@platformatic/kafka';
import { backoff, sleep } from './backoff.js';
import type { Cluster } from './cluster.js';
import type { MemberLog } from './member.js';
import type { KafkaSettings } from './options.js';
import { hasKafkaError } from './protocol-errors.js';

type ConsumerGroupHeartbeatResponse = consumerGroupHeartbeatV1.ConsumerGroupHeartbeatResponse;

/** Errors after which the group no longer counts this member in: its partitions are lost, and it joins again. */
export const FENCED = ['FENCED_MEMBER_EPOCH', 'UNKNOWN_MEMBER_ID'];
/** Errors that no retry mends: the member stops and the app is told. */
export const FATAL = [
  'UNSUPPORTED_VERSION',
  'UNSUPPORTED_ASSIGNOR',
  'INVALID_REQUEST',
  'GROUP_AUTHORIZATION_FAILED',
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_MAX_SIZE_REACHED',
  'INVALID_GROUP_ID',
  'GROUP_ID_NOT_FOUND',
];

/** Whether the broker does not know the API at all (a broker older than Kafka 4.0 has no ConsumerGroupHeartbeat). */
export const isUnsupportedApi = (error: unknown) => typeof error === 'object' && error !== null && (error as { code?: string }).code === 'PLT_KFK_UNSUPPORTED_API';

/** What a {@link Membership} needs of its group member. */
export interface MembershipContext {
  readonly settings: KafkaSettings;
  readonly groupId: string;
  readonly topics: readonly string[];
  readonly cluster: Cluster;
  /** Partitions the coordinator knows this member holds (sent with each heartbeat). */
  readonly owned: ReadonlyMap<string, TopicPartition>;
  readonly stopping: () => boolean;
  /** The coordinator's newest assignment, as a heartbeat's answer carried it. */
  readonly assignmentReceived: (assigned: ReadonlyArray<{ topicId: string; partitions: number[] }>) => Promise<void>;
  /** The group no longer counts this member in: its partitions are revoked without committing. */
  readonly loseAll: () => Promise<void>;
  /** A failure no retry mends: the member stops. */
  readonly fail: (error: unknown) => void;
  readonly log: MemberLog;
}

/**
 * A member's place in its group: the id and epoch the coordinator knows it by, the connection to
 * that coordinator, and the heartbeats (ConsumerGroupHeartbeat) that keep it in the group, tell
 * the coordinator which partitions it holds and bring the coordinator's assignments.
 */
export class Membership {
  readonly #context: MembershipContext;
  #memberId: string = randomUUID();
  #epoch = 0;
  #heartbeatIntervalMs = 1_000;
  #coordinator: Promise<Connection> | undefined;
  #lastHeartbeatAt = 0;
  #wakeHeartbeat: (() => void) | undefined;
  /** Since when heartbeats have failed, while they do. */
  #failingSince: number | undefined;
  /** Whether the coordinator refuses the member's static id (another member holds it), as of the last heartbeat. */
  #refusedInstanceId = false;

  constructor(context: MembershipContext) {
    this.#context = context;
  }

  get memberId(): string {
    return this.#memberId;
  }

  get epoch(): number {
    return this.#epoch;
  }

  /** When a heartbeat was last answered. */
  get lastHeartbeatAt(): number {
    return this.#lastHeartbeatAt;
  }

  /** What keeps the member out of its group now (see `TransportConsumer.troubles`). */
  troubles(now: number): string[] {
    const { settings } = this.#context;
    if (this.#refusedInstanceId) return [`the group refuses groupInstanceId ${JSON.stringify(settings.groupInstanceId)}: another member holds it, and this instance gets no partitions until it is released`];
    const failingFor = this.#failingSince === undefined ? 0 : now - this.#failingSince;
    return failingFor > settings.sessionTimeoutMs ? [`no heartbeat has got through to the group's coordinator for ${failingFor} ms`] : [];
  }

  /** Heartbeats until the member stops: joins (epoch 0), stays in, and joins again after losing its partitions. */
  async run(): Promise<void> {
    const { settings, owned, stopping } = this.#context;
    let failures = 0;
    while (!stopping()) {
      try {
        const response = await this.#heartbeat(this.#epoch);
        failures = 0;
        this.#failingSince = undefined;
        this.#refusedInstanceId = false;
        this.#lastHeartbeatAt = systemClock.now();
        if (response.heartbeatIntervalMs > 0) this.#heartbeatIntervalMs = response.heartbeatIntervalMs;
        if (response.assignment) await this.#context.assignmentReceived(response.assignment.topicPartitions);
      } catch (error) {
        if (stopping()) break;
        failures++;
        const failingSince = (this.#failingSince ??= systemClock.now());
        if (hasKafkaError(error, ...FATAL) || isUnsupportedApi(error)) {
          this.#context.fail(error);
          return;
        }
        if (hasKafkaError(error, ...FENCED)) {
          this.#context.log('warn', 'the group fenced this member (it missed heartbeats or was removed); its partitions are lost and it joins again', { error: String(error) });
          await this.#context.loseAll();
          this.#epoch = 0;
          continue;
        }
        if (!hasKafkaError(error, 'UNRELEASED_INSTANCE_ID')) {
          this.#coordinator = undefined;
        } else if (!this.#refusedInstanceId) {
          // Retried: a crashed instance's id is released when its session times out. Until then, or
          // for good if another live instance has the same id, this one gets no partitions.
          this.#refusedInstanceId = true;
          this.#context.log('warn', `the group refuses groupInstanceId ${JSON.stringify(settings.groupInstanceId)}: another member holds it; this instance gets no partitions until it is released (its last owner stopped, or its session timed out). Give each live instance its own id`, { error: String(error) });
        }
        // Partitions whose owner could not reach the coordinator for a session are another's by now.
        if (systemClock.now() - failingSince > settings.sessionTimeoutMs && owned.size > 0) {
          this.#context.log('warn', 'no heartbeat got through for a session timeout; the partitions are lost and the member joins again', { error: String(error) });
          await this.#context.loseAll();
          this.#epoch = 0;
        }
        this.#context.log('debug', 'a heartbeat failed', { error: String(error), failures });
        await sleep(backoff(failures - 1));
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#heartbeatIntervalMs);
        this.#wakeHeartbeat = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wakeHeartbeat = undefined;
    }
  }

  /** Sends the next heartbeat now (a change to acknowledge, or a question only the coordinator answers). */
  wake(): void {
    this.#wakeHeartbeat?.();
  }

  /** Leaves the group: a static member (-2) keeps its partitions for the session timeout, anyone else (-1) gives them up now. */
  async leave(): Promise<void> {
    if (this.#epoch <= 0) return;
    const leaveEpoch = this.#context.settings.groupInstanceId ? -2 : -1;
    await this.#heartbeat(leaveEpoch).catch((error: unknown) => this.#context.log('debug', 'leaving the group failed', { error: String(error) }));
  }

  /** A connection to the group's coordinator, found once and kept until it fails or {@link forgetCoordinator}. */
  coordinator(): Promise<Connection> {
    const connection = (this.#coordinator ??= this.#context.cluster.groupCoordinator(this.#context.groupId));
    connection.catch(() => {
      if (this.#coordinator === connection) this.#coordinator = undefined;
    });
    return connection;
  }

  /** The coordinator moved (NOT_COORDINATOR) or is not there: the next request finds it again. */
  forgetCoordinator(): void {
    this.#coordinator = undefined;
  }

  async #heartbeat(epoch: number): Promise<ConsumerGroupHeartbeatResponse> {
    const { settings, groupId, topics } = this.#context;
    const joining = epoch === 0;
    const owned = epoch < 0 ? null : joining ? [] : await this.#ownedByTopicId();
    const response = await consumerGroupHeartbeatV1.api.async(
      await this.coordinator(),
      groupId,
      this.#memberId,
      epoch,
      settings.groupInstanceId ?? null,
      null,
      settings.rebalanceTimeoutMs,
      epoch < 0 ? null : [...topics],
      null,
      epoch < 0 ? null : 'range',
      // null: unchanged (a leave carries none).
      owned as Array<{ topicId: string; partitions: number[] }>,
    );
    if (response.memberId) this.#memberId = response.memberId;
    if (epoch >= 0) this.#epoch = response.memberEpoch;
    return response;
  }

  async #ownedByTopicId(): Promise<Array<{ topicId: string; partitions: number[] }>> {
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of this.#context.owned.values()) byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
    if (byTopic.size === 0) return [];
    const metadata = await this.#context.cluster.metadata([...byTopic.keys()]);
    return [...byTopic].flatMap(([topic, partitions]) => {
      const topicId = metadata.topics.get(topic)?.id;
      return topicId ? [{ topicId, partitions }] : [];
    });
  }
}
