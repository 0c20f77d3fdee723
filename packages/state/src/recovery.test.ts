import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { PartitionStore, StateBackend, StoreSpec } from '@eddy/core';
import { Level } from 'level';
import { levelState, StateError } from './index.js';
import type { StateLogger } from './index.js';
import { FORMAT_KEY } from './layout.js';

// ---------------------------------------------------------------------------------------------
// Support

const made: string[] = [];

afterAll(async () => {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function temporaryDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'eddy-state-'));
  made.push(dir);
  return dir;
}

/** A logger that keeps what it was told. */
function recordingLogger(): StateLogger & { readonly warnings: { fields: Record<string, unknown>; message: string }[] } {
  const warnings: { fields: Record<string, unknown>; message: string }[] = [];
  return {
    warnings,
    warn: (fields, message) => {
      warnings.push({ fields, message });
    },
    info: () => undefined,
  };
}

const APP_ID = 'app';

function spec(storeName: string, partition: number): StoreSpec {
  return { appId: APP_ID, storeName, partition, changelogTopic: `${APP_ID}-${storeName}-changelog` };
}

/** The store partitions a seeded app writes to. */
const SEEDED = [spec('windows', 0), spec('windows', 1), spec('counts', 0)] as const;

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/** Sorts after every `u32` key, and is overwritten by every batch. */
const LAST = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff);

function valueOf(batch: number): Uint8Array {
  // Compressible and a few hundred bytes, so that files hold many records and damage in the
  // middle of a file hits records in the middle.
  return new TextEncoder().encode(`batch ${batch} `.repeat(30));
}

/**
 * Writes `batches` batches to every seeded partition. Batch `b` adds key `u32(b)`, overwrites
 * `LAST` with `u32(b)`, and records checkpoint `b + 1`.
 */
async function seed(backend: StateBackend, batches: number): Promise<void> {
  const stores = await Promise.all(SEEDED.map((storeSpec) => backend.open(storeSpec)));
  for (let batch = 0; batch < batches; batch++) {
    for (const store of stores) {
      await store.write(
        [
          { key: u32(batch), value: valueOf(batch) },
          { key: LAST, value: u32(batch) },
        ],
        batch + 1,
      );
    }
  }
  await backend.close();
}

/**
 * What a partition holds, checked against the only states that are safe to resume from: nothing
 * with no checkpoint, or exactly the first `checkpoint` batches.
 */
async function consistentState(store: PartitionStore): Promise<{ checkpoint: number | undefined; batches: number }> {
  const checkpoint = await store.checkpoint();
  const keys: number[] = [];
  let last: number | undefined;
  for await (const [key, value] of store.entries()) {
    if (key.length === LAST.length) {
      last = new DataView(value.buffer, value.byteOffset).getUint32(0);
      continue;
    }
    const batch = new DataView(key.buffer, key.byteOffset).getUint32(0);
    if (new TextDecoder().decode(value) !== new TextDecoder().decode(valueOf(batch))) {
      throw new Error(`value of batch ${batch} is damaged`);
    }
    keys.push(batch);
  }
  const expected = Array.from({ length: checkpoint ?? 0 }, (_, index) => index);
  if (JSON.stringify(keys) !== JSON.stringify(expected)) {
    throw new Error(`checkpoint ${String(checkpoint)} but batches [${keys.join(', ')}] are present`);
  }
  if ((checkpoint === undefined && last !== undefined) || (checkpoint !== undefined && last !== checkpoint - 1)) {
    throw new Error(`checkpoint ${String(checkpoint)} but the last batch marker says ${String(last)}`);
  }
  return { checkpoint, batches: keys.length };
}

const quiet: StateLogger = { warn: () => undefined, info: () => undefined };

type Phase = 'log' | 'table';

/**
 * A state dir with 40 batches in every seeded partition. In phase `log` the data is still in
 * LevelDB's write-ahead log; in phase `table` the app was opened once more, which makes LevelDB
 * move the log into a table (.ldb) file.
 */
