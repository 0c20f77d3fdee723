/**
 * A record an aggregation cannot use is a bad record: dead-lettered, counted, logged
 * ("a value an aggregation cannot use — the record goes to <id>-dlq"). It must not count in any
 * window, so it must not open one either: "Only windows that received a record are emitted", and
 * `windowsOpen` counts windows holding state.
 */
import { describe, expect, it } from 'vitest';
import { createApp, type Logger } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';

type Line = { level: string; message: string };
function recording(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (_fields: Record<string, unknown>, message: string) => void lines.push({ level, message });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

interface Ev { k: string; v: unknown; ts: number }

const KINDS = {
  'tumbling sum': (app: ReturnType<typeof createApp>) =>
    app.from<Ev>('in', { timestamp: (e) => e.ts }).keyBy((e) => e.k).tumbling(100).sum((e) => e.v as number),
  'hopping sum': (app: ReturnType<typeof createApp>) =>
    app.from<Ev>('in', { timestamp: (e) => e.ts }).keyBy((e) => e.k).hopping(100, 50).sum((e) => e.v as number),
  'tumbling aggregate whose add throws': (app: ReturnType<typeof createApp>) =>
    app.from<Ev>('in', { timestamp: (e) => e.ts }).keyBy((e) => e.k).tumbling(100).aggregate({
      init: () => 0,
      add: (acc: number, e: Ev) => {
        if (typeof e.v !== 'number') throw new Error('not a number');
        return acc + e.v;
      },
      merge: (a: number, b: number) => a + b,
    }),
} as const;

describe('a record an aggregation cannot use opens no window', () => {
  for (const [name, build] of Object.entries(KINDS)) {
    it(`${name}: a key with open windows gets no phantom window from a bad value`, async () => {
      const logger = recording();
      const app = createApp({ id: 'ph', idleTimeout: false, logger });
      build(app).onClose((w) => ({ key: w.key, start: w.start, end: w.end, value: w.value })).to('out');
      const driver = await TestDriver.start(app);
      await driver.send('in', { k: 'a', v: 1, ts: 1_010 });
      expect(app.metrics().windowsOpen).toBeGreaterThan(0);
      // Same key, a later window that no good record ever reaches.
      await driver.send('in', { k: 'a', v: 'x', ts: 1_160 });
      expect(app.metrics().deadLetters).toBe(1);
      expect(logger.lines.filter((l) => l.message === 'record dead-lettered')).toHaveLength(1);
      // The bad record was seen, so stream time is 1160 ("the largest timestamp it has seen"):
      // every window of the good record has closed, and the bad one opened none.
      expect(app.metrics().windowsOpen, 'the bad record opened a window').toBe(0);
      // Close everything.
      await driver.send('in', { k: 'b', v: 1, ts: 100_000 });
      const starts = driver.read<{ key: string; start: number; value: number }>('out').filter((o) => o.value.key === 'a').map((o) => o.value.start);
      // Windows of 'a' that hold the good record at 1010 only.
      const expected = name.startsWith('hopping') ? [950, 1000] : [1000];
      expect(starts, 'windows of a emitted').toEqual(expected);
      await driver.stop();
    });
  }
});

describe('a record an aggregation cannot use changes no window', () => {
  const sumOf = (e: Ev) => e.v as number;

  it('session: a bad value between two sessions does not bridge them', async () => {
    const app = createApp({ id: 'ph-session', idleTimeout: false, logger: recording() });
    app.from<Ev>('in', { timestamp: (e) => e.ts }).keyBy((e) => e.k).session(200).sum(sumOf).onClose((w) => ({ start: w.start, end: w.end, value: w.value })).to('out');
    const driver = await TestDriver.start(app);
    await driver.send('in', { k: 'a', v: 1, ts: 1_000 });
    await driver.send('in', { k: 'a', v: 2, ts: 1_300 });
    // Within the gap of both sessions: a good value here would merge them into one.
    await driver.send('in', { k: 'a', v: 'x', ts: 1_150 });
    expect(app.metrics().deadLetters).toBe(1);
    await driver.send('in', { k: 'b', v: 1, ts: 100_000 });
    expect(driver.read<{ start: number; end: number; value: number }>('out').map((o) => o.value).filter((w) => w.start < 100_000)).toEqual([
      { start: 1_000, end: 1_001, value: 1 },
      { start: 1_300, end: 1_301, value: 2 },
    ]);
    await driver.stop();
  });

  it('session: a bad first value of a key leaves no empty session', async () => {
    const app = createApp({ id: 'ph-session-new', idleTimeout: false, logger: recording() });
    app.from<Ev>('in', { timestamp: (e) => e.ts }).keyBy((e) => e.k).session(200).sum(sumOf).onClose((w) => ({ key: w.key, start: w.start, value: w.value })).to('out');
    const driver = await TestDriver.start(app);
    await driver.send('in', { k: 'a', v: 'x', ts: 1_000 });
    expect(app.metrics().windowsOpen).toBe(0);
    await driver.send('in', { k: 'b', v: 1, ts: 100_000 });
    expect(driver.read('out')).toEqual([]);
    await driver.stop();
  });

  it('count windows: a bad value is dead-lettered when it arrives and is in no window', async () => {
    const app = createApp({ id: 'ph-count', idleTimeout: false, logger: recording() });
    app.from<Ev>('in', { timestamp: (e) => e.ts }).keyBy((e) => e.k).countWindow(2).sum(sumOf).onClose((w) => w.value).to('out');
    const driver = await TestDriver.start(app);
    const values: unknown[] = [1, 2, 'x', 3, 4, null, 5, 6];
    for (const [index, v] of values.entries()) await driver.send('in', { k: 'a', v, ts: 1_000 + index });
    // The good values, two by two; each bad one dead-lettered on its own.
    expect(driver.read<number>('out').map((o) => o.value)).toEqual([3, 7, 11]);
    expect(app.metrics().deadLetters).toBe(2);
    await driver.stop();
  });
});
