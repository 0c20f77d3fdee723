/**
 * A real single-node Apache Kafka broker (KRaft, combined broker+controller) for tests, CI and
 * local use, without Docker: the broker jars come from Maven Central through `mvn` and run on the
 * machine's Java 17+.
 *
 * Library use (vitest global setup, benchmarks): {@link startKafka} / `stop()`.
 * CLI use (`node scripts/dist/kafka.js start|stop|status|fetch`): one background broker per
 * checkout, tracked by a pid file under `.kafka/`.
 *
 * @module
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  fstatSync,
  rmSync,
  statSync,
} from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Admin } from '@platformatic/kafka';

// Resolved from this file so that the same code works from scripts/src (vitest) and scripts/dist.
const scriptsDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repoRoot = resolve(scriptsDir, '..');
const pomPath = join(scriptsDir, 'kafka', 'pom.xml');

const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_CLI_PORT = 9092;
const MIN_JAVA = 17;

/** The Kafka version named by `scripts/kafka/pom.xml` (the single place to change it). */
export const KAFKA_VERSION: string = readKafkaVersion();

function readKafkaVersion(): string {
  const match = /<kafka\.version>\s*([^<\s]+)\s*<\/kafka\.version>/.exec(readFileSync(pomPath, 'utf8'));
  if (!match) throw new Error(`no <kafka.version> property in ${pomPath}`);
  return match[1];
}

/** Where downloaded jars and the class-data archive live; outside the repo so clones share them. */
function cacheRoot(): string {
  if (process.env.EDDY_CACHE_DIR) return resolve(process.env.EDDY_CACHE_DIR);
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg ? resolve(xdg) : join(homedir(), '.cache'), 'eddy');
}

function kafkaHome(): string {
  return join(cacheRoot(), `kafka-${KAFKA_VERSION}`);
}

function defaultStateDir(): string {
  return process.env.EDDY_KAFKA_STATE_DIR ? resolve(process.env.EDDY_KAFKA_STATE_DIR) : join(repoRoot, '.kafka');
}

// ---------------------------------------------------------------------------------------------
// Jars
// ---------------------------------------------------------------------------------------------

/** Options for {@link ensureKafkaJars}. */
export interface EnsureJarsOptions {
  /** Progress messages (download start/end); silent by default. */
  log?: (message: string) => void;
}

/**
 * Makes sure the broker's jars are in the user cache (`~/.cache/eddy/kafka-<version>/libs`, or
 * under `$XDG_CACHE_HOME` / `$EDDY_CACHE_DIR`), downloading them with Maven the first time.
 *
 * The cache is keyed by a hash of the pom, so editing the pom (say, a new log4j) refetches even
 * when the Kafka version is unchanged. Safe to call from several processes at once: each
 * downloads into its own folder and the first to finish wins.
 *
 * @returns the absolute path of the folder holding the jars.
 * @throws when `mvn` is missing or the download fails (the error carries Maven's output).
 */
