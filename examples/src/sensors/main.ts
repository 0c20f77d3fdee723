/**
 * The sensors demo (`npm run demo`): simulated sensors with injected faults feed the flagship
 * pipeline on the embedded broker; the demo reads the predictions back from the broker and scores
 * the anomalies found against the faults injected. The sensors send raw values; the pipeline
 * calibrates them and adds each sensor's location from the `sensors` table, which the demo fills
 * before the first reading.
 *
 * Time. The simulation covers `--minutes` of event time and is replayed in compressed time: the
 * app runs on a clock that starts at the simulation's start and goes `--speed` times faster than
 * the wall clock, and each reading is sent when that clock reaches its arrival time. So event time
 * and the app's clock agree, as they do in production, only faster.
 *
 * The end of a bounded stream. Windows close when stream time passes their end + grace, and only
 * new records move stream time, so the last windows of a stream that stops would wait forever.
 * Eddy's answer is the idle timeout: once a task has received nothing for `idleTimeout` of clock
 * time, its stream time follows the clock. The demo just stops sending and waits: after the idle
 * timeout plus 12 s (window size + grace) of compressed clock time every window has closed, and no
 * fake "flush" record is needed. The idle timeout is one wall-clock second at the replay speed
 * (100 s of app clock at 100x): in compressed time a hiccup of the process (GC, a busy CPU) is
 * `speed` times longer, and a task starved that long would be taken for idle and run its stream
 * time ahead of its data, making readings late.
 *
 * The model. It runs in a worker pool (`@eddy/ml`), off the event loop: windows closing at one
 * slide boundary travel to the workers in batches, and results come back in window order. The
 * summary reports the pool and the event loop's delay; `--inline` runs the model on the event loop
 * for comparison.
 *
 * Options: --sensors=20 --minutes=10 --speed=100 --seed=42 --inline
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { memoryTransport, type MetricsSnapshot } from '@eddy/core';
import { workerPool } from '@eddy/ml';
import { compressedClock } from './clock.js';
import { buildSensorsApp, sensorWindow, topics } from './pipeline.js';
import { scoreDetections } from './scoring.js';
import { simulate } from './simulator.js';
import type { SensorWindow } from './model.js';
import { unknownLocation, type LateReadingNotice, type Prediction } from './types.js';

const { values: args } = parseArgs({
  options: {
    sensors: { type: 'string', default: '20' },
    minutes: { type: 'string', default: '10' },
    speed: { type: 'string', default: '100' },
    seed: { type: 'string', default: '42' },
    inline: { type: 'boolean', default: false },
  },
});
const sensors = positive(args.sensors, 'sensors');
const minutes = positive(args.minutes, 'minutes');
const speed = positive(args.speed, 'speed');
const seed = positive(args.seed, 'seed');
/** One wall-clock second at the replay speed, at least the engine's default 5 s (see above). */
const idleTimeoutMs = Math.max(5_000, Math.round(speed * 1_000));
/** How often the progress line is redrawn (wall ms): a few times a second on a terminal, once a second in a log. */
const progressEveryMs = process.stdout.isTTY ? 250 : 1_000;

const simulation = simulate({ sensors, durationMs: minutes * 60_000, seed });
const { deliveries } = simulation;
const decoder = new TextDecoder();

const transport = memoryTransport();
const clock = compressedClock({ startTime: simulation.startTime, speed });
const pool = args.inline ? undefined : workerPool<SensorWindow, Prediction>(new URL('./model.js', import.meta.url), { batchSize: 64, maxQueue: 2_000 });
const app = buildSensorsApp({ transport, clock, idleTimeout: idleTimeoutMs, ...(pool ? { model: pool } : {}) });
const eventLoopDelay = monitorEventLoopDelay({ resolution: 5 });
let deepestQueue = 0;

console.log(`Eddy sensors demo: ${sensors} sensors, ${minutes} min of event time replayed at ${speed}x on the embedded broker (seed ${seed})`);
console.log(`${sensors} sensors' metadata (calibration, location) on topic ${topics.sensors}, read as a table; each raw reading is calibrated and located by a leftJoin before the windows`);
console.log(`${deliveries.length.toLocaleString('en')} readings with ${simulation.anomalies.length} injected faults, ${simulation.counts.outOfOrder} out-of-order, ${simulation.counts.late} late and ${simulation.counts.invalid} failed reads\n`);
console.log(app.describe());
console.log();