async function seededDir(phase: Phase): Promise<{ dir: string; location: string }> {
  const dir = await temporaryDir();
  await seed(levelState({ dir, logger: quiet }), 40);
  if (phase === 'table') {
    const backend = levelState({ dir, logger: quiet });
    await backend.open(SEEDED[0]);
    await backend.close();
  }
  return { dir, location: join(dir, APP_ID) };
}

async function filesIn(location: string, pattern: RegExp): Promise<string[]> {
  const names = await readdir(location);
  const matching = names.filter((name) => pattern.test(name));
  if (matching.length === 0) throw new Error(`no file matches ${String(pattern)} in ${location}: ${names.join(', ')}`);
  return matching.map((name) => join(location, name));
}

type Damage = 'delete' | 'truncate' | 'garbage' | 'scribble' | 'digit';

async function damage(files: string[], how: Damage): Promise<void> {
  for (const file of files) {
    const { size } = await stat(file);
    if (how === 'delete') await rm(file);
    else if (how === 'truncate') await truncate(file, Math.floor(size / 2));
    else if (how === 'garbage') await writeFile(file, 'garbage, not LevelDB \u0000\u00ff');
    else if (how === 'digit') {
      // One bit of a stored value ('batch 1' to 'batch 0'): still a value, still decompresses.
      const bytes = await readFile(file);
      const at = bytes.indexOf('batch 1');
      if (at < 0) throw new Error(`test setup: no value stored literally in ${file}`);
      bytes[at + 6]! ^= 0x01;
      await writeFile(file, bytes);
    } else {
      // Overwrite a run of bytes in the middle, leaving the file's size and its ends intact.
      const handle = await open(file, 'r+');
      try {
        const length = Math.min(64, size);
        await handle.write(Buffer.alloc(length, 0xab), 0, length, Math.floor((size - length) / 2));
      } finally {
        await handle.close();
      }
    }
  }
}

async function openSeeded(backend: StateBackend): Promise<PartitionStore[]> {
  return Promise.all(SEEDED.map((storeSpec) => backend.open(storeSpec)));
}

async function expectEmpty(stores: PartitionStore[]): Promise<void> {
  for (const store of stores) {
    expect(await consistentState(store)).toEqual({ checkpoint: undefined, batches: 0 });
  }
}

/** Writes, closes, reopens and reads back: the state dir works again after whatever happened. */
async function expectUsable(dir: string): Promise<void> {
  const backend = levelState({ dir, logger: quiet });
  for (const store of await openSeeded(backend)) await store.clear();
  await seed(backend, 3);
  const logger = recordingLogger();
  const again = levelState({ dir, logger });
  for (const store of await openSeeded(again)) {
    expect(await consistentState(store)).toEqual({ checkpoint: 3, batches: 3 });
  }
  await again.close();
  expect(logger.warnings).toEqual([]);
}

async function corruptCopies(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.startsWith(`${APP_ID}.corrupt-`)).sort();
}

