import { EddyError, partitionKey, passHorizon, type Alignment, type ConsumerListener, type IncomingRecord, type TopicPartition, type TopicPartitionOffset, type WaitingNext } from '@eddy/core';
import { FetchIsolationLevels } from '@platformatic/kafka';
import { backoff, BACKOFF_MS, sleep } from './backoff.js';
import type { Cluster } from './cluster.js';
import { CommittedRecords } from './committed-records.js';
import type { EndWatch } from './end-watch.js';
import { fetchRaw, type FetchResponse } from './fetch-response.js';
import type { MemberLog } from './member.js';
import type { KafkaSettings } from './options.js';
import { OFFSET_OUT_OF_RANGE, responseOf } from './protocol-errors.js';

/** Records handed to the listener at a time, from a fetched partition. */
const DELIVERY_SLICE = 1000;

/** A partition this member delivers: where it reads next, and a count of seeks (a fetch made before a seek is dropped). */
interface Delivering {
  readonly tp: TopicPartition;
  position: number;
  seeks: number;
  /** Whether its last fetch left nothing committed after what it returned. */
  atEnd: boolean;
  /** The number of that fetch (see FetchLoop #fetches). */
  fetched: number;
  /** Records fetched and held back (not decoded yet), to be delivered in step with the other partitions of their alignment group. */
  held: CommittedRecords | undefined;
}

/** What a {@link FetchLoop} needs of its group member. */
export interface FetchLoopContext {
  readonly settings: KafkaSettings;
  readonly cluster: Cluster;
  readonly listener: ConsumerListener;
  /** Told of every partition's position, to say whether the member keeps up with it. */
  readonly ends: EndWatch;
  readonly stopping: () => boolean;
  readonly log: MemberLog;
}

/**
 * Fetches the records of the partitions a group member delivers and hands them to the listener:
 * one fetch per leader (FetchRequest v17, read_committed, on the cluster's fetch connections), then
 * each partition's committed records, in offset order, a slice at a time, each slice decoded as it
 * is handed over (see `CommittedRecords`). The next fetch starts once the listener has taken the
 * last slice, so a slow listener pauses the source.
 *
 * The partitions the listener wants delivered in step (`ConsumerListener.alignment`: the input of
 * a keyBy that moves records between partitions, on a backlog) are held back instead and delivered
 * in passes, each partition up to its group's horizon (`passHorizon`), still undecoded but for
 * the next record of each. A fetch holds each partition's next megabyte or so, whose event times
 * may differ widely between partitions: a partition whose held records run out is fetched again
 * before the others of its group go past it, unless a fetch found it at its end and the app has
 * no records on their way to it (`ConsumerListener.writesPending`; then the others go on without
 * it). That fetch must be later than the one that brought the others' records: a partition found
 * at its end by the same fetch is fetched once more first, without waiting for records. The
 * others are not fetched again while they hold records.
 */
export class FetchLoop {
  readonly #context: FetchLoopContext;
  /** Partitions whose records are delivered: owned, taken by the listener, not being revoked. */
  readonly #delivering = new Map<string, Delivering>();
  /** The delivery in flight, if any (a revocation waits for it). */
  #delivery: Promise<void> = Promise.resolve();
  #wakeFetch: (() => void) | undefined;
  /** Fetches made so far: each partition remembers the number of the last that returned it. */
  #fetches = 0;
  /** A group waits only for a partition at its end to be fetched once more: the next fetch does not wait for records. */
  #recheck = false;

  constructor(context: FetchLoopContext) {
    this.#context = context;
  }

  /** Delivers `tp` from `position` on. */
  startDelivering(tp: TopicPartition, position: number): void {
    this.#delivering.set(partitionKey(tp.topic, tp.partition), { tp, position, seeks: 0, atEnd: false, fetched: 0, held: undefined });
    this.#context.ends.assigned(tp);
    this.#context.ends.moved(tp, position);
  }

  /** Delivers no more of `tp`; a delivery in flight goes on (see {@link deliveryFinished}). */
  stopDelivering(tp: TopicPartition): void {
    this.#delivering.delete(partitionKey(tp.topic, tp.partition));
    this.#context.ends.released(tp);
  }

