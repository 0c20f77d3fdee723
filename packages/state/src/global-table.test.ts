/**
 * Global tables on levelState: the table lives in the state directory with a checkpoint of the
 * offsets it has read, so a restart on the same directory loads it and reads only the topic's
 * tail; a checkpoint that is missing, unreadable or no longer matches the topic makes it read the
 * topic whole again, with a warning. Contents and join results are checked against brute-force
 * references.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, MemoryTransport, partitionForKey, type App, type GlobalTable, type Logger, type PartitionStore, type StateBackend } from '@eddy/core';
import { mulberry32, TestDriver } from '@eddy/core/testing';
import { levelState, levelTransport } from './index.js';

// ---------------------------------------------------------------------------------------------
// Support

const made: string[] = [];

afterAll(async () => {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function temporaryDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'eddy-global-'));
  made.push(dir);
  return dir;
}

interface Place {
  site: string;
}
interface Reading {
  id: number;
  place: string;
}
type Step = { side: 'places'; key: string; value: Place | null } | { side: 'readings'; value: Reading };

const APP_ID = 'enrich';
const STORE = 'places-global';
const PLACES = 12;

/** Place updates and deletes (every key deleted now and then) mixed with readings that name a place. */
function randomSteps(seed: number, count: number, firstId = 0): Step[] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, (_, index): Step => {
    const place = `place-${Math.floor(random() * PLACES)}`;
    const roll = random();
    if (roll < 0.3) return { side: 'places', key: place, value: { site: `site-${Math.floor(random() * 100)}` } };
    if (roll < 0.42) return { side: 'places', key: place, value: null };
    return { side: 'readings', value: { id: firstId + index, place } };
  });
}

const joiner = (reading: Reading, place: Place | undefined) => ({ id: reading.id, site: place?.site ?? null });

/** The table after `steps`, and every join result, by brute force. */
function reference(steps: readonly Step[]): { table: Map<string, Place>; joined: unknown[] } {
  const table = new Map<string, Place>();
  const joined: unknown[] = [];
  for (const step of steps) {
    if (step.side === 'places') {
      if (step.value === null) table.delete(step.key);
      else table.set(step.key, step.value);
    } else joined.push(joiner(step.value, table.get(step.value.place)));
  }
  return { table, joined };
}

/** A logger that keeps what it is told. */
function recordingLogger(): Logger & { readonly lines: Array<{ level: string; message: string; fields: Record<string, unknown> }> } {
  const lines: Array<{ level: string; message: string; fields: Record<string, unknown> }> = [];
  const keep = (level: string) => (fields: Record<string, unknown>, message: string) => {
    lines.push({ level, message, fields });
  };
  return { lines, debug: () => undefined, info: keep('info'), warn: keep('warn'), error: keep('error') };
}

const quiet = { warn: () => undefined, info: () => undefined };

/** Counts the records the transport hands to global tables' consumers (their groups are named `<app>-global-…`). */
function countGlobalReads(transport: MemoryTransport): { read: number } {
  const counter = { read: 0 };
  const subscribe = transport.subscribe.bind(transport);
  transport.subscribe = (groupId, topics, listener) =>
    subscribe(groupId, topics, groupId.startsWith(`${APP_ID}-global-`) ? { ...listener, onRecords: (records) => ((counter.read += records.length), listener.onRecords(records)) } : listener);
  return counter;
}

interface Running {
  readonly app: App;
  readonly places: GlobalTable<string, Place>;
  readonly driver: TestDriver;
  readonly logger: ReturnType<typeof recordingLogger>;
  readonly reads: { read: number };
}

