/**
 * The Kafka benchmark's baselines on @platformatic/kafka's public API, each run in a process of
 * its own (as the engine runs are), and the read-back of what a run wrote:
 *
 *   node bench/dist/raw-consumer.js --read fetch|stream|pipe --brokers B --topic T --records N --group G [--output O]
 *
 * prints one JSON line (a {@link RawRun}).
 *
 * - `fetch`: a hand loop of FetchV17 requests (`fetchV17.api`), one per leader at a time, over
 *   every partition from its start to its end, counting the records of each batch.
 * - `stream`: the client's `Consumer` in a new group, its message stream from the earliest offset,
 *   counting messages.
 * - `pipe`: the fetch loop (the faster reader), and per record read one record of a job result's
 *   size written to the same partition of `--output` by an idempotent `Producer`, one send per
 *   partition in flight while the reading goes on; every second the offsets whose records were written are committed for
 *   group `--group` (`Admin.alterConsumerGroupOffsets`: a group with no members, as a reader
 *   that assigns itself its partitions commits).
 *
 * Each reports the wall-clock time (ms since the epoch) its first read returned records, when it
 * had read the last record (the pipe: written its copy; its end proper is when the broker appended
 * the last copy, see {@link readBack}), and its process's CPU time (all threads) over that span.
 */
import { Buffer } from 'node:buffer';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  Admin,
  Consumer,
  FetchIsolationLevels,
  fetchV17,
  IS_CONTROL,
  IS_TRANSACTIONAL,
  Producer,
  type Connection,
  type FetchIsolationLevelValue,
  type RecordsBatch,
} from '@platformatic/kafka';
import { sensorName, START_TS } from './workload.js';

/** The timestamp-type bit of a record batch's attributes: set when the broker stamped the batch with its append time. */
const LOG_APPEND_TIME = 1 << 3;

/** A timed baseline run. */
export interface RawRun {
  readonly records: number;
  /** Wall-clock ms (epoch) when the first read returned records. */
  readonly firstReadAt: number;
  /** Wall-clock ms when the last record was read (fetch, stream) or its copy acknowledged (pipe). */
  readonly lastAt: number;
  /** This process's CPU time (user + system, all threads) from the first read to `lastAt`. */
  readonly cpuMs: number;
}

const cpuMsSince = (start: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
};

export interface ReadOptions {
  readonly isolationLevel?: FetchIsolationLevelValue;
  /**
   * Bytes fetched per partition per request. Default 1 MiB, the engine's default: a larger first
   * fetch would leave more of the read out of the time, which starts when it returns.
   */
  readonly partitionMaxBytes?: number;
}

/**
 * Reads every partition of `topic` from its start to where it ends when called, with FetchV17
 * requests: one per partition leader at a time, each asking for all of its partitions. What each
 * partition's fetch returned goes to `onFetched`, control batches (transaction markers) included.
 */
export async function readPartitions(client: Admin, topic: string, onFetched: (partition: number, batches: readonly RecordsBatch[], result: fetchV17.FetchResponsePartition) => void | Promise<void>, options: ReadOptions = {}): Promise<void> {
  const isolationLevel = options.isolationLevel ?? FetchIsolationLevels.READ_COMMITTED;
  const partitionMaxBytes = options.partitionMaxBytes ?? 2 ** 20;
  const metadata = (await client.metadata({ topics: [topic], forceUpdate: true })).topics.get(topic);
  if (!metadata) throw new Error(`topic ${topic} does not exist`);
  const request = (timestamp: bigint) => ({ topics: [{ name: topic, partitions: metadata.partitions.map((_, partitionIndex) => ({ partitionIndex, timestamp })) }], isolationLevel });
  const offsetsOf = async (timestamp: bigint) => new Map((await client.listOffsets(request(timestamp)))[0]!.partitions.map((entry) => [entry.partitionIndex, entry.offset]));
  const ends = await offsetsOf(-1n);
  const positions = await offsetsOf(-2n);
  const byLeader = new Map<number, number[]>();
  for (const [partition, { leader }] of metadata.partitions.entries()) byLeader.set(leader, [...(byLeader.get(leader) ?? []), partition]);
  const connections = await client.connectToBrokers([...byLeader.keys()]);
  const maxBytes = new Map(metadata.partitions.map((_, partition) => [partition, partitionMaxBytes]));
  await Promise.all(
    [...byLeader].map(async ([leader, partitions]) => {
      const connection: Connection = connections.get(leader)!;
      let reading = partitions.filter((partition) => positions.get(partition)! < ends.get(partition)!);
      while (reading.length > 0) {
        const asked = [{ topicId: metadata.id, partitions: reading.map((partition) => ({ partition, currentLeaderEpoch: -1, fetchOffset: positions.get(partition)!, lastFetchedEpoch: -1, partitionMaxBytes: maxBytes.get(partition)! })) }];
        const response = await fetchV17.api.async(connection, 500, 1, 64 * 2 ** 20, isolationLevel, 0, -1, asked, [], '');
        for (const result of response.responses[0]?.partitions ?? []) {
          if (result.errorCode !== 0) throw new Error(`fetching ${topic}[${result.partitionIndex}] failed with error code ${result.errorCode}`);
          const batches = result.records ?? [];
          if (batches.length > 0) {
            await onFetched(result.partitionIndex, batches, result);
            const last = batches[batches.length - 1]!;
            positions.set(result.partitionIndex, last.firstOffset + BigInt(last.lastOffsetDelta) + 1n);
          }
          if (batches.length > 0) continue;
          const readable = isolationLevel === FetchIsolationLevels.READ_COMMITTED ? result.lastStableOffset : result.highWatermark;
          // Nothing more below the end (records compacted away, say): done with this partition.
          if (positions.get(result.partitionIndex)! >= readable) ends.set(result.partitionIndex, positions.get(result.partitionIndex)!);
          // Only part of a batch came, which the client drops: ask for more bytes.
          else maxBytes.set(result.partitionIndex, Math.min(2 * maxBytes.get(result.partitionIndex)!, 64 * 2 ** 20));
        }
        reading = reading.filter((partition) => positions.get(partition)! < ends.get(partition)!);
      }
    }),
  );
}

