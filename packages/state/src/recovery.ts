/**
 * Opening an app's LevelDB so that damage never stops the app. Local state is a cache of the
 * changelog topic: when it is damaged, the safe answer is to set it aside and start empty (no
 * checkpoint), so that the engine restores every store from the changelog. The one thing that
 * must never happen is setting aside a directory another live instance is using, so the lock is
 * checked first and reported as an error instead.
 */
import { constants } from 'node:fs';
import { access, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { EddyError } from '@eddy/core';
import { Level } from 'level';
import { isDamage, levelErrorCode, rootMessage, StateError } from './errors.js';
import { FORMAT_KEY, FORMAT_VALUE, FORMAT_VERSION, layoutViolation } from './layout.js';
import { tableDamage } from './table-check.js';

/** The LevelDB handle type used throughout: byte keys and byte values. */
export type LevelDatabase = Level<Uint8Array, Uint8Array>;

/**
 * Where the LevelDB backend reports what it did. Shaped like pino (`fields`, then `message`), so
 * an app's pino logger can be passed as is.
 *
 * @example
 * ```ts
 * const logger: StateLogger = {
 *   warn: (fields, message) => alerts.send({ ...fields, message }),
 *   info: () => {},
 * };
 * levelState({ dir: '.eddy', logger });
 * ```
 */
export interface StateLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
}

/**
 * LevelDB tuning passed through to `classic-level`; the defaults suit most apps.
 *
 * @example
 * ```ts
 * // Large windows of many keys: a bigger block cache and memtable.
 * levelState({ dir: '.eddy', leveldb: { cacheSize: 64 << 20, writeBufferSize: 16 << 20 } });
 * ```
 */
export interface LevelTuning {
  /** Block cache in bytes (LevelDB default 8 MiB). */
  readonly cacheSize?: number;
  /** Memtable size in bytes before it is written to a table file (default 4 MiB). */
  readonly writeBufferSize?: number;
  /** Approximate uncompressed block size in bytes (default 4 KiB). */
  readonly blockSize?: number;
  /** Table files LevelDB may keep open (default 1000). */
  readonly maxOpenFiles?: number;
  /** Snappy compression of table blocks (default true). */
  readonly compression?: boolean;
}

/** What a database holds, to tell its own from damage: its format marker and key layout, and what losing it means. */
export interface DatabaseFormat {
  readonly markerKey: Uint8Array;
  readonly markerValue: Uint8Array;
  readonly version: string;
  /** Why an entry does not fit the layout, or undefined if it does. */
  violation(key: Uint8Array, value: Uint8Array): string | undefined;
  /** What it is, for messages ("Eddy state"), and what starting empty means. */
  readonly name: string;
  readonly consequence: string;
  /** The error to raise when another process or backend holds it (`STATE_LOCKED`, `TRANSPORT_LOCKED`). */
  locked(location: string, cause: unknown): Error;
  /** The error to raise when it cannot be used and setting it aside would not help (`STATE_FAILED`, `TRANSPORT_FAILED`). */
  failed(message: string, cause?: unknown): Error;
}

/** The state backend's databases. */
export const stateFormat: DatabaseFormat = {
  markerKey: FORMAT_KEY,
  markerValue: FORMAT_VALUE,
  version: FORMAT_VERSION,
  violation: layoutViolation,
  name: 'Eddy state',
  consequence: 'every store of this app will be restored from its changelog',
  locked: (location, cause) =>
    new StateError(
      'STATE_LOCKED',
      `Eddy state at ${location} is locked by another process or another backend in this process ` +
        `(${rootMessage(cause)}); is another instance of this app running with the same state dir?`,
      { cause, retriable: true },
    ),
  failed: (message, cause) => new StateError('STATE_FAILED', message, { cause }),
};

/** What {@link openDatabase} needs: the resolved options of `levelState` and the app's path. */
export interface OpenDatabaseOptions {
  readonly location: string;
  readonly logger: StateLogger;
  readonly keepCorruptCopies: number;
  readonly verifyOnOpen: boolean;
  readonly tuning: LevelTuning;
  /** Default: the state backend's. */
  readonly format?: DatabaseFormat;
  /**
   * Reads the whole database once it opened (the broker loads its log). Damage it meets sets the
   * database aside like damage the checks find, `verifyOnOpen` or not; then it reads the empty one.
   */
  readonly read?: (db: LevelDatabase) => Promise<void>;
}

type Attempt = { readonly db: LevelDatabase } | { readonly damage: string };

