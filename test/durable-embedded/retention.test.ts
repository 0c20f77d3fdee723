/**
 * README "Durable embedded mode", Bounded: "Each partition of an ordinary topic keeps `retention`
 * (any of records, bytes, age)"; changelogs compacted on disk, tombstones kept
 * `tombstoneRetention`. A reader that falls behind (a new group) sees what is kept, nothing more —
 * also across a restart, when what every group committed stays on disk only.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createApp, silentLogger } from '@eddy/core';
import { levelState, levelTransport } from '@eddy/state';
import { collector, prng, quiet, tempDir, waitFor, sleep, type Seen } from './helpers.ts';

interface N { i: number }

/** What a brand-new group reads of `topic` (the whole partition, as kept). */
async function newGroupReads(dir: string, topic: string, options: Parameters<typeof levelTransport>[0]['retention'], group: string): Promise<number[]> {
  const seen: Seen<N>[] = [];
  const app = collector<N>(group, topic, levelTransport({ dir, logger: quiet, retention: options }), seen);
  await app.start();
  await sleep(300);
  await app.stop();
  return seen.map((s) => s.value.i);
}

describe('retention of an ordinary topic, seen by a reader that falls behind', () => {
  it('retention.records: a new group reads the last N records, before and after a restart of the process', async () => {
    const dir = tempDir();
    const retention = { records: 100 };
    const reader: Seen<N>[] = [];
    {
      const app = collector<N>('reader', 'events', levelTransport({ dir, logger: quiet, retention }), reader);
      await app.start();
      for (let round = 0; round < 3; round++) {
        await app.sendBatch('events', Array.from({ length: 100 }, (_, j) => ({ value: { i: round * 100 + j } })));
        await waitFor(() => reader.length === (round + 1) * 100, 'the reader to keep up');
      }
      await sleep(150); // committed
      await app.stop();
    }
    expect(reader.map((s) => s.value.i)).toEqual([...Array(300).keys()]);
    expect(await newGroupReads(dir, 'events', retention, 'late-1')).toEqual([...Array(100).keys()].map((j) => 200 + j));
    // After the restart every record the reader committed is on disk only; 100 more come in.
    {
      const app = collector<N>('reader', 'events', levelTransport({ dir, logger: quiet, retention }), reader);
      await app.start();
      await app.sendBatch('events', Array.from({ length: 100 }, (_, j) => ({ value: { i: 300 + j } })));
      await waitFor(() => reader.length === 400, 'the reader to read the new ones');
      await sleep(150);
      await app.stop();
    }
    expect(reader.map((s) => s.value.i), 'the reader got each record once').toEqual([...Array(400).keys()]);
    const kept = await newGroupReads(dir, 'events', retention, 'late-2');
    expect(kept.length, `a partition keeps retention.records = 100, a new group read ${kept.length} (${kept[0]}..${kept[kept.length - 1]})`).toBeLessThanOrEqual(100);
    expect(kept).toEqual([...Array(100).keys()].map((j) => 300 + j));
  });

  it('retention.bytes: a new group after a restart reads at most the bytes kept', async () => {
    const dir = tempDir();
    const retention = { bytes: 20_000 };
    const pad = 'x'.repeat(180);
    const reader: Seen<N & { pad: string }>[] = [];
    for (let run = 0; run < 3; run++) {
      const app = collector<N & { pad: string }>('reader', 'events', levelTransport({ dir, logger: quiet, retention }), reader);
      await app.start();
      // 50 at a time (~10 kB), each read before the next: the reader misses nothing to retention.
      // The last run sends only 50 after the restart: memory holds less than the limit, the disk the rest.
      for (let part = 0; part < (run === 2 ? 1 : 4); part++) {
        await app.sendBatch('events', Array.from({ length: 50 }, (_, j) => ({ value: { i: run * 200 + part * 50 + j, pad } })));
        await waitFor(() => reader.length === run * 200 + (part + 1) * 50, 'the reader');
      }
      await sleep(150);
      await app.stop();
    }
    expect(reader.map((s) => s.value.i)).toEqual([...Array(450).keys()]);
    const kept = await newGroupReads(dir, 'events', retention, 'late');
    // Each value is ~200 bytes of JSON: 20 kB holds about 100 of them.
    expect(kept.length, `a new group read ${kept.length} records of ~200 bytes with retention.bytes 20000`).toBeLessThanOrEqual(105);
    expect(kept).toEqual([...Array(kept.length).keys()].map((j) => 450 - kept.length + j));
  });

  it('retention.age: records older than the age are not read by a new group (across a restart)', async () => {
    const dir = tempDir();
    const retention = { age: '400ms' };
    const reader: Seen<N>[] = [];
    {
      const app = collector<N>('reader', 'events', levelTransport({ dir, logger: quiet, retention }), reader);
      await app.start();
      await app.sendBatch('events', Array.from({ length: 50 }, (_, j) => ({ value: { i: j } })));
      await waitFor(() => reader.length === 50, 'reader');
      await sleep(150);
      await app.stop();
    }
    await sleep(500);
    {
      const app = collector<N>('reader', 'events', levelTransport({ dir, logger: quiet, retention }), reader);
      await app.start();
      await app.sendBatch('events', Array.from({ length: 50 }, (_, j) => ({ value: { i: 50 + j } })));
      await waitFor(() => reader.length === 100, 'reader');
      await sleep(150);
      await app.stop();
    }
    const kept = await newGroupReads(dir, 'events', retention, 'late');
    expect(kept).toEqual([...Array(50).keys()].map((j) => 50 + j));
  });
});

