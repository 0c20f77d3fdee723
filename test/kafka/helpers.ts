/**
 * Shared helpers of the @eddy/kafka tests on the real broker: a logger that keeps what it is
 * told, polling with a deadline, and a consumer that gathers everything written to a topic.
 */
import { rm } from 'node:fs/promises';
import { partitionForKey, type App, type Logger, type TopicSpec } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { Consumer as PlatformaticConsumer, createAPI, Writer, type Reader } from '@platformatic/kafka';
import kafkajs from 'kafkajs';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import type { KafkaBroker } from '../../scripts/src/kafka.ts';
import { uniqueName } from './broker.ts';

const { AssignerProtocol, logLevel } = kafkajs;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with `promise`, or with undefined after `ms` (so that clean-up cannot hang). */
export const within = <T,>(promise: Promise<T>, ms: number) => Promise.race([promise, sleep(ms).then(() => undefined)]);

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown>;
}

/** A logger that keeps every entry; EDDY_TEST_LOG=1 also prints warnings and errors, EDDY_TEST_LOG=info everything but debug. */
export function recordingLogger(): Logger & { entries: LogEntry[]; errors(): LogEntry[] } {
  const entries: LogEntry[] = [];
  const write = (level: LogEntry['level']) => (fields: Record<string, unknown>, message: string) => {
    entries.push({ level, message, fields });
    const show = process.env.EDDY_TEST_LOG;
    if ((show === '1' && (level === 'warn' || level === 'error')) || (show === 'info' && level !== 'debug') || show === 'debug') console.log(new Date().toISOString(), level, message, JSON.stringify(fields));
  };
  return {
    entries,
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    /** Errors that the transport itself logged (kafkajs logs retriable trouble as errors too). */
    errors: () => entries.filter((entry) => entry.level === 'error' && entry.fields.component === 'eddy-kafka'),
  };
}

/** Polls `check` until it returns true, failing with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, { timeoutMs = 30_000, intervalMs = 50 } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface Gathered {
  partition: number;
  offset: number;
  key: string | undefined;
  value: string | undefined;
}

/**
 * Reads a topic from the beginning into `records` until `stop()`. Like every kafkajs consumer it
 * reads committed records only (read_committed) unless `readUncommitted` is set.
 */
export async function gatherTopic(kafka: Kafka, topic: string, { readUncommitted = false } = {}): Promise<{ records: Gathered[]; stop(): Promise<void> }> {
  const records: Gathered[] = [];
  const consumer: Consumer = kafka.consumer({ groupId: uniqueName('eddy-gather'), maxWaitTimeInMs: 100, readUncommitted });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      records.push({ partition, offset: Number(message.offset), key: message.key?.toString(), value: message.value?.toString() });
    },
  });
  return { records, stop: () => consumer.disconnect() };
}

/**
 * Creates topics and waits for their leaders. kafkajs's `createTopics({ waitForLeaders: true })`
 * fails now and then on Kafka 4, which answers UNKNOWN_TOPIC_OR_PARTITION for a moment after
 * creating a topic; the transport's ensureTopics waits through that.
 */
export async function createTopics(brokers: string[], specs: TopicSpec[]): Promise<void> {
  const transport = kafkaTransport({ brokers, logLevel: 'nothing' });
  try {
    await transport.ensureTopics(specs);
  } finally {
    await transport.close();
  }
}

/** A kafkajs client for test set-up (topics, raw produce, inspection), silent. */
export function testKafka(brokers: string[]): Kafka {
  return new kafkajs.Kafka({ clientId: 'eddy-kafka-test', brokers, logLevel: logLevel.NOTHING });
}

/**
 * Produces readings keyed by sensor with their event time as the record timestamp. Idempotent: a
 * plain kafkajs producer resends a whole request when one partition of it fails (common right
 * after a topic is created), duplicating the records of the other partitions.
 */
