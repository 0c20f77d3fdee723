/**
 * Joins on Kafka under SIGKILL: a child (fixtures/join-app.mjs, durable levelState) runs a windowed
 * stream–stream join and leftJoin (within 2 s, grace 3 s) of two 3-partition topics, and a
 * stream–table join of clicks with a tiers table. It is killed at seeded random moments and
 * restarted on the same state dir while input is produced. At the end the output is compared with
 * brute-force references. EDDY_SEED=<n> sets the base seed (variant i uses n + i).
 */
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { mulberry32 } from '@eddy/core/testing';
import { afterAll, expect, it } from 'vitest';
import { replaySeed } from '../replay-seed.ts';
import { describeKafka, uniqueName } from './broker.ts';
import { kill, startChild } from './children.ts';
import { allCommitted, createTopics, deleteAppTopics, gatherTopic, sleep, testAdmin, testProducer, waitFor, type Gathered, type TestMessage } from './helpers.ts';

const fixture = fileURLToPath(new URL('./fixtures/join-app.mjs', import.meta.url));
const baseSeed = replaySeed(7100);
// JR_KEYS=7 gives the dense variant of the first run (many more join results, a busier app).
const KEYS = Array.from({ length: Number(process.env.JR_KEYS ?? 60) }, (_, i) => `k${i}`);
const USERS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5'];
const WITHIN = 2_000;
const STEP = 40; // ms of event time between consecutive events
const DISORDER = 800; // a record may be up to this much behind its nominal time (grace 3 s >= 2x)

interface Ev { k: string; side: 'left' | 'right'; seq: number; ts: number }
interface Click { user: string; seq: number; ts: number }
interface Tier { user: string; tier: string; ts: number }

const variants = [
  { guarantee: 'at-least-once', keyedByJoinKey: false },
  { guarantee: 'at-least-once', keyedByJoinKey: true },
  { guarantee: 'exactly-once', keyedByJoinKey: false },
  { guarantee: 'exactly-once', keyedByJoinKey: true },
] as const;

function counts(records: readonly Gathered[]): Map<string, { n: number; stamps: Set<number> }> {
  const out = new Map<string, { n: number; stamps: Set<number> }>();
  for (const r of records) {
    const entry = out.get(r.value!) ?? { n: 0, stamps: new Set<number>() };
    entry.n++;
    entry.stamps.add(r.timestamp);
    out.set(r.value!, entry);
  }
  return out;
}