const wallStart = performance.now();
await app.start();
eventLoopDelay.enable();
let sent = 0;
let feedEnd = Number.NaN;
let lastProgress = { wall: wallStart, recordsIn: 0 };

// The table first: a reading processed before its sensor's metadata would go on raw, at location 'unknown'.
await app.sendBatch(
  topics.sensors,
  Object.entries(simulation.metadata).map(([sensor, info]) => ({ key: sensor, value: info, timestamp: simulation.startTime })),
);

const progress = setInterval(() => printProgress(false), progressEveryMs);

// Replay: send every reading whose arrival time the clock has reached, then let the app work.
while (sent < deliveries.length) {
  const now = clock.now();
  const batch: Promise<void>[] = [];
  for (; sent < deliveries.length && deliveries[sent]!.arrival <= now; sent++) {
    const { reading } = deliveries[sent]!;
    batch.push(app.send(topics.readings, reading, { key: reading.sensor }));
  }
  await Promise.all(batch);
  const next = deliveries[sent];
  await sleep(next === undefined ? 0 : Math.min(10, Math.max(1, (next.arrival - clock.now()) / speed)));
}
feedEnd = performance.now();

// The stream has ended: wait for the idle timeout to move stream time past the last windows.
const closeAfterMs = idleTimeoutMs + sensorWindow.sizeMs + sensorWindow.graceMs;
say(`replay done; the last windows close once the idle timeout lets stream time follow the clock (${seconds(closeAfterMs)} of app clock, ${seconds(closeAfterMs / speed)} wall)`);
const flushDeadline = feedEnd + (closeAfterMs / speed) * 5 + 2_000;
while (!allClosed(app.metrics()) && performance.now() < flushDeadline) await sleep(20);
const flushEnd = performance.now();
clearInterval(progress);
eventLoopDelay.disable();
printProgress(true);
await app.stop();
const wallEnd = performance.now();

printSummary();

// --- helpers -----------------------------------------------------------------------------------

/** Prints a line; on a terminal it first clears the progress line, which the next tick redraws. */
function say(text: string): void {
  console.log(process.stdout.isTTY ? `\r\x1b[K${text}` : text);
}

function allClosed(metrics: MetricsSnapshot): boolean {
  return metrics.windowsOpen === 0 && metrics.handlerQueueDepth === 0;
}

function readTopic<T>(topic: string): T[] {
  return transport.records(topic).map((record) => JSON.parse(decoder.decode(record.value!)) as T);
}

/** One progress line; the final one gives the average rate of the replay rather than the latest. */
function printProgress(final: boolean): void {
  const metrics = app.metrics();
  deepestQueue = Math.max(deepestQueue, pool?.queueDepth ?? 0);
  const wall = performance.now();
  const since = final ? { wall: wallStart, recordsIn: 0 } : lastProgress;
  const rate = ((metrics.recordsIn - since.recordsIn) * 1_000) / Math.max(1, (final ? feedEnd : wall) - since.wall);
  lastProgress = { wall, recordsIn: metrics.recordsIn };
  const streamTimes = Object.values(metrics.streamTime).filter(Number.isFinite);
  const eventTime = streamTimes.length === 0 ? '--:--:--' : new Date(Math.max(...streamTimes)).toISOString().slice(11, 19);
  const line =
    `[${seconds(wall - wallStart).padStart(6)}] event time ${eventTime} | sent ${count(sent).padStart(7)} | ` +
    `windows open ${count(metrics.windowsOpen).padStart(4)} closed ${count(metrics.windowsClosed).padStart(6)} | ` +
    `predictions ${count(transport.records(topics.predictions).length).padStart(6)} | ${count(Math.round(rate)).padStart(6)} records/s`;
  if (process.stdout.isTTY) process.stdout.write(`\r${line}${final ? '\n' : ''}`);
  else process.stdout.write(`${line}\n`);
}

