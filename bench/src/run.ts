/**
 * The benchmark runner (`npm run bench`, or `node bench/dist/run.js [benchmarks...] [options]`).
 *
 * Every benchmark gets its own child process (`--expose-gc`), which builds the same seeded input
 * once (and reports its hash) and keeps its own JIT state and heap. The runner then goes round by
 * round: in each round every benchmark runs once, strictly one after another (never in parallel),
 * with a full GC before each run; the first round(s) are warm-up. Interleaving spreads outside
 * load over all contenders, and ratios are taken within a round, then the median over rounds.
 *
 * Output: one JSON document on stdout (machine, config, results, ratios, targets, output checks),
 * also written to `bench/results/<name>.json`; progress on stderr. Exit code 1 when contenders
 * that must agree produced different windows (the speed of a wrong answer means nothing).
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { benchmarks, collectGarbage, gcAvailable, inputFor, isEngine, median, profileRuns, result, runOnce, type BenchmarkDef, type BenchmarkResult, type Sample } from './benchmarks.js';
import { TABLE_KEYS, WITHIN_DEFAULT_RECORDS, WITHIN_KEYS, WITHIN_PER_KEY_PER_SECOND, type JoinOutput, type WithinExpectation } from './joins.js';
import type { RunOutput } from './windowing.js';
import { defaultWorkload } from './workload.js';

interface Options {
  benchmarks: BenchmarkDef[];
  records: number;
  /** Input records (both sides) of the windowed stream–stream join benchmarks. */
  withinRecords: number;
  warmup: number;
  repetitions: number;
  appendBatch: number;
  maxBatchSize: number;
  /** After measuring, profile extra runs of the selected engine benchmarks (V8 sampling profiler). */
  profile: boolean;
  /** Also run the children under `node --cpu-prof` (whole-process profiles in results/cpu-prof/). */
  cpuProf: boolean;
  name: string | undefined;
}

/** Extra engine runs recorded under the profiler with --profile (after the measured rounds). */
const PROFILE_RUNS = 2;

const DEFAULTS = { records: 200_000, withinRecords: WITHIN_DEFAULT_RECORDS, warmup: 1, repetitions: 5, appendBatch: 10_000, maxBatchSize: 500 };

const usage = `usage: node bench/dist/run.js [benchmarks...] [options]

benchmarks  names or prefixes (default: all): ${benchmarks.map((b) => b.name).join(', ')}
            also groups: engine, baseline, naive, hopping, tumbling, count, collect, join
  --records N        regular input records per run (default ${DEFAULTS.records}; 200k, 1e6 work); the table join: stream records
  --within-records N the windowed stream–stream joins: input records, both sides together (default ${DEFAULTS.withinRecords})
  --reps N           measured rounds (each runs every benchmark once); medians reported (default ${DEFAULTS.repetitions})
  --warmup N         unmeasured warm-up rounds (default ${DEFAULTS.warmup})
  --append-batch N   engine: records per transport.append, idle awaited after each (default ${DEFAULTS.appendBatch})
  --max-batch N      engine: memoryTransport maxBatchSize, records per task batch (default ${DEFAULTS.maxBatchSize})
  --profile          after measuring, CPU-profile ${PROFILE_RUNS} more runs of each engine benchmark:
                     results/<bench>.cpuprofile + top self time in the JSON
  --cpu-prof         run the children under node --cpu-prof too (results/cpu-prof/)
  --name NAME        results file name (default: "all", or the single benchmark's name)
  --list             list the benchmarks

node bench/dist/run.js kafka-eos [--records N] [--reps N] [--partitions N] [--prev DIR] [--no-previous] [--no-jobs] [--no-restore]
            the Kafka benchmark (kafka-eos.ts) on its own: a broker (KAFKA_BROKERS, or one it starts), minutes
`;