/** Counts the records of `topic` with a hand fetch loop (see {@link readPartitions}). */
export async function fetchLoopRun(brokers: readonly string[], topic: string, options: ReadOptions = {}): Promise<RawRun> {
  const client = new Admin({ clientId: 'eddy-bench-fetch', bootstrapBrokers: [...brokers] });
  let records = 0;
  let firstReadAt = 0;
  let cpu = process.cpuUsage();
  try {
    await readPartitions(
      client,
      topic,
      (_partition, batches) => {
        if (firstReadAt === 0) {
          firstReadAt = Date.now();
          cpu = process.cpuUsage();
        }
        for (const batch of batches) if ((batch.attributes & IS_CONTROL) === 0) records += batch.records.length;
      },
      options,
    );
    return { records, firstReadAt, lastAt: Date.now(), cpuMs: cpuMsSince(cpu) };
  } finally {
    await client.close();
  }
}

/** Counts `total` records of `topic` through the client's `Consumer` stream, in a new group from the earliest offset. */
export async function streamRun(brokers: readonly string[], topic: string, total: number, groupId: string): Promise<RawRun> {
  const consumer = new Consumer({ clientId: 'eddy-bench-stream', bootstrapBrokers: [...brokers], groupId });
  try {
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false });
    let records = 0;
    let firstReadAt = 0;
    let cpu = process.cpuUsage();
    const run = await new Promise<RawRun>((resolve, reject) => {
      stream.on('error', reject);
      stream.on('data', () => {
        if (records++ === 0) {
          firstReadAt = Date.now();
          cpu = process.cpuUsage();
        }
        if (records === total) resolve({ records, firstReadAt, lastAt: Date.now(), cpuMs: cpuMsSince(cpu) });
      });
    });
    await stream.close();
    return run;
  } finally {
    await consumer.close(true);
  }
}

/** A result record of the jobs (`{ sensor, start, count }` keyed by the sensor, both JSON), for its size. */
export function sampleResult(): { key: Buffer; value: Buffer } {
  const sensor = sensorName(0);
  return { key: Buffer.from(JSON.stringify(sensor)), value: Buffer.from(JSON.stringify({ sensor, start: START_TS, count: 50 })) };
}

/** Records per send, about (whole fetched batches). */
const PIPE_SEND_RECORDS = 5_000;

/**
 * The raw pipe (see the file's comment): every record of `topic` read with the fetch loop, and a
 * record of a job result's size written for each to the same partition of `output`.
 */