describe('input records that expired before the app read them', () => {
  interface Reading { sensor: string; id: number }
  const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

  // A stream–table join waits for a table partition the log says it is behind on: records it
  // deleted unread once left the reader behind for good, and the join waited forever (session 18).
  for (const restarted of [false, true]) {
    it(`a stream–table join goes on past table records that expired while it was down, and says so (${restarted ? 'the app ran before' : 'a new app'})`, async () => {
      const dir = tempDir();
      const retention = { age: '400ms' };
      const warnings: string[] = [];
      const build = (transport: ReturnType<typeof levelTransport>) => {
        const logger = { ...silentLogger, warn: (_fields: unknown, message: string) => void warnings.push(message) };
        const app = createApp({ id: 'expired', transport, state: levelState({ dir, logger: quiet }), idleTimeout: false, commitInterval: '50ms', maxInputWait: '200ms', stallTimeout: '1s', logger });
        const sensors = app.table<string, { scale: number }>('sensors');
        app
          .from<Reading>('readings')
          .keyBy((reading) => reading.sensor)
          .leftJoin(sensors, (reading, sensor) => ({ id: reading.id, scale: sensor?.scale ?? null }))
          .to('out');
        return app;
      };
      let transport = levelTransport({ dir, logger: quiet, retention });
      if (restarted) {
        const app = build(transport);
        await app.start();
        await app.send('sensors', { scale: 1 }, { key: 's1' });
        await app.send('readings', { sensor: 's1', id: 0 }, { key: 's1' });
        await waitFor(() => transport.records('out').length === 1, 'the first result');
        await sleep(150); // committed
        await app.stop();
      }
      // Table updates another service writes while the app is down, which expire before it starts.
      await transport.connect();
      const producer = await transport.createProducer();
      await producer.send([2, 3, 4].map((scale) => ({ topic: 'sensors', partition: 0, key: encode('s1'), value: encode({ scale }), timestamp: Date.now(), headers: {} })));
      await producer.close();
      await transport.close();
      await sleep(600);

      transport = levelTransport({ dir, logger: quiet, retention });
      const app = build(transport);
      await app.start();
      try {
        await app.send('readings', { sensor: 's1', id: 1 }, { key: 's1' });
        await waitFor(() => transport.records('out').length > 0 && JSON.parse(new TextDecoder().decode(transport.records('out').at(-1)!.value!)).id === 1, 'the reading to come out');
        const last = JSON.parse(new TextDecoder().decode(transport.records('out').at(-1)!.value!));
        // The table as the app last read it: the expired updates never reached it. Lost to it,
        // if it had read up to them; a new app starts where the log starts (as on Kafka).
        expect(last).toEqual({ id: 1, scale: restarted ? 1 : null });
        expect(app.metrics().recordsLostToRetention).toBe(restarted ? 3 : 0);
        expect(app.metrics().inputWaitsExpired).toBe(0);
        expect(warnings.includes('records were deleted before they were read; reading on after them')).toBe(restarted);
        await sleep(1_200);
        expect(app.health().status).toBe('ok');
      } finally {
        await app.stop();
        await transport.close();
      }
    });
  }

  it('an app down while retention takes some of its unread input reads on from the first record kept, and counts the rest', async () => {
    const dir = tempDir();
    const retention = { records: 5 };
    const seen: Seen<N>[] = [];
    {
      const app = collector<N>('behind', 'events', levelTransport({ dir, logger: quiet, retention }), seen);
      await app.start();
      await app.sendBatch('events', [0, 1, 2].map((i) => ({ value: { i } })));
      await waitFor(() => seen.length === 3, 'the first three');
      await sleep(150); // committed
      await app.stop();
    }
    {
      // Ten more while the app is down: the log keeps the last five (offsets 8–12).
      const transport = levelTransport({ dir, logger: quiet, retention });
      await transport.connect();
      const producer = await transport.createProducer();
      await producer.send(Array.from({ length: 10 }, (_, j) => ({ topic: 'events', partition: 0, key: null, value: encode({ i: 3 + j }), timestamp: Date.now(), headers: {} })));
      await producer.close();
      await transport.close();
    }
    const app = collector<N>('behind', 'events', levelTransport({ dir, logger: quiet, retention }), seen);
    await app.start();
    try {
      await waitFor(() => seen.length === 8, 'the records kept');
      expect(seen.map((s) => s.value.i)).toEqual([0, 1, 2, 8, 9, 10, 11, 12]);
      expect(app.metrics().recordsLostToRetention).toBe(5);
    } finally {
      await app.stop();
    }
  });

  it('a windowed join goes on when the other side\'s records expired before it read them', async () => {
    const dir = tempDir();
    const retention = { age: '400ms' };
    let transport = levelTransport({ dir, logger: quiet, retention });
    await transport.connect();
    const producer = await transport.createProducer();
    await producer.send([1, 2, 3].map((id) => ({ topic: 'rights', partition: 0, key: encode(`r${id}`), value: encode({ k: 'k1', id }), timestamp: Date.now(), headers: {} })));
    await producer.close();
    await transport.close();
    await sleep(600);
    transport = levelTransport({ dir, logger: quiet, retention });
    const app = createApp({ id: 'expired-w', transport, state: levelState({ dir, logger: quiet }), idleTimeout: '200ms', commitInterval: '50ms', maxInputWait: '200ms', stallTimeout: '1s', logger: silentLogger });
    const rights = app.from<{ k: string; id: number }>('rights').keyBy((e) => e.k, { name: 'r' });
    app
      .from<{ k: string; id: number }>('lefts')
      .keyBy((e) => e.k, { name: 'l' })
      .leftJoin(rights, (left, right) => ({ l: left.id, r: right?.id ?? null }), { within: 10, grace: 0 })
      .to('pairs');
    await app.start();
    // The output expires too (400 ms): kept here as it comes.
    const pairs = new Map<number, unknown>();
    const gather = setInterval(() => {
      for (const record of transport.records('pairs')) pairs.set(record.offset, JSON.parse(new TextDecoder().decode(record.value!)));
    }, 20);
    try {
      for (let id = 0; id < 20; id++) {
        await app.send('lefts', { k: 'k1', id }, { key: 'x' });
        await sleep(40);
      }
      // Each left record's window closes by stream time (the next one) or, for the last, the idle timeout.
      await waitFor(() => pairs.size === 20, 'every left record, unpaired');
      expect([...pairs.values()]).toEqual(Array.from({ length: 20 }, (_, l) => ({ l, r: null })));
      expect(app.metrics().recordsLostToRetention, 'a new app loses nothing: it starts where the log starts').toBe(0);
      expect(app.health().status).toBe('ok');
    } finally {
      clearInterval(gather);
      await app.stop();
      await transport.close();
    }
  });
});

