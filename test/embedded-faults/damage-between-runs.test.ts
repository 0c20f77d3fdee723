/**
 * Damage between runs of an app in durable embedded mode (levelTransport + levelState on one dir):
 * after two clean runs, a file of the broker log or of the state dir is cut, scribbled on or
 * deleted, then a third run goes on. Whatever the damage, the app either fails start() with an
 * EddyError carrying a code, or runs without error and gives results that are exact for the input
 * its log holds: each 10 s count, each session sum and each running total.
 */
import { mkdtemp, open, readdir, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, EddyError, silentLogger } from '@eddy/core';
import { levelState, levelTransport, type StateLogger } from '@eddy/state';
import { readLog } from './harness.ts';

const directories: string[] = [];
afterAll(async () => Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true }))));

interface Reading {
  sensor: string;
  seq: number;
  value: number;
  ts: number;
}

/** The value of each topic the test reads back. */
interface Topics {
  readings: Reading;
  counts: { sensor: string; start: number; count: number };
  sessions: { sensor: string; start: number; end: number; sum: number };
}

/** The app's id, also the name of its state folder in the dir (the broker log is in `@broker`). */
const APP_ID = 'damage';
const SENSORS = 3;
const base = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 2 * 3_600_000;
const tsOf = (seq: number) => base + seq * 100 + Math.floor(seq / 40) * 5_000;

/** A logger for levelTransport and levelState that keeps their warnings. */
function recording(): StateLogger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, warn: (_fields, message) => warnings.push(message), info: () => undefined };
}

/** 10 s counts, sessions (gap 2 s) with their sums, and a running count per sensor (store `totals`). */
function build(dir: string, logger: StateLogger) {
  const app = createApp({ id: APP_ID, transport: levelTransport({ dir, logger }), state: levelState({ dir, logger }), idleTimeout: false, commitInterval: '10ms', logger: silentLogger });
  const keyed = app.from<Reading>('readings', { timestamp: (r) => r.ts }).keyBy((r) => r.sensor);
  keyed.tumbling('10s').count().onClose((w) => ({ sensor: w.key, start: w.start, count: w.value })).to('counts');
  keyed.session('2s').sum((r) => r.value).onClose((w) => ({ sensor: w.key, start: w.start, end: w.end, sum: w.value })).to('sessions');
  keyed.count({ name: 'totals' });
  return app;
}

async function sendRange(app: ReturnType<typeof build>, from: number, to: number) {
  for (let seq = from; seq < to; seq++) {
    const sensor = `s${seq % SENSORS}`;
    await app.send('readings', { sensor, seq, value: seq % 17, ts: tsOf(seq) }, { key: sensor });
    if (seq % 25 === 0) await new Promise((resolve) => setTimeout(resolve, 15)); // lets commits happen
  }
}

/** Waits until the app has read all its input: five polls in a row with no lag. */
async function settle(app: ReturnType<typeof build>) {
  for (let quiet = 0; quiet < 5; ) {
    await new Promise((resolve) => setTimeout(resolve, 40));
    quiet = app.metrics().lag === 0 ? quiet + 1 : 0;
  }
}

/** A clean run that sends readings from..to-1 and stops once they are processed. */
async function run(dir: string, from: number, to: number) {
  const app = build(dir, recording());
  await app.start();
  await sendRange(app, from, to);
  await settle(app);
  await app.stop();
}

/** Damages the LevelDB database in `folder` (for `both`: the app's dir). */
type Damage = (folder: string) => Promise<void>;
const newest = async (folder: string, ext: string) => {
  const names = (await readdir(folder)).filter((name) => name.endsWith(ext)).sort();
  if (names.length === 0) throw new Error(`test setup: no ${ext} in ${folder}: ${(await readdir(folder)).join(', ')}`);
  return join(folder, names[names.length - 1]!);
};
const halve = (ext: string): Damage => async (folder) => {
  const file = await newest(folder, ext);
  await truncate(file, Math.floor((await stat(file)).size / 2));
};
const scribble = (ext: string): Damage => async (folder) => {
  const file = await newest(folder, ext);
  const { size } = await stat(file);
  const handle = await open(file, 'r+');
  await handle.write(Buffer.alloc(48, 0x5a), 0, 48, Math.floor(size / 2));
  await handle.close();
};
const remove = (pattern: RegExp): Damage => async (folder) => {
  for (const name of (await readdir(folder)).filter((file) => pattern.test(file))) await rm(join(folder, name));
};

const damages: Array<[where: 'broker' | 'state' | 'both', name: string, damage: Damage]> = [
  ['broker', 'write-ahead log cut in half (a power loss without sync)', halve('.log')],
  ['broker', 'write-ahead log scribbled in the middle', scribble('.log')],
  ['broker', 'newest table file cut in half', halve('.ldb')],
  ['broker', 'newest table file scribbled in the middle', scribble('.ldb')],
  ['broker', 'CURRENT deleted', remove(/^CURRENT$/)],
  ['broker', 'MANIFEST deleted', remove(/^MANIFEST-/)],
  ['state', 'write-ahead log cut in half', halve('.log')],
  ['state', 'write-ahead log scribbled in the middle', scribble('.log')],
  ['state', 'newest table file cut in half', halve('.ldb')],
  ['state', 'CURRENT deleted', remove(/^CURRENT$/)],
  ['state', 'MANIFEST deleted', remove(/^MANIFEST-/)],
  ['both', 'write-ahead logs of both cut (a power loss without sync)', async (dir) => {
    await halve('.log')(join(dir, '@broker'));
    await halve('.log')(join(dir, APP_ID));
  }],
];

