/**
 * A task hands the records of its first batch that stay in its partition to the local task that
 * reads the repartition topic, then, once it sees records move between partitions, writes to the
 * topic instead. If the app died before the reading task committed what it was handed, the
 * topic held the source's later records, the restarted reading task read them first, and its
 * replay marks (one high-water mark per source) then dropped the replays of the handed-off ones
 * as already applied: silently lost (found by a review helper, on both transports). Here: the
 * durable embedded mode, input keyed so that `keyBy` moves records, a commit interval of an
 * hour (nothing commits unless it must), killed once everything is read; restarted, every window
 * has the count the log's readings give.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readLog, startChild, type Child } from './harness.ts';

const script = fileURLToPath(new URL('./slow-close-app.mjs', import.meta.url));
const directories: string[] = [];
afterAll(async () => Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true }))));

const KEYS = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];

/** Starts the fixture with quick handlers and the given commit interval. */
async function start(dir: string, commitInterval: string): Promise<Child> {
  const before = process.env.EDDY_TEST_COMMIT_INTERVAL;
  process.env.EDDY_TEST_COMMIT_INTERVAL = commitInterval;
  try {
    return await startChild(dir, { script, args: ['0'] });
  } finally {
    if (before === undefined) delete process.env.EDDY_TEST_COMMIT_INTERVAL;
    else process.env.EDDY_TEST_COMMIT_INTERVAL = before;
  }
}

describe('a durable embedded app killed before a task committed what another handed it', () => {
  for (const round of [1, 2, 3]) {
    it(`loses none of the records handed off before records started to move (round ${round})`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'eddy-hand-off-kill-'));
      directories.push(dir);
      const base = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
      let child = await start(dir, '1h');
      // Keyed by their number, grouped by k: most records move to another partition.
      let seq = 0;
      const reading = (ts: number) => {
        const n = seq++;
        return { value: { k: KEYS[(n * 3 + round) % KEYS.length]!, ts, n }, key: `r${n}` };
      };
      for (let batch = 0; batch < 6; batch++) expect(await child.send('readings', Array.from({ length: 500 }, (_, index) => reading(base + (batch * 500 + index) * 4)))).toBe(true);
      await child.idle();
      await child.kill();

      child = await start(dir, '20ms');
      expect(await child.send('readings', KEYS.map((k) => ({ value: { k, ts: base + 60_000, n: -1 }, key: `closer-${k}` })))).toBe(true);
      await child.idle();
      expect(await child.stop()).toBe(true);

      const { readings, counts } = await readLog<{ readings: { k: string; ts: number; n: number }; counts: { k: string; start: number; count: number } }>(dir, ['readings', 'counts']);
      const expected = new Map<string, number>();
      for (const { value } of readings) {
        if (value.n < 0) continue;
        const window = `${value.k}@${Math.floor(value.ts / 1000) * 1000}`;
        expected.set(window, (expected.get(window) ?? 0) + 1);
      }
      const written = new Map<string, Set<number>>();
      for (const { value } of counts) {
        const window = `${value.k}@${value.start}`;
        written.set(window, (written.get(window) ?? new Set()).add(value.count));
      }
      const wrong = [...expected].filter(([window, count]) => written.get(window)?.size !== 1 || !written.get(window)!.has(count));
      expect(wrong.map(([window, count]) => [window, count, [...(written.get(window) ?? [])]])).toEqual([]);
      expect(expected.size).toBeGreaterThan(KEYS.length * 10);
    }, 120_000);
  }
});
