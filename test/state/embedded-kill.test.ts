/**
 * The durable embedded mode under SIGKILL: the embedded service (levelTransport + levelState, one
 * process, no Kafka) is killed at seeded random moments, ten times, while a client keeps posting
 * events and awaiting each answer; each time it starts again on the same dir. After a last clean
 * run the log is read back: every event the service accepted (202) is in it, and every one-minute
 * window reported has exactly the count of the events the log holds for it (at least once: a
 * window may be reported twice, never with another value).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '@eddy/core/testing';
import { levelTransport } from '@eddy/state';
import { startServiceProcess, type ServiceProcess } from '../../examples/src/embedded-service/service-process.ts';
import { replaySeed } from '../replay-seed.ts';

const directories: string[] = [];
afterAll(async () => Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true }))));

interface PageView {
  page: string;
  user: string;
  durationMs: number;
  ts: number;
}

const pages = ['/home', '/docs', '/pricing', '/blog', '/about'];
const minute = 60_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seed = replaySeed(20261206);

describe('the embedded service killed again and again', () => {
  it(`loses no accepted event and reports every window with its exact count (seed ${seed})`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eddy-embedded-kill-'));
    directories.push(dir);
    const random = mulberry32(seed);
    let service: ServiceProcess = await startServiceProcess(dir);
    const accepted = new Set<string>();
    let sequence = 0;
    let kills = 0;
    let unanswered = 0;
    const batch = (): PageView[] =>
      Array.from({ length: 20 }, () => {
        const seq = sequence++;
        // One event every 200 ms of event time, in order: ten minutes over the whole run.
        return { page: pages[seq % pages.length]!, user: `u${seq}`, durationMs: seq, ts: seq * 200 };
      });
    const post = async (events: PageView[]): Promise<boolean> => {
      try {
        const response = await fetch(`${service.url}/events`, { method: 'POST', body: JSON.stringify(events) });
        if (response.status !== 202) return false;
        for (const event of events) accepted.add(event.user);
        return true;
      } catch {
        return false;
      }
    };
    try {
      let pending = batch();
      let killAt = Date.now() + 300 + random() * 1_200;
      while (kills < 10 || sequence < 3_000) {
        if (Date.now() >= killAt && kills < 10) {
          // Whatever is in flight meets a dead process; the client sends it again once it is back.
          const sending = post(pending);
          await sleep(random() * 20);
          await service.stop('SIGKILL');
          kills++;
          if (!(await sending)) unanswered++;
          service = await startServiceProcess(dir);
          killAt = Date.now() + 300 + random() * 1_200;
          continue;
        }
        if (await post(pending)) pending = batch();
      }
      // A last event per page far ahead closes every window; once all is read, a clean stop.
      expect(await post(pages.map((page) => ({ page, user: `close-${page}`, durationMs: 0, ts: 100 * minute })))).toBe(true);
      for (let quiet = 0; quiet < 3; await sleep(100)) {
        const metrics = await (await fetch(`${service.url}/metrics`)).text();
        quiet = /^eddy_lag\{[^}]*\} 0$/m.test(metrics) ? quiet + 1 : 0;
      }
      expect(await service.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    } finally {
      await service.stop('SIGKILL');
    }

    // Read what the log holds.
    const broker = levelTransport({ dir, logger: { warn: () => undefined, info: () => undefined } });
    await broker.connect();
    const read = async (topic: string) => {
      const values: unknown[] = [];
      for (let partition = 0; partition < ((await broker.partitionCount(topic)) ?? 0); partition++) {
        for await (const records of broker.readPartition({ topic, partition }, 0)) for (const record of records) values.push(JSON.parse(new TextDecoder().decode(record.value!)));
      }
      return values;
    };
    const input = (await read('page-views')) as PageView[];
    const results = (await read('views-per-minute')) as Array<{ key: string; start: number; value: number }>;
    await broker.close();

    const logged = new Set(input.map((event) => event.user));
    const lost = [...accepted].filter((user) => !logged.has(user));
    expect(lost, `accepted events missing from the log (seed ${seed})`).toEqual([]);
    const expected = new Map<string, number>();
    for (const event of input) {
      if (event.ts >= 100 * minute) continue;
      const window = `${event.page}@${Math.floor(event.ts / minute) * minute}`;
      expected.set(window, (expected.get(window) ?? 0) + 1);
    }
    const wrong = results.filter((result) => expected.get(`${result.key}@${result.start}`) !== result.value);
    const missing = [...expected.keys()].filter((window) => !results.some((result) => `${result.key}@${result.start}` === window));
    console.log(`[embedded-kill] seed ${seed}: ${kills} kills (${unanswered} posts unanswered); ${accepted.size} events accepted, ${input.length} in the log; ${results.length} results for ${expected.size} windows`);
    expect({ wrong: wrong.slice(0, 5), missing: missing.slice(0, 5) }, `seed ${seed}`).toEqual({ wrong: [], missing: [] });
    expect(kills, `seed ${seed}`).toBe(10);
    expect(expected.size, `seed ${seed}`).toBeGreaterThanOrEqual(pages.length * 9);
  }, 120_000);
});
