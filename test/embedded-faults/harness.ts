/**
 * Helpers of the embedded fault tests: a forked child app (child-app.mjs) driven over IPC, and a
 * reader of the topics a durable embedded broker log holds.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { levelTransport } from '@eddy/state';

const childApp = fileURLToPath(new URL('./child-app.mjs', import.meta.url));

/** A message of the child: `ready`, `start-failed`, `error`, `state`, or the `ack`/`nack` of a request. */
export type ChildMessage = Record<string, unknown>;

export interface Child {
  readonly child: ChildProcess;
  /** Every message the child sent, in order. */
  readonly messages: ChildMessage[];
  stderr(): string;
  /** Sends records through the child's app; true once the app acknowledged them. */
  send(topic: string, records: Array<{ value: unknown; key?: string; timestamp?: number }>): Promise<boolean>;
  /** Waits until the child's app has no lag; its answer carries metrics, health and state. */
  idle(): Promise<ChildMessage | undefined>;
  /** A clean stop; true if the app stopped without error. */
  stop(): Promise<boolean>;
  kill(): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const isMessage = (message: unknown): message is ChildMessage => typeof message === 'object' && message !== null;

/** Forks child-app.mjs (or another app that speaks its IPC, with `args` after `dir`) on `dir` and waits until its app has started. */
export async function startChild(dir: string, { script = childApp, args = [] }: { script?: string; args?: string[] } = {}): Promise<Child> {
  const child = fork(script, [dir, ...args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout!.on('data', () => undefined);
  const messages: ChildMessage[] = [];
  const waiting = new Map<number, (message: ChildMessage | undefined) => void>();
  let nextId = 0;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      // A request the child can no longer answer resolves to undefined.
      for (const resolveOne of waiting.values()) resolveOne(undefined);
      waiting.clear();
      resolve({ code, signal });
    }),
  );
  child.on('message', (message: unknown) => {
    if (!isMessage(message)) return;
    messages.push(message);
    if ((message.type === 'ack' || message.type === 'nack') && typeof message.id === 'number') {
      waiting.get(message.id)?.(message);
      waiting.delete(message.id);
    }
  });
  const request = (payload: ChildMessage) =>
    new Promise<ChildMessage | undefined>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null || !child.connected) return resolve(undefined);
      const id = nextId++;
      waiting.set(id, resolve);
      try {
        child.send({ ...payload, id });
      } catch {
        waiting.delete(id);
        resolve(undefined);
      }
    });
  await new Promise<void>((resolve, reject) => {
    child.on('message', (message: unknown) => {
      if (!isMessage(message)) return;
      if (message.type === 'ready') resolve();
      if (message.type === 'start-failed') reject(Object.assign(new Error(`start failed: ${String(message.code)} ${String(message.message)}`), { code: message.code }));
    });
    void exited.then(({ code, signal }) => reject(new Error(`child exited (${code ?? signal}) before ready: ${stderr}`)));
  });
  return {
    child,
    messages,
    stderr: () => stderr,
    exited,
    send: async (topic, records) => (await request({ cmd: 'send', topic, records }))?.type === 'ack',
    idle: async () => request({ cmd: 'idle' }),
    stop: async () => {
      const answer = await request({ cmd: 'stop' });
      await exited;
      return answer?.type === 'ack';
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

export interface LoggedRecord<V> {
  partition: number;
  offset: number;
  key: string | undefined;
  value: V;
  timestamp: number;
}

/**
 * Reads whole topics of the broker log at `dir` (no app may run on it), values parsed as JSON.
 * `Topics` names the value type of each topic, as the app wrote it.
 */
export async function readLog<Topics extends object>(dir: string, topics: Array<keyof Topics & string>): Promise<{ [Topic in keyof Topics]: Array<LoggedRecord<Topics[Topic]>> }> {
  const broker = levelTransport({ dir, logger: { warn: () => undefined, info: () => undefined } });
  await broker.connect();
  const out: Record<string, Array<LoggedRecord<unknown>>> = {};
  try {
    for (const topic of topics) {
      const records: Array<LoggedRecord<unknown>> = [];
      for (let partition = 0; partition < ((await broker.partitionCount(topic)) ?? 0); partition++) {
        for await (const batch of broker.readPartition({ topic, partition }, 0)) {
          for (const record of batch) {
            records.push({
              partition,
              offset: Number(record.offset),
              key: record.key ? new TextDecoder().decode(record.key) : undefined,
              value: record.value === null ? null : (JSON.parse(new TextDecoder().decode(record.value)) as unknown),
              timestamp: Number(record.timestamp),
            });
          }
        }
      }
      out[topic] = records;
    }
  } finally {
    await broker.close();
  }
  return out as { [Topic in keyof Topics]: Array<LoggedRecord<Topics[Topic]>> };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
