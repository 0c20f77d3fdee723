/**
 * Crash recovery on the real broker: a child process running a windowed pipeline with durable
 * state is killed with SIGKILL at random moments and restarted; afterwards every window's result
 * is present with the correct value (duplicates allowed under at-least-once, never a wrong one).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { describeKafka, uniqueName } from './broker.ts';
import { kill, startChild } from './children.ts';
import { createTopics, gatherTopic, testKafka, waitFor } from './helpers.ts';

const fixture = fileURLToPath(new URL('./fixtures/windowed-app.mjs', import.meta.url));
const directories: string[] = [];
afterAll(async () => Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true }))));

describeKafka('crash recovery (SIGKILL) on Kafka', (brokers) => {
  it('loses no window and gives no wrong value across repeated kills', async () => {
    const appId = uniqueName('crash');
    const inTopic = `${appId}-in`;
    const outTopic = `${appId}-out`;
    const stateDir = await mkdtemp(join(tmpdir(), 'eddy-crash-'));
    directories.push(stateDir);
    await createTopics(brokers, [
      { name: inTopic, partitions: 3 },
      { name: outTopic, partitions: 1 },
    ]);

    // 12 sensors x 500 readings, 100 ms apart in event time; value = its index, so sums are exact.
    const sensors = Array.from({ length: 12 }, (_, index) => `sensor-${index}`);
    const expected = new Map<string, number>();
    const messages = [];
    for (let step = 0; step < 500; step++) {
      for (const sensor of sensors) {
        const ts = step * 100;
        const window = `${sensor}@${Math.floor(ts / 5000) * 5000}`;
        expected.set(window, (expected.get(window) ?? 0) + step);
        messages.push({ key: sensor, value: JSON.stringify({ sensor, ts, value: step }) });
      }
    }
    // A far-future reading per sensor closes its last windows.
    for (const sensor of sensors) messages.push({ key: sensor, value: JSON.stringify({ sensor, ts: 10_000_000, value: 0 }) });

    const kafka = testKafka(brokers);
    const producer = kafka.producer();
    await producer.connect();
    const args = [brokers.join(','), appId, inTopic, outTopic, stateDir];
    const output = await gatherTopic(kafka, outTopic);
    try {
      // Input arrives while the app runs and dies: in slices, a kill after each of the first three.
      const slices = 4;
      const size = Math.ceil(messages.length / slices);
      for (let slice = 0; slice < slices; slice++) {
        const { child, started } = startChild(fixture, args);
        await started;
        await producer.send({ topic: inTopic, messages: messages.slice(slice * size, (slice + 1) * size) });
        if (slice < slices - 1) {
          await new Promise((resolve) => setTimeout(resolve, 300 + Math.floor(Math.random() * 1500)));
          await kill(child);
          continue;
        }
        await waitFor(
          'every window to be produced',
          () => {
            const seen = new Set(output.records.map((record) => JSON.parse(record.value!) as { sensor: string; start: number }).map((w) => `${w.sensor}@${w.start}`));
            return [...expected.keys()].every((window) => seen.has(window));
          },
          { timeoutMs: 90_000, intervalMs: 200 },
        );
        await kill(child);
      }
      const results = output.records.map((record) => JSON.parse(record.value!) as { sensor: string; start: number; sum: number });
      for (const result of results) {
        const window = `${result.sensor}@${result.start}`;
        if (result.start >= 10_000_000 - 5000) continue;
        expect({ window, sum: result.sum }).toEqual({ window, sum: expected.get(window) });
      }
      expect(new Set(results.map((result) => `${result.sensor}@${result.start}`)).size).toBeGreaterThanOrEqual(expected.size);
    } finally {
      await output.stop();
      await producer.disconnect();
    }
  }, 180_000);
});
