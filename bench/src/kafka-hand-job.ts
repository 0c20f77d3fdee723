/**
 * The hand-written kafkajs job of the Kafka benchmark (kafka-eos.ts): source topic →
 * hopping(10s, 1s) count per sensor → output topic, as a Node engineer would write it without
 * Eddy, so that the engine is measured against the same work done by hand rather than against a
 * consumer that does nothing.
 *
 * - One kafkajs consumer (a new group, from the beginning, `eachBatch`, no auto-commit) and one
 *   idempotent producer. The source is already partitioned by murmur2 of the sensor, so there is
 *   no repartition hop: each partition keeps its own hand windows (`createHandWindows` of
 *   baseline.ts, the same loop as the in-memory baselines, without re-encoding the values), and
 *   their stream time is that partition's largest timestamp, as in Eddy's task for it.
 * - Per batch: every record is decoded and pushed; the results of the windows closed so far are
 *   sent in one `sendBatch` (acks from all replicas) to the source's partition, since the output
 *   is keyed by sensor too; then the batch's next offset is due for commit. Offsets are committed
 *   at most every `commitIntervalMs`, and only for batches whose results were sent already: the
 *   at-least-once order Eddy follows (produce, then commit).
 * - The clock runs from the group join until the last result was sent (its `sendBatch`
 *   resolved), found like the engine run's end: all input read, and the number of windows sent
 *   unchanged for `settleMs`.
 */
import { performance } from 'node:perf_hooks';
import kafkajs from 'kafkajs';
import type { Consumer, EachBatchPayload, Kafka, Producer } from 'kafkajs';
import { createHandWindows, type HandRecord, type HandWindows } from './baseline.js';
import { HOPPING_10S_1S } from './windowing.js';

export interface HandJobOptions {
  readonly kafka: Kafka;
  readonly source: string;
  /** An existing topic with as many partitions as the source. */
  readonly output: string;
  readonly groupId: string;
  /** Records in the source: the job has read everything once it has seen this many. */
  readonly total: number;
  readonly commitIntervalMs: number;
  /** How long the number of windows sent must stay unchanged, after all input, to count as done. */
  readonly settleMs: number;
}

export interface HandJobRun {
  readonly recordsPerSecond: number;
  readonly ms: number;
  /** Result records sent: one per closed, non-empty window. */
  readonly windowsClosed: number;
  readonly lateRecords: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The job's moving parts between batches. */
interface JobState {
  readonly windows: Map<number, HandWindows>;
  /** Per partition, the next offset to commit: its results are sent already. */
  readonly uncommitted: Map<number, string>;
  recordsIn: number;
  windowsSent: number;
  started: number;
  lastChange: number;
  lastCommit: number;
  failure: unknown;
}

function windowsOf(state: JobState, partition: number): HandWindows {
  let windows = state.windows.get(partition);
  if (windows === undefined) {
    windows = createHandWindows(HOPPING_10S_1S, 'count', { reencode: false, keepResults: true });
    state.windows.set(partition, windows);
  }
  return windows;
}

async function sendResults(producer: Producer, topic: string, partition: number, results: readonly HandRecord[]): Promise<void> {
  const messages = results.map((result) => ({ key: result.key, value: result.value, partition }));
  await producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages }] });
}

async function commit(consumer: Consumer, topic: string, state: JobState): Promise<void> {
  if (state.uncommitted.size === 0) return;
  const offsets = [...state.uncommitted].map(([partition, offset]) => ({ topic, partition, offset }));
  state.uncommitted.clear();
  state.lastCommit = performance.now();
  await consumer.commitOffsets(offsets);
}

/** One batch: push every record, send what closed, then commit if the interval has passed. */
async function onBatch(options: HandJobOptions, consumer: Consumer, producer: Producer, state: JobState, { batch }: EachBatchPayload): Promise<void> {
  const messages = batch.messages;
  if (messages.length === 0) return;
  const windows = windowsOf(state, batch.partition);
  for (let index = 0; index < messages.length; index++) {
    const message = messages[index]!;
    windows.push(message.key!, message.value!, Number(message.timestamp));
  }
  state.recordsIn += messages.length;
  const results = windows.take();
  if (results.length > 0) {
    await sendResults(producer, options.output, batch.partition, results);
    state.windowsSent += results.length;
    state.lastChange = performance.now();
  }
  state.uncommitted.set(batch.partition, String(Number(messages[messages.length - 1]!.offset) + 1));
  if (performance.now() - state.lastCommit >= options.commitIntervalMs) await commit(consumer, options.source, state);
}

/** Runs the job once, on a new group, until all input is read and its windows are stable. */
export async function runHandJob(options: HandJobOptions): Promise<HandJobRun> {
  const { kafka, source, total } = options;
  const producer = kafka.producer({ idempotent: true, createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
  const consumer = kafka.consumer({ groupId: options.groupId, maxWaitTimeInMs: 100 });
  const state: JobState = { windows: new Map(), uncommitted: new Map(), recordsIn: 0, windowsSent: 0, started: 0, lastChange: 0, lastCommit: 0, failure: undefined };
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    // The first join starts the clock; a later one (a rebalance) would not restart the work.
    if (joined) return;
    state.started = state.lastChange = state.lastCommit = performance.now();
    joined = true;
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => (state.failure ??= payload.error));
  await producer.connect();
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [source], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async (payload) => {
        try {
          await onBatch(options, consumer, producer, state, payload);
        } catch (error) {
          state.failure ??= error;
          throw error;
        }
      },
    });
    for (;;) {
      await sleep(10);
      if (state.failure !== undefined) throw state.failure;
      if (joined && state.recordsIn >= total && performance.now() - state.lastChange > options.settleMs) break;
    }
    // Outside the clock, as a job stopping would: commit what is sent.
    await commit(consumer, source, state);
  } finally {
    await consumer.disconnect();
    await producer.disconnect();
  }
  const ms = state.lastChange - state.started;
  let lateRecords = 0;
  for (const windows of state.windows.values()) lateRecords += windows.summary().lateRecords;
  return { recordsPerSecond: Math.round((total * 1000) / ms), ms: Math.round(ms), windowsClosed: state.windowsSent, lateRecords };
}