export async function ensureKafkaJars(options: EnsureJarsOptions = {}): Promise<string> {
  const home = kafkaHome();
  const libs = join(home, 'libs');
  const marker = join(home, 'libs.sha256');
  const pomHash = createHash('sha256').update(readFileSync(pomPath)).digest('hex');
  if (await jarsAreCurrent(libs, marker, pomHash)) return libs;

  await mkdir(home, { recursive: true });
  const staging = join(home, `libs.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const started = Date.now();
  options.log?.(`Downloading Kafka ${KAFKA_VERSION} jars with Maven into ${libs} ...`);
  try {
    const mvn = process.env.EDDY_MVN ?? 'mvn';
    const result = await run(mvn, [
      '-q',
      '-B',
      '-f',
      pomPath,
      'dependency:copy-dependencies',
      `-DoutputDirectory=${staging}`,
      '-DincludeScope=runtime',
    ]);
    if (result.error) {
      throw new Error(`cannot run '${mvn}' (${result.error.message}); Maven 3 is needed to fetch the Kafka jars`);
    }
    if (result.code !== 0) {
      throw new Error(`'${mvn} dependency:copy-dependencies' failed (exit ${result.code}):\n${tail(result.output, 40)}`);
    }
    if (!existsSync(join(staging, `kafka_2.13-${KAFKA_VERSION}.jar`))) {
      throw new Error(`Maven finished but ${staging} has no kafka_2.13-${KAFKA_VERSION}.jar`);
    }
    if (!(await jarsAreCurrent(libs, marker, pomHash))) {
      // A stale folder (older pom) is replaced; a current one means another process won the race.
      await rm(marker, { force: true });
      await rm(libs, { recursive: true, force: true });
      try {
        await rename(staging, libs);
        await writeFile(marker, `${pomHash}\n`);
      } catch (error) {
        if (!(await jarsAreCurrent(libs, marker, pomHash))) throw error;
      }
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  options.log?.(`Kafka ${KAFKA_VERSION} jars ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return libs;
}

async function jarsAreCurrent(libs: string, marker: string, pomHash: string): Promise<boolean> {
  try {
    return (await readFile(marker, 'utf8')).trim() === pomHash && (await stat(libs)).isDirectory();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Java
// ---------------------------------------------------------------------------------------------

interface JavaInfo {
  bin: string;
  /** Full version such as "17.0.15", used to key the class-data archive. */
  version: string;
}

let javaInfo: JavaInfo | undefined;

function findJava(): JavaInfo {
  if (javaInfo) return javaInfo;
  const bin = process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
  const probe = spawnSync(bin, ['-version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(`cannot run '${bin} -version' (${probe.error?.message ?? `exit ${probe.status}`}); Java ${MIN_JAVA}+ is needed for the Kafka broker`);
  }
  const match = /version "(\d+)(?:\.(\d+))?([^"]*)"/.exec(`${probe.stderr}${probe.stdout}`);
  if (!match) throw new Error(`cannot read the Java version from '${bin} -version'`);
  // Java 8 and older call themselves 1.x.
  const major = match[1] === '1' ? Number(match[2]) : Number(match[1]);
  if (major < MIN_JAVA) {
    throw new Error(`Kafka ${KAFKA_VERSION} needs Java ${MIN_JAVA}+, but '${bin}' is Java ${major}`);
  }
  javaInfo = { bin, version: `${match[1]}${match[2] === undefined ? '' : `.${match[2]}`}${match[3]}` };
  return javaInfo;
}

// ---------------------------------------------------------------------------------------------
// Broker configuration
// ---------------------------------------------------------------------------------------------

type ConfigValue = string | number | boolean;

function brokerConfig(
  host: string,
  port: number,
  controllerPort: number,
  logDirs: string,
  overrides: Record<string, ConfigValue>,
): string {
  const config: Record<string, ConfigValue> = {
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@${host}:${controllerPort}`,
    'controller.listener.names': 'CONTROLLER',
    listeners: `PLAINTEXT://${host}:${port},CONTROLLER://${host}:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://${host}:${port}`,
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'log.dirs': logDirs,
    // One node: every internal topic must accept a single replica or groups and transactions
    // never get a coordinator.
    'offsets.topic.replication.factor': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'share.coordinator.state.topic.replication.factor': 1,
    'share.coordinator.state.topic.min.isr': 1,
    'default.replication.factor': 1,
    'min.insync.replicas': 1,
    'num.partitions': 1,
    // The defaults (50 each) make the first group or transaction wait for 50 partitions to load.
    'offsets.topic.num.partitions': 4,
    'transaction.state.log.num.partitions': 4,
    'share.coordinator.state.topic.num.partitions': 1,
    // A test's consumer group should start at once instead of waiting for more members.
    'group.initial.rebalance.delay.ms': 0,
    // Lets tests of consumer failure use short session timeouts (the default floor is 6 s).
    'group.min.session.timeout.ms': 1000,
    // The same for groups on the consumer group protocol of KIP-848 (defaults: 45 s sessions,
    // 5 s heartbeats, and floors as high), which Eddy's members speak: a member that stops
    // heartbeating loses its partitions after 10 s, and a rebalance takes a heartbeat or two.
    'group.consumer.min.session.timeout.ms': 1000,
    'group.consumer.session.timeout.ms': 10_000,
    'group.consumer.min.heartbeat.interval.ms': 100,
    'group.consumer.heartbeat.interval.ms': 500,
    // Sized for 2 cores and a 512 MiB heap; the cleaner's default 128 MiB buffer would take a
    // quarter of it.
    'num.network.threads': 2,
    'num.io.threads': 4,
    'num.recovery.threads.per.data.dir': 1,
    'log.cleaner.dedupe.buffer.size': 16 * 1024 * 1024,
    'auto.create.topics.enable': true,
    ...overrides,
  };
  return `${Object.entries(config)
    .map(([key, value]) => `${key}=${String(value)}`)
    .join('\n')}\n`;
}

// Console output only: the caller decides where stdout goes (a file). The config dumps are
// thousands of lines per start and bury anything useful.
const LOG4J2_PROPERTIES = `status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = \${sys:eddy.kafka.logLevel:-INFO}
rootLogger.appenderRef.out.ref = OUT
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
`;

function javaArgs(options: { heap: string; log4jConfig: string; extra: string[] }): string[] {
  const envOpts = (process.env.EDDY_KAFKA_JAVA_OPTS ?? '').split(/\s+/).filter(Boolean);
  return [
    `-Xmx${options.heap}`,
    '-Xms128m',
    // Kafka's own launcher defaults.
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-XX:InitiatingHeapOccupancyPercent=35',
    '-XX:+ExplicitGCInvokesConcurrent',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${options.log4jConfig}`,
    '-Dlog4j2.disableJmx=true',
    ...options.extra,
    ...envOpts,
  ];
}

/**
 * Class-data sharing: the JVM maps the broker's already-parsed classes from an archive the first
 * clean exit wrote, which took a cold start on 2 cores from ~2.3 s to ~1.3 s. The archive is
 * only valid for this JVM build and this jar folder, so it is keyed by both and simply ignored
 * (with a warning in the broker log) if the JVM disagrees.
 */
function cdsArgs(java: JavaInfo, libs: string): { args: string[]; pending?: { tmp: string; final: string } } {
  if (process.env.EDDY_KAFKA_CDS === '0') return { args: [] };
  const final = join(dirname(libs), `broker-jdk${java.version.replace(/[^\w.-]/g, '_')}.jsa`);
  // The dump lists hundreds of classes it skipped; none of it concerns whoever reads the log.
  const quiet = '-Xlog:cds=off';
  if (existsSync(final)) return { args: [`-XX:SharedArchiveFile=${final}`, '-Xshare:auto', quiet] };
  // Written under a private name and renamed after exit, so a concurrent start never maps a
  // half-written archive.
  const tmp = `${final}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  removeStaleArchives(dirname(final));
  return { args: [`-XX:ArchiveClassesAtExit=${tmp}`, quiet], pending: { tmp, final } };
}

/** Archives left by brokers that were killed (never promoted) would pile up in the cache. */
function removeStaleArchives(dir: string): void {
  try {
    for (const name of readdirSync(dir)) {
      if (!/\.jsa\.tmp-/.test(name)) continue;
      const file = join(dir, name);
      if (Date.now() - statSync(file).mtimeMs > 3_600_000) rmSync(file, { force: true });
    }
  } catch {
    // Housekeeping only.
  }
}

/** @param complete false when the JVM was killed, possibly halfway through writing the archive. */
async function promoteArchive(pending: { tmp: string; final: string } | undefined, complete: boolean): Promise<void> {
  if (!pending) return;
  try {
    if (complete && existsSync(pending.tmp) && !existsSync(pending.final)) await rename(pending.tmp, pending.final);
  } catch {
    // Only a speed-up: losing a race or a write is harmless.
  }
  await rm(pending.tmp, { force: true });
}

/**
 * A fresh KRaft cluster id: 16 random bytes in URL-safe base64, the format StorageTool's
 * `random-uuid` prints. Made here to spare one JVM start per fresh data dir; Kafka rejects ids
 * that start with '-' (they read as options), so those are redrawn.
 */
function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/** Where a broker started on `dataDir` keeps its log segments and `meta.properties`. */
function logDirsOf(dataDir: string): string {
  return join(dataDir, 'kraft');
}

/** The cluster id `logDirs` was formatted with, or undefined when it was never formatted. */
function readClusterId(logDirs: string): string | undefined {
  let meta: string;
  try {
    meta = readFileSync(join(logDirs, 'meta.properties'), 'utf8');
  } catch {
    return undefined;
  }
  const match = /^cluster\.id=(.+)$/m.exec(meta);
  if (!match) throw new Error(`${join(logDirs, 'meta.properties')} names no cluster.id`);
  return match[1].trim();
}

/** @returns the cluster id the storage holds, which tells our broker from any other. */
async function formatIfNeeded(
  java: JavaInfo,
  libs: string,
  extraJavaArgs: string[],
  log4jConfig: string,
  serverProperties: string,
  logDirs: string,
): Promise<string> {
  const formatted = readClusterId(logDirs);
  if (formatted) return formatted;
  const clusterId = newClusterId();
  const result = await run(java.bin, [
    ...extraJavaArgs,
    `-Dlog4j2.configurationFile=${log4jConfig}`,
    '-Deddy.kafka.logLevel=WARN',
    '-cp',
    join(libs, '*'),
    'kafka.tools.StorageTool',
    'format',
    '-t',
    clusterId,
    '-c',
    serverProperties,
  ]);
  if (result.error || result.code !== 0) {
    throw new Error(`formatting Kafka storage in ${logDirs} failed (${result.error?.message ?? `exit ${result.code}`}):\n${tail(result.output, 30)}`);
  }
  return clusterId;
}

// ---------------------------------------------------------------------------------------------
// Starting and stopping
// ---------------------------------------------------------------------------------------------

/** Options for {@link startKafka}. */
export interface StartKafkaOptions {
  /** Client port; omitted or 0 picks a free one (what tests want). */
  port?: number;
  /** KRaft controller port; defaults to `port + 1` when `port` is given, else a free port. */
  controllerPort?: number;
  /** Interface to bind and advertise. Default 127.0.0.1. */
  host?: string;
  /**
   * Keeps topics across restarts when given (formatted on first use). Omitted: a fresh temp
   * folder that `stop()` deletes.
   */
  dataDir?: string;
  /** Broker stdout/stderr; default `<dataDir>/broker.log`. */
  logFile?: string;
  /** Outlives this process (CLI `start`); otherwise the broker dies with it. */
  detached?: boolean;
  /** Max heap, Java syntax. Default 512m. */
  heap?: string;
  /** Extra broker properties, overriding the defaults. */
  config?: Record<string, ConfigValue>;
  /** How long to wait for the broker to serve metadata. Default 60 s. */
  readyTimeoutMs?: number;
  /** Progress messages (download, start); silent by default. */
  log?: (message: string) => void;
}

/** A running broker started by {@link startKafka}. */
export interface KafkaBroker {
  /** Bootstrap list for clients, e.g. `['127.0.0.1:19092']`. */
  brokers: string[];
  port: number;
  controllerPort: number;
  pid: number;
  dataDir: string;
  logFile: string;
  /**
   * Shuts the broker down (SIGTERM, then SIGKILL after `timeoutMs`, default 20 s) and deletes
   * the data dir if it was a temporary one. Idempotent.
   */
  stop(timeoutMs?: number): Promise<void>;
}

// Attached brokers must not outlive a crashed or interrupted parent (a stray JVM would hold the
// port and 0.5 GiB); 'exit' handlers may only do synchronous work, which kill() is.
const attachedChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function killAttachedOnExit(child: ChildProcess): void {
  attachedChildren.add(child);
  child.once('exit', () => attachedChildren.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of attachedChildren) c.kill('SIGKILL');
  });
}

/**
 * Starts a single-node KRaft Kafka broker (broker and controller in one JVM) and resolves once a
 * client's metadata request succeeds.
 *
 * Downloads the jars on first use ({@link ensureKafkaJars}), formats the data dir if it is new,
 * and sizes the JVM for small machines (512 MiB heap). Fails fast, with the tail of the broker
 * log, if the port is taken or the JVM exits early.
 */
export async function startKafka(options: StartKafkaOptions = {}): Promise<KafkaBroker> {
  return (await launch(options)).broker;
}

async function launch(
  options: StartKafkaOptions,
): Promise<{ broker: KafkaBroker; archive: { tmp: string; final: string } | undefined }> {
  const host = options.host ?? DEFAULT_HOST;
  const java = findJava();
  const libs = await ensureKafkaJars({ log: options.log });

  const port = options.port ? options.port : await freePort(host);
  const controllerPort = options.controllerPort ?? (options.port ? options.port + 1 : await freePort(host, [port]));
  for (const p of [port, controllerPort]) {
    if (!(await portIsFree(host, p))) {
      throw new Error(`port ${host}:${p} is already in use (another Kafka broker?); choose other ports`);
    }
  }

  const ephemeral = !options.dataDir;
  const dataDir = options.dataDir ? resolve(options.dataDir) : await mkdtemp(join(tmpdir(), 'eddy-kafka-'));
  await mkdir(dataDir, { recursive: true });
  const logDirs = logDirsOf(dataDir);
  const serverProperties = join(dataDir, 'server.properties');
  const log4jConfig = join(dataDir, 'log4j2.properties');
  const logFile = options.logFile ? resolve(options.logFile) : join(dataDir, 'broker.log');
  const brokers = [`${host}:${port}`];

  const cleanup = async () => {
    if (ephemeral && process.env.EDDY_KAFKA_KEEP_DATA !== '1') {
      await rm(dataDir, { recursive: true, force: true });
    }
  };

  let child: ChildProcess;
  let cds: ReturnType<typeof cdsArgs>;
  let clusterId: string;
  // Where this start's output begins: the CLI's log file keeps earlier runs.
  let logStart: number;
  try {
    await writeFile(serverProperties, brokerConfig(host, port, controllerPort, logDirs, options.config ?? {}));
    await writeFile(log4jConfig, LOG4J2_PROPERTIES);
    cds = cdsArgs(java, libs);
    // The format JVM may read the archive but must not race to write one.
    clusterId = await formatIfNeeded(java, libs, cds.pending ? [] : cds.args, log4jConfig, serverProperties, logDirs);

    await mkdir(dirname(logFile), { recursive: true });
    const out = openSync(logFile, 'a');
    logStart = fstatSync(out).size;
    try {
      const args = [
        ...javaArgs({ heap: options.heap ?? '512m', log4jConfig, extra: cds.args }),
        '-cp',
        join(libs, '*'),
        'kafka.Kafka',
        serverProperties,
      ];
      child = spawn(java.bin, args, {
        cwd: dataDir,
        detached: options.detached ?? false,
        stdio: ['ignore', out, out],
      });
    } finally {
      closeSync(out);
    }
  } catch (error) {
    await cleanup();
    throw error;
  }
  // A failed spawn reports through 'error' (and never 'exit'); unhandled, it would crash us.
  const spawnFailed = new Promise<Error>((resolveError) => child.once('error', resolveError));
  const pid = child.pid;
  if (pid === undefined) {
    const error = await spawnFailed;
    await cleanup();
    throw new Error(`could not start '${java.bin}': ${error.message}`);
  }
  if (options.detached) child.unref();
  else killAttachedOnExit(child);

  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  // Stops the readiness poll as soon as the JVM dies instead of waiting out the timeout.
  const died = new AbortController();
  void exited.then(() => died.abort());

  let stopping: Promise<void> | undefined;
  const stop = (timeoutMs = 20_000): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // A throwaway broker's data is deleted next, so its ~2 s clean shutdown buys nothing,
        // unless the JVM still has to write the class-data archive on its way out.
        child.kill(ephemeral && !cds.pending ? 'SIGKILL' : 'SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      await promoteArchive(cds.pending, child.signalCode !== 'SIGKILL');
      await cleanup();
    })();
    return stopping;
  };

  options.log?.(`Starting Kafka ${KAFKA_VERSION} on ${brokers.join(',')} (pid ${pid}, log ${logFile})`);
  try {
    // The ports were free when checked, but another broker may have taken one since: only our
    // cluster answering, with our JVM still alive, is ready.
    await waitForKafka(brokers, options.readyTimeoutMs ?? 60_000, { signal: died.signal, clusterId });
  } catch (error) {
    const output = readTail(logFile, 65_536, logStart);
    const exitCode = child.exitCode;
    await stop(5_000);
    const why = exitCode === null ? (error as Error).message : `the broker exited with code ${exitCode}`;
    const logError = firstLoggedError(output);
    throw new Error(
      `Kafka did not start: ${why}${logError ? `\n${logError}` : ''}\n--- last lines of ${logFile} ---\n${tail(output, 30)}`,
    );
  }
  return { broker: { brokers, port, controllerPort, pid, dataDir, logFile, stop }, archive: cds.pending };
}

