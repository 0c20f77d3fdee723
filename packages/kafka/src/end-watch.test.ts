/**
 * EndWatch's own logic, with the broker's answers played by hand and a hand-moved clock: when a
 * member counts as keeping up with a partition, since when, and what breaks that.
 */
import { describe, expect, it } from 'vitest';
import { EndWatch, type PartitionOffsets } from './end-watch.js';

const tp = { topic: 't', partition: 0 };

/** A watch whose broker answers with `ends` (or fails), on a clock the test moves. */
function watch() {
  let now = 1_000_000;
  let answer: PartitionOffsets[] | Error = [{ partition: 0, low: 0, high: 0 }];
  const ends = new EndWatch({
    readOffsets: async () => {
      if (answer instanceof Error) throw answer;
      return answer;
    },
    intervalMs: 500,
    breakAfterMs: 2_000,
    now: () => now,
    log: () => undefined,
  });
  ends.assigned(tp);
  ends.stop(); // the test asks by hand
  return {
    ends,
    at: (ms: number) => (now = ms),
    advance: (ms: number) => (now += ms),
    now: () => now,
    answer: (high: number | Error, low = 0) => (answer = high instanceof Error ? high : [{ partition: 0, low, high }]),
  };
}

describe('EndWatch: keeping up with a partition by the broker’s word', () => {
  it('knows nothing of a partition just assigned until the broker answers', async () => {
    const w = watch();
    expect(w.ends.caughtUp(tp)).toBeUndefined();
    await w.ends.ask();
    // An empty partition, nothing delivered: the member starts where the log starts, at its end.
    expect(w.ends.caughtUp(tp)).toEqual({ forMs: 0, confirmedAgoMs: 0 });
  });

  it('counts quiet time over an unbroken run of answers, and says how old the last one is', async () => {
    const w = watch();
    w.ends.delivered(tp, 10);
    w.answer(10);
    await w.ends.ask();
    for (let step = 0; step < 8; step++) {
      w.advance(500);
      await w.ends.ask();
    }
    w.advance(300);
    expect(w.ends.caughtUp(tp)).toEqual({ forMs: 4_300, confirmedAgoMs: 300 });
  });

  it('is behind while the log holds records the member has not delivered, and keeps up again once it delivers them in time', async () => {
    const w = watch();
    w.ends.delivered(tp, 10);
    w.answer(10);
    await w.ends.ask();
    w.advance(500);
    w.answer(15);
    await w.ends.ask();
    // Not yet delivered: this answer is not kept up with yet, the earlier one still holds.
    expect(w.ends.caughtUp(tp)).toEqual({ forMs: 500, confirmedAgoMs: 500 });
    w.advance(400);
    w.ends.delivered(tp, 15);
    // Delivered 400 ms after it was asked for: kept up, the run goes on.
    expect(w.ends.caughtUp(tp)).toEqual({ forMs: 900, confirmedAgoMs: 400 });
  });

  it('breaks the run when the member reaches an answer’s end too late', async () => {
    const w = watch();
    w.ends.delivered(tp, 10);
    w.answer(10);
    await w.ends.ask();
    w.answer(20);
    for (let step = 0; step < 6; step++) {
      w.advance(500);
      await w.ends.ask();
    }
    expect(w.ends.caughtUp(tp), 'behind for longer than the tolerance').toBeUndefined();
    w.ends.delivered(tp, 20);
    expect(w.ends.caughtUp(tp)).toBeUndefined();
    await w.ends.ask();
    // A new run starts with the next answer kept up with.
    expect(w.ends.caughtUp(tp)).toEqual({ forMs: 0, confirmedAgoMs: 0 });
  });

  it('takes answers that stop coming for a break: the partition counts as behind, not quiet', async () => {
    const w = watch();
    w.ends.delivered(tp, 10);
    w.answer(10);
    await w.ends.ask();
    w.answer(new Error('broker down'));
    for (let step = 0; step < 10; step++) {
      w.advance(500);
      await w.ends.ask();
    }
    expect(w.ends.caughtUp(tp)).toBeUndefined();
  });

  it('after a break in the broker’s answers, counts quiet only after as long again', async () => {
    const w = watch();
    w.ends.delivered(tp, 10);
    w.answer(10);
    await w.ends.ask();
    const lastBefore = w.now();
    w.answer(new Error('broker down'));
    w.advance(15_000);
    await w.ends.ask();
    w.answer(10);
    w.advance(500);
    await w.ends.ask();
    const back = w.now();
    const breakMs = back - lastBefore;
    // Answers come again, and the member keeps up, but producers may still be sending what they kept.
    for (let ms = 500; ms < breakMs; ms += 500) {
      w.advance(500);
      await w.ends.ask();
      expect(w.ends.caughtUp(tp), `${ms} ms after the broker is back`).toBeUndefined();
    }
    w.at(back + breakMs + 250);
    await w.ends.ask();
    expect(w.ends.caughtUp(tp)).toEqual({ forMs: 250, confirmedAgoMs: 0 });
  });

  it('forgets what it knew when the member moves (a seek), and counts lag from the last answer', async () => {
    const w = watch();
    w.ends.delivered(tp, 10);
    w.answer(12);
    await w.ends.ask();
    expect(w.ends.lag(tp)).toBe(2);
    w.ends.delivered(tp, 12);
    expect(w.ends.caughtUp(tp)).toBeDefined();
    w.ends.moved(tp, 5);
    expect(w.ends.caughtUp(tp)).toBeUndefined();
    expect(w.ends.lag(tp)).toBe(7);
  });

  it('gives a released partition up', async () => {
    const w = watch();
    await w.ends.ask();
    expect(w.ends.caughtUp(tp)).toBeDefined();
    w.ends.released(tp);
    expect(w.ends.caughtUp(tp)).toBeUndefined();
    expect(w.ends.lag(tp)).toBeUndefined();
  });
});
