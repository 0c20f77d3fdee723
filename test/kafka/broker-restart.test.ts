/**
 * A broker that dies under a running app: an Eddy app (in this process, durable state) runs a
 * windowed pipeline on a broker of its own; in the middle of the input the broker is killed with
 * SIGKILL, stays down a few seconds and comes back on the same ports and data. The app rides
 * through: processing resumes, and in the end every window has been reported with the correct
 * value (at least once: a window may be reported twice, never with a wrong value).
 *
 * Three cases: an outage the clients' retries outlast (the default retry budget is about a minute:
 * requests hang, then succeed), one that outlasts them (a short retry budget: sends fail and
 * are retried by the runtime, the consumer fails and starts again, partitions are lost and
 * assigned again), and the latter under exactly-once, where transactions fail and their
 * tasks start again from their last commit: every window exactly once (read_committed).
 *
 * The shared broker of the run is not touched; each test starts (and restarts) its own.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp, partitionForKey, type App } from '@eddy/core';
import { kafkaTransport, type KafkaRetryOptions } from '@eddy/kafka';
import { levelState } from '@eddy/state';
import type { Admin } from '@platformatic/kafka';
import { expect, it } from 'vitest';
import { startKafka, type KafkaBroker } from '../../scripts/src/kafka.ts';
import { describeKafka, uniqueName } from './broker.ts';
import { allCommitted, cleanUpAfterOutage, createTopics, gatherTopic, recordingLogger, sensorRounds, sleep, taskTroubles, testAdmin, testProducer, troubles, waitFor, type TestProducer } from './helpers.ts';

const partitions = 3;
const windowMs = 1_000;
const stepMs = 50; // event time between two readings of a sensor
const steps = 200; // 10 s of event time: 10 windows per sensor
const stepsPerRound = 10;
const downMs = 4_000;

interface Reading {
  sensor: string;
  ts: number;
  value: number;
}

interface Result {
  sensor: string;
  start: number;
  sum: number;
}

/**
 * Runs the scenario: the app starts, half the input arrives, the broker is SIGKILLed as soon as
 * the app has taken in the next round, stays down `downMs`, and restarts on the same ports and
 * data; the rest of the input follows, then a far-future reading per sensor.
 */
