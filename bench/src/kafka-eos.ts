/**
 * Kafka benchmark (`node bench/dist/kafka-eos.js [--records N] [--reps N] [--partitions N] [--commit-interval D]`), JSON
 * on stdout and in bench/results/kafka-eos.json. Uses the broker in `KAFKA_BROKERS`, or starts
 * one (scripts/src/kafka.ts) for the run.
 *
 * The same job on a real broker — source topic → keyBy → hopping(10s, 1s).count() → onClose →
 * output topic — under `at-least-once` and under `exactly-once` (one Kafka transaction per task
 * per commit), and, in the same rounds, on the same pre-produced source topic: the same job
 * written by hand with kafkajs (the fair baseline: what Eddy costs over doing it yourself), and a
 * raw kafkajs consumer that only counts the records (the ceiling of what a kafkajs-based engine
 * can read).
 *
 * - Input: the bench workload (1,000 sensors, 5 readings per sensor per event-time second, 10%
 *   out of order), re-timed to recent timestamps, partitioned by murmur2 over `--partitions`
 *   partitions, plus one far-future reading per sensor so that every window closes. Produced once.
 * - Engine runs: a fresh app id each (a new group reading from the beginning, new internal
 *   topics), `--commit-interval` (default `1s`, the library's default), in-memory state (the changelog still goes to Kafka). The
 *   clock runs from `start()` resolving (tasks assigned and restored; under exactly-once every
 *   task's transactional producer registered) until the last window closed, polled every 10 ms
 *   once all input is read. The output is then counted with a read_committed consumer.
 * - Hand job (kafka-hand-job.ts): a new group reading the source from the beginning with
 *   `eachBatch` and no auto-commit, and one idempotent producer. The source is already
 *   partitioned by the sensor key, so there is no repartition hop: each partition keeps the hand
 *   windows of baseline.ts (sliced, the same decoding per record as the in-memory baselines —
 *   UTF-8 key, JSON value — but no re-encoding), with that partition's largest timestamp as
 *   stream time. Per batch it pushes every record, sends the results of the windows closed so far
 *   to the output topic's partition of the same number (one `sendBatch`, acks from all
 *   replicas), then marks the batch's offsets for commit; offsets are committed at most every
 *   commit interval (the engine's), always after their results were sent. The clock runs
 *   from its group join until the last result was sent, found like the engine's end (all input
 *   read and the number of windows sent unchanged for 3 s, timed at the last change; the engine's
 *   count moves when a window closes, before its result is sent, so this end is a little later).
 *   It must close as many (non-empty) windows and count as many late records as the at-least-once
 *   run, round by round; its output is then counted like the engine's.
 * - Raw consumer (raw-consumer.ts): a new group reading the source topic from the beginning,
 *   counting records in `eachBatch`; the clock runs from its group join until the last record.
 *   Twice: in this process, where kafkajs runs with the fixes `@eddy/kafka` installs (the same
 *   client the engine and the hand job use), and in a child process on stock kafkajs.
 * - Raw pipe (for scale, not a target): the same read, and every batch written as it is to another
 *   topic (same partition, acks from all replicas) before the next batch: one hop of what the
 *   engine does twice (source → repartition topic → windows), without parsing anything.
 *
 * Each round runs the stock raw consumer, at-least-once, the stock raw consumer again (the round's
 * stock figure is the mean of the two, so that the target's ratio is taken against runs on either
 * side of it: the machine's speed drifts), then raw, raw pipe, hand job and exactly-once; ratios
 * (records/s of the first ÷ records/s of the second) are taken within a round; medians over rounds
 * are reported. The engine runs and the stock raw consumer also report their process's CPU time
 * (all threads) over the timed span: records per CPU-second compare the work each does, which
 * moves less than records/s with what else the machine runs (the broker's work is not counted). The first round is a warm-up. Each round's topics and groups are deleted after it,
 * the input topic at the end.
 */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { createApp, silentLogger, toMs, type App, type Duration } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import kafkajs from 'kafkajs';
import type { Kafka } from 'kafkajs';
import { runHandJob } from './kafka-hand-job.js';
import { benchKafka, createTopic, defineJob, deleteTopicsAndGroups, produceInput, timeUntilSettled, type BenchKafka } from './kafka-input.js';
import { rawConsumerRun, timedConsumerRun, type TimedRun } from './raw-consumer.js';