describe('damage to the files of a durable embedded app between runs', () => {
  it.each(damages)('%s, %s: the next run gives exact results for the log it has, or start() fails with an EddyError', async (where, name, damage) => {
    const dir = await mkdtemp(join(tmpdir(), 'eddy-embedded-faults-damage-'));
    directories.push(dir);
    await run(dir, 0, 400);
    await run(dir, 400, 800); // the first run's writes are in table files now, the second's in the write-ahead log
    await damage(where === 'broker' ? join(dir, '@broker') : where === 'state' ? join(dir, APP_ID) : dir);

    const logger = recording();
    const app = build(dir, logger);
    const errors: unknown[] = [];
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    app.on('error', (error) => errors.push(error));
    let totals: Array<{ key: string; value: number }> = [];
    try {
      try {
        await app.start();
      } catch (error) {
        expect(error).toBeInstanceOf(EddyError);
        expect((error as EddyError).code).toMatch(/^[A-Z_]+$/);
        console.log(`[embedded-faults damage] ${where} ${name}: start failed ${(error as EddyError).code}: ${(error as Error).message}`);
        return;
      }
      await sendRange(app, 800, 1200);
      // Close every window and session: one reading per sensor far ahead.
      for (let sensor = 0; sensor < SENSORS; sensor++) await app.send('readings', { sensor: `s${sensor}`, seq: -1 - sensor, value: 0, ts: base + 3_600_000 }, { key: `s${sensor}` });
      await settle(app);
      totals = (await app.store('totals').range()) as Array<{ key: string; value: number }>;
      expect(app.state).toBe('running');
      await app.stop();
    } finally {
      if (app.state !== 'stopped' && app.state !== 'failed') await app.stop();
      process.off('unhandledRejection', onRejection);
    }
    expect({ errors, rejections }).toEqual({ errors: [], rejections: [] });

    const log = await readLog<Topics>(dir, ['readings', 'counts', 'sessions']);
    const readings = log.readings.map((record) => record.value);
    const problems: string[] = [];
    // 10 s counts: each one exact for the readings the log holds (the far readings' windows never close).
    const counts = new Map<string, number>();
    for (const reading of readings) {
      if (reading.seq < 0) continue;
      const key = `${reading.sensor}@${Math.floor(reading.ts / 10_000) * 10_000}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const reported = new Map<string, number>();
    for (const { value } of log.counts) {
      const key = `${value.sensor}@${value.start}`;
      if (counts.get(key) !== value.count) problems.push(`count ${key}: ${value.count}, expected ${counts.get(key)}`);
      reported.set(key, value.count);
    }
    // Every window of the readings the log holds is reported, by this run or by an earlier one.
    for (const [key, count] of counts) if (!reported.has(key)) problems.push(`count ${key} (${count}) missing`);
    // Sessions (gap 2 s): each one exact, and every one reported.
    const bySensor = new Map<string, Reading[]>();
    for (const reading of readings) if (reading.seq >= 0) bySensor.set(reading.sensor, [...(bySensor.get(reading.sensor) ?? []), reading]);
    const sessions = new Map<string, number>();
    for (const [sensor, list] of bySensor) {
      list.sort((a, b) => a.ts - b.ts);
      let start = list[0]!.ts;
      let last = start;
      let sum = 0;
      for (const reading of list) {
        if (reading.ts - last > 2_000) {
          sessions.set(`${sensor}@${start}-${last + 1}`, sum);
          start = reading.ts;
          sum = 0;
        }
        last = reading.ts;
        sum += reading.value;
      }
      sessions.set(`${sensor}@${start}-${last + 1}`, sum);
    }
    const seenSessions = new Set<string>();
    for (const { value } of log.sessions) {
      const key = `${value.sensor}@${value.start}-${value.end}`;
      seenSessions.add(key);
      if (sessions.get(key) !== value.sum) problems.push(`session ${key}: ${value.sum}, expected ${sessions.get(key)}`);
    }
    for (const key of sessions.keys()) if (!seenSessions.has(key)) problems.push(`session ${key} missing`);
    // Running totals: the records of each sensor the log holds (the far readings included).
    const expectedTotals = [...Array(SENSORS).keys()].map((sensor) => ({ key: `s${sensor}`, value: readings.filter((reading) => reading.sensor === `s${sensor}`).length }));
    expect({ problems: problems.slice(0, 8), totals }).toEqual({ problems: [], totals: expectedTotals });
    console.log(`[embedded-faults damage] ${where} ${name}: ok; ${readings.length} readings in the log; warnings: ${logger.warnings.map((warning) => warning.slice(0, 120)).join(' | ') || 'none'}`);
  }, 60_000);
});
