/**
 * Review tests: what the host writes with `app.send` / `app.sendBatch` reaches Kafka exactly
 * (keys of every kind, null keys, tombstones, headers, old timestamps, values near
 * `max.message.bytes`), flows through a pipeline and comes out as the README says; `metrics()`
 * counts it (`recordsIn`, `lag` back to 0).
 */
import { createApp, partitionForKey, serdes } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { ConfigResourceTypes } from '@platformatic/kafka';
import { afterAll, expect, it } from 'vitest';
import { describeKafka, uniqueName } from '../kafka/broker.ts';
import { allCommitted, createTopics, deleteAppTopics, gatherTopic, produce, recordingLogger, sleep, testAdmin, waitFor, type Gathered } from '../kafka/helpers.ts';

const enc = (text: string) => new TextEncoder().encode(text);

describeKafka('review: host input and pass-through delivery on Kafka', (brokers) => {
  const admin = testAdmin(brokers);
  afterAll(() => admin.close());

  it('sendBatch writes keys (string, number, object, null), values (incl. null = tombstone) and headers exactly; a map().to() copies them with the keys partitioned by murmur2', async () => {
    const id = uniqueName('rv-deliv');
    const [input, output] = [`${id}-in`, `${id}-out`];
    await createTopics(brokers, [{ name: input, partitions: 3 }]);
    const logger = recordingLogger();
    const app = createApp({ id, transport: kafkaTransport({ brokers, logger, defaultPartitions: 5 }), idleTimeout: false, commitInterval: '200ms', logger });
    app
      .from<{ n: number; text?: string } | null>(input)
      .map((value) => value)
      .to(output);
    const old = Date.now() - 30 * 24 * 3_600_000;
    const sent = [
      { key: 'k-string', value: { n: 0, text: 'ünïcödé ✓ \u0000 "quoted"' }, timestamp: old, headers: { trace: 'abc', empty: '' } },
      { key: 42 as unknown as string, value: { n: 1 } },
      { key: { a: 1 } as unknown as string, value: { n: 2 } },
      { key: null, value: { n: 3 }, headers: { h: 'ünï' } },
      { key: 'tomb', value: null },
      { key: '', value: { n: 5 } },
    ];
    const inRead = await gatherTopic(brokers, input);
    const outRead = await gatherTopic(brokers, output);
    try {
      await app.start();
      await app.sendBatch(input, sent);
      await waitFor('the input records', () => inRead.records.length >= sent.length, { timeoutMs: 15_000 });
      const byN = (records: readonly Gathered[]) => [...records].sort((a, b) => (a.value === undefined ? 99 : JSON.parse(a.value).n) - (b.value === undefined ? 99 : JSON.parse(b.value).n));
      const got = byN(inRead.records);
      expect(got.map((r) => r.key)).toEqual(['k-string', '42', '{"a":1}', undefined, '', 'tomb']);
      expect(got.map((r) => r.value)).toEqual([JSON.stringify(sent[0]!.value), '{"n":1}', '{"n":2}', '{"n":3}', '{"n":5}', undefined]);
      expect(got[0]!.headers).toEqual({ trace: 'abc', empty: '' });
      expect(got[3]!.headers).toEqual({ h: 'ünï' });
      expect(got[0]!.timestamp).toBe(old);
      // Keyed records land where Kafka's Java partitioner puts them.
      for (const record of got) if (record.key !== undefined) expect(record.partition, `partition of key ${record.key}`).toBe(partitionForKey(enc(record.key), 3));

      // The output: a non-tombstone for each non-null value, keys kept, timestamps kept.
      await waitFor('the outputs', () => outRead.records.filter((r) => r.value !== undefined).length >= 5 && app.metrics().lag === 0, { timeoutMs: 15_000 });
      await new Promise((resolve) => setTimeout(resolve, 500));
      console.log(`[review] tombstone input → output records with no value: ${outRead.records.filter((r) => r.value === undefined).length}, with value "null": ${outRead.records.filter((r) => r.value === 'null').length}`);
      const out = byN(outRead.records.filter((r) => r.value !== undefined && r.value !== 'null'));
      expect(out.map((r) => r.value)).toEqual(['{"n":0,"text":"ünïcödé ✓ \\u0000 \\"quoted\\""}', '{"n":1}', '{"n":2}', '{"n":3}', '{"n":5}']);
      expect(out.map((r) => r.key)).toEqual(['k-string', '42', '{"a":1}', undefined, '']);
      expect(out[0]!.timestamp).toBe(old);
      // The output topic was made with defaultPartitions and keyed records are on murmur2's partition of it.
      expect((await admin.metadata({ topics: [output] })).topics.get(output)!.partitionsCount).toBe(5);
      for (const record of out) if (record.key !== undefined) expect(record.partition, `output partition of key ${record.key}`).toBe(partitionForKey(enc(record.key), 5));
      expect(app.metrics().recordsIn).toBe(sent.length);
      expect(app.metrics().lag).toBe(0);
      expect(app.metrics().deadLetters).toBe(0);
    } finally {
      await app.stop();
      await Promise.all([inRead.stop(), outRead.stop()]);
      await deleteAppTopics(admin, id);
    }
  });

  it('values near max.message.bytes (larger than the 768 KiB request cap) go through app.send → pipeline → output byte for byte', async () => {
    const id = uniqueName('rv-large');
    const [input, output] = [`${id}-in`, `${id}-out`];
    await createTopics(brokers, [{ name: input, partitions: 1 }, { name: output, partitions: 1 }]);
    const logger = recordingLogger();
    const app = createApp({ id, transport: kafkaTransport({ brokers, logger }), idleTimeout: false, commitInterval: '200ms', logger });
    app.from<Uint8Array>(input, { value: serdes.bytes() }).to(output, { value: serdes.bytes() });
    // The broker's default max.message.bytes is 1048588 (a batch of one record, with its overhead).
    const sizes = [800_000, 1_000_000, 1_048_000, 10];
    const payload = (size: number, seed: number) => {
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = 0x41 + ((i * 7 + seed) % 26);
      return bytes;
    };
    const outRead = await gatherTopic(brokers, output);
    try {
      await app.start();
      await Promise.all(sizes.map((size, index) => app.send(input, payload(size, index), { key: `k${index}` })));
      await waitFor('every large record in the output', () => outRead.records.length >= sizes.length, { timeoutMs: 20_000, explain: () => JSON.stringify({ metrics: app.metrics(), logs: logger.entries.filter((e) => e.level !== 'debug').slice(-5) }) });
      const byKey = new Map(outRead.records.map((r) => [r.key, r.value]));
      sizes.forEach((size, index) => {
        const expected = new TextDecoder().decode(payload(size, index));
        expect(byKey.get(`k${index}`)?.length, `size of k${index}`).toBe(size);
        expect(byKey.get(`k${index}`) === expected, `bytes of k${index}`).toBe(true);
      });
      expect(outRead.records.length).toBe(sizes.length);
      expect(app.metrics().deadLetters).toBe(0);
    } finally {
      await app.stop();
      await outRead.stop();
      await deleteAppTopics(admin, id);
    }
  });

  // README, Order: "Input keyed by the key you group or join on (so `keyBy` moves nothing) keeps each partition's order".
  // (Only for string keys: a number key is written to a repartition topic as JSON behind a marker byte, so it moves.)
  for (const [label, ageMs, stringKey] of [['a month old, string ids', 30 * 24 * 3_600_000, true]] as const) {
  it(`keyBy on the input's own key, timestamps ${label}: a backlog keeps partition order (no late record), tumbling counts exact, result keys on murmur2's partition, timestamps end - 1`, async () => {
    const id = uniqueName('rv-oldnum');
    const [input, output] = [`${id}-in`, `${id}-out`];
    await createTopics(brokers, [{ name: input, partitions: 3 }, { name: output, partitions: 4 }]);
    const logger = recordingLogger();
    const app = createApp({ id, transport: kafkaTransport({ brokers, logger }), idleTimeout: false, commitInterval: '200ms', logger });
    app
      .from<{ id: number; ts: number }>(input, { timestamp: (r) => r.ts })
      .keyBy((r): number | string => (stringKey ? String(r.id) : r.id))
      .tumbling(1_000)
      .count()
      .toStream()
      .to(output);
    const base = Math.floor((Date.now() - ageMs) / 1_000) * 1_000;
    const expected = new Map<string, number>();
    const messages = [];
    for (let i = 0; i < 300; i++) {
      const idNum = (i * 7) % 13;
      const ts = base + i * 37;
      const window = `${idNum}@${Math.floor(ts / 1_000) * 1_000}`;
      expected.set(window, (expected.get(window) ?? 0) + 1);
      messages.push({ key: String(idNum), value: JSON.stringify({ id: idNum, ts }), timestamp: ts });
    }
    const end = base + 300 * 37 + 5_000;
    for (let idNum = 0; idNum < 13; idNum++) messages.push({ key: String(idNum), value: JSON.stringify({ id: idNum, ts: end }), timestamp: end });
    const out = await gatherTopic(brokers, output);
    try {
      await app.start();
      await produce(brokers, input, messages);
      const results = () => out.records.map((r) => ({ r, w: JSON.parse(r.value!) as { key: number; start: number; end: number; value: number } }));
      await waitFor('the input read', () => app.metrics().recordsIn >= messages.length && app.metrics().lag === 0, { timeoutMs: 15_000 });
      await waitFor('the closed windows out', () => out.records.length >= app.metrics().windowsClosed && app.metrics().windowsOpen === 13, { timeoutMs: 10_000 });
      expect(app.metrics().lateRecords, `late records (handed off ${app.metrics().recordsHandedOff} of ${messages.length}; windows out ${out.records.length} of ${expected.size})`).toBe(0);
      await sleep(500);
      const byWindow = new Map<string, number[]>();
      for (const { r, w } of results()) {
        const name = `${w.key}@${w.start}`;
        if (!expected.has(name)) continue;
        byWindow.set(name, [...(byWindow.get(name) ?? []), w.value]);
        expect(r.key, name).toBe(String(w.key));
        expect(r.partition, `partition of ${name}`).toBe(partitionForKey(enc(String(w.key)), 4));
        expect(r.timestamp, `timestamp of ${name}`).toBe(w.end - 1);
      }
      for (const [w, count] of expected) expect(byWindow.get(w), w).toEqual([count]);
      expect(app.metrics().lateRecords).toBe(0);
      expect(app.metrics().deadLetters).toBe(0);
    } finally {
      await app.stop();
      await out.stop();
      await deleteAppTopics(admin, id);
    }
  });

  }

  it('an output topic with message.timestamp.before.max.ms: records older than it are dead-lettered with INVALID_TIMESTAMP, the others written, offsets move on', async () => {
    const id = uniqueName('rv-before');
    const [input, output] = [`${id}-in`, `${id}-out`];
    await createTopics(brokers, [{ name: input, partitions: 2 }, { name: output, partitions: 1 }]);
    await admin.alterConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: output, configs: [{ name: 'message.timestamp.before.max.ms', value: String(3_600_000) }] }] });
    const logger = recordingLogger();
    const app = createApp({ id, transport: kafkaTransport({ brokers, logger }), idleTimeout: false, commitInterval: '200ms', logger });
    app.from<{ n: number }>(input).to(output);
    const now = Date.now();
    const messages = Array.from({ length: 20 }, (_, n) => ({ key: `k${n}`, value: JSON.stringify({ n }), timestamp: n % 4 === 0 ? now - 3 * 3_600_000 : now - 1_000 }));
    const old = messages.filter((_, n) => n % 4 === 0).map((m) => JSON.parse(m.value).n as number);
    const out = await gatherTopic(brokers, output);
    const dlq = await gatherTopic(brokers, `${id}-dlq`);
    try {
      await app.start();
      await produce(brokers, input, messages);
      await waitFor('the outputs and dead letters', () => out.records.length + dlq.records.length >= messages.length, {
        timeoutMs: 20_000,
        explain: () => JSON.stringify({ out: out.records.length, dlq: dlq.records.length, health: app.health() }),
      });
      await waitFor('offsets at the end', () => allCommitted(admin, id, [input]), { timeoutMs: 10_000 });
      await sleep(300);
      expect(out.records.map((r) => JSON.parse(r.value!).n).sort((a, b) => a - b)).toEqual(messages.map((_, n) => n).filter((n) => !old.includes(n)));
      expect(dlq.records.map((r) => JSON.parse(r.value!).n).sort((a, b) => a - b)).toEqual(old);
      for (const r of dlq.records) {
        expect(r.headers['error.code']).toBe('RECORD_REJECTED');
        expect(r.headers['error.reason']).toBe('INVALID_TIMESTAMP');
        expect(r.headers.step).toBe(`to ${output}`);
      }
      expect(app.metrics().deadLetters).toBe(old.length);
      expect(app.metrics().recordsOut).toBe(messages.length - old.length);
    } finally {
      await app.stop();
      await Promise.all([out.stop(), dlq.stop()]);
      await deleteAppTopics(admin, id);
    }
  });
});
