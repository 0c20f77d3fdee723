/**
 * Crash recovery on the real broker: a child process running a windowed pipeline with durable
 * state is killed with SIGKILL at seeded random moments and restarted; afterwards every window's
 * result is present with the correct value (duplicates allowed under at-least-once, never a wrong one).
 */
import { expect, it } from 'vitest';
import { mulberry32 } from '@eddy/core/testing';
import { replaySeed } from '../replay-seed.ts';
import { describeKafka } from './broker.ts';
import { crashSetup, kill, startChild, windowedFixture } from './children.ts';
import { waitFor } from './helpers.ts';

const seed = replaySeed(20261207);

describeKafka('crash recovery (SIGKILL) on Kafka', (brokers) => {
  it(`loses no window and gives no wrong value across repeated kills (seed ${seed})`, async () => {
    const random = mulberry32(seed);
    const { messages, expected, inTopic, producer, output, args, close } = await crashSetup(brokers, 'crash', 'at-least-once');
    try {
      // Input arrives while the app runs and dies: in slices, a kill after each of the first three.
      const slices = 4;
      const size = Math.ceil(messages.length / slices);
      for (let slice = 0; slice < slices; slice++) {
        const { child, started } = startChild(windowedFixture, args);
        await started;
        await producer.send(inTopic, messages.slice(slice * size, (slice + 1) * size));
        if (slice < slices - 1) {
          await new Promise((resolve) => setTimeout(resolve, 300 + Math.floor(random() * 1500)));
          await kill(child);
          continue;
        }
        await waitFor(
          `every window to be produced (seed ${seed})`,
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
        expect({ window, sum: result.sum }, `seed ${seed}`).toEqual({ window, sum: expected.get(window) });
      }
      expect(new Set(results.map((result) => `${result.sensor}@${result.start}`)).size, `seed ${seed}`).toBeGreaterThanOrEqual(expected.size);
    } finally {
      await close();
    }
  }, 180_000);
});
