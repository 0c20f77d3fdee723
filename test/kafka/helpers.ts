/**
 * Shared helpers of the @eddy/kafka tests on the real broker, all on @platformatic/kafka: a logger
 * that keeps what it is told, polling with a deadline, a topic creator, a producer maker, a topic
 * reader, and inspection of committed offsets and group assignments.
 */
import { rm } from 'node:fs/promises';
import type { App, Logger, TopicSpec } from '@eddy/core';
import {
  Admin,
  compatibilityPartitioner,
  createAPI,
  FetchIsolationLevels,
  fetchV17,
  FindCoordinatorKeyTypes,
  IS_CONTROL,
  IS_TRANSACTIONAL,
  ListOffsetTimestamps,
  Producer,
  stringSerializers,
  Writer,
  type Reader,
  type RecordsBatch,
} from '@platformatic/kafka';
import type { KafkaBroker } from '../../scripts/src/kafka.ts';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with `promise`, or with undefined after `ms` (so that clean-up cannot hang). */
export const within = <T,>(promise: Promise<T>, ms: number) => Promise.race([promise, sleep(ms).then(() => undefined)]);

export interface LogEntry {
  /** When it was logged (ms since the epoch). */
  at: number;
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown>;
}

/** A logger that keeps every entry; EDDY_TEST_LOG=1 also prints warnings and errors, EDDY_TEST_LOG=info everything but debug. */
export function recordingLogger(): Logger & { entries: LogEntry[]; errors(): LogEntry[] } {
  const entries: LogEntry[] = [];
  const write = (level: LogEntry['level']) => (fields: Record<string, unknown>, message: string) => {
    entries.push({ at: Date.now(), level, message, fields });
    const show = process.env.EDDY_TEST_LOG;
    if ((show === '1' && (level === 'warn' || level === 'error')) || (show === 'info' && level !== 'debug') || show === 'debug') console.log(new Date().toISOString(), level, message, JSON.stringify(fields));
  };
  return {
    entries,
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    /** Errors that the transport itself logged. */
    errors: () => entries.filter((entry) => entry.level === 'error' && entry.fields.component === 'eddy-kafka'),
  };
}

