/**
 * The durable embedded broker stays bounded on an endless windowed job: the input topic within its
 * retention, the repartition topic trimmed once committed, the changelog compacted with its
 * tombstones expiring. Rounds of input through an app on levelTransport + levelState (one dir);
 * between rounds the app stops and the log on disk is counted: it does not grow with the rounds.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, silentLogger } from '@eddy/core';
import { levelState, levelTransport, type LevelTransportOptions } from '@eddy/state';

const directories: string[] = [];
afterAll(async () => Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true }))));

const quiet = { warn: () => undefined, info: () => undefined };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the durable embedded broker on an endless windowed job', () => {
  it('keeps its log on disk bounded: retention, trimmed repartition records, compacted changelogs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eddy-bounded-log-'));
    directories.push(dir);
    const logOptions: LevelTransportOptions = { dir, logger: quiet, retention: { records: 3_000 }, tombstoneRetention: '200ms' };
    /** Records on disk per topic, read by a broker opened on the dir while no app runs. */
    const onDisk = async () => {
      const broker = levelTransport(logOptions);
      await broker.connect();
      const counts: Record<string, number> = {};
      try {
        for (const topic of broker.topicNames()) {
          counts[topic] = 0;
          for await (const batch of broker.readPartition({ topic, partition: 0 }, 0)) counts[topic] += batch.length;
        }
      } finally {
        await broker.close();
      }
      return counts;
    };
    const total = (counts: Record<string, number>) => Object.values(counts).reduce((sum, count) => sum + count, 0);

    const sizes: number[] = [];
    let ts = 0;
    for (let phase = 0; phase < 3; phase++) {
      const app = createApp({ id: 'endless', transport: levelTransport(logOptions), state: levelState({ dir, logger: quiet }), idleTimeout: false, commitInterval: '100ms', logger: silentLogger });
      app
        .from<{ key: string; ts: number }>('events', { timestamp: (event) => event.ts })
        .keyBy((event) => event.key)
        .tumbling('1s')
        .count()
        .toStream()
        .to('counts');
      await app.start();
      for (let round = 0; round < 10; round++) {
        // 200 keys, a second of event time per round: every window closes, its state expires.
        await app.sendBatch('events', Array.from({ length: 1_000 }, (_, index) => ({ value: { key: `k${index % 200}`, ts }, key: `k${index % 200}`, timestamp: (ts += 1) })));
        await sleep(50);
      }
      await sleep(400);
      await app.stop();
      const counts = await onDisk();
      sizes.push(total(counts));
      // Each topic within its bound, whatever went in before.
      expect(counts['events']).toBeLessThanOrEqual(3_000);
      expect(counts['counts']).toBeLessThanOrEqual(3_000);
      expect(counts['endless-tumbling-1000ms-grace-0ms-count-repartition'] ?? 0).toBe(0);
      // Compacted: the latest record of the 200 keys' open windows, and tombstones younger than 200 ms, at most twice as many as after the last compaction.
      expect(counts['endless-tumbling-1000ms-grace-0ms-count-changelog']).toBeLessThanOrEqual(2_000);
    }
    // Thirty thousand events in, and the log holds no more than its bounds.
    expect(Math.max(...sizes)).toBeLessThanOrEqual(3_000 + 3_000 + 2_000);
    console.log(`[bounded-log] records on disk after each phase: ${sizes.join(', ')}`);
  });
});
