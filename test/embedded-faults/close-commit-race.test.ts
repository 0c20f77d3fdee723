/**
 * A commit must not pass a record that closed a window before the window's result is written
 * (DESIGN, commit protocol step 1): the durable embedded mode killed while async close handlers
 * are still running. The child (slow-close-app.mjs) counts readings per key in tumbling(1s)
 * windows, commits every 20 ms, and its handler waits before it returns the result. Killed while
 * handlers hang (after dozens of commit intervals), or at seeded random moments while they run,
 * then restarted with quick handlers: every window's count is in the output topic, with the value
 * the readings in the log give (at least once: a window may be written twice, never with another
 * value).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '@eddy/core/testing';
import { replaySeed } from '../replay-seed.ts';
import { readLog, sleep, startChild, type Child } from './harness.ts';

const script = fileURLToPath(new URL('./slow-close-app.mjs', import.meta.url));
const directories: string[] = [];
afterAll(async () => Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true }))));

interface Reading {
  k: string;
  ts: number;
  seq: number;
}
interface Count {
  k: string;
  start: number;
  count: number;
}
interface Topics {
  readings: Reading;
  counts: Count;
}

const KEYS = ['a', 'b', 'c', 'd', 'e'];
const seed = replaySeed(77);

/** Resolves once the child has called the close handler `count` times in all (or exited). */
async function closings(child: Child, count: number): Promise<void> {
  for (let waited = 0; child.messages.filter((message) => message.type === 'closing').length < count; waited += 10) {
    if (child.child.exitCode !== null || waited > 30_000) throw new Error(`the close handler ran ${child.messages.filter((message) => message.type === 'closing').length} times, not ${count}: ${child.stderr()}`);
    await sleep(10);
  }
}

/**
 * After a last clean run: the readings the log holds, counted per key and window, against the
 * counts written. Windows up to `closedBefore` (exclusive) must all be there.
 */
async function expectEveryWindow(dir: string, closedBefore: number): Promise<{ windows: number; results: number }> {
  const { readings, counts } = await readLog<Topics>(dir, ['readings', 'counts']);
  const expected = new Map<string, number>();
  for (const { value } of readings) {
    const start = Math.floor(value.ts / 1000) * 1000;
    if (start + 1000 > closedBefore) continue;
    const window = `${value.k}@${start}`;
    expected.set(window, (expected.get(window) ?? 0) + 1);
  }
  const written = new Map<string, Set<number>>();
  for (const { value } of counts) {
    const window = `${value.k}@${value.start}`;
    written.set(window, (written.get(window) ?? new Set()).add(value.count));
  }
  const wrong = [...written].filter(([window, values]) => values.size !== 1 || [...values][0] !== expected.get(window));
  const missing = [...expected.keys()].filter((window) => !written.has(window));
  expect({ wrong: wrong.map(([window, values]) => [window, [...values], expected.get(window)]), missing }).toEqual({ wrong: [], missing: [] });
  return { windows: expected.size, results: counts.length };
}

describe('a durable embedded app killed while its close handlers run', () => {
  it('writes every window whose handler hung when it was killed, after dozens of commit intervals', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eddy-close-race-hang-'));
    directories.push(dir);
    const base = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
    let child = await startChild(dir, { script, args: ['hang'] });
    let seq = 0;
    const reading = (k: string, ts: number) => ({ value: { k, ts, seq: seq++ } satisfies Reading, key: k });
    expect(await child.send('readings', [...KEYS.flatMap((k, index) => Array.from({ length: index + 1 }, (_, n) => reading(k, base + n * 10)))])).toBe(true);
    // Closes each key's first window; its handler then hangs.
    expect(await child.send('readings', KEYS.map((k) => reading(k, base + 1_500)))).toBe(true);
    await closings(child, KEYS.length);
    // More input behind the closing records, and 25 commit intervals to commit it, if anything would.
    expect(await child.send('readings', KEYS.map((k) => reading(k, base + 1_600)))).toBe(true);
    await sleep(500);
    await child.kill();

    child = await startChild(dir, { script, args: ['0'] });
    expect(await child.send('readings', KEYS.map((k) => reading(k, base + 2_500)))).toBe(true);
    await child.idle();
    expect(await child.stop()).toBe(true);
    const { windows } = await expectEveryWindow(dir, base + 2_000);
    expect(windows).toBe(KEYS.length * 2);
  }, 120_000);

  it(`loses no window across kills at random moments while handlers run (seed ${seed})`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eddy-close-race-random-'));
    directories.push(dir);
    const random = mulberry32(seed);
    const base = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
    let seq = 0;
    const reading = (k: string, ts: number) => ({ value: { k, ts, seq: seq++ } satisfies Reading, key: k });
    const rounds = 12;
    let kills = 0;
    let child = await startChild(dir, { script, args: [String(20 + Math.floor(random() * 150))] });
    for (let round = 0; round < rounds; round++) {
      // One window per key and round, in time order (no record is late); each round closes the last.
      const batch = KEYS.flatMap((k) => Array.from({ length: 1 + Math.floor(random() * 6) }, () => reading(k, base + round * 1_000 + Math.floor(random() * 1_000))));
      batch.sort((x, y) => x.value.ts - y.value.ts);
      const closedBefore = child.messages.filter((message) => message.type === 'closing').length;
      if (!(await child.send('readings', batch))) {
        // Killed while sending: what the log holds of it is the reference's input.
        child = await startChild(dir, { script, args: [String(20 + Math.floor(random() * 150))] });
        continue;
      }
      if (round === 0 || random() < 0.4) continue;
      // Kill once a handler of this round runs, a random moment later.
      await closings(child, closedBefore + 1).catch(() => undefined);
      await sleep(Math.floor(random() * 150));
      await child.kill();
      kills++;
      child = await startChild(dir, { script, args: [String(20 + Math.floor(random() * 150))] });
    }
    const end = base + rounds * 1_000;
    expect(await child.send('readings', KEYS.map((k) => reading(k, end + 500)))).toBe(true);
    await child.idle();
    expect(await child.stop()).toBe(true);
    const { windows, results } = await expectEveryWindow(dir, end);
    expect(kills).toBeGreaterThan(2);
    expect(windows).toBeGreaterThanOrEqual(KEYS.length * (rounds - 2));
    process.stderr.write(`[close-commit-race] seed ${seed}: ${kills} kills, ${windows} windows, ${results} results written\n`);
  }, 240_000);
});
