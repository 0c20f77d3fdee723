/**
 * Backlog preloaded before start, a keyBy that moves records between 2–6 partitions, windows
 * downstream: with `grace` at least twice the input's own disorder (the README: input delivered
 * in step within half the grace), no record may be late and every window must equal the
 * brute-force reference, exactly once.
 */
import { describe, expect, it } from 'vitest';
import { clean, clicks, disorder, keysByPartition, runBacklog, type Kind } from './helpers.ts';

const kinds: Kind[] = ['tumbling', 'hopping', 'sliding', 'session'];

describe('control: one partition, in order (validates the references)', () => {
  for (const kind of kinds) {
    it(`${kind}`, async () => {
      const input = clicks(1, 600, 37, 0);
      const run = await runBacklog(input, { kind, graceMs: 0, partitions: 1, keyOf: (c) => String(c.seq) });
      expect(run.late).toBe(0);
      expect(run.result).toEqual(clean);
    });
  }
});

describe('in-order input, grace 0, records keyed by seq (keyBy crosses partitions)', () => {
  for (const [kind, partitions, seed] of [
    ['tumbling', 2, 2],
    ['hopping', 5, 3],
    ['sliding', 3, 4],
    ['session', 6, 5],
  ] as const) {
    it(`${kind}, ${partitions} partitions`, async () => {
      const input = clicks(seed, 1_500, 37, 0);
      const run = await runBacklog(input, { kind, graceMs: 0, partitions, keyOf: (c) => String(c.seq) });
      expect(run.late).toBe(0);
      expect(run.result).toEqual(clean);
    });
  }
});

describe('out-of-order input, grace = twice the input\'s own disorder', () => {
  for (const [kind, partitions, seed, extractor] of [
    ['tumbling', 3, 10, false],
    ['tumbling', 6, 11, true],
    ['hopping', 4, 12, false],
    ['sliding', 2, 13, true],
    ['session', 5, 14, false],
  ] as const) {
    it(`${kind}, ${partitions} partitions${extractor ? ', timestamp extractor' : ''}`, async () => {
      const input = clicks(seed, 2_000, 20, 4);
      const graceMs = 2 * disorder(input);
      expect(graceMs).toBeGreaterThan(0);
      const run = await runBacklog(input, { kind, graceMs, partitions, extractor, keyOf: (c) => String(c.seq) });
      expect({ late: run.late, ...run.result }).toEqual({ late: 0, ...clean });
    });
  }

  it('tumbling, 3 partitions, grace = 3 × disorder', async () => {
    const input = clicks(21, 2_000, 20, 4);
    const graceMs = 3 * disorder(input);
    const run = await runBacklog(input, { kind: 'tumbling', graceMs, partitions: 3, keyOf: (c) => String(c.seq) });
    expect({ late: run.late, ...run.result }).toEqual({ late: 0, ...clean });
  });
});

describe('partitions of very different densities', () => {
  it('one partition 10× the others, one empty, one with a single record far in the future (4 partitions)', async () => {
    const routes = keysByPartition(4);
    const input = clicks(31, 2_400, 25, 3);
    // Partition 0: ~10/11 of the records; partition 1: the rest; partition 2 empty; partition 3: one record far ahead.
    const future = { seq: input.length, user: 'u0', ts: input.at(-1)!.ts + 500_000 };
    const all = [...input, future];
    const random = (seq: number) => ((seq * 2654435761) >>> 0) % 11;
    const keyOf = (c: { seq: number }) => (c.seq === future.seq ? routes[3]![0]! : random(c.seq) === 0 ? routes[1]![c.seq % 64]! : routes[0]![c.seq % 64]!);
    for (const kind of ['tumbling', 'session'] as const) {
      const run = await runBacklog(all, { kind, graceMs: 2 * disorder(input), partitions: 4, keyOf });
      const dec = new TextDecoder();
      const placed = run.transport
        .records('clicks')
        .filter((r) => (JSON.parse(dec.decode(r.value!)) as { seq: number }).seq >= 0)
        .reduce((acc, r) => (acc[r.partition]++, acc), [0, 0, 0, 0]);
      expect(placed[2]).toBe(0);
      expect(placed[3]).toBe(1);
      expect(placed[0]).toBeGreaterThan(8 * placed[1]!);
      expect({ kind, late: run.late, ...run.result }).toEqual({ kind, late: 0, ...clean });
    }
  });
});

describe('input keyed by the grouping key (no crossing)', () => {
  for (const [kind, partitions] of [
    ['tumbling', 3],
    ['sliding', 4],
  ] as const) {
    it(`${kind}, ${partitions} partitions, grace = disorder: exact`, async () => {
      const input = clicks(41, 4_000, 20, 4);
      const run = await runBacklog(input, { kind, graceMs: disorder(input), partitions, keyOf: (c) => c.user });
      expect({ late: run.late, ...run.result }).toEqual({ late: 0, ...clean });
    });
  }
});