function count(text: string | undefined, flag: string): number {
  const match = text ? /^(\d+(?:\.\d+)?(?:e\d+)?)([km]?)$/i.exec(text.trim()) : null;
  if (!match) throw new Error(`${flag}: expected a count like 300000, 300k or 1e6, got ${JSON.stringify(text)}`);
  const scale = { '': 1, k: 1e3, m: 1e6 }[match[2]!.toLowerCase() as '' | 'k' | 'm'];
  const value = Math.round(Number(match[1]) * scale);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${flag}: invalid count ${text}`);
  return value;
}

function select(patterns: string[]): BenchmarkDef[] {
  if (patterns.length === 0 || patterns.includes('all')) return [...benchmarks];
  const chosen = new Set<BenchmarkDef>();
  for (const pattern of patterns) {
    const exact = benchmarks.filter((b) => b.name === pattern);
    const matches = exact.length > 0 ? exact : benchmarks.filter(
      (b) =>
        b.name === pattern ||
        b.name.startsWith(pattern) ||
        b.contender === pattern ||
        (pattern === 'join' && b.family !== 'window') ||
        (b.family === 'window' && (b.shape.kind === pattern || b.aggregation === pattern)),
    );
    if (matches.length === 0) throw new Error(`no benchmark matches ${JSON.stringify(pattern)}; try --list`);
    for (const match of matches) chosen.add(match);
  }
  return benchmarks.filter((b) => chosen.has(b));
}

function parse(argv: string[]): Options | 'list' | 'help' {
  const patterns: string[] = [];
  const options: Omit<Options, 'benchmarks'> = { ...DEFAULTS, profile: false, cpuProf: false, name: undefined };
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++index];
    switch (flag) {
      case '--records':
        options.records = count(value(), flag);
        break;
      case '--within-records':
        options.withinRecords = count(value(), flag);
        break;
      case '--reps':
      case '--repetitions':
        options.repetitions = count(value(), flag);
        break;
      case '--warmup':
        options.warmup = count(value(), flag);
        break;
      case '--append-batch':
        options.appendBatch = count(value(), flag);
        break;
      case '--max-batch':
        options.maxBatchSize = count(value(), flag);
        break;
      case '--bench':
        patterns.push(...(value() ?? '').split(',').filter(Boolean));
        break;
      case '--profile':
        options.profile = true;
        break;
      case '--cpu-prof':
        options.cpuProf = true;
        break;
      case '--name':
        options.name = value();
        break;
      case '--list':
        return 'list';
      case '--help':
      case '-h':
        return 'help';
      default:
        if (flag.startsWith('-')) throw new Error(`unknown option ${flag}\n\n${usage}`);
        patterns.push(...flag.split(',').filter(Boolean));
    }
  }
  if (options.records < 1) throw new Error('--records must be at least 1');
  if (options.withinRecords < 2) throw new Error('--within-records must be at least 2');
  if (options.repetitions < 1) throw new Error('--reps must be at least 1');
  if (options.appendBatch < 1 || options.maxBatchSize < 1) throw new Error('--append-batch and --max-batch must be at least 1');
  if (options.name !== undefined && !/^[A-Za-z0-9._-]+$/.test(options.name)) throw new Error(`--name: letters, digits, '.', '_' and '-' only, got ${JSON.stringify(options.name)}`);
  return { ...options, benchmarks: select(patterns) };
}

const resultsDir = fileURLToPath(new URL('../results/', import.meta.url));
const log = (message: string) => process.stderr.write(`${message}\n`);

// --- workers: one child process per benchmark ---------------------------------------------------

interface WorkerInit {
  readonly benchmark: string;
  readonly records: number;
  readonly withinRecords: number;
  readonly appendBatch: number;
  readonly maxBatchSize: number;
}

type Command = { readonly cmd: 'run' } | { readonly cmd: 'profile'; readonly runs: number; readonly file: string } | { readonly cmd: 'exit' };

type Reply =
  | { readonly type: 'ready'; readonly inputHash: string; readonly records: number; readonly gc: boolean; readonly expected?: WithinExpectation }
  | { readonly type: 'sample'; readonly sample: Sample; readonly heapUsedMB: number }
  | { readonly type: 'profile'; readonly profile: NonNullable<BenchmarkResult['profile']> }
  | { readonly type: 'error'; readonly message: string };

/** The child side: builds the input once, then runs what the parent asks, one command at a time. */
async function workerMain(init: WorkerInit): Promise<void> {
  const benchmark = benchmarks.find((b) => b.name === init.benchmark);
  if (!benchmark) throw new Error(`unknown benchmark ${init.benchmark}`);
  const workload = inputFor(benchmark, init);
  const send = (reply: Reply) =>
    new Promise<void>((resolve, reject) => process.send!(reply, (error: Error | null) => (error ? reject(error) : resolve())));
  let queue = Promise.resolve();
  process.on('message', (command: Command) => {
    queue = queue.then(async () => {
      try {
        switch (command.cmd) {
          case 'run': {
            collectGarbage();
            const sample = await runOnce(benchmark, workload, init);
            await send({ type: 'sample', sample, heapUsedMB: Math.round(process.memoryUsage().heapUsed / 2 ** 20) });
            break;
          }
          case 'profile':
            await send({ type: 'profile', profile: await profileRuns(benchmark, workload, init, command.runs, command.file) });
            break;
          case 'exit':
            process.disconnect();
            break;
        }
      } catch (error) {
        await send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
        process.exit(1);
      }
    });
  });
  await send({ type: 'ready', inputHash: workload.inputHash, records: workload.records, gc: gcAvailable, ...(workload.expected ? { expected: workload.expected } : {}) });
}

/** The parent side of one benchmark's child process. */
class Worker {
  readonly #child: ChildProcess;
  #pending: { resolve: (reply: Reply) => void; reject: (error: Error) => void } | undefined;
  #exited: Error | undefined;

  private constructor(readonly benchmark: BenchmarkDef, init: WorkerInit, cpuProf: boolean) {
    const execArgv = ['--expose-gc'];
    if (cpuProf) {
      mkdirSync(`${resultsDir}cpu-prof`, { recursive: true });
      execArgv.push('--cpu-prof', '--cpu-prof-dir', `${resultsDir}cpu-prof`, '--cpu-prof-name', `${init.benchmark}.cpuprofile`);
    }
    this.#child = fork(fileURLToPath(import.meta.url), ['--worker', JSON.stringify(init)], { execArgv, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    // stdout carries the one JSON document: whatever a child prints goes to stderr.
    this.#child.stdout!.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    this.#child.on('message', (reply: Reply) => {
      const pending = this.#pending;
      this.#pending = undefined;
      if (!pending) return;
      if (reply.type === 'error') pending.reject(new Error(`${benchmark.name}: ${reply.message}`));
      else pending.resolve(reply);
    });
    this.#child.on('exit', (code, signal) => {
      this.#exited = new Error(`benchmark ${benchmark.name}: its process exited (${code ?? signal})`);
      this.#pending?.reject(this.#exited);
      this.#pending = undefined;
    });
  }

  static async start(benchmark: BenchmarkDef, init: WorkerInit, cpuProf: boolean): Promise<{ worker: Worker; inputHash: string; records: number; gc: boolean; expected?: WithinExpectation }> {
    const worker = new Worker(benchmark, init, cpuProf);
    const ready = await worker.#next<Extract<Reply, { type: 'ready' }>>();
    return { worker, inputHash: ready.inputHash, records: ready.records, gc: ready.gc, ...(ready.expected ? { expected: ready.expected } : {}) };
  }

  #next<T extends Reply>(command?: Command): Promise<T> {
    if (this.#exited) return Promise.reject(this.#exited);
    const reply = new Promise<T>((resolve, reject) => {
      this.#pending = { resolve: resolve as (reply: Reply) => void, reject };
    });
    if (command) this.#child.send(command);
    return reply;
  }

  run(): Promise<Extract<Reply, { type: 'sample' }>> {
    return this.#next({ cmd: 'run' });
  }

  async profile(runs: number, file: string): Promise<NonNullable<BenchmarkResult['profile']>> {
    return (await this.#next<Extract<Reply, { type: 'profile' }>>({ cmd: 'profile', runs, file })).profile;
  }

  /** Asks the child to leave and waits for it to exit. */
  async close(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.send({ cmd: 'exit' } satisfies Command);
    await exited;
  }

  /** Ends this child (only on failure). */
  kill(): void {
    if (!this.#exited) this.#child.kill();
  }
}

// --- parent: all benchmarks, ratios, checks ----------------------------------------------------

function gitRevision(): { commit: string | undefined; dirty: boolean | undefined } {
  try {
    const cwd = fileURLToPath(new URL('../../', import.meta.url));
    const commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().length > 0;
    return { commit, dirty };
  } catch {
    return { commit: undefined, dirty: undefined };
  }
}

/** Linux CPU pressure (PSI): share of time some runnable task waited for a CPU, over 10 s / 60 s / 300 s. */
function cpuPressure(): { avg10: number; avg60: number; avg300: number } | undefined {
  try {
    const some = readFileSync('/proc/pressure/cpu', 'utf8').split('\n').find((line) => line.startsWith('some '));
    const field = (name: string) => Number(new RegExp(`${name}=([\\d.]+)`).exec(some ?? '')?.[1]);
    const pressure = { avg10: field('avg10'), avg60: field('avg60'), avg300: field('avg300') };
    return Number.isFinite(pressure.avg60) ? pressure : undefined;
  } catch {
    return undefined;
  }
}

/** How busy the machine was: other work on these cores makes every timing slower and noisier. */
function load() {
  return { loadAverage: os.loadavg().map((value) => Math.round(value * 100) / 100), cpuPressurePct: cpuPressure() };
}

function machine() {
  const cpus = os.cpus();
  return {
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.platform()} ${os.release()}`,
    arch: os.arch(),
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim(),
    cpuMHz: cpus[0]?.speed,
    totalMemoryGB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    ...gitRevision(),
    loadAtStart: load(),
  };
}

