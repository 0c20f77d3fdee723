/**
 * The idle rule, as any transport drives it: a task's stream time follows the clock only once the
 * log itself has said, for the whole idle timeout, that the task has read everything (see
 * `TransportConsumer.caughtUp`). The embedded broker's word is played here by hand: silent (a
 * broker that does not answer), fresh, or lagging the clock.
 */
import { describe, expect, it } from 'vitest';
import { createApp, silentLogger, type CaughtUp } from '../index.js';
import { TestDriver } from '../testing/index.js';
import { MemoryTransport } from '../transport/memory.js';

interface Reading {
  sensor: string;
  ts: number;
}

/** The embedded broker, whose word on whether a member keeps up the test sets; undefined: it does not answer. */
class WordOfTheLog extends MemoryTransport {
  word: () => CaughtUp | undefined = () => ({ forMs: Infinity, confirmedAgoMs: 0 });

  override async subscribe(...args: Parameters<MemoryTransport['subscribe']>) {
    const consumer = await super.subscribe(...args);
    const own = consumer.caughtUp.bind(consumer);
    consumer.caughtUp = (partition) => (own(partition) ? this.word() : undefined);
    return consumer;
  }
}

/** An app counting readings in 10 s tumbling windows (idle timeout 5 s), driven in virtual time. */
async function started() {
  const transport = new WordOfTheLog();
  const app = createApp({ id: 'idle', idleTimeout: '5s', commitInterval: '1s', logger: silentLogger });
  app
    .from<Reading>('readings', { timestamp: (reading) => reading.ts })
    .keyBy((reading) => reading.sensor)
    .tumbling('10s')
    .count()
    .onClose((window) => ({ start: window.start, count: window.value }))
    .to('counts');
  const driver = await TestDriver.start(app, { transport });
  return {
    app,
    clock: { now: () => driver.now() },
    runTo: (time: number) => driver.advanceTime(time - driver.now()),
    send: (reading: Reading) => driver.send('readings', reading, { key: reading.sensor, timestamp: reading.ts }),
    closed: () => driver.read('counts').length,
    says: (word: () => CaughtUp | undefined) => (transport.word = word),
  };
}

describe('idle timeout: stream time follows the clock only on the log’s word', () => {
  it('a log that says the task keeps up: the quiet task’s last window closes once the idle timeout has passed', async () => {
    const { app, runTo, send, closed } = await started();
    await send({ sensor: 's', ts: 1_000 });
    // Quiet from clock 0: stream time follows the clock from 5 s on, 1 s behind it, reaching 10 s at clock 14 s.
    await runTo(13_900);
    expect(closed()).toBe(0);
    await runTo(14_100);
    expect(closed()).toBe(1);
    await app.stop();
  });

  it('a log that does not answer (an outage): stream time waits, however long; quiet counts from its return', async () => {
    const { app, clock, runTo, send, closed, says } = await started();
    await send({ sensor: 's', ts: 1_000 });
    says(() => undefined);
    await runTo(120_000);
    expect(closed(), 'no window closes while the log is silent').toBe(0);
    expect(app.metrics().streamTime['1_0']).toBe(1_000);
    // The log answers again: the task has kept up since now.
    const back = clock.now();
    says(() => ({ forMs: clock.now() - back, confirmedAgoMs: 0 }));
    await runTo(back + 5_000 + 8_900);
    expect(closed(), 'stream time resumes from where it stood, after a whole idle timeout').toBe(0);
    await runTo(back + 5_000 + 9_100);
    expect(closed()).toBe(1);
    await app.stop();
  });

  it('a log whose last word is older than the clock: stream time follows it only up to that word', async () => {
    const { app, clock, runTo, send, closed, says } = await started();
    await send({ sensor: 's', ts: 1_000 });
    says(() => ({ forMs: clock.now(), confirmedAgoMs: 3_000 }));
    // Stream time reaches 10 s when the log's word does (clock 14 s), 3 s after the clock does.
    await runTo(16_900);
    expect(closed()).toBe(0);
    await runTo(17_100);
    expect(closed()).toBe(1);
    await app.stop();
  });

  it('a record delivered after the log fell silent is counted, not late: the silence held its window open', async () => {
    const { app, clock, runTo, send, closed, says } = await started();
    await send({ sensor: 's', ts: 1_000 });
    says(() => undefined);
    await runTo(30_000);
    // What a producer kept through the outage arrives: event time 9 s, well before the clock.
    await send({ sensor: 's', ts: 9_000 });
    const back = clock.now();
    says(() => ({ forMs: clock.now() - back, confirmedAgoMs: 0 }));
    await send({ sensor: 's', ts: 12_000 });
    expect(app.metrics().lateRecords).toBe(0);
    expect(closed()).toBe(1);
    await app.stop();
  });
});
