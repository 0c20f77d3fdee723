/**
 * CPU profiles: record one around the measured repetitions (V8's sampling profiler through
 * `node:inspector`, the same data `node --cpu-prof` writes), and summarize any `.cpuprofile` into
 * the functions and files with the most self time.
 *
 * CLI: `node bench/dist/profile.js <file.cpuprofile> [top]` prints the summary as JSON.
 */
import { readFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The subset of the DevTools `Profiler.Profile` this module reads. */
export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }; hitCount?: number; children?: number[] }>;
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileEntry {
  /** `file:function:line` (line 1-based, in the compiled .js), or a V8 pseudo-frame like `(garbage collector)`. */
  readonly frame: string;
  readonly selfPct: number;
  readonly selfMs: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly samples: number;
  /** Share of samples where the thread was idle (waiting on the event loop). */
  readonly idlePct: number;
  /** Functions by self time (idle excluded from the ranking, included in the percentages' base). */
  readonly top: ProfileEntry[];
  /** Self time summed per source file (node_modules packages and Eddy packages shortened). */
  readonly byFile: ProfileEntry[];
  /** Self time in broad buckets: Eddy runtime, RxJS, JSON/TextEncoder builtins, GC, ... */
  readonly byArea: ProfileEntry[];
}

/** V8's sampling profiler on this thread, started and stopped around the code to profile. */
export class Profiler {
  readonly #session = new Session();

  /** Connects to the inspector and sets the sampling interval (microseconds). */
  async open(samplingIntervalUs = 250): Promise<void> {
    this.#session.connect();
    await this.#session.post('Profiler.enable');
    await this.#session.post('Profiler.setSamplingInterval', { interval: samplingIntervalUs });
  }

  async start(): Promise<void> {
    await this.#session.post('Profiler.start');
  }

  async stop(): Promise<CpuProfile> {
    const { profile } = await this.#session.post('Profiler.stop');
    return profile as unknown as CpuProfile;
  }

  close(): void {
    this.#session.disconnect();
  }
}

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** A short, stable name for a script URL. */
export function shortFile(url: string): string {
  if (url === '') return '';
  let path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) return path.slice(modules + '/node_modules/'.length);
  if (path.startsWith(repoRoot)) path = relative(repoRoot, path);
  return path;
}

function area(file: string, functionName: string): string {
  if (file === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(program)' || functionName === '(idle)') return functionName;
    return `V8 builtins/native (${functionName || 'anonymous'})`;
  }
  if (file.startsWith('rxjs/')) return 'rxjs';
  if (file.startsWith('node:')) return 'node internals';
  const eddy = /^packages\/([^/]+)\/dist\/(.+)$/.exec(file);
  if (eddy) {
    const [, pkg, rest] = eddy;
    const dir = rest!.includes('/') ? rest!.slice(0, rest!.lastIndexOf('/')) : rest!.replace(/\.js$/, '');
    return `@eddy/${pkg} ${dir}`;
  }
  if (file.startsWith('bench/')) return 'bench harness';
  return file;
}

/** Self time (µs) of each node of one profile. */
function selfTimes(recorded: CpuProfile): Map<number, number> {
  const selfUs = new Map<number, number>();
  const samples = recorded.samples ?? [];
  const deltas = recorded.timeDeltas ?? [];
  if (samples.length > 0 && deltas.length === samples.length) {
    // Each sample's time is the gap to the next sample (the last one gets the mean).
    const mean = (recorded.endTime - recorded.startTime) / samples.length;
    for (let index = 0; index < samples.length; index++) {
      const duration = index + 1 < deltas.length ? deltas[index + 1]! : mean;
      selfUs.set(samples[index]!, (selfUs.get(samples[index]!) ?? 0) + Math.max(0, duration));
    }
  } else {
    const perHit = (recorded.endTime - recorded.startTime) / Math.max(1, recorded.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0));
    for (const node of recorded.nodes) selfUs.set(node.id, (node.hitCount ?? 0) * perHit);
  }
  return selfUs;
}

/** Self time per function, per file and per area over one or more profiles; `top` entries each. */
export function summarize(profiles: CpuProfile | readonly CpuProfile[], top = 25): ProfileSummary {
  const list = Array.isArray(profiles) ? (profiles as readonly CpuProfile[]) : [profiles as CpuProfile];
  let totalMs = 0;
  let sampleCount = 0;
  let totalUs = 0;
  const byFrame = new Map<string, number>();
  const byFile = new Map<string, number>();
  const byArea = new Map<string, number>();
  let idleUs = 0;
  const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us);
  for (const recorded of list) {
    totalMs += (recorded.endTime - recorded.startTime) / 1000;
    sampleCount += recorded.samples?.length ?? 0;
    const selfUs = selfTimes(recorded);
    for (const value of selfUs.values()) totalUs += value;
    for (const node of recorded.nodes) {
      const us = selfUs.get(node.id) ?? 0;
      if (us === 0) continue;
      const { functionName, url, lineNumber } = node.callFrame;
      if (functionName === '(idle)') {
        idleUs += us;
        continue;
      }
      const file = shortFile(url);
      const frame = file === '' ? functionName || '(anonymous)' : `${file}:${functionName || '(anonymous)'}:${lineNumber + 1}`;
      add(byFrame, frame, us);
      add(byFile, file === '' ? '(native)' : file, us);
      add(byArea, area(file, functionName), us);
    }
  }
  const rank = (map: Map<string, number>, count: number): ProfileEntry[] =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, count)
      .map(([frame, us]) => ({ frame, selfPct: round((100 * us) / totalUs, 2), selfMs: round(us / 1000, 1) }));
  return {
    totalMs: round(totalMs, 1),
    samples: sampleCount,
    idlePct: round((100 * idleUs) / totalUs, 2),
    top: rank(byFrame, top),
    byFile: rank(byFile, Math.min(top, 15)),
    byArea: rank(byArea, Math.min(top, 15)),
  };
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, count] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node bench/dist/profile.js <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const recorded = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  process.stdout.write(`${JSON.stringify(summarize(recorded, count ? Number(count) : 25), null, 2)}\n`);
}
