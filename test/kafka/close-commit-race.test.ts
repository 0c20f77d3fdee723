/**
 * The close/commit race on Kafka (see test/embedded-faults/close-commit-race.test.ts): an app
 * killed while its async close handlers hang, after dozens of commit intervals, then restarted
 * with quick handlers, writes every window, with the right count: at least once, or exactly once
 * (one result per window, read_committed) under exactly-once, where the handlers' results must be
 * in the transaction that commits the records that closed their windows.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { sleep, startChild, type Child } from '../embedded-faults/harness.ts';
import { describeKafka, uniqueName } from './broker.ts';
import { createTopics, deleteAppTopics, gatherTopic, testAdmin, waitFor } from './helpers.ts';

const script = fileURLToPath(new URL('../embedded-faults/slow-close-app.mjs', import.meta.url));
const KEYS = ['a', 'b', 'c', 'd', 'e'];

describeKafka('a Kafka app killed while its close handlers hang', (brokers) => {
  for (const guarantee of ['at-least-once', 'exactly-once'] as const) {
    it(`${guarantee}: writes every window whose handler hung when it was killed, with the right count`, async () => {
      const appId = uniqueName(`close-race-${guarantee}`);
      const readings = `${appId}-readings`;
      const counts = `${appId}-counts`;
      const dir = await mkdtemp(join(tmpdir(), 'eddy-kafka-close-race-'));
      await createTopics(brokers, [
        { name: readings, partitions: 2 },
        { name: counts, partitions: 1 },
      ]);
      const output = await gatherTopic(brokers, counts);
      const start = (delay: string) => startChild(dir, { script, args: [delay, brokers.join(','), appId, guarantee] });
      let child: Child | undefined;
      try {
        const base = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
        const reading = (k: string, ts: number) => ({ value: { k, ts }, key: k });
        child = await start('hang');
        // Key k has index + 1 readings in its first window, then one that closes it (its handler hangs), then one more.
        expect(await child.send(readings, KEYS.flatMap((k, index) => Array.from({ length: index + 1 }, (_, n) => reading(k, base + n * 10))))).toBe(true);
        expect(await child.send(readings, KEYS.map((k) => reading(k, base + 1_500)))).toBe(true);
        const hanging = child;
        await waitFor('every first window closing', () => hanging.messages.filter((message) => message.type === 'closing').length >= KEYS.length, { timeoutMs: 30_000 });
        expect(await child.send(readings, KEYS.map((k) => reading(k, base + 1_600)))).toBe(true);
        // The app commits every 20 ms: half a second is 25 chances to commit past the closing records.
        await sleep(500);
        await child.kill();

        child = await start('0');
        expect(await child.send(readings, KEYS.map((k) => reading(k, base + 2_500)))).toBe(true);
        const expected = new Map(KEYS.flatMap((k, index) => [[`${k}@${base}`, index + 1] as const, [`${k}@${base + 1_000}`, 2] as const]));
        const written = () => output.records.map((record) => JSON.parse(record.value!) as { k: string; start: number; count: number });
        await waitFor('every window written', () => [...expected.keys()].every((window) => written().some((w) => `${w.k}@${w.start}` === window)), { timeoutMs: 60_000, intervalMs: 200 });
        expect(await child.stop()).toBe(true);
        await sleep(500);
        const results = written().map((w) => [`${w.k}@${w.start}`, w.count] as const);
        expect(results.filter(([window, count]) => expected.get(window) !== count)).toEqual([]);
        const perWindow = new Map<string, number>();
        for (const [window] of results) perWindow.set(window, (perWindow.get(window) ?? 0) + 1);
        expect(perWindow.size).toBe(expected.size);
        if (guarantee === 'exactly-once') expect([...perWindow].filter(([, times]) => times !== 1)).toEqual([]);
      } finally {
        await child?.kill();
        await output.stop();
        await rm(dir, { recursive: true, force: true });
        const admin = testAdmin(brokers);
        await deleteAppTopics(admin, appId).finally(() => admin.close());
      }
    }, 180_000);
  }
});
