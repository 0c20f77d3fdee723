/**
 * Offsets with nothing to deliver (on Kafka: transaction markers and aborted records, announced
 * through `ConsumerListener.onSkipped`): a task standing at the start of such a range moves past
 * it and commits there; a task standing anywhere else ignores it, so a late notice can never
 * jump over records it has not processed. test/kafka/exactly-once.test.ts covers the real thing.
 */
import { describe, expect, it } from 'vitest';
import { createApp, memoryTransport, silentLogger, type MemoryTransport } from '../index.js';
import type { ConsumerListener, TransportConsumer } from '../transport/types.js';

/** The embedded broker, keeping the runtime's listener and consumer so the test can speak for the broker. */
function withListener(log: MemoryTransport) {
  const seen: { listener?: ConsumerListener; consumer?: TransportConsumer } = {};
  const transport = new Proxy(log, {
    get(target, property) {
      if (property === 'subscribe') {
        return async (groupId: string, topics: readonly string[], listener: ConsumerListener) => {
          seen.listener = listener;
          seen.consumer = await target.subscribe(groupId, topics, listener);
          return seen.consumer;
        };
      }
      const value = Reflect.get(target, property) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { transport, seen };
}

describe('skipped offsets', () => {
  it('a task at the start of a skipped range moves past it and commits there; elsewhere it stays', async () => {
    const log = memoryTransport();
    log.createTopic({ name: 'in', partitions: 1 });
    const { transport, seen } = withListener(log);
    const app = createApp({ id: 'skips', transport, commitInterval: '1h', logger: silentLogger });
    app.from<number>('in').map((value) => value * 2).to('out');
    await app.start();
    try {
      const encode = (value: number) => new TextEncoder().encode(String(value));
      log.append([1, 2, 3, 4, 5].map((value) => ({ topic: 'in', partition: 0, key: null, value: encode(value), timestamp: value })));
      await log.idle();
      const skip = (from: number, to: number) => seen.listener!.onSkipped!({ topic: 'in', partition: 0, from, to });

      // The task stands at 5 (records 0..4 processed): a range from 5 moves it to 8.
      await skip(5, 8);
      // Now it stands at 8: ranges starting elsewhere (a notice from before a seek back, say) change nothing.
      await skip(3, 9);
      await skip(6, 9);
      await app.stop();
      expect(await seen.consumer!.committed({ topic: 'in', partition: 0 })).toBe(8);
      expect(log.readSlice('out', 0, 0, 100)).toHaveLength(5);
    } finally {
      await app.stop();
    }
  });
});
