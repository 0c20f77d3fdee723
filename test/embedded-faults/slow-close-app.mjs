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
import { childLogger, quietStateLogger, serveHarness } from './serve-harness.mjs';

const [dir, delay, brokers, appId, guarantee] = process.argv.slice(2);

const app = createApp({
  id: appId ?? 'close-race',
  transport: brokers
    ? kafkaTransport({ brokers: brokers.split(','), logLevel: 'nothing', defaultPartitions: 2, consumer: { sessionTimeout: '6s', heartbeatInterval: '500ms' } })
    : levelTransport({ dir, logger: quietStateLogger, defaultPartitions: 2 }),
  guarantee: guarantee ?? 'at-least-once',
  state: levelState({ dir, logger: quietStateLogger }),
  idleTimeout: false,
  commitInterval: process.env.EDDY_TEST_COMMIT_INTERVAL ?? '20ms',
  logger: childLogger,
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

await serveHarness(app);