/** Options for {@link waitForKafka}. */
export interface WaitForKafkaOptions {
  /** Gives up early (e.g. when the broker process died). */
  signal?: AbortSignal;
  /**
   * The cluster that must answer. Another cluster on the same address (a broker that took the
   * port ours then failed to bind) is not ready, however well it answers.
   */
  clusterId?: string;
  /** The broker's process when it is not our child (no 'exit' event): gives up once it is gone. */
  pid?: number;
}

/**
 * Resolves once the cluster answers an admin metadata request. A listening socket is not
 * enough: a KRaft broker accepts connections before it has caught up with the metadata log and
 * can serve clients.
 *
 * @throws after `timeoutMs` with the last client error, or when `options.signal` aborts or
 *   `options.pid` is gone.
 */
export async function waitForKafka(
  brokers: string[],
  timeoutMs = 30_000,
  options: WaitForKafkaOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  const brokerGone = (): string | undefined => {
    if (options.signal?.aborted) return 'aborted';
    if (options.pid !== undefined && !processIsAlive(options.pid)) return `process ${options.pid} is gone`;
    return undefined;
  };
  for (;;) {
    const gone = brokerGone();
    if (gone) throw new Error(`gave up waiting for Kafka (${gone})`);
    const admin = new Admin({ clientId: 'eddy-kafka-probe', bootstrapBrokers: brokers, connectTimeout: 1_000, requestTimeout: 2_000, retries: 0 });
    let answeredBy: string | undefined;
    try {
      answeredBy = (await admin.metadata({ topics: [] })).id;
    } catch (error) {
      lastError = error;
    } finally {
      await admin.close().catch(() => undefined);
    }
    // An answer that crossed the broker's death came from another process.
    if (answeredBy !== undefined && !brokerGone()) {
      if (options.clusterId === undefined || answeredBy === options.clusterId) return;
      lastError = new Error(`cluster ${answeredBy} answers there, not ours (${options.clusterId}): another broker has the port`);
    }
    if (Date.now() >= deadline) {
      throw new Error(`Kafka at ${brokers.join(',')} not ready after ${timeoutMs} ms: ${causes(lastError)}`);
    }
    await sleep(150, options.signal);
  }
}

