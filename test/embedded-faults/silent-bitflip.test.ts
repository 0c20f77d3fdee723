/**
 * One flipped bit in a LevelDB table file of a durable embedded app (a disk error, a bad sector
 * read back), in a digit of a stored value, so that the block still decompresses. LevelDB reads
 * table files without checking their checksums; the check on open must catch it (README "State
 * and recovery": a damaged state dir is set aside and rebuilt from the changelog, the broker's
 * log is guarded by the same check). Either way, never a silently wrong window or record.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, silentLogger } from '@eddy/core';
import { levelState, levelTransport, type StateLogger } from '@eddy/state';
import { readLog } from './harness.ts';

const directories: string[] = [];
afterAll(async () => Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true }))));

/** The app's id, also the name of its state folder in the dir (the broker log is in `@broker`). */
const APP_ID = 'bitflip';
const base = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 2 * 3_600_000;
const SENSORS = 4;
const COUNT = 200;
/** Reference: the sum per sensor of the values sent (1000 + i for reading i). */
const expectedSum = (sensor: number) => Array.from({ length: COUNT }, (_, i) => i).filter((i) => i % SENSORS === sensor).reduce((sum, i) => sum + 1000 + i, 0);

/** A logger for levelTransport and levelState that keeps their warnings. */
function recording(): StateLogger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, warn: (_fields, message) => warnings.push(message), info: () => undefined };
}

/** Hourly sums per sensor, written to `sums` when the hour closes. */
function build(dir: string, logger: StateLogger) {
  const app = createApp({ id: APP_ID, transport: levelTransport({ dir, logger }), state: levelState({ dir, logger }), idleTimeout: false, commitInterval: '20ms', logger: silentLogger });
  const hourly = app.from<{ sensor: string; value: number; ts: number }>('readings', { timestamp: (r) => r.ts }).keyBy((r) => r.sensor).tumbling('1h').sum((r) => r.value);
  hourly.onClose((w) => ({ sensor: w.key, start: w.start, sum: w.value })).to('sums');
  return { app, hourly };
}

/**
 * 200 readings into one open hourly window per sensor, committed; then a second clean run, so that
 * LevelDB moves its write-ahead log into a table file.
 */
async function seed(dir: string): Promise<void> {
  const first = build(dir, recording());
  await first.app.start();
  for (let i = 0; i < COUNT; i++) await first.app.send('readings', { sensor: `s${i % SENSORS}`, value: 1000 + i, ts: base + i }, { key: `s${i % SENSORS}` });
  await expect.poll(async () => (await first.app.store(first.hourly).get('s0'))[0]?.value, { timeout: 5_000 }).toBe(expectedSum(0));
  await first.app.stop();
  const again = build(dir, recording());
  await again.app.start();
  await again.app.stop();
}

/** Flips one bit of the first occurrence of `text` in the table files of `folder`; returns the file. */
async function flipIn(folder: string, text: string): Promise<string> {
  for (const name of (await readdir(folder)).filter((file) => file.endsWith('.ldb'))) {
    const bytes = await readFile(join(folder, name));
    const at = bytes.indexOf(Buffer.from(text));
    if (at < 0) continue;
    bytes[at + 1]! ^= 0x02; // a digit stays a digit
    await writeFile(join(folder, name), bytes);
    return name;
  }
  throw new Error(`test setup: ${text} is not stored literally in any table file of ${folder}`);
}

describe('one flipped bit in a LevelDB table file', () => {
  it('in the state dir: the open window and every window it then closes keep their exact sums', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eddy-embedded-faults-bitflip-'));
    directories.push(dir);
    await seed(dir);
    // The open window of s0 holds its sum as a literal number: flip a bit of one of its digits.
    await flipIn(join(dir, APP_ID), String(expectedSum(0)));

    const logger = recording();
    const { app, hourly } = build(dir, logger);
    const errors: unknown[] = [];
    app.on('error', (error) => errors.push(error));
    await app.start();
    try {
      const open = (await app.store(hourly).get('s0'))[0]?.value;
      // Close the hour: each sensor's window is emitted.
      for (let sensor = 0; sensor < SENSORS; sensor++) await app.send('readings', { sensor: `s${sensor}`, value: 0, ts: base + 3_600_000 }, { key: `s${sensor}` });
      await expect.poll(() => app.metrics().windowsClosed, { timeout: 5_000 }).toBeGreaterThanOrEqual(SENSORS);
      await app.stop();
      const results = await readSums(dir);
      expect({ open, results, warnings: logger.warnings, errors }).toEqual({
        open: expectedSum(0),
        results: Array.from({ length: SENSORS }, (_, sensor) => ({ sensor: `s${sensor}`, start: base, sum: expectedSum(sensor) })),
        warnings: logger.warnings, // warnings are allowed (the damage is reported)
        errors: [],
      });
    } finally {
      if (app.state !== 'stopped') await app.stop();
    }
  });

  it('in the broker log: an acknowledged input record is read back with the value that was sent, or the damage is reported', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eddy-embedded-faults-bitflip-'));
    directories.push(dir);
    await seed(dir);
    // The first input value stored literally in a table file of the log: flip a bit of one of its digits.
    const folder = join(dir, '@broker');
    let flipped = false;
    for (const name of (await readdir(folder)).filter((file) => file.endsWith('.ldb'))) {
      const bytes = await readFile(join(folder, name));
      const match = /"value":1\d\d\d,/.exec(bytes.toString('latin1'));
      if (!match) continue;
      bytes[match.index + 10]! ^= 0x02;
      await writeFile(join(folder, name), bytes);
      flipped = true;
      break;
    }
    expect(flipped, 'test setup: an input value stored literally').toBe(true);

    const logger = recording();
    const broker = levelTransport({ dir, logger });
    await broker.connect();
    const values: number[] = [];
    try {
      for (let partition = 0; partition < ((await broker.partitionCount('readings')) ?? 0); partition++) {
        for await (const records of broker.readPartition({ topic: 'readings', partition }, 0)) for (const record of records) values.push((JSON.parse(new TextDecoder().decode(record.value!)) as { value: number }).value);
      }
    } finally {
      await broker.close();
    }
    const sent = Array.from({ length: COUNT }, (_, i) => 1000 + i);
    const damageReported = logger.warnings.some((warning) => /damaged/.test(warning));
    const counts = new Map<number, number>();
    for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
    const readTwice = [...counts].filter(([, n]) => n > 1).map(([v]) => v);
    const missing = sent.filter((v) => !counts.has(v));
    // Either the log reports the damage, or every acknowledged record reads back as it was sent.
    if (!damageReported) expect({ missing, readTwice, extra: values.filter((v) => !sent.includes(v)) }).toEqual({ missing: [], readTwice: [], extra: [] });
  });
});

/** The hourly sums the app wrote, in sensor order. */
async function readSums(dir: string) {
  const { sums } = await readLog<{ sums: { sensor: string; start: number; sum: number } }>(dir, ['sums']);
  return sums.map((record) => record.value).sort((a, b) => a.sensor.localeCompare(b.sensor));
}
