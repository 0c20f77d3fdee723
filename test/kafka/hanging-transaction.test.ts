/**
 * A hanging transaction in the app's group: offsets a transaction committed reached the group, but
 * the transaction ended without the group hearing of it, so the group keeps them pending for good
 * and answers every stable read of them with UNSTABLE_OFFSET_COMMIT. Seen once in CI after a
 * broker was SIGKILLed under an exactly-once app: the task whose offsets hung could never be
 * started again.
 *
 * The broker of this test runs without transaction verification (KIP-890), which is what lets a
 * test make such a transaction on purpose: a TxnOffsetCommit sent after its transaction's abort is
 * taken. The app must resume from the last stable commit, say so, and clear the hang with its
 * first commit.
 */
import { createApp, type App } from '@eddy/core';
import { kafkaTransport } from '@eddy/kafka';
import { addOffsetsToTxnV4, Connection, endTxnV4, findCoordinatorV6, initProducerIdV5, offsetFetchV9, txnOffsetCommitV4 } from '@platformatic/kafka';
import { expect, it } from 'vitest';
import { startKafka, type KafkaBroker } from '../../scripts/src/kafka.ts';
import { describeKafka, uniqueName } from './broker.ts';
import { createTopics, gatherTopic, produce, recordingLogger, sleep, waitFor } from './helpers.ts';

const records = 100;
const stableAt = 40;
const hangingAt = 70;

/** Retries a request while the coordinator loads or completes an earlier transaction. */
async function accepted<T>(request: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await request();
    } catch (error) {
      const causes = (error as { errors?: Array<{ apiId?: string }> }).errors ?? [];
      const passing = causes.some(({ apiId }) => ['COORDINATOR_LOAD_IN_PROGRESS', 'NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE', 'CONCURRENT_TRANSACTIONS'].includes(apiId ?? ''));
      if (attempt >= 50 || !passing) throw new Error(`${(error as Error).message}: ${causes.map(({ apiId }) => apiId).join(', ')} (attempt ${attempt + 1})`, { cause: error });
      await sleep(200);
    }
  }
}

/** The group's committed offset of partition 0, read stable (UNSTABLE_OFFSET_COMMIT throws) or not. */
async function committed(connection: Connection, groupId: string, topic: string, requireStable: boolean): Promise<number> {
  const response = await offsetFetchV9.api.async(connection, [{ groupId, memberId: null, memberEpoch: -1, topics: [{ name: topic, partitionIndexes: [0] }] }], requireStable);
  return Number(response.groups[0]!.topics[0]!.partitions[0]!.committedOffset);
}

describeKafka('a hanging transaction in the app’s group', () => {
  it('exactly-once: the task resumes from the last stable commit, warns, and its first commit clears the hang', async () => {
    let broker: KafkaBroker | undefined;
    let app: App | undefined;
    let output: Awaited<ReturnType<typeof gatherTopic>> | undefined;
    const connection = new Connection('eddy-hanging-transaction-test');
    try {
      broker = await startKafka({ config: { 'transaction.partition.verification.enable': false } });
      const { brokers, port } = broker;
      const appId = uniqueName('hanging-transaction');
      const [inTopic, outTopic] = [`${appId}-in`, `${appId}-out`];
      await createTopics(brokers, [
        { name: inTopic, partitions: 1 },
        { name: outTopic, partitions: 1 },
      ]);
      await produce(brokers, inTopic, Array.from({ length: records }, (_, n) => ({ key: `k${n % 7}`, value: JSON.stringify({ n }) })));
      await connection.connect('127.0.0.1', port);

      // The task's own transactional id commits offset 40 (stable), then makes offset 70 hang: its
      // transaction is aborted before the offsets reach the group.
      const transactionalId = `${appId}:${inTopic}:0`;
      const offsets = (offset: number) => [{ name: inTopic, partitions: [{ partitionIndex: 0, committedOffset: BigInt(offset), committedLeaderEpoch: -1 }] }];
      // Asking for the coordinators creates the internal topics of a fresh broker.
      await accepted(() => findCoordinatorV6.api.async(connection, 1, [transactionalId]));
      await accepted(() => findCoordinatorV6.api.async(connection, 0, [appId]));
      const { producerId, producerEpoch } = await accepted(() => initProducerIdV5.api.async(connection, transactionalId, 60_000, -1n, -1));
      await accepted(() => addOffsetsToTxnV4.api.async(connection, transactionalId, producerId, producerEpoch, appId));
      await accepted(() => txnOffsetCommitV4.api.async(connection, transactionalId, appId, producerId, producerEpoch, -1, '', null, offsets(stableAt)));
      await accepted(() => endTxnV4.api.async(connection, transactionalId, producerId, producerEpoch, true));
      await accepted(() => addOffsetsToTxnV4.api.async(connection, transactionalId, producerId, producerEpoch, appId));
      await accepted(() => endTxnV4.api.async(connection, transactionalId, producerId, producerEpoch, false));
      // Asked again, the abort answers CONCURRENT_TRANSACTIONS until its markers are written: the
      // offsets then come too late to be cleared by them.
      await accepted(() => endTxnV4.api.async(connection, transactionalId, producerId, producerEpoch, false));
      await accepted(() => txnOffsetCommitV4.api.async(connection, transactionalId, appId, producerId, producerEpoch, -1, '', null, offsets(hangingAt)));
      expect(await committed(connection, appId, inTopic, false)).toBe(stableAt);
      // The hang is real: the group still holds the pending offsets once the abort is long done.
      await sleep(1_000);
      await expect(committed(connection, appId, inTopic, true)).rejects.toThrow(/OffsetFetch/);

      const logger = recordingLogger();
      app = createApp({ id: appId, transport: kafkaTransport({ brokers, logger }), guarantee: 'exactly-once', idleTimeout: false, commitInterval: '200ms', logger });
      app.from<{ n: number }>(inTopic).map((value) => ({ n: value.n, seen: true })).to(outTopic);
      await app.start();

      output = await gatherTopic(brokers, outTopic);
      const seen = () => output!.records.map((record) => (JSON.parse(record.value!) as { n: number }).n);
      await waitFor('the records after the last stable commit', () => seen().length >= records - stableAt, { timeoutMs: 30_000 });
      // The app's first commit replaced the hanging offsets: stable reads work again, at the end.
      await waitFor('a stable commit at the end of the input', () => committed(connection, appId, inTopic, true).then((offset) => offset === records, () => false), { timeoutMs: 15_000 });
      expect(seen()).toEqual(Array.from({ length: records - stableAt }, (_, index) => stableAt + index));
      expect(logger.entries.filter((entry) => entry.level === 'warn' && entry.message.includes('hanging transaction'))).not.toHaveLength(0);
      expect(app.failure).toBeUndefined();
    } finally {
      await output?.stop().catch(() => undefined);
      await app?.stop().catch(() => undefined);
      await connection.close().catch(() => undefined);
      await broker?.stop(5_000);
    }
  }, 120_000);
});
