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
