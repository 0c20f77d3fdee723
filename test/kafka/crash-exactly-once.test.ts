/**
 * Crash recovery under exactly-once on the real broker: the windowed pipeline of crash.test.ts,
 * run with `guarantee: 'exactly-once'`, is killed with SIGKILL at seeded random moments and restarted;
 * read with read_committed, the output has every window exactly once, with the correct value.
 * What a killed instance had in its open transactions (outputs, changelog records, offsets) is
 * aborted when the next instance's task producers fence it, and is done again from the last commit.
 */
import { expect, it } from 'vitest';
import { mulberry32 } from '@eddy/core/testing';
import { replaySeed } from '../replay-seed.ts';
import { describeKafka } from './broker.ts';
import { crashSetup, kill, startChild, windowedFixture } from './children.ts';
import { waitFor } from './helpers.ts';

const seed = replaySeed(20261208);

describeKafka('crash recovery (SIGKILL) on Kafka under exactly-once', (brokers) => {
  it(`gives every window exactly once, with the correct value, across repeated kills (read_committed; seed ${seed})`, async () => {
    const random = mulberry32(seed);
    const { messages, expected, inTopic, producer, output, args, close } = await crashSetup(brokers, 'crash-eos', 'exactly-once');
    const results = () => output.records.map((record) => JSON.parse(record.value!) as { sensor: string; start: number; sum: number });
    try {
      // Input streams in while the app runs and dies: in slices, each fed in small chunks over
      // about a second; during each of the first three, a kill at a random moment, so that it
      // meets windows closed and results sent whose input offsets are not committed yet.
      const slices = 4;
      const size = Math.ceil(messages.length / slices);
      const chunk = 50;
      for (let slice = 0; slice < slices; slice++) {
        const { child, started } = startChild(windowedFixture, args);
        await started;
        const feeding = (async () => {
          for (let from = slice * size; from < Math.min((slice + 1) * size, messages.length); from += chunk) {
            await producer.send(inTopic, messages.slice(from, Math.min(from + chunk, (slice + 1) * size)));
            await new Promise((resolve) => setTimeout(resolve, 30));
          }
        })();
        if (slice < slices - 1) {
          await new Promise((resolve) => setTimeout(resolve, 200 + Math.floor(random() * 900)));
          await kill(child);
          await feeding;
          continue;
        }
        await feeding;
        await waitFor(`every window to be produced (seed ${seed})`, () => results().length >= expected.size, { timeoutMs: 60_000, intervalMs: 200 });
        // A repeat, if there were one, would show up meanwhile.
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        await kill(child);
      }
      const windows = results().map((result) => `${result.sensor}@${result.start}`);
      expect(windows.length - new Set(windows).size, `no window twice (seed ${seed})`).toBe(0);
      expect([...windows].sort(), `seed ${seed}`).toEqual([...expected.keys()].sort());
      for (const result of results()) {
        const window = `${result.sensor}@${result.start}`;
        expect({ window, sum: result.sum }, `seed ${seed}`).toEqual({ window, sum: expected.get(window) });
      }
    } finally {
      await close();
    }
  }, 120_000);
});