function printSummary(): void {
  const metrics = app.metrics();
  const predictions = readTopic<Prediction>(topics.predictions);
  const notices = readTopic<LateReadingNotice>(topics.lateReadings);
  const lateReadings = new Set(notices.map((notice) => `${notice.sensor}@${notice.ts}`)).size;
  const score = scoreDetections(predictions, simulation.anomalies, sensorWindow.slideMs);
  const byLocation = new Map<string, Set<string>>();
  for (const prediction of predictions) {
    const located = byLocation.get(prediction.location) ?? new Set<string>();
    byLocation.set(prediction.location, located.add(prediction.sensor));
  }
  const locations = [...byLocation].sort(([a], [b]) => a.localeCompare(b)).map(([location, located]) => `${location} ${located.size}`);
  const unlocated = predictions.filter((prediction) => prediction.location === unknownLocation).length;
  const kinds = Object.entries(score.byKind).map(([kind, { injected, detected }]) => `${kind} ${detected}/${injected}`);
  const percent = (value: number) => `${(value * 100).toFixed(1)} %`;
  const lines = [
    '',
    'Summary',
    `  records in        ${count(metrics.recordsIn).padStart(8)}   (${count(Object.keys(simulation.metadata).length)} sensors-table records and ${count(deliveries.length)} readings; ${simulation.counts.invalid} failed reads dropped by the filter)`,
    `  windows closed    ${count(metrics.windowsClosed).padStart(8)}   (still open: ${metrics.windowsOpen})`,
    `  predictions       ${count(predictions.length).padStart(8)}   (flagged anomalous: ${score.flagged})`,
    `  enrichment        sensors per location: ${locations.join(', ')}; ${unlocated} predictions from sensors without metadata`,
    `  late readings     ${count(metrics.lateRecords).padStart(8)}   (${notices.length} notices on ${topics.lateReadings} for ${lateReadings} readings; the simulator sent ${simulation.counts.late} readings 4–9 s late and ${simulation.counts.outOfOrder} up to 1.5 s out of order)`,
    `  dead letters      ${count(metrics.deadLetters).padStart(8)}`,
    `  anomalies         found ${score.detected} of ${score.injected} injected faults (${kinds.join(', ')})`,
    `                    recall ${percent(score.recall)}, precision ${percent(score.precision)} (${score.truePositives} of ${score.flagged} flagged windows point at a fault), median delay ${seconds(score.medianDelayMs)} of event time`,
    ...score.missed.slice(0, 5).map((fault) => `                    missed: ${fault.sensor} ${fault.kind} at ${clockTime(fault.start)} (${fault.end - fault.start} ms)`),
    ...score.falsePositives.slice(0, 5).map((prediction) => `                    false alarm: ${prediction.sensor} window ending ${clockTime(prediction.windowEnd)} (${prediction.reason}, score ${prediction.score})`),
    pool
      ? `  model             in a worker pool of ${pool.size} (batches of up to 64 windows); deepest queue seen ${count(deepestQueue)} windows`
      : '  model             inline, on the event loop (--inline)',
    `  event loop delay  p50 ${millis(eventLoopDelay.percentile(50))}, p99 ${millis(eventLoopDelay.percentile(99))}, max ${millis(eventLoopDelay.max)}`,
    `  elapsed           ${seconds(wallEnd - wallStart)} wall: replay ${seconds(feedEnd - wallStart)}, closing the last windows ${seconds(flushEnd - feedEnd)}, stop ${seconds(wallEnd - flushEnd)}; ${count(Math.round((metrics.recordsIn * 1_000) / (feedEnd - wallStart)))} records/s`,
  ];
  console.log(lines.join('\n'));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function positive(text: string | undefined, name: string): number {
  const value = Number(text);
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`--${name} must be a positive number, got ${JSON.stringify(text)}`);
  return value;
}

function count(value: number): string {
  return value.toLocaleString('en');
}

function millis(nanoseconds: number): string {
  return `${(nanoseconds / 1e6).toFixed(1)} ms`;
}

function seconds(ms: number): string {
  return `${(ms / 1_000).toFixed(1)} s`;
}

function clockTime(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}
