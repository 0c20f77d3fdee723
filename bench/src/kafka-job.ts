/**
 * One engine run of the Kafka benchmark (kafka-eos.ts), in a process of its own:
 *
 *   node bench/dist/kafka-job.js --job tumbling|hopping --brokers B --topic T --output O --id APP_ID
 *     --records N [--guarantee at-least-once|exactly-once] [--partitions P]
 *   node bench/dist/kafka-job.js --job table --brokers B --topic T --id APP_ID --records N --state-dir D [--restore]
 *
 * prints one JSON line (a {@link JobRun} or a {@link RestoreRun}).
 *
 * It imports nothing but Eddy's packages and Node's, so that kafka-eos.ts can copy it into a
 * checkout of an earlier commit and run that commit's engine with it.
 *
 * - `tumbling`, `hopping`: source → peek (notes when the first record was read) → keyBy(sensor)
 *   → tumbling(10s) or hopping(10s, 1s) → count → onClose → output, `idleTimeout: false`,
 *   in-memory state (its changelog still goes to Kafka). Runs until all input is read and the
 *   records written stay unchanged for 3 s; the run's end is read from the output by the caller.
 * - `table`: source → keyBy(id) → count, on `levelState` in `--state-dir`: builds the table and
 *   its changelog, then stops; with `--restore`, a fresh state dir restores it, timed from
 *   `start()` until `--records` changelog records are restored.
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createApp, silentLogger, type App, type MetricsSnapshot } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';

export type JobKind = 'tumbling' | 'hopping';

/**
 * The benchmarked job: readings keyed by sensor, counted in tumbling(10s) or hopping(10s, 1s)
 * windows, each count sent to `output`. `onRead` is called on every record the source reads.
 */
export function defineJob(app: App, kind: JobKind, source: string, output: string, onRead: () => void = () => undefined): void {
  // One plain parameter: the engine then knows the step cannot see the key, and leaves it undecoded.
  const keyed = app
    .from<{ sensor: string }>(source)
    .peek((_reading) => onRead())
    .keyBy((reading) => reading.sensor);
  const windowed = kind === 'tumbling' ? keyed.tumbling('10s') : keyed.hopping('10s', '1s');
  windowed
    .count()
    .onClose((window) => ({ sensor: window.key, start: window.start, count: window.value }))
    .to(output);
}

/** What {@link timeUntilSettled} measured, from its call to the last change of progress. */
export interface SettledRun {
  readonly ms: number;
  /** This process's CPU time (all threads) from `cpuFrom` to the last change. */
  readonly cpuMs: number;
  /** The share of the time the event loop was busy (not waiting for I/O). */
  readonly eventLoopUtilization: number;
}

/**
 * Waits until a running app is done: `settled` (say, all input read) and `progress` (say,
 * records written) unchanged for 3 s, polled every 10 ms; the figures are those at the last
 * change, CPU time counted from `cpuFrom()` (default: the call). Throws the app's failure, or
 * after two minutes without progress.
 */
export async function timeUntilSettled(app: App, progress: (metrics: MetricsSnapshot) => number, settled: (metrics: MetricsSnapshot) => boolean, cpuFrom?: () => NodeJS.CpuUsage): Promise<SettledRun> {
  const started = { at: performance.now(), cpu: process.cpuUsage(), elu: performance.eventLoopUtilization() };
  let last = { at: started.at, cpu: process.cpuUsage(started.cpu), elu: performance.eventLoopUtilization(started.elu) };
  let seen = -1;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    if (app.failure) throw app.failure;
    const metrics = app.metrics();
    const now = progress(metrics);
    if (now !== seen) {
      seen = now;
      last = { at: performance.now(), cpu: process.cpuUsage(cpuFrom?.() ?? started.cpu), elu: performance.eventLoopUtilization(started.elu) };
    }
    const quietMs = performance.now() - last.at;
    if (settled(metrics) && quietMs > 3_000) break;
    if (quietMs > 120_000) throw new Error(`no progress for two minutes: ${JSON.stringify({ recordsIn: metrics.recordsIn, recordsOut: metrics.recordsOut, lag: metrics.lag })}`);
  }
  return { ms: last.at - started.at, cpuMs: (last.cpu.user + last.cpu.system) / 1000, eventLoopUtilization: last.elu.utilization };
}

/** A windowed job's run, as this process saw it. */
export interface JobRun {
  /** Wall-clock ms (epoch) when the source read the first record. */
  readonly firstReadAt: number;
  /** This process's CPU time (all threads) from the first record read to the last change of the records read or written. */
  readonly cpuMs: number;
  readonly recordsIn: number;
  readonly recordsOut: number;
  readonly windowsClosed: number;
  readonly lateRecords: number;
  readonly recordsHandedOff: number;
}

