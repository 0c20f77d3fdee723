/**
 * README "Durable embedded mode": a send resolves once its records are written, and what a send
 * acknowledged is there after a restart (also with `sync: true`); "An endless windowed job keeps
 * a log of bounded size" — measured as bytes on disk, with records that really move between
 * partitions (so the repartition topic is used, not the local hand-off).
 */
import { describe, expect, it } from 'vitest';
import { createApp, serdes, silentLogger } from '@eddy/core';
import { levelState, levelTransport } from '@eddy/state';
import { join } from 'node:path';
import { collector, du, quiet, tempDir, waitFor, sleep, type Seen } from './helpers.ts';

describe('acknowledged sends survive a restart', () => {
  for (const sync of [false, true]) {
    it(`every send that resolved before stop() is read after a restart, once, in order (sync: ${sync})`, async () => {
      const dir = tempDir();
      const resolved = new Set<number>();
      const rejected: string[] = [];
      {
        // Never started: the host only sends (a producer opened by send()).
        const app = createApp({ id: 'host', transport: levelTransport({ dir, logger: quiet, sync, defaultPartitions: 2 }), logger: silentLogger });
        app.from('in').to('out');
        // The first send opens the log (and the producer); the rest are in flight when stop() comes.
        await app.send('in', { i: -1 }, { key: 'k0' });
        const sends: Promise<void>[] = [];
        for (let i = 0; i < 600; i++) {
          const p = i % 3 === 0 ? app.sendBatch('in', [{ value: { i }, key: `k${i % 7}` }]) : app.send('in', { i }, { key: `k${i % 7}` });
          sends.push(p.then(() => void resolved.add(i), (e: unknown) => void rejected.push(String(e))));
          if (i % 97 === 0) await sleep(1);
        }
        // Stop while sends are in flight.
        await app.stop();
        await Promise.all(sends);
      }
      if (rejected.length > 0) console.log(`[sends] ${rejected.length} rejected, e.g. ${rejected[0]}`);
      expect(resolved.size, 'some sends resolved').toBeGreaterThan(0);
      const seen: Seen<{ i: number }>[] = [];
      const reader = collector<{ i: number }>('reader', 'in', levelTransport({ dir, logger: quiet, sync, defaultPartitions: 2 }), seen);
      await reader.start();
      await waitFor(() => seen.length >= resolved.size, `the reader to see ${resolved.size} records`);
      await sleep(100);
      await reader.stop();
      const got = seen.map((s) => s.value.i).filter((i) => i >= 0);
      for (const i of resolved) expect(got, `acknowledged send ${i} lost`).toContain(i);
      expect(new Set(got).size, 'no duplicate').toBe(got.length);
      // Per key in send order.
      const last = new Map<string, number>();
      for (const { key, value } of seen) {
        expect(value.i).toBeGreaterThan(last.get(key!) ?? -2);
        last.set(key!, value.i);
      }
    });
  }
});

describe('an endless windowed job on disk', () => {
  it('keeps the bytes of its log bounded while the input grows', async () => {
    const dir = tempDir();
    const options = { dir, logger: quiet, retention: { records: 500 }, tombstoneRetention: '100ms', defaultPartitions: 4 };
    const sizes: number[] = [];
    const changelogSizes: number[] = [];
    const CHANGELOG = 'endless-tumbling-1000ms-grace-0ms-count-changelog';
    let ts = 0;
    let sent = 0;
    const counted = new Map<string, number>();
    for (let phase = 0; phase < 10; phase++) {
      const app = createApp({ id: 'endless', transport: levelTransport(options), state: levelState({ dir, logger: quiet }), idleTimeout: false, commitInterval: '50ms', logger: silentLogger });
      app
        .from<{ user: string; seq: number }>('events')
        // Keyed by seq in the topic, re-keyed by user: most records move to another partition.
        .keyBy((e) => e.user)
        .tumbling('1s')
        .count()
        .toStream()
        .peek((w) => counted.set(`${w.key}@${w.start}`, (counted.get(`${w.key}@${w.start}`) ?? 0) + w.value))
        .to('counts');
      await app.start();
      for (let round = 0; round < 8; round++) {
        await app.sendBatch('events', Array.from({ length: 1_000 }, (_, j) => {
          sent++;
          return { value: { user: `u${j % 100}`, seq: sent }, key: String(sent), timestamp: (ts += 1) };
        }));
        await sleep(40);
      }
      await sleep(300);
      await app.stop();
      sizes.push(du(join(dir, '@broker')));
      // Records of the changelog, read by a new group (of an app reading the topic as bytes).
      const changelog: number[] = [];
      const probe = createApp({ id: `probe-${phase}`, transport: levelTransport(options), idleTimeout: false, logger: silentLogger });
      probe.from(CHANGELOG, { key: serdes.bytes(), value: serdes.bytes() }).peek(() => void changelog.push(1));
      await probe.start();
      await sleep(200);
      await probe.stop();
      changelogSizes.push(changelog.length);
    }
    // Each window of every user is counted once and right: 1000 records per 1000 ms, 10 per user, over the closed windows.
    for (const [id, count] of counted) expect(count, id).toBeLessThanOrEqual(10);
    console.log(`[durable-embedded] @broker bytes after each phase: ${sizes.join(', ')}; changelog records: ${changelogSizes.join(', ')} (${sent} records in)`);
    // 100 users' open windows (one per user at most) and tombstones younger than 100 ms: compacted, the
    // changelog holds a few hundred records; even at the memory broker's pace (compacting once a
    // partition doubles, and at 1,000 records at least) no more than 2 x 1,000 per partition.
    expect(changelogSizes[9]!, 'the changelog is compacted across restarts').toBeLessThanOrEqual(4 * 2 * 1_000);
    // Phase 10 has seen twice the input of phase 4: the log must not have grown with it.
    expect(sizes[9]!).toBeLessThanOrEqual(Math.max(...sizes.slice(2, 5)) * 1.5);
  });
});
