/**
 * An app started on input already full, whose keyBy moves records between partitions: the
 * embedded broker delivers the input's partitions in step in event time (runtime/
 * delivery-alignment.ts), so the repartition topic holds the records about in event-time order and
 * windows downstream lose nothing to the backlog's order. Checked against a brute-force reference.
 */
import { describe, expect, it } from 'vitest';
import { createApp } from '../app.js';
import type { IncomingRecord } from '../transport/types.js';
import { memoryTransport } from '../transport/memory.js';
import { alignedBatches } from '../transport/memory-consumer.js';
import { mulberry32 } from '../testing/random.js';
import { silentLogger } from '../logger.js';

interface Click { seq: number; user: string; ts: number }
interface Window { key: string; start: number; seqs: number[] }

const SIZE = 5_000;
const CLOSER = 10_000_000;

/** `count` clicks over `spanMs` of event time, adjacent ones swapped with probability `disorder`. */
function clicks(seed: number, count: number, spanMs: number, disorder: number): Click[] {
  const random = mulberry32(seed);
  const times = Array.from({ length: count }, (_, index) => Math.floor((index * spanMs) / count));
  for (let index = 0; index < times.length - 1; index++) if (random() < disorder) [times[index], times[index + 1]] = [times[index + 1]!, times[index]!];
  return times.map((ts, seq) => ({ seq, user: `u${Math.floor(random() * 8)}`, ts }));
}

function reference(input: readonly Click[]): Map<string, number[]> {
  const windows = new Map<string, number[]>();
  for (const click of input) {
    const id = `${click.user}@${Math.floor(click.ts / SIZE) * SIZE}`;
    windows.set(id, [...(windows.get(id) ?? []), click.seq].sort((a, b) => a - b));
  }
  return windows;
}

async function run(input: readonly Click[], options: { partitions: number; graceMs: number; keyed: 'seq' | 'user'; extractor: boolean; guarantee?: 'at-least-once' | 'exactly-once' }) {
  const transport = memoryTransport({ defaultPartitions: options.partitions });
  const app = createApp({ id: 'backlog', transport, idleTimeout: false, logger: silentLogger, guarantee: options.guarantee ?? 'at-least-once' });
  app
    .from<Click>('clicks', options.extractor ? { timestamp: (click) => click.ts } : {})
    .keyBy((click) => click.user)
    .tumbling(SIZE, { grace: options.graceMs })
    .aggregate({ init: () => [] as number[], add: (seqs: number[], click) => [...seqs, click.seq], merge: (a: number[], b: number[]) => [...a, ...b] })
    .onClose(({ key, start, value }): Window => ({ key, start, seqs: [...value].sort((a, b) => a - b) }))
    .to('out');
  // The whole input is there before the app starts.
  await app.sendBatch('clicks', input.map((click) => ({ value: click, key: options.keyed === 'seq' ? String(click.seq) : click.user, timestamp: options.extractor ? 0 : click.ts })));
  await app.start();
  const users = [...new Set(input.map((click) => click.user))];
  await app.sendBatch('clicks', users.map((user) => ({ value: { seq: -1, user, ts: CLOSER }, key: user, timestamp: options.extractor ? 0 : CLOSER })));
  const expected = reference(input);
  const got = new Map<string, number[]>();
  for (let waited = 0; waited < 10_000 && got.size < expected.size; waited += 20) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    for (const record of transport.records('out')) {
      const window = JSON.parse(new TextDecoder().decode(record.value!)) as Window;
      if (window.start < CLOSER - SIZE) got.set(`${window.key}@${window.start}`, window.seqs);
    }
  }
  const late = app.metrics().lateRecords;
  await app.stop();
  return { expected, got, late };
}

describe('a backlog whose keyBy moves records between partitions', () => {
  for (const [name, options, disorder] of [
    ['3 partitions, grace 15 s, record timestamps', { partitions: 3, graceMs: 15_000, keyed: 'seq', extractor: false }, 0.3],
    ['4 partitions, grace 15 s, a timestamp extractor', { partitions: 4, graceMs: 15_000, keyed: 'seq', extractor: true }, 0.3],
    ['3 partitions, grace 0, in order', { partitions: 3, graceMs: 0, keyed: 'seq', extractor: false }, 0],
    ['3 partitions, grace 15 s, exactly-once (a producer per task)', { partitions: 3, graceMs: 15_000, keyed: 'seq', extractor: false, guarantee: 'exactly-once' }, 0.3],
  ] as const) {
    it(`${name}: no record is late, every window equals the reference`, async () => {
      const input = clicks(7, 1_500, 90_000, disorder);
      const { expected, got, late } = await run(input, options);
      expect(late).toBe(0);
      expect(got).toEqual(expected);
    });
  }

  it('input keyed by the grouping key (keyBy moves nothing): every window equals the reference', async () => {
    const input = clicks(11, 3_000, 90_000, 0.3);
    const { expected, got, late } = await run(input, { partitions: 3, graceMs: 1_000, keyed: 'user', extractor: false });
    expect(late).toBe(0);
    expect(got).toEqual(expected);
  });
});

describe('alignedBatches', () => {
  const record = (partition: number, offset: number, timestamp: number): IncomingRecord => ({ topic: 't', partition, offset, key: null, value: null, timestamp, headers: {} });
  const fetched = (partition: number, times: number[], spanMs: number) => ({
    entry: { topic: 't', partition, position: 0 },
    from: 0,
    batch: times.map((timestamp, offset) => record(partition, offset, timestamp)),
    alignment: { group: 0, horizon: (first: number) => first + spanMs, timestamp: (incoming: IncomingRecord) => incoming.timestamp },
  });
  const cut = (groups: number[][], spanMs: number) => alignedBatches(groups.map((times, partition) => fetched(partition, times, spanMs))).map(({ batch }) => batch.map((incoming) => incoming.timestamp));

  it('cuts each batch at the smallest first timestamp plus the span, keeping offset order', () => {
    expect(cut([[10, 20, 30, 40], [25, 26, 50], [5, 100]], 15)).toEqual([[10, 20], [], [5]]);
    expect(cut([[10, 20, 30, 40], [25, 26, 50]], 15)).toEqual([[10, 20], [25]]);
  });

  it('stops a batch at its first record past the horizon, even if later ones are before it', () => {
    expect(cut([[10, 40, 12], [11]], 5)).toEqual([[10], [11]]);
  });

  it('always moves on: the partition with the smallest first timestamp keeps it, with span 0 too', () => {
    expect(cut([[7, 7, 8], [9, 10]], 0)).toEqual([[7, 7], []]);
  });

  it('reads each partition by its own topic\'s timestamps (sources with different extractors)', () => {
    const scaled = { ...fetched(1, [1, 2, 3], 0), alignment: { group: 0, horizon: (first: number) => first, timestamp: (incoming: IncomingRecord) => incoming.timestamp * 10 } };
    const batches = alignedBatches([fetched(0, [10, 20, 30], 0), scaled]).map(({ batch }) => batch.map((incoming) => incoming.timestamp));
    expect(batches).toEqual([[10], [1]]);
  });

  it('leaves a partition alone in its group whole', () => {
    expect(cut([[10, 1000, 5]], 0)).toEqual([[10, 1000, 5]]);
  });
});