/**
 * Opens (creating if needed) the database at `options.location`. A damaged database is set aside
 * and replaced by an empty one; a locked one fails with `STATE_LOCKED`.
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<LevelDatabase> {
  const format = options.format ?? stateFormat;
  // LevelDB's lock is per process, and a second open in the same process that fails on it closes
  // its own handle of the LOCK file, which drops the process's lock (POSIX locks belong to the
  // process): another process could then open the database too. So a second open in this
  // process never reaches LevelDB.
  if (openHere.has(options.location)) throw format.locked(options.location, new Error('it is open in this process'));
  openHere.add(options.location);
  try {
    const db = await openOrSetAside(options, format);
    db.once('closed', () => openHere.delete(options.location));
    return db;
  } catch (error) {
    openHere.delete(options.location);
    throw error;
  }
}

/** Databases this process has open, by location: shared by every copy of this module. */
const openHere: Set<string> = ((globalThis as Record<symbol, Set<string> | undefined>)[Symbol.for('eddy.state.openDatabases')] ??= new Set<string>());

async function openOrSetAside(options: OpenDatabaseOptions, format: DatabaseFormat): Promise<LevelDatabase> {
  const first = await attemptOpen(options, format);
  if ('db' in first) return first.db;

  const movedTo = await setAside(options.location, first.damage, options.keepCorruptCopies, format);
  options.logger.warn(
    { location: options.location, reason: first.damage, movedTo: movedTo ?? null },
    `${format.name} at ${options.location} is damaged (${first.damage}); ` +
      (movedTo === undefined ? 'deleted it' : `moved it to ${movedTo}`) +
      ` and starting empty: ${format.consequence}`,
  );

  const second = await attemptOpen(options, format);
  if ('db' in second) return second.db;
  throw format.failed(`${format.name} at ${options.location} is still unusable after setting the damaged copy aside: ${second.damage}`);
}

async function attemptOpen(options: OpenDatabaseOptions, format: DatabaseFormat): Promise<Attempt> {
  const { location, tuning } = options;
  await prepareLocation(location, format);

  let db = new Level<Uint8Array, Uint8Array>(location, { keyEncoding: 'view', valueEncoding: 'view' });
  try {
    // Never let LevelDB create a database on its own: with CURRENT missing it would silently
    // start a new one next to the old files, and replay old logs into it.
    await db.open({ ...tuning, createIfMissing: false });
  } catch (error) {
    throwIfLocked(error, location, format);
    if (!/does not exist \(create_if_missing is false\)/.test(rootMessage(error))) {
      return { damage: `LevelDB could not open it: ${rootMessage(error)}` };
    }
    const leftovers = await levelDbFiles(location);
    if (leftovers.length > 0) {
      return { damage: `CURRENT is missing but LevelDB files remain (${leftovers.slice(0, 3).join(', ')})` };
    }
    db = new Level<Uint8Array, Uint8Array>(location, { keyEncoding: 'view', valueEncoding: 'view' });
    try {
      await db.open({ ...tuning, createIfMissing: true });
    } catch (createError) {
      throwIfLocked(createError, location, format);
      return { damage: `LevelDB could not create it: ${rootMessage(createError)}` };
    }
  }

  let damage: string | undefined;
  try {
    damage =
      (await recoveryLogDamage(location)) ??
      (options.verifyOnOpen ? await tableDamage(location) : undefined) ??
      (await contentDamage(db, options.verifyOnOpen, format)) ??
      (await readDamage(db, options, format));
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error instanceof EddyError ? error : format.failed(`checking the ${format.name} at ${location} failed: ${rootMessage(error)}`, error);
  }
  if (damage !== undefined) {
    await db.close();
    return { damage };
  }
  if (options.verifyOnOpen) options.logger.info({ location }, `${format.name} at ${location} opened and verified`);
  return { db };
}

