/**
 * Brute-force references for the pipelines of child-app.mjs, computed from the input its log
 * holds, and the types of its input and output topics.
 */
import type { LoggedRecord } from './harness.ts';

/** Topic `events`: jittered, out of order. */
export interface Event {
  seq: number;
  user: string;
  n: number;
  ts: number;
}

/** Topic `clicks`: in timestamp order. */
export interface Click {
  seq: number;
  user: string;
  ts: number;
}

/** The value of each topic of child-app.mjs: its input (`tiers`: a user's tier, keyed by the user) and its results. */
export interface Topics {
  events: Event;
  clicks: Click;
  tiers: string;
  sessions: { user: string; start: number; end: number; sum: number; seqs: number[] };
  counts: { user: string; start: number; end: number; seqs: number[] };
  enriched: { seq: number; user: string; ts: number; tier: string };
  'per-second': { user: string; start: number; end: number; count: number };
  /** `conflict` instead of `total` when two per-second results of one second disagree. */
  'per-10s': { user: string; start: number; total?: number; conflict?: [second: number, count: number, otherCount: number] };
}

export const SESSION_GAP = 500;

/** Sessions of gap SESSION_GAP per user, keyed `user@start`, as the child's onClose writes them. */
export function referenceSessions(events: LoggedRecord<Event>[]): Map<string, string> {
  const byUser = new Map<string, Event[]>();
  for (const { value } of events) byUser.set(value.user, [...(byUser.get(value.user) ?? []), value]);
  const out = new Map<string, string>();
  for (const [user, list] of byUser) {
    list.sort((a, b) => a.ts - b.ts);
    let current: Event[] = [];
    const flush = () => {
      if (current.length === 0) return;
      const start = current[0]!.ts;
      const last = current[current.length - 1]!.ts;
      out.set(`${user}@${start}`, JSON.stringify({ user, start, end: last + 1, sum: current.reduce((s, e) => s + e.n, 0), seqs: current.map((e) => e.seq).sort((a, b) => a - b) }));
      current = [];
    };
    for (const event of list) {
      if (current.length > 0 && event.ts - current[current.length - 1]!.ts > SESSION_GAP) flush();
      current.push(event);
    }
    flush();
  }
  return out;
}

/** Count windows of 5, in log order per partition (arrival order); complete ones only. */
export function referenceCounts(events: LoggedRecord<Event>[]): Map<string, string> {
  const byUser = new Map<string, Event[]>();
  const ordered = [...events].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  for (const { value } of ordered) byUser.set(value.user, [...(byUser.get(value.user) ?? []), value]);
  const out = new Map<string, string>();
  for (const [user, list] of byUser) {
    for (let i = 0; i + 5 <= list.length; i += 5) {
      const group = list.slice(i, i + 5);
      const start = Math.min(...group.map((e) => e.ts));
      const end = Math.max(...group.map((e) => e.ts)) + 1;
      out.set(`${user}#${i / 5}`, JSON.stringify({ user, start, end, seqs: group.map((e) => e.seq).sort((a, b) => a - b) }));
    }
  }
  return out;
}

/** Per click seq: the tier of the latest update of its user stamped at or before it (undefined: dropped by the inner join). */
export function referenceJoin(clicks: LoggedRecord<Click>[], tiers: LoggedRecord<string>[]): Map<number, string | undefined> {
  const updates = tiers.map((record) => ({ user: record.key!, tier: record.value, ts: record.timestamp }));
  const out = new Map<number, string | undefined>();
  for (const { value: click } of clicks) {
    let best: { ts: number; tier: string } | undefined;
    for (const update of updates) if (update.user === click.user && update.ts <= click.ts && (!best || update.ts >= best.ts)) best = update;
    out.set(click.seq, best?.tier);
  }
  return out;
}

/** Clicks per user and tumbling window of `sizeMs`, keyed `user@start`. */
export function referenceClickCounts(clicks: LoggedRecord<Click>[], sizeMs: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const { value } of clicks) {
    const key = `${value.user}@${Math.floor(value.ts / sizeMs) * sizeMs}`;
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}
