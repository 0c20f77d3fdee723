/**
 * The app of the close-commit-race tests, in a child process so that it can be killed while a
 * close handler is still running: a tumbling count per key whose async handler takes `delay` ms
 * (`hang`: never resolves) and reports each call over IPC before it waits. Driven over IPC
 * (`send`, `idle`, `stop`) like child-app.mjs. Runs on the built packages.
 *
 * argv: dir delay [brokers appId guarantee]: durable embedded mode on `dir`, or with brokers, Kafka
 * (app id and guarantee given) with its state in `dir`. `EDDY_TEST_COMMIT_INTERVAL`: the commit
 * interval (default 20ms).
 */
import { createApp } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { levelState, levelTransport } from '@eddy/state';

const [dir, delay, brokers, appId, guarantee] = process.argv.slice(2);
const quiet = { warn: (_fields, message) => process.stderr.write(`WARN ${message}\n`), info: () => undefined };
const logger = {
  trace() {}, debug() {}, info() {},
  warn(o, m) { process.stderr.write(`warn ${typeof o === 'string' ? o : m}\n`); },
  error(o, m) { process.stderr.write(`error ${typeof o === 'string' ? o : m} ${JSON.stringify(o)}\n`); },
  fatal(o, m) { process.stderr.write(`fatal ${typeof o === 'string' ? o : m}\n`); },
  child() { return logger; },
};

const app = createApp({
  id: appId ?? 'close-race',
  transport: brokers
    ? kafkaTransport({ brokers: brokers.split(','), logLevel: 'nothing', defaultPartitions: 2, consumer: { sessionTimeout: '6s', heartbeatInterval: '500ms' } })
    : levelTransport({ dir, logger: quiet, defaultPartitions: 2 }),
  guarantee: guarantee ?? 'at-least-once',
  state: levelState({ dir, logger: quiet }),
  idleTimeout: false,
  commitInterval: process.env.EDDY_TEST_COMMIT_INTERVAL ?? '20ms',
  logger,
});

// On Kafka the topics are the app's own: `<appId>-readings`, `<appId>-counts`.
const topic = (name) => (brokers ? `${appId}-${name}` : name);
app
  .from(topic('readings'), { timestamp: (r) => r.ts })
  .keyBy((r) => r.k)
  .tumbling('1s')
  .count()
  .onClose(async (w) => {
    process.send?.({ type: 'closing', key: w.key, start: w.start });
    await new Promise((resolve) => (delay === 'hang' ? undefined : setTimeout(resolve, Number(delay))));
    return { k: w.key, start: w.start, count: w.value };
  })
  .to(topic('counts'));

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
      await app.sendBatch(message.topic, message.records);
      process.send({ type: 'ack', id: message.id });
    } else if (message.cmd === 'idle') {
      for (let quietRounds = 0; quietRounds < 5; ) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        quietRounds = app.metrics().lag === 0 ? quietRounds + 1 : 0;
      }
      process.send({ type: 'ack', id: message.id, metrics: app.metrics() });
    } else if (message.cmd === 'stop') {
      await app.stop();
      process.send({ type: 'ack', id: message.id }, () => process.exit(0));
    }
  } catch (error) {
    process.send?.({ type: 'nack', id: message.id, message: String(error?.message ?? error) });
  }
});
