/**
 * Restart of a durable embedded app (`node --expose-gc bench/dist/restart-bench.js [--records N]
 * [--reps N]`), JSON on stdout and in bench/results/restart.json.
 *
 * An app on `levelTransport` + `levelState` (one dir) holds N records of window state:
 * `collect()` in one-hour windows of 1,000 keys keeps every record it was sent. It stops cleanly;
 * then a new instance starts on the same dir and is timed until `start()` resolves — the broker
 * log read back, the stores opened on their local checkpoint (nothing to restore), the open
 * windows rebuilt from the store. The baseline, in the same run: reading that app's state LevelDB
 * once, every entry, with `level` directly. Also reported: the log's part (a broker opened alone).
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createApp, silentLogger, type App } from '@eddy/core';
import { levelState, levelTransport } from '@eddy/state';
import { Level } from 'level';

const { values: args } = parseArgs({ options: { records: { type: 'string', default: '1000000' }, reps: { type: 'string', default: '3' } } });
const records = Number(args.records);
const reps = Number(args.reps);
const quiet = { warn: () => undefined, info: () => undefined };
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const gc = () => (globalThis as { gc?: () => void }).gc?.();

function build(dir: string): App {
  const app = createApp({ id: 'restart-bench', transport: levelTransport({ dir, logger: quiet }), state: levelState({ dir, logger: quiet }), idleTimeout: false, logger: silentLogger });
  app
    .from<{ sensor: string; value: number; ts: number }>('readings', { timestamp: (reading) => reading.ts })
    .keyBy((reading) => reading.sensor)
    .tumbling('1h', { name: 'hour' })
    .collect()
    .toStream()
    .to('hours');
  return app;
}

async function readOnce(location: string): Promise<{ ms: number; entries: number }> {
  const started = performance.now();
  const db = new Level<Uint8Array, Uint8Array>(location, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open({ createIfMissing: false });
  let entries = 0;
  const iterator = db.iterator({ fillCache: false });
  for (let batch = await iterator.nextv(10_000); batch.length > 0; batch = await iterator.nextv(10_000)) entries += batch.length;
  await iterator.close();
  await db.close();
  return { ms: performance.now() - started, entries };
}

const dir = await mkdtemp(join(tmpdir(), 'eddy-restart-bench-'));
try {
  // Fill: N readings of 1,000 sensors within one hour of event time, every window still open.
  const fillStarted = performance.now();
  const first = build(dir);
  await first.start();
  for (let from = 0; from < records; from += 10_000) {
    const batch = [];
    for (let index = from; index < Math.min(records, from + 10_000); index++) {
      const sensor = `sensor-${index % 1000}`;
      batch.push({ value: { sensor, value: index % 97, ts: Math.floor((index * 3_000_000) / records) }, key: sensor, timestamp: index });
    }
    await first.sendBatch('readings', batch);
  }
  while (first.metrics().recordsIn < records || first.metrics().lag > 0) await new Promise((resolve) => setTimeout(resolve, 50));
  await first.stop();
  const fillMs = performance.now() - fillStarted;

  const samples: Array<{ startMs: number; logMs: number; readOnceMs: number; openWindows: number; restored: number; stateEntries: number }> = [];
  for (let rep = 0; rep < reps; rep++) {
    gc();
    const once = await readOnce(join(dir, 'restart-bench'));
    gc();
    const logStarted = performance.now();
    const broker = levelTransport({ dir, logger: quiet });
    await broker.connect();
    const logMs = performance.now() - logStarted;
    await broker.close();
    gc();
    const app = build(dir);
    const started = performance.now();
    await app.start();
    const startMs = performance.now() - started;
    const { windowsOpen, restoredRecords } = app.metrics();
    await app.stop();
    samples.push({ startMs, logMs, readOnceMs: once.ms, openWindows: windowsOpen, restored: restoredRecords, stateEntries: once.entries });
  }
  const startMs = median(samples.map((sample) => sample.startMs));
  const readOnceMs = median(samples.map((sample) => sample.readOnceMs));
  const result = {
    benchmark: 'restart of a durable embedded app',
    records,
    fillMs: Math.round(fillMs),
    restartMs: Math.round(startMs),
    brokerLogReadMs: Math.round(median(samples.map((sample) => sample.logMs))),
    stateReadOnceMs: Math.round(readOnceMs),
    ratio: { restartVsReadOnce: Math.round((startMs / readOnceMs) * 100) / 100 },
    samples: samples.map((sample) => ({ ...sample, startMs: Math.round(sample.startMs), logMs: Math.round(sample.logMs), readOnceMs: Math.round(sample.readOnceMs) })),
    definitions: {
      restartMs: 'app.start() of a new instance on the same dir: broker log read into memory, stores opened on their checkpoint, open windows rebuilt',
      stateReadOnceMs: "reading the app's state LevelDB once, every entry (level, 10,000 per batch)",
      restartVsReadOnce: 'restartMs ÷ stateReadOnceMs',
    },
  };
  console.log(JSON.stringify(result, null, 2));
  await mkdir(new URL('../results/', import.meta.url), { recursive: true });
  await writeFile(new URL('../results/restart.json', import.meta.url), JSON.stringify(result, null, 2));
} finally {
  await rm(dir, { recursive: true, force: true });
}
