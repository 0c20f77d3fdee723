/**
 * The app of kill-windows.test.ts, run in a child process so that it can be killed: durable
 * embedded mode on the dir given as argument, driven over IPC by harness.ts (commands `send`,
 * `idle`, `stop`; answers `ack` or `nack`). It runs on the built packages (node resolves
 * @eddy/core and @eddy/state to their dist), so `turbo run build` comes first. The references of
 * its pipelines are in reference.ts.
 */
import { createApp } from '@eddy/core';
import { levelState, levelTransport } from '@eddy/state';
import { childLogger, quietStateLogger, serveHarness } from './serve-harness.mjs';

const dir = process.argv[2];

const app = createApp({
  id: 'kill-windows',
  transport: levelTransport({ dir, logger: quietStateLogger, defaultPartitions: 2 }),
  state: levelState({ dir, logger: quietStateLogger }),
  idleTimeout: false,
  commitInterval: '50ms',
  logger: childLogger,
});

// Sessions (gap 500 ms, grace 3 s) and count windows of 5 over jittered events.
const events = app.from('events', { timestamp: (e) => e.ts }).keyBy((e) => e.user);
events.session('500ms', { grace: '3s' }).aggregate({ init: () => ({ sum: 0, seqs: [] }), add: (a, e) => ({ sum: a.sum + e.n, seqs: [...a.seqs, e.seq] }), merge: (a, b) => ({ sum: a.sum + b.sum, seqs: [...a.seqs, ...b.seqs] }) })
  .onClose((w) => ({ user: w.key, start: w.start, end: w.end, sum: w.value.sum, seqs: [...w.value.seqs].sort((a, b) => a - b) }))
  .to('sessions');
events.countWindow(5).collect().onClose((w) => ({ user: w.key, start: w.start, end: w.end, seqs: w.value.map((e) => e.seq).sort((a, b) => a - b) })).to('counts');

// A table and a stream-table join, and a chain of two pipelines (per-second counts, then their per-10 s totals) over clicks in order.
const tiers = app.table('tiers');
const clicks = app.from('clicks', { timestamp: (c) => c.ts }).keyBy((c) => c.user);
clicks.join(tiers, (c, tier) => ({ seq: c.seq, user: c.user, ts: c.ts, tier })).to('enriched');
clicks.tumbling('1s', { grace: '5s' }).count().onClose((w) => ({ user: w.key, start: w.start, end: w.end, count: w.value })).to('per-second');
app.from('per-second', { timestamp: (r) => r.end - 1 }).keyBy((r) => r.user).tumbling('10s', { grace: '30s' }).collect()
  .onClose((w) => {
    // A per-second result written twice (at least once) counts once; two that disagree are a conflict.
    const byStart = new Map();
    for (const r of w.value) {
      if (byStart.has(r.start) && byStart.get(r.start) !== r.count) return { user: w.key, start: w.start, conflict: [r.start, byStart.get(r.start), r.count] };
      byStart.set(r.start, r.count);
    }
    return { user: w.key, start: w.start, total: [...byStart.values()].reduce((a, b) => a + b, 0) };
  })
  .to('per-10s');

await serveHarness(app);
