/**
 * Where the Kafka job's time and memory go (`node bench/dist/kafka-profile.js [options]`): the
 * job of kafka-eos.ts, or a part of it, on a real broker, once, with a CPU profile or an
 * allocation profile of this process. A tool for finding what to make faster, not a benchmark:
 * the profilers slow the run, so its records/s compare only with runs of the same options.
 * JSON on stdout.
 *
 * - `--topic T`: read an existing input topic; otherwise one is made with `--records` records
 *   over `--partitions` partitions (kafka-input.ts).
 * - `--part job|parse|read`: the whole job of kafka-job.ts (keyBy → `--job hopping` (10s, 1s),
 *   the default, or `tumbling` (10s) → count → onClose → to);
 *   or only reading and parsing the values (a filter that drops everything); or only reading
 *   (the values as bytes, no parsing).
 * - `--profile cpu|alloc|none`: V8's sampling CPU profiler (top functions, files and areas by
 *   self time, see profile.ts), or its sampling heap profiler counting what the collector has
 *   already freed too (bytes allocated per input record, by allocating function).
 * - `--guarantee`, `--commit-interval`: the app's (createApp options).
 *
 * Always reported: records/s from `start()` resolving until the last record is read (and, for the
 * job, the last window closed), this process's CPU time and garbage-collection time over the run,
 * how busy its event loop was until the last record or window (what is left is time spent
 * waiting for the broker), the records in each topic the run wrote, and the app's counts of
 * records read, handed off, dropped as replayed, and of failed commits.
 */
import { Session } from 'node:inspector/promises';
import { cpus } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { bytes, createApp, silentLogger, type App, type Duration, type MetricsSnapshot } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { benchInput, benchKafka, createTopic, produceInput, topicRecords, type BenchKafka } from './kafka-input.js';
import { defineJob, timeUntilSettled, type JobKind } from './kafka-job.js';
import { Profiler, shortFile, summarize } from './profile.js';

const { values: args } = parseArgs({
  options: {
    topic: { type: 'string' },
    records: { type: 'string', default: '1000000' },
    partitions: { type: 'string', default: '4' },
    part: { type: 'string', default: 'job' },
    job: { type: 'string', default: 'hopping' },
    profile: { type: 'string', default: 'cpu' },
    guarantee: { type: 'string', default: 'at-least-once' },
    'commit-interval': { type: 'string', default: '1s' },
  },
});
const partitions = Number(args.partitions);
const part = args.part as 'job' | 'parse' | 'read';
const job = args.job as JobKind;
const profile = args.profile as 'cpu' | 'alloc' | 'none';
const guarantee = args.guarantee as 'at-least-once' | 'exactly-once';
if (!['job', 'parse', 'read'].includes(part)) throw new Error(`--part: job, parse or read, not ${part}`);
if (!['tumbling', 'hopping'].includes(job)) throw new Error(`--job: tumbling or hopping, not ${job}`);
if (!['cpu', 'alloc', 'none'].includes(profile)) throw new Error(`--profile: cpu, alloc or none, not ${profile}`);
const log = (message: string) => process.stderr.write(`[kafka-profile] ${message}\n`);
const runId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** V8's sampling heap profile, as far as this tool reads it. */
interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

/** The app of the chosen part; `progress` and `settled` tell from its metrics when it has seen everything (see timeUntilSettled). */
function buildApp(brokers: string[], topic: string, total: number): { app: App; progress: (metrics: MetricsSnapshot) => number; settled: (metrics: MetricsSnapshot) => boolean } {
  const id = `kafka-profile-${runId}`;
  const app = createApp({
    id,
    transport: kafkaTransport({ brokers, logLevel: 'nothing', logger: silentLogger, defaultPartitions: partitions }),
    guarantee,
    idleTimeout: false,
    commitInterval: args['commit-interval'] as Duration,
    logger: silentLogger,
  });
  if (part === 'job') {
    defineJob(app, job, topic, `${id}-out`);
    return { app, progress: (metrics) => metrics.windowsClosed, settled: (metrics) => metrics.recordsIn >= total };
  }
  const source = part === 'read' ? app.from<Uint8Array>(topic, { value: bytes() }) : app.from<unknown>(topic);
  source.filter(() => false).to(`${id}-out`);
  return { app, progress: (metrics) => metrics.recordsIn, settled: (metrics) => metrics.recordsIn >= total };
}

