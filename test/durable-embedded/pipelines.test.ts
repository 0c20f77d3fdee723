/**
 * README "Durable embedded mode" + "Keys, partitions and tasks": several apps of one process on one
 * levelTransport — a pipeline feeding another through a topic, two groups reading one topic, one
 * app restarted while the others keep running, then the whole "process" restarted (every app
 * stopped, the transport closed, new levelTransport/levelState objects on the same dirs). Every
 * window result exactly once, in window order per key, equal to a brute-force reference; every
 * record read exactly once by each group; committed offsets honoured (a clean restart repeats
 * nothing, and restores nothing from the changelogs).
 */
import { describe, expect, it } from 'vitest';
import { createApp, silentLogger, type App } from '@eddy/core';
import { levelState, levelTransport, type LevelTransport } from '@eddy/state';
import { collector, prng, quiet, tempDir, waitFor, sleep, type Seen } from './helpers.ts';

interface Ev { seq: number; user: string; ts: number }
interface Win { key: string; start: number; end: number; value: number[] }

const USERS = 8;
const SIZE = 5_000;
const GRACE = 15_000;
const ROUND = 10_000;
const FLUSH_TS = 1_000_000_000;

/** `raw` (keyed by seq: random partitions) → `mid` (values stamped), read by `win` and by `tap`. */
function enrich(transport: LevelTransport, dir: string): App {
  const app = createApp({ id: 'enrich', transport, state: levelState({ dir, logger: quiet }), idleTimeout: false, commitInterval: '50ms', logger: silentLogger });
  app.from<Ev>('raw').map((e) => ({ ...e, stamped: true })).to('mid');
  return app;
}

/** `mid` re-keyed by user (through its repartition topic), tumbling windows collecting seqs, to `windows`. */
function windows(transport: LevelTransport, dir: string): App {
  const app = createApp({ id: 'win', transport, state: levelState({ dir, logger: quiet }), idleTimeout: false, commitInterval: '50ms', logger: silentLogger });
  app
    .from<Ev & { stamped: boolean }>('mid', { timestamp: (e) => e.ts })
    .keyBy((e) => e.user)
    .tumbling(SIZE, { grace: GRACE })
    .aggregate({ init: () => [] as number[], add: (acc: number[], e) => [...acc, e.seq], merge: (a: number[], b: number[]) => [...a, ...b] })
    .toStream()
    .to('windows');
  return app;
}

