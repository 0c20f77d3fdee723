/**
 * Review tests: topic provisioning and option validation of `kafkaTransport`, from the READMEs:
 * "At start the app creates what is missing ... outputs (with `defaultPartitions`)",
 * "`defaultPartitions` ... outputs of `to(topic)` and sources that do not exist",
 * "Existing topics are never changed", "an invalid chain or option throws a `ConfigError` at
 * once, with the bad value in the message".
 */
import { ConfigError, createApp, partitionForKey, type EddyError } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { ConfigResourceTypes } from '@platformatic/kafka';
import { afterAll, describe, expect, it } from 'vitest';
import { describeKafka, uniqueName } from '../kafka/broker.ts';
import { createTopics, deleteAppTopics, gatherTopic, produce, recordingLogger, sleep, testAdmin, waitFor, within } from '../kafka/helpers.ts';

const enc = (text: string) => new TextEncoder().encode(text);

describe('review: kafkaTransport option validation (no broker needed)', () => {
  const brokers = ['127.0.0.1:9092'];
  it('rejects a bad replicationFactor with a ConfigError naming it and the value', () => {
    for (const bad of [0, -1, 1.5, '3', Number.NaN]) {
      expect(() => kafkaTransport({ brokers, replicationFactor: bad as never }), `replicationFactor ${String(bad)}`).toThrow(ConfigError);
      expect(() => kafkaTransport({ brokers, replicationFactor: bad as never })).toThrow(/replicationFactor/);
    }
  });

  it('rejects wrongly typed options with a ConfigError naming the option', () => {
    const cases: Array<[string, Record<string, unknown>]> = [
      ['brokers', { brokers: '127.0.0.1:9092' }],
      ['defaultPartitions', { brokers, defaultPartitions: '4' }],
      ['groupInstanceId', { brokers, groupInstanceId: 7 }],
      ['clientId', { brokers, clientId: 7 }],
      ['logLevel', { brokers, logLevel: 'verbose' }],
      ['sessionTimeout', { brokers, consumer: { sessionTimeout: 'long' } }],
      ['maxBytesPerPartition', { brokers, consumer: { maxBytesPerPartition: -1 } }],
      ['retries', { brokers, retry: { retries: -1 } }],
      ['sasl', { brokers, sasl: { mechanism: 'kerberos' } }],
    ];
    for (const [name, options] of cases) {
      expect(() => kafkaTransport(options as never), name).toThrow(ConfigError);
      expect(() => kafkaTransport(options as never), name).toThrow(new RegExp(name));
    }
  });

  // README: "an invalid chain or option throws a ConfigError at once, with the bad value in the message".
  it('rejects a misspelled option name (defaultPartiton, replicationFactors, groupInstanceID) instead of silently ignoring it', () => {
    for (const typo of ['defaultPartiton', 'replicationFactors', 'groupInstanceID']) {
      expect(() => kafkaTransport({ brokers, [typo]: 3 } as never), typo).toThrow(new RegExp(typo));
    }
  });

  it('rejects other wrongly typed nested options: ssl, logger, sasl credentials, consumer.maxWaitTime', () => {
    const cases: Array<[string, Record<string, unknown>]> = [
      ['ssl', { brokers, ssl: 'yes' }],
      ['logger', { brokers, logger: {} }],
      ['sasl', { brokers, sasl: { mechanism: 'plain', username: 5, password: undefined } }],
      ['maxWaitTime', { brokers, consumer: { maxWaitTime: -5 } }],
    ];
    const accepted: string[] = [];
    for (const [name, options] of cases) {
      try {
        kafkaTransport(options as never);
        accepted.push(name);
      } catch (error) {
        expect(error, name).toBeInstanceOf(ConfigError);
      }
    }
    expect(accepted, 'options accepted without a ConfigError').toEqual([]);
  });
});

