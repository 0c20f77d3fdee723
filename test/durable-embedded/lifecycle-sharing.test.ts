/**
 * README "Durable embedded mode": apps of one process share one `levelTransport` (its consumer
 * groups are "the apps of this process"); one process per dir (TRANSPORT_LOCKED naming the dir);
 * exactly-once refused at start. Adversarial: what a *failed or never-started* app sharing the
 * transport (or the state backend) with a running one does to the running one.
 */
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createApp, EddyError, silentLogger, type App } from '@eddy/core';
import { levelState, levelTransport, type LevelTransport } from '@eddy/state';
import { quiet, tempDir, waitFor, sleep } from './helpers.ts';

/** Counts readings per sensor in a table `counts`. */
function counter(id: string, transport: LevelTransport, state: ReturnType<typeof levelState>, options: { guarantee?: 'exactly-once' } = {}): App {
  const app = createApp({ id, transport, state, idleTimeout: false, commitInterval: '50ms', logger: silentLogger, ...options });
  app.from<{ sensor: string }>('readings').keyBy((r) => r.sensor).count({ name: 'counts' });
  return app;
}

async function sendReadings(app: App, n: number): Promise<void> {
  await app.sendBatch('readings', Array.from({ length: n }, (_, i) => ({ value: { sensor: `s${i % 3}` }, key: `s${i % 3}` })));
}

/** The running app keeps taking sends, counting, and stops cleanly; its counts survive a restart on new objects. */
async function stillHealthy(first: App, dir: string, id: string, expectedBefore: number): Promise<void> {
  await sendReadings(first, 30);
  await waitFor(async () => (await first.store('counts').get('s0')) === expectedBefore + 10, 'the first app to count the new readings', 5_000);
  expect(first.state).toBe('running');
  await first.stop();
  expect(first.failure).toBeUndefined();
  const again = counter(id, levelTransport({ dir, logger: quiet }), levelState({ dir, logger: quiet }));
  await again.start();
  try {
    expect(await again.store('counts').get('s0')).toBe(expectedBefore + 10);
  } finally {
    await again.stop();
  }
}

describe('apps sharing one levelTransport: a second app that fails or never starts leaves the first alone', () => {
  it("an app refused for guarantee 'exactly-once' on a shared levelTransport does not close the log under the running app", async () => {
    const dir = tempDir();
    const transport = levelTransport({ dir, logger: quiet });
    const first = counter('first', transport, levelState({ dir, logger: quiet }));
    await first.start();
    await sendReadings(first, 30);
    await waitFor(async () => (await first.store('counts').get('s0')) === 10, 'first counts');

    const refused = counter('eos', transport, levelState({ dir, logger: quiet }), { guarantee: 'exactly-once' });
    const error = await refused.start().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(EddyError);
    expect((error as Error).message).toMatch(/exactly-once/);
    expect(refused.state).toBe('failed');
    await refused.stop();

    await stillHealthy(first, dir, 'first', 10);
  });

  it('an app with the same id failing STATE_LOCKED on a shared levelTransport does not close the log under the running app', async () => {
    const dir = tempDir();
    const transport = levelTransport({ dir, logger: quiet });
    const first = counter('dup', transport, levelState({ dir, logger: quiet }));
    await first.start();
    await sendReadings(first, 30);
    await waitFor(async () => (await first.store('counts').get('s0')) === 10, 'first counts');

    const twin = counter('dup', transport, levelState({ dir, logger: quiet }));
    await expect(twin.start()).rejects.toMatchObject({ code: 'STATE_LOCKED' });
    await twin.stop();

    await stillHealthy(first, dir, 'dup', 10);
  });

  it('stop() of an app that was created on the shared levelTransport but never started leaves the running app alone', async () => {
    const dir = tempDir();
    const transport = levelTransport({ dir, logger: quiet });
    const first = counter('first', transport, levelState({ dir, logger: quiet }));
    await first.start();
    await sendReadings(first, 30);
    await waitFor(async () => (await first.store('counts').get('s0')) === 10, 'first counts');

    const never = counter('never', transport, levelState({ dir, logger: quiet }));
    await never.stop();
    expect(never.state).toBe('stopped');

    await stillHealthy(first, dir, 'first', 10);
  });

  it('apps of different ids sharing one levelState: stopping one leaves the other\'s stores usable', async () => {
    const dir = tempDir();
    const transport = levelTransport({ dir, logger: quiet });
    const state = levelState({ dir, logger: quiet });
    const a = counter('app-a', transport, state);
    const b = counter('app-b', transport, state);
    await a.start();
    await b.start();
    await sendReadings(a, 30);
    await waitFor(async () => (await a.store('counts').get('s0')) === 10 && (await b.store('counts').get('s0')) === 10, 'both count');
    await a.stop();
    // b goes on: counts, commits its state to its LevelDB, and stops cleanly.
    await sendReadings(b, 30);
    await waitFor(async () => (await b.store('counts').get('s0')) === 20, 'b to count on');
    await sleep(200); // a few commits
    expect(b.state).toBe('running');
    expect(b.health()).toMatchObject({ status: 'ok', reasons: [] });
    await b.stop();
    expect(b.failure).toBeUndefined();
    // b's state on disk is what it counted: a restart restores nothing and reads 20.
    const again = counter('app-b', levelTransport({ dir, logger: quiet }), levelState({ dir, logger: quiet }));
    await again.start();
    try {
      expect(await again.store('counts').get('s0')).toBe(20);
      expect(again.metrics().restoredRecords).toBe(0);
    } finally {
      await again.stop();
    }
  });
});

