import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../testing/virtual-clock.js';
import { BackgroundWork } from './background.js';
import { Scheduler } from './scheduler.js';
import type { Task } from './task.js';

/** As much of a task as a timer round touches, with a commit count the test moves. */
interface FakeTask {
  readonly taskId: string;
  commits: number;
}

function fakeTask(taskId: string): FakeTask & Task {
  const task = {
    taskId,
    commits: 0,
    exclusive: <T>(work: () => Promise<T>) => work(),
    preparePunctuate: async () => undefined,
    punctuate: () => undefined,
    nextWakeUp: () => undefined,
  };
  return task as unknown as FakeTask & Task;
}

/**
 * A scheduler over a reading task and a task that hands records to it, listed reading task first
 * (as an app may hold them); `commitAlsoCommits` says whether committing the handing task commits
 * the reading one first, as HandOffs.beforeCommit does when records were handed since its last commit.
 */
async function commitRound(commitAlsoCommits: boolean): Promise<string[]> {
  const clock = new VirtualClock(0);
  const reading = fakeTask('1_0');
  const handing = fakeTask('0_0');
  const committed: string[] = [];
  // Arms the scheduler's timer again after each round, as the app's does.
  const background: BackgroundWork = new BackgroundWork(
    () => undefined,
    () => scheduler.arm(),
  );
  const scheduler: Scheduler = new Scheduler({
    clock: () => clock,
    commitIntervalMs: 1_000,
    background,
    isOpen: () => true,
    tasks: () => [reading, handing],
    tasksToCommit: () => [handing, reading],
    commit: async (task) => {
      committed.push(task.taskId);
      if (task === handing && commitAlsoCommits) reading.commits++;
      (task as FakeTask & Task).commits++;
    },
    releaseInput: async () => undefined,
    checkStalls: () => undefined,
    log: () => undefined,
  });
  scheduler.start();
  scheduler.arm();
  clock.runUntil(1_000);
  await background.settled();
  scheduler.stop();
  return committed;
}

describe('Scheduler: a commit round', () => {
  it('commits a task that took hand-offs once, through the task that handed them, not again in its own turn', async () => {
    expect(await commitRound(true)).toEqual(['0_0']);
  });

  it('commits it in its own turn when the handing task did not commit it', async () => {
    expect(await commitRound(false)).toEqual(['0_0', '1_0']);
  });
});
