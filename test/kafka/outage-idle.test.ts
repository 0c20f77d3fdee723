/**
 * A broker outage is not idleness: an Eddy app in event time, with the default idle timeout (5 s),
 * counts readings per sensor in hopping windows while a producer keeps writing readings stamped
 * with the clock. The broker is SIGKILLed, stays down about 15 s and comes back on the same ports
 * and data; the producer keeps creating readings throughout (its sends hang until the broker is
 * back, then deliver the backlog). Nothing was quiet: the gap in delivery must not move stream
 * time ahead, so no reading is late and every window's count is exact against a brute-force
 * reference over what the input topic holds in the end (each log record counts once, as the app
 * counts it; a window reported twice with the same count is fine, at least once).
 *
 * One input partition: with several, the backlog of one partition reaches the repartition task
 * before another's and its readings are late by event-time rules, outage or not.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp, type App } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { levelState } from '@eddy/state';
import type { Admin } from '@platformatic/kafka';
import { expect, it } from 'vitest';
import { startKafka, type KafkaBroker } from '../../scripts/src/kafka.ts';
import { describeKafka, uniqueName } from './broker.ts';
import { allCommitted, cleanUpAfterOutage, createTopics, endOffsets, gatherTopic, recordingLogger, sleep, testAdmin, testProducer, troubles, waitFor, type TestProducer } from './helpers.ts';

const sizeMs = 2_000;
const slideMs = 1_000;
const sensors = Array.from({ length: 8 }, (_, index) => `sensor-${index}`);
const readingsPerSensorPerTick = 2;
const tickMs = 100;
const beforeKillMs = 10_000;
// The restarted broker takes about 5 s to serve again: about 15 s without a broker in all.
const downMs = 10_000;
const afterBackMs = 10_000;

interface Reading {
  sensor: string;
  ts: number;
  seq: number;
}

interface Result {
  sensor: string;
  start: number;
  count: number;
}

/** The starts of the hopping windows `[k * slide, k * slide + size)` that hold `ts`. */
function windowStarts(ts: number): number[] {
  const starts: number[] = [];
  for (let start = Math.floor(ts / slideMs) * slideMs; start > ts - sizeMs; start -= slideMs) starts.push(start);
  return starts;
}

/**
 * Keeps creating readings every `tickMs` (event time = the clock when created) and sends them in
 * order, one send at a time, each reading until it is acknowledged. Sends hang while the broker
 * is down (a long retry budget: an idempotent producer that retries a request itself never writes
 * it twice), so what was created meanwhile goes out as one backlog once the broker is back.
 */
function startProducing(producer: TestProducer, topic: string) {
  let queue: Reading[] = [];
  let seq = 0;
  let ticking = true;
  let failedSends = 0;
  const created: Reading[] = [];
  const ticker = setInterval(() => {
    const ts = Date.now();
    for (const sensor of sensors) {
      for (let index = 0; index < readingsPerSensorPerTick; index++) {
        const reading = { sensor, ts, seq: seq++ };
        created.push(reading);
        queue.push(reading);
      }
    }
  }, tickMs);
  const sending = (async () => {
    while (ticking || queue.length > 0) {
      if (queue.length === 0) {
        await sleep(20);
        continue;
      }
      const batch = queue;
      queue = [];
      try {
        await producer.send(topic, batch.map((reading) => ({ key: reading.sensor, value: JSON.stringify(reading), timestamp: reading.ts })));
      } catch {
        // Sent again, in order; the reference reads the log, so a copy written twice counts as the app counts it.
        failedSends++;
        queue = [...batch, ...queue];
        await sleep(200);
      }
    }
  })();
  return {
    created,
    failedSends: () => failedSends,
    pending: () => queue.length,
    /** Stops creating readings and resolves once every one created has been acknowledged. */
    async stop() {
      clearInterval(ticker);
      ticking = false;
      await sending;
    },
    halt() {
      clearInterval(ticker);
      ticking = false;
      queue = [];
    },
  };
}

