/**
 * Child processes for the crash tests: start a fixture app and wait for its 'started' line, and
 * kill one with SIGKILL (no chance to commit or clean up).
 */
import { spawn, type ChildProcess } from 'node:child_process';

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
