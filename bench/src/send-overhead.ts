/**
 * What the host's input path costs per record (`node --expose-gc bench/dist/send-overhead.js
 * [--records N] [--rounds N]`), beside what any producer of JSON pays: the benchmark input's
 * values (objects, as a host has them) are
 *
 * - `json`: encoded only (JSON.stringify + UTF-8), the baseline;
 * - `send`: sent with `app.send`, 1,000 sends awaited together (as the `send-hopping-count`
 *   benchmark feeds its job);
 * - `sendBatch`: sent with `app.sendBatch`, 1,000 records a call, each call awaited;
 *
 * into a topic of the embedded broker (`memoryTransport()`, keeping every record, as by default)
 * that no task reads, so only the input path is timed: serializing, partitioning, appending to
 * the log and each send's outcome. Rounds alternate the contenders; medians per record are
 * reported, wall clock, CPU time (GC threads included) and the main thread's GC pauses, with each contender's cost beyond
 * `json`. JSON on stdout.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createApp, memoryTransport, silentLogger } from '@eddy/core';
import { cpuSince, sendAll, SENDS_IN_FLIGHT } from './engine.js';
import { buildWorkload, defaultWorkload, INPUT_TOPIC } from './workload.js';

type Contender = 'json' | 'send' | 'sendBatch';
const CONTENDERS: readonly Contender[] = ['json', 'send', 'sendBatch'];

interface HostRecord {
  readonly value: unknown;
  readonly key: string;
  readonly timestamp: number;
}

/** One timed pass of `contender` over `records`, on a fresh broker and app; ns per record. */
async function pass(contender: Contender, records: readonly HostRecord[]): Promise<{ wallNs: number; cpuNs: number; gcNs: number; written: number }> {
  const transport = memoryTransport({ defaultPartitions: 1 });
  await transport.ensureTopics([{ name: INPUT_TOPIC, partitions: 1 }]);
  const app = createApp({ id: 'send-overhead', transport, idleTimeout: false, logger: silentLogger });
  // A pipeline that does not read the input topic: the app must have one to start.
  app.from('unused').to('unused-out');
  await app.start();
  globalThis.gc?.();
  let gcMs = 0;
  const gcs = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  });
  gcs.observe({ entryTypes: ['gc'] });
  const cpu = process.cpuUsage();
  const started = performance.now();
  let encodedBytes = 0;
  if (contender === 'json') {
    for (const { value } of records) encodedBytes += Buffer.from(JSON.stringify(value), 'utf8').length;
  } else if (contender === 'send') {
    await sendAll(app, records);
  } else {
    for (let from = 0; from < records.length; from += SENDS_IN_FLIGHT) await app.sendBatch(INPUT_TOPIC, records.slice(from, from + SENDS_IN_FLIGHT));
  }
  const wallNs = ((performance.now() - started) * 1e6) / records.length;
  const cpuNs = (cpuSince(cpu) * 1e6) / records.length;
  // The collections' entries reach the observer a while later (after timers, not in the next turn).
  await new Promise((resolve) => setTimeout(resolve, 50));
  gcs.disconnect();
  const gcNs = (gcMs * 1e6) / records.length;
  const written = contender === 'json' ? (encodedBytes > 0 ? records.length : 0) : transport.records(INPUT_TOPIC).length;
  await app.stop();
  return { wallNs, cpuNs, gcNs, written };
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

const { values: args } = parseArgs({ options: { records: { type: 'string', default: '1000000' }, rounds: { type: 'string', default: '3' } } });
const count = Number(args.records);
const rounds = Number(args.rounds);
if (!Number.isInteger(count) || count < SENDS_IN_FLIGHT || !Number.isInteger(rounds) || rounds < 1) throw new Error('--records (at least 1000) and --rounds must be positive integers');

// What a host has in hand: values as objects, keys as text.
const decoder = new TextDecoder();
const records: HostRecord[] = buildWorkload({ ...defaultWorkload, records: count }).input.map((record) => ({
  value: JSON.parse(decoder.decode(record.value!)) as unknown,
  key: decoder.decode(record.key!),
  timestamp: record.timestamp,
}));

const samples = new Map<Contender, Array<{ wallNs: number; cpuNs: number; gcNs: number }>>(CONTENDERS.map((contender) => [contender, []]));
const checks: Array<{ what: string; ok: boolean }> = [];
// One warm-up round, then the timed ones.
for (let round = 0; round <= rounds; round++) {
  for (const contender of CONTENDERS) {
    const { wallNs, cpuNs, gcNs, written } = await pass(contender, records);
    if (round === 0) continue;
    samples.get(contender)!.push({ wallNs, cpuNs, gcNs });
    if (round === 1) checks.push({ what: `${contender}: every record ${contender === 'json' ? 'encoded' : 'in the log'}`, ok: written === records.length });
  }
}

const results = Object.fromEntries(
  CONTENDERS.map((contender) => {
    const runs = samples.get(contender)!;
    return [contender, { wallNsPerRecord: Math.round(median(runs.map((run) => run.wallNs))), cpuNsPerRecord: Math.round(median(runs.map((run) => run.cpuNs))), gcNsPerRecord: Math.round(median(runs.map((run) => run.gcNs))), rounds: runs.map((run) => ({ wallNs: Math.round(run.wallNs), cpuNs: Math.round(run.cpuNs), gcNs: Math.round(run.gcNs) })) }];
  }),
);
const json = results.json!;
const beyondJson = Object.fromEntries(
  (['send', 'sendBatch'] as const).map((contender) => {
    const result = results[contender]!;
    return [contender, { wallNs: result.wallNsPerRecord - json.wallNsPerRecord, cpuNs: result.cpuNsPerRecord - json.cpuNsPerRecord, wallRatioToJson: Number(((result.wallNsPerRecord - json.wallNsPerRecord) / json.wallNsPerRecord).toFixed(2)) }];
  }),
);
process.stdout.write(`${JSON.stringify({ tool: 'send-overhead', records: records.length, rounds, inFlight: SENDS_IN_FLIGHT, results, beyondJson, checks }, null, 2)}\n`);
if (checks.some((check) => !check.ok)) process.exitCode = 1;