export async function pipeRun(brokers: readonly string[], topic: string, output: string, groupId: string): Promise<RawRun> {
  const client = new Admin({ clientId: 'eddy-bench-pipe', bootstrapBrokers: [...brokers] });
  const producer = new Producer({ clientId: 'eddy-bench-pipe', bootstrapBrokers: [...brokers], idempotent: true });
  const result = sampleResult();
  let read = 0;
  let firstReadAt = 0;
  let cpu = process.cpuUsage();
  /** Per partition, its send in flight. */
  const sending = new Map<number, Promise<void>>();
  /** Per partition, the next offset to commit: every record before it was written. */
  const writtenUpTo = new Map<number, bigint>();
  let committed = new Map<number, bigint>();
  const commit = async () => {
    const partitionOffsets = [...writtenUpTo].filter(([partition, offset]) => committed.get(partition) !== offset).map(([partition, offset]) => ({ partition, offset }));
    if (partitionOffsets.length === 0) return;
    committed = new Map(writtenUpTo);
    await client.alterConsumerGroupOffsets({ groupId, topics: [{ name: topic, partitionOffsets }] });
  };
  let commitFailure: unknown;
  const commits = setInterval(() => void commit().catch((error: unknown) => (commitFailure ??= error)), 1_000);
  try {
    const send = async (partition: number, messages: Array<{ topic: string; partition: number; key: Buffer; value: Buffer }>, next: bigint) => {
      // One send per partition in flight: the producer numbers a partition's batches in send order,
      // and the broker refuses them out of that order.
      await sending.get(partition);
      const sent = producer.send({ messages }).then(() => {
        if ((writtenUpTo.get(partition) ?? -1n) < next) writtenUpTo.set(partition, next);
      });
      // Its failure surfaces where it is awaited: before the partition's next send, or at the end.
      sent.catch(() => undefined);
      sending.set(partition, sent);
    };
    await readPartitions(client, topic, async (partition, batches) => {
      if (firstReadAt === 0) {
        firstReadAt = Date.now();
        cpu = process.cpuUsage();
      }
      // Whole fetched batches per send, about PIPE_SEND_RECORDS records: a request must stay below the broker's size limit.
      let messages = [];
      for (const batch of batches) {
        if ((batch.attributes & IS_CONTROL) === 0) {
          for (let index = 0; index < batch.records.length; index++) messages.push({ topic: output, partition, key: result.key, value: result.value });
        }
        if (messages.length >= PIPE_SEND_RECORDS || (batch === batches[batches.length - 1] && messages.length > 0)) {
          read += messages.length;
          await send(partition, messages, batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n);
          messages = [];
        }
      }
    });
    await Promise.all(sending.values());
    const run = { records: read, firstReadAt, lastAt: Date.now(), cpuMs: cpuMsSince(cpu) };
    clearInterval(commits);
    await commit();
    if (commitFailure !== undefined) throw commitFailure;
    return run;
  } finally {
    clearInterval(commits);
    await producer.close();
    await client.close();
  }
}

/** What a read of a run's output found. */
export interface ReadBack {
  /** Committed records (aborted transactions left out). */
  readonly records: number;
  /** The largest timestamp of those records: the broker's append time of the last, on a LogAppendTime topic. */
  readonly lastAppendAt: number;
  /** The largest append time of a transaction marker (exactly-once): when the last results became visible. */
  readonly lastMarkerAt: number | undefined;
  /** Whether every batch was stamped by the broker (LogAppendTime). */
  readonly logAppendTime: boolean;
}

/**
 * Reads all of `topic` as a read_committed consumer would (see {@link readPartitions}): the
 * records of aborted transactions are left out. Each fetch lists the aborted transactions its
 * range touches; one's records run from its first offset to its producer's abort marker.
 */
export async function readBack(client: Admin, topic: string): Promise<ReadBack> {
  let records = 0;
  let lastAppendAt = -Infinity;
  let lastMarkerAt: number | undefined;
  let logAppendTime = true;
  await readPartitions(client, topic, (_partition, batches, result) => {
    const aborted = [...result.abortedTransactions].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : 1));
    const abortedProducers = new Set<bigint>();
    let nextAborted = 0;
    for (const batch of batches) {
      const lastOffset = batch.firstOffset + BigInt(batch.lastOffsetDelta);
      while (nextAborted < aborted.length && aborted[nextAborted]!.firstOffset <= lastOffset) abortedProducers.add(aborted[nextAborted++]!.producerId);
      const timestamp = Number(batch.maxTimestamp);
      logAppendTime &&= (batch.attributes & LOG_APPEND_TIME) !== 0;
      if (batch.attributes & IS_CONTROL) {
        lastMarkerAt = Math.max(lastMarkerAt ?? -Infinity, timestamp);
        // An abort marker (type 0 in the marker's key) ends its producer's aborted run.
        const key = batch.records[0]?.key;
        if (key && key.length >= 4 && key.readInt16BE(2) === 0) abortedProducers.delete(batch.producerId);
        continue;
      }
      if (batch.attributes & IS_TRANSACTIONAL && abortedProducers.has(batch.producerId)) continue;
      records += batch.records.length;
      if (timestamp > lastAppendAt) lastAppendAt = timestamp;
    }
  });
  return { records, lastAppendAt, lastMarkerAt, logAppendTime };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      read: { type: 'string' },
      brokers: { type: 'string' },
      topic: { type: 'string' },
      records: { type: 'string' },
      group: { type: 'string' },
      output: { type: 'string' },
    },
  });
  const brokers = (values.brokers ?? '').split(',');
  const topic = values.topic!;
  const total = Number(values.records);
  const run = values.read === 'fetch' ? fetchLoopRun(brokers, topic) : values.read === 'stream' ? streamRun(brokers, topic, total, values.group!) : values.read === 'pipe' ? pipeRun(brokers, topic, values.output!, values.group!) : Promise.reject(new Error(`--read: fetch, stream or pipe, not ${values.read}`));
  process.stdout.write(`${JSON.stringify(await run)}\n`);
  process.exit(0);
}
