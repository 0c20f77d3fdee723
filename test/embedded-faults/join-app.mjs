// Child app of joins-kills.test.ts: durable embedded mode (levelTransport + levelState on
// the dir given), a windowed stream–stream join and leftJoin (within 2 s, grace 3 s) of topics
// `left` and `right` re-keyed by `k`, and a stream–table join of `clicks` with table `tiers`.
// Speaks the IPC of test/embedded-faults/harness.ts (send / idle / stop).
import { createApp } from '@eddy/core';
import { levelState, levelTransport } from '@eddy/state';
import { childLogger, quietStateLogger, serveHarness } from './serve-harness.mjs';

const dir = process.argv[2];
const app = createApp({
  id: 'join-kills',
  transport: levelTransport({ dir, logger: quietStateLogger, defaultPartitions: 3 }),
  state: levelState({ dir, logger: quietStateLogger }),
  idleTimeout: false,
  commitInterval: '50ms',
  logger: childLogger,
});
const L = app.from('left', { timestamp: (e) => e.ts }).keyBy((e) => e.k, { name: 'left-by-k' });
const R = app.from('right', { timestamp: (e) => e.ts }).keyBy((e) => e.k, { name: 'right-by-k' });
L.join(R, (l, r, key) => ({ key, l: l.seq, r: r.seq }), { within: '2s', grace: '3s' }).to('out-join');
L.leftJoin(R, (l, r, key) => ({ key, l: l.seq, r: r?.seq ?? null }), { within: '2s', grace: '3s' }).to('out-left');
app.from('clicks', { timestamp: (c) => c.ts }).keyBy((c) => c.user, { name: 'clicks-by-user' })
  .join(app.table('tiers'), (c, tier, key) => ({ key, seq: c.seq, tier })).to('out-enriched');

await serveHarness(app);