export async function produceReadings(kafka: Kafka, topic: string, input: ReadonlyArray<{ sensor: string; ts: number }>): Promise<void> {
  const producer = kafka.producer({ idempotent: true, createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    await producer.send({ topic, messages: input.map((reading) => ({ key: reading.sensor, value: JSON.stringify(reading), timestamp: String(reading.ts) })) });
  } finally {
    await producer.disconnect();
  }
}

/**
 * Whether the group has committed every record of `topics` (list upstream first: once the input
 * is committed, what it sent on has reached the internal topics). A partition nothing was ever
 * written to needs no commit (records handed off locally skip their repartition topic).
 */
export async function allCommitted(admin: Admin, groupId: string, topics: readonly string[]): Promise<boolean> {
  for (const topic of topics) {
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const ends = await admin.fetchTopicOffsets(topic);
    for (const { partition, high } of ends) {
      const offset = committed?.partitions.find((entry) => entry.partition === partition)?.offset ?? '-1';
      if (Number(high) > 0 && Number(offset) < Number(high)) return false;
    }
  }
  return true;
}

/** Readings to produce in rounds, and the sum every tumbling window must report. */
export interface SensorRounds {
  /** The first window's start: a minute ago, aligned to the window. */
  readonly base: number;
  /** A timestamp past every window: one reading per sensor there closes the last ones. */
  readonly farFuture: number;
  /** Sum of values per window, `sensor@windowStart`. */
  readonly expected: Map<string, number>;
  /** Keyed messages, `stepsPerRound` steps of every sensor per round. */
  readonly rounds: Array<Array<{ key: string; value: string; timestamp: string }>>;
}

/**
 * Per sensor, one reading `{ sensor, ts, value }` every `stepMs` of event time for `steps` steps,
 * value = step * 7 + sensor index, so every window sum is distinct and a reading counted twice or
 * missed shows. Event time starts a minute ago, aligned to the window: not near 0, because the
 * broker forgets an idempotent producer whose last record is older than producer.id.expiration.ms
 * (a day) when it loads a log after a restart (a retried batch is then written twice), and not in
 * the future, past message.timestamp.after.max.ms.
 */
export function sensorRounds(sensors: readonly string[], { windowMs, stepMs, steps, stepsPerRound }: { windowMs: number; stepMs: number; steps: number; stepsPerRound: number }): SensorRounds {
  const base = Math.floor((Date.now() - 60_000) / windowMs) * windowMs;
  const expected = new Map<string, number>();
  const rounds: SensorRounds['rounds'] = [];
  for (let step = 0; step < steps; step++) {
    if (step % stepsPerRound === 0) rounds.push([]);
    sensors.forEach((sensor, index) => {
      const ts = base + step * stepMs;
      const value = step * 7 + index;
      const window = `${sensor}@${Math.floor(ts / windowMs) * windowMs}`;
      expected.set(window, (expected.get(window) ?? 0) + value);
      rounds.at(-1)!.push({ key: sensor, value: JSON.stringify({ sensor, ts, value }), timestamp: String(ts) });
    });
  }
  return { base, farFuture: base + steps * stepMs + 5 * windowMs, expected, rounds };
}

/** What an app logged at warn and error, by message, with counts (connection refusals left out). */
export function troubles(entries: readonly LogEntry[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { level, message } of entries) {
    if ((level !== 'warn' && level !== 'error') || /ECONNREFUSED|Failed to connect to seed broker|Connection error/.test(message)) continue;
    counts[message] = (counts[message] ?? 0) + 1;
  }
  return counts;
}

/** Members of a group by client id, with the partitions of `topic` each holds (sorted); undefined while the group is not stable. */
export async function assignment(admin: Admin, groupId: string, topic: string): Promise<Map<string, number[]> | undefined> {
  if (process.env.EDDY_KAFKA_CLIENT === 'platformatic') return consumerGroupAssignment(admin, groupId, topic);
  const { groups } = await admin.describeGroups([groupId]);
  const group = groups[0];
  if (!group || group.state !== 'Stable') return undefined;
  const result = new Map<string, number[]>();
  for (const member of group.members) {
    const decoded = AssignerProtocol.MemberAssignment.decode(member.memberAssignment);
    result.set(member.clientId, [...(decoded?.assignment[topic] ?? [])].sort((a, b) => a - b));
  }
  return result;
}

/**
 * ConsumerGroupDescribe (v0). @platformatic/kafka 1.35's own parser reads `subscribed_topic_names`
 * as one string and leaves out the tagged fields after each assignment, so it fails on a group
 * with members; this one follows Kafka's schema.
 */
const describeConsumerGroups = createAPI<[groupIds: string[]], Array<{ errorCode: number; groupState: string; members: Array<{ clientId: string; assignment: Array<{ topicName: string; partitions: number[] }>; target: Array<{ topicName: string; partitions: number[] }> }> }>>(
  69,
  0,
  (groupIds: string[]) => Writer.create().appendArray(groupIds, (w, id) => w.appendString(id), true, false).appendBoolean(false).appendTaggedFields(),
  (_correlationId, _apiKey, _apiVersion, reader: Reader) => {
    reader.readInt32();
    const assignment = (r: Reader) => {
      const partitions = r.readArray((t) => ({ topicId: t.readUUID(), topicName: t.readString(), partitions: t.readArray((p) => p.readInt32(), true, false) }));
      r.readTaggedFields();
      return partitions;
    };
    const groups = reader.readArray((r) => {
      const errorCode = r.readInt16();
      r.readNullableString();
      r.readString();
      const groupState = r.readString();
      r.readInt32();
      r.readInt32();
      r.readString();
      const members = r.readArray((m) => {
        m.readString();
        m.readNullableString();
        m.readNullableString();
        m.readInt32();
        const clientId = m.readString();
        m.readString();
        m.readArray((t) => t.readString(), true, false);
        m.readNullableString();
        return { clientId, assignment: assignment(m), target: assignment(m) };
      });
      r.readInt32();
      return { errorCode, groupState, members };
    });
    reader.readTaggedFields();
    return groups;
  },
  true,
  true,
);

/** The same for a group on the consumer group protocol of KIP-848 (ConsumerGroupDescribe): stable once every member holds its target assignment. */
async function consumerGroupAssignment(admin: Admin, groupId: string, topic: string): Promise<Map<string, number[]> | undefined> {
  const { brokers } = await admin.describeCluster();
  const client = new PlatformaticConsumer({ clientId: 'eddy-test', groupId, bootstrapBrokers: brokers.map(({ host, port }) => `${host}:${port}`) });
  try {
    const coordinator = await client.findGroupCoordinator();
    const connection = (await client.connectToBrokers([coordinator])).get(coordinator)!;
    const [group] = await describeConsumerGroups.async(connection, [groupId]);
    if (!group || group.errorCode !== 0 || group.groupState !== 'Stable') return undefined;
    const result = new Map<string, number[]>();
    const held = (assigned: ReadonlyArray<{ topicName: string; partitions: number[] }>) =>
      assigned.filter((entry) => entry.topicName === topic).flatMap((entry) => entry.partitions).sort((a, b) => a - b);
    for (const member of group.members) {
      const now = held(member.assignment);
      if (now.join() !== held(member.target).join()) return undefined;
      result.set(member.clientId, now);
    }
    return result;
  } finally {
    await client.close(true);
  }
}

/** Deletes the topics an app made or a test made for it (`<appId>-...`), best effort. */
export async function deleteAppTopics(admin: Admin | undefined, appId: string): Promise<void> {
  const topics = (await admin?.listTopics().catch(() => [] as string[])) ?? [];
  await admin?.deleteTopics({ topics: topics.filter((topic) => topic.startsWith(`${appId}-`)) }).catch(() => undefined);
}

/**
 * Clean-up of a test that ran an app on a broker of its own that it killed and restarted: with the
 * broker up, the app may commit and leave (not waited for long) and the app's topics go; without
 * it, the app is left to fail. Then the broker stops and its data goes.
 */
export async function cleanUpAfterOutage(run: { app: App | undefined; appId: string; admin: Admin | undefined; broker: KafkaBroker | undefined; scratch: string }): Promise<void> {
  if (run.broker) {
    await within(run.app?.stop().catch(() => undefined) ?? Promise.resolve(), 20_000);
    await deleteAppTopics(run.admin, run.appId);
  } else {
    void run.app?.stop().catch(() => undefined);
  }
  await run.admin?.disconnect().catch(() => undefined);
  await run.broker?.stop(5_000);
  await rm(run.scratch, { recursive: true, force: true });
}

/**
 * Produces messages so that each is written once, also right after the topic was made (when a
 * partition may answer "not the leader" for a moment): one request per partition (the broker
 * writes a partition's batch whole or not at all), each tried again on a fresh idempotent
 * producer if it fails; kafkajs's own retry of a multi-partition request can be refused as out of
 * order after it rolled back the sequence numbers of partitions it had written.
 */
export async function produceOnce(kafka: Kafka, topic: string, messages: ReadonlyArray<{ key: string | null; value: string; timestamp?: string }>, partitions: number): Promise<void> {
  const byPartition = new Map<number, Array<{ key: string | null; value: string; timestamp?: string; partition: number }>>();
  for (const message of messages) {
    const partition = message.key === null ? 0 : partitionForKey(new TextEncoder().encode(message.key), partitions);
    let batch = byPartition.get(partition);
    if (!batch) byPartition.set(partition, (batch = []));
    batch.push({ ...message, partition });
  }
  for (const batch of byPartition.values()) {
    for (let attempt = 1; ; attempt++) {
      const producer = kafka.producer({ idempotent: true });
      try {
        await producer.connect();
        await producer.send({ topic, messages: batch });
        break;
      } catch (error) {
        if (attempt >= 5) throw error;
        await sleep(200 * attempt);
      } finally {
        await producer.disconnect().catch(() => undefined);
      }
    }
  }
}
