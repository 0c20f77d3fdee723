/** Shared pieces of the stepping review tests: inputs, brute-force references, an output reader. */
import { mulberry32 } from '@eddy/core/testing';
import { gatherTopic, type Gathered } from '../kafka/helpers.ts';

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

/** The largest (max timestamp before a record) − its timestamp. */
export function disorder(input: readonly Click[]): number {
  let max = -Infinity;
  let worst = 0;
  for (const c of input) {
    worst = Math.max(worst, max - c.ts);
    max = Math.max(max, c.ts);
  }
  return worst;
}

function push(map: Map<string, number[]>, id: string, seq: number) {
  const list = map.get(id);
  if (list) list.push(seq);
  else map.set(id, [seq]);
}

export function reference(input: readonly Click[], kind: Kind): Map<string, number[]> {
  const windows = new Map<string, number[]>();
  if (kind === 'tumbling') {
    for (const c of input) {
      const start = Math.floor(c.ts / SIZE) * SIZE;
      push(windows, `${c.user}@${start}@${start + SIZE}`, c.seq);
    }
  } else if (kind === 'hopping') {
    for (const c of input) for (let start = Math.floor(c.ts / SLIDE) * SLIDE; start > c.ts - SIZE; start -= SLIDE) push(windows, `${c.user}@${start}@${start + SIZE}`, c.seq);
  } else {
    const byUser = new Map<string, Click[]>();
    for (const c of input) byUser.set(c.user, [...(byUser.get(c.user) ?? []), c]);
    for (const [user, list] of byUser) {
      list.sort((a, b) => a.ts - b.ts);
      if (kind === 'sliding') {
        for (const t of new Set(list.map((c) => c.ts))) windows.set(`${user}@${t - SIZE + 1}@${t + 1}`, list.filter((c) => c.ts > t - SIZE && c.ts <= t).map((c) => c.seq));
        continue;
      }
      let session: Click[] = [];
      const flush = () => {
        if (session.length) windows.set(`${user}@${session[0]!.ts}@${session.at(-1)!.ts + 1}`, session.map((c) => c.seq));
      };
      for (const c of list) {
        if (session.length && c.ts - session.at(-1)!.ts > GAP) {
          flush();
          session = [];
        }
        session.push(c);
      }
      flush();
    }
  }
  for (const list of windows.values()) list.sort((a, b) => a - b);
  return windows;
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