const ratio = (value: number) => Math.round(value * 1000) / 1000;

interface Target {
  readonly ratio: string;
  /** Wall-clock ratio. */
  readonly value: number;
  readonly met: boolean;
  readonly cpuTimeValue: number;
  readonly metOnCpuTime: boolean;
  readonly target: string;
}

interface RatioDetail {
  /** The reported value: the median over rounds of the ratio within each round. */
  readonly value: number;
  /** The same quotient from the two benchmarks' median times. */
  readonly ofMedians: number;
  /** The ratio within each measured round (both runs of a round are back to back). */
  readonly perRound: number[];
}

type Clock = 'wall' | 'cpu';

/**
 * Every ratio is `time(a) ÷ time(b)` within one round, so that a burst of load from outside hits
 * both sides of a pair; the median over rounds is reported. On wall-clock or on CPU time.
 */
function ratios(results: BenchmarkResult[], clock: Clock) {
  const byName = (name: string) => results.find((result) => result.name === name);
  const times = (result: BenchmarkResult) => (clock === 'wall' ? result.samplesMs : result.cpu.samplesMs);
  const medianOf = (result: BenchmarkResult) => (clock === 'wall' ? result.medianMs : result.cpu.medianMs);
  /** time(a) ÷ time(b) per round: for a = baseline, b = engine that is engine rps ÷ baseline rps. */
  const timeRatio = (a: string, b: string): RatioDetail | undefined => {
    const first = byName(a);
    const second = byName(b);
    if (!first || !second) return undefined;
    const perRound = times(first).map((ms, round) => ratio(ms / times(second)[round]!));
    return { value: ratio(median(perRound)), ofMedians: ratio(medianOf(first) / medianOf(second)), perRound };
  };
  const details = {
    'engineVsBaseline.count': timeRatio('baseline-hopping-count', 'engine-hopping-count'),
    'engineVsBaseline.collect': timeRatio('baseline-hopping-collect', 'engine-hopping-collect'),
    'engineVsBaseline.tumblingCount': timeRatio('baseline-tumbling-count', 'engine-tumbling-count'),
    'hoppingVsTumbling.engine': timeRatio('engine-hopping-count', 'engine-tumbling-count'),
    'hoppingVsTumbling.baseline': timeRatio('baseline-hopping-count', 'baseline-tumbling-count'),
    'naiveVsSliced.count': timeRatio('naive-hopping-count', 'baseline-hopping-count'),
    'naiveVsSliced.collect': timeRatio('naive-hopping-collect', 'baseline-hopping-collect'),
    'sendVsBaseline.count': timeRatio('baseline-hopping-count', 'send-hopping-count'),
    'levelVsMemory.count': timeRatio('send-hopping-count', 'level-hopping-count'),
    'joinVsBaseline.table': timeRatio('baseline-join-table', 'engine-join-table'),
  };
  const value = (name: keyof typeof details) => details[name]?.value;
  const table = {
    engineVsBaseline: { count: value('engineVsBaseline.count'), collect: value('engineVsBaseline.collect'), tumblingCount: value('engineVsBaseline.tumblingCount') },
    hoppingVsTumbling: { engine: value('hoppingVsTumbling.engine'), baseline: value('hoppingVsTumbling.baseline') },
    naiveVsSliced: { count: value('naiveVsSliced.count'), collect: value('naiveVsSliced.collect') },
    sendVsBaseline: { count: value('sendVsBaseline.count') },
    levelVsMemory: { count: value('levelVsMemory.count') },
    joinVsBaseline: { table: value('joinVsBaseline.table') },
  };
  const present = Object.fromEntries(Object.entries(details).filter(([, detail]) => detail !== undefined)) as Record<string, RatioDetail>;
  return { table, details: present };
}