describe('levelState recovery from damaged state', () => {
  const rebuilt: { name: string; phase: Phase; files: RegExp; how: Damage }[] = [
    { name: 'CURRENT deleted, data in the log', phase: 'log', files: /^CURRENT$/, how: 'delete' },
    { name: 'CURRENT deleted, data in a table', phase: 'table', files: /^CURRENT$/, how: 'delete' },
    { name: 'CURRENT truncated', phase: 'table', files: /^CURRENT$/, how: 'truncate' },
    { name: 'CURRENT replaced by garbage', phase: 'table', files: /^CURRENT$/, how: 'garbage' },
    { name: 'MANIFEST deleted', phase: 'table', files: /^MANIFEST-/, how: 'delete' },
    { name: 'MANIFEST truncated', phase: 'table', files: /^MANIFEST-/, how: 'truncate' },
    { name: 'MANIFEST replaced by garbage', phase: 'table', files: /^MANIFEST-/, how: 'garbage' },
    { name: 'MANIFEST scribbled over', phase: 'table', files: /^MANIFEST-/, how: 'scribble' },
    { name: 'table file deleted', phase: 'table', files: /\.ldb$/, how: 'delete' },
    { name: 'table file truncated', phase: 'table', files: /\.ldb$/, how: 'truncate' },
    { name: 'table file replaced by garbage', phase: 'table', files: /\.ldb$/, how: 'garbage' },
    { name: 'table file scribbled over', phase: 'table', files: /\.ldb$/, how: 'scribble' },
    // LevelDB reads this back without an error: only the block checksums tell (table-check.ts).
    { name: 'one bit of a value in a table file flipped', phase: 'table', files: /\.ldb$/, how: 'digit' },
    { name: 'log scribbled over in the middle', phase: 'log', files: /\.log$/, how: 'scribble' },
  ];

  for (const { name, phase, files, how } of rebuilt) {
    it(`${name}: warns, sets the directory aside, starts empty without checkpoint`, async () => {
      const { dir, location } = await seededDir(phase);
      await damage(await filesIn(location, files), how);

      const logger = recordingLogger();
      const backend = levelState({ dir, logger });
      await expectEmpty(await openSeeded(backend));
      await backend.close();

      expect(logger.warnings).toHaveLength(1);
      const [warning] = logger.warnings;
      expect(warning.fields).toMatchObject({ location, movedTo: join(dir, `${APP_ID}.corrupt-1`) });
      expect(warning.message).toMatch(/damaged .*moved it to .*changelog/);
      expect(await corruptCopies(dir)).toEqual([`${APP_ID}.corrupt-1`]);
      expect(await readFile(join(dir, `${APP_ID}.corrupt-1`, 'EDDY-DAMAGED.txt'), 'utf8')).toContain(
        String(warning.fields.reason),
      );
      await expectUsable(dir);
    });
  }

  // Losing the end of the write-ahead log is what an OS crash does: LevelDB keeps a prefix of
  // whole batches, and with it the checkpoint written in the last surviving batch.
  const crashLike: { name: string; how: Damage; survivors: 'none' | 'some' }[] = [
    { name: 'log deleted', how: 'delete', survivors: 'none' },
    { name: 'log replaced by garbage', how: 'garbage', survivors: 'none' },
    { name: 'log truncated', how: 'truncate', survivors: 'some' },
  ];

  for (const { name, how, survivors } of crashLike) {
    it(`${name}: opens without a warning on a consistent prefix of batches`, async () => {
      const { dir, location } = await seededDir('log');
      await damage(await filesIn(location, /\.log$/), how);

      const logger = recordingLogger();
      const backend = levelState({ dir, logger });
      let total = 0;
      for (const store of await openSeeded(backend)) total += (await consistentState(store)).batches;
      await backend.close();

      expect(logger.warnings).toEqual([]);
      if (survivors === 'none') expect(total).toBe(0);
      else expect(total).toBeGreaterThan(0);
      expect(total).toBeLessThan(40 * SEEDED.length);
      await expectUsable(dir);
    });
  }

  it('a stale LOCK file (left by a dead process) is not damage: all data is kept', async () => {
    const { dir, location } = await seededDir('table');
    await writeFile(join(location, 'LOCK'), 'pid 12345, long gone\n');

    const logger = recordingLogger();
    const backend = levelState({ dir, logger });
    for (const store of await openSeeded(backend)) {
      expect(await consistentState(store)).toEqual({ checkpoint: 40, batches: 40 });
    }
    await backend.close();
    expect(logger.warnings).toEqual([]);
    expect(await corruptCopies(dir)).toEqual([]);
  });

  it('a file where the app directory should be is set aside', async () => {
    const dir = await temporaryDir();
    await writeFile(join(dir, APP_ID), 'not a directory');
    const logger = recordingLogger();
    const backend = levelState({ dir, logger });
    await expectEmpty(await openSeeded(backend));
    await backend.close();
    expect(logger.warnings).toHaveLength(1);
    expect(await readFile(join(dir, `${APP_ID}.corrupt-1`), 'utf8')).toBe('not a directory');
    await expectUsable(dir);
  });

  it('creates a missing state directory, parents included', async () => {
    const dir = join(await temporaryDir(), 'does', 'not', 'exist');
    const logger = recordingLogger();
    await seed(levelState({ dir, logger }), 2);
    expect((await stat(join(dir, APP_ID))).isDirectory()).toBe(true);
    expect(logger.warnings).toEqual([]);
  });

  it('starts quietly in an empty app directory, or one with only LevelDB’s log and lock', async () => {
    const dir = await temporaryDir();
    await mkdir(join(dir, APP_ID));
    const logger = recordingLogger();
    const backend = levelState({ dir, logger });
    await expectEmpty(await openSeeded(backend));
    await backend.close();

    const other = await temporaryDir();
    await mkdir(join(other, APP_ID));
    await writeFile(join(other, APP_ID, 'LOG'), 'an old info log\n');
    await writeFile(join(other, APP_ID, 'LOCK'), '');
    const otherBackend = levelState({ dir: other, logger });
    await expectEmpty(await openSeeded(otherBackend));
    await otherBackend.close();
    expect(logger.warnings).toEqual([]);
  });

  /** Opens the app's LevelDB directly, bypassing the backend, to plant bad content. */
  async function plant(location: string, plantIn: (db: Level<Uint8Array, Uint8Array>) => Promise<void>): Promise<void> {
    const db = new Level<Uint8Array, Uint8Array>(location, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    await plantIn(db);
    await db.close();
  }

  const planted: { name: string; plantIn: (db: Level<Uint8Array, Uint8Array>) => Promise<void>; reason: RegExp }[] = [
    {
      name: 'a format marker of another version',
      plantIn: (db) => db.put(FORMAT_KEY, new TextEncoder().encode('99')),
      reason: /format "99"/,
    },
    { name: 'a missing format marker', plantIn: (db) => db.del(FORMAT_KEY), reason: /format marker is missing/ },
    {
      name: 'an entry outside the key layout',
      plantIn: (db) => db.put(Uint8Array.of(0x07, 1, 2), Uint8Array.of(1)),
      reason: /unknown tag 07/,
    },
  ];

  for (const { name, plantIn, reason } of planted) {
    it(`${name} is treated as damage`, async () => {
      const { dir, location } = await seededDir('table');
      await plant(location, plantIn);
      const logger = recordingLogger();
      const backend = levelState({ dir, logger });
      await expectEmpty(await openSeeded(backend));
      await backend.close();
      expect(logger.warnings).toHaveLength(1);
      expect(String(logger.warnings[0].fields.reason)).toMatch(reason);
    });
  }

  it('keeps the newest keepCorruptCopies copies, and deletes damaged state with 0', async () => {
    for (const [keep, expected] of [
      [undefined, [`${APP_ID}.corrupt-2`]],
      [2, [`${APP_ID}.corrupt-1`, `${APP_ID}.corrupt-2`]],
      [0, []],
    ] as const) {
      const dir = await temporaryDir();
      for (let round = 0; round < 2; round++) {
        await seed(levelState({ dir, logger: quiet }), 2);
        await damage(await filesIn(join(dir, APP_ID), /^CURRENT$/), 'garbage');
        const backend = levelState({ dir, logger: quiet, ...(keep === undefined ? {} : { keepCorruptCopies: keep }) });
        await expectEmpty(await openSeeded(backend));
        await backend.close();
      }
      expect(await corruptCopies(dir), `keepCorruptCopies ${String(keep)}`).toEqual(expected);
    }
  });

  it('without verifyOnOpen, damage in a table surfaces as a STATE_FAILED error when read', async () => {
    const { dir, location } = await seededDir('table');
    await damage(await filesIn(location, /\.ldb$/), 'scribble');
    const backend = levelState({ dir, logger: quiet, verifyOnOpen: false });
    const reading = (async () => {
      // Opening a partition reads its checkpoint, which may already hit the damaged block.
      const store = await backend.open(SEEDED[0]);
      for await (const _entry of store.entries());
    })();
    await expect(reading).rejects.toMatchObject({ name: 'StateError', code: 'STATE_FAILED' });
    await backend.close();
  });

  it('warns on the console when no logger is given', async () => {
    const { dir, location } = await seededDir('table');
    await damage(await filesIn(location, /^CURRENT$/), 'delete');
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const backend = levelState({ dir });
      await expectEmpty(await openSeeded(backend));
      await backend.close();
      expect(warn).toHaveBeenCalledOnce();
      expect(String(warn.mock.calls[0][0])).toMatch(/\[eddy\/state\] .*damaged/);
    } finally {
      warn.mockRestore();
    }
  });
});

