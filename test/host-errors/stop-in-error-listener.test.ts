/**
 * stop() called from the 'error' listener, or after it, under onError 'stop': nothing past the
 * bad record is committed, so a restart under 'dead-letter' reads it again and dead-letters it,
 * and the good records are counted once each.
 */
import { describe, expect, it } from 'vitest';
import { createApp, memoryTransport, type AppState } from '@eddy/core';
import { recording, r, type Reading } from './helpers.ts';

function build(onError: 'stop' | 'dead-letter', transport: ReturnType<typeof memoryTransport>) {
  const app = createApp({ id: 'sel', idleTimeout: false, onError, logger: recording(), transport });
  app.from<Reading>('in', { timestamp: (v) => v.ts }).map((v) => { if (v.sensor === 'bad') throw new Error('bad'); return v; }).keyBy((v) => v.sensor).count({ name: 'counts' });
  return app;
}
const until = async (f: () => boolean) => { for (let i = 0; i < 100 && !f(); i++) await new Promise((res) => setTimeout(res, 10)); };

describe('app.stop() called from the error listener', () => {
  for (const inListener of [false, true]) {
    it(`commits nothing past the bad record (stop ${inListener ? 'inside' : 'after'} the error listener)`, async () => {
      const transport = memoryTransport();
      const first = build('stop', transport);
      const states: AppState[] = [];
      first.on('state', (s) => states.push(s));
      let stopping: Promise<void> | undefined;
      first.on('error', () => { if (inListener) stopping = first.stop(); });
      await first.start();
      await first.sendBatch('in', [{ value: r('a', 1, 1) }, { value: r('bad', 1, 2) }, { value: r('a', 1, 3) }]);
      await until(() => first.state === 'failed');
      await (stopping ?? first.stop());
      const second = build('dead-letter', transport);
      await second.start();
      await until(() => second.metrics().deadLetters > 0);
      await new Promise((res) => setTimeout(res, 100));
      const dl = second.metrics().deadLetters;
      const count = await second.store('counts').get('a');
      await second.stop();
      expect(dl, 'the bad record is seen again after restart').toBe(1);
      expect(count).toBe(2);
      // the states announced when stop() is called inside the listener: see regressions.test.ts
      if (!inListener) expect(states).toEqual(['starting', 'running', 'failed']);
    });
  }
});
