/**
 * The commit state machine on its own: a fake task that logs each step the protocol asks of it,
 * and a fake transactional producer, so that the order of the steps and every transition show.
 */
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../clock.js';
import { EddyError } from '../../errors.js';
import type { OutgoingRecord, TopicPartitionOffset, TransactionalProducer } from '../../transport/types.js';
import { Metrics } from '../metrics.js';
import { TaskCommit, type CommitSteps } from './commit.js';

const record: OutgoingRecord = { topic: 'out', partition: 0, key: null, value: null, timestamp: 0 };
const position: TopicPartitionOffset = { topic: 'in', partition: 0, offset: 5 };

interface Fakes {
  readonly calls: string[];
  readonly steps: CommitSteps;
  readonly metrics: Metrics;
  readonly clock: { now: number };
  /** Sends in flight, as the collector would hold them. */
  readonly inFlight: Set<Promise<readonly TopicPartitionOffset[]>>;
  halted: boolean;
  positions: TopicPartitionOffset[];
  /** Runs during the local state write (to act while a commit is under way). */
  duringWrite?: () => void;
}

function fakeTask(): Fakes {
  const calls: string[] = [];
  const metrics = new Metrics();
  const clock = { now: 0 };
  const inFlight = new Set<Promise<readonly TopicPartitionOffset[]>>();
  const fakes: Fakes = {
    calls,
    metrics,
    clock,
    inFlight,
    halted: false,
    positions: [position],
    steps: {
      taskId: '0_0',
      appId: 'app',
      partition: 0,
      clock: { now: () => clock.now, setTimeout: () => ({ cancel: () => undefined }) } satisfies Clock,
      metrics,
      halted: () => fakes.halted,
      drain: async () => void calls.push('drain'),
      takeStateChanges: (progressChanged) => (calls.push(`take changes (progress ${progressChanged ? 'changed' : 'same'})`), []),
      flush: () => void calls.push('flush'),
      inFlight: () => inFlight,
      sending: () => inFlight.size > 0,
      writeState: async () => {
        calls.push('write state');
        fakes.duringWrite?.();
      },
      positions: () => fakes.positions,
      log: () => undefined,
    },
  };
  return fakes;
}

/** A transactional producer that logs its calls; `fail` makes the named call reject. */
function fakeProducer(calls: string[], fail: { send?: unknown; commit?: unknown } = {}): TransactionalProducer {
  return {
    begin: async () => void calls.push('begin'),
    send: async (records) => {
      calls.push(`send ${records.length}`);
      if (fail.send) throw fail.send;
      return [{ topic: 'out', partition: 0, offset: 0 }];
    },
    sendOffsets: async (_group, offsets) => void calls.push(`send offsets ${offsets.map((each) => each.offset).join()}`),
    commit: async () => {
      calls.push('commit transaction');
      if (fail.commit) throw fail.commit;
    },
    abort: async () => void calls.push('abort'),
    close: async () => void calls.push('close producer'),
  };
}

const commitOffsets = (calls: string[]) => async (offsets: readonly TopicPartitionOffset[]) => void calls.push(`commit offsets ${offsets.map((each) => each.offset).join()}`);

describe('commit state machine, at-least-once', () => {
  it('drains, queues the state changes, sends, writes the stores, then commits the offsets; idle after', async () => {
    const task = fakeTask();
    const commit = new TaskCommit(task.steps, undefined);
    commit.progressed();
    expect(commit.phase).toBe('idle');
    const running = commit.commit(commitOffsets(task.calls));
    expect(commit.phase).toBe('committing');
    await running;
    expect(task.calls).toEqual(['drain', 'take changes (progress changed)', 'flush', 'write state', 'commit offsets 5']);
    expect(commit.phase).toBe('idle');
    expect(commit.commits).toBe(1);
  });

  it('records progress only when the task read input since the last commit', async () => {
    const task = fakeTask();
    const commit = new TaskCommit(task.steps, undefined);
    await commit.commit(commitOffsets(task.calls));
    expect(task.calls).toContain('take changes (progress same)');
  });

  it('leaves a failed commit to the next one: idle again, progress recorded again, failures counted', async () => {
    const task = fakeTask();
    task.clock.now = 10;
    const commit = new TaskCommit(task.steps, undefined);
    commit.progressed();
    const failure = new Error('the broker did not answer');
    await expect(commit.commit(async () => Promise.reject(failure))).rejects.toBe(failure);
    expect(commit.phase).toBe('idle');
    expect(commit.commits).toBe(0);
    expect(task.metrics.commitFailures).toBe(1);
    task.clock.now = 20;
    expect(commit.stalled(20, 5, undefined)).toMatch(/no commit for 10 ms \(1 failed\): .*did not answer/);
    task.calls.length = 0;
    await commit.commit(commitOffsets(task.calls));
    expect(task.calls).toContain('take changes (progress changed)');
    expect(commit.commits).toBe(1);
    expect(commit.stalled(20, 5, undefined)).toBeUndefined();
    expect(commit.commitAgeMs(25)).toBe(5);
  });

  it('waits for sends in flight and what joins them before writing the stores', async () => {
    const task = fakeTask();
    const commit = new TaskCommit(task.steps, undefined);
    let acknowledge!: (offsets: readonly TopicPartitionOffset[]) => void;
    const send = new Promise<readonly TopicPartitionOffset[]>((resolve) => (acknowledge = resolve)).then((offsets) => {
      task.inFlight.delete(send);
      return offsets;
    });
    task.inFlight.add(send);
    const running = commit.commit(commitOffsets(task.calls));
    await new Promise((resolve) => setImmediate(resolve));
    expect(task.calls).not.toContain('write state');
    acknowledge([{ topic: 'store-changelog', partition: 0, offset: 41 }]);
    await running;
    expect(task.calls.slice(-2)).toEqual(['write state', 'commit offsets 5']);
  });

  it('commits nothing once the task is halted', async () => {
    const task = fakeTask();
    const commit = new TaskCommit(task.steps, undefined);
    task.halted = true;
    await expect(commit.commit(commitOffsets(task.calls))).rejects.toMatchObject({ code: 'APP_STOPPED' });
    expect(task.calls).toEqual([]);
    expect(commit.phase).toBe('idle');
  });
});

