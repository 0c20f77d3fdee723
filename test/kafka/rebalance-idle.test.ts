/**
 * A partition moved by a rebalance whose first fetch is slow is behind, not idle. Two processes of
 * one app, event time that follows the clock and the default idle timeout (5 s): the first runs
 * alone while readings keep coming; the second joins, takes a partition over, and is stopped
 * (SIGSTOP) for 8 s right after, as a long pause or a slow first fetch would hold it. When it goes
 * on, its timers fire before its fetches; the records written meanwhile wait in the log. By the
 * broker's word it is behind, so its stream time waits: no reading is late, and every window's sum
 * is exact against the input topic as read back. The second member also comes after a member that
 * was not there before (a member added), and the test runs twice.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { partitionForKey } from '@eddy/core';
import { expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';
import { kill, startMember, type Member } from './children.ts';
import { allCommitted, assignment, createTopics, deleteAppTopics, endOffsets, gatherTopic, sleep, testAdmin, testProducer, waitFor, type TestProducer } from './helpers.ts';

const partitions = 2;
const windowMs = 5_000; // the fixture's tumbling window
const sensors = Array.from({ length: 8 }, (_, index) => `sensor-${index}`);

interface Reading {
  sensor: string;
  ts: number;
  value: number;
}

interface Result {
  sensor: string;
  start: number;
  sum: number;
  by: string;
}

/** Every 100 ms, a reading per sensor stamped with the clock; `stop()` resolves once all are written. */
function keepProducing(producer: TestProducer, topic: string) {
  let value = 0;
  let running = true;
  const sending = (async () => {
    while (running) {
      const ts = Date.now();
      const readings: Reading[] = sensors.map((sensor) => ({ sensor, ts, value: value++ }));
      await producer.send(topic, readings.map((reading) => ({ key: reading.sensor, value: JSON.stringify(reading), timestamp: ts })));
      await sleep(100);
    }
  })();
  return {
    async stop() {
      running = false;
      await sending;
    },
  };
}

describeKafka('a partition taken over by a member whose first fetch is slow', (brokers) => {
  for (const run of [1, 2]) {
    it(`is behind, not idle: no late reading, every window exact (run ${run})`, async () => {
      const appId = uniqueName('rebalance-idle');
      const inTopic = `${appId}-in`;
      const outTopic = `${appId}-out`;
      await createTopics(brokers, [
        { name: inTopic, partitions },
        { name: outTopic, partitions: 1 },
      ]);
      expect(new Set(sensors.map((sensor) => partitionForKey(new TextEncoder().encode(sensor), partitions))).size).toBe(partitions);
      const admin = testAdmin(brokers);
      const producer = testProducer(brokers);
      const members: Member[] = [];
      const directories: string[] = [];
      let output: Awaited<ReturnType<typeof gatherTopic>> | undefined;
      let input: Awaited<ReturnType<typeof gatherTopic>> | undefined;
      try {
        output = await gatherTopic(brokers, outTopic);
        const member = async (name: string) => {
          const stateDir = await mkdtemp(join(tmpdir(), 'eddy-rebalance-idle-'));
          directories.push(stateDir);
          // The default idle timeout; a session long enough to ride out the pause.
          const started = startMember(name, [brokers.join(','), appId, inTopic, outTopic, stateDir, '--idle-timeout', '5s', '--session-timeout', '30s']);
          members.push(started);
          await started.started;
          return started;
        };

        const first = await member('first');
        const producing = keepProducing(producer, inTopic);
        await sleep(6_000);

        const second = await member('second');
        // Stopped as soon as it holds its partition: it fetches nothing for 8 s, while readings keep coming.
        process.kill(second.child.pid!, 'SIGSTOP');
        await sleep(8_000);
        process.kill(second.child.pid!, 'SIGCONT');
        await waitFor('the group to settle with a partition each', async () => [...((await assignment(admin, appId, inTopic))?.values() ?? [])].every((held) => held.length === 1), { timeoutMs: 30_000, intervalMs: 200 });
        await sleep(5_000);
        await producing.stop();

        // A reading per sensor far ahead closes every window of the input.
        const farAhead = Date.now() + 30_000;
        await producer.send(inTopic, sensors.map((sensor) => ({ key: sensor, value: JSON.stringify({ sensor, ts: farAhead, value: 0 }), timestamp: Date.now() })));
        await waitFor('every reading processed and committed', () => allCommitted(admin, appId, [inTopic]), { timeoutMs: 30_000, intervalMs: 200 });

        // The reference: sums per window over the input as the log holds it.
        input = await gatherTopic(brokers, inTopic);
        const end = (await endOffsets(admin, inTopic)).reduce((sum, partitionEnd) => sum + partitionEnd, 0);
        await waitFor('the input read back', () => input!.records.length >= end, { timeoutMs: 20_000 });
        const expected = new Map<string, number>();
        for (const record of input.records) {
          const reading = JSON.parse(record.value!) as Reading;
          if (reading.ts === farAhead) continue;
          const window = `${reading.sensor}@${Math.floor(reading.ts / windowMs) * windowMs}`;
          expected.set(window, (expected.get(window) ?? 0) + reading.value);
        }
        const results = () => output!.records.map((record) => JSON.parse(record.value!) as Result);
        await waitFor('every window reported', () => new Set(results().map((result) => `${result.sensor}@${result.start}`)).size >= expected.size, { timeoutMs: 30_000, intervalMs: 200 });

        const late = members.reduce((sum, each) => sum + (each.metrics()?.lateRecords ?? 0), 0);
        const wrong = results().filter((result) => expected.get(`${result.sensor}@${result.start}`) !== result.sum);
        expect({ late, wrong: wrong.slice(0, 5), wrongCount: wrong.length }, `members: ${members.map((each) => `${each.name} ${JSON.stringify(each.metrics())}`).join('; ')}`).toEqual({ late: 0, wrong: [], wrongCount: 0 });
        expect(new Set(results().map((result) => `${result.sensor}@${result.start}`)).size).toBe(expected.size);
        expect(second.metrics()?.tasks, 'the second member holds a partition of both sub-topologies').toBe(2);
        expect(first.metrics()?.tasks).toBe(2);
      } finally {
        await Promise.all(members.map((each) => kill(each.child)));
        await input?.stop().catch(() => undefined);
        await output?.stop().catch(() => undefined);
        await producer.close().catch(() => undefined);
        await deleteAppTopics(admin, appId);
        await admin.close().catch(() => undefined);
        await Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true })));
      }
    }, 120_000);
  }
});