describeKafka('joins on Kafka under SIGKILL', (brokers) => {
  const admin = testAdmin(brokers);
  afterAll(() => admin.close());

  variants.forEach((variant, index) => {
    const seed = baseSeed + index;
    it(`${variant.guarantee}, input keyed ${variant.keyedByJoinKey ? 'by the join key' : 'by seq (repartitioned)'}: joins equal the reference across kills (seed ${seed})`, async () => {
      const random = mulberry32(seed);
      const id = uniqueName('jr-kill');
      const t = { left: `${id}-left`, right: `${id}-right`, clicks: `${id}-clicks`, tiers: `${id}-tiers`, outJoin: `${id}-out-join`, outLeft: `${id}-out-left`, outEnriched: `${id}-out-enriched` };
      await createTopics(brokers, [
        { name: t.left, partitions: 3 }, { name: t.right, partitions: 3 }, { name: t.clicks, partitions: 3 }, { name: t.tiers, partitions: 3 },
        { name: t.outJoin, partitions: 1 }, { name: t.outLeft, partitions: 1 }, { name: t.outEnriched, partitions: 1 },
      ]);
      const stateDir = await mkdtemp(join(tmpdir(), 'jr-kill-'));
      const producer = testProducer(brokers);
      const outJoin = await gatherTopic(brokers, t.outJoin);
      const outLeft = await gatherTopic(brokers, t.outLeft);
      const outEnriched = await gatherTopic(brokers, t.outEnriched);
      const args = [brokers.join(','), id, t.left, t.right, t.clicks, t.tiers, t.outJoin, t.outLeft, t.outEnriched, stateDir, variant.guarantee];
      const metricsTotals = { lateRecords: 0, inputWaitsExpired: 0, duplicatesDropped: 0, deadLetters: 0 };
      let stderrAll = '';
      let child: ChildProcess | undefined;
      let last: typeof metricsTotals | undefined;
      const flush = () => {
        if (last) for (const key of Object.keys(metricsTotals) as Array<keyof typeof metricsTotals>) metricsTotals[key] += last[key] ?? 0;
        last = undefined;
      };
      const start = async () => {
        const started = startChild(fixture, args);
        child = started.child;
        let pending = '';
        child.stdout!.on('data', (chunk: Buffer) => {
          pending += chunk.toString();
          const lines = pending.split('\n');
          pending = lines.pop()!;
          for (const line of lines) if (line.startsWith('metrics ')) last = JSON.parse(line.slice(8));
        });
        child.stderr!.on('data', (chunk: Buffer) => (stderrAll += chunk.toString()));
        await started.started;
      };
      const base = Math.floor((Date.now() - 30 * 60_000) / 1000) * 1000;
      const events: Ev[] = [];
      const clicks: Click[] = [];
      const tiers: Tier[] = [];
      let seq = 0;
      let clickSeq = 0;
      let tierN = 0;
      let kills = 0;
      const killBatches: number[] = [];
      const BATCHES = 90;
      const PER_BATCH = 20;
      try {
        await start();
        let killAt = Date.now() + 3_000 + random() * 6_000;
        for (let b = 0; b < BATCHES; b++) {
          // Stream–stream input: PER_BATCH events, nominal times in order, each up to DISORDER behind.
          const batch: Ev[] = [];
          for (let i = 0; i < PER_BATCH; i++) {
            const s = seq++;
            batch.push({ k: KEYS[Math.floor(random() * KEYS.length)]!, side: random() < 0.5 ? 'left' : 'right', seq: s, ts: base + s * STEP - Math.floor(random() * DISORDER) });
          }
          events.push(...batch);
          const msg = (e: Ev): TestMessage => ({ key: variant.keyedByJoinKey ? e.k : `x${e.seq}`, value: JSON.stringify(e), timestamp: e.ts });
          // Clicks keyed by user, strictly increasing timestamps (multiples of STEP), 10 per batch.
          const clickBatch: Click[] = [];
          for (let i = 0; i < 10; i++) {
            const c = clickSeq++;
            clickBatch.push({ user: USERS[Math.floor(random() * USERS.length)]!, seq: c, ts: base + c * 2 * STEP });
          }
          clicks.push(...clickBatch);
          await Promise.all([
            producer.send(t.left, batch.filter((e) => e.side === 'left').map(msg)),
            producer.send(t.right, batch.filter((e) => e.side === 'right').map(msg)),
            producer.send(t.clicks, clickBatch.map((c) => ({ key: c.user, value: JSON.stringify(c), timestamp: c.ts }))),
          ]);
          // Tier updates stamped after every click sent so far and before every click to come (no ties).
          const updates: Tier[] = [];
          for (const user of USERS) if (random() < 0.35) updates.push({ user, tier: `tier-${tierN++}`, ts: base + clickSeq * 2 * STEP - STEP });
          tiers.push(...updates);
          if (updates.length > 0) await producer.send(t.tiers, updates.map((u) => ({ key: u.user, value: JSON.stringify(u.tier), timestamp: u.ts })));
          if (Date.now() >= killAt && kills < 4) {
            await kill(child!);
            killBatches.push(b);
            flush();
            kills++;
            // Keep producing for a while with the app down, sometimes.
            if (random() < 0.5) await sleep(random() * 2_000);
            await start();
            killAt = Date.now() + 3_000 + random() * 8_000;
          }
          await sleep(150 + random() * 250);
        }
        // Closers: a far-future record on both sides for every key (they pair with each other).
        const far = base + seq * STEP + 60_000;
        const closing = KEYS.flatMap((k) => (['left', 'right'] as const).map((side): Ev => ({ k, side, seq: seq++, ts: far })));
        events.push(...closing);
        const msg = (e: Ev): TestMessage => ({ key: variant.keyedByJoinKey ? e.k : `x${e.seq}`, value: JSON.stringify(e), timestamp: e.ts });
        await producer.send(t.left, closing.filter((e) => e.side === 'left').map(msg));
        await producer.send(t.right, closing.filter((e) => e.side === 'right').map(msg));

        // References.
        const pairs = new Map<string, number>();
        const leftRef = new Map<string, number>();
        const lefts = events.filter((e) => e.side === 'left');
        const rights = events.filter((e) => e.side === 'right');
        for (const l of lefts) {
          let matched = false;
          for (const r of rights) {
            if (r.k === l.k && Math.abs(r.ts - l.ts) <= WITHIN) {
              matched = true;
              pairs.set(JSON.stringify({ key: l.k, l: l.seq, r: r.seq }), Math.max(l.ts, r.ts));
              leftRef.set(JSON.stringify({ key: l.k, l: l.seq, r: r.seq }), Math.max(l.ts, r.ts));
            }
          }
          if (!matched) leftRef.set(JSON.stringify({ key: l.k, l: l.seq, r: null }), l.ts);
        }
        const enrichedRef = new Map<string, number>();
        for (const c of clicks) {
          const seen = tiers.filter((u) => u.user === c.user && u.ts <= c.ts).sort((a, b) => a.ts - b.ts).at(-1);
          if (seen) enrichedRef.set(JSON.stringify({ key: c.user, seq: c.seq, tier: seen.tier }), c.ts);
        }

        const allIn = (ref: Map<string, number>, got: Gathered[]) => {
          const have = new Set(got.map((r) => r.value));
          return [...ref.keys()].every((k) => have.has(k));
        };
        try {
          await waitFor('every expected result', () => allIn(pairs, outJoin.records) && allIn(leftRef, outLeft.records) && allIn(enrichedRef, outEnriched.records), { timeoutMs: 120_000, intervalMs: 500 });
        } catch {
          // fall through: the comparison below says what is missing
        }
        await waitFor('inputs committed', () => allCommitted(admin, id, [t.left, t.right, t.clicks, t.tiers]), { timeoutMs: 60_000 }).catch(() => undefined);
        await sleep(3_000);

        const report = (name: string, ref: Map<string, number>, got: Gathered[]) => {
          const c = counts(got);
          const missing = [...ref.keys()].filter((k) => !c.has(k));
          const extra = [...c.keys()].filter((k) => !ref.has(k));
          const wrongTs = [...ref].filter(([k, ts]) => c.has(k) && (c.get(k)!.stamps.size !== 1 || !c.get(k)!.stamps.has(ts))).map(([k, ts]) => ({ k, want: ts, got: [...c.get(k)!.stamps] }));
          const dups = [...c].filter(([, v]) => v.n > 1).map(([k, v]) => ({ k, n: v.n }));
          return { name, expected: ref.size, records: got.length, missing, extra, wrongTs, dups };
        };
        const results = [report('join', pairs, outJoin.records), report('leftJoin', leftRef, outLeft.records), report('enriched', enrichedRef, outEnriched.records)];
        flush();
        const summary = results.map((r) => ({ name: r.name, expected: r.expected, records: r.records, missing: r.missing.length, extra: r.extra.length, wrongTs: r.wrongTs.length, dups: r.dups.length }));
        console.log(`[joins-kills] seed ${seed} ${JSON.stringify(variant)} kills ${kills} metrics ${JSON.stringify(metricsTotals)} ${JSON.stringify(summary)}`);
        for (const r of results) {
          if (r.missing.length || r.extra.length || r.wrongTs.length || (variant.guarantee === 'exactly-once' && r.dups.length)) {
            console.log(`[joins-kills] seed ${seed} ${r.name}: missing ${JSON.stringify(r.missing.slice(0, 30))} extra ${JSON.stringify(r.extra.slice(0, 30))} wrongTs ${JSON.stringify(r.wrongTs.slice(0, 10))} dups ${JSON.stringify(r.dups.slice(0, 20))}`);
          }
        }
        {
          // Diagnostics of the stream–table join: what each wrong click saw, against the user's tier history.
          const got = new Map<number, string[]>();
          for (const r of outEnriched.records) {
            const v = JSON.parse(r.value!) as { seq: number; tier: string };
            got.set(v.seq, [...(got.get(v.seq) ?? []), v.tier]);
          }
          const lines: string[] = [];
          for (const c of clicks) {
            const want = tiers.filter((u) => u.user === c.user && u.ts <= c.ts).sort((a, b) => a.ts - b.ts).at(-1)?.tier;
            const have = got.get(c.seq) ?? [];
            if (have.some((x) => x !== want) || (want !== undefined && !have.includes(want))) {
              const hist = tiers.filter((u) => u.user === c.user && Math.abs(u.ts - c.ts) < 3_000).map((u) => `${u.tier}@${u.ts - c.ts}`);
              lines.push(`click ${c.seq} ${c.user} (batch ${Math.floor(c.seq / 10)}): want ${want} got ${JSON.stringify(have)}; tiers near (ts - click ts): ${hist.join(' ')}`);
            }
          }
          if (lines.length > 0) writeFileSync(join(tmpdir(), `jr-enriched-${seed}.txt`), `${lines.join('\n')}\n`);
          console.log(`[joins-kills] seed ${seed} enriched wrong clicks: ${lines.length} (all in ${join(tmpdir(), `jr-enriched-${seed}.txt`)}); kills after click batches ${JSON.stringify(killBatches)}\n${lines.slice(0, 25).join('\n')}`);
        }
        if (/ERROR/.test(stderrAll)) console.log(`[joins-kills] child stderr:\n${stderrAll.split('\n').filter((l) => /ERROR/.test(l)).slice(0, 20).join('\n')}`);
        for (const r of results) {
          expect(r.missing, `${r.name}: missing`).toEqual([]);
          expect(r.extra, `${r.name}: extra`).toEqual([]);
          expect(r.wrongTs, `${r.name}: timestamps`).toEqual([]);
          if (variant.guarantee === 'exactly-once') expect(r.dups, `${r.name}: duplicates under exactly-once`).toEqual([]);
        }
        expect(kills).toBeGreaterThan(0);
      } finally {
        if (child) await kill(child);
        await outJoin.stop();
        await outLeft.stop();
        await outEnriched.stop();
        await producer.close();
        await deleteAppTopics(admin, id);
        await rm(stateDir, { recursive: true, force: true });
      }
    }, 600_000);
  });
});