/** An error's message with those of the first error it wraps, down to the socket's ("... failed: connect ECONNREFUSED ..."). */
function causes(error: unknown): string {
  const messages: string[] = [];
  for (let current = error; current !== undefined && messages.length < 5; ) {
    if (!(current instanceof Error)) {
      messages.push(String(current));
      break;
    }
    messages.push(current.message.replace(/\.$/, ''));
    current = (current as Error & { errors?: unknown[] }).errors?.[0] ?? current.cause;
  }
  return messages.join(': ');
}

// ---------------------------------------------------------------------------------------------
// Background broker (CLI)
// ---------------------------------------------------------------------------------------------

interface DaemonState {
  pid: number;
  brokers: string[];
  port: number;
  controllerPort: number;
  dataDir: string;
  logFile: string;
  version: string;
  startedAt: string;
  /** CDS archive the broker writes when it exits, to be renamed into the cache by `stop`. */
  archive?: { tmp: string; final: string };
}

function statePaths(stateDir: string) {
  return {
    pidFile: join(stateDir, 'kafka.pid'),
    stateFile: join(stateDir, 'broker.json'),
    dataDir: join(stateDir, 'data'),
    logFile: join(stateDir, 'kafka.log'),
  };
}

/** Options for the background broker functions. */
export interface DaemonOptions {
  /** Folder for the pid file, log and data. Default `.kafka/` in the repo root. */
  stateDir?: string;
  /** Client port. Default 9092 (controller on port + 1). */
  port?: number;
  log?: (message: string) => void;
}

