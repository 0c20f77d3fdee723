/**
 * Review tests: consumer groups and exactly-once on Kafka, in one process.
 * - Two apps of one id: one stops cleanly, the other takes every partition; every tumbling window
 *   is reported once with the sum a brute-force reference gives ("A rebalance revokes cleanly —
 *   the old owner finishes in-flight work, flushes its state and commits before the new owner is
 *   assigned").
 * - `groupInstanceId` given twice in a group ("unique in the group").
 * - Exactly-once across a clean stop and start: a read_committed reader sees each window once.
 */
import { createApp, partitionForKey, type App } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { afterAll, expect, it } from 'vitest';
import { describeKafka, uniqueName } from '../kafka/broker.ts';
import { allCommitted, assignment, createTopics, deleteAppTopics, gatherTopic, produce, recordingLogger, sensorRounds, sleep, testAdmin, waitFor, within, type Gathered } from '../kafka/helpers.ts';

const windowMs = 1_000;

interface Reading {
  sensor: string;
  ts: number;
  value: number;
}

function sensorsCovering(partitions: number, count: number): string[] {
  const sensors = Array.from({ length: count }, (_, index) => `sensor-${index}`);
  const covered = new Set(sensors.map((sensor) => partitionForKey(new TextEncoder().encode(sensor), partitions)));
  expect(covered.size, 'the sensors cover every partition').toBe(partitions);
  return sensors;
}

/** Results by window `sensor@start`: every value reported. */
function resultsByWindow(records: readonly Gathered[]): Map<string, number[]> {
  const byWindow = new Map<string, number[]>();
  for (const record of records) {
    const { sensor, start, sum } = JSON.parse(record.value!) as { sensor: string; start: number; sum: number };
    const key = `${sensor}@${start}`;
    byWindow.set(key, [...(byWindow.get(key) ?? []), sum]);
  }
  return byWindow;
}