describe('levelState locking', () => {
  const children: ChildProcess[] = [];

  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill();
  });

  /** Starts a Node process that holds the app's LevelDB open until its stdin closes. */
  async function holdInAnotherProcess(location: string): Promise<ChildProcess> {
    const levelPath = createRequire(import.meta.url).resolve('level');
    const script = `
      const { Level } = require(${JSON.stringify(levelPath)});
      const db = new Level(${JSON.stringify(location)});
      db.open().then(() => {
        process.stdout.write('ready\\n');
        process.stdin.on('data', () => {});
        process.stdin.on('end', () => db.close().then(() => process.exit(0)));
      }, (error) => { console.error(error); process.exit(1); });
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`lock holder exited early with ${String(code)}`)));
    });
    return child;
  }

  async function expectLocked(backend: StateBackend, storeSpec: StoreSpec): Promise<void> {
    const error: unknown = await backend.open(storeSpec).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(StateError);
    expect(error).toMatchObject({ code: 'STATE_LOCKED', retriable: true });
    expect((error as Error).message).toMatch(/locked by another process/);
    expect((error as Error).cause).toBeDefined();
  }

  it('fails with STATE_LOCKED while another backend in this process has the app open, touching nothing', async () => {
    const dir = await temporaryDir();
    await seed(levelState({ dir, logger: quiet }), 5);
    const owner = levelState({ dir, logger: quiet });
    const ownerStore = await owner.open(SEEDED[0]);

    const logger = recordingLogger();
    const intruder = levelState({ dir, logger });
    await expectLocked(intruder, SEEDED[0]);
    expect(logger.warnings).toEqual([]);
    expect(await corruptCopies(dir)).toEqual([]);
    expect(await consistentState(ownerStore)).toEqual({ checkpoint: 5, batches: 5 });

    // The failure does not stick: once the owner is gone, the same backend opens the app.
    await owner.close();
    const store = await intruder.open(SEEDED[0]);
    expect(await consistentState(store)).toEqual({ checkpoint: 5, batches: 5 });
    await intruder.close();
  });

  it('fails with STATE_LOCKED while another process has the app open, touching nothing', async () => {
    const dir = await temporaryDir();
    await seed(levelState({ dir, logger: quiet }), 5);
    const location = join(dir, APP_ID);
    const before = (await readdir(location)).sort();
    const child = await holdInAnotherProcess(location);

    const logger = recordingLogger();
    const backend = levelState({ dir, logger });
    await expectLocked(backend, SEEDED[1]);
    expect(logger.warnings).toEqual([]);
    expect(await corruptCopies(dir)).toEqual([]);
    expect(existsSync(join(location, 'CURRENT'))).toBe(true);

    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.stdin!.end();
    await exited;
    for (const store of await openSeeded(backend)) {
      expect(await consistentState(store)).toEqual({ checkpoint: 5, batches: 5 });
    }
    await backend.close();
    expect(before).toContain('CURRENT');
  });
});
