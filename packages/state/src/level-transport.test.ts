/**
 * The durable embedded broker on real LevelDB: what it keeps across a close and a new instance on
 * the same dir (records with their timestamps and headers, offsets, committed offsets, topics,
 * ends), what it drops (retention, compaction, deleted records) on disk too, one process per dir,
 * and a damaged log set aside.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConsumerListener, IncomingRecord, OutgoingRecord, TransportConsumer } from '@eddy/core';
import { VirtualClock } from '@eddy/core/testing';
import { levelTransport, type LevelTransportOptions } from './index.js';

const directories: string[] = [];
afterAll(async () => {
  await Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function scratch(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'eddy-level-transport-'));
  directories.push(dir);
  return dir;
}

const quiet = { warn: () => undefined, info: () => undefined };
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | null) => (value === null ? null : new TextDecoder().decode(value));
const record = (topic: string, partition: number, value: string | null, key: string | null = null, extra: Partial<OutgoingRecord> = {}): OutgoingRecord => ({
  topic,
  partition,
  key: key === null ? null : bytes(key),
  value: value === null ? null : bytes(value),
  timestamp: 1_000,
  ...extra,
});

/** Opens a broker on `dir`, runs `work` with it, and closes it. */
async function withBroker<T>(dir: string, work: (broker: ReturnType<typeof levelTransport>) => Promise<T>, options: Partial<LevelTransportOptions> = {}): Promise<T> {
  const broker = levelTransport({ dir, logger: quiet, ...options });
  await broker.connect();
  try {
    return await work(broker);
  } finally {
    await broker.close();
  }
}

async function readAll(broker: ReturnType<typeof levelTransport>, topic: string, partition = 0): Promise<IncomingRecord[]> {
  const out: IncomingRecord[] = [];
  for await (const batch of broker.readPartition({ topic, partition }, 0)) out.push(...batch);
  return out;
}

/** Joins `groupId` and collects what it is delivered until `count` records arrived. */
async function consume(broker: ReturnType<typeof levelTransport>, groupId: string, topics: string[], count: number): Promise<{ records: IncomingRecord[]; consumer: TransportConsumer }> {
  const records: IncomingRecord[] = [];
  let done!: () => void;
  const enough = new Promise<void>((resolve) => (done = resolve));
  const listener: ConsumerListener = {
    onAssign: async () => undefined,
    onRevoke: async () => undefined,
    onRecords: async (batch) => {
      records.push(...batch);
      if (records.length >= count) done();
    },
  };
  const consumer = await broker.subscribe(groupId, topics, listener);
  if (count > 0) await enough;
  return { records, consumer };
}

