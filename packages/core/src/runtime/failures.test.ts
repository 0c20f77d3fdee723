/**
 * Nothing lost, nothing silent, as the runtime sees it: records the log refuses for themselves,
 * sends that keep failing, and an app that stops on its own, each with what the host sees
 * (dead letters, metrics, logs, `app.health()`, `app.on(...)`). The embedded broker plays a log
 * that refuses records or fails sends; real brokers do the same in test/kafka.
 */
import { describe, expect, it } from 'vitest';
import { createApp, EddyError, memoryTransport, RecordsRejectedError, type AppState, type Duration, type Logger, type OutgoingRecord, type RejectedRecord, type TopicPartitionOffset } from '../index.js';
import { TestDriver } from '../testing/index.js';
import { MemoryTransport } from '../transport/memory.js';
import type { TransportProducer } from '../transport/types.js';

interface Reading {
  sensor: string;
  value: number;
  ts: number;
}

/** An embedded broker that refuses the records `refuse` names a reason for, and fails the app's sends (not the test's input) while `down`. */
class Refusing extends MemoryTransport {
  refuse: (record: OutgoingRecord) => string | undefined = () => undefined;
  down = false;
  refusals = 0;

  override async createProducer(): Promise<TransportProducer> {
    return {
      send: async (records): Promise<readonly TopicPartitionOffset[]> => {
        if (this.down && records.some((record) => record.topic !== 'readings')) throw new EddyError('TRANSPORT_FAILED', 'the broker does not answer', { retriable: true });
        const refused: RejectedRecord[] = [];
        const accepted: OutgoingRecord[] = [];
        for (const record of records) {
          const reason = this.refuse(record);
          if (reason === undefined) accepted.push(record);
          else refused.push({ record, reason, error: new EddyError('RECORD_REJECTED', `refused by the test broker: ${reason}`) });
        }
        const written = this.append(accepted);
        if (refused.length === 0) return written;
        this.refusals += refused.length;
        throw new RecordsRejectedError(refused, written);
      },
      close: async () => undefined,
    };
  }
}