const TARGETS: ReadonlyArray<{ ratio: string; target: string; met: (value: number) => boolean }> = [
  { ratio: 'engineVsBaseline.count', target: '>= 0.5', met: (value) => value >= 0.5 },
  { ratio: 'engineVsBaseline.collect', target: '>= 0.5', met: (value) => value >= 0.5 },
  { ratio: 'hoppingVsTumbling.engine', target: '<= 1.3', met: (value) => value <= 1.3 },
  { ratio: 'sendVsBaseline.count', target: '>= 0.5', met: (value) => value >= 0.5 },
  { ratio: 'levelVsMemory.count', target: '>= 0.5', met: (value) => value >= 0.5 },
  { ratio: 'joinVsBaseline.table', target: '>= 0.5', met: (value) => value >= 0.5 },
];

function targets(wall: Record<string, RatioDetail>, cpu: Record<string, RatioDetail>): Target[] {
  return TARGETS.filter(({ ratio: name }) => wall[name] !== undefined).map(({ ratio: name, target, met }) => ({
    ratio: name,
    value: wall[name]!.value,
    met: met(wall[name]!.value),
    cpuTimeValue: cpu[name]!.value,
    metOnCpuTime: met(cpu[name]!.value),
    target,
  }));
}

const definitions = {
  ratios:
    'wall-clock; each ratio is computed within every measured round (the two runs are back to back) and the median over rounds is reported. ratiosCpuTime: the same on CPU time (user + system of the process), which other processes competing for the cores hardly affect. ratioDetails: per-round values and the quotient of the medians, for both.',
  engineVsBaseline: 'engine records/s ÷ sliced hand-loop records/s on the same input (hopping 10s/1s; tumblingCount: tumbling 10s). Target ≥ 0.5.',
  hoppingVsTumbling: 'per-record time of hopping(10s, 1s).count() ÷ per-record time of tumbling(10s).count() (= tumbling rps ÷ hopping rps). Target for the engine ≤ 1.3.',
  naiveVsSliced: 'per-record time of the naive hand loop (record added to all 10 overlapping windows) ÷ per-record time of the sliced hand loop (1 slice update per record).',
  sendVsBaseline: 'the engine fed by app.send (1,000 in flight) on the embedded broker, records/s ÷ the sliced hand loop (hopping 10s/1s count). Target ≥ 0.5.',
  levelVsMemory: 'the same job fed by app.send on levelTransport + levelState, records/s ÷ on memoryTransport + memory state. Target ≥ 0.5.',
  joinVsBaseline:
    'table: the stream–table join (10,000-key table loaded first, untimed) records/s ÷ the hand loop (decode key + value, Map lookup, joined object, JSON.stringify + Buffer.from of key and result) records/s. Target ≥ 0.5.',
  joinWithin:
    'the windowed stream–stream join on one fixed input for each within (and grace): nsPerRecord per input record (both sides), nsPerOutput per result, matchesPerRecord results per input record, bufferedPerKey the records of its key (both sides) buffered when a record arrives. Cost per record should follow matchesPerRecord, not bufferedPerKey. marginalNsPerMatch: the slope of ns/record against matches/record between the smallest and largest within of the series (grace 10 s).',
};