/** What {@link kafkaDaemonStatus} found. */
export interface DaemonStatus {
  running: boolean;
  /** Whether it, not another broker on its port, answered a metadata request (only checked when running). */
  reachable: boolean;
  pid?: number;
  brokers?: string[];
  logFile?: string;
}

/**
 * Starts the background broker the CLI manages (`.kafka/` state, data kept across restarts) and
 * resolves once it serves clients. Does nothing but wait for readiness if it is already running.
 */
export async function startKafkaDaemon(options: DaemonOptions = {}): Promise<DaemonStatus> {
  const stateDir = resolve(options.stateDir ?? defaultStateDir());
  const paths = statePaths(stateDir);
  const existing = await readDaemonState(stateDir);
  if (existing && processIsKafka(existing.pid)) {
    await waitForKafka(existing.brokers, 60_000, { pid: existing.pid, clusterId: readClusterId(logDirsOf(existing.dataDir)) });
    options.log?.(`Kafka already running on ${existing.brokers.join(',')} (pid ${existing.pid})`);
    return { running: true, reachable: true, pid: existing.pid, brokers: existing.brokers, logFile: existing.logFile };
  }
  await mkdir(stateDir, { recursive: true });
  const port = options.port ?? DEFAULT_CLI_PORT;
  const { broker, archive } = await launch({
    port,
    dataDir: paths.dataDir,
    logFile: paths.logFile,
    detached: true,
    log: options.log,
  });
  const state: DaemonState = {
    pid: broker.pid,
    brokers: broker.brokers,
    port: broker.port,
    controllerPort: broker.controllerPort,
    dataDir: broker.dataDir,
    logFile: broker.logFile,
    version: KAFKA_VERSION,
    startedAt: new Date().toISOString(),
    // The archive a detached broker writes at exit is promoted by whichever `stop` ends it.
    ...(archive ? { archive } : {}),
  };
  await writeFile(paths.stateFile, `${JSON.stringify(state, null, 2)}\n`);
  await writeFile(paths.pidFile, `${broker.pid}\n`);
  return { running: true, reachable: true, pid: broker.pid, brokers: broker.brokers, logFile: broker.logFile };
}