describe('compacted changelogs on disk restore the latest value per key; deletes stay deleted', () => {
  it('a table with deletes, its state dir removed between runs, restores the reference from the changelog (tombstones expired or not)', async () => {
    const dir = tempDir();
    const random = prng(99);
    const reference = new Map<string, number>();
    const options = { dir, logger: quiet, tombstoneRetention: '100ms' };
    const make = () => {
      const app = createApp({ id: 'tbl', transport: levelTransport(options), state: levelState({ dir, logger: quiet }), idleTimeout: false, commitInterval: '30ms', logger: silentLogger });
      const table = app.table<string, number>('profiles', { name: 'profiles' });
      return { app, table };
    };
    let seq = 0;
    for (let run = 0; run < 4; run++) {
      const { app, table } = make();
      await app.start();
      if (run > 0) expect(app.metrics().restoredRecords, `run ${run}: the state dir was removed, so the table is restored`).toBeGreaterThan(0);
      // Everything the reference holds is there, deleted keys are not.
      for (let k = 0; k < 60; k++) expect(await app.store(table).get(`k${k}`), `run ${run} k${k}`).toBe(reference.get(`k${k}`));
      for (let batch = 0; batch < 6; batch++) {
        const records = Array.from({ length: 400 }, () => {
          const key = `k${Math.floor(random() * 60)}`;
          const value = random() < 0.25 ? null : seq++;
          if (value === null) reference.delete(key);
          else reference.set(key, value);
          return { key, value };
        });
        await app.sendBatch('profiles', records);
        await sleep(40);
      }
      await waitFor(async () => {
        for (let k = 0; k < 60; k++) if ((await app.store(table).get(`k${k}`)) !== reference.get(`k${k}`)) return false;
        return true;
      }, 'the table to match the reference');
      await sleep(150);
      await app.stop();
      rmSync(join(dir, 'tbl'), { recursive: true, force: true });
      await sleep(150); // older than tombstoneRetention before the next run's compactions
    }
  });
});