describe('several apps on one levelTransport, restarted one by one and all together', () => {
  it('every window once, in order per key, every record once per group, equal to the reference', async () => {
    const dir = tempDir();
    const random = prng(20240611);
    const sent: Ev[] = [];
    let seq = 0;
    const round = (r: number): Ev[] => {
      // 150 events, distinct timestamps inside the round, a little out of order.
      const base = Array.from({ length: 150 }, (_, i) => r * ROUND + Math.floor((i * ROUND) / 150));
      for (let i = 0; i < base.length - 1; i++) if (random() < 0.3) [base[i], base[i + 1]] = [base[i + 1]!, base[i]!];
      return base.map((ts) => ({ seq: seq++, user: `u${Math.floor(random() * USERS)}`, ts }));
    };
    const tapSeen: Seen<Ev>[] = [];
    const sinkSeen: Seen<Win>[] = [];
    const late = { count: 0 };

    let transport = levelTransport({ dir, logger: quiet, defaultPartitions: 3 });
    let apps = {
      enrich: enrich(transport, dir),
      win: windows(transport, dir),
      tap: collector<Ev>('tap', 'mid', transport, tapSeen, { dir }),
      sink: collector<Win>('sink', 'windows', transport, sinkSeen, { dir }),
    };
    const startAll = async () => {
      for (const app of Object.values(apps)) await app.start();
    };
    const stopAll = async () => {
      late.count += apps.win.metrics().lateRecords;
      for (const app of Object.values(apps)) await app.stop();
      for (const app of Object.values(apps)) expect(app.failure).toBeUndefined();
    };
    const send = async (r: number) => {
      const events = round(r);
      sent.push(...events);
      await apps.enrich.sendBatch('raw', events.map((e) => ({ value: e, key: String(e.seq), timestamp: e.ts })));
      // One round at a time: a backlog lets one upstream task run ahead of another in event time (README, Order).
      await waitFor(() => tapSeen.length === sent.length, `tap to read ${sent.length} records`);
      await sleep(30);
    };
    const settle = async () => waitFor(() => tapSeen.length === sent.length, `tap to read ${sent.length} records`);

    await startAll();
    for (let r = 0; r < 3; r++) await send(r);
    await settle();

    // `win` alone is restarted (new objects of its own on the shared transport) while a round is sent.
    late.count += apps.win.metrics().lateRecords;
    await apps.win.stop();
    const events = round(3);
    sent.push(...events);
    await apps.enrich.sendBatch('raw', events.map((e) => ({ value: e, key: String(e.seq), timestamp: e.ts })));
    apps.win = windows(transport, dir);
    await apps.win.start();
    expect(apps.win.metrics().restoredRecords, 'clean stop: the local checkpoint is current').toBe(0);
    for (let r = 4; r < 6; r++) await send(r);
    await settle();
    await sleep(200);

    // The whole process "restarts".
    await stopAll();
    const windowsBefore = sinkSeen.length;
    transport = levelTransport({ dir, logger: quiet, defaultPartitions: 3 });
    apps = {
      enrich: enrich(transport, dir),
      win: windows(transport, dir),
      tap: collector<Ev>('tap', 'mid', transport, tapSeen, { dir }),
      sink: collector<Win>('sink', 'windows', transport, sinkSeen, { dir }),
    };
    await startAll();
    expect(apps.win.metrics().restoredRecords).toBe(0);
    await sleep(200);
    expect(sinkSeen.length, 'committed offsets honoured: nothing re-delivered after a clean restart').toBe(windowsBefore);
    for (let r = 6; r < 9; r++) await send(r);
    // Everything in before the flush: a far-future record from one upstream task ahead of another's backlog would make it late (README, Order).
    await settle();
    await sleep(200);
    // Close every window: one far-future event per user.
    const users = [...new Set(sent.map((e) => e.user))];
    await apps.enrich.sendBatch('raw', users.map((user) => ({ value: { seq: -1, user, ts: FLUSH_TS }, key: `flush-${user}`, timestamp: FLUSH_TS })));

    // Reference: per user and window, the seqs in timestamp order (timestamps are distinct per round).
    const reference = new Map<string, number[]>();
    for (const e of [...sent].sort((a, b) => a.ts - b.ts)) {
      const id = `${e.user}@${Math.floor(e.ts / SIZE) * SIZE}`;
      reference.set(id, [...(reference.get(id) ?? []), e.seq]);
    }
    await waitFor(() => sinkSeen.length >= reference.size, `sink to see ${reference.size} windows`);
    await sleep(300);
    late.count += apps.win.metrics().lateRecords;
    await stopAll();

    expect(late.count, 'no record late').toBe(0);
    // tap: every record of mid exactly once.
    expect(tapSeen.map((s) => s.value.seq).filter((s) => s >= 0).sort((a, b) => a - b)).toEqual(sent.map((e) => e.seq));
    // sink: every window exactly once, equal to the reference.
    const got = new Map<string, number[]>();
    for (const { key, value } of sinkSeen) {
      const id = `${value.key}@${value.start}`;
      expect(key).toBe(value.key);
      expect(got.has(id), `window ${id} emitted twice`).toBe(false);
      expect(value.end - value.start).toBe(SIZE);
      got.set(id, value.value);
    }
    expect(got.size).toBe(reference.size);
    const wrong = [...reference].filter(([id, seqs]) => JSON.stringify([...(got.get(id) ?? [])].sort((a, b) => a - b)) !== JSON.stringify([...seqs].sort((a, b) => a - b)));
    if (wrong.length > 0) console.log('[pipelines] wrong windows', wrong.length, 'of', reference.size, wrong.slice(0, 8).map(([id, seqs]) => `${id}: got ${JSON.stringify(got.get(id))} want ${JSON.stringify(seqs)}`).join('\n'));
    // An aggregate with merge folds in arrival order (which crosses upstream partitions): compare as sets.
    for (const [id, seqs] of reference) expect([...(got.get(id) ?? [])].sort((a, b) => a - b), id).toEqual([...seqs].sort((a, b) => a - b));
    // In window order per key.
    const lastStart = new Map<string, number>();
    for (const { value } of sinkSeen) {
      expect(value.start, `${value.key} out of order`).toBeGreaterThan(lastStart.get(value.key) ?? -1);
      lastStart.set(value.key, value.start);
    }
  });

  it('a new group started after a whole restart reads the whole topic, from disk, exactly once and in order per partition', async () => {
    const dir = tempDir();
    const random = prng(7);
    const values = Array.from({ length: 2_000 }, (_, i) => ({ i, k: `k${Math.floor(random() * 50)}` }));
    {
      const transport = levelTransport({ dir, logger: quiet, defaultPartitions: 2 });
      const first: Seen<{ i: number; k: string }>[] = [];
      const reader = collector('first', 'events', transport, first);
      await reader.start();
      for (let from = 0; from < values.length; from += 250) {
        await reader.sendBatch('events', values.slice(from, from + 250).map((value) => ({ value, key: value.k })));
      }
      await waitFor(() => first.length === values.length, 'first group to read everything');
      await sleep(150);
      await reader.stop();
    }
    // Everything committed by the only group: on disk only after the restart.
    const transport = levelTransport({ dir, logger: quiet, defaultPartitions: 2 });
    const again: Seen<{ i: number; k: string }>[] = [];
    const fresh: Seen<{ i: number; k: string }>[] = [];
    const first = collector('first', 'events', transport, again);
    const second = collector('second', 'events', transport, fresh);
    await first.start();
    await second.start();
    await first.sendBatch('events', [{ value: { i: 2_000, k: 'k0' }, key: 'k0' }]);
    await waitFor(() => fresh.length >= values.length + 1 && again.length >= 1, 'the new group to read everything');
    await sleep(150);
    await first.stop();
    await second.stop();
    expect(again.map((s) => s.value.i)).toEqual([2_000]);
    expect(fresh.map((s) => s.value.i).sort((a, b) => a - b)).toEqual([...values.map((v) => v.i), 2_000]);
    // Per key (one partition each) in send order.
    const lastOf = new Map<string, number>();
    for (const { value } of fresh) {
      expect(value.i).toBeGreaterThan(lastOf.get(value.k) ?? -1);
      lastOf.set(value.k, value.i);
    }
  });
});
