/**
 * A damaged broker log never stops the durable embedded mode, also with `verifyOnOpen: false`
 * (the broker then meets the damage while reading its log, or later while reading records back
 * from disk), and a broker dir that cannot be used fails with the broker's own error. Real LevelDB
 * on disk: apps on levelTransport + levelState (one dir), the log damaged between runs.
 */
import { mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, silentLogger } from '@eddy/core';
import { levelState, levelTransport, type LevelTransport, type LevelTransportOptions, type StateLogger } from '@eddy/state';
import { chunkKey, decodeTopic, tagRange, TAG_TOPIC } from '../../packages/state/src/log-layout.ts';

const directories: string[] = [];
afterAll(async () => Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true }))));

async function scratch(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'eddy-broker-recovery-'));
  directories.push(dir);
  return dir;
}

const quiet: StateLogger = { warn: () => undefined, info: () => undefined };

function recordingLogger(): StateLogger & { readonly warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, warn: (_fields, message) => warnings.push(message), info: () => undefined };
}

const SENSORS = 5;

function counter(id: string, transport: LevelTransport, dir: string) {
  const app = createApp({ id, transport, state: levelState({ dir, logger: quiet }), idleTimeout: false, commitInterval: '20ms', logger: silentLogger });
  app.from<{ sensor: string }>('readings').keyBy((reading) => reading.sensor).count({ name: 'counts' });
  return app;
}

/** Sends `count` readings in one turn (one chunk per partition), spread evenly over the sensors. */
async function sendReadings(app: ReturnType<typeof counter>, count: number): Promise<void> {
  await Promise.all(Array.from({ length: count }, (_, index) => app.send('readings', { sensor: `s${index % SENSORS}` }, { key: `s${index % SENSORS}` })));
}

/** Five chunks of 100 readings in `readings`, all counted and committed, then a clean stop. */
async function seed(dir: string, options: Partial<LevelTransportOptions> = {}): Promise<void> {
  const app = counter('counter', levelTransport({ dir, logger: quiet, ...options }), dir);
  await app.start();
  for (let round = 0; round < 5; round++) await sendReadings(app, 100);
  await expect.poll(() => app.store('counts').get('s0')).toBe(100);
  await app.stop();
}

/** Opens the broker's LevelDB directly while no app runs. */
async function withLog(dir: string, work: (db: Level<Uint8Array, Uint8Array>) => Promise<void>): Promise<void> {
  const db = new Level<Uint8Array, Uint8Array>(join(dir, '@broker'), { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open({ createIfMissing: false });
  try {
    await work(db);
  } finally {
    await db.close();
  }
}

/** Cuts the records of a topic's `index`-th chunk short, leaving its header (count, age, last offset) whole. */
async function cutChunk(dir: string, topic: (name: string) => boolean, index: number): Promise<void> {
  await withLog(dir, async (db) => {
    const topics = (await db.iterator(tagRange(TAG_TOPIC)).all()).map(([, value]) => decodeTopic(value));
    const found = topics.find((stored) => topic(stored.spec.name));
    if (found === undefined) throw new Error(`no such topic among ${topics.map((stored) => stored.spec.name).join(', ')}`);
    const chunks = await db.iterator({ gte: chunkKey(found.id, 0, 0), lt: chunkKey(found.id, 1, 0) }).all();
    const [key, value] = chunks[index]!;
    await db.put(key, value.subarray(0, 40));
  });
}

/** Garbles the middle of every table file; with small blocks that is a block of records, not the format marker's. */
async function garbleTables(dir: string): Promise<void> {
  // Opening the log once writes its write-ahead log into a table file: opening it again then compacts nothing, and only reading the records meets the damage.
  await withLog(dir, async () => undefined);
  const folder = join(dir, '@broker');
  for (const name of (await readdir(folder)).filter((file) => file.endsWith('.ldb'))) {
    const { size } = await stat(join(folder, name));
    const file = await open(join(folder, name), 'r+');
    await file.write(Buffer.alloc(64, 0xa5), 0, 64, Math.floor(size / 2));
    await file.close();
  }
}

describe('a damaged broker log without verifyOnOpen', () => {
  const damages: Array<[string, (dir: string) => Promise<void>, RegExp]> = [
    ['a table block that LevelDB cannot read', garbleTables, /reading it failed: Corruption/],
    ['a changelog chunk that does not decode', (dir) => cutChunk(dir, (name) => name.endsWith('-changelog'), 0), /does not decode \(a field runs past the chunk\)/],
  ];

  it.each(damages)('%s is met while the log is read: set aside with a warning, and the app starts and counts', async (_name, damage, reason) => {
    const dir = await scratch();
    await seed(dir, { leveldb: { blockSize: 256 } });
    await damage(dir);

    const logger = recordingLogger();
    const app = counter('counter', levelTransport({ dir, logger, verifyOnOpen: false }), dir);
    await app.start();
    try {
      expect(logger.warnings.join('\n')).toMatch(/Eddy broker log at .*@broker is damaged \(/);
      expect(logger.warnings.join('\n')).toMatch(reason);
      expect(await readdir(dir)).toEqual(expect.arrayContaining(['@broker', '@broker.corrupt-1']));
      // The log starts empty, so the state (ahead of its changelog now) is rebuilt: counting starts over.
      await sendReadings(app, 50);
      await expect.poll(() => app.store('counts').get('s3')).toBe(10);
    } finally {
      await app.stop();
    }
  });

  it('a chunk on disk only is skipped with a warning when read back, and the reader goes on', async () => {
    const dir = await scratch();
    await seed(dir);
    // Every group had committed `readings` when the log is read: its chunks stay on disk only, their records unread.
    await cutChunk(dir, (name) => name === 'readings', 1);

    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    const logger = recordingLogger();
    const transport = levelTransport({ dir, logger, verifyOnOpen: false });
    const first = counter('counter', transport, dir);
    // A new group reads `readings` from its start, from disk.
    const late = counter('late', transport, dir);
    try {
      await first.start();
      await late.start();
      await expect.poll(() => late.store('counts').get('s0')).toBe(80);
      expect(await late.store('counts').range()).toEqual(Array.from({ length: SENSORS }, (_, sensor) => ({ key: `s${sensor}`, value: 80 })));
      expect(logger.warnings.join('\n')).toMatch(/records 100 to 199 of readings partition 0 in the Eddy broker log at .*@broker are damaged \(a field runs past the chunk\); skipping them/);
      expect(rejections).toEqual([]);
      // Counted where the app's metrics show them: the chunk's 100 records.
      expect(late.metrics().recordsLostToDamage).toBe(100);
      expect(first.metrics('prometheus')).toMatch(/eddy_records_lost_to_damage_total\{app="counter"\} 100/);
    } finally {
      await late.stop();
      await first.stop();
      process.off('unhandledRejection', onRejection);
    }
  });
});

describe('a broker dir that cannot be used', () => {
  it('fails with TRANSPORT_FAILED naming the broker log, not the state', async () => {
    const dir = await scratch();
    const notADirectory = join(dir, 'a-file');
    await writeFile(notADirectory, 'not a directory\n');
    const broker = levelTransport({ dir: notADirectory, logger: quiet });
    await expect(broker.connect()).rejects.toMatchObject({
      code: 'TRANSPORT_FAILED',
      message: expect.stringMatching(/^cannot use the Eddy broker log directory .*a-file\/@broker: /),
    });
  });
});
