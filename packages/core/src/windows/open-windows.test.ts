import { describe, expect, it } from 'vitest';
import { createApp, type KeyedStream, type WindowedTable } from '../index.js';
import { TestDriver } from '../testing/index.js';
import { generate, SEEDS, type Reading } from '../testing/window-reference.test-support.js';

/**
 * The `windowsOpen` gauge counts windows without building them (strategies' `countOpen`); it must
 * agree with what the store holds: the open windows an interactive query lists, over all keys.
 */
const kinds: Array<[string, (keyed: KeyedStream<string, Reading>) => WindowedTable<string, unknown, unknown>]> = [
  ['tumbling', (keyed) => keyed.tumbling(1000, { grace: 300, name: 'w' }).count()],
  ['hopping', (keyed) => keyed.hopping(4000, 1000, { grace: 500, name: 'w' }).count()],
  ['hopping, slide not dividing size', (keyed) => keyed.hopping(2500, 1000, { name: 'w' }).collect()],
  ['sliding', (keyed) => keyed.sliding(2000, { grace: 200, name: 'w' }).count()],
  ['session', (keyed) => keyed.session(700, { grace: 100, name: 'w' }).count()],
  ['count', (keyed) => keyed.countWindow(5, 2, { name: 'w' }).collect()],
];

describe('windowsOpen', () => {
  it.each(kinds.flatMap(([kind, build]) => SEEDS.slice(0, 3).map((seed) => [kind, build, seed] as const)))(
    '%s: equals the open windows the store lists (seed %i)',
    async (_kind, build, seed) => {
      const app = createApp({ id: 'open-windows', idleTimeout: false });
      build(app.from<Reading>('in', { timestamp: (reading) => reading.ts }).keyBy((reading) => reading.k))
        .onClose((window) => window.start)
        .to('out');
      const driver = await TestDriver.start(app, { startTime: 0 });
      try {
        const readings = generate(seed, { count: 300, keys: 4, pauseChance: 0.05, pause: 6000 });
        let checks = 0;
        for (const [index, reading] of readings.entries()) {
          await driver.send('in', reading, { key: reading.k, timestamp: reading.ts });
          if (index % 7 !== 0) continue;
          const rows = await app.store('w').range();
          const listed = rows.reduce((sum, row) => sum + (row.value as unknown[]).length, 0);
          expect(app.metrics().windowsOpen, `after reading ${index}`).toBe(listed);
          if (listed > 0) checks++;
        }
        expect(checks).toBeGreaterThan(10);
      } finally {
        await driver.stop();
      }
    },
  );
});
