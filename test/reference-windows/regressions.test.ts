/**
 * Small fixed inputs for two behaviours the randomized tests of this folder once found broken:
 * the stream time a quiet spell reached must survive a restart even when the spell closed no
 * window, and a sliding record late for its own window must still count for the later windows of
 * its key. Beside each, the same input without the restart (or in another order) as a control.
 */
import { describe, expect, it } from 'vitest';
import { createApp, MemoryTransport, silentLogger } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';

interface Input {
  k: string;
  ts: number;
}

interface Seen {
  closed: string[];
  late: string[];
}

/** tumbling(10) counts with a 5 s idle timeout, recording onClose and onLate calls in `seen`. */
function tumblingCount(transport: MemoryTransport, seen: Seen, grace = 0) {
  const app = createApp({ id: 'quiet-restart', transport, idleTimeout: 5000, logger: silentLogger });
  const table = app
    .from<Input>('in', { timestamp: (input) => input.ts })
    .keyBy((input) => input.k)
    .tumbling(10, { grace })
    .count();
  table
    .onClose((window) => {
      seen.closed.push(`${window.key} [${window.start},${window.end}) = ${window.value}`);
      return window.value;
    })
    .to('out');
  table
    .onLate((late) => {
      seen.late.push(`${late.key} ts ${late.timestamp} missed [${late.start},${late.end})`);
      return undefined;
    })
    .to('late');
  return app;
}

describe('stream time moved by a quiet spell, across a restart', () => {
  // README "Quiet streams": the stream time a task reached, a quiet spell's included, is recorded
  // by its last commit when the app stops, even if it closed nothing, so the next start judges
  // records late as the stopped app would have.
  for (const restart of [true, false]) {
    const name = restart
      ? 'the stream time a quiet spell reached survives a restart, also when it closed nothing'
      : 'without a restart, the same quiet spell makes the same record late';
    it(`${name} (tumbling 10, grace 5: a@12, 5005 ms quiet, then b@3)`, async () => {
      const transport = new MemoryTransport({ defaultPartitions: 1 });
      const seen: Seen = { closed: [], late: [] };
      let driver = await TestDriver.start(tumblingCount(transport, seen, 5), { startTime: 0, transport });
      await driver.send('in', { k: 'a', ts: 12 }, { key: 'a', timestamp: 12 });
      // Idle from clock 5000 on: stream time 12 + 5 = 17, past 15, when [0, 10) closes. No window
      // of key b is open there, so nothing is emitted: only the stream time moved.
      await driver.advanceTime(5_005);
      if (restart) {
        const clock = driver.now();
        await driver.stop();
        driver = await TestDriver.start(tumblingCount(transport, seen, 5), { startTime: clock, transport });
      }
      await driver.send('in', { k: 'b', ts: 3 }, { key: 'b', timestamp: 3 });
      await driver.send('in', { k: 'a', ts: 1_000_000 }, { key: 'a', timestamp: 1_000_000 });
      await driver.stop();
      expect(seen.late).toEqual(['b ts 3 missed [0,10)']);
      expect(seen.closed).toEqual(['a [10,20) = 1']);
    });
  }

  for (const quiet of [5_020, 10_020]) {
    it(`a window a quiet spell closed stays closed after a restart: a record for it is late, the window is not reported again (quiet ${quiet} ms)`, async () => {
      const transport = new MemoryTransport({ defaultPartitions: 1 });
      const seen: Seen = { closed: [], late: [] };
      // Run 1: a@1, then the input is quiet: stream time follows the clock past 10, [0, 10) closes.
      const first = await TestDriver.start(tumblingCount(transport, seen), { startTime: 0, transport });
      await first.send('in', { k: 'a', ts: 1 }, { key: 'a', timestamp: 1 });
      await first.advanceTime(quiet);
      expect(seen.closed).toEqual(['a [0,10) = 1']);
      const clock = first.now();
      await first.stop();
      // Run 2, same app id, same broker: a record for the closed window arrives.
      const second = await TestDriver.start(tumblingCount(transport, seen), { startTime: clock, transport });
      await second.send('in', { k: 'a', ts: 5 }, { key: 'a', timestamp: 5 });
      await second.send('in', { k: 'a', ts: 1_000_000 }, { key: 'a', timestamp: 1_000_000 });
      await second.stop();
      expect(seen.late).toEqual(['a ts 5 missed [0,10)']);
      expect(seen.closed).toEqual(['a [0,10) = 1']);
    });
  }

  it('without a restart, a record for the window a quiet spell closed is late', async () => {
    const seen: Seen = { closed: [], late: [] };
    const transport = new MemoryTransport({ defaultPartitions: 1 });
    const driver = await TestDriver.start(tumblingCount(transport, seen), { startTime: 0, transport });
    await driver.send('in', { k: 'a', ts: 1 }, { key: 'a', timestamp: 1 });
    await driver.advanceTime(5_020);
    await driver.send('in', { k: 'a', ts: 5 }, { key: 'a', timestamp: 5 });
    await driver.send('in', { k: 'a', ts: 1_000_000 }, { key: 'a', timestamp: 1_000_000 });
    await driver.stop();
    expect(seen.late).toEqual(['a ts 5 missed [0,10)']);
    expect(seen.closed).toEqual(['a [0,10) = 1']);
  });
});

describe('sliding windows: a record late for its own window still counts for the later windows of its key', () => {
  // README "Time and windows": a sliding record whose own window has closed is late for it, and
  // still counts for the windows of later timestamps that hold it, open or yet to come, until
  // stream time reaches t + size + grace. Whether it counts must not depend on the arrival order
  // of other records.
  async function slidingRun(input: Array<[key: string, ts: number]>) {
    const app = createApp({ id: 'sliding-late', idleTimeout: false, logger: silentLogger });
    const closed: string[] = [];
    const late: string[] = [];
    const table = app
      .from<Input>('in', { timestamp: (record) => record.ts })
      .keyBy((record) => record.k)
      .sliding(10)
      .collect();
    table
      .onClose((window) => {
        if (window.key === 'a') closed.push(`[${window.start},${window.end}) ${window.value.map((record) => record.ts).join(',')}`);
        return undefined;
      })
      .to('out');
    table
      .onLate((record) => {
        late.push(`${record.key}@${record.timestamp} missed [${record.start},${record.end})`);
        return undefined;
      })
      .to('late');
    const driver = await TestDriver.start(app);
    for (const [k, ts] of input) await driver.send('in', { k, ts }, { key: k, timestamp: ts });
    await driver.send('in', { k: 'z', ts: 1_000_000 }, { key: 'z', timestamp: 1_000_000 });
    await driver.stop();
    return { closed, late };
  }

  it('it counts for a window that comes after it: b@10, a@3, a@11 (window 11 covers (1, 11])', async () => {
    const { closed, late } = await slidingRun([['b', 10], ['a', 3], ['a', 11]]);
    // a@3 arrives at stream time 10: late only for its own window (-7, 3], which closed at 4; kept
    // because 10 < 3 + 10 + 0.
    expect(late).toEqual(['a@3 missed [-6,4)']);
    expect(closed).toEqual(['[2,12) 3,11']);
  });

  it('it counts for a window open when it arrived and for one that comes after it: b@10, a@10, a@3, a@11', async () => {
    const { closed, late } = await slidingRun([['b', 10], ['a', 10], ['a', 3], ['a', 11]]);
    expect(late).toEqual(['a@3 missed [-6,4)']);
    expect(closed).toEqual(['[1,11) 3,10', '[2,12) 3,10,11']);
  });
});