interface Check {
  readonly what: string;
  readonly ok: boolean;
  readonly detail: string;
}

function checks(results: BenchmarkResult[]): Check[] {
  const list: Check[] = [];
  for (const family of new Set(results.map((result) => result.family))) {
    const hashes = new Set(results.filter((result) => result.family === family).map((result) => result.inputHash));
    list.push({ what: `same input for every benchmark of family ${family}`, ok: hashes.size <= 1, detail: `input hashes: ${[...hashes].join(', ')}` });
  }
  for (const result of results) {
    if (result.family !== 'window' || result.contender === 'baseline') continue;
    const reference = results.find((other) => other.family === 'window' && other.contender === 'baseline' && other.window === result.window && other.aggregation === result.aggregation);
    if (!reference) continue;
    const a = result.output as RunOutput;
    const b = reference.output as RunOutput;
    const same = a.windows === b.windows && a.total === b.total && a.startHash === b.startHash && a.lateRecords === b.lateRecords;
    list.push({
      what: `${result.name} produced the same windows as ${reference.name}`,
      ok: same,
      detail: `windows ${a.windows} vs ${b.windows}, memberships ${a.total} vs ${b.total}, late records ${a.lateRecords} vs ${b.lateRecords}${a.startHash === b.startHash ? '' : ', window starts differ'}`,
    });
  }
  const engineTable = results.find((result) => result.name === 'engine-join-table');
  const handTable = results.find((result) => result.name === 'baseline-join-table');
  if (engineTable && handTable) {
    const a = engineTable.output as JoinOutput;
    const b = handTable.output as JoinOutput;
    list.push({
      what: 'engine-join-table produced the same results as baseline-join-table',
      ok: a.outputs === b.outputs && a.hash === b.hash,
      detail: `results ${a.outputs} vs ${b.outputs}, hash ${a.hash} vs ${b.hash}`,
    });
  }
  for (const result of results) {
    if (result.family !== 'join-within') continue;
    const output = result.output as JoinOutput;
    list.push({
      what: `${result.name} produced every pair within reach, once (brute force)`,
      ok: output.outputs === output.expectedOutputs && output.hash === output.expectedHash && !output.lateRecords,
      detail: `results ${output.outputs} vs ${output.expectedOutputs} expected, hash ${output.hash} vs ${output.expectedHash}, late records ${output.lateRecords ?? 0}`,
    });
  }
  for (const result of results) {
    if (result.engine && result.engine.metrics.deadLetters! > 0) list.push({ what: `${result.name}: no dead letters`, ok: false, detail: `${result.engine.metrics.deadLetters} dead letters` });
  }
  return list;
}

