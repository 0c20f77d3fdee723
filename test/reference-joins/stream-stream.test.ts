/**
 * Windowed stream–stream joins (join, leftJoin, outerJoin) against a brute-force model of README
 * "Tables and joins", "Stream–stream, windowed":
 * - one partition, records sent one at a time (processing order = send order), out of order by up
 *   to well past grace, so some records are late; checked after every record and at the end;
 * - stop and restart in the middle;
 * - four partitions, disorder within grace: every pair once, every unmatched record once;
 * - both sides preloaded before start: merged by timestamp, every pair, none late.
 */
import { describe, expect, it } from 'vitest';
import { createApp, memoryTransport, MemoryTransport, silentLogger } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { canon, diff, preload, rng } from './util.ts';

type Mode = 'inner' | 'left' | 'outer';
interface Ev {
  side: 'L' | 'R';
  id: number;
  key: string;
  ts: number;
}
const W = 300;
const G = 200;

const joiner = (l: Ev | undefined, r: Ev | undefined) => ({ l: l?.id ?? null, r: r?.id ?? null });

function events(seed: number, n: number, maxDelay: number, keys = 3): Ev[] {
  const random = rng(seed);
  let t = 10_000;
  const evs = Array.from({ length: n }, (_, id) => {
    t += Math.floor(random() * 120);
    return { side: random() < 0.5 ? 'L' : 'R', id, key: `k${Math.floor(random() * keys)}`, ts: t } as Ev;
  });
  const arrival = new Map(evs.map((e) => [e, e.ts + (random() < 0.85 ? random() * G * 0.9 : random() * maxDelay)]));
  return evs.sort((a, b) => arrival.get(a)! - arrival.get(b)!);
}

interface Out {
  key: string;
  value: unknown;
  timestamp: number;
}

/**
 * The model. `closedJoins`: whether a late record whose own window has already closed still joins
 * partners left in the other buffer (README: "it joins only those still there, and it is dropped
 * once its own window has closed" — read both ways).
 */
function model(evs: readonly Ev[], mode: Mode, closedJoins: boolean) {
  let st = -Infinity;
  const buf: Record<'L' | 'R', Array<{ ev: Ev; matched: boolean }>> = { L: [], R: [] };
  const perStep: Out[][] = [];
  let late = 0;
  const expire = (): Out[] => {
    const out: Out[] = [];
    for (const side of ['L', 'R'] as const) {
      buf[side] = buf[side].filter((entry) => {
        if (entry.ev.ts + W + G >= st) return true;
        if (!entry.matched && ((side === 'L' && mode !== 'inner') || (side === 'R' && mode === 'outer')))
          out.push({ key: entry.ev.key, value: side === 'L' ? joiner(entry.ev, undefined) : joiner(undefined, entry.ev), timestamp: entry.ev.ts });
        return false;
      });
    }
    return out;
  };
  for (const ev of evs) {
    const out: Out[] = [];
    const isLate = ev.ts < st - G;
    const closed = ev.ts + W + G < st;
    if (isLate) late++;
    const other = buf[ev.side === 'L' ? 'R' : 'L'];
    let matched = false;
    if (!closed || closedJoins) {
      for (const p of other) {
        if (p.ev.key !== ev.key || Math.abs(p.ev.ts - ev.ts) > W) continue;
        p.matched = true;
        matched = true;
        const [l, r] = ev.side === 'L' ? [ev, p.ev] : [p.ev, ev];
        out.push({ key: ev.key, value: joiner(l, r), timestamp: Math.max(l.ts, r.ts) });
      }
    }
    if (!closed) buf[ev.side].push({ ev, matched });
    st = Math.max(st, ev.ts);
    out.push(...expire());
    perStep.push(out);
  }
  st = Infinity;
  const final = expire();
  return { perStep, final, late };
}