/** Polls `check` until it returns true, failing with `what` after `timeoutMs` (and what `explain` says then, if given). */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  { timeoutMs = 30_000, intervalMs = 50, explain }: { timeoutMs?: number; intervalMs?: number; explain?: () => string } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${explain ? `\n${explain()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** What the runtime logs while it drops a failed task and opens it again (see TaskManager#rebuild), and the group changes around it. */
const rebuildMessages = /lost its work since its last commit|rebuil|failed task|task started again|stuck|partitions (assigned|revoked|lost)|fenced this member|no heartbeat got through/;

/**
 * Why an app's tasks do not all run, for a failed test: `app.health()`'s reasons (a task being
 * started again says how long, which attempt and what it waits for) and the log of the rebuilds,
 * with their errors.
 */
export function taskTroubles(app: App, entries: readonly LogEntry[]): string {
  const { status, reasons } = app.health();
  const rebuilds = entries
    .filter((entry) => rebuildMessages.test(entry.message))
    .map(({ at, level, message, fields }) => `  ${new Date(at).toISOString()} ${level} ${message} ${JSON.stringify(fields)}`)
    .slice(-60);
  return [`app ${app.state}, ${app.metrics().tasks} tasks running; health ${status}:`, ...reasons.map((reason) => `  ${reason}`), 'task rebuilds:', ...(rebuilds.length > 0 ? rebuilds : ['  none'])].join('\n');
}

/** An admin client for test set-up and inspection; `close()` it when done. */
export function testAdmin(brokers: string[]): Admin {
  return new Admin({ clientId: 'eddy-kafka-test', bootstrapBrokers: brokers });
}

/**
 * Creates topics and waits until every partition has a leader that answers: Kafka 4 answers
 * UNKNOWN_TOPIC_OR_PARTITION for a moment after creating a topic.
 */
export async function createTopics(brokers: string[], specs: readonly TopicSpec[]): Promise<void> {
  const admin = testAdmin(brokers);
  try {
    for (const { name, partitions, compacted, unlimitedRetention } of specs) {
      const configs = [...(compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : []), ...(unlimitedRetention ? [{ name: 'retention.ms', value: '-1' }] : [])];
      await admin.createTopics({ topics: [name], partitions, configs });
    }
    await waitFor(`leaders of ${specs.map(({ name }) => name).join(', ')}`, async () => {
      try {
        for (const { name } of specs) await endOffsets(admin, name);
        return true;
      } catch {
        admin.clearMetadata();
        return false;
      }
    });
  } finally {
    await admin.close();
  }
}

/** A record to produce, in the tests' terms: text, a timestamp in ms, an explicit partition if wanted. */
export interface TestMessage {
  key: string | null;
  value: string;
  timestamp?: number;
  partition?: number;
  headers?: Record<string, string>;
}

/** A producer of test input; `send` resolves once every record is acknowledged. */
export interface TestProducer {
  send(topic: string, messages: readonly TestMessage[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * An idempotent producer: a retried request is written once. Keyed records without a partition
 * go where Kafka's Java client puts them (murmur2, made positive, modulo the partition count), as
 * Eddy's own sink does; @platformatic/kafka's default partitioner takes murmur2 unsigned instead,
 * which differs for partition counts that are not powers of two. Keyless records go to partition 0.
 */
export function testProducer(brokers: string[], { retries = 3, retryDelayMs = 1_000 } = {}): TestProducer {
  const producer = new Producer({
    clientId: 'eddy-kafka-test',
    bootstrapBrokers: brokers,
    idempotent: true,
    partitioner: compatibilityPartitioner,
    serializers: stringSerializers,
    retries,
    retryDelay: retryDelayMs,
  });
  return {
    async send(topic, messages) {
      if (messages.length === 0) return;
      await producer.send({
        messages: messages.map(({ key, value, timestamp, partition, headers }) => ({
          topic,
          key: key ?? undefined,
          value,
          ...(timestamp === undefined ? {} : { timestamp: BigInt(timestamp) }),
          ...(partition === undefined ? {} : { partition }),
          ...(headers ? { headers } : {}),
        })),
      });
    },
    close: () => producer.close(),
  };
}

/** Sends `messages` to `topic` through a producer of its own. */
export async function produce(brokers: string[], topic: string, messages: readonly TestMessage[]): Promise<void> {
  const producer = testProducer(brokers);
  try {
    await producer.send(topic, messages);
  } finally {
    await producer.close();
  }
}

/** Produces readings keyed by sensor with their event time as the record timestamp. */
export function produceReadings(brokers: string[], topic: string, input: ReadonlyArray<{ sensor: string; ts: number }>): Promise<void> {
  return produce(brokers, topic, input.map((reading) => ({ key: reading.sensor, value: JSON.stringify(reading), timestamp: reading.ts })));
}

export interface Gathered {
  partition: number;
  offset: number;
  key: string | undefined;
  value: string | undefined;
  timestamp: number;
  headers: Record<string, string>;
}

/**
 * Reads a topic from the beginning of each partition into `records` until `stop()`, committed
 * records only (read_committed) unless `readUncommitted` is set. It fetches without a group, with
 * the protocol's Fetch (the Consumer's own fetch drops aborted transactions wrongly when one
 * producer aborted several, and fails on an abort marker whose transaction it was not told of),
 * and drops the records of aborted transactions itself, as the Java consumer does.
 */
export async function gatherTopic(brokers: string[], topic: string, { readUncommitted = false } = {}): Promise<{ records: Gathered[]; stop(): Promise<void> }> {
  const records: Gathered[] = [];
  // No retries inside the client: the loop below tries again, and stop() does not wait for a backoff.
  const admin = new Admin({ clientId: 'eddy-kafka-test-reader', bootstrapBrokers: brokers, retries: 0 });
  const isolationLevel = readUncommitted ? FetchIsolationLevels.READ_UNCOMMITTED : FetchIsolationLevels.READ_COMMITTED;
  const next = new Map<number, bigint>();
  let stopped = false;

  const fetchOnce = async () => {
    const { id: topicId, partitions } = (await admin.metadata({ topics: [topic] })).topics.get(topic)!;
    if (next.size === 0) {
      const starts = partitions.map((_, partitionIndex) => ({ partitionIndex, timestamp: ListOffsetTimestamps.EARLIEST }));
      const [listed] = await admin.listOffsets({ topics: [{ name: topic, partitions: starts }] });
      for (const { partitionIndex, offset } of listed!.partitions) next.set(partitionIndex, offset);
    }
    const byLeader = new Map<number, fetchV17.FetchRequestPartition[]>();
    partitions.forEach(({ leader }, partition) => {
      const wanted = byLeader.get(leader) ?? [];
      wanted.push({ partition, fetchOffset: next.get(partition)!, partitionMaxBytes: 1_048_576, currentLeaderEpoch: -1, lastFetchedEpoch: -1 });
      byLeader.set(leader, wanted);
    });
    for (const [leader, wanted] of byLeader) {
      const connection = (await admin.connectToBrokers([leader])).get(leader)!;
      // A full fetch outside any fetch session (session 0, epoch -1).
      const response = await fetchV17.api.async(connection, 100, 1, 10_485_760, isolationLevel, 0, -1, [{ topicId, partitions: wanted }], [], '');
      for (const { partitionIndex: partition, records: batches = [], abortedTransactions } of response.responses.flatMap((each) => each.partitions)) {
        const from = next.get(partition)!;
        for (const batch of visible(batches, readUncommitted ? [] : abortedTransactions)) {
          for (const record of batch.records) {
            const offset = batch.firstOffset + BigInt(record.offsetDelta);
            if (offset < from) continue;
            records.push({
              partition,
              offset: Number(offset),
              key: record.key?.toString(),
              value: record.value?.toString(),
              timestamp: Number(batch.firstTimestamp + record.timestampDelta),
              headers: Object.fromEntries(record.headers.map(([name, value]) => [name?.toString() ?? '', value?.toString() ?? ''])),
            });
          }
        }
        const last = batches.at(-1);
        if (last) next.set(partition, last.firstOffset + BigInt(last.lastOffsetDelta) + 1n);
      }
    }
  };

  const reading = (async () => {
    while (!stopped) {
      try {
        await fetchOnce();
      } catch {
        // A topic just made, a leader moving, a broker restarting: ask again.
        admin.clearMetadata();
        await sleep(100);
      }
    }
  })();
  return {
    records,
    stop: async () => {
      stopped = true;
      await reading;
      await admin.close();
    },
  };
}

/**
 * The batches of a fetched partition a reader gets: no transaction markers, and none of the
 * aborted transactions listed (each producer's records from its transaction's first offset up to
 * its abort marker; the list is not in offset order).
 */
function visible(batches: readonly RecordsBatch[], aborted: ReadonlyArray<{ producerId: bigint; firstOffset: bigint }>): RecordsBatch[] {
  const pending = [...aborted].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0));
  const abortedProducers = new Set<bigint>();
  const kept: RecordsBatch[] = [];
  for (const batch of batches) {
    const last = batch.firstOffset + BigInt(batch.lastOffsetDelta);
    while (pending.length > 0 && pending[0]!.firstOffset <= last) abortedProducers.add(pending.shift()!.producerId);
    if (batch.attributes & IS_CONTROL) {
      // A marker's key is its version (int16), then its type (int16): 0 aborts, 1 commits.
      if (batch.records[0]?.key?.readInt16BE(2) === 0) abortedProducers.delete(batch.producerId);
    } else if (!(batch.attributes & IS_TRANSACTIONAL && abortedProducers.has(batch.producerId))) {
      kept.push(batch);
    }
  }
  return kept;
}

/** The end (high watermark) of each partition of `topic`, by partition. */
export async function endOffsets(admin: Admin, topic: string): Promise<number[]> {
  const { partitionsCount } = (await admin.metadata({ topics: [topic] })).topics.get(topic)!;
  const partitions = Array.from({ length: partitionsCount }, (_, partitionIndex) => ({ partitionIndex, timestamp: ListOffsetTimestamps.LATEST }));
  const [listed] = await admin.listOffsets({ topics: [{ name: topic, partitions }] });
  const ends = Array<number>(partitionsCount).fill(0);
  for (const { partitionIndex, offset } of listed!.partitions) ends[partitionIndex] = Number(offset);
  return ends;
}

/** The offset `groupId` committed on each partition of `topic` (the next to read), -1 where it committed none. */
export async function committedOffsets(admin: Admin, groupId: string, topic: string): Promise<number[]> {
  const { partitionsCount } = (await admin.metadata({ topics: [topic] })).topics.get(topic)!;
  const partitionIndexes = Array.from({ length: partitionsCount }, (_, partition) => partition);
  const [group] = await admin.listConsumerGroupOffsets({ groups: [{ groupId, topics: [{ name: topic, partitionIndexes }] }] });
  const committed = Array<number>(partitionsCount).fill(-1);
  for (const entry of group?.topics.find(({ name }) => name === topic)?.partitions ?? []) committed[entry.partitionIndex] = Number(entry.committedOffset);
  return committed;
}

/**
 * Whether the group has committed every record of `topics` (list upstream first: once the input
 * is committed, what it sent on has reached the internal topics). A partition nothing was ever
 * written to needs no commit (records handed off locally skip their repartition topic).
 */
export async function allCommitted(admin: Admin, groupId: string, topics: readonly string[]): Promise<boolean> {
  for (const topic of topics) {
    const ends = await endOffsets(admin, topic);
    const committed = await committedOffsets(admin, groupId, topic);
    if (ends.some((end, partition) => end > 0 && committed[partition]! < end)) return false;
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
  readonly rounds: TestMessage[][];
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
      rounds.at(-1)!.push({ key: sensor, value: JSON.stringify({ sensor, ts, value }), timestamp: ts });
    });
  }
  return { base, farFuture: base + steps * stepMs + 5 * windowMs, expected, rounds };
}

/** What an app logged at warn and error, by message, with counts (connection refusals left out). */
export function troubles(entries: readonly LogEntry[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { level, message } of entries) {
    if ((level !== 'warn' && level !== 'error') || /ECONNREFUSED|Cannot connect to any broker|Connection to \S+ failed/.test(message)) continue;
    counts[message] = (counts[message] ?? 0) + 1;
  }
  return counts;
}

/**
 * ConsumerGroupDescribe (v0), for groups on the consumer group protocol of KIP-848 (Eddy's
 * members speak it). @platformatic/kafka 1.35's own parser reads `subscribed_topic_names` as one
 * string and leaves out the tagged fields after each assignment, so it fails on a group with
 * members; this one follows Kafka's schema.
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

/**
 * Members of a group by client id, with the partitions of `topic` each holds (sorted); undefined
 * while the group is not stable (every member holding its target assignment) or cannot be asked.
 */
export async function assignment(admin: Admin, groupId: string, topic: string): Promise<Map<string, number[]> | undefined> {
  try {
    const [coordinator] = await admin.findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [groupId] });
    const connection = (await admin.connectToBrokers([coordinator!.nodeId])).get(coordinator!.nodeId)!;
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
  } catch {
    return undefined;
  }
}

/** Deletes the topics an app made or a test made for it (`<appId>-...`), best effort. */
export async function deleteAppTopics(admin: Admin | undefined, appId: string): Promise<void> {
  const topics = ((await admin?.listTopics().catch(() => [] as string[])) ?? []).filter((topic) => topic.startsWith(`${appId}-`));
  if (topics.length > 0) await admin?.deleteTopics({ topics }).catch(() => undefined);
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
  await run.admin?.close().catch(() => undefined);
  await run.broker?.stop(5_000);
  // EDDY_KEEP_SCRATCH=1 keeps the broker's data and log (broker.log) and the app's state to look into.
  if (process.env.EDDY_KEEP_SCRATCH) console.log(`kept ${run.scratch}`);
  else await rm(run.scratch, { recursive: true, force: true });
}
