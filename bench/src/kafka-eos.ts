/**
 * Kafka benchmark (`node bench/dist/kafka-eos.js [--records N] [--reps N] [--partitions N]
 * [--prev DIR] [--no-previous] [--no-jobs] [--no-restore]`, or `npm run bench -- kafka-eos ...`):
 * JSON on stdout and in bench/results/kafka-eos.json. Uses the broker in `KAFKA_BROKERS`, or
 * starts one (scripts/src/kafka.ts) for the run.
 *
 * Two jobs — source → keyBy(sensor) → tumbling(10s).count() or hopping(10s, 1s).count() →
 * onClose → output — under at-least-once and exactly-once, timed the way a user waits: from the
 * first input record read to the broker's append time of the last window result. Output topics
 * are created with `message.timestamp.type=LogAppendTime`, so the largest timestamp read back
 * from one is when the broker appended the last result; the start is the wall clock of the
 * engine's process when its source read the first record (a `peek` step notes it). Broker and
 * processes share the machine, so they share the clock.
 *
 * In the same rounds, on the same input (kafka-input.ts: the bench workload, 1,000 sensors, 10%
 * out of order, one far-future reading per sensor at the end; produced once):
 * - raw consumers of @platformatic/kafka that only count (raw-consumer.ts): a hand FetchV17 loop
 *   and the client's `Consumer` stream, each timed from its first read to its last record; the
 *   faster of the two in a round is that round's raw consumer;
 * - a raw pipe of the same client: every record read, one record of a result's size written per
 *   input record (idempotent producer, LogAppendTime output), offsets committed every second;
 *   timed from its first read to the append time of its last record, like the engine;
 * - the engine of an earlier commit (`--prev`, a checkout built beside this one: see
 *   bench/README.md), running the same jobs with this file's runner (kafka-job.ts) copied into it;
 *   and, when that checkout's own bench is built and reads with kafkajs, its raw consumer: stock
 *   kafkajs, `eachBatch`, only counting, timed from its group join to its last record. That is
 *   the baseline of the issue's figures for the kafkajs engine (0.84–0.90×); it has no target here.
 *
 * Every contender runs in a process of its own, one at a time; each engine run has a new app id
 * (group, internal topics) and a new output topic, deleted after it. Ratios are records/s of one
 * ÷ records/s of the other within a round; the medians over the measured rounds are reported,
 * after one warm-up round. Also reported: each run's CPU time (its process, all threads; not the
 * broker's). Then the restore benchmark: a table of `--records` keys on `levelState` builds a
 * changelog of as many records in one partition; a fresh app (same id, empty state dir) is timed
 * from `start()` until it has restored it, against reading that changelog with the raw consumers.
 */
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { changelogTopic } from '@eddy/core';
import { benchInput, benchKafka, createTopic, deleteTopicsAndGroups, expectedWindows, produceInput, topicRecords, type BenchInput, type BenchKafka } from './kafka-input.js';
import type { JobKind, JobRun, RestoreRun } from './kafka-job.js';
import { readBack, sampleResult, type RawRun } from './raw-consumer.js';
import { HOPPING_10S_1S, TUMBLING_10S } from './windowing.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    reps: { type: 'string', default: '3' },
    partitions: { type: 'string', default: '4' },
    // A built checkout of the last main on kafkajs (bench/README.md); --no-previous leaves it out.
    prev: { type: 'string', default: '/tmp/eddy-prev' },
    previous: { type: 'boolean', default: true },
    jobs: { type: 'boolean', default: true },
    restore: { type: 'boolean', default: true },
  },
  allowNegative: true,
});
const records = count(args.records, '--records');
const reps = count(args.reps, '--reps');
const partitions = count(args.partitions, '--partitions');
const WARMUP_ROUNDS = 1;
const execFileAsync = promisify(execFile);
const log = (message: string) => process.stderr.write(`[kafka-eos] ${message}\n`);
const runId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const round3 = (value: number) => Math.round(value * 1000) / 1000;

