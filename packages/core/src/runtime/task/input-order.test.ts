/**
 * The merge of a task's inputs in isolation: random batches of random (out-of-order) timestamps
 * against a brute-force head-min merge; waiting for an empty input, and giving up on it; skips
 * kept behind the records before them.
 */
import { describe, expect, it } from 'vitest';
import type { IncomingRecord } from '../../transport/types.js';
import { mulberry32 } from '../../testing/random.js';
import { InputOrder, type InputOrderOptions, type InputOutlook, type OrderedSource } from './input-order.js';

const record = (topic: string, offset: number, timestamp: number): IncomingRecord => ({ topic, partition: 0, offset, key: null, value: null, timestamp, headers: {} });

const sources: OrderedSource[] = [
  { topic: 'stream', rank: 1 },
  { topic: 'table', rank: 0 },
  { topic: 'other', rank: 1 },
];

/** A merge whose empty inputs are `ready` when `ready` says so, else `unsure` (unless `outlook` is given). */
function order({ ready, ...overrides }: Partial<InputOrderOptions> & { ready?: (topic: string, deliveredAgoMs: number) => boolean }): { order: InputOrder; expired: string[] } {
  const expired: string[] = [];
  const merge = new InputOrder({
    sources,
    maxWaitMs: 100,
    maxBuffered: 10_000,
    timestampsOf: (records) => records.map((r) => r.timestamp),
    expired: (topic) => expired.push(topic),
    outlook: (topic, deliveredAgoMs) => (ready?.(topic, deliveredAgoMs) ? 'ready' : 'unsure'),
    ...overrides,
  });
  return { order: merge, expired };
}

/** The head-min merge: always the input whose next record is earliest (ties: lower rank, then source order). */
function reference(inputs: ReadonlyMap<string, IncomingRecord[]>): string[] {
  const at = new Map([...inputs.keys()].map((topic) => [topic, 0]));
  const out: string[] = [];
  for (;;) {
    let best: OrderedSource | undefined;
    for (const source of sources) {
      const next = inputs.get(source.topic)?.[at.get(source.topic)!];
      if (!next) continue;
      const current = best && inputs.get(best.topic)![at.get(best.topic)!]!;
      if (!current || next.timestamp < current.timestamp || (next.timestamp === current.timestamp && source.rank < best!.rank)) best = source;
    }
    if (!best) return out;
    const taken = inputs.get(best.topic)![at.get(best.topic)!]!;
    at.set(best.topic, at.get(best.topic)! + 1);
    out.push(`${taken.topic}@${taken.offset}`);
  }
}

