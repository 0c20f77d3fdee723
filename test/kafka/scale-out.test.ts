/**
 * Scale-out on the real broker: three processes of one app (one consumer group, a state dir
 * each) share a six-partition input while it is produced. One of them is killed with SIGKILL in
 * the middle; the group hands its partitions to the other two, which restore the state of those
 * partitions from the changelog and carry on. In the end every window has been reported with the
 * correct value (at least once: a window may be reported twice, never with a wrong value).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { partitionForKey } from '@eddy/core';
import { expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';
import { kill, startMember, type Member } from './children.ts';
import { allCommitted, assignment, createTopics, deleteAppTopics, gatherTopic, sensorRounds, sleep, testAdmin, testProducer, waitFor } from './helpers.ts';

const partitions = 6;
const windowMs = 5_000; // the fixture's tumbling window
const stepMs = 100; // event time between two readings of a sensor
const steps = 300; // 30 s of event time: 6 windows per sensor
const stepsPerRound = 20; // one produce call: 2 s of event time for every sensor

interface Result {
  sensor: string;
  start: number;
  sum: number;
  by: string;
}

describeKafka('scale-out on Kafka: three processes, one killed', (brokers) => {
  it('spreads partitions over three processes and, after one is SIGKILLed, the others take them over with their state: no window lost, no wrong value', async () => {
    const appId = uniqueName('scale-out');
    const inTopic = `${appId}-in`;
    const outTopic = `${appId}-out`;
    await createTopics(brokers, [
      { name: inTopic, partitions },
      { name: outTopic, partitions: 1 },
    ]);

    // 36 sensors, 6 on each partition (keys land by murmur2, as the producer and the app put them).
    const sensors = Array.from({ length: 36 }, (_, index) => `sensor-${index}`);
    const partitionOf = new Map(sensors.map((sensor) => [sensor, partitionForKey(new TextEncoder().encode(sensor), partitions)]));
    expect(new Set(partitionOf.values()).size, 'the sensors cover every partition').toBe(partitions);

    const { base, farFuture, expected, rounds } = sensorRounds(sensors, { windowMs, stepMs, steps, stepsPerRound });

    const admin = testAdmin(brokers);
    const producer = testProducer(brokers);
    const directories: string[] = [];
    const members: Member[] = [];
    let output: Awaited<ReturnType<typeof gatherTopic>> | undefined;
    let repartition: Awaited<ReturnType<typeof gatherTopic>> | undefined;
    const results = () => output!.records.map((record) => JSON.parse(record.value!) as Result);
    try {
      output = await gatherTopic(brokers, outTopic);

      for (const name of ['member-a', 'member-b', 'member-c']) {
        const stateDir = await mkdtemp(join(tmpdir(), `eddy-scale-${name}-`));
        directories.push(stateDir);
        // One named member of the group; it commits every second, so that a kill soon after a batch was
        // processed meets records already passed on whose input offsets are not committed.
        members.push(startMember(name, [brokers.join(','), appId, inTopic, outTopic, stateDir, '--session-timeout', '6s', '--commit-interval', '1s']));
      }
      await Promise.all(members.map((member) => member.started));
      // The app created its repartition topic on start; reading it shows what the kill made repeat.
      const repartitionTopics = (await admin.listTopics()).filter((topic) => topic.startsWith(`${appId}-`) && topic.endsWith('-repartition'));
      expect(repartitionTopics).toHaveLength(1);
      repartition = await gatherTopic(brokers, repartitionTopics[0]!);

      // The work is spread: once the group settles, each member holds two input partitions.
      let before: Map<string, number[]> | undefined;
      await waitFor(
        'three members holding two partitions each',
        async () => {
          before = await assignment(admin, appId, inTopic);
          return before?.size === 3 && [...before.values()].every((held) => held.length === 2);
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      expect([...before!.keys()].sort()).toEqual(['member-a', 'member-b', 'member-c']);
      expect([...before!.values()].flat().sort()).toEqual([0, 1, 2, 3, 4, 5]);
      // Nothing was produced yet, so nothing was restored so far.
      for (const member of members) expect(member.metrics()?.restoredRecords, member.name).toBe(0);

      // Input arrives while the members run: a round every 200 ms.
      const victim = members[1]!;
      const lost = before!.get(victim.name)!;
      const killAtRound = 7;
      for (let round = 0; round < killAtRound; round++) {
        await producer.send(inTopic, rounds[round]!);
        if (round === 5) {
          // Windows 0 and 1 have closed everywhere: each member reports the sensors of its partitions.
          await waitFor('a result from every member', () => new Set(results().map((result) => result.by)).size === 3, { timeoutMs: 30_000, intervalMs: 50 });
          for (const result of results()) {
            expect(before!.get(result.by), `${result.sensor} reported by the owner of its partition`).toContain(partitionOf.get(result.sensor));
          }
        }
        await sleep(200);
      }

      // Kill member-b as soon as it has taken in the next round, before its next commit: what it
      // passed on for those records is out, their input offsets are not committed. Input keeps coming.
      const readBefore = victim.metrics()!.recordsIn;
      await producer.send(inTopic, rounds[killAtRound]!);
      await waitFor(`${victim.name} to take in round ${killAtRound}`, () => victim.metrics()!.recordsIn > readBefore, { timeoutMs: 10_000, intervalMs: 5 });
      await kill(victim.child);
      // Results the victim had sent before it died may still be on their way to our reader.
      await sleep(1_000);
      const killedAt = output.records.length;
      for (let round = killAtRound + 1; round < rounds.length; round++) {
        await sleep(200);
        await producer.send(inTopic, rounds[round]!);
      }
      const survivors = members.filter((member) => member !== victim);

      // The group expels the dead member after its session timeout and the two others share the partitions.
      let after: Map<string, number[]> | undefined;
      await waitFor(
        'two members holding three partitions each',
        async () => {
          after = await assignment(admin, appId, inTopic);
          return after?.size === 2 && [...after.values()].every((held) => held.length === 3);
        },
        { timeoutMs: 40_000, intervalMs: 200 },
      );
      expect([...after!.keys()].sort()).toEqual(['member-a', 'member-c']);

      // All input (and what it sent through the repartition topic) is processed and committed.
      await waitFor('every record to be processed and committed', () => allCommitted(admin, appId, [inTopic, repartitionTopics[0]!]), {
        timeoutMs: 45_000,
        intervalMs: 250,
      });

      // Now a far-future reading per sensor closes the last windows.
      await producer.send(inTopic, sensors.map((sensor) => ({ key: sensor, value: JSON.stringify({ sensor, ts: farFuture, value: 0 }), timestamp: farFuture })));
      await waitFor(
        'every window to be reported',
        () => {
          const seen = new Set(results().map((result) => `${result.sensor}@${result.start}`));
          return [...expected.keys()].every((window) => seen.has(window));
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      );

      // The victim's sensors were finished by the survivors, with state restored from the changelog.
      const victimSensors = sensors.filter((sensor) => lost.includes(partitionOf.get(sensor)!));
      const all = results();
      const takenOver = all.slice(killedAt).filter((result) => victimSensors.includes(result.sensor));
      expect(takenOver.length).toBeGreaterThan(0);
      for (const result of takenOver) expect(['member-a', 'member-c']).toContain(result.by);
      const restored = survivors.map((member) => member.metrics()?.restoredRecords ?? 0);
      expect(restored.reduce((sum, count) => sum + count, 0), 'changelog records restored by the survivors').toBeGreaterThan(0);
      for (const member of survivors) expect(member.child.exitCode, `${member.name} still running: ${member.stderr()}`).toBeNull();
      // The input is keyed by sensor, as the windows are: readings skip the repartition topic (at-least-once).
      for (const member of survivors) expect(member.metrics()?.recordsHandedOff, `${member.name} handed readings off`).toBeGreaterThan(0);

      // Readings that reached the repartition topic more than once: the victim's uncommitted work, redone.
      const copies = new Map<string, number>();
      for (const record of repartition.records) {
        const { sensor, ts } = JSON.parse(record.value!) as { sensor: string; ts: number };
        copies.set(`${sensor}@${ts}`, (copies.get(`${sensor}@${ts}`) ?? 0) + 1);
      }
      const repeated = [...copies].filter(([, count]) => count > 1).map(([reading]) => reading);

      // No wrong value, and no window that should not exist.
      const wrong = all
        .filter((result) => result.sum !== expected.get(`${result.sensor}@${result.start}`))
        .map((result) => {
          const counted = (reading: string) => reading.startsWith(`${result.sensor}@`) && Math.floor(Number(reading.split('@')[1]) / windowMs) * windowMs === result.start;
          return { ...result, start: result.start - base, expected: expected.get(`${result.sensor}@${result.start}`), readingsInRepartitionTwice: repeated.filter(counted).length };
        });
      console.log(
        `[scale-out] ${wrong.length} wrong; before ${JSON.stringify(Object.fromEntries(before!))}, after ${JSON.stringify(Object.fromEntries(after!))}; ` +
          `${all.length} results for ${expected.size} windows; restored ${restored.join('/')} changelog records; ${repeated.length} readings repartitioned twice`,
      );
      expect(wrong, `windows with a wrong value (start relative to the first window; ${repeated.length} readings reached the repartition topic twice)`).toEqual([]);
      const distinct = new Set(all.map((result) => `${result.sensor}@${result.start}`));
      expect(distinct.size).toBe(expected.size);
    } finally {
      await Promise.all(members.map((member) => kill(member.child)));
      await output?.stop().catch(() => undefined);
      await repartition?.stop().catch(() => undefined);
      await producer.close().catch(() => undefined);
      await deleteAppTopics(admin, appId);
      await admin.close().catch(() => undefined);
      await Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true })));
    }
  }, 120_000);
});
