import { it, expect } from 'vitest';
import { createApp } from '../index.js';
import { TestDriver } from '../testing/index.js';

it('smoke', async () => {
  const app = createApp({ id: 'smoke', idleTimeout: false });
  const t = app.from<{ ts: number; v: number }>('in', { timestamp: (r) => r.ts }).keyBy((r) => 'k').hopping(10, 4).collect();
  t.toStream().to('out');
  t.onLate((l) => l).to('late');
  const driver = await TestDriver.start(app);
  const start = performance.now();
  for (let i = 0; i < 2000; i++) await driver.send('in', { ts: i, v: i }, { key: 'k', timestamp: i });
  console.log('2000 sends ms', performance.now() - start);
  await driver.send('in', { ts: 0, v: -1 }, { key: 'k' });
  console.log(driver.read('out').slice(0, 3), driver.read('late'), app.metrics());
  await driver.stop();
});