/** The windowed join benchmarks side by side: cost per input record and per result as `within` grows. */
function joinWithinTable(results: BenchmarkResult[]) {
  const rows = results
    .filter((result) => result.join)
    .map((result) => ({
      benchmark: result.name,
      withinMs: result.join!.withinMs,
      graceMs: result.join!.graceMs,
      inputRecords: result.records,
      outputs: result.join!.outputs,
      matchesPerRecord: result.join!.matchesPerRecord,
      bufferedPerKey: result.join!.bufferedPerKey,
      bufferedTotal: result.join!.bufferedTotal,
      nsPerRecord: result.nsPerRecord,
      nsPerOutput: result.join!.nsPerOutput,
      cpuNsPerRecord: result.cpu.nsPerRecord,
      cpuNsPerOutput: result.join!.cpuNsPerOutput,
    }));
  if (rows.length === 0) return undefined;
  // The within series: the rows sharing the first row's grace.
  const plain = rows.filter((row) => row.graceMs === rows[0]!.graceMs).sort((a, b) => a.withinMs - b.withinMs);
  const first = plain[0];
  const last = plain[plain.length - 1];
  const slope = (key: 'nsPerRecord' | 'cpuNsPerRecord') =>
    first && last && last.matchesPerRecord > first.matchesPerRecord ? Math.round((last[key] - first[key]) / (last.matchesPerRecord - first.matchesPerRecord)) : undefined;
  return { rows, marginalNsPerMatch: slope('nsPerRecord'), marginalCpuNsPerMatch: slope('cpuNsPerRecord') };
}