async function outage(name: string, retry: KafkaRetryOptions | undefined, guarantee: 'at-least-once' | 'exactly-once' = 'at-least-once'): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'eddy-broker-restart-'));
  const dataDir = join(scratch, 'kafka');
  const stateDir = join(scratch, 'state');
  const log = (line: string) => console.log(`[broker-restart ${name}] ${line}`);
  // A SIGKILLed broker's controller keeps its old registration until the broker session times
  // out (9 s by default) and only then lets the restarted broker in; 3 s keeps the test short.
  const config = { 'broker.session.timeout.ms': 3_000, 'broker.heartbeat.interval.ms': 500 };
  let broker: KafkaBroker | undefined;
  const logger = recordingLogger();
  let app: App | undefined;
  let producer: TestProducer | undefined;
  let admin: Admin | undefined;
  let output: Awaited<ReturnType<typeof gatherTopic>> | undefined;
  const appId = uniqueName(`broker-restart-${name}`);
  try {
    broker = await startKafka({ dataDir, log, config });
    const { port, controllerPort, brokers } = broker;
    const inTopic = `${appId}-in`;
    const outTopic = `${appId}-out`;

    const sensors = Array.from({ length: 24 }, (_, index) => `sensor-${index}`);
    expect(new Set(sensors.map((sensor) => partitionForKey(new TextEncoder().encode(sensor), partitions))).size).toBe(partitions);
    const { base, farFuture, expected, rounds } = sensorRounds(sensors, { windowMs, stepMs, steps, stepsPerRound });

    await createTopics(brokers, [
      { name: inTopic, partitions },
      { name: outTopic, partitions: 1 },
    ]);
    app = createApp({
      id: appId,
      transport: kafkaTransport({ brokers, logger, ...(retry ? { retry } : {}) }),
      state: levelState({ dir: stateDir, logger: { warn: () => undefined, info: () => undefined } }),
      idleTimeout: false,
      commitInterval: '300ms',
      guarantee,
      logger,
    });
    app
      .from<Reading>(inTopic, { timestamp: (reading) => reading.ts })
      .keyBy((reading) => reading.sensor)
      .tumbling(windowMs)
      .sum((reading) => reading.value)
      .onClose((window) => ({ sensor: window.key, start: window.start, sum: window.value }))
      .to(outTopic);
    await app.start();
    const running = app;

    // The first half of the input arrives while the app runs.
    producer = testProducer(brokers);
    const killAtRound = rounds.length / 2;
    for (let round = 0; round < killAtRound; round++) {
      await producer.send(inTopic, rounds[round]!);
      await sleep(100);
    }
    const readBefore = running.metrics().recordsIn;
    await producer.send(inTopic, rounds[killAtRound]!);
    await waitFor('the app to take in the round before the kill', () => running.metrics().recordsIn > readBefore, { timeoutMs: 10_000, intervalMs: 5 });
    await producer.close();
    producer = undefined;

    // Kill the broker while the app works on that round: its sends and commits are in flight.
    const killedAt = Date.now();
    process.kill(broker.pid, 'SIGKILL');
    await broker.stop();
    broker = undefined;
    await sleep(downMs);
    broker = await startKafka({ port, controllerPort, dataDir, log, config });
    log(`broker back ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill; app troubles so far ${JSON.stringify(troubles(logger.entries))}`);

    // The rest of the input, through a new producer.
    producer = testProducer(brokers);
    for (let round = killAtRound + 1; round < rounds.length; round++) {
      await producer.send(inTopic, rounds[round]!);
      await sleep(100);
    }

    // Processing resumes: everything (input and the repartition topic) is processed and committed.
    admin = testAdmin(brokers);
    const repartition = (await admin.listTopics()).filter((topic) => topic.startsWith(`${appId}-`) && topic.endsWith('-repartition'));
    expect(repartition).toHaveLength(1);
    const committed = admin;
    // Under exactly-once the repartition topic's partitions end with transaction markers: the
    // reading tasks move past them, so their commits reach the end too.
    const watched = [inTopic, ...repartition];
    // On a failure: which tasks do not run, and why (health, and the rebuilds with their errors).
    const explain = () => taskTroubles(running, logger.entries);
    try {
      await waitFor('every record to be processed and committed', () => allCommitted(committed, appId, watched), { timeoutMs: 45_000, intervalMs: 250, explain });
    } catch (error) {
      const { recordsIn, tasks, lag } = running.metrics();
      throw new Error(`${(error as Error).message}\n(app: ${JSON.stringify({ recordsIn, tasks, lag })}; troubles: ${JSON.stringify(troubles(logger.entries))})`);
    }

    // A far-future reading per sensor closes the last windows.
    await producer.send(inTopic, sensors.map((sensor) => ({ key: sensor, value: JSON.stringify({ sensor, ts: farFuture, value: 0 }), timestamp: farFuture })));
    output = await gatherTopic(brokers, outTopic);
    const results = () => output!.records.map((record) => JSON.parse(record.value!) as Result);
    await waitFor(
      'every window to be reported',
      () => {
        const seen = new Set(results().map((result) => `${result.sensor}@${result.start}`));
        return [...expected.keys()].every((window) => seen.has(window));
      },
      { timeoutMs: 30_000, intervalMs: 200, explain },
    );

    const all = results();
    const wrong = all
      .filter((result) => result.sum !== expected.get(`${result.sensor}@${result.start}`))
      .map((result) => ({ ...result, start: result.start - base, expected: expected.get(`${result.sensor}@${result.start}`) }));
    expect(wrong, `windows with a wrong value (start relative to the first window; app troubles: ${JSON.stringify(troubles(logger.entries))})`).toEqual([]);
    expect(new Set(all.map((result) => `${result.sensor}@${result.start}`)).size).toBe(expected.size);
    if (guarantee === 'exactly-once') expect(all.length, 'each window once (read_committed)').toBe(expected.size);
    expect(running.failure).toBeUndefined();
    if (running.metrics().tasks !== partitions * 2) expect.fail(`the app runs every task again\n${explain()}`);
    log(`${all.length} results for ${expected.size} windows; app troubles ${JSON.stringify(troubles(logger.entries))}`);
  } finally {
    await output?.stop().catch(() => undefined);
    await producer?.close().catch(() => undefined);
    await cleanUpAfterOutage({ app, appId, admin, broker, scratch });
  }
}

describeKafka('an Eddy app across a broker restart (SIGKILL, same ports and data)', () => {
  it('rides out an outage shorter than its clients retry: processing resumes, no window lost, no wrong value', async () => {
    await outage('retried', undefined);
  }, 120_000);

  it('recovers from an outage longer than its clients retry (sends fail, the consumer crashes and restarts): no window lost, no wrong value', async () => {
    await outage('gave-up', { retries: 3, initialRetryTime: '100ms', maxRetryTime: '1s' });
  }, 120_000);

  it('exactly-once: recovers from an outage longer than its clients retry (transactions fail, their tasks start again): every window once, with the right value', async () => {
    await outage('exactly-once', { retries: 3, initialRetryTime: '100ms', maxRetryTime: '1s' }, 'exactly-once');
  }, 120_000);
});
