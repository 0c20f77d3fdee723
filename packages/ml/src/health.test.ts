/**
 * A worker pool whose queue is full shows in `app.health()`: real worker threads running a model
 * that never answers, a queue of two windows, an app on the embedded broker.
 */
import { describe, expect, it } from 'vitest';
import { createApp, silentLogger } from '@eddy/core';
import { workerPool } from './index.js';

const model = new URL('../test-fixtures/hangs.mjs', import.meta.url);

describe('app.health() with a worker pool', () => {
  it('is degraded while the pool’s queue is full (sources paused), ok before', async () => {
    const pool = workerPool(model, { size: 1, maxQueue: 2, batchSize: 1, timeout: '1s', retries: 0 });
    const app = createApp({ id: 'pool-health', idleTimeout: false, logger: silentLogger });
    app
      .from<{ key: string; ts: number }>('in', { timestamp: (reading) => reading.ts })
      .keyBy((reading) => reading.key)
      .tumbling(10)
      .aggregate({ init: () => ({ stall: true }), add: (stalled) => stalled })
      .onClose(pool)
      .to('out');
    await app.start();
    try {
      expect(app.health()).toEqual({ status: 'ok', reasons: [] });
      // Each reading closes the previous window: its model call never answers.
      for (let index = 0; index < 6; index++) void app.send('in', { key: 'k', ts: index * 10 }, { key: 'k' });
      const deadline = Date.now() + 10_000;
      while (app.health().status === 'ok' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      const health = app.health();
      expect(health.status).toBe('degraded');
      expect(health.reasons).toEqual([expect.stringMatching(/a worker pool's queue is full \(\d+ of 2\): sources are paused/)]);
      expect(app.metrics().handlerQueueDepth).toBeGreaterThan(0);
    } finally {
      await pool.close();
      await app.stop().catch(() => undefined);
    }
  });
});