  /** Resolves once the delivery in flight, if any, has ended (whether or not the listener took it). */
  deliveryFinished(): Promise<void> {
    return this.#delivery.catch(() => undefined);
  }

  /** The delivered partitions of `topic`. */
  partitionsOf(topic: string): TopicPartition[] {
    return [...this.#delivering.values()].filter(({ tp }) => tp.topic === topic).map(({ tp }) => tp);
  }

  /** Moves a delivered partition to `offset`: what was fetched before is dropped. */
  seek({ topic, partition, offset }: TopicPartitionOffset): void {
    const delivering = this.#delivering.get(partitionKey(topic, partition));
    if (!delivering) return;
    delivering.position = offset;
    delivering.seeks++;
    delivering.held = undefined;
    delivering.atEnd = false;
    this.#context.ends.moved({ topic, partition }, offset);
  }

  /** Fetches again now if the loop waits for partitions to deliver (a new assignment, or the member stopping). */
  wake(): void {
    this.#wakeFetch?.();
  }

  /** Fetches and delivers until the member stops. */
  async run(): Promise<void> {
    const { stopping } = this.#context;
    let failures = 0;
    while (!stopping()) {
      if (this.#delivering.size === 0) {
        await new Promise<void>((resolve) => (this.#wakeFetch = resolve));
        this.#wakeFetch = undefined;
        continue;
      }
      // A partition holding records is fetched again once they are delivered.
      const partitions = [...this.#delivering.values()].filter(({ held }) => held === undefined);
      try {
        const recheck = this.#recheck;
        this.#recheck = false;
        if (partitions.length > 0) await this.#fetchOnce(partitions, recheck ? 0 : this.#context.settings.maxWaitTimeMs);
        const delivery = this.#deliverInStep();
        this.#delivery = delivery;
        await delivery;
        failures = 0;
      } catch (error) {
        if (stopping()) break;
        failures++;
        this.#context.log(failures > 3 ? 'warn' : 'debug', 'a fetch failed; it is made again', { error: String(error), failures });
        // What was held is fetched again too (its decoding may be what failed).
        for (const delivering of this.#delivering.values()) {
          delivering.held = undefined;
          delivering.atEnd = false;
        }
        await sleep(backoff(failures - 1));
      }
    }
  }

  /** One fetch from each leader of the delivered partitions, then their records, partition by partition. */
  async #fetchOnce(partitions: readonly Delivering[], maxWaitMs: number): Promise<void> {
    const { settings, cluster, stopping } = this.#context;
    const fetch = ++this.#fetches;
    const topics = [...new Set(partitions.map(({ tp }) => tp.topic))];
    const metadata = await cluster.metadata(topics);
    const byLeader = new Map<number, Delivering[]>();
    for (const delivering of partitions) {
      const leader = metadata.topics.get(delivering.tp.topic)?.partitions[delivering.tp.partition]?.leader;
      if (leader === undefined || leader < 0) {
        await cluster.metadata(topics, true);
        throw new EddyError('TRANSPORT_FAILED', `no leader for ${delivering.tp.topic}[${delivering.tp.partition}]`, { retriable: true });
      }
      byLeader.set(leader, [...(byLeader.get(leader) ?? []), delivering]);
    }
    const fetched = await Promise.all(
      [...byLeader].map(async ([leader, ofLeader]) => {
        const asked = ofLeader.map((delivering) => ({ delivering, seeks: delivering.seeks }));
        const byTopicId = new Map<string, Array<{ partition: number; currentLeaderEpoch: number; fetchOffset: bigint; lastFetchedEpoch: number; partitionMaxBytes: number }>>();
        for (const { delivering } of asked) {
          const topicId = metadata.topics.get(delivering.tp.topic)!.id;
          byTopicId.set(topicId, [
            ...(byTopicId.get(topicId) ?? []),
            { partition: delivering.tp.partition, currentLeaderEpoch: -1, fetchOffset: BigInt(delivering.position), lastFetchedEpoch: -1, partitionMaxBytes: settings.maxBytesPerPartition },
          ]);
        }
        const request = [...byTopicId].map(([topicId, parts]) => ({ topicId, partitions: parts }));
        let response: FetchResponse;
        try {
          response = await fetchRaw.async(await cluster.fetchConnection(leader), maxWaitMs, 1, 50 * 1024 * 1024, FetchIsolationLevels.READ_COMMITTED, 0, -1, request, [], '');
        } catch (error) {
          const partial = responseOf<FetchResponse>(error);
          if (!partial || !Array.isArray(partial.responses)) throw error;
          response = partial;
        }
        return { asked, response };
      }),
    );
    const topicNames = new Map([...metadata.topics].map(([name, topic]) => [topic.id, name]));
    let stale = false;
    for (const { asked, response } of fetched) {
      for (const topic of response.responses) {
        const name = topicNames.get(topic.topicId);
        for (const result of topic.partitions) {
          const entry = asked.find(({ delivering }) => delivering.tp.topic === name && delivering.tp.partition === result.partitionIndex);
          if (!entry) continue;
          const { delivering, seeks } = entry;
          // Revoked or moved (seek) since it was asked for: drop what came.
          if (stopping() || this.#delivering.get(partitionKey(delivering.tp.topic, delivering.tp.partition)) !== delivering || delivering.seeks !== seeks) continue;
          delivering.fetched = fetch;
          if (result.errorCode !== 0) {
            delivering.atEnd = false;
            stale ||= await this.#partitionError(delivering, result.errorCode);
            continue;
          }
          const records = new CommittedRecords(delivering.tp, result, delivering.position);
          const stable = result.lastStableOffset >= 0n ? result.lastStableOffset : result.highWatermark;
          delivering.atEnd = BigInt(records.end) >= stable;
          if (this.#context.listener.alignment?.(delivering.tp.topic)) {
            delivering.held = records;
            continue;
          }
          const delivery = this.#deliverWhole(delivering, records);
          this.#delivery = delivery;
          await delivery;
        }
      }
    }
    if (stale) await cluster.metadata(topics, true);
  }

  /** Handles a partition's fetch error; true when the cluster's metadata should be read again. */
  async #partitionError(delivering: Delivering, errorCode: number): Promise<boolean> {
    const { tp } = delivering;
    if (errorCode === OFFSET_OUT_OF_RANGE) {
      // Deleted by retention (or DeleteRecords) before it was read: go on from where the log starts now.
      const start = (await this.#context.cluster.listOffsets([tp], 'earliest')).get(partitionKey(tp.topic, tp.partition));
      if (start !== undefined && start > delivering.position) {
        // The app counts and logs them (`recordsLostToRetention`).
        const from = delivering.position;
        this.seek({ ...tp, offset: start });
        await this.#context.listener.onSkipped?.({ ...tp, from, to: start, deleted: true });
      }
      return false;
    }
    this.#context.log('debug', 'a partition could not be fetched', { partition: `${tp.topic}[${tp.partition}]`, errorCode });
    return true;
  }

  /** Hands a fetched partition's records to the listener, then tells it of the offsets after them that hold nothing to deliver (transaction markers, aborted records). */
  async #deliverWhole(delivering: Delivering, records: CommittedRecords): Promise<void> {
    const seeks = delivering.seeks;
    if (await this.#deliver(delivering, records)) await this.#skipTo(delivering, records.end, seeks);
  }

  /**
   * Delivers held records in passes until every alignment group has delivered what it holds, or
   * waits for a partition to be fetched again: one whose held records ran out, not at its end, or
   * at its end by the same fetch as the others' records (one produce request appends its
   * partitions one after another, so a fetch may catch some of its records and not yet others).
   * Records held for a topic no longer delivered in step (the listener saw its keyBy move nothing)
   * go whole.
   */
  async #deliverInStep(): Promise<void> {
    const { listener, stopping } = this.#context;
    for (let moved = true; moved && !stopping(); ) {
      moved = false;
      const groups = new Map<number, Array<WaitingNext & { readonly delivering: Delivering; readonly records: CommittedRecords }>>();
      const waiting = new Set<number>();
      const atEnd = new Map<number, Delivering[]>();
      for (const delivering of [...this.#delivering.values()]) {
        const records = delivering.held;
        const next = records?.peek();
        if (records && next === undefined) {
          delivering.held = undefined;
          await this.#skipTo(delivering, records.end, delivering.seeks);
        }
        const alignment: Alignment | undefined = listener.alignment?.(delivering.tp.topic);
        if (!records || next === undefined) {
          // At its end, unless this app's own tasks have records on their way to it.
          if (!alignment) continue;
          if (!delivering.atEnd || listener.writesPending?.({ ...delivering.tp, offset: delivering.position })) waiting.add(alignment.group);
          else atEnd.set(alignment.group, [...(atEnd.get(alignment.group) ?? []), delivering]);
          continue;
        }
        if (!alignment) {
          moved = (await this.#deliverMoved(delivering, records)) || moved;
          continue;
        }
        const run = { next, alignment, delivering, records };
        const group = groups.get(alignment.group);
        if (group) group.push(run);
        else groups.set(alignment.group, [run]);
      }
      // A partition's end counts for records fetched before the fetch that found it.
      for (const [index, group] of groups) {
        const newest = Math.max(...group.map(({ delivering }) => delivering.fetched));
        if (waiting.has(index) || !(atEnd.get(index) ?? []).some(({ fetched }) => fetched <= newest)) continue;
        waiting.add(index);
        this.#recheck = true;
      }
      let stepped = false;
      for (const [index, group] of groups) {
        if (waiting.has(index)) continue;
        const horizon = passHorizon(group);
        for (const { delivering, records, alignment } of group) moved = (await this.#deliverMoved(delivering, records, (record) => alignment.timestamp(record) > horizon)) || moved;
        stepped ||= group.length > 1;
      }
      if (stepped) await listener.afterStep?.();
    }
  }

  /** {@link #deliver}, and whether it moved the partition on. */
  async #deliverMoved(delivering: Delivering, records: CommittedRecords, stop?: (record: IncomingRecord) => boolean): Promise<boolean> {
    const from = delivering.position;
    await this.#deliver(delivering, records, stop);
    return delivering.position > from;
  }

  /**
   * Hands `records` to the listener a slice at a time, decoding only the slice, up to the first
   * record `stop` is true for; whether it delivered all it should. If a slice fails, the records
   * left are dropped: the partition is fetched again from its position.
   */
  async #deliver(delivering: Delivering, records: CommittedRecords, stop?: (record: IncomingRecord) => boolean): Promise<boolean> {
    for (let slice = records.take(DELIVERY_SLICE, stop); slice.length > 0; slice = records.take(DELIVERY_SLICE, stop)) {
      if (await this.#handOver(delivering, slice)) continue;
      if (delivering.held === records) {
        delivering.held = undefined;
        delivering.atEnd = false;
      }
      return false;
    }
    return true;
  }

  /** Hands `slice` to the listener; false if it failed (it is delivered again), or the partition moved or went meanwhile. */
  async #handOver(delivering: Delivering, slice: IncomingRecord[]): Promise<boolean> {
    const { listener, ends } = this.#context;
    const { tp } = delivering;
    const seeks = delivering.seeks;
    try {
      await listener.onRecords(slice);
    } catch (error) {
      this.#context.log('warn', 'the app failed on a batch; it is delivered again', { partition: `${tp.topic}[${tp.partition}]`, offset: slice[0]!.offset, error: String(error) });
      await sleep(BACKOFF_MS[0]);
      return false;
    }
    if (delivering.seeks !== seeks || this.#delivering.get(partitionKey(tp.topic, tp.partition)) !== delivering) return false;
    delivering.position = slice[slice.length - 1]!.offset + 1;
    ends.delivered(tp, delivering.position);
    return true;
  }

  /**
   * Moves a partition whose records before `next` are delivered on to `next`: the offsets between
   * hold nothing to deliver. Not if it moved (a seek since `seeks` was read: a task started again
   * from its last commit must get its records again) or went meanwhile.
   */
  async #skipTo(delivering: Delivering, next: number, seeks: number): Promise<void> {
    const { tp } = delivering;
    if (next <= delivering.position || delivering.seeks !== seeks || this.#delivering.get(partitionKey(tp.topic, tp.partition)) !== delivering) return;
    const skipped = delivering.position;
    delivering.position = next;
    this.#context.ends.delivered(tp, next);
    await this.#context.listener.onSkipped?.({ topic: tp.topic, partition: tp.partition, from: skipped, to: next });
  }
}

