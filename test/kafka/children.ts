/**
 * Child processes for the crash tests: start a fixture app and wait for its 'started' line, and
 * kill one with SIGKILL (no chance to commit or clean up).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { uniqueName } from './broker.ts';
import { createTopics, gatherTopic, testProducer, type TestProducer } from './helpers.ts';

/** Starts `node <fixture> ...args`; `started` resolves on its 'started' line, rejects if it exits first. */
export function startChild(fixture: string, args: string[]): { child: ChildProcess; started: Promise<void> } {
  const child = spawn(process.execPath, [fixture, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const started = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('started') && resolve());
    child.on('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}) before starting: ${stderr}`)));
  });
  return { child, started };
}

/** What a named fixture reports on its `metrics` lines. */
export interface MemberMetrics {
  tasks: number;
  recordsIn: number;
  restoredRecords: number;
  recordsHandedOff: number;
  lateRecords: number;
  /** Reported by fixtures/rekey-sum-app.mjs. */
  duplicatesDropped?: number;
}

/** A running named fixture (a member of the group): its process, its last metrics line, its `late` lines, and what it wrote to stderr. */
export interface Member {
  name: string;
  child: ChildProcess;
  started: Promise<void>;
  metrics: () => MemberMetrics | undefined;
  late: string[];
  stderr: () => string;
}

/** Starts a fixture (the windowed one by default) as member `name` (its client id) with `args`; it reports metrics as it runs. */
export function startMember(name: string, args: string[], fixture = windowedFixture): Member {
  const child = spawn(process.execPath, [fixture, ...args, '--name', name], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let pending = '';
  let metrics: MemberMetrics | undefined;
  const late: string[] = [];
  let markStarted!: () => void;
  let failStart!: (error: Error) => void;
  const started = new Promise<void>((resolve, reject) => {
    markStarted = resolve;
    failStart = reject;
  });
  started.catch(() => undefined);
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout!.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (line === 'started') markStarted();
      else if (line.startsWith('metrics ')) metrics = JSON.parse(line.slice('metrics '.length)) as MemberMetrics;
      else if (line.startsWith('late ')) late.push(line.slice('late '.length));
    }
  });
  child.on('exit', (code, signal) => failStart(new Error(`${name} exited (${code ?? signal}) before starting: ${stderr}`)));
  return { name, child, started, metrics: () => metrics, late, stderr: () => stderr };
}

/** SIGKILLs a child and resolves once it has exited. */
export function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** The crash tests' input: readings with exact per-window sums to check the output against. */
export interface SensorInput {
  readonly messages: Array<{ key: string; value: string }>;
  /** Sum of values per window, `sensor@windowStart` for tumbling 5 s windows. */
  readonly expected: Map<string, number>;
}

/**
 * 12 sensors x 500 readings, 100 ms apart in event time, value = the reading's index (so sums are
 * exact), then one far-future reading per sensor that closes its last windows.
 */
export function sensorInput(): SensorInput {
  const sensors = Array.from({ length: 12 }, (_, index) => `sensor-${index}`);
  const expected = new Map<string, number>();
  const messages: Array<{ key: string; value: string }> = [];
  for (let step = 0; step < 500; step++) {
    for (const sensor of sensors) {
      const ts = step * 100;
      const window = `${sensor}@${Math.floor(ts / 5000) * 5000}`;
      expected.set(window, (expected.get(window) ?? 0) + step);
      messages.push({ key: sensor, value: JSON.stringify({ sensor, ts, value: step }) });
    }
  }
  for (const sensor of sensors) messages.push({ key: sensor, value: JSON.stringify({ sensor, ts: 10_000_000, value: 0 }) });
  return { messages, expected };
}

/** A crash test's world: topics, input, a producer, the output being gathered, and the fixture's arguments. */
export interface CrashSetup extends SensorInput {
  readonly inTopic: string;
  readonly producer: TestProducer;
  readonly output: Awaited<ReturnType<typeof gatherTopic>>;
  /** Arguments of fixtures/windowed-app.mjs for this app, guarantee and a 6 s session timeout. */
  readonly args: string[];
  /** Stops the producer and the output reader, and removes the state directory. */
  close(): Promise<void>;
}

/** The windowed fixture the crash tests run as a child process. */
export const windowedFixture = fileURLToPath(new URL('./fixtures/windowed-app.mjs', import.meta.url));

/**
 * Sets up a crash test: a 3-partition input and a 1-partition output topic, the sensor input, a
 * connected producer, a read_committed reader of the output, and the fixture's arguments. The
 * group drops a killed instance after 6 s instead of 30.
 */
export async function crashSetup(brokers: string[], name: string, guarantee: 'at-least-once' | 'exactly-once'): Promise<CrashSetup> {
  const appId = uniqueName(name);
  const inTopic = `${appId}-in`;
  const outTopic = `${appId}-out`;
  const stateDir = await mkdtemp(join(tmpdir(), `eddy-${name}-`));
  await createTopics(brokers, [
    { name: inTopic, partitions: 3 },
    { name: outTopic, partitions: 1 },
  ]);
  const producer = testProducer(brokers);
  const output = await gatherTopic(brokers, outTopic);
  return {
    ...sensorInput(),
    inTopic,
    producer,
    output,
    args: [brokers.join(','), appId, inTopic, outTopic, stateDir, '--guarantee', guarantee, '--session-timeout', '6s'],
    close: async () => {
      await output.stop();
      await producer.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}