/** A `table` run: building the table, or restoring it into a fresh state dir. */
export interface RestoreRun {
  /** From `start()` until `--records` changelog records were restored. */
  readonly ms: number;
  /** Until `start()` resolved: it may before a long restore ends (the transport waits for a first assignment only so long). */
  readonly startMs: number;
  readonly cpuMs: number;
  readonly restoredRecords: number;
}

interface RunnerOptions {
  readonly brokers: string[];
  readonly topic: string;
  readonly id: string;
  readonly records: number;
  readonly partitions: number;
}

function transportFor(options: RunnerOptions) {
  return kafkaTransport({ brokers: options.brokers, defaultPartitions: options.partitions, logLevel: 'nothing', logger: silentLogger });
}

async function jobRun(options: RunnerOptions, kind: JobKind, output: string, guarantee: 'at-least-once' | 'exactly-once'): Promise<JobRun> {
  const app = createApp({ id: options.id, transport: transportFor(options), guarantee, idleTimeout: false, logger: silentLogger });
  let firstReadAt = 0;
  let cpuFrom = process.cpuUsage();
  defineJob(app, kind, options.topic, output, () => {
    if (firstReadAt !== 0) return;
    firstReadAt = Date.now();
    cpuFrom = process.cpuUsage();
  });
  await app.start();
  try {
    const run = await timeUntilSettled(
      app,
      (metrics) => metrics.recordsIn + metrics.recordsOut,
      (metrics) => metrics.recordsIn >= options.records,
      () => cpuFrom,
    );
    const { recordsIn, recordsOut, windowsClosed, lateRecords, recordsHandedOff } = app.metrics();
    return { firstReadAt, cpuMs: run.cpuMs, recordsIn, recordsOut, windowsClosed, lateRecords, recordsHandedOff };
  } finally {
    await app.stop();
  }
}

/** The restore benchmark's table: one count per id (each record has its own), on LevelDB. */
async function tableRun(options: RunnerOptions, stateDir: string, restore: boolean): Promise<RestoreRun> {
  // Loaded here only: an engine run needs no LevelDB.
  const { levelState } = await import('@eddy/state');
  const quiet = { warn: () => undefined, info: () => undefined };
  const app = createApp({ id: options.id, transport: transportFor(options), state: levelState({ dir: stateDir, logger: quiet }), idleTimeout: false, logger: silentLogger });
  app
    .from<{ id: string }>(options.topic)
    .keyBy((event) => event.id)
    .count({ name: 'counts' });
  const cpu = process.cpuUsage();
  const started = performance.now();
  await app.start();
  const startMs = performance.now() - started;
  try {
    if (!restore) {
      await timeUntilSettled(app, (metrics) => metrics.recordsIn, (metrics) => metrics.recordsIn >= options.records);
    } else {
      while (app.metrics().restoredRecords < options.records) {
        if (app.failure) throw app.failure;
        if (performance.now() - started > 600_000) throw new Error(`restored ${app.metrics().restoredRecords} of ${options.records} records in ten minutes`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    const used = process.cpuUsage(cpu);
    return { ms: performance.now() - started, startMs, cpuMs: (used.user + used.system) / 1000, restoredRecords: app.metrics().restoredRecords };
  } finally {
    await app.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      job: { type: 'string' },
      brokers: { type: 'string' },
      topic: { type: 'string' },
      output: { type: 'string' },
      id: { type: 'string' },
      records: { type: 'string' },
      partitions: { type: 'string', default: '4' },
      guarantee: { type: 'string', default: 'at-least-once' },
      'state-dir': { type: 'string' },
      restore: { type: 'boolean', default: false },
    },
  });
  const options: RunnerOptions = { brokers: (values.brokers ?? '').split(','), topic: values.topic!, id: values.id!, records: Number(values.records), partitions: Number(values.partitions) };
  if (values.guarantee !== 'at-least-once' && values.guarantee !== 'exactly-once') throw new Error(`--guarantee: at-least-once or exactly-once, not ${values.guarantee}`);
  const run =
    values.job === 'tumbling' || values.job === 'hopping'
      ? jobRun(options, values.job, values.output!, values.guarantee)
      : values.job === 'table'
        ? tableRun(options, values['state-dir']!, values.restore)
        : Promise.reject(new Error(`--job: tumbling, hopping or table, not ${values.job}`));
  process.stdout.write(`${JSON.stringify(await run)}\n`);
  // A client that keeps a socket or timer open must not keep the run from ending.
  process.exit(0);
}
