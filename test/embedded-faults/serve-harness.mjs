/** For `levelTransport` and `levelState`: warnings on stderr. */
export const quietStateLogger = { warn: (_fields, message) => process.stderr.write(`WARN ${message}\n`), info: () => undefined };

/** The app's logger: warnings and errors on stderr (errors with their fields), the rest dropped. */
export const childLogger = {
  trace() {}, debug() {}, info() {},
  warn(o, m) { process.stderr.write(`warn ${typeof o === 'string' ? o : m}\n`); },
  error(o, m) { process.stderr.write(`error ${typeof o === 'string' ? o : m} ${JSON.stringify(o)}\n`); },
  fatal(o, m) { process.stderr.write(`fatal ${typeof o === 'string' ? o : m}\n`); },
  child() { return childLogger; },
};

/**
 * The child side of harness.ts: starts `app` and answers the harness over IPC. Messages to the
 * parent: `ready` once started (or `start-failed`, and exit 3), `error` and `state` as the app
 * reports them, `ack`/`nack` per request. Requests: `send` (records through app.send, one, or
 * app.sendBatch), `idle` (until the app has had no lag for 5 × 100 ms; the answer carries metrics,
 * health and state), `stop` (a clean stop, then exit).
 */
export async function serveHarness(app) {
  app.on('error', (error) => process.send?.({ type: 'error', code: error.code, message: String(error.message) }));
  app.on('state', (state) => process.send?.({ type: 'state', state }));
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
}