/** A logger that keeps what it is told. */
function recording(): Logger & { lines: Array<{ level: string; message: string; fields: Record<string, unknown> }> } {
  const lines: Array<{ level: string; message: string; fields: Record<string, unknown> }> = [];
  const at = (level: string) => (fields: Record<string, unknown>, message: string) => void lines.push({ level, message, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

const FAR_AHEAD = 7_200_000;

/** Per sensor, sums of 10 s tumbling windows to `totals`; results stamped `end - 1`, so a reading 2 h ahead makes one the log refuses. */
function summing(options: { onError?: 'dead-letter' | 'stop'; logger?: Logger; stallTimeout?: Duration } = {}) {
  const app = createApp({ id: 'refused', onError: options.onError ?? 'dead-letter', idleTimeout: false, commitInterval: '1s', logger: options.logger ?? recording(), stallTimeout: options.stallTimeout });
  app
    .from<Reading>('readings', { timestamp: (reading) => reading.ts })
    .keyBy((reading) => reading.sensor)
    .tumbling('10s')
    .sum((reading) => reading.value)
    .onClose((window) => ({ sensor: window.key, start: window.start, total: window.value }))
    .to('totals');
  return app;
}

/** Refuses records for `totals` stamped more than an hour after `now()`, as Kafka's default `message.timestamp.after.max.ms` does. */
const tooFarAhead = (now: () => number) => (record: OutgoingRecord) => (record.topic === 'totals' && record.timestamp - now() > 3_600_000 ? 'INVALID_TIMESTAMP' : undefined);

describe('records the log refuses for themselves', () => {
  it('sent by the host in one turn: only the sends whose records were refused reject, each with its own records; the rest are written', async () => {
    const transport = new Refusing({ defaultPartitions: 1 });
    transport.refuse = (record) => (record.topic === 'readings' && record.timestamp < 0 ? 'INVALID_TIMESTAMP' : undefined);
    const app = summing();
    const driver = await TestDriver.start(app, { transport });
    const reading = (value: number, ts: number) => ({ value: { sensor: 's', value, ts }, key: 's', timestamp: ts });
    // One turn: one write, five sends.
    const outcomes = await Promise.allSettled([
      app.send('readings', reading(1, 1_000).value, { key: 's', timestamp: 1_000 }),
      app.send('readings', reading(2, -1).value, { key: 's', timestamp: -1 }),
      app.sendBatch('readings', [reading(3, 2_000), reading(4, -2), reading(5, -3)]),
      app.sendBatch('readings', [reading(6, 3_000), reading(7, 4_000)]),
      app.send('readings', reading(8, 5_000).value, { key: 's', timestamp: 5_000 }),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled', 'fulfilled']);
    const refusedOf = (outcome: PromiseSettledResult<void>) => (outcome.status === 'rejected' ? (outcome.reason as RecordsRejectedError).refused.map((rejected) => rejected.record.timestamp) : []);
    expect(refusedOf(outcomes[1]!)).toEqual([-1]);
    expect(refusedOf(outcomes[2]!)).toEqual([-2, -3]);
    expect(transport.records('readings').map((record) => record.timestamp)).toEqual([1_000, 2_000, 3_000, 4_000, 5_000]);
    await driver.stop();
  });

  it('sent by the host to a log that takes or fails a write whole (the embedded brokers): a turn’s sends share its one write and its outcome, and a failed write fails only its own turn’s sends', async () => {
    const transport = memoryTransport({ defaultPartitions: 1 });
    const writes: number[] = [];
    let failNext = false;
    const inner = transport.createProducer.bind(transport);
    transport.createProducer = async () => {
      const producer = await inner();
      return {
        ...producer,
        send: (records: readonly OutgoingRecord[]) => {
          // The app's own writes (windows, changelog) go through the same producer.
          if (records[0]?.topic !== 'readings') return producer.send(records);
          writes.push(records.length);
          if (!failNext) return producer.send(records);
          failNext = false;
          return Promise.reject(new EddyError('TRANSPORT_FAILED', 'the disk is full'));
        },
      };
    };
    const app = summing();
    const driver = await TestDriver.start(app, { transport });
    const reading = (value: number, ts: number) => ({ value: { sensor: 's', value, ts }, key: 's', timestamp: ts });
    const turn = (from: number) => [
      app.send('readings', reading(from, from * 1_000).value, { key: 's', timestamp: from * 1_000 }),
      app.sendBatch('readings', [reading(from + 1, (from + 1) * 1_000), reading(from + 2, (from + 2) * 1_000)]),
      app.send('readings', reading(from + 3, (from + 3) * 1_000).value, { key: 's', timestamp: (from + 3) * 1_000 }),
    ];
    const first = turn(1);
    const outcomes = await Promise.allSettled(first);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    failNext = true;
    const failed = await Promise.allSettled(turn(5));
    expect(failed.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(failed.map((outcome) => (outcome.status === 'rejected' ? String(outcome.reason) : ''))).toEqual(Array(3).fill(expect.stringMatching(/the disk is full/)));
    expect(await Promise.allSettled(turn(9)).then((settled) => settled.map((outcome) => outcome.status))).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    // One write per turn, of all its records; the failed turn's records are not in the log.
    expect(writes).toEqual([4, 4, 4]);
    expect(transport.records('readings').map((record) => record.timestamp)).toEqual([1, 2, 3, 4, 9, 10, 11, 12].map((n) => n * 1_000));
    await driver.stop();
  });

  it('go to the dead letters with the log’s reason; the rest of the input is processed and committed', async () => {
    const transport = new Refusing();
    const app = summing();
    const driver = await TestDriver.start(app, { transport });
    transport.refuse = tooFarAhead(() => driver.now());
    await driver.send('readings', { sensor: 'a', value: 1, ts: 1_000 });
    await driver.send('readings', { sensor: 'b', value: 5, ts: 2_000 });
    // Closes [0, 10 s) of a and b, and later its own window, stamped 2 h ahead: refused.
    await driver.send('readings', { sensor: 'far', value: 7, ts: FAR_AHEAD });
    await driver.send('readings', { sensor: 'a', value: 2, ts: FAR_AHEAD + 20_000 });
    await driver.advanceTime('2s');

    expect(driver.read('totals').map((record) => record.value)).toEqual([
      { sensor: 'a', start: 0, total: 1 },
      { sensor: 'b', start: 0, total: 5 },
    ]);
    const dead = driver.read('refused-dlq');
    expect(dead).toHaveLength(1);
    expect(dead[0]!.value).toEqual({ sensor: 'far', start: FAR_AHEAD, total: 7 });
    expect(dead[0]!.headers).toMatchObject({ 'error.code': 'RECORD_REJECTED', 'error.reason': 'INVALID_TIMESTAMP', 'step': 'to totals', 'timestamp': String(FAR_AHEAD + 9_999) });
    expect(dead[0]!.headers['error']).toMatch(/refused by the test broker: INVALID_TIMESTAMP/);
    const metrics = app.metrics();
    expect(metrics.deadLetters).toBe(1);
    expect(metrics.commitFailures).toBe(0);
    expect(Math.max(...Object.values(metrics.lastCommitAgeMs))).toBeLessThanOrEqual(1_000);
    expect(app.health()).toEqual({ status: 'ok', reasons: [] });
    await driver.stop();

    // Committed past the refused record: an app in its place reads nothing again.
    transport.refuse = () => undefined;
    const next = summing();
    const again = await TestDriver.start(next, { transport });
    await again.advanceTime('2s');
    expect(again.read('totals')).toHaveLength(2);
    expect(next.metrics().recordsIn).toBe(0);
    await again.stop();
  });

  it('under onError "stop": the app stops, tells its host once, and commits nothing past the refused record', async () => {
    const transport = new Refusing();
    const logger = recording();
    const app = summing({ onError: 'stop', logger });
    const states: Array<[AppState, AppState]> = [];
    const errors: EddyError[] = [];
    app.on('state', (state, previous) => states.push([state, previous]));
    app.on('error', (error) => errors.push(error));
    const driver = await TestDriver.start(app, { transport });
    transport.refuse = tooFarAhead(() => driver.now());
    await driver.send('readings', { sensor: 'a', value: 1, ts: 1_000 });
    await driver.advanceTime('2s');
    await driver.send('readings', { sensor: 'far', value: 7, ts: FAR_AHEAD }).catch(() => undefined);
    await driver.send('readings', { sensor: 'a', value: 2, ts: FAR_AHEAD + 20_000 }).catch(() => undefined);
    await app.stop();

    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(EddyError);
    expect(errors[0]!.code).toBe('RECORD_REJECTED');
    expect(app.failure).toBe(errors[0]);
    expect(app.state).toBe('failed');
    expect(states).toEqual([
      ['starting', 'created'],
      ['running', 'starting'],
      ['failed', 'running'],
    ]);
    expect(app.health().status).toBe('failed');
    expect(driver.read('refused-dlq')).toHaveLength(0);
    expect(logger.lines.some((line) => line.level === 'error' && /stopping on a bad record/.test(line.message))).toBe(true);

    // The records from the refused one on are read again by the next instance.
    transport.refuse = () => undefined;
    const next = summing();
    const again = await TestDriver.start(next, { transport });
    await again.advanceTime('2s');
    expect(next.metrics().recordsIn).toBe(2);
    expect(again.read('totals').map((record) => record.value)).toContainEqual({ sensor: 'far', start: FAR_AHEAD, total: 7 });
    await again.stop();
  });

  it('a refused state change (its changelog record) stops the app: its state could not be kept', async () => {
    const transport = new Refusing();
    transport.refuse = (record) => (record.topic.endsWith('-changelog') && (record.value?.byteLength ?? 0) > 0 ? 'MESSAGE_TOO_LARGE' : undefined);
    const app = summing();
    const errors: EddyError[] = [];
    app.on('error', (error) => errors.push(error));
    const driver = await TestDriver.start(app, { transport });
    await driver.send('readings', { sensor: 'a', value: 1, ts: 1_000 });
    await driver.advanceTime('2s').catch(() => undefined);
    await app.stop();
    expect(errors.map((error) => error.code)).toEqual(['STATE_FAILED']);
    expect(errors[0]!.message).toMatch(/refused-tumbling-10000ms-grace-0ms-sum-changelog \(MESSAGE_TOO_LARGE\)/);
    expect(app.state).toBe('failed');
  });

  it('a dead letter the log refuses goes again without its key and value, saying so', async () => {
    const transport = new Refusing();
    transport.refuse = (record) => (record.topic === 'refused-dlq' && record.value !== null ? 'MESSAGE_TOO_LARGE' : undefined);
    const app = summing();
    const driver = await TestDriver.start(app, { transport });
    await driver.send('readings', new TextEncoder().encode('{not json'), { key: 'a' });
    await driver.advanceTime('2s');
    const dead = driver.read('refused-dlq');
    expect(dead).toHaveLength(1);
    expect(dead[0]!.value).toBeNull();
    expect(dead[0]!.headers).toMatchObject({ 'error.code': 'DESERIALIZATION_FAILED', 'offset': '0' });
    expect(dead[0]!.headers['dropped']).toMatch(/key and value \(MESSAGE_TOO_LARGE/);
    expect(app.state).toBe('running');
    await driver.stop();
  });
});

describe('a task that cannot commit', () => {
  it('shows in metrics, logs and health once it has not committed for stallTimeout, and recovers when sends go through', async () => {
    const transport = new Refusing();
    const logger = recording();
    const app = summing({ logger, stallTimeout: '5s' });
    const driver = await TestDriver.start(app, { transport });
    await driver.send('readings', { sensor: 'a', value: 1, ts: 1_000 });
    await driver.advanceTime('1s');
    expect(app.health()).toEqual({ status: 'ok', reasons: [] });

    transport.down = true;
    await driver.send('readings', { sensor: 'a', value: 2, ts: 12_000 });
    await driver.advanceTime('4s');
    expect(app.health().status, 'within the bound').toBe('ok');
    await driver.advanceTime('3s');
    const health = app.health();
    expect(health.status).toBe('degraded');
    expect(health.reasons.join('\n')).toMatch(/sends have failed for \d+ ms|no commit for \d+ ms/);
    expect(app.metrics().commitFailures).toBeGreaterThanOrEqual(5);
    expect(Math.max(...Object.values(app.metrics().lastCommitAgeMs))).toBeGreaterThan(5_000);
    expect(app.metrics('prometheus')).toMatch(/eddy_healthy\{app="refused"\} 0/);
    expect(logger.lines.filter((line) => line.level === 'warn' && line.message === 'a task is stuck: its work is not committed').length).toBeGreaterThan(0);
    // Nothing is lost while it lasts: the window closed meanwhile is produced once sends go through.
    expect(driver.read('totals')).toHaveLength(0);

    transport.down = false;
    await driver.advanceTime('2s');
    expect(app.health()).toEqual({ status: 'ok', reasons: [] });
    expect(driver.read('totals').map((record) => record.value)).toEqual([{ sensor: 'a', start: 0, total: 1 }]);
    expect(logger.lines.some((line) => line.message === 'a stuck task commits again')).toBe(true);
    await driver.stop();
  });
});

describe('the app’s life, as its host sees it', () => {
  it('moves through its states, each announced once; listeners can be removed; a throwing listener does not hurt', async () => {
    const app = summing();
    const seen: AppState[] = [];
    const removed: AppState[] = [];
    app.on('state', () => {
      throw new Error('a careless listener');
    });
    app.on('state', (state) => seen.push(state));
    const off = app.on('state', (state) => removed.push(state));
    expect(app.state).toBe('created');
    expect(app.health()).toEqual({ status: 'degraded', reasons: ['the app is created'] });
    const driver = await TestDriver.start(app);
    off();
    expect(app.state).toBe('running');
    await driver.send('readings', { sensor: 'a', value: 1, ts: 1_000 });
    await driver.stop();
    expect(seen).toEqual(['starting', 'running', 'stopping', 'stopped']);
    expect(removed).toEqual(['starting', 'running']);
    expect(app.failure).toBeUndefined();
    expect(app.health()).toEqual({ status: 'failed', reasons: ['the app is stopped'] });
    expect(() => app.on('nothing' as 'state', () => undefined)).toThrow(/unknown event "nothing"/);
  });

  it('an error nobody listens for is logged, never thrown into the host', async () => {
    const logger = recording();
    const app = summing({ onError: 'stop', logger });
    const driver = await TestDriver.start(app);
    await driver.send('readings', new TextEncoder().encode('{not json'), { key: 'a' });
    await app.stop();
    expect(app.state).toBe('failed');
    expect(app.failure?.code).toBe('DESERIALIZATION_FAILED');
    expect(logger.lines.some((line) => line.level === 'error' && /no app\.on\('error'\) listener/.test(line.message))).toBe(true);
  });

  it('is rebalancing while partitions move to a member that joins or from one that leaves', async () => {
    const transport = new MemoryTransport({ defaultPartitions: 2 });
    const first = summing();
    const second = summing();
    const seen: AppState[] = [];
    first.on('state', (state) => seen.push(state));
    await TestDriver.start(first, { transport });
    await TestDriver.start(second, { transport });
    expect(seen).toEqual(['starting', 'running', 'rebalancing', 'running']);
    expect(first.metrics().tasks + second.metrics().tasks).toBe(4);
    await second.stop();
    expect(seen).toEqual(['starting', 'running', 'rebalancing', 'running', 'rebalancing', 'running']);
    expect(first.metrics().tasks).toBe(4);
    await first.stop();
  });

  it('a transport that fails for good stops the app, which tells its host once', async () => {
    class Failing extends MemoryTransport {
      fail: ((error: EddyError) => void) | undefined;
      override async subscribe(...args: Parameters<MemoryTransport['subscribe']>) {
        this.fail = (error) => args[2].onFatal?.(error);
        return super.subscribe(...args);
      }
    }
    const transport = new Failing();
    const app = summing();
    const errors: EddyError[] = [];
    const states: AppState[] = [];
    app.on('error', (error) => errors.push(error));
    app.on('state', (state) => states.push(state));
    const driver = await TestDriver.start(app, { transport });
    await driver.send('readings', { sensor: 'a', value: 1, ts: 1_000 });
    const failure = new EddyError('TRANSPORT_FAILED', 'the consumer failed and does not restart');
    transport.fail!(failure);
    transport.fail!(new EddyError('TRANSPORT_FAILED', 'and again'));
    await app.stop();
    expect(errors).toEqual([failure]);
    expect(app.failure).toBe(failure);
    expect(states).toEqual(['starting', 'running', 'failed']);
    expect(app.health()).toEqual({ status: 'failed', reasons: ['failed: TRANSPORT_FAILED: the consumer failed and does not restart'] });
    await expect(app.send('readings', { sensor: 'a', value: 1, ts: 2_000 })).rejects.toMatchObject({ code: 'APP_STOPPED' });
  });

  it('a start that fails leaves the app failed, with the reason, and emits no error event', async () => {
    const app = createApp({ id: 'empty', logger: recording() });
    const errors: unknown[] = [];
    app.on('error', (error) => errors.push(error));
    await expect(app.start()).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    expect(app.state).toBe('failed');
    expect(app.failure?.code).toBe('CONFIG_INVALID');
    expect(errors).toEqual([]);
    await expect(app.stop()).resolves.toBeUndefined();
  });
});