describeKafka('event time across a broker outage, default idle timeout', () => {
  it('a delivery gap is not idleness: no late reading, every hopping window exact', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'eddy-outage-idle-'));
    const dataDir = join(scratch, 'kafka');
    const stateDir = join(scratch, 'state');
    const log = (line: string) => console.log(`[outage-idle] ${line}`);
    // A SIGKILLed broker's controller keeps its old registration until the broker session times
    // out (9 s by default) and only then lets the restarted broker in; 3 s keeps the test short.
    const config = { 'broker.session.timeout.ms': 3_000, 'broker.heartbeat.interval.ms': 500 };
    let broker: KafkaBroker | undefined;
    const logger = recordingLogger();
    let app: App | undefined;
    let producer: TestProducer | undefined;
    let producing: ReturnType<typeof startProducing> | undefined;
    let admin: Admin | undefined;
    let input: Awaited<ReturnType<typeof gatherTopic>> | undefined;
    let output: Awaited<ReturnType<typeof gatherTopic>> | undefined;
    const appId = uniqueName('outage-idle');
    const began = Date.now();
    try {
      broker = await startKafka({ dataDir, log, config });
      const { port, controllerPort, brokers } = broker;
      const inTopic = `${appId}-in`;
      const outTopic = `${appId}-out`;
      await createTopics(brokers, [
        { name: inTopic, partitions: 1 },
        { name: outTopic, partitions: 1 },
      ]);

      app = createApp({
        id: appId,
        transport: kafkaTransport({ brokers, logger }),
        state: levelState({ dir: stateDir, logger: { warn: () => undefined, info: () => undefined } }),
        time: 'event',
        commitInterval: '300ms',
        logger,
      });
      app
        .from<Reading>(inTopic, { timestamp: (reading) => reading.ts })
        .keyBy((reading) => reading.sensor)
        .hopping(sizeMs, slideMs)
        .count()
        .onClose((window) => ({ sensor: window.key, start: window.start, count: window.value }))
        .to(outTopic);
      await app.start();
      const running = app;

      // Retries for about a minute, well past the outage: the send hangs, then succeeds.
      producer = testProducer(brokers, { retries: 60, retryDelayMs: 1_000 });
      producing = startProducing(producer, inTopic);

      await sleep(beforeKillMs);
      expect(running.metrics().recordsIn, 'the app takes in readings before the outage').toBeGreaterThan(0);

      const killedAt = Date.now();
      process.kill(broker.pid, 'SIGKILL');
      await broker.stop();
      broker = undefined;
      await sleep(downMs);
      // Nothing silent: the host sees the tasks stuck (stallTimeout: five 300 ms commit intervals).
      const whileDown = running.health();
      expect(whileDown.status, JSON.stringify(whileDown)).toBe('degraded');
      expect(whileDown.reasons.some((reason) => /no commit for \d+ ms|sends have failed/.test(reason))).toBe(true);
      expect(Math.max(...Object.values(running.metrics().lastCommitAgeMs))).toBeGreaterThan(5_000);
      broker = await startKafka({ port, controllerPort, dataDir, log, config });
      const backAt = Date.now();
      log(`broker back ${((backAt - killedAt) / 1000).toFixed(1)} s after the kill; late so far ${running.metrics().lateRecords}; readings waiting to be sent ${producing.pending()}`);

      await sleep(afterBackMs);
      await producing.stop();
      const { created } = producing;
      log(`${created.length} readings created and acknowledged (${producing.failedSends()} failed sends); ${((Date.now() - backAt) / 1000).toFixed(1)} s after the broker came back`);

      // Everything is processed and committed (input, and the repartition topic if used).
      admin = testAdmin(brokers);
      const committed = admin;
      const repartition = (await admin.listTopics()).filter((topic) => topic.startsWith(`${appId}-`) && topic.endsWith('-repartition'));
      const watched = [inTopic, ...repartition];
      const settled = async (what: string) => {
        try {
          await waitFor(what, () => allCommitted(committed, appId, watched), { timeoutMs: 45_000, intervalMs: 250 });
        } catch (error) {
          const { recordsIn, tasks, lag, lateRecords } = running.metrics();
          throw new Error(`${(error as Error).message} (app: ${JSON.stringify({ failure: running.failure?.message, recordsIn, tasks, lag, lateRecords })}; troubles: ${JSON.stringify(troubles(logger.entries))})`);
        }
      };
      await settled('every reading to be processed and committed');
      await waitFor('the app to be healthy again', () => running.health().status === 'ok', { timeoutMs: 20_000, intervalMs: 100 });
      expect(logger.entries.some((entry) => entry.message === 'a task is stuck: its work is not committed')).toBe(true);

      // A far-future reading per sensor closes the last windows; its own windows are left out.
      const farFuture = Math.max(...created.map((reading) => reading.ts)) + 10 * sizeMs;
      await producer.send(inTopic, sensors.map((sensor) => ({ key: sensor, value: JSON.stringify({ sensor, ts: farFuture, seq: -1 }), timestamp: farFuture })));
      await settled('the far-future readings to be processed and committed');

      // The reference: what the input topic holds, each log record once.
      const [inEnd] = await endOffsets(admin, inTopic);
      const [outEnd] = await endOffsets(admin, outTopic);
      input = await gatherTopic(brokers, inTopic);
      output = await gatherTopic(brokers, outTopic);
      const gatheredInput = input;
      const gatheredOutput = output;
      await waitFor('the input topic to be read back', () => gatheredInput.records.length >= inEnd!, { timeoutMs: 30_000, intervalMs: 100 });
      await waitFor('the output topic to be read back', () => gatheredOutput.records.length >= outEnd!, { timeoutMs: 30_000, intervalMs: 100 });

      const logged = input.records.map((record) => JSON.parse(record.value!) as Reading).filter((reading) => reading.ts < farFuture);
      const expected = new Map<string, number>();
      for (const reading of logged) {
        for (const start of windowStarts(reading.ts)) expected.set(`${reading.sensor}@${start}`, (expected.get(`${reading.sensor}@${start}`) ?? 0) + 1);
      }
      const results = output.records.map((record) => JSON.parse(record.value!) as Result).filter((result) => result.start + sizeMs <= farFuture);
      const reported = new Map<string, number[]>();
      for (const result of results) reported.set(`${result.sensor}@${result.start}`, [...(reported.get(`${result.sensor}@${result.start}`) ?? []), result.count]);

      const short: string[] = [];
      const over: string[] = [];
      const missing: string[] = [];
      for (const [window, count] of expected) {
        const counts = reported.get(window);
        if (!counts) missing.push(window);
        else if (counts.some((value) => value < count)) short.push(`${window}: ${counts.join('/')} of ${count}`);
        else if (counts.some((value) => value > count)) over.push(`${window}: ${counts.join('/')} of ${count}`);
      }
      const extra = [...reported.keys()].filter((window) => !expected.has(window));
      const { lateRecords } = running.metrics();
      const summary =
        `${lateRecords} late records; of ${expected.size} windows ${short.length} short, ${missing.length} missing, ${over.length} over, ${extra.length} extra; ` +
        `${logged.length} readings in the log (${logged.length - created.length} copies), ${results.length} results; ` +
        `${((Date.now() - began) / 1000).toFixed(1)} s; app troubles ${JSON.stringify(troubles(logger.entries))}`;
      log(summary);
      if (short.length > 0) log(`short, first few: ${short.slice(0, 5).join('; ')}`);

      expect(lateRecords, summary).toBe(0);
      expect({ short: short.slice(0, 10), over: over.slice(0, 10), missing: missing.slice(0, 10), extra: extra.slice(0, 10) }, summary).toEqual({ short: [], over: [], missing: [], extra: [] });
      expect(running.failure).toBeUndefined();
    } finally {
      producing?.halt();
      await input?.stop().catch(() => undefined);
      await output?.stop().catch(() => undefined);
      await producer?.close().catch(() => undefined);
      await cleanUpAfterOutage({ app, appId, admin, broker, scratch });
    }
  }, 150_000);
});
