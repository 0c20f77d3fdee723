/**
 * The table checksum check against real LevelDB files: a healthy database passes; any byte of a
 * live table file changed is either found or changes nothing that is read back; table files the
 * MANIFEST does not list are not read.
 */
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '@eddy/core/testing';
import { Level } from 'level';
import { checkTable, crc32c, liveTables, snappyDecompress, tableDamage } from './table-check.js';

const directories: string[] = [];
afterAll(async () => Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true }))));
const tempDir = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'eddy-table-check-'));
  directories.push(dir);
  return dir;
};

/** Every entry of the database at `location`, or the error reading it failed with. */
async function entries(location: string): Promise<string[] | string> {
  const db = new Level<string, string>(location, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  try {
    await db.open({ createIfMissing: false });
    return (await db.iterator().all()).map(([key, value]) => `${key}=${value}`);
  } catch (error) {
    return `failed: ${(error as Error).message}`;
  } finally {
    await db.close().catch(() => undefined);
  }
}

/** A database of `count` entries, all in table files of small blocks; closed. */
async function database(count: number, random: () => number): Promise<string> {
  const location = join(await tempDir(), 'db');
  const db = new Level<string, string>(location, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  await db.open({ blockSize: 512, writeBufferSize: 64 << 10 });
  const batch = db.batch();
  // Values half repetitive (Snappy compresses them) and half random digits (stored literally).
  for (let index = 0; index < count; index++) batch.put(`sensor-${String(index % 97).padStart(3, '0')}/${String(index).padStart(7, '0')}`, JSON.stringify({ count: Math.floor(random() * 1e6), note: 'x'.repeat(index % 40) }));
  await batch.write();
  await db.close();
  // Opened again: LevelDB writes what its write-ahead log still holds into a table file.
  await db.open();
  await db.close();
  return location;
}

const tableFiles = async (location: string) => (await readdir(location)).filter((name) => name.endsWith('.ldb')).sort();

describe('CRC-32C and Snappy', () => {
  it('match the published check values', () => {
    expect(crc32c(new TextEncoder().encode('123456789')).toString(16)).toBe('e3069283');
    expect(crc32c(new Uint8Array(32)).toString(16)).toBe('8a9136aa');
    expect(crc32c(new Uint8Array(32).fill(0xff)).toString(16)).toBe('62a8ab43');
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, index) => index)).toString(16)).toBe('46dd794e');
    // Eight at a time and one at a time agree, from any start.
    const bytes = Uint8Array.from({ length: 100 }, (_, index) => (index * 37) & 0xff);
    for (let start = 0; start < 9; start++) {
      let crc = 0xffffffff;
      for (let at = start; at < bytes.length; at++) {
        crc ^= bytes[at]!;
        for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
      }
      expect(crc32c(bytes, start)).toBe((crc ^ 0xffffffff) >>> 0);
    }
  });

  it('decompresses literals and overlapping copies, and refuses a stream that refers outside itself', () => {
    // "a", then a copy of 9 bytes from 1 back: a run of ten.
    expect(new TextDecoder().decode(snappyDecompress(Uint8Array.of(10, 0x00, 0x61, 0x15, 0x01)))).toBe('aaaaaaaaaa');
    // A copy from 2 back before anything is written.
    expect(() => snappyDecompress(Uint8Array.of(4, 0x01, 0x02))).toThrow(/refers outside/);
    // Stated 5 bytes, one given.
    expect(() => snappyDecompress(Uint8Array.of(5, 0x00, 0x61))).toThrow(/short of its stated length/);
  });
});

describe('table checksums of a real LevelDB database', () => {
  it('passes a healthy database, every table file of which has many blocks', async () => {
    const location = await database(20_000, mulberry32(1));
    const tables = await liveTables(location);
    expect(tables.size).toBeGreaterThan(0);
    expect([...tables.keys()].map((number) => `${String(number).padStart(6, '0')}.ldb`).sort()).toEqual(await tableFiles(location));
    await expect(tableDamage(location)).resolves.toBeUndefined();
  });

  it('any byte of a table file changed is found, or nothing read back changes', async () => {
    const random = mulberry32(7);
    const location = await database(5_000, random);
    const healthy = await entries(location);
    expect(Array.isArray(healthy) && healthy.length).toBe(5_000);
    const [file] = await tableFiles(location);
    const original = await readFile(join(location, file!));
    let found = 0;
    let harmless = 0;
    const copy = join(await tempDir(), 'db');
    for (let trial = 0; trial < 60; trial++) {
      // Mostly anywhere in the file; a few in the footer and the last blocks (index, filter).
      const at = trial < 45 ? Math.floor(random() * original.length) : original.length - 1 - Math.floor(random() * 400);
      const damaged = Buffer.from(original);
      damaged[at]! ^= 1 << Math.floor(random() * 8);
      await rm(copy, { recursive: true, force: true });
      await cp(location, copy, { recursive: true });
      await writeFile(join(copy, file!), damaged);
      if ((await tableDamage(copy)) !== undefined) {
        found++;
        continue;
      }
      // Not found: then LevelDB must read back exactly what was written (e.g. a footer padding byte).
      expect(await entries(copy), `byte ${at} of ${original.length} changed, not found`).toEqual(healthy);
      harmless++;
    }
    expect(found).toBeGreaterThan(50);
    expect(found + harmless).toBe(60);
  });

  it('the changed digit of a value, which LevelDB reads back without an error, is found', async () => {
    const location = await database(2_000, mulberry32(3));
    for (const file of await tableFiles(location)) {
      const bytes = await readFile(join(location, file));
      const at = bytes.indexOf('"count":');
      if (at < 0) continue;
      bytes[at + 9]! ^= 0x01; // a digit stays a digit
      await writeFile(join(location, file), bytes);
      const read = await entries(location);
      // The premise: LevelDB itself does not notice.
      expect(typeof read === 'string' ? read : 'read back').toBe('read back');
      expect(await tableDamage(location)).toMatch(new RegExp(`table file ${file}: the block at offset \\d+ \\(\\d+ bytes\\) does not match its checksum`));
      return;
    }
    throw new Error('test setup: no value stored literally');
  });

  it('reads only the table files the MANIFEST lists, and reports a listed one of the wrong size', async () => {
    const location = await database(3_000, mulberry32(5));
    // What a crash in the middle of a compaction leaves: a half-written table nobody lists.
    await writeFile(join(location, '999999.ldb'), Buffer.alloc(1000, 7));
    await expect(tableDamage(location)).resolves.toBeUndefined();
    const [file] = await tableFiles(location);
    const bytes = await readFile(join(location, file!));
    await writeFile(join(location, file!), bytes.subarray(0, bytes.length - 10));
    await expect(tableDamage(location)).resolves.toMatch(new RegExp(`table file ${file} is ${bytes.length - 10} bytes where the MANIFEST says ${bytes.length}`));
  });

  it('refuses a table shorter than its footer or without the magic number', () => {
    expect(() => checkTable(new Uint8Array(10))).toThrow(/shorter than a table's footer/);
    expect(() => checkTable(new Uint8Array(100))).toThrow(/no table magic number/);
  });
});