describeKafka('review: topic provisioning on Kafka', (brokers) => {
  const admin = testAdmin(brokers);
  afterAll(() => admin.close());

  async function topicConfig(topic: string, name: string): Promise<string | null | undefined> {
    const [description] = await admin.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: [name] }] });
    return description?.configs.find((entry) => entry.name === name)?.value;
  }
  const partitionsOf = async (topic: string) => (await admin.metadata({ topics: [topic] })).topics.get(topic)!.partitionsCount;

  it('an input topic that does not exist is created at start with defaultPartitions, and records produced to it later are processed', async () => {
    const id = uniqueName('rv-noinput');
    const [input, output] = [`${id}-in`, `${id}-out`];
    const logger = recordingLogger();
    const app = createApp({ id, transport: kafkaTransport({ brokers, logger, defaultPartitions: 3 }), idleTimeout: false, commitInterval: '200ms', logger });
    app.from<{ n: number }>(input).map((v) => ({ n: v.n * 10 })).to(output);
    let out: Awaited<ReturnType<typeof gatherTopic>> | undefined;
    try {
      await app.start();
      expect(await partitionsOf(input)).toBe(3);
      expect(await partitionsOf(output)).toBe(3);
      out = await gatherTopic(brokers, output);
      const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
      await produce(brokers, input, keys.map((key, n) => ({ key, value: JSON.stringify({ n }) })));
      await waitFor('every record', () => out!.records.length >= keys.length && app.metrics().lag === 0, { timeoutMs: 20_000 });
      await sleep(300);
      expect(out.records.map((r) => JSON.parse(r.value!).n).sort((a, b) => a - b)).toEqual(keys.map((_, n) => n * 10));
      expect(app.metrics().recordsIn).toBe(keys.length);
    } finally {
      await app.stop();
      await out?.stop();
      await deleteAppTopics(admin, id);
    }
  });

  it('an output topic that exists with fewer partitions than defaultPartitions is used as it is (never changed), keys partitioned over its own count', async () => {
    const id = uniqueName('rv-smallout');
    const [input, output] = [`${id}-in`, `${id}-out`];
    await createTopics(brokers, [{ name: input, partitions: 4 }, { name: output, partitions: 3 }]);
    const logger = recordingLogger();
    const app = createApp({ id, transport: kafkaTransport({ brokers, logger, defaultPartitions: 8 }), idleTimeout: false, commitInterval: '200ms', logger });
    app.from<{ s: string; n: number }>(input).keyBy((v) => v.s).count({ name: 'counts' }).toStream().to(output);
    const out = await gatherTopic(brokers, output);
    try {
      await app.start();
      const sensors = Array.from({ length: 12 }, (_, i) => `s${i}`);
      const messages = sensors.flatMap((s, i) => Array.from({ length: i + 1 }, (_, n) => ({ key: s, value: JSON.stringify({ s, n }) })));
      await produce(brokers, input, messages);
      // The last count of each key is i + 1.
      const last = () => {
        const byKey = new Map<string, { value: number; partition: number }>();
        for (const r of out.records) byKey.set(r.key!, { value: Number(r.value), partition: r.partition });
        return byKey;
      };
      await waitFor('every key at its count', () => sensors.every((s, i) => last().get(s)?.value === i + 1), { timeoutMs: 20_000, explain: () => JSON.stringify([...last()]) });
      expect(await partitionsOf(output)).toBe(3);
      for (const r of out.records) expect(r.partition, `partition of ${r.key}`).toBe(partitionForKey(enc(r.key!), 3));
      // The changelog follows the input's count, not defaultPartitions.
      expect(await partitionsOf(`${id}-counts-changelog`)).toBe(4);
      expect(await topicConfig(`${id}-counts-changelog`, 'cleanup.policy')).toBe('compact');
      expect(await partitionsOf(`${id}-dlq`)).toBe(1);
      expect(app.metrics().recordsIn).toBe(messages.length);
    } finally {
      await app.stop();
      await out.stop();
      await deleteAppTopics(admin, id);
    }
  });

  it('a changelog someone else made without compaction is left as it is, and the app still counts right across a restart', async () => {
    const id = uniqueName('rv-nocompact');
    const input = `${id}-in`;
    const changelog = `${id}-counts-changelog`;
    await createTopics(brokers, [{ name: input, partitions: 2 }, { name: changelog, partitions: 2 }]);
    const logger = recordingLogger();
    const build = () => {
      const app = createApp({ id, transport: kafkaTransport({ brokers, logger }), idleTimeout: false, commitInterval: '200ms', logger });
      const counts = app.from<{ s: string }>(input).keyBy((v) => v.s).count({ name: 'counts' });
      return { app, counts };
    };
    let { app, counts } = build();
    try {
      await app.start();
      await produce(brokers, input, ['a', 'b', 'a', 'c', 'a', 'b'].map((s) => ({ key: s, value: JSON.stringify({ s }) })));
      await waitFor('six records', () => app.metrics().recordsIn === 6 && app.metrics().lag === 0, { timeoutMs: 15_000 });
      await app.stop();
      ({ app, counts } = build());
      await app.start();
      await produce(brokers, input, ['a', 'c'].map((s) => ({ key: s, value: JSON.stringify({ s }) })));
      await waitFor('two more', () => app.metrics().recordsIn === 2 && app.metrics().lag === 0, { timeoutMs: 15_000 });
      expect(await app.store(counts).get('a')).toBe(4);
      expect(await app.store(counts).get('b')).toBe(2);
      expect(await app.store(counts).get('c')).toBe(2);
      expect(await topicConfig(changelog, 'cleanup.policy')).toBe('delete');
      const warned = logger.entries.filter((e) => (e.level === 'warn' || e.level === 'error') && JSON.stringify(e).includes(changelog));
      console.log(`[review] warnings naming the uncompacted changelog: ${warned.length}`);
    } finally {
      await app.stop();
      await deleteAppTopics(admin, id);
    }
  });

  it('a changelog someone else made with fewer partitions than the input: start() fails with a ConfigError naming it (rather than hanging or losing state)', async () => {
    const id = uniqueName('rv-shortcl');
    const input = `${id}-in`;
    const changelog = `${id}-counts-changelog`;
    await createTopics(brokers, [{ name: input, partitions: 3 }, { name: changelog, partitions: 1 }]);
    const logger = recordingLogger();
    const app = createApp({ id, transport: kafkaTransport({ brokers, logger, retry: { retries: 2, initialRetryTime: '100ms' } }), idleTimeout: false, commitInterval: '200ms', logger });
    app.from<{ s: string }>(input).keyBy((v) => v.s).count({ name: 'counts' });
    try {
      const started = Date.now();
      const outcome = await within(app.start().then(() => 'started', (error: unknown) => error), 20_000);
      const took = Date.now() - started;
      if (outcome === 'started') {
        // It started: then records of every partition must still be counted and kept.
        await produce(brokers, input, Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: JSON.stringify({ s: `k${i}` }) })));
        await sleep(3_000);
        console.log(`[review] started with a 1-partition changelog for 3 input partitions; metrics ${JSON.stringify({ in: app.metrics().recordsIn, lag: app.metrics().lag, failures: app.metrics().commitFailures, state: app.state })}; health ${JSON.stringify(app.health())}; troubles ${JSON.stringify(logger.entries.filter((e) => e.level !== 'debug' && e.level !== 'info').slice(0, 3).map((e) => e.message))}`);
      }
      expect(outcome === undefined ? `start() still pending after ${took} ms` : outcome).toBeInstanceOf(ConfigError);
      expect(String((outcome as EddyError).message)).toContain(changelog);
    } finally {
      await within(app.stop().catch(() => undefined), 15_000);
      await deleteAppTopics(admin, id);
    }
  });

  it('replicationFactor above the cluster size fails start() promptly with an error naming the topic, not a hang', async () => {
    const id = uniqueName('rv-rf');
    const input = `${id}-in`;
    await createTopics(brokers, [{ name: input, partitions: 1 }]);
    const logger = recordingLogger();
    const app = createApp({ id, transport: kafkaTransport({ brokers, logger, replicationFactor: 5 }), idleTimeout: false, logger });
    app.from<{ s: string }>(input).keyBy((v) => v.s).count({ name: 'counts' });
    try {
      const started = Date.now();
      const outcome = await within(app.start().then(() => 'started', (error: unknown) => error), 20_000);
      expect(outcome, `after ${Date.now() - started} ms`).toBeInstanceOf(Error);
      expect((outcome as EddyError).code).toBe('TRANSPORT_FAILED');
      expect((outcome as EddyError).retriable).toBe(false);
      expect(String((outcome as Error).message)).toMatch(new RegExp(`${id}-(counts-changelog|dlq|counts-repartition)`));
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(app.state).toBe('failed');
    } finally {
      await within(app.stop().catch(() => undefined), 10_000);
      await deleteAppTopics(admin, id);
    }
  });
});