describe('errors at start', () => {
  it("exactly-once refused with a clear error, and the dir is not left locked", async () => {
    const dir = tempDir();
    const app = counter('eos', levelTransport({ dir, logger: quiet }), levelState({ dir, logger: quiet }), { guarantee: 'exactly-once' });
    const error = (await app.start().then(() => undefined, (e: unknown) => e)) as EddyError;
    expect(error).toBeInstanceOf(EddyError);
    expect(error.message).toMatch(/exactly-once/);
    expect(app.state).toBe('failed');
    expect(app.failure?.code).toBe(error.code);
    // Nothing is held: an at-least-once app on the same dirs starts at once.
    const next = counter('eos', levelTransport({ dir, logger: quiet }), levelState({ dir, logger: quiet }));
    await next.start();
    await sendReadings(next, 3);
    await waitFor(async () => (await next.store('counts').get('s0')) === 1, 'count');
    await next.stop();
  });

  it('TRANSPORT_LOCKED: code, the log directory named, the first app untouched, and the dir usable after both stop', async () => {
    const dir = tempDir();
    const first = counter('first', levelTransport({ dir, logger: quiet }), levelState({ dir, logger: quiet }));
    await first.start();
    await sendReadings(first, 30);
    const second = counter('second', levelTransport({ dir, logger: quiet }), levelState({ dir, logger: quiet }));
    const error = (await second.start().then(() => undefined, (e: unknown) => e)) as EddyError;
    expect(error).toBeInstanceOf(EddyError);
    expect(error.code).toBe('TRANSPORT_LOCKED');
    expect(error.message).toContain(dir);
    expect(second.state).toBe('failed');
    expect(second.failure?.code).toBe('TRANSPORT_LOCKED');
    await second.stop();
    // second's state dir is not left locked either: after first stops, second can start.
    await stillHealthy(first, dir, 'first', 10);
    const retry = counter('second', levelTransport({ dir, logger: quiet }), levelState({ dir, logger: quiet }));
    await retry.start();
    await waitFor(async () => (await retry.store('counts').get('s0')) === 20, 'second to count everything in the log');
    await retry.stop();
  });

  it('a dir that is a regular file: start() rejects with an EddyError naming it, and the file is not touched', async () => {
    const parent = tempDir();
    const file = join(parent, 'not-a-dir');
    writeFileSync(file, 'precious');
    const app = createApp({ id: 'f', transport: levelTransport({ dir: file, logger: quiet }), idleTimeout: false, logger: silentLogger });
    app.from('x').to('y');
    const error = (await app.start().then(() => undefined, (e: unknown) => e)) as EddyError;
    expect(error).toBeInstanceOf(EddyError);
    expect(error.code).toBe('TRANSPORT_FAILED');
    expect(error.message).toContain(file);
    expect(app.state).toBe('failed');
    expect(readFileSync(file, 'utf8')).toBe('precious');
    await app.stop();
  });

  it('a levelState dir that is a regular file: start() rejects with an EddyError naming it, and the file is not touched', async () => {
    const parent = tempDir();
    const file = join(parent, 'not-a-dir');
    writeFileSync(file, 'precious');
    const app = createApp({ id: 'f', transport: levelTransport({ dir: parent, logger: quiet }), state: levelState({ dir: file, logger: quiet }), idleTimeout: false, logger: silentLogger });
    app.from<{ k: string }>('x').keyBy((r) => r.k).count();
    const error = (await app.start().then(() => undefined, (e: unknown) => e)) as EddyError;
    expect(error).toBeInstanceOf(EddyError);
    expect(error.message).toContain(file);
    expect(app.state).toBe('failed');
    expect(readFileSync(file, 'utf8')).toBe('precious');
    await app.stop();
  });
});
