/**
 * Durable state across app instances: real LevelDB on disk, the embedded broker kept alive across
 * instances (so the changelog and committed offsets survive), random out-of-order input.
 */
import { mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, memoryTransport, silentLogger, type MemoryTransport } from '@eddy/core';
import { levelState } from '@eddy/state';
import { mulberry32 } from '@eddy/core/testing';

interface Reading {
  sensor: string;
  value: number;
  ts: number;
}

const directories: string[] = [];
afterAll(async () => {
  await Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true })));
});

const random = mulberry32;

/** Readings of 8 sensors over ~2 minutes, in slightly shuffled order, some late. */
function readings(seed: number, count: number): Reading[] {
  const next = random(seed);
  const out: Reading[] = [];
  for (let i = 0; i < count; i++) {
    const jitter = next() < 0.1 ? -Math.floor(next() * 4000) : -Math.floor(next() * 300);
    out.push({ sensor: `s${Math.floor(next() * 8)}`, value: Math.round(next() * 100), ts: Math.max(0, i * 60 + jitter) });
  }
  return out;
}

const decode = (bytes: Uint8Array | null) => JSON.parse(new TextDecoder().decode(bytes!)) as unknown;

function buildApp(transport: MemoryTransport, dir: string) {
  const app = createApp({ id: 'recovery', transport, state: levelState({ dir, logger: { warn: () => {}, info: () => {} } }), idleTimeout: false, logger: silentLogger });
  const keyed = app.from<Reading>('readings', { timestamp: (r) => r.ts }).keyBy((r) => r.sensor);
  keyed
    // Two partitions feed the repartition topic, so its interleaving (and with it which records
    // are late) depends on batching; a grace longer than any skew keeps results comparable.
    .hopping('10s', '2s', { grace: '60s' })
    .collect()
    .onClose((w) => ({ sensor: w.key, start: w.start, values: w.value.map((r) => r.value).sort((a, b) => a - b) }))
    .to('hopping');
  keyed.session('3s', { grace: '60s' }).sum((r) => r.value).toStream().to('sessions');
  keyed.count({ name: 'totals' });
  return app;
}

/** Runs the input through app instances, restarting between chunks and calling `between` each time. */
async function run(input: Reading[], chunks: number, between: (dir: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), 'eddy-recovery-'));
  directories.push(dir);
  const transport = memoryTransport({ defaultPartitions: 2 });
  const size = Math.ceil(input.length / chunks);
  let app = buildApp(transport, dir);
  let totals: unknown;
  for (let chunk = 0; chunk < chunks; chunk++) {
    if (chunk > 0) {
      await between(dir);
      app = buildApp(transport, dir);
    }
    await app.start();
    for (const reading of input.slice(chunk * size, (chunk + 1) * size)) await app.send('readings', reading, { key: reading.sensor });
    if (chunk === chunks - 1) {
      // One far-future reading per sensor closes every window; sent once the data is through, so
      // that no partition's flush overtakes another partition's data in the repartition topic.
      await transport.idle();
      for (let sensor = 0; sensor < 8; sensor++) await app.send('readings', { sensor: `s${sensor}`, value: 0, ts: 10_000_000 }, { key: `s${sensor}` });
    }
    await transport.idle();
    totals = await app.store('totals').range();
    await app.stop();
  }
  const sorted = (topic: string) => transport.records(topic).map((record) => JSON.stringify(decode(record.value))).sort();
  return { hopping: sorted('hopping'), sessions: sorted('sessions'), totals, dir };
}

describe('durable state with levelState', () => {
  const input = readings(7, 2400);
  let reference: Awaited<ReturnType<typeof run>>;

  it('gives results for a run in one piece', async () => {
    reference = await run(input, 1, async () => {});
    expect(reference.hopping.length).toBeGreaterThan(100);
    expect(reference.sessions.length).toBeGreaterThan(8);
  });

  it('gives identical results across restarts with the same state dir, including windows open at each stop', async () => {
    const restarted = await run(input, 4, async () => {});
    expect(restarted.hopping).toEqual(reference.hopping);
    expect(restarted.sessions).toEqual(reference.sessions);
    expect(restarted.totals).toEqual(reference.totals);
  });

  it('rebuilds a deleted state dir from the changelog with identical results', async () => {
    const restarted = await run(input, 3, async (dir) => rm(dir, { recursive: true, force: true }));
    expect(restarted.hopping).toEqual(reference.hopping);
    expect(restarted.sessions).toEqual(reference.sessions);
    expect(restarted.totals).toEqual(reference.totals);
  });

  const corruptions: Array<[string, (dbDir: string) => Promise<void>]> = [
    ['truncated files', async (dbDir) => {
      for (const file of await readdir(dbDir)) if (/\.(ldb|log)$|^MANIFEST/.test(file)) await truncate(join(dbDir, file), 7);
    }],
    ['garbage in CURRENT', async (dbDir) => writeFile(join(dbDir, 'CURRENT'), 'garbage\u0000\u0001')],
    ['garbage in the manifest', async (dbDir) => {
      for (const file of await readdir(dbDir)) if (file.startsWith('MANIFEST')) await writeFile(join(dbDir, file), Buffer.alloc(64, 0xab));
    }],
    ['a stale LOCK file', async (dbDir) => writeFile(join(dbDir, 'LOCK'), '')],
  ];

  it.each(corruptions)('recovers on its own from %s with identical results', async (_name, corrupt) => {
    const restarted = await run(input, 3, async (dir) => corrupt(join(dir, 'recovery')));
    expect(restarted.hopping).toEqual(reference.hopping);
    expect(restarted.sessions).toEqual(reference.sessions);
    expect(restarted.totals).toEqual(reference.totals);
  });
});