describe('InputOrder', () => {
  it('merges random batches of out-of-order inputs as the brute-force head-min merge does, however the batches arrive', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const random = mulberry32(seed);
      const inputs = new Map<string, IncomingRecord[]>();
      for (const { topic } of sources) {
        const count = Math.floor(random() * 60);
        inputs.set(topic, Array.from({ length: count }, (_, offset) => record(topic, offset, Math.floor(random() * 40))));
      }
      // Cut each input into random batches and deliver them in a random interleaving. An input is
      // ready (nothing more to come) only once all its batches are delivered.
      const batches: IncomingRecord[][] = [];
      const delivered = new Map<string, number>();
      for (const [topic, records] of inputs) {
        delivered.set(topic, 0);
        for (let from = 0; from < records.length; ) {
          const size = 1 + Math.floor(random() * 10);
          batches.push(records.slice(from, from + size));
          from += size;
        }
      }
      const pending = [...batches].sort(() => random() - 0.5);
      // Keep each input's batches in offset order.
      const perTopic = new Map<string, IncomingRecord[][]>();
      for (const batch of batches) perTopic.set(batch[0]!.topic, [...(perTopic.get(batch[0]!.topic) ?? []), batch]);
      const { order: merge, expired } = order({ ready: (topic) => delivered.get(topic) === (inputs.get(topic)?.length ?? 0) });
      const out: string[] = [];
      for (const picked of pending) {
        const batch = perTopic.get(picked[0]!.topic)!.shift()!;
        delivered.set(batch[0]!.topic, delivered.get(batch[0]!.topic)! + batch.length);
        merge.add(batch, 0);
        for (const run of merge.take(0)) for (const taken of run.records) out.push(`${taken.topic}@${taken.offset}`);
      }
      expect(out, `seed ${seed}`).toEqual(reference(inputs));
      expect(merge.buffered, `seed ${seed}`).toBe(0);
      expect(expired, `seed ${seed}`).toEqual([]);
    }
  });

  it('waits for an empty input that is not ready, up to maxWaitMs, then lets the others go and says so', () => {
    let ready = false;
    const { order: merge, expired } = order({ ready: (topic) => topic !== 'table' || ready });
    merge.add([record('stream', 0, 10), record('stream', 1, 20)], 0);
    expect(merge.take(0)).toEqual([]);
    expect(merge.wakeUp(0)).toBe(50);
    expect(merge.take(99)).toEqual([]);
    const runs = merge.take(100);
    expect(runs.flatMap((run) => run.records.map((r) => r.offset))).toEqual([0, 1]);
    expect(expired).toEqual(['table']);
    // Once the table has records again, order holds again.
    merge.add([record('table', 0, 15)], 0);
    merge.add([record('stream', 2, 12), record('stream', 3, 30)], 0);
    ready = true;
    expect(merge.take(200).flatMap((run) => run.records.map((r) => `${r.topic}@${r.offset}`))).toEqual(['stream@2', 'table@0', 'stream@3']);
    expect(merge.wakeUp(200)).toBeUndefined();
  });

  it('takes an empty input for read to its end only by an answer of the log asked for after the waiting record came', () => {
    // The log's last answer about the table input was asked for at `askedAt` (Kafka asks every 500 ms).
    let askedAt = 90;
    let now = 100;
    const { order: merge, expired } = order({ ready: (topic, deliveredAgoMs) => topic !== 'table' || now - askedAt <= deliveredAgoMs });
    merge.add([record('stream', 0, 50)], now);
    // An answer older than the stream record may miss a table update written before it.
    expect(merge.take(now)).toEqual([]);
    now = 130;
    merge.add([record('table', 0, 40)], now);
    expect(merge.take(now).flatMap((run) => run.records.map((r) => `${r.topic}@${r.offset}`))).toEqual(['table@0']);
    askedAt = 120;
    expect(merge.take(now).flatMap((run) => run.records.map((r) => `${r.topic}@${r.offset}`))).toEqual(['stream@0']);
    expect(expired).toEqual([]);
  });

  it('waits past maxWaitMs for records known to be coming, until they come or too many records wait', () => {
    let outlook: InputOutlook = 'coming';
    const { order: merge, expired } = order({ outlook: (topic) => (topic === 'table' ? outlook : 'ready'), maxBuffered: 4 });
    merge.add([record('stream', 0, 10), record('stream', 1, 20)], 0);
    expect(merge.take(0)).toEqual([]);
    expect(merge.take(5_000), 'long past maxWaitMs').toEqual([]);
    expect(merge.wakeUp(5_000), 'it looks again soon').toBe(5_050);
    merge.add([record('table', 0, 15)], 5_000);
    outlook = 'unsure';
    const taken = (runs: ReturnType<InputOrder['take']>) => runs.flatMap((run) => run.records.map((r) => `${r.topic}@${r.offset}`));
    expect(taken(merge.take(5_000)), 'the table record in between').toEqual(['stream@0', 'table@0']);
    // No longer known to be coming: the usual wait, then the others go ahead.
    expect(merge.take(5_050)).toEqual([]);
    expect(taken(merge.take(5_100))).toEqual(['stream@1']);
    expect(expired).toEqual(['table']);
    // Known to be coming, but the buffer fills: the others go ahead.
    outlook = 'coming';
    merge.add([record('stream', 2, 30), record('stream', 3, 40), record('stream', 4, 50)], 6_000);
    expect(merge.take(6_000)).toEqual([]);
    merge.add([record('stream', 5, 60)], 6_000);
    expect(taken(merge.take(6_000))).toEqual(['stream@2', 'stream@3', 'stream@4', 'stream@5']);
    expect(expired).toEqual(['table', 'table']);
  });

  it('never waits with maxWaitMs 0, not even for records known to be coming', () => {
    const { order: merge, expired } = order({ outlook: (topic) => (topic === 'table' ? 'coming' : 'ready'), maxWaitMs: 0 });
    merge.add([record('stream', 0, 10)], 0);
    expect(merge.take(0).flatMap((run) => run.records.map((r) => r.offset))).toEqual([0]);
    expect(expired).toEqual(['table']);
  });

  it('stops waiting when too many records wait', () => {
    const { order: merge, expired } = order({ ready: (topic) => topic !== 'table', maxBuffered: 3 });
    merge.add([record('stream', 0, 1), record('stream', 1, 2)], 0);
    expect(merge.take(0)).toEqual([]);
    merge.add([record('stream', 2, 3)], 0);
    expect(merge.take(0).flatMap((run) => run.records.map((r) => r.offset))).toEqual([0, 1, 2]);
    expect(expired).toEqual(['table']);
  });

  it('puts a table update before a stream record of the same timestamp, then the earlier source first', () => {
    let tableReady = false;
    const { order: merge } = order({ ready: (topic) => topic !== 'table' || tableReady });
    merge.add([record('other', 0, 5)], 0);
    merge.add([record('stream', 0, 5), record('stream', 1, 6)], 0);
    merge.add([record('table', 0, 5)], 0);
    // The table may still have another update stamped 5: the stream records wait for it.
    expect(merge.take(0).flatMap((run) => run.records.map((r) => `${r.topic}@${r.offset}`))).toEqual(['table@0']);
    tableReady = true;
    expect(merge.take(0).flatMap((run) => run.records.map((r) => `${r.topic}@${r.offset}`))).toEqual(['stream@0', 'other@0', 'stream@1']);
  });

  it('keeps a skip behind the records delivered before it', () => {
    const { order: merge } = order({ ready: (topic) => topic !== 'table' });
    merge.add([record('stream', 0, 1), record('stream', 1, 2)], 0);
    merge.addSkip('stream', 2, 5);
    expect(merge.holds('stream')).toBe(true);
    merge.add([record('stream', 5, 3)], 0);
    merge.add([record('table', 0, 10)], 0);
    const runs = merge.take(0);
    expect(runs.map((run) => ({ offsets: run.records.map((r) => r.offset), skips: run.skips }))).toEqual([
      { offsets: [0, 1], skips: [{ from: 2, to: 5 }] },
      { offsets: [5], skips: [] },
      { offsets: [0], skips: [] },
    ]);
  });

  it('names the input of a run that carries skips only, so that they reach that input', () => {
    const { order: merge } = order({ ready: () => true });
    merge.addSkip('table', 7, 9);
    expect(merge.take(0)).toEqual([{ topic: 'table', records: [], skips: [{ from: 7, to: 9 }] }]);
  });
});
