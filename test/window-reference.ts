/**
 * Brute-force references for the backlog tests (test/backlog-order on the embedded brokers,
 * test/kafka-stepping on Kafka): each window's records by the definition of its kind, and how
 * far an input is out of order.
 */

/** A record of the backlog tests: its sequence number, its key and its event time. */
export interface Stamped {
  readonly seq: number;
  readonly user: string;
  readonly ts: number;
}

export type WindowKind = 'tumbling' | 'hopping' | 'sliding' | 'session';

/** The window shapes a test uses: `size` for tumbling, hopping and sliding, `slide` for hopping, `gap` for sessions. */
export interface WindowShapes {
  readonly size: number;
  readonly slide: number;
  readonly gap: number;
}

/** The input's own disorder: the largest (max timestamp before a record) − (its timestamp). */
export function disorder(input: readonly Stamped[]): number {
  let max = -Infinity;
  let worst = 0;
  for (const record of input) {
    worst = Math.max(worst, max - record.ts);
    max = Math.max(max, record.ts);
  }
  return worst;
}

function push(map: Map<string, number[]>, id: string, seq: number) {
  const list = map.get(id);
  if (list) list.push(seq);
  else map.set(id, [seq]);
}

/** Each window (`key@start@end`) with the sequence numbers of its records, ascending. */
export function windowReference(input: readonly Stamped[], kind: WindowKind, { size, slide, gap }: WindowShapes): Map<string, number[]> {
  const windows = new Map<string, number[]>();
  if (kind === 'tumbling') {
    for (const c of input) {
      const start = Math.floor(c.ts / size) * size;
      push(windows, `${c.user}@${start}@${start + size}`, c.seq);
    }
  } else if (kind === 'hopping') {
    for (const c of input) {
      for (let start = Math.floor(c.ts / slide) * slide; start > c.ts - size; start -= slide) push(windows, `${c.user}@${start}@${start + size}`, c.seq);
    }
  } else {
    const byUser = new Map<string, Stamped[]>();
    for (const c of input) byUser.set(c.user, [...(byUser.get(c.user) ?? []), c]);
    for (const [user, list] of byUser) {
      list.sort((a, b) => a.ts - b.ts);
      if (kind === 'sliding') {
        for (const t of new Set(list.map((c) => c.ts))) windows.set(`${user}@${t - size + 1}@${t + 1}`, list.filter((c) => c.ts > t - size && c.ts <= t).map((c) => c.seq));
        continue;
      }
      let session: Stamped[] = [];
      const flush = () => {
        if (session.length) windows.set(`${user}@${session[0]!.ts}@${session.at(-1)!.ts + 1}`, session.map((c) => c.seq));
      };
      for (const c of list) {
        if (session.length && c.ts - session.at(-1)!.ts > gap) {
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
