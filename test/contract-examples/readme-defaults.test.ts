/**
 * Defaults the README states: commitInterval '1s', stallTimeout five commit intervals (not
 * observed here), idleTimeout false disables the idle close.
 */
import { describe, expect, it } from 'vitest';
import { createApp } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';

interface E { k: string; v: number; ts: number }

describe('README defaults', () => {
  it("commitInterval defaults to '1s': the time since the last commit never exceeds ~1s while running", async () => {
    const app = createApp({ id: 'ci' });
    app.from<E>('in', { timestamp: r => r.ts }).keyBy(r => r.k).count().toStream().to('out');
    const driver = await TestDriver.start(app, { startTime: 0 });
    await driver.send('in', { k: 'a', v: 1, ts: 0 });
    await driver.advanceTime('2500ms');
    const ages = Object.values(app.metrics().lastCommitAgeMs);
    expect(ages.length).toBeGreaterThan(0);
    for (const age of ages) expect(age).toBe(500);
    await driver.stop();
  });

  it("commitInterval: '300ms' is honoured the same way", async () => {
    const app = createApp({ id: 'ci2', commitInterval: '300ms' });
    app.from<E>('in', { timestamp: r => r.ts }).keyBy(r => r.k).count().toStream().to('out');
    const driver = await TestDriver.start(app, { startTime: 0 });
    await driver.send('in', { k: 'a', v: 1, ts: 0 });
    await driver.advanceTime('1000ms');
    for (const age of Object.values(app.metrics().lastCommitAgeMs)) expect(age).toBe(100);
    await driver.stop();
  });

  it('idleTimeout: false: a quiet stream never closes its last window', async () => {
    const app = createApp({ id: 'noidle', idleTimeout: false });
    app.from<E>('in', { timestamp: r => r.ts }).keyBy(r => r.k).tumbling('1s').count().toStream().to('out');
    const driver = await TestDriver.start(app);
    await driver.send('in', { k: 'a', v: 1, ts: 0 });
    await driver.advanceTime('1h');
    expect(driver.read('out')).toEqual([]);
    await driver.stop();
  });

  it("idleTimeout: '2s' closes after 2s of quiet, not 5s", async () => {
    const app = createApp({ id: 'idle2', idleTimeout: '2s' });
    app.from<E>('in', { timestamp: r => r.ts }).keyBy(r => r.k).tumbling('1s').count().toStream().to('out');
    const driver = await TestDriver.start(app);
    await driver.send('in', { k: 'a', v: 1, ts: 0 });
    await driver.advanceTime('1900ms');
    expect(driver.read('out')).toEqual([]);
    await driver.advanceTime('1200ms');
    expect(driver.read('out')).toHaveLength(1);
    await driver.stop();
  });
});