/** Bytes allocated per function (`file:function:line`), largest first. */
function allocationSites(root: HeapNode, records: number, top: number): { bytesPerRecord: number; sites: Array<{ site: string; bytesPerRecord: number }> } {
  const sites = new Map<string, number>();
  let total = 0;
  const walk = (node: HeapNode, parent: string) => {
    const { url, functionName, lineNumber } = node.callFrame;
    const name = `${shortFile(url)}:${functionName}:${lineNumber + 1}`;
    // Builtins (no file) are named by their caller: `:slice:0 <- state/memory.js:write:70`.
    const site = url === '' ? `${name} <- ${parent}` : name;
    total += node.selfSize;
    sites.set(site, (sites.get(site) ?? 0) + node.selfSize);
    for (const child of node.children) walk(child, name);
  };
  walk(root, '');
  const perRecord = (bytes: number) => Math.round(bytes / records);
  return {
    bytesPerRecord: perRecord(total),
    sites: [...sites]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([site, bytes]) => ({ site, bytesPerRecord: perRecord(bytes) })),
  };
}

/**
 * The records in each topic this run made (output, changelog, repartition, dead letters), by name
 * after the tag: what was written to it, plus, under exactly-once, transaction markers.
 */
async function topicsWritten(admin: BenchKafka['admin'], tag: string): Promise<Record<string, number>> {
  const written: Record<string, number> = {};
  for (const topic of (await admin.listTopics()).filter((name) => name.includes(tag)).sort()) {
    written[topic.slice(topic.indexOf(tag) + tag.length + 1)] = await topicRecords(admin, topic);
  }
  return written;
}

let bench: BenchKafka | undefined;
try {
  bench = await benchKafka('eddy-profile', log);
  const { brokers, admin } = bench;
  let topic = args.topic;
  let total: number;
  if (topic === undefined) {
    topic = `kafka-profile-${runId}-in`;
    await createTopic(admin, topic, partitions);
    const input = benchInput(Number(args.records), partitions);
    await produceInput(brokers, topic, input);
    total = input.records;
    log(`produced ${total} records to ${topic}`);
  } else {
    total = await topicRecords(admin, topic);
  }

  let gcMs = 0;
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  });
  const profiler = new Profiler();
  const heap = new Session();
  const { app, progress, settled } = buildApp(brokers, topic, total);
  await app.start();
  if (profile === 'cpu') {
    await profiler.open();
    await profiler.start();
  } else if (profile === 'alloc') {
    heap.connect();
    await heap.post('HeapProfiler.enable');
    await heap.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  }
  gcObserver.observe({ entryTypes: ['gc'] });
  // Done: everything read, and the progress count unchanged for 3 s (timed at its last change).
  const { ms, cpuMs, eventLoopUtilization } = await timeUntilSettled(app, progress, settled);
  gcObserver.disconnect();
  const document: Record<string, unknown> = {
    tool: 'kafka-profile',
    part,
    ...(part === 'job' ? { job } : {}),
    guarantee,
    commitInterval: args['commit-interval'],
    records: total,
    partitions,
    profile,
    machine: { node: process.version, cpus: cpus().length },
    recordsPerSecond: Math.round((total * 1000) / ms),
    // Up to the last change (as all figures here).
    cpuMsPerMillionRecords: Math.round(cpuMs * (1_000_000 / total)),
    // Includes the 3 s wait at the end (idle, so it adds little).
    gcMsPerMillionRecords: Math.round(gcMs * (1_000_000 / total)),
    // The share of the run the event loop was busy (not waiting for I/O).
    eventLoopUtilization: Number(eventLoopUtilization.toFixed(3)),
  };
  // Whether records went through the repartition topic or were handed off, and any replayed (dropped) or failed commits.
  const { recordsIn, recordsHandedOff, duplicatesDropped, commitFailures } = app.metrics();
  document.metrics = { recordsIn, recordsHandedOff, duplicatesDropped, commitFailures };
  if (profile === 'cpu') {
    document.cpu = summarize(await profiler.stop(), 30);
    profiler.close();
  } else if (profile === 'alloc') {
    const { profile: sampled } = (await heap.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: HeapNode } };
    heap.disconnect();
    document.allocation = allocationSites(sampled.head, total, 30);
  }
  await app.stop();
  document.topicRecords = await topicsWritten(admin, runId);
  process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
} finally {
  // What this run made (not a topic given with --topic), also when it failed.
  await bench?.close(runId);
}