/**
 * Stops the background broker started by the CLI (`node scripts/dist/kafka.js start`): SIGTERM,
 * then SIGKILL after `timeoutMs`. Its data stays in the state folder.
 *
 * @returns whether a running broker was found and stopped.
 */
export async function stopKafka(options: { stateDir?: string; timeoutMs?: number } = {}): Promise<boolean> {
  const stateDir = resolve(options.stateDir ?? defaultStateDir());
  const paths = statePaths(stateDir);
  const state = await readDaemonState(stateDir);
  if (!state) return false;
  let stopped = false;
  let killed = false;
  if (processIsKafka(state.pid)) {
    process.kill(state.pid, 'SIGTERM');
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    while (processIsAlive(state.pid) && Date.now() < deadline) await sleep(100);
    if (processIsAlive(state.pid)) {
      killed = true;
      process.kill(state.pid, 'SIGKILL');
      const killDeadline = Date.now() + 5_000;
      while (processIsAlive(state.pid) && Date.now() < killDeadline) await sleep(50);
    }
    stopped = true;
  }
  if (state.archive) await promoteArchive(state.archive, !killed);
  await unlink(paths.pidFile).catch(() => undefined);
  await unlink(paths.stateFile).catch(() => undefined);
  return stopped;
}

/** Reports whether the CLI's background broker is running and answering clients. */
export async function kafkaDaemonStatus(options: { stateDir?: string } = {}): Promise<DaemonStatus> {
  const stateDir = resolve(options.stateDir ?? defaultStateDir());
  const state = await readDaemonState(stateDir);
  if (!state || !processIsKafka(state.pid)) return { running: false, reachable: false };
  let reachable = true;
  try {
    await waitForKafka(state.brokers, 3_000, { pid: state.pid, clusterId: readClusterId(logDirsOf(state.dataDir)) });
  } catch {
    reachable = false;
  }
  return { running: true, reachable, pid: state.pid, brokers: state.brokers, logFile: state.logFile };
}

