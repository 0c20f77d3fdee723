/**
 * The embedded service as its own process (`main.js`), for tests that stop it the hard way: start
 * it on a state dir, wait until it serves, and stop it with a signal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** A running service process. */
export interface ServiceProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Sends `signal` and resolves with how the process ended. */
  stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What it wrote to stderr so far. */
  stderr(): string;
}

/** The built entry point, whether this module runs built or from source (tests). */
const main = fileURLToPath(new URL('./main.js', import.meta.url).href.replace('/examples/src/', '/examples/dist/'));

/** Starts `main.js` on a free port with `stateDir`; resolves once it serves HTTP. */
export function startServiceProcess(stateDir: string): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [main, '0', stateDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const url = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
      if (url) {
        resolve({
          url,
          child,
          stderr: () => stderr,
          stop: (signal) => {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            return exited;
          },
        });
      }
    });
    void exited.then(({ code, signal }) => reject(new Error(`the service exited (${code ?? signal}) before it served: ${stderr}`)));
  });
}
