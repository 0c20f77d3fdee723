/**
 * One instance per state: a second app with the same id on the same embedded broker and the same
 * `levelState` dir fails at `start()` with `STATE_LOCKED`, before it joins the group, and the
 * first app goes on counting, commits, and stops cleanly. Real LevelDB on disk.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, memoryTransport, silentLogger, type MemoryTransport, type StateBackend } from '@eddy/core';
import { levelState } from '@eddy/state';

const directories: string[] = [];
afterAll(async () => {
  await Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true })));
});

const quiet = { warn: () => undefined, info: () => undefined };

function counter(transport: MemoryTransport, state: StateBackend) {
  const app = createApp({ id: 'locked', transport, state, idleTimeout: false, logger: silentLogger });
  app.from<{ sensor: string }>('readings').keyBy((reading) => reading.sensor).count({ name: 'counts' });
  return app;
}

describe('a second instance on the same state', () => {
  for (const shared of [false, true]) {
    it(`fails at start with STATE_LOCKED and leaves the first untouched (${shared ? 'one levelState shared by both' : 'a levelState each, one dir'})`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'eddy-locked-'));
      directories.push(dir);
      const transport = memoryTransport({ defaultPartitions: 2 });
      const firstState = levelState({ dir, logger: quiet });
      const first = counter(transport, firstState);
      await first.start();
      for (let index = 0; index < 10; index++) await first.send('readings', { sensor: 's1' }, { key: 's1' });

      const second = counter(transport, shared ? firstState : levelState({ dir, logger: quiet }));
      await expect(second.start()).rejects.toMatchObject({ code: 'STATE_LOCKED' });
      expect(second.state).toBe('failed');

      // The first still owns every partition and keeps counting.
      for (let index = 0; index < 5; index++) await first.send('readings', { sensor: 's1' }, { key: 's1' });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(first.state).toBe('running');
      expect(first.metrics().tasks, 'two partitions of two sub-topologies').toBe(4);
      expect(await first.store('counts').get('s1')).toBe(15);
      await expect(first.stop()).resolves.toBeUndefined();
      expect(first.state).toBe('stopped');
      await second.stop();

      // And a later instance gets the state, with everything the first committed.
      const third = counter(transport, levelState({ dir, logger: quiet }));
      await third.start();
      expect(await third.store('counts').get('s1')).toBe(15);
      await third.stop();
    });
  }
});