function count(text: string | undefined, flag: string): number {
  const match = text ? /^(\d+(?:\.\d+)?(?:e\d+)?)([km]?)$/i.exec(text.trim()) : null;
  if (!match) throw new Error(`${flag}: expected a count like 300000, 300k or 1e6, got ${JSON.stringify(text)}`);
  const value = Math.round(Number(match[1]) * { '': 1, k: 1e3, m: 1e6 }[match[2]!.toLowerCase() as '' | 'k' | 'm']);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${flag}: invalid count ${text}`);
  return value;
}

const benchDist = fileURLToPath(new URL('./', import.meta.url));

/** Runs one of the benchmark's scripts in a process of its own (with this process's Node flags) and parses the JSON line it prints. */
async function inChild<T>(script: string, argv: Record<string, string | number | boolean>): Promise<T> {
  const flags = Object.entries(argv).flatMap(([name, value]) => (value === true ? [`--${name}`] : value === false ? [] : [`--${name}`, String(value)]));
  try {
    const { stdout } = await execFileAsync(process.execPath, [...process.execArgv, script, ...flags], { maxBuffer: 16 * 2 ** 20, timeout: 20 * 60_000 });
    return JSON.parse(stdout.trim().split('\n').pop()!) as T;
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    // Node prints an uncaught error's message first, then its stack and fields.
    throw new Error(`${script.slice(script.lastIndexOf('/') + 1)} ${flags.join(' ')} failed: ${stderr?.trim().split('\n').slice(0, 15).join('\n') || String(error)}`);
  }
}

/** One timed run of a contender. */
interface Sample {
  /** Input records: those it counted, for a raw consumer. */
  readonly records: number;
  readonly ms: number;
  readonly recordsPerSecond: number;
  /** CPU seconds of the contender's process over the timed span. */
  readonly cpuSeconds: number;
  /** Records in the output topic (engine: window results; pipe: copies). */
  readonly outputRecords?: number;
  readonly windowsClosed?: number;
  readonly lateRecords?: number;
  readonly recordsIn?: number;
  /** Exactly-once: from the last result's append to the last commit marker's (when read_committed readers see it). */
  readonly commitMarkerLagMs?: number;
  /** Whether the output's batches carried the broker's append time. */
  readonly logAppendTime?: boolean;
}

const sample = (read: number, ms: number, cpuMs: number, extra: Partial<Sample> = {}): Sample => ({ records: read, ms, recordsPerSecond: Math.round((read * 1000) / Math.max(ms, 1)), cpuSeconds: round3(cpuMs / 1000), ...extra });

/** An engine of `engineDir`'s checkout (this one or `--prev`) running a job once; its output then read back. */
async function engineRun(bench: BenchKafka, engineDir: string, topic: string, total: number, kind: JobKind, guarantee: 'at-least-once' | 'exactly-once', id: string): Promise<Sample> {
  const output = `${id}-out`;
  await createTopic(bench.admin, output, partitions, { logAppendTime: true });
  try {
    const run = await inChild<JobRun>(join(engineDir, 'kafka-job.js'), { job: kind, brokers: bench.brokers.join(','), topic, output, id, records: total, partitions, guarantee });
    const written = await readBack(bench.admin, output);
    const ms = written.lastAppendAt - run.firstReadAt;
    return sample(total, ms, run.cpuMs, {
      outputRecords: written.records,
      windowsClosed: run.windowsClosed,
      lateRecords: run.lateRecords,
      recordsIn: run.recordsIn,
      logAppendTime: written.logAppendTime,
      ...(guarantee === 'exactly-once' && written.lastMarkerAt !== undefined ? { commitMarkerLagMs: written.lastMarkerAt - written.lastAppendAt } : {}),
    });
  } finally {
    await deleteTopicsAndGroups(bench.admin, id).catch(() => undefined);
  }
}

const rawScript = join(benchDist, 'raw-consumer.js');

/**
 * The previous checkout's stock kafkajs consumer counting `total` records of `topic` in a new
 * group (its command line: brokers, topic, records, group; it prints records/s and CPU ms).
 */
async function kafkajsRead(script: string, bench: BenchKafka, topic: string, total: number, group: string): Promise<Sample> {
  try {
    const { stdout } = await execFileAsync(process.execPath, [script, bench.brokers.join(','), topic, String(total), group], { maxBuffer: 2 ** 20, timeout: 20 * 60_000 });
    const run = JSON.parse(stdout.trim().split('\n').pop()!) as { recordsPerSecond: number; cpuMs: number };
    return sample(total, (total * 1000) / run.recordsPerSecond, run.cpuMs);
  } finally {
    await deleteTopicsAndGroups(bench.admin, group).catch(() => undefined);
  }
}

async function rawRead(bench: BenchKafka, read: 'fetch' | 'stream', topic: string, total: number, group: string): Promise<Sample> {
  const run = await inChild<RawRun>(rawScript, { read, brokers: bench.brokers.join(','), topic, records: total, group });
  return sample(run.records, run.lastAt - run.firstReadAt, run.cpuMs);
}

async function rawPipe(bench: BenchKafka, topic: string, total: number, id: string): Promise<Sample> {
  const output = `${id}-out`;
  await createTopic(bench.admin, output, partitions, { logAppendTime: true });
  try {
    const run = await inChild<RawRun>(rawScript, { read: 'pipe', brokers: bench.brokers.join(','), topic, records: total, group: id, output });
    const written = await readBack(bench.admin, output);
    return sample(total, written.lastAppendAt - run.firstReadAt, run.cpuMs, { outputRecords: written.records, logAppendTime: written.logAppendTime });
  } finally {
    await deleteTopicsAndGroups(bench.admin, id).catch(() => undefined);
  }
}

/**
 * The earlier checkout to compare with, when it is built; its runner is this one, copied in.
 * `kafkajsConsumer`: its bench's raw consumer, when that is built and reads with kafkajs.
 */
function previousEngine(dir: string): { dir: string; benchDist: string; commit: string; kafkajsConsumer: string | undefined } | undefined {
  const built = ['packages/core/dist/index.js', 'packages/kafka/dist/index.js', 'packages/state/dist/index.js', 'node_modules/@eddy/kafka'].every((path) => existsSync(join(dir, path)));
  if (!built) {
    log(`no built checkout in ${dir}: the previous engine is left out (bench/README.md says how to make one)`);
    return undefined;
  }
  const commit = execFileSync('git', ['-C', dir, 'rev-parse', '--short=7', 'HEAD'], { encoding: 'utf8' }).trim();
  const dist = join(dir, 'bench', 'dist');
  mkdirSync(dist, { recursive: true });
  copyFileSync(join(benchDist, 'kafka-job.js'), join(dist, 'kafka-job.js'));
  const rawConsumer = join(dist, 'raw-consumer.js');
  const readsWithKafkajs = existsSync(rawConsumer) && /from ['"]kafkajs['"]/.test(readFileSync(rawConsumer, 'utf8'));
  return { dir, benchDist: dist, commit, kafkajsConsumer: readsWithKafkajs ? rawConsumer : undefined };
}

type Contender =
  | 'rawFetch'
  | 'rawStream'
  | 'rawPipe'
  | 'previousClientConsumer'
  | `${'tumbling' | 'hopping'}${'AtLeastOnce' | 'ExactlyOnce'}`
  | `previous${'Tumbling' | 'Hopping'}${'AtLeastOnce' | 'ExactlyOnce'}`;

/**
 * A round's order: each baseline right before what is measured against it. The engine and the
 * previous engine swap places every other round: a run right after a heavy one (the raw pipe
 * writes a million records) meets a broker still busy with it, and neither side should always
 * be the one that does.
 */
function roundOrder(previous: { kafkajsConsumer: string | undefined } | undefined, round: number): Contender[] {
  const pair = (engine: Contender, earlier: Contender): Contender[] => (!previous ? [engine] : round % 2 === 0 ? [engine, earlier] : [earlier, engine]);
  return [
    'rawFetch',
    'rawStream',
    ...(previous?.kafkajsConsumer ? ['previousClientConsumer' as const] : []),
    ...pair('tumblingAtLeastOnce', 'previousTumblingAtLeastOnce'),
    'rawPipe',
    ...pair('hoppingAtLeastOnce', 'previousHoppingAtLeastOnce'),
    ...pair('tumblingExactlyOnce', 'previousTumblingExactlyOnce'),
    ...pair('hoppingExactlyOnce', 'previousHoppingExactlyOnce'),
  ];
}

async function runContender(bench: BenchKafka, contender: Contender, topic: string, total: number, round: number, previous: { benchDist: string; kafkajsConsumer: string | undefined } | undefined): Promise<Sample> {
  const id = `kafka-eos-${runId}-r${round}-${contender}`;
  if (contender === 'previousClientConsumer') return kafkajsRead(previous!.kafkajsConsumer!, bench, topic, total, id);
  if (contender === 'rawFetch') return rawRead(bench, 'fetch', topic, total, id);
  if (contender === 'rawStream') return rawRead(bench, 'stream', topic, total, id);
  if (contender === 'rawPipe') return rawPipe(bench, topic, total, id);
  const isPrevious = contender.startsWith('previous');
  const kind: JobKind = contender.toLowerCase().includes('tumbling') ? 'tumbling' : 'hopping';
  const guarantee = contender.endsWith('ExactlyOnce') ? 'exactly-once' : 'at-least-once';
  return engineRun(bench, isPrevious ? previous!.benchDist : benchDist, topic, total, kind, guarantee, id);
}

/** A ratio of records/s (or records per CPU-second) of two contenders of a round. */
interface RatioDef {
  readonly name: string;
  readonly of: Contender;
  readonly over: Contender | 'rawConsumer';
  readonly target?: number;
}

const ratioDefs: readonly RatioDef[] = [
  { name: 'tumblingAtLeastOnceVsRawConsumer', of: 'tumblingAtLeastOnce', over: 'rawConsumer', target: 0.9 },
  { name: 'hoppingAtLeastOnceVsRawPipe', of: 'hoppingAtLeastOnce', over: 'rawPipe', target: 0.85 },
  { name: 'tumblingAtLeastOnceVsPrevious', of: 'tumblingAtLeastOnce', over: 'previousTumblingAtLeastOnce', target: 1.0 },
  { name: 'hoppingAtLeastOnceVsPrevious', of: 'hoppingAtLeastOnce', over: 'previousHoppingAtLeastOnce', target: 1.0 },
  { name: 'tumblingExactlyOnceVsPrevious', of: 'tumblingExactlyOnce', over: 'previousTumblingExactlyOnce', target: 1.0 },
  { name: 'hoppingExactlyOnceVsPrevious', of: 'hoppingExactlyOnce', over: 'previousHoppingExactlyOnce', target: 1.0 },
  { name: 'tumblingExactlyOnceVsAtLeastOnce', of: 'tumblingExactlyOnce', over: 'tumblingAtLeastOnce', target: 0.8 },
  { name: 'hoppingExactlyOnceVsAtLeastOnce', of: 'hoppingExactlyOnce', over: 'hoppingAtLeastOnce', target: 0.8 },
  // Against the client's own consumer (its `Consumer` stream) alone, as the issue's kafkajs figure was.
  { name: 'tumblingAtLeastOnceVsClientConsumer', of: 'tumblingAtLeastOnce', over: 'rawStream' },
  { name: 'hoppingAtLeastOnceVsRawConsumer', of: 'hoppingAtLeastOnce', over: 'rawConsumer' },
  { name: 'rawPipeVsRawConsumer', of: 'rawPipe', over: 'rawConsumer' },
  { name: 'rawStreamVsRawFetch', of: 'rawStream', over: 'rawFetch' },
  { name: 'previousTumblingAtLeastOnceVsRawConsumer', of: 'previousTumblingAtLeastOnce', over: 'rawConsumer' },
  // The issue's own measure for the kafkajs engine (0.84–0.90), taken again in this run for both engines.
  { name: 'tumblingAtLeastOnceVsKafkajsConsumer', of: 'tumblingAtLeastOnce', over: 'previousClientConsumer' },
  { name: 'previousTumblingAtLeastOnceVsKafkajsConsumer', of: 'previousTumblingAtLeastOnce', over: 'previousClientConsumer' },
  { name: 'rawFetchVsKafkajsConsumer', of: 'rawFetch', over: 'previousClientConsumer' },
];

type Round = Partial<Record<Contender, Sample>>;

/** The round's raw consumer: the faster of the fetch loop and the stream. */
function rawConsumerOf(round: Round): Sample | undefined {
  const { rawFetch, rawStream } = round;
  if (!rawFetch || !rawStream) return rawFetch ?? rawStream;
  return rawFetch.recordsPerSecond >= rawStream.recordsPerSecond ? rawFetch : rawStream;
}

function ratios(rounds: readonly Round[], measure: (sample: Sample) => number) {
  const table: Record<string, { median: number | null; rounds: number[]; target?: string; met?: boolean | null }> = {};
  for (const def of ratioDefs) {
    const values: number[] = [];
    for (const round of rounds) {
      const of = round[def.of];
      const over = def.over === 'rawConsumer' ? rawConsumerOf(round) : round[def.over];
      if (of && over) values.push(round3(measure(of) / measure(over)));
    }
    const value = values.length > 0 ? round3(median(values)) : null;
    table[def.name] = { median: value, rounds: values, ...(def.target !== undefined ? { target: `>= ${def.target}`, met: value === null ? null : value >= def.target } : {}) };
  }
  return table;
}

function summary(samples: readonly Sample[]) {
  if (samples.length === 0) return undefined;
  return {
    recordsPerSecond: Math.round(median(samples.map((entry) => entry.recordsPerSecond))),
    cpuSeconds: round3(median(samples.map((entry) => entry.cpuSeconds))),
    recordsPerCpuSecond: Math.round(median(samples.map((entry) => entry.records / Math.max(entry.cpuSeconds, 1e-3)))),
    samples,
  };
}

/** The restore benchmark: its table built once, then per round the raw reads of its changelog and a restore into a fresh state dir. */
async function restoreBench(bench: BenchKafka) {
  const id = `kafka-eos-${runId}-restore`;
  const topic = `${id}-in`;
  await createTopic(bench.admin, topic, 1);
  const encoder = new TextEncoder();
  const now = Date.now();
  const events: BenchInput = {
    records,
    partitions: [Array.from({ length: records }, (_, index) => `id-${String(index).padStart(7, '0')}`).map((event) => ({ key: encoder.encode(event), value: encoder.encode(JSON.stringify({ id: event })), timestamp: now }))],
  };
  await produceInput(bench.brokers, topic, events);
  const dir = await mkdtemp(join(tmpdir(), 'eddy-kafka-restore-'));
  try {
    const job = (stateDir: string, restore: number | undefined) =>
      inChild<RestoreRun>(join(benchDist, 'kafka-job.js'), { job: 'table', brokers: bench.brokers.join(','), topic, id, records: restore ?? records, partitions: 1, 'state-dir': stateDir, restore: restore !== undefined });
    await job(join(dir, 'build'), undefined);
    const changelog = changelogTopic(id, 'counts');
    const changelogRecords = await topicRecords(bench.admin, changelog);
    const changelogPartitions = (await bench.admin.metadata({ topics: [changelog] })).topics.get(changelog)!.partitionsCount;
    log(`restore: the table's changelog holds ${changelogRecords} records in ${changelogPartitions} partition(s)`);
    const rounds: Array<{ rawFetch: Sample; rawStream: Sample; restore: Sample & { restoredRecords: number; startMs: number } }> = [];
    for (let round = 0; round < WARMUP_ROUNDS + reps; round++) {
      const rawFetch = await rawRead(bench, 'fetch', changelog, changelogRecords, `${id}-fetch-${round}`);
      const rawStream = await rawRead(bench, 'stream', changelog, changelogRecords, `${id}-stream-${round}`);
      const restored = await job(join(dir, `restore-${round}`), changelogRecords);
      const restore = { ...sample(restored.restoredRecords, Math.round(restored.ms), restored.cpuMs), restoredRecords: restored.restoredRecords, startMs: Math.round(restored.startMs) };
      await rm(join(dir, `restore-${round}`), { recursive: true, force: true });
      log(`restore round ${round}${round < WARMUP_ROUNDS ? ' (warm-up)' : ''}: raw fetch ${rawFetch.recordsPerSecond}/s, raw stream ${rawStream.recordsPerSecond}/s, restore ${restore.recordsPerSecond}/s (${restore.restoredRecords} records in ${restore.ms} ms; start() resolved after ${restore.startMs} ms)`);
      if (round >= WARMUP_ROUNDS) rounds.push({ rawFetch, rawStream, restore });
    }
    const ratioRounds = rounds.map(({ rawFetch, rawStream, restore }) => round3(restore.recordsPerSecond / Math.max(rawFetch.recordsPerSecond, rawStream.recordsPerSecond)));
    const value = round3(median(ratioRounds));
    return {
      what: `a table of ${records} keys (keyBy(id).count()) on levelState; its changelog restored by a fresh app (same id, empty state dir), timed from start() until every changelog record was restored (startMs: until start() resolved); vs reading that changelog with the raw fetch loop and the raw stream (the faster in each round)`,
      changelogRecords,
      changelogPartitions,
      restore: summary(rounds.map((entry) => entry.restore)),
      rawFetch: summary(rounds.map((entry) => entry.rawFetch)),
      rawStream: summary(rounds.map((entry) => entry.rawStream)),
      restoreVsRawRead: { median: value, rounds: ratioRounds, target: '>= 0.5', met: value >= 0.5 },
      checks: [
        { what: 'restore: the changelog holds a record per key', ok: changelogRecords >= records },
        { what: 'restore: every restore read the whole changelog', ok: rounds.every((entry) => entry.restore.restoredRecords === changelogRecords) },
      ],
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const started = new Date();
let bench: BenchKafka | undefined;
try {
  bench = await benchKafka('eddy-bench', log);
  const previous = args.previous ? previousEngine(args.prev!) : undefined;
  const topic = `kafka-eos-${runId}-in`;
  const input = benchInput(records, partitions);
  // --records regular readings, and a closing one per sensor.
  const total = input.records;
  if (args.jobs) {
    await createTopic(bench.admin, topic, partitions);
    await produceInput(bench.brokers, topic, input);
    log(`produced ${total} records to ${topic} (${partitions} partitions)${previous ? `; previous engine: ${previous.commit} in ${previous.dir}` : ''}`);
  }
  const expected = { tumbling: expectedWindows(input, TUMBLING_10S), hopping: expectedWindows(input, HOPPING_10S_1S) };

  const order = args.jobs ? roundOrder(previous, 0) : [];
  const rounds: Round[] = [];
  const errors: Array<{ round: number; contender: Contender; error: string }> = [];
  for (let round = 0; order.length > 0 && round < WARMUP_ROUNDS + reps; round++) {
    const results: Round = {};
    const roundContenders = roundOrder(previous, round);
    for (const contender of roundContenders) {
      try {
        results[contender] = await runContender(bench, contender, topic, total, round, previous);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        errors.push({ round, contender, error: message });
        log(`round ${round}: ${contender} failed: ${message}`);
      }
    }
    log(`round ${round}${round < WARMUP_ROUNDS ? ' (warm-up)' : ''}: ${roundContenders.map((contender) => `${contender} ${results[contender]?.recordsPerSecond ?? 'failed'}/s`).join(', ')}`);
    if (round >= WARMUP_ROUNDS) rounds.push(results);
  }
  const byContender = (contender: Contender) => rounds.flatMap((round) => (round[contender] ? [round[contender]] : []));
  /** Per engine contender, what every run of it must have done; `detail` names what some run did not. */
  const engineChecks = (contenders: Contender[]) =>
    contenders.flatMap((contender) => {
      const samples = byContender(contender);
      if (samples.length === 0) return [];
      const want = expected[contender.toLowerCase().includes('tumbling') ? 'tumbling' : 'hopping'];
      const failed = [
        samples.some((entry) => entry.recordsIn !== total) && `records read ${samples.map((entry) => entry.recordsIn).join(', ')}`,
        samples.some((entry) => entry.outputRecords !== want.windows) && `results ${samples.map((entry) => entry.outputRecords).join(', ')}`,
        samples.some((entry) => entry.lateRecords !== want.lateRecords) && `late records ${samples.map((entry) => entry.lateRecords).join(', ')}`,
        samples.some((entry) => entry.logAppendTime !== true) && 'an output without LogAppendTime',
      ].filter((entry): entry is string => typeof entry === 'string');
      return [
        {
          what: `${contender}: read all ${total} records; wrote the ${want.windows} results of the windows a hand loop closes per partition, each once; counted its ${want.lateRecords} late records; output stamped by the broker`,
          ok: failed.length === 0,
          ...(failed.length > 0 ? { detail: failed.join('; ') } : {}),
        },
      ];
    });
  const restore = args.restore ? await restoreBench(bench) : undefined;
  const warnings: string[] = [];
  if (previous && !previous.kafkajsConsumer && args.jobs) warnings.push(`the previous checkout's bench is not built with a kafkajs raw consumer: previousClientConsumer is left out (bench/README.md)`);
  if (!previous && args.jobs) warnings.push(`no previous engine (--prev ${args.prev}${args.previous ? '' : ', --no-previous'}): see bench/README.md to compare with one`);
  if (errors.length > 0) warnings.push(`${errors.length} run(s) failed: see errors`);
  const document = {
    benchmark: 'kafka-eos',
    startedAt: started.toISOString(),
    durationSeconds: Math.round((Date.now() - started.getTime()) / 1000),
    records: total,
    partitions,
    warmup: WARMUP_ROUNDS,
    repetitions: reps,
    machine: { node: process.version, cpus: cpus().length, nodeFlags: process.execArgv, loadAverageAtEnd: loadavg().map((value) => Math.round(value * 100) / 100) },
    broker: bench.source,
    previous: previous ? { commit: previous.commit, dir: previous.dir, kafkajsConsumer: previous.kafkajsConsumer ?? null } : null,
    timing: 'engine and pipe: from the wall clock when the first input record was read to the broker append time (LogAppendTime) of the last output record; raw consumers: first fetched records to last record (the previous checkout\'s kafkajs consumer: its group join to its last record); records/s = input records / that time',
    jobs: {
      tumbling: { job: "from(input).peek(first-read probe).keyBy(sensor).tumbling('10s').count().onClose({ sensor, start, count }).to(output)", expectedWindows: expected.tumbling.windows, expectedLateRecords: expected.tumbling.lateRecords },
      hopping: { job: "the same with .hopping('10s', '1s')", expectedWindows: expected.hopping.windows, expectedLateRecords: expected.hopping.lateRecords },
      settings: 'idleTimeout false, commitInterval 1s (default), in-memory state, kafkaTransport({ brokers, defaultPartitions })',
      pipeRecordBytes: { key: sampleResult().key.length, value: sampleResult().value.length },
    },
    results: Object.fromEntries(order.map((contender) => [contender, summary(byContender(contender))])),
    rawConsumerBaseline: rounds.map((round) => (rawConsumerOf(round) === round.rawFetch ? 'rawFetch' : 'rawStream')),
    ratios: ratios(rounds, (entry) => entry.recordsPerSecond),
    ratiosPerCpuSecond: ratios(rounds, (entry) => 1 / Math.max(entry.cpuSeconds, 1e-3)),
    restore,
    checks: [
      ...engineChecks(order.filter((contender) => !contender.startsWith('raw') && contender !== 'previousClientConsumer')),
      ...(order.length === 0
        ? []
        : [
            { what: 'the raw consumers read every input record', ok: [...byContender('rawFetch'), ...byContender('rawStream')].every((entry) => entry.records === total) },
            { what: 'raw pipe wrote one record per input record', ok: byContender('rawPipe').every((entry) => entry.outputRecords === total && entry.logAppendTime === true) },
          ]),
      ...(restore?.checks ?? []),
    ],
    errors,
    warnings,
  };
  const text = JSON.stringify(document, null, 2);
  process.stdout.write(`${text}\n`);
  await mkdir(new URL('../results/', import.meta.url), { recursive: true });
  await writeFile(new URL('../results/kafka-eos.json', import.meta.url), text);
  for (const [name, ratio] of Object.entries(document.ratios)) if (ratio.target && order.length > 0) log(`${name} = ${ratio.median ?? 'not measured'} (target ${ratio.target})${ratio.met === null ? '' : ratio.met ? ': met' : ': NOT met'}`);
  if (restore) log(`restoreVsRawRead = ${restore.restoreVsRawRead.median} (target >= 0.5): ${restore.restoreVsRawRead.met ? 'met' : 'NOT met'}`);
  for (const check of document.checks) if (!check.ok) log(`CHECK FAILED: ${check.what}${'detail' in check ? ` (${check.detail})` : ''}`);
  if (errors.length > 0 || !document.checks.every((check) => check.ok)) process.exitCode = 1;
} finally {
  // What this run made, also when it failed.
  await bench?.close(runId);
}