async function readDaemonState(stateDir: string): Promise<DaemonState | undefined> {
  const { pidFile, stateFile } = statePaths(stateDir);
  try {
    return JSON.parse(await readFile(stateFile, 'utf8')) as DaemonState;
  } catch {
    // A pid file without state (e.g. written by hand or an interrupted start) is still stoppable.
    try {
      const pid = Number((await readFile(pidFile, 'utf8')).trim());
      if (!Number.isInteger(pid) || pid <= 0) return undefined;
      const paths = statePaths(stateDir);
      return {
        pid,
        brokers: [`${DEFAULT_HOST}:${DEFAULT_CLI_PORT}`],
        port: DEFAULT_CLI_PORT,
        controllerPort: DEFAULT_CLI_PORT + 1,
        dataDir: paths.dataDir,
        logFile: paths.logFile,
        version: KAFKA_VERSION,
        startedAt: '',
      };
    } catch {
      return undefined;
    }
  }
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A detached broker's parent is gone; where nothing reaps orphans (a bare container init) it
  // lingers as a zombie that signal 0 still reaches, and waiting for it would never end.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/** A stale pid file must not make us signal an unrelated process that reused the pid. */
function processIsKafka(pid: number): boolean {
  if (!processIsAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('kafka.Kafka');
  } catch {
    // No procfs (macOS): trust the pid file.
    return true;
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/** Asks the OS for a free TCP port on `host` (not in `avoid`). */
export async function freePort(host = DEFAULT_HOST, avoid: number[] = []): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolvePort, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, host, () => {
        const address = server.address();
        const chosen = typeof address === 'object' && address ? address.port : 0;
        server.close(() => resolvePort(chosen));
      });
    });
    if (port && !avoid.includes(port)) return port;
  }
}