const { values: args } = parseArgs({
  options: {
    // 100k took the raw consumer about 0.25 s: too short to time.
    records: { type: 'string', default: '1000000' },
    reps: { type: 'string', default: '3' },
    partitions: { type: 'string', default: '4' },
    // The library's default; a shorter interval writes more changelog records (a slice updated in
    // two intervals is written twice) and commits more often, for the engine and the hand job alike.
    'commit-interval': { type: 'string', default: '1s' },
  },
});
const records = Number(args.records);
const reps = Number(args.reps);
const partitions = Number(args.partitions);
const commitInterval = args['commit-interval'] as Duration;
const commitIntervalMs = toMs(commitInterval, '--commit-interval');
const run = promisify(execFile);
const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (message: string) => process.stderr.write(`[kafka-eos] ${message}\n`);
const runId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** One timed run of the windowed job, by the engine or by hand. */
interface JobRun {
  readonly recordsPerSecond: number;
  /** This process's CPU time over the timed span (all threads), for the engine runs. */
  readonly cpuMs?: number;
  readonly ms: number;
  readonly windowsClosed: number;
  readonly lateRecords: number;
  readonly outputRecords: number;
}

/** The raw consumer on stock kafkajs: in a child process that never loads `@eddy/kafka`. */
async function stockRawConsumerRun(brokers: readonly string[], topic: string, total: number, round: string): Promise<TimedRun> {
  const script = fileURLToPath(new URL('./raw-consumer.js', import.meta.url));
  // With this process's Node flags (a tuned young generation, say): both sides run alike.
  const { stdout } = await run(process.execPath, [...process.execArgv, script, brokers.join(','), topic, String(total), `kafka-eos-stock-${runId}-${round}`]);
  return JSON.parse(stdout) as TimedRun;
}

async function rawPipeRun(kafka: Kafka, topic: string, total: number, round: number): Promise<number> {
  const target = `kafka-eos-pipe-${runId}-${round}`;
  await createTopic(kafka, target, partitions);
  const producer = kafka.producer({ idempotent: true, createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    const timed = await timedConsumerRun(kafka, topic, total, `kafka-eos-pipe-${runId}-${round}`, async (batch) => {
      const messages = batch.messages.map((message) => ({ key: message.key, value: message.value, timestamp: message.timestamp, partition: batch.partition }));
      for (let from = 0; from < messages.length; from += 5_000) await producer.sendBatch({ acks: -1, topicMessages: [{ topic: target, messages: messages.slice(from, from + 5_000) }] });
    });
    return timed.recordsPerSecond;
  } finally {
    await producer.disconnect();
  }
}

/** The hand-written kafkajs job (kafka-hand-job.ts) on a new group and a new output topic. */
async function handJobRun(kafka: Kafka, topic: string, total: number, round: number): Promise<JobRun> {
  const id = `kafka-eos-hand-${runId}-${round}`;
  const output = `${id}-out`;
  await createTopic(kafka, output, partitions);
  const run = await runHandJob({ kafka, source: topic, output, groupId: id, total, commitIntervalMs, settleMs: 3_000 });
  return { ...run, outputRecords: await countCommitted(kafka, output) };
}

async function countCommitted(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    if (ends.every((entry) => Number(entry.high) === 0)) return 0;
  } finally {
    await admin.disconnect();
  }
  const consumer = kafka.consumer({ groupId: `kafka-eos-count-${runId}-${Math.random().toString(36).slice(2)}`, maxWaitTimeInMs: 100, readUncommitted: false });
  let count = 0;
  let last = performance.now();
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      count += batch.messages.length;
      last = performance.now();
    },
  });
  // Until nothing new comes for a second.
  while (performance.now() - last < 1_000) await sleep(100);
  await consumer.disconnect();
  return count;
}

async function engineRun(brokers: string[], kafka: Kafka, topic: string, total: number, guarantee: 'at-least-once' | 'exactly-once', round: number): Promise<JobRun> {
  const id = `kafka-eos-${guarantee === 'exactly-once' ? 'eos' : 'alo'}-${runId}-${round}`;
  const output = `${id}-out`;
  const app: App = createApp({
    id,
    transport: kafkaTransport({ brokers, logLevel: 'nothing', logger: silentLogger, defaultPartitions: partitions }),
    guarantee,
    idleTimeout: false,
    commitInterval,
    logger: silentLogger,
  });
  defineJob(app, topic, output);
  await app.start();
  // The last window closed: all input read, and the number of closed windows unchanged for 3 s.
  const { ms, cpuMs } = await timeUntilSettled(
    app,
    (metrics) => metrics.windowsClosed,
    (metrics) => metrics.recordsIn >= total,
  );
  const metrics = app.metrics();
  await app.stop();
  return {
    recordsPerSecond: Math.round((total * 1000) / ms),
    cpuMs,
    ms: Math.round(ms),
    windowsClosed: metrics.windowsClosed,
    lateRecords: metrics.lateRecords,
    outputRecords: await countCommitted(kafka, output),
  };
}

