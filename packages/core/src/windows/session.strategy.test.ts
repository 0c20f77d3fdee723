import { describe, expect, it } from 'vitest';
import { checkStrategy, StrategyDriver, type StrategyRun } from '../testing/strategy-driver.test-support.js';
import { Random, SEEDS, SessionModel, generate, idsOf, type Reading } from '../testing/window-reference.test-support.js';
import { sessionWindows } from './session.js';

/** The session strategy alone: no app, no driver; sessions against brute force and the reference model. */

const emptyRun = (): StrategyRun => ({ closed: [], late: [], lateRecords: 0, updates: [] });
const reading = (id: number, ts: number, k = 'a'): Reading => ({ id, k, ts, v: id });

/** Sessions by brute force: sort by time, cut where two neighbours are more than `gap` apart. */
function bruteForceSessions(times: readonly number[], gap: number): Array<[number, number]> {
  const sorted = [...times].sort((a, b) => a - b);
  const sessions: Array<[number, number]> = [];
  for (const time of sorted) {
    const last = sessions.at(-1);
    if (last && time - (last[1] - 1) <= gap) last[1] = time + 1;
    else sessions.push([time, time + 1]);
  }
  return sessions;
}

describe('session windows: definition', () => {
  it('keeps its description and default store name', () => {
    const window = sessionWindows('5m');
    expect([window.kind, window.description, window.defaultStoreName('max')]).toEqual(['session', 'session(gap 300000ms, grace 0ms)', 'session-300000ms-grace-0ms-max']);
  });
});

describe('session windows: assignment and merging', () => {
  it.each(SEEDS)('while nothing closes, the open sessions are those of brute force, whatever the order (seed %i)', (seed) => {
    const random = new Random(seed);
    const gap = random.int(1, 20);
    const driver = new StrategyDriver(sessionWindows(gap, { grace: 1_000_000 }));
    const run = emptyRun();
    const times: number[] = [];
    for (let id = 0; id < 80; id++) {
      const ts = random.int(0, 400);
      times.push(ts);
      driver.send(reading(id, ts), id, run);
      const open = driver.strategy.openWindows(driver.keys.get('a')!).map((view) => [view.start, view.end]);
      expect(open, `seed ${seed}, gap ${gap}, after ${times.join(',')}`).toEqual(bruteForceSessions(times, gap));
    }
  });

  it('a record that bridges two sessions merges them, and the merged session keeps the first start as its storage key', () => {
    const driver = new StrategyDriver(sessionWindows(10, { grace: 100 }));
    const run = emptyRun();
    driver.send(reading(0, 0), 0, run);
    driver.send(reading(1, 18), 1, run);
    driver.flush();
    expect([...driver.stored.get('a')!.keys()]).toEqual([0, 18]);
    driver.send(reading(2, 9), 2, run);
    expect(driver.keys.get('a')!.buckets.map((session) => [session.start, session.end])).toEqual([[0, 19]]);
    expect(idsOf(run.updates.at(-1)!.value)).toEqual([0, 2, 1]);
    driver.flush();
    expect([...driver.stored.get('a')!.keys()]).toEqual([0]);
  });

  it('a record before a session moves its start, and its storage key: the old one becomes a tombstone', () => {
    const driver = new StrategyDriver(sessionWindows(10));
    const run = emptyRun();
    driver.send(reading(0, 20), 0, run);
    driver.flush();
    driver.send(reading(1, 15), 1, run);
    driver.flush();
    expect([...driver.stored.get('a')!.keys()]).toEqual([15]);
    driver.restart();
    driver.advance(Infinity, 2, run);
    expect(run.closed.map((window) => [window.start, window.end, idsOf(window.value)])).toEqual([[15, 21, [1, 0]]]);
  });

  it('closes a session at last + gap + grace; a record for no open session then is late', () => {
    const driver = new StrategyDriver(sessionWindows(10, { grace: 5 }));
    const run = emptyRun();
    driver.send(reading(0, 100), 0, run);
    expect(driver.strategy.due(driver.keys.get('a')!)).toBe(115);
    driver.send(reading(1, 114, 'b'), 1, run);
    expect(run.closed).toEqual([]);
    driver.send(reading(2, 115, 'b'), 2, run);
    expect(run.closed.map((window) => [window.key, window.start, window.end])).toEqual([['a', 100, 101]]);
    driver.send(reading(3, 90), 3, run);
    expect(run.late.map((late) => [late.id, late.start, late.end])).toEqual([[3, 90, 91]]);
    expect(driver.keys.has('a')).toBe(false);
  });
});

const cases = [
  { name: 'gap 1.5s, grace 300ms', gap: 1500, grace: 300 },
  { name: 'gap 200ms, no grace', gap: 200, grace: 0 },
];

describe('session windows against the reference model', () => {
  for (const { name, gap, grace } of cases) {
    const window = sessionWindows(gap, { grace });
    const input = (seed: number) => generate(seed, { count: 400, keys: 3, start: -2000, jitter: 3000, lateBy: 30 * gap, pauseChance: 0.05, pause: 4 * gap });
    it.each(SEEDS.slice(0, 6))(`${name}: closed, late and updated sessions (seed %i)`, (seed) => {
      const result = checkStrategy({ window, model: new SessionModel(gap, grace), readings: input(seed), flushAtEnd: true, updates: true });
      expect(result.differences).toEqual([]);
      expect(result.stats.windows).toBeGreaterThan(10);
      expect(result.stats.lateCalls).toBeGreaterThan(0);
    });

    it.each(SEEDS.slice(0, 6))(`${name}: the same after restarts from the stored bytes (seed %i)`, (seed) => {
      const restarts = new Random(seed);
      const result = checkStrategy({ window, model: new SessionModel(gap, grace), readings: input(seed), flushAtEnd: true, updates: true, restartAfter: () => restarts.chance(0.05) });
      expect(result.differences).toEqual([]);
    });
  }
});