async function startApp(stateDir: string, transport: MemoryTransport, state: StateBackend = levelState({ dir: stateDir, logger: quiet })): Promise<Running> {
  const logger = recordingLogger();
  const app = createApp({ id: APP_ID, logger, idleTimeout: false, state });
  const places = app.globalTable<string, Place>('places');
  app
    .from<Reading>('readings')
    .leftJoin(places, (reading) => reading.place, joiner)
    .to('joined');
  const reads = countGlobalReads(transport);
  const driver = await TestDriver.start(app, { transport });
  return { app, places, driver, logger, reads };
}

async function feed(driver: TestDriver, steps: readonly Step[]): Promise<void> {
  for (const step of steps) {
    if (step.side === 'places') await driver.send('places', step.value, { key: step.key });
    else await driver.send('readings', step.value, { key: `r${step.value.id % 7}` });
  }
}

/** Writes place changes straight to the log, as another service would while the app is down. */
async function produceWhileDown(transport: MemoryTransport, changes: ReadonlyArray<Extract<Step, { side: 'places' }>>): Promise<void> {
  await transport.ensureTopics([{ name: 'places', partitions: transport.defaultPartitions }]);
  const partitions = (await transport.partitionCount('places'))!;
  const producer = await transport.createProducer();
  const encoder = new TextEncoder();
  await producer.send(
    changes.map(({ key, value }) => {
      const keyBytes = encoder.encode(key);
      return { topic: 'places', partition: partitionForKey(keyBytes, partitions), key: keyBytes, value: value === null ? null : encoder.encode(JSON.stringify(value)), timestamp: 0 };
    }),
  );
  await producer.close();
}

async function tableOf(running: Running): Promise<Map<string, Place>> {
  const rows = await running.app.store(running.places).range();
  return new Map(rows.map(({ key, value }) => [key, value]));
}

const placeSteps = (steps: readonly Step[]) => steps.filter((step): step is Extract<Step, { side: 'places' }> => step.side === 'places');
const warnings = (running: Running) => running.logger.lines.filter((line) => line.level === 'warn' || line.level === 'error');
const caughtUp = (running: Running) => running.logger.lines.find((line) => line.message === 'global table caught up')?.fields;

/** Opens the table's store partition in the state directory (the app must be stopped). */
async function withLocalCopy(stateDir: string, change: (store: Awaited<ReturnType<ReturnType<typeof levelState>['open']>>) => Promise<void>): Promise<void> {
  const backend = levelState({ dir: stateDir, logger: quiet });
  const store = await backend.open({ appId: APP_ID, storeName: `global/${STORE}`, partition: 0, changelogTopic: 'places' });
  await change(store);
  await backend.close();
}

/** `backend`, except that writes to global tables' stores fail after the first `good` ones (a full disk). */
function failingGlobalWrites(backend: StateBackend, good: number): StateBackend {
  let writes = 0;
  return {
    kind: backend.kind,
    durable: backend.durable,
    claim: (appId) => backend.claim!(appId),
    close: () => backend.close(),
    open: async (spec) => {
      const store = await backend.open(spec);
      if (!spec.storeName.startsWith('global/')) return store;
      const failing: PartitionStore = {
        entries: (range) => store.entries(range),
        get: (key) => store.get(key),
        write: (batch, offset) => (++writes > good ? Promise.reject(new Error('no space left on device')) : store.write(batch, offset)),
        checkpoint: () => store.checkpoint(),
        clear: () => store.clear(),
        close: () => store.close(),
      };
      return failing;
    },
  };
}

const encoder = new TextEncoder();
const CHECKPOINT_KEY = Uint8Array.of(0xff);
/** The stored key of a row with this string key. */
const rowKey = (key: string) => Uint8Array.of(0x00, ...encoder.encode(key));

// ---------------------------------------------------------------------------------------------
// Tests

