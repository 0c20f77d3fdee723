/**
 * State benchmarks (`node bench/dist/state-bench.js [--records N] [--reps N]`), JSON on stdout and
 * in bench/results/state.json:
 *
 * 1. Pipeline throughput with `levelState` vs in-memory state on the same job
 *    (keyBy → hopping(10s, 1s).count() → onClose → to), commits every 100 ms so that state is
 *    flushed to LevelDB and the changelog many times during the run. Target: level ≥ 0.7× memory.
 * 2. Restore speed: a table with many keys is built, then a new instance with an empty state dir
 *    restores it from the changelog; records/s against a raw sequential read of the same
 *    changelog partitions (`transport.readPartition`) in the same run.
 *
 * Runs alternate between contenders, one at a time; the median is reported.
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createApp, memoryTransport, silentLogger, type StateBackend } from '@eddy/core';
import { levelState } from '@eddy/state';
import { buildWorkload, defaultWorkload, INPUT_TOPIC, type Reading } from './workload.js';

const { values: args } = parseArgs({ options: { records: { type: 'string', default: '200000' }, reps: { type: 'string', default: '3' } } });
const records = Number(args.records);
const reps = Number(args.reps);
const quietState = { warn: () => {}, info: () => {} };
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const gc = () => (globalThis as { gc?: () => void }).gc?.();

async function pipelineRun(state: StateBackend | undefined): Promise<{ recordsPerSecond: number; windows: number }> {
  const { input } = buildWorkload({ records, ...defaultWorkload });
  const transport = memoryTransport({ maxBatchSize: 500 });
  transport.createTopic({ name: INPUT_TOPIC, partitions: 1 });
  const app = createApp({ id: 'state-bench', transport, state, idleTimeout: false, commitInterval: '100ms', logger: silentLogger });
  app
    .from<Reading>(INPUT_TOPIC)
    .keyBy((reading) => reading.sensor)
    .hopping('10s', '1s')
    .count()
    .onClose((window) => ({ sensor: window.key, start: window.start, count: window.value }))
    .to('out');
  await app.start();
  gc();
  const started = performance.now();
  for (let from = 0; from < input.length; from += 10_000) {
    transport.append(input.slice(from, from + 10_000));
    await transport.idle();
    // Let the commit timer run between chunks, as it would in a live stream.
    await new Promise((resolve) => setImmediate(resolve));
  }
  await transport.idle();
  const ms = performance.now() - started;
  await app.stop();
  return { recordsPerSecond: Math.round((input.length * 1000) / ms), windows: transport.records('out').length };
}

async function restoreRun(dir: string): Promise<{ restoredPerSecond: number; rawPerSecond: number; restored: number; changelogRecords: number }> {
  const transport = memoryTransport({ defaultPartitions: 2 });
  const build = (state: StateBackend) => {
    const app = createApp({ id: 'restore-bench', transport, state, idleTimeout: false, logger: silentLogger });
    app.from<{ key: string }>('events').keyBy((event) => event.key).count({ name: 'counts' });
    return app;
  };
  const writer = build(levelState({ dir: join(dir, 'writer'), logger: quietState }));
  await writer.start();
  const batch = [];
  for (let i = 0; i < records; i++) {
    const key = `key-${i % Math.max(1, Math.floor(records / 2))}`;
    batch.push({ topic: 'events', partition: i % 2, key: new TextEncoder().encode(key), value: new TextEncoder().encode(JSON.stringify({ key })), timestamp: i });
  }
  transport.append(batch);
  await transport.idle();
  await writer.stop();
  const changelog = 'restore-bench-counts-changelog';
  const changelogRecords = transport.records(changelog).length;

  gc();
  let rawStarted = performance.now();
  let raw = 0;
  for (const partition of [0, 1]) for await (const chunk of transport.readPartition({ topic: changelog, partition }, 0)) raw += chunk.length;
  const rawMs = performance.now() - rawStarted;

  gc();
  const reader = build(levelState({ dir: join(dir, `reader-${Math.random()}`), logger: quietState }));
  rawStarted = performance.now();
  await reader.start();
  const restoreMs = performance.now() - rawStarted;
  const restored = reader.metrics().restoredRecords;
  await reader.stop();
  return { restoredPerSecond: Math.round((restored * 1000) / restoreMs), rawPerSecond: Math.round((raw * 1000) / rawMs), restored, changelogRecords };
}

const dir = await mkdtemp(join(tmpdir(), 'eddy-state-bench-'));
try {
  const memory: number[] = [];
  const level: number[] = [];
  const ratios: number[] = [];
  let windows = { memory: 0, level: 0 };
  for (let round = 0; round <= reps; round++) {
    const memoryRun = await pipelineRun(undefined);
    const levelRun = await pipelineRun(levelState({ dir: join(dir, `pipeline-${round}`), logger: quietState }));
    windows = { memory: memoryRun.windows, level: levelRun.windows };
    if (round === 0) continue; // warm-up
    memory.push(memoryRun.recordsPerSecond);
    level.push(levelRun.recordsPerSecond);
    ratios.push(levelRun.recordsPerSecond / memoryRun.recordsPerSecond);
  }
  const restores = [];
  for (let round = 0; round < reps; round++) restores.push(await restoreRun(join(dir, `restore-${round}`)));
  const document = {
    benchmark: 'state',
    records,
    repetitions: reps,
    machine: { node: process.version, cpus: (await import('node:os')).cpus().length },
    pipeline: {
      job: 'keyBy → hopping(10s, 1s).count() → onClose → to, commitInterval 100ms, 1000 keys',
      memoryRecordsPerSecond: median(memory),
      levelRecordsPerSecond: median(level),
      windows,
      levelVsMemory: Number(median(ratios).toFixed(3)),
      target: 'levelVsMemory >= 0.7',
    },
    restore: {
      job: 'table count over records/2 keys on 2 partitions; a new instance restores it into an empty levelState',
      changelogRecords: restores[0]!.changelogRecords,
      restoredRecords: restores[0]!.restored,
      restoreRecordsPerSecond: median(restores.map((run) => run.restoredPerSecond)),
      rawReadRecordsPerSecond: median(restores.map((run) => run.rawPerSecond)),
      restoreVsRawRead: Number(median(restores.map((run) => run.restoredPerSecond / run.rawPerSecond)).toFixed(3)),
    },
    checks: [{ what: 'both state backends produced the same number of windows', ok: windows.memory === windows.level && windows.memory > 0 }],
  };
  const text = JSON.stringify(document, null, 2);
  process.stdout.write(`${text}\n`);
  await mkdir(new URL('../results/', import.meta.url), { recursive: true });
  await writeFile(new URL('../results/state.json', import.meta.url), text);
  if (!document.checks.every((check) => check.ok)) process.exitCode = 1;
} finally {
  await rm(dir, { recursive: true, force: true });
}