describe('levelTransport keeps its log across restarts', () => {
  it('keeps records (key, value, timestamp, headers), offsets, topics and committed offsets', async () => {
    const dir = await scratch();
    await withBroker(dir, async (broker) => {
      await broker.ensureTopics([{ name: 'in', partitions: 2 }]);
      const producer = await broker.createProducer();
      const offsets = await producer.send([
        record('in', 0, 'a', 'k1', { timestamp: 111, headers: { origin: 'x:1:0', note: 'é' } }),
        record('in', 1, null, 'k2', { timestamp: 222 }),
        record('in', 0, 'b', null, { timestamp: 333 }),
      ]);
      expect(offsets).toEqual(expect.arrayContaining([{ topic: 'in', partition: 0, offset: 1 }, { topic: 'in', partition: 1, offset: 0 }]));
      const { consumer } = await consume(broker, 'group', ['in'], 3);
      await consumer.commit([{ topic: 'in', partition: 0, offset: 2 }]);
      await consumer.close();
    });
    await withBroker(dir, async (broker) => {
      expect(await broker.partitionCount('in')).toBe(2);
      const zero = await readAll(broker, 'in', 0);
      expect(zero.map((kept) => [kept.offset, text(kept.key), text(kept.value), kept.timestamp, kept.headers])).toEqual([
        [0, 'k1', 'a', 111, { origin: 'x:1:0', note: 'é' }],
        [1, null, 'b', 333, {}],
      ]);
      expect((await readAll(broker, 'in', 1)).map((kept) => [text(kept.key), kept.value, kept.timestamp])).toEqual([['k2', null, 222]]);
      // The group resumes where it committed; new records continue the offsets.
      const producer = await broker.createProducer();
      await producer.send([record('in', 0, 'c')]);
      const { records, consumer } = await consume(broker, 'group', ['in'], 2);
      expect(records.map((kept) => `${kept.partition}:${kept.offset}:${text(kept.value)}`).sort()).toEqual(['0:2:c', '1:0:null']);
      expect(await consumer.committed({ topic: 'in', partition: 0 })).toBe(2);
      await consumer.close();
    });
  });

  it('keeps a partition’s end when its records are deleted, and deleted records stay deleted', async () => {
    const dir = await scratch();
    await withBroker(dir, async (broker) => {
      await broker.ensureTopics([{ name: 'rep', partitions: 1, unlimitedRetention: true }]);
      const producer = await broker.createProducer();
      await producer.send(Array.from({ length: 50 }, (_, index) => record('rep', 0, String(index))));
      await broker.deleteRecords({ topic: 'rep', partition: 0 }, 50);
    });
    await withBroker(dir, async (broker) => {
      expect(await readAll(broker, 'rep')).toEqual([]);
      expect(await broker.endOffset({ topic: 'rep', partition: 0 })).toBe(50);
      const producer = await broker.createProducer();
      expect(await producer.send([record('rep', 0, 'next')])).toEqual([{ topic: 'rep', partition: 0, offset: 50 }]);
    });
  });

  it('keeps records deleted from the middle of a write deleted (the partition’s start)', async () => {
    const dir = await scratch();
    await withBroker(dir, async (broker) => {
      const producer = await broker.createProducer();
      await producer.send(Array.from({ length: 10 }, (_, index) => record('mid', 0, String(index))));
      await broker.deleteRecords({ topic: 'mid', partition: 0 }, 4);
      expect((await readAll(broker, 'mid')).map((kept) => kept.offset)).toEqual([4, 5, 6, 7, 8, 9]);
    });
    await withBroker(dir, async (broker) => {
      expect((await readAll(broker, 'mid')).map((kept) => text(kept.value))).toEqual(['4', '5', '6', '7', '8', '9']);
      // A new group starts where the log starts now.
      const { records, consumer } = await consume(broker, 'late-comer', ['mid'], 6);
      expect(records.map((kept) => kept.offset)).toEqual([4, 5, 6, 7, 8, 9]);
      await consumer.close();
    });
  });

  it('keeps what every group has committed on disk only, and reads it back for a reader that goes back', async () => {
    const dir = await scratch();
    await withBroker(dir, async (broker) => {
      const producer = await broker.createProducer();
      for (let round = 0; round < 10; round++) await producer.send(Array.from({ length: 10 }, (_, index) => record('in', 0, String(round * 10 + index))));
      const { consumer } = await consume(broker, 'done', ['in'], 100);
      await consumer.commit([{ topic: 'in', partition: 0, offset: 95 }]);
      await consumer.close();
    });
    await withBroker(dir, async (broker) => {
      // In memory: only what the group has yet to read.
      expect(broker.records('in').map((kept) => kept.offset)).toEqual([95, 96, 97, 98, 99]);
      expect((await readAll(broker, 'in')).map((kept) => kept.offset)).toEqual([...Array(100).keys()]);
      const producer = await broker.createProducer();
      await producer.send([record('in', 0, 'new')]);
      const fresh = await consume(broker, 'fresh', ['in'], 101);
      expect(fresh.records.map((kept) => kept.offset)).toEqual([...Array(101).keys()]);
      expect(text(fresh.records[42]!.value)).toBe('42');
      const done = await consume(broker, 'done', ['in'], 6);
      expect(done.records.map((kept) => kept.offset)).toEqual([95, 96, 97, 98, 99, 100]);
      // Moved back to an old commit: read from disk again.
      done.consumer.seek({ topic: 'in', partition: 0, offset: 10 });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(done.records.slice(6, 9).map((kept) => kept.offset)).toEqual([10, 11, 12]);
      await fresh.consumer.close();
      await done.consumer.close();
    });
  });

  it('compacts changelogs on disk too, and drops tombstones once older than tombstoneRetention', async () => {
    const dir = await scratch();
    const clock = new VirtualClock(1_000_000);
    await withBroker(
      dir,
      async (broker) => {
        await broker.ensureTopics([{ name: 'log', partitions: 1, compacted: true }]);
        const producer = await broker.createProducer();
        for (let round = 0; round < 30; round++) {
          await producer.send(Array.from({ length: 100 }, (_, index) => record('log', 0, index === 0 ? null : `${round}`, `k${index}`)));
          clock.runUntil(clock.now() + 1_000);
        }
      },
      { clock, tombstoneRetention: '10s' },
    );
    await withBroker(dir, async (broker) => {
      const kept = await readAll(broker, 'log');
      expect(kept.length).toBeLessThan(1_100);
      const latest = new Map(kept.map((entry) => [text(entry.key), text(entry.value)]));
      expect(latest.get('k99')).toBe('29');
      // k0's tombstones older than 10 s are gone; the latest ones are still there.
      expect(kept.filter((entry) => text(entry.key) === 'k0').length).toBeLessThanOrEqual(1 + 10);
      expect(await broker.endOffset({ topic: 'log', partition: 0 })).toBe(3_000);
    });
  });

  it('keeps ordinary topics within their retention by records, bytes and age, on disk too', async () => {
    const keeps = async (retention: LevelTransportOptions['retention'], value: string) => {
      const dir = await scratch();
      const clock = new VirtualClock(0);
      await withBroker(
        dir,
        async (broker) => {
          const producer = await broker.createProducer();
          for (let index = 0; index < 300; index++) {
            await producer.send([record('t', 0, value)]);
            clock.runUntil(clock.now() + 1_000);
          }
        },
        { clock, retention },
      );
      return withBroker(dir, async (broker) => (await readAll(broker, 't')).map((kept) => kept.offset), { clock, retention });
    };
    const upTo = (first: number) => [...Array(300 - first).keys()].map((index) => index + first);
    expect(await keeps({ records: 100 }, 'x')).toEqual(upTo(200));
    expect(await keeps({ bytes: 1_000 }, 'x'.repeat(100))).toEqual(upTo(290));
    // Written one a second: a minute of them (the last written at 299 s, read back at 300 s).
    expect(await keeps({ age: '60s' }, 'x')).toEqual(upTo(240));
  });

  it('answers many sends at once with few writes, each send once its records are written', async () => {
    const dir = await scratch();
    await withBroker(dir, async (broker) => {
      const producer = await broker.createProducer();
      const sends = Array.from({ length: 2_000 }, (_, index) => producer.send([record('burst', 0, String(index))]));
      const acknowledged = await Promise.all(sends);
      expect(acknowledged.map((offsets) => offsets[0]!.offset)).toEqual([...Array(2_000).keys()]);
    });
    await withBroker(dir, async (broker) => expect((await readAll(broker, 'burst')).length).toBe(2_000));
  });
});