describeKafka('review: consumer groups and exactly-once in one process', (brokers) => {
  const admin = testAdmin(brokers);
  afterAll(() => admin.close());

  function build(id: string, input: string, output: string, options: { guarantee?: 'at-least-once' | 'exactly-once'; groupInstanceId?: string; name?: string } = {}) {
    const logger = recordingLogger();
    const app = createApp({
      id,
      transport: kafkaTransport({ brokers, logger, logLevel: 'debug', clientId: `eddy-${options.name ?? 'x'}`, ...(options.groupInstanceId ? { groupInstanceId: options.groupInstanceId } : {}) }),
      idleTimeout: false,
      commitInterval: '200ms',
      guarantee: options.guarantee ?? 'at-least-once',
      logger,
    });
    app
      .from<Reading>(input, { timestamp: (r) => r.ts })
      .keyBy((r) => r.sensor)
      .tumbling(windowMs)
      .sum((r) => r.value)
      .onClose((w) => ({ sensor: w.key, start: w.start, sum: w.value, by: options.name }))
      .to(output);
    return { app, logger };
  }

  for (const guarantee of ['at-least-once', 'exactly-once'] as const) {
  it(`${guarantee}: two apps of one id in one process; one stops cleanly mid-stream: the other takes every partition and every window is reported once (read_committed) with the reference sum`, { timeout: 60_000 }, async () => {
    const id = uniqueName(`rv-scale-${guarantee === 'exactly-once' ? 'eos' : 'alo'}`);
    const [input, output] = [`${id}-in`, `${id}-out`];
    await createTopics(brokers, [{ name: input, partitions: 4 }, { name: output, partitions: 1 }]);
    const sensors = sensorsCovering(4, 8);
    const rounds = sensorRounds(sensors, { windowMs, stepMs: 100, steps: 60, stepsPerRound: 10 });
    const a = build(id, input, output, { name: 'A', guarantee });
    const b = build(id, input, output, { name: 'B', guarantee });
    const out = await gatherTopic(brokers, output);
    const apps: App[] = [a.app, b.app];
    try {
      await a.app.start();
      await b.app.start();
      await waitFor('both members to hold partitions', async () => {
        const held = await assignment(admin, id, input);
        return held !== undefined && held.size === 2 && [...held.values()].every((partitions) => partitions.length > 0);
      }, { timeoutMs: 30_000 });
      for (const round of rounds.rounds.slice(0, 3)) await produce(brokers, input, round);
      await waitFor('the first rounds committed', () => allCommitted(admin, id, [input]), { timeoutMs: 20_000 });
      const beforeStop = out.records.length;
      await b.app.stop();
      expect(b.app.state).toBe('stopped');
      for (const round of rounds.rounds.slice(3)) await produce(brokers, input, round);
      await produce(brokers, input, sensors.map((sensor) => ({ key: sensor, value: JSON.stringify({ sensor, ts: rounds.farFuture, value: 0 }), timestamp: rounds.farFuture })));
      await waitFor('every window', () => [...rounds.expected.keys()].every((w) => resultsByWindow(out.records).has(w)), {
        timeoutMs: 30_000,
        explain: () => `have ${resultsByWindow(out.records).size} of ${rounds.expected.size}; A ${JSON.stringify(a.app.metrics())}`,
      });
      await waitFor('A to be at the end', () => a.app.metrics().lag === 0 && a.app.metrics().tasks > 0, { timeoutMs: 10_000 });
      await sleep(500);
      const byWindow = resultsByWindow(out.records);
      // No wrong value, none missing, none twice.
      const wrong = [...byWindow].filter(([w, sums]) => rounds.expected.has(w) && sums.some((sum) => sum !== rounds.expected.get(w)));
      expect(wrong, 'windows with a wrong sum').toEqual([]);
      const twice = [...byWindow].filter(([w, sums]) => rounds.expected.has(w) && sums.length > 1);
      expect(twice, 'windows reported more than once across a clean hand-over').toEqual([]);
      expect(beforeStop).toBeGreaterThan(0);
      // The hand-over was exercised: B reported windows before it stopped, A took B's sensors over after.
      const byB = out.records.map((r) => JSON.parse(r.value!) as { sensor: string; by: string }).filter((r) => r.by === 'B');
      expect(byB.length, 'windows reported by B').toBeGreaterThan(0);
      const bSensors = new Set(byB.map((r) => r.sensor));
      expect(out.records.slice(beforeStop).some((r) => JSON.parse(r.value!).by === 'A' && bSensors.has(JSON.parse(r.value!).sensor)), "A reports B's sensors after the stop").toBe(true);
      // A now holds every partition.
      const held = await assignment(admin, id, input);
      expect(held && [...held.values()].flat().sort()).toEqual([0, 1, 2, 3]);
      expect(await allCommitted(admin, id, [input])).toBe(true);
    } finally {
      for (const app of apps) await within(app.stop().catch(() => undefined), 15_000);
      await out.stop();
      await deleteAppTopics(admin, id);
    }
  });
  }

  it('a second app with the groupInstanceId of a live member: the host is told (a warning naming the id), and the first keeps every partition and goes on', { timeout: 60_000 }, async () => {
    const id = uniqueName('rv-dupstatic');
    const [input, output] = [`${id}-in`, `${id}-out`];
    await createTopics(brokers, [{ name: input, partitions: 2 }, { name: output, partitions: 1 }]);
    const sensors = sensorsCovering(2, 4);
    const rounds = sensorRounds(sensors, { windowMs, stepMs: 250, steps: 8, stepsPerRound: 4 });
    const a = build(id, input, output, { groupInstanceId: `${id}-pod`, name: 'A' });
    const b = build(id, input, output, { groupInstanceId: `${id}-pod`, name: 'B' });
    const out = await gatherTopic(brokers, output);
    try {
      await a.app.start();
      const outcome = await within(b.app.start().then(() => 'started', (error: unknown) => error), 20_000);
      await sleep(2_000);
      console.log(`[review] duplicate groupInstanceId: second start ${outcome instanceof Error ? `rejected: ${outcome.message}` : String(outcome)}; A ${a.app.state} tasks ${a.app.metrics().tasks}, B ${b.app.state} tasks ${b.app.metrics().tasks} health ${JSON.stringify(b.app.health())}; B warnings/errors ${JSON.stringify(b.logger.entries.filter((e) => e.level === 'warn' || e.level === 'error').map((e) => e.message))}; B debug ${JSON.stringify(b.logger.entries.filter((e) => e.level === 'debug').slice(0, 2).map((e) => [e.message, e.fields.error]))}`);
      // Told somehow: start() rejects naming the conflict, or the app is not reported healthy, or a warning says so.
      const rejected = outcome instanceof Error && /UNRELEASED_INSTANCE_ID|instance id|groupInstanceId/i.test(outcome.message);
      const warned = b.logger.entries.some((e) => (e.level === 'warn' || e.level === 'error') && /UNRELEASED_INSTANCE_ID|instance id|groupInstanceId/i.test(`${e.message} ${JSON.stringify(e.fields)}`));
      expect.soft({ rejected, health: b.app.health().status, warned }, 'B never joined the group (tasks 0): is the host told?').not.toEqual({ rejected: false, health: 'ok', warned: false });
      // And its health says why, for a readiness probe.
      const health = b.app.health();
      expect(health.status).toBe('degraded');
      expect(health.reasons.some((reason) => reason.includes(`groupInstanceId "${id}-pod"`))).toBe(true);
      expect(a.app.health()).toEqual({ status: 'ok', reasons: [] });
      // The first goes on with every partition.
      for (const round of rounds.rounds) await produce(brokers, input, round);
      await produce(brokers, input, sensors.map((sensor) => ({ key: sensor, value: JSON.stringify({ sensor, ts: rounds.farFuture, value: 0 }), timestamp: rounds.farFuture })));
      await waitFor('every window', () => [...rounds.expected.keys()].every((w) => resultsByWindow(out.records).has(w)), { timeoutMs: 20_000, explain: () => `A ${a.app.state} ${JSON.stringify(a.app.health())}` });
      const byWindow = resultsByWindow(out.records);
      for (const [w, sum] of rounds.expected) expect(byWindow.get(w), w).toEqual([sum]);
      expect(a.app.state).toBe('running');
      expect(out.records.every((r) => JSON.parse(r.value!).by === 'A')).toBe(true);
    } finally {
      await within(b.app.stop().catch(() => undefined), 10_000);
      await within(a.app.stop().catch(() => undefined), 15_000);
      await out.stop();
      await deleteAppTopics(admin, id);
    }
  });

  it('exactly-once: stopped and started again mid-stream, a read_committed reader sees every window exactly once with the reference sum, and lag/commits reach the end', { timeout: 60_000 }, async () => {
    const id = uniqueName('rv-eos');
    const [input, output] = [`${id}-in`, `${id}-out`];
    await createTopics(brokers, [{ name: input, partitions: 2 }, { name: output, partitions: 2 }]);
    const sensors = sensorsCovering(2, 6);
    const rounds = sensorRounds(sensors, { windowMs, stepMs: 100, steps: 60, stepsPerRound: 10 });
    const total = rounds.rounds.flat().length + sensors.length;
    const out = await gatherTopic(brokers, output);
    let app = build(id, input, output, { guarantee: 'exactly-once', name: 'first' }).app;
    const seen: number[] = [];
    try {
      await app.start();
      for (const round of rounds.rounds.slice(0, 3)) await produce(brokers, input, round);
      await waitFor('some windows out', () => out.records.length > 0, { timeoutMs: 20_000 });
      await app.stop();
      seen.push(app.metrics().recordsIn);
      // A second batch arrives while nothing runs.
      for (const round of rounds.rounds.slice(3, 5)) await produce(brokers, input, round);
      app = build(id, input, output, { guarantee: 'exactly-once', name: 'second' }).app;
      await app.start();
      for (const round of rounds.rounds.slice(5)) await produce(brokers, input, round);
      await produce(brokers, input, sensors.map((sensor) => ({ key: sensor, value: JSON.stringify({ sensor, ts: rounds.farFuture, value: 0 }), timestamp: rounds.farFuture })));
      await waitFor('every window', () => [...rounds.expected.keys()].every((w) => resultsByWindow(out.records).has(w)), { timeoutMs: 30_000 });
      await waitFor('the input committed to its end and lag 0', async () => app.metrics().lag === 0 && (await allCommitted(admin, id, [input])), { timeoutMs: 15_000 });
      await sleep(500);
      const byWindow = resultsByWindow(out.records);
      for (const [w, sum] of rounds.expected) expect(byWindow.get(w), w).toEqual([sum]);
      // Every input record was read once by the two instances together (nothing re-read after a clean stop).
      const readByFirst = seen[0]!;
      console.log(`[review] eos recordsIn: first ${readByFirst}, second ${app.metrics().recordsIn}, total input ${total}`);
      expect(readByFirst + app.metrics().recordsIn).toBe(total);
    } finally {
      await within(app.stop().catch(() => undefined), 15_000);
      await out.stop();
      await deleteAppTopics(admin, id);
    }
  });
});