let bench: BenchKafka | undefined;
try {
  bench = await benchKafka('eddy-bench', log);
  const { brokers, kafka } = bench;
  const topic = `kafka-eos-in-${runId}`;
  await createTopic(kafka, topic, partitions);
  const total = await produceInput(kafka, topic, records, partitions);
  log(`produced ${total} records to ${topic} (${partitions} partitions)`);

  const raw: number[] = [];
  const stock: number[] = [];
  /** CPU µs per record of the stock raw consumer's process (mean of the two runs of a round). */
  const stockCpu: number[] = [];
  const pipe: number[] = [];
  const hand: JobRun[] = [];
  const alo: JobRun[] = [];
  const eos: JobRun[] = [];
  const ratios = {
    exactlyOnceVsAtLeastOnce: [] as number[],
    atLeastOnceVsHandJob: [] as number[],
    exactlyOnceVsHandJob: [] as number[],
    handJobVsRawConsumer: [] as number[],
    atLeastOnceVsStockRawConsumer: [] as number[],
    atLeastOnceVsStockRawConsumerCpu: [] as number[],
    rawConsumerStockVsFixed: [] as number[],
    atLeastOnceVsRawConsumer: [] as number[],
    exactlyOnceVsRawConsumer: [] as number[],
    atLeastOnceVsRawPipe: [] as number[],
  };
  for (let round = 0; round <= reps; round++) {
    // The stock raw consumer runs right before and right after the at-least-once engine, and the
    // two are averaged: the machine's speed drifts from run to run, and this is the target's ratio.
    const stockBefore = await stockRawConsumerRun(brokers, topic, total, `${round}a`);
    const aloRun = await engineRun(brokers, kafka, topic, total, 'at-least-once', round);
    const stockAfter = await stockRawConsumerRun(brokers, topic, total, `${round}b`);
    const stockRun = Math.round((stockBefore.recordsPerSecond + stockAfter.recordsPerSecond) / 2);
    const stockCpuRun = (stockBefore.cpuMs + stockAfter.cpuMs) * (1_000 / 2 / total);
    const aloCpuRun = aloRun.cpuMs! * (1_000 / total);
    const rawRun = (await rawConsumerRun(kafka, topic, total, `kafka-eos-raw-${runId}-${round}`)).recordsPerSecond;
    const pipeRun = await rawPipeRun(kafka, topic, total, round);
    const handRun = await handJobRun(kafka, topic, total, round);
    const eosRun = await engineRun(brokers, kafka, topic, total, 'exactly-once', round);
    await deleteTopicsAndGroups(kafka, `${runId}-${round}`);
    log(
      `round ${round}${round === 0 ? ' (warm-up)' : ''}: stock kafkajs ${stockBefore.recordsPerSecond}/s and ${stockAfter.recordsPerSecond}/s around at-least-once ${aloRun.recordsPerSecond}/s ` +
        `(CPU per record: ${stockCpuRun.toFixed(2)} µs and ${aloCpuRun.toFixed(2)} µs); ` +
        `raw ${rawRun}/s, raw pipe ${pipeRun}/s, hand job ${handRun.recordsPerSecond}/s, exactly-once ${eosRun.recordsPerSecond}/s; ` +
        `windows closed: hand job ${handRun.windowsClosed}, at-least-once ${aloRun.windowsClosed}`,
    );
    if (round === 0) continue;
    raw.push(rawRun);
    stock.push(stockRun);
    stockCpu.push(stockCpuRun);
    pipe.push(pipeRun);
    hand.push(handRun);
    alo.push(aloRun);
    eos.push(eosRun);
    ratios.exactlyOnceVsAtLeastOnce.push(eosRun.recordsPerSecond / aloRun.recordsPerSecond);
    ratios.atLeastOnceVsHandJob.push(aloRun.recordsPerSecond / handRun.recordsPerSecond);
    ratios.exactlyOnceVsHandJob.push(eosRun.recordsPerSecond / handRun.recordsPerSecond);
    ratios.handJobVsRawConsumer.push(handRun.recordsPerSecond / rawRun);
    ratios.atLeastOnceVsStockRawConsumer.push(aloRun.recordsPerSecond / stockRun);
    ratios.atLeastOnceVsStockRawConsumerCpu.push(stockCpuRun / aloCpuRun);
    ratios.rawConsumerStockVsFixed.push(stockRun / rawRun);
    ratios.atLeastOnceVsRawConsumer.push(aloRun.recordsPerSecond / rawRun);
    ratios.exactlyOnceVsRawConsumer.push(eosRun.recordsPerSecond / rawRun);
    ratios.atLeastOnceVsRawPipe.push(aloRun.recordsPerSecond / pipeRun);
  }
  const summary = (runs: readonly JobRun[]) => ({
    recordsPerSecond: median(runs.map((run) => run.recordsPerSecond)),
    samples: runs.map((run) => run.recordsPerSecond),
    cpuMicrosPerRecord: runs.map((run) => (run.cpuMs === undefined ? undefined : round3(run.cpuMs * (1_000 / total)))),
    ms: runs.map((run) => run.ms),
    windowsClosed: runs.map((run) => run.windowsClosed),
    lateRecords: runs.map((run) => run.lateRecords),
    outputRecords: runs.map((run) => run.outputRecords),
  });
  const round3 = (value: number) => Number(value.toFixed(3));
  const document = {
    benchmark: 'kafka-eos',
    records: total,
    partitions,
    repetitions: reps,
    machine: { node: process.version, cpus: cpus().length, nodeFlags: process.execArgv },
    broker: bench.source,
    job: `from(source).keyBy(sensor).hopping('10s', '1s').count().onClose(...).to(output), commitInterval ${commitInterval}, in-memory state`,
    handJob: { ...summary(hand), what: `kafkajs consumer + idempotent producer by hand: per-partition sliced hand windows (baseline.ts), results sent per batch, offsets committed every ${commitInterval} after them` },
    rawConsumer: { recordsPerSecond: median(raw), samples: raw, what: 'counts records only, in this process: kafkajs with the fixes @eddy/kafka installs' },
    rawConsumerStock: { recordsPerSecond: median(stock), samples: stock, cpuMicrosPerRecord: stockCpu.map(round3), what: 'the same, in a child process on stock kafkajs; per round the mean of a run just before and one just after the at-least-once engine' },
    rawPipe: { recordsPerSecond: median(pipe), samples: pipe, what: 'kafkajs read + write of the same batches to another topic (acks all), no parsing' },
    atLeastOnce: summary(alo),
    exactlyOnce: summary(eos),
    ratios: {
      exactlyOnceVsAtLeastOnce: round3(median(ratios.exactlyOnceVsAtLeastOnce)),
      atLeastOnceVsHandJob: round3(median(ratios.atLeastOnceVsHandJob)),
      exactlyOnceVsHandJob: round3(median(ratios.exactlyOnceVsHandJob)),
      handJobVsRawConsumer: round3(median(ratios.handJobVsRawConsumer)),
      atLeastOnceVsStockRawConsumer: round3(median(ratios.atLeastOnceVsStockRawConsumer)),
      // Records per CPU-second of each process (all its threads; the broker's work not counted):
      // less sensitive than records/s to what else the machine runs.
      atLeastOnceVsStockRawConsumerCpu: round3(median(ratios.atLeastOnceVsStockRawConsumerCpu)),
      rawConsumerStockVsFixed: round3(median(ratios.rawConsumerStockVsFixed)),
      atLeastOnceVsRawConsumer: round3(median(ratios.atLeastOnceVsRawConsumer)),
      exactlyOnceVsRawConsumer: round3(median(ratios.exactlyOnceVsRawConsumer)),
      atLeastOnceVsRawPipe: round3(median(ratios.atLeastOnceVsRawPipe)),
    },
    target: 'atLeastOnceVsStockRawConsumer >= 0.7 (a raw kafkajs consumer; atLeastOnceVsRawConsumer compares with kafkajs as @eddy/kafka fixes it)',
    checks: [
      { what: 'every run closed windows', ok: [...hand, ...alo, ...eos].every((run) => run.windowsClosed > 0) },
      // Both count closed, non-empty windows; same partitioning, so the same stream time per key.
      { what: 'hand job closed as many windows as at-least-once, round by round', ok: hand.every((run, index) => run.windowsClosed === alo[index]!.windowsClosed) },
      { what: 'hand job counted as many late records as at-least-once (the same stream time per partition)', ok: hand.every((run, index) => run.lateRecords === alo[index]!.lateRecords) },
      { what: 'hand job: output = windows closed (no failure, no repeat)', ok: hand.every((run) => run.outputRecords === run.windowsClosed) },
      { what: 'exactly-once: read_committed output = windows closed (each once)', ok: eos.every((run) => run.outputRecords === run.windowsClosed) },
      { what: 'at-least-once: output = windows closed (no failure, no repeat)', ok: alo.every((run) => run.outputRecords === run.windowsClosed) },
    ],
  };
  const text = JSON.stringify(document, null, 2);
  process.stdout.write(`${text}\n`);
  await mkdir(new URL('../results/', import.meta.url), { recursive: true });
  await writeFile(new URL('../results/kafka-eos.json', import.meta.url), text);
  if (!document.checks.every((check) => check.ok)) process.exitCode = 1;
} finally {
  // What this run made, also when it failed.
  await bench?.close(runId);
}