async function prepareLocation(location: string, format: DatabaseFormat): Promise<void> {
  try {
    await mkdir(dirname(location), { recursive: true });
    const found = await stat(location).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    // Permissions are an operator's problem, not damage: moving the directory would not fix them.
    if (found?.isDirectory()) await access(location, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (error) {
    throw format.failed(`cannot use the ${format.name} directory ${location}: ${rootMessage(error)}`, error);
  }
}

function throwIfLocked(error: unknown, location: string, format: DatabaseFormat): void {
  if (levelErrorCode(error) === 'LEVEL_LOCKED') throw format.locked(location, error);
}

/** Files that only exist once LevelDB has written data. LOG, LOG.old and LOCK do not count. */
async function levelDbFiles(location: string): Promise<string[]> {
  const names = await readdir(location).catch(() => []);
  return names.filter((name) => /^(MANIFEST-\d+|\d+\.(ldb|sst|log))$/.test(name));
}

/**
 * LevelDB opens without its paranoid checks, so a damaged write-ahead log record is skipped with
 * only a line in its info LOG (rewritten at every open). A skipped record in the middle would
 * leave later batches — and a later checkpoint — applied without it, which is why it counts as
 * damage. A log cut short at its end is not reported: that is an ordinary crash, and what
 * survives is a consistent prefix of batches with its own checkpoint.
 */
async function recoveryLogDamage(location: string): Promise<string | undefined> {
  const log = await readFile(join(location, 'LOG'), 'utf8').catch(() => '');
  const line = log.split('\n').find((candidate) => /dropping \d+ bytes|Ignoring error/.test(candidate));
  return line === undefined ? undefined : `LevelDB skipped damaged records while recovering: ${line.trim()}`;
}

/**
 * Reads the database's own marker and, when `verify` is set, every entry: damage LevelDB meets
 * reading a block, found now rather than by a task mid-stream, and entries that decode but do not
 * fit the key layout. (A block whose bytes changed but still decode is for the table check,
 * table-check.ts, to find: LevelDB reads it without a word.)
 */
async function contentDamage(db: LevelDatabase, verify: boolean, format: DatabaseFormat): Promise<string | undefined> {
  try {
    const marker = await db.get(format.markerKey);
    if (marker === undefined) {
      const [any] = await db.keys({ limit: 1 }).all();
      if (any !== undefined) return 'its format marker is missing although it holds data';
      await db.put(format.markerKey, format.markerValue);
      return undefined;
    }
    const version = new TextDecoder().decode(marker);
    if (version !== format.version) return `it has format ${JSON.stringify(version)}, this version reads ${format.version}`;
    if (!verify) return undefined;

    const iterator = db.iterator({ fillCache: false });
    try {
      for (;;) {
        const entries = await iterator.nextv(1000);
        if (entries.length === 0) return undefined;
        for (const [key, value] of entries) {
          const violation = format.violation(key, value);
          if (violation !== undefined) return `it holds ${violation}`;
        }
      }
    } finally {
      await iterator.close();
    }
  } catch (error) {
    if (isDamage(error)) return `reading it failed: ${rootMessage(error)}`;
    throw error;
  }
}

/**
 * Runs the owner's read of the whole database (see {@link OpenDatabaseOptions.read}). Without
 * `verifyOnOpen` it is the first to meet an entry that does not decode; a full check then tells
 * such damage from a failure of the reader itself, which is thrown.
 */
async function readDamage(db: LevelDatabase, options: OpenDatabaseOptions, format: DatabaseFormat): Promise<string | undefined> {
  if (options.read === undefined) return undefined;
  try {
    await options.read(db);
    return undefined;
  } catch (error) {
    if (isDamage(error)) return `reading it failed: ${rootMessage(error)}`;
    const damage = options.verifyOnOpen ? undefined : await contentDamage(db, true, format);
    if (damage !== undefined) return damage;
    throw error;
  }
}

/**
 * Moves a damaged directory to `<location>.corrupt-<n>` (a sibling, so the rename is atomic and
 * copies nothing), keeping the newest `keep` copies for diagnosis; with `keep` 0 it deletes it.
 * Without a bound, a disk that keeps corrupting state would fill up with copies.
 *
 * @returns where the directory went, or undefined if it was deleted.
 */
async function setAside(location: string, reason: string, keep: number, format: DatabaseFormat): Promise<string | undefined> {
  const parent = dirname(location);
  const base = basename(location);
  const copyPattern = new RegExp(`^${escapeRegExp(base)}\\.corrupt-(\\d+)$`);
  const copies = async (): Promise<{ name: string; number: number }[]> =>
    (await readdir(parent))
      .map((name) => ({ name, match: copyPattern.exec(name) }))
      .filter((entry): entry is { name: string; match: RegExpExecArray } => entry.match !== null)
      .map(({ name, match }) => ({ name, number: Number(match[1]) }))
      .sort((a, b) => b.number - a.number);

  if (keep > 0) {
    const newest = (await copies().catch(() => []))[0]?.number ?? 0;
    const movedTo = join(parent, `${base}.corrupt-${newest + 1}`);
    try {
      await rename(location, movedTo);
    } catch (error) {
      // Could not move it (e.g. a copy in the way): deleting it still lets the app start.
      await remove(location, error, format);
      return undefined;
    }
    // A note for whoever finds the copy; failing to write it, or to prune, loses nothing.
    await writeFile(join(movedTo, 'EDDY-DAMAGED.txt'), `Set aside by Eddy: ${reason}\n`).catch(() => undefined);
    for (const old of (await copies().catch(() => [])).slice(keep)) {
      await rm(join(parent, old.name), { recursive: true, force: true }).catch(() => undefined);
    }
    return movedTo;
  }
  await remove(location, undefined, format);
  return undefined;
}

async function remove(location: string, earlier: unknown, format: DatabaseFormat): Promise<void> {
  try {
    await rm(location, { recursive: true, force: true });
  } catch (error) {
    throw format.failed(`cannot set aside the damaged ${format.name} at ${location}: ${rootMessage(error)}`, earlier ?? error);
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