describe('window expiry', () => {
  it('removes closed windows from the store, writes tombstones, and keeps state bounded over a long run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eddy-expiry-'));
    directories.push(dir);
    const transport = memoryTransport();
    const state = levelState({ dir });
    const app = createApp({ id: 'expiry', transport, state, idleTimeout: false, commitInterval: '5ms', logger: silentLogger });
    app.from<Reading>('readings', { timestamp: (r) => r.ts }).keyBy((r) => r.sensor).hopping('10s', '5s').collect().toStream().to('out');
    await app.start();
    const sizes: number[] = [];
    const cacheBytes: number[] = [];
    // 30 minutes of event time for 4 sensors, one reading per 250 ms per sensor.
    for (let step = 0; step < 7200; step++) {
      const ts = step * 250;
      for (let sensor = 0; sensor < 4; sensor++) await app.send('readings', { sensor: `s${sensor}`, value: step, ts }, { key: `s${sensor}` });
      // A commit every 5 s of event time: every slice (10 s long) is written once before it goes.
      if (step % 20 === 19) {
        await transport.idle();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      if (step % 1200 === 1199) {
        await transport.idle();
        sizes.push(app.metrics().windowsOpen);
        cacheBytes.push(app.metrics().stateCacheBytes);
      }
    }
    await transport.idle();
    await app.stop();
    // Open windows stay at what 4 keys x 10s/5s hopping need, however long the run.
    expect(Math.max(...sizes)).toBeLessThanOrEqual(4 * 3);
    // The cache accounting follows the keys that come and go, and gives everything back at stop.
    expect(Math.min(...cacheBytes)).toBeGreaterThan(0);
    expect(app.metrics().stateCacheBytes).toBe(0);

    const changelog = transport.records('expiry-hopping-10000ms-5000ms-grace-0ms-collect-changelog');
    const tombstones = changelog.filter((record) => record.value === null).length;
    expect(tombstones).toBeGreaterThan(300);

    const reopened = levelState({ dir });
    const store = await reopened.open({ appId: 'expiry', storeName: 'hopping-10000ms-5000ms-grace-0ms-collect', partition: 0, changelogTopic: 'x' });
    let entries = 0;
    for await (const entry of store.entries()) if (entry[0].length > 1) entries++;
    await reopened.close();
    // Slices (5 s each) of the last open windows only: a handful per key.
    expect(entries).toBeLessThanOrEqual(4 * 3);
    expect(entries).toBeGreaterThan(0);
  });

  it('gives back the cache bytes of a key that goes quiet, once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eddy-expiry-'));
    directories.push(dir);
    const transport = memoryTransport();
    const app = createApp({ id: 'quiet', transport, state: levelState({ dir }), idleTimeout: false, commitInterval: '5ms', logger: silentLogger });
    app.from<Reading>('readings', { timestamp: (r) => r.ts }).keyBy((r) => r.sensor).tumbling('1s').count().toStream().to('out');
    await app.start();
    const cacheBytes: number[] = [];
    for (let step = 0; step < 400; step++) {
      const ts = step * 100;
      await app.send('readings', { sensor: 'steady', value: step, ts }, { key: 'steady' });
      // Quiet after 5 s: its last window closes, its state goes, and so do its cache bytes.
      if (step < 50) await app.send('readings', { sensor: 'quiet', value: step, ts }, { key: 'quiet' });
      if (step % 10 === 9) {
        await transport.idle();
        await new Promise((resolve) => setTimeout(resolve, 10));
        cacheBytes.push(app.metrics().stateCacheBytes);
      }
    }
    await app.stop();
    expect(Math.min(...cacheBytes)).toBeGreaterThan(0);
    expect(app.metrics().stateCacheBytes).toBe(0);
  });

  it('writes nothing for slices born and gone between two commits (a backlog read fast)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eddy-expiry-'));
    directories.push(dir);
    const transport = memoryTransport();
    const app = createApp({ id: 'backlog', transport, state: levelState({ dir }), idleTimeout: false, commitInterval: '1h', logger: silentLogger });
    app.from<Reading>('readings', { timestamp: (r) => r.ts }).keyBy((r) => r.sensor).hopping('10s', '5s').count().toStream().to('out');
    await app.start();
    // 10 minutes of event time for 4 sensors, all before the first commit (at stop).
    for (let step = 0; step < 2400; step++) {
      for (let sensor = 0; sensor < 4; sensor++) await app.send('readings', { sensor: `s${sensor}`, value: step, ts: step * 250 }, { key: `s${sensor}` });
    }
    await transport.idle();
    await app.stop();
    expect(transport.records('out').length).toBeGreaterThan(4 * 100);
    const changelog = transport.records('backlog-hopping-10000ms-5000ms-grace-0ms-count-changelog');
    const slices = changelog.filter((record) => record.key!.length > 1);
    // Only the slices still open at the commit, no tombstone.
    expect(slices.filter((record) => record.value === null)).toEqual([]);
    expect(slices.length).toBeGreaterThan(0);
    expect(slices.length).toBeLessThanOrEqual(4 * 3);
  });
});