/**
 * The Kafka benchmark needs a broker and takes minutes, so it is not one of the rounds above:
 * `run.js kafka-eos [options]` hands over to kafka-eos.js, with this process's Node flags.
 */
function runKafkaBenchmark(argv: string[]): Promise<number> {
  const script = fileURLToPath(new URL('./kafka-eos.js', import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, script, ...argv], { stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--worker') {
    await workerMain(JSON.parse(argv[1]!) as WorkerInit);
    return;
  }
  if (argv[0] === 'kafka-eos') {
    process.exitCode = await runKafkaBenchmark(argv.slice(1));
    return;
  }
  const parsed = parse(argv);
  if (parsed === 'help') {
    process.stdout.write(usage);
    return;
  }
  if (parsed === 'list') {
    for (const b of benchmarks) process.stdout.write(`${b.name.padEnd(26)} ${b.description}\n`);
    process.stdout.write(`${'kafka-eos'.padEnd(26)} on its own (run.js kafka-eos [options]): the engine on a Kafka broker vs raw @platformatic/kafka baselines and the previous engine\n`);
    return;
  }
  const options = parsed;
  mkdirSync(resultsDir, { recursive: true });
  const name = options.name ?? (options.benchmarks.length === benchmarks.length ? 'all' : options.benchmarks.length === 1 ? options.benchmarks[0]!.name : 'selection');
  const started = new Date();
  const machineInfo = machine();
  log(
    `eddy bench: ${options.benchmarks.length} benchmark(s), ${options.records} records; ${options.warmup} warm-up + ${options.repetitions} measured rounds, ` +
      'each round runs every benchmark once, one after another, each in its own process',
  );
  const workers: Array<{ worker: Worker; inputHash: string; records: number; gc: boolean; expected?: WithinExpectation }> = [];
  const results: BenchmarkResult[] = [];
  try {
    for (const benchmark of options.benchmarks) {
      workers.push(await Worker.start(benchmark, { benchmark: benchmark.name, records: options.records, withinRecords: options.withinRecords, appendBatch: options.appendBatch, maxBatchSize: options.maxBatchSize }, options.cpuProf));
    }
    const samples = new Map<Worker, Sample[]>(workers.map(({ worker }) => [worker, []]));
    const heap = new Map<Worker, number>();
    const rounds = options.warmup + options.repetitions;
    for (let round = 0; round < rounds; round++) {
      const warm = round < options.warmup;
      const line: string[] = [];
      for (const { worker } of workers) {
        const { sample, heapUsedMB } = await worker.run();
        line.push(`${worker.benchmark.name} ${Math.round(sample.ms)}/${Math.round(sample.cpuMs)}`);
        if (warm) continue;
        samples.get(worker)!.push(sample);
        heap.set(worker, heapUsedMB);
      }
      log(`  ${warm ? 'warm-up' : 'round'} ${warm ? round + 1 : round + 1 - options.warmup}/${warm ? options.warmup : options.repetitions} (wall/CPU ms): ${line.join(', ')}`);
    }
    for (const { worker, inputHash, records, gc, expected } of workers) {
      const benchmark = worker.benchmark;
      let profileSummary: BenchmarkResult['profile'];
      if (options.profile && isEngine(benchmark)) {
        log(`  profiling ${benchmark.name} (${PROFILE_RUNS} more runs)`);
        profileSummary = await worker.profile(PROFILE_RUNS, `${resultsDir}${benchmark.name}.cpuprofile`);
      }
      const entry = result(benchmark, { records, inputHash }, samples.get(worker)!, {
        warmup: options.warmup,
        heapUsedMB: heap.get(worker)!,
        gcBetweenRuns: gc,
        ...(expected ? { expected } : {}),
        ...(profileSummary ? { profile: profileSummary } : {}),
      });
      results.push(entry);
      log(
        `  ${entry.name.padEnd(26)} ${String(entry.recordsPerSecond).padStart(8)} rec/s ${String(entry.nsPerRecord).padStart(6)} ns/rec  median ${entry.medianMs} ms  spread ${(entry.spread * 100).toFixed(1)}%  CPU ${entry.cpu.nsPerRecord} ns/rec  ${'windows' in entry.output ? `windows ${entry.output.windows}` : `results ${entry.output.outputs}`}${entry.join ? ` (${entry.join.matchesPerRecord}/rec, ${entry.join.nsPerOutput} ns/result, CPU ${entry.join.cpuNsPerOutput})` : ''}`,
      );
    }
    for (const { worker } of workers) await worker.close();
  } catch (error) {
    for (const { worker } of workers) worker.kill();
    throw error;
  }
  const wall = ratios(results, 'wall');
  const cpu = ratios(results, 'cpu');
  const targetList = targets(wall.details, cpu.details);
  const checkList = checks(results);
  const joinWithin = joinWithinTable(results);
  const endLoad = load();
  const warnings: string[] = [];
  const pressure = Math.max(machineInfo.loadAtStart.cpuPressurePct?.avg60 ?? 0, endLoad.cpuPressurePct?.avg60 ?? 0);
  if (pressure > 20) {
    warnings.push(
      `the CPUs were contended (PSI cpu some avg60 up to ${pressure}%): other processes competed for the ${machineInfo.cpus} cores, so wall-clock rates are low and noisy; read ratiosCpuTime (and cpu.* of each result) first`,
    );
  }
  if (results.some((entry) => !entry.gcBetweenRuns)) warnings.push('global.gc was unavailable in a benchmark process: no full GC between its runs');
  const document = {
    benchmark: 'eddy',
    startedAt: started.toISOString(),
    durationSeconds: Math.round((Date.now() - started.getTime()) / 100) / 10,
    machine: { ...machineInfo, loadAtEnd: endLoad },
    config: {
      records: options.records,
      warmup: options.warmup,
      repetitions: options.repetitions,
      statistic: 'median',
      workload: { ...defaultWorkload, records: options.records, closingRecord: 'one record 1 h after the last, to close every open window' },
      engine: {
        transport: 'memoryTransport({ defaultPartitions: 1 })',
        appendBatch: options.appendBatch,
        maxBatchSize: options.maxBatchSize,
        idleTimeout: false,
        commitInterval: '1s (default)',
        state: 'memory (default)',
        repartition: 'keyBy before the window routes every record through the bench-…-repartition topic (a second append and a second task; on memoryTransport the records carry decoded values, no serde)',
      },
      isolation: 'each benchmark in its own child process (--expose-gc) holding its own copy of the same seeded input; full GC before every run; rounds run every benchmark once, strictly one after another, so noise spreads over all contenders',
      profiled: options.profile,
      joins: {
        table: `${TABLE_KEYS} keys (JSON { place, scale }) appended and processed before the timer starts; --records readings (JSON { sensor, value, ts }), the sensor drawn at random from the table's keys; keyBy → repartition → join → to(out)`,
        within: `--within-records ${options.withinRecords} records, both sides together, interleaved left/right, ${WITHIN_KEYS} keys drawn at random, ${WITHIN_PER_KEY_PER_SECOND} records per key per second on each side, timestamps in order; each side keyBy → repartition → join → to(out)`,
      },
    },
    results,
    ratios: wall.table,
    ...(joinWithin ? { joinWithin } : {}),
    ratiosCpuTime: cpu.table,
    targets: targetList,
    ratioDetails: { wall: wall.details, cpu: cpu.details },
    definitions,
    checks: checkList,
    warnings,
  };
  const json = `${JSON.stringify(document, null, 2)}\n`;
  if (warnings.length > 0) for (const warning of warnings) log(`  WARNING: ${warning}`);
  writeFileSync(`${resultsDir}${name}.json`, json);
  process.stdout.write(json);
  for (const target of targetList) {
    log(`  ${target.ratio} = ${target.value} wall, ${target.cpuTimeValue} CPU time (target ${target.target}): ${target.met ? 'met' : 'NOT met'} / ${target.metOnCpuTime ? 'met' : 'NOT met'}`);
  }
  const failed = checkList.filter((entry) => !entry.ok);
  for (const entry of failed) log(`  CHECK FAILED: ${entry.what}: ${entry.detail}`);
  log(`results written to ${resultsDir}${name}.json`);
  if (failed.length > 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
