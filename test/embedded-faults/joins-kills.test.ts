/**
 * Joins in the durable embedded mode under SIGKILL: a forked child (join-app.mjs, driven
 * over IPC by harness.ts) runs a windowed stream–stream join and leftJoin
 * (within 2 s, grace 3 s) and a stream–table join on levelTransport + levelState in one dir. It is
 * killed at seeded random moments while the test sends input, and restarted on the same dir. After
 * a last clean run the log is read back and every output is compared with a brute-force reference
 * computed from the input records the log holds (at least once: repeats allowed, only identical).
 * EDDY_SEED=<n> sets the base seed (variant i uses n + i).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from '@eddy/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { replaySeed } from '../replay-seed.ts';
import { readLog, sleep, startChild, type Child, type LoggedRecord } from './harness.ts';

const script = fileURLToPath(new URL('./join-app.mjs', import.meta.url));
const baseSeed = replaySeed(8300);
const KEYS = Array.from({ length: 60 }, (_, i) => `k${i}`);
const USERS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5'];
const WITHIN = 2_000;
const STEP = 40;
const DISORDER = 800;

interface Ev { k: string; side: 'left' | 'right'; seq: number; ts: number }
interface Click { user: string; seq: number; ts: number }

const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

describe('joins in the durable embedded mode under SIGKILL', () => {
  [{ keyedByJoinKey: false }, { keyedByJoinKey: true }].forEach((variant, index) => {
    const seed = baseSeed + index;
    it(`input keyed ${variant.keyedByJoinKey ? 'by the join key' : 'by seq (repartitioned)'}: joins equal the reference across kills (seed ${seed})`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'jr-embedded-'));
      dirs.push(dir);
      const random = mulberry32(seed);
      const base = Math.floor((Date.now() - 3_600_000) / 1000) * 1000;
      let child: Child = await startChild(dir, { script });
      let seq = 0;
      let clickSeq = 0;
      let tierN = 0;
      let kills = 0;
      const errors: string[] = [];
      const notes: string[] = [];
      const key = (e: Ev) => (variant.keyedByJoinKey ? e.k : `x${e.seq}`);
      try {
        let killAt = Date.now() + 300 + random() * 1_500;
        for (let b = 0; b < 300; b++) {
          const batch: Ev[] = [];
          for (let i = 0; i < 20; i++) {
            const s = seq++;
            batch.push({ k: KEYS[Math.floor(random() * KEYS.length)]!, side: random() < 0.5 ? 'left' : 'right', seq: s, ts: base + s * STEP - Math.floor(random() * DISORDER) });
          }
          const clickBatch: Click[] = [];
          for (let i = 0; i < 10; i++) {
            const c = clickSeq++;
            clickBatch.push({ user: USERS[Math.floor(random() * USERS.length)]!, seq: c, ts: base + c * 2 * STEP });
          }
          const sends = [
            child.send('left', batch.filter((e) => e.side === 'left').map((e) => ({ value: e, key: key(e) }))),
            child.send('right', batch.filter((e) => e.side === 'right').map((e) => ({ value: e, key: key(e) }))),
          ];
          // Clicks first, then the tier updates stamped after them (no ties), in that order.
          await child.send('clicks', clickBatch.map((c) => ({ value: c, key: c.user })));
          const updates = USERS.filter(() => random() < 0.35).map((user) => ({ value: `tier-${tierN++}`, key: user, timestamp: base + clickSeq * 2 * STEP - STEP }));
          if (updates.length > 0) await child.send('tiers', updates);
          await Promise.all(sends);
          if (Date.now() >= killAt) {
            await child.kill();
            errors.push(...child.messages.filter((m) => m.type === 'error').map((m) => JSON.stringify(m)));
            kills++;
            child = await startChild(dir, { script });
            killAt = Date.now() + 200 + random() * 1_200;
          } else if (random() < 0.3) {
            await sleep(random() * 100);
          }
        }
        const far = base + seq * STEP + 60_000;
        const closing = KEYS.flatMap((k) => (['left', 'right'] as const).map((side): Ev => ({ k, side, seq: seq++, ts: far })));
        expect(await child.send('left', closing.filter((e) => e.side === 'left').map((e) => ({ value: e, key: key(e) })))).toBe(true);
        expect(await child.send('right', closing.filter((e) => e.side === 'right').map((e) => ({ value: e, key: key(e) })))).toBe(true);
        const idle = await child.idle();
        notes.push(`last run metrics: late ${JSON.stringify((idle?.metrics as Record<string, unknown>)?.lateRecords)} inputWaitsExpired ${JSON.stringify((idle?.metrics as Record<string, unknown>)?.inputWaitsExpired)} health ${JSON.stringify(idle?.health)}`);
        errors.push(...child.messages.filter((m) => m.type === 'error').map((m) => JSON.stringify(m)));
        expect(await child.stop()).toBe(true);
      } finally {
        await child.kill();
      }
      type Topics = { left: Ev; right: Ev; clicks: Click; tiers: string; 'out-join': unknown; 'out-left': unknown; 'out-enriched': unknown };
      const log = await readLog<Topics>(dir, ['left', 'right', 'clicks', 'tiers', 'out-join', 'out-left', 'out-enriched']);
      const lefts = log.left.map((r) => r.value);
      const rights = log.right.map((r) => r.value);
      const pairs = new Map<string, number>();
      const leftRef = new Map<string, number>();
      for (const l of lefts) {
        let matched = false;
        for (const r of rights) {
          if (r.k === l.k && Math.abs(r.ts - l.ts) <= WITHIN) {
            matched = true;
            const v = JSON.stringify({ key: l.k, l: l.seq, r: r.seq });
            pairs.set(v, Math.max(l.ts, r.ts));
            leftRef.set(v, Math.max(l.ts, r.ts));
          }
        }
        if (!matched) leftRef.set(JSON.stringify({ key: l.k, l: l.seq, r: null }), l.ts);
      }
      const enrichedRef = new Map<string, number>();
      for (const c of log.clicks.map((r) => r.value)) {
        const seen = log.tiers.filter((u) => u.key === c.user && u.timestamp <= c.ts).sort((a, b) => a.timestamp - b.timestamp).at(-1);
        if (seen) enrichedRef.set(JSON.stringify({ key: c.user, seq: c.seq, tier: seen.value }), c.ts);
      }
      const report = (name: string, ref: Map<string, number>, got: Array<LoggedRecord<unknown>>) => {
        const c = new Map<string, Set<number>>();
        for (const r of got) {
          const v = JSON.stringify(r.value);
          c.set(v, (c.get(v) ?? new Set()).add(r.timestamp));
        }
        const missing = [...ref.keys()].filter((k) => !c.has(k));
        const extra = [...c.keys()].filter((k) => !ref.has(k));
        const wrongTs = [...ref].filter(([k, ts]) => c.has(k) && (c.get(k)!.size !== 1 || !c.get(k)!.has(ts))).map(([k, ts]) => ({ k, want: ts, got: [...c.get(k)!] }));
        return { name, expected: ref.size, records: got.length, missing, extra, wrongTs };
      };
      const results = [report('join', pairs, log['out-join']), report('leftJoin', leftRef, log['out-left']), report('enriched', enrichedRef, log['out-enriched'])];
      console.log(`[joins-kills embedded] seed ${seed} ${JSON.stringify(variant)} kills ${kills} inputs ${lefts.length}+${rights.length} ${notes.join(' ')} ${JSON.stringify(results.map((r) => ({ name: r.name, expected: r.expected, records: r.records, missing: r.missing.length, extra: r.extra.length, wrongTs: r.wrongTs.length })))}`);
      for (const r of results) if (r.missing.length || r.extra.length || r.wrongTs.length) console.log(`[joins-kills embedded] seed ${seed} ${r.name}: missing ${JSON.stringify(r.missing.slice(0, 30))} extra ${JSON.stringify(r.extra.slice(0, 30))} wrongTs ${JSON.stringify(r.wrongTs.slice(0, 10))}`);
      expect(errors, 'the app reported no error').toEqual([]);
      for (const r of results) {
        expect(r.missing, `${r.name}: missing`).toEqual([]);
        expect(r.extra, `${r.name}: extra`).toEqual([]);
        expect(r.wrongTs, `${r.name}: timestamps`).toEqual([]);
      }
      expect(kills).toBeGreaterThan(0);
    }, 600_000);
  });
});
