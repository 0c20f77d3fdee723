/**
 * The durable embedded mode under SIGKILL, with more than one kind of window: a child app
 * (child-app.mjs, on the built dist) runs session windows with grace over out-of-order events,
 * count windows, a table with a stream-table join, and a chain of two pipelines (per-second
 * counts feeding per-10 s totals through a topic of its own). It is killed at seeded random
 * moments, eight times, while the test sends input through app.sendBatch / app.send and waits for
 * each acknowledgement over IPC. The app reports no error; after a last clean run the log is read
 * back: every accepted event and click is in it, and every result equals a brute-force reference
 * computed from the input it holds (at least once: a result may be written twice, never with
 * another value).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '@eddy/core/testing';
import { replaySeed } from '../replay-seed.ts';
import { readLog, sleep, startChild, type Child } from './harness.ts';
import { referenceClickCounts, referenceCounts, referenceJoin, referenceSessions, type Click, type Event, type Topics } from './reference.ts';

const directories: string[] = [];
afterAll(async () => Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true }))));

const USERS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5'];
const seed = replaySeed(4242);

describe('a durable embedded app with sessions, count windows, a join and a chain, killed again and again', () => {
  it(`loses no accepted record, and every window and join result equals the reference (seed ${seed})`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eddy-embedded-faults-kill-'));
    directories.push(dir);
    const random = mulberry32(seed);
    const base = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
    let child: Child = await startChild(dir);
    const acceptedEvents = new Set<number>();
    const acceptedClicks = new Set<number>();
    let eventSeq = 0;
    let clickSeq = 0;
    let tierCount = 0;
    let kills = 0;
    /** The closing records' time: set once the regular records are sent (their timestamps grow with their number). */
    let far = Number.NaN;
    const eventBatch = () =>
      Array.from({ length: 20 }, () => {
        const seq = eventSeq++;
        const ts = base + seq * 20 + Math.floor(seq / 50) * 1500 - Math.floor(random() * 300);
        const user = USERS[Math.floor(random() * USERS.length)]!;
        return { value: { seq, user, n: 1 + Math.floor(random() * 9), ts } satisfies Event, key: user };
      });
    const clickBatch = () =>
      Array.from({ length: 20 }, () => {
        const seq = clickSeq++;
        const user = USERS[Math.floor(random() * USERS.length)]!;
        return { value: { seq, user, ts: base + seq * 20 } satisfies Click, key: user };
      });
    type Pending =
      | { topic: 'events'; records: Array<{ value: Event; key: string }> }
      | { topic: 'clicks'; records: Array<{ value: Click; key: string }> }
      | { topic: 'tiers'; records: Array<{ value: string; key: string; timestamp: number }> };
    const queue: Pending[] = [];
    const refill = () => {
      queue.push({ topic: 'events', records: eventBatch() });
      if (random() < 0.3) {
        const user = USERS[Math.floor(random() * USERS.length)]!;
        // A tier update stamped with the first timestamp of the next click batch: at or after every click sent before.
        queue.push({ topic: 'tiers', records: [{ value: `tier-${tierCount++}`, key: user, timestamp: base + clickSeq * 20 }] });
      }
      queue.push({ topic: 'clicks', records: clickBatch() });
    };
    const post = async (pending: Pending) => {
      const ok = await child.send(pending.topic, pending.records);
      if (ok && pending.topic === 'events') for (const record of pending.records) acceptedEvents.add(record.value.seq);
      if (ok && pending.topic === 'clicks') for (const record of pending.records) acceptedClicks.add(record.value.seq);
      return ok;
    };
    const failures: string[] = [];
    try {
      let killAt = Date.now() + 200 + random() * 1_000;
      while (kills < 8 || eventSeq < 3_000) {
        if (queue.length === 0) refill();
        if (Date.now() >= killAt && kills < 8) {
          const sending = post(queue[0]!);
          await sleep(random() * 15);
          await child.kill();
          kills++;
          // Unacknowledged: the same batch is sent again to the next child.
          await sending;
          for (const message of child.messages) if (message.type === 'error') failures.push(JSON.stringify(message));
          child = await startChild(dir);
          killAt = Date.now() + 200 + random() * 1_000;
          continue;
        }
        if (await post(queue[0]!)) queue.shift();
        else throw new Error(`a send failed on a live child: ${child.stderr()}`);
      }
      while (queue.length > 0) if (await post(queue[0]!)) queue.shift();
      // Close everything: a far event per user, and two far clicks per user (the second closes the
      // per-second window of the first, whose result then closes the per-10 s windows before it).
      // Ten minutes after the last regular record of either topic, on a 10 s bound (the windows'
      // starts the checks compare with): no window or session of theirs reaches it.
      const last = Math.max(base + eventSeq * 20 + Math.floor(eventSeq / 50) * 1500, base + clickSeq * 20);
      far = Math.ceil((last + 10 * 60_000) / 10_000) * 10_000;
      expect(await child.send('events', USERS.map((user, i) => ({ value: { seq: -1 - i, user, n: 0, ts: far }, key: user })))).toBe(true);
      expect(await child.send('clicks', USERS.map((user, i) => ({ value: { seq: -100 - i, user, ts: far }, key: user })))).toBe(true);
      expect(await child.send('clicks', USERS.map((user, i) => ({ value: { seq: -200 - i, user, ts: far + 100_000 }, key: user })))).toBe(true);
      const idle = await child.idle();
      expect(idle?.state).toBe('running');
      console.log('[embedded-faults kill] metrics', JSON.stringify({ ...(idle?.metrics as object), streamTime: undefined, lastCommitAgeMs: undefined }));
      expect(await child.stop()).toBe(true);
      for (const message of child.messages) if (message.type === 'error') failures.push(JSON.stringify(message));
    } finally {
      await child.kill();
    }
    expect(failures).toEqual([]);

    const log = await readLog<Topics>(dir, ['events', 'clicks', 'tiers', 'sessions', 'counts', 'enriched', 'per-second', 'per-10s']);
    const { events, clicks } = log;
    const loggedEvents = new Set(events.map((record) => record.value.seq));
    const loggedClicks = new Set(clicks.map((record) => record.value.seq));
    expect([...acceptedEvents].filter((seq) => !loggedEvents.has(seq)), 'accepted events missing from the log').toEqual([]);
    expect([...acceptedClicks].filter((seq) => !loggedClicks.has(seq)), 'accepted clicks missing from the log').toEqual([]);

    const problems: Record<string, unknown[]> = {};
    const note = (what: string, item: unknown) => (problems[what] ??= []).length < 5 && problems[what]!.push(item);

    // Sessions: exact, and none missing but those holding the far records, which never close.
    const sessions = referenceSessions(events);
    const sessionResults = log.sessions.map((record) => record.value);
    for (const result of sessionResults) if (sessions.get(`${result.user}@${result.start}`) !== JSON.stringify(result)) note('wrong session', { result, expected: sessions.get(`${result.user}@${result.start}`) });
    const seenSessions = new Set(sessionResults.map((result) => `${result.user}@${result.start}`));
    for (const [key, value] of sessions) if (!seenSessions.has(key) && (JSON.parse(value) as Topics['sessions']).start < far) note('missing session', value);

    // Count windows: each result is one of the reference's windows, and all of them are reported.
    const counts = new Set(referenceCounts(events).values());
    const countResults = log.counts.map((record) => JSON.stringify(record.value));
    for (const result of countResults) if (!counts.has(result)) note('wrong count window', result);
    const seenCounts = new Set(countResults);
    for (const value of counts) if (!seenCounts.has(value)) note('missing count window', value);

    // Join: each click of the log met its user's tier as of its timestamp; a click before any tier is dropped.
    const joined = referenceJoin(clicks, log.tiers);
    for (const { value } of log.enriched) if (joined.get(value.seq) !== value.tier) note('wrong join', { value, expected: joined.get(value.seq) });
    const enrichedSeqs = new Set(log.enriched.map((record) => record.value.seq));
    for (const [seq, tier] of joined) if (tier !== undefined && !enrichedSeqs.has(seq)) note('missing join', { seq, tier });
    for (const { value } of log.enriched) if (joined.get(value.seq) === undefined) note('join result without tier', value);

    // Chain: per-second counts exact; per-10 s totals exact too (the handler counts a repeated per-second result once).
    const perSecond = referenceClickCounts(clicks, 1000);
    for (const { value } of log['per-second']) if (perSecond.get(`${value.user}@${value.start}`) !== value.count) note('wrong per-second', { value, expected: perSecond.get(`${value.user}@${value.start}`) });
    const seenSeconds = new Set(log['per-second'].map((record) => `${record.value.user}@${record.value.start}`));
    for (const [key] of perSecond) if (!seenSeconds.has(key) && Number(key.split('@')[1]) < far + 100_000) note('missing per-second', key);
    const per10s = referenceClickCounts(clicks, 10_000);
    for (const { value } of log['per-10s']) if (per10s.get(`${value.user}@${value.start}`) !== value.total) note('wrong per-10s', { value, expected: per10s.get(`${value.user}@${value.start}`) });
    const seenTens = new Set(log['per-10s'].map((record) => `${record.value.user}@${record.value.start}`));
    for (const [key] of per10s) if (!seenTens.has(key) && Number(key.split('@')[1]) < far) note('missing per-10s', key);

    console.log(`[embedded-faults kill] seed ${seed}: ${kills} kills; events ${events.length} (accepted ${acceptedEvents.size}), clicks ${clicks.length}, tiers ${log.tiers.length}; sessions ${sessionResults.length}/${sessions.size}, counts ${countResults.length}/${counts.size}, enriched ${log.enriched.length}, per-second ${log['per-second'].length}/${perSecond.size}, per-10s ${log['per-10s'].length}/${per10s.size}`);
    expect(problems, `seed ${seed}`).toEqual({});
    expect(kills).toBe(8);
  }, 90_000);
});