function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.once('error', () => resolveFree(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolveFree(true)));
  });
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; output: string; error?: Error }> {
  return new Promise((resolveRun) => {
    let output = '';
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', (error) => resolveRun({ code: null, output, error }));
    child.once('close', (code) => resolveRun({ code, output }));
  });
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** The last `bytes` of `file`, but nothing before offset `from`. */
function readTail(file: string, bytes: number, from = 0): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const length = Math.max(0, Math.min(bytes, size - from));
      const buffer = Buffer.alloc(length);
      readSync(fd, buffer, 0, length, size - length);
      return buffer.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '(no log)';
  }
}

/**
 * The broker's first ERROR or FATAL line with the exception line under it, which names the cause
 * (say, `Socket server failed to bind to 127.0.0.1:9093: Address already in use.`).
 */
function firstLoggedError(output: string): string | undefined {
  const lines = output.split('\n');
  const at = lines.findIndex((line) => /^\[[^\]]*\] (?:ERROR|FATAL) /.test(line));
  if (at < 0) return undefined;
  const exception = lines[at + 1];
  return exception && !/^[[\s]/.test(exception) ? `${lines[at]}\n${exception}` : lines[at];
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolveSleep) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolveSleep();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------

const USAGE = `Usage: node scripts/dist/kafka.js <command> [--port N]

  start [--port N]   start a background Kafka ${KAFKA_VERSION} broker (default 127.0.0.1:9092,
                     controller on N+1), state in .kafka/; returns once it accepts clients
  stop               stop it (data is kept in .kafka/data)
  status             print whether it runs and answers (exit 0 if so, 1 if not)
  fetch              download the broker jars into the user cache (done once)

Environment: EDDY_KAFKA_STATE_DIR, EDDY_CACHE_DIR, JAVA_HOME, EDDY_MVN, EDDY_KAFKA_JAVA_OPTS.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  let port: number | undefined;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    const value = arg.startsWith('--port=') ? arg.slice('--port='.length) : arg === '--port' ? rest[++i] : undefined;
    if (value === undefined) {
      console.error(`unknown argument '${arg}'\n\n${USAGE}`);
      return 2;
    }
    port = Number(value);
    if (!Number.isInteger(port) || port <= 0 || port >= 65535) {
      console.error(`invalid port '${value}'`);
      return 2;
    }
  }
  const log = (message: string) => console.log(message);
  switch (command) {
    case 'start': {
      const started = Date.now();
      const status = await startKafkaDaemon({ port, log });
      console.log(`Kafka ${KAFKA_VERSION} ready on ${status.brokers?.join(',')} (pid ${status.pid}) after ${((Date.now() - started) / 1000).toFixed(1)} s`);
      console.log(`Log: ${status.logFile}   Stop: npm run kafka:stop`);
      return 0;
    }
    case 'stop': {
      const stopped = await stopKafka();
      console.log(stopped ? 'Kafka stopped' : 'Kafka was not running');
      return 0;
    }
    case 'status': {
      const status = await kafkaDaemonStatus();
      if (!status.running) {
        console.log('Kafka is not running');
        return 1;
      }
      console.log(`Kafka ${status.reachable ? 'running' : 'running but not answering'} on ${status.brokers?.join(',')} (pid ${status.pid}, log ${status.logFile})`);
      return status.reachable ? 0 : 1;
    }
    case 'fetch': {
      const libs = await ensureKafkaJars({ log });
      findJava();
      console.log(`Kafka ${KAFKA_VERSION} jars in ${libs}`);
      return 0;
    }
    default:
      console.error(USAGE);
      return command === undefined || command === 'help' || command === '--help' ? 0 : 2;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exitCode = 1;
    },
  );
}