describe('one process per dir', () => {
  it('refuses a second broker on the same dir with TRANSPORT_LOCKED, in this process and in another', async () => {
    const dir = await scratch();
    const first = levelTransport({ dir, logger: quiet });
    await first.connect();
    try {
      const second = levelTransport({ dir, logger: quiet });
      await expect(second.connect()).rejects.toMatchObject({ code: 'TRANSPORT_LOCKED', message: expect.stringContaining(join(dir, '@broker')) });
      const child = spawn(process.execPath, ['--input-type=module', '-e', `
        const { levelTransport } = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});
        try { await levelTransport({ dir: ${JSON.stringify(dir)}, logger: { warn() {}, info() {} } }).connect(); console.log('opened'); }
        catch (error) { console.log(error.code); }
      `]);
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      await new Promise((resolve) => child.once('exit', resolve));
      expect(out.trim()).toBe('TRANSPORT_LOCKED');
    } finally {
      await first.close();
    }
    // Released: the next one opens.
    await withBroker(dir, async (broker) => expect(await broker.partitionCount('nothing')).toBeUndefined());
  });

  it('moves a damaged log aside with a warning and starts empty, never a crash', async () => {
    const dir = await scratch();
    await withBroker(dir, async (broker) => {
      const producer = await broker.createProducer();
      await producer.send([record('t', 0, 'kept?')]);
    });
    await writeFile(join(dir, '@broker', 'CURRENT'), 'garbage\n');
    const warnings: string[] = [];
    const broker = levelTransport({ dir, logger: { warn: (_fields, message) => warnings.push(message), info: () => undefined } });
    await broker.connect();
    expect(await broker.partitionCount('t')).toBeUndefined();
    await broker.close();
    expect(warnings.join('\n')).toMatch(/Eddy broker log at .*@broker is damaged .* moved it to .*@broker\.corrupt-1 and starting empty/);
    expect(await readdir(dir)).toEqual(expect.arrayContaining(['@broker', '@broker.corrupt-1']));
  });

  it('sets aside a log with one bit of a record flipped in a table file, which LevelDB reads back without an error', async () => {
    const dir = await scratch();
    await withBroker(dir, async (broker) => {
      const producer = await broker.createProducer();
      await producer.send(Array.from({ length: 50 }, (_, index) => record('t', 0, `reading ${1000 + index}`)));
    });
    // Opened again: LevelDB moves its write-ahead log into a table file.
    await withBroker(dir, async () => undefined);
    const folder = join(dir, '@broker');
    const [table] = (await readdir(folder)).filter((name) => name.endsWith('.ldb'));
    const bytes = await readFile(join(folder, table!));
    const at = bytes.indexOf('reading 1');
    expect(at, 'test setup: a value stored literally').toBeGreaterThan(0);
    bytes[at + 8]! ^= 0x01; // 'reading 1…' reads 'reading 0…'
    await writeFile(join(folder, table!), bytes);

    const warnings: string[] = [];
    await withBroker(dir, async (broker) => expect(await broker.partitionCount('t')).toBeUndefined(), { logger: { warn: (_fields, message) => warnings.push(message), info: () => undefined } });
    expect(warnings.join('\n')).toMatch(/Eddy broker log at .*@broker is damaged \(table file \d+\.ldb: the block at offset \d+ \(\d+ bytes\) does not match its checksum\)/);
  });
});
