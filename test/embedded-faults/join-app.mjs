// Child app of joins-kills.test.ts: durable embedded mode (levelTransport + levelState on
// the dir given), a windowed stream–stream join and leftJoin (within 2 s, grace 3 s) of topics
// `left` and `right` re-keyed by `k`, and a stream–table join of `clicks` with table `tiers`.
// Speaks the IPC of test/embedded-faults/harness.ts (send / idle / stop).
import { createApp } from '@eddy/core';
import { levelState, levelTransport } from '@eddy/state';

const dir = process.argv[2];
const quiet = { warn: (_f, m) => process.stderr.write(`WARN ${m}\n`), info: () => undefined };
const logger = {
  trace() {}, debug() {}, info() {},
  warn(o, m) { process.stderr.write(`warn ${typeof o === 'string' ? o : m}\n`); },
  error(o, m) { process.stderr.write(`ERROR ${typeof o === 'string' ? o : m} ${JSON.stringify(o)}\n`); },
  fatal(o, m) { process.stderr.write(`fatal ${typeof o === 'string' ? o : m}\n`); },
  child() { return logger; },
};
const app = createApp({
  id: 'join-kills',
  transport: levelTransport({ dir, logger: quiet, defaultPartitions: 3 }),
  state: levelState({ dir, logger: quiet }),
  idleTimeout: false,
  commitInterval: '50ms',
  logger,
});
const L = app.from('left', { timestamp: (e) => e.ts }).keyBy((e) => e.k, { name: 'left-by-k' });
const R = app.from('right', { timestamp: (e) => e.ts }).keyBy((e) => e.k, { name: 'right-by-k' });
L.join(R, (l, r, key) => ({ key, l: l.seq, r: r.seq }), { within: '2s', grace: '3s' }).to('out-join');
L.leftJoin(R, (l, r, key) => ({ key, l: l.seq, r: r?.seq ?? null }), { within: '2s', grace: '3s' }).to('out-left');
app.from('clicks', { timestamp: (c) => c.ts }).keyBy((c) => c.user, { name: 'clicks-by-user' })
  .join(app.table('tiers'), (c, tier, key) => ({ key, seq: c.seq, tier })).to('out-enriched');

app.on('error', (error) => process.send?.({ type: 'error', code: error.code, message: String(error.message) }));
try {
  await app.start();
} catch (error) {
  process.send?.({ type: 'start-failed', code: error?.code, message: String(error?.message ?? error) });
  process.exit(3);
}
process.send?.({ type: 'ready' });
process.on('message', async (message) => {
  try {
    if (message.cmd === 'send') {
      if (message.records.length === 1) await app.send(message.topic, message.records[0].value, { key: message.records[0].key, timestamp: message.records[0].timestamp });
      else await app.sendBatch(message.topic, message.records);
      process.send({ type: 'ack', id: message.id });
    } else if (message.cmd === 'idle') {
      for (let quietRounds = 0; quietRounds < 5; ) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        quietRounds = app.metrics().lag === 0 ? quietRounds + 1 : 0;
      }
      process.send({ type: 'ack', id: message.id, metrics: app.metrics(), health: app.health(), state: app.state });
    } else if (message.cmd === 'stop') {
      await app.stop();
      process.send({ type: 'ack', id: message.id }, () => process.exit(0));
    }
  } catch (error) {
    process.send?.({ type: 'nack', id: message.id, code: error?.code, message: String(error?.message ?? error) });
  }
});
