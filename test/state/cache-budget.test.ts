/**
 * The write-behind cache under a budget: keys not used lately leave memory after a commit and are
 * read back from LevelDB when a record or a closing window needs them; results do not change.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, silentLogger } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { levelState } from '@eddy/state';

interface Visit {
  user: string;
  page: number;
  ts: number;
}

const directories: string[] = [];
afterAll(async () => Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true }))));

async function run(cacheBudget: number | undefined) {
  const dir = await mkdtemp(join(tmpdir(), 'eddy-cache-'));
  directories.push(dir);
  const app = createApp({ id: 'cache', state: levelState({ dir, cacheBudget, logger: { warn: () => {}, info: () => {} } }), logger: silentLogger, idleTimeout: '5s' });
  const keyed = app.from<Visit>('visits', { timestamp: (v) => v.ts }).keyBy((v) => v.user);
  keyed.count({ name: 'visits-per-user' });
  keyed.session('20s').collect().onClose((w) => ({ user: w.key, start: w.start, pages: w.value.map((v) => v.page) })).to('sessions');
  keyed.hopping('30s', '10s', { grace: '5s' }).sum((v) => v.page).toStream().to('page-sums');
  const driver = await TestDriver.start(app);
  const peaks: number[] = [];
  // 600 users; each round of one second touches 40 of them, so most keys go cold for a while.
  for (let round = 0; round < 120; round++) {
    for (let i = 0; i < 40; i++) {
      const user = `user-${(round * 37 + i * 13) % 600}`;
      await driver.send('visits', { user, page: (round * 7 + i) % 50, ts: round * 1000 + i * 10 - (i % 7) * 300 });
    }
    await driver.advanceTime('1s');
    peaks.push(app.metrics().stateCacheBytes);
  }
  await driver.advanceTime('2m');
  const counts = await app.store('visits-per-user').range();
  const sorted = (topic: string) => driver.read(topic).map((record) => JSON.stringify(record.value)).sort();
  const result = { sessions: sorted('sessions'), sums: sorted('page-sums'), counts, peaks };
  await driver.stop();
  return result;
}

describe('a state cache budget', () => {
  it('keeps memory under the budget and gives the same results as unbounded state', async () => {
    const unbounded = await run(undefined);
    const budget = 20_000;
    const bounded = await run(budget);
    expect(Math.max(...unbounded.peaks)).toBeGreaterThan(budget * 2);
    // Measured after each commit, when eviction runs.
    expect(Math.max(...bounded.peaks)).toBeLessThanOrEqual(budget);
    expect(bounded.sessions.length).toBeGreaterThan(100);
    expect(bounded.sessions).toEqual(unbounded.sessions);
    expect(bounded.sums).toEqual(unbounded.sums);
    expect(bounded.counts).toEqual(unbounded.counts);
  });
});