describe('commit state machine, exactly-once', () => {
  it('opens one transaction with the first send, and commits the offsets in it before the stores are written', async () => {
    const task = fakeTask();
    const commit = new TaskCommit(task.steps, fakeProducer(task.calls));
    commit.progressed();
    await Promise.all([commit.send([record]), commit.send([record])]);
    expect(commit.phase).toBe('open');
    await commit.commit(commitOffsets(task.calls));
    expect(task.calls).toEqual(['begin', 'send 1', 'send 1', 'drain', 'take changes (progress changed)', 'flush', 'send offsets 5', 'commit transaction', 'write state', 'commit offsets 5']);
    expect(commit.phase).toBe('idle');
  });

  it('commits no transaction when nothing was sent and nothing read', async () => {
    const task = fakeTask();
    const commit = new TaskCommit(task.steps, fakeProducer(task.calls));
    await commit.commit(commitOffsets(task.calls));
    expect(task.calls).not.toContain('begin');
    expect(task.calls).not.toContain('commit transaction');
    expect(commit.phase).toBe('idle');
  });

  it('keeps a transaction that a send began while the commit ran: open after it', async () => {
    const task = fakeTask();
    const commit = new TaskCommit(task.steps, fakeProducer(task.calls));
    task.duringWrite = () => void commit.send([record]);
    await commit.commit(commitOffsets(task.calls));
    expect(commit.phase).toBe('open');
  });

  it('fails for good when a send into the transaction fails: no more sends, no commit, the transaction aborted on close', async () => {
    const task = fakeTask();
    const fenced = new EddyError('TRANSPORT_FAILED', 'fenced');
    const commit = new TaskCommit(task.steps, fakeProducer(task.calls));
    await commit.send([record]);
    commit.fail(fenced);
    commit.fail(new Error('a later failure'));
    expect(commit.phase).toBe('failed');
    expect(commit.failed).toBe(true);
    expect(() => commit.throwIfFailed()).toThrow(fenced);
    await expect(commit.commit(commitOffsets(task.calls))).rejects.toBe(fenced);
    expect(commit.phase).toBe('failed');
    expect(task.calls).not.toContain('commit transaction');
    await commit.close();
    expect(task.calls.slice(-2)).toEqual(['abort', 'close producer']);
  });

  it('fails for good when the transaction does not commit', async () => {
    const task = fakeTask();
    const refused = new Error('the transaction timed out');
    const commit = new TaskCommit(task.steps, fakeProducer(task.calls, { commit: refused }));
    commit.progressed();
    await expect(commit.commit(commitOffsets(task.calls))).rejects.toBe(refused);
    expect(commit.phase).toBe('failed');
    expect(task.calls).not.toContain('write state');
    await commit.close();
    expect(task.calls.slice(-2)).toEqual(['abort', 'close producer']);
  });

  it('fails for good when a halted task is asked to commit', async () => {
    const task = fakeTask();
    const commit = new TaskCommit(task.steps, fakeProducer(task.calls));
    task.halted = true;
    await expect(commit.commit(commitOffsets(task.calls))).rejects.toMatchObject({ code: 'APP_STOPPED' });
    expect(commit.phase).toBe('failed');
  });

  it('closes an idle task without aborting anything', async () => {
    const task = fakeTask();
    const commit = new TaskCommit(task.steps, fakeProducer(task.calls));
    await commit.close();
    expect(task.calls).toEqual(['close producer']);
  });
});