function joinApp(mode: Mode, id: string) {
  const app = createApp({ id, logger: silentLogger, idleTimeout: '1s' });
  const lefts = app.from<Ev>('lefts').keyBy((e) => e.key);
  const rights = app.from<Ev>('rights').keyBy((e) => e.key);
  const options = { within: W, grace: G };
  (mode === 'inner' ? lefts.join(rights, joiner, options) : mode === 'left' ? lefts.leftJoin(rights, joiner, options) : lefts.outerJoin(rights, joiner, options)).to('joined');
  return app;
}

const send = (driver: TestDriver, e: Ev) => driver.send(e.side === 'L' ? 'lefts' : 'rights', e, { key: `in-${e.id % 5}`, timestamp: e.ts });
const outs = (driver: TestDriver) => driver.read('joined').map(({ key, value, timestamp }) => canon({ key, value, timestamp }));

const SEEDS = Array.from({ length: 12 }, (_, i) => 100 + i);

describe('windowed stream–stream joins against the model', () => {
  for (const mode of ['inner', 'left', 'outer'] as const) {
    it(`step by step, with late records (${mode}, ${SEEDS.length} seeds)`, async () => {
      let totalLate = 0;
      const aliveVariants = new Set<string>();
      for (const seed of SEEDS) {
        const evs = events(seed, 150, 3 * (W + G));
        const variants = [model(evs, mode, true), model(evs, mode, false)];
        const app = joinApp(mode, `ss-${mode}-${seed}`);
        const driver = await TestDriver.start(app);
        const alive = variants.map(() => true);
        const cum = variants.map(() => [] as string[]);
        let firstFail = '';
        for (let i = 0; i < evs.length; i++) {
          await send(driver, evs[i]!);
          const actual = outs(driver);
          variants.forEach((v, j) => {
            cum[j]!.push(...v.perStep[i]!.map(canon));
            const d = diff(actual, cum[j]!);
            if (alive[j] && (d.missing.length || d.extra.length)) {
              alive[j] = false;
              if (!firstFail) firstFail = `seed ${seed} step ${i} ev ${canon(evs[i])} variant ${j}: ${canon(d)}`;
            }
          });
          if (!alive.some(Boolean)) break;
        }
        expect(alive.some(Boolean), firstFail).toBe(true);
        await driver.advanceTime('1h');
        const j = alive.indexOf(true);
        totalLate += variants[j]!.late;
        aliveVariants.add(alive.map(Number).join(''));
        const d = diff(outs(driver), [...cum[j]!, ...variants[j]!.final.map(canon)]);
        expect(d, `seed ${seed} final`).toEqual({ missing: [], extra: [] });
        expect(app.metrics().lateRecords, `seed ${seed}`).toBe(variants[j]!.late);
        await driver.stop();
      }
      console.log(`[reference-joins] ${mode}: late records over seeds ${totalLate}; model variants consistent (joins-when-closed, not): ${[...aliveVariants]}`);
      expect(totalLate).toBeGreaterThan(0);
    });
  }

  for (const mode of ['left', 'outer'] as const) {
    it(`stop and restart in the middle (${mode}, 8 seeds × 3 cut points)`, async () => {
      for (const seed of SEEDS.slice(0, 8)) {
        const evs = events(seed, 120, 3 * (W + G));
        const variants = [model(evs, mode, true), model(evs, mode, false)];
        const expected = variants.map((v) => [...v.perStep.flat(), ...v.final].map(canon));
        for (const cut of [17, 60, 101]) {
          const transport: MemoryTransport = memoryTransport({ defaultPartitions: 1 });
          const id = `ss-restart-${mode}-${seed}-${cut}`;
          const first = await TestDriver.start(joinApp(mode, id), { transport });
          for (const e of evs.slice(0, cut)) await send(first, e);
          await first.stop();
          const app = joinApp(mode, id);
          const again = await TestDriver.start(app, { transport });
          for (const e of evs.slice(cut)) await send(again, e);
          await again.advanceTime('1h');
          const actual = outs(again);
          const diffs = expected.map((exp) => diff(actual, exp));
          const ok = diffs.some((d) => !d.missing.length && !d.extra.length);
          expect(ok, `seed ${seed} cut ${cut}: ${canon(diffs[1])}`).toBe(true);
          await again.stop();
        }
      }
    });
  }

  it('4 partitions, disorder within grace: every pair once, unmatched once (outer, 6 seeds)', async () => {
    for (const seed of SEEDS.slice(0, 6)) {
      const evs = events(seed, 200, G * 0.9, 9);
      const v = model(evs, 'outer', false);
      const app = joinApp('outer', `ss-p4-${seed}`);
      const driver = await TestDriver.start(app, { partitions: 4 });
      for (const e of evs) await send(driver, e);
      await driver.advanceTime('1h');
      expect(diff(outs(driver), [...v.perStep.flat(), ...v.final].map(canon)), `seed ${seed}`).toEqual({ missing: [], extra: [] });
      expect(app.metrics().lateRecords).toBe(0);
      await driver.stop();
    }
  });

  for (const [partitions, rekey] of [[1, true], [4, false]] as const) {
    it(`preloaded both sides (disorder < grace inside each topic): merged by timestamp, every pair, none late (outer, ${partitions}p, input ${rekey ? 'keyed otherwise, through a repartition topic' : 'keyed by the join key'}, 6 seeds)`, async () => {
      for (const seed of SEEDS.slice(0, 6)) {
        const random = rng(seed * 31);
        const evs: Ev[] = [];
        for (const side of ['L', 'R'] as const) {
          let t = 10_000 + (side === 'R' ? 3 : 0);
          const mine = Array.from({ length: 600 }, () => {
            t += Math.floor(random() * 40);
            return { side, id: evs.length + 0, key: `k${Math.floor(random() * 6)}`, ts: t } as Ev;
          });
          // out of order within the topic by less than grace
          const arrival = new Map(mine.map((e) => [e, e.ts + random() * G * 0.9]));
          mine.sort((a, b) => arrival.get(a)! - arrival.get(b)!);
          for (const e of mine) evs.push({ ...e, id: evs.length });
        }
        const transport = new MemoryTransport({ defaultPartitions: partitions });
        preload(transport, 'lefts', partitions, evs.filter((e) => e.side === 'L').map((e) => ({ key: rekey ? `in-${e.id % 5}` : e.key, value: e, timestamp: e.ts })));
        preload(transport, 'rights', partitions, evs.filter((e) => e.side === 'R').map((e) => ({ key: rekey ? `in-${e.id % 5}` : e.key, value: e, timestamp: e.ts })));
        const app = createApp({ id: `ss-pre-${partitions}-${rekey}-${seed}`, logger: silentLogger, idleTimeout: '1s' });
        const lefts = app.from<Ev>('lefts').keyBy((e) => e.key);
        const rights = app.from<Ev>('rights').keyBy((e) => e.key);
        lefts.outerJoin(rights, joiner, { within: W, grace: G }).to('joined');
        const driver = await TestDriver.start(app, { transport });
        await driver.advanceTime('1h');
        const expected: string[] = [];
        const partnered = new Set<Ev>();
        for (const l of evs) for (const r of evs) if (l.side === 'L' && r.side === 'R' && l.key === r.key && Math.abs(l.ts - r.ts) <= W) {
          partnered.add(l).add(r);
          expected.push(canon({ key: l.key, value: joiner(l, r), timestamp: Math.max(l.ts, r.ts) }));
        }
        for (const e of evs) if (!partnered.has(e)) expected.push(canon({ key: e.key, value: e.side === 'L' ? joiner(e, undefined) : joiner(undefined, e), timestamp: e.ts }));
        expect(diff(outs(driver), expected), `seed ${seed}`).toEqual({ missing: [], extra: [] });
        expect(app.metrics().lateRecords, `seed ${seed}`).toBe(0);
        await driver.stop();
      }
    });
  }
});
