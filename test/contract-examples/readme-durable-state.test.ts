/**
 * README "Durable embedded mode", "State and recovery" (levelState with cacheBudget) and DESIGN
 * second wave (levelTransport + levelState) — on a temp dir.
 */
import { mkdtempSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createApp, EddyError, silentLogger } from '@eddy/core';
import { levelState, levelTransport } from '@eddy/state';

interface Click { page: string }

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'eddy-contract-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function pageStats(dir: string) {
  const app = createApp({
    id: 'page-stats',
    transport: levelTransport({ dir }),   // the log, in .eddy/@broker
    state: levelState({ dir }),           // the stores, in .eddy/page-stats
    commitInterval: '100ms',
    logger: silentLogger,
  });
  const counts = app.from<Click>('clicks').keyBy(c => c.page).count({ name: 'page-counts' });
  return { app, counts };
}

describe('README: durable embedded mode', () => {
  it('keeps the log in <dir>/@broker and the stores in <dir>/<id>; a restart resumes with its counts, restoring nothing', async () => {
    const dir = tempDir();
    {
      const { app, counts } = pageStats(dir);
      await app.start();
      await app.sendBatch('clicks', [{ value: { page: '/a' }, key: '/a' }, { value: { page: '/a' }, key: '/a' }, { value: { page: '/b' }, key: '/b' }]);
      await vi.waitFor(async () => expect(await app.store(counts).get('/a')).toBe(2), { timeout: 10_000 });
      await app.stop();
    }
    expect(existsSync(join(dir, '@broker'))).toBe(true);
    expect(existsSync(join(dir, 'page-stats'))).toBe(true);
    {
      const { app, counts } = pageStats(dir);
      await app.start();
      expect(await app.store(counts).get('/a')).toBe(2);
      expect(await app.store(counts).get('/b')).toBe(1);
      await app.send('clicks', { page: '/b' }, { key: '/b' });
      await vi.waitFor(async () => expect(await app.store(counts).get('/b')).toBe(2), { timeout: 10_000 });
      expect(app.metrics().restoredRecords).toBe(0);
      await app.stop();
    }
  });

  it('a second levelTransport on the same dir fails at start() with TRANSPORT_LOCKED naming the directory', async () => {
    const dir = tempDir();
    const first = pageStats(dir);
    await first.app.start();
    const second = createApp({ id: 'other', transport: levelTransport({ dir }), logger: silentLogger });
    second.from('x').to('y');
    const error = await second.start().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(EddyError);
    expect((error as EddyError).code).toBe('TRANSPORT_LOCKED');
    expect((error as Error).message).toContain(dir);
    expect(second.state).toBe('failed');
    await first.app.stop();
  });

  it("guarantee: 'exactly-once' is refused at start on levelTransport", async () => {
    const dir = tempDir();
    const app = createApp({ id: 'eos', transport: levelTransport({ dir }), guarantee: 'exactly-once', logger: silentLogger });
    app.from('x').to('y');
    await expect(app.start()).rejects.toBeInstanceOf(EddyError);
  });

  it('levelTransport({ dir, sync: true, retention: { records, bytes, age }, tombstoneRetention }) is accepted', async () => {
    const dir = tempDir();
    const app = createApp({ id: 'opts', transport: levelTransport({ dir, sync: true, retention: { records: 10, bytes: 1024, age: '7d' }, tombstoneRetention: '1d' }), logger: silentLogger });
    app.from<number>('x').map(n => n + 1).to('y');
    await app.start();
    await app.send('x', 1);
    await app.stop();
    expect(app.state).toBe('stopped');
  });
});

describe('README: State and recovery', () => {
  it("levelState({ dir: '.eddy', cacheBudget }) keeps a table; a second app with the same id on the same dir fails STATE_LOCKED", async () => {
    const dir = tempDir();
    const { memoryTransport } = await import('@eddy/core');
    const shared = memoryTransport();
    const app = createApp({
      id: 'sensors',
      state: levelState({ dir, cacheBudget: 64 * 1024 * 1024 }),
      transport: shared,
      logger: silentLogger,
    });
    const spend = app.from<{ customer: string; amount: number }>('orders').keyBy(o => o.customer).sum(o => o.amount, { name: 'spend' });
    await app.start();
    await app.send('orders', { customer: 'customer-7', amount: 5 });
    await app.send('orders', { customer: 'customer-7', amount: 6 });
    await vi.waitFor(async () => expect(await app.store(spend).get('customer-7')).toBe(11), { timeout: 10_000 });
    expect(existsSync(join(dir, 'sensors'))).toBe(true);

    const twin = createApp({ id: 'sensors', state: levelState({ dir }), transport: shared, logger: silentLogger });
    twin.from('orders').keyBy(o => String(o)).count().toStream().to('n');
    const error = await twin.start().then(() => undefined, (e: unknown) => e);
    expect((error as EddyError).code).toBe('STATE_LOCKED');
    expect(app.state).toBe('running');
    await app.stop();
  });

  it('a bad levelState option throws a ConfigError (README: an invalid option throws a ConfigError at once)', async () => {
    const { ConfigError } = await import('@eddy/core');
    expect(() => levelState({ dir: tempDir(), cacheBudget: -1 })).toThrow(ConfigError);
  });
});
