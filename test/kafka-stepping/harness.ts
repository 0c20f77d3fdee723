/** Shared pieces of the Kafka stepping tests: inputs, brute-force references, an output reader. */
import type { App } from '@eddy/core';
import { mulberry32 } from '@eddy/core/testing';
import { gatherTopic, type Gathered } from '../kafka/helpers.ts';
import { windowReference } from '../window-reference.ts';

export interface Click { seq: number; user: string; ts: number; pad?: string }
export interface Win { key: string; start: number; end: number; seqs: number[] }
export type Kind = 'tumbling' | 'hopping' | 'session' | 'sliding';

export const SIZE = 5_000;
export const SLIDE = 2_000;
export const GAP = 1_500;

/** Two hours back, aligned: the broker refuses timestamps more than an hour ahead, and far-future records stay in range. */
export function baseTime(): number {
  return Math.floor((Date.now() - 2 * 3_600_000) / 60_000) * 60_000;
}

/** `count` clicks over `spanMs` from `base`, each moved by at most `maxShift` positions (disorder ≤ maxShift * step). */
export function clicks(seed: number, base: number, count: number, spanMs: number, maxShift = 0, users = 8): Click[] {
  const random = mulberry32(seed);
  const plain = Array.from({ length: count }, (_, i) => ({ seq: i, user: `u${Math.floor(random() * users)}`, ts: base + Math.floor((i * spanMs) / count) }));
  const keyed = plain.map((c, i) => ({ c, k: i + random() * maxShift }));
  keyed.sort((a, b) => a.k - b.k);
  return keyed.map(({ c }, seq) => ({ ...c, seq }));
}

export { disorder } from '../window-reference.ts';

export function reference(input: readonly Click[], kind: Kind): Map<string, number[]> {
  return windowReference(input, kind, { size: SIZE, slide: SLIDE, gap: GAP });
}

export const winId = (w: Win) => `${w.key}@${w.start}@${w.end}`;

/** Reads windows from `topic`; `before` leaves out the closers' windows. */
export async function windowReader(brokers: string[], topic: string, before: number) {
  const out = await gatherTopic(brokers, topic);
  const all = (): Win[] => out.records.map((r: Gathered) => JSON.parse(r.value!) as Win).filter((w) => w.start < before);
  return {
    all,
    /** The last of each window. */
    last: (): Map<string, number[]> => new Map(all().map((w) => [winId(w), w.seqs])),
    stop: () => out.stop(),
  };
}

export interface Diff { missing: number; wrong: number; extra: number; examples: string[] }

export function diff(expected: Map<string, number[]>, got: Map<string, number[]>): Diff {
  const examples: string[] = [];
  let missing = 0;
  let wrong = 0;
  let extra = 0;
  for (const [id, want] of expected) {
    const have = got.get(id);
    if (!have) {
      missing++;
      if (examples.length < 6) examples.push(`missing ${id} (${want.length})`);
    } else if (JSON.stringify(have) !== JSON.stringify(want)) {
      wrong++;
      if (examples.length < 6) examples.push(`wrong ${id}: want ${want.length} got ${have.length}`);
    }
  }
  for (const id of got.keys()) if (!expected.has(id)) {
    extra++;
    if (examples.length < 6) examples.push(`extra ${id}`);
  }
  return { missing, wrong, extra, examples };
}

/**
 * Clicks spread round-robin over `partitions`, every `stepMs` in each, about `share` of them sent
 * exactly `delayMs` late in their partition (after the record `delayMs` newer): each partition's own
 * disorder is exactly `delayMs`. Returns the clicks in send order and each one's partition.
 */
export function delayedClicks(seed: number, base: number, count: number, partitions: number, stepMs: number, delayMs: number, share: number): { clicks: Click[]; partitionOf: Map<number, number> } {
  const random = mulberry32(seed);
  const rows = Array.from({ length: count }, (_, i) => {
    const p = i % partitions;
    const ts = base + Math.floor(i / partitions) * stepMs + (p * stepMs) / partitions;
    const delayed = random() < share;
    return { seq: i, user: `u${Math.floor(random() * 8)}`, ts: Math.floor(ts), p, sendAt: Math.floor(ts) + (delayed ? delayMs + 0.5 : 0) };
  });
  rows.sort((a, b) => a.sendAt - b.sendAt || a.seq - b.seq);
  return { clicks: rows.map(({ seq, user, ts }) => ({ seq, user, ts })), partitionOf: new Map(rows.map((r) => [r.seq, r.p])) };
}

/** The region of a user: the second keyBy of the two-stage pipeline. */
export const region = (user: string) => `r${Number(user.slice(1)) % 3}`;

/**
 * Two re-keys with a stateful step that is not windowed between them:
 * keyBy(user).reduce(latest).toStream().keyBy(region).tumbling, collecting each window's clicks.
 */
export function twoStagePipeline(app: App, input: string, output: string, graceMs: number): void {
  app
    .from<Click>(input)
    .keyBy((c) => c.user)
    .reduce((_acc, c) => c)
    .toStream()
    .keyBy((c) => region(c.user))
    .tumbling(SIZE, { grace: graceMs })
    .aggregate({ init: () => [] as number[], add: (seqs: number[], c: Click) => [...seqs, c.seq], merge: (a: number[], b: number[]) => [...a, ...b] })
    .onClose(({ key, start, end, value }): Win => ({ key: key as string, start, end, seqs: [...value].sort((a, b) => a - b) }))
    .to(output);
}

/** The windows of the two-stage pipeline, by brute force. */
export function twoStageReference(input: readonly Click[]): Map<string, number[]> {
  return windowReference(input.map((c) => ({ ...c, user: region(c.user) })), 'tumbling', { size: SIZE, slide: SIZE, gap: GAP });
}