describe('global tables in levelState', () => {
  it('a restart on the same state dir loads the table and reads only the tail written while it was down', async () => {
    const stateDir = await temporaryDir();
    const transport = new MemoryTransport({ defaultPartitions: 3 });
    const before = randomSteps(1, 400);
    const first = await startApp(stateDir, transport);
    await feed(first.driver, before);
    const sent = placeSteps(before).length;
    expect(first.reads.read).toBe(sent);
    await first.driver.stop();

    const tail = placeSteps(randomSteps(2, 60));
    await produceWhileDown(transport, tail);
    const second = await startApp(stateDir, transport);
    expect(second.reads.read, 'only the tail after the checkpoint is read').toBe(tail.length);
    expect(caughtUp(second)).toMatchObject({ read: tail.length, store: STORE });
    expect(await tableOf(second)).toEqual(reference([...before, ...tail]).table);
    expect(warnings(second)).toEqual([]);
    await second.driver.stop();

    // Nothing new: a third start reads nothing at all.
    const third = await startApp(stateDir, transport);
    expect(third.reads.read).toBe(0);
    expect(await tableOf(third)).toEqual(reference([...before, ...tail]).table);
    await third.driver.stop();
  });

  it('a table larger than one bulk write (16 MiB) restores whole, and a restart reads nothing', async () => {
    const stateDir = await temporaryDir();
    const transport = new MemoryTransport({ defaultPartitions: 4 });
    const padding = '.'.repeat(900);
    const rows = Array.from({ length: 25_000 }, (_, index): Extract<Step, { side: 'places' }> => ({ side: 'places', key: `place-${index}`, value: { site: `site-${index % 97}${padding}` } }));
    const deletes = rows.filter((_, index) => index % 10 === 3).map(({ key }): Extract<Step, { side: 'places' }> => ({ side: 'places', key, value: null }));
    await produceWhileDown(transport, [...rows, ...deletes]);
    const first = await startApp(stateDir, transport);
    expect(first.reads.read).toBe(rows.length + deletes.length);
    await first.driver.stop();
    const second = await startApp(stateDir, transport);
    expect(second.reads.read).toBe(0);
    expect(await tableOf(second)).toEqual(reference([...rows, ...deletes]).table);
    await second.driver.stop();
  });

  it('when writing the local copy fails, the table goes on in memory and the next start reads the tail after the last checkpoint written', async () => {
    const stateDir = await temporaryDir();
    const transport = new MemoryTransport({ defaultPartitions: 3 });
    const early = placeSteps(randomSteps(9, 40));
    await produceWhileDown(transport, early);
    const steps = randomSteps(10, 300);
    // The first write (the catch-up at start) lands; every later one fails.
    const first = await startApp(stateDir, transport, failingGlobalWrites(levelState({ dir: stateDir, logger: quiet }), 1));
    await feed(first.driver, steps);
    expect(await tableOf(first)).toEqual(reference([...early, ...steps]).table);
    expect(first.driver.read<{ id: number }>('joined').map((record) => record.value).sort((a, b) => a.id - b.id)).toEqual(reference([...early, ...steps]).joined);
    expect(warnings(first).map((line) => line.message)).toEqual(["a global table's local state failed; it is kept in memory only until the app restarts"]);
    await first.driver.stop();

    const second = await startApp(stateDir, transport);
    expect(second.reads.read).toBe(placeSteps(steps).length);
    expect(await tableOf(second)).toEqual(reference([...early, ...steps]).table);
    expect(warnings(second)).toEqual([]);
    await second.driver.stop();
  });

  it('rows a crash left ahead of the checkpoint are rewritten by the replay of the tail', async () => {
    const stateDir = await temporaryDir();
    const transport = new MemoryTransport({ defaultPartitions: 3 });
    const before = randomSteps(13, 300);
    const first = await startApp(stateDir, transport);
    await feed(first.driver, before);
    await first.driver.stop();
    const tail = placeSteps(randomSteps(14, 200));
    await produceWhileDown(transport, tail);
    // As if a chunk of a write had landed and the one with the checkpoint had not: the rows of the
    // first half of the tail, in the local copy, with the checkpoint still before the tail.
    await withLocalCopy(stateDir, (store) =>
      store.write(tail.slice(0, tail.length / 2).map(({ key, value }) => ({ key: rowKey(key), value: value === null ? null : encoder.encode(JSON.stringify(value)) }))),
    );

    const second = await startApp(stateDir, transport);
    expect(second.reads.read).toBe(tail.length);
    expect(await tableOf(second)).toEqual(reference([...before, ...tail]).table);
    expect(warnings(second)).toEqual([]);
    await second.driver.stop();
  });

  it('deletes survive restarts: a key deleted before the stop, or in the tail, stays deleted', async () => {
    const stateDir = await temporaryDir();
    const transport = new MemoryTransport({ defaultPartitions: 2 });
    const set = (key: string, site: string): Extract<Step, { side: 'places' }> => ({ side: 'places', key, value: { site } });
    const drop = (key: string): Extract<Step, { side: 'places' }> => ({ side: 'places', key, value: null });
    const first = await startApp(stateDir, transport);
    await feed(first.driver, [set('a', '1'), set('b', '2'), set('c', '3'), set('d', '4'), drop('a'), set('b', '5'), drop('c')]);
    await first.driver.stop();
    await produceWhileDown(transport, [drop('d'), set('e', '6'), set('a', '7'), drop('a')]);

    const second = await startApp(stateDir, transport);
    expect(second.reads.read).toBe(4);
    expect(await tableOf(second)).toEqual(new Map([['b', { site: '5' }], ['e', { site: '6' }]]));
    for (const key of ['a', 'c', 'd']) expect(await second.app.store(second.places).get(key), key).toBeUndefined();
    await second.driver.stop();

    // The deletes are in the local copy itself: no row is left for a deleted key.
    await withLocalCopy(stateDir, async (store) => {
      const keys: string[] = [];
      for await (const [key] of store.entries()) if (key[0] === 0x00) keys.push(new TextDecoder().decode(key.subarray(1)));
      expect(keys.sort()).toEqual(['b', 'e']);
    });
  });

  it('a missing checkpoint makes the table read the topic whole again, and rows it left behind go', async () => {
    const stateDir = await temporaryDir();
    const transport = new MemoryTransport({ defaultPartitions: 3 });
    const steps = randomSteps(3, 300);
    const first = await startApp(stateDir, transport);
    await feed(first.driver, steps);
    await first.driver.stop();
    await withLocalCopy(stateDir, async (store) => {
      await store.write([
        { key: CHECKPOINT_KEY, value: null },
        { key: rowKey('ghost'), value: encoder.encode(JSON.stringify({ site: 'nowhere' })) },
      ]);
    });

    const second = await startApp(stateDir, transport);
    expect(second.reads.read).toBe(placeSteps(steps).length);
    expect(await tableOf(second)).toEqual(reference(steps).table);
    expect(warnings(second).map((line) => line.fields.reason)).toEqual(['rows without a checkpoint']);
    await second.driver.stop();

    // The rebuilt copy has a checkpoint again.
    const third = await startApp(stateDir, transport);
    expect(third.reads.read).toBe(0);
    expect(await tableOf(third)).toEqual(reference(steps).table);
    await third.driver.stop();
  });

  for (const [what, damage] of [
    ['an unreadable checkpoint', [{ key: CHECKPOINT_KEY, value: encoder.encode('{"topic":"places","next":[3,') }]],
    ['a checkpoint of another topic', [{ key: CHECKPOINT_KEY, value: encoder.encode('{"topic":"sites","next":[0,0,0]}') }]],
    ['a row the value serde cannot read', [{ key: rowKey('place-1'), value: Uint8Array.of(0x7b, 0xff) }]],
    ['a key of no known kind', [{ key: Uint8Array.of(0x07, 1, 2), value: Uint8Array.of(1) }]],
  ] as const) {
    it(`${what} makes the table read the topic whole again, with a warning`, async () => {
      const stateDir = await temporaryDir();
      const transport = new MemoryTransport({ defaultPartitions: 3 });
      const steps = randomSteps(4, 200);
      const first = await startApp(stateDir, transport);
      await feed(first.driver, steps);
      await first.driver.stop();
      await withLocalCopy(stateDir, (store) => store.write(damage));

      const second = await startApp(stateDir, transport);
      expect(second.reads.read).toBe(placeSteps(steps).length);
      expect(await tableOf(second)).toEqual(reference(steps).table);
      expect(warnings(second)).toHaveLength(1);
      expect(warnings(second)[0]!.message).toMatch(/local state cannot be used; reading its topic from the start/);
      await second.driver.stop();
    });
  }

  it('a topic recreated with fewer records than the checkpoint (offsets went backwards) is read whole', async () => {
    const stateDir = await temporaryDir();
    const steps = randomSteps(5, 300);
    const first = await startApp(stateDir, new MemoryTransport({ defaultPartitions: 3 }));
    await feed(first.driver, steps);
    await first.driver.stop();

    const recreated = new MemoryTransport({ defaultPartitions: 3 });
    const fresh = placeSteps(randomSteps(6, 30));
    await produceWhileDown(recreated, fresh);
    const second = await startApp(stateDir, recreated);
    expect(second.reads.read).toBe(fresh.length);
    expect(await tableOf(second)).toEqual(reference(fresh).table);
    expect(warnings(second)[0]!.fields.reason).toMatch(/the topic was recreated/);
    await second.driver.stop();
  });

  it('records after the checkpoint deleted from the log (the log start moved past it) make the table read what is left whole', async () => {
    const stateDir = await temporaryDir();
    const transport = new MemoryTransport({ defaultPartitions: 1 });
    const steps = randomSteps(7, 200);
    const first = await startApp(stateDir, transport);
    await feed(first.driver, steps);
    await first.driver.stop();
    const tail = placeSteps(randomSteps(8, 80));
    await produceWhileDown(transport, tail);
    // Retention took everything before the last 20 records of the tail, the checkpoint's offset with it.
    const end = transport.logEnd('places', 0);
    await transport.deleteRecords({ topic: 'places', partition: 0 }, end - 20);

    const second = await startApp(stateDir, transport);
    expect(second.reads.read).toBe(20);
    expect(await tableOf(second)).toEqual(reference(tail.slice(-20)).table);
    expect(warnings(second)[0]!.fields.reason).toMatch(/partition 0 starts at \d+, after the checkpoint's \d+/);
    await second.driver.stop();
  });

  it('join results match a brute-force reference across restarts, on levelTransport and levelState in one dir', async () => {
    for (const seed of [11, 12]) {
      const dir = await temporaryDir();
      const steps = randomSteps(seed, 900);
      const parts = [steps.slice(0, 300), steps.slice(300, 650), steps.slice(650)];
      let previous: Running | undefined;
      for (const [index, part] of parts.entries()) {
        const transport = levelTransport({ dir, defaultPartitions: 3, logger: quiet });
        const running = await startApp(dir, transport);
        // Before the first reading of this run: the table is whole, and came from disk.
        const seen = steps.slice(0, parts.slice(0, index).reduce((sum, earlier) => sum + earlier.length, 0));
        expect(await tableOf(running), `seed ${seed}, run ${index}`).toEqual(reference(seen).table);
        if (previous) expect(running.reads.read, `seed ${seed}, run ${index}`).toBe(0);
        await feed(running.driver, part);
        const joined = running.driver.read<{ id: number }>('joined').map((record) => record.value);
        expect(joined.sort((a, b) => a.id - b.id), `seed ${seed}, run ${index}`).toEqual(reference(steps.slice(0, seen.length + part.length)).joined);
        expect(warnings(running)).toEqual([]);
        await running.driver.stop();
        previous = running;
      }
    }
  });
});
