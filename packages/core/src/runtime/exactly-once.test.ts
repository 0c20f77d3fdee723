/**
 * The exactly-once commit protocol against a transport with (in-memory) transactions: outputs,
 * changelog records and input offsets become visible together at the task's commit; a failed
 * transaction leaves nothing behind, and its task starts again from its last commit if the group
 * says this instance still owns it, and is left to the rebalance if not. The Kafka transport runs the same
 * protocol on a real broker (test/kafka/exactly-once.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { createApp, EddyError, memoryTransport, silentLogger, type App, type Duration, type IncomingRecord, type MemoryTransport, type OutgoingRecord } from '../index.js';
import type { ConsumerListener, TopicPartitionOffset, TopicSpec, TransactionalProducer, Transport, TransportConsumer, TransportProducer } from '../transport/types.js';

/** The embedded broker with transactions: a transaction's records and offsets are applied at commit. */
class TransactionalMemory implements Transport {
  readonly kind = 'memory-transactions';
  readonly exactlyOnce = true;
  readonly keepsValues: boolean;
  readonly localHandOff: boolean;
  readonly defaultPartitions = 1;
  /**
   * `serializing`: values travel as bytes on internal topics too, as on Kafka, and tasks hand
   * records off locally; otherwise every repartition record goes through its topic.
   */
  constructor({ serializing = false } = {}) {
    this.keepsValues = !serializing;
    this.localHandOff = serializing;
  }
  readonly log: MemoryTransport = memoryTransport();
  readonly epochs = new Map<string, number>();
  /** Offsets committed through the consumer (not through a transaction). */
  directCommits = 0;
  /** What the group says when the app asks whether it still owns its partitions. */
  ownership: 'owned' | 'revoked' | 'unsure' = 'owned';
  ownershipChecks = 0;
  /** Awaited before the group answers check number `n` (from 1): a slow coordinator. */
  ownershipDelay: (n: number) => Promise<void> = async () => undefined;
  /** Every transaction's commit fails while set (a broker that keeps aborting them). */
  failCommits = false;
  transactionsCommitted = 0;
  #consumer: TransportConsumer | undefined;

  /** Records of a partition the app's consumer has not delivered yet. */
  undelivered(topic: string, partition: number): number | undefined {
    return this.#consumer?.lag?.({ topic, partition });
  }

  connect = () => this.log.connect();
  ensureTopics = (specs: readonly TopicSpec[]) => this.log.ensureTopics(specs);
  partitionCount = (topic: string) => this.log.partitionCount(topic);
  /** Transactional producers created and not closed, by transactional id. */
  readonly openProducers = new Map<string, number>();
  /** Looking up where `topic` ends fails this many more times (a broker that does not answer). */
  readonly failEndOffsets = new Map<string, number>();
  endOffset = async (partition: { topic: string; partition: number }) => {
    const failures = this.failEndOffsets.get(partition.topic) ?? 0;
    if (failures > 0) {
      this.failEndOffsets.set(partition.topic, failures - 1);
      throw new EddyError('TRANSPORT_FAILED', `looking up the end of ${partition.topic} failed`, { retriable: true });
    }
    return this.log.endOffset(partition);
  };
  readPartition = (partition: { topic: string; partition: number }, from: number) => this.log.readPartition(partition, from);
  close = () => this.log.close();

  async subscribe(groupId: string, topics: readonly string[], listener: ConsumerListener): Promise<TransportConsumer> {
    const consumer = await this.log.subscribe(groupId, topics, listener);
    this.#consumer = consumer;
    const commit = consumer.commit.bind(consumer);
    consumer.commit = async (offsets) => {
      this.directCommits++;
      await commit(offsets);
    };
    consumer.confirmOwnership = async () => {
      await this.ownershipDelay(++this.ownershipChecks);
      return this.ownership;
    };
    return consumer;
  }

  async createProducer(options: { transactionalId?: string } = {}): Promise<TransportProducer> {
    const { transactionalId } = options;
    if (transactionalId === undefined) return this.log.createProducer();
    const epoch = (this.epochs.get(transactionalId) ?? 0) + 1;
    this.epochs.set(transactionalId, epoch);
    this.openProducers.set(transactionalId, (this.openProducers.get(transactionalId) ?? 0) + 1);
    let closed = false;
    let open = false;
    let records: OutgoingRecord[] = [];
    let offsets: TopicPartitionOffset[] = [];
    const live = () => {
      if (this.epochs.get(transactionalId) !== epoch) throw new EddyError('TRANSPORT_FAILED', `transactional id ${transactionalId} was fenced`, { retriable: false });
    };
    const producer: TransactionalProducer = {
      begin: async () => {
        live();
        open = true;
        records = [];
        offsets = [];
      },
      send: async (batch) => {
        live();
        if (!open) throw new Error('send outside a transaction');
        records.push(...batch);
        return [];
      },
      sendOffsets: async (_groupId, batch) => {
        live();
        offsets.push(...batch);
      },
      commit: async () => {
        live();
        if (this.failCommits) {
          open = false;
          throw new EddyError('TRANSPORT_FAILED', 'the coordinator aborted the transaction', { retriable: true });
        }
        open = false;
        this.log.append(records);
        // The consumer's own commit, not the counting wrapper: these offsets come with the transaction.
        if (offsets.length > 0) await Object.getPrototypeOf(this.#consumer!).commit.call(this.#consumer, offsets);
        this.transactionsCommitted++;
      },
      abort: async () => {
        open = false;
      },
      close: async () => {
        if (!closed) this.openProducers.set(transactionalId, this.openProducers.get(transactionalId)! - 1);
        closed = true;
      },
    };
    return producer;
  }
}

const sensors = ['a', 'b', 'c', 'd', 'e'];

function windowedApp(transport: Transport, id: string, stallTimeout?: Duration): App {
  const app = createApp({ id, transport, guarantee: 'exactly-once', commitInterval: '20ms', idleTimeout: false, logger: silentLogger, ...(stallTimeout ? { stallTimeout } : {}) });
  app
    .from<{ sensor: string; ts: number }>('in', { timestamp: (reading) => reading.ts })
    .keyBy((reading) => reading.sensor)
    .tumbling('1s')
    .count()
    .onClose((window) => ({ sensor: window.key, start: window.start, count: window.value }))
    .to('out');
  return app;
}

function readOut(log: MemoryTransport): Array<{ sensor: string; start: number; count: number }> {
  return log.readSlice('out', 0, 0, 1_000_000).map((record: IncomingRecord) => (record.decoded ? record.decoded.value : JSON.parse(new TextDecoder().decode(record.value!))) as { sensor: string; start: number; count: number });
}

/** Polls `check` on real time (the app runs on the system clock); generous, for a loaded machine. */
async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const readingRecord = (sensor: string, ts: number): OutgoingRecord => ({ topic: 'in', partition: 0, key: new TextEncoder().encode(sensor), value: encode({ sensor, ts }), timestamp: ts });

/** The results of a's readings at 0, 1500, 2500 and b's at 2600, closed by readings at 9000: each window once. */
const eachWindowOnce = [
  { sensor: 'a', start: 0, count: 1 },
  { sensor: 'a', start: 1000, count: 1 },
  { sensor: 'a', start: 2000, count: 1 },
  { sensor: 'b', start: 2000, count: 1 },
];

/** Starts the windowed app and feeds it until its first window [0, 1000) is out. */
async function withFirstWindow(transport: TransactionalMemory, id: string): Promise<App> {
  const app = windowedApp(transport, id);
  await app.start();
  transport.log.append([readingRecord('a', 0), readingRecord('a', 1500)]);
  await waitFor(() => readOut(transport.log).length === 1, 'the first window');
  return app;
}

/** Far-future readings close every window; the app stops without a failure. */
async function closeEveryWindow(transport: TransactionalMemory, app: App): Promise<void> {
  transport.log.append([readingRecord('a', 9000), readingRecord('b', 9000)]);
  await waitFor(() => readOut(transport.log).length === 4, 'every window');
  await app.stop();
  expect(app.failure).toBeUndefined();
}

/** The transactional id of the windowed app's window task (it reads the repartition topic). */
const windowTaskId = (id: string) => `${id}:${id}-tumbling-1000ms-grace-0ms-count-repartition:0`;

// Each wait may take up to 20 s on a loaded machine; a test has several.
describe('exactly-once commit protocol', { timeout: 90_000 }, () => {
  it('commits outputs and input offsets in the task transaction, not through the consumer', async () => {
    const transport = new TransactionalMemory();
    transport.log.createTopic({ name: 'in', partitions: 1 });
    const app = windowedApp(transport, 'eos');
    await app.start();
    const records = [];
    for (let second = 0; second < 5; second++) for (const sensor of sensors) for (let i = 0; i < 3; i++) records.push(readingRecord(sensor, second * 1000 + i));
    records.push(...sensors.map((sensor) => readingRecord(sensor, 60_000)));
    transport.log.append(records);
    await waitFor(() => readOut(transport.log).length >= 25, 'every window');
    await app.stop();
    const out = readOut(transport.log);
    expect(out).toHaveLength(25);
    for (const result of out) expect(result.count).toBe(3);
    expect(transport.directCommits).toBe(0);
    expect(transport.transactionsCommitted).toBeGreaterThan(0);
    // One transactional id per task, named by the app, the task's input topics and partition.
    expect([...transport.epochs]).toEqual(expect.arrayContaining([['eos:in:0', 1], [windowTaskId('eos'), 1]]));
    expect(transport.epochs.size).toBe(2);
    // The offsets came with the transactions: a restart reads nothing again.
    const restarted = windowedApp(transport, 'eos');
    await restarted.start();
    await waitFor(() => restarted.metrics().tasks === 2 && restarted.metrics().lag === 0, 'the restarted app to stand at the end of its input');
    await restarted.stop();
    expect(restarted.metrics().recordsIn).toBe(0);
    expect(readOut(transport.log)).toHaveLength(25);
  });

  it('a task whose transactions keep failing starts again each time, and shows as stuck once that lasts past stallTimeout', async () => {
    const transport = new TransactionalMemory();
    transport.log.createTopic({ name: 'in', partitions: 1 });
    const app = windowedApp(transport, 'stuck', '300ms');
    await app.start();
    transport.log.append([readingRecord('a', 0), readingRecord('a', 1500)]);
    await waitFor(() => readOut(transport.log).length === 1, 'the first window');
    expect(app.health().status).toBe('ok');
    transport.failCommits = true;
    transport.log.append([readingRecord('a', 2500)]);
    await waitFor(() => (transport.epochs.get('stuck:in:0') ?? 0) >= 3, 'the task to start again, twice');
    await waitFor(() => app.health().status === 'degraded', 'the app to say a task is stuck');
    expect(app.health().reasons.join('\n')).toMatch(/no commit for \d+ ms \(\d+ failed\).*aborted the transaction/);
    expect(app.metrics().commitFailures).toBeGreaterThanOrEqual(2);
    transport.failCommits = false;
    await waitFor(() => app.health().status === 'ok', 'the app to commit again');
    transport.log.append([readingRecord('a', 9000)]);
    await waitFor(() => readOut(transport.log).length === 3, 'every window');
    await app.stop();
    expect(app.failure).toBeUndefined();
    expect(readOut(transport.log)).toEqual([
      { sensor: 'a', start: 0, count: 1 },
      { sensor: 'a', start: 1000, count: 1 },
      { sensor: 'a', start: 2000, count: 1 },
    ]);
  });

  it('a failed task the group cannot confirm for longer than stallTimeout shows in health(), and stops showing once it runs again', async () => {
    const transport = new TransactionalMemory();
    transport.log.createTopic({ name: 'in', partitions: 1 });
    const app = windowedApp(transport, 'unsure', '300ms');
    await app.start();
    transport.log.append([readingRecord('a', 0), readingRecord('a', 1500)]);
    await waitFor(() => readOut(transport.log).length === 1, 'the first window');
    transport.ownership = 'unsure';
    await transport.createProducer({ transactionalId: 'unsure:in:0' });
    transport.log.append([readingRecord('a', 2500), readingRecord('b', 2600)]);
    // The task is gone from the running ones while the group is asked: health names it anyway.
    await waitFor(() => app.health().reasons.some((reason) => reason.includes('task 0_0: not running')), 'the app to name the task it cannot start again');
    expect(app.health().status).toBe('degraded');
    expect(app.health().reasons.join('\n')).toMatch(/task 0_0: not running for \d+ ms, being started again after a failure \(attempt \d+: the group to confirm/);
    expect(app.metrics().tasks).toBe(1);
    transport.ownership = 'owned';
    await waitFor(() => app.metrics().tasks === 2 && app.health().status === 'ok', 'the task to run again and the app to be ok');
    await closeEveryWindow(transport, app);
    expect(readOut(transport.log)).toEqual(eachWindowOnce);
  });

  it('a task whose transaction fails starts again from its last commit while the group says it owns it: each window once', async () => {
    const transport = new TransactionalMemory();
    transport.log.createTopic({ name: 'in', partitions: 1 });
    const app = await withFirstWindow(transport, 'fenced');
    // Another producer takes the transactional id of the task reading 'in' over: its next commit fails.
    // The group is unsure at first (a rebalance under way), then confirms this instance.
    transport.ownership = 'unsure';
    await transport.createProducer({ transactionalId: 'fenced:in:0' });
    transport.log.append([readingRecord('a', 2500), readingRecord('b', 2600)]);
    await waitFor(() => transport.ownershipChecks >= 2, 'the app to ask the group twice');
    expect(readOut(transport.log)).toEqual([{ sensor: 'a', start: 0, count: 1 }]);
    transport.ownership = 'owned';
    await waitFor(() => transport.epochs.get('fenced:in:0') === 3, 'the task to be rebuilt with a new producer');
    await closeEveryWindow(transport, app);
    // The windows the failed transaction had closed come once, from the rebuilt task.
    expect(readOut(transport.log)).toEqual(eachWindowOnce);
  });

  it('records that arrive while the group confirms a rebuilt task reach that task: each window once, none short', async () => {
    const transport = new TransactionalMemory();
    transport.log.createTopic({ name: 'in', partitions: 1 });
    const app = await withFirstWindow(transport, 'slow-group');
    // The rebuild asks the group twice (before opening the task, and once it is restored); the
    // second answer takes a while, and readings arrive meanwhile.
    let answer: () => void = () => undefined;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    let asking = false;
    transport.ownershipDelay = async (n) => {
      if (n !== 2) return;
      asking = true;
      await answered;
    };
    await transport.createProducer({ transactionalId: 'slow-group:in:0' });
    transport.log.append([readingRecord('a', 2500)]);
    await waitFor(() => asking, 'the second question to the group');
    transport.log.append([readingRecord('a', 2700), readingRecord('b', 2600)]);
    // Delivered while the task waits for the group, to no task: the rebuilt task must read them again.
    await waitFor(() => transport.undelivered('in', 0) === 0, 'the readings to be delivered');
    answer();
    await closeEveryWindow(transport, app);
    expect(readOut(transport.log)).toEqual([
      { sensor: 'a', start: 0, count: 1 },
      { sensor: 'a', start: 1000, count: 1 },
      { sensor: 'a', start: 2000, count: 2 },
      { sensor: 'b', start: 2000, count: 1 },
    ]);
  });

  it('with local hand-off: a failed transaction of the task handed records makes the handing task start again too; each window once', async () => {
    const transport = new TransactionalMemory({ serializing: true });
    transport.log.createTopic({ name: 'in', partitions: 1 });
    const app = await withFirstWindow(transport, 'handed');
    expect(app.metrics().recordsHandedOff).toBe(2);
    // The window task is fenced: its next transaction fails, and with its state since its last
    // commit go the readings the task of 'in' handed it; both start again from their last commits.
    await transport.createProducer({ transactionalId: windowTaskId('handed') });
    transport.log.append([readingRecord('a', 2500), readingRecord('b', 2600)]);
    await waitFor(() => transport.epochs.get(windowTaskId('handed')) === 3 && transport.epochs.get('handed:in:0') === 2, 'both tasks to be rebuilt');
    await closeEveryWindow(transport, app);
    expect(readOut(transport.log)).toEqual(eachWindowOnce);
  });

  it('an attempt at rebuilding a task that fails once its producer exists closes that producer; the next attempt runs the task', async () => {
    const transport = new TransactionalMemory({ serializing: true });
    transport.log.createTopic({ name: 'in', partitions: 1 });
    const app = await withFirstWindow(transport, 'leak');
    const repartition = windowTaskId('leak').split(':')[1]!;
    // The task of 'in' is fenced; opening it again fails twice where it looks up its repartition topic's end.
    await transport.createProducer({ transactionalId: 'leak:in:0' });
    transport.failEndOffsets.set(repartition, 2);
    transport.log.append([readingRecord('a', 2500), readingRecord('b', 2600)]);
    await waitFor(() => transport.epochs.get('leak:in:0') === 5 && app.metrics().tasks === 2, 'the task to be rebuilt at the third attempt');
    // One producer of the task's id is open: the running task's (the one made by the test stays open too).
    expect(transport.openProducers.get('leak:in:0')).toBe(2);
    await closeEveryWindow(transport, app);
    expect(readOut(transport.log)).toEqual(eachWindowOnce);
    expect(transport.openProducers.get('leak:in:0')).toBe(1);
  });

  it('a zombie (the group revoked its partitions) drops the failed task and rebuilds nothing; its transaction leaves nothing behind', async () => {
    const transport = new TransactionalMemory();
    transport.log.createTopic({ name: 'in', partitions: 1 });
    const app = await withFirstWindow(transport, 'zombie');
    transport.ownership = 'revoked';
    await transport.createProducer({ transactionalId: 'zombie:in:0' });
    transport.log.append([readingRecord('a', 3500)]);
    // The task of 'in' (source → repartition) is dropped; the window task was not fenced and stays.
    await waitFor(() => app.metrics().tasks === 1, 'the fenced task to be dropped');
    await app.stop();
    expect(app.failure).toBeUndefined();
    expect(transport.epochs.get('zombie:in:0')).toBe(2);
    // The window [1000, 2000) closed inside the fenced transaction: not written.
    expect(readOut(transport.log)).toEqual([{ sensor: 'a', start: 0, count: 1 }]);
  });

  it('on the embedded broker, exactly-once commits like at-least-once (its log cannot be torn)', async () => {
    const transport = memoryTransport();
    transport.createTopic({ name: 'in', partitions: 2 });
    const app = windowedApp(transport, 'memory-eos');
    await app.start();
    transport.append([readingRecord('a', 0), readingRecord('a', 1500)]);
    await waitFor(() => readOut(transport).length === 1, 'the window');
    await app.stop();
    expect(readOut(transport)).toEqual([{ sensor: 'a', start: 0, count: 1 }]);
  });
});
